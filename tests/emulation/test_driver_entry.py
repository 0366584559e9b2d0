"""DriverEntry on a healthy system: what it calls, with which arguments, and what it leaves behind."""

import uuid

import harness
import layouts as L

EXPECTED_ORDER = (
    # TraceLevel from the service key's Parameters subkey
    ["ZwOpenKey", "ZwOpenKey", "ZwClose", "ZwQueryValueKey", "ZwClose"]
    # FailMode from the same key (absent here: fail open)
    + ["ZwOpenKey", "ZwOpenKey", "ZwClose", "ZwQueryValueKey", "ZwClose"]
    # the state, then the lock guarding the BFE session
    + ["KeInitializeEvent", "ExAllocatePool2"]
    # the ETW provider, before anything that can trace or write events
    + ["EtwRegister"]
    # the device, its DACL and mandatory label (the SACL's ACL) before the link
    + ["IoCreateDevice", "RtlCreateSecurityDescriptor", "RtlCreateAcl", "RtlAddAccessAllowedAce", "RtlAddAccessAllowedAce",
       "RtlSetDaclSecurityDescriptor", "RtlCreateAcl", "ObOpenObjectByPointer", "ZwSetSecurityObject", "ZwClose",
       "IoCreateSymbolicLink"]
    # the event log, then its ring's slots
    + ["ExAllocatePool2", "ExAllocatePool2"]
    # the stored policy (none on this healthy system: not found, monitor mode), the time of
    # that read for GET_POLICY_STATUS
    + ["ZwCreateFile", "KeQuerySystemTimePrecise"]
    + ["FwpsCalloutRegister3"] * 4
    # the BFE session lock is held inside a critical region
    + ["FwpmBfeStateSubscribeChanges0", "FwpmBfeStateGet0", "KeAreApcsDisabled", "KeEnterCriticalRegion",
       "KeWaitForSingleObject"]
    # fail open: no fail-closed set left from an earlier closed run (one probe, NOT_FOUND)
    + ["FwpmEngineOpen0", "FwpmProviderDeleteByKey0", "FwpmTransactionBegin0", "FwpmSubLayerAdd0"]
    + ["FwpmCalloutAdd0"] * 4
    + ["FwpmFilterAdd0"] * 4
    + ["FwpmTransactionCommit0", "KeSetEvent", "KeLeaveCriticalRegion"]
    # the event log's completion DPC, once the state exists
    + ["KeInitializeDpc"]
)


def _image_range(run):
    return run.module.base, run.module.base + run.module.image_size


def test_driver_entry_call_sequence(driver):
    ck = harness.Checker("DriverEntry call sequence")
    calls = driver.model.effective_calls("DriverEntry")
    ck.eq([c.api for c in calls], EXPECTED_ORDER, "DriverEntry", "ordered kernel/WFP call list")
    for c in calls:
        if c.api in ("ExAllocatePool2", "FwpmBfeStateGet0", "KeInitializeEvent", "KeSetEvent", "KeInitializeDpc",
                     "KeEnterCriticalRegion", "KeLeaveCriticalRegion", "KeQuerySystemTimePrecise"):
            continue
        if c.api == "ZwQueryValueKey" and c.args.get("ValueName") == "FailMode":
            ck.eq(L.status_name(c.ret), L.status_name(L.STATUS_OBJECT_NAME_NOT_FOUND), c.label, "return value (no FailMode)")
            continue
        if c.api == "FwpmProviderDeleteByKey0":
            ck.eq(c.ret, 0xC0220005, c.label, "return value (STATUS_FWP_PROVIDER_NOT_FOUND: nothing to remove)")
            continue
        if c.api == "ZwCreateFile":
            ck.eq(L.status_name(c.ret), L.status_name(L.STATUS_OBJECT_NAME_NOT_FOUND), c.label, "return value (no stored policy)")
            continue
        ck.eq(c.ret, 0, c.label, "return value")
    ck.done()
    driver.expect_clean()


