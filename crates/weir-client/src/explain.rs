//! Why a connection gets its verdict: which rule decides it, and for each earlier rule the
//! first condition that does not hold, worded with the policy file's field names.
//!
//! The verdict itself comes from [`CompiledPolicy::lookup`], the lookup the driver runs; the
//! reference evaluator is run beside it as a check, and the per-rule reasons come from the
//! same conditions the reference tests (`weir_policy::reference::rule_matches`).

use crate::text::format_range;
use serde::Serialize;
use weir_policy::fold::eq_folded;
use weir_policy::reference::evaluate;
use weir_policy::{Addr, AddrCond, AddrRange, CompiledPolicy, Policy, PortCond, Query, Rule};

/// One earlier rule and why it did not decide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Index in the policy (0-based).
    pub index: usize,
    /// The rule's id.
    pub id: u32,
    /// The rule's name, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The rule is disabled (`enabled = false`): skipped whatever its conditions.
    pub disabled: bool,
    /// The first condition that does not hold (or that the rule is disabled).
    pub reason: String,
}

/// The explanation of one query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `permit` or `block`.
    pub action: &'static str,
    /// Index of the deciding rule; `None` when the default decided.
    pub rule_index: Option<usize>,
    /// Its id.
    pub rule_id: Option<u32>,
    /// Its name, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// Whether the connection is logged.
    pub log: bool,
    /// Every rule before the deciding one (all rules when the default decided).
    pub skipped: Vec<Skipped>,
}

/// Why the compiled lookup and the reference evaluator disagree (a bug in the compiler).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    /// What the compiled lookup said.
    pub compiled: String,
    /// What the reference said.
    pub reference: String,
}

fn addr_text(a: Addr) -> String {
    match a {
        Addr::V4(x) => std::net::Ipv4Addr::from_bits(x).to_string(),
        Addr::V6(x) => std::net::Ipv6Addr::from_bits(x).to_string(),
    }
}

fn cond_text(p: &Policy, c: &AddrCond) -> String {
    match c {
        AddrCond::Set(i) => p
            .sets
            .get(*i as usize)
            .map_or_else(|| format!("set #{i}"), |s| format!("set `{}`", s.name)),
        AddrCond::Ranges(rs) => {
            let items: Vec<String> = rs.iter().take(4).map(format_range).collect();
            let more = if rs.len() > 4 { ", ..." } else { "" };
            format!("[{}{more}]", items.join(", "))
        }
    }
}

fn ports_text(c: &PortCond) -> String {
    let items: Vec<String> = c
        .ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect();
    items.join(", ")
}

fn addr_in(p: &Policy, c: &AddrCond, a: Addr) -> bool {
    let entries: &[AddrRange] = match c {
        AddrCond::Ranges(r) => r,
        AddrCond::Set(i) => p
            .sets
            .get(*i as usize)
            .map_or(&[], |s| s.entries.as_slice()),
    };
    entries.iter().any(|r| r.contains(a))
}

/// The first condition of `r` that `q` fails, in the file's terms; `None` when `r` matches.
/// A disabled rule fails first of all, for that reason.
pub fn why_not(p: &Policy, r: &Rule, q: &Query<'_>) -> Option<String> {
    if !r.enabled {
        return Some("enabled = false: the rule is disabled and skipped".into());
    }
    if let Some(d) = r.direction.filter(|d| *d != q.direction) {
        return Some(format!(
            "direction = \"{}\", the connection is {}",
            d.as_str(),
            q.direction.as_str()
        ));
    }
    if let Some(v) = r.ip_version.filter(|v| *v != q.ip_version()) {
        let name = |v| {
            if v == weir_policy::IpVersion::V4 {
                "v4"
            } else {
                "v6"
            }
        };
        return Some(format!(
            "ip_version = \"{}\", the connection is IP{}",
            name(v),
            name(q.ip_version())
        ));
    }
    if let Some(x) = r.protocol.filter(|x| *x != q.protocol) {
        return Some(format!(
            "protocol = {x}, the connection's is {}",
            q.protocol
        ));
    }
    if let Some(b) = r.loopback.filter(|b| *b != q.loopback) {
        return Some(format!(
            "loopback = {b}, the connection's is {}",
            q.loopback
        ));
    }
    if let Some(c) = r.remote_addr.as_ref().filter(|c| !addr_in(p, c, q.remote)) {
        return Some(format!(
            "remote {} is not in {}",
            addr_text(q.remote),
            cond_text(p, c)
        ));
    }
    let local = q.local_normalized();
    if let Some(c) = r.local_addr.as_ref().filter(|c| !addr_in(p, c, local)) {
        return Some(format!(
            "local {} is not in {}",
            addr_text(local),
            cond_text(p, c)
        ));
    }
    let in_ports = |c: &PortCond, x: u16| c.ranges.iter().any(|&(lo, hi)| lo <= x && x <= hi);
    if let Some(c) = r
        .remote_port
        .as_ref()
        .filter(|c| !in_ports(c, q.remote_port))
    {
        return Some(format!(
            "remote_port {} is not in {}",
            q.remote_port,
            ports_text(c)
        ));
    }
    if let Some(c) = r.local_port.as_ref().filter(|c| !in_ports(c, q.local_port)) {
        return Some(format!(
            "local_port {} is not in {}",
            q.local_port,
            ports_text(c)
        ));
    }
    if let Some(a) = &r.app {
        let want = String::from_utf16_lossy(a.units());
        return match q.app {
            None => Some(format!("app = {want}, the connection has no application")),
            Some(qa) if !eq_folded(a.units(), qa) => Some(format!(
                "app = {want}, the connection's is {}",
                String::from_utf16_lossy(qa)
            )),
            Some(_) => None,
        };
    }
    None
}

