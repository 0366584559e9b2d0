//! `weirctl policy explain`: which rule decides a connection, and why each earlier one does not.

use super::{active_policy, check_file, drive_map, os_app_paths};
use crate::output::{Failure, Output};
use clap::Args;
use serde::Serialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use weir_client::explain::Explanation;
use weir_client::paths as paths_mod;
use weir_client::text::{self, AppPaths, Diagnostic, Diagnostics};
use weir_client::weir_policy::{CompiledPolicy, Direction, Policy, Query};

pub(super) const EXPLAIN_HELP: &str = "Examples:\n  weirctl policy explain examples\\server-ports.toml --direction inbound --protocol tcp --remote 203.0.113.5:50000 --local 192.0.2.10:3389\n  \
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
    Failure::Usage(format!("{what}: {message}"))
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
        let named = |name: &Option<String>| match name {
            Some(n) => format!(" \"{n}\""),
            None => String::new(),
        };
        match (e.rule_index, e.rule_id) {
            (Some(i), Some(id)) => writeln!(
                f,
                "{}: rule {id}{} (position {}) decides{}",
                e.action,
                named(&e.rule_name),
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
            if s.disabled {
                writeln!(
                    f,
                    "  rule {}{} (position {}) skipped: it is disabled (enabled = false)",
                    s.id,
                    named(&s.name),
                    s.index + 1
                )?;
                continue;
            }
            writeln!(
                f,
                "  rule {}{} (position {}) does not match: {}",
                s.id,
                named(&s.name),
                s.index + 1,
                s.reason
            )?;
        }
        Ok(())
    }
}

pub(super) fn run(args: &ExplainArgs, out: &Output) -> Result<(), Failure> {
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
            let compiled = CompiledPolicy::compile(&policy).map_err(|e| {
                Failure::Policy(Diagnostics::one(Diagnostic::file_error(
                    "active policy",
                    format!("does not compile: {e}"),
                )))
            })?;
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
