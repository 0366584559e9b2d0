//! The `FailClosedAllow` value parser: good lists, every kind of refusal,
//! the limits, and properties over arbitrary bytes and entries.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use proptest::prelude::*;
use weir_failsafe::{
    describe_code, encode_multi_sz, parse_multi_sz, Direction, Entry, EntryError, Family, FilterCondition, ListError,
    Ports, Remote, MAX_ENTRIES, MAX_VALUE_BYTES,
};

fn value(strings: &[&str]) -> Vec<u8> {
    let mut out = vec![0u8; MAX_VALUE_BYTES * 2];
    let n = encode_multi_sz(strings.iter().copied(), &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn a_good_list_keeps_order_and_skips_comments_and_blanks() {
    let p = parse_multi_sz(&value(&["out udp 10.0.0.53 53", "", "  # GPO: management", "   ", "in tcp any 5985-5986"]));
    assert_eq!(p.error, None);
    assert_eq!((p.found, p.bad), (2, 0));
    let texts: Vec<String> = p.list.entries().iter().map(ToString::to_string).collect();
    assert_eq!(texts, ["out udp 10.0.0.53 53", "in tcp any 5985-5986"]);
    assert_eq!(p.list.filter_count(), 3);
}

#[test]
fn an_empty_value_and_a_missing_final_nul_are_fine() {
    for bytes in [&b""[..], &[0, 0], &[0, 0, 0, 0]] {
        let p = parse_multi_sz(bytes);
        assert_eq!((p.error, p.found, p.list.len()), (None, 0, 0));
    }
    // "in udp any 68" without any NUL: the end of the data ends it.
    let bytes: Vec<u8> = "in udp any 68".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let p = parse_multi_sz(&bytes);
    assert_eq!((p.error, p.list.len()), (None, 1));
}

#[test]
fn one_bad_entry_refuses_the_whole_list_and_names_its_line() {
    let p = parse_multi_sz(&value(&["out udp 10.0.0.53 53", "# note", "out tcp 10.0.0.0/33 443", "out tcp any 90-80"]));
    assert_eq!(p.error, Some(ListError::Entry { line: 3, error: EntryError::Prefix }));
    assert_eq!((p.found, p.bad, p.list.len()), (3, 2, 0));
    assert_eq!(p.error.unwrap().code(), 16 + 6);
    assert_eq!(p.error.unwrap().line(), 3);
    assert_eq!(describe_code(p.error.unwrap().code()), "an entry's prefix is not valid");
    assert!(p.error.unwrap().to_string().starts_with("line 3: prefix must be"));
}

#[test]
fn the_entry_limit_is_inclusive() {
    let lines: Vec<String> = (0..MAX_ENTRIES).map(|i| format!("out tcp 10.0.0.{i} 443")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let p = parse_multi_sz(&value(&refs));
    assert_eq!((p.error, p.list.len()), (None, MAX_ENTRIES));
    let mut more = refs.clone();
    more.push("out tcp 10.0.1.0 443");
    let p = parse_multi_sz(&value(&more));
    assert_eq!((p.error, p.found, p.list.len()), (Some(ListError::TooMany), MAX_ENTRIES + 1, 0));
    assert_eq!(p.error.unwrap().code(), 3);
}

#[test]
fn whole_value_errors_come_before_any_entry() {
    let p = parse_multi_sz(&vec![b'a'; MAX_VALUE_BYTES + 2]);
    assert_eq!((p.error, p.found), (Some(ListError::TooLarge), 0));
    let mut odd = value(&["out tcp any 443"]);
    odd.push(0);
    assert_eq!(parse_multi_sz(&odd).error, Some(ListError::OddLength));
    // Exactly the limit is read.
    let p = parse_multi_sz(&vec![0u8; MAX_VALUE_BYTES]);
    assert_eq!(p.error, None);
}

#[test]
fn non_ascii_and_overlong_strings_are_bad_entries_but_fine_comments() {
    let p = parse_multi_sz(&value(&["# Zürich office"]));
    assert_eq!((p.error, p.found), (None, 0));
    let p = parse_multi_sz(&value(&["out tcp any 443 # Zürich"]));
    assert_eq!(p.error, Some(ListError::Entry { line: 1, error: EntryError::NotAscii }));
    let long = "o".repeat(5000);
    let p = parse_multi_sz(&value(&[&long]));
    assert_eq!(p.error, Some(ListError::Entry { line: 1, error: EntryError::TooLong }));
    // A lone surrogate is just another non-ASCII unit.
    let bytes: Vec<u8> = [0x6F_u16, 0xD800, 0].iter().flat_map(|u| u.to_le_bytes()).collect();
    assert_eq!(parse_multi_sz(&bytes).error, Some(ListError::Entry { line: 1, error: EntryError::NotAscii }));
}

fn entry() -> impl Strategy<Value = Entry> {
    let direction = prop_oneof![Just(Direction::Out), Just(Direction::In)];
    let remote = prop_oneof![
        Just(Remote::Any),
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(addr, prefix)| Remote::V4 { addr, prefix }),
        (any::<[u8; 16]>(), 0u8..=128).prop_map(|(addr, prefix)| Remote::V6 { addr, prefix }),
    ];
    let ported = prop_oneof![Just(None), Just(Some(6u8)), Just(Some(17u8))];
    let ports = proptest::option::of((any::<u16>(), any::<u16>()).prop_map(|(a, b)| Ports { low: a.min(b), high: a.max(b) }));
    prop_oneof![
        (direction.clone(), ported, remote.clone(), ports).prop_map(|(d, p, r, ports)| Entry::new(d, p, r, ports).unwrap()),
        (direction, any::<u8>(), remote).prop_map(|(d, p, r)| Entry::new(d, Some(p), r, None).unwrap()),
    ]
}

/// Whether `addr` (network order) is in the entry's filter at `family`, by
/// the conditions' own definition.
fn address_matches(conditions: &[Option<FilterCondition>], addr: &[u8]) -> bool {
    conditions.iter().flatten().all(|c| match *c {
        FilterCondition::RemoteV4 { addr: net, mask } => {
            let a = u32::from_be_bytes(addr.try_into().unwrap());
            a & mask == net
        }
        FilterCondition::RemoteV6 { addr: net, prefix } => {
            let a = u128::from_be_bytes(addr.try_into().unwrap());
            let n = u128::from_be_bytes(net);
            let shift = 128 - u32::from(prefix);
            a.checked_shr(shift).unwrap_or(0) == n.checked_shr(shift).unwrap_or(0)
        }
        _ => true,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes: no panic, and the outcome is consistent (an accepted list
    /// holds every entry found; a refused one holds none and says why).
    #[test]
    fn any_bytes_give_a_consistent_outcome(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let p = parse_multi_sz(&bytes);
        match p.error {
            None => prop_assert!(p.bad == 0 && p.list.len() == p.found && p.found <= MAX_ENTRIES),
            Some(_) => prop_assert!(p.list.is_empty()),
        }
        prop_assert!(p.bad <= p.found);
        prop_assert!(p.list.filter_count() <= 2 * p.list.len());
    }

    /// Lines of printable text, with NULs between: the same properties, and
    /// a bad entry is always reported with a line that exists.
    #[test]
    fn text_like_values_report_real_lines(lines in proptest::collection::vec("[ -~\t]{0,40}", 0..80)) {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let p = parse_multi_sz(&value(&refs));
        if let Some(ListError::Entry { line, .. }) = p.error {
            prop_assert!(line >= 1 && line <= lines.len());
        }
        let good = lines.iter().filter(|l| { let t = l.trim(); !t.is_empty() && !t.starts_with('#') && Entry::parse(l).is_ok() }).count();
        prop_assert_eq!(p.found - p.bad, good);
    }

    /// The canonical text parses back to the entry, alone and in a list.
    #[test]
    fn canonical_text_round_trips(entries in proptest::collection::vec(entry(), 0..=MAX_ENTRIES)) {
        let texts: Vec<String> = entries.iter().map(ToString::to_string).collect();
        for (e, t) in entries.iter().zip(&texts) {
            prop_assert_eq!(&Entry::parse(t).unwrap(), e);
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let p = parse_multi_sz(&value(&refs));
        prop_assert_eq!(p.error, None);
        prop_assert_eq!(p.list.entries(), &entries[..]);
    }

    /// An entry's address condition admits exactly the addresses of its
    /// network (the host bits cleared by the parser are the ones the mask
    /// ignores), and a family it does not cover gets no filter.
    #[test]
    fn address_conditions_admit_exactly_the_network(e in entry(), probe4 in any::<[u8; 4]>(), probe6 in any::<[u8; 16]>()) {
        let families: Vec<Family> = e.families().collect();
        match e.remote() {
            Remote::Any => prop_assert_eq!(families, vec![Family::V4, Family::V6]),
            Remote::V4 { addr, prefix } => {
                prop_assert_eq!(families, vec![Family::V4]);
                let c = e.conditions(Family::V4);
                prop_assert!(address_matches(&c, &addr));
                let inside = u32::from_be_bytes(probe4).checked_shr(32 - u32::from(prefix)).unwrap_or(0)
                    == u32::from_be_bytes(addr).checked_shr(32 - u32::from(prefix)).unwrap_or(0);
                prop_assert_eq!(address_matches(&c, &probe4), inside);
            }
            Remote::V6 { addr, prefix } => {
                prop_assert_eq!(families, vec![Family::V6]);
                let c = e.conditions(Family::V6);
                prop_assert!(address_matches(&c, &addr));
                let shift = 128 - u32::from(prefix);
                let inside = u128::from_be_bytes(probe6).checked_shr(shift).unwrap_or(0)
                    == u128::from_be_bytes(addr).checked_shr(shift).unwrap_or(0);
                prop_assert_eq!(address_matches(&c, &probe6), inside);
            }
        }
    }
}
