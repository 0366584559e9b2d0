//! Application paths as users write them (`C:\Program Files\App\app.exe`) to the NT
//! device path WFP reports in `FWPS_FIELD_ALE_*_ALE_APP_ID`
//! (`\Device\HarddiskVolume3\Program Files\App\app.exe`).
//!
//! The drive letter is resolved through a [`DriveMap`]; on Windows that is
//! `QueryDosDeviceW` (`crate::win32::DosDevices`), in tests a fixed table. The rules
//! follow the Win32 path forms documented in "File path formats on Windows systems"
//! (learn.microsoft.com, dotnet/standard/io/file-path-formats):
//!
//! | written | becomes |
//! |---|---|
//! | `C:\dir\app.exe`, `C:/dir/app.exe` | `<device of C:>\dir\app.exe` |
//! | `\\?\C:\dir\app.exe`, `\\.\C:\dir\app.exe` | same as `C:\dir\app.exe` |
//! | `\\server\share\app.exe`, `\\?\UNC\server\share\app.exe` | `\Device\Mup\server\share\app.exe` |
//! | `\??\C:\dir\app.exe` | same as `C:\dir\app.exe` |
//! | `Z:\app.exe`, Z: a mapped network drive (`\Device\LanmanRedirector\;Z:0000…\server\share`) | `\Device\Mup\server\share\app.exe` (what WFP reports for programs on a share) |
//! | `\Device\...` | unchanged (already an NT path) |
//!
//! Refused, each with its reason, because WFP reports canonical absolute long paths and such a
//! rule could never match: relative and drive-relative paths (`app.exe`, `C:app.exe`,
//! `\dir\app.exe`); `.` or `..` or empty components; components ending in a dot or a space
//! (Win32 strips them); wildcards (`*`, `?`: a rule names one program); environment variables
//! (`%ProgramFiles%`: the same file must mean the same thing on every machine it is checked on);
//! 8.3 short names (`PROGRA~1`: WFP reports the long name); characters Windows does not allow
//! in names (`<>:"|`, control characters; a `:` after the drive is an alternate data stream);
//! volume GUID paths (`\\?\Volume{…}\`).
//!
//! Drive letters compare in any case. On Windows, weirctl also asks the OS
//! (`FwpmGetAppIdFromFileName0`, `crate::win32::app_id_of`) for a program that exists, and
//! reports where the two differ.

use std::fmt;

/// Resolves a drive (`"C:"`) to its NT device (`"\Device\HarddiskVolume3"`).
pub trait DriveMap {
    /// The target of the DOS device `drive` (two characters: letter and colon), as
    /// `QueryDosDeviceW` returns it (first string), or `None` when the drive is not mapped.
    fn device_of(&self, drive: &str) -> Option<String>;

    /// The application id the OS itself gives the program at `path` (on Windows
    /// `FwpmGetAppIdFromFileName0`, for a program that exists), preferred to the conversion
    /// when present; `None` by default.
    fn app_id(&self, _path: &str) -> Option<String> {
        None
    }
}

/// A fixed drive table (tests, and tools that know the target machine's volumes).
#[derive(Clone, Debug, Default)]
pub struct FixedDriveMap {
    entries: Vec<(String, String)>,
}

impl FixedDriveMap {
    /// A map of `(drive, device)` pairs, e.g. `("C:", "\Device\HarddiskVolume3")`; drive
    /// letters compare case-insensitively.
    pub fn new<I, A, B>(entries: I) -> Self
    where
        I: IntoIterator<Item = (A, B)>,
        A: Into<String>,
        B: Into<String>,
    {
        Self {
            entries: entries
                .into_iter()
                .map(|(a, b)| (a.into(), b.into()))
                .collect(),
        }
    }
}

impl DriveMap for FixedDriveMap {
    fn device_of(&self, drive: &str) -> Option<String> {
        self.entries
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(drive))
            .map(|(_, dev)| dev.clone())
    }
}

