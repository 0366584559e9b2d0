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
//! The descriptor also carries a mandatory label in its SACL, as the SDDL
//! `S:(ML;;NWNRNX;;;HI)` would: High integrity, no write-up, no read-up, no
//! execute-up. Without it the object would be Medium with no-write-up only,
//! so an elevated token lowered to Low integrity (Administrators still
//! enabled) could open it for reading and read the event stream and the
//! policy. `RtlAddMandatoryAce` is not documented for kernel mode, so the
//! ACE is written by hand into an ACL made by `RtlCreateAcl` (layout:
//! `ACE_HEADER` {type 0x11, flags, size}, mask, SID S-1-16-12288; layout
//! tests below), and the SACL pointer and `SE_SACL_PRESENT` go into the
//! absolute descriptor's own fields (`SECURITY_DESCRIPTOR`, winnt.h).
//! Setting a label needs `WRITE_OWNER` on the handle and
//! `LABEL_SECURITY_INFORMATION`.
//!
//! Because the I/O manager checks the descriptor with `SeAccessCheck`, the
//! usual token rules apply with no code of ours: a non-elevated
//! administrator's filtered token (Administrators deny-only), a restricted
//! token (second check against the restricting SIDs) and any token below
//! High integrity (the label) are refused. The caller must apply this before
//! the symbolic link exists, so no user-mode open can race the default
//! security.

use crate::device::ControlDevice;
use crate::status::Result;
use crate::trace;
use core::ptr;
use wfp_km_sys::ntos::{
    ObOpenObjectByPointer, RtlAddAccessAllowedAce, RtlCreateAcl, RtlCreateSecurityDescriptor,
    RtlSetDaclSecurityDescriptor, ZwClose, ZwSetSecurityObject, ACL_REVISION,
    DACL_SECURITY_INFORMATION, GENERIC_ALL, KERNEL_MODE, LABEL_SECURITY_INFORMATION, OBJ_KERNEL_HANDLE,
    SECURITY_DESCRIPTOR_REVISION, SECURITY_MANDATORY_HIGH_RID, SE_SACL_PRESENT, SYSTEM_MANDATORY_LABEL_ACE_TYPE,
    SYSTEM_MANDATORY_LABEL_NO_EXECUTE_UP, SYSTEM_MANDATORY_LABEL_NO_READ_UP, SYSTEM_MANDATORY_LABEL_NO_WRITE_UP,
    WRITE_DAC, WRITE_OWNER,
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

/// `SECURITY_MANDATORY_LABEL_AUTHORITY` (16).
const MANDATORY_LABEL_AUTHORITY: [u8; 6] = [0, 0, 0, 0, 0, 16];
/// S-1-16-12288, the High mandatory level.
const HIGH_INTEGRITY: Sid<1> =
    Sid { revision: 1, sub_authority_count: 1, identifier_authority: MANDATORY_LABEL_AUTHORITY, sub_authority: [SECURITY_MANDATORY_HIGH_RID] };

/// `SYSTEM_MANDATORY_LABEL_ACE` with its one-subauthority SID inline:
/// `ACE_HEADER` (type, flags, size), the policy mask, the label SID.
#[repr(C)]
struct MandatoryLabelAce {
    ace_type: u8,
    ace_flags: u8,
    ace_size: u16,
    mask: u32,
    sid: Sid<1>,
}

/// The label: High, no write-up, no read-up, no execute-up.
const LABEL: MandatoryLabelAce = MandatoryLabelAce {
    ace_type: SYSTEM_MANDATORY_LABEL_ACE_TYPE,
    ace_flags: 0,
    // Cannot truncate: 20 bytes (layout test).
    #[allow(clippy::cast_possible_truncation)]
    ace_size: core::mem::size_of::<MandatoryLabelAce>() as u16,
    mask: SYSTEM_MANDATORY_LABEL_NO_WRITE_UP | SYSTEM_MANDATORY_LABEL_NO_READ_UP | SYSTEM_MANDATORY_LABEL_NO_EXECUTE_UP,
    sid: HIGH_INTEGRITY,
};

impl MandatoryLabelAce {
    /// The ACE's bytes, little-endian, as `SYSTEM_MANDATORY_LABEL_ACE`.
    fn bytes(&self) -> [u8; LABEL_ACE_BYTES] {
        let mut b = [0u8; LABEL_ACE_BYTES];
        let fields: [(usize, &[u8]); 8] = [
            (0, &[self.ace_type]),
            (1, &[self.ace_flags]),
            (2, &self.ace_size.to_le_bytes()),
            (4, &self.mask.to_le_bytes()),
            (8, &[self.sid.revision]),
            (9, &[self.sid.sub_authority_count]),
            (10, &self.sid.identifier_authority),
            (16, &self.sid.sub_authority[0].to_le_bytes()),
        ];
        for (at, value) in fields {
            if let Some(dst) = b.get_mut(at..at + value.len()) {
                dst.copy_from_slice(value);
            }
        }
        b
    }
}

/// Bytes of the label ACE.
const LABEL_ACE_BYTES: usize = 20;
/// ACL header (8) + the label ACE.
const SACL_BYTES: usize = 8 + LABEL_ACE_BYTES;
/// `ACL::AceCount` (after AclRevision, Sbz1, AclSize).
const ACL_ACE_COUNT: usize = 4;
/// `SECURITY_DESCRIPTOR::Control` and `::Sacl` (absolute form, x64).
const SD_CONTROL: usize = 2;
const SD_SACL: usize = 24;

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
    sacl: [u8; SACL_BYTES],
}

