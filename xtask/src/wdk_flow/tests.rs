//! The checks of the WDK flow that need no cargo-make: cargo's own
//! resolution (`cargo metadata` through the `cargo_metadata` crate, as
//! wdk-build calls it; `cargo tree` with the flow's arguments), wdk-build's
//! makefile as the registry ships it, and this repository's Makefile.toml,
//! .cargo/config.toml and GitHub workflow. The numbers refer to the findings
//! of the issue that asked for this.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use super::{plain_metadata, upstream_makefile_path};
use crate::repo_root;
use cargo_metadata::{Metadata, Package};
use std::path::{Path, PathBuf};
use std::process::Command;

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The Windows target both flows build for on an x64 host.
const WINDOWS_TARGET: &str = crate::build::TARGET;
/// Every Windows target the flows support (x64 and ARM64 hosts).
const WINDOWS_TARGETS: [&str; 2] = ["aarch64-pc-windows-msvc", "x86_64-pc-windows-msvc"];
/// The driver package (and cdylib, INF and package directory name).
const DRIVER: &str = "weir";

/// Plain `cargo metadata`, as load_rust_driver_makefile() runs it.
fn metadata() -> Metadata {
    plain_metadata().unwrap()
}

fn package<'a>(metadata: &'a Metadata, name: &str) -> &'a Package {
    metadata.packages.iter().find(|p| p.name.as_str() == name).unwrap()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = repo_root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn toml_file(path: &str) -> toml::Table {
    read(path).parse().unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// wdk-build's rust-driver-makefile.toml, the file Makefile.toml extends.
fn upstream_makefile(metadata: &Metadata) -> (PathBuf, toml::Table) {
    let path = upstream_makefile_path(metadata).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text.parse().unwrap())
}

