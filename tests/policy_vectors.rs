//! Writes the policy test vectors the emulation suite (tests/emulation/test_policy.py) feeds
//! to the real driver image: policy blobs, connections with the reference evaluator's verdicts,
//! and malformed blobs with the status the driver must return.
//!
//! Output: `test-artifacts/policy/` (`vectors.json` + `*.bin`). `cargo xtask test` runs the
//! workspace tests before the emulation suite, so the files exist when pytest reads them; the
//! suite also runs this test itself when they are missing.
//!
//! The expected verdicts come from `weir_policy::reference::evaluate` (plain first match), so
//! the driver's compiled lookup is compared against the reference in one flow. The test also
//! checks the compiled lookup on the host against the same answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use weir_policy::{
    reference, wire, Action, Addr, AddrCond, AddrRange, AddressSet, AppPath, CompiledPolicy, Direction, IpVersion,
    Policy, PortCond, Query, Rule,
};

const SVCHOST: &str = "\\device\\harddiskvolume3\\windows\\system32\\svchost.exe";
const CURL: &str = "\\device\\harddiskvolume3\\tools\\curl.exe";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layer {
    ConnectV4,
    ConnectV6,
    AcceptV4,
    AcceptV6,
}

impl Layer {
    const ALL: [Layer; 4] = [Layer::ConnectV4, Layer::ConnectV6, Layer::AcceptV4, Layer::AcceptV6];
    fn name(self) -> &'static str {
        match self {
            Layer::ConnectV4 => "connect-v4",
            Layer::ConnectV6 => "connect-v6",
            Layer::AcceptV4 => "accept-v4",
            Layer::AcceptV6 => "accept-v6",
        }
    }
    fn direction(self) -> Direction {
        match self {
            Layer::ConnectV4 | Layer::ConnectV6 => Direction::Outbound,
            _ => Direction::Inbound,
        }
    }
    fn v6(self) -> bool {
        matches!(self, Layer::ConnectV6 | Layer::AcceptV6)
    }
}

struct Conn {
    name: String,
    layer: Layer,
    local: IpAddr,
    remote: IpAddr,
    lport: u16,
    rport: u16,
    proto: u8,
    app: Option<&'static str>,
    loopback: bool,
    reauth: bool,
    write_right: bool,
}

fn addr(a: IpAddr) -> Addr {
    match a {
        IpAddr::V4(v) => Addr::V4(u32::from(v)),
        IpAddr::V6(v) => Addr::V6(u128::from(v)),
    }
}

