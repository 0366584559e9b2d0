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

use crate::paths::{self, DriveMap};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use weir_policy::{
    Action, AddrCond, AddrRange, AddressSet, AppPath, Direction, IpVersion, Policy, PortCond, Rule,
    ValidationError,
};

/// One error, at a position of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line; 0 when the error concerns the whole file.
    pub line: usize,
    /// 1-based column in characters; 0 with `line`.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every error found in one policy (at most [`MAX_DIAGNOSTICS`]), in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

/// More errors than this are not reported (the first ones are the useful ones).
pub const MAX_DIAGNOSTICS: usize = 20;

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

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
// Positions.

/// Maps byte offsets of one text to 1-based line and column.
struct Positions<'a> {
    file: String,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Positions<'a> {
    fn new(file: &str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            file: file.to_string(),
            text,
            line_starts,
        }
    }

    fn at(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset.min(self.text.len()))
            .map_or(1, |s| s.chars().count() + 1);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    fn span(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.at(span.start, message)
    }
}

// ---------------------------------------------------------------------------------------------
// Raw TOML shapes. Scalars and lists are read through our own visitors so each element keeps
// its span (serde's untagged enums would lose it).

#[derive(Clone, Debug)]
enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Scalar {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::Int(_) => "an integer",
            Scalar::Bool(_) => "a boolean",
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an integer or a boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(i64::try_from(v).unwrap_or(i64::MAX)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

#[derive(Clone, Debug)]
enum Values {
    One(Scalar),
    Many(Vec<Spanned<Scalar>>),
}

struct ValuesVisitor;

impl<'de> Visitor<'de> for ValuesVisitor {
    type Value = Values;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an integer or an array of them")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Values, E> {
        Ok(Values::One(Scalar::Str(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Values, E> {
        Ok(Values::One(Scalar::Str(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Values, E> {
        Ok(Values::One(Scalar::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Values, E> {
        Ok(Values::One(Scalar::Int(
            i64::try_from(v).unwrap_or(i64::MAX),
        )))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Values, E> {
        Ok(Values::One(Scalar::Bool(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Spanned<Scalar>>()? {
            out.push(v);
        }
        Ok(Values::Many(out))
    }
}

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValuesVisitor)
    }
}

type Field = Option<Spanned<Scalar>>;
type ListField = Option<Spanned<Values>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    outbound: Field,
    inbound: Field,
    log_all: Field,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Field,
    action: Field,
    log: Field,
    direction: Field,
    ip_version: Field,
    protocol: Field,
    remote: ListField,
    local: ListField,
    remote_port: ListField,
    local_port: ListField,
    app: Field,
    loopback: Field,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    defaults: Option<RawDefaults>,
    sets: Option<BTreeMap<Spanned<String>, Spanned<Values>>>,
    #[serde(default, rename = "rule")]
    rules: Vec<Spanned<RawRule>>,
}

// ---------------------------------------------------------------------------------------------
// Scalars.

fn addr_bits(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(v) => (false, u128::from(v.to_bits())),
        IpAddr::V6(v) => (true, v.to_bits()),
    }
}

/// Parses one address entry: `a.b.c.d`, `a.b.c.d/n`, `a.b.c.d-e.f.g.h` or the IPv6 forms.
/// CIDRs with host bits set are accepted and cover their whole network (`10.1.2.3/8` =
/// `10.0.0.0/8`), as blocklists commonly write them.
pub fn parse_address(s: &str) -> Result<AddrRange, String> {
    let s = s.trim();
    if s.contains('/') {
        let net: ipnet::IpNet = s
            .parse()
            .map_err(|_| format!("`{s}` is not a valid CIDR (a.b.c.d/0-32 or IPv6/0-128)"))?;
        return Ok(match net {
            ipnet::IpNet::V4(n) => AddrRange::V4 {
                lo: n.network().to_bits(),
                hi: n.broadcast().to_bits(),
            },
            ipnet::IpNet::V6(n) => AddrRange::V6 {
                lo: n.network().to_bits(),
                hi: n.broadcast().to_bits(),
            },
        });
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (a.trim(), b.trim());
        let lo: IpAddr = a
            .parse()
            .map_err(|_| format!("`{a}` in range `{s}` is not an IP address"))?;
        let hi: IpAddr = b
            .parse()
            .map_err(|_| format!("`{b}` in range `{s}` is not an IP address"))?;
        let ((v6a, x), (v6b, y)) = (addr_bits(lo), addr_bits(hi));
        if v6a != v6b {
            return Err(format!("address range {s} mixes IPv4 and IPv6"));
        }
        if x > y {
            return Err(format!("address range {s} is reversed"));
        }
        return Ok(range_of(v6a, x, y));
    }
    let a: IpAddr = s.parse().map_err(|_| {
        format!("`{s}` is not an IP address, CIDR (addr/len) or range (first-last)")
    })?;
    let (v6, x) = addr_bits(a);
    Ok(range_of(v6, x, x))
}

fn range_of(v6: bool, lo: u128, hi: u128) -> AddrRange {
    if v6 {
        AddrRange::V6 { lo, hi }
    } else {
        // Both came from u32 values.
        AddrRange::V4 {
            lo: u32::try_from(lo).unwrap_or(u32::MAX),
            hi: u32::try_from(hi).unwrap_or(u32::MAX),
        }
    }
}

fn parse_port_number(s: &str) -> Result<u16, String> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a port number"))?;
    u16::try_from(n).map_err(|_| format!("port {n} is out of range (0 to 65535)"))
}

/// Parses a port entry: `80`, `"80"` or `"8000-8080"`.
fn parse_port(v: &Scalar) -> Result<(u16, u16), String> {
    match v {
        Scalar::Int(n) => {
            let p =
                u16::try_from(*n).map_err(|_| format!("port {n} is out of range (0 to 65535)"))?;
            Ok((p, p))
        }
        Scalar::Str(s) => {
            if let Some((a, b)) = s.split_once('-') {
                let (lo, hi) = (parse_port_number(a)?, parse_port_number(b)?);
                if lo > hi {
                    return Err(format!("port range {lo}-{hi} is reversed"));
                }
                Ok((lo, hi))
            } else {
                let p = parse_port_number(s)?;
                Ok((p, p))
            }
        }
        other => Err(format!(
            "a port is a number or a \"first-last\" string, not {}",
            other.kind()
        )),
    }
}

fn as_str<'s>(v: &'s Scalar, what: &str) -> Result<&'s str, String> {
    match v {
        Scalar::Str(s) => Ok(s),
        other => Err(format!("{what} must be a string, not {}", other.kind())),
    }
}

fn as_bool(v: &Scalar, what: &str) -> Result<bool, String> {
    match v {
        Scalar::Bool(b) => Ok(*b),
        other => Err(format!(
            "{what} must be true or false, not {}",
            other.kind()
        )),
    }
}

fn parse_action(v: &Scalar, what: &str) -> Result<Action, String> {
    match as_str(v, what)? {
        "permit" => Ok(Action::Permit),
        "block" => Ok(Action::Block),
        s => Err(format!(
            "{what} must be \"permit\" or \"block\", not \"{s}\""
        )),
    }
}

fn parse_protocol(v: &Scalar) -> Result<u8, String> {
    match v {
        Scalar::Int(n) => {
            u8::try_from(*n).map_err(|_| format!("protocol {n} is out of range (0 to 255)"))
        }
        Scalar::Str(s) => match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(6),
            "udp" => Ok(17),
            "icmp" => Ok(1),
            "icmpv6" => Ok(58),
            _ => Err(format!(
                "protocol must be tcp, udp, icmp, icmpv6 or a number 0-255, not \"{s}\""
            )),
        },
        Scalar::Bool(_) => Err("protocol must be a name or a number, not a boolean".into()),
    }
}

fn parse_ip_version(v: &Scalar) -> Result<IpVersion, String> {
    match v {
        Scalar::Int(4) => Ok(IpVersion::V4),
        Scalar::Int(6) => Ok(IpVersion::V6),
        Scalar::Str(s) if s == "v4" || s == "ipv4" => Ok(IpVersion::V4),
        Scalar::Str(s) if s == "v6" || s == "ipv6" => Ok(IpVersion::V6),
        _ => Err("ip_version must be \"v4\" or \"v6\"".into()),
    }
}

fn parse_direction(v: &Scalar) -> Result<Direction, String> {
    match as_str(v, "direction")? {
        "outbound" => Ok(Direction::Outbound),
        "inbound" => Ok(Direction::Inbound),
        s => Err(format!(
            "direction must be \"outbound\" or \"inbound\", not \"{s}\""
        )),
    }
}

/// Elements of a scalar-or-list field, each with its span.
fn elements(field: &Spanned<Values>) -> Vec<(Range<usize>, &Scalar)> {
    match field.get_ref() {
        Values::One(v) => vec![(field.span(), v)],
        Values::Many(vs) => vs.iter().map(|v| (v.span(), v.get_ref())).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The parser.

struct Parser<'a> {
    pos: Positions<'a>,
    errors: Vec<Diagnostic>,
}

impl Parser<'_> {
    fn err(&mut self, span: &Range<usize>, message: impl Into<String>) {
        if self.errors.len() < MAX_DIAGNOSTICS {
            let d = self.pos.span(span, message);
            self.errors.push(d);
        }
    }

    /// `Some(value)` or records the error at the field.
    fn field<T>(
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

/// A set as read, before rules refer to it.
struct SetSource {
    name: String,
    span: Range<usize>,
}

/// Reads an address list file: one address, CIDR or range per line; `#` starts a comment.
/// Errors name the list file and its line.
pub fn read_address_list(path: &Path, display: &str) -> Result<Vec<AddrRange>, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: display.to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse_address_list(&text, display)
}

/// [`read_address_list`] on text already read.
pub fn parse_address_list(text: &str, display: &str) -> Result<Vec<AddrRange>, Diagnostics> {
    let mut out = Vec::with_capacity(text.len() / 12);
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("");
        let entry = content.trim();
        if entry.is_empty() {
            continue;
        }
        match parse_address(entry) {
            Ok(r) => out.push(r),
            Err(message) => {
                let column = line
                    .find(entry)
                    .map_or(1, |b| line.get(..b).map_or(0, |s| s.chars().count()) + 1);
                if errors.len() < MAX_DIAGNOSTICS {
                    errors.push(Diagnostic {
                        file: display.to_string(),
                        line: i + 1,
                        column,
                        message,
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Diagnostics(errors))
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

/// Where in the file a model-level error is, and its message in the file's terms.
fn locate_validation(
    v: &ValidationError,
    rules: &[Range<usize>],
    sets: &[SetSource],
) -> (Option<Range<usize>>, String) {
    use weir_policy::limits::*;
    let rule_at = |i: &u32| rules.get(*i as usize).cloned();
    let set_at = |i: &u32| sets.get(*i as usize);
    match v {
        ValidationError::TooManyAddrRanges { rule } => {
            (rule_at(rule), format!("this rule has more than {MAX_ADDR_RANGES} address ranges; put them in a [sets] entry"))
        }
        ValidationError::TooManyPortRanges { rule } => {
            (rule_at(rule), format!("this rule has more than {MAX_PORT_RANGES} port ranges"))
        }
        ValidationError::AppPathTooLong { rule } => {
            (rule_at(rule), format!("application path longer than {MAX_APP_PATH_UNITS} UTF-16 units"))
        }
        ValidationError::EmptyAddrRanges { rule } => (rule_at(rule), "empty address list (omit the field to match any address)".into()),
        ValidationError::EmptyPortRanges { rule } => (rule_at(rule), "empty port list (omit the field to match any port)".into()),
        ValidationError::EmptyAppPath { rule } => (rule_at(rule), "empty application path".into()),
        ValidationError::AddrRangeOrder { rule } | ValidationError::PortRangeOrder { rule } | ValidationError::SetIndex { rule, .. } => {
            (rule_at(rule), v.to_string())
        }
        ValidationError::SetNameTooLong { set } => {
            (set_at(set).map(|s| s.span.clone()), format!("set name longer than {MAX_SET_NAME_BYTES} bytes"))
        }
        ValidationError::SetNameEmpty { set } | ValidationError::SetEntryOrder { set } => {
            (set_at(set).map(|s| s.span.clone()), format!("set `{}`: {v}", set_at(set).map_or("", |s| s.name.as_str())))
        }
        ValidationError::TooManyRules => (None, format!("more than {MAX_RULES} rules (the limit)")),
        ValidationError::TooManySets => (None, format!("more than {MAX_SETS} address sets (the limit)")),
        ValidationError::TooManySetEntries => {
            (None, format!("more than {MAX_SET_ENTRIES_TOTAL} address-set entries in total (the limit)"))
        }
        _ => (None, v.to_string()),
    }
}

fn address_condition(
    p: &mut Parser<'_>,
    field: &ListField,
    what: &str,
    sets: &HashMap<String, u32>,
    version: Option<IpVersion>,
) -> Option<AddrCond> {
    let field = field.as_ref()?;
    let items = elements(field);
    let mut ranges = Vec::new();
    let mut set_ref = None;
    for (span, v) in &items {
        let s = match as_str(v, "an address") {
            Ok(s) => s,
            Err(e) => {
                p.err(span, e);
                continue;
            }
        };
        if let Some(name) = s.strip_prefix('@') {
            if items.len() != 1 {
                p.err(span, format!("a set reference must be the only value of `{what}` (put the other addresses into the set)"));
                continue;
            }
            match sets.get(name) {
                Some(i) => set_ref = Some(*i),
                None => p.err(
                    span,
                    format!("no address set named `{name}` (define it under [sets])"),
                ),
            }
            continue;
        }
        match parse_address(s) {
            Ok(r) => {
                if let Some(v) = version {
                    if r.version() != v {
                        let (has, says) = match v {
                            IpVersion::V4 => ("IPv6", "v4"),
                            IpVersion::V6 => ("IPv4", "v6"),
                        };
                        p.err(span, format!("`{s}` is {has} but the rule says ip_version = \"{says}\": it could never match"));
                        continue;
                    }
                }
                ranges.push(r);
            }
            Err(e) => p.err(span, e),
        }
    }
    if let Some(i) = set_ref {
        return Some(AddrCond::Set(i));
    }
    if items.is_empty() {
        p.err(
            &field.span(),
            format!("`{what}` is an empty list (omit it to match any address)"),
        );
        return None;
    }
    (!ranges.is_empty()).then_some(AddrCond::Ranges(ranges))
}

fn port_condition(p: &mut Parser<'_>, field: &ListField) -> Option<PortCond> {
    let field = field.as_ref()?;
    let items = elements(field);
    if items.is_empty() {
        p.err(
            &field.span(),
            "empty port list (omit the field to match any port)",
        );
        return None;
    }
    let mut ranges = Vec::new();
    for (span, v) in items {
        match parse_port(v) {
            Ok(r) => ranges.push(r),
            Err(e) => p.err(&span, e),
        }
    }
    (!ranges.is_empty()).then_some(PortCond { ranges })
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

// ---------------------------------------------------------------------------------------------
// Printing.

/// A TOML string literal for `s`: literal (`'...'`) when possible, so Windows paths stay
/// readable; otherwise a basic string with escapes.
fn quote(s: &str) -> String {
    if !s.contains('\'') && !s.chars().any(char::is_control) {
        return format!("'{s}'");
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        quote(s)
    }
}

/// An address range as the shortest of `addr`, `addr/len` or `first-last`.
pub fn format_range(r: &AddrRange) -> String {
    fn prefix(lo: u128, hi: u128, bits: u32) -> Option<u32> {
        let span = lo ^ hi;
        let ones = span.count_ones();
        // `span` must be a run of low ones and `lo` aligned to it.
        (span.trailing_ones() == ones && lo & span == 0 && hi == lo | span).then(|| bits - ones)
    }
    match *r {
        AddrRange::V4 { lo, hi } => {
            let (a, b) = (
                std::net::Ipv4Addr::from_bits(lo),
                std::net::Ipv4Addr::from_bits(hi),
            );
            if lo == hi {
                a.to_string()
            } else if let Some(n) = prefix(lo.into(), hi.into(), 32) {
                format!("{a}/{n}")
            } else {
                format!("{a}-{b}")
            }
        }
        AddrRange::V6 { lo, hi } => {
            let (a, b) = (
                std::net::Ipv6Addr::from_bits(lo),
                std::net::Ipv6Addr::from_bits(hi),
            );
            if lo == hi {
                a.to_string()
            } else if let Some(n) = prefix(lo, hi, 128) {
                format!("{a}/{n}")
            } else {
                format!("{a}-{b}")
            }
        }
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Permit => "permit",
        Action::Block => "block",
    }
}

fn protocol_text(p: u8) -> String {
    match p {
        6 => "\"tcp\"".into(),
        17 => "\"udp\"".into(),
        1 => "\"icmp\"".into(),
        58 => "\"icmpv6\"".into(),
        n => n.to_string(),
    }
}

fn ports_text(c: &PortCond) -> String {
    let items: Vec<String> = c
        .ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("\"{lo}-{hi}\"")
            }
        })
        .collect();
    if items.len() == 1 {
        items.concat()
    } else {
        format!("[{}]", items.join(", "))
    }
}

/// Prints `policy` in the file format [`parse`] reads, so that parsing the output (with
/// NT paths, which [`AppPaths::Convert`] keeps) gives the same policy. Sets are printed
/// inline. With `drives`, each application path that maps back to a drive letter gets a
/// comment with the DOS form.
pub fn format(policy: &Policy, drives: Option<&dyn DriveMap>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "[defaults]");
    let _ = writeln!(
        out,
        "outbound = \"{}\"",
        action_name(policy.default_outbound)
    );
    let _ = writeln!(out, "inbound = \"{}\"", action_name(policy.default_inbound));
    let _ = writeln!(out, "log_all = {}", policy.log_all);

    // Set names as printed: unique (the model allows duplicates; TOML keys do not).
    let mut names: Vec<String> = Vec::new();
    for s in &policy.sets {
        let mut name = s.name.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{}~{n}", s.name);
            n += 1;
        }
        names.push(name);
    }
    if !policy.sets.is_empty() {
        let _ = writeln!(out, "\n[sets]");
        for (s, name) in policy.sets.iter().zip(&names) {
            if s.entries.is_empty() {
                let _ = writeln!(out, "{} = []", key(name));
                continue;
            }
            let _ = writeln!(out, "{} = [", key(name));
            for e in &s.entries {
                let _ = writeln!(out, "    \"{}\",", format_range(e));
            }
            let _ = writeln!(out, "]");
        }
    }

    let addr_text = |c: &AddrCond| -> String {
        match c {
            AddrCond::Set(i) => {
                let name = names.get(*i as usize).cloned().unwrap_or_default();
                quote(&format!("@{name}"))
            }
            AddrCond::Ranges(rs) => {
                let items: Vec<String> = rs
                    .iter()
                    .map(|r| format!("\"{}\"", format_range(r)))
                    .collect();
                if items.len() == 1 {
                    items.concat()
                } else {
                    format!("[{}]", items.join(", "))
                }
            }
        }
    };
    for r in &policy.rules {
        let _ = writeln!(out, "\n[[rule]]");
        let _ = writeln!(out, "id = {}", r.id);
        let _ = writeln!(out, "action = \"{}\"", action_name(r.action));
        if r.log {
            let _ = writeln!(out, "log = true");
        }
        if let Some(d) = r.direction {
            let _ = writeln!(
                out,
                "direction = \"{}\"",
                if d == Direction::Outbound {
                    "outbound"
                } else {
                    "inbound"
                }
            );
        }
        if let Some(v) = r.ip_version {
            let _ = writeln!(
                out,
                "ip_version = \"{}\"",
                if v == IpVersion::V4 { "v4" } else { "v6" }
            );
        }
        if let Some(p) = r.protocol {
            let _ = writeln!(out, "protocol = {}", protocol_text(p));
        }
        if let Some(c) = &r.remote_addr {
            let _ = writeln!(out, "remote = {}", addr_text(c));
        }
        if let Some(c) = &r.local_addr {
            let _ = writeln!(out, "local = {}", addr_text(c));
        }
        if let Some(c) = &r.remote_port {
            let _ = writeln!(out, "remote_port = {}", ports_text(c));
        }
        if let Some(c) = &r.local_port {
            let _ = writeln!(out, "local_port = {}", ports_text(c));
        }
        if let Some(app) = &r.app {
            let s = String::from_utf16_lossy(app.units());
            if let Some(dos) = drives.and_then(|d| paths::to_dos_path(&s, d)) {
                let _ = writeln!(out, "# {dos}");
            }
            let _ = writeln!(out, "app = {}", quote(&s));
        }
        if let Some(l) = r.loopback {
            let _ = writeln!(out, "loopback = {l}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::FixedDriveMap;

    fn drives() -> FixedDriveMap {
        FixedDriveMap::new([("C:", "\\Device\\HarddiskVolume3")])
    }

    fn parse_with(text: &str) -> Result<Loaded, Diagnostics> {
        let d = drives();
        parse(
            "p.toml",
            text,
            None,
            &LoadOptions {
                app_paths: AppPaths::Convert(&d),
            },
        )
    }

    fn one_error(text: &str) -> Diagnostic {
        let e = parse_with(text).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        e.0.into_iter().next().unwrap()
    }

    #[test]
    fn full_rule_parses_into_the_model() {
        let text = r#"
[defaults]
outbound = "block"
inbound = "block"
log_all = true

[sets]
lan = ["10.0.0.0/8", "192.168.1.1-192.168.1.9", "fd00::/8", "1.2.3.4"]

[[rule]]
id = 7
action = "permit"
log = true
direction = "outbound"
protocol = "tcp"
remote = "@lan"
remote_port = [80, "8000-8080"]
local_port = 5000
app = 'C:\Program Files\App\app.exe'
loopback = false

[[rule]]
action = "block"
ip_version = "v6"
protocol = 58
local = ["::1", "fe80::/10"]
"#;
        let l = parse_with(text).unwrap();
        let p = &l.policy;
        assert_eq!(
            (p.default_outbound, p.default_inbound, p.log_all),
            (Action::Block, Action::Block, true)
        );
        assert_eq!(p.sets.len(), 1);
        assert_eq!(p.sets[0].name, "lan");
        assert_eq!(
            p.sets[0].entries,
            vec![
                AddrRange::V4 {
                    lo: 0x0A00_0000,
                    hi: 0x0AFF_FFFF
                },
                AddrRange::V4 {
                    lo: 0xC0A8_0101,
                    hi: 0xC0A8_0109
                },
                AddrRange::V6 {
                    lo: 0xfd << 120,
                    hi: (0xfd << 120) | (u128::MAX >> 8)
                },
                AddrRange::V4 {
                    lo: 0x0102_0304,
                    hi: 0x0102_0304
                },
            ]
        );
        let r = &p.rules[0];
        assert_eq!((r.id, r.action, r.log), (7, Action::Permit, true));
        assert_eq!(r.direction, Some(Direction::Outbound));
        assert_eq!(r.protocol, Some(6));
        assert_eq!(r.remote_addr, Some(AddrCond::Set(0)));
        assert_eq!(
            r.remote_port,
            Some(PortCond {
                ranges: vec![(80, 80), (8000, 8080)]
            })
        );
        assert_eq!(
            r.local_port,
            Some(PortCond {
                ranges: vec![(5000, 5000)]
            })
        );
        let app = String::from_utf16(r.app.as_ref().unwrap().units()).unwrap();
        assert_eq!(
            app,
            "\\Device\\HarddiskVolume3\\Program Files\\App\\app.exe"
        );
        assert_eq!(r.loopback, Some(false));
        let r = &p.rules[1];
        assert_eq!(r.id, 2, "an absent id is the 1-based position");
        assert_eq!((r.ip_version, r.protocol), (Some(IpVersion::V6), Some(58)));
        assert_eq!(
            r.local_addr,
            Some(AddrCond::Ranges(vec![
                AddrRange::V6 { lo: 1, hi: 1 },
                AddrRange::V6 {
                    lo: 0xfe80 << 112,
                    hi: (0xfe80 << 112) | (u128::MAX >> 10)
                },
            ]))
        );
        assert!(l.kept_paths.is_empty());
    }

    #[test]
    fn empty_file_is_the_permit_all_policy() {
        assert_eq!(parse_with("").unwrap().policy, Policy::permit_all());
    }

    #[test]
    fn reversed_port_range_names_line_and_column() {
        let d = one_error("[[rule]]\naction = \"block\"\nremote_port = [80, \"9000-80\"]\n");
        assert_eq!((d.line, d.column), (3, 20));
        assert_eq!(d.message, "port range 9000-80 is reversed");
        assert_eq!(d.to_string(), "p.toml:3:20: port range 9000-80 is reversed");
    }

    #[test]
    fn value_errors_point_at_the_value() {
        let cases: &[(&str, (usize, usize), &str)] = &[
            ("[[rule]]\naction = \"allow\"\n", (2, 10), "action must be \"permit\" or \"block\", not \"allow\""),
            ("[[rule]]\naction = \"block\"\nremote_port = 70000\n", (3, 15), "port 70000 is out of range (0 to 65535)"),
            ("[[rule]]\naction = \"block\"\nprotocol = \"sctp\"\n", (3, 12), "protocol must be tcp, udp, icmp, icmpv6 or a number 0-255, not \"sctp\""),
            ("[[rule]]\naction = \"block\"\nremote = \"10.0.0.300\"\n", (3, 10), "`10.0.0.300` is not an IP address, CIDR (addr/len) or range (first-last)"),
            ("[[rule]]\naction = \"block\"\nremote = \"10.0.0.9-10.0.0.1\"\n", (3, 10), "address range 10.0.0.9-10.0.0.1 is reversed"),
            ("[[rule]]\naction = \"block\"\nremote = \"10.0.0.0/33\"\n", (3, 10), "`10.0.0.0/33` is not a valid CIDR (a.b.c.d/0-32 or IPv6/0-128)"),
            ("[[rule]]\naction = \"block\"\nremote = \"@nope\"\n", (3, 10), "no address set named `nope` (define it under [sets])"),
            ("[[rule]]\naction = \"block\"\nip_version = \"v4\"\nremote = \"::1\"\n", (4, 10), "`::1` is IPv6 but the rule says ip_version = \"v4\": it could never match"),
            ("[[rule]]\naction = \"block\"\napp = 'Z:\\x.exe'\n", (3, 7), "app `Z:\\x.exe`: drive Z: is not mapped on this machine"),
            ("[[rule]]\naction = \"block\"\napp = 'x.exe'\n", (3, 7), "app `x.exe`: application path must be absolute (C:\\dir\\app.exe, \\\\server\\share\\app.exe or \\Device\\...)"),
            ("[[rule]]\naction = \"block\"\nid = -1\n", (3, 6), "rule id -1 is out of range (0 to 4294967295)"),
            ("[[rule]]\naction = \"block\"\nlog = 1\n", (3, 7), "log must be true or false, not an integer"),
            ("[defaults]\noutbound = \"deny\"\n", (2, 12), "defaults.outbound must be \"permit\" or \"block\", not \"deny\""),
        ];
        for (text, (line, column), message) in cases {
            let d = one_error(text);
            assert_eq!(
                (d.line, d.column, d.message.as_str()),
                (*line, *column, *message),
                "{text}"
            );
        }
    }

    #[test]
    fn toml_and_shape_errors_have_positions() {
        let d = one_error("[[rule]]\naction = \"block\"\nremote_prot = 80\n");
        assert_eq!(d.line, 3);
        assert!(
            d.message.contains("unknown field `remote_prot`"),
            "{}",
            d.message
        );
        let d = one_error("[[rule]\n");
        assert_eq!(d.line, 1);
        let d = one_error("[[rule]]\nid = 3\n");
        assert_eq!(
            (d.line, d.message.as_str()),
            (1, "rule 3 has no `action` (\"permit\" or \"block\")")
        );
        let d = one_error("[[rule]]\naction = \"block\"\nremote = [\"@a\", \"1.2.3.4\"]\n[sets]\na = [\"1.1.1.1\"]\n");
        assert_eq!((d.line, d.column), (3, 11));
        assert!(
            d.message
                .starts_with("a set reference must be the only value"),
            "{}",
            d.message
        );
    }

    #[test]
    fn several_errors_are_all_reported_in_order() {
        let e = parse_with("[[rule]]\naction = \"x\"\nremote_port = \"5-1\"\n[[rule]]\naction = \"block\"\nprotocol = 300\n").unwrap_err();
        let lines: Vec<usize> = e.0.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![2, 3, 6]);
    }

    #[test]
    fn limits_are_reported_with_the_limit() {
        let ports: Vec<String> = (0..=weir_policy::limits::MAX_PORT_RANGES)
            .map(|p| p.to_string())
            .collect();
        let d = one_error(&format!(
            "[[rule]]\naction = \"block\"\nremote_port = [{}]\n",
            ports.join(",")
        ));
        assert_eq!(d.line, 1);
        assert!(
            d.message
                .contains(&weir_policy::limits::MAX_PORT_RANGES.to_string()),
            "{}",
            d.message
        );
    }

    #[test]
    fn keep_mode_keeps_paths_and_lists_them() {
        let text = "[[rule]]\naction = \"permit\"\napp = 'C:\\App\\a.exe'\n[[rule]]\naction = \"permit\"\napp = '\\Device\\X\\b.exe'\n";
        let l = parse(
            "p.toml",
            text,
            None,
            &LoadOptions {
                app_paths: AppPaths::Keep,
            },
        )
        .unwrap();
        assert_eq!(l.kept_paths, vec!["C:\\App\\a.exe".to_string()]);
        assert_eq!(
            String::from_utf16(l.policy.rules[0].app.as_ref().unwrap().units()).unwrap(),
            "C:\\App\\a.exe"
        );
    }

    #[test]
    fn address_list_files_parse_with_comments_and_report_their_lines() {
        let ok = parse_address_list(
            "# header\n1.2.3.4\n\n  10.0.0.0/8  # lan\n::1-::5\n",
            "l.txt",
        )
        .unwrap();
        assert_eq!(ok.len(), 3);
        let e = parse_address_list("1.2.3.4\n  bogus\n5.6.7.8-5.6.7.1\n", "l.txt").unwrap_err();
        let got: Vec<(usize, usize)> = e.0.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(got, vec![(2, 3), (3, 1)]);
        assert_eq!(
            e.0[1].to_string(),
            "l.txt:3:1: address range 5.6.7.8-5.6.7.1 is reversed"
        );
    }

    #[test]
    fn set_files_resolve_relative_to_the_policy() {
        let dir = std::env::temp_dir().join(format!("weir-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("list.txt"), "1.1.1.1\n2.2.2.0/24\n").unwrap();
        std::fs::write(dir.join("bad.txt"), "1.1.1.1\nnope\n").unwrap();
        std::fs::write(
            dir.join("p.toml"),
            "[sets]\nb = \"@list.txt\"\n[[rule]]\naction = \"block\"\nremote = \"@b\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("q.toml"), "[sets]\nb = \"@bad.txt\"\n").unwrap();
        let d = drives();
        let opts = LoadOptions {
            app_paths: AppPaths::Convert(&d),
        };
        let l = load_file(&dir.join("p.toml"), &opts).unwrap();
        assert_eq!(l.policy.sets[0].entries.len(), 2);
        assert_eq!(l.file_entries, 2);
        let e = load_file(&dir.join("q.toml"), &opts).unwrap_err();
        assert_eq!(e.0[0].line, 2);
        assert!(e.0[0].message.contains("bad.txt:2:1"), "{}", e.0[0].message);
        let e = load_file(&dir.join("missing.toml"), &opts).unwrap_err();
        assert!(e.0[0].message.starts_with("cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ranges_print_in_their_shortest_form() {
        for s in [
            "1.2.3.4",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "10.0.0.1-10.0.0.9",
            "::1",
            "fd00::/8",
            "::/0",
            "::1-::5",
            "10.0.0.0-10.0.1.0",
        ] {
            assert_eq!(format_range(&parse_address(s).unwrap()), s);
        }
    }

    #[test]
    fn printed_policy_parses_back_to_the_same_policy() {
        let text = "[defaults]\ninbound = \"block\"\n[sets]\n\"odd name\" = [\"1.2.3.4\", \"::/0\"]\nempty = []\n\
            [[rule]]\nid = 4\naction = \"block\"\nremote = \"@odd name\"\nremote_port = [1, \"2-3\"]\nprotocol = 99\n\
            [[rule]]\naction = \"permit\"\napp = 'C:\\it''s\\x.exe'\nlocal = [\"10.0.0.0/8\", \"1.1.1.1-1.1.1.3\"]\nloopback = true\nlog = true\n";
        let l = parse_with(text);
        // A literal string cannot hold a quote: TOML needs the basic form for that path.
        assert!(l.is_err());
        let text = text.replace("'C:\\it''s\\x.exe'", "\"C:\\\\it's\\\\x.exe\"");
        let p = parse_with(&text).unwrap().policy;
        let d = drives();
        let printed = format(&p, Some(&d));
        assert!(printed.contains("# C:\\it's\\x.exe"), "{printed}");
        let again = parse_with(&printed).unwrap().policy;
        assert_eq!(again, p, "{printed}");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use weir_policy_testing::arb_policy;

        /// Makes `p` expressible in the file format: set names unique (TOML keys are) and
        /// no rule whose `ip_version` contradicts its own addresses (the parser refuses those
        /// as "could never match"; such a rule loses its `ip_version` here).
        fn expressible(mut p: Policy) -> Policy {
            for (i, s) in p.sets.iter_mut().enumerate() {
                s.name = format!("{}{i}", s.name);
            }
            for r in &mut p.rules {
                let Some(v) = r.ip_version else { continue };
                let agrees = [&r.remote_addr, &r.local_addr].iter().all(|c| match c {
                    Some(AddrCond::Ranges(rs)) => rs.iter().all(|x| x.version() == v),
                    _ => true,
                });
                if !agrees {
                    r.ip_version = None;
                }
            }
            p
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn printed_policies_parse_back_identical(p in arb_policy(12).prop_map(expressible)) {
                let printed = format(&p, None);
                let again = parse_with(&printed).map_err(|e| TestCaseError::fail(format!("{e}\n{printed}")))?;
                prop_assert_eq!(again.policy, p);
            }

            #[test]
            fn any_text_gives_a_policy_or_positioned_errors(text in "(\\[\\[rule\\]\\]\n|\\[sets\\]\n|\\[defaults\\]\n|[a-z_]{1,12} = |\"[^\"\n]{0,20}\"|[0-9]{1,6}|\\[|\\]|, |\n|true|@[a-z]{1,3}|-){0,40}") {
                match parse_with(&text) {
                    Ok(l) => prop_assert!(l.policy.validate().is_ok()),
                    Err(Diagnostics(ds)) => {
                        prop_assert!(!ds.is_empty() && ds.len() <= MAX_DIAGNOSTICS);
                        let lines = text.lines().count().max(1);
                        for d in ds {
                            prop_assert!(d.line >= 1 && d.line <= lines + 1 && d.column >= 1, "{:?} in {:?}", d, text);
                        }
                    }
                }
            }
        }
    }
}
