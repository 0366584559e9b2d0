//! `weirctl policy check|show`; `explain`, `diff` and the stored policy (`load`, `compile`,
//! `reload`, `clear`) in `policy/`.

mod diff;
mod explain;
mod stored;

use super::plural;
use crate::output::{Failure, Output};
use clap::{Args, Subcommand};
pub use diff::DiffArgs;
pub use explain::ExplainArgs;
use explain::EXPLAIN_HELP;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use weir_client::paths::FixedDriveMap;
use weir_client::text::{
    self, AppConversion, AppPaths, Diagnostic, Diagnostics, LoadOptions, Loaded, Severity,
};
use weir_client::weir_policy::{limits, CompiledPolicy, Policy};
use weir_client::{client, ClientError};

/// `weirctl policy ...`.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Parse, validate and compile a policy file locally (any OS; no driver needed).
    #[command(after_long_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Check a policy file, store it and make it the driver's active policy (atomic
    /// replace); `--this-run` activates it without storing.
    #[command(after_long_help = stored::LOAD_HELP)]
    Load(LoadArgs),
    /// Write the stored form of a policy file (what the driver reads at start) to a file.
    Compile(stored::CompileArgs),
    /// Make the driver read its stored policy again and activate it.
    #[command(after_long_help = "Example (after a deployment tool replaced the stored file):\n  weirctl policy reload")]
    Reload,
    /// Which rule decides a connection, and why each earlier rule does not (a file, or the
    /// active policy).
    #[command(after_long_help = EXPLAIN_HELP)]
    Explain(ExplainArgs),
    /// What loading FILE would change against the active policy (or --against another file).
    #[command(
        after_long_help = "Examples:\n  weirctl policy diff new.toml\n  weirctl policy diff new.toml --against old.toml --json"
    )]
    Diff(DiffArgs),
    /// Print the active policy in the policy file format.
    #[command(after_long_help = "Example:\n  weirctl policy show > active.toml")]
    Show,
    /// Remove the active and the stored policy (or one of them): the driver permits every
    /// connection again.
    Clear(stored::ClearArgs),
}

const CHECK_HELP: &str = "Examples:\n  weirctl policy check examples\\blocklist.toml\n  \
    weirctl policy check --drive-map 'C:=\\Device\\HarddiskVolume3' --json policy.toml\n\n\
    The policy language (every field, every warning code): docs/policy-language.md";

/// Options shared by `check` and `load`.
#[derive(Args)]
pub struct CommonArgs {
    /// The policy file (TOML; UTF-8 or UTF-16 with BOM).
    pub file: PathBuf,
    /// Treat warnings as errors (exit 1).
    #[arg(long)]
    pub deny_warnings: bool,
}

/// Arguments of `policy check`.
#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Keep application paths as written instead of converting them to NT device paths
    /// (always so off Windows unless --drive-map is given).
    #[arg(long, conflicts_with = "drive_map")]
    pub keep_paths: bool,
    /// Convert application paths with this drive map instead of this machine's, to check a
    /// policy meant for another machine (repeat, or separate with commas):
    /// `C:=\Device\HarddiskVolume3`.
    #[arg(long, value_name = "DRIVE=DEVICE", value_delimiter = ',')]
    pub drive_map: Vec<String>,
}

/// Arguments of `policy load`.
#[derive(Args)]
pub struct LoadArgs {
    // FILE may also be a stored file made by `weirctl policy compile` (LOAD_HELP).
    #[command(flatten)]
    pub common: CommonArgs,
    /// Activate for this run of the driver only: do not store it (the stored policy, if
    /// any, comes back at the next driver start).
    #[arg(long)]
    pub this_run: bool,
    /// Where to store (tests; the driver reads only its fixed path).
    #[arg(long, hide = true)]
    pub stored_path: Option<PathBuf>,
}

/// The drive map of `--drive-map` entries.
pub(super) fn drive_map(entries: &[String]) -> Result<FixedDriveMap, Failure> {
    let mut pairs = Vec::new();
    for e in entries {
        let Some((drive, device)) = e.split_once('=') else {
            return Err(usage(format!(
                "--drive-map `{e}`: expected DRIVE=DEVICE, e.g. C:=\\Device\\HarddiskVolume3"
            )));
        };
        let drive = drive.trim();
        let ok = drive.len() == 2
            && drive.ends_with(':')
            && drive
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic());
        if !ok || !device.starts_with('\\') {
            return Err(usage(format!(
                "--drive-map `{e}`: expected a drive letter and an NT device path, e.g. C:=\\Device\\HarddiskVolume3"
            )));
        }
        pairs.push((drive.to_ascii_uppercase(), device.trim().to_string()));
    }
    Ok(FixedDriveMap::new(pairs))
}

