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

/// A registered callout.
///
/// Invariant: `id` was returned by a successful `FwpsCalloutRegister3`; the
/// callout stays registered until `drop`, which unregisters it, retrying while
/// the engine reports it busy or in use. The owner must drop every registration
/// before the device it was registered with, and only after the filters that
/// use it are gone (close the engine session first).
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
        NtStatus::check(status)?;
        Ok(Self { id })
    }

    /// The run-time callout id.
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut tries: u32 = 0;
        loop {
            // SAFETY: invariant: `id` is our registered callout. PASSIVE_LEVEL:
            // registrations are dropped from DriverEntry's error path or
            // DriverUnload.
            let status = NtStatus(unsafe { FwpsCalloutUnregisterById0(self.id) });
            if status.is_success() || status == NtStatus::FWP_CALLOUT_NOT_FOUND {
                return;
            }
            if status != NtStatus::DEVICE_BUSY && status != NtStatus::FWP_IN_USE {
                // Not documented for this call; unloading anyway is the lesser
                // evil compared with hanging, so report loudly and stop.
                trace::error(format_args!(
                    "weir: unregister of callout {} failed: {status}",
                    self.id
                ));
                return;
            }
            // The engine still references the callout (flows with its
            // contexts, or a concurrent (un)registration); unloading now would
            // leave the engine calling into freed code. Wait it out.
            tries = tries.saturating_add(1);
            if tries % 100 == 1 {
                trace::error(format_args!(
                    "weir: callout {} busy, waiting (try {tries})",
                    self.id
                ));
            }
            crate::irp::sleep_ms(UNREGISTER_RETRY_MS);
        }
    }
}
