"""FailMode = 1 (fail closed) on the real image: the boot-time and persistent filters are added,
replaced and removed in the right windows, and nothing is left after an uninstall.

The windows (docs/deployment.md, "Failure mode"): before BFE (boot-time filters from DriverEntry),
BFE running (persistent set installed, Weir's callout filters above it), BFE restart (the
persistent set stays, Weir's dynamic filters go and come back), `sc stop` (the persistent set
stays), uninstall (FailMode = 0 and one more start remove it). The model (store_model.py)
checks flags, provider, sublayer and persistence; these tests check the driver's objects.
"""

from __future__ import annotations

import uuid

import pytest

import harness
import layouts as L
import test_policy as tp
from store_model import FWPM_FILTER_FLAG_BOOTTIME, FWPM_FILTER_FLAG_PERSISTENT
from test_stored_policy import _traced, policy_status, stored_form
from files_model import STORED_POLICY_PATH
from kernel_model import INFALLIBLE_APIS

# src/failsafe.rs
PROVIDER_KEY = str(uuid.UUID("5c1f7a2e-93d4-4b6e-a0c8-2f4e8d1b7a63"))
SUBLAYER_KEY = str(uuid.UUID("8e2b4c71-0d5a-4f39-b6e2-7a91c3d4e5f6"))
FILTER_COUNT = 14
CALLOUT_WEIGHT = 15
ZERO = str(uuid.UUID(int=0))
FWPM_CONDITION_FLAGS = str(uuid.UUID("632ce23b-5167-435c-86d7-e903684aa80c"))
FWPM_CONDITION_IP_PROTOCOL = str(uuid.UUID("3971ef2b-623e-4f9a-8cb1-6e79b806b9a7"))
FWPM_CONDITION_IP_REMOTE_PORT = str(uuid.UUID("c35a604d-d22b-4e1a-91b4-68f674ee674b"))
FWPM_CONDITION_IP_LOCAL_PORT = str(uuid.UUID("0c1ba1af-5765-453f-af22-a8f791ac775b"))
FWP_MATCH_EQUAL, FWP_MATCH_FLAGS_ALL_SET = 0, 6
LAYER_KEYS = {str(layer.key): layer.name for layer in L.LAYERS}
# What a closed run leaves on purpose: the persistent set, and boot-time filters while BFE never started
# (the after-test checks accept these).
PERSISTENT_LEFT = [PROVIDER_KEY, SUBLAYER_KEY, "3a6d0c52-7e14-4c8b-9f20-5b7e1d", "3a6d0c52-7e14-4c8b-9f20-5b7e1e"]


@pytest.fixture(scope="module")
def vectors() -> dict:
    return tp._load_vectors()


def _closed(new_run, label, *, policy: bytes | None = None, bfe_running=True, model=None, fail_mode=1):
    d = new_run(label, model)
    d.model.parameters = {"TraceLevel": (L.REG_DWORD, 2), "FailMode": (L.REG_DWORD, fail_mode)}
    if policy is not None:
        d.model.files[STORED_POLICY_PATH] = stored_form(policy)
    if not bfe_running:
        d.model.bfe_state = L.FWPM_SERVICE_STOPPED
    d.expected_leaks = list(PERSISTENT_LEFT)
    return d


def _expected_rules() -> dict:
    """(layer name) -> sorted [(action, weight, conditions)] the set must hold (src/failsafe.rs)."""
    lo = (L.FWP_ACTION_PERMIT, 14, ((FWPM_CONDITION_FLAGS, FWP_MATCH_FLAGS_ALL_SET, 1),))
    block = (L.FWP_ACTION_BLOCK, 0, ())
    dns = (L.FWP_ACTION_PERMIT, 12, ((FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, 53),))

    def dhcp(field, port):
        return (L.FWP_ACTION_PERMIT, 13, ((FWPM_CONDITION_IP_PROTOCOL, FWP_MATCH_EQUAL, 17), (field, FWP_MATCH_EQUAL, port)))
    out = {}
    for layer in L.LAYERS:
        connect = layer.name.startswith("connect")
        v6 = layer.name.endswith("v6")
        if connect:
            rules = [lo, dhcp(FWPM_CONDITION_IP_REMOTE_PORT, 547 if v6 else 67), dns, block]
        else:
            rules = [lo, dhcp(FWPM_CONDITION_IP_LOCAL_PORT, 546 if v6 else 68), block]
        out[layer.name] = sorted(rules)
    return out


