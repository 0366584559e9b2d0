"""The `Weir` ETW provider on the real image: registered in DriverEntry before the callouts and unregistered
in DriverUnload after them, enabled by a session through its enable callback, and the TraceLogging events it
writes (decoded by etw_model.decode_event, a reader written from the format description) for each keyword.
Also classifyFn's instruction count with ETW off and with each keyword on (test-artifacts/emulation/
etw-classify-instructions.json; the figures in README.md come from here)."""

import json
import struct

import pytest

import harness
import layouts as L
from etw_model import WEIR_PROVIDER_ID, enable_session, tracelogging_id
from kernel_model import PoolArena
from test_policy import ARTIFACTS, _policy, classify_vector, expect_set, vectors  # noqa: F401 (fixture)

CONNECTIONS, BLOCKS, POLICY, FILTERING, LIFECYCLE, ERRORS = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
KEYWORDS = {"CONNECTIONS": CONNECTIONS, "BLOCKS": BLOCKS, "POLICY": POLICY, "FILTERING": FILTERING,
            "LIFECYCLE": LIFECYCLE, "ERRORS": ERRORS}
VERBOSE = 5
FWP_TOKEN_ACCESS_INFORMATION_TYPE = 16
LAYER_NAMES = {"connect-v4": "ALE_AUTH_CONNECT_V4", "connect-v6": "ALE_AUTH_CONNECT_V6",
               "accept-v4": "ALE_AUTH_RECV_ACCEPT_V4", "accept-v6": "ALE_AUTH_RECV_ACCEPT_V6"}
APP = "\\device\\harddiskvolume3\\program files\\weir test\\client.exe"


@pytest.fixture
def driver(new_run) -> harness.DriverRun:
    d = new_run("driver")
    d.model.pool_arena = PoolArena(d.se)
    d.se.emu.config = d.se.emu.config.model_copy(update={"max_api_count": 5_000_000, "timeout": 600})
    # Per-connection DbgPrintEx traces off (TraceLevel 2, as driver.inx installs it): classify's cost is production's.
    d.model.parameters = {"TraceLevel": (L.REG_DWORD, 2)}
    return d.start()


def _values(driver, layer, app=APP):
    vals = driver.values_for(layer, local="10.0.0.2", lport=50000, proto=6, remote="93.184.216.34", rport=443)
    vals[0] = ("blob", app.encode("utf-16-le") + b"\0\0")
    return vals


def token_access(driver, sid: bytes) -> int:
    """An FWP_BYTE_BLOB holding a TOKEN_ACCESS_INFORMATION whose SidHash -> SidAttr[0].Sid is `sid`, with
    absolute pointers into the blob as WFP passes ALE_USER_ID (FWP_TOKEN_ACCESS_INFORMATION_TYPE)."""
    hash_at, attrs_at, sid_at = 96, 112, 128
    size = sid_at + len(sid)
    base = driver.alloc(size, b"\0" * size, tag="weir.test.token")
    b = bytearray(size)
    struct.pack_into("<Q", b, 0, base + hash_at)
    struct.pack_into("<IIQ", b, hash_at, 1, 0, base + attrs_at)
    struct.pack_into("<QI", b, attrs_at, base + sid_at, 0)
    b[sid_at:] = sid
    driver.mem.write(base, bytes(b))
    return driver.alloc(16, struct.pack("<IIQ", size, 0, base), tag="weir.test.tokenblob")


def sid_bytes(text: str) -> bytes:
    parts = [int(x) for x in text.split("-")[1:]]
    rev, auth, subs = parts[0], parts[1], parts[2:]
    return bytes([rev, len(subs)]) + auth.to_bytes(6, "big") + b"".join(struct.pack("<I", s) for s in subs)


def _events(driver, name=None):
    return [e for e in driver.model.etw_events if name is None or e["name"] == name]


def test_provider_id_is_the_name_derived_one():
    # The derivation against the pair Microsoft's TRACELOGGING_DEFINE_PROVIDER documentation publishes.
    assert str(tracelogging_id("MyCompany.MyComponent")) == "ce5fa4ea-ab00-5402-8b76-9f76ac858fb5"
    assert tracelogging_id("Weir") == WEIR_PROVIDER_ID


