"""What the filter engine keeps beyond a session: providers, persistent objects and
boot-time filters (the fail-closed set, src/failsafe.rs).

The model's rules, from the FWPM_FILTER0 / FWPM_PROVIDER0 / FWPM_SUBLAYER0 reference
pages and WFP's "Object Management" description:

* an object with its PERSISTENT flag is kept by BFE: it survives the session that added
  it, a BFE stop/start and the driver's unload; only a delete removes it. Persistent
  objects cannot be added through a dynamic session (STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS),
  and they may only name persistent objects (their provider and sublayer);
* a filter with FWPM_FILTER_FLAG_BOOTTIME is enforced from when it is added until BFE
  starts; BFE then drops it. PERSISTENT and BOOTTIME together are invalid;
* while BFE is not running, a kernel-mode caller can open a (non-dynamic) session whose
  only use is boot-time filters: no provider and the default sublayer, since neither a
  provider nor a sublayer exists without BFE. This is the model's reading of the
  documentation; only a real boot shows what Windows accepts in that window;
* a provider or sublayer named by an existing object cannot be deleted (STATUS_FWP_IN_USE);
  deleting an absent object by key answers *_NOT_FOUND (no violation: "make sure it is
  gone" is a legitimate use).

`KernelModel.bfe_store` holds the persistent objects by kind, `boot_time_filters` the
boot-time ones; `store_history` records every change with its phase, so tests can say
in which window a filter was added, replaced or removed.
"""

from __future__ import annotations

import uuid

import layouts as L

FWPM_FILTER_FLAG_PERSISTENT = 0x1
FWPM_FILTER_FLAG_BOOTTIME = 0x2
FWPM_PROVIDER_FLAG_PERSISTENT = 0x1
FWPM_SUBLAYER_FLAG_PERSISTENT = 0x1
STATUS_FWP_FILTER_NOT_FOUND = 0xC0220003
STATUS_FWP_PROVIDER_NOT_FOUND = 0xC0220005
STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS = 0xC022000B

KINDS = ("providers", "sublayers", "callouts", "filters")
NOT_FOUND = {"providers": STATUS_FWP_PROVIDER_NOT_FOUND, "sublayers": L.STATUS_FWP_SUBLAYER_NOT_FOUND,
             "filters": STATUS_FWP_FILTER_NOT_FOUND, "callouts": L.STATUS_FWP_CALLOUT_NOT_FOUND}

STORE_ARGC = {"FwpmProviderAdd0": 3, "FwpmProviderDeleteByKey0": 2, "FwpmFilterDeleteByKey0": 2}
STORE_IRQL_RULES = {
    "FwpmProviderAdd0": (0, "fwpmk/nf-fwpmk-fwpmprovideradd0"),
    "FwpmProviderDeleteByKey0": (0, "fwpmk/nf-fwpmk-fwpmproviderdeletebykey0"),
    "FwpmFilterDeleteByKey0": (0, "fwpmk/nf-fwpmk-fwpmfilterdeletebykey0"),
}
# Fault injection: every fail-closed step is traced, never fatal (DriverEntry succeeds).
STORE_FAILURE_MODES = {
    "FwpmProviderAdd0": (L.STATUS_FWP_ALREADY_EXISTS, L.STATUS_SUCCESS),
    "FwpmProviderDeleteByKey0": (L.STATUS_FWP_TIMEOUT, L.STATUS_SUCCESS),
    "FwpmFilterDeleteByKey0": (L.STATUS_FWP_IN_USE, L.STATUS_SUCCESS),
    "FwpmSubLayerDeleteByKey0": (L.STATUS_FWP_IN_USE, L.STATUS_SUCCESS),
}


def empty_pools() -> dict:
    return {k: {} for k in KINDS}


def is_persistent(obj: dict) -> bool:
    return bool(obj.get("flags", 0) & FWPM_FILTER_FLAG_PERSISTENT)


def is_boot_time(obj: dict) -> bool:
    return bool(obj.get("flags", 0) & FWPM_FILTER_FLAG_BOOTTIME)


def decode_conditions(mem, addr: int, count: int) -> list[dict]:
    """FWPM_FILTER_CONDITION0[count]: fieldKey GUID, matchType u32 @16, FWP_CONDITION_VALUE0 @24
    (type u32, union @32); 40 bytes each. Scalars inline; addresses with masks and ranges through
    their pointer (allow_model.decode_pointer_value)."""
    from allow_model import POINTER_TYPES, decode_pointer_value
    out = []
    for i in range(min(count, 16)):
        a = addr + 40 * i
        ty = mem.u32(a + 24)
        raw = mem.u64(a + 32)
        if ty in POINTER_TYPES:
            value = decode_pointer_value(mem, ty, raw)
        else:
            value = {L.FWP_UINT8: raw & 0xFF, L.FWP_UINT16: raw & 0xFFFF, L.FWP_UINT32: raw & 0xFFFFFFFF}.get(ty, hex(raw))
        out.append({"field": str(mem.guid(a)), "match": mem.u32(a + 16), "type": ty, "value": value})
    return out


