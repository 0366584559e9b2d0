"""Static checks of the test-VM PowerShell scripts and the WinDbg script.

There is no PowerShell on the project's Linux machines, so nothing here runs
the scripts. Instead a small scanner understands enough PowerShell syntax
(comments, block comments, single- and double-quoted strings, here-strings,
``$( )`` sub-expressions inside strings) to tell code from text, and the
checks below run on the code only:

* every script is an advanced script with ``SupportsShouldProcess``, sets
  ``Set-StrictMode -Version Latest`` and ``$ErrorActionPreference = 'Stop'``,
  refuses to run unelevated, and starts with comment-based help that has
  ``.SYNOPSIS``, ``.DESCRIPTION``, ``.EXAMPLE`` and a ``.PARAMETER`` per parameter;
* every state-changing command (pnputil, sc.exe, bcdedit, devcon,
  Import-Certificate, Remove-Item) sits inside a block opened by
  ``if (... $PSCmdlet.ShouldProcess(...))`` (not a negated one, not its else);
* braces, parentheses and brackets balance outside strings and comments, and
  no string or comment is left open;
* ``sc`` is never used bare (in PowerShell it is Set-Content);
* each command line documented in docs/test-vm.md has the same shape (command,
  switches, sub-commands) as a command in a script, and each script call in the
  doc names an existing script and existing parameters.

Each checker is also fed deliberately broken snippets, which it must reject.
Run with: python3 -m pytest tests/scripts
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = ROOT / "scripts"
TEST_VM_DOC = ROOT / "docs" / "test-vm.md"
DEBUGGING_DOC = ROOT / "docs" / "debugging.md"
WINDBG_SCRIPT = SCRIPTS_DIR / "weir.windbg.txt"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"

EXPECTED_SCRIPTS = [
    "Enable-TestSigning.ps1",
    "Install-Weir.ps1",
    "Stage-Weir.ps1",
    "Uninstall-Weir.ps1",
    "Collect-WeirLogs.ps1",
]

COMMON_PARAMETERS = {
    "whatif", "confirm", "verbose", "debug", "erroraction", "warningaction",
    "informationaction", "errorvariable", "warningvariable", "informationvariable",
    "outvariable", "outbuffer", "pipelinevariable",
}


# ---------------------------------------------------------------------------
# Scanner: which characters are code
# ---------------------------------------------------------------------------


class ScanError(Exception):
    """A string or comment that never ends."""


def mask(text: str) -> str:
    """Returns ``text`` with every character of comments and strings (their
    delimiters included) replaced by a space; newlines are kept, so offsets
    and line numbers are unchanged. Raises ScanError on an unterminated
    string, here-string or block comment."""
    out = list(text)
    n = len(text)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    # Each frame: ("code", paren_depth) or ("dq", start) / ("hdq", start).
    # Code inside a string's $( ) is blanked too (it is part of the string).
    stack: list[list] = [["code", 0, 0]]
    i = 0
    while i < n:
        frame = stack[-1]
        kind = frame[0]
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if kind == "code":
            in_string = len(stack) > 1
            if c == "<" and nxt == "#":
                end = text.find("#>", i + 2)
                if end < 0:
                    raise ScanError(f"unterminated block comment at offset {i}")
                blank(i, end + 2)
                i = end + 2
                continue
            if c == "#" and (i == 0 or text[i - 1] in " \t\r\n;({}|"):
                end = text.find("\n", i)
                end = n if end < 0 else end
                blank(i, end)
                i = end
                continue
            if c == "@" and nxt in "'\"" and text[i + 2:i + 3] in ("\n", "\r"):
                close = "\n" + nxt + "@"
                end = text.find(close, i + 2)
                if end < 0:
                    raise ScanError(f"unterminated here-string at offset {i}")
                if nxt == "'":
                    blank(i, end + 3)
                    i = end + 3
                else:
                    # Expandable here-strings may hold $( ); treat as opaque.
                    blank(i, end + 3)
                    i = end + 3
                continue
            if c == "'" or c in "\u2018\u2019":
                j = i + 1
                while True:
                    if j >= n:
                        raise ScanError(f"unterminated single-quoted string at offset {i}")
                    if text[j] == "'" and text[j + 1:j + 2] == "'":
                        j += 2
                        continue
                    if text[j] == "'":
                        break
                    j += 1
                blank(i, j + 1)
                i = j + 1
                continue
            if c == '"':
                stack.append(["dq", i, 0])
                blank(i, i + 1)
                i += 1
                continue
            if in_string:
                if c == "(":
                    frame[1] += 1
                elif c == ")":
                    if frame[1] == 0:
                        stack.pop()  # end of $( ) — back in the string
                    else:
                        frame[1] -= 1
                blank(i, i + 1)
            i += 1
            continue
        # inside a double-quoted string
        if c == "`":
            blank(i, i + 2)
            i += 2
            continue
        if c == '"':
            if nxt == '"':
                blank(i, i + 2)
                i += 2
                continue
            stack.pop()
            blank(i, i + 1)
            i += 1
            continue
        if c == "$" and nxt == "(":
            stack.append(["code", 0, 0])
            blank(i, i + 2)
            i += 2
            continue
        blank(i, i + 1)
        i += 1
    if len(stack) != 1:
        raise ScanError(f"unterminated double-quoted string starting at offset {stack[1][1]}")
    return "".join(out)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


PAIRS = {"{": "}", "(": ")", "[": "]"}


def check_balance(text: str) -> list[str]:
    """Problems with (), {} and [] outside strings and comments."""
    try:
        code = mask(text)
    except ScanError as exc:
        return [str(exc)]
    problems = []
    stack: list[tuple[str, int]] = []
    for i, c in enumerate(code):
        if c in PAIRS:
            stack.append((c, i))
        elif c in PAIRS.values():
            if not stack:
                problems.append(f"line {line_of(text, i)}: '{c}' closes nothing")
                continue
            opener, at = stack.pop()
            if PAIRS[opener] != c:
                problems.append(
                    f"line {line_of(text, i)}: '{c}' closes '{opener}' from line {line_of(text, at)}")
    for opener, at in stack:
        problems.append(f"line {line_of(text, at)}: '{opener}' is never closed")
    return problems


def open_braces_at(code: str, offset: int) -> list[int]:
    """Offsets of the '{' enclosing ``offset``, innermost last."""
    stack: list[int] = []
    for i in range(offset):
        c = code[i]
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            stack.pop()
    return stack


def matching_open_paren(code: str, close: int) -> int | None:
    depth = 0
    for i in range(close, -1, -1):
        if code[i] == ")":
            depth += 1
        elif code[i] == "(":
            depth -= 1
            if depth == 0:
                return i
    return None


def matching_close(code: str, open_at: int) -> int | None:
    opener = code[open_at]
    closer = PAIRS[opener]
    depth = 0
    for i in range(open_at, len(code)):
        if code[i] == opener:
            depth += 1
        elif code[i] == closer:
            depth -= 1
            if depth == 0:
                return i
    return None


def block_header(code: str, brace: int) -> tuple[str, str] | None:
    """For a '{' preceded by ``keyword ( condition )``, returns (keyword,
    condition); else None."""
    j = brace - 1
    while j >= 0 and code[j].isspace():
        j -= 1
    if j < 0 or code[j] != ")":
        return None
    start = matching_open_paren(code, j)
    if start is None:
        return None
    k = start - 1
    while k >= 0 and code[k] in " \t":
        k -= 1
    m = re.search(r"([A-Za-z]+)$", code[max(0, k - 20):k + 1])
    if not m:
        return None
    return m.group(1).lower(), code[start + 1:j]


SHOULD_PROCESS = re.compile(r"\$PSCmdlet\.ShouldProcess\s*\(", re.IGNORECASE)
NEGATED = re.compile(r"(-not\s*\(?\s*|!\s*\(?\s*)\$PSCmdlet\.ShouldProcess", re.IGNORECASE)


def is_guarded(code: str, offset: int) -> bool:
    """True if some block enclosing ``offset`` is the body of an
    ``if``/``elseif`` whose condition calls $PSCmdlet.ShouldProcess(...)
    without negating it."""
    for brace in reversed(open_braces_at(code, offset)):
        header = block_header(code, brace)
        if header is None:
            continue
        keyword, condition = header
        if keyword in ("if", "elseif") and SHOULD_PROCESS.search(condition) and not NEGATED.search(condition):
            return True
    return False


# ---------------------------------------------------------------------------
# State-changing commands
# ---------------------------------------------------------------------------

# Command token (found in code) -> argument pattern (searched in the rest of
# the statement, strings included) that makes the call change the system.
# None means every call changes the system.
STATE_CHANGING = [
    (re.compile(r"(?<![\w.$-])pnputil(?:\.exe)?(?![\w-])", re.I),
     re.compile(r"(?:^|\s)[/-](?:add-driver|delete-driver|install|uninstall|remove-device|disable-device|restart-device)\b", re.I)),
    (re.compile(r"(?<![\w.$-])sc\.exe(?![\w-])", re.I),
     re.compile(r"(?:^|\s)['\"]?(?:start|stop|delete|create|config|pause|continue|failure|sdset|description|control)\b", re.I)),
    (re.compile(r"(?<![\w.$-])bcdedit(?:\.exe)?(?![\w-])", re.I),
     re.compile(r"(?:^|\s)['\"]?/(?:set|deletevalue|delete|create|copy|import|debug|bootdebug|bootsequence|default|dbgsettings\s+\w)", re.I)),
    (re.compile(r"(?<![\w.-])\$?devcon(?:\.exe)?(?![\w-])", re.I),
     re.compile(r"(?:^|\s)['\"]?(?:dp_add|dp_delete|install|update|updateni|remove|rescan|enable|disable|restart|sethwid|classfilter)\b", re.I)),
    (re.compile(r"(?<![\w.$-])Import-Certificate(?![\w-])", re.I), None),
    (re.compile(r"(?<![\w.$-])Remove-Item(?![\w-])", re.I), None),
]


def statement_rest(text: str, offset: int) -> str:
    """The original text from ``offset`` to the end of its line."""
    end = text.find("\n", offset)
    return text[offset:] if end < 0 else text[offset:end]


def state_changing_calls(text: str) -> list[tuple[int, str]]:
    """(offset, line text) of every state-changing command in code."""
    code = mask(text)
    calls = []
    for command, args in STATE_CHANGING:
        for m in command.finditer(code):
            rest = statement_rest(text, m.end())
            if args is None or args.search(rest):
                calls.append((m.start(), statement_rest(text, m.start()).strip()))
    return sorted(calls)


def find_unguarded(text: str) -> list[str]:
    code = mask(text)
    return [f"line {line_of(text, at)}: {line}" for at, line in state_changing_calls(text)
            if not is_guarded(code, at)]


# ---------------------------------------------------------------------------
# Script-level checks
# ---------------------------------------------------------------------------


def depth_zero(code: str, offset: int) -> bool:
    return not open_braces_at(code, offset)


def find_param_block(code: str) -> tuple[int, int] | None:
    """The script's top-level ``param( ... )`` as (open paren, close paren)."""
    for m in re.finditer(r"(?<![\w-])param\s*\(", code, re.I):
        if depth_zero(code, m.start()):
            open_at = m.end() - 1
            close = matching_close(code, open_at)
            if close is not None:
                return open_at, close
    return None


