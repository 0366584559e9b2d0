"""docs/test-vm.md and docs/debugging.md against the scripts.

The scripts run the commands the test-VM procedure needs, and each command
line documented in docs/test-vm.md has the same shape (command, switches,
sub-commands) as a command in a script; each script call in the doc names an
existing script and existing parameters. Both docs carry the caveat that the
scripts have not run on real Windows; test-vm.md names every script and both
certificate names, debugging.md the debugger steps.

Each check is also fed deliberately broken snippets, which it must reject.
"""

from __future__ import annotations

import re

import psast
from psast import Command
from script_rules import (
    CERTIFICATE_NAMES,
    EXPECTED_SCRIPTS,
    ROOT,
    read,
    script_command_shapes,
    script_parameters,
    shape,
)

TEST_VM_DOC = ROOT / "docs" / "test-vm.md"
DEBUGGING_DOC = ROOT / "docs" / "debugging.md"

COMMON_PARAMETERS = {
    "whatif", "confirm", "verbose", "debug", "erroraction", "warningaction",
    "informationaction", "errorvariable", "warningvariable", "informationvariable",
    "outvariable", "outbuffer", "pipelinevariable",
}


def doc_blocks(markdown: str) -> list[tuple[int, str]]:
    """(first line number, text) of each ```powershell / ```cmd (and similar)
    fenced block, prompts removed."""
    blocks = []
    fence = None
    start = 0
    lines: list[str] = []
    for n, raw in enumerate(markdown.splitlines(), 1):
        m = re.match(r"^\s*```\s*(\w*)", raw)
        if m:
            if fence is None:
                fence, start, lines = m.group(1).lower(), n + 1, []
            else:
                if fence in ("powershell", "pwsh", "ps1", "cmd", "bat", "console"):
                    blocks.append((start, "\n".join(lines) + "\n"))
                fence = None
            continue
        if fence is not None:
            lines.append(re.sub(r"^\s*(PS[^>]*>|C:\\[^>]*>|>)\s*", "", raw))
    return blocks


def doc_commands(markdown: str) -> tuple[list[Command], list[str]]:
    """Commands in the doc's code blocks, and the blocks' parse problems."""
    cmds, problems = [], []
    for start, text in doc_blocks(markdown):
        root = psast.parse(text)
        problems += [f"docs block at line {start}: {p}" for p in psast.syntax_errors(root)]
        cmds += psast.commands(root)
    return cmds, problems


def check_docs_against_scripts(markdown: str, script_texts: dict[str, str]) -> list[str]:
    cmds, problems = doc_commands(markdown)
    shapes = script_command_shapes(list(script_texts.values()))
    for cmd in cmds:
        s = shape(cmd)
        if s is not None and s not in shapes:
            problems.append(f"documented command not found in any script: {cmd.source()!r} (shape {' '.join(s)})")
        if cmd.raw_name.lower().endswith(".ps1"):
            script = re.split(r"[\\/]", cmd.raw_name)[-1]
            if script not in script_texts:
                problems.append(f"documented script does not exist: {script} in {cmd.source()!r}")
                continue
            known = {p.lower() for p in script_parameters(script_texts[script])} | COMMON_PARAMETERS
            for w in cmd.words:
                if w and w.startswith("-") and w[1:].rstrip(":").lower() not in known:
                    problems.append(f"{script} has no parameter {w} (used in {cmd.source()!r})")
    return problems


def test_expected_commands_are_in_the_scripts(script_texts):
    shapes = script_command_shapes(list(script_texts.values()))
    for expected in [
        ("bcdedit", "/set", "testsigning", "on"),
        ("pnputil", "/add-driver", "<arg>", "/install"),
        ("sc", "start", "<arg>"),
        ("sc", "stop", "<arg>"),
        ("sc", "delete", "<arg>"),
        ("sc", "query", "<arg>"),
        ("sc", "qc", "<arg>"),
        ("sc", "config", "<arg>", "start=", "demand"),
        ("pnputil", "/enum-drivers"),
        ("pnputil", "/delete-driver", "<arg>", "/uninstall", "/force"),
        ("devcon", "dp_add", "<arg>"),
        ("devcon", "dp_delete", "<arg>"),
        ("netsh", "wfp", "show", "state", "file="),
        ("netsh", "wfp", "show", "filters", "file="),
        ("import-certificate", "-filepath", "<arg>", "-certstorelocation", "<arg>"),
    ]:
        assert expected in shapes, expected


def test_docs_commands_appear_in_scripts(script_texts):
    markdown = read(TEST_VM_DOC)
    cmds, parse_problems = doc_commands(markdown)
    assert parse_problems == [], "\n".join(parse_problems)
    assert len([c for c in cmds if shape(c)]) >= 10, "docs/test-vm.md should show the exact commands"
    problems = check_docs_against_scripts(markdown, script_texts)
    assert problems == [], "\n".join(problems)


def test_docs_mention_every_script_both_certificates_and_the_caveat():
    for doc in (TEST_VM_DOC, DEBUGGING_DOC):
        prose = re.sub(r"[*_>\s]+", " ", read(doc))  # drop emphasis, quote marks, line breaks
        assert re.search(r"not (been )?(run|tested|verified) on (real )?Windows", prose, re.I), doc
    vm = read(TEST_VM_DOC)
    for name in EXPECTED_SCRIPTS + CERTIFICATE_NAMES + ["cargo make"]:
        assert name in vm, name
    dbg = read(DEBUGGING_DOC)
    for needle in ["bcdedit /debug on", "bcdedit /dbgsettings net", "windbg -k net:port=50000",
                   "sxe ld weir.sys", "bu weir!DriverEntry", "Kd_IHVNETWORK_Mask", "!analyze -v",
                   ".srcpath", "weir.windbg.txt", "Debug Print Filter"]:
        assert needle in dbg, needle


def test_docs_checker_rejects_drift(script_texts):
    good = "```powershell\npnputil /add-driver C:\\x\\weir.inf /install\nsc.exe start weir\n.\\Install-Weir.ps1 -PackageDir C:\\x -WhatIf\n```\n"
    assert check_docs_against_scripts(good, script_texts) == []
    for drifted, expected in [
        ("```powershell\npnputil /add-driver C:\\x\\weir.inf\n```\n", "not found"),
        ("```powershell\nsc.exe pause weir\n```\n", "not found"),
        ("```cmd\nbcdedit /set nointegritychecks on\n```\n", "not found"),
        ("```powershell\n.\\Install-Weir.ps1 -Package C:\\x\n```\n", "no parameter -Package"),
        ("```powershell\n.\\Install-Driver.ps1\n```\n", "does not exist"),
        ("```powershell\nif ($x) {\n```\n", "docs block at line 2"),
    ]:
        problems = check_docs_against_scripts(drifted, script_texts)
        assert any(expected in p for p in problems), (drifted, problems)


def test_docs_checker_ignores_prose_and_other_fences(script_texts):
    prose = "Run pnputil /add-driver weir.inf (see below).\n```text\nsc.exe pause weir\n```\n"
    assert check_docs_against_scripts(prose, script_texts) == []
