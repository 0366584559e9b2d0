//! ntoskrnl exports that `windows-sys` routes to a user-mode module or lacks,
//! and kernel constants it does not define.

kernel_import!("ntoskrnl.exe", "system" {
    /// Stops the system. Declared here because `windows-sys` does not mark it
    /// as never returning.
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;

    // Security descriptors. windows-sys binds these to the user-mode
    // ntdll.dll; ntoskrnl exports the same routines. BOOLEAN parameters are
    // declared as u8 (a Rust `bool` is not ABI-identical in every position).

    /// Initialises an absolute security descriptor (no owner, group, SACL or
    /// DACL). `revision` must be `SECURITY_DESCRIPTOR_REVISION`.
    pub fn RtlCreateSecurityDescriptor(sd: *mut core::ffi::c_void, revision: u32) -> NTSTATUS;
    /// Initialises an empty ACL of `length` bytes (a multiple of 4).
    pub fn RtlCreateAcl(acl: *mut core::ffi::c_void, length: u32, revision: u32) -> NTSTATUS;
    /// Appends an ACCESS_ALLOWED_ACE for `sid` with `mask`; fails with
    /// STATUS_ALLOTTED_SPACE_EXCEEDED when the ACL is too small.
    pub fn RtlAddAccessAllowedAce(acl: *mut core::ffi::c_void, revision: u32, mask: u32, sid: *const core::ffi::c_void) -> NTSTATUS;
    /// Points an absolute descriptor's DACL at `dacl` (referenced, not copied).
    pub fn RtlSetDaclSecurityDescriptor(sd: *mut core::ffi::c_void, present: u8, dacl: *const core::ffi::c_void, defaulted: u8) -> NTSTATUS;
    /// Opens a handle to an object the caller holds a pointer to.
    pub fn ObOpenObjectByPointer(
        object: *const core::ffi::c_void,
        attributes: u32,
        access_state: *const core::ffi::c_void,
        desired_access: u32,
        object_type: *const core::ffi::c_void,
        access_mode: i8,
        handle: *mut HANDLE,
    ) -> NTSTATUS;
    /// Sets an object's security from a descriptor (the object manager
    /// captures a copy).
    pub fn ZwSetSecurityObject(handle: HANDLE, information: u32, sd: *const core::ffi::c_void) -> NTSTATUS;
    /// Closes a kernel handle.
    pub fn ZwClose(handle: HANDLE) -> NTSTATUS;
    /// Opens a registry key.
    pub fn ZwOpenKey(handle: *mut HANDLE, desired_access: u32, attributes: *const OBJECT_ATTRIBUTES) -> NTSTATUS;
    /// Reads one value of an open key.
    pub fn ZwQueryValueKey(
        handle: HANDLE,
        name: *const UNICODE_STRING,
        class: i32,
        information: *mut core::ffi::c_void,
        length: u32,
        result_length: *mut u32,
    ) -> NTSTATUS;
});

use crate::{HANDLE, NTSTATUS, UNICODE_STRING};
pub use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;

/// `SECURITY_DESCRIPTOR_REVISION`.
pub const SECURITY_DESCRIPTOR_REVISION: u32 = 1;
/// `ACL_REVISION`.
pub const ACL_REVISION: u32 = 2;
/// `GENERIC_ALL`.
pub const GENERIC_ALL: u32 = 0x1000_0000;
/// `WRITE_DAC`.
pub const WRITE_DAC: u32 = 0x0004_0000;
/// `KEY_READ`.
pub const KEY_READ: u32 = 0x0002_0019;
/// `DACL_SECURITY_INFORMATION`.
pub const DACL_SECURITY_INFORMATION: u32 = 0x0000_0004;
/// `LABEL_SECURITY_INFORMATION`: the SACL's mandatory label (setting it
/// needs `WRITE_OWNER` on the handle).
pub const LABEL_SECURITY_INFORMATION: u32 = 0x0000_0010;
/// `WRITE_OWNER`.
pub const WRITE_OWNER: u32 = 0x0008_0000;
/// `SE_SACL_PRESENT` in `SECURITY_DESCRIPTOR::Control`.
pub const SE_SACL_PRESENT: u16 = 0x0010;
/// `SYSTEM_MANDATORY_LABEL_ACE_TYPE`.
pub const SYSTEM_MANDATORY_LABEL_ACE_TYPE: u8 = 0x11;
/// `SYSTEM_MANDATORY_LABEL_NO_WRITE_UP`.
pub const SYSTEM_MANDATORY_LABEL_NO_WRITE_UP: u32 = 0x1;
/// `SYSTEM_MANDATORY_LABEL_NO_READ_UP`.
pub const SYSTEM_MANDATORY_LABEL_NO_READ_UP: u32 = 0x2;
/// `SYSTEM_MANDATORY_LABEL_NO_EXECUTE_UP`.
pub const SYSTEM_MANDATORY_LABEL_NO_EXECUTE_UP: u32 = 0x4;
/// `SECURITY_MANDATORY_HIGH_RID` (S-1-16-12288).
pub const SECURITY_MANDATORY_HIGH_RID: u32 = 0x3000;
/// `OBJ_CASE_INSENSITIVE`.
pub const OBJ_CASE_INSENSITIVE: u32 = 0x0000_0040;
/// `OBJ_KERNEL_HANDLE`: the handle lives in the system handle table, so no
/// user process can use or close it.
pub const OBJ_KERNEL_HANDLE: u32 = 0x0000_0200;
/// `KeyValuePartialInformation` (KEY_VALUE_INFORMATION_CLASS).
pub const KEY_VALUE_PARTIAL_INFORMATION_CLASS: i32 = 2;
/// `REG_DWORD`.
pub const REG_DWORD: u32 = 4;
/// `REG_MULTI_SZ`.
pub const REG_MULTI_SZ: u32 = 7;
/// `SynchronizationEvent` (EVENT_TYPE): auto-reset, wakes one waiter.
pub const SYNCHRONIZATION_EVENT: i32 = 1;
/// `Executive` (KWAIT_REASON).
pub const EXECUTIVE: i32 = 0;

