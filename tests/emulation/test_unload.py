"""DriverUnload: the documented WFP teardown order, and nothing left behind."""

import harness
import layouts as L
from events_model import EVENTS_ARGC
from kernel_model import KernelModel


def _entry_facts(driver):
    m = driver.model
    (open_call,) = m.calls_in("DriverEntry", "FwpmEngineOpen0")
    (dev_call,) = m.calls_in("DriverEntry", "IoCreateDevice")
    # The driver state, then the event log and its ring slots.
    alloc, log, slots = m.calls_in("DriverEntry", "ExAllocatePool2")
    return {
        "events": [slots.args["returned"], log.args["returned"]],
        "handle": open_call.args["assigned_handle"],
        "ids": [r["id"] for r in driver.registrations()],
        "device": dev_call.args["created_device"],
        "state": alloc.args["returned"],
    }


def test_unload_tears_down_in_order_and_releases_everything(driver):
    facts = _entry_facts(driver)
    # Some traffic first, so that unload happens on a driver that did work.
    for layer in L.LAYERS:
        driver.classify(layer.layer_id, driver.values_for(layer))
    driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_GET_STATS, out_len=L.STATS_SIZE)
    res = driver.unload()
    driver.expect_no_fault(res)

    m = driver.model
    ck = harness.Checker("DriverUnload")
    calls = m.effective_calls("DriverUnload")
    apis = [c.api for c in calls]
    where = "DriverUnload"

    closes = [c for c in calls if c.api == "FwpmEngineClose0"]
    ck.eq([c.args["engineHandle"] for c in closes], [facts["handle"]], where, "FwpmEngineClose0 engineHandle(s) (the session DriverEntry opened, once)")
    unregs = [c for c in calls if c.api == "FwpsCalloutUnregisterById0"]
    ck.eq(sorted(c.args["calloutId"] for c in unregs), sorted(facts["ids"]), where, "FwpsCalloutUnregisterById0 calloutIds")
    for c in unregs:
        ck.eq(c.args.get("filters_referencing_callout", []), [], c.label,
              "filters still referencing the callout at unregistration (the session must be closed first)")
    links = [c for c in calls if c.api == "IoDeleteSymbolicLink"]
    ck.eq([c.args["SymbolicLinkName"] for c in links], ["\\??\\Weir"], where, "IoDeleteSymbolicLink SymbolicLinkName(s)")
    devs = [c for c in calls if c.api == "IoDeleteDevice"]
    ck.eq([c.args["DeviceObject"] for c in devs], [facts["device"]], where, "IoDeleteDevice DeviceObject(s)")
    frees = [c for c in calls if c.api == "ExFreePoolWithTag"]
    ck.eq([c.args["P"] for c in frees], facts["events"] + [facts["state"]], where,
          "ExFreePoolWithTag P (the event ring's slots, the event log, then the driver state)")

    def pos(api, first=True):
        idx = [i for i, a in enumerate(apis) if a == api]
        return (idx[0] if first else idx[-1]) if idx else None

    order = [("FwpmEngineClose0", True), ("FwpmBfeStateUnsubscribeChanges0", True), ("FwpsCalloutUnregisterById0", False),
             ("IoDeleteSymbolicLink", True), ("IoDeleteDevice", True), ("EtwUnregister", True)]
    positions = [(api, pos(api, first)) for api, first in order]
    present = [(a, p) for a, p in positions if p is not None]
    ck.eq([a for a, _ in sorted(present, key=lambda x: x[1])], [a for a, _ in present], where,
          f"teardown order (close session, unsubscribe from BFE, unregister every callout, delete link, delete device, "
          f"unregister the ETW provider); actual calls {apis}")
    ck.eq(len([a for a in apis if a == "FwpmBfeStateUnsubscribeChanges0"]), 1, where, "FwpmBfeStateUnsubscribeChanges0 calls")
    ck.true(not set(apis) - {"FwpmEngineClose0", "FwpsCalloutUnregisterById0", "IoDeleteSymbolicLink", "IoDeleteDevice",
                             "ExFreePoolWithTag", "KeDelayExecutionThread", "FwpmBfeStateUnsubscribeChanges0",
                             "KeWaitForSingleObject", "KeSetEvent", "EtwUnregister"} - set(EVENTS_ARGC), where, f"unexpected calls {apis}")
    ck.eq(m.leaks(), [], where, "resources still held after DriverUnload")
    ck.done()
    driver.expect_clean()


def test_unload_twice_does_nothing_the_second_time(driver):
    driver.expect_no_fault(driver.unload())
    n = len(driver.model.calls)
    res = driver.unload()
    driver.expect_no_fault(res)
    second = [c.label for c in driver.model.calls[n:] if c.api not in ("DbgPrintEx", "DbgPrint")]
    assert second == [], f"second DriverUnload made kernel/WFP calls {second}"
    assert driver.model.leaks() == [], f"leaks after two unloads: {driver.model.leaks()}"
    driver.expect_clean()


