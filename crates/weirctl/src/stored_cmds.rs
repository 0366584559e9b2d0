//! The stored-policy commands: `policy load` (store + activate, or `--this-run`),
//! `policy clear` (both, or one of them), `policy compile -o`, `policy reload`, and the
//! policy-source part of `status`.

use crate::commands::{app_paths, check_file, policy_json, summary};
use crate::output::{set, Failure, Output};
use clap::Args;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use weir_client::stored;
use weir_client::weir_abi::policy_status::{PolicyStatus, FAIL_MODE_CLOSED, SOURCE_NONE};
use weir_client::weir_abi::status::{
    describe, STATUS_OBJECT_NAME_NOT_FOUND, STATUS_OBJECT_PATH_NOT_FOUND,
};
use weir_client::{Client, ClientError, Transport};

/// `weirctl policy load`.
#[derive(Args)]
#[command(
    after_long_help = "Examples:\n  weirctl policy load C:\\ProgramData\\Weir\\policy.toml\n  \
    weirctl policy load --this-run test.toml   (gone after the next restart)"
)]
pub struct LoadArgs {
    /// The policy file: TOML, or a stored file made by `weirctl policy compile`.
    pub file: PathBuf,
    /// Activate for this run of the driver only: do not store it (the stored policy, if
    /// any, comes back at the next driver start).
    #[arg(long)]
    pub this_run: bool,
    /// Where to store (tests; the driver reads only its fixed path).
    #[arg(long, hide = true)]
    pub stored_path: Option<PathBuf>,
}

/// `weirctl policy clear`.
#[derive(Args)]
#[command(
    after_long_help = "Examples:\n  weirctl policy clear              (no policy now, none after restart)\n  \
    weirctl policy clear --stored     (delete the stored copy; the active policy stays until restart)\n  \
    weirctl policy clear --this-run   (permit everything now; the stored policy returns at the next start)"
)]
pub struct ClearArgs {
    /// Only delete the stored policy; the active policy stays until the driver restarts.
    #[arg(long, conflicts_with = "this_run")]
    pub stored: bool,
    /// Only clear the active policy; the stored policy is enforced again at the next start.
    #[arg(long)]
    pub this_run: bool,
    /// Where the stored policy is (tests).
    #[arg(long, hide = true)]
    pub stored_path: Option<PathBuf>,
}

/// `weirctl policy compile`.
#[derive(Args)]
#[command(
    after_long_help = "Example (build once, deploy the same bytes everywhere):\n  \
    weirctl policy compile policy.toml -o weir.policy\n  \
    copy weir.policy %SystemRoot%\\System32\\drivers\\weir\\weir.policy & weirctl policy reload"
)]
pub struct CompileArgs {
    /// The policy file (TOML).
    pub file: PathBuf,
    /// Output: the stored form, exactly what the driver reads from
    /// %SystemRoot%\System32\drivers\weir\weir.policy.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Keep application paths as written instead of converting them to NT device paths
    /// (always so off Windows; see docs/deployment.md).
    #[arg(long)]
    pub keep_paths: bool,
}

fn store_failure(path: &Path, what: &str, e: &std::io::Error) -> Failure {
    Failure::Store {
        path: path.display().to_string(),
        message: format!("{what}: {e}"),
    }
}

fn stored_path(explicit: Option<PathBuf>) -> Result<PathBuf, Failure> {
    explicit.or_else(stored::default_path).ok_or_else(|| Failure::Store {
        path: "%SystemRoot%\\System32\\drivers\\weir\\weir.policy".into(),
        message: "the stored policy lives on the Windows machine: run this there, or build the file with \
                  `weirctl policy compile FILE -o weir.policy` and copy it"
            .into(),
    })
}

/// A policy to load: its wire blob and the decoded model (for the summary).
struct ToLoad {
    blob: Vec<u8>,
    policy: weir_client::weir_policy::Policy,
}

