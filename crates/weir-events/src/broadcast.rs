//! A broadcast ring: every reader sees every record written after it
//! started, at its own pace, like separate ETW sessions.
//!
//! Producers (classifyFn on any CPU, IRQL <= DISPATCH_LEVEL) never wait,
//! for each other or for readers: a record is written once, and each reader
//! keeps its own cursor ([`Cursor`]). A reader that falls more than the
//! capacity behind loses the oldest records *it* had not read, counted in
//! its cursor ([`Cursor::lost`]); other readers and producers are not
//! affected. Records are wire records (`record.rs`) of at most `8 * W`
//! bytes, stored as `W` atomic 64-bit words.
//!
//! # Protocol
//!
//! 1. A producer claims position `p` with `tail.fetch_add(1)`; its slot is
//!    `p % cap`.
//! 2. It takes the slot by a compare-exchange of the slot's `stamp` from an
//!    even value below `2p + 1` to `2p + 1` ("being written"; `Acquire`, so
//!    the previous lap's word stores happen before this lap's), then a
//!    `Release` fence. If the stamp is odd (a producer one lap earlier is
//!    still writing, e.g. preempted at PASSIVE_LEVEL for a whole lap) or
//!    already newer, it drops the record, marks the position dropped in the
//!    slot (`skipped = max(skipped, p + 1)`) and counts it
//!    ([`Broadcast::collisions`]); it never spins, so a producer preempted on
//!    its own CPU cannot deadlock the one that preempted it.
//! 3. It stores the length and the words (relaxed atomics), then the stamp
//!    `2p + 2` with `Release` ("holds `p`").
//! 4. A reader at cursor `c`: if `tail <= c` nothing is new. If
//!    `tail - c > cap`, positions before `tail - cap` are overwritten or
//!    about to be: it skips to `tail - cap` and counts the skipped as lost.
//!    It loads the stamp with `Acquire`: `2c + 2` means the slot holds `c`:
//!    it copies length and words (relaxed), issues an `Acquire` fence and
//!    loads the stamp again; unchanged means the copy is whole (a producer
//!    of a later lap would have changed the stamp before its first word
//!    store, and the fences order that store before any word the reader
//!    could have seen): deliver and advance. A changed stamp, or a stamp
//!    newer than `2c + 2`, means `c` was overwritten: count it lost,
//!    advance. A stamp older than `2c + 2`: if the slot's `skipped` is above
//!    `c`, the producer of `c` dropped it in step 2 (a mark for a later lap
//!    of the slot would mean `tail - c > cap`, handled above): count it
//!    lost, advance. Otherwise `c` is not written yet: stop for now. A
//!    position is claimed by one producer only, so a dropped position is
//!    never written later, and a position being written is never marked.
//!
//! This is the seqlock pattern with the fences of Boehm, "Can seqlocks get
//! along with programming language memory models?" (MSPC 2012): every
//! access to shared words is atomic, so there is no data race, only
//! detected tears. `tests/loom.rs` checks it, and checks that a reader
//! without the second stamp load (step 4) is caught returning a torn
//! record, and that a reader ignoring the dropped-position mark is caught
//! waiting at a dropped position with the later record published.
//!
//! # Costs
//!
//! A producer: one `fetch_add`, one compare-exchange, `W + 2` stores. A
//! reader: per record, two stamp loads and `W + 1` loads. Readers never
//! write shared memory, so any number of them cost producers nothing; the
//! driver bounds them only because each needs a cursor slot.

use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};
use alloc::vec::Vec;

/// One slot: stamp, length in bytes, words.
struct Slot<const W: usize> {
    stamp: AtomicU64,
    /// 1 + the newest position whose producer dropped its record in this
    /// slot (step 2), 0 if none: lets a reader skip that position at once.
    skipped: AtomicU64,
    len: AtomicU32,
    words: [AtomicU64; W],
}

/// A reader's position and what it lost. Owned by the reader (one per open
/// handle in the driver); the ring keeps no state per reader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    next: u64,
    lost: u64,
}

impl Cursor {
    /// Records this reader lost since it started (overwritten before it
    /// read them).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Returns and clears the lost count (for a dropped-events record).
    pub fn take_lost(&mut self) -> u64 {
        core::mem::take(&mut self.lost)
    }

    /// The next position this reader will read.
    pub fn position(&self) -> u64 {
        self.next
    }
}

