//! The service's `Parameters` key: a value read whole, for settings that
//! are not a DWORD (`trace::load_parameter_dword` reads those).
//!
//! `ZwOpenKey` (service key, then `Parameters` under it), one
//! `ZwQueryValueKey` with `KeyValuePartialInformation` into a buffer sized
//! for the caller's limit, `ZwClose` of both handles. IRQL: PASSIVE_LEVEL
//! (the Zw registry routines' documented level).

extern crate alloc;

use crate::status::NtStatus;
use crate::strings::WStr;
use crate::trace;
use alloc::vec::Vec;
use core::ptr;
use wfp_km_sys::ntos::{
    ZwClose, ZwOpenKey, ZwQueryValueKey, KEY_READ, KEY_VALUE_PARTIAL_INFORMATION_CLASS, OBJECT_ATTRIBUTES,
    OBJ_CASE_INSENSITIVE, OBJ_KERNEL_HANDLE,
};
use wfp_km_sys::{HANDLE, UNICODE_STRING};

/// Why a value was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// The value (or the `Parameters` key) does not exist: the setting is
    /// left at its default. Not traced as an error.
    NotFound,
    /// The value has this registry type, not the one asked for.
    WrongType(u32),
    /// The value's data is longer than the caller's limit.
    TooLarge,
    /// A routine failed (traced with its name), or the buffer could not be
    /// allocated (`INSUFFICIENT_RESOURCES`).
    Status(NtStatus),
}

/// An open registry key.
///
/// # Invariants
/// `handle` came from a successful `ZwOpenKey` with `OBJ_KERNEL_HANDLE` and
/// is closed exactly once, in `drop`.
#[must_use = "dropping a Key closes it"]
pub struct Key {
    handle: HANDLE,
}

