"""Connection events on the real image: records written by classifyFn, read through IOCTL_WEIR_READ_EVENTS,
parked reads completed by the driver's DPC, and every way a parked read ends (cancel routine = CancelIoEx and
thread/process exit, IRP_MJ_CLEANUP of the handle, DriverUnload) completing it exactly once."""

import ipaddress
import struct

import pytest

import events_wire as W
import harness
import test_etw as etw
import layouts as L

RING_CAPACITY = 512
MAX_PENDING_READS = 16
BIG = 64 * 1024
FO_A = 0xFFFF_A000_0000_0A00
FO_B = 0xFFFF_A000_0000_0B00

APP = "\\device\\harddiskvolume3\\program files\\weir test\\client.exe"
USER = "S-1-5-21-1004336348-1177238915-682003330-1001"
META_PATH = "\\device\\harddiskvolume2\\windows\\system32\\svchost.exe"


def utf16z(s: str) -> bytes:
    return s.encode("utf-16-le") + b"\0\0"


def _tuple(layer):
    if layer.ipv6:
        return dict(local="fe80::2", lport=50000, proto=6, remote="2001:db8::1", rport=443)
    return dict(local="10.0.0.2", lport=50000, proto=17, remote="93.184.216.34", rport=53)


def _values(driver, layer, *, app=None, reauth=False):
    vals = driver.values_for(layer, **_tuple(layer))
    if app is not None:
        vals[0] = ("blob", utf16z(app))  # FWPS_FIELD_ALE_AUTH_*_ALE_APP_ID
    # FLAGS: index 12 at the connect layers, 11 at receive/accept.
    flags_index = 12 if layer.outbound else 11
    vals += [(L.FWP_EMPTY, 0)] * (flags_index + 1 - len(vals))
    vals[flags_index] = (L.FWP_UINT32, L.FWP_CONDITION_FLAG_IS_REAUTHORIZE if reauth else 0)
    return vals


def read(driver, out_len=BIG, fo=FO_A, in_len=0):
    return driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_READ_EVENTS, out_len=out_len, in_len=in_len,
                      file_object=fo)


def reply(driver, irp) -> list[dict]:
    """The records a completed read returned (from its system buffer and IoStatus.Information)."""
    info = driver.mem.u64(irp + L.IRP_IO_STATUS_INFORMATION)
    buf = driver.mem.ptr(irp + L.IRP_SYSTEM_BUFFER)
    return W.decode(driver.mem.read(buf, info)) if info else []


def drain(driver) -> list[dict]:
    out = []
    while True:
        r = read(driver)
        assert r.status in (L.STATUS_SUCCESS, L.STATUS_PENDING), L.status_name(r.status)
        if r.status == L.STATUS_PENDING:
            # Nothing left: cancel the parked read so the run ends clean.
            driver.cancel_irp(r.irp)
            return out
        out += reply(driver, r.irp)


