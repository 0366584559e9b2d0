//! The event record: what one classification did, and its wire encoding.
//!
//! Every record starts with the same 4-byte header, little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | `size`: bytes of the whole record, header included; a multiple of 8, at least 8 |
//! | 2 | 1 | `kind`: [`KIND_CONNECTION`], [`KIND_DROPPED`]; 0 is invalid; others are skipped |
//! | 3 | 1 | `version` of that kind's layout (connection 3, dropped 1; 0 is invalid) |
//!
//! A reader walks a buffer record by record using `size` alone, so it can
//! skip kinds it does not know. A newer version of a kind only appends
//! fields: a reader decodes the fields it knows from any version at least
//! its own, as long as `size` covers them. The full tables are in
//! `docs/events.md`.
//!
//! This module holds the types and the encoder; its child is the decoder:
//! - `decode` (`record/decode.rs`): [`decode`], [`decode_one`], [`Records`], [`DecodeError`].

use core::fmt;

mod decode;
pub use decode::{decode, decode_one, DecodeError, Records};

/// Record kind: one ALE authorization ([`Event`]).
pub const KIND_CONNECTION: u8 = 1;
/// Record kind: events were lost because the ring was full ([`Record::Dropped`]).
pub const KIND_DROPPED: u8 = 2;
/// Layout version this crate writes for dropped-events records (and the
/// first version of every kind).
pub const VERSION: u8 = 1;
/// Layout version this crate writes for connection records. Version 2:
/// version 1 plus the user's SID (`user_len` at offset 38, the SID after
/// the path). Version 3: version 2 plus the generation of the policy that
/// decided and the deciding rule's index in it (12 bytes after the SID), so
/// a reader names the rule from the right policy (ids need not be unique).
/// Versions 1 and 2 still decode (no user; generation 0, no index).
pub const CONNECTION_VERSION: u8 = 3;

/// Size of the common header.
pub const HEADER_SIZE: usize = 4;
/// Records are padded to a multiple of this.
pub const RECORD_ALIGN: usize = 8;
/// Bytes of a connection record before the path.
pub const CONNECTION_FIXED_SIZE: usize = 72;
/// Longest process image path kept, in UTF-16 code units (the Win32
/// `MAX_PATH`); longer paths keep their first units and set the truncated
/// flag.
pub const MAX_PATH_UNITS: usize = 260;
/// Largest SID kept: revision, count, authority and 15 sub-authorities
/// (`SID_MAX_SUB_AUTHORITIES`), 68 bytes.
pub const MAX_SID_BYTES: usize = 8 + 4 * 15;
/// Bytes that end a version-3 connection record: the policy generation
/// (`u64`) and the rule index (`u32`).
pub const TRAILER_SIZE: usize = 12;
/// Largest connection record (a path of [`MAX_PATH_UNITS`] units, a SID
/// of [`MAX_SID_BYTES`] and the 12-byte trailer: policy generation, rule
/// index): 672 bytes.
pub const MAX_CONNECTION_SIZE: usize =
    round_up(CONNECTION_FIXED_SIZE + 2 * MAX_PATH_UNITS + MAX_SID_BYTES + TRAILER_SIZE);
/// Size of a dropped-events record.
pub const DROPPED_SIZE: usize = 16;
/// The smallest output buffer a read must offer: one drop marker plus the
/// largest connection record, so any read can make progress without losing
/// an event.
pub const MIN_READ_BUFFER: usize = DROPPED_SIZE + MAX_CONNECTION_SIZE;

/// Connection record flag bits (offset 4).
pub mod flags {
    /// `process_id` is valid.
    pub const PROCESS_ID: u16 = 0x0001;
    /// `rule_id` is valid; otherwise the default action decided.
    pub const RULE: u16 = 0x0002;
    /// The classification was a reauthorization (`FWP_CONDITION_FLAG_IS_REAUTHORIZE`).
    pub const REAUTHORIZATION: u16 = 0x0004;
    /// A process image path follows.
    pub const PATH: u16 = 0x0008;
    /// The path was longer than [`super::MAX_PATH_UNITS`] and was cut.
    pub const PATH_TRUNCATED: u16 = 0x0010;
    /// Addresses, ports and protocol are valid (the layer supplied every
    /// field with its documented type).
    pub const TUPLE: u16 = 0x0020;
    /// `rule_index` is valid (version 3; only together with [`RULE`]: the
    /// encoder sets it when the event has both a rule id and an index, the
    /// decoder reads the index only when both bits are set; clear in a
    /// record re-encoded from version 1 or 2, which had no index).
    pub const RULE_INDEX: u16 = 0x0040;
    /// Every bit this version defines.
    pub const KNOWN: u16 = PROCESS_ID | RULE | REAUTHORIZATION | PATH | PATH_TRUNCATED | TUPLE | RULE_INDEX;
}

