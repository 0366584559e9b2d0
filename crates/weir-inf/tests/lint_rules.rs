//! One or more small bad INFs per lint rule, each rejected with the expected
//! rule id at the expected line; and the real stamped driver.inx lints clean.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use weir_inf::{
    check_catalog_coverage, copied_files, lint, lint_bytes, parse, stamp, Rule, StampOptions,
};

const DRIVER_INX: &str = include_str!("../../../driver.inx");

/// A small INF that lints clean; the cases below break one thing each.
const GOOD: &str = "\
; test INF
[Version]
Signature = \"$WINDOWS NT$\"
Class = WFPCALLOUTS
ClassGuid = {57465043-616C-6C6F-7574-5F636C617373}
Provider = %Prov%
CatalogFile = t.cat
DriverVer = 05/17/2025,1.2.3.0
PnpLockdown = 1

[SourceDisksNames]
1 = %Disk%,,,\"\"

[SourceDisksFiles]
t.sys = 1,,

[DestinationDirs]
DefaultDestDir = 13

[DefaultInstall.NTamd64]
CopyFiles = T.Files

[DefaultInstall.NTamd64.Services]
AddService = %Svc%,,T.Service

[T.Files]
t.sys

[T.Service]
ServiceType = 1
StartType = 3
ErrorControl = 1
ServiceBinary = %13%\\t.sys
AddReg = T.Reg

[T.Reg]
HKR,Parameters,Level,0x00010001,1

[Strings]
Prov = \"Test Provider\"
Disk = \"Test Disk\"
Svc = \"t\"
";

fn stamped_driver_inf() -> String {
    stamp(
        DRIVER_INX,
        &StampOptions {
            arch: "amd64",
            date: (2025, 5, 17),
            version: [0, 1, 0, 0],
            catalog_file: None,
        },
    )
    .unwrap()
}

/// 1-based line where the first occurrence of `needle` starts (leading
/// newlines of `needle` skipped, so "\nx\n" finds a line that is exactly x).
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    let skip = needle.len() - needle.trim_start_matches('\n').len();
    text[..at + skip].matches('\n').count() + 1
}

/// `GOOD` with `from` replaced by `to` (which must occur).
fn good_with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from:?} not in GOOD");
    GOOD.replacen(from, to, 1)
}

struct Case {
    name: &'static str,
    text: String,
    rule: Rule,
    /// The InfVerif code the finding must carry (None: a project rule).
    code: Option<u16>,
    line: usize,
}

