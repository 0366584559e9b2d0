"""Every test-VM script, on its real file and on broken snippets: the script
files are the expected ones, the grammar is the pinned one, each parses
without error nodes, passes the rules in script_rules.py (help,
CmdletBinding, StrictMode, ErrorActionPreference, elevation, no bare ``sc``,
ShouldProcess guards), and is ASCII with no machine paths.

Each check is also fed deliberately broken snippets, which it must reject.
"""

from __future__ import annotations

import re

import pytest

import psast
from script_rules import (
    COMMON_MODULE,
    EXPECTED_SCRIPTS,
    GOOD,
    ROOT,
    SCRIPTS_DIR,
    WINDBG_SCRIPT,
    _without,
    changes_state,
    check_elevation,
    check_help,
    check_script,
    check_syntax,
    find_unguarded,
    is_should_process_guarded,
    read,
    script_parameters,
    shape,
    state_changing_calls,
)


def check_ascii_and_paths(text: str) -> list[str]:
    problems = []
    if not text.isascii():
        problems.append("non-ASCII characters (Windows PowerShell 5.1 reads BOM-less files as ANSI)")
    if re.search(r"/work/|/home/|/root/|[A-Z]:\\Users\\", text):
        problems.append("a path of a build or user machine")
    return problems


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


# ---------------------------------------------------------------------------
# Every checker rejects broken input
# ---------------------------------------------------------------------------


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


@pytest.mark.parametrize("snippet, expected", [
    ("Write-Host 'caf\u00e9'\n", "non-ASCII"),
    ("$p = '/home/me/weir'\n", "path of a build"),
    ("$p = 'C:\\Users\\me\\weir'\n", "path of a build"),
])
def test_ascii_checker_rejects(snippet, expected):
    problems = check_ascii_and_paths(snippet)
    assert any(expected in p for p in problems), problems
