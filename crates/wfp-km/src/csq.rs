//! A cancel-safe queue of pended IRPs (the `IoSetCancelRoutine` pattern with
//! a driver spin lock, as the WDK's "cancel-safe IRP queue" documents it;
//! the queue is a fixed array, so pending never allocates).
//!
//! Ownership rule — an IRP in the queue is owned by exactly one of:
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

use crate::irp::Irp;
use crate::status::NtStatus;
use crate::sync::SpinLock;
use core::ptr::{addr_of, addr_of_mut, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IRP};
use windows_sys::Wdk::System::SystemServices::IoReleaseCancelSpinLock;
use wfp_km_sys::ntos::SL_PENDING_RETURNED;

/// A driver cancel routine (`DRIVER_CANCEL`).
pub type CancelRoutine = unsafe extern "system" fn(device: *mut DEVICE_OBJECT, irp: *mut IRP);

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
    /// `IoMarkIrpPending`.
    fn mark_pending(&self);
}

/// Why a request was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendError {
    /// Every slot is taken.
    Full,
    /// The request was cancelled before it could be queued.
    Cancelled,
}

impl PendError {
    /// The status to complete the refused request with.
    pub fn status(self) -> NtStatus {
        match self {
            Self::Full => NtStatus::INSUFFICIENT_RESOURCES,
            Self::Cancelled => NtStatus::CANCELLED,
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
    pub const fn new() -> Self {
        Self { slots: [None; N], next_seq: 0 }
    }

    /// Queues `irp` (see the module documentation for the cancel race).
    pub fn insert(&mut self, irp: I) -> Result<(), PendError> {
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

    /// Requests in the queue (including ones a cancel routine is about to
    /// remove).
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A pended kernel IRP and the cancel routine its queue installs.
///
/// Invariant: `raw` is an IRP this driver pended (it returned
/// STATUS_PENDING for it) and has not completed.
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

impl Cancelable for QueuedIrp {
    fn set_cancel(&self, on: bool) -> bool {
        let new = if on { self.routine as *mut core::ffi::c_void } else { core::ptr::null_mut() };
        // SAFETY: invariant: live IRP. CancelRoutine is a pointer-sized,
        // pointer-aligned field the I/O manager also exchanges atomically;
        // this is IoSetCancelRoutine (InterlockedExchangePointer).
        let old = unsafe {
            AtomicPtr::from_ptr(addr_of_mut!((*self.raw.as_ptr()).CancelRoutine).cast::<*mut core::ffi::c_void>())
                .swap(new, Ordering::SeqCst)
        };
        !old.is_null()
    }

    fn cancel_requested(&self) -> bool {
        // SAFETY: invariant: live IRP. `Cancel` is a BOOLEAN byte IoCancelIrp
        // writes concurrently: read it atomically as a byte.
        unsafe { AtomicU8::from_ptr(addr_of_mut!((*self.raw.as_ptr()).Cancel).cast::<u8>()).load(Ordering::SeqCst) != 0 }
    }

    fn file_object(&self) -> usize {
        // SAFETY: invariant: live IRP; its current stack location is ours
        // until completion (null is handled).
        unsafe {
            let stack = addr_of!((*self.raw.as_ptr()).Tail.Overlay.Anonymous2.Anonymous.CurrentStackLocation).read();
            if stack.is_null() {
                0
            } else {
                addr_of!((*stack).FileObject).read() as usize
            }
        }
    }

    fn mark_pending(&self) {
        // SAFETY: invariant: live IRP owned by this driver, current stack
        // location ours; IoMarkIrpPending sets SL_PENDING_RETURNED in its
        // Control byte.
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

/// Pended IRPs (at most `N`), cancel-safe. Must live in non-paged memory.
pub struct IrpQueue<const N: usize> {
    slots: SpinLock<Slots<QueuedIrp, N>>,
    routine: CancelRoutine,
}

impl<const N: usize> IrpQueue<N> {
    /// An empty queue whose IRPs get `routine` as cancel routine; that
    /// routine must call [`IrpQueue::cancel`] on this queue.
    pub const fn new(routine: CancelRoutine) -> Self {
        Self { slots: SpinLock::new(Slots::new()), routine }
    }

    /// Pends `irp` (marks it pending, makes it cancellable). On success the
    /// dispatch routine must return `STATUS_PENDING` and not touch the IRP
    /// again. On failure the IRP is handed back with the status to
    /// complete it with. IRQL <= DISPATCH_LEVEL.
    pub fn pend(&self, irp: Irp) -> Result<(), (Irp, NtStatus)> {
        let queued = QueuedIrp { raw: irp.raw, routine: self.routine };
        let result = self.slots.lock().insert(queued);
        match result {
            // Ownership moved to the queue (or to the cancel routine); `irp`
            // is a plain pointer wrapper and is simply not used again.
            Ok(()) => Ok(()),
            Err(e) => Err((irp, e.status())),
        }
    }

    /// Takes the oldest pended IRP out, no longer cancellable; the caller
    /// completes it. IRQL <= DISPATCH_LEVEL.
    pub fn next(&self) -> Option<Irp> {
        self.slots.lock().take_next().map(QueuedIrp::into_irp)
    }

    /// The body of the cancel routine: releases the cancel spin lock, then
    /// removes `irp` and completes it with `STATUS_CANCELLED`. Returns
    /// whether it did (false only for an IRP this queue never held).
    ///
    /// # Safety
    /// Called from this queue's cancel routine, at DISPATCH_LEVEL with the
    /// cancel spin lock held, with the IRP the I/O manager passed.
    pub unsafe fn cancel(&self, irp: *mut IRP) -> bool {
        let Some(raw) = NonNull::new(irp) else { return false };
        // SAFETY: the I/O manager called us with the cancel spin lock held
        // and Irp->CancelIrql set to the IRQL to restore; we release it
        // before taking our own lock.
        unsafe {
            let irql = addr_of!((*raw.as_ptr()).CancelIrql).read();
            IoReleaseCancelSpinLock(irql);
        }
        let queued = QueuedIrp { raw, routine: self.routine };
        let removed = self.slots.lock().remove(&queued);
        if removed {
            queued.into_irp().complete(NtStatus::CANCELLED, 0);
        }
        removed
    }

    /// Completes every pended IRP of `file_object` (`IRP_MJ_CLEANUP` of a
    /// handle) with `STATUS_CANCELLED`, except those a cancel routine is
    /// already completing. Returns how many it completed. IRQL <=
    /// DISPATCH_LEVEL.
    pub fn cancel_file(&self, file_object: usize) -> usize {
        self.cancel_matching(Some(file_object))
    }

    /// Completes every pended IRP with `STATUS_CANCELLED` (driver unload),
    /// except those a cancel routine is already completing.
    pub fn cancel_all(&self) -> usize {
        self.cancel_matching(None)
    }

    fn cancel_matching(&self, file_object: Option<usize>) -> usize {
        let mut taken = [None; N];
        let n = self.slots.lock().take_matching(file_object, &mut taken);
        for irp in taken.into_iter().flatten() {
            irp.into_irp().complete(NtStatus::CANCELLED, 0);
        }
        n
    }

    /// IRPs in the queue now.
    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use std::cell::Cell;
    use std::rc::Rc;
    use windows_sys::Wdk::Foundation::IO_STACK_LOCATION;

    #[test]
    fn irp_fields_used_here_have_the_x64_offsets() {
        assert_eq!(offset_of!(IRP, Cancel), 0x44);
        assert_eq!(offset_of!(IRP, CancelIrql), 0x45);
        assert_eq!(offset_of!(IRP, CancelRoutine), 0x68);
        assert_eq!(offset_of!(IO_STACK_LOCATION, Control), 0x03);
        assert_eq!(offset_of!(IO_STACK_LOCATION, FileObject), 0x30);
    }

    /// A fake IRP: its cancel routine slot, Cancel flag and pending mark.
    #[derive(Default)]
    struct State {
        routine: Cell<bool>,
        cancel: Cell<bool>,
        pending: Cell<bool>,
    }

    #[derive(Clone)]
    struct Fake(Rc<State>, usize);

    impl PartialEq for Fake {
        fn eq(&self, o: &Self) -> bool {
            Rc::ptr_eq(&self.0, &o.0)
        }
    }
    impl Eq for Fake {}

    /// `Cancelable` needs Copy: index into a table of fakes instead.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    struct H(usize);

    thread_local! {
        static TABLE: std::cell::RefCell<Vec<Fake>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    fn fake(h: H) -> Fake {
        TABLE.with(|t| t.borrow()[h.0].clone())
    }
    fn new_irp(file: usize) -> H {
        TABLE.with(|t| {
            let mut t = t.borrow_mut();
            t.push(Fake(Rc::new(State::default()), file));
            H(t.len() - 1)
        })
    }

    impl Cancelable for H {
        fn set_cancel(&self, on: bool) -> bool {
            fake(*self).0.routine.replace(on)
        }
        fn cancel_requested(&self) -> bool {
            fake(*self).0.cancel.get()
        }
        fn file_object(&self) -> usize {
            fake(*self).1
        }
        fn mark_pending(&self) {
            fake(*self).0.pending.set(true);
        }
    }

    /// IoCancelIrp's first half: Cancel = TRUE, take the routine. Returns
    /// whether the cancel routine would run.
    fn io_cancel(h: H) -> bool {
        let f = fake(h);
        f.0.cancel.set(true);
        f.0.routine.replace(false)
    }

    #[test]
    fn pend_take_in_order_and_full() {
        let mut q: Slots<H, 2> = Slots::new();
        let (a, b, c) = (new_irp(1), new_irp(1), new_irp(1));
        assert_eq!(q.insert(a), Ok(()));
        assert_eq!(q.insert(b), Ok(()));
        assert_eq!(q.insert(c), Err(PendError::Full));
        assert!(!fake(c).0.pending.get(), "a refused IRP is not marked pending");
        assert!(!fake(c).0.routine.get());
        assert!(fake(a).0.pending.get() && fake(a).0.routine.get());
        assert_eq!(q.take_next(), Some(a));
        assert!(!fake(a).0.routine.get(), "taken out = no longer cancellable");
        assert_eq!(q.insert(c), Ok(()));
        assert_eq!(q.take_next(), Some(b));
        assert_eq!(q.take_next(), Some(c));
        assert_eq!(q.take_next(), None);
    }

    #[test]
    fn cancelled_before_insert_is_refused() {
        let mut q: Slots<H, 4> = Slots::new();
        let a = new_irp(1);
        fake(a).0.cancel.set(true); // IoCancelIrp ran before the routine was set
        assert_eq!(q.insert(a), Err(PendError::Cancelled));
        assert!(q.is_empty());
        assert_eq!(PendError::Cancelled.status(), NtStatus::CANCELLED);
    }

    #[test]
    fn cancel_racing_the_taker_leaves_the_irp_to_the_cancel_routine() {
        let mut q: Slots<H, 4> = Slots::new();
        let (a, b) = (new_irp(1), new_irp(1));
        q.insert(a).unwrap();
        q.insert(b).unwrap();
        // The I/O manager takes a's routine; its cancel routine waits for
        // our lock. The taker must skip a and return b.
        assert!(io_cancel(a));
        assert_eq!(q.take_next(), Some(b));
        assert_eq!(q.take_next(), None);
        assert_eq!(q.len(), 1, "a stays for its cancel routine");
        // Cleanup and unload leave it too.
        let mut out = [None; 4];
        assert_eq!(q.take_matching(None, &mut out), 0);
        // The cancel routine removes it exactly once.
        assert!(q.remove(&a));
        assert!(!q.remove(&a));
        assert!(q.is_empty());
    }

    #[test]
    fn cancel_after_take_finds_nothing() {
        let mut q: Slots<H, 4> = Slots::new();
        let a = new_irp(1);
        q.insert(a).unwrap();
        assert_eq!(q.take_next(), Some(a));
        // Too late: the routine is gone, IoCancelIrp calls nothing.
        assert!(!io_cancel(a));
        assert!(!q.remove(&a));
    }

    #[test]
    fn cancel_between_set_and_check_in_insert_queues_for_the_routine() {
        // IoCancelIrp ran after insert set the routine (so it took it) but
        // before insert looked at Cancel: insert must queue the IRP so the
        // cancel routine finds it. Simulated by a fake whose routine is
        // taken as soon as it is set.
        let a = new_irp(1);
        fake(a).0.cancel.set(true);
        // The first set_cancel(true) happens in insert; model the I/O
        // manager's exchange by making the later set_cancel(false) lose:
        #[derive(Debug)]
        struct Steal(H);
        impl Cancelable for Steal {
            fn set_cancel(&self, on: bool) -> bool {
                if on {
                    fake(self.0).0.routine.set(false); // stolen at once
                    false
                } else {
                    fake(self.0).0.routine.replace(false)
                }
            }
            fn cancel_requested(&self) -> bool {
                true
            }
            fn file_object(&self) -> usize {
                1
            }
            fn mark_pending(&self) {
                fake(self.0).0.pending.set(true);
            }
        }
        impl Clone for Steal {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl Copy for Steal {}
        impl PartialEq for Steal {
            fn eq(&self, o: &Self) -> bool {
                self.0 == o.0
            }
        }
        impl Eq for Steal {}
        let mut q2: Slots<Steal, 4> = Slots::new();
        assert_eq!(q2.insert(Steal(a)), Ok(()));
        assert!(fake(a).0.pending.get());
        assert_eq!(q2.take_next(), None, "owned by the cancel routine");
        assert!(q2.remove(&Steal(a)));
    }

    #[test]
    fn cleanup_takes_only_that_handles_requests() {
        let mut q: Slots<H, 4> = Slots::new();
        let (a, b, c) = (new_irp(10), new_irp(20), new_irp(10));
        for h in [a, b, c] {
            q.insert(h).unwrap();
        }
        let mut out = [None; 4];
        assert_eq!(q.take_matching(Some(10), &mut out), 2);
        let mut got: Vec<H> = out.iter().flatten().copied().collect();
        got.sort_by_key(|h| h.0);
        assert_eq!(got, vec![a, c]);
        assert_eq!(q.len(), 1);
        let mut out = [None; 4];
        assert_eq!(q.take_matching(None, &mut out), 1);
        assert_eq!(out[0], Some(b));
        assert!(q.is_empty());
    }
}
