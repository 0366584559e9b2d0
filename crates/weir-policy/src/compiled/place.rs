//! Placement: which table each entry goes into, and the final arrays.

use alloc::vec::Vec;

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

/// Open-addressing counter map from 64-bit keys (never 0 after the `| 1`) with fallible growth.
struct Counts {
    slots: Vec<(u64, u32)>,
    used: usize,
}

impl Counts {
    fn new() -> Self {
        Counts { slots: Vec::new(), used: 0 }
    }
    fn find(&self, k: u64) -> usize {
        let n = self.slots.len();
        let mut i = (k as usize) & (n - 1);
        loop {
            match self.slots.get(i) {
                Some(&(key, _)) if key == k || key == 0 => return i,
                Some(_) => i = (i + 1) & (n - 1),
                None => return 0,
            }
        }
    }
    fn get(&self, k: u64) -> u32 {
        if self.slots.is_empty() {
            return 0;
        }
        let k = k | 1;
        match self.slots.get(self.find(k)) {
            Some(&(key, c)) if key == k => c,
            _ => 0,
        }
    }
    /// Decrements (a present key) and returns the new count; a key whose count reaches 0 is
    /// deleted (widening re-keys whole runs: dead keys would otherwise grow the map to many
    /// times the live ones, and its fresh pages cost compile time).
    fn dec(&mut self, k: u64) -> u32 {
        if self.slots.is_empty() {
            return 0;
        }
        let i = self.find(k | 1);
        let c = match self.slots.get_mut(i) {
            Some(s) if s.0 == (k | 1) => {
                s.1 = s.1.saturating_sub(1);
                s.1
            }
            _ => return 0,
        };
        if c == 0 {
            self.delete(i);
        }
        c
    }
    /// Empties slot `i`, moving later keys of its probe run back (linear-probing deletion).
    fn delete(&mut self, mut i: usize) {
        let mask = self.slots.len() - 1;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let Some(&(key, c)) = self.slots.get(j) else { break };
            if key == 0 {
                break;
            }
            let home = (key as usize) & mask;
            // The key at `j` stays if its home lies cyclically in (i, j].
            let stays = if i <= j { i < home && home <= j } else { i < home || home <= j };
            if stays {
                continue;
            }
            if let Some(s) = self.slots.get_mut(i) {
                *s = (key, c);
            }
            i = j;
        }
        if let Some(s) = self.slots.get_mut(i) {
            *s = (0, 0);
        }
        self.used = self.used.saturating_sub(1);
    }
    /// Forgets every key, keeping the slots (reused by the next candidate placement).
    fn clear(&mut self) {
        self.slots.fill((0, 0));
        self.used = 0;
    }
    /// Increments and returns the new count.
    fn inc(&mut self, k: u64) -> Result<u32, CompileError> {
        if (self.used + 1) * 2 > self.slots.len() {
            let n = (self.slots.len() * 2).max(1024);
            let mut new: Vec<(u64, u32)> = Vec::new();
            new.try_reserve_exact(n).map_err(oom)?;
            new.resize(n, (0, 0));
            let old = core::mem::replace(&mut self.slots, new);
            for (key, c) in old {
                if key != 0 {
                    let i = self.find(key);
                    if let Some(s) = self.slots.get_mut(i) {
                        *s = (key, c);
                    }
                }
            }
        }
        let k = k | 1;
        let i = self.find(k);
        let Some(s) = self.slots.get_mut(i) else { return Ok(0) };
        if s.0 == 0 {
            *s = (k, 0);
            self.used += 1;
        }
        s.1 += 1;
        Ok(s.1)
    }
}

fn relax(len: u8, bits: u8) -> u8 {
    let step = if bits == 32 { 8 } else { 16 };
    len - len % step
}

/// Tables per partition the priority-run phase may make; the entries left after it are placed
/// greedily (most specific fitting table, else a new coarse or exact one, else overflow).
const RUN_TABLES: usize = 24;

/// Longest run a table's tuple is still widened over: each widening re-keys the run, so this
/// bounds the compile time (about 70 widenings at most per table) at some cost in runs.
const WIDEN_MAX_RUN: usize = 8192;

