//! `cargo xtask`: Weir's build automation on Linux.
//!
//! - `cargo xtask build`   cross-builds weir.sys + weir.pdb and checks the image
//! - `cargo xtask test`    host tests, image build and checks, emulation, scripts
//! - `cargo xtask check-image [PATH]` prints the static image report
//! - `cargo xtask setup`   installs (as root) or lists what the build needs
//! - `cargo xtask wdk-task-graph` checks cargo-make's plan of the WDK flow
//! - `cargo xtask wdk-compile` compiles what the WDK flows' build step compiles
//! - `cargo xtask wine-test` builds weirctl.exe and runs its Wine tests
//! - `cargo xtask wine-kernel` runs the packaged weir.sys under Wine's kernel-driver host
//! - `cargo xtask classbench` Weir's policy lookup beside TupleMerge, PartitionSort, PriorityTuple

mod build;
mod classbench;
mod package;
mod run;
mod toolchain;
mod wdk_flow;
mod weirctl;
mod wine_kernel;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Weir build automation (Linux flow)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build target/x86_64-pc-windows-msvc/release/weir.sys and weir.pdb.
    Build {
        /// Skip the static image checks after linking.
        #[arg(long)]
        no_check: bool,
    },
    /// Run every test: host unit tests, the image build and image tests,
    /// the emulation suite and the script checks.
    Test {
        /// Skip the emulation suite (it needs a Python virtual environment).
        #[arg(long)]
        no_emulation: bool,
    },
    /// Build, stamp, sign and verify the driver package
    /// (target/<triple>/release/weir_package/; x64 unless --target).
    Package {
        /// Certificate (PEM or DER) to sign with instead of the test certificate.
        #[arg(long, requires = "key", conflicts_with = "pfx")]
        cert: Option<PathBuf>,
        /// Private key (PEM) of --cert.
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        /// PFX/PKCS#12 file to sign with; password from --pfx-password-env.
        #[arg(long)]
        pfx: Option<PathBuf>,
        /// Environment variable holding the PFX password.
        #[arg(long, default_value = "WEIR_PFX_PASSWORD")]
        pfx_password_env: String,
        /// Write a catalog v1 (SHA-1 members) instead of v2.
        #[arg(long)]
        catalog_v1: bool,
        /// Target: x86_64-pc-windows-msvc (default) or aarch64-pc-windows-msvc
        /// (an ARM64 package in target/aarch64-pc-windows-msvc/release/weir_package/).
        #[arg(long)]
        target: Option<String>,
    },
    /// Verify a package directory (default: the built one).
    VerifyPackage {
        dir: Option<PathBuf>,
        /// Do not require weir.pdb to equal this checkout's build output.
        #[arg(long)]
        no_build_pdb: bool,
    },
    /// Print the static checks of a driver image (default: the built one).
    CheckImage {
        image: Option<PathBuf>,
        /// PDB to match against (default: next to the image).
        #[arg(long)]
        pdb: Option<PathBuf>,
    },
    /// Install (when root) or list the packages the Linux flow needs.
    Setup,
    /// Print and check cargo-make's plan of the WDK flow (`cargo make`) for
    /// the driver, on this host (part of `test`).
    WdkTaskGraph,
    /// Compile (cargo check) what the build step of `cargo make` and of
    /// `cargo wdk build` compiles on a Windows host, with a wdk-sys stand-in
    /// (part of `test`).
    WdkCompile {
        /// Windows target(s) to compile for.
        #[arg(long = "target", default_values_t = [wdk_flow::compile::DEFAULT_TARGET.to_string()])]
        targets: Vec<String>,
    },
    /// Build weirctl.exe (unsigned) and run its tests under Wine (a stage of `test`).
    WineTest,
    /// Run the signed weir.sys and weirctl.exe of the package under Wine's kernel-driver
    /// host (a stage of `test`; run `cargo xtask package` first).
    WineKernel,
    /// Fetch and build ClassBench and the peers (TupleMerge-Offline, PartitionSort,
    /// PriorityTuple) from public GitHub, generate rule sets and traces, and compare them with
    /// Weir's lookup on the same files (target/classbench; needs git, make, g++; valgrind for
    /// instruction counts).
    Classbench {
        /// ClassBench seeds (parameter files).
        #[arg(long, value_delimiter = ',', default_value = "acl1,fw1,ipc1")]
        seeds: Vec<String>,
        /// Rule counts.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        sizes: Vec<usize>,
        /// Rounds per set (the order of the classifiers alternates between rounds).
        #[arg(long, default_value_t = 4)]
        rounds: usize,
        /// Skip the instruction counts (valgrind).
        #[arg(long)]
        no_instructions: bool,
        /// Headers, from the start of each trace, that the instruction counts run over.
        #[arg(long, default_value_t = 200_000)]
        ir_headers: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build { no_check } => build::build(!no_check).map(|_| ()),
        Command::Test { no_emulation } => run::test_all(!no_emulation),
        Command::Package { cert, key, pfx, pfx_password_env, catalog_v1, target } => package::package(&package::SignOptions {
            cert,
            key,
            pfx,
            pfx_password_env,
            catalog_v1,
            target,
        })
        .map(|_| ()),
        Command::VerifyPackage { dir, no_build_pdb } => package::verify_cmd(dir, !no_build_pdb),
        Command::CheckImage { image, pdb } => build::check_image_cmd(image, pdb),
        Command::Setup => toolchain::setup(),
        Command::WdkTaskGraph => wdk_flow::task_graph(),
        Command::WdkCompile { targets } => {
            wdk_flow::compile::run(&targets.iter().map(String::as_str).collect::<Vec<_>>())
        }
        Command::WineTest => weirctl::build_exe().and_then(|exe| weirctl::wine_tests(&exe)),
        Command::WineKernel => wine_kernel::stage(&package::package_dir().join(weir_package::SYS), &weirctl::exe_path()),
        Command::Classbench { seeds, sizes, rounds, no_instructions, ir_headers } => {
            classbench::classbench(&classbench::Options { seeds, sizes, rounds, instructions: !no_instructions, ir_headers })
        }
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

/// The repository root (xtask lives one level below it).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Prints a step heading.
pub fn step(text: &str) {
    println!("\n==> {text}");
}

pub type Res<T> = Result<T>;
