"""Install-Weir.ps1: the stored-policy directory gets a DACL that lets only
SYSTEM and Administrators change it.

The checker is also fed deliberately broken copies of the script, which it
must reject.
"""

from __future__ import annotations

import pytest

import psast
from script_rules import POLICY_DIR, _strings_in, is_should_process_guarded

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


def test_install_gives_the_policy_directory_a_system_and_administrators_only_dacl(script_texts):
    assert check_policy_dir_acl(script_texts["Install-Weir.ps1"]) == []


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
