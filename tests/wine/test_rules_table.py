"""The emulation suite's Python model follows tests/wine/wfp_rules.toml.

Each rule of the table has a scenario here: a short sequence of filter-engine calls made on a
fresh `KernelModel` (tests/emulation/kernel_model.py), whose last call must answer the status
the table gives. The fwpkclnt.sys stand-in of the Wine kernel stage is built from the same table
(`cargo xtask` generates its header) and runs the same scenarios through its `rules` command, so
the two engines cannot drift apart silently.

Run: python3 -m pytest tests/wine (no emulator needed: the model's handlers are called with a
fake memory that hands them already decoded structures).
"""

from __future__ import annotations

import sys
import tomllib
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "emulation"))

import kernel_model as K  # noqa: E402
import layouts as L  # noqa: E402
import store_model as S  # noqa: E402

TABLE = tomllib.loads((HERE / "wfp_rules.toml").read_text())
STATUS = TABLE["status"]
CONNECT_V4 = str(L.FWPM_LAYER_ALE_AUTH_CONNECT_V4)
CONNECT_V6 = str(L.FWPM_LAYER_ALE_AUTH_CONNECT_V6)
UNKNOWN_LAYER = str(uuid.UUID(int=0x1234))
DEVICE = 0xD0D0


class FakeMem:
    """Hands the model's decoders the structures a test registered at fake addresses."""

    def __init__(self):
        self.objects: dict[int, dict] = {}
        self.written: dict[int, int] = {}
        self._next = 0x10000

    def put(self, obj: dict) -> int:
        self._next += 0x100
        self.objects[self._next] = obj
        return self._next

    def _get(self, addr):
        return self.objects.get(addr) if addr else None

    fwpm_session0 = fwpm_sublayer0 = fwpm_callout0 = fwpm_filter0 = fwps_callout3 = _get

    def wstr(self, addr):
        return None

    def w32(self, addr, value):
        self.written[addr] = value

    w64 = w32

    def guid(self, addr):
        return uuid.UUID(self.objects[addr]["key"])

    # FWPM_PROVIDER0 is read field by field: displayData at +16, flags at +32.
    def display_data(self, addr):
        return self.objects[addr - 16]["displayData"]

    def u32(self, addr):
        return self.objects[addr - 32]["flags"]

    def byte_blob(self, addr):
        return None

    def ptr(self, addr):
        return 0


