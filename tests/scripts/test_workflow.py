"""The shipped GitHub workflow (.github/workflows/ci.yml): a Linux job
running the project's CI script and a Windows job running both WDK flows and
uploading the package.

The checker is also fed deliberately broken workflows, which it must reject.
"""

from __future__ import annotations

import re

import pytest

from script_rules import ROOT, read

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


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
