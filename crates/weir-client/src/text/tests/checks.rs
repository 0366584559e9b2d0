//! What users write and what it means: leading zeros, IPv4-mapped IPv6, host bits, file
//! encodings, list-file errors, errors after structural errors, and the warnings.

use super::*;

fn warnings(text: &str) -> Vec<(usize, &'static str, String)> {
    let l = parse_with(text).unwrap_or_else(|e| panic!("{e}"));
    l.warnings
        .list
        .iter()
        .map(|d| (d.line, d.code, d.message.clone()))
        .collect()
}

fn codes(text: &str) -> Vec<&'static str> {
    warnings(text).into_iter().map(|w| w.1).collect()
}

#[test]
fn ipv4_leading_zeros_are_refused_in_every_form() {
    for entry in [
        "010.0.0.1",
        "10.0.0.01/32",
        "010.0.0.0/8",
        "10.0.0.1-10.0.0.010",
        "010.0.0.1-10.0.0.9",
        "::ffff:010.0.0.1",
    ] {
        let d = one_error(&format!(
            "[[rule]]\naction = \"block\"\nremote = \"{entry}\"\n"
        ));
        assert_eq!((d.line, d.column), (3, 10), "{entry}");
        assert!(d.message.contains("leading zero"), "{entry}: {}", d.message);
        let e = parse_address_list(&format!("1.1.1.1\n{entry}\n"), "l.txt").unwrap_err();
        assert_eq!(e.list[0].line, 2, "{entry}");
        assert!(e.list[0].message.contains("leading zero"), "{entry}");
    }
    let d = one_error("[[rule]]\naction = \"block\"\nremote = \"010.0.0.0/8\"\n");
    assert!(
        d.message.contains("octal (8), others as decimal (10)"),
        "{}",
        d.message
    );
    // Zero itself is not a leading zero.
    assert!(parse_address("0.0.0.0/0").is_ok());
    assert!(parse_address("10.0.0.0").is_ok());
}

#[test]
fn ipv4_mapped_ipv6_is_matched_as_the_ipv4_host_and_said_so() {
    let text = "[[rule]]\naction = \"block\"\nremote = [\"::ffff:10.1.2.3\", \"::ffff:192.168.0.0/112\", \"::ffff:1.1.1.1-::ffff:1.1.1.9\"]\n";
    let l = parse_with(text).unwrap();
    assert_eq!(
        l.policy.rules[0].remote_addr,
        Some(AddrCond::Ranges(vec![
            AddrRange::V4 {
                lo: 0x0A01_0203,
                hi: 0x0A01_0203
            },
            AddrRange::V4 {
                lo: 0xC0A8_0000,
                hi: 0xC0A8_FFFF
            },
            AddrRange::V4 {
                lo: 0x0101_0101,
                hi: 0x0101_0109
            },
        ]))
    );
    let w = warnings(text);
    assert_eq!(w.len(), 3);
    assert!(w.iter().all(|w| w.1 == "mapped_ipv4"));
    assert!(
        w[0].2.contains("matched as the IPv4 host 10.1.2.3"),
        "{}",
        w[0].2
    );
    assert!(w[1].2.contains("IPv4 range 192.168.0.0/16"), "{}", w[1].2);
    // With ip_version = "v6" it could never match: refused, naming the IPv4 host.
    let e = parse_with(
        "[[rule]]\naction = \"block\"\nip_version = \"v6\"\nremote = \"::ffff:10.1.2.3\"\n",
    )
    .unwrap_err();
    assert!(
        e.list.iter().any(|d| d.is_error()
            && d.message
                .contains("is IPv4 but the rule says ip_version = \"v6\"")),
        "{e}"
    );
    // Plain IPv6 around the mapped block stays IPv6.
    assert!(matches!(
        parse_address("::fffe:10.1.2.3").unwrap(),
        AddrRange::V6 { .. }
    ));
    assert!(matches!(
        parse_address("::/0").unwrap(),
        AddrRange::V6 { .. }
    ));
}

