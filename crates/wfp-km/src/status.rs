//! NTSTATUS as a Rust type.

use core::fmt;

/// An `NTSTATUS` value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct NtStatus(pub i32);

/// Result of a kernel call: `Err` carries the failing status.
pub type Result<T> = core::result::Result<T, NtStatus>;

// Values are bit patterns from ntstatus.h; the casts reinterpret u32 as i32.
#[allow(clippy::cast_possible_wrap)]
impl NtStatus {
    pub const SUCCESS: Self = Self(0);
    pub const PENDING: Self = Self(0x0000_0103);
    pub const DEVICE_BUSY: Self = Self(0x8000_0011_u32 as i32);
    pub const UNSUCCESSFUL: Self = Self(0xC000_0001_u32 as i32);
    pub const INVALID_PARAMETER: Self = Self(0xC000_000D_u32 as i32);
    pub const INVALID_DEVICE_REQUEST: Self = Self(0xC000_0010_u32 as i32);
    pub const ACCESS_DENIED: Self = Self(0xC000_0022_u32 as i32);
    pub const BUFFER_OVERFLOW: Self = Self(0x8000_0005_u32 as i32);
    pub const BUFFER_TOO_SMALL: Self = Self(0xC000_0023_u32 as i32);
    pub const INSUFFICIENT_RESOURCES: Self = Self(0xC000_009A_u32 as i32);
    pub const OBJECT_NAME_NOT_FOUND: Self = Self(0xC000_0034_u32 as i32);
    pub const OBJECT_PATH_NOT_FOUND: Self = Self(0xC000_003A_u32 as i32);
    pub const CANCELLED: Self = Self(0xC000_0120_u32 as i32);
    pub const INVALID_BUFFER_SIZE: Self = Self(0xC000_0206_u32 as i32);
    pub const NOT_SUPPORTED: Self = Self(0xC000_00BB_u32 as i32);
    pub const FWP_CALLOUT_NOT_FOUND: Self = Self(0xC022_0001_u32 as i32);
    pub const FWP_IN_USE: Self = Self(0xC022_000A_u32 as i32);
    pub const FWP_FILTER_NOT_FOUND: Self = Self(0xC022_0003_u32 as i32);
    pub const FWP_PROVIDER_NOT_FOUND: Self = Self(0xC022_0005_u32 as i32);
    pub const FWP_SUBLAYER_NOT_FOUND: Self = Self(0xC022_0007_u32 as i32);
    pub const FWP_NOT_FOUND: Self = Self(0xC022_0008_u32 as i32);
    pub const FWP_ALREADY_EXISTS: Self = Self(0xC022_0009_u32 as i32);

    /// From the `u32` bit pattern NTSTATUS values are written in
    /// (`0xE057_4001`).
    pub const fn from_u32(raw: u32) -> Self {
        Self(i32::from_ne_bytes(raw.to_ne_bytes()))
    }

    /// `NT_SUCCESS`: success and informational codes.
    pub const fn is_success(self) -> bool {
        self.0 >= 0
    }

    /// Converts a raw status into `Ok(())` or `Err(status)`.
    pub const fn check(raw: i32) -> Result<()> {
        let status = Self(raw);
        if status.is_success() {
            Ok(())
        } else {
            Err(status)
        }
    }

    /// The raw value, for returning from a kernel callback.
    pub const fn raw(self) -> i32 {
        self.0
    }
}

impl fmt::Debug for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // NTSTATUS is conventionally written as unsigned hex.
        #[allow(clippy::cast_sign_loss)]
        let bits = self.0 as u32;
        write!(f, "NTSTATUS({bits:#010x})")
    }
}

impl fmt::Display for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_and_informational_codes_pass_check() {
        assert_eq!(NtStatus::check(0), Ok(()));
        assert_eq!(NtStatus::check(0x0000_0103), Ok(())); // STATUS_PENDING
    }

    #[test]
    fn warnings_and_errors_fail_check() {
        assert_eq!(NtStatus::check(NtStatus::DEVICE_BUSY.raw()), Err(NtStatus::DEVICE_BUSY));
        assert_eq!(
            NtStatus::check(NtStatus::ACCESS_DENIED.raw()),
            Err(NtStatus::ACCESS_DENIED)
        );
    }

    #[test]
    fn debug_prints_unsigned_hex() {
        assert_eq!(format!("{:?}", NtStatus::ACCESS_DENIED), "NTSTATUS(0xc0000022)");
    }
}