/// A bad INF: `text` must produce `rule` with InfVerif `code` on the line
/// containing `marker`.
fn case(
    name: &'static str,
    text: String,
    rule: Rule,
    code: impl Into<Option<u16>>,
    marker: &str,
) -> Case {
    let line = line_of(&text, marker);
    Case {
        name,
        text,
        rule,
        code: code.into(),
        line,
    }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();

    // parse-error
    v.push(case(
        "unterminated quote",
        good_with("PnpLockdown = 1", "PnpLockdown = \"1"),
        Rule::ParseError,
        1002,
        "PnpLockdown",
    ));
    v.push(case(
        "entry before any section",
        format!("Stray = 1\n{GOOD}"),
        Rule::ParseError,
        1002,
        "Stray",
    ));

    // version-missing
    v.push(case(
        "no [Version]",
        good_with("[Version]", "[NotVersion]"),
        Rule::VersionMissing,
        1001,
        "; test INF",
    ));

    // version-key: each required key missing, reported at the [Version] header
    let version_key_code = |key: &str| match key {
        "Signature =" => 1001,
        "CatalogFile =" => 1233,
        "PnpLockdown =" => 1324,
        _ => 1234,
    };
    for key in [
        "Signature =",
        "Class =",
        "ClassGuid =",
        "Provider =",
        "DriverVer =",
        "CatalogFile =",
        "PnpLockdown =",
    ] {
        v.push(case(
            "required [Version] key missing",
            good_with(key, &format!("; removed {key}")),
            Rule::VersionKey,
            version_key_code(key),
            "[Version]",
        ));
    }

    // version-value
    v.push(case(
        "wrong Signature",
        good_with("\"$WINDOWS NT$\"", "\"$Chicago$\""),
        Rule::VersionValue,
        1001,
        "Signature",
    ));
    v.push(case(
        "malformed ClassGuid",
        good_with(
            "{57465043-616C-6C6F-7574-5F636C617373}",
            "{57465043-616C-6C6F-7574}",
        ),
        Rule::VersionValue,
        1010,
        "ClassGuid",
    ));
    v.push(case(
        "WFPCALLOUTS with another GUID",
        good_with(
            "{57465043-616C-6C6F-7574-5F636C617373}",
            "{4D36E972-E325-11CE-BFC1-08002BE10318}",
        ),
        Rule::VersionValue,
        1281,
        "ClassGuid",
    ));
    v.push(case(
        "Provider is Microsoft",
        good_with("Prov = \"Test Provider\"", "Prov = \"Microsoft\""),
        Rule::VersionValue,
        1204,
        "Provider",
    ));
    v.push(case(
        "PnpLockdown 0",
        good_with("PnpLockdown = 1", "PnpLockdown = 0"),
        Rule::VersionValue,
        1324,
        "PnpLockdown",
    ));
    v.push(case(
        "CatalogFile not .cat",
        good_with("CatalogFile = t.cat", "CatalogFile = sub\\t.txt"),
        Rule::VersionValue,
        1214,
        "CatalogFile",
    ));

    // driverver-format
    for (bad, code) in [
        ("13/01/2025,1.2.3.0", 1218),
        ("02/30/2025,1.2.3.0", 1218),
        ("02/29/2023,1.2.3.0", 1218),
        ("05/17/2025,1.2.3.70000", 1217),
        ("05/17/2025,1.x.3.0", 1217),
        ("05/17/2025,1.2.3.4.5", 1217),
        ("2025-05-17,1.2.3.0", 1218),
        ("05/17/25,1.2.3.0", 1218),
        ("05/17/2025", 1218),
    ] {
        v.push(case(
            "bad DriverVer",
            good_with("05/17/2025,1.2.3.0", bad),
            Rule::DriverVerFormat,
            code,
            "DriverVer",
        ));
    }

    // manufacturer-and-defaultinstall
    v.push(case(
        "Manufacturer and DefaultInstall",
        good_with(
            "[DestinationDirs]",
            "[Manufacturer]\n%Prov% = Models,NTamd64\n\n[Models.NTamd64]\n%Svc% = T.Install, Root\\T\n\n[T.Install.NTamd64]\nCopyFiles = T.Files\n\n[DestinationDirs]",
        ),
        Rule::ManufacturerAndDefaultInstall, 1212,
        "[DefaultInstall.NTamd64]",
    ));

    // undecorated-defaultinstall
    v.push(case(
        "undecorated DefaultInstall",
        good_with("[DefaultInstall.NTamd64]", "[DefaultInstall]"),
        Rule::UndecoratedDefaultInstall,
        1421,
        "[DefaultInstall]",
    ));
    v.push(case(
        "DefaultInstall.NT without architecture",
        good_with(
            "[DefaultInstall.NTamd64.Services]",
            "[DefaultInstall.NT.Services]",
        ),
        Rule::UndecoratedDefaultInstall,
        1421,
        "[DefaultInstall.NT.Services]",
    ));

    // no-install-section
    v.push(case(
        "neither Manufacturer nor DefaultInstall",
        good_with("[DefaultInstall.NTamd64]", "[Install.NTamd64]").replacen(
            "[DefaultInstall.NTamd64.Services]",
            "[Install.NTamd64.Services]",
            1,
        ),
        Rule::NoInstallSection,
        1423,
        "[Version]",
    ));

    // missing-section
    v.push(case(
        "CopyFiles to a missing section",
        good_with("CopyFiles = T.Files", "CopyFiles = T.Files, T.Nope"),
        Rule::MissingSection,
        1203,
        "CopyFiles",
    ));
    v.push(case(
        "AddReg to a missing section",
        good_with("AddReg = T.Reg", "AddReg = T.Nope"),
        Rule::MissingSection,
        1203,
        "AddReg",
    ));
    v.push(case(
        "AddService to a missing section",
        good_with(
            "AddService = %Svc%,,T.Service",
            "AddService = %Svc%,,T.Nope",
        ),
        Rule::MissingSection,
        1203,
        "AddService",
    ));
    v.push(case(
        "DestinationDirs for a missing section",
        good_with("DefaultDestDir = 13", "DefaultDestDir = 13\nT.Nope = 13"),
        Rule::MissingSection,
        1203,
        "T.Nope",
    ));
    v.push(case(
        "Manufacturer models section missing",
        good_with(
            "[DefaultInstall.NTamd64]",
            "[Manufacturer]\n%Prov% = Models,NTamd64\n\n[DefaultInstall.NTamd64]",
        ),
        Rule::MissingSection,
        1203,
        "%Prov% = Models",
    ));

    // missing-string
    v.push(case(
        "undefined %token%",
        good_with(
            "ServiceType = 1",
            "DisplayName = %NoSuchString%\nServiceType = 1",
        ),
        Rule::MissingString,
        1235,
        "DisplayName",
    ));
    v.push(case(
        "undefined %token% inside quotes",
        good_with("1 = %Disk%,,,\"\"", "1 = \"%Disk% %Other%\",,,\"\""),
        Rule::MissingString,
        1235,
        "%Other%",
    ));

    // copyfiles-source
    v.push(case(
        "copied file not in SourceDisksFiles",
        good_with("[T.Files]\nt.sys", "[T.Files]\nt.sys\nother.sys"),
        Rule::CopyFilesSource,
        1230,
        "other.sys",
    ));
    v.push(case(
        "renamed copy whose source is unknown",
        good_with("[T.Files]\nt.sys", "[T.Files]\nt.sys,t2.sys"),
        Rule::CopyFilesSource,
        1230,
        "t.sys,t2.sys",
    ));

    // source-disk
    v.push(case(
        "file on an undefined disk",
        good_with("t.sys = 1,,", "t.sys = 2,,"),
        Rule::SourceDisk,
        1273,
        "t.sys = 2",
    ));

    // destination-dirid
    v.push(case(
        "DefaultDestDir not 13",
        good_with("DefaultDestDir = 13", "DefaultDestDir = 12"),
        Rule::DestinationDirid,
        1322,
        "DefaultDestDir",
    ));
    v.push(case(
        "no destination for a file list",
        good_with("DefaultDestDir = 13", "; none"),
        Rule::DestinationDirid,
        1275,
        "CopyFiles",
    ));

    // addreg-root
    v.push(case(
        "AddReg under HKLM",
        good_with(
            "HKR,Parameters,Level,0x00010001,1",
            "HKR,Parameters,Level,0x00010001,1\nHKLM,System\\CurrentControlSet\\Services\\t,Start,0x00010001,3",
        ),
        Rule::AddRegRoot, 1304,
        "HKLM",
    ));

    // service-install
    v.push(case(
        "ServiceBinary outside the driver store",
        good_with("ServiceBinary = %13%\\t.sys", "ServiceBinary = %12%\\t.sys"),
        Rule::ServiceInstall,
        1258,
        "ServiceBinary",
    ));
    v.push(case(
        "StartType missing",
        good_with("StartType = 3\n", ""),
        Rule::ServiceInstall,
        1013,
        "[T.Service]",
    ));
    v.push(case(
        "ErrorControl not a number",
        good_with("ErrorControl = 1", "ErrorControl = normal"),
        Rule::ServiceInstall,
        1014,
        "ErrorControl",
    ));
    v.push(case(
        "AddService without install section",
        good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,0x2"),
        Rule::ServiceInstall,
        1005,
        "AddService",
    ));

    // banned-section
    for (section, marker, code) in [
        (
            "[ClassInstall32]\nAddReg = T.Reg\n",
            "[ClassInstall32]",
            1285,
        ),
        (
            "[DefaultInstall.NTamd64.CoInstallers]\nAddReg = T.Reg\n",
            "CoInstallers",
            1300,
        ),
        ("[T.LogConfigOverride]\n", "LogConfigOverride", 1300),
        ("[DefaultUninstall.NTamd64]\n", "DefaultUninstall", 1422),
    ] {
        v.push(case(
            "banned section",
            good_with("[Strings]", &format!("{section}\n[Strings]")),
            Rule::BannedSection,
            code,
            marker,
        ));
    }

    // banned-directive
    for (directive, code) in [
        ("DelFiles = T.Files", 1302),
        ("DelReg = T.Reg", 1302),
        ("DelService = t", 1302),
        ("RenFiles = T.Files", 1302),
        ("RegisterDlls = T.Files", 1301),
        ("UnregisterDlls = T.Files", 1302),
        ("UpdateInis = T.Files", 1301),
        ("UpdateIniFields = T.Files", 1301),
        ("Ini2Reg = T.Files", 1301),
        ("ProfileItems = T.Files", 1301),
        ("LogConfig = T.Files", 1300),
    ] {
        v.push(case(
            "banned directive",
            good_with(
                "CopyFiles = T.Files",
                &format!("CopyFiles = T.Files\n{directive}"),
            ),
            Rule::BannedDirective,
            code,
            directive,
        ));
    }

    // stamp-variable: the unstamped template
    v.push(case(
        "unstamped $ARCH$",
        DRIVER_INX.to_owned(),
        Rule::StampVariable,
        1274,
        "[DefaultInstall.NT$ARCH$]",
    ));

    // More InfVerif codes, one bad INF each (the code is the InfVerif number
    // from Microsoft's "INF Validation Errors and Warnings" page).
    let svc2 = "[T.Service2]\nServiceType = 1\nStartType = 2\nErrorControl = 1\nServiceBinary = %13%\\t.sys\n\n[Strings]";
    let more: Vec<(&'static str, String, Rule, u16, &str)> = vec![
        // 1003: encoding (lint_bytes)
        ("UTF-8 byte-order mark", format!("\u{feff}{GOOD}"), Rule::Encoding, 1003, "; test INF"),
        ("non-ASCII in an 8-bit INF", good_with("Disk = \"Test Disk\"", "Disk = \"Test D\u{ef}sk\""), Rule::Encoding, 1003, "Disk ="),
        // version-value 1234 / 1280
        ("empty Provider", good_with("Prov = \"Test Provider\"", "Prov = \"\""), Rule::VersionValue, 1234, "Provider"),
        ("empty Class", good_with("Class = WFPCALLOUTS", "Class = \"\""), Rule::VersionValue, 1234, "Class ="),
        ("WFPCALLOUTS GUID with another class", good_with("Class = WFPCALLOUTS", "Class = Net"), Rule::VersionValue, 1280, "Class ="),
        // missing-section 1005 / 1011 / 1271
        ("CopyFiles with no section", good_with("CopyFiles = T.Files", "CopyFiles ="), Rule::MissingSection, 1005, "CopyFiles ="),
        ("AddReg with no section", good_with("AddReg = T.Reg", "AddReg = ,"), Rule::MissingSection, 1005, "AddReg = ,"),
        (
            "Manufacturer entry without models section",
            good_with("[Strings]", "[Manufacturer]\n%Prov% =\n\n[Strings]").replacen("[DefaultInstall.NTamd64]", "[X.NTamd64]", 1),
            Rule::MissingSection, 1011, "%Prov% =",
        ),
        (
            "model without install section",
            good_with("[Strings]", "[Manufacturer]\n%Prov% = Models\n\n[Models]\n%Svc% = , Root\\T\n\n[Strings]").replacen("[DefaultInstall.NTamd64]", "[X.NTamd64]", 1),
            Rule::MissingSection, 1271, "%Svc% = ,",
        ),
        // copyfiles-source 1229
        ("file-list entry without a name", good_with("[T.Files]\nt.sys", "[T.Files]\nt.sys\n,"), Rule::CopyFilesSource, 1229, "\n,\n"),
        // source-disk 1008 / 1213 / 1231
        ("SourceDisksFiles entry without disk", good_with("t.sys = 1,,", "t.sys = 1,,\nextra.sys"), Rule::SourceDisk, 1008, "extra.sys"),
        ("catalog in SourceDisksFiles", good_with("t.sys = 1,,", "t.sys = 1,,\nt.cat = 1"), Rule::SourceDisk, 1213, "t.cat = 1"),
        ("compressed source file", good_with("t.sys = 1,,", "t.sys = 1,,\nt.sy_ = 1"), Rule::SourceDisk, 1231, "t.sy_"),
        // destination-dirid 1006 / 1243
        ("DestinationDirs entry without a key", good_with("DefaultDestDir = 13", "DefaultDestDir = 13\n13"), Rule::DestinationDirid, 1006, "\n13\n"),
        ("DestinationDirs DIRID not a number", good_with("DefaultDestDir = 13", "DefaultDestDir = thirteen"), Rule::DestinationDirid, 1243, "DefaultDestDir"),
        // addreg-root 1224
        ("unknown registry root", good_with("HKR,Parameters,Level", "HKXX,Parameters,Level"), Rule::AddRegRoot, 1224, "HKXX"),
        // service-install
        ("StartType out of range", good_with("StartType = 3", "StartType = 7"), Rule::ServiceInstall, 1014, "StartType"),
        ("AddService flags not a number", good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,zz,T.Service"), Rule::ServiceInstall, 1081, "AddService"),
        (
            "two associated services",
            good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,0x2,T.Service\nAddService = other,0x2,T.Service"),
            Rule::ServiceInstall, 1211, "AddService = other",
        ),
        (
            "EventLogType not a log",
            good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,,T.Service,T.Service,Bogus"),
            Rule::ServiceInstall, 1250, "AddService",
        ),
        (
            "disabled associated service",
            good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,0x2,T.Service").replacen("StartType = 3", "StartType = 4", 1),
            Rule::ServiceInstall, 1251, "AddService",
        ),
        (
            "Win32 service started at boot",
            good_with("ServiceType = 1", "ServiceType = 0x10").replacen("StartType = 3", "StartType = 0", 1),
            Rule::ServiceInstall, 1252, "StartType",
        ),
        ("AddService without a name", good_with("AddService = %Svc%,,T.Service", "AddService = ,,T.Service"), Rule::ServiceInstall, 1253, "AddService"),
        ("ServiceBinary with no file name", good_with("ServiceBinary = %13%\\t.sys", "ServiceBinary = %13%\\t?.sys"), Rule::ServiceInstall, 1254, "ServiceBinary"),
        ("service value outside Parameters", good_with("HKR,Parameters,Level", "HKR,,Level"), Rule::ServiceInstall, 1323, "HKR,,Level"),
        (
            "one service, two install sections",
            good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,,T.Service\nAddService = %Svc%,,T.Service2").replacen("\n[Strings]", &format!("\n{svc2}"), 1),
            Rule::ServiceInstall, 1333, "T.Service2\n",
        ),
        ("ServiceBinary not a copied file", good_with("ServiceBinary = %13%\\t.sys", "ServiceBinary = %13%\\other.sys"), Rule::ServiceInstall, 2084, "ServiceBinary"),
        ("ServiceBinary not under a DIRID", good_with("ServiceBinary = %13%\\t.sys", "ServiceBinary = t.sys"), Rule::ServiceInstall, 2085, "ServiceBinary"),
        // duplicates
        ("section defined twice", good_with("[T.Reg]\n", "[T.Files]\nt.sys\n\n[T.Reg]\n"), Rule::DuplicateSection, 1209, "[T.Files]\nt.sys\n\n[T.Reg]"),
        ("Version key twice", good_with("PnpLockdown = 1", "PnpLockdown = 1\nPnpLockdown = 1"), Rule::DuplicateDirective, 1088, "PnpLockdown = 1\n\n"),
        ("service key twice", good_with("StartType = 3", "StartType = 3\nStartType = 3"), Rule::DuplicateDirective, 1088, "StartType = 3\nErrorControl"),
        ("string defined twice", good_with("Disk = \"Test Disk\"", "Disk = \"Test Disk\"\nDISK = \"Other\""), Rule::DuplicateEntry, 1294, "DISK ="),
        ("source file listed twice", good_with("t.sys = 1,,", "t.sys = 1,,\nT.SYS = 1,,"), Rule::DuplicateEntry, 1294, "T.SYS"),
        ("file listed twice in a file list", good_with("[T.Files]\nt.sys", "[T.Files]\nt.sys\nt.sys"), Rule::DuplicateEntry, 1294, "t.sys\n\n[T.Service]"),
        // extra-value
        ("PnpLockdown with an extra field", good_with("PnpLockdown = 1", "PnpLockdown = 1,2"), Rule::ExtraValue, 1201, "PnpLockdown"),
        ("StartType with an extra field", good_with("StartType = 3", "StartType = 3,4"), Rule::ExtraValue, 1201, "StartType"),
        ("DestinationDirs with an extra field", good_with("DefaultDestDir = 13", "DefaultDestDir = 13,,x"), Rule::ExtraValue, 1201, "DefaultDestDir"),
        // driver-store-copy
        ("renamed in the driver store", good_with("[T.Files]\nt.sys", "[T.Files]\nt2.sys,t.sys"), Rule::DriverStoreCopy, 1100, "t2.sys,t.sys"),
        ("moved to a subdirectory of the driver store", good_with("DefaultDestDir = 13", "DefaultDestDir = 13,sub"), Rule::DriverStoreCopy, 1100, "\nt.sys\n"),
        ("security descriptor on a driver-store copy", good_with("[T.Reg]\n", "[T.Files.Security]\n\"D:P(A;;GA;;;SY)\"\n\n[T.Reg]\n"), Rule::DriverStoreCopy, 1101, "CopyFiles"),
        (
            "two sources for one destination",
            good_with("CopyFiles = T.Files", "CopyFiles = T.Files, T.Files2")
                .replacen("t.sys = 1,,", "t.sys = 1,,\nu.sys = 1,,", 1)
                .replacen("[T.Reg]\n", "[T.Files2]\nt.sys,u.sys\n\n[T.Reg]\n", 1),
            Rule::DriverStoreCopy, 1330, "t.sys,u.sys",
        ),
        // section-reuse / section-kind / section-directive
        ("file list also used as AddReg", good_with("CopyFiles = T.Files", "CopyFiles = T.Files\nAddReg = T.Files"), Rule::SectionReuse, 1205, "AddReg = T.Files"),
        ("CopyFiles names [Strings]", good_with("CopyFiles = T.Files", "CopyFiles = T.Files, Strings"), Rule::SectionKind, 1206, "CopyFiles"),
        ("AddService in an install section", good_with("CopyFiles = T.Files", "CopyFiles = T.Files\nAddService = %Svc%,,T.Service"), Rule::SectionDirective, 1290, "AddService = %Svc%,,T.Service\n\n[DefaultInstall.NTamd64.Services]"),
        ("directive name with a backslash", good_with("CopyFiles = T.Files", "CopyFiles = T.Files\nCopy\\Files = T.Files"), Rule::SectionDirective, 1150, "Copy\\Files"),
        ("directive name with a comma", good_with("CopyFiles = T.Files", "CopyFiles = T.Files\nCopy,Files = T.Files"), Rule::SectionDirective, 1150, "Copy,Files"),
        ("CopyFiles in a .Services section", good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,,T.Service\nCopyFiles = T.Files"), Rule::SectionDirective, 1290, "CopyFiles = T.Files\n\n[T.Files]"),
        ("CopyFiles in a service-install section", good_with("AddReg = T.Reg", "AddReg = T.Reg\nCopyFiles = T.Files"), Rule::SectionDirective, 1290, "CopyFiles = T.Files\n\n[T.Reg]"),
        // addreg-entry
        ("registry data in the Windows directory", good_with("HKR,Parameters,Level,0x00010001,1", "HKR,Parameters,Level,0x00010001,1\nHKR,Parameters,Path,,%11%\\t.dll"), Rule::AddRegEntry, 1257, "Path"),
        ("append flag on REG_SZ", good_with("HKR,Parameters,Level,0x00010001,1", "HKR,Parameters,Level,0x00010001,1\nHKR,Parameters,Name,0x00000008,x"), Rule::AddRegEntry, 1265, ",Name,"),
        ("bad REG_BINARY byte", good_with("HKR,Parameters,Level,0x00010001,1", "HKR,Parameters,Level,0x00010001,1\nHKR,Parameters,Blob,0x00000001,01,zz"), Rule::AddRegEntry, 1267, "Blob"),
        ("REG_DWORD data not a number", good_with("HKR,Parameters,Level,0x00010001,1", "HKR,Parameters,Level,0x00010001,one"), Rule::AddRegEntry, 1268, "Level"),
        ("AddReg flags not a number", good_with("HKR,Parameters,Level,0x00010001,1", "HKR,Parameters,Level,dword,1"), Rule::AddRegEntry, 1268, "Level"),
        (
            "BitReg mask wider than a byte",
            good_with("AddReg = T.Reg", "AddReg = T.Reg\nBitReg = T.Bits").replacen("[Strings]", "[T.Bits]\nHKR,Parameters,Flags,0,0x1FF,0\n\n[Strings]", 1),
            Rule::AddRegEntry, 1262, "0x1FF",
        ),
        ("co-installer registration", good_with("HKR,Parameters,Level,0x00010001,1", "HKR,Parameters,Level,0x00010001,1\nHKR,Parameters,CoInstallers32,0x00010000,\"c.dll\""), Rule::AddRegEntry, 1303, "CoInstallers32"),
        ("append to REG_MULTI_SZ", good_with("HKR,Parameters,Level,0x00010001,1", "HKR,Parameters,Level,0x00010001,1\nHKR,Parameters,List,0x00010008,x"), Rule::AddRegEntry, 1305, "List"),
        ("filter via registry", good_with("HKR,Parameters,Level,0x00010001,1", "HKR,Parameters,Level,0x00010001,1\nHKR,Parameters,UpperFilters,0x00010000,t"), Rule::AddRegEntry, 1329, "UpperFilters"),
        // registry-conflict
        (
            "one value, two data, two install sections",
            good_with("CopyFiles = T.Files", "CopyFiles = T.Files\nAddReg = I.One, I.Two")
                .replacen("[T.Reg]\n", "[I.One]\nHKR,Parameters,X,0x00010001,1\n\n[I.Two]\nHKR,Parameters,X,0x00010001,2\n\n[T.Reg]\n", 1),
            Rule::RegistryConflict, 1331, "HKR,Parameters,X,0x00010001,2",
        ),
        (
            "one service value, two data",
            good_with("AddReg = T.Reg", "AddReg = T.Reg, T.Reg2")
                .replacen("[Strings]", "[T.Reg2]\nHKR,Parameters,Level,0x00010001,2\n\n[Strings]", 1),
            Rule::RegistryConflict, 1332, "HKR,Parameters,Level,0x00010001,2",
        ),
        // needs-include
        ("Needs without Include", good_with("CopyFiles = T.Files", "CopyFiles = T.Files\nNeeds = Other.Install"), Rule::Needs, 1319, "Needs"),
        (
            ".Services needs a section without the suffix",
            good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,,T.Service\nInclude = netservice.inf\nNeeds = Other.Install"),
            Rule::Needs, 1313, "Needs",
        ),
        (
            "install section needs a .Services section",
            good_with("CopyFiles = T.Files", "CopyFiles = T.Files\nInclude = netservice.inf\nNeeds = Other.Install.Services"),
            Rule::Needs, 1312, "Needs",
        ),
        // localized-strings / unused-section
        ("localized strings short of one", format!("{GOOD}\n[Strings.0407]\nProv = \"Anbieter\"\n"), Rule::LocalizedStrings, 1295, "[Strings.0407]"),
        ("unreferenced section", good_with("[T.Reg]\n", "[T.Unused]\nHKR,Parameters,X,0x00010001,1\n\n[T.Reg]\n"), Rule::UnusedSection, 2083, "[T.Unused]"),
    ];
    for (name, text, rule, code, marker) in more {
        v.push(case(name, text, rule, code, marker));
    }

    v
}

fn check_rule(rule: Rule) {
    let mut n = 0;
    for c in cases().iter().filter(|c| c.rule == rule) {
        n += 1;
        let diags = lint_bytes(c.text.as_bytes(), "t.inf");
        let hit = diags
            .iter()
            .find(|d| d.rule == rule && d.line == c.line && d.infverif == c.code);
        let Some(d) = hit else {
            panic!(
                "case {:?}: expected {} (InfVerif {:?}) at line {}, got:\n{}\n--- text ---\n{}",
                c.name,
                rule.id(),
                c.code,
                c.line,
                diags
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                c.text
            );
        };
        let prefix = format!("t.inf:{}: ", c.line);
        assert!(d.message.starts_with(&prefix), "{}", d.message);
        let tag = match c.code {
            Some(code) => format!("[{}, InfVerif {code}]", rule.id()),
            None => format!("[{}]", rule.id()),
        };
        assert!(d.to_string().ends_with(&tag), "{d}");
        if let Some(code) = c.code {
            assert!(
                rule.infverif_codes().contains(&code),
                "case {:?}: {} does not list InfVerif {code}",
                c.name,
                rule.id()
            );
        }
    }
    assert!(n > 0, "no case for {}", rule.id());
}

#[test]
fn good_inf_is_clean() {
    let diags = lint(GOOD, "t.inf");
    assert!(diags.is_empty(), "{diags:#?}");
    let crlf = GOOD.replace('\n', "\r\n");
    assert!(lint(&crlf, "t.inf").is_empty());
}

#[test]
fn stamped_driver_inx_is_clean() {
    let inf = stamped_driver_inf();
    let diags = lint(&inf, "weir.inf");
    assert!(diags.is_empty(), "{diags:#?}");
}

#[test]
fn driver_inx_has_the_documented_shape() {
    assert!(
        DRIVER_INX
            .split_inclusive('\n')
            .all(|l| l.ends_with("\r\n")),
        "driver.inx must use CRLF line ends"
    );
    let inf = parse(&stamped_driver_inf()).unwrap();
    let v = inf.section("Version").unwrap();
    let val = |k: &str| v.get(k).unwrap().value(0).unwrap().to_owned();
    assert_eq!(val("Signature"), "$WINDOWS NT$");
    assert_eq!(val("Class"), "WFPCALLOUTS");
    assert_eq!(val("ClassGuid"), "{57465043-616C-6C6F-7574-5F636C617373}");
    assert_eq!(val("CatalogFile"), "weir.cat");
    assert_eq!(val("PnpLockdown"), "1");
    assert!(inf.has_section("DefaultInstall.NTamd64"));
    assert!(inf.has_section("DefaultInstall.NTamd64.Services"));
    for absent in ["DefaultInstall", "Manufacturer", "DefaultUninstall"] {
        assert!(!inf.has_section(absent), "{absent}");
    }
    let add = inf
        .entries("DefaultInstall.NTamd64.Services", "AddService")
        .next()
        .unwrap();
    let svc = inf.section(add.value(2).unwrap()).unwrap();
    let sval = |k: &str| svc.get(k).unwrap().value(0).unwrap().to_owned();
    assert_eq!(sval("ServiceBinary"), "%13%\\weir.sys");
    assert_eq!(sval("ServiceType"), "1");
    assert_eq!(sval("StartType"), "3");
    assert_eq!(sval("ErrorControl"), "1");
    let reg = inf.section(&sval("AddReg")).unwrap();
    let e = &reg.entries[0];
    assert_eq!(
        e.values.iter().map(|v| v.text.as_str()).collect::<Vec<_>>(),
        ["HKR", "Parameters", "TraceLevel", "0x00010001", "2"]
    );
    let files: Vec<String> = copied_files(&inf).into_iter().map(|f| f.name).collect();
    assert_eq!(files, ["weir.sys"]);
    let dest = inf
        .entries("DestinationDirs", "DefaultDestDir")
        .next()
        .unwrap();
    assert_eq!(dest.value(0), Some("13"));
}

#[test]
fn every_rule_has_a_case() {
    for rule in Rule::ALL {
        let covered = rule == Rule::CatalogCoverage || cases().iter().any(|c| c.rule == rule);
        assert!(covered, "rule {} has no test case", rule.id());
    }
}

#[test]
fn rule_ids_are_unique_kebab_case() {
    let mut ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
    assert!(ids
        .iter()
        .all(|i| i.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')));
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), Rule::ALL.len());
}

#[test]
fn rule_parse_error() {
    check_rule(Rule::ParseError);
}
#[test]
fn rule_version_missing() {
    check_rule(Rule::VersionMissing);
}
#[test]
fn rule_version_key() {
    check_rule(Rule::VersionKey);
}
#[test]
fn rule_version_value() {
    check_rule(Rule::VersionValue);
}
#[test]
fn rule_driverver_format() {
    check_rule(Rule::DriverVerFormat);
}
#[test]
fn rule_manufacturer_and_defaultinstall() {
    check_rule(Rule::ManufacturerAndDefaultInstall);
}
#[test]
fn rule_undecorated_defaultinstall() {
    check_rule(Rule::UndecoratedDefaultInstall);
}
#[test]
fn rule_no_install_section() {
    check_rule(Rule::NoInstallSection);
}
#[test]
fn rule_missing_section() {
    check_rule(Rule::MissingSection);
}
#[test]
fn rule_missing_string() {
    check_rule(Rule::MissingString);
}
#[test]
fn rule_copyfiles_source() {
    check_rule(Rule::CopyFilesSource);
}
#[test]
fn rule_source_disk() {
    check_rule(Rule::SourceDisk);
}
#[test]
fn rule_destination_dirid() {
    check_rule(Rule::DestinationDirid);
}
#[test]
fn rule_addreg_root() {
    check_rule(Rule::AddRegRoot);
    let text = good_with("HKR,Parameters", "HKLM,Parameters");
    let d = lint(&text, "weir.inf");
    let line = line_of(&text, "HKLM");
    assert!(
        d.iter()
            .any(|d| d.message
                == format!("weir.inf:{line}: AddReg root HKLM not allowed (only HKR)")),
        "{d:#?}"
    );
}
#[test]
fn rule_service_install() {
    check_rule(Rule::ServiceInstall);
}
#[test]
fn rule_banned_section() {
    check_rule(Rule::BannedSection);
}
#[test]
fn rule_banned_directive() {
    check_rule(Rule::BannedDirective);
}
#[test]
fn rule_stamp_variable() {
    check_rule(Rule::StampVariable);
}

#[test]
fn rule_catalog_coverage() {
    let inf = stamped_driver_inf();
    assert!(check_catalog_coverage(&inf, "weir.inf", &["weir.inf", "weir.sys"]).is_empty());
    assert!(check_catalog_coverage(&inf, "weir.inf", &["WEIR.INF", "Weir.Sys"]).is_empty());

    let d = check_catalog_coverage(&inf, "weir.inf", &["weir.sys"]);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].rule, Rule::CatalogCoverage);
    assert_eq!(d[0].line, line_of(&inf, "CatalogFile"));
    assert!(d[0]
        .message
        .starts_with(&format!("weir.inf:{}: ", d[0].line)));

    let d = check_catalog_coverage(&inf, "weir.inf", &["weir.inf".to_owned()]);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].rule, Rule::CatalogCoverage);
    // the file-list line that copies weir.sys (not the SourceDisksFiles one)
    let list_line = inf.lines().position(|l| l.trim() == "weir.sys").unwrap() + 1;
    assert_eq!(d[0].line, list_line);
    assert!(d[0].message.contains("weir.sys"));

    let d = check_catalog_coverage("[A\n", "weir.inf", &["weir.inf"]);
    assert_eq!(d[0].rule, Rule::ParseError);
}