class Engine:
    """A fresh model plus the calls a scenario makes, each returning the model's status."""

    def __init__(self):
        self.model = K.KernelModel()
        self.model.devices[DEVICE] = {"live": True}
        self.mem = FakeMem()
        self.seq = 0

    def call(self, api: str, *argv) -> int:
        self.seq += 1
        c = K.Call(self.seq, "fwpkclnt.sys", api, "test", 1)
        return getattr(self.model, f"_{api}")(None, self.mem, c, None, list(argv) + [0] * (6 - len(argv)))

    def open(self, dynamic: bool = True) -> int:
        session = self.mem.put({"flags": L.FWPM_SESSION_FLAG_DYNAMIC if dynamic else 0})
        out = 0x9000 + self.seq
        assert self.call("FwpmEngineOpen0", 0, L.RPC_C_AUTHN_WINNT, 0, session, out) == L.STATUS_SUCCESS
        return self.mem.written[out]

    def register(self, key: str) -> int:
        co = self.mem.put({"calloutKey": key, "flags": 0, "classifyFn": 0x1000, "notifyFn": 0x2000, "flowDeleteFn": 0})
        return self.call("FwpsCalloutRegister3", DEVICE, co, 0)

    def sublayer(self, h: int, key: str, name: str | None = "s", *, flags: int = 0, provider: str | None = None) -> int:
        obj = {"subLayerKey": key, "displayData": {"name": name}, "flags": flags, "providerKey": self._provider_ptr(provider)}
        return self.call("FwpmSubLayerAdd0", h, self.mem.put(obj), 0)

    def _provider_ptr(self, provider: str | None) -> str:
        return hex(self.mem.put({"key": provider})) if provider else "0x0"

    def provider(self, h: int, key: str, *, flags: int = 0) -> int:
        return self.call("FwpmProviderAdd0", h, self.mem.put({"key": key, "displayData": {"name": "p"}, "flags": flags}), 0)

    def delete(self, api: str, h: int, key: str) -> int:
        return self.call(api, h, self.mem.put({"key": key}))

    def callout(self, h: int, key: str, layer: str = CONNECT_V4) -> int:
        obj = {"calloutKey": key, "displayData": {"name": "c"}, "applicableLayer": layer}
        return self.call("FwpmCalloutAdd0", h, self.mem.put(obj), 0, 0)

    def filter(self, h: int, key: str, *, layer=CONNECT_V4, sublayer=str(uuid.UUID(int=0)), callout=None, flags: int = 0,
               provider: str | None = None) -> int:
        action = {"type": L.FWP_ACTION_CALLOUT_TERMINATING if callout else L.FWP_ACTION_BLOCK, "calloutKey": callout or str(uuid.UUID(int=0))}
        obj = {"filterKey": key, "displayData": {"name": "f"}, "layerKey": layer, "subLayerKey": sublayer, "flags": flags,
               "providerKey": self._provider_ptr(provider),
               "numFilterConditions": 0, "filterCondition": "0x0", "weight": {"type": L.FWP_EMPTY}, "action": action}
        return self.call("FwpmFilterAdd0", h, self.mem.put(obj), 0, 0)

    def objects(self) -> int:
        return sum(len(v) for v in self.model.engine_objects().values())


def key(n: int) -> str:
    return str(uuid.UUID(int=0xABC0000 + n))


def add_needs_transaction(e: Engine) -> int:
    return e.sublayer(e.open(), key(1))


def one_transaction_per_session(e: Engine) -> int:
    h = e.open()
    e.call("FwpmTransactionBegin0", h, 0)
    return e.call("FwpmTransactionBegin0", h, 0)


def commit_needs_transaction(e: Engine) -> int:
    return e.call("FwpmTransactionCommit0", e.open())


def abort_rolls_back(e: Engine) -> int:
    h = e.open()
    e.call("FwpmTransactionBegin0", h, 0)
    assert e.sublayer(h, key(1)) == L.STATUS_SUCCESS
    status = e.call("FwpmTransactionAbort0", h)
    assert e.objects() == 0
    e.call("FwpmTransactionBegin0", h, 0)
    assert e.sublayer(h, key(1)) == L.STATUS_SUCCESS, "the key is free again after the rollback"
    return status


def unique_keys(e: Engine) -> int:
    h = e.open()
    e.call("FwpmTransactionBegin0", h, 0)
    e.sublayer(h, key(1))
    return e.sublayer(h, key(1))


def callout_registered_first(e: Engine) -> int:
    h = e.open()
    e.call("FwpmTransactionBegin0", h, 0)
    return e.callout(h, key(2))


def filter_callout_added_first(e: Engine) -> int:
    e.register(key(2))
    h = e.open()
    e.call("FwpmTransactionBegin0", h, 0)
    return e.filter(h, key(3), callout=key(2))


def filter_layer_matches_callout(e: Engine) -> int:
    e.register(key(2))
    h = e.open()
    e.call("FwpmTransactionBegin0", h, 0)
    assert e.callout(h, key(2), CONNECT_V4) == L.STATUS_SUCCESS
    return e.filter(h, key(3), layer=CONNECT_V6, callout=key(2))


def filter_sublayer_exists(e: Engine) -> int:
    h = e.open()
    e.call("FwpmTransactionBegin0", h, 0)
    return e.filter(h, key(3), sublayer=key(9))


