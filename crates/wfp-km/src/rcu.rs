//! Publishing a shared object to classifyFn on every CPU and retiring the
//! previous one safely: a two-phase epoch scheme in the style of userspace
//! RCU / sleepable RCU (SRCU).
//!
//! # Who runs where
//!
//! - **Readers** are classifyFn calls: on any number of CPUs at once, at IRQL
//!   <= DISPATCH_LEVEL. ALE layers may also classify at PASSIVE_LEVEL, where a
//!   reader can be preempted (or migrated to another CPU) in the middle of a
//!   lookup. A reader must never wait, take a lock, or allocate. Nor may it
//!   be *suspended* inside (a writer would wait for it forever): callers
//!   read at DISPATCH_LEVEL or inside a critical region
//!   ([`crate::sync::critical::CriticalRegion`]), and writers hold their lock
//!   inside one too.
//! - **The writer** is an IOCTL handler at PASSIVE_LEVEL. It may sleep.
//!   Writers are serialised among themselves by `writer` (a try-lock whose
//!   loser sleeps and retries; readers never touch it).
//!
//! # Protocol
//!
//! State: `current` (the published pointer, null = nothing), `epoch` (its
//! low bit is the *parity* new readers use), and two reader counters
//! `readers[0]`, `readers[1]`, each on its own cache line.
//!
//! Reader ([`Rcu::read`]):
//! 1. `p = epoch & 1` (R1; any value is safe, see below)
//! 2. `readers[p] += 1` (R2)
//! 3. full fence (F_r, `fence(SeqCst)`)
//! 4. `ptr = current` (R3, acquire), use `*ptr` for the whole lookup
//! 5. `readers[p] -= 1` (R4, release)
//!
//! Writer ([`Rcu::replace`]):
//! 1. `old = swap(current, new)` (W1, acquire-release)
//! 2. full fence (F_w, `fence(SeqCst)`)
//! 3. twice: flip `epoch` (W2) and wait until the counter of the parity
//!    before the flip reads 0 (W3, acquire), sleeping between checks;
//! 4. free `old`.
//!
//! This is the store-buffering (Dekker) pattern, made correct by the two
//! `SeqCst` fences: F_r and F_w are ordered one way or the other in the
//! single total order of `SeqCst` fences (C++ [atomics.fences], which Rust
//! follows).
//!
//! # Why no reader can hold `old` when it is freed
//!
//! Take a reader whose R3 returned `old`. If F_w preceded F_r, R3 (after
//! F_r) would have to see W1 (before F_w) or a later store, not `old`; so
//! F_r precedes F_w. Then every W3 load (after F_w) sees the reader's R2
//! (before F_r) or a later value of that counter: the reader is counted
//! until its R4, which it executes only after it has finished with `old`.
//!
//! Each writer waits for *both* counters (one per phase) to read 0 after
//! F_w, so whichever parity the reader used, the writer cannot pass that
//! phase until the reader's R4. The release decrement (R4) read by the
//! acquire load (W3) makes everything the reader did happen before the free.
//! R1 may return a stale parity (a reader preempted between R1 and R2 for
//! any time): that only picks which counter it is in, and both are waited
//! for.
//!
//! Why two phases and not one: a reader may load the epoch (R1), be
//! preempted, and increment a counter long after. With one phase, a reader
//! that read parity `e` before writer A's flip and then ran R2+R3 between
//! writer A and writer B is counted in `readers[e]` while B waits only for
//! `readers[1-e]`, and B frees the pointer it holds. The `loom` test
//! `one_phase_is_caught` runs exactly that broken variant and must fail.
//!
//! Why the flip at all: without it, a steady stream of readers could keep a
//! counter above 0 forever. After a flip, new readers use the other counter,
//! so the waited-for counter only drains (except for readers that read the
//! old parity just before the flip, which are few and short at DISPATCH).
//!
//! # Costs
//!
//! A read is one load, two locked read-modify-writes, one full fence
//! (`mfence` on x64) and one load; nothing waits. The counters are shared by all CPUs, so under heavy
//! parallel classification their cache lines move between CPUs (contention,
//! not serialisation: no CPU waits for another's lookup). A replace takes at
//! least two sleeps of the timer resolution (about 2 × 1–16 ms).
//!
//! Model-checked with `loom` (`RUSTFLAGS="--cfg loom" cargo test -p wfp-km
//! --release --lib rcu`, a stage of `cargo xtask test`). loom models
//! `fence(SeqCst)` but treats `SeqCst` *accesses* as acquire-release; the
//! protocol relies on the fences only. Two deliberately broken variants must
//! be caught: one phase (`rcu_one_phase_is_caught`) and acquire-release
//! instead of `SeqCst` fences (`rcu_acqrel_fences_are_caught`), so the
//! model checks the ordering argument above, not only the phase count.

