//! Verification of a Weir driver package directory.
//!
//! Independent checks, each of which fails on a one-byte change to the file
//! it covers: osslsigncode verifies the Authenticode signatures of weir.sys
//! and weir.cat against the packaged certificate and weir.sys against the
//! catalog; our catalog reader recomputes every member hash; the INF is
//! linted (bytes and encoding included) for the image's architecture and must
//! be covered by the catalog, whose `OS` attribute names the same
//! architecture; the signed image passes the static image checks and matches
//! the PDB; the PDB equals the build's. Packages for x64 and ARM64 are
//! verified alike; the architecture comes from the image's machine type.
//! The WPR profile is the one this crate ships ([`WPRP_TEXT`], checked by
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

/// The catalog-level `OS` attribute Inf2Cat writes for Windows 10 and later
/// on `arch` (`/os:10_X64` gives `_v100_X64`; ARM64's `_v100_ARM64` follows
/// the same pattern and is unverified against a real Inf2Cat output).
pub fn catalog_os(arch: weir_inf::Arch) -> &'static str {
    match arch {
        weir_inf::Arch::Amd64 => "_v100_X64",
        weir_inf::Arch::Arm64 => "_v100_ARM64",
    }
}

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

    let image = weir_image::check_driver(&sys, Some(&pdb))?;
    if !image.ok() {
        let text: Vec<String> = image.failures().map(ToString::to_string).collect();
        bail!("signed weir.sys:\n{}", text.join("\n"));
    }
    let arch = weir_inf::Arch::from_machine(image.machine)?;
    println!("  [ok] weir.sys image checks ({} properties, {arch}), PDB GUID/age match", image.checks.len());

    let os = catalog.attributes.iter().find(|a| a.name == "OS").map(|a| a.value.as_str());
    if os != Some(catalog_os(arch)) {
        bail!("weir.cat's OS attribute is {os:?}, not {:?} for the {arch} image", catalog_os(arch));
    }
    println!("  [ok] weir.cat OS attribute {}", catalog_os(arch));

    let names: Vec<String> = catalog.members.iter().filter_map(|m| m.file_name.clone()).collect();
    let diagnostics = inf_findings(&std::fs::read(&inf)?, &names, arch);
    if !diagnostics.is_empty() {
        let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        bail!("weir.inf:\n{}", text.join("\n"));
    }
    println!("  [ok] weir.inf lint for {arch} (bytes and encoding included) and catalog coverage");

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

/// The INF's findings for an `arch` image: the byte-level lint
/// (`lint_for_arch` = `lint_bytes`, i.e. the encoding, which the text lint
/// cannot see, and every text rule, plus the image-architecture rule) and the
/// catalog's coverage of the files it installs. Empty when the INF is fine.
pub fn inf_findings(inf_bytes: &[u8], catalog_names: &[String], arch: weir_inf::Arch) -> Vec<weir_inf::Diagnostic> {
    let mut diagnostics = weir_inf::lint_for_arch(inf_bytes, INF, arch);
    if let Ok(text) = weir_inf::decode(inf_bytes) {
        diagnostics.extend(weir_inf::check_catalog_coverage(&text, INF, catalog_names));
    }
    diagnostics
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

#[cfg(test)]
mod tests {
    use super::*;

    const INF_TEXT: &str = include_str!("../../../driver.inx");

    fn stamped() -> String {
        INF_TEXT.replace("$ARCH$", "amd64")
    }

    fn names() -> Vec<String> {
        vec!["weir.sys".into(), INF.into()]
    }

    #[test]
    fn the_encoding_check_runs_on_package_infs() {
        let text = stamped();
        let clean = inf_findings(text.as_bytes(), &names(), weir_inf::Arch::Amd64);
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(text.as_bytes());
        let with_bom = inf_findings(&bom, &names(), weir_inf::Arch::Amd64);
        let encoding: Vec<_> = with_bom.iter().filter(|d| d.infverif == Some(1003)).collect();
        assert_eq!(encoding.len(), 1, "{with_bom:?}");
        assert_eq!(with_bom.len(), clean.len() + 1, "only the encoding finding is new: {with_bom:?}");
    }

    #[test]
    fn utf16le_infs_are_linted_too() {
        let text = stamped();
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(
            inf_findings(&utf16, &names(), weir_inf::Arch::Amd64).iter().map(ToString::to_string).collect::<Vec<_>>(),
            inf_findings(text.as_bytes(), &names(), weir_inf::Arch::Amd64).iter().map(ToString::to_string).collect::<Vec<_>>()
        );
    }
}
