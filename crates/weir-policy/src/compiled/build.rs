//! Building one partition: the plans of each rule's conditions and its entries.


use alloc::vec::Vec;

use super::word::{hull_prefix, merge_ranges, split_range, Word};
use super::{oom, push, AppMeta, CompileError, Entry, Partition, Pred, Residual, SetIndex, Span, NONE};
use crate::{AddrCond, Direction, IpVersion, Policy, PortCond, Rule};

/// One alternative of an address dimension: a prefix (value, length).
type Prefix<W> = (W, u8);

/// How one address condition becomes keys and a predicate in a partition.
struct AddrPlan<W> {
    alts: Vec<Prefix<W>>,
    pred: Pred,
}

/// How one port condition becomes ranges and a predicate.
struct PortPlan {
    alts: Vec<(u16, u16)>,
    pred: Span,
}

pub(super) struct BuildEntry<W> {
    pub(super) e: Entry<W>,
    pub(super) la: u8,
    pub(super) lb: u8,
    pub(super) p: bool,
    pub(super) rp: bool,
    pub(super) lp: bool,
    /// Folded hash of the rule's application, if it has one.
    pub(super) app: Option<u64>,
}

/// Plans a port condition into `plan` (its vector reused from rule to rule).
fn port_plan(c: &Option<PortCond>, ports: &mut Vec<(u16, u16)>, expand: usize, plan: &mut PortPlan) -> Result<(), CompileError> {
    let alts = &mut plan.alts;
    alts.clear();
    plan.pred = Span::default();
    let Some(c) = c else {
        push(alts, (0u16, u16::MAX))?;
        return Ok(());
    };
    alts.try_reserve(c.ranges.len()).map_err(oom)?;
    alts.extend_from_slice(&c.ranges);
    merge_ranges(alts, |x: u16| x.checked_add(1));
    if alts.len() <= expand {
        return Ok(());
    }
    let start = ports.len() as u32;
    ports.try_reserve(alts.len()).map_err(oom)?;
    ports.extend_from_slice(alts);
    plan.pred = Span { start, len: alts.len() as u32 };
    let lo = alts.first().map_or(0, |r| r.0);
    let hi = alts.last().map_or(u16::MAX, |r| r.1);
    alts.clear();
    alts.push((lo, hi));
    Ok(())
}

/// Plans an address condition for partition version `W` into `plan` (its vector, and the
/// scratch `merged`, reused from rule to rule); `false` when it cannot match any address of
/// that version.
fn addr_plan<W: Word>(
    c: &Option<AddrCond>,
    sets: &SetIndex<W>,
    ranges: &mut Vec<(W, W)>,
    expand: usize,
    plan: &mut AddrPlan<W>,
    merged: &mut Vec<(W, W)>,
) -> Result<bool, CompileError> {
    let alts = &mut plan.alts;
    alts.clear();
    plan.pred = Pred::Any;
    merged.clear();
    let set = match c {
        None => {
            push(alts, (W::default(), 0))?;
            return Ok(true);
        }
        Some(AddrCond::Ranges(rs)) => {
            merged.try_reserve(rs.len()).map_err(oom)?;
            merged.extend(rs.iter().filter_map(W::range));
            merge_ranges(merged, W::succ);
            None
        }
        Some(AddrCond::Set(i)) => {
            let s = sets.set(*i);
            if s.len() > expand {
                // Large set: hull key + predicate on the set index; no copy.
                let (Some(first), Some(last)) = (s.first(), s.last()) else { return Ok(false) };
                push(alts, hull_prefix(first.0, last.1))?;
                plan.pred = Pred::Set(*i);
                return Ok(true);
            }
            merged.try_reserve(s.len()).map_err(oom)?;
            merged.extend_from_slice(s);
            Some(*i)
        }
    };
    let (Some(first), Some(last)) = (merged.first().copied(), merged.last().copied()) else {
        return Ok(false);
    };
    let mut count = 0usize;
    for (lo, hi) in merged.iter() {
        count += split_range(*lo, *hi, expand, None);
        if count > expand {
            break;
        }
    }
    if count <= expand {
        alts.try_reserve(count).map_err(oom)?;
        for (lo, hi) in merged.iter() {
            split_range(*lo, *hi, expand, Some(&mut |v, len| alts.push((v, len))));
        }
        return Ok(true);
    }
    push(alts, hull_prefix(first.0, last.1))?;
    plan.pred = match set {
        Some(i) => Pred::Set(i),
        None => {
            let start = ranges.len() as u32;
            ranges.try_reserve(merged.len()).map_err(oom)?;
            ranges.extend_from_slice(merged);
            Pred::Ranges(Span { start, len: merged.len() as u32 })
        }
    };
    Ok(true)
}

/// Collapses a plan to its hull + predicate (when the rule's alternatives multiply too much).
fn collapse_addr<W: Word>(plan: &mut AddrPlan<W>, ranges: &mut Vec<(W, W)>) -> Result<(), CompileError> {
    if plan.alts.len() <= 1 {
        return Ok(());
    }
    // The alternatives are exactly the prefixes of the merged ranges, in order.
    let start = ranges.len() as u32;
    ranges.try_reserve(plan.alts.len()).map_err(oom)?;
    for (v, len) in &plan.alts {
        ranges.push((*v, v.or(W::mask(*len).not())));
    }
    let (Some(first), Some(last)) = (plan.alts.first().copied(), plan.alts.last().copied()) else {
        return Ok(());
    };
    let hi = last.0.or(W::mask(last.1).not());
    // Prefixes from adjacent splits may touch; merge the stored copy.
    let mut stored: Vec<(W, W)> = Vec::new();
    stored.try_reserve(plan.alts.len()).map_err(oom)?;
    stored.extend(ranges.drain(start as usize..));
    merge_ranges(&mut stored, W::succ);
    ranges.extend_from_slice(&stored);
    let pred = match plan.pred {
        Pred::Set(i) => Pred::Set(i),
        _ => Pred::Ranges(Span { start, len: stored.len() as u32 }),
    };
    plan.alts.clear();
    plan.alts.push(hull_prefix(first.0, hi));
    plan.pred = pred;
    Ok(())
}

