//! The per-reader event stream: a fixed table of reader cursors (one per
//! open handle that reads) over the [`Broadcast`] ring, and the drain that
//! fills one read's buffer from one cursor.
//!
//! The table is plain data: its owner (the driver's event log) keeps it
//! under one spin lock, taken only by readers (READ_EVENTS, the completion
//! DPC, IRP_MJ_CLEANUP/CLOSE), never by classifyFn, so a reader can never
//! make a producer wait. Its slots are preallocated inline, so claiming a
//! reader never allocates.

use crate::broadcast::{Broadcast, Cursor, Read};
use crate::record::{encode_dropped, BufferTooSmall, DROPPED_SIZE, MAX_CONNECTION_SIZE, MIN_READ_BUFFER};

/// 64-bit words of the largest record: the `W` of the event ring.
pub const RECORD_WORDS: usize = MAX_CONNECTION_SIZE / 8;

/// The ring connection records are broadcast through.
pub type EventRing = Broadcast<RECORD_WORDS>;

/// Every reader slot is taken: the new reader is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyReaders {
    /// The table's size.
    pub limit: usize,
}

/// Up to `N` readers, each identified by a non-zero key (the driver uses
/// the address of the handle's `FILE_OBJECT`) with its own [`Cursor`].
///
/// # Invariants
/// No two slots hold the same key, and no slot holds key 0 (both checked
/// in [`ReaderTable::claim`], the only place a key is stored).
pub struct ReaderTable<const N: usize> {
    slots: [Option<(usize, Cursor)>; N],
}

impl<const N: usize> Default for ReaderTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ReaderTable<N> {
    /// No reader.
    pub const fn new() -> Self {
        Self { slots: [None; N] }
    }

    /// The cursor of reader `key`, if it has one.
    pub fn find(&mut self, key: usize) -> Option<&mut Cursor> {
        self.slots.iter_mut().flatten().find(|(k, _)| *k == key).map(|(_, c)| c)
    }

    /// The cursor of reader `key`; a new reader gets a free slot with the
    /// cursor `start()` makes. Key 0 (no handle) is refused like a full
    /// table, since it cannot be released.
    ///
    /// # Errors
    /// [`TooManyReaders`] when every slot is taken; nothing changes.
    pub fn claim(&mut self, key: usize, start: impl FnOnce() -> Cursor) -> Result<&mut Cursor, TooManyReaders> {
        let limit = N;
        if key == 0 {
            return Err(TooManyReaders { limit });
        }
        let index = match self.slots.iter().position(|s| s.is_some_and(|(k, _)| k == key)) {
            Some(i) => i,
            None => {
                let i = self.slots.iter().position(Option::is_none).ok_or(TooManyReaders { limit })?;
                if let Some(slot) = self.slots.get_mut(i) {
                    // INVARIANT: `key` is non-zero and was in no slot.
                    *slot = Some((key, start()));
                }
                i
            }
        };
        match self.slots.get_mut(index) {
            Some(Some((_, cursor))) => Ok(cursor),
            _ => Err(TooManyReaders { limit }),
        }
    }

    /// Frees reader `key`'s slot; true if it had one.
    pub fn release(&mut self, key: usize) -> bool {
        match self.slots.iter_mut().find(|s| s.is_some_and(|(k, _)| k == key)) {
            Some(slot) => {
                *slot = None;
                true
            }
            None => false,
        }
    }

