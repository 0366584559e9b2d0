//! The fail-closed allow-list as administrators edit it: the `FailClosedAllow` value under the
//! service's `Parameters` key (REG_MULTI_SZ, one entry per string; grammar and parser in
//! `weir-failsafe`, shared with the driver), the fixed permits beside it, and the exact
//! `reg add` / PowerShell commands that write a list.
//!
//! The driver reads the value once, in DriverEntry, and only while `FailMode` is 1: a change
//! takes effect at its next start (`sc.exe stop weir` and `sc.exe start weir`, or a reboot).

pub use weir_failsafe::{describe_code, parse_multi_sz, Entry, EntryError, ListError, MAX_ENTRIES, VALUE_NAME};

/// The service's `Parameters` key under `HKEY_LOCAL_MACHINE`.
pub const PARAMETERS_KEY: &str = r"SYSTEM\CurrentControlSet\Services\weir\Parameters";

/// The permits every fail-closed set has, whatever the value says (src/failsafe.rs):
/// (what, where).
pub const FIXED_PERMITS: [(&str, &str); 4] = [
    ("loopback (FWP_CONDITION_FLAG_IS_LOOPBACK)", "out and in, IPv4 and IPv6"),
    ("DHCP client: udp to remote port 67 (IPv4) / 547 (IPv6)", "out"),
    ("DHCP client: udp to local port 68 (IPv4) / 546 (IPv6)", "in"),
    ("DNS: remote port 53, any protocol", "out, IPv4 and IPv6"),
];

/// Parses entries given as text (command-line arguments, the strings of the value).
/// Comments (`#...`) and blank strings are kept out of the result, as the driver skips them.
///
/// # Errors
/// The first bad entry as `(1-based position, error)`, or [`ListError::TooMany`] as position 0.
pub fn parse_entries<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Vec<Entry>, (usize, ListError)> {
    let mut out = Vec::new();
    for (i, text) in texts.into_iter().enumerate() {
        let t = text.trim_matches([' ', '\t']);
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let entry = Entry::parse(text).map_err(|error| (i + 1, ListError::Entry { line: i + 1, error }))?;
        out.push(entry);
    }
    if out.len() > MAX_ENTRIES {
        return Err((0, ListError::TooMany));
    }
    Ok(out)
}

