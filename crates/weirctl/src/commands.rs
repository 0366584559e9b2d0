//! The commands other than `events`.

use crate::output::{set, Failure, Output};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;
use weir_client::proto::Stats;
use weir_client::text::{self, AppPaths, Diagnostic, Diagnostics, LoadOptions, Loaded};
use weir_client::weir_abi::stats::{LayerStats, FILTERING_ACTIVE, STATS_ABI_VERSION};
use weir_client::weir_policy::{limits, Action, CompiledPolicy, Policy};
use weir_client::{client, ClientError};

/// Layer names in the stats reply's order.
pub const LAYERS: [&str; 4] = ["connect v4", "connect v6", "accept v4", "accept v6"];

fn action(a: Action) -> &'static str {
    match a {
        Action::Permit => "permit",
        Action::Block => "block",
    }
}

/// How application paths are treated on this OS.
pub(crate) fn app_paths(keep: bool) -> AppPaths<'static> {
    #[cfg(windows)]
    {
        static DOS: weir_client::win32::DosDevices = weir_client::win32::DosDevices;
        if !keep {
            return AppPaths::Convert(&DOS);
        }
    }
    let _ = keep;
    AppPaths::Keep
}

fn file_error(file: &Path, message: String) -> Failure {
    Failure::Policy(Diagnostics(vec![Diagnostic {
        file: file.display().to_string(),
        line: 0,
        column: 0,
        message,
    }]))
}

/// A checked policy: parsed, encoded, compiled.
pub(crate) struct Checked {
    pub(crate) loaded: Loaded,
    pub(crate) blob: Vec<u8>,
    compiled_bytes: usize,
    parse_ms: f64,
    compile_ms: f64,
}

pub(crate) fn check_file(file: &Path, paths: AppPaths<'_>) -> Result<Checked, Failure> {
    let started = Instant::now();
    let loaded = text::load_file(file, &LoadOptions { app_paths: paths })?;
    let parse_ms = started.elapsed().as_secs_f64() * 1e3;
    let blob = client::encode(&loaded.policy).map_err(|e| match e {
        ClientError::PolicyTooLarge { limit, .. } => file_error(
            file,
            format!("policy too large: its blob would exceed the limit of {limit} bytes"),
        ),
        other => Failure::Client(other),
    })?;
    let started = Instant::now();
    let compiled = CompiledPolicy::compile(&loaded.policy)
        .map_err(|e| file_error(file, format!("does not compile: {e}")))?;
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(Checked {
        compiled_bytes: compiled.memory_bytes(),
        loaded,
        blob,
        parse_ms,
        compile_ms,
    })
}

pub(crate) fn summary(p: &Policy) -> String {
    let entries: usize = p.sets.iter().map(|s| s.entries.len()).sum();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{}, {} ({}), default outbound {}, inbound {}{}",
        plural(p.rules.len(), "rule", "rules"),
        plural(p.sets.len(), "address set", "address sets"),
        plural(entries, "entry", "entries"),
        action(p.default_outbound),
        action(p.default_inbound),
        if p.log_all { ", log_all" } else { "" }
    )
}

pub(crate) fn policy_json(p: &Policy) -> Value {
    json!({
        "rules": p.rules.len(),
        "sets": p.sets.len(),
        "set_entries": p.sets.iter().map(|s| s.entries.len()).sum::<usize>(),
        "default_outbound": action(p.default_outbound),
        "default_inbound": action(p.default_inbound),
        "log_all": p.log_all,
    })
}

