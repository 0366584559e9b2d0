//! A kernel spin lock guarding data, and the system clock; the other
//! primitives, one per module:
//!
//! - [`critical`]: `CriticalRegion` (`KeEnterCriticalRegion`), sections a
//!   suspended thread cannot stretch;
//! - [`passive`]: `PassiveMutex`, a lock held at PASSIVE_LEVEL (inside a
//!   critical region).
//!
//! [`SpinLock`] holds an executive spin lock (`KSPIN_LOCK`): `lock` raises
//! to DISPATCH_LEVEL with `KeAcquireSpinLockRaiseToDpc` (callable at IRQL <=
//! DISPATCH_LEVEL) and the guard's drop releases it with
//! `KeReleaseSpinLock`, restoring the previous IRQL. While the guard lives
//! the holder runs at DISPATCH_LEVEL: only non-paged data, no waits, and no
//! call that could take the same lock (that would deadlock the CPU).

pub mod critical;
pub mod passive;

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use wfp_km_sys::ntos::{KeAcquireSpinLockRaiseToDpc, KeReleaseSpinLock};

/// Data guarded by a kernel spin lock. Must live in non-paged memory (it is
/// touched at DISPATCH_LEVEL).
pub struct SpinLock<T> {
    /// The `KSPIN_LOCK` (a pointer-sized word; 0 = free, which is what
    /// `KeInitializeSpinLock` writes).
    lock: UnsafeCell<usize>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reachable through a guard, and the kernel lock
// admits one holder at a time on any number of CPUs.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the data (no guard can be alive then).
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(data: T) -> Self {
        Self { lock: UnsafeCell::new(0), data: UnsafeCell::new(data) }
    }

    /// Acquires the lock (raising to DISPATCH_LEVEL). IRQL <= DISPATCH_LEVEL.
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        // SAFETY: `lock` is a valid, initialised KSPIN_LOCK in non-paged
        // memory (type invariant), and callers run at <= DISPATCH_LEVEL.
        let old_irql = unsafe { KeAcquireSpinLockRaiseToDpc(self.lock.get()) };
        SpinLockGuard { lock: self, old_irql }
    }
}

/// Holds a [`SpinLock`]; releases it (and restores the IRQL) on drop.
#[must_use = "dropping the guard releases the spin lock"]
pub struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
    old_irql: u8,
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock: no other reference to the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and &mut self makes this the only one.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard acquired the lock with KeAcquireSpinLockRaiseToDpc
        // and we are at DISPATCH_LEVEL since; old_irql is what it returned.
        unsafe { KeReleaseSpinLock(self.lock.lock.get(), self.old_irql) };
    }
}

/// The current system time (`KeQuerySystemTimePrecise`): 100 ns intervals
/// since 1601-01-01 UTC. Any IRQL; Windows 8 and later.
pub fn system_time_precise() -> u64 {
    let mut t: i64 = 0;
    // SAFETY: a valid out pointer; documented callable at any IRQL.
    unsafe { windows_sys::Wdk::System::SystemServices::KeQuerySystemTimePrecise(&mut t) };
    u64::try_from(t).unwrap_or(0)
}

/// The current process's id (`PsGetCurrentProcessId`): in a dispatch routine
/// of a top-level device, the process that sent the request. IRQL: any.
pub fn current_process_id() -> u64 {
    // SAFETY: no arguments; documented callable at any IRQL.
    let pid = unsafe { windows_sys::Wdk::System::SystemServices::PsGetCurrentProcessId() };
    pid as usize as u64
}
