//! The decoder: a READ_EVENTS reply's bytes to [`Record`]s, total (any input gives records
//! or one [`DecodeError`], never a panic; fuzzed by `fuzz/fuzz_targets/decode.rs`).

use super::{
    flags, AppPath, Decision, Direction, Event, IpVersion, Record, UserSid, CONNECTION_FIXED_SIZE, DROPPED_SIZE,
    HEADER_SIZE, KIND_CONNECTION, KIND_DROPPED, RECORD_ALIGN, TRAILER_SIZE,
};
use core::fmt;

/// Why bytes are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes left than the header or the record's `size` says.
    Truncated { offset: usize, needed: usize, available: usize },
    /// `size` below the header, below the kind's fixed part, or not a
    /// multiple of 8.
    BadSize { offset: usize, size: usize },
    /// Kind 0 (never written; zeroed memory is not a record).
    BadKind { offset: usize },
    /// Version 0 of a known kind.
    BadVersion { offset: usize, kind: u8 },
    /// A field outside its defined values (direction, IP version, decision,
    /// path length beyond `size`).
    BadField { offset: usize, field: &'static str, value: u64 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { offset, needed, available } => {
                write!(f, "record at byte {offset}: needs {needed} bytes, {available} left")
            }
            Self::BadSize { offset, size } => write!(f, "record at byte {offset}: invalid size {size}"),
            Self::BadKind { offset } => write!(f, "record at byte {offset}: kind 0 is not a record"),
            Self::BadVersion { offset, kind } => write!(f, "record at byte {offset}: kind {kind} with version 0"),
            Self::BadField { offset, field, value } => {
                write!(f, "record at byte {offset}: field {field} has invalid value {value}")
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn array<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut a = [0u8; N];
        if let Some(src) = self.bytes.get(offset..offset.saturating_add(N)) {
            a.copy_from_slice(src);
        }
        a
    }
    fn u8(&self, offset: usize) -> u8 {
        self.bytes.get(offset).copied().unwrap_or(0)
    }
    fn u16(&self, offset: usize) -> u16 {
        u16::from_le_bytes(self.array(offset))
    }
    fn u32(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.array(offset))
    }
    fn u64(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.array(offset))
    }
}

/// Decodes the record at the start of `bytes` (which starts at `offset` of
/// the caller's buffer, for error messages). Returns the record and its
/// size. Total: any input gives a record or an error.
pub fn decode_one(bytes: &[u8], offset: usize) -> Result<(Record, usize), DecodeError> {
    if bytes.len() < HEADER_SIZE {
        return Err(DecodeError::Truncated { offset, needed: HEADER_SIZE, available: bytes.len() });
    }
    let head = Reader { bytes };
    let size = usize::from(head.u16(0));
    let (kind, version) = (head.u8(2), head.u8(3));
    if size < RECORD_ALIGN || size % RECORD_ALIGN != 0 {
        return Err(DecodeError::BadSize { offset, size });
    }
    let Some(rec) = bytes.get(..size) else {
        return Err(DecodeError::Truncated { offset, needed: size, available: bytes.len() });
    };
    let r = Reader { bytes: rec };
    let record = match kind {
        0 => return Err(DecodeError::BadKind { offset }),
        KIND_CONNECTION | KIND_DROPPED if version == 0 => return Err(DecodeError::BadVersion { offset, kind }),
        KIND_DROPPED => {
            if size < DROPPED_SIZE {
                return Err(DecodeError::BadSize { offset, size });
            }
            Record::Dropped { count: r.u64(8) }
        }
        KIND_CONNECTION => Record::Connection(decode_connection(&r, offset, size)?),
        _ => Record::Unknown { kind, version, size },
    };
    Ok((record, size))
}