def _rules_of(filters: dict) -> dict:
    out: dict = {}
    for f in filters.values():
        conds = tuple((c["field"], c["match"], c["value"]) for c in f["conditions"])
        out.setdefault(LAYER_KEYS.get(f["layerKey"], f["layerKey"]), []).append((f["action"]["type"], f["weight"]["value"], conds))
    return {k: sorted(v) for k, v in out.items()}


def check_persistent_set(ck, model, where):
    store = model.bfe_store
    prov = store["providers"].get(PROVIDER_KEY)
    ck.true(prov is not None and prov["flags"] == 1, where, f"Weir's persistent provider: {prov}")
    sub = store["sublayers"].get(SUBLAYER_KEY)
    ck.true(sub is not None and sub["flags"] == 1 and sub["provider"] == PROVIDER_KEY, where, f"persistent sublayer under the provider: {sub}")
    fs = store["filters"]
    ck.eq(len(fs), FILTER_COUNT, where, "persistent filters")
    ck.eq(sorted({f["flags"] for f in fs.values()}), [FWPM_FILTER_FLAG_PERSISTENT], where, "persistent filter flags")
    ck.eq(sorted({f["provider"] for f in fs.values()}), [PROVIDER_KEY], where, "persistent filter provider")
    ck.eq(sorted({f["subLayerKey"] for f in fs.values()}), [SUBLAYER_KEY], where, "persistent filter sublayer")
    ck.eq(_rules_of(fs), _expected_rules(), where, "rules by layer (action, weight, conditions)")


def weir_callout_filters(model) -> dict:
    return {k: f for k, f in model.engine_objects()["filters"].items() if f.get("calloutKey")}


def check_weir_above(ck, model, where):
    wf = weir_callout_filters(model)
    ck.eq(len(wf), 4, where, "Weir's callout filters")
    ck.eq(sorted({f["subLayerKey"] for f in wf.values()}), [SUBLAYER_KEY], where, "callout filters in the fail-closed sublayer")
    ck.eq(sorted({(f["weight"]["type"], f["weight"]["value"]) for f in wf.values()}), [(L.FWP_UINT8, CALLOUT_WEIGHT)], where,
          "callout filter weight (above the set)")
    ck.eq(sorted({f["flags"] & L.FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED for f in wf.values()}), [0], where,
          "no PERMIT_IF_CALLOUT_UNREGISTERED while closed")


# ---------------------------------------------------------------------------
def test_closed_with_bfe_running_installs_the_set_and_weir_decides_above_it(new_run, vectors):
    ck = harness.Checker("FailMode=1, BFE running, stored policy")
    p = tp._policy(vectors, "mixed")
    d = _closed(new_run, "closed running", policy=p["bytes"])
    ck.eq(L.status_name(d.driver_entry()), L.status_name(L.STATUS_SUCCESS), "DriverEntry", "status")
    check_persistent_set(ck, d.model, "DriverEntry")
    check_weir_above(ck, d.model, "DriverEntry")
    ck.eq(d.model.boot_time_filters, {}, "DriverEntry", "boot-time filters (BFE runs: none)")
    ck.eq([str(v) for v in d.model.violations], [], "DriverEntry", "model violations")
    for v in p["vectors"]:
        tp.check_vector(ck, d, v, prefix="closed, Weir decides: ")
    st = policy_status(d)
    ck.eq((st["fail_mode"], st["fail_closed_set"]), (1, 1), "GET_POLICY_STATUS", "fail mode closed, set installed")
    ck.done()
    d.expect_clean()


