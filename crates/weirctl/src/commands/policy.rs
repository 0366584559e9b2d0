//! `weirctl policy check|load|show|clear`.

use super::plural;
use crate::output::{Failure, Output};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Instant;
use weir_client::diff::Change;
use weir_client::explain::Explanation;
use weir_client::paths as paths_mod;
use weir_client::paths::FixedDriveMap;
use weir_client::text::{
    self, AppConversion, AppPaths, Diagnostic, Diagnostics, LoadOptions, Loaded, Severity,
};
use weir_client::weir_policy::{limits, CompiledPolicy, Policy};
use weir_client::weir_policy::{Direction, Query};
use weir_client::{client, ClientError};

/// `weirctl policy ...`.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Parse, validate and compile a policy file locally (any OS; no driver needed).
    #[command(after_long_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Check a policy file and make it the driver's active policy (atomic replace).
    #[command(
        after_long_help = "Examples:\n  weirctl policy load C:\\weir\\policy.toml\n  weirctl policy load --deny-warnings policy.toml"
    )]
    Load(LoadArgs),
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
    /// Remove the active policy: the driver permits every connection again.
    #[command(after_long_help = "Example:\n  weirctl policy clear")]
    Clear,
}

const CHECK_HELP: &str = "Examples:\n  weirctl policy check examples\\blocklist.toml\n  \
    weirctl policy check --drive-map 'C:=\\Device\\HarddiskVolume3' --json policy.toml\n\n\
    The policy language (every field, every warning code): docs/policy-language.md";

const EXPLAIN_HELP: &str = "Examples:\n  weirctl policy explain examples\\server-ports.toml --direction inbound --protocol tcp --remote 203.0.113.5:50000 --local 192.0.2.10:3389\n  \
    weirctl policy explain --remote 1.1.1.1:53 --protocol udp --app 'C:\\Windows\\System32\\svchost.exe'\n\n\
    Without FILE, the driver's active policy is explained. The verdict is the one the driver's own lookup gives \
    (the compiled policy), checked against the reference evaluator.";

/// Arguments of `policy explain`.
#[derive(Args)]
pub struct ExplainArgs {
    /// The policy file; without it, the active policy.
    pub file: Option<PathBuf>,
    /// outbound or inbound.
    #[arg(long, default_value = "outbound")]
    pub direction: String,
    /// tcp, udp, icmp, icmpv6 or a number.
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Remote address and port: `203.0.113.5:443`, `[2001:db8::1]:443` (port 0 when omitted;
    /// for ICMP the port is the ICMP code).
    #[arg(long)]
    pub remote: String,
    /// Local address and port (default: the unspecified address, port 0; for ICMP the port is
    /// the ICMP type).
    #[arg(long)]
    pub local: Option<String>,
    /// The application's path, as written in policies.
    #[arg(long)]
    pub app: Option<String>,
    /// The connection is loopback.
    #[arg(long)]
    pub loopback: bool,
    /// Convert paths with this drive map (as `policy check --drive-map`).
    #[arg(long, value_name = "DRIVE=DEVICE", value_delimiter = ',')]
    pub drive_map: Vec<String>,
}

/// Arguments of `policy diff`.
#[derive(Args)]
pub struct DiffArgs {
    /// The policy file that would be loaded.
    pub file: PathBuf,
    /// Compare with this file instead of the active policy.
    #[arg(long)]
    pub against: Option<PathBuf>,
}

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
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The drive map of `--drive-map` entries.
fn drive_map(entries: &[String]) -> Result<FixedDriveMap, Failure> {
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
    Failure::Policy(Diagnostics::one(
        Diagnostic::file_error("--drive-map", message).with_code("usage"),
    ))
}

/// How application paths are treated on this OS: converted with this machine's drives on
/// Windows, kept as written elsewhere.
fn os_app_paths(keep: bool) -> AppPaths<'static> {
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
            "{}, {} ({}), default outbound {}, inbound {}{}",
            plural(self.rules, "rule", "rules"),
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
        PolicyCommand::Load(a) => load(a, out),
        PolicyCommand::Explain(a) => explain(a, out),
        PolicyCommand::Diff(a) => diff(a, out),
        PolicyCommand::Show => show(out),
        PolicyCommand::Clear => clear(out),
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

/// The result of `policy load`.
#[derive(Serialize)]
pub struct LoadReport {
    pub ok: bool,
    pub file: String,
    pub generation: u64,
    pub policy: PolicySummary,
    pub blob_bytes: usize,
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "loaded {}: generation {}, {} ({} bytes)",
            self.file, self.generation, self.policy, self.blob_bytes
        )
    }
}

