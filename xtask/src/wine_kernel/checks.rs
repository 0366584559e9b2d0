//! The checks of the Wine kernel stage, in the order they run.

use super::host::{Channel, Host, DRIVER_PATH};
use super::{matrix, stress, Failures};
use crate::repo_root;
use anyhow::{Context, Result};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Statuses the fault injection answers with (the first column of the emulation model's
/// FAILURE_MODES for the same routine).
const FAULTS: &[(&str, u32)] = &[
    ("IoCreateDevice", 0xC000_009A),
    ("IoCreateSymbolicLink", 0xC000_0035),
    ("RtlCreateSecurityDescriptor", 0xC000_0058),
    ("RtlCreateAcl", 0xC000_000D),
    ("RtlAddAccessAllowedAce", 0xC000_0099),
    ("RtlSetDaclSecurityDescriptor", 0xC000_0079),
    ("ObOpenObjectByPointer", 0xC000_009A),
    ("ZwSetSecurityObject", 0xC000_009A),
    ("ExAllocatePool2", 0),
    ("FwpsCalloutRegister3", 0xC022_0009),
    ("FwpmBfeStateSubscribeChanges0", 0xC000_009A),
    ("FwpmEngineOpen0", 0xC022_0012),
    ("FwpmTransactionBegin0", 0xC022_000E),
    ("FwpmSubLayerAdd0", 0xC022_0009),
    ("FwpmCalloutAdd0", 0xC022_0018),
    ("FwpmFilterAdd0", 0xC022_0035),
    ("FwpmTransactionCommit0", 0xC022_000F),
];

/// The fail-closed set's calls (src/failsafe.rs): a failure there is traced and the start goes
/// on (the emulation model's STORE_FAILURE_MODES, first column). Each call a clean start makes
/// fails once; the start must succeed with Weir's usual objects in the engine.
const NONFATAL_FAULTS: &[(&str, u32)] = &[
    ("FwpmProviderAdd0", 0xC022_0009),
    ("FwpmProviderDeleteByKey0", 0xC022_0012),
    ("FwpmFilterDeleteByKey0", 0xC022_000A),
    ("FwpmSubLayerDeleteByKey0", 0xC022_000A),
];

pub fn run_all(host: &mut Host, f: &mut Failures) -> Result<()> {
    step(host, "the stand-in's engine follows tests/wine/wfp_rules.toml (fwpk-rules.exe)");
    rules_table(host, f)?;
    step(host, "sc create + sc start: DriverEntry to the committed transaction");
    create_service(host)?;
    let mut ch = host.start()?;
    engine_after_start(&mut ch, f, "after sc start")?;
    step(host, "weirctl status (text and --json)");
    status(host, f)?;
    step(host, "policy load/show/clear with every example; injected matrix vs the reference evaluator; stats --rules");
    matrix::examples(host, &mut ch, f)?;
    step(host, "events, and two events --follow readers both getting a connection (parked reads completed from the DPC, then Ctrl-C)");
    events(host, &mut ch, f)?;
    step(host, "BFE stop and start");
    bfe(host, &mut ch, f)?;
    step(host, "10,000 rules plus a 1,000,000-entry set");
    matrix::large_policy(host, &mut ch, f)?;
    step(host, "concurrency: classify threads vs policy swaps, event reads and BFE restarts");
    stress::run(host, &mut ch, f)?;
    drop(ch);
    step(host, "sc stop / sc start cycles");
    cycles(host, f)?;
    step(host, "FailMode = 1 with FailClosedAllow written by weirctl (Wine's registry): the extra permits, a refused value");
    fail_closed_allow(host, f)?;
    step(host, "one start per failing call of DriverEntry");
    faults(host, f)?;
    step(host, "errors for a stopped and an absent driver");
    errors(host, f)?;
    Ok(())
}

/// The stand-in's engine, built as an exe, runs one scenario per rule of the table (the same
/// scenarios `tests/wine/test_rules_table.py` runs on the Python model) and must answer the
/// table's status for each.
fn rules_table(host: &mut Host, f: &mut Failures) -> Result<()> {
    let expected = super::stand_in::expected_statuses(&super::stand_in::table()?)?;
    let r = host.run(&["C:\\weir\\fwpk-rules.exe"])?;
    let got: Vec<(String, u32)> = r
        .stdout
        .lines()
        .filter_map(|l| {
            let (id, st) = l.trim().split_once(' ')?;
            Some((id.to_string(), u32::from_str_radix(st.trim_start_matches("0x"), 16).ok()?))
        })
        .collect();
    f.check(r.code == 0 && got == expected, || format!("stand-in rules self-test: expected {expected:?}, got {}", r.stdout));
    Ok(())
}

/// `sc create`, repeated until `sc query` sees the service: the prefix's first services.exe
/// (wineboot's) may still be going away when the stage's keeper has started the next one.
fn create_service(host: &mut Host) -> Result<()> {
    for _ in 0..20 {
        if host.run(&["sc", "query", "weir"])?.code == 0 {
            return Ok(());
        }
        host.run(&["sc", "create", "weir", "type=", "kernel", "start=", "demand", "binPath=", DRIVER_PATH])?;
        std::thread::sleep(Duration::from_millis(250));
    }
    anyhow::bail!("sc create weir: the service never appeared in sc query")
}

fn step(host: &mut Host, what: &str) {
    println!("-- {what}");
    host.note(what);
}

fn count(state: &Value, key: &str) -> usize {
    state.get(key).and_then(Value::as_array).map_or(0, Vec::len)
}

fn num(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(-1)
}

/// What DriverEntry leaves in the engine: one dynamic session, Weir's sublayer, a callout and
/// a callout filter (PERMIT_IF_CALLOUT_UNREGISTERED) per layer, four run-time callouts, one
/// BFE subscription, no open transaction.
pub fn engine_after_start(ch: &mut Channel, f: &mut Failures, when: &str) -> Result<()> {
    let s = ch.state()?;
    f.check(num(&s, "sessions") == 1 && num(&s, "transactions") == 0, || format!("{when}: sessions/transactions: {s}"));
    f.check(count(&s, "sublayers") == 1 && count(&s, "callouts") == 4 && count(&s, "filters") == 4, || {
        format!("{when}: expected 1 sublayer, 4 callouts, 4 filters: {s}")
    });
    let flags_ok = s
        .get("filters")
        .and_then(Value::as_array)
        .is_some_and(|fs| fs.iter().all(|x| num(x, "flags") & 0x10 != 0 && num(x, "action") == 0x5003));
    f.check(flags_ok, || format!("{when}: every filter is CALLOUT_TERMINATING with PERMIT_IF_CALLOUT_UNREGISTERED: {s}"));
    f.check(num(&s, "registered_callouts") == 4 && num(&s, "subscriptions") == 1, || {
        format!("{when}: 4 run-time callouts and 1 BFE subscription expected: {s}")
    });
    Ok(())
}

/// Nothing of Weir left in the engine, and every pool block it allocated freed (as the host
/// left it after a stop or a failed start).
fn engine_clean(s: &Value, f: &mut Failures, when: &str) {
    f.check(
        num(s, "sessions") == 0
            && count(s, "providers") + count(s, "sublayers") + count(s, "callouts") + count(s, "filters") == 0
            && num(s, "registered_callouts") == 0
            && num(s, "subscriptions") == 0,
        || format!("{when}: the engine still holds Weir's objects: {s}"),
    );
    f.check(num(s, "pool_live") == 0, || format!("{when}: {} pool block(s) never freed", num(s, "pool_live")));
    f.check(num(s, "etw_live") == 0, || format!("{when}: {} ETW provider(s) never unregistered", num(s, "etw_live")));
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or(Value::Null)
}

fn status(host: &mut Host, f: &mut Failures) -> Result<()> {
    let r = host.weirctl(&["status"])?;
    let version = env!("CARGO_PKG_VERSION");
    f.check(r.code == 0 && r.stdout.contains("filtering"), || format!("weirctl status: {} {}{}", r.code, r.stdout, r.stderr));
    let r = host.weirctl(&["--json", "status"])?;
    let j = json_of(&r.stdout);
    f.check(r.code == 0 && j["ok"] == true && j["filtering"] == true && j["stats_abi"] == 2, || {
        format!("weirctl --json status: {} {}", r.code, r.stdout)
    });
    let driver_version = j["driver_version"].as_str().unwrap_or_default().to_string();
    f.check(!driver_version.is_empty() && driver_version.split('.').count() == 4, || {
        format!("driver_version {driver_version:?} (xtask {version})")
    });
    Ok(())
}

/// Every connection at one layer, in monitor mode, reaches `events` (a new handle starts at
/// the ring's backlog, so the 24 are the last lines); two `events --follow` readers, each
/// with its own handle and cursor, both get a connection classified while their reads are
/// parked (completed from the DPC); Ctrl-C cancels each one's next read.
fn events(host: &mut Host, ch: &mut Channel, f: &mut Failures) -> Result<()> {
    host.weirctl(&["policy", "clear"])?;
    let n = 24u16;
    for i in 0..n {
        ch.cmd(&format!("classify 48 10.0.0.2 {} 6 192.0.2.{} 443 0 1 7777", 40000 + i, i + 1))?;
    }
    let r = host.weirctl(&["--json", "events"])?;
    let lines: Vec<Value> = r.stdout.lines().map(json_of).collect();
    let conns: Vec<&Value> = lines.iter().filter(|e| e["kind"] == "connection").collect();
    let ports: Vec<i64> = conns.iter().map(|e| num(e, "local_port")).collect();
    let expected: Vec<i64> = (0..n).map(|i| 40000 + i64::from(i)).collect();
    f.check(r.code == 0 && ports.ends_with(&expected), || format!("events: expected the last local ports {expected:?}, got {ports:?} ({})", r.stderr));
    let last = conns.len().saturating_sub(usize::from(n));
    let pid_ok = conns.iter().skip(last).all(|e| num(e, "process_id") == 7777 && e["decision"] == "permit" && e["schema"] == 1);
    f.check(pid_ok, || format!("events: schema 1, pid 7777 and permit expected: {}", r.stdout));

    let dpcs_before = num(&ch.state()?, "dpcs_run");
    let readers = [host.spawn_weirctl(&["--json", "events", "--follow"])?, host.spawn_weirctl(&["--json", "events", "--follow"])?];
    // Let both print the backlog and park (nothing more to report yet).
    std::thread::sleep(Duration::from_millis(2500));
    ch.cmd("classify 50 fe80::2 41000 17 2001:db8::7 53 0 1 8888")?;
    for (k, (child, out)) in readers.into_iter().enumerate() {
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut line = None;
        while line.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            line = std::fs::read_to_string(&out)
                .unwrap_or_default()
                .lines()
                .map(json_of)
                .find(|e| num(e, "local_port") == 41000);
        }
        let e = line.unwrap_or(Value::Null);
        f.check(e["remote_address"] == "2001:db8::7" && e["protocol"] == "udp", || {
            format!("events --follow reader {}: the parked read did not deliver the connection (got {e})", k + 1)
        });
        // Ctrl-C: Wine turns SIGINT into CTRL_C_EVENT; weirctl's handler cancels the parked read
        // (CancelIoEx), the driver's cancel routine completes it with STATUS_CANCELLED, and the
        // tool exits 0. A tool killed any other way would not exit 0.
        let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut exit = None;
        while exit.is_none() && Instant::now() < deadline {
            exit = child.try_wait()?;
            std::thread::sleep(Duration::from_millis(50));
        }
        if exit.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        f.check(exit.is_some_and(|e| e.success()), || format!("events --follow reader {} after Ctrl-C: {exit:?} (expected a clean exit 0)", k + 1));
    }
    let dpcs_after = num(&ch.state()?, "dpcs_run");
    f.check(dpcs_after > dpcs_before, || format!("events --follow: no DPC ran ({dpcs_before} -> {dpcs_after})"));
    let r = host.weirctl(&["--json", "status"])?;
    f.check(r.code == 0, || format!("status after cancelling parked reads: {} {}", r.code, r.stderr));
    Ok(())
}