def test_closed_before_bfe_boot_time_filters_then_replaced_when_bfe_starts(new_run, vectors):
    ck = harness.Checker("FailMode=1, DriverEntry before BFE")
    p = tp._policy(vectors, "mixed")
    d = _closed(new_run, "closed boot", policy=p["bytes"], bfe_running=False)
    ck.eq(L.status_name(d.driver_entry()), L.status_name(L.STATUS_SUCCESS), "DriverEntry", "status")
    bt = d.model.boot_time_filters
    ck.eq(len(bt), FILTER_COUNT, "before BFE", "boot-time filters")
    ck.eq(sorted({f["flags"] for f in bt.values()}), [FWPM_FILTER_FLAG_BOOTTIME], "before BFE", "boot-time flags")
    ck.eq(sorted({(f["provider"], f["subLayerKey"]) for f in bt.values()}), [(None, ZERO)], "before BFE", "no provider, default sublayer")
    ck.eq(_rules_of(bt), _expected_rules(), "before BFE", "boot-time rules by layer")
    ck.eq(d.model.bfe_store["filters"], {}, "before BFE", "persistent filters (none without BFE)")
    ck.eq(weir_callout_filters(d.model), {}, "before BFE", "Weir's callout filters (none without BFE)")
    ck.eq(d.model.open_sessions(), {}, "before BFE", "sessions left open by DriverEntry")
    d.bfe_transition(L.FWPM_SERVICE_START_PENDING)
    d.bfe_transition(L.FWPM_SERVICE_RUNNING)
    ck.eq(d.model.boot_time_filters, {}, "BFE running", "boot-time filters (dropped by BFE's start)")
    dropped = [h for h in d.model.store_history if h["action"] == "dropped by BFE start"]
    ck.eq(len(dropped), FILTER_COUNT, "BFE running", "boot-time filters dropped at BFE's start")
    check_persistent_set(ck, d.model, "BFE running")
    check_weir_above(ck, d.model, "BFE running")
    ck.eq([str(v) for v in d.model.violations], [], "BFE start", "model violations")
    ck.done()
    d.expect_clean()


def test_closed_bfe_restart_keeps_the_set_and_weir_comes_back_above_it(new_run, vectors):
    ck = harness.Checker("FailMode=1, BFE restart")
    p = tp._policy(vectors, "mixed")
    d = _closed(new_run, "closed restart", policy=p["bytes"]).start()
    before = dict(d.model.bfe_store["filters"])
    d.bfe_transition(L.FWPM_SERVICE_STOP_PENDING)
    d.bfe_transition(L.FWPM_SERVICE_STOPPED)
    ck.eq(sorted(d.model.bfe_store["filters"]), sorted(before), "BFE stopped", "the persistent set survives")
    ck.eq(weir_callout_filters(d.model), {}, "BFE stopped", "Weir's dynamic filters are gone")
    d.bfe_transition(L.FWPM_SERVICE_START_PENDING)
    d.bfe_transition(L.FWPM_SERVICE_RUNNING)
    check_persistent_set(ck, d.model, "BFE running again")
    check_weir_above(ck, d.model, "BFE running again")
    # Re-installed in one transaction (delete and add together): no instant without the block.
    restart = [h for h in d.model.store_history if h["phase"] == "BfeStateChange"]
    ck.eq(len({h["call"] for h in restart}), 1, "BFE running again", f"one commit replaces the set: {sorted({h['call'] for h in restart})}")
    ck.eq([str(v) for v in d.model.violations], [], "BFE restart", "model violations")
    ck.done()
    d.expect_clean()


