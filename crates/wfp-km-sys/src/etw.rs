//! The kernel-mode ETW provider API (wdm.h: `EtwRegister`, `EtwUnregister`,
//! `EtwWriteTransfer`) and the structures it takes. windows-sys has the
//! user-mode `Event*` equivalents only.

use crate::{GUID, NTSTATUS};

/// `REGHANDLE`: an opaque 64-bit registration handle (0: none).
pub type REGHANDLE = u64;

/// `EVENT_DESCRIPTOR` (evntprov.h).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EVENT_DESCRIPTOR {
    pub Id: u16,
    pub Version: u8,
    pub Channel: u8,
    pub Level: u8,
    pub Opcode: u8,
    pub Task: u16,
    pub Keyword: u64,
}

/// `EVENT_DATA_DESCRIPTOR` (evntprov.h). `Reserved` is, as a union, the
/// descriptor `Type` in its low byte (`EVENT_DATA_DESCRIPTOR_TYPE_*`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EVENT_DATA_DESCRIPTOR {
    /// The data's address, as a 64-bit integer on every architecture.
    pub Ptr: u64,
    pub Size: u32,
    pub Reserved: u32,
}

/// `EVENT_DATA_DESCRIPTOR_TYPE_NONE`: payload.
pub const EVENT_DATA_DESCRIPTOR_TYPE_NONE: u32 = 0;
/// `EVENT_DATA_DESCRIPTOR_TYPE_EVENT_METADATA`: TraceLogging event metadata.
pub const EVENT_DATA_DESCRIPTOR_TYPE_EVENT_METADATA: u32 = 1;
/// `EVENT_DATA_DESCRIPTOR_TYPE_PROVIDER_METADATA`: TraceLogging provider metadata.
pub const EVENT_DATA_DESCRIPTOR_TYPE_PROVIDER_METADATA: u32 = 2;

/// `EVENT_FILTER_DESCRIPTOR` (evntprov.h), passed to the enable callback.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EVENT_FILTER_DESCRIPTOR {
    pub Ptr: u64,
    pub Size: u32,
    pub Type: u32,
}

/// `EVENT_CONTROL_CODE_DISABLE_PROVIDER`.
pub const EVENT_CONTROL_CODE_DISABLE_PROVIDER: u32 = 0;
/// `EVENT_CONTROL_CODE_ENABLE_PROVIDER`.
pub const EVENT_CONTROL_CODE_ENABLE_PROVIDER: u32 = 1;
/// `EVENT_CONTROL_CODE_CAPTURE_STATE`.
pub const EVENT_CONTROL_CODE_CAPTURE_STATE: u32 = 2;

/// `ETWENABLECALLBACK`: called by ETW (IRQL <= APC_LEVEL in practice; the
/// documentation promises only "any IRQL the caller of EtwRegister or a
/// session controller runs at") when a session enables, disables or asks
/// the provider for its state.
pub type ETWENABLECALLBACK = Option<
    unsafe extern "system" fn(
        source_id: *const GUID,
        control_code: u32,
        level: u8,
        match_any_keyword: u64,
        match_all_keyword: u64,
        filter_data: *const EVENT_FILTER_DESCRIPTOR,
        callback_context: *mut core::ffi::c_void,
    ),
>;

kernel_import!("ntoskrnl.exe", "system" {
    /// Registers a provider. IRQL: PASSIVE_LEVEL.
    pub fn EtwRegister(
        provider_id: *const GUID,
        enable_callback: ETWENABLECALLBACK,
        callback_context: *mut core::ffi::c_void,
        reg_handle: *mut REGHANDLE,
    ) -> NTSTATUS;
    /// Unregisters a provider; no enable callback runs after it returns.
    /// IRQL: PASSIVE_LEVEL.
    pub fn EtwUnregister(reg_handle: REGHANDLE) -> NTSTATUS;
    /// Writes an event. IRQL: any (data must be non-paged above APC_LEVEL).
    pub fn EtwWriteTransfer(
        reg_handle: REGHANDLE,
        event_descriptor: *const EVENT_DESCRIPTOR,
        activity_id: *const GUID,
        related_activity_id: *const GUID,
        user_data_count: u32,
        user_data: *const EVENT_DATA_DESCRIPTOR,
    ) -> NTSTATUS;
});
