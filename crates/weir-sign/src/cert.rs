//! Signing certificates: the generated test certificate, or a user's own
//! certificate and RSA key from PEM files or a PFX (PKCS#12) file.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use const_oid::db::rfc5280::ID_KP_CODE_SIGNING;
use const_oid::db::rfc5912::ID_CE_EXT_KEY_USAGE;
use const_oid::AssociatedOid;
use der::asn1::{SetOfVec, UtcTime, Utf8StringRef};
use der::pem::LineEnding;
use der::referenced::OwnedToRef;
use der::{Any, Decode, DecodePem, Encode, EncodePem};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::AsExtension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use crate::{Result, SignError};

/// Key size of generated test certificates.
pub const TEST_KEY_BITS: usize = 3072;

/// Smallest RSA key accepted for signing.
const MIN_KEY_BITS: usize = 2048;

/// The generated, self-signed test certificate.
///
/// Files in its directory: [`TestCert::CERT_PEM`], [`TestCert::KEY_PEM`]
/// (PKCS#8, unencrypted) and [`TestCert::CER`] (the DER certificate to import
/// into LocalMachine `Root` and `TrustedPublisher` on the test machine).
#[derive(Debug)]
pub struct TestCert;

impl TestCert {
    /// Certificate, PEM.
    pub const CERT_PEM: &'static str = "cert.pem";
    /// Private key, PKCS#8 PEM.
    pub const KEY_PEM: &'static str = "key.pem";
    /// Certificate, DER.
    pub const CER: &'static str = "weir-test.cer";
    /// Subject common name used by [`TestCert::load_or_create`].
    pub const DEFAULT_CN: &'static str = "Weir Test Signing (not trusted)";

    /// Generates a new self-signed RSA-3072 code-signing certificate
    /// (basicConstraints critical CA:FALSE, keyUsage critical
    /// digitalSignature, extendedKeyUsage codeSigning) valid from 2020-01-01
    /// to 2049-12-31, and writes the three files into `dir` (created if
    /// needed), replacing any there.
    pub fn create(dir: &Path, subject_cn: &str) -> Result<SigningCert> {
        let mut rng = rsa::rand_core::OsRng;
        let key = RsaPrivateKey::new(&mut rng, TEST_KEY_BITS)
            .map_err(|e| SignError::Key(format!("RSA key generation failed: {e}")))?;
        let mut serial = [0u8; 16];
        rsa::rand_core::RngCore::fill_bytes(&mut rng, &mut serial);
        Self::create_with_key(dir, subject_cn, key, serial)
    }

    /// Like [`TestCert::create`] with a given key and serial number (no
    /// randomness): the same inputs give the same certificate.
    pub fn create_with_key(
        dir: &Path,
        subject_cn: &str,
        key: RsaPrivateKey,
        serial: [u8; 16],
    ) -> Result<SigningCert> {
        let cert = build_test_certificate(subject_cn, &key, serial)?;
        fs::create_dir_all(dir).map_err(|e| SignError::io(dir, e))?;
        let cert_path = dir.join(Self::CERT_PEM);
        let key_path = dir.join(Self::KEY_PEM);
        let signing = SigningCert::new(
            cert,
            key,
            CertSource::PemFiles {
                cert: cert_path.clone(),
                key: key_path.clone(),
            },
        )?;
        write_file(&cert_path, signing.certificate_pem()?.as_bytes(), false)?;
        write_file(&key_path, signing.key_pem()?.as_bytes(), true)?;
        write_file(&dir.join(Self::CER), signing.certificate_der(), false)?;
        Ok(signing)
    }

