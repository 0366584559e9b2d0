//! The address sets' index: each set's sorted, disjoint ranges, and for large sets a directory
//! by the top address bits, so a membership test is one directory read and a binary search
//! over a few ranges (one or two cache lines) instead of about 20 dependent probes.

use alloc::vec::Vec;
use core::mem::size_of;

use super::word::{in_sorted, merge_ranges, Word};
use super::{oom, CompileError, Span};
use crate::Policy;

/// Sets with more ranges than this get a directory.
const DIRECTORY_MIN: usize = 64;
/// Ranges per directory bucket aimed for.
const RANGES_PER_BUCKET: usize = 4;
/// Most directory bits (2^20 + 1 buckets, 4 MiB, for sets of 4,000,000 ranges and more).
const DIRECTORY_MAX_BITS: u8 = 20;

/// Sorted, disjoint ranges of every address set, for one IP version.
#[derive(Default)]
pub(super) struct SetIndex<W> {
    ranges: Vec<(W, W)>,
    spans: Vec<Span>,
    /// Per set: the start of its directory in `dir` and its bit count (0: none).
    dirs: Vec<(u32, u8)>,
    /// Per set with a directory, `2^bits + 1` indexes into the set's ranges: bucket `b` (the
    /// addresses whose top `bits` bits are `b`) starts at the first range whose end is in or
    /// after it; the last is the range count.
    dir: Vec<u32>,
}

/// Directory bits for a set of `n` ranges (0: no directory).
fn directory_bits(n: usize, word_bits: u8) -> u8 {
    if n <= DIRECTORY_MIN {
        return 0;
    }
    let per = (n / RANGES_PER_BUCKET).max(2);
    let bits = (usize::BITS - 1 - per.leading_zeros()) as u8;
    bits.clamp(1, DIRECTORY_MAX_BITS.min(word_bits))
}

impl<W: Word> SetIndex<W> {
    pub(super) fn build(p: &Policy) -> Result<Self, CompileError> {
        let mut total = 0usize;
        for s in &p.sets {
            total += s.entries.iter().filter(|r| W::range(r).is_some()).count();
        }
        let mut ix = SetIndex { ranges: Vec::new(), spans: Vec::new(), dirs: Vec::new(), dir: Vec::new() };
        ix.ranges.try_reserve_exact(total).map_err(oom)?;
        ix.spans.try_reserve_exact(p.sets.len()).map_err(oom)?;
        ix.dirs.try_reserve_exact(p.sets.len()).map_err(oom)?;
        let mut tmp: Vec<(W, W)> = Vec::new();
        for s in &p.sets {
            tmp.clear();
            let n = s.entries.iter().filter(|r| W::range(r).is_some()).count();
            tmp.try_reserve(n).map_err(oom)?;
            tmp.extend(s.entries.iter().filter_map(W::range));
            merge_ranges(&mut tmp, W::succ);
            let start = ix.ranges.len() as u32;
            ix.ranges.extend_from_slice(&tmp);
            ix.spans.push(Span { start, len: tmp.len() as u32 });
            let bits = directory_bits(tmp.len(), W::BITS);
            let dstart = ix.dir.len() as u32;
            if bits > 0 {
                let buckets = 1usize << bits;
                ix.dir.try_reserve(buckets + 1).map_err(oom)?;
                let mut j = 0usize;
                for b in 0..buckets {
                    let first = W::from_top(b as u32, bits);
                    while tmp.get(j).is_some_and(|r| r.1 < first) {
                        j += 1;
                    }
                    ix.dir.push(j as u32);
                }
                ix.dir.push(tmp.len() as u32);
            }
            ix.dirs.push((dstart, bits));
        }
        Ok(ix)
    }

    /// The sorted, disjoint ranges of set `i`.
    pub(super) fn set(&self, i: u32) -> &[(W, W)] {
        match self.spans.get(i as usize) {
            Some(s) => s.of(&self.ranges),
            None => &[],
        }
    }

