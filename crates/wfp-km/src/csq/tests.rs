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
    assert_eq!(offset_of!(IRP, Tail) + offset_of!(windows_sys::Wdk::Foundation::IRP_3_0, Anonymous1), 0x78);
    assert_eq!(offset_of!(windows_sys::Wdk::Foundation::FILE_OBJECT, FsContext2), 0x20);
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
    /// File objects whose IRP_MJ_CLEANUP ran (FsContext2 == CLEANED_UP).
    static CLEANED: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}
fn clean_up(file: usize) {
    CLEANED.with(|c| c.borrow_mut().push(file));
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
    fn file_cleaned_up(&self) -> bool {
        let f = fake(*self).1;
        CLEANED.with(|c| c.borrow().contains(&f))
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
        fn file_cleaned_up(&self) -> bool {
            false
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

#[test]
fn a_request_arriving_after_its_handles_cleanup_is_refused() {
    // A READ_EVENTS already past the handle lookup when IRP_MJ_CLEANUP of
    // that handle ran: it must not be parked (nothing would complete it).
    let mut q: Slots<H, 4> = Slots::new();
    let (a, b) = (new_irp(40), new_irp(41));
    q.insert(a).unwrap();
    clean_up(40);
    let mut out = [None; 4];
    assert_eq!(q.take_matching(Some(40), &mut out), 1);
    let late = new_irp(40);
    assert_eq!(q.insert(late), Err(PendError::CleanedUp));
    assert_eq!(PendError::CleanedUp.status(), NtStatus::CANCELLED);
    assert!(!fake(late).0.routine.get() && !fake(late).0.pending.get(), "refused before becoming cancellable");
    assert_eq!(q.insert(b), Ok(()), "other handles are unaffected");
}

#[test]
fn a_request_taken_out_and_put_back_after_cleanup_is_refused() {
    // The completion DPC takes a read out (no longer cancellable, so the
    // cleanup cannot see it), finds the records gone and puts it back after
    // the cleanup ran: the put-back must fail so the DPC completes it.
    let mut q: Slots<H, 4> = Slots::new();
    let a = new_irp(50);
    q.insert(a).unwrap();
    assert_eq!(q.take_next(), Some(a));
    clean_up(50);
    let mut out = [None; 4];
    assert_eq!(q.take_matching(Some(50), &mut out), 0, "the cleanup missed it");
    assert_eq!(q.insert(a), Err(PendError::CleanedUp));
    assert!(!q.holds_file(50));
}

#[derive(Clone, Debug)]
enum Op {
    /// A READ_EVENTS of handle `f` tries to park.
    Pend(usize),
    /// The DPC takes the oldest out, then either completes it or puts it back.
    Take { put_back: bool },
    /// IoCancelIrp of the n-th live request: Cancel = TRUE, routine taken.
    CancelStart(usize),
    /// The cancel routine of the n-th cancel in flight runs (remove + complete).
    CancelRun(usize),
    /// IRP_MJ_CLEANUP of handle `f`.
    Cleanup(usize),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (0usize..3).prop_map(Op::Pend),
        any::<bool>().prop_map(|put_back| Op::Take { put_back }),
        (0usize..8).prop_map(Op::CancelStart),
        (0usize..8).prop_map(Op::CancelRun),
        (0usize..3).prop_map(Op::Cleanup),
    ]
}

proptest::proptest! {
    /// Any interleaving of parking, the DPC's take-out/put-back, cancels
    /// (split into IoCancelIrp and the later cancel routine) and cleanups:
    /// after a handle's cleanup no request of it is queued except one its
    /// cancel routine owns, and in the end every request is completed
    /// exactly once.
    #[test]
    fn after_cleanup_nothing_of_that_handle_stays_parked(ops in proptest::collection::vec(op(), 1..60)) {
        CLEANED.with(|c| c.borrow_mut().clear());
        let base = 1000 + TABLE.with(|t| t.borrow().len()) * 10;
        let file = |f: usize| base + f;
        let mut q: Slots<H, 4> = Slots::new();
        let mut completions: std::collections::HashMap<usize, u32> = Default::default();
        fn done(c: &mut std::collections::HashMap<usize, u32>, h: H) {
            *c.entry(h.0).or_default() += 1;
        }
        let mut created: Vec<H> = Vec::new();
        let mut cancels: Vec<H> = Vec::new();
        let mut cleaned: Vec<usize> = Vec::new();
        for op in ops {
            match op {
                Op::Pend(f) => {
                    let h = new_irp(file(f));
                    created.push(h);
                    if q.insert(h).is_err() { done(&mut completions, h); }
                }
                Op::Take { put_back } => {
                    if let Some(h) = q.take_next() {
                        if !put_back || q.insert(h).is_err() { done(&mut completions, h); }
                    }
                }
                Op::CancelStart(n) => {
                    let live: Vec<H> = created.iter().copied().filter(|h| !completions.contains_key(&h.0) && !cancels.contains(h)).collect();
                    if let Some(h) = live.get(n % live.len().max(1)).copied() {
                        if io_cancel(h) { cancels.push(h); }
                    }
                }
                Op::CancelRun(n) => {
                    if !cancels.is_empty() {
                        let h = cancels.remove(n % cancels.len());
                        q.remove(&h);
                        done(&mut completions, h); // by construction, on every path
                    }
                }
                Op::Cleanup(f) => {
                    clean_up(file(f));
                    cleaned.push(file(f));
                    let mut out = [None; 4];
                    q.take_matching(Some(file(f)), &mut out);
                    for h in out.into_iter().flatten() { done(&mut completions, h); }
                }
            }
            for f in &cleaned {
                for h in &created {
                    let queued = q.slots.iter().flatten().any(|(_, i)| i == h);
                    proptest::prop_assert!(!(queued && fake(*h).1 == *f && !cancels.contains(h)),
                        "request {:?} of cleaned-up handle {} is still parked", h, f);
                }
            }
        }
        // Unload: the cancel routines in flight run, then cancel_all.
        for h in cancels.drain(..) { q.remove(&h); done(&mut completions, h); }
        let mut out = [None; 4];
        q.take_matching(None, &mut out);
        for h in out.into_iter().flatten() { done(&mut completions, h); }
        proptest::prop_assert!(q.is_empty());
        for h in &created {
            proptest::prop_assert_eq!(completions.get(&h.0).copied(), Some(1), "request {:?}", h);
        }
    }
}
