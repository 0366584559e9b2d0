//! The bounded multi-producer, multi-consumer ring events are recorded into.
//!
//! Producers are classifyFn calls on any CPU at IRQL <= DISPATCH_LEVEL;
//! consumers are READ_EVENTS requests and the completion DPC. The ring is
//! Dmitry Vyukov's bounded queue: a preallocated array of slots, each with a
//! sequence number, and two positions (`tail` for producers, `head` for
//! consumers). No operation waits, allocates or takes a lock; a full ring
//! drops the new value and counts it.
//!
//! # Why it is sound (the argument the loom test checks)
//!
//! Slot `i` carries `seq`. With `cap` slots, for the lap that reaches
//! position `pos` (slot `pos % cap`):
//!
//! * `seq == pos`: the slot is free for the producer of `pos`;
//! * `seq == pos + 1`: the slot holds the value for the consumer of `pos`;
//! * anything else: another lap owns it (full for a producer, empty for a
//!   consumer, or a stale position: reload and retry).
//!
//! A producer owns slot `pos % cap` exclusively from its successful
//! compare-exchange of `tail` from `pos` to `pos + 1` (only one producer can
//! win that exchange for a given `pos`, and no consumer touches the slot
//! while `seq == pos`) until its `Release` store of `seq = pos + 1`. A
//! consumer owns it from its exchange of `head` from `pos` to `pos + 1`
//! (only after an `Acquire` load saw `seq == pos + 1`, which makes the
//! producer's write visible) until its `Release` store of
//! `seq = pos + cap`, which hands the slot to the producer of the next lap
//! (who loads `seq` with `Acquire` before writing). So at any time at most
//! one thread accesses a slot's value, and a reader only reads a fully
//! written value: the `UnsafeCell` accesses below never race.
//!
//! Positions are `usize` and wrap; every comparison is on the wrapping
//! difference, which stays within `cap` of zero.
//!
//! Producers retry only when another producer won the same position (the
//! loser then sees the next free position); they never wait for a consumer.

use crate::sync::{AtomicU64, AtomicUsize, Ordering, UnsafeCell};
use alloc::vec::Vec;
use core::mem::MaybeUninit;

/// Cache-line alignment, so producers' and consumers' positions do not
/// share a line.
#[repr(align(64))]
struct Padded<T>(T);

struct Slot<T> {
    seq: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// The ring could not be allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The capacity is zero or not a power of two.
    BadCapacity,
    /// The allocator refused the slot array.
    OutOfMemory,
}

/// A bounded MPMC queue of `T` (copied in and out).
pub struct Ring<T: Copy> {
    slots: Vec<Slot<T>>,
    mask: usize,
    tail: Padded<AtomicUsize>,
    head: Padded<AtomicUsize>,
    /// Drops since the last [`Ring::take_dropped`].
    dropped: AtomicU64,
    /// Drops since creation.
    dropped_total: AtomicU64,
}