const fn round_up(n: usize) -> usize {
    n.div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// Direction of the connection (`FWP_DIRECTION` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// ALE connect layers.
    Outbound = 0,
    /// ALE receive/accept layers.
    Inbound = 1,
}

/// IP version of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    V4 = 4,
    V6 = 6,
}

/// What Weir did with the classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Weir set `FWP_ACTION_PERMIT`.
    Permit = 1,
    /// Weir set `FWP_ACTION_BLOCK`.
    Block = 2,
    /// The write right (`FWPS_RIGHT_ACTION_WRITE`) was absent: a
    /// higher-weight filter had decided, Weir left the action alone.
    WriteRightAbsent = 3,
}

/// A process image path: UTF-16 code units of the NT path as WFP reports it
/// (`\device\harddiskvolume3\windows\system32\svchost.exe`), without the
/// trailing NUL, at most [`MAX_PATH_UNITS`] units.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AppPath {
    units: [u16; MAX_PATH_UNITS],
    len: u16,
    truncated: bool,
}

impl Default for AppPath {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl AppPath {
    /// No path.
    pub const EMPTY: Self = Self { units: [0; MAX_PATH_UNITS], len: 0, truncated: false };

    /// From UTF-16 code units; one trailing NUL is dropped, and more than
    /// [`MAX_PATH_UNITS`] units are cut (setting [`AppPath::truncated`]).
    pub fn from_units(units: &[u16]) -> Self {
        let units = match units.split_last() {
            Some((0, rest)) => rest,
            _ => units,
        };
        Self::from_unit_iter(units.iter().copied(), units.len())
    }

    /// From UTF-16LE bytes as WFP stores them in an `FWP_BYTE_BLOB`
    /// (`ALE_APP_ID`, process-path metadata): one trailing NUL unit is
    /// dropped, an odd last byte ignored, more than [`MAX_PATH_UNITS`] units
    /// cut.
    pub fn from_utf16le_bytes(bytes: &[u8]) -> Self {
        let mut units = bytes.chunks_exact(2);
        let mut n = units.len();
        if units.next_back().is_some_and(|c| c == [0, 0]) {
            n -= 1;
        }
        let iter = bytes.chunks_exact(2).take(n).map(|c| u16::from_le_bytes([c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)]));
        Self::from_unit_iter(iter, n)
    }

    fn from_unit_iter(units: impl Iterator<Item = u16>, total: usize) -> Self {
        let mut path = Self::EMPTY;
        let mut len = 0usize;
        for (dst, unit) in path.units.iter_mut().zip(units) {
            *dst = unit;
            len += 1;
        }
        // len <= MAX_PATH_UNITS < u16::MAX.
        path.len = u16::try_from(len).unwrap_or(0);
        path.truncated = total > MAX_PATH_UNITS;
        path
    }

    /// The code units kept.
    pub fn units(&self) -> &[u16] {
        self.units.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Whether the original path was longer than what is kept.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0 && !self.truncated
    }
}

impl fmt::Debug for AppPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"")?;
        for c in char::decode_utf16(self.units().iter().copied()) {
            write!(f, "{}", c.unwrap_or(char::REPLACEMENT_CHARACTER).escape_debug())?;
        }
        write!(f, "\"{}", if self.truncated { "..." } else { "" })
    }
}

/// The user's SID in binary form (`SID`: revision 1, sub-authority count,
/// 6-byte authority, 32-bit sub-authorities), from the ALE layer's
/// `ALE_USER_ID` token information. Empty when the layer supplied none.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UserSid {
    bytes: [u8; MAX_SID_BYTES],
    len: u8,
}