use core::marker::PhantomData;
use core::ptr::{self, NonNull};

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicUsize, Ordering};
#[cfg(not(loom))]
use core::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// An owning pointer the published object lives in.
///
/// # Safety
/// `into_raw` returns a pointer that stays valid (and its target
/// shareable across threads) until it is passed back to `from_raw`, and
/// `from_raw` re-owns exactly such a pointer.
pub unsafe trait Owner: Send + Sized {
    /// What readers see.
    type Target: Sync;
    /// Gives up ownership.
    fn into_raw(self) -> NonNull<Self::Target>;
    /// Takes ownership back.
    ///
    /// # Safety
    /// `raw` came from `into_raw` of this type and nothing else owns it.
    unsafe fn from_raw(raw: NonNull<Self::Target>) -> Self;
}

// SAFETY: PoolBox::into_raw/from_raw transfer ownership of a live pool block
// without moving it; the target is Sync by the bound.
unsafe impl<T: Send + Sync> Owner for crate::pool::PoolBox<T> {
    type Target = T;
    fn into_raw(self) -> NonNull<T> {
        let raw = crate::pool::PoolBox::into_raw(self);
        // PoolBox's pointer is never null (invariant); dangling is never
        // reached.
        NonNull::new(raw).unwrap_or(NonNull::dangling())
    }
    unsafe fn from_raw(raw: NonNull<T>) -> Self {
        // SAFETY: caller contract.
        unsafe { crate::pool::PoolBox::from_raw(raw) }
    }
}

/// A heap owner for host tests of code built on [`Rcu`] (feature
/// `test-util`): the kernel owner is `PoolBox`, whose allocator exists only
/// in the kernel.
#[cfg(any(test, feature = "test-util"))]
pub mod host {
    extern crate std;
    use super::Owner;
    use core::ptr::NonNull;
    use std::boxed::Box;

    /// `Box<T>` as an [`Owner`].
    pub struct HeapBox<T>(pub Box<T>);

    // SAFETY: Box::leak/from_raw transfer ownership of a live heap block
    // without moving it.
    unsafe impl<T: Send + Sync> Owner for HeapBox<T> {
        type Target = T;
        fn into_raw(self) -> NonNull<T> {
            NonNull::from(Box::leak(self.0))
        }
        unsafe fn from_raw(raw: NonNull<T>) -> Self {
            // SAFETY: caller contract: raw came from into_raw.
            Self(unsafe { Box::from_raw(raw.as_ptr()) })
        }
    }

    impl<T> core::ops::Deref for HeapBox<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }
}

#[repr(align(64))]
struct CacheLine<T>(T);

/// A published object, replaceable while readers use it. See the module
/// docs for the protocol and its argument.
///
/// Invariant: `current` is null or came from `O::into_raw` and is owned by
/// this `Rcu`.
pub struct Rcu<O: Owner> {
    current: AtomicPtr<O::Target>,
    epoch: AtomicUsize,
    readers: [CacheLine<AtomicUsize>; 2],
    writer: AtomicBool,
    phases: usize,
    /// The ordering of F_r and F_w in the model checker's deliberately
    /// weakened variants (`SeqCst` otherwise).
    #[cfg(loom)]
    fence_order: Ordering,
    _owns: PhantomData<O>,
}