    /// Loads the test certificate from `dir` if `cert.pem` and `key.pem`
    /// are there (rewriting a missing `weir-test.cer`), or creates one with
    /// [`TestCert::DEFAULT_CN`]. A certificate that is there but unusable is
    /// an error (it is not silently replaced).
    pub fn load_or_create(dir: &Path) -> Result<SigningCert> {
        let cert_path = dir.join(Self::CERT_PEM);
        let key_path = dir.join(Self::KEY_PEM);
        if cert_path.exists() || key_path.exists() {
            let signing = SigningCert::from_pem_files(&cert_path, &key_path)?;
            let cer = dir.join(Self::CER);
            if !cer.exists() {
                write_file(&cer, signing.certificate_der(), false)?;
            }
            Ok(signing)
        } else {
            Self::create(dir, Self::DEFAULT_CN)
        }
    }
}

/// Where a [`SigningCert`] came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertSource {
    /// PEM certificate and key files (usable by osslsigncode as they are).
    PemFiles {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
    },
    /// A PFX / PKCS#12 file.
    Pfx(PathBuf),
    /// Built in memory.
    Memory,
}

/// A code-signing certificate with its RSA private key, checked to belong
/// together and to allow code signing.
#[derive(Clone)]
pub struct SigningCert {
    cert: Certificate,
    cert_der: Vec<u8>,
    key: RsaPrivateKey,
    source: CertSource,
}