/// `cargo tree` of the driver's non-dev dependencies for `target`, with
/// `rustflags` as CARGO_ENCODED_RUSTFLAGS (None: .cargo/config.toml's apply).
fn tree(extra: &[&str], rustflags: Option<&str>) -> String {
    let mut cmd = cargo();
    cmd.current_dir(repo_root())
        .args(["tree", "--locked", "-e", "normal,build", "--prefix", "none", "--format", "{p}"])
        .args(extra)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    if let Some(flags) = rustflags {
        cmd.env("CARGO_ENCODED_RUSTFLAGS", flags);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "cargo tree {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn wdk_crates(tree: &str) -> Vec<&str> {
    let mut found: Vec<&str> =
        tree.lines().filter_map(|l| l.split_whitespace().next()).filter(|n| n.starts_with("wdk")).collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// The GitHub workflow's Windows job: its `env:` values, its matrix (one entry
/// per Windows host architecture) and its one `cargo make` and one `cargo wdk
/// build` step, expanded for each matrix entry.
struct WindowsJob {
    /// The job's text, from `  windows:` to the end of the file.
    text: String,
    env: Vec<(String, String)>,
    /// `include:` entries of the matrix, as key/value pairs.
    matrix: Vec<Vec<(String, String)>>,
    /// `run: cargo make ...` with `${{ env.X }}` expanded, `${{ matrix.X }}` not.
    cargo_make: String,
    /// `run: cargo wdk build ...`, the same way.
    cargo_wdk: String,
    /// Every upload `path:`, the same way.
    upload_paths: Vec<String>,
}

impl WindowsJob {
    fn parse() -> Self {
        let text = read(".github/workflows/ci.yml");
        let job = &text[text.find("\n  windows:\n").expect("a `windows` job")..];
        let mut env = Vec::new();
        let mut matrix: Vec<Vec<(String, String)>> = Vec::new();
        let mut in_env = false;
        let mut in_include = false;
        for line in job.lines() {
            if line == "    env:" {
                in_env = true;
                continue;
            }
            if line.trim() == "include:" {
                in_include = true;
                continue;
            }
            if in_env {
                if !line.starts_with("      ") {
                    in_env = false;
                    continue;
                }
                let line = line.trim();
                if line.starts_with('#') {
                    continue;
                }
                if let Some((k, v)) = line.split_once(':') {
                    env.push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
                }
            }
            if in_include {
                if !line.starts_with("          ") {
                    in_include = false;
                    continue;
                }
                let t = line.trim();
                let (t, new_entry) = match t.strip_prefix("- ") {
                    Some(rest) => (rest, true),
                    None => (t, false),
                };
                if new_entry {
                    matrix.push(Vec::new());
                }
                if let (Some((k, v)), Some(entry)) = (t.split_once(':'), matrix.last_mut()) {
                    entry.push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
                }
            }
        }
        let mut job_ = Self {
            text: job.to_string(),
            env,
            matrix,
            cargo_make: String::new(),
            cargo_wdk: String::new(),
            upload_paths: Vec::new(),
        };
        let runs: Vec<&str> = job.lines().filter_map(|l| l.trim().strip_prefix("run: ")).collect();
        let one = |prefix: &str| {
            let found: Vec<&&str> = runs.iter().filter(|r| r.starts_with(prefix)).collect();
            assert_eq!(found.len(), 1, "exactly one `run: {prefix} ...` step: {found:?}");
            found[0].to_string()
        };
        job_.cargo_make = job_.expand(&one("cargo make"));
        job_.cargo_wdk = job_.expand(&one("cargo wdk build"));
        job_.upload_paths =
            job.lines().filter_map(|l| l.trim().strip_prefix("path: ")).map(|p| job_.expand(p)).collect();
        assert!(!job_.upload_paths.is_empty(), "an upload `path:`");
        job_
    }

    fn var(&self, name: &str) -> &str {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("env {name}"))
    }

    /// Expands `${{ env.NAME }}`.
    fn expand(&self, text: &str) -> String {
        let mut out = text.to_string();
        while let Some(start) = out.find("${{ env.") {
            let end = out[start..].find("}}").unwrap() + start;
            let name = out[start + 8..end].trim();
            out.replace_range(start..end + 2, self.var(name));
        }
        out
    }

    /// `text` with `${{ matrix.NAME }}` expanded for matrix entry `entry`.
    fn for_entry(&self, text: &str, entry: &[(String, String)]) -> String {
        let mut out = text.to_string();
        while let Some(start) = out.find("${{ matrix.") {
            let end = out[start..].find("}}").unwrap() + start;
            let name = out[start + 11..end].trim();
            let value = entry.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_else(|| panic!("matrix.{name}"));
            out.replace_range(start..end + 2, &value);
        }
        out
    }

    /// The `cargo make` arguments after `cargo make`, for matrix entry `entry`.
    fn cargo_make_args(&self, entry: &[(String, String)]) -> Vec<String> {
        self.for_entry(&self.cargo_make, entry).split_whitespace().skip(2).map(String::from).collect()
    }
}

/// Cargo's option value, `--name value` or `--name=value`.
fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(name).and_then(|r| r.strip_prefix('='))
        }
    })
}

// Finding 1: load_rust_driver_makefile() needs wdk-build in plain
// `cargo metadata`, exactly once (it fails on none and on several).
#[test]
fn plain_cargo_metadata_lists_exactly_one_wdk_build_with_its_makefile() {
    let metadata = metadata();
    let wdk_build: Vec<_> = metadata.packages.iter().filter(|p| p.name.as_str() == "wdk-build").collect();
    assert_eq!(wdk_build.len(), 1, "wdk-build versions: {:?}", wdk_build.iter().map(|p| &p.version).collect::<Vec<_>>());
    let (path, makefile) = upstream_makefile(&metadata);
    assert!(makefile["tasks"]["package-driver-flow"].is_table(), "{}", path.display());
    // And it is the driver's own build dependency, not only a transitive one.
    let driver = package(&metadata, DRIVER);
    let dep = driver.dependencies.iter().find(|d| d.name == "wdk-build").expect("weir build-depends on wdk-build");
    assert_eq!(dep.kind, cargo_metadata::DependencyKind::Build);
    assert!(!dep.optional, "an optional dependency is absent from plain `cargo metadata`");
    // Makefile.toml's load_script asks for the same major.minor.
    let ours = toml_file("Makefile.toml");
    let script = ours["config"]["load_script"].as_str().unwrap();
    assert!(script.contains(&format!("wdk-build = \"{}.{}.", wdk_build[0].version.major, wdk_build[0].version.minor)));
    assert!(script.contains("load_rust_driver_makefile()"));
    assert_eq!(ours["extend"].as_str(), Some("target/rust-driver-makefile.toml"));
}

