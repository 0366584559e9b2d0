//! Record encoding and the total decoder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use proptest::prelude::*;
use weir_events::record::{flags, CONNECTION_FIXED_SIZE, DROPPED_SIZE, KIND_CONNECTION};
use weir_events::*;

fn path(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn sample() -> Event {
    Event {
        time: 0x01DB_0000_1234_5678,
        layer_id: 50,
        direction: Direction::Outbound,
        ip_version: IpVersion::V6,
        tuple: true,
        protocol: 17,
        local_addr: "fe80::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        local_port: 5353,
        remote_addr: "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        remote_port: 53,
        process_id: Some(4242),
        path: AppPath::from_units(&path("\\device\\harddiskvolume3\\windows\\system32\\svchost.exe")),
        decision: Decision::Block,
        rule_id: Some(7),
        reauthorization: true,
        user: UserSid::EMPTY,
        policy_generation: 0x0102_0304_0506_0708,
        rule_index: Some(3),
    }
}

#[test]
fn connection_record_bytes_are_pinned() {
    let e = sample();
    let mut buf = [0xAAu8; 1024];
    let n = encode_event(&e, &mut buf).unwrap();
    let units = e.path.units().len();
    assert_eq!(n, (72 + 2 * units + 12).div_ceil(8) * 8);
    assert_eq!(u16::from_le_bytes([buf[0], buf[1]]) as usize, n);
    assert_eq!(buf[2], KIND_CONNECTION);
    assert_eq!(buf[3], 3);
    assert_eq!(buf[38], 0, "no user");
    let f = u16::from_le_bytes([buf[4], buf[5]]);
    assert_eq!(f, flags::PROCESS_ID | flags::RULE | flags::REAUTHORIZATION | flags::PATH | flags::TUPLE | flags::RULE_INDEX);
    assert_eq!(u16::from_le_bytes([buf[6], buf[7]]), 50);
    assert_eq!(u64::from_le_bytes(buf[8..16].try_into().unwrap()), e.time);
    assert_eq!(u64::from_le_bytes(buf[16..24].try_into().unwrap()), 4242);
    assert_eq!(u32::from_le_bytes(buf[24..28].try_into().unwrap()), 7);
    assert_eq!(&buf[28..32], &[0, 6, 17, 2]);
    assert_eq!(u16::from_le_bytes([buf[32], buf[33]]), 5353);
    assert_eq!(u16::from_le_bytes([buf[34], buf[35]]), 53);
    assert_eq!(u16::from_le_bytes([buf[36], buf[37]]) as usize, units);
    assert_eq!(&buf[40..56], &e.local_addr);
    assert_eq!(&buf[56..72], &e.remote_addr);
    assert_eq!(u16::from_le_bytes([buf[72], buf[73]]), u16::from(b'\\'));
    // Version 3's trailer right after the path (no user): generation, rule index.
    let t = 72 + 2 * units;
    assert_eq!(u64::from_le_bytes(buf[t..t + 8].try_into().unwrap()), 0x0102_0304_0506_0708);
    assert_eq!(u32::from_le_bytes(buf[t + 8..t + 12].try_into().unwrap()), 3);
    assert!(buf[t + 12..n].iter().all(|b| *b == 0), "padding is zero");
    assert_eq!(buf[n], 0xAA, "nothing written past the record");
}

#[test]
fn round_trip_and_minimal_event() {
    let e = sample();
    let mut buf = vec![0u8; 2048];
    let n1 = encode_event(&e, &mut buf).unwrap();
    let plain = Event {
        process_id: None,
        rule_id: None,
        rule_index: None,
        policy_generation: 0,
        path: AppPath::EMPTY,
        reauthorization: false,
        tuple: false,
        ..e
    };
    let n2 = encode_event(&plain, &mut buf[n1..]).unwrap();
    assert_eq!(n2, CONNECTION_FIXED_SIZE + 16, "the fixed part and the 12-byte trailer, padded");
    let n3 = encode_dropped(99, &mut buf[n1 + n2..]).unwrap();
    assert_eq!(n3, DROPPED_SIZE);
    let recs: Vec<_> = decode(&buf[..n1 + n2 + n3]).collect::<Result<_, _>>().unwrap();
    assert_eq!(recs, vec![Record::Connection(e), Record::Connection(plain), Record::Dropped { count: 99 }]);
}

/// A SID of revision 1, authority 5 (NT AUTHORITY), these sub-authorities.
fn sid(subs: &[u32]) -> Vec<u8> {
    let mut b = vec![1u8, subs.len() as u8, 0, 0, 0, 0, 0, 5];
    for s in subs {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// Version 2 carries the user's SID after the path (length at offset 38);
/// its text form is the usual `S-1-5-...`.
#[test]
fn the_user_sid_follows_the_path_and_round_trips() {
    let user = sid(&[21, 1_004_336_348, 1_177_238_915, 682_003_330, 1001]);
    let e = Event { user: UserSid::from_bytes(&user), ..sample() };
    let mut buf = vec![0u8; 1024];
    let n = encode_event(&e, &mut buf).unwrap();
    let units = e.path.units().len();
    assert_eq!(n, (72 + 2 * units + user.len() + 12).div_ceil(8) * 8);
    assert_eq!(buf[38] as usize, user.len());
    assert_eq!(&buf[72 + 2 * units..72 + 2 * units + user.len()], &user[..]);
    let Some(Ok(Record::Connection(d))) = decode(&buf[..n]).next() else { panic!("decodes") };
    assert_eq!(d, e);
    let mut text = String::new();
    d.user.write_text(&mut text).unwrap();
    assert_eq!(text, "S-1-5-21-1004336348-1177238915-682003330-1001");
    // A SID longer than its count says, or of another revision, is no SID.
    assert!(UserSid::from_bytes(&user[..user.len() - 1]).is_empty());
    let mut rev2 = user.clone();
    rev2[0] = 2;
    assert!(UserSid::from_bytes(&rev2).is_empty());
    // A user_len running past the record, or over a malformed SID, is refused.
    let mut bad = buf[..n].to_vec();
    bad[38] = 200;
    assert!(matches!(decode(&bad).next(), Some(Err(DecodeError::BadField { field: "user_len", .. }))));
    let mut bad = buf[..n].to_vec();
    bad[72 + 2 * units] = 9;
    assert!(matches!(decode(&bad).next(), Some(Err(DecodeError::BadField { field: "user_len", .. }))));
}

/// A version-1 record (a driver before the user field) still decodes, with
/// no user, whatever its reserved byte 38 holds.
#[test]
fn version_1_records_still_decode_without_a_user() {
    let e = sample();
    let mut buf = vec![0u8; 1024];
    let n = encode_event(&e, &mut buf).unwrap();
    buf[3] = 1;
    buf[38] = 12;
    let Some(Ok(Record::Connection(d))) = decode(&buf[..n]).next() else { panic!("decodes") };
    assert_eq!(d, Event { user: UserSid::EMPTY, policy_generation: 0, rule_index: None, ..e });
}

/// A version-2 record (a driver before the policy generation) still
/// decodes, with the user and without the generation and rule index.
#[test]
fn version_2_records_still_decode_without_the_generation() {
    let user = sid(&[21, 1, 2, 3, 1001]);
    let e = Event { user: UserSid::from_bytes(&user), ..sample() };
    let mut buf = vec![0u8; 1024];
    let n = encode_event(&e, &mut buf).unwrap();
    // The version-2 size: no trailer.
    let units = e.path.units().len();
    let v2 = (72 + 2 * units + user.len()).div_ceil(8) * 8;
    assert!(v2 < n);
    buf[3] = 2;
    buf[0..2].copy_from_slice(&(v2 as u16).to_le_bytes());
    buf[72 + 2 * units + user.len()..v2].fill(0);
    let Some(Ok(Record::Connection(d))) = decode(&buf[..v2]).next() else { panic!("decodes") };
    assert_eq!(d, Event { policy_generation: 0, rule_index: None, ..e });
    // Re-encoded (as version 3, the rule id without an index): the same event back.
    let mut again = vec![0u8; 1024];
    let m = encode_event(&d, &mut again).unwrap();
    assert_eq!(again[4] & flags::RULE_INDEX as u8, 0, "no index flag for a rule without an index");
    let Some(Ok(Record::Connection(d2))) = decode(&again[..m]).next() else { panic!("decodes") };
    assert_eq!(d2, d);
}

/// A version-3 record too short for its trailer is refused, not read past.
#[test]
fn a_version_3_record_without_room_for_the_trailer_is_refused() {
    let e = Event { path: AppPath::EMPTY, ..sample() };
    let mut buf = vec![0u8; 1024];
    encode_event(&e, &mut buf).unwrap();
    // 72 fixed bytes, nothing after: no room for the 12-byte trailer.
    buf[0..2].copy_from_slice(&72u16.to_le_bytes());
    assert!(matches!(decode(&buf[..72]).next(), Some(Err(DecodeError::BadSize { size: 72, .. }))));
}

#[test]
fn encoder_refuses_short_buffers() {
    let e = sample();
    let mut buf = vec![0u8; e.encoded_len() - 1];
    assert_eq!(encode_event(&e, &mut buf), Err(BufferTooSmall { needed: e.encoded_len() }));
    assert_eq!(encode_dropped(1, &mut [0u8; 15]), Err(BufferTooSmall { needed: 16 }));
}

#[test]
fn long_paths_are_truncated_and_flagged() {
    let long: Vec<u16> = (0..400u16).map(|i| u16::from(b'a') + i % 26).collect();
    let p = AppPath::from_units(&long);
    assert!(p.truncated());
    assert_eq!(p.units(), &long[..MAX_PATH_UNITS]);
    let exact = AppPath::from_units(&long[..MAX_PATH_UNITS]);
    assert!(!exact.truncated());
    // A trailing NUL (as WFP's blobs carry) is not part of the path and does
    // not count towards the limit.
    let mut with_nul = long[..MAX_PATH_UNITS].to_vec();
    with_nul.push(0);
    assert_eq!(AppPath::from_units(&with_nul), exact);
    // From the blob's UTF-16LE bytes, with NUL and an odd trailing byte.
    let mut bytes: Vec<u8> = path("\\device\\x.exe").iter().flat_map(|u| u.to_le_bytes()).collect();
    bytes.extend_from_slice(&[0, 0]);
    assert_eq!(AppPath::from_utf16le_bytes(&bytes).units(), path("\\device\\x.exe").as_slice());
    bytes.push(7);
    assert_eq!(AppPath::from_utf16le_bytes(&bytes).units(), path("\\device\\x.exe").as_slice());
    let e = Event { path: p, user: UserSid::from_bytes(&sid(&[21, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])), ..sample() };
    let mut buf = vec![0u8; 2048];
    let n = encode_event(&e, &mut buf).unwrap();
    assert_eq!(n, MAX_CONNECTION_SIZE, "the longest path with the longest SID");
    let f = u16::from_le_bytes([buf[4], buf[5]]);
    assert_ne!(f & flags::PATH_TRUNCATED, 0);
    match decode(&buf[..n]).next() {
        Some(Ok(Record::Connection(d))) => {
            assert!(d.path.truncated());
            assert_eq!(d.path.units(), &long[..MAX_PATH_UNITS]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_kinds_and_newer_versions_are_skipped_or_read() {
    let mut buf = vec![0u8; 4096];
    // Unknown kind 9, 24 bytes, junk inside.
    buf[0] = 24;
    buf[2] = 9;
    buf[3] = 3;
    buf[8..24].fill(0xFF);
    // A "version 4" connection record: v3 fields plus 8 appended bytes.
    let e = sample();
    let n = encode_event(&e, &mut buf[24..]).unwrap();
    let size = n + 8;
    buf[24..26].copy_from_slice(&(size as u16).to_le_bytes());
    buf[27] = 4;
    let total = 24 + size;
    let recs: Vec<_> = decode(&buf[..total]).collect::<Result<_, _>>().unwrap();
    assert_eq!(recs, vec![Record::Unknown { kind: 9, version: 3, size: 24 }, Record::Connection(e)]);
}

#[test]
fn malformed_records_get_clear_errors() {
    let mut good = vec![0u8; 256];
    let n = encode_event(&sample(), &mut good).unwrap();
    let case = |mutate: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good[..n].to_vec();
        mutate(&mut b);
        decode(&b).find_map(Result::err)
    };
    assert!(matches!(case(&|b| b.truncate(3)), Some(DecodeError::Truncated { .. })));
    assert!(matches!(case(&|b| b.truncate(n - 8)), Some(DecodeError::Truncated { .. })));
    assert!(matches!(case(&|b| b[0] = 4), Some(DecodeError::BadSize { .. })));
    assert!(matches!(case(&|b| b[0] = b[0].wrapping_add(1)), Some(DecodeError::BadSize { .. })));
    assert!(matches!(case(&|b| b[2] = 0), Some(DecodeError::BadKind { .. })));
    assert!(matches!(case(&|b| b[3] = 0), Some(DecodeError::BadVersion { .. })));
    assert!(matches!(case(&|b| b[28] = 2), Some(DecodeError::BadField { field: "direction", .. })));
    assert!(matches!(case(&|b| b[29] = 5), Some(DecodeError::BadField { field: "ip_version", .. })));
    assert!(matches!(case(&|b| b[31] = 0), Some(DecodeError::BadField { field: "decision", .. })));
    assert!(matches!(case(&|b| b[36] = 200), Some(DecodeError::BadField { field: "path_units", .. })));
    // Zero bytes are not records; the iterator stops after the first error.
    let zeros = [0u8; 64];
    let all: Vec<_> = decode(&zeros).collect();
    assert_eq!(all.len(), 1);
    assert!(all[0].is_err());
    assert!(!format!("{}", all[0].unwrap_err()).is_empty());
}

fn arb_event() -> impl Strategy<Value = Event> {
    (
        (any::<u64>(), any::<u16>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<u8>()),
        (any::<[u8; 16]>(), any::<u16>(), any::<[u8; 16]>(), any::<u16>(), any::<Option<u64>>()),
        (proptest::collection::vec(any::<u16>(), 0..400), 0u8..3, any::<Option<u32>>(), any::<bool>()),
        (proptest::option::of(proptest::collection::vec(any::<u32>(), 0..=15)), any::<u64>(), any::<Option<u32>>()),
    )
        .prop_map(|((time, layer_id, inbound, v6, tuple, protocol), (la, lp, ra, rp, pid), (units, d, rule, reauth), (subs, generation, index))| Event {
            time,
            layer_id,
            direction: if inbound { Direction::Inbound } else { Direction::Outbound },
            ip_version: if v6 { IpVersion::V6 } else { IpVersion::V4 },
            tuple,
            protocol,
            local_addr: la,
            local_port: lp,
            remote_addr: ra,
            remote_port: rp,
            process_id: pid,
            path: AppPath::from_units(&units),
            decision: [Decision::Permit, Decision::Block, Decision::WriteRightAbsent][d as usize],
            rule_id: rule,
            reauthorization: reauth,
            user: subs.map_or(UserSid::EMPTY, |subs| UserSid::from_bytes(&sid(&subs))),
            policy_generation: generation,
            // The index is kept only with a rule id (flags RULE and RULE_INDEX together).
            rule_index: index.filter(|_| rule.is_some()),
        })
}

proptest! {
    #[test]
    fn any_event_round_trips(e in arb_event()) {
        let mut buf = vec![0u8; MAX_CONNECTION_SIZE];
        let n = encode_event(&e, &mut buf).unwrap();
        prop_assert_eq!(n, e.encoded_len());
        prop_assert!(n <= MAX_CONNECTION_SIZE);
        prop_assert_eq!(n % 8, 0);
        let recs: Vec<_> = decode(&buf[..n]).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(recs, vec![Record::Connection(e)]);
    }

    /// Any bytes: records or one error, never a panic, never a read past
    /// the input, and decoding always advances.
    #[test]
    fn any_bytes_decode_totally(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut seen = 0usize;
        for r in decode(&bytes) {
            seen += 1;
            prop_assert!(seen <= bytes.len() / 8 + 1);
            if let Ok(Record::Unknown { size, .. }) = r {
                prop_assert!(size >= 8);
            }
        }
    }
}
