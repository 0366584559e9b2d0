//! Kernel debugger output through `DbgPrintEx`.
//!
//! Messages are formatted into a fixed stack buffer (no allocation, no paged
//! memory, so usable up to DISPATCH_LEVEL) and printed as one `%s` argument,
//! so a `%` in the text cannot be misread as a format directive. Long
//! messages are truncated.
//!
//! Component `DPFLTR_IHVNETWORK_ID`. Errors print at `DPFLTR_ERROR_LEVEL`,
//! which is always shown; per-connection traces print at `DPFLTR_INFO_LEVEL`,
//! which is silent until enabled (`ed nt!Kd_IHVNETWORK_Mask 0xf`).

use core::fmt::{self, Write};
use wfp_km_sys::ntos::{
    DbgPrintEx, DbgQueryDebugFilterState, DPFLTR_ERROR_LEVEL, DPFLTR_IHVNETWORK_ID, DPFLTR_INFO_LEVEL,
};

/// Capacity of one message, including the newline and NUL.
pub const MESSAGE_CAPACITY: usize = 192;

/// A fixed-size, always NUL-terminated message buffer.
pub struct Message {
    buf: [u8; MESSAGE_CAPACITY],
    len: usize,
}

impl Default for Message {
    fn default() -> Self {
        Self { buf: [0; MESSAGE_CAPACITY], len: 0 }
    }
}

impl Message {
    /// Formats `args` followed by a newline, truncating to fit.
    pub fn format(args: fmt::Arguments<'_>) -> Self {
        let mut m = Self::default();
        let _ = m.write_fmt(args);
        let _ = m.write_str("\n");
        m
    }

    /// The text without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Pointer to the NUL-terminated text.
    pub fn as_ptr(&self) -> *const u8 {
        self.buf.as_ptr()
    }
}

impl Write for Message {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep one byte for the NUL; the buffer starts zeroed and only ever
        // grows, so the byte after `len` is always NUL.
        let room = MESSAGE_CAPACITY.saturating_sub(1).saturating_sub(self.len);
        let take = s.len().min(room);
        let src = s.as_bytes().get(..take).unwrap_or(&[]);
        if let Some(dst) = self.buf.get_mut(self.len..self.len.saturating_add(take)) {
            dst.copy_from_slice(src);
            self.len = self.len.saturating_add(take);
        }
        if take < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

fn print(level: u32, args: fmt::Arguments<'_>) {
    let message = Message::format(args);
    // SAFETY: "%s" with one NUL-terminated, non-paged (stack) string is a
    // valid DbgPrintEx call at IRQL <= DIRQL.
    unsafe {
        DbgPrintEx(DPFLTR_IHVNETWORK_ID, level, c"%s".as_ptr().cast(), message.as_ptr());
    }
}

/// Prints at error level (always shown).
pub fn error(args: fmt::Arguments<'_>) {
    print(DPFLTR_ERROR_LEVEL, args);
}

/// Whether info-level traces would be shown. Hot paths (classify) ask first
/// so that a disabled trace costs one call, not a formatting pass.
pub fn info_enabled() -> bool {
    // SAFETY: DbgQueryDebugFilterState only reads the kernel's filter masks;
    // callable at any IRQL.
    unsafe { DbgQueryDebugFilterState(DPFLTR_IHVNETWORK_ID, DPFLTR_INFO_LEVEL) == 1 }
}

/// Prints at info level (silent by default).
pub fn info(args: fmt::Arguments<'_>) {
    print(DPFLTR_INFO_LEVEL, args);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_are_exact_and_terminated() {
        let m = Message::format(format_args!("weir: {} {}", 1, "x%s"));
        assert_eq!(m.as_bytes(), b"weir: 1 x%s\n");
        assert_eq!(m.buf[m.len], 0);
    }

    #[test]
    fn long_messages_truncate_and_stay_terminated() {
        let long = "a".repeat(1000);
        let m = Message::format(format_args!("{long}"));
        assert_eq!(m.len, MESSAGE_CAPACITY - 1);
        assert_eq!(m.buf[MESSAGE_CAPACITY - 1], 0);
    }
}
