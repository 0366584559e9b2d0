"""The administrator's fail-closed allow-list (`Parameters\\FailClosedAllow`, REG_MULTI_SZ) on the real
image: each entry becomes a permit filter per IP version in the boot-time and the persistent set, with
the fixed filters' provider, sublayer, flags and the allow weight; a bad value is traced, reported in
GET_POLICY_STATUS and leaves the fixed set alone; a shorter list replaces a longer one; an open start
removes everything; a failed read or add on that path is traced, never fatal, the set whole or absent.
Model pieces: allow_model.py (the value, the pointer-valued conditions), store_model.py (BFE's store).
"""

from __future__ import annotations

import struct

import pytest

import harness
import layouts as L
from allow_model import (ALLOW_UNREADABLE, ALLOW_WEIGHT, EXTRA_BOOT_TIME_PREFIX, EXTRA_PERSISTENT_PREFIX,
                         FWP_MATCH_RANGE, REG_MULTI_SZ, REG_SZ, VALUE_NAME, extra_key, multi_sz, range16, v4, v6)
from store_model import FWPM_FILTER_FLAG_BOOTTIME, FWPM_FILTER_FLAG_PERSISTENT
from test_fail_closed import (FILTER_COUNT, FWP_MATCH_EQUAL, FWPM_CONDITION_IP_LOCAL_PORT, FWPM_CONDITION_IP_PROTOCOL,
                              FWPM_CONDITION_IP_REMOTE_PORT, LAYER_KEYS, PERSISTENT_LEFT, PROVIDER_KEY, SUBLAYER_KEY, ZERO,
                              _expected_rules, _rules_of, check_persistent_set, check_weir_above, weir_callout_filters)
from test_stored_policy import _traced

FWPM_CONDITION_IP_REMOTE_ADDRESS = "b235ae9a-1d64-49b8-a44c-5ff3d9095045"
IOCTL_WEIR_GET_POLICY_STATUS = 0x80576040
LEFT = PERSISTENT_LEFT + [EXTRA_PERSISTENT_PREFIX, EXTRA_BOOT_TIME_PREFIX]

ENTRIES = ["out udp 10.0.0.53 53", "out tcp 10.1.2.77/24 443", "# management subnet, WinRM", "in udp any 67-68",
           "out tcp fd00::/8 5985-5986"]
# (layer, conditions) each entry must become, in order (IPv4 before IPv6).
EXPECTED_EXTRA = [
    ("connect-v4", ((FWPM_CONDITION_IP_PROTOCOL, FWP_MATCH_EQUAL, 17), (FWPM_CONDITION_IP_REMOTE_ADDRESS, FWP_MATCH_EQUAL, v4("10.0.0.53/32")),
                    (FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, 53))),
    ("connect-v4", ((FWPM_CONDITION_IP_PROTOCOL, FWP_MATCH_EQUAL, 6), (FWPM_CONDITION_IP_REMOTE_ADDRESS, FWP_MATCH_EQUAL, v4("10.1.2.0/24")),
                    (FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, 443))),
    ("accept-v4", ((FWPM_CONDITION_IP_PROTOCOL, FWP_MATCH_EQUAL, 17), (FWPM_CONDITION_IP_LOCAL_PORT, FWP_MATCH_RANGE, range16(67, 68)))),
    ("accept-v6", ((FWPM_CONDITION_IP_PROTOCOL, FWP_MATCH_EQUAL, 17), (FWPM_CONDITION_IP_LOCAL_PORT, FWP_MATCH_RANGE, range16(67, 68)))),
    ("connect-v6", ((FWPM_CONDITION_IP_PROTOCOL, FWP_MATCH_EQUAL, 6), (FWPM_CONDITION_IP_REMOTE_ADDRESS, FWP_MATCH_EQUAL, v6("fd00::/8")),
                    (FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_RANGE, range16(5985, 5986)))),
]


