//! Tests of the policy text reader and printer.

use super::*;
use crate::paths::FixedDriveMap;
use weir_policy::{AddrCond, AddrRange, Direction, IpVersion, PortCond};

fn drives() -> FixedDriveMap {
    FixedDriveMap::new([("C:", "\\Device\\HarddiskVolume3")])
}

fn parse_with(text: &str) -> Result<Loaded, Diagnostics> {
    let d = drives();
    parse(
        "p.toml",
        text,
        None,
        &LoadOptions {
            app_paths: AppPaths::Convert(&d),
        },
    )
}

fn one_error(text: &str) -> Diagnostic {
    let e = parse_with(text).unwrap_err();
    let errors: Vec<Diagnostic> = e.list.iter().filter(|d| d.is_error()).cloned().collect();
    assert_eq!(errors.len(), 1, "{e}");
    errors.into_iter().next().unwrap()
}

#[test]
fn full_rule_parses_into_the_model() {
    let text = r#"
[defaults]
outbound = "block"
inbound = "block"
log_all = true

[sets]
lan = ["10.0.0.0/8", "192.168.1.1-192.168.1.9", "fd00::/8", "1.2.3.4"]

[[rule]]
id = 7
action = "permit"
log = true
direction = "outbound"
protocol = "tcp"
remote = "@lan"
remote_port = [80, "8000-8080"]
local_port = 5000
app = 'C:\Program Files\App\app.exe'
loopback = false

[[rule]]
action = "block"
ip_version = "v6"
protocol = 58
local = ["::1", "fe80::/10"]
"#;
    let l = parse_with(text).unwrap();
    let p = &l.policy;
    assert_eq!(
        (p.default_outbound, p.default_inbound, p.log_all),
        (Action::Block, Action::Block, true)
    );
    assert_eq!(p.sets.len(), 1);
    assert_eq!(p.sets[0].name, "lan");
    assert_eq!(
        p.sets[0].entries,
        vec![
            AddrRange::V4 {
                lo: 0x0A00_0000,
                hi: 0x0AFF_FFFF
            },
            AddrRange::V4 {
                lo: 0xC0A8_0101,
                hi: 0xC0A8_0109
            },
            AddrRange::V6 {
                lo: 0xfd << 120,
                hi: (0xfd << 120) | (u128::MAX >> 8)
            },
            AddrRange::V4 {
                lo: 0x0102_0304,
                hi: 0x0102_0304
            },
        ]
    );
    let r = &p.rules[0];
    assert_eq!((r.id, r.action, r.log), (7, Action::Permit, true));
    assert_eq!(r.direction, Some(Direction::Outbound));
    assert_eq!(r.protocol, Some(6));
    assert_eq!(r.remote_addr, Some(AddrCond::Set(0)));
    assert_eq!(
        r.remote_port,
        Some(PortCond {
            ranges: vec![(80, 80), (8000, 8080)]
        })
    );
    assert_eq!(
        r.local_port,
        Some(PortCond {
            ranges: vec![(5000, 5000)]
        })
    );
    let app = String::from_utf16(r.app.as_ref().unwrap().units()).unwrap();
    assert_eq!(
        app,
        "\\Device\\HarddiskVolume3\\Program Files\\App\\app.exe"
    );
    assert_eq!(r.loopback, Some(false));
    let r = &p.rules[1];
    assert_eq!(r.id, 2, "an absent id is the 1-based position");
    assert_eq!((r.ip_version, r.protocol), (Some(IpVersion::V6), Some(58)));
    assert_eq!(
        r.local_addr,
        Some(AddrCond::Ranges(vec![
            AddrRange::V6 { lo: 1, hi: 1 },
            AddrRange::V6 {
                lo: 0xfe80 << 112,
                hi: (0xfe80 << 112) | (u128::MAX >> 10)
            },
        ]))
    );
    assert!(l.kept_paths.is_empty());
}