fn salt(si: usize) -> u64 {
    (si as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

impl Spec {
    fn exact<W>(e: &BuildEntry<W>) -> Spec {
        Spec { a: e.la, b: e.lb, p: e.p, rp: e.rp, lp: e.lp, ap: e.app.is_some() }
    }
    /// The most specific tuple both `self` and `e` fit.
    fn meet<W>(&self, e: &BuildEntry<W>) -> Spec {
        Spec {
            a: self.a.min(e.la),
            b: self.b.min(e.lb),
            p: self.p && e.p,
            rp: self.rp && e.rp,
            lp: self.lp && e.lp,
            ap: self.ap && e.app.is_some(),
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
}

impl Plan {
    fn new() -> Plan {
        Plan { specs: Vec::new(), keys: Vec::new(), min_rule: Vec::new(), assign: Vec::new(), counts: Counts::new() }
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

    fn remove(&mut self, si: usize, k: u64) {
        let c = self.counts.dec(k ^ salt(si));
        if c == 0 {
            if let Some(c) = self.keys.get_mut(si) {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// Re-keys table `si` (holding exactly `run`) under `w` and adds `ix`, if no key then holds
    /// more than `cap` entries; otherwise leaves everything as it was.
    fn try_widen<W: Word>(
        &mut self,
        items: &[BuildEntry<W>],
        si: usize,
        run: &[u32],
        w: Spec,
        ix: usize,
        cap: u32,
    ) -> Result<bool, CompileError> {
        let Some(&old) = self.specs.get(si) else { return Ok(false) };
        for &r in run {
            if let Some(it) = items.get(r as usize) {
                self.remove(si, old.key(it));
            }
        }
        let mut ok = true;
        let mut added = 0usize;
        for &r in run.iter().chain(core::iter::once(&(ix as u32))) {
            let Some(it) = items.get(r as usize) else { continue };
            self.add(si, w.key(it), r as usize)?;
            added += 1;
            if self.counts.get(w.key(it) ^ salt(si)) > cap {
                ok = false;
                break;
            }
        }
        if ok {
            if let Some(s) = self.specs.get_mut(si) {
                *s = w;
            }
            return Ok(true);
        }
        for &r in run.iter().chain(core::iter::once(&(ix as u32))).take(added) {
            if let Some(it) = items.get(r as usize) {
                self.remove(si, w.key(it));
            }
        }
        if let Some(a) = self.assign.get_mut(ix) {
            *a = NONE;
        }
        for &r in run {
            if let Some(it) = items.get(r as usize) {
                self.add(si, old.key(it), r as usize)?;
            }
        }
        Ok(false)
    }
}

/// TupleMerge-Offline-style assignment with per-key cap `cap`: in priority order, each new table
/// starts from the best unplaced entry's exact tuple and is widened over the following entries
/// as long as no key exceeds `cap` (the unbroken run of top-priority entries it covers); it then
/// takes every later entry that fits with room. After [`RUN_TABLES`] tables, the rest is placed
/// greedily.
fn assign<W: Word>(items: &[BuildEntry<W>], cap: u32, pl: &mut Plan) -> Result<(), CompileError> {
    pl.reset(items.len())?;
    let mut rest: Vec<u32> = Vec::new();
    rest.try_reserve_exact(items.len()).map_err(oom)?;
    rest.extend(0..items.len() as u32);
    let mut run: Vec<u32> = Vec::new();
    while pl.specs.len() < RUN_TABLES {
        let Some(first) = rest.first().and_then(|&i| items.get(i as usize)) else { break };
        let mut spec = Spec::exact(first);
        let si = pl.new_spec(spec, first.e.rule)?;
        run.clear();
        let mut kept = 0usize;
        let mut broken = false;
        for i in 0..rest.len() {
            let Some(&ix) = rest.get(i) else { break };
            let Some(it) = items.get(ix as usize) else { continue };
            let mut placed = false;
            if spec.fits(it) {
                let k = spec.key(it);
                if pl.counts.get(k ^ salt(si)) < cap {
                    pl.add(si, k, ix as usize)?;
                    placed = true;
                }
            } else if !broken && run.len() < WIDEN_MAX_RUN {
                let w = spec.meet(it);
                // A tuple without key bits holds `cap` entries in all: never widen to one.
                if w.score() > 0 && pl.try_widen(items, si, &run, w, ix as usize, cap)? {
                    spec = w;
                    placed = true;
                }
            }
            if placed {
                if !broken {
                    push(&mut run, ix)?;
                }
            } else {
                broken = true;
                if let Some(slot) = rest.get_mut(kept) {
                    *slot = ix;
                }
                kept += 1;
            }
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

/// Per-key caps the placement tries in each partition, in order of preference on equal
/// estimated cost (the first `n` of them for a search of `n`); the partition keeps the one with
/// the lowest [`estimate`](super::estimate::estimate).
pub(super) const CAPS: [u32; 4] = [BUCKET_LIMIT, 4, 16, 6];

/// The arrays of one placed partition.
pub(super) struct Layout<W> {
    pub(super) tables: Vec<Table<W>>,
    pub(super) offsets: Vec<u32>,
    pub(super) entries: Vec<Entry<W>>,
    pub(super) max_bucket: u32,
}

/// Assigns entries to tables ([`assign`]) with each of the first `search` caps of [`CAPS`] (at
/// least one), lays each assignment out, and keeps the layout with the lowest estimated lookup
/// cost over queries sampled from the rules ([`sample_probes`], [`estimate`]).
pub(super) fn place<W: Word>(part: &mut Partition<W>, items: &[BuildEntry<W>], search: usize) -> Result<(), CompileError> {
    let caps = CAPS.get(..search.clamp(1, CAPS.len())).unwrap_or(&CAPS);
    let probes = if caps.len() > 1 { sample_probes(items)? } else { Vec::new() };
    let mut best: Option<(u64, Layout<W>)> = None;
    let mut plan = Plan::new();
    for &cap in caps {
        assign(items, cap, &mut plan)?;
        let lay = layout(items, &plan)?;
        let cost = if caps.len() > 1 { estimate(&lay, &probes) } else { 0 };
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, lay));
        }
    }
    if let Some((_, lay)) = best {
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
