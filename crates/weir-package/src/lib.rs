//! Verification of a Weir driver package directory.
//!
//! Independent checks, each of which fails on a one-byte change to the file
//! it covers: osslsigncode verifies the Authenticode signatures of weir.sys
//! and weir.cat against the packaged certificate and weir.sys against the
//! catalog; our catalog reader recomputes every member hash; the INF is
//! linted and must be covered by the catalog; the signed image passes the
//! static image checks and matches the PDB; the PDB equals the build's; the
//! WPR profile is the one this crate ships ([`WPRP_TEXT`], checked by
//! [`check_wprp`]).

mod wprp;
pub use wprp::{check_wprp, WprpProfile, WPRP_TEXT};

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use weir_sign::Catalog;

pub const SYS: &str = "weir.sys";
pub const INF: &str = "weir.inf";
pub const CAT: &str = "weir.cat";
pub const PDB: &str = "weir.pdb";
pub const CER: &str = "weir-test.cer";
/// The Windows Performance Recorder profile for the `Weir` ETW provider
/// (docs/etw.md). Not in the catalog: it is not installed with the driver.
pub const WPRP: &str = "weir.wprp";

/// The six files of a package.
pub const FILES: [&str; 6] = [SYS, INF, CAT, PDB, CER, WPRP];

/// The osslsigncode to use (`WEIR_OSSLSIGNCODE` or the one on PATH).
pub fn osslsigncode_path() -> PathBuf {
    std::env::var_os("WEIR_OSSLSIGNCODE").map_or_else(|| PathBuf::from("osslsigncode"), PathBuf::from)
}

fn ossl_verify(osslsigncode: &Path, args: &[&std::ffi::OsStr]) -> Result<()> {
    let out = Command::new(osslsigncode).arg("verify").args(args).output().context("running osslsigncode")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !text.contains("Succeeded") {
        let tail: Vec<&str> = text.lines().rev().take(6).collect();
        bail!("osslsigncode verify {:?} failed:\n{}", args, tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    Ok(())
}

/// Every check of a package directory; `built_pdb` is the build's PDB, which
/// the packaged copy must equal byte for byte.
pub fn verify(dir: &Path, built_pdb: Option<&Path>) -> Result<()> {
    verify_with(&osslsigncode_path(), dir, built_pdb)
}

/// [`verify`] with an explicit osslsigncode.
pub fn verify_with(osslsigncode: &Path, dir: &Path, built_pdb: Option<&Path>) -> Result<()> {
    for f in FILES {
        if !dir.join(f).is_file() {
            bail!("{} is missing from {}", f, dir.display());
        }
    }
    let (sys, inf, cat, pdb, cer) = (dir.join(SYS), dir.join(INF), dir.join(CAT), dir.join(PDB), dir.join(CER));

    // osslsigncode wants the trust anchor as PEM; convert the packaged .cer
    // (so a changed .cer fails too).
    let cer_der = std::fs::read(&cer)?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ca_pem = std::env::temp_dir().join(format!("weir-verify-ca-{}-{n}.pem", std::process::id()));
    std::fs::write(&ca_pem, pem_encode("CERTIFICATE", &cer_der))?;
    let _remove_ca = RemoveOnDrop(ca_pem.clone());
    let ca = ca_pem.as_os_str();
    ossl_verify(osslsigncode, &["-CAfile".as_ref(), ca, "-in".as_ref(), sys.as_os_str()])?;
    println!("  [ok] osslsigncode: weir.sys Authenticode signature");
    ossl_verify(osslsigncode, &["-CAfile".as_ref(), ca, "-in".as_ref(), cat.as_os_str()])?;
    println!("  [ok] osslsigncode: weir.cat signature");
    ossl_verify(osslsigncode, &["-CAfile".as_ref(), ca, "-catalog".as_ref(), cat.as_os_str(), "-in".as_ref(), sys.as_os_str()])?;
    println!("  [ok] osslsigncode: weir.sys listed in weir.cat");

    let catalog = Catalog::read_file(&cat)?;
    // OpenSSL does not check a trust anchor's own signature, so a changed
    // byte there would pass osslsigncode: the packaged certificate must be
    // exactly the one that signed the catalog.
    if !catalog.certificates.contains(&cer_der) {
        bail!("{CER} is not the certificate carried by {CAT}");
    }
    println!("  [ok] {CER} is the catalog's signing certificate");
    let report = weir_sign::verify_members(&catalog, &[&sys, &inf])?;
    if !report.unchecked_members.is_empty() {
        bail!("weir.cat lists files not in the package: {:?}", report.unchecked_members);
    }
    for v in &report.verified {
        println!("  [ok] catalog member {} ({:?}, {:?}) = {}", v.path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(), v.kind, v.algorithm, v.digest);
    }

    let inf_text = std::fs::read_to_string(&inf)?;
    let mut diagnostics = weir_inf::lint(&inf_text, INF);
    let names: Vec<String> = catalog.members.iter().filter_map(|m| m.file_name.clone()).collect();
    diagnostics.extend(weir_inf::check_catalog_coverage(&inf_text, INF, &names));
    if !diagnostics.is_empty() {
        let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        bail!("weir.inf:\n{}", text.join("\n"));
    }
    println!("  [ok] weir.inf lint and catalog coverage");

    let image = weir_image::check_driver(&sys, Some(&pdb))?;
    if !image.ok() {
        let text: Vec<String> = image.failures().map(ToString::to_string).collect();
        bail!("signed weir.sys:\n{}", text.join("\n"));
    }
    println!("  [ok] weir.sys image checks ({} properties), PDB GUID/age match", image.checks.len());

    let wprp = std::fs::read_to_string(dir.join(WPRP)).with_context(|| format!("reading {WPRP}"))?;
    if wprp != WPRP_TEXT {
        bail!("{WPRP} differs from the profile this version ships");
    }
    let profiles = check_wprp(&wprp)?;
    println!("  [ok] {WPRP}: {} profiles for provider {}", profiles.len(), weir_etw::provider::ID_TEXT);

    if let Some(built) = built_pdb.filter(|p| p.is_file()) {
        if std::fs::read(built)? != std::fs::read(&pdb)? {
            bail!("weir.pdb differs from the build's {}", built.display());
        }
        println!("  [ok] weir.pdb equals the build's PDB");
    }
    Ok(())
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out + &format!("-----END {label}-----\n")
}


struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
