//! The lookup the classifyFn runs.
//!
//! # Stack
//!
//! `lookup` → `lookup_in` (with `entry_matches` inlined) → `residual_ok` → `in_sorted` /
//! `folded_hash`: no recursion, no arrays or buffers on the stack, a fixed set of scalars. The
//! measured frame sizes and the stated bound (1 KiB) are in `docs/policy.md`.


use super::word::{in_sorted, Word};
use super::{key_hash, small_key, with_app, CompiledPolicy, Entry, Partition, Pred, SetIndex, Span, NONE};
use crate::fold::{fold_unit, folded_hash};
use crate::{Addr, Direction, Query, Verdict};

/// Counts lookup work (no-op for `()`, so `lookup` pays nothing).
trait Counter {
    fn probe(&mut self);
    fn entry(&mut self);
}

impl Counter for () {
    #[inline(always)]
    fn probe(&mut self) {}
    #[inline(always)]
    fn entry(&mut self) {}
}

#[derive(Default)]
struct Work {
    probes: u32,
    entries: u32,
}

impl Counter for Work {
    fn probe(&mut self) {
        self.probes += 1;
    }
    fn entry(&mut self) {
        self.entries += 1;
    }
}

/// Lazily folded hash of the query's application path.
#[derive(Clone, Copy)]
struct AppCache<'q> {
    app: Option<&'q [u16]>,
    hash: Option<u64>,
}

impl AppCache<'_> {
    /// The folded hash of the query's application (`None` without one), computed once.
    fn hash(&mut self) -> Option<u64> {
        let qa = self.app?;
        Some(*self.hash.get_or_insert_with(|| folded_hash(qa)))
    }
}


impl CompiledPolicy {
    /// The verdict for `q`, identical to [`crate::reference::evaluate`] on the source policy.
    /// No allocation, no recursion, no panic; safe at DISPATCH_LEVEL.
    pub fn lookup(&self, q: &Query<'_>) -> Verdict {
        let di = usize::from(q.direction == Direction::Inbound) & self.direction_mask;
        let mut app = AppCache { app: q.app, hash: None };
        let best = match q.remote {
            Addr::V4(r) => {
                let l = u32::addr(q.local_normalized()).unwrap_or(0);
                match self.v4.get(di) {
                    Some(part) => self.lookup_in(part, &self.sets4, r, l, q, &mut app, &mut ()),
                    None => NONE,
                }
            }
            Addr::V6(r) => {
                let l = u128::addr(q.local_normalized()).unwrap_or(0);
                match self.v6.get(di) {
                    Some(part) => self.lookup_in(part, &self.sets6, r, l, q, &mut app, &mut ()),
                    None => NONE,
                }
            }
        };
        match self.rules.get(best as usize) {
            Some(info) => Verdict {
                rule_index: Some(best),
                rule_id: Some(info.id),
                action: info.action,
                log: info.log || self.log_all,
            },
            None => Verdict {
                rule_index: None,
                rule_id: None,
                action: match q.direction {
                    Direction::Outbound => self.default_outbound,
                    Direction::Inbound => self.default_inbound,
                },
                log: self.log_all,
            },
        }
    }

