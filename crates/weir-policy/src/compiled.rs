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
//!    When no enabled rule names a direction, the two directions' partitions of a version
//!    would be identical: only the outbound one is built and inbound lookups use it.
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
//!    Placement is TupleMerge-Offline-like (`compiled/place.rs`): in priority order, a new
//!    table takes, of the tuples met going down the unplaced entries (the best entry's exact
//!    tuple, narrowed at each entry that does not fit it), the one that covers the longest
//!    unbroken run of them with no key over the partition's per-key cap (found by binary
//!    search: along that chain the runs grow, then shrink), unless a candidate holds four
//!    times as many entries of the next few thousand (a tuple with few key bits can win the
//!    run and hold nothing more); it then takes every later entry that fits with room. So the
//!    top-priority rules sit in few tables and the lookup's early stop comes early. After 24
//!    such tables the rest is placed greedily: into the most specific fitting table with room;
//!    failing that a new table with a coarse tuple (lengths rounded down to multiples of 8
//!    (IPv4) / 16 (IPv6), no keyed protocol or ports), and if that already exists and is full,
//!    with the entry's exact tuple, else into the first fitting table over the cap. Then
//!    tables are **merged** (`compiled/place/merge.rs`): in order of their best rule, each
//!    joins the earlier table whose tuple met with its own keeps every key within the cap and
//!    the expected bucket scan within one more entry (a merge never adds a probe, and saves
//!    one to every lookup that passes both tables), within a work budget. The caps are chosen
//!    per partition: the placement is made under up to eight variants (assignment cap 4, 8, 16
//!    or 6 ([`BUCKET_LIMIT`] is 8), each merged with the same cap or three times it) and the
//!    partition keeps the one whose lookups cost least by the cost model (62 instructions per
//!    table probed, 11.5 per entry checked) over up to 2,048 queries at corners of its own
//!    rules (no trace needed; within 1/64 the smaller caps win). [`SEARCH_BUDGET`] bounds the
//!    work: the larger the policy, the fewer variants are tried (above 131,072 entries in all,
//!    one placement with cap 8).
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
//! of scalar locals (`compiled/lookup.rs`). Its frame sizes are measured in `docs/policy.md`
//! (well under 1 KiB).
//!
//! # Modules
//!
//! - `word`: address words and the range helpers (split into prefixes, hull, merge, search).
//! - `build`: one partition's entries from the rules' conditions.
//! - `place`: which table each entry goes into; the final arrays.
//! - `lookup`: the lookup itself, the only part that runs in classifyFn.
//!
//! # Memory
//!
//! All memory is allocated by `compile` with `try_reserve*` and owned by the
//! [`CompiledPolicy`]; dropping it frees everything. [`CompiledPolicy::memory_bytes`] reports
//! the heap bytes held (capacities).

mod build;
mod estimate;
mod lookup;
mod place;
mod sets;
mod word;

use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;

use build::build_partition;
pub use word::Word;
use sets::SetIndex;

use crate::fold::{fold_unit, folded_hash};
use crate::{Action, Direction, IpVersion, Policy, ValidationError};

/// Most alternatives (entries) one rule becomes in one partition before long range lists are
/// turned into residual predicates.
pub const EXPAND_LIMIT: usize = 16;
/// Entries per bucket the placement aims for.
pub const BUCKET_LIMIT: u32 = 8;
/// Most entries in all partitions together; above it the policy is recompiled with one entry
/// per rule and partition (all long lists as predicates), which always fits.
pub const ENTRY_BUDGET: usize = 4_000_000;

/// Entries the placement may lay out in all, over all partitions and the variants it tries
/// (`compiled/place.rs`): a policy of `n` entries in all tries the first `SEARCH_BUDGET / n`
/// variants per partition (at most eight): all eight up to 32,768 entries, two (cap 4, merged
/// with cap 4 and with cap 12) up to 131,072, above that one placement with [`BUCKET_LIMIT`];
/// a bound on the compile time.
pub const SEARCH_BUDGET: usize = 1 << 18;

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

