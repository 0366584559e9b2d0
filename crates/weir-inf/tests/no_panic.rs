//! Property tests: no input makes the parser, stamper or linter panic, and
//! stamping keeps its promises on arbitrary (parseable) templates.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use weir_inf::{
    check_catalog_coverage, lint, lint_bytes, lint_for_arch, parse, parse_bytes, stamp, Arch,
    StampOptions,
};

fn opts(catalog: bool) -> StampOptions<'static> {
    StampOptions {
        arch: "amd64",
        date: (2024, 2, 29),
        version: [1, 65535, 0, 7],
        catalog_file: catalog.then(|| "weir.cat".to_owned()),
    }
}

/// Text built from the characters INF syntax cares about, so the generator
/// reaches headers, quotes, continuations and %tokens% often.
fn inf_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("[Version]".to_owned()),
        Just("[Strings]".to_owned()),
        Just("[DefaultInstall.NTamd64]".to_owned()),
        Just("[DestinationDirs]".to_owned()),
        Just("[SourceDisksFiles]".to_owned()),
        Just("CopyFiles".to_owned()),
        Just("AddReg".to_owned()),
        Just("AddService".to_owned()),
        Just("DriverVer".to_owned()),
        Just("CatalogFile".to_owned()),
        Just("HKR".to_owned()),
        Just("[DefaultInstall.NTamd64.Services]".to_owned()),
        Just("[DefaultInstall.NTarm64]".to_owned()),
        Just("[DefaultInstall.NTarm64.10.0...22000.Services]".to_owned()),
        Just("[SourceDisksFiles.arm64]".to_owned()),
        Just("[Manufacturer]".to_owned()),
        Just("NTarm64".to_owned()),
        Just("[S]".to_owned()),
        Just("[S.Security]".to_owned()),
        Just("[Strings.0407]".to_owned()),
        Just("[SourceDisksNames]".to_owned()),
        Just("S".to_owned()),
        Just("ServiceBinary".to_owned()),
        Just("StartType".to_owned()),
        Just("ServiceType".to_owned()),
        Just("BitReg".to_owned()),
        Just("Needs".to_owned()),
        Just("Include".to_owned()),
        Just("Parameters".to_owned()),
        Just("0x00010001".to_owned()),
        Just("0x00010008".to_owned()),
        Just("0x2".to_owned()),
        Just("@".to_owned()),
        Just("$ARCH$".to_owned()),
        Just("%13%".to_owned()),
        Just("%".to_owned()),
        Just("=".to_owned()),
        Just(",".to_owned()),
        Just(";".to_owned()),
        Just("\"".to_owned()),
        Just("\"\"".to_owned()),
        Just("\\".to_owned()),
        Just("\r\n".to_owned()),
        Just("\n".to_owned()),
        Just("\r".to_owned()),
        Just(" ".to_owned()),
        Just("\u{feff}".to_owned()),
        "[a-zA-Z0-9./@{}-]{1,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

