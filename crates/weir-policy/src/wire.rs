//! The policy blob: a versioned little-endian format the control device receives
//! (IOCTL_WEIR_SET_POLICY) and returns byte for byte (IOCTL_WEIR_GET_POLICY).
//!
//! Layout (byte tables in `docs/policy.md`): an 80-byte header (magic, version, header length,
//! total length, defaults, flags, counts, and the offset/length of six sections), then the
//! sections contiguously in this order: rules (56-byte records), sets (16-byte records),
//! address ranges (tagged 9- or 33-byte records), port ranges (4-byte records), application
//! path units (UTF-16LE), set names (UTF-8).
//!
//! The format is **canonical**: every list a record refers to must start exactly where the
//! previous list of its section ended (rules in order, remote before local, then sets), each
//! section must be consumed exactly, reserved bytes and absent fields must be zero. Therefore
//! `decode(encode(p)) == p` for every valid policy and `encode(decode(b)) == b` for every blob
//! `decode` accepts (both are property-tested), and one policy has exactly one blob.
//!
//! [`decode`] is total: it never panics, and it checks the whole blob (sizes, counts, offsets,
//! enum values, range order, set references, string lengths, UTF-8, limits) in a first pass that
//! allocates nothing; only then does a second pass build the [`Policy`] with fallible
//! allocation (`try_reserve_exact`).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::limits::*;
use crate::validate::{self, Totals};
use crate::{
    Action, AddrCond, AddrRange, AddressSet, AppPath, Direction, IpVersion, Policy, PortCond, Rule,
    ValidationError,
};

/// The 8 bytes a blob starts with.
pub const MAGIC: [u8; 8] = *b"WEIRPLCY";
/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 80;
/// Size of one rule record.
pub const RULE_RECORD_LEN: usize = 56;
/// Size of one set record.
pub const SET_RECORD_LEN: usize = 16;
/// Size of an IPv4 address-range record (tag 4, lo, hi).
pub const ADDR_V4_RECORD_LEN: usize = 9;
/// Size of an IPv6 address-range record (tag 6, lo, hi).
pub const ADDR_V6_RECORD_LEN: usize = 33;
/// Size of one port-range record (lo, hi).
pub const PORT_RECORD_LEN: usize = 4;

/// The six sections, in blob order.
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
}

const SECTIONS: [Section; 6] = [
    Section::Rules,
    Section::Sets,
    Section::Addrs,
    Section::Ports,
    Section::Apps,
    Section::Names,
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
    /// The header-length field is not [`HEADER_LEN`].
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
                write!(f, "policy blob shorter than its {HEADER_LEN}-byte header")
            }
            DecodeError::BadMagic => write!(f, "not a Weir policy blob (bad magic)"),
            DecodeError::UnsupportedVersion { version } => {
                write!(
                    f,
                    "policy format version {version} not supported (this build reads {VERSION})"
                )
            }
            DecodeError::BadHeaderLength => write!(f, "header length is not {HEADER_LEN}"),
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
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Invalid(v) => write!(f, "invalid policy: {v}"),
            EncodeError::TooLarge => write!(f, "policy blob would exceed {MAX_BLOB_BYTES} bytes"),
            EncodeError::OutOfMemory => write!(f, "out of memory while encoding the policy"),
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

// ---------------------------------------------------------------------------------------------
// Encoder.

