//! Lint rules for one INF part — The INF's bytes: parse errors and encodings (`lint_bytes`).
//! Each rule has bad INFs rejected with its id and InfVerif code at the
//! expected line.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use weir_inf::*;

fn cases() -> Vec<Case> {
    let more: Vec<More> = vec![
        // 1003: encoding (lint_bytes)
        (
            "UTF-8 byte-order mark",
            format!("\u{feff}{GOOD}"),
            Rule::Encoding,
            1003,
            "; test INF",
        ),
        (
            "non-ASCII in an 8-bit INF",
            good_with("Disk = \"Test Disk\"", "Disk = \"Test D\u{ef}sk\""),
            Rule::Encoding,
            1003,
            "Disk =",
        ),
    ];
    let mut v: Vec<Case> = more.into_iter().map(more_case).collect();

    // parse-error
    v.push(case(
        "unterminated quote",
        good_with("PnpLockdown = 1", "PnpLockdown = \"1"),
        Rule::ParseError,
        1002,
        "PnpLockdown",
    ));
    v.push(case(
        "entry before any section",
        format!("Stray = 1\n{GOOD}"),
        Rule::ParseError,
        1002,
        "Stray",
    ));

    v
}

#[test]
fn every_rule_and_code_of_this_part_has_a_bad_inf() {
    check_part("encoding", &cases());
}

#[test]
fn rule_parse_error() {
    check_rule(&cases(), Rule::ParseError);
}

#[test]
fn rule_encoding() {
    check_rule(&cases(), Rule::Encoding);
}

#[test]
fn lint_bytes_matches_lint_and_accepts_utf16le() {
    assert!(lint_bytes(GOOD.as_bytes(), "t.inf").is_empty());
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(GOOD.encode_utf16().flat_map(u16::to_le_bytes));
    assert!(lint_bytes(&utf16, "t.inf").is_empty());
    let mut be = vec![0xFE, 0xFF];
    be.extend(GOOD.encode_utf16().flat_map(u16::to_be_bytes));
    let d = lint_bytes(&be, "t.inf");
    assert!(
        d.iter()
            .any(|d| d.rule == Rule::Encoding && d.infverif == Some(1003)),
        "{d:?}"
    );
    let broken = good_with("PnpLockdown = 1", "PnpLockdown = 2");
    assert_eq!(
        lint_bytes(broken.as_bytes(), "t.inf"),
        lint(&broken, "t.inf")
    );
}