fn collapse_port(plan: &mut PortPlan, ports: &mut Vec<(u16, u16)>) -> Result<(), CompileError> {
    if plan.alts.len() <= 1 {
        return Ok(());
    }
    let start = ports.len() as u32;
    ports.try_reserve(plan.alts.len()).map_err(oom)?;
    ports.extend_from_slice(&plan.alts);
    plan.pred = Span { start, len: plan.alts.len() as u32 };
    let lo = plan.alts.first().map_or(0, |r| r.0);
    let hi = plan.alts.last().map_or(u16::MAX, |r| r.1);
    plan.alts.clear();
    plan.alts.push((lo, hi));
    Ok(())
}

/// Whether `r` can match in the partition `(d, v)`; a disabled rule gets no entry anywhere.
fn rule_applies(r: &Rule, d: Direction, v: IpVersion) -> bool {
    r.enabled
        && r.direction.is_none_or(|x| x == d) && r.ip_version.is_none_or(|x| x == v)
}

/// A partition with its residual predicates, and its entries in rule order, not yet placed.
pub(super) type Built<W> = (Partition<W>, Vec<BuildEntry<W>>);

/// Builds a partition's residuals and entries ([`Built`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn build_partition<W: Word>(
    p: &Policy,
    d: Direction,
    v: IpVersion,
    sets: &SetIndex<W>,
    rule_app: &[u32],
    app_meta: &[AppMeta],
    expand: usize,
    budget: &mut usize,
) -> Result<Option<Built<W>>, CompileError> {
    let mut part: Partition<W> = Partition::default();
    let mut items: Vec<BuildEntry<W>> = Vec::new();
    // The plans' vectors are reused from rule to rule (no allocation per rule).
    let mut ra = AddrPlan { alts: Vec::new(), pred: Pred::Any };
    let mut la = AddrPlan { alts: Vec::new(), pred: Pred::Any };
    let mut rp = PortPlan { alts: Vec::new(), pred: Span::default() };
    let mut lp = PortPlan { alts: Vec::new(), pred: Span::default() };
    let mut merged: Vec<(W, W)> = Vec::new();
    for (ri, r) in p.rules.iter().enumerate() {
        if !rule_applies(r, d, v) {
            continue;
        }
        if !addr_plan(&r.remote_addr, sets, &mut part.ranges, expand, &mut ra, &mut merged)? {
            continue;
        }
        if !addr_plan(&r.local_addr, sets, &mut part.ranges, expand, &mut la, &mut merged)? {
            continue;
        }
        port_plan(&r.remote_port, &mut part.ports, expand, &mut rp)?;
        port_plan(&r.local_port, &mut part.ports, expand, &mut lp)?;
        // Keep the product of alternatives within `expand` by collapsing the widest dimension.
        loop {
            let n = [ra.alts.len(), la.alts.len(), rp.alts.len(), lp.alts.len()];
            if n.iter().try_fold(1usize, |acc, x| acc.checked_mul(*x)).is_some_and(|prod| prod <= expand) {
                break;
            }
            let widest = n.iter().enumerate().max_by_key(|(_, x)| **x).map_or(0, |(i, _)| i);
            match widest {
                0 => collapse_addr(&mut ra, &mut part.ranges)?,
                1 => collapse_addr(&mut la, &mut part.ranges)?,
                2 => collapse_port(&mut rp, &mut part.ports)?,
                _ => collapse_port(&mut lp, &mut part.ports)?,
            }
        }
        let app = rule_app.get(ri).copied().unwrap_or(NONE);
        let app_hash = app_meta.get(app as usize).map(|m| m.hash);
        let residual = if app == NONE
            && matches!(ra.pred, Pred::Any)
            && matches!(la.pred, Pred::Any)
            && rp.pred.len == 0
            && lp.pred.len == 0
        {
            NONE
        } else {
            let i = part.residuals.len() as u32;
            push(
                &mut part.residuals,
                Residual { app, remote: ra.pred, local: la.pred, remote_port: rp.pred, local_port: lp.pred },
            )?;
            i
        };
        let count = ra.alts.len() * la.alts.len() * rp.alts.len() * lp.alts.len();
        if count > *budget {
            return Ok(None);
        }
        *budget -= count;
        items.try_reserve(count).map_err(oom)?;
        for &(rv, rl) in &ra.alts {
            for &(lv, ll) in &la.alts {
                for &(rplo, rphi) in &rp.alts {
                    for &(lplo, lphi) in &lp.alts {
                        items.push(BuildEntry {
                            e: Entry {
                                r_val: rv,
                                r_mask: W::mask(rl),
                                l_val: lv,
                                l_mask: W::mask(ll),
                                rule: ri as u32,
                                residual,
                                rp_lo: rplo,
                                rp_hi: rphi,
                                lp_lo: lplo,
                                lp_hi: lphi,
                                proto: r.protocol.unwrap_or(0),
                                proto_any: r.protocol.is_none(),
                                loopback: match r.loopback {
                                    None => 0,
                                    Some(false) => 1,
                                    Some(true) => 2,
                                },
                            },
                            la: rl,
                            lb: ll,
                            p: r.protocol.is_some(),
                            rp: rplo == rphi,
                            lp: lplo == lphi,
                            app: app_hash,
                        });
                    }
                }
            }
        }
    }
    Ok(Some((part, items)))
}
