//! decode → compile → lookup, with the reference evaluator as the oracle.
//!
//! Input: 8 bytes of query seed, then the policy blob. For any input:
//! - `decode` returns (never panics); its error code is in 1..=127 and `check` agrees;
//! - an accepted blob is canonical in its version (`encode(decode(b)) == b`, `encode_v1` for a
//!   version-1 blob) and compiles;
//! - for 64 queries aimed at the policy's rules, the compiled lookup equals the reference,
//!   for the normal and the coarse (budget fallback) compilation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_policy::{reference, wire, CompiledPolicy};
use weir_policy_testing as testing;

fuzz_target!(|data: &[u8]| {
    let (seed, blob) = match data.split_first_chunk::<8>() {
        Some((s, rest)) => (u64::from_le_bytes(*s), rest),
        None => (0, data),
    };
    match wire::decode(blob) {
        Err(e) => {
            assert!((1..=127).contains(&e.code()));
            assert!(wire::check(blob).is_err());
        }
        Ok(p) => {
            assert!(wire::check(blob).is_ok());
            if blob.get(8..10) == Some(&wire::VERSION_1.to_le_bytes()[..]) {
                assert_eq!(wire::encode_v1(&p).as_deref(), Ok(blob));
            } else {
                assert_eq!(wire::encode(&p).as_deref(), Ok(blob));
            }
            let c = CompiledPolicy::compile(&p).expect("a decoded policy compiles");
            let coarse = CompiledPolicy::compile_coarse(&p).expect("a decoded policy compiles");
            for q in testing::trace(&p, 64, seed) {
                let q = q.as_query();
                let want = reference::evaluate(&p, &q);
                assert_eq!(c.lookup(&q), want, "{q:?}");
                assert_eq!(coarse.lookup(&q), want, "coarse {q:?}");
            }
        }
    }
});
