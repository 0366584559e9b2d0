//! Wire format: round trips, canonical form, totality on mutated blobs, one test per error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use weir_policy::limits::*;
use weir_policy_testing as testing;
use weir_policy::wire::{self, DecodeError, EncodeError, Section, HEADER_LEN, HEADER_LEN_V1};
use weir_policy::{
    reference, Action, AddrCond, AddrRange, AddressSet, AppPath, CompiledPolicy, Direction,
    IpVersion, Policy, PortCond, Rule, ValidationError,
};

// ---------------------------------------------------------------------------------------------
// A raw blob builder, to produce blobs `encode` refuses to write.

#[derive(Default)]
struct Raw {
    rules: Vec<[u8; 64]>,
    sets: Vec<[u8; 16]>,
    addrs: Vec<u8>,
    ports: Vec<u8>,
    apps: Vec<u8>,
    names: Vec<u8>,
    text: Vec<u8>,
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

impl Raw {
    fn bytes(&self) -> Vec<u8> {
        let secs: [Vec<u8>; 7] = [
            self.rules.concat(),
            self.sets.concat(),
            self.addrs.clone(),
            self.ports.clone(),
            self.apps.clone(),
            self.names.clone(),
            self.text.clone(),
        ];
        let total = HEADER_LEN + secs.iter().map(Vec::len).sum::<usize>();
        let mut b = vec![0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&wire::MAGIC);
        b[8..10].copy_from_slice(&wire::VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        put32(&mut b, 12, total as u32);
        put32(&mut b, 20, self.rules.len() as u32);
        put32(&mut b, 24, self.sets.len() as u32);
        let mut off = HEADER_LEN;
        for (i, s) in secs.iter().enumerate() {
            put32(&mut b, 32 + 8 * i, off as u32);
            put32(&mut b, 36 + 8 * i, s.len() as u32);
            off += s.len();
        }
        for s in &secs {
            b.extend_from_slice(s);
        }
        b
    }

    /// A rule whose remote address condition is `n` IPv4 ranges appended to the addr section.
    fn rule_with_ranges(&mut self, n: u32) {
        let off = self.addrs.len() as u32;
        for i in 0..n {
            self.addrs.push(4);
            self.addrs.extend_from_slice(&i.to_le_bytes());
            self.addrs.extend_from_slice(&i.to_le_bytes());
        }
        let mut r = [0u8; 64];
        r[11] = 1;
        put32(&mut r, 16, n);
        put32(&mut r, 36, off);
        self.rules.push(r);
    }

    fn rule_with_ports(&mut self, n: u32) {
        let first = (self.ports.len() / 4) as u32;
        for i in 0..n {
            self.ports.extend_from_slice(&(i as u16).to_le_bytes());
            self.ports.extend_from_slice(&(i as u16).to_le_bytes());
        }
        let mut r = [0u8; 64];
        r[13] = 1;
        put32(&mut r, 24, n);
        put32(&mut r, 44, first);
        self.rules.push(r);
    }

    fn rule_with_app(&mut self, n: u32) {
        let first = (self.apps.len() / 2) as u32;
        self.apps
            .extend(std::iter::repeat_n([b'a', 0], n as usize).flatten());
        let mut r = [0u8; 64];
        r[15] = 1;
        put32(&mut r, 32, n);
        put32(&mut r, 52, first);
        self.rules.push(r);
    }

    /// A rule without conditions whose name and description are these bytes.
    fn rule_with_text(&mut self, name: &[u8], description: &[u8]) {
        let mut r = [0u8; 64];
        r[57] = name.len() as u8;
        r[58..60].copy_from_slice(&(description.len() as u16).to_le_bytes());
        if !name.is_empty() || !description.is_empty() {
            put32(&mut r, 60, self.text.len() as u32);
        }
        self.text.extend_from_slice(name);
        self.text.extend_from_slice(description);
        self.rules.push(r);
    }

    fn set(&mut self, name: &[u8], entries: u32) {
        let mut s = [0u8; 16];
        put32(&mut s, 0, self.names.len() as u32);
        put32(&mut s, 4, name.len() as u32);
        put32(&mut s, 8, self.addrs.len() as u32);
        put32(&mut s, 12, entries);
        self.names.extend_from_slice(name);
        for i in 0..entries {
            self.addrs.push(4);
            self.addrs.extend_from_slice(&i.to_le_bytes());
            self.addrs.extend_from_slice(&i.to_le_bytes());
        }
        self.sets.push(s);
    }
}

fn invalid(e: ValidationError) -> Result<Policy, DecodeError> {
    Err(DecodeError::Invalid(e))
}

/// A policy that uses every field, for the patch tests. Blob layout facts the tests rely on:
/// rule 0 remote ranges come first in the addr section; rule 0 has remote ports.
fn full_policy() -> Policy {
    let app = AppPath::from_str_units("\\Device\\HarddiskVolume3\\Windows\\System32\\svchost.exe")
        .unwrap();
    Policy {
        rules: vec![
            Rule {
                id: 7,
                action: Action::Block,
                log: true,
                direction: Some(Direction::Outbound),
                ip_version: Some(IpVersion::V4),
                protocol: Some(6),
                remote_addr: Some(AddrCond::Ranges(vec![
                    AddrRange::V4 { lo: 10, hi: 20 },
                    AddrRange::V6 { lo: 1, hi: 1 },
                ])),
                local_addr: Some(AddrCond::Set(0)),
                remote_port: Some(PortCond {
                    ranges: vec![(80, 80), (8000, 8080)],
                }),
                local_port: Some(PortCond {
                    ranges: vec![(1024, 65535)],
                }),
                app: Some(app),
                loopback: Some(false),
                name: "block web für Kunden".into(),
                description: "no plain HTTP to the LAN".into(),
                enabled: false,
            },
            Rule::any(8, Action::Permit),
        ],
        sets: vec![AddressSet {
            name: "lan".into(),
            entries: vec![AddrRange::V4 {
                lo: 0x0A00_0000,
                hi: 0x0AFF_FFFF,
            }],
        }],
        default_outbound: Action::Permit,
        default_inbound: Action::Block,
        log_all: true,
    }
}

/// The rules of `p` without what version 1 cannot hold.
fn strip_v2(p: &Policy) -> Policy {
    let mut p = p.clone();
    for r in &mut p.rules {
        r.name.clear();
        r.description.clear();
        r.enabled = true;
    }
    p
}

fn section_off(b: &[u8], i: usize) -> usize {
    get32(b, 32 + 8 * i) as usize
}

// ---------------------------------------------------------------------------------------------

#[test]
fn full_policy_round_trips() {
    let p = full_policy();
    let b = wire::encode(&p).unwrap();
    assert_eq!(wire::decode(&b), Ok(p.clone()));
    assert_eq!(wire::check(&b), Ok(()));
    assert_eq!(wire::encode(&wire::decode(&b).unwrap()).unwrap(), b);
    // The empty policy is the header alone.
    let e = wire::encode(&Policy::permit_all()).unwrap();
    assert_eq!(e.len(), HEADER_LEN);
    assert_eq!(wire::decode(&e), Ok(Policy::permit_all()));
}

mod fixture {
    include!("fixtures/policy_v1.rs");
}

#[test]
fn version_1_blob_written_by_the_old_encoder_still_decodes() {
    let bytes = include_bytes!("fixtures/policy-v1.bin");
    assert_eq!(&bytes[8..12], &[1, 0, 80, 0], "version 1, 80-byte header");
    let want = fixture::v1_policy();
    assert_eq!(wire::decode(bytes), Ok(want.clone()));
    assert_eq!(wire::check(bytes), Ok(()));
    // Its rules are enabled and unnamed, and it means the same as its version-2 blob.
    let p = wire::decode(bytes).unwrap();
    assert!(p.rules.iter().all(|r| r.enabled && r.name.is_empty() && r.description.is_empty()));
    let v2 = wire::encode(&p).unwrap();
    assert_eq!(&v2[8..10], &wire::VERSION.to_le_bytes());
    assert_eq!(wire::decode(&v2), Ok(want.clone()));
    // Version 1 stays canonical: the old bytes are exactly what `encode_v1` writes.
    assert_eq!(wire::encode_v1(&want).unwrap(), bytes.to_vec());
    // A policy version 1 cannot hold is refused by `encode_v1`, not silently stripped.
    let mut named = want.clone();
    named.rules[2].name = "rdp".into();
    assert_eq!(wire::encode_v1(&named), Err(EncodeError::NotInVersion1 { rule: 2 }));
    let mut off = want;
    off.rules[1].enabled = false;
    assert_eq!(wire::encode_v1(&off), Err(EncodeError::NotInVersion1 { rule: 1 }));
}

#[test]
fn disabled_rule_is_kept_in_the_blob_and_never_matches() {
    // Rule 0 would block everything; disabled, the connection falls through to rule 1.
    let mut p = Policy::permit_all();
    let mut off = Rule::any(1, Action::Block);
    off.enabled = false;
    off.name = "block all (off for now)".into();
    p.rules.push(off);
    p.rules.push(Rule::any(2, Action::Permit));
    let b = wire::encode(&p).unwrap();
    let d = wire::decode(&b).unwrap();
    assert_eq!(d, p);
    assert!(!d.rules[0].enabled);
    let q = weir_policy::Query {
        direction: Direction::Outbound,
        remote: weir_policy::Addr::V4(0x0102_0304),
        local: weir_policy::Addr::V4(0x0A00_0001),
        protocol: 6,
        remote_port: 443,
        local_port: 50000,
        app: None,
        loopback: false,
    };
    let want = reference::evaluate(&d, &q);
    assert_eq!(want.rule_index, Some(1));
    assert_eq!(want.action, Action::Permit);
    assert_eq!(CompiledPolicy::compile(&d).unwrap().lookup(&q), want);
    assert_eq!(CompiledPolicy::compile_coarse(&d).unwrap().lookup(&q), want);
}

#[test]
fn header_errors() {
    let b = wire::encode(&full_policy()).unwrap();
    assert_eq!(
        wire::decode(&b[..HEADER_LEN - 1]),
        Err(DecodeError::TooShort)
    );
    assert_eq!(wire::decode(&[]), Err(DecodeError::TooShort));
    let mut x = b.clone();
    x[0] = b'X';
    assert_eq!(wire::decode(&x), Err(DecodeError::BadMagic));
    let mut x = b.clone();
    x[8] = 3;
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::UnsupportedVersion { version: 3 })
    );
    // A version-2 blob labelled version 1 has the wrong header length for it.
    let mut x = b.clone();
    x[8] = 1;
    assert_eq!(wire::decode(&x), Err(DecodeError::BadHeaderLength));
    // Between the version-1 and the version-2 header size.
    assert_eq!(wire::decode(&b[..HEADER_LEN_V1]), Err(DecodeError::TooShort));
    let mut x = b.clone();
    x[10] = 64;
    assert_eq!(wire::decode(&x), Err(DecodeError::BadHeaderLength));
    let mut x = b.clone();
    x.push(0);
    assert_eq!(wire::decode(&x), Err(DecodeError::TotalLengthMismatch));
    assert_eq!(
        wire::decode(&b[..b.len() - 1]),
        Err(DecodeError::TotalLengthMismatch)
    );
    let mut x = b.clone();
    x[18] = 2; // unknown flag bit
    assert_eq!(wire::decode(&x), Err(DecodeError::ReservedNotZero));
    let mut x = b.clone();
    x[30] = 1;
    assert_eq!(wire::decode(&x), Err(DecodeError::ReservedNotZero));
    let mut x = b.clone();
    x[16] = 2;
    assert_eq!(wire::decode(&x), Err(DecodeError::BadDefaultAction));
    let big = vec![0u8; MAX_BLOB_BYTES + 1];
    assert_eq!(wire::decode(&big), Err(DecodeError::TooLarge));
}

