//! The stored policy: `policy load` (store + activate, or `--this-run`), `policy clear`
//! (both, or one of them), `policy compile -o` and `policy reload`. The policy-source lines
//! of `status` are in `commands::status`.

use super::{check_file, os_app_paths, LoadArgs, PolicySummary};
use crate::output::{Failure, Output};
use clap::Args;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use weir_client::stored;
use weir_client::text::{Diagnostic, Diagnostics};
use weir_client::ClientError;

pub const LOAD_HELP: &str = "Examples:\n  weirctl policy load C:\\ProgramData\\Weir\\policy.toml\n  \
    weirctl policy load --this-run test.toml   (gone after the next restart)\n  \
    weirctl policy load --deny-warnings policy.toml\n  \
    weirctl policy load weir.policy   (a file made by `weirctl policy compile`)";

/// Arguments of `policy clear`.
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

/// Arguments of `policy compile`.
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
    /// Treat warnings as errors (exit 1).
    #[arg(long)]
    pub deny_warnings: bool,
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

/// Whether the driver is simply not there (as opposed to refusing a request).
fn driver_absent(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::NotStarted { .. } | ClientError::NotInstalled | ClientError::NotLoaded
    )
}

/// A policy to load: its wire blob, the decoded model (for the summary) and its warnings.
struct ToLoad {
    blob: Vec<u8>,
    policy: weir_client::weir_policy::Policy,
    warnings: Diagnostics,
}

/// A TOML policy file, or an already compiled stored file (`policy compile -o`, starts
/// with `WEIRSTOR`): checked like the driver checks it, so a damaged copy is refused here.
fn read_policy(file: &Path, deny_warnings: bool) -> Result<ToLoad, Failure> {
    let bytes = std::fs::read(file).map_err(|e| store_failure(file, "cannot read", &e))?;
    if !bytes.starts_with(&weir_client::weir_abi::stored::STORED_MAGIC) {
        let c = check_file(file, os_app_paths(false), deny_warnings)?;
        return Ok(ToLoad {
            blob: c.blob,
            policy: c.loaded.policy,
            warnings: c.loaded.warnings,
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
    Ok(ToLoad {
        blob,
        policy,
        warnings: Diagnostics::default(),
    })
}

/// The result of `policy load`.
#[derive(Serialize)]
pub struct LoadReport {
    pub ok: bool,
    pub file: String,
    /// `stored`, `this-run`, or null when the driver is not running (stored only).
    pub source: Option<&'static str>,
    /// Whether the driver activated it now.
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Where it was stored (absent with `--this-run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub policy: PolicySummary,
    pub blob_bytes: usize,
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, policy, bytes) = (&self.file, &self.policy, self.blob_bytes);
        let hash = self.sha256.as_deref().unwrap_or("");
        match (&self.stored, self.generation) {
            (None, generation) => writeln!(
                f,
                "loaded {file} for this run only: generation {}, {policy} ({bytes} bytes); not stored",
                generation.unwrap_or(0)
            ),
            (Some(path), Some(generation)) => writeln!(
                f,
                "loaded and stored {file}: generation {generation}, {policy} ({bytes} bytes), sha256 {hash}\n  stored in {path}"
            ),
            (Some(path), None) => writeln!(
                f,
                "stored {file} in {path} (sha256 {hash}); the driver is not running: it enforces it when it starts"
            ),
        }
    }
}

/// `weirctl policy load FILE [--this-run]`.
pub fn load(args: &LoadArgs, out: &Output) -> Result<(), Failure> {
    let file = &args.common.file;
    let c = read_policy(file, args.common.deny_warnings)?;
    out.warnings(&c.warnings);
    let mut report = LoadReport {
        ok: true,
        file: file.display().to_string(),
        source: None,
        active: false,
        generation: None,
        stored: None,
        sha256: None,
        policy: PolicySummary::new(&c.policy),
        blob_bytes: c.blob.len(),
        warnings: c.warnings.list,
    };
    if args.this_run {
        let client = crate::device::open()?;
        let reply = client.set_policy_blob(c.blob)?;
        report.source = Some("this-run");
        report.active = true;
        report.generation = Some(reply.generation);
        out.result(&report)?;
        return Ok(());
    }
    let path = stored_path(args.stored_path.clone())?;
    let bytes = stored::encode(&c.blob);
    report.sha256 = Some(stored::hash_hex(&weir_client::weir_abi::stored::sha256(&c.blob)));
    stored::write_atomic(&path, &bytes)
        .map_err(|e| store_failure(&path, "cannot store the policy", &e))?;
    report.stored = Some(path.display().to_string());
    // The driver reads the stored file itself: what it activates is what it will read at
    // the next start.
    match crate::device::open().and_then(|client| client.reload_policy()) {
        Ok(r) => {
            report.source = Some("stored");
            report.active = true;
            report.generation = Some(r.generation);
        }
        Err(e) if driver_absent(&e) => {}
        Err(e) => return Err(e.into()),
    }
    out.result(&report)?;
    Ok(())
}

/// The result of `policy clear`.
#[derive(Serialize)]
pub struct ClearReport {
    pub ok: bool,
    /// The stored file's path and whether there was one to delete (absent with `--this-run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_removed: Option<bool>,
    /// The generation after clearing the active policy (absent if it was not cleared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// False when the driver is not running.
    pub active: bool,
    #[serde(skip)]
    this_run: bool,
}

impl fmt::Display for ClearReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(path), Some(removed)) = (&self.stored_path, self.stored_removed) {
            let what = if removed { "deleted the stored policy" } else { "no stored policy at" };
            writeln!(f, "{what} {path}")?;
        }
        match self.generation {
            Some(generation) => {
                writeln!(f, "active policy cleared: generation {generation}; Weir permits every connection")?;
                if self.this_run {
                    writeln!(f, "the stored policy (if any) is enforced again at the next driver start")?;
                }
            }
            None if !self.active => writeln!(f, "the driver is not running; it starts with no policy")?,
            None => writeln!(
                f,
                "the active policy stays until the driver restarts (`weirctl policy clear --this-run` clears it now)"
            )?,
        }
        Ok(())
    }
}

/// `weirctl policy clear [--stored | --this-run]`.
///
/// The driver is asked first (unless `--stored`): off Windows, or with no driver and no
/// stored file, that error is the answer; with no driver but a stored file, the file is
/// deleted and the command succeeds (nothing is enforced at the next start).
pub fn clear(args: &ClearArgs, out: &Output) -> Result<(), Failure> {
    let mut report = ClearReport {
        ok: true,
        stored_path: None,
        stored_removed: None,
        generation: None,
        active: true,
        this_run: args.this_run,
    };
    let client = if args.stored {
        None
    } else {
        match crate::device::open() {
            Ok(c) => Some(c),
            Err(e) if !driver_absent(&e) || args.this_run => return Err(e.into()),
            Err(e) => {
                // Deleting the stored file is still useful; report the driver only if there
                // was nothing to delete.
                let path = stored_path(args.stored_path.clone())?;
                if !path.exists() {
                    return Err(e.into());
                }
                report.active = false;
                None
            }
        }
    };
    if !args.this_run {
        let path = stored_path(args.stored_path.clone())?;
        let removed = stored::remove(&path)
            .map_err(|e| store_failure(&path, "cannot delete the stored policy", &e))?;
        report.stored_path = Some(path.display().to_string());
        report.stored_removed = Some(removed);
    }
    if let Some(client) = client {
        report.generation = Some(client.clear_policy()?.generation);
    }
    out.result(&report)?;
    Ok(())
}

/// The result of `policy compile`.
#[derive(Serialize)]
pub struct CompileReport {
    pub ok: bool,
    pub file: String,
    pub output: String,
    /// The stored file's size (header and blob).
    pub bytes: usize,
    pub blob_bytes: usize,
    pub sha256: String,
    pub policy: PolicySummary,
    pub kept_paths: Vec<String>,
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for CompileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} -> {}: {}, {} bytes, sha256 {}",
            self.file, self.output, self.policy, self.bytes, self.sha256
        )
    }
}