def test_unload_retries_a_busy_callout(new_run):
    model = KernelModel()
    run = new_run("busy", model).start()
    ids = [r["id"] for r in run.registrations()]
    busy = ids[1]
    model.unregister_script[busy] = [L.STATUS_DEVICE_BUSY, L.STATUS_DEVICE_BUSY]
    res = run.unload()
    run.expect_no_fault(res)
    ck = harness.Checker(f"DriverUnload with FwpsCalloutUnregisterById0({busy}) busy twice")
    calls = model.effective_calls("DriverUnload")
    tries = [i for i, c in enumerate(calls) if c.api == "FwpsCalloutUnregisterById0" and c.args["calloutId"] == busy]
    ck.eq(len(tries), 3, "FwpsCalloutUnregisterById0", f"tries for calloutId {busy} (2 x STATUS_DEVICE_BUSY, then success)")
    for a, b in zip(tries, tries[1:]):
        between = [c for c in calls[a + 1:b] if c.api == "KeDelayExecutionThread"]
        where = f"between {calls[a].label} and {calls[b].label}"
        if ck.true(between, where, "no KeDelayExecutionThread between tries (busy loop)"):
            d = between[0].args
            ck.true(d["Interval"] is not None and d["Interval"] < 0, between[0].label, f"Interval {d['Interval']} is not a relative (negative) wait")
            ck.eq(d["WaitMode"], 0, between[0].label, "WaitMode (KernelMode)")
            ck.eq(d["Alertable"], 0, between[0].label, "Alertable")
        others = [c.label for c in calls[a + 1:b] if c.api == "FwpsCalloutUnregisterById0"]
        ck.eq(others, [], where, "other unregistrations interleaved with the retry")
    for cid in ids:
        n = sum(1 for c in calls if c.api == "FwpsCalloutUnregisterById0" and c.args["calloutId"] == cid)
        if cid != busy:
            ck.eq(n, 1, "FwpsCalloutUnregisterById0", f"tries for calloutId {cid}")
    ck.eq(model.leaks(), [], "DriverUnload", "resources still held")
    ck.done()
    run.expect_clean()


def test_unload_treats_callout_not_found_as_done(new_run):
    model = KernelModel()
    run = new_run("not-found", model).start()
    gone = run.registrations()[2]["id"]
    model.unregister_script[gone] = [L.STATUS_FWP_CALLOUT_NOT_FOUND]
    run.expect_no_fault(run.unload())
    ck = harness.Checker(f"DriverUnload with FwpsCalloutUnregisterById0({gone}) -> STATUS_FWP_CALLOUT_NOT_FOUND")
    calls = model.effective_calls("DriverUnload")
    n = sum(1 for c in calls if c.api == "FwpsCalloutUnregisterById0" and c.args["calloutId"] == gone)
    ck.eq(n, 1, "FwpsCalloutUnregisterById0", f"tries for calloutId {gone}")
    ck.eq([c.label for c in calls if c.api == "KeDelayExecutionThread"], [], "DriverUnload", "waits")
    ck.eq(model.leaks(), [], "DriverUnload", "resources still held")
    ck.true(any(c.api == "IoDeleteDevice" for c in calls), "DriverUnload", "stopped before IoDeleteDevice")
    ck.done()
    run.expect_clean()


def _unload_errors(model):
    return [m["text"] for m in model.debug_messages if m["phase"] == "DriverUnload" and m["level"] == 0]


def test_unregister_failing_once_is_retried_and_reload_succeeds(new_run):
    """Issue 11 case 1: FwpsCalloutUnregisterById0 returns STATUS_NOT_SUPPORTED
    once for one callout. DriverUnload traces it, tries again, deletes the
    device only after every callout is gone, and the next load succeeds."""
    model = KernelModel()
    run = new_run("unregister-not-supported", model).start()
    victim = run.registrations()[1]["id"]
    model.unregister_script[victim] = [L.STATUS_NOT_SUPPORTED]
    run.expect_no_fault(run.unload())
    ck = harness.Checker("DriverUnload with one STATUS_NOT_SUPPORTED")
    tries = [c for c in model.effective_calls("DriverUnload") if c.api == "FwpsCalloutUnregisterById0" and c.args["calloutId"] == victim]
    ck.eq(len(tries), 2, "FwpsCalloutUnregisterById0", f"tries for calloutId {victim}")
    ck.true(any("FwpsCalloutUnregisterById0" in t and "0xc00000bb" in t.lower() for t in _unload_errors(model)),
            "DriverUnload", f"no error trace with the status; errors: {_unload_errors(model)}")
    ck.eq(model.leaks(), [], "DriverUnload", "resources still held")
    ck.done()
    model.driver_object = None
    again = new_run("reload", model)
    assert again.driver_entry() == L.STATUS_SUCCESS, f"reload failed: {again.violation_text()}"
    again.expect_clean()


