//! `cargo xtask package` and `cargo xtask verify-package`: the signed driver
//! package, made on Linux in the place and shape of windows-drivers-rs'
//! `cargo make` (`target/x86_64-pc-windows-msvc/release/weir_package/`).
//!
//! Steps: build → stamp (driver.inx → weir.inf) → sign (weir.sys, with
//! osslsigncode) → catalog (weir.cat, our own code, signed) → verify → weirctl.exe
//! (built, signed and verified beside the package directory, `crate::weirctl`).

use crate::build::{self, rel};
use crate::{repo_root, toolchain};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};
use weir_package::{verify, CAT, CER, FILES, INF, PDB, SYS, WPRP, WPRP_TEXT};
use weir_sign::{CatalogBuilder, CatalogVersion, SigningCert, TestCert};

/// How the package is signed.
#[derive(Clone, Debug, Default)]
pub struct SignOptions {
    /// User certificate (PEM or DER) and key (PEM); default: the test cert.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// User PFX; its password comes from the environment variable named by
    /// `pfx_password_env` (never from the command line).
    pub pfx: Option<PathBuf>,
    pub pfx_password_env: String,
    /// Catalog v1 (SHA-1 only) instead of v2.
    pub catalog_v1: bool,
    /// Target triple; None = x64 (`build::TARGET`). ARM64:
    /// `aarch64-pc-windows-msvc`.
    pub target: Option<String>,
}

pub fn package_dir() -> PathBuf {
    package_dir_for(build::TARGET)
}

/// The package directory of `target`, as windows-drivers-rs lays it out.
pub fn package_dir_for(target: &str) -> PathBuf {
    build::output_dir_for(target).join("weir_package")
}

/// Where the per-machine test certificate lives: outside `target/`, so
/// `cargo clean` keeps it and a VM needs to import it only once.
pub fn test_cert_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("WEIR_CERT_DIR") {
        return PathBuf::from(dir);
    }
    let data = std::env::var("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into())).join(".local/share"));
    data.join("weir").join("test-signing")
}

fn signing_cert(opts: &SignOptions) -> Result<SigningCert> {
    match (&opts.pfx, &opts.cert, &opts.key) {
        (Some(pfx), None, None) => {
            let password = std::env::var(&opts.pfx_password_env).with_context(|| {
                format!("--pfx needs the password in the environment variable {}", opts.pfx_password_env)
            })?;
            Ok(SigningCert::from_pfx(pfx, &password)?)
        }
        (None, Some(cert), Some(key)) => Ok(SigningCert::from_pem_files(cert, key)?),
        (None, None, None) => {
            let dir = test_cert_dir();
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Ok(TestCert::load_or_create(&dir)?)
        }
        _ => bail!("pass either --pfx FILE, or --cert FILE and --key FILE, or neither (test certificate)"),
    }
}

/// Signing and stamping time: SOURCE_DATE_EPOCH, else the last commit's
/// time, never in the future. A fixed time gives a byte-identical package.
fn package_time() -> Result<i64> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        if !epoch.trim().is_empty() {
            let t: i64 = epoch.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH={epoch:?} is not a number"))?;
            return Ok(t.min(now));
        }
    }
    let commit = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(repo_root())
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<i64>().ok());
    Ok(commit.unwrap_or(now).min(now))
}

fn crate_version() -> Result<String> {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml"))?;
    let doc: toml::Table = manifest.parse().context("parsing Cargo.toml")?;
    doc.get("package")
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .context("no [package] version in Cargo.toml")
}

fn step(n: u32, text: &str) {
    println!("\n==> [{n}/6] {text}");
}

