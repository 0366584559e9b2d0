//! The user-mode decoders of the control device's replies (`weir-abi`:
//! GET_STATS, GET_POLICY, SET_POLICY) on any bytes: never a panic; every
//! reply they accept is consistent (sizes, lengths, versions) and survives
//! a round trip through the driver-side writers, so a decoder cannot accept
//! something the writers could not have produced differently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_abi::policy::{
    decode_policy_reply, write_policy_reply, PolicyWritten, SetPolicyReply, POLICY_ABI_VERSION, POLICY_REPLY_HEADER_SIZE,
    SET_POLICY_REPLY_SIZE,
};
use weir_abi::stats::{decode_reply, reply_size, write_reply, StatsError, Written, RULE_ENTRY_SIZE, STATS_HEADER_SIZE};

fuzz_target!(|data: &[u8]| {
    match decode_reply(data) {
        Ok(reply) => {
            let h = reply.header;
            let size = reply_size(h.rule_count as usize).expect("accepted size fits u32") as usize;
            assert!(size <= data.len() && size >= STATS_HEADER_SIZE);
            assert_eq!(reply.rules().len(), h.rule_count as usize);
            let mut out = vec![0u8; size];
            assert_eq!(write_reply(&mut out, h, reply.rules()), Written::Complete(size));
            let again = decode_reply(&out).expect("re-encoded reply decodes");
            assert_eq!(again.header, h);
            assert!(again.rules().eq(reply.rules()));
        }
        Err(StatsError::Truncated { needed, rule_count, .. }) => {
            assert!((needed as usize) > data.len());
            assert_eq!(reply_size(rule_count as usize), Some(needed));
            assert!(needed as usize >= STATS_HEADER_SIZE && (needed as usize - STATS_HEADER_SIZE) % RULE_ENTRY_SIZE == 0);
        }
        Err(_) => {}
    }

    if let Ok((header, blob)) = decode_policy_reply(data) {
        assert_eq!(header.abi_version, POLICY_ABI_VERSION);
        assert_eq!(blob.len(), header.blob_len as usize);
        assert_eq!(header.size as usize, POLICY_REPLY_HEADER_SIZE + blob.len());
        let mut out = vec![0u8; header.size as usize];
        assert_eq!(write_policy_reply(&mut out, header.generation, blob), PolicyWritten::Complete(out.len()));
        let (h2, b2) = decode_policy_reply(&out).expect("re-encoded reply decodes");
        assert_eq!((h2.generation, h2.blob_len, b2), (header.generation, header.blob_len, blob));
    }

    if let Some(reply) = SetPolicyReply::decode(data) {
        assert!(data.len() >= SET_POLICY_REPLY_SIZE);
        let mut out = [0u8; SET_POLICY_REPLY_SIZE];
        assert_eq!(reply.encode_into(&mut out), Some(SET_POLICY_REPLY_SIZE));
        assert_eq!(SetPolicyReply::decode(&out), Some(reply));
        assert_eq!(out[..], data[..SET_POLICY_REPLY_SIZE]);
    }
});