/// The canonical blob of `p`. Validates `p` first ([`Policy::validate`]).
///
/// Errors: [`EncodeError::Invalid`] for a policy `decode` would refuse, [`EncodeError::TooLarge`]
/// over [`MAX_BLOB_BYTES`], [`EncodeError::OutOfMemory`] when allocation fails.
pub fn encode(p: &Policy) -> Result<Vec<u8>, EncodeError> {
    p.validate().map_err(|e| match e {
        ValidationError::OutOfMemory => EncodeError::OutOfMemory,
        e => EncodeError::Invalid(e),
    })?;
    // Section sizes; validation bounds every count, so these sums stay far below u64 limits,
    // but keep them checked anyway and compare against the blob limit.
    let mut addr_len: u64 = 0;
    let mut port_count: u64 = 0;
    let mut app_units: u64 = 0;
    for r in &p.rules {
        for c in [&r.remote_addr, &r.local_addr].into_iter().flatten() {
            if let AddrCond::Ranges(rs) = c {
                addr_len += rs.iter().map(|r| addr_record_len(r) as u64).sum::<u64>();
            }
        }
        for c in [&r.remote_port, &r.local_port].into_iter().flatten() {
            port_count += c.ranges.len() as u64;
        }
        if let Some(a) = &r.app {
            app_units += a.0.len() as u64;
        }
    }
    let mut name_len: u64 = 0;
    for s in &p.sets {
        addr_len += s
            .entries
            .iter()
            .map(|r| addr_record_len(r) as u64)
            .sum::<u64>();
        name_len += s.name.len() as u64;
    }
    let lens: [u64; 6] = [
        (p.rules.len() * RULE_RECORD_LEN) as u64,
        (p.sets.len() * SET_RECORD_LEN) as u64,
        addr_len,
        port_count * PORT_RECORD_LEN as u64,
        app_units * 2,
        name_len,
    ];
    let total: u64 = HEADER_LEN as u64 + lens.iter().sum::<u64>();
    if total > MAX_BLOB_BYTES as u64 {
        return Err(EncodeError::TooLarge);
    }
    let total = total as usize;
    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| EncodeError::OutOfMemory)?;

    // Header.
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.push(action_code(p.default_outbound));
    out.push(action_code(p.default_inbound));
    out.push(u8::from(p.log_all));
    out.push(0);
    out.extend_from_slice(&(p.rules.len() as u32).to_le_bytes());
    out.extend_from_slice(&(p.sets.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut off = HEADER_LEN as u64;
    for len in lens {
        out.extend_from_slice(&(off as u32).to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        off += len;
    }

    // Rules.
    let mut addr_cursor: u32 = 0;
    let mut port_cursor: u32 = 0;
    let mut app_cursor: u32 = 0;
    for r in &p.rules {
        let mut rec = [0u8; RULE_RECORD_LEN];
        let mut w = RecordWriter { rec: &mut rec };
        w.u32(0, r.id);
        w.u8(4, action_code(r.action));
        w.u8(5, u8::from(r.log));
        w.u8(
            6,
            match r.direction {
                None => 0,
                Some(Direction::Outbound) => 1,
                Some(Direction::Inbound) => 2,
            },
        );
        w.u8(
            7,
            match r.ip_version {
                None => 0,
                Some(IpVersion::V4) => 1,
                Some(IpVersion::V6) => 2,
            },
        );
        w.u8(8, u8::from(r.protocol.is_some()));
        w.u8(9, r.protocol.unwrap_or(0));
        w.u8(
            10,
            match r.loopback {
                None => 0,
                Some(false) => 1,
                Some(true) => 2,
            },
        );
        for (kind_at, a_at, off_at, c) in
            [(11, 16, 36, &r.remote_addr), (12, 20, 40, &r.local_addr)]
        {
            match c {
                None => {}
                Some(AddrCond::Ranges(rs)) => {
                    w.u8(kind_at, ADDR_RANGES);
                    w.u32(a_at, rs.len() as u32);
                    w.u32(off_at, addr_cursor);
                    addr_cursor += rs.iter().map(|r| addr_record_len(r) as u32).sum::<u32>();
                }
                Some(AddrCond::Set(s)) => {
                    w.u8(kind_at, ADDR_SET);
                    w.u32(a_at, *s);
                }
            }
        }
        for (present_at, count_at, first_at, c) in
            [(13, 24, 44, &r.remote_port), (14, 28, 48, &r.local_port)]
        {
            if let Some(c) = c {
                w.u8(present_at, 1);
                w.u32(count_at, c.ranges.len() as u32);
                w.u32(first_at, port_cursor);
                port_cursor += c.ranges.len() as u32;
            }
        }
        if let Some(a) = &r.app {
            w.u8(15, 1);
            w.u32(32, a.0.len() as u32);
            w.u32(52, app_cursor);
            app_cursor += a.0.len() as u32;
        }
        out.extend_from_slice(&rec);
    }
    // Sets.
    let mut name_cursor: u32 = 0;
    let mut set_addr_cursor = addr_cursor;
    for s in &p.sets {
        out.extend_from_slice(&name_cursor.to_le_bytes());
        out.extend_from_slice(&(s.name.len() as u32).to_le_bytes());
        out.extend_from_slice(&set_addr_cursor.to_le_bytes());
        out.extend_from_slice(&(s.entries.len() as u32).to_le_bytes());
        name_cursor += s.name.len() as u32;
        set_addr_cursor += s
            .entries
            .iter()
            .map(|r| addr_record_len(r) as u32)
            .sum::<u32>();
    }
    // Address ranges.
    let put_range = |out: &mut Vec<u8>, r: &AddrRange| match r {
        AddrRange::V4 { lo, hi } => {
            out.push(TAG_V4);
            out.extend_from_slice(&lo.to_le_bytes());
            out.extend_from_slice(&hi.to_le_bytes());
        }
        AddrRange::V6 { lo, hi } => {
            out.push(TAG_V6);
            out.extend_from_slice(&lo.to_le_bytes());
            out.extend_from_slice(&hi.to_le_bytes());
        }
    };
    for r in &p.rules {
        for c in [&r.remote_addr, &r.local_addr].into_iter().flatten() {
            if let AddrCond::Ranges(rs) = c {
                for x in rs {
                    put_range(&mut out, x);
                }
            }
        }
    }
    for s in &p.sets {
        for x in &s.entries {
            put_range(&mut out, x);
        }
    }
    // Ports.
    for r in &p.rules {
        for c in [&r.remote_port, &r.local_port].into_iter().flatten() {
            for (lo, hi) in &c.ranges {
                out.extend_from_slice(&lo.to_le_bytes());
                out.extend_from_slice(&hi.to_le_bytes());
            }
        }
    }
    // Apps.
    for r in &p.rules {
        if let Some(a) = &r.app {
            for u in &a.0 {
                out.extend_from_slice(&u.to_le_bytes());
            }
        }
    }
    // Names.
    for s in &p.sets {
        out.extend_from_slice(s.name.as_bytes());
    }
    debug_assert_eq!(out.len(), total);
    Ok(out)
}

struct RecordWriter<'a> {
    rec: &'a mut [u8; RULE_RECORD_LEN],
}

impl RecordWriter<'_> {
    fn u8(&mut self, at: usize, v: u8) {
        if let Some(b) = self.rec.get_mut(at) {
            *b = v;
        }
    }
    fn u32(&mut self, at: usize, v: u32) {
        if let Some(b) = self.rec.get_mut(at..at + 4) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder.

fn rd_u8(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

fn rd_u16(b: &[u8], at: usize) -> u16 {
    match b
        .get(at..at.wrapping_add(2))
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
    {
        Some(a) => u16::from_le_bytes(a),
        None => 0,
    }
}

fn rd_u32(b: &[u8], at: usize) -> u32 {
    match b
        .get(at..at.wrapping_add(4))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
    {
        Some(a) => u32::from_le_bytes(a),
        None => 0,
    }
}

fn rd_u128(b: &[u8], at: usize) -> u128 {
    match b
        .get(at..at.wrapping_add(16))
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
    {
        Some(a) => u128::from_le_bytes(a),
        None => 0,
    }
}

/// The validated header: the six section slices and the counts.
struct Layout<'a> {
    rule_count: usize,
    set_count: usize,
    default_outbound: Action,
    default_inbound: Action,
    log_all: bool,
    sections: [&'a [u8]; 6],
}

fn parse_header(blob: &[u8]) -> Result<Layout<'_>, DecodeError> {
    if blob.len() > MAX_BLOB_BYTES {
        return Err(DecodeError::TooLarge);
    }
    if blob.len() < HEADER_LEN {
        return Err(DecodeError::TooShort);
    }
    if blob.get(0..8) != Some(&MAGIC[..]) {
        return Err(DecodeError::BadMagic);
    }
    let version = rd_u16(blob, 8);
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion { version });
    }
    if usize::from(rd_u16(blob, 10)) != HEADER_LEN {
        return Err(DecodeError::BadHeaderLength);
    }
    if rd_u32(blob, 12) as usize != blob.len() {
        return Err(DecodeError::TotalLengthMismatch);
    }
    let default_outbound = action_from(rd_u8(blob, 16)).ok_or(DecodeError::BadDefaultAction)?;
    let default_inbound = action_from(rd_u8(blob, 17)).ok_or(DecodeError::BadDefaultAction)?;
    let flags = rd_u8(blob, 18);
    if flags & !1 != 0 || rd_u8(blob, 19) != 0 || rd_u32(blob, 28) != 0 {
        return Err(DecodeError::ReservedNotZero);
    }
    let rule_count = rd_u32(blob, 20) as usize;
    let set_count = rd_u32(blob, 24) as usize;
    if rule_count > MAX_RULES {
        return Err(DecodeError::Invalid(ValidationError::TooManyRules));
    }
    if set_count > MAX_SETS {
        return Err(DecodeError::Invalid(ValidationError::TooManySets));
    }
    let mut sections: [&[u8]; 6] = [&[]; 6];
    let mut expect = HEADER_LEN;
    for (i, section) in SECTIONS.iter().enumerate() {
        let at = 32 + 8 * i;
        let off = rd_u32(blob, at) as usize;
        let len = rd_u32(blob, at + 4) as usize;
        if off != expect {
            return Err(DecodeError::SectionLayout { section: *section });
        }
        let end = off
            .checked_add(len)
            .ok_or(DecodeError::SectionLayout { section: *section })?;
        let s = blob
            .get(off..end)
            .ok_or(DecodeError::SectionLayout { section: *section })?;
        if let Some(slot) = sections.get_mut(i) {
            *slot = s;
        }
        expect = end;
    }
    if expect != blob.len() {
        return Err(DecodeError::SectionLayout {
            section: Section::Names,
        });
    }
    let [rules, sets, addrs, ports, apps, _names] = sections;
    if rules.len() != rule_count.saturating_mul(RULE_RECORD_LEN) {
        return Err(DecodeError::SectionLength {
            section: Section::Rules,
        });
    }
    if sets.len() != set_count.saturating_mul(SET_RECORD_LEN) {
        return Err(DecodeError::SectionLength {
            section: Section::Sets,
        });
    }
    let _ = addrs;
    if ports.len() % PORT_RECORD_LEN != 0 {
        return Err(DecodeError::SectionLength {
            section: Section::Ports,
        });
    }
    if apps.len() % 2 != 0 {
        return Err(DecodeError::SectionLength {
            section: Section::Apps,
        });
    }
    Ok(Layout {
        rule_count,
        set_count,
        default_outbound,
        default_inbound,
        log_all: flags & 1 != 0,
        sections,
    })
}

