"""Base Filtering Engine restarts (issue 11 case 3): Weir subscribes to BFE
state changes, reports "not filtering" while BFE is down, re-opens its dynamic
session and re-adds everything when BFE runs again, and can be unloaded in
any of these states."""

import harness
import layouts as L
from kernel_model import KernelModel


def _objects(model):
    objs = model.engine_objects()
    return (len(objs["sublayers"]), len(objs["callouts"]), len(objs["filters"]))


def test_subscribes_with_the_control_device(driver):
    (sub,) = driver.model.bfe_subscriptions.values()
    assert sub["device"] == driver.device_object()
    assert sub["callback"], "null callback"


def test_restart_cycles_reopen_and_readd_everything(driver):
    m = driver.model
    ck = harness.Checker("BFE stop/start cycles")
    first = set(m.engine_objects()["filters"])
    for cycle in range(3):
        where = f"cycle {cycle + 1}"
        for res in driver.bfe_transition(L.FWPM_SERVICE_STOP_PENDING) + driver.bfe_transition(L.FWPM_SERVICE_STOPPED):
            ck.eq(res.error, None, where, "emulator fault in the state callback")
        ck.eq(_objects(m), (0, 0, 0), where, "objects while BFE is stopped")
        st = driver.stats(ck)
        ck.eq(st and st["filtering"], 0, where, "stats filtering flag while BFE is stopped (\"not filtering\")")
        ck.eq(list(m.open_sessions()), [], where, "sessions left open while BFE is stopped (close on STOP_PENDING/STOPPED)")
        for res in driver.bfe_transition(L.FWPM_SERVICE_START_PENDING) + driver.bfe_transition(L.FWPM_SERVICE_RUNNING):
            ck.eq(res.error, None, where, "emulator fault in the state callback")
        ck.eq(_objects(m), (1, 4, 4), where, "(sublayers, callouts, filters) after BFE runs again")
        ck.eq(set(m.engine_objects()["filters"]), first, where, "filter keys re-added")
        ck.eq(len(m.open_sessions()), 1, where, "open sessions")
        st = driver.stats(ck)
        ck.eq(st and st["filtering"], L.FILTERING_ACTIVE, where, "stats filtering flag after BFE runs again")
        # Classification still reaches the callouts and counts.
        layer = L.LAYERS[0]
        r = driver.classify(layer.layer_id, driver.values_for(layer))
        ck.eq(r.action, L.FWP_ACTION_PERMIT, where, "classify after restart")
    ck.eq(m.violations, [], "kernel model", "violations")
    ck.done()


def test_stop_is_traced_and_running_is_traced(driver):
    driver.bfe_restart()
    texts = [m["text"] for m in driver.model.debug_messages if m["phase"] == "BfeStateChange"]
    assert any("not filtering" in t for t in texts), texts
    assert any("filtering" in t and "not" not in t for t in texts), texts


def test_unload_while_bfe_is_down(driver):
    m = driver.model
    driver.bfe_transition(L.FWPM_SERVICE_STOP_PENDING)
    driver.bfe_transition(L.FWPM_SERVICE_STOPPED)
    n = len(m.calls)
    res = driver.unload()
    driver.expect_no_fault(res)
    apis = [c.api for c in m.calls[n:] if c.api not in ("DbgPrintEx",)]
    assert "FwpmEngineClose0" not in apis, f"closed a session twice: {apis}"
    assert m.leaks() == [], m.leaks()
    assert m.violations == [], driver.violation_text()


def test_unload_with_a_dead_session(new_run):
    """BFE stops and the notification is lost (or still queued): unload closes
    a session whose server is gone; FwpmEngineClose0 fails, is traced, not
    retried, and everything else is still released."""
    model = KernelModel()
    run = new_run("dead-session", model).start()
    model.bfe_set_state(L.FWPM_SERVICE_STOPPED)  # no callback delivered
    run.expect_no_fault(run.unload())
    closes = [c for c in model.effective_calls("DriverUnload") if c.api == "FwpmEngineClose0"]
    assert len(closes) == 1 and closes[0].ret == L.RPC_NT_CALL_FAILED
    errs = [m["text"] for m in model.debug_messages if m["phase"] == "DriverUnload"]
    assert any("FwpmEngineClose0" in t and "0xc002001b" in t.lower() for t in errs), errs
    assert model.leaks() == [], model.leaks()


def test_driver_entry_with_bfe_not_running_waits_for_it(new_run):
    """DriverEntry succeeds without BFE (boot order), filters nothing, and adds
    everything on the first RUNNING notification."""
    model = KernelModel()
    model.bfe_state = L.FWPM_SERVICE_STOPPED
    run = new_run("bfe-down-at-load", model).start()
    ck = harness.Checker("DriverEntry with BFE stopped")
    ck.eq(model.calls_in("DriverEntry", "FwpmEngineOpen0"), [], "DriverEntry", "FwpmEngineOpen0 calls (BFE is not running)")
    ck.eq(_objects(model), (0, 0, 0), "DriverEntry", "objects")
    st = run.stats(ck)
    ck.eq(st and st["filtering"], 0, "stats before BFE runs", "filtering flag")
    ck.eq(len(model.bfe_subscriptions), 1, "DriverEntry", "subscriptions")
    ck.true(any("not running" in m["text"] for m in model.debug_messages), "DriverEntry", "no trace saying BFE is not running")
    run.bfe_transition(L.FWPM_SERVICE_START_PENDING)
    run.bfe_transition(L.FWPM_SERVICE_RUNNING)
    ck.eq(_objects(model), (1, 4, 4), "after RUNNING", "objects")
    st = run.stats(ck)
    ck.eq(st and st["filtering"], L.FILTERING_ACTIVE, "stats after RUNNING", "filtering flag")
    ck.eq(model.violations, [], "kernel model", "violations")
    ck.done()


def test_state_callback_racing_unload(new_run):
    """A state callback that arrives once unload has begun (here: the
    subscription cannot be removed, so callbacks keep coming after
    DriverUnload) must not re-open a session and may only touch memory that
    stays valid: unload leaks the device (which keeps the image and its
    statics mapped) and the state instead of freeing them. (The emulator has
    one thread, so a callback interleaved inside DriverUnload cannot be
    modelled; this is the same guard seen from after the unload.)"""
    model = KernelModel()
    run = new_run("racing-callback", model).start()
    model.fail("DriverUnload", "FwpmBfeStateUnsubscribeChanges0", 1, L.RPC_NT_CALL_FAILED)
    for i in range(2, 11):
        model.fail("DriverUnload", "FwpmBfeStateUnsubscribeChanges0", i, L.RPC_NT_CALL_FAILED)
    run.expect_no_fault(run.unload())
    ck = harness.Checker("BFE callbacks after an unload that could not unsubscribe")
    unload = model.effective_calls("DriverUnload")
    ck.eq([c.label for c in unload if c.api in ("IoDeleteDevice", "ExFreePoolWithTag")], [], "DriverUnload",
          "device or state freed while the BFE subscription (which references them) is active")
    ck.eq(len(model.open_sessions()), 0, "DriverUnload", "open sessions")
    for res in run.bfe_restart():
        ck.eq(res.error, None, "BFE callback after unload", "emulator fault")
    ck.eq([c.label for c in model.calls_in("BfeStateChange", "FwpmEngineOpen0")], [], "BFE callback after unload",
          "sessions opened after unload began")
    ck.eq(model.violations, [], "kernel model", "violations")
    ck.done()
    run.expected_leaks = ["device", "symbolic link", "pool block", "BFE state subscription", "callout id", "ETW provider"]