kernel_import!("ntoskrnl.exe", "C" {
    /// Prints to the kernel debugger if `component_id`/`level` pass the
    /// debug-print filter. Callable at any IRQL for non-paged arguments.
    pub fn DbgPrintEx(component_id: u32, level: u32, format: *const u8, ...) -> u32;
});

/// `POOL_FLAG_NON_PAGED`: non-paged, non-executable pool for `ExAllocatePool2`.
pub const POOL_FLAG_NON_PAGED: u64 = 0x0000_0000_0000_0040;
/// `POOL_FLAG_UNINITIALIZED`: skip zeroing.
pub const POOL_FLAG_UNINITIALIZED: u64 = 0x0000_0000_0000_0002;

/// `DPFLTR_IHVNETWORK_ID` component for `DbgPrintEx`.
pub const DPFLTR_IHVNETWORK_ID: u32 = 80;
/// `DPFLTR_ERROR_LEVEL`: shown by default.
pub const DPFLTR_ERROR_LEVEL: u32 = 0;
/// `DPFLTR_WARNING_LEVEL`.
pub const DPFLTR_WARNING_LEVEL: u32 = 1;
/// `DPFLTR_TRACE_LEVEL`.
pub const DPFLTR_TRACE_LEVEL: u32 = 2;
/// `DPFLTR_INFO_LEVEL`: hidden unless the debug filter mask enables it.
pub const DPFLTR_INFO_LEVEL: u32 = 3;

/// `KernelMode` for `KeDelayExecutionThread`'s `WaitMode`.
pub const KERNEL_MODE: i8 = 0;

/// `FILE_DEVICE_NETWORK`.
pub const FILE_DEVICE_NETWORK: u32 = 0x0000_0012;

/// `IO_STACK_LOCATION.Parameters.DeviceIoControl` as the WDK lays it out.
///
/// wdm.h marks `InputBufferLength` and `IoControlCode` `POINTER_ALIGNMENT`
/// (8 on x64), so the fields sit at 0, 8, 16 and 24. windows-sys 0.61's
/// `IO_STACK_LOCATION_0_16` omits that alignment and would read them at 0, 4,
/// 8 and 16; read the union through this type instead.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DEVICE_IO_CONTROL_PARAMETERS {
    pub OutputBufferLength: u32,
    pub _pad0: u32,
    pub InputBufferLength: u32,
    pub _pad1: u32,
    pub IoControlCode: u32,
    pub _pad2: u32,
    pub Type3InputBuffer: *mut core::ffi::c_void,
}

/// `KDEFERRED_ROUTINE`: a DPC's routine, called at DISPATCH_LEVEL with the
/// DPC, its deferred context and the two system arguments. windows-sys
/// 0.61 declares `PKDEFERRED_ROUTINE` without parameters.
pub type KDEFERRED_ROUTINE = unsafe extern "system" fn(
    dpc: *mut windows_sys::Wdk::Foundation::KDPC,
    deferred_context: *mut core::ffi::c_void,
    system_argument1: *mut core::ffi::c_void,
    system_argument2: *mut core::ffi::c_void,
);

