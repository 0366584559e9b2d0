"""The kernel services behind Weir's event stream, as a mixin of `KernelModel`.

Spin locks, DPC objects, the cancel spin lock, the system clock, and the
completion rules of pended IRPs. The model keeps its own books:

* spin locks: acquiring a held lock (a deadlock on a real CPU) and releasing
  a lock that is not held are violations; so is freeing pool that holds a
  held lock;
* DPCs: `KeInitializeDpc` records the routine and context (and writes them
  into the KDPC at their x64 offsets); `KeInsertQueueDpc` on an uninitialised
  DPC is a violation; freeing pool that holds a queued DPC is a violation (a
  use after free when it runs); `KeFlushQueuedDpcs` with one of the driver's
  DPCs still queued is reported (this model cannot run emulated code from
  inside a hook, so a driver must remove its DPC first, as Weir does). The
  harness runs queued DPCs (`DriverRun.run_dpcs`) the way the kernel would:
  at DISPATCH_LEVEL, after the call that queued them returned;
* the cancel spin lock: `DriverRun.cancel_irp` plays IoCancelIrp (Cancel =
  TRUE, CancelRoutine exchanged to NULL, routine called with the lock held
  and CancelIrql set); the routine must release it with
  `IoReleaseCancelSpinLock` exactly once;
* IRP completion: completing an IRP twice, or with a cancel routine still
  set (bug check 0x48 CANCEL_STATE_IN_COMPLETED_IRP on Windows), is a
  violation;
* nothing after the last completion: completing the last outstanding IRP is
  what lets the I/O manager run a deferred DriverUnload, which frees the
  driver's pool and unmaps its image. The model tracks outstanding IRPs (one
  the harness dispatches, until completed); when a completion leaves none,
  every read or write of the driver's pool blocks or of the image's writable
  sections, and every kernel call, until that driver call returns is a
  violation (the emulator's memory hooks watch those ranges). DriverUnload
  itself (it is the one that frees) and DPC routines (unload flushes them
  before freeing their memory) are exempt;
* critical regions: `KeEnterCriticalRegion`/`KeLeaveCriticalRegion` keep a
  depth (leaving more than entered, or returning from a driver call inside
  one, is a violation) and `KeAreApcsDisabled` answers from it and the IRQL.
  Weir does the work of classifyFn and of IRP_MJ_DEVICE_CONTROL dispatch
  with normal kernel APCs disabled (so a suspended thread cannot stall a
  shared section): there, any call made at PASSIVE_LEVEL with APCs enabled
  is a violation, except the ones that set up the protection (the region
  calls, a spin lock acquire) and the final IofCompleteRequest.
"""

from __future__ import annotations

import layouts as L

# KDPC (x64)
KDPC_DEFERRED_ROUTINE = 0x18
KDPC_DEFERRED_CONTEXT = 0x20
KDPC_SIZE = 0x40

# IRP fields of the cancel protocol (x64)
IRP_CANCEL = 0x44
IRP_CANCEL_IRQL = 0x45
IRP_CANCEL_ROUTINE = 0x68
IOSL_CONTROL = 0x03
IOSL_FILE_OBJECT = 0x30
SL_PENDING_RETURNED = 0x01

PASSIVE_LEVEL = 0
APC_LEVEL = 1
DISPATCH_LEVEL = 2

EVENTS_ARGC = {
    "KeAcquireSpinLockRaiseToDpc": 1,
    "KeReleaseSpinLock": 2,
    "KeInitializeDpc": 3,
    "KeInsertQueueDpc": 3,
    "KeRemoveQueueDpc": 1,
    "KeFlushQueuedDpcs": 0,
    "KeQuerySystemTimePrecise": 1,
    "IoReleaseCancelSpinLock": 1,
    "KeAreApcsDisabled": 0,
    "KeEnterCriticalRegion": 0,
    "KeLeaveCriticalRegion": 0,
}