/// Why a path could not be converted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// Not an absolute path with a drive, a UNC path or an NT path.
    NotAbsolute,
    /// Contains a `.` or `..` component or an empty component (`a\\b`).
    NotCanonical,
    /// The drive letter is not mapped on this machine.
    UnknownDrive(String),
    /// A drive maps to another DOS path more than a few times over (`subst` chains).
    SubstLoop(String),
    /// Contains a wildcard.
    Wildcard(char),
    /// Contains an environment variable reference (`%NAME%`).
    EnvVar(String),
    /// A component looks like an 8.3 short name.
    ShortName(String),
    /// A component ends in a dot or a space.
    TrailingDotOrSpace(String),
    /// A character Windows does not allow in file names.
    BadChar(char),
    /// A volume GUID path.
    VolumeGuid,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::NotAbsolute => write!(
                f,
                "application path must be absolute (C:\\dir\\app.exe, \\\\server\\share\\app.exe or \\Device\\...)"
            ),
            PathError::NotCanonical => {
                write!(f, "application path must not contain `.`, `..` or empty components (WFP reports canonical paths)")
            }
            PathError::UnknownDrive(d) => write!(f, "drive {d} is not mapped on this machine"),
            PathError::SubstLoop(d) => write!(f, "drive {d} maps to itself through subst"),
            PathError::Wildcard(c) => write!(
                f,
                "wildcards (`{c}`) are not supported: a rule matches one program; write one rule per program"
            ),
            PathError::EnvVar(v) => write!(
                f,
                "environment variable `{v}` is not expanded (a policy must mean the same on every machine it is checked on); write the path it stands for"
            ),
            PathError::ShortName(n) => write!(
                f,
                "`{n}` looks like an 8.3 short name, but WFP reports long names; write the long name (`dir /x` shows both)"
            ),
            PathError::TrailingDotOrSpace(n) => write!(
                f,
                "`{n}` ends in a dot or a space, which Windows removes from names; write it without"
            ),
            PathError::BadChar(c) => write!(
                f,
                "character {c:?} is not allowed in Windows file names (a `:` after the drive names an alternate data stream)"
            ),
            PathError::VolumeGuid => write!(
                f,
                "volume GUID paths (\\\\?\\Volume{{...}}) are not converted; use the drive letter or \\Device\\HarddiskVolumeN"
            ),
        }
    }
}

impl std::error::Error for PathError {}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// Whether `part` has the shape of a generated 8.3 name: up to 6 characters, `~`, digits,
/// and an extension of up to 3.
fn is_short_name(part: &str) -> bool {
    let (base, ext) = part.split_once('.').unwrap_or((part, ""));
    let Some((stem, digits)) = base.split_once('~') else {
        return false;
    };
    !stem.is_empty()
        && base.len() <= 8
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && ext.len() <= 3
        && !ext.contains('.')
}

/// Refusals that hold for a path in any form, before it is taken apart.
fn check_text(path: &str) -> Result<(), PathError> {
    if let Some(c) = path.chars().find(|c| matches!(c, '*' | '?')) {
        // `\\?\` prefixes are not wildcards.
        let body = path
            .strip_prefix("\\\\?\\")
            .or_else(|| path.strip_prefix("\\??\\"))
            .unwrap_or(path);
        if body.contains(c) {
            return Err(PathError::Wildcard(c));
        }
    }
    if let Some(start) = path.find('%') {
        if let Some(len) = path.get(start + 1..).and_then(|r| r.find('%')) {
            let name = path.get(start..start + len + 2).unwrap_or("%");
            return Err(PathError::EnvVar(name.to_string()));
        }
    }
    Ok(())
}

fn check_components(rest: &str) -> Result<(), PathError> {
    // `rest` starts after the volume: `\dir\app.exe`.
    let mut parts = rest.split('\\');
    if parts.next() != Some("") {
        return Err(PathError::NotAbsolute);
    }
    for part in parts {
        if part.is_empty() || part == "." || part == ".." {
            return Err(PathError::NotCanonical);
        }
        if let Some(c) = part
            .chars()
            .find(|c| matches!(c, '<' | '>' | ':' | '"' | '|') || c.is_control())
        {
            return Err(PathError::BadChar(c));
        }
        if part.ends_with('.') || part.ends_with(' ') {
            return Err(PathError::TrailingDotOrSpace(part.to_string()));
        }
        if is_short_name(part) {
            return Err(PathError::ShortName(part.to_string()));
        }
    }
    Ok(())
}