#[test]
fn section_errors() {
    let b = wire::encode(&full_policy()).unwrap();
    // Sets section moved by one byte.
    let mut x = b.clone();
    put32(&mut x, 40, get32(&b, 40) + 1);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::SectionLayout {
            section: Section::Sets
        })
    );
    // Names section one byte longer: the rule-text section no longer starts where it ends.
    let mut x = b.clone();
    put32(&mut x, 76, get32(&b, 76) + 1);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::SectionLayout {
            section: Section::RuleText
        })
    );
    // The last section longer than the blob.
    let mut x = b.clone();
    put32(&mut x, 84, get32(&b, 84) + 1);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::SectionLayout {
            section: Section::RuleText
        })
    );
    // A rule count that does not fit the rules section.
    let mut x = b.clone();
    put32(&mut x, 20, 3);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::SectionLength {
            section: Section::Rules
        })
    );
    let mut x = b.clone();
    put32(&mut x, 24, 2);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::SectionLength {
            section: Section::Sets
        })
    );
    // Odd-length apps section: shift one byte from apps to names.
    let mut x = b.clone();
    put32(&mut x, 68, get32(&b, 68) - 1);
    put32(&mut x, 72, get32(&b, 72) - 1);
    put32(&mut x, 76, get32(&b, 76) + 1);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::SectionLength {
            section: Section::Apps
        })
    );
    // Trailing bytes in the names section (the rule-text section moved one byte on).
    let mut x = b.clone();
    x.insert(section_off(&b, 6), b'z');
    let n = x.len() as u32;
    put32(&mut x, 12, n);
    put32(&mut x, 76, get32(&b, 76) + 1);
    put32(&mut x, 80, get32(&b, 80) + 1);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::TrailingBytes {
            section: Section::Names
        })
    );
    // Trailing bytes in the rule-text section.
    let mut x = b.clone();
    x.push(b'z');
    let n = x.len() as u32;
    put32(&mut x, 12, n);
    put32(&mut x, 84, get32(&b, 84) + 1);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::TrailingBytes {
            section: Section::RuleText
        })
    );
}

