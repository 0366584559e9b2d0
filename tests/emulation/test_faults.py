"""Fault injection: each call DriverEntry makes fails once, in its own run.

The list of calls comes from one clean DriverEntry run at collection time
(conftest.clean_pass), so a call added to DriverEntry gets its fault test
without editing this file. For each one: DriverEntry must return exactly the
injected status, undo every earlier step in reverse order, leave nothing
behind, and never bug-check; DriverUnload afterwards must do nothing.
"""

import pytest

import harness
import layouts as L
from kernel_model import FAILURE_MODES, KernelModel


def _acquired(call):
    """What a successful call acquired, as the release call that gives it back."""
    a = call.args
    return {
        "IoCreateDevice": lambda: ("IoDeleteDevice", a.get("created_device")),
        "IoCreateSymbolicLink": lambda: ("IoDeleteSymbolicLink", a.get("SymbolicLinkName")),
        "FwpsCalloutRegister3": lambda: ("FwpsCalloutUnregisterById0", a.get("assigned_calloutId")),
        "FwpmEngineOpen0": lambda: ("FwpmEngineClose0", a.get("assigned_handle")),
        "FwpmTransactionBegin0": lambda: ("FwpmTransactionAbort0", a.get("engineHandle")),
        "ExAllocatePool2": lambda: ("ExFreePoolWithTag", a.get("returned")),
        "ExAllocatePoolWithTag": lambda: ("ExFreePoolWithTag", a.get("returned")),
    }.get(call.api, lambda: None)()


def _released(call):
    a = call.args
    key = {
        "IoDeleteDevice": "DeviceObject", "IoDeleteSymbolicLink": "SymbolicLinkName",
        "FwpsCalloutUnregisterById0": "calloutId", "FwpmEngineClose0": "engineHandle",
        "FwpmTransactionAbort0": "engineHandle", "ExFreePoolWithTag": "P",
    }.get(call.api)
    return (call.api, a.get(key) if key else "(not a release)")


def test_driver_entry_fault(new_run, fault_point):
    api, occurrence, clean_error = fault_point
    if clean_error:
        pytest.fail(f"the clean DriverEntry pass failed, so no fault points exist: {clean_error}")
    if api not in FAILURE_MODES:
        pytest.fail(f"DriverEntry calls {api} (occurrence {occurrence}) but kernel_model.FAILURE_MODES has no failure "
                    f"mode for it: add one so its failure path is tested")
    _, expected = FAILURE_MODES[api]
    model = KernelModel()
    model.fail("DriverEntry", api, occurrence)
    run = new_run(f"fault {api}#{occurrence}", model)
    status = run.driver_entry()

    label = f"{api}#{occurrence} (DriverEntry)"
    ck = harness.Checker(f"DriverEntry with {label} failing")
    ck.eq(run.entry_result.error, None, "DriverEntry", "emulator fault")
    ck.eq(model.bugchecks, [], "DriverEntry", "KeBugCheckEx calls")
    injected = [c for c in model.calls if c.injected]
    if not ck.eq([c.label for c in injected], [label], "fault injection", "injected call (the clean pass diverged?)"):
        ck.done()
    ck.eq(L.status_name(status), L.status_name(expected), "DriverEntry", f"return value after {label} failed")
    for v in model.violations:
        ck.true(False, v.call, f"{v.arg}: {v.message}")

    calls = model.effective_calls("DriverEntry")
    at = calls.index(injected[0])
    def succeeded(c):
        return bool(c.ret) if c.api.startswith("ExAllocate") else c.ret is not None and L.is_success(c.ret)

    acquired = [r for r in (_acquired(c) for c in calls[:at] if succeeded(c)) if r]
    # A successful commit ends the transaction: nothing to abort for it.
    for c in calls[:at]:
        if c.api == "FwpmTransactionCommit0" and c.ret == 0:
            acquired = [r for r in acquired if r != ("FwpmTransactionAbort0", c.args["engineHandle"])]
    expected_release = list(reversed(acquired))
    actual_release = [_released(c) for c in calls[at + 1:]]
    ck.eq(actual_release, expected_release, f"calls after {label} failed",
          "release sequence (every earlier step undone, in reverse order, and nothing else)")
    ck.eq(model.leaks(), [], f"after {label} failed", "resources still held")

    # DriverUnload after a failed DriverEntry must do nothing.
    n = len(model.calls)
    res = run.unload()
    ck.eq(res.error, None, "DriverUnload after failed DriverEntry", "emulator fault")
    ck.eq([c.label for c in model.calls[n:] if c.api not in ("DbgPrintEx", "DbgPrint")], [],
          "DriverUnload after failed DriverEntry", "kernel/WFP calls")
    ck.eq(model.bugchecks, [], "DriverUnload after failed DriverEntry", "KeBugCheckEx calls")
    ck.done()
