//! Lint rules for one INF part — AddService directives and service-install sections.
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
    let svc2 = "[T.Service2]\nServiceType = 1\nStartType = 2\nErrorControl = 1\nServiceBinary = %13%\\t.sys\n\n[Strings]";
    let more: Vec<More> = vec![
        // service-install
        (
            "StartType out of range",
            good_with("StartType = 3", "StartType = 7"),
            Rule::ServiceInstall,
            1014,
            "StartType",
        ),
        (
            "AddService flags not a number",
            good_with(
                "AddService = %Svc%,,T.Service",
                "AddService = %Svc%,zz,T.Service",
            ),
            Rule::ServiceInstall,
            1081,
            "AddService",
        ),
        (
            "two associated services",
            good_with(
                "AddService = %Svc%,,T.Service",
                "AddService = %Svc%,0x2,T.Service\nAddService = other,0x2,T.Service",
            ),
            Rule::ServiceInstall,
            1211,
            "AddService = other",
        ),
        (
            "EventLogType not a log",
            good_with(
                "AddService = %Svc%,,T.Service",
                "AddService = %Svc%,,T.Service,T.Service,Bogus",
            ),
            Rule::ServiceInstall,
            1250,
            "AddService",
        ),
        (
            "disabled associated service",
            good_with(
                "AddService = %Svc%,,T.Service",
                "AddService = %Svc%,0x2,T.Service",
            )
            .replacen("StartType = 3", "StartType = 4", 1),
            Rule::ServiceInstall,
            1251,
            "AddService",
        ),
        (
            "Win32 service started at boot",
            good_with("ServiceType = 1", "ServiceType = 0x10").replacen(
                "StartType = 3",
                "StartType = 0",
                1,
            ),
            Rule::ServiceInstall,
            1252,
            "StartType",
        ),
        (
            "AddService without a name",
            good_with("AddService = %Svc%,,T.Service", "AddService = ,,T.Service"),
            Rule::ServiceInstall,
            1253,
            "AddService",
        ),
        (
            "ServiceBinary with no file name",
            good_with(
                "ServiceBinary = %13%\\t.sys",
                "ServiceBinary = %13%\\t?.sys",
            ),
            Rule::ServiceInstall,
            1254,
            "ServiceBinary",
        ),
        (
            "service value outside Parameters",
            good_with("HKR,Parameters,Level", "HKR,,Level"),
            Rule::ServiceInstall,
            1323,
            "HKR,,Level",
        ),
        (
            "one service, two install sections",
            good_with(
                "AddService = %Svc%,,T.Service",
                "AddService = %Svc%,,T.Service\nAddService = %Svc%,,T.Service2",
            )
            .replacen("\n[Strings]", &format!("\n{svc2}"), 1),
            Rule::ServiceInstall,
            1333,
            "T.Service2\n",
        ),
        (
            "ServiceBinary not a copied file",
            good_with(
                "ServiceBinary = %13%\\t.sys",
                "ServiceBinary = %13%\\other.sys",
            ),
            Rule::ServiceInstall,
            2084,
            "ServiceBinary",
        ),
        (
            "ServiceBinary not under a DIRID",
            good_with("ServiceBinary = %13%\\t.sys", "ServiceBinary = t.sys"),
            Rule::ServiceInstall,
            2085,
            "ServiceBinary",
        ),
    ];
    let mut v: Vec<Case> = more.into_iter().map(more_case).collect();

    // service-install
    v.push(case(
        "ServiceBinary outside the driver store",
        good_with("ServiceBinary = %13%\\t.sys", "ServiceBinary = %12%\\t.sys"),
        Rule::ServiceInstall,
        1258,
        "ServiceBinary",
    ));
    v.push(case(
        "StartType missing",
        good_with("StartType = 3\n", ""),
        Rule::ServiceInstall,
        1013,
        "[T.Service]",
    ));
    v.push(case(
        "ErrorControl not a number",
        good_with("ErrorControl = 1", "ErrorControl = normal"),
        Rule::ServiceInstall,
        1014,
        "ErrorControl",
    ));
    v.push(case(
        "AddService without install section",
        good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,0x2"),
        Rule::ServiceInstall,
        1005,
        "AddService",
    ));

    v
}

#[test]
fn every_rule_and_code_of_this_part_has_a_bad_inf() {
    check_part("services", &cases());
}

#[test]
fn rule_service_install() {
    check_rule(&cases(), Rule::ServiceInstall);
}

/// Valid variants an earlier version of these rules flagged.
#[test]
fn valid_variants_are_not_flagged() {
    let variants: Vec<(&str, String, Rule, Option<u16>)> = vec![
        (
            "numbers given as %strings%",
            good_with("StartType = 3", "StartType = %DEMAND%")
                .replacen("AddService = %Svc%,,T.Service", "AddService = %Svc%,%FLAGS%,T.Service", 1)
                .replacen("HKR,Parameters,Level,0x00010001,1", "HKR,Parameters,Level,%DWORD%,1", 1)
                .replacen("Svc = \"t\"", "Svc = \"t\"\nDEMAND = 3\nFLAGS = 0x0\nDWORD = 0x00010001", 1),
            Rule::ServiceInstall,
            Some(1014),
        ),
        (
            "the documented null driver",
            good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,,T.Service\nAddService = ,0x2"),
            Rule::ServiceInstall,
            Some(1253),
        ),
        (
            "the null driver has no install section",
            good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,,T.Service\nAddService = ,0x2"),
            Rule::ServiceInstall,
            Some(1005),
        ),
        (
            "same service, same configuration, two sections",
            good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,,T.Service\nAddService = %Svc%,,T.Service2")
                .replacen("[Strings]", "[T.Service2]\nServiceType = 1\nStartType = 3\nErrorControl = 1\nServiceBinary = %13%\\t.sys\n\n[Strings]", 1),
            Rule::ServiceInstall,
            Some(1333),
        ),
        (
            "inbox service binary",
            good_with("ServiceBinary = %13%\\t.sys", "ServiceBinary = %12%\\WUDFRd.sys"),
            Rule::ServiceInstall,
            Some(2084),
        ),
    ];
    assert_not_flagged(variants);
}
