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
* keys are unique; closing a session deletes the objects of a dynamic session;
* no global points to freed pool: at every ExFreePool/ExFreePoolWithTag no
  pointer-sized value in the image's writable sections may point into the
  block (`pool_refs`).

* IRQL: the model tracks the current IRQL (`KernelModel.irql`); every hooked
  routine has the maximum IRQL its documentation page gives (`IRQL_RULES`,
  one table for every hook), and a call above it is a violation, the way
  Driver Verifier's IRQL checking would stop the machine. A hooked routine
  missing from the table is a violation too, so a new hook must say where its
  documentation puts it.

Faults are injected by `KernelModel.fail(phase, api, occurrence, status)`: that
call returns the failure without doing anything. `instance=n` limits a fault to
the n-th entry into the phase (`begin_phase`), e.g. the second IOCTL.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import layouts as L
from engine_model import EngineModelMixin, EngineSession
from etw_model import ETW_ARGC, ETW_IRQL_RULES, EtwModelMixin
from events_model import EVENTS_ARGC, EVENTS_IRQL_RULES, EventsModelMixin
from files_model import FILES_ARGC, FILES_FAILURE_MODES, FILES_IRQL_RULES, FilesModelMixin
from io_model import BugCheck, IoModelMixin, PoolArena
from objects_model import ObjectsModelMixin
from pool_refs import PoolRefsMixin
from store_model import STORE_ARGC, STORE_FAILURE_MODES, STORE_IRQL_RULES, StoreModelMixin, empty_pools

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
    # The control device's DACL (DriverEntry refuses to name a device it could not protect).
    "RtlCreateSecurityDescriptor": (L.STATUS_UNKNOWN_REVISION, L.STATUS_UNKNOWN_REVISION),
    "RtlCreateAcl": (L.STATUS_INVALID_PARAMETER, L.STATUS_INVALID_PARAMETER),
    "RtlAddAccessAllowedAce": (L.STATUS_ALLOTTED_SPACE_EXCEEDED, L.STATUS_ALLOTTED_SPACE_EXCEEDED),
    "RtlSetDaclSecurityDescriptor": (L.STATUS_INVALID_SECURITY_DESCR, L.STATUS_INVALID_SECURITY_DESCR),
    "ObOpenObjectByPointer": (L.STATUS_INSUFFICIENT_RESOURCES, L.STATUS_INSUFFICIENT_RESOURCES),
    "ZwSetSecurityObject": (L.STATUS_INSUFFICIENT_RESOURCES, L.STATUS_INSUFFICIENT_RESOURCES),
    # A failed close of the temporary handle is traced; DriverEntry goes on.
    "ZwClose": (L.STATUS_INVALID_HANDLE, L.STATUS_SUCCESS),
    # No Parameters key / an unreadable value (TraceLevel, FailMode): the default applies
    # (traces off, fail open); DriverEntry goes on. An absent value is not a failure (traced
    # at info), so the injected one is a real read error.
    "ZwOpenKey": (L.STATUS_OBJECT_NAME_NOT_FOUND, L.STATUS_SUCCESS),
    "ZwQueryValueKey": (L.STATUS_INSUFFICIENT_RESOURCES, L.STATUS_SUCCESS),
    "FwpmBfeStateSubscribeChanges0": (L.STATUS_INSUFFICIENT_RESOURCES, L.STATUS_INSUFFICIENT_RESOURCES),
    # Teardown calls (their second column is unused: DriverUnload returns nothing).
    "FwpmEngineClose0": (L.RPC_NT_CALL_FAILED, L.STATUS_SUCCESS),
    "FwpsCalloutUnregisterById0": (L.STATUS_NOT_SUPPORTED, L.STATUS_SUCCESS),
    "FwpmBfeStateUnsubscribeChanges0": (L.RPC_NT_CALL_FAILED, L.STATUS_SUCCESS),
    "IoDeleteSymbolicLink": (L.STATUS_INSUFFICIENT_RESOURCES, L.STATUS_SUCCESS),
    "FwpmTransactionAbort0": (L.RPC_NT_CALL_FAILED, L.STATUS_SUCCESS),
    # ETW: a failed registration is traced and DriverEntry goes on without
    # ETW; a failed unregistration is traced.
    "EtwRegister": (L.STATUS_INSUFFICIENT_RESOURCES, L.STATUS_SUCCESS),
    "EtwUnregister": (L.STATUS_INVALID_HANDLE, L.STATUS_SUCCESS),
    # Allocators fail by returning NULL.
    "ExAllocatePool2": (0, L.STATUS_INSUFFICIENT_RESOURCES),
    "ExAllocatePoolWithTag": (0, L.STATUS_INSUFFICIENT_RESOURCES),
    # Replacing the filters after a policy change (the reauthorization trigger): its failure
    # aborts the transaction and keeps the old filters; the request still succeeds.
    "FwpmFilterDeleteById0": (L.STATUS_FWP_NOT_FOUND, L.STATUS_SUCCESS),
    # The stored policy file (files_model): a read failure never stops the driver.
    **FILES_FAILURE_MODES,
    **STORE_FAILURE_MODES,
}

