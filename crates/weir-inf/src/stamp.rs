//! Turning the `.inx` template into the `.inf`, the way the WDK's stampinf
//! does: `$ARCH$` is replaced, `DriverVer` is inserted or replaced in
//! `[Version]`, and `CatalogFile` is optionally set. Every other byte,
//! including CRLF line ends, is kept.

use std::fmt;

use crate::parse::{parse, physical_lines, split_comment, Entry, ParseError, PhysLine};

/// Architectures `$ARCH$` may be replaced with.
pub const ARCHES: [&str; 4] = ["amd64", "x86", "arm64", "arm"];

/// The latest instant a DriverVer date may denote: 9999-12-31T23:59:59Z.
const MAX_UNIX: i64 = 253_402_300_799;

/// The stampinf variables this stamper does not support (KMDF/UMDF).
const UNSUPPORTED_VARIABLES: [&str; 4] = [
    "$KMDFVERSION$",
    "$UMDFVERSION$",
    "$KMDFCOINSTALLERVERSION$",
    "$UMDFCOINSTALLERVERSION$",
];

/// What to stamp into the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampOptions<'a> {
    /// Replacement for `$ARCH$`; one of [`ARCHES`] (the driver uses `amd64`).
    pub arch: &'a str,
    /// DriverVer date as (year, month, day). See [`build_date`].
    pub date: (u16, u8, u8),
    /// DriverVer version a.b.c.d. See [`version_from_crate`].
    pub version: [u16; 4],
    /// If set, `CatalogFile` in `[Version]` is set to this name.
    pub catalog_file: Option<String>,
}

/// Stamping and date/version derivation errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StampError {
    /// The template does not parse.
    Parse(ParseError),
    /// The template has no `[Version]` section.
    NoVersionSection,
    /// `[Version]` sets `key` more than once (second occurrence at `line`).
    DuplicateKey { key: &'static str, line: usize },
    /// The architecture is not one of [`ARCHES`].
    InvalidArch(String),
    /// The date is not a calendar date between 01/01/1970 and 12/31/9999.
    InvalidDate(u16, u8, u8),
    /// The catalog file name is not a plain `name.cat`.
    InvalidCatalogName(String),
    /// The crate version is not `a.b.c` with each field <= 65535.
    InvalidVersion(String),
    /// `SOURCE_DATE_EPOCH` is not a non-negative decimal integer.
    InvalidSourceDateEpoch(String),
    /// A unix time before 1970 or after 9999 was given.
    TimeOutOfRange(i64),
    /// The template uses a stampinf variable this stamper does not fill in.
    UnsupportedVariable { name: &'static str, line: usize },
}

impl fmt::Display for StampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse(e) => write!(f, "template does not parse: {e}"),
            Self::NoVersionSection => write!(f, "template has no [Version] section"),
            Self::DuplicateKey { key, line } => {
                write!(f, "line {line}: [Version] sets {key} more than once")
            }
            Self::InvalidArch(a) => {
                write!(f, "architecture {a:?} is not one of {}", ARCHES.join(", "))
            }
            Self::InvalidDate(y, m, d) => {
                write!(f, "{m:02}/{d:02}/{y:04} is not a valid DriverVer date")
            }
            Self::InvalidCatalogName(n) => write!(
                f,
                "catalog file name {n:?} must be a plain file name ending in .cat"
            ),
            Self::InvalidVersion(v) => write!(
                f,
                "version {v:?} is not a.b.c with each field a decimal number <= 65535"
            ),
            Self::InvalidSourceDateEpoch(v) => write!(
                f,
                "SOURCE_DATE_EPOCH={v:?} is not a non-negative integer number of seconds"
            ),
            Self::TimeOutOfRange(t) => {
                write!(f, "unix time {t} is outside 1970-01-01 .. 9999-12-31")
            }
            Self::UnsupportedVariable { name, line } => {
                write!(f, "line {line}: stampinf variable {name} is not supported")
            }
        }
    }
}

impl std::error::Error for StampError {}

impl From<ParseError> for StampError {
    fn from(e: ParseError) -> Self {
        Self::Parse(e)
    }
}

/// Whether `y` is a Gregorian leap year.
fn is_leap(y: u16) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

