//! The stored policy: the file the driver reads at start and on
//! `IOCTL_WEIR_RELOAD_POLICY`, written by `weirctl policy load` and
//! `weirctl policy compile` (or copied there by a deployment tool).
//!
//! ```text
//! offset  size  field
//!      0     8  magic           "WEIRSTOR"
//!      8     4  format_version  STORED_FORMAT_VERSION (1)
//!     12     4  header_size     64 (the payload starts here)
//!     16     8  payload_len     bytes of the payload
//!     24    32  payload_sha256  SHA-256 of the payload (FIPS 180-4)
//!     56     8  reserved        zero
//!     64     n  payload         the policy wire blob, byte-identical to a SET_POLICY input
//! ```
//!
//! Little-endian. The file is exactly `64 + payload_len` bytes: a shorter
//! file is [`StoredError::Truncated`], a longer one [`StoredError::Corrupted`].
//! The checksum makes a torn or bit-flipped copy (a half-finished file copy by
//! a deployment tool, a damaged disk) a refusal instead of a different policy;
//! it is also the policy's identity: `weirctl status` prints the same SHA-256
//! that `Get-FileHash` / `sha256sum` print for the payload, so a rollout can be
//! confirmed by comparing one string.
//!
//! A newer `format_version` is refused ([`StoredError::NewerVersion`]), never
//! guessed at: an older driver keeps its current policy (or its failure mode)
//! until it is updated.

use crate::bytes::{put, u32_at, u64_at};
use core::mem::{offset_of, size_of};

/// First 8 bytes of every stored policy.
pub const STORED_MAGIC: [u8; 8] = *b"WEIRSTOR";
/// Format version this code writes and reads.
pub const STORED_FORMAT_VERSION: u32 = 1;

/// Header of the stored form.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredHeader {
    /// [`STORED_MAGIC`].
    pub magic: [u8; 8],
    /// [`STORED_FORMAT_VERSION`].
    pub format_version: u32,
    /// [`STORED_HEADER_SIZE`].
    pub header_size: u32,
    /// Bytes of the payload that follows the header.
    pub payload_len: u64,
    /// SHA-256 of the payload.
    pub payload_sha256: [u8; 32],
    /// Zero.
    pub reserved: u64,
}

/// Size of [`StoredHeader`] (64).
pub const STORED_HEADER_SIZE: usize = size_of::<StoredHeader>();

/// Why bytes are not a usable stored policy. Each maps to one of Weir's
/// NTSTATUS codes ([`StoredError::status`]), which the stats reply carries as
/// "stored policy refused: <status>".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredError {
    /// Shorter than the header, or than the header's `payload_len` says.
    Truncated { have: u64, need: u64 },
    /// Not a stored policy (magic), an inconsistent header, bytes after the
    /// payload, or a payload whose SHA-256 is not the header's.
    Corrupted(Corruption),
    /// Written by a newer Weir.
    NewerVersion { found: u32 },
    /// The payload is larger than the reader's limit.
    OverLimit { len: u64, limit: u64 },
}

/// Which check a corrupted stored policy failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// The first 8 bytes are not [`STORED_MAGIC`].
    Magic,
    /// `header_size` or `reserved` is not what this version writes.
    Header,
    /// Bytes follow the payload.
    TrailingBytes,
    /// The payload's SHA-256 differs from the header's.
    Checksum,
}

impl StoredError {
    /// The NTSTATUS this refusal is reported with.
    pub const fn status(&self) -> u32 {
        match self {
            Self::Truncated { .. } => crate::status::STATUS_WEIR_STORED_TRUNCATED,
            Self::Corrupted(_) => crate::status::STATUS_WEIR_STORED_CORRUPTED,
            Self::NewerVersion { .. } => crate::status::STATUS_WEIR_STORED_NEWER_VERSION,
            Self::OverLimit { .. } => crate::status::STATUS_WEIR_POLICY_TOO_LARGE,
        }
    }
}

impl core::fmt::Display for StoredError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { have, need } => write!(f, "stored policy truncated: {have} bytes, {need} needed"),
            Self::Corrupted(Corruption::Magic) => write!(f, "not a stored Weir policy (magic is not WEIRSTOR)"),
            Self::Corrupted(Corruption::Header) => write!(f, "stored policy header is inconsistent"),
            Self::Corrupted(Corruption::TrailingBytes) => write!(f, "stored policy has bytes after its payload"),
            Self::Corrupted(Corruption::Checksum) => write!(f, "stored policy checksum mismatch (SHA-256 of the payload differs)"),
            Self::NewerVersion { found } => {
                write!(f, "stored policy format version {found} is newer than this reader's {STORED_FORMAT_VERSION}")
            }
            Self::OverLimit { len, limit } => write!(f, "stored policy payload of {len} bytes exceeds the limit of {limit}"),
        }
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    hmac_sha256::Hash::hash(bytes)
}

