//! Events recorded per second: one and two producer threads pushing into a
//! ring that a consumer thread drains (the driver's shape: classify on
//! several CPUs, one reader). `cargo bench -p weir-events`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use weir_events::{AppPath, Decision, Direction, Event, IpVersion, Ring};

const PER_PRODUCER: u64 = 100_000;

fn sample() -> Event {
    let path: Vec<u16> = "\\device\\harddiskvolume3\\program files\\app\\app.exe".encode_utf16().collect();
    Event {
        time: 133_000_000_000_000_000,
        layer_id: 48,
        direction: Direction::Outbound,
        ip_version: IpVersion::V4,
        tuple: true,
        protocol: 6,
        local_addr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        local_port: 50000,
        remote_addr: [93, 184, 216, 34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        remote_port: 443,
        process_id: Some(4242),
        path: AppPath::from_units(&path),
        decision: Decision::Permit,
        rule_id: None,
        reauthorization: false,
        user: weir_events::UserSid::EMPTY,
        policy_generation: 0,
        rule_index: None,
    }
}

/// `producers` threads push PER_PRODUCER events each while one consumer
/// pops; returns the events the ring accepted.
fn run(ring: &Arc<Ring<Event>>, producers: usize) -> u64 {
    let done = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (ring, done) = (Arc::clone(ring), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) || ring.has_ready() {
                if ring.pop().is_some() {
                    n += 1;
                }
            }
            n
        })
    };
    let event = sample();
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let ring = Arc::clone(ring);
            std::thread::spawn(move || (0..PER_PRODUCER).filter(|_| ring.push(event)).count() as u64)
        })
        .collect();
    let accepted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    done.store(true, Ordering::Relaxed);
    let popped = consumer.join().unwrap();
    assert_eq!(accepted, popped);
    accepted
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring_push");
    g.sample_size(10);
    for producers in [1usize, 2] {
        g.throughput(Throughput::Elements(PER_PRODUCER * producers as u64));
        g.bench_function(format!("{producers}_producer(s)_512_slots"), |b| {
            let ring = Arc::new(Ring::try_new(512).unwrap());
            b.iter(|| run(&ring, producers));
        });
    }
    // The producer side alone: push into a ring that is emptied between
    // batches (no consumer contention), the cost classify pays per event.
    g.throughput(Throughput::Elements(256));
    g.bench_function("push_only_256", |b| {
        let ring: Ring<Event> = Ring::try_new(256).unwrap();
        let e = sample();
        b.iter(|| {
            for _ in 0..256 {
                ring.push(e);
            }
            while ring.pop().is_some() {}
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
