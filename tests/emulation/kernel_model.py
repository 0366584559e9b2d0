"""A model of the kernel and WFP APIs Weir calls, installed as speakeasy API hooks.

The model is the authority on what the driver did: every call is recorded with
its arguments decoded through the real x64 layouts (`layouts.Memory`), and the
model keeps its own books of devices, symbolic links, pool blocks, filter
engine sessions, transactions, management objects and run-time callouts.
speakeasy's built-in handlers are only called where the emulator needs its own
objects (device objects, pool memory); their results are recorded here.

Rules the model enforces (a broken rule is a *violation*, recorded with the call
and the argument, and the call fails the way the real API would):

* handles, callout ids, device objects and pool blocks must be live;
* objects are added only inside an explicit transaction; a transaction ends
  by commit or abort (abort is accepted after a failed commit) before its
  session closes or DriverEntry returns;
* FwpmCalloutAdd0 needs a run-time callout registered (FwpsCalloutRegister3)
  under the same key; FwpmFilterAdd0 needs an existing sublayer and, for a
  callout action, a management callout whose applicableLayer equals the
  filter's layer and whose key is registered at run time;
* keys are unique; closing a session deletes the objects of a dynamic session.

Faults are injected by `KernelModel.fail(phase, api, occurrence, status)`: that
call returns the failure without doing anything.
"""

from __future__ import annotations

import struct
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import layouts as L
from events_model import EVENTS_ARGC, EventsModelMixin

ZERO_GUID = uuid.UUID(int=0)

# How each API fails when a fault is injected into it. An API that DriverEntry
# calls and that has no entry here gets a fault test that fails with "no
# failure mode modelled" (so a new call cannot slip past fault injection).
FAILURE_MODES: dict[str, tuple[int, int]] = {
    # api: (value the API returns, status DriverEntry must return)
    "IoCreateDevice": (L.STATUS_INSUFFICIENT_RESOURCES, L.STATUS_INSUFFICIENT_RESOURCES),
    "IoCreateSymbolicLink": (L.STATUS_OBJECT_NAME_COLLISION, L.STATUS_OBJECT_NAME_COLLISION),
    "FwpsCalloutRegister3": (L.STATUS_FWP_ALREADY_EXISTS, L.STATUS_FWP_ALREADY_EXISTS),
    "FwpmEngineOpen0": (L.STATUS_FWP_TIMEOUT, L.STATUS_FWP_TIMEOUT),
    "FwpmTransactionBegin0": (L.STATUS_FWP_TXN_IN_PROGRESS, L.STATUS_FWP_TXN_IN_PROGRESS),
    "FwpmSubLayerAdd0": (L.STATUS_FWP_ALREADY_EXISTS, L.STATUS_FWP_ALREADY_EXISTS),
    "FwpmCalloutAdd0": (L.STATUS_FWP_TOO_MANY_CALLOUTS, L.STATUS_FWP_TOO_MANY_CALLOUTS),
    "FwpmFilterAdd0": (L.STATUS_FWP_INVALID_PARAMETER, L.STATUS_FWP_INVALID_PARAMETER),
    "FwpmTransactionCommit0": (L.STATUS_FWP_TXN_ABORTED, L.STATUS_FWP_TXN_ABORTED),
    # Allocators fail by returning NULL.
    "ExAllocatePool2": (0, L.STATUS_INSUFFICIENT_RESOURCES),
    "ExAllocatePoolWithTag": (0, L.STATUS_INSUFFICIENT_RESOURCES),
}

# Calls that have no effect besides diagnostics or pure computation: they are
# recorded but left out of the fault-injection list.
DIAGNOSTIC_APIS = {"DbgPrint", "DbgPrintEx", "vDbgPrintEx", "KdRefreshDebuggerNotPresent", "DbgQueryDebugFilterState"}
# Synchronisation and clock calls that cannot fail (void, or a BOOLEAN that
# reports state): checked by events_model, left out of fault injection and of
# the resource sequences.
INFALLIBLE_APIS = set(EVENTS_ARGC)
PURE_APIS = {"memcpy", "memset", "memmove", "memcmp", "RtlCompareMemory", "__chkstk", "__C_specific_handler"}


