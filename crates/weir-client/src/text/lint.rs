//! Warnings about a valid policy that may not do what its author meant: rules that can never
//! match, rules never reached because an earlier rule matches everything they match, duplicate
//! rule ids, empty sets, an empty policy.
//!
//! A disabled rule (`enabled = false`) matches nothing, so it gets no warning of its own and
//! never counts as shadowing a later rule.
//!
//! The shadowing check is exact in one direction: a rule is reported as shadowed only when one
//! earlier rule matches every connection it matches (no false reports). A rule covered only by
//! several earlier rules together is not reported.

use super::locate::{RuleSource, SetSource};
use super::Parser;
use weir_policy::fold::eq_folded;
use weir_policy::{AddrCond, AddrRange, IpVersion, Policy, PortCond, Rule};

const VERSIONS: [IpVersion; 2] = [IpVersion::V4, IpVersion::V6];

fn full(v: IpVersion) -> (u128, u128) {
    match v {
        IpVersion::V4 => (0, u128::from(u32::MAX)),
        IpVersion::V6 => (0, u128::MAX),
    }
}

/// The ranges of version `v` an address condition admits; `None` for an absent condition.
fn ranges_of(p: &Policy, c: Option<&AddrCond>, v: IpVersion) -> Option<Vec<(u128, u128)>> {
    let entries: &[AddrRange] = match c? {
        AddrCond::Ranges(r) => r,
        AddrCond::Set(i) => p
            .sets
            .get(*i as usize)
            .map_or(&[], |s| s.entries.as_slice()),
    };
    Some(
        entries
            .iter()
            .filter_map(|r| match (*r, v) {
                (AddrRange::V4 { lo, hi }, IpVersion::V4) => Some((u128::from(lo), u128::from(hi))),
                (AddrRange::V6 { lo, hi }, IpVersion::V6) => Some((lo, hi)),
                _ => None,
            })
            .collect(),
    )
}

