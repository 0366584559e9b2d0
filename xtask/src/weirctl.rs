//! weirctl.exe on Linux: the cross build, its signature, and the Wine test stage.
//!
//! Build: target `x86_64-pc-windows-gnu`, Debian's `x86_64-w64-mingw32-gcc` as linker, and
//! std built from Debian's `rust-web-src` with `-Zbuild-std=std,panic_abort` by the same
//! `rustc-web` the driver uses ([`toolchain::cross_toolchain`]). The signed exe lands beside
//! the driver package (`target/x86_64-pc-windows-msvc/release/weirctl.exe`), signed with the
//! package's certificate.
//!
//! Wine: Debian's `wine64` runs the exe in a prefix under `target/`; the checks themselves
//! are `crates/weirctl/tests/cli.rs` (its Wine tests, `#[ignore]`d in plain `cargo test`):
//! help and usage errors (text and `--json`), `policy check` on the examples and on every
//! broken file of `crates/weirctl/tests/policies` (positions, every error, encodings, warnings,
//! `--deny-warnings`, `--drive-map`), `policy explain` and `policy diff` on the examples, and
//! the driver commands' errors without a driver.
//! Wine 8 has no `bcryptprimitives.dll` (std's `ProcessPrng`), so the stage builds a test-only
//! stand-in from `tests/wine/bcryptprimitives.c` next to a copy of the exe in
//! `target/wine-test/`; it never enters the package.

use crate::build::{self, rel};
use crate::{repo_root, toolchain};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use weir_sign::SigningCert;

/// The Windows target of the tool.
pub const TARGET: &str = "x86_64-pc-windows-gnu";
/// The mingw-w64 C compiler, used as the linker and for the test-only DLL.
pub const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";
/// Debian's 64-bit Wine loader.
pub const WINE64: &str = "/usr/lib/wine/wine64";
/// Its server; kept running for the whole stage so each test run does not start one.
pub const WINESERVER: &str = "/usr/lib/wine/wineserver";

/// The signed tool, beside the driver package directory.
pub fn exe_path() -> PathBuf {
    build::output_dir().join("weirctl.exe")
}

fn cross_dir() -> PathBuf {
    repo_root().join("target").join("cross-gnu")
}

/// Builds weirctl.exe (unsigned); returns its path in the cross target directory.
pub fn build_exe() -> Result<PathBuf> {
    let tc = toolchain::cross_toolchain()?;
    let root = repo_root();
    println!("rustc {} ({}), linker {MINGW_GCC}", tc.version, tc.rustc.display());
    let status = Command::new(&tc.cargo)
        .current_dir(&root)
        .args(["build", "--release", "--package", "weirctl", "--bin", "weirctl", "--target", TARGET])
        .args(["-Zbuild-std=std,panic_abort"])
        .arg("--target-dir")
        .arg(cross_dir())
        .arg("--config")
        .arg(format!("target.{TARGET}.linker={MINGW_GCC:?}"))
        // The workspace's release profile is the driver's (full debug info for WinDbg); the
        // tool ships without symbols.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env("RUSTC", &tc.rustc)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_ENCODED_RUSTFLAGS", format!("--remap-path-prefix={}=weir", root.display()))
        .status()
        .context("running the cross cargo for weirctl")?;
    if !status.success() {
        bail!("weirctl.exe cross build failed ({status})");
    }
    let exe = cross_dir().join(TARGET).join("release").join("weirctl.exe");
    if !exe.is_file() {
        bail!("the build left no {}", exe.display());
    }
    Ok(exe)
}

