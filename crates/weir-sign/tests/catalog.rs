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
use std::path::{Path, PathBuf};
use std::process::Command;

use weir_sign::hash::{bytes_hash, pe_image_hash};
use weir_sign::{
    verify_members, Catalog, CatalogBuilder, CatalogVersion, HashAlg, MemberKind, MemberProblem,
    SignError,
};

use common::{
    make_inf, make_pe, osslsigncode, test_cert, PE_CHECKSUM_OFFSET, PE_SECURITY_DIR_OFFSET,
};

const TIME: u64 = 1_700_000_000;

fn package(dir: &Path) -> (PathBuf, PathBuf) {
    let sys = dir.join("weir.sys");
    let inf = dir.join("weir.inf");
    fs::write(&sys, make_pe()).unwrap();
    fs::write(&inf, make_inf()).unwrap();
    (sys, inf)
}

fn builder(version: CatalogVersion, sys: &Path, inf: &Path) -> CatalogBuilder {
    let mut b = CatalogBuilder::new(version);
    b.add_pe_file(sys).unwrap();
    b.add_flat_file(inf).unwrap();
    b
}

#[test]
fn pe_hash_skips_checksum_and_security_directory_only() {
    let pe = make_pe();
    let base = pe_image_hash(&pe, HashAlg::Sha256).unwrap();
    assert_eq!(pe_image_hash(&pe, HashAlg::Sha1).unwrap().len(), 20);
    let mut m = pe.clone();
    m[PE_CHECKSUM_OFFSET] ^= 0x55;
    assert_eq!(
        pe_image_hash(&m, HashAlg::Sha256).unwrap(),
        base,
        "checksum is excluded"
    );
    let mut m = pe.clone();
    m[0x300] ^= 1;
    assert_ne!(pe_image_hash(&m, HashAlg::Sha256).unwrap(), base);
    assert!(matches!(
        pe_image_hash(b"MZ not a pe", HashAlg::Sha256),
        Err(SignError::Pe(_))
    ));
    assert!(matches!(
        pe_image_hash(&make_inf(), HashAlg::Sha256),
        Err(SignError::Pe(_))
    ));
}

#[test]
fn v2_signed_round_trip() {
    let (cert, _) = test_cert();
    let tmp = tempfile::tempdir().unwrap();
    let (sys, inf) = package(tmp.path());
    let bytes = builder(CatalogVersion::V2, &sys, &inf)
        .build_signed(cert, TIME)
        .unwrap();
    let cat = Catalog::parse(&bytes).unwrap();
    assert_eq!(cat.version, CatalogVersion::V2);
    assert_eq!(cat.signed_data_version, 1);
    assert_eq!(cat.signer_count, 1);
    assert_eq!(cat.certificates, vec![cert.certificate_der().to_vec()]);
    assert_eq!(cat.this_update, Some(TIME));
    assert_eq!(cat.list_identifier.as_ref().map(Vec::len), Some(16));
    assert_eq!(cat.attribute("OS"), Some("_v100_X64"));
    assert_eq!(
        cat.members.len(),
        4,
        "two SHA-256 members + two SHA-1 compat members"
    );
    let ids: Vec<_> = cat.members.iter().map(|m| m.identifier.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "members sorted by identifier");

    let pe = make_pe();
    let inf_bytes = make_inf();
    let sys_m = cat
        .members
        .iter()
        .find(|m| m.file_name.as_deref() == Some("weir.sys"))
        .unwrap();
    assert_eq!(sys_m.kind, MemberKind::Pe);
    assert_eq!(sys_m.digest_algorithm, HashAlg::Sha256);
    assert_eq!(sys_m.digest, pe_image_hash(&pe, HashAlg::Sha256).unwrap());
    assert_eq!(sys_m.identifier, sys_m.digest);
    assert_eq!(sys_m.os_attr.as_deref(), Some("2:10.0"));
    assert!(sys_m.has_indirect_data);
    let inf_m = cat
        .members
        .iter()
        .find(|m| m.file_name.as_deref() == Some("weir.inf"))
        .unwrap();
    assert_eq!(inf_m.kind, MemberKind::Flat);
    assert_eq!(inf_m.digest, bytes_hash(&inf_bytes, HashAlg::Sha256));
    assert_eq!(inf_m.os_attr.as_deref(), Some("2:10.0"));

    let compat: Vec<_> = cat
        .members
        .iter()
        .filter(|m| !m.has_indirect_data)
        .collect();
    assert_eq!(compat.len(), 2);
    assert!(compat.iter().any(
        |m| m.kind == MemberKind::Pe && m.digest == pe_image_hash(&pe, HashAlg::Sha1).unwrap()
    ));
    assert!(compat
        .iter()
        .any(|m| m.kind == MemberKind::Flat && m.digest == bytes_hash(&inf_bytes, HashAlg::Sha1)));

    let report = verify_members(&cat, &[&sys, &inf]).unwrap();
    assert_eq!(report.verified.len(), 2);
    assert!(report.unchecked_members.is_empty());
    let report = verify_members(&cat, &[&sys]).unwrap();
    assert_eq!(report.unchecked_members, vec!["weir.inf".to_string()]);
}

