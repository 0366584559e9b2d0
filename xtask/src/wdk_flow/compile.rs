//! `cargo xtask test` stage: compile, on Linux, what the build step of each
//! Windows flow compiles — the same package selections, features, profile and
//! target — standing in only for what needs the WDK.
//!
//! What the flows run (read from the tools' sources, not assumed):
//! - `cargo make` (wdk-build 0.6.0's rust-driver-makefile.toml on cargo-make
//!   0.37.24): the makefile sets `CARGO_MAKE_EXTEND_WORKSPACE_MAKEFILE`, so
//!   cargo-make visits every workspace member and runs its `build` task,
//!   `cargo build` plus the forwarded cargo arguments, in the member's
//!   directory. In a member's directory cargo selects that package; in the
//!   root, which is also the driver package, it selects the workspace's
//!   `default-members` together, and that one invocation unifies their
//!   features (the fault this stage was written for: a tool turning on a
//!   `std` feature of a crate the driver links).
//! - `cargo wdk build` (cargo-wdk 0.2.0, `actions/build/build_task.rs`): for
//!   every workspace package, `cargo build -p <package> --manifest-path
//!   <package>/Cargo.toml [--profile] [--target] [--locked]`.
//!
//! So the distinct compilations are the root's `default-members` and each
//! package on its own. Each runs here as `cargo check` for the Windows target
//! with `.cargo/config.toml`'s rustflags in force (crt-static, as on a Windows
//! host: no RUSTFLAGS variable), Debian's compiler with `-Zbuild-std` (no
//! prebuilt Windows std exists for it), and one stand-in: crates.io's
//! `wdk-sys` patched with `tests/wdk-flow/wdk-sys`, an empty crate of the same
//! name, version and features, because the real one runs bindgen over the
//! installed WDK and refuses non-Windows hosts. The patch changes the lock
//! file, so cargo uses a copy under `target/wdk-flow/`, never the
//! repository's. wdk-build itself is a build dependency for Windows hosts only
//! (Cargo.toml), so here build.rs takes its Linux branch, which for `check`
//! passes nothing to rustc.
//!
//! What this cannot show: `check` stops before code generation and linking
//! (link.exe, the WDK's libraries and wdk-build's link arguments exist only on
//! Windows), and wdk-sys' real bindings are not compiled. The Linux flow
//! (`cargo xtask build`) does generate and link the driver.

use crate::{repo_root, step, toolchain};
use anyhow::{bail, Context, Result};
use cargo_metadata::Metadata;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target of a Windows x64 host, where both flows build without `--target`.
pub const DEFAULT_TARGET: &str = crate::build::TARGET;

/// What `cargo xtask test` compiles for: x64 and ARM64 Windows hosts.
pub const CI_TARGETS: [&str; 2] = [DEFAULT_TARGET, "aarch64-pc-windows-msvc"];

/// The flow a compilation stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// `cargo make`: one `cargo build` per workspace member directory.
    CargoMake,
    /// `cargo wdk build`: one `cargo build -p <package>` per workspace package.
    CargoWdk,
}

/// One `cargo build` a flow runs, as a `cargo check` here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compilation {
    /// The flows that run exactly this selection.
    pub flows: Vec<Flow>,
    /// Directory cargo runs in.
    pub dir: PathBuf,
    /// Package selection arguments (empty: cargo's default for `dir`).
    pub selection: Vec<String>,
    /// What is selected, for messages: `default-members (...)` or the package.
    pub label: String,
}

