//! InfVerif-style checks for a primitive (non-PnP) driver INF, runnable on
//! any host. These approximate the WDK's InfVerif rules that matter for our
//! package; they are not a replacement for running InfVerif on Windows.
//!
//! Each finding names the InfVerif code of the documented check it
//! corresponds to ([`Diagnostic::infverif`]), from Microsoft's "INF Validation
//! Errors and Warnings" page (learn.microsoft.com, devtest). docs/inf-lint.md
//! lists every code on that page and whether this lint covers it.
//!
//! This file keeps the linter's state, how findings are reported and
//! `%string%`s resolved, and the entry points; the rules live with the INF
//! part they check, each module adding its own `impl Linter` block:
//! `rule` (ids, InfVerif codes), `version`, `sections` (shape, banned and
//! misplaced directives, duplicates), `strings`, `walk` (references from the
//! install sections, Needs, unused sections), `services`, `files`,
//! `registry`, `encoding` ([`lint_bytes`]), `catalog` and `arch` (platform
//! extensions, [`lint_for_arch`]).

mod arch;
mod catalog;
mod encoding;
mod files;
mod registry;
mod rule;
mod sections;
mod services;
mod strings;
mod version;
mod walk;

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::arch::Arch;
use crate::parse::{parse, Entry, Inf, Section};

pub use arch::{lint_for_arch, lint_text_for_arch};
pub use catalog::{check_catalog_coverage, copied_files};
pub use encoding::lint_bytes;
pub use rule::Rule;

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
    /// does not have (catalog coverage, the image's architecture, stampinf
    /// variables other than `$ARCH$`).
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

/// The WFP callout class GUID.
pub const WFPCALLOUTS_GUID: &str = "{57465043-616C-6C6F-7574-5F636C617373}";

/// A file the INF copies: its source name and the line that copies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedFile {
    /// Source file name (as listed in SourceDisksFiles).
    pub name: String,
    /// 1-based line of the file-list entry (or the `CopyFiles=@file` line).
    pub line: usize,
}

pub(super) fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Whether `name` is `base` or `base.<anything>` (ASCII case-insensitive).
pub(super) fn is_family(name: &str, base: &str) -> bool {
    let l = lower(name);
    let b = lower(base);
    l == b || l.strip_prefix(&b).is_some_and(|rest| rest.starts_with('.'))
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

    fn finish(mut self) -> Vec<Diagnostic> {
        self.diags
            .sort_by(|a, b| (a.line, a.rule, &a.message).cmp(&(b.line, b.rule, &b.message)));
        self.diags.dedup();
        self.diags
    }
}

pub(super) fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

pub(super) fn parse_diag(file: &str, e: &crate::parse::ParseError) -> Diagnostic {
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
    run(inf, file_name, None)
}

/// Every rule; with `image`, also the rules about the image's architecture.
fn run(inf: &Inf, file_name: &str, image: Option<Arch>) -> Vec<Diagnostic> {
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
    l.check_arch_decorations();
    if let Some(image) = image {
        l.check_image_arch(image);
    }
    l.finish()
}