#[test]
fn diagnostics_are_sorted_and_independent_rules_all_fire() {
    let text = good_with("DefaultDestDir = 13", "DefaultDestDir = 11")
        .replacen("HKR,Parameters", "HKCU,Parameters", 1)
        .replacen("PnpLockdown = 1", "PnpLockdown = 2", 1);
    let d = lint(&text, "t.inf");
    let rules: Vec<Rule> = d.iter().map(|d| d.rule).collect();
    assert_eq!(
        rules,
        [Rule::VersionValue, Rule::DestinationDirid, Rule::AddRegRoot]
    );
    assert!(d.windows(2).all(|w| w[0].line <= w[1].line));
}

#[test]
fn rule_encoding() {
    check_rule(Rule::Encoding);
}
#[test]
fn rule_duplicate_section() {
    check_rule(Rule::DuplicateSection);
}
#[test]
fn rule_duplicate_directive() {
    check_rule(Rule::DuplicateDirective);
}
#[test]
fn rule_duplicate_entry() {
    check_rule(Rule::DuplicateEntry);
}
#[test]
fn rule_extra_value() {
    check_rule(Rule::ExtraValue);
}
#[test]
fn rule_driver_store_copy() {
    check_rule(Rule::DriverStoreCopy);
}
#[test]
fn rule_section_reuse() {
    check_rule(Rule::SectionReuse);
}
#[test]
fn rule_section_kind() {
    check_rule(Rule::SectionKind);
}
#[test]
fn rule_section_directive() {
    check_rule(Rule::SectionDirective);
}
#[test]
fn rule_addreg_entry() {
    check_rule(Rule::AddRegEntry);
}
#[test]
fn rule_registry_conflict() {
    check_rule(Rule::RegistryConflict);
}
#[test]
fn rule_localized_strings() {
    check_rule(Rule::LocalizedStrings);
}
#[test]
fn rule_needs() {
    check_rule(Rule::Needs);
}
#[test]
fn rule_unused_section() {
    check_rule(Rule::UnusedSection);
}

