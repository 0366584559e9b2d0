//! The `FailClosedAllow` value's bytes to an [`AllowList`].
//!
//! The value is REG_MULTI_SZ: UTF-16LE strings, each ended by a NUL unit,
//! the list by an empty string. The parser is total over any bytes: it
//! reads 2-byte units with `chunks_exact`, keeps at most
//! [`MAX_ENTRY_UNITS`] units of an entry in a stack buffer, and never
//! indexes. Every string is looked at (an empty one is skipped, not taken
//! as the end, so nothing written to the value is silently ignored):
//!
//! - empty or blank: skipped;
//! - first non-blank character `#`: a comment, skipped (any length, any
//!   characters);
//! - anything else: an entry ([`Entry::parse`]).
//!
//! A list is refused whole ([`Parsed::error`], with an empty
//! [`Parsed::list`]) when the value is over [`MAX_VALUE_BYTES`] or not
//! whole UTF-16 units, when any entry is bad, or when it holds more than
//! [`MAX_ENTRIES`] entries: half a list is a state nobody wrote, and the
//! fixed permits stay either way.

use crate::entry::{Entry, EntryError};
use crate::{MAX_ENTRIES, MAX_ENTRY_UNITS, MAX_VALUE_BYTES};
use core::fmt;

/// At most [`MAX_ENTRIES`] entries, in the value's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowList {
    entries: [Entry; MAX_ENTRIES],
    len: usize,
}

/// What fills unused slots (never visible through the API).
const UNUSED: Entry = Entry::UNUSED;

impl AllowList {
    /// The empty list.
    pub const fn new() -> Self {
        Self { entries: [UNUSED; MAX_ENTRIES], len: 0 }
    }

    /// Appends `entry`; `false` (nothing changed) when the list is full.
    pub fn push(&mut self, entry: Entry) -> bool {
        match self.entries.get_mut(self.len) {
            Some(slot) => {
                *slot = entry;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[Entry] {
        self.entries.get(..self.len).unwrap_or(&[])
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Number of entries.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether there is none.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of filters the entries become at one set (one per entry and
    /// IP version it covers); at most [`crate::MAX_FILTERS`].
    pub fn filter_count(&self) -> usize {
        self.entries().iter().map(|e| e.families().count()).sum()
    }
}

impl Default for AllowList {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a list was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListError {
    /// The value is longer than [`MAX_VALUE_BYTES`].
    TooLarge,
    /// An odd number of bytes: not UTF-16 text.
    OddLength,
    /// More than [`MAX_ENTRIES`] entries.
    TooMany,
    /// A bad entry: the 1-based position of its string in the value (as
    /// regedit shows the lines, comments included) and why.
    Entry {
        /// 1-based string position.
        line: usize,
        /// Why.
        error: EntryError,
    },
}

impl ListError {
    /// A small stable number for the driver's status reply (0 is "no
    /// error"): 1 too large, 2 odd length, 3 too many, 16 + the entry
    /// error's kind for a bad entry.
    pub const fn code(&self) -> u32 {
        match self {
            Self::TooLarge => 1,
            Self::OddLength => 2,
            Self::TooMany => 3,
            Self::Entry { error, .. } => 16 + error.code(),
        }
    }

    /// The line of a bad entry, 0 for a whole-value error.
    pub const fn line(&self) -> usize {
        match self {
            Self::Entry { line, .. } => *line,
            _ => 0,
        }
    }
}

impl EntryError {
    /// A small stable number per kind (0..=9), for [`ListError::code`].
    pub const fn code(&self) -> u32 {
        match self {
            Self::TooLong => 0,
            Self::NotAscii => 1,
            Self::Fields { .. } => 2,
            Self::Direction => 3,
            Self::Protocol => 4,
            Self::Address => 5,
            Self::Prefix => 6,
            Self::Port => 7,
            Self::PortOrder => 8,
            Self::PortsNeedTcpOrUdp => 9,
        }
    }
}

/// The message for a [`ListError::code`] (what tools print for the number
/// the driver reports).
pub const fn describe_code(code: u32) -> &'static str {
    match code {
        0 => "none",
        1 => "the value is too large",
        2 => "the value is not UTF-16 text (odd length)",
        3 => "more entries than allowed",
        16 => "an entry is too long",
        17 => "an entry has a character outside printable ASCII",
        18 => "an entry does not have 4 fields",
        19 => "an entry's direction is not out/in",
        20 => "an entry's protocol is not valid",
        21 => "an entry's address is not valid",
        22 => "an entry's prefix is not valid",
        23 => "an entry's ports are not valid",
        24 => "an entry's port range is reversed",
        25 => "an entry has ports with a protocol other than tcp/udp/any",
        _ => "unknown",
    }
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => write!(f, "the value is larger than {MAX_VALUE_BYTES} bytes; keep at most {MAX_ENTRIES} short entries"),
            Self::OddLength => f.write_str("the value is not UTF-16 text (odd length); write it as REG_MULTI_SZ"),
            Self::TooMany => write!(f, "more than {MAX_ENTRIES} entries; merge entries into networks or port ranges"),
            Self::Entry { line, error } => write!(f, "line {line}: {error}"),
        }
    }
}

/// What parsing a value found, besides the entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// Entries found (comments and blank strings not counted), good or bad.
    pub found: usize,
    /// Bad entries found.
    pub bad: usize,
    /// The first reason the list was refused; `None` when accepted.
    pub error: Option<ListError>,
}

/// The outcome of parsing a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The entries; empty when the list was refused.
    pub list: AllowList,
    /// Entries found (comments and blank strings not counted), good or bad.
    pub found: usize,
    /// Bad entries found.
    pub bad: usize,
    /// The first reason the list was refused; `None` when accepted.
    pub error: Option<ListError>,
}

/// One string of the value, as far as the parser needs it.
struct Text {
    buf: [u8; MAX_ENTRY_UNITS],
    len: usize,
    /// Units seen (may exceed `len`).
    units: usize,
    ascii: bool,
    comment: bool,
    blank_so_far: bool,
}

impl Text {
    const fn new() -> Self {
        Self { buf: [0; MAX_ENTRY_UNITS], len: 0, units: 0, ascii: true, comment: false, blank_so_far: true }
    }