#[test]
fn cidr_with_host_bits_warns_naming_the_network() {
    let mut w = warnings("[sets]\na = [\"10.1.2.3/8\", \"fd00::1/8\", \"10.0.0.0/8\"]\n");
    w.retain(|w| w.1 != "empty_policy");
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!((w[0].0, w[0].1), (2, "host_bits"));
    assert!(
        w[0].2.contains("covers the whole network 10.0.0.0/8"),
        "{}",
        w[0].2
    );
    assert!(w[1].2.contains("fd00::/8"), "{}", w[1].2);
    let l = parse_address_list("10.1.2.3/8\n", "l.txt").unwrap();
    assert_eq!(l.warnings.list[0].code, "host_bits");
    assert_eq!(l.warnings.list[0].to_string(), "l.txt:1:1: `10.1.2.3/8` has host bits set: it covers the whole network 10.0.0.0/8; write 10.0.0.0/8 (or the single address without /8) [host_bits]");
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-text-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn utf16(s: &str, be: bool) -> Vec<u8> {
    let mut out = if be {
        vec![0xFE, 0xFF]
    } else {
        vec![0xFF, 0xFE]
    };
    for u in s.encode_utf16() {
        out.extend(if be { u.to_be_bytes() } else { u.to_le_bytes() });
    }
    out
}

#[test]
fn files_as_windows_writes_them_load_alike() {
    let dir = temp_dir("enc");
    let policy = "# r\u{e8}gles\r\n[sets]\r\nb = \"@list.txt\"\r\n[[rule]]\r\naction = \"block\"\r\nremote = \"@b\"\r\napp = 'C:\\Programme\\\u{e9}t\u{e9}.exe'\r\n";
    let list = "1.1.1.1\r\n# c\r\n2.2.2.0/24\r\n";
    let d = drives();
    let opts = LoadOptions {
        app_paths: AppPaths::Convert(&d),
    };
    let mut bom8 = b"\xEF\xBB\xBF".to_vec();
    bom8.extend(policy.as_bytes());
    let mut expected = None;
    for (i, (p, l)) in [
        (policy.as_bytes().to_vec(), list.as_bytes().to_vec()),
        (bom8, utf16(list, true)),
        (utf16(policy, false), utf16(list, false)),
        (utf16(policy, true), list.as_bytes().to_vec()),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(dir.join("p.toml"), p).unwrap();
        std::fs::write(dir.join("list.txt"), l).unwrap();
        let got = load_file(&dir.join("p.toml"), &opts)
            .unwrap_or_else(|e| panic!("{i}: {e}"))
            .policy;
        assert_eq!(got.sets[0].entries.len(), 2, "{i}");
        let app = String::from_utf16(got.rules[0].app.as_ref().unwrap().units()).unwrap();
        assert!(app.ends_with("\\\u{e9}t\u{e9}.exe"), "{i}: {app}");
        match &expected {
            None => expected = Some(got),
            Some(e) => assert_eq!(&got, e, "{i}"),
        }
    }
    // A Windows code page file: refused with the position and the fix.
    std::fs::write(
        dir.join("p.toml"),
        b"[[rule]]\naction = \"block\"\napp = 'C:\\\xE9.exe'\n",
    )
    .unwrap();
    let e = load_file(&dir.join("p.toml"), &opts).unwrap_err();
    assert_eq!((e.list[0].line, e.list[0].column), (3, 11));
    assert!(e.list[0].message.contains("save the file as UTF-8"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn list_file_errors_name_the_file_as_given_and_where_it_was_looked_for() {
    let dir = temp_dir("missing");
    std::fs::write(dir.join("p.toml"), "[sets]\nb = \"@lists/none.txt\"\n").unwrap();
    let d = drives();
    let opts = LoadOptions {
        app_paths: AppPaths::Convert(&d),
    };
    let e = load_file(&dir.join("p.toml"), &opts).unwrap_err();
    let m = &e.list[0].message;
    assert!(
        m.starts_with("set `b`: lists/none.txt: cannot read list file (looked for "),
        "{m}"
    );
    assert!(
        m.contains(&dir.join("lists/none.txt").display().to_string()),
        "{m}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_after_a_structural_error_are_reported_too() {
    // An unknown field in rule 1, a bad value in rule 2.
    let e = parse_with(
        "[[rule]]\naction = \"block\"\nremote_prot = 80\n[[rule]]\naction = \"allow\"\n",
    )
    .unwrap_err();
    let got: Vec<usize> = e.list.iter().map(|d| d.line).collect();
    assert_eq!(got, vec![3, 5], "{e}");
    // A syntax error in a header, then a bad port further down.
    let e = parse_with(
        "[[rule]\naction = \"block\"\n[[rule]]\naction = \"block\"\nremote_port = \"9-1\"\n",
    )
    .unwrap_err();
    let got: Vec<usize> = e.list.iter().map(|d| d.line).collect();
    assert_eq!(got, vec![1, 5], "{e}");
    // A broken [sets] table does not make every reference an error.
    let e = parse_with("[sets]\na = [\"1.1.1.1\"\n[[rule]]\naction = \"block\"\nremote = \"@a\"\n")
        .unwrap_err();
    assert_eq!(e.list.len(), 1, "{e}");
    // Past the cap: counted, and said.
    let mut text = String::new();
    for _ in 0..30 {
        text.push_str("[[rule]]\naction = \"allow\"\n");
    }
    let e = parse_with(&text).unwrap_err();
    assert_eq!((e.list.len(), e.omitted), (MAX_DIAGNOSTICS, 10));
    assert!(e.to_string().ends_with("and 10 more"), "{e}");
}

#[test]
fn shadowed_rules_are_reported_and_reachable_ones_are_not() {
    let w = warnings("[[rule]]\naction = \"block\"\nremote = \"10.0.0.0/8\"\n[[rule]]\naction = \"permit\"\nremote = \"10.1.0.0/16\"\nremote_port = 443\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!((w[0].0, w[0].1), (4, "shadowed"));
    assert!(
        w[0].2.contains("the rule at line 1 (id 1, block)"),
        "{}",
        w[0].2
    );
    assert!(w[0].2.contains("with the other action"), "{}", w[0].2);
    // Not shadowed: narrower earlier rules, other protocol, partly covered, union only.
    for text in [
        "[[rule]]\naction = \"block\"\nremote = \"10.1.0.0/16\"\n[[rule]]\naction = \"permit\"\nremote = \"10.0.0.0/8\"\n",
        "[[rule]]\naction = \"block\"\nprotocol = \"tcp\"\n[[rule]]\naction = \"permit\"\nprotocol = \"udp\"\n",
        "[[rule]]\naction = \"block\"\nprotocol = \"tcp\"\n[[rule]]\naction = \"permit\"\n",
        "[[rule]]\naction = \"block\"\nremote_port = \"1-100\"\n[[rule]]\naction = \"block\"\nremote_port = \"101-200\"\n[[rule]]\naction = \"permit\"\nremote_port = \"50-150\"\n",
        "[[rule]]\naction = \"block\"\nip_version = \"v4\"\n[[rule]]\naction = \"permit\"\n",
        "[[rule]]\naction = \"block\"\napp = 'C:\\a.exe'\n[[rule]]\naction = \"permit\"\napp = 'C:\\b.exe'\n",
    ] {
        assert_eq!(codes(text), Vec::<&str>::new(), "{text}");
    }
    // Shadowed across versions only when every version is covered; case-folded apps.
    assert_eq!(codes("[[rule]]\naction = \"block\"\nip_version = \"v4\"\n[[rule]]\naction = \"permit\"\nremote = \"1.2.3.4\"\n"), vec!["shadowed"]);
    assert_eq!(codes("[[rule]]\naction = \"block\"\napp = 'C:\\\u{c9}T\u{c9}.EXE'\n[[rule]]\naction = \"permit\"\napp = 'c:\\\u{e9}t\u{e9}.exe'\nprotocol = 6\n"), vec!["shadowed"]);
}

#[test]
fn duplicate_ids_never_matching_rules_and_empty_things_warn() {
    let w = warnings("[[rule]]\nid = 5\naction = \"block\"\nprotocol = 6\n[[rule]]\nid = 5\naction = \"block\"\nprotocol = 17\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!((w[0].0, w[0].1), (6, "duplicate_id"));
    assert!(w[0].2.contains("rule at line 1"), "{}", w[0].2);

    let w = warnings("[sets]\nv6 = [\"fd00::/8\"]\n[[rule]]\naction = \"block\"\nip_version = \"v4\"\nremote = \"@v6\"\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!((w[0].0, w[0].1), (3, "never_matches"));
    assert!(
        w[0].2
            .contains("ip_version = \"v4\", remote (set `v6`) has only IPv6 addresses"),
        "{}",
        w[0].2
    );
    assert_eq!(
        codes("[[rule]]\naction = \"block\"\nremote = \"1.1.1.1\"\nlocal = \"::1\"\n"),
        vec!["never_matches"]
    );

    let w = warnings("[sets]\ne = []\n[[rule]]\naction = \"block\"\nremote = \"@e\"\n");
    assert_eq!(
        w.iter().map(|w| w.1).collect::<Vec<_>>(),
        vec!["empty_set", "never_matches"]
    );
    assert!(
        w[1].2.contains("refers to set `e`, which is empty"),
        "{}",
        w[1].2
    );

    let w = warnings("[defaults]\ninbound = \"block\"\n");
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].0, w[0].1), (0, "empty_policy"));
    assert!(
        w[0].2.contains("outbound permit, inbound block"),
        "{}",
        w[0].2
    );

    let dir = temp_dir("emptylist");
    std::fs::write(dir.join("list.txt"), "# nothing yet\r\n").unwrap();
    std::fs::write(
        dir.join("p.toml"),
        "[sets]\nb = \"@list.txt\"\n[[rule]]\naction = \"block\"\n",
    )
    .unwrap();
    let d = drives();
    let l = load_file(
        &dir.join("p.toml"),
        &LoadOptions {
            app_paths: AppPaths::Convert(&d),
        },
    )
    .unwrap();
    assert_eq!(l.warnings.list[0].code, "empty_set");
    assert!(l.warnings.list[0]
        .message
        .contains("list file `list.txt` has no entries"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rule_name_description_and_enabled_are_kept_in_the_policy() {
    // Old main refused these fields as unknown; now they reach the model (and the blob).
    let l = parse_with(
        "[[rule]]\nname = \"block all (paused)\"\ndescription = \"audit finding 12, café\"\nenabled = false\naction = \"block\"\n\
         [[rule]]\nname = \"web\"\naction = \"permit\"\nprotocol = \"tcp\"\n[[rule]]\naction = \"block\"\nenabled = true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = &l.policy.rules;
    assert_eq!(
        (r[0].name.as_str(), r[0].description.as_str(), r[0].enabled),
        ("block all (paused)", "audit finding 12, café", false)
    );
    assert_eq!((r[1].name.as_str(), r[1].description.as_str(), r[1].enabled), ("web", "", true));
    assert_eq!((r[2].name.as_str(), r[2].enabled), ("", true));
    let blob = weir_policy::wire::encode(&l.policy).unwrap();
    assert_eq!(weir_policy::wire::decode(&blob).unwrap(), l.policy);
    // Printed back and read again: the same policy.
    let printed = format(&l.policy, None);
    assert!(printed.contains("name = 'block all (paused)'\ndescription = 'audit finding 12, café'\nenabled = false\n"), "{printed}");
    assert_eq!(parse_with(&printed).unwrap().policy, l.policy);
}

#[test]
fn a_disabled_rule_shadows_nothing_and_gets_no_warning() {
    // Enabled, the catch-all block would shadow the permit (and old main said so for the
    // disabled one too); disabled, it matches nothing.
    let text = "[[rule]]\naction = \"block\"\nenabled = false\n[[rule]]\naction = \"permit\"\nremote_port = 443\n";
    assert_eq!(codes(text), Vec::<&str>::new());
    assert_eq!(
        codes("[[rule]]\naction = \"block\"\n[[rule]]\naction = \"permit\"\nremote_port = 443\n"),
        vec!["shadowed"]
    );
}

#[test]
fn bad_rule_names_and_descriptions_are_refused_at_the_field() {
    let long = "n".repeat(weir_policy::limits::MAX_RULE_NAME_BYTES + 1);
    let cases = [
        (format!("[[rule]]\naction = \"block\"\nname = \"{long}\"\n"), 3, "name is 256 bytes long (UTF-8); the limit is 255"),
        ("[[rule]]\naction = \"block\"\nname = \"\"\n".into(), 3, "name is empty: omit `name` for a rule without one"),
        ("[[rule]]\naction = \"block\"\ndescription = \"two\\nlines\"\n".into(), 3, "description holds the control character U+000A"),
        ("[[rule]]\naction = \"block\"\nname = \"\\u001b[2J\"\n".into(), 3, "name holds the control character U+001B"),
        ("[[rule]]\naction = \"block\"\nname = 5\n".into(), 3, "name must be a string, not an integer"),
        ("[[rule]]\naction = \"block\"\nenabled = \"no\"\n".into(), 3, "enabled must be true or false, not a string"),
    ];
    for (text, line, message) in cases {
        let d = one_error(&text);
        assert_eq!(d.line, line, "{text}");
        assert!(d.message.starts_with(message), "{}: {}", text, d.message);
        assert!(d.column > 1, "{d:?}");
    }
    let description = "d".repeat(weir_policy::limits::MAX_RULE_DESCRIPTION_BYTES + 1);
    let d = one_error(&format!("[[rule]]\naction = \"block\"\ndescription = \"{description}\"\n"));
    assert_eq!(d.message, "description is 1025 bytes long (UTF-8); the limit is 1024");
    // At the limits: accepted.
    let name = "é".repeat(weir_policy::limits::MAX_RULE_NAME_BYTES / 2);
    assert!(parse_with(&format!("[[rule]]\naction = \"block\"\nname = \"{name}\"\n")).is_ok());
}