// wdk-build takes the driver model from exactly one `[package.metadata.wdk]`
// in the graph and packages only cdylibs that have one.
#[test]
fn the_driver_is_the_only_wdk_package_and_a_wdm_cdylib() {
    let metadata = metadata();
    let with_wdk: Vec<&str> =
        metadata.packages.iter().filter(|p| !p.metadata["wdk"].is_null()).map(|p| p.name.as_str()).collect();
    assert_eq!(with_wdk, [DRIVER]);
    assert!(metadata.workspace_metadata["wdk"].is_null());
    let driver = package(&metadata, DRIVER);
    assert_eq!(driver.metadata["wdk"]["driver-model"]["driver-type"], "WDM");
    assert!(driver.targets.iter().any(|t| t.kind.contains(&cargo_metadata::TargetKind::CDyLib)));
}

// Finding 2: the flow passes no feature, so no member can reject one; and
// every member accepts the cargo arguments the workflow passes.
#[test]
fn no_feature_is_passed_and_every_member_accepts_the_flows_arguments() {
    let ours = toml_file("Makefile.toml");
    let env = ours.get("env").and_then(|e| e.as_table()).cloned().unwrap_or_default();
    assert!(
        !env.contains_key("CARGO_MAKE_CARGO_BUILD_TEST_FLAGS"),
        "wdk-build unsets CARGO_MAKE_CARGO_BUILD_TEST_FLAGS (cargo-make's default is --all-features); keep it so"
    );
    let (_, upstream) = upstream_makefile(&metadata());
    assert_eq!(upstream["env"]["CARGO_MAKE_CARGO_BUILD_TEST_FLAGS"]["unset"].as_bool(), Some(true));
    let job = WindowsJob::parse();
    assert!(!job.matrix.is_empty(), "the Windows job has a matrix of hosts");
    for entry in &job.matrix {
        let args = job.cargo_make_args(entry);
        let wdk: Vec<String> = job.for_entry(&job.cargo_wdk, entry).split_whitespace().map(String::from).collect();
        for arg in args.iter().chain(&wdk) {
            assert!(
                !(arg.starts_with("--features") || arg == "-F" || arg == "--all-features" || arg.starts_with("--env")),
                "the workflow passes {arg}: both flows forward it to every workspace member"
            );
        }
        let target = option(&args, "--target").unwrap_or(WINDOWS_TARGET).to_string();
        // cargo-make runs `cargo build <args>` in each member's directory.
        let metadata = metadata();
        for id in &metadata.workspace_members {
            let member = metadata.packages.iter().find(|p| &p.id == id).unwrap();
            let manifest = member.manifest_path.as_str();
            tree(&["--manifest-path", manifest, "--target", &target], None);
        }
    }
    let metadata = metadata();
    assert!(package(&metadata, DRIVER).features.is_empty(), "no feature selects a flow");
}

