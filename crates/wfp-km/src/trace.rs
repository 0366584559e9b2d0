//! Kernel debugger output through `DbgPrintEx`.
//!
//! Messages are formatted into a fixed stack buffer (no allocation, no paged
//! memory, so usable up to DISPATCH_LEVEL) and printed as one `%s` argument,
//! so a `%` in the text cannot be misread as a format directive. Long
//! messages are truncated.
//!
//! Component `DPFLTR_IHVNETWORK_ID`. Errors print at `DPFLTR_ERROR_LEVEL`,
//! which is always shown; per-connection traces print at `DPFLTR_INFO_LEVEL`,
//! which is silent until enabled (`ed nt!Kd_IHVNETWORK_Mask 0xf`).
//!
//! Per-connection traces are formatted only while [`connection_traces`] is
//! on: a static flag read with one relaxed load, so classify (at up to
//! DISPATCH_LEVEL) calls nothing to decide. DriverEntry sets it at
//! PASSIVE_LEVEL from the service's `Parameters\TraceLevel` registry value
//! ([`load_trace_level`]); `DbgQueryDebugFilterState`, which has no documented
//! IRQL, is not used. `DbgPrintEx` itself may be called at DISPATCH_LEVEL
//! because the format is `%s` (no Unicode conversion) and the text lives in a
//! non-paged stack buffer, the two conditions its documentation sets.

use crate::status::NtStatus;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};
use wfp_km_sys::ntos::{DbgPrintEx, DPFLTR_ERROR_LEVEL, DPFLTR_IHVNETWORK_ID, DPFLTR_INFO_LEVEL};

/// Capacity of one message, including the newline and NUL.
pub const MESSAGE_CAPACITY: usize = 192;

/// A fixed-size, always NUL-terminated message buffer.
pub struct Message {
    buf: [u8; MESSAGE_CAPACITY],
    len: usize,
}

impl Default for Message {
    fn default() -> Self {
        Self { buf: [0; MESSAGE_CAPACITY], len: 0 }
    }
}

impl Message {
    /// Formats `args` followed by a newline, truncating to fit.
    pub fn format(args: fmt::Arguments<'_>) -> Self {
        let mut m = Self::default();
        let _ = m.write_fmt(args);
        let _ = m.write_str("\n");
        m
    }

    /// The text without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Pointer to the NUL-terminated text.
    pub fn as_ptr(&self) -> *const u8 {
        self.buf.as_ptr()
    }
}