def _run(new_run, label, value, *, value_type=REG_MULTI_SZ, bfe_running=True, model=None, fail_mode=1):
    d = new_run(label, model)
    d.model.parameters = {"TraceLevel": (L.REG_DWORD, 2), "FailMode": (L.REG_DWORD, fail_mode)}
    if value is not None:
        d.model.parameters[VALUE_NAME] = (value_type, value)
    if not bfe_running:
        d.model.bfe_state = L.FWPM_SERVICE_STOPPED
    d.expected_leaks = list(LEFT)
    return d


def allow_status(driver) -> dict:
    """GET_POLICY_STATUS with room for the 112-byte reply: the fail-mode and allow-list fields."""
    r = driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=IOCTL_WEIR_GET_POLICY_STATUS, out_len=112)
    assert r.run.error is None and r.status == L.STATUS_SUCCESS, f"GET_POLICY_STATUS: {L.status_name(r.status)}"
    assert r.information == 112
    size, = struct.unpack_from("<I", r.buffer_after, 0)
    f = struct.unpack_from("<IIIIII", r.buffer_after, 88)
    return {"size": size, **dict(zip(["fail_mode", "fail_closed_set", "allow_entries", "allow_bad", "allow_error", "allow_line"], f))}


def _extras(filters: dict, prefix: str) -> list[dict]:
    return [filters[k] for k in sorted(filters) if k.startswith(prefix)]


def check_extras(ck, filters: dict, prefix: str, where: str, *, boot_time: bool, expected=EXPECTED_EXTRA):
    ex = _extras(filters, prefix)
    ck.eq([f["filterKey"] for f in ex], [extra_key(prefix, n) for n in range(len(expected))], where, "extra filter keys (dense from the base)")
    got = [(LAYER_KEYS.get(f["layerKey"], f["layerKey"]), tuple((c["field"], c["match"], c["value"]) for c in f["conditions"])) for f in ex]
    ck.eq(got, expected, where, "extra filters: layer and conditions, in entry order")
    ck.eq(sorted({(f["action"]["type"], f["weight"]["type"], f["weight"]["value"]) for f in ex}),
          [(L.FWP_ACTION_PERMIT, L.FWP_UINT8, ALLOW_WEIGHT)] if ex else [], where, "extra filters: permit at the allow weight")
    flags = FWPM_FILTER_FLAG_BOOTTIME if boot_time else FWPM_FILTER_FLAG_PERSISTENT
    owner = (None, ZERO) if boot_time else (PROVIDER_KEY, SUBLAYER_KEY)
    ck.eq(sorted({f["flags"] for f in ex}), [flags] if ex else [], where, "extra filters: flags")
    ck.eq(sorted({(f["provider"], f["subLayerKey"]) for f in ex}), [owner] if ex else [], where, "extra filters: provider, sublayer")
    fixed = {k: v for k, v in filters.items() if not k.startswith(prefix)}
    ck.eq(_rules_of(fixed), _expected_rules(), where, "the fixed filters beside them")


# ---------------------------------------------------------------------------
def test_entries_become_boot_time_then_persistent_permits_beside_the_fixed_list(new_run):
    ck = harness.Checker("FailClosedAllow with 4 entries and a comment, DriverEntry before BFE")
    d = _run(new_run, "allow boot", multi_sz(ENTRIES), bfe_running=False)
    ck.eq(L.status_name(d.driver_entry()), L.status_name(L.STATUS_SUCCESS), "DriverEntry", "status")
    bt = d.model.boot_time_filters
    ck.eq(len(bt), FILTER_COUNT + len(EXPECTED_EXTRA), "before BFE", "boot-time filters (fixed + extra)")
    check_extras(ck, bt, EXTRA_BOOT_TIME_PREFIX, "before BFE", boot_time=True)
    d.bfe_transition(L.FWPM_SERVICE_START_PENDING)
    d.bfe_transition(L.FWPM_SERVICE_RUNNING)
    ck.eq(d.model.boot_time_filters, {}, "BFE running", "boot-time filters (dropped by BFE's start)")
    fs = d.model.bfe_store["filters"]
    ck.eq(len(fs), FILTER_COUNT + len(EXPECTED_EXTRA), "BFE running", "persistent filters (fixed + extra)")
    check_extras(ck, fs, EXTRA_PERSISTENT_PREFIX, "BFE running", boot_time=False)
    st = allow_status(d)
    ck.eq(st, {"size": 112, "fail_mode": 1, "fail_closed_set": 1, "allow_entries": 4, "allow_bad": 0, "allow_error": 0, "allow_line": 0},
          "GET_POLICY_STATUS", "allow-list in effect")
    ck.eq([str(v) for v in d.model.violations], [], "allow boot", "model violations")
    ck.done()
    d.expect_clean()


