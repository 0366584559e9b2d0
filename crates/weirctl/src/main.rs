//! weirctl: the command-line control tool of the Weir driver.
//!
//! Exit codes: 0 success, 1 the operation failed (driver not loaded, policy invalid,
//! request refused), 2 usage error. Human output by default; `--json` prints one JSON document
//! per command (one per line for `events`) on stdout, errors and usage errors included. A
//! reader that closes stdout early (`| head`) ends the command quietly with 0.
//!
//! `main` only parses, dispatches and picks the exit code; each command is in [`commands`],
//! every stdout write goes through [`output::Output`].

#![forbid(unsafe_code)]

mod commands;
mod device;
mod output;

use clap::{Parser, Subcommand};
use commands::{events::EventsArgs, policy::PolicyCommand, stats::StatsArgs};
use output::{Failure, Output};
use serde_json::json;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "weirctl",
    version,
    about = "Control the Weir WFP callout driver: status, policy, events, statistics, fail-closed allow-list",
    long_about = "Control the Weir WFP callout driver: status, policy, events, statistics, fail-closed allow-list.\n\n\
        Commands that talk to the driver need Windows and an elevated prompt (the control device \
        \\\\.\\Weir admits administrators only). `weirctl policy check FILE` works anywhere.",
    after_help = "Exit codes: 0 success, 1 operation failed, 2 usage error.\n\
        The policy language: docs/policy-language.md",
    after_long_help = "Examples:\n  weirctl status\n  weirctl policy check examples\\blocklist.toml\n  \
        weirctl policy load policy.toml\n  weirctl events --follow --json\n  \
        weirctl failsafe check \"out tcp 10.1.2.0/24 443\"\n\n\
        Exit codes: 0 success, 1 operation failed, 2 usage error.\n\
        The policy language: docs/policy-language.md"
)]
struct Cli {
    /// Print JSON instead of text (one document; one per line for `events`).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Is the driver loaded: version, ABI, policy generation, counters, event drops.
    #[command(after_long_help = "Example:\n  weirctl status --json")]
    Status,
    /// Check, load, compile, reload, explain, diff, show or clear the policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print connection events (what was permitted or blocked, by which rule, for which process).
    Events(EventsArgs),
    /// Per-layer counters, optionally per-rule hit counts.
    Stats(StatsArgs),
    /// The fail-closed allow-list: show it, check entries, add or remove entries.
    #[command(subcommand)]
    Failsafe(commands::failsafe::FailsafeCommand),
}

/// Parses the command line; help, version and usage errors are printed here (usage errors as
/// JSON when `--json` is among the arguments).
fn parse(out_json: bool) -> Result<Cli, ExitCode> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) => {
            use clap::error::ErrorKind;
            let out = Output::new(false);
            let code = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    if e.kind() != ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        let written = out.text(&e.render().to_string()).and_then(|()| out.flush());
                        return Err(exit(written.map_err(Failure::from), &out, 0));
                    }
                    2
                }
                _ => 2,
            };
            if out_json {
                let doc = json!({ "ok": false, "error": { "kind": "usage", "message": e.render().to_string().trim_end() } });
                let written = Output::new(true)
                    .json_value(&doc)
                    .and_then(|()| out.flush());
                return Err(exit(written.map_err(Failure::from), &out, code));
            }
            // clap's own rendering (with its colours) on stderr; a failing stderr is ignored.
            let _ = e.print();
            Err(ExitCode::from(code))
        }
    }
}

/// The exit code of a finished command: `ok` on success or a closed pipe, 2 for a malformed
/// option value, 1 for any other failure (after printing it).
fn exit(result: Result<(), Failure>, out: &Output, ok: u8) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(ok),
        Err(f) if f.is_closed_pipe() => ExitCode::from(ok),
        Err(f) => {
            let code = if matches!(f, Failure::Usage(_)) { 2 } else { 1 };
            if let Err(e) = out.error(&f).and_then(|()| out.flush()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    out.stderr(&format!("error: cannot write the output: {e}"));
                }
            }
            ExitCode::from(code)
        }
    }
}

fn main() -> ExitCode {
    let json = std::env::args_os().skip(1).any(|a| a == "--json");
    let cli = match parse(json) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let out = Output::new(cli.json);
    let result = match &cli.command {
        Command::Status => commands::status::run(&out),
        Command::Policy(cmd) => commands::policy::run(cmd, &out),
        Command::Events(args) => commands::events::run(args, &out),
        Command::Stats(args) => commands::stats::run(args, &out),
        Command::Failsafe(cmd) => commands::failsafe::run(cmd, &out),
    }
    .and_then(|()| out.flush().map_err(Failure::from));
    exit(result, &out, 0)
}
