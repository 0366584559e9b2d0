//! The rules, their stable ids and the InfVerif codes each can report,
//! and how a finding picks its code.

use std::fmt;

use super::services::BAD_PATH_CHARS;
use super::{parse_number, Section};

/// The lint rules. [`Rule::id`] gives the stable id used in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// The INF does not parse.
    ParseError,
    /// There is no `[Version]` section.
    VersionMissing,
    /// `[Version]` lacks one of Signature, Class, ClassGuid, Provider,
    /// DriverVer, CatalogFile, PnpLockdown.
    VersionKey,
    /// A `[Version]` value is wrong: Signature not `$WINDOWS NT$`, malformed
    /// ClassGuid, WFPCALLOUTS with another GUID, Provider empty or Microsoft,
    /// PnpLockdown not 1, CatalogFile not a plain `.cat` name.
    VersionValue,
    /// DriverVer is not `MM/DD/YYYY,a.b.c.d` with a real date and fields <= 65535.
    DriverVerFormat,
    /// Both `[Manufacturer]` and a `[DefaultInstall...]` section exist.
    ManufacturerAndDefaultInstall,
    /// A primitive driver's DefaultInstall section lacks the `.NT<arch>` decoration.
    UndecoratedDefaultInstall,
    /// Neither `[Manufacturer]` nor a DefaultInstall section: nothing installs.
    NoInstallSection,
    /// A referenced section (CopyFiles, AddReg, AddService, models,
    /// DestinationDirs, ...) does not exist.
    MissingSection,
    /// A `%token%` has no `[Strings]` entry.
    MissingString,
    /// A copied file is not listed in `[SourceDisksFiles]`.
    CopyFilesSource,
    /// A `[SourceDisksFiles]` entry names a disk missing from `[SourceDisksNames]`.
    SourceDisk,
    /// A DestinationDirs entry is not DIRID 13, or copied files have no destination.
    DestinationDirid,
    /// An AddReg entry writes under a root other than HKR.
    AddRegRoot,
    /// A service-install section lacks ServiceType/StartType/ErrorControl/
    /// ServiceBinary, has a non-numeric one, or its binary is not under `%13%\`.
    ServiceInstall,
    /// A banned section: ClassInstall32, CoInstallers, LogConfigOverride, DefaultUninstall.
    BannedSection,
    /// A banned directive: DelFiles, DelReg, DelService, RenFiles, RegisterDlls, ...
    BannedDirective,
    /// A stampinf variable such as `$ARCH$` was left unreplaced.
    StampVariable,
    /// The catalog does not list the INF or a copied file.
    CatalogCoverage,
    /// The INF bytes are not ASCII/ANSI or UTF-16LE (only from [`lint_bytes`](super::lint_bytes)).
    Encoding,
    /// A section header occurs more than once.
    DuplicateSection,
    /// A single-valued directive (`[Version]` keys, service-install keys) is given twice.
    DuplicateDirective,
    /// The same string key, source file, destination file or DestinationDirs
    /// entry is listed twice in one section.
    DuplicateEntry,
    /// A single-valued directive has extra comma-separated fields.
    ExtraValue,
    /// A file copied to the driver store (DIRID 13) is renamed, moved to
    /// another subdirectory, given a security descriptor, or two sources
    /// target the same destination file.
    DriverStoreCopy,
    /// One section is referenced by two different kinds of directive.
    SectionReuse,
    /// A directive references a section of the wrong kind (`[Version]`,
    /// `[Strings]`, an install section...).
    SectionKind,
    /// A directive stands in a section that does not take it (AddService in
    /// an install section, CopyFiles in a .Services section...), or its name
    /// contains `\` or `,`.
    SectionDirective,
    /// A malformed or disallowed add-registry entry: non-numeric flags or
    /// DWORD data, bad binary data, append flags, co-installer or filter
    /// registration, a path into the Windows directory; a BitReg mask that is
    /// not a byte.
    AddRegEntry,
    /// Two sections set the same registry value to different data.
    RegistryConflict,
    /// A localized `[Strings.LCID]` section has a different number of strings than `[Strings]`.
    LocalizedStrings,
    /// A section nothing references.
    UnusedSection,
    /// A Needs directive whose target has the wrong suffix for its section,
    /// or that names a section of another INF without an Include.
    Needs,
    /// Platform extensions that disagree: a section of an install
    /// (`.Services`, `.HW`...) decorated for an architecture its install
    /// section is not, `[SourceDisksFiles.<arch>]` / `[SourceDisksNames.<arch>]`
    /// for an architecture the INF does not install on, or a copied file
    /// listed only for another architecture.
    ArchDecoration,
    /// A platform extension for another architecture than the package's
    /// kernel image (only from [`lint_for_arch`](super::lint_for_arch)).
    ImageArch,
}

