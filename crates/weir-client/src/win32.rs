//! The Win32 calls of weir-client, and the only `unsafe` of the crate.
//!
//! - [`Device`]: `\\.\Weir` opened for overlapped I/O; every request goes through
//!   `NtDeviceIoControlFile` so the raw NTSTATUS (Weir's customer codes `0xE057xxxx`, which
//!   `RtlNtStatusToDosError` cannot map) reaches the decoders.
//! - [`Canceller`]: `CancelIoEx` on the device from another thread (Ctrl-C).
//! - [`DosDevices`]: drive letters to NT devices with `QueryDosDeviceW`, and application ids
//!   from the OS with `FwpmGetAppIdFromFileName0` ([`app_id_of`]).
//! - [`service_state`]: the `weir` service's state from the service control manager, to say
//!   *why* the device is missing.
//!
//! Handles are kept as `isize` so the safe types are `Send`/`Sync` without `unsafe impl`;
//! each is closed exactly once by its owner's `Drop`.

use crate::client::Transport;
use crate::error::{ClientError, STATUS_PENDING};
use crate::paths::DriveMap;
use crate::proto::{Completion, Request};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use windows_sys::Wdk::System::IO::NtDeviceIoControlFile;
use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_ACCESS_DENIED, ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND,
    ERROR_SERVICE_DOES_NOT_EXIST, GENERIC_READ, GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE,
    WAIT_OBJECT_0,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, QueryDosDeviceW, FILE_FLAG_OVERLAPPED, FILE_SHARE_READ, FILE_SHARE_WRITE,
    OPEN_EXISTING,
};
use windows_sys::Win32::System::Console::{SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_C_EVENT};
use windows_sys::Win32::System::Services::{
    CloseServiceHandle, OpenSCManagerW, OpenServiceW, QueryServiceStatus, SC_MANAGER_CONNECT,
    SERVICE_QUERY_STATUS, SERVICE_RUNNING, SERVICE_START_PENDING, SERVICE_STATUS, SERVICE_STOPPED,
    SERVICE_STOP_PENDING,
};
use windows_sys::Win32::System::Threading::{CreateEventW, WaitForSingleObject, INFINITE};
use windows_sys::Win32::System::IO::{CancelIoEx, IO_STATUS_BLOCK};

/// The control device's Win32 name.
pub const DEVICE_PATH: &str = r"\\.\Weir";
/// The driver's service name.
pub const SERVICE_NAME: &str = "weir";

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn last_error() -> u32 {
    // SAFETY: GetLastError only reads the calling thread's last-error value.
    unsafe { GetLastError() }
}

/// An owned kernel handle, closed on drop.
#[derive(Debug)]
struct OwnedHandle(isize);

impl OwnedHandle {
    fn raw(&self) -> HANDLE {
        self.0 as HANDLE
    }
}

impl Drop for OwnedHandle {
    fn drop(&mut self) {
        // SAFETY: the handle was returned valid by CreateFileW/CreateEventW, is owned only by
        // this value, and is closed only here.
        unsafe {
            CloseHandle(self.raw());
        }
    }
}

/// State of the `weir` service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceState {
    /// No such service.
    NotInstalled,
    /// Installed; the state in words ("stopped", "running", ...).
    Installed(String),
    /// The service manager could not be asked.
    Unknown,
}