/// Gives `device` a DACL allowing `GENERIC_ALL` to SYSTEM and Administrators
/// only, and the High mandatory label (no write-, read- or execute-up).
/// IRQL: PASSIVE_LEVEL. Every failure is traced with the routine's name
/// and returned; the device keeps its previous security then, so the caller
/// must not create its symbolic link.
pub fn restrict_to_system_and_administrators(device: &ControlDevice) -> Result<()> {
    let mut b = Buffers { sd: [0; SD_BYTES], acl: [0; ACL_BYTES], sacl: [0; SACL_BYTES] };
    let sd = b.sd.as_mut_ptr().cast::<core::ffi::c_void>();
    let acl = b.acl.as_mut_ptr().cast::<core::ffi::c_void>();
    let sacl = b.sacl.as_mut_ptr().cast::<core::ffi::c_void>();
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
    // The SACL: an empty ACL from RtlCreateAcl, then the label ACE and the
    // count written by hand, then the descriptor's Sacl field and
    // SE_SACL_PRESENT.
    // Cannot truncate: SACL_BYTES is 28.
    #[allow(clippy::cast_possible_truncation)]
    let sacl_len = SACL_BYTES as u32;
    // SAFETY: `sacl` points to SACL_BYTES writable, 4-aligned bytes (offset
    // 92 in an 8-aligned struct; layout test).
    trace::checked("RtlCreateAcl", unsafe { RtlCreateAcl(sacl, sacl_len, ACL_REVISION) })?;
    if let Some(ace) = b.sacl.get_mut(8..) {
        ace.copy_from_slice(&LABEL.bytes());
    }
    if let Some(count) = b.sacl.get_mut(ACL_ACE_COUNT..ACL_ACE_COUNT + 2) {
        count.copy_from_slice(&1u16.to_le_bytes());
    }
    let sacl_address = (b.sacl.as_ptr() as usize as u64).to_le_bytes();
    if let Some(field) = b.sd.get_mut(SD_SACL..SD_SACL + 8) {
        field.copy_from_slice(&sacl_address);
    }
    if let Some(control) = b.sd.get_mut(SD_CONTROL..SD_CONTROL + 2).and_then(|c| <&mut [u8; 2]>::try_from(c).ok()) {
        *control = (u16::from_le_bytes(*control) | SE_SACL_PRESENT).to_le_bytes();
    }
    // Derived again after the writes through `b.sd` above.
    let sd = b.sd.as_mut_ptr().cast::<core::ffi::c_void>();
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
            WRITE_DAC | WRITE_OWNER,
            ptr::null(),
            KERNEL_MODE,
            &mut handle,
        )
    })?;
    // SAFETY: open kernel handle with WRITE_DAC and WRITE_OWNER (the label);
    // `sd` is a valid absolute descriptor whose DACL and SACL are present and
    // live in `b` until this function returns.
    let applied = trace::checked("ZwSetSecurityObject", unsafe {
        ZwSetSecurityObject(handle, DACL_SECURITY_INFORMATION | LABEL_SECURITY_INFORMATION, sd)
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
        assert_eq!(offset_of!(Buffers, sacl), 92);
        assert_eq!(offset_of!(Buffers, sacl) % 4, 0);
        assert_eq!(core::mem::align_of::<Buffers>(), 8);
    }

    #[test]
    fn mandatory_label_ace_has_the_winnt_layout() {
        assert_eq!(size_of::<MandatoryLabelAce>(), LABEL_ACE_BYTES);
        assert_eq!(offset_of!(MandatoryLabelAce, ace_size), 2);
        assert_eq!(offset_of!(MandatoryLabelAce, mask), 4);
        assert_eq!(offset_of!(MandatoryLabelAce, sid), 8);
        // ML;;NWNRNX;;;HI: type 0x11, flags 0, size 20, mask 7, S-1-16-12288.
        assert_eq!(
            LABEL.bytes(),
            [0x11, 0, 20, 0, 7, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 16, 0x00, 0x30, 0, 0]
        );
        assert_eq!(SACL_BYTES, 28);
    }

    #[test]
    fn security_descriptor_fields_written_by_hand_are_the_x64_ones() {
        use windows_sys::Win32::Security::SECURITY_DESCRIPTOR;
        assert_eq!(size_of::<SECURITY_DESCRIPTOR>(), SD_BYTES);
        assert_eq!(offset_of!(SECURITY_DESCRIPTOR, Control), SD_CONTROL);
        assert_eq!(offset_of!(SECURITY_DESCRIPTOR, Sacl), SD_SACL);
        assert_eq!(offset_of!(windows_sys::Win32::Security::ACL, AceCount), ACL_ACE_COUNT);
    }
}