impl Rule {
    /// Every rule, in declaration order.
    pub const ALL: [Rule; 35] = [
        Rule::ParseError,
        Rule::VersionMissing,
        Rule::VersionKey,
        Rule::VersionValue,
        Rule::DriverVerFormat,
        Rule::ManufacturerAndDefaultInstall,
        Rule::UndecoratedDefaultInstall,
        Rule::NoInstallSection,
        Rule::MissingSection,
        Rule::MissingString,
        Rule::CopyFilesSource,
        Rule::SourceDisk,
        Rule::DestinationDirid,
        Rule::AddRegRoot,
        Rule::ServiceInstall,
        Rule::BannedSection,
        Rule::BannedDirective,
        Rule::StampVariable,
        Rule::CatalogCoverage,
        Rule::Encoding,
        Rule::DuplicateSection,
        Rule::DuplicateDirective,
        Rule::DuplicateEntry,
        Rule::ExtraValue,
        Rule::DriverStoreCopy,
        Rule::SectionReuse,
        Rule::SectionKind,
        Rule::SectionDirective,
        Rule::AddRegEntry,
        Rule::RegistryConflict,
        Rule::LocalizedStrings,
        Rule::UnusedSection,
        Rule::Needs,
        Rule::ArchDecoration,
        Rule::ImageArch,
    ];

