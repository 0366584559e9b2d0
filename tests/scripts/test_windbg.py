"""The WinDbg script (scripts/weir.windbg.txt): not PowerShell, so its own
line rules for a script run with ``$$><`` (all lines joined by semicolons),
and the commands the debugging procedure needs.

The checker is also fed deliberately broken scripts, which it must reject.
"""

from __future__ import annotations

import re

import pytest

from script_rules import WINDBG_SCRIPT, _without, read


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


def test_windbg_script():
    problems = check_windbg(read(WINDBG_SCRIPT))
    assert problems == [], "\n".join(problems)


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