def test_weir_decides_above_the_extras_and_a_restart_keeps_them(new_run):
    ck = harness.Checker("FailClosedAllow, BFE running, then a BFE restart")
    d = _run(new_run, "allow running", multi_sz(ENTRIES)).start()
    check_extras(ck, d.model.bfe_store["filters"], EXTRA_PERSISTENT_PREFIX, "DriverEntry", boot_time=False)
    ck.eq(d.model.boot_time_filters, {}, "DriverEntry", "boot-time filters (BFE runs: none)")
    d.bfe_transition(L.FWPM_SERVICE_STOPPED)
    ck.eq(len(_extras(d.model.bfe_store["filters"], EXTRA_PERSISTENT_PREFIX)), len(EXPECTED_EXTRA), "BFE stopped", "extras survive")
    d.bfe_transition(L.FWPM_SERVICE_RUNNING)
    check_extras(ck, d.model.bfe_store["filters"], EXTRA_PERSISTENT_PREFIX, "BFE running again", boot_time=False)
    restart = [h for h in d.model.store_history if h["phase"] == "BfeStateChange"]
    ck.eq(len({h["call"] for h in restart}), 1, "BFE running again", "one commit replaces the whole set, extras included")
    # A policy makes Weir's callout filters decide above the whole set.
    ck.eq(weir_callout_filters(d.model), {}, "no policy", "Weir's callout filters (the set decides)")
    ck.eq([str(v) for v in d.model.violations], [], "allow running", "model violations")
    ck.done()
    d.expect_clean()


@pytest.mark.parametrize("value,value_type,expected", [
    (multi_sz(["out udp 10.0.0.53 53", "out tcp 10.0.0.0/33 443", "both tcp any 1", "in tcp any 5985"]), REG_MULTI_SZ,
     {"allow_entries": 0, "allow_bad": 2, "allow_error": 16 + 6, "allow_line": 2}),
    (multi_sz([f"out tcp 10.0.0.{i} 443" for i in range(65)]), REG_MULTI_SZ,
     {"allow_entries": 0, "allow_bad": 0, "allow_error": 3, "allow_line": 0}),
    (multi_sz(["out tcp any 443"])[:-1], REG_MULTI_SZ, {"allow_entries": 0, "allow_bad": 0, "allow_error": 2, "allow_line": 0}),
    ("out tcp any 443".encode("utf-16-le") + b"\0\0", REG_SZ, {"allow_entries": 0, "allow_bad": 0, "allow_error": ALLOW_UNREADABLE, "allow_line": 0}),
    (b"\x41\0" * 8000, REG_MULTI_SZ, {"allow_entries": 0, "allow_bad": 0, "allow_error": 1, "allow_line": 0}),
], ids=["bad-entries", "65-entries", "odd-length", "reg-sz", "too-large"])
def test_a_bad_value_is_traced_reported_and_only_the_fixed_list_applies(new_run, value, value_type, expected):
    ck = harness.Checker(f"FailClosedAllow refused: {expected}")
    d = _run(new_run, "allow refused", value, value_type=value_type).start()
    ck.true(_traced(d.model, "FailClosedAllow"), "DriverEntry", "the refusal is traced")
    ck.true(any("FailClosedAllow" in (m["text"] or "") and m["level"] == 0 for m in d.model.debug_messages), "DriverEntry",
            "at error level")
    check_persistent_set(ck, d.model, "refused list")
    st = allow_status(d)
    ck.eq({k: st[k] for k in expected}, expected, "GET_POLICY_STATUS", "why the list was refused")
    ck.eq((st["fail_mode"], st["fail_closed_set"]), (1, 1), "GET_POLICY_STATUS", "still closed, set installed")
    ck.eq([str(v) for v in d.model.violations], [], "allow refused", "model violations")
    ck.done()
    d.expect_clean()


