"""The rules every test-VM PowerShell script is checked against, shared by
the test modules in tests/scripts.

There is no PowerShell on the project's Linux machines, so nothing here runs
the scripts. Every script (and WeirCommon.psm1) is parsed with the maintained
tree-sitter grammar for PowerShell (see psast.py) and must parse without an
ERROR or MISSING node. The project's own rules are then checked on the syntax
tree, so text in strings and comments never counts as code:

* every script starts with comment-based help (.SYNOPSIS, .DESCRIPTION,
  .EXAMPLE and a .PARAMETER per parameter), is an advanced script with
  ``[CmdletBinding(SupportsShouldProcess)]`` on its param block, sets
  ``Set-StrictMode -Version Latest`` and ``$ErrorActionPreference = 'Stop'``
  at top level, and refuses to run unelevated (a top-level ``if (-not
  <administrator check>) { throw }``);
* every state-changing command (pnputil, sc.exe, bcdedit, devcon with a
  changing sub-command; Import-Certificate, Remove-Item) sits in the *then*
  block of an ``if``/``elseif`` whose condition implies
  ``$PSCmdlet.ShouldProcess(...)`` (only ``-and`` between them: not negated,
  not one side of ``-or``, not the ``else`` branch, not a loop);
* ``sc`` is never used bare (in PowerShell it is Set-Content).

This module also holds what several test modules share: the script files,
command shapes (the docs check compares them), ``GOOD`` (a script passing
every check, which the tests break) and ``_without``.

Each check is also fed deliberately broken snippets, which it must reject.
Run with the emulation venv's python: ``.venv-emu/bin/python -m pytest tests/scripts``.
"""

from __future__ import annotations

import re
from pathlib import Path

import psast
from psast import Command

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = ROOT / "scripts"
WINDBG_SCRIPT = SCRIPTS_DIR / "weir.windbg.txt"
COMMON_MODULE = SCRIPTS_DIR / "WeirCommon.psm1"

EXPECTED_SCRIPTS = [
    "Enable-TestSigning.ps1",
    "Install-Weir.ps1",
    "Stage-Weir.ps1",
    "Uninstall-Weir.ps1",
    "Collect-WeirLogs.ps1",
]

# The certificate file names a package can carry, in order of preference:
# ours (cargo xtask package), then the one windows-drivers-rs' cargo-make
# flow copies into the package (its makecert task writes WDRLocalTestCert.cer).
CERTIFICATE_NAMES = ["weir-test.cer", "WDRLocalTestCert.cer"]

# The stored-policy directory (Install-Weir.ps1 creates it, Uninstall-Weir.ps1 removes it).
POLICY_DIR = "System32\\drivers\\weir"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig")


# ---------------------------------------------------------------------------
# Syntax
# ---------------------------------------------------------------------------


def check_syntax(text: str) -> list[str]:
    """ERROR / MISSING nodes of the tree-sitter parse."""
    return psast.syntax_errors(psast.parse(text))


# ---------------------------------------------------------------------------
# State-changing commands and their ShouldProcess guard
# ---------------------------------------------------------------------------


def _has_word(words: list[str | None], allowed: set[str], *, prefix: str = "") -> bool:
    return any(w is not None and w.lower().startswith(prefix) and w.lower()[len(prefix):] in allowed
               for w in words)


def _first_operand(words: list[str | None]) -> str | None:
    """The first argument that is not a -parameter (sc.exe's sub-command)."""
    for w in words:
        if w is not None and w.startswith("-"):
            continue
        return w.lower() if w is not None else None
    return None


PNPUTIL_CHANGING = {"add-driver", "delete-driver", "install", "uninstall", "remove-device",
                    "disable-device", "enable-device", "restart-device", "scan-devices"}
SC_CHANGING = {"start", "stop", "delete", "create", "config", "pause", "continue", "failure",
               "sdset", "description", "control", "privs", "sidtype", "triggerinfo"}
BCDEDIT_CHANGING = {"set", "deletevalue", "delete", "create", "copy", "import", "debug",
                    "bootdebug", "bootsequence", "default", "dbgsettings", "displayorder",
                    "toolsdisplayorder", "timeout", "bootems", "ems", "emssettings", "hypervisorsettings"}
DEVCON_CHANGING = {"dp_add", "dp_delete", "install", "update", "updateni", "remove", "rescan",
                   "enable", "disable", "restart", "sethwid", "classfilter", "reboot"}
ALWAYS_CHANGING = {"import-certificate", "remove-item", "new-item", "set-acl"}


