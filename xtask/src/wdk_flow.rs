//! The WDK flow (windows-drivers-rs' `cargo make`, Windows only), checked on
//! Linux as far as it goes without the WDK.
//!
//! - [`task_graph`] (a `cargo xtask test` stage) asks cargo-make itself,
//!   with `--print-steps`, which tasks `cargo make` runs for the driver, in
//!   which order, and what our override of `copy-inx-to-output` resolves to.
//! - [`compile`] (a `cargo xtask test` stage) compiles what the build step of
//!   `cargo make` and of `cargo wdk build` compiles, for the same selections.
//! - `tests` (in `cargo test --workspace`) check resolution, arguments,
//!   crt-static, the INF tasks, DriverVer, the workflow and rust-version.

pub mod compile;
#[cfg(test)]
mod tests;

use crate::{repo_root, step, toolchain};
use anyhow::{bail, Context, Result};
use cargo_metadata::{Metadata, MetadataCommand};
use std::path::PathBuf;
use std::process::Command;

/// What `cargo make` runs for the driver package once `package-driver-flow`'s
/// condition holds (wdk-build 0.6.0's rust-driver-makefile.toml with
/// cargo-make 0.37.24), in order. A change of either shows up here first.
pub const PACKAGE_DRIVER_STEPS: &[&str] = &[
    "wdk-build-init",
    "setup-wdk-config-env-vars",
    "build",
    "generate-driver-binary-file",
    "copy-driver-binary-to-package",
    "copy-pdb-to-package",
    "copy-inx-to-output",
    "stampinf",
    "copy-inf-to-package",
    "generate-certificate",
    "copy-certificate-to-package",
    "sign-driver-binary",
    "verify-signature-driver-binary",
    "inf2cat",
    "sign-cat",
    "verify-signature-cat",
    "infverif",
    "package-driver",
];

/// Plain `cargo metadata` (no features, every platform): the call
/// `wdk_build::cargo_make::load_rust_driver_makefile()` makes.
pub fn plain_metadata() -> Result<Metadata> {
    MetadataCommand::new().current_dir(repo_root()).exec().context("cargo metadata")
}

/// wdk-build's rust-driver-makefile.toml, as load_rust_driver_makefile()
/// finds it: next to the manifest of the one wdk-build in the metadata.
pub fn upstream_makefile_path(metadata: &Metadata) -> Result<PathBuf> {
    let found: Vec<_> = metadata.packages.iter().filter(|p| p.name.as_str() == "wdk-build").collect();
    let [wdk_build] = found.as_slice() else {
        bail!("plain `cargo metadata` lists {} wdk-build packages; load_rust_driver_makefile() needs exactly one", found.len());
    };
    let dir = wdk_build.manifest_path.parent().context("wdk-build manifest path")?;
    Ok(dir.join("rust-driver-makefile.toml").into_std_path_buf())
}

/// Lays out what `load_script` would make, in a scratch directory: our
/// Makefile.toml without its `load_script` (it compiles wdk-build with
/// rust-script, and wdk-build refuses non-Windows hosts), extending a copy
/// of the rust-driver-makefile.toml that load_rust_driver_makefile() would
/// symlink, plus one public task depending on the private `package-driver`
/// so that cargo-make prints its plan.
fn scratch_makefile() -> Result<PathBuf> {
    let upstream = upstream_makefile_path(&plain_metadata()?)?;
    let dir = repo_root().join("target/tmp/wdk-flow-graph");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(&upstream, dir.join("rust-driver-makefile.toml"))
        .with_context(|| format!("copying {}", upstream.display()))?;
    let mut ours: toml::Table = std::fs::read_to_string(repo_root().join("Makefile.toml"))?.parse()?;
    if ours.get("extend").and_then(|e| e.as_str()) != Some("target/rust-driver-makefile.toml") {
        bail!("Makefile.toml must extend target/rust-driver-makefile.toml (where load_rust_driver_makefile() links it)");
    }
    ours.insert("extend".into(), "rust-driver-makefile.toml".into());
    let config = ours.get_mut("config").and_then(|c| c.as_table_mut()).context("Makefile.toml [config]")?;
    config.remove("load_script").context("Makefile.toml has no load_script")?;
    let tasks = ours
        .entry("tasks")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .context("Makefile.toml's `tasks` is not a table")?;
    let mut probe = toml::Table::new();
    probe.insert("dependencies".into(), toml::Value::Array(vec!["package-driver".into()]));
    tasks.insert("weir-print-package-driver".into(), toml::Value::Table(probe));
    let path = dir.join("Makefile.toml");
    std::fs::write(&path, toml::to_string(&ours)?)?;
    Ok(path)
}

