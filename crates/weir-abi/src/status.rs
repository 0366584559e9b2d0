//! NTSTATUS values the control device returns.
//!
//! Weir's own codes follow the NTSTATUS layout of `ntstatus.h` / MS-ERREF
//! §2.3: severity error (`0b11`), customer bit set, facility `0x057`, so
//! every Weir code is `0xE057_0000 | code`. Code ranges:
//!
//! | codes | meaning |
//! |---|---|
//! | `0x0001..=0x0FFF` | the policy blob was refused by the decoder; the code is `weir_policy::DecodeError::code()` |
//! | `0x1001..` | the policy decoded but could not be used (compile, size) |
//! | `0x2001..` | the caller speaks another ABI version |
//! | `0x3001..` | the stored policy file was refused before decoding (see `crate::stored`) |
//! | `0x4001..` | the event stream (`IOCTL_WEIR_READ_EVENTS`) |
//!
//! `RtlNtStatusToDosError` does not know customer codes, so user mode reads
//! the raw NTSTATUS (`NtDeviceIoControlFile`'s IO_STATUS_BLOCK) to see them.
//! The standard codes Weir also returns are listed here so clients need not
//! depend on a WDK header.

/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: u32 = 0x0000_0000;
/// `STATUS_BUFFER_OVERFLOW` (a warning: buffered output up to `Information`
/// bytes is still copied to the caller). Returned with a reply header whose
/// `size` is the size needed for the whole reply.
pub const STATUS_BUFFER_OVERFLOW: u32 = 0x8000_0005;
/// `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: u32 = 0xC000_000D;
/// `STATUS_INVALID_DEVICE_REQUEST`: unknown IOCTL code.
pub const STATUS_INVALID_DEVICE_REQUEST: u32 = 0xC000_0010;
/// `STATUS_BUFFER_TOO_SMALL`: the output buffer cannot hold even the reply
/// header; nothing was written.
pub const STATUS_BUFFER_TOO_SMALL: u32 = 0xC000_0023;
/// `STATUS_INSUFFICIENT_RESOURCES`: pool allocation failed; nothing changed.
pub const STATUS_INSUFFICIENT_RESOURCES: u32 = 0xC000_009A;

/// Weir's facility, `0x057`.
pub const FACILITY_WEIR: u32 = 0x057;
/// Severity error + customer bit + [`FACILITY_WEIR`].
pub const WEIR_STATUS_BASE: u32 = 0xE057_0000;

/// Largest decoder error code that maps one-to-one into a status.
pub const MAX_DECODE_CODE: u32 = 0x0FFF;

/// The policy blob decoded, but compiling it failed for a reason other than
/// memory (which is `STATUS_INSUFFICIENT_RESOURCES`).
pub const STATUS_WEIR_POLICY_COMPILE: u32 = WEIR_STATUS_BASE | 0x1001;
/// The policy blob is larger than the decoder's `MAX_BLOB_BYTES`; refused
/// before it is copied.
pub const STATUS_WEIR_POLICY_TOO_LARGE: u32 = WEIR_STATUS_BASE | 0x1002;
/// The decoder returned an error code outside `1..=MAX_DECODE_CODE`.
pub const STATUS_WEIR_POLICY_INVALID: u32 = WEIR_STATUS_BASE | 0x1003;
/// `IOCTL_WEIR_GET_STATS` with an output buffer of exactly the version-1
/// reply size (112 bytes): the caller is a tool built for stats ABI v1 and
/// would misread a v2 reply, so nothing is written.
pub const STATUS_WEIR_STATS_ABI_V1: u32 = WEIR_STATUS_BASE | 0x2001;

/// The stored policy file is shorter than its header, or than its header
/// says (a copy cut short).
pub const STATUS_WEIR_STORED_TRUNCATED: u32 = WEIR_STATUS_BASE | 0x3001;
/// The stored policy file is not one (magic), has an inconsistent header,
/// bytes after its payload, or a payload whose SHA-256 differs from its header's.
pub const STATUS_WEIR_STORED_CORRUPTED: u32 = WEIR_STATUS_BASE | 0x3002;
/// The stored policy file has a newer format version than this driver reads.
pub const STATUS_WEIR_STORED_NEWER_VERSION: u32 = WEIR_STATUS_BASE | 0x3003;
/// `IOCTL_WEIR_READ_EVENTS` from a handle that has not read before, while
/// every reader slot (`MAX_EVENT_READERS`) is held by other handles:
/// nothing is read and no slot is taken. A slot is freed when its handle is
/// closed (IRP_MJ_CLEANUP, or IRP_MJ_CLOSE).
pub const STATUS_WEIR_TOO_MANY_READERS: u32 = WEIR_STATUS_BASE | 0x4001;
/// Handles that can read the event stream at once, each with its own
/// cursor (the driver preallocates this many reader slots).
pub const MAX_EVENT_READERS: usize = 16;
/// `STATUS_OBJECT_NAME_NOT_FOUND`: there is no stored policy file.
pub const STATUS_OBJECT_NAME_NOT_FOUND: u32 = 0xC000_0034;
/// `STATUS_OBJECT_PATH_NOT_FOUND`: the stored policy's directory does not exist.
pub const STATUS_OBJECT_PATH_NOT_FOUND: u32 = 0xC000_003A;

