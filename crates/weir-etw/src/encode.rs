//! The TraceLogging encoding of one event into fixed buffers.
//!
//! A TraceLogging event is written with three data blocks (the layout
//! TraceLoggingProvider.h produces and TDH decodes):
//!
//! 1. the provider's metadata ([`crate::provider::METADATA`]): `u16` size,
//!    the provider name, NUL;
//! 2. the event's metadata: `u16` size (of this whole block), one tag byte
//!    (0: no event tag), the event name, NUL, then per field: its name, NUL,
//!    the in-type byte and, when the out-type is not the default, the in-type
//!    with bit 0x80 set followed by the out-type byte;
//! 3. the payload: the field values in order, little-endian, strings as
//!    the in-type says (counted strings and counted binary carry a `u16`
//!    byte count first).
//!
//! [`Builder`] writes blocks 2 and 3 into arrays it owns, so it needs no
//! allocation and works at any IRQL: an event that does not fit is cut at
//! the last whole field and marked [`Builder::truncated`] (its metadata
//! and payload stay consistent, so it still decodes). The level and
//! keyword travel in the EVENT_DESCRIPTOR, not in these blocks
//! ([`Descriptor`]).
//!
//! `tests/differential.rs` checks these bytes against Microsoft's
//! `tracelogging_dynamic::EventBuilder` for every Weir event.

/// TraceLogging in-types (`TlgIn_t`, TraceLoggingProvider.h).
pub mod in_type {
    /// NUL-terminated UTF-16 string.
    pub const CSTR16: u8 = 1;
    /// NUL-terminated 8-bit string.
    pub const CSTR8: u8 = 2;
    /// `u8`.
    pub const U8: u8 = 4;
    /// `u16`.
    pub const U16: u8 = 6;
    /// `i32`.
    pub const I32: u8 = 7;
    /// `u32`.
    pub const U32: u8 = 8;
    /// `u64`.
    pub const U64: u8 = 10;
    /// A 32-bit boolean.
    pub const BOOL32: u8 = 13;
    /// Counted binary (`u16` byte count, then the bytes).
    pub const BINARY: u8 = 14;
    /// A GUID in its in-memory (mixed-endian) order.
    pub const GUID: u8 = 15;
    /// `u32` shown as hexadecimal.
    pub const HEX32: u8 = 20;
    /// `u64` shown as hexadecimal.
    pub const HEX64: u8 = 21;
    /// Counted UTF-16 string (`u16` byte count, then the units, no NUL).
    pub const STR16: u8 = 22;
    /// Counted 8-bit string (`u16` byte count, then the bytes, no NUL).
    pub const STR8: u8 = 23;
}

/// TraceLogging out-types (`TlgOut_t`): how a decoder shows a value.
pub mod out_type {
    /// The in-type's own format (encoded by leaving the out-type out).
    pub const DEFAULT: u8 = 0;
    /// A process id.
    pub const PID: u8 = 5;
    /// A `u16` in network byte order, shown as a port number.
    pub const PORT: u8 = 7;
    /// An NTSTATUS.
    pub const NTSTATUS: u8 = 14;
    /// 8-bit strings are UTF-8 (`TlgOutUTF8`).
    pub const UTF8: u8 = 35;
}

/// ETW levels (`TRACE_LEVEL_*`, evntrace.h).
pub mod level {
    /// Errors.
    pub const ERROR: u8 = 2;
    /// Warnings.
    pub const WARNING: u8 = 3;
    /// Informational.
    pub const INFORMATION: u8 = 4;
    /// Verbose.
    pub const VERBOSE: u8 = 5;
}

/// The channel TraceLogging events carry in their descriptor
/// (`WINEVENT_CHANNEL_TRACELOGGING`): it tells ETW the event has
/// TraceLogging metadata.
pub const CHANNEL_TRACELOGGING: u8 = 11;

/// The EVENT_DESCRIPTOR fields a TraceLogging event sets: id and version
/// 0, channel 11, opcode 0 (info), task 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// `TRACE_LEVEL_*`.
    pub level: u8,
    /// The provider's keyword bits.
    pub keyword: u64,
}

/// Capacity of an event's metadata block.
pub const META_CAPACITY: usize = 384;
/// Capacity of an event's payload block: the largest Weir event (a
/// connection with a 260-unit path, two text addresses, a SID and a
/// 255-byte rule name) fits.
pub const DATA_CAPACITY: usize = 1152;

/// One event being encoded. Lives on the stack of whoever writes it
/// (~1.5 KB), so callers keep it out of hot frames (`#[inline(never)]`).
pub struct Builder {
    descriptor: Descriptor,
    meta: [u8; META_CAPACITY],
    meta_len: usize,
    data: [u8; DATA_CAPACITY],
    data_len: usize,
    truncated: bool,
}

