//! Diagnostics: an error or warning at a position of a file, and how positions are found.

use std::fmt;
use std::ops::Range;

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

// Positions.

/// Maps byte offsets of one text to 1-based line and column.
pub(super) struct Positions<'a> {
    file: String,
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

    pub(super) fn at(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
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

    pub(super) fn span(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.at(span.start, message)
    }
}