def test_provider_is_registered_before_the_callouts_and_unregistered_after_them(driver):
    calls = driver.model.calls
    (reg,) = [c for c in calls if c.api == "EtwRegister"]
    assert reg.args["ProviderId"] == str(WEIR_PROVIDER_ID)
    first_callout = min(c.seq for c in calls if c.api == "FwpsCalloutRegister3")
    assert reg.seq < first_callout, "EtwRegister must precede the callouts"
    enable_session(driver, VERBOSE, LIFECYCLE)
    res = driver.unload()
    driver.expect_no_fault(res)
    (unreg,) = [c for c in driver.model.calls if c.api == "EtwUnregister"]
    last_unregister = max(c.seq for c in driver.model.calls if c.api == "FwpsCalloutUnregisterById0")
    device_deleted = max(c.seq for c in driver.model.calls if c.api == "IoDeleteDevice")
    assert unreg.seq > last_unregister and unreg.seq > device_deleted, "EtwUnregister must follow the callouts and device"
    stopping = _events(driver, "DriverStopping")
    assert len(stopping) == 1 and stopping[0]["fields"]["Version"], stopping
    assert driver.model.etw_leaks() == []
    driver.expect_clean()


def test_a_connections_session_gets_every_classification_with_the_event_streams_fields(driver):
    runs = enable_session(driver, VERBOSE, CONNECTIONS)
    assert runs and all(r.error is None for r in runs)
    user = "S-1-5-21-1004336348-1177238915-682003330-1001"
    for layer in L.LAYERS:
        vals = _values(driver, layer)
        if layer.outbound:
            vals[1] = ("raw", (FWP_TOKEN_ACCESS_INFORMATION_TYPE, token_access(driver, sid_bytes(user))))
        r = driver.classify(layer.layer_id, vals, pid=4242)
        assert r.run.error is None
    got = _events(driver, "Connection")
    assert len(got) == 4, [e["name"] for e in driver.model.etw_events]
    for layer, e in zip(L.LAYERS, got):
        f = e["fields"]
        assert e["provider"] == "Weir" and e["keyword"] == CONNECTIONS and e["level"] == VERBOSE
        assert f["Layer"] == LAYER_NAMES[layer.name], f
        assert f["Decision"] == "permit" and f["HasRule"] is False
        assert (f["Protocol"], f["ProtocolNumber"]) == ("tcp", 6)
        assert f["Direction"] == ("outbound" if layer.outbound else "inbound")
        assert f["ProcessId"] == 4242
        assert f["Image"] == APP
        assert f["User"] == (user if layer.outbound else ""), f
        if layer.ipv6:
            assert f["LocalAddress"] and ":" in f["RemoteAddress"]
        else:
            assert (f["LocalAddress"], f["LocalPort"], f["RemoteAddress"], f["RemotePort"]) == \
                ("10.0.0.2", 50000, "93.184.216.34", 443)
        assert e["irql"] == harness.DEFAULT_CLASSIFY_IRQL
    assert driver.model.etw_unwanted == []
    driver.expect_clean()


def test_with_no_session_classify_never_calls_etw_and_a_disable_stops_it(driver):
    layer = L.LAYERS[0]
    driver.classify(layer.layer_id, _values(driver, layer))
    assert driver.model.etw_writes == 0
    enable_session(driver, VERBOSE, CONNECTIONS)
    driver.classify(layer.layer_id, _values(driver, layer))
    assert driver.model.etw_writes == 1
    enable_session(driver, 0, 0, code=0)
    driver.classify(layer.layer_id, _values(driver, layer))
    assert driver.model.etw_writes == 1, "after the disable, classify must not write"
    driver.expect_clean()


def test_a_blocks_session_gets_blocks_only_and_a_policy_session_gets_the_change(driver, vectors):  # noqa: F811
    enable_session(driver, VERBOSE, BLOCKS | POLICY)
    p = _policy(vectors, "mixed")
    ck = harness.Checker("policy + blocks")
    expect_set(ck, driver, p["bytes"], "IOCTL_WEIR_SET_POLICY (mixed)", 1, p["rule_count"], p["set_count"])
    ck.done()
    (change,) = _events(driver, "PolicyChanged")
    f = change["fields"]
    h = 0xCBF29CE484222325
    for b in p["bytes"]:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    assert (f["Generation"], f["RuleCount"], f["BlobSize"], f["BlobHash"]) == (1, p["rule_count"], len(p["bytes"]), h)
    assert f["ProcessId"] == driver.model.current_process_id and f["Source"] == "IOCTL_WEIR_SET_POLICY"
    blocks = [v for v in p["vectors"] if v["expect"]["action"] == "block"]
    permits = [v for v in p["vectors"] if v["expect"]["action"] == "permit"]
    for v in blocks[:3] + permits[:3]:
        classify_vector(driver, v)
    got = _events(driver, "Connection")
    assert [e["fields"]["Decision"] for e in got] == ["block"] * len(blocks[:3]), got
    names = p["rule_names"]
    assert any(names[v["expect"]["rule_index"]] for v in blocks[:3] if v["expect"]["rule_index"] is not None), \
        "no block by a named rule: the test would not see RuleName"
    for e, v in zip(got, blocks):
        assert e["keyword"] == CONNECTIONS | BLOCKS
        assert e["fields"]["RuleId"] == (v["expect"]["rule_id"] or 0)
        # The name of the rule at the decision's index in the policy that decided (generation 1).
        index = v["expect"]["rule_index"]
        assert e["fields"]["RuleName"] == (names[index] if index is not None else ""), e["fields"]
        assert (e["fields"]["PolicyGeneration"], e["fields"]["RuleIndex"]) == (1, index or 0), e["fields"]
        # Appended fields stay last: readers by position (tracerpt CSV columns) keep working.
        assert list(e["fields"])[-4:] == ["Reauthorization", "RuleName", "PolicyGeneration", "RuleIndex"]
    assert driver.model.etw_unwanted == [], "permits were written although only blocks were enabled"
    driver.expect_clean()


