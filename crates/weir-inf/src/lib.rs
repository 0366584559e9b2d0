//! INF tooling for the Weir driver package, usable on any host (no WDK).
//!
//! - [`parse()`]: a line-preserving INF parser that keeps 1-based line numbers.
//! - [`stamp()`]: stampinf semantics — `$ARCH$`, `DriverVer`, `CatalogFile` —
//!   with [`build_date`] / [`version_from_crate`] to derive the DriverVer
//!   date and version reproducibly.
//! - [`lint()`]: InfVerif-style rules for a primitive (non-PnP) driver INF,
//!   each finding tagged with the InfVerif code it corresponds to (see
//!   docs/inf-lint.md for which codes are covered); [`lint_bytes`] adds the
//!   encoding check; [`check_catalog_coverage`] checks the catalog's file list.
//! - [`lint_for_arch`]: [`lint_bytes`] for a package whose kernel image is
//!   for a given [`Arch`] (from its PE machine type, [`Arch::from_machine`]):
//!   every platform extension of the INF must name that architecture.
//!
//! # Example
//!
//! ```
//! use weir_inf::{build_date, check_catalog_coverage, lint, lint_for_arch, stamp, version_from_crate};
//! use weir_inf::{Arch, Rule, StampOptions};
//!
//! let inx = "[Version]\r\nSignature = \"$WINDOWS NT$\"\r\n[DefaultInstall.NT$ARCH$]\r\n";
//! let now = 1_747_440_000; // the caller's clock
//! let last_commit = Some(1_700_000_000);
//! let opts = StampOptions {
//!     arch: "amd64",
//!     date: build_date(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(), last_commit, now)?,
//!     version: version_from_crate("0.1.0")?,
//!     catalog_file: Some("weir.cat".to_owned()),
//! };
//! let inf = stamp(inx, &opts)?;
//! assert!(inf.contains("[DefaultInstall.NTamd64]\r\n"));
//! assert!(inf.contains("DriverVer = "));
//! for d in lint(&inf, "weir.inf") {
//!     println!("{d}"); // e.g. "weir.inf:1: [Version] has no Class entry [version-key, InfVerif 1234]"
//! }
//! let missing = check_catalog_coverage(&inf, "weir.inf", &["weir.inf"]);
//! assert!(missing.is_empty());
//!
//! // The package's image is for ARM64 (PE machine 0xAA64), the INF for amd64:
//! let image = Arch::from_machine(0xAA64).map_err(|e| e.to_string())?;
//! assert_eq!(image, Arch::Arm64);
//! let d = lint_for_arch(inf.as_bytes(), "weir.inf", image);
//! assert!(d.iter().any(|d| d.rule == Rule::ImageArch));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! These checks approximate the WDK tools; they were written from the
//! documented rules and have not been compared with InfVerif on Windows.

#![forbid(unsafe_code)]

pub mod arch;
pub mod lint;
pub mod parse;
pub mod stamp;

pub use arch::{Arch, ArchError};
pub use lint::{
    check_catalog_coverage, copied_files, lint, lint_bytes, lint_for_arch, lint_parsed,
    lint_text_for_arch, CopiedFile, Diagnostic, Rule, WFPCALLOUTS_GUID,
};
pub use parse::{decode, parse, parse_bytes, Entry, Inf, ParseError, Section, Value};
pub use stamp::{
    build_date, build_date_from_env, date_from_unix, format_driver_ver, is_valid_date, stamp,
    version_from_crate, StampError, StampOptions, ARCHES,
};