/// BFE stop takes Weir's objects; the driver's callback notices, and BFE start brings them back.
fn bfe(host: &mut Host, ch: &mut Channel, f: &mut Failures) -> Result<()> {
    ch.cmd("bfe 0")?;
    let s = ch.state()?;
    f.check(count(&s, "filters") == 0, || format!("BFE stopped: filters remain: {s}"));
    let r = host.weirctl(&["--json", "status"])?;
    let j = json_of(&r.stdout);
    f.check(r.code == 0 && j["filtering"] == false, || format!("status with BFE stopped: filtering should be false: {}", r.stdout));
    let v = ch.cmd("classify 48 10.0.0.2 40000 6 192.0.2.1 443 0 1 1")?;
    f.check(v.contains("callout 0"), || format!("BFE stopped: classify still reached a callout: {v}"));
    ch.cmd("bfe 3")?;
    engine_after_start(ch, f, "after BFE start")?;
    let r = host.weirctl(&["--json", "status"])?;
    f.check(json_of(&r.stdout)["filtering"] == true, || format!("status after BFE start: {}", r.stdout));
    Ok(())
}

const PARAMETERS: &str = "HKLM\\SYSTEM\\CurrentControlSet\\Services\\weir\\Parameters";

/// FailMode = 1 and `weirctl failsafe allow add` writing the value through Wine's registry;
/// the driver reads it from the same registry at its start: the stand-in's engine holds the
/// fixed fail-closed filters plus one permit per entry and IP version, with the conditions
/// src/failsafe.rs gives them (read through their pointers by the stand-in). Then a bad value:
/// refused, reported, the fixed set alone. Ends open, value deleted, driver running.
fn fail_closed_allow(host: &mut Host, f: &mut Failures) -> Result<()> {
    const EXTRA: &str = "3a6d0c52-7e14-4c8b-9f20-5b7e1f";
    let expected = [
        ("3971ef2b:0:1:17;b235ae9a:0:256:0a000035/ffffffff;c35a604d:0:2:53"),
        ("3971ef2b:0:1:6;b235ae9a:0:256:0a010200/ffffff00;0c1ba1af:5:258:5985-5986"),
        ("3971ef2b:0:1:6;b235ae9a:0:257:fd000000000000000000000000000000/8;c35a604d:0:2:443"),
    ];
    let r = host.weirctl(&["failsafe", "allow", "add", "out udp 10.0.0.53 53", "in tcp 10.1.2.9/24 5985-5986", "out tcp fd00::/8 443"])?;
    f.check(r.code == 0, || format!("weirctl failsafe allow add: {} {}{}", r.code, r.stdout, r.stderr));
    host.run(&["reg", "add", PARAMETERS, "/v", "FailMode", "/t", "REG_DWORD", "/d", "1", "/f"])?;
    host.stop()?;
    let mut ch = host.start()?;
    let s = ch.state()?;
    let filters: Vec<Value> = s.get("filters").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut extra: Vec<&Value> = filters.iter().filter(|x| x["key"].as_str().is_some_and(|k| k.starts_with(EXTRA))).collect();
    extra.sort_by_key(|x| x["key"].as_str().map(str::to_string));
    let got: Vec<&str> = extra.iter().map(|x| x["conds"].as_str().unwrap_or("")).collect();
    f.check(got == expected, || format!("closed with 3 entries: extra filters' conditions {got:?}, expected {expected:?}"));
    f.check(extra.iter().all(|x| num(x, "flags") == 1 && num(x, "action") == 0x1002 && num(x, "weight") == 11), || {
        format!("extra filters: persistent permits at weight 11: {extra:?}")
    });
    f.check(count(&s, "providers") == 1 && filters.len() == 14 + 3, || format!("closed with 3 entries: provider and 17 fail-closed filters: {s}"));
    let r = host.weirctl(&["--json", "failsafe", "show"])?;
    let j = json_of(&r.stdout);
    f.check(r.code == 0 && j["driver"]["entries"] == 3 && j["entries"].as_array().map(Vec::len) == Some(3), || {
        format!("weirctl --json failsafe show: {} {}", r.code, r.stdout)
    });
    drop(ch);
    // A bad value (reg.exe, as an administrator would write it): refused whole, reported.
    host.run(&["reg", "add", PARAMETERS, "/v", "FailClosedAllow", "/t", "REG_MULTI_SZ", "/d", "out tcp 10.0.0.0/33 443", "/f"])?;
    host.stop()?;
    let mut ch = host.start()?;
    let s = ch.state()?;
    let extras = s.get("filters").and_then(Value::as_array).map_or(0, |fs| fs.iter().filter(|x| x["key"].as_str().is_some_and(|k| k.starts_with(EXTRA))).count());
    f.check(extras == 0 && count(&s, "filters") == 14, || format!("refused value: the fixed 14 filters alone: {s}"));
    let r = host.weirctl(&["--json", "failsafe", "show"])?;
    let j = json_of(&r.stdout);
    f.check(j["driver"]["refused"] == "an entry's prefix is not valid" && j["driver"]["line"] == 1, || format!("refused value reported: {}", r.stdout));
    drop(ch);
    host.run(&["reg", "delete", PARAMETERS, "/v", "FailClosedAllow", "/f"])?;
    host.run(&["reg", "add", PARAMETERS, "/v", "FailMode", "/t", "REG_DWORD", "/d", "0", "/f"])?;
    host.stop()?;
    let mut ch = host.start()?;
    engine_after_start(&mut ch, f, "open again")?;
    Ok(())
}

