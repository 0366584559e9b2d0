//! weirctl: the command-line control tool of the Weir driver.
//!
//! Exit codes: 0 success, 1 the operation failed (driver not loaded, policy invalid,
//! request refused), 2 usage error (clap's own). Human output by default; `--json` prints
//! one JSON document per command (one per line for `events`) on stdout, errors included.

mod commands;
mod device;
mod events;
mod output;
mod stored_cmds;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "weirctl",
    version,
    about = "Control the Weir WFP callout driver: status, policy, events, statistics",
    long_about = "Control the Weir WFP callout driver: status, policy, events, statistics.\n\n\
        Commands that talk to the driver need Windows and an elevated prompt (the control device \
        \\\\.\\Weir admits administrators only). `weirctl policy check FILE` works anywhere.",
    after_help = "Exit codes: 0 success, 1 operation failed, 2 usage error."
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
    Status,
    /// Check, load, show or clear the policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print connection events (what was permitted or blocked, by which rule, for which process).
    Events(EventsArgs),
    /// Per-layer counters, optionally per-rule hit counts.
    Stats {
        /// Also print the hit count of every rule of the active policy.
        #[arg(long)]
        rules: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Parse, validate and compile a policy file locally (any OS; no driver needed).
    Check {
        /// The policy file (TOML).
        file: PathBuf,
        /// Keep application paths as written instead of converting them to NT device paths
        /// (always so off Windows).
        #[arg(long)]
        keep_paths: bool,
    },
    /// Check a policy file, store it and make it the driver's active policy (atomic
    /// replace); `--this-run` activates it without storing.
    Load(stored_cmds::LoadArgs),
    /// Write the stored form of a policy file (what the driver reads at start) to a file.
    Compile(stored_cmds::CompileArgs),
    /// Make the driver read its stored policy again and activate it.
    Reload,
    /// Print the active policy in the policy file format.
    Show,
    /// Remove the active and the stored policy (or one of them): the driver permits every
    /// connection again.
    Clear(stored_cmds::ClearArgs),
}

#[derive(Args)]
struct EventsArgs {
    /// Keep reading until Ctrl-C (which cancels the pending read).
    #[arg(long, short)]
    follow: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = output::Output::new(cli.json);
    let result = match cli.command {
        Command::Status => commands::status(&out),
        Command::Policy(PolicyCommand::Check { file, keep_paths }) => {
            commands::policy_check(&out, &file, keep_paths)
        }
        Command::Policy(PolicyCommand::Load(args)) => stored_cmds::load(&out, args),
        Command::Policy(PolicyCommand::Compile(args)) => stored_cmds::compile(&out, args),
        Command::Policy(PolicyCommand::Reload) => stored_cmds::reload(&out),
        Command::Policy(PolicyCommand::Show) => commands::policy_show(&out),
        Command::Policy(PolicyCommand::Clear(args)) => stored_cmds::clear(&out, args),
        Command::Events(args) => events::run(&out, args.follow),
        Command::Stats { rules } => commands::stats(&out, rules),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out.error(&e);
            ExitCode::from(1)
        }
    }
}
