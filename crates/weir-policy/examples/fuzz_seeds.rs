//! Writes a seed corpus for the fuzz target: `cargo run -p weir-policy
//! --example fuzz_seeds -- DIR`. Each file is 8 bytes of query seed + a valid policy blob
//! (ClassBench-style policies of several sizes and profiles, with sets, apps and loopback; a
//! quarter with rule names, descriptions and disabled rules, a quarter in format version 1).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use weir_policy_testing::{self as testing, Extras, Profile};
use weir_policy::wire;

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    std::fs::create_dir_all(&dir).unwrap();
    let mut n = 0;
    for (pi, profile) in [Profile::Acl, Profile::Fw, Profile::Ipc]
        .into_iter()
        .enumerate()
    {
        for rules in [0usize, 1, 2, 3, 5, 8, 13, 40] {
            for seed in 0..4u64 {
                let extras = Extras {
                    set_percent: 20,
                    set_entries: (seed as usize) * 5,
                    app_percent: 20,
                    loopback_percent: 20,
                    v6_percent: 30,
                };
                let mut p = testing::classbench(rules, profile, extras, seed * 31 + pi as u64);
                if seed == 1 {
                    for (i, r) in p.rules.iter_mut().enumerate() {
                        r.name = format!("rule {i}");
                        r.description = if i % 2 == 0 { "seeded".into() } else { String::new() };
                        r.enabled = i % 3 != 2;
                    }
                }
                let mut bytes = seed.to_le_bytes().to_vec();
                if seed == 2 {
                    bytes.extend(wire::encode_v1(&p).unwrap());
                } else {
                    bytes.extend(wire::encode(&p).unwrap());
                }
                std::fs::write(format!("{dir}/seed-{n:04}"), bytes).unwrap();
                n += 1;
            }
        }
    }
    println!("wrote {n} seeds to {dir}");
}