// SAFETY: values of T move between threads through the ring (T: Send), and
// every access to a slot's UnsafeCell is exclusive by the sequence protocol
// described in the module documentation.
unsafe impl<T: Copy + Send> Sync for Ring<T> {}
// SAFETY: the ring owns its slots like a Vec<T> would.
unsafe impl<T: Copy + Send> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// A ring of `capacity` slots (a power of two), allocated once with a
    /// fallible reservation: allocation failure is an error, never a panic.
    pub fn try_new(capacity: usize) -> Result<Self, RingError> {
        let mut ring = Self::unallocated();
        ring.allocate(capacity)?;
        Ok(ring)
    }

    /// A ring without slots: every push is dropped (and counted) until
    /// [`Ring::allocate`]. Lets an owner be placed in its final memory
    /// before the slots are allocated.
    pub fn unallocated() -> Self {
        Self {
            slots: Vec::new(),
            mask: 0,
            tail: Padded(AtomicUsize::new(0)),
            head: Padded(AtomicUsize::new(0)),
            dropped: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
        }
    }

    /// Allocates the slots of an [`Ring::unallocated`] ring (`&mut`: no
    /// producer or consumer can be using it).
    pub fn allocate(&mut self, capacity: usize) -> Result<(), RingError> {
        if capacity == 0 || !capacity.is_power_of_two() || !self.slots.is_empty() {
            return Err(RingError::BadCapacity);
        }
        let mut slots = Vec::new();
        slots.try_reserve_exact(capacity).map_err(|_| RingError::OutOfMemory)?;
        for i in 0..capacity {
            // Within the reserved capacity: push does not allocate.
            slots.push(Slot { seq: AtomicUsize::new(i), value: UnsafeCell::new(MaybeUninit::uninit()) });
        }
        self.slots = slots;
        self.mask = capacity - 1;
        Ok(())
    }

    /// Slots (0 while unallocated).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, pos: usize) -> Option<&Slot<T>> {
        self.slots.get(pos & self.mask)
    }

    /// Copies `value` into a free slot. When the ring is full the value is
    /// dropped, the drop counters move, and `false` is returned.
    pub fn push(&self, value: T) -> bool {
        let mut pos = self.tail.0.load(Ordering::Relaxed);
        loop {
            let Some(slot) = self.slot(pos) else { return self.drop_one() };
            let seq = slot.seq.load(Ordering::Acquire);
            // Reinterpreting the wrapping difference as signed is the point.
            #[allow(clippy::cast_possible_wrap)]
            let diff = seq.wrapping_sub(pos) as isize;
            if diff == 0 {
                match self.tail.0.compare_exchange_weak(pos, pos.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        // SAFETY: winning the exchange for `pos` while
                        // seq == pos makes this producer the slot's only
                        // user until the Release store below (module docs).
                        slot.value.with_mut(|p| unsafe { (*p).write(value) });
                        slot.seq.store(pos.wrapping_add(1), Ordering::Release);
                        return true;
                    }
                    Err(current) => pos = current,
                }
            } else if diff < 0 {
                return self.drop_one();
            } else {
                pos = self.tail.0.load(Ordering::Relaxed);
            }
        }
    }

    fn drop_one(&self) -> bool {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.dropped_total.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Takes the oldest value, or `None` when no value is ready.
    pub fn pop(&self) -> Option<T> {
        let mut pos = self.head.0.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(pos)?;
            let seq = slot.seq.load(Ordering::Acquire);
            #[allow(clippy::cast_possible_wrap)]
            let diff = seq.wrapping_sub(pos.wrapping_add(1)) as isize;
            if diff == 0 {
                match self.head.0.compare_exchange_weak(pos, pos.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        // SAFETY: seq == pos + 1 (Acquire) means the
                        // producer's write is complete and visible; winning
                        // the exchange makes this consumer the slot's only
                        // user until the Release store below.
                        let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
                        slot.seq.store(pos.wrapping_add(self.mask).wrapping_add(1), Ordering::Release);
                        return Some(value);
                    }
                    Err(current) => pos = current,
                }
            } else if diff < 0 {
                return None;
            } else {
                pos = self.head.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Whether the next value for consumers is ready (a hint: another
    /// consumer may take it first).
    pub fn has_ready(&self) -> bool {
        let pos = self.head.0.load(Ordering::Relaxed);
        self.slot(pos).is_some_and(|s| s.seq.load(Ordering::Acquire) == pos.wrapping_add(1))
    }

    /// Whether drops are waiting to be reported by [`Ring::take_dropped`].
    pub fn has_dropped(&self) -> bool {
        self.dropped.load(Ordering::Relaxed) > 0
    }

    /// Values dropped since the previous call (and resets that count). Each
    /// drop is reported by exactly one call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    /// Values dropped since the ring was created.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }
}

/// The readers-waiting gate between producers and pended reads, so a
/// producer asks for a wake-up only when someone waits, and no wake-up is
/// lost.
///
/// Protocol: a reader that found the ring empty calls [`WakeGate::arm`]
/// before it parks, then looks at the ring again (and does not park if a
/// value is ready). A producer calls [`WakeGate::should_wake`] after a
/// successful push. Both are read-modify-writes of the same atomic, so they
/// are totally ordered: if the producer's comes first, the reader's
/// `arm` (Acquire) synchronises with it (Release) and its second look sees
/// the value; otherwise the producer's reads a count of at least one and
/// wakes. Either way a parked reader with a value ready gets a wake-up
/// (checked by the loom test).
pub struct WakeGate {
    waiting: AtomicUsize,
}

impl Default for WakeGate {
    fn default() -> Self {
        Self::new()
    }
}

impl WakeGate {
    pub fn new() -> Self {
        Self { waiting: AtomicUsize::new(0) }
    }

    /// A reader is about to park.
    pub fn arm(&self) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
    }

    /// A parked reader left (completed or cancelled); pairs with `arm`.
    pub fn disarm(&self) {
        // Saturating: an unpaired call must not wrap to "always waiting".
        let _ = self.waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// After a successful push: whether a reader may be parked.
    pub fn should_wake(&self) -> bool {
        self.waiting.fetch_add(0, Ordering::AcqRel) > 0
    }

    /// Readers parked now (for statistics and tests).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}
