//! The ABI of Weir's control device (`\\.\Weir`), shared by the driver and
//! user-mode tools: IOCTL codes, Weir's own NTSTATUS codes, and the reply
//! layouts with their encoders (used by the driver) and decoders (used by
//! clients and tests).
//!
//! Every multi-byte field is little-endian. Every reply starts with its own
//! total size (`u32`) and an ABI version (`u32`), so a tool can tell an older
//! or newer driver apart before reading anything else. The structs are
//! `#[repr(C)]` to document the layout; encoding and decoding go field by
//! field through [`offset_of!`](core::mem::offset_of), never by reinterpreting
//! memory, so the code is the same on every host.
//!
//! `no_std`, no allocation. One dependency: `hmac-sha256` (portable code, no
//! CPU-feature detection, so the same code runs in the kernel; no cargo
//! feature of it can bring in `std`), for the stored policy's checksum and the
//! active blob's hash. Not `sha2`: its default `std` feature, which the
//! signing tools' crates turn on, would reach the driver through feature
//! unification whenever one cargo invocation builds both (the WDK flows'
//! root build does; `cargo xtask wdk-compile` caught it).

#![no_std]

pub mod ioctl;
pub mod policy;
pub mod policy_status;
pub mod stats;
pub mod status;
pub mod stored;
mod bytes;

pub use ioctl::*;
pub use status::*;
