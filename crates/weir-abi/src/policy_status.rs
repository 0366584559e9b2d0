//! Reply of `IOCTL_WEIR_GET_POLICY_STATUS`: which policy is active, where it
//! came from, and what happened to the stored policy the last time the driver
//! read it. A reply of its own (not a stats field) so that tools built for
//! stats ABI v2 keep working unchanged.
//!
//! ```text
//! offset  size  field
//!      0     4  size                  96
//!      4     4  abi_version           POLICY_STATUS_ABI_VERSION (1)
//!      8     8  generation            of the active policy (0: none ever set)
//!     16     4  source                SOURCE_*: none, stored, this run
//!     20     4  stored_status         NTSTATUS of the last stored-policy read (0: loaded)
//!     24     8  loaded_at             system time the active policy was loaded (100 ns since 1601 UTC; 0: none)
//!     32     8  stored_read_at        system time of the last stored-policy read (0: never)
//!     40    32  blob_sha256           SHA-256 of the active blob (zero when none)
//!     72     8  blob_len              bytes of the active blob
//!     80     4  rule_count            rules of the active policy
//!     84     4  stored_reads          stored-policy reads since the driver started
//!     88     4  fail_mode             FAIL_MODE_*: Parameters\FailMode as the driver read it at start
//!     92     4  fail_closed_set       1: Weir's persistent fail-closed set is in BFE (installed at the last
//!                                     start of filtering); 0: not (open, or its install failed)
//! ```
//!
//! Bytes 88..96 were `reserved` (zero) in the first drivers of ABI version 1;
//! zero there still reads as "open, no set", which is what those drivers did.
//!
//! Below 96 bytes of output: `STATUS_BUFFER_TOO_SMALL`, nothing written.

use crate::bytes::{put, u32_at, u64_at};
use core::mem::{offset_of, size_of};

/// ABI version of this reply.
pub const POLICY_STATUS_ABI_VERSION: u32 = 1;

/// No policy is active: Weir permits everything (monitor mode).
pub const SOURCE_NONE: u32 = 0;
/// The active policy was read from the stored policy file.
pub const SOURCE_STORED: u32 = 1;
/// The active policy was set by `SET_POLICY` for this run of the driver only.
pub const SOURCE_THIS_RUN: u32 = 2;

/// Weir fails open (`Parameters\FailMode` 0 or absent).
pub const FAIL_MODE_OPEN: u32 = 0;
/// Weir fails closed (`Parameters\FailMode` 1).
pub const FAIL_MODE_CLOSED: u32 = 1;

/// The reply.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyStatus {
    /// [`POLICY_STATUS_SIZE`].
    pub size: u32,
    /// [`POLICY_STATUS_ABI_VERSION`].
    pub abi_version: u32,
    /// Generation of the active policy.
    pub generation: u64,
    /// `SOURCE_*`.
    pub source: u32,
    /// NTSTATUS of the last stored-policy read: 0 when it was loaded; a
    /// refusal otherwise (`STATUS_OBJECT_NAME_NOT_FOUND` when there is none).
    /// Meaningful only when `stored_reads` > 0.
    pub stored_status: u32,
    /// When the active policy was loaded (system time, 100 ns since 1601 UTC).
    pub loaded_at: u64,
    /// When the stored policy was last read.
    pub stored_read_at: u64,
    /// SHA-256 of the active blob.
    pub blob_sha256: [u8; 32],
    /// Bytes of the active blob.
    pub blob_len: u64,
    /// Rules of the active policy.
    pub rule_count: u32,
    /// Stored-policy reads since the driver started (DriverEntry, reloads).
    pub stored_reads: u32,
    /// `FAIL_MODE_*`.
    pub fail_mode: u32,
    /// 1 when the persistent fail-closed set is installed.
    pub fail_closed_set: u32,
}

/// Size of [`PolicyStatus`] (96).
pub const POLICY_STATUS_SIZE: usize = size_of::<PolicyStatus>();

/// Why bytes are not a usable reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyStatusError {
    /// Shorter than the reply.
    TooShort,
    /// Another ABI version or size.
    AbiVersion { found: u32 },
}

impl core::fmt::Display for PolicyStatusError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort => write!(f, "policy status reply shorter than {POLICY_STATUS_SIZE} bytes"),
            Self::AbiVersion { found } => {
                write!(f, "policy status reply has ABI version {found}, this tool reads {POLICY_STATUS_ABI_VERSION}")
            }
        }
    }
}

impl PolicyStatus {
    /// Writes the reply (with `size` and `abi_version` set) at the start of
    /// `out`; `None`, nothing written, if it does not fit.
    pub fn encode_into(&self, out: &mut [u8]) -> Option<usize> {
        let out = out.get_mut(..POLICY_STATUS_SIZE)?;
        put(out, offset_of!(Self, size), &(POLICY_STATUS_SIZE as u32).to_le_bytes())?;
        put(out, offset_of!(Self, abi_version), &POLICY_STATUS_ABI_VERSION.to_le_bytes())?;
        put(out, offset_of!(Self, generation), &self.generation.to_le_bytes())?;
        put(out, offset_of!(Self, source), &self.source.to_le_bytes())?;
        put(out, offset_of!(Self, stored_status), &self.stored_status.to_le_bytes())?;
        put(out, offset_of!(Self, loaded_at), &self.loaded_at.to_le_bytes())?;
        put(out, offset_of!(Self, stored_read_at), &self.stored_read_at.to_le_bytes())?;
        put(out, offset_of!(Self, blob_sha256), &self.blob_sha256)?;
        put(out, offset_of!(Self, blob_len), &self.blob_len.to_le_bytes())?;
        put(out, offset_of!(Self, rule_count), &self.rule_count.to_le_bytes())?;
        put(out, offset_of!(Self, stored_reads), &self.stored_reads.to_le_bytes())?;
        put(out, offset_of!(Self, fail_mode), &self.fail_mode.to_le_bytes())?;
        put(out, offset_of!(Self, fail_closed_set), &self.fail_closed_set.to_le_bytes())?;
        Some(POLICY_STATUS_SIZE)
    }