/// `weirctl policy check FILE`.
pub fn policy_check(out: &Output, file: &Path, keep_paths: bool) -> Result<(), Failure> {
    let c = check_file(file, app_paths(keep_paths))?;
    let mut human = format!("{}: ok: {}\n", file.display(), summary(&c.loaded.policy));
    let _ = writeln!(
        human,
        "  blob {} bytes (limit {}), compiled {} bytes; parsed in {:.1} ms, compiled in {:.1} ms",
        c.blob.len(),
        limits::MAX_BLOB_BYTES,
        c.compiled_bytes,
        c.parse_ms,
        c.compile_ms
    );
    let mut doc = json!({
        "ok": true,
        "file": file.display().to_string(),
        "policy": policy_json(&c.loaded.policy),
        "blob_bytes": c.blob.len(),
        "compiled_bytes": c.compiled_bytes,
        "parse_ms": c.parse_ms,
        "compile_ms": c.compile_ms,
        "kept_paths": c.loaded.kept_paths,
    });
    if !c.loaded.kept_paths.is_empty() {
        let why = if cfg!(windows) {
            "--keep-paths"
        } else {
            "this is not Windows"
        };
        let note = format!(
            "{} application path(s) kept as written, not converted to NT device paths ({why}); `weirctl policy load` \
             converts them on the target machine: {}",
            c.loaded.kept_paths.len(),
            c.loaded.kept_paths.join(", ")
        );
        set(&mut doc, "note", json!(note));
        out.result(&human, &doc);
        out.note(&note);
        return Ok(());
    }
    out.result(&human, &doc);
    Ok(())
}

/// `weirctl policy show`.
pub fn policy_show(out: &Output) -> Result<(), Failure> {
    let client = crate::device::open()?;
    let (generation, policy) = client.get_policy()?;
    let Some(policy) = policy else {
        let human = format!(
            "# no policy loaded (generation {generation}): Weir permits every connection\n"
        );
        out.result(
            &human,
            &json!({ "ok": true, "generation": generation, "loaded": false }),
        );
        return Ok(());
    };
    #[cfg(windows)]
    let drives: Option<&dyn weir_client::paths::DriveMap> = Some(&weir_client::win32::DosDevices);
    #[cfg(not(windows))]
    let drives: Option<&dyn weir_client::paths::DriveMap> = None;
    let body = text::format(&policy, drives);
    let human = format!("# active policy, generation {generation}\n{body}");
    let doc = json!({ "ok": true, "generation": generation, "loaded": true, "policy": policy_json(&policy), "text": body });
    out.result(&human, &doc);
    Ok(())
}

fn layer_json(l: &LayerStats) -> Value {
    json!({
        "new_connections": l.new_connections,
        "reauthorizations": l.reauthorizations,
        "permitted": l.permitted,
        "blocked": l.blocked,
        "write_right_absent": l.write_right_absent,
    })
}

/// The stats as text (`rules`: with the per-rule table).
pub fn stats_text(s: &Stats, rules: bool) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "layer", "new", "reauth", "permitted", "blocked", "no-write"
    );
    for (name, l) in LAYERS.iter().zip(&s.header.layers) {
        let _ = writeln!(
            t,
            "{name:<12} {:>12} {:>12} {:>12} {:>12} {:>12}",
            l.new_connections, l.reauthorizations, l.permitted, l.blocked, l.write_right_absent
        );
    }
    let _ = writeln!(t, "event drops: {}", s.header.event_drops);
    if rules {
        let _ = writeln!(t, "\n{:>6} {:>10} {:>14}", "index", "rule id", "hits");
        for r in &s.rules {
            let _ = writeln!(t, "{:>6} {:>10} {:>14}", r.rule_index, r.rule_id, r.hits);
        }
        if s.rules.is_empty() {
            let _ = writeln!(t, "(no policy rules)");
        }
    }
    t
}

/// The stats as JSON.
pub fn stats_json(s: &Stats, rules: bool) -> Value {
    let h = &s.header;
    let mut doc = json!({
        "ok": true,
        "driver_version": h.version.iter().map(ToString::to_string).collect::<Vec<_>>().join("."),
        "stats_abi": h.abi_version,
        "filtering": h.filtering & FILTERING_ACTIVE != 0,
        "policy_generation": h.policy_generation,
        "rule_count": h.rule_count,
        "event_drops": h.event_drops,
        "layers": LAYERS.iter().zip(&h.layers).map(|(n, l)| {
            let mut v = layer_json(l);
            set(&mut v, "layer", json!(n));
            v
        }).collect::<Vec<_>>(),
    });
    if rules {
        set(
            &mut doc,
            "rules",
            s.rules
                .iter()
                .map(|r| json!({ "index": r.rule_index, "id": r.rule_id, "hits": r.hits }))
                .collect(),
        );
    }
    doc
}

