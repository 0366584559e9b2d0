//! Lint rules for one INF part — `[Strings]`: undefined tokens, localized sections, unreplaced stampinf
//! variables.
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
        // localized-strings / unused-section
        (
            "localized strings short of one",
            format!("{GOOD}\n[Strings.0407]\nProv = \"Anbieter\"\n"),
            Rule::LocalizedStrings,
            1295,
            "[Strings.0407]",
        ),
    ];
    let mut v: Vec<Case> = more.into_iter().map(more_case).collect();

    // missing-string
    v.push(case(
        "undefined %token%",
        good_with(
            "ServiceType = 1",
            "DisplayName = %NoSuchString%\nServiceType = 1",
        ),
        Rule::MissingString,
        1235,
        "DisplayName",
    ));
    v.push(case(
        "undefined %token% inside quotes",
        good_with("1 = %Disk%,,,\"\"", "1 = \"%Disk% %Other%\",,,\"\""),
        Rule::MissingString,
        1235,
        "%Other%",
    ));

    // stamp-variable: the unstamped template
    v.push(case(
        "unstamped $ARCH$",
        DRIVER_INX.to_owned(),
        Rule::StampVariable,
        1274,
        "[DefaultInstall.NT$ARCH$]",
    ));

    v
}

#[test]
fn every_rule_and_code_of_this_part_has_a_bad_inf() {
    check_part("strings", &cases());
}

#[test]
fn rule_missing_string() {
    check_rule(&cases(), Rule::MissingString);
}

#[test]
fn rule_localized_strings() {
    check_rule(&cases(), Rule::LocalizedStrings);
}

#[test]
fn rule_stamp_variable() {
    check_rule(&cases(), Rule::StampVariable);
}
