"""Policies pushed through IOCTL_WEIR_SET_POLICY into the real image, and the connections it then decides.

The policy blobs and the expected verdicts come from Rust (`tests/policy_vectors.rs`): the
reference evaluator's answers for the same connections, so the driver's compiled lookup is checked
against the reference in one flow. The files are in test-artifacts/policy/; `cargo xtask test`
writes them before this suite runs, and this module runs the generator itself if they are missing.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import statistics
import struct
import subprocess

import pytest

import harness
import layouts as L
from kernel_model import PoolArena

VECTORS_DIR = harness.REPO_ROOT / "test-artifacts" / "policy"
ARTIFACTS = harness.REPO_ROOT / "test-artifacts" / "emulation"

# fwptypes.h (checked against windows-sys 0.61.2).
FWP_CONDITION_FLAG_IS_LOOPBACK = 0x1
FWP_CONDITION_FLAG_IS_REAUTHORIZE = 0x4
# FWPS_FIELD_ALE_AUTH_CONNECT_V4_FLAGS / _RECV_ACCEPT_V4_FLAGS (fwpsk.h); the V6 layers use the same indices.
FLAGS_INDEX = {True: 12, False: 11}
APP_ID_INDEX = 0
# An incoming action neither verdict uses, so "unchanged" is visible.
ACTION_IN = L.FWP_ACTION_CALLOUT_TERMINATING

LAYERS = {layer.name: layer for layer in L.LAYERS}


def _load_vectors() -> dict:
    path = VECTORS_DIR / "vectors.json"
    if not path.is_file():
        cargo = os.environ.get("CARGO") or shutil.which("cargo") or "cargo"
        subprocess.run([cargo, "test", "-q", "-p", "weir", "--test", "policy_vectors"], cwd=harness.REPO_ROOT, check=True)
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def vectors() -> dict:
    return _load_vectors()


@pytest.fixture
def driver(new_run) -> harness.DriverRun:
    """A started driver whose emulator allows the many pool calls of compiling a 10k-rule policy in one
    IOCTL: pool from one arena (kernel_model.PoolArena), and no 5,000-API-call limit per run."""
    d = new_run("driver")
    d.model.pool_arena = PoolArena(d.se)
    d.se.emu.config = d.se.emu.config.model_copy(update={"max_api_count": 5_000_000, "timeout": 600})
    # Per-connection traces off, as driver.inx installs it (TraceLevel 2), so the measured classify cost is
    # production's.
    d.model.parameters = {"TraceLevel": (L.REG_DWORD, 2)}
    return d.start()


def _policy(vectors: dict, name: str) -> dict:
    (p,) = [p for p in vectors["policies"] if p["name"] == name]
    p = dict(p)
    p["bytes"] = (VECTORS_DIR / p["blob"]).read_bytes()
    return p


def _status(value: int) -> str:
    return L.status_name(value)


# ------------------------------------------------------------------- IOCTLs
def set_policy(driver, blob: bytes, out_len: int = L.SET_POLICY_REPLY_SIZE):
    return driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_SET_POLICY, in_len=len(blob), out_len=out_len,
                      input=blob)


def get_policy(driver, out_len: int = 1 << 21):
    return driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_GET_POLICY, out_len=out_len)


def decode_set_reply(data: bytes) -> dict:
    size, abi, generation, rules, sets = struct.unpack_from("<IIQII", data, 0)
    return {"size": size, "abi_version": abi, "generation": generation, "rule_count": rules, "set_count": sets}


def decode_get_reply(data: bytes) -> tuple[dict, bytes]:
    size, abi, generation, blob_len, reserved = struct.unpack_from("<IIQII", data, 0)
    header = {"size": size, "abi_version": abi, "generation": generation, "blob_len": blob_len, "reserved": reserved}
    return header, data[L.POLICY_REPLY_HEADER_SIZE:L.POLICY_REPLY_HEADER_SIZE + blob_len]


def expect_set(ck, driver, blob: bytes, where: str, generation: int, rule_count: int, set_count: int):
    r = set_policy(driver, blob)
    if r.run.error:
        ck.true(False, where, f"emulator fault {r.run.error}")
        return
    ck.eq(_status(r.status), _status(L.STATUS_SUCCESS), where, "status")
    ck.eq(r.information, L.SET_POLICY_REPLY_SIZE, where, "Information")
    if r.status == L.STATUS_SUCCESS:
        ck.eq(decode_set_reply(r.buffer_after),
              {"size": 24, "abi_version": L.POLICY_ABI_VERSION, "generation": generation, "rule_count": rule_count,
               "set_count": set_count}, where, "SetPolicyReply")


def expect_active_blob(ck, driver, blob: bytes, generation: int, where: str):
    r = get_policy(driver, out_len=L.POLICY_REPLY_HEADER_SIZE + len(blob))
    ck.eq(_status(r.status), _status(L.STATUS_SUCCESS), where, "IOCTL_WEIR_GET_POLICY status")
    if r.status == L.STATUS_SUCCESS:
        header, got = decode_get_reply(r.buffer_after)
        ck.eq((header["generation"], header["blob_len"]), (generation, len(blob)), where, "GET_POLICY generation, blob_len")
        ck.true(got == blob, where, "GET_POLICY blob is not byte-identical to the active policy's blob")


# ----------------------------------------------------------------- classify
def policy_values(driver, layer, v: dict) -> list:
    """Incoming values for vector `v`: the tuple, ALE_APP_ID (FWP_BYTE_BLOB, UTF-16LE + NUL) and FLAGS."""
    n = FLAGS_INDEX[layer.outbound] + 1
    vals = [(L.FWP_EMPTY, 0)] * n

    def address(text):
        a = ipaddress.ip_address(text)
        if layer.ipv6:
            return ("bytes16", a.packed)
        return (L.FWP_UINT32, int(a))

    vals[L.FIELD_LOCAL_ADDRESS] = address(v["local"])
    vals[L.FIELD_REMOTE_ADDRESS] = address(v["remote"])
    vals[L.FIELD_LOCAL_PORT] = (L.FWP_UINT16, v["lport"])
    vals[L.FIELD_REMOTE_PORT] = (L.FWP_UINT16, v["rport"])
    vals[L.FIELD_PROTOCOL] = (L.FWP_UINT8, v["proto"])
    if v.get("app"):
        units = (v["app"] + "\0").encode("utf-16-le")
        data = driver.alloc(len(units), units, tag="weir.test.appid")
        blob = driver.alloc(16, struct.pack("<IIQ", len(units), 0, data), tag="weir.test.appid.blob")
        vals[APP_ID_INDEX] = ("raw", (L.FWP_BYTE_BLOB_TYPE, blob))
    flags = (FWP_CONDITION_FLAG_IS_LOOPBACK if v.get("loopback") else 0) | (
        FWP_CONDITION_FLAG_IS_REAUTHORIZE if v.get("reauth") else 0)
    vals[FLAGS_INDEX[layer.outbound]] = (L.FWP_UINT32, flags)
    return vals


def classify_vector(driver, v: dict):
    layer = LAYERS[v["layer"]]
    rights = L.FWPS_RIGHT_ACTION_WRITE if v["write_right"] else 0
    return driver.classify(layer.layer_id, policy_values(driver, layer, v), rights=rights, action_in=ACTION_IN)


def check_vector(ck, driver, v: dict, prefix: str = "") -> None:
    where = f"classifyFn [{prefix}{v['name']}]"
    r = classify_vector(driver, v)
    if r.run.error:
        ck.true(False, where, f"emulator fault {r.run.error}")
        return
    expected = v["expect"]["action"]
    if expected == "unchanged":
        ck.eq(r.out_after.hex(), r.out_before.hex(), where, "classify-out (write right absent: must not change)")
    elif expected == "block":
        ck.eq((r.action, r.rights & L.FWPS_RIGHT_ACTION_WRITE), (L.FWP_ACTION_BLOCK, 0), where,
              f"(actionType, write right) for a block by rule {v['expect']['rule_id']}")
    else:
        ck.eq((r.action, r.rights & L.FWPS_RIGHT_ACTION_WRITE), (L.FWP_ACTION_PERMIT, L.FWPS_RIGHT_ACTION_WRITE), where,
              f"(actionType, write right) for a soft permit by rule {v['expect']['rule_id']}")


def expected_counters(vs: list[dict]) -> tuple[list[dict], dict[int, int]]:
    layers = [{"new_connections": 0, "reauthorizations": 0, "permitted": 0, "blocked": 0, "write_right_absent": 0}
              for _ in L.LAYERS]
    hits: dict[int, int] = {}
    for v in vs:
        c = layers[LAYERS[v["layer"]].index]
        c["reauthorizations" if v["reauth"] else "new_connections"] += 1
        a = v["expect"]["action"]
        c[{"permit": "permitted", "block": "blocked", "unchanged": "write_right_absent"}[a]] += 1
        if v["expect"]["rule_index"] is not None:
            hits[v["expect"]["rule_index"]] = hits.get(v["expect"]["rule_index"], 0) + 1
    return layers, hits


def check_stats(ck, driver, vs: list[dict], policy: dict, generation: int, where: str) -> None:
    s = driver.stats(ck, out_len=L.STATS_HEADER_SIZE + L.STATS_RULE_ENTRY_SIZE * policy["rule_count"])
    if not s:
        return
    layers, hits = expected_counters(vs)
    for layer in L.LAYERS:
        ck.eq(s["layers_v2"][layer.index], layers[layer.index], where, f"layer counters {layer.name}")
    ck.eq((s["policy_generation"], s["rule_count"], s["size"]),
          (generation, policy["rule_count"], L.STATS_HEADER_SIZE + 16 * policy["rule_count"]), where,
          "policy_generation, rule_count, size")
    got = {r["rule_index"]: r["hits"] for r in s["rules"] if r["hits"]}
    ck.eq(got, hits, where, "per-rule hits {rule_index: hits} (reference evaluator's first matches)")
    ids = [r["rule_id"] for r in s["rules"]]
    ck.true(ids == policy["rule_ids"], where, f"rule ids in policy order differ (got {len(ids)}, first {ids[:5]})")


# -------------------------------------------------------------------- tests
def test_mixed_policy_decides_like_the_reference_on_all_four_layers(driver, vectors):
    ck = harness.Checker("mixed policy: every condition kind, all four layers")
    p = _policy(vectors, "mixed")
    expect_set(ck, driver, p["bytes"], "IOCTL_WEIR_SET_POLICY (mixed)", 1, p["rule_count"], p["set_count"])
    kinds = {v["expect"]["action"] for v in p["vectors"]}
    assert kinds == {"permit", "block", "unchanged"}, f"vector set lacks a kind: {kinds}"
    for v in p["vectors"]:
        check_vector(ck, driver, v)
    check_stats(ck, driver, p["vectors"], p, 1, "IOCTL_WEIR_GET_STATS after the mixed vectors")
    expect_active_blob(ck, driver, p["bytes"], 1, "after the mixed vectors")
    ck.done()
    driver.expect_clean()


def test_disabled_rule_is_skipped_and_a_version_1_blob_still_decides_like_the_reference(driver, vectors):
    """The mixed policy's first rule (id 50) would block every connection but is disabled: no vector is
    decided by it. The same rules written in format version 1 (an older weirctl's blob, no names, no
    disabled rule) load, decide alike and read back byte for byte."""
    ck = harness.Checker("disabled rule; format version 1")
    mixed = _policy(vectors, "mixed")
    ck.eq(mixed["rule_ids"][0], 50, "mixed policy", "first rule is the disabled catch-all")
    ck.eq([v["name"] for v in mixed["vectors"] if v["expect"]["rule_id"] == 50], [], "mixed policy",
          "vectors decided by the disabled rule")
    p = _policy(vectors, "mixed-v1")
    ck.eq(p["bytes"][8:10], b"\x01\x00", "mixed-v1 blob", "format version field")
    expect_set(ck, driver, p["bytes"], "IOCTL_WEIR_SET_POLICY (mixed-v1)", 1, p["rule_count"], p["set_count"])
    for v in p["vectors"]:
        check_vector(ck, driver, v, prefix="v1 ")
    check_stats(ck, driver, p["vectors"], p, 1, "IOCTL_WEIR_GET_STATS after the version-1 vectors")
    expect_active_blob(ck, driver, p["bytes"], 1, "after the version-1 vectors")
    ck.done()
    driver.expect_clean()


def _measure_classify(driver, v: dict) -> tuple[int, int]:
    """(instructions executed inside the weir.sys image, stack bytes used below classifyFn's entry RSP)
    during one classifyFn call. Imports (memcpy, memcmp, ...) run as the kernel model's Python handlers
    outside the image and are not counted."""
    from unicorn import UC_HOOK_CODE
    from unicorn.x86_const import UC_X86_REG_RSP

    uc = driver.se.emu.emu_eng.emu
    base, size = driver.module.base, driver.module.image_size
    count = [0]
    rsp = [None, None]  # entry, lowest

    def on_code(u, _addr, _size, _user):
        count[0] += 1
        sp = u.reg_read(UC_X86_REG_RSP)
        if rsp[0] is None:
            rsp[0] = rsp[1] = sp
        elif sp < rsp[1]:
            rsp[1] = sp

    hook = uc.hook_add(UC_HOOK_CODE, on_code, begin=base, end=base + size - 1)
    # Code translated before the hook existed would run without it: drop the translation cache.
    uc.ctl_flush_tb()
    try:
        r = classify_vector(driver, v)
    finally:
        uc.hook_del(hook)
        uc.ctl_flush_tb()
    assert r.run.error is None, f"classifyFn [{v['name']}]: emulator fault {r.run.error}"
    # + 8: the return address the caller pushed (part of classify's stack use).
    return count[0], (rsp[0] - rsp[1] + 8) if rsp[0] is not None else 0


def test_large_policy_vectors_and_classify_instruction_count(driver, vectors):
    ck = harness.Checker("10,000-rule policy")
    p = _policy(vectors, "large-10k")
    expect_set(ck, driver, p["bytes"], "IOCTL_WEIR_SET_POLICY (10k rules)", 1, p["rule_count"], p["set_count"])
    for v in p["vectors"]:
        check_vector(ck, driver, v)
    check_stats(ck, driver, p["vectors"], p, 1, "IOCTL_WEIR_GET_STATS after the 10k-rule vectors")
    ck.done()
    # Deterministic cost of the real classifyFn per connection (traces off, as in production: see the fixture).
    measured = [_measure_classify(driver, v) for v in p["vectors"]]
    counts = [c for c, _ in measured]
    stacks = [s for _, s in measured]
    report = {
        "policy": "large-10k (tests/policy_vectors.rs)",
        "connections": len(counts),
        "instructions_per_classify": {"min": min(counts), "median": statistics.median(counts), "max": max(counts)},
        "stack_bytes_per_classify": {"min": min(stacks), "max": max(stacks)},
        "all": measured,
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "classify-instructions.json").write_text(json.dumps(report, indent=1))
    print(f"\nclassifyFn at 10k rules: instructions {report['instructions_per_classify']}, "
          f"stack bytes {report['stack_bytes_per_classify']}")
    # A budget, so a regression (e.g. a lookup that became linear in the rules) fails here:
    # a linear scan of 10,000 rules would need hundreds of thousands of instructions.
    assert max(counts) < 5_000, f"classifyFn executed {max(counts)} instructions for one connection at 10k rules"
    assert max(stacks) < 4096, f"classifyFn used {max(stacks)} bytes of stack"
    # Unload with the 10k-rule policy loaded: every pool block is given back.
    _unload_and_expect_balanced_pool(driver)
    driver.expect_clean()


def _unload_and_expect_balanced_pool(driver) -> None:
    ck = harness.Checker("DriverUnload with a policy loaded")
    res = driver.unload()
    driver.expect_no_fault(res)
    outstanding = driver.model.live_state()["pool_outstanding"]
    ck.eq(outstanding[:5], [], "DriverUnload", f"pool blocks still allocated ({len(outstanding)}; policy memory must be released)")
    allocs = sum(1 for h in driver.model.pool_history if h["op"] == "alloc")
    frees = sum(1 for h in driver.model.pool_history if h["op"] == "free")
    ck.eq(allocs, frees, "pool history", "allocations vs frees")
    ck.true(allocs > 50, "pool history", f"only {allocs} allocations: the policies were not built in pool")
    ck.done()


def test_malformed_blobs_are_refused_and_the_previous_policy_still_decides(driver, vectors):
    ck = harness.Checker("malformed policy blobs")
    p = _policy(vectors, "mixed")
    expect_set(ck, driver, p["bytes"], "IOCTL_WEIR_SET_POLICY (mixed)", 1, p["rule_count"], p["set_count"])
    probe = next(v for v in p["vectors"] if v["expect"]["rule_id"] == 100 and v["write_right"])
    seen = set()
    for m in vectors["malformed"]:
        where = f"IOCTL_WEIR_SET_POLICY [{m['name']}]"
        blob = bytes(m["zeros"]) if "zeros" in m else (VECTORS_DIR / m["blob"]).read_bytes()
        r = set_policy(driver, blob)
        if r.run.error:
            ck.true(False, where, f"emulator fault {r.run.error}")
            continue
        ck.eq(_status(r.status), _status(m["status"]), where, "status (Weir's code for the decoder's error)")
        ck.eq(r.information, 0, where, "Information")
        ck.true(r.guard_intact, where, "wrote past the system buffer")
        seen.add(m["status"])
        # Still the previous policy: same blob and generation, same decision.
        expect_active_blob(ck, driver, p["bytes"], 1, f"after {m['name']}")
        check_vector(ck, driver, probe, prefix=f"after {m['name']}: ")
    ck.true(len(seen) >= 6, "malformed blobs", f"only {len(seen)} distinct statuses: {sorted(map(hex, seen))}")
    ck.done()
    driver.expect_clean()


def test_set_get_byte_identical_short_buffers_and_clear(driver, vectors):
    ck = harness.Checker("set, get, clear")
    p = _policy(vectors, "mixed")
    # Nothing set yet: generation 0, empty blob.
    expect_active_blob(ck, driver, b"", 0, "before any set")
    expect_set(ck, driver, p["bytes"], "IOCTL_WEIR_SET_POLICY (mixed)", 1, p["rule_count"], p["set_count"])
    expect_active_blob(ck, driver, p["bytes"], 1, "after set")
    # Too short for the blob: the header alone with the size needed.
    r = get_policy(driver, out_len=L.POLICY_REPLY_HEADER_SIZE + 10)
    ck.eq((_status(r.status), r.information), (_status(L.STATUS_BUFFER_OVERFLOW), L.POLICY_REPLY_HEADER_SIZE),
          "GET_POLICY (short)", "status, Information")
    header, _ = decode_get_reply(r.buffer_after)
    ck.eq(header["size"], L.POLICY_REPLY_HEADER_SIZE + len(p["bytes"]), "GET_POLICY (short)", "size needed")
    # Stats with room for the header only: STATUS_BUFFER_OVERFLOW and the size needed.
    r = driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_GET_STATS, out_len=L.STATS_HEADER_SIZE)
    ck.eq((_status(r.status), r.information), (_status(L.STATUS_BUFFER_OVERFLOW), L.STATS_HEADER_SIZE),
          "GET_STATS (header only)", "status, Information")
    ck.eq(L.decode_stats(r.buffer_after)["size"], L.STATS_HEADER_SIZE + 16 * p["rule_count"], "GET_STATS (header only)",
          "size needed")
    # Clear: monitor mode permits what the policy blocked.
    blocked = next(v for v in p["vectors"] if v["expect"]["rule_id"] == 100 and v["write_right"])
    expect_set(ck, driver, b"", "IOCTL_WEIR_SET_POLICY (empty = clear)", 2, 0, 0)
    expect_active_blob(ck, driver, b"", 2, "after clear")
    r = classify_vector(driver, blocked)
    ck.eq((r.action, r.rights), (L.FWP_ACTION_PERMIT, L.FWPS_RIGHT_ACTION_WRITE), "classifyFn after clear",
          "(actionType, rights): monitor mode permits")
    ck.done()
    driver.expect_clean()


def test_existing_connections_are_decided_by_the_new_policy_when_reauthorized(driver, vectors):
    """README "Existing connections": a policy swap changes no WFP filter; a flow keeps the verdict it got until
    WFP reauthorizes it, and the reauthorization is decided by the policy active then."""
    ck = harness.Checker("existing connections across a policy change")
    mixed = _policy(vectors, "mixed")
    repl = _policy(vectors, "replacement")
    (reauth,) = repl["vectors"]
    first = dict(reauth, reauth=False, name="new connection under the mixed policy")
    expect_set(ck, driver, mixed["bytes"], "SET_POLICY (mixed)", 1, mixed["rule_count"], mixed["set_count"])
    r = classify_vector(driver, first)
    ck.eq(r.action, L.FWP_ACTION_PERMIT, "classifyFn (connect, mixed policy)", "actionType (rule 600 permits 10/8)")
    expect_set(ck, driver, repl["bytes"], "SET_POLICY (replacement)", 2, repl["rule_count"], repl["set_count"])
    check_vector(ck, driver, reauth, prefix="after the swap: ")
    s = driver.stats(ck)
    if s:
        ck.eq(s["layers_v2"][0]["new_connections"], 1, "GET_STATS", "connect-v4 new_connections")
        ck.eq(s["layers_v2"][0]["reauthorizations"], 1, "GET_STATS", "connect-v4 reauthorizations")
        ck.eq(s["layers_v2"][0]["blocked"], 1, "GET_STATS", "connect-v4 blocked (the reauthorization)")
        ck.eq([r["hits"] for r in s["rules"]], [1], "GET_STATS", "hits of the replacement's rule 900")
    ck.done()
    driver.expect_clean()


def test_many_replacements_then_unload_balances_the_pool(driver, vectors):
    ck = harness.Checker("replace many times, then unload with a policy loaded")
    mixed = _policy(vectors, "mixed")
    medium = _policy(vectors, "medium-200")
    sequence = [mixed, medium, None, mixed, mixed, None, medium, mixed, None, mixed] * 2 + [medium]
    for i, p in enumerate(sequence, start=1):
        if p is None:
            expect_set(ck, driver, b"", f"SET_POLICY #{i} (clear)", i, 0, 0)
        else:
            expect_set(ck, driver, p["bytes"], f"SET_POLICY #{i} ({p['name']})", i, p["rule_count"], p["set_count"])
    # The last policy decides, and stats describe it.
    for v in medium["vectors"]:
        check_vector(ck, driver, v, prefix="after the last replacement: ")
    check_stats(ck, driver, medium["vectors"], medium, len(sequence), "GET_STATS after the replacements")
    ck.done()
    _unload_and_expect_balanced_pool(driver)
    driver.expect_clean()


# ------------------------------------------------------------------- events
def _read_events(driver) -> list[dict]:
    """Every record waiting, through READ_EVENTS (a parked read at the end is cancelled)."""
    import events_wire as W
    out = []
    while True:
        # One handle throughout: its cursor continues where the previous call stopped.
        r = driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_READ_EVENTS, out_len=64 * 1024,
                       file_object=0xFFFF_A000_0000_0E00)
        assert r.status in (L.STATUS_SUCCESS, L.STATUS_PENDING), L.status_name(r.status)
        if r.status == L.STATUS_PENDING:
            driver.cancel_irp(r.irp)
            return [e for e in out if e["kind"] == "connection"]
        out += W.decode(r.buffer_after[:r.information]) if r.information else []


def test_events_follow_the_policy(driver, vectors):
    """Monitor mode records every connection; with a policy loaded only blocks and `log` rules (rule 700 of
    the mixed policy) are recorded, with the deciding rule's id; clearing the policy records everything again."""
    ck = harness.Checker("events follow the policy")
    p = _policy(vectors, "mixed")
    vs = p["vectors"]
    first = vs[0]
    classify_vector(driver, first)
    got = _read_events(driver)
    ck.eq(len(got), 1, "monitor mode", "events for one classification before any policy")
    expect_set(ck, driver, p["bytes"], "set mixed", 1, p["rule_count"], p["set_count"])
    for v in vs:
        classify_vector(driver, v)
    got = [(e["decision"], e["rule_id"], e["rule_index"], e["policy_generation"]) for e in _read_events(driver)]
    # Record version 3: the generation of the policy that decided (1: the first set) and the rule's index in
    # it, which names the rule (ids need not be unique; the mixed policy's index 0 is a disabled rule).
    want = [(v["expect"]["action"], v["expect"]["rule_id"], v["expect"]["rule_index"], 1) for v in vs
            if v["write_right"] and (v["expect"]["action"] == "block" or v["expect"]["log"])]
    ck.true(any(v["expect"]["log"] and v["expect"]["action"] == "permit" for v in vs), "vectors",
            "no vector matches the `log` permit rule, so the test would not see it")
    ck.eq(got, want, "mixed policy", "(decision, rule id, rule index, policy generation) of the recorded events")
    expect_set(ck, driver, b"", "clear", 2, 0, 0)
    classify_vector(driver, first)
    ck.eq(len(_read_events(driver)), 1, "cleared", "events for one classification after clearing the policy")
    ck.done()
    driver.expect_clean()