/// `reg.exe` writing `entries` as the whole value (`/f` replaces it; REG_MULTI_SZ strings are
/// separated by `\0` on reg.exe's command line).
pub fn reg_add_command(entries: &[Entry]) -> String {
    let data: Vec<String> = entries.iter().map(ToString::to_string).collect();
    format!(r#"reg add "HKLM\{PARAMETERS_KEY}" /v {VALUE_NAME} /t REG_MULTI_SZ /d "{}" /f"#, data.join(r"\0"))
}

/// PowerShell writing `entries` as the whole value.
pub fn powershell_command(entries: &[Entry]) -> String {
    let data: Vec<String> = entries.iter().map(|e| format!("'{e}'")).collect();
    format!(
        "New-ItemProperty -Force -LiteralPath 'HKLM:\\{PARAMETERS_KEY}' -Name {VALUE_NAME} -PropertyType MultiString -Value @({})",
        data.join(", ")
    )
}

/// `reg.exe` deleting the value (no extra permits).
pub fn reg_delete_command() -> String {
    format!(r#"reg delete "HKLM\{PARAMETERS_KEY}" /v {VALUE_NAME} /f"#)
}

/// The value as it is in the registry now: its strings, or `None` when it is not set.
///
/// # Errors
/// [`crate::ClientError::Unsupported`] off Windows; `Os` for a failed read;
/// `Malformed` when the value is not REG_MULTI_SZ (the driver refuses it too).
pub fn read_value() -> Result<Option<Vec<String>>, crate::ClientError> {
    #[cfg(windows)]
    {
        let Some((kind, data)) = crate::win32::read_hklm_value(PARAMETERS_KEY, VALUE_NAME)? else { return Ok(None) };
        if kind != 7 {
            return Err(crate::ClientError::Malformed {
                request: "read FailClosedAllow",
                detail: format!("the value has registry type {kind}, not REG_MULTI_SZ (7); the driver ignores it: delete it and write it again"),
            });
        }
        Ok(Some(split_multi_sz(&data)))
    }
    #[cfg(not(windows))]
    Err(crate::ClientError::Unsupported)
}

/// Writes `entries` as the whole value (their canonical text), or deletes the value when there
/// are none.
///
/// # Errors
/// [`crate::ClientError::Unsupported`] off Windows; `AccessDenied` without elevation; `Os`.
pub fn write_value(entries: &[Entry]) -> Result<(), crate::ClientError> {
    let texts: Vec<String> = entries.iter().map(ToString::to_string).collect();
    let data = join_multi_sz(&texts);
    #[cfg(windows)]
    return crate::win32::write_hklm_multi_sz(PARAMETERS_KEY, VALUE_NAME, (!entries.is_empty()).then_some(&data[..]));
    #[cfg(not(windows))]
    {
        let _ = data;
        Err(crate::ClientError::Unsupported)
    }
}

/// Writes `strings` verbatim as the whole value (comments included).
///
/// # Errors
/// As [`write_value`].
pub fn write_strings(strings: &[String]) -> Result<(), crate::ClientError> {
    let data = join_multi_sz(strings);
    #[cfg(windows)]
    return crate::win32::write_hklm_multi_sz(PARAMETERS_KEY, VALUE_NAME, Some(&data[..]));
    #[cfg(not(windows))]
    {
        let _ = data;
        Err(crate::ClientError::Unsupported)
    }
}

/// REG_MULTI_SZ data to its strings (UTF-16LE, lossy; empty strings dropped).
pub fn split_multi_sz(data: &[u8]) -> Vec<String> {
    let units: Vec<u16> = data.chunks_exact(2).filter_map(|c| c.try_into().ok()).map(u16::from_le_bytes).collect();
    units.split(|u| *u == 0).filter(|s| !s.is_empty()).map(String::from_utf16_lossy).collect()
}

/// Strings to REG_MULTI_SZ data.
pub fn join_multi_sz(strings: &[String]) -> Vec<u8> {
    let mut out: Vec<u8> = strings.iter().flat_map(|s| s.encode_utf16().chain([0])).flat_map(u16::to_le_bytes).collect();
    out.extend([0, 0]);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn entries_parse_to_their_canonical_form_and_the_commands_write_exactly_them() {
        let e = parse_entries(["OUT udp 10.0.0.53 53", "# dns", "", "in udp any 67-68"]).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            reg_add_command(&e),
            r#"reg add "HKLM\SYSTEM\CurrentControlSet\Services\weir\Parameters" /v FailClosedAllow /t REG_MULTI_SZ /d "out udp 10.0.0.53 53\0in udp any 67-68" /f"#
        );
        assert_eq!(
            powershell_command(&e),
            r"New-ItemProperty -Force -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Services\weir\Parameters' -Name FailClosedAllow -PropertyType MultiString -Value @('out udp 10.0.0.53 53', 'in udp any 67-68')"
        );
        assert_eq!(reg_delete_command(), r#"reg delete "HKLM\SYSTEM\CurrentControlSet\Services\weir\Parameters" /v FailClosedAllow /f"#);
    }

    #[test]
    fn multi_sz_round_trips_and_agrees_with_the_driver_parser() {
        let texts = vec!["out udp 10.0.0.53 53".to_string(), "# c".to_string(), "in tcp any 5985".to_string()];
        let data = join_multi_sz(&texts);
        assert_eq!(split_multi_sz(&data), texts);
        let p = parse_multi_sz(&data);
        assert_eq!((p.error, p.list.len()), (None, 2));
        assert_eq!(p.list.entries(), &parse_entries(texts.iter().map(String::as_str)).unwrap()[..]);
    }

    #[test]
    fn a_bad_entry_is_named_by_position_and_too_many_are_refused() {
        let err = parse_entries(["out tcp any 443", "out tcp any 90-80"]).unwrap_err();
        assert_eq!(err, (2, ListError::Entry { line: 2, error: EntryError::PortOrder }));
        let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("out tcp any {i}")).collect();
        assert_eq!(parse_entries(many.iter().map(String::as_str)).unwrap_err(), (0, ListError::TooMany));
    }
}
