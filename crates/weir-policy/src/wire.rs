//! The policy blob: a versioned little-endian format the control device receives
//! (IOCTL_WEIR_SET_POLICY) and returns byte for byte (IOCTL_WEIR_GET_POLICY).
//!
//! Layout of version 2, the one [`encode`] writes (byte tables in `docs/policy.md`): an 88-byte
//! header (magic, version, header length, total length, defaults, flags, counts, and the
//! offset/length of seven sections), then the sections contiguously in this order: rules
//! (64-byte records), sets (16-byte records), address ranges (tagged 9- or 33-byte records),
//! port ranges (4-byte records), application path units (UTF-16LE), set names (UTF-8), rule
//! names and descriptions (UTF-8).
//!
//! Version 1 (an 80-byte header, six sections, 56-byte rule records: no rule names,
//! descriptions or `enabled` flag) is still decoded, so a blob stored by an older weirctl still
//! loads: its rules have no name or description and are enabled.
//!
//! The format is **canonical**: every list a record refers to must start exactly where the
//! previous list of its section ended (rules in order, remote before local, then sets), each
//! section must be consumed exactly, reserved bytes and absent fields must be zero. Therefore
//! `decode(encode(p)) == p` for every valid policy and `encode(decode(b)) == b` for every
//! version-2 blob `decode` accepts (both are property-tested), and one policy has exactly one
//! blob per version.
//!
//! [`decode`] is total: it never panics, and it checks the whole blob (sizes, counts, offsets,
//! enum values, range order, set references, string lengths, UTF-8, limits) in a first pass that
//! allocates nothing; only then does a second pass build the [`Policy`] with fallible
//! allocation (`try_reserve_exact`).
//!
//! The two directions live in their own files and share this file's constants and field codes,
//! so they cannot drift apart:
//! - `encode`: [`encode`], the canonical blob of a valid policy.
//! - `decode`: [`decode`] and [`check`], the total two-pass decoder.

use core::fmt;

use crate::limits::*;
use crate::{Action, AddrRange, ValidationError};

mod decode;
mod encode;

pub use decode::{check, decode};
#[doc(hidden)]
pub use encode::encode_v1;
pub use encode::encode;

/// The 8 bytes a blob starts with.
pub const MAGIC: [u8; 8] = *b"WEIRPLCY";
/// The format version this crate writes.
pub const VERSION: u16 = 2;
/// The previous format version, still read: no rule names, descriptions or `enabled` flag.
pub const VERSION_1: u16 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 88;
/// Header size of version 1 (six sections).
pub const HEADER_LEN_V1: usize = 80;
/// Size of one rule record.
pub const RULE_RECORD_LEN: usize = 64;
/// Size of one rule record of version 1.
pub const RULE_RECORD_LEN_V1: usize = 56;
/// Size of one set record.
pub const SET_RECORD_LEN: usize = 16;
/// Size of an IPv4 address-range record (tag 4, lo, hi).
pub const ADDR_V4_RECORD_LEN: usize = 9;
/// Size of an IPv6 address-range record (tag 6, lo, hi).
pub const ADDR_V6_RECORD_LEN: usize = 33;
/// Size of one port-range record (lo, hi).
pub const PORT_RECORD_LEN: usize = 4;

/// What differs between the format versions: everything else (field offsets within the first
/// 56 bytes of a rule record, the other records, the order of the first six sections) is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Format {
    version: u16,
    header_len: usize,
    rule_record_len: usize,
    /// Number of sections: 6 (version 1) or 7 (version 2 adds [`Section::RuleText`]).
    sections: usize,
}

const FORMAT_V1: Format = Format {
    version: VERSION_1,
    header_len: HEADER_LEN_V1,
    rule_record_len: RULE_RECORD_LEN_V1,
    sections: 6,
};

const FORMAT_V2: Format = Format {
    version: VERSION,
    header_len: HEADER_LEN,
    rule_record_len: RULE_RECORD_LEN,
    sections: 7,
};

fn format_of(version: u16) -> Option<Format> {
    match version {
        VERSION_1 => Some(FORMAT_V1),
        VERSION => Some(FORMAT_V2),
        _ => None,
    }
}