/// Number of days in month `m` (1-12) of year `y`; 0 for an invalid month.
pub(crate) fn days_in_month(y: u16, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Whether (y, m, d) is a calendar date DriverVer can carry (1970..=9999).
pub fn is_valid_date((y, m, d): (u16, u8, u8)) -> bool {
    (1970..=9999).contains(&y) && d >= 1 && d <= days_in_month(y, m)
}

/// The UTC calendar date of a unix time.
pub fn date_from_unix(secs: i64) -> Result<(u16, u8, u8), StampError> {
    if !(0..=MAX_UNIX).contains(&secs) {
        return Err(StampError::TimeOutOfRange(secs));
    }
    let mut days = secs / 86_400;
    let mut year: u16 = 1970;
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days = days.saturating_sub(len);
        year = year.saturating_add(1);
    }
    let mut month: u8 = 1;
    loop {
        let len = i64::from(days_in_month(year, month));
        if days < len || month >= 12 {
            break;
        }
        days = days.saturating_sub(len);
        month = month.saturating_add(1);
    }
    let day = u8::try_from(days.saturating_add(1)).map_err(|_| StampError::TimeOutOfRange(secs))?;
    Ok((year, month, day))
}

/// The DriverVer date for a build.
///
/// The time used is `SOURCE_DATE_EPOCH` if `source_date_epoch` is `Some` and
/// not blank; otherwise `fallback_unix` (the caller passes the last commit's
/// time); otherwise `now_unix`. The result is clamped to `now_unix` so the
/// date is never in the future, and converted to a UTC date.
pub fn build_date(
    source_date_epoch: Option<&str>,
    fallback_unix: Option<i64>,
    now_unix: i64,
) -> Result<(u16, u8, u8), StampError> {
    let from_env = match source_date_epoch.map(str::trim) {
        Some(s) if !s.is_empty() => {
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(StampError::InvalidSourceDateEpoch(s.to_owned()));
            }
            Some(
                s.parse::<i64>()
                    .map_err(|_| StampError::InvalidSourceDateEpoch(s.to_owned()))?,
            )
        }
        _ => None,
    };
    let t = from_env.or(fallback_unix).unwrap_or(now_unix).min(now_unix);
    date_from_unix(t)
}

/// [`build_date`] reading `SOURCE_DATE_EPOCH` from the process environment.
pub fn build_date_from_env(
    fallback_unix: Option<i64>,
    now_unix: i64,
) -> Result<(u16, u8, u8), StampError> {
    let var = std::env::var("SOURCE_DATE_EPOCH").ok();
    build_date(var.as_deref(), fallback_unix, now_unix)
}

/// DriverVer version for a crate version `a.b.c`: `[a, b, c, 0]`.
///
/// A pre-release or build-metadata suffix (`-rc.1`, `+meta`) is ignored;
/// each of a, b, c must be a decimal number <= 65535.
pub fn version_from_crate(version: &str) -> Result<[u16; 4], StampError> {
    let bad = || StampError::InvalidVersion(version.to_owned());
    let core = version.split(['-', '+']).next().unwrap_or("");
    let mut out = [0u16; 4];
    let mut fields = core.split('.');
    for slot in out.iter_mut().take(3) {
        let f = fields.next().ok_or_else(bad)?;
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        *slot = f.parse::<u16>().map_err(|_| bad())?;
    }
    if fields.next().is_some() {
        return Err(bad());
    }
    Ok(out)
}

/// `MM/DD/YYYY,a.b.c.d`, the DriverVer value.
pub fn format_driver_ver((y, m, d): (u16, u8, u8), v: [u16; 4]) -> String {
    let [a, b, c, e] = v;
    format!("{m:02}/{d:02}/{y:04},{a}.{b}.{c}.{e}")
}

fn valid_catalog_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.len() > 4
        && lower.ends_with(".cat")
        && name == name.trim()
        && !name
            .chars()
            .any(|c| c.is_control() || "\\/:;,\"%=[]*?<>|$".contains(c))
}

