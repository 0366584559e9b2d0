"""classifyFn, called through the pointer the driver registered, with synthetic ALE inputs."""

import ipaddress

import pytest

import harness
import layouts as L

LAYER_IDS = [layer.name for layer in L.LAYERS]


@pytest.fixture(autouse=True, params=["DISPATCH_LEVEL", "PASSIVE_LEVEL"])
def classify_irql(request, monkeypatch):
    """Every classify test runs twice: classifyFn at DISPATCH_LEVEL and at
    PASSIVE_LEVEL (the filter engine calls it at either); the model fails any
    call above its documented IRQL."""
    import kernel_model
    monkeypatch.setattr(harness, "DEFAULT_CLASSIFY_IRQL", getattr(kernel_model, request.param))
    return request.param


def _tuple(layer):
    if layer.ipv6:
        return dict(local="fe80::2", lport=50000, proto=6, remote="2001:db8::1", rport=443)
    return dict(local="10.0.0.2", lport=50000, proto=6, remote="93.184.216.34", rport=443)


def _expect_counters(ck, stats, expected, where):
    if stats is None:  # the IOCTL itself failed; already recorded in ck
        return
    for layer in L.LAYERS:
        ck.eq(stats["layers"][layer.index], expected.get(layer.name, {"classified": 0, "permitted": 0, "write_right_absent": 0}),
              where, f"WEIR_STATS.layers[{layer.index}] ({layer.name})")


def _registered_fns(driver):
    """Every callout must reach the same behaviour; use each registration's own classifyFn."""
    regs = driver.registrations()
    assert len(regs) == 4, f"expected 4 FwpsCalloutRegister3 registrations, got {len(regs)}"
    return [r["classifyFn"] for r in regs]


@pytest.mark.parametrize("layer", L.LAYERS, ids=LAYER_IDS)
def test_classify_permits_with_write_right(driver, layer):
    ck = harness.Checker(f"classify at {layer.name} with FWPS_RIGHT_ACTION_WRITE")
    t = _tuple(layer)
    for i, fn in enumerate(_registered_fns(driver)):
        r = driver.classify(layer.layer_id, driver.values_for(layer, **t), rights=L.FWPS_RIGHT_ACTION_WRITE, fn=fn)
        where = f"classifyFn of FwpsCalloutRegister3#{i + 1} (layer id {layer.layer_id})"
        driver.expect_no_fault(r.run)
        ck.eq(r.action, L.FWP_ACTION_PERMIT, where, "classifyOut->actionType")
        ck.eq(r.rights, L.FWPS_RIGHT_ACTION_WRITE, where, "classifyOut->rights (must stay set without CLEAR_ACTION_RIGHT)")
        ck.eq(r.out_after[4:24], r.out_before[4:24], where, "classifyOut bytes 4..24 (outContext, filterId)")
        ck.eq(r.out_after[28:], r.out_before[28:], where, "classifyOut->flags/reserved")
        info = [m for m in r.messages]
        ck.true(info, where, "no DbgPrintEx trace for the classification")
        text = " ".join(info)
        for part in (layer.name, str(ipaddress.ip_address(t["local"])), str(ipaddress.ip_address(t["remote"])),
                     str(t["lport"]), str(t["rport"]), "4242"):
            ck.true(part in text, where, f"trace {text!r} lacks {part!r} (tuple or pid decoded wrongly)")
    levels = {c.args["Level"] for c in driver.model.calls_in("classify", "DbgPrintEx")}
    ck.eq(levels, {L.DPFLTR_INFO_LEVEL}, "DbgPrintEx (classify)", "Level")
    stats = driver.stats(ck)
    _expect_counters(ck, stats, {layer.name: {"classified": 4, "permitted": 4, "write_right_absent": 0}}, "IOCTL_WEIR_GET_STATS")
    ck.done()
    driver.expect_clean()


@pytest.mark.parametrize("layer", L.LAYERS, ids=LAYER_IDS)
def test_classify_leaves_action_alone_without_write_right(driver, layer):
    ck = harness.Checker(f"classify at {layer.name} without FWPS_RIGHT_ACTION_WRITE")
    for action_in in (L.FWP_ACTION_BLOCK, L.FWP_ACTION_PERMIT):
        r = driver.classify(layer.layer_id, driver.values_for(layer, **_tuple(layer)), rights=0, action_in=action_in)
        driver.expect_no_fault(r.run)
        ck.eq(r.out_after, r.out_before, f"classifyFn (layer id {layer.layer_id}, actionType in {action_in:#x})",
              "classifyOut (must be untouched when the write right is clear)")
    stats = driver.stats(ck)
    _expect_counters(ck, stats, {layer.name: {"classified": 2, "permitted": 0, "write_right_absent": 2}}, "IOCTL_WEIR_GET_STATS")
    ck.done()
    driver.expect_clean()


