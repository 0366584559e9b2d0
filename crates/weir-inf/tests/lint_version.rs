//! Lint rules for one INF part — `[Version]`: missing section, required keys, their values, DriverVer.
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
        // version-value 1234 / 1280
        (
            "empty Provider",
            good_with("Prov = \"Test Provider\"", "Prov = \"\""),
            Rule::VersionValue,
            1234,
            "Provider",
        ),
        (
            "empty Class",
            good_with("Class = WFPCALLOUTS", "Class = \"\""),
            Rule::VersionValue,
            1234,
            "Class =",
        ),
        (
            "WFPCALLOUTS GUID with another class",
            good_with("Class = WFPCALLOUTS", "Class = Net"),
            Rule::VersionValue,
            1280,
            "Class =",
        ),
    ];
    let mut v: Vec<Case> = more.into_iter().map(more_case).collect();

    // version-missing
    v.push(case(
        "no [Version]",
        good_with("[Version]", "[NotVersion]"),
        Rule::VersionMissing,
        1001,
        "; test INF",
    ));

    // version-key: each required key missing, reported at the [Version] header
    let version_key_code = |key: &str| match key {
        "Signature =" => 1001,
        "CatalogFile =" => 1233,
        "PnpLockdown =" => 1324,
        _ => 1234,
    };
    for key in [
        "Signature =",
        "Class =",
        "ClassGuid =",
        "Provider =",
        "DriverVer =",
        "CatalogFile =",
        "PnpLockdown =",
    ] {
        v.push(case(
            "required [Version] key missing",
            good_with(key, &format!("; removed {key}")),
            Rule::VersionKey,
            version_key_code(key),
            "[Version]",
        ));
    }

    // version-value
    v.push(case(
        "wrong Signature",
        good_with("\"$WINDOWS NT$\"", "\"$Chicago$\""),
        Rule::VersionValue,
        1001,
        "Signature",
    ));
    v.push(case(
        "malformed ClassGuid",
        good_with(
            "{57465043-616C-6C6F-7574-5F636C617373}",
            "{57465043-616C-6C6F-7574}",
        ),
        Rule::VersionValue,
        1010,
        "ClassGuid",
    ));
    v.push(case(
        "WFPCALLOUTS with another GUID",
        good_with(
            "{57465043-616C-6C6F-7574-5F636C617373}",
            "{4D36E972-E325-11CE-BFC1-08002BE10318}",
        ),
        Rule::VersionValue,
        1281,
        "ClassGuid",
    ));
    v.push(case(
        "Provider is Microsoft",
        good_with("Prov = \"Test Provider\"", "Prov = \"Microsoft\""),
        Rule::VersionValue,
        1204,
        "Provider",
    ));
    v.push(case(
        "PnpLockdown 0",
        good_with("PnpLockdown = 1", "PnpLockdown = 0"),
        Rule::VersionValue,
        1324,
        "PnpLockdown",
    ));
    v.push(case(
        "CatalogFile not .cat",
        good_with("CatalogFile = t.cat", "CatalogFile = sub\\t.txt"),
        Rule::VersionValue,
        1214,
        "CatalogFile",
    ));

    // driverver-format
    for (bad, code) in [
        ("13/01/2025,1.2.3.0", 1218),
        ("02/30/2025,1.2.3.0", 1218),
        ("02/29/2023,1.2.3.0", 1218),
        ("05/17/2025,1.2.3.70000", 1217),
        ("05/17/2025,1.x.3.0", 1217),
        ("05/17/2025,1.2.3.4.5", 1217),
        ("2025-05-17,1.2.3.0", 1218),
        ("05/17/25,1.2.3.0", 1218),
        ("05/17/2025", 1218),
    ] {
        v.push(case(
            "bad DriverVer",
            good_with("05/17/2025,1.2.3.0", bad),
            Rule::DriverVerFormat,
            code,
            "DriverVer",
        ));
    }

    v
}

#[test]
fn every_rule_and_code_of_this_part_has_a_bad_inf() {
    check_part("version", &cases());
}

#[test]
fn rule_version_missing() {
    check_rule(&cases(), Rule::VersionMissing);
}

#[test]
fn rule_version_key() {
    check_rule(&cases(), Rule::VersionKey);
}

#[test]
fn rule_version_value() {
    check_rule(&cases(), Rule::VersionValue);
}

#[test]
fn rule_driver_ver_format() {
    check_rule(&cases(), Rule::DriverVerFormat);
}
