//! The compiled lookup against the reference evaluator: rule index, id, action and log must
//! agree for every query. Case counts add up to more than 10,000 proptest cases per run (each
//! case checks many queries).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use weir_policy_testing::{self as testing, Extras, Profile};
use weir_policy::{reference, CompiledPolicy, Policy};

fn check_all(p: &Policy, queries: &[testing::OwnedQuery]) -> Result<(), TestCaseError> {
    let c = CompiledPolicy::compile(p).map_err(|e| TestCaseError::fail(format!("compile: {e}")))?;
    let coarse = CompiledPolicy::compile_coarse(p)
        .map_err(|e| TestCaseError::fail(format!("compile: {e}")))?;
    for q in queries {
        let q = q.as_query();
        let want = reference::evaluate(p, &q);
        prop_assert_eq!(c.lookup(&q), want, "query {:?}", q);
        prop_assert_eq!(coarse.lookup(&q), want, "coarse, query {:?}", q);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
    #[test]
    fn random_policies(p in testing::arb_policy(24), seed in any::<u64>()) {
        let qs = testing::trace(&p, 48, seed);
        check_all(&p, &qs)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
    #[test]
    fn classbench_style(n in 1usize..200, prof in 0u8..3, seed in any::<u64>(), sets in any::<bool>(), v6 in 0u64..50) {
        let profile = [Profile::Acl, Profile::Fw, Profile::Ipc][prof as usize];
        let extras = Extras {
            set_percent: if sets { 10 } else { 0 },
            set_entries: if sets { 1 + (seed % 300) as usize } else { 0 },
            app_percent: 10,
            loopback_percent: 10,
            v6_percent: v6,
        };
        let p = testing::classbench(n, profile, extras, seed);
        let qs = testing::trace(&p, 64, seed ^ 0x5555);
        check_all(&p, &qs)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
    #[test]
    fn single_query_cases(p in testing::arb_policy(12), qseed in any::<u64>(), rule in any::<usize>()) {
        let mut rng = testing::Rng::new(qseed);
        let r = if p.rules.is_empty() { usize::MAX } else { rule % (p.rules.len() + 1) };
        let q = testing::query_near(&mut rng, &p, if r == p.rules.len() { usize::MAX } else { r });
        check_all(&p, &[q])?;
    }
}

#[test]
fn larger_classbench_sets_agree() {
    for (i, profile) in [Profile::Acl, Profile::Fw, Profile::Ipc]
        .into_iter()
        .enumerate()
    {
        let extras = Extras {
            set_percent: 5,
            set_entries: 5000,
            app_percent: 5,
            loopback_percent: 5,
            v6_percent: 20,
        };
        let p = testing::classbench(3000, profile, extras, 77 + i as u64);
        let qs = testing::trace(&p, 1000, 99);
        let c = CompiledPolicy::compile(&p).unwrap();
        let mut matched = 0;
        for q in &qs {
            let q = q.as_query();
            let want = reference::evaluate(&p, &q);
            assert_eq!(c.lookup(&q), want, "{profile:?} {q:?}");
            matched += usize::from(want.rule_index.is_some());
        }
        // The trace must exercise rules, not just defaults.
        assert!(
            matched > qs.len() / 2,
            "{profile:?}: only {matched} of {} queries matched a rule",
            qs.len()
        );
    }
}
