//! Lint rules for one INF part — Copied files, source disks, destinations and driver-store copies.
//! Each rule has bad INFs rejected with its id and InfVerif code at the
//! expected line.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use weir_inf::*;

fn cases() -> Vec<Case> {
    let more: Vec<More> = vec![
        // copyfiles-source 1229
        (
            "file-list entry without a name",
            good_with("[T.Files]\nt.sys", "[T.Files]\nt.sys\n,"),
            Rule::CopyFilesSource,
            1229,
            "\n,\n",
        ),
        // source-disk 1008 / 1213 / 1231
        (
            "SourceDisksFiles entry without disk",
            good_with("t.sys = 1,,", "t.sys = 1,,\nextra.sys"),
            Rule::SourceDisk,
            1008,
            "extra.sys",
        ),
        (
            "catalog in SourceDisksFiles",
            good_with("t.sys = 1,,", "t.sys = 1,,\nt.cat = 1"),
            Rule::SourceDisk,
            1213,
            "t.cat = 1",
        ),
        (
            "compressed source file",
            good_with("t.sys = 1,,", "t.sys = 1,,\nt.sy_ = 1"),
            Rule::SourceDisk,
            1231,
            "t.sy_",
        ),
        // destination-dirid 1006 / 1243
        (
            "DestinationDirs entry without a key",
            good_with("DefaultDestDir = 13", "DefaultDestDir = 13\n13"),
            Rule::DestinationDirid,
            1006,
            "\n13\n",
        ),
        (
            "DestinationDirs DIRID not a number",
            good_with("DefaultDestDir = 13", "DefaultDestDir = thirteen"),
            Rule::DestinationDirid,
            1243,
            "DefaultDestDir",
        ),
        // driver-store-copy
        (
            "renamed in the driver store",
            good_with("[T.Files]\nt.sys", "[T.Files]\nt2.sys,t.sys"),
            Rule::DriverStoreCopy,
            1100,
            "t2.sys,t.sys",
        ),
        (
            "moved to a subdirectory of the driver store",
            good_with("DefaultDestDir = 13", "DefaultDestDir = 13,sub"),
            Rule::DriverStoreCopy,
            1100,
            "\nt.sys\n",
        ),
        (
            "security descriptor on a driver-store copy",
            good_with(
                "[T.Reg]\n",
                "[T.Files.Security]\n\"D:P(A;;GA;;;SY)\"\n\n[T.Reg]\n",
            ),
            Rule::DriverStoreCopy,
            1101,
            "CopyFiles",
        ),
        (
            "two sources for one destination",
            good_with("CopyFiles = T.Files", "CopyFiles = T.Files, T.Files2")
                .replacen("t.sys = 1,,", "t.sys = 1,,\nu.sys = 1,,", 1)
                .replacen("[T.Reg]\n", "[T.Files2]\nt.sys,u.sys\n\n[T.Reg]\n", 1),
            Rule::DriverStoreCopy,
            1330,
            "t.sys,u.sys",
        ),
    ];
    let mut v: Vec<Case> = more.into_iter().map(more_case).collect();

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

    v
}

#[test]
fn every_rule_and_code_of_this_part_has_a_bad_inf() {
    check_part("files", &cases());
}

#[test]
fn rule_copy_files_source() {
    check_rule(&cases(), Rule::CopyFilesSource);
}

#[test]
fn rule_source_disk() {
    check_rule(&cases(), Rule::SourceDisk);
}

#[test]
fn rule_destination_dirid() {
    check_rule(&cases(), Rule::DestinationDirid);
}

#[test]
fn rule_driver_store_copy() {
    check_rule(&cases(), Rule::DriverStoreCopy);
}

/// Valid variants an earlier version of these rules flagged.
#[test]
fn valid_variants_are_not_flagged() {
    let variants: Vec<(&str, String, Rule, Option<u16>)> = vec![(
        "copied file named by a %string%",
        good_with("[T.Files]\nt.sys", "[T.Files]\n%File%")
            .replacen("t.sys = 1,,", "%File% = 1,,", 1)
            .replacen("Svc = \"t\"", "Svc = \"t\"\nFile = \"t.sys\"", 1),
        Rule::CopyFilesSource,
        Some(1230),
    )];
    assert_not_flagged(variants);
}