/// The status for a policy decode error with stable code `code`
/// (`DecodeError::code()`, 1..): `0xE057_0000 | code`, or
/// [`STATUS_WEIR_POLICY_INVALID`] for a code outside `1..=0x0FFF`.
pub const fn policy_decode_status(code: u32) -> u32 {
    if code >= 1 && code <= MAX_DECODE_CODE {
        WEIR_STATUS_BASE | code
    } else {
        STATUS_WEIR_POLICY_INVALID
    }
}

/// The decode error code carried by a status from [`policy_decode_status`].
pub const fn decode_code_of(status: u32) -> Option<u32> {
    let code = status & 0xFFFF;
    if status & 0xFFFF_0000 == WEIR_STATUS_BASE && code >= 1 && code <= MAX_DECODE_CODE {
        Some(code)
    } else {
        None
    }
}

/// Whether `status` is one of Weir's own codes.
pub const fn is_weir_status(status: u32) -> bool {
    status & 0xFFFF_0000 == WEIR_STATUS_BASE
}

/// A short description of a status the control device returns, for tools.
/// Policy decode errors describe themselves through the policy crate
/// (`DecodeError` Display), so they are reported here generically.
pub const fn describe(status: u32) -> Option<&'static str> {
    Some(match status {
        STATUS_SUCCESS => "success",
        STATUS_BUFFER_OVERFLOW => "output buffer too small for the whole reply; the header holds the size needed",
        STATUS_INVALID_PARAMETER => "invalid parameter",
        STATUS_INVALID_DEVICE_REQUEST => "unknown request",
        STATUS_BUFFER_TOO_SMALL => "output buffer too small for the reply header",
        STATUS_INSUFFICIENT_RESOURCES => "out of kernel memory; nothing changed",
        STATUS_WEIR_POLICY_COMPILE => "the policy could not be compiled; nothing changed",
        STATUS_WEIR_POLICY_TOO_LARGE => "the policy blob is larger than the limit; nothing changed",
        STATUS_WEIR_POLICY_INVALID => "the policy blob is malformed; nothing changed",
        STATUS_WEIR_STATS_ABI_V1 => "this tool speaks stats ABI v1; the driver speaks v2 (update the tool)",
        STATUS_WEIR_STORED_TRUNCATED => "the stored policy file is truncated",
        STATUS_WEIR_STORED_CORRUPTED => "the stored policy file is corrupted (magic, header or SHA-256 checksum)",
        STATUS_WEIR_STORED_NEWER_VERSION => "the stored policy file has a newer format version than this driver reads",
        STATUS_WEIR_TOO_MANY_READERS => "16 handles are already reading events; close one (another `weirctl events`) and retry",
        STATUS_OBJECT_NAME_NOT_FOUND => "there is no stored policy file",
        STATUS_OBJECT_PATH_NOT_FOUND => "the stored policy directory does not exist",
        s if decode_code_of(s).is_some() => "the policy blob is malformed (decode error code in the low bits); nothing changed",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_weir_codes() {
        // Severity error (bits 31..30 = 0b11), customer bit 29, facility 0x057.
        for s in [STATUS_WEIR_POLICY_COMPILE, STATUS_WEIR_POLICY_TOO_LARGE, STATUS_WEIR_POLICY_INVALID, STATUS_WEIR_STATS_ABI_V1, policy_decode_status(1), STATUS_WEIR_STORED_TRUNCATED, STATUS_WEIR_STORED_CORRUPTED, STATUS_WEIR_STORED_NEWER_VERSION, STATUS_WEIR_TOO_MANY_READERS] {
            assert_eq!(s >> 30, 0b11);
            assert_eq!((s >> 29) & 1, 1);
            assert_eq!((s >> 16) & 0xFFF, FACILITY_WEIR);
            assert!(is_weir_status(s));
            assert!(describe(s).is_some());
        }
        assert!(!is_weir_status(STATUS_INVALID_PARAMETER));
    }

    #[test]
    fn decode_codes_round_trip_and_stay_in_their_range() {
        assert_eq!(policy_decode_status(7), 0xE057_0007);
        assert_eq!(decode_code_of(0xE057_0007), Some(7));
        assert_eq!(policy_decode_status(0), STATUS_WEIR_POLICY_INVALID);
        assert_eq!(policy_decode_status(0x1000), STATUS_WEIR_POLICY_INVALID);
        assert_eq!(decode_code_of(STATUS_WEIR_POLICY_COMPILE), None);
        assert_eq!(decode_code_of(STATUS_INVALID_PARAMETER), None);
        for code in 1..=MAX_DECODE_CODE {
            assert_eq!(decode_code_of(policy_decode_status(code)), Some(code));
        }
    }
}
