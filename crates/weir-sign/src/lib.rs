//! Signing support for the Weir driver package, built on Linux.
//!
//! * [`TestCert`] / [`SigningCert`]: a self-signed RSA-3072 code-signing test
//!   certificate, or a user's own certificate and key (PEM files or PFX).
//! * [`hash`]: Authenticode PE image hashes and plain file hashes.
//! * [`CatalogBuilder`]: writes a security catalog (`.cat`), signed by us
//!   (PKCS#7 SignedData version 1) or unsigned for `osslsigncode sign`.
//! * [`Catalog`]: reads a catalog back and [`verify_members`] checks files
//!   against it.
//!
//! Order of operations for a driver package (as the WDK does it): sign the
//! `.sys`, then build the catalog from the signed `.sys` and the `.inf`, then
//! sign the catalog.

mod asn1;
mod catalog;
mod cert;
mod error;
pub mod hash;
mod signed_data;

pub use catalog::{
    verify_members, Catalog, CatalogBuilder, CatalogMember, CatalogVersion, MemberKind,
    MemberProblem, NameValue, VerifiedFile, VerifyReport, DEFAULT_OS_ATTR,
};
pub use cert::{CertSource, PemFiles, SigningCert, TestCert};
pub use error::SignError;
pub use hash::HashAlg;

/// Result type of this crate.
pub type Result<T, E = SignError> = std::result::Result<T, E>;