# Calls that have no effect besides diagnostics or pure computation: they are
# recorded but left out of the fault-injection list.
DIAGNOSTIC_APIS = {"EtwWriteTransfer", "DbgPrint", "DbgPrintEx", "vDbgPrintEx", "KdRefreshDebuggerNotPresent", "DbgQueryDebugFilterState"}
PURE_APIS = {"memcpy", "memset", "memmove", "memcmp", "RtlCompareMemory", "__chkstk", "__C_specific_handler"}

# Calls that cannot fail the way the driver uses them (void routines, or waits
# documented to return only STATUS_SUCCESS for a kernel-mode, non-alertable wait
# without timeout): recorded, left out of fault injection.
INFALLIBLE_APIS = {
    "IoDeleteDevice", "ExFreePoolWithTag", "ExFreePool", "IofCompleteRequest", "KeDelayExecutionThread",
    "KeInitializeEvent", "KeSetEvent", "KeWaitForSingleObject", "KeBugCheckEx", "KeBugCheck",
    "FwpmBfeStateGet0", "PsGetCurrentProcessId",
}

# ---------------------------------------------------------------------------
# IRQL rules. One table for every hooked routine: the highest IRQL its
# documentation page allows, and the page (learn.microsoft.com, under
# windows-hardware/drivers/ddi/). A helper adding a hook adds one row here.
# ---------------------------------------------------------------------------
PASSIVE_LEVEL, APC_LEVEL, DISPATCH_LEVEL, HIGH_LEVEL = 0, 1, 2, 15
IRQL_NAMES = {PASSIVE_LEVEL: "PASSIVE_LEVEL", APC_LEVEL: "APC_LEVEL", DISPATCH_LEVEL: "DISPATCH_LEVEL", HIGH_LEVEL: "HIGH_LEVEL"}

