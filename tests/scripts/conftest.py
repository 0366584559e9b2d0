"""Fixtures shared by the test-VM script checks (see script_rules.py)."""

from __future__ import annotations

import pytest

from script_rules import SCRIPTS_DIR, read


@pytest.fixture(scope="module")
def script_texts() -> dict[str, str]:
    return {p.name: read(p) for p in sorted(SCRIPTS_DIR.glob("*.ps1"))}
