//! The policy file: TOML that users write and `weirctl policy show` prints back.
//!
//! ```toml
//! [defaults]
//! outbound = "permit"        # permit | block; default permit
//! inbound = "block"
//! log_all = false            # log every connection
//!
//! [sets]
//! lan = ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8", "10.1.1.1-10.1.1.9"]
//! blocklist = "@blocklist.txt"   # one address, CIDR or range per line, relative to this file
//!
//! [[rule]]                   # rules in order; the first match decides
//! id = 10                    # u32, reported in counters and events; default: position (1, 2, ...)
//! action = "permit"          # required: permit | block
//! log = true
//! direction = "outbound"     # outbound | inbound
//! ip_version = "v4"          # v4 | v6
//! protocol = "tcp"           # tcp | udp | icmp | icmpv6 | 0..=255
//! remote = ["@lan"]          # addresses, CIDRs, ranges, or one "@set"
//! local = "192.168.1.10"
//! remote_port = [80, 443, "8000-8080"]
//! local_port = 3389
//! app = 'C:\Program Files\App\app.exe'
//! loopback = false
//! ```
//!
//! Parsing uses the `toml` crate with spans, so every error names the file, line and column
//! of the value at fault ([`Diagnostic`]). Large address lists live in `@file`s, parsed line
//! by line (errors name the list file's line). The result is a [`weir_policy::Policy`],
//! validated by `Policy::validate` (every limit in `weir_policy::limits`).

mod addresses;
mod diagnostic;
mod fields;
mod locate;
mod print;
mod raw;

pub use addresses::{format_range, parse_address, parse_address_list, read_address_list};
pub use diagnostic::{Diagnostic, Diagnostics, MAX_DIAGNOSTICS};
pub use print::format;

use crate::paths::{self, DriveMap};
use addresses::address_condition;
use diagnostic::Positions;
use fields::{
    as_bool, as_str, parse_action, parse_direction, parse_ip_version, parse_protocol,
    port_condition,
};
use locate::{locate_validation, SetSource};
use raw::{elements, Field, RawPolicy, Scalar, Values};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use weir_policy::{Action, AddressSet, AppPath, Policy, Rule};

/// What to do with application paths.
#[derive(Clone, Copy)]
pub enum AppPaths<'a> {
    /// Convert them to NT device paths with this drive map (what `policy load` does).
    Convert(&'a dyn DriveMap),
    /// Keep them as written (encoded as UTF-16), for checking a policy on a machine that
    /// is not the target: the blob then matches only if the paths were NT paths already.
    Keep,
}

/// Options of [`parse`] and [`load_file`].
#[derive(Clone, Copy)]
pub struct LoadOptions<'a> {
    /// Application path handling.
    pub app_paths: AppPaths<'a>,
}

/// A parsed policy.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The policy, valid (`Policy::validate` passed).
    pub policy: Policy,
    /// Application paths kept as written with [`AppPaths::Keep`] (not NT paths).
    pub kept_paths: Vec<String>,
    /// Number of address-set entries read from `@file`s.
    pub file_entries: usize,
}

// ---------------------------------------------------------------------------------------------
// The parser.

struct Parser<'a> {
    pub(super) pos: Positions<'a>,
    pub(super) errors: Vec<Diagnostic>,
}

impl Parser<'_> {
    pub(super) fn err(&mut self, span: &Range<usize>, message: impl Into<String>) {
        if self.errors.len() < MAX_DIAGNOSTICS {
            let d = self.pos.span(span, message);
            self.errors.push(d);
        }
    }

    /// `Some(value)` or records the error at the field.
    pub(super) fn field<T>(
        &mut self,
        f: &Field,
        parse: impl FnOnce(&Scalar) -> Result<T, String>,
    ) -> Option<T> {
        let f = f.as_ref()?;
        match parse(f.get_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(&f.span(), e);
                None
            }
        }
    }
}

