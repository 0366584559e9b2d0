//! The documented semantics, case by case, on both the compiled lookup and the reference.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use weir_policy_testing::{self as testing, Extras, Profile};
use weir_policy::{
    reference, Action, Addr, AddrCond, AddrRange, AddressSet, AppPath, CompiledPolicy, Direction,
    IpVersion, Policy, PortCond, Query, Rule, Verdict,
};

fn q4(remote: u32, rport: u16) -> Query<'static> {
    Query {
        direction: Direction::Outbound,
        remote: Addr::V4(remote),
        local: Addr::V4(0x0A00_0002),
        protocol: 6,
        remote_port: rport,
        local_port: 50000,
        app: None,
        loopback: false,
    }
}

fn q6(remote: u128) -> Query<'static> {
    Query {
        remote: Addr::V6(remote),
        local: Addr::V6(2),
        ..q4(0, 443)
    }
}

/// Both evaluators; asserts they agree and returns the verdict.
fn both(p: &Policy, q: &Query<'_>) -> Verdict {
    let c = CompiledPolicy::compile(p).unwrap();
    let v = c.lookup(q);
    assert_eq!(v, reference::evaluate(p, q), "{q:?}");
    v
}

fn block(id: u32) -> Rule {
    Rule::any(id, Action::Block)
}

#[test]
fn empty_policy_permits_everything() {
    let p = Policy::permit_all();
    for q in [
        q4(1, 1),
        q6(5),
        Query {
            direction: Direction::Inbound,
            ..q4(7, 7)
        },
    ] {
        assert_eq!(
            both(&p, &q),
            Verdict {
                rule_index: None,
                rule_id: None,
                action: Action::Permit,
                log: false
            }
        );
    }
}

#[test]
fn defaults_per_direction_and_log_all() {
    let p = Policy {
        default_inbound: Action::Block,
        log_all: true,
        ..Policy::permit_all()
    };
    assert_eq!(both(&p, &q4(1, 1)).action, Action::Permit);
    let inbound = Query {
        direction: Direction::Inbound,
        ..q4(1, 1)
    };
    assert_eq!(
        both(&p, &inbound),
        Verdict {
            rule_index: None,
            rule_id: None,
            action: Action::Block,
            log: true
        }
    );
}

#[test]
fn first_match_wins_and_ids_may_repeat() {
    let mut r0 = Rule::any(5, Action::Permit);
    r0.remote_port = Some(PortCond {
        ranges: vec![(443, 443)],
    });
    r0.log = true;
    let p = Policy {
        rules: vec![r0, block(5), block(6)],
        ..Policy::permit_all()
    };
    assert_eq!(
        both(&p, &q4(1, 443)),
        Verdict {
            rule_index: Some(0),
            rule_id: Some(5),
            action: Action::Permit,
            log: true
        }
    );
    assert_eq!(
        both(&p, &q4(1, 80)),
        Verdict {
            rule_index: Some(1),
            rule_id: Some(5),
            action: Action::Block,
            log: false
        }
    );
}

#[test]
fn ip_version_conditions() {
    let mut v4only = block(1);
    v4only.ip_version = Some(IpVersion::V4);
    let p = Policy {
        rules: vec![v4only],
        ..Policy::permit_all()
    };
    assert_eq!(both(&p, &q4(1, 1)).rule_index, Some(0));
    assert_eq!(both(&p, &q6(1)).rule_index, None);

    // An address condition whose ranges are all IPv6 never matches IPv4 connections.
    let mut r = block(2);
    r.remote_addr = Some(AddrCond::Ranges(vec![AddrRange::V6 {
        lo: 0,
        hi: u128::MAX,
    }]));
    let p = Policy {
        rules: vec![r],
        ..Policy::permit_all()
    };
    assert_eq!(both(&p, &q4(1, 1)).rule_index, None);
    assert_eq!(both(&p, &q6(77)).rule_index, Some(0));

    // Mixed lists match each version by its own ranges.
    let mut r = block(3);
    r.remote_addr = Some(AddrCond::Ranges(vec![
        AddrRange::V4 { lo: 10, hi: 10 },
        AddrRange::V6 { lo: 20, hi: 20 },
    ]));
    let p = Policy {
        rules: vec![r],
        ..Policy::permit_all()
    };
    assert_eq!(both(&p, &q4(10, 1)).rule_index, Some(0));
    assert_eq!(both(&p, &q4(20, 1)).rule_index, None);
    assert_eq!(both(&p, &q6(20)).rule_index, Some(0));
    assert_eq!(both(&p, &q6(10)).rule_index, None);
}