def script_parameters(text: str) -> list[str]:
    """Names of the script's parameters (top-level param block)."""
    code = mask(text)
    block = find_param_block(code)
    if block is None:
        return []
    open_at, close = block
    names = []
    paren = bracket = 0
    i = open_at + 1
    while i < close:
        c = code[i]
        if c == "(":
            paren += 1
        elif c == ")":
            paren -= 1
        elif c == "[":
            bracket += 1
        elif c == "]":
            bracket -= 1
        elif c == "$" and paren == 0 and bracket == 0:
            m = re.match(r"\$(\w+)", code[i:])
            before = code[open_at + 1:i].rstrip()
            if m and (before == "" or before[-1] in "],("):
                if m.group(1).lower() not in ("true", "false", "null"):
                    names.append(m.group(1))
        i += 1
    return names


def check_cmdletbinding(text: str) -> list[str]:
    code = mask(text)
    block = find_param_block(code)
    m = re.search(r"\[CmdletBinding\s*\(([^)]*)\)\s*\]", code, re.I)
    if not m or not depth_zero(code, m.start()):
        return ["no script-level [CmdletBinding(...)]"]
    if not re.search(r"\bSupportsShouldProcess\b(?!\s*=\s*\$false)", m.group(1), re.I):
        return ["[CmdletBinding()] lacks SupportsShouldProcess"]
    if block is None or m.start() > block[0]:
        return ["[CmdletBinding(SupportsShouldProcess)] must come before the script's param()"]
    return []


