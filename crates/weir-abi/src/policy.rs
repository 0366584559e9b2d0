//! Replies of `IOCTL_WEIR_SET_POLICY` and `IOCTL_WEIR_GET_POLICY`.
//!
//! The policy blob itself is the policy crate's wire format; this module only
//! frames it.
//!
//! `SET_POLICY` output ([`SetPolicyReply`], 24 bytes):
//!
//! ```text
//! 0  4  size         24
//! 4  4  abi_version  POLICY_ABI_VERSION (1)
//! 8  8  generation   generation of the policy now active
//! 16 4  rule_count   its rules (0 after a clear)
//! 20 4  set_count    its address sets
//! ```
//!
//! `GET_POLICY` output: a [`PolicyReplyHeader`] (24 bytes) followed by the
//! active blob, byte-identical to what `SET_POLICY` received (empty when no
//! policy is active). The header carries the generation, so a client knows
//! which policy the bytes are. When the buffer holds the header but not the
//! blob, only the header is written, with `STATUS_BUFFER_OVERFLOW`; its
//! `size` is the buffer size needed. Below 24 bytes: `STATUS_BUFFER_TOO_SMALL`,
//! nothing written.

use crate::bytes::{put, u32_at, u64_at};
use core::mem::{offset_of, size_of};

/// ABI version of both policy replies.
pub const POLICY_ABI_VERSION: u32 = 1;

/// Output of `IOCTL_WEIR_SET_POLICY`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetPolicyReply {
    /// [`SET_POLICY_REPLY_SIZE`].
    pub size: u32,
    /// [`POLICY_ABI_VERSION`].
    pub abi_version: u32,
    /// Generation of the policy now active (+1 per successful set, clears
    /// included).
    pub generation: u64,
    /// Rules of the policy now active.
    pub rule_count: u32,
    /// Address sets of the policy now active.
    pub set_count: u32,
}

/// Header of the `IOCTL_WEIR_GET_POLICY` output.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyReplyHeader {
    /// Header plus blob: the output size a complete reply needs.
    pub size: u32,
    /// [`POLICY_ABI_VERSION`].
    pub abi_version: u32,
    /// Generation of the policy whose blob follows (0: none ever set).
    pub generation: u64,
    /// Length of the blob that follows the header.
    pub blob_len: u32,
    /// Zero.
    pub reserved: u32,
}

/// Size of [`SetPolicyReply`] (24).
pub const SET_POLICY_REPLY_SIZE: usize = size_of::<SetPolicyReply>();
/// Size of [`PolicyReplyHeader`] (24).
pub const POLICY_REPLY_HEADER_SIZE: usize = size_of::<PolicyReplyHeader>();

impl SetPolicyReply {
    /// A reply for the policy now active.
    pub const fn new(generation: u64, rule_count: u32, set_count: u32) -> Self {
        Self { size: SET_POLICY_REPLY_SIZE as u32, abi_version: POLICY_ABI_VERSION, generation, rule_count, set_count }
    }

    /// Writes the reply at the start of `out`; `None` (nothing written) if it
    /// does not fit.
    pub fn encode_into(&self, out: &mut [u8]) -> Option<usize> {
        let out = out.get_mut(..SET_POLICY_REPLY_SIZE)?;
        put(out, offset_of!(Self, size), &self.size.to_le_bytes())?;
        put(out, offset_of!(Self, abi_version), &self.abi_version.to_le_bytes())?;
        put(out, offset_of!(Self, generation), &self.generation.to_le_bytes())?;
        put(out, offset_of!(Self, rule_count), &self.rule_count.to_le_bytes())?;
        put(out, offset_of!(Self, set_count), &self.set_count.to_le_bytes())?;
        Some(SET_POLICY_REPLY_SIZE)
    }