/// Asks the service control manager about the `weir` service.
pub fn service_state() -> ServiceState {
    let name = wide(SERVICE_NAME);
    // SAFETY: null machine and database names select the local active database; the
    // returned handle is checked and closed below.
    let scm = unsafe { OpenSCManagerW(std::ptr::null(), std::ptr::null(), SC_MANAGER_CONNECT) };
    if scm.is_null() {
        return ServiceState::Unknown;
    }
    // SAFETY: `scm` is a valid SCM handle and `name` a NUL-terminated UTF-16 string.
    let svc = unsafe { OpenServiceW(scm, name.as_ptr(), SERVICE_QUERY_STATUS) };
    let state = if svc.is_null() {
        if last_error() == ERROR_SERVICE_DOES_NOT_EXIST {
            ServiceState::NotInstalled
        } else {
            ServiceState::Unknown
        }
    } else {
        let mut status = SERVICE_STATUS {
            dwServiceType: 0,
            dwCurrentState: 0,
            dwControlsAccepted: 0,
            dwWin32ExitCode: 0,
            dwServiceSpecificExitCode: 0,
            dwCheckPoint: 0,
            dwWaitHint: 0,
        };
        // SAFETY: `svc` is a valid service handle opened with SERVICE_QUERY_STATUS and
        // `status` a writable SERVICE_STATUS.
        let ok = unsafe { QueryServiceStatus(svc, &mut status) } != 0;
        // SAFETY: `svc` was opened above and is closed once.
        unsafe {
            CloseServiceHandle(svc);
        }
        if ok {
            ServiceState::Installed(
                match status.dwCurrentState {
                    SERVICE_STOPPED => "stopped",
                    SERVICE_START_PENDING => "starting",
                    SERVICE_STOP_PENDING => "stopping",
                    SERVICE_RUNNING => "running",
                    _ => "in another state",
                }
                .to_string(),
            )
        } else {
            ServiceState::Unknown
        }
    };
    // SAFETY: `scm` was opened above and is closed once.
    unsafe {
        CloseServiceHandle(scm);
    }
    state
}

/// `\\.\Weir`, open for overlapped requests.
#[derive(Clone, Debug)]
pub struct Device {
    handle: Arc<OwnedHandle>,
}

impl Device {
    /// Opens the control device (read and write access; the driver admits administrators
    /// only). Errors say whether the driver is not installed, not started, or the prompt
    /// is not elevated.
    pub fn open() -> Result<Self, ClientError> {
        let path = wide(DEVICE_PATH);
        // SAFETY: `path` is NUL-terminated UTF-16; no security attributes or template; the
        // returned handle is checked before use.
        let h = unsafe {
            CreateFileW(
                path.as_ptr(),
                GENERIC_READ | GENERIC_WRITE,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                std::ptr::null(),
                OPEN_EXISTING,
                FILE_FLAG_OVERLAPPED,
                std::ptr::null_mut(),
            )
        };
        if h == INVALID_HANDLE_VALUE || h.is_null() {
            let code = last_error();
            return Err(match code {
                ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND => match service_state() {
                    ServiceState::NotInstalled => ClientError::NotInstalled,
                    ServiceState::Installed(state) if state != "running" => {
                        ClientError::NotStarted { state }
                    }
                    _ => ClientError::NotLoaded,
                },
                ERROR_ACCESS_DENIED => ClientError::AccessDenied,
                code => ClientError::Os {
                    call: "CreateFileW(\\\\.\\Weir)",
                    code,
                },
            });
        }
        Ok(Self {
            handle: Arc::new(OwnedHandle(h as isize)),
        })
    }

