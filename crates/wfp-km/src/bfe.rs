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

/// The dynamic session a driver keeps with BFE while it runs, and whether
/// shutdown began; the state DriverEntry, DriverUnload and the BFE state
/// callback share (all at PASSIVE_LEVEL, possibly at once). Every decision
/// (open or not, close, stop for good) is made by one of these methods on
/// the slot behind one lock ([`PassiveMutex`]), never from a value read
/// under an earlier acquisition.
///
/// Argument: `stopping` only ever goes from false to true, and only
/// [`SessionSlot::close`] with `stopping` sets it, taking the session out
/// in the same critical section; [`SessionSlot::start`] reads `stopping`
/// and stores the new session in one critical section. So once unload's
/// close has run, no start can store a session, and the one it took out is
/// the last: after unload nothing is left open. Checked by loom
/// (`session_slot_*` tests, with a check-then-act variant loom must catch):
/// `RUSTFLAGS="--cfg loom" cargo test -p wfp-km --release --lib bfe`.
pub struct SessionSlot<E> {
    engine: Option<E>,
    stopping: bool,
}

impl<E> Default for SessionSlot<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> SessionSlot<E> {
    /// No session, not stopping.
    pub const fn new() -> Self {
        Self { engine: None, stopping: false }
    }

    /// Opens a session with `open` unless one is open or shutdown began.
    /// Returns whether a session is open now. `open`'s error leaves the slot
    /// as it was.
    pub fn start<Er>(&mut self, open: impl FnOnce() -> core::result::Result<E, Er>) -> core::result::Result<bool, Er> {
        if self.stopping {
            return Ok(false);
        }
        if self.engine.is_none() {
            self.engine = Some(open()?);
        }
        Ok(true)
    }

    /// Takes the session out (dropping it closes it) and, with `stopping`,
    /// keeps the slot closed for good.
    pub fn close(&mut self, stopping: bool) -> Option<E> {
        self.stopping |= stopping;
        self.engine.take()
    }

    /// Whether a session is open.
    pub fn is_open(&self) -> bool {
        self.engine.is_some()
    }

    /// The open session, to change what it holds (no session after
    /// shutdown's close: that took it out). Neither opens nor closes one, so
    /// the argument above is unchanged.
    pub fn open_mut(&mut self) -> Option<&mut E> {
        self.engine.as_mut()
    }
}

#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use super::SessionSlot;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    /// A session that counts itself open until dropped (closed).
    struct Engine(Arc<AtomicUsize>);
    impl Drop for Engine {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn open(live: &Arc<AtomicUsize>) -> Result<Engine, ()> {
        live.fetch_add(1, Ordering::SeqCst);
        Ok(Engine(live.clone()))
    }

    /// DriverEntry starts filtering; the BFE callback reports a restart
    /// (close, then start); DriverUnload closes for good. `start` is the
    /// start under test. After all three: nothing open, nothing stored.
    fn scenario(start: fn(&Mutex<SessionSlot<Engine>>, &Arc<AtomicUsize>)) {
        loom::model(move || {
            let slot = Arc::new(Mutex::new(SessionSlot::new()));
            let live = Arc::new(AtomicUsize::new(0));
            let entry = {
                let (slot, live) = (slot.clone(), live.clone());
                thread::spawn(move || start(&slot, &live))
            };
            let bfe = {
                let (slot, live) = (slot.clone(), live.clone());
                thread::spawn(move || {
                    drop(slot.lock().unwrap().close(false));
                    start(&slot, &live);
                })
            };
            // DriverUnload (after DriverEntry returned it could not run, but
            // the BFE callback can race it: unsubscribe comes after close).
            drop(slot.lock().unwrap().close(true));
            entry.join().unwrap();
            bfe.join().unwrap();
            assert!(!slot.lock().unwrap().is_open(), "a session was stored after unload closed the slot");
            assert_eq!(live.load(Ordering::SeqCst), 0, "a session is left open after unload");
        });
    }

    fn start_locked(slot: &Mutex<SessionSlot<Engine>>, live: &Arc<AtomicUsize>) {
        let _ = slot.lock().unwrap().start(|| open(live));
    }

    #[test]
    fn session_slot_leaves_nothing_open_after_unload() {
        scenario(start_locked);
    }

    /// Check-then-act: `stopping` read under one acquisition, the session
    /// stored under another. Loom must find the interleaving where unload's
    /// close runs in between and the session outlives unload.
    #[test]
    #[should_panic(expected = "after unload")]
    fn session_slot_check_then_act_is_caught() {
        scenario(|slot, live| {
            let (stopping, open_now) = {
                let s = slot.lock().unwrap();
                (s.stopping, s.is_open())
            };
            if stopping || open_now {
                return;
            }
            let engine = open(live).unwrap();
            let mut s = slot.lock().unwrap();
            if s.engine.is_none() {
                s.engine = Some(engine);
            }
        });
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
