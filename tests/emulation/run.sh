#!/usr/bin/env bash
# Runs the emulation suite: the real weir.sys under speakeasy against a model
# of the kernel and WFP APIs.
#
#   bash tests/emulation/run.sh [pytest args...]
#
# Environment:
#   WEIR_IMAGE       driver image (default target/x86_64-pc-windows-msvc/release/weir.sys)
#   WEIR_EMU_VENV    virtual environment to create or reuse (default .venv-emu in the repository root)
#   WEIR_EMU_PYTHON  interpreter that creates the venv (default: python3.11, python3.12 or python3, >= 3.11)
#
# Writes one JSON trace per test to test-artifacts/emulation/ and a JUnit report
# to test-artifacts/emulation/junit.xml. Exits non-zero if any test fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${WEIR_EMU_VENV:-$root/.venv-emu}"
artifacts="$root/test-artifacts/emulation"

pick_python() {
    local candidates=("${WEIR_EMU_PYTHON:-}" python3.11 python3.12 python3.13 python3)
    for c in "${candidates[@]}"; do
        [ -n "$c" ] || continue
        command -v "$c" >/dev/null 2>&1 || continue
        if "$c" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$c"
            return 0
        fi
    done
    echo "emulation: no Python >= 3.11 with venv and ensurepip found (set WEIR_EMU_PYTHON)" >&2
    return 1
}

req="$here/requirements.txt"
stamp="$venv/.weir-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
    py="$(pick_python)"
    echo "emulation: creating virtual environment $venv with $py"
    "$py" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "emulation: installing $req"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
fi

mkdir -p "$artifacts"
junit="$artifacts/junit.xml"
rm -f "$junit"
set +e
(cd "$here" && "$venv/bin/python" -m pytest --junitxml="$junit" "$@")
rc=$?
set -e

# One closing line with the counts, whatever pytest printed.
if [ -f "$junit" ]; then
    "$venv/bin/python" - "$junit" <<'PY'
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
total = sum(int(s.get("tests", 0)) for s in suites)
failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
secs = sum(float(s.get("time", 0)) for s in suites)
print(f"emulation: {total - failed - skipped} passed, {failed} failed, {skipped} skipped ({secs:.1f}s)")
PY
else
    echo "emulation: 0 passed, 1 failed (pytest produced no report, exit code $rc)"
    [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
