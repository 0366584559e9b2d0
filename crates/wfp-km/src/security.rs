//! The control device's security: a DACL that lets only SYSTEM and the
//! Administrators group open it, checked by the I/O manager on every
//! `IRP_MJ_CREATE` before the driver sees the request.
//!
//! The descriptor is the one `IoCreateDeviceSecure` would build from the SDDL
//! string `D:P(A;;GA;;;SY)(A;;GA;;;BA)`. That routine lives in a static WDK
//! library (wdmsec.lib) the Linux build cannot link, so the same descriptor is
//! built with ntoskrnl exports (`RtlCreateSecurityDescriptor`, `RtlCreateAcl`,
//! `RtlAddAccessAllowedAce`, `RtlSetDaclSecurityDescriptor`) and applied with
//! `ObOpenObjectByPointer` + `ZwSetSecurityObject` (the object manager maps
//! `GENERIC_ALL` through the file object type's generic mapping and keeps its
//! own copy). `P` (protected) only stops inheritance from a parent, which
//! device objects do not have, so it is not set separately.
//!
//! Because the I/O manager checks the DACL with `SeAccessCheck`, the usual
//! token rules apply with no code of ours: a non-elevated administrator's
//! filtered token (Administrators deny-only), a restricted token (second check
//! against the restricting SIDs) and a low-integrity token (Administrators
//! deny-only, and no write-up) are refused. The caller must apply this before
//! the symbolic link exists, so no user-mode open can race the default
//! security.

use crate::device::ControlDevice;
use crate::status::Result;
use crate::trace;
use core::ptr;
use wfp_km_sys::ntos::{
    ObOpenObjectByPointer, RtlAddAccessAllowedAce, RtlCreateAcl, RtlCreateSecurityDescriptor,
    RtlSetDaclSecurityDescriptor, ZwClose, ZwSetSecurityObject, ACL_REVISION,
    DACL_SECURITY_INFORMATION, GENERIC_ALL, KERNEL_MODE, OBJ_KERNEL_HANDLE,
    SECURITY_DESCRIPTOR_REVISION, WRITE_DAC,
};

/// A SID with `N` subauthorities, laid out as `SID` (winnt.h).
#[repr(C, align(4))]
struct Sid<const N: usize> {
    revision: u8,
    sub_authority_count: u8,
    identifier_authority: [u8; 6],
    sub_authority: [u32; N],
}

/// `SECURITY_NT_AUTHORITY` (5), big-endian as in `SID_IDENTIFIER_AUTHORITY`.
const NT_AUTHORITY: [u8; 6] = [0, 0, 0, 0, 0, 5];

/// S-1-5-18, LocalSystem.
static SYSTEM: Sid<1> = Sid { revision: 1, sub_authority_count: 1, identifier_authority: NT_AUTHORITY, sub_authority: [18] };
/// S-1-5-32-544, BUILTIN\Administrators.
static ADMINISTRATORS: Sid<2> =
    Sid { revision: 1, sub_authority_count: 2, identifier_authority: NT_AUTHORITY, sub_authority: [32, 544] };

/// `sizeof(SECURITY_DESCRIPTOR)` on x64 (absolute form).
const SD_BYTES: usize = 40;
/// ACL header (8) + two ACCESS_ALLOWED_ACEs (8-byte header each, plus the
/// 12- and 16-byte SIDs).
const ACL_BYTES: usize = 8 + (8 + 12) + (8 + 16);

/// Descriptor and ACL side by side, 8-aligned (the descriptor holds pointers,
/// ACEs need 4-byte alignment). Lives on DriverEntry's stack: the object
/// manager copies it in `ZwSetSecurityObject`.
#[repr(C, align(8))]
struct Buffers {
    sd: [u8; SD_BYTES],
    acl: [u8; ACL_BYTES],
}