def changes_state(cmd: Command) -> bool:
    """Whether running ``cmd`` changes the machine."""
    words = cmd.words
    name = cmd.name
    if name in ALWAYS_CHANGING:
        return True
    if name == "pnputil":
        return _has_word(words, PNPUTIL_CHANGING, prefix="/") or _has_word(words, PNPUTIL_CHANGING, prefix="-")
    if name == "sc":
        return _first_operand(words) in SC_CHANGING
    if name == "bcdedit":
        # "/dbgsettings" alone only shows the settings.
        if _has_word(words, {"dbgsettings"}, prefix="/") and len([w for w in words if w]) == 1:
            return False
        return _has_word(words, BCDEDIT_CHANGING, prefix="/")
    if name == "devcon":
        return _has_word(words, DEVCON_CHANGING)
    return False


def state_changing_calls(text: str) -> list[Command]:
    return [c for c in psast.commands(psast.parse(text)) if changes_state(c)]


def is_should_process_guarded(node) -> bool:
    for cond in psast.guarding_conditions(node):
        for call in psast.member_calls(cond, "$PSCmdlet", "ShouldProcess"):
            if psast.implies(cond, call):
                return True
    return False


def find_unguarded(text: str) -> list[str]:
    return [f"line {c.line}: {c.source()}" for c in state_changing_calls(text)
            if not is_should_process_guarded(c.node)]


# ---------------------------------------------------------------------------
# Script-level checks
# ---------------------------------------------------------------------------


def script_parameters(text: str) -> list[str]:
    return psast.parameters(psast.param_block(psast.parse(text)))


def check_cmdletbinding(text: str) -> list[str]:
    root = psast.parse(text)
    attrs = [a for name, a in psast.attributes(psast.param_block(root)) if name.lower() == "cmdletbinding"]
    if not attrs:
        return ["no script-level [CmdletBinding(...)] on the param() block"]
    for attr in attrs:
        for arg in (n for n in psast.walk(attr) if n.type == "attribute_argument"):
            named = arg.named_children
            if not named or psast.node_text(named[0]).lower() != "supportsshouldprocess":
                continue
            if len(named) == 1:
                return []
            value = psast.node_text(psast.unwrap(named[-1])).lower()
            if value in ("$true", "1"):
                return []
    return ["[CmdletBinding()] lacks SupportsShouldProcess"]


def check_strict_mode(text: str) -> list[str]:
    for stmt in psast.top_level_statements(psast.parse(text)):
        cmd = psast.top_level_command(stmt)
        if cmd is not None and cmd.name == "set-strictmode":
            words = [w.lower() if w else w for w in cmd.words]
            if words == ["-version", "latest"]:
                return []
    return ["no top-level 'Set-StrictMode -Version Latest'"]


def check_error_action(text: str) -> list[str]:
    for stmt in psast.top_level_statements(psast.parse(text)):
        assigned = psast.assignment(stmt)
        if assigned is None or assigned[0].lower() != "$erroractionpreference":
            continue
        if (psast.string_value(assigned[1]) or "").lower() == "stop":
            return []
        return [f"$ErrorActionPreference is set to something other than 'Stop': line {psast.line(stmt)}"]
    return ["no top-level $ErrorActionPreference = 'Stop'"]


def _is_admin_role_check(node) -> bool:
    """``<x>.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)``."""
    if node.type != "invokation_expression":
        return False
    member = next((c for c in node.named_children if c.type == "member_name"), None)
    if member is None or psast.node_text(member).lower() != "isinrole":
        return False
    args = next((c for c in node.named_children if c.type == "argument_list"), None)
    if args is None:
        return False
    for n in psast.walk(args):
        if n.type == "member_access":
            text = re.sub(r"\s+", "", psast.node_text(n)).lower()
            if text in ("[security.principal.windowsbuiltinrole]::administrator",
                        "[system.security.principal.windowsbuiltinrole]::administrator"):
                return True
    return False


def check_elevation(text: str) -> list[str]:
    """A top-level ``if (-not <admin check>) { throw/exit }``, where the admin
    check is an IsInRole(Administrator) call or a function doing one; or
    ``#Requires -RunAsAdministrator``."""
    root = psast.parse(text)
    for n in root.named_children:
        if n.type == "comment" and re.match(r"#requires\s+-runasadministrator\b", psast.node_text(n), re.I):
            return []
    checkers = {name.lower() for name, fn in psast.functions(root).items()
                if any(_is_admin_role_check(n) for n in psast.walk(fn))}
    if not checkers and not any(_is_admin_role_check(n) for n in psast.walk(root)):
        return ["no IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator) check"]
    for stmt in psast.top_level_statements(root):
        if stmt.type != "if_statement":
            continue
        cond = psast.unwrap(stmt.child_by_field_name("condition"))
        if cond.type != "expression_with_unary_operator":
            continue
        op = psast.node_text(cond.children[0]).lower()
        operand = psast.unwrap(cond.named_children[-1])
        cmd = psast.as_command(operand)
        checked = (cmd is not None and cmd.name in checkers and not cmd.args) or _is_admin_role_check(operand)
        if op not in ("-not", "!") or not checked:
            continue
        body = next((c for c in stmt.named_children if c.type == "statement_block"), None)
        statements = body.named_children[0].named_children if body is not None and body.named_children else []
        if any(psast.flow_keyword(s) in ("throw", "exit") for s in statements):
            return []
    return ["the elevation check is never used at top level to throw/exit when not elevated"]


