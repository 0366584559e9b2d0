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
//! name = "web out"           # shown by policy show, explain, stats --rules (at most 255 bytes)
//! description = "browsers may reach the web"   # at most 1024 bytes
//! enabled = true             # false: kept in the policy, never matches
//! action = "permit"          # required: permit | block
//! log = true
//! direction = "outbound"     # outbound | inbound
//! ip_version = "v4"          # v4 | v6
//! protocol = "tcp"           # tcp | udp | icmp | icmpv6 | 0..=255
//! remote = ["@lan"]          # addresses, CIDRs, ranges, or one "@set"
//! local = "192.168.1.10"
//! remote_port = [80, 443, "8000-8080"]
//! local_port = 3389
//! icmp_type = "echo-request"  # with protocol = "icmp"/"icmpv6": a name or 0-255 (local_port in WFP)
//! icmp_code = 0              # 0-255 (remote_port in WFP)
//! app = 'C:\Program Files\App\app.exe'
//! loopback = false
//! ```
//!
//! The full language (every field, what an absent field means, every warning code) is in
//! docs/policy-language.md.
//!
//! Parsing uses the `toml` crate with spans, so every error names the file, line and column
//! of the value at fault ([`Diagnostic`]). A structural error (bad TOML, unknown field) is
//! reported and its table skipped, so the errors in the rest of the file are reported too.
//! Warnings ([`Severity::Warning`]) flag what is accepted but may not do what it says. Large address lists live in `@file`s, parsed line
//! by line (errors name the list file's line). The result is a [`weir_policy::Policy`],
//! validated by `Policy::validate` (every limit in `weir_policy::limits`).

mod addresses;
mod diagnostic;
mod fields;
mod lint;
mod locate;
mod print;
mod raw;
pub mod source;

pub use addresses::{
    format_range, parse_address, parse_address_entry, parse_address_list, read_address_list,
    AddressList, AddressNote,
};
pub use diagnostic::{Diagnostic, Diagnostics, Severity, MAX_DIAGNOSTICS};
pub use print::format;

use crate::paths::{self, DriveMap};
use addresses::address_condition;
use diagnostic::Positions;
use fields::{
    as_bool, as_str, icmp_condition, parse_action, parse_direction, parse_ip_version,
    parse_protocol, port_condition, rule_text,
};
use locate::{locate_validation, RuleSource, SetSource};
use raw::{elements, Field, RawPolicy, Scalar, Values};
use serde::Serialize;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use weir_policy::{limits, Action, AddressSet, AppPath, Policy, Rule};

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

/// What one rule's application path became.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppConversion {
    /// The rule's id.
    pub rule: u32,
    /// The path as written in the file.
    pub written: String,
    /// The path put into the policy (the application id WFP reports, or `written` when kept).
    pub converted: String,
    /// Whether it was kept as written (not converted).
    pub kept: bool,
    /// Whether the OS resolved it (`FwpmGetAppIdFromFileName0` on Windows, for a program
    /// that exists) rather than the drive map.
    pub by_os: bool,
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
    /// What each application path became, in rule order.
    pub apps: Vec<AppConversion>,
    /// The warnings (none is an error), in file order.
    pub warnings: Diagnostics,
}

// ---------------------------------------------------------------------------------------------
// The parser.

struct Parser<'a> {
    pub(super) pos: Positions<'a>,
    pub(super) diags: Diagnostics,
    /// A structural error made the `[sets]` table unreadable: references to unknown sets are
    /// not reported (they may be defined there).
    pub(super) sets_broken: bool,
}

impl Parser<'_> {
    pub(super) fn err(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let d = self.pos.span(span, message);
        self.diags.push(d);
    }

    pub(super) fn warn(
        &mut self,
        span: &Range<usize>,
        code: &'static str,
        message: impl Into<String>,
    ) {
        let d = self.pos.span(span, message).warning(code);
        self.diags.push(d);
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

/// Whether `line` starts a TOML table (`[name]`, `[[name]]`), as far as recovery cares.
fn is_header(line: &str) -> bool {
    let t = line.trim_start().trim_start_matches('[').trim_start();
    line.trim_start().starts_with('[')
        && t.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || matches!(c, '"' | '\'' | '_'))
}

/// Replaces every byte of `range` except line ends with a space (offsets and UTF-8 stay valid).
fn blank(work: &mut [u8], range: Range<usize>) -> bool {
    let mut changed = false;
    for b in work.get_mut(range).into_iter().flatten() {
        if *b != b'\n' && *b != b' ' {
            *b = b' ';
            changed = true;
        }
    }
    changed
}

