"""Fixtures of the emulation suite: fresh driver runs, JSON traces, fault points."""

from __future__ import annotations

import functools
import json
import re
import time

import pytest

import harness
import layouts as L
from kernel_model import DIAGNOSTIC_APIS, INFALLIBLE_APIS, PURE_APIS, KernelModel

ARTIFACTS = harness.REPO_ROOT / "test-artifacts" / "emulation"


def _artifact_name(item) -> str:
    module = item.path.stem if hasattr(item, "path") else "test"
    name = re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "-", item.name)
    return f"{module}.{name}.json"


def _write_json(path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.stash[_OUTCOME] = (rep.outcome, rep.longreprtext if rep.failed else "")


_OUTCOME = pytest.StashKey[tuple]()


@pytest.fixture(autouse=True)
def _trace(request):
    """Writes test-artifacts/emulation/<module>.<test>.json when the test ends: every
    driver run the test made, with every recorded kernel/WFP call and its decoded arguments."""
    runs: list[harness.DriverRun] = []
    started = time.monotonic()
    yield runs
    outcome, text = request.node.stash.get(_OUTCOME, ("unknown", ""))
    _write_json(
        ARTIFACTS / _artifact_name(request.node),
        {
            "test": request.node.nodeid,
            "outcome": outcome,
            "failure": text[-4000:] if text else None,
            "seconds": round(time.monotonic() - started, 3),
            "runs": [r.to_json() for r in runs],
        },
    )


@pytest.fixture
def new_run(_trace):
    """Factory: `new_run(label=..., model=...)` -> a loaded `harness.DriverRun` (DriverEntry not yet run)."""

    def make(label: str = "run", model: KernelModel | None = None) -> harness.DriverRun:
        r = harness.DriverRun(model=model, label=label)
        _trace.append(r)
        return r

    return make


@pytest.fixture
def driver(new_run) -> harness.DriverRun:
    """A driver whose DriverEntry succeeded cleanly."""
    return new_run("driver").start()


# ----------------------------------------------------------------------------
# Fault points: the clean DriverEntry's calls, recorded once per session.
# ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def clean_pass() -> dict:
    """Runs DriverEntry once without faults. Returns its effective call list or the reason it failed."""
    try:
        run = harness.DriverRun(label="clean-pass")
        status = run.driver_entry()
    except Exception as e:  # surfaced by the parametrized test
        return {"error": f"{type(e).__name__}: {e}", "points": []}
    points = [(c.api, c.occurrence) for c in run.model.effective_calls("DriverEntry")]
    info = {
        "status": status,
        "points": points,
        "error": None,
        "violations": [str(v) for v in run.model.violations],
        "emulator_error": run.entry_result.error,
    }
    _write_json(ARTIFACTS / "clean-pass.json", {"fault_points": points, **run.to_json()})
    if status != L.STATUS_SUCCESS or run.entry_result.error:
        info["error"] = f"clean DriverEntry returned {L.status_name(status)}, emulator error {run.entry_result.error}"
    return info


def pytest_generate_tests(metafunc):
    if "fault_point" not in metafunc.fixturenames:
        return
    info = clean_pass()
    points = info["points"]
    if not points:
        metafunc.parametrize("fault_point", [("<no clean pass>", 0, info["error"] or "no calls recorded")],
                             ids=["clean-pass-failed"])
        return
    params = [(api, occ, None) for api, occ in points]
    ids = [f"{i + 1:02d}-{api}#{occ}" for i, (api, occ) in enumerate(points)]
    metafunc.parametrize("fault_point", params, ids=ids)


def pytest_report_header(config):
    return [f"weir image: {harness.image_path()}",
            f"excluded from fault injection: {', '.join(sorted(DIAGNOSTIC_APIS | PURE_APIS | INFALLIBLE_APIS))}"]