/// What [`Broadcast::read`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// A whole record of this many bytes was copied out.
    Record(usize),
    /// Nothing new for this reader.
    Empty,
}

/// The ring could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BroadcastError {
    /// The capacity is zero or not a power of two.
    BadCapacity,
    /// The allocator refused the slots.
    OutOfMemory,
}

/// A broadcast ring of records up to `8 * W` bytes.
pub struct Broadcast<const W: usize> {
    slots: Vec<Slot<W>>,
    mask: u64,
    tail: AtomicU64,
    collisions: AtomicU64,
}

impl<const W: usize> Broadcast<W> {
    /// `capacity` slots (a power of two), allocated with a fallible
    /// reservation.
    ///
    /// # Errors
    /// [`BroadcastError`].
    pub fn try_new(capacity: usize) -> Result<Self, BroadcastError> {
        if capacity == 0 || !capacity.is_power_of_two() {
            return Err(BroadcastError::BadCapacity);
        }
        let mut slots = Vec::new();
        slots.try_reserve_exact(capacity).map_err(|_| BroadcastError::OutOfMemory)?;
        for _ in 0..capacity {
            slots.push(Slot {
                stamp: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                len: AtomicU32::new(0),
                words: core::array::from_fn(|_| AtomicU64::new(0)),
            });
        }
        Ok(Self { slots, mask: capacity as u64 - 1, tail: AtomicU64::new(0), collisions: AtomicU64::new(0) })
    }

    /// A ring without slots: every write is refused until
    /// [`Broadcast::allocate`]. Lets an owner be placed in its final memory
    /// before the slots are allocated.
    pub fn unallocated() -> Self {
        Self { slots: Vec::new(), mask: 0, tail: AtomicU64::new(0), collisions: AtomicU64::new(0) }
    }

    /// Allocates the slots of an [`Broadcast::unallocated`] ring (`&mut`: no
    /// producer or reader can be using it).
    ///
    /// # Errors
    /// [`BroadcastError`]; `BadCapacity` also when already allocated.
    pub fn allocate(&mut self, capacity: usize) -> Result<(), BroadcastError> {
        if !self.slots.is_empty() {
            return Err(BroadcastError::BadCapacity);
        }
        *self = Self::try_new(capacity)?;
        Ok(())
    }

    /// Slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Records dropped by producers that found their slot still being
    /// written one lap earlier (step 2 of the protocol).
    pub fn collisions(&self) -> u64 {
        self.collisions.load(Ordering::Relaxed)
    }

    /// A cursor that sees every record written from now on.
    pub fn subscribe(&self) -> Cursor {
        Cursor { next: self.tail.load(Ordering::Acquire), lost: 0 }
    }

    /// A cursor that starts at the oldest record the ring still holds (the
    /// last `capacity` positions claimed), then sees every later one: a new
    /// reader gets the recent backlog first. A backlog record overwritten
    /// before the reader copies it counts as lost for this cursor.
    pub fn subscribe_oldest(&self) -> Cursor {
        let tail = self.tail.load(Ordering::Acquire);
        Cursor { next: tail.saturating_sub(self.mask + 1), lost: 0 }
    }

    /// Whether [`Broadcast::read`] for `cursor` would make progress now: a
    /// published record at its position, or positions it has fallen behind
    /// (overwritten: they would be counted lost), or a lost count to report.
    /// Loads only; the "look again" of a reader about to park (with
    /// [`crate::WakeGate`]: a producer publishes, then asks the gate; a
    /// reader arms the gate, then asks this). IRQL: <= DISPATCH_LEVEL.
    pub fn has_ready(&self, cursor: &Cursor) -> bool {
        if cursor.lost > 0 {
            return true;
        }
        let tail = self.tail.load(Ordering::Acquire);
        if tail <= cursor.next {
            return false;
        }
        if tail - cursor.next > self.mask + 1 {
            return true;
        }
        // Published (2c + 2) or already newer (overwritten), or dropped by
        // its producer: progress.
        self.slot(cursor.next).is_some_and(|s| {
            s.stamp.load(Ordering::Acquire) >= 2 * cursor.next + 2 || s.skipped.load(Ordering::Acquire) > cursor.next
        })
    }

    fn slot(&self, pos: u64) -> Option<&Slot<W>> {
        self.slots.get(usize::try_from(pos & self.mask).ok()?)
    }

