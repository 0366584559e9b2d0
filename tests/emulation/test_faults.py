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
from kernel_model import FAILURE_MODES, INFALLIBLE_APIS, KernelModel


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
        "ObOpenObjectByPointer": lambda: ("ZwClose", a.get("assigned_handle")),
        "ZwOpenKey": lambda: ("ZwClose", a.get("assigned_handle")),
        "FwpmBfeStateSubscribeChanges0": lambda: ("FwpmBfeStateUnsubscribeChanges0", a.get("assigned_changeHandle")),
        "ExAllocatePoolWithTag": lambda: ("ExFreePoolWithTag", a.get("returned")),
        "EtwRegister": lambda: ("EtwUnregister", a.get("assigned_RegHandle")),
    }.get(call.api, lambda: None)()


def _released(call):
    a = call.args
    key = {
        "IoDeleteDevice": "DeviceObject", "IoDeleteSymbolicLink": "SymbolicLinkName",
        "FwpsCalloutUnregisterById0": "calloutId", "FwpmEngineClose0": "engineHandle",
        "FwpmTransactionAbort0": "engineHandle", "ExFreePoolWithTag": "P",
        "ZwClose": "Handle", "FwpmBfeStateUnsubscribeChanges0": "changeHandle", "EtwUnregister": "RegHandle",
    }.get(call.api)
    return (call.api, a.get(key) if key else "(not a release)")


def test_driver_entry_fault(new_run, fault_point):
    api, occurrence, clean_error = fault_point
    if clean_error:
        pytest.fail(f"the clean DriverEntry pass failed, so no fault points exist: {clean_error}")
    if api not in FAILURE_MODES:
        pytest.fail(f"DriverEntry calls {api} (occurrence {occurrence}) but kernel_model.FAILURE_MODES has no failure "
                    f"mode for it: add one so its failure path is tested")
    value, expected = FAILURE_MODES[api]
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
    ck.true(_traced(model, "DriverEntry", api, value) or api.startswith("ExAllocate"), "DriverEntry",
            f"no error trace naming {api} and {L.status_name(value)} (every failure must be visible)")
    for v in model.violations:
        ck.true(False, v.call, f"{v.arg}: {v.message}")
    if expected == L.STATUS_SUCCESS:
        # A failure DriverEntry survives by design: it must still be loaded and
        # complete; the after-test check unloads it and finds nothing left.
        ck.eq(model.leaks() != [], True, f"after {label} failed", "driver still loaded")
        ck.done()
        return

    calls = model.effective_calls("DriverEntry")
    at = calls.index(injected[0])
    def succeeded(c):
        return bool(c.ret) if c.api.startswith("ExAllocate") else c.ret is not None and L.is_success(c.ret)

    acquired = [r for r in (_acquired(c) for c in calls[:at] if succeeded(c)) if r]
    # Acquisitions already given back before the fault (a temporary handle).
    for c in calls[:at]:
        rel = _released(c)
        if rel in acquired:
            acquired.remove(rel)
    # A successful commit ends the transaction: nothing to abort for it.
    for c in calls[:at]:
        if c.api == "FwpmTransactionCommit0" and c.ret == 0:
            acquired = [r for r in acquired if r != ("FwpmTransactionAbort0", c.args["engineHandle"])]
    expected_release = list(reversed(acquired))
    actual_release = [_released(c) for c in calls[at + 1:]
                      if not (c.api in INFALLIBLE_APIS and _released(c)[1] == "(not a release)")]
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


def _traced(model, phase, api, status) -> bool:
    """Whether the driver printed an error naming `api` and `status` in `phase`."""
    hexstatus = f"{status & 0xFFFFFFFF:#010x}"
    return any(api in (m["text"] or "") and hexstatus in (m["text"] or "").lower()
               for m in model.debug_messages if m["phase"] == phase)