fn units(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(o, "\\u{:04x}", c as u32).unwrap(),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn opt_u32(v: Option<u32>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

/// The expected verdict (reference evaluator) as JSON, checking the compiled lookup agrees.
fn vector_json(p: &Policy, compiled: &CompiledPolicy, c: &Conn) -> String {
    let app_units = c.app.map(units);
    let q = Query {
        direction: c.layer.direction(),
        remote: addr(c.remote),
        local: addr(c.local),
        protocol: c.proto,
        remote_port: c.rport,
        local_port: c.lport,
        app: app_units.as_deref(),
        loopback: c.loopback,
    };
    let reference = reference::evaluate(p, &q);
    let fast = compiled.lookup(&q);
    assert_eq!((fast.rule_id, fast.action), (reference.rule_id, reference.action), "compiled vs reference for {}", c.name);
    let action = if !c.write_right {
        "unchanged"
    } else {
        match reference.action {
            Action::Permit => "permit",
            Action::Block => "block",
        }
    };
    format!(
        "{{\"name\":{},\"layer\":\"{}\",\"local\":\"{}\",\"remote\":\"{}\",\"lport\":{},\"rport\":{},\"proto\":{},\"app\":{},\"loopback\":{},\"reauth\":{},\"write_right\":{},\"expect\":{{\"action\":\"{}\",\"rule_id\":{},\"rule_index\":{},\"log\":{}}}}}",
        json_str(&c.name),
        c.layer.name(),
        c.local,
        c.remote,
        c.lport,
        c.rport,
        c.proto,
        c.app.map_or("null".into(), json_str),
        c.loopback,
        c.reauth,
        c.write_right,
        action,
        if c.write_right { opt_u32(reference.rule_id) } else { "null".into() },
        if c.write_right { opt_u32(reference.rule_index) } else { "null".into() },
        c.write_right && reference.log,
    )
}

/// The hand-written policy exercising every condition kind on all four layers. Its first rule
/// would block every connection but is disabled: the driver must skip it as the reference does.
fn mixed_policy() -> Policy {
    let blocklist = AddressSet {
        name: "blocklist".into(),
        entries: vec![
            AddrRange::v4_cidr(0xC633_6400, 24).unwrap(), // 198.51.100.0/24
            AddrRange::V4 { lo: 0xCB00_7105, hi: 0xCB00_7109 }, // 203.0.113.5-9
            AddrRange::v6_cidr(0x2001_0db8_0bad_0000_0000_0000_0000_0000, 48).unwrap(),
        ],
    };
    let mut rules = Vec::new();
    let mut r = Rule::any(50, Action::Block);
    r.name = "block everything".into();
    r.description = "disabled: kept in the blob, never matches".into();
    r.enabled = false;
    rules.push(r);
    let mut r = Rule::any(100, Action::Block);
    r.name = "blocklist".into();
    r.remote_addr = Some(AddrCond::Set(0));
    rules.push(r);
    let mut r = Rule::any(200, Action::Permit);
    r.direction = Some(Direction::Outbound);
    r.app = Some(AppPath(units(&SVCHOST.to_uppercase())));
    rules.push(r);
    let mut r = Rule::any(300, Action::Block);
    r.protocol = Some(6);
    r.remote_port = Some(PortCond { ranges: vec![(23, 23), (2323, 2323)] });
    rules.push(r);
    let mut r = Rule::any(400, Action::Block);
    r.direction = Some(Direction::Inbound);
    r.ip_version = Some(IpVersion::V4);
    r.local_port = Some(PortCond { ranges: vec![(3389, 3390)] });
    rules.push(r);
    let mut r = Rule::any(500, Action::Block);
    r.loopback = Some(true);
    r.remote_port = Some(PortCond { ranges: vec![(9999, 9999)] });
    rules.push(r);
    let mut r = Rule::any(600, Action::Permit);
    r.remote_addr = Some(AddrCond::Ranges(vec![
        AddrRange::v4_cidr(0x0A00_0000, 8).unwrap(),
        AddrRange::v6_cidr(0xfd00_0000_0000_0000_0000_0000_0000_0000, 8).unwrap(),
    ]));
    rules.push(r);
    let mut r = Rule::any(700, Action::Permit);
    r.direction = Some(Direction::Outbound);
    r.protocol = Some(17);
    r.remote_port = Some(PortCond { ranges: vec![(53, 53)] });
    r.log = true;
    rules.push(r);
    Policy { rules, sets: vec![blocklist], default_outbound: Action::Block, default_inbound: Action::Permit, log_all: false }
}

/// Connections for the mixed policy: every rule, the defaults, the write right absent, reauth.
fn mixed_connections() -> Vec<Conn> {
    let mut out = Vec::new();
    for layer in Layer::ALL {
        let (local, far, set_hit, private, loop_addr) = if layer.v6() {
            (v6("2001:db8:1::2"), v6("2001:db8:99::1"), v6("2001:db8:bad:1::7"), v6("fd12::5"), v6("::1"))
        } else {
            (v4("10.1.1.2"), v4("93.184.216.34"), v4("198.51.100.77"), v4("10.20.30.40"), v4("127.0.0.1"))
        };
        let base = |name: &str| Conn {
            name: format!("{} {name}", layer.name()),
            layer,
            local,
            remote: far,
            lport: 50000,
            rport: 443,
            proto: 6,
            app: Some(CURL),
            loopback: false,
            reauth: false,
            write_right: true,
        };
        out.push(Conn { remote: set_hit, ..base("set match (blocklist)") });
        if !layer.v6() {
            out.push(Conn { remote: v4("203.0.113.9"), ..base("set match (range end)") });
            out.push(Conn { remote: v4("203.0.113.10"), ..base("just past the set range") });
        }
        out.push(Conn { app: Some(SVCHOST), ..base("app match (case-insensitive)") });
        out.push(Conn { app: None, ..base("no app") });
        out.push(Conn { rport: 23, ..base("telnet port") });
        out.push(Conn { rport: 23, proto: 17, ..base("port 23 over udp") });
        out.push(Conn { lport: 3389, ..base("local port 3389") });
        out.push(Conn { remote: loop_addr, loopback: true, rport: 9999, ..base("loopback 9999") });
        out.push(Conn { remote: loop_addr, loopback: false, rport: 9999, ..base("not loopback 9999") });
        out.push(Conn { remote: private, ..base("private range permit") });
        out.push(Conn { proto: 17, rport: 53, ..base("dns") });
        out.push(base("default action"));
        out.push(Conn { reauth: true, ..base("default action, reauthorization") });
        out.push(Conn { remote: set_hit, reauth: true, ..base("set match, reauthorization") });
        out.push(Conn { remote: set_hit, write_right: false, ..base("set match, write right absent") });
        out.push(Conn { write_right: false, ..base("default, write right absent") });
    }
    out
}

/// Deterministic xorshift, so the vectors are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A ClassBench-like IPv4/IPv6 rule set of `n` rules: mixed prefix lengths, port ranges,
/// protocol wildcards, both directions.
fn large_policy(n: usize, seed: u64) -> Policy {
    let mut rng = Rng(seed);
    let mut rules = Vec::with_capacity(n);
    for i in 0..n {
        let action = if rng.below(3) == 0 { Action::Permit } else { Action::Block };
        let mut r = Rule::any(10_000 + i as u32, action);
        if rng.below(8) == 0 {
            let len = 32 + rng.below(33) as u8;
            r.remote_addr = Some(AddrCond::Ranges(vec![AddrRange::v6_cidr(0x2001_0db8u128 << 96 | u128::from(rng.next()) << 32, len).unwrap()]));
        } else {
            let len = 8 + rng.below(25) as u8;
            r.remote_addr = Some(AddrCond::Ranges(vec![AddrRange::v4_cidr(rng.next() as u32, len).unwrap()]));
        }
        match rng.below(4) {
            0 => {}
            1 => r.protocol = Some(6),
            2 => r.protocol = Some(17),
            _ => {
                r.protocol = Some(6);
                let lo = rng.below(60000) as u16;
                r.remote_port = Some(PortCond { ranges: vec![(lo, lo.saturating_add(rng.below(1000) as u16))] });
            }
        }
        if rng.below(4) == 0 {
            let p = rng.below(65535) as u16;
            r.local_port = Some(PortCond { ranges: vec![(p, p)] });
        }
        if rng.below(3) == 0 {
            r.direction = Some(if rng.below(2) == 0 { Direction::Outbound } else { Direction::Inbound });
        }
        rules.push(r);
    }
    Policy { rules, sets: vec![], default_outbound: Action::Permit, default_inbound: Action::Permit, log_all: false }
}

/// Connections aimed at rules of `p` (an address inside a random rule's prefix) and random ones.
fn large_connections(p: &Policy, count: usize, seed: u64) -> Vec<Conn> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for i in 0..count {
        let rule = &p.rules[rng.below(p.rules.len() as u64) as usize];
        let remote = match &rule.remote_addr {
            Some(AddrCond::Ranges(rs)) => match rs[0] {
                AddrRange::V4 { lo, hi } => IpAddr::V4(Ipv4Addr::from(lo + (rng.next() as u32) % (hi - lo).saturating_add(1).max(1))),
                AddrRange::V6 { lo, .. } => IpAddr::V6(Ipv6Addr::from(lo | u128::from(rng.below(16)))),
            },
            _ => v4("192.0.2.1"),
        };
        let v6r = remote.is_ipv6();
        let layer = match (rng.below(2), v6r) {
            (0, false) => Layer::ConnectV4,
            (0, true) => Layer::ConnectV6,
            (_, false) => Layer::AcceptV4,
            (_, true) => Layer::AcceptV6,
        };
        let rport = match &rule.remote_port {
            Some(pc) if rng.below(4) != 0 => pc.ranges[0].0,
            _ => rng.below(65535) as u16,
        };
        let lport = match &rule.local_port {
            Some(pc) if rng.below(2) == 0 => pc.ranges[0].0,
            _ => rng.below(65535) as u16,
        };
        out.push(Conn {
            name: format!("large #{i}"),
            layer,
            local: if v6r { v6("2001:db8:1::2") } else { v4("10.1.1.2") },
            remote,
            lport,
            rport,
            proto: [6u8, 17][rng.below(2) as usize],
            app: None,
            loopback: false,
            reauth: false,
            write_right: true,
        });
    }
    out
}

/// A replacement for the mixed policy used for the existing-connections test: blocks the
/// private range the mixed policy permits.
fn replacement_policy() -> Policy {
    let mut r = Rule::any(900, Action::Block);
    r.remote_addr = Some(AddrCond::Ranges(vec![AddrRange::v4_cidr(0x0A00_0000, 8).unwrap()]));
    Policy { rules: vec![r], sets: vec![], default_outbound: Action::Permit, default_inbound: Action::Permit, log_all: false }
}

fn status_of(blob: &[u8]) -> u32 {
    if blob.len() > weir_policy::limits::MAX_BLOB_BYTES {
        return weir_abi::status::STATUS_WEIR_POLICY_TOO_LARGE;
    }
    match wire::decode(blob) {
        Ok(_) => panic!("a malformed vector decodes"),
        Err(e) => weir_abi::status::policy_decode_status(e.code()),
    }
}

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-artifacts").join("policy");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn write_policy_vectors() {
    let dir = out_dir();
    let mut policies = Vec::new();
    let mut add_as = |name: &str, p: &Policy, conns: Vec<Conn>, v1: bool| {
        let blob = if v1 { wire::encode_v1(p).unwrap() } else { wire::encode(p).unwrap() };
        let compiled = CompiledPolicy::compile(p).unwrap();
        std::fs::write(dir.join(format!("{name}.bin")), &blob).unwrap();
        let vectors: Vec<String> = conns.iter().map(|c| vector_json(p, &compiled, c)).collect();
        policies.push(format!(
            "{{\"name\":\"{name}\",\"blob\":\"{name}.bin\",\"blob_len\":{},\"rule_count\":{},\"set_count\":{},\"rule_ids\":[{}],\"rule_names\":[{}],\"vectors\":[\n{}\n]}}",
            blob.len(),
            p.rules.len(),
            p.sets.len(),
            p.rules.iter().map(|r| r.id.to_string()).collect::<Vec<_>>().join(","),
            p.rules.iter().map(|r| json_str(&r.name)).collect::<Vec<_>>().join(","),
            vectors.join(",\n")
        ));
        blob
    };
    let mixed = mixed_policy();
    // The same rules in format version 1 (what an older weirctl wrote): no names, and the
    // disabled rule left out, as version 1 cannot hold it.
    let mut mixed_v1 = mixed.clone();
    mixed_v1.rules.retain(|r| r.enabled);
    for r in &mut mixed_v1.rules {
        r.name.clear();
        r.description.clear();
    }
    add_as("mixed-v1", &mixed_v1, mixed_connections(), true);
    let mut add = |name: &str, p: &Policy, conns: Vec<Conn>| add_as(name, p, conns, false);
    let good = add("mixed", &mixed, mixed_connections());
    // The same rules under other names: what a policy replaced between a decision and its ETW write must
    // not lend to the event (tests/emulation/test_etw.py).
    let mut renamed = mixed.clone();
    for r in &mut renamed.rules {
        if !r.name.is_empty() {
            r.name = format!("renamed {}", r.name);
        }
    }
    add("mixed-renamed", &renamed, Vec::new());
    let replacement = replacement_policy();
    let private = |layer: Layer, reauth: bool| Conn {
        name: format!("existing connection to 10.20.30.40, reauth {reauth}"),
        layer,
        local: v4("10.1.1.2"),
        remote: v4("10.20.30.40"),
        lport: 50000,
        rport: 443,
        proto: 6,
        app: Some(CURL),
        loopback: false,
        reauth,
        write_right: true,
    };
    add("replacement", &replacement, vec![private(Layer::ConnectV4, true)]);
    let medium = large_policy(200, 0x5EED_0000_0000_0200);
    let medium_conns = large_connections(&medium, 8, 0xC0FF_EE00_0000_0200);
    add("medium-200", &medium, medium_conns);
    let large = large_policy(10_000, 0x5EED_1234_ABCD_0001);
    let large_conns = large_connections(&large, 24, 0xC0FF_EE00_1234_5678);
    add("large-10k", &large, large_conns);

    // Malformed blobs, each with the status the driver must return.
    let mut malformed: Vec<(String, Vec<u8>)> = Vec::new();
    let n = good.len();
    malformed.push(("truncated by one byte".into(), good[..n - 1].to_vec()));
    malformed.push(("truncated to half".into(), good[..n / 2].to_vec()));
    malformed.push(("truncated inside the header".into(), good[..40].to_vec()));
    let patch = |off: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[off..off + bytes.len()].copy_from_slice(bytes);
        b
    };
    let u32_at = |off: usize| u32::from_le_bytes(good[off..off + 4].try_into().unwrap());
    malformed.push(("bad magic".into(), patch(0, b"XEIRPLCY")));
    malformed.push(("unknown format version".into(), patch(8, &99u16.to_le_bytes())));
    malformed.push(("total length field too large".into(), patch(12, &(n as u32 + 4).to_le_bytes())));
    malformed.push(("rule count + 1".into(), patch(20, &(u32_at(20) + 1).to_le_bytes())));
    malformed.push(("set count + 1000".into(), patch(24, &(u32_at(24) + 1000).to_le_bytes())));
    malformed.push(("rules section offset + 4".into(), patch(32, &(u32_at(32) + 4).to_le_bytes())));
    malformed.push(("ports section offset past the end".into(), patch(32 + 8 * 3, &(n as u32 + 100).to_le_bytes())));
    malformed.push(("sets section length - 1".into(), patch(32 + 8 + 4, &(u32_at(32 + 8 + 4) - 1).to_le_bytes())));
    malformed.push(("reserved header byte set".into(), patch(19, &[1])));
    malformed.push(("default action 7".into(), patch(16, &[7])));
    let mut rng = Rng(0xBADC_0FFE_E0DD_F00D);
    for len in [1usize, 79, 80, 200, 1000] {
        malformed.push((format!("random bytes ({len})"), (0..len).map(|_| rng.next() as u8).collect()));
    }
    let mut magic_random: Vec<u8> = good[..16].to_vec();
    magic_random.extend((0..300).map(|_| rng.next() as u8));
    malformed.push(("valid magic, random rest".into(), magic_random));
    let mut entries = Vec::new();
    for (i, (name, blob)) in malformed.iter().enumerate() {
        let file = format!("malformed-{i:02}.bin");
        std::fs::write(dir.join(&file), blob).unwrap();
        entries.push(format!("{{\"name\":{},\"blob\":\"{file}\",\"status\":{}}}", json_str(name), status_of(blob)));
    }
    // Over the size limit: refused before it is copied (the suite builds the zero-filled blob).
    let over = weir_policy::limits::MAX_BLOB_BYTES + 1;
    entries.push(format!(
        "{{\"name\":\"over MAX_BLOB_BYTES\",\"zeros\":{over},\"status\":{}}}",
        weir_abi::status::STATUS_WEIR_POLICY_TOO_LARGE
    ));
    let json = format!("{{\"policies\":[\n{}\n],\"malformed\":[\n{}\n]}}\n", policies.join(",\n"), entries.join(",\n"));
    std::fs::write(dir.join("vectors.json"), json).unwrap();
}