/// The device of a network drive as WFP names programs on it: `\Device\LanmanRedirector\;Z:0…\server\share`
/// (or the same under `\Device\Mup\;LanmanRedirector\`) is `\Device\Mup\server\share`.
fn network_device(device: &str) -> Option<String> {
    let parts: Vec<&str> = device.trim_end_matches('\\').split('\\').collect();
    let last = parts.iter().rposition(|p| p.starts_with(';'))?;
    let rest = parts.get(last + 1..)?;
    (rest.len() >= 2).then(|| format!("\\Device\\Mup\\{}", rest.join("\\")))
}

/// Whether `path` is already an NT device path (`\Device\...`).
pub fn is_nt_path(path: &str) -> bool {
    strip_prefix_ci(path, "\\Device\\").is_some()
}

/// Converts a user-written application path to the NT path WFP reports.
///
/// Errors: [`PathError`] (see the module docs for the accepted forms).
pub fn to_nt_path(path: &str, drives: &dyn DriveMap) -> Result<String, PathError> {
    let path = path.replace('/', "\\");
    check_text(&path)?;
    if strip_prefix_ci(&path, "\\\\?\\Volume{").is_some() {
        return Err(PathError::VolumeGuid);
    }
    if is_nt_path(&path) {
        let rest = strip_prefix_ci(&path, "\\Device").unwrap_or("");
        check_components(rest)?;
        return Ok(path);
    }
    let unc = strip_prefix_ci(&path, "\\\\?\\UNC\\").or_else(|| {
        (path.starts_with("\\\\") && !path.starts_with("\\\\?\\") && !path.starts_with("\\\\.\\"))
            .then(|| path.get(2..))
            .flatten()
    });
    if let Some(unc) = unc {
        let full = format!("\\{unc}");
        check_components(&full)?;
        // Server, share and at least a file name.
        if full.split('\\').count() < 4 {
            return Err(PathError::NotAbsolute);
        }
        return Ok(format!("\\Device\\Mup{full}"));
    }
    let local = strip_prefix_ci(&path, "\\\\?\\")
        .or_else(|| strip_prefix_ci(&path, "\\\\.\\"))
        .or_else(|| strip_prefix_ci(&path, "\\??\\"))
        .unwrap_or(&path);
    resolve_drive_path(local, drives, 0)
}

fn resolve_drive_path(local: &str, drives: &dyn DriveMap, depth: u32) -> Result<String, PathError> {
    let mut chars = local.chars();
    let (Some(letter), Some(':')) = (chars.next(), chars.next()) else {
        return Err(PathError::NotAbsolute);
    };
    if !letter.is_ascii_alphabetic() {
        return Err(PathError::NotAbsolute);
    }
    let drive = format!("{}:", letter.to_ascii_uppercase());
    let rest = local.get(2..).unwrap_or("");
    check_components(rest)?;
    let device = drives
        .device_of(&drive)
        .ok_or_else(|| PathError::UnknownDrive(drive.clone()))?;
    // `subst X: C:\dir` maps X: to `\??\C:\dir`: resolve through the other drive.
    if let Some(target) = strip_prefix_ci(&device, "\\??\\") {
        if depth >= 4 {
            return Err(PathError::SubstLoop(drive));
        }
        let joined = format!("{}{rest}", target.trim_end_matches('\\'));
        return resolve_drive_path(&joined, drives, depth + 1);
    }
    if let Some(share) = network_device(&device) {
        return Ok(format!("{share}{rest}"));
    }
    Ok(format!("{}{rest}", device.trim_end_matches('\\')))
}

/// Every refusal of [`to_nt_path`] that does not depend on the machine's drives: what
/// `policy check` applies to paths it keeps as written, so that it refuses what `load` would.
///
/// # Errors
/// As [`to_nt_path`], except [`PathError::UnknownDrive`].
pub fn check_form(path: &str) -> Result<(), PathError> {
    struct AnyDrive;
    impl DriveMap for AnyDrive {
        fn device_of(&self, _: &str) -> Option<String> {
            Some("\\Device\\Volume".into())
        }
    }
    to_nt_path(path, &AnyDrive).map(|_| ())
}

