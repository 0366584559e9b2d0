//! `weirctl failsafe show|check|allow add|allow remove`: the fail-closed allow-list — the fixed
//! permits, the administrator's `Parameters\FailClosedAllow` value, and what the driver took
//! from it at its start.

use crate::output::{Failure, Output};
use clap::Subcommand;
use serde::Serialize;
use std::fmt;
use weir_client::failsafe::{
    describe_code, parse_entries, powershell_command, read_value, reg_add_command, reg_delete_command, write_value, Entry,
    FIXED_PERMITS, MAX_ENTRIES, PARAMETERS_KEY, VALUE_NAME,
};
use weir_client::weir_abi::policy_status::{PolicyStatus, FAIL_MODE_CLOSED, POLICY_STATUS_SIZE};

/// `weirctl failsafe ...`.
#[derive(Subcommand)]
pub enum FailsafeCommand {
    /// The fixed permits, the FailClosedAllow value, and what the running driver took from it.
    #[command(after_long_help = "Examples:\n  weirctl failsafe show\n  weirctl failsafe show --json")]
    Show,
    /// Check entries and print the reg add / PowerShell commands that write exactly them.
    #[command(after_long_help = "Entry: <out|in> <tcp|udp|icmp|icmpv6|any|0-255> <address[/prefix]|any> <port|low-high|any>\n\n\
        Examples:\n  weirctl failsafe check \"out udp 10.0.0.53 53\" \"out tcp 10.1.2.0/24 443\"\n  \
        weirctl failsafe check \"in tcp any 5985-5986\"")]
    Check {
        /// Entries, one per argument (quote each).
        #[arg(required = true)]
        entries: Vec<String>,
    },
    /// Add entries to, or remove them from, the FailClosedAllow value (Windows, elevated).
    #[command(subcommand)]
    Allow(AllowCommand),
}

/// `weirctl failsafe allow ...`.
#[derive(Subcommand)]
pub enum AllowCommand {
    /// Append entries (kept once; comments and other entries stay as written).
    #[command(after_long_help = "Example:\n  weirctl failsafe allow add \"out tcp 10.1.2.0/24 443\"\n\n\
        The driver reads the value at its start: sc.exe stop weir, then sc.exe start weir.")]
    Add {
        #[arg(required = true)]
        entries: Vec<String>,
    },
    /// Remove entries (matched by meaning: `OUT TCP 10.1.2.9/24 443` removes `out tcp 10.1.2.0/24 443`).
    #[command(after_long_help = "Example:\n  weirctl failsafe allow remove \"out tcp 10.1.2.0/24 443\"")]
    Remove {
        #[arg(required = true)]
        entries: Vec<String>,
    },
}

/// What the running driver took from the value at its start (GET_POLICY_STATUS).
#[derive(Serialize)]
pub struct DriverAllow {
    /// `open` or `closed` (the value is read only when closed).
    pub fail_mode: &'static str,
    pub entries: u32,
    pub bad_entries: u32,
    /// Why the value was refused (null: it was not).
    pub refused: Option<String>,
    /// Line of the first bad entry (null: none).
    pub line: Option<u32>,
}

impl DriverAllow {
    fn new(s: &PolicyStatus) -> Self {
        Self {
            fail_mode: if s.fail_mode == FAIL_MODE_CLOSED { "closed" } else { "open" },
            entries: s.allow_entries,
            bad_entries: s.allow_bad,
            refused: (s.allow_error != 0).then(|| describe_code(s.allow_error).to_string()),
            line: (s.allow_line != 0).then_some(s.allow_line),
        }
    }
}

/// A fixed permit.
#[derive(Serialize)]
pub struct Fixed {
    pub permit: &'static str,
    pub applies: &'static str,
}

/// The result of `weirctl failsafe show`.
#[derive(Serialize)]
pub struct ShowReport {
    pub ok: bool,
    pub fixed: Vec<Fixed>,
    /// `HKLM\...\Parameters\FailClosedAllow`.
    pub value_name: String,
    /// The value's strings as written (null: not set, or unreadable: see `value_error`).
    pub value: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_error: Option<String>,
    /// Its entries in canonical form, when all are good.
    pub entries: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries_error: Option<String>,
    /// Null when the driver cannot be asked (not loaded, or predates the allow-list).
    pub driver: Option<DriverAllow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_error: Option<String>,
}