// SAFETY: readers get &O::Target (Sync) from any thread; the writer moves
// owners (Send) in and out.
unsafe impl<O: Owner> Sync for Rcu<O> {}
// SAFETY: as above.
unsafe impl<O: Owner> Send for Rcu<O> {}

impl<O: Owner> Rcu<O> {
    /// Nothing published.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            current: AtomicPtr::new(ptr::null_mut()),
            epoch: AtomicUsize::new(0),
            readers: [CacheLine(AtomicUsize::new(0)), CacheLine(AtomicUsize::new(0))],
            writer: AtomicBool::new(false),
            phases: 2,
            _owns: PhantomData,
        }
    }

    /// Nothing published.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self::weakened(2, Ordering::SeqCst)
    }

    /// A deliberately weakened variant for the model checker: fewer phases,
    /// or F_r and F_w with an ordering weaker than `SeqCst`.
    #[cfg(loom)]
    fn weakened(phases: usize, fence_order: Ordering) -> Self {
        Self {
            current: AtomicPtr::new(ptr::null_mut()),
            epoch: AtomicUsize::new(0),
            readers: [CacheLine(AtomicUsize::new(0)), CacheLine(AtomicUsize::new(0))],
            writer: AtomicBool::new(false),
            phases,
            fence_order,
            _owns: PhantomData,
        }
    }

    /// F_r and F_w: `fence(SeqCst)` (a weaker fence only in the model
    /// checker's broken variants).
    #[inline(always)]
    fn full_fence(&self) {
        #[cfg(not(loom))]
        fence(Ordering::SeqCst);
        #[cfg(loom)]
        fence(self.fence_order);
    }

    fn counter(&self, parity: usize) -> &AtomicUsize {
        let [even, odd] = &self.readers;
        if parity & 1 == 0 {
            &even.0
        } else {
            &odd.0
        }
    }

    /// Calls `f` with the published object (`None` when nothing is
    /// published). The object stays valid until `f` returns.
    ///
    /// IRQL <= DISPATCH_LEVEL. Never waits, never allocates. `f` must not
    /// call [`Rcu::replace`] on the same `Rcu` (it would wait for itself).
    pub fn read<R>(&self, f: impl FnOnce(Option<&O::Target>) -> R) -> R {
        let counter = self.counter(self.epoch.load(Ordering::Relaxed)); // R1
        counter.fetch_add(1, Ordering::Relaxed); // R2
        self.full_fence(); // F_r
        let raw = self.current.load(Ordering::Acquire); // R3
        // SAFETY: invariant: raw is null or an owned, live object (the
        // acquire load pairs with the writer's release swap, so it is fully
        // initialised). The increment before F_r keeps any writer that
        // unpublishes it from freeing it until the decrement below (module
        // docs).
        let result = f(unsafe { raw.as_ref() });
        counter.fetch_sub(1, Ordering::Release); // R4
        result
    }

    /// Publishes `new` (or nothing) and returns the previous object once no
    /// reader can still hold it; dropping it is then safe.
    ///
    /// IRQL: PASSIVE_LEVEL only — `wait` is called between checks and is
    /// expected to sleep (e.g. [`crate::irp::sleep_ms`]). Concurrent callers
    /// are serialised.
    pub fn replace(&self, new: Option<O>, mut wait: impl FnMut()) -> Option<O> {
        while self.writer.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            wait();
        }
        let new_raw = new.map_or(ptr::null_mut(), |o| o.into_raw().as_ptr());
        let old = self.current.swap(new_raw, Ordering::AcqRel); // W1
        self.full_fence(); // F_w
        for _ in 0..self.phases {
            let before = self.epoch.fetch_xor(1, Ordering::Relaxed); // W2
            while self.counter(before).load(Ordering::Acquire) != 0 {
                // W3
                wait();
            }
        }
        self.writer.store(false, Ordering::Release);
        // SAFETY: `old` came from into_raw (invariant) and is no longer
        // published; the grace period above ended every read that could see
        // it, so ownership returns to the caller alone.
        NonNull::new(old).map(|raw| unsafe { O::from_raw(raw) })
    }

    /// Whether something is published (a hint: it may change at once).
    pub fn is_published(&self) -> bool {
        !self.current.load(Ordering::Acquire).is_null()
    }
}