#[test]
fn v1_and_options_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let (sys, inf) = package(tmp.path());
    let mut b = builder(CatalogVersion::V1, &sys, &inf);
    b.os_attr("2:6.1,2:10.0")
        .catalog_attributes(&[("OS", "_v61_X64,_v100_X64"), ("HWID1", "root\\weir")]);
    let cat = Catalog::parse(&b.build_unsigned(TIME).unwrap()).unwrap();
    assert_eq!(cat.version, CatalogVersion::V1);
    assert_eq!(cat.signer_count, 0);
    assert_eq!(cat.members.len(), 2, "v1 has no compat members");
    assert_eq!(cat.attribute("HWID1"), Some("root\\weir"));
    for m in &cat.members {
        assert_eq!(m.digest_algorithm, HashAlg::Sha1);
        assert_eq!(m.os_attr.as_deref(), Some("2:6.1,2:10.0"));
        // identifier: upper-case hex of the SHA-1 as UTF-16LE + NUL
        let text: Vec<u8> = hex::encode_upper(&m.digest)
            .bytes()
            .flat_map(|c| [c, 0])
            .chain([0, 0])
            .collect();
        assert_eq!(m.identifier, text);
    }
    assert_eq!(
        cat.members
            .iter()
            .find(|m| m.kind == MemberKind::Pe)
            .unwrap()
            .file_name
            .as_deref(),
        Some("weir.sys")
    );
    verify_members(&cat, &[&sys, &inf]).unwrap();

    let mut b = builder(CatalogVersion::V2, &sys, &inf);
    b.sha1_compat(false);
    let cat = Catalog::parse(&b.build_unsigned(TIME).unwrap()).unwrap();
    assert_eq!(cat.members.len(), 2);
    verify_members(&cat, &[&sys, &inf]).unwrap();

    // add_file picks the SIP by content
    let mut b = CatalogBuilder::new(CatalogVersion::V2);
    b.add_file(&sys).unwrap().add_file(&inf).unwrap();
    let cat = Catalog::parse(&b.build_unsigned(TIME).unwrap()).unwrap();
    assert!(cat.named_members().any(|m| m.kind == MemberKind::Pe));
    assert!(cat.named_members().any(|m| m.kind == MemberKind::Flat));

    // bad builder inputs
    let mut b = CatalogBuilder::new(CatalogVersion::V2);
    assert!(b.build_unsigned(TIME).is_err(), "empty catalog");
    b.add_flat_file(&inf).unwrap();
    assert!(b.add_flat_file(&inf).is_err(), "same name twice");
    assert!(matches!(b.add_pe_file(&inf), Err(SignError::Pe(_))));
    assert!(
        b.build_unsigned(4_000_000_000).is_err(),
        "past UTCTime range"
    );
    assert!(Catalog::parse(b"garbage").is_err());
    assert!(Catalog::parse(&make_pe()).is_err());
}

#[test]
fn output_is_deterministic() {
    let (cert, _) = test_cert();
    let tmp = tempfile::tempdir().unwrap();
    let (sys, inf) = package(tmp.path());
    let a = builder(CatalogVersion::V2, &sys, &inf)
        .build_signed(cert, TIME)
        .unwrap();
    let b = builder(CatalogVersion::V2, &sys, &inf)
        .build_signed(cert, TIME)
        .unwrap();
    assert_eq!(a, b);
    // order of adding files does not matter
    let mut c = CatalogBuilder::new(CatalogVersion::V2);
    c.add_flat_file(&inf).unwrap().add_pe_file(&sys).unwrap();
    assert_eq!(c.build_signed(cert, TIME).unwrap(), a);
    let u1 = builder(CatalogVersion::V2, &sys, &inf)
        .build_unsigned(TIME)
        .unwrap();
    let u2 = builder(CatalogVersion::V2, &sys, &inf)
        .build_unsigned(TIME)
        .unwrap();
    assert_eq!(u1, u2);
    assert_ne!(
        builder(CatalogVersion::V2, &sys, &inf)
            .build_unsigned(TIME + 1)
            .unwrap(),
        u1
    );
}

