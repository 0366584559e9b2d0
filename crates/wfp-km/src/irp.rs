//! I/O request packets as dispatch routines see them, and PASSIVE_LEVEL waits.

use crate::status::NtStatus;
use core::ptr::NonNull;
use windows_sys::Wdk::Foundation::{IO_STACK_LOCATION, IRP};
use wfp_km_sys::ntos::DEVICE_IO_CONTROL_PARAMETERS;
use windows_sys::Wdk::System::SystemServices::{IofCompleteRequest, KeDelayExecutionThread};

/// `METHOD_BUFFERED` transfer type (low two bits of an IOCTL code).
pub const METHOD_BUFFERED: u32 = 0;
/// `FILE_READ_ACCESS` required-access bits of an IOCTL code.
pub const FILE_READ_ACCESS: u32 = 0x0001;

/// `CTL_CODE` from the WDK.
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// An IRP owned by a dispatch routine until it is completed.
///
/// Invariant: `raw` is an IRP this driver owns and has not completed: the
/// one the I/O manager passed to the current dispatch routine, or one taken
/// back out of a [`crate::csq::IrpQueue`]; its current stack location is
/// valid. [`Irp::complete`] consumes the value, so an IRP cannot be
/// completed twice or touched after completion.
pub struct Irp {
    pub(crate) raw: NonNull<IRP>,
}

/// Parameters of an `IRP_MJ_DEVICE_CONTROL` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceControl {
    pub code: u32,
    pub input_len: u32,
    pub output_len: u32,
}

impl Irp {
    /// # Safety
    /// `raw` is null or the IRP passed to the calling dispatch routine, which
    /// must complete it through the returned value.
    pub unsafe fn from_raw(raw: *mut IRP) -> Option<Self> {
        NonNull::new(raw).map(|raw| Self { raw })
    }

    fn stack(&self) -> Option<&IO_STACK_LOCATION> {
        // SAFETY: invariant: the IRP is live. The field is read through a raw
        // place, without a reference to the whole IRP (other threads may write
        // fields such as `Cancel`). CurrentStackLocation is the I/O manager's
        // pointer into the IRP's own stack array, which only this dispatch
        // routine uses, or null in a malformed IRP, which we refuse.
        unsafe {
            let irp = self.raw.as_ptr();
            core::ptr::addr_of!((*irp).Tail.Overlay.Anonymous2.Anonymous.CurrentStackLocation)
                .read()
                .as_ref()
        }
    }

    /// The `IRP_MJ_*` code of the current stack location.
    pub fn major_function(&self) -> Option<u8> {
        self.stack().map(|s| s.MajorFunction)
    }

    /// For `IRP_MJ_DEVICE_CONTROL`: code and buffer lengths.
    pub fn device_control(&self) -> Option<DeviceControl> {
        let stack = self.stack()?;
        let params = core::ptr::addr_of!(stack.Parameters).cast::<DEVICE_IO_CONTROL_PARAMETERS>();
        // SAFETY: the Parameters union is 32 bytes and 8-aligned (layout test
        // `irp_and_stack_location`), so reading the WDK's padded
        // DeviceIoControl view from it is in bounds and aligned; any bit
        // pattern is a valid value of these integer and pointer fields.
        // Callers ask only for device-control IRPs.
        let p = unsafe { params.read() };
        Some(DeviceControl {
            code: p.IoControlCode,
            input_len: p.InputBufferLength,
            output_len: p.OutputBufferLength,
        })
    }

