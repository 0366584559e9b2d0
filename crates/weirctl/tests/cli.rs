//! weirctl as users run it: exit codes, messages, JSON, on the shipped example policies
//! and broken ones.
//!
//! Every check runs twice: natively (the host build, always) and as the Windows build under
//! Wine (`#[ignore]`d here; `cargo xtask test` runs them with `--ignored`, pointing
//! `WEIRCTL_WINE_EXE` at the cross-built exe and `WEIRCTL_WINE` at Debian's wine64).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

struct Runner {
    program: OsString,
    leading: Vec<OsString>,
    windows: bool,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Runner {
    fn native() -> Self {
        Self {
            program: env!("CARGO_BIN_EXE_weirctl").into(),
            leading: vec![],
            windows: cfg!(windows),
        }
    }

    fn wine() -> Self {
        let exe = std::env::var_os("WEIRCTL_WINE_EXE")
            .expect("WEIRCTL_WINE_EXE must name the cross-built weirctl.exe (cargo xtask wine-test sets it)");
        let wine =
            std::env::var_os("WEIRCTL_WINE").unwrap_or_else(|| "/usr/lib/wine/wine64".into());
        Self {
            program: wine,
            leading: vec![exe],
            windows: true,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        // Output goes to files, not pipes: Wine's helper processes (services.exe, ...) inherit
        // the handles and outlive weirctl.exe, so reading a pipe to its end would wait for them.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = std::env::temp_dir().join(format!("weirctl-cli-{}-{n}", std::process::id()));
        let (out_path, err_path) = (base.with_extension("out"), base.with_extension("err"));
        let status = Command::new(&self.program)
            .args(&self.leading)
            .args(args)
            .current_dir(repo())
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .unwrap();
        let read = |p: &Path| {
            let text = String::from_utf8_lossy(&std::fs::read(p).unwrap()).replace("\r\n", "\n");
            let _ = std::fs::remove_file(p);
            text
        };
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: read(&out_path),
            stderr: read(&err_path),
        };
        eprintln!(
            "$ weirctl {}\n-> {}\n{}{}",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        );
        run
    }

    fn json(&self, args: &[&str]) -> (i32, Value) {
        let r = self.run(args);
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON in {:?}", r.stdout));
        (r.code, serde_json::from_str(line).unwrap())
    }
}

const EXAMPLES: [&str; 3] = [
    "examples/app-allowlist.toml",
    "examples/blocklist.toml",
    "examples/server-ports.toml",
];

fn help_and_version(w: &Runner) {
    let r = w.run(&["--help"]);
    assert_eq!(r.code, 0);
    for word in [
        "status",
        "policy",
        "events",
        "stats",
        "--json",
        "Exit codes: 0 success, 1 operation failed, 2 usage error",
    ] {
        assert!(r.stdout.contains(word), "help lacks {word}");
    }
    let r = w.run(&["policy", "--help"]);
    assert_eq!(r.code, 0);
    for word in ["check", "load", "show", "clear"] {
        assert!(r.stdout.contains(word), "policy help lacks {word}");
    }
    let r = w.run(&["--version"]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, concat!("weirctl ", env!("CARGO_PKG_VERSION")))
    );
}

fn usage_errors_exit_2(w: &Runner) {
    for args in [
        &[][..],
        &["bogus"],
        &["policy"],
        &["policy", "check"],
        &["stats", "--rulez"],
    ] {
        let r = w.run(args);
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.contains("Usage:"), "{args:?}: {}", r.stderr);
    }
}

