//! The INF's bytes: which encodings Windows reads (InfVerif 1003).

use super::{lint, parse_diag, Diagnostic, Rule};

/// Lints INF bytes as they would be installed: the encoding first (InfVerif
/// 1003: Windows reads an INF as ANSI or as UTF-16LE with a byte-order mark;
/// UTF-8 and non-ASCII 8-bit text are read in whatever code page the
/// installing machine has), then the text as [`lint`] does.
pub fn lint_bytes(bytes: &[u8], file_name: &str) -> Vec<Diagnostic> {
    let mut out = encoding_findings(bytes, file_name);
    match crate::parse::decode(bytes) {
        Ok(text) => out.extend(lint(&text, file_name)),
        Err(e) => out.push(parse_diag(file_name, &e)),
    }
    out
}

/// The encoding findings of [`lint_bytes`] alone.
pub(super) fn encoding_findings(bytes: &[u8], file_name: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut encoding = |line: usize, text: &str| {
        out.push(Diagnostic {
            rule: Rule::Encoding,
            line,
            message: format!("{file_name}:{line}: {text}"),
            infverif: Some(1003),
        });
    };
    if bytes.starts_with(&[0xFF, 0xFE]) {
        // UTF-16LE: what InfVerif asks for.
    } else if bytes.starts_with(&[0xFE, 0xFF]) {
        encoding(1, "UTF-16BE: Windows reads INF files as ANSI or UTF-16LE");
    } else if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        encoding(
            1,
            "UTF-8 byte-order mark: Windows reads INF files as ANSI or UTF-16LE",
        );
    } else if let Some(at) = bytes.iter().position(|b| !b.is_ascii()) {
        let line = bytes
            .get(..at)
            .unwrap_or(&[])
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            .saturating_add(1);
        encoding(line, "non-ASCII byte in an 8-bit INF: it is read in the installing machine's code page; use ASCII or UTF-16LE");
    }
    out
}
