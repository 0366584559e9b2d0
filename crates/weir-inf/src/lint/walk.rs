//! From the install roots (`[DefaultInstall.NT<arch>]`, `[Manufacturer]` models)
//! to every section they reference: missing and misused references, Needs,
//! and sections nothing references.

use std::collections::HashSet;

use super::{is_family, lower, CopiedFile, Entry, Linter, Rule, Section};

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

impl<'a> Linter<'a> {
    /// All sections called `name`; reports `missing-section` at `line` when none.
    pub(super) fn referenced(
        &mut self,
        name: &str,
        what: &'static str,
        line: usize,
    ) -> Vec<&'a Section> {
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
    pub(super) fn first_visit(&mut self, kind: u8, name: &str) -> bool {
        self.seen.insert((kind, lower(name)))
    }

    /// Walks from the install sections to everything they reference.
    pub(super) fn walk(&mut self) {
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
                self.walk_add_service(s, e);
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

    /// Needs in install and .Services sections: InfVerif 1312/1313 (the
    /// needed section's .Services suffix must match the parent's) and 1319
    /// (a section not in this INF needs an Include of the INF that has it).
    pub(super) fn check_needs(&mut self) {
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
    pub(super) fn check_unused(&mut self) {
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
}