/// Offsets of the version-2 rule-record fields past the version-1 ones.
const RULE_DISABLED_AT: usize = 56;
const RULE_NAME_LEN_AT: usize = 57;
const RULE_DESCRIPTION_LEN_AT: usize = 58;
const RULE_TEXT_AT: usize = 60;

/// The seven sections, in blob order (version 1 has the first six).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Rule records.
    Rules,
    /// Set records.
    Sets,
    /// Address-range records (rules' lists, then sets' entries).
    Addrs,
    /// Port-range records.
    Ports,
    /// Application path units.
    Apps,
    /// Set names.
    Names,
    /// Rule names and descriptions (version 2).
    RuleText,
}

const SECTIONS: [Section; 7] = [
    Section::Rules,
    Section::Sets,
    Section::Addrs,
    Section::Ports,
    Section::Apps,
    Section::Names,
    Section::RuleText,
];

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Rules => "rules",
            Section::Sets => "sets",
            Section::Addrs => "address ranges",
            Section::Ports => "port ranges",
            Section::Apps => "application paths",
            Section::Names => "set names",
            Section::RuleText => "rule names and descriptions",
        })
    }
}

/// Why a blob is refused. `rule` / `set` are record indices. [`DecodeError::code`] is stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the header.
    TooShort,
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// A format version this decoder does not know.
    UnsupportedVersion { version: u16 },
    /// The header-length field is not that of the blob's version ([`HEADER_LEN`], [`HEADER_LEN_V1`]).
    BadHeaderLength,
    /// Longer than [`MAX_BLOB_BYTES`].
    TooLarge,
    /// The total-length field differs from the blob's length.
    TotalLengthMismatch,
    /// A reserved header field or flag bit is not zero.
    ReservedNotZero,
    /// A section does not start where the previous one ended, or runs past the blob's end, or
    /// the last one does not end at the blob's end.
    SectionLayout { section: Section },
    /// A section's length does not fit its count or record size.
    SectionLength { section: Section },
    /// A rule field holds a value outside its enumeration (action, direction, flags...).
    BadField { rule: u32 },
    /// A field of an absent condition is not zero.
    AbsentNotZero { rule: u32 },
    /// A list does not start exactly where the previous list of its section ended.
    NonCanonicalOffset { section: Section },
    /// A list runs past the end of its section.
    ListOutOfBounds { section: Section },
    /// An address-range record has a tag other than 4 or 6.
    BadAddrTag,
    /// A section has bytes no record refers to.
    TrailingBytes { section: Section },
    /// A set name is not UTF-8.
    SetNameUtf8 { set: u32 },
    /// The blob is well-formed but the policy breaks a model rule or a limit.
    Invalid(ValidationError),
    /// An allocation failed while building the policy.
    OutOfMemory,
    /// A default-action byte of the header is neither 0 (permit) nor 1 (block).
    BadDefaultAction,
    /// A rule name or description is not UTF-8.
    RuleTextUtf8 { rule: u32 },
}

impl DecodeError {
    /// Stable numeric code (1..=127) for the driver's status `0xE057_0000 | code`: structural
    /// errors are 1..=63, [`DecodeError::Invalid`] carries [`ValidationError::code`] (64..=127).
    pub fn code(&self) -> u32 {
        match self {
            DecodeError::TooShort => 1,
            DecodeError::BadMagic => 2,
            DecodeError::UnsupportedVersion { .. } => 3,
            DecodeError::BadHeaderLength => 4,
            DecodeError::TooLarge => 5,
            DecodeError::TotalLengthMismatch => 6,
            DecodeError::ReservedNotZero => 7,
            DecodeError::SectionLayout { .. } => 8,
            DecodeError::SectionLength { .. } => 9,
            DecodeError::BadField { .. } => 10,
            DecodeError::AbsentNotZero { .. } => 11,
            DecodeError::NonCanonicalOffset { .. } => 12,
            DecodeError::ListOutOfBounds { .. } => 13,
            DecodeError::BadAddrTag => 14,
            DecodeError::TrailingBytes { .. } => 15,
            DecodeError::SetNameUtf8 { .. } => 16,
            DecodeError::OutOfMemory => 17,
            DecodeError::BadDefaultAction => 18,
            DecodeError::RuleTextUtf8 { .. } => 19,
            DecodeError::Invalid(v) => v.code(),
        }
    }
}