impl<O: Owner> Drop for Rcu<O> {
    fn drop(&mut self) {
        // &mut self: no reader exists any more.
        let raw = self.current.swap(ptr::null_mut(), Ordering::Acquire);
        if let Some(raw) = NonNull::new(raw) {
            // SAFETY: invariant: owned by us, and unreachable by readers.
            drop(unsafe { O::from_raw(raw) });
        }
    }
}

impl<O: Owner> Default for Rcu<O> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    /// A host owner whose payload records its drop.
    struct Payload(u32, Arc<AtomicU32>);
    impl Drop for Payload {
        fn drop(&mut self) {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    struct Counted(Box<Payload>);
    // SAFETY: Box::leak/from_raw transfer ownership of a live heap block.
    unsafe impl Owner for Counted {
        type Target = Payload;
        fn into_raw(self) -> NonNull<Payload> {
            NonNull::from(Box::leak(self.0))
        }
        unsafe fn from_raw(raw: NonNull<Payload>) -> Self {
            // SAFETY: caller contract.
            Self(unsafe { Box::from_raw(raw.as_ptr()) })
        }
    }
    fn counted(v: u32, drops: &Arc<AtomicU32>) -> Counted {
        Counted(Box::new(Payload(v, drops.clone())))
    }

    #[test]
    fn publish_replace_clear_and_drop() {
        let drops = Arc::new(AtomicU32::new(0));
        let rcu: Rcu<Counted> = Rcu::new();
        assert_eq!(rcu.read(|p| p.map(|v| v.0)), None);
        assert!(rcu.replace(Some(counted(1, &drops)), || {}).is_none());
        assert_eq!(rcu.read(|p| p.map(|v| v.0)), Some(1));
        let old = rcu.replace(Some(counted(2, &drops)), || {});
        assert_eq!(old.as_ref().map(|o| o.0 .0), Some(1));
        drop(old);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(rcu.read(|p| p.map(|v| v.0)), Some(2));
        assert!(rcu.is_published());
        drop(rcu);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn writer_waits_for_a_reader_in_progress() {
        // A reader holds the object while a writer on another thread replaces
        // it: replace returns only after the reader's closure has finished.
        let drops = Arc::new(AtomicU32::new(0));
        let rcu: Arc<Rcu<Counted>> = Arc::new(Rcu::new());
        rcu.replace(Some(counted(1, &drops)), || {});
        let (inside_tx, inside_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let reader = {
            let rcu = rcu.clone();
            std::thread::spawn(move || {
                rcu.read(|p| {
                    inside_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    p.map(|v| v.0)
                })
            })
        };
        inside_rx.recv().unwrap();
        let waits = AtomicU32::new(0);
        let writer = {
            let rcu = rcu.clone();
            let drops = drops.clone();
            std::thread::spawn(move || {
                let old = rcu.replace(Some(counted(2, &drops)), || std::thread::sleep(std::time::Duration::from_millis(1)));
                old.map(|o| o.0 .0)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 0, "freed while a reader held it");
        let _ = waits;
        go_tx.send(()).unwrap();
        assert_eq!(reader.join().unwrap(), Some(1));
        assert_eq!(writer.join().unwrap(), Some(1));
    }
}

#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use loom::thread;

    /// One published object. "Freeing" it marks it freed and writes its data
    /// (the memory itself stays alive for the model), so a reader that still
    /// holds it either sees the flag or races with the write, and loom
    /// reports either.
    struct Slot {
        freed: AtomicBool,
        data: UnsafeCell<u64>,
    }

    struct Tracked {
        slot: NonNull<Slot>,
    }
    // SAFETY: the slots are loom-synchronised; Tracked moves between threads.
    unsafe impl Send for Tracked {}
    // SAFETY: shared access only reads atomics and loom cells.
    unsafe impl Sync for Slot {}
    // SAFETY: the slot array outlives every Tracked: the model's main thread
    // holds it until after the readers are joined and the Rcu is dropped.
    unsafe impl Owner for Tracked {
        type Target = Slot;
        fn into_raw(self) -> NonNull<Slot> {
            let slot = self.slot;
            core::mem::forget(self);
            slot
        }
        unsafe fn from_raw(raw: NonNull<Slot>) -> Self {
            Self { slot: raw }
        }
    }
    impl Drop for Tracked {
        fn drop(&mut self) {
            // SAFETY: the slot array is alive (see Owner impl).
            let slot = unsafe { self.slot.as_ref() };
            // SAFETY: loom checks that no reader accesses the cell concurrently.
            slot.data.with_mut(|d| unsafe { *d = 0xDEAD });
            slot.freed.store(true, Ordering::SeqCst);
        }
    }

    fn slots() -> Arc<[Slot; 3]> {
        Arc::new(core::array::from_fn(|i| Slot { freed: AtomicBool::new(false), data: UnsafeCell::new(i as u64 + 1) }))
    }

    fn tracked(slots: &Arc<[Slot; 3]>, i: usize) -> Tracked {
        Tracked { slot: NonNull::from(&slots[i]) }
    }

    fn read_once(rcu: &Rcu<Tracked>) {
        rcu.read(|slot| {
            if let Some(slot) = slot {
                assert!(!slot.freed.load(Ordering::SeqCst), "reader sees a freed object");
                // SAFETY: loom checks the access against the writer's free.
                let v = slot.data.with(|d| unsafe { *d });
                assert!((1..=3).contains(&v), "reader sees freed data {v:#x}");
            }
        });
    }

    /// Writer publishes slot 0, then replaces it by 1 and by 2, freeing each
    /// old one; `readers` threads read concurrently.
    fn scenario(phases: usize, fence_order: Ordering, readers: usize, reads_each: usize, bound: Option<usize>) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = bound;
        builder.check(move || {
            let s = slots();
            let rcu = Arc::new(Rcu::weakened(phases, fence_order));
            drop(rcu.replace(Some(tracked(&s, 0)), || {}));
            let handles: Vec<_> = (0..readers)
                .map(|_| {
                    let rcu = rcu.clone();
                    thread::spawn(move || {
                        for _ in 0..reads_each {
                            read_once(&rcu);
                        }
                    })
                })
                .collect();
            for i in 1..3 {
                let old = rcu.replace(Some(tracked(&s, i)), thread::yield_now);
                drop(old);
            }
            for h in handles {
                h.join().unwrap();
            }
            drop(Arc::try_unwrap(rcu).ok().unwrap());
            drop(s);
        });
    }

    /// Two readers (classify on two CPUs, or one preempted at
    /// PASSIVE_LEVEL anywhere, including between R1 and R2) and one writer
    /// replacing twice.
    #[test]
    fn rcu_two_readers_one_writer_replacing_twice() {
        scenario(2, Ordering::SeqCst, 2, 1, Some(3));
    }

    /// One reader doing two lookups across both replaces.
    #[test]
    fn rcu_one_reader_two_lookups() {
        scenario(2, Ordering::SeqCst, 1, 2, Some(3));
    }

    /// The broken one-phase variant must be caught: this proves the model
    /// and the checks can fail. loom reports the reader's access racing with
    /// the writer's "free" (the write in `Tracked::drop`) before the freed
    /// flag is even read.
    #[test]
    #[should_panic(expected = "Concurrent read and write accesses")]
    fn rcu_one_phase_is_caught() {
        scenario(1, Ordering::SeqCst, 1, 1, None);
    }

    /// F_r and F_w as acquire-release fences instead of `SeqCst`: the
    /// store-buffering pattern is then allowed (the reader's R3 reads the
    /// old pointer while the writer's W3 loads miss the reader's R2), so the
    /// writer frees what the reader holds. Must be caught: this proves the
    /// model checks the ordering argument of the module docs, not only the
    /// phases.
    #[test]
    #[should_panic(expected = "Concurrent read and write accesses")]
    fn rcu_acqrel_fences_are_caught() {
        scenario(2, Ordering::AcqRel, 1, 1, None);
    }
}