#[test]
fn record_errors() {
    let b = wire::encode(&full_policy()).unwrap();
    let r0 = section_off(&b, 0);
    let addrs = section_off(&b, 2);
    let ports = section_off(&b, 3);
    let apps = section_off(&b, 4);
    let names = section_off(&b, 5);
    for (at, v) in [
        (4, 2u8),
        (5, 2),
        (6, 3),
        (7, 3),
        (8, 2),
        (10, 3),
        (11, 3),
        (13, 2),
        (15, 2),
        (56, 2),
    ] {
        let mut x = b.clone();
        x[r0 + at] = v;
        assert_eq!(
            wire::decode(&x),
            Err(DecodeError::BadField { rule: 0 }),
            "byte {at}"
        );
    }
    // Rule 1 has no conditions: any non-zero field of an absent condition is refused.
    let r1 = r0 + 64;
    for at in [9usize, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 60] {
        let mut x = b.clone();
        x[r1 + at] = 1;
        assert_eq!(
            wire::decode(&x),
            Err(DecodeError::AbsentNotZero { rule: 1 }),
            "byte {at}"
        );
    }
    // Non-canonical list offsets.
    let mut x = b.clone();
    put32(&mut x, r0 + 36, 9);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::NonCanonicalOffset {
            section: Section::Addrs
        })
    );
    let mut x = b.clone();
    put32(&mut x, r0 + 48, 0);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::NonCanonicalOffset {
            section: Section::Ports
        })
    );
    let mut x = b.clone();
    put32(&mut x, r0 + 52, 1);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::NonCanonicalOffset {
            section: Section::Apps
        })
    );
    let sets = section_off(&b, 1);
    let mut x = b.clone();
    put32(&mut x, sets, 1);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::NonCanonicalOffset {
            section: Section::Names
        })
    );
    // Lists past their section.
    let mut x = b.clone();
    put32(&mut x, r0 + 28, 50);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::ListOutOfBounds {
            section: Section::Ports
        })
    );
    let mut x = b.clone();
    put32(&mut x, r0 + 32, 5000);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::ListOutOfBounds {
            section: Section::Apps
        })
    );
    let mut x = b.clone();
    put32(&mut x, sets + 12, 3);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::ListOutOfBounds {
            section: Section::Addrs
        })
    );
    let mut x = b.clone();
    put32(&mut x, sets + 4, 40);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::ListOutOfBounds {
            section: Section::Names
        })
    );
    // Rule text: offset, bounds, UTF-8, control characters, length.
    let text = section_off(&b, 6);
    let mut x = b.clone();
    put32(&mut x, r0 + 60, 1);
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::NonCanonicalOffset {
            section: Section::RuleText
        })
    );
    let mut x = b.clone();
    x[r0 + 58..r0 + 60].copy_from_slice(&1000u16.to_le_bytes());
    assert_eq!(
        wire::decode(&x),
        Err(DecodeError::ListOutOfBounds {
            section: Section::RuleText
        })
    );
    let mut x = b.clone();
    x[r0 + 58..r0 + 60].copy_from_slice(&(MAX_RULE_DESCRIPTION_BYTES as u16 + 1).to_le_bytes());
    assert_eq!(
        wire::decode(&x),
        invalid(ValidationError::RuleDescriptionTooLong { rule: 0 })
    );
    let mut x = b.clone();
    x[text] = 0xFF;
    assert_eq!(wire::decode(&x), Err(DecodeError::RuleTextUtf8 { rule: 0 }));
    // "block web für Kunden": a name cut inside the `ü` (bytes 11 and 12) is not UTF-8 even
    // though name and description together are.
    let mut x = b.clone();
    assert_eq!(x[r0 + 57], 21);
    x[r0 + 57] = 12;
    x[r0 + 58] += 9;
    assert_eq!(wire::decode(&x), Err(DecodeError::RuleTextUtf8 { rule: 0 }));
    let mut x = b.clone();
    x[text] = 0x1B; // ESC, which would start a terminal escape sequence
    assert_eq!(
        wire::decode(&x),
        invalid(ValidationError::RuleTextControl { rule: 0 })
    );
    // Bad address tag.
    let mut x = b.clone();
    x[addrs] = 5;
    assert_eq!(wire::decode(&x), Err(DecodeError::BadAddrTag));
    // Model rules inside the blob.
    let mut x = b.clone();
    put32(&mut x, addrs + 1, 21); // lo 21 > hi 20
    assert_eq!(
        wire::decode(&x),
        invalid(ValidationError::AddrRangeOrder { rule: 0 })
    );
    let mut x = b.clone();
    x[ports + 4..ports + 6].copy_from_slice(&9000u16.to_le_bytes()); // (9000, 8080)
    assert_eq!(
        wire::decode(&x),
        invalid(ValidationError::PortRangeOrder { rule: 0 })
    );
    let mut x = b.clone();
    put32(&mut x, r0 + 20, 1); // local set index 1 of 1 set
    assert_eq!(
        wire::decode(&x),
        invalid(ValidationError::SetIndex { rule: 0, set: 1 })
    );
    let set_entry = addrs + 9 + 33;
    let mut x = b.clone();
    put32(&mut x, set_entry + 1, u32::MAX);
    assert_eq!(
        wire::decode(&x),
        invalid(ValidationError::SetEntryOrder { set: 0 })
    );
    let mut x = b.clone();
    x[names] = 0xFF;
    assert_eq!(wire::decode(&x), Err(DecodeError::SetNameUtf8 { set: 0 }));
    let _ = apps;
}