#[test]
fn icmp_type_and_code_are_the_port_fields_wfp_uses() {
    let l = parse_with("[[rule]]\naction = \"permit\"\nprotocol = \"icmp\"\nicmp_type = [\"echo-request\", 0]\nicmp_code = 0\n[[rule]]\naction = \"block\"\nprotocol = \"icmpv6\"\nicmp_type = \"Echo-Request\"\n").unwrap();
    let r = &l.policy.rules[0];
    assert_eq!(
        r.local_port,
        Some(PortCond {
            ranges: vec![(8, 8), (0, 0)]
        })
    );
    assert_eq!(
        r.remote_port,
        Some(PortCond {
            ranges: vec![(0, 0)]
        })
    );
    assert_eq!(
        l.policy.rules[1].local_port,
        Some(PortCond {
            ranges: vec![(128, 128)]
        })
    );
    let printed = format(&l.policy, None);
    assert!(
        printed.contains("icmp_type = [8, 0]\nicmp_code = 0")
            || printed.contains("icmp_code = 0\nicmp_type = [8, 0]"),
        "{printed}"
    );
    for (text, (line, col), message) in [
        (
            "[[rule]]\naction = \"block\"\nicmp_type = 8\n",
            (3, 13),
            "icmp_type needs protocol = \"icmp\" or \"icmpv6\" in the same rule",
        ),
        (
            "[[rule]]\naction = \"block\"\nprotocol = \"icmp\"\nicmp_type = \"ping\"\n",
            (4, 13),
            "unknown ICMP type `ping`",
        ),
        (
            "[[rule]]\naction = \"block\"\nprotocol = 1\nicmp_code = 300\n",
            (4, 13),
            "icmp_code 300 is out of range (0 to 255)",
        ),
        (
            "[[rule]]\naction = \"block\"\nprotocol = 1\nlocal_port = 8\nicmp_type = 8\n",
            (5, 13),
            "icmp_type and local_port are the same WFP field for ICMP",
        ),
    ] {
        let d = one_error(text);
        assert_eq!((d.line, d.column), (line, col), "{text}");
        assert!(d.message.starts_with(message), "{}", d.message);
    }
}

#[test]
fn empty_file_is_the_permit_all_policy() {
    assert_eq!(parse_with("").unwrap().policy, Policy::permit_all());
}

#[test]
fn reversed_port_range_names_line_and_column() {
    let d = one_error("[[rule]]\naction = \"block\"\nremote_port = [80, \"9000-80\"]\n");
    assert_eq!((d.line, d.column), (3, 20));
    assert_eq!(d.message, "port range 9000-80 is reversed");
    assert_eq!(d.to_string(), "p.toml:3:20: port range 9000-80 is reversed");
}

#[test]
fn value_errors_point_at_the_value() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        ("[[rule]]\naction = \"allow\"\n", (2, 10), "action must be \"permit\" or \"block\", not \"allow\""),
        ("[[rule]]\naction = \"block\"\nremote_port = 70000\n", (3, 15), "port 70000 is out of range (0 to 65535)"),
        ("[[rule]]\naction = \"block\"\nprotocol = \"sctp\"\n", (3, 12), "protocol must be tcp, udp, icmp, icmpv6 or a number 0-255, not \"sctp\""),
        ("[[rule]]\naction = \"block\"\nremote = \"10.0.0.300\"\n", (3, 10), "`10.0.0.300` is not an IP address, CIDR (addr/len) or range (first-last)"),
        ("[[rule]]\naction = \"block\"\nremote = \"10.0.0.9-10.0.0.1\"\n", (3, 10), "address range 10.0.0.9-10.0.0.1 is reversed"),
        ("[[rule]]\naction = \"block\"\nremote = \"10.0.0.0/33\"\n", (3, 10), "`10.0.0.0/33` is not a valid CIDR (a.b.c.d/0-32 or IPv6/0-128)"),
        ("[[rule]]\naction = \"block\"\nremote = \"@nope\"\n", (3, 10), "no address set named `nope` (define it under [sets])"),
        ("[[rule]]\naction = \"block\"\nip_version = \"v4\"\nremote = \"::1\"\n", (4, 10), "`::1` is IPv6 but the rule says ip_version = \"v4\": it could never match"),
        ("[[rule]]\naction = \"block\"\napp = 'Z:\\x.exe'\n", (3, 7), "app `Z:\\x.exe`: drive Z: is not mapped on this machine"),
        ("[[rule]]\naction = \"block\"\napp = 'x.exe'\n", (3, 7), "app `x.exe`: application path must be absolute (C:\\dir\\app.exe, \\\\server\\share\\app.exe or \\Device\\...)"),
        ("[[rule]]\naction = \"block\"\nid = -1\n", (3, 6), "rule id -1 is out of range (0 to 4294967295)"),
        ("[[rule]]\naction = \"block\"\nlog = 1\n", (3, 7), "log must be true or false, not an integer"),
        ("[defaults]\noutbound = \"deny\"\n", (2, 12), "defaults.outbound must be \"permit\" or \"block\", not \"deny\""),
    ];
    for (text, (line, column), message) in cases {
        let d = one_error(text);
        assert_eq!(
            (d.line, d.column, d.message.as_str()),
            (*line, *column, *message),
            "{text}"
        );
    }
}

