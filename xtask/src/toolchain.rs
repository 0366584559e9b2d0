//! The cross toolchain of the Linux flow, found, checked and installed.
//!
//! rustup's toolchains here have no std/core for `x86_64-pc-windows-msvc` and
//! cannot download one, so the image is built with Debian's `rustc-web`
//! compiler and its matching library source (`rust-web-src`) through
//! `-Zbuild-std`, and linked with rustup's `rust-lld` in link.exe mode.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages the cross builds and their tests need: the compiler and library source
/// (driver and weirctl.exe), mingw-w64 (weirctl.exe's linker), Wine (weirctl.exe's tests).
pub const BUILD_PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src", "gcc-mingw-w64-x86-64", "wine64"];

/// Everything the cross build invokes.
pub struct Toolchain {
    pub rustc: PathBuf,
    pub cargo: PathBuf,
    pub lld: PathBuf,
    pub version: String,
}

fn dpkg_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query").args(["-W", "-f=${Version}", package]).output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Installs Debian packages when running as root; otherwise fails with the
/// exact command to run.
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| dpkg_version(p).is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    if !is_root() {
        bail!("missing Debian packages {missing:?}; run as root:\n    sudo sh -c '{command}'");
    }
    println!("installing {missing:?} (as root)");
    let status = Command::new("sh")
        .args(["-c", &format!("DEBIAN_FRONTEND=noninteractive {command} >/dev/null")])
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("`{command}` failed ({status})");
    }
    Ok(())
}

fn package_file(package: &str, suffix: &str) -> Option<PathBuf> {
    let out = Command::new("dpkg").args(["-L", package]).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with(suffix) && Path::new(l).is_file())
        .map(PathBuf::from)
}

/// rustup's rust-lld (present in every rustup toolchain).
fn find_lld() -> Result<PathBuf> {
    if let Ok(explicit) = std::env::var("WEIR_LLD") {
        return Ok(PathBuf::from(explicit));
    }
    let out = Command::new("rustc").args(["--print", "sysroot"]).env_remove("RUSTC").output();
    if let Ok(out) = out {
        let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let lld = sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld");
        if lld.is_file() {
            return Ok(lld);
        }
    }
    for candidate in ["/usr/bin/lld-link-22", "/usr/lib/llvm-22/bin/lld-link"] {
        if Path::new(candidate).is_file() {
            return Ok(PathBuf::from(candidate));
        }
    }
    bail!("no rust-lld found in the rustup toolchain and no lld-22; install `lld-22` or set WEIR_LLD")
}

/// Finds (installing if allowed) and checks the cross toolchain.
pub fn cross_toolchain() -> Result<Toolchain> {
    ensure_packages(BUILD_PACKAGES)?;
    let rustc = package_file("rustc-web", "/bin/rustc").context("rustc-web installs no rustc")?;
    let cargo = package_file("cargo-web", "/bin/cargo").context("cargo-web installs no cargo")?;
    let compiler = dpkg_version("rustc-web").unwrap_or_default();
    let source = dpkg_version("rust-web-src").unwrap_or_default();
    if compiler != source {
        bail!(
            "rustc-web {compiler} and rust-web-src {source} differ: -Zbuild-std needs the library \
             source of the same compiler; run `apt-get install rustc-web rust-web-src` to align them"
        );
    }
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().context("running rustc-web")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let library = sysroot.join("lib/rustlib/src/rust/library");
    if !library.join("core").is_dir() {
        bail!("library source missing at {} (package rust-web-src)", library.display());
    }
    // Same check from the other side: the source's release notes name the
    // compiler's version.
    let version_line = Command::new(&rustc).arg("-V").output().context("rustc -V")?;
    let version = String::from_utf8_lossy(&version_line.stdout).split_whitespace().nth(1).unwrap_or("").to_string();
    if let Ok(notes) = std::fs::read_to_string(sysroot.join("lib/rustlib/src/rust/RELEASES.md")) {
        let first = notes.lines().find(|l| l.starts_with("Version ")).unwrap_or("");
        if !first.contains(&format!("Version {version} ")) {
            bail!("library source is for `{first}` but the compiler is {version}");
        }
    }
    Ok(Toolchain { rustc, cargo, lld: find_lld()?, version })
}

/// osslsigncode (signing and independent verification), 2.x. Debian 12's
/// own 2.5 lacks fixes the package needs; bookworm-backports has 2.9.
pub fn osslsigncode() -> Result<PathBuf> {
    let found = |path: &str| {
        Command::new(path)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr))
    };
    if let Some(text) = found("osslsigncode") {
        let version = text.split_whitespace().nth(1).unwrap_or("").trim_end_matches(',').to_string();
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) >= (2, 7) {
            return Ok(PathBuf::from("osslsigncode"));
        }
        println!("osslsigncode {version} is too old (need 2.7 or later)");
    }
    let command = "echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list \
        && apt-get update && apt-get install -y -t bookworm-backports osslsigncode";
    if !is_root() {
        bail!("osslsigncode 2.7+ is needed; run as root:\n    sudo sh -c \"{command}\"");
    }
    println!("installing osslsigncode from bookworm-backports (as root)");
    let status = Command::new("sh")
        .args(["-c", &format!("export DEBIAN_FRONTEND=noninteractive; {command} >/dev/null")])
        .status()
        .context("running apt-get")?;
    if !status.success() || found("osslsigncode").is_none() {
        bail!("installing osslsigncode failed; run: {command}");
    }
    Ok(PathBuf::from("osslsigncode"))
}

/// `cargo xtask setup`.
pub fn setup() -> Result<()> {
    let tc = cross_toolchain()?;
    println!("cross compiler: {} ({})", tc.rustc.display(), tc.version);
    println!("cross cargo:    {}", tc.cargo.display());
    println!("linker:         {}", tc.lld.display());
    println!("osslsigncode:   {}", osslsigncode()?.display());
    Ok(())
}