def test_unregister_that_never_succeeds_pins_device_and_state(new_run):
    """If a registration can never be removed, DriverUnload keeps (leaks) the
    device, link and state instead of freeing what the callout can reach: no
    IoDeleteDevice, no free; the model sees no use-after-free setup."""
    model = KernelModel()
    run = new_run("unregister-stuck", model).start()
    victim = run.registrations()[0]["id"]
    model.unregister_script[victim] = [L.STATUS_NOT_SUPPORTED] * 100
    run.expect_no_fault(run.unload())
    calls = model.effective_calls("DriverUnload")
    ck = harness.Checker("DriverUnload with a callout that cannot be unregistered")
    tries = [c for c in calls if c.api == "FwpsCalloutUnregisterById0" and c.args["calloutId"] == victim]
    ck.true(2 <= len(tries) <= 20, "FwpsCalloutUnregisterById0", f"{len(tries)} tries (bounded retries expected)")
    ck.eq([c.label for c in calls if c.api in ("IoDeleteDevice", "ExFreePoolWithTag", "IoDeleteSymbolicLink")], [],
          "DriverUnload", "device/link/state released while a callout referencing them is registered")
    others = {r["id"] for r in run.registrations()} - {victim}
    ck.eq({int(i) for i in model.live_state()["registered_callouts"]}, {victim}, "DriverUnload",
          f"registrations left (the others {sorted(others)} must still be removed)")
    ck.true(any("leaked" in t for t in _unload_errors(model)), "DriverUnload", "the deliberate leak is not traced")
    ck.eq(model.violations, [], "kernel model", "violations")
    ck.done()
    run.expected_leaks = ["device", "symbolic link", f"callout id {victim}", "pool block", "ETW provider"]


def test_engine_close_failure_is_traced_and_not_retried(new_run):
    """Issue 11 case 2: FwpmEngineClose0 fails with RPC_NT_CALL_FAILED at
    unload. The failure is traced with its status; the close is not retried
    (the handle is consumed either way); teardown continues."""
    model = KernelModel()
    run = new_run("close-fails", model).start()
    model.fail("DriverUnload", "FwpmEngineClose0", 1, L.RPC_NT_CALL_FAILED)
    run.expect_no_fault(run.unload())
    calls = model.effective_calls("DriverUnload")
    ck = harness.Checker("DriverUnload with FwpmEngineClose0 failing")
    ck.eq(len([c for c in calls if c.api == "FwpmEngineClose0"]), 1, "FwpmEngineClose0", "calls (no retry of a consumed handle)")
    ck.true(any("FwpmEngineClose0" in t and "0xc002001b" in t.lower() for t in _unload_errors(model)),
            "DriverUnload", f"no error trace with the status; errors: {_unload_errors(model)}")
    ck.eq(model.violations, [], "kernel model", "violations")
    ck.eq(model.leaks(), [], "DriverUnload", "resources still held")
    ck.done()


def test_no_global_points_to_pool_unload_frees(driver):
    """Unload frees the event log, its ring and the driver state with no static still holding their addresses
    (pool_refs: the model scans the image's writable sections at every free). Issue 15: DriverUnload cleared the
    event log's global pointer only after shutdown had freed the log, so a classify still running could follow it
    into freed pool. Exercised with events recorded and a read parked, so the log is in use when unload comes."""
    layer = L.LAYERS[0]
    driver.classify(layer.layer_id, driver.values_for(layer))
    # READ_EVENTS keeps a cursor per file object (issue 18), so the reads come through one handle.
    handle = 1
    drained = driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_READ_EVENTS, out_len=1 << 16, file_object=handle)
    assert drained.status == L.STATUS_SUCCESS
    parked = driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_READ_EVENTS, out_len=1 << 16, file_object=handle)
    assert parked.status == L.STATUS_PENDING
    driver.expect_no_fault(driver.unload())
    m = driver.model
    assert m.global_sections, "the model knows the image's writable sections"
    frees = m.calls_in("DriverUnload", "ExFreePoolWithTag")
    assert len(frees) >= 3, [c.label for c in frees]
    dangling = [str(v) for v in m.violations if "freed pool still referenced by a global" in v.message]
    assert dangling == [], dangling
    assert [c["status"] for c in driver.completions_of(parked.irp)] == [L.STATUS_CANCELLED]
    driver.expect_clean()