impl std::fmt::Debug for SigningCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCert")
            .field("subject", &self.subject())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl SigningCert {
    /// Checks and wraps a certificate and key.
    pub fn new(cert: Certificate, key: RsaPrivateKey, source: CertSource) -> Result<Self> {
        let cert_der = cert
            .to_der()
            .map_err(|e| SignError::Certificate(format!("cannot encode certificate: {e}")))?;
        let s = Self {
            cert,
            cert_der,
            key,
            source,
        };
        s.check()?;
        Ok(s)
    }

    /// Loads a certificate (PEM, or DER) and an RSA private key (PKCS#8 or
    /// PKCS#1 PEM, unencrypted). With several certificates in the file,
    /// the first is the signer.
    pub fn from_pem_files(cert_path: &Path, key_path: &Path) -> Result<Self> {
        let cert_bytes = crate::hash::read(cert_path)?;
        let cert = parse_certificate(&cert_bytes)
            .map_err(|m| SignError::Certificate(format!("{}: {m}", cert_path.display())))?;
        let key_bytes = crate::hash::read(key_path)?;
        let key = parse_private_key(&key_bytes)
            .map_err(|m| SignError::Key(format!("{}: {m}", key_path.display())))?;
        Self::new(
            cert,
            key,
            CertSource::PemFiles {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            },
        )
        .map_err(|e| {
            with_context(
                e,
                &format!("{} + {}", cert_path.display(), key_path.display()),
            )
        })
    }

    /// Loads the certificate and key from a PFX / PKCS#12 file. The
    /// certificate used is the one in the file's key chain whose public key
    /// matches the private key.
    pub fn from_pfx(path: &Path, password: &str) -> Result<Self> {
        let data = crate::hash::read(path)?;
        let store = p12_keystore::KeyStore::from_pkcs12(&data, password).map_err(|e| {
            SignError::Pfx(format!(
                "{}: cannot open (wrong password, damaged or unsupported file): {e}",
                path.display()
            ))
        })?;
        let (_, chain) = store.private_key_chain().ok_or_else(|| {
            SignError::Pfx(format!(
                "{}: holds no private key with a certificate",
                path.display()
            ))
        })?;
        let key = RsaPrivateKey::from_pkcs8_der(chain.key()).map_err(|e| {
            SignError::Key(format!(
                "{}: the key is not a usable RSA key: {e}",
                path.display()
            ))
        })?;
        let public = key.to_public_key();
        let mut first_err = None;
        for c in chain.chain() {
            let cert = match Certificate::from_der(c.as_der()) {
                Ok(cert) => cert,
                Err(e) => {
                    first_err.get_or_insert(SignError::Certificate(format!("cannot parse: {e}")));
                    continue;
                }
            };
            if cert_public_key(&cert).ok().as_ref() != Some(&public) {
                continue;
            }
            return Self::new(cert, key, CertSource::Pfx(path.to_path_buf()))
                .map_err(|e| with_context(e, &path.display().to_string()));
        }
        Err(with_context(
            first_err.unwrap_or_else(|| {
                SignError::Certificate("no certificate in the file matches its private key".into())
            }),
            &path.display().to_string(),
        ))
    }

    /// The certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The certificate, DER (the content of a `.cer`).
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificate, PEM.
    pub fn certificate_pem(&self) -> Result<String> {
        self.cert
            .to_pem(LineEnding::LF)
            .map_err(|e| SignError::Certificate(format!("cannot encode PEM: {e}")))
    }

    fn key_pem(&self) -> Result<String> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|z| z.to_string())
            .map_err(|e| SignError::Key(format!("cannot encode PKCS#8: {e}")))
    }

    /// The private key.
    pub fn private_key(&self) -> &RsaPrivateKey {
        &self.key
    }

    /// Where it came from.
    pub fn source(&self) -> &CertSource {
        &self.source
    }

    /// The subject, RFC 4514 style (e.g. `CN=Weir Test Signing`).
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// SHA-1 thumbprint of the certificate, upper-case hex (what Windows'
    /// certificate store shows and `signtool /sha1` takes).
    pub fn thumbprint_sha1(&self) -> String {
        hex::encode_upper(crate::hash::bytes_hash(
            &self.cert_der,
            crate::HashAlg::Sha1,
        ))
    }

    /// Writes the DER certificate (`.cer`) to `path`.
    pub fn write_cer(&self, path: &Path) -> Result<()> {
        write_file(path, &self.cert_der, false)
    }

    /// PEM certificate and key files for osslsigncode
    /// (`-certs CERT -key KEY`). For a certificate loaded from PEM files
    /// these are the original files; otherwise (PFX, memory) the PEMs are
    /// written into `scratch_dir` (the key with mode 0600 on Unix) and are
    /// deleted again when the returned [`PemFiles`] is dropped.
    pub fn pem_files(&self, scratch_dir: &Path) -> Result<PemFiles> {
        if let CertSource::PemFiles { cert, key } = &self.source {
            if cert.exists() && key.exists() {
                return Ok(PemFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    temporary: false,
                });
            }
        }
        fs::create_dir_all(scratch_dir).map_err(|e| SignError::io(scratch_dir, e))?;
        let cert = scratch_dir.join("weir-signing-cert.pem");
        let key = scratch_dir.join("weir-signing-key.pem");
        let files = PemFiles {
            cert,
            key,
            temporary: true,
        };
        write_file(&files.cert, self.certificate_pem()?.as_bytes(), false)?;
        write_file(&files.key, self.key_pem()?.as_bytes(), true)?;
        Ok(files)
    }

    fn check(&self) -> Result<()> {
        let tbs = &self.cert.tbs_certificate;
        let public = cert_public_key(&self.cert)?;
        if public != self.key.to_public_key() {
            return Err(SignError::Certificate(format!(
                "the private key does not belong to the certificate {}",
                tbs.subject
            )));
        }
        let bits = rsa::traits::PublicKeyParts::size(&public).saturating_mul(8);
        if bits < MIN_KEY_BITS {
            return Err(SignError::Key(format!(
                "RSA key of {bits} bits is too small (at least {MIN_KEY_BITS})"
            )));
        }
        let eku = tbs
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ID_CE_EXT_KEY_USAGE)
            .ok_or_else(|| {
                SignError::Certificate(format!(
                    "{} has no extendedKeyUsage extension; code signing needs extendedKeyUsage=codeSigning",
                    tbs.subject
                ))
            })?;
        let usages = ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).map_err(|e| {
            SignError::Certificate(format!("{}: unreadable extendedKeyUsage: {e}", tbs.subject))
        })?;
        if !usages.0.contains(&ID_KP_CODE_SIGNING) {
            return Err(SignError::Certificate(format!(
                "{} is not a code-signing certificate (extendedKeyUsage lacks codeSigning 1.3.6.1.5.5.7.3.3)",
                tbs.subject
            )));
        }
        Ok(())
    }
}

