"""The filter engine's side of the kernel model, as a mixin of `KernelModel`.

Engine sessions (`EngineSession`) and their transactions, the management
objects (sublayers, callouts, filters) added and deleted through them, the
run-time callouts (FwpsCalloutRegister3/UnregisterById0), and the Base
Filtering Engine's state and its subscriptions (FwpmBfeState*). The rules are
listed in `kernel_model`'s module documentation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import layouts as L
from store_model import decode_conditions, empty_pools

if TYPE_CHECKING:
    from kernel_model import Call

ZERO_GUID = uuid.UUID(int=0)

@dataclass
class EngineSession:
    handle: int
    dynamic: bool
    info: dict
    open: bool = True
    generation: int = 1  # KernelModel.bfe_generation when opened
    # None, "open" or "commit_failed" (a failed commit still needs an abort).
    txn: str | None = None
    staged: dict = field(default_factory=empty_pools)
    # Committed objects added through this session.
    objects: dict = field(default_factory=empty_pools)
    # Deletions inside the open transaction: (pool, key, object), restored by an abort.
    deleted: list = field(default_factory=list)
    # Opened while BFE was not running: only boot-time filters (store_model).
    boot: bool = False


class EngineModelMixin:
    # ----------------------------------------------------------- helpers
    def _session(self, call: Call, handle: int, arg="engineHandle") -> EngineSession | None:
        s = self.sessions.get(handle)
        if s is None or not s.open:
            self.violation(call, arg, f"{handle:#x} is not an open engine handle")
            return None
        if self._dead(call, s) and call.api != "FwpmEngineClose0":
            # The server side of the session is gone with the BFE it was opened
            # on: every call fails (the model answers INVALID_HANDLE-like, no violation).
            call.notes.append("session belongs to a stopped BFE: RPC call fails")
            self._rpc_failed = True
            return None
        return s

    def _dead(self, call: Call, s: EngineSession) -> bool:
        if s.boot:
            return self.bfe_state == L.FWPM_SERVICE_RUNNING
        return s.generation != self.bfe_generation or self.bfe_state != L.FWPM_SERVICE_RUNNING

    def _all_objects(self, kind: str) -> dict:
        """Committed objects of every open session plus objects staged in open transactions."""
        out = {}
        for pool in self.store_pools(kind):
            out.update(pool)
        for s in self.sessions.values():
            out.update(s.objects[kind])
            if s.txn == "open":
                out.update(s.staged[kind])
        return out

    def _visible(self, s: EngineSession, kind: str) -> dict:
        """Objects a transaction on `s` can reference: committed ones and its own staged ones."""
        out = {}
        for pool in self.store_pools(kind):
            out.update(pool)
        for other in self.sessions.values():
            out.update(other.objects[kind])
        out.update(s.staged[kind])
        return out

    def _registered_by_key(self, key: str) -> dict | None:
        for i, c in self.callouts_rt.items():
            if c["key"] == key:
                return c
        return None

    def _need_txn(self, call: Call, s: EngineSession) -> bool:
        if s.txn != "open":
            self.violation(call, "engineHandle", f"no open transaction on session {s.handle:#x} (state {s.txn}); objects must be added inside FwpmTransactionBegin0/Commit0")
            return False
        return True

    # ================================================================ fwpkclnt
    def _decode_FwpsCalloutRegister3(self, mem, argv):
        dev, callout, idp = argv[:3]
        return {"deviceObject": hex(dev), "callout": mem.fwps_callout3(callout), "calloutId": hex(idp)}

    def _FwpsCalloutRegister3(self, emu, mem, call, orig, argv):
        dev, callout_ptr, idp = argv[:3]
        call.args = self._decode_FwpsCalloutRegister3(mem, argv)
        d = self.devices.get(dev)
        if d is None or not d["live"]:
            self.violation(call, "deviceObject", f"{dev:#x} is not a live device object created by the driver")
            return L.STATUS_INVALID_PARAMETER
        if not callout_ptr:
            self.violation(call, "callout", "null FWPS_CALLOUT3 pointer")
            return L.STATUS_FWP_NULL_POINTER
        co = call.args["callout"]
        if not co["classifyFn"]:
            self.violation(call, "callout->classifyFn", "null classifyFn")
            return L.STATUS_FWP_NULL_POINTER
        if not co["notifyFn"]:
            self.violation(call, "callout->notifyFn", "null notifyFn")
            return L.STATUS_FWP_NULL_POINTER
        if self._registered_by_key(co["calloutKey"]):
            self.violation(call, "callout->calloutKey", f"{co['calloutKey']} is already registered")
            return L.STATUS_FWP_ALREADY_EXISTS
        cid = self._next_callout_id
        self._next_callout_id += 1
        self.callouts_rt[cid] = {
            "id": cid, "key": co["calloutKey"], "classifyFn": co["classifyFn"], "notifyFn": co["notifyFn"],
            "flowDeleteFn": co["flowDeleteFn"], "flags": co["flags"], "device": dev, "call": call.label,
        }
        if idp:
            mem.w32(idp, cid)
        call.args["assigned_calloutId"] = cid
        return L.STATUS_SUCCESS

    def _decode_FwpsCalloutUnregisterById0(self, mem, argv):
        return {"calloutId": argv[0] & 0xFFFFFFFF}

    def _FwpsCalloutUnregisterById0(self, emu, mem, call, orig, argv):
        cid = argv[0] & 0xFFFFFFFF
        call.args = {"calloutId": cid}
        c = self.callouts_rt.get(cid)
        if c is not None:
            referencing = [
                k for k, f in self.engine_objects()["filters"].items() if f.get("calloutKey") == c["key"]
            ]
            call.args["filters_referencing_callout"] = referencing
        script = self.unregister_script.get(cid)
        if script:
            status = script.pop(0)
            call.notes.append(f"scripted status {L.status_name(status)}")
            if status == L.STATUS_FWP_CALLOUT_NOT_FOUND and c is not None:
                # Scripted "already gone": the registration disappears.
                self.unregistered.append({**c, "by": call.label})
                del self.callouts_rt[cid]
            return status
        if c is None:
            self.violation(call, "calloutId", f"{cid} is not a registered callout id")
            return L.STATUS_FWP_CALLOUT_NOT_FOUND
        self.unregistered.append({**c, "by": call.label})
        del self.callouts_rt[cid]
        return L.STATUS_SUCCESS

    def _decode_FwpmEngineOpen0(self, mem, argv):
        server, authn, ident, sess, hp = argv[:5]
        return {
            "serverName": mem.wstr(server) if server else None,
            "authnService": authn & 0xFFFFFFFF,
            "authIdentity": hex(ident),
            "session": mem.fwpm_session0(sess),
            "engineHandle": hex(hp),
        }

    def _FwpmEngineOpen0(self, emu, mem, call, orig, argv):
        server, authn, ident, sess, hp = argv[:5]
        call.args = self._decode_FwpmEngineOpen0(mem, argv)
        if server:
            self.violation(call, "serverName", "must be NULL in kernel mode")
            return L.STATUS_INVALID_PARAMETER
        if call.args["authnService"] not in (L.RPC_C_AUTHN_WINNT, L.RPC_C_AUTHN_DEFAULT):
            self.violation(call, "authnService", f"{call.args['authnService']} is not RPC_C_AUTHN_WINNT or RPC_C_AUTHN_DEFAULT")
            return L.STATUS_INVALID_PARAMETER
        if not hp:
            self.violation(call, "engineHandle", "null out pointer")
            return L.STATUS_FWP_NULL_POINTER
        info = call.args["session"] or {}
        dynamic = bool(info.get("flags", 0) & L.FWPM_SESSION_FLAG_DYNAMIC)
        boot = self.bfe_state != L.FWPM_SERVICE_RUNNING
        if boot and dynamic:
            call.notes.append(f"BFE not running (state {self.bfe_state})")
            return L.RPC_NT_SERVER_UNAVAILABLE
        h = self._next_handle
        self._next_handle += 0x10
        self.sessions[h] = EngineSession(h, dynamic, info)
        self.sessions[h].generation = self.bfe_generation
        self.sessions[h].boot = boot
        mem.w64(hp, h)
        call.args["assigned_handle"] = hex(h)
        return L.STATUS_SUCCESS

    def _decode_FwpmEngineClose0(self, mem, argv):
        return {"engineHandle": hex(argv[0])}

    def _FwpmEngineClose0(self, emu, mem, call, orig, argv):
        h = argv[0]
        call.args = {"engineHandle": hex(h)}
        s = self._session(call, h)
        if s is None:
            return L.STATUS_INVALID_HANDLE
        if self._dead(call, s):
            # The client handle is released; the call reports the broken RPC.
            s.open = False
            s.txn = None
            return L.RPC_NT_CALL_FAILED
        if s.txn:
            self.violation(call, "engineHandle", f"session closed while its transaction is {s.txn} (abort or commit first)")
            s.txn = None
        s.open = False
        if s.dynamic:
            removed = {k: sorted(v) for k, v in s.objects.items() if v}
            call.args["dynamic_objects_deleted"] = removed
            s.objects = empty_pools()
        return L.STATUS_SUCCESS

    def _decode_FwpmTransactionBegin0(self, mem, argv):
        return {"engineHandle": hex(argv[0]), "flags": argv[1] & 0xFFFFFFFF}

    def _FwpmTransactionBegin0(self, emu, mem, call, orig, argv):
        h, flags = argv[0], argv[1] & 0xFFFFFFFF
        call.args = self._decode_FwpmTransactionBegin0(mem, argv)
        s = self._session(call, h)
        if s is None:
            return L.STATUS_INVALID_HANDLE
        if s.txn:
            self.violation(call, "engineHandle", f"transaction already {s.txn} on this session")
            return L.STATUS_FWP_TXN_IN_PROGRESS
        if flags & ~0x1:
            self.violation(call, "flags", f"{flags:#x} has bits other than FWPM_TXN_READ_ONLY")
            return L.STATUS_FWP_INVALID_FLAGS
        s.txn = "open"
        s.staged = empty_pools()
        return L.STATUS_SUCCESS

    def _decode_FwpmTransactionCommit0(self, mem, argv):
        return {"engineHandle": hex(argv[0])}

    def _FwpmTransactionCommit0(self, emu, mem, call, orig, argv):
        h = argv[0]
        call.args = {"engineHandle": hex(h)}
        s = self._session(call, h)
        if s is None:
            return L.STATUS_INVALID_HANDLE
        if s.txn != "open":
            self.violation(call, "engineHandle", f"no open transaction (state {s.txn})")
            return L.STATUS_FWP_NO_TXN_IN_PROGRESS
        self._route_commit(s, call)
        call.args["committed"] = {k: sorted(v) for k, v in s.staged.items()}
        deleted = [v for (_pool, kind, _k, v) in s.deleted if kind == "filters"]
        if deleted or s.staged["filters"]:
            self.filter_changes.append({"session": h, "deleted": deleted, "added": list(s.staged["filters"].values()),
                                        "call": call.label, "phase": call.phase})
        s.deleted = []
        s.staged = empty_pools()
        s.txn = None
        return L.STATUS_SUCCESS

    def _decode_FwpmTransactionAbort0(self, mem, argv):
        return {"engineHandle": hex(argv[0])}

    def _FwpmTransactionAbort0(self, emu, mem, call, orig, argv):
        h = argv[0]
        call.args = {"engineHandle": hex(h)}
        s = self._session(call, h)
        if s is None:
            return L.STATUS_INVALID_HANDLE
        if not s.txn:
            self.violation(call, "engineHandle", "no transaction to abort")
            return L.STATUS_FWP_NO_TXN_IN_PROGRESS
        call.args["discarded"] = {k: sorted(v) for k, v in s.staged.items()}
        call.args["state_before"] = s.txn
        for pool, _kind, k, v in s.deleted:
            pool[k] = v
        s.deleted = []
        s.staged = empty_pools()
        s.txn = None
        return L.STATUS_SUCCESS

    def _add_prologue(self, call, handle, ptr, arg, layer_field=None):
        """The checks every Fwpm*Add0 makes first: a live session with an open
        transaction, a non-null object with a display name and, where it has
        one, a layer the model knows. Returns (session, object, None) or
        (None, None, failure status)."""
        s = self._session(call, handle)
        if s is None:
            return None, None, L.STATUS_INVALID_HANDLE
        if not self._need_txn(call, s):
            return None, None, L.STATUS_FWP_NO_TXN_IN_PROGRESS
        if not ptr:
            self.violation(call, arg, "null pointer")
            return None, None, L.STATUS_FWP_NULL_POINTER
        obj = call.args[arg]
        if obj["displayData"]["name"] is None:
            self.violation(call, f"{arg}->displayData.name", "null display name")
            return None, None, L.STATUS_FWP_NULL_DISPLAY_NAME
        if layer_field is not None and uuid.UUID(obj[layer_field]) not in L.KNOWN_LAYER_KEYS:
            self.violation(call, f"{arg}->{layer_field}", f"{obj[layer_field]} is not a layer the model knows")
            return None, None, L.STATUS_FWP_LAYER_NOT_FOUND
        return s, obj, None

    def _decode_FwpmSubLayerAdd0(self, mem, argv):
        return {"engineHandle": hex(argv[0]), "subLayer": mem.fwpm_sublayer0(argv[1]), "sd": hex(argv[2])}

    def _FwpmSubLayerAdd0(self, emu, mem, call, orig, argv):
        h, ptr = argv[0], argv[1]
        call.args = self._decode_FwpmSubLayerAdd0(mem, argv)
        s, sl, failed = self._add_prologue(call, h, ptr, "subLayer")
        if failed is not None:
            return failed
        self._resolve_provider(mem, sl)
        failed = self._store_rules(call, s, "sublayers", sl)
        if failed is not None:
            return failed
        key = sl["subLayerKey"]
        if key in self._all_objects("sublayers"):
            self.violation(call, "subLayer->subLayerKey", f"{key} already exists")
            return L.STATUS_FWP_ALREADY_EXISTS
        s.staged["sublayers"][key] = {**sl, "call": call.label}
        return L.STATUS_SUCCESS

    def _decode_FwpmCalloutAdd0(self, mem, argv):
        return {"engineHandle": hex(argv[0]), "callout": mem.fwpm_callout0(argv[1]), "sd": hex(argv[2]), "id": hex(argv[3])}

    def _FwpmCalloutAdd0(self, emu, mem, call, orig, argv):
        h, ptr, _sd, idp = argv[:4]
        call.args = self._decode_FwpmCalloutAdd0(mem, argv)
        s, co, failed = self._add_prologue(call, h, ptr, "callout", "applicableLayer")
        if failed is not None:
            return failed
        key = co["calloutKey"]
        if key in self._all_objects("callouts"):
            self.violation(call, "callout->calloutKey", f"{key} already exists")
            return L.STATUS_FWP_ALREADY_EXISTS
        rt = self._registered_by_key(key)
        if rt is None:
            self.violation(call, "callout->calloutKey", f"{key} was not registered with FwpsCalloutRegister3")
            return L.STATUS_FWP_CALLOUT_NOT_FOUND
        s.staged["callouts"][key] = {**co, "runtime_id": rt["id"], "call": call.label}
        if idp:
            mem.w32(idp, rt["id"])
        call.args["assigned_calloutId"] = rt["id"]
        return L.STATUS_SUCCESS

    def _decode_FwpmFilterAdd0(self, mem, argv):
        return {"engineHandle": hex(argv[0]), "filter": mem.fwpm_filter0(argv[1]), "sd": hex(argv[2]), "id": hex(argv[3])}

    def _FwpmFilterAdd0(self, emu, mem, call, orig, argv):
        h, ptr, _sd, idp = argv[:4]
        call.args = self._decode_FwpmFilterAdd0(mem, argv)
        s, f, failed = self._add_prologue(call, h, ptr, "filter", "layerKey")
        if failed is not None:
            return failed
        self._resolve_provider(mem, f)
        f["conditions"] = decode_conditions(mem, int(f["filterCondition"], 16), f["numFilterConditions"]) if f["numFilterConditions"] else []
        failed = self._store_rules(call, s, "filters", f)
        if failed is not None:
            return failed
        key = f["filterKey"]
        sub = f["subLayerKey"]
        if uuid.UUID(sub) != ZERO_GUID and sub not in self._visible(s, "sublayers"):
            self.violation(call, "filter->subLayerKey", f"{sub} is not an existing sublayer")
            return L.STATUS_FWP_SUBLAYER_NOT_FOUND
        if f["numFilterConditions"] and f["filterCondition"] == "0x0":
            self.violation(call, "filter->filterCondition", f"null with numFilterConditions={f['numFilterConditions']}")
            return L.STATUS_FWP_NULL_POINTER
        if f["weight"]["type"] not in (L.FWP_EMPTY, L.FWP_UINT8, L.FWP_UINT64):
            self.violation(call, "filter->weight.type", f"{f['weight']['type']} is not FWP_EMPTY, FWP_UINT8 or FWP_UINT64")
            return L.STATUS_FWP_INVALID_PARAMETER
        atype = f["action"]["type"]
        valid_actions = (L.FWP_ACTION_BLOCK, L.FWP_ACTION_PERMIT, L.FWP_ACTION_CALLOUT_TERMINATING,
                         L.FWP_ACTION_CALLOUT_INSPECTION, L.FWP_ACTION_CALLOUT_UNKNOWN)
        if atype not in valid_actions:
            self.violation(call, "filter->action.type", f"{atype:#x} is not a valid action type")
            return L.STATUS_FWP_INVALID_ACTION_TYPE
        callout_key = None
        if atype & L.FWP_ACTION_FLAG_CALLOUT:
            callout_key = f["action"]["calloutKey"]
            mgmt = self._visible(s, "callouts").get(callout_key)
            if mgmt is None:
                self.violation(call, "filter->action.calloutKey", f"{callout_key} is not an added callout (FwpmCalloutAdd0)")
                return L.STATUS_FWP_CALLOUT_NOT_FOUND
            if mgmt["applicableLayer"] != f["layerKey"]:
                self.violation(call, "filter->layerKey", f"{f['layerKey']} differs from the applicableLayer {mgmt['applicableLayer']} of callout {callout_key}")
                return L.STATUS_FWP_INCOMPATIBLE_LAYER
            if self._registered_by_key(callout_key) is None:
                self.violation(call, "filter->action.calloutKey", f"{callout_key} is not registered with FwpsCalloutRegister3")
                return L.STATUS_FWP_CALLOUT_NOT_FOUND
        if key in self._all_objects("filters"):
            self.violation(call, "filter->filterKey", f"{key} already exists")
            return L.STATUS_FWP_ALREADY_EXISTS
        fid = self._next_filter_id
        self._next_filter_id += 1
        s.staged["filters"][key] = {**f, "calloutKey": callout_key, "id": fid, "call": call.label}
        if idp:
            mem.w64(idp, fid)
        call.args["assigned_filterId"] = fid
        return L.STATUS_SUCCESS

    def _delete_by(self, call, h, kind, pred, what, missing_ok=False):
        s = self._session(call, h)
        if s is None:
            return L.STATUS_INVALID_HANDLE
        pools = list(self.store_pools(kind))
        for sess in self.sessions.values():
            pools += [sess.objects[kind]] + ([sess.staged[kind]] if sess.txn == "open" else [])
        if True:
            for pool in pools:
                for k, v in list(pool.items()):
                    if pred(k, v):
                        del pool[k]
                        if s.txn == "open":
                            s.deleted.append((pool, kind, k, v))
                        elif pool is self.boot_time_filters or any(pool is p for p in self.bfe_store.values()):
                            self._store_record("delete", kind, k, v, call.label)
                        return L.STATUS_SUCCESS
        if missing_ok:
            from store_model import NOT_FOUND
            call.notes.append("no such object")
            return NOT_FOUND[kind]
        self.violation(call, what, "no such object")
        return L.STATUS_FWP_NOT_FOUND

    def _FwpmFilterDeleteById0(self, emu, mem, call, orig, argv):
        h, fid = argv[0], argv[1]
        call.args = {"engineHandle": hex(h), "id": fid}
        return self._delete_by(call, h, "filters", lambda k, v: v.get("id") == fid, "id")

    def _FwpmCalloutDeleteByKey0(self, emu, mem, call, orig, argv):
        h, kp = argv[0], argv[1]
        key = str(mem.guid(kp)) if kp else None
        call.args = {"engineHandle": hex(h), "key": key}
        return self._delete_by(call, h, "callouts", lambda k, v: k == key, "key")

    def _FwpmSubLayerDeleteByKey0(self, emu, mem, call, orig, argv):
        h, kp = argv[0], argv[1]
        key = str(mem.guid(kp)) if kp else None
        call.args = {"engineHandle": hex(h), "key": key}
        if key in self._all_objects("sublayers") and self._in_use("sublayers", key):
            call.notes.append(f"sublayer {key} is in use")
            return L.STATUS_FWP_IN_USE
        return self._delete_by(call, h, "sublayers", lambda k, v: k == key, "key", missing_ok=True)

    # ============================================================ BFE state
    def _FwpmBfeStateSubscribeChanges0(self, emu, mem, call, orig, argv):
        dev, cb, ctx, hp = argv[:4]
        call.args = {"deviceObject": hex(dev), "callback": hex(cb), "context": hex(ctx), "changeHandle": hex(hp)}
        d = self.devices.get(dev)
        if d is None or not d["live"]:
            self.violation(call, "deviceObject", f"{dev:#x} is not a live device object created by the driver")
            return L.STATUS_INVALID_PARAMETER
        if not cb:
            self.violation(call, "callback", "null callback")
            return L.STATUS_INVALID_PARAMETER
        if not hp:
            self.violation(call, "changeHandle", "null out pointer")
            return L.STATUS_INVALID_PARAMETER
        h = self._next_bfe_handle
        self._next_bfe_handle += 0x10
        self.bfe_subscriptions[h] = {"device": dev, "callback": cb, "context": ctx, "call": call.label}
        mem.w64(hp, h)
        call.args["assigned_changeHandle"] = hex(h)
        return L.STATUS_SUCCESS

    def _FwpmBfeStateUnsubscribeChanges0(self, emu, mem, call, orig, argv):
        h = argv[0]
        call.args = {"changeHandle": hex(h)}
        if h in self.bfe_callbacks_running:
            self.violation(call, "changeHandle", "unsubscribed from inside its own state-change callback (documented deadlock)")
        if self.bfe_subscriptions.pop(h, None) is None:
            self.violation(call, "changeHandle", f"{h:#x} is not an active subscription")
            return L.STATUS_INVALID_HANDLE
        return L.STATUS_SUCCESS

    def _FwpmBfeStateGet0(self, emu, mem, call, orig, argv):
        call.args = {"model_answer": self.bfe_state}
        return self.bfe_state

    def bfe_set_state(self, state: int) -> None:
        """Moves the modelled BFE service to `state`. Stopping kills every session
        (their objects are gone); the next start is a new generation."""
        if state == self.bfe_state:
            return
        if state in (L.FWPM_SERVICE_STOPPED, L.FWPM_SERVICE_STOP_PENDING) and self.bfe_state == L.FWPM_SERVICE_RUNNING:
            for sess in self.sessions.values():
                sess.objects = empty_pools()
                sess.staged = empty_pools()
        if state == L.FWPM_SERVICE_RUNNING:
            self.bfe_generation += 1
            self._store_bfe_started()
        self.bfe_state = state
