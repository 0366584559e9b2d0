//! stampinf semantics: $ARCH$, DriverVer insert/replace, CatalogFile, CRLF,
//! and the derivation of the DriverVer date and version.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use weir_inf::{
    build_date, build_date_from_env, date_from_unix, format_driver_ver, lint, lint_for_arch, parse,
    stamp, version_from_crate, Arch, Rule, StampError, StampOptions,
};

const DRIVER_INX: &str = include_str!("../../../driver.inx");

fn opts() -> StampOptions<'static> {
    StampOptions {
        arch: "amd64",
        date: (2025, 5, 17),
        version: [1, 2, 3, 0],
        catalog_file: None,
    }
}

fn line_count(s: &str) -> usize {
    s.split_inclusive('\n').count()
}

fn driver_ver_lines(s: &str) -> Vec<&str> {
    s.split_inclusive('\n')
        .filter(|l| l.trim_start().to_ascii_lowercase().starts_with("driverver"))
        .collect()
}

#[test]
fn replaces_arch_everywhere() {
    let out = stamp(DRIVER_INX, &opts()).unwrap();
    assert!(!out.contains("$ARCH$"));
    assert!(out.contains("[DefaultInstall.NTamd64]\r\n"));
    assert!(out.contains("[DefaultInstall.NTamd64.Services]\r\n"));
    let arm = stamp(
        DRIVER_INX,
        &StampOptions {
            arch: "arm64",
            ..opts()
        },
    )
    .unwrap();
    assert!(arm.contains("[DefaultInstall.NTarm64]\r\n"));
}

/// driver.inx stamped for each architecture Weir ships is clean for an
/// image of that architecture, and rejected (image-arch) for the other.
#[test]
fn stamped_for_each_arch_lints_clean_for_that_arch_only() {
    for arch in Arch::ALL {
        let inf = stamp(
            DRIVER_INX,
            &StampOptions {
                arch: arch.as_str(),
                ..opts()
            },
        )
        .unwrap();
        let header = format!("[DefaultInstall.{}]\r\n", arch.nt_decoration());
        assert!(inf.contains(&header), "{arch}");
        let d = lint_for_arch(inf.as_bytes(), "weir.inf", arch);
        assert!(d.is_empty(), "{arch}: {d:#?}");
        for other in Arch::ALL.into_iter().filter(|o| *o != arch) {
            let d = lint_for_arch(inf.as_bytes(), "weir.inf", other);
            let lines: Vec<usize> = d
                .iter()
                .filter(|d| d.rule == Rule::ImageArch)
                .map(|d| d.line)
                .collect();
            let sections: Vec<usize> = inf
                .lines()
                .enumerate()
                .filter(|(_, l)| l.starts_with("[DefaultInstall."))
                .map(|(i, _)| i + 1)
                .collect();
            assert_eq!(lines, sections, "{arch} INF, {other} image: {d:#?}");
            assert!(d.iter().all(|d| d.rule == Rule::ImageArch), "{d:#?}");
        }
    }
}

#[test]
fn replaces_existing_driver_ver_in_place() {
    let out = stamp(DRIVER_INX, &opts()).unwrap();
    assert_eq!(line_count(&out), line_count(DRIVER_INX));
    // alignment and trailing comment of the template line are kept
    assert_eq!(
        driver_ver_lines(&out),
        ["DriverVer   = 05/17/2025,1.2.3.0 ; set when stamping: build date, crate version\r\n"]
    );
    // every other line is byte-identical (after $ARCH$)
    let expected = DRIVER_INX.replace("$ARCH$", "amd64");
    let diff: Vec<(&str, &str)> = expected
        .split_inclusive('\n')
        .zip(out.split_inclusive('\n'))
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(diff.len(), 1, "{diff:#?}");
}

#[test]
fn inserts_driver_ver_after_last_version_entry() {
    let inx = "[Version]\r\nSignature = \"$WINDOWS NT$\"\r\nPnpLockdown = 1\r\n\r\n; note\r\n[Strings]\r\n";
    let out = stamp(inx, &opts()).unwrap();
    assert_eq!(
        out,
        "[Version]\r\nSignature = \"$WINDOWS NT$\"\r\nPnpLockdown = 1\r\nDriverVer = 05/17/2025,1.2.3.0\r\n\r\n; note\r\n[Strings]\r\n"
    );
}