def test_closed_sc_stop_leaves_the_set_and_uninstall_removes_everything(new_run, vectors):
    ck = harness.Checker("FailMode=1: sc stop, then the uninstall sequence")
    p = tp._policy(vectors, "mixed")
    d = _closed(new_run, "closed stop", policy=p["bytes"]).start()
    d.expect_no_fault(d.unload())
    check_persistent_set(ck, d.model, "after sc stop")
    ck.eq(weir_callout_filters(d.model), {}, "after sc stop", "Weir's callout filters")
    left = [l for l in d.model.leaks() if not any(k in l for k in PERSISTENT_LEFT)]
    ck.eq(left, [], "after sc stop", "anything else left (pool, handles, sessions)")
    # Uninstall-Weir.ps1: FailMode = 0, start once more (removes the set), stop, delete.
    u = _closed(new_run, "uninstall start", model=d.model, fail_mode=0)
    u.expected_leaks = []
    d.expected_leaks = []
    ck.eq(L.status_name(u.driver_entry()), L.status_name(L.STATUS_SUCCESS), "uninstall start", "status")
    ck.eq({k: sorted(v) for k, v in d.model.bfe_store.items()}, {"providers": [], "sublayers": [], "callouts": [], "filters": []},
          "uninstall start", "persistent objects left")
    u.expect_no_fault(u.unload())
    ck.eq(d.model.leaks(), [], "after uninstall", "anything left in the engine or the pool")
    ck.eq([str(v) for v in d.model.violations], [], "uninstall", "model violations")
    ck.done()


def test_closed_with_a_refused_stored_policy_the_set_decides_until_a_policy_is_set(new_run, vectors):
    ck = harness.Checker("FailMode=1, corrupted stored policy")
    p = tp._policy(vectors, "mixed")
    d = _closed(new_run, "closed refused")
    bad = bytearray(stored_form(p["bytes"]))
    bad[-1] ^= 0xFF
    d.model.files[STORED_POLICY_PATH] = bytes(bad)
    ck.eq(L.status_name(d.driver_entry()), L.status_name(L.STATUS_SUCCESS), "DriverEntry", "status")
    check_persistent_set(ck, d.model, "refused policy")
    ck.eq(weir_callout_filters(d.model), {}, "refused policy", "Weir's callout filters (the block decides)")
    ck.true(_traced(d.model, "stored policy refused"), "DriverEntry", "refusal traced")
    tp.expect_set(ck, d, p["bytes"], "SET_POLICY (mixed)", 1, p["rule_count"], p["set_count"])
    check_weir_above(ck, d.model, "after SET_POLICY")
    for v in p["vectors"]:
        tp.check_vector(ck, d, v, prefix="closed, after SET_POLICY: ")
    ck.eq([str(v) for v in d.model.violations], [], "refused policy", "model violations")
    ck.done()
    d.expect_clean()


def test_open_mode_before_bfe_adds_nothing_that_blocks(new_run):
    ck = harness.Checker("FailMode=0, DriverEntry before BFE")
    d = _closed(new_run, "open boot", bfe_running=False, fail_mode=0)
    d.expected_leaks = []
    ck.eq(L.status_name(d.driver_entry()), L.status_name(L.STATUS_SUCCESS), "DriverEntry", "status")
    ck.eq(d.model.boot_time_filters, {}, "before BFE", "boot-time filters")
    d.bfe_transition(L.FWPM_SERVICE_RUNNING)
    st = policy_status(d)
    ck.eq((st["fail_mode"], st["fail_closed_set"]), (0, 0), "GET_POLICY_STATUS", "fail mode open, no set")
    ck.eq({k: v for k, v in d.model.bfe_store.items() if v}, {}, "BFE running", "persistent objects")
    ck.eq(sorted({f["subLayerKey"] for f in weir_callout_filters(d.model).values()}), ["fb491bab-9a28-4b1d-b2c9-504326e39e80"],
          "BFE running", "callout filters in Weir's own sublayer")
    ck.done()
    d.expect_clean()