impl Builder {
    /// Starts an event named `name` (no NUL inside; cut to fit). Inlined
    /// so the ~1.3 KB value is built in its final place, not copied.
    #[inline(always)]
    pub fn new(name: &str, level: u8, keyword: u64) -> Self {
        let mut b = Self {
            descriptor: Descriptor { level, keyword },
            meta: [0; META_CAPACITY],
            // u16 size (patched by `metadata`), tag byte 0.
            meta_len: 3,
            data: [0; DATA_CAPACITY],
            data_len: 0,
            truncated: false,
        };
        let room = META_CAPACITY - 3 - 1;
        let name = cut(name.as_bytes(), room);
        b.push_meta(name);
        b.push_meta(&[0]);
        b
    }

    /// The descriptor's level and keyword.
    pub fn descriptor(&self) -> Descriptor {
        self.descriptor
    }

    /// The event metadata block, its size field filled in.
    pub fn metadata(&mut self) -> &[u8] {
        let size = u16::try_from(self.meta_len).unwrap_or(u16::MAX).to_le_bytes();
        if let Some(head) = self.meta.get_mut(..2) {
            head.copy_from_slice(&size);
        }
        self.meta.get(..self.meta_len).unwrap_or(&[])
    }

    /// The payload block.
    pub fn payload(&self) -> &[u8] {
        self.data.get(..self.data_len).unwrap_or(&[])
    }

    /// Whether a field was left out for lack of room.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Adds one field's metadata and value if both fit; otherwise nothing
    /// and marks the event truncated. `value` is written by `write` into
    /// exactly `len` bytes.
    fn field(&mut self, name: &str, in_type: u8, out_type: u8, len: usize, write: impl FnOnce(&mut [u8])) -> &mut Self {
        let meta_len = name.len() + 1 + if out_type == out_type::DEFAULT { 1 } else { 2 };
        let fits_meta = self.meta_len + meta_len <= META_CAPACITY && !name.as_bytes().contains(&0);
        let fits_data = self.data_len + len <= DATA_CAPACITY;
        if self.truncated || !fits_meta || !fits_data {
            self.truncated = true;
            return self;
        }
        self.push_meta(name.as_bytes());
        if out_type == out_type::DEFAULT {
            self.push_meta(&[0, in_type]);
        } else {
            self.push_meta(&[0, in_type | 0x80, out_type]);
        }
        if let Some(dst) = self.data.get_mut(self.data_len..self.data_len + len) {
            write(dst);
        }
        self.data_len += len;
        self
    }

    fn push_meta(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.meta.get_mut(self.meta_len..self.meta_len + bytes.len()) {
            dst.copy_from_slice(bytes);
            self.meta_len += bytes.len();
        }
    }

    fn scalar<const N: usize>(&mut self, name: &str, in_type: u8, out_type: u8, value: [u8; N]) -> &mut Self {
        self.field(name, in_type, out_type, N, |d| d.copy_from_slice(&value))
    }

    /// A `u8` field.
    pub fn u8(&mut self, name: &str, value: u8) -> &mut Self {
        self.scalar(name, in_type::U8, out_type::DEFAULT, [value])
    }

    /// A `u16` field.
    pub fn u16(&mut self, name: &str, value: u16) -> &mut Self {
        self.scalar(name, in_type::U16, out_type::DEFAULT, value.to_le_bytes())
    }

    /// A port: stored in network byte order, shown as a number by decoders.
    pub fn port(&mut self, name: &str, port: u16) -> &mut Self {
        self.scalar(name, in_type::U16, out_type::PORT, port.to_be_bytes())
    }

    /// A `u32` field.
    pub fn u32(&mut self, name: &str, value: u32) -> &mut Self {
        self.scalar(name, in_type::U32, out_type::DEFAULT, value.to_le_bytes())
    }

    /// A process id (`u32`, out-type PID).
    pub fn pid(&mut self, name: &str, value: u32) -> &mut Self {
        self.scalar(name, in_type::U32, out_type::PID, value.to_le_bytes())
    }

    /// An NTSTATUS (`u32`, out-type NTSTATUS).
    pub fn ntstatus(&mut self, name: &str, value: u32) -> &mut Self {
        self.scalar(name, in_type::U32, out_type::NTSTATUS, value.to_le_bytes())
    }

    /// A `u64` field.
    pub fn u64(&mut self, name: &str, value: u64) -> &mut Self {
        self.scalar(name, in_type::U64, out_type::DEFAULT, value.to_le_bytes())
    }

    /// A `u64` shown as hexadecimal.
    pub fn hex64(&mut self, name: &str, value: u64) -> &mut Self {
        self.scalar(name, in_type::HEX64, out_type::DEFAULT, value.to_le_bytes())
    }

    /// A 32-bit boolean.
    pub fn bool32(&mut self, name: &str, value: bool) -> &mut Self {
        self.scalar(name, in_type::BOOL32, out_type::DEFAULT, i32::from(value).to_le_bytes())
    }

