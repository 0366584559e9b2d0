//! Printing a policy back in the file format.

use super::addresses::format_range;
use crate::paths::{self, DriveMap};
use std::fmt::Write as _;
use weir_policy::{AddrCond, IpVersion, Policy, PortCond};

/// A TOML string literal for `s`: literal (`'...'`) when possible, so Windows paths stay
/// readable; otherwise a basic string with escapes.
pub(super) fn quote(s: &str) -> String {
    if !s.contains('\'') && !s.chars().any(char::is_control) {
        return format!("'{s}'");
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(super) fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        quote(s)
    }
}

pub(super) fn protocol_text(p: u8) -> String {
    match p {
        6 => "\"tcp\"".into(),
        17 => "\"udp\"".into(),
        1 => "\"icmp\"".into(),
        58 => "\"icmpv6\"".into(),
        n => n.to_string(),
    }
}

pub(super) fn ports_text(c: &PortCond) -> String {
    let items: Vec<String> = c
        .ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("\"{lo}-{hi}\"")
            }
        })
        .collect();
    if items.len() == 1 {
        items.concat()
    } else {
        format!("[{}]", items.join(", "))
    }
}

/// Prints `policy` in the file format [`parse`] reads, so that parsing the output (with
/// NT paths, which [`AppPaths::Convert`] keeps) gives the same policy. Sets are printed
/// inline. With `drives`, each application path that maps back to a drive letter gets a
/// comment with the DOS form.
pub fn format(policy: &Policy, drives: Option<&dyn DriveMap>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "[defaults]");
    let _ = writeln!(out, "outbound = \"{}\"", policy.default_outbound.as_str());
    let _ = writeln!(out, "inbound = \"{}\"", policy.default_inbound.as_str());
    let _ = writeln!(out, "log_all = {}", policy.log_all);

    // Set names as printed: unique (the model allows duplicates; TOML keys do not).
    let mut names: Vec<String> = Vec::new();
    for s in &policy.sets {
        let mut name = s.name.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{}~{n}", s.name);
            n += 1;
        }
        names.push(name);
    }
    if !policy.sets.is_empty() {
        let _ = writeln!(out, "\n[sets]");
        for (s, name) in policy.sets.iter().zip(&names) {
            if s.entries.is_empty() {
                let _ = writeln!(out, "{} = []", key(name));
                continue;
            }
            let _ = writeln!(out, "{} = [", key(name));
            for e in &s.entries {
                let _ = writeln!(out, "    \"{}\",", format_range(e));
            }
            let _ = writeln!(out, "]");
        }
    }

    let addr_text = |c: &AddrCond| -> String {
        match c {
            AddrCond::Set(i) => {
                let name = names.get(*i as usize).cloned().unwrap_or_default();
                quote(&format!("@{name}"))
            }
            AddrCond::Ranges(rs) => {
                let items: Vec<String> = rs
                    .iter()
                    .map(|r| format!("\"{}\"", format_range(r)))
                    .collect();
                if items.len() == 1 {
                    items.concat()
                } else {
                    format!("[{}]", items.join(", "))
                }
            }
        }
    };
    for r in &policy.rules {
        let _ = writeln!(out, "\n[[rule]]");
        let _ = writeln!(out, "id = {}", r.id);
        if !r.name.is_empty() {
            let _ = writeln!(out, "name = {}", quote(&r.name));
        }
        if !r.description.is_empty() {
            let _ = writeln!(out, "description = {}", quote(&r.description));
        }
        if !r.enabled {
            let _ = writeln!(out, "enabled = false");
        }
        let _ = writeln!(out, "action = \"{}\"", r.action.as_str());
        if r.log {
            let _ = writeln!(out, "log = true");
        }
        if let Some(d) = r.direction {
            let _ = writeln!(out, "direction = \"{}\"", d.as_str());
        }
        if let Some(v) = r.ip_version {
            let _ = writeln!(
                out,
                "ip_version = \"{}\"",
                if v == IpVersion::V4 { "v4" } else { "v6" }
            );
        }
        if let Some(p) = r.protocol {
            let _ = writeln!(out, "protocol = {}", protocol_text(p));
        }
        if let Some(c) = &r.remote_addr {
            let _ = writeln!(out, "remote = {}", addr_text(c));
        }
        if let Some(c) = &r.local_addr {
            let _ = writeln!(out, "local = {}", addr_text(c));
        }
        // For ICMP the port fields are the type (local) and code (remote): printed under
        // those names when they fit.
        let icmp = matches!(r.protocol, Some(1 | 58));
        let small = |c: &PortCond| c.ranges.iter().all(|&(_, hi)| hi <= 255);
        if let Some(c) = &r.remote_port {
            let name = if icmp && small(c) {
                "icmp_code"
            } else {
                "remote_port"
            };
            let _ = writeln!(out, "{name} = {}", ports_text(c));
        }
        if let Some(c) = &r.local_port {
            let name = if icmp && small(c) {
                "icmp_type"
            } else {
                "local_port"
            };
            let _ = writeln!(out, "{name} = {}", ports_text(c));
        }
        if let Some(app) = &r.app {
            let s = String::from_utf16_lossy(app.units());
            if let Some(dos) = drives.and_then(|d| paths::to_dos_path(&s, d)) {
                let _ = writeln!(out, "# {dos}");
            }
            let _ = writeln!(out, "app = {}", quote(&s));
        }
        if let Some(l) = r.loopback {
            let _ = writeln!(out, "loopback = {l}");
        }
    }
    out
}
