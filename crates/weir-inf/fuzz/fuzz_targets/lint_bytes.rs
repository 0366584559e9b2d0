//! INF bytes as a package would carry them: decoding, parsing, every lint
//! rule, stamping and the catalog-coverage check must never panic, and every
//! finding names a line of the file and only an InfVerif code its rule
//! declares.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_inf::{check_catalog_coverage, lint_bytes, lint_for_arch, stamp, Arch, StampOptions};

fuzz_target!(|data: &[u8]| {
    let mut diags = lint_bytes(data, "x.inf");
    diags.extend(lint_for_arch(data, "x.inf", Arch::Arm64));
    for d in &diags {
        if let Some(code) = d.infverif {
            assert!(d.rule.infverif_codes().contains(&code), "{d}");
        }
        assert!(d.line >= 1, "{d}");
    }
    if let Ok(text) = weir_inf::decode(data) {
        let _ = check_catalog_coverage(&text, "x.inf", &["x.inf", "weir.sys"]);
        let _ = stamp(
            &text,
            &StampOptions {
                arch: "amd64",
                date: (2025, 5, 17),
                version: [1, 2, 3, 4],
                catalog_file: Some("x.cat".into()),
            },
        );
    }
});
