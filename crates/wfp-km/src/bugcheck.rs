//! Bug checks: the only acceptable way for kernel code to stop.
//!
//! A panic handler that spins hangs a CPU, possibly at DISPATCH_LEVEL, and
//! leaves nothing to debug. Weir bug-checks instead, with its own code so the
//! dump's `!analyze -v` names Weir at once.

use core::panic::PanicInfo;

/// Weir's bug-check code, `0x57454952`: the ASCII bytes of `WEIR`, which is
/// how WinDbg's `Bugcheck code 57454952` line reads. No documented Microsoft
/// bug-check code is in this range.
pub const WEIR_BUGCHECK_CODE: u32 = u32::from_be_bytes(*b"WEIR");

/// Parameter 1 of a Weir bug check: why it happened.
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A Rust panic; parameter 2 is the source line, parameter 3 a pointer to
    /// the (not NUL-terminated) file name and parameter 4 its length.
    Panic = 1,
    /// An allocation error reported by `alloc`.
    AllocError = 2,
}

/// Stops the system with Weir's bug-check code.
pub fn bugcheck(reason: Reason, p2: usize, p3: usize, p4: usize) -> ! {
    // SAFETY: KeBugCheckEx is callable at any IRQL and never returns.
    unsafe {
        wfp_km_sys::ntos::KeBugCheckEx(
            WEIR_BUGCHECK_CODE,
            reason as usize,
            p2,
            p3,
            p4,
        )
    }
}

/// The body of the Linux flow's `#[panic_handler]`: records where the panic
/// happened in the bug-check parameters.
pub fn on_panic(info: &PanicInfo<'_>) -> ! {
    let (line, file_ptr, file_len) = info.location().map_or((0, 0, 0), |loc| {
        (loc.line() as usize, loc.file().as_ptr() as usize, loc.file().len())
    });
    bugcheck(Reason::Panic, line, file_ptr, file_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_reads_weir_in_hex() {
        assert_eq!(WEIR_BUGCHECK_CODE, 0x5745_4952);
        assert_eq!(Reason::Panic as usize, 1);
    }
}
