//! Policies loaded with weirctl.exe, then connections injected on all four layers and decided
//! by the driver, compared one by one with weir-policy's reference evaluator, and the
//! driver's counters (`stats --rules`) compared with the same tally.

use super::host::{Channel, Host};
use super::Failures;
use crate::repo_root;
use anyhow::{Context, Result};
use serde_json::Value;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Instant;
use weir_client::text::{load_file, AppPaths, LoadOptions};
use weir_client::weir_policy::reference::evaluate;
use weir_client::weir_policy::{Action, Addr, AddrCond, AddrRange, Direction, Policy, PortCond, Query};

/// FWPS layer ids in the stats order (connect v4, connect v6, accept v4, accept v6).
const LAYERS: [(u16, bool, Direction); 4] =
    [(48, false, Direction::Outbound), (50, true, Direction::Outbound), (44, false, Direction::Inbound), (46, true, Direction::Inbound)];
const FWP_ACTION_BLOCK: u32 = 0x1001;
const FWP_ACTION_PERMIT: u32 = 0x1002;

/// One injected connection.
#[derive(Clone, Debug)]
pub struct Conn {
    pub layer: usize,
    pub local: IpAddr,
    pub local_port: u16,
    pub protocol: u8,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub loopback: bool,
    pub write_right: bool,
}

impl Conn {
    fn command(&self) -> String {
        let (id, _, _) = LAYERS.get(self.layer).copied().unwrap_or((0, false, Direction::Outbound));
        format!(
            "classify {id} {} {} {} {} {} {} {} 4242",
            self.local,
            self.local_port,
            self.protocol,
            self.remote,
            self.remote_port,
            u8::from(self.loopback),
            u8::from(self.write_right)
        )
    }

    fn query(&self) -> Query<'static> {
        let (_, _, direction) = LAYERS.get(self.layer).copied().unwrap_or((0, false, Direction::Outbound));
        Query {
            direction,
            remote: Addr::from(self.remote),
            local: Addr::from(self.local),
            protocol: self.protocol,
            remote_port: self.remote_port,
            local_port: self.local_port,
            app: None,
            loopback: self.loopback,
        }
    }
}

/// xorshift64*, the same generator as the stand-in's, so a seed names a run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<T: Copy>(&mut self, items: &[T], fallback: T) -> T {
        if items.is_empty() {
            return fallback;
        }
        let i = (self.next() % items.len() as u64) as usize;
        items.get(i).copied().unwrap_or(fallback)
    }
}

fn range_points(r: &AddrRange, v6: bool, out: &mut Vec<IpAddr>) {
    match (r, v6) {
        (AddrRange::V4 { lo, hi }, false) => {
            for a in [*lo, *hi, hi.saturating_add(1), lo.saturating_sub(1)] {
                out.push(IpAddr::V4(a.into()));
            }
        }
        (AddrRange::V6 { lo, hi }, true) => {
            for a in [*lo, *hi, hi.saturating_add(1), lo.saturating_sub(1)] {
                out.push(IpAddr::V6(a.into()));
            }
        }
        _ => {}
    }
}

fn cond_points(p: &Policy, c: &AddrCond, v6: bool, out: &mut Vec<IpAddr>) {
    match c {
        AddrCond::Ranges(rs) => rs.iter().for_each(|r| range_points(r, v6, out)),
        AddrCond::Set(i) => {
            if let Some(s) = p.sets.get(*i as usize) {
                // The first, last and a middle entry of a set: enough edges, bounded cost.
                let n = s.entries.len();
                for r in [s.entries.first(), s.entries.get(n / 2), s.entries.last()].into_iter().flatten() {
                    range_points(r, v6, out);
                }
            }
        }
    }
}

fn port_points(c: &PortCond, out: &mut Vec<u16>) {
    for (lo, hi) in &c.ranges {
        out.extend([*lo, *hi, hi.saturating_add(1), lo.saturating_sub(1)]);
    }
}