// Finding 3: crt-static for the Windows MSVC target only; the Linux flow's
// image never sees it, nor any windows-drivers-rs crate.
#[test]
fn crt_static_is_set_for_the_windows_targets_only_and_selects_the_wdk_crates() {
    let config = toml_file(".cargo/config.toml");
    assert!(config.get("build").and_then(|b| b.get("rustflags")).is_none(), "[build] rustflags would reach host proc-macros");
    assert!(config.get("host").is_none());
    let targets = config["target"].as_table().unwrap();
    // x64 and ARM64 Windows hosts (issue 14, fault 5: without it on ARM64,
    // wdk-build refuses to configure the build), nothing else.
    assert_eq!(targets.keys().collect::<Vec<_>>(), WINDOWS_TARGETS, "no other target (or cfg) table gets rustflags");
    for target in WINDOWS_TARGETS {
        let flags: Vec<&str> =
            config["target"][target]["rustflags"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(flags.windows(2).any(|w| w == ["-C", "target-feature=+crt-static"]), "{target}: {flags:?}");

        // The WDK flow: config rustflags apply -> wdk-sys (and its wdk-build).
        let wdk = tree(&["-p", DRIVER, "--target", target], None);
        assert_eq!(wdk_crates(&wdk), ["wdk-build", "wdk-macros", "wdk-sys"], "{target}: {wdk}");
        // The Linux flow: xtask's CARGO_ENCODED_RUSTFLAGS replace them.
        let xtask_flags = crate::build::cross_rustflags(&repo_root());
        let linux = tree(&["-p", DRIVER, "--target", target], Some(&xtask_flags));
        assert_eq!(wdk_crates(&linux), Vec::<&str>::new(), "{target}: {linux}");
    }
    // Host builds (unit tests): none either.
    let host = tree(&["-p", DRIVER], None);
    assert_eq!(wdk_crates(&host), Vec::<&str>::new(), "{host}");
}

// Finding 4: wdk-build copies `<crate fs name>.inx`; Makefile.toml replaces
// that one task so driver.inx stays the source. The replacement is run here.
#[test]
fn the_inx_task_copies_driver_inx_to_the_crates_inf() {
    let metadata = metadata();
    let (path, upstream) = upstream_makefile(&metadata);
    let base = upstream["tasks"]["copy-inx-to-output"]["script"].as_str().unwrap();
    assert!(base.contains("{}.inx"), "{}: wdk-build's task changed; re-check the override", path.display());
    let stampinf = upstream["tasks"]["stampinf"]["dependencies"].as_array().unwrap();
    assert!(stampinf.iter().any(|d| d.as_str() == Some("copy-inx-to-output")));

    let ours = toml_file("Makefile.toml");
    let task = ours["tasks"]["copy-inx-to-output"].as_table().unwrap();
    assert_eq!(task["script_runner"].as_str(), Some("@rust"));
    let script = task["script"].as_str().unwrap();

    // CARGO_MAKE_CRATE_FS_NAME is the package name with `-` as `_`: the
    // cdylib's file name, so weir.dll -> weir.sys, weir.inf, weir.cat.
    let driver = package(&metadata, DRIVER);
    let fs_name = driver.name.replace('-', "_");
    let cdylib = driver.targets.iter().find(|t| t.kind.contains(&cargo_metadata::TargetKind::CDyLib)).unwrap();
    assert_eq!(cdylib.name, fs_name);
    let inx = read("driver.inx");
    assert!(inx.contains(&format!("{fs_name}.sys")) && inx.contains(&format!("CatalogFile = {fs_name}.cat")));

    // Compile and run the task's script as rust-script would (a plain
    // program with main).
    let dir = repo_root().join("target/tmp/wdk-flow-inx");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("task.rs"), script).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let built = Command::new(rustc)
        .args(["--edition", "2021", "-o"])
        .arg(dir.join("task"))
        .arg(dir.join("task.rs"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let out = dir.join("target/release");
    let run = Command::new(dir.join("task"))
        .env("CARGO_MAKE_WORKING_DIRECTORY", repo_root())
        .env("WDK_BUILD_OUTPUT_DIRECTORY", &out)
        .env("CARGO_MAKE_CRATE_FS_NAME", &fs_name)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::read(out.join(format!("{fs_name}.inf"))).unwrap(), inx.as_bytes());
    // A missing variable is an error, not a panic or a stray file.
    let bad = Command::new(dir.join("task")).env_remove("WDK_BUILD_OUTPUT_DIRECTORY").env("CARGO_MAKE_WORKING_DIRECTORY", repo_root()).env("CARGO_MAKE_CRATE_FS_NAME", &fs_name).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("WDK_BUILD_OUTPUT_DIRECTORY is not set"));
}

