//! Tests may unwrap, index and panic: a failing test is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::fs;

use der::{Decode, DecodePem, Encode};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use weir_sign::{CertSource, SignError, SigningCert, TestCert};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::Certificate;

use common::{test_cert, UNRELATED_KEY_PEM};

#[test]
fn test_cert_files_and_extensions() {
    let (cert, dir) = test_cert();
    let pem = fs::read(dir.join(TestCert::CERT_PEM)).unwrap();
    let parsed = Certificate::from_pem(&pem).unwrap();
    assert_eq!(parsed.to_der().unwrap(), cert.certificate_der());
    assert_eq!(
        fs::read(dir.join(TestCert::CER)).unwrap(),
        cert.certificate_der()
    );
    let key_pem = fs::read_to_string(dir.join(TestCert::KEY_PEM)).unwrap();
    assert!(
        key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 expected"
    );

    let tbs = &parsed.tbs_certificate;
    assert_eq!(tbs.issuer, tbs.subject, "self-signed");
    let pk = rsa::RsaPublicKey::try_from(
        spki::SubjectPublicKeyInfoRef::from_der(&tbs.subject_public_key_info.to_der().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rsa::traits::PublicKeyParts::size(&pk) * 8, 3072);
    let exts = tbs.extensions.as_ref().unwrap();
    let find = |oid| exts.iter().find(|e| e.extn_id == oid).unwrap();
    let bc = find(const_oid::db::rfc5912::ID_CE_BASIC_CONSTRAINTS);
    assert!(bc.critical);
    assert!(
        !BasicConstraints::from_der(bc.extn_value.as_bytes())
            .unwrap()
            .ca
    );
    let ku = find(const_oid::db::rfc5912::ID_CE_KEY_USAGE);
    assert!(ku.critical);
    let ku = KeyUsage::from_der(ku.extn_value.as_bytes()).unwrap();
    assert!(ku.0.contains(KeyUsages::DigitalSignature));
    assert_eq!(
        ku.0,
        x509_cert::der::flagset::FlagSet::from(KeyUsages::DigitalSignature),
        "digitalSignature only"
    );
    let eku = find(const_oid::db::rfc5912::ID_CE_EXT_KEY_USAGE);
    assert!(!eku.critical);
    let eku = ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).unwrap();
    assert_eq!(eku.0, vec![const_oid::db::rfc5280::ID_KP_CODE_SIGNING]);

    // load_or_create loads the same certificate again
    let again = TestCert::load_or_create(dir).unwrap();
    assert_eq!(again.certificate_der(), cert.certificate_der());
    assert_eq!(cert.thumbprint_sha1().len(), 40);
}

#[test]
fn create_with_key_is_deterministic_and_writes_files() {
    let (cert, _) = test_cert();
    let tmp = tempfile::tempdir().unwrap();
    let a = TestCert::create_with_key(
        &tmp.path().join("a"),
        "Weir CN, with comma",
        cert.private_key().clone(),
        [7; 16],
    )
    .unwrap();
    let b = TestCert::create_with_key(
        &tmp.path().join("b"),
        "Weir CN, with comma",
        cert.private_key().clone(),
        [7; 16],
    )
    .unwrap();
    assert_eq!(a.certificate_der(), b.certificate_der());
    assert!(a.subject().contains("Weir CN"));
    for f in [TestCert::CERT_PEM, TestCert::KEY_PEM, TestCert::CER] {
        assert!(tmp.path().join("a").join(f).is_file(), "{f}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(tmp.path().join("a").join(TestCert::KEY_PEM))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key must not be group/world readable");
    }
    let loaded = SigningCert::from_pem_files(
        &tmp.path().join("a/cert.pem"),
        &tmp.path().join("a/key.pem"),
    )
    .unwrap();
    assert_eq!(loaded.certificate_der(), a.certificate_der());
    assert!(
        TestCert::create_with_key(tmp.path(), "  ", cert.private_key().clone(), [1; 16]).is_err()
    );
}