    /// A counted UTF-8 string, cut to what fits (at a character boundary).
    pub fn str8(&mut self, name: &str, value: &str) -> &mut Self {
        let room = self.room_for_counted(name);
        let mut take = value.len().min(room).min(usize::from(u16::MAX));
        while !value.is_char_boundary(take) {
            take -= 1;
        }
        let bytes = value.as_bytes().get(..take).unwrap_or(&[]);
        self.counted(name, in_type::STR8, out_type::UTF8, bytes, 1)
    }

    /// A counted UTF-16 string given as little-endian bytes (two per unit),
    /// cut to what fits.
    pub fn str16_le(&mut self, name: &str, units_le: &[u8]) -> &mut Self {
        let room = self.room_for_counted(name) & !1;
        let take = (units_le.len() & !1).min(room).min(usize::from(u16::MAX) & !1);
        let bytes = units_le.get(..take).unwrap_or(&[]);
        self.counted(name, in_type::STR16, out_type::DEFAULT, bytes, 2)
    }

    /// A counted UTF-16 string from code units, cut to what fits (written
    /// little-endian straight into the payload: no copy on the caller's
    /// stack).
    pub fn str16(&mut self, name: &str, units: &[u16]) -> &mut Self {
        let room = self.room_for_counted(name) / 2;
        let take = units.len().min(room).min(usize::from(u16::MAX) / 2);
        let units = units.get(..take).unwrap_or(&[]);
        let prefix = u16::try_from(2 * take).unwrap_or(u16::MAX).to_le_bytes();
        self.field(name, in_type::STR16, out_type::DEFAULT, 2 + 2 * take, |d| {
            let (head, tail) = d.split_at_mut(2);
            head.copy_from_slice(&prefix);
            for (dst, unit) in tail.chunks_exact_mut(2).zip(units) {
                dst.copy_from_slice(&unit.to_le_bytes());
            }
        })
    }

    /// Counted binary, cut to what fits.
    pub fn binary(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let room = self.room_for_counted(name);
        let bytes = value.get(..value.len().min(room).min(usize::from(u16::MAX))).unwrap_or(&[]);
        self.counted(name, in_type::BINARY, out_type::DEFAULT, bytes, 1)
    }

    /// Payload bytes left for a counted field's content (after its prefix).
    fn room_for_counted(&self, _name: &str) -> usize {
        DATA_CAPACITY.saturating_sub(self.data_len).saturating_sub(2)
    }

    fn counted(&mut self, name: &str, in_type: u8, out_type: u8, bytes: &[u8], _unit: usize) -> &mut Self {
        let prefix = u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_le_bytes();
        self.field(name, in_type, out_type, 2 + bytes.len(), |d| {
            let (head, tail) = d.split_at_mut(2);
            head.copy_from_slice(&prefix);
            tail.copy_from_slice(bytes);
        })
    }
}

/// The first `max` bytes of `s` (all of it if shorter), without NULs
/// after the first.
fn cut(s: &[u8], max: usize) -> &[u8] {
    let s = s.get(..s.len().min(max)).unwrap_or(&[]);
    match s.iter().position(|b| *b == 0) {
        Some(nul) => s.get(..nul).unwrap_or(&[]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_size_counts_the_whole_block() {
        let mut b = Builder::new("E", level::INFORMATION, 1);
        b.u32("A", 7);
        let meta = b.metadata().to_vec();
        assert_eq!(usize::from(u16::from_le_bytes([meta[0], meta[1]])), meta.len());
        assert_eq!(&meta[2..], b"\0E\0A\0\x08");
        assert_eq!(b.payload(), &7u32.to_le_bytes());
    }

    #[test]
    fn a_field_that_does_not_fit_is_left_out_whole_and_flagged() {
        let mut b = Builder::new("E", level::INFORMATION, 1);
        b.binary("Big", &[0xAB; DATA_CAPACITY]);
        assert!(!b.truncated(), "binary is cut to the room left, not refused");
        assert_eq!(b.payload().len(), DATA_CAPACITY);
        b.u32("After", 1);
        assert!(b.truncated());
        assert_eq!(b.payload().len(), DATA_CAPACITY);
        let meta = b.metadata();
        assert!(!meta.windows(6).any(|w| w == b"After\0"), "metadata of a left-out field must not be written");
    }

    #[test]
    fn str8_is_cut_at_a_character_boundary() {
        let mut b = Builder::new("E", level::INFORMATION, 1);
        b.binary("Fill", &[0; DATA_CAPACITY - 2 - 2 - 3]);
        b.str8("S", "aé€");
        let p = b.payload();
        let tail = &p[p.len() - 3..];
        // Room for 3 bytes: "a" + "é" (2 bytes); "€" (3 bytes) is dropped.
        assert_eq!(u16::from_le_bytes([p[p.len() - 5], p[p.len() - 4]]), 3);
        assert_eq!(tail, "aé".as_bytes());
    }

    #[test]
    fn names_with_nul_are_refused_not_corrupting() {
        let mut b = Builder::new("E\0vil", level::INFORMATION, 1);
        b.u8("x\0y", 1);
        assert!(b.truncated());
        assert_eq!(&b.metadata()[2..], b"\0E\0");
    }
}
