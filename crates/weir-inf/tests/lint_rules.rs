//! Cross-cutting lint tests: the clean INFs are clean, every rule belongs
//! to exactly one part (each part's file, `lint_<part>.rs`, has the bad
//! INFs for its rules), rule ids, ordering of findings, and the coverage
//! table in docs/inf-lint.md and README.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use weir_inf::{copied_files, lint, parse, Rule};

#[test]
fn good_inf_is_clean() {
    let diags = lint(GOOD, "t.inf");
    assert!(diags.is_empty(), "{diags:#?}");
    let crlf = GOOD.replace('\n', "\r\n");
    assert!(lint(&crlf, "t.inf").is_empty());
}

#[test]
fn stamped_driver_inx_is_clean() {
    let inf = stamped_driver_inf();
    let diags = lint(&inf, "weir.inf");
    assert!(diags.is_empty(), "{diags:#?}");
}

#[test]
fn driver_inx_has_the_documented_shape() {
    assert!(
        DRIVER_INX
            .split_inclusive('\n')
            .all(|l| l.ends_with("\r\n")),
        "driver.inx must use CRLF line ends"
    );
    let inf = parse(&stamped_driver_inf()).unwrap();
    let v = inf.section("Version").unwrap();
    let val = |k: &str| v.get(k).unwrap().value(0).unwrap().to_owned();
    assert_eq!(val("Signature"), "$WINDOWS NT$");
    assert_eq!(val("Class"), "WFPCALLOUTS");
    assert_eq!(val("ClassGuid"), "{57465043-616C-6C6F-7574-5F636C617373}");
    assert_eq!(val("CatalogFile"), "weir.cat");
    assert_eq!(val("PnpLockdown"), "1");
    assert!(inf.has_section("DefaultInstall.NTamd64"));
    assert!(inf.has_section("DefaultInstall.NTamd64.Services"));
    for absent in ["DefaultInstall", "Manufacturer", "DefaultUninstall"] {
        assert!(!inf.has_section(absent), "{absent}");
    }
    let add = inf
        .entries("DefaultInstall.NTamd64.Services", "AddService")
        .next()
        .unwrap();
    let svc = inf.section(add.value(2).unwrap()).unwrap();
    let sval = |k: &str| svc.get(k).unwrap().value(0).unwrap().to_owned();
    assert_eq!(sval("ServiceBinary"), "%13%\\weir.sys");
    assert_eq!(sval("ServiceType"), "1");
    // System start: enforced from boot (driver.inx's header gives the reasons;
    // scripts\Install-Weir.ps1 -OnDemand keeps demand start for test VMs).
    assert_eq!(sval("StartType"), "1");
    assert_eq!(sval("ErrorControl"), "1");
    let reg = inf.section(&sval("AddReg")).unwrap();
    let e = &reg.entries[0];
    assert_eq!(
        e.values.iter().map(|v| v.text.as_str()).collect::<Vec<_>>(),
        ["HKR", "Parameters", "TraceLevel", "0x00010001", "2"]
    );
    // Fail open by default, and an update never overwrites the admin's choice.
    let fail_mode = reg.entries.get(1).unwrap();
    assert_eq!(
        fail_mode.values.iter().map(|v| v.text.as_str()).collect::<Vec<_>>(),
        ["HKR", "Parameters", "FailMode", "0x00010003", "0"]
    );
    let files: Vec<String> = copied_files(&inf).into_iter().map(|f| f.name).collect();
    assert_eq!(files, ["weir.sys"]);
    let dest = inf
        .entries("DestinationDirs", "DefaultDestDir")
        .next()
        .unwrap();
    assert_eq!(dest.value(0), Some("13"));
}

#[test]
fn every_rule_belongs_to_exactly_one_part() {
    for rule in Rule::ALL {
        let parts: Vec<&str> = PARTS
            .iter()
            .filter(|(_, rules)| rules.contains(&rule))
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(parts.len(), 1, "rule {} is in parts {parts:?}", rule.id());
    }
    let listed: usize = PARTS.iter().map(|(_, rules)| rules.len()).sum();
    assert_eq!(listed, Rule::ALL.len());
}