/// `per_layer` connections per layer whose fields are drawn from the edges of the policy's
/// conditions (and a few ordinary values), reproducible from `seed`.
pub fn connections(p: &Policy, per_layer: usize, seed: u64) -> Vec<Conn> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for (layer, (_, v6, _)) in LAYERS.iter().enumerate() {
        let mut remotes: Vec<IpAddr> =
            if *v6 { vec!["2001:db8::1".parse().unwrap_or(IpAddr::from([0u8; 16]))] } else { vec![IpAddr::from([93, 184, 216, 34])] };
        let mut locals: Vec<IpAddr> = if *v6 {
            vec![IpAddr::from([0xfe80, 0, 0, 0, 0, 0, 0, 2u16]), IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1u16])]
        } else {
            vec![IpAddr::from([10, 0, 0, 2]), IpAddr::from([127, 0, 0, 1])]
        };
        let mut ports = vec![22u16, 53, 80, 443, 3389, 8443, 50000];
        let mut protocols = vec![6u8, 17, if *v6 { 58 } else { 1 }];
        for r in &p.rules {
            if let Some(c) = &r.remote_addr {
                cond_points(p, c, *v6, &mut remotes);
            }
            if let Some(c) = &r.local_addr {
                cond_points(p, c, *v6, &mut locals);
            }
            for c in [&r.remote_port, &r.local_port].into_iter().flatten() {
                port_points(c, &mut ports);
            }
            if let Some(x) = r.protocol {
                protocols.push(x);
            }
        }
        for _ in 0..per_layer {
            let x = rng.next();
            out.push(Conn {
                layer,
                local: rng.pick(&locals, IpAddr::from([10, 0, 0, 2])),
                local_port: rng.pick(&ports, 50000),
                protocol: rng.pick(&protocols, 6),
                remote: rng.pick(&remotes, IpAddr::from([93, 184, 216, 34])),
                remote_port: rng.pick(&ports, 443),
                loopback: x & 0x7 == 0,
                write_right: x & 0xF0 != 0,
            });
        }
    }
    out
}

/// Per-layer counters of `stats --json`: (new, permitted, blocked, write right absent).
fn layer_counters(j: &Value) -> Vec<[i64; 4]> {
    let layers = j["layers"].as_array().cloned().unwrap_or_default();
    layers
        .iter()
        .map(|l| {
            let n = |k: &str| l[k].as_i64().unwrap_or(-1);
            [n("new_connections"), n("permitted"), n("blocked"), n("write_right_absent")]
        })
        .collect()
}

fn stats(host: &mut Host) -> Result<Value> {
    let r = host.weirctl(&["--json", "stats", "--rules"])?;
    serde_json::from_str(r.stdout.trim()).with_context(|| format!("stats --json: {} {}", r.stdout, r.stderr))
}

/// Injects `conns` and checks every decision and the counters against the reference.
pub fn decide_and_count(host: &mut Host, ch: &mut Channel, f: &mut Failures, p: &Policy, conns: &[Conn], what: &str) -> Result<()> {
    let before = stats(host)?;
    let mut expected = [[0i64; 4]; 4];
    let mut hits = vec![0i64; p.rules.len()];
    let mut wrong = 0usize;
    let mut report = String::new();
    for c in conns {
        let reply = ch.cmd(&c.command())?;
        let action = reply.split_whitespace().nth(1).and_then(|a| u32::from_str_radix(a.trim_start_matches("0x"), 16).ok());
        let row = expected.get_mut(c.layer).context("layer")?;
        row[0] += 1;
        if !c.write_right {
            // Another provider holds the write right: Weir counts it and leaves the action.
            row[3] += 1;
            if action != Some(FWP_ACTION_BLOCK) {
                wrong += 1;
                let _ = writeln!(report, "  {c:?}: action changed without the write right: {reply}");
            }
            continue;
        }
        let v = evaluate(p, &c.query());
        let want = if v.action == Action::Permit { FWP_ACTION_PERMIT } else { FWP_ACTION_BLOCK };
        row[if v.action == Action::Permit { 1 } else { 2 }] += 1;
        if let Some(h) = v.rule_index.and_then(|i| hits.get_mut(i as usize)) {
            *h += 1;
        }
        if action != Some(want) {
            wrong += 1;
            if wrong <= 10 {
                let _ = writeln!(report, "  {c:?}: reference {:?} (rule {:?}), driver {reply}", v.action, v.rule_id);
            }
        }
    }
    f.check(wrong == 0, || format!("{what}: {wrong} of {} decisions differ from the reference evaluator:\n{report}", conns.len()));
    let after = stats(host)?;
    let (b, a) = (layer_counters(&before), layer_counters(&after));
    let delta: Vec<[i64; 4]> =
        b.iter().zip(&a).map(|(b, a)| [a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3]]).collect();
    f.check(delta == expected.to_vec(), || format!("{what}: per-layer counters moved by {delta:?}, expected {expected:?}"));
    for (i, d) in delta.iter().enumerate() {
        f.check(d[0] == d[1] + d[2] + d[3], || format!("{what}: layer {i}: new != permitted + blocked + write-right-absent: {d:?}"));
    }
    // Rule hits count from the load of this policy.
    let got: Vec<i64> = after["rules"].as_array().map(|rs| rs.iter().map(|r| r["hits"].as_i64().unwrap_or(-1)).collect()).unwrap_or_default();
    f.check(got == hits, || format!("{what}: stats --rules hits {got:?}, reference {hits:?}"));
    Ok(())
}

fn load(host: &mut Host, f: &mut Failures, file: &str, what: &str) -> Result<bool> {
    let t = Instant::now();
    let r = host.weirctl(&["policy", "load", file])?;
    println!("  {what}: policy load {:.2} s", t.elapsed().as_secs_f64());
    f.check(r.code == 0, || format!("{what}: policy load: {} {}{}", r.code, r.stdout, r.stderr));
    Ok(r.code == 0)
}