#[test]
fn toml_and_shape_errors_have_positions() {
    let d = one_error("[[rule]]\naction = \"block\"\nremote_prot = 80\n");
    assert_eq!(d.line, 3);
    assert!(
        d.message.contains("unknown field `remote_prot`"),
        "{}",
        d.message
    );
    let d = one_error("[[rule]\n");
    assert_eq!(d.line, 1);
    let d = one_error("[[rule]]\nid = 3\n");
    assert_eq!(
        (d.line, d.message.as_str()),
        (1, "rule 3 has no `action` (\"permit\" or \"block\")")
    );
    let d = one_error(
        "[[rule]]\naction = \"block\"\nremote = [\"@a\", \"1.2.3.4\"]\n[sets]\na = [\"1.1.1.1\"]\n",
    );
    assert_eq!((d.line, d.column), (3, 11));
    assert!(
        d.message
            .starts_with("a set reference must be the only value"),
        "{}",
        d.message
    );
}

#[test]
fn several_errors_are_all_reported_in_order() {
    let e = parse_with("[[rule]]\naction = \"x\"\nremote_port = \"5-1\"\n[[rule]]\naction = \"block\"\nprotocol = 300\n").unwrap_err();
    let lines: Vec<usize> = e.list.iter().map(|d| d.line).collect();
    assert_eq!(lines, vec![2, 3, 6]);
}

#[test]
fn limits_are_reported_with_the_limit() {
    let ports: Vec<String> = (0..=weir_policy::limits::MAX_PORT_RANGES)
        .map(|p| p.to_string())
        .collect();
    let d = one_error(&format!(
        "[[rule]]\naction = \"block\"\nremote_port = [{}]\n",
        ports.join(",")
    ));
    // At the field, not the rule header.
    assert_eq!((d.line, d.column), (3, 15));
    assert!(
        d.message
            .contains(&weir_policy::limits::MAX_PORT_RANGES.to_string()),
        "{}",
        d.message
    );
}

#[test]
fn keep_mode_refuses_what_conversion_would_refuse_except_unknown_drives() {
    for (app, refused) in [
        ("C:\\\\Tools\\\\*.exe", true),
        ("%ProgramFiles%\\\\a.exe", true),
        ("C:\\\\PROGRA~1\\\\a.exe", true),
        ("a.exe", true),
        ("Q:\\\\a.exe", false),
    ] {
        let text = format!("[[rule]]\naction = \"block\"\napp = \"{app}\"\n");
        let keep = parse(
            "p.toml",
            &text,
            None,
            &LoadOptions {
                app_paths: AppPaths::Keep,
            },
        );
        assert_eq!(keep.is_err(), refused, "{app}: {keep:?}");
        if refused {
            let converted = parse_with(&text).unwrap_err();
            assert_eq!(
                keep.unwrap_err().list[0].message,
                converted.list[0].message,
                "{app}"
            );
        }
    }
}

#[test]
fn keep_mode_keeps_paths_and_lists_them() {
    let text = "[[rule]]\naction = \"permit\"\napp = 'C:\\App\\a.exe'\n[[rule]]\naction = \"permit\"\napp = '\\Device\\X\\b.exe'\n";
    let l = parse(
        "p.toml",
        text,
        None,
        &LoadOptions {
            app_paths: AppPaths::Keep,
        },
    )
    .unwrap();
    assert_eq!(l.kept_paths, vec!["C:\\App\\a.exe".to_string()]);
    assert_eq!(
        String::from_utf16(l.policy.rules[0].app.as_ref().unwrap().units()).unwrap(),
        "C:\\App\\a.exe"
    );
}

#[test]
fn address_list_files_parse_with_comments_and_report_their_lines() {
    let ok = parse_address_list(
        "# header\n1.2.3.4\n\n  10.0.0.0/8  # lan\n::1-::5\n",
        "l.txt",
    )
    .unwrap();
    assert_eq!(ok.entries.len(), 3);
    let e = parse_address_list("1.2.3.4\n  bogus\n5.6.7.8-5.6.7.1\n", "l.txt").unwrap_err();
    let got: Vec<(usize, usize)> = e.list.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(got, vec![(2, 3), (3, 1)]);
    assert_eq!(
        e.list[1].to_string(),
        "l.txt:3:1: address range 5.6.7.8-5.6.7.1 is reversed"
    );
}