#[test]
fn inserts_into_empty_version_and_at_end_without_newline() {
    let out = stamp("[Version]", &opts()).unwrap();
    assert_eq!(out, "[Version]\r\nDriverVer = 05/17/2025,1.2.3.0");
    let out = stamp(
        "[Version]\nSignature = x",
        &StampOptions {
            catalog_file: Some("a.cat".into()),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(
        out,
        "[Version]\nSignature = x\nDriverVer = 05/17/2025,1.2.3.0\nCatalogFile = a.cat"
    );
}

#[test]
fn replaces_continued_driver_ver() {
    let inx = "[Version]\r\nDriverVer = 01/01/2000,\\\r\n  1.0.0.0\r\nPnpLockdown = 1\r\n";
    let out = stamp(inx, &opts()).unwrap();
    assert_eq!(
        out,
        "[Version]\r\nDriverVer = 05/17/2025,1.2.3.0\r\nPnpLockdown = 1\r\n"
    );
}

#[test]
fn sets_catalog_file_replace_and_insert() {
    let o = StampOptions {
        catalog_file: Some("other.cat".into()),
        ..opts()
    };
    let out = stamp(DRIVER_INX, &o).unwrap();
    assert!(out.contains("CatalogFile = other.cat\r\n"));
    assert!(!out.contains("weir.cat"));
    assert_eq!(line_count(&out), line_count(DRIVER_INX));

    let out = stamp("[Version]\r\nSignature = x\r\n", &o).unwrap();
    assert_eq!(
        out,
        "[Version]\r\nSignature = x\r\nDriverVer = 05/17/2025,1.2.3.0\r\nCatalogFile = other.cat\r\n"
    );

    for bad in ["", "x.txt", "dir\\x.cat", ".cat", "a b;.cat", " x.cat"] {
        let o = StampOptions {
            catalog_file: Some(bad.into()),
            ..opts()
        };
        assert!(
            matches!(
                stamp(DRIVER_INX, &o),
                Err(StampError::InvalidCatalogName(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn keeps_crlf_line_ends() {
    let out = stamp(DRIVER_INX, &opts()).unwrap();
    assert!(out.split_inclusive('\n').all(|l| l.ends_with("\r\n")));
    let no_driver_ver: String = DRIVER_INX
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("DriverVer"))
        .collect();
    let out = stamp(&no_driver_ver, &opts()).unwrap();
    assert_eq!(line_count(&out), line_count(DRIVER_INX));
    assert!(out.split_inclusive('\n').all(|l| l.ends_with("\r\n")));
    assert_eq!(
        driver_ver_lines(&out),
        ["DriverVer = 05/17/2025,1.2.3.0\r\n"]
    );
    assert!(lint(&out, "weir.inf").is_empty());
}

#[test]
fn lf_files_get_lf_insertions() {
    let out = stamp("[Version]\nSignature = x\n", &opts()).unwrap();
    assert_eq!(
        out,
        "[Version]\nSignature = x\nDriverVer = 05/17/2025,1.2.3.0\n"
    );
}

#[test]
fn stamping_is_idempotent() {
    let once = stamp(DRIVER_INX, &opts()).unwrap();
    let twice = stamp(&once, &opts()).unwrap();
    assert_eq!(once, twice);
}

#[test]
fn preserves_utf8_bom() {
    let inx = "\u{feff}[Version]\r\nSignature = x\r\n";
    let out = stamp(inx, &opts()).unwrap();
    assert!(out.starts_with("\u{feff}[Version]\r\n"));
    assert!(parse(&out).is_ok());
}

#[test]
fn rejects_bad_input() {
    assert!(matches!(
        stamp(
            DRIVER_INX,
            &StampOptions {
                arch: "mips",
                ..opts()
            }
        ),
        Err(StampError::InvalidArch(_))
    ));
    for date in [
        (2025, 2, 29),
        (2024, 13, 1),
        (2024, 4, 31),
        (1969, 12, 31),
        (2024, 1, 0),
    ] {
        assert!(
            matches!(
                stamp(DRIVER_INX, &StampOptions { date, ..opts() }),
                Err(StampError::InvalidDate(..))
            ),
            "{date:?}"
        );
    }
    assert!(stamp(
        DRIVER_INX,
        &StampOptions {
            date: (2024, 2, 29),
            ..opts()
        }
    )
    .is_ok());
    assert_eq!(
        stamp("[Strings]\r\n", &opts()),
        Err(StampError::NoVersionSection)
    );
    assert!(matches!(stamp("[Version\r\n", &opts()), Err(StampError::Parse(e)) if e.line == 1));
    assert_eq!(
        stamp("[Version]\nDriverVer = a\nDriverVer = b\n", &opts()),
        Err(StampError::DuplicateKey {
            key: "DriverVer",
            line: 3
        })
    );
    assert_eq!(
        stamp(
            "[Version]\n[Wdf]\nKmdfLibraryVersion = $KMDFVERSION$\n",
            &opts()
        ),
        Err(StampError::UnsupportedVariable {
            name: "$KMDFVERSION$",
            line: 3
        })
    );
}

#[test]
fn formats_driver_ver() {
    assert_eq!(
        format_driver_ver((2025, 1, 2), [0, 1, 0, 0]),
        "01/02/2025,0.1.0.0"
    );
    assert_eq!(
        format_driver_ver((9999, 12, 31), [65535, 65535, 65535, 65535]),
        "12/31/9999,65535.65535.65535.65535"
    );
}

#[test]
fn version_from_crate_version() {
    assert_eq!(version_from_crate("0.1.0").unwrap(), [0, 1, 0, 0]);
    assert_eq!(
        version_from_crate("65535.65535.65535").unwrap(),
        [65535, 65535, 65535, 0]
    );
    assert_eq!(
        version_from_crate("1.2.3-rc.1+build.5").unwrap(),
        [1, 2, 3, 0]
    );
    for bad in [
        "65536.0.0",
        "0.70000.0",
        "0.0.99999999999",
        "1.2",
        "1.2.3.4",
        "a.b.c",
        "",
        "1..3",
        "+1.2.3",
        "1.2.-3",
        " 1.2.3",
    ] {
        assert!(
            matches!(version_from_crate(bad), Err(StampError::InvalidVersion(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn dates_from_unix_time() {
    assert_eq!(date_from_unix(0).unwrap(), (1970, 1, 1));
    assert_eq!(date_from_unix(86_399).unwrap(), (1970, 1, 1));
    assert_eq!(date_from_unix(951_782_400).unwrap(), (2000, 2, 29));
    assert_eq!(date_from_unix(1_700_000_000).unwrap(), (2023, 11, 14));
    assert_eq!(date_from_unix(1_735_689_599).unwrap(), (2024, 12, 31));
    assert_eq!(date_from_unix(4_107_542_400).unwrap(), (2100, 3, 1));
    assert_eq!(date_from_unix(253_402_300_799).unwrap(), (9999, 12, 31));
    assert!(matches!(
        date_from_unix(-1),
        Err(StampError::TimeOutOfRange(-1))
    ));
    assert!(date_from_unix(253_402_300_800).is_err());
}

const NOW: i64 = 1_747_440_000; // 2025-05-17T00:00:00Z

#[test]
fn build_date_prefers_source_date_epoch() {
    assert_eq!(
        build_date(Some("1700000000"), Some(0), NOW).unwrap(),
        (2023, 11, 14)
    );
    assert_eq!(
        build_date(Some(" 1700000000\n"), None, NOW).unwrap(),
        (2023, 11, 14)
    );
}

#[test]
fn build_date_falls_back_to_commit_time_then_now() {
    assert_eq!(
        build_date(None, Some(1_700_000_000), NOW).unwrap(),
        (2023, 11, 14)
    );
    assert_eq!(
        build_date(Some(""), Some(1_700_000_000), NOW).unwrap(),
        (2023, 11, 14)
    );
    assert_eq!(build_date(None, None, NOW).unwrap(), (2025, 5, 17));
}

#[test]
fn build_date_is_never_in_the_future() {
    let future = NOW + 400 * 86_400;
    assert_eq!(build_date(None, Some(future), NOW).unwrap(), (2025, 5, 17));
    assert_eq!(
        build_date(Some(&future.to_string()), None, NOW).unwrap(),
        (2025, 5, 17)
    );
}

#[test]
fn build_date_rejects_bad_source_date_epoch() {
    for bad in ["-1", "abc", "1.5", "0x10", "99999999999999999999999"] {
        assert!(
            matches!(
                build_date(Some(bad), Some(0), NOW),
                Err(StampError::InvalidSourceDateEpoch(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        build_date(None, Some(-5), NOW),
        Err(StampError::TimeOutOfRange(-5))
    ));
}

#[test]
fn build_date_from_env_reads_source_date_epoch() {
    // The only test in this binary that touches the environment.
    std::env::set_var("SOURCE_DATE_EPOCH", "951782400");
    let with = build_date_from_env(Some(0), NOW);
    std::env::remove_var("SOURCE_DATE_EPOCH");
    let without = build_date_from_env(Some(0), NOW);
    assert_eq!(with.unwrap(), (2000, 2, 29));
    assert_eq!(without.unwrap(), (1970, 1, 1));
}

#[test]
fn errors_display_usefully() {
    let e = version_from_crate("70000.0.0").unwrap_err();
    assert!(e.to_string().contains("65535"), "{e}");
    let e = stamp("[Version]\nDriverVer = a\nDriverVer = b\n", &opts()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 3: [Version] sets DriverVer more than once"
    );
}
