//! What the catalog must list: the INF and every file it copies.

use std::collections::HashSet;

use super::{lower, parse_diag, CopiedFile, Diagnostic, Linter, Rule};
use crate::parse::{parse, Inf};

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
