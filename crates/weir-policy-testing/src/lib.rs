//! Generators for weir-policy's tests, benchmarks, fuzzing and other crates' test vectors (host
//! only; a crate of its own so that nothing of it can reach the driver, see Cargo.toml).
//!
//! - [`classbench`]: deterministic ClassBench-style rule sets of any size (three profiles in
//!   the spirit of the ACL, firewall and IP-chain seeds: mixes of prefix lengths on both
//!   addresses, exact ports, port ranges, wildcards, protocols), plus optional address-set,
//!   application and loopback conditions.
//! - [`trace`]: queries for a policy in the way ClassBench's trace generator makes them: pick a
//!   rule, pick a point inside it (often on a boundary), plus some uniform random queries.
//! - proptest strategies: [`arb_policy`], [`arb_small_policy`], [`arb_query_near`].
//! - [`OwnedQuery`]: a [`Query`] that owns its application path.
//!
//! Host-only test support (never built into the driver): indexing here picks from non-empty
//! tables, and a mistake would fail a test, not a machine.
#![allow(clippy::indexing_slicing)]
#![forbid(unsafe_code)]

use proptest::prelude::*;

use weir_policy::{
    Action, Addr, AddrCond, AddrRange, AddressSet, AppPath, Direction, IpVersion, Policy, PortCond, Query,
    Rule,
};

/// A query that owns its application path (so generators can return it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedQuery {
    /// See [`Query::direction`].
    pub direction: Direction,
    /// See [`Query::remote`].
    pub remote: Addr,
    /// See [`Query::local`].
    pub local: Addr,
    /// See [`Query::protocol`].
    pub protocol: u8,
    /// See [`Query::remote_port`].
    pub remote_port: u16,
    /// See [`Query::local_port`].
    pub local_port: u16,
    /// See [`Query::app`].
    pub app: Option<Vec<u16>>,
    /// See [`Query::loopback`].
    pub loopback: bool,
}

impl OwnedQuery {
    /// Borrows it as a [`Query`].
    pub fn as_query(&self) -> Query<'_> {
        Query {
            direction: self.direction,
            remote: self.remote,
            local: self.local,
            protocol: self.protocol,
            remote_port: self.remote_port,
            local_port: self.local_port,
            app: self.app.as_deref(),
            loopback: self.loopback,
        }
    }
}

/// SplitMix64: a tiny deterministic generator so rule sets are reproducible from a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// True with probability `p_percent`%.
    pub fn chance(&mut self, p_percent: u64) -> bool {
        self.below(100) < p_percent
    }
    /// One element of `choices` (non-empty).
    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len() as u64) as usize]
    }
}

/// ClassBench-like profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// ACL-like: mostly specific destination (remote) prefixes, exact well-known remote ports,
    /// sources often wide.
    Acl,
    /// Firewall-like: more wildcards and port ranges on both sides.
    Fw,
    /// IP-chain-like: a mix of both, more protocol variety.
    Ipc,
}

/// Extra condition kinds mixed into [`classbench`] rule sets.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras {
    /// Percent of rules with an address-set condition (needs `set_entries > 0`).
    pub set_percent: u64,
    /// Entries of the one address set generated (0 = no set).
    pub set_entries: usize,
    /// Percent of rules with an application condition.
    pub app_percent: u64,
    /// Percent of rules with a loopback condition.
    pub loopback_percent: u64,
    /// Percent of IPv6 rules.
    pub v6_percent: u64,
}

fn prefix_len(rng: &mut Rng, profile: Profile, remote: bool) -> u8 {
    // Length mixes loosely following published ClassBench seed statistics: peaks at 32, 24,
    // 16, 8 and 0 with a spread in between.
    let wild = match (profile, remote) {
        (Profile::Acl, true) => 5,
        (Profile::Acl, false) => 30,
        (Profile::Fw, _) => 35,
        (Profile::Ipc, _) => 15,
    };
    if rng.chance(wild) {
        return 0;
    }
    match rng.below(10) {
        0..=3 => 32,
        4 => 24,
        5 => 16,
        6 => 8,
        _ => 8 + rng.below(25) as u8,
    }
}

