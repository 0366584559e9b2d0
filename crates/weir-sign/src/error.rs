use std::fmt;
use std::path::PathBuf;

use crate::catalog::MemberProblem;

/// Every failure this crate reports. The `Display` text is meant for the
/// person running the build: it names the file and what was wrong with it.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignError {
    /// Reading or writing a file failed.
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A certificate could not be used (unreadable, wrong kind, missing the
    /// code-signing usage, does not match the key...).
    Certificate(String),
    /// A private key could not be used.
    Key(String),
    /// A PFX / PKCS#12 file could not be opened.
    Pfx(String),
    /// A file is not a PE image the Authenticode hash can be computed for.
    Pe(String),
    /// A catalog could not be built or parsed.
    Catalog(String),
    /// Files do not match the catalog: one entry per problem.
    Verification(Vec<MemberProblem>),
}

impl SignError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn catalog(what: impl fmt::Display) -> Self {
        Self::Catalog(what.to_string())
    }
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Certificate(m) => write!(f, "certificate: {m}"),
            Self::Key(m) => write!(f, "private key: {m}"),
            Self::Pfx(m) => write!(f, "PFX: {m}"),
            Self::Pe(m) => write!(f, "PE image: {m}"),
            Self::Catalog(m) => write!(f, "catalog: {m}"),
            Self::Verification(problems) => {
                write!(f, "catalog verification failed:")?;
                for p in problems {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<der::Error> for SignError {
    fn from(e: der::Error) -> Self {
        Self::Catalog(format!("ASN.1 encoding error: {e}"))
    }
}
