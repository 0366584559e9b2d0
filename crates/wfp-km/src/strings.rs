//! Compile-time UTF-16 strings for names handed to the kernel.
//!
//! Kernel names (`\Device\Weir`) and WFP display names are fixed, so they are
//! built at compile time into `'static` arrays: no allocation, no paged memory,
//! nothing to free.

use wfp_km_sys::UNICODE_STRING;

/// A NUL-terminated, `'static` UTF-16 string.
///
/// Invariant: `units` ends with exactly one NUL, has no interior NUL, and is
/// shorter than 32768 units, so its byte length (without the NUL) fits the
/// `u16` of a `UNICODE_STRING`.
#[derive(Clone, Copy)]
pub struct WStr {
    units: &'static [u16],
}

impl WStr {
    /// Wraps a NUL-terminated UTF-16 array; checked at compile time when used
    /// through [`wstr!`](crate::wstr).
    pub const fn from_units(units: &'static [u16]) -> Self {
        let len = units.len();
        assert!(len > 0 && len < 0x4000, "length out of range");
        let mut i = 0;
        while i + 1 < len {
            // Interior NULs would truncate the name the kernel sees.
            #[allow(clippy::indexing_slicing)]
            let unit = units[i];
            assert!(unit != 0, "interior NUL");
            i += 1;
        }
        #[allow(clippy::indexing_slicing)]
        let last = units[len - 1];
        assert!(last == 0, "missing terminating NUL");
        Self { units }
    }

    /// Pointer to the NUL-terminated string (a `PCWSTR`).
    pub const fn as_ptr(&self) -> *const u16 {
        self.units.as_ptr()
    }

    /// Length in UTF-16 units, without the terminating NUL.
    pub const fn len(&self) -> usize {
        self.units.len() - 1
    }

    /// Whether the string is empty.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The units without the terminating NUL.
    pub fn units(&self) -> &'static [u16] {
        self.units.split_last().map_or(&[], |(_, rest)| rest)
    }

    /// A `UNICODE_STRING` describing this string.
    ///
    /// The kernel never writes through `Buffer` for the calls Weir makes with
    /// it (device and link names), which is why a `'static` read-only buffer
    /// may be handed out as the C type's `PWSTR`.
    pub const fn unicode_string(&self) -> UNICODE_STRING {
        // Cannot truncate: the invariant bounds len below 0x4000 units.
        #[allow(clippy::cast_possible_truncation)]
        let bytes = (self.len() * 2) as u16;
        UNICODE_STRING {
            Length: bytes,
            MaximumLength: bytes + 2,
            Buffer: self.units.as_ptr().cast_mut(),
        }
    }
}

/// Converts an ASCII string to a NUL-terminated UTF-16 array at compile time.
///
/// Used by [`wstr!`](crate::wstr); fails compilation on non-ASCII input or a
/// wrong `N`.
pub const fn ascii_to_utf16<const N: usize>(s: &str) -> [u16; N] {
    let bytes = s.as_bytes();
    assert!(bytes.len() + 1 == N, "N must be the length plus one");
    let mut out = [0u16; N];
    let mut i = 0;
    while i < bytes.len() {
        #[allow(clippy::indexing_slicing)]
        let b = bytes[i];
        assert!(b.is_ascii() && b != 0, "only non-NUL ASCII is supported");
        #[allow(clippy::indexing_slicing)]
        {
            out[i] = b as u16;
        }
        i += 1;
    }
    out
}

/// `wstr!("text")` is a [`WStr`] built at compile time.
#[macro_export]
macro_rules! wstr {
    ($s:expr) => {{
        const S: &str = $s;
        const UNITS: [u16; S.len() + 1] = $crate::strings::ascii_to_utf16::<{ S.len() + 1 }>(S);
        const W: $crate::strings::WStr = $crate::strings::WStr::from_units(&UNITS);
        W
    }};
}

#[cfg(test)]
mod tests {
    #[test]
    fn wstr_round_trips_and_counts_bytes() {
        let w = crate::wstr!("\\Device\\Weir");
        assert_eq!(String::from_utf16(w.units()).ok().as_deref(), Some("\\Device\\Weir"));
        assert_eq!(w.len(), 12);
        let us = w.unicode_string();
        assert_eq!(us.Length, 24);
        assert_eq!(us.MaximumLength, 26);
        // SAFETY: test-only read of the terminating unit of a 'static array.
        let last = unsafe { *us.Buffer.add(12) };
        assert_eq!(last, 0);
    }

    #[test]
    fn empty_string_is_allowed() {
        let w = crate::wstr!("");
        assert!(w.is_empty());
        assert_eq!(w.unicode_string().Length, 0);
    }
}
