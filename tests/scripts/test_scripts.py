"""Static checks of the test-VM PowerShell scripts and the WinDbg script.

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
* ``sc`` is never used bare (in PowerShell it is Set-Content);
* the scripts run the commands the test-VM procedure needs, and each command
  line documented in docs/test-vm.md has the same shape (command, switches,
  sub-commands) as a command in a script; each script call in the doc names
  an existing script and existing parameters;
* the package's test certificate is found under either name a package can
  have (``weir-test.cer`` from ``cargo xtask package``, preferred, or
  ``WDRLocalTestCert.cer`` from the WDK's ``cargo make``), by one read-only
  helper in WeirCommon.psm1 that every script needing the certificate uses.

Each check is also fed deliberately broken snippets, which it must reject.
Run with the emulation venv's python: ``.venv-emu/bin/python -m pytest tests/scripts``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import psast
from psast import Command

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = ROOT / "scripts"
TEST_VM_DOC = ROOT / "docs" / "test-vm.md"
DEBUGGING_DOC = ROOT / "docs" / "debugging.md"
WINDBG_SCRIPT = SCRIPTS_DIR / "weir.windbg.txt"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
COMMON_MODULE = SCRIPTS_DIR / "WeirCommon.psm1"

EXPECTED_SCRIPTS = [
    "Enable-TestSigning.ps1",
    "Install-Weir.ps1",
    "Stage-Weir.ps1",
    "Uninstall-Weir.ps1",
    "Collect-WeirLogs.ps1",
]

COMMON_FUNCTIONS = ["ConvertFrom-WeirEnumDrivers", "Get-WeirServiceState", "Find-WeirTestCertificate"]

# The certificate file names a package can carry, in order of preference:
# ours (cargo xtask package), then the one windows-drivers-rs' cargo-make
# flow copies into the package (its makecert task writes WDRLocalTestCert.cer).
CERTIFICATE_NAMES = ["weir-test.cer", "WDRLocalTestCert.cer"]
# Scripts that need the certificate.
CERTIFICATE_USERS = ["Enable-TestSigning.ps1", "Install-Weir.ps1"]
CERTIFICATE_FINDER = "Find-WeirTestCertificate"

COMMON_PARAMETERS = {
    "whatif", "confirm", "verbose", "debug", "erroraction", "warningaction",
    "informationaction", "errorvariable", "warningvariable", "informationvariable",
    "outvariable", "outbuffer", "pipelinevariable",
}


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


# ---------------------------------------------------------------------------
# The shared module and the certificate lookup
# ---------------------------------------------------------------------------


def exported_functions(text: str) -> list[str]:
    names = []
    for cmd in psast.commands(psast.parse(text)):
        if cmd.name == "export-modulemember":
            for arg in cmd.args:
                for n in psast.walk(arg):
                    if n.type in ("string_literal", "generic_token"):
                        value = psast.word_value(n)
                        if value and not value.startswith("-"):
                            names.append(value)
    return names


def check_common_module(text: str) -> list[str]:
    problems = check_syntax(text)
    if problems:
        return problems
    problems += check_strict_mode(text)
    # The module is imported by scripts that promise -WhatIf; it may not
    # change anything itself.
    problems += [f"line {c.line}: the module changes state: {c.source()}" for c in state_changing_calls(text)]
    root = psast.parse(text)
    defined = psast.functions(root)
    exported = {n.lower() for n in exported_functions(text)}
    for fn in COMMON_FUNCTIONS:
        if fn not in defined:
            problems.append(f"{fn} is not defined")
        elif fn.lower() not in exported:
            problems.append(f"{fn} is not exported")
    return problems


def imports_common_module(root) -> bool:
    """``Import-Module -Name (Join-Path $PSScriptRoot 'WeirCommon.psm1') ...``."""
    for cmd in psast.commands(root):
        if cmd.name != "import-module":
            continue
        words = cmd.words
        for i, w in enumerate(words[:-1]):
            if (w or "").lower() != "-name":
                continue
            inner = psast.as_command(psast.unwrap(cmd.args[i + 1]))
            if inner is None or inner.name != "join-path" or len(inner.args) != 2:
                continue
            base = psast.node_text(psast.unwrap(inner.args[0])).lower()
            if base == "$psscriptroot" and inner.words[1] == "WeirCommon.psm1":
                return True
    return False


def check_uses_common_module(text: str) -> list[str]:
    root = psast.parse(text)
    problems = []
    called = {c.name for c in psast.commands(root)}
    used = [fn for fn in COMMON_FUNCTIONS if fn.lower() in called]
    if used and not imports_common_module(root):
        problems.append(f"uses {used} without importing WeirCommon.psm1 from $PSScriptRoot")
    for fn in psast.functions(root):
        if fn.lower() in {f.lower() for f in COMMON_FUNCTIONS}:
            problems.append(f"redefines {fn} (it lives in WeirCommon.psm1)")
    return problems


def _strings_in(node) -> list[str]:
    return [v for v in (psast.string_value(n) for n in psast.walk(node) if n.type == "string_literal")
            if v is not None]


def check_certificate_finder(text: str) -> list[str]:
    """The module's certificate lookup: a literal list of exactly
    CERTIFICATE_NAMES in that order, a ``foreach`` over it that returns the
    first name whose file exists (Test-Path ... -PathType Leaf), and, after
    the loop, a ``throw`` whose message names every accepted file name."""
    root = psast.parse(text)
    fn = psast.functions(root).get(CERTIFICATE_FINDER)
    if fn is None:
        return [f"{CERTIFICATE_FINDER} is not defined"]
    body = next((n for n in psast.walk(fn) if n.type == "script_block"), None)
    if body is None:
        return [f"{CERTIFICATE_FINDER} has an empty body"]
    names_var = None
    loop = None
    for n in psast.walk(body):
        assigned = psast.assignment(n) if n.type == "pipeline" else None
        if assigned is not None and names_var is None:
            values = _strings_in(assigned[1])
            if [v.lower() for v in values] == [c.lower() for c in CERTIFICATE_NAMES]:
                names_var = assigned[0].lower()
            elif any(v.lower().endswith(".cer") for v in values):
                return [f"{CERTIFICATE_FINDER} accepts {values}, expected {CERTIFICATE_NAMES} in this order"]
        if n.type == "foreach_statement" and loop is None:
            source = next((c for c in n.named_children if c.type == "pipeline"), None)
            if source is not None and names_var is not None and \
                    psast.node_text(psast.unwrap(source)).lower() == names_var:
                loop = n
    if names_var is None:
        return [f"{CERTIFICATE_FINDER} has no list {CERTIFICATE_NAMES}"]
    if loop is None:
        return [f"{CERTIFICATE_FINDER} does not loop over its list of names"]
    tested = False
    for n in psast.walk(loop):
        if n.type != "if_statement":
            continue
        test = psast.as_command(psast.unwrap(n.child_by_field_name("condition")))
        if test is None or test.name != "test-path":
            continue
        words = [(w or "").lower() for w in test.words]
        if "-pathtype" in words and "leaf" in words:
            block = next(c for c in n.named_children if c.type == "statement_block")
            if any(psast.flow_keyword(s) == "return" for s in psast.walk(block)):
                tested = True
    if not tested:
        return [f"{CERTIFICATE_FINDER} does not return the first name whose file exists (Test-Path -PathType Leaf)"]
    after = [s for s in psast.walk(body) if s.start_byte >= loop.end_byte and psast.flow_keyword(s) == "throw"]
    if not after:
        return [f"{CERTIFICATE_FINDER} does not throw when no certificate is found"]
    message = " ".join(_strings_in(after[0]))
    missing = [c for c in CERTIFICATE_NAMES if c.lower() not in message.lower()]
    if missing:
        return [f"{CERTIFICATE_FINDER}'s error does not name {missing}"]
    return []


def check_certificate_user(text: str) -> list[str]:
    """A script that needs the certificate gets it from the module's finder
    and names no certificate file itself in code (help text may)."""
    root = psast.parse(text)
    problems = []
    if not any(c.name == CERTIFICATE_FINDER.lower() for c in psast.commands(root)):
        problems.append(f"does not call {CERTIFICATE_FINDER}")
    for n in psast.walk(root):
        if n.type != "string_literal":
            continue
        value = psast.string_value(n) or ""
        for name in CERTIFICATE_NAMES:
            # A bare file name (as a path component) in a string is a second
            # place that decides which certificate names are accepted.
            if re.fullmatch(r"(?:.*[\\/])?" + re.escape(name), value, re.I):
                problems.append(f"line {psast.line(n)}: hard-codes {name}; use {CERTIFICATE_FINDER}")
    return problems


def check_package_files(text: str) -> list[str]:
    """A top-level ``$PackageFiles = @(...)`` (the files a package must
    have) names no certificate: the finder decides which one is there."""
    problems = []
    for stmt in psast.top_level_statements(psast.parse(text)):
        assigned = psast.assignment(stmt)
        if assigned is None or assigned[0].lower() != "$packagefiles":
            continue
        for value in _strings_in(assigned[1]):
            if value.lower() in {c.lower() for c in CERTIFICATE_NAMES}:
                problems.append(f"line {psast.line(stmt)}: $PackageFiles requires {value}; a package has one of {CERTIFICATE_NAMES}")
    return problems


def check_ascii_and_paths(text: str) -> list[str]:
    problems = []
    if not text.isascii():
        problems.append("non-ASCII characters (Windows PowerShell 5.1 reads BOM-less files as ANSI)")
    if re.search(r"/work/|/home/|/root/|[A-Z]:\\Users\\", text):
        problems.append("a path of a build or user machine")
    return problems


# ---------------------------------------------------------------------------
# Docs <-> scripts
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


def script_command_shapes(texts: list[str]) -> set[tuple[str, ...]]:
    return {s for text in texts for s in (shape(c) for c in psast.commands(psast.parse(text))) if s}


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


# ---------------------------------------------------------------------------
# WinDbg script (not PowerShell: its own line rules)
# ---------------------------------------------------------------------------

WINDBG_REQUIRED = [
    r"\.sympath\+ ",
    r"\.reload\s+/f\s+weir\.sys",
    r"^sxe\s+ld\s+weir\.sys",
    r"^bu\s+weir!DriverEntry",
    r"\bweir!\*driver_unload|bu\s+weir!\S*unload",
    r"\bweir!\*kernel\*classify|bu\s+weir!\S*classify",
    r"^ed\s+nt!Kd_IHVNETWORK_Mask\s+0xf",
    r"^\.echo\s+\"",
]


def check_windbg(text: str) -> list[str]:
    """Rules for a script run with $$>< (all lines joined by semicolons)."""
    problems = []
    depth = 0
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("*"):
            problems.append(f"line {n}: '*' comments swallow the rest of a $$>< script")
            continue
        if s.startswith("$$"):
            if ";" in s:
                problems.append(f"line {n}: a semicolon ends a $$ comment early")
            continue
        # Quoted .echo text may hold anything but a quote.
        unquoted = re.sub(r'"[^"]*"', '""', s)
        if unquoted.count('"') % 2:
            problems.append(f"line {n}: unbalanced quote")
        for m in re.finditer(r"\.echo\s+(?!\")", s):
            problems.append(f"line {n}: unquoted .echo text ends at the next semicolon")
        for c in unquoted:
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth < 0:
                    problems.append(f"line {n}: '}}' closes nothing")
                    depth = 0
        if re.match(r"^\.else\b", s):
            problems.append(f"line {n}: .else must follow the closing brace on the same line")
    if depth:
        problems.append("unbalanced braces")
    for pattern in WINDBG_REQUIRED:
        if not re.search(pattern, text, re.M):
            problems.append(f"missing: {pattern}")
    return problems



# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def script_texts() -> dict[str, str]:
    return {p.name: read(p) for p in sorted(SCRIPTS_DIR.glob("*.ps1"))}


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

GOOD_MODULE = """Set-StrictMode -Version Latest
function ConvertFrom-WeirEnumDrivers {
    param([string[]] $Text)
    return @()
}
function Get-WeirServiceState {
    param([string] $Name)
    return 'Absent'
}
function Find-WeirTestCertificate {
    param([string] $PackageDir)
    $names = @('weir-test.cer', 'WDRLocalTestCert.cer')
    foreach ($name in $names) {
        $path = Join-Path $PackageDir $name
        if (Test-Path -LiteralPath $path -PathType Leaf) {
            return $path
        }
    }
    throw "No test certificate in '$PackageDir': expected weir-test.cer or WDRLocalTestCert.cer."
}
Export-ModuleMember -Function 'ConvertFrom-WeirEnumDrivers', 'Get-WeirServiceState', 'Find-WeirTestCertificate'
"""

GOOD_CERT_USER = """Import-Module -Name (Join-Path $PSScriptRoot 'WeirCommon.psm1') -Force
$CertificatePath = Find-WeirTestCertificate -PackageDir $PackageDir
Write-Host 'Trusting the certificate'
"""


def _without(text: str, needle: str, replacement: str = "") -> str:
    assert needle in text, needle
    return text.replace(needle, replacement, 1)


# ---------------------------------------------------------------------------
# Tests on the real files
# ---------------------------------------------------------------------------


def test_all_scripts_present():
    for name in EXPECTED_SCRIPTS:
        assert (SCRIPTS_DIR / name).is_file(), name
    assert sorted(p.name for p in SCRIPTS_DIR.glob("*.ps1")) == sorted(EXPECTED_SCRIPTS), \
        "a new script must be added to EXPECTED_SCRIPTS (and so to these checks)"
    assert WINDBG_SCRIPT.is_file()
    assert COMMON_MODULE.is_file()


def test_grammar_is_the_pinned_one():
    from importlib.metadata import version
    requirements = read(ROOT / "tests" / "emulation" / "requirements.txt")
    for dist in ("tree-sitter", "tree-sitter-powershell"):
        pinned = re.search(rf"^{re.escape(dist)}==(\S+)$", requirements, re.M)
        assert pinned, f"{dist} is not pinned in tests/emulation/requirements.txt"
        assert version(dist) == pinned.group(1), f"{dist} {version(dist)} is installed, {pinned.group(1)} pinned"


@pytest.mark.parametrize("name", EXPECTED_SCRIPTS + ["WeirCommon.psm1"])
def test_parses_without_error_nodes(name):
    root = psast.parse(read(SCRIPTS_DIR / name))
    assert psast.syntax_errors(root) == [], "\n".join(psast.syntax_errors(root))
    # A parse that silently dropped most of the file would have no errors
    # either: the tree must reach the last line.
    assert root.end_point[0] >= read(SCRIPTS_DIR / name).rstrip("\n").count("\n")
    assert psast.top_level_statements(root), name


@pytest.mark.parametrize("name", EXPECTED_SCRIPTS)
def test_script_passes_static_checks(name):
    problems = check_script(read(SCRIPTS_DIR / name))
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("name", EXPECTED_SCRIPTS)
def test_script_actually_changes_something_under_a_guard(name):
    # Every script runs at least one state-changing command (the collector
    # removes its temporary directory); make sure the detector sees them, or
    # the guard check would prove nothing.
    calls = state_changing_calls(read(SCRIPTS_DIR / name))
    assert calls, f"{name}: no state-changing command detected"
    assert all(is_should_process_guarded(c.node) for c in calls)


@pytest.mark.parametrize("name", EXPECTED_SCRIPTS + ["WeirCommon.psm1"])
def test_scripts_are_ascii_and_have_no_machine_paths(name):
    problems = check_ascii_and_paths(read(SCRIPTS_DIR / name))
    assert problems == [], f"{name}: {problems}"


def test_common_module_is_read_only_and_well_formed():
    problems = check_common_module(read(COMMON_MODULE))
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("name", EXPECTED_SCRIPTS)
def test_shared_helpers_come_from_the_module(name):
    problems = check_uses_common_module(read(SCRIPTS_DIR / name))
    assert problems == [], "\n".join(problems)


def test_certificate_finder_accepts_both_package_shapes():
    problems = check_certificate_finder(read(COMMON_MODULE))
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("name", CERTIFICATE_USERS)
def test_scripts_needing_the_certificate_use_the_finder(name):
    problems = check_certificate_user(read(SCRIPTS_DIR / name))
    assert problems == [], "\n".join(problems)


def test_no_script_requires_one_certificate_name(script_texts):
    # Install-Weir's list of required package files must not name either
    # certificate: the finder decides.
    assert "$PackageFiles" in script_texts["Install-Weir.ps1"]
    for name, text in script_texts.items():
        problems = check_package_files(text)
        assert problems == [], f"{name}: {problems}"


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


def test_windbg_script():
    problems = check_windbg(read(WINDBG_SCRIPT))
    assert problems == [], "\n".join(problems)


def check_workflow(text: str) -> list[str]:
    """The shipped GitHub workflow: a Linux job running the project's CI
    script and a Windows job (a runner named windows-..., directly or through
    its matrix) running both WDK flows and uploading the package."""
    problems = []
    if "bash .ci/run" not in text:
        problems.append("no job runs bash .ci/run")
    direct = re.search(r"^\s*runs-on:\s*windows-\S+", text, re.M)
    matrix = re.search(r"^\s*runs-on:\s*\$\{\{\s*matrix\.runner\s*\}\}", text, re.M) and re.search(
        r"^\s*(-\s*)?runner:\s*windows-\S+", text, re.M)
    if not (direct or matrix):
        problems.append("no Windows job (runs-on: windows-...)")
    if not re.search(r"^\s*run:\s*cargo make\b", text, re.M):
        problems.append("no step runs cargo make")
    if not re.search(r"^\s*run:\s*cargo wdk build\b", text, re.M):
        problems.append("no step runs cargo wdk build")
    if not re.search(r"^\s*path:.*weir_package", text, re.M):
        problems.append("no artifact path with weir_package")
    if "\t" in text:
        problems.append("YAML must not contain tabs")
    return problems


def test_workflow_shape():
    problems = check_workflow(read(WORKFLOW))
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("old, new, expected", [
    ("bash .ci/run", "bash ci.sh", ".ci/run"),
    ("runner: windows-", "runner: macos-", "Windows job"),
    ("run: cargo make", "run: cargo build", "cargo make"),
    ("run: cargo wdk build", "run: cargo build", "cargo wdk build"),
    ("weir_package", "package", "weir_package"),
])
def test_workflow_checker_rejects(old, new, expected):
    text = read(WORKFLOW)
    assert old in text, old
    problems = check_workflow(text.replace(old, new))
    assert any(expected in p for p in problems), problems
    assert any("tabs" in p for p in check_workflow(text + "\tx: 1\n"))


# ---------------------------------------------------------------------------
# Every checker rejects broken input
# ---------------------------------------------------------------------------


def test_good_snippets_pass():
    assert check_script(GOOD) == []
    assert check_common_module(GOOD_MODULE) == []
    assert check_certificate_finder(GOOD_MODULE) == []
    assert check_certificate_user(GOOD_CERT_USER) == []
    assert check_uses_common_module(GOOD_CERT_USER) == []


def test_text_in_strings_and_comments_is_not_code():
    cmds = psast.commands(psast.parse(GOOD))
    names = [c.name for c in cmds]
    # pnputil appears three times in GOOD: in a string, in a comment, and once as code.
    assert names.count("pnputil") == 1
    assert [shape(c) for c in cmds if c.name == "bcdedit"] == [("bcdedit", "/enum", "<arg>")]


@pytest.mark.parametrize("broken", [
    "if ($a) {\n  x\n",
    "if ($a)) { }\n",
    "$x = @(1, 2]\n",
    "Write-Host 'unterminated\n",
    'Write-Host "open $(Get-Date) \n',
    "<# never closed\n",
    "$s = @'\nno end\n",
    "function f {\n",
    "foreach ($x $y) { }\n",
])
def test_syntax_check_rejects(broken):
    assert check_syntax(broken), broken
    # ... and so does the whole script check.
    assert check_script(GOOD + broken), broken


def test_syntax_check_ignores_brackets_in_strings_and_comments():
    ok = "Write-Host '{ ( [' # ) } ]\n$a = \"}$(\"{\")(\"\n<# { #>\n$h = @'\n{{{\n'@\n"
    assert check_syntax(ok) == []


@pytest.mark.parametrize("snippet", [
    "& pnputil.exe /add-driver x.inf /install\n",
    "if ($x) { pnputil /delete-driver oem1.inf /uninstall }\n",
    "if (-not $PSCmdlet.ShouldProcess('x', 'y')) { sc.exe delete weir }\n",
    "if (!$PSCmdlet.ShouldProcess('x', 'y')) { sc.exe delete weir }\n",
    "if ($PSCmdlet.ShouldProcess('x', 'y')) { 'ok' } else { bcdedit /set testsigning on }\n",
    "if ($PSCmdlet.ShouldProcess('x', 'y')) { 'ok' }\n& $devcon dp_add x.inf\n",
    "if ($PSCmdlet.ShouldProcess('x', 'y') -or $force) { & $devcon dp_add x.inf }\n",
    "if ($PSCmdlet.ShouldProcess('x', 'y') -eq $false) { & sc.exe stop weir }\n",
    "if ($PSCmdlet.ShouldProcess('x', 'y')) { }\nif ($other) { & sc.exe stop weir }\n",
    "if ($PSCmdlet.ShouldProcess((& sc.exe stop weir), 'y')) { }\n",
    "Import-Certificate -FilePath a.cer -CertStoreLocation Cert:\\LocalMachine\\Root\n",
    "Get-ChildItem | ForEach-Object { Remove-Item $_ }\n",
    "function Stop-It { & sc.exe stop 'weir' }\n",
    "while ($PSCmdlet.ShouldProcess('x', 'y')) { & sc.exe start weir }\n",
    "if ($PSCmdlet.ShouldContinue('x', 'y')) { & sc.exe start weir }\n",
])
def test_guard_check_rejects(snippet):
    assert check_syntax(snippet) == [], snippet
    assert find_unguarded(snippet), snippet


@pytest.mark.parametrize("snippet", [
    "if ($PSCmdlet.ShouldProcess('x', 'y')) { & pnputil.exe /add-driver x.inf /install }\n",
    "if ($a) { } elseif ($PSCmdlet.ShouldProcess('x', 'y')) {\n  if ($f) { & $devcon -f dp_delete oem1.inf }\n}\n",
    "& pnputil.exe /enum-drivers\n& sc.exe query weir\n& bcdedit /enum '{current}'\n",
    "Write-Host 'pnputil /add-driver x /install'\n# sc.exe delete weir\n",
    "if ($ok -and $PSCmdlet.ShouldProcess('x', 'y')) {\n  Remove-Item -LiteralPath $d -Recurse\n}\n",
    "if ((($PSCmdlet.ShouldProcess('x', 'y')))) { foreach ($p in $ps) { & sc.exe stop $p } }\n",
])
def test_guard_check_accepts(snippet):
    assert check_syntax(snippet) == [], snippet
    assert find_unguarded(snippet) == [], snippet


@pytest.mark.parametrize("snippet, changing", [
    ("& sc.exe stop weir", True),
    ("& sc.exe query weir", False),
    ("& bcdedit.exe /set testsigning on", True),
    ("& bcdedit.exe /enum '{current}'", False),
    ("& bcdedit.exe /dbgsettings", False),
    ("& bcdedit.exe /dbgsettings net hostip:1.2.3.4 port:50000", True),
    ("& pnputil.exe /enum-drivers", False),
    ("& pnputil.exe /delete-driver oem1.inf", True),
    ("& $devcon -f dp_delete oem1.inf", True),
    ("& $devcon find *", False),
    ("Remove-Item -LiteralPath x", True),
    ("Get-Item -LiteralPath x", False),
])
def test_state_change_detector(snippet, changing):
    cmds = psast.commands(psast.parse(snippet + "\n"))
    assert len(cmds) == 1
    assert changes_state(cmds[0]) is changing


@pytest.mark.parametrize("mutate, expected", [
    (lambda t: _without(t, "[CmdletBinding(SupportsShouldProcess)]\n"), "CmdletBinding"),
    (lambda t: _without(t, "[CmdletBinding(SupportsShouldProcess)]\n").replace(
        "Set-StrictMode", "[CmdletBinding(SupportsShouldProcess)]\nSet-StrictMode", 1), "syntax error"),
    (lambda t: _without(t, "SupportsShouldProcess)]", ")]"), "SupportsShouldProcess"),
    (lambda t: _without(t, "SupportsShouldProcess)]", "SupportsShouldProcess = $false)]"), "SupportsShouldProcess"),
    (lambda t: _without(t, "SupportsShouldProcess)]", "ConfirmImpact = 'High')]"), "SupportsShouldProcess"),
    (lambda t: _without(t, "Set-StrictMode -Version Latest\n"), "StrictMode"),
    (lambda t: _without(t, "Set-StrictMode -Version Latest", "Set-StrictMode -Version 1"), "StrictMode"),
    (lambda t: _without(t, "Set-StrictMode -Version Latest\n", "function f { Set-StrictMode -Version Latest }\n"), "StrictMode"),
    (lambda t: _without(t, "Set-StrictMode -Version Latest", "# Set-StrictMode -Version Latest"), "StrictMode"),
    (lambda t: _without(t, "$ErrorActionPreference = 'Stop'\n"), "ErrorActionPreference"),
    (lambda t: _without(t, "$ErrorActionPreference = 'Stop'", "$ErrorActionPreference = 'Continue'"), "ErrorActionPreference"),
    (lambda t: _without(t, "$ErrorActionPreference = 'Stop'\n", "if ($x) { $ErrorActionPreference = 'Stop' }\n"), "ErrorActionPreference"),
    (lambda t: _without(t, "    throw 'Run elevated.'\n", "    Write-Warning 'not admin'\n"), "elevation"),
    (lambda t: _without(t, "if (-not (Test-IsElevated)) {", "if ((Test-IsElevated)) {"), "elevation"),
    (lambda t: _without(t, "if (-not (Test-IsElevated)) {", "if (-not (Test-Other)) {"), "elevation"),
    (lambda t: _without(t, "if (-not (Test-IsElevated)) {\n    throw 'Run elevated.'\n}\n",
                        "function g {\nif (-not (Test-IsElevated)) {\n    throw 'Run elevated.'\n}\n}\n"), "elevation"),
    (lambda t: _without(t, "[Security.Principal.WindowsBuiltInRole]::Administrator", "'Users'"), "IsInRole"),
    (lambda t: _without(t, "[Security.Principal.WindowsBuiltInRole]::Administrator", "[Security.Principal.WindowsBuiltInRole]::User"), "IsInRole"),
    (lambda t: _without(t, ".SYNOPSIS\n    Test.\n"), ".SYNOPSIS"),
    (lambda t: _without(t, ".DESCRIPTION\n    Test script.\n"), ".DESCRIPTION"),
    (lambda t: _without(t, ".EXAMPLE\n"), ".EXAMPLE"),
    (lambda t: _without(t, ".PARAMETER PackageDir\n    Where.\n"), ".PARAMETER PackageDir"),
    (lambda t: t[t.index("#>\n") + 3:], "comment-based help"),
    (lambda t: t[t.index("#>\n") + 3:].replace("$ErrorActionPreference = 'Stop'\n", "$ErrorActionPreference = 'Stop'\n" + t[:t.index("#>\n") + 3]), "comment-based help"),
    (lambda t: _without(t, "if ($PSCmdlet.ShouldProcess($PackageDir, 'pnputil /add-driver')) {", "if ($true) {"), "not guarded"),
    (lambda t: t + "sc query weir\n", "sc.exe, not sc"),
    (lambda t: t + "}\n", "syntax error"),
    (lambda t: t + "if ($x) {\n", "missing"),
])
def test_script_checker_rejects_broken_scripts(mutate, expected):
    problems = check_script(mutate(GOOD))
    assert any(expected in p for p in problems), problems


def test_help_may_follow_line_comments():
    assert check_help("# Good.ps1, a test\n\n" + GOOD) == []


def test_requires_run_as_administrator_satisfies_elevation():
    text = _without(GOOD, "if (-not (Test-IsElevated)) {\n    throw 'Run elevated.'\n}\n")
    assert check_elevation(text) != []
    assert check_elevation("#Requires -RunAsAdministrator\n" + text) == []


def test_parameter_parser():
    text = "param(\n  [Parameter(Mandatory = $true)] [ValidateRange(1, 2)] [int] $A = 1,\n  [switch] $B, $C = $A\n)\n"
    assert script_parameters(text) == ["A", "B", "C"]


@pytest.mark.parametrize("mutate, expected", [
    (lambda t: _without(t, "Set-StrictMode -Version Latest\n"), "StrictMode"),
    (lambda t: t + "& sc.exe stop weir\n", "changes state"),
    (lambda t: t + "Remove-Item -LiteralPath $x\n", "changes state"),
    (lambda t: _without(t, "function Get-WeirServiceState {", "function Get-ServiceState {"), "Get-WeirServiceState is not defined"),
    (lambda t: _without(t, ", 'Find-WeirTestCertificate'"), "Find-WeirTestCertificate is not exported"),
    (lambda t: _without(t, "    return @()\n}", "    return @()\n"), "missing"),
])
def test_common_module_checker_rejects(mutate, expected):
    problems = check_common_module(mutate(GOOD_MODULE))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("snippet, expected", [
    ("Get-WeirServiceState -Name weir\n", "without importing"),
    ("Import-Module -Name (Join-Path $PWD 'WeirCommon.psm1')\nGet-WeirServiceState\n", "without importing"),
    ("Import-Module -Name (Join-Path $PSScriptRoot 'Other.psm1')\nGet-WeirServiceState\n", "without importing"),
    ("function Get-WeirServiceState { 'Running' }\n", "redefines"),
])
def test_common_module_use_checker_rejects(snippet, expected):
    problems = check_uses_common_module(snippet)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("mutate, expected", [
    # Only our name accepted: a WDK-built package would be rejected.
    (lambda t: _without(t, "@('weir-test.cer', 'WDRLocalTestCert.cer')", "@('weir-test.cer')"), "expected"),
    # Only the WDK's name accepted.
    (lambda t: _without(t, "@('weir-test.cer', 'WDRLocalTestCert.cer')", "@('WDRLocalTestCert.cer')"), "expected"),
    # Wrong preference order.
    (lambda t: _without(t, "@('weir-test.cer', 'WDRLocalTestCert.cer')", "@('WDRLocalTestCert.cer', 'weir-test.cer')"), "in this order"),
    (lambda t: _without(t, "foreach ($name in $names)", "foreach ($name in $others)"), "does not loop"),
    (lambda t: _without(t, "-PathType Leaf", "-PathType Container"), "does not return"),
    (lambda t: _without(t, "            return $path\n", "            Write-Host $path\n"), "does not return"),
    (lambda t: _without(t, "    throw \"No test certificate in '$PackageDir': expected weir-test.cer or WDRLocalTestCert.cer.\"\n", "    return $null\n"), "does not throw"),
    (lambda t: _without(t, " or WDRLocalTestCert.cer", ""), "does not name ['WDRLocalTestCert.cer']"),
    (lambda t: _without(t, "function Find-WeirTestCertificate", "function Find-Certificate"), "not defined"),
])
def test_certificate_finder_checker_rejects(mutate, expected):
    problems = check_certificate_finder(mutate(GOOD_MODULE))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("snippet, expected", [
    ("$CertificatePath = Join-Path $PackageDir 'weir-test.cer'\n", "does not call"),
    (GOOD_CERT_USER + "$c = Join-Path $PackageDir 'weir-test.cer'\n", "hard-codes weir-test.cer"),
    (GOOD_CERT_USER + "$c = \"$PackageDir\\WDRLocalTestCert.cer\"\n", "hard-codes WDRLocalTestCert.cer"),
])
def test_certificate_user_checker_rejects(snippet, expected):
    problems = check_certificate_user(snippet)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("snippet, expected", [
    ("$PackageFiles = @('weir.sys', 'weir.inf', 'weir-test.cer')\n", "requires weir-test.cer"),
    ("$PackageFiles = @('weir.sys', \"WDRLocalTestCert.cer\")\n", "requires WDRLocalTestCert.cer"),
])
def test_package_files_checker_rejects(snippet, expected):
    problems = check_package_files(snippet)
    assert any(expected in p for p in problems), problems
    assert check_package_files("$PackageFiles = @('weir.sys', 'weir.inf')\n") == []


@pytest.mark.parametrize("snippet, expected", [
    ("Write-Host 'caf\u00e9'\n", "non-ASCII"),
    ("$p = '/home/me/weir'\n", "path of a build"),
    ("$p = 'C:\\Users\\me\\weir'\n", "path of a build"),
])
def test_ascii_checker_rejects(snippet, expected):
    problems = check_ascii_and_paths(snippet)
    assert any(expected in p for p in problems), problems


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


@pytest.mark.parametrize("mutate, expected", [
    (lambda t: "* a star comment\n" + t, "'*' comments"),
    (lambda t: "$$ a comment; with a semicolon\n" + t, "semicolon"),
    (lambda t: t + ".echo unquoted text\n", "unquoted .echo"),
    (lambda t: t + ".if (1) {\n", "unbalanced braces"),
    (lambda t: t + ".if (1) { r $t0 = 1 }\n.else { r $t0 = 2 }\n", ".else must follow"),
    (lambda t: _without(t, "sxe ld weir.sys\n"), "sxe"),
    (lambda t: _without(t, "ed nt!Kd_IHVNETWORK_Mask 0xf\n"), "Kd_IHVNETWORK_Mask"),
    (lambda t: _without(t, "bu weir!DriverEntry\n"), "DriverEntry"),
])
def test_windbg_checker_rejects_broken_scripts(mutate, expected):
    problems = check_windbg(mutate(read(WINDBG_SCRIPT)))
    assert any(expected in p for p in problems), problems


# ---------------------------------------------------------------------------
# The stored-policy directory: only SYSTEM and Administrators may change it
# ---------------------------------------------------------------------------

POLICY_DIR = "System32\\drivers\\weir"
POLICY_DIR_SIDS = {"S-1-5-18", "S-1-5-32-544"}


def check_policy_dir_acl(text: str) -> list[str]:
    """Install-Weir.ps1 gives %SystemRoot%\\System32\\drivers\\weir a fresh, protected DACL
    (SetAccessRuleProtection($true, $false)) with FullControl for SYSTEM and Administrators and
    nothing else, applied by Set-Acl under a ShouldProcess guard."""
    root = psast.parse(text)
    problems = []
    strings = _strings_in(root)
    if POLICY_DIR not in strings:
        problems.append(f"the stored-policy directory '{POLICY_DIR}' is not named")
    sids = {v for v in strings if v.upper().startswith("S-1-")}
    if sids != POLICY_DIR_SIDS:
        problems.append(f"DACL SIDs are {sorted(sids)}, expected exactly {sorted(POLICY_DIR_SIDS)}")
    protections = psast.member_calls(root, "$acl", "SetAccessRuleProtection")
    if not any(psast.node_text(p).replace(" ", "").lower().endswith("($true,$false)") for p in protections):
        problems.append("no $acl.SetAccessRuleProtection($true, $false): inherited entries would stay")
    if "FullControl" not in strings:
        problems.append("the entries do not grant FullControl")
    if not any("AccessControl.DirectorySecurity" in psast.node_text(n) for n in psast.walk(root)
               if n.type == "command"):
        problems.append("the DACL is not a fresh DirectorySecurity (an existing one would keep other entries)")
    set_acl = [c for c in psast.commands(root) if c.name == "set-acl"]
    if not set_acl:
        problems.append("no Set-Acl applies the DACL")
    for c in set_acl:
        if not is_should_process_guarded(c.node):
            problems.append(f"line {c.line}: Set-Acl is not guarded by ShouldProcess")
    return problems


def check_policy_dir_removed(text: str) -> list[str]:
    """Uninstall-Weir.ps1 removes the stored-policy directory unless -KeepPolicy."""
    root = psast.parse(text)
    problems = []
    if "KeepPolicy" not in script_parameters(text):
        problems.append("no -KeepPolicy parameter")
    if POLICY_DIR not in _strings_in(root):
        problems.append("the stored-policy directory is not named")
    removes = [c for c in psast.commands(root) if c.name == "remove-item"
               and any((w or "").lower() == "-recurse" for w in c.words)]
    if not removes:
        problems.append("no Remove-Item -Recurse of the stored-policy directory")
    for c in removes:
        if not is_should_process_guarded(c.node):
            problems.append(f"line {c.line}: Remove-Item is not guarded by ShouldProcess")
    return problems


def check_fail_closed_released(text: str) -> list[str]:
    """Uninstall-Weir.ps1 releases Weir's fail-closed filters before it deletes anything: it sets
    Parameters\\FailMode to 0 (Set-ItemProperty, guarded) and starts the service (sc.exe start)
    before the first sc.exe delete and pnputil /delete-driver, and throws (so nothing is deleted)
    when that start fails while FailMode was 1."""
    root = psast.parse(text)
    problems = []
    cmds = psast.commands(root)
    sets = [c for c in cmds if c.name == "set-itemproperty" and "FailMode" in [w for w in c.words if w]]
    if not sets:
        problems.append("no Set-ItemProperty of FailMode")
    for c in sets:
        if not is_should_process_guarded(c.node):
            problems.append(f"line {c.line}: Set-ItemProperty FailMode is not guarded by ShouldProcess")
        texts = [psast.node_text(n) for n in c.args]
        if "-Value" not in texts or texts[texts.index("-Value") + 1 : texts.index("-Value") + 2] != ["0"]:
            problems.append(f"line {c.line}: FailMode is not set to 0")
    starts = [c for c in cmds if c.name == "sc" and "start" in [w for w in c.words if w]]
    deletes = [c for c in cmds if (c.name == "sc" and "delete" in [w for w in c.words if w])
               or (c.name == "pnputil" and "/delete-driver" in [w for w in c.words if w])]
    if not starts:
        problems.append("no sc.exe start after FailMode = 0")
    if sets and starts and deletes:
        first_delete = min(c.line for c in deletes)
        if not (max(c.line for c in sets) < min(c.line for c in starts) < first_delete):
            problems.append("FailMode = 0 and sc.exe start do not come before the first delete")
    throws = [n for n in psast.walk(root) if n.type == "flow_control_statement" and psast.node_text(n).startswith("throw")
              and "Nothing was deleted" in psast.node_text(n)]
    if not throws or (starts and deletes and not any(starts[0].line < psast.line(t) < min(c.line for c in deletes) for t in throws)):
        problems.append("no throw (before any delete) when the FailMode = 0 start fails")
    return problems


def test_uninstall_releases_the_fail_closed_filters_before_deleting(script_texts):
    assert check_fail_closed_released(script_texts["Uninstall-Weir.ps1"]) == []


@pytest.mark.parametrize("old,new,expected", [
    ("    Set-ItemProperty -LiteralPath $ParametersKey -Name 'FailMode' -Value 0 -Type DWord\n", "", "no Set-ItemProperty"),
    ("-Name 'FailMode' -Value 0 -Type DWord", "-Name 'FailMode' -Value 1 -Type DWord", "not set to 0"),
    ("elseif ($PSCmdlet.ShouldProcess($ServiceName, 'FailMode = 0, then start once to delete the fail-closed filters')) {",
     "elseif ($true) {", "not guarded"),
    ("    $output = & sc.exe start $ServiceName\n", "", "no sc.exe start"),
    ("        throw (\"sc.exe start $ServiceName (FailMode = 0)", "        Write-Warning (\"sc.exe start $ServiceName (FailMode = 0)", "no throw"),
])
def test_fail_closed_release_checker_rejects(script_texts, old, new, expected):
    text = script_texts["Uninstall-Weir.ps1"]
    assert old in text, old
    problems = check_fail_closed_released(text.replace(old, new))
    assert any(expected in p for p in problems), problems


def test_fail_closed_release_checker_rejects_a_release_after_the_delete(script_texts):
    text = script_texts["Uninstall-Weir.ps1"]
    step0 = text[text.index("# --- 0. Release"):text.index("# --- 1. Stop")]
    moved = text.replace(step0, "")
    moved = moved.replace("# --- 4. Remove the stored policy", step0 + "# --- 4. Remove the stored policy")
    assert any("before the first delete" in p or "before any delete" in p for p in check_fail_closed_released(moved))


def test_install_gives_the_policy_directory_a_system_and_administrators_only_dacl(script_texts):
    assert check_policy_dir_acl(script_texts["Install-Weir.ps1"]) == []


def test_uninstall_removes_the_stored_policy_unless_kept(script_texts):
    assert check_policy_dir_removed(script_texts["Uninstall-Weir.ps1"]) == []


@pytest.mark.parametrize("old,new,expected", [
    ("$PolicyDirSids = @('S-1-5-18', 'S-1-5-32-544')", "$PolicyDirSids = @('S-1-5-18', 'S-1-5-32-544', 'S-1-5-32-545')", "DACL SIDs"),
    ("$PolicyDirSids = @('S-1-5-18', 'S-1-5-32-544')", "$PolicyDirSids = @('S-1-5-18')", "DACL SIDs"),
    ("$acl.SetAccessRuleProtection($true, $false)", "$acl.SetAccessRuleProtection($false, $true)", "SetAccessRuleProtection"),
    ("'FullControl'", "'ReadAndExecute'", "FullControl"),
    ("New-Object System.Security.AccessControl.DirectorySecurity", "Get-Acl -LiteralPath $PolicyDir", "fresh DirectorySecurity"),
    ("    Set-Acl -LiteralPath $PolicyDir -AclObject $acl\n", "", "no Set-Acl"),
    ("if ($PSCmdlet.ShouldProcess($PolicyDir, 'create with a SYSTEM and Administrators only DACL')) {", "if ($true) {", "not guarded"),
    ("'System32\\drivers\\weir'", "'System32\\weir'", "not named"),
])
def test_policy_dir_acl_checker_rejects(script_texts, old, new, expected):
    text = script_texts["Install-Weir.ps1"]
    assert old in text, old
    problems = check_policy_dir_acl(text.replace(old, new))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("old,new,expected", [
    ("    [switch] $KeepPolicy\n", "", "KeepPolicy"),
    ("        Remove-Item -LiteralPath $PolicyDir -Recurse -Force\n", "", "no Remove-Item"),
    ("elseif ($PSCmdlet.ShouldProcess($PolicyDir, 'delete the stored policy')) {", "else {", "not guarded"),
])
def test_policy_dir_removal_checker_rejects(script_texts, old, new, expected):
    text = script_texts["Uninstall-Weir.ps1"]
    assert old in text, old
    text = text.replace(old, new)
    if old.strip().startswith("[switch]"):
        text = text.replace("[int] $StopTimeoutSeconds = 30,", "[int] $StopTimeoutSeconds = 30")
    problems = check_policy_dir_removed(text)
    assert any(expected in p for p in problems), problems