impl fmt::Display for ShowReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fixed permits while closed:")?;
        for p in &self.fixed {
            writeln!(f, "  {:<56} {}", p.permit, p.applies)?;
        }
        writeln!(f, "{}:", self.value_name)?;
        match (&self.value, &self.value_error) {
            (_, Some(e)) => writeln!(f, "  unreadable: {e}")?,
            (None, None) => writeln!(f, "  not set (weirctl failsafe allow add ENTRY adds one)")?,
            (Some(v), None) if v.is_empty() => writeln!(f, "  empty")?,
            (Some(v), None) => {
                for (i, s) in v.iter().enumerate() {
                    writeln!(f, "  {:>2}  {s}", i + 1)?;
                }
            }
        }
        if let Some(e) = &self.entries_error {
            writeln!(f, "  refused by the driver at its next start: {e}")?;
        }
        match (&self.driver, &self.driver_error) {
            (Some(d), _) if d.fail_mode == "open" => {
                writeln!(f, "driver:     fail mode open (the value is read only with FailMode = 1)")
            }
            (Some(d), _) => match &d.refused {
                Some(why) => writeln!(
                    f,
                    "driver:     value refused at its start: {why}{} ({} bad); only the fixed permits apply",
                    d.line.map(|l| format!(" at line {l}")).unwrap_or_default(),
                    d.bad_entries
                ),
                None => writeln!(f, "driver:     {} entries in effect (read at its start; sc.exe stop/start weir rereads)", d.entries),
            },
            (None, Some(e)) => writeln!(f, "driver:     unknown ({e})"),
            (None, None) => Ok(()),
        }
    }
}

/// The result of `check`, `allow add` and `allow remove`.
#[derive(Serialize)]
pub struct ListReport {
    pub ok: bool,
    /// The entries (canonical), in order.
    pub entries: Vec<String>,
    /// Whether the registry value was written.
    pub written: bool,
    pub reg_add: String,
    pub powershell: String,
}

impl ListReport {
    fn new(entries: &[Entry], written: bool) -> Self {
        Self {
            ok: true,
            entries: entries.iter().map(ToString::to_string).collect(),
            written,
            reg_add: if entries.is_empty() { reg_delete_command() } else { reg_add_command(entries) },
            powershell: if entries.is_empty() {
                format!("Remove-ItemProperty -LiteralPath 'HKLM:\\{PARAMETERS_KEY}' -Name {VALUE_NAME}")
            } else {
                powershell_command(entries)
            },
        }
    }
}

impl fmt::Display for ListReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            writeln!(f, "{e}")?;
        }
        if self.written {
            writeln!(f, "written to HKLM\\{PARAMETERS_KEY}\\{VALUE_NAME}; the driver reads it at its next start:")?;
            writeln!(f, "  sc.exe stop weir")?;
            writeln!(f, "  sc.exe start weir")
        } else {
            writeln!(f, "to write exactly these (replacing the value):")?;
            writeln!(f, "  {}", self.reg_add)?;
            writeln!(f, "  {}", self.powershell)
        }
    }
}

fn usage(position: usize, e: weir_client::failsafe::ListError) -> Failure {
    match position {
        0 => Failure::Usage(e.to_string()),
        n => Failure::Usage(format!("entry {n}: {}", e.to_string().split_once(": ").map_or(e.to_string(), |(_, m)| m.to_string()))),
    }
}

/// `weirctl failsafe ...`.
pub fn run(cmd: &FailsafeCommand, out: &Output) -> Result<(), Failure> {
    match cmd {
        FailsafeCommand::Show => show(out),
        FailsafeCommand::Check { entries } => {
            let parsed = parse_entries(entries.iter().map(String::as_str)).map_err(|(n, e)| usage(n, e))?;
            Ok(out.result(&ListReport::new(&parsed, false))?)
        }
        FailsafeCommand::Allow(AllowCommand::Add { entries }) => edit(entries, true, out),
        FailsafeCommand::Allow(AllowCommand::Remove { entries }) => edit(entries, false, out),
    }
}

