//! Tests of the policy store: set, get and clear with their generations,
//! rule names by index, malformed blobs, and stored policies (good and bad).

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use weir_policy::{Action, Addr, Direction, Policy, Rule};

fn blob(p: &Policy) -> Vec<u8> {
    weir_policy::wire::encode(p).unwrap()
}

fn block_port_80() -> Policy {
    let mut r = Rule::any(7, Action::Block);
    r.remote_port = Some(weir_policy::PortCond { ranges: vec![(80, 80)] });
    Policy { rules: vec![r, Rule::any(9, Action::Permit)], ..Policy::permit_all() }
}

fn query(port: u16) -> Query<'static> {
    Query {
        direction: Direction::Outbound,
        remote: Addr::V4(0x0a00_0001),
        local: Addr::V4(0x0a00_0002),
        protocol: 6,
        remote_port: port,
        local_port: 50000,
        app: None,
        loopback: false,
    }
}

/// Rule names by index (ids may repeat), kept for the ETW event.
#[test]
fn rule_names_by_index() {
    let mut p = block_port_80();
    p.rules[0].name = "web out".into();
    let mut dup = Rule::any(7, Action::Permit);
    dup.name = "ünïcode ✓".into();
    p.rules.push(dup);
    let store = PolicyStore::new();
    store.set(&blob(&p)).unwrap();
    store.read(|p| {
        let p = p.unwrap();
        assert_eq!(p.rule_name(0), Some("web out"));
        assert_eq!(p.rule_name(1), Some(""));
        assert_eq!(p.rule_name(2), Some("ünïcode ✓"));
        assert_eq!(p.rule_name(3), None);
        assert_eq!(p.rule_name(u32::MAX), None);
    });
}

#[test]
fn set_get_clear_and_generations() {
    let store = PolicyStore::new();
    assert!(store.read(|p| p.is_none()));
    let b = blob(&block_port_80());
    let out = store.set(&b).unwrap();
    assert_eq!(out, SetOutcome { generation: 1, rule_count: 2, set_count: 0 });
    store.read(|p| {
        let p = p.unwrap();
        assert_eq!(p.blob(), &b[..]);
        assert_eq!(p.decide(&query(80)), Decision::rule(Action::Block, 0, 7, false));
        assert_eq!(p.decide(&query(81)), Decision::rule(Action::Permit, 1, 9, false));
        assert_eq!(p.decide(&query(80)).action, Action::Block);
        assert_eq!(p.rules()[0].hits.load(Ordering::Relaxed), 2);
        // Unnamed rules: empty names; past the last rule: none.
        assert_eq!((p.rule_name(0), p.rule_name(1), p.rule_name(2)), (Some(""), Some(""), None));
        assert_eq!(p.rules()[1].hits.load(Ordering::Relaxed), 1);
    });
    let out = store.set(&[]).unwrap();
    assert_eq!(out, SetOutcome { generation: 2, rule_count: 0, set_count: 0 });
    store.read(|p| {
        let p = p.unwrap();
        assert!(p.blob().is_empty());
        assert_eq!(p.decide(&query(80)), Decision::monitor());
    });
    store.release();
    assert!(store.read(|p| p.is_none()));
}

#[test]
fn malformed_blobs_leave_the_policy_unchanged() {
    let store = PolicyStore::new();
    let good = blob(&block_port_80());
    store.set(&good).unwrap();
    let mut bad_magic = good.clone();
    bad_magic[0] ^= 0xFF;
    let cases: Vec<(Vec<u8>, u32)> = vec![
        (good[..good.len() - 1].to_vec(), 0),
        (bad_magic, 0xE057_0002),
        (vec![0u8; 10], 0xE057_0001),
    ];
    for (bytes, expected) in cases {
        let err = store.set(&bytes).unwrap_err();
        let raw = u32::from_ne_bytes(err.raw().to_ne_bytes());
        assert!(abi_status::decode_code_of(raw).is_some(), "{raw:#x}");
        if expected != 0 {
            assert_eq!(raw, expected);
        }
        store.read(|p| {
            let p = p.unwrap();
            assert_eq!(p.generation(), 1);
            assert_eq!(p.blob(), &good[..]);
            assert_eq!(p.decide(&query(80)).action, Action::Block);
        });
    }
    let too_big = vec![0u8; limits::MAX_BLOB_BYTES + 1];
    assert_eq!(store.set(&too_big).unwrap_err(), status(abi_status::STATUS_WEIR_POLICY_TOO_LARGE));
    store.read(|p| assert_eq!(p.unwrap().generation(), 1));
}

