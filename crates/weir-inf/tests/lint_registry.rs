//! Lint rules for one INF part — Add-registry entries and registry values set twice.
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
        // addreg-root 1224
        ("unknown registry root", good_with("HKR,Parameters,Level", "HKXX,Parameters,Level"), Rule::AddRegRoot, 1224, "HKXX"),
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
    ];
    let mut v: Vec<Case> = more.into_iter().map(more_case).collect();

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

    v
}

#[test]
fn every_rule_and_code_of_this_part_has_a_bad_inf() {
    check_part("registry", &cases());
}

#[test]
fn rule_add_reg_root() {
    check_rule(&cases(), Rule::AddRegRoot);
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
fn rule_add_reg_entry() {
    check_rule(&cases(), Rule::AddRegEntry);
}

#[test]
fn rule_registry_conflict() {
    check_rule(&cases(), Rule::RegistryConflict);
}

/// Valid variants an earlier version of these rules flagged.
#[test]
fn valid_variants_are_not_flagged() {
    let variants: Vec<(&str, String, Rule, Option<u16>)> = vec![(
        "0x-prefixed binary bytes",
        good_with(
            "HKR,Parameters,Level,0x00010001,1",
            "HKR,Parameters,Level,0x00010001,1\nHKR,Parameters,Blob,0x00000001,0x01,0a",
        ),
        Rule::AddRegEntry,
        Some(1267),
    )];
    assert_not_flagged(variants);
}