    /// Parses a reply of this ABI version.
    pub fn decode(b: &[u8]) -> Result<Self, PolicyStatusError> {
        let (Some(size), Some(abi)) = (u32_at(b, 0), u32_at(b, 4)) else { return Err(PolicyStatusError::TooShort) };
        if abi != POLICY_STATUS_ABI_VERSION || size as usize != POLICY_STATUS_SIZE {
            return Err(PolicyStatusError::AbiVersion { found: abi });
        }
        let short = PolicyStatusError::TooShort;
        let digest = b.get(offset_of!(Self, blob_sha256)..offset_of!(Self, blob_sha256) + 32).ok_or(short)?;
        Ok(Self {
            size,
            abi_version: abi,
            generation: u64_at(b, offset_of!(Self, generation)).ok_or(short)?,
            source: u32_at(b, offset_of!(Self, source)).ok_or(short)?,
            stored_status: u32_at(b, offset_of!(Self, stored_status)).ok_or(short)?,
            loaded_at: u64_at(b, offset_of!(Self, loaded_at)).ok_or(short)?,
            stored_read_at: u64_at(b, offset_of!(Self, stored_read_at)).ok_or(short)?,
            blob_sha256: digest.try_into().map_err(|_| short)?,
            blob_len: u64_at(b, offset_of!(Self, blob_len)).ok_or(short)?,
            rule_count: u32_at(b, offset_of!(Self, rule_count)).ok_or(short)?,
            stored_reads: u32_at(b, offset_of!(Self, stored_reads)).ok_or(short)?,
            fail_mode: u32_at(b, offset_of!(Self, fail_mode)).ok_or(short)?,
            fail_closed_set: u32_at(b, offset_of!(Self, fail_closed_set)).ok_or(short)?,
        })
    }

    /// The source's name as tools print it: `none`, `stored`, `this-run`.
    pub const fn source_name(&self) -> &'static str {
        match self.source {
            SOURCE_STORED => "stored",
            SOURCE_THIS_RUN => "this-run",
            SOURCE_NONE => "none",
            _ => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::unwrap_used)]
    use super::*;
    use core::mem::align_of;
    use proptest::prelude::*;

    #[test]
    fn layout_is_pinned() {
        assert_eq!(size_of::<PolicyStatus>(), 96);
        assert_eq!(align_of::<PolicyStatus>(), 8);
        assert_eq!(offset_of!(PolicyStatus, size), 0);
        assert_eq!(offset_of!(PolicyStatus, abi_version), 4);
        assert_eq!(offset_of!(PolicyStatus, generation), 8);
        assert_eq!(offset_of!(PolicyStatus, source), 16);
        assert_eq!(offset_of!(PolicyStatus, stored_status), 20);
        assert_eq!(offset_of!(PolicyStatus, loaded_at), 24);
        assert_eq!(offset_of!(PolicyStatus, stored_read_at), 32);
        assert_eq!(offset_of!(PolicyStatus, blob_sha256), 40);
        assert_eq!(offset_of!(PolicyStatus, blob_len), 72);
        assert_eq!(offset_of!(PolicyStatus, rule_count), 80);
        assert_eq!(offset_of!(PolicyStatus, stored_reads), 84);
        assert_eq!(offset_of!(PolicyStatus, fail_mode), 88);
        assert_eq!(offset_of!(PolicyStatus, fail_closed_set), 92);
    }

    #[test]
    fn round_trip_with_fields_at_their_offsets() {
        let s = PolicyStatus {
            generation: 3,
            source: SOURCE_STORED,
            stored_status: 0xE057_3001,
            loaded_at: 133_000_000_000_000_000,
            stored_read_at: 5,
            blob_sha256: [0xAB; 32],
            blob_len: 640,
            rule_count: 9,
            stored_reads: 2,
            fail_mode: FAIL_MODE_CLOSED,
            fail_closed_set: 1,
            ..Default::default()
        };
        let mut b = [0xEEu8; 100];
        assert_eq!(s.encode_into(&mut b), Some(96));
        assert_eq!(b[96..], [0xEE; 4]);
        assert_eq!(&b[0..8], &[96, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&b[16..20], &1u32.to_le_bytes());
        assert_eq!(&b[20..24], &0xE057_3001u32.to_le_bytes());
        assert_eq!(&b[72..80], &640u64.to_le_bytes());
        assert_eq!(&b[88..96], &[1, 0, 0, 0, 1, 0, 0, 0]);
        let got = PolicyStatus::decode(&b).unwrap();
        assert_eq!(got, PolicyStatus { size: 96, abi_version: 1, ..s });
        assert_eq!(got.source_name(), "stored");
        let mut small = [0xEEu8; 95];
        assert_eq!(s.encode_into(&mut small), None);
        assert!(small.iter().all(|x| *x == 0xEE));
        assert_eq!(PolicyStatus::decode(&b[..95]), Err(PolicyStatusError::TooShort));
        b[4] = 2;
        assert_eq!(PolicyStatus::decode(&b), Err(PolicyStatusError::AbiVersion { found: 2 }));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = PolicyStatus::decode(&bytes);
        }
    }
}