    /// Work one lookup does: `(tables probed, entries checked)`. For benchmarks and the
    /// design notes; same result as [`Self::lookup`].
    #[doc(hidden)]
    pub fn lookup_work(&self, q: &Query<'_>) -> (Verdict, u32, u32) {
        let mut w = Work::default();
        let di = usize::from(q.direction == Direction::Inbound) & self.direction_mask;
        let mut app = AppCache { app: q.app, hash: None };
        let _ = match q.remote {
            Addr::V4(r) => {
                let l = u32::addr(q.local_normalized()).unwrap_or(0);
                self.v4.get(di).map(|p| self.lookup_in(p, &self.sets4, r, l, q, &mut app, &mut w))
            }
            Addr::V6(r) => {
                let l = u128::addr(q.local_normalized()).unwrap_or(0);
                self.v6.get(di).map(|p| self.lookup_in(p, &self.sets6, r, l, q, &mut app, &mut w))
            }
        };
        (self.lookup(q), w.probes, w.entries)
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn lookup_in<W: Word, C: Counter>(
        &self,
        part: &Partition<W>,
        sets: &SetIndex<W>,
        r: W,
        l: W,
        q: &Query<'_>,
        app: &mut AppCache<'_>,
        counter: &mut C,
    ) -> u32 {
        let mut best = NONE;
        let small = small_key(q.protocol, q.remote_port, q.local_port);
        for t in &part.tables {
            if t.min_rule >= best {
                break;
            }
            counter.probe();
            let mut h = key_hash(r.and(t.mask_r).fold64(), l.and(t.mask_l).fold64(), small & t.small_mask);
            if t.app_keyed {
                // Every entry of this table has an application condition: without one in the
                // query, none can match.
                let Some(ah) = app.hash() else { continue };
                h = with_app(h, ah);
            }
            // `shift` is 64 - log2(slots) with at least 2 slots: within 1..=63.
            let slot = (t.slot_base as usize).wrapping_add((h >> (t.shift & 63)) as usize);
            let (Some(&s), Some(&e)) = (part.offsets.get(slot), part.offsets.get(slot.wrapping_add(1)))
            else {
                continue;
            };
            let Some(bucket) = part.entries.get(s as usize..e as usize) else { continue };
            for en in bucket {
                if en.rule >= best {
                    break;
                }
                counter.entry();
                if self.entry_matches(part, sets, en, r, l, q, app) {
                    best = en.rule;
                    break;
                }
            }
        }
        best
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn entry_matches<W: Word>(
        &self,
        part: &Partition<W>,
        sets: &SetIndex<W>,
        e: &Entry<W>,
        r: W,
        l: W,
        q: &Query<'_>,
        app: &mut AppCache<'_>,
    ) -> bool {
        r.and(e.r_mask) == e.r_val
            && l.and(e.l_mask) == e.l_val
            && (e.proto_any || e.proto == q.protocol)
            && e.rp_lo <= q.remote_port
            && q.remote_port <= e.rp_hi
            && e.lp_lo <= q.local_port
            && q.local_port <= e.lp_hi
            && (e.loopback == 0 || (e.loopback == 2) == q.loopback)
            && (e.residual == NONE || {
                // A copy for the out-of-line call: the cache itself never has its address
                // taken, so it stays in registers across the table loop.
                let mut cache = *app;
                let ok = self.residual_ok(part, sets, e.residual, r, l, q, &mut cache);
                *app = cache;
                ok
            })
    }

    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn residual_ok<W: Word>(
        &self,
        part: &Partition<W>,
        sets: &SetIndex<W>,
        idx: u32,
        r: W,
        l: W,
        q: &Query<'_>,
        app: &mut AppCache<'_>,
    ) -> bool {
        let Some(res) = part.residuals.get(idx as usize) else { return false };
        let pred_ok = |p: Pred, x: W| match p {
            Pred::Any => true,
            Pred::Ranges(s) => in_sorted(s.of(&part.ranges), x),
            Pred::Set(i) => sets.contains(i, x),
        };
        if !pred_ok(res.remote, r) || !pred_ok(res.local, l) {
            return false;
        }
        if res.remote_port.len != 0 && !in_sorted(res.remote_port.of(&part.ports), q.remote_port) {
            return false;
        }
        if res.local_port.len != 0 && !in_sorted(res.local_port.of(&part.ports), q.local_port) {
            return false;
        }
        if res.app != NONE {
            let Some(meta) = self.app_meta.get(res.app as usize) else { return false };
            let Some(qa) = app.app else { return false };
            // Length first: it rejects most application conditions without hashing the
            // query's path (the hash walks the whole path; lengths of paths mostly differ).
            if qa.len() != meta.len as usize {
                return false;
            }
            let Some(h) = app.hash() else { return false };
            if h != meta.hash {
                return false;
            }
            let stored = Span { start: meta.start, len: meta.len }.of(&self.apps);
            if stored.len() != qa.len() || !stored.iter().zip(qa).all(|(s, u)| *s == fold_unit(*u)) {
                return false;
            }
        }
        true
    }
}