/// Iterates `count` address-range records starting at byte `start` of the address section,
/// checking tags, bounds and range order; `end()` is the byte after the last record.
struct AddrIter<'a> {
    sec: &'a [u8],
    pos: usize,
    left: u32,
}

impl AddrIter<'_> {
    fn next_range(&mut self) -> Result<Option<AddrRange>, DecodeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let oob = DecodeError::ListOutOfBounds {
            section: Section::Addrs,
        };
        let tag = *self.sec.get(self.pos).ok_or(oob)?;
        let (len, r) = match tag {
            TAG_V4 => {
                let b = self
                    .sec
                    .get(self.pos + 1..self.pos + ADDR_V4_RECORD_LEN)
                    .ok_or(oob)?;
                (
                    ADDR_V4_RECORD_LEN,
                    AddrRange::V4 {
                        lo: rd_u32(b, 0),
                        hi: rd_u32(b, 4),
                    },
                )
            }
            TAG_V6 => {
                let b = self
                    .sec
                    .get(self.pos + 1..self.pos + ADDR_V6_RECORD_LEN)
                    .ok_or(oob)?;
                (
                    ADDR_V6_RECORD_LEN,
                    AddrRange::V6 {
                        lo: rd_u128(b, 0),
                        hi: rd_u128(b, 16),
                    },
                )
            }
            _ => return Err(DecodeError::BadAddrTag),
        };
        self.pos += len;
        Ok(Some(r))
    }
}