# Documented maximum IRQL of each routine (learn.microsoft.com,
# windows-hardware/drivers/ddi/), merged into kernel_model.IRQL_RULES.
EVENTS_IRQL_RULES = {
    "KeAcquireSpinLockRaiseToDpc": (DISPATCH_LEVEL, "wdm/nf-wdm-keacquirespinlockraisetodpc"),
    "KeReleaseSpinLock": (DISPATCH_LEVEL, "wdm/nf-wdm-kereleasespinlock"),
    "KeInitializeDpc": (15, "wdm/nf-wdm-keinitializedpc (any level)"),
    "KeInsertQueueDpc": (15, "wdm/nf-wdm-keinsertqueuedpc (any level)"),
    "KeRemoveQueueDpc": (15, "wdm/nf-wdm-keremovequeuedpc (any level)"),
    "KeFlushQueuedDpcs": (PASSIVE_LEVEL, "wdm/nf-wdm-keflushqueueddpcs"),
    "KeQuerySystemTimePrecise": (15, "wdm/nf-wdm-kequerysystemtimeprecise (any level)"),
    "IoReleaseCancelSpinLock": (DISPATCH_LEVEL, "wdm/nf-wdm-ioreleasecancelspinlock"),
    "KeAreApcsDisabled": (15, "ntddk/nf-ntddk-keareapcsdisabled (any level)"),
    "KeEnterCriticalRegion": (APC_LEVEL, "ntddk/nf-ntddk-keentercriticalregion"),
    "KeLeaveCriticalRegion": (APC_LEVEL, "ntddk/nf-ntddk-keleavecriticalregion"),
}

# classifyFn and IRP_MJ_DEVICE_CONTROL dispatch do their work (policy read
# sections, the ring's windows, GET_POLICY's copy, the setter lock) with
# normal kernel APCs disabled: at PASSIVE_LEVEL with APCs enabled, every call
# but these is a violation (see the module documentation). The exceptions are
# the calls that establish the protection (the region calls; a spin lock
# raises to DISPATCH_LEVEL) and the completion, which comes after the work.
APC_EXEMPT_CALLS = {"KeAreApcsDisabled", "KeEnterCriticalRegion", "KeLeaveCriticalRegion",
                    "KeAcquireSpinLockRaiseToDpc", "IofCompleteRequest"}
IRP_MJ_DEVICE_CONTROL = 0x0E

# 2026-01-01T00:00:00Z in 100 ns units since 1601.
SYSTEM_TIME_START = 134_116_992_000_000_000
SYSTEM_TIME_STEP = 10