def top_level_statements(text: str) -> list[tuple[str, str]]:
    """(code line, original line) of lines that start outside any brace."""
    code = mask(text)
    result = []
    offset = 0
    for line in text.split("\n"):
        code_line = code[offset:offset + len(line)]
        if code_line.strip() and depth_zero(code, offset):
            result.append((code_line.strip(), line.strip()))
        offset += len(line) + 1
    return result


def check_strict_mode(text: str) -> list[str]:
    for code_line, _ in top_level_statements(text):
        if re.fullmatch(r"Set-StrictMode\s+-Version\s+Latest", code_line, re.I):
            return []
    return ["no top-level 'Set-StrictMode -Version Latest'"]


def check_error_action(text: str) -> list[str]:
    for code_line, line in top_level_statements(text):
        if re.match(r"\$ErrorActionPreference\s*=", code_line, re.I):
            if re.fullmatch(r"\$ErrorActionPreference\s*=\s*(['\"])Stop\1", line, re.I):
                return []
            return [f"$ErrorActionPreference is set to something other than 'Stop': {line}"]
    return ["no top-level $ErrorActionPreference = 'Stop'"]


def check_elevation(text: str) -> list[str]:
    """An administrator check whose failure throws (or exits), run at top level."""
    if re.search(r"^#Requires\s+-RunAsAdministrator\b", text, re.I | re.M):
        return []
    code = mask(text)
    role_check = re.compile(r"IsInRole\s*\(\s*\[Security\.Principal\.WindowsBuiltInRole\]::Administrator", re.I)
    # Names of functions whose body performs the role check.
    checkers = []
    for m in re.finditer(r"function\s+([\w-]+)\s*\{", code, re.I):
        close = matching_close(code, m.end() - 1)
        if close is not None and role_check.search(code[m.end():close]):
            checkers.append(m.group(1))
    if not role_check.search(code):
        return ["no IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator) check"]
    names = [re.escape(n) for n in checkers] + [r"\$\w+\.IsInRole"]
    uses = re.compile(r"-not\s*\(?\s*(?:" + "|".join(names) + r")", re.I)
    for m in re.finditer(r"\bif\s*\(", code, re.I):
        if not depth_zero(code, m.start()):
            continue
        close = matching_close(code, m.end() - 1)
        if close is None or not uses.search(code[m.end():close]):
            continue
        brace = code.find("{", close)
        end = matching_close(code, brace) if brace >= 0 else None
        if end is not None and re.search(r"\b(throw|exit)\b", code[brace:end], re.I):
            return []
    return ["the elevation check is never used at top level to throw/exit when not elevated"]