/// One rule record, decoded to scalars and validated list positions.
struct RuleRec {
    id: u32,
    action: Action,
    log: bool,
    direction: Option<Direction>,
    ip_version: Option<IpVersion>,
    protocol: Option<u8>,
    loopback: Option<bool>,
    /// (kind, a, byte offset) for remote and local.
    addr: [(u8, u32, u32); 2],
    /// (count, first) for remote and local ports, `None` if absent.
    ports: [Option<(u32, u32)>; 2],
    /// (len, first) of the app path.
    app: Option<(u32, u32)>,
}

/// Cursors through the list-carrying sections, for the canonical-offset checks.
#[derive(Default, Clone, Copy)]
struct Cursors {
    addr: usize,
    port: usize,
    app: usize,
    name: usize,
}

fn parse_rule(rec: &[u8], index: u32) -> Result<RuleRec, DecodeError> {
    let bad = DecodeError::BadField { rule: index };
    let absent = DecodeError::AbsentNotZero { rule: index };
    let action = action_from(rd_u8(rec, 4)).ok_or(bad)?;
    let log = bool_from(rd_u8(rec, 5)).ok_or(bad)?;
    let direction = match rd_u8(rec, 6) {
        0 => None,
        1 => Some(Direction::Outbound),
        2 => Some(Direction::Inbound),
        _ => return Err(bad),
    };
    let ip_version = match rd_u8(rec, 7) {
        0 => None,
        1 => Some(IpVersion::V4),
        2 => Some(IpVersion::V6),
        _ => return Err(bad),
    };
    let protocol = match (rd_u8(rec, 8), rd_u8(rec, 9)) {
        (0, 0) => None,
        (0, _) => return Err(absent),
        (1, p) => Some(p),
        _ => return Err(bad),
    };
    let loopback = match rd_u8(rec, 10) {
        0 => None,
        1 => Some(false),
        2 => Some(true),
        _ => return Err(bad),
    };
    let mut addr = [(0u8, 0u32, 0u32); 2];
    for (i, (kind_at, a_at, off_at)) in [(11usize, 16usize, 36usize), (12, 20, 40)]
        .into_iter()
        .enumerate()
    {
        let kind = rd_u8(rec, kind_at);
        let a = rd_u32(rec, a_at);
        let off = rd_u32(rec, off_at);
        match kind {
            ADDR_ANY if a == 0 && off == 0 => {}
            ADDR_ANY => return Err(absent),
            ADDR_RANGES => {}
            ADDR_SET if off == 0 => {}
            ADDR_SET => return Err(absent),
            _ => return Err(bad),
        }
        if let Some(slot) = addr.get_mut(i) {
            *slot = (kind, a, off);
        }
    }
    let mut ports = [None; 2];
    for (i, (present_at, count_at, first_at)) in [(13usize, 24usize, 44usize), (14, 28, 48)]
        .into_iter()
        .enumerate()
    {
        let count = rd_u32(rec, count_at);
        let first = rd_u32(rec, first_at);
        let v = match rd_u8(rec, present_at) {
            0 if count == 0 && first == 0 => None,
            0 => return Err(absent),
            1 => Some((count, first)),
            _ => return Err(bad),
        };
        if let Some(slot) = ports.get_mut(i) {
            *slot = v;
        }
    }
    let app_len = rd_u32(rec, 32);
    let app_first = rd_u32(rec, 52);
    let app = match rd_u8(rec, 15) {
        0 if app_len == 0 && app_first == 0 => None,
        0 => return Err(absent),
        1 => Some((app_len, app_first)),
        _ => return Err(bad),
    };
    Ok(RuleRec {
        id: rd_u32(rec, 0),
        action,
        log,
        direction,
        ip_version,
        protocol,
        loopback,
        addr,
        ports,
        app,
    })
}