@dataclass
class Call:
    seq: int
    module: str
    api: str
    phase: str
    occurrence: int  # 1-based, per api within the phase
    args: dict[str, Any] = field(default_factory=dict)
    ret: Any = None
    injected: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.api}#{self.occurrence} ({self.phase})"

    def to_json(self) -> dict:
        out = {
            "seq": self.seq,
            "call": f"{self.module}!{self.api}",
            "phase": self.phase,
            "occurrence": self.occurrence,
            "args": self.args,
            "ret": _jsonable_ret(self.ret),
        }
        if self.injected:
            out["injected_fault"] = True
        if self.notes:
            out["notes"] = self.notes
        return out


def _jsonable_ret(ret):
    if isinstance(ret, int):
        return f"0x{ret & 0xFFFFFFFFFFFFFFFF:X}"
    return ret


@dataclass
class Violation:
    call: str
    arg: str
    message: str

    def __str__(self) -> str:
        return f"{self.call}: {self.arg}: {self.message}"

    def to_json(self) -> dict:
        return {"call": self.call, "arg": self.arg, "message": self.message}


@dataclass
class EngineSession:
    handle: int
    dynamic: bool
    info: dict
    open: bool = True
    # None, "open" or "commit_failed" (a failed commit still needs an abort).
    txn: str | None = None
    staged: dict = field(default_factory=lambda: {"sublayers": {}, "callouts": {}, "filters": {}})
    # Committed objects added through this session.
    objects: dict = field(default_factory=lambda: {"sublayers": {}, "callouts": {}, "filters": {}})


class BugCheck(Exception):
    pass


