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