fn port_cond(rng: &mut Rng, profile: Profile, remote: bool) -> Option<PortCond> {
    let wild = match (profile, remote) {
        (Profile::Acl, true) => 25,
        (Profile::Acl, false) => 85,
        (Profile::Fw, _) => 55,
        (Profile::Ipc, _) => 50,
    };
    if rng.chance(wild) {
        return None;
    }
    let ranges = match rng.below(10) {
        0..=5 => {
            let p = rng.pick(&[22u16, 25, 53, 80, 123, 443, 445, 3389, 8080, 8443]);
            let p = if rng.chance(30) {
                rng.below(65536) as u16
            } else {
                p
            };
            vec![(p, p)]
        }
        6 => vec![(1024, 65535)],
        7 => vec![(0, 1023)],
        8 => {
            let a = rng.below(65536) as u16;
            let b = rng.below(65536) as u16;
            vec![(a.min(b), a.max(b))]
        }
        _ => {
            let n = 2 + rng.below(4);
            (0..n)
                .map(|_| {
                    let p = rng.below(65536) as u16;
                    (p, p.saturating_add(rng.below(4) as u16))
                })
                .collect()
        }
    };
    Some(PortCond { ranges })
}

/// A pool of "network" prefixes rules draw from, so rules overlap like real rule sets do.
struct Pool {
    v4: Vec<u32>,
    v6: Vec<u128>,
}

impl Pool {
    fn new(rng: &mut Rng, n: usize) -> Pool {
        let v4 = (0..n.max(1)).map(|_| rng.next_u64() as u32).collect();
        let v6 = (0..n.max(1))
            .map(|_| {
                (0x2001_0db8u128 << 96)
                    | (u128::from(rng.next_u64()) << 32)
                    | u128::from(rng.next_u64() as u32)
            })
            .collect();
        Pool { v4, v6 }
    }
}

fn v4_prefix(rng: &mut Rng, pool: &Pool, len: u8) -> AddrRange {
    let mut a = pool.v4[rng.below(pool.v4.len() as u64) as usize];
    if rng.chance(50) {
        a ^= rng.next_u64() as u32 & 0xFF; // vary the host part so /32s differ
    }
    AddrRange::v4_cidr(a, len).unwrap_or(AddrRange::V4 {
        lo: 0,
        hi: u32::MAX,
    })
}

fn v6_prefix(rng: &mut Rng, pool: &Pool, len4: u8) -> AddrRange {
    let mut a = pool.v6[rng.below(pool.v6.len() as u64) as usize];
    if rng.chance(50) {
        a ^= u128::from(rng.next_u64() as u16);
    }
    // Map the IPv4 length mix onto IPv6 lengths: 32 -> 128, 24 -> 64, 16 -> 48, 8 -> 32.
    let len = match len4 {
        0 => 0,
        32 => 128,
        24 => 64,
        16 => 48,
        8 => 32,
        l => 32 + (l - 8) * 4,
    };
    AddrRange::v6_cidr(a, len).unwrap_or(AddrRange::V6 {
        lo: 0,
        hi: u128::MAX,
    })
}

/// Application paths the generators use (NT paths, mixed case).
pub fn sample_apps() -> Vec<Vec<u16>> {
    [
        "\\Device\\HarddiskVolume3\\Windows\\System32\\svchost.exe",
        "\\Device\\HarddiskVolume3\\Program Files\\Mozilla Firefox\\firefox.exe",
        "\\device\\harddiskvolume3\\program files (x86)\\Steam\\steam.exe",
        "\\Device\\HarddiskVolume2\\Tools\\curl.exe",
        "\\Device\\HarddiskVolume3\\Users\\Zoë\\AppData\\Local\\Été\\app.exe",
    ]
    .iter()
    .map(|s| s.encode_utf16().collect())
    .collect()
}