/// Text made of well-formed lines (headers, entries, comments, blanks,
/// continuations) with mixed line ends, so stamping usually succeeds.
fn well_formed_lines() -> impl Strategy<Value = String> {
    let name = "[A-Za-z][A-Za-z0-9.]{0,10}";
    let value = prop_oneof![
        "[A-Za-z0-9 ./_-]{0,12}".prop_map(String::from),
        "[A-Za-z0-9 ,;=]{0,8}".prop_map(|s| format!("\"{s}\"")),
    ];
    let line = prop_oneof![
        prop_oneof![
            Just("Version".to_owned()),
            Just("Strings".to_owned()),
            name.prop_map(String::from)
        ]
        .prop_map(|n| format!("[{n}]")),
        (
            prop_oneof![
                Just("DriverVer".to_owned()),
                Just("CatalogFile".to_owned()),
                Just("Signature".to_owned()),
                name.prop_map(String::from)
            ],
            prop::collection::vec(value.clone(), 1..4)
        )
            .prop_map(|(k, v)| format!("{k} = {}", v.join(","))),
        prop::collection::vec(value.clone(), 1..3).prop_map(|v| v.join(", ")),
        (value.clone(), value).prop_map(|(a, b)| format!("X = {a}, \\\r\n  {b}")),
        "[ -~]{0,20}".prop_map(|s| format!("; {s}")),
        Just(String::new()),
    ];
    let eol = prop_oneof![Just("\r\n"), Just("\r\n"), Just("\n")];
    prop::collection::vec((line, eol), 0..24)
        .prop_map(|v| v.into_iter().map(|(l, e)| format!("{l}{e}")).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_bytes(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text);
        let _ = lint(&text, "x.inf");
        let _ = lint_bytes(&bytes, "x.inf");
        let _ = lint_for_arch(&bytes, "x.inf", Arch::Arm64);
        let _ = stamp(&text, &opts(true));
        let _ = check_catalog_coverage(&text, "x.inf", &["x.inf"]);
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        let _ = parse(&text);
        let _ = lint(&text, "x.inf");
        let _ = stamp(&text, &opts(false));
    }

    #[test]
    fn inf_like_text_never_panics(text in inf_like()) {
        let _ = parse(&text);
        let _ = lint(&text, "x.inf");
        let _ = stamp(&text, &opts(true));
        let _ = check_catalog_coverage(&text, "x.inf", &["x.inf", "weir.sys"]);
    }

    /// Whenever stamping succeeds, the output parses and its [Version] has
    /// exactly one DriverVer, with the stamped value; errors carry lines that
    /// exist.
    #[test]
    fn successful_stamps_are_consistent(
        body in prop_oneof![inf_like(), well_formed_lines(), well_formed_lines()]
    ) {
        let text = format!("[Version]\r\n{body}");
        match stamp(&text, &opts(true)) {
            Ok(out) => {
                prop_assert!(!out.contains("$ARCH$"));
                let inf = parse(&out).unwrap();
                let dv: Vec<_> = inf.entries("Version", "DriverVer").collect();
                prop_assert_eq!(dv.len(), 1);
                prop_assert_eq!(dv[0].values.len(), 2);
                prop_assert_eq!(dv[0].value(0), Some("02/29/2024"));
                prop_assert_eq!(dv[0].value(1), Some("1.65535.0.7"));
                let cat: Vec<_> = inf.entries("Version", "CatalogFile").collect();
                prop_assert_eq!(cat.len(), 1);
                prop_assert_eq!(cat[0].value(0), Some("weir.cat"));
                // at most two lines were added
                let before = text.replace("$ARCH$", "amd64").split_inclusive('\n').count();
                let after = out.split_inclusive('\n').count();
                prop_assert!(after >= before && after <= before + 2);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }

    #[test]
    fn lint_lines_are_within_the_file(text in inf_like()) {
        let lines = text.split_inclusive('\n').count().max(1);
        let for_arch = lint_for_arch(text.as_bytes(), "x.inf", Arch::Arm64);
        for d in lint(&text, "x.inf").into_iter().chain(for_arch) {
            prop_assert!(d.line >= 1 && d.line <= lines, "{} (file has {} lines)", d, lines);
        }
    }

    /// Whatever the input, a finding only ever carries an InfVerif code its
    /// rule declares (so docs/inf-lint.md, checked against the declarations,
    /// describes every code the lint can print).
    #[test]
    fn findings_carry_only_declared_codes(text in inf_like()) {
        let for_arch = lint_for_arch(text.as_bytes(), "x.inf", Arch::Amd64);
        for d in lint_bytes(text.as_bytes(), "x.inf").into_iter().chain(for_arch) {
            if let Some(code) = d.infverif {
                prop_assert!(d.rule.infverif_codes().contains(&code), "{}", d);
            }
        }
    }
}
