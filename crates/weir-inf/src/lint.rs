//! InfVerif-style checks for a primitive (non-PnP) driver INF, runnable on
//! any host. These approximate the WDK's InfVerif rules that matter for our
//! package; they are not a replacement for running InfVerif on Windows.
//!
//! Each finding names the InfVerif code of the documented check it
//! corresponds to ([`Diagnostic::infverif`]), from Microsoft's "INF Validation
//! Errors and Warnings" page (learn.microsoft.com, devtest). docs/inf-lint.md
//! lists every code on that page and whether this lint covers it.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::parse::{parse, Entry, Inf, Section};
use crate::stamp::days_in_month;

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
    /// The INF bytes are not ASCII/ANSI or UTF-16LE (only from [`lint_bytes`]).
    Encoding,
    /// A section header occurs more than once.
    DuplicateSection,
    /// A single-valued directive ([Version] keys, service-install keys) is given twice.
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
    /// A directive references a section of the wrong kind ([Version],
    /// [Strings], an install section...).
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
    /// A localized [Strings.LCID] section has a different number of strings than [Strings].
    LocalizedStrings,
    /// A section nothing references.
    UnusedSection,
    /// A Needs directive whose target has the wrong suffix for its section,
    /// or that names a section of another INF without an Include.
    Needs,
}

impl Rule {
    /// Every rule, in declaration order.
    pub const ALL: [Rule; 33] = [
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
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Which rule fired.
    pub rule: Rule,
    /// 1-based line the finding is about.
    pub line: usize,
    /// `file:line: text`, e.g. `weir.inf:12: AddReg root HKLM not allowed (only HKR)`.
    pub message: String,
    /// The InfVerif code of the documented check this finding corresponds
    /// to (one of [`Rule::infverif_codes`]); None for project rules InfVerif
    /// does not have (catalog coverage, stampinf variables other than `$ARCH$`).
    pub infverif: Option<u16>,
}

impl fmt::Display for Diagnostic {
    /// `weir.inf:12: AddReg root HKLM not allowed (only HKR) [addreg-root, InfVerif 1304]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.infverif {
            Some(code) => write!(f, "{} [{}, InfVerif {code}]", self.message, self.rule),
            None => write!(f, "{} [{}]", self.message, self.rule),
        }
    }
}

/// The platform decorations accepted after `.NT`.
const NT_ARCHES: [&str; 5] = ["amd64", "x86", "arm64", "arm", "ia64"];

/// The WFP callout class GUID.
pub const WFPCALLOUTS_GUID: &str = "{57465043-616C-6C6F-7574-5F636C617373}";

const REQUIRED_VERSION_KEYS: [&str; 7] = [
    "Signature",
    "Class",
    "ClassGuid",
    "Provider",
    "DriverVer",
    "CatalogFile",
    "PnpLockdown",
];

const BANNED_DIRECTIVES: [&str; 11] = [
    "DelFiles",
    "DelReg",
    "DelService",
    "RenFiles",
    "RegisterDlls",
    "UnregisterDlls",
    "UpdateInis",
    "UpdateIniFields",
    "Ini2Reg",
    "ProfileItems",
    "LogConfig",
];

const STAMP_VARIABLES: [&str; 5] = [
    "$ARCH$",
    "$KMDFVERSION$",
    "$UMDFVERSION$",
    "$KMDFCOINSTALLERVERSION$",
    "$UMDFCOINSTALLERVERSION$",
];

const SERVICE_KEYS: [&str; 4] = ["ServiceType", "StartType", "ErrorControl", "ServiceBinary"];

/// Service-install directives that take one value.
const SINGLE_VALUED_SERVICE_KEYS: [&str; 10] = [
    "ServiceType",
    "StartType",
    "ErrorControl",
    "ServiceBinary",
    "DisplayName",
    "Description",
    "LoadOrderGroup",
    "StartName",
    "ServiceSidType",
    "DelayedAutoStart",
];

/// SERVICE_KERNEL_DRIVER, SERVICE_FILE_SYSTEM_DRIVER, adapter, recognizer,
/// Win32 own/share process, and the interactive variants of the last two.
const SERVICE_TYPES: [u64; 8] = [0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x110, 0x120];

/// AddService flag: the service is the device's function driver (PnP).
const SPSVCINST_ASSOCSERVICE: u64 = 0x2;

/// AddReg flags (setupapi.h): value type mask, binary, DWORD, multi-sz, append.
const FLG_ADDREG_TYPE_MASK: u64 = 0xFFFF_0001;
const FLG_ADDREG_BINVALUETYPE: u64 = 0x0000_0001;
const FLG_ADDREG_TYPE_DWORD: u64 = 0x0001_0001;
const FLG_ADDREG_TYPE_MULTI_SZ: u64 = 0x0001_0000;
const FLG_ADDREG_APPEND: u64 = 0x0000_0008;

/// DIRIDs and the variable for the Windows directory, its System32 and drivers.
const WINDOWS_DIR_TOKENS: [&str; 4] = ["%10%", "%11%", "%12%", "%systemroot%"];

/// Sections with a fixed role: never the target of CopyFiles/AddReg/AddService.
const RESERVED_SECTIONS: [&str; 10] = [
    "Version",
    "Strings",
    "SourceDisksNames",
    "SourceDisksFiles",
    "DestinationDirs",
    "Manufacturer",
    "DefaultInstall",
    "DefaultUninstall",
    "ClassInstall32",
    "ControlFlags",
];

/// Sections Windows reads by name, so nothing references them.
const UNREFERENCED_OK: [&str; 2] = ["SignatureAttributes", "PackageInfo"];

/// The directives a DDInstall.Services / DefaultInstall.Services section takes.
const SERVICES_SECTION_KEYS: [&str; 4] = ["AddService", "DelService", "Include", "Needs"];

/// Install-section directives that have no meaning in a service-install section.
const NOT_IN_SERVICE_INSTALL: [&str; 4] = ["CopyFiles", "AddService", "CopyINF", "AddProperty"];

/// A file the INF copies: its source name and the line that copies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedFile {
    /// Source file name (as listed in SourceDisksFiles).
    pub name: String,
    /// 1-based line of the file-list entry (or the `CopyFiles=@file` line).
    pub line: usize,
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Whether `name` is `base` or `base.<anything>` (ASCII case-insensitive).
fn is_family(name: &str, base: &str) -> bool {
    let l = lower(name);
    let b = lower(base);
    l == b || l.strip_prefix(&b).is_some_and(|rest| rest.starts_with('.'))
}

/// Whether a DefaultInstall-family section name carries `.NT<arch>`.
fn has_arch_decoration(name: &str, base: &str) -> bool {
    let l = lower(name);
    let Some(rest) = l.strip_prefix(&lower(base)) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(".nt") else {
        return false;
    };
    let arch = rest.split('.').next().unwrap_or("");
    NT_ARCHES.contains(&arch)
}

struct Linter<'a> {
    inf: &'a Inf,
    file: &'a str,
    diags: Vec<Diagnostic>,
    strings: HashMap<String, String>,
    install: Vec<&'a Section>,
    services: Vec<&'a Section>,
    service_install: Vec<&'a Section>,
    event_log: Vec<&'a Section>,
    file_lists: Vec<(&'a Section, usize)>,
    single_files: Vec<CopiedFile>,
    registry: Vec<&'a Section>,
    seen: HashSet<(u8, String)>,
    /// Sections something references (lower-case), roots included.
    used: HashSet<String>,
    /// Section (lower-case) -> the first kind of directive that referenced it.
    uses: HashMap<String, &'static str>,
    /// Add-registry sections reached from a service-install section (lower-case).
    service_registry: HashSet<String>,
    /// Add-registry section (lower-case) -> the section whose AddReg first
    /// referenced it: HKR means a different key in each install context.
    registry_owner: HashMap<String, String>,
    /// (.Services section, service name), lower-case -> (service-install
    /// section, line) of the service's first AddService there.
    service_sections: HashMap<String, (String, usize)>,
}

impl<'a> Linter<'a> {
    fn new(inf: &'a Inf, file: &'a str) -> Self {
        let mut strings = HashMap::new();
        for s in inf
            .sections
            .iter()
            .filter(|s| is_family(&s.name, "Strings"))
        {
            for e in &s.entries {
                if let Some(k) = e.key() {
                    strings
                        .entry(lower(k))
                        .or_insert_with(|| e.value_or_empty(0).to_owned());
                }
            }
        }
        Self {
            inf,
            file,
            diags: Vec::new(),
            strings,
            install: Vec::new(),
            services: Vec::new(),
            service_install: Vec::new(),
            event_log: Vec::new(),
            file_lists: Vec::new(),
            single_files: Vec::new(),
            registry: Vec::new(),
            seen: HashSet::new(),
            used: HashSet::new(),
            uses: HashMap::new(),
            service_registry: HashSet::new(),
            registry_owner: HashMap::new(),
            service_sections: HashMap::new(),
        }
    }