# ---------------------------------------------------------------------------
# Fault injection of every call on the fail-closed paths, read from a clean closed run.
def _clean_closed_points() -> list[tuple[str, int, str]]:
    pts = []
    for bfe_running in (False, True):
        run = harness.DriverRun(label="clean-closed")
        run.model.parameters = {"TraceLevel": (L.REG_DWORD, 2), "FailMode": (L.REG_DWORD, 1)}
        if not bfe_running:
            run.model.bfe_state = L.FWPM_SERVICE_STOPPED
        run.driver_entry()
        calls = run.model.effective_calls("DriverEntry")
        # The fail-closed sessions: the static ones (not dynamic), and every call made on them.
        static = {int(c.args["assigned_handle"], 16) for c in calls if c.api == "FwpmEngineOpen0" and "assigned_handle" in c.args
                  and not (c.args["session"] or {}).get("flags", 0) & L.FWPM_SESSION_FLAG_DYNAMIC}
        for c in calls:
            h = c.args.get("engineHandle") if isinstance(c.args, dict) else None
            mine = (c.api == "FwpmEngineOpen0" and c.args.get("assigned_handle") and int(c.args["assigned_handle"], 16) in static) or \
                   (h is not None and int(h, 16) in static)
            if mine and c.api not in INFALLIBLE_APIS:
                pts.append((c.api, c.occurrence, "before BFE" if not bfe_running else "BFE running"))
    # Keep the first and last add of each kind (the middle ones fail the same way).
    out, seen = [], {}
    for api, occ, when in pts:
        seen.setdefault((api, when), []).append(occ)
    for (api, when), occs in seen.items():
        for occ in sorted({occs[0], occs[-1]}):
            out.append((api, occ, when))
    return out


CLOSED_POINTS = _clean_closed_points()


def test_the_fault_list_covers_the_new_calls():
    apis = {a for a, _o, _w in CLOSED_POINTS}
    assert {"FwpmEngineOpen0", "FwpmTransactionBegin0", "FwpmFilterDeleteByKey0", "FwpmFilterAdd0", "FwpmSubLayerDeleteByKey0",
            "FwpmProviderDeleteByKey0", "FwpmProviderAdd0", "FwpmSubLayerAdd0", "FwpmTransactionCommit0"} <= apis, sorted(apis)


@pytest.mark.parametrize("api,occurrence,when", CLOSED_POINTS, ids=[f"{w}-{a}#{o}" for a, o, w in CLOSED_POINTS])
def test_a_failed_fail_closed_step_is_traced_and_never_stops_the_driver(new_run, api, occurrence, when):
    ck = harness.Checker(f"FailMode=1 ({when}) with {api}#{occurrence} failing")
    d = _closed(new_run, "closed fault", bfe_running=(when == "BFE running"))
    d.model.fail("DriverEntry", api, occurrence)
    ck.eq(L.status_name(d.driver_entry()), L.status_name(L.STATUS_SUCCESS), "DriverEntry", "status (a fail-closed step is never fatal)")
    ck.eq(len([c for c in d.model.calls if c.injected]), 1, "DriverEntry", "injected calls")
    ck.true(any(api in (m["text"] or "") and m["level"] == 0 for m in d.model.debug_messages), "DriverEntry",
            f"no error trace naming {api}")
    ck.eq([s for s in d.model.sessions.values() if s.txn], [], "DriverEntry", "transactions left open")
    ck.eq(len(d.model.open_sessions()), 1 if when == "BFE running" else 0, "DriverEntry",
          "open sessions (Weir's dynamic one only)")
    # All or nothing: the set is whole or absent, never half.
    n_boot, n_pers = len(d.model.boot_time_filters), len(d.model.bfe_store["filters"])
    ck.true(n_boot in (0, FILTER_COUNT) and n_pers in (0, FILTER_COUNT), "DriverEntry", f"a partial set: {n_boot} boot-time, {n_pers} persistent")
    if when == "BFE running":
        # No policy here: with the set installed it decides; without it Weir's filters do (in Weir's sublayer).
        ck.eq(len(weir_callout_filters(d.model)), 0 if n_pers else 4, "DriverEntry", "Weir's callout filters")
    ck.eq([str(v) for v in d.model.violations], [], "DriverEntry", "model violations")
    ck.done()