/// Builds, signs (Authenticode SHA-256, the package's certificate and time) and verifies
/// weirctl.exe beside the package. Returns the signed exe's path.
pub fn package_exe(osslsigncode: &Path, signer: &SigningCert, time: i64) -> Result<PathBuf> {
    let unsigned = build_exe()?;
    let scratch = build::output_dir().join("sign-scratch");
    std::fs::create_dir_all(&scratch)?;
    let pem = signer.pem_files(&scratch)?;
    let out = exe_path();
    if out.exists() {
        std::fs::remove_file(&out)?;
    }
    let status = Command::new(osslsigncode)
        .arg("sign")
        .arg("-certs")
        .arg(&pem.cert)
        .arg("-key")
        .arg(&pem.key)
        .args(["-h", "sha256", "-n", "weirctl"])
        .args(["-time", &time.to_string()])
        .arg("-in")
        .arg(&unsigned)
        .arg("-out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running osslsigncode")?;
    if !status.success() {
        bail!("osslsigncode sign weirctl.exe failed ({status})");
    }
    let verify = Command::new(osslsigncode)
        .arg("verify")
        .arg("-CAfile")
        .arg(&pem.cert)
        .arg("-in")
        .arg(&out)
        .output()
        .context("running osslsigncode verify")?;
    let text = String::from_utf8_lossy(&verify.stdout).to_string() + &String::from_utf8_lossy(&verify.stderr);
    if !verify.status.success() || !text.contains("Succeeded") {
        bail!("osslsigncode verify weirctl.exe failed:\n{text}");
    }
    println!("  [ok] osslsigncode: weirctl.exe Authenticode signature");
    drop(pem);
    Ok(out)
}

/// Builds the test-only `bcryptprimitives.dll` stand-in into `dir`.
pub fn build_stand_in(dir: &Path) -> Result<()> {
    let source = repo_root().join("tests/wine/bcryptprimitives.c");
    let status = Command::new(MINGW_GCC)
        .args(["-shared", "-O2", "-s", "-o"])
        .arg(dir.join("bcryptprimitives.dll"))
        .arg(&source)
        .arg("-ladvapi32")
        .status()
        .with_context(|| format!("running {MINGW_GCC}"))?;
    if !status.success() {
        bail!("building the bcryptprimitives.dll stand-in failed ({status})");
    }
    Ok(())
}

/// The Wine stage of `cargo xtask test`: copies `exe` into `target/wine-test/` beside the
/// stand-in DLL and runs the Wine tests of `crates/weirctl/tests/cli.rs` against it.
pub fn wine_tests(exe: &Path) -> Result<()> {
    toolchain::ensure_packages(toolchain::BUILD_PACKAGES)?;
    let root = repo_root();
    let dir = root.join("target").join("wine-test");
    std::fs::create_dir_all(&dir)?;
    let test_exe = dir.join("weirctl.exe");
    std::fs::copy(exe, &test_exe).with_context(|| format!("copying {}", exe.display()))?;
    build_stand_in(&dir)?;
    let prefix = root.join("target").join("wine-prefix");
    println!("exe {} (copy of {}), prefix {}", rel(&test_exe), rel(exe), rel(&prefix));
    let wine_env = |c: &mut Command| {
        c.env("WINEPREFIX", &prefix).env("WINEDEBUG", "-all").env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    };
    // A persistent server (60 s after the last client) saves starting one per run.
    let mut server = Command::new(WINESERVER);
    server.arg("-p60");
    wine_env(&mut server);
    let _ = server.status();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["test", "--package", "weirctl", "--test", "cli", "--", "--ignored", "--test-threads=1"])
        .env("WEIRCTL_WINE_EXE", &test_exe)
        .env("WEIRCTL_WINE", WINE64)
        .env("WINEPREFIX", &prefix)
        .env("WINEDEBUG", "-all")
        // Console programs need no display; keep Wine from looking for one.
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .status()
        .context("running the Wine tests");
    let mut kill = Command::new(WINESERVER);
    kill.arg("-k");
    wine_env(&mut kill);
    let _ = kill.status();
    let status = status?;
    if !status.success() {
        bail!("weirctl under Wine failed ({status})");
    }
    Ok(())
}
