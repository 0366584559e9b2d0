//! One or more small bad INFs per lint rule, each rejected with the expected
//! rule id at the expected line; and the real stamped driver.inx lints clean.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use weir_inf::{check_catalog_coverage, copied_files, lint, parse, stamp, Rule, StampOptions};

const DRIVER_INX: &str = include_str!("../../../driver.inx");

/// A small INF that lints clean; the cases below break one thing each.
const GOOD: &str = "\
; test INF
[Version]
Signature = \"$WINDOWS NT$\"
Class = WFPCALLOUTS
ClassGuid = {57465043-616C-6C6F-7574-5F636C617373}
Provider = %Prov%
CatalogFile = t.cat
DriverVer = 05/17/2025,1.2.3.0
PnpLockdown = 1

[SourceDisksNames]
1 = %Disk%,,,\"\"

[SourceDisksFiles]
t.sys = 1,,

[DestinationDirs]
DefaultDestDir = 13

[DefaultInstall.NTamd64]
CopyFiles = T.Files

[DefaultInstall.NTamd64.Services]
AddService = %Svc%,,T.Service

[T.Files]
t.sys

[T.Service]
ServiceType = 1
StartType = 3
ErrorControl = 1
ServiceBinary = %13%\\t.sys
AddReg = T.Reg

[T.Reg]
HKR,Parameters,Level,0x00010001,1

[Strings]
Prov = \"Test Provider\"
Disk = \"Test Disk\"
Svc = \"t\"
";

fn stamped_driver_inf() -> String {
    stamp(
        DRIVER_INX,
        &StampOptions {
            arch: "amd64",
            date: (2025, 5, 17),
            version: [0, 1, 0, 0],
            catalog_file: None,
        },
    )
    .unwrap()
}

/// 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in text"))
}

/// `GOOD` with `from` replaced by `to` (which must occur).
fn good_with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from:?} not in GOOD");
    GOOD.replacen(from, to, 1)
}

struct Case {
    name: &'static str,
    text: String,
    rule: Rule,
    line: usize,
}