    /// Writes `record` (at most `8 * W` bytes; longer is refused) for every
    /// reader. Returns false if it was refused or dropped. Never waits.
    /// IRQL: <= DISPATCH_LEVEL (no allocation, no lock).
    pub fn write(&self, record: &[u8]) -> bool {
        if record.len() > 8 * W || self.slots.is_empty() {
            return false;
        }
        let pos = self.tail.fetch_add(1, Ordering::AcqRel);
        let Some(slot) = self.slot(pos) else { return false };
        let writing = 2 * pos + 1;
        let mut current = slot.stamp.load(Ordering::Relaxed);
        loop {
            if current % 2 == 1 || current >= writing {
                // Mark the position dropped, so a reader waiting at it
                // skips it instead of waiting for a lap (step 2).
                slot.skipped.fetch_max(pos + 1, Ordering::Release);
                self.collisions.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            // Acquire: the previous lap's words happen before ours, so no
            // reader holding our stamp can see one of theirs (loom found
            // the tear with a relaxed exchange: tests/loom.rs, two writers).
            match slot.stamp.compare_exchange_weak(current, writing, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        fence(Ordering::Release);
        slot.len.store(record.len() as u32, Ordering::Relaxed);
        // Whole words first (the common case: records are padded to 8
        // bytes), then a short tail, zero-filled.
        let whole = record.chunks_exact(8);
        let tail = whole.remainder();
        let mut words = slot.words.iter();
        // `whole` first: zip stops on it before taking a word it will not fill.
        for (chunk, word) in whole.zip(words.by_ref()) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        }
        if !tail.is_empty() {
            if let Some(word) = words.next() {
                let mut bytes = [0u8; 8];
                if let Some(dst) = bytes.get_mut(..tail.len()) {
                    dst.copy_from_slice(tail);
                }
                word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
            }
        }
        slot.stamp.store(writing + 1, Ordering::Release);
        true
    }

    /// Copies the next record for `cursor` into `out` (at least `8 * W`
    /// bytes, else `Empty` and nothing consumed). Never waits and writes no
    /// shared memory. IRQL: <= DISPATCH_LEVEL.
    pub fn read(&self, cursor: &mut Cursor, out: &mut [u8]) -> Read {
        self.read_inner::<true, true>(cursor, out)
    }

    /// The reader without the second stamp load: can return a torn record.
    /// Exists only so the loom test can show the check is needed.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn read_without_recheck(&self, cursor: &mut Cursor, out: &mut [u8]) -> Read {
        self.read_inner::<false, true>(cursor, out)
    }

    /// The reader that ignores dropped-position marks: waits at a dropped
    /// position for a whole lap. Exists only so the loom test can show the
    /// mark is needed.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn read_ignoring_skips(&self, cursor: &mut Cursor, out: &mut [u8]) -> Read {
        self.read_inner::<true, false>(cursor, out)
    }