def check_help(text: str) -> list[str]:
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped.startswith("<#"):
        return ["the script does not start with a <# ... #> comment-based help block"]
    end = stripped.find("#>")
    if end < 0:
        return ["unterminated help block"]
    help_text = stripped[2:end]
    problems = [f"help lacks {kw}" for kw in (".SYNOPSIS", ".DESCRIPTION", ".EXAMPLE")
                if not re.search(r"^\s*" + re.escape(kw) + r"\b", help_text, re.M)]
    documented = {p.lower() for p in re.findall(r"^\s*\.PARAMETER\s+(\w+)", help_text, re.M)}
    for name in script_parameters(text):
        if name.lower() not in documented:
            problems.append(f"help has no .PARAMETER {name}")
    return problems


def check_no_bare_sc(text: str) -> list[str]:
    """``sc`` in PowerShell is the Set-Content alias; the service tool is sc.exe."""
    code = mask(text)
    return [f"line {line_of(text, m.start())}: use sc.exe, not sc"
            for m in re.finditer(r"(?:^|[;&|{(=]\s*|^\s+)(sc)(?=\s+\w)", code, re.M)]


def check_script(text: str) -> list[str]:
    problems = []
    problems += check_balance(text)
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
# Docs <-> scripts
# ---------------------------------------------------------------------------

