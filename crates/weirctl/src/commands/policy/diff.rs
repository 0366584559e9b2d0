//! `weirctl policy diff`: what loading a file would change.

use super::{active_policy, check_file, os_app_paths};
use crate::commands::plural;
use crate::output::{Failure, Output};
use clap::Args;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use weir_client::diff::Change;
use weir_client::weir_policy::Policy;

/// Arguments of `policy diff`.
#[derive(Args)]
pub struct DiffArgs {
    /// The policy file that would be loaded.
    pub file: PathBuf,
    /// Compare with this file instead of the active policy.
    #[arg(long)]
    pub against: Option<PathBuf>,
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

pub(super) fn run(args: &DiffArgs, out: &Output) -> Result<(), Failure> {
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
