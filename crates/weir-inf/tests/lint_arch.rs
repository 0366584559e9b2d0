//! Lint rules for one INF part — platform extensions: decorations that
//! disagree with each other (`arch-decoration`), and with the architecture
//! of the package's kernel image (`image-arch`, through `lint_for_arch`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use weir_inf::*;

/// `GOOD` installing on amd64 and arm64 from one INF, the same files for both.
fn multi() -> String {
    good_with(
        "[T.Files]",
        "[DefaultInstall.NTarm64]\nCopyFiles = T.Files\n\n[DefaultInstall.NTarm64.Services]\nAddService = %Svc%,,T.Service\n\n[T.Files]",
    )
}

/// `multi()` with the files listed per architecture.
fn multi_per_arch_files() -> String {
    multi().replacen(
        "[SourceDisksFiles]\nt.sys = 1,,",
        "[SourceDisksFiles.amd64]\nt.sys = 1,,\n\n[SourceDisksFiles.arm64]\nt.sys = 1,,",
        1,
    )
}

/// `GOOD` installed through [Manufacturer] models decorated for amd64.
fn models_amd64() -> String {
    good_with(
        "[DefaultInstall.NTamd64]\nCopyFiles = T.Files\n\n[DefaultInstall.NTamd64.Services]",
        "[Manufacturer]\n%Prov% = Models,NTamd64\n\n[Models.NTamd64]\n%Svc% = T.Install, Root\\T\n\n[T.Install.NTamd64]\nCopyFiles = T.Files\n\n[T.Install.NTamd64.Services]",
    )
}

fn cases() -> Vec<Case> {
    vec![
        // arch-decoration 2083: sections Windows reads on no platform the INF installs on
        case(
            ".Services decorated for another architecture",
            good_with(
                "[DefaultInstall.NTamd64.Services]",
                "[DefaultInstall.NTarm64.Services]",
            ),
            Rule::ArchDecoration,
            2083,
            "[DefaultInstall.NTarm64.Services]",
        ),
        case(
            "install section for one architecture, services for another",
            good_with("[DefaultInstall.NTamd64]", "[DefaultInstall.NTarm64]"),
            Rule::ArchDecoration,
            2083,
            "[DefaultInstall.NTamd64.Services]",
        ),
        case(
            "source files for an architecture the INF does not install on",
            good_with(
                "[DestinationDirs]",
                "[SourceDisksFiles.arm64]\nt.sys = 1,,\n\n[DestinationDirs]",
            ),
            Rule::ArchDecoration,
            2083,
            "[SourceDisksFiles.arm64]",
        ),
        case(
            "source disks for an architecture the INF does not install on",
            good_with(
                "[SourceDisksFiles]",
                "[SourceDisksNames.arm64]\n1 = %Disk%,,,\"\"\n\n[SourceDisksFiles]",
            ),
            Rule::ArchDecoration,
            2083,
            "[SourceDisksNames.arm64]",
        ),
        // arch-decoration 1230: a copied file not listed for a platform the INF installs on
        case(
            "driver listed only for arm64 in an amd64 INF",
            good_with("[SourceDisksFiles]", "[SourceDisksFiles.arm64]"),
            Rule::ArchDecoration,
            1230,
            "\nt.sys\n",
        ),
        case(
            "two platforms, files listed for one",
            multi().replacen("[SourceDisksFiles]", "[SourceDisksFiles.amd64]", 1),
            Rule::ArchDecoration,
            1230,
            "\nt.sys\n",
        ),
        // image-arch: decorations for another architecture than the image's
        image_case(
            "amd64 INF, arm64 image",
            GOOD.to_owned(),
            Arch::Arm64,
            Rule::ImageArch,
            None,
            "[DefaultInstall.NTamd64]",
        ),
        image_case(
            "amd64 INF, arm64 image: the .Services section too",
            GOOD.to_owned(),
            Arch::Arm64,
            Rule::ImageArch,
            None,
            "[DefaultInstall.NTamd64.Services]",
        ),
        image_case(
            "arm64 INF, amd64 image",
            GOOD.replace("NTamd64", "NTarm64"),
            Arch::Amd64,
            Rule::ImageArch,
            None,
            "[DefaultInstall.NTarm64]",
        ),
        image_case(
            "amd64 and arm64 INF, arm64 image",
            multi(),
            Arch::Arm64,
            Rule::ImageArch,
            None,
            "[DefaultInstall.NTamd64]",
        ),
        image_case(
            "amd64 source files, arm64 image",
            multi_per_arch_files(),
            Arch::Arm64,
            Rule::ImageArch,
            None,
            "[SourceDisksFiles.amd64]",
        ),
        image_case(
            "amd64 models, arm64 image",
            models_amd64(),
            Arch::Arm64,
            Rule::ImageArch,
            None,
            "%Prov% = Models",
        ),
    ]
}

#[test]
fn every_rule_and_code_of_this_part_has_a_bad_inf() {
    check_part("arch", &cases());
}

