//! Add-registry (AddReg/BitReg) entries and values set twice.

use std::collections::HashMap;

use super::rule::addreg_root_code;
use super::{lower, parse_number, Entry, Linter, Rule};

/// AddReg flags (setupapi.h): value type mask, binary, DWORD, multi-sz, append.
const FLG_ADDREG_TYPE_MASK: u64 = 0xFFFF_0001;

const FLG_ADDREG_BINVALUETYPE: u64 = 0x0000_0001;

const FLG_ADDREG_TYPE_DWORD: u64 = 0x0001_0001;

const FLG_ADDREG_TYPE_MULTI_SZ: u64 = 0x0001_0000;

const FLG_ADDREG_APPEND: u64 = 0x0000_0008;

/// DIRIDs and the variable for the Windows directory, its System32 and drivers.
const WINDOWS_DIR_TOKENS: [&str; 4] = ["%10%", "%11%", "%12%", "%systemroot%"];

impl Linter<'_> {
    /// Add-registry entries: InfVerif 1268, 1267, 1265, 1305, 1303, 1329,
    /// 1257; 1224/1304 (root); 1323 (service keys outside Parameters).
    pub(super) fn check_registry(&mut self) {
        let registry = self.registry.clone();
        for s in registry {
            let bitreg = self
                .uses
                .get(&lower(&s.name))
                .is_some_and(|u| *u == "BitReg");
            let service = self.service_registry.contains(&lower(&s.name));
            for e in &s.entries {
                let resolved: Vec<String> =
                    entry_fields(e).iter().map(|f| self.resolve(f)).collect();
                let fields: Vec<&str> = resolved.iter().map(String::as_str).collect();
                let field = |i: usize| fields.get(i).copied().unwrap_or("").trim();
                let root = field(0);
                if !root.eq_ignore_ascii_case("HKR") {
                    let shown = if root.is_empty() { "(empty)" } else { root };
                    self.report(
                        Rule::AddRegRoot,
                        addreg_root_code(root),
                        e.line,
                        format!("AddReg root {shown} not allowed (only HKR)"),
                    );
                } else if service {
                    let sub = lower(field(1));
                    if sub != "parameters" && !sub.starts_with("parameters\\") {
                        let text = format!(
                            "service registry values belong under HKR,Parameters (the service key's Parameters subkey), not HKR,{:?}",
                            field(1)
                        );
                        self.report(Rule::ServiceInstall, 1323, e.line, text);
                    }
                }
                if bitreg {
                    // root, subkey, value, flags, byte-mask, byte-to-modify
                    let mask = field(4);
                    if parse_number(mask).is_none_or(|m| m > 0xFF) {
                        let text = format!("BitReg mask {mask:?} is not a byte (0x00-0xFF)");
                        self.report(Rule::AddRegEntry, 1262, e.line, text);
                    }
                    continue;
                }
                self.check_addreg_entry(e, &fields);
            }
        }
    }

    fn check_addreg_entry(&mut self, e: &Entry, fields: &[&str]) {
        let field = |i: usize| fields.get(i).copied().unwrap_or("").trim();
        let name = field(2);
        if name.eq_ignore_ascii_case("CoInstallers32") {
            self.report(
                Rule::AddRegEntry,
                1303,
                e.line,
                "AddReg registers a co-installer (CoInstallers32)",
            );
        }
        if ["UpperFilters", "LowerFilters"]
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name))
        {
            let text =
                format!("AddReg sets {name}: filters are added with a [DDInstall.Filters] section");
            self.report(Rule::AddRegEntry, 1329, e.line, text);
        }
        let data = fields.get(4..).unwrap_or(&[]);
        if data
            .iter()
            .any(|d| WINDOWS_DIR_TOKENS.iter().any(|w| lower(d).contains(w)))
        {
            self.report(
                Rule::AddRegEntry,
                1257,
                e.line,
                "AddReg data points into the Windows directory (%10%/%11%/%12%/%SystemRoot%); use a driver-store path",
            );
        }
        let raw_flags = field(3);
        if raw_flags.is_empty() {
            return;
        }
        let Some(flags) = parse_number(raw_flags) else {
            let text = format!("AddReg flags {raw_flags:?} are not a number");
            self.report(Rule::AddRegEntry, 1268, e.line, text);
            return;
        };
        let kind = flags & FLG_ADDREG_TYPE_MASK;
        if flags & FLG_ADDREG_APPEND != 0 {
            if kind == FLG_ADDREG_TYPE_MULTI_SZ {
                self.report(
                    Rule::AddRegEntry,
                    1305,
                    e.line,
                    "AddReg appends to a REG_MULTI_SZ value another package may own",
                );
            } else {
                self.report(
                    Rule::AddRegEntry,
                    1265,
                    e.line,
                    "AddReg append flag (0x8) on a value that is not REG_MULTI_SZ",
                );
            }
        }
        if kind == FLG_ADDREG_TYPE_DWORD {
            let v = field(4);
            if parse_number(v).is_none_or(|n| n > u64::from(u32::MAX)) {
                let text = format!(
                    "REG_DWORD data {v:?} is not a 32-bit decimal or 0x-hexadecimal number"
                );
                self.report(Rule::AddRegEntry, 1268, e.line, text);
            }
        } else if kind == FLG_ADDREG_BINVALUETYPE {
            let bad = data.iter().map(|d| d.trim()).find(|d| {
                let hex = d
                    .strip_prefix("0x")
                    .or_else(|| d.strip_prefix("0X"))
                    .unwrap_or(d);
                hex.is_empty() || hex.len() > 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if let Some(bad) = bad {
                let text = format!("REG_BINARY data {bad:?} is not a byte 00-FF");
                self.report(Rule::AddRegEntry, 1267, e.line, text);
            }
        }
    }

    /// InfVerif 1331/1332: one registry value set to different data by two sections.
    pub(super) fn check_registry_conflicts(&mut self) {
        let registry = self.registry.clone();
        // (owner install section, root, subkey, value name) -> (section, data)
        let mut values: HashMap<(String, String, String, String), (String, String)> =
            HashMap::new();
        for s in registry {
            if self
                .uses
                .get(&lower(&s.name))
                .is_some_and(|u| *u == "BitReg")
            {
                continue;
            }
            let service = self.service_registry.contains(&lower(&s.name));
            let owner = self
                .registry_owner
                .get(&lower(&s.name))
                .cloned()
                .unwrap_or_default();
            for e in &s.entries {
                let resolved: Vec<String> =
                    entry_fields(e).iter().map(|f| self.resolve(f)).collect();
                let fields: Vec<&str> = resolved.iter().map(String::as_str).collect();
                let field = |i: usize| fields.get(i).copied().unwrap_or("").trim();
                let key = (
                    owner.clone(),
                    lower(field(0)),
                    lower(field(1)),
                    lower(field(2)),
                );
                let data = fields
                    .get(3..)
                    .unwrap_or(&[])
                    .iter()
                    .map(|f| f.trim())
                    .collect::<Vec<_>>()
                    .join(",");
                match values.get(&key) {
                    Some((other, other_data))
                        if !other.eq_ignore_ascii_case(&s.name) && *other_data != data =>
                    {
                        let (code, what) = if service {
                            (1332, "service value")
                        } else {
                            (1331, "value")
                        };
                        let text = format!(
                            "{what} {}\\{}\\{} is set to {data:?} here and to {other_data:?} in [{other}]",
                            field(0), field(1), field(2)
                        );
                        self.report(Rule::RegistryConflict, code, e.line, text);
                    }
                    Some(_) => {}
                    None => {
                        values.insert(key, (s.name.clone(), data));
                    }
                }
            }
        }
    }
}

/// An entry's fields with the key (if any) first: an add-registry line has
/// no key unless its text holds an unquoted `=`.
fn entry_fields(e: &Entry) -> Vec<&str> {
    e.key
        .iter()
        .chain(e.values.iter())
        .map(|v| v.text.as_str())
        .collect()
}
