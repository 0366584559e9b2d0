//! Address words (`u32`, `u128`) and the range helpers the compiler keys and checks with.


use alloc::vec::Vec;
use core::fmt;

use crate::{Addr, AddrRange};

/// An address word: `u32` for IPv4, `u128` for IPv6.
pub trait Word: Copy + Ord + Eq + Default + fmt::Debug + 'static {
    /// Address width in bits.
    const BITS: u8;
    /// Bit mask of the `len` leading bits (`len <= BITS`).
    fn mask(len: u8) -> Self;
    /// Bitwise and.
    fn and(self, o: Self) -> Self;
    /// Bitwise or.
    fn or(self, o: Self) -> Self;
    /// Bitwise not.
    fn not(self) -> Self;
    /// Bitwise xor.
    fn xor(self, o: Self) -> Self;
    /// Leading zero bits.
    fn lz(self) -> u8;
    /// Trailing zero bits.
    fn tz(self) -> u8;
    /// `self + 1`, `None` on overflow.
    fn succ(self) -> Option<Self>;
    /// `self - o` (caller ensures `self >= o`).
    fn diff(self, o: Self) -> Self;
    /// `self + 2^k`, `None` on overflow.
    fn add_pow2(self, k: u8) -> Option<Self>;
    /// The top `k` bits (`1 <= k <= 32`, `k <= BITS`) as a number.
    fn top(self, k: u8) -> u32;
    /// The smallest word whose top `k` bits are `b`.
    fn from_top(b: u32, k: u8) -> Self;
    /// Folds to 64 bits for hashing.
    fn fold64(self) -> u64;
    /// The range's bounds if it is of this version.
    fn range(r: &AddrRange) -> Option<(Self, Self)>;
    /// The address if it is of this version.
    fn addr(a: Addr) -> Option<Self>;
}

macro_rules! word {
    ($t:ty, $bits:expr, $variant:ident, $fold:expr) => {
        impl Word for $t {
            const BITS: u8 = $bits;
            #[inline]
            fn mask(len: u8) -> Self {
                if len == 0 {
                    0
                } else {
                    <$t>::MAX << (u32::from(<Self as Word>::BITS) - u32::from(len.min(<Self as Word>::BITS)))
                }
            }
            #[inline]
            fn and(self, o: Self) -> Self {
                self & o
            }
            #[inline]
            fn or(self, o: Self) -> Self {
                self | o
            }
            #[inline]
            fn not(self) -> Self {
                !self
            }
            #[inline]
            fn xor(self, o: Self) -> Self {
                self ^ o
            }
            #[inline]
            fn lz(self) -> u8 {
                self.leading_zeros() as u8
            }
            #[inline]
            fn tz(self) -> u8 {
                self.trailing_zeros() as u8
            }
            #[inline]
            fn succ(self) -> Option<Self> {
                self.checked_add(1)
            }
            #[inline]
            fn diff(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline]
            fn add_pow2(self, k: u8) -> Option<Self> {
                if u32::from(k) >= u32::from(<Self as Word>::BITS) {
                    None
                } else {
                    self.checked_add((1 as $t) << k)
                }
            }
            #[inline]
            fn top(self, k: u8) -> u32 {
                self.checked_shr(u32::from(<Self as Word>::BITS.saturating_sub(k))).unwrap_or(0) as u32
            }
            #[inline]
            fn from_top(b: u32, k: u8) -> Self {
                (b as $t).checked_shl(u32::from(<Self as Word>::BITS.saturating_sub(k))).unwrap_or(0)
            }
            #[inline]
            fn fold64(self) -> u64 {
                let f: fn($t) -> u64 = $fold;
                f(self)
            }
            #[inline]
            fn range(r: &AddrRange) -> Option<(Self, Self)> {
                match *r {
                    AddrRange::$variant { lo, hi } => Some((lo, hi)),
                    _ => None,
                }
            }
            #[inline]
            fn addr(a: Addr) -> Option<Self> {
                match a {
                    Addr::$variant(x) => Some(x),
                    _ => None,
                }
            }
        }
    };
}

