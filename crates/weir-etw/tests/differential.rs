//! Weir's TraceLogging bytes against Microsoft's implementation: for every
//! event Weir writes, `tracelogging_dynamic::EventBuilder` is given the same
//! definition (name, level, keyword, fields with their in- and out-types)
//! and must produce the same metadata and payload. The provider id is
//! checked against the published derivation and `tracelogging`'s own.
//!
//! `EventBuilder` keeps its buffers private; its `Debug` output prints them
//! (`meta: [..], data: [..]`), which is what is compared. Its metadata size
//! field is filled in only when the event is written, so the size is
//! compared separately.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use proptest::prelude::*;
use sha1::{Digest, Sha1};
use tracelogging::{Level, OutType};
use tracelogging_dynamic::EventBuilder;
use weir_etw::weir::{self, ConnectionExtra, PolicyChange};
use weir_etw::{provider, Builder};
use weir_events::{AppPath, Decision, Direction, Event, IpVersion};

/// (meta, data, level, keyword) as `EventBuilder` holds them.
fn theirs(b: &EventBuilder) -> (Vec<u8>, Vec<u8>, u8, u64) {
    let text = format!("{b:?}");
    let list = |key: &str| -> Vec<u8> {
        let start = text.find(key).map(|i| i + key.len()).expect("field in Debug output");
        let end = start + text[start..].find(']').expect("closing bracket");
        text[start..end].split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().expect("byte")).collect()
    };
    let num = |key: &str| -> u64 {
        let start = text.find(key).map(|i| i + key.len()).expect("descriptor field");
        text[start..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().expect("number")
    };
    (list("meta: ["), list("data: ["), num("level: Level(") as u8, num("keyword: "))
}

fn assert_same(mut ours: Builder, b: &EventBuilder) {
    let (meta, data, level, keyword) = theirs(b);
    assert!(!ours.truncated(), "our event was truncated");
    let d = ours.descriptor();
    let our_meta = ours.metadata().to_vec();
    assert_eq!(usize::from(u16::from_le_bytes([our_meta[0], our_meta[1]])), our_meta.len(), "metadata size field");
    assert_eq!(&our_meta[2..], &meta[2..], "event metadata differs from tracelogging_dynamic's");
    assert_eq!(ours.payload(), &data[..], "payload differs from tracelogging_dynamic's");
    assert_eq!((d.level, d.keyword), (level, keyword), "descriptor level/keyword");
    assert!(format!("{b:?}").contains("channel: Channel(11)"), "TraceLogging channel");
}

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn sample_event(decision: Decision, v6: bool, path: &str, rule: Option<u32>, pid: Option<u64>) -> Event {
    let mut local = [0u8; 16];
    let mut remote = [0u8; 16];
    if v6 {
        local = "fe80::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        remote = "2001:db8::53".parse::<std::net::Ipv6Addr>().unwrap().octets();
    } else {
        local[..4].copy_from_slice(&[10, 0, 0, 2]);
        remote[..4].copy_from_slice(&[93, 184, 216, 34]);
    }
    Event {
        time: 133_000_000_000_000_000,
        layer_id: if v6 { 50 } else { 48 },
        direction: Direction::Outbound,
        ip_version: if v6 { IpVersion::V6 } else { IpVersion::V4 },
        tuple: true,
        protocol: 6,
        local_addr: local,
        local_port: 50000,
        remote_addr: remote,
        remote_port: 443,
        process_id: pid,
        path: AppPath::from_units(&utf16(path)),
        decision,
        rule_id: rule,
        reauthorization: false,
        user: weir_events::UserSid::EMPTY,
        policy_generation: if rule.is_some() { 4 } else { 0 },
        rule_index: rule.map(|_| 2),
    }
}