#[test]
fn every_single_byte_change_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let (sys, inf) = package(tmp.path());
    let cat = Catalog::parse(
        &builder(CatalogVersion::V2, &sys, &inf)
            .build_unsigned(TIME)
            .unwrap(),
    )
    .unwrap();
    verify_members(&cat, &[&sys, &inf]).unwrap();

    let pe = make_pe();
    let excluded = |i: usize| {
        (PE_CHECKSUM_OFFSET..PE_CHECKSUM_OFFSET + 4).contains(&i)
            || (PE_SECURITY_DIR_OFFSET..PE_SECURITY_DIR_OFFSET + 8).contains(&i)
    };
    for i in 0..pe.len() {
        let mut m = pe.clone();
        m[i] ^= 0x01;
        fs::write(&sys, &m).unwrap();
        let r = verify_members(&cat, &[&sys, &inf]);
        if excluded(i) {
            // the checksum may change freely; a changed security directory
            // entry may point outside the file (then the image is invalid)
            if (PE_CHECKSUM_OFFSET..PE_CHECKSUM_OFFSET + 4).contains(&i) {
                r.unwrap();
            }
            continue;
        }
        let Err(SignError::Verification(problems)) = r else {
            panic!("change at sys offset {i:#x} not detected");
        };
        assert_eq!(problems.len(), 1, "offset {i:#x}: {problems:?}");
        match &problems[0] {
            MemberProblem::HashMismatch {
                path,
                kind,
                algorithm,
                expected,
                actual,
            } => {
                assert_eq!(path, &sys);
                assert_eq!(kind, &MemberKind::Pe);
                assert_eq!(*algorithm, HashAlg::Sha256);
                assert_ne!(expected, actual);
            }
            MemberProblem::Unhashable { path, .. } => assert_eq!(path, &sys),
            other => panic!("offset {i:#x}: unexpected {other}"),
        }
    }
    fs::write(&sys, &pe).unwrap();

    let text = make_inf();
    for i in 0..text.len() {
        let mut m = text.clone();
        m[i] ^= 0x20;
        fs::write(&inf, &m).unwrap();
        let e = verify_members(&cat, &[&sys, &inf]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("weir.inf") && msg.contains("sha256 file hash mismatch"),
            "{msg}"
        );
    }
    fs::write(&inf, &text).unwrap();
    // appending a byte also counts
    let mut longer = text.clone();
    longer.push(b'\n');
    fs::write(&inf, &longer).unwrap();
    assert!(verify_members(&cat, &[&sys, &inf]).is_err());
    // an unknown file
    let other = tmp.path().join("other.dll");
    fs::write(&other, b"x").unwrap();
    let Err(SignError::Verification(p)) = verify_members(&cat, &[&other]) else {
        panic!()
    };
    assert!(matches!(p[0], MemberProblem::NotInCatalog { .. }));
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ossl_sign_pe(tool: &Path, cert: &Path, key: &Path, input: &Path, output: &Path) {
    let (ok, text) = run(Command::new(tool)
        .args(["sign", "-certs"])
        .arg(cert)
        .arg("-key")
        .arg(key)
        .args([
            "-h",
            "sha256",
            "-ph",
            "-n",
            "Weir",
            "-time",
            "1700000000",
            "-in",
        ])
        .arg(input)
        .arg("-out")
        .arg(output));
    assert!(ok, "osslsigncode sign failed:\n{text}");
}

