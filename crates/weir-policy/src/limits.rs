//! Bounds enforced by [`crate::wire::decode`], [`crate::wire::encode`], [`crate::Policy::validate`]
//! and [`crate::CompiledPolicy::compile`]. A policy or blob over any of them is refused with a
//! specific error; nothing is allocated for it beyond what was needed to find out.

/// Largest blob accepted, in bytes (64 MiB).
pub const MAX_BLOB_BYTES: usize = 64 * 1024 * 1024;

/// Most rules in one policy.
pub const MAX_RULES: usize = 262_144;

/// Most address sets in one policy.
pub const MAX_SETS: usize = 4_096;

/// Most address-set entries (ranges) in one policy, summed over all sets.
pub const MAX_SET_ENTRIES_TOTAL: usize = 4_000_000;

/// Most ranges in one rule's address condition ([`crate::AddrCond::Ranges`]).
pub const MAX_ADDR_RANGES: usize = 1_024;

/// Most address ranges in all rules' address conditions together (set entries not counted).
pub const MAX_RULE_ADDR_RANGES_TOTAL: usize = 1_000_000;

/// Most ranges in one port condition.
pub const MAX_PORT_RANGES: usize = 256;

/// Longest application path in UTF-16 code units (the longest NT path a UNICODE_STRING holds).
pub const MAX_APP_PATH_UNITS: usize = 32_767;

/// Most application-path code units in all rules together.
pub const MAX_APP_UNITS_TOTAL: usize = 8 * 1024 * 1024;

/// Longest address-set name in UTF-8 bytes.
pub const MAX_SET_NAME_BYTES: usize = 255;

/// Longest rule name in UTF-8 bytes (the wire format keeps it in one byte).
pub const MAX_RULE_NAME_BYTES: usize = 255;

/// Longest rule description in UTF-8 bytes.
pub const MAX_RULE_DESCRIPTION_BYTES: usize = 1_024;
