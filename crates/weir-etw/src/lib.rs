//! Weir's ETW events: the TraceLogging encoding and the `Weir` provider's
//! event definitions, in `no_std` code that the driver runs and the host
//! tests.
//!
//! - [`encode`]: [`Builder`](encode::Builder), one event's TraceLogging
//!   metadata and payload in fixed buffers (no allocation, any IRQL).
//! - [`provider`]: the provider name `Weir`, its name-derived id and its
//!   metadata block.
//! - [`weir`]: the keywords, levels and events Weir writes (connections,
//!   policy changes, filtering state, driver start/stop, errors, dropped
//!   events), each built from plain values.
//!
//! The bytes are checked against Microsoft's `tracelogging_dynamic`
//! `EventBuilder` (`tests/differential.rs`), not only against our own
//! reading of the format. The driver side (EtwRegister, the enable
//! callback, EtwWriteTransfer) is `wfp_km::etw`.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod encode;
pub mod provider;
pub mod weir;

pub use encode::{Builder, Descriptor};