#[test]
fn osslsigncode_accepts_our_catalog() {
    let Some(tool) = osslsigncode() else { return };
    let (cert, _) = test_cert();
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("scratch");
    let pems = cert.pem_files(&scratch).unwrap();
    let (unsigned_sys, inf) = package(tmp.path());
    let sys = tmp.path().join("signed").join("weir.sys");
    fs::create_dir_all(sys.parent().unwrap()).unwrap();
    ossl_sign_pe(&tool, &pems.cert, &pems.key, &unsigned_sys, &sys);
    let (ok, text) = run(Command::new(&tool)
        .args(["verify", "-CAfile"])
        .arg(&pems.cert)
        .arg("-in")
        .arg(&sys));
    assert!(ok, "signed PE does not verify:\n{text}");

    // catalog signed by us
    let cat_path = tmp.path().join("weir.cat");
    fs::write(
        &cat_path,
        builder(CatalogVersion::V2, &sys, &inf)
            .build_signed(cert, TIME)
            .unwrap(),
    )
    .unwrap();
    let (ok, text) = run(Command::new(&tool)
        .args(["verify", "-CAfile"])
        .arg(&pems.cert)
        .arg("-in")
        .arg(&cat_path));
    assert!(ok, "osslsigncode verify of our catalog failed:\n{text}");
    let (ok, text) = run(Command::new(&tool)
        .args(["verify", "-CAfile"])
        .arg(&pems.cert)
        .arg("-catalog")
        .arg(&cat_path)
        .arg("-in")
        .arg(&sys));
    assert!(ok, "osslsigncode verify -catalog failed:\n{text}");
    verify_members(&Catalog::read_file(&cat_path).unwrap(), &[&sys, &inf]).unwrap();

    // the unsigned .sys has the same image hash as the signed one
    let (ok, text) = run(Command::new(&tool)
        .args(["verify", "-CAfile"])
        .arg(&pems.cert)
        .arg("-catalog")
        .arg(&cat_path)
        .arg("-in")
        .arg(&unsigned_sys));
    assert!(ok, "unsigned image should match the catalog too:\n{text}");

    // a catalog signed by another certificate must not verify against ours
    let other_key =
        rsa::pkcs8::DecodePrivateKey::from_pkcs8_pem(common::UNRELATED_KEY_PEM).unwrap();
    let other = weir_sign::TestCert::create_with_key(
        &tmp.path().join("other-cert"),
        "Someone else",
        other_key,
        [9; 16],
    )
    .unwrap();
    let foreign = tmp.path().join("foreign.cat");
    fs::write(
        &foreign,
        builder(CatalogVersion::V2, &sys, &inf)
            .build_signed(&other, TIME)
            .unwrap(),
    )
    .unwrap();
    let (ok, text) = run(Command::new(&tool)
        .args(["verify", "-CAfile"])
        .arg(&pems.cert)
        .arg("-in")
        .arg(&foreign));
    assert!(
        !ok,
        "a catalog signed by another certificate must not verify:\n{text}"
    );

    // a mutated .sys must fail
    let mut data = fs::read(&sys).unwrap();
    data[0x300] ^= 0x01;
    let bad = tmp.path().join("bad.sys");
    fs::write(&bad, &data).unwrap();
    let (ok, text) = run(Command::new(&tool)
        .args(["verify", "-CAfile"])
        .arg(&pems.cert)
        .arg("-catalog")
        .arg(&cat_path)
        .arg("-in")
        .arg(&bad));
    assert!(
        !ok,
        "mutated image must not verify against the catalog:\n{text}"
    );

    // unsigned catalog signed by osslsigncode
    let unsigned_cat = tmp.path().join("unsigned.cat");
    fs::write(
        &unsigned_cat,
        builder(CatalogVersion::V2, &sys, &inf)
            .build_unsigned(TIME)
            .unwrap(),
    )
    .unwrap();
    let ossl_cat = tmp.path().join("ossl.cat");
    let (ok, text) = run(Command::new(&tool)
        .args(["sign", "-certs"])
        .arg(&pems.cert)
        .arg("-key")
        .arg(&pems.key)
        .args(["-h", "sha256", "-time", "1700000000", "-in"])
        .arg(&unsigned_cat)
        .arg("-out")
        .arg(&ossl_cat));
    assert!(
        ok,
        "osslsigncode sign of our unsigned catalog failed:\n{text}"
    );
    let (ok, text) = run(Command::new(&tool)
        .args(["verify", "-CAfile"])
        .arg(&pems.cert)
        .arg("-in")
        .arg(&ossl_cat));
    assert!(ok, "verify of osslsigncode-signed catalog failed:\n{text}");
    let (ok, text) = run(Command::new(&tool)
        .args(["verify", "-CAfile"])
        .arg(&pems.cert)
        .arg("-catalog")
        .arg(&ossl_cat)
        .arg("-in")
        .arg(&sys));
    assert!(
        ok,
        "verify -catalog with osslsigncode-signed catalog failed:\n{text}"
    );
    let parsed = Catalog::read_file(&ossl_cat).unwrap();
    assert_eq!(parsed.signer_count, 1);
    assert_eq!(
        parsed.members,
        Catalog::read_file(&cat_path).unwrap().members
    );
    verify_members(&parsed, &[&sys, &inf]).unwrap();
}