TRACKED = re.compile(r"^(pnputil|sc|bcdedit|devcon|netsh|Import-Certificate)(\.exe)?$", re.I)


def tokens(line: str) -> list[str]:
    """Splits a command line on blanks, keeping quoted text together and
    stopping at a pipe, a semicolon, a redirection or a closing brace."""
    out = []
    for m in re.finditer(r"'[^']*'|\"[^\"]*\"|[^\s'\"]+", line):
        tok = m.group(0)
        if tok in ("|", ";", "}", "2>&1", ")") or tok.startswith("|"):
            break
        out.append(tok)
    return out


def shape(words: list[str]) -> tuple[str, ...] | None:
    """A command's shape: its name, then switches and sub-commands as
    written, every other argument (paths, names, variables) as '<arg>'."""
    words = [w for w in words if w != "&"]
    if not words:
        return None
    name = re.sub(r"\.exe$", "", words[0].lstrip("$"), flags=re.I).lower()
    if not TRACKED.match(name):
        return None
    result = [name]
    for raw in words[1:]:
        w = raw.strip("'\"")
        if re.match(r"^[/-][A-Za-z][\w-]*$", w):
            result.append(w.lower())
        elif re.match(r"^\w+=", w):
            result.append(w.split("=", 1)[0].lower() + "=")
        elif re.fullmatch(r"[a-z_]+", w) and w != "weir":
            result.append(w)
        else:
            result.append("<arg>")
    return tuple(result)


def doc_code_lines(markdown: str) -> list[str]:
    """Lines inside ```powershell / ```cmd (and similar) fences."""
    lines = []
    fence = None
    for line in markdown.splitlines():
        m = re.match(r"^\s*```\s*(\w*)", line)
        if m:
            if fence is None:
                fence = m.group(1).lower()
            else:
                fence = None
            continue
        if fence in ("powershell", "pwsh", "ps1", "cmd", "bat", "console"):
            lines.append(re.sub(r"^\s*(PS[^>]*>|C:\\[^>]*>|>)\s*", "", line).strip())
    return lines


def doc_command_shapes(markdown: str) -> list[tuple[str, tuple[str, ...]]]:
    result = []
    for line in doc_code_lines(markdown):
        s = shape(tokens(line))
        if s is not None:
            result.append((line, s))
    return result


def script_command_shapes(texts: list[str]) -> set[tuple[str, ...]]:
    shapes = set()
    for text in texts:
        code = mask(text)
        for m in re.finditer(r"(?<![\w.-])\$?(pnputil|sc|bcdedit|devcon|netsh)(\.exe)?(?![\w-])|(?<![\w.$-])Import-Certificate(?![\w-])", code, re.I):
            if m.group(1) and m.group(1).lower() == "sc" and not m.group(2):
                continue  # bare 'sc' is not the service tool
            s = shape(tokens(statement_rest(text, m.start())))
            if s is not None:
                shapes.add(s)
    return shapes


