//! AddService directives, service-install sections and their values.

use std::collections::HashSet;

use super::rule::service_binary_code;
use super::{lower, parse_number, Entry, Linter, Rule, Section};

const SERVICE_KEYS: [&str; 4] = ["ServiceType", "StartType", "ErrorControl", "ServiceBinary"];

/// Service-install directives that take one value.
pub(super) const SINGLE_VALUED_SERVICE_KEYS: [&str; 10] = [
    "ServiceType",
    "StartType",
    "ErrorControl",
    "ServiceBinary",
    "DisplayName",
    "Description",
    "LoadOrderGroup",
    "StartName",
    "ServiceSidType",
    "DelayedAutoStart",
];

/// SERVICE_KERNEL_DRIVER, SERVICE_FILE_SYSTEM_DRIVER, adapter, recognizer,
/// Win32 own/share process, and the interactive variants of the last two.
const SERVICE_TYPES: [u64; 8] = [0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x110, 0x120];

/// AddService flag: the service is the device's function driver (PnP).
const SPSVCINST_ASSOCSERVICE: u64 = 0x2;

/// Characters a Windows file name cannot contain (plus the separator `/`).
pub(super) const BAD_PATH_CHARS: [char; 8] = ['/', '*', '?', '"', '<', '>', '|', ':'];

