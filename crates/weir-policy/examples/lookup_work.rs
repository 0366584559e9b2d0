//! Runs lookups for instruction counting and prints the structure's work per lookup:
//! `cargo run --release -p weir-policy --example lookup_work -- PROFILE RULES LOOPS`
//! (PROFILE = acl | fw | ipc; LOOPS × 4,096 lookups of a ClassBench-style trace). Under
//! `valgrind --tool=cachegrind --cache-sim=no`, the difference between LOOPS = 0 and LOOPS = k
//! divided by k × 4,096 is the instructions one lookup executes, independent of machine load.
//! The compile time printed is the thread's CPU time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use weir_policy_testing::{self as testing, Extras, Profile};
use weir_policy::{reference, CompiledPolicy};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let profile = match args.get(1).map(String::as_str) {
        Some("fw") => Profile::Fw,
        Some("ipc") => Profile::Ipc,
        _ => Profile::Acl,
    };
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let loops: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let reference_too = args.get(4).is_some_and(|s| s == "reference");
    // Same policies and traces as benches/lookup.rs.
    let extras = Extras { set_percent: 0, set_entries: 0, app_percent: 2, loopback_percent: 2, v6_percent: 10 };
    let p = testing::classbench(n, profile, extras, 0x5EED ^ n as u64);
    let t0 = cpu_time::ThreadTime::now();
    let c = CompiledPolicy::compile(&p).unwrap();
    let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    let qs = testing::trace(&p, 4096, 1);
    let queries: Vec<_> = qs.iter().map(|q| q.as_query()).collect();
    let mut x = 0u64;
    for _ in 0..loops {
        for q in &queries {
            let v = if reference_too {
                reference::evaluate(std::hint::black_box(&p), std::hint::black_box(q))
            } else {
                c.lookup(std::hint::black_box(q))
            };
            x = x.wrapping_add(u64::from(std::hint::black_box(v).rule_index.unwrap_or(0)));
        }
    }
    let (mut probes, mut entries) = (0u64, 0u64);
    for q in &queries {
        let (_, pr, en) = c.lookup_work(q);
        probes += u64::from(pr);
        entries += u64::from(en);
    }
    let s = c.stats();
    println!(
        "{n} rules: compiled in {compile_ms:.1} ms, {:.1} bytes/rule; {:.1} tables probed, {:.1} entries checked per lookup; tables {:?}, longest bucket {:?} (checksum {x})",
        c.memory_bytes() as f64 / n as f64,
        probes as f64 / queries.len() as f64,
        entries as f64 / queries.len() as f64,
        s.tables,
        s.max_bucket
    );
}