def doc_script_calls(markdown: str) -> list[tuple[str, str, list[str]]]:
    """(line, script file name, parameter names) for each .ps1 call in code blocks."""
    calls = []
    for line in doc_code_lines(markdown):
        m = re.search(r"([\w-]+\.ps1)\b(.*)$", line)
        if m and not line.lower().startswith(("copy", "set-executionpolicy", "unblock-file", "get-help")):
            params = re.findall(r"(?:^|\s)-(\w+)", m.group(2))
            calls.append((line, m.group(1), params))
    return calls


def check_docs_against_scripts(markdown: str, script_texts: dict[str, str]) -> list[str]:
    problems = []
    shapes = script_command_shapes(list(script_texts.values()))
    for line, s in doc_command_shapes(markdown):
        if s not in shapes:
            problems.append(f"documented command not found in any script: {line!r} (shape {' '.join(s)})")
    for line, script, params in doc_script_calls(markdown):
        if script not in script_texts:
            problems.append(f"documented script does not exist: {script} in {line!r}")
            continue
        known = {p.lower() for p in script_parameters(script_texts[script])} | COMMON_PARAMETERS
        for p in params:
            if p.lower() not in known:
                problems.append(f"{script} has no parameter -{p} (used in {line!r})")
    return problems


# ---------------------------------------------------------------------------
# WinDbg script
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


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig")


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


# ---------------------------------------------------------------------------
# Tests on the real files
# ---------------------------------------------------------------------------


def test_all_scripts_present():
    for name in EXPECTED_SCRIPTS:
        assert (SCRIPTS_DIR / name).is_file(), name
    assert WINDBG_SCRIPT.is_file()


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


@pytest.mark.parametrize("name", EXPECTED_SCRIPTS)
def test_scripts_are_ascii_and_have_no_machine_paths(name):
    text = read(SCRIPTS_DIR / name)
    assert text.isascii(), f"{name} has non-ASCII characters (Windows PowerShell 5.1 reads BOM-less files as ANSI)"
    assert not re.search(r"/work/|/home/|/root/|[A-Z]:\\Users\\", text), name


COMMON_MODULE = SCRIPTS_DIR / "WeirCommon.psm1"
COMMON_FUNCTIONS = ["ConvertFrom-WeirEnumDrivers", "Get-WeirServiceState"]


def test_common_module_is_read_only_and_well_formed():
    text = read(COMMON_MODULE)
    assert text.isascii(), "WeirCommon.psm1 has non-ASCII characters"
    assert check_balance(text) == [], check_balance(text)
    assert check_strict_mode(text) == [], "WeirCommon.psm1 must set StrictMode"
    # The module is imported by scripts that promise -WhatIf; it may not change
    # anything itself.
    assert state_changing_calls(text) == [], state_changing_calls(text)
    for fn in COMMON_FUNCTIONS:
        assert re.search(rf"^function {re.escape(fn)}\b", text, re.M), f"{fn} not defined"
        assert fn in text.split("Export-ModuleMember", 1)[-1], f"{fn} not exported"


@pytest.mark.parametrize("name", EXPECTED_SCRIPTS)
def test_shared_helpers_come_from_the_module(name):
    # A script that uses a shared helper imports the module from its own
    # directory and does not carry its own copy.
    text = read(SCRIPTS_DIR / name)
    code = mask(text)
    used = [fn for fn in COMMON_FUNCTIONS if re.search(re.escape(fn), code)]
    if used:
        assert re.search(r"Import-Module\s+-Name\s+\(Join-Path\s+\$PSScriptRoot\s+'WeirCommon\.psm1'\)", text), \
            f"{name} uses {used} without importing WeirCommon.psm1"
    for fn in COMMON_FUNCTIONS:
        assert not re.search(rf"^function {re.escape(fn)}\b", text, re.M), f"{name} redefines {fn}"


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
    documented = doc_command_shapes(markdown)
    assert len(documented) >= 10, "docs/test-vm.md should show the exact commands"
    problems = check_docs_against_scripts(markdown, script_texts)
    assert problems == [], "\n".join(problems)