/// Parses policy text. `file` names it in errors; `@file` lists are resolved relative to
/// `base_dir` (the policy file's directory).
pub fn parse(
    file: &str,
    text: &str,
    base_dir: Option<&Path>,
    opts: &LoadOptions<'_>,
) -> Result<Loaded, Diagnostics> {
    let mut p = Parser {
        pos: Positions::new(file, text),
        errors: Vec::new(),
    };
    let raw: RawPolicy = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let message = e.message().trim_end().replace('\n', "; ");
            let d = match e.span() {
                Some(span) => p.pos.span(&span, message),
                None => Diagnostic {
                    file: file.to_string(),
                    line: 0,
                    column: 0,
                    message,
                },
            };
            return Err(Diagnostics(vec![d]));
        }
    };

    let mut policy = Policy::permit_all();
    if let Some(d) = &raw.defaults {
        if let Some(a) = p.field(&d.outbound, |v| parse_action(v, "defaults.outbound")) {
            policy.default_outbound = a;
        }
        if let Some(a) = p.field(&d.inbound, |v| parse_action(v, "defaults.inbound")) {
            policy.default_inbound = a;
        }
        if let Some(b) = p.field(&d.log_all, |v| as_bool(v, "defaults.log_all")) {
            policy.log_all = b;
        }
    }

    // Sets, in file order.
    let mut set_sources = Vec::new();
    let mut set_index = HashMap::new();
    let mut file_entries = 0usize;
    let mut sets: Vec<_> = raw.sets.iter().flatten().collect();
    sets.sort_by_key(|(k, _)| k.span().start);
    for (name, value) in sets {
        let mut entries = Vec::new();
        match value.get_ref() {
            Values::One(Scalar::Str(s)) if s.starts_with('@') => {
                let rel = s.get(1..).unwrap_or("");
                let path = base_dir.map_or_else(|| PathBuf::from(rel), |b| b.join(rel));
                match read_address_list(&path, rel) {
                    Ok(list) => {
                        file_entries += list.len();
                        entries = list;
                    }
                    Err(Diagnostics(ds)) => {
                        let first = ds.first().map(ToString::to_string).unwrap_or_default();
                        p.err(&value.span(), format!("set `{}`: {first}", name.get_ref()));
                        for d in ds.into_iter().skip(1) {
                            if p.errors.len() < MAX_DIAGNOSTICS {
                                p.errors.push(d);
                            }
                        }
                    }
                }
            }
            Values::One(_) => p.err(
                &value.span(),
                format!(
                    "set `{}` must be an array of addresses or \"@file\"",
                    name.get_ref()
                ),
            ),
            Values::Many(_) => {
                for (span, v) in elements(value) {
                    match as_str(v, "an address").and_then(parse_address) {
                        Ok(r) => entries.push(r),
                        Err(e) => p.err(&span, e),
                    }
                }
            }
        }
        let index = u32::try_from(set_sources.len()).unwrap_or(u32::MAX);
        set_index.insert(name.get_ref().clone(), index);
        set_sources.push(SetSource {
            name: name.get_ref().clone(),
            span: name.span(),
        });
        policy.sets.push(AddressSet {
            name: name.get_ref().clone(),
            entries,
        });
    }

    let mut kept_paths = Vec::new();
    let mut rule_spans = Vec::new();
    for (position, rule) in raw.rules.iter().enumerate() {
        let span = rule.span();
        rule_spans.push(span.clone());
        let r = rule.get_ref();
        let default_id = u32::try_from(position + 1).unwrap_or(u32::MAX);
        let id = p
            .field(&r.id, |v| match v {
                Scalar::Int(n) => u32::try_from(*n)
                    .map_err(|_| format!("rule id {n} is out of range (0 to 4294967295)")),
                other => Err(format!("rule id must be an integer, not {}", other.kind())),
            })
            .unwrap_or(default_id);
        let action = match &r.action {
            Some(_) => p
                .field(&r.action, |v| parse_action(v, "action"))
                .unwrap_or(Action::Block),
            None => {
                p.err(
                    &span,
                    format!("rule {id} has no `action` (\"permit\" or \"block\")"),
                );
                Action::Block
            }
        };
        let mut out = Rule::any(id, action);
        out.log = p.field(&r.log, |v| as_bool(v, "log")).unwrap_or(false);
        out.loopback = p.field(&r.loopback, |v| as_bool(v, "loopback"));
        out.direction = p.field(&r.direction, parse_direction);
        out.ip_version = p.field(&r.ip_version, parse_ip_version);
        out.protocol = p.field(&r.protocol, parse_protocol);
        out.remote_addr =
            address_condition(&mut p, &r.remote, "remote", &set_index, out.ip_version);
        out.local_addr = address_condition(&mut p, &r.local, "local", &set_index, out.ip_version);
        out.remote_port = port_condition(&mut p, &r.remote_port);
        out.local_port = port_condition(&mut p, &r.local_port);
        if let Some(app) = &r.app {
            match as_str(app.get_ref(), "app") {
                Err(e) => p.err(&app.span(), e),
                Ok(written) => {
                    let converted = match opts.app_paths {
                        AppPaths::Convert(drives) => {
                            paths::to_nt_path(written, drives).map_err(|e| e.to_string())
                        }
                        AppPaths::Keep => {
                            if !paths::is_nt_path(written) {
                                kept_paths.push(written.to_string());
                            }
                            Ok(written.to_string())
                        }
                    };
                    match converted {
                        Ok(s) if s.is_empty() => p.err(&app.span(), "app must not be empty"),
                        Ok(s) => out.app = Some(AppPath(s.encode_utf16().collect())),
                        Err(e) => p.err(&app.span(), format!("app `{written}`: {e}")),
                    }
                }
            }
        }
        policy.rules.push(out);
    }

    if p.errors.is_empty() {
        if let Err(v) = policy.validate() {
            let (span, message) = locate_validation(&v, &rule_spans, &set_sources);
            match span {
                Some(s) => p.err(&s, message),
                None => p.errors.push(Diagnostic {
                    file: file.to_string(),
                    line: 0,
                    column: 0,
                    message,
                }),
            }
        }
    }
    if p.errors.is_empty() {
        Ok(Loaded {
            policy,
            kept_paths,
            file_entries,
        })
    } else {
        p.errors.sort_by_key(|d| (d.file != file, d.line, d.column));
        Err(Diagnostics(p.errors))
    }
}

/// Reads and parses a policy file; `@file` lists are relative to its directory.
pub fn load_file(path: &Path, opts: &LoadOptions<'_>) -> Result<Loaded, Diagnostics> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: display.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse(&display, &text, path.parent(), opts)
}

#[cfg(test)]
mod tests;
