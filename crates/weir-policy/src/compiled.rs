//! The compiler and the lookup.
//!
//! # Design
//!
//! The lookup must cost the same whether the policy has 100 or 100,000 rules, must not
//! allocate, recurse or panic, and must use little stack (it runs inside classifyFn, deep in the
//! network stack, at up to DISPATCH_LEVEL). The structure is a variant of **TupleMerge**
//! (Daly, Liu, Torng, "A Sorted-Partitioning Approach to Fast and Scalable Dynamic Packet
//! Classification" / "TupleMerge: Fast Software Packet Processing for Online Packet
//! Classification", IEEE/ACM ToN 2019), written from the paper's idea:
//!
//! 1. **Partitions.** Rules are split by (direction, IP version) into four independent
//!    partitions, so a lookup only sees rules that can apply to its direction and version. A
//!    rule without a direction or version condition goes into each partition it can match; a
//!    rule whose address ranges are all of the other version goes nowhere in that partition.
//! 2. **Entries.** In a partition each rule becomes one or more *entries*: a remote prefix, a
//!    local prefix, a protocol or wildcard, one remote and one local port range, the loopback
//!    condition, and an optional *residual* (application, address-set or long range-list
//!    predicates). Non-prefix address ranges and port lists are split into prefixes / single
//!    ranges when that yields at most [`EXPAND_LIMIT`] alternatives per rule and partition;
//!    otherwise the field is keyed by the common prefix (hull) of its ranges and checked exactly
//!    by the residual (binary search over the rule's sorted, merged ranges). Address sets are
//!    predicates over the set's own sorted disjoint range index (binary search, `O(log n)`),
//!    keyed by their hull prefix (small sets are expanded like range lists).
//! 3. **Tables.** Entries are grouped into hash tables, each with a *tuple*: remote prefix
//!    length `a`, local prefix length `b`, and whether the protocol, the exact remote port, the
//!    exact local port and the application (its folded hash) are part of the key. An entry fits
//!    a table when its own prefixes are at least as long and it has every keyed field; its key
//!    is its fields masked to the tuple. A query without an application skips the tables keyed
//!    by application (none of their entries can match it).
//!    Entries are placed greedily, in rule order, into the most specific fitting table whose
//!    bucket for that key holds fewer than [`BUCKET_LIMIT`] entries; failing that a new table
//!    is made with a coarse tuple (lengths rounded down to multiples of 8 (IPv4) / 16 (IPv6), no
//!    keyed protocol or ports), and if that already exists and is full, with the entry's exact
//!    tuple. This keeps the number of tables small (tens) and the buckets short.
//! 4. **Lookup.** Tables are sorted by the best (lowest) rule index they hold. For each table in
//!    that order: stop if its best rule cannot beat the match found so far; else mask the query
//!    to the tuple, hash, and scan the bucket (entries sorted by rule index, so the first entry
//!    that matches is the bucket's best, and the scan stops at the first entry not better than
//!    the current match). Every entry is checked completely (prefixes, protocol, ports,
//!    loopback, residual), so hash collisions only cost time, never correctness. The
//!    application path of the query is folded and hashed at most once per lookup, lazily.
//!
//! The cost of a lookup is therefore bounded by the number of tables of the partition plus the
//! entries of the buckets it visits, both fixed at compile time and reported by
//! [`CompiledPolicy::stats`]; it does not grow with the number of rules unless the rules
//! themselves are indistinguishable by prefix, protocol, exact port and application (for
//! example thousands of rules that differ only in port *ranges*): such rules share a bucket
//! and are scanned in order, as any classifier without that dimension would. Rules that differ
//! only in application (one rule per program, the commonest firewall policy) are keyed apart.
//!
//! # Stack
//!
//! The lookup path is `lookup` → `lookup_in` → `entry_matches` → `residual_ok` → (set or
//! range binary search, app comparison); no recursion, no arrays on the stack, a fixed number
//! of scalar locals. Its frame sizes are measured in `docs/policy.md` (well under 1 KiB).
//!
//! # Memory
//!
//! All memory is allocated by `compile` with `try_reserve*` and owned by the
//! [`CompiledPolicy`]; dropping it frees everything. [`CompiledPolicy::memory_bytes`] reports
//! the heap bytes held (capacities).

