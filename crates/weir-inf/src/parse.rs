//! A line-preserving parser for Windows INF text.
//!
//! The model is deliberately small: an [`Inf`] is a list of [`Section`]s in
//! file order (duplicates kept, as Windows merges them), each holding its
//! [`Entry`]s. Every section and entry remembers the 1-based physical line it
//! starts on, so diagnostics and the stamper can point at (and rewrite) exact
//! lines.
//!
//! Syntax handled:
//! - `[name]` section headers (optionally followed by a comment);
//! - `key = value, value, ...` and key-less `value, value, ...` entries;
//! - `;` comments outside quoted strings;
//! - `"quoted"` strings with `""` as an escaped quote;
//! - `\` as the last non-blank character (outside a comment) continues the
//!   logical line on the next physical line;
//! - CRLF, LF and a mix of both; a UTF-8 byte-order mark; UTF-16LE input via
//!   [`decode`].

use std::fmt;

/// A parse failure with the 1-based physical line it was found on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based physical line number (0 only for whole-file problems such as
    /// an undecodable encoding).
    pub line: usize,
    /// What is wrong, in plain words.
    pub message: String,
}

impl ParseError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

/// One field of an entry: the text between commas (or the key before `=`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Value {
    /// The field as written, trimmed, quotes and `%tokens%` kept.
    pub raw: String,
    /// The field with quotes removed (`""` inside quotes becomes `"`) and
    /// unquoted surrounding blanks trimmed. `%tokens%` are not substituted.
    pub text: String,
    /// Whether any part of the field was quoted.
    pub quoted: bool,
}

/// One logical line inside a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based physical line the entry starts on.
    pub line: usize,
    /// 1-based physical line the entry ends on (differs from `line` only when
    /// `\` continuations were used).
    pub end_line: usize,
    /// The key before the first unquoted `=`, if there is one.
    pub key: Option<Value>,
    /// The comma-separated fields after the `=` (or of the whole line when
    /// there is no key). Always at least one, possibly empty, field.
    pub values: Vec<Value>,
}

impl Entry {
    /// The unquoted key text, if the entry has a key.
    pub fn key(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.text.as_str())
    }

    /// Whether the entry's key equals `name`, ignoring ASCII case.
    pub fn key_is(&self, name: &str) -> bool {
        self.key().is_some_and(|k| k.eq_ignore_ascii_case(name))
    }

    /// The unquoted text of field `index`, if present.
    pub fn value(&self, index: usize) -> Option<&str> {
        self.values.get(index).map(|v| v.text.as_str())
    }

    /// The unquoted text of field `index`, or `""`.
    pub fn value_or_empty(&self, index: usize) -> &str {
        self.value(index).unwrap_or("")
    }
}

/// A `[section]` and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name between the brackets, trimmed.
    pub name: String,
    /// 1-based line of the `[name]` header.
    pub line: usize,
    /// Entries in file order.
    pub entries: Vec<Entry>,
}

impl Section {
    /// Whether the section is called `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Entries whose key equals `key`, ignoring ASCII case.
    pub fn entries_with_key<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.key_is(key))
    }

    /// The first entry whose key equals `key`, ignoring ASCII case.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key_is(key))
    }
}

/// A parsed INF file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inf {
    /// Sections in file order; a name may occur more than once.
    pub sections: Vec<Section>,
}

impl Inf {
    /// All sections called `name` (ASCII case-insensitive), in file order.
    pub fn sections_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.sections.iter().filter(move |s| s.is(name))
    }

    /// The first section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.is(name))
    }

    /// Whether a section called `name` exists.
    pub fn has_section(&self, name: &str) -> bool {
        self.section(name).is_some()
    }

    /// Entries with key `key` in every section called `section`.
    pub fn entries<'a>(
        &'a self,
        section: &'a str,
        key: &'a str,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        self.sections_named(section)
            .flat_map(move |s| s.entries_with_key(key))
    }
}

/// A physical line: its content without the terminator, and the terminator
/// (`"\r\n"`, `"\n"`, or `""` for a last line without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PhysLine<'a> {
    pub content: &'a str,
    pub eol: &'static str,
}

/// Splits `text` into physical lines, keeping each terminator.
pub(crate) fn physical_lines(text: &str) -> Vec<PhysLine<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.split_once('\n') {
            Some((before, after)) => {
                let line = match before.strip_suffix('\r') {
                    Some(content) => PhysLine {
                        content,
                        eol: "\r\n",
                    },
                    None => PhysLine {
                        content: before,
                        eol: "\n",
                    },
                };
                out.push(line);
                rest = after;
            }
            None => {
                out.push(PhysLine {
                    content: rest,
                    eol: "",
                });
                break;
            }
        }
    }
    out
}

/// Splits a physical line into its code part and its `;` comment (the
/// comment includes the `;`). Fails on an unterminated quoted string.
pub(crate) fn split_comment(line: &str) -> Result<(&str, Option<&str>), &'static str> {
    let mut in_quote = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ';' if !in_quote => {
                let (code, comment) = line.split_at(i);
                return Ok((code, Some(comment)));
            }
            _ => {}
        }
    }
    if in_quote {
        Err("unterminated quoted string")
    } else {
        Ok((line, None))
    }
}

