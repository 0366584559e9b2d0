//! Authenticode PE image hashes and plain file hashes.

use std::path::Path;

use const_oid::ObjectIdentifier;
use digest::Digest;
use object::read::pe::{PeFile32, PeFile64};
use object::FileKind;

use crate::{Result, SignError};

/// A hash algorithm used in catalogs and Authenticode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlg {
    /// SHA-1 (catalog v1, and the "compat" members of v2 catalogs).
    Sha1,
    /// SHA-256 (catalog v2).
    Sha256,
}

impl HashAlg {
    /// The algorithm's object identifier.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => const_oid::db::rfc5912::ID_SHA_1,
            Self::Sha256 => const_oid::db::rfc5912::ID_SHA_256,
        }
    }

    /// The algorithm for an object identifier, if it is one of ours.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        if *oid == const_oid::db::rfc5912::ID_SHA_1 {
            Some(Self::Sha1)
        } else if *oid == const_oid::db::rfc5912::ID_SHA_256 {
            Some(Self::Sha256)
        } else {
            None
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// The algorithm whose digests are `len` bytes long.
    pub fn from_len(len: usize) -> Option<Self> {
        match len {
            20 => Some(Self::Sha1),
            32 => Some(Self::Sha256),
            _ => None,
        }
    }

    /// Lower-case name, e.g. `sha256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
        }
    }
}

impl std::fmt::Display for HashAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Hash of a byte string.
pub fn bytes_hash(data: &[u8], alg: HashAlg) -> Vec<u8> {
    match alg {
        HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
        HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
    }
}

/// Hash of a file's whole content (what catalogs record for flat files such
/// as the `.inf`).
pub fn file_hash(path: &Path, alg: HashAlg) -> Result<Vec<u8>> {
    let data = read(path)?;
    Ok(bytes_hash(&data, alg))
}

/// Whether `data` parses as a PE image (PE32 or PE32+).
pub fn is_pe(data: &[u8]) -> bool {
    matches!(FileKind::parse(data), Ok(FileKind::Pe32 | FileKind::Pe64))
}

/// Authenticode image hash of a PE image: the image minus its checksum
/// field, its security data directory entry and its attribute certificates
/// (signature). This is the hash a catalog records for a `.sys`.
pub fn pe_image_hash(data: &[u8], alg: HashAlg) -> Result<Vec<u8>> {
    match alg {
        HashAlg::Sha1 => pe_digest::<sha1::Sha1>(data),
        HashAlg::Sha256 => pe_digest::<sha2::Sha256>(data),
    }
}

/// [`pe_image_hash`] of a file.
pub fn pe_image_hash_file(path: &Path, alg: HashAlg) -> Result<Vec<u8>> {
    let data = read(path)?;
    pe_image_hash(&data, alg).map_err(|e| match e {
        SignError::Pe(m) => SignError::Pe(format!("{}: {m}", path.display())),
        other => other,
    })
}

fn pe_digest<D: Digest + digest::Update>(data: &[u8]) -> Result<Vec<u8>> {
    let mut hasher = D::new();
    let kind = FileKind::parse(data).map_err(|e| SignError::Pe(format!("not a PE image: {e}")))?;
    let outcome = match kind {
        FileKind::Pe32 => {
            let pe = PeFile32::parse(data)
                .map_err(|e| SignError::Pe(format!("invalid PE32 image: {e}")))?;
            authenticode::authenticode_digest(&pe, &mut hasher)
        }
        FileKind::Pe64 => {
            let pe = PeFile64::parse(data)
                .map_err(|e| SignError::Pe(format!("invalid PE32+ image: {e}")))?;
            authenticode::authenticode_digest(&pe, &mut hasher)
        }
        other => {
            return Err(SignError::Pe(format!(
                "not a PE image (file kind {other:?})"
            )))
        }
    };
    outcome.map_err(|_| {
        SignError::Pe("section or certificate table lies outside the file; cannot compute the Authenticode hash".into())
    })?;
    Ok(hasher.finalize().to_vec())
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| SignError::io(path, e))
}