IRQL_RULES: dict[str, tuple[int, str]] = {
    # fwpkclnt: run-time callout API
    "FwpsCalloutRegister3": (PASSIVE_LEVEL, "fwpsk/nf-fwpsk-fwpscalloutregister3"),
    "FwpsCalloutUnregisterById0": (PASSIVE_LEVEL, "fwpsk/nf-fwpsk-fwpscalloutunregisterbyid0"),
    # fwpkclnt: management API (every Fwpm* routine is PASSIVE_LEVEL except FwpmBfeStateGet0)
    "FwpmEngineOpen0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmengineopen0"),
    "FwpmEngineClose0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmengineclose0"),
    "FwpmTransactionBegin0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmtransactionbegin0"),
    "FwpmTransactionCommit0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmtransactioncommit0"),
    "FwpmTransactionAbort0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmtransactionabort0"),
    "FwpmSubLayerAdd0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmsublayeradd0"),
    "FwpmCalloutAdd0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmcalloutadd0"),
    "FwpmFilterAdd0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmfilteradd0"),
    "FwpmFilterDeleteById0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmfilterdeletebyid0"),
    "FwpmCalloutDeleteByKey0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmcalloutdeletebykey0"),
    "FwpmSubLayerDeleteByKey0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmsublayerdeletebykey0"),
    "FwpmBfeStateSubscribeChanges0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmbfestatesubscribechanges0"),
    "FwpmBfeStateUnsubscribeChanges0": (PASSIVE_LEVEL, "fwpmk/nf-fwpmk-fwpmbfestateunsubscribechanges0"),
    "FwpmBfeStateGet0": (DISPATCH_LEVEL, "fwpmk/nf-fwpmk-fwpmbfestateget0"),
    # ntoskrnl: I/O manager
    "IoCreateDevice": (PASSIVE_LEVEL, "wdm/nf-wdm-iocreatedevice"),
    "IoDeleteDevice": (PASSIVE_LEVEL, "wdm/nf-wdm-iodeletedevice"),
    "IoCreateSymbolicLink": (PASSIVE_LEVEL, "wdm/nf-wdm-iocreatesymboliclink"),
    "IoDeleteSymbolicLink": (PASSIVE_LEVEL, "wdm/nf-wdm-iodeletesymboliclink"),
    "IofCompleteRequest": (DISPATCH_LEVEL, "wdm/nf-wdm-iocompleterequest"),
    # ntoskrnl: pool
    "ExAllocatePool2": (DISPATCH_LEVEL, "wdm/nf-wdm-exallocatepool2 (non-paged pool)"),
    "ExAllocatePoolWithTag": (DISPATCH_LEVEL, "wdm/nf-wdm-exallocatepoolwithtag (non-paged pool)"),
    "ExFreePoolWithTag": (DISPATCH_LEVEL, "wdm/nf-wdm-exfreepoolwithtag"),
    "ExFreePool": (DISPATCH_LEVEL, "wdm/nf-wdm-exfreepool"),
    # ntoskrnl: security (object security of the control device)
    "RtlCreateSecurityDescriptor": (PASSIVE_LEVEL, "wdm/nf-wdm-rtlcreatesecuritydescriptor"),
    "RtlCreateAcl": (PASSIVE_LEVEL, "ntifs/nf-ntifs-rtlcreateacl"),
    "RtlAddAccessAllowedAce": (PASSIVE_LEVEL, "ntifs/nf-ntifs-rtladdaccessallowedace"),
    "RtlSetDaclSecurityDescriptor": (APC_LEVEL, "wdm/nf-wdm-rtlsetdaclsecuritydescriptor"),
    "ObOpenObjectByPointer": (PASSIVE_LEVEL, "ntifs/nf-ntifs-obopenobjectbypointer"),
    "ZwSetSecurityObject": (PASSIVE_LEVEL, "ntifs/nf-ntifs-zwsetsecurityobject"),
    "ZwClose": (PASSIVE_LEVEL, "wdm/nf-wdm-zwclose"),
    "ZwOpenKey": (PASSIVE_LEVEL, "wdm/nf-wdm-zwopenkey"),
    "ZwQueryValueKey": (PASSIVE_LEVEL, "wdm/nf-wdm-zwqueryvaluekey"),
    "SeTokenIsAdmin": (PASSIVE_LEVEL, "ntifs/nf-ntifs-setokenisadmin"),
    # ntoskrnl: waits and synchronisation
    "KeDelayExecutionThread": (APC_LEVEL, "wdm/nf-wdm-kedelayexecutionthread"),
    "KeInitializeEvent": (PASSIVE_LEVEL, "wdm/nf-wdm-keinitializeevent"),
    "KeSetEvent": (DISPATCH_LEVEL, "wdm/nf-wdm-kesetevent (Wait FALSE)"),
    "KeWaitForSingleObject": (APC_LEVEL, "wdm/nf-wdm-kewaitforsingleobject (with a wait: <= APC_LEVEL)"),
    "KeBugCheckEx": (HIGH_LEVEL, "wdm/nf-wdm-kebugcheckex"),
    "KeBugCheck": (HIGH_LEVEL, "wdm/nf-wdm-kebugcheck"),
    # ntoskrnl: debugger output. DbgPrintEx is callable at any IRQL <= DIRQL
    # when the format has no Unicode conversions (%wc, %wZ, %ws...) and every
    # argument is in non-paged memory; `_DbgPrintEx` checks the format.
    "DbgPrintEx": (HIGH_LEVEL, "wdm/nf-wdm-dbgprintex"),
    "DbgPrint": (HIGH_LEVEL, "wdm/nf-wdm-dbgprint"),
    "memcpy": (HIGH_LEVEL, "C runtime (no IRQL rule; non-paged buffers)"),
    "memset": (HIGH_LEVEL, "C runtime (no IRQL rule; non-paged buffers)"),
    "memmove": (HIGH_LEVEL, "C runtime (no IRQL rule; non-paged buffers)"),
    "memcmp": (HIGH_LEVEL, "C runtime (no IRQL rule; non-paged buffers)"),
    # Deliberately absent: DbgQueryDebugFilterState (no documented IRQL).
    # The event stream's spin locks, DPCs, cancel spin lock and clock.
    **EVENTS_IRQL_RULES,
    # The ETW provider API and PsGetCurrentProcessId (etw_model.py).
    **ETW_IRQL_RULES,
    # The stored policy file.
    **FILES_IRQL_RULES,
    **STORE_IRQL_RULES,
}
# Spin locks, DPC objects, the cancel spin lock and the clock cannot fail.
INFALLIBLE_APIS |= set(EVENTS_ARGC)


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
    instance: int = 0  # which entry into the phase (KernelModel.begin_phase)
    irql: int = 0  # IRQL the driver called at

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
            "irql": self.irql,
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