/// Decodes INF bytes: UTF-16LE or UTF-16BE with a byte-order mark, UTF-8 with
/// or without one. Fails on anything else (for example invalid UTF-8).
pub fn decode(bytes: &[u8]) -> Result<String, ParseError> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return decode_utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return decode_utf16(rest, u16::from_be_bytes);
    }
    let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    match std::str::from_utf8(body) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => {
            let upto = body.get(..e.valid_up_to()).unwrap_or(&[]);
            let line = upto
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                .saturating_add(1);
            Err(ParseError::new(
                line,
                "text is not valid UTF-8 (and has no UTF-16 byte-order mark)",
            ))
        }
    }
}

fn decode_utf16(bytes: &[u8], conv: fn([u8; 2]) -> u16) -> Result<String, ParseError> {
    let chunks = bytes.chunks_exact(2);
    if !chunks.remainder().is_empty() {
        return Err(ParseError::new(0, "UTF-16 text has an odd number of bytes"));
    }
    let units = chunks.map(|c| match c {
        [a, b] => conv([*a, *b]),
        _ => 0,
    });
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| ParseError::new(0, "UTF-16 text has an unpaired surrogate"))
}

/// Decodes (see [`decode`]) and parses INF bytes.
pub fn parse_bytes(bytes: &[u8]) -> Result<Inf, ParseError> {
    parse(&decode(bytes)?)
}

/// Parses INF text. Never panics; malformed input yields a [`ParseError`]
/// naming the offending physical line.
pub fn parse(text: &str) -> Result<Inf, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut inf = Inf::default();
    // (first physical line, accumulated code) of a logical line still being
    // continued with `\`.
    let mut pending: Option<(usize, String)> = None;
    for (idx, pl) in physical_lines(text).iter().enumerate() {
        let lineno = idx.saturating_add(1);
        // Ctrl-Z is an old end-of-file marker; treat it as blank.
        let content = pl.content.trim_end_matches('\u{1a}');
        let (code, _comment) = split_comment(content).map_err(|m| ParseError::new(lineno, m))?;
        let code = code.trim_end();
        let (body, continues) = match code.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (code, false),
        };
        let (start, mut acc) = pending.take().unwrap_or_else(|| (lineno, String::new()));
        acc.push_str(body);
        if continues {
            pending = Some((start, acc));
            continue;
        }
        logical_line(&mut inf, start, lineno, &acc)?;
    }
    if let Some((start, _)) = pending {
        return Err(ParseError::new(
            start,
            "line continuation '\\' with no following line",
        ));
    }
    Ok(inf)
}

fn logical_line(inf: &mut Inf, start: usize, end: usize, code: &str) -> Result<(), ParseError> {
    let trimmed = code.trim();
    if trimmed.is_empty() {
        return Ok(());
    }
    if let Some(after_open) = trimmed.strip_prefix('[') {
        if start != end {
            return Err(ParseError::new(
                start,
                "a section header cannot be continued with '\\'",
            ));
        }
        let Some((name, after)) = after_open.split_once(']') else {
            return Err(ParseError::new(start, "section header has no closing ']'"));
        };
        if !after.trim().is_empty() {
            return Err(ParseError::new(
                start,
                format!("unexpected text after section header: {:?}", after.trim()),
            ));
        }
        let name = name.trim();
        if name.is_empty() {
            return Err(ParseError::new(start, "empty section name"));
        }
        if name.contains('[') {
            return Err(ParseError::new(start, "'[' inside a section name"));
        }
        inf.sections.push(Section {
            name: name.to_owned(),
            line: start,
            entries: Vec::new(),
        });
        return Ok(());
    }
    let Some(section) = inf.sections.last_mut() else {
        return Err(ParseError::new(
            start,
            "entry before the first [section] header",
        ));
    };
    let (key, values) = split_entry(trimmed).map_err(|m| ParseError::new(start, m))?;
    section.entries.push(Entry {
        line: start,
        end_line: end,
        key,
        values,
    });
    Ok(())
}

#[derive(Default)]
struct FieldBuilder {
    raw: String,
    text: String,
    quoted: bool,
    started: bool,
    keep: usize,
}

impl FieldBuilder {
    fn plain(&mut self, c: char) {
        self.raw.push(c);
        if c.is_whitespace() {
            if self.started {
                self.text.push(c);
            }
        } else {
            self.text.push(c);
            self.started = true;
            self.keep = self.text.len();
        }
    }

    fn quoted_char(&mut self, c: char) {
        self.text.push(c);
        self.started = true;
        self.keep = self.text.len();
    }

    fn open_quote(&mut self) {
        self.raw.push('"');
        self.quoted = true;
        self.started = true;
        self.keep = self.text.len();
    }

