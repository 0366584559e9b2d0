//! A cancel-safe queue of pended IRPs (the `IoSetCancelRoutine` pattern with
//! a driver spin lock, as the WDK's "cancel-safe IRP queue" documents it;
//! the queue is a fixed array, so pending never allocates).
//!
//! # Ownership
//!
//! An IRP in the queue is owned by exactly one of:
//!
//! * the queue, while its cancel routine is set: whoever takes it out must
//!   first win `IoSetCancelRoutine(irp, NULL)` (get the routine back); then
//!   it removes the entry and completes the IRP;
//! * the cancel routine, once the I/O manager has exchanged the routine to
//!   NULL (`IoCancelIrp`): every other path then leaves the entry alone, and
//!   the cancel routine removes it (under the queue lock) and completes it.
//!
//! Inserting sets the routine first and then looks at `Irp->Cancel`: if a
//! cancel came earlier and the insert gets the routine back, the IRP is not
//! queued (the caller completes it); if the I/O manager got the routine, the
//! IRP is queued anyway so the cancel routine finds it. All list changes
//! happen under the spin lock, and the cancel routine takes that lock after
//! releasing the cancel spin lock, so no lock order can invert. Every pended
//! IRP is thus completed exactly once, by whoever owns it.
//!
//! # Nothing is touched after a completion
//!
//! Completing the last outstanding IRP of a driver is what lets the I/O
//! manager run a deferred DriverUnload, which frees the queue's owner. So
//! every path here does its bookkeeping (removal, the owner's [`Waiters`]
//! count) under the lock *before* `IoCompleteRequest`, and after it touches
//! only its own stack: [`IrpQueue::pend_unless`] returns without touching
//! the queue once the IRP is cancellable; the cancel routine
//! ([`cancel_routine`]) finds its queue through the IRP itself
//! (`Tail.Overlay.DriverContext[0]`, written before the routine is set), so
//! it needs no global, and it completes the IRP on every path (there is no
//! branch that returns without completing); [`IrpQueue::cancel_file`] and
//! [`IrpQueue::cancel_all`] take the IRPs out first and complete them last.
//! What remains after the final completion is the routine's epilogue (image
//! code), as in every WDM driver.
//!
//! # Cleanup
//!
//! `IRP_MJ_CLEANUP` of a handle ([`IrpQueue::cancel_file`]) marks its file
//! object "cleaned up" (`FsContext2`, which the I/O manager leaves to the
//! device's driver) and takes its IRPs out, both under the queue lock; every
//! insert checks the mark under the same lock and refuses with
//! `STATUS_CANCELLED`. So a request that passed the handle lookup before the
//! cleanup, or one a consumer took out and puts back, can never stay parked
//! after its handle's cleanup.

use crate::irp::Irp;
use crate::status::NtStatus;
use crate::sync::SpinLock;
use core::ffi::c_void;
use core::ptr::{addr_of, addr_of_mut, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IRP};
use windows_sys::Wdk::System::SystemServices::IoReleaseCancelSpinLock;
use wfp_km_sys::ntos::SL_PENDING_RETURNED;

/// A driver cancel routine (`DRIVER_CANCEL`).
pub type CancelRoutine = unsafe extern "system" fn(device: *mut DEVICE_OBJECT, irp: *mut IRP);

/// The value [`IrpQueue::cancel_file`] writes into `FILE_OBJECT::FsContext2`
/// of a handle whose cleanup ran. The I/O manager zeroes a new file object,
/// and Weir stores nothing else there.
pub const CLEANED_UP: usize = 0x434c_4541_4e45_4455; // "CLEANEDU"

