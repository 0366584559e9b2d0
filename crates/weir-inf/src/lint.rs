//! InfVerif-style checks for a primitive (non-PnP) driver INF, runnable on
//! any host. These approximate the WDK's InfVerif rules that matter for our
//! package; they are not a replacement for running InfVerif on Windows.

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
}

impl Rule {
    /// Every rule, in declaration order.
    pub const ALL: [Rule; 19] = [
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
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.rule)
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
        }
    }

    fn report(&mut self, rule: Rule, line: usize, text: impl fmt::Display) {
        self.diags.push(Diagnostic {
            rule,
            line,
            message: format!("{}:{}: {}", self.file, line, text),
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
    fn referenced(&mut self, name: &str, what: &str, line: usize) -> Vec<&'a Section> {
        let inf = self.inf;
        let found: Vec<&'a Section> = inf.sections.iter().filter(|s| s.is(name)).collect();
        if found.is_empty() {
            self.report(
                Rule::MissingSection,
                line,
                format!("{what} references section [{name}], which does not exist"),
            );
        }
        found
    }

    /// Marks a section (by kind) as seen; returns true the first time.
    fn first_visit(&mut self, kind: u8, name: &str) -> bool {
        self.seen.insert((kind, lower(name)))
    }

    fn check_version(&mut self) {
        let inf = self.inf;
        let Some(version) = inf.section("Version") else {
            self.report(Rule::VersionMissing, 1, "no [Version] section");
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
                            Rule::VersionValue,
                            g.line,
                            format!("ClassGuid {gv} does not match Class WFPCALLOUTS ({WFPCALLOUTS_GUID})"),
                        );
                    }
                }
            } else if class.is_empty() {
                self.report(Rule::VersionValue, e.line, "Class is empty");
            }
        }
        if let Some(e) = find("Provider") {
            let p = self.resolve(e.value_or_empty(0));
            let p = p.trim();
            if p.is_empty() || p.contains('%') {
                self.report(
                    Rule::VersionValue,
                    e.line,
                    format!("Provider {p:?} is empty or unresolved"),
                );
            } else if p.eq_ignore_ascii_case("Microsoft") {
                self.report(
                    Rule::VersionValue,
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
                        Rule::NoInstallSection,
                        inf.section("Version").map_or(1, |s| s.line),
                        "neither [Manufacturer] nor [DefaultInstall.NT<arch>]: nothing would be installed",
                    );
                }
                for d in &default_installs {
                    if !has_arch_decoration(&d.name, "DefaultInstall") {
                        self.report(
                            Rule::UndecoratedDefaultInstall,
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
                                Rule::MissingSection,
                                model.line,
                                format!("model references install section [{ddinstall}], which does not exist (nor any [{ddinstall}.NT...])"),
                            );
                        }
                        for s in family {
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
            self.walk_install_like(s);
        }
        let services = self.services.clone();
        for s in services {
            for e in s.entries.iter().filter(|e| e.key_is("AddService")) {
                let svc = e.value_or_empty(0).to_owned();
                let section = e.value_or_empty(2);
                if section.is_empty() {
                    self.report(
                        Rule::ServiceInstall,
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
            self.walk_install_like(s);
        }
        let event_log = self.event_log.clone();
        for s in event_log {
            self.walk_install_like(s);
        }
    }

    fn walk_install_like(&mut self, s: &'a Section) {
        for e in &s.entries {
            let Some(k) = e.key() else { continue };
            let k = lower(k);
            match k.as_str() {
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
                    s.line,
                    format!("service-install section [{}] has no {key}", s.name),
                ),
                Some(e) if key == "ServiceBinary" => {
                    let v = e.value_or_empty(0);
                    let ok = lower(v)
                        .strip_prefix("%13%\\")
                        .is_some_and(|rest| !rest.is_empty());
                    if !ok {
                        self.report(
                            Rule::ServiceInstall,
                            e.line,
                            format!("ServiceBinary {v:?} must be under the driver store (%13%\\name.sys)"),
                        );
                    }
                }
                Some(e) => {
                    let v = e.value_or_empty(0);
                    if parse_number(v).is_none() {
                        self.report(
                            Rule::ServiceInstall,
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
                    name: name.trim().to_owned(),
                    line: e.line,
                });
            }
        }
        out.extend(self.single_files.iter().cloned());
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
            .filter_map(|e| e.key().map(lower))
            .collect();
        for f in self.copied_files() {
            if f.name.is_empty() {
                self.report(
                    Rule::CopyFilesSource,
                    f.line,
                    "file-list entry has no file name",
                );
            } else if !known.contains(&lower(&f.name)) {
                self.report(
                    Rule::CopyFilesSource,
                    f.line,
                    format!("copied file {} is not listed in [SourceDisksFiles]", f.name),
                );
            }
        }
        for e in source_files {
            let Some(file) = e.key() else {
                self.report(
                    Rule::SourceDisk,
                    e.line,
                    "[SourceDisksFiles] entry has no 'file = disk-id'",
                );
                continue;
            };
            let disk = e.value_or_empty(0);
            if !disk_ids.contains(&normalize_id(disk)) {
                self.report(
                    Rule::SourceDisk,
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
                    f.line,
                    format!(
                        "CopyFiles=@{} needs DefaultDestDir in [DestinationDirs]",
                        f.name
                    ),
                );
            }
        }
    }

    fn check_registry(&mut self) {
        let registry = self.registry.clone();
        for s in registry {
            for e in &s.entries {
                let root = e
                    .key
                    .as_ref()
                    .map_or_else(|| e.value_or_empty(0), |k| k.text.as_str());
                if !root.eq_ignore_ascii_case("HKR") {
                    let shown = if root.is_empty() { "(empty)" } else { root };
                    self.report(
                        Rule::AddRegRoot,
                        e.line,
                        format!("AddReg root {shown} not allowed (only HKR)"),
                    );
                }
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
    l.finish()
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