def test_filtering_state_and_errors_reach_their_sessions(driver):
    enable_session(driver, VERBOSE, FILTERING | ERRORS)
    # BFE restarts, and on RUNNING the engine cannot be opened: filtering stops, an error is traced.
    driver.model.fail("BfeStateChange", "FwpmEngineOpen0", 1, instance=driver.model.phase_instances["BfeStateChange"] + 4)
    driver.bfe_restart()
    (stopped,) = _events(driver, "FilteringStopped")
    assert stopped["fields"]["Reason"] == "BFE stopping" and stopped["level"] == 3
    errors = [e["fields"]["Message"] for e in _events(driver, "Error")]
    # Every DbgPrintEx error of the restart is an Error event, with the same text.
    printed = [m["text"].removeprefix("weir: ").rstrip("\n") for m in driver.model.debug_messages
               if m["phase"] == "BfeStateChange" and m.get("level") == 0]
    assert errors == printed, (errors, printed)
    assert any("FwpmEngineOpen0 failed" in m for m in errors) and any("could not be added" in m for m in errors), errors
    assert all(e["level"] == 2 and e["keyword"] == ERRORS for e in _events(driver, "Error"))
    assert not _events(driver, "FilteringStarted")
    driver.bfe_restart()
    started = _events(driver, "FilteringStarted")
    assert len(started) == 1 and started[0]["fields"]["Reason"] == "BFE running"
    driver.expect_clean()


def test_driver_runs_without_etw_when_registration_fails(new_run):
    from kernel_model import KernelModel

    model = KernelModel()
    model.fail("DriverEntry", "EtwRegister", 1)
    run = new_run("EtwRegister fails", model)
    status = run.driver_entry()
    assert status == L.STATUS_SUCCESS
    assert any("EtwRegister failed" in m["text"] for m in model.debug_messages)
    enable_session(run, VERBOSE, CONNECTIONS)  # no live registration: no callback
    layer = L.LAYERS[0]
    r = run.classify(layer.layer_id, _values(run, layer))
    assert r.run.error is None and model.etw_writes == 0
    run.expect_no_fault(run.unload())
    assert not [c for c in model.calls if c.api == "EtwUnregister"]
    run.expect_clean()


def _count(driver, fn) -> tuple[int, int]:
    """(instructions executed inside weir.sys, stack bytes used below the entry RSP) while `fn` runs."""
    from unicorn import UC_HOOK_CODE
    from unicorn.x86_const import UC_X86_REG_RSP

    uc = driver.se.emu.emu_eng.emu
    base, size = driver.module.base, driver.module.image_size
    n = [0]
    rsp = [None, None]

    def on_code(u, *_):
        n[0] += 1
        sp = u.reg_read(UC_X86_REG_RSP)
        if rsp[0] is None:
            rsp[0] = rsp[1] = sp
        elif sp < rsp[1]:
            rsp[1] = sp

    hook = uc.hook_add(UC_HOOK_CODE, on_code, begin=base, end=base + size - 1)
    uc.ctl_flush_tb()
    try:
        r = fn()
    finally:
        uc.hook_del(hook)
        uc.ctl_flush_tb()
    assert r.run.error is None
    return n[0], (rsp[0] - rsp[1] + 8) if rsp[0] is not None else 0