#[test]
fn loopback_direction_protocol() {
    let mut r = block(1);
    r.loopback = Some(true);
    r.direction = Some(Direction::Inbound);
    r.protocol = Some(17);
    let p = Policy {
        rules: vec![r],
        ..Policy::permit_all()
    };
    let hit = Query {
        direction: Direction::Inbound,
        loopback: true,
        protocol: 17,
        ..q4(1, 1)
    };
    assert_eq!(both(&p, &hit).rule_index, Some(0));
    assert_eq!(
        both(
            &p,
            &Query {
                loopback: false,
                ..hit
            }
        )
        .rule_index,
        None
    );
    assert_eq!(
        both(
            &p,
            &Query {
                direction: Direction::Outbound,
                ..hit
            }
        )
        .rule_index,
        None
    );
    assert_eq!(both(&p, &Query { protocol: 6, ..hit }).rule_index, None);
    let mut r = block(1);
    r.loopback = Some(false);
    let p = Policy {
        rules: vec![r],
        ..Policy::permit_all()
    };
    assert_eq!(both(&p, &hit).rule_index, None);
    assert_eq!(
        both(
            &p,
            &Query {
                loopback: false,
                ..hit
            }
        )
        .rule_index,
        Some(0)
    );
}

#[test]
fn app_is_case_insensitive() {
    let mut r = block(1);
    r.app = Some(
        AppPath::from_str_units("\\Device\\HarddiskVolume3\\Program Files\\Été\\App.exe").unwrap(),
    );
    let p = Policy {
        rules: vec![r],
        ..Policy::permit_all()
    };
    let upper: Vec<u16> = "\\DEVICE\\HARDDISKVOLUME3\\PROGRAM FILES\\ÉTÉ\\APP.EXE"
        .encode_utf16()
        .collect();
    let other: Vec<u16> = "\\DEVICE\\HARDDISKVOLUME3\\PROGRAM FILES\\ETE\\APP.EXE"
        .encode_utf16()
        .collect();
    let prefix: Vec<u16> = "\\Device\\HarddiskVolume3\\Program Files\\Été\\App.ex"
        .encode_utf16()
        .collect();
    assert_eq!(
        both(
            &p,
            &Query {
                app: Some(&upper),
                ..q4(1, 1)
            }
        )
        .rule_index,
        Some(0)
    );
    assert_eq!(
        both(
            &p,
            &Query {
                app: Some(&other),
                ..q4(1, 1)
            }
        )
        .rule_index,
        None
    );
    assert_eq!(
        both(
            &p,
            &Query {
                app: Some(&prefix),
                ..q4(1, 1)
            }
        )
        .rule_index,
        None
    );
    assert_eq!(
        both(
            &p,
            &Query {
                app: None,
                ..q4(1, 1)
            }
        )
        .rule_index,
        None
    );
}

#[test]
fn ranges_ports_and_local_version_mismatch() {
    let mut r = block(1);
    r.remote_addr = Some(AddrCond::Ranges(vec![AddrRange::V4 {
        lo: 0x0A00_0005,
        hi: 0x0A00_0F00,
    }]));
    r.remote_port = Some(PortCond {
        ranges: vec![(1, 3), (100, 200), (5, 5), (7, 7), (9, 9), (11, 11)],
    });
    let p = Policy {
        rules: vec![r],
        ..Policy::permit_all()
    };
    for (a, port, want) in [
        (0x0A00_0005, 1, true),
        (0x0A00_0004, 1, false),
        (0x0A00_0F00, 200, true),
        (0x0A00_0F01, 150, false),
        (0x0A00_0100, 4, false),
        (0x0A00_0100, 11, true),
        (0x0A00_0100, 201, false),
    ] {
        assert_eq!(
            both(&p, &q4(a, port)).rule_index.is_some(),
            want,
            "{a:#x}:{port}"
        );
    }
    // A local address of the other version counts as the unspecified address.
    let mut r = block(2);
    r.local_addr = Some(AddrCond::Ranges(vec![AddrRange::V4 { lo: 0, hi: 0 }]));
    let p = Policy {
        rules: vec![r],
        ..Policy::permit_all()
    };
    assert_eq!(
        both(
            &p,
            &Query {
                local: Addr::V6(1),
                ..q4(1, 1)
            }
        )
        .rule_index,
        Some(0)
    );
    assert_eq!(both(&p, &q4(1, 1)).rule_index, None);
}

