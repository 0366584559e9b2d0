//! The callout API (`Fwps*`, declared in the WDK's `fwpsk.h`) and its types.
//!
//! Layouts follow the documented x64 definitions; `layout_tests` pins them.

use crate::{GUID, NTSTATUS};
use core::ffi::c_void;
use windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform::{FWP_BYTE_BLOB, FWP_VALUE0};

// ---------------------------------------------------------------------------
// Run-time layer identifiers (FWPS_BUILTIN_LAYERS) of the layers Weir hooks.
// ---------------------------------------------------------------------------

/// `FWPS_LAYER_ALE_AUTH_LISTEN_V4`.
pub const FWPS_LAYER_ALE_AUTH_LISTEN_V4: u16 = 40;
/// `FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4`.
pub const FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4: u16 = 44;
/// `FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V6`.
pub const FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V6: u16 = 46;
/// `FWPS_LAYER_ALE_AUTH_CONNECT_V4`.
pub const FWPS_LAYER_ALE_AUTH_CONNECT_V4: u16 = 48;
/// `FWPS_LAYER_ALE_AUTH_CONNECT_V6`.
pub const FWPS_LAYER_ALE_AUTH_CONNECT_V6: u16 = 50;

// ---------------------------------------------------------------------------
// Field indices into FWPS_INCOMING_VALUES0::incomingValue.
//
// The four ALE authorization layers share indices 0-9; from index 10 the
// CONNECT and RECV_ACCEPT enums differ.
// ---------------------------------------------------------------------------

/// `FWPS_FIELDS_ALE_AUTH_CONNECT_V4` (first entries).
pub mod ale_auth_connect_v4 {
    pub const ALE_APP_ID: u32 = 0;
    pub const ALE_USER_ID: u32 = 1;
    pub const IP_LOCAL_ADDRESS: u32 = 2;
    pub const IP_LOCAL_ADDRESS_TYPE: u32 = 3;
    pub const IP_LOCAL_PORT: u32 = 4;
    pub const IP_PROTOCOL: u32 = 5;
    pub const IP_REMOTE_ADDRESS: u32 = 6;
    pub const IP_REMOTE_PORT: u32 = 7;
    pub const ALE_REMOTE_USER_ID: u32 = 8;
    pub const ALE_REMOTE_MACHINE_ID: u32 = 9;
    pub const IP_DESTINATION_ADDRESS_TYPE: u32 = 10;
    pub const IP_LOCAL_INTERFACE: u32 = 11;
    pub const FLAGS: u32 = 12;
}

/// `FWPS_FIELDS_ALE_AUTH_CONNECT_V6` (first entries; same order as V4).
pub mod ale_auth_connect_v6 {
    pub use super::ale_auth_connect_v4::*;
}

/// `FWPS_FIELDS_ALE_AUTH_RECV_ACCEPT_V4` (first entries).
pub mod ale_auth_recv_accept_v4 {
    pub const ALE_APP_ID: u32 = 0;
    pub const ALE_USER_ID: u32 = 1;
    pub const IP_LOCAL_ADDRESS: u32 = 2;
    pub const IP_LOCAL_ADDRESS_TYPE: u32 = 3;
    pub const IP_LOCAL_PORT: u32 = 4;
    pub const IP_PROTOCOL: u32 = 5;
    pub const IP_REMOTE_ADDRESS: u32 = 6;
    pub const IP_REMOTE_PORT: u32 = 7;
    pub const ALE_REMOTE_USER_ID: u32 = 8;
    pub const ALE_REMOTE_MACHINE_ID: u32 = 9;
    pub const IP_LOCAL_INTERFACE: u32 = 10;
    pub const FLAGS: u32 = 11;
}

/// `FWPS_FIELDS_ALE_AUTH_RECV_ACCEPT_V6` (first entries; same order as V4).
pub mod ale_auth_recv_accept_v6 {
    pub use super::ale_auth_recv_accept_v4::*;
}