/// What the queue needs from a pended request; implemented by the kernel's
/// IRP ([`QueuedIrp`]) and by host-test fakes.
pub trait Cancelable: Copy + Eq {
    /// `IoSetCancelRoutine(irp, on ? routine : NULL)`; returns whether the
    /// previous routine was set.
    fn set_cancel(&self, on: bool) -> bool;
    /// `Irp->Cancel`.
    fn cancel_requested(&self) -> bool;
    /// The file object (handle) the request came through.
    fn file_object(&self) -> usize;
    /// Whether `IRP_MJ_CLEANUP` already ran for that file object (read
    /// under the queue lock).
    fn file_cleaned_up(&self) -> bool;
    /// `IoMarkIrpPending`.
    fn mark_pending(&self);
}

/// The owner's count of parked requests, kept by the queue: `arm` before a
/// parking attempt looks at the owner's data a last time, `disarm` (under
/// the queue lock, before any completion) for every request that leaves
/// the queue or was not parked. Producers read it to decide whether to wake
/// a consumer (Weir: `weir_events::WakeGate`).
pub trait Waiters: Sync {
    /// A request is about to park.
    fn arm(&self);
    /// A request left (or never entered) the queue.
    fn disarm(&self);
}

/// Why a request was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendError {
    /// Every slot is taken.
    Full,
    /// The request was cancelled before it could be queued.
    Cancelled,
    /// Its handle's `IRP_MJ_CLEANUP` already ran.
    CleanedUp,
}

impl PendError {
    /// The status to complete the refused request with.
    pub fn status(self) -> NtStatus {
        match self {
            Self::Full => NtStatus::INSUFFICIENT_RESOURCES,
            Self::Cancelled | Self::CleanedUp => NtStatus::CANCELLED,
        }
    }
}

/// The queue's state; every method runs under the queue's lock.
pub struct Slots<I, const N: usize> {
    slots: [Option<(u64, I)>; N],
    next_seq: u64,
}

impl<I: Cancelable, const N: usize> Default for Slots<I, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: Cancelable, const N: usize> Slots<I, N> {
    /// No request queued.
    pub const fn new() -> Self {
        Self { slots: [None; N], next_seq: 0 }
    }

    /// Queues `irp` (see the module documentation for the cancel race and
    /// the cleanup mark).
    pub fn insert(&mut self, irp: I) -> Result<(), PendError> {
        if irp.file_cleaned_up() {
            return Err(PendError::CleanedUp);
        }
        let seq = self.next_seq;
        let Some(slot) = self.slots.iter_mut().find(|s| s.is_none()) else {
            return Err(PendError::Full);
        };
        irp.set_cancel(true);
        if irp.cancel_requested() && irp.set_cancel(false) {
            // Cancelled before we got here, and the routine is ours again:
            // the cancel routine will not run.
            return Err(PendError::Cancelled);
        }
        irp.mark_pending();
        *slot = Some((seq, irp));
        self.next_seq = seq.wrapping_add(1);
        Ok(())
    }

    /// Takes the oldest request whose cancel routine this call gets back.
    /// Entries whose routine the I/O manager already took stay for their
    /// cancel routine (`set_cancel(false)` returns false for them and
    /// changes nothing).
    pub fn take_next(&mut self) -> Option<I> {
        let mut floor: Option<u64> = None;
        loop {
            let (seq, index, irp) = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.map(|(seq, irp)| (seq, i, irp)))
                .filter(|(seq, _, _)| floor.is_none_or(|f| *seq > f))
                .min_by_key(|(seq, _, _)| *seq)?;
            if irp.set_cancel(false) {
                if let Some(s) = self.slots.get_mut(index) {
                    *s = None;
                }
                return Some(irp);
            }
            floor = Some(seq);
        }
    }

    /// For the cancel routine: removes `irp`; true if it was queued.
    pub fn remove(&mut self, irp: &I) -> bool {
        match self.slots.iter_mut().find(|s| s.is_some_and(|(_, i)| i == *irp)) {
            Some(slot) => {
                *slot = None;
                true
            }
            None => false,
        }
    }

    /// Takes every request of `file_object` (every request with `None`)
    /// whose cancel routine this call gets back, into `out`; returns how
    /// many.
    pub fn take_matching(&mut self, file_object: Option<usize>, out: &mut [Option<I>; N]) -> usize {
        let mut n = 0;
        for slot in &mut self.slots {
            let Some((_, irp)) = *slot else { continue };
            if file_object.is_some_and(|f| irp.file_object() != f) {
                continue;
            }
            if irp.set_cancel(false) {
                *slot = None;
                if let Some(o) = out.get_mut(n) {
                    *o = Some(irp);
                    n += 1;
                }
            }
        }
        n
    }

    /// Whether a request of `file_object` is queued.
    pub fn holds_file(&self, file_object: usize) -> bool {
        self.slots.iter().flatten().any(|(_, i)| i.file_object() == file_object)
    }

    /// Requests in the queue (including ones a cancel routine is about to
    /// remove).
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// No request queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A pended kernel IRP and the cancel routine its queue installs.
///
/// # Invariants
/// `raw` is an IRP this driver pended (it returned STATUS_PENDING for it)
/// and has not completed.
#[derive(Clone, Copy)]
pub struct QueuedIrp {
    raw: NonNull<IRP>,
    routine: CancelRoutine,
}