    /// Parses a reply; `None` unless it is one of this ABI version.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let r = Self {
            size: u32_at(b, offset_of!(Self, size))?,
            abi_version: u32_at(b, offset_of!(Self, abi_version))?,
            generation: u64_at(b, offset_of!(Self, generation))?,
            rule_count: u32_at(b, offset_of!(Self, rule_count))?,
            set_count: u32_at(b, offset_of!(Self, set_count))?,
        };
        (r.size as usize == SET_POLICY_REPLY_SIZE && r.abi_version == POLICY_ABI_VERSION && b.len() >= SET_POLICY_REPLY_SIZE)
            .then_some(r)
    }
}

/// What [`write_policy_reply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyWritten {
    /// Header and blob (`STATUS_SUCCESS`), this many bytes.
    Complete(usize),
    /// Header only (`STATUS_BUFFER_OVERFLOW`), this many bytes.
    HeaderOnly(usize),
    /// Not even the header fits (`STATUS_BUFFER_TOO_SMALL`); nothing written.
    TooSmall,
    /// The blob is too large for the `u32` size field; nothing written.
    Unrepresentable,
}

/// Writes the `GET_POLICY` reply for `blob` of `generation` into `out`.
pub fn write_policy_reply(out: &mut [u8], generation: u64, blob: &[u8]) -> PolicyWritten {
    if out.len() < POLICY_REPLY_HEADER_SIZE {
        return PolicyWritten::TooSmall;
    }
    let total = blob.len().checked_add(POLICY_REPLY_HEADER_SIZE);
    let (Some(total), Ok(blob_len)) = (total, u32::try_from(blob.len())) else {
        return PolicyWritten::Unrepresentable;
    };
    let Ok(size) = u32::try_from(total) else { return PolicyWritten::Unrepresentable };
    let header = PolicyReplyHeader { size, abi_version: POLICY_ABI_VERSION, generation, blob_len, reserved: 0 };
    let written = (|| {
        put(out, offset_of!(PolicyReplyHeader, size), &header.size.to_le_bytes())?;
        put(out, offset_of!(PolicyReplyHeader, abi_version), &header.abi_version.to_le_bytes())?;
        put(out, offset_of!(PolicyReplyHeader, generation), &header.generation.to_le_bytes())?;
        put(out, offset_of!(PolicyReplyHeader, blob_len), &header.blob_len.to_le_bytes())?;
        put(out, offset_of!(PolicyReplyHeader, reserved), &header.reserved.to_le_bytes())
    })();
    if written.is_none() {
        return PolicyWritten::TooSmall;
    }
    match out.get_mut(POLICY_REPLY_HEADER_SIZE..total) {
        Some(dst) => {
            dst.copy_from_slice(blob);
            PolicyWritten::Complete(total)
        }
        None => PolicyWritten::HeaderOnly(POLICY_REPLY_HEADER_SIZE),
    }
}

/// Why bytes are not a usable `GET_POLICY` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyReplyError {
    /// Shorter than the header.
    TooShort,
    /// Another ABI version.
    AbiVersion { found: u32 },
    /// `size` and `blob_len` disagree.
    Malformed,
    /// Header only: retry with `needed` bytes.
    Truncated { needed: u32, generation: u64 },
}

impl core::fmt::Display for PolicyReplyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort => write!(f, "policy reply shorter than its header"),
            Self::AbiVersion { found } => write!(f, "policy reply has ABI version {found}, this tool reads {POLICY_ABI_VERSION}"),
            Self::Malformed => write!(f, "policy reply header is inconsistent"),
            Self::Truncated { needed, .. } => write!(f, "policy reply cut short: {needed} bytes needed"),
        }
    }
}