/// `cargo make --print-steps`: the plan, nothing run.
fn print_steps(cargo: &PathBuf, makefile: &PathBuf, task: &str, short: bool) -> Result<String> {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args(["make", "--disable-check-for-updates", "--no-workspace", "--makefile"])
        .arg(makefile)
        .arg("--print-steps");
    if short {
        cmd.args(["--output-format", "short-description"]);
    }
    let out = cmd.arg(task).output().context("running cargo-make")?;
    if !out.status.success() {
        bail!("cargo make --print-steps {task} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Task names of `--output-format short-description` lines (`N. name - text`).
fn step_names(plan: &str) -> Vec<String> {
    plan.lines()
        .filter_map(|l| {
            let (number, rest) = l.split_once(". ")?;
            number.trim().parse::<u32>().ok()?;
            Some(rest.split(" - ").next()?.trim().to_string())
        })
        .collect()
}

/// `cargo xtask test` stage: cargo-make's own plan for the driver package.
pub fn task_graph() -> Result<()> {
    step("WDK flow task graph (cargo-make --print-steps on our Makefile.toml)");
    let cargo = toolchain::cargo_make()?;
    let makefile = scratch_makefile()?;

    let plan = step_names(&print_steps(&cargo, &makefile, "weir-print-package-driver", true)?);
    let mut expected: Vec<String> = PACKAGE_DRIVER_STEPS.iter().map(|s| (*s).to_string()).collect();
    expected.extend(["weir-print-package-driver".to_string(), "end".to_string()]);
    println!("  package-driver plan: {}", plan.join(" -> "));
    if plan != expected {
        bail!("cargo-make's plan differs from the one this repository was checked against:\n  got      {plan:?}\n  expected {expected:?}");
    }

    // `cargo make` = `default`, wdk-build's alias of package-driver-flow,
    // which builds first and then runs package-driver as a sub-flow.
    let default = step_names(&print_steps(&cargo, &makefile, "default", true)?);
    println!("  default plan: {}", default.join(" -> "));
    if default != ["wdk-build-init", "build", "default", "end"] {
        bail!("`cargo make` (default) plan is {default:?}");
    }

    // The resolved copy-inx-to-output is ours (wdk-build's runner and args,
    // our script reading driver.inx) and runs before stampinf.
    let full = print_steps(&cargo, &makefile, "weir-print-package-driver", false)?;
    let start = full.find("name: \"copy-inx-to-output\"").context("no copy-inx-to-output step")?;
    let end = full[start..].find("name: \"stampinf\"").map_or(full.len(), |e| start + e);
    let task = &full[start..end];
    for needed in ["driver.inx", "WDK_BUILD_OUTPUT_DIRECTORY", "CARGO_MAKE_CRATE_FS_NAME", "\"@rust\""] {
        if !task.contains(needed) {
            bail!("resolved copy-inx-to-output lacks {needed}:\n{task}");
        }
    }
    if task.contains("{}.inx") {
        bail!("cargo-make resolved wdk-build's copy-inx-to-output, not ours:\n{task}");
    }
    println!("  copy-inx-to-output resolves to Makefile.toml's script (driver.inx -> weir.inf)");
    Ok(())
}