    /// Readers with a slot.
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// No reader.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Fills `out` with as many whole records as fit from `cursor`'s position:
/// a dropped-events record first when this reader lost records (its own
/// count: overwritten before it read them), then records, oldest first,
/// while a largest record still fits. Returns the bytes written; 0 when
/// there was nothing for this reader.
///
/// Records are copied straight from the ring into `out` after a reserved
/// [`DROPPED_SIZE`] gap; if nothing was lost the records are moved down
/// over the gap. Losses discovered mid-drain are reported in the same
/// marker (at the front), so one reply carries one count.
///
/// # Errors
/// `out` shorter than [`MIN_READ_BUFFER`]: nothing is read.
pub fn drain_cursor(ring: &EventRing, cursor: &mut Cursor, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    if out.len() < MIN_READ_BUFFER {
        return Err(BufferTooSmall { needed: MIN_READ_BUFFER });
    }
    let mut end = DROPPED_SIZE;
    while let Some(rest) = out.get_mut(end..).filter(|r| r.len() >= MAX_CONNECTION_SIZE) {
        match ring.read(cursor, rest) {
            Read::Record(n) => end += n,
            Read::Empty => break,
        }
    }
    let lost = cursor.take_lost();
    if lost > 0 {
        // Fits: the gap is DROPPED_SIZE bytes.
        let _ = encode_dropped(lost, out);
        return Ok(end);
    }
    out.copy_within(DROPPED_SIZE..end, 0);
    Ok(end - DROPPED_SIZE)
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::record::{decode, encode_event, AppPath, Decision, Direction, Event, IpVersion, Record};

    fn event(pid: u64) -> Event {
        Event {
            time: 1,
            layer_id: 48,
            direction: Direction::Outbound,
            ip_version: IpVersion::V4,
            tuple: false,
            protocol: 0,
            local_addr: [0; 16],
            local_port: 0,
            remote_addr: [0; 16],
            remote_port: 0,
            process_id: Some(pid),
            path: AppPath::EMPTY,
            decision: Decision::Permit,
            rule_id: None,
            reauthorization: false,
            user: crate::record::UserSid::EMPTY,
            policy_generation: 0,
            rule_index: None,
        }
    }

    fn write(ring: &EventRing, pid: u64) {
        let mut buf = [0u8; MAX_CONNECTION_SIZE];
        let n = encode_event(&event(pid), &mut buf).unwrap();
        assert!(ring.write(&buf[..n]));
    }

    fn pids(bytes: &[u8]) -> Vec<Result<u64, u64>> {
        decode(bytes)
            .map(|r| match r.unwrap() {
                Record::Connection(e) => Ok(e.process_id.unwrap()),
                Record::Dropped { count } => Err(count),
                _ => panic!("unknown record"),
            })
            .collect()
    }

    #[test]
    fn a_table_gives_each_key_one_cursor_and_refuses_past_its_size() {
        let mut t = ReaderTable::<2>::new();
        t.claim(10, Cursor::default).unwrap();
        t.claim(10, || panic!("an existing reader keeps its cursor")).unwrap();
        t.claim(20, Cursor::default).unwrap();
        assert_eq!(t.claim(30, Cursor::default), Err(TooManyReaders { limit: 2 }));
        assert_eq!(t.claim(0, Cursor::default), Err(TooManyReaders { limit: 2 }));
        assert_eq!(t.len(), 2);
        assert!(t.release(10));
        assert!(!t.release(10), "released once");
        assert!(t.find(10).is_none());
        t.claim(30, Cursor::default).unwrap();
        assert!(t.find(20).is_some() && t.find(30).is_some());
    }

    #[test]
    fn two_cursors_each_drain_every_record() {
        let ring = EventRing::try_new(8).unwrap();
        let mut a = ring.subscribe_oldest();
        let mut b = ring.subscribe_oldest();
        for pid in 0..5 {
            write(&ring, pid);
        }
        let mut out = vec![0u8; 8 * MAX_CONNECTION_SIZE];
        for c in [&mut a, &mut b] {
            let n = drain_cursor(&ring, c, &mut out).unwrap();
            assert_eq!(pids(&out[..n]), (0..5).map(Ok).collect::<Vec<_>>());
            assert_eq!(drain_cursor(&ring, c, &mut out).unwrap(), 0);
        }
    }

    #[test]
    fn a_lagging_cursor_reports_its_own_loss_first_and_a_short_buffer_takes_nothing() {
        let ring = EventRing::try_new(4).unwrap();
        let mut slow = ring.subscribe();
        for pid in 0..6 {
            write(&ring, pid);
        }
        let mut small = vec![0u8; MIN_READ_BUFFER - 1];
        assert!(drain_cursor(&ring, &mut slow, &mut small).is_err());
        assert_eq!(slow.position(), 0, "a refused drain reads nothing");
        // Room for exactly one record after the marker.
        let mut one = vec![0u8; MIN_READ_BUFFER];
        let n = drain_cursor(&ring, &mut slow, &mut one).unwrap();
        assert_eq!(pids(&one[..n]), vec![Err(2), Ok(2)]);
        let mut out = vec![0u8; 8 * MAX_CONNECTION_SIZE];
        let n = drain_cursor(&ring, &mut slow, &mut out).unwrap();
        assert_eq!(pids(&out[..n]), vec![Ok(3), Ok(4), Ok(5)], "no second marker");
        // A late reader starts at the oldest record still held.
        let mut late = ring.subscribe_oldest();
        let n = drain_cursor(&ring, &mut late, &mut out).unwrap();
        assert_eq!(pids(&out[..n]), vec![Ok(2), Ok(3), Ok(4), Ok(5)]);
        assert!(!ring.has_ready(&late));
        write(&ring, 6);
        assert!(ring.has_ready(&late));
    }
}
