"""The stored policy (read in DriverEntry and on RELOAD_POLICY) and the reauthorization trigger, on the real image.

The stored form is built here from its specification (crates/weir-abi/src/stored.rs) with Python's
hashlib, independently of the Rust encoder, so the driver's check of header and SHA-256 is tested
against a second implementation. The policy blobs and the verdicts they must give come from
tests/policy_vectors.rs (the reference evaluator), as in test_policy.py.
"""

from __future__ import annotations

import functools
import hashlib
import struct

import pytest

import harness
import layouts as L
import test_policy as tp
from files_model import STATUS_DEVICE_DATA_ERROR, STORED_POLICY_PATH
from kernel_model import DIAGNOSTIC_APIS, FAILURE_MODES, INFALLIBLE_APIS, PURE_APIS, KernelModel

IOCTL_WEIR_GET_POLICY_STATUS = 0x80576040
IOCTL_WEIR_RELOAD_POLICY = 0x8057A044
POLICY_STATUS_SIZE = 96
SOURCE_NONE, SOURCE_STORED, SOURCE_THIS_RUN = 0, 1, 2

STATUS_WEIR_POLICY_TOO_LARGE = 0xE0571002
STATUS_WEIR_STORED_TRUNCATED = 0xE0573001
STATUS_WEIR_STORED_CORRUPTED = 0xE0573002
STATUS_WEIR_STORED_NEWER_VERSION = 0xE0573003
MAX_BLOB_BYTES = 64 * 1024 * 1024


def stored_form(payload: bytes, *, version: int = 1, header_size: int = 64, length: int | None = None,
                digest: bytes | None = None) -> bytes:
    """The stored file: "WEIRSTOR", format version, header size, payload length, SHA-256, reserved, payload."""
    n = len(payload) if length is None else length
    d = hashlib.sha256(payload).digest() if digest is None else digest
    return b"WEIRSTOR" + struct.pack("<IIQ", version, header_size, n) + d + struct.pack("<Q", 0) + payload


def policy_status(driver) -> dict:
    r = driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=IOCTL_WEIR_GET_POLICY_STATUS, out_len=POLICY_STATUS_SIZE)
    assert r.run.error is None, f"GET_POLICY_STATUS: emulator fault {r.run.error}"
    assert r.status == L.STATUS_SUCCESS, f"GET_POLICY_STATUS: {L.status_name(r.status)}"
    assert r.information == POLICY_STATUS_SIZE
    f = struct.unpack_from("<IIQIIQQ32sQIIII", r.buffer_after, 0)
    keys = ["size", "abi_version", "generation", "source", "stored_status", "loaded_at", "stored_read_at",
            "blob_sha256", "blob_len", "rule_count", "stored_reads", "fail_mode", "fail_closed_set"]
    return dict(zip(keys, f))


def reload(driver):
    return driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=IOCTL_WEIR_RELOAD_POLICY, out_len=L.SET_POLICY_REPLY_SIZE)


@pytest.fixture(scope="module")
def vectors() -> dict:
    return tp._load_vectors()


def _stored_run(new_run, label: str, file: bytes | None, model: KernelModel | None = None) -> harness.DriverRun:
    d = new_run(label, model)
    if file is not None:
        d.model.files[STORED_POLICY_PATH] = file
    d.model.parameters = {"TraceLevel": (L.REG_DWORD, 2)}
    return d


def _traced(model, text: str, phase: str = "DriverEntry") -> bool:
    return any(text in (m["text"] or "") for m in model.debug_messages if m["phase"] == phase)


def _weir_filters(model) -> dict:
    keys = {str(k) for k in _filter_keys(model)}
    return {k: v for k, v in model.engine_objects()["filters"].items() if k in keys}


def _filter_keys(model) -> list:
    # The keys DriverEntry added (the first committed filter change).
    first = model.filter_changes[0]
    return [f["filterKey"] for f in first["added"]]