class KernelModel(EventsModelMixin):
    """Bookkeeping and rules for one emulated driver instance."""

    def __init__(self):
        self.calls: list[Call] = []
        self.violations: list[Violation] = []
        self.phase = "load"
        self._occ: Counter = Counter()
        self._faults: dict[tuple[str, str, int], int] = {}
        # Run-time callout id -> statuses FwpsCalloutUnregisterById0 returns
        # before behaving normally (e.g. [STATUS_DEVICE_BUSY] * 2).
        self.unregister_script: dict[int, list[int]] = {}
        # Token values SeTokenIsAdmin answers TRUE for.
        self.admin_tokens: set[int] = set()
        # The kernel debugger's print filter: which (component, level) pairs
        # DbgQueryDebugFilterState reports as enabled (all, by default, so
        # traces are visible to the tests).
        self.debug_filter_enabled = True
        self.driver_object: int | None = None
        self.bugchecks: list[dict] = []
        self.debug_messages: list[dict] = []

        # Kernel objects.
        self.devices: dict[int, dict] = {}  # address -> info (live ones have live=True)
        self.symlinks: dict[str, str] = {}  # live link name -> target
        self.pool: dict[int, dict] = {}  # live block -> info
        self.pool_history: list[dict] = []
        self.irp_completions: list[dict] = []

        # Filter engine.
        self.sessions: dict[int, EngineSession] = {}
        self._next_handle = 0xFFFF_B000_0000_1000
        self.callouts_rt: dict[int, dict] = {}  # run-time callout id -> registration
        self._next_callout_id = 0x101
        self._next_filter_id = 0x10001
        self.unregistered: list[dict] = []
        self.init_events_state()

    # ------------------------------------------------------------------ API
    def fail(self, phase: str, api: str, occurrence: int, value: int | None = None) -> None:
        """Makes the `occurrence`-th call of `api` in `phase` fail."""
        if value is None:
            value = FAILURE_MODES[api][0]
        self._faults[(phase, api, occurrence)] = value

    def violation(self, call: Call | str, arg: str, message: str) -> None:
        label = call.label if isinstance(call, Call) else call
        v = Violation(label, arg, message)
        self.violations.append(v)
        if isinstance(call, Call):
            call.notes.append(f"VIOLATION {arg}: {message}")

    def calls_in(self, phase: str | None = None, api: str | None = None) -> list[Call]:
        return [c for c in self.calls if (phase is None or c.phase == phase) and (api is None or c.api == api)]

    def effective_calls(self, phase: str) -> list[Call]:
        """Calls of a phase that matter for fault injection (no diagnostics, no pure helpers)."""
        return [c for c in self.calls_in(phase) if c.api not in DIAGNOSTIC_APIS | PURE_APIS | INFALLIBLE_APIS]

    # ----------------------------------------------------------- live state
    def live_devices(self):
        return {a: d for a, d in self.devices.items() if d["live"]}

    def open_sessions(self):
        return {h: s for h, s in self.sessions.items() if s.open}

    def engine_objects(self) -> dict:
        """Every committed management object still in the engine."""
        out = {"sublayers": {}, "callouts": {}, "filters": {}}
        for s in self.sessions.values():
            for kind in out:
                out[kind].update(s.objects[kind])
        return out

    def live_state(self) -> dict:
        objs = self.engine_objects()
        return {
            "devices": [{"address": hex(a), **{k: v for k, v in d.items() if k != "live"}} for a, d in self.live_devices().items()],
            "symlinks": dict(self.symlinks),
            "open_sessions": [hex(h) for h in self.open_sessions()],
            "open_transactions": [hex(h) for h, s in self.sessions.items() if s.txn],
            "registered_callouts": {str(i): c["key"] for i, c in self.callouts_rt.items()},
            "engine_objects": {k: sorted(v) for k, v in objs.items()},
            "pool_outstanding": [{"address": hex(a), **b} for a, b in self.pool.items()],
        }

    def leaks(self) -> list[str]:
        """Everything still held; empty after a clean unload or a failed DriverEntry."""
        out = []
        for a, d in self.live_devices().items():
            out.append(f"device {d['name']!r} at {a:#x} not deleted (IoDeleteDevice missing)")
        for name, target in self.symlinks.items():
            out.append(f"symbolic link {name!r} -> {target!r} not deleted (IoDeleteSymbolicLink missing)")
        for h, s in self.sessions.items():
            if s.txn:
                out.append(f"transaction on session {h:#x} never ended (state {s.txn}; FwpmTransactionAbort0 missing)")
            if s.open:
                out.append(f"engine session {h:#x} not closed (FwpmEngineClose0 missing)")
        for i, c in self.callouts_rt.items():
            out.append(f"callout id {i} key {c['key']} still registered (FwpsCalloutUnregisterById0 missing)")
        for kind, objs in self.engine_objects().items():
            for key in objs:
                out.append(f"{kind[:-1]} {key} still in the engine")
        for a, b in self.pool.items():
            out.append(f"pool block {a:#x} ({b['size']} bytes, from {b['call']}) not freed")
        return out

    # ------------------------------------------------------- hook plumbing
    def hook_table(self) -> dict[tuple[str, str], tuple[int, Callable]]:
        """(module, api) -> (argc, handler). Handlers: (emu, mem, call, orig, argv) -> return value."""
        t = {}
        for name in (
            "FwpsCalloutRegister3", "FwpsCalloutUnregisterById0", "FwpmEngineOpen0", "FwpmEngineClose0",
            "FwpmTransactionBegin0", "FwpmTransactionCommit0", "FwpmTransactionAbort0",
            "FwpmSubLayerAdd0", "FwpmCalloutAdd0", "FwpmFilterAdd0",
            "FwpmFilterDeleteById0", "FwpmCalloutDeleteByKey0", "FwpmSubLayerDeleteByKey0",
        ):
            t[("fwpkclnt", name)] = (_ARGC[name], getattr(self, "_" + name))
        for name in (
            "IoCreateDevice", "IoDeleteDevice", "IoCreateSymbolicLink", "IoDeleteSymbolicLink",
            "ExAllocatePool2", "ExAllocatePoolWithTag", "ExFreePoolWithTag", "ExFreePool",
            "SeTokenIsAdmin", "KeDelayExecutionThread", "KeBugCheckEx", "KeBugCheck",
            "IofCompleteRequest", "DbgPrintEx", "DbgPrint", "DbgQueryDebugFilterState",
            "memcpy", "memset", "memmove", "memcmp",
        ):
            t[("ntoskrnl", name)] = (_ARGC[name], getattr(self, "_" + name))
        for name, argc in EVENTS_ARGC.items():
            t[("ntoskrnl", name)] = (argc, getattr(self, "_" + name))
        return t

    def make_hook(self, module: str, api: str, handler: Callable) -> Callable:
        def hook(emu, api_name, orig, argv):
            mem = L.Memory(emu)
            if self.phase == "DriverEntry" and self.driver_object is None:
                try:
                    self.driver_object = emu.curr_run.args[0]
                except Exception:
                    pass
            self._occ[(self.phase, api)] += 1
            call = Call(len(self.calls) + 1, module, api, self.phase, self._occ[(self.phase, api)])
            self.calls.append(call)
            fault = self._faults.get((self.phase, api, call.occurrence))
            if fault is not None:
                call.injected = True
                try:
                    call.args = self._decode_only(api, mem, argv)
                except Exception as e:  # decoding is best effort for a failing call
                    call.args = {"decode_error": repr(e)}
                self._on_injected(api, call, argv)
                call.ret = fault
                return fault
            try:
                ret = handler(emu, mem, call, orig, argv)
            except BugCheck:
                raise
            except Exception as e:  # a model bug must not look like a driver bug
                self.violation(call, "model", f"model raised {e!r}")
                ret = L.STATUS_UNSUCCESSFUL
            call.ret = ret
            return ret

        return hook

    def _decode_only(self, api, mem, argv) -> dict:
        decoder = getattr(self, "_decode_" + api, None)
        return decoder(mem, argv) if decoder else {f"arg{i}": hex(a) for i, a in enumerate(argv)}

    def _on_injected(self, api: str, call: Call, argv) -> None:
        if api == "FwpmTransactionCommit0":
            s = self.sessions.get(argv[0])
            if s and s.open and s.txn == "open":
                # The staged objects are gone; the transaction must still be aborted.
                s.txn = "commit_failed"
                s.staged = {"sublayers": {}, "callouts": {}, "filters": {}}

    def end_of_driver_entry(self, status: int) -> None:
        for h, s in self.sessions.items():
            if s.txn:
                self.violation(
                    "DriverEntry return", f"session {h:#x}",
                    f"returned {L.status_name(status)} with a transaction still {s.txn}",
                )

    # ----------------------------------------------------------- helpers
    def _session(self, call: Call, handle: int, arg="engineHandle") -> EngineSession | None:
        s = self.sessions.get(handle)
        if s is None or not s.open:
            self.violation(call, arg, f"{handle:#x} is not an open engine handle")
            return None
        return s

    def _all_objects(self, kind: str) -> dict:
        """Committed objects of every open session plus objects staged in open transactions."""
        out = {}
        for s in self.sessions.values():
            out.update(s.objects[kind])
            if s.txn == "open":
                out.update(s.staged[kind])
        return out

    def _visible(self, s: EngineSession, kind: str) -> dict:
        """Objects a transaction on `s` can reference: committed ones and its own staged ones."""
        out = {}
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
        h = self._next_handle
        self._next_handle += 0x10
        self.sessions[h] = EngineSession(h, dynamic, info)
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
        if s.txn:
            self.violation(call, "engineHandle", f"session closed while its transaction is {s.txn} (abort or commit first)")
            s.txn = None
        s.open = False
        if s.dynamic:
            removed = {k: sorted(v) for k, v in s.objects.items() if v}
            call.args["dynamic_objects_deleted"] = removed
            s.objects = {"sublayers": {}, "callouts": {}, "filters": {}}
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
        s.staged = {"sublayers": {}, "callouts": {}, "filters": {}}
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
        for kind in s.objects:
            s.objects[kind].update(s.staged[kind])
        call.args["committed"] = {k: sorted(v) for k, v in s.staged.items()}
        s.staged = {"sublayers": {}, "callouts": {}, "filters": {}}
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
        s.staged = {"sublayers": {}, "callouts": {}, "filters": {}}
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

    def _delete_by(self, call, h, kind, pred, what):
        s = self._session(call, h)
        if s is None:
            return L.STATUS_INVALID_HANDLE
        for sess in self.sessions.values():
            for pool in ([sess.objects[kind]] + ([sess.staged[kind]] if sess.txn == "open" else [])):
                for k, v in list(pool.items()):
                    if pred(k, v):
                        del pool[k]
                        return L.STATUS_SUCCESS
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
        return self._delete_by(call, h, "sublayers", lambda k, v: k == key, "key")

    # ================================================================ ntoskrnl
    def _decode_IoCreateDevice(self, mem, argv):
        drv, ext, name, dtype, chars, excl, out = argv[:7]
        us = mem.unicode_string(name)
        return {
            "DriverObject": hex(drv), "DeviceExtensionSize": ext & 0xFFFFFFFF,
            "DeviceName": us["text"] if us else None, "DeviceName_UNICODE_STRING": us,
            "DeviceType": dtype & 0xFFFFFFFF, "DeviceCharacteristics": chars & 0xFFFFFFFF,
            "Exclusive": excl & 0xFF, "DeviceObject": hex(out),
        }

    def _IoCreateDevice(self, emu, mem, call, orig, argv):
        drv, _ext, _name, _dtype, _chars, _excl, out = argv[:7]
        call.args = a = self._decode_IoCreateDevice(mem, argv)
        if self.driver_object is not None and drv != self.driver_object:
            self.violation(call, "DriverObject", f"{drv:#x} is not the DRIVER_OBJECT passed to DriverEntry ({self.driver_object:#x})")
            return L.STATUS_INVALID_PARAMETER
        if not out:
            self.violation(call, "DeviceObject", "null out pointer")
            return L.STATUS_INVALID_PARAMETER
        us = a["DeviceName_UNICODE_STRING"]
        if us and (us["Length"] % 2 or us["Length"] > us["MaximumLength"]):
            self.violation(call, "DeviceName", f"malformed UNICODE_STRING {us}")
            return L.STATUS_INVALID_PARAMETER
        if a["DeviceName"] and any(d["name"] == a["DeviceName"] for d in self.live_devices().values()):
            self.violation(call, "DeviceName", f"{a['DeviceName']!r} already exists")
            return L.STATUS_OBJECT_NAME_COLLISION
        status = orig(argv)
        if not L.is_success(status or 0):
            return status
        dev = mem.ptr(out)
        self.devices[dev] = {
            "name": a["DeviceName"], "type": a["DeviceType"], "characteristics": a["DeviceCharacteristics"],
            "exclusive": a["Exclusive"], "live": True, "call": call.label,
        }
        call.args["created_device"] = hex(dev)
        return L.STATUS_SUCCESS

    def _decode_IoDeleteDevice(self, mem, argv):
        return {"DeviceObject": hex(argv[0])}

    def _IoDeleteDevice(self, emu, mem, call, orig, argv):
        dev = argv[0]
        call.args = {"DeviceObject": hex(dev)}
        d = self.devices.get(dev)
        if d is None or not d["live"]:
            self.violation(call, "DeviceObject", f"{dev:#x} is not a live device (double delete or never created)")
            return None
        call.args["DeviceName"] = d["name"]
        still = [i for i, c in self.callouts_rt.items() if c["device"] == dev]
        if still:
            self.violation(call, "DeviceObject", f"device deleted while callouts {still} registered against it are still registered")
        d["live"] = False
        orig(argv)
        return None

    def _decode_IoCreateSymbolicLink(self, mem, argv):
        link, target = mem.unicode_string(argv[0]), mem.unicode_string(argv[1])
        return {"SymbolicLinkName": link and link["text"], "DeviceName": target and target["text"]}

    def _IoCreateSymbolicLink(self, emu, mem, call, orig, argv):
        call.args = a = self._decode_IoCreateSymbolicLink(mem, argv)
        if a["SymbolicLinkName"] is None or a["DeviceName"] is None:
            self.violation(call, "SymbolicLinkName/DeviceName", "null UNICODE_STRING")
            return L.STATUS_INVALID_PARAMETER
        if a["SymbolicLinkName"] in self.symlinks:
            self.violation(call, "SymbolicLinkName", f"{a['SymbolicLinkName']!r} already exists")
            return L.STATUS_OBJECT_NAME_COLLISION
        if not any(d["name"] == a["DeviceName"] for d in self.live_devices().values()):
            self.violation(call, "DeviceName", f"{a['DeviceName']!r} is not a live device")
            return L.STATUS_OBJECT_NAME_NOT_FOUND
        status = orig(argv)
        if L.is_success(status or 0):
            self.symlinks[a["SymbolicLinkName"]] = a["DeviceName"]
        return status

    def _decode_IoDeleteSymbolicLink(self, mem, argv):
        link = mem.unicode_string(argv[0])
        return {"SymbolicLinkName": link and link["text"]}

    def _IoDeleteSymbolicLink(self, emu, mem, call, orig, argv):
        call.args = a = self._decode_IoDeleteSymbolicLink(mem, argv)
        name = a["SymbolicLinkName"]
        if name not in self.symlinks:
            self.violation(call, "SymbolicLinkName", f"{name!r} does not exist")
            return L.STATUS_OBJECT_NAME_NOT_FOUND
        call.args["target"] = self.symlinks.pop(name)
        orig(argv)
        return L.STATUS_SUCCESS

    def _alloc(self, call, orig, argv, flags, size, tag, kind):
        addr = orig(argv) or 0
        call.args["returned"] = hex(addr)
        if addr:
            block = {"size": size, "tag": tag, "flags": flags, "call": call.label, "kind": kind}
            self.pool[addr] = block
            self.pool_history.append({"op": "alloc", "address": hex(addr), **block})
        return addr

    def _decode_ExAllocatePool2(self, mem, argv):
        flags, size, tag = argv[0], argv[1], argv[2] & 0xFFFFFFFF
        return {"Flags": hex(flags), "NumberOfBytes": size, "Tag": _tag(tag)}

    def _ExAllocatePool2(self, emu, mem, call, orig, argv):
        call.args = self._decode_ExAllocatePool2(mem, argv)
        return self._alloc(call, orig, argv, argv[0], argv[1], argv[2] & 0xFFFFFFFF, "ExAllocatePool2")

    def _decode_ExAllocatePoolWithTag(self, mem, argv):
        return {"PoolType": argv[0] & 0xFFFFFFFF, "NumberOfBytes": argv[1], "Tag": _tag(argv[2] & 0xFFFFFFFF)}

    def _ExAllocatePoolWithTag(self, emu, mem, call, orig, argv):
        call.args = self._decode_ExAllocatePoolWithTag(mem, argv)
        return self._alloc(call, orig, argv, argv[0] & 0xFFFFFFFF, argv[1], argv[2] & 0xFFFFFFFF, "ExAllocatePoolWithTag")

    def _free(self, call, orig, argv, addr, tag):
        block = self.pool.get(addr)
        if block is None:
            self.violation(call, "P", f"{addr:#x} is not a live pool block (double free or foreign pointer)")
            return None
        if tag is not None and block["tag"] != tag:
            self.violation(call, "Tag", f"tag {_tag(tag)!r} differs from the allocation's tag {_tag(block['tag'])!r}")
        self.check_free(call, addr, block["size"])
        del self.pool[addr]
        self.pool_history.append({"op": "free", "address": hex(addr), "call": call.label})
        orig(argv)
        return None

    def _ExFreePoolWithTag(self, emu, mem, call, orig, argv):
        addr, tag = argv[0], argv[1] & 0xFFFFFFFF
        call.args = {"P": hex(addr), "Tag": _tag(tag)}
        return self._free(call, orig, argv, addr, tag)

    def _ExFreePool(self, emu, mem, call, orig, argv):
        call.args = {"P": hex(argv[0])}
        return self._free(call, orig, argv, argv[0], None)

    def _SeTokenIsAdmin(self, emu, mem, call, orig, argv):
        token = argv[0]
        admin = token in self.admin_tokens
        call.args = {"Token": hex(token), "model_answer": admin}
        return 1 if admin else 0

    def _KeDelayExecutionThread(self, emu, mem, call, orig, argv):
        mode, alertable, interval = argv[0] & 0xFF, argv[1] & 0xFF, argv[2]
        value = struct.unpack("<q", mem.read(interval, 8))[0] if interval else None
        call.args = {"WaitMode": mode, "Alertable": alertable, "Interval": value}
        if interval == 0:
            self.violation(call, "Interval", "null pointer")
        return L.STATUS_SUCCESS

    def _bugcheck(self, emu, call, args):
        call.args = args
        self.bugchecks.append({"call": call.label, **args})
        self.violation(call, "BugCheckCode", f"KeBugCheck called: {args}")
        # KeBugCheckEx never returns: end this run as a fault.
        try:
            err = emu.get_error_info("KeBugCheckEx", emu.get_pc())
            emu.curr_run.error = err
            emu.on_run_complete()
        except Exception:
            emu.stop()
        return 0

    def _KeBugCheckEx(self, emu, mem, call, orig, argv):
        code, p1, p2, p3, p4 = (list(argv) + [0] * 5)[:5]
        return self._bugcheck(emu, call, {"BugCheckCode": hex(code & 0xFFFFFFFF), "P1": hex(p1), "P2": hex(p2), "P3": hex(p3), "P4": hex(p4)})

    def _KeBugCheck(self, emu, mem, call, orig, argv):
        return self._bugcheck(emu, call, {"BugCheckCode": hex(argv[0] & 0xFFFFFFFF)})

    def _IofCompleteRequest(self, emu, mem, call, orig, argv):
        irp, boost = argv[0], argv[1] & 0xFF
        status = mem.u32(irp + L.IRP_IO_STATUS_STATUS)
        info = mem.u64(irp + L.IRP_IO_STATUS_INFORMATION)
        call.args = {"Irp": hex(irp), "PriorityBoost": boost, "IoStatus.Status": L.status_name(status), "IoStatus.Information": info}
        self.irp_completions.append({"irp": irp, "status": status, "information": info, "call": call.label})
        self.check_completion(mem, call, irp)
        orig(argv)
        return None

    def _dbgprint(self, emu, mem, call, fixed):
        import speakeasy.winenv.arch as _arch

        args = emu.get_func_argv(_arch.CALL_CONV_CDECL, fixed + 2)
        fmt = mem.cstr(args[fixed])
        text = fmt
        if fmt == "%s":
            text = mem.cstr(args[fixed + 1])
        return args, fmt, text

    def _DbgQueryDebugFilterState(self, emu, mem, call, orig, argv):
        call.args = {"ComponentId": argv[0] & 0xFFFFFFFF, "Level": argv[1] & 0xFFFFFFFF,
                     "model_answer": self.debug_filter_enabled}
        return 1 if self.debug_filter_enabled else 0

    def _DbgPrintEx(self, emu, mem, call, orig, argv):
        args, fmt, text = self._dbgprint(emu, mem, call, 2)
        call.args = {"ComponentId": args[0] & 0xFFFFFFFF, "Level": args[1] & 0xFFFFFFFF, "Format": fmt, "text": text}
        self.debug_messages.append({"phase": self.phase, "level": args[1] & 0xFFFFFFFF, "text": text})
        return len(text or "")

    def _DbgPrint(self, emu, mem, call, orig, argv):
        args, fmt, text = self._dbgprint(emu, mem, call, 0)
        call.args = {"Format": fmt, "text": text}
        self.debug_messages.append({"phase": self.phase, "level": None, "text": text})
        return len(text or "")

    def _passthrough(self, emu, mem, call, orig, argv):
        call.args = {f"arg{i}": hex(a) for i, a in enumerate(argv)}
        return orig(argv)

    _memcpy = _memset = _memmove = _memcmp = _passthrough