word!(u32, 32, V4, |x| u64::from(x));
word!(u128, 128, V6, |x| (x as u64) ^ ((x >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));

/// Number of prefixes needed for `[lo, hi]`, counting at most up to `cap + 1`, calling `f`
/// for each (value, length) while `f` is given.
pub(super) fn split_range<W: Word>(lo: W, hi: W, cap: usize, mut f: Option<&mut dyn FnMut(W, u8)>) -> usize {
    let mut lo = lo;
    let mut n = 0usize;
    loop {
        // Largest aligned block at `lo` that stays within `hi`.
        let tz = if lo == W::default() { W::BITS } else { lo.tz() };
        let span = hi.diff(lo); // block count - 1
        let by_span = match span.succ() {
            None => W::BITS,
            Some(c) => W::BITS - 1 - c.lz(),
        };
        let k = tz.min(by_span);
        n += 1;
        if let Some(f) = f.as_deref_mut() {
            f(lo, W::BITS - k);
        }
        if n > cap {
            return n;
        }
        match lo.add_pow2(k) {
            Some(next) if next <= hi && next > lo => lo = next,
            _ => return n,
        }
    }
}

/// Length and value of the longest prefix containing both `lo` and `hi`.
pub(super) fn hull_prefix<W: Word>(lo: W, hi: W) -> (W, u8) {
    let len = lo.xor(hi).lz();
    (lo.and(W::mask(len)), len)
}

/// Sorts and merges overlapping or adjacent ranges in place.
pub(super) fn merge_ranges<T: Copy + Ord>(v: &mut Vec<(T, T)>, succ: impl Fn(T) -> Option<T>) {
    v.sort_unstable();
    let mut w = 0usize;
    for i in 0..v.len() {
        let Some(&(lo, hi)) = v.get(i) else { break };
        if i > 0 {
            if let Some(last) = w.checked_sub(1).and_then(|j| v.get_mut(j)) {
                let touches = match succ(last.1) {
                    None => true,
                    Some(n) => lo <= n,
                };
                if touches {
                    if hi > last.1 {
                        last.1 = hi;
                    }
                    continue;
                }
            }
        }
        if let Some(slot) = v.get_mut(w) {
            *slot = (lo, hi);
        }
        w += 1;
    }
    v.truncate(w);
}

pub(super) fn in_sorted<T: Copy + Ord>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|r| r.0 <= x);
    match i.checked_sub(1).and_then(|j| ranges.get(j)) {
        Some(r) => x <= r.1,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use alloc::vec;

    fn prefixes<W: Word>(lo: W, hi: W, cap: usize) -> (usize, Vec<(W, u8)>) {
        let mut v = Vec::new();
        let n = split_range(lo, hi, cap, Some(&mut |x, len| v.push((x, len))));
        (n, v)
    }

    #[test]
    fn split_range_covers_exactly_with_the_fewest_prefixes() {
        assert_eq!(prefixes(0u32, u32::MAX, 16), (1, vec![(0, 0)]));
        assert_eq!(prefixes(5u32, 5, 16), (1, vec![(5, 32)]));
        // [1, 6] = 1/32, 2/31, 4/31, 6/32.
        assert_eq!(prefixes(1u32, 6, 16), (4, vec![(1, 32), (2, 31), (4, 31), (6, 32)]));
        // The last block ends at the top of the address space without overflow.
        assert_eq!(prefixes(u32::MAX - 1, u32::MAX, 16), (1, vec![(u32::MAX - 1, 31)]));
        assert_eq!(prefixes(0u128, u128::MAX, 16), (1, vec![(0, 0)]));
        assert_eq!(prefixes(1u128, u128::MAX, 200).0, 128);
        // Every split of a sample of ranges covers [lo, hi] exactly, in order, without gaps.
        for (lo, hi) in [(0u32, 0u32), (3, 17), (1024, 65535), (7, 1 << 20), (0x0A00_0001, 0x0AFF_FFFE)] {
            let (_, v) = prefixes(lo, hi, usize::MAX - 1);
            let mut next = lo;
            for (x, len) in v {
                assert_eq!(x, next);
                assert_eq!(x & !u32::mask(len), 0, "aligned");
                let last = x | !u32::mask(len);
                assert!(last <= hi);
                next = last.wrapping_add(1);
            }
            assert_eq!(next, hi.wrapping_add(1));
        }
    }

    #[test]
    fn split_range_stops_counting_past_the_cap() {
        // [1, 2^32 - 2] needs 62 prefixes; with a cap of 3 the count stops at 4.
        assert_eq!(split_range(1u32, u32::MAX - 1, 3, None), 4);
        assert_eq!(split_range(1u32, u32::MAX - 1, 100, None), 62);
    }

    #[test]
    fn hull_prefix_is_the_longest_prefix_holding_both_ends() {
        assert_eq!(hull_prefix(5u32, 5), (5, 32));
        assert_eq!(hull_prefix(0x0A00_0000u32, 0x0AFF_FFFF), (0x0A00_0000, 8));
        assert_eq!(hull_prefix(0x0A00_0001u32, 0x0A00_0100), (0x0A00_0000, 23));
        assert_eq!(hull_prefix(0u32, u32::MAX), (0, 0));
        assert_eq!(hull_prefix(1u128 << 127, u128::MAX), (1u128 << 127, 1));
    }

    #[test]
    fn merge_ranges_sorts_and_joins_overlapping_and_adjacent_ranges() {
        let succ = |x: u16| x.checked_add(1);
        let mut v = vec![(10u16, 20), (1, 3), (21, 25), (4, 4), (30, 40), (35, 36)];
        merge_ranges(&mut v, succ);
        assert_eq!(v, vec![(1, 4), (10, 25), (30, 40)]);
        // A range ending at the maximum absorbs everything after it.
        let mut v = vec![(5u16, u16::MAX), (u16::MAX, u16::MAX), (0, 3)];
        merge_ranges(&mut v, succ);
        assert_eq!(v, vec![(0, 3), (5, u16::MAX)]);
        let mut v: Vec<(u16, u16)> = Vec::new();
        merge_ranges(&mut v, succ);
        assert!(v.is_empty());
    }

    #[test]
    fn in_sorted_finds_membership_at_the_edges() {
        let v = [(1u32, 4u32), (10, 25), (30, 40)];
        for (x, want) in [(0, false), (1, true), (4, true), (5, false), (9, false), (10, true), (40, true), (41, false)] {
            assert_eq!(in_sorted(&v, x), want, "{x}");
        }
        assert!(!in_sorted::<u32>(&[], 0));
    }
}