impl From<ValidationError> for DecodeError {
    fn from(v: ValidationError) -> Self {
        match v {
            ValidationError::OutOfMemory => DecodeError::OutOfMemory,
            v => DecodeError::Invalid(v),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort => {
                write!(f, "policy blob shorter than its header ({HEADER_LEN_V1} or {HEADER_LEN} bytes)")
            }
            DecodeError::BadMagic => write!(f, "not a Weir policy blob (bad magic)"),
            DecodeError::UnsupportedVersion { version } => {
                write!(
                    f,
                    "policy format version {version} not supported (this build reads {VERSION_1} and {VERSION})"
                )
            }
            DecodeError::BadHeaderLength => {
                write!(f, "header length does not match the format version")
            }
            DecodeError::TooLarge => write!(f, "policy blob larger than {MAX_BLOB_BYTES} bytes"),
            DecodeError::TotalLengthMismatch => {
                write!(f, "total-length field differs from the blob size")
            }
            DecodeError::ReservedNotZero => {
                write!(f, "reserved header bytes or flag bits not zero")
            }
            DecodeError::SectionLayout { section } => {
                write!(f, "{section} section misplaced or out of bounds")
            }
            DecodeError::SectionLength { section } => {
                write!(f, "{section} section length does not match its count")
            }
            DecodeError::BadField { rule } => write!(f, "rule #{rule}: field value out of range"),
            DecodeError::AbsentNotZero { rule } => {
                write!(
                    f,
                    "rule #{rule}: absent condition with non-zero count or offset"
                )
            }
            DecodeError::NonCanonicalOffset { section } => {
                write!(
                    f,
                    "{section}: list does not start where the previous one ended"
                )
            }
            DecodeError::ListOutOfBounds { section } => {
                write!(f, "{section}: list runs past the section")
            }
            DecodeError::BadAddrTag => {
                write!(f, "address range record with a tag other than 4 or 6")
            }
            DecodeError::TrailingBytes { section } => {
                write!(f, "{section}: bytes no record refers to")
            }
            DecodeError::SetNameUtf8 { set } => write!(f, "set #{set}: name is not UTF-8"),
            DecodeError::Invalid(v) => write!(f, "invalid policy: {v}"),
            DecodeError::OutOfMemory => write!(f, "out of memory while decoding the policy"),
            DecodeError::BadDefaultAction => {
                write!(f, "default action neither permit (0) nor block (1)")
            }
            DecodeError::RuleTextUtf8 { rule } => {
                write!(f, "rule #{rule}: name or description is not UTF-8")
            }
        }
    }
}

/// Why [`encode`] refused a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The policy breaks a model rule or a limit.
    Invalid(ValidationError),
    /// The blob would exceed [`MAX_BLOB_BYTES`].
    TooLarge,
    /// An allocation failed.
    OutOfMemory,
    /// [`encode_v1`] only: the rule has a name, a description or is disabled, which version 1
    /// cannot hold.
    NotInVersion1 { rule: u32 },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Invalid(v) => write!(f, "invalid policy: {v}"),
            EncodeError::TooLarge => write!(f, "policy blob would exceed {MAX_BLOB_BYTES} bytes"),
            EncodeError::OutOfMemory => write!(f, "out of memory while encoding the policy"),
            EncodeError::NotInVersion1 { rule } => write!(
                f,
                "rule #{rule}: a name, description or `enabled = false` needs format version {VERSION}"
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field codes.

const ADDR_ANY: u8 = 0;
const ADDR_RANGES: u8 = 1;
const ADDR_SET: u8 = 2;
const TAG_V4: u8 = 4;
const TAG_V6: u8 = 6;

fn action_code(a: Action) -> u8 {
    match a {
        Action::Permit => 0,
        Action::Block => 1,
    }
}

fn action_from(b: u8) -> Option<Action> {
    match b {
        0 => Some(Action::Permit),
        1 => Some(Action::Block),
        _ => None,
    }
}

fn bool_from(b: u8) -> Option<bool> {
    match b {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn addr_record_len(r: &AddrRange) -> usize {
    match r {
        AddrRange::V4 { .. } => ADDR_V4_RECORD_LEN,
        AddrRange::V6 { .. } => ADDR_V6_RECORD_LEN,
    }
}