/// The `Connection` event as `tracelogging_dynamic` builds it from the
/// definition in docs/etw.md.
fn their_connection(e: &Event, user: &str, rule_name: &str, addrs: (&str, &str), protocol: &str) -> EventBuilder {
    let level = if e.decision == Decision::Block { Level::Informational } else { Level::Verbose };
    let kw = if e.decision == Decision::Block { 3 } else { 1 };
    let mut b = EventBuilder::new();
    b.reset("Connection", level, kw, 0);
    b.add_str8("Layer", weir::layer_name(e.layer_id), OutType::Utf8, 0);
    b.add_str8("Direction", weir::direction_name(e.direction), OutType::Utf8, 0);
    b.add_str8("Decision", weir::decision_name(e.decision), OutType::Utf8, 0);
    b.add_u32("RuleId", e.rule_id.unwrap_or(0), OutType::Default, 0);
    b.add_bool32("HasRule", e.rule_id.is_some() as i32, OutType::Default, 0);
    b.add_u8("ProtocolNumber", e.protocol, OutType::Default, 0);
    b.add_str8("Protocol", protocol, OutType::Utf8, 0);
    b.add_str8("LocalAddress", addrs.0, OutType::Utf8, 0);
    b.add_u16("LocalPort", e.local_port, OutType::Default, 0);
    b.add_str8("RemoteAddress", addrs.1, OutType::Utf8, 0);
    b.add_u16("RemotePort", e.remote_port, OutType::Default, 0);
    b.add_u32("ProcessId", e.process_id.unwrap_or(0) as u32, OutType::Pid, 0);
    b.add_str16("Image", e.path.units(), OutType::Default, 0);
    b.add_bool32("ImageTruncated", e.path.truncated() as i32, OutType::Default, 0);
    b.add_str8("User", user, OutType::Utf8, 0);
    b.add_bool32("Reauthorization", e.reauthorization as i32, OutType::Default, 0);
    b.add_str8("RuleName", rule_name, OutType::Utf8, 0);
    b.add_u64("PolicyGeneration", e.policy_generation, OutType::Default, 0);
    b.add_u32("RuleIndex", if e.rule_id.is_some() { e.rule_index.unwrap_or(0) } else { 0 }, OutType::Default, 0);
    b
}

#[test]
fn connection_events_match_tracelogging_dynamic() {
    let mut sid = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
    for s in [21u32, 111, 222, 333, 1001] {
        sid.extend_from_slice(&s.to_le_bytes());
    }
    let path = r"\device\harddiskvolume3\program files\mozilla firefox\firefox.exe";
    let long_name = "ü".repeat(127) + "x"; // 255 bytes, the longest a policy allows
    for (decision, v6, rule, pid, user, rule_name) in [
        (Decision::Permit, false, None, Some(4242), None, None),
        (Decision::Block, true, Some(100), Some(7), Some(&sid[..]), Some("block telemetry")),
        (Decision::WriteRightAbsent, false, Some(3), None, None, Some(long_name.as_str())),
    ] {
        let e = sample_event(decision, v6, path, rule, pid);
        let ours = weir::connection(&e, &ConnectionExtra { user_sid: user, rule_name });
        assert!(!ours.truncated(), "a full event fits");
        let addrs = if v6 { ("fe80::1", "2001:db8::53") } else { ("10.0.0.2", "93.184.216.34") };
        let user_text = if user.is_some() { "S-1-5-21-111-222-333-1001" } else { "" };
        assert_same(ours, &their_connection(&e, user_text, rule_name.unwrap_or(""), addrs, "tcp"));
    }
}

#[test]
fn the_other_events_match_tracelogging_dynamic() {
    let blob = [1u8, 2, 3, 4, 5];
    let ours = weir::policy_changed(&PolicyChange { generation: 7, rule_count: 12, blob: &blob, source: "IOCTL_WEIR_SET_POLICY", process_id: 4321 });
    let mut b = EventBuilder::new();
    b.reset("PolicyChanged", Level::Informational, 4, 0);
    b.add_u64("Generation", 7, OutType::Default, 0);
    b.add_u32("RuleCount", 12, OutType::Default, 0);
    b.add_u32("BlobSize", 5, OutType::Default, 0);
    b.add_hex64("BlobHash", weir::blob_hash(&blob), OutType::Default, 0);
    b.add_str8("Source", "IOCTL_WEIR_SET_POLICY", OutType::Utf8, 0);
    b.add_u32("ProcessId", 4321, OutType::Pid, 0);
    assert_same(ours, &b);

    for (started, name, level) in [(true, "FilteringStarted", Level::Informational), (false, "FilteringStopped", Level::Warning)] {
        let mut b = EventBuilder::new();
        b.reset(name, level, 8, 0);
        b.add_str8("Reason", "BFE running", OutType::Utf8, 0);
        assert_same(weir::filtering(started, "BFE running"), &b);
    }
    for (started, name) in [(true, "DriverStarted"), (false, "DriverStopping")] {
        let mut b = EventBuilder::new();
        b.reset(name, Level::Informational, 0x10, 0);
        b.add_str8("Version", "0.1.0", OutType::Utf8, 0);
        assert_same(weir::lifecycle(started, "0.1.0"), &b);
    }
    let mut b = EventBuilder::new();
    b.reset("Error", Level::Error, 0x20, 0);
    b.add_str8("Message", "FwpmEngineOpen0 failed: 0xc0000001", OutType::Utf8, 0);
    assert_same(weir::error("FwpmEngineOpen0 failed: 0xc0000001"), &b);

    let mut b = EventBuilder::new();
    b.reset("EventsDropped", Level::Warning, 0x20, 0);
    b.add_u64("Total", 99, OutType::Default, 0);
    assert_same(weir::events_dropped(99), &b);
}

