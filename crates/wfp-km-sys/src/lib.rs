//! Raw bindings to the kernel-mode Windows Filtering Platform API.
//!
//! `windows-sys` already describes the management types (`FWPM_*`, `FWP_VALUE0`,
//! layer GUIDs) and the WDM types (`DRIVER_OBJECT`, `IRP`, ...), and we reuse
//! them. What it lacks or gets wrong for kernel mode is declared here:
//!
//! * every `Fwpm*` function: `windows-sys` binds them to the user-mode
//!   `fwpuclnt.dll`; the kernel exports live in `fwpkclnt.sys`;
//! * every `Fwps*` function and `FWPS_*` type (the callout API), which
//!   `windows-sys` does not have at all;
//! * `DbgPrintEx`, which `windows-sys` binds to the user-mode `ntdll.dll`;
//! * the kernel-mode ETW provider API (`EtwRegister`, `EtwWriteTransfer`, ...).
//!
//! Every import is `raw-dylib` with `+verbatim`, so the import names in the
//! image are exactly `fwpkclnt.sys` and `ntoskrnl.exe` and no import library is
//! needed. On non-Windows hosts the declarations exist (so the crates above can
//! be type-checked and unit-tested) but cannot be linked.
//!
//! Nothing here is safe to call; `wfp-km` wraps it.

#![no_std]
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]

/// Declares functions imported from a kernel module.
///
/// On Windows targets the import is `raw-dylib` with `+verbatim`; elsewhere the
/// block has no link attribute (declarations only, never linked).
macro_rules! kernel_import {
    ($module:literal, $abi:literal { $($item:tt)* }) => {
        #[cfg_attr(windows, link(name = $module, kind = "raw-dylib", modifiers = "+verbatim"))]
        unsafe extern $abi { $($item)* }
    };
}

pub mod etw;
pub mod fwpm;
pub mod fwps;
pub mod ntos;

pub use windows_sys::core::GUID;
pub use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS, UNICODE_STRING};
pub use windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform as fwp_types;

#[cfg(test)]
mod layout_tests;