fn decode_connection(r: &Reader<'_>, offset: usize, size: usize) -> Result<Event, DecodeError> {
    if size < CONNECTION_FIXED_SIZE {
        return Err(DecodeError::BadSize { offset, size });
    }
    let bad = |field: &'static str, value: u8| DecodeError::BadField { offset, field, value: u64::from(value) };
    let f = r.u16(4);
    let direction = match r.u8(28) {
        0 => Direction::Outbound,
        1 => Direction::Inbound,
        v => return Err(bad("direction", v)),
    };
    let ip_version = match r.u8(29) {
        4 => IpVersion::V4,
        6 => IpVersion::V6,
        v => return Err(bad("ip_version", v)),
    };
    let decision = match r.u8(31) {
        1 => Decision::Permit,
        2 => Decision::Block,
        3 => Decision::WriteRightAbsent,
        v => return Err(bad("decision", v)),
    };
    let path_units = usize::from(r.u16(36));
    if CONNECTION_FIXED_SIZE + 2 * path_units > size {
        return Err(DecodeError::BadField { offset, field: "path_units", value: path_units as u64 });
    }
    let path_bytes = r.bytes.get(CONNECTION_FIXED_SIZE..CONNECTION_FIXED_SIZE + 2 * path_units).unwrap_or(&[]);
    let mut path = AppPath::from_unit_iter(
        path_bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)])),
        path_units,
    );
    // A writer with a longer limit may send more units than this reader
    // keeps; either way the flag is the union of both cuts.
    path.truncated |= f & flags::PATH_TRUNCATED != 0;
    // Version 2: the user's SID after the path (offset 38 was reserved, 0,
    // in version 1, so a version-1 record has no user).
    let user_len = if r.u8(3) >= 2 { usize::from(r.u8(38)) } else { 0 };
    let user_at = CONNECTION_FIXED_SIZE + 2 * path_units;
    let user = match r.bytes.get(user_at..user_at + user_len) {
        Some(sid) if user_at + user_len <= size => {
            let user = UserSid::from_bytes(sid);
            if user.is_empty() && user_len > 0 {
                return Err(DecodeError::BadField { offset, field: "user_len", value: user_len as u64 });
            }
            user
        }
        _ => return Err(DecodeError::BadField { offset, field: "user_len", value: user_len as u64 }),
    };
    // Version 3: the policy generation and the rule index after the SID.
    let trailer = user_at + user_len;
    let (policy_generation, rule_index) = if r.u8(3) >= 3 {
        if trailer + TRAILER_SIZE > size {
            return Err(DecodeError::BadSize { offset, size });
        }
        let indexed = f & (flags::RULE | flags::RULE_INDEX) == flags::RULE | flags::RULE_INDEX;
        (r.u64(trailer), indexed.then(|| r.u32(trailer + 8)))
    } else {
        (0, None)
    };
    Ok(Event {
        time: r.u64(8),
        layer_id: r.u16(6),
        direction,
        ip_version,
        tuple: f & flags::TUPLE != 0,
        protocol: r.u8(30),
        local_addr: r.array(40),
        local_port: r.u16(32),
        remote_addr: r.array(56),
        remote_port: r.u16(34),
        process_id: (f & flags::PROCESS_ID != 0).then(|| r.u64(16)),
        path,
        decision,
        rule_id: (f & flags::RULE != 0).then(|| r.u32(24)),
        reauthorization: f & flags::REAUTHORIZATION != 0,
        user,
        policy_generation,
        rule_index,
    })
}

/// Iterates over the records of a READ_EVENTS reply. Yields each record,
/// or one error after which it stops.
pub fn decode(bytes: &[u8]) -> Records<'_> {
    Records { bytes, offset: 0, failed: false }
}

/// Iterator returned by [`decode`].
pub struct Records<'a> {
    bytes: &'a [u8],
    offset: usize,
    failed: bool,
}

impl Iterator for Records<'_> {
    type Item = Result<Record, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.bytes.get(self.offset..)?;
        if rest.is_empty() {
            return None;
        }
        match decode_one(rest, self.offset) {
            Ok((record, size)) => {
                self.offset += size;
                Some(Ok(record))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