#[test]
fn set_files_resolve_relative_to_the_policy() {
    let dir = std::env::temp_dir().join(format!("weir-text-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("list.txt"), "1.1.1.1\n2.2.2.0/24\n").unwrap();
    std::fs::write(dir.join("bad.txt"), "1.1.1.1\nnope\n").unwrap();
    std::fs::write(
        dir.join("p.toml"),
        "[sets]\nb = \"@list.txt\"\n[[rule]]\naction = \"block\"\nremote = \"@b\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("q.toml"), "[sets]\nb = \"@bad.txt\"\n").unwrap();
    let d = drives();
    let opts = LoadOptions {
        app_paths: AppPaths::Convert(&d),
    };
    let l = load_file(&dir.join("p.toml"), &opts).unwrap();
    assert_eq!(l.policy.sets[0].entries.len(), 2);
    assert_eq!(l.file_entries, 2);
    let e = load_file(&dir.join("q.toml"), &opts).unwrap_err();
    assert_eq!(e.list[0].line, 2);
    assert!(
        e.list[0].message.contains("bad.txt:2:1"),
        "{}",
        e.list[0].message
    );
    let e = load_file(&dir.join("missing.toml"), &opts).unwrap_err();
    assert!(e.list[0].message.starts_with("cannot read"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ranges_print_in_their_shortest_form() {
    for s in [
        "1.2.3.4",
        "10.0.0.0/8",
        "0.0.0.0/0",
        "10.0.0.1-10.0.0.9",
        "::1",
        "fd00::/8",
        "::/0",
        "::1-::5",
        "10.0.0.0-10.0.1.0",
    ] {
        assert_eq!(format_range(&parse_address(s).unwrap()), s);
    }
}

#[test]
fn printed_policy_parses_back_to_the_same_policy() {
    let text = "[defaults]\ninbound = \"block\"\n[sets]\n\"odd name\" = [\"1.2.3.4\", \"::/0\"]\nempty = []\n\
        [[rule]]\nid = 4\naction = \"block\"\nremote = \"@odd name\"\nremote_port = [1, \"2-3\"]\nprotocol = 99\n\
        [[rule]]\naction = \"permit\"\napp = 'C:\\it''s\\x.exe'\nlocal = [\"10.0.0.0/8\", \"1.1.1.1-1.1.1.3\"]\nloopback = true\nlog = true\n";
    let l = parse_with(text);
    // A literal string cannot hold a quote: TOML needs the basic form for that path.
    assert!(l.is_err());
    let text = text.replace("'C:\\it''s\\x.exe'", "\"C:\\\\it's\\\\x.exe\"");
    let p = parse_with(&text).unwrap().policy;
    let d = drives();
    let printed = format(&p, Some(&d));
    assert!(printed.contains("# C:\\it's\\x.exe"), "{printed}");
    let again = parse_with(&printed).unwrap().policy;
    assert_eq!(again, p, "{printed}");
}

mod checks;

mod properties {
    use super::*;
    use proptest::prelude::*;
    use weir_policy_testing::arb_policy;

    /// Makes `p` expressible in the file format: set names unique (TOML keys are) and
    /// no rule whose `ip_version` contradicts its own addresses (the parser refuses those
    /// as "could never match"; such a rule loses its `ip_version` here).
    fn expressible(mut p: Policy) -> Policy {
        for (i, s) in p.sets.iter_mut().enumerate() {
            s.name = format!("{}{i}", s.name);
        }
        for r in &mut p.rules {
            let Some(v) = r.ip_version else { continue };
            let agrees = [&r.remote_addr, &r.local_addr].iter().all(|c| match c {
                Some(AddrCond::Ranges(rs)) => rs.iter().all(|x| x.version() == v),
                _ => true,
            });
            if !agrees {
                r.ip_version = None;
            }
        }
        p
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn printed_policies_parse_back_identical(p in arb_policy(12).prop_map(expressible)) {
            let printed = format(&p, None);
            let again = parse_with(&printed).map_err(|e| TestCaseError::fail(format!("{e}\n{printed}")))?;
            prop_assert_eq!(again.policy, p);
        }

        #[test]
        fn any_text_gives_a_policy_or_positioned_errors(text in "(\\[\\[rule\\]\\]\n|\\[sets\\]\n|\\[defaults\\]\n|[a-z_]{1,12} = |\"[^\"\n]{0,20}\"|[0-9]{1,6}|\\[|\\]|, |\n|true|@[a-z]{1,3}|-){0,40}") {
            match parse_with(&text) {
                Ok(l) => prop_assert!(l.policy.validate().is_ok()),
                Err(Diagnostics { list: ds, .. }) => {
                    prop_assert!(!ds.is_empty() && ds.len() <= MAX_DIAGNOSTICS);
                    let lines = text.lines().count().max(1);
                    for d in ds {
                        prop_assert!(d.line >= 1 && d.line <= lines + 1 && d.column >= 1, "{:?} in {:?}", d, text);
                    }
                }
            }
        }
    }
}