@pytest.mark.parametrize("layer", L.LAYERS, ids=LAYER_IDS)
def test_classify_clears_write_right_when_filter_asks(driver, layer):
    ck = harness.Checker(f"classify at {layer.name} with FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT")
    r = driver.classify(layer.layer_id, driver.values_for(layer, **_tuple(layer)), rights=L.FWPS_RIGHT_ACTION_WRITE,
                        filter_flags=L.FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT)
    driver.expect_no_fault(r.run)
    where = f"classifyFn (layer id {layer.layer_id}, filter->flags CLEAR_ACTION_RIGHT)"
    ck.eq(r.action, L.FWP_ACTION_PERMIT, where, "classifyOut->actionType")
    ck.eq(r.rights & L.FWPS_RIGHT_ACTION_WRITE, 0, where, "classifyOut->rights write bit")
    # Other filter flags must not clear it.
    r2 = driver.classify(layer.layer_id, driver.values_for(layer, **_tuple(layer)), rights=L.FWPS_RIGHT_ACTION_WRITE,
                         filter_flags=0xFFFE)
    ck.eq(r2.rights & L.FWPS_RIGHT_ACTION_WRITE, 1, f"classifyFn (layer id {layer.layer_id}, filter->flags 0xfffe)",
          "classifyOut->rights write bit")
    stats = driver.stats(ck)
    _expect_counters(ck, stats, {layer.name: {"classified": 2, "permitted": 2, "write_right_absent": 0}}, "IOCTL_WEIR_GET_STATS")
    ck.done()
    driver.expect_clean()


def test_classify_reads_process_id_only_when_flagged(driver):
    ck = harness.Checker("classify metadata")
    layer = L.LAYERS[2]
    vals = driver.values_for(layer)
    r = driver.classify(layer.layer_id, vals, pid=4242, pid_valid=True)
    ck.true(r.messages and all("4242" in m for m in r.messages), "classifyFn (PROCESS_ID bit set, processId 4242)",
            f"trace {r.messages!r} lacks the process id")
    r = driver.classify(layer.layer_id, vals, pid=777, pid_valid=False)
    ck.true(r.messages and all("777" not in m for m in r.messages),
            "classifyFn (inMetaValues->currentMetadataValues without FWPS_METADATA_FIELD_PROCESS_ID, processId 777)",
            f"trace {r.messages!r} reports a process id that is not valid")
    r = driver.classify(layer.layer_id, vals, meta=False)
    driver.expect_no_fault(r.run)
    ck.eq(r.action, L.FWP_ACTION_PERMIT, "classifyFn (inMetaValues NULL)", "classifyOut->actionType")
    stats = driver.stats(ck)
    _expect_counters(ck, stats, {layer.name: {"classified": 3, "permitted": 3, "write_right_absent": 0}}, "IOCTL_WEIR_GET_STATS")
    ck.done()
    driver.expect_clean()


# Malformed inputs: (name, layer, kwargs for classify, expect_counted)
def _malformed_cases(driver):
    v4, v6 = L.LAYERS[0], L.LAYERS[1]
    a4, a6 = L.LAYERS[2], L.LAYERS[3]
    good4 = driver.values_for(v4)
    good6 = driver.values_for(v6)
    wrong_types = list(driver.values_for(a4))
    wrong_types[L.FIELD_LOCAL_PORT] = (L.FWP_UINT32, 50000)
    wrong_types[L.FIELD_PROTOCOL] = (L.FWP_UINT16, 6)
    v4_at_v6 = driver.values_for(v4)  # UINT32 addresses at a V6 layer
    null_bytes16 = list(good6)
    null_bytes16[L.FIELD_REMOTE_ADDRESS] = ("raw", (L.FWP_BYTE_ARRAY16_TYPE, 0))
    v6_at_v4 = driver.values_for(a6)
    uint64_null = list(good4)
    uint64_null[L.FIELD_REMOTE_ADDRESS] = ("raw", (L.FWP_UINT64, 0))
    return [
        ("too few values (3)", v6, dict(values=good6[:3]), True),
        ("no values (count 0, array NULL)", a4, dict(values=[], null_values_array=True, value_count=0), True),
        ("count 8 but incomingValue NULL", v4, dict(values=good4, null_values_array=True), None),
        ("wrong value types (ports UINT32, protocol UINT16)", a4, dict(values=wrong_types), True),
        ("IPv4 values at a V6 layer", a6, dict(values=v4_at_v6), True),
        ("IPv6 values at a V4 layer", v4, dict(values=v6_at_v4), True),
        ("BYTE_ARRAY16 value with NULL pointer", v6, dict(values=null_bytes16), True),
        ("UINT64 value with NULL pointer", v4, dict(values=uint64_null), True),
        ("unknown layer id 20", None, dict(values=good4, layer_id=20), False),
        ("unknown layer id 0xFFFF", None, dict(values=good6, layer_id=0xFFFF), False),
        ("inFixedValues NULL", v4, dict(values=good4, null_fixed=True), None),
        ("filter NULL", a6, dict(values=driver.values_for(a6), null_filter=True), True),
        ("classifyOut NULL", v6, dict(values=good6, null_out=True), None),
        ("inMetaValues NULL", a4, dict(values=driver.values_for(a4), meta=False), True),
    ]


