//! The Wine kernel stage of `cargo xtask test`: the shipped weir.sys in Wine 8's
//! kernel-driver host (winedevice.exe), driven by the shipped weirctl.exe.
//!
//! Wine runs Windows drivers in user mode and implements part of the kernel API; the driver
//! imports what Wine lacks from `fwpkclnt.sys`, so a test-only stand-in of it
//! (`tests/wine/fwpkclnt.c`, never in the package) holds an in-memory filter engine that
//! follows `tests/wine/wfp_rules.toml`, fills the ntoskrnl routines Wine lacks or stubs
//! (without changing a byte of weir.sys) and gives this stage a localhost channel to inject
//! classifications, change BFE state, read the engine and fail the n-th call of a routine.
//!
//! The stage: a fresh prefix under `target/wine-kernel/`, the signed image and tool from the
//! package, the service created and started with `sc`, every command logged under
//! `test-artifacts/wine/`. What it proves beyond the emulator, and what it cannot (Wine does
//! no access check, sends no IRP_MJ_CLEANUP, has no IRQL and no real WFP), is in the README's
//! "What is verified where". The checks are in [`checks`]; the stand-in's build and the
//! import check in [`stand_in`]; the prefix and the channel in [`host`].

mod checks;
mod host;
mod matrix;
pub mod stand_in;
mod stress;

use crate::build::rel;
use crate::{repo_root, toolchain};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Instant;

/// A failed check: what was expected and what happened.
pub struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let text = what();
            println!("  [FAIL] {text}");
            self.0.push(text);
        }
    }
}

/// Runs the stage on the signed `image` and `tool` (weirctl.exe).
pub fn stage(image: &Path, tool: &Path) -> Result<()> {
    toolchain::ensure_packages(toolchain::BUILD_PACKAGES)?;
    let started = Instant::now();
    let root = repo_root();
    let work = root.join("target").join("wine-kernel");
    let logs = root.join("test-artifacts").join("wine");
    if logs.exists() {
        std::fs::remove_dir_all(&logs)?;
    }
    let stand_in = stand_in::build(&work.join("build"))?;
    let gap = stand_in::import_gap(image, &stand_in)?;
    if !gap.is_empty() {
        bail!(
            "{} imports routines neither Wine 8 nor the fwpkclnt.sys stand-in provides: {}. Fill them in \
             tests/wine/fwpkclnt.c (README, Tests: the Wine kernel stage) before this stage can run",
            rel(image),
            gap.join(", ")
        );
    }
    println!("image {} and tool {}; stand-in {}", rel(image), rel(tool), rel(&stand_in));
    let bcrypt = work.join("build").join("bcryptprimitives.dll");
    crate::weirctl::build_stand_in(&work.join("build"))?;
    let mut host = host::Host::create(&work.join("prefix"), &logs)?;
    host.install(image, host::DRIVER_PATH)?;
    // The stored-policy directory scripts/Install-Weir.ps1 creates (without its DACL: Wine
    // does not enforce one); `weirctl policy load` writes weir.policy there.
    std::fs::create_dir_all(host.c_path("C:\\windows\\system32\\drivers\\weir"))?;
    host.install(&stand_in, "C:\\windows\\system32\\drivers\\fwpkclnt.sys")?;
    host.install(tool, host::TOOL_PATH)?;
    host.install(&bcrypt, "C:\\weir\\bcryptprimitives.dll")?;
    host.install(&work.join("build").join("fwpk-rules.exe"), "C:\\weir\\fwpk-rules.exe")?;
    host.hold("C:\\weir\\fwpk-rules.exe")?;
    println!("prefix {} ready in {:.1} s", rel(&host.prefix), started.elapsed().as_secs_f64());
    let mut failures = Failures(Vec::new());
    let result = checks::run_all(&mut host, &mut failures);
    let took = started.elapsed().as_secs_f64();
    let driver_log = logs.join("prefix-files");
    let _ = std::fs::create_dir_all(&driver_log);
    for f in ["refused.txt", "port.txt"] {
        let _ = std::fs::copy(host.c_path(&format!("C:\\weirtest\\{f}")), driver_log.join(f));
    }
    println!("Wine kernel stage: {:.1} s, logs in {}", took, rel(&logs));
    result.context("the Wine kernel stage could not finish")?;
    if !failures.0.is_empty() {
        bail!("{} check(s) of the Wine kernel stage failed (see {})", failures.0.len(), rel(&logs));
    }
    Ok(())
}