def test_docs_mention_every_script_and_the_caveat():
    for doc in (TEST_VM_DOC, DEBUGGING_DOC):
        prose = re.sub(r"[*_>\s]+", " ", read(doc))  # drop emphasis, quote marks, line breaks
        assert re.search(r"not (been )?(run|tested|verified) on (real )?Windows", prose, re.I), doc
    vm = read(TEST_VM_DOC)
    for name in EXPECTED_SCRIPTS:
        assert name in vm, name
    dbg = read(DEBUGGING_DOC)
    for needle in ["bcdedit /debug on", "bcdedit /dbgsettings net", "windbg -k net:port=50000",
                   "sxe ld weir.sys", "bu weir!DriverEntry", "Kd_IHVNETWORK_Mask", "!analyze -v",
                   ".srcpath", "weir.windbg.txt", "Debug Print Filter"]:
        assert needle in dbg, needle


def test_windbg_script():
    problems = check_windbg(read(WINDBG_SCRIPT))
    assert problems == [], "\n".join(problems)


def test_workflow_shape():
    text = read(WORKFLOW)
    assert "bash .ci/run" in text
    assert "windows-latest" in text
    assert "cargo make" in text
    assert "weir_package" in text
    assert "\t" not in text, "YAML must not contain tabs"


# ---------------------------------------------------------------------------
# The checkers reject broken input
# ---------------------------------------------------------------------------


def test_good_snippet_passes():
    assert check_script(GOOD) == []


def test_scanner_masks_strings_comments_and_subexpressions():
    code = mask(GOOD)
    assert len(code) == len(GOOD)
    assert "only mentioned" not in code
    assert "a comment" not in code
    assert "$PSCmdlet.ShouldProcess(" in code
    assert "{current}" not in code


@pytest.mark.parametrize("broken, expected", [
    ("if ($a) {\n  x\n", "never closed"),
    ("if ($a)) { }\n", "closes nothing"),
    ("$x = @(1, 2]\n", "closes '('"),
    ("Write-Host 'unterminated\n", "unterminated single-quoted"),
    ('Write-Host "open $(Get-Date) \n', "unterminated double-quoted"),
    ("<# never closed\n", "unterminated block comment"),
    ("$s = @'\nno end\n", "unterminated here-string"),
])
def test_balance_rejects(broken, expected):
    problems = check_balance(broken)
    assert problems and any(expected in p for p in problems), problems


def test_balance_ignores_brackets_in_strings_and_comments():
    ok = "Write-Host '{ ( [' # ) } ]\n$a = \"}$(\"{\")(\"\n<# { #>\n$h = @'\n{{{\n'@\n"
    assert check_balance(ok) == []


@pytest.mark.parametrize("snippet", [
    "& pnputil.exe /add-driver x.inf /install\n",
    "if ($x) { pnputil /delete-driver oem1.inf /uninstall }\n",
    "if (-not $PSCmdlet.ShouldProcess('x', 'y')) { sc.exe delete weir }\n",
    "if ($PSCmdlet.ShouldProcess('x', 'y')) { 'ok' } else { bcdedit /set testsigning on }\n",
    "if ($PSCmdlet.ShouldProcess('x', 'y')) { 'ok' }\n& $devcon dp_add x.inf\n",
    "Import-Certificate -FilePath a.cer -CertStoreLocation Cert:\\LocalMachine\\Root\n",
    "Get-ChildItem | ForEach-Object { Remove-Item $_ }\n",
    "function Stop-It { & sc.exe stop 'weir' }\n",
    "while ($PSCmdlet.ShouldProcess('x', 'y')) { & sc.exe start weir }\n",
])
def test_guard_check_rejects(snippet):
    assert find_unguarded(snippet), snippet