fn cycles(host: &mut Host, f: &mut Failures) -> Result<()> {
    for i in 0..3 {
        let left = host.stop()?;
        engine_clean(&left, f, &format!("cycle {i}: after sc stop"));
        let r = host.weirctl(&["status"])?;
        f.check(r.code == 1 && r.stderr.contains("stopped"), || format!("cycle {i}: status after sc stop: {} {}", r.code, r.stderr));
        let mut ch = host.start()?;
        engine_after_start(&mut ch, f, &format!("cycle {i}"))?;
        let r = host.weirctl(&["--json", "status"])?;
        f.check(r.code == 0, || format!("cycle {i}: status after sc start: {} {}", r.code, r.stderr));
    }
    Ok(())
}

/// Counts DriverEntry's calls of each faultable routine on a clean start (each start has a
/// new driver host, so the counts are the start's), then starts once per call with that call
/// failing: the start fails, the host exits with nothing of Weir left in the engine, and the
/// next start succeeds.
fn faults(host: &mut Host, f: &mut Failures) -> Result<()> {
    let faults_file = host.c_path("C:\\weirtest\\faults.txt");
    host.stop()?;
    let mut ch = host.start()?;
    let counts = ch.state()?;
    drop(ch);
    let (mut runs, t) = (0, Instant::now());
    for (routine, status) in FAULTS {
        let per_start = counts["calls"][routine].as_i64().unwrap_or(0);
        for n in 1..=per_start {
            host.stop()?;
            std::fs::write(&faults_file, format!("{routine} {n} {status:x}\n"))?;
            let (r, left) = host.start_failing()?;
            let _ = std::fs::remove_file(&faults_file);
            runs += 1;
            let what = format!("{routine} call {n} of {per_start} failing");
            f.check(r.code != 0, || format!("{what}: sc start succeeded ({})", r.stdout));
            if r.code != 0 {
                f.check(num(&left, "faults_hit") == 1, || format!("{what}: the fault was not reached: {left}"));
                engine_clean(&left, f, &what);
            }
            let mut ch = host.start()?;
            engine_after_start(&mut ch, f, &format!("start after {what}"))?;
        }
    }
    println!("  {runs} failing starts, each followed by a clean start ({:.1} s)", t.elapsed().as_secs_f64());
    f.check(runs >= 10, || format!("only {runs} failing starts: DriverEntry's calls were not counted"));
    let mut nonfatal = Vec::new();
    for (routine, status) in NONFATAL_FAULTS {
        let per_start = counts["calls"][routine].as_i64().unwrap_or(0);
        for n in 1..=per_start {
            host.stop()?;
            std::fs::write(&faults_file, format!("{routine} {n} {status:x}\n"))?;
            let started = host.start();
            let _ = std::fs::remove_file(&faults_file);
            let what = format!("{routine} call {n} of {per_start} failing (fail-closed set, not fatal)");
            let mut ch = started.with_context(|| format!("{what}: sc start"))?;
            let s = ch.state()?;
            f.check(num(&s, "faults_hit") == 1, || format!("{what}: the fault was not reached: {s}"));
            engine_after_start(&mut ch, f, &what)?;
            nonfatal.push(format!("{routine}#{n}"));
        }
    }
    println!("  fail-closed set calls failed once each, start kept: {}", if nonfatal.is_empty() { "none made on a default start".to_string() } else { nonfatal.join(", ") });
    Ok(())
}

fn errors(host: &mut Host, f: &mut Failures) -> Result<()> {
    host.stop()?;
    let r = host.weirctl(&["status"])?;
    f.check(r.code == 1 && r.stderr.contains("installed but stopped") && r.stderr.contains("sc.exe start weir"), || {
        format!("stopped driver: {} {}", r.code, r.stderr)
    });
    let r = host.weirctl(&["--json", "stats"])?;
    f.check(r.code == 1 && json_of(&r.stdout)["ok"] == false, || format!("stopped driver, --json stats: {} {}", r.code, r.stdout));
    host.sc(&["delete", "weir"])?;
    let r = host.weirctl(&["status"])?;
    f.check(r.code == 1 && r.stderr.contains("not installed"), || format!("absent driver: {} {}", r.code, r.stderr));
    let _ = repo_root();
    Ok(())
}