    fn finish(mut self) -> Value {
        // `keep` always sits on a char boundary of `text` (it is only ever set
        // to `text.len()`), so truncate cannot fail.
        if self.keep <= self.text.len() && self.text.is_char_boundary(self.keep) {
            self.text.truncate(self.keep);
        }
        Value {
            raw: self.raw.trim().to_owned(),
            text: self.text,
            quoted: self.quoted,
        }
    }
}

type SplitEntry = (Option<Value>, Vec<Value>);

fn split_entry(s: &str) -> Result<SplitEntry, &'static str> {
    let mut chars = s.chars().peekable();
    let mut key: Option<Value> = None;
    let mut values: Vec<Value> = Vec::new();
    let mut cur = FieldBuilder::default();
    let mut in_quote = false;
    while let Some(c) = chars.next() {
        if in_quote {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.raw.push_str("\"\"");
                    cur.quoted_char('"');
                } else {
                    cur.raw.push('"');
                    in_quote = false;
                }
            } else {
                cur.raw.push(c);
                cur.quoted_char(c);
            }
            continue;
        }
        match c {
            '"' => {
                in_quote = true;
                cur.open_quote();
            }
            '=' if key.is_none() && values.is_empty() => {
                let k = std::mem::take(&mut cur).finish();
                if k.text.is_empty() && !k.quoted {
                    return Err("missing key before '='");
                }
                key = Some(k);
            }
            ',' => values.push(std::mem::take(&mut cur).finish()),
            _ => cur.plain(c),
        }
    }
    if in_quote {
        return Err("unterminated quoted string");
    }
    values.push(cur.finish());
    Ok((key, values))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    #[test]
    fn sections_entries_and_lines() {
        let text = "; head\r\n[Version]\r\nSignature = \"$WINDOWS NT$\" ; c\r\n\r\n[A]\r\nx, y ,  \"a, b\" ,\r\n";
        let inf = parse(text).unwrap();
        assert_eq!(inf.sections.len(), 2);
        let v = &inf.sections[0];
        assert_eq!((v.name.as_str(), v.line), ("Version", 2));
        let sig = v.get("signature").unwrap();
        assert_eq!(sig.line, 3);
        assert_eq!(sig.value(0), Some("$WINDOWS NT$"));
        assert!(sig.values[0].quoted);
        assert_eq!(sig.values[0].raw, "\"$WINDOWS NT$\"");
        let a = &inf.sections[1].entries[0];
        assert_eq!(a.line, 6);
        assert!(a.key.is_none());
        let texts: Vec<&str> = a.values.iter().map(|v| v.text.as_str()).collect();
        assert_eq!(texts, ["x", "y", "a, b", ""]);
    }

    #[test]
    fn continuation_and_escaped_quotes() {
        let text = "[S]\nCopyFiles = A, \\\n   B ; comment \\\nK = \"say \"\"hi\"\"\"\n";
        let inf = parse(text).unwrap();
        let e = &inf.sections[0].entries[0];
        assert_eq!((e.line, e.end_line), (2, 3));
        assert_eq!(e.value(0), Some("A"));
        assert_eq!(e.value(1), Some("B"));
        let k = &inf.sections[0].entries[1];
        assert_eq!(k.line, 4);
        assert_eq!(k.value(0), Some("say \"hi\""));
    }

    #[test]
    fn backslash_inside_value_is_not_continuation() {
        let inf = parse("[S]\nServiceBinary = %13%\\weir.sys\n").unwrap();
        assert_eq!(inf.sections[0].entries[0].value(0), Some("%13%\\weir.sys"));
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("[A]\nx = \"open\n", 2, "unterminated"),
            ("x = 1\n", 1, "before the first"),
            ("[A]\n[B\n", 2, "closing"),
            ("[A]\n[]\n", 2, "empty section"),
            ("[A] x\n", 1, "after section header"),
            ("[A]\n = 3\n", 2, "missing key"),
            ("[A]\nx = 1, \\\n", 2, "continuation"),
            ("[A]\n[B] \\\n\n", 2, "cannot be continued"),
        ];
        for (text, line, needle) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn decodes_boms() {
        let mut utf16 = vec![0xFF, 0xFE];
        for u in "[A]\r\nk=v\r\n".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        let inf = parse_bytes(&utf16).unwrap();
        assert_eq!(inf.sections[0].entries[0].value(0), Some("v"));
        let inf = parse_bytes(b"\xEF\xBB\xBF[A]\nk=v\n").unwrap();
        assert_eq!(inf.sections[0].name, "A");
        let e = parse_bytes(b"[A]\n\xff\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn physical_lines_keep_terminators() {
        let l = physical_lines("a\r\nb\nc");
        assert_eq!(l.len(), 3);
        assert_eq!((l[0].content, l[0].eol), ("a", "\r\n"));
        assert_eq!((l[1].content, l[1].eol), ("b", "\n"));
        assert_eq!((l[2].content, l[2].eol), ("c", ""));
        assert!(physical_lines("").is_empty());
    }
}