/// PEM files for osslsigncode; see [`SigningCert::pem_files`].
#[derive(Debug)]
pub struct PemFiles {
    /// Certificate PEM (`-certs`).
    pub cert: PathBuf,
    /// Private key PEM, PKCS#8 (`-key`).
    pub key: PathBuf,
    temporary: bool,
}

impl PemFiles {
    /// Whether the files are temporary copies deleted on drop.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }
}

impl Drop for PemFiles {
    fn drop(&mut self) {
        if self.temporary {
            let _ = fs::remove_file(&self.key);
            let _ = fs::remove_file(&self.cert);
        }
    }
}

fn with_context(e: SignError, ctx: &str) -> SignError {
    match e {
        SignError::Certificate(m) => SignError::Certificate(format!("{ctx}: {m}")),
        SignError::Key(m) => SignError::Key(format!("{ctx}: {m}")),
        other => other,
    }
}

fn cert_public_key(cert: &Certificate) -> Result<RsaPublicKey> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let der = spki
        .to_der()
        .map_err(|e| SignError::Certificate(format!("cannot encode public key: {e}")))?;
    let spki_ref = spki::SubjectPublicKeyInfoRef::from_der(&der)
        .map_err(|e| SignError::Certificate(format!("unreadable public key: {e}")))?;
    RsaPublicKey::try_from(spki_ref).map_err(|_| {
        SignError::Certificate(format!(
            "{}: only RSA keys are supported (key algorithm {})",
            cert.tbs_certificate.subject, spki.algorithm.oid
        ))
    })
}

fn parse_certificate(bytes: &[u8]) -> std::result::Result<Certificate, String> {
    if bytes.first() == Some(&0x30) {
        return Certificate::from_der(bytes)
            .map_err(|e| format!("not a valid DER certificate: {e}"));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "neither PEM text nor a DER certificate".to_string())?;
    let begin = "-----BEGIN CERTIFICATE-----";
    let start = text.find(begin).ok_or_else(|| {
        "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".to_string()
    })?;
    let rest = text.get(start..).unwrap_or_default();
    let end_marker = "-----END CERTIFICATE-----";
    let end = rest
        .find(end_marker)
        .and_then(|i| i.checked_add(end_marker.len()))
        .ok_or_else(|| "PEM certificate is not terminated".to_string())?;
    let block = rest.get(..end).unwrap_or_default();
    Certificate::from_pem(block.as_bytes()).map_err(|e| format!("invalid PEM certificate: {e}"))
}

fn parse_private_key(bytes: &[u8]) -> std::result::Result<RsaPrivateKey, String> {
    if bytes.first() == Some(&0x30) {
        return RsaPrivateKey::from_pkcs8_der(bytes)
            .or_else(|_| RsaPrivateKey::from_pkcs1_der(bytes))
            .map_err(|e| format!("not a valid DER RSA private key: {e}"));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|_| "neither PEM text nor a DER key".to_string())?;
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err("encrypted private keys are not supported; use a PFX with a password or an unencrypted PEM".into());
    }
    for (label, pkcs1) in [("PRIVATE KEY", false), ("RSA PRIVATE KEY", true)] {
        let begin = format!("-----BEGIN {label}-----");
        let end_marker = format!("-----END {label}-----");
        if let Some(start) = text.find(&begin) {
            let rest = text.get(start..).unwrap_or_default();
            let end = rest
                .find(&end_marker)
                .and_then(|i| i.checked_add(end_marker.len()))
                .ok_or_else(|| format!("PEM {label} is not terminated"))?;
            let block = rest.get(..end).unwrap_or_default();
            return if pkcs1 {
                RsaPrivateKey::from_pkcs1_pem(block)
                    .map_err(|e| format!("invalid RSA PRIVATE KEY: {e}"))
            } else {
                RsaPrivateKey::from_pkcs8_pem(block)
                    .map_err(|e| format!("invalid PRIVATE KEY (only RSA keys are supported): {e}"))
            };
        }
    }
    Err("no PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----) in the file".into())
}