/// `weirctl stats [--rules]`.
pub fn stats(out: &Output, rules: bool) -> Result<(), Failure> {
    let client = crate::device::open()?;
    let s = client.stats()?;
    out.result(&stats_text(&s, rules), &stats_json(&s, rules));
    Ok(())
}

/// `weirctl status`.
pub fn status(out: &Output) -> Result<(), Failure> {
    let client = crate::device::open()?;
    let s = client.stats()?;
    let h = &s.header;
    let version = h
        .version
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let mut human = String::new();
    let _ = writeln!(human, "driver:     loaded, version {version}");
    let _ = writeln!(
        human,
        "abi:        stats v{} (this weirctl reads v{STATS_ABI_VERSION})",
        h.abi_version
    );
    let _ = writeln!(
        human,
        "filtering:  {}",
        if h.filtering & FILTERING_ACTIVE != 0 {
            "active"
        } else {
            "inactive"
        }
    );
    let _ = writeln!(
        human,
        "policy:     generation {}, {} rules",
        h.policy_generation, h.rule_count
    );
    let _ = writeln!(human, "events:     {} dropped", h.event_drops);
    let total: u64 = h.layers.iter().map(|l| l.new_connections).sum();
    let blocked: u64 = h.layers.iter().map(|l| l.blocked).sum();
    let _ = writeln!(
        human,
        "connections: {total} new, {blocked} blocked (weirctl stats for each layer)"
    );
    let mut doc = stats_json(&s, false);
    set(&mut doc, "loaded", json!(true));
    // Source, hash and load time of the active policy (a driver without the request
    // predates the stored policy: say so, keep the rest).
    match crate::stored_cmds::status_part(&client) {
        Ok((text, json)) => {
            human.push_str(&text);
            set(&mut doc, "policy", json);
        }
        Err(e) => {
            let _ = writeln!(human, "source:     unknown ({e})");
        }
    }
    out.result(&human, &doc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_client::weir_abi::stats::{RuleHits, StatsHeader};

    fn sample() -> Stats {
        let mut header = StatsHeader {
            version: [0, 1, 0, 0],
            abi_version: 2,
            policy_generation: 7,
            event_drops: 3,
            rule_count: 2,
            filtering: FILTERING_ACTIVE,
            ..StatsHeader::default()
        };
        header.layers[0] = LayerStats {
            new_connections: 10,
            reauthorizations: 1,
            permitted: 8,
            blocked: 2,
            write_right_absent: 0,
        };
        Stats {
            header,
            rules: vec![
                RuleHits {
                    rule_id: 10,
                    rule_index: 0,
                    hits: 5,
                },
                RuleHits {
                    rule_id: 20,
                    rule_index: 1,
                    hits: 0,
                },
            ],
        }
    }

    #[test]
    fn stats_json_has_every_counter_by_name() {
        let j = stats_json(&sample(), true);
        assert_eq!(j["driver_version"], "0.1.0.0");
        assert_eq!(j["policy_generation"], 7);
        assert_eq!(j["filtering"], true);
        assert_eq!(
            j["layers"][0],
            json!({"layer": "connect v4", "new_connections": 10, "reauthorizations": 1, "permitted": 8, "blocked": 2, "write_right_absent": 0})
        );
        assert_eq!(
            j["rules"],
            json!([{"index": 0, "id": 10, "hits": 5}, {"index": 1, "id": 20, "hits": 0}])
        );
        assert!(stats_json(&sample(), false).get("rules").is_none());
    }

    #[test]
    fn stats_text_lists_layers_and_rules() {
        let t = stats_text(&sample(), true);
        assert!(t.lines().nth(1).unwrap().starts_with("connect v4"), "{t}");
        assert!(t.contains("event drops: 3"));
        assert!(
            t.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "10", "5"]),
            "{t}"
        );
    }
}
