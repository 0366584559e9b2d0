//! The image test: builds weir.sys (or uses the one built, `WEIR_IMAGE`) and
//! checks every property a loadable x64 WDM driver must have.
//!
//! Each property is its own test so a failure names it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use weir_image::{check_driver, Report};

fn image() -> PathBuf {
    if let Ok(p) = std::env::var("WEIR_IMAGE") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    root.join("target/x86_64-pc-windows-msvc/release/weir.sys")
}

fn report() -> &'static Report {
    static REPORT: OnceLock<Report> = OnceLock::new();
    REPORT.get_or_init(|| {
        let image = image();
        if !image.is_file() {
            // Build it with the project's own tool.
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["run", "--quiet", "--package", "xtask", "--", "build"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("running cargo xtask build");
            assert!(status.success(), "cargo xtask build failed");
        }
        let pdb = image.with_extension("pdb");
        check_driver(&image, Some(&pdb)).unwrap_or_else(|e| panic!("{}: {e}", image.display()))
    })
}

fn assert_check(name: &str) {
    let r = report();
    let check = r.get(name).unwrap_or_else(|| panic!("no check named {name}"));
    assert!(check.ok, "{check}");
}

#[test]
fn amd64_pe32_plus() {
    assert_check("machine");
}

#[test]
fn native_subsystem() {
    assert_check("subsystem");
}

#[test]
fn entry_point_is_driver_entry() {
    assert_check("entry-point-is-driverentry");
}

#[test]
fn exports_only_driver_entry() {
    assert_check("exports");
}

#[test]
fn imports_only_from_kernel_modules() {
    assert_check("kernel-imports-only");
}

#[test]
fn imports_the_wfp_lifetime_functions() {
    assert_check("required-wfp-imports");
    let r = report();
    for f in ["FwpmEngineOpen0", "FwpmEngineClose0", "FwpsCalloutRegister3", "FwpsCalloutUnregisterById0", "FwpmCalloutAdd0", "FwpmFilterAdd0"] {
        assert!(r.imports.iter().any(|(m, n)| m == "fwpkclnt.sys" && n == f), "{f} not imported from fwpkclnt.sys");
    }
}

#[test]
fn import_table_is_not_executable() {
    assert_check("import-table-not-executable");
}

#[test]
fn sections_are_page_aligned() {
    assert_check("page-aligned-sections");
}

#[test]
fn no_section_is_writable_and_executable() {
    assert_check("no-writable-executable-section");
}

#[test]
fn code_and_data_are_resident() {
    assert_check("resident-sections");
}

#[test]
fn has_relocations_and_dynamic_base() {
    assert_check("relocations");
    assert_check("dynamic-base");
    assert_check("nx-compat");
}

#[test]
fn checksum_is_valid() {
    assert_check("checksum");
}

#[test]
fn codeview_names_a_bare_pdb_matching_the_pdb() {
    assert_check("codeview-bare-pdb-name");
    assert_check("pdb-matches-image");
}

#[test]
fn every_check_passes() {
    let r = report();
    let failures: Vec<String> = r.failures().map(ToString::to_string).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(r.checks.len() >= 15, "expected the full check list, got {}", r.checks.len());
}

/// The checker itself must reject what it claims to reject: flip single
/// properties of the real image and expect the matching check to fail.
#[test]
fn checker_rejects_tampered_images() {
    let data = std::fs::read(image()).expect("reading image");
    let pe_offset = u32::from_le_bytes(data[0x3c..0x40].try_into().unwrap()) as usize;
    let opt = pe_offset + 4 + 20;

    // Wrong subsystem (WINDOWS_GUI = 2).
    let mut bad = data.clone();
    bad[opt + 68..opt + 70].copy_from_slice(&2u16.to_le_bytes());
    let r = weir_image::check_bytes(&bad, None).unwrap();
    assert!(!r.get("subsystem").unwrap().ok);
    assert!(!r.get("checksum").unwrap().ok, "checksum must cover the header");

    // Any byte change breaks the checksum.
    let mut bad = data.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(!weir_image::check_bytes(&bad, None).unwrap().get("checksum").unwrap().ok);

    // An import renamed to a user-mode DLL.
    let needle = b"fwpkclnt.sys";
    let at = data.windows(needle.len()).position(|w| w == needle).expect("module name in image");
    let mut bad = data.clone();
    bad[at..at + needle.len()].copy_from_slice(b"fwpuclnt.dll");
    let r = weir_image::check_bytes(&bad, None).unwrap();
    assert!(!r.get("kernel-imports-only").unwrap().ok);
    assert!(!r.get("required-wfp-imports").unwrap().ok);

    // .text made writable.
    let sections = opt + usize::from(u16::from_le_bytes(data[pe_offset + 20..pe_offset + 22].try_into().unwrap()));
    let mut bad = data.clone();
    let characteristics = sections + 36; // first section is .text
    let c = u32::from_le_bytes(bad[characteristics..characteristics + 4].try_into().unwrap());
    bad[characteristics..characteristics + 4].copy_from_slice(&(c | 0x8000_0000).to_le_bytes());
    assert!(!weir_image::check_bytes(&bad, None).unwrap().get("no-writable-executable-section").unwrap().ok);
}
