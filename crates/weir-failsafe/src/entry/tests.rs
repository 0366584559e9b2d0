#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;

fn ok(text: &str) -> Entry {
    Entry::parse(text).unwrap_or_else(|e| unreachable!("{text:?}: {e}"))
}

#[test]
fn the_documented_examples_parse_to_their_canonical_text() {
    for (text, canonical) in [
        ("out udp 10.0.0.53 53", "out udp 10.0.0.53 53"),
        ("out tcp 10.1.2.0/24 443", "out tcp 10.1.2.0/24 443"),
        ("in udp any 67-68", "in udp any 67-68"),
        ("out tcp fd00::/8 5985-5986", "out tcp fd00::/8 5985-5986"),
        ("out icmp any any", "out icmp any any"),
        ("  IN\tTCP  ANY   5985 ", "in tcp any 5985"),
        ("out 132 192.0.2.1/32 any", "out 132 192.0.2.1 any"),
        ("out 6 any 0-65535", "out tcp any any"),
        ("out tcp 10.1.2.77/24 443", "out tcp 10.1.2.0/24 443"),
        ("out any 2001:db8::1/128 53", "out any 2001:db8::1 53"),
        ("out udp 0.0.0.0/0 123", "out udp 0.0.0.0/0 123"),
    ] {
        assert_eq!(ok(text).to_string(), canonical, "{text:?}");
    }
}

#[test]
fn each_kind_of_mistake_has_its_own_error() {
    for (text, error) in [
        ("", EntryError::Fields { found: 0 }),
        ("out tcp any", EntryError::Fields { found: 3 }),
        ("out tcp any 443 extra", EntryError::Fields { found: 5 }),
        ("both tcp any 443", EntryError::Direction),
        ("out sctp any 443", EntryError::Protocol),
        ("out 256 any any", EntryError::Protocol),
        ("out -1 any any", EntryError::Protocol),
        ("out tcp 10.0.0 443", EntryError::Address),
        ("out tcp 10.0.0.0/ 443", EntryError::Prefix),
        ("out tcp 10.0.0.0/33 443", EntryError::Prefix),
        ("out tcp ::/129 443", EntryError::Prefix),
        ("out tcp 10.0.0.0/+8 443", EntryError::Prefix),
        ("out tcp any 65536", EntryError::Port),
        ("out tcp any +80", EntryError::Port),
        ("out tcp any 80-", EntryError::Port),
        ("out tcp any 80-90-100", EntryError::Port),
        ("out tcp any 90-80", EntryError::PortOrder),
        ("out icmp any 8", EntryError::PortsNeedTcpOrUdp),
        ("out 47 any 1-2", EntryError::PortsNeedTcpOrUdp),
        ("out tcp any 44\u{e9}", EntryError::NotAscii),
        ("out\rtcp any 443", EntryError::NotAscii),
    ] {
        assert_eq!(Entry::parse(text), Err(error), "{text:?}");
        assert!(!error.to_string().is_empty());
    }
    let long = format!("out tcp any 443{}", " ".repeat(crate::MAX_ENTRY_UNITS));
    assert_eq!(Entry::parse(&long), Err(EntryError::TooLong));
}

#[test]
fn conditions_follow_direction_family_and_prefix() {
    let e = ok("out tcp 10.1.2.0/24 443");
    assert_eq!(e.families().collect::<Vec<_>>(), [Family::V4]);
    assert_eq!(
        e.conditions(Family::V4),
        [
            Some(FilterCondition::Protocol(6)),
            Some(FilterCondition::RemoteV4 { addr: 0x0A01_0200, mask: 0xFFFF_FF00 }),
            Some(FilterCondition::RemotePort { low: 443, high: 443 }),
        ]
    );
    let e = ok("in udp any 67-68");
    assert_eq!(e.families().collect::<Vec<_>>(), [Family::V4, Family::V6]);
    assert_eq!(
        e.conditions(Family::V6),
        [Some(FilterCondition::Protocol(17)), None, Some(FilterCondition::LocalPort { low: 67, high: 68 })]
    );
    let e = ok("out any fd00::/8 any");
    assert_eq!(e.families().collect::<Vec<_>>(), [Family::V6]);
    let mut addr = [0u8; 16];
    addr[0] = 0xfd;
    assert_eq!(e.conditions(Family::V6), [None, Some(FilterCondition::RemoteV6 { addr, prefix: 8 }), None]);
    // A /0 network restricts the IP version only: no address condition.
    assert_eq!(ok("out any 0.0.0.0/0 any").conditions(Family::V4), [None, None, None]);
    assert_eq!(
        ok("out any 192.0.2.7 any").conditions(Family::V4)[1],
        Some(FilterCondition::RemoteV4 { addr: 0xC000_0207, mask: u32::MAX })
    );
}

#[test]
fn new_checks_what_parse_checks() {
    let any = Remote::Any;
    assert_eq!(Entry::new(Direction::Out, Some(1), any, Some(Ports { low: 1, high: 1 })), Err(EntryError::PortsNeedTcpOrUdp));
    assert_eq!(Entry::new(Direction::Out, None, any, Some(Ports { low: 2, high: 1 })), Err(EntryError::PortOrder));
    assert_eq!(Entry::new(Direction::Out, None, Remote::V4 { addr: [0; 4], prefix: 33 }, None), Err(EntryError::Prefix));
    let e = Entry::new(Direction::In, None, Remote::V4 { addr: [10, 9, 8, 7], prefix: 8 }, None).unwrap();
    assert_eq!(e.remote(), Remote::V4 { addr: [10, 0, 0, 0], prefix: 8 });
}