# ---------------------------------------------------------------------------
def test_a_start_with_a_stored_policy_decides_all_four_layers_before_any_ioctl(new_run, vectors):
    ck = harness.Checker("DriverEntry with a stored policy")
    p = tp._policy(vectors, "mixed")
    d = _stored_run(new_run, "stored mixed", stored_form(p["bytes"]))
    status = d.driver_entry()
    ck.eq(L.status_name(status), L.status_name(L.STATUS_SUCCESS), "DriverEntry", "status")
    calls = [c.api for c in d.model.effective_calls("DriverEntry")]
    # Read, checked and published before any callout or filter exists.
    ck.true(calls.index("ZwReadFile") < calls.index("FwpsCalloutRegister3") < calls.index("FwpmFilterAdd0"),
            "DriverEntry", f"the stored policy is not read before the callouts and filters: {calls}")
    ck.eq([c for c in calls if c.startswith("Zw") and c not in ("ZwOpenKey", "ZwQueryValueKey", "ZwSetSecurityObject")
           ][-4:], ["ZwCreateFile", "ZwQueryInformationFile", "ZwReadFile", "ZwClose"], "DriverEntry", "file calls")
    ck.eq([v for v in d.model.violations], [], "DriverEntry", "model violations")
    kinds = {v["expect"]["action"] for v in p["vectors"]}
    layers = {v["layer"] for v in p["vectors"]}
    assert kinds == {"permit", "block", "unchanged"} and len(layers) == 4, (kinds, layers)
    # No IOCTL before these classifications.
    ck.eq([c for c in d.model.calls if c.phase == "dispatch"], [], "before classify", "dispatch calls")
    for v in p["vectors"]:
        tp.check_vector(ck, d, v, prefix="stored policy, no IOCTL: ")
    tp.check_stats(ck, d, p["vectors"], p, 1, "GET_STATS after the stored policy decided")
    s = policy_status(d)
    ck.eq((s["source"], s["generation"], s["stored_status"], s["stored_reads"], s["rule_count"], s["blob_len"]),
          (SOURCE_STORED, 1, 0, 1, p["rule_count"], len(p["bytes"])), "GET_POLICY_STATUS", "source, generation, ...")
    ck.eq(s["blob_sha256"].hex(), hashlib.sha256(p["bytes"]).hexdigest(), "GET_POLICY_STATUS", "blob SHA-256")
    ck.true(s["loaded_at"] > 0 and s["stored_read_at"] > 0, "GET_POLICY_STATUS", "load times")
    tp.expect_active_blob(ck, d, p["bytes"], 1, "GET_POLICY after a stored start")
    ck.done()
    d.expect_clean()


