//! The control device's requests. Formats, codes and statuses are defined
//! in `weir-abi` (shared with user-mode tools); this module maps requests to
//! the driver's state.
//!
//! | IOCTL | input | output |
//! |---|---|---|
//! | `IOCTL_WEIR_GET_STATS` | none | stats reply v2 (header, then per-rule hits) |
//! | `IOCTL_WEIR_SET_POLICY` | policy blob (empty = clear) | `SetPolicyReply` (24 bytes) |
//! | `IOCTL_WEIR_GET_POLICY` | none | `PolicyReplyHeader` + the active blob |
//! | `IOCTL_WEIR_GET_POLICY_STATUS` | none | `PolicyStatus` (112 bytes; 96 to a 96..111-byte buffer) |
//! | `IOCTL_WEIR_RELOAD_POLICY` | none | `SetPolicyReply` (24 bytes) |
//!
//! After a successful SET_POLICY or RELOAD_POLICY the driver replaces its
//! filters so that WFP reauthorizes existing connections
//! (`crate::driver::policy_changed`).
//!
//! Every malformed request gets an error status and writes nothing; a
//! refused policy leaves the active one unchanged. All requests arrive at
//! PASSIVE_LEVEL (IRP_MJ_DEVICE_CONTROL dispatch), where SET_POLICY may
//! allocate and wait for the swap's grace period. Every request runs inside
//! a critical region the dispatch routine enters (`src/kernel.rs`), so the
//! policy read sections (GET_STATS, GET_POLICY's copy) and the setter lock
//! cannot be stretched by a suspended thread (see `policy`).

use crate::classify::{Counters, LayerSnapshot};
use crate::policy::PolicyStore;
use weir_abi::policy::{write_policy_reply, PolicyWritten, SetPolicyReply, SET_POLICY_REPLY_SIZE};
use weir_abi::stats::{write_reply, LayerStats, RuleHits, StatsHeader, Written};
use weir_abi::policy_status::POLICY_STATUS_BASE_SIZE;
use weir_abi::{
    status as st, IOCTL_WEIR_GET_POLICY, IOCTL_WEIR_GET_POLICY_STATUS, IOCTL_WEIR_GET_STATS, IOCTL_WEIR_RELOAD_POLICY,
    IOCTL_WEIR_SET_POLICY,
};
use wfp_km::irp::DeviceControl;
use wfp_km::NtStatus;

pub use weir_abi::IOCTL_WEIR_GET_STATS as GET_STATS;

/// What the requests read.
pub struct Context<'a> {
    /// Driver version `[major, minor, patch, 0]`.
    pub version: [u16; 4],
    pub counters: &'a Counters,
    pub store: &'a PolicyStore,
    /// `weir_abi::stats::FILTERING_*` flags.
    pub filtering: u32,
    /// Events dropped because the event ring was full.
    pub event_drops: u64,
}

fn status(raw: u32) -> NtStatus {
    NtStatus(i32::from_ne_bytes(raw.to_ne_bytes()))
}

fn layer_stats(s: LayerSnapshot) -> LayerStats {
    LayerStats {
        new_connections: s.new_connections,
        reauthorizations: s.reauthorizations,
        permitted: s.permitted,
        blocked: s.blocked,
        write_right_absent: s.write_right_absent,
    }
}

