//! Weir's fail-closed allow-list: what an administrator adds, in the
//! service's `Parameters\FailClosedAllow` value (REG_MULTI_SZ), to the fixed
//! permits (loopback, DHCP, DNS) that Weir's fail-closed filters let through
//! while Weir is not deciding.
//!
//! - [`entry`]: one entry, `<direction> <protocol> <remote address> <ports>`
//!   (for example `out tcp 10.1.2.0/24 443`), its total parser
//!   [`Entry::parse`] and its canonical text ([`Entry`]'s `Display`, which
//!   parses back to the same entry).
//! - [`list`]: the registry value's bytes (UTF-16LE strings, NUL-separated)
//!   to an [`AllowList`] of at most [`MAX_ENTRIES`] entries, or the first
//!   reason it was refused; [`parse_multi_sz`] never panics, allocates or
//!   reads past its input (property-tested, fuzzed in `fuzz/`).
//!
//! The driver parses the value once, at PASSIVE_LEVEL in DriverEntry, and
//! turns each entry into one permit filter per layer it names
//! ([`Entry::layers`], [`Entry::conditions`]); `weirctl failsafe` parses
//! the same value with the same code to show and edit it. A list with any
//! bad entry (or more than [`MAX_ENTRIES`]) is refused whole: the driver
//! then adds no extra filter, keeps the fixed permits and reports why.
//! `docs/deployment.md` ("Failure mode") explains the grammar for
//! administrators.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod entry;
pub mod list;

pub use entry::{Direction, Entry, EntryError, Family, FilterCondition, Ports, Remote, MAX_FILTER_CONDITIONS};
pub use list::{describe_code, encode_multi_sz, parse_multi_sz, parse_multi_sz_into, AllowList, ListError, Parsed, Report};

/// The `Parameters` value that holds the list.
pub const VALUE_NAME: &str = "FailClosedAllow";

/// Most entries a list may hold; a longer list is refused whole. Each
/// entry becomes at most two filters (one per IP version) in each of the
/// two fail-closed sets (persistent, boot-time).
pub const MAX_ENTRIES: usize = 64;

/// Most filters the entries of one list become (two per entry).
pub const MAX_FILTERS: usize = 2 * MAX_ENTRIES;

/// Most UTF-16 code units of one entry (its text, without the NUL); a
/// longer entry is refused (`EntryError::TooLong`). The longest sensible
/// entry (`out 255 ffff:...:ffff/128 65535-65535`) has 60.
pub const MAX_ENTRY_UNITS: usize = 120;

/// Most bytes of the registry value the driver reads; a longer value is
/// refused whole without being parsed. Room for [`MAX_ENTRIES`] entries of
/// [`MAX_ENTRY_UNITS`] units each, with their NULs and the final one.
pub const MAX_VALUE_BYTES: usize = 2 * (MAX_ENTRIES * (MAX_ENTRY_UNITS + 1) + 1);