/// A TOML policy file, or an already compiled stored file (`policy compile -o`, starts
/// with `WEIRSTOR`): checked like the driver checks it, so a damaged copy is refused here.
fn read_policy(file: &Path) -> Result<ToLoad, Failure> {
    let bytes = std::fs::read(file).map_err(|e| store_failure(file, "cannot read", &e))?;
    if !bytes.starts_with(&weir_client::weir_abi::stored::STORED_MAGIC) {
        let c = check_file(file, app_paths(false))?;
        return Ok(ToLoad {
            blob: c.blob,
            policy: c.loaded.policy,
        });
    }
    let invalid = |message: String| Failure::Store {
        path: file.display().to_string(),
        message,
    };
    let blob = stored::decode(&bytes)
        .map_err(|e| invalid(e.to_string()))?
        .to_vec();
    let policy = weir_client::weir_policy::wire::decode(&blob)
        .map_err(|e| invalid(format!("the stored payload is not a valid policy: {e}")))?;
    weir_client::weir_policy::CompiledPolicy::compile(&policy)
        .map_err(|e| invalid(format!("the stored policy does not compile: {e}")))?;
    Ok(ToLoad { blob, policy })
}

/// `weirctl policy load FILE [--this-run]`.
pub fn load(out: &Output, args: LoadArgs) -> Result<(), Failure> {
    let c = read_policy(&args.file)?;
    let blob_len = c.blob.len();
    if args.this_run {
        let client = crate::device::open()?;
        let reply = client.set_policy_blob(c.blob)?;
        let human = format!(
            "loaded {} for this run only: generation {}, {} ({blob_len} bytes); not stored",
            args.file.display(),
            reply.generation,
            summary(&c.policy)
        );
        let doc = json!({ "ok": true, "file": args.file.display().to_string(), "source": "this-run",
            "generation": reply.generation, "policy": policy_json(&c.policy), "blob_bytes": blob_len });
        out.result(&human, &doc);
        return Ok(());
    }
    let path = stored_path(args.stored_path)?;
    let file = stored::encode(&c.blob);
    let hash = stored::hash_hex(&weir_client::weir_abi::stored::sha256(&c.blob));
    stored::write_atomic(&path, &file)
        .map_err(|e| store_failure(&path, "cannot store the policy", &e))?;
    let mut doc = json!({ "ok": true, "file": args.file.display().to_string(), "stored": path.display().to_string(),
        "sha256": hash, "policy": policy_json(&c.policy), "blob_bytes": blob_len });
    // The driver reads the stored file itself: what it activates is what it will read at
    // the next start.
    let reply = crate::device::open().and_then(|client| client.reload_policy());
    match reply {
        Ok(r) => {
            set(&mut doc, "source", json!("stored"));
            set(&mut doc, "generation", json!(r.generation));
            let human = format!(
                "loaded and stored {}: generation {}, {} ({blob_len} bytes), sha256 {hash}\n  stored in {}",
                args.file.display(),
                r.generation,
                summary(&c.policy),
                path.display()
            );
            out.result(&human, &doc);
            Ok(())
        }
        Err(
            ClientError::NotStarted { .. } | ClientError::NotInstalled | ClientError::NotLoaded,
        ) => {
            set(&mut doc, "source", json!(null));
            set(&mut doc, "active", json!(false));
            let human = format!(
                "stored {} in {} (sha256 {hash}); the driver is not running: it enforces it when it starts",
                args.file.display(),
                path.display()
            );
            out.result(&human, &doc);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// `weirctl policy clear [--stored | --this-run]`.
///
/// The driver is asked first (unless `--stored`): off Windows, or with no driver and no
/// stored file, that error is the answer; with no driver but a stored file, the file is
/// deleted and the command succeeds (nothing is enforced at the next start).
pub fn clear(out: &Output, args: ClearArgs) -> Result<(), Failure> {
    let mut doc = json!({ "ok": true });
    let mut human = String::new();
    let client = if args.stored {
        None
    } else {
        Some(crate::device::open())
    };
    let driver_absent = matches!(
        client,
        Some(Err(ClientError::NotStarted { .. }
            | ClientError::NotInstalled
            | ClientError::NotLoaded))
    );
    let client = match client {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) if !driver_absent || args.this_run => return Err(e.into()),
        Some(Err(e)) => {
            // Deleting the stored file is still useful; report the driver only if there was
            // nothing to delete.
            let path = stored_path(args.stored_path.clone())?;
            if !path.exists() {
                return Err(e.into());
            }
            None
        }
        None => None,
    };
    if !args.this_run {
        let path = stored_path(args.stored_path)?;
        let removed = stored::remove(&path)
            .map_err(|e| store_failure(&path, "cannot delete the stored policy", &e))?;
        set(&mut doc, "stored_removed", json!(removed));
        let _ = writeln!(
            human,
            "{} {}",
            if removed {
                "deleted the stored policy"
            } else {
                "no stored policy at"
            },
            path.display()
        );
    }
    if let Some(client) = client {
        let reply = client.clear_policy()?;
        set(&mut doc, "generation", json!(reply.generation));
        let _ = writeln!(
            human,
            "active policy cleared: generation {}; Weir permits every connection",
            reply.generation
        );
        if args.this_run {
            let _ = writeln!(
                human,
                "the stored policy (if any) is enforced again at the next driver start"
            );
        }
    } else if driver_absent {
        set(&mut doc, "active", json!(false));
        let _ = writeln!(human, "the driver is not running; it starts with no policy");
    } else {
        let _ = writeln!(human, "the active policy stays until the driver restarts (`weirctl policy clear --this-run` clears it now)");
    }
    out.result(human.trim_end(), &doc);
    Ok(())
}

/// `weirctl policy compile FILE -o OUT`: the stored form, written atomically.
pub fn compile(out: &Output, args: CompileArgs) -> Result<(), Failure> {
    let c = check_file(&args.file, app_paths(args.keep_paths))?;
    let file = stored::encode(&c.blob);
    let hash = stored::hash_hex(&weir_client::weir_abi::stored::sha256(&c.blob));
    stored::write_atomic(&args.output, &file)
        .map_err(|e| store_failure(&args.output, "cannot write", &e))?;
    let human = format!(
        "{} -> {}: {}, {} bytes, sha256 {hash}",
        args.file.display(),
        args.output.display(),
        summary(&c.loaded.policy),
        file.len()
    );
    let doc = json!({ "ok": true, "file": args.file.display().to_string(), "output": args.output.display().to_string(),
        "bytes": file.len(), "blob_bytes": c.blob.len(), "sha256": hash, "policy": policy_json(&c.loaded.policy),
        "kept_paths": c.loaded.kept_paths });
    out.result(&human, &doc);
    Ok(())
}

/// `weirctl policy reload`.
pub fn reload(out: &Output) -> Result<(), Failure> {
    let client = crate::device::open()?;
    let r = client.reload_policy()?;
    let s = client.policy_status()?;
    let hash = stored::hash_hex(&s.blob_sha256);
    let human = format!(
        "reloaded the stored policy: generation {}, {} rules, sha256 {hash}",
        r.generation, r.rule_count
    );
    out.result(&human, &json!({ "ok": true, "generation": r.generation, "rule_count": r.rule_count, "sha256": hash }));
    Ok(())
}

/// The policy lines of `weirctl status` and their JSON, from GET_POLICY_STATUS.
pub fn status_part<T: Transport>(client: &Client<T>) -> Result<(String, Value), ClientError> {
    let s = client.policy_status()?;
    Ok((status_text(&s), status_json(&s)))
}

/// No stored policy at all is a state, not a refusal.
fn missing(s: &PolicyStatus) -> bool {
    s.stored_reads > 0
        && matches!(
            s.stored_status,
            STATUS_OBJECT_NAME_NOT_FOUND | STATUS_OBJECT_PATH_NOT_FOUND
        )
}

fn refused(s: &PolicyStatus) -> Option<String> {
    if s.stored_reads == 0 || s.stored_status == 0 || missing(s) {
        return None;
    }
    let why = describe(s.stored_status).unwrap_or("see docs/deployment.md");
    Some(format!("0x{:08X} ({why})", s.stored_status))
}

/// Human lines for the policy source.
pub fn status_text(s: &PolicyStatus) -> String {
    let mut t = String::new();
    if s.source == SOURCE_NONE {
        let _ = writeln!(
            t,
            "source:     none (monitor mode: every connection permitted), generation {}",
            s.generation
        );
    } else {
        let _ = writeln!(
            t,
            "source:     {}, generation {}, loaded {}",
            s.source_name(),
            s.generation,
            crate::events::system_time_text(s.loaded_at)
        );
        let _ = writeln!(
            t,
            "sha256:     {} ({} bytes)",
            stored::hash_hex(&s.blob_sha256),
            s.blob_len
        );
    }
    let _ = writeln!(t, "fail mode:  {}", fail_mode_text(s));
    if let Some(r) = refused(s) {
        let _ = writeln!(t, "stored policy refused: {r}");
    } else if missing(s) {
        let _ = writeln!(t, "stored:     none (weirctl policy load FILE stores one)");
    }
    t
}

/// `open`, or `closed` with whether the fail-closed set is in BFE.
fn fail_mode_text(s: &PolicyStatus) -> &'static str {
    match (s.fail_mode, s.fail_closed_set) {
        (FAIL_MODE_CLOSED, 1) => "closed (fail-closed filters installed)",
        (FAIL_MODE_CLOSED, _) => "closed, but the fail-closed filters are NOT installed (see the driver's trace)",
        _ => "open",
    }
}

/// JSON of the policy source (what a rollout script compares).
pub fn status_json(s: &PolicyStatus) -> Value {
    json!({
        "source": s.source_name(),
        "generation": s.generation,
        "sha256": if s.source == SOURCE_NONE { Value::Null } else { json!(stored::hash_hex(&s.blob_sha256)) },
        "blob_bytes": s.blob_len,
        "rule_count": s.rule_count,
        "loaded_at": if s.loaded_at == 0 { Value::Null } else { json!(crate::events::system_time_text(s.loaded_at)) },
        "stored_reads": s.stored_reads,
        "stored_present": !missing(s),
        "fail_mode": if s.fail_mode == FAIL_MODE_CLOSED { "closed" } else { "open" },
        "fail_closed_installed": s.fail_closed_set == 1,
        "stored_refused": refused(s).map(|_| json!({ "status": format!("0x{:08X}", s.stored_status),
            "reason": describe(s.stored_status) })).unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_client::weir_abi::policy_status::SOURCE_STORED;

    #[test]
    fn status_says_source_hash_and_refusal() {
        let s = PolicyStatus {
            generation: 3,
            source: SOURCE_STORED,
            loaded_at: 133_500_000_000_000_000,
            blob_sha256: [0xab; 32],
            blob_len: 100,
            stored_reads: 2,
            stored_status: 0xE057_3002,
            ..Default::default()
        };
        let t = status_text(&s);
        assert!(t.contains("source:     stored, generation 3"), "{t}");
        assert!(t.contains(&"ab".repeat(32)), "{t}");
        assert!(
            t.contains("stored policy refused: 0xE0573002 (the stored policy file is corrupted"),
            "{t}"
        );
        let j = status_json(&s);
        assert_eq!(j["source"], "stored");
        assert_eq!(j["sha256"], "ab".repeat(32));
        assert_eq!(j["stored_refused"]["status"], "0xE0573002");
        let none = PolicyStatus {
            stored_reads: 1,
            stored_status: 0xC000_0034,
            ..Default::default()
        };
        let j = status_json(&none);
        assert_eq!(
            (j["source"].as_str(), j["sha256"].is_null()),
            (Some("none"), true)
        );
        assert!(
            status_text(&none).contains("stored:     none"),
            "{}",
            status_text(&none)
        );
        assert_eq!(
            (j["stored_refused"].is_null(), j["stored_present"].as_bool()),
            (true, Some(false))
        );
    }

    #[test]
    fn status_says_the_failure_mode() {
        let open = PolicyStatus::default();
        assert!(status_text(&open).contains("fail mode:  open"), "{}", status_text(&open));
        assert_eq!(status_json(&open)["fail_mode"], "open");
        let closed = PolicyStatus { fail_mode: FAIL_MODE_CLOSED, fail_closed_set: 1, ..Default::default() };
        assert!(status_text(&closed).contains("fail mode:  closed (fail-closed filters installed)"));
        assert_eq!(
            (status_json(&closed)["fail_mode"].as_str(), status_json(&closed)["fail_closed_installed"].as_bool()),
            (Some("closed"), Some(true))
        );
        let broken = PolicyStatus { fail_closed_set: 0, ..closed };
        assert!(status_text(&broken).contains("NOT installed"), "{}", status_text(&broken));
    }
}