def test_driver_entry_arguments(driver):
    m = driver.model
    ck = harness.Checker("DriverEntry arguments")
    layer_keys = {str(layer.key) for layer in L.LAYERS}

    (dev_call,) = m.calls_in("DriverEntry", "IoCreateDevice")
    a = dev_call.args
    ck.eq(a["DeviceName"], "\\Device\\Weir", dev_call.label, "DeviceName")
    ck.eq(a["DeviceType"], L.FILE_DEVICE_NETWORK, dev_call.label, "DeviceType")
    ck.true(a["DeviceCharacteristics"] & L.FILE_DEVICE_SECURE_OPEN, dev_call.label,
            f"DeviceCharacteristics {a['DeviceCharacteristics']:#x} lacks FILE_DEVICE_SECURE_OPEN")
    ck.eq(a["DeviceCharacteristics"], L.FILE_DEVICE_SECURE_OPEN, dev_call.label, "DeviceCharacteristics")
    ck.eq(int(a["DriverObject"], 16), driver.driver_object, dev_call.label, "DriverObject")
    device = int(a["created_device"], 16)

    (link,) = m.calls_in("DriverEntry", "IoCreateSymbolicLink")
    ck.eq(link.args["SymbolicLinkName"], "\\??\\Weir", link.label, "SymbolicLinkName")
    ck.eq(link.args["DeviceName"], "\\Device\\Weir", link.label, "DeviceName")

    lo, hi = _image_range(driver)
    regs = m.calls_in("DriverEntry", "FwpsCalloutRegister3")
    rt_keys = []
    for c in regs:
        co = c.args["callout"]
        rt_keys.append(co["calloutKey"])
        ck.eq(int(c.args["deviceObject"], 16), device, c.label, "deviceObject (must be the created device)")
        ck.true(lo <= co["classifyFn"] < hi, c.label, f"callout->classifyFn {co['classifyFn']:#x} is not inside the image")
        ck.true(lo <= co["notifyFn"] < hi, c.label, f"callout->notifyFn {co['notifyFn']:#x} is not inside the image")
        ck.true(co["flowDeleteFn"] == 0 or lo <= co["flowDeleteFn"] < hi, c.label, "callout->flowDeleteFn outside the image")
        ck.true(c.args["calloutId"] != "0x0", c.label, "calloutId out pointer is null (the id is needed to unregister)")
    ck.eq(len(set(rt_keys)), 4, "FwpsCalloutRegister3", "number of distinct callout keys")

    (open_call,) = m.calls_in("DriverEntry", "FwpmEngineOpen0")
    oa = open_call.args
    ck.eq(oa["serverName"], None, open_call.label, "serverName")
    ck.eq(oa["authnService"], L.RPC_C_AUTHN_WINNT, open_call.label, "authnService")
    ck.eq(oa["authIdentity"], "0x0", open_call.label, "authIdentity")
    ck.true(oa["session"] is not None, open_call.label, "session is null (a dynamic session is required)")
    if oa["session"]:
        ck.true(oa["session"]["flags"] & L.FWPM_SESSION_FLAG_DYNAMIC, open_call.label,
                f"session->flags {oa['session']['flags']:#x} lacks FWPM_SESSION_FLAG_DYNAMIC")
    handle = oa.get("assigned_handle")

    for api in ("FwpmTransactionBegin0", "FwpmSubLayerAdd0", "FwpmCalloutAdd0", "FwpmFilterAdd0", "FwpmTransactionCommit0"):
        for c in m.calls_in("DriverEntry", api):
            ck.eq(c.args["engineHandle"], handle, c.label, "engineHandle (must be the opened session)")
    (begin,) = m.calls_in("DriverEntry", "FwpmTransactionBegin0")
    ck.eq(begin.args["flags"], 0, begin.label, "flags")

    (sub_call,) = m.calls_in("DriverEntry", "FwpmSubLayerAdd0")
    sub = sub_call.args["subLayer"]
    ck.true(sub["displayData"]["name"], sub_call.label, "subLayer->displayData.name is empty")
    ck.eq(sub["providerKey"], "0x0", sub_call.label, "subLayer->providerKey")
    ck.true(uuid.UUID(sub["subLayerKey"]) != uuid.UUID(int=0), sub_call.label, "subLayer->subLayerKey is the null GUID")

    callouts = {}
    for c in m.calls_in("DriverEntry", "FwpmCalloutAdd0"):
        co = c.args["callout"]
        callouts[co["calloutKey"]] = co
        ck.true(co["calloutKey"] in rt_keys, c.label, f"callout->calloutKey {co['calloutKey']} was not registered with FwpsCalloutRegister3")
        ck.true(co["applicableLayer"] in layer_keys, c.label, f"callout->applicableLayer {co['applicableLayer']} is not one of Weir's layers")
        ck.true(co["displayData"]["name"], c.label, "callout->displayData.name is empty")
    ck.eq(sorted(c["applicableLayer"] for c in callouts.values()), sorted(layer_keys), "FwpmCalloutAdd0", "applicableLayers")
    ck.eq(sorted(callouts), sorted(rt_keys), "FwpmCalloutAdd0", "callout keys vs FwpsCalloutRegister3 keys")

    filter_layers = []
    for c in m.calls_in("DriverEntry", "FwpmFilterAdd0"):
        f = c.args["filter"]
        filter_layers.append(f["layerKey"])
        ck.true(f["flags"] & L.FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED, c.label,
                f"filter->flags {f['flags']:#x} lacks FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED (0x10)")
        ck.eq(f["action"]["type"], L.FWP_ACTION_CALLOUT_TERMINATING, c.label, "filter->action.type")
        co = callouts.get(f["action"]["calloutKey"])
        if ck.true(co is not None, c.label, f"filter->action.calloutKey {f['action']['calloutKey']} is not an added callout"):
            ck.eq(f["layerKey"], co["applicableLayer"], c.label, "filter->layerKey (must equal its callout's applicableLayer)")
        ck.true(f["action"]["calloutKey"] in rt_keys, c.label, "filter->action.calloutKey is not a registered (FWPS) callout key")
        ck.eq(f["subLayerKey"], sub["subLayerKey"], c.label, "filter->subLayerKey (must be Weir's sublayer)")
        ck.eq(f["numFilterConditions"], 0, c.label, "filter->numFilterConditions")
        ck.true(f["displayData"]["name"], c.label, "filter->displayData.name is empty")
    ck.eq(sorted(filter_layers), sorted(layer_keys), "FwpmFilterAdd0", "layerKeys (one filter per layer)")
    # Layer order: connect v4, connect v6, recv-accept v4, recv-accept v6 (also the WEIR_STATS order).
    ordered = [str(layer.key) for layer in L.LAYERS]
    ck.eq([c["applicableLayer"] for c in callouts.values()], ordered, "FwpmCalloutAdd0", "applicableLayer order")
    ck.eq(filter_layers, ordered, "FwpmFilterAdd0", "layerKey order")
    ck.eq(list(callouts), rt_keys, "FwpmCalloutAdd0", "calloutKey order (same as FwpsCalloutRegister3)")

    allocs = m.calls_in("DriverEntry", "ExAllocatePool2")
    ck.eq(len(allocs), 3, "ExAllocatePool2", "allocations (event ring slots, event log, driver state)")
    for alloc in allocs:
        ck.true(int(alloc.args["Flags"], 16) & L.POOL_FLAG_NON_PAGED, alloc.label, f"Flags {alloc.args['Flags']} lacks POOL_FLAG_NON_PAGED")
        ck.true(not int(alloc.args["Flags"], 16) & L.POOL_FLAG_PAGED, alloc.label, f"Flags {alloc.args['Flags']} asks for paged pool")
    (dpc,) = m.calls_in("DriverEntry", "KeInitializeDpc")
    ck.true(any(int(a.args["returned"], 16) <= int(dpc.args["Dpc"], 16) < int(a.args["returned"], 16) + a.args["NumberOfBytes"]
                for a in allocs), dpc.label, "the KDPC is not inside a non-paged pool block")
    ck.done()
    driver.expect_clean()


