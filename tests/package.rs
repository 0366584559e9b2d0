//! The signed driver package: it verifies, and a one-byte change to any of
//! its five files (or a missing file) makes verification fail.
//!
//! Uses the package `cargo xtask package` made (`cargo xtask test` makes it
//! first); makes it if it is missing or older than the last build.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn package_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("target/x86_64-pc-windows-msvc/release/weir_package");
        let complete = weir_package::FILES.iter().all(|f| dir.join(f).is_file());
        // A package made before the last `cargo xtask build` is stale.
        let stale = complete && std::fs::read(dir.join("weir.pdb")).ok() != std::fs::read(built_pdb()).ok();
        if !complete || stale {
            // A separate target dir: the outer `cargo test` holds this one's lock.
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["run", "--quiet", "--package", "xtask", "--", "package"])
                .env("CARGO_TARGET_DIR", root().join("target/nested"))
                .current_dir(root())
                .status()
                .expect("running cargo xtask package");
            assert!(status.success(), "cargo xtask package failed");
        }
        dir
    })
}

fn built_pdb() -> PathBuf {
    root().join("target/x86_64-pc-windows-msvc/release/weir.pdb")
}

/// A private copy of the package to tamper with.
fn copy_package(tag: &str) -> PathBuf {
    let dir = root().join("target/package-tamper").join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in weir_package::FILES {
        std::fs::copy(package_dir().join(f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn built_package_verifies() {
    weir_package::verify(package_dir(), Some(&built_pdb())).unwrap();
}

#[test]
fn package_has_the_documented_shape() {
    let inf = std::fs::read_to_string(package_dir().join("weir.inf")).unwrap();
    assert!(inf.contains("CatalogFile"), "CatalogFile missing");
    assert!(!inf.contains("$ARCH$"), "$ARCH$ not stamped");
    assert!(inf.contains(".NTamd64"), "decorated sections missing");
    let driver_ver = inf.lines().find(|l| l.trim_start().starts_with("DriverVer")).expect("DriverVer");
    let version = env!("CARGO_PKG_VERSION");
    assert!(driver_ver.contains(&format!("{version}.0")), "{driver_ver} does not carry {version}");
    assert!(inf.contains("\r\n"), "CRLF line ends lost");
    let cat = weir_sign::Catalog::read_file(&package_dir().join("weir.cat")).unwrap();
    let names: Vec<_> = cat.members.iter().filter_map(|m| m.file_name.clone()).collect();
    assert!(names.iter().any(|n| n == "weir.sys") && names.iter().any(|n| n == "weir.inf"), "{names:?}");
}

fn flip_and_expect_failure(file: &str) {
    let len = std::fs::metadata(package_dir().join(file)).unwrap().len() as usize;
    for (i, offset) in [len / 2, len - 1, len / 3].into_iter().enumerate() {
        let dir = copy_package(&format!("{file}-{i}"));
        let path = dir.join(file);
        let mut data = std::fs::read(&path).unwrap();
        data[offset] ^= 0x01;
        std::fs::write(&path, &data).unwrap();
        let result = weir_package::verify(&dir, Some(&built_pdb()));
        assert!(result.is_err(), "flipping byte {offset} of {file} was not detected");
    }
}

#[test]
fn one_byte_change_to_sys_fails() {
    flip_and_expect_failure("weir.sys");
}

#[test]
fn one_byte_change_to_inf_fails() {
    flip_and_expect_failure("weir.inf");
}

#[test]
fn one_byte_change_to_cat_fails() {
    flip_and_expect_failure("weir.cat");
}

#[test]
fn one_byte_change_to_pdb_fails() {
    flip_and_expect_failure("weir.pdb");
}

#[test]
fn one_byte_change_to_cer_fails() {
    flip_and_expect_failure("weir-test.cer");
}

#[test]
fn one_byte_change_to_wprp_fails() {
    flip_and_expect_failure("weir.wprp");
}

#[test]
fn missing_file_fails() {
    for f in weir_package::FILES {
        let dir = copy_package(&format!("missing-{f}"));
        std::fs::remove_file(dir.join(f)).unwrap();
        let err = weir_package::verify(&dir, Some(&built_pdb())).unwrap_err();
        assert!(err.to_string().contains(f), "{err}");
    }
}
