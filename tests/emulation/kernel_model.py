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

import struct
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import layouts as L
from etw_model import ETW_ARGC, ETW_IRQL_RULES, EtwModelMixin
from events_model import EVENTS_ARGC, EVENTS_IRQL_RULES, EventsModelMixin
from files_model import FILES_ARGC, FILES_FAILURE_MODES, FILES_IRQL_RULES, FilesModelMixin
from pool_refs import PoolRefsMixin
from store_model import STORE_ARGC, STORE_FAILURE_MODES, STORE_IRQL_RULES, StoreModelMixin, decode_conditions, empty_pools

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


class BugCheck(Exception):
    pass


class PoolArena:
    """Optional pool backing: one large mapping carved into size classes.

    speakeasy maps every allocation separately and its cost grows with the number of mappings, so
    a driver making tens of thousands of allocations in one request (compiling a 10,000-rule policy)
    would take many minutes. With an arena, allocations are served from free lists per power-of-two
    size class; blocks are zeroed like ExAllocatePool2's. The model's bookkeeping (live blocks, tags,
    double frees, balance) is unchanged; what is lost is speakeasy's fault on access beyond a
    block's own mapping, so tests that need that keep the default.
    """

    def __init__(self, se, size: int = 512 << 20):
        self.se = se
        self.base = se.mem_alloc(size, tag="weir.model.pool_arena")
        self.end = self.base + size
        self.next = self.base
        self.free_lists: dict[int, list[int]] = {}
        self.sizes: dict[int, int] = {}

    @staticmethod
    def _class(size: int) -> int:
        return max(16, 1 << (max(size, 1) - 1).bit_length())

    def alloc(self, size: int) -> int:
        cls = self._class(size)
        free = self.free_lists.get(cls)
        if free:
            addr = free.pop()
        elif self.next + cls <= self.end:
            addr, self.next = self.next, self.next + cls
        else:
            return 0
        self.sizes[addr] = cls
        self.se.mem_write(addr, bytes(max(size, 1)))
        return addr

    def free(self, addr: int) -> None:
        cls = self.sizes.pop(addr, None)
        if cls is not None:
            self.free_lists.setdefault(cls, []).append(addr)


