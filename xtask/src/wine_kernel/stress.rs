//! Concurrency in the shipped image: the stand-in classifies on several threads while this
//! side swaps policies with weirctl.exe, reads events and restarts BFE. Afterwards the
//! driver's counters must equal the stand-in's tally of what the driver answered, per layer
//! (new = permitted + blocked + write-right-absent), and every event must reach one
//! `weirctl events --follow` reader (its own handle and cursor, as for every reader) or be
//! counted in that reader's dropped-events lines. Seeds and counts are fixed, so a run is reproducible in what is classified
//! (not in its interleaving).

use super::host::{Channel, Host, TOOL_PATH};
use super::Failures;
use anyhow::{Context, Result};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Classify threads in the stand-in and classifications per thread.
pub const THREADS: u32 = 4;
pub const PER_THREAD: u32 = 600_000;
pub const SEED: u64 = 0x00C0_FFEE;

const POLICY_A: &str = "[defaults]\noutbound = \"permit\"\ninbound = \"block\"\nlog_all = true\n\n\
    [[rule]]\nid = 1\naction = \"block\"\nprotocol = \"udp\"\n\n[[rule]]\nid = 2\naction = \"permit\"\nremote_port = 443\n";
const POLICY_B: &str = "[defaults]\noutbound = \"block\"\ninbound = \"permit\"\nlog_all = true\n\n\
    [[rule]]\nid = 7\naction = \"permit\"\nprotocol = \"tcp\"\nremote = \"192.0.2.0/25\"\n";

fn stats(host: &mut Host) -> Result<Value> {
    let r = host.weirctl(&["--json", "stats"])?;
    serde_json::from_str(r.stdout.trim()).with_context(|| format!("stats --json: {} {}", r.stdout, r.stderr))
}

fn counters(j: &Value) -> Vec<[i64; 4]> {
    j["layers"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    let n = |k: &str| l[k].as_i64().unwrap_or(-1);
                    [n("new_connections"), n("permitted"), n("blocked"), n("write_right_absent")]
                })
                .collect()
        })
        .unwrap_or_default()
}

fn connection_events(text: &str) -> i64 {
    text.lines().filter(|l| l.contains("\"kind\":\"connection\"")).count() as i64
}

/// Connection lines of process `pid`.
fn events_of(text: &str, pid: u64) -> i64 {
    let tag = format!("\"process_id\":{pid},");
    text.lines().filter(|l| l.contains("\"kind\":\"connection\"") && l.contains(&tag)).count() as i64
}

/// The sum of the reader's dropped-events counts.
fn lost(text: &str) -> i64 {
    text.lines()
        .filter(|l| l.contains("\"kind\":\"dropped\""))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["count"].as_i64().unwrap_or(0))
        .sum()
}

/// Process id of the connections classified after the run: a ring's worth and more, so the
/// reader passes any position a preempted classify dropped (the ring's skip rule needs
/// `capacity` newer records) and every stress event is read or counted lost.
const FLUSH_PID: u64 = 4444;
const FLUSH: u16 = 600;