@pytest.mark.parametrize("layer", L.LAYERS, ids=[x.name for x in L.LAYERS])
@pytest.mark.parametrize("identity", ["app-id+pid", "process-path-metadata", "none"])
def test_event_fields(driver, layer, identity):
    ck = harness.Checker(f"event from {layer.name} ({identity})")
    kw = {}
    if identity == "app-id+pid":
        vals = _values(driver, layer, app=APP, reauth=True)
        # ALE_USER_ID (index 1 at the four layers): the user's token information.
        vals[1] = ("raw", (etw.FWP_TOKEN_ACCESS_INFORMATION_TYPE, etw.token_access(driver, etw.sid_bytes(USER))))
        kw = dict(pid=4242)
    elif identity == "process-path-metadata":
        vals = _values(driver, layer)
        kw = dict(pid=77, process_path=utf16z(META_PATH))
    else:
        vals = _values(driver, layer)
        kw = dict(meta=False)
    c = driver.classify(layer.layer_id, vals, **kw)
    driver.expect_no_fault(c.run)
    r = read(driver)
    where = f"READ_EVENTS after classify at {layer.name}"
    ck.eq(r.status, L.STATUS_SUCCESS, where, "status")
    recs = reply(driver, r.irp) if r.status == L.STATUS_SUCCESS else []
    ck.eq(len(recs), 1, where, "records")
    if recs:
        e = recs[0]
        t = _tuple(layer)
        ck.eq(e["kind"], "connection", where, "kind")
        ck.eq(e["version"], 3, where, "version")
        ck.eq((e["rule_index"], e["policy_generation"]), (None, 0), where, "(rule index, policy generation): no policy")
        ck.eq(e["user"], USER if identity == "app-id+pid" else None, where, "user (SID from ALE_USER_ID)")
        ck.eq(e["layer_id"], layer.layer_id, where, "layer_id")
        ck.eq(e["direction"], "outbound" if layer.outbound else "inbound", where, "direction")
        ck.eq(e["ip_version"], 6 if layer.ipv6 else 4, where, "ip_version")
        ck.eq(e["tuple"], True, where, "TUPLE flag")
        ck.eq(e["protocol"], t["proto"], where, "protocol")
        ck.eq(e["local"], str(ipaddress.ip_address(t["local"])), where, "local address")
        ck.eq(e["remote"], str(ipaddress.ip_address(t["remote"])), where, "remote address")
        ck.eq((e["local_port"], e["remote_port"]), (t["lport"], t["rport"]), where, "ports")
        ck.eq(e["decision"], "permit", where, "decision")
        ck.eq(e["rule_id"], None, where, "rule id (default action)")
        ck.eq(e["time"], driver.model.time_queries[-1] if driver.model.time_queries else None, where,
              "time (the KeQuerySystemTimePrecise value)")
        ck.true(e["padding_zero"], where, "padding bytes are not zero")
        expected = {"app-id+pid": (4242, APP, True), "process-path-metadata": (77, META_PATH, False),
                    "none": (None, None, False)}[identity]
        ck.eq((e["process_id"], e["path"], e["reauthorization"]), expected, where, "(process_id, path, reauthorization)")
        ck.eq(e["path_truncated"], False, where, "path_truncated")
    ck.done()
    driver.expect_clean()


def test_long_path_is_truncated_and_flagged(driver):
    layer = L.LAYERS[0]
    long_path = "\\device\\harddiskvolume3\\" + "d" * 400 + "\\x.exe"
    driver.classify(layer.layer_id, _values(driver, layer, app=long_path))
    r = read(driver)
    recs = reply(driver, r.irp)
    assert len(recs) == 1
    assert recs[0]["path"] == long_path[:W.MAX_PATH_UNITS]
    assert recs[0]["path_truncated"]
    assert recs[0]["size"] == W.CONNECTION_FIXED + 2 * W.MAX_PATH_UNITS + W.TRAILER + 4, \
        "no user: the SID's room is not used (the 12-byte trailer, padded to 8)"
    driver.expect_clean()


def test_write_right_absent_is_recorded_as_such(driver):
    layer = L.LAYERS[2]
    driver.classify(layer.layer_id, _values(driver, layer), rights=0)
    recs = reply(driver, read(driver).irp)
    assert [e["decision"] for e in recs] == ["write-right-absent"]
    driver.expect_clean()


def test_read_pends_then_completes_when_classify_records(driver):
    ck = harness.Checker("parked read")
    r = read(driver)
    ck.eq(r.status, L.STATUS_PENDING, "READ_EVENTS with no events", "dispatch return value")
    ck.eq(r.completions, [], "READ_EVENTS with no events", "completions")
    ck.true(driver.pending_marked(r.irp), "READ_EVENTS with no events", "IoMarkIrpPending not done before STATUS_PENDING")
    ck.eq(len(driver.model.queued_dpcs()), 0, "before classify", "queued DPCs")
    layer = L.LAYERS[1]
    driver.classify(layer.layer_id, _values(driver, layer, app=APP))
    ck.eq(driver.completions_of(r.irp), [], "classify", "the read must be completed by the DPC, not inside classify")
    ck.eq(len(driver.model.queued_dpcs()), 1, "classify with a parked read", "queued DPCs")
    runs = driver.run_dpcs()
    ck.true(all(x.error is None for x in runs), "DPC", f"emulator fault {[x.error for x in runs]}")
    comp = driver.completions_of(r.irp)
    ck.eq([c["status"] for c in comp], [L.STATUS_SUCCESS], "after the DPC", "completions of the parked read")
    recs = reply(driver, r.irp)
    ck.eq([(e["kind"], e["path"]) for e in recs], [("connection", APP)], "after the DPC", "records")
    # With no parked read, classify queues nothing.
    driver.classify(layer.layer_id, _values(driver, layer))
    ck.eq(len(driver.model.queued_dpcs()), 0, "classify without a parked read", "queued DPCs")
    ck.done()
    driver.expect_clean()


