//! Where everything a command prints goes: results on stdout (text, or one JSON document per
//! result with `--json`), notes, warnings and errors on stderr. Every stdout write returns
//! `io::Result`; a reader that has gone away (`| head`, PowerShell's `| Select-Object -First 1`)
//! gives `BrokenPipe`, which `main` turns into a quiet exit 0, as ripgrep does. Writes to
//! stderr never fail the command (there is nobody left to tell).

use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Display;
use std::io::{self, Write};
use weir_client::text::Diagnostics;
use weir_client::ClientError;

/// Why a command failed (exit code 1, or 0 for a closed pipe).
#[derive(Debug)]
pub enum Failure {
    /// A driver request failed.
    Client(ClientError),
    /// The policy file is invalid.
    Policy(Diagnostics),
    /// Writing the output failed (`BrokenPipe`: the reader closed early).
    Output(io::Error),
    /// An option's value is malformed (exit code 2, like clap's own usage errors).
    Usage(String),
    /// The stored policy file could not be written or deleted.
    Store {
        /// The file.
        path: String,
        /// What failed, with the OS error.
        message: String,
    },
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

impl From<Diagnostics> for Failure {
    fn from(d: Diagnostics) -> Self {
        Failure::Policy(d)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

impl Failure {
    /// Whether this is the reader of stdout going away, which is not an error.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, Failure::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// A stable name of each failure for scripts (`--json`'s `error.kind`).
pub fn kind(f: &Failure) -> &'static str {
    match f {
        Failure::Policy(_) => "policy_invalid",
        Failure::Output(_) => "output_error",
        Failure::Usage(_) => "usage",
        Failure::Store { .. } => "stored_policy_io",
        Failure::Client(e) => match e {
            ClientError::NotInstalled => "not_installed",
            ClientError::NotStarted { .. } => "not_started",
            ClientError::NotLoaded => "not_loaded",
            ClientError::AccessDenied => "access_denied",
            ClientError::AbiMismatch { .. } => "abi_mismatch",
            ClientError::PolicyTooLarge { .. } => "policy_too_large",
            ClientError::PolicyRefused { .. } => "policy_refused",
            ClientError::Cancelled => "cancelled",
            ClientError::TooManyReaders { .. } => "too_many_readers",
            ClientError::Status { .. } => "driver_status",
            ClientError::Malformed { .. } => "malformed_reply",
            ClientError::Os { .. } => "os_error",
            ClientError::Unsupported => "unsupported",
        },
    }
}

/// The JSON document of a failure.
pub fn failure_json(f: &Failure) -> Value {
    let mut error = serde_json::Map::new();
    error.insert("kind".into(), json!(kind(f)));
    match f {
        Failure::Client(e) => {
            error.insert("message".into(), json!(e.to_string()));
            if let ClientError::Status { status, .. } | ClientError::PolicyRefused { status } = e {
                error.insert("status".into(), json!(format!("0x{status:08X}")));
            }
        }
        Failure::Store { path, message } => {
            error.insert("message".into(), json!(message));
            error.insert("path".into(), json!(path));
        }
        Failure::Policy(d) => {
            error.insert("message".into(), json!("the policy file is invalid"));
            error.insert("diagnostics".into(), json!(d.list));
            error.insert("omitted".into(), json!(d.omitted));
        }
        Failure::Output(e) => {
            error.insert(
                "message".into(),
                json!(format!("cannot write the output: {e}")),
            );
        }
        Failure::Usage(m) => {
            error.insert("message".into(), json!(m));
        }
    }
    json!({ "ok": false, "error": error })
}

/// Where results go.
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints one result: its `Display` as text, or its `Serialize` as one line of JSON.
    pub fn result<T: Serialize + Display>(&self, r: &T) -> io::Result<()> {
        if self.json {
            let doc = serde_json::to_string(r).map_err(io::Error::other)?;
            self.write(&doc)
        } else {
            self.write(&r.to_string())
        }
    }

    /// Prints one line whose text and JSON forms are built by the caller (`events`).
    pub fn line(&self, human: &str, doc: &Value) -> io::Result<()> {
        if self.json {
            self.json_value(doc)
        } else {
            self.write(human)
        }
    }

    /// Prints text made elsewhere (`--help`, clap's own rendering) as is.
    pub fn text(&self, text: &str) -> io::Result<()> {
        self.write(text)
    }

    /// Prints a JSON document as one line.
    pub fn json_value(&self, doc: &Value) -> io::Result<()> {
        self.write(&doc.to_string())
    }

    /// Writes `text` and a final newline if it lacks one; empty text prints nothing.
    fn write(&self, text: &str) -> io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Flushes stdout (its buffered tail can be the first write that meets a closed pipe).
    pub fn flush(&self) -> io::Result<()> {
        io::stdout().lock().flush()
    }

    /// Prints a failure: `error: ...` lines on stderr, or the JSON document on stdout.
    pub fn error(&self, f: &Failure) -> io::Result<()> {
        if self.json {
            return self.json_value(&failure_json(f));
        }
        match f {
            Failure::Client(e) => self.stderr(&format!("error: {e}")),
            Failure::Store { path, message } => self.stderr(&format!(
                "error: {path}: {message} (run from an elevated prompt; the install creates the directory)"
            )),
            Failure::Policy(d) => {
                for d in &d.list {
                    self.stderr(&format!("{}: {d}", d.severity.as_str()));
                }
                if d.omitted > 0 {
                    self.stderr(&format!("error: and {} more", d.omitted));
                }
            }
            Failure::Output(e) => self.stderr(&format!("error: cannot write the output: {e}")),
            Failure::Usage(m) => self.stderr(&format!("error: {m}")),
        }
        Ok(())
    }

    /// A note on stderr (text mode only; JSON carries it in the document).
    pub fn note(&self, text: &str) {
        if !self.json {
            self.stderr(&format!("note: {text}"));
        }
    }

    /// Warnings on stderr (text mode only; JSON carries them in the document).
    pub fn warnings(&self, d: &Diagnostics) {
        if self.json {
            return;
        }
        for d in &d.list {
            self.stderr(&format!("warning: {d}"));
        }
        if d.omitted > 0 {
            self.stderr(&format!("warning: and {} more", d.omitted));
        }
    }

    /// One warning on stderr (text mode only, like [`Output::warnings`]).
    pub fn warning(&self, text: &str) {
        if !self.json {
            self.stderr(&format!("warning: {text}"));
        }
    }

    /// One line on stderr; a failing stderr is ignored (`eprintln!` would panic).
    pub fn stderr(&self, line: &str) {
        let _ = writeln!(io::stderr().lock(), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_client::text::Diagnostic;

    #[test]
    fn failures_have_stable_kinds_and_json() {
        let f = Failure::Client(ClientError::NotInstalled);
        let j = failure_json(&f);
        assert_eq!(j["ok"], false);
        assert_eq!(j["error"]["kind"], "not_installed");
        assert!(j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not loaded"));
        let j = failure_json(&Failure::Client(ClientError::PolicyRefused {
            status: 0xE057_0002,
        }));
        assert_eq!(j["error"]["status"], "0xE0570002");
        let d = Diagnostic::error("p.toml", 3, 20, "port range 9000-80 is reversed");
        let j = failure_json(&Failure::Policy(Diagnostics {
            list: vec![d],
            omitted: 0,
        }));
        assert_eq!(j["error"]["kind"], "policy_invalid");
        let d = &j["error"]["diagnostics"][0];
        assert_eq!(
            (&d["file"], &d["line"], &d["column"], &d["message"]),
            (
                &json!("p.toml"),
                &json!(3),
                &json!(20),
                &json!("port range 9000-80 is reversed")
            )
        );
    }

    #[test]
    fn a_closed_pipe_is_recognised_and_nothing_else() {
        assert!(Failure::Output(io::ErrorKind::BrokenPipe.into()).is_closed_pipe());
        assert!(!Failure::Output(io::ErrorKind::PermissionDenied.into()).is_closed_pipe());
        assert!(!Failure::Client(ClientError::Unsupported).is_closed_pipe());
    }
}
