//! `[Version]`: required keys, their values, DriverVer.

use super::rule::{driver_ver_code, version_key_code};
use super::{is_family, lower, Entry, Linter, Rule, WFPCALLOUTS_GUID};
use crate::stamp::days_in_month;

const REQUIRED_VERSION_KEYS: [&str; 7] = [
    "Signature",
    "Class",
    "ClassGuid",
    "Provider",
    "DriverVer",
    "CatalogFile",
    "PnpLockdown",
];

impl Linter<'_> {
    pub(super) fn check_version(&mut self) {
        let inf = self.inf;
        let Some(version) = inf.section("Version") else {
            self.report(Rule::VersionMissing, 1001, 1, "no [Version] section");
            return;
        };
        let entries: Vec<&Entry> = inf
            .sections_named("Version")
            .flat_map(|s| s.entries.iter())
            .collect();
        let find = |key: &str| {
            entries.iter().copied().find(|e| {
                e.key_is(key)
                    || (key.eq_ignore_ascii_case("CatalogFile")
                        && e.key().is_some_and(|k| is_family(k, "CatalogFile")))
            })
        };
        for key in REQUIRED_VERSION_KEYS {
            if find(key).is_none() {
                self.report(
                    Rule::VersionKey,
                    version_key_code(key),
                    version.line,
                    format!("[Version] has no {key} entry"),
                );
            }
        }
        if let Some(e) = find("Signature") {
            let v = self.resolve(e.value_or_empty(0));
            if !v.eq_ignore_ascii_case("$WINDOWS NT$") {
                self.report(
                    Rule::VersionValue,
                    1001,
                    e.line,
                    format!("Signature is {v:?}, expected \"$WINDOWS NT$\""),
                );
            }
        }
        let guid_entry = find("ClassGuid");
        if let Some(e) = guid_entry {
            let g = e.value_or_empty(0);
            if !is_guid(g) {
                self.report(
                    Rule::VersionValue,
                    1010,
                    e.line,
                    format!(
                        "ClassGuid {g:?} is not a {{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}} GUID"
                    ),
                );
            }
        }
        if let Some(e) = find("Class") {
            let class = self.resolve(e.value_or_empty(0));
            if class.eq_ignore_ascii_case("WFPCALLOUTS") {
                if let Some(g) = guid_entry {
                    let gv = g.value_or_empty(0);
                    if is_guid(gv) && !gv.eq_ignore_ascii_case(WFPCALLOUTS_GUID) {
                        self.report(
                            Rule::VersionValue, 1281,
                            g.line,
                            format!("ClassGuid {gv} does not match Class WFPCALLOUTS ({WFPCALLOUTS_GUID})"),
                        );
                    }
                }
            } else if class.is_empty() {
                self.report(Rule::VersionValue, 1234, e.line, "Class is empty");
            } else if guid_entry
                .is_some_and(|g| g.value_or_empty(0).eq_ignore_ascii_case(WFPCALLOUTS_GUID))
            {
                self.report(
                    Rule::VersionValue,
                    1280,
                    e.line,
                    format!(
                        "Class {class:?} does not match ClassGuid {WFPCALLOUTS_GUID} (WFPCALLOUTS)"
                    ),
                );
            }
        }
        if let Some(e) = find("Provider") {
            let p = self.resolve(e.value_or_empty(0));
            let p = p.trim();
            if p.is_empty() || p.contains('%') {
                self.report(
                    Rule::VersionValue,
                    1234,
                    e.line,
                    format!("Provider {p:?} is empty or unresolved"),
                );
            } else if p.eq_ignore_ascii_case("Microsoft") {
                self.report(
                    Rule::VersionValue,
                    1204,
                    e.line,
                    "Provider must not be \"Microsoft\" for a third-party driver",
                );
            }
        }
        if let Some(e) = find("PnpLockdown") {
            let v = e.value_or_empty(0);
            if v != "1" {
                self.report(
                    Rule::VersionValue,
                    1324,
                    e.line,
                    format!("PnpLockdown is {v:?}, expected 1"),
                );
            }
        }
        if let Some(e) = find("CatalogFile") {
            let v = self.resolve(e.value_or_empty(0));
            let l = lower(&v);
            if l.len() <= 4 || !l.ends_with(".cat") || v.contains(['\\', '/', ':', '%']) {
                self.report(
                    Rule::VersionValue,
                    1214,
                    e.line,
                    format!("CatalogFile {v:?} is not a plain name ending in .cat"),
                );
            }
        }
        if let Some(e) = find("DriverVer") {
            let v = self.resolve(
                &e.values
                    .iter()
                    .map(|v| v.text.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            if let Err(why) = check_driver_ver(&v) {
                self.report(
                    Rule::DriverVerFormat,
                    driver_ver_code(&why),
                    e.line,
                    format!("DriverVer {v:?}: {why}"),
                );
            }
        }
    }
}

/// `{8-4-4-4-12}` hexadecimal GUID in braces.
fn is_guid(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return false;
    };
    let groups: Vec<&str> = inner.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    lens == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks a DriverVer value `MM/DD/YYYY,w.x.y.z`.
fn check_driver_ver(v: &str) -> Result<(), String> {
    let Some((date, version)) = v.split_once(',') else {
        return Err("expected MM/DD/YYYY,w.x.y.z".into());
    };
    let (date, version) = (date.trim(), version.trim());
    let parts: Vec<&str> = date.split('/').collect();
    let [m, d, y] = parts.as_slice() else {
        return Err(format!("date {date:?} is not MM/DD/YYYY"));
    };
    let digits =
        |s: &str, lens: &[usize]| lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(m, &[1, 2]) || !digits(d, &[1, 2]) || !digits(y, &[4]) {
        return Err(format!("date {date:?} is not MM/DD/YYYY"));
    }
    let (Ok(m), Ok(d), Ok(y)) = (m.parse::<u8>(), d.parse::<u8>(), y.parse::<u16>()) else {
        return Err(format!("date {date:?} is not MM/DD/YYYY"));
    };
    if !(1..=12).contains(&m) {
        return Err(format!("month {m} is not 1-12"));
    }
    if y < 1970 {
        return Err(format!("year {y} is before 1970"));
    }
    if d < 1 || d > days_in_month(y, m) {
        return Err(format!("day {d} does not exist in {m:02}/{y}"));
    }
    let fields: Vec<&str> = version.split('.').collect();
    if fields.is_empty() || fields.len() > 4 {
        return Err(format!("version {version:?} must have 1 to 4 fields"));
    }
    for f in fields {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("version {version:?} has a non-numeric field"));
        }
        if f.parse::<u16>().is_err() {
            return Err(format!("version field {f} is greater than 65535"));
        }
    }
    Ok(())
}