// Findings 5 and 6: cargo arguments after the task name, one profile for
// cargo and packaging, and upstream CI's setup with pinned versions.
#[test]
fn the_workflow_invokes_both_flows_as_upstream_ci_does() {
    let job = WindowsJob::parse();
    let (_, upstream) = upstream_makefile(&metadata());
    let cargo_toml = toml_file("Cargo.toml");
    let mut targets = Vec::new();
    for entry in &job.matrix {
        let args = job.cargo_make_args(entry);
        let task = args.first().expect("a task name");
        assert!(!task.starts_with('-'), "the task name comes first; cargo-make options before it are cargo-make's: {args:?}");
        assert!(upstream["tasks"][task.as_str()].is_table(), "{task} is a task of rust-driver-makefile.toml");

        // `--profile` after the task is cargo's (wdk-build-init forwards it and
        // sets WDK_BUILD_OUTPUT_DIRECTORY from it); cargo-make's `production`
        // would give cargo no profile and the packaging tasks another directory.
        let profile = option(&args, "--profile").expect("--profile after the task name").to_string();
        assert!(!args.iter().any(|a| a == "production" || a == "--release"));
        assert!(
            ["dev", "release"].contains(&profile.as_str()) || cargo_toml["profile"].get(&profile).is_some(),
            "profile {profile} is defined"
        );
        let target = option(&args, "--target").expect("--target, as upstream CI passes").to_string();
        assert!(WINDOWS_TARGETS.contains(&target.as_str()), "{target}");
        let dir = if profile == "dev" { "debug" } else { profile.as_str() };
        let package = format!("target/{target}/{dir}/weir_package");
        let uploads: Vec<String> = job.upload_paths.iter().map(|p| job.for_entry(p, entry)).collect();
        assert_eq!(uploads.iter().filter(|p| **p == package).count(), 2, "both flows' packages uploaded: {uploads:?}");

        // cargo-wdk: the same profile; the architecture of the same target.
        let wdk: Vec<String> = job.for_entry(&job.cargo_wdk, entry).split_whitespace().map(String::from).collect();
        assert_eq!(option(&wdk, "--profile"), Some(profile.as_str()), "{wdk:?}");
        let arch = option(&wdk, "--target-arch").expect("cargo wdk build --target-arch");
        let expected = weir_inf::Arch::from_rust_target(&target).unwrap();
        assert_eq!(arch, expected.as_str(), "cargo-wdk's --target-arch matches {target}");
        assert!(wdk.iter().any(|a| a == "--locked") && args.iter().any(|a| a == "--locked"));
        targets.push(target);
    }
    targets.sort();
    assert_eq!(targets, WINDOWS_TARGETS, "one matrix entry per Windows host architecture");

    // Upstream's pins (windows-drivers-rs .github/workflows/build.yaml and
    // its actions/install-{llvm,wdk}).
    assert_eq!(job.var("LLVM_VERSION"), "17.0.6");
    let wdk = job.var("WDK_VERSION");
    assert!(wdk.starts_with("10.0.") && wdk.split('.').count() == 3, "{wdk}");
    let text = &job.text;
    // 26100 comes from NuGet (what upstream's CI runs for it), not winget.
    assert_eq!(wdk, "10.0.26100");
    assert!(text.contains("nuget install \"Microsoft.Windows.WDK.${{ matrix.nuget_arch }}\" -Version $qfe"));
    assert!(!text.contains("Microsoft.WindowsWDK.") && !text.contains("Microsoft.WindowsSDK."), "no winget kit install");
    for var in ["Version_Number", "WDKContentRoot", "WDKBinRoot", "WDKToolRoot", "WindowsSdkBinPath"] {
        assert!(text.contains(&format!("{var} ")), "the job sets {var}");
    }
    assert!(text.contains("Version_Number    = \"$env:WDK_VERSION.0\""));
    assert!(text.contains("--id LLVM.LLVM --version $env:LLVM_VERSION"));
    assert!(text.contains("cargo install --locked cargo-make --version $env:CARGO_MAKE_VERSION"));
    assert!(text.contains("cargo install --locked cargo-wdk --version $env:CARGO_WDK_VERSION"));
    assert_eq!(job.var("CARGO_MAKE_VERSION"), crate::toolchain::CARGO_MAKE_VERSION, "the Linux task-graph check uses the same");
    let pinned: Vec<u32> = job.var("CARGO_MAKE_VERSION").split('.').map(|p| p.parse().unwrap()).collect();
    let min: Vec<u32> =
        upstream["config"]["min_version"].as_str().unwrap().split('.').map(|p| p.parse().unwrap()).collect();
    assert!(pinned >= min, "cargo-make {pinned:?} < wdk-build's min_version {min:?}");
    // No RUSTFLAGS in the job: it would replace config's crt-static.
    assert!(!text.contains("RUSTFLAGS:"));
    // Both flows stamp the crate version: cargo-wdk through STAMPINF_VERSION.
    assert!(text.contains("\"STAMPINF_VERSION=$v.0\""), "the job sets STAMPINF_VERSION from Cargo.toml");
}

// Finding 10: rust-version covers what the WDK crates declare.
#[test]
fn rust_version_covers_the_wdk_crates() {
    let metadata = metadata();
    let ours = package(&metadata, DRIVER).rust_version.clone().expect("weir declares rust-version");
    let needed = metadata
        .packages
        .iter()
        .filter(|p| p.name.starts_with("wdk"))
        .filter_map(|p| p.rust_version.clone().map(|v| (p.name.to_string(), v)))
        .collect::<Vec<_>>();
    assert!(needed.iter().any(|(n, _)| n == "wdk-build"), "wdk-build declares one: {needed:?}");
    for (name, version) in needed {
        assert!(ours >= version, "{name} needs Rust {version}, weir declares {ours}");
    }
}

