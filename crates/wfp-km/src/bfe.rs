//! The Base Filtering Engine (BFE) service's state, subscriptions to its
//! changes.
//!
//! BFE owns every management object (sessions, sublayers, callouts, filters).
//! When the service stops, a dynamic session and everything added through it
//! are gone; run-time callout registrations (`FwpsCalloutRegister*`) live in
//! the kernel's filter engine and survive. `FwpmBfeStateSubscribeChanges0`
//! (PASSIVE_LEVEL) registers a callback that the filter engine calls at
//! PASSIVE_LEVEL on every state change, where `Fwpm*` calls are allowed, so no
//! work item is needed. `FwpmBfeStateUnsubscribeChanges0` must not be called
//! from that callback (documented deadlock): it waits for callbacks in flight,
//! which is what makes it safe to unload after it returns. The lock that
//! serialises a driver's reaction is [`PassiveMutex`] (`sync::passive`).

use crate::device::ControlDevice;
use crate::status::{NtStatus, Result};
use crate::trace;
/// Moved to [`crate::sync::passive`]; re-exported for existing users.
pub use crate::sync::passive::{PassiveGuard, PassiveMutex};
use core::ptr;
use wfp_km_sys::fwpm::{
    FwpmBfeStateGet0, FwpmBfeStateSubscribeChanges0, FwpmBfeStateUnsubscribeChanges0,
    FWPM_SERVICE_RUNNING, FWPM_SERVICE_STATE, FWPM_SERVICE_STATE_CHANGE_CALLBACK0, FWPM_SERVICE_STOPPED,
    FWPM_SERVICE_STOP_PENDING,
};
use wfp_km_sys::HANDLE;

/// `FWPM_SERVICE_STATE`, as the callback and `FwpmBfeStateGet0` report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BfeState {
    Stopped,
    StartPending,
    StopPending,
    Running,
    /// A value this version does not know; treated as "not running".
    Other(i32),
}

impl BfeState {
    pub fn from_raw(raw: FWPM_SERVICE_STATE) -> Self {
        match raw {
            FWPM_SERVICE_STOPPED => Self::Stopped,
            FWPM_SERVICE_STOP_PENDING => Self::StopPending,
            FWPM_SERVICE_RUNNING => Self::Running,
            wfp_km_sys::fwpm::FWPM_SERVICE_START_PENDING => Self::StartPending,
            other => Self::Other(other),
        }
    }
}

/// `FwpmBfeStateGet0`. IRQL <= DISPATCH_LEVEL. Call after subscribing, so a
/// change between the two is not missed.
pub fn current_state() -> BfeState {
    // SAFETY: no arguments; documented for IRQL <= DISPATCH_LEVEL.
    BfeState::from_raw(unsafe { FwpmBfeStateGet0() })
}

/// How often, and how far apart, a failing unsubscribe is retried before the
/// subscription is given up on (and the caller must keep everything the
/// callback can reach).
pub const UNSUBSCRIBE_TRIES: u32 = 10;
/// Wait between unsubscribe tries.
pub const UNSUBSCRIBE_RETRY_MS: u32 = 100;

/// An active BFE state-change subscription.
///
/// Invariant: `handle` came from a successful `FwpmBfeStateSubscribeChanges0`
/// and is removed at most once, by [`Subscription::unsubscribe`] (or `drop`).
pub struct Subscription {
    handle: HANDLE,
}

// SAFETY: the change handle is an opaque value usable from any thread.
unsafe impl Send for Subscription {}

impl Subscription {
    /// Subscribes `callback` with a null context. IRQL: PASSIVE_LEVEL.
    ///
    /// The callback can run as soon as this returns (before it returns, on
    /// another thread); it must reach only memory that outlives the
    /// subscription (statics of the driver image: the image stays mapped while
    /// `device`, which the subscription references, exists).
    pub fn subscribe(device: &ControlDevice, callback: FWPM_SERVICE_STATE_CHANGE_CALLBACK0) -> Result<Self> {
        let mut handle: HANDLE = ptr::null_mut();
        // SAFETY: live device object (ControlDevice invariant), a callback with
        // the documented signature, null context, valid out pointer.
        trace::checked("FwpmBfeStateSubscribeChanges0", unsafe {
            FwpmBfeStateSubscribeChanges0(device.as_raw().cast(), callback, ptr::null_mut(), &mut handle)
        })?;
        Ok(Self { handle })
    }

    /// Removes the subscription, retrying a failure up to
    /// [`UNSUBSCRIBE_TRIES`] times (each traced). After `Ok` no callback runs
    /// or will run. `Err` gives the subscription back: the callback may still
    /// be called, so nothing it reaches may be freed. IRQL: PASSIVE_LEVEL,
    /// never from the callback itself.
    pub fn unsubscribe(self) -> core::result::Result<(), Self> {
        let this = core::mem::ManuallyDrop::new(self);
        for attempt in 1..=UNSUBSCRIBE_TRIES {
            // SAFETY: invariant: an active subscription handle.
            let status = NtStatus(unsafe { FwpmBfeStateUnsubscribeChanges0(this.handle) });
            if status.is_success() {
                return Ok(());
            }
            trace::error(format_args!(
                "weir: FwpmBfeStateUnsubscribeChanges0 failed: {status} (try {attempt} of {UNSUBSCRIBE_TRIES})"
            ));
            if attempt < UNSUBSCRIBE_TRIES {
                crate::irp::sleep_ms(UNSUBSCRIBE_RETRY_MS);
            }
        }
        Err(core::mem::ManuallyDrop::into_inner(this))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let this = Self { handle: self.handle };
        if let Err(left) = this.unsubscribe() {
            trace::error(format_args!("weir: BFE state subscription left active"));
            core::mem::forget(left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_from_fwpm_service_state() {
        assert_eq!(BfeState::from_raw(0), BfeState::Stopped);
        assert_eq!(BfeState::from_raw(1), BfeState::StartPending);
        assert_eq!(BfeState::from_raw(2), BfeState::StopPending);
        assert_eq!(BfeState::from_raw(3), BfeState::Running);
        assert_eq!(BfeState::from_raw(7), BfeState::Other(7));
    }
}
