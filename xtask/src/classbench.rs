//! `cargo xtask classbench`: Weir's compiled lookup beside TupleMerge-Offline, PartitionSort and
//! PriorityTuple on ClassBench rule sets, from public sources, in one command.
//!
//! Steps: clone ClassBench (db_generator, trace_generator and the seed parameter files, from
//! the public GitHub copy) and the peers' reference code (drjdaly/tuplemerge) into
//! `target/classbench/src`; build them with make; generate each rule set (`db_generator -bc
//! SEED N 2 -0.5 0.1`) and a trace of about 1,000,000 headers (`trace_generator 1 0.1
//! 1000000/N`); then for several rounds, alternating the order, run Weir
//! (`weir-policy`'s `classbench` example) and the peers (`main f=RULES p=TRACE c=...`) on the
//! same files, reading the machine's load before each run.
//!
//! Instructions per lookup (unless `--no-instructions`; needs valgrind): over the first
//! `--ir-headers` headers of each trace (default 200,000, written to
//! `target/classbench/data/<set>_trace_first<N>`), each classifier runs under `valgrind
//! --tool=callgrind --toggle-collect=<its top-level classify function>`, so only the
//! instructions inside that function and everything it calls are collected: not the parsing of
//! the files, not the build, not the loop around the calls. Weir runs its example with `calls`
//! (compile, then one `CompiledPolicy::lookup` per header, nothing else) and toggles on
//! `weir_policy::compiled::lookup::<impl weir_policy::compiled::CompiledPolicy>::lookup`; the
//! peers' `main` classifies each header once (`trials = 1` in `Simulation.cpp`) and toggles on
//! `TupleMergeOnline::ClassifyAPacket(...)` (TupleMerge-Offline inherits it),
//! `PartitionSort::ClassifyAPacket(...)` or `PriorityTupleSpaceSearch::ClassifyAPacket(...)`.
//! The names are exact, without wildcards: callgrind toggles on entry *and* exit, so a nested
//! function that also matched would switch collection off inside the call (`…::lookup*` would
//! match `lookup_work` too). The figure is the collected Ir (the out file's `totals:` line,
//! `target/classbench/data/callgrind.<set>.<classifier>`) over the calls into the function that
//! the same file records, which must equal the headers; on any failure the cell is "—" and the
//! reason is printed, never a partial figure. Under valgrind the peers' builds are slow: at 100k
//! rules a peer's run takes 70–100 s (TupleMerge the longest; 2 shared vCPUs), about 5 minutes per
//! set for the instruction step (1–2 minutes per 10k set); the runs go one after another. The
//! program gets a 1 GB main stack (`--main-stacksize`; valgrind's default is the smaller of
//! `ulimit -s` and 16 MB), a precaution: PartitionSort's run on acl1 100k once aborted under
//! callgrind (not reproduced since).
//!
//! Nothing fetched is stored in the repository; everything lives under `target/classbench`.

use crate::{repo_root, step};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const CLASSBENCH_GIT: &str = "https://github.com/jafingerhut/classbench";
const PEERS_GIT: &str = "https://github.com/drjdaly/tuplemerge";
const PEERS: [&str; 3] = ["TMOffline", "PartitionSort", "PriorityTuple"];