#[test]
fn each_field_kind_matches_tracelogging_dynamic() {
    let mut ours = Builder::new("Kinds", 4, 1);
    ours.u8("a", 1).u16("b", 2).port("c", 443).u32("d", 3).pid("e", 4).ntstatus("f", 0xC000_0022).u64("g", 5)
        .hex64("h", 6).bool32("i", true).str8("j", "héllo").str16_le("k", &[b'x', 0, b'y', 0]).binary("l", &[9, 8, 7]);
    let mut b = EventBuilder::new();
    b.reset("Kinds", Level::Informational, 1, 0);
    b.add_u8("a", 1, OutType::Default, 0);
    b.add_u16("b", 2, OutType::Default, 0);
    b.add_u16("c", 443u16.to_be(), OutType::Port, 0);
    b.add_u32("d", 3, OutType::Default, 0);
    b.add_u32("e", 4, OutType::Pid, 0);
    b.add_u32("f", 0xC000_0022, OutType::NtStatus, 0);
    b.add_u64("g", 5, OutType::Default, 0);
    b.add_hex64("h", 6, OutType::Default, 0);
    b.add_bool32("i", 1, OutType::Default, 0);
    b.add_str8("j", "héllo", OutType::Utf8, 0);
    b.add_str16("k", [u16::from(b'x'), u16::from(b'y')], OutType::Default, 0);
    b.add_binary("l", [9, 8, 7], OutType::Default, 0);
    assert_same(ours, &b);
}

proptest! {
    /// Any connection (any path, protocol, ports, decision) encodes as
    /// tracelogging_dynamic encodes it.
    #[test]
    fn any_connection_matches_tracelogging_dynamic(
        path in "[a-zA-Z0-9\\\\ .é€]{0,300}",
        protocol in any::<u8>(),
        lport in any::<u16>(), rport in any::<u16>(),
        decision in prop_oneof![Just(Decision::Permit), Just(Decision::Block), Just(Decision::WriteRightAbsent)],
        rule in proptest::option::of(any::<u32>()),
        pid in proptest::option::of(0u64..u64::from(u32::MAX)),
        v6 in any::<bool>(),
        rule_name in "[a-zA-Z0-9 ._é€-]{0,85}",
        generation in any::<u64>(),
    ) {
        let mut e = sample_event(decision, v6, &path, rule, pid);
        e.protocol = protocol;
        e.local_port = lport;
        e.remote_port = rport;
        e.policy_generation = generation;
        let ours = weir::connection(&e, &ConnectionExtra { user_sid: None, rule_name: Some(&rule_name) });
        let addrs = if v6 { ("fe80::1", "2001:db8::53") } else { ("10.0.0.2", "93.184.216.34") };
        let proto = weir::protocol_name(protocol).map_or_else(|| protocol.to_string(), str::to_string);
        assert_same(ours, &their_connection(&e, "", &rule_name, addrs, &proto));
    }
}

/// The derivation of TraceLoggingProvider.h / EventSource, written from its
/// description (see `provider`'s documentation).
fn derive_id(name: &str) -> [u8; 16] {
    const NAMESPACE: [u8; 16] = [0x48, 0x2C, 0x2D, 0xB2, 0xC3, 0x90, 0x47, 0xC8, 0x87, 0xF8, 0x1A, 0x15, 0xBF, 0xC1, 0x30, 0xFB];
    let mut h = Sha1::new();
    h.update(NAMESPACE);
    for unit in name.to_ascii_uppercase().encode_utf16() {
        h.update(unit.to_be_bytes());
    }
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id[7] = (id[7] & 0x0F) | 0x50;
    id
}

fn guid_text(b: [u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10..].iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

#[test]
fn provider_id_is_derived_from_the_name_as_tracelogging_derives_it() {
    // The published pair (TRACELOGGING_DEFINE_PROVIDER's documentation).
    assert_eq!(guid_text(derive_id("MyCompany.MyComponent")), "ce5fa4ea-ab00-5402-8b76-9f76ac858fb5");
    // Case does not matter to the derivation.
    assert_eq!(derive_id("mycompany.mycomponent"), derive_id("MyCompany.MyComponent"));
    assert_eq!(derive_id(provider::NAME), provider::ID.to_bytes_le());
    assert_eq!(tracelogging::Guid::from_name(provider::NAME).to_bytes_le(), provider::ID.to_bytes_le());
    assert_eq!(guid_text(provider::ID.to_bytes_le()), provider::ID_TEXT);
}