/// Identity is the IRP (the routine is the same for a whole queue).
impl PartialEq for QueuedIrp {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl Eq for QueuedIrp {}

// SAFETY: a pended IRP may be completed from any thread; the queue's lock
// and the cancel-routine exchange decide who does.
unsafe impl Send for QueuedIrp {}

impl QueuedIrp {
    /// The file object of the current stack location (null if none).
    fn file_object_ptr(&self) -> *mut windows_sys::Wdk::Foundation::FILE_OBJECT {
        // SAFETY: type invariant: live IRP; its current stack location is
        // ours until completion (null is handled).
        unsafe {
            let stack = addr_of!((*self.raw.as_ptr()).Tail.Overlay.Anonymous2.Anonymous.CurrentStackLocation).read();
            if stack.is_null() {
                core::ptr::null_mut()
            } else {
                addr_of!((*stack).FileObject).read()
            }
        }
    }
}

impl Cancelable for QueuedIrp {
    fn set_cancel(&self, on: bool) -> bool {
        let new = if on { self.routine as *mut c_void } else { core::ptr::null_mut() };
        // SAFETY: type invariant: live IRP. CancelRoutine is a pointer-sized,
        // pointer-aligned field the I/O manager also exchanges atomically;
        // this is IoSetCancelRoutine (InterlockedExchangePointer).
        let old = unsafe {
            AtomicPtr::from_ptr(addr_of_mut!((*self.raw.as_ptr()).CancelRoutine).cast::<*mut c_void>()).swap(new, Ordering::SeqCst)
        };
        !old.is_null()
    }

    fn cancel_requested(&self) -> bool {
        // SAFETY: type invariant: live IRP. `Cancel` is a BOOLEAN byte
        // IoCancelIrp writes concurrently: read it atomically as a byte.
        unsafe { AtomicU8::from_ptr(addr_of_mut!((*self.raw.as_ptr()).Cancel).cast::<u8>()).load(Ordering::SeqCst) != 0 }
    }

    fn file_object(&self) -> usize {
        self.file_object_ptr() as usize
    }

    fn file_cleaned_up(&self) -> bool {
        let file = self.file_object_ptr();
        if file.is_null() {
            return false;
        }
        // SAFETY: a live IRP holds a reference on its file object, so the
        // object is live; FsContext2 is written only under this queue's lock
        // (cancel_file), which the caller holds.
        unsafe { addr_of!((*file).FsContext2).read() as usize == CLEANED_UP }
    }

