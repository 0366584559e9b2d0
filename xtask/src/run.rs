//! `cargo xtask test`: every test, in dependency order, with one summary.

use crate::{build, repo_root, step};
use anyhow::{bail, Result};
use std::process::Command;

struct Outcome {
    name: &'static str,
    ok: bool,
    /// Wall time since the previous stage ended (or since the start).
    secs: u64,
}

/// The stages' outcomes, each with the wall time it took, so the summary
/// shows where CI's time goes.
struct Outcomes {
    list: Vec<Outcome>,
    since: std::time::Instant,
}

impl Outcomes {
    fn push(&mut self, name: &'static str, ok: bool) {
        let secs = self.since.elapsed().as_secs();
        self.since = std::time::Instant::now();
        self.list.push(Outcome { name, ok, secs });
    }
}

fn cargo() -> Command {
    // The cargo that runs xtask (rustup's), for host builds and tests.
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

pub fn test_all(emulation: bool) -> Result<()> {
    let root = repo_root();
    let mut outcomes = Outcomes { list: Vec::new(), since: std::time::Instant::now() };

    let built = build::build(true);
    if let Err(e) = &built {
        eprintln!("error: {e:#}");
    }
    outcomes.push("image build + static checks", built.is_ok());

    step("driver package (cargo xtask package), twice: it must be byte-identical");
    let first = crate::package::package(&crate::package::SignOptions::default()).and_then(|dir| hashes(&dir));
    let second = crate::package::package(&crate::package::SignOptions::default())
        .and_then(|dir| hashes(&dir));
    let packaged = match (&first, &second) {
        (Ok(a), Ok(b)) if a == b => true,
        (Ok(_), Ok(_)) => {
            eprintln!("error: two package runs with the same inputs differ");
            false
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e:#}");
            false
        }
    };
    outcomes.push("signed package + verification + reproducibility", packaged);

    step("ARM64 driver package (cargo xtask package --target aarch64-pc-windows-msvc)");
    // Built, signed and verified like the x64 one; the emulator runs x64
    // code only, so nothing executes this image.
    let arm64 = crate::package::package(&crate::package::SignOptions {
        target: Some(weir_inf::Arch::Arm64.rust_target().to_string()),
        ..crate::package::SignOptions::default()
    });
    if let Err(e) = &arm64 {
        eprintln!("error: {e:#}");
    }
    outcomes.push("ARM64 signed package + verification", arm64.is_ok());

    step("host tests (cargo test --workspace), including the image tests");
    let ok = cargo()
        .current_dir(&root)
        .args(["test", "--workspace", "--no-fail-fast"])
        .env("WEIR_IMAGE", build::image_path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    outcomes.push("cargo test --workspace", ok);

    // The WDK flow cannot run here; cargo-make's own plan of it can.
    let graph = crate::wdk_flow::task_graph();
    if let Err(e) = &graph {
        eprintln!("error: {e:#}");
    }
    outcomes.push("WDK flow task graph (cargo-make)", graph.is_ok());

    // What those flows' build step compiles, for x64 and ARM64 hosts.
    let compiled = crate::wdk_flow::compile::run(&crate::wdk_flow::compile::CI_TARGETS);
    if let Err(e) = &compiled {
        eprintln!("error: {e:#}");
    }
    outcomes.push("WDK flows' build step compiled (cargo make, cargo wdk build)", compiled.is_ok());

    step("model check of the policy swap and the BFE session lock (loom): RUSTFLAGS=\"--cfg loom\" cargo test -p wfp-km --release --lib -- rcu bfe::loom_tests");
    // Own target directory: --cfg loom changes every crate's build, and must
    // not invalidate the normal one.
    let ok = cargo()
        .current_dir(&root)
        .args(["test", "-p", "wfp-km", "--release", "--lib", "--", "rcu", "bfe::loom_tests"])
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", root.join("target/loom"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    outcomes.push("loom model check (wfp-km rcu, BFE session)", ok);

    step("model-checked concurrency (loom): the event ring and its wake-up gate");
    // Own target directory: `--cfg loom` changes every crate's build. A
    // preemption bound of 3 explores every interleaving with up to three
    // forced context switches (about a minute here).
    let ok = cargo()
        .current_dir(&root)
        .args(["test", "-p", "weir-events", "--test", "loom", "--release"])
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", root.join("target/loom"))
        .env("LOOM_MAX_PREEMPTIONS", "3")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    outcomes.push("loom model check (weir-events)", ok);

    let emulation_runner = root.join("tests/emulation/run.sh");
    if emulation && emulation_runner.is_file() {
        // The shipped bytes: the signed image from the package when there is
        // one, else the unsigned build output.
        let signed = crate::package::package_dir().join(weir_package::SYS);
        let image = if packaged && signed.is_file() { signed } else { build::image_path() };
        step(&format!("emulation suite (tests/emulation) on {}", build::rel(&image)));
        let ok = built.is_ok()
            && Command::new("bash")
                .arg(&emulation_runner)
                // One worker per core (pytest-xdist): the suite is CI's longest stage.
                .args(["-n", "auto"])
                .current_dir(&root)
                .env("WEIR_IMAGE", &image)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        outcomes.push("emulation suite", ok);
    }

    step("lints (cargo clippy --workspace --all-targets --all-features -- -D warnings)");
    // The workspace lints deny unwrap/expect/panic/indexing and undocumented
    // unsafe; a warning here is a defect like a failing test.
    let ok = cargo()
        .current_dir(&root)
        .args(["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    outcomes.push("clippy (workspace lints)", ok);

    step("weirctl.exe under Wine (help, version, policy check, status without a driver)");
    let tool = crate::weirctl::exe_path();
    let ok = if packaged && tool.is_file() {
        crate::weirctl::wine_tests(&tool)
    } else {
        crate::weirctl::build_exe().and_then(|exe| crate::weirctl::wine_tests(&exe))
    };
    if let Err(e) = &ok {
        eprintln!("error: {e:#}");
    }
    outcomes.push("weirctl.exe under Wine", ok.is_ok());

    step("weir.sys + weirctl.exe under Wine's kernel-driver host (xtask/src/wine_kernel.rs)");
    // The shipped bytes only: the signed image and tool of the package.
    let signed = crate::package::package_dir().join(weir_package::SYS);
    let ok = if packaged && signed.is_file() && tool.is_file() {
        crate::wine_kernel::stage(&signed, &tool)
    } else {
        Err(anyhow::anyhow!("no signed package to run (the package stage failed)"))
    };
    if let Err(e) = &ok {
        eprintln!("error: {e:#}");
    }
    outcomes.push("weir.sys under Wine's kernel-driver host", ok.is_ok());

    let scripts_tests = root.join("tests/scripts");
    if scripts_tests.is_dir() {
        step("test-VM script checks (tests/scripts) and the emulation model against the WFP rules table (tests/wine)");
        // pytest from the emulation suite's virtual environment (pinned in
        // tests/emulation/requirements.txt), else the system's.
        let venv_python = std::env::var_os("WEIR_EMU_VENV")
            .map_or_else(|| root.join(".venv-emu"), std::path::PathBuf::from)
            .join("bin/python");
        let python = if venv_python.is_file() { venv_python } else { "python3".into() };
        let ok = Command::new(python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/scripts", "tests/wine"])
            .current_dir(&root)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        outcomes.push("script checks", ok);
    }

    step("summary");
    for o in &outcomes.list {
        println!("  [{}] {} ({} s)", if o.ok { "ok" } else { "FAIL" }, o.name, o.secs);
    }
    let failed = outcomes.list.iter().filter(|o| !o.ok).count();
    println!("xtask: {} passed, {} failed", outcomes.list.len() - failed, failed);
    if failed > 0 {
        bail!("{failed} test stage(s) failed");
    }
    Ok(())
}

/// Contents of every packaged file and of weirctl.exe beside the package, for the
/// reproducibility check.
fn hashes(dir: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files: Vec<(String, Vec<u8>)> = weir_package::FILES
        .iter()
        .map(|f| Ok(((*f).to_string(), std::fs::read(dir.join(f))?)))
        .collect::<Result<_>>()?;
    files.push(("weirctl.exe".into(), std::fs::read(crate::weirctl::exe_path())?));
    Ok(files)
}