fn case(name: &'static str, text: String, rule: Rule, marker: &str) -> Case {
    let line = line_of(&text, marker);
    Case {
        name,
        text,
        rule,
        line,
    }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();

    // parse-error
    v.push(case(
        "unterminated quote",
        good_with("PnpLockdown = 1", "PnpLockdown = \"1"),
        Rule::ParseError,
        "PnpLockdown",
    ));
    v.push(case(
        "entry before any section",
        format!("Stray = 1\n{GOOD}"),
        Rule::ParseError,
        "Stray",
    ));

    // version-missing
    v.push(case(
        "no [Version]",
        good_with("[Version]", "[NotVersion]"),
        Rule::VersionMissing,
        "; test INF",
    ));

    // version-key: each required key missing, reported at the [Version] header
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
            "[Version]",
        ));
    }

    // version-value
    v.push(case(
        "wrong Signature",
        good_with("\"$WINDOWS NT$\"", "\"$Chicago$\""),
        Rule::VersionValue,
        "Signature",
    ));
    v.push(case(
        "malformed ClassGuid",
        good_with(
            "{57465043-616C-6C6F-7574-5F636C617373}",
            "{57465043-616C-6C6F-7574}",
        ),
        Rule::VersionValue,
        "ClassGuid",
    ));
    v.push(case(
        "WFPCALLOUTS with another GUID",
        good_with(
            "{57465043-616C-6C6F-7574-5F636C617373}",
            "{4D36E972-E325-11CE-BFC1-08002BE10318}",
        ),
        Rule::VersionValue,
        "ClassGuid",
    ));
    v.push(case(
        "Provider is Microsoft",
        good_with("Prov = \"Test Provider\"", "Prov = \"Microsoft\""),
        Rule::VersionValue,
        "Provider",
    ));
    v.push(case(
        "PnpLockdown 0",
        good_with("PnpLockdown = 1", "PnpLockdown = 0"),
        Rule::VersionValue,
        "PnpLockdown",
    ));
    v.push(case(
        "CatalogFile not .cat",
        good_with("CatalogFile = t.cat", "CatalogFile = sub\\t.txt"),
        Rule::VersionValue,
        "CatalogFile",
    ));

    // driverver-format
    for bad in [
        "13/01/2025,1.2.3.0",
        "02/30/2025,1.2.3.0",
        "02/29/2023,1.2.3.0",
        "05/17/2025,1.2.3.70000",
        "05/17/2025,1.x.3.0",
        "05/17/2025,1.2.3.4.5",
        "2025-05-17,1.2.3.0",
        "05/17/25,1.2.3.0",
        "05/17/2025",
    ] {
        v.push(case(
            "bad DriverVer",
            good_with("05/17/2025,1.2.3.0", bad),
            Rule::DriverVerFormat,
            "DriverVer",
        ));
    }

    // manufacturer-and-defaultinstall
    v.push(case(
        "Manufacturer and DefaultInstall",
        good_with(
            "[DestinationDirs]",
            "[Manufacturer]\n%Prov% = Models,NTamd64\n\n[Models.NTamd64]\n%Svc% = T.Install, Root\\T\n\n[T.Install.NTamd64]\nCopyFiles = T.Files\n\n[DestinationDirs]",
        ),
        Rule::ManufacturerAndDefaultInstall,
        "[DefaultInstall.NTamd64]",
    ));

    // undecorated-defaultinstall
    v.push(case(
        "undecorated DefaultInstall",
        good_with("[DefaultInstall.NTamd64]", "[DefaultInstall]"),
        Rule::UndecoratedDefaultInstall,
        "[DefaultInstall]",
    ));
    v.push(case(
        "DefaultInstall.NT without architecture",
        good_with(
            "[DefaultInstall.NTamd64.Services]",
            "[DefaultInstall.NT.Services]",
        ),
        Rule::UndecoratedDefaultInstall,
        "[DefaultInstall.NT.Services]",
    ));

    // no-install-section
    v.push(case(
        "neither Manufacturer nor DefaultInstall",
        good_with("[DefaultInstall.NTamd64]", "[Install.NTamd64]").replacen(
            "[DefaultInstall.NTamd64.Services]",
            "[Install.NTamd64.Services]",
            1,
        ),
        Rule::NoInstallSection,
        "[Version]",
    ));

    // missing-section
    v.push(case(
        "CopyFiles to a missing section",
        good_with("CopyFiles = T.Files", "CopyFiles = T.Files, T.Nope"),
        Rule::MissingSection,
        "CopyFiles",
    ));
    v.push(case(
        "AddReg to a missing section",
        good_with("AddReg = T.Reg", "AddReg = T.Nope"),
        Rule::MissingSection,
        "AddReg",
    ));
    v.push(case(
        "AddService to a missing section",
        good_with(
            "AddService = %Svc%,,T.Service",
            "AddService = %Svc%,,T.Nope",
        ),
        Rule::MissingSection,
        "AddService",
    ));
    v.push(case(
        "DestinationDirs for a missing section",
        good_with("DefaultDestDir = 13", "DefaultDestDir = 13\nT.Nope = 13"),
        Rule::MissingSection,
        "T.Nope",
    ));
    v.push(case(
        "Manufacturer models section missing",
        good_with(
            "[DefaultInstall.NTamd64]",
            "[Manufacturer]\n%Prov% = Models,NTamd64\n\n[DefaultInstall.NTamd64]",
        ),
        Rule::MissingSection,
        "%Prov% = Models",
    ));

    // missing-string
    v.push(case(
        "undefined %token%",
        good_with(
            "ServiceType = 1",
            "DisplayName = %NoSuchString%\nServiceType = 1",
        ),
        Rule::MissingString,
        "DisplayName",
    ));
    v.push(case(
        "undefined %token% inside quotes",
        good_with("1 = %Disk%,,,\"\"", "1 = \"%Disk% %Other%\",,,\"\""),
        Rule::MissingString,
        "%Other%",
    ));

    // copyfiles-source
    v.push(case(
        "copied file not in SourceDisksFiles",
        good_with("[T.Files]\nt.sys", "[T.Files]\nt.sys\nother.sys"),
        Rule::CopyFilesSource,
        "other.sys",
    ));
    v.push(case(
        "renamed copy whose source is unknown",
        good_with("[T.Files]\nt.sys", "[T.Files]\nt.sys,t2.sys"),
        Rule::CopyFilesSource,
        "t.sys,t2.sys",
    ));

    // source-disk
    v.push(case(
        "file on an undefined disk",
        good_with("t.sys = 1,,", "t.sys = 2,,"),
        Rule::SourceDisk,
        "t.sys = 2",
    ));

    // destination-dirid
    v.push(case(
        "DefaultDestDir not 13",
        good_with("DefaultDestDir = 13", "DefaultDestDir = 12"),
        Rule::DestinationDirid,
        "DefaultDestDir",
    ));
    v.push(case(
        "no destination for a file list",
        good_with("DefaultDestDir = 13", "; none"),
        Rule::DestinationDirid,
        "CopyFiles",
    ));

    // addreg-root
    v.push(case(
        "AddReg under HKLM",
        good_with(
            "HKR,Parameters,Level,0x00010001,1",
            "HKR,Parameters,Level,0x00010001,1\nHKLM,System\\CurrentControlSet\\Services\\t,Start,0x00010001,3",
        ),
        Rule::AddRegRoot,
        "HKLM",
    ));

    // service-install
    v.push(case(
        "ServiceBinary outside the driver store",
        good_with("ServiceBinary = %13%\\t.sys", "ServiceBinary = %12%\\t.sys"),
        Rule::ServiceInstall,
        "ServiceBinary",
    ));
    v.push(case(
        "StartType missing",
        good_with("StartType = 3\n", ""),
        Rule::ServiceInstall,
        "[T.Service]",
    ));
    v.push(case(
        "ErrorControl not a number",
        good_with("ErrorControl = 1", "ErrorControl = normal"),
        Rule::ServiceInstall,
        "ErrorControl",
    ));
    v.push(case(
        "AddService without install section",
        good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,0x2"),
        Rule::ServiceInstall,
        "AddService",
    ));

    // banned-section
    for (section, marker) in [
        ("[ClassInstall32]\nAddReg = T.Reg\n", "[ClassInstall32]"),
        (
            "[DefaultInstall.NTamd64.CoInstallers]\nAddReg = T.Reg\n",
            "CoInstallers",
        ),
        ("[T.LogConfigOverride]\n", "LogConfigOverride"),
        ("[DefaultUninstall.NTamd64]\n", "DefaultUninstall"),
    ] {
        v.push(case(
            "banned section",
            good_with("[Strings]", &format!("{section}\n[Strings]")),
            Rule::BannedSection,
            marker,
        ));
    }

    // banned-directive
    for directive in [
        "DelFiles = T.Files",
        "DelReg = T.Reg",
        "DelService = t",
        "RenFiles = T.Files",
        "RegisterDlls = T.Files",
        "UnregisterDlls = T.Files",
        "UpdateInis = T.Files",
        "UpdateIniFields = T.Files",
        "Ini2Reg = T.Files",
        "ProfileItems = T.Files",
    ] {
        v.push(case(
            "banned directive",
            good_with(
                "CopyFiles = T.Files",
                &format!("CopyFiles = T.Files\n{directive}"),
            ),
            Rule::BannedDirective,
            directive,
        ));
    }

    // stamp-variable: the unstamped template
    v.push(case(
        "unstamped $ARCH$",
        DRIVER_INX.to_owned(),
        Rule::StampVariable,
        "[DefaultInstall.NT$ARCH$]",
    ));

    v
}