/// Whether every value of `inner` is in `outer` (both lists of inclusive ranges).
fn covered(inner: &[(u128, u128)], outer: &[(u128, u128)]) -> bool {
    let mut outer = outer.to_vec();
    outer.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(outer.len());
    for (lo, hi) in outer {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    inner.iter().all(|&(lo, hi)| {
        let i = merged.partition_point(|r| r.1 < lo);
        merged.get(i).is_some_and(|r| r.0 <= lo && hi <= r.1)
    })
}

fn ports(c: Option<&PortCond>) -> Vec<(u128, u128)> {
    c.map_or_else(
        || vec![(0, 65535)],
        |c| {
            c.ranges
                .iter()
                .map(|&(a, b)| (u128::from(a), u128::from(b)))
                .collect()
        },
    )
}

/// The IP versions a rule can match (its conditions admit some connection of that version).
fn versions(p: &Policy, r: &Rule) -> Vec<IpVersion> {
    VERSIONS
        .into_iter()
        .filter(|v| r.ip_version.is_none_or(|x| x == *v))
        .filter(|v| {
            [&r.remote_addr, &r.local_addr]
                .iter()
                .all(|c| ranges_of(p, c.as_ref(), *v).is_none_or(|x| !x.is_empty()))
        })
        .collect()
}

/// Whether `outer` matches every connection `inner` matches (`inner` can match some).
fn shadows(p: &Policy, outer: &Rule, inner: &Rule, inner_versions: &[IpVersion]) -> bool {
    fn within<T: PartialEq>(outer: Option<T>, inner: Option<T>) -> bool {
        match (outer, inner) {
            (None, _) => true,
            (Some(o), Some(i)) => o == i,
            (Some(_), None) => false,
        }
    }
    if !within(outer.direction, inner.direction)
        || !within(outer.protocol, inner.protocol)
        || !within(outer.loopback, inner.loopback)
    {
        return false;
    }
    match (&outer.app, &inner.app) {
        (None, _) => {}
        (Some(o), Some(i)) if eq_folded(&o.0, &i.0) => {}
        _ => return false,
    }
    if !covered(
        &ports(inner.remote_port.as_ref()),
        &ports(outer.remote_port.as_ref()),
    ) || !covered(
        &ports(inner.local_port.as_ref()),
        &ports(outer.local_port.as_ref()),
    ) {
        return false;
    }
    inner_versions.iter().all(|&v| {
        outer.ip_version.is_none_or(|x| x == v)
            && [
                (&outer.remote_addr, &inner.remote_addr),
                (&outer.local_addr, &inner.local_addr),
            ]
            .iter()
            .all(|(o, i)| {
                let i = ranges_of(p, i.as_ref(), v).unwrap_or_else(|| vec![full(v)]);
                let o = ranges_of(p, o.as_ref(), v).unwrap_or_else(|| vec![full(v)]);
                covered(&i, &o)
            })
    })
}

/// Why a rule that can match nothing does so.
fn never_reason(p: &Policy, r: &Rule) -> String {
    let set_name = |c: &Option<AddrCond>| match c {
        Some(AddrCond::Set(i)) => p.sets.get(*i as usize).map(|s| s.name.clone()),
        _ => None,
    };
    for (c, field) in [(&r.remote_addr, "remote"), (&r.local_addr, "local")] {
        if let (Some(name), Some(s)) = (
            set_name(c),
            c.as_ref().and_then(|c| match c {
                AddrCond::Set(i) => p.sets.get(*i as usize),
                AddrCond::Ranges(_) => None,
            }),
        ) {
            if s.entries.is_empty() {
                return format!("`{field}` refers to set `{name}`, which is empty");
            }
        }
    }
    let has = |c: &Option<AddrCond>| -> Option<&'static str> {
        let v4 = ranges_of(p, c.as_ref(), IpVersion::V4).is_none_or(|x| !x.is_empty());
        let v6 = ranges_of(p, c.as_ref(), IpVersion::V6).is_none_or(|x| !x.is_empty());
        c.as_ref()?;
        Some(match (v4, v6) {
            (true, false) => "only IPv4 addresses",
            (false, true) => "only IPv6 addresses",
            _ => "addresses of both versions",
        })
    };
    let mut parts = Vec::new();
    if let Some(v) = r.ip_version {
        parts.push(format!(
            "ip_version = \"{}\"",
            if v == IpVersion::V4 { "v4" } else { "v6" }
        ));
    }
    for (c, field) in [(&r.remote_addr, "remote"), (&r.local_addr, "local")] {
        if let Some(h) = has(c) {
            let what =
                set_name(c).map_or_else(|| field.to_string(), |n| format!("{field} (set `{n}`)"));
            parts.push(format!("{what} has {h}"));
        }
    }
    format!("no IP version satisfies all of: {}", parts.join(", "))
}

/// Adds the warnings about `policy` to `p`.
pub(super) fn lint(p: &mut Parser<'_>, policy: &Policy, rules: &[RuleSource], sets: &[SetSource]) {
    let defaults = format!(
        "outbound {}, inbound {}",
        policy.default_outbound.as_str(),
        policy.default_inbound.as_str()
    );
    if policy.rules.is_empty() {
        let d = super::Diagnostic::file_error(
            &p.pos.file,
            format!(
                "the policy has no rules: every connection gets the default action ({defaults})"
            ),
        )
        .warning("empty_policy");
        p.diags.push(d);
    }
    for (s, src) in policy.sets.iter().zip(sets) {
        if s.entries.is_empty() {
            let message = match &src.list_file {
                Some(f) => format!("set `{}`: list file `{f}` has no entries: rules that refer to it match nothing", s.name),
                None => format!("set `{}` is empty: rules that refer to it match nothing", s.name),
            };
            p.warn(&src.value, "empty_set", message);
        }
    }
    let line =
        |p: &Parser<'_>, i: usize| rules.get(i).map_or(0, |r| p.pos.line_col(r.span.start).0);
    let findings = analyse(policy);
    for (j, (r, finding)) in policy.rules.iter().zip(&findings).enumerate() {
        let Some(src) = rules.get(j) else { continue };
        if let Some(i) = policy
            .rules
            .get(..j)
            .and_then(|b| b.iter().position(|x| x.id == r.id))
        {
            let at = src.id_span.clone().unwrap_or_else(|| src.span.clone());
            let message = format!(
                "rule id {} is also the id of the rule at line {}: tools and SIEM rules that match on ids (ETW `RuleId`) cannot tell them apart",
                r.id,
                line(p, i)
            );
            p.warn(&at, "duplicate_id", message);
        }
        match finding {
            Finding::Reachable | Finding::Disabled => {}
            Finding::Never => {
                let message = format!("rule {} can never match: {}", r.id, never_reason(policy, r));
                p.warn(&src.span, "never_matches", message);
            }
            Finding::ShadowedBy(i) => {
                let Some(o) = policy.rules.get(*i) else {
                    continue;
                };
                let message = format!(
                    "rule {} is never reached: the rule at line {} (id {}, {}) matches every connection it matches{}",
                    r.id,
                    line(p, *i),
                    o.id,
                    o.action.as_str(),
                    if o.action == r.action { "" } else { ", with the other action" }
                );
                p.warn(&src.span, "shadowed", message);
            }
        }
    }
}