pub fn run(host: &mut Host, ch: &mut Channel, f: &mut Failures) -> Result<()> {
    let dir = host.c_path("C:\\weir\\stress");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("a.toml"), POLICY_A)?;
    std::fs::write(dir.join("b.toml"), POLICY_B)?;
    let r = host.weirctl(&["policy", "load", "C:\\weir\\stress\\a.toml"])?;
    f.check(r.code == 0, || format!("stress: policy load a: {}", r.stderr));
    // One reader for the whole run: it prints the backlog, then follows.
    let (mut reader, reader_out) = host.spawn_weirctl(&["--json", "events", "--follow"])?;
    std::thread::sleep(Duration::from_millis(2500));
    let baseline = connection_events(&std::fs::read_to_string(&reader_out).unwrap_or_default());
    let baseline_lost = lost(&std::fs::read_to_string(&reader_out).unwrap_or_default());
    let before = stats(host)?;
    let port = ch.port;
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let classify = std::thread::spawn(move || -> Result<String> {
        let mut c = Channel::to_port(port)?;
        c.cmd(&format!("stress {THREADS} {PER_THREAD} {SEED}"))
    });
    let bfe_done = done.clone();
    let bfe = std::thread::spawn(move || -> Result<u32> {
        let mut c = Channel::to_port(port)?;
        let mut restarts = 0;
        while !bfe_done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(400));
            c.cmd("bfe 0")?;
            std::thread::sleep(Duration::from_millis(100));
            c.cmd("bfe 3")?;
            restarts += 1;
        }
        Ok(restarts)
    });
    // Policy swaps on this thread until the classify run ends; the reader follows meanwhile.
    let (mut swaps, mut swap_failures) = (0u32, 0u32);
    while !classify.is_finished() {
        let file = if swaps % 2 == 0 { "C:\\weir\\stress\\b.toml" } else { "C:\\weir\\stress\\a.toml" };
        if host.wine(&[TOOL_PATH, "policy", "load", file])?.code != 0 {
            swap_failures += 1;
        }
        swaps += 1;
    }
    done.store(true, Ordering::Relaxed);
    // An empty reply is a closed connection: the host (winedevice.exe, with the stand-in in it)
    // ended mid-run, which is how a fault in weir.sys shows here (e.g. a classify reading a
    // policy already freed: the stand-in poisons freed pool).
    let reply = classify.join().map_err(|_| anyhow::anyhow!("stress thread panicked"))?.context(
        "the concurrency run got no answer from the stand-in: the driver host ended during it (a fault in weir.sys?)",
    )?;
    let restarts = bfe.join().map_err(|_| anyhow::anyhow!("bfe thread panicked"))??;
    let took = started.elapsed().as_secs_f64();
    let after = stats(host)?;
    // Both policies log every decision (log_all), so the flush connections are recorded too.
    for i in 0..FLUSH {
        ch.cmd(&format!("classify 48 10.0.0.9 {} 6 192.0.2.200 443 0 1 {FLUSH_PID}", 30000 + i))?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        text = std::fs::read_to_string(&reader_out).unwrap_or_default();
        if text.contains(&format!("\"local_port\":{},", 30000 + FLUSH - 1)) {
            break;
        }
    }
    let _ = std::process::Command::new("kill").args(["-INT", &reader.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.try_wait()?.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if reader.try_wait()?.is_none() {
        let _ = reader.kill();
        let _ = reader.wait();
    }
    let text = std::fs::read_to_string(&reader_out).unwrap_or(text);
    let flushed = events_of(&text, FLUSH_PID);
    let events_read = connection_events(&text) - baseline - flushed;
    let reader_lost = lost(&text) - baseline_lost;
    let tally: Vec<i64> = reply.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let delta: Vec<[i64; 4]> = counters(&before)
        .iter()
        .zip(counters(&after))
        .map(|(b, a)| [a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3]])
        .collect();
    let reached: i64 = tally.iter().sum();
    println!(
        "  {THREADS} threads x {PER_THREAD} classifications (seed {SEED:#x}) in {took:.1} s: {reached} reached the callout, \
         {swaps} policy swaps, {restarts} BFE restarts, {events_read} events read"
    );
    f.check(swap_failures == 0, || format!("stress: {swap_failures} of {swaps} policy loads failed"));
    f.check(tally.len() == 12, || format!("stress: stand-in reply {reply}"));
    for (i, d) in delta.iter().enumerate() {
        let t: Vec<i64> = tally.iter().skip(i * 3).take(3).copied().collect();
        f.check(d[0] == d[1] + d[2] + d[3], || format!("stress layer {i}: new != permitted + blocked + write-right-absent: {d:?}"));
        f.check(t == [d[1], d[2], d[3]], || format!("stress layer {i}: driver counters {d:?}, stand-in saw {t:?}"));
    }
    // With a policy, `log_all` logs every decision; a classification without the write right
    // is not decided, so not logged.
    // Every record reaches the reader or its lost count; a record classify dropped (its
    // slot still being written a lap earlier, `event_drops`) is counted lost by the reader
    // when it skips the gap. The flush records are read after the stress ones.
    let decided: i64 = tally.chunks(3).map(|t| t.iter().take(2).sum::<i64>()).sum();
    let drops = after["event_drops"].as_i64().unwrap_or(-1) - before["event_drops"].as_i64().unwrap_or(-1);
    println!("  one events --follow reader: {events_read} stress events read, {reader_lost} lost (reader), {drops} dropped by classify, {flushed} flush events read");
    f.check(events_read + reader_lost + flushed == decided + i64::from(FLUSH), || {
        format!(
            "stress: {events_read} events read + {reader_lost} lost by the reader + {flushed} flush events != {decided} decisions logged (log_all) + {FLUSH} flush"
        )
    });
    let r = host.weirctl(&["policy", "clear"])?;
    f.check(r.code == 0, || format!("stress: policy clear: {}", r.stderr));
    super::checks::engine_after_start(ch, f, "after the concurrency run")
}