fn usage(message: String) -> Failure {
    Failure::Usage(message)
}

/// How application paths are treated on this OS: converted with this machine's drives on
/// Windows, kept as written elsewhere.
pub(super) fn os_app_paths(keep: bool) -> AppPaths<'static> {
    #[cfg(windows)]
    {
        static DOS: weir_client::win32::DosDevices = weir_client::win32::DosDevices;
        if !keep {
            return AppPaths::Convert(&DOS);
        }
    }
    let _ = keep;
    AppPaths::Keep
}

fn file_error(file: &Path, message: String) -> Failure {
    Failure::Policy(Diagnostics::one(Diagnostic::file_error(
        &file.display().to_string(),
        message,
    )))
}

/// A checked policy: parsed, encoded, compiled.
pub struct Checked {
    pub loaded: Loaded,
    pub blob: Vec<u8>,
    pub compiled: CompiledPolicy,
    pub parse_ms: f64,
    pub compile_ms: f64,
}

/// Reads, validates, encodes and compiles `file`: everything `load` does before the driver.
/// With `deny_warnings`, warnings fail it.
pub fn check_file(
    file: &Path,
    paths: AppPaths<'_>,
    deny_warnings: bool,
) -> Result<Checked, Failure> {
    let started = Instant::now();
    let loaded = text::load_file(file, &LoadOptions { app_paths: paths })?;
    let parse_ms = started.elapsed().as_secs_f64() * 1e3;
    if deny_warnings && !loaded.warnings.list.is_empty() {
        let mut d = loaded.warnings.clone();
        for w in &mut d.list {
            w.severity = Severity::Error;
            w.message.push_str(" (--deny-warnings)");
        }
        return Err(Failure::Policy(d));
    }
    let blob = client::encode(&loaded.policy).map_err(|e| match e {
        ClientError::PolicyTooLarge { limit, .. } => file_error(
            file,
            format!("policy too large: its blob would exceed the limit of {limit} bytes"),
        ),
        other => Failure::Client(other),
    })?;
    let started = Instant::now();
    let compiled = CompiledPolicy::compile(&loaded.policy)
        .map_err(|e| file_error(file, format!("does not compile: {e}")))?;
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(Checked {
        loaded,
        blob,
        compiled,
        parse_ms,
        compile_ms,
    })
}

/// What a policy holds, in a line.
#[derive(Serialize)]
pub struct PolicySummary {
    pub rules: usize,
    /// Rules with `enabled = false` (kept, never matching).
    pub disabled_rules: usize,
    pub sets: usize,
    pub set_entries: usize,
    pub default_outbound: &'static str,
    pub default_inbound: &'static str,
    pub log_all: bool,
}

impl PolicySummary {
    pub fn new(p: &Policy) -> Self {
        Self {
            rules: p.rules.len(),
            disabled_rules: p.rules.iter().filter(|r| !r.enabled).count(),
            sets: p.sets.len(),
            set_entries: p.sets.iter().map(|s| s.entries.len()).sum(),
            default_outbound: p.default_outbound.as_str(),
            default_inbound: p.default_inbound.as_str(),
            log_all: p.log_all,
        }
    }
}

impl fmt::Display for PolicySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}, {} ({}), default outbound {}, inbound {}{}",
            plural(self.rules, "rule", "rules"),
            if self.disabled_rules == 0 {
                String::new()
            } else {
                format!(" ({} disabled)", self.disabled_rules)
            },
            plural(self.sets, "address set", "address sets"),
            plural(self.set_entries, "entry", "entries"),
            self.default_outbound,
            self.default_inbound,
            if self.log_all { ", log_all" } else { "" }
        )
    }
}

/// The result of `policy check`.
#[derive(Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub file: String,
    pub policy: PolicySummary,
    pub blob_bytes: usize,
    pub compiled_bytes: usize,
    pub parse_ms: f64,
    pub compile_ms: f64,
    /// Application paths kept as written (not converted).
    pub kept_paths: Vec<String>,
    /// What each application path became.
    pub apps: Vec<AppConversion>,
    pub warnings: Vec<Diagnostic>,
    pub warnings_omitted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: ok: {}", self.file, self.policy)?;
        writeln!(
            f,
            "  blob {} bytes (limit {}), compiled {} bytes; parsed in {:.1} ms, compiled in {:.1} ms",
            self.blob_bytes,
            limits::MAX_BLOB_BYTES,
            self.compiled_bytes,
            self.parse_ms,
            self.compile_ms
        )?;
        if !self.warnings.is_empty() {
            writeln!(
                f,
                "  {} (on stderr)",
                plural(
                    self.warnings.len() + self.warnings_omitted,
                    "warning",
                    "warnings"
                )
            )?;
        }
        for a in &self.apps {
            let how = if a.kept {
                "kept as written"
            } else if a.by_os {
                "matches (id from Windows)"
            } else {
                "matches"
            };
            writeln!(f, "  rule {} app {how}: {}", a.rule, a.converted)?;
        }
        Ok(())
    }
}