// No package-registry host in the repository. The names are put together
// here so that this file does not contain them either.
#[test]
fn no_package_registry_host_in_tracked_files() {
    let hosts: Vec<String> = [
        ["deb", "debian", "org"].join("."),
        ["security", "debian", "org"].join("."),
        ["static", "crates", "io"].join("."),
        ["index", "crates", "io"].join("."),
        ["pypi", "org"].join("."),
        ["files", "pythonhosted", "org"].join("."),
        ["registry", "npmjs", "org"].join("."),
        ["proxy", "golang", "org"].join("."),
    ]
    .to_vec();
    let out = Command::new("git").current_dir(repo_root()).args(["ls-files", "-z"]).output().unwrap();
    assert!(out.status.success());
    let mut hits = Vec::new();
    for file in String::from_utf8(out.stdout).unwrap().split('\0').filter(|f| !f.is_empty()) {
        // Cargo.lock's `source` lines name the registry index; cargo writes them.
        if file == "Cargo.lock" || file.ends_with("/Cargo.lock") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(repo_root().join(file)) else { continue };
        let lower = text.to_ascii_lowercase();
        hits.extend(hosts.iter().filter(|h| lower.contains(h.as_str())).map(|h| format!("{file}: {h}")));
    }
    assert!(hits.is_empty(), "{hits:?}");
}

// Finding 9: the test-VM scripts find the certificate of either package:
// the Linux flow's (weir_package::CER) and the one wdk-build's makecert task
// writes and copies into the package (name read from its makefile).
#[test]
fn the_scripts_accept_the_certificate_of_either_flow() {
    let (path, upstream) = upstream_makefile(&metadata());
    let args = upstream["tasks"]["generate-certificate"]["args"].as_array().unwrap();
    let output = args.last().and_then(|a| a.as_str()).unwrap();
    let wdk_cer = output.rsplit('/').next().unwrap();
    assert!(wdk_cer.ends_with(".cer"), "{}: makecert writes {output}", path.display());
    let copy = upstream["tasks"]["copy-certificate-to-package"]["script"].as_str().unwrap();
    assert!(copy.contains(wdk_cer), "{}: the package gets {wdk_cer}", path.display());

    // Every script that takes a package finds its certificate through this
    // one function (tests/scripts checks that); its list must name both.
    let module = read("scripts/WeirCommon.psm1");
    let names = module
        .lines()
        .find(|l| l.trim_start().starts_with("$names = @("))
        .expect("Find-WeirTestCertificate's $names list");
    for cer in [weir_package::CER, wdk_cer] {
        assert!(names.contains(&format!("'{cer}'")), "scripts do not accept {cer}: {names}");
    }
}

// Issue 14, fault 2: cargo-wdk (no task to override) reads
// `<package>.inx` from the package directory. weir.inx is that file; it must
// be driver.inx byte for byte, so every flow ships the same INF.
#[test]
fn cargo_wdk_finds_weir_inx_and_it_is_driver_inx() {
    let metadata = metadata();
    let driver = package(&metadata, DRIVER);
    let dir = driver.manifest_path.parent().unwrap();
    // cargo-wdk 0.2.0 (actions/build/package_task.rs): the package name with
    // `-` as `_`, plus `.inx`, in the package's directory.
    let inx = dir.join(format!("{}.inx", driver.name.replace('-', "_")));
    let copy = std::fs::read(&inx).unwrap_or_else(|e| panic!("{inx}: {e}: cargo wdk build needs it"));
    let source = std::fs::read(dir.join("driver.inx")).unwrap();
    assert!(copy == source, "{inx} differs from driver.inx: copy driver.inx over it (both flows must ship one INF)");
}