/// `cargo xtask package`.
pub fn package(opts: &SignOptions) -> Result<PathBuf> {
    let target = opts.target.as_deref().unwrap_or(build::TARGET);
    let arch = weir_inf::Arch::from_rust_target(target)?;
    step(1, &format!("build ({target})"));
    let image = build::build_for(true, target)?;
    let pdb = build::output_dir_for(target).join("weir.pdb");
    let osslsigncode = toolchain::osslsigncode()?;
    let signer = signing_cert(opts)?;
    let time = package_time()?;
    let dir = package_dir_for(target);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;

    step(2, "stamp driver.inx -> weir.inf");
    let inx = std::fs::read_to_string(repo_root().join("driver.inx")).context("reading driver.inx")?;
    let date = weir_inf::build_date(None, Some(time), time)?;
    let version = weir_inf::version_from_crate(&crate_version()?)?;
    let inf = weir_inf::stamp(
        &inx,
        &weir_inf::StampOptions { arch: arch.as_str(), date, version, catalog_file: Some(CAT.into()) },
    )?;
    std::fs::write(dir.join(INF), &inf)?;
    println!("DriverVer {}, decorated NT{}", weir_inf::format_driver_ver(date, version), arch.as_str());
    let diagnostics = weir_inf::lint_for_arch(inf.as_bytes(), INF, arch);
    if !diagnostics.is_empty() {
        for d in &diagnostics {
            eprintln!("{d}");
        }
        bail!("weir.inf fails {} lint rule(s)", diagnostics.len());
    }

    step(3, "sign weir.sys (Authenticode SHA-256, page hashes)");
    let scratch = build::output_dir_for(target).join("sign-scratch");
    std::fs::create_dir_all(&scratch)?;
    let pem = signer.pem_files(&scratch)?;
    let status = Command::new(&osslsigncode)
        .arg("sign")
        .arg("-certs")
        .arg(&pem.cert)
        .arg("-key")
        .arg(&pem.key)
        .args(["-h", "sha256", "-ph", "-n", "Weir"])
        .args(["-time", &time.to_string()])
        .arg("-in")
        .arg(&image)
        .arg("-out")
        .arg(dir.join(SYS))
        .stdout(std::process::Stdio::null())
        .status()
        .context("running osslsigncode")?;
    if !status.success() {
        bail!("osslsigncode sign failed ({status})");
    }
    drop(pem);

    step(4, if opts.catalog_v1 { "catalog weir.cat (v1, SHA-1)" } else { "catalog weir.cat (v2, SHA-256 + SHA-1 compat)" });
    let mut builder = CatalogBuilder::new(if opts.catalog_v1 { CatalogVersion::V1 } else { CatalogVersion::V2 });
    builder.catalog_attributes(&[("OS", weir_package::catalog_os(arch))]);
    builder.add_pe_file(&dir.join(SYS))?;
    builder.add_flat_file(&dir.join(INF))?;
    let cat = builder.build_signed(&signer, u64::try_from(time).unwrap_or(0))?;
    std::fs::write(dir.join(CAT), cat)?;
    std::fs::copy(&pdb, dir.join(PDB))?;
    signer.write_cer(&dir.join(CER))?;
    // The WPR profile for the Weir ETW provider (docs/etw.md), as shipped.
    std::fs::write(dir.join(WPRP), WPRP_TEXT)?;

    step(5, "verify");
    toolchain::osslsigncode()?;
    verify(&dir, Some(&pdb))?;

    // One weirctl.exe for both: x64 programs run on Windows 11 on ARM under
    // its x64 emulation, and Debian has no ARM64 Windows user-mode toolchain.
    step(6, "weirctl.exe (x86_64-pc-windows-gnu), signed, beside the x64 package");
    let tool = crate::weirctl::package_exe(&osslsigncode, &signer, time)?;

    println!("\npackage: {}", rel(&dir));
    for f in FILES {
        println!("  {f}");
    }
    println!("tool:    {}", rel(&tool));
    println!("signed by: {} (SHA-1 thumbprint {})", signer.subject(), signer.thumbprint_sha1());
    if opts.cert.is_none() && opts.pfx.is_none() {
        println!("test certificate kept in {} (import weir-test.cer on the VM once)", test_cert_dir().display());
    }
    Ok(dir)
}

/// `cargo xtask verify-package [DIR]`.
pub fn verify_cmd(dir: Option<PathBuf>, against_build: bool) -> Result<()> {
    let dir = dir.unwrap_or_else(package_dir);
    toolchain::osslsigncode()?;
    println!("verifying {}", rel(&dir));
    // The build's PDB of the same architecture: the package directory sits in
    // target/<triple>/release/.
    let built_pdb = dir.parent().map(|d| d.join("weir.pdb"));
    verify(&dir, if against_build { built_pdb.as_deref() } else { None })?;
    println!("package verified");
    Ok(())
}