#[test]
fn empty_lists_refused() {
    let mut r = Raw::default();
    r.rule_with_ranges(0);
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::EmptyAddrRanges { rule: 0 })
    );
    let mut r = Raw::default();
    r.rule_with_ports(0);
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::EmptyPortRanges { rule: 0 })
    );
    let mut r = Raw::default();
    r.rule_with_app(0);
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::EmptyAppPath { rule: 0 })
    );
    let mut r = Raw::default();
    r.set(b"", 0);
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::SetNameEmpty { set: 0 })
    );
    // The model refuses the same.
    let mut p = Policy::permit_all();
    let mut rule = Rule::any(1, Action::Block);
    rule.remote_addr = Some(AddrCond::Ranges(vec![]));
    p.rules.push(rule);
    assert_eq!(
        wire::encode(&p),
        Err(EncodeError::Invalid(ValidationError::EmptyAddrRanges {
            rule: 0
        }))
    );
    assert!(CompiledPolicy::compile(&p).is_err());
    // An empty set is fine and matches nothing.
    let mut r = Raw::default();
    r.set(b"empty", 0);
    let p = wire::decode(&r.bytes()).unwrap();
    assert!(p.sets[0].entries.is_empty());
}

#[test]
fn limits_refused_and_reached() {
    // Rules: MAX_RULES all-zero records (no conditions) decode; one more is refused.
    let mut r = Raw {
        rules: vec![[0u8; 64]; MAX_RULES],
        ..Raw::default()
    };
    let p = wire::decode(&r.bytes()).unwrap();
    assert_eq!(p.rules.len(), MAX_RULES);
    assert_eq!(wire::encode(&p).unwrap(), r.bytes());
    r.rules.push([0u8; 64]);
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::TooManyRules)
    );
    let mut big = p.clone();
    big.rules.push(Rule::any(0, Action::Permit));
    assert_eq!(
        wire::encode(&big),
        Err(EncodeError::Invalid(ValidationError::TooManyRules))
    );

    // Sets.
    let mut r = Raw::default();
    for _ in 0..MAX_SETS {
        r.set(b"s", 0);
    }
    assert_eq!(wire::decode(&r.bytes()).unwrap().sets.len(), MAX_SETS);
    r.set(b"s", 0);
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::TooManySets)
    );

    // Set entries in total: at the limit (checked without building), and one over.
    let mut r = Raw::default();
    r.set(b"a", (MAX_SET_ENTRIES_TOTAL / 2) as u32);
    r.set(b"b", (MAX_SET_ENTRIES_TOTAL / 2) as u32);
    assert_eq!(wire::check(&r.bytes()), Ok(()));
    r.set(b"c", 1);
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::TooManySetEntries)
    );

    // Ranges per rule.
    let mut r = Raw::default();
    r.rule_with_ranges(MAX_ADDR_RANGES as u32);
    assert!(wire::decode(&r.bytes()).is_ok());
    let mut r = Raw::default();
    r.rule_with_ranges(MAX_ADDR_RANGES as u32 + 1);
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::TooManyAddrRanges { rule: 0 })
    );

    // Ranges of all rules together.
    let mut r = Raw::default();
    let per = MAX_ADDR_RANGES as u32;
    let n = MAX_RULE_ADDR_RANGES_TOTAL / MAX_ADDR_RANGES + 1;
    for _ in 0..n {
        r.rule_with_ranges(per);
    }
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::TooManyRuleAddrRanges)
    );

    // Port ranges.
    let mut r = Raw::default();
    r.rule_with_ports(MAX_PORT_RANGES as u32);
    assert!(wire::decode(&r.bytes()).is_ok());
    let mut r = Raw::default();
    r.rule_with_ports(MAX_PORT_RANGES as u32 + 1);
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::TooManyPortRanges { rule: 0 })
    );

    // Application paths.
    let mut r = Raw::default();
    r.rule_with_app(MAX_APP_PATH_UNITS as u32);
    assert!(wire::decode(&r.bytes()).is_ok());
    let mut r = Raw::default();
    r.rule_with_app(MAX_APP_PATH_UNITS as u32 + 1);
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::AppPathTooLong { rule: 0 })
    );
    let mut r = Raw::default();
    for _ in 0..=(MAX_APP_UNITS_TOTAL / MAX_APP_PATH_UNITS) {
        r.rule_with_app(MAX_APP_PATH_UNITS as u32);
    }
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::TooManyAppUnits)
    );

    // Set names.
    let mut r = Raw::default();
    r.set(&[b'n'; MAX_SET_NAME_BYTES], 0);
    assert!(wire::decode(&r.bytes()).is_ok());
    let mut r = Raw::default();
    r.set(&[b'n'; MAX_SET_NAME_BYTES + 1], 0);
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::SetNameTooLong { set: 0 })
    );

    // Rule names and descriptions: the longest of each decode; a longer description is refused
    // (a longer name does not fit the record's length byte; the model refuses it).
    let mut r = Raw::default();
    r.rule_with_text(&[b'n'; MAX_RULE_NAME_BYTES], &[b'd'; MAX_RULE_DESCRIPTION_BYTES]);
    let p = wire::decode(&r.bytes()).unwrap();
    assert_eq!(p.rules[0].name.len(), MAX_RULE_NAME_BYTES);
    assert_eq!(p.rules[0].description.len(), MAX_RULE_DESCRIPTION_BYTES);
    assert_eq!(wire::encode(&p).unwrap(), r.bytes());
    let mut r = Raw::default();
    r.rule_with_text(b"", &[b'd'; MAX_RULE_DESCRIPTION_BYTES + 1]);
    assert_eq!(
        wire::decode(&r.bytes()),
        invalid(ValidationError::RuleDescriptionTooLong { rule: 0 })
    );
    let mut long = Policy::permit_all();
    long.rules.push(Rule::any(1, Action::Block));
    long.rules[0].name = "n".repeat(MAX_RULE_NAME_BYTES + 1);
    assert_eq!(
        wire::encode(&long),
        Err(EncodeError::Invalid(ValidationError::RuleNameTooLong { rule: 0 }))
    );
    long.rules[0].name.clear();
    long.rules[0].description = "d".repeat(MAX_RULE_DESCRIPTION_BYTES + 1);
    assert_eq!(
        wire::encode(&long),
        Err(EncodeError::Invalid(ValidationError::RuleDescriptionTooLong { rule: 0 }))
    );
    long.rules[0].description = "line one\nline two".into();
    assert_eq!(
        wire::encode(&long),
        Err(EncodeError::Invalid(ValidationError::RuleTextControl { rule: 0 }))
    );

    // Encoding a policy over the blob size.
    let huge = Policy {
        sets: vec![AddressSet {
            name: "v6".into(),
            entries: vec![AddrRange::V6 { lo: 0, hi: 0 }; MAX_BLOB_BYTES / 33 + 1],
        }],
        ..Policy::permit_all()
    };
    assert_eq!(wire::encode(&huge), Err(EncodeError::TooLarge));
}