/// The terminator most lines use; CRLF when there is a tie or none.
fn dominant_eol(lines: &[PhysLine<'_>]) -> &'static str {
    let crlf = lines.iter().filter(|l| l.eol == "\r\n").count();
    let lf = lines.iter().filter(|l| l.eol == "\n").count();
    if lf > crlf {
        "\n"
    } else {
        "\r\n"
    }
}

enum Edit {
    Replace {
        first: usize,
        last: usize,
        text: String,
    },
    InsertAfter {
        line: usize,
        text: String,
    },
}

/// Plans setting `key = value` in `[Version]`: replace the one existing entry
/// (keeping its indentation, spacing around `=` and trailing comment) or add
/// one after the section's last entry.
fn plan_key(
    lines: &[PhysLine<'_>],
    version_entries: &[&Entry],
    insert_after: usize,
    key: &'static str,
    value: &str,
    edits: &mut Vec<Edit>,
) -> Result<(), StampError> {
    let mut found = version_entries.iter().filter(|e| e.key_is(key));
    let Some(entry) = found.next() else {
        edits.push(Edit::InsertAfter {
            line: insert_after,
            text: format!("{key} = {value}"),
        });
        return Ok(());
    };
    if let Some(dup) = found.next() {
        return Err(StampError::DuplicateKey {
            key,
            line: dup.line,
        });
    }
    let mut text = format!("{key} = {value}");
    if entry.line == entry.end_line {
        if let Some(pl) = lines.get(entry.line.saturating_sub(1)) {
            if let Ok((code, comment)) = split_comment(pl.content) {
                if let Some((before_eq, after_eq)) = code.split_once('=') {
                    let gap_after_eq = after_eq.len().saturating_sub(after_eq.trim_start().len());
                    let spaces = after_eq.get(..gap_after_eq).unwrap_or(" ");
                    text = format!("{before_eq}={spaces}{value}");
                    if let Some(comment) = comment {
                        let gap = code.len().saturating_sub(code.trim_end().len());
                        let ws = code.get(code.len().saturating_sub(gap)..).unwrap_or(" ");
                        let ws = if ws.is_empty() { " " } else { ws };
                        text.push_str(ws);
                        text.push_str(comment);
                    }
                }
            }
        }
    }
    edits.push(Edit::Replace {
        first: entry.line,
        last: entry.end_line,
        text,
    });
    Ok(())
}

/// Stamps an `.inx` template into `.inf` text (stampinf semantics).
///
/// - every `$ARCH$` becomes `opts.arch`;
/// - `DriverVer = MM/DD/YYYY,a.b.c.d` replaces the one in `[Version]`, or is
///   added after `[Version]`'s last entry;
/// - with `opts.catalog_file`, `CatalogFile = name` is replaced or added the
///   same way;
/// - all other lines are kept byte for byte; added lines use the file's
///   dominant line end (CRLF unless the file is mostly LF).
pub fn stamp(inx_text: &str, opts: &StampOptions<'_>) -> Result<String, StampError> {
    if !ARCHES.contains(&opts.arch) {
        return Err(StampError::InvalidArch(opts.arch.to_owned()));
    }
    if !is_valid_date(opts.date) {
        let (y, m, d) = opts.date;
        return Err(StampError::InvalidDate(y, m, d));
    }
    if let Some(cat) = &opts.catalog_file {
        if !valid_catalog_name(cat) {
            return Err(StampError::InvalidCatalogName(cat.clone()));
        }
    }
    let text = inx_text.replace("$ARCH$", opts.arch);
    let lines = physical_lines(&text);
    for (idx, pl) in lines.iter().enumerate() {
        if let Some(name) = UNSUPPORTED_VARIABLES
            .iter()
            .find(|v| pl.content.contains(*v))
        {
            return Err(StampError::UnsupportedVariable {
                name,
                line: idx.saturating_add(1),
            });
        }
    }
    let inf = parse(&text)?;
    let first_version = inf.section("Version").ok_or(StampError::NoVersionSection)?;
    let version_entries: Vec<&Entry> = inf
        .sections_named("Version")
        .flat_map(|s| s.entries.iter())
        .collect();
    let insert_after = first_version
        .entries
        .last()
        .map_or(first_version.line, |e| e.end_line);

    let mut edits = Vec::new();
    let driver_ver = format_driver_ver(opts.date, opts.version);
    plan_key(
        &lines,
        &version_entries,
        insert_after,
        "DriverVer",
        &driver_ver,
        &mut edits,
    )?;
    if let Some(cat) = &opts.catalog_file {
        plan_key(
            &lines,
            &version_entries,
            insert_after,
            "CatalogFile",
            cat,
            &mut edits,
        )?;
    }

    let eol = dominant_eol(&lines);
    let mut out = String::with_capacity(text.len().saturating_add(128));
    let mut skip_through = 0usize;
    for (idx, pl) in lines.iter().enumerate() {
        let n = idx.saturating_add(1);
        if n <= skip_through {
            continue;
        }
        let replacement = edits.iter().find_map(|e| match e {
            Edit::Replace { first, last, text } if *first == n => Some((*last, text)),
            _ => None,
        });
        let written_eol = match replacement {
            Some((last, new_text)) => {
                skip_through = last;
                out.push_str(new_text);
                let end_eol = lines.get(last.saturating_sub(1)).map_or(eol, |l| l.eol);
                out.push_str(end_eol);
                end_eol
            }
            None => {
                out.push_str(pl.content);
                out.push_str(pl.eol);
                pl.eol
            }
        };
        let line_after = skip_through.max(n);
        for e in &edits {
            if let Edit::InsertAfter { line, text } = e {
                if *line == line_after {
                    if written_eol.is_empty() {
                        out.push_str(eol);
                        out.push_str(text);
                    } else {
                        out.push_str(text);
                        out.push_str(eol);
                    }
                }
            }
        }
    }
    Ok(out)
}
