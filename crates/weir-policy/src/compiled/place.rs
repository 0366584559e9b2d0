//! Placement: which table each entry goes into, and the final arrays.

use alloc::vec::Vec;

mod counts;
mod merge;

use counts::Counts;

use super::build::BuildEntry;
use super::estimate::{estimate, sample_probes};
use super::word::Word;
use super::{key_hash, oom, push, small_key, with_app, CompileError, Entry, Partition, Table, BUCKET_LIMIT, NONE, SLOTS_PER_KEY};

#[derive(Clone, Copy, PartialEq, Eq)]
struct Spec {
    a: u8,
    b: u8,
    p: bool,
    rp: bool,
    lp: bool,
    /// The application hash is keyed.
    ap: bool,
}

impl Spec {
    fn score(&self) -> u32 {
        u32::from(self.a)
            + u32::from(self.b)
            + 8 * u32::from(self.p)
            + 16 * u32::from(self.rp)
            + 16 * u32::from(self.lp)
            + 16 * u32::from(self.ap)
    }
    fn fits<W>(&self, e: &BuildEntry<W>) -> bool {
        self.a <= e.la
            && self.b <= e.lb
            && (!self.p || e.p)
            && (!self.rp || e.rp)
            && (!self.lp || e.lp)
            && (!self.ap || e.app.is_some())
    }
    fn small_mask(&self) -> u64 {
        small_key(if self.p { 0xFF } else { 0 }, if self.rp { 0xFFFF } else { 0 }, if self.lp { 0xFFFF } else { 0 })
    }
    fn key<W: Word>(&self, it: &BuildEntry<W>) -> u64 {
        let e = &it.e;
        let k = key_hash(
            e.r_val.and(W::mask(self.a)).fold64(),
            e.l_val.and(W::mask(self.b)).fold64(),
            small_key(e.proto, e.rp_lo, e.lp_lo) & self.small_mask(),
        );
        match (self.ap, it.app) {
            (true, Some(h)) => with_app(k, h),
            _ => k,
        }
    }
}

fn relax(len: u8, bits: u8) -> u8 {
    let step = if bits == 32 { 8 } else { 16 };
    len - len % step
}

/// Tables per partition the priority-run phase may make; the entries left after it are placed
/// greedily (most specific fitting table, else a new coarse or exact one, else overflow).
const RUN_TABLES: usize = 24;