#[test]
fn codes_are_stable_and_distinct() {
    let errs = [
        DecodeError::TooShort,
        DecodeError::BadMagic,
        DecodeError::UnsupportedVersion { version: 9 },
        DecodeError::BadHeaderLength,
        DecodeError::TooLarge,
        DecodeError::TotalLengthMismatch,
        DecodeError::ReservedNotZero,
        DecodeError::SectionLayout {
            section: Section::Rules,
        },
        DecodeError::SectionLength {
            section: Section::Rules,
        },
        DecodeError::BadField { rule: 0 },
        DecodeError::AbsentNotZero { rule: 0 },
        DecodeError::NonCanonicalOffset {
            section: Section::Addrs,
        },
        DecodeError::ListOutOfBounds {
            section: Section::Addrs,
        },
        DecodeError::BadAddrTag,
        DecodeError::TrailingBytes {
            section: Section::Addrs,
        },
        DecodeError::SetNameUtf8 { set: 0 },
        DecodeError::OutOfMemory,
        DecodeError::BadDefaultAction,
        DecodeError::RuleTextUtf8 { rule: 0 },
    ];
    let codes: Vec<u32> = errs.iter().map(DecodeError::code).collect();
    assert_eq!(codes, (1..=19).collect::<Vec<u32>>());
    let v = [
        ValidationError::TooManyRules,
        ValidationError::TooManySets,
        ValidationError::TooManySetEntries,
        ValidationError::TooManyAddrRanges { rule: 0 },
        ValidationError::TooManyRuleAddrRanges,
        ValidationError::TooManyPortRanges { rule: 0 },
        ValidationError::AppPathTooLong { rule: 0 },
        ValidationError::TooManyAppUnits,
        ValidationError::SetNameTooLong { set: 0 },
        ValidationError::SetNameEmpty { set: 0 },
        ValidationError::EmptyAddrRanges { rule: 0 },
        ValidationError::EmptyPortRanges { rule: 0 },
        ValidationError::EmptyAppPath { rule: 0 },
        ValidationError::AddrRangeOrder { rule: 0 },
        ValidationError::SetEntryOrder { set: 0 },
        ValidationError::PortRangeOrder { rule: 0 },
        ValidationError::SetIndex { rule: 0, set: 0 },
        ValidationError::OutOfMemory,
        ValidationError::RuleNameTooLong { rule: 0 },
        ValidationError::RuleDescriptionTooLong { rule: 0 },
        ValidationError::RuleTextControl { rule: 0 },
    ];
    let vc: Vec<u32> = v.iter().map(|e| DecodeError::Invalid(*e).code()).collect();
    assert_eq!(vc, (64..=84).collect::<Vec<u32>>());
    for e in errs {
        assert!(!e.to_string().is_empty());
    }
}