fn err_text(e: SignError) -> String {
    e.to_string()
}

#[test]
fn bad_pem_inputs_are_rejected_clearly() {
    let (_, dir) = test_cert();
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.pem");
    fs::write(&garbage, "this is not a certificate\n").unwrap();
    let bad_b64 = tmp.path().join("bad.pem");
    fs::write(
        &bad_b64,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let binary = tmp.path().join("bin.pem");
    fs::write(&binary, [0xffu8, 0xfe, 0x00, 0x30]).unwrap();
    let cert_pem = dir.join(TestCert::CERT_PEM);
    let key_pem = dir.join(TestCert::KEY_PEM);

    let e = SigningCert::from_pem_files(&garbage, &key_pem).unwrap_err();
    assert!(matches!(e, SignError::Certificate(_)), "{e}");
    assert!(err_text(e).contains("no PEM certificate"));
    let e = SigningCert::from_pem_files(&bad_b64, &key_pem).unwrap_err();
    assert!(matches!(e, SignError::Certificate(_)), "{e}");
    let e = SigningCert::from_pem_files(&binary, &key_pem).unwrap_err();
    assert!(matches!(e, SignError::Certificate(_)), "{e}");
    let e = SigningCert::from_pem_files(&cert_pem, &garbage).unwrap_err();
    assert!(matches!(e, SignError::Key(_)), "{e}");
    assert!(err_text(e).contains("no PEM private key"));
    let e = SigningCert::from_pem_files(&cert_pem, &cert_pem).unwrap_err();
    assert!(matches!(e, SignError::Key(_)), "{e}");
    let e = SigningCert::from_pem_files(&tmp.path().join("missing.pem"), &key_pem).unwrap_err();
    assert!(matches!(e, SignError::Io { .. }), "{e}");
    assert!(err_text(e).contains("missing.pem"));

    // encrypted key
    let enc = tmp.path().join("enc.pem");
    fs::write(
        &enc,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = SigningCert::from_pem_files(&cert_pem, &enc).unwrap_err();
    assert!(err_text(e).contains("encrypted"));

    // key of another certificate
    let other = tmp.path().join("other.pem");
    fs::write(&other, UNRELATED_KEY_PEM).unwrap();
    let e = SigningCert::from_pem_files(&cert_pem, &other).unwrap_err();
    assert!(matches!(e, SignError::Certificate(_)), "{e}");
    assert!(err_text(e).contains("does not belong"), "message");
}

/// A certificate made by the same builder but with a non-code-signing EKU
/// or none at all.
fn cert_without_code_signing(
    key: &rsa::RsaPrivateKey,
    eku: Option<Vec<const_oid::ObjectIdentifier>>,
) -> Certificate {
    use std::str::FromStr;
    use std::time::Duration;
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let spki = spki::SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
    let mut b = CertificateBuilder::new(
        Profile::Manual { issuer: None },
        x509_cert::serial_number::SerialNumber::new(&[1]).unwrap(),
        x509_cert::time::Validity::from_now(Duration::from_secs(3600)).unwrap(),
        x509_cert::name::Name::from_str("CN=not code signing").unwrap(),
        spki,
        &signer,
    )
    .unwrap();
    if let Some(eku) = eku {
        b.add_extension(&ExtendedKeyUsage(eku)).unwrap();
    }
    b.build::<rsa::pkcs1v15::Signature>().unwrap()
}

#[test]
fn certificate_without_code_signing_eku_is_rejected() {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(UNRELATED_KEY_PEM).unwrap();
    let server_auth =
        cert_without_code_signing(&key, Some(vec![const_oid::db::rfc5280::ID_KP_SERVER_AUTH]));
    let e = SigningCert::new(server_auth, key.clone(), CertSource::Memory).unwrap_err();
    assert!(err_text(e).contains("not a code-signing certificate"));
    let none = cert_without_code_signing(&key, None);
    let e = SigningCert::new(none.clone(), key.clone(), CertSource::Memory).unwrap_err();
    assert!(err_text(e).contains("no extendedKeyUsage"));

    // the same through PEM files
    let tmp = tempfile::tempdir().unwrap();
    use der::EncodePem;
    fs::write(
        tmp.path().join("c.pem"),
        none.to_pem(der::pem::LineEnding::LF).unwrap(),
    )
    .unwrap();
    fs::write(tmp.path().join("k.pem"), UNRELATED_KEY_PEM).unwrap();
    let e = SigningCert::from_pem_files(&tmp.path().join("c.pem"), &tmp.path().join("k.pem"))
        .unwrap_err();
    assert!(matches!(e, SignError::Certificate(_)));
    assert!(err_text(e).contains("c.pem"), "error names the file");
}

fn write_pfx(cert: &SigningCert, password: &str) -> Vec<u8> {
    use p12_keystore::{Certificate as P12Cert, KeyStore, KeyStoreEntry, PrivateKeyChain};
    let key_der = cert.private_key().to_pkcs8_der().unwrap();
    let chain = PrivateKeyChain::new(
        key_der.as_bytes(),
        vec![1u8, 2, 3, 4],
        vec![P12Cert::from_der(cert.certificate_der()).unwrap()],
    );
    let mut ks = KeyStore::new();
    ks.add_entry("weir", KeyStoreEntry::PrivateKeyChain(chain));
    ks.writer(password).write().unwrap()
}

#[test]
fn pfx_loading_and_temporary_pems() {
    let (cert, _) = test_cert();
    let tmp = tempfile::tempdir().unwrap();
    let pfx = tmp.path().join("weir.pfx");
    fs::write(&pfx, write_pfx(cert, "s3cret")).unwrap();

    let loaded = SigningCert::from_pfx(&pfx, "s3cret").unwrap();
    assert_eq!(loaded.certificate_der(), cert.certificate_der());
    assert_eq!(loaded.source(), &CertSource::Pfx(pfx.clone()));

    let e = SigningCert::from_pfx(&pfx, "wrong").unwrap_err();
    assert!(matches!(e, SignError::Pfx(_)), "{e}");
    assert!(err_text(e).contains("wrong password"));

    let junk = tmp.path().join("junk.pfx");
    fs::write(&junk, b"not a pfx at all").unwrap();
    assert!(matches!(
        SigningCert::from_pfx(&junk, "x").unwrap_err(),
        SignError::Pfx(_)
    ));

    // PEMs for osslsigncode: temporary for a PFX, removed on drop
    let scratch = tmp.path().join("scratch");
    let pems = loaded.pem_files(&scratch).unwrap();
    assert!(pems.is_temporary());
    let (c, k) = (pems.cert.clone(), pems.key.clone());
    let again = SigningCert::from_pem_files(&c, &k).unwrap();
    assert_eq!(again.certificate_der(), cert.certificate_der());
    drop(pems);
    assert!(!c.exists() && !k.exists());

    // PEM-loaded: the original files, not deleted
    let pems = cert.pem_files(&scratch).unwrap();
    assert!(!pems.is_temporary());
    let c = pems.cert.clone();
    drop(pems);
    assert!(c.exists());
}

#[test]
fn pfx_written_by_openssl_if_available() {
    let (_, dir) = test_cert();
    let tmp = tempfile::tempdir().unwrap();
    let pfx = tmp.path().join("o.pfx");
    let status = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:pw", "-out"])
        .arg(&pfx)
        .arg("-inkey")
        .arg(dir.join(TestCert::KEY_PEM))
        .arg("-in")
        .arg(dir.join(TestCert::CERT_PEM))
        .status();
    match status {
        Ok(s) if s.success() => {}
        _ => {
            eprintln!("openssl CLI not available: skipping");
            return;
        }
    }
    let loaded = SigningCert::from_pfx(&pfx, "pw").unwrap();
    assert_eq!(loaded.certificate_der(), test_cert().0.certificate_der());
    assert!(SigningCert::from_pfx(&pfx, "nope").is_err());
}