class KernelModel(EventsModelMixin, EtwModelMixin, FilesModelMixin, StoreModelMixin, PoolRefsMixin):
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
        subs = [hex(h) for h, sub in self.bfe_subscriptions.items() if sub["device"] == dev]
        if subs:
            self.violation(call, "DeviceObject", f"device deleted while BFE state subscriptions {subs} made with it are active")
        handles = [hex(h) for h, kh in self.kernel_handles.items() if kh["object"] == dev and dev]
        if handles:
            self.violation(call, "DeviceObject", f"device deleted while kernel handles {handles} to it are open")
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
        target = [d for d in self.live_devices().values() if d["name"] == a["DeviceName"]]
        if not target:
            self.violation(call, "DeviceName", f"{a['DeviceName']!r} is not a live device")
            return L.STATUS_OBJECT_NAME_NOT_FOUND
        if self.require_dacl_before_link and target[0].get("dacl") is None:
            self.violation(call, "DeviceName", f"symbolic link created to {a['DeviceName']!r} before its DACL was set "
                           "(user mode could open the device with the default security in between)")
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
        addr = self.pool_arena.alloc(size) if self.pool_arena else (orig(argv) or 0)
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

    def _free(self, mem, call, orig, argv, addr, tag):
        block = self.pool.get(addr)
        if block is None:
            self.violation(call, "P", f"{addr:#x} is not a live pool block (double free or foreign pointer)")
            return None
        if tag is not None and block["tag"] != tag:
            self.violation(call, "Tag", f"tag {_tag(tag)!r} differs from the allocation's tag {_tag(block['tag'])!r}")
        self.check_free(call, addr, block["size"])
        self.check_no_global_refs(mem, call, addr, block["size"])
        del self.pool[addr]
        self.pool_history.append({"op": "free", "address": hex(addr), "call": call.label})
        if self.pool_arena:
            self.pool_arena.free(addr)
        else:
            orig(argv)
        return None

    def _ExFreePoolWithTag(self, emu, mem, call, orig, argv):
        addr, tag = argv[0], argv[1] & 0xFFFFFFFF
        call.args = {"P": hex(addr), "Tag": _tag(tag)}
        return self._free(mem, call, orig, argv, addr, tag)

    def _ExFreePool(self, emu, mem, call, orig, argv):
        call.args = {"P": hex(argv[0])}
        return self._free(mem, call, orig, argv, argv[0], None)

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
        self.outstanding_irps.discard(irp)
        self._watch_after_completion(emu, call, irp)
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
        if self.irql > PASSIVE_LEVEL and fmt and any(c in fmt for c in ("%wc", "%wZ", "%ws", "%wS", "%C", "%S", "%Z", "%ls", "%lc")):
            self.violation(call, "IRQL", f"Unicode format {fmt!r} above PASSIVE_LEVEL (DbgPrintEx page: Unicode conversions only at PASSIVE_LEVEL)")
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

    # ============================================================ security
    def _RtlCreateSecurityDescriptor(self, emu, mem, call, orig, argv):
        sd, rev = argv[0], argv[1] & 0xFFFFFFFF
        call.args = {"SecurityDescriptor": hex(sd), "Revision": rev}
        if rev != L.SECURITY_DESCRIPTOR_REVISION:
            return L.STATUS_UNKNOWN_REVISION
        mem.write(sd, bytes([rev]) + bytes(L.SECURITY_DESCRIPTOR_SIZE - 1))
        return L.STATUS_SUCCESS

    def _RtlCreateAcl(self, emu, mem, call, orig, argv):
        acl, length, rev = argv[0], argv[1] & 0xFFFFFFFF, argv[2] & 0xFFFFFFFF
        call.args = {"Acl": hex(acl), "AclLength": length, "AclRevision": rev}
        if length < 8 or length % 4 or length > 0xFFFF:
            return L.STATUS_INVALID_PARAMETER
        if rev not in (2, 4):
            return L.STATUS_INVALID_PARAMETER
        mem.write(acl, struct.pack("<BBHHH", rev, 0, length, 0, 0))
        return L.STATUS_SUCCESS

    def _RtlAddAccessAllowedAce(self, emu, mem, call, orig, argv):
        acl, rev, mask, sid = argv[0], argv[1] & 0xFFFFFFFF, argv[2] & 0xFFFFFFFF, argv[3]
        sid_text, sid_len = L.read_sid(mem, sid)
        call.args = {"Acl": hex(acl), "AceRevision": rev, "AccessMask": hex(mask), "Sid": sid_text}
        arev, _, size, count, _ = struct.unpack("<BBHHH", mem.read(acl, 8))
        off = 8
        for _ in range(count):
            off += struct.unpack("<H", mem.read(acl + off + 2, 2))[0]
        ace_size = 8 + sid_len
        if off + ace_size > size:
            return L.STATUS_ALLOTTED_SPACE_EXCEEDED
        mem.write(acl + off, struct.pack("<BBHI", L.ACCESS_ALLOWED_ACE_TYPE, 0, ace_size, mask) + mem.read(sid, sid_len))
        mem.write(acl + 4, struct.pack("<H", count + 1))
        return L.STATUS_SUCCESS

    def _RtlSetDaclSecurityDescriptor(self, emu, mem, call, orig, argv):
        sd, present, dacl, defaulted = argv[0], argv[1] & 0xFF, argv[2], argv[3] & 0xFF
        call.args = {"SecurityDescriptor": hex(sd), "DaclPresent": present, "Dacl": hex(dacl), "DaclDefaulted": defaulted}
        rev, _, control = struct.unpack("<BBH", mem.read(sd, 4))
        if rev != L.SECURITY_DESCRIPTOR_REVISION:
            return L.STATUS_UNKNOWN_REVISION
        if control & L.SE_SELF_RELATIVE:
            return L.STATUS_INVALID_SECURITY_DESCR
        control &= ~(L.SE_DACL_PRESENT | L.SE_DACL_DEFAULTED)
        if present:
            control |= L.SE_DACL_PRESENT | (L.SE_DACL_DEFAULTED if defaulted else 0)
            mem.w64(sd + L.SD_DACL, dacl)
        mem.write(sd + 2, struct.pack("<H", control))
        return L.STATUS_SUCCESS

    def _ObOpenObjectByPointer(self, emu, mem, call, orig, argv):
        obj, attrs, access_state, desired, otype, mode, hp = argv[:7]
        call.args = {"Object": hex(obj), "HandleAttributes": hex(attrs & 0xFFFFFFFF), "PassedAccessState": hex(access_state),
                     "DesiredAccess": hex(desired & 0xFFFFFFFF), "ObjectType": hex(otype), "AccessMode": mode & 0xFF, "Handle": hex(hp)}
        d = self.devices.get(obj)
        if d is None or not d["live"]:
            self.violation(call, "Object", f"{obj:#x} is not a live device object")
            return L.STATUS_INVALID_PARAMETER
        if not attrs & L.OBJ_KERNEL_HANDLE:
            self.violation(call, "HandleAttributes", "no OBJ_KERNEL_HANDLE: the handle would land in the current process's handle table")
        if mode & 0xFF != 0:
            self.violation(call, "AccessMode", "not KernelMode")
        if not hp:
            self.violation(call, "Handle", "null out pointer")
            return L.STATUS_INVALID_PARAMETER
        h = self._next_kernel_handle
        self._next_kernel_handle += 4
        self.kernel_handles[h] = {"object": obj, "access": desired & 0xFFFFFFFF, "call": call.label}
        mem.w64(hp, h)
        call.args["assigned_handle"] = hex(h)
        return L.STATUS_SUCCESS

    def _ZwSetSecurityObject(self, emu, mem, call, orig, argv):
        h, info, sd = argv[0], argv[1] & 0xFFFFFFFF, argv[2]
        call.args = {"Handle": hex(h), "SecurityInformation": hex(info), "SecurityDescriptor": hex(sd)}
        kh = self.kernel_handles.get(h)
        if kh is None:
            self.violation(call, "Handle", f"{h:#x} is not an open kernel handle")
            return L.STATUS_INVALID_HANDLE
        if info & L.DACL_SECURITY_INFORMATION and not kh["access"] & (L.WRITE_DAC | L.GENERIC_ALL):
            self.violation(call, "Handle", "opened without WRITE_DAC")
            return L.STATUS_ACCESS_DENIED
        try:
            parsed = L.read_security_descriptor(mem, sd)
        except ValueError as e:
            self.violation(call, "SecurityDescriptor", str(e))
            return L.STATUS_INVALID_SECURITY_DESCR
        call.args["parsed"] = parsed
        dev = self.devices[kh["object"]]
        if info & L.LABEL_SECURITY_INFORMATION:
            if not kh["access"] & (L.WRITE_OWNER | L.GENERIC_ALL):
                self.violation(call, "Handle", "LABEL_SECURITY_INFORMATION needs WRITE_OWNER; the handle was opened without it")
                return L.STATUS_ACCESS_DENIED
            labels = [a for a in (parsed["sacl"] or []) if a["type"] == L.SYSTEM_MANDATORY_LABEL_ACE_TYPE]
            if len(labels) != 1 or not labels[0]["sid"].startswith("S-1-16-"):
                self.violation(call, "SecurityDescriptor", f"LABEL_SECURITY_INFORMATION without exactly one mandatory label ACE in the SACL: {parsed['sacl']}")
                return L.STATUS_INVALID_SECURITY_DESCR
            dev["label"] = {"level": int(labels[0]["sid"].rsplit("-", 1)[1]), "policy": labels[0]["mask"]}
        if info & L.DACL_SECURITY_INFORMATION:
            dev["dacl"] = parsed["dacl"]
            dev["dacl_protected"] = bool(info & L.PROTECTED_DACL_SECURITY_INFORMATION) or parsed["protected"]
        return L.STATUS_SUCCESS

    def _ZwOpenKey(self, emu, mem, call, orig, argv):
        hp, access, oa = argv[0], argv[1] & 0xFFFFFFFF, argv[2]
        root = mem.u64(oa + 8) if oa else 0
        name = mem.unicode_string(mem.u64(oa + 16)) if oa else None
        attrs = mem.u32(oa + 24) if oa else 0
        text = name["text"] if name else None
        call.args = {"KeyHandle": hex(hp), "DesiredAccess": hex(access), "RootDirectory": hex(root), "ObjectName": text, "Attributes": hex(attrs)}
        if not attrs & L.OBJ_KERNEL_HANDLE:
            self.violation(call, "ObjectAttributes->Attributes", "no OBJ_KERNEL_HANDLE")
        if access & ~0x20019:
            self.violation(call, "DesiredAccess", f"{access:#x} asks for more than KEY_READ")
        if root:
            parent = self.kernel_handles.get(root)
            if parent is None or parent.get("key") is None:
                self.violation(call, "RootDirectory", f"{root:#x} is not an open key handle")
                return L.STATUS_INVALID_HANDLE
            if (text or "").lower() != "parameters" or self.parameters is None:
                return L.STATUS_OBJECT_NAME_NOT_FOUND
            key = parent["key"] + "\\Parameters"
        else:
            if not text or not text.lower().startswith("\\registry\\machine\\"):
                self.violation(call, "ObjectName", f"{text!r} is not an absolute registry path")
                return L.STATUS_OBJECT_NAME_NOT_FOUND
            key = text
        h = self._next_kernel_handle
        self._next_kernel_handle += 4
        self.kernel_handles[h] = {"object": 0, "key": key, "access": access, "call": call.label}
        mem.w64(hp, h)
        call.args["assigned_handle"] = hex(h)
        return L.STATUS_SUCCESS

    def _ZwQueryValueKey(self, emu, mem, call, orig, argv):
        h, name_p, cls, buf, length, resp = argv[:6]
        name = mem.unicode_string(name_p)
        text = name["text"] if name else None
        call.args = {"KeyHandle": hex(h), "ValueName": text, "KeyValueInformationClass": cls & 0xFFFFFFFF,
                     "Length": length & 0xFFFFFFFF}
        kh = self.kernel_handles.get(h)
        if kh is None or kh.get("key") is None:
            self.violation(call, "KeyHandle", f"{h:#x} is not an open key handle")
            return L.STATUS_INVALID_HANDLE
        if (cls & 0xFFFFFFFF) != 2:
            self.violation(call, "KeyValueInformationClass", "only KeyValuePartialInformation is modelled")
            return L.STATUS_INVALID_PARAMETER
        values = self.parameters or {}
        if not kh["key"].endswith("\\Parameters") or text not in values:
            return L.STATUS_OBJECT_NAME_NOT_FOUND
        vtype, value = values[text]
        data = struct.pack("<I", value) if vtype == L.REG_DWORD else bytes(value)
        blob = struct.pack("<III", 0, vtype, len(data)) + data
        if resp:
            mem.w32(resp, len(blob))
        if (length & 0xFFFFFFFF) < len(blob):
            return L.STATUS_BUFFER_OVERFLOW if (length & 0xFFFFFFFF) >= 12 else L.STATUS_BUFFER_TOO_SMALL
        mem.write(buf, blob)
        return L.STATUS_SUCCESS

    def _ZwClose(self, emu, mem, call, orig, argv):
        h = argv[0]
        call.args = {"Handle": hex(h)}
        if self.kernel_handles.pop(h, None) is None:
            self.violation(call, "Handle", f"{h:#x} is not an open kernel handle (double close?)")
            return L.STATUS_INVALID_HANDLE
        return L.STATUS_SUCCESS

    def access_check(self, device: int, token: dict, desired: int) -> tuple[bool, str]:
        """The I/O manager's access check on IRP_MJ_CREATE, from the DACL the
        driver applied (or the model's default device security if none).

        `token`: {"user": sid, "groups": [sid or (sid, "deny-only")],
        "restricted": [sid...] or None, "integrity": RID (0x1000 low,
        0x2000 medium, 0x3000 high, 0x4000 system)}. Follows SeAccessCheck's
        order: the mandatory integrity policy (the label the driver set, or
        for objects without one medium with NO_WRITE_UP), then the DACL in ACE order for the normal
        SIDs and, for a restricted token, again for the restricting SIDs.
        Returns (granted, reason)."""
        d = self.devices.get(device)
        if d is None or not d["live"]:
            return False, "no such device"
        desired = L.map_generic(desired)
        label = d.get("label") or {"level": L.MEDIUM_RID, "policy": L.NO_WRITE_UP}
        if token.get("integrity", L.MEDIUM_RID) < label["level"]:
            for bit, mask, what in ((L.NO_WRITE_UP, L.WRITE_UP_MASK, "write"), (L.NO_READ_UP, L.READ_UP_MASK, "read"),
                                    (L.NO_EXECUTE_UP, L.EXECUTE_UP_MASK, "execute")):
                if label["policy"] & bit and desired & mask:
                    return False, (f"mandatory integrity: {what} access from integrity {token.get('integrity', L.MEDIUM_RID):#x} "
                                   f"below the object's label {label['level']:#x} (policy {label['policy']:#x})")
        dacl = d.get("dacl")
        if dacl is None:
            dacl = L.DEFAULT_DEVICE_DACL
        enabled, deny_only = set([token["user"]]), set()
        for g in token.get("groups", []):
            if isinstance(g, tuple):
                deny_only.add(g[0])
            else:
                enabled.add(g)

        def evaluate(sids_allow, sids_deny) -> int:
            granted, denied = 0, 0
            for ace in dacl:
                mask = L.map_generic(ace["mask"])
                if ace["type"] == L.ACCESS_DENIED_ACE_TYPE and ace["sid"] in sids_deny:
                    denied |= mask & ~granted
                elif ace["type"] == L.ACCESS_ALLOWED_ACE_TYPE and ace["sid"] in sids_allow:
                    granted |= mask & ~denied
            return granted

        g1 = evaluate(enabled, enabled | deny_only)
        if desired & ~g1:
            return False, f"DACL grants {g1:#x} of {desired:#x} to the token's enabled SIDs"
        restricted = token.get("restricted")
        if restricted is not None:
            g2 = evaluate(set(restricted), set(restricted))
            if desired & ~g2:
                return False, f"DACL grants {g2:#x} of {desired:#x} to the restricting SIDs"
        return True, "granted"

    # ============================================================ events
    def _KeInitializeEvent(self, emu, mem, call, orig, argv):
        ev, typ, state = argv[0], argv[1] & 0xFFFFFFFF, argv[2] & 0xFF
        call.args = {"Event": hex(ev), "Type": typ, "State": state}
        self.events[ev] = {"type": typ, "signaled": bool(state), "call": call.label}
        return None

    def _KeSetEvent(self, emu, mem, call, orig, argv):
        ev, incr, wait = argv[0], argv[1], argv[2] & 0xFF
        call.args = {"Event": hex(ev), "Increment": incr, "Wait": wait}
        e = self.events.get(ev)
        if e is None:
            self.violation(call, "Event", f"{ev:#x} was never initialised with KeInitializeEvent")
            return 0
        if wait:
            self.violation(call, "Wait", "Wait TRUE is not modelled")
        prev = int(e["signaled"])
        e["signaled"] = True
        return prev

    def _KeWaitForSingleObject(self, emu, mem, call, orig, argv):
        obj, reason, mode, alertable, timeout = argv[:5]
        t = struct.unpack("<q", mem.read(timeout, 8))[0] if timeout else None
        call.args = {"Object": hex(obj), "WaitReason": reason & 0xFFFFFFFF, "WaitMode": mode & 0xFF,
                     "Alertable": alertable & 0xFF, "Timeout": t}
        e = self.events.get(obj)
        if e is None:
            self.violation(call, "Object", f"{obj:#x} is not an event the model knows")
            return L.STATUS_SUCCESS
        if timeout and t == 0 and self.irql > APC_LEVEL:
            pass
        elif self.irql > APC_LEVEL:
            pass  # reported by the IRQL rule
        if not e["signaled"]:
            if t is not None:
                return L.STATUS_TIMEOUT
            # One emulated thread: nobody else can ever set it.
            self.violation(call, "Object", "waits forever on an event that is not signaled (deadlock: already held?)")
            return L.STATUS_SUCCESS
        if e["type"] == L.SYNCHRONIZATION_EVENT:
            e["signaled"] = False
        return L.STATUS_SUCCESS


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


def _tag(tag: int) -> str:
    try:
        return struct.pack("<I", tag).decode("ascii")
    except Exception:
        return f"0x{tag:08X}"