/// Handles an `IRP_MJ_DEVICE_CONTROL` request. `buffer` is the
/// METHOD_BUFFERED system buffer viewed as max(input, output) bytes (input
/// first, overwritten by the output), or `None` if there is none. Returns
/// the completion status and the number of bytes written.
pub fn device_control(request: DeviceControl, buffer: Option<&mut [u8]>, ctx: &Context<'_>) -> (NtStatus, usize) {
    let (Ok(input_len), Ok(output_len)) = (usize::try_from(request.input_len), usize::try_from(request.output_len)) else {
        return (NtStatus::INVALID_PARAMETER, 0);
    };
    match request.code {
        IOCTL_WEIR_GET_STATS | IOCTL_WEIR_GET_POLICY | IOCTL_WEIR_GET_POLICY_STATUS | IOCTL_WEIR_RELOAD_POLICY
            if input_len != 0 =>
        {
            (NtStatus::INVALID_PARAMETER, 0)
        }
        IOCTL_WEIR_GET_POLICY_STATUS => match buffer.and_then(|b| b.get_mut(..output_len)) {
            Some(out) => match crate::failsafe::with_status(ctx.store.status()).encode_into(out) {
                Some(n) => (NtStatus::SUCCESS, n),
                None => (NtStatus::BUFFER_TOO_SMALL, 0),
            },
            None if output_len < POLICY_STATUS_BASE_SIZE => (NtStatus::BUFFER_TOO_SMALL, 0),
            None => (NtStatus::INVALID_PARAMETER, 0),
        },
        IOCTL_WEIR_RELOAD_POLICY => {
            if output_len < SET_POLICY_REPLY_SIZE {
                return (NtStatus::BUFFER_TOO_SMALL, 0);
            }
            let Some(out) = buffer.and_then(|b| b.get_mut(..output_len)) else {
                return (NtStatus::INVALID_PARAMETER, 0);
            };
            match crate::driver::reload_stored(ctx.store) {
                Ok(o) => match SetPolicyReply::new(o.generation, o.rule_count, o.set_count).encode_into(out) {
                    Some(n) => (NtStatus::SUCCESS, n),
                    None => (NtStatus::BUFFER_TOO_SMALL, 0),
                },
                Err(e) => (e, 0),
            }
        }
        IOCTL_WEIR_GET_STATS => match buffer.and_then(|b| b.get_mut(..output_len)) {
            Some(out) => get_stats(out, ctx),
            None if output_len == 0 => (NtStatus::BUFFER_TOO_SMALL, 0),
            None => (NtStatus::INVALID_PARAMETER, 0),
        },
        IOCTL_WEIR_GET_POLICY => match buffer.and_then(|b| b.get_mut(..output_len)) {
            Some(out) => get_policy(out, ctx.store),
            None if output_len == 0 => (NtStatus::BUFFER_TOO_SMALL, 0),
            None => (NtStatus::INVALID_PARAMETER, 0),
        },
        IOCTL_WEIR_SET_POLICY => {
            if output_len < SET_POLICY_REPLY_SIZE {
                return (NtStatus::BUFFER_TOO_SMALL, 0);
            }
            match buffer {
                Some(buf) if buf.len() >= input_len && buf.len() >= output_len => set_policy(buf, input_len, output_len, ctx.store),
                _ => (NtStatus::INVALID_PARAMETER, 0),
            }
        }
        _ => (NtStatus::INVALID_DEVICE_REQUEST, 0),
    }
}

fn get_stats(out: &mut [u8], ctx: &Context<'_>) -> (NtStatus, usize) {
    let header = StatsHeader {
        version: ctx.version,
        filtering: ctx.filtering,
        event_drops: ctx.event_drops,
        layers: ctx.counters.snapshot().map(layer_stats),
        ..StatsHeader::default()
    };
    // Generation and rule hits from the same policy.
    let written = ctx.store.read(|p| {
        let mut header = header;
        header.policy_generation = p.map_or(0, |p| p.generation());
        let rules = p.map_or(&[][..], |p| p.rules());
        let hits = rules.iter().enumerate().map(|(index, r)| RuleHits {
            rule_id: r.id,
            // Rule counts are bounded by limits::MAX_RULES (< 2^32).
            rule_index: u32::try_from(index).unwrap_or(u32::MAX),
            hits: r.hits.load(core::sync::atomic::Ordering::Relaxed),
        });
        write_reply(out, header, hits)
    });
    match written {
        Written::Complete(n) => (NtStatus::SUCCESS, n),
        Written::HeaderOnly(n) => (status(st::STATUS_BUFFER_OVERFLOW), n),
        Written::V1Caller => (status(st::STATUS_WEIR_STATS_ABI_V1), 0),
        Written::TooSmall => (NtStatus::BUFFER_TOO_SMALL, 0),
        Written::Unrepresentable => (NtStatus::INVALID_PARAMETER, 0),
    }
}

fn get_policy(out: &mut [u8], store: &PolicyStore) -> (NtStatus, usize) {
    let written = store.read(|p| match p {
        Some(p) => write_policy_reply(out, p.generation(), p.blob()),
        None => write_policy_reply(out, 0, &[]),
    });
    match written {
        PolicyWritten::Complete(n) => (NtStatus::SUCCESS, n),
        PolicyWritten::HeaderOnly(n) => (status(st::STATUS_BUFFER_OVERFLOW), n),
        PolicyWritten::TooSmall => (NtStatus::BUFFER_TOO_SMALL, 0),
        PolicyWritten::Unrepresentable => (NtStatus::INVALID_PARAMETER, 0),
    }
}