// ---------------------------------------------------------------------------
// Constants.
// ---------------------------------------------------------------------------

/// `FWPS_RIGHT_ACTION_WRITE`: set in `FWPS_CLASSIFY_OUT0::rights` when the
/// callout may change `actionType`.
pub const FWPS_RIGHT_ACTION_WRITE: u32 = 0x0000_0001;
/// `FWPS_CLASSIFY_OUT_FLAG_ABSORB`.
pub const FWPS_CLASSIFY_OUT_FLAG_ABSORB: u32 = 0x0000_0001;
/// `FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT`: the filter asks its callout to clear
/// the write right after deciding.
pub const FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT: u16 = 0x0001;

/// `FWPS_METADATA_FIELD_*` bits of `currentMetadataValues`, from windows-sys
/// (which has these constants even though it lacks the callout API).
pub use windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform::{
    FWPS_METADATA_FIELD_DISCARD_REASON, FWPS_METADATA_FIELD_FLOW_HANDLE,
    FWPS_METADATA_FIELD_IP_HEADER_SIZE, FWPS_METADATA_FIELD_PROCESS_ID,
    FWPS_METADATA_FIELD_PROCESS_PATH, FWPS_METADATA_FIELD_TOKEN,
    FWPS_METADATA_FIELD_TRANSPORT_HEADER_SIZE,
};

/// `FWPS_CALLOUT_NOTIFY_TYPE`.
pub type FWPS_CALLOUT_NOTIFY_TYPE = i32;
pub const FWPS_CALLOUT_NOTIFY_ADD_FILTER: FWPS_CALLOUT_NOTIFY_TYPE = 0;
pub const FWPS_CALLOUT_NOTIFY_DELETE_FILTER: FWPS_CALLOUT_NOTIFY_TYPE = 1;
pub const FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT: FWPS_CALLOUT_NOTIFY_TYPE = 2;

// ---------------------------------------------------------------------------
// Types.
// ---------------------------------------------------------------------------

/// `FWPS_INCOMING_VALUE0`: one data field of a layer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_INCOMING_VALUE0 {
    pub value: FWP_VALUE0,
}

/// `FWPS_INCOMING_VALUES0`: the fixed data fields a layer passes to classifyFn.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_INCOMING_VALUES0 {
    pub layerId: u16,
    pub valueCount: u32,
    pub incomingValue: *mut FWPS_INCOMING_VALUE0,
}

/// `FWPS_DISCARD_METADATA0`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_DISCARD_METADATA0 {
    pub discardModule: i32,
    pub discardReason: u32,
    pub filterId: u64,
}

/// `FWPS_INBOUND_FRAGMENT_METADATA0`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_INBOUND_FRAGMENT_METADATA0 {
    pub fragmentIdentification: u32,
    pub fragmentOffset: u16,
    pub fragmentLength: u32,
}

/// The leading, version-stable part of `FWPS_INCOMING_METADATA_VALUES0`.
///
/// The real structure continues past `packetDirection` with fields whose
/// presence depends on the NTDDI version the WDK targets. The filter engine
/// always allocates the whole structure and Weir only ever reads through a
/// pointer the engine hands it, never creating, copying or sizing one, so
/// declaring the prefix is sound and avoids guessing a version-dependent tail.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_INCOMING_METADATA_VALUES0 {
    pub currentMetadataValues: u32,
    pub flags: u32,
    pub reserved: u64,
    pub discardMetadata: FWPS_DISCARD_METADATA0,
    pub flowHandle: u64,
    pub ipHeaderSize: u32,
    pub transportHeaderSize: u32,
    pub processPath: *mut FWP_BYTE_BLOB,
    pub token: u64,
    pub processId: u64,
    pub sourceInterfaceIndex: u32,
    pub destinationInterfaceIndex: u32,
    pub compartmentId: u32,
    pub fragmentMetadata: FWPS_INBOUND_FRAGMENT_METADATA0,
    pub pathMtu: u32,
    pub completionHandle: *mut c_void,
    pub transportEndpointHandle: u64,
    pub remoteScopeId: u32,
    pub controlData: *mut c_void,
    pub controlDataLength: u32,
    pub packetDirection: i32,
}

