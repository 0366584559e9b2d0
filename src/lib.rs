//! Weir: a Windows Filtering Platform callout driver.
//!
//! Module map:
//! - [`driver`]: what DriverEntry sets up and DriverUnload tears down — a
//!   short list of steps whose undo order follows from the types.
//! - [`classify`]: the decision taken for each connection, and its counters.
//! - [`ioctl`]: the control device's request handling (formats in `weir-abi`).
//! - [`policy`]: the active policy, its replacement and its hit counters.
//! - [`events`]: connection events (ring, parked reads, READ_EVENTS).
//! - [`etw`]: the `Weir` ETW provider (TraceLogging) and what is written
//!   when.
//! - [`ids`]: the GUIDs, names and numbers Weir registers under.
//! - `kernel` (Windows targets only): the kernel boundary — DriverEntry,
//!   DriverUnload, dispatch routines and WFP callbacks converting raw pointers
//!   into `wfp-km`'s safe views. It is the driver's only `unsafe` code.
//! - `platform` (Windows targets only): the panic handler and the allocator,
//!   the same in the Linux flow and the WDK flow, and the WDK flow's link of
//!   wdk-sys.

#![cfg_attr(all(target_os = "windows", not(test)), no_std)]
#![deny(unsafe_code)]

pub mod classify;
pub mod driver;
pub mod etw;
pub mod events;
pub mod failsafe;
pub mod ids;
pub mod ioctl;
pub mod policy;

#[cfg(any(all(target_os = "windows", not(test)), clippy))]
#[allow(unsafe_code)]
mod kernel;

#[cfg(all(target_os = "windows", not(test)))]
mod platform;
