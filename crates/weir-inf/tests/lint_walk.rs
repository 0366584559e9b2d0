//! Lint rules for one INF part — References from the install sections: missing sections, sections of the
//! wrong kind or used two ways, Needs, unreferenced sections.
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
        // missing-section 1005 / 1011 / 1271
        (
            "CopyFiles with no section",
            good_with("CopyFiles = T.Files", "CopyFiles ="),
            Rule::MissingSection,
            1005,
            "CopyFiles =",
        ),
        (
            "AddReg with no section",
            good_with("AddReg = T.Reg", "AddReg = ,"),
            Rule::MissingSection,
            1005,
            "AddReg = ,",
        ),
        (
            "Manufacturer entry without models section",
            good_with("[Strings]", "[Manufacturer]\n%Prov% =\n\n[Strings]").replacen(
                "[DefaultInstall.NTamd64]",
                "[X.NTamd64]",
                1,
            ),
            Rule::MissingSection,
            1011,
            "%Prov% =",
        ),
        (
            "model without install section",
            good_with(
                "[Strings]",
                "[Manufacturer]\n%Prov% = Models\n\n[Models]\n%Svc% = , Root\\T\n\n[Strings]",
            )
            .replacen("[DefaultInstall.NTamd64]", "[X.NTamd64]", 1),
            Rule::MissingSection,
            1271,
            "%Svc% = ,",
        ),
        // section-reuse / section-kind / section-directive
        (
            "file list also used as AddReg",
            good_with(
                "CopyFiles = T.Files",
                "CopyFiles = T.Files\nAddReg = T.Files",
            ),
            Rule::SectionReuse,
            1205,
            "AddReg = T.Files",
        ),
        (
            "CopyFiles names [Strings]",
            good_with("CopyFiles = T.Files", "CopyFiles = T.Files, Strings"),
            Rule::SectionKind,
            1206,
            "CopyFiles",
        ),
        // needs-include
        (
            "Needs without Include",
            good_with(
                "CopyFiles = T.Files",
                "CopyFiles = T.Files\nNeeds = Other.Install",
            ),
            Rule::Needs,
            1319,
            "Needs",
        ),
        (
            ".Services needs a section without the suffix",
            good_with(
                "AddService = %Svc%,,T.Service",
                "AddService = %Svc%,,T.Service\nInclude = netservice.inf\nNeeds = Other.Install",
            ),
            Rule::Needs,
            1313,
            "Needs",
        ),
        (
            "install section needs a .Services section",
            good_with(
                "CopyFiles = T.Files",
                "CopyFiles = T.Files\nInclude = netservice.inf\nNeeds = Other.Install.Services",
            ),
            Rule::Needs,
            1312,
            "Needs",
        ),
        // localized-strings / unused-section
        (
            "unreferenced section",
            good_with(
                "[T.Reg]\n",
                "[T.Unused]\nHKR,Parameters,X,0x00010001,1\n\n[T.Reg]\n",
            ),
            Rule::UnusedSection,
            2083,
            "[T.Unused]",
        ),
    ];
    let mut v: Vec<Case> = more.into_iter().map(more_case).collect();

    // missing-section
    v.push(case(
        "CopyFiles to a missing section",
        good_with("CopyFiles = T.Files", "CopyFiles = T.Files, T.Nope"),
        Rule::MissingSection,
        1203,
        "CopyFiles",
    ));
    v.push(case(
        "AddReg to a missing section",
        good_with("AddReg = T.Reg", "AddReg = T.Nope"),
        Rule::MissingSection,
        1203,
        "AddReg",
    ));
    v.push(case(
        "AddService to a missing section",
        good_with(
            "AddService = %Svc%,,T.Service",
            "AddService = %Svc%,,T.Nope",
        ),
        Rule::MissingSection,
        1203,
        "AddService",
    ));
    v.push(case(
        "DestinationDirs for a missing section",
        good_with("DefaultDestDir = 13", "DefaultDestDir = 13\nT.Nope = 13"),
        Rule::MissingSection,
        1203,
        "T.Nope",
    ));
    v.push(case(
        "Manufacturer models section missing",
        good_with(
            "[DefaultInstall.NTamd64]",
            "[Manufacturer]\n%Prov% = Models,NTamd64\n\n[DefaultInstall.NTamd64]",
        ),
        Rule::MissingSection,
        1203,
        "%Prov% = Models",
    ));

    v
}

#[test]
fn every_rule_and_code_of_this_part_has_a_bad_inf() {
    check_part("walk", &cases());
}

#[test]
fn rule_missing_section() {
    check_rule(&cases(), Rule::MissingSection);
}

#[test]
fn rule_section_reuse() {
    check_rule(&cases(), Rule::SectionReuse);
}

#[test]
fn rule_section_kind() {
    check_rule(&cases(), Rule::SectionKind);
}

#[test]
fn rule_needs() {
    check_rule(&cases(), Rule::Needs);
}

#[test]
fn rule_unused_section() {
    check_rule(&cases(), Rule::UnusedSection);
}

/// Valid variants an earlier version of these rules flagged.
#[test]
fn valid_variants_are_not_flagged() {
    let variants: Vec<(&str, String, Rule, Option<u16>)> = vec![(
        "section referenced by a directive the lint does not model",
        good_with(
            "CopyFiles = T.Files",
            "CopyFiles = T.Files\nKmdfService = t, T.Wdf",
        )
        .replacen(
            "[T.Reg]\n",
            "[T.Wdf]\nKmdfLibraryVersion = 1.15\n\n[T.Reg]\n",
            1,
        ),
        Rule::UnusedSection,
        Some(2083),
    )];
    assert_not_flagged(variants);
}
