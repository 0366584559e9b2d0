//! Merging tables after the assignment: fewer tables, never more probes.
//!
//! A lookup probes every table whose best rule is better than its final match, so a table whose
//! entries could live in an earlier table under a slightly wider tuple costs a probe to every
//! lookup that gets past it, and saves nothing. Merging table B into table A (under the widest
//! tuple both fit, their *meet*) gives one table whose best rule is A's: lookups that reached A
//! probe it as before, and those that also reached B save that probe. The only cost is longer
//! buckets, so a merge is made only when no key of the merged table then holds more than the
//! partition's per-key cap. ClassBench's ipc1 shows why it matters: rules with a long remote
//! prefix and no local one are interleaved with rules of the opposite shape, so each run of the
//! assignment ends early and the assignment leaves a dozen small tables of one shape (remote
//! /31, /30, /29, ...), each with a best rule in the middle of the policy.

use alloc::vec::Vec;

use super::{salt, Counts, Plan};
use crate::compiled::build::BuildEntry;
use crate::compiled::word::Word;
use crate::compiled::{oom, CompileError, NONE};

/// Entries the merge checks may re-key, per entry of the partition, and at least
/// [`MIN_WORK`] in all: bounds the compile time (a check re-keys both tables' entries under
/// the candidate tuple until a key overflows; a family of k tables merged one by one re-keys
/// the growing table k times). Once it is spent, no more merges are tried.
const WORK_PER_ENTRY: usize = 4;
const MIN_WORK: usize = 1 << 16;

/// Candidates per table whose check re-keys both tables (their tuples differ).
const REKEY_TRIES: usize = 4;


/// Entries a merge may add to the expected bucket scan of a query aimed at one of its entries.
const EXTRA_ENTRIES: u64 = 1;

fn zeroed(n: usize) -> Result<Vec<u32>, CompileError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(oom)?;
    v.resize(n, 0);
    Ok(v)
}