    fn mark_pending(&self) {
        // SAFETY: type invariant: live IRP owned by this driver, current
        // stack location ours; IoMarkIrpPending sets SL_PENDING_RETURNED in
        // its Control byte.
        unsafe {
            let stack = addr_of!((*self.raw.as_ptr()).Tail.Overlay.Anonymous2.Anonymous.CurrentStackLocation).read();
            if !stack.is_null() {
                let control = addr_of_mut!((*stack).Control);
                control.write(control.read() | SL_PENDING_RETURNED);
            }
        }
    }
}

impl QueuedIrp {
    fn into_irp(self) -> Irp {
        Irp { raw: self.raw }
    }
}

/// The outcome of [`IrpQueue::pend_unless`].
#[must_use = "a request handed back must be completed"]
pub enum Pend {
    /// Queued: the dispatch routine returns `STATUS_PENDING` and touches
    /// neither the IRP nor the queue again.
    Parked,
    /// `ready` said there is work: not queued, handed back.
    Ready(Irp),
    /// Refused: complete it with this status.
    Refused(Irp, NtStatus),
}

/// Pended IRPs (at most `N`), cancel-safe, with the owner's [`Waiters`]
/// count. Must live in non-paged memory that outlives every IRP in it (its
/// owner's teardown calls [`IrpQueue::cancel_all`] and waits for
/// [`IrpQueue::is_empty`]).
pub struct IrpQueue<W: Waiters, const N: usize> {
    slots: SpinLock<Slots<QueuedIrp, N>>,
    waiters: W,
}

impl<W: Waiters, const N: usize> IrpQueue<W, N> {
    /// An empty queue; its IRPs get [`cancel_routine`] as cancel routine.
    pub const fn new(waiters: W) -> Self {
        Self { slots: SpinLock::new(Slots::new()), waiters }
    }

    /// The owner's count.
    pub fn waiters(&self) -> &W {
        &self.waiters
    }

    fn queued(&self, irp: &Irp) -> QueuedIrp {
        QueuedIrp { raw: irp.raw, routine: cancel_routine::<W, N> }
    }

    /// Pends `irp` unless `ready()` (called under the queue lock, after
    /// [`Waiters::arm`]) says there is work for it now: the "arm, then look
    /// again" half of a no-lost-wake-up handshake, with the look inside the
    /// lock a consumer takes to find parked IRPs. IRQL <= DISPATCH_LEVEL.
    ///
    /// After [`Pend::Parked`] this call has released the lock and touches
    /// nothing of the queue: the IRP may already be cancelled and
    /// completed on another CPU.
    pub fn pend_unless(&self, irp: Irp, ready: impl FnOnce() -> bool) -> Pend {
        self.waiters.arm();
        let queued = self.queued(&irp);
        // The cancel routine finds its queue through the IRP: written
        // before the routine is set (in insert), read only by it.
        irp.set_driver_context((self as *const Self).cast());
        let mut slots = self.slots.lock();
        if ready() {
            self.waiters.disarm();
            return Pend::Ready(irp);
        }
        match slots.insert(queued) {
            // Ownership moved to the queue (or to the cancel routine); the
            // guard's release is the last touch of the queue, and a cancel
            // routine waits for it before it can complete the IRP.
            Ok(()) => Pend::Parked,
            Err(e) => {
                self.waiters.disarm();
                Pend::Refused(irp, e.status())
            }
        }
    }

    /// Takes the oldest pended IRP out, no longer cancellable (and
    /// disarmed); the caller completes it. IRQL <= DISPATCH_LEVEL.
    pub fn next(&self) -> Option<Irp> {
        let mut slots = self.slots.lock();
        let irp = slots.take_next()?;
        self.waiters.disarm();
        Some(irp.into_irp())
    }

    /// Takes every pended IRP out, no longer cancellable (and disarmed),
    /// except those a cancel routine is already completing; the caller
    /// completes them or pends them again. For a consumer that serves each
    /// parked request from its own source (Weir: one cursor per handle).
    /// IRQL <= DISPATCH_LEVEL.
    pub fn take_all(&self) -> [Option<Irp>; N] {
        let mut taken = [None; N];
        let mut slots = self.slots.lock();
        let n = slots.take_matching(None, &mut taken);
        for _ in 0..n {
            self.waiters.disarm();
        }
        drop(slots);
        taken.map(|q| q.map(QueuedIrp::into_irp))
    }

