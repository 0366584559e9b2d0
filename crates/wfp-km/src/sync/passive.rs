//! A lock held at PASSIVE_LEVEL across calls that must run there.
//!
//! [`PassiveMutex`] is a synchronization event (`KeInitializeEvent`,
//! `KeWaitForSingleObject`, `KeSetEvent`) around a value. Its holder stays
//! at PASSIVE_LEVEL, so it may call `Fwpm*` routines (PASSIVE_LEVEL only);
//! a fast mutex or a spin lock would raise the IRQL. The holder runs inside
//! a critical region ([`super::critical::CriticalRegion`], entered before
//! the wait and left after the release, as a fast mutex does), so a thread
//! suspended while holding it cannot stall DriverUnload or the BFE
//! callback.

use super::critical::CriticalRegion;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ops::{Deref, DerefMut};
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};
use windows_sys::Wdk::Foundation::KEVENT;
use windows_sys::Wdk::System::SystemServices::{KeInitializeEvent, KeSetEvent, KeWaitForSingleObject};

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
        let region = CriticalRegion::enter();
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
        Some(PassiveGuard { lock: self, _region: region })
    }
}

/// Exclusive access to a [`PassiveMutex`]'s value; releases on drop.
#[must_use = "dropping the guard releases the lock"]
pub struct PassiveGuard<T: 'static> {
    lock: &'static PassiveMutex<T>,
    /// Left after the release (fields drop after `drop` runs).
    _region: CriticalRegion,
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