impl StoredHeader {
    /// The header for `payload`.
    pub fn for_payload(payload: &[u8]) -> Self {
        Self {
            magic: STORED_MAGIC,
            format_version: STORED_FORMAT_VERSION,
            header_size: STORED_HEADER_SIZE as u32,
            payload_len: payload.len() as u64,
            payload_sha256: sha256(payload),
            reserved: 0,
        }
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; STORED_HEADER_SIZE] {
        let mut out = [0u8; STORED_HEADER_SIZE];
        // Every field fits the fixed-size array: the `put`s cannot fail.
        let _ = (|| {
            put(&mut out, offset_of!(Self, magic), &self.magic)?;
            put(&mut out, offset_of!(Self, format_version), &self.format_version.to_le_bytes())?;
            put(&mut out, offset_of!(Self, header_size), &self.header_size.to_le_bytes())?;
            put(&mut out, offset_of!(Self, payload_len), &self.payload_len.to_le_bytes())?;
            put(&mut out, offset_of!(Self, payload_sha256), &self.payload_sha256)?;
            put(&mut out, offset_of!(Self, reserved), &self.reserved.to_le_bytes())
        })();
        out
    }
}

/// Checks a whole stored file and returns its header and payload. Total: any
/// bytes give `Ok` or a [`StoredError`], never a panic. The checks run in the
/// order that names the most useful reason: size of the header, magic,
/// version, header fields, limit, length, checksum.
pub fn decode(file: &[u8], max_payload: usize) -> Result<(StoredHeader, &[u8]), StoredError> {
    let have = file.len() as u64;
    let truncated = StoredError::Truncated { have, need: STORED_HEADER_SIZE as u64 };
    let prefix = file.get(..file.len().min(8)).unwrap_or_default();
    if !STORED_MAGIC.starts_with(prefix) {
        return Err(StoredError::Corrupted(Corruption::Magic));
    }
    if file.len() < STORED_HEADER_SIZE {
        return Err(truncated);
    }
    let magic: [u8; 8] = file.get(..8).and_then(|b| b.try_into().ok()).ok_or(truncated)?;
    if magic != STORED_MAGIC {
        return Err(StoredError::Corrupted(Corruption::Magic));
    }
    let field32 = |o| u32_at(file, o).ok_or(truncated);
    let field64 = |o| u64_at(file, o).ok_or(truncated);
    let format_version = field32(offset_of!(StoredHeader, format_version))?;
    if format_version > STORED_FORMAT_VERSION {
        return Err(StoredError::NewerVersion { found: format_version });
    }
    let header_size = field32(offset_of!(StoredHeader, header_size))?;
    let payload_len = field64(offset_of!(StoredHeader, payload_len))?;
    let reserved = field64(offset_of!(StoredHeader, reserved))?;
    if format_version != STORED_FORMAT_VERSION || header_size as usize != STORED_HEADER_SIZE || reserved != 0 {
        return Err(StoredError::Corrupted(Corruption::Header));
    }
    if payload_len > max_payload as u64 {
        return Err(StoredError::OverLimit { len: payload_len, limit: max_payload as u64 });
    }
    let payload_sha256: [u8; 32] = file
        .get(offset_of!(StoredHeader, payload_sha256)..offset_of!(StoredHeader, payload_sha256) + 32)
        .and_then(|b| b.try_into().ok())
        .ok_or(truncated)?;
    let need = payload_len.saturating_add(STORED_HEADER_SIZE as u64);
    if have < need {
        return Err(StoredError::Truncated { have, need });
    }
    if have > need {
        return Err(StoredError::Corrupted(Corruption::TrailingBytes));
    }
    let payload = file.get(STORED_HEADER_SIZE..).ok_or(truncated)?;
    if sha256(payload) != payload_sha256 {
        return Err(StoredError::Corrupted(Corruption::Checksum));
    }
    let header = StoredHeader { magic, format_version, header_size, payload_len, payload_sha256, reserved };
    Ok((header, payload))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::unwrap_used)]
    extern crate std;
    use super::*;
    use core::mem::align_of;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn stored(payload: &[u8]) -> Vec<u8> {
        let mut v = StoredHeader::for_payload(payload).to_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn layout_is_pinned() {
        assert_eq!(size_of::<StoredHeader>(), 64);
        assert_eq!(align_of::<StoredHeader>(), 8);
        assert_eq!(offset_of!(StoredHeader, magic), 0);
        assert_eq!(offset_of!(StoredHeader, format_version), 8);
        assert_eq!(offset_of!(StoredHeader, header_size), 12);
        assert_eq!(offset_of!(StoredHeader, payload_len), 16);
        assert_eq!(offset_of!(StoredHeader, payload_sha256), 24);
        assert_eq!(offset_of!(StoredHeader, reserved), 56);
    }

    #[test]
    fn sha256_is_the_fips_one() {
        // FIPS 180-4 example "abc".
        let d = sha256(b"abc");
        assert_eq!(d[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(d[28..], [0xf2, 0x00, 0x15, 0xad]);
    }

    #[test]
    fn round_trip_and_fields_at_their_offsets() {
        let payload = b"WEIRPOL payload bytes";
        let file = stored(payload);
        assert_eq!(&file[..8], b"WEIRSTOR");
        assert_eq!(&file[8..12], &1u32.to_le_bytes());
        assert_eq!(&file[12..16], &64u32.to_le_bytes());
        assert_eq!(&file[16..24], &(payload.len() as u64).to_le_bytes());
        assert_eq!(&file[24..56], &sha256(payload));
        let (h, got) = decode(&file, 1 << 20).unwrap();
        assert_eq!(got, payload);
        assert_eq!(h, StoredHeader::for_payload(payload));
        // An empty payload is a valid stored form (the driver then refuses
        // the empty blob as a policy: clearing is not done by storing).
        assert_eq!(decode(&stored(b""), 10).unwrap().1, b"");
    }

    #[test]
    fn each_kind_of_damage_has_its_reason() {
        let payload = [7u8; 100];
        let good = stored(&payload);
        assert_eq!(decode(&good[..0], 1000), Err(StoredError::Truncated { have: 0, need: 64 }));
        assert_eq!(decode(&good[..40], 1000), Err(StoredError::Truncated { have: 40, need: 64 }));
        assert_eq!(decode(&good[..163], 1000), Err(StoredError::Truncated { have: 163, need: 164 }));
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(decode(&longer, 1000), Err(StoredError::Corrupted(Corruption::TrailingBytes)));
        let mut flipped = good.clone();
        flipped[100] ^= 1;
        assert_eq!(decode(&flipped, 1000), Err(StoredError::Corrupted(Corruption::Checksum)));
        let mut magic = good.clone();
        magic[0] = b'X';
        assert_eq!(decode(&magic, 1000), Err(StoredError::Corrupted(Corruption::Magic)));
        assert_eq!(decode(b"MZ\x90\x00", 1000), Err(StoredError::Corrupted(Corruption::Magic)));
        let mut newer = good.clone();
        newer[8] = 2;
        assert_eq!(decode(&newer, 1000), Err(StoredError::NewerVersion { found: 2 }));
        let mut header = good.clone();
        header[12] = 65;
        assert_eq!(decode(&header, 1000), Err(StoredError::Corrupted(Corruption::Header)));
        assert_eq!(decode(&good, 99), Err(StoredError::OverLimit { len: 100, limit: 99 }));
        // A header claiming more than any limit is refused before the length check.
        let mut huge = good.clone();
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(decode(&huge, 1000), Err(StoredError::OverLimit { len: u64::MAX, limit: 1000 }));
        for e in [
            StoredError::Truncated { have: 0, need: 64 },
            StoredError::Corrupted(Corruption::Checksum),
            StoredError::NewerVersion { found: 2 },
            StoredError::OverLimit { len: 2, limit: 1 },
        ] {
            assert!(crate::status::is_weir_status(e.status()));
            assert!(crate::status::describe(e.status()).is_some());
        }
    }

    proptest! {
        #[test]
        fn decode_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..300), max in 0usize..400) {
            let _ = decode(&bytes, max);
        }

        #[test]
        fn any_single_changed_byte_is_refused(payload in proptest::collection::vec(any::<u8>(), 0..200), at in any::<usize>(), xor in 1u8..=255) {
            let mut file = stored(&payload);
            let i = at % file.len();
            file[i] ^= xor;
            prop_assert!(decode(&file, 1000).is_err());
        }
    }
}
