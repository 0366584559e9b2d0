//! A deferred procedure call object.
//!
//! A [`Dpc`] lives inside a longer-lived, non-moving owner (a `PoolBox`) and
//! is initialised once with a routine and that owner as context. Any code at
//! any IRQL may [`Dpc::queue`] it; the routine then runs once, at
//! DISPATCH_LEVEL, on some CPU. Dropping the `Dpc` (PASSIVE_LEVEL) removes it
//! from its queue and waits, with `KeFlushQueuedDpcs`, until a run already
//! started has finished, so the owner may be freed right after.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};
use windows_sys::Wdk::Foundation::KDPC;
use windows_sys::Wdk::System::SystemServices::KeFlushQueuedDpcs;
use wfp_km_sys::ntos::{KeInitializeDpc, KeInsertQueueDpc, KeRemoveQueueDpc, KDEFERRED_ROUTINE};

/// A `KDPC` and whether it was initialised.
pub struct Dpc {
    raw: UnsafeCell<KDPC>,
    initialized: AtomicBool,
}

// SAFETY: the kernel serialises access to a KDPC (insert/remove are
// interlocked with its own per-CPU queue lock); Rust code only passes the
// pointer.
unsafe impl Sync for Dpc {}
// SAFETY: a KDPC not yet initialised is plain memory.
unsafe impl Send for Dpc {}

impl Default for Dpc {
    fn default() -> Self {
        Self::new()
    }
}

impl Dpc {
    /// An uninitialised DPC: [`Dpc::queue`] does nothing until
    /// [`Dpc::init`].
    pub fn new() -> Self {
        Self { raw: UnsafeCell::new(KDPC::default()), initialized: AtomicBool::new(false) }
    }

    /// `KeInitializeDpc(routine, context)`. Any IRQL.
    ///
    /// # Safety
    /// `self` does not move from now on (it lives in pool memory), is not
    /// queued, and `context` stays valid until this `Dpc` is dropped (the
    /// routine may run until then).
    pub unsafe fn init(&self, routine: KDEFERRED_ROUTINE, context: *const c_void) {
        // SAFETY: caller contract; the KDPC is ours and not queued.
        unsafe { KeInitializeDpc(self.raw.get(), routine, context.cast_mut()) };
        self.initialized.store(true, Ordering::Release);
    }

    /// `KeInsertQueueDpc`: runs the routine soon at DISPATCH_LEVEL. Any
    /// IRQL. Returns whether it was newly queued (false: already queued, or
    /// not initialised).
    pub fn queue(&self) -> bool {
        if !self.initialized.load(Ordering::Acquire) {
            return false;
        }
        // SAFETY: an initialised KDPC that does not move (init contract).
        unsafe { KeInsertQueueDpc(self.raw.get(), core::ptr::null_mut(), core::ptr::null_mut()) != 0 }
    }
}

impl Dpc {
    /// Removes the DPC from its queue and waits until a run already started
    /// has finished. PASSIVE_LEVEL (`KeFlushQueuedDpcs`). The caller makes
    /// sure nothing queues it again afterwards if it is about to free the
    /// routine's context.
    pub fn flush(&self) {
        if self.initialized.load(Ordering::Acquire) {
            // SAFETY: an initialised, non-moving KDPC; after the removal and
            // the flush no run of it is queued or in progress, so the memory
            // may be freed.
            unsafe {
                let _ = KeRemoveQueueDpc(self.raw.get());
                KeFlushQueuedDpcs();
            }
        }
    }
}

impl Drop for Dpc {
    /// PASSIVE_LEVEL.
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn kdpc_layout_is_the_x64_one() {
        assert_eq!(size_of::<KDPC>(), 0x40);
        assert_eq!(offset_of!(KDPC, DeferredRoutine), 0x18);
        assert_eq!(offset_of!(KDPC, DeferredContext), 0x20);
        assert_eq!(offset_of!(KDPC, DpcData), 0x38);
    }
}