_ARGC = {
    "FwpsCalloutRegister3": 3, "FwpsCalloutUnregisterById0": 1, "FwpmEngineOpen0": 5, "FwpmEngineClose0": 1,
    "FwpmTransactionBegin0": 2, "FwpmTransactionCommit0": 1, "FwpmTransactionAbort0": 1,
    "FwpmSubLayerAdd0": 3, "FwpmCalloutAdd0": 4, "FwpmFilterAdd0": 4,
    "FwpmFilterDeleteById0": 2, "FwpmCalloutDeleteByKey0": 2, "FwpmSubLayerDeleteByKey0": 2,
    "IoCreateDevice": 7, "IoDeleteDevice": 1, "IoCreateSymbolicLink": 2, "IoDeleteSymbolicLink": 1,
    "ExAllocatePool2": 3, "ExAllocatePoolWithTag": 3, "ExFreePoolWithTag": 2, "ExFreePool": 1,
    "SeTokenIsAdmin": 1, "KeDelayExecutionThread": 3, "KeBugCheckEx": 5, "KeBugCheck": 1,
    "IofCompleteRequest": 2, "DbgPrintEx": 3, "DbgPrint": 1, "DbgQueryDebugFilterState": 2,
    "memcpy": 3, "memset": 3, "memmove": 3, "memcmp": 3,
}


def _tag(tag: int) -> str:
    try:
        return struct.pack("<I", tag).decode("ascii")
    except Exception:
        return f"0x{tag:08X}"