fn show(out: &Output) -> Result<(), Failure> {
    let (value, value_error) = match read_value() {
        Ok(v) => (v, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let (entries, entries_error) = match &value {
        Some(v) => match parse_entries(v.iter().map(String::as_str)) {
            Ok(es) => (Some(es.iter().map(ToString::to_string).collect()), None),
            Err((_, e)) => (None, Some(e.to_string())),
        },
        None => (None, None),
    };
    let (driver, driver_error) = match crate::device::open().and_then(|c| c.policy_status()) {
        Ok(s) if s.size as usize == POLICY_STATUS_SIZE => (Some(DriverAllow::new(&s)), None),
        Ok(_) => (None, Some("the driver predates the allow-list report".to_string())),
        Err(e) => (None, Some(e.to_string())),
    };
    let report = ShowReport {
        ok: true,
        fixed: FIXED_PERMITS.iter().map(|(permit, applies)| Fixed { permit, applies }).collect(),
        value_name: format!("HKLM\\{PARAMETERS_KEY}\\{VALUE_NAME}"),
        value,
        value_error,
        entries,
        entries_error,
        driver,
        driver_error,
    };
    Ok(out.result(&report)?)
}

/// `allow add` (`add`) or `allow remove`: the value's strings are kept as written (comments
/// too); new entries are appended in canonical form, removed ones matched by meaning.
fn edit(args: &[String], add: bool, out: &Output) -> Result<(), Failure> {
    let given = parse_entries(args.iter().map(String::as_str)).map_err(|(n, e)| usage(n, e))?;
    let mut strings = read_value()?.unwrap_or_default();
    let current = parse_entries(strings.iter().map(String::as_str)).map_err(|(_, e)| {
        Failure::Usage(format!(
            "the {VALUE_NAME} value already has a bad entry ({e}); fix it with regedit or replace the whole value (weirctl failsafe check ... prints the command)"
        ))
    })?;
    if add {
        for e in &given {
            if !current.contains(e) && !strings.iter().any(|s| Entry::parse(s).ok().as_ref() == Some(e)) {
                strings.push(e.to_string());
            }
        }
    } else {
        strings.retain(|s| Entry::parse(s).map_or(true, |e| !given.contains(&e)));
    }
    let entries = parse_entries(strings.iter().map(String::as_str)).map_err(|(_, e)| usage(0, e))?;
    if entries.len() > MAX_ENTRIES {
        return Err(Failure::Usage(format!("more than {MAX_ENTRIES} entries")));
    }
    let keep_comments = strings.iter().any(|s| s.trim_start().starts_with('#'));
    if entries.is_empty() && !keep_comments {
        write_value(&[])?;
    } else {
        weir_client::failsafe::write_strings(&strings)?;
    }
    Ok(out.result(&ListReport::new(&entries, true))?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn show_reports_a_refusal_with_its_line_and_the_open_mode_as_such() {
        let s = PolicyStatus { fail_mode: FAIL_MODE_CLOSED, allow_bad: 2, allow_error: 16 + 6, allow_line: 3, ..Default::default() };
        let d = DriverAllow::new(&s);
        assert_eq!((d.refused.as_deref(), d.line, d.bad_entries), (Some("an entry's prefix is not valid"), Some(3), 2));
        let report = ShowReport {
            ok: true,
            fixed: vec![],
            value_name: "v".into(),
            value: Some(vec!["out tcp 10.0.0.0/33 443".into()]),
            value_error: None,
            entries: None,
            entries_error: Some("line 1: prefix must be 0-32 for IPv4, 0-128 for IPv6".into()),
            driver: Some(d),
            driver_error: None,
        };
        let text = report.to_string();
        assert!(text.contains("   1  out tcp 10.0.0.0/33 443\n"), "{text}");
        assert!(text.contains("refused by the driver at its next start: line 1: prefix"), "{text}");
        assert!(text.contains("driver:     value refused at its start: an entry's prefix is not valid at line 3 (2 bad)"), "{text}");
        let open = DriverAllow::new(&PolicyStatus::default());
        assert_eq!((open.fail_mode, open.refused), ("open", None));
    }
}