/// Gives `device` a DACL allowing `GENERIC_ALL` to SYSTEM and Administrators
/// only. IRQL: PASSIVE_LEVEL. Every failure is traced with the routine's name
/// and returned; the device keeps its previous security then, so the caller
/// must not create its symbolic link.
pub fn restrict_to_system_and_administrators(device: &ControlDevice) -> Result<()> {
    let mut b = Buffers { sd: [0; SD_BYTES], acl: [0; ACL_BYTES] };
    let sd = b.sd.as_mut_ptr().cast::<core::ffi::c_void>();
    let acl = b.acl.as_mut_ptr().cast::<core::ffi::c_void>();
    // Cannot truncate: ACL_BYTES is 52.
    #[allow(clippy::cast_possible_truncation)]
    let acl_len = ACL_BYTES as u32;
    // SAFETY: `sd` points to SD_BYTES writable, 8-aligned bytes, the size of
    // an absolute SECURITY_DESCRIPTOR on x64.
    trace::checked("RtlCreateSecurityDescriptor", unsafe {
        RtlCreateSecurityDescriptor(sd, SECURITY_DESCRIPTOR_REVISION)
    })?;
    // SAFETY: `acl` points to ACL_BYTES writable, 4-aligned bytes.
    trace::checked("RtlCreateAcl", unsafe { RtlCreateAcl(acl, acl_len, ACL_REVISION) })?;
    let sids: [*const core::ffi::c_void; 2] =
        [ptr::addr_of!(SYSTEM).cast(), ptr::addr_of!(ADMINISTRATORS).cast()];
    for sid in sids {
        // SAFETY: `acl` was initialised by RtlCreateAcl with room for both
        // ACEs; `sid` points to a valid, static SID.
        trace::checked("RtlAddAccessAllowedAce", unsafe {
            RtlAddAccessAllowedAce(acl, ACL_REVISION, GENERIC_ALL, sid)
        })?;
    }
    // SAFETY: initialised absolute descriptor; the ACL outlives every use of
    // the descriptor (both live in `b` until this function returns).
    trace::checked("RtlSetDaclSecurityDescriptor", unsafe {
        RtlSetDaclSecurityDescriptor(sd, 1, acl, 0)
    })?;
    let mut handle: wfp_km_sys::HANDLE = ptr::null_mut();
    // SAFETY: `device` is a live device object (ControlDevice invariant);
    // a kernel handle (OBJ_KERNEL_HANDLE) with KernelMode access, so no
    // access check and no user process can see it; `handle` is a valid out
    // pointer. The object type may be null (any type).
    trace::checked("ObOpenObjectByPointer", unsafe {
        ObOpenObjectByPointer(
            device.as_raw().cast_const().cast(),
            OBJ_KERNEL_HANDLE,
            ptr::null(),
            WRITE_DAC,
            ptr::null(),
            KERNEL_MODE,
            &mut handle,
        )
    })?;
    // SAFETY: open kernel handle with WRITE_DAC; `sd` is a valid absolute
    // descriptor whose DACL is present.
    let applied = trace::checked("ZwSetSecurityObject", unsafe {
        ZwSetSecurityObject(handle, DACL_SECURITY_INFORMATION, sd)
    });
    // The handle is consumed by ZwClose whatever it returns; a failure is
    // traced and not retried (a second close of the same value could close
    // an unrelated handle reusing it).
    // SAFETY: the kernel handle opened above, closed exactly once.
    let _ = trace::checked("ZwClose", unsafe { ZwClose(handle) });
    applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn sid_layouts_match_winnt() {
        assert_eq!(size_of::<Sid<1>>(), 12);
        assert_eq!(size_of::<Sid<2>>(), 16);
        assert_eq!(offset_of!(Sid<1>, identifier_authority), 2);
        assert_eq!(offset_of!(Sid<1>, sub_authority), 8);
        assert_eq!(ACL_BYTES, 52);
        assert_eq!(ACL_BYTES % 4, 0);
        assert_eq!(offset_of!(Buffers, acl), 40);
        assert_eq!(core::mem::align_of::<Buffers>(), 8);
    }
}
