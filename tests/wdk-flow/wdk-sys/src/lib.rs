//! Test-only stand-in for `wdk-sys` (see Cargo.toml): an empty `no_std` crate.
#![no_std]
