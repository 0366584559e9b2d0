//! `weirctl status`: is the driver loaded, its version, ABI, policy generation, counters.

use super::stats::StatsReport;
use crate::output::{Failure, Output};
use serde::Serialize;
use std::fmt;
use weir_client::weir_abi::stats::STATS_ABI_VERSION;

/// The result of `weirctl status`: the stats without rules, plus `loaded`.
#[derive(Serialize)]
pub struct StatusReport {
    #[serde(flatten)]
    pub stats: StatsReport,
    pub loaded: bool,
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
        )
    }
}

/// `weirctl status`.
pub fn run(out: &Output) -> Result<(), Failure> {
    let client = crate::device::open()?;
    let s = client.stats()?;
    out.result(&StatusReport {
        stats: StatsReport::new(&s, false),
        loaded: true,
    })?;
    Ok(())
}
