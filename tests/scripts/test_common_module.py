"""WeirCommon.psm1 and the certificate lookup.

The module defines and exports the shared helpers, changes nothing itself
(the scripts importing it promise -WhatIf), and the scripts import it from
$PSScriptRoot instead of redefining its functions. The package's test
certificate is found under either name a package can have (``weir-test.cer``
from ``cargo xtask package``, preferred, or ``WDRLocalTestCert.cer`` from the
WDK's ``cargo make``), by one read-only helper in WeirCommon.psm1 that every
script needing the certificate uses.

Each check is also fed deliberately broken snippets, which it must reject.
"""

from __future__ import annotations

import re

import pytest

import psast
from script_rules import (
    CERTIFICATE_NAMES,
    COMMON_MODULE,
    EXPECTED_SCRIPTS,
    GOOD,
    SCRIPTS_DIR,
    _strings_in,
    _without,
    check_script,
    check_strict_mode,
    check_syntax,
    read,
    state_changing_calls,
)

COMMON_FUNCTIONS = ["ConvertFrom-WeirEnumDrivers", "Get-WeirServiceState", "Find-WeirTestCertificate"]

# Scripts that need the certificate.
CERTIFICATE_USERS = ["Enable-TestSigning.ps1", "Install-Weir.ps1"]
CERTIFICATE_FINDER = "Find-WeirTestCertificate"


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


# ---------------------------------------------------------------------------
# Tests on the real files
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Every checker rejects broken input
# ---------------------------------------------------------------------------


def test_good_snippets_pass():
    assert check_script(GOOD) == []
    assert check_common_module(GOOD_MODULE) == []
    assert check_certificate_finder(GOOD_MODULE) == []
    assert check_certificate_user(GOOD_CERT_USER) == []
    assert check_uses_common_module(GOOD_CERT_USER) == []


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
