//! Copied files: [SourceDisksFiles]/[SourceDisksNames], [DestinationDirs],
//! and what copying into the driver store (DIRID 13) allows.

use std::collections::{HashMap, HashSet};

use super::rule::destination_dirid_code;
use super::{is_family, lower, CopiedFile, Entry, Linter, Rule, Section};

impl<'a> Linter<'a> {
    /// The source files a file list names: `dest[,source]`, the source
    /// defaulting to the destination name.
    pub(super) fn list_sources(&self, list: &Section) -> Vec<CopiedFile> {
        list.entries
            .iter()
            .map(|e| {
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
                CopiedFile {
                    name: self.resolve(name.trim()),
                    line: e.line,
                }
            })
            .collect()
    }

    pub(super) fn copied_files(&self) -> Vec<CopiedFile> {
        let mut out = Vec::new();
        for (s, _) in &self.file_lists {
            out.extend(self.list_sources(s));
        }
        out.extend(self.single_files.iter().map(|f| CopiedFile {
            name: self.resolve(&f.name),
            line: f.line,
        }));
        out
    }

    pub(super) fn check_files(&mut self) {
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

    pub(super) fn check_destinations(&mut self) {
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

    /// InfVerif 1100, 1101 and 1330 for files copied to the driver store.
    pub(super) fn check_driver_store_copies(&mut self) {
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
}

/// A subdirectory as written in DestinationDirs/SourceDisks*: trimmed,
/// without leading/trailing backslashes, lower-case.
fn norm_dir(s: &str) -> String {
    lower(s.trim().trim_matches('\\'))
}

fn normalize_id(s: &str) -> String {
    let t = s.trim();
    match t.parse::<u64>() {
        Ok(n) => n.to_string(),
        Err(_) => lower(t),
    }
}
