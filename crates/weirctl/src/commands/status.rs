//! `weirctl status`: is the driver loaded, its version, ABI, policy generation, counters;
//! the active policy's source, hash and load time, a refused stored policy, the failure mode.

use super::events::system_time_text;
use super::stats::StatsReport;
use crate::output::{Failure, Output};
use serde::Serialize;
use std::fmt;
use weir_client::stored::hash_hex;
use weir_client::weir_abi::policy_status::{PolicyStatus, FAIL_MODE_CLOSED, SOURCE_NONE};
use weir_client::weir_abi::stats::STATS_ABI_VERSION;
use weir_client::weir_abi::status::{
    describe, STATUS_OBJECT_NAME_NOT_FOUND, STATUS_OBJECT_PATH_NOT_FOUND,
};

/// The result of `weirctl status`: the stats without rules, plus `loaded` and the policy
/// source.
#[derive(Serialize)]
pub struct StatusReport {
    #[serde(flatten)]
    pub stats: StatsReport,
    pub loaded: bool,
    /// Absent when the driver does not answer GET_POLICY_STATUS (a driver that predates
    /// the stored policy): `policy_error` says why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicySource>,
    #[serde(skip)]
    pub policy_error: Option<String>,
}

/// A refused stored policy: its NTSTATUS and what it means.
#[derive(Serialize)]
pub struct Refusal {
    pub status: String,
    pub reason: Option<&'static str>,
}

/// Where the active policy came from (GET_POLICY_STATUS): what a rollout script compares.
#[derive(Serialize)]
pub struct PolicySource {
    /// `stored`, `this-run` or `none`.
    pub source: &'static str,
    pub generation: u64,
    /// SHA-256 of the active blob (null without a policy).
    pub sha256: Option<String>,
    pub blob_bytes: u64,
    pub rule_count: u32,
    /// UTC, null before the first load.
    pub loaded_at: Option<String>,
    pub stored_reads: u32,
    pub stored_present: bool,
    /// `open` or `closed`.
    pub fail_mode: &'static str,
    pub fail_closed_installed: bool,
    /// `Parameters\FailClosedAllow` entries in effect (0 while open: the value is not read).
    pub fail_closed_allow_entries: u32,
    /// Why the driver refused `FailClosedAllow` at its start (null: it did not).
    pub fail_closed_allow_refused: Option<&'static str>,
    pub stored_refused: Option<Refusal>,
    #[serde(skip)]
    closed_set_missing: bool,
}

/// No stored policy at all is a state, not a refusal.
fn missing(s: &PolicyStatus) -> bool {
    s.stored_reads > 0
        && matches!(
            s.stored_status,
            STATUS_OBJECT_NAME_NOT_FOUND | STATUS_OBJECT_PATH_NOT_FOUND
        )
}

impl PolicySource {
    pub fn new(s: &PolicyStatus) -> Self {
        let refused = s.stored_reads != 0 && s.stored_status != 0 && !missing(s);
        let closed = s.fail_mode == FAIL_MODE_CLOSED;
        Self {
            source: s.source_name(),
            generation: s.generation,
            sha256: (s.source != SOURCE_NONE).then(|| hash_hex(&s.blob_sha256)),
            blob_bytes: s.blob_len,
            rule_count: s.rule_count,
            loaded_at: (s.loaded_at != 0).then(|| system_time_text(s.loaded_at)),
            stored_reads: s.stored_reads,
            stored_present: !missing(s),
            fail_mode: if closed { "closed" } else { "open" },
            fail_closed_installed: s.fail_closed_set == 1,
            fail_closed_allow_entries: s.allow_entries,
            fail_closed_allow_refused: (s.allow_error != 0).then(|| weir_client::failsafe::describe_code(s.allow_error)),
            stored_refused: refused.then(|| Refusal {
                status: format!("0x{:08X}", s.stored_status),
                reason: describe(s.stored_status),
            }),
            closed_set_missing: closed && s.fail_closed_set != 1,
        }
    }
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sha256 {
            None => writeln!(
                f,
                "source:     none (monitor mode: every connection permitted), generation {}",
                self.generation
            )?,
            Some(hash) => {
                writeln!(
                    f,
                    "source:     {}, generation {}, loaded {}",
                    self.source,
                    self.generation,
                    self.loaded_at.as_deref().unwrap_or("-")
                )?;
                writeln!(f, "sha256:     {hash} ({} bytes)", self.blob_bytes)?;
            }
        }
        let mode = match (self.fail_mode, self.fail_closed_installed, self.closed_set_missing) {
            ("closed", true, _) => "closed (fail-closed filters installed)",
            (_, _, true) => "closed, but the fail-closed filters are NOT installed (see the driver's trace)",
            _ => "open",
        };
        writeln!(f, "fail mode:  {mode}")?;
        if self.fail_mode == "closed" {
            match self.fail_closed_allow_refused {
                Some(why) => writeln!(f, "allow-list: FailClosedAllow refused ({why}); fixed permits only (weirctl failsafe show)")?,
                None => writeln!(f, "allow-list: fixed permits + {} FailClosedAllow entries (weirctl failsafe show)", self.fail_closed_allow_entries)?,
            }
        }
        if let Some(r) = &self.stored_refused {
            let why = r.reason.unwrap_or("see docs/deployment.md");
            writeln!(f, "stored policy refused: {} ({why})", r.status)?;
        } else if !self.stored_present {
            writeln!(f, "stored:     none (weirctl policy load FILE stores one)")?;
        }
        Ok(())
    }
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(f, "driver:     loaded, version {}", s.driver_version)?;
        writeln!(
            f,
            "abi:        stats v{} (this weirctl reads v{STATS_ABI_VERSION})",
            s.stats_abi
        )?;
        writeln!(
            f,
            "filtering:  {}",
            if s.filtering { "active" } else { "inactive" }
        )?;
        writeln!(
            f,
            "policy:     generation {}, {} rules",
            s.policy_generation, s.rule_count
        )?;
        writeln!(f, "events:     {} dropped", s.event_drops)?;
        let total: u64 = s.layers.iter().map(|l| l.new_connections).sum();
        let blocked: u64 = s.layers.iter().map(|l| l.blocked).sum();
        writeln!(
            f,
            "connections: {total} new, {blocked} blocked (weirctl stats for each layer)"
        )?;
        match (&self.policy, &self.policy_error) {
            (Some(p), _) => write!(f, "{p}"),
            (None, Some(e)) => writeln!(f, "source:     unknown ({e})"),
            (None, None) => Ok(()),
        }
    }
}

