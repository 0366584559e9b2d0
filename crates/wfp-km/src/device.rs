//! The driver object, the control device and its symbolic link.

use crate::status::{NtStatus, Result};
use crate::strings::WStr;
use core::ptr::{self, NonNull};
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_DISPATCH, DRIVER_OBJECT, DRIVER_UNLOAD};
use windows_sys::Wdk::System::SystemServices::{
    IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink,
};

/// `IRP_MJ_*` codes Weir dispatches.
pub mod major {
    pub const CREATE: u8 = 0x00;
    pub const CLOSE: u8 = 0x02;
    pub const DEVICE_CONTROL: u8 = 0x0e;
    pub const CLEANUP: u8 = 0x12;
    /// `IRP_MJ_MAXIMUM_FUNCTION`.
    pub const MAXIMUM: u8 = 0x1b;
}

/// The driver object DriverEntry receives.
///
/// Invariant: `raw` is the I/O manager's DRIVER_OBJECT for this driver, valid
/// from DriverEntry until DriverUnload returns, and only touched at
/// PASSIVE_LEVEL from DriverEntry (before any dispatch can run).
pub struct DriverObject {
    raw: NonNull<DRIVER_OBJECT>,
}

impl DriverObject {
    /// # Safety
    /// `raw` is the DRIVER_OBJECT passed to DriverEntry (or null), and the
    /// caller is DriverEntry.
    pub unsafe fn from_raw(raw: *mut DRIVER_OBJECT) -> Option<Self> {
        NonNull::new(raw).map(|raw| Self { raw })
    }

    /// The raw pointer, for kernel calls that take the driver object.
    pub fn as_raw(&self) -> *mut DRIVER_OBJECT {
        self.raw.as_ptr()
    }

    /// Sets the routine the I/O manager calls to unload the driver.
    pub fn set_unload(&mut self, unload: DRIVER_UNLOAD) {
        // SAFETY: invariant: we are in DriverEntry and own the object's setup.
        unsafe { (*self.raw.as_ptr()).DriverUnload = unload };
    }

    /// Sets the dispatch routine for one `IRP_MJ_*` code; codes above
    /// `IRP_MJ_MAXIMUM_FUNCTION` are ignored.
    pub fn set_dispatch(&mut self, major_function: u8, dispatch: DRIVER_DISPATCH) {
        // SAFETY: invariant as above; `get_mut` bounds the index.
        unsafe {
            if let Some(slot) =
                (*self.raw.as_ptr()).MajorFunction.get_mut(usize::from(major_function))
            {
                *slot = dispatch;
            }
        }
    }
}

/// A named, non-PnP control device.
///
/// Invariant: `raw` was returned by a successful `IoCreateDevice` and is
/// deleted exactly once, in `drop`.
pub struct ControlDevice {
    raw: NonNull<DEVICE_OBJECT>,
}

// SAFETY: a DEVICE_OBJECT pointer may be used from any thread; the kernel
// serialises what needs serialising.
unsafe impl Send for ControlDevice {}
// SAFETY: as above; &ControlDevice only exposes the pointer value.
unsafe impl Sync for ControlDevice {}

impl ControlDevice {
    /// `IoCreateDevice` with no extension, non-exclusive. Pass
    /// `FILE_DEVICE_SECURE_OPEN` in `characteristics` so opens of names below
    /// the device are checked against the device's security too.
    pub fn create(
        driver: &DriverObject,
        name: WStr,
        device_type: u32,
        characteristics: u32,
    ) -> Result<Self> {
        let name = name.unicode_string();
        let mut device: *mut DEVICE_OBJECT = ptr::null_mut();
        // SAFETY: driver is valid (DriverObject invariant), name points to a
        // 'static buffer, and `device` is a valid out pointer. PASSIVE_LEVEL:
        // callers run in DriverEntry.
        let status = unsafe {
            IoCreateDevice(
                driver.as_raw(),
                0,
                &name,
                device_type,
                characteristics,
                false,
                &mut device,
            )
        };
        crate::trace::checked("IoCreateDevice", status)?;
        NonNull::new(device).map(|raw| Self { raw }).ok_or(NtStatus::UNSUCCESSFUL)
    }

    /// The device object, for `FwpsCalloutRegister3` and friends.
    pub fn as_raw(&self) -> *mut DEVICE_OBJECT {
        self.raw.as_ptr()
    }
}

impl Drop for ControlDevice {
    fn drop(&mut self) {
        // SAFETY: invariant: a live device we created, deleted once.
        unsafe { IoDeleteDevice(self.raw.as_ptr()) };
    }
}

/// A symbolic link (`\??\Name`) to a device.
///
/// Invariant: the link `name` exists because `create` succeeded; it is
/// deleted exactly once, in `drop`.
pub struct SymbolicLink {
    name: WStr,
}

impl SymbolicLink {
    /// `IoCreateSymbolicLink(name -> target)`.
    pub fn create(name: WStr, target: WStr) -> Result<Self> {
        let link = name.unicode_string();
        let target = target.unicode_string();
        // SAFETY: both strings point to 'static buffers; PASSIVE_LEVEL.
        crate::trace::checked("IoCreateSymbolicLink", unsafe { IoCreateSymbolicLink(&link, &target) })?;
        Ok(Self { name })
    }
}

/// Tries to delete a symbolic link before giving up (a link left behind makes
/// the next load's IoCreateSymbolicLink fail with a name collision).
pub const DELETE_LINK_TRIES: u32 = 3;

impl Drop for SymbolicLink {
    fn drop(&mut self) {
        let link = self.name.unicode_string();
        for attempt in 1..=DELETE_LINK_TRIES {
            // SAFETY: invariant: the link exists; the name buffer is 'static.
            let status = NtStatus(unsafe { IoDeleteSymbolicLink(&link) });
            if status.is_success() {
                return;
            }
            crate::trace::error(format_args!(
                "weir: IoDeleteSymbolicLink failed: {status} (try {attempt} of {DELETE_LINK_TRIES})"
            ));
            if attempt < DELETE_LINK_TRIES {
                crate::irp::sleep_ms(10);
            }
        }
    }
}