/// What the analysis found about one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Finding {
    /// Some connection may reach and match it.
    Reachable,
    /// `enabled = false`: it matches nothing, on purpose.
    Disabled,
    /// No connection matches it.
    Never,
    /// The rule at this index matches every connection it matches.
    ShadowedBy(usize),
}

/// One finding per rule of `policy`.
pub(super) fn analyse(policy: &Policy) -> Vec<Finding> {
    let mut out = Vec::with_capacity(policy.rules.len());
    let mut reachable: Vec<usize> = Vec::new();
    for (j, r) in policy.rules.iter().enumerate() {
        if !r.enabled {
            out.push(Finding::Disabled);
            continue;
        }
        let vs = versions(policy, r);
        if vs.is_empty() {
            out.push(Finding::Never);
            continue;
        }
        let by = reachable.iter().copied().find(|i| {
            policy
                .rules
                .get(*i)
                .is_some_and(|o| shadows(policy, o, r, &vs))
        });
        match by {
            Some(i) => out.push(Finding::ShadowedBy(i)),
            None => {
                out.push(Finding::Reachable);
                reachable.push(j);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weir_policy::reference::rule_matches;
    use weir_policy_testing::{arb_policy, arb_query_near};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// No false "shadowed" or "never matches": every connection a shadowed rule matches
        /// is matched by the rule said to shadow it; a "never" rule matches no connection.
        #[test]
        fn findings_are_never_false(
            (p, qs) in arb_policy(12).prop_flat_map(|p| {
                let qs = proptest::collection::vec(arb_query_near(&p), 64);
                (Just(p), qs)
            })
        ) {
            let f = analyse(&p);
            for q in &qs {
                let q = q.as_query();
                for (j, finding) in f.iter().enumerate() {
                    let Some(r) = p.rules.get(j) else { continue };
                    if !rule_matches(&p, r, &q) {
                        continue;
                    }
                    match finding {
                        Finding::Reachable => {}
                        Finding::Disabled => prop_assert!(false, "disabled rule {} matched {:?}", j, q),
                        Finding::Never => prop_assert!(false, "rule {} matched {:?}", j, q),
                        Finding::ShadowedBy(i) => {
                            let o = p.rules.get(*i);
                            prop_assert!(o.is_some_and(|o| rule_matches(&p, o, &q)), "rule {} does not cover {} for {:?}", i, j, q);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn some_shadowing_is_found_in_random_policies() {
        // The property above could pass by finding nothing: make sure the search finds some.
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut found = 0;
        for _ in 0..200 {
            let p = arb_policy(12)
                .new_tree(&mut runner)
                .map(|t| t.current())
                .ok();
            found += p.map_or(0, |p| {
                analyse(&p)
                    .iter()
                    .filter(|f| matches!(f, Finding::ShadowedBy(_)))
                    .count()
            });
        }
        assert!(found > 0);
    }

    #[test]
    fn coverage_merges_adjacent_ranges_and_finds_gaps() {
        assert!(covered(&[(5, 15)], &[(0, 9), (10, 20)]));
        assert!(!covered(&[(5, 15)], &[(0, 9), (11, 20)]));
        assert!(covered(&[], &[]));
        assert!(!covered(&[(0, 0)], &[]));
        assert!(covered(&[(0, u128::MAX)], &[(0, u128::MAX)]));
    }
}