    /// For a `METHOD_BUFFERED` request: the system buffer as `len` bytes,
    /// the input (if any) first.
    ///
    /// The I/O manager allocates it with max(input, output) length and copies
    /// only the input into it, so the rest is uninitialised: the part of
    /// `[input, len)` this view covers is zeroed here through a raw pointer
    /// before any `&mut [u8]` covers it, and nothing beyond `len` is
    /// touched (so a caller at DISPATCH_LEVEL bounds its work by `len`, not
    /// by the length user mode chose). `len` must not exceed max(input,
    /// output); this is checked. `None` when there is no buffer.
    pub fn buffered(&mut self, len: usize) -> Option<&mut [u8]> {
        let dc = self.device_control()?;
        if dc.code & 3 != METHOD_BUFFERED {
            return None;
        }
        let max = usize::try_from(dc.input_len.max(dc.output_len)).ok()?;
        let input = usize::try_from(dc.input_len).ok()?;
        if len == 0 || len > max {
            return None;
        }
        // SAFETY: invariant: live IRP. For METHOD_BUFFERED, SystemBuffer is
        // null or a non-paged buffer of at least `max` bytes owned by the IRP
        // until completion, and `&mut self` keeps this the only reference. The
        // first `input` bytes were written by the I/O manager; [input, len)
        // (len <= max) is written here, so the whole slice is initialised.
        unsafe {
            let irp = self.raw.as_ptr();
            let buffer = core::ptr::addr_of!((*irp).AssociatedIrp.SystemBuffer).read().cast::<u8>();
            if buffer.is_null() {
                return None;
            }
            if len > input {
                core::ptr::write_bytes(buffer.add(input), 0, len - input);
            }
            Some(core::slice::from_raw_parts_mut(buffer, len))
        }
    }

    /// The file object (handle) the request came through, as a number to
    /// compare (0 if the stack location has none).
    pub fn file_object(&self) -> usize {
        self.stack().map_or(0, |s| s.FileObject as usize)
    }

    /// Writes `FILE_OBJECT::FsContext2` of the request's file object (the
    /// device driver's field for a file object of its own device). Does
    /// nothing if the stack location has no file object.
    pub(crate) fn mark_file_cleaned_up(&self, value: usize) {
        let Some(stack) = self.stack() else { return };
        let file = stack.FileObject;
        if !file.is_null() {
            // SAFETY: a live IRP holds a reference on its file object; the
            // file object belongs to this driver's device, whose driver owns
            // FsContext2. Callers write it under the queue lock.
            unsafe { core::ptr::addr_of_mut!((*file).FsContext2).write(value as *mut core::ffi::c_void) };
        }
    }

    /// Stores `value` in `Tail.Overlay.DriverContext[0]`, which belongs to
    /// the driver while it owns the IRP.
    pub(crate) fn set_driver_context(&self, value: *const core::ffi::c_void) {
        // SAFETY: invariant: a live IRP this driver owns; DriverContext is
        // the owning driver's, written through a raw place.
        unsafe {
            core::ptr::addr_of_mut!((*self.raw.as_ptr()).Tail.Overlay.Anonymous1.Anonymous.DriverContext[0])
                .write(value.cast_mut());
        }
    }

    /// Completes the IRP with `status` and `information` (bytes returned).
    pub fn complete(self, status: NtStatus, information: usize) -> NtStatus {
        // SAFETY: invariant: live, not yet completed; consuming `self` makes
        // this the last use. IO_NO_INCREMENT (0) as priority boost.
        unsafe {
            let irp = self.raw.as_ptr();
            (*irp).IoStatus.Anonymous.Status = status.raw();
            (*irp).IoStatus.Information = information;
            IofCompleteRequest(irp, 0);
        }
        status
    }
}

/// Waits `ms` milliseconds. IRQL: PASSIVE_LEVEL (or APC_LEVEL) only.
pub fn sleep_ms(ms: u32) {
    // Negative = relative, in 100 ns units.
    let interval: i64 = -(i64::from(ms) * 10_000);
    // SAFETY: kernel-mode, non-alertable wait on a valid interval pointer;
    // callers are the PASSIVE_LEVEL teardown paths.
    let _ = unsafe { KeDelayExecutionThread(wfp_km_sys::ntos::KERNEL_MODE, false, &interval) };
}
