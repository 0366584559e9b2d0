//! Model-checked concurrency of the ring and the wake gate (loom explores
//! every interleaving and every weak-memory outcome loom models).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p weir-events --test loom --release`
//! (`cargo xtask test` does, in its own target directory).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use weir_events::{Ring, WakeGate};

/// Two producers ("CPUs") push two values each into a 2-slot ring while a
/// consumer pops twice: no value is lost or duplicated, each producer's
/// values come out in order, and the overflow count is exact
/// (delivered + dropped = pushed).
#[test]
fn two_producers_one_consumer_wrap_and_overflow() {
    loom::model(|| {
        let ring = Arc::new(Ring::<(u8, u8)>::try_new(2).unwrap());
        let producers: Vec<_> = (0..2u8)
            .map(|p| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || (0..2u8).filter(|i| ring.push((p, *i))).count() as u64)
            })
            .collect();
        let consumer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..2 {
                    if let Some(v) = ring.pop() {
                        got.push(v);
                    }
                }
                got
            })
        };
        let accepted: u64 = producers.into_iter().map(|t| t.join().unwrap()).sum();
        let mut got = consumer.join().unwrap();
        while let Some(v) = ring.pop() {
            got.push(v);
        }
        assert_eq!(got.len() as u64, accepted);
        assert_eq!(accepted + ring.take_dropped(), 4);
        assert_eq!(ring.dropped_total() + accepted, 4);
        for p in 0..2u8 {
            let mine: Vec<u8> = got.iter().filter(|v| v.0 == p).map(|v| v.1).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "producer {p} out of order: {mine:?}");
        }
        // The slots are reusable after the wrap.
        assert!(ring.push((9, 9)));
        assert_eq!(ring.pop(), Some((9, 9)));
    });
}

/// The driver's pend/wake handshake: a reader that finds the ring empty
/// arms the gate and looks again before parking; a producer that pushed asks
/// the gate. A parked reader is never left with a value ready and no
/// wake-up requested.
#[test]
fn no_lost_wake_up() {
    loom::model(|| {
        let ring = Arc::new(Ring::<u8>::try_new(2).unwrap());
        let gate = Arc::new(WakeGate::new());
        let woke = Arc::new(AtomicBool::new(false));
        let producer = {
            let (ring, gate, woke) = (Arc::clone(&ring), Arc::clone(&gate), Arc::clone(&woke));
            thread::spawn(move || {
                assert!(ring.push(1));
                if gate.should_wake() {
                    woke.store(true, Ordering::Relaxed);
                }
            })
        };
        let reader = {
            let (ring, gate) = (Arc::clone(&ring), Arc::clone(&gate));
            thread::spawn(move || {
                if ring.pop().is_some() {
                    return false;
                }
                gate.arm();
                if ring.pop().is_some() {
                    gate.disarm();
                    return false;
                }
                true // parked
            })
        };
        producer.join().unwrap();
        let parked = reader.join().unwrap();
        if parked {
            assert!(woke.load(Ordering::Relaxed), "reader parked, value ready, no wake-up requested");
            assert_eq!(ring.pop(), Some(1));
        }
    });
}

/// Broadcast ring: two records of 2 words each ([n, n] with length n) are
/// written into a 1-slot ring while a reader reads twice. Whatever it gets
/// is a whole record (both words and the length from the same write), in
/// order, and delivered + lost + not-yet-visible covers exactly what was
/// written. With one slot the second write overwrites the first while the
/// reader may be copying it: the tear the stamp recheck must catch.
fn broadcast_reader_sees_only_whole_records(recheck: bool) {
    use weir_events::{Broadcast, Read};
    loom::model(move || {
        let ring = Arc::new(Broadcast::<2>::try_new(1).unwrap());
        let mut cursor = ring.subscribe();
        let writer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                for n in 1..=2u8 {
                    ring.write(&[n; 16]);
                }
            })
        };
        let mut got = Vec::new();
        let mut out = [0u8; 16];
        for _ in 0..2 {
            let r = if recheck { ring.read(&mut cursor, &mut out) } else { ring.read_without_recheck(&mut cursor, &mut out) };
            if let Read::Record(len) = r {
                assert_eq!(len, 16);
                assert!(out.iter().all(|b| *b == out[0]), "torn record {out:?}");
                got.push(out[0]);
            }
        }
        writer.join().unwrap();
        assert!(got.windows(2).all(|w| w[1] > w[0]), "out of order {got:?}");
        // Drain what is left after the writer is done: the newest record is
        // never lost.
        while let Read::Record(_) = ring.read(&mut cursor, &mut out) {
            got.push(out[0]);
        }
        assert_eq!(got.last().copied(), Some(2), "the last record must arrive: {got:?}");
        assert_eq!(got.len() as u64 + cursor.lost() + ring.collisions(), 2, "got {got:?} lost {}", cursor.lost());
    });
}

#[test]
fn broadcast_reader_with_the_stamp_recheck_never_returns_a_torn_record() {
    broadcast_reader_sees_only_whole_records(true);
}

/// The broken variant (no second stamp load): loom must find the tear.
#[test]
#[should_panic(expected = "torn record")]
fn broadcast_reader_without_the_recheck_is_caught() {
    broadcast_reader_sees_only_whole_records(false);
}