def test_cancel_routine_completes_once(driver):
    """CancelIoEx, and thread/process exit (the I/O manager cancels the thread's IRPs), reach the cancel routine."""
    ck = harness.Checker("cancel")
    a, b = read(driver, fo=FO_A), read(driver, fo=FO_B)
    ck.eq((a.status, b.status), (L.STATUS_PENDING, L.STATUS_PENDING), "two reads", "statuses")
    res = driver.cancel_irp(a.irp)
    ck.true(res is not None and res.error is None, "cancel a", f"cancel routine missing or faulted: {res}")
    ck.eq([c["status"] for c in driver.completions_of(a.irp)], [L.STATUS_CANCELLED], "cancel a", "completions")
    ck.eq(driver.model.cancel_lock_releases, 1, "cancel a", "IoReleaseCancelSpinLock calls")
    ck.eq(driver.cancel_irp(a.irp), None, "cancel a again", "cancel routine (must be cleared at completion)")
    ck.eq(driver.completions_of(b.irp), [], "cancel a", "b must stay parked")
    layer = L.LAYERS[0]
    driver.classify(layer.layer_id, _values(driver, layer))
    driver.run_dpcs()
    ck.eq([c["status"] for c in driver.completions_of(b.irp)], [L.STATUS_SUCCESS], "event after cancel", "b completions")
    ck.eq(driver.completions_of(a.irp)[1:], [], "event after cancel", "a completed again")
    ck.done()
    u = driver.unload()
    driver.expect_no_fault(u)
    assert driver.model.leaks() == [], driver.model.leaks()
    driver.expect_clean()


def test_cleanup_completes_that_handles_reads(driver):
    ck = harness.Checker("IRP_MJ_CLEANUP with parked reads")
    a1, a2, b = read(driver, fo=FO_A), read(driver, fo=FO_A), read(driver, fo=FO_B)
    c = driver.irp(L.IRP_MJ_CLEANUP, file_object=FO_A)
    ck.eq(c.status, L.STATUS_SUCCESS, "IRP_MJ_CLEANUP (handle A)", "status")
    for name, r in (("a1", a1), ("a2", a2)):
        ck.eq([x["status"] for x in driver.completions_of(r.irp)], [L.STATUS_CANCELLED], "cleanup of A", f"{name} completions")
        ck.eq(driver.cancel_irp(r.irp), None, "cleanup of A", f"{name}'s cancel routine still set")
    ck.eq(driver.completions_of(b.irp), [], "cleanup of A", "B's read must stay parked")
    c2 = driver.irp(L.IRP_MJ_CLEANUP, file_object=FO_B)
    ck.eq(c2.status, L.STATUS_SUCCESS, "IRP_MJ_CLEANUP (handle B)", "status")
    ck.eq([x["status"] for x in driver.completions_of(b.irp)], [L.STATUS_CANCELLED], "cleanup of B", "b completions")
    ck.done()
    driver.unload()
    assert driver.model.leaks() == [], driver.model.leaks()
    driver.expect_clean()


def test_unload_completes_parked_reads_and_balances_the_pool(driver):
    ck = harness.Checker("DriverUnload with parked reads")
    reads = [read(driver, fo=FO_A), read(driver, fo=FO_B), read(driver, fo=FO_B)]
    layer = L.LAYERS[3]
    # A DPC queued and not yet run when unload starts: unload must remove it before freeing its memory.
    reads[0] = reads[0]
    driver.classify(layer.layer_id, _values(driver, layer))
    ck.eq(len(driver.model.queued_dpcs()), 1, "classify", "queued DPCs")
    u = driver.unload()
    driver.expect_no_fault(u)
    statuses = [[x["status"] for x in driver.completions_of(r.irp)] for r in reads]
    ck.eq(statuses, [[L.STATUS_CANCELLED]] * 3, "DriverUnload", "completions of the parked reads")
    ck.eq(driver.model.queued_dpcs(), [], "DriverUnload", "DPCs still queued")
    ck.eq(driver.model.leaks(), [], "DriverUnload", "leaks")
    ck.done()
    driver.expect_clean()