/// Decodes a `GET_POLICY` reply into its header and the blob.
pub fn decode_policy_reply(b: &[u8]) -> Result<(PolicyReplyHeader, &[u8]), PolicyReplyError> {
    let (Some(size), Some(abi)) = (u32_at(b, 0), u32_at(b, 4)) else { return Err(PolicyReplyError::TooShort) };
    if abi != POLICY_ABI_VERSION {
        return Err(PolicyReplyError::AbiVersion { found: abi });
    }
    let header = PolicyReplyHeader {
        size,
        abi_version: abi,
        generation: u64_at(b, offset_of!(PolicyReplyHeader, generation)).ok_or(PolicyReplyError::TooShort)?,
        blob_len: u32_at(b, offset_of!(PolicyReplyHeader, blob_len)).ok_or(PolicyReplyError::TooShort)?,
        reserved: u32_at(b, offset_of!(PolicyReplyHeader, reserved)).ok_or(PolicyReplyError::TooShort)?,
    };
    if (header.blob_len as usize).checked_add(POLICY_REPLY_HEADER_SIZE) != Some(size as usize) {
        return Err(PolicyReplyError::Malformed);
    }
    let blob = b.get(POLICY_REPLY_HEADER_SIZE..size as usize).ok_or(PolicyReplyError::Truncated { needed: size, generation: header.generation })?;
    Ok((header, blob))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::unwrap_used)]
    extern crate std;
    use super::*;
    use core::mem::align_of;
    use proptest::prelude::*;
    use std::vec;

    #[test]
    fn layouts_are_pinned() {
        assert_eq!(size_of::<SetPolicyReply>(), 24);
        assert_eq!(align_of::<SetPolicyReply>(), 8);
        assert_eq!(offset_of!(SetPolicyReply, size), 0);
        assert_eq!(offset_of!(SetPolicyReply, abi_version), 4);
        assert_eq!(offset_of!(SetPolicyReply, generation), 8);
        assert_eq!(offset_of!(SetPolicyReply, rule_count), 16);
        assert_eq!(offset_of!(SetPolicyReply, set_count), 20);
        assert_eq!(size_of::<PolicyReplyHeader>(), 24);
        assert_eq!(align_of::<PolicyReplyHeader>(), 8);
        assert_eq!(offset_of!(PolicyReplyHeader, size), 0);
        assert_eq!(offset_of!(PolicyReplyHeader, abi_version), 4);
        assert_eq!(offset_of!(PolicyReplyHeader, generation), 8);
        assert_eq!(offset_of!(PolicyReplyHeader, blob_len), 16);
        assert_eq!(offset_of!(PolicyReplyHeader, reserved), 20);
    }

    #[test]
    fn set_reply_round_trip() {
        let r = SetPolicyReply::new(5, 10, 2);
        let mut b = [0u8; 24];
        assert_eq!(r.encode_into(&mut b), Some(24));
        assert_eq!(&b[8..16], &5u64.to_le_bytes());
        assert_eq!(SetPolicyReply::decode(&b), Some(r));
        assert_eq!(r.encode_into(&mut [0u8; 23]), None);
        b[4] = 2;
        assert_eq!(SetPolicyReply::decode(&b), None);
    }

    #[test]
    fn get_reply_complete_header_only_and_too_small() {
        let blob = b"WEIRPOL blob bytes";
        let mut b = vec![0xEEu8; 24 + blob.len()];
        assert_eq!(write_policy_reply(&mut b, 3, blob), PolicyWritten::Complete(24 + blob.len()));
        let (h, got) = decode_policy_reply(&b).unwrap();
        assert_eq!((h.generation, h.blob_len as usize, got), (3, blob.len(), &blob[..]));
        let mut short = vec![0xEEu8; 30];
        assert_eq!(write_policy_reply(&mut short, 3, blob), PolicyWritten::HeaderOnly(24));
        assert!(short[24..].iter().all(|x| *x == 0xEE));
        assert_eq!(decode_policy_reply(&short[..24]).unwrap_err(), PolicyReplyError::Truncated { needed: 42, generation: 3 });
        let mut tiny = [0xEEu8; 23];
        assert_eq!(write_policy_reply(&mut tiny, 3, blob), PolicyWritten::TooSmall);
        assert!(tiny.iter().all(|x| *x == 0xEE));
        // No policy: an empty blob.
        let mut e = [0u8; 24];
        assert_eq!(write_policy_reply(&mut e, 0, &[]), PolicyWritten::Complete(24));
        assert_eq!(decode_policy_reply(&e).unwrap().1.len(), 0);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode_policy_reply(&bytes);
            let _ = SetPolicyReply::decode(&bytes);
        }
    }
}
