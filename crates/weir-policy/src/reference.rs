//! The plain first-match evaluator: the specification the compiled lookup is tested against.
//! It walks every rule in order and checks every condition literally, so its cost grows with
//! the number of rules (and set sizes). Tests and benchmarks only; the driver uses
//! [`crate::CompiledPolicy`].

use crate::fold::eq_folded;
use crate::{Addr, AddrCond, Policy, PortCond, Query, Rule, Verdict};

fn addr_matches(p: &Policy, c: &AddrCond, a: Addr) -> bool {
    match c {
        AddrCond::Ranges(rs) => rs.iter().any(|r| r.contains(a)),
        AddrCond::Set(i) => match p.sets.get(*i as usize) {
            Some(s) => s.entries.iter().any(|r| r.contains(a)),
            None => false,
        },
    }
}

fn port_matches(c: &PortCond, port: u16) -> bool {
    c.ranges.iter().any(|(lo, hi)| *lo <= port && port <= *hi)
}

/// Whether every condition of `r` holds for `q` (see [`Rule`] for the semantics).
/// A disabled rule never matches.
pub fn rule_matches(p: &Policy, r: &Rule, q: &Query<'_>) -> bool {
    if !r.enabled {
        return false;
    }
    if r.direction.is_some_and(|d| d != q.direction) {
        return false;
    }
    if r.ip_version.is_some_and(|v| v != q.ip_version()) {
        return false;
    }
    if r.protocol.is_some_and(|x| x != q.protocol) {
        return false;
    }
    if r.loopback.is_some_and(|b| b != q.loopback) {
        return false;
    }
    if let Some(c) = &r.remote_addr {
        if !addr_matches(p, c, q.remote) {
            return false;
        }
    }
    if let Some(c) = &r.local_addr {
        if !addr_matches(p, c, q.local_normalized()) {
            return false;
        }
    }
    if let Some(c) = &r.remote_port {
        if !port_matches(c, q.remote_port) {
            return false;
        }
    }
    if let Some(c) = &r.local_port {
        if !port_matches(c, q.local_port) {
            return false;
        }
    }
    if let Some(a) = &r.app {
        match q.app {
            Some(qa) if eq_folded(&a.0, qa) => {}
            _ => return false,
        }
    }
    true
}

/// The verdict for `q`: the first rule that matches, else the default of `q.direction`.
/// `log` is the rule's flag (or `log_all`).
pub fn evaluate(p: &Policy, q: &Query<'_>) -> Verdict {
    for (i, r) in p.rules.iter().enumerate() {
        if rule_matches(p, r, q) {
            return Verdict {
                rule_index: Some(i as u32),
                rule_id: Some(r.id),
                action: r.action,
                log: r.log || p.log_all,
            };
        }
    }
    Verdict {
        rule_index: None,
        rule_id: None,
        action: p.default_for(q.direction),
        log: p.log_all,
    }
}