/// A deterministic ClassBench-style policy of `n` rules (ids 1000.., random actions), with
/// `extras`, from `seed`. Defaults: outbound permit, inbound block.
pub fn classbench(n: usize, profile: Profile, extras: Extras, seed: u64) -> Policy {
    let mut rng = Rng::new(seed);
    let pool = Pool::new(&mut rng, (n / 8).max(4));
    let apps = sample_apps();
    let mut sets = Vec::new();
    if extras.set_entries > 0 {
        let entries = (0..extras.set_entries)
            .map(|i| {
                if i % 10 == 9 {
                    let a = rng.next_u64() as u32;
                    AddrRange::v4_cidr(a, 16 + rng.below(17) as u8)
                        .unwrap_or(AddrRange::V4 { lo: a, hi: a })
                } else if i % 50 == 7 {
                    let a = (0x2001_0db8u128 << 96) | u128::from(rng.next_u64());
                    AddrRange::V6 { lo: a, hi: a }
                } else {
                    let a = rng.next_u64() as u32;
                    AddrRange::V4 { lo: a, hi: a }
                }
            })
            .collect();
        sets.push(AddressSet {
            name: "reputation".into(),
            entries,
        });
    }
    let mut rules = Vec::with_capacity(n);
    for i in 0..n {
        let v6 = rng.chance(extras.v6_percent);
        let mut r = Rule::any(
            1000 + i as u32,
            if rng.chance(60) {
                Action::Block
            } else {
                Action::Permit
            },
        );
        r.log = rng.chance(10);
        r.ip_version = Some(if v6 { IpVersion::V6 } else { IpVersion::V4 });
        if rng.chance(70) {
            r.direction = Some(if rng.chance(70) {
                Direction::Outbound
            } else {
                Direction::Inbound
            });
        }
        r.protocol = match rng.below(10) {
            0..=4 => Some(6),
            5..=7 => Some(17),
            8 => Some(if v6 { 58 } else { 1 }),
            _ => None,
        };
        for remote in [true, false] {
            let len = prefix_len(&mut rng, profile, remote);
            let cond = if remote && !sets.is_empty() && rng.chance(extras.set_percent) {
                Some(AddrCond::Set(0))
            } else if len == 0 {
                None
            } else if v6 {
                Some(AddrCond::Ranges(vec![v6_prefix(&mut rng, &pool, len)]))
            } else if rng.chance(3) {
                // An arbitrary (non-prefix) range.
                let a = pool.v4[rng.below(pool.v4.len() as u64) as usize];
                let b = a.saturating_add(rng.below(5000) as u32);
                Some(AddrCond::Ranges(vec![AddrRange::V4 { lo: a, hi: b }]))
            } else {
                Some(AddrCond::Ranges(vec![v4_prefix(&mut rng, &pool, len)]))
            };
            if remote {
                r.remote_addr = cond;
            } else {
                r.local_addr = cond;
            }
        }
        if r.protocol != Some(1) && r.protocol != Some(58) {
            r.remote_port = port_cond(&mut rng, profile, true);
            r.local_port = port_cond(&mut rng, profile, false);
        }
        if rng.chance(extras.app_percent) {
            r.app = Some(AppPath(apps[rng.below(apps.len() as u64) as usize].clone()));
        }
        if rng.chance(extras.loopback_percent) {
            r.loopback = Some(rng.chance(50));
        }
        rules.push(r);
    }
    Policy {
        rules,
        sets,
        default_outbound: Action::Permit,
        default_inbound: Action::Block,
        log_all: false,
    }
}

fn point_in_v4(rng: &mut Rng, lo: u32, hi: u32) -> u32 {
    match rng.below(5) {
        0 => lo,
        1 => hi,
        2 => lo.wrapping_sub(1),
        3 => hi.wrapping_add(1),
        _ => lo.wrapping_add(rng.below(u64::from(hi - lo) + 1) as u32),
    }
}

fn point_in_v6(rng: &mut Rng, lo: u128, hi: u128) -> u128 {
    match rng.below(5) {
        0 => lo,
        1 => hi,
        2 => lo.wrapping_sub(1),
        3 => hi.wrapping_add(1),
        _ => {
            let span = hi - lo;
            let off = (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()))
                % span.saturating_add(1).max(1);
            lo.wrapping_add(off)
        }
    }
}