def test_full_ring_drops_and_counts(driver):
    """A reader that falls more than the ring behind loses its own oldest events: its next reply starts with a
    dropped-events record counting them, then the newest RING_CAPACITY events in order."""
    ck = harness.Checker("ring overflow")
    layer = L.LAYERS[0]
    extra = 7
    # Handle A starts reading (its cursor is placed), then falls behind.
    first = read(driver)
    ck.eq(first.status, L.STATUS_PENDING, "first READ_EVENTS on an empty ring", "status")
    driver.cancel_irp(first.irp)
    for i in range(RING_CAPACITY + extra):
        driver.classify(layer.layer_id, _values(driver, layer), pid=i)
    driver.run_dpcs()
    recs = drain(driver)
    dropped = [e for e in recs if e["kind"] == "dropped"]
    conns = [e for e in recs if e["kind"] == "connection"]
    ck.eq([d["count"] for d in dropped], [extra], "READ_EVENTS after overflow", "drop markers")
    ck.eq(recs[0]["kind"] if recs else None, "dropped", "READ_EVENTS after overflow", "first record")
    ck.eq([e["process_id"] for e in conns], list(range(extra, RING_CAPACITY + extra)), "READ_EVENTS after overflow",
          "the newest events are kept, in order")
    # After draining, recording works again and no new marker appears.
    driver.classify(layer.layer_id, _values(driver, layer), pid=9999)
    recs2 = reply(driver, read(driver).irp)
    ck.eq([(e["kind"], e.get("process_id")) for e in recs2], [("connection", 9999)], "after drain", "records")
    ck.done()
    driver.expect_clean()


def test_short_buffers_get_a_clear_error_and_lose_no_event(driver):
    ck = harness.Checker("short READ_EVENTS buffers")
    layer = L.LAYERS[0]
    driver.classify(layer.layer_id, _values(driver, layer, app=APP), pid=5)
    for out_len in (0, 16, W.MIN_READ_BUFFER - 1):
        r = read(driver, out_len=out_len)
        where = f"READ_EVENTS out {out_len}"
        ck.eq((r.status, r.information), (L.STATUS_BUFFER_TOO_SMALL, 0), where, "(status, Information)")
        ck.eq(len(r.completions), 1, where, "completions")
        if r.buffer_before is not None:
            ck.eq(r.buffer_after, r.buffer_before, where, "system buffer (must be untouched)")
    r = read(driver, in_len=8)
    ck.eq(r.status, L.STATUS_INVALID_PARAMETER, "READ_EVENTS with input", "status")
    r = driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_READ_EVENTS, out_len=W.MIN_READ_BUFFER, null_buffer=True)
    ck.eq(r.status, L.STATUS_INVALID_PARAMETER, "READ_EVENTS without a system buffer", "status")
    r = read(driver, out_len=W.MIN_READ_BUFFER)
    ck.eq(r.status, L.STATUS_SUCCESS, f"READ_EVENTS out {W.MIN_READ_BUFFER}", "status")
    ck.true(r.guard_intact, f"READ_EVENTS out {W.MIN_READ_BUFFER}", "wrote past the buffer")
    ck.eq([(e["kind"], e.get("process_id")) for e in reply(driver, r.irp)], [("connection", 5)],
          f"READ_EVENTS out {W.MIN_READ_BUFFER}", "records (the event survived the short reads)")
    ck.done()
    driver.expect_clean()


def test_too_many_parked_reads_are_refused(driver):
    reads = [read(driver, fo=FO_A) for _ in range(MAX_PENDING_READS)]
    assert all(r.status == L.STATUS_PENDING for r in reads)
    extra = read(driver, fo=FO_A)
    assert extra.status == L.STATUS_INSUFFICIENT_RESOURCES
    assert len(extra.completions) == 1
    driver.irp(L.IRP_MJ_CLEANUP, file_object=FO_A)
    assert all([x["status"] for x in driver.completions_of(r.irp)] == [L.STATUS_CANCELLED] for r in reads)
    driver.expect_clean()


