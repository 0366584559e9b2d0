//! ntoskrnl exports that `windows-sys` routes to a user-mode module or lacks,
//! and kernel constants it does not define.

kernel_import!("ntoskrnl.exe", "system" {
    /// Stops the system. Declared here because `windows-sys` does not mark it
    /// as never returning.
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;

    /// Whether a token is an administrator's (or SYSTEM's). Returns a
    /// `BOOLEAN` (u8): declared here because `windows-sys` returns it as a
    /// Rust `bool`, which would be undefined behaviour for any value but 0/1.
    pub fn SeTokenIsAdmin(token: *const core::ffi::c_void) -> u8;

    /// Whether `DbgPrintEx(component_id, level, ...)` would print: `TRUE` (1)
    /// or `FALSE` (0), or an error status for a bad component.
    pub fn DbgQueryDebugFilterState(component_id: u32, level: u32) -> i32;
});

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
});

/// `SL_PENDING_RETURNED` in `IO_STACK_LOCATION.Control` (what
/// `IoMarkIrpPending` sets).
pub const SL_PENDING_RETURNED: u8 = 0x01;