/// Pass-1 and pass-2 shared walk over one rule's lists. With `out == None` it only checks;
/// with `Some`, it also builds the rule (fallible allocation).
fn walk_rule(
    rec: &RuleRec,
    index: u32,
    l: &Layout<'_>,
    cur: &mut Cursors,
    totals: &mut Totals,
    build: bool,
) -> Result<Option<Rule>, DecodeError> {
    let [_, _, addrs, ports, apps, _] = l.sections;
    let mut conds: [Option<AddrCond>; 2] = [None, None];
    for (i, (kind, a, off)) in rec.addr.iter().copied().enumerate() {
        let cond = match kind {
            ADDR_RANGES => {
                if off as usize != cur.addr {
                    return Err(DecodeError::NonCanonicalOffset {
                        section: Section::Addrs,
                    });
                }
                if a == 0 {
                    return Err(ValidationError::EmptyAddrRanges { rule: index }.into());
                }
                if a as usize > MAX_ADDR_RANGES {
                    return Err(ValidationError::TooManyAddrRanges { rule: index }.into());
                }
                totals.rule_addr_ranges = totals.rule_addr_ranges.saturating_add(a as usize);
                if totals.rule_addr_ranges > MAX_RULE_ADDR_RANGES_TOTAL {
                    return Err(ValidationError::TooManyRuleAddrRanges.into());
                }
                let mut it = AddrIter {
                    sec: addrs,
                    pos: cur.addr,
                    left: a,
                };
                let mut v: Vec<AddrRange> = Vec::new();
                if build {
                    v.try_reserve_exact(a as usize)
                        .map_err(|_| DecodeError::OutOfMemory)?;
                }
                while let Some(r) = it.next_range()? {
                    if !validate::range_ordered(&r) {
                        return Err(ValidationError::AddrRangeOrder { rule: index }.into());
                    }
                    if build {
                        v.push(r);
                    }
                }
                cur.addr = it.pos;
                Some(AddrCond::Ranges(v))
            }
            ADDR_SET => {
                if a as usize >= l.set_count {
                    return Err(ValidationError::SetIndex {
                        rule: index,
                        set: a,
                    }
                    .into());
                }
                Some(AddrCond::Set(a))
            }
            _ => None,
        };
        if let Some(slot) = conds.get_mut(i) {
            *slot = cond;
        }
    }
    let mut pconds: [Option<PortCond>; 2] = [None, None];
    for (i, p) in rec.ports.iter().enumerate() {
        let Some((count, first)) = *p else { continue };
        if first as usize != cur.port {
            return Err(DecodeError::NonCanonicalOffset {
                section: Section::Ports,
            });
        }
        if count == 0 {
            return Err(ValidationError::EmptyPortRanges { rule: index }.into());
        }
        if count as usize > MAX_PORT_RANGES {
            return Err(ValidationError::TooManyPortRanges { rule: index }.into());
        }
        let start = cur.port * PORT_RECORD_LEN;
        let end = start + count as usize * PORT_RECORD_LEN;
        let bytes = ports.get(start..end).ok_or(DecodeError::ListOutOfBounds {
            section: Section::Ports,
        })?;
        let mut v: Vec<(u16, u16)> = Vec::new();
        if build {
            v.try_reserve_exact(count as usize)
                .map_err(|_| DecodeError::OutOfMemory)?;
        }
        for c in bytes.chunks_exact(PORT_RECORD_LEN) {
            let (lo, hi) = (rd_u16(c, 0), rd_u16(c, 2));
            if lo > hi {
                return Err(ValidationError::PortRangeOrder { rule: index }.into());
            }
            if build {
                v.push((lo, hi));
            }
        }
        cur.port += count as usize;
        if let Some(slot) = pconds.get_mut(i) {
            *slot = Some(PortCond { ranges: v });
        }
    }
    let mut app = None;
    if let Some((len, first)) = rec.app {
        if first as usize != cur.app {
            return Err(DecodeError::NonCanonicalOffset {
                section: Section::Apps,
            });
        }
        validate::check_app_len(len as usize, index, totals)?;
        let start = cur.app * 2;
        let end = start + len as usize * 2;
        let bytes = apps.get(start..end).ok_or(DecodeError::ListOutOfBounds {
            section: Section::Apps,
        })?;
        if build {
            let mut v: Vec<u16> = Vec::new();
            v.try_reserve_exact(len as usize)
                .map_err(|_| DecodeError::OutOfMemory)?;
            v.extend(bytes.chunks_exact(2).map(|c| rd_u16(c, 0)));
            app = Some(AppPath(v));
        }
        cur.app += len as usize;
    }
    if !build {
        return Ok(None);
    }
    let [remote_addr, local_addr] = conds;
    let [remote_port, local_port] = pconds;
    Ok(Some(Rule {
        id: rec.id,
        action: rec.action,
        log: rec.log,
        direction: rec.direction,
        ip_version: rec.ip_version,
        protocol: rec.protocol,
        remote_addr,
        local_addr,
        remote_port,
        local_port,
        app,
        loopback: rec.loopback,
    }))
}