impl<'a> Linter<'a> {
    /// One AddService directive of a .Services section: its service name,
    /// flags, event log and service-install section (walked later).
    pub(super) fn walk_add_service(&mut self, s: &'a Section, e: &'a Entry) {
        let svc = e.value_or_empty(0).to_owned();
        let section = e.value_or_empty(2);
        // "AddService = ,0x2": the documented null driver (a device
        // that needs no function driver), not a service.
        let null_driver = svc.is_empty()
            && section.is_empty()
            && parse_number(&self.resolve(e.value_or_empty(1)))
                .is_some_and(|f| f & SPSVCINST_ASSOCSERVICE != 0);
        if null_driver {
            return;
        }
        if svc.is_empty() {
            self.report(
                Rule::ServiceInstall,
                1253,
                e.line,
                "AddService without a service name",
            );
        }
        let log_type = e.value_or_empty(4);
        if !log_type.is_empty()
            && !["System", "Application", "Security"]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(log_type))
        {
            self.report(
                Rule::ServiceInstall,
                1250,
                e.line,
                format!("EventLogType {log_type:?} is not System, Application or Security"),
            );
        }
        if !svc.is_empty() && !section.is_empty() {
            // Per .Services section: .Services sections for other
            // architectures or OS versions install on other systems.
            let resolved = format!("{}\n{}", lower(&s.name), lower(&self.resolve(&svc)));
            match self.service_sections.get(&resolved) {
                Some((first, first_line))
                    if !first.eq_ignore_ascii_case(section)
                        && self.service_config(first) != self.service_config(section) =>
                {
                    let text = format!(
                        "service {svc} is installed by [{section}] here and by [{first}] on line {first_line}"
                    );
                    self.report(Rule::ServiceInstall, 1333, e.line, text);
                }
                Some(_) => {}
                None => {
                    self.service_sections
                        .insert(resolved, (section.to_owned(), e.line));
                }
            }
        }
        if section.is_empty() {
            self.report(
                Rule::ServiceInstall,
                1005,
                e.line,
                format!("AddService {svc} names no service-install section"),
            );
        } else {
            for t in self.referenced(section, "AddService", e.line) {
                if self.first_visit(1, &t.name) {
                    self.service_install.push(t);
                }
            }
        }
        let log = e.value_or_empty(3);
        if !log.is_empty() {
            for t in self.referenced(log, "AddService (event log)", e.line) {
                if self.first_visit(2, &t.name) {
                    self.event_log.push(t);
                }
            }
        }
    }

    /// The single-valued settings of a service-install section, resolved and
    /// lower-cased, sorted: two sections configure a service the same way
    /// when these are equal.
    fn service_config(&self, section: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .inf
            .sections
            .iter()
            .filter(|s| s.is(section))
            .flat_map(|s| s.entries.iter())
            .filter_map(|e| {
                let k = e.key()?;
                SINGLE_VALUED_SERVICE_KEYS
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(k))
                    .then(|| (lower(k), lower(&self.resolve(e.value_or_empty(0)))))
            })
            .collect();
        out.sort();
        out
    }

    /// AddService flags (InfVerif 1081, 1211, 1251) in one .Services section.
    pub(super) fn check_add_service_flags(&mut self, s: &'a Section) {
        let mut associated: Vec<(usize, String)> = Vec::new();
        for e in s.entries.iter().filter(|e| e.key_is("AddService")) {
            let raw = self.resolve(e.value_or_empty(1));
            if raw.trim().is_empty() {
                continue;
            }
            let Some(flags) = parse_number(&raw) else {
                self.report(
                    Rule::ServiceInstall,
                    1081,
                    e.line,
                    format!("AddService flags {raw:?} are not a number"),
                );
                continue;
            };
            if flags & SPSVCINST_ASSOCSERVICE == 0 {
                continue;
            }
            associated.push((e.line, e.value_or_empty(0).to_owned()));
            let section = e.value_or_empty(2);
            let disabled = self
                .inf
                .sections
                .iter()
                .filter(|t| !section.is_empty() && t.is(section))
                .filter_map(|t| t.get("StartType"))
                .any(|st| parse_number(&self.resolve(st.value_or_empty(0))) == Some(4));
            if disabled {
                self.report(
                    Rule::ServiceInstall,
                    1251,
                    e.line,
                    "a disabled service (StartType = 4) cannot be the associated service (flag 0x2)",
                );
            }
        }
        if let [(_, first), rest @ ..] = associated.as_slice() {
            for (line, svc) in rest {
                self.report(
                    Rule::ServiceInstall,
                    1211,
                    *line,
                    format!("{svc} and {first} both carry SPSVCINST_ASSOCSERVICE (0x2); only one service may"),
                );
            }
        }
    }

    pub(super) fn check_service_install(&mut self, s: &'a Section) {
        for key in SERVICE_KEYS {
            match s.get(key) {
                None => self.report(
                    Rule::ServiceInstall,
                    1013,
                    s.line,
                    format!("service-install section [{}] has no {key}", s.name),
                ),
                Some(e) if key == "ServiceBinary" => {
                    let v = e.value_or_empty(0);
                    let ok = lower(v)
                        .strip_prefix("%13%\\")
                        .is_some_and(|rest| !rest.is_empty() && !rest.contains(BAD_PATH_CHARS));
                    if !ok {
                        self.report(
                            Rule::ServiceInstall, service_binary_code(v),
                            e.line,
                            format!("ServiceBinary {v:?} must be under the driver store (%13%\\name.sys)"),
                        );
                    }
                }
                Some(e) => {
                    let v = self.resolve(e.value_or_empty(0));
                    if parse_number(&v).is_none() {
                        self.report(
                            Rule::ServiceInstall,
                            1014,
                            e.line,
                            format!("{key} {v:?} is not a number"),
                        );
                    }
                }
            }
        }
    }

    /// InfVerif 2084 (ServiceBinary is not a file the INF copies), 1014
    /// (values out of range) and 1252 (start type a service type cannot have).
    pub(super) fn check_service_values(&mut self) {
        let copied: HashSet<String> = self.copied_files().iter().map(|f| lower(&f.name)).collect();
        let dest_names: HashSet<String> = self
            .file_lists
            .iter()
            .flat_map(|(s, _)| s.entries.iter())
            .map(|e| lower(&self.resolve(e.key().unwrap_or_else(|| e.value_or_empty(0)).trim())))
            .chain(copied)
            .collect();
        let service_install = self.service_install.clone();
        for s in service_install {
            if let Some(e) = s.get("ServiceBinary") {
                let v = self.resolve(e.value_or_empty(0));
                let file = v.rsplit('\\').next().unwrap_or(&v);
                // Only a binary in the driver store must come from this
                // package; %12%\WUDFRd.sys and the like are inbox files.
                let in_store = lower(&v).starts_with("%13%\\");
                if in_store && !file.is_empty() && !dest_names.contains(&lower(file)) {
                    let text = format!("ServiceBinary {v:?} names no file this INF copies");
                    self.report(Rule::ServiceInstall, 2084, e.line, text);
                }
            }
            let number = |key: &str| {
                s.get(key).and_then(|e| {
                    parse_number(&self.resolve(e.value_or_empty(0))).map(|n| (n, e.line))
                })
            };
            let service_type = number("ServiceType");
            let start_type = number("StartType");
            for (key, value, ok) in [
                ("ServiceType", service_type, &SERVICE_TYPES[..]),
                ("StartType", start_type, &[0, 1, 2, 3, 4][..]),
                ("ErrorControl", number("ErrorControl"), &[0, 1, 2, 3][..]),
            ] {
                if let Some((n, line)) = value {
                    if !ok.contains(&n) {
                        self.report(
                            Rule::ServiceInstall,
                            1014,
                            line,
                            format!("{key} {n:#x} is not a valid value"),
                        );
                    }
                }
            }
            if let (Some((ty, _)), Some((start, line))) = (service_type, start_type) {
                if ty & 0x30 != 0 && start <= 1 {
                    let text = format!("a Win32 service (ServiceType {ty:#x}) cannot have boot/system StartType {start}");
                    self.report(Rule::ServiceInstall, 1252, line, text);
                }
            }
        }
    }
}
