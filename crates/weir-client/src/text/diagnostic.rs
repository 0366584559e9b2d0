//! Diagnostics: an error or warning at a span of a file, and how spans become line and column.

use serde::Serialize;
use std::fmt;
use std::ops::Range;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The policy is refused.
    Error,
    /// The policy is accepted (exit 0) but may not do what it says; `--deny-warnings`
    /// refuses it.
    Warning,
}

impl Severity {
    /// `error` or `warning`, as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One error or warning, at a span of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable name of the kind, for scripts (`host_bits`, `shadowed`, ...; every error
    /// is `invalid` unless it has its own). The list is in docs/policy-language.md.
    pub code: &'static str,
    /// The file as the user named it.
    pub file: String,
    /// 1-based line of the span's start; 0 when the diagnostic concerns the whole file.
    pub line: usize,
    /// 1-based column in characters; 0 with `line`.
    pub column: usize,
    /// 1-based line of the span's end (inclusive); 0 with `line`.
    pub end_line: usize,
    /// 1-based column just past the span's end, in characters; 0 with `line`.
    pub end_column: usize,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// An error at a line and column (span of one character).
    pub fn error(file: &str, line: usize, column: usize, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code: "invalid",
            file: file.to_string(),
            line,
            column,
            end_line: line,
            end_column: if line == 0 { 0 } else { column + 1 },
            message: message.into(),
        }
    }

    /// An error about the whole file.
    pub fn file_error(file: &str, message: impl Into<String>) -> Self {
        Self::error(file, 0, 0, message)
    }

    /// This diagnostic as a warning with a stable `code`.
    pub fn warning(mut self, code: &'static str) -> Self {
        self.severity = Severity::Warning;
        self.code = code;
        self
    }

    /// This diagnostic with its own error `code`.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )?;
        }
        if self.severity == Severity::Warning {
            write!(f, " [{}]", self.code)?;
        }
        Ok(())
    }
}

/// Every diagnostic found in one policy (at most [`MAX_DIAGNOSTICS`]), in file order;
/// `omitted` counts those past the cap ("and N more").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostics {
    /// The diagnostics reported.
    pub list: Vec<Diagnostic>,
    /// How many more were found and not reported.
    pub omitted: usize,
}

/// More diagnostics than this are not reported (the first ones are the useful ones).
pub const MAX_DIAGNOSTICS: usize = 20;

impl Diagnostics {
    /// One diagnostic.
    pub fn one(d: Diagnostic) -> Self {
        Self {
            list: vec![d],
            omitted: 0,
        }
    }

    /// Adds `d`, or counts it as omitted past the cap.
    pub fn push(&mut self, d: Diagnostic) {
        if self.list.len() < MAX_DIAGNOSTICS {
            self.list.push(d);
        } else {
            self.omitted += 1;
        }
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.list.iter().any(Diagnostic::is_error)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.list.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if self.omitted > 0 {
            write!(f, "\nand {} more", self.omitted)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Maps byte offsets of one text to 1-based line and column.
pub(super) struct Positions<'a> {
    pub(super) file: String,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Positions<'a> {
    pub(super) fn new(file: &str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            file: file.to_string(),
            text,
            line_starts,
        }
    }

    /// Line and column of byte `offset`.
    pub(super) fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset.min(self.text.len()))
            .map_or(1, |s| s.chars().count() + 1);
        (line, column)
    }

    pub(super) fn span(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.line_col(span.start);
        let (end_line, end_column) = if span.end > span.start {
            self.line_col(span.end)
        } else {
            (line, column + 1)
        };
        Diagnostic {
            end_line,
            end_column,
            ..Diagnostic::error(&self.file, line, column, message)
        }
    }
}