impl Key {
    /// `ZwOpenKey(KEY_READ)` of `name` (absolute, or relative to `root`).
    /// A subkey that does not exist is returned untraced
    /// (`OBJECT_NAME_NOT_FOUND`); other failures are traced. IRQL:
    /// PASSIVE_LEVEL.
    pub fn open(root: Option<&Key>, name: &UNICODE_STRING, what: &str) -> crate::Result<Self> {
        let attributes = OBJECT_ATTRIBUTES {
            Length: u32::try_from(core::mem::size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(0),
            RootDirectory: root.map_or(ptr::null_mut(), |k| k.handle),
            ObjectName: name,
            Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
            SecurityDescriptor: ptr::null(),
            SecurityQualityOfService: ptr::null(),
        };
        let mut handle: HANDLE = ptr::null_mut();
        // SAFETY: `attributes` and the name it points to outlive the call;
        // `root`'s handle is open (its invariant); `handle` is a valid out
        // pointer; PASSIVE_LEVEL (this function's contract).
        let status = unsafe { ZwOpenKey(&mut handle, KEY_READ, &attributes) };
        if status == NtStatus::OBJECT_NAME_NOT_FOUND.raw() && root.is_some() {
            // A service without a Parameters key: every setting at its default.
            return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
        }
        trace::checked(what, status)?;
        // INVARIANT: ZwOpenKey succeeded with OBJ_KERNEL_HANDLE.
        Ok(Self { handle })
    }

    /// `ZwQueryValueKey(KeyValuePartialInformation)` into `info`: the raw
    /// status and the size the whole answer needs. IRQL: PASSIVE_LEVEL.
    pub fn query_partial(&self, value: WStr, info: &mut [u8]) -> (NtStatus, u32) {
        let name = value.unicode_string();
        let mut needed = 0u32;
        let len = u32::try_from(info.len()).unwrap_or(u32::MAX);
        // SAFETY: open key handle (invariant); `info` is writable for `len`
        // bytes (at most its length); `name` and `needed` are valid for the
        // call; PASSIVE_LEVEL.
        let status = unsafe {
            ZwQueryValueKey(self.handle, &name, KEY_VALUE_PARTIAL_INFORMATION_CLASS, info.as_mut_ptr().cast(), len, &mut needed)
        };
        (NtStatus(status), needed)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: invariant: a kernel handle opened by ZwOpenKey, closed once.
        let _ = trace::checked("ZwClose", unsafe { ZwClose(self.handle) });
    }
}

/// KEY_VALUE_PARTIAL_INFORMATION's header: TitleIndex, Type, DataLength.
const HEADER: usize = 12;

/// Reads `<service key>\Parameters\<value>` whole if it has registry type
/// `expected` and at most `max_len` bytes of data. IRQL: PASSIVE_LEVEL.
///
/// # Errors
/// See [`ValueError`]; every failed routine is traced.
pub fn read_parameter(service_key: &UNICODE_STRING, value: WStr, expected: u32, max_len: usize) -> Result<Vec<u8>, ValueError> {
    // Only an absent Parameters key means "not set"; the service key itself
    // exists whenever the driver runs, so its failure is a read failure.
    let service = Key::open(None, service_key, "ZwOpenKey(service key)").map_err(ValueError::Status)?;
    let name = crate::wstr!("Parameters").unicode_string();
    let key = match Key::open(Some(&service), &name, "ZwOpenKey(Parameters)") {
        Ok(k) => k,
        Err(s) if s == NtStatus::OBJECT_NAME_NOT_FOUND => return Err(ValueError::NotFound),
        Err(s) => return Err(ValueError::Status(s)),
    };
    drop(service);
    let size = max_len.saturating_add(HEADER);
    let mut info = Vec::new();
    if info.try_reserve_exact(size).is_err() {
        trace::failed("ExAllocatePool2(Parameters value)", NtStatus::INSUFFICIENT_RESOURCES);
        return Err(ValueError::Status(NtStatus::INSUFFICIENT_RESOURCES));
    }
    info.resize(size, 0u8);
    let (status, _needed) = key.query_partial(value, &mut info);
    drop(key);
    let data = decode_partial(status, &info, expected).inspect_err(|e| {
        if let ValueError::Status(s) = e {
            trace::failed("ZwQueryValueKey(Parameters value)", *s);
        }
    })?;
    // The data in place (no second buffer): cut the tail, then shift out the header.
    info.truncate(data.end);
    info.drain(..data.start);
    Ok(info)
}

/// Where the data of a KeyValuePartialInformation answer is in `info`,
/// checked (untraced: the caller traces).
fn decode_partial(status: NtStatus, info: &[u8], expected: u32) -> Result<core::ops::Range<usize>, ValueError> {
    if status == NtStatus::OBJECT_NAME_NOT_FOUND {
        return Err(ValueError::NotFound);
    }
    if status == NtStatus::BUFFER_OVERFLOW || status == NtStatus::BUFFER_TOO_SMALL {
        return Err(ValueError::TooLarge);
    }
    NtStatus::check(status.raw()).map_err(ValueError::Status)?;
    let u32_at = |o: usize| info.get(o..o + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let (Some(kind), Some(len)) = (u32_at(4), u32_at(8)) else {
        return Err(ValueError::Status(NtStatus::INVALID_BUFFER_SIZE));
    };
    if kind != expected {
        return Err(ValueError::WrongType(kind));
    }
    let end = usize::try_from(len).ok().and_then(|len| HEADER.checked_add(len)).filter(|end| *end <= info.len());
    end.map(|end| HEADER..end).ok_or(ValueError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(kind: u32, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn an_answer_is_checked_before_its_data_is_used() {
        let ok = answer(7, b"a\0b\0\0\0");
        assert_eq!(decode_partial(NtStatus::SUCCESS, &ok, 7).map(|r| ok[r].to_vec()), Ok(b"a\0b\0\0\0".to_vec()));
        assert_eq!(decode_partial(NtStatus::SUCCESS, &ok, 4), Err(ValueError::WrongType(7)));
        assert_eq!(decode_partial(NtStatus::OBJECT_NAME_NOT_FOUND, &[], 7), Err(ValueError::NotFound));
        assert_eq!(decode_partial(NtStatus::BUFFER_OVERFLOW, &ok, 7), Err(ValueError::TooLarge));
        assert_eq!(decode_partial(NtStatus::BUFFER_TOO_SMALL, &[], 7), Err(ValueError::TooLarge));
        assert_eq!(
            decode_partial(NtStatus::INSUFFICIENT_RESOURCES, &ok, 7),
            Err(ValueError::Status(NtStatus::INSUFFICIENT_RESOURCES))
        );
        // A length beyond what the buffer holds is never trusted.
        let mut lying = ok.clone();
        lying[8] = 200;
        assert_eq!(decode_partial(NtStatus::SUCCESS, &lying, 7), Err(ValueError::TooLarge));
        assert_eq!(decode_partial(NtStatus::SUCCESS, &ok[..6], 7), Err(ValueError::Status(NtStatus::INVALID_BUFFER_SIZE)));
    }
}