def test_driver_entry_leaves_exactly_the_loaded_state(driver):
    m = driver.model
    ck = harness.Checker("state after DriverEntry")
    state = m.live_state()
    ck.eq([d["name"] for d in state["devices"]], ["\\Device\\Weir"], "kernel", "live devices")
    ck.eq(state["symlinks"], {"\\??\\Weir": "\\Device\\Weir"}, "kernel", "live symbolic links")
    ck.eq(len(state["open_sessions"]), 1, "filter engine", "open sessions")
    ck.eq(state["open_transactions"], [], "filter engine", "open transactions")
    ck.eq(len(state["registered_callouts"]), 4, "filter engine", "registered run-time callouts")
    objs = state["engine_objects"]
    ck.eq((len(objs["sublayers"]), len(objs["callouts"]), len(objs["filters"])), (1, 4, 4), "filter engine",
          "(sublayers, callouts, filters) committed")
    ck.eq(len(state["pool_outstanding"]), 3, "pool", "outstanding allocations (the driver state, the event log, its ring slots)")
    ck.eq(len(state["bfe"]["subscriptions"]), 1, "filter engine", "BFE state subscriptions")
    ck.eq(state["kernel_handles"], {}, "kernel", "open kernel handles (the temporary ones are closed)")

    lo, hi = _image_range(driver)
    ck.true(lo <= driver.unload_fn < hi, "DRIVER_OBJECT+0x68", f"DriverUnload {driver.unload_fn:#x} is not inside the image")
    handled = {L.IRP_MJ_CREATE: "CREATE", L.IRP_MJ_CLOSE: "CLOSE", L.IRP_MJ_CLEANUP: "CLEANUP", L.IRP_MJ_DEVICE_CONTROL: "DEVICE_CONTROL"}
    for i, fn in enumerate(driver.major):
        where = f"DRIVER_OBJECT.MajorFunction[{i:#x}]"
        if i in handled:
            ck.true(lo <= fn < hi, where, f"IRP_MJ_{handled[i]} routine {fn:#x} is not inside the image")
        else:
            ck.eq(fn, 0, where, "unhandled major function routine")
    ck.done()
    driver.expect_clean()


def test_driver_entry_traces_at_info_level(driver):
    msgs = [c for c in driver.model.calls_in("DriverEntry", "DbgPrintEx")]
    assert msgs, "DriverEntry printed nothing through DbgPrintEx"
    for c in msgs:
        assert c.args["Level"] == L.DPFLTR_INFO_LEVEL, f"{c.label} Level {c.args['Level']} for {c.args['text']!r}: expected INFO (3)"