use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;

use crate::fold::{fold_unit, folded_hash};
use crate::{
    Action, Addr, AddrCond, AddrRange, Direction, IpVersion, Policy, PortCond, Query, Rule,
    ValidationError, Verdict,
};

/// Most alternatives (entries) one rule becomes in one partition before long range lists are
/// turned into residual predicates.
pub const EXPAND_LIMIT: usize = 16;
/// Entries per bucket the placement aims for.
pub const BUCKET_LIMIT: u32 = 8;
/// Most entries in all partitions together; above it the policy is recompiled with one entry
/// per rule and partition (all long lists as predicates), which always fits.
pub const ENTRY_BUDGET: usize = 4_000_000;

/// Hash slots per distinct key (rounded up to a power of two per table): sparse enough that a
/// probe for a key no entry has usually lands on an empty slot.
pub const SLOTS_PER_KEY: usize = 8;

const NONE: u32 = u32::MAX;

/// Why a policy could not be compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompileError {
    /// The policy breaks a model rule or limit ([`Policy::validate`]).
    Invalid(ValidationError),
    /// An allocation failed.
    OutOfMemory,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Invalid(v) => write!(f, "invalid policy: {v}"),
            CompileError::OutOfMemory => write!(f, "out of memory while compiling the policy"),
        }
    }
}

fn oom<T>(_: T) -> CompileError {
    CompileError::OutOfMemory
}