def test_classify_instruction_count_with_etw_off_and_each_keyword_on(driver, vectors):  # noqa: F811
    """Instructions executed inside weir.sys for one classifyFn of a blocked and a permitted connection under
    the mixed policy, with no session and with one session per keyword (EtwWriteTransfer itself runs in the
    kernel, outside the image, and is not counted)."""
    p = _policy(vectors, "mixed")
    ck = harness.Checker("mixed policy")
    expect_set(ck, driver, p["bytes"], "IOCTL_WEIR_SET_POLICY (mixed)", 1, p["rule_count"], p["set_count"])
    ck.done()
    block = next(v for v in p["vectors"] if v["expect"]["action"] == "block")
    permit = next(v for v in p["vectors"] if v["expect"]["action"] == "permit")
    report = {}
    for label, kw in [("off", 0)] + list(KEYWORDS.items()):
        enable_session(driver, 0, 0, code=0)
        if kw:
            enable_session(driver, VERBOSE, kw)
        before = driver.model.etw_writes
        (bi, bs), (pi, ps) = (_count(driver, lambda: classify_vector(driver, block)),
                              _count(driver, lambda: classify_vector(driver, permit)))
        report[label] = {"block": bi, "permit": pi, "stack_bytes": max(bs, ps),
                         "etw_writes": driver.model.etw_writes - before}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "etw-classify-instructions.json").write_text(json.dumps(report, indent=1))
    print("\nclassifyFn instructions (mixed policy):", json.dumps(report))
    assert report["off"]["etw_writes"] == 0
    assert report["CONNECTIONS"]["etw_writes"] == 2 and report["BLOCKS"]["etw_writes"] == 1
    for k in ("POLICY", "FILTERING", "LIFECYCLE", "ERRORS"):
        assert report[k]["etw_writes"] == 0, k
        # A keyword that classify does not write costs what "off" costs.
        assert report[k]["permit"] == report["off"]["permit"], (k, report)
    assert report["CONNECTIONS"]["permit"] > report["off"]["permit"]
    # ETW off: within the 4 KiB budget test_policy.py sets for classify. ETW on: the event is built in
    # a ~1.3 KB buffer of a non-inlined frame; measured 5,072 bytes in all (README, docs/etw.md), held
    # under 6 KiB here so it cannot grow unnoticed.
    assert report["off"]["stack_bytes"] < 4096, report
    assert max(r["stack_bytes"] for r in report.values()) < 6144, report
    driver.expect_clean()


def test_a_policy_replaced_between_the_decision_and_the_write_lends_no_rule_name(driver, vectors):  # noqa: F811
    """`Connection`'s `RuleName` comes from the policy that decided. A SET_POLICY on another CPU between the
    decision and the ETW write (here: right after classify reads the time) installs the same rules under other
    names; the event keeps the deciding generation and id and leaves the name empty rather than take the new
    policy's. The next classification, decided by the new policy, carries the new name."""
    from interleave import Interleave, Job

    enable_session(driver, VERBOSE, BLOCKS)
    p, renamed = _policy(vectors, "mixed"), _policy(vectors, "mixed-renamed")
    ck = harness.Checker("ETW RuleName across a policy swap")
    expect_set(ck, driver, p["bytes"], "IOCTL_WEIR_SET_POLICY (mixed)", 1, p["rule_count"], p["set_count"])
    ck.done()
    names = p["rule_names"]
    v = next(v for v in p["vectors"] if v["expect"]["action"] == "block" and v["write_right"]
             and v["expect"]["rule_index"] is not None and names[v["expect"]["rule_index"]])
    index = v["expect"]["rule_index"]
    assert renamed["rule_names"][index] not in ("", names[index])
    classify_vector(driver, v)
    (e,) = _events(driver, "Connection")
    assert (e["fields"]["RuleName"], e["fields"]["PolicyGeneration"]) == (names[index], 1), e["fields"]
    il = Interleave(driver)
    try:
        blob = renamed["bytes"]
        fn, irp, *_ = driver.build_irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_SET_POLICY, in_len=len(blob),
                                       out_len=L.SET_POLICY_REPLY_SIZE, input=blob)
        swap = il.after_api("KeQuerySystemTimePrecise", "classify",
                            lambda n: [Job("dispatch(SET_POLICY)", fn, [driver.device_object(), irp], "dispatch", 0,
                                           dispatch_major=L.IRP_MJ_DEVICE_CONTROL, irp=irp)] if n == 1 else [])
        r = classify_vector(driver, v)
    finally:
        il.close()
    assert r.run.error is None and il.errors == [], (r.run.error, il.errors)
    assert [j.done for j in swap.jobs_run] == [True], "the SET_POLICY on the other CPU did not run"
    assert [c["status"] for c in driver.completions_of(irp)] == [L.STATUS_SUCCESS]
    e = _events(driver, "Connection")[-1]
    assert (e["fields"]["RuleId"], e["fields"]["PolicyGeneration"], e["fields"]["RuleName"]) == (
        v["expect"]["rule_id"], 1, ""), e["fields"]
    classify_vector(driver, v)
    e = _events(driver, "Connection")[-1]
    assert (e["fields"]["PolicyGeneration"], e["fields"]["RuleName"]) == (2, renamed["rule_names"][index]), e["fields"]
    driver.expect_clean()