kernel_import!("ntoskrnl.exe", "system" {
    /// Acquires a spin lock, raising to DISPATCH_LEVEL; returns the previous
    /// IRQL. IRQL <= DISPATCH_LEVEL. (x64's `KeAcquireSpinLock` is this
    /// routine behind a macro; windows-sys does not declare it.)
    pub fn KeAcquireSpinLockRaiseToDpc(spin_lock: *mut usize) -> u8;

    /// Releases a spin lock and lowers to `new_irql`. IRQL DISPATCH_LEVEL.
    pub fn KeReleaseSpinLock(spin_lock: *mut usize, new_irql: u8);

    /// Initialises a DPC object. Any IRQL. Declared here for the
    /// `KDEFERRED_ROUTINE` signature (see above).
    pub fn KeInitializeDpc(
        dpc: *mut windows_sys::Wdk::Foundation::KDPC,
        routine: KDEFERRED_ROUTINE,
        context: *mut core::ffi::c_void,
    );

    /// Queues a DPC; `TRUE` (1) if it was not queued yet. Any IRQL.
    /// Returns `BOOLEAN` (u8), declared here for the same reason as
    /// `SeTokenIsAdmin`.
    pub fn KeInsertQueueDpc(
        dpc: *mut windows_sys::Wdk::Foundation::KDPC,
        system_argument1: *mut core::ffi::c_void,
        system_argument2: *mut core::ffi::c_void,
    ) -> u8;

    /// Removes a DPC from its queue; `TRUE` (1) if it was queued. Any IRQL.
    pub fn KeRemoveQueueDpc(dpc: *mut windows_sys::Wdk::Foundation::KDPC) -> u8;

    /// `TRUE` (1) if normal kernel APCs are disabled for the current thread
    /// (IRQL >= APC_LEVEL, or inside a critical or guarded region). Any
    /// IRQL. Returns `BOOLEAN` (u8; windows-sys declares `bool`).
    pub fn KeAreApcsDisabled() -> u8;

    /// Disables normal kernel APCs for the current thread. IRQL <= APC_LEVEL.
    pub fn KeEnterCriticalRegion();

    /// Re-enables them (pairs with `KeEnterCriticalRegion`). IRQL <= APC_LEVEL.
    pub fn KeLeaveCriticalRegion();
});

/// `SL_PENDING_RETURNED` in `IO_STACK_LOCATION.Control` (what
/// `IoMarkIrpPending` sets).
pub const SL_PENDING_RETURNED: u8 = 0x01;

// Files: the stored policy is read at PASSIVE_LEVEL with these. windows-sys
// binds the Zw routines to the user-mode ntdll.dll; ntoskrnl exports them.
kernel_import!("ntoskrnl.exe", "system" {
    /// Opens (or creates) a file.
    pub fn ZwCreateFile(
        handle: *mut HANDLE,
        desired_access: u32,
        attributes: *const OBJECT_ATTRIBUTES,
        io_status: *mut IO_STATUS_BLOCK,
        allocation_size: *const i64,
        file_attributes: u32,
        share_access: u32,
        create_disposition: u32,
        create_options: u32,
        ea_buffer: *const core::ffi::c_void,
        ea_length: u32,
    ) -> NTSTATUS;
    /// Reads information about an open file.
    pub fn ZwQueryInformationFile(
        handle: HANDLE,
        io_status: *mut IO_STATUS_BLOCK,
        information: *mut core::ffi::c_void,
        length: u32,
        class: i32,
    ) -> NTSTATUS;
    /// Reads from an open file (synchronously for a handle opened with
    /// `FILE_SYNCHRONOUS_IO_NONALERT`).
    pub fn ZwReadFile(
        handle: HANDLE,
        event: HANDLE,
        apc_routine: *const core::ffi::c_void,
        apc_context: *const core::ffi::c_void,
        io_status: *mut IO_STATUS_BLOCK,
        buffer: *mut core::ffi::c_void,
        length: u32,
        byte_offset: *const i64,
        key: *const u32,
    ) -> NTSTATUS;
});

pub use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

/// `FILE_STANDARD_INFORMATION` with its BOOLEANs as `u8` (a Rust `bool`
/// read from kernel-written memory must be 0 or 1; a `u8` may be anything).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FILE_STANDARD_INFORMATION {
    pub AllocationSize: i64,
    pub EndOfFile: i64,
    pub NumberOfLinks: u32,
    pub DeletePending: u8,
    pub Directory: u8,
}

/// `FileStandardInformation` (FILE_INFORMATION_CLASS).
pub const FILE_STANDARD_INFORMATION_CLASS: i32 = 5;
/// `GENERIC_READ`.
pub const GENERIC_READ: u32 = 0x8000_0000;
/// `SYNCHRONIZE`.
pub const SYNCHRONIZE: u32 = 0x0010_0000;
/// `FILE_ATTRIBUTE_NORMAL`.
pub const FILE_ATTRIBUTE_NORMAL: u32 = 0x80;
/// `FILE_SHARE_READ`: others may read while Weir reads (a writer replaces the
/// file by rename, so it never needs write sharing).
pub const FILE_SHARE_READ: u32 = 0x1;
/// `FILE_OPEN` (create disposition): open an existing file, never create.
pub const FILE_OPEN: u32 = 0x1;
/// `FILE_NON_DIRECTORY_FILE`.
pub const FILE_NON_DIRECTORY_FILE: u32 = 0x40;
/// `FILE_SYNCHRONOUS_IO_NONALERT`: the I/O manager waits for each read.
pub const FILE_SYNCHRONOUS_IO_NONALERT: u32 = 0x20;
/// `FILE_SEQUENTIAL_ONLY`: a hint for one front-to-back read.
pub const FILE_SEQUENTIAL_ONLY: u32 = 0x4;