#[test]
fn rule_arch_decoration() {
    check_rule(&cases(), Rule::ArchDecoration);
}

#[test]
fn rule_image_arch() {
    check_rule(&cases(), Rule::ImageArch);
}

#[test]
fn undecorated_models_are_x86_only() {
    for (decoration, models) in [
        ("", "Models"),
        (",NT", "Models.NT"),
        (",NT.10.0", "Models.NT.10.0"),
    ] {
        let text = models_amd64()
            .replace("Models,NTamd64", &format!("Models{decoration}"))
            .replace("[Models.NTamd64]", &format!("[{models}]"));
        let line = line_of(&text, "%Prov% = Models");
        for image in Arch::ALL {
            let d = lint_for_arch(text.as_bytes(), "t.inf", image);
            assert!(
                d.iter().any(|d| d.rule == Rule::ImageArch
                    && d.line == line
                    && d.message
                        .contains(&format!("has no {} decoration", image.nt_decoration()))),
                "{image}: {d:#?}"
            );
        }
        assert!(!lint(&text, "t.inf")
            .iter()
            .any(|d| d.rule == Rule::ImageArch));
    }
}

#[test]
fn arch_decoration_message_names_the_missing_install_section() {
    let text = good_with(
        "[DefaultInstall.NTamd64.Services]",
        "[DefaultInstall.NTarm64.Services]",
    );
    let line = line_of(&text, "[DefaultInstall.NTarm64.Services]");
    let d = lint(&text, "t.inf");
    let want = format!("t.inf:{line}: [DefaultInstall.NTarm64.Services] is decorated for arm64, but its install section [DefaultInstall.NTarm64] does not exist: the sections of one install carry the same platform extension, so Windows never reads this one [arch-decoration, InfVerif 2083]");
    assert!(d.iter().any(|d| d.to_string() == want), "{d:#?}");
}

#[test]
fn image_arch_message_names_the_machine_type() {
    let d = lint_for_arch(GOOD.as_bytes(), "weir.inf", Arch::Arm64);
    let line = line_of(GOOD, "[DefaultInstall.NTamd64]");
    let want = format!(
        "weir.inf:{line}: [DefaultInstall.NTamd64] installs on amd64, but the package's kernel image is arm64 (PE machine 0xAA64) [image-arch]"
    );
    assert!(d.iter().any(|d| d.to_string() == want), "{d:#?}");
}

/// Consistent decorations, and images of the INF's own architecture.
#[test]
fn valid_variants_are_not_flagged() {
    for (name, text) in [
        ("amd64 and arm64, shared files", multi()),
        (
            "amd64 and arm64, files per architecture",
            multi_per_arch_files(),
        ),
        (
            "OS-version fields after the architecture",
            GOOD.replace("NTamd64", "NTamd64.10.0...19041"),
        ),
        ("models decorated for amd64", models_amd64()),
    ] {
        let d: Vec<Diagnostic> = lint(&text, "t.inf")
            .into_iter()
            .filter(|d| d.rule == Rule::ArchDecoration)
            .collect();
        assert!(d.is_empty(), "{name}: {d:#?}");
    }
    assert!(lint_for_arch(GOOD.as_bytes(), "t.inf", Arch::Amd64).is_empty());
    let arm = GOOD.replace("NTamd64", "NTarm64");
    assert!(lint_for_arch(arm.as_bytes(), "t.inf", Arch::Arm64).is_empty());
    let versioned = GOOD.replace("NTamd64", "NTarm64.10.0...22000");
    assert!(lint_for_arch(versioned.as_bytes(), "t.inf", Arch::Arm64).is_empty());
}

/// `lint_for_arch` is `lint_bytes` plus the image-arch findings, and
/// `lint_text_for_arch` is the same on text.
#[test]
fn lint_for_arch_adds_only_image_arch_findings() {
    let texts = [
        GOOD.to_owned(),
        multi(),
        multi_per_arch_files(),
        models_amd64(),
        good_with("DefaultDestDir = 13", "DefaultDestDir = 11"),
        good_with("[SourceDisksFiles]", "[SourceDisksFiles.arm64]"),
        format!("\u{feff}{GOOD}"),
    ];
    for text in &texts {
        let plain = lint_bytes(text.as_bytes(), "t.inf");
        for image in Arch::ALL {
            let with = lint_for_arch(text.as_bytes(), "t.inf", image);
            let without: Vec<Diagnostic> = with
                .iter()
                .filter(|d| d.rule != Rule::ImageArch)
                .cloned()
                .collect();
            assert_eq!(without, plain, "{image}\n{text}");
            if !text.starts_with('\u{feff}') {
                assert_eq!(lint_text_for_arch(text, "t.inf", image), with);
            }
        }
    }
    let d = lint_for_arch(b"[Version\n", "t.inf", Arch::Amd64);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].rule, Rule::ParseError);
}