class StoreModelMixin:
    def _store_init(self) -> None:
        self.bfe_store: dict = empty_pools()
        self.boot_time_filters: dict = {}
        self.store_history: list[dict] = []

    def _store_record(self, action: str, kind: str, key: str, obj: dict, call_label: str) -> None:
        self.store_history.append({"action": action, "kind": kind, "key": key, "phase": self.phase,
                                   "flags": obj.get("flags", 0), "call": call_label})

    def store_pools(self, kind: str) -> list[dict]:
        pools = [self.bfe_store[kind]]
        if kind == "filters":
            pools.append(self.boot_time_filters)
        return pools

    def store_objects(self) -> dict:
        out = {k: dict(v) for k, v in self.bfe_store.items()}
        out["filters"].update(self.boot_time_filters)
        return out

    def _route_commit(self, s, call) -> None:
        """Commit: persistent objects go to BFE's store, boot-time filters to their own
        table, the rest stay with the session."""
        for kind in KINDS:
            for k, v in s.staged[kind].items():
                if kind == "filters" and is_boot_time(v):
                    self.boot_time_filters[k] = v
                    self._store_record("add", kind, k, v, call.label)
                elif is_persistent(v):
                    self.bfe_store[kind][k] = v
                    self._store_record("add", kind, k, v, call.label)
                else:
                    s.objects[kind][k] = v
        for pool, kind, k, v in s.deleted:
            if pool is self.boot_time_filters or any(pool is p for p in self.bfe_store.values()):
                self._store_record("delete", kind, k, v, call.label)

    def _store_bfe_started(self) -> None:
        for k, v in self.boot_time_filters.items():
            self._store_record("dropped by BFE start", "filters", k, v, "BFE start")
        self.boot_time_filters = {}

    def _resolve_provider(self, mem, obj: dict) -> None:
        ptr = int(obj.get("providerKey", "0x0"), 16)
        obj["provider"] = str(mem.guid(ptr)) if ptr else None

    def _store_rules(self, call, s, kind: str, obj: dict) -> int | None:
        """The persistence rules for an add; a failure status (after a violation) or None."""
        flags = obj.get("flags", 0)
        persistent = is_persistent(obj)
        boot = kind == "filters" and is_boot_time(obj)
        if persistent and boot:
            self.violation(call, f"{kind[:-1]}->flags", "PERSISTENT and BOOTTIME together")
            return L.STATUS_FWP_INVALID_FLAGS
        if s.boot:
            if not boot:
                self.violation(call, "engineHandle", f"BFE is not running: only boot-time filters can be added, not this {kind[:-1]} (flags {flags:#x})")
                return L.RPC_NT_SERVER_UNAVAILABLE
            if obj.get("provider") or obj.get("subLayerKey") != str(uuid.UUID(int=0)):
                self.violation(call, "filter", "a boot-time filter added before BFE runs can name no provider and no sublayer")
                return L.STATUS_FWP_INVALID_PARAMETER
        if persistent and s.dynamic:
            self.violation(call, f"{kind[:-1]}->flags", "persistent object through a dynamic session")
            return STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS
        prov = obj.get("provider")
        if prov is not None:
            p = self._visible(s, "providers").get(prov)
            if p is None:
                self.violation(call, f"{kind[:-1]}->providerKey", f"{prov} is not an added provider")
                return STATUS_FWP_PROVIDER_NOT_FOUND
            if persistent and not is_persistent(p):
                self.violation(call, f"{kind[:-1]}->providerKey", "a persistent object names a non-persistent provider")
                return L.STATUS_FWP_INVALID_PARAMETER
        if persistent and kind == "filters":
            sub = self._visible(s, "sublayers").get(obj["subLayerKey"])
            if sub is not None and not is_persistent(sub):
                self.violation(call, "filter->subLayerKey", "a persistent filter in a non-persistent sublayer")
                return L.STATUS_FWP_INVALID_PARAMETER
        return None

    def _in_use(self, kind: str, key: str) -> bool:
        objs = self.engine_objects()
        if kind == "sublayers":
            return any(f.get("subLayerKey") == key for f in objs["filters"].values())
        if kind == "providers":
            return any(o.get("provider") == key for k2 in ("sublayers", "filters", "callouts") for o in objs[k2].values())
        return False

    # ------------------------------------------------------------ handlers
    def _decode_FwpmProviderAdd0(self, mem, argv):
        a = argv[1]
        prov = None
        if a:
            prov = {"providerKey": str(mem.guid(a)), "displayData": mem.display_data(a + 16), "flags": mem.u32(a + 32),
                    "providerData": mem.byte_blob(a + 40), "serviceName": mem.wstr(mem.ptr(a + 56))}
        return {"engineHandle": hex(argv[0]), "provider": prov, "sd": hex(argv[2])}

    def _FwpmProviderAdd0(self, emu, mem, call, orig, argv):
        call.args = self._decode_FwpmProviderAdd0(mem, argv)
        s, p, failed = self._add_prologue(call, argv[0], argv[1], "provider")
        if failed is not None:
            return failed
        failed = self._store_rules(call, s, "providers", p)
        if failed is not None:
            return failed
        key = p["providerKey"]
        if key in self._all_objects("providers"):
            self.violation(call, "provider->providerKey", f"{key} already exists")
            return L.STATUS_FWP_ALREADY_EXISTS
        s.staged["providers"][key] = {**p, "call": call.label}
        return L.STATUS_SUCCESS

    def _delete_by_key(self, call, argv, mem, kind):
        h, kp = argv[0], argv[1]
        key = str(mem.guid(kp)) if kp else None
        call.args = {"engineHandle": hex(h), "key": key}
        if kind in ("sublayers", "providers") and key in self._all_objects(kind) and self._in_use(kind, key):
            call.notes.append(f"{kind[:-1]} {key} is in use")
            return L.STATUS_FWP_IN_USE
        return self._delete_by(call, h, kind, lambda k, v: k == key, "key", missing_ok=True)

    def _FwpmProviderDeleteByKey0(self, emu, mem, call, orig, argv):
        return self._delete_by_key(call, argv, mem, "providers")

    def _FwpmFilterDeleteByKey0(self, emu, mem, call, orig, argv):
        return self._delete_by_key(call, argv, mem, "filters")