/// A key with the application hash mixed in (tables keyed by application).
#[inline]
fn with_app(key: u64, app_hash: u64) -> u64 {
    key ^ app_hash
}

/// Statistics of a compiled policy, per partition in the order outbound IPv4, inbound IPv4,
/// outbound IPv6, inbound IPv6. When no enabled rule names a direction, one partition per
/// version serves both directions and is reported in both places.
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
    /// Partition index of an inbound lookup: 1, or 0 when no rule names a direction (the
    /// outbound partitions then serve both directions and the inbound ones stay empty).
    direction_mask: usize,
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
        rules.extend(p.rules.iter().map(|r| RuleInfo { id: r.id, action: r.action, log: r.log }));
        let mut apps = Vec::new();
        let mut app_meta = Vec::new();
        let units: usize = p.rules.iter().filter_map(|r| r.app.as_ref()).map(|a| a.0.len()).sum();
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
                        AppMeta { start, len: a.0.len() as u32, hash: folded_hash(&a.0) },
                    )?;
                }
                None => rule_app.push(NONE),
            }
        }
        let mut budget = ENTRY_BUDGET;
        // Without a rule that names a direction, the inbound partitions would repeat the
        // outbound ones entry for entry: build each version once and let both directions use it.
        let one_direction = p.rules.iter().all(|r| !r.enabled || r.direction.is_none());
        let mut build4 = |d| build_partition::<u32>(p, d, IpVersion::V4, &sets4, &rule_app, &app_meta, expand, &mut budget);
        let Some((mut o4, o4_items)) = build4(Direction::Outbound)? else { return Ok(None) };
        let (mut i4, i4_items) = if one_direction {
            (Partition::default(), Vec::new())
        } else {
            let Some(built) = build4(Direction::Inbound)? else { return Ok(None) };
            built
        };
        let mut build6 = |d| build_partition::<u128>(p, d, IpVersion::V6, &sets6, &rule_app, &app_meta, expand, &mut budget);
        let Some((mut o6, o6_items)) = build6(Direction::Outbound)? else { return Ok(None) };
        let (mut i6, i6_items) = if one_direction {
            (Partition::default(), Vec::new())
        } else {
            let Some(built) = build6(Direction::Inbound)? else { return Ok(None) };
            built
        };
        // The placement tries as many per-key caps per partition as the policy's entries, times
        // the caps tried, allow within the search budget (a bound on compile time).
        let total = o4_items.len() + i4_items.len() + o6_items.len() + i6_items.len();
        let search = SEARCH_BUDGET / total.max(1);
        place::place(&mut o4, &o4_items, search)?;
        place::place(&mut i4, &i4_items, search)?;
        place::place(&mut o6, &o6_items, search)?;
        place::place(&mut i6, &i6_items, search)?;
        Ok(Some(CompiledPolicy {
            v4: [o4, i4],
            v6: [o6, i6],
            direction_mask: usize::from(!one_direction),
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
        let f4 = |d: usize| self.v4.get(d).map_or((0, 0, 0), |p| (p.tables.len(), p.entries.len(), p.max_bucket));
        let f6 = |d: usize| self.v6.get(d).map_or((0, 0, 0), |p| (p.tables.len(), p.entries.len(), p.max_bucket));
        let inbound = self.direction_mask;
        let parts: [(usize, usize, u32); 4] = [f4(0), f4(inbound), f6(0), f6(inbound)];
        for (i, (t, e, m)) in parts.into_iter().enumerate() {
            if let (Some(a), Some(b), Some(c)) =
                (s.tables.get_mut(i), s.entries.get_mut(i), s.max_bucket.get_mut(i))
            {
                *a = t;
                *b = e;
                *c = m;
            }
        }
        s
    }

}
