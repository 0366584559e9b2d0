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
//!     --- extension (written when the output buffer has room for 112 bytes) ---
//!     96     4  allow_entries         Parameters\FailClosedAllow entries in effect (0: none set, or refused)
//!    100     4  allow_bad             bad entries found in the value (the list is refused if > 0)
//!    104     4  allow_error           why the list was refused: 0 none; weir_failsafe::ListError::code
//!                                     (1 too large, 2 odd length, 3 too many, 16 + entry error);
//!                                     ALLOW_UNREADABLE (4): not REG_MULTI_SZ or a read failure (traced)
//!    108     4  allow_line            1-based line of the first bad entry (0: none, or a whole-value error)
//! ```
//!
//! Bytes 88..96 were `reserved` (zero) in the first drivers of ABI version 1;
//! zero there still reads as "open, no set", which is what those drivers did.
//!
//! The reply is [`POLICY_STATUS_SIZE`] (112) bytes when the output buffer
//! holds them, else its first [`POLICY_STATUS_BASE_SIZE`] (96) bytes with
//! `size` = 96 (what tools built before the extension ask for); a reply of
//! 96 bytes decodes with the extension fields zero. Below 96 bytes of
//! output: `STATUS_BUFFER_TOO_SMALL`, nothing written.

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

/// `allow_error`: the `FailClosedAllow` value is not REG_MULTI_SZ or could
/// not be read (the driver traced why).
pub const ALLOW_UNREADABLE: u32 = 4;

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
    /// `FailClosedAllow` entries in effect.
    pub allow_entries: u32,
    /// Bad entries in `FailClosedAllow`.
    pub allow_bad: u32,
    /// Why `FailClosedAllow` was refused (0: it was not).
    pub allow_error: u32,
    /// Line of the first bad entry (0: none).
    pub allow_line: u32,
}

/// Size of [`PolicyStatus`] (112).
pub const POLICY_STATUS_SIZE: usize = size_of::<PolicyStatus>();

/// Size of the reply before the allow-list extension (96).
pub const POLICY_STATUS_BASE_SIZE: usize = 96;

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
    /// `out`: 112 bytes if they fit, else the first 96; `None`, nothing
    /// written, below 96.
    pub fn encode_into(&self, out: &mut [u8]) -> Option<usize> {
        let size = if out.len() >= POLICY_STATUS_SIZE { POLICY_STATUS_SIZE } else { POLICY_STATUS_BASE_SIZE };
        let out = out.get_mut(..size)?;
        put(out, offset_of!(Self, size), &(size as u32).to_le_bytes())?;
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
        if size == POLICY_STATUS_SIZE {
            put(out, offset_of!(Self, allow_entries), &self.allow_entries.to_le_bytes())?;
            put(out, offset_of!(Self, allow_bad), &self.allow_bad.to_le_bytes())?;
            put(out, offset_of!(Self, allow_error), &self.allow_error.to_le_bytes())?;
            put(out, offset_of!(Self, allow_line), &self.allow_line.to_le_bytes())?;
        }
        Some(size)
    }

    /// Parses a reply of this ABI version.
    pub fn decode(b: &[u8]) -> Result<Self, PolicyStatusError> {
        let (Some(size), Some(abi)) = (u32_at(b, 0), u32_at(b, 4)) else { return Err(PolicyStatusError::TooShort) };
        if abi != POLICY_STATUS_ABI_VERSION || !matches!(size as usize, POLICY_STATUS_BASE_SIZE | POLICY_STATUS_SIZE) {
            return Err(PolicyStatusError::AbiVersion { found: abi });
        }
        if b.len() < size as usize {
            return Err(PolicyStatusError::TooShort);
        }
        let extension = |field: usize| if size as usize == POLICY_STATUS_SIZE { u32_at(b, field) } else { Some(0) };
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
            allow_entries: extension(offset_of!(Self, allow_entries)).ok_or(short)?,
            allow_bad: extension(offset_of!(Self, allow_bad)).ok_or(short)?,
            allow_error: extension(offset_of!(Self, allow_error)).ok_or(short)?,
            allow_line: extension(offset_of!(Self, allow_line)).ok_or(short)?,
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
        assert_eq!(size_of::<PolicyStatus>(), 112);
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
        assert_eq!(offset_of!(PolicyStatus, allow_entries), 96);
        assert_eq!(offset_of!(PolicyStatus, allow_bad), 100);
        assert_eq!(offset_of!(PolicyStatus, allow_error), 104);
        assert_eq!(offset_of!(PolicyStatus, allow_line), 108);
    }

    #[test]
    fn the_extension_is_written_when_it_fits_and_read_as_zero_when_absent() {
        let s = PolicyStatus { fail_mode: FAIL_MODE_CLOSED, allow_entries: 3, allow_bad: 2, allow_error: 22, allow_line: 5, ..Default::default() };
        let mut b = [0xEEu8; 120];
        assert_eq!(s.encode_into(&mut b), Some(112));
        assert_eq!(&b[0..4], &112u32.to_le_bytes());
        assert_eq!(&b[96..112], &[3, 0, 0, 0, 2, 0, 0, 0, 22, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(b[112..], [0xEE; 8]);
        assert_eq!(PolicyStatus::decode(&b).unwrap(), PolicyStatus { size: 112, abi_version: 1, ..s });
        // A 112-byte reply cut short is refused, not read as a 96-byte one.
        assert_eq!(PolicyStatus::decode(&b[..100]), Err(PolicyStatusError::TooShort));
        // A tool that asks for 96 bytes gets them, extension left out.
        let mut old = [0xEEu8; 111];
        assert_eq!(s.encode_into(&mut old), Some(96));
        assert_eq!(&old[0..4], &96u32.to_le_bytes());
        assert_eq!(old[96..], [0xEE; 15]);
        let got = PolicyStatus::decode(&old).unwrap();
        assert_eq!((got.size, got.fail_mode, got.allow_entries, got.allow_bad), (96, FAIL_MODE_CLOSED, 0, 0));
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
