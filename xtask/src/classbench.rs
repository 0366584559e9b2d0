//! `cargo xtask classbench`: Weir's compiled lookup beside TupleMerge-Offline, PartitionSort and
//! PriorityTuple on ClassBench rule sets, from public sources, in one command.
//!
//! Steps: clone ClassBench (db_generator, trace_generator and the seed parameter files, from
//! the public GitHub copy) and the peers' reference code (drjdaly/tuplemerge) into
//! `target/classbench/src`; build them with make; generate each rule set (`db_generator -bc
//! SEED N 2 -0.5 0.1`) and a trace of about 1,000,000 headers (`trace_generator 1 0.1
//! 1000000/N`); then for several rounds, alternating the order, run Weir
//! (`weir-policy`'s `classbench` example) and the peers (`main f=RULES p=TRACE c=...`) on the
//! same files, reading the machine's load before each run. With valgrind installed, the
//! instructions per lookup are measured too (cachegrind, a full trace minus a 1% trace).
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

fn cachegrind_ir(mut inner: Command) -> Result<f64> {
    let mut c = Command::new("valgrind");
    c.args(["--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]);
    c.arg(inner.get_program()).args(inner.get_args());
    let out = c.output().or_else(|_| inner.output())?;
    let err = String::from_utf8_lossy(&out.stderr);
    let refs = err
        .lines()
        .find(|l| l.contains("I") && l.contains("refs:"))
        .and_then(|l| l.split("refs:").nth(1))
        .map(|v| v.trim().replace(',', ""))
        .context("no instruction count from cachegrind")?;
    Ok(refs.parse::<f64>()?)
}

/// Weir's instructions per lookup: the same run with 2 passes over the trace minus 0 passes.
fn weir_instructions(bin: &Path, rules: &Path, trace: &Path) -> Result<f64> {
    let packets = std::fs::read_to_string(trace)?.lines().count().max(1) as f64;
    let with = |rounds: &str| {
        let mut c = Command::new(bin);
        c.arg(rules).arg(trace).arg(rounds);
        cachegrind_ir(c)
    };
    Ok((with("2")? - with("0")?) / (2.0 * packets))
}

/// A peer's instructions per lookup: cachegrind of the full trace minus a 1% trace, over the
/// packet difference (this includes reading each header from the trace file, so it is an
/// upper bound of the lookup alone).
fn instructions(cmd_for: &dyn Fn(&Path) -> Command, trace: &Path, work: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(trace)?;
    let all: Vec<&str> = text.lines().collect();
    let small = work.join("trace-1pct");
    let k = (all.len() / 100).max(1);
    std::fs::write(&small, all.get(..k).unwrap_or(&[]).join("\n") + "\n")?;
    let (full, part) = (cachegrind_ir(cmd_for(trace))?, cachegrind_ir(cmd_for(&small))?);
    Ok((full - part) / (all.len() - k).max(1) as f64)
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
                let r = rules.clone();
                if let Some(f) = figs.get_mut("Weir") {
                    f.instructions = weir_instructions(&weir, &rules, &trace).ok();
                }
                for p in PEERS {
                    let m = peers.join("main");
                    let csv = data.join("peer-ir.csv");
                    if let Some(f) = figs.get_mut(p) {
                        f.instructions = instructions(
                            &|t| {
                                let mut c = Command::new(&m);
                                c.arg(format!("f={}", r.display()))
                                    .arg(format!("p={}", t.display()))
                                    .arg(format!("c={p}"))
                                    .arg(format!("o={}", csv.display()));
                                c
                            },
                            &trace,
                            &data,
                        )
                        .ok();
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