fn stored_file(payload: &[u8]) -> Vec<u8> {
    let mut v = stored::StoredHeader::for_payload(payload).to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

fn raw(s: NtStatus) -> u32 {
    u32::from_ne_bytes(s.raw().to_ne_bytes())
}

#[test]
fn a_stored_policy_is_decided_like_set_policy_and_reported_as_stored() {
    let store = PolicyStore::new();
    let b = blob(&block_port_80());
    let out = store.load_stored(Ok(stored_file(&b))).unwrap();
    assert_eq!(out, SetOutcome { generation: 1, rule_count: 2, set_count: 0 });
    store.read(|p| {
        let p = p.unwrap();
        assert_eq!(p.blob(), &b[..]);
        assert_eq!(p.decide(&query(80)).action, Action::Block);
    });
    let st = store.status();
    assert_eq!((st.source, st.stored_status, st.stored_reads, st.generation, st.rule_count), (SOURCE_STORED, 0, 1, 1, 2));
    assert_eq!(st.blob_sha256, stored::sha256(&b));
    assert_eq!(st.blob_len, b.len() as u64);
    assert!(st.loaded_at != 0 && st.stored_read_at != 0);
    // A SET_POLICY afterwards is "this run"; a clear is "none".
    store.set(&b).unwrap();
    assert_eq!(store.status().source, SOURCE_THIS_RUN);
    store.set(&[]).unwrap();
    let st = store.status();
    assert_eq!((st.source, st.blob_len, st.blob_sha256, st.generation), (SOURCE_NONE, 0, [0; 32], 3));
}

#[test]
fn every_kind_of_bad_stored_policy_is_refused_with_its_status_and_changes_nothing() {
    use wfp_km::file::ReadError;
    let store = PolicyStore::new();
    let good = blob(&block_port_80());
    store.set(&good).unwrap();
    let file = stored_file(&good);
    let mut flipped = file.clone();
    *flipped.last_mut().unwrap() ^= 0x40;
    let mut newer = file.clone();
    newer[8] = 9;
    let garbage_payload = stored_file(&[1, 2, 3, 4]);
    let cases: Vec<(&str, StoredRead, u32)> = vec![
        ("missing", Err(ReadError::Status(NtStatus::OBJECT_NAME_NOT_FOUND)), 0xC000_0034),
        ("unreadable", Err(ReadError::Status(NtStatus::ACCESS_DENIED)), 0xC000_0022),
        ("over the limit", Err(ReadError::TooLarge { size: 1 << 40 }), abi_status::STATUS_WEIR_POLICY_TOO_LARGE),
        ("no memory", Err(ReadError::OutOfMemory { size: 100 }), 0xC000_009A),
        ("truncated", Ok(file[..file.len() - 1].to_vec()), abi_status::STATUS_WEIR_STORED_TRUNCATED),
        ("corrupted", Ok(flipped), abi_status::STATUS_WEIR_STORED_CORRUPTED),
        ("newer", Ok(newer), abi_status::STATUS_WEIR_STORED_NEWER_VERSION),
        ("empty payload", Ok(stored_file(&[])), abi_status::policy_decode_status(1)),
    ];
    for (i, (what, read, expected)) in cases.into_iter().enumerate() {
        let err = store.load_stored(read).unwrap_err();
        assert_eq!(raw(err), expected, "{what}");
        let st = store.status();
        assert_eq!((st.stored_status, st.stored_reads as usize), (expected, i + 1), "{what}");
        assert_eq!((st.source, st.generation), (SOURCE_THIS_RUN, 1), "{what}: the active policy changed");
    }
    // A well-formed file whose payload the policy decoder refuses: the
    // decoder's own status, as SET_POLICY would return.
    let err = store.load_stored(Ok(garbage_payload)).unwrap_err();
    assert!(abi_status::decode_code_of(raw(err)).is_some(), "{err:?}");
    assert_eq!(raw(err), raw(store.set(&[1, 2, 3, 4]).unwrap_err()));
    assert_eq!(store.status().generation, 1);
}

proptest::proptest! {
    /// Random bytes, and a valid blob with one byte changed: never a
    /// panic; a refusal keeps the previous policy.
    #[test]
    fn arbitrary_blobs(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), flip in 0usize..10_000, xor in 1u8..=255) {
        let store = PolicyStore::new();
        let good = blob(&block_port_80());
        store.set(&good).unwrap();
        let mut mutated = good.clone();
        let i = flip % mutated.len();
        mutated[i] ^= xor;
        for candidate in [bytes, mutated] {
            let before = store.read(|p| p.unwrap().generation());
            match store.set(&candidate) {
                Ok(o) => proptest::prop_assert_eq!(o.generation, before + 1),
                Err(_) => proptest::prop_assert_eq!(store.read(|p| p.unwrap().generation()), before),
            }
        }
    }
}
