//! Management functions (`Fwpm*`) as exported by `fwpkclnt.sys`.
//!
//! All of them must be called at IRQL == PASSIVE_LEVEL.

use crate::{GUID, HANDLE, NTSTATUS};
use core::ffi::c_void;
use windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform::{
    FWPM_CALLOUT0, FWPM_FILTER0, FWPM_PROVIDER0, FWPM_SESSION0, FWPM_SUBLAYER0,
};

/// `RPC_C_AUTHN_WINNT`: the authentication service kernel callers pass to
/// `FwpmEngineOpen0`.
pub const RPC_C_AUTHN_WINNT: u32 = windows_sys::Win32::System::Rpc::RPC_C_AUTHN_WINNT;

kernel_import!("fwpkclnt.sys", "system" {
    /// Opens a session to the filter engine. `server_name` must be null and
    /// `auth_identity` may be null in kernel mode.
    pub fn FwpmEngineOpen0(
        server_name: *const u16,
        authn_service: u32,
        auth_identity: *const c_void,
        session: *const FWPM_SESSION0,
        engine_handle: *mut HANDLE,
    ) -> NTSTATUS;

    /// Closes a session opened by `FwpmEngineOpen0`. Objects added through a
    /// dynamic session are deleted by this call.
    pub fn FwpmEngineClose0(engine_handle: HANDLE) -> NTSTATUS;

    /// Begins an explicit transaction within the session.
    pub fn FwpmTransactionBegin0(engine_handle: HANDLE, flags: u32) -> NTSTATUS;
    /// Commits the session's current transaction.
    pub fn FwpmTransactionCommit0(engine_handle: HANDLE) -> NTSTATUS;
    /// Aborts the session's current transaction.
    pub fn FwpmTransactionAbort0(engine_handle: HANDLE) -> NTSTATUS;

    /// Adds a sublayer.
    pub fn FwpmSubLayerAdd0(
        engine_handle: HANDLE,
        sub_layer: *const FWPM_SUBLAYER0,
        sd: *const c_void,
    ) -> NTSTATUS;

    /// Adds a management callout object; `id` (optional) receives its run-time id.
    pub fn FwpmCalloutAdd0(
        engine_handle: HANDLE,
        callout: *const FWPM_CALLOUT0,
        sd: *const c_void,
        id: *mut u32,
    ) -> NTSTATUS;

    /// Adds a filter; `id` (optional) receives its run-time id.
    pub fn FwpmFilterAdd0(
        engine_handle: HANDLE,
        filter: *const FWPM_FILTER0,
        sd: *const c_void,
        id: *mut u64,
    ) -> NTSTATUS;

    /// Deletes a filter by its run-time id.
    pub fn FwpmFilterDeleteById0(engine_handle: HANDLE, id: u64) -> NTSTATUS;

    /// Deletes a callout object by key.
    pub fn FwpmCalloutDeleteByKey0(engine_handle: HANDLE, key: *const GUID) -> NTSTATUS;

    /// Deletes a sublayer by key.
    pub fn FwpmSubLayerDeleteByKey0(engine_handle: HANDLE, key: *const GUID) -> NTSTATUS;

    /// Adds a provider (the owner that Weir's persistent objects name).
    pub fn FwpmProviderAdd0(
        engine_handle: HANDLE,
        provider: *const FWPM_PROVIDER0,
        sd: *const c_void,
    ) -> NTSTATUS;

    /// Deletes a provider by key (fails while objects still name it).
    pub fn FwpmProviderDeleteByKey0(engine_handle: HANDLE, key: *const GUID) -> NTSTATUS;

    /// Deletes a filter by key.
    pub fn FwpmFilterDeleteByKey0(engine_handle: HANDLE, key: *const GUID) -> NTSTATUS;

    /// Registers `callback` for changes of the Base Filtering Engine's state.
    /// The callback runs at PASSIVE_LEVEL and must not unsubscribe itself.
    pub fn FwpmBfeStateSubscribeChanges0(
        device_object: *mut c_void,
        callback: FWPM_SERVICE_STATE_CHANGE_CALLBACK0,
        context: *mut c_void,
        change_handle: *mut HANDLE,
    ) -> NTSTATUS;

    /// Removes a subscription. Must not be called from its own callback.
    pub fn FwpmBfeStateUnsubscribeChanges0(change_handle: HANDLE) -> NTSTATUS;

    /// The engine's current state. IRQL <= DISPATCH_LEVEL.
    pub fn FwpmBfeStateGet0() -> FWPM_SERVICE_STATE;
});

/// `FWPM_SERVICE_STATE_CHANGE_CALLBACK0`.
pub type FWPM_SERVICE_STATE_CHANGE_CALLBACK0 =
    Option<unsafe extern "system" fn(context: *mut c_void, new_state: FWPM_SERVICE_STATE)>;
pub use windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform::{
    FWPM_SERVICE_RUNNING, FWPM_SERVICE_START_PENDING, FWPM_SERVICE_STATE, FWPM_SERVICE_STOPPED,
    FWPM_SERVICE_STOP_PENDING,
};