fn addr_near(rng: &mut Rng, p: &Policy, c: &Option<AddrCond>, v6: bool) -> Addr {
    let ranges: Vec<AddrRange> = match c {
        Some(AddrCond::Ranges(rs)) => rs.clone(),
        Some(AddrCond::Set(i)) => {
            let s = &p.sets[*i as usize].entries;
            if s.is_empty() {
                vec![]
            } else {
                (0..3)
                    .map(|_| s[rng.below(s.len() as u64) as usize])
                    .collect()
            }
        }
        None => vec![],
    };
    let of_version: Vec<AddrRange> = ranges
        .into_iter()
        .filter(|r| matches!(r, AddrRange::V6 { .. }) == v6)
        .collect();
    if of_version.is_empty() || rng.chance(5) {
        return if v6 {
            Addr::V6((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()))
        } else {
            Addr::V4(rng.next_u64() as u32)
        };
    }
    match of_version[rng.below(of_version.len() as u64) as usize] {
        AddrRange::V4 { lo, hi } => Addr::V4(point_in_v4(rng, lo, hi)),
        AddrRange::V6 { lo, hi } => Addr::V6(point_in_v6(rng, lo, hi)),
    }
}

fn port_near(rng: &mut Rng, c: &Option<PortCond>) -> u16 {
    match c {
        Some(pc) if !pc.ranges.is_empty() && !rng.chance(5) => {
            let (lo, hi) = pc.ranges[rng.below(pc.ranges.len() as u64) as usize];
            match rng.below(5) {
                0 => lo,
                1 => hi,
                2 => lo.wrapping_sub(1),
                3 => hi.wrapping_add(1),
                _ => lo + rng.below(u64::from(hi - lo) + 1) as u16,
            }
        }
        _ => rng.below(65536) as u16,
    }
}

/// One query aimed at rule `rule` of `p` (a point inside or just outside each of its
/// conditions), or uniformly random when `rule` is out of range.
pub fn query_near(rng: &mut Rng, p: &Policy, rule: usize) -> OwnedQuery {
    let apps = sample_apps();
    let Some(r) = p.rules.get(rule) else {
        let v6 = rng.chance(30);
        let any = |rng: &mut Rng| {
            if v6 {
                Addr::V6((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()))
            } else {
                Addr::V4(rng.next_u64() as u32)
            }
        };
        return OwnedQuery {
            direction: if rng.chance(50) {
                Direction::Outbound
            } else {
                Direction::Inbound
            },
            remote: any(rng),
            local: any(rng),
            protocol: rng.pick(&[6u8, 17, 1, 58, 0, 255]),
            remote_port: rng.below(65536) as u16,
            local_port: rng.below(65536) as u16,
            app: if rng.chance(70) {
                Some(apps[rng.below(apps.len() as u64) as usize].clone())
            } else {
                None
            },
            loopback: rng.chance(20),
        };
    };
    let v6 = match r.ip_version {
        Some(IpVersion::V6) => !rng.chance(3),
        Some(IpVersion::V4) => rng.chance(3),
        None => rng.chance(40),
    };
    let direction = match r.direction {
        Some(d) if !rng.chance(5) => d,
        _ => {
            if rng.chance(50) {
                Direction::Outbound
            } else {
                Direction::Inbound
            }
        }
    };
    let app = match &r.app {
        Some(a) if !rng.chance(10) => {
            // Same path in a different case now and then.
            let mut u = a.0.clone();
            if rng.chance(50) {
                for x in u.iter_mut() {
                    if (0x41..=0x5A).contains(x) {
                        *x += 0x20;
                    } else if (0x61..=0x7A).contains(x) {
                        *x -= 0x20;
                    }
                }
            }
            if rng.chance(5) {
                u.pop();
            }
            Some(u)
        }
        _ => {
            if rng.chance(70) {
                Some(apps[rng.below(apps.len() as u64) as usize].clone())
            } else {
                None
            }
        }
    };
    OwnedQuery {
        direction,
        remote: addr_near(rng, p, &r.remote_addr, v6),
        local: addr_near(rng, p, &r.local_addr, v6),
        protocol: match r.protocol {
            Some(x) if !rng.chance(5) => x,
            _ => rng.pick(&[6u8, 17, 1, 58, 0]),
        },
        remote_port: port_near(rng, &r.remote_port),
        local_port: port_near(rng, &r.local_port),
        app,
        loopback: match r.loopback {
            Some(b) if !rng.chance(10) => b,
            _ => rng.chance(30),
        },
    }
}

