//! Run-time callout registration (`FwpsCalloutRegister3`).

use crate::device::ControlDevice;
use crate::status::{NtStatus, Result};
use crate::trace;
use wfp_km_sys::fwps::{
    FwpsCalloutRegister3, FwpsCalloutUnregisterById0, FWPS_CALLOUT3,
    FWPS_CALLOUT_CLASSIFY_FN3, FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0, FWPS_CALLOUT_NOTIFY_FN3,
};
use wfp_km_sys::GUID;

/// The functions and key of one callout.
#[derive(Clone, Copy)]
pub struct CalloutFns {
    pub key: GUID,
    pub classify: FWPS_CALLOUT_CLASSIFY_FN3,
    pub notify: FWPS_CALLOUT_NOTIFY_FN3,
    pub flow_delete: FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0,
}

/// How long unregistering waits between tries while the engine is busy.
pub const UNREGISTER_RETRY_MS: u32 = 10;
/// Tries for an unregister failure other than busy/in-use (for example
/// STATUS_NOT_SUPPORTED, seen when a driver unregistered above PASSIVE_LEVEL),
/// [`UNREGISTER_FAILURE_RETRY_MS`] apart, before the registration is given up
/// on.
pub const UNREGISTER_FAILURE_TRIES: u32 = 10;
/// Wait between tries after such a failure.
pub const UNREGISTER_FAILURE_RETRY_MS: u32 = 100;

/// A registered callout.
///
/// Invariant: `id` was returned by a successful `FwpsCalloutRegister3`; the
/// callout stays registered until [`Registration::unregister`] succeeds. The
/// owner must keep the device it was registered with (and everything its
/// classifyFn reaches) alive while a registration exists, and unregister only
/// after the filters that use it are gone (close the engine session first).
pub struct Registration {
    id: u32,
}

impl Registration {
    /// Registers `fns` for `device`. IRQL: PASSIVE_LEVEL.
    pub fn register(device: &ControlDevice, fns: &CalloutFns) -> Result<Self> {
        let callout = FWPS_CALLOUT3 {
            calloutKey: fns.key,
            flags: 0,
            classifyFn: fns.classify,
            notifyFn: fns.notify,
            flowDeleteFn: fns.flow_delete,
        };
        let mut id = 0u32;
        // SAFETY: device is a live device object (ControlDevice invariant);
        // `callout` and `id` are valid for the call; the engine copies the
        // structure. PASSIVE_LEVEL: called from DriverEntry.
        let status = unsafe { FwpsCalloutRegister3(device.as_raw().cast(), &callout, &mut id) };
        trace::checked("FwpsCalloutRegister3", status)?;
        Ok(Self { id })
    }

    /// The run-time callout id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Unregisters. Busy/in-use (classify calls or flow contexts still in the
    /// engine) is waited out without a bound: unloading then would leave the
    /// engine calling freed code. STATUS_FWP_CALLOUT_NOT_FOUND counts as done.
    /// Any other failure is traced and retried up to
    /// [`UNREGISTER_FAILURE_TRIES`] times; if it never succeeds the
    /// registration is given back (`Err`) and the caller must keep the device
    /// and the driver image (so classifyFn stays valid). IRQL: PASSIVE_LEVEL.
    pub fn unregister(self) -> core::result::Result<(), Self> {
        let mut busy: u32 = 0;
        let mut failures: u32 = 0;
        loop {
            // SAFETY: invariant: `id` is our registered callout. PASSIVE_LEVEL:
            // registrations are removed from DriverEntry's error path or
            // DriverUnload.
            let status = NtStatus(unsafe { FwpsCalloutUnregisterById0(self.id) });
            if status.is_success() || status == NtStatus::FWP_CALLOUT_NOT_FOUND {
                return Ok(());
            }
            if status == NtStatus::DEVICE_BUSY || status == NtStatus::FWP_IN_USE {
                busy = busy.saturating_add(1);
                if busy % 100 == 1 {
                    trace::error(format_args!(
                        "weir: FwpsCalloutUnregisterById0({}) busy: {status}, waiting (try {busy})",
                        self.id
                    ));
                }
                crate::irp::sleep_ms(UNREGISTER_RETRY_MS);
                continue;
            }
            failures = failures.saturating_add(1);
            trace::error(format_args!(
                "weir: FwpsCalloutUnregisterById0({}) failed: {status} (try {failures} of {UNREGISTER_FAILURE_TRIES})",
                self.id
            ));
            if failures >= UNREGISTER_FAILURE_TRIES {
                return Err(self);
            }
            crate::irp::sleep_ms(UNREGISTER_FAILURE_RETRY_MS);
        }
    }
}