    fn push(&mut self, unit: u16) {
        self.units = self.units.saturating_add(1);
        let blank = unit == u16::from(b' ') || unit == u16::from(b'\t');
        if self.blank_so_far && !blank {
            self.blank_so_far = false;
            self.comment = unit == u16::from(b'#');
        }
        let printable = unit == u16::from(b'\t') || (0x20..=0x7E).contains(&unit);
        match (u8::try_from(unit), self.buf.get_mut(self.len)) {
            (Ok(b), Some(slot)) if printable => {
                *slot = b;
                self.len += 1;
            }
            _ if !printable => self.ascii = false,
            _ => {}
        }
    }

    /// `None` for a blank string or a comment, else the entry or why not.
    fn entry(&self) -> Option<Result<Entry, EntryError>> {
        if self.blank_so_far || self.comment {
            return None;
        }
        if self.units > MAX_ENTRY_UNITS {
            return Some(Err(EntryError::TooLong));
        }
        if !self.ascii {
            return Some(Err(EntryError::NotAscii));
        }
        let text = self.buf.get(..self.len).and_then(|b| core::str::from_utf8(b).ok());
        Some(text.map_or(Err(EntryError::NotAscii), Entry::parse))
    }
}

/// Parses the value's bytes (REG_MULTI_SZ data). Total: any bytes give a
/// [`Parsed`], never a panic.
///
/// # Examples
/// ```
/// let mut value = Vec::new();
/// for s in ["out udp 10.0.0.53 53", "# management", "in tcp any 5985", ""] {
///     value.extend(s.encode_utf16().chain([0]).flat_map(u16::to_le_bytes));
/// }
/// let parsed = weir_failsafe::parse_multi_sz(&value);
/// assert_eq!(parsed.error, None);
/// assert_eq!(parsed.list.len(), 2);
/// assert_eq!(parsed.list.entries()[1].to_string(), "in tcp any 5985");
/// ```
pub fn parse_multi_sz(bytes: &[u8]) -> Parsed {
    let mut list = AllowList::new();
    let Report { found, bad, error } = parse_multi_sz_into(bytes, &mut list);
    Parsed { list, found, bad, error }
}

/// [`parse_multi_sz`] into `list` (cleared first, left empty when the list
/// is refused), for callers that keep the list in place: a list is a few
/// KiB, more than kernel code should put on its stack.
pub fn parse_multi_sz_into(bytes: &[u8], list: &mut AllowList) -> Report {
    list.clear();
    let mut out = Report { found: 0, bad: 0, error: None };
    if bytes.len() > MAX_VALUE_BYTES {
        out.error = Some(ListError::TooLarge);
        return out;
    }
    if !bytes.len().is_multiple_of(2) {
        out.error = Some(ListError::OddLength);
        return out;
    }
    let mut line = 0usize;
    let mut text = Text::new();
    // A NUL unit past the end closes a last string written without one.
    let units = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)]));
    for unit in units.chain(core::iter::once(0)) {
        if unit != 0 {
            text.push(unit);
            continue;
        }
        if text.units > 0 {
            line += 1;
        }
        let done = core::mem::replace(&mut text, Text::new());
        let Some(result) = done.entry() else { continue };
        out.found += 1;
        match result {
            Ok(entry) => {
                if !list.push(entry) && out.error.is_none() {
                    out.error = Some(ListError::TooMany);
                }
            }
            Err(error) => {
                out.bad += 1;
                if out.error.is_none() {
                    out.error = Some(ListError::Entry { line, error });
                }
            }
        }
    }
    if out.error.is_some() {
        list.clear();
    }
    out
}

/// Encodes strings as REG_MULTI_SZ data (each string NUL-terminated, then
/// one more NUL), into `out`; returns the bytes written, or `None` if they
/// do not fit (nothing meaningful is left in `out` then). For tools and
/// tests; the inverse of [`parse_multi_sz`] for well-formed lists.
pub fn encode_multi_sz<'a>(strings: impl IntoIterator<Item = &'a str>, out: &mut [u8]) -> Option<usize> {
    let mut n = 0usize;
    let mut put = |unit: u16| -> Option<()> {
        let dst = out.get_mut(n..n.checked_add(2)?)?;
        dst.copy_from_slice(&unit.to_le_bytes());
        n += 2;
        Some(())
    };
    for s in strings {
        for unit in s.encode_utf16() {
            put(unit)?;
        }
        put(0)?;
    }
    put(0)?;
    Some(n)
}