/// `weirctl status`.
pub fn run(out: &Output) -> Result<(), Failure> {
    let client = crate::device::open()?;
    let s = client.stats()?;
    // A driver without GET_POLICY_STATUS predates the stored policy: say so, keep the rest.
    let (policy, policy_error) = match client.policy_status() {
        Ok(p) => (Some(PolicySource::new(&p)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    out.result(&StatusReport {
        stats: StatsReport::new(&s, false, None),
        loaded: true,
        policy,
        policy_error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_client::weir_abi::policy_status::SOURCE_STORED;

    fn json(s: &PolicyStatus) -> serde_json::Value {
        serde_json::to_value(PolicySource::new(s)).unwrap()
    }

    #[test]
    fn status_says_source_hash_and_refusal() {
        let s = PolicyStatus {
            generation: 3,
            source: SOURCE_STORED,
            loaded_at: 133_500_000_000_000_000,
            blob_sha256: [0xab; 32],
            blob_len: 100,
            stored_reads: 2,
            stored_status: 0xE057_3002,
            ..Default::default()
        };
        let t = PolicySource::new(&s).to_string();
        assert!(t.contains("source:     stored, generation 3"), "{t}");
        assert!(t.contains(&"ab".repeat(32)), "{t}");
        assert!(
            t.contains("stored policy refused: 0xE0573002 (the stored policy file is corrupted"),
            "{t}"
        );
        let j = json(&s);
        assert_eq!(j["source"], "stored");
        assert_eq!(j["sha256"], "ab".repeat(32));
        assert_eq!(j["stored_refused"]["status"], "0xE0573002");
        let none = PolicyStatus {
            stored_reads: 1,
            stored_status: 0xC000_0034,
            ..Default::default()
        };
        let j = json(&none);
        assert_eq!(
            (j["source"].as_str(), j["sha256"].is_null()),
            (Some("none"), true)
        );
        let t = PolicySource::new(&none).to_string();
        assert!(t.contains("stored:     none"), "{t}");
        assert_eq!(
            (j["stored_refused"].is_null(), j["stored_present"].as_bool()),
            (true, Some(false))
        );
    }

    #[test]
    fn status_says_the_failure_mode() {
        let open = PolicyStatus::default();
        let t = PolicySource::new(&open).to_string();
        assert!(t.contains("fail mode:  open"), "{t}");
        assert_eq!(json(&open)["fail_mode"], "open");
        let closed = PolicyStatus {
            fail_mode: FAIL_MODE_CLOSED,
            fail_closed_set: 1,
            ..Default::default()
        };
        let t = PolicySource::new(&closed).to_string();
        assert!(t.contains("fail mode:  closed (fail-closed filters installed)"), "{t}");
        assert_eq!(
            (
                json(&closed)["fail_mode"].as_str(),
                json(&closed)["fail_closed_installed"].as_bool()
            ),
            (Some("closed"), Some(true))
        );
        let broken = PolicyStatus {
            fail_closed_set: 0,
            ..closed
        };
        let t = PolicySource::new(&broken).to_string();
        assert!(t.contains("NOT installed"), "{t}");
    }
}