def known_layer(e: Engine) -> int:
    e.register(key(2))
    h = e.open()
    e.call("FwpmTransactionBegin0", h, 0)
    return e.callout(h, key(2), UNKNOWN_LAYER)


def display_name_required(e: Engine) -> int:
    h = e.open()
    e.call("FwpmTransactionBegin0", h, 0)
    return e.sublayer(h, key(1), name=None)


def open_needs_running_bfe(e: Engine) -> int:
    e.model.bfe_set_state(L.FWPM_SERVICE_STOPPED)
    return e.call("FwpmEngineOpen0", 0, L.RPC_C_AUTHN_WINNT, 0, e.mem.put({"flags": L.FWPM_SESSION_FLAG_DYNAMIC}), 0x9999)


def stopped_bfe_breaks_sessions(e: Engine) -> int:
    h = e.open()
    e.model.bfe_set_state(L.FWPM_SERVICE_STOPPED)
    return e.call("FwpmEngineClose0", h)


def bfe_stop_deletes_objects(e: Engine) -> int:
    h = e.open(dynamic=False)
    e.call("FwpmTransactionBegin0", h, 0)
    e.sublayer(h, key(1))
    status = e.call("FwpmTransactionCommit0", h)
    assert e.objects() == 1
    e.model.bfe_set_state(L.FWPM_SERVICE_STOPPED)
    assert e.objects() == 0
    return status


def dynamic_close_deletes(e: Engine) -> int:
    h = e.open(dynamic=True)
    e.call("FwpmTransactionBegin0", h, 0)
    e.sublayer(h, key(1))
    e.call("FwpmTransactionCommit0", h)
    assert e.objects() == 1
    status = e.call("FwpmEngineClose0", h)
    assert e.objects() == 0
    return status


def provider_exists(e: Engine) -> int:
    h = e.open(dynamic=False)
    e.call("FwpmTransactionBegin0", h, 0)
    assert e.sublayer(h, key(1), provider=key(5)) == STATUS["STATUS_FWP_PROVIDER_NOT_FOUND"]
    return e.filter(h, key(3), provider=key(5))


def persistent_needs_static_session(e: Engine) -> int:
    h = e.open(dynamic=True)
    e.call("FwpmTransactionBegin0", h, 0)
    return e.provider(h, key(5), flags=S.FWPM_PROVIDER_FLAG_PERSISTENT)


def persistent_survives_close_and_bfe_restart(e: Engine) -> int:
    h = e.open(dynamic=False)
    e.call("FwpmTransactionBegin0", h, 0)
    assert e.provider(h, key(5), flags=S.FWPM_PROVIDER_FLAG_PERSISTENT) == L.STATUS_SUCCESS
    assert e.sublayer(h, key(1), flags=S.FWPM_SUBLAYER_FLAG_PERSISTENT, provider=key(5)) == L.STATUS_SUCCESS
    assert e.call("FwpmTransactionCommit0", h) == L.STATUS_SUCCESS
    assert e.call("FwpmEngineClose0", h) == L.STATUS_SUCCESS
    e.model.bfe_set_state(L.FWPM_SERVICE_STOPPED)
    e.model.bfe_set_state(L.FWPM_SERVICE_RUNNING)
    h = e.open(dynamic=False)
    e.call("FwpmTransactionBegin0", h, 0)
    assert e.sublayer(h, key(1), provider=key(5)) == STATUS["STATUS_FWP_ALREADY_EXISTS"]
    return e.provider(h, key(5), flags=S.FWPM_PROVIDER_FLAG_PERSISTENT)


def delete_absent_filter(e: Engine) -> int:
    h = e.open()
    assert e.delete("FwpmSubLayerDeleteByKey0", h, key(1)) == STATUS["STATUS_FWP_SUBLAYER_NOT_FOUND"]
    return e.delete("FwpmFilterDeleteByKey0", h, key(3))