// Issue 14, fault 3: every flow stamps DriverVer's version from the crate
// version: the Linux flow with weir_inf::version_from_crate, cargo make with
// Makefile.toml's stampinf args, cargo wdk build with STAMPINF_VERSION (set
// by the workflow and the README's command as `<crate version>.0`).
#[test]
fn every_flow_stamps_the_crate_version() {
    let metadata = metadata();
    let crate_version = package(&metadata, DRIVER).version.to_string();
    let linux = weir_inf::version_from_crate(&crate_version).unwrap();
    let linux = linux.map(|n| n.to_string()).join(".");
    // What `${CARGO_MAKE_CRATE_VERSION}.0` and `$v.0` expand to; a pre-release
    // or build suffix would make it differ from the Linux flow (which drops
    // it), so such a version must not reach a release: change both mappings.
    assert!(
        crate_version.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "crate version {crate_version} has a suffix: Makefile.toml's stampinf args and STAMPINF_VERSION would not match the Linux flow's {linux}"
    );
    assert_eq!(format!("{crate_version}.0"), linux);

    // cargo make: ours are wdk-build's args with `-v *` replaced, nothing else.
    let (_, upstream) = upstream_makefile(&metadata);
    let theirs: Vec<&str> =
        upstream["tasks"]["stampinf"]["args"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let ours_toml = toml_file("Makefile.toml");
    let task = ours_toml["tasks"]["stampinf"].as_table().unwrap();
    assert_eq!(task.keys().collect::<Vec<_>>(), ["args"], "only args are redefined; command, env, dependencies stay wdk-build's");
    let ours: Vec<&str> = task["args"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let v_at = theirs.iter().position(|a| *a == "-v").expect("wdk-build passes -v");
    assert_eq!(theirs[v_at + 1], "*", "wdk-build's stampinf changed; re-check the override");
    let mut expected = theirs.clone();
    expected[v_at + 1] = "${CARGO_MAKE_CRATE_VERSION}.0";
    assert_eq!(ours, expected);

    // cargo wdk build: the README's command sets STAMPINF_VERSION the same way.
    let readme = read("README.md");
    assert!(
        readme.contains("$env:STAMPINF_VERSION = \"$v.0\""),
        "README documents STAMPINF_VERSION for cargo wdk build"
    );
    // docs/build.md spells the value out: it must be this version's.
    let build_md = read("docs/build.md");
    let spelled: Vec<&str> = build_md.lines().filter_map(|l| l.trim().strip_prefix("set STAMPINF_VERSION=")).collect();
    assert!(!spelled.is_empty(), "docs/build.md shows the cargo wdk build command with STAMPINF_VERSION");
    for line in spelled {
        assert_eq!(line.split_whitespace().next(), Some(linux.as_str()), "docs/build.md: STAMPINF_VERSION={line}");
    }
}

// Issue 14, fault 1's kind: nothing the driver links may have a cargo feature
// that brings in another crate (`std`, proptest...): one cargo invocation that
// builds the driver beside a tool asking for it (the WDK flows' root build,
// `cargo test` at the root) would turn it on for the driver too, and the
// driver no longer links (duplicate `panic_impl`). The WDK-flow compile stage
// of `cargo xtask test` catches it by compiling; this is the fast check.
#[test]
fn no_crate_the_driver_links_has_a_feature_that_adds_a_dependency() {
    let metadata = metadata();
    let mut stack = vec![package(&metadata, DRIVER)];
    let mut seen = Vec::new();
    while let Some(p) = stack.pop() {
        if seen.contains(&p.name.to_string()) {
            continue;
        }
        seen.push(p.name.to_string());
        for dep in p.dependencies.iter().filter(|d| d.kind == cargo_metadata::DependencyKind::Normal && d.path.is_some()) {
            if let Some(local) = metadata.packages.iter().find(|q| q.name.as_str() == dep.name) {
                stack.push(local);
            }
        }
        if p.name.as_str() == DRIVER {
            continue;
        }
        assert!(!p.features.contains_key("std"), "{} has a `std` feature the driver could get", p.name);
        for (feature, enables) in &p.features {
            for e in enables {
                assert!(
                    !e.starts_with("dep:") && !e.contains('/'),
                    "{}'s feature `{feature}` enables `{e}`: a tool enabling it would put it into the driver",
                    p.name
                );
            }
        }
        assert!(
            p.dependencies.iter().all(|d| d.kind != cargo_metadata::DependencyKind::Normal || !d.optional),
            "{} has an optional dependency a feature could pull into the driver",
            p.name
        );
    }
    assert!(seen.iter().any(|n| n == "weir-policy"), "{seen:?}");
}
