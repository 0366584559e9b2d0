//! Critical regions: sections no thread suspension can stretch.
//!
//! `SuspendThread`, a frozen process and a user-mode debugger stop a thread
//! by queueing it a normal kernel APC. A thread stopped inside a section
//! other CPUs wait for (a lock, a grace period's reader count, a claimed
//! ring slot) stalls all of them for as long as it stays stopped. Code at
//! DISPATCH_LEVEL cannot be stopped that way; code at PASSIVE_LEVEL must
//! disable normal kernel APCs with `KeEnterCriticalRegion` (undone by
//! `KeLeaveCriticalRegion`) around such a section. [`CriticalRegion`] does
//! that, and nothing when APCs are already off (`KeAreApcsDisabled`: at
//! APC_LEVEL or above, or inside a critical or guarded region), so it can
//! wrap code that runs at any IRQL up to DISPATCH_LEVEL (classifyFn).

use core::marker::PhantomData;
use wfp_km_sys::ntos::{KeAreApcsDisabled, KeEnterCriticalRegion, KeLeaveCriticalRegion};

/// Normal kernel APCs are disabled for the current thread while this
/// lives: it entered a critical region (`KeEnterCriticalRegion`) or found
/// APCs already disabled (`KeAreApcsDisabled`); dropping it leaves the
/// region it entered (`KeLeaveCriticalRegion`).
///
/// # Invariants
/// `entered` is true only if this value's `enter` called
/// `KeEnterCriticalRegion` on the current thread at IRQL < APC_LEVEL; it
/// cannot move to another thread (`!Send`).
#[must_use = "dropping it leaves the critical region at once"]
pub struct CriticalRegion {
    entered: bool,
    _this_thread: PhantomData<*const ()>,
}

impl CriticalRegion {
    /// Disables normal kernel APCs unless they already are. IRQL: <=
    /// DISPATCH_LEVEL (enters a region only below APC_LEVEL). Drop it at
    /// the IRQL it was made at.
    pub fn enter() -> Self {
        // SAFETY: KeAreApcsDisabled takes no argument and is callable at any
        // IRQL.
        let disabled = unsafe { KeAreApcsDisabled() } != 0;
        if !disabled {
            // SAFETY: APCs enabled means IRQL < APC_LEVEL (PASSIVE_LEVEL),
            // where KeEnterCriticalRegion is callable; Drop leaves it on the
            // same thread (!Send).
            unsafe { KeEnterCriticalRegion() };
        }
        // INVARIANT: entered exactly when KeEnterCriticalRegion ran above.
        Self { entered: !disabled, _this_thread: PhantomData }
    }

    /// Runs `f` with normal kernel APCs disabled. IRQL: <= DISPATCH_LEVEL.
    pub fn run<R>(f: impl FnOnce() -> R) -> R {
        let _region = Self::enter();
        f()
    }
}

impl Drop for CriticalRegion {
    fn drop(&mut self) {
        if self.entered {
            // SAFETY: type invariant: this thread entered the region at
            // PASSIVE_LEVEL and the caller drops at that IRQL.
            unsafe { KeLeaveCriticalRegion() };
        }
    }
}
