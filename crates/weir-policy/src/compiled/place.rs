//! Placement: which table each entry goes into, and the final arrays.

use alloc::vec::Vec;

use super::build::BuildEntry;
use super::word::Word;
use super::{key_hash, oom, push, small_key, with_app, CompileError, Partition, Table, BUCKET_LIMIT, NONE, SLOTS_PER_KEY};

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

/// Assigns entries to tables (TupleMerge placement) and lays out the final arrays.
pub(super) fn place<W: Word>(part: &mut Partition<W>, items: Vec<BuildEntry<W>>) -> Result<(), CompileError> {
    let mut specs: Vec<Spec> = Vec::new();
    let mut order: Vec<usize> = Vec::new(); // spec indices by descending score
    let mut keys_per_spec: Vec<u32> = Vec::new();
    let mut min_rule: Vec<u32> = Vec::new();
    let mut assign: Vec<u32> = Vec::new();
    assign.try_reserve_exact(items.len()).map_err(oom)?;
    let mut counts = Counts::new();
    let salt = |si: usize| (si as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);

    for it in &items {
        let mut chosen: Option<usize> = None;
        let mut fallback: Option<usize> = None;
        for &si in &order {
            let Some(s) = specs.get(si) else { continue };
            if !s.fits(it) {
                continue;
            }
            if fallback.is_none() {
                fallback = Some(si);
            }
            if counts.get(s.key(it) ^ salt(si)) < BUCKET_LIMIT {
                chosen = Some(si);
                break;
            }
        }
        let si = match chosen {
            Some(si) => si,
            None => {
                let coarse =
                    Spec { a: relax(it.la, W::BITS), b: relax(it.lb, W::BITS), p: false, rp: false, lp: false, ap: false };
                let exact = Spec { a: it.la, b: it.lb, p: it.p, rp: it.rp, lp: it.lp, ap: it.app.is_some() };
                let new = if !specs.contains(&coarse) {
                    Some(coarse)
                } else if !specs.contains(&exact) {
                    Some(exact)
                } else {
                    None
                };
                match (new, fallback) {
                    (Some(s), _) => {
                        let si = specs.len();
                        push(&mut specs, s)?;
                        push(&mut keys_per_spec, 0)?;
                        push(&mut min_rule, it.e.rule)?;
                        let pos = order
                            .iter()
                            .position(|&o| specs.get(o).map_or(0, Spec::score) < s.score())
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
        let Some(s) = specs.get(si) else { return Err(CompileError::OutOfMemory) };
        if counts.inc(s.key(it) ^ salt(si))? == 1 {
            if let Some(k) = keys_per_spec.get_mut(si) {
                *k += 1;
            }
        }
        assign.push(si as u32);
    }

    // Tables in order of their best rule (entries are in rule order, so the first entry placed
    // in a spec carries its minimum).
    let mut by_prio: Vec<usize> = Vec::new();
    by_prio.try_reserve_exact(specs.len()).map_err(oom)?;
    by_prio.extend(0..specs.len());
    by_prio.sort_unstable_by_key(|&si| min_rule.get(si).copied().unwrap_or(NONE));
    let mut table_of_spec: Vec<u32> = Vec::new();
    table_of_spec.try_reserve_exact(specs.len()).map_err(oom)?;
    table_of_spec.resize(specs.len(), 0);
    part.tables.try_reserve_exact(specs.len()).map_err(oom)?;
    let mut slot_base: usize = 0;
    for (ti, &si) in by_prio.iter().enumerate() {
        let (Some(s), Some(&keys), Some(&mr)) = (specs.get(si), keys_per_spec.get(si), min_rule.get(si)) else {
            continue;
        };
        let bits = (keys as usize * SLOTS_PER_KEY).max(2).next_power_of_two().trailing_zeros();
        if let Some(t) = table_of_spec.get_mut(si) {
            *t = ti as u32;
        }
        part.tables.push(Table {
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
    part.offsets.try_reserve_exact(slot_base + 1).map_err(oom)?;
    part.offsets.resize(slot_base + 1, 0);
    let mut slot_of: Vec<u32> = Vec::new();
    slot_of.try_reserve_exact(items.len()).map_err(oom)?;
    for (it, &si) in items.iter().zip(&assign) {
        let ti = table_of_spec.get(si as usize).copied().unwrap_or(0);
        let (Some(t), Some(s)) = (part.tables.get(ti as usize), specs.get(si as usize)) else {
            return Err(CompileError::OutOfMemory);
        };
        let slot = t.slot_base as usize + s.key(it).checked_shr(t.shift).unwrap_or(0) as usize;
        slot_of.push(slot as u32);
        if let Some(c) = part.offsets.get_mut(slot + 1) {
            *c += 1;
        }
    }
    let mut acc = 0u32;
    let mut max_bucket = 0u32;
    for o in part.offsets.iter_mut() {
        max_bucket = max_bucket.max(*o);
        acc += *o;
        *o = acc;
    }
    part.max_bucket = max_bucket;
    let mut fill: Vec<u32> = Vec::new();
    fill.try_reserve_exact(slot_base).map_err(oom)?;
    fill.extend(part.offsets.iter().take(slot_base).copied());
    part.entries.try_reserve_exact(items.len()).map_err(oom)?;
    let placeholder = match items.first() {
        Some(it) => it.e,
        None => return Ok(()),
    };
    part.entries.resize(items.len(), placeholder);
    for (it, &slot) in items.iter().zip(&slot_of) {
        let Some(f) = fill.get_mut(slot as usize) else { continue };
        if let Some(dst) = part.entries.get_mut(*f as usize) {
            *dst = it.e;
        }
        *f += 1;
    }
    Ok(())
}
