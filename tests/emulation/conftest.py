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
    problems = []
    if outcome == "passed":
        problems = _after_test_checks(runs)
        if problems:
            outcome, text = "failed (after-test checks)", "\n".join(problems)
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
    if problems:
        pytest.fail("after-test checks:\n  - " + "\n  - ".join(problems), pytrace=False)


def _after_test_checks(runs: list[harness.DriverRun]) -> list[str]:
    """Whole-state checks after every test, whatever it injected: the driver is
    unloaded (if the test did not), and then nothing may be registered,
    referenced or allocated (beyond what the test declared in
    `expected_leaks`), and no call may have broken an IRQL rule."""
    out = []
    # Several runs may share one model (a reload in the same kernel): unload
    # them all first, then look at each model once.
    for r in runs:
        n = len(r.model.violations)
        try:
            r.after_test_leaks()
        except Exception as e:  # an emulator failure during the unload is a finding too
            out.append(f"{r.label}: after-test unload failed: {type(e).__name__}: {e}")
        out += [f"{r.label}: violation during the after-test unload: {v}" for v in r.model.violations[n:]]
    seen = set()
    for r in runs:
        if id(r.model) in seen:
            continue
        seen.add(id(r.model))
        expected = [e for x in runs if x.model is r.model for e in x.expected_leaks]
        out += [f"{r.label}: left behind after unload: {l}" for l in r.model.leaks() if not any(e in l for e in expected)]
        out += [f"{r.label}: {v}" for v in r.model.irql_violations()]
    return out


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
    points = [(c.api, c.occurrence) for c in run.model.effective_calls("DriverEntry") if c.api not in INFALLIBLE_APIS]
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


@functools.lru_cache(maxsize=None)
def clean_phase_points(kind: str) -> dict:
    """Fault points of one clean DriverUnload (`kind` "unload") or of one clean
    request of each harness.IOCTL_SAMPLES entry (`kind` "ioctl:<name>")."""
    try:
        run = harness.DriverRun(label=f"clean-{kind}")
        run.start()
        if kind == "unload":
            run.unload()
            phase = "DriverUnload"
        else:
            req = dict(harness.IOCTL_SAMPLES[kind.split(":", 1)[1]])
            run.irp(req.pop("major"), **req)
            phase = "dispatch"
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}", "points": []}
    points = [(c.api, c.occurrence) for c in run.model.effective_calls(phase) if c.api not in INFALLIBLE_APIS]
    return {"error": None, "points": points}


def pytest_generate_tests(metafunc):
    if "unload_fault_point" in metafunc.fixturenames:
        info = clean_phase_points("unload")
        pts = info["points"] or [("<none>", 0)]
        metafunc.parametrize("unload_fault_point", [(a, o, info["error"]) for a, o in pts],
                             ids=[f"{i + 1:02d}-{a}#{o}" for i, (a, o) in enumerate(pts)])
    if "ioctl_fault_point" in metafunc.fixturenames:
        params, ids = [], []
        for name in harness.IOCTL_SAMPLES:
            info = clean_phase_points(f"ioctl:{name}")
            for a, o in info["points"] or [("<none>", 0)]:
                params.append((name, a, o, info["error"]))
                ids.append(f"{name}-{a}#{o}")
        metafunc.parametrize("ioctl_fault_point", params, ids=ids)
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