fn set_policy(buf: &mut [u8], input_len: usize, output_len: usize, store: &PolicyStore) -> (NtStatus, usize) {
    let Some(input) = buf.get(..input_len) else { return (NtStatus::INVALID_PARAMETER, 0) };
    // `set` copies the blob before the reply overwrites the shared buffer.
    let outcome = match store.set(input) {
        Ok(o) => o,
        Err(e) => return (e, 0),
    };
    crate::driver::policy_changed();
    let reply = SetPolicyReply::new(outcome.generation, outcome.rule_count, outcome.set_count);
    match buf.get_mut(..output_len).and_then(|out| reply.encode_into(out)) {
        Some(n) => (NtStatus::SUCCESS, n),
        // Not reached: output_len >= the reply size was checked first.
        None => (NtStatus::BUFFER_TOO_SMALL, 0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering;
    use proptest::prelude::*;
    use weir_abi::policy::decode_policy_reply;
    use weir_abi::stats::{decode_reply, StatsError, FILTERING_ACTIVE, STATS_HEADER_SIZE};
    use weir_policy::{Action, Policy, Rule};
    use wfp_km::ale::AleLayer;

    fn req(code: u32, input_len: u32, output_len: u32) -> DeviceControl {
        DeviceControl { code, input_len, output_len }
    }

    fn ctx<'a>(counters: &'a Counters, store: &'a PolicyStore) -> Context<'a> {
        Context { version: [1, 2, 3, 0], counters, store, filtering: FILTERING_ACTIVE, event_drops: 5 }
    }

    fn call(code: u32, input: &[u8], output_len: usize, c: &Context<'_>) -> (NtStatus, Vec<u8>) {
        let mut buf = vec![0xEEu8; input.len().max(output_len)];
        buf[..input.len()].copy_from_slice(input);
        let r = req(code, input.len() as u32, output_len as u32);
        let (s, n) = device_control(r, if buf.is_empty() { None } else { Some(&mut buf[..]) }, c);
        buf.truncate(n);
        (s, buf)
    }

    fn two_rules() -> Vec<u8> {
        let p = Policy { rules: vec![Rule::any(11, Action::Block), Rule::any(12, Action::Permit)], ..Policy::permit_all() };
        weir_policy::wire::encode(&p).unwrap()
    }

    #[test]
    fn ioctl_codes_are_kept() {
        assert_eq!(IOCTL_WEIR_GET_STATS, 0x8057_6004);
        assert_eq!(GET_STATS, IOCTL_WEIR_GET_STATS);
    }

    #[test]
    fn get_stats_v2_with_counters_generation_and_rule_hits() {
        let counters = Counters::new();
        let store = PolicyStore::new();
        let l = counters.layer(AleLayer::RecvAcceptV6).unwrap();
        l.new_connections.store(5, Ordering::Relaxed);
        l.reauthorizations.store(2, Ordering::Relaxed);
        l.blocked.store(3, Ordering::Relaxed);
        let c = ctx(&counters, &store);
        let (s, b) = call(IOCTL_WEIR_GET_STATS, &[], 4096, &c);
        assert_eq!(s, NtStatus::SUCCESS);
        let r = decode_reply(&b).unwrap();
        assert_eq!(r.header.version, [1, 2, 3, 0]);
        assert_eq!((r.header.policy_generation, r.header.rule_count, r.header.event_drops, r.header.filtering), (0, 0, 5, FILTERING_ACTIVE));
        assert_eq!(r.header.layers[3], LayerStats { new_connections: 5, reauthorizations: 2, blocked: 3, ..Default::default() });
        store.set(&two_rules()).unwrap();
        store.read(|p| p.unwrap().rules()[1].hits.store(9, Ordering::Relaxed));
        let (s, b) = call(IOCTL_WEIR_GET_STATS, &[], 4096, &c);
        assert_eq!(s, NtStatus::SUCCESS);
        let r = decode_reply(&b).unwrap();
        assert_eq!(r.header.policy_generation, 1);
        let hits: Vec<_> = r.rules().map(|h| (h.rule_id, h.rule_index, h.hits)).collect();
        assert_eq!(hits, vec![(11, 0, 0), (12, 1, 9)]);
        // Header only when the rules do not fit; the size says what is needed.
        let (s, b) = call(IOCTL_WEIR_GET_STATS, &[], STATS_HEADER_SIZE, &c);
        assert_eq!(s, status(st::STATUS_BUFFER_OVERFLOW));
        assert!(matches!(decode_reply(&b), Err(StatsError::Truncated { needed: 240, policy_generation: 1, rule_count: 2 })));
    }

    #[test]
    fn a_v1_tool_is_refused_clearly() {
        let counters = Counters::new();
        let store = PolicyStore::new();
        let (s, b) = call(IOCTL_WEIR_GET_STATS, &[], 112, &ctx(&counters, &store));
        assert_eq!(s, status(st::STATUS_WEIR_STATS_ABI_V1));
        assert!(b.is_empty());
    }

    #[test]
    fn set_get_and_clear_through_the_ioctls() {
        let counters = Counters::new();
        let store = PolicyStore::new();
        let c = ctx(&counters, &store);
        let blob = two_rules();
        let (s, b) = call(IOCTL_WEIR_SET_POLICY, &blob, SET_POLICY_REPLY_SIZE, &c);
        assert_eq!(s, NtStatus::SUCCESS);
        assert_eq!(SetPolicyReply::decode(&b), Some(SetPolicyReply::new(1, 2, 0)));
        let (s, b) = call(IOCTL_WEIR_GET_POLICY, &[], 4096, &c);
        assert_eq!(s, NtStatus::SUCCESS);
        let (h, got) = decode_policy_reply(&b).unwrap();
        assert_eq!((h.generation, got), (1, &blob[..]));
        // Short: header only, with the size needed.
        let (s, b) = call(IOCTL_WEIR_GET_POLICY, &[], 30, &c);
        assert_eq!((s, b.len()), (status(st::STATUS_BUFFER_OVERFLOW), 24));
        // A malformed blob: Weir's status with the decoder's code, nothing changes.
        let (s, b) = call(IOCTL_WEIR_SET_POLICY, &blob[..blob.len() - 3], 24, &c);
        assert!(st::decode_code_of(s.raw() as u32).is_some(), "{s:?}");
        assert!(b.is_empty());
        let (_, b) = call(IOCTL_WEIR_GET_POLICY, &[], 4096, &c);
        assert_eq!(decode_policy_reply(&b).unwrap().1, &blob[..]);
        // Output too small for the reply: refused before anything changes.
        let (s, _) = call(IOCTL_WEIR_SET_POLICY, &[], 23, &c);
        assert_eq!(s, NtStatus::BUFFER_TOO_SMALL);
        assert_eq!(store.read(|p| p.unwrap().generation()), 1);
        // Clear.
        let (s, b) = call(IOCTL_WEIR_SET_POLICY, &[], 24, &c);
        assert_eq!(s, NtStatus::SUCCESS);
        assert_eq!(SetPolicyReply::decode(&b), Some(SetPolicyReply::new(2, 0, 0)));
        let (_, b) = call(IOCTL_WEIR_GET_POLICY, &[], 4096, &c);
        let (h, got) = decode_policy_reply(&b).unwrap();
        assert_eq!((h.generation, got.len()), (2, 0));
    }

    #[test]
    fn bad_requests_get_errors_and_write_nothing() {
        let counters = Counters::new();
        let store = PolicyStore::new();
        let c = ctx(&counters, &store);
        let cases = [
            (req(0x8057_6008, 0, 400), NtStatus::INVALID_DEVICE_REQUEST),
            (req(0x0022_0000, 0, 400), NtStatus::INVALID_DEVICE_REQUEST),
            (req(IOCTL_WEIR_GET_STATS, 4, 400), NtStatus::INVALID_PARAMETER),
            (req(IOCTL_WEIR_GET_POLICY, 4, 400), NtStatus::INVALID_PARAMETER),
            (req(IOCTL_WEIR_GET_STATS, 0, 0), NtStatus::BUFFER_TOO_SMALL),
            (req(IOCTL_WEIR_GET_STATS, 0, 207), NtStatus::BUFFER_TOO_SMALL),
            (req(IOCTL_WEIR_GET_POLICY, 0, 23), NtStatus::BUFFER_TOO_SMALL),
        ];
        for (request, expected) in cases {
            let mut buf = [0xEEu8; 400];
            let len = (request.output_len.max(request.input_len) as usize).min(buf.len());
            let (status, n) = device_control(request, Some(&mut buf[..len]), &c);
            assert_eq!((status, n), (expected, 0), "{request:?}");
            assert!(buf.iter().all(|b| *b == 0xEE), "{request:?} wrote to the buffer");
        }
        let (status, n) = device_control(req(IOCTL_WEIR_GET_STATS, 0, 400), None, &c);
        assert_eq!((status, n), (NtStatus::INVALID_PARAMETER, 0));
        let (status, n) = device_control(req(IOCTL_WEIR_SET_POLICY, 100, 24), None, &c);
        assert_eq!((status, n), (NtStatus::INVALID_PARAMETER, 0));
    }

    #[test]
    fn policy_status_and_reload_through_the_ioctls() {
        use weir_abi::policy_status::{PolicyStatus, SOURCE_NONE, SOURCE_THIS_RUN};
        let counters = Counters::new();
        let store = PolicyStore::new();
        let c = ctx(&counters, &store);
        let (s, b) = call(IOCTL_WEIR_GET_POLICY_STATUS, &[], 96, &c);
        assert_eq!(s, NtStatus::SUCCESS);
        let ps = PolicyStatus::decode(&b).unwrap();
        assert_eq!((ps.source, ps.generation, ps.stored_reads), (SOURCE_NONE, 0, 0));
        let blob = two_rules();
        call(IOCTL_WEIR_SET_POLICY, &blob, 24, &c);
        let (_, b) = call(IOCTL_WEIR_GET_POLICY_STATUS, &[], 200, &c);
        let ps = PolicyStatus::decode(&b).unwrap();
        assert_eq!((ps.source, ps.generation, ps.rule_count, ps.blob_len), (SOURCE_THIS_RUN, 1, 2, blob.len() as u64));
        assert_eq!(ps.blob_sha256, weir_abi::stored::sha256(&blob));
        // Too small: nothing written.
        let (s, b) = call(IOCTL_WEIR_GET_POLICY_STATUS, &[], 95, &c);
        assert_eq!((s, b.len()), (NtStatus::BUFFER_TOO_SMALL, 0));
        // Host builds have no stored file: a reload is refused with
        // "not found", recorded, and the active policy stays.
        let (s, b) = call(IOCTL_WEIR_RELOAD_POLICY, &[], 24, &c);
        assert_eq!((s, b.len()), (NtStatus::OBJECT_NAME_NOT_FOUND, 0));
        let (_, b) = call(IOCTL_WEIR_GET_POLICY_STATUS, &[], 96, &c);
        let ps = PolicyStatus::decode(&b).unwrap();
        assert_eq!((ps.source, ps.generation, ps.stored_reads, ps.stored_status), (SOURCE_THIS_RUN, 1, 1, 0xC000_0034));
        let (s, _) = call(IOCTL_WEIR_RELOAD_POLICY, &[], 23, &c);
        assert_eq!(s, NtStatus::BUFFER_TOO_SMALL);
        let (s, _) = call(IOCTL_WEIR_RELOAD_POLICY, &[1], 24, &c);
        assert_eq!(s, NtStatus::INVALID_PARAMETER);
    }

    proptest! {
        #[test]
        fn any_request_is_answered_without_panic(code in prop_oneof![Just(IOCTL_WEIR_GET_STATS), Just(IOCTL_WEIR_SET_POLICY), Just(IOCTL_WEIR_GET_POLICY), Just(IOCTL_WEIR_GET_POLICY_STATUS), Just(IOCTL_WEIR_RELOAD_POLICY), any::<u32>()],
                                                 input in proptest::collection::vec(any::<u8>(), 0..64), output_len in 0u32..400, has_buffer in any::<bool>()) {
            let counters = Counters::new();
            let store = PolicyStore::new();
            let c = ctx(&counters, &store);
            let mut buf = vec![0u8; input.len().max(output_len as usize)];
            buf[..input.len()].copy_from_slice(&input);
            let r = req(code, input.len() as u32, output_len);
            let (status, n) = device_control(r, if has_buffer { Some(&mut buf[..]) } else { None }, &c);
            prop_assert!(n <= output_len as usize);
            if !status.is_success() { prop_assert_eq!(n, 0); }
            if code == IOCTL_WEIR_SET_POLICY && !input.is_empty() {
                // Random bytes are never a valid policy.
                prop_assert!(!status.is_success());
                prop_assert!(store.read(|p| p.is_none()));
            }
        }
    }
}