def test_a_shorter_list_replaces_a_longer_one_and_an_open_start_removes_everything(new_run):
    ck = harness.Checker("FailClosedAllow shrinks, then FailMode = 0 (the uninstall sequence)")
    d = _run(new_run, "allow long", multi_sz(ENTRIES)).start()
    d.expect_no_fault(d.unload())
    ck.eq(len(_extras(d.model.bfe_store["filters"], EXTRA_PERSISTENT_PREFIX)), len(EXPECTED_EXTRA), "after sc stop", "extras stay")
    short = _run(new_run, "allow short", multi_sz(["out udp 10.0.0.53 53"]), model=d.model).start()
    check_extras(ck, d.model.bfe_store["filters"], EXTRA_PERSISTENT_PREFIX, "shorter list", boot_time=False, expected=EXPECTED_EXTRA[:1])
    short.expect_no_fault(short.unload())
    # The uninstall script's start: FailMode = 0, the value still set.
    u = _run(new_run, "uninstall start", multi_sz(ENTRIES), model=d.model, fail_mode=0)
    for r in (d, short, u):
        r.expected_leaks = []
    ck.eq(L.status_name(u.driver_entry()), L.status_name(L.STATUS_SUCCESS), "uninstall start", "status")
    ck.eq({k: sorted(v) for k, v in d.model.bfe_store.items()}, {"providers": [], "sublayers": [], "callouts": [], "filters": []},
          "uninstall start", "persistent objects left")
    st = allow_status(u)
    ck.eq((st["fail_mode"], st["allow_entries"]), (0, 0), "GET_POLICY_STATUS", "open: the list is not read")
    u.expect_no_fault(u.unload())
    ck.eq(d.model.leaks(), [], "after uninstall", "anything left in the engine or the pool")
    ck.eq([str(v) for v in d.model.violations], [], "allow uninstall", "model violations")
    ck.done()


# ---------------------------------------------------------------------------
# Fault injection on the allow-list path: the registry read (its open, query, buffer) and the extra
# filters' deletes and adds, read from a clean run with the value set.
def _allow_points() -> list[tuple[str, int, str]]:
    pts = []
    for bfe_running in (False, True):
        when = "BFE running" if bfe_running else "before BFE"
        run = harness.DriverRun(label="clean-allow")
        run.model.parameters = {"TraceLevel": (L.REG_DWORD, 2), "FailMode": (L.REG_DWORD, 1), VALUE_NAME: (REG_MULTI_SZ, multi_sz(ENTRIES))}
        if not bfe_running:
            run.model.bfe_state = L.FWPM_SERVICE_STOPPED
        run.driver_entry()
        calls = run.model.effective_calls("DriverEntry")
        query = [i for i, c in enumerate(calls) if c.api == "ZwQueryValueKey" and (c.args or {}).get("ValueName") == VALUE_NAME]
        # Exactly one read of the value (an image that never reads it gets no read points, and the
        # coverage test below fails instead of the collection).
        for q in query if len(query) == 1 else []:
            # The read: the two key opens before the query, the query, and the buffer allocated between them.
            open_at = [i for i, c in enumerate(calls[:q]) if c.api == "ZwOpenKey"][-2:]
            allocs = [c for c in calls[open_at[-1]:q] if c.api == "ExAllocatePool2"] if open_at else []
            for c in [calls[i] for i in open_at] + allocs + [calls[q]]:
                pts.append((c.api, c.occurrence, when))
        # The extras: the last add (an extra filter) and the first extra delete of that transaction.
        adds = [c for c in calls if c.api == "FwpmFilterAdd0" and (c.args.get("filter") or {}).get("filterKey", "").startswith(
            (EXTRA_PERSISTENT_PREFIX, EXTRA_BOOT_TIME_PREFIX))]
        dels = [c for c in calls if c.api == "FwpmFilterDeleteByKey0"
                and any(p in str(c.args) for p in (EXTRA_PERSISTENT_PREFIX, EXTRA_BOOT_TIME_PREFIX))]
        if adds:
            pts.append(("FwpmFilterAdd0", adds[-1].occurrence, when))
        if dels:
            pts.append(("FwpmFilterDeleteByKey0", dels[-1].occurrence, when))
    return pts