#[test]
fn every_infverif_code_a_rule_reports_has_a_bad_inf() {
    let tested: std::collections::HashSet<u16> = cases().iter().filter_map(|c| c.code).collect();
    for rule in Rule::ALL {
        for code in rule.infverif_codes() {
            assert!(
                tested.contains(code),
                "{} reports InfVerif {code}, but no bad INF here produces it",
                rule.id()
            );
        }
    }
}

#[test]
fn lint_bytes_matches_lint_and_accepts_utf16le() {
    assert!(lint_bytes(GOOD.as_bytes(), "t.inf").is_empty());
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(GOOD.encode_utf16().flat_map(u16::to_le_bytes));
    assert!(lint_bytes(&utf16, "t.inf").is_empty());
    let mut be = vec![0xFE, 0xFF];
    be.extend(GOOD.encode_utf16().flat_map(u16::to_be_bytes));
    let d = lint_bytes(&be, "t.inf");
    assert!(
        d.iter()
            .any(|d| d.rule == Rule::Encoding && d.infverif == Some(1003)),
        "{d:?}"
    );
    let broken = good_with("PnpLockdown = 1", "PnpLockdown = 2");
    assert_eq!(
        lint_bytes(broken.as_bytes(), "t.inf"),
        lint(&broken, "t.inf")
    );
}