fn push<T>(v: &mut Vec<T>, x: T) -> Result<(), CompileError> {
    v.try_reserve(1).map_err(oom)?;
    v.push(x);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Address words.

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
                    <$t>::MAX
                        << (u32::from(<Self as Word>::BITS)
                            - u32::from(len.min(<Self as Word>::BITS)))
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
word!(u128, 128, V6, |x| (x as u64)
    ^ ((x >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));

/// Number of prefixes needed for `[lo, hi]`, counting at most up to `cap + 1`, calling `f`
/// for each (value, length) while `f` is given.
fn split_range<W: Word>(lo: W, hi: W, cap: usize, mut f: Option<&mut dyn FnMut(W, u8)>) -> usize {
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
fn hull_prefix<W: Word>(lo: W, hi: W) -> (W, u8) {
    let len = lo.xor(hi).lz();
    (lo.and(W::mask(len)), len)
}

/// Sorts and merges overlapping or adjacent ranges in place.
fn merge_ranges<T: Copy + Ord>(v: &mut Vec<(T, T)>, succ: impl Fn(T) -> Option<T>) {
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

fn in_sorted<T: Copy + Ord>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|r| r.0 <= x);
    match i.checked_sub(1).and_then(|j| ranges.get(j)) {
        Some(r) => x <= r.1,
        None => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled pieces.

#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn of<'a, T>(&self, v: &'a [T]) -> &'a [T] {
        let s = self.start as usize;
        v.get(s..s.saturating_add(self.len as usize)).unwrap_or(&[])
    }
}

/// Sorted, disjoint ranges of every address set, for one IP version.
#[derive(Default)]
struct SetIndex<W> {
    ranges: Vec<(W, W)>,
    spans: Vec<Span>,
}

impl<W: Word> SetIndex<W> {
    fn build(p: &Policy) -> Result<Self, CompileError> {
        let mut total = 0usize;
        for s in &p.sets {
            total += s.entries.iter().filter(|r| W::range(r).is_some()).count();
        }
        let mut ix = SetIndex {
            ranges: Vec::new(),
            spans: Vec::new(),
        };
        ix.ranges.try_reserve_exact(total).map_err(oom)?;
        ix.spans.try_reserve_exact(p.sets.len()).map_err(oom)?;
        let mut tmp: Vec<(W, W)> = Vec::new();
        for s in &p.sets {
            tmp.clear();
            let n = s.entries.iter().filter(|r| W::range(r).is_some()).count();
            tmp.try_reserve(n).map_err(oom)?;
            tmp.extend(s.entries.iter().filter_map(W::range));
            merge_ranges(&mut tmp, W::succ);
            let start = ix.ranges.len() as u32;
            ix.ranges.extend_from_slice(&tmp);
            ix.spans.push(Span {
                start,
                len: tmp.len() as u32,
            });
        }
        Ok(ix)
    }

    fn set(&self, i: u32) -> &[(W, W)] {
        match self.spans.get(i as usize) {
            Some(s) => s.of(&self.ranges),
            None => &[],
        }
    }

    fn bytes(&self) -> usize {
        self.ranges.capacity() * size_of::<(W, W)>() + self.spans.capacity() * size_of::<Span>()
    }
}

#[derive(Clone, Copy, Debug)]
enum Pred {
    Any,
    Ranges(Span),
    Set(u32),
}

#[derive(Clone, Copy, Debug)]
struct Residual {
    app: u32,
    remote: Pred,
    local: Pred,
    remote_port: Span,
    local_port: Span,
}

#[derive(Clone, Copy, Debug)]
struct Entry<W> {
    r_val: W,
    r_mask: W,
    l_val: W,
    l_mask: W,
    rule: u32,
    residual: u32,
    rp_lo: u16,
    rp_hi: u16,
    lp_lo: u16,
    lp_hi: u16,
    proto: u8,
    proto_any: bool,
    /// 0 any, 1 not loopback, 2 loopback.
    loopback: u8,
}

#[derive(Clone, Copy, Debug)]
struct Table<W> {
    mask_r: W,
    mask_l: W,
    small_mask: u64,
    /// The folded application hash is part of the key: every entry has an application.
    app_keyed: bool,
    min_rule: u32,
    slot_base: u32,
    shift: u32,
}

#[derive(Default)]
struct Partition<W> {
    tables: Vec<Table<W>>,
    offsets: Vec<u32>,
    entries: Vec<Entry<W>>,
    residuals: Vec<Residual>,
    ranges: Vec<(W, W)>,
    ports: Vec<(u16, u16)>,
    max_bucket: u32,
}

impl<W> Partition<W> {
    fn bytes(&self) -> usize {
        self.tables.capacity() * size_of::<Table<W>>()
            + self.offsets.capacity() * 4
            + self.entries.capacity() * size_of::<Entry<W>>()
            + self.residuals.capacity() * size_of::<Residual>()
            + self.ranges.capacity() * size_of::<(W, W)>()
            + self.ports.capacity() * size_of::<(u16, u16)>()
    }
}

#[derive(Clone, Copy, Debug)]
struct RuleInfo {
    id: u32,
    action: Action,
    log: bool,
}

#[derive(Clone, Copy, Debug)]
struct AppMeta {
    start: u32,
    len: u32,
    hash: u64,
}

#[inline]
fn small_key(proto: u8, rp: u16, lp: u16) -> u64 {
    u64::from(proto) | (u64::from(rp) << 8) | (u64::from(lp) << 24)
}

#[inline]
fn key_hash(r: u64, l: u64, small: u64) -> u64 {
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    let x = r.wrapping_mul(K1) ^ l.rotate_left(23) ^ small.rotate_left(41);
    let b = u128::from(x) * u128::from(K2);
    (b as u64) ^ ((b >> 64) as u64)
}

/// Statistics of a compiled policy, per partition in the order outbound IPv4, inbound IPv4,
/// outbound IPv6, inbound IPv6.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompiledStats {
    /// Hash tables per partition (the most probes one lookup makes).
    pub tables: [usize; 4],
    /// Entries per partition.
    pub entries: [usize; 4],
    /// Longest bucket per partition.
    pub max_bucket: [u32; 4],
}

/// A policy compiled for lookup. Immutable; share it between CPUs by reference.
pub struct CompiledPolicy {
    v4: [Partition<u32>; 2],
    v6: [Partition<u128>; 2],
    sets4: SetIndex<u32>,
    sets6: SetIndex<u128>,
    apps: Vec<u16>,
    app_meta: Vec<AppMeta>,
    rules: Vec<RuleInfo>,
    default_outbound: Action,
    default_inbound: Action,
    log_all: bool,
}

impl fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("rules", &self.rules.len())
            .field("stats", &self.stats())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

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

/// A key with the application hash mixed in (tables keyed by application).
#[inline]
fn with_app(key: u64, app_hash: u64) -> u64 {
    key ^ app_hash
}

impl CompiledPolicy {
    /// Compiles `p` (validating it first). Runs at PASSIVE_LEVEL in the driver; every
    /// allocation is fallible. Errors: [`CompileError::Invalid`], [`CompileError::OutOfMemory`].
    pub fn compile(p: &Policy) -> Result<CompiledPolicy, CompileError> {
        p.validate().map_err(|e| match e {
            ValidationError::OutOfMemory => CompileError::OutOfMemory,
            e => CompileError::Invalid(e),
        })?;
        match Self::compile_with(p, EXPAND_LIMIT)? {
            Some(c) => Ok(c),
            None => Self::compile_with(p, 1)?.ok_or(CompileError::OutOfMemory),
        }
    }

    /// Compiles with one entry per rule and partition (every range list and port list as a
    /// predicate): the fallback `compile` uses over [`ENTRY_BUDGET`]. Public so tests can check
    /// that path against the reference too.
    #[doc(hidden)]
    pub fn compile_coarse(p: &Policy) -> Result<CompiledPolicy, CompileError> {
        p.validate().map_err(|e| match e {
            ValidationError::OutOfMemory => CompileError::OutOfMemory,
            e => CompileError::Invalid(e),
        })?;
        Self::compile_with(p, 1)?.ok_or(CompileError::OutOfMemory)
    }

    fn compile_with(p: &Policy, expand: usize) -> Result<Option<CompiledPolicy>, CompileError> {
        let sets4 = SetIndex::<u32>::build(p)?;
        let sets6 = SetIndex::<u128>::build(p)?;
        let mut rules = Vec::new();
        rules.try_reserve_exact(p.rules.len()).map_err(oom)?;
        rules.extend(p.rules.iter().map(|r| RuleInfo {
            id: r.id,
            action: r.action,
            log: r.log,
        }));
        let mut apps = Vec::new();
        let mut app_meta = Vec::new();
        let units: usize = p
            .rules
            .iter()
            .filter_map(|r| r.app.as_ref())
            .map(|a| a.0.len())
            .sum();
        apps.try_reserve_exact(units).map_err(oom)?;
        let mut rule_app: Vec<u32> = Vec::new();
        rule_app.try_reserve_exact(p.rules.len()).map_err(oom)?;
        for r in &p.rules {
            match &r.app {
                Some(a) => {
                    rule_app.push(app_meta.len() as u32);
                    let start = apps.len() as u32;
                    apps.extend(a.0.iter().map(|u| fold_unit(*u)));
                    push(
                        &mut app_meta,
                        AppMeta {
                            start,
                            len: a.0.len() as u32,
                            hash: folded_hash(&a.0),
                        },
                    )?;
                }
                None => rule_app.push(NONE),
            }
        }
        let mut budget = ENTRY_BUDGET;
        let mut build4 = |d| {
            build_partition::<u32>(
                p,
                d,
                IpVersion::V4,
                &sets4,
                &rule_app,
                &app_meta,
                expand,
                &mut budget,
            )
        };
        let Some(o4) = build4(Direction::Outbound)? else {
            return Ok(None);
        };
        let Some(i4) = build4(Direction::Inbound)? else {
            return Ok(None);
        };
        let mut build6 = |d| {
            build_partition::<u128>(
                p,
                d,
                IpVersion::V6,
                &sets6,
                &rule_app,
                &app_meta,
                expand,
                &mut budget,
            )
        };
        let Some(o6) = build6(Direction::Outbound)? else {
            return Ok(None);
        };
        let Some(i6) = build6(Direction::Inbound)? else {
            return Ok(None);
        };
        Ok(Some(CompiledPolicy {
            v4: [o4, i4],
            v6: [o6, i6],
            sets4,
            sets6,
            apps,
            app_meta,
            rules,
            default_outbound: p.default_outbound,
            default_inbound: p.default_inbound,
            log_all: p.log_all,
        }))
    }

    /// Heap bytes held by the compiled policy (allocated capacities).
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.v4.iter().map(Partition::bytes).sum::<usize>()
            + self.v6.iter().map(Partition::bytes).sum::<usize>()
            + self.sets4.bytes()
            + self.sets6.bytes()
            + self.apps.capacity() * 2
            + self.app_meta.capacity() * size_of::<AppMeta>()
            + self.rules.capacity() * size_of::<RuleInfo>()
    }

    /// Number of rules of the source policy.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Table and bucket statistics (the lookup's worst case is bounded by them).
    pub fn stats(&self) -> CompiledStats {
        let mut s = CompiledStats::default();
        let parts: [(usize, usize, u32); 4] = [
            (
                self.v4[0].tables.len(),
                self.v4[0].entries.len(),
                self.v4[0].max_bucket,
            ),
            (
                self.v4[1].tables.len(),
                self.v4[1].entries.len(),
                self.v4[1].max_bucket,
            ),
            (
                self.v6[0].tables.len(),
                self.v6[0].entries.len(),
                self.v6[0].max_bucket,
            ),
            (
                self.v6[1].tables.len(),
                self.v6[1].entries.len(),
                self.v6[1].max_bucket,
            ),
        ];
        for (i, (t, e, m)) in parts.into_iter().enumerate() {
            if let (Some(a), Some(b), Some(c)) = (
                s.tables.get_mut(i),
                s.entries.get_mut(i),
                s.max_bucket.get_mut(i),
            ) {
                *a = t;
                *b = e;
                *c = m;
            }
        }
        s
    }

    /// The verdict for `q`, identical to [`crate::reference::evaluate`] on the source policy.
    /// No allocation, no recursion, no panic; safe at DISPATCH_LEVEL.
    pub fn lookup(&self, q: &Query<'_>) -> Verdict {
        let di = match q.direction {
            Direction::Outbound => 0,
            Direction::Inbound => 1,
        };
        let mut app = AppCache {
            app: q.app,
            hash: None,
        };
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
        let di = usize::from(q.direction == Direction::Inbound);
        let mut app = AppCache {
            app: q.app,
            hash: None,
        };
        let _ = match q.remote {
            Addr::V4(r) => {
                let l = u32::addr(q.local_normalized()).unwrap_or(0);
                self.v4
                    .get(di)
                    .map(|p| self.lookup_in(p, &self.sets4, r, l, q, &mut app, &mut w))
            }
            Addr::V6(r) => {
                let l = u128::addr(q.local_normalized()).unwrap_or(0);
                self.v6
                    .get(di)
                    .map(|p| self.lookup_in(p, &self.sets6, r, l, q, &mut app, &mut w))
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
            let mut h = key_hash(
                r.and(t.mask_r).fold64(),
                l.and(t.mask_l).fold64(),
                small & t.small_mask,
            );
            if t.app_keyed {
                // Every entry of this table has an application condition: without one in the
                // query, none can match.
                let Some(ah) = app.hash() else { continue };
                h = with_app(h, ah);
            }
            let slot =
                (t.slot_base as usize).wrapping_add(h.checked_shr(t.shift).unwrap_or(0) as usize);
            let (Some(&s), Some(&e)) = (
                part.offsets.get(slot),
                part.offsets.get(slot.wrapping_add(1)),
            ) else {
                continue;
            };
            let Some(bucket) = part.entries.get(s as usize..e as usize) else {
                continue;
            };
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
            && (e.residual == NONE || self.residual_ok(part, sets, e.residual, r, l, q, app))
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
        let Some(res) = part.residuals.get(idx as usize) else {
            return false;
        };
        let pred_ok = |p: Pred, x: W| match p {
            Pred::Any => true,
            Pred::Ranges(s) => in_sorted(s.of(&part.ranges), x),
            Pred::Set(i) => in_sorted(sets.set(i), x),
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
            let Some(meta) = self.app_meta.get(res.app as usize) else {
                return false;
            };
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
            let stored = Span {
                start: meta.start,
                len: meta.len,
            }
            .of(&self.apps);
            if stored.len() != qa.len() || !stored.iter().zip(qa).all(|(s, u)| *s == fold_unit(*u))
            {
                return false;
            }
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Building one partition.

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

struct BuildEntry<W> {
    e: Entry<W>,
    la: u8,
    lb: u8,
    p: bool,
    rp: bool,
    lp: bool,
    /// Folded hash of the rule's application, if it has one.
    app: Option<u64>,
}

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
        small_key(
            if self.p { 0xFF } else { 0 },
            if self.rp { 0xFFFF } else { 0 },
            if self.lp { 0xFFFF } else { 0 },
        )
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
        Counts {
            slots: Vec::new(),
            used: 0,
        }
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
        let Some(s) = self.slots.get_mut(i) else {
            return Ok(0);
        };
        if s.0 == 0 {
            *s = (k, 0);
            self.used += 1;
        }
        s.1 += 1;
        Ok(s.1)
    }
}

fn port_plan(
    c: &Option<PortCond>,
    ports: &mut Vec<(u16, u16)>,
    expand: usize,
) -> Result<PortPlan, CompileError> {
    let mut alts = Vec::new();
    let Some(c) = c else {
        push(&mut alts, (0u16, u16::MAX))?;
        return Ok(PortPlan {
            alts,
            pred: Span::default(),
        });
    };
    alts.try_reserve(c.ranges.len()).map_err(oom)?;
    alts.extend_from_slice(&c.ranges);
    merge_ranges(&mut alts, |x: u16| x.checked_add(1));
    if alts.len() <= expand {
        return Ok(PortPlan {
            alts,
            pred: Span::default(),
        });
    }
    let start = ports.len() as u32;
    ports.try_reserve(alts.len()).map_err(oom)?;
    ports.extend_from_slice(&alts);
    let pred = Span {
        start,
        len: alts.len() as u32,
    };
    let lo = alts.first().map_or(0, |r| r.0);
    let hi = alts.last().map_or(u16::MAX, |r| r.1);
    alts.clear();
    alts.push((lo, hi));
    Ok(PortPlan { alts, pred })
}

/// Plans an address condition for partition version `W`; `None` when it cannot match any
/// address of that version.
fn addr_plan<W: Word>(
    c: &Option<AddrCond>,
    sets: &SetIndex<W>,
    ranges: &mut Vec<(W, W)>,
    expand: usize,
) -> Result<Option<AddrPlan<W>>, CompileError> {
    let mut alts: Vec<Prefix<W>> = Vec::new();
    let (merged, set): (Vec<(W, W)>, Option<u32>) = match c {
        None => {
            push(&mut alts, (W::default(), 0))?;
            return Ok(Some(AddrPlan {
                alts,
                pred: Pred::Any,
            }));
        }
        Some(AddrCond::Ranges(rs)) => {
            let mut v: Vec<(W, W)> = Vec::new();
            v.try_reserve(rs.len()).map_err(oom)?;
            v.extend(rs.iter().filter_map(W::range));
            merge_ranges(&mut v, W::succ);
            (v, None)
        }
        Some(AddrCond::Set(i)) => {
            let s = sets.set(*i);
            if s.len() > expand {
                // Large set: hull key + predicate on the set index; no copy.
                let (Some(first), Some(last)) = (s.first(), s.last()) else {
                    return Ok(None);
                };
                push(&mut alts, hull_prefix(first.0, last.1))?;
                return Ok(Some(AddrPlan {
                    alts,
                    pred: Pred::Set(*i),
                }));
            }
            let mut v: Vec<(W, W)> = Vec::new();
            v.try_reserve(s.len()).map_err(oom)?;
            v.extend_from_slice(s);
            (v, Some(*i))
        }
    };
    let (Some(first), Some(last)) = (merged.first().copied(), merged.last().copied()) else {
        return Ok(None);
    };
    let mut count = 0usize;
    for (lo, hi) in &merged {
        count += split_range(*lo, *hi, expand, None);
        if count > expand {
            break;
        }
    }
    if count <= expand {
        alts.try_reserve(count).map_err(oom)?;
        for (lo, hi) in &merged {
            split_range(*lo, *hi, expand, Some(&mut |v, len| alts.push((v, len))));
        }
        return Ok(Some(AddrPlan {
            alts,
            pred: Pred::Any,
        }));
    }
    push(&mut alts, hull_prefix(first.0, last.1))?;
    let pred = match set {
        Some(i) => Pred::Set(i),
        None => {
            let start = ranges.len() as u32;
            ranges.try_reserve(merged.len()).map_err(oom)?;
            ranges.extend_from_slice(&merged);
            Pred::Ranges(Span {
                start,
                len: merged.len() as u32,
            })
        }
    };
    Ok(Some(AddrPlan { alts, pred }))
}

/// Collapses a plan to its hull + predicate (when the rule's alternatives multiply too much).
fn collapse_addr<W: Word>(
    plan: &mut AddrPlan<W>,
    ranges: &mut Vec<(W, W)>,
) -> Result<(), CompileError> {
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
        _ => Pred::Ranges(Span {
            start,
            len: stored.len() as u32,
        }),
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
    plan.pred = Span {
        start,
        len: plan.alts.len() as u32,
    };
    let lo = plan.alts.first().map_or(0, |r| r.0);
    let hi = plan.alts.last().map_or(u16::MAX, |r| r.1);
    plan.alts.clear();
    plan.alts.push((lo, hi));
    Ok(())
}

fn rule_applies(r: &Rule, d: Direction, v: IpVersion) -> bool {
    r.direction.is_none_or(|x| x == d) && r.ip_version.is_none_or(|x| x == v)
}

#[allow(clippy::too_many_arguments)]
fn build_partition<W: Word>(
    p: &Policy,
    d: Direction,
    v: IpVersion,
    sets: &SetIndex<W>,
    rule_app: &[u32],
    app_meta: &[AppMeta],
    expand: usize,
    budget: &mut usize,
) -> Result<Option<Partition<W>>, CompileError> {
    let mut part: Partition<W> = Partition::default();
    let mut items: Vec<BuildEntry<W>> = Vec::new();
    for (ri, r) in p.rules.iter().enumerate() {
        if !rule_applies(r, d, v) {
            continue;
        }
        let Some(mut ra) = addr_plan(&r.remote_addr, sets, &mut part.ranges, expand)? else {
            continue;
        };
        let Some(mut la) = addr_plan(&r.local_addr, sets, &mut part.ranges, expand)? else {
            continue;
        };
        let mut rp = port_plan(&r.remote_port, &mut part.ports, expand)?;
        let mut lp = port_plan(&r.local_port, &mut part.ports, expand)?;
        // Keep the product of alternatives within `expand` by collapsing the widest dimension.
        loop {
            let n = [ra.alts.len(), la.alts.len(), rp.alts.len(), lp.alts.len()];
            if n.iter()
                .try_fold(1usize, |acc, x| acc.checked_mul(*x))
                .is_some_and(|prod| prod <= expand)
            {
                break;
            }
            let widest = n
                .iter()
                .enumerate()
                .max_by_key(|(_, x)| **x)
                .map_or(0, |(i, _)| i);
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
                Residual {
                    app,
                    remote: ra.pred,
                    local: la.pred,
                    remote_port: rp.pred,
                    local_port: lp.pred,
                },
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
    place(&mut part, items)?;
    Ok(Some(part))
}

fn relax(len: u8, bits: u8) -> u8 {
    let step = if bits == 32 { 8 } else { 16 };
    len - len % step
}

/// Assigns entries to tables (TupleMerge placement) and lays out the final arrays.
fn place<W: Word>(part: &mut Partition<W>, items: Vec<BuildEntry<W>>) -> Result<(), CompileError> {
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
                let coarse = Spec {
                    a: relax(it.la, W::BITS),
                    b: relax(it.lb, W::BITS),
                    p: false,
                    rp: false,
                    lp: false,
                    ap: false,
                };
                let exact = Spec {
                    a: it.la,
                    b: it.lb,
                    p: it.p,
                    rp: it.rp,
                    lp: it.lp,
                    ap: it.app.is_some(),
                };
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
        let Some(s) = specs.get(si) else {
            return Err(CompileError::OutOfMemory);
        };
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
        let (Some(s), Some(&keys), Some(&mr)) =
            (specs.get(si), keys_per_spec.get(si), min_rule.get(si))
        else {
            continue;
        };
        let bits = (keys as usize * SLOTS_PER_KEY)
            .max(2)
            .next_power_of_two()
            .trailing_zeros();
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
        let Some(f) = fill.get_mut(slot as usize) else {
            continue;
        };
        if let Some(dst) = part.entries.get_mut(*f as usize) {
            *dst = it.e;
        }
        *f += 1;
    }
    Ok(())
}
