//! `cargo xtask`: Weir's build automation on Linux.
//!
//! - `cargo xtask build`   cross-builds weir.sys + weir.pdb and checks the image
//! - `cargo xtask test`    host tests, image build and checks, emulation, scripts
//! - `cargo xtask check-image [PATH]` prints the static image report
//! - `cargo xtask setup`   installs (as root) or lists what the build needs

mod build;
mod run;
mod toolchain;

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
    /// Print the static checks of a driver image (default: the built one).
    CheckImage {
        image: Option<PathBuf>,
        /// PDB to match against (default: next to the image).
        #[arg(long)]
        pdb: Option<PathBuf>,
    },
    /// Install (when root) or list the packages the Linux flow needs.
    Setup,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build { no_check } => build::build(!no_check).map(|_| ()),
        Command::Test { no_emulation } => run::test_all(!no_emulation),
        Command::CheckImage { image, pdb } => build::check_image_cmd(image, pdb),
        Command::Setup => toolchain::setup(),
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