    /// Whether set `i` holds `x`. No allocation, no recursion. IRQL: <= DISPATCH_LEVEL.
    #[inline]
    pub(super) fn contains(&self, i: u32, x: W) -> bool {
        let s = self.set(i);
        let Some(&(start, bits)) = self.dirs.get(i as usize) else { return false };
        if bits == 0 {
            return in_sorted(s, x);
        }
        // A range holding `x` ends at or after the start of `x`'s bucket (so its index is at
        // least `lo`) and starts at or before `x`, before the next bucket (so at most `hi`).
        let d = (start as usize).wrapping_add(x.top(bits) as usize);
        let (Some(&lo), Some(&hi)) = (self.dir.get(d), self.dir.get(d.wrapping_add(1))) else { return false };
        let end = (hi as usize).saturating_add(1).min(s.len());
        s.get(lo as usize..end).is_some_and(|r| in_sorted(r, x))
    }

    pub(super) fn bytes(&self) -> usize {
        self.ranges.capacity() * size_of::<(W, W)>()
            + self.spans.capacity() * size_of::<Span>()
            + self.dirs.capacity() * size_of::<(u32, u8)>()
            + self.dir.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::{AddrRange, AddressSet};
    use alloc::string::String;
    use alloc::vec;

    fn policy(entries: Vec<AddrRange>) -> Policy {
        let mut p = Policy::permit_all();
        p.sets.push(AddressSet { name: String::from("s"), entries });
        p
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 11
        }
    }

    #[test]
    fn directory_lookup_equals_binary_search_at_every_range_edge() {
        let mut rng = Lcg(7);
        for n in [100usize, 1_000, 20_000] {
            let mut entries = Vec::new();
            for k in 0..n {
                let a = rng.next() as u32;
                // Some ranges span several directory buckets; some sit at the ends of the space.
                let hi = match k % 7 {
                    0 => a.saturating_add((rng.next() as u32) >> 12),
                    1 => a | 0xFF,
                    _ => a,
                };
                entries.push(AddrRange::V4 { lo: a, hi });
            }
            entries.push(AddrRange::V4 { lo: 0, hi: 3 });
            entries.push(AddrRange::V4 { lo: u32::MAX - 2, hi: u32::MAX });
            let ix = SetIndex::<u32>::build(&policy(entries)).unwrap();
            assert!(ix.dirs[0].1 > 0, "{n} ranges get a directory");
            let s = ix.set(0);
            let mut probes = vec![0u32, u32::MAX];
            for r in s {
                probes.extend([r.0, r.1, r.0.wrapping_sub(1), r.1.wrapping_add(1)]);
            }
            probes.extend((0..4 * n).map(|_| rng.next() as u32));
            for x in probes {
                assert_eq!(ix.contains(0, x), in_sorted(s, x), "{n} ranges, {x:#x}");
            }
        }
    }

    #[test]
    fn ipv6_sets_use_the_top_bits_of_the_address() {
        let mut rng = Lcg(9);
        let entries: Vec<AddrRange> = (0..500)
            .map(|_| {
                let a = (u128::from(rng.next()) << 80) | u128::from(rng.next());
                AddrRange::V6 { lo: a, hi: a | 0xFFFF }
            })
            .collect();
        let ix = SetIndex::<u128>::build(&policy(entries)).unwrap();
        assert!(ix.dirs[0].1 > 0);
        let s = ix.set(0);
        for r in s {
            for x in [r.0, r.1, r.0.wrapping_sub(1), r.1.wrapping_add(1), r.0 + 7] {
                assert_eq!(ix.contains(0, x), in_sorted(s, x));
            }
        }
    }

    #[test]
    fn small_sets_have_no_directory() {
        let ix = SetIndex::<u32>::build(&policy(vec![AddrRange::V4 { lo: 5, hi: 9 }])).unwrap();
        assert_eq!(ix.dirs[0].1, 0);
        assert!(ix.contains(0, 5) && ix.contains(0, 9) && !ix.contains(0, 10));
        assert!(!ix.contains(1, 5), "an unknown set holds nothing");
    }
}