    /// `IRP_MJ_CLEANUP`: marks the file object of `cleanup` cleaned up (so
    /// nothing can be queued for it any more) and completes its pended IRPs
    /// with `STATUS_CANCELLED`, except those a cancel routine is already
    /// completing (it does so itself). Returns how many it completed. IRQL
    /// <= DISPATCH_LEVEL.
    pub fn cancel_file(&self, cleanup: &Irp) -> usize {
        let file_object = cleanup.file_object();
        if file_object == 0 {
            return 0;
        }
        self.cancel_matching(Some(file_object), || cleanup.mark_file_cleaned_up(CLEANED_UP))
    }

    /// Completes every pended IRP with `STATUS_CANCELLED` (driver unload),
    /// except those a cancel routine is already completing.
    pub fn cancel_all(&self) -> usize {
        self.cancel_matching(None, || {})
    }

    fn cancel_matching(&self, file_object: Option<usize>, mark: impl FnOnce()) -> usize {
        let mut taken = [None; N];
        let n = {
            let mut slots = self.slots.lock();
            mark();
            let n = slots.take_matching(file_object, &mut taken);
            for _ in 0..n {
                self.waiters.disarm();
            }
            n
        };
        // Bookkeeping done: from here on only the IRPs (on our stack).
        for irp in taken.into_iter().flatten() {
            irp.into_irp().complete(NtStatus::CANCELLED, 0);
        }
        n
    }

    /// The cancel routine's bookkeeping: removes `irp` and disarms, under
    /// the lock. The caller completes the IRP afterwards.
    fn forget(&self, irp: NonNull<IRP>) {
        let queued = QueuedIrp { raw: irp, routine: cancel_routine::<W, N> };
        let mut slots = self.slots.lock();
        if slots.remove(&queued) {
            self.waiters.disarm();
        }
    }

    /// IRPs in the queue now.
    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    /// No IRP in the queue (none parked, and no cancel routine still to
    /// remove one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The cancel routine of every [`IrpQueue`] (`DRIVER_CANCEL`; the I/O
/// manager calls it at DISPATCH_LEVEL with the cancel spin lock held).
/// Releases the cancel spin lock, lets the IRP's queue (read from the IRP)
/// forget it, then completes it with `STATUS_CANCELLED`: on every path, so
/// it can never return with the IRP still owned and not completed.
///
/// # Safety
/// Called only by the I/O manager for an IRP whose cancel routine an
/// `IrpQueue<W, N>` set: `DriverContext[0]` is then that queue, alive while
/// the IRP is in it.
pub unsafe extern "system" fn cancel_routine<W: Waiters, const N: usize>(_device: *mut DEVICE_OBJECT, irp: *mut IRP) {
    let Some(raw) = NonNull::new(irp) else { return };
    // SAFETY: the I/O manager called us with the cancel spin lock held and
    // Irp->CancelIrql set to the IRQL to restore; we release it before
    // taking our own lock (no lock-order inversion).
    unsafe {
        let irql = addr_of!((*raw.as_ptr()).CancelIrql).read();
        IoReleaseCancelSpinLock(irql);
    }
    // SAFETY: contract of this function: DriverContext[0] is the queue that
    // set this routine (pend_unless writes it before insert sets the
    // routine), and the queue outlives every IRP in it; the entry is still
    // in the queue until `forget` removes it, so the queue is alive here.
    let queue = unsafe {
        addr_of!((*raw.as_ptr()).Tail.Overlay.Anonymous1.Anonymous.DriverContext[0]).read().cast::<IrpQueue<W, N>>().as_ref()
    };
    if let Some(queue) = queue {
        queue.forget(raw);
    }
    // The I/O manager gave us the IRP by exchanging its routine: ours to
    // complete, and the last thing this routine does.
    Irp { raw }.complete(NtStatus::CANCELLED, 0);
}

#[cfg(test)]
mod tests;