/// The reverse of [`to_nt_path`] for display: the first drive of `drives` (A: to Z:) whose
/// device is a prefix of `nt` (case-insensitive, at a component boundary) gives
/// `X:\rest`; otherwise `None`.
pub fn to_dos_path(nt: &str, drives: &dyn DriveMap) -> Option<String> {
    for letter in 'A'..='Z' {
        let drive = format!("{letter}:");
        let Some(device) = drives.device_of(&drive) else {
            continue;
        };
        if !is_nt_path(&device) {
            continue;
        }
        let device = device.trim_end_matches('\\');
        if let Some(rest) = strip_prefix_ci(nt, device) {
            if rest.starts_with('\\') {
                return Some(format!("{drive}{rest}"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> FixedDriveMap {
        FixedDriveMap::new([
            ("C:", "\\Device\\HarddiskVolume3"),
            ("D:", "\\Device\\HarddiskVolume7\\"),
            ("S:", "\\??\\C:\\Shared"),
            ("L:", "\\??\\L:\\loop"),
            (
                "N:",
                "\\Device\\LanmanRedirector\\;N:000000000002a3b4\\srv\\share",
            ),
            (
                "Y:",
                "\\Device\\Mup\\;LanmanRedirector\\;Y:000000000002a3b4\\srv\\tools\\",
            ),
        ])
    }

    #[test]
    fn paths_as_windows_users_write_them_match_what_wfp_reports_or_are_refused() {
        let m = map();
        let ok = [
            (
                "c:\\Tools\\x.exe",
                "\\Device\\HarddiskVolume3\\Tools\\x.exe",
            ),
            (
                "C:\\Tools\\x.exe",
                "\\Device\\HarddiskVolume3\\Tools\\x.exe",
            ),
            ("\\??\\C:\\x.exe", "\\Device\\HarddiskVolume3\\x.exe"),
            ("n:\\bin\\x.exe", "\\Device\\Mup\\srv\\share\\bin\\x.exe"),
            ("y:\\x.exe", "\\Device\\Mup\\srv\\tools\\x.exe"),
            (
                "\\\\srv\\share\\bin\\x.exe",
                "\\Device\\Mup\\srv\\share\\bin\\x.exe",
            ),
            (
                "C:\\Program Files\\a~b\\x.exe",
                "\\Device\\HarddiskVolume3\\Program Files\\a~b\\x.exe",
            ),
            (
                "C:\\Program Files\\App~Suite Pro\\x.exe",
                "\\Device\\HarddiskVolume3\\Program Files\\App~Suite Pro\\x.exe",
            ),
        ];
        for (written, nt) in ok {
            assert_eq!(to_nt_path(written, &m).as_deref(), Ok(nt), "{written}");
        }
        let refused = [
            ("C:\\Tools\\*.exe", PathError::Wildcard('*')),
            ("C:\\Tools\\app?.exe", PathError::Wildcard('?')),
            (
                "%ProgramFiles%\\App\\x.exe",
                PathError::EnvVar("%ProgramFiles%".into()),
            ),
            ("C:\\%APPDIR%\\x.exe", PathError::EnvVar("%APPDIR%".into())),
            (
                "C:\\PROGRA~1\\App\\x.exe",
                PathError::ShortName("PROGRA~1".into()),
            ),
            (
                "C:\\App\\LONGNA~2.EXE",
                PathError::ShortName("LONGNA~2.EXE".into()),
            ),
            (
                "C:\\App\\x.exe.",
                PathError::TrailingDotOrSpace("x.exe.".into()),
            ),
            (
                "C:\\App \\x.exe",
                PathError::TrailingDotOrSpace("App ".into()),
            ),
            ("C:\\App\\x.exe:stream", PathError::BadChar(':')),
            ("C:\\App\\x|y.exe", PathError::BadChar('|')),
            (
                "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\x.exe",
                PathError::VolumeGuid,
            ),
            ("x.exe", PathError::NotAbsolute),
            (".\\x.exe", PathError::NotAbsolute),
            ("..\\bin\\x.exe", PathError::NotAbsolute),
        ];
        for (written, e) in refused {
            assert_eq!(to_nt_path(written, &m), Err(e), "{written}");
        }
        // Every refusal says why in words.
        assert!(PathError::Wildcard('*')
            .to_string()
            .contains("not supported"));
        assert!(PathError::ShortName("PROGRA~1".into())
            .to_string()
            .contains("long name"));
    }

    #[test]
    fn drive_paths_become_device_paths() {
        let m = map();
        assert_eq!(
            to_nt_path("C:\\Program Files\\App\\app.exe", &m).unwrap(),
            "\\Device\\HarddiskVolume3\\Program Files\\App\\app.exe"
        );
        assert_eq!(
            to_nt_path("c:/tools/x.exe", &m).unwrap(),
            "\\Device\\HarddiskVolume3\\tools\\x.exe"
        );
        assert_eq!(
            to_nt_path("D:\\a.exe", &m).unwrap(),
            "\\Device\\HarddiskVolume7\\a.exe"
        );
        assert_eq!(
            to_nt_path("\\\\?\\C:\\a.exe", &m).unwrap(),
            "\\Device\\HarddiskVolume3\\a.exe"
        );
        assert_eq!(
            to_nt_path("\\\\.\\C:\\a.exe", &m).unwrap(),
            "\\Device\\HarddiskVolume3\\a.exe"
        );
    }

    #[test]
    fn subst_drives_resolve_through_their_target() {
        assert_eq!(
            to_nt_path("S:\\bin\\t.exe", &map()).unwrap(),
            "\\Device\\HarddiskVolume3\\Shared\\bin\\t.exe"
        );
        assert_eq!(
            to_nt_path("L:\\t.exe", &map()),
            Err(PathError::SubstLoop("L:".into()))
        );
    }

    #[test]
    fn unc_and_nt_paths() {
        let m = map();
        assert_eq!(
            to_nt_path("\\\\srv\\share\\a.exe", &m).unwrap(),
            "\\Device\\Mup\\srv\\share\\a.exe"
        );
        assert_eq!(
            to_nt_path("\\\\?\\UNC\\srv\\share\\a.exe", &m).unwrap(),
            "\\Device\\Mup\\srv\\share\\a.exe"
        );
        assert_eq!(
            to_nt_path("\\\\srv\\share", &m),
            Err(PathError::NotAbsolute)
        );
        assert_eq!(
            to_nt_path("\\device\\harddiskvolume1\\x.exe", &m).unwrap(),
            "\\device\\harddiskvolume1\\x.exe"
        );
    }

    #[test]
    fn relative_unknown_and_non_canonical_paths_are_refused() {
        let m = map();
        assert_eq!(to_nt_path("app.exe", &m), Err(PathError::NotAbsolute));
        assert_eq!(to_nt_path("C:app.exe", &m), Err(PathError::NotAbsolute));
        assert_eq!(
            to_nt_path("\\dir\\app.exe", &m),
            Err(PathError::NotAbsolute)
        );
        assert_eq!(to_nt_path("1:\\app.exe", &m), Err(PathError::NotAbsolute));
        assert_eq!(
            to_nt_path("Z:\\app.exe", &m),
            Err(PathError::UnknownDrive("Z:".into()))
        );
        assert_eq!(
            to_nt_path("C:\\a\\..\\b.exe", &m),
            Err(PathError::NotCanonical)
        );
        assert_eq!(
            to_nt_path("C:\\a\\.\\b.exe", &m),
            Err(PathError::NotCanonical)
        );
        assert_eq!(
            to_nt_path("C:\\a\\\\b.exe", &m),
            Err(PathError::NotCanonical)
        );
        assert_eq!(
            to_nt_path("\\Device\\X\\..\\b.exe", &m),
            Err(PathError::NotCanonical)
        );
    }

    #[test]
    fn dos_path_reverses_the_conversion() {
        let m = map();
        for p in ["C:\\Program Files\\App\\app.exe", "D:\\a.exe"] {
            let nt = to_nt_path(p, &m).unwrap();
            assert_eq!(to_dos_path(&nt, &m).as_deref(), Some(p));
        }
        // Lower case, as WFP reports it.
        assert_eq!(
            to_dos_path("\\device\\harddiskvolume3\\x.exe", &m).as_deref(),
            Some("C:\\x.exe")
        );
        // A prefix that stops mid-component is not a match.
        assert_eq!(to_dos_path("\\Device\\HarddiskVolume30\\x.exe", &m), None);
    }
}