@pytest.mark.parametrize("snippet", [
    "if ($PSCmdlet.ShouldProcess('x', 'y')) { & pnputil.exe /add-driver x.inf /install }\n",
    "if ($a) { } elseif ($PSCmdlet.ShouldProcess('x', 'y')) {\n  if ($f) { & $devcon -f dp_delete oem1.inf }\n}\n",
    "& pnputil.exe /enum-drivers\n& sc.exe query weir\n& bcdedit /enum '{current}'\n",
    "Write-Host 'pnputil /add-driver x /install'\n# sc.exe delete weir\n",
    "if ($ok -and $PSCmdlet.ShouldProcess('x', 'y')) {\n  Remove-Item -LiteralPath $d -Recurse\n}\n",
])
def test_guard_check_accepts(snippet):
    assert find_unguarded(snippet) == [], snippet


def _without(text: str, needle: str, replacement: str = "") -> str:
    assert needle in text, needle
    return text.replace(needle, replacement, 1)


@pytest.mark.parametrize("mutate, expected", [
    (lambda t: _without(t, "[CmdletBinding(SupportsShouldProcess)]\n"), "CmdletBinding"),
    (lambda t: _without(t, "SupportsShouldProcess)]", ")]"), "SupportsShouldProcess"),
    (lambda t: _without(t, "SupportsShouldProcess)]", "SupportsShouldProcess = $false)]"), "SupportsShouldProcess"),
    (lambda t: _without(t, "Set-StrictMode -Version Latest\n"), "StrictMode"),
    (lambda t: _without(t, "Set-StrictMode -Version Latest", "Set-StrictMode -Version 1"), "StrictMode"),
    (lambda t: _without(t, "$ErrorActionPreference = 'Stop'\n"), "ErrorActionPreference"),
    (lambda t: _without(t, "$ErrorActionPreference = 'Stop'", "$ErrorActionPreference = 'Continue'"), "ErrorActionPreference"),
    (lambda t: _without(t, "    throw 'Run elevated.'\n", "    Write-Warning 'not admin'\n"), "elevation"),
    (lambda t: _without(t, "[Security.Principal.WindowsBuiltInRole]::Administrator", "'Users'"), "IsInRole"),
    (lambda t: _without(t, ".SYNOPSIS\n    Test.\n"), ".SYNOPSIS"),
    (lambda t: _without(t, ".EXAMPLE\n"), ".EXAMPLE"),
    (lambda t: _without(t, ".PARAMETER PackageDir\n    Where.\n"), ".PARAMETER PackageDir"),
    (lambda t: "Set-Location .\n" + t, "comment-based help"),
    (lambda t: _without(t, "if ($PSCmdlet.ShouldProcess($PackageDir, 'pnputil /add-driver')) {", "if ($true) {"), "not guarded"),
    (lambda t: t + "sc query weir\n", "sc.exe, not sc"),
    (lambda t: t + "}\n", "closes nothing"),
])
def test_script_checker_rejects_broken_scripts(mutate, expected):
    problems = check_script(mutate(GOOD))
    assert any(expected in p for p in problems), problems


def test_parameter_parser():
    text = "param(\n  [Parameter(Mandatory = $true)] [ValidateRange(1, 2)] [int] $A = 1,\n  [switch] $B, $C = $A\n)\n"
    assert script_parameters(text) == ["A", "B", "C"]


def test_docs_checker_rejects_drift(script_texts):
    good = "```powershell\npnputil /add-driver C:\\x\\weir.inf /install\nsc.exe start weir\n.\\Install-Weir.ps1 -PackageDir C:\\x -WhatIf\n```\n"
    assert check_docs_against_scripts(good, script_texts) == []
    for drifted, expected in [
        ("```powershell\npnputil /add-driver C:\\x\\weir.inf\n```\n", "not found"),
        ("```powershell\nsc.exe pause weir\n```\n", "not found"),
        ("```cmd\nbcdedit /set nointegritychecks on\n```\n", "not found"),
        ("```powershell\n.\\Install-Weir.ps1 -Package C:\\x\n```\n", "no parameter -Package"),
        ("```powershell\n.\\Install-Driver.ps1\n```\n", "does not exist"),
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