fn walk_set(
    rec: &[u8],
    index: u32,
    l: &Layout<'_>,
    cur: &mut Cursors,
    totals: &mut Totals,
    build: bool,
) -> Result<Option<AddressSet>, DecodeError> {
    let [_, _, addrs, _, _, names] = l.sections;
    let name_off = rd_u32(rec, 0) as usize;
    let name_len = rd_u32(rec, 4) as usize;
    let entries_off = rd_u32(rec, 8) as usize;
    let count = rd_u32(rec, 12);
    if name_off != cur.name {
        return Err(DecodeError::NonCanonicalOffset {
            section: Section::Names,
        });
    }
    validate::check_set_name(name_len, index)?;
    let name_bytes =
        names
            .get(name_off..name_off + name_len)
            .ok_or(DecodeError::ListOutOfBounds {
                section: Section::Names,
            })?;
    let name_str =
        core::str::from_utf8(name_bytes).map_err(|_| DecodeError::SetNameUtf8 { set: index })?;
    cur.name += name_len;
    if entries_off != cur.addr {
        return Err(DecodeError::NonCanonicalOffset {
            section: Section::Addrs,
        });
    }
    totals.set_entries = totals.set_entries.saturating_add(count as usize);
    if totals.set_entries > MAX_SET_ENTRIES_TOTAL {
        return Err(ValidationError::TooManySetEntries.into());
    }
    // Each record is at least 9 bytes: refuse an impossible count before reserving for it.
    if (count as usize).saturating_mul(ADDR_V4_RECORD_LEN) > addrs.len().saturating_sub(cur.addr) {
        return Err(DecodeError::ListOutOfBounds {
            section: Section::Addrs,
        });
    }
    let mut entries: Vec<AddrRange> = Vec::new();
    let mut name = String::new();
    if build {
        entries
            .try_reserve_exact(count as usize)
            .map_err(|_| DecodeError::OutOfMemory)?;
        name.try_reserve_exact(name_len)
            .map_err(|_| DecodeError::OutOfMemory)?;
        name.push_str(name_str);
    }
    let mut it = AddrIter {
        sec: addrs,
        pos: cur.addr,
        left: count,
    };
    while let Some(r) = it.next_range()? {
        if !validate::range_ordered(&r) {
            return Err(ValidationError::SetEntryOrder { set: index }.into());
        }
        if build {
            entries.push(r);
        }
    }
    cur.addr = it.pos;
    Ok(if build {
        Some(AddressSet { name, entries })
    } else {
        None
    })
}