/// Options of `cargo xtask classbench`.
pub struct Options {
    pub seeds: Vec<String>,
    pub sizes: Vec<usize>,
    pub rounds: usize,
    pub instructions: bool,
    /// Headers (from the start of each trace) the instruction counts run over.
    pub ir_headers: usize,
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn clone(url: &str, dir: &Path) -> Result<()> {
    if dir.join(".git").exists() {
        return Ok(());
    }
    step(&format!("git clone {url}"));
    run(Command::new("git").args(["clone", "--depth", "1", url]).arg(dir))?;
    Ok(())
}

/// One classifier's figures on one set.
#[derive(Default, Clone)]
struct Figures {
    ns: Vec<f64>,
    build_ms: Vec<f64>,
    bytes: f64,
    tables: f64,
    instructions: Option<f64>,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

fn weir_once(bin: &Path, rules: &Path, trace: &Path, rounds: usize) -> Result<(f64, f64, f64, f64)> {
    let out = run(Command::new(bin).arg(rules).arg(trace).arg(rounds.to_string()))?;
    let line = out.lines().find(|l| l.starts_with("weir ")).context("no result line from the classbench example")?;
    let num = |k: &str| field(line, k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    Ok((num("ns_median"), num("build_ms"), num("bytes"), num("tables_probed")))
}

/// Runs the peers' `main` on one classifier; returns (ns per packet, build ms, bytes, tables probed).
fn peer_once(main: &Path, classifier: &str, rules: &Path, trace: &Path, out_csv: &Path) -> Result<(f64, f64, f64, f64)> {
    run(Command::new(main)
        .arg(format!("f={}", rules.display()))
        .arg(format!("p={}", trace.display()))
        .arg(format!("c={classifier}"))
        .arg(format!("o={}", out_csv.display())))?;
    let csv = std::fs::read_to_string(out_csv)?;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let row: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let get = |name: &str| {
        header.iter().position(|h| h.trim() == name).and_then(|i| row.get(i)).and_then(|v| v.trim().parse::<f64>().ok())
    };
    let packets = std::fs::read_to_string(trace)?.lines().count().max(1) as f64;
    Ok((
        get("ClassificationTime(s)").map_or(f64::NAN, |s| s * 1e9 / packets),
        get("ConstructionTime(ms)").unwrap_or(f64::NAN),
        get("Size(bytes)").unwrap_or(f64::NAN),
        get("AvgQueries").unwrap_or(f64::NAN),
    ))
}

/// Weir's lookup as callgrind names it (demangled). Exact, no wildcard: `…::lookup*` would also
/// match `lookup_work`.
const WEIR_LOOKUP: &str = "weir_policy::compiled::lookup::<impl weir_policy::compiled::CompiledPolicy>::lookup";

/// The peer's top-level classify function (the one `Simulator::PerformOnlyPacketClassification`
/// calls once per header), as callgrind names it. TupleMerge-Offline derives from
/// TupleMerge-Online and inherits its `ClassifyAPacket`; none of these calls itself.
fn peer_classify(classifier: &str) -> Option<String> {
    let class = match classifier {
        "TMOffline" => "TupleMergeOnline",
        "PartitionSort" => "PartitionSort",
        "PriorityTuple" => "PriorityTupleSpaceSearch",
        _ => return None,
    };
    Some(format!("{class}::ClassifyAPacket(std::vector<unsigned int, std::allocator<unsigned int> > const&)"))
}

/// Writes the first `n` headers of `trace` to `out` (up to the first empty line, where the peers'
/// reader stops); returns how many were written. Every header must have five numeric fields, so
/// Weir's example and the peers' reader both classify each of them once.
fn trace_prefix(trace: &Path, n: usize, out: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(trace)?;
    let lines: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).take(n).collect();
    if let Some(bad) = lines.iter().find(|l| l.split_whitespace().take(5).filter(|f| f.parse::<u32>().is_ok()).count() < 5) {
        bail!("{}: header without five numeric fields: {bad:?}", trace.display());
    }
    std::fs::write(out, lines.join("\n") + "\n")?;
    Ok(lines.len())
}

/// What a callgrind out file says: the total instructions collected and the calls into `function`.
#[derive(Debug, PartialEq)]
struct CallgrindCount {
    ir: u64,
    calls: u64,
}

/// Reads a callgrind out file: the Ir total (the `totals:` line, else `summary:`; Ir's position
/// from `events:`), and the calls into the function named exactly `function` (the `calls=` line
/// after each `cfn=` naming it; names may be compressed to `(id)` after their first use, and `fn=`
/// and `cfn=` share the ids).
fn parse_callgrind(text: &str, function: &str) -> Result<CallgrindCount> {
    let mut names: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let mut ir_index = 0;
    let (mut totals, mut summary) = (None, None);
    let mut calls = 0u64;
    let mut callee_is_target = false;
    for line in text.lines() {
        if let Some(ev) = line.strip_prefix("events:") {
            ir_index = ev.split_whitespace().position(|e| e == "Ir").context("callgrind collected no Ir")?;
        } else if let Some(v) = line.strip_prefix("totals:") {
            totals = v.split_whitespace().nth(ir_index).map(str::to_owned);
        } else if let Some(v) = line.strip_prefix("summary:") {
            summary = v.split_whitespace().nth(ir_index).map(str::to_owned);
        } else if let Some(v) = line.strip_prefix("fn=").or_else(|| line.strip_prefix("cfn=")) {
            let name = match v.strip_prefix('(').and_then(|r| r.split_once(')')) {
                Some((id, rest)) if rest.trim().is_empty() => names.get(id).copied().unwrap_or(""),
                Some((id, rest)) => {
                    let rest = rest.strip_prefix(' ').unwrap_or(rest);
                    names.insert(id, rest);
                    rest
                }
                None => v,
            };
            callee_is_target = line.starts_with("cfn=") && name == function;
        } else if let Some(v) = line.strip_prefix("calls=") {
            if std::mem::take(&mut callee_is_target) {
                calls += v.split_whitespace().next().context("calls= without a count")?.parse::<u64>()?;
            }
        }
    }
    let ir = totals.or(summary).context("no totals: or summary: line in the callgrind out file")?;
    Ok(CallgrindCount { ir: ir.parse().with_context(|| format!("Ir total {ir:?}"))?, calls })
}

/// Main stack for the program under valgrind (valgrind's default is the smaller of `ulimit -s`
/// and 16 MB); PartitionSort's build recurses deeply on large sets.
const VALGRIND_STACK: &str = "--main-stacksize=1073741824";

/// Instructions per call of `function`: `inner` under `valgrind --tool=callgrind
/// --toggle-collect=function` (collection on only inside `function` and what it calls), the
/// collected Ir over the calls into `function`, which must equal `expected_calls`.
fn callgrind_per_call(inner: &Command, function: &str, out: &Path, expected_calls: usize) -> Result<f64> {
    let _ = std::fs::remove_file(out);
    let mut c = Command::new("valgrind");
    c.args(["--tool=callgrind", "--collect-atstart=no", VALGRIND_STACK])
        .arg(format!("--toggle-collect={function}"))
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(inner.get_program())
        .args(inner.get_args());
    let program = Path::new(inner.get_program()).file_name().unwrap_or_default().to_string_lossy();
    println!("  valgrind --tool=callgrind --toggle-collect='{function}' {program} ...");
    let t = std::time::Instant::now();
    let res = c.output().context("running valgrind")?;
    if !res.status.success() {
        let err = String::from_utf8_lossy(&res.stderr);
        let tail: Vec<&str> = err.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        bail!("valgrind exited with {} after {:.0} s:\n{}", res.status, t.elapsed().as_secs_f64(), tail.join("\n"));
    }
    let count = parse_callgrind(&std::fs::read_to_string(out).context("reading the callgrind out file")?, function)?;
    if count.calls != expected_calls as u64 {
        bail!("{} calls into {function}, expected one per header ({expected_calls})", count.calls);
    }
    let per_call = count.ir as f64 / count.calls as f64;
    println!("  {per_call:.0} Ir per call: {} Ir in {} calls ({:.0} s under valgrind)", count.ir, count.calls, t.elapsed().as_secs_f64());
    Ok(per_call)
}

/// The instructions cell: the figure, or `None` with the reason printed (never a wrong number).
fn instructions_or_dash(what: &str, r: Result<f64>) -> Option<f64> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            println!("  {what}: no instruction count ({e:#})");
            None
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn classbench(opt: &Options) -> Result<()> {
    let root = repo_root();
    let base = root.join("target/classbench");
    let src = base.join("src");
    std::fs::create_dir_all(&src)?;
    let cb = src.join("classbench");
    let peers = src.join("tuplemerge");
    clone(CLASSBENCH_GIT, &cb)?;
    clone(PEERS_GIT, &peers)?;
    step("building db_generator, trace_generator and the peers (make)");
    run(Command::new("make").arg("-C").arg(cb.join("db_generator")).arg("all"))?;
    run(Command::new("make").arg("-C").arg(cb.join("trace_generator")))?;
    run(Command::new("make").arg("-C").arg(&peers).arg("main"))?;
    step("building Weir's classbench runner (release)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "-p", "weir-policy", "--example", "classbench"]))?;
    let weir = root.join("target/release/examples/classbench");
    let data = base.join("data");
    std::fs::create_dir_all(&data)?;

    let mut table: BTreeMap<(String, usize), BTreeMap<String, Figures>> = BTreeMap::new();
    let mut loads = Vec::new();
    for seed in &opt.seeds {
        for &n in &opt.sizes {
            let name = format!("{seed}_{n}");
            let rules = data.join(&name);
            let trace = data.join(format!("{name}_trace"));
            if !rules.exists() {
                step(&format!("db_generator {seed} {n}"));
                run(Command::new(cb.join("db_generator/db_generator"))
                    .current_dir(&data)
                    .arg("-bc")
                    .arg(cb.join("parameter_files").join(format!("{seed}_seed")))
                    .args([n.to_string(), "2".into(), "-0.5".into(), "0.1".into(), name.clone()]))?;
            }
            if !trace.exists() {
                step(&format!("trace_generator {name}"));
                let scale = (1_000_000 / n).max(1);
                run(Command::new(cb.join("trace_generator/trace_generator"))
                    .current_dir(&data)
                    .args(["1", "0.1", &scale.to_string(), &name]))?;
            }
            let figs = table.entry((seed.clone(), n)).or_default();
            for round in 0..opt.rounds {
                loads.push(load());
                let weir_first = round % 2 == 0;
                let mut order: Vec<&str> = PEERS.to_vec();
                if weir_first {
                    order.insert(0, "Weir");
                } else {
                    order.push("Weir");
                }
                for who in order {
                    let (ns, build, bytes, tables) = if who == "Weir" {
                        weir_once(&weir, &rules, &trace, 1)?
                    } else {
                        peer_once(&peers.join("main"), who, &rules, &trace, &data.join("peer.csv"))?
                    };
                    let f = figs.entry(who.to_string()).or_default();
                    f.ns.push(ns);
                    f.build_ms.push(build);
                    f.bytes = bytes;
                    f.tables = tables;
                    println!("{name} round {round} {who}: {ns:.1} ns/lookup, build {build:.1} ms, load {}", load());
                }
            }
            if opt.instructions {
                let prefix = data.join(format!("{name}_trace_first{}", opt.ir_headers));
                let headers = trace_prefix(&trace, opt.ir_headers, &prefix)?;
                step(&format!("{name}: callgrind of one classify call per header, first {headers} headers"));
                let mut weir_cmd = Command::new(&weir);
                weir_cmd.arg(&rules).arg(&prefix).arg("calls");
                let out = data.join(format!("callgrind.{name}.Weir"));
                let ir = instructions_or_dash("Weir", callgrind_per_call(&weir_cmd, WEIR_LOOKUP, &out, headers));
                if let Some(f) = figs.get_mut("Weir") {
                    f.instructions = ir;
                }
                for p in PEERS {
                    let Some(function) = peer_classify(p) else { continue };
                    let mut cmd = Command::new(peers.join("main"));
                    cmd.arg(format!("f={}", rules.display())).arg(format!("p={}", prefix.display())).arg(format!("c={p}"));
                    let out = data.join(format!("callgrind.{name}.{p}"));
                    let ir = instructions_or_dash(p, callgrind_per_call(&cmd, &function, &out, headers));
                    if let Some(f) = figs.get_mut(p) {
                        f.instructions = ir;
                    }
                }
            }
        }
    }

    println!("\n| set | classifier | median ns | min ns | instructions | tables probed | build ms | bytes/rule |");
    println!("|---|---|---|---|---|---|---|---|");
    for ((seed, n), figs) in &table {
        for (who, f) in figs {
            println!(
                "| {seed} {n} | {who} | {:.0} | {:.0} | {} | {:.2} | {:.1} | {:.0} |",
                median(&f.ns),
                min(&f.ns),
                f.instructions.map_or("—".into(), |i| format!("{i:.0}")),
                f.tables,
                median(&f.build_ms),
                f.bytes / *n as f64
            );
        }
    }
    println!("\nload average (1, 5, 15 min) before each round: {}", loads.join("; "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOKUP: &str = "weir_policy::compiled::lookup::<impl weir_policy::compiled::CompiledPolicy>::lookup";

    /// Shaped like a `--toggle-collect` run of the `classbench` example (`calls` mode), cut down:
    /// the callee named in full the first time, by id after; `lookup_work` must not count.
    const OUT: &str = "\
# callgrind format
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 534857

ob=(3) /usr/lib/x86_64-linux-gnu/libc.so.6
fl=(141) ./csu/../csu/libc-start.c
fn=(780) __libc_start_main@@GLIBC_2.34
cfn=(806) (below main)
calls=1 29 
360 534857

fl=(217) examples/classbench.rs
fn=(1054) classbench::main
cfi=(284) src/compiled/lookup.rs
cfn=(1568) weir_policy::compiled::lookup::<impl weir_policy::compiled::CompiledPolicy>::lookup
calls=1 61 
138 209
cfi=(284)
cfn=(1568)
calls=1999 61 
138 534648
cfn=(1569) weir_policy::compiled::lookup::<impl weir_policy::compiled::CompiledPolicy>::lookup_work
calls=7 102 
140 0

fl=(284)
fn=(1568)
61 14000
+1 8000

totals: 534857
";

    #[test]
    fn callgrind_total_and_calls() {
        assert_eq!(parse_callgrind(OUT, LOOKUP).unwrap(), CallgrindCount { ir: 534_857, calls: 2000 });
    }

    #[test]
    fn callgrind_totals_preferred_and_ir_column() {
        let text = "events: Dr Ir\nsummary: 5 99\ntotals: 7 100\nfn=(1) f\ncfn=(2) g\ncalls=4 1\n1 3 50\n";
        assert_eq!(parse_callgrind(text, "g").unwrap(), CallgrindCount { ir: 100, calls: 4 });
        // Uncompressed names, and a summary only.
        let text = "events: Ir\nsummary: 42\nfn=f\ncfn=g\ncalls=3 1\n1 42\ncfn=h\ncalls=5 1\n";
        assert_eq!(parse_callgrind(text, "g").unwrap(), CallgrindCount { ir: 42, calls: 3 });
    }

    #[test]
    fn callgrind_without_total_is_an_error() {
        assert!(parse_callgrind("events: Ir\nfn=(1) f\n", "f").is_err());
        assert!(parse_callgrind("events: Dr\ntotals: 1\n", "f").is_err());
    }

    #[test]
    fn peer_functions() {
        assert_eq!(
            peer_classify("TMOffline").as_deref(),
            Some("TupleMergeOnline::ClassifyAPacket(std::vector<unsigned int, std::allocator<unsigned int> > const&)")
        );
        assert!(PEERS.iter().all(|p| peer_classify(p).is_some()));
    }
}
