//! Safe abstractions over the kernel-mode Windows Filtering Platform API.
//!
//! The design follows Rust-for-Linux's `kernel` crate: each type owns exactly
//! one kernel resource, documents the invariant that makes its methods safe,
//! and releases the resource in `Drop`. Teardown order therefore follows from
//! the order in which a driver declares its fields.
//!
//! | type                     | acquires                    | releases on drop                  |
//! |--------------------------|-----------------------------|-----------------------------------|
//! | [`device::ControlDevice`]| `IoCreateDevice`            | `IoDeleteDevice`                  |
//! | [`device::SymbolicLink`] | `IoCreateSymbolicLink`      | `IoDeleteSymbolicLink`            |
//! | [`callout::Registration`]| `FwpsCalloutRegister3`      | `unregister()`: `FwpsCalloutUnregisterById0` (retried; gives the registration back if it never succeeds) |
//! | [`bfe::Subscription`]    | `FwpmBfeStateSubscribeChanges0` | `unsubscribe()`: `FwpmBfeStateUnsubscribeChanges0` (retried, likewise) |
//! | [`engine::Engine`]       | `FwpmEngineOpen0`           | `FwpmEngineClose0`                |
//! | [`engine::Transaction`]  | `FwpmTransactionBegin0`     | `FwpmTransactionAbort0` unless committed |
//! | [`file::File`]           | `ZwCreateFile`              | `ZwClose`                         |
//! | [`registry::Key`]        | `ZwOpenKey`                 | `ZwClose`                         |
//! | [`pool::PoolBox`]        | `ExAllocatePool2`           | `ExFreePoolWithTag`               |
//! | [`dpc::Dpc`]             | `KeInitializeDpc`           | `KeRemoveQueueDpc` + `KeFlushQueuedDpcs` |
//! | [`etw::Provider`]        | `EtwRegister`               | `EtwUnregister`                   |
//! | [`sync::SpinLockGuard`]  | `KeAcquireSpinLockRaiseToDpc` | `KeReleaseSpinLock`             |
//! | [`sync::critical::CriticalRegion`] | `KeEnterCriticalRegion` (unless `KeAreApcsDisabled`) | `KeLeaveCriticalRegion` |
//! | [`sync::passive::PassiveGuard`] | critical region + `KeWaitForSingleObject` | `KeSetEvent`, then leaves the region |
//!
//! Pended IRPs live in [`csq::IrpQueue`], a cancel-safe queue (the
//! `IoSetCancelRoutine` pattern under a spin lock) whose every path does its
//! bookkeeping before it completes an IRP, and whose cancel routine finds
//! the queue through the IRP.
//!
//! Classify inputs are read through [`classify`]'s accessors, which check the
//! value count and the value type before every read.
//!
//! This crate and `wfp-km-sys` hold all of Weir's `unsafe` code except one
//! kernel-boundary module in the driver. Every `unsafe` block carries a
//! `// SAFETY:` comment.

#![cfg_attr(not(any(test, loom)), no_std)]

pub mod ale;
pub mod bfe;
pub mod bugcheck;
pub mod callout;
pub mod classify;
pub mod csq;
pub mod device;
pub mod dpc;
pub mod engine;
pub mod etw;
pub mod failsafe;
pub mod file;
pub mod irp;
pub mod objects;
pub mod pool;
pub mod rcu;
pub mod registry;
pub mod security;
pub mod status;
pub mod strings;
pub mod sync;
pub mod trace;

pub use status::{NtStatus, Result};
pub use wfp_km_sys as sys;
pub use wfp_km_sys::GUID;
