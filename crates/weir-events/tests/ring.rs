//! Host tests of the ring: order, wrap-around, overflow counting, the drain
//! into READ_EVENTS buffers, and concurrent producers on real threads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#![cfg(not(loom))]

use std::sync::Arc;
use weir_events::*;

fn event(n: u64) -> Event {
    Event {
        time: n,
        layer_id: 48,
        direction: Direction::Outbound,
        ip_version: IpVersion::V4,
        tuple: true,
        protocol: 6,
        local_addr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        local_port: 50000,
        remote_addr: [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        remote_port: 443,
        process_id: Some(n),
        path: AppPath::EMPTY,
        decision: Decision::Permit,
        rule_id: None,
        reauthorization: false,
        user: weir_events::UserSid::EMPTY,
        policy_generation: 0,
        rule_index: None,
    }
}

#[test]
fn capacity_must_be_a_power_of_two() {
    assert_eq!(Ring::<u32>::try_new(0).err(), Some(RingError::BadCapacity));
    assert_eq!(Ring::<u32>::try_new(3).err(), Some(RingError::BadCapacity));
    assert_eq!(Ring::<u32>::try_new(4).unwrap().capacity(), 4);
}

#[test]
fn an_unallocated_ring_drops_and_counts_until_allocated() {
    let mut r = Ring::<u32>::unallocated();
    assert_eq!(r.capacity(), 0);
    assert!(!r.push(1));
    assert_eq!(r.pop(), None);
    assert!(!r.has_ready());
    assert_eq!(r.take_dropped(), 1);
    r.allocate(2).unwrap();
    assert_eq!(r.allocate(2), Err(RingError::BadCapacity), "allocated once");
    assert!(r.push(2));
    assert_eq!(r.pop(), Some(2));
}

#[test]
fn fifo_order_and_empty() {
    let r = Ring::try_new(8).unwrap();
    assert_eq!(r.pop(), None);
    assert!(!r.has_ready());
    for i in 0..5u32 {
        assert!(r.push(i));
    }
    assert!(r.has_ready());
    assert_eq!((0..5).map(|_| r.pop().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert_eq!(r.pop(), None);
}

#[test]
fn wraps_around_many_laps() {
    let r = Ring::try_new(4).unwrap();
    let mut next_out = 0u32;
    for i in 0..1000u32 {
        assert!(r.push(i));
        if i % 3 == 2 {
            // Keep 1..3 values in flight so slots are reused at every offset.
            while let Some(v) = r.pop() {
                assert_eq!(v, next_out);
                next_out += 1;
            }
        }
    }
    while let Some(v) = r.pop() {
        assert_eq!(v, next_out);
        next_out += 1;
    }
    assert_eq!(next_out, 1000);
    assert_eq!(r.dropped_total(), 0);
}

#[test]
fn full_ring_drops_newest_and_counts_exactly() {
    let r = Ring::try_new(4).unwrap();
    for i in 0..10u32 {
        assert_eq!(r.push(i), i < 4, "push {i}");
    }
    assert_eq!(r.take_dropped(), 6);
    assert_eq!(r.take_dropped(), 0, "each drop is reported once");
    assert_eq!(r.dropped_total(), 6);
    assert_eq!(r.pop(), Some(0));
    assert!(r.push(10), "a freed slot is usable again");
    assert!(!r.push(11));
    assert_eq!(r.take_dropped(), 1);
    assert_eq!(r.dropped_total(), 7);
    assert_eq!((0..4).map(|_| r.pop().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3, 10]);
}

#[test]
fn drain_refuses_short_buffers_and_takes_nothing() {
    let r = Ring::try_new(4).unwrap();
    r.push(event(1));
    let mut small = vec![0u8; MIN_READ_BUFFER - 1];
    assert_eq!(drain_into(&r, &mut small), Err(BufferTooSmall { needed: MIN_READ_BUFFER }));
    assert!(r.has_ready(), "the event is still there");
    let mut buf = vec![0u8; MIN_READ_BUFFER];
    let n = drain_into(&r, &mut buf).unwrap();
    let recs: Vec<_> = decode(&buf[..n]).collect::<Result<_, _>>().unwrap();
    assert_eq!(recs, vec![Record::Connection(event(1))]);
}

#[test]
fn drain_fills_whole_records_and_reports_drops_first() {
    let r = Ring::try_new(8).unwrap();
    for i in 0..11 {
        r.push(event(i));
    }
    // Room for the marker and exactly three maximal records.
    let mut buf = vec![0u8; 16 + 3 * MAX_CONNECTION_SIZE];
    let n = drain_into(&r, &mut buf).unwrap();
    let recs: Vec<_> = decode(&buf[..n]).collect::<Result<_, _>>().unwrap();
    // Small events (no path): every event taken while a maximal one fits.
    assert_eq!(recs[0], Record::Dropped { count: 3 });
    let times: Vec<u64> = recs[1..].iter().map(|r| match r { Record::Connection(e) => e.time, _ => panic!("{r:?}") }).collect();
    assert_eq!(times, (0..times.len() as u64).collect::<Vec<_>>());
    let mut rest = vec![0u8; 8192];
    let n2 = drain_into(&r, &mut rest).unwrap();
    let more: Vec<_> = decode(&rest[..n2]).collect::<Result<_, _>>().unwrap();
    assert_eq!(times.len() + more.len(), 8, "every accepted event delivered once");
    assert!(!more.iter().any(|r| matches!(r, Record::Dropped { .. })));
    assert_eq!(drain_into(&r, &mut rest), Ok(0));
}

#[test]
fn two_producer_threads_and_a_consumer_lose_and_duplicate_nothing() {
    const N: u64 = 50_000;
    let r = Arc::new(Ring::try_new(64).unwrap());
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let r = Arc::clone(&r);
            std::thread::spawn(move || (0..N).filter(|i| r.push((p, *i))).count() as u64)
        })
        .collect();
    let consumer = {
        let r = Arc::clone(&r);
        std::thread::spawn(move || {
            let mut last = [None::<u64>; 2];
            let mut got = 0u64;
            let mut idle = 0;
            while idle < 1_000_000 {
                match r.pop() {
                    Some((p, i)) => {
                        // Per-producer order is preserved.
                        assert!(last[p as usize].is_none_or(|l| l < i));
                        last[p as usize] = Some(i);
                        got += 1;
                        idle = 0;
                    }
                    None => idle += 1,
                }
            }
            got
        })
    };
    let accepted: u64 = producers.into_iter().map(|t| t.join().unwrap()).sum();
    let got = consumer.join().unwrap();
    let mut tail = 0;
    while r.pop().is_some() {
        tail += 1;
    }
    assert_eq!(got + tail, accepted);
    assert_eq!(accepted + r.dropped_total(), 2 * N, "every push is either delivered or counted as dropped");
}

#[test]
fn wake_gate_counts_readers() {
    let g = WakeGate::new();
    assert!(!g.should_wake());
    g.arm();
    g.arm();
    assert!(g.should_wake());
    g.disarm();
    g.disarm();
    g.disarm(); // unpaired: saturates
    assert_eq!(g.waiting(), 0);
    assert!(!g.should_wake());
}
