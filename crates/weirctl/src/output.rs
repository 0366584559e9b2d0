//! Human or JSON output, and how failures are printed.

use serde_json::{json, Value};
use weir_client::text::Diagnostics;
use weir_client::ClientError;

/// Why a command failed (exit code 1).
#[derive(Debug)]
pub enum Failure {
    /// A driver request failed.
    Client(ClientError),
    /// The policy file is invalid.
    Policy(Diagnostics),
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

/// Sets `key` of a JSON object (`doc` is always an object here; anything else is left as is,
/// where `doc[key] = ...` would panic).
pub fn set(doc: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = doc {
        map.insert(key.to_string(), value);
    }
}

/// A stable name of each failure for scripts (`--json`'s `error.kind`).
pub fn kind(f: &Failure) -> &'static str {
    match f {
        Failure::Policy(_) => "policy_invalid",
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
            ClientError::Status { .. } => "driver_status",
            ClientError::Malformed { .. } => "malformed_reply",
            ClientError::Os { .. } => "os_error",
            ClientError::Unsupported => "unsupported",
        },
    }
}

/// The JSON document of a failure.
pub fn failure_json(f: &Failure) -> Value {
    let mut error = json!({ "kind": kind(f) });
    match f {
        Failure::Client(e) => {
            set(&mut error, "message", json!(e.to_string()));
            if let ClientError::Status { status, .. } | ClientError::PolicyRefused { status } = e {
                set(&mut error, "status", json!(format!("0x{status:08X}")));
            }
        }
        Failure::Store { path, message } => {
            set(&mut error, "message", json!(message));
            set(&mut error, "path", json!(path));
        }
        Failure::Policy(d) => {
            set(&mut error, "message", json!("the policy file is invalid"));
            set(&mut error, "diagnostics", Value::Array(
                d.0.iter()
                    .map(|d| json!({ "file": d.file, "line": d.line, "column": d.column, "message": d.message }))
                    .collect(),
            ));
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

    /// Prints a result: `human` as text, or `doc` as one line of JSON.
    pub fn result(&self, human: &str, doc: &Value) {
        if self.json {
            println!("{doc}");
        } else if !human.is_empty() {
            print!("{human}");
            if !human.ends_with('\n') {
                println!();
            }
        }
    }

    /// Prints a failure: `error: ...` lines on stderr, or the JSON document on stdout.
    pub fn error(&self, f: &Failure) {
        if self.json {
            println!("{}", failure_json(f));
            return;
        }
        match f {
            Failure::Client(e) => eprintln!("error: {e}"),
            Failure::Store { path, message } => {
                eprintln!("error: {path}: {message} (run from an elevated prompt; the install creates the directory)")
            }
            Failure::Policy(d) => {
                for d in &d.0 {
                    eprintln!("error: {d}");
                }
            }
        }
    }

    /// A note on stderr (text mode only; JSON carries it in the document).
    pub fn note(&self, text: &str) {
        if !self.json {
            eprintln!("note: {text}");
        }
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
        let d = Diagnostic {
            file: "p.toml".into(),
            line: 3,
            column: 20,
            message: "port range 9000-80 is reversed".into(),
        };
        let j = failure_json(&Failure::Policy(Diagnostics(vec![d])));
        assert_eq!(j["error"]["kind"], "policy_invalid");
        assert_eq!(
            j["error"]["diagnostics"][0],
            json!({"file": "p.toml", "line": 3, "column": 20, "message": "port range 9000-80 is reversed"})
        );
    }
}
