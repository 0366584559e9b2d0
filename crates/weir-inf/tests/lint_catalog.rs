//! Catalog coverage: the catalog must list the INF and every file it copies
//! (a project rule InfVerif does not have; inf2cat and signing need it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use weir_inf::*;

#[test]
fn rule_catalog_coverage() {
    let inf = stamped_driver_inf();
    assert!(check_catalog_coverage(&inf, "weir.inf", &["weir.inf", "weir.sys"]).is_empty());
    assert!(check_catalog_coverage(&inf, "weir.inf", &["WEIR.INF", "Weir.Sys"]).is_empty());

    let d = check_catalog_coverage(&inf, "weir.inf", &["weir.sys"]);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].rule, Rule::CatalogCoverage);
    assert_eq!(d[0].line, line_of(&inf, "CatalogFile"));
    assert!(d[0]
        .message
        .starts_with(&format!("weir.inf:{}: ", d[0].line)));

    let d = check_catalog_coverage(&inf, "weir.inf", &["weir.inf".to_owned()]);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].rule, Rule::CatalogCoverage);
    // the file-list line that copies weir.sys (not the SourceDisksFiles one)
    let list_line = inf.lines().position(|l| l.trim() == "weir.sys").unwrap() + 1;
    assert_eq!(d[0].line, list_line);
    assert!(d[0].message.contains("weir.sys"));

    let d = check_catalog_coverage("[A\n", "weir.inf", &["weir.inf"]);
    assert_eq!(d[0].rule, Rule::ParseError);
}