fn load(args: &LoadArgs, out: &Output) -> Result<(), Failure> {
    let file = &args.common.file;
    let client = crate::device::open()?;
    let c = check_file(file, os_app_paths(false), args.common.deny_warnings)?;
    let blob_bytes = c.blob.len();
    out.warnings(&c.loaded.warnings);
    let reply = client.set_policy_blob(c.blob)?;
    out.result(&LoadReport {
        ok: true,
        file: file.display().to_string(),
        generation: reply.generation,
        policy: PolicySummary::new(&c.loaded.policy),
        blob_bytes,
        warnings: c.loaded.warnings.list,
    })?;
    Ok(())
}

/// The result of `policy show`.
#[derive(Serialize)]
pub struct ShowReport {
    pub ok: bool,
    pub generation: u64,
    pub loaded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicySummary>,
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
        text: Some(text::format(&policy, drives)),
    })?;
    Ok(())
}

/// The result of `policy clear`.
#[derive(Serialize)]
pub struct ClearReport {
    pub ok: bool,
    pub generation: u64,
}

impl fmt::Display for ClearReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "policy cleared: generation {}; Weir permits every connection",
            self.generation
        )
    }
}

fn clear(out: &Output) -> Result<(), Failure> {
    let client = crate::device::open()?;
    let reply = client.clear_policy()?;
    out.result(&ClearReport {
        ok: true,
        generation: reply.generation,
    })?;
    Ok(())
}

/// `addr`, `addr:port` or `[v6]:port`.
fn endpoint(s: &str, what: &str) -> Result<(IpAddr, u16), Failure> {
    let bad = || usage_as(what, format!("`{s}` is not an address or address:port"));
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok((a, 0));
    }
    let sa: SocketAddr = s.parse().map_err(|_| bad())?;
    Ok((sa.ip(), sa.port()))
}

fn usage_as(what: &str, message: String) -> Failure {
    Failure::Policy(Diagnostics::one(
        Diagnostic::file_error(what, message).with_code("usage"),
    ))
}

/// The result of `policy explain`.
#[derive(Serialize)]
pub struct ExplainReport {
    pub ok: bool,
    /// The file, or `active policy`.
    pub policy: String,
    pub connection: String,
    #[serde(flatten)]
    pub explanation: Explanation,
    /// The deciding rule as printed in the file format (none for the default).
    pub rule_text: Option<String>,
}

impl fmt::Display for ExplainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.explanation;
        writeln!(f, "{}: {}", self.policy, self.connection)?;
        match (e.rule_index, e.rule_id) {
            (Some(i), Some(id)) => writeln!(
                f,
                "{}: rule {id} (position {}) decides{}",
                e.action,
                i + 1,
                if e.log { ", logged" } else { "" }
            )?,
            _ => writeln!(
                f,
                "{}: no rule matches, the default for the direction decides{}",
                e.action,
                if e.log { ", logged" } else { "" }
            )?,
        }
        for s in &e.skipped {
            writeln!(
                f,
                "  rule {} (position {}) does not match: {}",
                s.id,
                s.index + 1,
                s.reason
            )?;
        }
        Ok(())
    }
}