def delete_absent_provider(e: Engine) -> int:
    return e.delete("FwpmProviderDeleteByKey0", e.open(), key(5))


def in_use_not_deleted(e: Engine) -> int:
    h = e.open(dynamic=False)
    e.call("FwpmTransactionBegin0", h, 0)
    assert e.provider(h, key(5)) == L.STATUS_SUCCESS
    assert e.sublayer(h, key(1), provider=key(5)) == L.STATUS_SUCCESS
    assert e.filter(h, key(3), sublayer=key(1)) == L.STATUS_SUCCESS
    assert e.call("FwpmTransactionCommit0", h) == L.STATUS_SUCCESS
    assert e.delete("FwpmSubLayerDeleteByKey0", h, key(1)) == STATUS["STATUS_FWP_IN_USE"]
    status = e.delete("FwpmProviderDeleteByKey0", h, key(5))
    # Emptied in order, each goes.
    assert e.delete("FwpmFilterDeleteByKey0", h, key(3)) == L.STATUS_SUCCESS
    assert e.delete("FwpmSubLayerDeleteByKey0", h, key(1)) == L.STATUS_SUCCESS
    assert e.delete("FwpmProviderDeleteByKey0", h, key(5)) == L.STATUS_SUCCESS
    return status


def boot_time_dropped_at_bfe_start(e: Engine) -> int:
    h = e.open(dynamic=False)
    e.call("FwpmTransactionBegin0", h, 0)
    assert e.filter(h, key(3), flags=S.FWPM_FILTER_FLAG_BOOTTIME) == L.STATUS_SUCCESS
    assert e.call("FwpmTransactionCommit0", h) == L.STATUS_SUCCESS
    e.model.bfe_set_state(L.FWPM_SERVICE_STOPPED)
    assert e.objects() == 1, "a boot-time filter outlives the BFE stop"
    e.model.bfe_set_state(L.FWPM_SERVICE_RUNNING)
    assert e.objects() == 0
    return e.delete("FwpmFilterDeleteByKey0", e.open(), key(3))


SCENARIOS = {name.replace("_", "-"): fn for name, fn in dict(globals()).items() if callable(fn) and fn.__module__ == __name__
             and name not in ("key",) and not name[0].isupper()}
# Classification is not part of the Python model (the emulation harness calls classifyFn
# itself); the stand-in checks this rule alone.
STAND_IN_ONLY = {"permit-if-callout-unregistered"}


def test_every_rule_has_a_scenario():
    ids = {r["id"] for r in TABLE["rule"]}
    assert ids - STAND_IN_ONLY == set(SCENARIOS), "a rule of wfp_rules.toml without a scenario here (or the reverse)"


@pytest.mark.parametrize("rule", [r for r in TABLE["rule"] if r["id"] not in STAND_IN_ONLY], ids=lambda r: r["id"])
def test_python_model_follows_the_table(rule):
    status = SCENARIOS[rule["id"]](Engine())
    assert status == STATUS[rule["status"]], f"{rule['id']}: model answered {L.status_name(status)}, table says {rule['status']}"


def test_table_statuses_match_the_models_constants():
    for name, value in STATUS.items():
        assert (getattr(L, name) if hasattr(L, name) else getattr(S, name)) == value, name


def test_table_layers_match_the_models_layouts():
    for layer in TABLE["layer"]:
        known = L.LAYER_BY_KEY[uuid.UUID(layer["key"])]
        assert (known.name, known.layer_id, known.ipv6) == (layer["name"], layer["id"], layer["ipv6"])
        assert (layer["local_address"], layer["local_port"], layer["protocol"], layer["remote_address"], layer["remote_port"]) == (
            L.FIELD_LOCAL_ADDRESS, L.FIELD_LOCAL_PORT, L.FIELD_PROTOCOL, L.FIELD_REMOTE_ADDRESS, L.FIELD_REMOTE_PORT)