/// Two writers race for the same slot of a 1-slot ring (positions 0 and 1)
/// while a reader reads: it never sees a torn record, and accounts for both
/// writes. With the slot exchange in `write` made `Relaxed` instead of
/// `Acquire`, this model fails with a torn record (the second writer's
/// words are not ordered after the first's): checked by hand, the fix is
/// the `Acquire`.
/// Preemptions are bounded to 3 to keep the run in minutes.
#[test]
fn broadcast_two_writers_one_reader() {
    use weir_events::{Broadcast, Read};
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let ring = Arc::new(Broadcast::<2>::try_new(1).unwrap());
        let mut cursor = ring.subscribe();
        let writers: Vec<_> = (1..=2u8)
            .map(|n| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || ring.write(&[n; 16]))
            })
            .collect();
        let mut out = [0u8; 16];
        let mut got = Vec::new();
        if let Read::Record(_) = ring.read(&mut cursor, &mut out) {
            assert!(out.iter().all(|b| *b == out[0]), "torn record {out:?}");
            got.push(out[0]);
        }
        for w in writers {
            w.join().unwrap();
        }
        while let Read::Record(_) = ring.read(&mut cursor, &mut out) {
            assert!(out.iter().all(|b| *b == out[0]), "torn record {out:?}");
            got.push(out[0]);
        }
        // Once both writers are done every position is accounted for: read,
        // or lost (overwritten, or dropped by a colliding writer, which marks
        // it so the reader does not wait a lap for it).
        let accounted = got.len() as u64 + cursor.lost();
        assert_eq!(accounted, 2, "got {got:?} lost {} collisions {}", cursor.lost(), ring.collisions());
    });
}

/// A writer that finds its slot still being written one lap earlier drops
/// its record and marks the position. Two writers on a 1-slot ring, then a
/// reader: once both are done, the reader accounts for both positions (one
/// read, or lost). `ignore_skips`: the reader without the mark waits at the
/// dropped position (stuck, since nothing else is written): loom must find
/// that interleaving.
fn broadcast_dropped_positions_are_skipped(ignore_skips: bool) {
    use weir_events::{Broadcast, Read};
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(move || {
        let ring = Arc::new(Broadcast::<1>::try_new(1).unwrap());
        let mut cursor = ring.subscribe();
        let writers: Vec<_> = (1..=2u8)
            .map(|n| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || ring.write(&[n; 8]))
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let mut out = [0u8; 8];
        let mut got = 0u64;
        loop {
            let r = if ignore_skips { ring.read_ignoring_skips(&mut cursor, &mut out) } else { ring.read(&mut cursor, &mut out) };
            match r {
                Read::Record(_) => got += 1,
                Read::Empty => break,
            }
        }
        let lost = cursor.take_lost();
        assert_eq!(got + lost, 2, "stuck at a dropped position: got {got} lost {lost}");
        assert!(!ring.has_ready(&cursor), "nothing left to read, and has_ready says so");
    });
}

#[test]
fn broadcast_a_reader_skips_a_position_its_writer_dropped() {
    broadcast_dropped_positions_are_skipped(false);
}

/// The broken variant (no dropped-position mark): loom must find the stall.
#[test]
#[should_panic(expected = "stuck at a dropped position")]
fn broadcast_a_reader_ignoring_the_mark_is_caught() {
    broadcast_dropped_positions_are_skipped(true);
}

/// The driver's per-reader pend/wake handshake over the broadcast ring: two
/// readers, each with its own cursor, find nothing, arm the gate and look
/// again (`has_ready` on their own cursor) before parking; the producer
/// writes, then asks the gate. Every reader left parked with a record ready
/// for its cursor has a wake-up requested, and then reads that record.
/// Preemptions are bounded to 2 to keep the run in minutes.
fn broadcast_wake_up(arm_before_the_last_look: bool) {
    use weir_events::{Broadcast, Read};
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(move || {
        let ring = Arc::new(Broadcast::<1>::try_new(2).unwrap());
        let gate = Arc::new(WakeGate::new());
        let woke = Arc::new(AtomicBool::new(false));
        let cursors = [ring.subscribe(), ring.subscribe()];
        let producer = {
            let (ring, gate, woke) = (Arc::clone(&ring), Arc::clone(&gate), Arc::clone(&woke));
            thread::spawn(move || {
                assert!(ring.write(&[7; 8]));
                if gate.should_wake() {
                    woke.store(true, Ordering::Relaxed);
                }
            })
        };
        let readers: Vec<_> = cursors
            .into_iter()
            .map(|mut cursor| {
                let (ring, gate) = (Arc::clone(&ring), Arc::clone(&gate));
                thread::spawn(move || {
                    let mut out = [0u8; 8];
                    if let Read::Record(_) = ring.read(&mut cursor, &mut out) {
                        return (cursor, false);
                    }
                    if arm_before_the_last_look {
                        gate.arm();
                        if ring.has_ready(&cursor) {
                            gate.disarm();
                            return (cursor, false);
                        }
                    } else {
                        // Broken: look, then arm.
                        if ring.has_ready(&cursor) {
                            return (cursor, false);
                        }
                        gate.arm();
                    }
                    (cursor, true)
                })
            })
            .collect();
        producer.join().unwrap();
        for r in readers {
            let (mut cursor, parked) = r.join().unwrap();
            if parked {
                assert!(woke.load(Ordering::Relaxed), "reader parked, record ready, no wake-up requested");
                let mut out = [0u8; 8];
                assert_eq!(ring.read(&mut cursor, &mut out), Read::Record(8));
                assert_eq!(out, [7; 8]);
            }
        }
    });
}

#[test]
fn broadcast_every_parked_reader_with_a_record_ready_is_woken() {
    broadcast_wake_up(true);
}

/// The broken variant (the last look before arming): loom must find a
/// reader parked with a record ready and no wake-up.
#[test]
#[should_panic(expected = "no wake-up requested")]
fn broadcast_looking_before_arming_is_caught() {
    broadcast_wake_up(false);
}