ALLOW_POINTS = _allow_points()


def test_the_allow_fault_list_covers_the_read_and_the_extras():
    apis = {(a, w) for a, _o, w in ALLOW_POINTS}
    for when in ("before BFE", "BFE running"):
        assert {("ZwOpenKey", when), ("ZwQueryValueKey", when), ("ExAllocatePool2", when), ("FwpmFilterAdd0", when),
                ("FwpmFilterDeleteByKey0", when)} <= apis, sorted(apis)


@pytest.mark.parametrize("api,occurrence,when", ALLOW_POINTS, ids=[f"{w}-{a}#{o}" for a, o, w in ALLOW_POINTS])
def test_a_failed_allow_list_step_is_traced_and_leaves_a_whole_set(new_run, api, occurrence, when):
    ck = harness.Checker(f"FailClosedAllow ({when}) with {api}#{occurrence} failing")
    d = _run(new_run, "allow fault", multi_sz(ENTRIES), bfe_running=(when == "BFE running"))
    # A key that cannot be opened for a reason other than "absent" (absent is the default setting).
    value = L.STATUS_INSUFFICIENT_RESOURCES if api == "ZwOpenKey" else None
    d.model.fail("DriverEntry", api, occurrence, value=value)
    ck.eq(L.status_name(d.driver_entry()), L.status_name(L.STATUS_SUCCESS), "DriverEntry", "status (never fatal)")
    ck.eq(len([c for c in d.model.calls if c.injected]), 1, "DriverEntry", "injected calls")
    ck.true(any(m["level"] == 0 for m in d.model.debug_messages if m["phase"] == "DriverEntry"), "DriverEntry", "an error trace")
    ck.eq([s for s in d.model.sessions.values() if s.txn], [], "DriverEntry", "transactions left open")
    n_boot, n_pers = len(d.model.boot_time_filters), len(d.model.bfe_store["filters"])
    whole = (0, FILTER_COUNT, FILTER_COUNT + len(EXPECTED_EXTRA))
    ck.true(n_boot in whole and n_pers in whole, "DriverEntry", f"a partial set: {n_boot} boot-time, {n_pers} persistent")
    if api in ("ZwOpenKey", "ZwQueryValueKey", "ExAllocatePool2"):
        # The read failed: the fixed list alone, and the status says the value was unreadable.
        ck.eq(max(n_boot, n_pers), FILTER_COUNT, "DriverEntry", "the fixed set alone")
        st = allow_status(d)
        ck.eq((st["allow_entries"], st["allow_error"]), (0, ALLOW_UNREADABLE), "GET_POLICY_STATUS", "value unreadable")
    ck.eq([str(v) for v in d.model.violations], [], "DriverEntry", "model violations")
    ck.done()