def test_driver_unload_fault(new_run, unload_fault_point):
    """Each call DriverUnload makes fails once: DriverUnload traces it with
    its status, finishes the teardown (retrying what can be retried) and leaves
    nothing behind (the after-test leak check), so the next load succeeds."""
    api, occurrence, clean_error = unload_fault_point
    if clean_error:
        pytest.fail(f"the clean DriverUnload pass failed, so no fault points exist: {clean_error}")
    if api == "<none>":
        pytest.fail("the clean DriverUnload made no fallible call")
    if api not in FAILURE_MODES:
        pytest.fail(f"DriverUnload calls {api} (occurrence {occurrence}) but kernel_model.FAILURE_MODES has no failure mode for it")
    value, _ = FAILURE_MODES[api]
    model = KernelModel()
    run = new_run(f"unload fault {api}#{occurrence}", model).start()
    model.fail("DriverUnload", api, occurrence)
    res = run.unload()
    label = f"{api}#{occurrence} (DriverUnload)"
    ck = harness.Checker(f"DriverUnload with {label} failing")
    ck.eq(res.error, None, "DriverUnload", "emulator fault")
    ck.eq(model.bugchecks, [], "DriverUnload", "KeBugCheckEx calls")
    injected = [c.label for c in model.calls if c.injected]
    ck.eq(injected, [label], "fault injection", "injected call")
    ck.true(_traced(model, "DriverUnload", api, value), "DriverUnload",
            f"no error trace naming {api} and {L.status_name(value)} (every failure must be visible)")
    for v in model.violations:
        ck.true(False, v.call, f"{v.arg}: {v.message}")
    ck.eq(model.leaks(), [], f"after {label} failed", "resources still held")
    ck.done()
    # The next load in the same kernel succeeds.
    model.driver_object = None
    second = new_run("reload", model)
    status = second.driver_entry()
    ck2 = harness.Checker("reload after the faulty unload")
    ck2.eq(L.status_name(status), L.status_name(L.STATUS_SUCCESS), "second DriverEntry", "status")
    ck2.done()


def test_ioctl_fault(new_run, ioctl_fault_point):
    """Each fallible call a well-formed request makes fails once (per request,
    not per test): the request is completed exactly once with an error, the
    emulator sees no fault, and unload leaves nothing (after-test check)."""
    name, api, occurrence, clean_error = ioctl_fault_point
    if clean_error:
        pytest.fail(f"the clean {name} request failed: {clean_error}")
    model = KernelModel()
    run = new_run(f"ioctl fault {name} {api}#{occurrence}", model).start()
    req = dict(harness.IOCTL_SAMPLES[name])
    major = req.pop("major")
    if api == "<none>":
        # Nothing to inject: check that really nothing fallible is called.
        r = run.irp(major, **req)
        calls = [c.api for c in model.effective_calls("dispatch") if c.api not in INFALLIBLE_APIS]
        assert calls == [], f"{name} makes fallible calls {calls} the fault list missed"
        assert len(r.completions) == 1
        return
    if api not in FAILURE_MODES:
        pytest.fail(f"{name} calls {api} but kernel_model.FAILURE_MODES has no failure mode for it")
    # A first request runs clean; the second one gets the fault, so the
    # injection is per request.
    run.irp(major, **req)
    instance = model.phase_instances["dispatch"] + 1
    model.fail("dispatch", api, occurrence, instance=instance)
    r = run.irp(major, **req)
    ck = harness.Checker(f"{name} with {api}#{occurrence} failing")
    ck.eq(r.run.error, None, name, "emulator fault")
    ck.eq(len(r.completions), 1, name, "IofCompleteRequest calls for this IRP")
    ck.true(not L.is_success(r.status), name, f"completed with {L.status_name(r.status)} although {api} failed")
    ck.true(r.guard_intact, name, "wrote past the system buffer")
    ck.eq([(c.api, c.instance) for c in model.calls if c.injected], [(api, instance)], name, "injected call (api, request number)")
    ck.done()
