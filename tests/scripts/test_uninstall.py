"""Uninstall-Weir.ps1: it releases Weir's fail-closed filters before it
deletes anything, and removes the stored-policy directory unless -KeepPolicy.

The checkers are also fed deliberately broken copies of the script, which
they must reject.
"""

from __future__ import annotations

import pytest

import psast
from script_rules import POLICY_DIR, _strings_in, is_should_process_guarded, script_parameters


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


def test_uninstall_removes_the_stored_policy_unless_kept(script_texts):
    assert check_policy_dir_removed(script_texts["Uninstall-Weir.ps1"]) == []


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