def test_classify_malformed_inputs_do_not_fault(driver):
    ck = harness.Checker("classify with malformed inputs")
    expected = {layer.name: {"classified": 0, "permitted": 0, "write_right_absent": 0} for layer in L.LAYERS}
    uncertain = {layer.name: 0 for layer in L.LAYERS}
    for name, layer, kw, counted in _malformed_cases(driver):
        kw = dict(kw)
        layer_id = kw.pop("layer_id", layer.layer_id if layer else 0)
        values = kw.pop("values")
        r = driver.classify(layer_id, values, **kw)
        where = f"classifyFn [{name}]"
        if r.run.error:
            ck.true(False, where, f"emulator fault {r.run.error}")
            continue
        if r.out_after:
            changed = r.out_after != r.out_before
            permitted_only = r.out_after[4:] == r.out_before[4:] and r.action == L.FWP_ACTION_PERMIT
            ck.true(not changed or permitted_only, where,
                    f"classifyOut changed other than to PERMIT: before {r.out_before.hex()} after {r.out_after.hex()}")
            if layer is None:
                ck.true(not changed, where, "classifyOut changed for a layer that is not Weir's")
        if layer is not None:
            if counted:
                expected[layer.name]["classified"] += 1
                if r.action == L.FWP_ACTION_PERMIT:
                    expected[layer.name]["permitted"] += 1
                else:
                    expected[layer.name]["write_right_absent"] += 1
            elif counted is None:
                uncertain[layer.name] += 1
    stats = driver.stats(ck)
    for layer in L.LAYERS if stats else []:
        got = stats["layers"][layer.index]
        exp = expected[layer.name]
        where = f"IOCTL_WEIR_GET_STATS.layers[{layer.index}] ({layer.name})"
        ck.true(exp["classified"] <= got["classified"] <= exp["classified"] + uncertain[layer.name], where,
                f"classified {got['classified']}, expected {exp['classified']} (+ up to {uncertain[layer.name]} for NULL-pointer cases)")
        ck.eq(got["classified"], got["permitted"] + got["write_right_absent"], where, "classified vs permitted + write_right_absent")
    ck.done()
    driver.expect_clean()


def test_notify_and_flow_delete_callbacks(driver):
    ck = harness.Checker("notifyFn / flowDeleteFn")
    for reg in driver.registrations():
        fkey = driver.alloc(16, bytes(range(16)))
        flt = driver.alloc(L.FWPS_FILTER3_SIZE)
        for notify_type in (0, 1, 2):  # ADD_FILTER, DELETE_FILTER, ADD_FILTER_POST_COMMIT
            res = driver.call(reg["notifyFn"], [notify_type, fkey, flt], f"notifyFn({notify_type}) of {reg['call']}")
            if ck.true(res.error is None, res.what, f"emulator fault {res.error}"):
                ck.eq(res.status, L.STATUS_SUCCESS, res.what, "return value")
        if reg["flowDeleteFn"]:
            res = driver.call(reg["flowDeleteFn"], [L.FWPS_LAYER_ALE_AUTH_CONNECT_V4, reg["id"], 0x1234], f"flowDeleteFn of {reg['call']}")
            ck.true(res.error is None, res.what, f"emulator fault {res.error}")
    ck.done()
    driver.expect_clean()


@pytest.mark.parametrize("parameters", [{"TraceLevel": (L.REG_DWORD, 2)}, {}, None],
                         ids=["TraceLevel-2", "no-TraceLevel", "no-Parameters-key"])
def test_classify_skips_tracing_below_trace_level_info(new_run, parameters):
    """Per-connection traces follow the TraceLevel registry value read once in
    DriverEntry (3 = DPFLTR_INFO_LEVEL turns them on). Below it, or without
    the value or key, classify formats and prints nothing, calls no debugger
    routine at all, and still permits and counts."""
    from kernel_model import KernelModel
    model = KernelModel()
    model.parameters = parameters
    driver = new_run("trace-level", model).start()
    layer = L.LAYERS[0]
    ck = harness.Checker(f"classify at {layer.name} with Parameters {parameters}")
    n = len(driver.model.calls)
    r = driver.classify(layer.layer_id, driver.values_for(layer, **_tuple(layer)), rights=L.FWPS_RIGHT_ACTION_WRITE)
    driver.expect_no_fault(r.run)
    ck.eq(r.action, L.FWP_ACTION_PERMIT, "classifyFn", "classifyOut->actionType")
    # The event log's clock read is the one call recording an event makes; the
    # APC check (and at PASSIVE_LEVEL the critical region) is classify's own.
    own = ("KeQuerySystemTimePrecise", "KeAreApcsDisabled", "KeEnterCriticalRegion", "KeLeaveCriticalRegion")
    ck.eq([c.label for c in driver.model.calls[n:] if c.api not in own], [], "classifyFn",
          "kernel calls (none: no trace, no filter query)")
    stats = driver.stats(ck)
    _expect_counters(ck, stats, {layer.name: {"classified": 1, "permitted": 1, "write_right_absent": 0}}, "IOCTL_WEIR_GET_STATS")
    ck.done()
    driver.expect_clean()