    fn report(
        &mut self,
        rule: Rule,
        infverif: impl Into<Option<u16>>,
        line: usize,
        text: impl fmt::Display,
    ) {
        self.diags.push(Diagnostic {
            rule,
            line,
            message: format!("{}:{}: {}", self.file, line, text),
            infverif: infverif.into(),
        });
    }

    /// Substitutes `%token%`s from [Strings]; `%%` becomes `%`; unknown
    /// tokens and DIRIDs are left as they are.
    fn resolve(&self, s: &str) -> String {
        let parts: Vec<&str> = s.split('%').collect();
        let n = parts.len();
        let mut out = String::new();
        for (i, p) in parts.iter().enumerate() {
            let odd = i % 2 == 1;
            let closed = i.saturating_add(1) < n;
            if !odd {
                out.push_str(p);
            } else if !closed {
                out.push('%');
                out.push_str(p);
            } else if p.is_empty() {
                out.push('%');
            } else if let Some(v) = self.strings.get(&lower(p)) {
                out.push_str(v);
            } else {
                out.push('%');
                out.push_str(p);
                out.push('%');
            }
        }
        out
    }

    /// All sections called `name`; reports `missing-section` at `line` when none.
    fn referenced(&mut self, name: &str, what: &'static str, line: usize) -> Vec<&'a Section> {
        let inf = self.inf;
        let found: Vec<&'a Section> = inf.sections.iter().filter(|s| s.is(name)).collect();
        // DestinationDirs only says where a file list goes: it does not make
        // the list used.
        if what != "[DestinationDirs]" {
            self.used.insert(lower(name));
        }
        if matches!(
            what,
            "CopyFiles" | "AddReg" | "BitReg" | "AddService" | "AddService (event log)"
        ) && !found.is_empty()
        {
            self.check_reference_kind(name, what, line);
        }
        if found.is_empty() {
            self.report(
                Rule::MissingSection,
                1203,
                line,
                format!("{what} references section [{name}], which does not exist"),
            );
        }
        found
    }

    /// InfVerif 1206 (a section of another kind) and 1205 (one section,
    /// two kinds of directive).
    fn check_reference_kind(&mut self, name: &str, what: &'static str, line: usize) {
        if let Some(kind) = RESERVED_SECTIONS.iter().find(|k| is_family(name, k)) {
            self.report(
                Rule::SectionKind,
                1206,
                line,
                format!("{what} references [{name}], which is a [{kind}] section, not one {what} can use"),
            );
            return;
        }
        let key = lower(name);
        match self.uses.get(&key) {
            None => {
                self.uses.insert(key, what);
            }
            Some(first) if *first != what => {
                let first = *first;
                self.report(
                    Rule::SectionReuse,
                    1205,
                    line,
                    format!("section [{name}] is referenced by both {first} and {what}"),
                );
            }
            Some(_) => {}
        }
    }

    /// Marks a section (by kind) as seen; returns true the first time.
    fn first_visit(&mut self, kind: u8, name: &str) -> bool {
        self.seen.insert((kind, lower(name)))
    }

    fn check_version(&mut self) {
        let inf = self.inf;
        let Some(version) = inf.section("Version") else {
            self.report(Rule::VersionMissing, 1001, 1, "no [Version] section");
            return;
        };
        let entries: Vec<&Entry> = inf
            .sections_named("Version")
            .flat_map(|s| s.entries.iter())
            .collect();
        let find = |key: &str| {
            entries.iter().copied().find(|e| {
                e.key_is(key)
                    || (key.eq_ignore_ascii_case("CatalogFile")
                        && e.key().is_some_and(|k| is_family(k, "CatalogFile")))
            })
        };
        for key in REQUIRED_VERSION_KEYS {
            if find(key).is_none() {
                self.report(
                    Rule::VersionKey,
                    version_key_code(key),
                    version.line,
                    format!("[Version] has no {key} entry"),
                );
            }
        }
        if let Some(e) = find("Signature") {
            let v = self.resolve(e.value_or_empty(0));
            if !v.eq_ignore_ascii_case("$WINDOWS NT$") {
                self.report(
                    Rule::VersionValue,
                    1001,
                    e.line,
                    format!("Signature is {v:?}, expected \"$WINDOWS NT$\""),
                );
            }
        }
        let guid_entry = find("ClassGuid");
        if let Some(e) = guid_entry {
            let g = e.value_or_empty(0);
            if !is_guid(g) {
                self.report(
                    Rule::VersionValue,
                    1010,
                    e.line,
                    format!(
                        "ClassGuid {g:?} is not a {{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}} GUID"
                    ),
                );
            }
        }
        if let Some(e) = find("Class") {
            let class = self.resolve(e.value_or_empty(0));
            if class.eq_ignore_ascii_case("WFPCALLOUTS") {
                if let Some(g) = guid_entry {
                    let gv = g.value_or_empty(0);
                    if is_guid(gv) && !gv.eq_ignore_ascii_case(WFPCALLOUTS_GUID) {
                        self.report(
                            Rule::VersionValue, 1281,
                            g.line,
                            format!("ClassGuid {gv} does not match Class WFPCALLOUTS ({WFPCALLOUTS_GUID})"),
                        );
                    }
                }
            } else if class.is_empty() {
                self.report(Rule::VersionValue, 1234, e.line, "Class is empty");
            } else if guid_entry
                .is_some_and(|g| g.value_or_empty(0).eq_ignore_ascii_case(WFPCALLOUTS_GUID))
            {
                self.report(
                    Rule::VersionValue,
                    1280,
                    e.line,
                    format!(
                        "Class {class:?} does not match ClassGuid {WFPCALLOUTS_GUID} (WFPCALLOUTS)"
                    ),
                );
            }
        }
        if let Some(e) = find("Provider") {
            let p = self.resolve(e.value_or_empty(0));
            let p = p.trim();
            if p.is_empty() || p.contains('%') {
                self.report(
                    Rule::VersionValue,
                    1234,
                    e.line,
                    format!("Provider {p:?} is empty or unresolved"),
                );
            } else if p.eq_ignore_ascii_case("Microsoft") {
                self.report(
                    Rule::VersionValue,
                    1204,
                    e.line,
                    "Provider must not be \"Microsoft\" for a third-party driver",
                );
            }
        }
        if let Some(e) = find("PnpLockdown") {
            let v = e.value_or_empty(0);
            if v != "1" {
                self.report(
                    Rule::VersionValue,
                    1324,
                    e.line,
                    format!("PnpLockdown is {v:?}, expected 1"),
                );
            }
        }
        if let Some(e) = find("CatalogFile") {
            let v = self.resolve(e.value_or_empty(0));
            let l = lower(&v);
            if l.len() <= 4 || !l.ends_with(".cat") || v.contains(['\\', '/', ':', '%']) {
                self.report(
                    Rule::VersionValue,
                    1214,
                    e.line,
                    format!("CatalogFile {v:?} is not a plain name ending in .cat"),
                );
            }
        }
        if let Some(e) = find("DriverVer") {
            let v = self.resolve(
                &e.values
                    .iter()
                    .map(|v| v.text.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            if let Err(why) = check_driver_ver(&v) {
                self.report(
                    Rule::DriverVerFormat,
                    driver_ver_code(&why),
                    e.line,
                    format!("DriverVer {v:?}: {why}"),
                );
            }
        }
    }

    fn check_shape(&mut self) {
        let inf = self.inf;
        let manufacturer = inf.section("Manufacturer");
        let default_installs: Vec<&Section> = inf
            .sections
            .iter()
            .filter(|s| is_family(&s.name, "DefaultInstall"))
            .collect();
        match manufacturer {
            Some(m) => {
                for d in &default_installs {
                    self.report(
                        Rule::ManufacturerAndDefaultInstall,
                        1212,
                        d.line,
                        format!(
                            "[{}] together with [Manufacturer] (line {}): use one or the other",
                            d.name, m.line
                        ),
                    );
                }
            }
            None => {
                if default_installs.is_empty() {
                    self.report(
                        Rule::NoInstallSection, 1423,
                        inf.section("Version").map_or(1, |s| s.line),
                        "neither [Manufacturer] nor [DefaultInstall.NT<arch>]: nothing would be installed",
                    );
                }
                for d in &default_installs {
                    if !has_arch_decoration(&d.name, "DefaultInstall") {
                        self.report(
                            Rule::UndecoratedDefaultInstall, 1421,
                            d.line,
                            format!(
                                "[{}] must carry an architecture decoration, e.g. [DefaultInstall.NTamd64]",
                                d.name
                            ),
                        );
                    }
                }
            }
        }
    }

    fn check_banned(&mut self) {
        let inf = self.inf;
        // The one Microsoft-defined class this lint knows (InfVerif 1285
        // applies to ClassInstall32 in an INF of a Microsoft class).
        let ms_class = inf.entries("Version", "Class").next().is_some_and(|e| {
            self.resolve(e.value_or_empty(0))
                .eq_ignore_ascii_case("WFPCALLOUTS")
        });
        for s in &inf.sections {
            let l = lower(&s.name);
            let banned = if is_family(&s.name, "ClassInstall32") {
                Some("ClassInstall32")
            } else if l == "coinstallers" || l.ends_with(".coinstallers") {
                Some("CoInstallers")
            } else if l == "logconfigoverride" || l.ends_with(".logconfigoverride") {
                Some("LogConfigOverride")
            } else if is_family(&s.name, "DefaultUninstall") {
                Some("DefaultUninstall")
            } else {
                None
            };
            if let Some(kind) = banned {
                self.report(
                    Rule::BannedSection,
                    banned_section_code(kind, s, ms_class),
                    s.line,
                    format!(
                        "section [{}] is not allowed ({kind} sections are banned)",
                        s.name
                    ),
                );
            }
            if is_family(&s.name, "Strings") || is_family(&s.name, "SourceDisksFiles") {
                continue;
            }
            for e in &s.entries {
                let Some(k) = e.key() else { continue };
                if let Some(d) = BANNED_DIRECTIVES.iter().find(|d| d.eq_ignore_ascii_case(k)) {
                    self.report(
                        Rule::BannedDirective,
                        banned_directive_code(d),
                        e.line,
                        format!("directive {d} in [{}] is not allowed", s.name),
                    );
                }
            }
        }
    }

    fn check_stamp_variables(&mut self) {
        let inf = self.inf;
        for s in &inf.sections {
            let mut spots: Vec<(usize, &str)> = vec![(s.line, s.name.as_str())];
            for e in &s.entries {
                if let Some(k) = &e.key {
                    spots.push((e.line, k.raw.as_str()));
                }
                for v in &e.values {
                    spots.push((e.line, v.raw.as_str()));
                }
            }
            let mut reported: HashSet<(usize, &str)> = HashSet::new();
            for (line, text) in spots {
                let upper = text.to_ascii_uppercase();
                for var in STAMP_VARIABLES {
                    if upper.contains(var) && reported.insert((line, var)) {
                        self.report(
                            Rule::StampVariable,
                            (var == "$ARCH$").then_some(1274),
                            line,
                            format!("{var} was not replaced: stamp the .inx before use"),
                        );
                    }
                }
            }
        }
    }

    fn check_strings(&mut self) {
        let inf = self.inf;
        for s in inf
            .sections
            .iter()
            .filter(|s| !is_family(&s.name, "Strings"))
        {
            for e in &s.entries {
                let mut missing: Vec<String> = Vec::new();
                let fields = e.key.iter().chain(e.values.iter());
                for f in fields {
                    for token in string_tokens(&f.raw) {
                        let is_dirid = token.bytes().all(|b| b.is_ascii_digit());
                        if !is_dirid
                            && !self.strings.contains_key(&lower(token))
                            && !missing.iter().any(|m| m.eq_ignore_ascii_case(token))
                        {
                            missing.push(token.to_owned());
                        }
                    }
                }
                for token in missing {
                    self.report(
                        Rule::MissingString,
                        1235,
                        e.line,
                        format!("%{token}% has no entry in [Strings]"),
                    );
                }
            }
        }
    }

    /// Walks from the install sections to everything they reference.
    fn walk(&mut self) {
        let inf = self.inf;
        // Roots: DefaultInstall family.
        for s in &inf.sections {
            if is_family(&s.name, "DefaultInstall") {
                self.used.insert(lower(&s.name));
                if lower(&s.name).ends_with(".services") {
                    self.services.push(s);
                } else {
                    self.install.push(s);
                }
            }
        }
        // Roots: Manufacturer -> models -> DDInstall family.
        let manufacturer_entries: Vec<&'a Entry> = inf
            .sections_named("Manufacturer")
            .flat_map(|s| s.entries.iter())
            .collect();
        for m in manufacturer_entries {
            let base = m.value_or_empty(0);
            if base.is_empty() {
                self.report(
                    Rule::MissingSection,
                    1011,
                    m.line,
                    "[Manufacturer] entry names no models section",
                );
                continue;
            }
            let decorations: Vec<&str> = m
                .values
                .iter()
                .skip(1)
                .map(|v| v.text.as_str())
                .filter(|d| !d.is_empty())
                .collect();
            let names: Vec<String> = if decorations.is_empty() {
                vec![base.to_owned()]
            } else {
                decorations.iter().map(|d| format!("{base}.{d}")).collect()
            };
            for name in names {
                for models in self.referenced(&name, "[Manufacturer]", m.line) {
                    for model in &models.entries {
                        let ddinstall = model.value_or_empty(0);
                        if ddinstall.is_empty() {
                            self.report(
                                Rule::MissingSection,
                                1271,
                                model.line,
                                format!("model in [{}] names no install section", models.name),
                            );
                            continue;
                        }
                        let nt = format!("{ddinstall}.nt");
                        let family: Vec<&'a Section> = inf
                            .sections
                            .iter()
                            .filter(|s| s.is(ddinstall) || lower(&s.name).starts_with(&lower(&nt)))
                            .collect();
                        if family.is_empty() {
                            self.report(
                                Rule::MissingSection, 1203,
                                model.line,
                                format!("model references install section [{ddinstall}], which does not exist (nor any [{ddinstall}.NT...])"),
                            );
                        }
                        for s in family {
                            self.used.insert(lower(&s.name));
                            if !self.first_visit(0, &s.name) {
                                continue;
                            }
                            if lower(&s.name).ends_with(".services") {
                                self.services.push(s);
                            } else {
                                self.install.push(s);
                            }
                        }
                    }
                }
            }
        }
        let install = self.install.clone();
        for s in install {
            self.walk_install_like(s, false);
        }
        let services = self.services.clone();
        for s in services {
            self.check_add_service_flags(s);
            for e in s.entries.iter().filter(|e| e.key_is("AddService")) {
                let svc = e.value_or_empty(0).to_owned();
                let section = e.value_or_empty(2);
                // "AddService = ,0x2": the documented null driver (a device
                // that needs no function driver), not a service.
                let null_driver = svc.is_empty()
                    && section.is_empty()
                    && parse_number(&self.resolve(e.value_or_empty(1)))
                        .is_some_and(|f| f & SPSVCINST_ASSOCSERVICE != 0);
                if null_driver {
                    continue;
                }
                if svc.is_empty() {
                    self.report(
                        Rule::ServiceInstall,
                        1253,
                        e.line,
                        "AddService without a service name",
                    );
                }
                let log_type = e.value_or_empty(4);
                if !log_type.is_empty()
                    && !["System", "Application", "Security"]
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(log_type))
                {
                    self.report(
                        Rule::ServiceInstall,
                        1250,
                        e.line,
                        format!("EventLogType {log_type:?} is not System, Application or Security"),
                    );
                }
                if !svc.is_empty() && !section.is_empty() {
                    // Per .Services section: .Services sections for other
                    // architectures or OS versions install on other systems.
                    let resolved = format!("{}\n{}", lower(&s.name), lower(&self.resolve(&svc)));
                    match self.service_sections.get(&resolved) {
                        Some((first, first_line))
                            if !first.eq_ignore_ascii_case(section)
                                && self.service_config(first) != self.service_config(section) =>
                        {
                            let text = format!(
                                "service {svc} is installed by [{section}] here and by [{first}] on line {first_line}"
                            );
                            self.report(Rule::ServiceInstall, 1333, e.line, text);
                        }
                        Some(_) => {}
                        None => {
                            self.service_sections
                                .insert(resolved, (section.to_owned(), e.line));
                        }
                    }
                }
                if section.is_empty() {
                    self.report(
                        Rule::ServiceInstall,
                        1005,
                        e.line,
                        format!("AddService {svc} names no service-install section"),
                    );
                } else {
                    for t in self.referenced(section, "AddService", e.line) {
                        if self.first_visit(1, &t.name) {
                            self.service_install.push(t);
                        }
                    }
                }
                let log = e.value_or_empty(3);
                if !log.is_empty() {
                    for t in self.referenced(log, "AddService (event log)", e.line) {
                        if self.first_visit(2, &t.name) {
                            self.event_log.push(t);
                        }
                    }
                }
            }
        }
        let service_install = self.service_install.clone();
        for s in service_install {
            self.check_service_install(s);
            self.walk_install_like(s, true);
        }
        let event_log = self.event_log.clone();
        for s in event_log {
            self.walk_install_like(s, false);
        }
    }

    /// The single-valued settings of a service-install section, resolved and
    /// lower-cased, sorted: two sections configure a service the same way
    /// when these are equal.
    fn service_config(&self, section: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .inf
            .sections
            .iter()
            .filter(|s| s.is(section))
            .flat_map(|s| s.entries.iter())
            .filter_map(|e| {
                let k = e.key()?;
                SINGLE_VALUED_SERVICE_KEYS
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(k))
                    .then(|| (lower(k), lower(&self.resolve(e.value_or_empty(0)))))
            })
            .collect();
        out.sort();
        out
    }

    /// AddService flags (InfVerif 1081, 1211, 1251) in one .Services section.
    fn check_add_service_flags(&mut self, s: &'a Section) {
        let mut associated: Vec<(usize, String)> = Vec::new();
        for e in s.entries.iter().filter(|e| e.key_is("AddService")) {
            let raw = self.resolve(e.value_or_empty(1));
            if raw.trim().is_empty() {
                continue;
            }
            let Some(flags) = parse_number(&raw) else {
                self.report(
                    Rule::ServiceInstall,
                    1081,
                    e.line,
                    format!("AddService flags {raw:?} are not a number"),
                );
                continue;
            };
            if flags & SPSVCINST_ASSOCSERVICE == 0 {
                continue;
            }
            associated.push((e.line, e.value_or_empty(0).to_owned()));
            let section = e.value_or_empty(2);
            let disabled = self
                .inf
                .sections
                .iter()
                .filter(|t| !section.is_empty() && t.is(section))
                .filter_map(|t| t.get("StartType"))
                .any(|st| parse_number(&self.resolve(st.value_or_empty(0))) == Some(4));
            if disabled {
                self.report(
                    Rule::ServiceInstall,
                    1251,
                    e.line,
                    "a disabled service (StartType = 4) cannot be the associated service (flag 0x2)",
                );
            }
        }
        if let [(_, first), rest @ ..] = associated.as_slice() {
            for (line, svc) in rest {
                self.report(
                    Rule::ServiceInstall,
                    1211,
                    *line,
                    format!("{svc} and {first} both carry SPSVCINST_ASSOCSERVICE (0x2); only one service may"),
                );
            }
        }
    }

    fn walk_install_like(&mut self, s: &'a Section, from_service: bool) {
        for e in &s.entries {
            let Some(k) = e.key() else { continue };
            let k = lower(k);
            match k.as_str() {
                "copyfiles" | "addreg" | "bitreg"
                    if e.values.iter().all(|v| v.text.trim().is_empty()) =>
                {
                    self.report(
                        Rule::MissingSection,
                        1005,
                        e.line,
                        format!("{} names no section", e.key().unwrap_or_default()),
                    );
                }
                "copyfiles" => {
                    for v in &e.values {
                        let name = v.text.trim();
                        if name.is_empty() {
                            continue;
                        }
                        if let Some(file) = name.strip_prefix('@') {
                            self.single_files.push(CopiedFile {
                                name: file.trim().to_owned(),
                                line: e.line,
                            });
                        } else {
                            for t in self.referenced(name, "CopyFiles", e.line) {
                                if self.first_visit(3, &t.name) {
                                    self.file_lists.push((t, e.line));
                                }
                            }
                        }
                    }
                }
                "addreg" | "bitreg" => {
                    for v in &e.values {
                        let name = v.text.trim();
                        if name.is_empty() {
                            continue;
                        }
                        let what = if k == "addreg" { "AddReg" } else { "BitReg" };
                        for t in self.referenced(name, what, e.line) {
                            self.registry_owner
                                .entry(lower(&t.name))
                                .or_insert_with(|| lower(&s.name));
                            if from_service {
                                self.service_registry.insert(lower(&t.name));
                            }
                            if self.first_visit(4, &t.name) {
                                self.registry.push(t);
                            }
                        }
                    }
                }
                "addproperty" | "delproperty" => {
                    for v in &e.values {
                        let name = v.text.trim();
                        if !name.is_empty() {
                            self.referenced(name, "AddProperty/DelProperty", e.line);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn check_service_install(&mut self, s: &'a Section) {
        for key in SERVICE_KEYS {
            match s.get(key) {
                None => self.report(
                    Rule::ServiceInstall,
                    1013,
                    s.line,
                    format!("service-install section [{}] has no {key}", s.name),
                ),
                Some(e) if key == "ServiceBinary" => {
                    let v = e.value_or_empty(0);
                    let ok = lower(v)
                        .strip_prefix("%13%\\")
                        .is_some_and(|rest| !rest.is_empty() && !rest.contains(BAD_PATH_CHARS));
                    if !ok {
                        self.report(
                            Rule::ServiceInstall, service_binary_code(v),
                            e.line,
                            format!("ServiceBinary {v:?} must be under the driver store (%13%\\name.sys)"),
                        );
                    }
                }
                Some(e) => {
                    let v = self.resolve(e.value_or_empty(0));
                    if parse_number(&v).is_none() {
                        self.report(
                            Rule::ServiceInstall,
                            1014,
                            e.line,
                            format!("{key} {v:?} is not a number"),
                        );
                    }
                }
            }
        }
    }

    fn copied_files(&self) -> Vec<CopiedFile> {
        let mut out = Vec::new();
        for (s, _) in &self.file_lists {
            for e in &s.entries {
                let dest = e.key().unwrap_or_else(|| e.value_or_empty(0));
                let source = if e.key.is_some() {
                    e.value_or_empty(0)
                } else {
                    e.value_or_empty(1)
                };
                let name = if source.trim().is_empty() {
                    dest
                } else {
                    source
                };
                out.push(CopiedFile {
                    name: self.resolve(name.trim()),
                    line: e.line,
                });
            }
        }
        out.extend(self.single_files.iter().map(|f| CopiedFile {
            name: self.resolve(&f.name),
            line: f.line,
        }));
        out
    }

    fn check_files(&mut self) {
        let inf = self.inf;
        let source_files: Vec<&'a Entry> = inf
            .sections
            .iter()
            .filter(|s| is_family(&s.name, "SourceDisksFiles"))
            .flat_map(|s| s.entries.iter())
            .collect();
        let disk_ids: HashSet<String> = inf
            .sections
            .iter()
            .filter(|s| is_family(&s.name, "SourceDisksNames"))
            .flat_map(|s| s.entries.iter())
            .filter_map(|e| e.key().map(normalize_id))
            .collect();
        let known: HashSet<String> = source_files
            .iter()
            .filter_map(|e| e.key().map(|k| lower(&self.resolve(k.trim()))))
            .collect();
        for f in self.copied_files() {
            if f.name.is_empty() {
                self.report(
                    Rule::CopyFilesSource,
                    1229,
                    f.line,
                    "file-list entry has no file name",
                );
            } else if !known.contains(&lower(&f.name)) {
                self.report(
                    Rule::CopyFilesSource,
                    1230,
                    f.line,
                    format!("copied file {} is not listed in [SourceDisksFiles]", f.name),
                );
            }
        }
        for e in source_files {
            let Some(file) = e.key() else {
                self.report(
                    Rule::SourceDisk,
                    1008,
                    e.line,
                    "[SourceDisksFiles] entry has no 'file = disk-id'",
                );
                continue;
            };
            let l = lower(file.trim());
            if l.ends_with(".cat") {
                let text = format!("{file}: catalogs are not listed in [SourceDisksFiles] (CatalogFile names the catalog)");
                self.report(Rule::SourceDisk, 1213, e.line, text);
            } else if l.ends_with('_') {
                let text = format!(
                    "{file} is a compressed (name ending in _) file; list the uncompressed file"
                );
                self.report(Rule::SourceDisk, 1231, e.line, text);
            }
            let disk = e.value_or_empty(0);
            if !disk_ids.contains(&normalize_id(disk)) {
                self.report(
                    Rule::SourceDisk,
                    1273,
                    e.line,
                    format!("{file} is on disk {disk:?}, which [SourceDisksNames] does not define"),
                );
            }
        }
    }

    fn check_destinations(&mut self) {
        let inf = self.inf;
        let dest_entries: Vec<&'a Entry> = inf
            .sections_named("DestinationDirs")
            .flat_map(|s| s.entries.iter())
            .collect();
        let mut has_default = false;
        let mut named: HashSet<String> = HashSet::new();
        for e in dest_entries {
            let Some(k) = e.key() else {
                self.report(
                    Rule::DestinationDirid,
                    1006,
                    e.line,
                    "[DestinationDirs] entry has no 'section = dirid'",
                );
                continue;
            };
            if k.eq_ignore_ascii_case("DefaultDestDir") {
                has_default = true;
            } else {
                named.insert(lower(k));
                self.referenced(k, "[DestinationDirs]", e.line);
            }
            let dirid = e.value_or_empty(0);
            if dirid != "13" {
                self.report(
                    Rule::DestinationDirid,
                    destination_dirid_code(dirid),
                    e.line,
                    format!("{k} uses DIRID {dirid:?}; only 13 (driver store) is allowed"),
                );
            }
        }
        if !has_default {
            let file_lists = self.file_lists.clone();
            for (s, line) in file_lists {
                if !named.contains(&lower(&s.name)) {
                    self.report(
                        Rule::DestinationDirid,
                        1275,
                        line,
                        format!(
                            "no [DestinationDirs] entry for [{}] and no DefaultDestDir",
                            s.name
                        ),
                    );
                }
            }
            let singles = self.single_files.clone();
            for f in singles {
                self.report(
                    Rule::DestinationDirid,
                    1275,
                    f.line,
                    format!(
                        "CopyFiles=@{} needs DefaultDestDir in [DestinationDirs]",
                        f.name
                    ),
                );
            }
        }
    }

    /// InfVerif 1209 (a section twice) and 1294 (an entry twice in one
    /// section: strings, source files, DestinationDirs entries, file-list
    /// destinations).
    fn check_duplicates(&mut self) {
        let inf = self.inf;
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for s in &inf.sections {
            match first_line.get(&lower(&s.name)) {
                Some(line) => self.report(
                    Rule::DuplicateSection,
                    1209,
                    s.line,
                    format!("section [{}] is already defined on line {line}", s.name),
                ),
                None => {
                    first_line.insert(lower(&s.name), s.line);
                }
            }
        }
        let keyed = inf.sections.iter().filter(|s| {
            is_family(&s.name, "Strings")
                || is_family(&s.name, "SourceDisksFiles")
                || s.is("DestinationDirs")
        });
        for s in keyed {
            self.report_duplicate_names(
                s,
                s.entries.iter().filter_map(|e| Some((e.key()?, e.line))),
            );
        }
        let lists: Vec<&'a Section> = self.file_lists.iter().map(|(s, _)| *s).collect();
        for s in lists {
            let dests = s
                .entries
                .iter()
                .map(|e| (e.key().unwrap_or_else(|| e.value_or_empty(0)), e.line));
            self.report_duplicate_names(s, dests);
        }
    }

    fn report_duplicate_names<'n>(
        &mut self,
        s: &Section,
        names: impl Iterator<Item = (&'n str, usize)>,
    ) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (name, line) in names {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            if let Some(first) = seen.get(&lower(name)) {
                let text = format!(
                    "{name} is listed twice in [{}] (first on line {first})",
                    s.name
                );
                self.report(Rule::DuplicateEntry, 1294, line, text);
            } else {
                seen.insert(lower(name), line);
            }
        }
    }

    /// InfVerif 1088 (a single-valued directive twice) and 1201 (extra
    /// fields) in [Version], service-install sections and [DestinationDirs].
    fn check_single_valued(&mut self) {
        let inf = self.inf;
        let version: Vec<&'a Section> = inf.sections_named("Version").collect();
        let service_install = self.service_install.clone();
        let groups = version.iter().map(|s| (*s, None)).chain(
            service_install
                .iter()
                .map(|s| (*s, Some(&SINGLE_VALUED_SERVICE_KEYS[..]))),
        );
        for (s, only) in groups {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for e in &s.entries {
                let Some(key) = e.key() else { continue };
                if only.is_some_and(|keys| !keys.iter().any(|k| k.eq_ignore_ascii_case(key))) {
                    continue;
                }
                if let Some(first) = seen.get(&lower(key)) {
                    let text = format!(
                        "{key} is given twice in [{}] (first on line {first})",
                        s.name
                    );
                    self.report(Rule::DuplicateDirective, 1088, e.line, text);
                } else {
                    seen.insert(lower(key), e.line);
                }
                let allowed = if key.eq_ignore_ascii_case("DriverVer") {
                    2
                } else {
                    1
                };
                self.report_extra_fields(e, key, allowed);
            }
        }
        let dest: Vec<&'a Entry> = inf
            .sections_named("DestinationDirs")
            .flat_map(|s| s.entries.iter())
            .collect();
        for e in dest {
            // section = dirid[,subdir]
            let key = e.key().unwrap_or("DestinationDirs entry");
            self.report_extra_fields(e, key, 2);
        }
    }

    fn report_extra_fields(&mut self, e: &Entry, key: &str, allowed: usize) {
        if let Some(extra) = e
            .values
            .get(allowed..)
            .and_then(|rest| rest.iter().find(|v| !v.raw.is_empty()))
        {
            let text = format!(
                "{key} has an extra value {:?}, which Windows ignores",
                extra.raw
            );
            self.report(Rule::ExtraValue, 1201, e.line, text);
        }
    }

    /// InfVerif 1290: directives in sections that do not take them.
    fn check_section_directives(&mut self) {
        let sections: Vec<&'a Section> = self
            .install
            .iter()
            .chain(self.services.iter())
            .chain(self.service_install.iter())
            .copied()
            .collect();
        for s in sections {
            for e in &s.entries {
                if let Some(k) = e.key().filter(|k| k.contains(['\\', ','])) {
                    let text = format!("directive {k:?} in [{}] contains '\\' or ','", s.name);
                    self.report(Rule::SectionDirective, 1150, e.line, text);
                }
                // "A,B = x" parses as a key-less entry whose later field holds
                // the '=': the directive name "A,B" has a comma.
                let comma_key = e.key.is_none()
                    && e.values
                        .iter()
                        .skip(1)
                        .any(|v| !v.quoted && v.raw.contains('='));
                if comma_key {
                    let text = format!("directive name in [{}] contains ','", s.name);
                    self.report(Rule::SectionDirective, 1150, e.line, text);
                }
            }
        }
        let install = self.install.clone();
        for s in install {
            for e in &s.entries {
                if let Some(k) = e.key().filter(|k| k.eq_ignore_ascii_case("AddService")) {
                    let text = format!("{k} belongs in [{}.Services], not in [{}]", s.name, s.name);
                    self.report(Rule::SectionDirective, 1290, e.line, text);
                }
            }
        }
        let services = self.services.clone();
        for s in services {
            for e in &s.entries {
                let Some(k) = e.key() else { continue };
                if !SERVICES_SECTION_KEYS
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(k))
                {
                    let text = format!(
                        "{k} is not a directive of a .Services section ([{}])",
                        s.name
                    );
                    self.report(Rule::SectionDirective, 1290, e.line, text);
                }
            }
        }
        let service_install = self.service_install.clone();
        for s in service_install {
            for e in &s.entries {
                let Some(k) = e.key() else { continue };
                if NOT_IN_SERVICE_INSTALL
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(k))
                {
                    let text = format!(
                        "{k} is not a directive of a service-install section ([{}])",
                        s.name
                    );
                    self.report(Rule::SectionDirective, 1290, e.line, text);
                }
            }
        }
    }

    /// InfVerif 2084 (ServiceBinary is not a file the INF copies), 1014
    /// (values out of range) and 1252 (start type a service type cannot have).
    fn check_service_values(&mut self) {
        let copied: HashSet<String> = self.copied_files().iter().map(|f| lower(&f.name)).collect();
        let dest_names: HashSet<String> = self
            .file_lists
            .iter()
            .flat_map(|(s, _)| s.entries.iter())
            .map(|e| lower(&self.resolve(e.key().unwrap_or_else(|| e.value_or_empty(0)).trim())))
            .chain(copied)
            .collect();
        let service_install = self.service_install.clone();
        for s in service_install {
            if let Some(e) = s.get("ServiceBinary") {
                let v = self.resolve(e.value_or_empty(0));
                let file = v.rsplit('\\').next().unwrap_or(&v);
                // Only a binary in the driver store must come from this
                // package; %12%\WUDFRd.sys and the like are inbox files.
                let in_store = lower(&v).starts_with("%13%\\");
                if in_store && !file.is_empty() && !dest_names.contains(&lower(file)) {
                    let text = format!("ServiceBinary {v:?} names no file this INF copies");
                    self.report(Rule::ServiceInstall, 2084, e.line, text);
                }
            }
            let number = |key: &str| {
                s.get(key).and_then(|e| {
                    parse_number(&self.resolve(e.value_or_empty(0))).map(|n| (n, e.line))
                })
            };
            let service_type = number("ServiceType");
            let start_type = number("StartType");
            for (key, value, ok) in [
                ("ServiceType", service_type, &SERVICE_TYPES[..]),
                ("StartType", start_type, &[0, 1, 2, 3, 4][..]),
                ("ErrorControl", number("ErrorControl"), &[0, 1, 2, 3][..]),
            ] {
                if let Some((n, line)) = value {
                    if !ok.contains(&n) {
                        self.report(
                            Rule::ServiceInstall,
                            1014,
                            line,
                            format!("{key} {n:#x} is not a valid value"),
                        );
                    }
                }
            }
            if let (Some((ty, _)), Some((start, line))) = (service_type, start_type) {
                if ty & 0x30 != 0 && start <= 1 {
                    let text = format!("a Win32 service (ServiceType {ty:#x}) cannot have boot/system StartType {start}");
                    self.report(Rule::ServiceInstall, 1252, line, text);
                }
            }
        }
    }

    /// InfVerif 1100, 1101 and 1330 for files copied to the driver store.
    fn check_driver_store_copies(&mut self) {
        let inf = self.inf;
        let dest_dirs: Vec<&'a Entry> = inf
            .sections_named("DestinationDirs")
            .flat_map(|s| s.entries.iter())
            .collect();
        let dest_of = |list: &str| {
            dest_dirs
                .iter()
                .find(|e| e.key_is(list))
                .or_else(|| dest_dirs.iter().find(|e| e.key_is("DefaultDestDir")))
                .map(|e| {
                    (
                        e.value_or_empty(0).trim().to_owned(),
                        norm_dir(e.value_or_empty(1)),
                    )
                })
        };
        let disks: HashMap<String, String> = inf
            .sections
            .iter()
            .filter(|s| is_family(&s.name, "SourceDisksNames"))
            .flat_map(|s| s.entries.iter())
            .filter_map(|e| Some((normalize_id(e.key()?), norm_dir(e.value_or_empty(3)))))
            .collect();
        let sources: HashMap<String, String> = inf
            .sections
            .iter()
            .filter(|s| is_family(&s.name, "SourceDisksFiles"))
            .flat_map(|s| s.entries.iter())
            .filter_map(|e| {
                let disk = disks
                    .get(&normalize_id(e.value_or_empty(0)))
                    .cloned()
                    .unwrap_or_default();
                let sub = norm_dir(e.value_or_empty(1));
                let path = [disk, sub]
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join("\\");
                Some((lower(e.key()?.trim()), path))
            })
            .collect();
        let mut targets: HashMap<String, (String, usize)> = HashMap::new();
        let lists = self.file_lists.clone();
        for (s, line) in lists {
            let Some((dirid, dest_sub)) = dest_of(&s.name) else {
                continue;
            };
            let store = dirid == "13";
            if store
                && inf
                    .sections
                    .iter()
                    .any(|t| t.is(&format!("{}.Security", s.name)))
            {
                let text = format!(
                    "[{}.Security]: files copied to DIRID 13 cannot have a security descriptor",
                    s.name
                );
                self.report(Rule::DriverStoreCopy, 1101, line, text);
            }
            for e in &s.entries {
                let dest = e.key().unwrap_or_else(|| e.value_or_empty(0)).trim();
                let named_source = if e.key.is_some() {
                    e.value_or_empty(0)
                } else {
                    e.value_or_empty(1)
                }
                .trim();
                let source = if named_source.is_empty() {
                    dest
                } else {
                    named_source
                };
                if dest.is_empty() {
                    continue;
                }
                if store && !source.eq_ignore_ascii_case(dest) {
                    let text = format!(
                        "{source} is renamed to {dest} in the driver store (DIRID 13 keeps names)"
                    );
                    self.report(Rule::DriverStoreCopy, 1100, e.line, text);
                }
                if let Some(src_dir) = sources.get(&lower(source)) {
                    if store && *src_dir != dest_sub {
                        let text = format!(
                            "{source} comes from {:?} in the package but goes to {:?} in the driver store (DIRID 13 keeps the layout)",
                            src_dir, dest_sub
                        );
                        self.report(Rule::DriverStoreCopy, 1100, e.line, text);
                    }
                }
                let target = format!("{dirid}\\{dest_sub}\\{}", lower(dest));
                match targets.get(&target) {
                    Some((other, first)) if !other.eq_ignore_ascii_case(source) => {
                        let text = format!(
                            "{source} and {other} (line {first}) are both copied to {dest}"
                        );
                        self.report(Rule::DriverStoreCopy, 1330, e.line, text);
                    }
                    Some(_) => {}
                    None => {
                        targets.insert(target, (source.to_owned(), e.line));
                    }
                }
            }
        }
    }

    /// Add-registry entries: InfVerif 1268, 1267, 1265, 1305, 1303, 1329,
    /// 1257; 1224/1304 (root); 1323 (service keys outside Parameters).
    fn check_registry(&mut self) {
        let registry = self.registry.clone();
        for s in registry {
            let bitreg = self
                .uses
                .get(&lower(&s.name))
                .is_some_and(|u| *u == "BitReg");
            let service = self.service_registry.contains(&lower(&s.name));
            for e in &s.entries {
                let resolved: Vec<String> =
                    entry_fields(e).iter().map(|f| self.resolve(f)).collect();
                let fields: Vec<&str> = resolved.iter().map(String::as_str).collect();
                let field = |i: usize| fields.get(i).copied().unwrap_or("").trim();
                let root = field(0);
                if !root.eq_ignore_ascii_case("HKR") {
                    let shown = if root.is_empty() { "(empty)" } else { root };
                    self.report(
                        Rule::AddRegRoot,
                        addreg_root_code(root),
                        e.line,
                        format!("AddReg root {shown} not allowed (only HKR)"),
                    );
                } else if service {
                    let sub = lower(field(1));
                    if sub != "parameters" && !sub.starts_with("parameters\\") {
                        let text = format!(
                            "service registry values belong under HKR,Parameters (the service key's Parameters subkey), not HKR,{:?}",
                            field(1)
                        );
                        self.report(Rule::ServiceInstall, 1323, e.line, text);
                    }
                }
                if bitreg {
                    // root, subkey, value, flags, byte-mask, byte-to-modify
                    let mask = field(4);
                    if parse_number(mask).is_none_or(|m| m > 0xFF) {
                        let text = format!("BitReg mask {mask:?} is not a byte (0x00-0xFF)");
                        self.report(Rule::AddRegEntry, 1262, e.line, text);
                    }
                    continue;
                }
                self.check_addreg_entry(e, &fields);
            }
        }
    }

    fn check_addreg_entry(&mut self, e: &Entry, fields: &[&str]) {
        let field = |i: usize| fields.get(i).copied().unwrap_or("").trim();
        let name = field(2);
        if name.eq_ignore_ascii_case("CoInstallers32") {
            self.report(
                Rule::AddRegEntry,
                1303,
                e.line,
                "AddReg registers a co-installer (CoInstallers32)",
            );
        }
        if ["UpperFilters", "LowerFilters"]
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name))
        {
            let text =
                format!("AddReg sets {name}: filters are added with a [DDInstall.Filters] section");
            self.report(Rule::AddRegEntry, 1329, e.line, text);
        }
        let data = fields.get(4..).unwrap_or(&[]);
        if data
            .iter()
            .any(|d| WINDOWS_DIR_TOKENS.iter().any(|w| lower(d).contains(w)))
        {
            self.report(
                Rule::AddRegEntry,
                1257,
                e.line,
                "AddReg data points into the Windows directory (%10%/%11%/%12%/%SystemRoot%); use a driver-store path",
            );
        }
        let raw_flags = field(3);
        if raw_flags.is_empty() {
            return;
        }
        let Some(flags) = parse_number(raw_flags) else {
            let text = format!("AddReg flags {raw_flags:?} are not a number");
            self.report(Rule::AddRegEntry, 1268, e.line, text);
            return;
        };
        let kind = flags & FLG_ADDREG_TYPE_MASK;
        if flags & FLG_ADDREG_APPEND != 0 {
            if kind == FLG_ADDREG_TYPE_MULTI_SZ {
                self.report(
                    Rule::AddRegEntry,
                    1305,
                    e.line,
                    "AddReg appends to a REG_MULTI_SZ value another package may own",
                );
            } else {
                self.report(
                    Rule::AddRegEntry,
                    1265,
                    e.line,
                    "AddReg append flag (0x8) on a value that is not REG_MULTI_SZ",
                );
            }
        }
        if kind == FLG_ADDREG_TYPE_DWORD {
            let v = field(4);
            if parse_number(v).is_none_or(|n| n > u64::from(u32::MAX)) {
                let text = format!(
                    "REG_DWORD data {v:?} is not a 32-bit decimal or 0x-hexadecimal number"
                );
                self.report(Rule::AddRegEntry, 1268, e.line, text);
            }
        } else if kind == FLG_ADDREG_BINVALUETYPE {
            let bad = data.iter().map(|d| d.trim()).find(|d| {
                let hex = d
                    .strip_prefix("0x")
                    .or_else(|| d.strip_prefix("0X"))
                    .unwrap_or(d);
                hex.is_empty() || hex.len() > 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if let Some(bad) = bad {
                let text = format!("REG_BINARY data {bad:?} is not a byte 00-FF");
                self.report(Rule::AddRegEntry, 1267, e.line, text);
            }
        }
    }

    /// InfVerif 1331/1332: one registry value set to different data by two sections.
    fn check_registry_conflicts(&mut self) {
        let registry = self.registry.clone();
        // (owner install section, root, subkey, value name) -> (section, data)
        let mut values: HashMap<(String, String, String, String), (String, String)> =
            HashMap::new();
        for s in registry {
            if self
                .uses
                .get(&lower(&s.name))
                .is_some_and(|u| *u == "BitReg")
            {
                continue;
            }
            let service = self.service_registry.contains(&lower(&s.name));
            let owner = self
                .registry_owner
                .get(&lower(&s.name))
                .cloned()
                .unwrap_or_default();
            for e in &s.entries {
                let resolved: Vec<String> =
                    entry_fields(e).iter().map(|f| self.resolve(f)).collect();
                let fields: Vec<&str> = resolved.iter().map(String::as_str).collect();
                let field = |i: usize| fields.get(i).copied().unwrap_or("").trim();
                let key = (
                    owner.clone(),
                    lower(field(0)),
                    lower(field(1)),
                    lower(field(2)),
                );
                let data = fields
                    .get(3..)
                    .unwrap_or(&[])
                    .iter()
                    .map(|f| f.trim())
                    .collect::<Vec<_>>()
                    .join(",");
                match values.get(&key) {
                    Some((other, other_data))
                        if !other.eq_ignore_ascii_case(&s.name) && *other_data != data =>
                    {
                        let (code, what) = if service {
                            (1332, "service value")
                        } else {
                            (1331, "value")
                        };
                        let text = format!(
                            "{what} {}\\{}\\{} is set to {data:?} here and to {other_data:?} in [{other}]",
                            field(0), field(1), field(2)
                        );
                        self.report(Rule::RegistryConflict, code, e.line, text);
                    }
                    Some(_) => {}
                    None => {
                        values.insert(key, (s.name.clone(), data));
                    }
                }
            }
        }
    }

    /// InfVerif 1295: a [Strings.LCID] section with a different number of strings.
    fn check_localized_strings(&mut self) {
        let inf = self.inf;
        let Some(base) = inf.section("Strings") else {
            return;
        };
        let count = base.entries.len();
        for s in inf
            .sections
            .iter()
            .filter(|s| is_family(&s.name, "Strings") && !s.is("Strings"))
        {
            if s.entries.len() != count {
                let text = format!(
                    "[{}] has {} strings, [Strings] has {count}",
                    s.name,
                    s.entries.len()
                );
                self.report(Rule::LocalizedStrings, 1295, s.line, text);
            }
        }
    }

    /// Needs in install and .Services sections: InfVerif 1312/1313 (the
    /// needed section's .Services suffix must match the parent's) and 1319
    /// (a section not in this INF needs an Include of the INF that has it).
    fn check_needs(&mut self) {
        let sections: Vec<&'a Section> = self
            .install
            .iter()
            .chain(self.services.iter())
            .copied()
            .collect();
        for s in sections {
            let parent_services = lower(&s.name).ends_with(".services");
            let has_include = s.entries.iter().any(|e| e.key_is("Include"));
            for e in s.entries.iter().filter(|e| e.key_is("Needs")) {
                for v in e
                    .values
                    .iter()
                    .map(|v| v.text.trim())
                    .filter(|v| !v.is_empty())
                {
                    let needed_services = lower(v).ends_with(".services");
                    if parent_services && !needed_services {
                        let text = format!(
                            "[{}] needs [{v}], which lacks the .Services suffix of its parent",
                            s.name
                        );
                        self.report(Rule::Needs, 1313, e.line, text);
                    } else if !parent_services && needed_services {
                        let text = format!(
                            "[{}] needs [{v}], a .Services section, from a section that is not one",
                            s.name
                        );
                        self.report(Rule::Needs, 1312, e.line, text);
                    }
                    let local = self.inf.sections.iter().any(|t| t.is(v));
                    if local {
                        self.used.insert(lower(v));
                    } else if !has_include {
                        let text = format!("[{}] needs [{v}], which is not in this INF, without an Include of the INF that has it", s.name);
                        self.report(Rule::Needs, 1319, e.line, text);
                    }
                }
            }
        }
    }

    /// InfVerif 2083: a section nothing references. Besides the sections the
    /// walk reached, a section counts as referenced when any field outside
    /// [Strings] and [DestinationDirs] names it (directives this lint does
    /// not model, such as KmdfService or AddInterface, reference sections
    /// too), or when it extends such a section by a suffix (`X.HW`, `X.AddReg`).
    fn check_unused(&mut self) {
        let inf = self.inf;
        let mentioned: HashSet<String> = inf
            .sections
            .iter()
            .filter(|s| !is_family(&s.name, "Strings") && !s.is("DestinationDirs"))
            .flat_map(|s| {
                let own = lower(&s.name);
                s.entries
                    .iter()
                    .flat_map(|e| e.key.iter().chain(e.values.iter()))
                    .map(|v| lower(v.text.trim()))
                    .filter(move |v| *v != own)
            })
            .collect();
        let names: HashSet<String> = inf.sections.iter().map(|s| lower(&s.name)).collect();
        let used = self.used.clone();
        let referenced = |name: &str| used.contains(name) || mentioned.contains(name);
        for s in &inf.sections {
            let name = lower(&s.name);
            let extends_referenced = name
                .match_indices('.')
                .map(|(i, _)| name.get(..i).unwrap_or(""))
                .any(|prefix| names.contains(prefix) && referenced(prefix));
            let reserved = RESERVED_SECTIONS.iter().any(|k| is_family(&s.name, k))
                || UNREFERENCED_OK.iter().any(|k| is_family(&s.name, k));
            if !reserved && !extends_referenced && !referenced(&name) {
                let text = format!(
                    "section [{}] is not referenced by anything, so Windows never reads it",
                    s.name
                );
                self.report(Rule::UnusedSection, 2083, s.line, text);
            }
        }
    }

    fn finish(mut self) -> Vec<Diagnostic> {
        self.diags
            .sort_by(|a, b| (a.line, a.rule, &a.message).cmp(&(b.line, b.rule, &b.message)));
        self.diags.dedup();
        self.diags
    }
}

/// `%token%`s in a field (not `%%`; DIRIDs such as `%13%` included).
fn string_tokens(s: &str) -> Vec<&str> {
    let parts: Vec<&str> = s.split('%').collect();
    let n = parts.len();
    parts
        .iter()
        .enumerate()
        .skip(1)
        .step_by(2)
        .filter(|(i, p)| i.saturating_add(1) < n && !p.is_empty())
        .map(|(_, p)| *p)
        .collect()
}

/// An entry's fields with the key (if any) first: an add-registry line has
/// no key unless its text holds an unquoted `=`.
fn entry_fields(e: &Entry) -> Vec<&str> {
    e.key
        .iter()
        .chain(e.values.iter())
        .map(|v| v.text.as_str())
        .collect()
}

/// A subdirectory as written in DestinationDirs/SourceDisks*: trimmed,
/// without leading/trailing backslashes, lower-case.
fn norm_dir(s: &str) -> String {
    lower(s.trim().trim_matches('\\'))
}

fn version_key_code(key: &str) -> u16 {
    match key {
        "Signature" => 1001,
        "CatalogFile" => 1233,
        "PnpLockdown" => 1324,
        _ => 1234,
    }
}

fn driver_ver_code(why: &str) -> u16 {
    if why.starts_with("version") {
        1217
    } else {
        1218
    }
}

fn banned_section_code(kind: &str, s: &Section, ms_class: bool) -> Option<u16> {
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

fn banned_directive_code(d: &str) -> u16 {
    match d {
        "LogConfig" => 1300,
        "DelFiles" | "DelReg" | "DelService" | "RenFiles" | "UnregisterDlls" => 1302,
        _ => 1301,
    }
}

/// Characters a Windows file name cannot contain (plus the separator `/`).
const BAD_PATH_CHARS: [char; 8] = ['/', '*', '?', '"', '<', '>', '|', ':'];

fn service_binary_code(v: &str) -> u16 {
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

fn destination_dirid_code(dirid: &str) -> u16 {
    if parse_number(dirid).is_none() {
        1243
    } else {
        1322
    }
}

fn addreg_root_code(root: &str) -> u16 {
    if ["HKR", "HKCR", "HKCU", "HKLM", "HKU"]
        .iter()
        .any(|r| r.eq_ignore_ascii_case(root))
    {
        1304
    } else {
        1224
    }
}

fn normalize_id(s: &str) -> String {
    let t = s.trim();
    match t.parse::<u64>() {
        Ok(n) => n.to_string(),
        Err(_) => lower(t),
    }
}

fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// `{8-4-4-4-12}` hexadecimal GUID in braces.
pub(crate) fn is_guid(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return false;
    };
    let groups: Vec<&str> = inner.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    lens == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks a DriverVer value `MM/DD/YYYY,w.x.y.z`.
pub(crate) fn check_driver_ver(v: &str) -> Result<(), String> {
    let Some((date, version)) = v.split_once(',') else {
        return Err("expected MM/DD/YYYY,w.x.y.z".into());
    };
    let (date, version) = (date.trim(), version.trim());
    let parts: Vec<&str> = date.split('/').collect();
    let [m, d, y] = parts.as_slice() else {
        return Err(format!("date {date:?} is not MM/DD/YYYY"));
    };
    let digits =
        |s: &str, lens: &[usize]| lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(m, &[1, 2]) || !digits(d, &[1, 2]) || !digits(y, &[4]) {
        return Err(format!("date {date:?} is not MM/DD/YYYY"));
    }
    let (Ok(m), Ok(d), Ok(y)) = (m.parse::<u8>(), d.parse::<u8>(), y.parse::<u16>()) else {
        return Err(format!("date {date:?} is not MM/DD/YYYY"));
    };
    if !(1..=12).contains(&m) {
        return Err(format!("month {m} is not 1-12"));
    }
    if y < 1970 {
        return Err(format!("year {y} is before 1970"));
    }
    if d < 1 || d > days_in_month(y, m) {
        return Err(format!("day {d} does not exist in {m:02}/{y}"));
    }
    let fields: Vec<&str> = version.split('.').collect();
    if fields.is_empty() || fields.len() > 4 {
        return Err(format!("version {version:?} must have 1 to 4 fields"));
    }
    for f in fields {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("version {version:?} has a non-numeric field"));
        }
        if f.parse::<u16>().is_err() {
            return Err(format!("version field {f} is greater than 65535"));
        }
    }
    Ok(())
}

fn parse_diag(file: &str, e: &crate::parse::ParseError) -> Diagnostic {
    let line = e.line.max(1);
    Diagnostic {
        rule: Rule::ParseError,
        line,
        message: format!("{file}:{line}: {}", e.message),
        infverif: Some(1002),
    }
}

/// Lints INF text. `file_name` is used in messages (e.g. `weir.inf`).
/// Returns the findings sorted by line; an empty vector means clean.
pub fn lint(inf_text: &str, file_name: &str) -> Vec<Diagnostic> {
    match parse(inf_text) {
        Ok(inf) => lint_parsed(&inf, file_name),
        Err(e) => vec![parse_diag(file_name, &e)],
    }
}

/// Lints an already parsed INF.
pub fn lint_parsed(inf: &Inf, file_name: &str) -> Vec<Diagnostic> {
    let mut l = Linter::new(inf, file_name);
    l.check_version();
    l.check_shape();
    l.check_banned();
    l.check_stamp_variables();
    l.check_strings();
    l.walk();
    l.check_files();
    l.check_destinations();
    l.check_registry();
    l.check_duplicates();
    l.check_single_valued();
    l.check_section_directives();
    l.check_service_values();
    l.check_driver_store_copies();
    l.check_registry_conflicts();
    l.check_localized_strings();
    l.check_needs();
    l.check_unused();
    l.finish()
}

/// Lints INF bytes as they would be installed: the encoding first (InfVerif
/// 1003: Windows reads an INF as ANSI or as UTF-16LE with a byte-order mark;
/// UTF-8 and non-ASCII 8-bit text are read in whatever code page the
/// installing machine has), then the text as [`lint`] does.
pub fn lint_bytes(bytes: &[u8], file_name: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut encoding = |line: usize, text: &str| {
        out.push(Diagnostic {
            rule: Rule::Encoding,
            line,
            message: format!("{file_name}:{line}: {text}"),
            infverif: Some(1003),
        });
    };
    if bytes.starts_with(&[0xFF, 0xFE]) {
        // UTF-16LE: what InfVerif asks for.
    } else if bytes.starts_with(&[0xFE, 0xFF]) {
        encoding(1, "UTF-16BE: Windows reads INF files as ANSI or UTF-16LE");
    } else if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        encoding(
            1,
            "UTF-8 byte-order mark: Windows reads INF files as ANSI or UTF-16LE",
        );
    } else if let Some(at) = bytes.iter().position(|b| !b.is_ascii()) {
        let line = bytes
            .get(..at)
            .unwrap_or(&[])
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            .saturating_add(1);
        encoding(line, "non-ASCII byte in an 8-bit INF: it is read in the installing machine's code page; use ASCII or UTF-16LE");
    }
    match crate::parse::decode(bytes) {
        Ok(text) => out.extend(lint(&text, file_name)),
        Err(e) => out.push(parse_diag(file_name, &e)),
    }
    out
}

/// The files the INF installs (CopyFiles reachable from its install
/// sections), de-duplicated ignoring case, in order of first appearance.
/// These, plus the INF itself, are what the catalog must list.
pub fn copied_files(inf: &Inf) -> Vec<CopiedFile> {
    let mut l = Linter::new(inf, "");
    l.walk();
    let mut seen = HashSet::new();
    l.copied_files()
        .into_iter()
        .filter(|f| !f.name.is_empty() && seen.insert(lower(&f.name)))
        .collect()
}

/// Checks that a catalog covers the package: it must list `inf_file_name`
/// and every file the INF copies. `catalog_file_names` are the file names
/// found in the catalog's members (compared ignoring ASCII case).
pub fn check_catalog_coverage<S: AsRef<str>>(
    inf_text: &str,
    inf_file_name: &str,
    catalog_file_names: &[S],
) -> Vec<Diagnostic> {
    let inf = match parse(inf_text) {
        Ok(inf) => inf,
        Err(e) => return vec![parse_diag(inf_file_name, &e)],
    };
    let listed: HashSet<String> = catalog_file_names
        .iter()
        .map(|n| lower(n.as_ref().trim()))
        .collect();
    let mut out = Vec::new();
    let mut push = |line: usize, text: String| {
        out.push(Diagnostic {
            rule: Rule::CatalogCoverage,
            line,
            message: format!("{inf_file_name}:{line}: {text}"),
            infverif: None,
        });
    };
    if !listed.contains(&lower(inf_file_name)) {
        let line = inf
            .entries("Version", "CatalogFile")
            .next()
            .map_or(1, |e| e.line);
        push(
            line,
            format!("catalog does not list the INF itself ({inf_file_name})"),
        );
    }
    for f in copied_files(&inf) {
        if !listed.contains(&lower(&f.name)) {
            push(
                f.line,
                format!("catalog does not list copied file {}", f.name),
            );
        }
    }
    out
}