DAMAGE = {
    # name: (file bytes from the good blob, status reported)
    "missing": (lambda b: None, L.STATUS_OBJECT_NAME_NOT_FOUND),
    "truncated by one byte": (lambda b: stored_form(b)[:-1], STATUS_WEIR_STORED_TRUNCATED),
    "truncated inside the header": (lambda b: stored_form(b)[:40], STATUS_WEIR_STORED_TRUNCATED),
    "empty file": (lambda b: b"", STATUS_WEIR_STORED_TRUNCATED),
    "checksum mismatch (one payload bit)": (lambda b: stored_form(b)[:-1] + bytes([b[-1] ^ 1]), STATUS_WEIR_STORED_CORRUPTED),
    "bytes after the payload": (lambda b: stored_form(b) + b"\0", STATUS_WEIR_STORED_CORRUPTED),
    "not a stored policy (raw blob)": (lambda b: b, STATUS_WEIR_STORED_CORRUPTED),
    "newer format version": (lambda b: stored_form(b, version=2), STATUS_WEIR_STORED_NEWER_VERSION),
    "payload over the 64 MiB limit": (lambda b: stored_form(b, length=MAX_BLOB_BYTES + 1), STATUS_WEIR_POLICY_TOO_LARGE),
    "payload the policy decoder refuses": (lambda b: stored_form(b"\x01\x02\x03\x04" * 8), None),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_stored_policy_is_refused_with_its_reason_and_the_driver_runs_in_monitor_mode(new_run, vectors, damage):
    ck = harness.Checker(f"stored policy: {damage}")
    make, expected = DAMAGE[damage]
    p = tp._policy(vectors, "mixed")
    d = _stored_run(new_run, damage, make(p["bytes"]))
    status = d.driver_entry()
    ck.eq(L.status_name(status), L.status_name(L.STATUS_SUCCESS), "DriverEntry", "status (a refusal never stops the driver)")
    ck.eq(d.entry_result.error, None, "DriverEntry", "emulator fault")
    ck.eq(d.model.bugchecks, [], "DriverEntry", "bug checks")
    ck.eq([str(v) for v in d.model.violations], [], "DriverEntry", "model violations")
    s = policy_status(d)
    if expected is None:
        ck.true(s["stored_status"] >> 16 == 0xE057 and (s["stored_status"] & 0xFFFF) <= 0x0FFF, "GET_POLICY_STATUS",
                f"stored_status {s['stored_status']:#x} is not a policy decode status")
    else:
        ck.eq(L.status_name(s["stored_status"]), L.status_name(expected), "GET_POLICY_STATUS", "stored_status")
    ck.eq((s["source"], s["generation"], s["stored_reads"], s["blob_len"]), (SOURCE_NONE, 0, 1, 0),
          "GET_POLICY_STATUS", "source, generation, reads, blob length")
    text = f"{s['stored_status']:#010x}"
    if damage == "missing":
        ck.true(_traced(d.model, "no stored policy"), "DriverEntry", "no trace saying there is no stored policy")
    else:
        ck.true(_traced(d.model, f"stored policy refused: NTSTATUS({text})"), "DriverEntry",
                f"no trace 'stored policy refused: NTSTATUS({text})'")
    # Monitor mode (fail open): a connection the mixed policy would block is permitted.
    blocked = [v for v in p["vectors"] if v["expect"]["action"] == "block"]
    r = tp.classify_vector(d, blocked[0])
    ck.eq(r.action, L.FWP_ACTION_PERMIT, "classifyFn", "actionType with no policy (monitor mode)")
    ck.done()
    d.expect_clean()


# ---------------------------------------------------------------------------
# Fault injection: every fallible call a clean stored-policy start makes between opening the file and
# the next step (registering the callouts), each failing once in its own run.
@functools.lru_cache(maxsize=None)
def _stored_path_points() -> tuple:
    vec = tp._load_vectors()
    p = tp._policy(vec, "mixed")
    run = harness.DriverRun(label="clean stored start")
    run.model.files[STORED_POLICY_PATH] = stored_form(p["bytes"])
    run.model.parameters = {"TraceLevel": (L.REG_DWORD, 2)}
    status = run.driver_entry()
    assert status == L.STATUS_SUCCESS, L.status_name(status)
    calls = run.model.effective_calls("DriverEntry")
    apis = [c.api for c in calls]
    start, end = apis.index("ZwCreateFile"), apis.index("FwpsCalloutRegister3")
    skip = INFALLIBLE_APIS | DIAGNOSTIC_APIS | PURE_APIS
    points = tuple((c.api, c.occurrence) for c in calls[start:end] if c.api not in skip)
    run.unload()
    return points


def pytest_generate_tests(metafunc):
    if "stored_fault_point" in metafunc.fixturenames:
        pts = _stored_path_points()
        metafunc.parametrize("stored_fault_point", pts, ids=[f"{i + 1:02d}-{a}#{o}" for i, (a, o) in enumerate(pts)])


def test_every_call_on_the_stored_policy_path_fails_once_and_the_driver_still_starts(new_run, vectors, stored_fault_point):
    api, occurrence = stored_fault_point
    assert api in FAILURE_MODES, f"{api} has no failure mode in kernel_model.FAILURE_MODES"
    value = FAILURE_MODES[api][0]
    p = tp._policy(vectors, "mixed")
    d = _stored_run(new_run, f"stored fault {api}#{occurrence}", stored_form(p["bytes"]))
    d.model.fail("DriverEntry", api, occurrence)
    status = d.driver_entry()
    ck = harness.Checker(f"stored policy start with {api}#{occurrence} failing")
    ck.eq(L.status_name(status), L.status_name(L.STATUS_SUCCESS), "DriverEntry", "status")
    ck.eq(d.entry_result.error, None, "DriverEntry", "emulator fault")
    ck.eq(d.model.bugchecks, [], "DriverEntry", "bug checks")
    ck.eq([c.label for c in d.model.calls if c.injected], [f"{api}#{occurrence} (DriverEntry)"], "fault injection", "injected call")
    ck.eq([str(v) for v in d.model.violations], [], "DriverEntry", "model violations")
    s = policy_status(d)
    if api == "ZwClose":
        # The file was read: a failed close is traced, the policy is in force.
        ck.eq((s["source"], s["stored_status"]), (SOURCE_STORED, 0), "GET_POLICY_STATUS", "source, stored_status")
        ck.true(_traced(d.model, f"ZwClose failed: NTSTATUS({value:#010x})"), "DriverEntry", "no trace of the failed close")
    else:
        expected = {"ExAllocatePool2": L.STATUS_INSUFFICIENT_RESOURCES, "ExAllocatePoolWithTag": L.STATUS_INSUFFICIENT_RESOURCES}.get(api, value)
        ck.eq((s["source"], s["generation"], L.status_name(s["stored_status"])), (SOURCE_NONE, 0, L.status_name(expected)),
              "GET_POLICY_STATUS", "source, generation, stored_status")
        ck.true(_traced(d.model, f"stored policy refused: NTSTATUS({expected:#010x})"), "DriverEntry", "no refusal trace")
        if not api.startswith("ExAllocate"):
            ck.true(_traced(d.model, f"{api} failed: NTSTATUS({value:#010x})"), "DriverEntry", f"no trace naming {api}")
    # Every handle and pool block of the failed read is gone once the driver unloads (after-test check too).
    ck.done()
    d.expect_clean()


# ---------------------------------------------------------------------------
def _replacement_check(ck, model, before: int, where: str, filters_before: dict) -> None:
    changes = model.filter_changes[before:]
    ck.eq(len(changes), 1, where, "committed filter changes (one transaction)")
    if len(changes) != 1:
        return
    ch = changes[0]
    ck.eq(sorted(f["id"] for f in ch["deleted"]), sorted(f["id"] for f in filters_before.values()), where,
          "filters deleted (Weir's four, by run-time id)")
    ck.eq(sorted(f["filterKey"] for f in ch["added"]), sorted(filters_before), where, "filters added (same keys)")
    old = {k: (f["layerKey"], f["calloutKey"], f["flags"], f["action"]["type"]) for k, f in filters_before.items()}
    new = {f["filterKey"]: (f["layerKey"], f["calloutKey"], f["flags"], f["action"]["type"]) for f in ch["added"]}
    ck.eq(new, old, where, "added filters: layer, callout, flags, action as before")
    ck.eq(sorted(L.LAYER_BY_KEY[__import__("uuid").UUID(f["layerKey"])].name for f in ch["added"]),
          sorted(layer.name for layer in L.LAYERS), where, "layers whose flows WFP reauthorizes")
    after = _weir_filters(model)
    ck.eq(sorted(after), sorted(filters_before), where, "Weir's filters in the engine after the commit")
    ck.eq([s for s in model.sessions.values() if s.txn], [], where, "transactions left open")


def test_set_policy_replaces_the_filters_in_one_transaction_and_reauthorizations_follow_the_new_policy(new_run, vectors):
    ck = harness.Checker("reauthorization trigger after SET_POLICY")
    d = _stored_run(new_run, "reauth", None).start()
    mixed, repl = tp._policy(vectors, "mixed"), tp._policy(vectors, "replacement")
    (reauth,) = repl["vectors"]
    first = dict(reauth, reauth=False, name="new connection under the mixed policy")
    ck.eq(len(d.model.filter_changes), 1, "DriverEntry", "filter changes (the initial add only)")
    tp.expect_set(ck, d, mixed["bytes"], "SET_POLICY (mixed)", 1, mixed["rule_count"], mixed["set_count"])
    r = tp.classify_vector(d, first)
    ck.eq(r.action, L.FWP_ACTION_PERMIT, "classifyFn (connect, mixed policy)", "actionType")
    before, filters = len(d.model.filter_changes), _weir_filters(d.model)
    tp.expect_set(ck, d, repl["bytes"], "SET_POLICY (replacement)", 2, repl["rule_count"], repl["set_count"])
    _replacement_check(ck, d.model, before, "SET_POLICY (replacement)", filters)
    # WFP now reauthorizes the existing flow; the driver decides it by the replacement policy.
    tp.check_vector(ck, d, reauth, prefix="reauthorization after the trigger: ")
    s = d.stats(ck)
    if s:
        ck.eq((s["layers_v2"][0]["reauthorizations"], s["layers_v2"][0]["blocked"]), (1, 1), "GET_STATS",
              "connect-v4 reauthorizations, blocked")
    ck.done()
    d.expect_clean()


def test_reload_takes_a_new_stored_policy_and_triggers_reauthorization_a_bad_one_changes_nothing(new_run, vectors):
    ck = harness.Checker("RELOAD_POLICY")
    d = _stored_run(new_run, "reload", None).start()
    mixed, repl = tp._policy(vectors, "mixed"), tp._policy(vectors, "replacement")
    (reauth,) = repl["vectors"]
    tp.expect_set(ck, d, mixed["bytes"], "SET_POLICY (mixed, this run)", 1, mixed["rule_count"], mixed["set_count"])
    ck.eq(policy_status(d)["source"], SOURCE_THIS_RUN, "GET_POLICY_STATUS", "source after SET_POLICY")
    d.model.files[STORED_POLICY_PATH] = stored_form(repl["bytes"])
    before, filters = len(d.model.filter_changes), _weir_filters(d.model)
    r = reload(d)
    ck.eq(L.status_name(r.status), L.status_name(L.STATUS_SUCCESS), "RELOAD_POLICY", "status")
    if r.status == L.STATUS_SUCCESS:
        ck.eq(tp.decode_set_reply(r.buffer_after)["generation"], 2, "RELOAD_POLICY", "generation")
    _replacement_check(ck, d.model, before, "RELOAD_POLICY", filters)
    tp.check_vector(ck, d, reauth, prefix="reauthorization after reload: ")
    s = policy_status(d)
    ck.eq((s["source"], s["generation"], s["stored_status"], s["stored_reads"]), (SOURCE_STORED, 2, 0, 2),
          "GET_POLICY_STATUS", "after reload")
    ck.eq(s["blob_sha256"], hashlib.sha256(repl["bytes"]).digest(), "GET_POLICY_STATUS", "hash")
    # A corrupted copy: refused with its reason, the active policy and the filters stay.
    d.model.files[STORED_POLICY_PATH] = stored_form(mixed["bytes"])[:-3] + b"\0\0\0"
    before = len(d.model.filter_changes)
    r = reload(d)
    ck.eq(L.status_name(r.status), L.status_name(STATUS_WEIR_STORED_CORRUPTED), "RELOAD_POLICY (corrupted)", "status")
    ck.eq(r.information, 0, "RELOAD_POLICY (corrupted)", "Information")
    ck.eq(len(d.model.filter_changes), before, "RELOAD_POLICY (corrupted)", "filter changes")
    s = policy_status(d)
    ck.eq((s["source"], s["generation"], L.status_name(s["stored_status"]), s["stored_reads"]),
          (SOURCE_STORED, 2, L.status_name(STATUS_WEIR_STORED_CORRUPTED), 3), "GET_POLICY_STATUS", "after the refused reload")
    tp.check_vector(ck, d, reauth, prefix="still the replacement: ")
    ck.done()
    d.expect_clean()


def test_a_stored_policy_without_log_rules_records_only_blocks_from_the_start(new_run, vectors):
    """DriverEntry's stored policy sets the event log's selection as SET_POLICY does: with a policy that has no
    `log` rule and no `log_all`, a permitted connection is not recorded (monitor mode's record-everything ends at
    the load, not at the next SET_POLICY or RELOAD_POLICY); a block still is, with its rule id."""
    ck = harness.Checker("event selection after a stored start")
    repl = tp._policy(vectors, "replacement")
    (blocked,) = repl["vectors"]
    blocked = dict(blocked, reauth=False, name="new connection the stored policy blocks")
    permitted = dict(blocked, remote="93.184.216.34", name="new connection the stored policy permits")
    d = _stored_run(new_run, "stored events", stored_form(repl["bytes"])).start()
    ck.eq(policy_status(d)["source"], SOURCE_STORED, "GET_POLICY_STATUS", "source after the stored start")
    r = tp.classify_vector(d, permitted)
    ck.eq((r.action, r.rights & L.FWPS_RIGHT_ACTION_WRITE), (L.FWP_ACTION_PERMIT, L.FWPS_RIGHT_ACTION_WRITE),
          "classifyFn (permitted)", "(actionType, write right)")
    ck.eq(tp._read_events(d), [], "stored policy, permitted connection", "events recorded")
    r = tp.classify_vector(d, blocked)
    ck.eq(r.action, L.FWP_ACTION_BLOCK, "classifyFn (blocked)", "actionType")
    ck.eq([(e["decision"], e["rule_id"]) for e in tp._read_events(d)], [("block", 900)],
          "stored policy, blocked connection", "(decision, rule id) of the recorded events")
    ck.done()
    d.expect_clean()


REPLACE_POINTS = [("FwpmTransactionBegin0", 1)] + [("FwpmFilterDeleteById0", i) for i in (1, 4)] + [
    ("FwpmFilterAdd0", i) for i in (1, 4)] + [("FwpmTransactionCommit0", 1)]


@pytest.mark.parametrize("api,occurrence", REPLACE_POINTS, ids=[f"{a}#{o}" for a, o in REPLACE_POINTS])
def test_a_failed_filter_replacement_keeps_the_old_filters_and_the_new_policy(new_run, vectors, api, occurrence):
    ck = harness.Checker(f"SET_POLICY with {api}#{occurrence} failing in the filter replacement")
    d = _stored_run(new_run, "replace fault", None).start()
    mixed = tp._policy(vectors, "mixed")
    filters = _weir_filters(d.model)
    n = len(d.model.filter_changes)
    d.model.fail("dispatch", api, occurrence, instance=d.model.phase_instances["dispatch"] + 1)
    tp.expect_set(ck, d, mixed["bytes"], "SET_POLICY (mixed)", 1, mixed["rule_count"], mixed["set_count"])
    ck.eq(len([c for c in d.model.calls if c.injected]), 1, "SET_POLICY", "injected calls")
    ck.eq(len(d.model.filter_changes), n, "SET_POLICY", "committed filter changes")
    ck.eq({k: v["id"] for k, v in _weir_filters(d.model).items()}, {k: v["id"] for k, v in filters.items()},
          "SET_POLICY", "Weir's filters (the old ones, untouched)")
    ck.eq([s for s in d.model.sessions.values() if s.txn], [], "SET_POLICY", "transactions left open")
    ck.eq([str(v) for v in d.model.violations], [], "SET_POLICY", "model violations")
    ck.true(_traced(d.model, "they keep their verdicts", phase="dispatch"), "SET_POLICY", "no trace of the failed replacement")
    blocked = [v for v in mixed["vectors"] if v["expect"]["action"] == "block"][0]
    r = tp.classify_vector(d, blocked)
    ck.eq(r.action, L.FWP_ACTION_BLOCK, "classifyFn", "a new connection is decided by the new policy")
    ck.done()
    d.expect_clean()


# ---------------------------------------------------------------------------
# The file model's own rules (no driver): each must be able to fail.
def _open_args(rig, path: str, *, access=0x80100000, disposition=1, options=0x60, attrs=0x240):
    from test_model import FakeEmu  # noqa: F401  (the rig's memory)
    name = rig.emu.wstr(path)
    us = rig.emu.alloc(struct.pack("<HHIQ", 2 * len(path), 2 * len(path) + 2, 0, name))
    oa = rig.emu.alloc(struct.pack("<IIQQIIQQ", 48, 0, 0, us, attrs, 0, 0, 0))
    hp = rig.emu.alloc(bytes(8))
    iosb = rig.emu.alloc(bytes(16))
    return hp, [hp, access, oa, iosb, 0, 0x80, 1, disposition, options, 0, 0]


def test_the_file_model_enforces_open_only_read_only_synchronous_access():
    from test_model import Rig
    rig = Rig()
    rig.model.files[STORED_POLICY_PATH] = b"0123456789"
    cases = [
        (dict(disposition=5), "CreateDisposition"),                     # FILE_OVERWRITE_IF
        (dict(access=0x80100000 | 0x40000000), "DesiredAccess"),        # + GENERIC_WRITE
        (dict(access=0x80100000 | 0x10000), "DesiredAccess"),           # + DELETE
        (dict(options=0x40), "CreateOptions"),                          # not synchronous
        (dict(access=0x80000000), "CreateOptions"),                     # no SYNCHRONIZE
        (dict(attrs=0x40), "OBJ_KERNEL_HANDLE"),
    ]
    for kwargs, arg in cases:
        n = len(rig.model.violations)
        _, argv = _open_args(rig, STORED_POLICY_PATH, **kwargs)
        rig.call("ZwCreateFile", *argv)
        new = [str(v) for v in rig.model.violations[n:]]
        assert any(arg in v for v in new), (kwargs, new)
    rig.model.kernel_handles.clear()
    n = len(rig.model.violations)
    _, argv = _open_args(rig, "\\SystemRoot\\other")
    assert rig.call("ZwCreateFile", *argv) == L.STATUS_OBJECT_NAME_NOT_FOUND
    hp, argv = _open_args(rig, STORED_POLICY_PATH.upper())
    assert rig.call("ZwCreateFile", *argv) == L.STATUS_SUCCESS
    assert rig.model.violations[n:] == []
    h = struct.unpack("<Q", rig.emu.mem_read(hp, 8))[0]
    assert any("not closed" in leak for leak in rig.model.leaks())
    iosb, buf, off = rig.emu.alloc(bytes(16)), rig.emu.alloc(bytes(16)), rig.emu.alloc(struct.pack("<q", 4))
    assert rig.call("ZwReadFile", h, 0, 0, 0, iosb, buf, 16, off, 0) == L.STATUS_SUCCESS
    assert rig.emu.mem_read(buf, 6) == b"456789"
    assert struct.unpack("<Q", rig.emu.mem_read(iosb + 8, 8))[0] == 6
    past = rig.emu.alloc(struct.pack("<q", 10))
    assert rig.call("ZwReadFile", h, 0, 0, 0, iosb, buf, 16, past, 0) == 0xC0000011  # STATUS_END_OF_FILE
    n = len(rig.model.violations)
    rig.call("ZwReadFile", h, 0x1234, 0, 0, iosb, buf, 16, off, 0)
    rig.call("ZwReadFile", h, 0, 0, 0, iosb, buf, 16, 0, 0)
    assert [v.arg for v in rig.model.violations[n:]] == ["Event/ApcRoutine", "ByteOffset"]
    info = rig.emu.alloc(bytes(24))
    assert rig.call("ZwQueryInformationFile", h, iosb, info, 24, 5) == L.STATUS_SUCCESS
    assert struct.unpack_from("<q", rig.emu.mem_read(info, 24), 8)[0] == 10
    assert rig.call("ZwQueryInformationFile", h, iosb, info, 23, 5) == 0xC0000004  # INFO_LENGTH_MISMATCH
    assert rig.call("ZwClose", h) == L.STATUS_SUCCESS
    assert not any("not closed" in leak for leak in rig.model.leaks())
