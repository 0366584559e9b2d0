//! `weirctl stats [--rules]`: per-layer counters and per-rule hit counts.

use crate::output::{Failure, Output};
use clap::Args;
use serde::Serialize;
use std::fmt;
use weir_client::proto::Stats;
use weir_client::weir_abi::stats::{LayerStats, FILTERING_ACTIVE};
use weir_client::weir_policy::Policy;

/// Layer names in the stats reply's order.
pub const LAYERS: [&str; 4] = ["connect v4", "connect v6", "accept v4", "accept v6"];

/// Arguments of `weirctl stats`.
#[derive(Args)]
#[command(after_long_help = "Examples:\n  weirctl stats\n  weirctl stats --rules --json")]
pub struct StatsArgs {
    /// Also print the hit count of every rule of the active policy.
    #[arg(long)]
    pub rules: bool,
}

/// One layer's counters.
#[derive(Serialize)]
pub struct LayerReport {
    pub layer: &'static str,
    pub new_connections: u64,
    pub reauthorizations: u64,
    pub permitted: u64,
    pub blocked: u64,
    pub write_right_absent: u64,
}

/// One rule's hits.
#[derive(Serialize)]
pub struct RuleReport {
    pub index: u32,
    pub id: u32,
    /// The rule's name in the active policy, when it has one (and the policy read back is the
    /// one the counters are for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `false` for a disabled rule (its hits stay 0); absent when the policy was not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    pub hits: u64,
}

/// The result of `weirctl stats` (and the body of `status`).
#[derive(Serialize)]
pub struct StatsReport {
    pub ok: bool,
    pub driver_version: String,
    pub stats_abi: u32,
    pub filtering: bool,
    pub policy_generation: u64,
    pub rule_count: u32,
    pub event_drops: u64,
    pub layers: Vec<LayerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleReport>>,
}

impl StatsReport {
    /// The report of `s`; with `rules`, the per-rule table too, labelled from `policy` when
    /// given (the active policy of the same generation as `s`).
    pub fn new(s: &Stats, rules: bool, policy: Option<&Policy>) -> Self {
        let h = &s.header;
        let layer = |(name, l): (&&'static str, &LayerStats)| LayerReport {
            layer: name,
            new_connections: l.new_connections,
            reauthorizations: l.reauthorizations,
            permitted: l.permitted,
            blocked: l.blocked,
            write_right_absent: l.write_right_absent,
        };
        Self {
            ok: true,
            driver_version: h
                .version
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("."),
            stats_abi: h.abi_version,
            filtering: h.filtering & FILTERING_ACTIVE != 0,
            policy_generation: h.policy_generation,
            rule_count: h.rule_count,
            event_drops: h.event_drops,
            layers: LAYERS.iter().zip(&h.layers).map(layer).collect(),
            rules: rules.then(|| {
                s.rules
                    .iter()
                    .map(|r| {
                        let rule = policy
                            .and_then(|p| p.rules.get(r.rule_index as usize))
                            .filter(|x| x.id == r.rule_id);
                        RuleReport {
                            index: r.rule_index,
                            id: r.rule_id,
                            name: rule.filter(|x| !x.name.is_empty()).map(|x| x.name.clone()),
                            enabled: rule.map(|x| x.enabled),
                            hits: r.hits,
                        }
                    })
                    .collect()
            }),
        }
    }
}

impl fmt::Display for StatsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:>12} {:>12} {:>12} {:>12} {:>12}",
            "layer", "new", "reauth", "permitted", "blocked", "no-write"
        )?;
        for l in &self.layers {
            writeln!(
                f,
                "{:<12} {:>12} {:>12} {:>12} {:>12} {:>12}",
                l.layer,
                l.new_connections,
                l.reauthorizations,
                l.permitted,
                l.blocked,
                l.write_right_absent
            )?;
        }
        writeln!(f, "event drops: {}", self.event_drops)?;
        if let Some(rules) = &self.rules {
            writeln!(f, "\n{:>6} {:>10} {:>14}  name", "index", "rule id", "hits")?;
            for r in rules {
                let label = match (r.name.as_deref(), r.enabled == Some(false)) {
                    (Some(n), true) => format!("{n} (disabled)"),
                    (Some(n), false) => n.to_string(),
                    (None, true) => "(disabled)".into(),
                    (None, false) => String::new(),
                };
                let line = format!("{:>6} {:>10} {:>14}  {label}", r.index, r.id, r.hits);
                writeln!(f, "{}", line.trim_end())?;
            }
            if rules.is_empty() {
                writeln!(f, "(no policy rules)")?;
            }
        }
        Ok(())
    }
}

/// `weirctl stats [--rules]`.
pub fn run(args: &StatsArgs, out: &Output) -> Result<(), Failure> {
    let client = crate::device::open()?;
    let s = client.stats()?;
    // The names live in the policy blob, not in the counters: read it back, and use it only
    // when it is the generation the counters are for (a load in between changes both).
    let policy = if args.rules {
        match client.get_policy()? {
            (generation, p) if generation == s.header.policy_generation => p,
            _ => None,
        }
    } else {
        None
    };
    out.result(&StatsReport::new(&s, args.rules, policy.as_ref()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_client::weir_abi::stats::{RuleHits, StatsHeader};

    pub fn sample() -> Stats {
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
        let j = serde_json::to_value(StatsReport::new(&sample(), true, None)).unwrap();
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
        let j = serde_json::to_value(StatsReport::new(&sample(), false, None)).unwrap();
        assert!(j.get("rules").is_none());
    }

    #[test]
    fn stats_text_lists_layers_and_rules() {
        let t = StatsReport::new(&sample(), true, None).to_string();
        assert!(t.lines().nth(1).unwrap().starts_with("connect v4"), "{t}");
        assert!(t.contains("event drops: 3"));
        assert!(
            t.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "10", "5"]),
            "{t}"
        );
    }

    #[test]
    fn stats_rules_are_labelled_with_the_active_policys_names() {
        use weir_client::weir_policy::{Action, Rule};
        let mut p = Policy::permit_all();
        let mut web = Rule::any(10, Action::Permit);
        web.name = "web out".into();
        let mut off = Rule::any(20, Action::Block);
        off.enabled = false;
        p.rules = vec![web, off];
        let r = StatsReport::new(&sample(), true, Some(&p));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(
            j["rules"],
            json!([{"index": 0, "id": 10, "name": "web out", "enabled": true, "hits": 5},
                   {"index": 1, "id": 20, "enabled": false, "hits": 0}])
        );
        let t = r.to_string();
        assert!(t.lines().any(|l| l.ends_with(" 5  web out")), "{t}");
        assert!(t.lines().any(|l| l.ends_with(" 0  (disabled)")), "{t}");
        // A policy whose rule ids do not line up (another generation) labels nothing.
        p.rules.swap(0, 1);
        let j = serde_json::to_value(StatsReport::new(&sample(), true, Some(&p))).unwrap();
        assert!(j["rules"][0].get("name").is_none());
    }
}