impl Default for UserSid {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl UserSid {
    /// No user.
    pub const EMPTY: Self = Self { bytes: [0; MAX_SID_BYTES], len: 0 };

    /// A well-formed SID (revision 1, at most 15 sub-authorities, exactly
    /// as long as its count says), or [`UserSid::EMPTY`] for anything else.
    pub fn from_bytes(sid: &[u8]) -> Self {
        let well_formed = sid.first() == Some(&1)
            && sid.get(1).is_some_and(|&n| n <= 15 && sid.len() == 8 + 4 * usize::from(n));
        let mut user = Self::EMPTY;
        match user.bytes.get_mut(..sid.len()) {
            Some(dst) if well_formed => {
                dst.copy_from_slice(sid);
                // sid.len() <= MAX_SID_BYTES (68) fits in u8.
                user.len = u8::try_from(sid.len()).unwrap_or(0);
            }
            _ => {}
        }
        user
    }

    /// The SID's bytes (empty when there is none).
    pub fn bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// No user.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The SID as users read it (`S-1-5-21-...-1001`), written to `f`;
    /// nothing for an empty one.
    pub fn write_text(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let b = self.bytes();
        let (Some(rev), Some(authority)) = (b.first(), b.get(2..8)) else { return Ok(()) };
        let authority = authority.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x));
        write!(f, "S-{rev}-{authority}")?;
        for sub in b.get(8..).unwrap_or(&[]).chunks_exact(4) {
            let v = u32::from_le_bytes([sub.first().copied().unwrap_or(0), sub.get(1).copied().unwrap_or(0), sub.get(2).copied().unwrap_or(0), sub.get(3).copied().unwrap_or(0)]);
            write!(f, "-{v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for UserSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            write!(f, "-")
        } else {
            self.write_text(f)
        }
    }
}

/// One ALE authorization, as recorded by classifyFn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// System time (`KeQuerySystemTimePrecise`): 100 ns intervals since
    /// 1601-01-01 UTC.
    pub time: u64,
    /// Run-time layer id (`FWPS_LAYER_ALE_AUTH_CONNECT_V4` = 48, ...).
    pub layer_id: u16,
    pub direction: Direction,
    pub ip_version: IpVersion,
    /// The tuple below is valid (see [`flags::TUPLE`]).
    pub tuple: bool,
    /// IANA protocol number (6 TCP, 17 UDP, ...).
    pub protocol: u8,
    /// Network byte order; an IPv4 address fills the first 4 bytes, the rest
    /// is zero.
    pub local_addr: [u8; 16],
    pub local_port: u16,
    pub remote_addr: [u8; 16],
    pub remote_port: u16,
    /// `FWPS_METADATA_FIELD_PROCESS_ID`, when the layer supplied it.
    pub process_id: Option<u64>,
    /// `FWPS_FIELD_ALE_*_ALE_APP_ID` or the process-path metadata.
    pub path: AppPath,
    pub decision: Decision,
    /// The policy rule that decided; `None` = the default action.
    pub rule_id: Option<u32>,
    pub reauthorization: bool,
    /// `FWPS_FIELD_ALE_*_ALE_USER_ID`'s user SID, when the layer supplied it
    /// (record version 2).
    pub user: UserSid,
    /// Generation of the policy that decided (`GET_POLICY_STATUS`'s
    /// `generation`); 0 when no policy was set, the write right was absent,
    /// or the record is older than version 3 (record version 3).
    pub policy_generation: u64,
    /// The deciding rule's index in that policy (its position in the
    /// policy file, disabled rules counted); the driver sets it exactly
    /// when `rule_id` is set ([`flags::RULE_INDEX`], record version 3).
    pub rule_index: Option<u32>,
}

impl Event {
    /// Bytes [`encode_event`] writes for this event.
    pub fn encoded_len(&self) -> usize {
        round_up(CONNECTION_FIXED_SIZE + 2 * self.path.units().len() + self.user.bytes().len() + TRAILER_SIZE)
    }

