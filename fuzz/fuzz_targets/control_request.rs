//! The whole control-device request path on the host build: major function,
//! IOCTL code, input and output lengths and buffer bytes go through
//! `weir::driver::dispatch` (what the kernel boundary calls with the IRP's
//! stack location and METHOD_BUFFERED system buffer), including real policy
//! sets (decode, compile, publish) and reads.
//!
//! Checked on every request: no panic; one completion (status, byte count)
//! per request, never STATUS_PENDING; an error completes with 0 bytes; the
//! byte count never exceeds the output length; nothing is written outside the
//! system buffer (guard bytes).
//!
//! The kernel routines the non-test build links against (pool allocation,
//! PASSIVE_LEVEL waits) are supplied by `host_kernel` below.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::ioctl::Context;
use wfp_km::device::major;
use wfp_km::irp::DeviceControl;
use wfp_km::NtStatus;

/// Host stand-ins for the ntoskrnl exports reachable from the request path.
mod host_kernel {
    use core::ffi::c_void;

    #[no_mangle]
    extern "C" fn ExAllocatePool2(_flags: u64, size: usize, _tag: u32) -> *mut c_void {
        // Zeroed, 16-aligned, like non-paged pool on x64.
        let layout = match std::alloc::Layout::from_size_align(size.max(1) + 16, 16) {
            Ok(l) => l,
            Err(_) => return core::ptr::null_mut(),
        };
        // SAFETY: non-zero size; the size is stored in the 16-byte header so
        // ExFreePoolWithTag can rebuild the layout.
        unsafe {
            let p = std::alloc::alloc_zeroed(layout);
            if p.is_null() {
                return core::ptr::null_mut();
            }
            p.cast::<usize>().write(layout.size());
            p.add(16).cast()
        }
    }

    #[no_mangle]
    extern "C" fn ExFreePoolWithTag(p: *mut c_void, _tag: u32) {
        if p.is_null() {
            return;
        }
        // SAFETY: `p` came from ExAllocatePool2 above (16 bytes after the
        // block start, whose first word is the block size).
        unsafe {
            let base = p.cast::<u8>().sub(16);
            let size = base.cast::<usize>().read();
            std::alloc::dealloc(base, std::alloc::Layout::from_size_align_unchecked(size, 16));
        }
    }

    #[no_mangle]
    extern "C" fn KeDelayExecutionThread(_mode: i8, _alertable: u8, _interval: *const i64) -> i32 {
        std::thread::yield_now();
        0
    }

    #[no_mangle]
    extern "C" fn DbgPrintEx(_component: u32, _level: u32, _format: *const u8) -> u32 {
        0
    }
}

const STATUS_PENDING: i32 = 0x103;
const GUARD: usize = 32;

/// Codes worth hitting often: Weir's own, and their neighbours with other
/// method/access bits.
fn pick_code(selector: u8, raw: u32) -> u32 {
    use weir_abi::ioctl::*;
    let known = [IOCTL_WEIR_GET_STATS, IOCTL_WEIR_SET_POLICY, IOCTL_WEIR_GET_POLICY, IOCTL_WEIR_READ_EVENTS];
    match selector % 4 {
        0 => raw,
        1 | 2 => known.get(usize::from(selector / 4) % known.len()).copied().unwrap_or(raw),
        _ => known.get(usize::from(selector / 4) % known.len()).copied().unwrap_or(0) ^ (raw & 0xC003),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_first_chunk::<10>() else { return };
    let major_function = if head[0] & 0x80 == 0 {
        [major::CREATE, major::CLOSE, major::CLEANUP, major::DEVICE_CONTROL][usize::from(head[0] & 3)]
    } else {
        head[0] & 0x7f
    };
    let code = pick_code(head[1], u32::from_le_bytes([head[2], head[3], head[4], head[5]]));
    let input_len = u32::from(u16::from_le_bytes([head[6], head[7]]));
    let output_len = u32::from(u16::from_le_bytes([head[8], head[9]])) % 8192;
    // The I/O manager allocates max(in, out) and copies the input in; the
    // input is the fuzz data (shorter data: zero padded).
    let max = input_len.max(output_len) as usize;
    let mut system_buffer = vec![0xA5u8; max + GUARD];
    for (dst, src) in system_buffer.iter_mut().zip(body.iter().take(input_len as usize)) {
        *dst = *src;
    }
    for b in system_buffer.iter_mut().take(max).skip(input_len as usize) {
        *b = 0; // what Irp::buffered does to the uninitialised tail
    }
    let control = (major_function == major::DEVICE_CONTROL).then_some(DeviceControl { code, input_len, output_len });
    let ctx = Context {
        version: weir::ids::VERSION,
        counters: &weir::classify::COUNTERS,
        store: &weir::policy::STORE,
        filtering: 0,
        event_drops: 0,
    };
    let (head_buf, guard) = system_buffer.split_at_mut(max);
    let buffer = if max == 0 { None } else { Some(head_buf) };
    let (status, information) = weir::driver::dispatch(Some(major_function), control, buffer, &ctx);
    assert_ne!(status.raw(), STATUS_PENDING, "request left pending by a dispatch that cannot pend");
    if !NtStatus::is_success(status) && status.raw() as u32 & 0xC000_0000 == 0xC000_0000 {
        assert_eq!(information, 0, "error {status} completed with {information} bytes");
    }
    assert!(information <= output_len as usize || (information == 0), "{information} bytes > output length {output_len}");
    assert!(guard.iter().all(|b| *b == 0xA5), "wrote past the system buffer");
});