/// docs/inf-lint.md's table: one row per code on Microsoft's page,
/// `| code | status | rule ids or reason | meaning |`.
fn doc_rows() -> Vec<(u16, String, String)> {
    const DOC: &str = include_str!("../../../docs/inf-lint.md");
    DOC.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l
                .trim()
                .strip_prefix('|')?
                .split('|')
                .map(str::trim)
                .collect();
            let code = cells.first()?.parse::<u16>().ok()?;
            Some((code, cells.get(1)?.to_string(), cells.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn docs_table_lists_every_code_once_and_matches_the_rules() {
    let rows = doc_rows();
    // Microsoft's page lists 202 codes (WDK 10.0.26200); a table that lost
    // rows would hide codes we do not cover.
    assert!(
        rows.len() >= 200,
        "docs/inf-lint.md has {} codes",
        rows.len()
    );
    let mut codes: Vec<u16> = rows.iter().map(|r| r.0).collect();
    assert!(
        codes.windows(2).all(|w| w[0] < w[1]),
        "codes must be sorted and unique"
    );
    codes.dedup();
    for (code, status, detail) in &rows {
        assert!(
            ["covered", "subsumed", "not covered", "n/a"].contains(&status.as_str()),
            "{code}: status {status:?}"
        );
        let claimed: Vec<Rule> = Rule::ALL
            .into_iter()
            .filter(|r| detail.split(['`', ',', ' ']).any(|w| w == r.id()))
            .collect();
        let reporting: Vec<Rule> = Rule::ALL
            .into_iter()
            .filter(|r| r.infverif_codes().contains(code))
            .collect();
        if status == "covered" {
            assert!(
                !reporting.is_empty(),
                "{code} is marked covered but no rule reports it"
            );
            assert_eq!(
                claimed, reporting,
                "{code}: the doc names other rules than the code"
            );
        } else {
            assert!(
                reporting.is_empty(),
                "{code} is reported by {reporting:?} but marked {status}"
            );
            assert!(detail.len() > 10, "{code}: say why it is {status}");
            if status == "subsumed" {
                assert!(
                    !claimed.is_empty(),
                    "{code}: name the rule that subsumes it"
                );
            }
        }
    }
    for rule in Rule::ALL {
        for code in rule.infverif_codes() {
            assert!(
                codes.contains(code),
                "{} reports {code}, missing from docs/inf-lint.md",
                rule.id()
            );
        }
    }
}

/// Valid INF variants seen in Microsoft's driver samples that an earlier
/// version of these rules flagged: each must not produce the given finding.
#[test]
fn valid_variants_are_not_flagged() {
    let variants: Vec<(&str, String, Rule, Option<u16>)> = vec![
        (
            "numbers given as %strings%",
            good_with("StartType = 3", "StartType = %DEMAND%")
                .replacen("AddService = %Svc%,,T.Service", "AddService = %Svc%,%FLAGS%,T.Service", 1)
                .replacen("HKR,Parameters,Level,0x00010001,1", "HKR,Parameters,Level,%DWORD%,1", 1)
                .replacen("Svc = \"t\"", "Svc = \"t\"\nDEMAND = 3\nFLAGS = 0x0\nDWORD = 0x00010001", 1),
            Rule::ServiceInstall,
            Some(1014),
        ),
        (
            "copied file named by a %string%",
            good_with("[T.Files]\nt.sys", "[T.Files]\n%File%").replacen(
                "t.sys = 1,,",
                "%File% = 1,,",
                1,
            ).replacen("Svc = \"t\"", "Svc = \"t\"\nFile = \"t.sys\"", 1),
            Rule::CopyFilesSource,
            Some(1230),
        ),
        (
            "the documented null driver",
            good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,,T.Service\nAddService = ,0x2"),
            Rule::ServiceInstall,
            Some(1253),
        ),
        (
            "the null driver has no install section",
            good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,,T.Service\nAddService = ,0x2"),
            Rule::ServiceInstall,
            Some(1005),
        ),
        (
            "same service, same configuration, two sections",
            good_with("AddService = %Svc%,,T.Service", "AddService = %Svc%,,T.Service\nAddService = %Svc%,,T.Service2")
                .replacen("[Strings]", "[T.Service2]\nServiceType = 1\nStartType = 3\nErrorControl = 1\nServiceBinary = %13%\\t.sys\n\n[Strings]", 1),
            Rule::ServiceInstall,
            Some(1333),
        ),
        (
            "section referenced by a directive the lint does not model",
            good_with("CopyFiles = T.Files", "CopyFiles = T.Files\nKmdfService = t, T.Wdf")
                .replacen("[T.Reg]\n", "[T.Wdf]\nKmdfLibraryVersion = 1.15\n\n[T.Reg]\n", 1),
            Rule::UnusedSection,
            Some(2083),
        ),
        (
            "inbox service binary",
            good_with("ServiceBinary = %13%\\t.sys", "ServiceBinary = %12%\\WUDFRd.sys"),
            Rule::ServiceInstall,
            Some(2084),
        ),
        (
            "0x-prefixed binary bytes",
            good_with("HKR,Parameters,Level,0x00010001,1", "HKR,Parameters,Level,0x00010001,1\nHKR,Parameters,Blob,0x00000001,0x01,0a"),
            Rule::AddRegEntry,
            Some(1267),
        ),
    ];
    for (name, text, rule, code) in variants {
        let d = lint(&text, "t.inf");
        assert!(
            !d.iter().any(|d| d.rule == rule && d.infverif == code),
            "{name}: {d:#?}"
        );
    }
    // ClassInstall32 stays banned (Weir's rule), but InfVerif 1285 is only
    // for Microsoft-defined classes.
    let custom = good_with("Class = WFPCALLOUTS", "Class = WeirClass")
        .replacen(
            "{57465043-616C-6C6F-7574-5F636C617373}",
            "{12345678-1234-1234-1234-123456789ABC}",
            1,
        )
        .replacen(
            "[Strings]",
            "[ClassInstall32]\nAddReg = T.Reg\n\n[Strings]",
            1,
        );
    let d = lint(&custom, "t.inf");
    assert!(
        d.iter()
            .any(|d| d.rule == Rule::BannedSection && d.infverif.is_none()),
        "{d:#?}"
    );
}

#[test]
fn readme_counts_and_uncovered_list_match_the_docs_table() {
    const README: &str = include_str!("../../../README.md");
    let rows = doc_rows();
    let count = |s: &str| rows.iter().filter(|r| r.1 == s).count();
    let prose = README.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        format!("Of the {} codes", rows.len()),
        format!("it reports {},", count("covered")),
        format!("{} more are rejected", count("subsumed")),
        format!("{} are for other INF kinds", count("n/a")),
        format!("It does not cover these {},", count("not covered")),
    ] {
        assert!(prose.contains(&needle), "README lacks {needle:?}");
    }
    let uncovered: Vec<String> = rows
        .iter()
        .filter(|r| r.1 == "not covered")
        .map(|r| r.0.to_string())
        .collect();
    assert!(
        prose.contains(&format!("{}.", uncovered.join(", "))),
        "README's list of uncovered codes differs from docs/inf-lint.md: {}",
        uncovered.join(", ")
    );
}