class KernelModel(EngineModelMixin, IoModelMixin, ObjectsModelMixin, EventsModelMixin, EtwModelMixin, FilesModelMixin,
                  StoreModelMixin, PoolRefsMixin):
    """Bookkeeping and rules for one emulated driver instance."""

    def __init__(self):
        # Set to a PoolArena to serve pool allocations from one mapping (see PoolArena).
        self.pool_arena: PoolArena | None = None
        self.calls: list[Call] = []
        self.violations: list[Violation] = []
        self.phase = "load"
        # The service key's Parameters subkey (None: missing). driver.inx
        # writes TraceLevel 3 (DPFLTR_INFO_LEVEL): per-connection traces on.
        self.parameters: dict[str, tuple[int, Any]] | None = {"TraceLevel": (L.REG_DWORD, 3)}
        # Files (the stored policy) and the record of filter changes (files_model).
        self._files_init()
        # Providers, persistent objects and boot-time filters (store_model).
        self._store_init()
        # The device's DACL must be in place before a symbolic link names it.
        self.require_dacl_before_link = True
        # Current IRQL of the emulated thread (see IRQL_RULES).
        self.irql = PASSIVE_LEVEL
        self._rpc_failed = False
        self._occ: Counter = Counter()
        self._faults: dict[tuple[str, str, int], int] = {}
        # Entries into each phase (begin_phase), and per-entry occurrences.
        self.phase_instances: Counter = Counter()
        self._inst_occ: Counter = Counter()
        self._instance_faults: dict[tuple[str, int, str, int], int] = {}
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
        self.init_etw_state()
        self.init_pool_refs()
        # Called with (emu, call) after every hooked call returns to the model
        # (interleave.py plays other CPUs there).
        self.after_call: Callable | None = None

        # Base Filtering Engine service: its state, the drivers' state-change
        # subscriptions, and a generation that changes on every restart (a
        # session opened in an earlier generation is dead: its objects are gone).
        self.bfe_state = L.FWPM_SERVICE_RUNNING
        self.bfe_generation = 1
        self.bfe_subscriptions: dict[int, dict] = {}  # change handle -> {device, callback, context}
        self._next_bfe_handle = 0xFFFF_B100_0000_0010
        # Subscriptions whose callback is running now (Unsubscribe from inside it deadlocks).
        self.bfe_callbacks_running: set[int] = set()

        # Kernel handles (ObOpenObjectByPointer) and dispatcher objects.
        self.kernel_handles: dict[int, dict] = {}
        self._next_kernel_handle = 0xFFFF_FFFF_8000_0104
        self.events: dict[int, dict] = {}  # KEVENT address -> {type, signaled}

    # ------------------------------------------------------------------ API
    def fail(self, phase: str, api: str, occurrence: int, value: int | None = None, instance: int | None = None) -> None:
        """Makes the `occurrence`-th call of `api` in `phase` fail. With `instance`,
        only in the `instance`-th entry into the phase (1-based; see begin_phase),
        counting occurrences from that entry."""
        if value is None:
            value = FAILURE_MODES[api][0]
        if instance is None:
            self._faults[(phase, api, occurrence)] = value
        else:
            self._instance_faults[(phase, instance, api, occurrence)] = value

    def begin_phase(self, phase: str) -> int:
        """Enters `phase` (one driver entry point call); returns its 1-based instance number."""
        self.phase = phase
        self.phase_instances[phase] += 1
        return self.phase_instances[phase]

    def at_irql(self, level: int):
        """Context manager: run the enclosed driver call at `level`, then restore."""
        model = self

        class _Irql:
            def __enter__(self_):
                self_.prev, model.irql = model.irql, level
                return model

            def __exit__(self_, *exc):
                model.irql = self_.prev
                return False

        return _Irql()

    def check_irql(self, call: "Call", api: str) -> None:
        rule = IRQL_RULES.get(api)
        if rule is None:
            self.violation(call, "IRQL", f"{api} has no row in kernel_model.IRQL_RULES (add its documented maximum IRQL)")
            return
        limit, page = rule
        if self.irql > limit:
            self.violation(call, "IRQL", f"called at {IRQL_NAMES.get(self.irql, self.irql)}; its documentation ({page}) allows at most {IRQL_NAMES.get(limit, limit)}")

    def irql_violations(self) -> list[Violation]:
        return [v for v in self.violations if v.arg == "IRQL"]

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
        return [c for c in self.calls_in(phase) if c.api not in DIAGNOSTIC_APIS | PURE_APIS]

    # ----------------------------------------------------------- live state
    def live_devices(self):
        return {a: d for a, d in self.devices.items() if d["live"]}

    def open_sessions(self):
        return {h: s for h, s in self.sessions.items() if s.open}

    def engine_objects(self) -> dict:
        """Every committed management object still in the engine."""
        out = self.store_objects()
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
            "bfe": {"state": self.bfe_state, "generation": self.bfe_generation,
                    "subscriptions": {hex(h): {k: (hex(v) if isinstance(v, int) else v) for k, v in sub.items()} for h, sub in self.bfe_subscriptions.items()}},
            "kernel_handles": {hex(h): v for h, v in self.kernel_handles.items()},
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
        for h, sub in self.bfe_subscriptions.items():
            out.append(f"BFE state subscription {h:#x} (from {sub['call']}) not removed (FwpmBfeStateUnsubscribeChanges0 missing)")
        for h, kh in self.kernel_handles.items():
            out.append(f"kernel handle {h:#x} (from {kh['call']}) not closed (ZwClose missing)")
        out += self.etw_leaks()
        return out

    # ------------------------------------------------------- hook plumbing
    def hook_table(self) -> dict[tuple[str, str], tuple[int, Callable]]:
        """(module, api) -> (argc, handler). Handlers: (emu, mem, call, orig, argv) -> return value."""
        t = {}
        for name in (
            "FwpsCalloutRegister3", "FwpsCalloutUnregisterById0", "FwpmEngineOpen0", "FwpmEngineClose0",
            "FwpmTransactionBegin0", "FwpmTransactionCommit0", "FwpmTransactionAbort0",
            "FwpmSubLayerAdd0", "FwpmCalloutAdd0", "FwpmFilterAdd0",
            "FwpmFilterDeleteById0", "FwpmCalloutDeleteByKey0", "FwpmSubLayerDeleteByKey0", *STORE_ARGC,
            "FwpmBfeStateSubscribeChanges0", "FwpmBfeStateUnsubscribeChanges0", "FwpmBfeStateGet0",
        ):
            t[("fwpkclnt", name)] = (_ARGC[name], getattr(self, "_" + name))
        for name in (
            "IoCreateDevice", "IoDeleteDevice", "IoCreateSymbolicLink", "IoDeleteSymbolicLink",
            "ExAllocatePool2", "ExAllocatePoolWithTag", "ExFreePoolWithTag", "ExFreePool",
            "SeTokenIsAdmin", "KeDelayExecutionThread", "KeBugCheckEx", "KeBugCheck",
            "IofCompleteRequest", "DbgPrintEx", "DbgPrint", "DbgQueryDebugFilterState",
            "memcpy", "memset", "memmove", "memcmp",
            "RtlCreateSecurityDescriptor", "RtlCreateAcl", "RtlAddAccessAllowedAce", "RtlSetDaclSecurityDescriptor",
            "ObOpenObjectByPointer", "ZwSetSecurityObject", "ZwClose",
            "KeInitializeEvent", "KeSetEvent", "KeWaitForSingleObject",
            "ZwOpenKey", "ZwQueryValueKey", *FILES_ARGC,
        ):
            t[("ntoskrnl", name)] = (_ARGC[name], getattr(self, "_" + name))
        for name, argc in {**EVENTS_ARGC, **ETW_ARGC}.items():
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
            inst = self.phase_instances[self.phase]
            self._inst_occ[(self.phase, inst, api)] += 1
            call.instance = inst
            call.irql = self.irql
            self.calls.append(call)
            self.check_irql(call, api)
            self.check_apcs(call, api)
            self.check_after_completion(call, api)
            fault = self._faults.pop((self.phase, api, call.occurrence), None)
            if fault is None:
                fault = self._instance_faults.pop((self.phase, inst, api, self._inst_occ[(self.phase, inst, api)]), None)
            if fault is not None:
                call.injected = True
                try:
                    call.args = self._decode_only(api, mem, argv)
                except Exception as e:  # decoding is best effort for a failing call
                    call.args = {"decode_error": repr(e)}
                self._on_injected(api, call, argv)
                call.ret = fault
                return fault
            self._rpc_failed = False
            try:
                ret = handler(emu, mem, call, orig, argv)
                if self._rpc_failed:
                    ret = L.RPC_NT_CALL_FAILED
            except BugCheck:
                raise
            except Exception as e:  # a model bug must not look like a driver bug
                self.violation(call, "model", f"model raised {e!r}")
                ret = L.STATUS_UNSUCCESSFUL
            call.ret = ret
            if self.after_call is not None:
                self.after_call(emu, call)
            return ret

        return hook

    def _decode_only(self, api, mem, argv) -> dict:
        decoder = getattr(self, "_decode_" + api, None)
        return decoder(mem, argv) if decoder else {f"arg{i}": hex(a) for i, a in enumerate(argv)}

    def _on_injected(self, api: str, call: Call, argv) -> None:
        if api == "FwpmEngineClose0":
            # A failed close still consumes the handle (the client side of the
            # RPC context is released; closing it again would be a double close),
            # and BFE runs the dynamic session down when its context goes.
            s = self.sessions.get(argv[0])
            if s and s.open:
                s.open = False
                s.txn = None
                s.objects = empty_pools()
                call.notes.append("handle consumed by the failed close; dynamic session run down by BFE")
            return
        if api == "EtwUnregister":
            # The registration is gone whatever EtwUnregister returns: its
            # handle must not be used again (wdm.h: call it once, at unload).
            p = self.etw_providers.get(argv[0])
            if p is not None and p["live"]:
                p["live"] = False
                call.notes.append("registration released by the failed EtwUnregister")
            return
        if api == "ZwClose":
            if self.kernel_handles.pop(argv[0], None) is not None:
                call.notes.append("handle consumed by the failed close")
            return
        if api == "FwpmTransactionCommit0":
            s = self.sessions.get(argv[0])
            if s and s.open and s.txn == "open":
                # The staged objects are gone; the transaction must still be aborted.
                s.txn = "commit_failed"
                s.staged = empty_pools()

    def end_of_driver_entry(self, status: int) -> None:
        for h, s in self.sessions.items():
            if s.txn:
                self.violation(
                    "DriverEntry return", f"session {h:#x}",
                    f"returned {L.status_name(status)} with a transaction still {s.txn}",
                )



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
    "FwpmBfeStateSubscribeChanges0": 4, "FwpmBfeStateUnsubscribeChanges0": 1, "FwpmBfeStateGet0": 0,
    "RtlCreateSecurityDescriptor": 2, "RtlCreateAcl": 3, "RtlAddAccessAllowedAce": 4, "RtlSetDaclSecurityDescriptor": 4,
    "ObOpenObjectByPointer": 7, "ZwSetSecurityObject": 3, "ZwClose": 1,
    "KeInitializeEvent": 3, "KeSetEvent": 3, "KeWaitForSingleObject": 5,
    "ZwOpenKey": 3, "ZwQueryValueKey": 6,
    **FILES_ARGC,
    **STORE_ARGC,
}