def test_classify_instruction_cost(driver):
    """Instructions executed inside the image per classify (unicorn code hook over the image's range), with the
    event log live and, as the baseline, after DriverUnload cleared it (the same code then skips recording after
    one null check, as before events existed). memcpy/memset run outside the image (ntoskrnl imports executed
    by the emulator): their calls and bytes are counted separately. Written to
    test-artifacts/emulation/classify-cost.json."""
    import json

    base, end = driver.module.base, driver.module.base + driver.module.image_size
    n = [0]
    driver.se.add_code_hook(lambda *_: n.__setitem__(0, n[0] + 1), begin=base, end=end - 1)
    driver.model.debug_filter_enabled = False  # traces off, as on a production machine
    layer = L.LAYERS[0]
    cases = (("app id + pid", dict(app=APP)), ("no identity", dict(meta=False)))

    def measure():
        out = {}
        for name, kw in cases:
            kw = dict(kw)
            vals = _values(driver, layer, app=kw.pop("app", None))
            n[0] = 0
            first = len(driver.model.calls)
            driver.classify(layer.layer_id, vals, **kw)
            mem = [c for c in driver.model.calls[first:] if c.api in ("memcpy", "memset", "memmove")]
            out[name] = {"instructions": n[0], "mem_calls": len(mem),
                         "mem_bytes": sum(int(c.args.get("arg2", "0x0"), 16) for c in mem)}
        return out

    with_events = measure()
    read(driver)  # drained by the reads below; keep the ring from mattering
    u = driver.unload()
    driver.expect_no_fault(u)
    without = measure()
    result = {
        "image": harness._display_path(driver.image),
        "with_event_log": with_events,
        "after_unload_no_event_log": without,
        "added_instructions_per_recorded_classify": {k: with_events[k]["instructions"] - without[k]["instructions"]
                                                     for k in with_events},
    }
    path = harness.REPO_ROOT / "test-artifacts" / "emulation" / "classify-cost.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    added = result["added_instructions_per_recorded_classify"]
    assert all(v > 0 for v in added.values()), result
    # A bound that catches an accidental slow path (a loop over the ring, formatting) in classify.
    assert all(v < 5000 for v in added.values()), result


# ------------------------------------------------------------------------------------------------------------------
# Kernel review, round 3: nothing after the last completion, cleanup ends every read of its handle, the DPC's work is
# bounded by one drain, the cancel routine always completes.

def _violations(driver, needle: str) -> list[str]:
    return [str(v) for v in driver.model.violations if needle in str(v)]


def test_cancelling_the_last_parked_read_touches_nothing_after_completing_it(driver):
    """The cancel routine completes the only outstanding IRP (what lets a deferred DriverUnload run): the model
    watches the driver's pool and writable image sections from that completion until the routine returns."""
    ck = harness.Checker("cancel of the last parked read")
    r = read(driver, fo=FO_A)
    ck.eq(r.status, L.STATUS_PENDING, "READ_EVENTS", "status")
    res = driver.cancel_irp(r.irp)
    ck.true(res is not None and res.error is None, "cancel", f"cancel routine missing or faulted: {res}")
    ck.eq([c["status"] for c in driver.completions_of(r.irp)], [L.STATUS_CANCELLED], "cancel", "completions")
    ck.eq(_violations(driver, "after the last outstanding IRP"), [], "cancel", "touches after the last completion")
    ck.done()
    driver.expect_clean()


def test_every_way_a_read_ends_touches_nothing_after_the_last_completion(driver):
    """The same rule on the other paths that complete a read: cleanup of its handle (the cleanup IRP itself is then
    the last one, completed last), a read completed at once, and the DPC's completions."""
    layer = L.LAYERS[0]
    a = read(driver, fo=FO_A)
    c = driver.irp(L.IRP_MJ_CLEANUP, file_object=FO_A)
    assert c.status == L.STATUS_SUCCESS
    assert [x["status"] for x in driver.completions_of(a.irp)] == [L.STATUS_CANCELLED]
    driver.classify(layer.layer_id, _values(driver, layer))
    r = read(driver, fo=FO_B)
    assert r.status == L.STATUS_SUCCESS
    b = read(driver, fo=FO_B)
    driver.classify(layer.layer_id, _values(driver, layer))
    driver.run_dpcs()
    assert [x["status"] for x in driver.completions_of(b.irp)] == [L.STATUS_SUCCESS]
    assert _violations(driver, "after the last outstanding IRP") == []
    driver.expect_clean()


def test_a_read_arriving_after_its_handles_cleanup_is_refused_not_parked(driver):
    """A READ_EVENTS already past the handle lookup when IRP_MJ_CLEANUP of that handle ran (the emulator plays that
    interleaving by sending it after the cleanup): it must be completed with STATUS_CANCELLED, never parked, since
    nothing would complete it before the handle's close. Other handles are unaffected."""
    ck = harness.Checker("READ_EVENTS after IRP_MJ_CLEANUP of its handle")
    c = driver.irp(L.IRP_MJ_CLEANUP, file_object=FO_A)
    ck.eq(c.status, L.STATUS_SUCCESS, "IRP_MJ_CLEANUP (handle A)", "status")
    late = read(driver, fo=FO_A)
    ck.eq(late.status, L.STATUS_CANCELLED, "READ_EVENTS on handle A after its cleanup", "status")
    ck.eq([x["status"] for x in late.completions], [L.STATUS_CANCELLED], "READ_EVENTS after cleanup", "completions")
    ck.eq(driver.cancel_irp(late.irp), None, "READ_EVENTS after cleanup", "cancel routine left set")
    b = read(driver, fo=FO_B)
    ck.eq(b.status, L.STATUS_PENDING, "READ_EVENTS on handle B", "status (another handle still parks)")
    ck.done()
    driver.cancel_irp(b.irp)
    driver.expect_clean()