/// Merges, in order of their best rule, each table into the first earlier table (candidates
/// tried most specific meet first) whose meet with it keeps every key at most `merge_cap`
/// entries and some key bits, within a work budget; then renumbers the plan's tables.
pub(super) fn merge_tables<W: Word>(
    items: &[BuildEntry<W>],
    merge_cap: u32,
    pl: &mut Plan,
) -> Result<(), CompileError> {
    let t = pl.specs.len();
    if t < 2 {
        return Ok(());
    }
    // Entries of each table, in rule order (CSR).
    let mut start = zeroed(t + 1)?;
    for &a in &pl.assign {
        if let Some(c) = start.get_mut(a as usize + 1) {
            *c += 1;
        }
    }
    for i in 1..start.len() {
        let prev = start.get(i - 1).copied().unwrap_or(0);
        if let Some(c) = start.get_mut(i) {
            *c += prev;
        }
    }
    let mut fill: Vec<u32> = Vec::new();
    fill.try_reserve_exact(t).map_err(oom)?;
    fill.extend(start.iter().take(t).copied());
    let mut by_table = zeroed(items.len())?;
    for (ix, &a) in pl.assign.iter().enumerate() {
        let Some(f) = fill.get_mut(a as usize) else { continue };
        if let Some(d) = by_table.get_mut(*f as usize) {
            *d = ix as u32;
        }
        *f += 1;
    }
    let members = |si: usize| -> &[u32] {
        let (s, e) = (start.get(si).copied().unwrap_or(0), start.get(si + 1).copied().unwrap_or(0));
        by_table.get(s as usize..e as usize).unwrap_or(&[])
    };
    // Groups: a merged table is a list of original tables (`next`), named by its first (`lead`).
    let mut lead: Vec<u32> = Vec::new();
    lead.try_reserve_exact(t).map_err(oom)?;
    lead.extend(0..t as u32);
    let mut next: Vec<u32> = Vec::new();
    next.try_reserve_exact(t).map_err(oom)?;
    next.resize(t, NONE);
    // Last table of each group (a clone would allocate infallibly).
    let mut last: Vec<u32> = Vec::new();
    last.try_reserve_exact(t).map_err(oom)?;
    last.extend(0..t as u32);
    let mut size: Vec<u32> = Vec::new();
    size.try_reserve_exact(t).map_err(oom)?;
    size.extend((0..t).map(|si| members(si).len() as u32));
    let mut order: Vec<usize> = Vec::new();
    order.try_reserve_exact(t).map_err(oom)?;
    order.extend(0..t);
    order.sort_unstable_by_key(|&si| (pl.min_rule.get(si).copied().unwrap_or(NONE), si));
    let mut cands: Vec<(u32, usize)> = Vec::new();
    cands.try_reserve_exact(t).map_err(oom)?;
    let mut budget = items.len().saturating_mul(WORK_PER_ENTRY).max(MIN_WORK);
    // Sum of squared key counts of each table (the sum over its entries of its key's count).
    let mut sq: Vec<u64> = Vec::new();
    sq.try_reserve_exact(t).map_err(oom)?;
    sq.resize(t, 0);
    for (ix, &a) in pl.assign.iter().enumerate() {
        let (Some(it), Some(s)) = (items.get(ix), pl.specs.get(a as usize)) else { continue };
        let c = pl.counts.get(s.key(it) ^ salt(a as usize));
        if let Some(q) = sq.get_mut(a as usize) {
            *q += u64::from(c);
        }
    }
    // The salt under which `pl.counts` holds each group's key counts for its current tuple:
    // the assignment's own at first; a merge that widens a group re-enters its keys under a
    // fresh salt, so that later merges into it need only key the joining table.
    let mut gsalt: Vec<u64> = Vec::new();
    gsalt.try_reserve_exact(t).map_err(oom)?;
    gsalt.extend((0..t).map(salt));
    let mut scratch = Counts::new();

    for (pos, &b) in order.iter().enumerate().skip(1) {
        let Some(&sb) = pl.specs.get(b) else { continue };
        // Earlier groups, most specific meet first (ties: the earlier table).
        cands.clear();
        for (rank, &a) in order.iter().take(pos).enumerate() {
            if lead.get(a).copied() != Some(a as u32) {
                continue;
            }
            let Some(sa) = pl.specs.get(a) else { continue };
            let m = sa.meet_spec(&sb);
            if m.score() > 0 {
                // Within the capacity reserved above (fewer than t candidates).
                cands.push((u32::MAX - (m.score() << 16 | (0xFFFF - rank.min(0xFFFF) as u32)), a));
            }
        }
        cands.sort_unstable();
        let mut rekeys = 0usize;
        for &(_, a) in cands.iter() {
            let (Some(&sa), Some(&na), Some(&nb)) = (pl.specs.get(a), size.get(a), size.get(b)) else { continue };
            let m = sa.meet_spec(&sb);
            // `pl.counts` holds group a's keys for its tuple: if b's entries fit it, only they
            // need keying.
            let cheap = m == sa;
            // Checks that re-key both tables mostly fail (the wider tuple overflows) and cost
            // the most: only the most specific few are tried.
            if !cheap {
                if rekeys == REKEY_TRIES {
                    continue;
                }
                rekeys += 1;
            }
            let ga = gsalt.get(a).copied().unwrap_or(0);
            let work = if cheap { nb as usize } else { (na + nb) as usize };
            if budget == 0 {
                break;
            }
            // Most failing checks fail early: size the map small and let it grow.
            scratch.reset_for(work.min(4096))?;
            let mut ok = true;
            let mut sq_m: u64;
            let mut keys_m: u32;
            if cheap {
                sq_m = sq.get(a).copied().unwrap_or(0);
                keys_m = pl.keys.get(a).copied().unwrap_or(0);
                for &ix in members(b) {
                    let Some(it) = items.get(ix as usize) else { continue };
                    budget = budget.saturating_sub(1);
                    if budget == 0 {
                        ok = false;
                        break;
                    }
                    let k = m.key(it);
                    let in_a = pl.counts.get(k ^ ga);
                    let c = in_a + scratch.inc(k)?;
                    if c > merge_cap {
                        ok = false;
                        break;
                    }
                    if c == 1 {
                        keys_m += 1;
                    }
                    sq_m += 2 * u64::from(c) - 1;
                }
            } else {
                sq_m = 0;
                'check: for group in [a as u32, b as u32] {
                    let mut g = group;
                    while g != NONE {
                        for &ix in members(g as usize) {
                            let Some(it) = items.get(ix as usize) else { continue };
                            budget = budget.saturating_sub(1);
                            if budget == 0 {
                                ok = false;
                                break 'check;
                            }
                            let c = scratch.inc(m.key(it))?;
                            if c > merge_cap {
                                ok = false;
                                break 'check;
                            }
                            sq_m += 2 * u64::from(c) - 1;
                        }
                        g = next.get(g as usize).copied().unwrap_or(NONE);
                    }
                }
                keys_m = scratch.used as u32;
            }
            // Longer buckets: the sum of squared key counts is what queries aimed at the
            // entries scan; allow EXTRA_ENTRIES more per entry (a probe saved is worth about
            // five entries checked).
            let before = sq.get(a).copied().unwrap_or(0) + sq.get(b).copied().unwrap_or(0);
            if !ok || sq_m.saturating_sub(before) > EXTRA_ENTRIES * u64::from(na + nb) {
                continue;
            }
            if let Some(q) = sq.get_mut(a) {
                *q = sq_m;
            }
            // Merge b's group (b alone: later tables only join earlier ones) into a's.
            if let Some(s) = pl.specs.get_mut(a) {
                *s = m;
            }
            if let Some(k) = pl.keys.get_mut(a) {
                *k = keys_m;
            }
            let mb = pl.min_rule.get(b).copied().unwrap_or(NONE);
            if let Some(r) = pl.min_rule.get_mut(a) {
                *r = (*r).min(mb);
            }
            let la = last.get(a).copied().unwrap_or(a as u32);
            if let Some(n) = next.get_mut(la as usize) {
                *n = b as u32;
            }
            let lb = last.get(b).copied().unwrap_or(b as u32);
            if let Some(l) = last.get_mut(a) {
                *l = lb;
            }
            if let Some(s) = size.get_mut(a) {
                *s += nb;
            }
            let mut g = b as u32;
            while g != NONE {
                if let Some(l) = lead.get_mut(g as usize) {
                    *l = a as u32;
                }
                g = next.get(g as usize).copied().unwrap_or(NONE);
            }
            // Keep `pl.counts` current for the merged group: b's keys under a's salt, or, if
            // the tuple widened, the whole group's under a fresh one.
            let (from, into) = if cheap {
                (b as u32, ga)
            } else {
                let fresh = salt(t + pl.merge_salts);
                pl.merge_salts += 1;
                (a as u32, fresh)
            };
            let mut g = from;
            while g != NONE {
                for &ix in members(g as usize) {
                    let Some(it) = items.get(ix as usize) else { continue };
                    pl.counts.inc(m.key(it) ^ into)?;
                    budget = budget.saturating_sub(1);
                }
                g = next.get(g as usize).copied().unwrap_or(NONE);
            }
            if let Some(s) = gsalt.get_mut(a) {
                *s = into;
            }
            break;
        }
    }

    // Renumber: surviving groups keep their order; entries follow their group.
    let mut new_index = zeroed(t)?;
    let mut kept = 0usize;
    for si in 0..t {
        if lead.get(si).copied() == Some(si as u32) {
            if let Some(n) = new_index.get_mut(si) {
                *n = kept as u32;
            }
            let (s, k, r) = (pl.specs.get(si).copied(), pl.keys.get(si).copied(), pl.min_rule.get(si).copied());
            if let (Some(s), Some(k), Some(r)) = (s, k, r) {
                if let Some(d) = pl.specs.get_mut(kept) {
                    *d = s;
                }
                if let Some(d) = pl.keys.get_mut(kept) {
                    *d = k;
                }
                if let Some(d) = pl.min_rule.get_mut(kept) {
                    *d = r;
                }
            }
            kept += 1;
        }
    }
    if kept == t {
        return Ok(());
    }
    pl.specs.truncate(kept);
    pl.keys.truncate(kept);
    pl.min_rule.truncate(kept);
    for a in pl.assign.iter_mut() {
        let l = lead.get(*a as usize).copied().unwrap_or(0);
        *a = new_index.get(l as usize).copied().unwrap_or(0);
    }
    Ok(())
}
