"""Other CPUs, played inside one emulated driver call.

The emulator runs one thread. Some properties are about what another CPU does
while a driver routine is between two of its own instructions: a classify that
records an event while the completion DPC holds a read out of its queue, a
second reader that takes the records first. `Interleave` runs such calls
*inside* the running one, deterministically, at two kinds of points:

* **after a kernel call** the running routine makes (`after_api`): when the
  model's hook for that routine returns, the concurrent calls run as guest
  callbacks on the caller's stack (speakeasy's API-callback frames), then the
  kernel call returns to the driver as usual;
* **before an instruction** (`before_instruction`): a code hook at that
  address saves the CPU context, enters a model-only trap routine (as if the
  driver had called it), runs the concurrent calls there, and restores the
  saved context, so the driver resumes at the same instruction with every
  register as it was. This is how a producer on another CPU lands between two
  instructions with no kernel call between them (a ring's drain and the arm of
  its wake gate).

Each concurrent call runs with the model state of its own thread (phase, IRQL,
critical-region depth, dispatch major function) and the running routine's state
is restored after; spin locks, pool, DPCs and IRPs are shared, as on a real
machine. A concurrent call must not need a spin lock the interrupted routine
holds (the model reports "would spin forever": one CPU cannot wait for another
here), so points are chosen where the routine holds none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

TRAP_API = "WeirModelInterleavePoint"


@dataclass
class Job:
    """One concurrent call: a driver function, its arguments, and the model state it runs in."""

    what: str
    fn: int
    args: list[int]
    phase: str
    irql: int
    dispatch_major: int | None = None
    irp: int | None = None  # an IRP this call dispatches (outstanding until completed)
    ret: int | None = None
    done: bool = False


@dataclass
class _Frame:
    jobs: list[Job]
    saved: dict
    context: Any = None  # CPU context to restore (before_instruction points)
    resume_at: int | None = None


@dataclass
class Point:
    """Where concurrent calls are made and which: `make(point_index) -> list[Job]` (empty: none this time)."""

    make: Callable[[int], list[Job]]
    phase: str = ""
    only: Callable[[Any], bool] | None = None  # counts only the kernel calls it accepts (after_api)
    hits: int = 0
    jobs_run: list[Job] = field(default_factory=list)


class Interleave:
    def __init__(self, driver):
        self.driver = driver
        self.model = driver.model
        self.emu = driver.emu
        self.uc = self.emu.emu_eng.emu
        self.api_points: dict[tuple[str, str], Point] = {}
        self.code_points: dict[int, Point] = {}
        self._frames: dict[int, _Frame] = {}
        self._pending: tuple[Any, int, list[Job]] | None = None
        self._skip_once: int | None = None
        self._code_hooks: list = []
        self.errors: list[str] = []
        driver.se.add_api_hook(self._on_trap, "ntoskrnl", TRAP_API, argc=0)
        self.trap = self.emu.get_proc("ntoskrnl", TRAP_API)
        if not self.trap:
            raise AssertionError(f"speakeasy gave no trap address for ntoskrnl!{TRAP_API}")
        self._continue_orig = self.emu._continue_api_callback
        self.emu._continue_api_callback = self._continue
        self.model.after_call = self._after_call

    # --------------------------------------------------------------- points
    def after_api(self, api: str, phase: str, make: Callable[[int], list[Job]],
                  only: Callable[[Any], bool] | None = None) -> Point:
        """After each `api` call made in `phase` (and accepted by `only(call)`, given the model's `Call` with its
        arguments, when set), run `make(n)` (n: 1-based count of such calls)."""
        p = self.api_points[(api, phase)] = Point(make, phase, only)
        return p

    def before_instruction(self, address: int, phase: str, make: Callable[[int], list[Job]]) -> Point:
        """Each time `address` is about to execute in `phase`, run `make(n)` first."""
        p = self.code_points[address] = Point(make, phase)
        self._code_hooks.append(self.emu.add_code_hook(self._on_code, begin=address, end=address))
        # Code already translated would run without the new hook.
        self.uc.ctl_remove_cache(address, address + 1)
        return p

    # ------------------------------------------------------- model state
    def _state(self) -> dict:
        m = self.model
        return {"phase": m.phase, "irql": m.irql, "critical_depth": m.critical_depth, "dispatch_major": m.dispatch_major}

    def _set_state(self, st: dict) -> None:
        m = self.model
        m.phase, m.irql, m.critical_depth, m.dispatch_major = st["phase"], st["irql"], st["critical_depth"], st["dispatch_major"]

    def _enter(self, job: Job) -> None:
        self.model.begin_phase(job.phase)
        self._set_state({"phase": job.phase, "irql": job.irql, "critical_depth": 0, "dispatch_major": job.dispatch_major})
        if job.irp is not None:
            self.model.irp_dispatched(job.irp)

    def _leave(self, job: Job) -> None:
        job.ret = self.emu.get_return_val()
        job.done = True
        self.model.end_of_driver_call(f"{job.what} (concurrent)")

    # ------------------------------------------------------------ running
    def _start(self, frame, jobs: list[Job], context=None, resume_at=None) -> None:
        run = self.emu.get_current_run()
        self._frames[id(frame)] = _Frame(jobs, self._state(), context, resume_at)
        self._enter(jobs[0])
        self.emu.start_api_callback(frame, jobs[0].fn, jobs[0].args)
        run.api_callbacks.append(frame)

    def _after_call(self, emu, call) -> None:
        p = self.api_points.get((call.api, call.phase))
        if p is None or (p.only is not None and not p.only(call)):
            return
        p.hits += 1
        jobs = p.make(p.hits)
        if not jobs:
            return
        frame = self.emu._active_api_frame
        if frame is None or any(f is frame for f in self.emu.get_current_run().api_callbacks):
            self.errors.append(f"{call.label}: no free API frame to run concurrent calls on")
            return
        p.jobs_run += jobs
        self._start(frame, jobs)

    def _on_code(self, emu, address, size):
        if self._skip_once == address:
            self._skip_once = None
            return True
        p = self.code_points.get(address)
        if p is None or self.model.phase != p.phase or self._pending is not None:
            return True
        p.hits += 1
        jobs = p.make(p.hits)
        if not jobs:
            return True
        p.jobs_run += jobs
        import unicorn.x86_const as X

        ctx = self.uc.context_save()
        sp = self.uc.reg_read(X.UC_X86_REG_RSP) - 8
        self.uc.mem_write(sp, address.to_bytes(8, "little"))
        self.uc.reg_write(X.UC_X86_REG_RSP, sp)
        self._pending = (ctx, address, jobs)
        self.uc.reg_write(X.UC_X86_REG_RIP, self.trap)
        return True

    def _on_trap(self, emu, api_name, orig, argv):
        if self._pending is None:
            self.errors.append(f"{TRAP_API} entered without a pending interleave point")
            return 0
        ctx, address, jobs = self._pending
        self._pending = None
        self._start(self.emu._active_api_frame, jobs, context=ctx, resume_at=address)
        return 0

    def _continue(self):
        run = self.emu.get_current_run()
        frame = run.api_callbacks[-1] if run.api_callbacks else None
        rec = self._frames.get(id(frame)) if frame is not None else None
        if rec is None:
            return self._continue_orig()
        job = rec.jobs.pop(0)
        self._leave(job)
        if rec.jobs:
            nxt = rec.jobs[0]
            self._enter(nxt)
            self.emu.set_stack_ptr(frame.stack_pointer)
            self.emu.start_api_callback(frame, nxt.fn, nxt.args)
            return None
        self._set_state(rec.saved)
        del self._frames[id(frame)]
        run.api_callbacks.pop()
        if rec.context is not None:
            self.uc.context_restore(rec.context)
            self._skip_once = rec.resume_at
            return None
        self.emu.set_stack_ptr(frame.stack_pointer)
        self.emu.do_call_return(frame.argc, frame.return_address, frame.result, conv=frame.convention)
        return None

    def close(self) -> None:
        for h in self._code_hooks:
            try:
                h.disable()
            except Exception:
                pass
        self._code_hooks = []
        self.code_points.clear()
        self.api_points.clear()
        self.model.after_call = None
        self.emu._continue_api_callback = self._continue_orig


# ------------------------------------------------------------------ helpers
def classify_job(driver, layer, values, irql: int = 2) -> Job:
    fn, args = driver.build_classify(layer.layer_id, values)
    return Job(f"classifyFn(layer {layer.layer_id})", fn, args, "classify", irql)


def read_job(driver, code: int, out_len: int, file_object: int, major: int) -> Job:
    fn, irp, *_ = driver.build_irp(major, code=code, out_len=out_len, file_object=file_object)
    return Job(f"dispatch(READ_EVENTS) IRP {irp:#x}", fn, [driver.device_object(), irp], "dispatch", 0,
               dispatch_major=major, irp=irp)
