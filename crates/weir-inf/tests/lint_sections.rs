//! Lint rules for one INF part — The INF's shape and sections: install sections, banned sections and
//! directives, directives in the wrong section, duplicates, extra values.
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
        // duplicates
        (
            "section defined twice",
            good_with("[T.Reg]\n", "[T.Files]\nt.sys\n\n[T.Reg]\n"),
            Rule::DuplicateSection,
            1209,
            "[T.Files]\nt.sys\n\n[T.Reg]",
        ),
        (
            "Version key twice",
            good_with("PnpLockdown = 1", "PnpLockdown = 1\nPnpLockdown = 1"),
            Rule::DuplicateDirective,
            1088,
            "PnpLockdown = 1\n\n",
        ),
        (
            "service key twice",
            good_with("StartType = 3", "StartType = 3\nStartType = 3"),
            Rule::DuplicateDirective,
            1088,
            "StartType = 3\nErrorControl",
        ),
        (
            "string defined twice",
            good_with(
                "Disk = \"Test Disk\"",
                "Disk = \"Test Disk\"\nDISK = \"Other\"",
            ),
            Rule::DuplicateEntry,
            1294,
            "DISK =",
        ),
        (
            "source file listed twice",
            good_with("t.sys = 1,,", "t.sys = 1,,\nT.SYS = 1,,"),
            Rule::DuplicateEntry,
            1294,
            "T.SYS",
        ),
        (
            "file listed twice in a file list",
            good_with("[T.Files]\nt.sys", "[T.Files]\nt.sys\nt.sys"),
            Rule::DuplicateEntry,
            1294,
            "t.sys\n\n[T.Service]",
        ),
        // extra-value
        (
            "PnpLockdown with an extra field",
            good_with("PnpLockdown = 1", "PnpLockdown = 1,2"),
            Rule::ExtraValue,
            1201,
            "PnpLockdown",
        ),
        (
            "StartType with an extra field",
            good_with("StartType = 3", "StartType = 3,4"),
            Rule::ExtraValue,
            1201,
            "StartType",
        ),
        (
            "DestinationDirs with an extra field",
            good_with("DefaultDestDir = 13", "DefaultDestDir = 13,,x"),
            Rule::ExtraValue,
            1201,
            "DefaultDestDir",
        ),
        // section-reuse / section-kind / section-directive
        (
            "AddService in an install section",
            good_with(
                "CopyFiles = T.Files",
                "CopyFiles = T.Files\nAddService = %Svc%,,T.Service",
            ),
            Rule::SectionDirective,
            1290,
            "AddService = %Svc%,,T.Service\n\n[DefaultInstall.NTamd64.Services]",
        ),
        (
            "directive name with a backslash",
            good_with(
                "CopyFiles = T.Files",
                "CopyFiles = T.Files\nCopy\\Files = T.Files",
            ),
            Rule::SectionDirective,
            1150,
            "Copy\\Files",
        ),
        (
            "directive name with a comma",
            good_with(
                "CopyFiles = T.Files",
                "CopyFiles = T.Files\nCopy,Files = T.Files",
            ),
            Rule::SectionDirective,
            1150,
            "Copy,Files",
        ),
        (
            "CopyFiles in a .Services section",
            good_with(
                "AddService = %Svc%,,T.Service",
                "AddService = %Svc%,,T.Service\nCopyFiles = T.Files",
            ),
            Rule::SectionDirective,
            1290,
            "CopyFiles = T.Files\n\n[T.Files]",
        ),
        (
            "CopyFiles in a service-install section",
            good_with("AddReg = T.Reg", "AddReg = T.Reg\nCopyFiles = T.Files"),
            Rule::SectionDirective,
            1290,
            "CopyFiles = T.Files\n\n[T.Reg]",
        ),
    ];
    let mut v: Vec<Case> = more.into_iter().map(more_case).collect();

    // manufacturer-and-defaultinstall
    v.push(case(
        "Manufacturer and DefaultInstall",
        good_with(
            "[DestinationDirs]",
            "[Manufacturer]\n%Prov% = Models,NTamd64\n\n[Models.NTamd64]\n%Svc% = T.Install, Root\\T\n\n[T.Install.NTamd64]\nCopyFiles = T.Files\n\n[DestinationDirs]",
        ),
        Rule::ManufacturerAndDefaultInstall, 1212,
        "[DefaultInstall.NTamd64]",
    ));

    // undecorated-defaultinstall
    v.push(case(
        "undecorated DefaultInstall",
        good_with("[DefaultInstall.NTamd64]", "[DefaultInstall]"),
        Rule::UndecoratedDefaultInstall,
        1421,
        "[DefaultInstall]",
    ));
    v.push(case(
        "DefaultInstall.NT without architecture",
        good_with(
            "[DefaultInstall.NTamd64.Services]",
            "[DefaultInstall.NT.Services]",
        ),
        Rule::UndecoratedDefaultInstall,
        1421,
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
        1423,
        "[Version]",
    ));

    // banned-section
    for (section, marker, code) in [
        (
            "[ClassInstall32]\nAddReg = T.Reg\n",
            "[ClassInstall32]",
            1285,
        ),
        (
            "[DefaultInstall.NTamd64.CoInstallers]\nAddReg = T.Reg\n",
            "CoInstallers",
            1300,
        ),
        ("[T.LogConfigOverride]\n", "LogConfigOverride", 1300),
        ("[DefaultUninstall.NTamd64]\n", "DefaultUninstall", 1422),
    ] {
        v.push(case(
            "banned section",
            good_with("[Strings]", &format!("{section}\n[Strings]")),
            Rule::BannedSection,
            code,
            marker,
        ));
    }

    // banned-directive
    for (directive, code) in [
        ("DelFiles = T.Files", 1302),
        ("DelReg = T.Reg", 1302),
        ("DelService = t", 1302),
        ("RenFiles = T.Files", 1302),
        ("RegisterDlls = T.Files", 1301),
        ("UnregisterDlls = T.Files", 1302),
        ("UpdateInis = T.Files", 1301),
        ("UpdateIniFields = T.Files", 1301),
        ("Ini2Reg = T.Files", 1301),
        ("ProfileItems = T.Files", 1301),
        ("LogConfig = T.Files", 1300),
    ] {
        v.push(case(
            "banned directive",
            good_with(
                "CopyFiles = T.Files",
                &format!("CopyFiles = T.Files\n{directive}"),
            ),
            Rule::BannedDirective,
            code,
            directive,
        ));
    }

    v
}

