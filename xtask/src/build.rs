//! The Linux build of weir.sys.

use crate::{repo_root, step, toolchain};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default target: Windows x64. `--target aarch64-pc-windows-msvc`
/// builds for ARM64 (`weir_inf::Arch` lists both).
pub const TARGET: &str = "x86_64-pc-windows-msvc";

/// Where the built driver lands, as in the WDK flow's layout.
pub fn output_dir() -> PathBuf {
    output_dir_for(TARGET)
}

/// [`output_dir`] for another target.
pub fn output_dir_for(target: &str) -> PathBuf {
    repo_root().join("target").join(target).join("release")
}

pub fn image_path() -> PathBuf {
    output_dir().join("weir.sys")
}


/// Cross build directory, apart from the host build's (different compiler).
fn cross_dir() -> PathBuf {
    repo_root().join("target").join("cross")
}

/// The rustflags of the cross build, passed as CARGO_ENCODED_RUSTFLAGS.
///
/// By cargo's precedence this variable replaces every `rustflags` of
/// .cargo/config.toml, so the WDK flow's `crt-static` never reaches this
/// build, and with it none of the WDK flow's dependencies (Cargo.toml);
/// `wdk_flow` tests check both.
pub fn cross_rustflags(root: &Path) -> String {
    // Source paths in the PDB start at `weir\` rather than this machine's
    // checkout; WinDbg's .srcpath maps them to wherever the user's is.
    format!("--remap-path-prefix={}=weir", root.display())
}

/// Builds weir.sys and weir.pdb for x64; returns the image path.
pub fn build(check: bool) -> Result<PathBuf> {
    build_for(check, TARGET)
}

/// Builds weir.sys and weir.pdb for `target` (x64 or ARM64) into
/// [`output_dir_for`]; with `check`, the static image checks run and the
/// image's machine type must be `target`'s.
pub fn build_for(check: bool, target: &str) -> Result<PathBuf> {
    let arch = weir_inf::Arch::from_rust_target(target)?;
    step("toolchain");
    let tc = toolchain::cross_toolchain()?;
    println!("rustc {} ({}), linker {}", tc.version, tc.rustc.display(), tc.lld.display());

    step(&format!("build weir for {target}"));
    let root = repo_root();
    let mut cmd = Command::new(&tc.cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "--package", "weir", "--lib", "--target", target])
        .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem"])
        .arg("--target-dir")
        .arg(cross_dir())
        .arg("--config")
        .arg(format!("target.{target}.linker={:?}", tc.lld.display().to_string()))
        // The outer cargo (rustup's) must not leak into the Debian one.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env("RUSTC", &tc.rustc)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_ENCODED_RUSTFLAGS", cross_rustflags(&root));
    let status = cmd.status().context("running the cross cargo")?;
    if !status.success() {
        bail!("cross build failed ({status})");
    }

    let built = cross_dir().join(target).join("release");
    let out = output_dir_for(target);
    std::fs::create_dir_all(&out)?;
    let (image, pdb) = (out.join("weir.sys"), out.join("weir.pdb"));
    copy(&built.join("weir.dll"), &image)?;
    copy(&built.join("weir.pdb"), &pdb)?;
    println!("image: {}", rel(&image));
    println!("pdb:   {}", rel(&pdb));

    if check {
        step("check image");
        let report = weir_image::check_driver(&image, Some(&pdb))?;
        for c in &report.checks {
            println!("  {c}");
        }
        if !report.ok() {
            bail!("the image fails {} check(s)", report.failures().count());
        }
        if report.machine != arch.machine() {
            bail!("the image's machine type is {:#06x}, not {target}'s {:#06x}", report.machine, arch.machine());
        }
    }
    Ok(image)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Path relative to the repository root, for messages.
pub fn rel(path: &Path) -> String {
    path.strip_prefix(repo_root()).unwrap_or(path).display().to_string()
}

/// `cargo xtask check-image`.
pub fn check_image_cmd(image: Option<PathBuf>, pdb: Option<PathBuf>) -> Result<()> {
    let image = image.unwrap_or_else(image_path);
    let pdb = pdb.or_else(|| {
        let p = image.with_extension("pdb");
        p.is_file().then_some(p)
    });
    let report = weir_image::check_driver(&image, pdb.as_deref())?;
    for c in &report.checks {
        println!("{c}");
    }
    println!("imports:");
    for (m, f) in &report.imports {
        println!("  {m}!{f}");
    }
    if !report.ok() {
        bail!("{} check(s) failed", report.failures().count());
    }
    Ok(())
}