#[test]
fn rule_ids_are_unique_kebab_case() {
    let mut ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
    assert!(ids
        .iter()
        .all(|i| i.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')));
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), Rule::ALL.len());
}

#[test]
fn diagnostics_are_sorted_and_independent_rules_all_fire() {
    let text = good_with("DefaultDestDir = 13", "DefaultDestDir = 11")
        .replacen("HKR,Parameters", "HKCU,Parameters", 1)
        .replacen("PnpLockdown = 1", "PnpLockdown = 2", 1);
    let d = lint(&text, "t.inf");
    let rules: Vec<Rule> = d.iter().map(|d| d.rule).collect();
    assert_eq!(
        rules,
        [Rule::VersionValue, Rule::DestinationDirid, Rule::AddRegRoot]
    );
    assert!(d.windows(2).all(|w| w[0].line <= w[1].line));
}

/// `| code | status | rule ids or reason | meaning |`.
fn doc_rows() -> Vec<(u16, String, String)> {
    const DOC: &str = include_str!("../../../docs/inf-lint.md");
    DOC.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l
                .trim()
                .strip_prefix('|')?
                .split('|')
                .map(str::trim)
                .collect();
            let code = cells.first()?.parse::<u16>().ok()?;
            Some((code, cells.get(1)?.to_string(), cells.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn docs_table_lists_every_code_once_and_matches_the_rules() {
    let rows = doc_rows();
    // Microsoft's page lists 202 codes (WDK 10.0.26200); a table that lost
    // rows would hide codes we do not cover.
    assert!(
        rows.len() >= 200,
        "docs/inf-lint.md has {} codes",
        rows.len()
    );
    let mut codes: Vec<u16> = rows.iter().map(|r| r.0).collect();
    assert!(
        codes.windows(2).all(|w| w[0] < w[1]),
        "codes must be sorted and unique"
    );
    codes.dedup();
    for (code, status, detail) in &rows {
        assert!(
            ["covered", "subsumed", "not covered", "n/a"].contains(&status.as_str()),
            "{code}: status {status:?}"
        );
        let claimed: Vec<Rule> = Rule::ALL
            .into_iter()
            .filter(|r| detail.split(['`', ',', ' ']).any(|w| w == r.id()))
            .collect();
        let reporting: Vec<Rule> = Rule::ALL
            .into_iter()
            .filter(|r| r.infverif_codes().contains(code))
            .collect();
        if status == "covered" {
            assert!(
                !reporting.is_empty(),
                "{code} is marked covered but no rule reports it"
            );
            assert_eq!(
                claimed, reporting,
                "{code}: the doc names other rules than the code"
            );
        } else {
            assert!(
                reporting.is_empty(),
                "{code} is reported by {reporting:?} but marked {status}"
            );
            assert!(detail.len() > 10, "{code}: say why it is {status}");
            if status == "subsumed" {
                assert!(
                    !claimed.is_empty(),
                    "{code}: name the rule that subsumes it"
                );
            }
        }
    }
    for rule in Rule::ALL {
        for code in rule.infverif_codes() {
            assert!(
                codes.contains(code),
                "{} reports {code}, missing from docs/inf-lint.md",
                rule.id()
            );
        }
    }
}

/// Valid INF variants seen in Microsoft's driver samples that an earlier

#[test]
fn readme_counts_and_uncovered_list_match_the_docs_table() {
    const README: &str = include_str!("../../../README.md");
    let rows = doc_rows();
    let count = |s: &str| rows.iter().filter(|r| r.1 == s).count();
    let prose = README.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        format!("Of the {} codes", rows.len()),
        format!("it reports {},", count("covered")),
        format!("{} more are rejected", count("subsumed")),
        format!("{} are for other INF kinds", count("n/a")),
        format!("It does not cover these {},", count("not covered")),
    ] {
        assert!(prose.contains(&needle), "README lacks {needle:?}");
    }
    let uncovered: Vec<String> = rows
        .iter()
        .filter(|r| r.1 == "not covered")
        .map(|r| r.0.to_string())
        .collect();
    assert!(
        prose.contains(&format!("{}.", uncovered.join(", "))),
        "README's list of uncovered codes differs from docs/inf-lint.md: {}",
        uncovered.join(", ")
    );
}