    fn read_inner<const RECHECK: bool, const SKIPS: bool>(&self, cursor: &mut Cursor, out: &mut [u8]) -> Read {
        if out.len() < 8 * W {
            return Read::Empty;
        }
        let cap = self.mask + 1;
        loop {
            let tail = self.tail.load(Ordering::Acquire);
            if tail <= cursor.next {
                return Read::Empty;
            }
            if tail - cursor.next > cap {
                let oldest = tail - cap;
                cursor.lost += oldest - cursor.next;
                cursor.next = oldest;
            }
            let Some(slot) = self.slot(cursor.next) else { return Read::Empty };
            let holds = 2 * cursor.next + 2;
            let before = slot.stamp.load(Ordering::Acquire);
            if before < holds {
                // Dropped by its producer (with `tail - c <= cap`, a mark
                // above `c` can only be for `c` itself): lost, go on.
                // Otherwise not written yet (or being written): come back
                // later.
                if SKIPS && slot.skipped.load(Ordering::Acquire) > cursor.next {
                    cursor.next += 1;
                    cursor.lost += 1;
                    continue;
                }
                return Read::Empty;
            }
            if before == holds {
                let len = (slot.len.load(Ordering::Relaxed) as usize).min(8 * W);
                for (word, chunk) in slot.words.iter().zip(out.chunks_mut(8)) {
                    let bytes = word.load(Ordering::Relaxed).to_le_bytes();
                    chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or(&[]));
                }
                let whole = if RECHECK {
                    fence(Ordering::Acquire);
                    slot.stamp.load(Ordering::Relaxed) == before
                } else {
                    true
                };
                cursor.next += 1;
                if whole {
                    return Read::Record(len);
                }
            } else {
                cursor.next += 1;
            }
            // Overwritten before or while it was read.
            cursor.lost += 1;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn rec(n: u8, len: usize) -> Vec<u8> {
        vec![n; len]
    }

    #[test]
    fn every_reader_sees_every_record_written_after_it_subscribed() {
        let ring = Broadcast::<4>::try_new(8).unwrap();
        ring.write(&rec(0, 8));
        let mut a = ring.subscribe();
        let mut b = ring.subscribe();
        for n in 1..=3 {
            assert!(ring.write(&rec(n, 5 + n as usize)));
        }
        let mut out = [0u8; 32];
        for cursor in [&mut a, &mut b] {
            for n in 1..=3u8 {
                assert_eq!(ring.read(cursor, &mut out), Read::Record(5 + n as usize));
                assert_eq!(&out[..5 + n as usize], &rec(n, 5 + n as usize)[..]);
            }
            assert_eq!(ring.read(cursor, &mut out), Read::Empty);
            assert_eq!(cursor.lost(), 0);
        }
    }

    #[test]
    fn a_slow_reader_loses_only_its_own_oldest_records_and_counts_them() {
        let ring = Broadcast::<1>::try_new(4).unwrap();
        let mut slow = ring.subscribe();
        let mut fast = ring.subscribe();
        let mut out = [0u8; 8];
        for n in 0..10u8 {
            assert!(ring.write(&[n]));
            assert_eq!(ring.read(&mut fast, &mut out), Read::Record(1));
            assert_eq!(out[0], n);
        }
        assert_eq!(fast.lost(), 0);
        let mut got = Vec::new();
        while let Read::Record(_) = ring.read(&mut slow, &mut out) {
            got.push(out[0]);
        }
        assert_eq!(got, [6, 7, 8, 9], "the last `capacity` records survive");
        assert_eq!(slow.take_lost(), 6);
        assert_eq!(slow.lost(), 0);
    }

    #[test]
    fn oversized_records_and_small_buffers_are_refused() {
        let ring = Broadcast::<1>::try_new(2).unwrap();
        assert!(!ring.write(&[0; 9]));
        let mut c = ring.subscribe();
        assert!(ring.write(&[1; 8]));
        let mut small = [0u8; 7];
        assert_eq!(ring.read(&mut c, &mut small), Read::Empty);
        let mut out = [0u8; 8];
        assert_eq!(ring.read(&mut c, &mut out), Read::Record(8), "a refused read consumes nothing");
        assert!(matches!(Broadcast::<1>::try_new(3), Err(BroadcastError::BadCapacity)));
    }

    proptest::proptest! {
        /// Any interleaving of writes and reads of several readers (one
        /// thread): each reader gets, in order, exactly the records written
        /// after it subscribed, except the ones counted lost, which are
        /// always the oldest it had not read.
        #[test]
        fn readers_get_an_ordered_suffix_and_count_the_rest(ops in proptest::collection::vec(0u8..4, 0..200)) {
            let ring = Broadcast::<2>::try_new(8).unwrap();
            let mut readers = [ring.subscribe(), ring.subscribe(), ring.subscribe()];
            let mut seen: [Vec<u64>; 3] = Default::default();
            let mut written = 0u64;
            let mut out = [0u8; 16];
            for op in ops {
                if op == 3 {
                    ring.write(&written.to_le_bytes());
                    written += 1;
                } else {
                    let r = usize::from(op);
                    if let Read::Record(8) = ring.read(&mut readers[r], &mut out) {
                        seen[r].push(u64::from_le_bytes(out[..8].try_into().unwrap()));
                    }
                }
            }
            for r in 0..3 {
                while let Read::Record(_) = ring.read(&mut readers[r], &mut out) {
                    seen[r].push(u64::from_le_bytes(out[..8].try_into().unwrap()));
                }
                let got = &seen[r];
                proptest::prop_assert!(got.windows(2).all(|w| w[1] > w[0]), "in order");
                proptest::prop_assert_eq!(got.len() as u64 + readers[r].lost(), written, "delivered + lost = written");
                proptest::prop_assert!(got.last().is_none_or(|l| *l + 1 == written), "the newest record always arrives");
            }
        }
    }
}
