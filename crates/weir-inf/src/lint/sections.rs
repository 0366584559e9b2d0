//! The INF's shape (install sections), banned sections and directives,
//! directives in the wrong section, duplicates and single-valued keys.

use std::collections::HashMap;

use super::arch::NT_ARCHES;
use super::rule::{banned_directive_code, banned_section_code};
use super::services::SINGLE_VALUED_SERVICE_KEYS;
use super::{is_family, lower, Entry, Linter, Rule, Section};

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

/// The directives a DDInstall.Services / DefaultInstall.Services section takes.
const SERVICES_SECTION_KEYS: [&str; 4] = ["AddService", "DelService", "Include", "Needs"];

/// Install-section directives that have no meaning in a service-install section.
const NOT_IN_SERVICE_INSTALL: [&str; 4] = ["CopyFiles", "AddService", "CopyINF", "AddProperty"];

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

impl<'a> Linter<'a> {
    pub(super) fn check_shape(&mut self) {
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

    pub(super) fn check_banned(&mut self) {
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

    /// InfVerif 1209 (a section twice) and 1294 (an entry twice in one
    /// section: strings, source files, DestinationDirs entries, file-list
    /// destinations).
    pub(super) fn check_duplicates(&mut self) {
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
    pub(super) fn check_single_valued(&mut self) {
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
    pub(super) fn check_section_directives(&mut self) {
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
}
