//! Shared by the lint test files (one per INF part, as `src/lint/` is
//! split): the clean INF the bad ones are made from, the case type, and the
//! checks every part runs on its cases.
//!
//! Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use weir_inf::{lint, lint_bytes, lint_for_arch, stamp, Arch, Rule, StampOptions};

pub const DRIVER_INX: &str = include_str!("../../../../driver.inx");

/// A small INF that lints clean; the cases break one thing each.
pub const GOOD: &str = "\
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

/// Which rules each test file (INF part) owns; `lint_rules.rs` checks that
/// every rule is in exactly one part, and each part checks that every rule
/// and InfVerif code it owns has a bad INF.
pub const PARTS: [(&str, &[Rule]); 10] = [
    (
        "version",
        &[
            Rule::VersionMissing,
            Rule::VersionKey,
            Rule::VersionValue,
            Rule::DriverVerFormat,
        ],
    ),
    (
        "sections",
        &[
            Rule::ManufacturerAndDefaultInstall,
            Rule::UndecoratedDefaultInstall,
            Rule::NoInstallSection,
            Rule::BannedSection,
            Rule::BannedDirective,
            Rule::DuplicateSection,
            Rule::DuplicateDirective,
            Rule::DuplicateEntry,
            Rule::ExtraValue,
            Rule::SectionDirective,
        ],
    ),
    (
        "strings",
        &[
            Rule::MissingString,
            Rule::LocalizedStrings,
            Rule::StampVariable,
        ],
    ),
    (
        "walk",
        &[
            Rule::MissingSection,
            Rule::SectionReuse,
            Rule::SectionKind,
            Rule::Needs,
            Rule::UnusedSection,
        ],
    ),
    ("services", &[Rule::ServiceInstall]),
    (
        "files",
        &[
            Rule::CopyFilesSource,
            Rule::SourceDisk,
            Rule::DestinationDirid,
            Rule::DriverStoreCopy,
        ],
    ),
    (
        "registry",
        &[Rule::AddRegRoot, Rule::AddRegEntry, Rule::RegistryConflict],
    ),
    ("encoding", &[Rule::ParseError, Rule::Encoding]),
    ("catalog", &[Rule::CatalogCoverage]),
    ("arch", &[Rule::ArchDecoration, Rule::ImageArch]),
];

pub fn stamped_driver_inf() -> String {
    stamped_driver_inf_for("amd64")
}

pub fn stamped_driver_inf_for(arch: &str) -> String {
    stamp(
        DRIVER_INX,
        &StampOptions {
            arch,
            date: (2025, 5, 17),
            version: [0, 1, 0, 0],
            catalog_file: None,
        },
    )
    .unwrap()
}

/// 1-based line where the first occurrence of `needle` starts (leading
/// newlines of `needle` skipped, so "\nx\n" finds a line that is exactly x).
pub fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    let skip = needle.len() - needle.trim_start_matches('\n').len();
    text[..at + skip].matches('\n').count() + 1
}

/// `GOOD` with `from` replaced by `to` (which must occur).
pub fn good_with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from:?} not in GOOD");
    GOOD.replacen(from, to, 1)
}

pub struct Case {
    pub name: &'static str,
    pub text: String,
    pub rule: Rule,
    /// The InfVerif code the finding must carry (None: a project rule).
    pub code: Option<u16>,
    pub line: usize,
    /// Lint with `lint_for_arch` for an image of this architecture
    /// (None: `lint_bytes`).
    pub image: Option<Arch>,
}

/// A bad INF: `text` must produce `rule` with InfVerif `code` on the line
/// containing `marker`.
pub fn case(
    name: &'static str,
    text: String,
    rule: Rule,
    code: impl Into<Option<u16>>,
    marker: &str,
) -> Case {
    let line = line_of(&text, marker);
    Case {
        name,
        text,
        rule,
        code: code.into(),
        line,
        image: None,
    }
}

/// [`case`] linted with `lint_for_arch` for an `image` kernel image.
pub fn image_case(
    name: &'static str,
    text: String,
    image: Arch,
    rule: Rule,
    code: impl Into<Option<u16>>,
    marker: &str,
) -> Case {
    Case {
        image: Some(image),
        ..case(name, text, rule, code, marker)
    }
}

/// One row of a table of bad INFs: name, text, rule, InfVerif code, marker.
pub type More = (&'static str, String, Rule, u16, &'static str);

pub fn more_case((name, text, rule, code, marker): More) -> Case {
    case(name, text, rule, code, marker)
}

/// Every case of `rule` must produce it, with its code, on its line, and
/// the message and display must carry the line and the tag.
pub fn check_rule(cases: &[Case], rule: Rule) {
    let mut n = 0;
    for c in cases.iter().filter(|c| c.rule == rule) {
        n += 1;
        let diags = match c.image {
            Some(image) => lint_for_arch(c.text.as_bytes(), "t.inf", image),
            None => lint_bytes(c.text.as_bytes(), "t.inf"),
        };
        let hit = diags
            .iter()
            .find(|d| d.rule == rule && d.line == c.line && d.infverif == c.code);
        let Some(d) = hit else {
            panic!(
                "case {:?}: expected {} (InfVerif {:?}) at line {}, got:\n{}\n--- text ---\n{}",
                c.name,
                rule.id(),
                c.code,
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
        let tag = match c.code {
            Some(code) => format!("[{}, InfVerif {code}]", rule.id()),
            None => format!("[{}]", rule.id()),
        };
        assert!(d.to_string().ends_with(&tag), "{d}");
        if let Some(code) = c.code {
            assert!(
                rule.infverif_codes().contains(&code),
                "case {:?}: {} does not list InfVerif {code}",
                c.name,
                rule.id()
            );
        }
    }
    assert!(n > 0, "no case for {}", rule.id());
}

/// The rules `part` owns (see [`PARTS`]).
pub fn part_rules(part: &str) -> &'static [Rule] {
    PARTS
        .iter()
        .find(|(p, _)| *p == part)
        .map(|(_, rules)| *rules)
        .unwrap_or_else(|| panic!("no part {part:?}"))
}

/// The part's cases are all about its own rules, and every rule and every
/// InfVerif code the part owns has at least one bad INF here.
pub fn check_part(part: &str, cases: &[Case]) {
    let rules = part_rules(part);
    for c in cases {
        assert!(
            rules.contains(&c.rule),
            "case {:?} is about {}, which part {part} does not own",
            c.name,
            c.rule.id()
        );
    }
    for rule in rules {
        assert!(
            cases.iter().any(|c| c.rule == *rule),
            "rule {} has no bad INF in part {part}",
            rule.id()
        );
        for code in rule.infverif_codes() {
            assert!(
                cases
                    .iter()
                    .any(|c| c.rule == *rule && c.code == Some(*code)),
                "{} reports InfVerif {code}, but no bad INF in part {part} produces it",
                rule.id()
            );
        }
    }
}

/// Valid INF variants (seen in Microsoft's driver samples) that must not
/// produce the given finding: (name, text, rule, code).
pub fn assert_not_flagged(variants: Vec<(&str, String, Rule, Option<u16>)>) {
    for (name, text, rule, code) in variants {
        let d = lint(&text, "t.inf");
        assert!(
            !d.iter().any(|d| d.rule == rule && d.infverif == code),
            "{name}: {d:#?}"
        );
    }
}
