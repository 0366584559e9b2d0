//! The placement's cost estimate: queries sampled from a partition's own rules (no trace at
//! compile time) and the lookup cost model (about 62 instructions per table probed and 11.5 per
//! entry checked, measured on ClassBench's sets; docs/policy.md) walked over a candidate layout.

use alloc::vec::Vec;

use super::build::BuildEntry;
use super::place::Layout;
use super::word::Word;
use super::{key_hash, oom, push, small_key, CompileError, NONE};

/// Queries the estimate runs per partition (at most; one per sampled rule).
const SAMPLES: usize = 2048;

/// A query aimed at a corner of one entry: addresses, protocol, remote and local port.
#[derive(Clone, Copy)]
pub(super) struct Probe<W> {
    r: W,
    l: W,
    proto: u8,
    rp: u16,
    lp: u16,
}

/// Up to [`SAMPLES`] queries from the partition's rules alone: rules evenly spread over the
/// partition (ClassBench's trace generator picks a random rule), for each a pseudo-random entry
/// of the rule and a pseudo-random corner of it (the generator picks a random corner; a
/// wildcard protocol's corners are 0 and 255).
pub(super) fn sample_probes<W: Word>(items: &[BuildEntry<W>]) -> Result<Vec<Probe<W>>, CompileError> {
    // First entry of each rule (entries are in rule order).
    let mut starts: Vec<u32> = Vec::new();
    let mut last = NONE;
    for (i, it) in items.iter().enumerate() {
        if it.e.rule != last {
            push(&mut starts, i as u32)?;
            last = it.e.rule;
        }
    }
    let n = starts.len().min(SAMPLES);
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(oom)?;
    for k in 0..n {
        let si = k * starts.len() / n;
        let Some(&first) = starts.get(si) else { continue };
        let end = starts.get(si + 1).map_or(items.len(), |&e| e as usize);
        let h = key_hash(k as u64, 0x5EED, 0);
        let count = (end - first as usize).max(1);
        let Some(it) = items.get(first as usize + (h as usize >> 8) % count) else { continue };
        let e = &it.e;
        let corner = |v: W, m: W, bit: u32| if h >> bit & 1 == 0 { v } else { v.or(m.not()) };
        out.push(Probe {
            r: corner(e.r_val, e.r_mask, 0),
            l: corner(e.l_val, e.l_mask, 1),
            proto: match (e.proto_any, h >> 4 & 1) {
                (false, _) => e.proto,
                (true, 0) => 0,
                (true, _) => u8::MAX,
            },
            rp: if h >> 2 & 1 == 0 { e.rp_lo } else { e.rp_hi },
            lp: if h >> 3 & 1 == 0 { e.lp_lo } else { e.lp_hi },
        });
    }
    Ok(out)
}

/// Estimated cost of `probes` on `lay`, in the lookup cost model's units (per lookup about
/// 62 instructions per table probed and 11.5 per entry checked, here ×2): the lookup's own
/// walk, with residual conditions, loopback and application-keyed tables left out.
pub(super) fn estimate<W: Word>(lay: &Layout<W>, probes: &[Probe<W>]) -> u64 {
    let mut cost = 0u64;
    for q in probes {
        let mut best = NONE;
        let small = small_key(q.proto, q.rp, q.lp);
        for t in &lay.tables {
            if t.min_rule >= best {
                break;
            }
            if t.app_keyed {
                continue;
            }
            cost += 124;
            let h = key_hash(q.r.and(t.mask_r).fold64(), q.l.and(t.mask_l).fold64(), small & t.small_mask);
            let slot = (t.slot_base as usize).wrapping_add(h.checked_shr(t.shift).unwrap_or(0) as usize);
            let (Some(&s), Some(&e)) = (lay.offsets.get(slot), lay.offsets.get(slot.wrapping_add(1))) else {
                continue;
            };
            let Some(bucket) = lay.entries.get(s as usize..e as usize) else { continue };
            for en in bucket {
                if en.rule >= best {
                    break;
                }
                cost += 23;
                if q.r.and(en.r_mask) == en.r_val
                    && q.l.and(en.l_mask) == en.l_val
                    && (en.proto_any || en.proto == q.proto)
                    && (en.rp_lo..=en.rp_hi).contains(&q.rp)
                    && (en.lp_lo..=en.lp_hi).contains(&q.lp)
                {
                    best = en.rule;
                    break;
                }
            }
        }
    }
    cost
}