/// `weirctl policy compile FILE -o OUT`: the stored form, written atomically.
pub fn compile(args: &CompileArgs, out: &Output) -> Result<(), Failure> {
    let c = check_file(&args.file, os_app_paths(args.keep_paths), args.deny_warnings)?;
    out.warnings(&c.loaded.warnings);
    let bytes = stored::encode(&c.blob);
    let sha256 = stored::hash_hex(&weir_client::weir_abi::stored::sha256(&c.blob));
    stored::write_atomic(&args.output, &bytes)
        .map_err(|e| store_failure(&args.output, "cannot write", &e))?;
    out.result(&CompileReport {
        ok: true,
        file: args.file.display().to_string(),
        output: args.output.display().to_string(),
        bytes: bytes.len(),
        blob_bytes: c.blob.len(),
        sha256,
        policy: PolicySummary::new(&c.loaded.policy),
        kept_paths: c.loaded.kept_paths,
        warnings: c.loaded.warnings.list,
    })?;
    Ok(())
}

/// The result of `policy reload`.
#[derive(Serialize)]
pub struct ReloadReport {
    pub ok: bool,
    pub generation: u64,
    pub rule_count: u32,
    pub sha256: String,
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "reloaded the stored policy: generation {}, {} rules, sha256 {}",
            self.generation, self.rule_count, self.sha256
        )
    }
}

/// `weirctl policy reload`.
pub fn reload(out: &Output) -> Result<(), Failure> {
    let client = crate::device::open()?;
    let r = client.reload_policy()?;
    let s = client.policy_status()?;
    out.result(&ReloadReport {
        ok: true,
        generation: r.generation,
        rule_count: r.rule_count,
        sha256: stored::hash_hex(&s.blob_sha256),
    })?;
    Ok(())
}
