//! IOCTL codes of the control device.
//!
//! All are `METHOD_BUFFERED` on device type `0x8057` (vendor range, >=
//! 0x8000), built like the WDK's `CTL_CODE` macro:
//! `(DeviceType << 16) | (Access << 14) | (Function << 2) | Method`.
//!
//! | code | name | access | input | output |
//! |---|---|---|---|---|
//! | `0x80576004` | [`IOCTL_WEIR_GET_STATS`] | read | none | [`crate::stats`] reply v2 |
//! | `0x8057A008` | [`IOCTL_WEIR_SET_POLICY`] | write | policy blob (empty = clear) | [`crate::policy::SetPolicyReply`] |
//! | `0x8057600C` | [`IOCTL_WEIR_GET_POLICY`] | read | none | [`crate::policy::PolicyReplyHeader`] + the active blob |
//! | `0x80576010` | [`IOCTL_WEIR_READ_EVENTS`] | read | none | event records (pended when none) |
//! | `0x80576040` | [`IOCTL_WEIR_GET_POLICY_STATUS`] | read | none | [`crate::policy_status::PolicyStatus`] |
//! | `0x8057A044` | [`IOCTL_WEIR_RELOAD_POLICY`] | write | none | [`crate::policy::SetPolicyReply`] |

/// Device type of the control device (`FILE_DEVICE_*` vendor range).
pub const WEIR_DEVICE_TYPE: u32 = 0x8057;
/// `METHOD_BUFFERED`.
pub const METHOD_BUFFERED: u32 = 0;
/// `FILE_READ_ACCESS`: the handle must have been opened for reading.
pub const FILE_READ_ACCESS: u32 = 0x0001;
/// `FILE_WRITE_ACCESS`: the handle must have been opened for writing.
pub const FILE_WRITE_ACCESS: u32 = 0x0002;

/// `CTL_CODE` from the WDK (`devioctl.h`).
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// Statistics: per-layer counters, policy generation and per-rule hits.
pub const IOCTL_WEIR_GET_STATS: u32 = ctl_code(WEIR_DEVICE_TYPE, 0x801, METHOD_BUFFERED, FILE_READ_ACCESS);
/// Atomically replaces the active policy (input: wire blob; empty: clear).
pub const IOCTL_WEIR_SET_POLICY: u32 = ctl_code(WEIR_DEVICE_TYPE, 0x802, METHOD_BUFFERED, FILE_WRITE_ACCESS);
/// Returns the active policy blob, byte-identical to what was set.
pub const IOCTL_WEIR_GET_POLICY: u32 = ctl_code(WEIR_DEVICE_TYPE, 0x803, METHOD_BUFFERED, FILE_READ_ACCESS);
/// Reads whole event records; pended while there are none. Reserved here,
/// defined by the event stream.
pub const IOCTL_WEIR_READ_EVENTS: u32 = ctl_code(WEIR_DEVICE_TYPE, 0x804, METHOD_BUFFERED, FILE_READ_ACCESS);

/// Which policy is active, its source, hash and load time, and the result of
/// the last stored-policy read. Function 0x810: the stored-policy requests
/// sit apart from the event stream's range.
pub const IOCTL_WEIR_GET_POLICY_STATUS: u32 = ctl_code(WEIR_DEVICE_TYPE, 0x810, METHOD_BUFFERED, FILE_READ_ACCESS);
/// Reads the stored policy file again and, if it is accepted, makes it the
/// active policy (source "stored"). A refusal leaves the active policy as it
/// was and is reported in the status and in [`IOCTL_WEIR_GET_POLICY_STATUS`].
pub const IOCTL_WEIR_RELOAD_POLICY: u32 = ctl_code(WEIR_DEVICE_TYPE, 0x811, METHOD_BUFFERED, FILE_WRITE_ACCESS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_values() {
        assert_eq!(IOCTL_WEIR_GET_STATS, 0x8057_6004);
        assert_eq!(IOCTL_WEIR_SET_POLICY, 0x8057_A008);
        assert_eq!(IOCTL_WEIR_GET_POLICY, 0x8057_600C);
        assert_eq!(IOCTL_WEIR_READ_EVENTS, 0x8057_6010);
        assert_eq!(IOCTL_WEIR_GET_POLICY_STATUS, 0x8057_6040);
        assert_eq!(IOCTL_WEIR_RELOAD_POLICY, 0x8057_A044);
        for code in [IOCTL_WEIR_GET_STATS, IOCTL_WEIR_SET_POLICY, IOCTL_WEIR_GET_POLICY, IOCTL_WEIR_READ_EVENTS, IOCTL_WEIR_GET_POLICY_STATUS, IOCTL_WEIR_RELOAD_POLICY] {
            assert_eq!(code & 3, METHOD_BUFFERED);
            assert_eq!(code >> 16, WEIR_DEVICE_TYPE);
        }
    }
}