    fn flag_bits(&self) -> u16 {
        let mut f = 0;
        let mut set = |cond: bool, bit: u16| {
            if cond {
                f |= bit;
            }
        };
        set(self.process_id.is_some(), flags::PROCESS_ID);
        set(self.rule_id.is_some(), flags::RULE);
        set(self.rule_id.is_some() && self.rule_index.is_some(), flags::RULE_INDEX);
        set(self.reauthorization, flags::REAUTHORIZATION);
        set(!self.path.is_empty(), flags::PATH);
        set(self.path.truncated(), flags::PATH_TRUNCATED);
        set(self.tuple, flags::TUPLE);
        f
    }
}

/// One decoded record.
// The connection variant is large (it carries the path inline); the
// decoder stays allocation-free, so it is not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    Connection(Event),
    /// `count` events were lost by this reader since its previous marker.
    Dropped { count: u64 },
    /// A kind this reader does not know; skipped by `size`.
    Unknown { kind: u8, version: u8, size: usize },
}

/// The output buffer cannot hold the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall {
    /// Bytes the record needs.
    pub needed: usize,
}

struct Writer<'a> {
    out: &'a mut [u8],
}

impl Writer<'_> {
    fn put(&mut self, offset: usize, bytes: &[u8]) {
        if let Some(dst) = self.out.get_mut(offset..offset.saturating_add(bytes.len())) {
            dst.copy_from_slice(bytes);
        }
    }
}

/// Writes `event` as a connection record at the start of `out`; returns the
/// bytes written ([`Event::encoded_len`]). Padding bytes are zeroed.
pub fn encode_event(event: &Event, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let size = event.encoded_len();
    let out = out.get_mut(..size).ok_or(BufferTooSmall { needed: size })?;
    out.fill(0);
    let mut w = Writer { out };
    let path = event.path.units();
    // size <= MAX_CONNECTION_SIZE and path.len() <= MAX_PATH_UNITS fit in u16.
    w.put(0, &u16::try_from(size).unwrap_or(0).to_le_bytes());
    w.put(2, &[KIND_CONNECTION, CONNECTION_VERSION]);
    w.put(4, &event.flag_bits().to_le_bytes());
    w.put(6, &event.layer_id.to_le_bytes());
    w.put(8, &event.time.to_le_bytes());
    w.put(16, &event.process_id.unwrap_or(0).to_le_bytes());
    w.put(24, &event.rule_id.unwrap_or(0).to_le_bytes());
    w.put(28, &[event.direction as u8, event.ip_version as u8, event.protocol, event.decision as u8]);
    w.put(32, &event.local_port.to_le_bytes());
    w.put(34, &event.remote_port.to_le_bytes());
    w.put(36, &u16::try_from(path.len()).unwrap_or(0).to_le_bytes());
    let user = event.user.bytes();
    // At most MAX_SID_BYTES (68).
    w.put(38, &[u8::try_from(user.len()).unwrap_or(0)]);
    w.put(40, &event.local_addr);
    w.put(56, &event.remote_addr);
    if let Some(dst) = w.out.get_mut(CONNECTION_FIXED_SIZE..) {
        for (pair, unit) in dst.chunks_exact_mut(2).zip(path) {
            pair.copy_from_slice(&unit.to_le_bytes());
        }
    }
    w.put(CONNECTION_FIXED_SIZE + 2 * path.len(), user);
    let trailer = CONNECTION_FIXED_SIZE + 2 * path.len() + user.len();
    w.put(trailer, &event.policy_generation.to_le_bytes());
    w.put(trailer + 8, &event.rule_index.unwrap_or(0).to_le_bytes());
    Ok(size)
}

/// Writes a dropped-events marker (`count` events lost) at the start of
/// `out`; returns [`DROPPED_SIZE`].
pub fn encode_dropped(count: u64, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let out = out.get_mut(..DROPPED_SIZE).ok_or(BufferTooSmall { needed: DROPPED_SIZE })?;
    out.fill(0);
    let mut w = Writer { out };
    // DROPPED_SIZE is 16.
    w.put(0, &u16::try_from(DROPPED_SIZE).unwrap_or(0).to_le_bytes());
    w.put(2, &[KIND_DROPPED, VERSION]);
    w.put(8, &count.to_le_bytes());
    Ok(DROPPED_SIZE)
}