    /// The stable rule id, e.g. `addreg-root`.
    pub fn id(self) -> &'static str {
        match self {
            Rule::ParseError => "parse-error",
            Rule::VersionMissing => "version-missing",
            Rule::VersionKey => "version-key",
            Rule::VersionValue => "version-value",
            Rule::DriverVerFormat => "driverver-format",
            Rule::ManufacturerAndDefaultInstall => "manufacturer-and-defaultinstall",
            Rule::UndecoratedDefaultInstall => "undecorated-defaultinstall",
            Rule::NoInstallSection => "no-install-section",
            Rule::MissingSection => "missing-section",
            Rule::MissingString => "missing-string",
            Rule::CopyFilesSource => "copyfiles-source",
            Rule::SourceDisk => "source-disk",
            Rule::DestinationDirid => "destination-dirid",
            Rule::AddRegRoot => "addreg-root",
            Rule::ServiceInstall => "service-install",
            Rule::BannedSection => "banned-section",
            Rule::BannedDirective => "banned-directive",
            Rule::StampVariable => "stamp-variable",
            Rule::CatalogCoverage => "catalog-coverage",
            Rule::Encoding => "encoding",
            Rule::DuplicateSection => "duplicate-section",
            Rule::DuplicateDirective => "duplicate-directive",
            Rule::DuplicateEntry => "duplicate-entry",
            Rule::ExtraValue => "extra-value",
            Rule::DriverStoreCopy => "driver-store-copy",
            Rule::SectionReuse => "section-reuse",
            Rule::SectionKind => "section-kind",
            Rule::SectionDirective => "section-directive",
            Rule::AddRegEntry => "addreg-entry",
            Rule::RegistryConflict => "registry-conflict",
            Rule::LocalizedStrings => "localized-strings",
            Rule::UnusedSection => "unused-section",
            Rule::Needs => "needs-include",
            Rule::ArchDecoration => "arch-decoration",
            Rule::ImageArch => "image-arch",
        }
    }

    /// The InfVerif codes this rule reports (each finding carries one of
    /// them, or none for a project rule InfVerif does not have). Codes are
    /// those of Microsoft's "INF Validation Errors and Warnings" page.
    pub fn infverif_codes(self) -> &'static [u16] {
        match self {
            Rule::ParseError => &[1002],
            Rule::VersionMissing => &[1001],
            Rule::VersionKey => &[1001, 1233, 1234, 1324],
            Rule::VersionValue => &[1001, 1010, 1204, 1214, 1234, 1280, 1281, 1324],
            Rule::DriverVerFormat => &[1217, 1218],
            Rule::ManufacturerAndDefaultInstall => &[1212],
            Rule::UndecoratedDefaultInstall => &[1421],
            Rule::NoInstallSection => &[1423],
            Rule::MissingSection => &[1005, 1011, 1203, 1271],
            Rule::MissingString => &[1235],
            Rule::CopyFilesSource => &[1229, 1230],
            Rule::SourceDisk => &[1008, 1213, 1231, 1273],
            Rule::DestinationDirid => &[1006, 1243, 1275, 1322],
            Rule::AddRegRoot => &[1224, 1304],
            Rule::ServiceInstall => &[
                1005, 1013, 1014, 1081, 1211, 1250, 1251, 1252, 1253, 1254, 1258, 1323, 1333, 2084,
                2085,
            ],
            Rule::BannedSection => &[1285, 1300, 1422],
            Rule::BannedDirective => &[1300, 1301, 1302],
            Rule::StampVariable => &[1274],
            Rule::CatalogCoverage => &[],
            Rule::Encoding => &[1003],
            Rule::DuplicateSection => &[1209],
            Rule::DuplicateDirective => &[1088],
            Rule::DuplicateEntry => &[1294],
            Rule::ExtraValue => &[1201],
            Rule::DriverStoreCopy => &[1100, 1101, 1330],
            Rule::SectionReuse => &[1205],
            Rule::SectionKind => &[1206],
            Rule::SectionDirective => &[1150, 1290],
            Rule::AddRegEntry => &[1257, 1262, 1265, 1267, 1268, 1303, 1305, 1329],
            Rule::RegistryConflict => &[1331, 1332],
            Rule::LocalizedStrings => &[1295],
            Rule::UnusedSection => &[2083],
            Rule::Needs => &[1312, 1313, 1319],
            Rule::ArchDecoration => &[1230, 2083],
            Rule::ImageArch => &[],
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

pub(super) fn version_key_code(key: &str) -> u16 {
    match key {
        "Signature" => 1001,
        "CatalogFile" => 1233,
        "PnpLockdown" => 1324,
        _ => 1234,
    }
}

pub(super) fn driver_ver_code(why: &str) -> u16 {
    if why.starts_with("version") {
        1217
    } else {
        1218
    }
}

pub(super) fn banned_section_code(kind: &str, s: &Section, ms_class: bool) -> Option<u16> {
    match kind {
        // Weir's rule bans it for any class; InfVerif only for Microsoft's.
        "ClassInstall32" => ms_class.then_some(1285),
        "DefaultUninstall" => {
            // InfVerif accepts one with LegacyUninstall=1; Weir's rule bans it outright.
            let legacy = s
                .get("LegacyUninstall")
                .is_some_and(|e| e.value_or_empty(0) == "1");
            (!legacy).then_some(1422)
        }
        _ => Some(1300),
    }
}

pub(super) fn banned_directive_code(d: &str) -> u16 {
    match d {
        "LogConfig" => 1300,
        "DelFiles" | "DelReg" | "DelService" | "RenFiles" | "UnregisterDlls" => 1302,
        _ => 1301,
    }
}

pub(super) fn service_binary_code(v: &str) -> u16 {
    let file = v.rsplit('\\').next().unwrap_or(v);
    if file.trim().is_empty() || file.contains(BAD_PATH_CHARS) {
        return 1254;
    }
    let dirid = v
        .strip_prefix('%')
        .and_then(|r| r.split_once('%'))
        .filter(|(d, rest)| {
            !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && rest.starts_with('\\')
        })
        .map(|(d, _)| d);
    match dirid {
        None => 2085,
        Some(_) => 1258,
    }
}

pub(super) fn destination_dirid_code(dirid: &str) -> u16 {
    if parse_number(dirid).is_none() {
        1243
    } else {
        1322
    }
}

pub(super) fn addreg_root_code(root: &str) -> u16 {
    if ["HKR", "HKCR", "HKCU", "HKLM", "HKU"]
        .iter()
        .any(|r| r.eq_ignore_ascii_case(root))
    {
        1304
    } else {
        1224
    }
}