// ---------------------------------------------------------------------------------------------

fn mutate(b: &mut Vec<u8>, ops: &[(u8, u32, u32)]) {
    for &(kind, pos, val) in ops {
        if b.is_empty() {
            return;
        }
        let at = pos as usize % b.len();
        match kind % 6 {
            0 => b[at] ^= 1 << (val % 8),
            1 => b[at] = val as u8,
            2 => {
                let v = [0u32, 1, 2, 0xFF, 0xFFFF, 0x7FFF_FFFF, u32::MAX, val][(val % 8) as usize];
                let end = (at + 4).min(b.len());
                b[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
            }
            3 => b.truncate(at),
            4 => b.insert(at, val as u8),
            _ => {
                b.remove(at);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn round_trip(p in testing::arb_policy(16)) {
        let b = wire::encode(&p).unwrap();
        prop_assert_eq!(wire::decode(&b), Ok(p.clone()));
        prop_assert_eq!(wire::encode(&wire::decode(&b).unwrap()).unwrap(), b);
    }

    #[test]
    fn version_1_round_trips_and_means_what_version_2_means(p in testing::arb_policy(16)) {
        let p = strip_v2(&p);
        let b1 = wire::encode_v1(&p).unwrap();
        prop_assert_eq!(wire::decode(&b1), Ok(p.clone()));
        prop_assert_eq!(wire::encode_v1(&wire::decode(&b1).unwrap()).unwrap(), b1);
        prop_assert_eq!(wire::decode(&wire::encode(&p).unwrap()), Ok(p.clone()));
    }

    #[test]
    fn mutated_blobs_never_panic(p in testing::arb_small_policy(),
                                 ops in proptest::collection::vec((any::<u8>(), any::<u32>(), any::<u32>()), 1..6),
                                 fix_len in any::<bool>(),
                                 v1 in any::<bool>()) {
        let mut b = if v1 { wire::encode_v1(&strip_v2(&p)).unwrap() } else { wire::encode(&p).unwrap() };
        mutate(&mut b, &ops);
        if fix_len && b.len() >= 16 {
            let n = b.len() as u32;
            b[12..16].copy_from_slice(&n.to_le_bytes());
        }
        let d = wire::decode(&b);
        prop_assert_eq!(wire::check(&b).is_ok(), d.is_ok());
        if let Ok(q) = d {
            // Canonical: the accepted blob is the encoding of what it decodes to, in its version.
            if b[8] == 1 {
                prop_assert_eq!(wire::encode_v1(&q).unwrap(), b);
            } else {
                prop_assert_eq!(wire::encode(&q).unwrap(), b);
            }
            let c = CompiledPolicy::compile(&q).unwrap();
            for oq in testing::trace(&q, 16, 1) {
                let qq = oq.as_query();
                prop_assert_eq!(c.lookup(&qq), reference::evaluate(&q, &qq));
            }
        }
    }
}