fn walk(l: &Layout<'_>, mut out: Option<&mut Policy>) -> Result<(), DecodeError> {
    let [rules, sets, addrs, ports, apps, names] = l.sections;
    let build = out.is_some();
    let mut cur = Cursors::default();
    let mut totals = Totals::default();
    for (i, rec) in rules.chunks_exact(RULE_RECORD_LEN).enumerate() {
        let i = i as u32;
        let rr = parse_rule(rec, i)?;
        let built = walk_rule(&rr, i, l, &mut cur, &mut totals, build)?;
        if let (Some(p), Some(r)) = (out.as_deref_mut(), built) {
            p.rules.push(r);
        }
    }
    for (i, rec) in sets.chunks_exact(SET_RECORD_LEN).enumerate() {
        let built = walk_set(rec, i as u32, l, &mut cur, &mut totals, build)?;
        if let (Some(p), Some(s)) = (out.as_deref_mut(), built) {
            p.sets.push(s);
        }
    }
    for (section, used, len) in [
        (Section::Addrs, cur.addr, addrs.len()),
        (Section::Ports, cur.port * PORT_RECORD_LEN, ports.len()),
        (Section::Apps, cur.app * 2, apps.len()),
        (Section::Names, cur.name, names.len()),
    ] {
        if used != len {
            return Err(DecodeError::TrailingBytes { section });
        }
    }
    Ok(())
}

/// Decodes and fully validates a blob. Total: any input gives `Ok` or a specific
/// [`DecodeError`], never a panic; nothing is allocated until the whole blob has been checked
/// (pass 1), and every allocation of pass 2 is fallible.
pub fn decode(blob: &[u8]) -> Result<Policy, DecodeError> {
    let l = parse_header(blob)?;
    walk(&l, None)?;
    let mut p = Policy {
        rules: Vec::new(),
        sets: Vec::new(),
        default_outbound: l.default_outbound,
        default_inbound: l.default_inbound,
        log_all: l.log_all,
    };
    p.rules
        .try_reserve_exact(l.rule_count)
        .map_err(|_| DecodeError::OutOfMemory)?;
    p.sets
        .try_reserve_exact(l.set_count)
        .map_err(|_| DecodeError::OutOfMemory)?;
    walk(&l, Some(&mut p))?;
    Ok(p)
}

/// Checks a blob exactly as [`decode`] does, without building anything (no allocation).
pub fn check(blob: &[u8]) -> Result<(), DecodeError> {
    let l = parse_header(blob)?;
    walk(&l, None)
}