/// `weirctl policy ...`.
pub fn run(cmd: &PolicyCommand, out: &Output) -> Result<(), Failure> {
    match cmd {
        PolicyCommand::Check(a) => check(a, out),
        PolicyCommand::Load(a) => stored::load(a, out),
        PolicyCommand::Compile(a) => stored::compile(a, out),
        PolicyCommand::Reload => stored::reload(out),
        PolicyCommand::Explain(a) => explain::run(a, out),
        PolicyCommand::Diff(a) => diff::run(a, out),
        PolicyCommand::Show => show(out),
        PolicyCommand::Clear(a) => stored::clear(a, out),
    }
}

fn check(args: &CheckArgs, out: &Output) -> Result<(), Failure> {
    let file = &args.common.file;
    let map;
    let paths = if args.drive_map.is_empty() {
        os_app_paths(args.keep_paths)
    } else {
        map = drive_map(&args.drive_map)?;
        AppPaths::Convert(&map)
    };
    let c = check_file(file, paths, args.common.deny_warnings)?;
    let kept = c.loaded.kept_paths.clone();
    let note = (!kept.is_empty()).then(|| {
        let why = if cfg!(windows) {
            "--keep-paths"
        } else {
            "this is not Windows; --drive-map converts them as a given machine would"
        };
        format!(
            "{} application path(s) kept as written, not converted to NT device paths ({why}); `weirctl policy load` \
             converts them on the target machine: {}",
            kept.len(),
            kept.join(", ")
        )
    });
    let report = CheckReport {
        ok: true,
        file: file.display().to_string(),
        policy: PolicySummary::new(&c.loaded.policy),
        blob_bytes: c.blob.len(),
        compiled_bytes: c.compiled.memory_bytes(),
        parse_ms: c.parse_ms,
        compile_ms: c.compile_ms,
        kept_paths: kept,
        apps: c.loaded.apps.clone(),
        warnings: c.loaded.warnings.list.clone(),
        warnings_omitted: c.loaded.warnings.omitted,
        note,
    };
    out.warnings(&c.loaded.warnings);
    out.result(&report)?;
    if let Some(n) = &report.note {
        out.note(n);
    }
    Ok(())
}

/// One rule as `policy show --json` and `stats --rules` label it.
#[derive(Serialize)]
pub struct RuleLabel {
    pub index: usize,
    pub id: u32,
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub enabled: bool,
}

impl RuleLabel {
    /// The labels of `p`'s rules, in order.
    pub fn all(p: &Policy) -> Vec<RuleLabel> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        p.rules
            .iter()
            .enumerate()
            .map(|(index, r)| RuleLabel {
                index,
                id: r.id,
                action: r.action.as_str(),
                name: some(&r.name),
                description: some(&r.description),
                enabled: r.enabled,
            })
            .collect()
    }
}

/// The result of `policy show`.
#[derive(Serialize)]
pub struct ShowReport {
    pub ok: bool,
    pub generation: u64,
    pub loaded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicySummary>,
    /// Every rule's index, id, action, name, description and `enabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleLabel>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl fmt::Display for ShowReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            None => writeln!(
                f,
                "# no policy loaded (generation {}): Weir permits every connection",
                self.generation
            ),
            Some(body) => write!(f, "# active policy, generation {}\n{body}", self.generation),
        }
    }
}

/// The active policy and its generation (`None`: no policy loaded).
pub fn active_policy() -> Result<(u64, Option<Policy>), Failure> {
    let client = crate::device::open()?;
    Ok(client.get_policy()?)
}

fn show(out: &Output) -> Result<(), Failure> {
    let (generation, policy) = active_policy()?;
    let Some(policy) = policy else {
        out.result(&ShowReport {
            ok: true,
            generation,
            loaded: false,
            policy: None,
            rules: None,
            text: None,
        })?;
        return Ok(());
    };
    #[cfg(windows)]
    let drives: Option<&dyn weir_client::paths::DriveMap> = Some(&weir_client::win32::DosDevices);
    #[cfg(not(windows))]
    let drives: Option<&dyn weir_client::paths::DriveMap> = None;
    out.result(&ShowReport {
        ok: true,
        generation,
        loaded: true,
        policy: Some(PolicySummary::new(&policy)),
        rules: Some(RuleLabel::all(&policy)),
        text: Some(text::format(&policy, drives)),
    })?;
    Ok(())
}
