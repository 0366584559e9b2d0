//! The Base Filtering Engine (BFE) service's state, subscriptions to its
//! changes, and the PASSIVE_LEVEL lock that serialises a driver's reaction to
//! them.
//!
//! BFE owns every management object (sessions, sublayers, callouts, filters).
//! When the service stops, a dynamic session and everything added through it
//! are gone; run-time callout registrations (`FwpsCalloutRegister*`) live in
//! the kernel's filter engine and survive. `FwpmBfeStateSubscribeChanges0`
//! (PASSIVE_LEVEL) registers a callback that the filter engine calls at
//! PASSIVE_LEVEL on every state change, where `Fwpm*` calls are allowed, so no
//! work item is needed. `FwpmBfeStateUnsubscribeChanges0` must not be called
//! from that callback (documented deadlock): it waits for callbacks in flight,
//! which is what makes it safe to unload after it returns.

use crate::device::ControlDevice;
use crate::status::{NtStatus, Result};
use crate::trace;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ops::{Deref, DerefMut};
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};
use windows_sys::Wdk::Foundation::KEVENT;
use windows_sys::Wdk::System::SystemServices::{KeInitializeEvent, KeSetEvent, KeWaitForSingleObject};
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

/// A lock held at PASSIVE_LEVEL around state that only PASSIVE_LEVEL code
/// touches (DriverEntry, DriverUnload, the BFE state callback), so that `Fwpm*`
/// calls (PASSIVE_LEVEL only) can be made while holding it. A fast mutex or a
/// spin lock would raise the IRQL; a synchronization event does not.
///
/// It must live in a `static` (it cannot move once initialised) and be
/// [`init`](Self::init)ialised once before anything can call
/// [`lock`](Self::lock); `lock` refuses (returns `None`) until then.
pub struct PassiveMutex<T> {
    event: UnsafeCell<KEVENT>,
    ready: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a Guard, which exists only while
// the synchronization event is held (at most one holder: KeWaitForSingleObject
// on a synchronization event that KeSetEvent releases admits one waiter at a
// time). T: Send because the holder may be on any thread.
unsafe impl<T: Send> Sync for PassiveMutex<T> {}

impl<T> PassiveMutex<T> {
    pub const fn new(value: T) -> Self {
        Self {
            // SAFETY: KEVENT is plain data; all-zero is overwritten by
            // KeInitializeEvent in `init` before any use.
            event: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            ready: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Initialises the event, signaled (unlocked). Later calls do nothing.
    /// IRQL: PASSIVE_LEVEL. Call from DriverEntry before anything that could
    /// lock (a BFE subscription) exists.
    pub fn init(&'static self) {
        if self.ready.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: the static never moves; nothing waits on it yet (the caller
        // is DriverEntry before any subscription), so (re)initialising is
        // race-free. SynchronizationEvent, initially signaled.
        unsafe {
            KeInitializeEvent(
                self.event.get(),
                wfp_km_sys::ntos::SYNCHRONIZATION_EVENT,
                true,
            );
        }
        self.ready.store(true, Ordering::Release);
    }

    /// Waits (at PASSIVE_LEVEL) until the lock is free and takes it. `None`
    /// before `init`.
    pub fn lock(&'static self) -> Option<PassiveGuard<T>> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: initialised event; a kernel-mode, non-alertable wait with no
        // timeout, which can only return STATUS_SUCCESS. IRQL: callers are
        // PASSIVE_LEVEL (documented <= APC_LEVEL for a wait).
        let _ = unsafe {
            KeWaitForSingleObject(
                self.event.get().cast_const().cast::<c_void>(),
                wfp_km_sys::ntos::EXECUTIVE,
                wfp_km_sys::ntos::KERNEL_MODE,
                false,
                ptr::null(),
            )
        };
        Some(PassiveGuard { lock: self })
    }
}

/// Exclusive access to a [`PassiveMutex`]'s value; releases on drop.
pub struct PassiveGuard<T: 'static> {
    lock: &'static PassiveMutex<T>,
}

impl<T> Deref for PassiveGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock: no other reference to the value.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for PassiveGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for deref, and `&mut self` makes this the only borrow.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for PassiveGuard<T> {
    fn drop(&mut self) {
        // SAFETY: initialised event held by this guard; Wait FALSE, so
        // callable at IRQL <= DISPATCH_LEVEL.
        let _ = unsafe { KeSetEvent(self.lock.event.get(), 0, false) };
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