/// `n` queries for `p`: 90% aimed at a random rule ([`query_near`]), 10% uniform.
pub fn trace(p: &Policy, n: usize, seed: u64) -> Vec<OwnedQuery> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let rule = if p.rules.is_empty() || rng.chance(10) {
                usize::MAX
            } else {
                rng.below(p.rules.len() as u64) as usize
            };
            query_near(&mut rng, p, rule)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// proptest strategies.

/// IPv4 ranges from a small universe of bases so random rules overlap.
pub fn arb_range_v4() -> impl Strategy<Value = AddrRange> {
    let base = prop_oneof![
        Just(0x0A00_0000u32),
        Just(0xC0A8_0100),
        Just(0x7F00_0001),
        Just(0),
        Just(u32::MAX),
        any::<u32>()
    ];
    prop_oneof![
        (base.clone(), 0u8..=32)
            .prop_map(|(a, l)| AddrRange::v4_cidr(a, l).unwrap_or(AddrRange::V4 { lo: 0, hi: 0 })),
        (base.clone(), 0u32..300).prop_map(|(a, d)| AddrRange::V4 {
            lo: a,
            hi: a.saturating_add(d)
        }),
        (base, 0u32..0x2_0000).prop_map(|(a, d)| AddrRange::V4 {
            lo: a.saturating_sub(d),
            hi: a
        }),
    ]
}

/// IPv6 ranges from a small universe of bases.
pub fn arb_range_v6() -> impl Strategy<Value = AddrRange> {
    let base = prop_oneof![
        Just(0x2001_0db8u128 << 96),
        Just(1u128),
        Just(0xfe80u128 << 112),
        Just(0),
        Just(u128::MAX),
        any::<u128>()
    ];
    prop_oneof![
        (base.clone(), 0u8..=128)
            .prop_map(|(a, l)| AddrRange::v6_cidr(a, l).unwrap_or(AddrRange::V6 { lo: 0, hi: 0 })),
        (base, 0u128..1000).prop_map(|(a, d)| AddrRange::V6 {
            lo: a,
            hi: a.saturating_add(d)
        }),
    ]
}

fn arb_range() -> impl Strategy<Value = AddrRange> {
    prop_oneof![3 => arb_range_v4(), 1 => arb_range_v6()]
}

fn arb_addr_cond(nsets: u32) -> impl Strategy<Value = Option<AddrCond>> {
    let ranges = proptest::collection::vec(arb_range(), 1..6).prop_map(AddrCond::Ranges);
    if nsets == 0 {
        prop_oneof![2 => Just(None), 3 => ranges.prop_map(Some)].boxed()
    } else {
        prop_oneof![2 => Just(None), 3 => ranges.prop_map(Some), 1 => (0..nsets).prop_map(|i| Some(AddrCond::Set(i)))].boxed()
    }
}

fn arb_port_cond() -> impl Strategy<Value = Option<PortCond>> {
    let one = prop_oneof![
        prop_oneof![
            Just(0u16),
            Just(53),
            Just(80),
            Just(443),
            Just(1023),
            Just(1024),
            Just(65535),
            any::<u16>()
        ]
        .prop_map(|p| (p, p)),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
        (0u16..2000, 0u16..40).prop_map(|(a, d)| (a, a.saturating_add(d))),
    ];
    prop_oneof![
        2 => Just(None),
        3 => proptest::collection::vec(one, 1..24).prop_map(|ranges| Some(PortCond { ranges })),
    ]
}

fn arb_app() -> impl Strategy<Value = Option<AppPath>> {
    let apps = sample_apps();
    let n = apps.len();
    prop_oneof![4 => Just(None), 1 => (0..n).prop_map(move |i| Some(AppPath(apps[i].clone())))]
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![Just(Action::Permit), Just(Action::Block)]
}