#[test]
fn million_entry_set() {
    let mut rng = testing::Rng::new(42);
    let mut entries: Vec<AddrRange> = (0..1_000_000)
        .map(|_| {
            let a = rng.next_u64() as u32;
            AddrRange::V4 { lo: a, hi: a }
        })
        .collect();
    entries.push(AddrRange::V6 {
        lo: 1 << 100,
        hi: (1 << 100) + 10,
    });
    let probe: Vec<u32> = entries
        .iter()
        .take(1000)
        .map(|r| match r {
            AddrRange::V4 { lo, .. } => *lo,
            AddrRange::V6 { .. } => 0,
        })
        .collect();
    let mut r = block(9);
    r.remote_addr = Some(AddrCond::Set(0));
    let p = Policy {
        rules: vec![r],
        sets: vec![AddressSet {
            name: "blocklist".into(),
            entries,
        }],
        ..Policy::permit_all()
    };
    let c = CompiledPolicy::compile(&p).unwrap();
    for a in probe {
        let q = q4(a, 1);
        assert_eq!(c.lookup(&q).rule_index, Some(0));
        let q2 = q4(a.wrapping_add(1), 1);
        assert_eq!(c.lookup(&q2), reference::evaluate(&p, &q2));
    }
    assert_eq!(c.lookup(&q6((1 << 100) + 3)).rule_index, Some(0));
    assert_eq!(c.lookup(&q6((1 << 100) + 11)).rule_index, None);
    // The wire format carries it too.
    let b = weir_policy::wire::encode(&p).unwrap();
    assert_eq!(weir_policy::wire::decode(&b).unwrap(), p);
}

#[test]
fn rules_without_direction_serve_both_directions_from_one_partition() {
    // No enabled rule names a direction (the disabled one does): both directions use one
    // partition per version, and the per-direction defaults still apply.
    let mut p = Policy { default_inbound: Action::Block, ..Policy::permit_all() };
    let mut r = block(1);
    r.remote_port = Some(PortCond { ranges: vec![(80, 80)] });
    p.rules.push(r);
    let mut r = Rule::any(2, Action::Permit);
    r.remote_addr = Some(AddrCond::Ranges(vec![AddrRange::v4_cidr(0x0A00_0000, 8).unwrap()]));
    p.rules.push(r);
    let mut r = block(3);
    r.direction = Some(Direction::Inbound);
    r.enabled = false;
    p.rules.push(r);
    let c = CompiledPolicy::compile(&p).unwrap();
    let s = c.stats();
    assert_eq!(s.tables[0], s.tables[1]);
    assert_eq!(s.entries[0], s.entries[1]);
    for direction in [Direction::Outbound, Direction::Inbound] {
        for (remote, port) in [(0x0A01_0203, 80), (0x0A01_0203, 81), (0x0B00_0001, 81), (0x0B00_0001, 80)] {
            let q = Query { direction, ..q4(remote, port) };
            assert_eq!(c.lookup(&q), reference::evaluate(&p, &q), "{q:?}");
            both(&p, &Query { direction, ..q6(u128::from(remote)) });
        }
    }
    assert_eq!(both(&p, &Query { direction: Direction::Inbound, ..q4(0x0B00_0001, 81) }).action, Action::Block);
    // Enabling the directed rule gives each direction its own partition again.
    p.rules[2].enabled = true;
    let q = Query { direction: Direction::Inbound, ..q4(0x0B00_0001, 81) };
    assert_eq!(both(&p, &q).rule_id, Some(3));
    assert_eq!(both(&p, &Query { direction: Direction::Outbound, ..q }).rule_id, None);
}