impl Write for Message {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep one byte for the NUL; the buffer starts zeroed and only ever
        // grows, so the byte after `len` is always NUL.
        let room = MESSAGE_CAPACITY.saturating_sub(1).saturating_sub(self.len);
        let take = s.len().min(room);
        let src = s.as_bytes().get(..take).unwrap_or(&[]);
        if let Some(dst) = self.buf.get_mut(self.len..self.len.saturating_add(take)) {
            dst.copy_from_slice(src);
            self.len = self.len.saturating_add(take);
        }
        if take < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

fn print(level: u32, args: fmt::Arguments<'_>) -> Message {
    let message = Message::format(args);
    // SAFETY: "%s" with one NUL-terminated, non-paged (stack) string is a
    // valid DbgPrintEx call at IRQL <= DIRQL.
    unsafe {
        DbgPrintEx(DPFLTR_IHVNETWORK_ID, level, c"%s".as_ptr().cast(), message.as_ptr());
    }
    message
}

/// Prints at error level (always shown), and writes the same text as an
/// ETW `Error` event when a session enabled errors (`etw::set_error_sink`).
pub fn error(args: fmt::Arguments<'_>) {
    let message = print(DPFLTR_ERROR_LEVEL, args);
    let text = message.as_bytes();
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let text = text.strip_prefix(b"weir: ").unwrap_or(text);
    // The message was formatted from `str`s and cut at a byte count: keep
    // the longest valid UTF-8 prefix.
    let text = match core::str::from_utf8(text) {
        Ok(t) => t,
        Err(e) => core::str::from_utf8(text.get(..e.valid_up_to()).unwrap_or(&[])).unwrap_or(""),
    };
    crate::etw::error_event(text);
}

/// Prints `weir: <api> failed: NTSTATUS(0x...)` at error level: every failed
/// kernel or WFP call goes through here (or [`checked`]), in every phase.
pub fn failed(api: &str, status: NtStatus) {
    error(format_args!("weir: {api} failed: {status}"));
}

/// `NtStatus::check`, tracing a failure with the routine's name.
pub fn checked(api: &str, raw: i32) -> crate::Result<()> {
    NtStatus::check(raw).inspect_err(|status| failed(api, *status))
}

/// Whether per-connection (classify) traces are formatted at all.
static CONNECTION_TRACES: AtomicBool = AtomicBool::new(false);

/// `TraceLevel` from which per-connection traces are on: `DPFLTR_INFO_LEVEL`.
pub const CONNECTION_TRACE_LEVEL: u32 = DPFLTR_INFO_LEVEL;

/// Whether classify should format a trace per connection. Any IRQL.
pub fn connection_traces() -> bool {
    CONNECTION_TRACES.load(Ordering::Relaxed)
}

/// Turns per-connection traces on when `trace_level >= CONNECTION_TRACE_LEVEL`.
pub fn set_trace_level(trace_level: u32) {
    CONNECTION_TRACES.store(trace_level >= CONNECTION_TRACE_LEVEL, Ordering::Relaxed);
}

/// Prints at info level (silent by default).
pub fn info(args: fmt::Arguments<'_>) {
    let _ = print(DPFLTR_INFO_LEVEL, args);
}

/// Reads the DWORD `TraceLevel` under `<service key>\\Parameters`, the
/// value driver.inx writes. `None` when the key or value is missing or not a
/// REG_DWORD (each failure is traced). IRQL: PASSIVE_LEVEL (DriverEntry).
pub fn load_trace_level(service_key: &wfp_km_sys::UNICODE_STRING) -> Option<u32> {
    load_parameter_dword(service_key, crate::wstr!("TraceLevel"))
}

/// Reads the DWORD `value` under `<service key>\\Parameters`. `None` when
/// the key or value is missing or not a REG_DWORD (each failure is traced).
/// IRQL: PASSIVE_LEVEL (DriverEntry).
pub fn load_parameter_dword(service_key: &wfp_km_sys::UNICODE_STRING, value: crate::strings::WStr) -> Option<u32> {
    use core::ptr;
    use wfp_km_sys::ntos::{
        ZwClose, ZwOpenKey, ZwQueryValueKey, KEY_READ, KEY_VALUE_PARTIAL_INFORMATION_CLASS,
        OBJECT_ATTRIBUTES, OBJ_CASE_INSENSITIVE, OBJ_KERNEL_HANDLE, REG_DWORD,
    };
    const PARAMETERS: crate::strings::WStr = crate::wstr!("Parameters");

    let open = |root: wfp_km_sys::HANDLE, name: &wfp_km_sys::UNICODE_STRING, what: &str| {
        let attributes = OBJECT_ATTRIBUTES {
            Length: u32::try_from(core::mem::size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(0),
            RootDirectory: root,
            ObjectName: name,
            Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
            SecurityDescriptor: ptr::null(),
            SecurityQualityOfService: ptr::null(),
        };
        let mut handle: wfp_km_sys::HANDLE = ptr::null_mut();
        // SAFETY: `attributes` and the name it points to outlive the call;
        // `handle` is a valid out pointer; PASSIVE_LEVEL (DriverEntry).
        let status = unsafe { ZwOpenKey(&mut handle, KEY_READ, &attributes) };
        checked(what, status).ok().map(|()| handle)
    };
    let close = |handle: wfp_km_sys::HANDLE| {
        // SAFETY: a kernel handle opened above, closed once.
        let _ = checked("ZwClose", unsafe { ZwClose(handle) });
    };

    let service = open(ptr::null_mut(), service_key, "ZwOpenKey(service key)")?;
    let parameters_name = PARAMETERS.unicode_string();
    let parameters = open(service, &parameters_name, "ZwOpenKey(Parameters)");
    close(service);
    let parameters = parameters?;
    // KEY_VALUE_PARTIAL_INFORMATION: TitleIndex, Type, DataLength, Data[].
    #[repr(C, align(8))]
    struct Partial([u8; 24]);
    let mut info = Partial([0; 24]);
    let mut needed = 0u32;
    let name = value.unicode_string();
    // SAFETY: open key handle; `info` is a writable 24-byte buffer whose
    // length is passed; `needed` is a valid out pointer.
    let status = unsafe {
        ZwQueryValueKey(
            parameters,
            &name,
            KEY_VALUE_PARTIAL_INFORMATION_CLASS,
            info.0.as_mut_ptr().cast(),
            24,
            &mut needed,
        )
    };
    close(parameters);
    if status == crate::status::NtStatus::OBJECT_NAME_NOT_FOUND.raw() {
        // An absent value is a setting left at its default, not a failure.
        crate::trace::info(format_args!("weir: a Parameters value is absent; its default applies"));
        return None;
    }
    checked("ZwQueryValueKey(Parameters value)", status).ok()?;
    let u32_at = |o: usize| info.0.get(o..o + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    if u32_at(4)? != REG_DWORD || u32_at(8)? != 4 {
        error(format_args!("weir: a Parameters value is not a REG_DWORD; ignored"));
        return None;
    }
    u32_at(12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_level_gates_connection_traces() {
        set_trace_level(2);
        assert!(!connection_traces());
        set_trace_level(CONNECTION_TRACE_LEVEL);
        assert!(connection_traces());
        set_trace_level(0);
        assert!(!connection_traces());
    }

    #[test]
    fn short_messages_are_exact_and_terminated() {
        let m = Message::format(format_args!("weir: {} {}", 1, "x%s"));
        assert_eq!(m.as_bytes(), b"weir: 1 x%s\n");
        assert_eq!(m.buf[m.len], 0);
    }

    #[test]
    fn long_messages_truncate_and_stay_terminated() {
        let long = "a".repeat(1000);
        let m = Message::format(format_args!("{long}"));
        assert_eq!(m.len, MESSAGE_CAPACITY - 1);
        assert_eq!(m.buf[MESSAGE_CAPACITY - 1], 0);
    }
}