class EventsModelMixin:
    def init_events_state(self) -> None:
        self.spin_locks: dict[int, dict] = {}  # address -> {"held": bool, "by": label}
        self.dpcs: dict[int, dict] = {}  # KDPC address -> {"routine", "context", "queued"}
        self.dpc_runs: list[dict] = []
        self.cancel_lock_held = False
        self.cancel_lock_releases = 0
        self.completed_irps: dict[int, int] = {}  # IRP -> completions
        self.system_time = SYSTEM_TIME_START
        self.time_queries: list[int] = []
        # Nothing after the last completion (see the module documentation).
        self.outstanding_irps: set[int] = set()
        self.after_last_completion: dict | None = None
        self.post_completion_touches: list[str] = []
        self.watch_extra_ranges: list[tuple[int, int, str]] = []  # image writable sections (set by the harness)
        self._watch_hooks: list = []
        # Critical regions.
        self.critical_depth = 0
        self.dispatch_major: int | None = None  # IRP_MJ_* of the dispatch call running (set by the harness)

    # ----------------------------------------------------------- spin locks
    def _KeAcquireSpinLockRaiseToDpc(self, emu, mem, call, orig, argv):
        lock = argv[0]
        call.args = {"SpinLock": hex(lock)}
        st = self.spin_locks.setdefault(lock, {"held": False, "by": None})
        if st["held"]:
            self.violation(call, "SpinLock", f"{lock:#x} is already held (by {st['by']}): this CPU would spin forever")
        st["held"], st["by"] = True, call.label
        old, self.irql = self.irql, DISPATCH_LEVEL
        return old

    def _KeReleaseSpinLock(self, emu, mem, call, orig, argv):
        lock, irql = argv[0], argv[1] & 0xFF
        call.args = {"SpinLock": hex(lock), "NewIrql": irql}
        st = self.spin_locks.get(lock)
        if st is None or not st["held"]:
            self.violation(call, "SpinLock", f"{lock:#x} is not held")
            return None
        st["held"], st["by"] = False, None
        self.irql = irql
        return None

    # ------------------------------------------------------------------ DPCs
    def _KeInitializeDpc(self, emu, mem, call, orig, argv):
        dpc, routine, ctx = argv[0], argv[1], argv[2]
        call.args = {"Dpc": hex(dpc), "DeferredRoutine": hex(routine), "DeferredContext": hex(ctx)}
        if not dpc or not routine:
            self.violation(call, "Dpc/DeferredRoutine", "null pointer")
            return None
        if self.dpcs.get(dpc, {}).get("queued"):
            self.violation(call, "Dpc", f"{dpc:#x} re-initialised while queued")
        mem.write(dpc, b"\0" * KDPC_SIZE)
        mem.w64(dpc + KDPC_DEFERRED_ROUTINE, routine)
        mem.w64(dpc + KDPC_DEFERRED_CONTEXT, ctx)
        self.dpcs[dpc] = {"routine": routine, "context": ctx, "queued": False, "call": call.label}
        return None

    def _KeInsertQueueDpc(self, emu, mem, call, orig, argv):
        dpc = argv[0]
        call.args = {"Dpc": hex(dpc), "SystemArgument1": hex(argv[1]), "SystemArgument2": hex(argv[2])}
        d = self.dpcs.get(dpc)
        if d is None:
            self.violation(call, "Dpc", f"{dpc:#x} was never initialised with KeInitializeDpc")
            return 0
        if d["queued"]:
            return 0
        d["queued"] = True
        d["args"] = (argv[1], argv[2])
        return 1

    def _KeRemoveQueueDpc(self, emu, mem, call, orig, argv):
        dpc = argv[0]
        call.args = {"Dpc": hex(dpc)}
        d = self.dpcs.get(dpc)
        if d is None:
            self.violation(call, "Dpc", f"{dpc:#x} was never initialised")
            return 0
        was = d["queued"]
        d["queued"] = False
        return 1 if was else 0

    def _KeFlushQueuedDpcs(self, emu, mem, call, orig, argv):
        queued = [hex(a) for a, d in self.dpcs.items() if d["queued"]]
        call.args = {"queued_dpcs": queued}
        if queued:
            self.violation(call, "(none)", f"DPCs {queued} still queued: the model cannot run them inside the flush; "
                                           "remove them with KeRemoveQueueDpc first")
        return None

    def queued_dpcs(self) -> list[tuple[int, dict]]:
        return [(a, d) for a, d in self.dpcs.items() if d["queued"]]

    # ------------------------------------------------------- time, cancel
    def _KeQuerySystemTimePrecise(self, emu, mem, call, orig, argv):
        out = argv[0]
        self.system_time += SYSTEM_TIME_STEP
        call.args = {"CurrentTime": hex(out), "model_time": self.system_time}
        if not out:
            self.violation(call, "CurrentTime", "null pointer")
            return None
        mem.w64(out, self.system_time)
        self.time_queries.append(self.system_time)
        return None

    def _IoReleaseCancelSpinLock(self, emu, mem, call, orig, argv):
        irql = argv[0] & 0xFF
        call.args = {"Irql": irql}
        if not self.cancel_lock_held:
            self.violation(call, "Irql", "the cancel spin lock is not held")
            return None
        self.cancel_lock_held = False
        self.cancel_lock_releases += 1
        self.irql = irql
        return None

    # ------------------------------------------------------ critical regions
    def _KeAreApcsDisabled(self, emu, mem, call, orig, argv):
        disabled = self.irql >= APC_LEVEL or self.critical_depth > 0
        call.args = {"model_irql": self.irql, "critical_depth": self.critical_depth}
        return 1 if disabled else 0

    def _KeEnterCriticalRegion(self, emu, mem, call, orig, argv):
        self.critical_depth += 1
        call.args = {"depth": self.critical_depth}
        return None

    def _KeLeaveCriticalRegion(self, emu, mem, call, orig, argv):
        call.args = {"depth": self.critical_depth}
        if self.critical_depth == 0:
            self.violation(call, "(none)", "KeLeaveCriticalRegion without a matching KeEnterCriticalRegion")
            return None
        self.critical_depth -= 1
        return None

    def check_apcs(self, call, api: str) -> None:
        """A shared section's work with normal kernel APCs enabled (see the module documentation)."""
        in_request = self.phase == "classify" or (self.phase == "dispatch" and self.dispatch_major == IRP_MJ_DEVICE_CONTROL)
        if api not in APC_EXEMPT_CALLS and in_request and self.irql == PASSIVE_LEVEL and self.critical_depth == 0:
            self.violation(call, "APC", f"{api} in {self.phase} at PASSIVE_LEVEL with normal kernel APCs enabled: "
                                        "a thread suspended here stalls every other user of the shared section "
                                        "(enter a critical region, or run at DISPATCH_LEVEL)")

    def end_of_driver_call(self, what: str) -> None:
        """The harness calls this when a driver call returns."""
        if self.critical_depth:
            self.violation(what, "(none)", f"returned inside {self.critical_depth} critical region(s) "
                                           "(KeEnterCriticalRegion without KeLeaveCriticalRegion)")
            self.critical_depth = 0
        self._unwatch()

    # ------------------------------------------- nothing after the last completion
    def irp_dispatched(self, irp: int) -> None:
        self.outstanding_irps.add(irp)

    def _watch_after_completion(self, emu, call, irp: int) -> None:
        if self.phase in ("DriverUnload", "DPC") or self.outstanding_irps:
            return
        self.after_last_completion = {"call": call.label, "irp": irp, "phase": self.phase}
        def tag(t):
            return t if isinstance(t, str) else int(t).to_bytes(4, "little").decode("latin-1")

        ranges = [(a, a + b["size"], f"pool block {a:#x} (tag {tag(b['tag'])!r}, from {b['call']})")
                  for a, b in self.pool.items()]
        ranges += self.watch_extra_ranges

        def touched(kind):
            def cb(se, access, addr, size, value):
                if self.after_last_completion is None:
                    return True
                what = next((w for a, e, w in ranges if a <= addr < e), hex(addr))
                self.post_completion_touches.append(f"{kind} {addr:#x} ({what})")
                return True
            return cb

        for a, e, _ in ranges:
            if e > a:
                self._watch_hooks.append(emu.add_mem_read_hook(touched("read"), begin=a, end=e - 1))
                self._watch_hooks.append(emu.add_mem_write_hook(touched("write"), begin=a, end=e - 1))

    def check_after_completion(self, call, api: str) -> None:
        """Every hooked call: none may come after the last completion."""
        if self.after_last_completion is not None:
            c = self.after_last_completion
            self.violation(call, "(none)", f"{api} called after {c['call']} completed the last outstanding IRP "
                                           f"{c['irp']:#x}: an unload may already have run")

    def _unwatch(self) -> None:
        c = self.after_last_completion
        if c is not None and self.post_completion_touches:
            touches = self.post_completion_touches
            more = f" (+{len(touches) - 5} more)" if len(touches) > 5 else ""
            self.violation(f"{c['call']} ({c['phase']})", "(none)",
                           f"driver memory touched after the last outstanding IRP {c['irp']:#x} was completed "
                           f"(an unload may already have freed it): {', '.join(touches[:5])}{more}")
        for h in self._watch_hooks:
            try:
                h.disable()
            except Exception:
                pass
        self._watch_hooks = []
        self.after_last_completion = None
        self.post_completion_touches = []

    # ------------------------------------------------------------- checks
    def check_completion(self, mem, call, irp: int) -> None:
        n = self.completed_irps.get(irp, 0) + 1
        self.completed_irps[irp] = n
        if n > 1:
            self.violation(call, "Irp", f"IRP {irp:#x} completed {n} times")
        routine = mem.u64(irp + IRP_CANCEL_ROUTINE)
        if routine:
            self.violation(call, "Irp", f"IRP {irp:#x} completed with its cancel routine {routine:#x} still set "
                                        "(bug check 0x48 CANCEL_STATE_IN_COMPLETED_IRP)")

    def check_free(self, call, addr: int, size: int) -> None:
        end = addr + size
        for a, d in self.dpcs.items():
            if addr <= a < end and d["queued"]:
                self.violation(call, "P", f"frees pool holding DPC {a:#x} that is still queued (use after free when it runs)")
        for a, st in self.spin_locks.items():
            if addr <= a < end and st["held"]:
                self.violation(call, "P", f"frees pool holding spin lock {a:#x} that is still held (by {st['by']})")