#[test]
fn lookup_cost_is_bounded_by_tables_not_rules() {
    // Structure statistics: a 20k-rule ClassBench-style policy keeps few tables and short
    // buckets in every partition.
    let p = testing::classbench(20_000, Profile::Acl, Extras::default(), 3);
    let c = CompiledPolicy::compile(&p).unwrap();
    let s = c.stats();
    for i in 0..4 {
        assert!(s.tables[i] <= 200, "partition {i}: {} tables", s.tables[i]);
    }
    assert!(c.memory_bytes() > 0);
}

#[test]
fn rules_that_differ_only_in_application_do_not_share_a_bucket() {
    // The most common firewall shape: one rule per application, nothing else. The application
    // must be part of the table key, or every connection of an unlisted application scans all
    // of them (at DISPATCH_LEVEL, in classifyFn).
    let n = 5_000u32;
    let path = |i: u32| format!("\\device\\harddiskvolume3\\program files\\app{i}\\app{i}.exe");
    let rules: Vec<Rule> = (0..n)
        .map(|i| {
            let mut r = Rule::any(i, Action::Permit);
            r.app = Some(AppPath::from_str_units(&path(i)).unwrap());
            r
        })
        .collect();
    let p = Policy {
        rules,
        default_outbound: Action::Block,
        ..Policy::permit_all()
    };
    let c = CompiledPolicy::compile(&p).unwrap();
    let other: Vec<u16> = "\\device\\harddiskvolume3\\windows\\system32\\svchost.exe"
        .encode_utf16()
        .collect();
    let (v, probes, entries) = c.lookup_work(&Query {
        app: Some(&other),
        ..q4(1, 443)
    });
    assert_eq!((v.rule_index, v.action), (None, Action::Block));
    assert!(
        entries <= 64 && probes <= 16,
        "unlisted app: {probes} tables probed, {entries} entries checked"
    );
    for i in [0, 1, 7, 8, 9, n / 2, n - 1] {
        let upper: Vec<u16> = path(i).to_uppercase().encode_utf16().collect();
        let q = Query {
            app: Some(&upper),
            ..q4(1, 443)
        };
        assert_eq!(both(&p, &q).rule_index, Some(i));
        let (_, probes, entries) = c.lookup_work(&q);
        assert!(
            entries <= 64 && probes <= 16,
            "app {i}: {probes} tables probed, {entries} entries checked"
        );
    }
    assert_eq!(
        both(
            &p,
            &Query {
                app: None,
                ..q4(1, 443)
            }
        )
        .rule_index,
        None
    );
}

#[test]
fn interleaved_rule_shapes_share_tables() {
    // ClassBench ipc1's shape: rules keyed by a long remote prefix (lengths 32 down to 25) are
    // interleaved with rules keyed by a local prefix (24 down to 17). Every run of one shape
    // is cut by the other, so the assignment alone leaves a table per prefix length, each
    // probed by every lookup that gets past its best rule; merged, one table per shape holds
    // them with short buckets.
    let mut p = Policy::permit_all();
    for i in 0..4000u32 {
        let mut r = Rule::any(i, if i % 3 == 0 { Action::Block } else { Action::Permit });
        if i % 2 == 0 {
            let len = 32 - (i / 2 % 8) as u8;
            r.remote_addr = Some(AddrCond::Ranges(vec![AddrRange::v4_cidr(0x0A00_0000 | (i << 8), len).unwrap()]));
            r.protocol = Some(6);
            r.remote_port = Some(PortCond { ranges: vec![(443, 443)] });
        } else {
            let len = 24 - (i / 2 % 8) as u8;
            r.local_addr = Some(AddrCond::Ranges(vec![AddrRange::v4_cidr(0xC000_0000 | (i << 12), len).unwrap()]));
            r.protocol = Some(17);
        }
        p.rules.push(r);
    }
    let c = CompiledPolicy::compile(&p).unwrap();
    let s = c.stats();
    assert!(s.tables[0] <= 4, "{} tables for two rule shapes", s.tables[0]);
    assert!(s.max_bucket[0] <= 16, "longest bucket {}", s.max_bucket[0]);
    let qs = testing::trace(&p, 4000, 5);
    for q in &qs {
        let q = q.as_query();
        assert_eq!(c.lookup(&q), reference::evaluate(&p, &q), "{q:?}");
    }
}
