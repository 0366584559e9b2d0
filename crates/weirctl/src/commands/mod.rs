//! One module per subcommand: its clap arguments, its result types (one `Serialize` struct
//! per result, whose `Display` is the human form) and its `run`.
//!
//! - [`policy`]: `policy check|load|compile|reload|explain|diff|show|clear`.
//! - [`stats`]: `stats [--rules]`.
//! - [`status`]: `weirctl status`.
//! - [`events`]: `events [--follow]`.
//! - [`failsafe`]: `failsafe show|check|allow add|allow remove` (the fail-closed allow-list).

pub mod events;
pub mod failsafe;
pub mod policy;
pub mod stats;
pub mod status;

/// `1 rule`, `2 rules`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