fn examples_check(w: &Runner) {
    for file in EXAMPLES {
        let r = w.run(&["policy", "check", file]);
        assert_eq!(r.code, 0, "{file}: {}", r.stderr);
        assert!(
            r.stdout.starts_with(&format!("{file}: ok: ")),
            "{}",
            r.stdout
        );
    }
    let (code, j) = w.json(&["policy", "check", "--json", "examples/blocklist.toml"]);
    assert_eq!(code, 0);
    assert_eq!(j["ok"], true);
    assert_eq!(j["policy"]["rules"], 2);
    assert_eq!(j["policy"]["sets"], 2);
    // examples/blocklist.txt has 6 entries, the inline set 2.
    assert_eq!(j["policy"]["set_entries"], 8);
    assert_eq!(j["policy"]["disabled_rules"], 0);
    // examples/app-allowlist.toml has one rule with `enabled = false`.
    let r = w.run(&["policy", "check", "examples/app-allowlist.toml"]);
    assert!(
        r.stdout.contains(": ok: 6 rules (1 disabled), "),
        "{}",
        r.stdout
    );
    assert!(j["blob_bytes"].as_u64().unwrap() > 80);

    // Application paths: kept (and said so) off Windows, converted on Windows.
    let r = w.run(&["policy", "check", "examples/app-allowlist.toml"]);
    let (_, j) = w.json(&["policy", "check", "--json", "examples/app-allowlist.toml"]);
    if w.windows {
        assert!(!r.stderr.contains("kept as written"), "{}", r.stderr);
        assert_eq!(j["kept_paths"], serde_json::json!([]));
        let r = w.run(&[
            "policy",
            "check",
            "--keep-paths",
            "examples/app-allowlist.toml",
        ]);
        assert!(
            r.stderr.contains("3 application path(s) kept as written"),
            "{}",
            r.stderr
        );
    } else {
        assert!(
            r.stderr
                .contains("note: 3 application path(s) kept as written"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("this is not Windows"), "{}", r.stderr);
        assert!(
            r.stderr
                .contains("C:\\Program Files\\Mozilla Firefox\\firefox.exe"),
            "{}",
            r.stderr
        );
        assert_eq!(j["kept_paths"].as_array().unwrap().len(), 3);
    }
}

fn bad_policies_fail_with_positions(w: &Runner) {
    let dir = "crates/weirctl/tests/policies";
    let cases = [
        ("bad-port-range.toml", "bad-port-range.toml:5:20: port range 9000-80 is reversed"),
        ("bad-set-name.toml", "bad-set-name.toml:7:10: no address set named `lna` (define it under [sets])"),
        ("bad-action.toml", "bad-action.toml:3:10: action must be \"permit\" or \"block\", not \"deny\""),
        ("bad-list-file.toml", "bad-list-file.toml:2:8: set `list`: bad-list.txt:3:1: `10.0.0.300` is not an IP address"),
        ("bad-syntax.toml", "bad-syntax.toml:1:7: invalid table header"),
    ];
    for (file, message) in cases {
        let path = format!("{dir}/{file}");
        let r = w.run(&["policy", "check", &path]);
        assert_eq!(r.code, 1, "{file}");
        assert!(r.stdout.is_empty(), "{file}: {}", r.stdout);
        let line = r
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("{file}: {}", r.stderr));
        assert!(
            line.ends_with(message) || line.contains(message),
            "{file}: {line}"
        );
    }
    let (code, j) = w.json(&[
        "policy",
        "check",
        "--json",
        &format!("{dir}/bad-port-range.toml"),
    ]);
    assert_eq!(code, 1);
    assert_eq!(j["ok"], false);
    assert_eq!(j["error"]["kind"], "policy_invalid");
    let d = &j["error"]["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(5), Some(20))
    );
    assert_eq!(d["message"], "port range 9000-80 is reversed");

    let r = w.run(&["policy", "check", "no-such-file.toml"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("error: no-such-file.toml: cannot read"),
        "{}",
        r.stderr
    );
}

fn driver_commands_without_a_driver(w: &Runner) {
    for args in [
        &["status"][..],
        &["stats"],
        &["policy", "show"],
        &["policy", "clear"],
        &["events"],
    ] {
        let r = w.run(args);
        assert_eq!(r.code, 1, "{args:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
        if w.windows {
            assert!(
                r.stderr.contains("error: the Weir driver is not loaded"),
                "{args:?}: {}",
                r.stderr
            );
            assert!(
                r.stderr.contains("Install-Weir.ps1") || r.stderr.contains("sc.exe start weir"),
                "{}",
                r.stderr
            );
        } else {
            assert!(
                r.stderr
                    .contains("error: talking to the Weir driver needs Windows"),
                "{args:?}: {}",
                r.stderr
            );
        }
    }
    let (code, j) = w.json(&["status", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(j["ok"], false);
    let kind = j["error"]["kind"].as_str().unwrap();
    if w.windows {
        assert!(
            ["not_installed", "not_started", "not_loaded"].contains(&kind),
            "{kind}"
        );
    } else {
        assert_eq!(kind, "unsupported");
    }
}

fn warnings_are_shown_and_deny_warnings_refuses(w: &Runner) {
    let dir = "crates/weirctl/tests/policies";
    // The same policy as UTF-8/LF and as UTF-16 LE with BOM and CRLF (PowerShell 5.1's `>`).
    for file in ["warn-shadowed.toml", "utf16le-crlf.toml"] {
        let path = format!("{dir}/{file}");
        let r = w.run(&["policy", "check", &path]);
        assert_eq!(r.code, 0, "{file}: {}", r.stderr);
        let warnings: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("warning: "))
            .collect();
        assert_eq!(warnings.len(), 4, "{file}: {}", r.stderr);
        for (line, code) in [
            (4, "host_bits"),
            (11, "shadowed"),
            (18, "duplicate_id"),
            (20, "mapped_ipv4"),
        ] {
            assert!(
                warnings
                    .iter()
                    .any(|l| l.contains(&format!("{file}:{line}:"))
                        && l.ends_with(&format!("[{code}]"))),
                "{file}: {code} at {line}: {}",
                r.stderr
            );
        }
        assert!(
            r.stderr.contains("covers the whole network 10.0.0.0/8"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("matched as the IPv4 host 192.0.2.1"),
            "{}",
            r.stderr
        );
        let (code, j) = w.json(&["policy", "check", "--json", &path]);
        assert_eq!(code, 0);
        let got: Vec<(&str, &str)> = j["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["severity"].as_str().unwrap(), d["code"].as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("warning", "host_bits"),
                ("warning", "shadowed"),
                ("warning", "duplicate_id"),
                ("warning", "mapped_ipv4")
            ]
        );
        let r = w.run(&["policy", "check", "--deny-warnings", &path]);
        assert_eq!(r.code, 1, "{file}");
        assert!(r.stdout.is_empty());
        assert!(r.stderr.contains("(--deny-warnings)"), "{}", r.stderr);
    }
}

fn every_error_is_reported_with_its_position(w: &Runner) {
    let dir = "crates/weirctl/tests/policies";
    let r = w.run(&["policy", "check", &format!("{dir}/bad-several.toml")]);
    assert_eq!(r.code, 1);
    let at: Vec<&str> = r
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .map(|l| l.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        at,
        [
            format!("{dir}/bad-several.toml:3:1"),
            format!("{dir}/bad-several.toml:7:10"),
            format!("{dir}/bad-several.toml:10:10")
        ]
    );
    for (file, message) in [
        (
            "bad-leading-zero.toml",
            "bad-leading-zero.toml:3:10: `010.0.0.0` has a leading zero in the octet `010`",
        ),
        (
            "bad-cp1252.toml",
            "bad-cp1252.toml:1:4: byte 0xE8 is not UTF-8",
        ),
    ] {
        let r = w.run(&["policy", "check", &format!("{dir}/{file}")]);
        assert_eq!(r.code, 1, "{file}");
        assert!(r.stderr.contains(message), "{file}: {}", r.stderr);
    }
    let r = w.run(&["policy", "check", &format!("{dir}/bad-cp1252.toml")]);
    assert!(r.stderr.contains("save the file as UTF-8"), "{}", r.stderr);
}

fn drive_map_converts_as_load_would(w: &Runner) {
    let (code, j) = w.json(&[
        "policy",
        "check",
        "--json",
        "--drive-map",
        "c:=\\Device\\HarddiskVolume3",
        "examples/app-allowlist.toml",
    ]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["kept_paths"], serde_json::json!([]));
    let apps = j["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 3);
    assert_eq!(
        apps[1]["written"],
        "C:\\Program Files\\Mozilla Firefox\\firefox.exe"
    );
    assert_eq!(
        apps[1]["converted"],
        "\\Device\\HarddiskVolume3\\Program Files\\Mozilla Firefox\\firefox.exe"
    );
    let r = w.run(&[
        "policy",
        "check",
        "--drive-map",
        "D:=\\Device\\HarddiskVolume9",
        "examples/app-allowlist.toml",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("drive C: is not mapped"), "{}", r.stderr);
    let r = w.run(&[
        "policy",
        "check",
        "--drive-map",
        "C",
        "examples/app-allowlist.toml",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("expected DRIVE=DEVICE"), "{}", r.stderr);
}

fn usage_errors_follow_json(w: &Runner) {
    for args in [
        &["stats", "--rulez", "--json"][..],
        &["--json", "policy", "check"],
        &["--json", "bogus"],
    ] {
        let r = w.run(args);
        assert_eq!(r.code, 2, "{args:?}");
        let j: Value = serde_json::from_str(r.stdout.trim())
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", r.stdout));
        assert_eq!(
            (&j["ok"], &j["error"]["kind"]),
            (&Value::Bool(false), &Value::from("usage")),
            "{args:?}"
        );
        assert!(
            j["error"]["message"].as_str().unwrap().contains("Usage:"),
            "{args:?}"
        );
    }
}

/// Every command, text and JSON, into a pipe whose reader is already gone: weirctl ends
/// without a panic, with the exit code it would have had (0 for success).
#[cfg(unix)]
#[test]
fn native_output_into_a_closed_pipe_ends_quietly() {
    let ok = ["policy", "check", "examples/blocklist.toml"];
    let warn = [
        "policy",
        "check",
        "crates/weirctl/tests/policies/warn-shadowed.toml",
    ];
    let bad = [
        "policy",
        "check",
        "crates/weirctl/tests/policies/bad-several.toml",
    ];
    let cases: &[(&[&str], i32)] = &[
        (&ok, 0),
        (&warn, 0),
        (&bad, 1),
        (&["status"], 1),
        (&["stats", "--rules"], 1),
        (&["policy", "show"], 1),
        (&["policy", "clear"], 1),
        (&["events"], 1),
        (
            &[
                "policy",
                "explain",
                "examples/server-ports.toml",
                "--remote",
                "1.2.3.4:80",
            ],
            0,
        ),
        (
            &[
                "policy",
                "diff",
                "examples/blocklist.toml",
                "--against",
                "examples/server-ports.toml",
            ],
            0,
        ),
        (&["policy", "diff", "examples/blocklist.toml"], 1),
        (&["--help"], 0),
        (&["policy", "check", "--help"], 0),
        (&["--version"], 0),
        (&["bogus"], 2),
    ];
    for (args, code) in cases {
        for json in [false, true] {
            let mut all: Vec<&str> = args.to_vec();
            if json {
                all.push("--json");
            }
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            let out = Command::new(env!("CARGO_BIN_EXE_weirctl"))
                .args(&all)
                .current_dir(repo())
                .stdout(writer)
                .stderr(std::process::Stdio::piped())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(*code), "{all:?}: {stderr}");
            assert!(
                !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
                "{all:?}: {stderr}"
            );
        }
    }
    // The shell form of the issue: `| head -c 10` on a long output.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail; '{}' policy check --json examples/blocklist.toml | head -c 10; echo \" rc=$?\"", env!("CARGO_BIN_EXE_weirctl")))
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.ends_with(" rc=0\n"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn native_warnings_are_shown_and_deny_warnings_refuses() {
    warnings_are_shown_and_deny_warnings_refuses(&Runner::native());
}

#[test]
fn native_every_error_is_reported_with_its_position() {
    every_error_is_reported_with_its_position(&Runner::native());
}

#[test]
fn native_drive_map_converts_as_load_would() {
    drive_map_converts_as_load_would(&Runner::native());
}

#[test]
fn native_usage_errors_follow_json() {
    usage_errors_follow_json(&Runner::native());
}

#[test]
#[ignore = "runs the Windows build under Wine; cargo xtask test runs it"]
fn wine_warnings_are_shown_and_deny_warnings_refuses() {
    warnings_are_shown_and_deny_warnings_refuses(&Runner::wine());
}

#[test]
#[ignore = "runs the Windows build under Wine; cargo xtask test runs it"]
fn wine_every_error_is_reported_with_its_position() {
    every_error_is_reported_with_its_position(&Runner::wine());
}

#[test]
#[ignore = "runs the Windows build under Wine; cargo xtask test runs it"]
fn wine_drive_map_converts_as_load_would() {
    drive_map_converts_as_load_would(&Runner::wine());
}

#[test]
#[ignore = "runs the Windows build under Wine; cargo xtask test runs it"]
fn wine_usage_errors_follow_json() {
    usage_errors_follow_json(&Runner::wine());
}

fn explain_and_diff_on_files(w: &Runner) {
    let (code, j) = w.json(&[
        "policy",
        "explain",
        "--json",
        "examples/server-ports.toml",
        "--direction",
        "inbound",
        "--protocol",
        "tcp",
        "--remote",
        "203.0.113.5:50000",
        "--local",
        "192.0.2.10:3389",
    ]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(
        (&j["action"], &j["rule_id"], &j["rule_index"]),
        (&Value::from("block"), &Value::from(9), &Value::from(3))
    );
    let reasons: Vec<&str> = j["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "local_port 3389 is not in 22, 443",
            "remote 203.0.113.5 is not in set `lan`",
            "protocol = 58, the connection's is 6",
        ]
    );
    let r = w.run(&[
        "policy",
        "explain",
        "examples/app-allowlist.toml",
        "--protocol",
        "udp",
        "--remote",
        "1.1.1.1:53",
        "--app",
        "c:\\windows\\system32\\SVCHOST.EXE",
        "--drive-map",
        "C:=\\Device\\HarddiskVolume3",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("permit: rule 10 \"DNS\" (position 2) decides"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("rule 1 \"loopback\" (position 1) does not match: loopback = true"),
        "{}",
        r.stdout
    );
    // A disabled rule that would match is skipped, and said so (text and JSON).
    let r = w.run(&[
        "policy",
        "explain",
        "examples/app-allowlist.toml",
        "--protocol",
        "tcp",
        "--remote",
        "10.20.1.5:22",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("block: rule 99 \"everything else\" (position 6) decides, logged"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "rule 30 \"ssh to the build servers\" (position 5) skipped: it is disabled (enabled = false)"
        ),
        "{}",
        r.stdout
    );
    let (code, j) = w.json(&[
        "policy",
        "explain",
        "--json",
        "examples/app-allowlist.toml",
        "--protocol",
        "tcp",
        "--remote",
        "10.20.1.5:22",
    ]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(
        (&j["rule_id"], &j["rule_name"]),
        (&Value::from(99), &Value::from("everything else"))
    );
    let off = &j["skipped"][4];
    assert_eq!(
        (&off["id"], &off["name"], &off["disabled"]),
        (
            &Value::from(30),
            &Value::from("ssh to the build servers"),
            &Value::from(true)
        )
    );
    let r = w.run(&[
        "policy",
        "explain",
        "crates/weirctl/tests/policies/bad-several.toml",
        "--remote",
        "1.1.1.1",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("bad-several.toml:7:10: address range"),
        "{}",
        r.stderr
    );
    let r = w.run(&[
        "policy",
        "explain",
        "examples/blocklist.toml",
        "--remote",
        "1.1.1",
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("`1.1.1` is not an address"),
        "{}",
        r.stderr
    );
    let (code, j) = w.json(&[
        "policy",
        "explain",
        "--json",
        "examples/blocklist.toml",
        "--remote",
        "1.1.1",
    ]);
    assert_eq!((code, &j["error"]["kind"]), (2, &Value::from("usage")));

    let r = w.run(&[
        "policy",
        "diff",
        "examples/blocklist.toml",
        "--against",
        "examples/blocklist.toml",
    ]);
    assert_eq!(
        (r.code, r.stdout.trim_end()),
        (
            0,
            "examples/blocklist.toml against examples/blocklist.toml: no changes"
        )
    );
    let (code, j) = w.json(&[
        "policy",
        "diff",
        "--json",
        "examples/blocklist.toml",
        "--against",
        "examples/server-ports.toml",
    ]);
    assert_eq!(code, 0);
    let kinds: Vec<String> = j["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["kind"].as_str().unwrap(),
                c["what"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "changed defaults",
            "added set blocklist",
            "added set never",
            "removed set lan",
            "added rule 100",
            "added rule 101",
            "removed rule 1",
            "removed rule 2",
            "removed rule 3",
            "removed rule 9",
        ]
    );
    let r = w.run(&[
        "policy",
        "diff",
        "crates/weirctl/tests/policies/bad-action.toml",
        "--against",
        "examples/blocklist.toml",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("bad-action.toml:3:10"), "{}", r.stderr);
    // Name, description and `enabled` changes are rule changes.
    let (code, j) = w.json(&[
        "policy",
        "diff",
        "--json",
        "crates/weirctl/tests/policies/named-changed.toml",
        "--against",
        "crates/weirctl/tests/policies/named.toml",
    ]);
    assert_eq!(code, 0, "{j}");
    let changes: Vec<(String, Vec<String>)> = j["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!("{} {}", c["kind"].as_str().unwrap(), c["what"].as_str().unwrap()),
                c["lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (
                "changed rule 1 (web (TLS))".to_string(),
                vec!["- name = 'web'".to_string(), "+ name = 'web (TLS)'".to_string()]
            ),
            ("changed rule 2 (ssh)".to_string(), vec!["- enabled = false".to_string()]),
            (
                "changed rule 3".to_string(),
                vec!["+ description = 'the rest'".to_string()]
            ),
        ]
    );
    // Against the active policy: needs the driver.
    let r = w.run(&["policy", "diff", "examples/blocklist.toml"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.is_empty());
}

#[test]
fn native_explain_and_diff_on_files() {
    explain_and_diff_on_files(&Runner::native());
}

#[test]
#[ignore = "runs the Windows build under Wine; cargo xtask test runs it"]
fn wine_explain_and_diff_on_files() {
    explain_and_diff_on_files(&Runner::wine());
}

#[test]
fn native_help_and_version() {
    help_and_version(&Runner::native());
}

#[test]
fn native_usage_errors_exit_2() {
    usage_errors_exit_2(&Runner::native());
}

#[test]
fn native_examples_check() {
    examples_check(&Runner::native());
}

#[test]
fn native_bad_policies_fail_with_positions() {
    bad_policies_fail_with_positions(&Runner::native());
}

#[test]
fn native_driver_commands_without_a_driver() {
    driver_commands_without_a_driver(&Runner::native());
}

#[test]
#[ignore = "runs the Windows build under Wine; cargo xtask test runs it"]
fn wine_help_and_version() {
    help_and_version(&Runner::wine());
}

#[test]
#[ignore = "runs the Windows build under Wine; cargo xtask test runs it"]
fn wine_usage_errors_exit_2() {
    usage_errors_exit_2(&Runner::wine());
}

#[test]
#[ignore = "runs the Windows build under Wine; cargo xtask test runs it"]
fn wine_examples_check() {
    examples_check(&Runner::wine());
}

#[test]
#[ignore = "runs the Windows build under Wine; cargo xtask test runs it"]
fn wine_bad_policies_fail_with_positions() {
    bad_policies_fail_with_positions(&Runner::wine());
}

#[test]
#[ignore = "runs the Windows build under Wine; cargo xtask test runs it"]
fn wine_driver_commands_without_a_driver() {
    driver_commands_without_a_driver(&Runner::wine());
}

/// A blocklist of a million lines loads (the issue's scale); the time is printed for the
/// README (`cargo test -p weirctl --release --test cli -- million --nocapture`).
#[test]
fn native_million_line_blocklist() {
    use std::fmt::Write as _;
    let dir = std::env::temp_dir().join(format!("weirctl-million-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut list = String::with_capacity(16 * 1_000_000);
    for i in 0u32..1_000_000 {
        // Disjoint addresses and CIDRs spread over 1.0.0.0-..., every tenth a /30.
        let a = std::net::Ipv4Addr::from_bits(0x0100_0000 + i * 4);
        if i % 10 == 0 {
            let _ = writeln!(list, "{a}/30");
        } else {
            let _ = writeln!(list, "{a}");
        }
    }
    std::fs::write(dir.join("million.txt"), &list).unwrap();
    std::fs::write(dir.join("p.toml"), "[sets]\nbig = \"@million.txt\"\n\n[[rule]]\nid = 1\naction = \"block\"\nremote = \"@big\"\n").unwrap();
    let w = Runner::native();
    let p = dir.join("p.toml");
    let (code, j) = w.json(&["policy", "check", "--json", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["policy"]["set_entries"], 1_000_000);
    println!(
        "1,000,000-line set: parse {:.0} ms, compile {:.0} ms, blob {} bytes, compiled {} bytes",
        j["parse_ms"].as_f64().unwrap(),
        j["compile_ms"].as_f64().unwrap(),
        j["blob_bytes"],
        j["compiled_bytes"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn failsafe_commands(w: &Runner) {
    let r = w.run(&["failsafe", "check", "OUT tcp 10.1.2.9/24 443", "in udp any 67-68"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("out tcp 10.1.2.0/24 443\nin udp any 67-68\n"), "{}", r.stdout);
    assert!(
        r.stdout.contains(r#"reg add "HKLM\SYSTEM\CurrentControlSet\Services\weir\Parameters" /v FailClosedAllow /t REG_MULTI_SZ /d "out tcp 10.1.2.0/24 443\0in udp any 67-68" /f"#),
        "{}",
        r.stdout
    );
    let r = w.run(&["failsafe", "check", "out tcp any 443", "out tcp 10.0.0.0/33 443"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("entry 2: prefix must be 0-32 for IPv4, 0-128 for IPv6"), "{}", r.stderr);
    let (code, doc) = w.json(&["--json", "failsafe", "check", "out icmp any any"]);
    assert_eq!((code, doc["entries"].clone()), (0, serde_json::json!(["out icmp any any"])));
    let (code, doc) = w.json(&["--json", "failsafe", "check", "out icmp any 8"]);
    assert_eq!((code, doc["error"]["kind"].as_str()), (2, Some("usage")));
    if !w.windows {
        let (code, doc) = w.json(&["--json", "failsafe", "allow", "add", "out tcp any 443"]);
        assert_eq!((code, doc["error"]["kind"].as_str()), (1, Some("unsupported")));
        return;
    }
    // Windows (Wine's registry): add, read back, remove by meaning, delete.
    let r = w.run(&["failsafe", "allow", "add", "out udp 10.0.0.53 53", "out tcp 10.1.2.0/24 443"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("sc.exe start weir"), "{}", r.stdout);
    let r = w.run(&["failsafe", "allow", "add", "out udp 10.0.0.53 53"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (code, doc) = w.json(&["--json", "failsafe", "show"]);
    assert_eq!(code, 0);
    assert_eq!(doc["value"], serde_json::json!(["out udp 10.0.0.53 53", "out tcp 10.1.2.0/24 443"]));
    assert_eq!(doc["entries"], doc["value"]);
    let r = w.run(&["failsafe", "allow", "remove", "OUT TCP 10.1.2.77/24 443"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (_, doc) = w.json(&["--json", "failsafe", "show"]);
    assert_eq!(doc["value"], serde_json::json!(["out udp 10.0.0.53 53"]));
    let r = w.run(&["failsafe", "allow", "remove", "out udp 10.0.0.53 53"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (_, doc) = w.json(&["--json", "failsafe", "show"]);
    assert_eq!(doc["value"], serde_json::Value::Null);
    let r = w.run(&["failsafe", "show"]);
    assert!(r.stdout.contains("not set (weirctl failsafe allow add ENTRY adds one)"), "{}", r.stdout);
}

#[test]
fn native_failsafe_commands() {
    failsafe_commands(&Runner::native());
}

#[test]
#[ignore = "runs the Windows build under Wine; cargo xtask test runs it"]
fn wine_failsafe_commands() {
    failsafe_commands(&Runner::wine());
}