fn check_rule(rule: Rule) {
    let mut n = 0;
    for c in cases().iter().filter(|c| c.rule == rule) {
        n += 1;
        let diags = lint(&c.text, "t.inf");
        let hit = diags.iter().find(|d| d.rule == rule && d.line == c.line);
        let Some(d) = hit else {
            panic!(
                "case {:?}: expected {} at line {}, got:\n{}\n--- text ---\n{}",
                c.name,
                rule.id(),
                c.line,
                diags
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                c.text
            );
        };
        let prefix = format!("t.inf:{}: ", c.line);
        assert!(d.message.starts_with(&prefix), "{}", d.message);
        assert!(d.to_string().ends_with(&format!("[{}]", rule.id())));
    }
    assert!(n > 0, "no case for {}", rule.id());
}

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
    assert_eq!(sval("StartType"), "3");
    assert_eq!(sval("ErrorControl"), "1");
    let reg = inf.section(&sval("AddReg")).unwrap();
    let e = &reg.entries[0];
    assert_eq!(
        e.values.iter().map(|v| v.text.as_str()).collect::<Vec<_>>(),
        ["HKR", "Parameters", "TraceLevel", "0x00010001", "3"]
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
fn every_rule_has_a_case() {
    for rule in Rule::ALL {
        let covered = rule == Rule::CatalogCoverage || cases().iter().any(|c| c.rule == rule);
        assert!(covered, "rule {} has no test case", rule.id());
    }
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
fn rule_parse_error() {
    check_rule(Rule::ParseError);
}
#[test]
fn rule_version_missing() {
    check_rule(Rule::VersionMissing);
}
#[test]
fn rule_version_key() {
    check_rule(Rule::VersionKey);
}
#[test]
fn rule_version_value() {
    check_rule(Rule::VersionValue);
}
#[test]
fn rule_driverver_format() {
    check_rule(Rule::DriverVerFormat);
}
#[test]
fn rule_manufacturer_and_defaultinstall() {
    check_rule(Rule::ManufacturerAndDefaultInstall);
}
#[test]
fn rule_undecorated_defaultinstall() {
    check_rule(Rule::UndecoratedDefaultInstall);
}
#[test]
fn rule_no_install_section() {
    check_rule(Rule::NoInstallSection);
}
#[test]
fn rule_missing_section() {
    check_rule(Rule::MissingSection);
}
#[test]
fn rule_missing_string() {
    check_rule(Rule::MissingString);
}
#[test]
fn rule_copyfiles_source() {
    check_rule(Rule::CopyFilesSource);
}
#[test]
fn rule_source_disk() {
    check_rule(Rule::SourceDisk);
}
#[test]
fn rule_destination_dirid() {
    check_rule(Rule::DestinationDirid);
}
#[test]
fn rule_addreg_root() {
    check_rule(Rule::AddRegRoot);
    let text = good_with("HKR,Parameters", "HKLM,Parameters");
    let d = lint(&text, "weir.inf");
    let line = line_of(&text, "HKLM");
    assert!(
        d.iter()
            .any(|d| d.message
                == format!("weir.inf:{line}: AddReg root HKLM not allowed (only HKR)")),
        "{d:#?}"
    );
}
#[test]
fn rule_service_install() {
    check_rule(Rule::ServiceInstall);
}
#[test]
fn rule_banned_section() {
    check_rule(Rule::BannedSection);
}
#[test]
fn rule_banned_directive() {
    check_rule(Rule::BannedDirective);
}
#[test]
fn rule_stamp_variable() {
    check_rule(Rule::StampVariable);
}

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