/// Deserializes the file; after each structural error, reports it, blanks the table it is in
/// (keeping a `[[rule]]` header, so later rules keep their positions) and tries again.
/// Returns the shape and the spans of the rules whose bodies were skipped.
fn read_raw(p: &mut Parser<'_>, text: &str) -> (RawPolicy, Vec<Range<usize>>) {
    let mut work = text.as_bytes().to_vec();
    let mut broken_rules = Vec::new();
    for _ in 0..=MAX_DIAGNOSTICS * 2 {
        let Ok(current) = std::str::from_utf8(&work) else {
            break;
        };
        let e = match toml::from_str::<RawPolicy>(current) {
            Ok(r) => return (r, broken_rules),
            Err(e) => e,
        };
        let message = e.message().trim_end().replace('\n', "; ");
        let Some(span) = e.span() else {
            p.diags.push(Diagnostic::file_error(&p.pos.file, message));
            break;
        };
        p.err(&span, message.clone());
        let mut starts = vec![0];
        starts.extend(current.match_indices('\n').map(|(i, _)| i + 1));
        let line_of = |off: usize| starts.partition_point(|&s| s <= off).saturating_sub(1);
        let text_of = |i: usize| {
            let a = starts.get(i).copied().unwrap_or(current.len());
            let b = starts.get(i + 1).copied().unwrap_or(current.len());
            current.get(a..b).unwrap_or("")
        };
        let mut at = line_of(span.start);
        // "expected `]`" at the start of the next table's header: the culprit is the table
        // before it (an unclosed array or inline table).
        let line_start = starts.get(at).copied().unwrap_or(0);
        let before = current.get(line_start..span.start).unwrap_or("x");
        if at > 0
            && is_header(text_of(at))
            && before.trim().is_empty()
            && message.contains("expected")
        {
            at -= 1;
        }
        let first = (0..=at).rev().find(|&i| is_header(text_of(i)));
        let last = (at + 1..starts.len()).find(|&i| is_header(text_of(i)));
        let end = last
            .and_then(|i| starts.get(i).copied())
            .unwrap_or(current.len());
        let header = first.map(|i| {
            text_of(i)
                .split('#')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        });
        let mut from = first.and_then(|i| starts.get(i).copied()).unwrap_or(0);
        match header.as_deref() {
            Some("[[rule]]") if first != Some(at) => {
                let body = first
                    .and_then(|i| starts.get(i + 1).copied())
                    .unwrap_or(end);
                broken_rules.push(from..end);
                from = body;
            }
            Some("[sets]") => p.sets_broken = true,
            _ => {}
        }
        if !blank(&mut work, from..end) {
            break;
        }
    }
    (RawPolicy::default(), broken_rules)
}