    /// A handle for cancelling this device's pending requests from another thread.
    pub fn canceller(&self) -> Canceller {
        Canceller {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl Transport for Device {
    fn call(&self, request: &Request) -> Result<Completion, ClientError> {
        let (Ok(in_len), Ok(out_len)) = (
            u32::try_from(request.input.len()),
            u32::try_from(request.output_len),
        ) else {
            return Err(ClientError::Malformed {
                request: request.name,
                detail: "buffer larger than 4 GiB".into(),
            });
        };
        let mut output = vec![0u8; request.output_len];
        // SAFETY: default security, manual reset, initially non-signalled, unnamed; checked below.
        let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
        if event.is_null() {
            return Err(ClientError::Os {
                call: "CreateEventW",
                code: last_error(),
            });
        }
        let event = OwnedHandle(event as isize);
        let mut iosb = IO_STATUS_BLOCK::default();
        let input_ptr = if request.input.is_empty() {
            std::ptr::null()
        } else {
            request.input.as_ptr().cast()
        };
        let output_ptr = if output.is_empty() {
            std::ptr::null_mut()
        } else {
            output.as_mut_ptr().cast()
        };
        // SAFETY: the device handle is open (owned by `self`); `event`, `iosb`, the input and
        // the output buffer all outlive the request: when it pends we wait on `event` below
        // until the I/O manager has completed it (cancellation completes it too) before any
        // of them is dropped. Lengths match the buffers.
        let status = unsafe {
            NtDeviceIoControlFile(
                self.handle.raw(),
                event.raw(),
                None,
                std::ptr::null(),
                &mut iosb,
                request.code,
                input_ptr,
                in_len,
                output_ptr,
                out_len,
            )
        } as u32;
        let status = if status == STATUS_PENDING {
            // SAFETY: `event` is a valid event handle.
            let waited = unsafe { WaitForSingleObject(event.raw(), INFINITE) };
            if waited != WAIT_OBJECT_0 {
                // The request may still complete into our buffers: wait it out after cancelling.
                // SAFETY: valid handles; CancelIoEx with a null OVERLAPPED cancels all of the
                // handle's requests from this process; the second wait has no timeout.
                unsafe {
                    CancelIoEx(self.handle.raw(), std::ptr::null());
                    WaitForSingleObject(event.raw(), INFINITE);
                }
                return Err(ClientError::Os {
                    call: "WaitForSingleObject",
                    code: last_error(),
                });
            }
            // SAFETY: the request completed (event signalled), so the I/O manager wrote the
            // status member of the union.
            unsafe { iosb.Anonymous.Status as u32 }
        } else {
            status
        };
        // NT_ERROR statuses carry no output; success and warnings (BUFFER_OVERFLOW) carry
        // `Information` bytes.
        let written = if status >> 30 == 0b11 {
            0
        } else {
            iosb.Information.min(output.len())
        };
        output.truncate(written);
        Ok(Completion { status, output })
    }
}

/// Cancels every pending request of one [`Device`] (`CancelIoEx`); keeps the handle open
/// while it lives so it can never cancel I/O of a reused handle value.
#[derive(Clone, Debug)]
pub struct Canceller {
    handle: Arc<OwnedHandle>,
}

impl Canceller {
    /// Cancels the device's pending requests; they complete with `STATUS_CANCELLED`.
    pub fn cancel(&self) {
        // SAFETY: the handle is open while `self` holds the Arc; a null OVERLAPPED cancels
        // all of the handle's requests issued by this process.
        unsafe {
            CancelIoEx(self.handle.raw(), std::ptr::null());
        }
    }
}

/// The device Ctrl-C cancels, and whether Ctrl-C was pressed. The handler runs on its own
/// thread; it cancels under the lock, and [`CtrlCGuard`] removes the canceller under the
/// same lock, so the handler never uses a closed handle.
static CTRL_C_TARGET: Mutex<Option<Canceller>> = Mutex::new(None);
static CTRL_C_PRESSED: AtomicBool = AtomicBool::new(false);

unsafe extern "system" fn on_ctrl(kind: u32) -> windows_sys::core::BOOL {
    if kind != CTRL_C_EVENT && kind != CTRL_BREAK_EVENT {
        return 0;
    }
    CTRL_C_PRESSED.store(true, Ordering::SeqCst);
    if let Ok(target) = CTRL_C_TARGET.lock() {
        if let Some(c) = target.as_ref() {
            c.cancel();
        }
    }
    1
}

/// While alive, Ctrl-C and Ctrl-Break cancel the device's pending requests instead of
/// killing the process, so a pended read completes with `STATUS_CANCELLED` and the tool
/// exits cleanly.
pub struct CtrlCGuard(());

impl CtrlCGuard {
    /// Installs the handler for `canceller`'s device.
    pub fn install(canceller: Canceller) -> Result<Self, ClientError> {
        if let Ok(mut target) = CTRL_C_TARGET.lock() {
            *target = Some(canceller);
        }
        // SAFETY: `on_ctrl` is a plain function, valid for the process lifetime.
        if unsafe { SetConsoleCtrlHandler(Some(on_ctrl), 1) } == 0 {
            if let Ok(mut target) = CTRL_C_TARGET.lock() {
                *target = None;
            }
            return Err(ClientError::Os {
                call: "SetConsoleCtrlHandler",
                code: last_error(),
            });
        }
        Ok(Self(()))
    }

    /// Whether Ctrl-C was pressed since the handler was installed.
    pub fn pressed(&self) -> bool {
        CTRL_C_PRESSED.load(Ordering::SeqCst)
    }
}

impl Drop for CtrlCGuard {
    fn drop(&mut self) {
        // SAFETY: removes the handler added in `install`.
        unsafe {
            SetConsoleCtrlHandler(Some(on_ctrl), 0);
        }
        if let Ok(mut target) = CTRL_C_TARGET.lock() {
            *target = None;
        }
    }
}

/// Drive letters through `QueryDosDeviceW`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DosDevices;

impl DriveMap for DosDevices {
    fn device_of(&self, drive: &str) -> Option<String> {
        let name = wide(drive);
        let mut buf = vec![0u16; 1024];
        let len = u32::try_from(buf.len()).ok()?;
        // SAFETY: `name` is NUL-terminated; `buf` holds `len` u16s and QueryDosDeviceW writes
        // at most that many.
        let n = unsafe { QueryDosDeviceW(name.as_ptr(), buf.as_mut_ptr(), len) };
        if n == 0 {
            return None;
        }
        // The result is a list of NUL-terminated strings; the first is the current mapping.
        let first = buf.get(..n as usize)?.split(|&u| u == 0).next()?;
        Some(String::from_utf16_lossy(first))
    }

    fn app_id(&self, path: &str) -> Option<String> {
        app_id_of(path).ok()
    }
}

/// `ERROR_CALL_NOT_IMPLEMENTED`.
const ERROR_CALL_NOT_IMPLEMENTED: u32 = 120;
/// `ERROR_FILE_NOT_FOUND`.
const ERROR_FILE_NOT_FOUND_CODE: u32 = 2;

/// Whether this process runs under Wine (its ntdll exports `wine_get_version`).
fn under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    let ntdll = wide("ntdll.dll");
    // SAFETY: `ntdll` is NUL-terminated; GetModuleHandleW does not take a reference.
    let module = unsafe { GetModuleHandleW(ntdll.as_ptr()) };
    if module.is_null() {
        return false;
    }
    // SAFETY: `module` is ntdll's handle, loaded for the life of the process; the name is a
    // NUL-terminated ANSI string.
    unsafe { GetProcAddress(module, b"wine_get_version\0".as_ptr()) }.is_some()
}

/// The application id WFP uses for the program at `path`, as `FwpmGetAppIdFromFileName0`
/// returns it (the NT device path, lower case, with 8.3 names, mapped drives and links
/// resolved by the OS).
///
/// # Errors
/// The Win32 error the call returned. The call opens the file, so a program that is not
/// installed yet fails (`ERROR_FILE_NOT_FOUND`, `ERROR_PATH_NOT_FOUND`); the caller then uses
/// its own conversion ([`crate::paths::to_nt_path`]), which gives the same id for a program
/// later installed at that path unless the path goes through a link or junction.
pub fn app_id_of(path: &str) -> Result<String, u32> {
    use windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform::{
        FwpmFreeMemory0, FwpmGetAppIdFromFileName0, FWP_BYTE_BLOB,
    };
    // Only an existing file has an id; and Wine's fwpuclnt exports the call as a stub that
    // aborts the process, so under Wine the caller's own conversion is used.
    if under_wine() {
        return Err(ERROR_CALL_NOT_IMPLEMENTED);
    }
    if !std::path::Path::new(path).is_file() {
        return Err(ERROR_FILE_NOT_FOUND_CODE);
    }
    let name = wide(path);
    let mut blob: *mut FWP_BYTE_BLOB = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated and outlives the call; `blob` is a valid out pointer
    // that the call sets to memory it allocated (freed below with FwpmFreeMemory0).
    let rc = unsafe { FwpmGetAppIdFromFileName0(name.as_ptr(), &mut blob) };
    if rc != 0 {
        return Err(rc);
    }
    if blob.is_null() {
        return Err(u32::MAX);
    }
    // SAFETY: on success `blob` points to an FWP_BYTE_BLOB whose `data` holds `size` bytes
    // (a NUL-terminated UTF-16 string), valid until FwpmFreeMemory0.
    let units: Vec<u16> = unsafe {
        let b = &*blob;
        let n = (b.size as usize) / 2;
        if b.data.is_null() || n == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(b.data.cast::<u16>(), n).to_vec()
        }
    };
    let mut p = blob.cast::<core::ffi::c_void>();
    // SAFETY: `p` is the pointer FwpmGetAppIdFromFileName0 returned, freed exactly once.
    unsafe { FwpmFreeMemory0(&mut p) };
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    Ok(String::from_utf16_lossy(units.get(..end).unwrap_or(&[])))
}

/// `HKEY_LOCAL_MACHINE\<subkey>` value `value`: its registry type and raw data; `None` when
/// the key or the value does not exist.
pub fn read_hklm_value(subkey: &str, value: &str) -> Result<Option<(u32, Vec<u8>)>, ClientError> {
    use windows_sys::Win32::Foundation::{ERROR_MORE_DATA, ERROR_SUCCESS};
    use windows_sys::Win32::System::Registry::{RegGetValueW, HKEY_LOCAL_MACHINE, RRF_NOEXPAND, RRF_RT_ANY};
    let (subkey, value) = (wide(subkey), wide(value));
    let mut data: Vec<u8> = Vec::new();
    // The value may grow between the size query and the read: retry a few times.
    for _ in 0..4 {
        let mut kind = 0u32;
        let mut len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let ptr = if data.is_empty() { std::ptr::null_mut() } else { data.as_mut_ptr().cast() };
        // SAFETY: `subkey` and `value` are NUL-terminated UTF-16 strings alive for the call;
        // `ptr` is null (size query) or `data`, writable for `len` bytes; `kind` and `len` are
        // valid out pointers.
        let rc = unsafe { RegGetValueW(HKEY_LOCAL_MACHINE, subkey.as_ptr(), value.as_ptr(), RRF_RT_ANY | RRF_NOEXPAND, &mut kind, ptr, &mut len) };
        match rc {
            ERROR_SUCCESS if !data.is_empty() || len == 0 => {
                data.truncate(len as usize);
                return Ok(Some((kind, data)));
            }
            ERROR_SUCCESS | ERROR_MORE_DATA => data.resize(len as usize, 0),
            ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND => return Ok(None),
            code => return Err(ClientError::Os { call: "RegGetValueW", code }),
        }
    }
    Err(ClientError::Os { call: "RegGetValueW", code: ERROR_MORE_DATA })
}

/// Writes `HKEY_LOCAL_MACHINE\<subkey>` value `value` as REG_MULTI_SZ `data` (creating the key
/// if needed), or deletes the value when `data` is `None` (absent already is fine). Needs an
/// elevated prompt (the service key admits SYSTEM and Administrators).
pub fn write_hklm_multi_sz(subkey: &str, value: &str, data: Option<&[u8]>) -> Result<(), ClientError> {
    use windows_sys::Win32::Foundation::ERROR_SUCCESS;
    use windows_sys::Win32::System::Registry::{RegDeleteKeyValueW, RegSetKeyValueW, HKEY_LOCAL_MACHINE, REG_MULTI_SZ};
    let (subkey, value) = (wide(subkey), wide(value));
    let (call, rc) = match data {
        Some(bytes) => {
            let len = u32::try_from(bytes.len()).map_err(|_| ClientError::Os { call: "RegSetKeyValueW", code: 87 })?;
            // SAFETY: NUL-terminated strings alive for the call; `bytes` readable for `len`.
            ("RegSetKeyValueW", unsafe {
                RegSetKeyValueW(HKEY_LOCAL_MACHINE, subkey.as_ptr(), value.as_ptr(), REG_MULTI_SZ, bytes.as_ptr().cast(), len)
            })
        }
        // SAFETY: NUL-terminated strings alive for the call.
        None => ("RegDeleteKeyValueW", unsafe { RegDeleteKeyValueW(HKEY_LOCAL_MACHINE, subkey.as_ptr(), value.as_ptr()) }),
    };
    match rc {
        ERROR_SUCCESS => Ok(()),
        ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND if data.is_none() => Ok(()),
        ERROR_ACCESS_DENIED => Err(ClientError::AccessDenied),
        code => Err(ClientError::Os { call, code }),
    }
}