/// An extension with the criticality we choose (the builder's own choice
/// for some extension types differs from what Windows' test certificates
/// use).
struct Ext<T> {
    inner: T,
    critical: bool,
}

impl<T: AssociatedOid> AssociatedOid for Ext<T> {
    const OID: const_oid::ObjectIdentifier = T::OID;
}

impl<T: Encode> Encode for Ext<T> {
    fn encoded_len(&self) -> der::Result<der::Length> {
        self.inner.encoded_len()
    }
    fn encode(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        self.inner.encode(writer)
    }
}

impl<T: AssociatedOid + Encode> AsExtension for Ext<T> {
    fn critical(&self, _: &Name, _: &[x509_cert::ext::Extension]) -> bool {
        self.critical
    }
}

fn build_test_certificate(
    subject_cn: &str,
    key: &RsaPrivateKey,
    serial: [u8; 16],
) -> Result<Certificate> {
    let cert_err = |e: &dyn std::fmt::Display| {
        SignError::Certificate(format!("cannot build test certificate: {e}"))
    };
    if subject_cn.trim().is_empty() {
        return Err(SignError::Certificate(
            "the subject common name is empty".into(),
        ));
    }
    let cn = Utf8StringRef::new(subject_cn).map_err(|e| cert_err(&e))?;
    let atv = AttributeTypeAndValue {
        oid: const_oid::db::rfc4519::CN,
        value: Any::encode_from(&cn).map_err(|e| cert_err(&e))?,
    };
    let rdn = RelativeDistinguishedName(SetOfVec::try_from(vec![atv]).map_err(|e| cert_err(&e))?);
    let subject: Name = RdnSequence(vec![rdn]);

    // A positive serial number without a leading zero byte.
    let mut serial = serial;
    if let Some(b) = serial.first_mut() {
        *b = (*b & 0x7f) | 0x40;
    }
    let serial = SerialNumber::new(&serial).map_err(|e| cert_err(&e))?;
    let validity = Validity {
        not_before: utc(1_577_836_800)?, // 2020-01-01T00:00:00Z
        not_after: utc(2_524_607_999)?,  // 2049-12-31T23:59:59Z
    };
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    let spki =
        SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).map_err(|e| cert_err(&e))?;
    let ski = SubjectKeyIdentifier::try_from(spki.owned_to_ref()).map_err(|e| cert_err(&e))?;
    let mut builder = CertificateBuilder::new(
        Profile::Manual { issuer: None },
        serial,
        validity,
        subject,
        spki,
        &signer,
    )
    .map_err(|e| cert_err(&e))?;
    builder
        .add_extension(&Ext {
            inner: BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
            critical: true,
        })
        .map_err(|e| cert_err(&e))?;
    builder
        .add_extension(&Ext {
            inner: KeyUsage(KeyUsages::DigitalSignature.into()),
            critical: true,
        })
        .map_err(|e| cert_err(&e))?;
    builder
        .add_extension(&Ext {
            inner: ExtendedKeyUsage(vec![ID_KP_CODE_SIGNING]),
            critical: false,
        })
        .map_err(|e| cert_err(&e))?;
    builder
        .add_extension(&Ext {
            inner: ski,
            critical: false,
        })
        .map_err(|e| cert_err(&e))?;
    builder
        .build::<rsa::pkcs1v15::Signature>()
        .map_err(|e| cert_err(&e))
}

fn utc(unix: u64) -> Result<Time> {
    UtcTime::from_unix_duration(Duration::from_secs(unix))
        .map(Time::UtcTime)
        .map_err(|e| SignError::Certificate(format!("bad time: {e}")))
}

fn write_file(path: &Path, data: &[u8], private: bool) -> Result<()> {
    use std::io::Write;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(|e| SignError::io(path, e))?;
    f.write_all(data).map_err(|e| SignError::io(path, e))
}