fn salt(si: usize) -> u64 {
    (si as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

impl Spec {
    fn exact<W>(e: &BuildEntry<W>) -> Spec {
        Spec { a: e.la, b: e.lb, p: e.p, rp: e.rp, lp: e.lp, ap: e.app.is_some() }
    }
    /// The most specific tuple both `self` and `e` fit.
    fn meet<W>(&self, e: &BuildEntry<W>) -> Spec {
        self.meet_spec(&Spec::exact(e))
    }
    /// The most specific tuple every entry of `self` and of `o` fits.
    fn meet_spec(&self, o: &Spec) -> Spec {
        Spec {
            a: self.a.min(o.a),
            b: self.b.min(o.b),
            p: self.p && o.p,
            rp: self.rp && o.rp,
            lp: self.lp && o.lp,
            ap: self.ap && o.ap,
        }
    }
}

/// One candidate assignment of a partition's entries to tables.
struct Plan {
    specs: Vec<Spec>,
    keys: Vec<u32>,
    min_rule: Vec<u32>,
    assign: Vec<u32>,
    counts: Counts,
    /// The run search's scratch: key counts of one candidate tuple, and the chain of candidate
    /// tuples with the position in `rest` where each first applies.
    scratch: Counts,
    chain: Vec<(Spec, u32)>,
    /// Fresh salts the merges have used since the assignment (their keys stay apart).
    merge_salts: usize,
}

impl Plan {
    fn new() -> Plan {
        Plan {
            specs: Vec::new(),
            keys: Vec::new(),
            min_rule: Vec::new(),
            assign: Vec::new(),
            counts: Counts::new(),
            scratch: Counts::new(),
            chain: Vec::new(),
            merge_salts: 0,
        }
    }

    /// Empties the plan for `n` entries, keeping its allocations.
    fn reset(&mut self, n: usize) -> Result<(), CompileError> {
        self.specs.clear();
        self.keys.clear();
        self.min_rule.clear();
        self.assign.clear();
        self.assign.try_reserve_exact(n).map_err(oom)?;
        self.assign.resize(n, NONE);
        self.counts.clear();
        self.merge_salts = 0;
        Ok(())
    }

    fn new_spec(&mut self, s: Spec, rule: u32) -> Result<usize, CompileError> {
        let si = self.specs.len();
        push(&mut self.specs, s)?;
        push(&mut self.keys, 0)?;
        push(&mut self.min_rule, rule)?;
        Ok(si)
    }

    /// Puts item `ix` (whose key in table `si` is `k`) into that table.
    fn add(&mut self, si: usize, k: u64, ix: usize) -> Result<(), CompileError> {
        let c = self.counts.inc(k ^ salt(si))?;
        if c == 1 {
            if let Some(c) = self.keys.get_mut(si) {
                *c += 1;
            }
        }
        if let Some(a) = self.assign.get_mut(ix) {
            *a = si as u32;
        }
        Ok(())
    }
}

/// Length of the run of `rest` that tuple `spec` takes under per-key cap `cap`, scanning at
/// most `limit` entries (all of which fit `spec`): the index of the first entry whose key would
/// then hold more than `cap` entries, or `limit`.
fn run_under<W: Word>(
    items: &[BuildEntry<W>],
    rest: &[u32],
    spec: Spec,
    limit: usize,
    cap: u32,
    scratch: &mut Counts,
) -> Result<usize, CompileError> {
    scratch.reset_for(limit)?;
    for (i, &ix) in rest.iter().take(limit).enumerate() {
        let Some(it) = items.get(ix as usize) else { continue };
        if scratch.inc(spec.key(it))? > cap {
            return Ok(i);
        }
    }
    Ok(limit.min(rest.len()))
}

/// The tuple of the next table: of the *chain* of tuples met going down `rest` in priority
/// order (the first entry's exact tuple, narrowed to the tuple both fit at each entry that does
/// not fit it, as long as some key bits remain), the one that takes the longest unbroken run of
/// `rest` from its start with no key over `cap` (TupleMerge-Offline's choice; on a tie, the
/// narrower tuple).
///
/// Tuple `j` of the chain first applies at position `s[j]` and fits every entry before
/// `s[j+1]`, so its run is `min(s[j+1], o[j])` where `o[j]` is the first position a key
/// overflows. Along the chain `s` grows and `o` can only shrink (a wider tuple merges keys,
/// never splits them), so "`o[j] < s[j+1]`" is false, then true: a binary search finds the
/// switch `j*`, and the best run is that of `j* - 1` or `j*`. Each evaluation scans at most the
/// best run (and is cut at `s[j+1]`), so a table costs O(log chain × run), not TupleMerge's
/// O(chain × entries).
fn next_spec<W: Word>(items: &[BuildEntry<W>], rest: &[u32], cap: u32, pl: &mut Plan) -> Result<Spec, CompileError> {
    pl.chain.clear();
    let Some(first) = rest.first().and_then(|&i| items.get(i as usize)) else {
        return Err(CompileError::OutOfMemory); // unreachable: the caller passes a non-empty rest
    };
    let mut cur = Spec::exact(first);
    push(&mut pl.chain, (cur, 0))?;
    for (i, &ix) in rest.iter().enumerate().skip(1) {
        let Some(it) = items.get(ix as usize) else { continue };
        if !cur.fits(it) {
            let w = cur.meet(it);
            // A tuple without key bits holds `cap` entries in all: never widen to one.
            if w.score() == 0 {
                break;
            }
            cur = w;
            push(&mut pl.chain, (w, i as u32))?;
        }
    }
    let chain_end = |pl: &Plan, j: usize| -> usize {
        pl.chain.get(j + 1).map_or(rest.len(), |&(_, s)| s as usize)
    };
    // Smallest j with o[j] < s[j+1] (the overflow comes before the chain moves on), or the
    // chain's length if there is none; keep each evaluated run.
    let (mut lo, mut hi) = (0usize, pl.chain.len());
    let mut run_at_switch = 0usize;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (spec, _) = pl.chain.get(mid).copied().unwrap_or((cur, 0));
        let end = chain_end(pl, mid);
        let run = run_under(items, rest, spec, end, cap, &mut pl.scratch)?;
        if run < end {
            hi = mid;
            run_at_switch = run;
        } else {
            lo = mid + 1;
        }
    }
    let j = lo;
    // The longest run is that of j - 1 (its whole chain segment, no overflow) or of j (up to
    // its overflow).
    let before = j.checked_sub(1).map(|b| (b, chain_end(pl, b)));
    let at = (j < pl.chain.len()).then_some((j, run_at_switch));
    let longest = match (before, at) {
        (Some(b), Some(a)) if a.1 > b.1 => a,
        (Some(b), _) => b,
        (None, Some(a)) => a,
        (None, None) => (0, 0),
    };
    // A long run is worth having only if the table then holds much: a tuple with few key
    // bits can win the run (its few keys fill up at once) and hold nothing more, and a table
    // per handful of entries at the top of the policy costs every lookup a probe each. So the
    // run's candidates and the first entry's exact tuple are compared by the entries each
    // would take from the first `window` entries of the rest (twice the longest run, at least
    // WINDOW_MIN), and another candidate replaces the longest run only if it takes
    // TAKE_FACTOR times as many (on ClassBench's sets the longest run is the better choice
    // unless the difference is that large).
    let window = longest.1.saturating_mul(2).max(WINDOW_MIN).min(rest.len());
    // The longest run's tuple takes at least its run; no candidate takes more than the window.
    if longest.1.saturating_mul(TAKE_FACTOR) >= window {
        return Ok(pl.chain.get(longest.0).map_or(cur, |&(s, _)| s));
    }
    let first_spec = pl.chain.get(longest.0).map_or(cur, |c| c.0);
    let mut chosen = (longest.0, taken_in(items, rest, first_spec, window, cap, &mut pl.scratch)?);
    let mut to_beat = chosen.1.saturating_mul(TAKE_FACTOR);
    for cand in [before.map(|b| b.0), at.map(|a| a.0), Some(0)].into_iter().flatten() {
        if cand == longest.0 {
            continue;
        }
        let Some(&(spec, _)) = pl.chain.get(cand) else { continue };
        let n = taken_in(items, rest, spec, window, cap, &mut pl.scratch)?;
        if n > to_beat {
            chosen = (cand, n);
            to_beat = n;
        }
    }
    Ok(pl.chain.get(chosen.0).map_or(cur, |&(s, _)| s))
}

/// Entries of `rest[..window]` a table with tuple `spec` and per-key cap `cap` would take
/// (each entry that fits, while its key has room).
fn taken_in<W: Word>(
    items: &[BuildEntry<W>],
    rest: &[u32],
    spec: Spec,
    window: usize,
    cap: u32,
    scratch: &mut Counts,
) -> Result<usize, CompileError> {
    let w = window.min(rest.len());
    scratch.reset_for(w)?;
    let mut n = 0usize;
    for &ix in rest.iter().take(w) {
        let Some(it) = items.get(ix as usize) else { continue };
        if spec.fits(it) && scratch.get(spec.key(it)) < cap {
            scratch.inc(spec.key(it))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Least number of entries of the rest over which candidate tuples are compared.
const WINDOW_MIN: usize = 4096;

/// How many times as many entries another candidate must take as the longest run's tuple to
/// replace it.
const TAKE_FACTOR: usize = 4;

/// TupleMerge-Offline-style assignment with per-key cap `cap`: in priority order, each new table
/// takes the tuple ([`next_spec`]) that covers the longest unbroken run of the top-priority
/// unplaced entries, and then every later entry that fits with room. After [`RUN_TABLES`]
/// tables, the rest is placed greedily.
fn assign<W: Word>(items: &[BuildEntry<W>], cap: u32, pl: &mut Plan) -> Result<(), CompileError> {
    pl.reset(items.len())?;
    let mut rest: Vec<u32> = Vec::new();
    rest.try_reserve_exact(items.len()).map_err(oom)?;
    rest.extend(0..items.len() as u32);
    while pl.specs.len() < RUN_TABLES && !rest.is_empty() {
        let spec = next_spec(items, &rest, cap, pl)?;
        let first_rule = rest.first().and_then(|&i| items.get(i as usize)).map_or(NONE, |it| it.e.rule);
        let si = pl.new_spec(spec, first_rule)?;
        let mut kept = 0usize;
        for i in 0..rest.len() {
            let Some(&ix) = rest.get(i) else { break };
            let Some(it) = items.get(ix as usize) else { continue };
            if spec.fits(it) {
                let k = spec.key(it);
                if pl.counts.get(k ^ salt(si)) < cap {
                    pl.add(si, k, ix as usize)?;
                    continue;
                }
            }
            if let Some(slot) = rest.get_mut(kept) {
                *slot = ix;
            }
            kept += 1;
        }
        rest.truncate(kept);
    }

    // The rest, greedily: tables most specific first.
    let mut order: Vec<usize> = Vec::new();
    order.try_reserve(pl.specs.len()).map_err(oom)?;
    order.extend(0..pl.specs.len());
    // Unstable sort (no scratch buffer: no infallible allocation, no large stack array), made
    // deterministic by the index.
    order.sort_unstable_by_key(|&si| (core::cmp::Reverse(pl.specs.get(si).map_or(0, Spec::score)), si));
    for &ix in &rest {
        let Some(it) = items.get(ix as usize) else { continue };
        let mut chosen: Option<usize> = None;
        let mut fallback: Option<usize> = None;
        for &si in &order {
            let Some(s) = pl.specs.get(si) else { continue };
            if !s.fits(it) {
                continue;
            }
            if fallback.is_none() {
                fallback = Some(si);
            }
            if pl.counts.get(s.key(it) ^ salt(si)) < cap {
                chosen = Some(si);
                break;
            }
        }
        let si = match chosen {
            Some(si) => si,
            None => {
                let coarse =
                    Spec { a: relax(it.la, W::BITS), b: relax(it.lb, W::BITS), p: false, rp: false, lp: false, ap: false };
                let exact = Spec::exact(it);
                let new = if !pl.specs.contains(&coarse) {
                    Some(coarse)
                } else if !pl.specs.contains(&exact) {
                    Some(exact)
                } else {
                    None
                };
                match (new, fallback) {
                    (Some(s), _) => {
                        let si = pl.new_spec(s, it.e.rule)?;
                        let pos = order
                            .iter()
                            .position(|&o| pl.specs.get(o).map_or(0, Spec::score) < s.score())
                            .unwrap_or(order.len());
                        order.try_reserve(1).map_err(oom)?;
                        order.insert(pos, si);
                        si
                    }
                    (None, Some(f)) => f,
                    (None, None) => 0, // unreachable: the exact spec exists and fits
                }
            }
        };
        let Some(s) = pl.specs.get(si).copied() else { return Err(CompileError::OutOfMemory) };
        pl.add(si, s.key(it), ix as usize)?;
    }
    Ok(())
}

/// Placements the search tries in each partition, in this order, as (per-key cap of the
/// assignment, per-key cap of the merge as a multiple of it); the first `search` of them (at
/// least one), and the partition keeps the one with the lowest estimated cost. Merged tables
/// may hold longer buckets than the assignment made: a longer scan of one bucket, in order,
/// costs less than a probe of another table (the bucket's entries are adjacent in memory, a
/// table's slot is a cache miss), and the estimate decides per partition whether they pay.
/// Cap 4 first: on ClassBench's 100k sets it won on every set where the caps differed; large
/// policies try only the first two, and a policy too large for two is placed once ([`SINGLE`]).
pub(super) const VARIANTS: [(u32, u32); 8] =
    [(4, 1), (4, 3), (BUCKET_LIMIT, 1), (BUCKET_LIMIT, 3), (16, 1), (16, 3), (6, 1), (6, 3)];

/// Entries below which a partition is not searched (placed once, [`SINGLE`]).
const SEARCH_MIN_ENTRIES: usize = 1024;

/// The placement of a policy too large (or a partition too small) to search: the default cap,
/// no wider merge.
const SINGLE: [(u32, u32); 1] = [(BUCKET_LIMIT, 1)];

/// The assignment's tables and entry placement, kept to merge it again under another cap.
#[derive(Default)]
struct Saved {
    specs: Vec<Spec>,
    keys: Vec<u32>,
    min_rule: Vec<u32>,
    assign: Vec<u32>,
}

impl Saved {
    fn save(&mut self, pl: &Plan) -> Result<(), CompileError> {
        copy_into(&mut self.specs, &pl.specs)?;
        copy_into(&mut self.keys, &pl.keys)?;
        copy_into(&mut self.min_rule, &pl.min_rule)?;
        copy_into(&mut self.assign, &pl.assign)
    }
    fn restore(&self, pl: &mut Plan) -> Result<(), CompileError> {
        copy_into(&mut pl.specs, &self.specs)?;
        copy_into(&mut pl.keys, &self.keys)?;
        copy_into(&mut pl.min_rule, &self.min_rule)?;
        copy_into(&mut pl.assign, &self.assign)
    }
}

/// `dst = src`, reusing `dst`'s allocation, with fallible growth.
fn copy_into<T: Copy>(dst: &mut Vec<T>, src: &[T]) -> Result<(), CompileError> {
    dst.clear();
    dst.try_reserve(src.len()).map_err(oom)?;
    dst.extend_from_slice(src);
    Ok(())
}

/// The arrays of one placed partition.
pub(super) struct Layout<W> {
    pub(super) tables: Vec<Table<W>>,
    pub(super) offsets: Vec<u32>,
    pub(super) entries: Vec<Entry<W>>,
    pub(super) max_bucket: u32,
}

/// Places the partition under each of the first `search` [`VARIANTS`] (at least one): assigns
/// entries to tables ([`assign`]), merges tables ([`merge::merge_tables`]), lays the result
/// out, and keeps the layout with the lowest estimated lookup cost over queries sampled from
/// the rules ([`sample_probes`], [`estimate`]).
pub(super) fn place<W: Word>(part: &mut Partition<W>, items: &[BuildEntry<W>], search: usize) -> Result<(), CompileError> {
    // Too large to search: one placement with the default cap, which needs no estimate to be
    // safe (cap 4 wins only where the estimate confirms it).
    // A small partition is placed once too: its lookups are cheap whatever the caps, and every
    // variant costs allocations (the emulation fails each of the driver's allocations in turn).
    let variants = if search <= 1 || items.len() < SEARCH_MIN_ENTRIES {
        &SINGLE[..]
    } else {
        VARIANTS.get(..search).unwrap_or(&VARIANTS)
    };
    let probes = if variants.len() > 1 { sample_probes(items)? } else { Vec::new() };
    let mut best: Option<(u64, (u32, u32), Layout<W>)> = None;
    let mut plan = Plan::new();
    let mut saved = Saved::default();
    let mut assigned: Option<u32> = None;
    for (k, &(cap, factor)) in variants.iter().enumerate() {
        // Variants of one cap share its assignment (they differ in the merge only).
        let shares_next = variants.get(k + 1).is_some_and(|v| v.0 == cap);
        if assigned == Some(cap) {
            saved.restore(&mut plan)?;
        } else {
            assign(items, cap, &mut plan)?;
            assigned = Some(cap);
            if shares_next {
                saved.save(&plan)?;
            }
        }
        merge::merge_tables(items, cap.saturating_mul(factor), &mut plan)?;
        let lay = layout(items, &plan)?;
        let cost = if variants.len() > 1 { estimate(&lay, &probes) } else { 0 };
        // Within 1/64 of each other, the smaller cap (then the smaller merge factor) wins:
        // the same expected cost with shorter buckets (a lower worst case, and less sensitive
        // to which rules a trace favours).
        let variant = (cap, factor);
        let better = best.as_ref().is_none_or(|&(c, bvar, _)| {
            let margin = c / 64;
            if variant < bvar {
                cost <= c.saturating_add(margin)
            } else {
                cost.saturating_add(margin) < c
            }
        });
        if better {
            best = Some((cost, variant, lay));
        }
    }
    if let Some((_, _, lay)) = best {
        part.tables = lay.tables;
        part.offsets = lay.offsets;
        part.entries = lay.entries;
        part.max_bucket = lay.max_bucket;
    }
    Ok(())
}

/// Lays out one assignment: tables in order of their best rule, slots, buckets in rule order.
fn layout<W: Word>(items: &[BuildEntry<W>], plan: &Plan) -> Result<Layout<W>, CompileError> {
    let Plan { specs, keys: keys_per_spec, min_rule, assign, .. } = plan;
    let mut lay = Layout { tables: Vec::new(), offsets: Vec::new(), entries: Vec::new(), max_bucket: 0 };
    // Tables in order of their best rule (entries are in rule order, so the first entry placed
    // in a spec carries its minimum).
    let mut by_prio: Vec<usize> = Vec::new();
    by_prio.try_reserve_exact(specs.len()).map_err(oom)?;
    by_prio.extend(0..specs.len());
    by_prio.sort_unstable_by_key(|&si| min_rule.get(si).copied().unwrap_or(NONE));
    let mut table_of_spec: Vec<u32> = Vec::new();
    table_of_spec.try_reserve_exact(specs.len()).map_err(oom)?;
    table_of_spec.resize(specs.len(), 0);
    lay.tables.try_reserve_exact(specs.len()).map_err(oom)?;
    let mut slot_base: usize = 0;
    for (ti, &si) in by_prio.iter().enumerate() {
        let (Some(s), Some(&keys), Some(&mr)) = (specs.get(si), keys_per_spec.get(si), min_rule.get(si)) else {
            continue;
        };
        let bits = (keys as usize * SLOTS_PER_KEY).max(2).next_power_of_two().trailing_zeros();
        if let Some(t) = table_of_spec.get_mut(si) {
            *t = ti as u32;
        }
        lay.tables.push(Table {
            mask_r: W::mask(s.a),
            mask_l: W::mask(s.b),
            small_mask: s.small_mask(),
            app_keyed: s.ap,
            min_rule: mr,
            slot_base: slot_base as u32,
            shift: 64 - bits,
        });
        slot_base += 1usize << bits;
    }
    // Counting sort of entries into buckets (stable: rule order within each bucket).
    lay.offsets.try_reserve_exact(slot_base + 1).map_err(oom)?;
    lay.offsets.resize(slot_base + 1, 0);
    let mut slot_of: Vec<u32> = Vec::new();
    slot_of.try_reserve_exact(items.len()).map_err(oom)?;
    for (it, &si) in items.iter().zip(assign) {
        let ti = table_of_spec.get(si as usize).copied().unwrap_or(0);
        let (Some(t), Some(s)) = (lay.tables.get(ti as usize), specs.get(si as usize)) else {
            return Err(CompileError::OutOfMemory);
        };
        let slot = t.slot_base as usize + s.key(it).checked_shr(t.shift).unwrap_or(0) as usize;
        slot_of.push(slot as u32);
        if let Some(c) = lay.offsets.get_mut(slot + 1) {
            *c += 1;
        }
    }
    let mut acc = 0u32;
    let mut max_bucket = 0u32;
    for o in lay.offsets.iter_mut() {
        max_bucket = max_bucket.max(*o);
        acc += *o;
        *o = acc;
    }
    lay.max_bucket = max_bucket;
    let mut fill: Vec<u32> = Vec::new();
    fill.try_reserve_exact(slot_base).map_err(oom)?;
    fill.extend(lay.offsets.iter().take(slot_base).copied());
    lay.entries.try_reserve_exact(items.len()).map_err(oom)?;
    let placeholder = match items.first() {
        Some(it) => it.e,
        None => return Ok(lay),
    };
    lay.entries.resize(items.len(), placeholder);
    for (it, &slot) in items.iter().zip(&slot_of) {
        let Some(f) = fill.get_mut(slot as usize) else { continue };
        if let Some(dst) = lay.entries.get_mut(*f as usize) {
            *dst = it.e;
        }
        *f += 1;
    }
    Ok(lay)
}