#[test]
fn every_rule_and_code_of_this_part_has_a_bad_inf() {
    check_part("sections", &cases());
}

#[test]
fn rule_manufacturer_and_default_install() {
    check_rule(&cases(), Rule::ManufacturerAndDefaultInstall);
}

#[test]
fn rule_undecorated_default_install() {
    check_rule(&cases(), Rule::UndecoratedDefaultInstall);
}

#[test]
fn rule_no_install_section() {
    check_rule(&cases(), Rule::NoInstallSection);
}

#[test]
fn rule_banned_section() {
    check_rule(&cases(), Rule::BannedSection);
}

#[test]
fn rule_banned_directive() {
    check_rule(&cases(), Rule::BannedDirective);
}

#[test]
fn rule_duplicate_section() {
    check_rule(&cases(), Rule::DuplicateSection);
}

#[test]
fn rule_duplicate_directive() {
    check_rule(&cases(), Rule::DuplicateDirective);
}

#[test]
fn rule_duplicate_entry() {
    check_rule(&cases(), Rule::DuplicateEntry);
}

#[test]
fn rule_extra_value() {
    check_rule(&cases(), Rule::ExtraValue);
}

#[test]
fn rule_section_directive() {
    check_rule(&cases(), Rule::SectionDirective);
}

/// ClassInstall32 stays banned (Weir's rule), but InfVerif 1285 is only for
/// Microsoft-defined classes.
#[test]
fn class_install32_of_a_custom_class_has_no_infverif_code() {
    let custom = good_with("Class = WFPCALLOUTS", "Class = WeirClass")
        .replacen(
            "{57465043-616C-6C6F-7574-5F636C617373}",
            "{12345678-1234-1234-1234-123456789ABC}",
            1,
        )
        .replacen(
            "[Strings]",
            "[ClassInstall32]\nAddReg = T.Reg\n\n[Strings]",
            1,
        );
    let d = lint(&custom, "t.inf");
    assert!(
        d.iter()
            .any(|d| d.rule == Rule::BannedSection && d.infverif.is_none()),
        "{d:#?}"
    );
}