/// Parses policy text. `file` names it in errors; `@file` lists are resolved relative to
/// `base_dir` (the policy file's directory).
///
/// # Errors
/// Every error (and the warnings beside them), in file order, up to [`MAX_DIAGNOSTICS`].
pub fn parse(
    file: &str,
    text: &str,
    base_dir: Option<&Path>,
    opts: &LoadOptions<'_>,
) -> Result<Loaded, Diagnostics> {
    let mut p = Parser {
        pos: Positions::new(file, text),
        diags: Diagnostics::default(),
        sets_broken: false,
    };
    let (raw, broken_rules) = read_raw(&mut p, text);

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
        let mut list_file = None;
        match value.get_ref() {
            Values::One(Scalar::Str(s)) if s.starts_with('@') => {
                let rel = s.get(1..).unwrap_or("");
                let path = base_dir.map_or_else(|| PathBuf::from(rel), |b| b.join(rel));
                list_file = Some(rel.to_string());
                match read_address_list(&path, rel) {
                    Ok(list) => {
                        file_entries += list.entries.len();
                        entries = list.entries;
                        for w in list.warnings.list {
                            p.diags.push(w);
                        }
                        p.diags.omitted += list.warnings.omitted;
                    }
                    Err(ds) => {
                        let first = ds.list.first().map(ToString::to_string).unwrap_or_default();
                        p.err(&value.span(), format!("set `{}`: {first}", name.get_ref()));
                        for d in ds.list.into_iter().skip(1) {
                            p.diags.push(d);
                        }
                        p.diags.omitted += ds.omitted;
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
                    match as_str(v, "an address").and_then(parse_address_entry) {
                        Ok((r, note)) => {
                            if let Some(n) = note {
                                p.warn(&span, n.code, n.message);
                            }
                            entries.push(r);
                        }
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
            value: value.span(),
            list_file,
        });
        policy.sets.push(AddressSet {
            name: name.get_ref().clone(),
            entries,
        });
    }

    let mut kept_paths = Vec::new();
    let mut apps = Vec::new();
    let mut rule_sources = Vec::new();
    for (position, rule) in raw.rules.iter().enumerate() {
        let span = rule.span();
        let r = rule.get_ref();
        let default_id = u32::try_from(position + 1).unwrap_or(u32::MAX);
        let broken = broken_rules.iter().any(|b| b.contains(&span.start));
        let id = p
            .field(&r.id, |v| match v {
                Scalar::Int(n) => u32::try_from(*n)
                    .map_err(|_| format!("rule id {n} is out of range (0 to 4294967295)")),
                other => Err(format!("rule id must be an integer, not {}", other.kind())),
            })
            .unwrap_or(default_id);
        let span_of = |f: &Option<toml::Spanned<Values>>| f.as_ref().map(toml::Spanned::span);
        let scalar_span = |f: &Field| f.as_ref().map(toml::Spanned::span);
        rule_sources.push(RuleSource {
            span: span.clone(),
            id_span: scalar_span(&r.id),
            name: scalar_span(&r.name),
            description: scalar_span(&r.description),
            remote: span_of(&r.remote),
            local: span_of(&r.local),
            remote_port: span_of(&r.remote_port).or_else(|| span_of(&r.icmp_code)),
            local_port: span_of(&r.local_port).or_else(|| span_of(&r.icmp_type)),
            app: scalar_span(&r.app),
        });
        let action = match &r.action {
            Some(_) => p
                .field(&r.action, |v| parse_action(v, "action"))
                .unwrap_or(Action::Block),
            // Its body was skipped after a structural error, already reported.
            None if broken => Action::Block,
            None => {
                p.err(
                    &span,
                    format!("rule {id} has no `action` (\"permit\" or \"block\")"),
                );
                Action::Block
            }
        };
        let mut out = Rule::any(id, action);
        out.name = p
            .field(&r.name, |v| rule_text(v, "name", limits::MAX_RULE_NAME_BYTES))
            .unwrap_or_default();
        out.description = p
            .field(&r.description, |v| {
                rule_text(v, "description", limits::MAX_RULE_DESCRIPTION_BYTES)
            })
            .unwrap_or_default();
        out.enabled = p.field(&r.enabled, |v| as_bool(v, "enabled")).unwrap_or(true);
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
        if r.icmp_type.is_some() {
            out.local_port = icmp_condition(
                &mut p,
                &r.icmp_type,
                "icmp_type",
                out.protocol,
                &r.local_port,
                "local_port",
            );
        }
        if r.icmp_code.is_some() {
            out.remote_port = icmp_condition(
                &mut p,
                &r.icmp_code,
                "icmp_code",
                out.protocol,
                &r.remote_port,
                "remote_port",
            );
        }
        if let Some(app) = &r.app {
            match as_str(app.get_ref(), "app") {
                Err(e) => p.err(&app.span(), e),
                Ok(written) => {
                    let mut kept = false;
                    let mut by_os = false;
                    let converted = match opts.app_paths {
                        // The conversion's refusals hold everywhere (check equals load);
                        // an id the OS gives for an installed program is preferred.
                        AppPaths::Convert(drives) => paths::to_nt_path(written, drives)
                            .map(|nt| {
                                drives.app_id(written).map_or(nt, |os| {
                                    by_os = true;
                                    os
                                })
                            })
                            .map_err(|e| e.to_string()),
                        AppPaths::Keep => paths::check_form(written)
                            .map(|()| {
                                if !paths::is_nt_path(written) {
                                    kept = true;
                                    kept_paths.push(written.to_string());
                                }
                                written.to_string()
                            })
                            .map_err(|e| e.to_string()),
                    };
                    match converted {
                        Ok(s) if s.is_empty() => p.err(&app.span(), "app must not be empty"),
                        Ok(s) => {
                            out.app = Some(AppPath(s.encode_utf16().collect()));
                            apps.push(AppConversion {
                                rule: id,
                                written: written.to_string(),
                                converted: s,
                                kept,
                                by_os,
                            });
                        }
                        Err(e) => p.err(&app.span(), format!("app `{written}`: {e}")),
                    }
                }
            }
        }
        policy.rules.push(out);
    }

    if !p.diags.has_errors() {
        if let Err(v) = policy.validate() {
            let (span, message) = locate_validation(&v, &policy, &rule_sources, &set_sources);
            match span {
                Some(s) => p.err(&s, message),
                None => p.diags.push(Diagnostic::file_error(file, message)),
            }
        }
    }
    if !p.diags.has_errors() {
        lint::lint(&mut p, &policy, &rule_sources, &set_sources);
    }
    p.diags
        .list
        .sort_by_key(|d| (d.file != file, d.line, d.column));
    if p.diags.has_errors() {
        Err(p.diags)
    } else {
        Ok(Loaded {
            policy,
            kept_paths,
            file_entries,
            apps,
            warnings: p.diags,
        })
    }
}

/// A protocol as `weirctl` options and the file write it: `tcp`, `udp`, `icmp`, `icmpv6` or
/// a number 0-255.
///
/// # Errors
/// Any other text, with the accepted forms.
pub fn parse_protocol_name(s: &str) -> Result<u8, String> {
    match s.trim().parse::<i64>() {
        Ok(n) => parse_protocol(&Scalar::Int(n)),
        Err(_) => parse_protocol(&Scalar::Str(s.trim().to_string())),
    }
}

/// Reads and parses a policy file; `@file` lists are relative to its directory. The file may
/// be UTF-8 (with or without BOM) or UTF-16 with BOM, with LF or CRLF line ends.
///
/// # Errors
/// As [`parse`]; a file that cannot be read or decoded is one diagnostic.
pub fn load_file(path: &Path, opts: &LoadOptions<'_>) -> Result<Loaded, Diagnostics> {
    let display = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostics::one(Diagnostic::file_error(
            &display,
            format!("cannot read: {e}"),
        ))
    })?;
    let text = source::decode(&display, &bytes).map_err(Diagnostics::one)?;
    parse(&display, &text, path.parent(), opts)
}

#[cfg(test)]
mod tests;