fn parse(path: &std::path::Path) -> Result<Policy> {
    let loaded = load_file(path, &LoadOptions { app_paths: AppPaths::Keep }).map_err(|d| anyhow::anyhow!("{d:?}"))?;
    Ok(loaded.policy)
}

/// Every example: load, show, matrix, stats, clear.
pub fn examples(host: &mut Host, ch: &mut Channel, f: &mut Failures) -> Result<()> {
    let dir = repo_root().join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    for name in &names {
        host.install(&dir.join(name), &format!("C:\\weir\\examples\\{name}"))?;
    }
    for (i, name) in names.iter().filter(|n| n.ends_with(".toml")).enumerate() {
        let file = format!("C:\\weir\\examples\\{name}");
        if !load(host, f, &file, name)? {
            continue;
        }
        let policy = parse(&dir.join(name))?;
        let r = host.weirctl(&["policy", "show"])?;
        let ids_shown = policy.rules.iter().all(|rule| r.stdout.contains(&format!("id = {}", rule.id)));
        f.check(r.code == 0 && ids_shown, || format!("{name}: policy show lacks rules: {}{}", r.stdout, r.stderr));
        let conns = connections(&policy, 48, 0x5EED_0000 + i as u64);
        decide_and_count(host, ch, f, &policy, &conns, name)?;
        let r = host.weirctl(&["policy", "clear"])?;
        f.check(r.code == 0, || format!("{name}: policy clear: {} {}", r.code, r.stderr));
        let r = host.weirctl(&["policy", "show"])?;
        f.check(r.code == 0 && !r.stdout.contains("[[rule]]"), || format!("{name}: policy show after clear: {}", r.stdout));
    }
    // Monitor mode: everything permitted.
    let conns = connections(&Policy::permit_all(), 8, 0x5EED_FFFF);
    decide_and_count(host, ch, f, &Policy::permit_all(), &conns, "no policy (monitor mode)")
}

/// A policy of 10,000 rules plus a 1,000,000-entry set: load, show, decide.
pub fn large_policy(host: &mut Host, ch: &mut Channel, f: &mut Failures) -> Result<()> {
    let dir = repo_root().join("target").join("wine-kernel").join("large");
    std::fs::create_dir_all(&dir)?;
    let mut set = String::with_capacity(16 << 20);
    for i in 0..1_000_000u32 {
        // Every fourth address from 11.0.0.0 upwards.
        let _ = writeln!(set, "{}", std::net::Ipv4Addr::from(0x0B00_0000 + i * 4));
    }
    std::fs::write(dir.join("large.txt"), set)?;
    let mut toml = String::from("[defaults]\noutbound = \"permit\"\ninbound = \"permit\"\n\n[sets]\nbig = \"@large.txt\"\n\n");
    for id in 1..10_000u32 {
        let _ = writeln!(
            toml,
            "[[rule]]\nid = {id}\naction = \"{}\"\nprotocol = \"tcp\"\nremote_port = {}\n",
            if id % 2 == 0 { "block" } else { "permit" },
            1000 + id
        );
    }
    toml.push_str("[[rule]]\nid = 10000\naction = \"block\"\nremote = \"@big\"\n");
    std::fs::write(dir.join("large.toml"), toml)?;
    host.install(&dir.join("large.txt"), "C:\\weir\\large\\large.txt")?;
    host.install(&dir.join("large.toml"), "C:\\weir\\large\\large.toml")?;
    if !load(host, f, "C:\\weir\\large\\large.toml", "10,000 rules + 1,000,000-entry set")? {
        return Ok(());
    }
    let policy = parse(&dir.join("large.toml"))?;
    let t = Instant::now();
    let r = host.weirctl(&["policy", "show"])?;
    println!("  policy show {:.2} s ({} bytes)", t.elapsed().as_secs_f64(), r.stdout.len());
    f.check(r.code == 0 && r.stdout.contains("id = 10000"), || format!("large policy show: {} {}", r.code, r.stderr));
    let mut conns = connections(&policy, 12, 0x1A26E);
    // Addresses inside and just outside the set, ports of both kinds of rule.
    for (k, addr) in [0x0B00_0000u32, 0x0B00_0001, 0x0B3D_08FC, 0x0B3D_0900, 0x0B12_3454].iter().enumerate() {
        conns.push(Conn {
            layer: k % 4 / 2 * 2,
            local: IpAddr::from([10, 0, 0, 2]),
            local_port: 50000,
            protocol: if k % 2 == 0 { 6 } else { 17 },
            remote: IpAddr::V4((*addr).into()),
            remote_port: 1000 + k as u16,
            loopback: false,
            write_right: true,
        });
    }
    decide_and_count(host, ch, f, &policy, &conns, "large policy")?;
    let r = host.weirctl(&["policy", "clear"])?;
    f.check(r.code == 0, || format!("large policy clear: {} {}", r.code, r.stderr));
    Ok(())
}