def check_help(text: str) -> list[str]:
    root = psast.parse(text)
    # PowerShell takes help from the script's start, where only comments and
    # blank lines may precede it.
    first = None
    for node in root.named_children:
        if node.type != "comment":
            break
        if psast.node_text(node).startswith("<#"):
            first = node
            break
    if first is None:
        return ["the script does not start with a <# ... #> comment-based help block"]
    help_text = psast.node_text(first)[2:-2]
    problems = [f"help lacks {kw}" for kw in (".SYNOPSIS", ".DESCRIPTION", ".EXAMPLE")
                if not re.search(r"^\s*" + re.escape(kw) + r"\b", help_text, re.M)]
    documented = {p.lower() for p in re.findall(r"^\s*\.PARAMETER\s+(\w+)", help_text, re.M)}
    for name in psast.parameters(psast.param_block(root)):
        if name.lower() not in documented:
            problems.append(f"help has no .PARAMETER {name}")
    return problems


def check_no_bare_sc(text: str) -> list[str]:
    """``sc`` in PowerShell is the Set-Content alias; the service tool is sc.exe."""
    return [f"line {c.line}: use sc.exe, not sc" for c in psast.commands(psast.parse(text))
            if c.raw_name.lower() == "sc"]


def check_script(text: str) -> list[str]:
    problems = check_syntax(text)
    if problems:
        return problems
    problems += check_help(text)
    problems += check_cmdletbinding(text)
    problems += check_strict_mode(text)
    problems += check_error_action(text)
    problems += check_elevation(text)
    problems += check_no_bare_sc(text)
    problems += [f"not guarded by $PSCmdlet.ShouldProcess: {p}" for p in find_unguarded(text)]
    return problems


def _strings_in(node) -> list[str]:
    return [v for v in (psast.string_value(n) for n in psast.walk(node) if n.type == "string_literal")
            if v is not None]


# ---------------------------------------------------------------------------
# Command shapes (the docs check compares them)
# ---------------------------------------------------------------------------

TRACKED = {"pnputil", "sc", "bcdedit", "devcon", "netsh", "import-certificate"}


def shape(cmd: Command) -> tuple[str, ...] | None:
    """A command's shape: its name, then switches and sub-commands as
    written, every other argument (paths, names, variables) as '<arg>'."""
    if cmd.name not in TRACKED or (cmd.name == "sc" and cmd.raw_name.lower() == "sc"):
        return None
    result = [cmd.name]
    for w in cmd.words:
        if w is None:
            result.append("<arg>")
        elif re.match(r"^[/-][A-Za-z][\w-]*$", w):
            result.append(w.lower())
        elif re.match(r"^\w+=", w):
            result.append(w.split("=", 1)[0].lower() + "=")
        elif re.fullmatch(r"[a-z_]+", w) and w != "weir":
            result.append(w)
        else:
            result.append("<arg>")
    return tuple(result)


def script_command_shapes(texts: list[str]) -> set[tuple[str, ...]]:
    return {s for text in texts for s in (shape(c) for c in psast.commands(psast.parse(text))) if s}


# ---------------------------------------------------------------------------
# GOOD: a script passing every check; the tests break it
# ---------------------------------------------------------------------------


GOOD = """<#
.SYNOPSIS
    Test.
.DESCRIPTION
    Test script.
.PARAMETER PackageDir
    Where.
.EXAMPLE
    .\\Good.ps1 -WhatIf
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [ValidateNotNullOrEmpty()]
    [string] $PackageDir = '.'
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
function Test-IsElevated {
    $p = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
    return $p.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}
if (-not (Test-IsElevated)) {
    throw 'Run elevated.'
}
Write-Host "pnputil /add-driver is only mentioned here: $($PackageDir -join "`n") {"
# pnputil /add-driver x.inf /install   (a comment)
if ($PSCmdlet.ShouldProcess($PackageDir, 'pnputil /add-driver')) {
    foreach ($x in @(1)) {
        $out = & pnputil.exe /add-driver $PackageDir /install
    }
    & sc.exe start weir
}
& sc.exe query weir
& bcdedit.exe /enum '{current}'
"""


def _without(text: str, needle: str, replacement: str = "") -> str:
    assert needle in text, needle
    return text.replace(needle, replacement, 1)