fn name_of(r: &Rule) -> Option<String> {
    (!r.name.is_empty()).then(|| r.name.clone())
}

/// Explains `q` against `p` (compiled as `c`).
///
/// # Errors
/// The compiled lookup and the reference evaluator disagree.
pub fn explain(p: &Policy, c: &CompiledPolicy, q: &Query<'_>) -> Result<Explanation, Disagreement> {
    let v = c.lookup(q);
    let reference = evaluate(p, q);
    if v != reference {
        return Err(Disagreement {
            compiled: format!("{v:?}"),
            reference: format!("{reference:?}"),
        });
    }
    let upto = v.rule_index.map_or(p.rules.len(), |i| i as usize);
    let mut skipped = Vec::new();
    for (index, r) in p.rules.iter().enumerate().take(upto) {
        // The reference agrees that an earlier rule fails; the reason is its first failing
        // condition.
        let reason = why_not(p, r, q).unwrap_or_else(|| "matches (unexpected)".into());
        skipped.push(Skipped {
            index,
            id: r.id,
            name: name_of(r),
            disabled: !r.enabled,
            reason,
        });
    }
    Ok(Explanation {
        action: v.action.as_str(),
        rule_index: v.rule_index.map(|i| i as usize),
        rule_id: v.rule_id,
        rule_name: v
            .rule_index
            .and_then(|i| p.rules.get(i as usize))
            .and_then(name_of),
        log: v.log,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_policy::{Action, AddressSet, Direction};

    #[test]
    fn the_deciding_rule_and_why_each_earlier_one_did_not() {
        let mut p = Policy::permit_all();
        p.sets.push(AddressSet {
            name: "lan".into(),
            entries: vec![AddrRange::v4_cidr(0x0A00_0000, 8).unwrap()],
        });
        let mut r0 = Rule::any(10, Action::Block);
        r0.remote_addr = Some(AddrCond::Set(0));
        let mut r1 = Rule::any(20, Action::Permit);
        r1.protocol = Some(17);
        let mut r2 = Rule::any(30, Action::Block);
        r2.remote_port = Some(PortCond {
            ranges: vec![(443, 443)],
        });
        p.rules = vec![r0, r1, r2];
        let c = CompiledPolicy::compile(&p).unwrap();
        let q = Query {
            direction: Direction::Outbound,
            remote: Addr::V4(0x0101_0101),
            local: Addr::V4(0xC0A8_0001),
            protocol: 6,
            remote_port: 443,
            local_port: 50000,
            app: None,
            loopback: false,
        };
        let e = explain(&p, &c, &q).unwrap();
        assert_eq!(
            (e.action, e.rule_index, e.rule_id),
            ("block", Some(2), Some(30))
        );
        assert_eq!(
            e.skipped
                .iter()
                .map(|s| s.reason.as_str())
                .collect::<Vec<_>>(),
            [
                "remote 1.1.1.1 is not in set `lan`",
                "protocol = 17, the connection's is 6",
            ]
        );
        let q = Query {
            remote_port: 80,
            ..q
        };
        let e = explain(&p, &c, &q).unwrap();
        assert_eq!((e.action, e.rule_index), ("permit", None));
        assert_eq!(e.skipped[2].reason, "remote_port 80 is not in 443");
    }

    #[test]
    fn a_disabled_rule_that_would_match_is_skipped_and_said_so() {
        // Rule 0 matches everything but is disabled: rule 1 decides, by its name.
        let mut p = Policy::permit_all();
        let mut off = Rule::any(1, Action::Block);
        off.enabled = false;
        off.name = "block all".into();
        let mut web = Rule::any(2, Action::Permit);
        web.name = "web".into();
        p.rules = vec![off, web];
        let c = CompiledPolicy::compile(&p).unwrap();
        let q = Query {
            direction: Direction::Outbound,
            remote: Addr::V4(0x0101_0101),
            local: Addr::V4(0xC0A8_0001),
            protocol: 6,
            remote_port: 443,
            local_port: 50000,
            app: None,
            loopback: false,
        };
        let e = explain(&p, &c, &q).unwrap();
        assert_eq!(
            (e.action, e.rule_index, e.rule_name.as_deref()),
            ("permit", Some(1), Some("web"))
        );
        assert_eq!(e.skipped.len(), 1);
        assert!(e.skipped[0].disabled);
        assert_eq!(e.skipped[0].name.as_deref(), Some("block all"));
        assert_eq!(
            e.skipped[0].reason,
            "enabled = false: the rule is disabled and skipped"
        );
    }
}
