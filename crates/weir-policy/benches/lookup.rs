//! `cargo bench -p weir-policy`: lookup (compiled and reference), compile time, memory.
//!
//! Policies are ClassBench-style (`testing::classbench`), traces are ClassBench-style too
//! (`testing::trace`: 90% of queries aimed at a random rule, often on its boundaries, 10%
//! uniform). Each lookup benchmark cycles through 4,096 pre-built queries, so one iteration is
//! one lookup. Memory per rule is printed before the timings (criterion has no custom metric).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, Throughput};
use weir_policy_testing::{self as testing, Extras, OwnedQuery, Profile};
use weir_policy::{reference, AddrCond, AddrRange, AddressSet, CompiledPolicy, Policy, Rule, Action};

const SIZES: [usize; 3] = [100, 10_000, 100_000];
const PROFILES: [(Profile, &str); 3] = [
    (Profile::Acl, "acl"),
    (Profile::Fw, "fw"),
    (Profile::Ipc, "ipc"),
];

fn extras() -> Extras {
    Extras {
        set_percent: 0,
        set_entries: 0,
        app_percent: 2,
        loopback_percent: 2,
        v6_percent: 10,
    }
}

fn policy(n: usize, profile: Profile) -> Policy {
    testing::classbench(n, profile, extras(), 0x5EED ^ n as u64)
}

/// A 1,000,000-entry reputation set behind one block rule, in front of a 10k ACL policy.
fn set_policy() -> Policy {
    let mut p = policy(10_000, Profile::Acl);
    let mut rng = testing::Rng::new(7);
    let entries: Vec<AddrRange> = (0..1_000_000)
        .map(|i| {
            let a = rng.next_u64() as u32;
            if i % 10 == 0 {
                AddrRange::v4_cidr(a, 24).unwrap()
            } else {
                AddrRange::V4 { lo: a, hi: a }
            }
        })
        .collect();
    p.sets.push(AddressSet {
        name: "reputation".into(),
        entries,
    });
    let mut r = Rule::any(1, Action::Block);
    r.remote_addr = Some(AddrCond::Set(0));
    p.rules.insert(0, r);
    p
}

/// Trace for the set policy: half the queries hit set entries.
fn set_trace(p: &Policy) -> Vec<OwnedQuery> {
    let mut qs = testing::trace(p, 4096, 11);
    let mut rng = testing::Rng::new(12);
    let set = &p.sets[0].entries;
    for q in qs.iter_mut().step_by(2) {
        if let AddrRange::V4 { lo, .. } = set[rng.below(set.len() as u64) as usize] {
            q.remote = weir_policy::Addr::V4(lo);
        }
    }
    qs
}

/// Criterion measurement in CPU time of the benchmark thread (`CLOCK_THREAD_CPUTIME_ID`):
/// on a machine shared with other jobs, wall time also counts the time the thread waits for a
/// CPU. Set `WEIR_BENCH_WALL=1` to measure wall time instead.
struct ThreadCpu {
    wall: bool,
}

enum Start {
    Cpu(cpu_time::ThreadTime),
    Wall(std::time::Instant),
}

impl Measurement for ThreadCpu {
    type Intermediate = Start;
    type Value = Duration;
    fn start(&self) -> Start {
        if self.wall {
            Start::Wall(std::time::Instant::now())
        } else {
            Start::Cpu(cpu_time::ThreadTime::now())
        }
    }
    fn end(&self, i: Start) -> Duration {
        match i {
            Start::Cpu(t) => t.elapsed(),
            Start::Wall(t) => t.elapsed(),
        }
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NsFormatter
    }
}

struct NsFormatter;

impl ValueFormatter for NsFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e3, "µs")
        } else if typical < 1e9 {
            (1e6, "ms")
        } else {
            (1e9, "s")
        };
        for v in values.iter_mut() {
            *v /= div;
        }
        unit
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let n = match throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                *n as f64
            }
            _ => 1.0,
        };
        for v in values.iter_mut() {
            *v = n * 1e9 / *v;
        }
        "elem/s"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

type C = Criterion<ThreadCpu>;

fn bench_lookup(c: &mut C, name: &str, p: &Policy, qs: &[OwnedQuery], with_reference: bool) {
    let compiled = CompiledPolicy::compile(p).unwrap();
    let queries: Vec<_> = qs.iter().map(OwnedQuery::as_query).collect();
    let mask = queries.len() - 1;
    let mut g = c.benchmark_group("lookup");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("compiled", name), |b| {
        b.iter(|| {
            i = (i + 1) & mask;
            black_box(compiled.lookup(black_box(&queries[i])))
        })
    });
    if with_reference {
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("reference", name), |b| {
            b.iter(|| {
                i = (i + 1) & mask;
                black_box(reference::evaluate(p, black_box(&queries[i])))
            })
        });
    }
    g.finish();
}

fn lookups(c: &mut C) {
    for n in SIZES {
        for (profile, pname) in PROFILES {
            let p = policy(n, profile);
            let qs = testing::trace(&p, 4096, 1);
            bench_lookup(c, &format!("{pname}-{n}"), &p, &qs, n <= 10_000);
        }
    }
    let p = set_policy();
    let qs = set_trace(&p);
    bench_lookup(c, "set1M-acl-10000", &p, &qs, false);
    // The set alone: every lookup is one membership test of the 1,000,000-entry set.
    let mut only = set_policy();
    only.rules.truncate(1);
    bench_lookup(c, "set1M-only", &only, &qs, false);
}

fn compiles(c: &mut C) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for n in SIZES {
        for (profile, pname) in PROFILES {
            let p = policy(n, profile);
            g.bench_function(BenchmarkId::from_parameter(format!("{pname}-{n}")), |b| {
                b.iter(|| black_box(CompiledPolicy::compile(black_box(&p)).unwrap()))
            });
        }
    }
    let p = set_policy();
    g.bench_function(BenchmarkId::from_parameter("set1M-acl-10000"), |b| {
        b.iter(|| black_box(CompiledPolicy::compile(black_box(&p)).unwrap()))
    });
    g.finish();
}

fn memory() {
    println!("memory (CompiledPolicy::memory_bytes) and structure:");
    let report = |name: &str, p: &Policy| {
        let c = CompiledPolicy::compile(p).unwrap();
        let s = c.stats();
        println!(
            "  {name:>18}: {:>11} bytes, {:>7.1} bytes/rule, tables {:?}, entries {:?}, max bucket {:?}",
            c.memory_bytes(),
            c.memory_bytes() as f64 / p.rules.len() as f64,
            s.tables,
            s.entries,
            s.max_bucket
        );
    };
    for n in SIZES {
        for (profile, pname) in PROFILES {
            report(&format!("{pname}-{n}"), &policy(n, profile));
        }
    }
    report("set1M-acl-10000", &set_policy());
}

fn main() {
    memory();
    let wall = std::env::var_os("WEIR_BENCH_WALL").is_some();
    let mut c = Criterion::default()
        .with_measurement(ThreadCpu { wall })
        .configure_from_args();
    lookups(&mut c);
    compiles(&mut c);
    c.final_summary();
}
