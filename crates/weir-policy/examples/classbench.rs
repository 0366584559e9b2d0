//! Weir's side of the ClassBench comparison (`cargo xtask classbench` runs it beside the peers):
//! `cargo run --release -p weir-policy --example classbench -- RULES TRACE [ROUNDS | calls]`
//!
//! RULES is a ClassBench filter file (`db_generator` output: `@src/len dst/len sp : sp dp : dp
//! proto/mask ...`, one rule per line, first match wins), TRACE a `trace_generator` header file
//! (`src dst sp dp proto ...`). A rule becomes an outbound-or-inbound Weir rule with the source
//! as the local side and the destination as the remote side. Prints one line: rules, build CPU
//! time, bytes, tables probed and entries checked per lookup, and min / median ns per lookup over
//! ROUNDS passes over the whole trace (thread CPU time). Every answer of the first pass is
//! checked against the reference evaluator on a sample of 2,000 packets. With ROUNDS = 0 only the
//! build and the work counts run (for cachegrind: the difference between ROUNDS = 0 and 1,
//! divided by the packets, is the instructions per lookup).
//!
//! With `calls` instead of ROUNDS it compiles, then calls [`CompiledPolicy::lookup`] exactly once
//! per header and does nothing else (no reference check, no `lookup_work`, no timing), through a
//! function pointer so the call is never inlined: for `valgrind --tool=callgrind
//! --toggle-collect=<lookup's symbol>`, whose collected instructions divided by the `calls=`
//! figure it prints are the instructions per lookup. It prints `weir-calls calls=N (checksum S)`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::hint::black_box;

use weir_policy::{reference, Action, Addr, AddrCond, AddrRange, CompiledPolicy, Direction, Policy, PortCond, Query, Rule};

fn prefix(s: &str) -> AddrRange {
    let (a, len) = s.split_once('/').expect("prefix a.b.c.d/len");
    let mut v = 0u32;
    for o in a.split('.') {
        v = (v << 8) | o.parse::<u32>().expect("octet");
    }
    AddrRange::v4_cidr(v, len.parse().expect("prefix length")).expect("valid prefix")
}

fn parse_rules(text: &str) -> Policy {
    let mut p = Policy::permit_all();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start_matches('@');
        let f: Vec<&str> = line.split(['\t', ' ']).filter(|s| !s.is_empty() && *s != ":").collect();
        if f.len() < 7 {
            continue;
        }
        let mut r = Rule::any(i as u32, if i % 2 == 0 { Action::Block } else { Action::Permit });
        let any = |r: &AddrRange| matches!(r, AddrRange::V4 { lo: 0, hi: u32::MAX });
        let (src, dst) = (prefix(f[0]), prefix(f[1]));
        r.local_addr = (!any(&src)).then(|| AddrCond::Ranges(vec![src]));
        r.remote_addr = (!any(&dst)).then(|| AddrCond::Ranges(vec![dst]));
        let port = |lo: &str, hi: &str| {
            let (lo, hi): (u16, u16) = (lo.parse().expect("port"), hi.parse().expect("port"));
            (lo, hi) != (0, u16::MAX)
        }
        .then(|| PortCond { ranges: vec![(lo.parse().unwrap(), hi.parse().unwrap())] });
        r.local_port = port(f[2], f[3]);
        r.remote_port = port(f[4], f[5]);
        let (pv, pm) = f[6].split_once('/').expect("proto/mask");
        let hex = |s: &str| u8::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
        if hex(pm) == 0xFF {
            r.protocol = Some(hex(pv));
        }
        p.rules.push(r);
    }
    p
}

fn parse_trace(text: &str) -> Vec<Query<'static>> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<u32> = l.split_whitespace().take(5).filter_map(|x| x.parse().ok()).collect();
            (f.len() == 5).then(|| Query {
                direction: Direction::Outbound,
                remote: Addr::V4(f[1]),
                local: Addr::V4(f[0]),
                protocol: f[4] as u8,
                remote_port: f[3] as u16,
                local_port: f[2] as u16,
                app: None,
                loopback: false,
            })
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rules = std::fs::read_to_string(&args[1]).expect("rules file");
    let trace = std::fs::read_to_string(&args[2]).expect("trace file");
    let p = parse_rules(&rules);
    let qs = parse_trace(&trace);
    if args.get(3).map(String::as_str) == Some("calls") {
        calls_only(&p, &qs);
        return;
    }
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let t0 = cpu_time::ThreadTime::now();
    let c = CompiledPolicy::compile(&p).expect("compiles");
    let build_ms = t0.elapsed().as_secs_f64() * 1e3;
    let step = (qs.len() / 2000).max(1);
    for q in qs.iter().step_by(step) {
        assert_eq!(c.lookup(q), reference::evaluate(&p, q), "{q:?}");
    }
    let mut times = Vec::new();
    let mut sum = 0u64;
    for _ in 0..rounds {
        let t = cpu_time::ThreadTime::now();
        for q in &qs {
            sum = sum.wrapping_add(u64::from(black_box(c.lookup(black_box(q))).rule_index.unwrap_or(0)));
        }
        times.push(t.elapsed().as_nanos() as f64 / qs.len() as f64);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let (mut probes, mut entries) = (0u64, 0u64);
    for q in &qs {
        let (_, pr, en) = c.lookup_work(q);
        probes += u64::from(pr);
        entries += u64::from(en);
    }
    let n = qs.len().max(1) as f64;
    println!(
        "weir rules={} packets={} build_ms={build_ms:.1} bytes={} bytes_per_rule={:.0} tables_probed={:.2} entries_checked={:.2} ns_min={:.1} ns_median={:.1} (checksum {sum})",
        p.rules.len(),
        qs.len(),
        c.memory_bytes(),
        c.memory_bytes() as f64 / p.rules.len().max(1) as f64,
        probes as f64 / n,
        entries as f64 / n,
        times.first().copied().unwrap_or(f64::NAN),
        times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
    );
}

/// One [`CompiledPolicy::lookup`] call per header and nothing else (see the module docs). The
/// function pointer goes through `black_box`, so the compiler cannot inline `lookup` here and the
/// symbol valgrind toggles on is entered once per header.
fn calls_only(p: &Policy, qs: &[Query<'static>]) {
    let c = CompiledPolicy::compile(p).expect("compiles");
    let lookup: fn(&CompiledPolicy, &Query<'_>) -> weir_policy::Verdict = black_box(CompiledPolicy::lookup);
    let mut sum = 0u64;
    for q in qs {
        sum = sum.wrapping_add(u64::from(lookup(&c, q).rule_index.unwrap_or(0)));
    }
    println!("weir-calls calls={} (checksum {sum})", qs.len());
}