/// The compilations of both flows' build steps for this workspace, each
/// distinct selection once (with the flows that run it).
///
/// `metadata` must be plain `cargo metadata` of the repository (workspace
/// members, their directories and the root's `default-members`).
pub fn compilations(metadata: &Metadata) -> Result<Vec<Compilation>> {
    let root = metadata.workspace_root.as_std_path().to_path_buf();
    let members: Vec<&cargo_metadata::Package> = metadata.workspace_packages();
    let mut out: Vec<Compilation> = Vec::new();
    for package in &members {
        let dir = package.manifest_path.parent().context("manifest without a directory")?.as_std_path().to_path_buf();
        let name = package.name.to_string();
        // cargo-make: `cargo build` in the member's directory.
        let make = if dir == root {
            let defaults: Vec<String> = metadata
                .workspace_default_members
                .iter()
                .filter_map(|id| metadata.packages.iter().find(|p| &p.id == id))
                .map(|p| p.name.to_string())
                .collect();
            Compilation {
                flows: vec![Flow::CargoMake],
                dir: dir.clone(),
                selection: Vec::new(),
                label: format!("default-members ({})", defaults.join(", ")),
            }
        } else {
            Compilation { flows: vec![Flow::CargoMake], dir: dir.clone(), selection: Vec::new(), label: name.clone() }
        };
        // cargo-wdk: `cargo build -p <name> --manifest-path <dir>/Cargo.toml`.
        let wdk = Compilation {
            flows: vec![Flow::CargoWdk],
            dir: dir.clone(),
            selection: vec!["-p".into(), name.clone(), "--manifest-path".into(), dir.join("Cargo.toml").display().to_string()],
            label: name.clone(),
        };
        for c in [make, wdk] {
            // A member directory's plain `cargo build` selects the same single
            // package as cargo-wdk's `-p`: one compilation for both flows.
            // Kept in cargo-wdk's explicit form.
            if let Some(same) = out.iter_mut().find(|o| o.label == c.label && o.dir == c.dir) {
                same.flows.extend(c.flows);
                if same.selection.is_empty() {
                    same.selection = c.selection;
                }
            } else {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// `cargo xtask test` stage (and `cargo xtask wdk-compile`): every
/// compilation of [`compilations`] for `targets` (dev profile, as plain
/// `cargo make` and `cargo wdk build`), failing with the selections that do
/// not compile.
pub fn run(targets: &[&str]) -> Result<()> {
    step("WDK flows' build step, compiled on Linux (cargo check, crt-static, wdk-sys stand-in)");
    let tc = toolchain::cross_toolchain()?;
    let root = repo_root();
    let metadata = super::plain_metadata()?;
    let work = root.join("target/wdk-flow");
    std::fs::create_dir_all(&work)?;
    let lock = work.join("Cargo.lock");
    // A fresh copy each run: the patch rewrites it.
    std::fs::copy(root.join("Cargo.lock"), &lock).context("copying Cargo.lock")?;
    let stand_in = root.join("tests/wdk-flow/wdk-sys");

    let mut failed = Vec::new();
    for target in targets {
        for c in compilations(&metadata)? {
            let flows: Vec<&str> = c.flows.iter().map(|f| match f {
                Flow::CargoMake => "cargo make",
                Flow::CargoWdk => "cargo wdk build",
            }).collect();
            println!("  [{}] {} for {target}", flows.join(" + "), c.label);
            let status = check_command(&tc, &c, target, &work, &lock, &stand_in)
                .status()
                .context("running the Debian cargo")?;
            if !status.success() {
                failed.push(format!("{} ({}) for {target}", c.label, flows.join(" + ")));
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "the WDK flows' build step does not compile for:\n  {}\n(a crate the driver links may have a feature that brings in std: see crates/weir-policy/Cargo.toml)",
            failed.join("\n  ")
        );
    }
    Ok(())
}

/// The `cargo check` standing for one compilation (see the module doc).
fn check_command(
    tc: &toolchain::Toolchain,
    c: &Compilation,
    target: &str,
    work: &Path,
    lock: &Path,
    stand_in: &Path,
) -> Command {
    let mut cmd = Command::new(&tc.cargo);
    cmd.current_dir(&c.dir)
        .arg("check")
        .args(&c.selection)
        .args(["--target", target, "--message-format", "short", "--quiet"])
        .args(["-Zbuild-std=std,panic_abort", "-Zlockfile-path"])
        .arg("--config")
        .arg(format!("resolver.lockfile-path={:?}", lock.display().to_string()))
        .arg("--config")
        .arg(format!("patch.crates-io.wdk-sys.path={:?}", stand_in.display().to_string()))
        .arg("--target-dir")
        .arg(work)
        // As on a Windows host: .cargo/config.toml's rustflags (crt-static)
        // apply, which a RUSTFLAGS-like variable would replace.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR")
        .env("RUSTC", &tc.rustc)
        .env("RUSTC_BOOTSTRAP", "1");
    cmd
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    // Both flows' selections, from this repository's metadata: the root's
    // default-members once (cargo make only), and every package once, run by
    // both flows.
    #[test]
    fn the_root_builds_default_members_and_every_package_builds_alone() {
        let metadata = crate::wdk_flow::plain_metadata().unwrap();
        let all = compilations(&metadata).unwrap();
        let root = metadata.workspace_root.as_std_path();
        let at_root: Vec<&Compilation> = all.iter().filter(|c| c.dir == root && c.selection.is_empty()).collect();
        assert_eq!(at_root.len(), 1);
        assert_eq!(at_root[0].flows, [Flow::CargoMake]);
        assert!(at_root[0].label.starts_with("default-members (") && at_root[0].label.contains("weir-client"));
        for package in metadata.workspace_packages() {
            let alone: Vec<&Compilation> = all.iter().filter(|c| c.label == package.name.as_str()).collect();
            assert_eq!(alone.len(), 1, "{}: {alone:?}", package.name);
            let c = alone[0];
            assert!(c.flows.contains(&Flow::CargoWdk), "cargo-wdk builds {}", package.name);
            assert_eq!(c.selection[..2], ["-p".to_string(), package.name.to_string()]);
            // In a member directory, cargo make's plain `cargo build` is the
            // same selection; at the root it is default-members instead.
            let is_root = package.manifest_path.parent().unwrap().as_std_path() == root;
            assert_eq!(c.flows.contains(&Flow::CargoMake), !is_root, "{}", package.name);
        }
        assert_eq!(all.len(), metadata.workspace_packages().len() + 1);
    }
}