def test_the_completion_dpc_touches_at_most_one_drain_of_a_huge_buffer(driver):
    """A parked read with a 4 MiB output buffer (any length up to what user mode chooses): the DPC, at
    DISPATCH_LEVEL, zeroes and fills at most what one drain can write (a marker and the whole ring), not the
    caller's length. Measured on the system buffer itself: refilled with a pattern once the read is parked, the
    highest byte the DPC changed bounds what it touched (zeroing is inline code, not always a memset call)."""
    big = 4 << 20
    bound = W.MIN_READ_BUFFER + RING_CAPACITY * W.MAX_CONNECTION_SIZE
    r = read(driver, out_len=big)
    assert r.status == L.STATUS_PENDING
    buf = driver.mem.ptr(r.irp + L.IRP_SYSTEM_BUFFER)
    driver.mem.write(buf, b"\xEE" * big)
    layer = L.LAYERS[0]
    driver.classify(layer.layer_id, _values(driver, layer))
    runs = driver.run_dpcs()
    assert runs and all(x.error is None for x in runs), runs
    assert [c["status"] for c in driver.completions_of(r.irp)] == [L.STATUS_SUCCESS]
    touched = len(driver.mem.read(buf, big).rstrip(b"\xEE"))
    assert 0 < touched <= bound, f"the DPC touched {touched} bytes of a {big}-byte buffer (bound: one drain, {bound})"
    assert len(reply(driver, r.irp)) == 1
    driver.expect_clean()


def test_the_cancel_routine_completes_whatever_irp_it_is_given(driver):
    """The cancel routine completes on every path, by construction: even for an IRP that its queue does not hold
    (here one that was never parked), it releases the cancel spin lock and completes it with STATUS_CANCELLED,
    instead of returning with the IRP owned by nobody."""
    parked = read(driver, fo=FO_A)
    routine = driver.mem.u64(parked.irp + 0x68)
    assert routine, "a parked read has a cancel routine"
    stray = driver.alloc(L.IRP_SIZE + L.IO_STACK_LOCATION_SIZE, tag="weir.test.irp")
    driver.mem.w64(stray + L.IRP_CURRENT_STACK_LOCATION, stray + L.IRP_SIZE)
    driver.mem.write(stray + 0x44, b"\x01")  # Cancel = TRUE: the I/O manager took the routine
    driver.model.irp_dispatched(stray)
    driver.model.cancel_lock_held = True
    with driver.model.at_irql(2):
        res = driver.call(routine, [driver.device_object(), stray], "cancel routine (IRP not in the queue)")
    driver.expect_no_fault(res)
    assert not driver.model.cancel_lock_held, "cancel spin lock not released"
    assert [c["status"] for c in driver.completions_of(stray)] == [L.STATUS_CANCELLED]
    assert driver.completions_of(parked.irp) == [], "the parked read is not affected"
    driver.cancel_irp(parked.irp)
    driver.expect_clean()


def test_shared_sections_run_with_normal_kernel_apcs_disabled(driver):
    """classifyFn at PASSIVE_LEVEL (ALE layers may classify there) records into the ring and reads the policy inside
    a critical region; so do the IOCTLs (GET_POLICY's copy, SET_POLICY's setter lock) and the READ_EVENTS drain. The
    model flags copies, allocations and waits made there with APCs enabled."""
    layer = L.LAYERS[0]
    driver.classify(layer.layer_id, _values(driver, layer), irql=0)
    assert reply(driver, read(driver).irp), "the event was recorded"
    policy = driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_GET_POLICY, out_len=4096)
    assert policy.status == L.STATUS_SUCCESS
    assert _violations(driver, "normal kernel APCs enabled") == []
    enters = [c for c in driver.model.calls if c.api == "KeEnterCriticalRegion"]
    leaves = [c for c in driver.model.calls if c.api == "KeLeaveCriticalRegion"]
    assert enters and len(enters) == len(leaves)
    driver.expect_clean()