fn explain(args: &ExplainArgs, out: &Output) -> Result<(), Failure> {
    let map;
    let paths = if args.drive_map.is_empty() {
        os_app_paths(false)
    } else {
        map = drive_map(&args.drive_map)?;
        AppPaths::Convert(&map)
    };
    let (name, policy, compiled) = match &args.file {
        Some(file) => {
            let c = check_file(file, paths, false)?;
            out.warnings(&c.loaded.warnings);
            (file.display().to_string(), c.loaded.policy, c.compiled)
        }
        None => {
            let (generation, policy) = active_policy()?;
            let policy = policy.unwrap_or_else(Policy::permit_all);
            let compiled = CompiledPolicy::compile(&policy)
                .map_err(|e| usage_as("active policy", format!("does not compile: {e}")))?;
            (
                format!("active policy (generation {generation})"),
                policy,
                compiled,
            )
        }
    };
    let direction = Direction::from_name(&args.direction).ok_or_else(|| {
        usage_as(
            "--direction",
            format!("`{}`: expected outbound or inbound", args.direction),
        )
    })?;
    let protocol =
        text::parse_protocol_name(&args.protocol).map_err(|e| usage_as("--protocol", e))?;
    let (remote, remote_port) = endpoint(&args.remote, "--remote")?;
    let (local, local_port) = match &args.local {
        Some(l) => endpoint(l, "--local")?,
        None if remote.is_ipv4() => (IpAddr::from([0u8; 4]), 0),
        None => (IpAddr::from([0u16; 8]), 0),
    };
    let app: Option<Vec<u16>> = match &args.app {
        None => None,
        Some(a) => {
            let nt = match paths {
                AppPaths::Convert(d) => paths_mod::to_nt_path(a, d)
                    .map(|nt| d.app_id(a).unwrap_or(nt))
                    .map_err(|e| usage_as("--app", format!("`{a}`: {e}")))?,
                AppPaths::Keep => a.clone(),
            };
            Some(nt.encode_utf16().collect())
        }
    };
    let q = Query {
        direction,
        remote: remote.into(),
        local: local.into(),
        protocol,
        remote_port,
        local_port,
        app: app.as_deref(),
        loopback: args.loopback,
    };
    let e = weir_client::explain::explain(&policy, &compiled, &q).map_err(|d| {
        Failure::Policy(Diagnostics::one(
            Diagnostic::file_error(
                &name,
                format!(
                    "the compiled lookup ({}) and the reference evaluator ({}) disagree: please report this policy",
                    d.compiled, d.reference
                ),
            )
            .with_code("internal"),
        ))
    })?;
    let rule_text = e.rule_index.and_then(|i| {
        let mut one = policy.clone();
        let r = one.rules.get(i)?.clone();
        one.rules = vec![r];
        let printed = text::format(&one, None);
        printed
            .split_once("[[rule]]")
            .map(|(_, r)| format!("[[rule]]{r}"))
    });
    let connection = format!(
        "{} {} {} -> {}{}{}",
        direction.as_str(),
        args.protocol,
        SocketAddr::new(local, local_port),
        SocketAddr::new(remote, remote_port),
        args.app
            .as_ref()
            .map_or(String::new(), |a| format!(" app {a}")),
        if args.loopback { " loopback" } else { "" }
    );
    out.result(&ExplainReport {
        ok: true,
        policy: name,
        connection,
        explanation: e,
        rule_text,
    })?;
    Ok(())
}

/// The result of `policy diff`.
#[derive(Serialize)]
pub struct DiffReport {
    pub ok: bool,
    pub file: String,
    pub against: String,
    pub changes: Vec<Change>,
}

impl fmt::Display for DiffReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return writeln!(f, "{} against {}: no changes", self.file, self.against);
        }
        writeln!(
            f,
            "{} against {}: {}",
            self.file,
            self.against,
            plural(self.changes.len(), "change", "changes")
        )?;
        for c in &self.changes {
            writeln!(f, "{} {}", c.kind, c.what)?;
            for l in &c.lines {
                writeln!(f, "    {l}")?;
            }
        }
        Ok(())
    }
}

fn diff(args: &DiffArgs, out: &Output) -> Result<(), Failure> {
    let new = check_file(&args.file, os_app_paths(false), false)?;
    out.warnings(&new.loaded.warnings);
    let (against, old) = match &args.against {
        Some(f) => (
            f.display().to_string(),
            check_file(f, os_app_paths(false), false)?.loaded.policy,
        ),
        None => {
            let (generation, p) = active_policy()?;
            (
                format!("active policy (generation {generation})"),
                p.unwrap_or_else(Policy::permit_all),
            )
        }
    };
    out.result(&DiffReport {
        ok: true,
        file: args.file.display().to_string(),
        against,
        changes: weir_client::diff::diff(&old, &new.loaded.policy),
    })?;
    Ok(())
}