/// A rule name (`description == false`) or description: mostly none, else ASCII or any text
/// without control characters (which the model refuses), up to 24 or 60 characters.
fn arb_rule_text(description: bool) -> impl Strategy<Value = String> {
    let (ascii, any) = if description {
        ("[a-zA-Z0-9 ._:()-]{1,60}", "[^\\p{Cc}]{1,60}")
    } else {
        ("[a-zA-Z0-9 ._:()-]{1,24}", "[^\\p{Cc}]{1,24}")
    };
    prop_oneof![3 => Just(String::new()), 2 => ascii, 1 => any]
}

/// A random rule referring to sets `0..nsets`.
pub fn arb_rule(nsets: u32) -> impl Strategy<Value = Rule> {
    (
        (any::<u32>(), arb_action(), any::<bool>()),
        prop_oneof![Just(None), Just(Some(Direction::Outbound)), Just(Some(Direction::Inbound))],
        prop_oneof![2 => Just(None), 1 => Just(Some(IpVersion::V4)), 1 => Just(Some(IpVersion::V6))],
        prop_oneof![2 => Just(None), 2 => Just(Some(6u8)), 1 => Just(Some(17u8)), 1 => any::<u8>().prop_map(Some)],
        (arb_addr_cond(nsets), arb_addr_cond(nsets)),
        (arb_port_cond(), arb_port_cond()),
        arb_app(),
        prop_oneof![3 => Just(None), 1 => any::<bool>().prop_map(Some)],
        (arb_rule_text(false), arb_rule_text(true), prop_oneof![5 => Just(true), 1 => Just(false)]),
    )
        .prop_map(|((id, action, log), direction, ip_version, protocol, (ra, la), (rp, lp), app, loopback, (name, description, enabled))| Rule {
            id,
            action,
            log,
            direction,
            ip_version,
            protocol,
            remote_addr: ra,
            local_addr: la,
            remote_port: rp,
            local_port: lp,
            app,
            loopback,
            name,
            description,
            enabled,
        })
}

fn arb_set() -> impl Strategy<Value = AddressSet> {
    (
        "[a-z][a-z0-9_-]{0,12}",
        proptest::collection::vec(arb_range(), 0..40),
    )
        .prop_map(|(name, entries)| AddressSet { name, entries })
}

/// A random policy of up to `max_rules` rules and up to 3 sets.
pub fn arb_policy(max_rules: usize) -> impl Strategy<Value = Policy> {
    proptest::collection::vec(arb_set(), 0..4).prop_flat_map(move |sets| {
        let nsets = sets.len() as u32;
        (
            Just(sets),
            proptest::collection::vec(arb_rule(nsets), 0..=max_rules),
            arb_action(),
            arb_action(),
            any::<bool>(),
        )
            .prop_map(|(sets, rules, o, i, log_all)| Policy {
                rules,
                sets,
                default_outbound: o,
                default_inbound: i,
                log_all,
            })
    })
}

/// A random policy of up to 8 rules (fast; for mutation and round-trip tests).
pub fn arb_small_policy() -> impl Strategy<Value = Policy> {
    arb_policy(8)
}

/// A strategy of `n` queries aimed at `p`'s rules (seeded by proptest, so it shrinks by seed).
pub fn arb_queries_near(p: &Policy, n: usize) -> impl Strategy<Value = Vec<OwnedQuery>> {
    let p = p.clone();
    any::<u64>().prop_map(move |seed| trace(&p, n, seed))
}

/// A strategy of one query aimed at a random rule of `p`.
pub fn arb_query_near(p: &Policy) -> impl Strategy<Value = OwnedQuery> {
    let p = p.clone();
    (any::<u64>(), any::<usize>()).prop_map(move |(seed, r)| {
        let mut rng = Rng::new(seed);
        let rule = if p.rules.is_empty() {
            usize::MAX
        } else {
            r % (p.rules.len() + 1)
        };
        query_near(
            &mut rng,
            &p,
            if rule == p.rules.len() {
                usize::MAX
            } else {
                rule
            },
        )
    })
}