/// `FWPS_ACTION0`: the action of a run-time filter.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_ACTION0 {
    pub r#type: u32,
    pub calloutId: u32,
}

/// `FWPS_FILTER_CONDITION0`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_FILTER_CONDITION0 {
    pub fieldId: u16,
    pub reserved: u16,
    pub matchType: i32,
    pub conditionValue: windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform::FWP_CONDITION_VALUE0,
}

/// `FWPS_FILTER3`: the run-time filter passed to classifyFn and notifyFn.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_FILTER3 {
    pub filterId: u64,
    pub weight: FWP_VALUE0,
    pub subLayerWeight: u16,
    pub flags: u16,
    pub numFilterConditions: u32,
    pub filterCondition: *mut FWPS_FILTER_CONDITION0,
    pub action: FWPS_ACTION0,
    pub context: u64,
    /// `FWPM_PROVIDER_CONTEXT3*`; Weir uses no provider contexts.
    pub providerContext: *mut c_void,
}

/// `FWPS_CLASSIFY_OUT0`: the callout's verdict.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_CLASSIFY_OUT0 {
    pub actionType: u32,
    pub outContext: u64,
    pub filterId: u64,
    pub rights: u32,
    pub flags: u32,
    pub reserved: u32,
}

/// `FWPS_CALLOUT_CLASSIFY_FN3`.
pub type FWPS_CALLOUT_CLASSIFY_FN3 = Option<
    unsafe extern "system" fn(
        in_fixed_values: *const FWPS_INCOMING_VALUES0,
        in_meta_values: *const FWPS_INCOMING_METADATA_VALUES0,
        layer_data: *mut c_void,
        classify_context: *const c_void,
        filter: *const FWPS_FILTER3,
        flow_context: u64,
        classify_out: *mut FWPS_CLASSIFY_OUT0,
    ),
>;

/// `FWPS_CALLOUT_NOTIFY_FN3`.
pub type FWPS_CALLOUT_NOTIFY_FN3 = Option<
    unsafe extern "system" fn(
        notify_type: FWPS_CALLOUT_NOTIFY_TYPE,
        filter_key: *const GUID,
        filter: *mut FWPS_FILTER3,
    ) -> NTSTATUS,
>;

/// `FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0`.
pub type FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 =
    Option<unsafe extern "system" fn(layer_id: u16, callout_id: u32, flow_context: u64)>;

/// `FWPS_CALLOUT3`: what `FwpsCalloutRegister3` registers.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_CALLOUT3 {
    pub calloutKey: GUID,
    pub flags: u32,
    pub classifyFn: FWPS_CALLOUT_CLASSIFY_FN3,
    pub notifyFn: FWPS_CALLOUT_NOTIFY_FN3,
    pub flowDeleteFn: FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0,
}

kernel_import!("fwpkclnt.sys", "system" {
    /// Registers a callout's functions with the filter engine. IRQL: PASSIVE_LEVEL.
    pub fn FwpsCalloutRegister3(
        device_object: *mut c_void,
        callout: *const FWPS_CALLOUT3,
        callout_id: *mut u32,
    ) -> NTSTATUS;

    /// Unregisters a callout by its run-time id. Returns `STATUS_DEVICE_BUSY`
    /// while flows still carry contexts of this callout (the callout is then
    /// unregistered once they are removed), `STATUS_FWP_IN_USE` while another
    /// thread registers or unregisters it, `STATUS_FWP_CALLOUT_NOT_FOUND` for
    /// an unknown id. IRQL: PASSIVE_LEVEL.
    pub fn FwpsCalloutUnregisterById0(callout_id: u32) -> NTSTATUS;
});
