"""The completion DPC against other CPUs (interleave.py): a reader and a producer running between its steps.

Issue 15: the DPC gave up after its rounds without queuing itself again, so a parked read whose records arrived
while the DPC held it out of the queue waited for the next event. Such records wake nobody (no read is parked
when they are recorded, so classify does not queue the DPC); only the DPC's own look under the queue lock sees
them, and when that look comes in the read's last attempt, only a re-queue brings the DPC back.

Every handle reads from its own cursor (issue 18), so the only reader that can take a parked read's records
first is another read of the same handle (overlapped I/O): that is the "thief" here.
"""

from unicorn.x86_const import UC_X86_REG_RIP

import harness
import layouts as L
from interleave import Interleave, Job, classify_job, read_job
from test_events import BIG, FO_A, _values, read, reply

# complete_waiting's bound: a DPC run drains each parked read at most twice (src/events.rs).
ATTEMPTS = 2


def _steal(driver) -> Job:
    """A second READ_EVENTS of the parked read's handle, from another CPU: takes what that handle's cursor has."""
    return read_job(driver, L.IOCTL_WEIR_READ_EVENTS, BIG, FO_A, L.IRP_MJ_DEVICE_CONTROL)


def _queue_lock(calls) -> int:
    """The parked reads' queue lock, from the calls of a read that parked: the lock held while the other (the
    reader table's) is taken, the order src/events.rs documents (the "look again" under the queue lock)."""
    held: list[int] = []
    outer = set()
    for c in calls:
        if c.api == "KeAcquireSpinLockRaiseToDpc":
            outer.update(held)
            held.append(int(c.args["SpinLock"], 16))
        elif c.api == "KeReleaseSpinLock":
            lock = int(c.args["SpinLock"], 16)
            if lock in held:
                held.remove(lock)
    assert len(outer) == 1, f"a parking read nests exactly one lock around another: {[hex(x) for x in outer]}"
    return outer.pop()


def _releases_of(lock: int):
    return lambda call: int(call.args.get("SpinLock", "0"), 16) == lock


def _find_arm(driver, il: Interleave, log: int, size: int) -> tuple[int, int, int]:
    """The instruction with which the DPC arms the wake gate before parking a read again (no kernel call lies
    between the DPC's drain and this arm, so it is the point where a producer's record wakes nobody).

    Found by watching the log's memory: park a read (the gate's counter is one of the words that go 0 -> 1),
    then make the DPC put a read back (a read of the same handle on another CPU takes the records the moment the
    DPC let go of the queue lock) and take the address of the write to such a word made while no spin lock is
    held. Returns (that address, the parked read's IRP, the queue lock)."""
    mem = driver.mem
    before = mem.read(log, size)
    start = len(driver.model.calls)
    parked = read(driver, fo=FO_A)
    assert parked.status == L.STATUS_PENDING
    queue_lock = _queue_lock(driver.model.calls[start:])
    after = mem.read(log, size)
    words = [log + i for i in range(0, size - 7, 8)
             if int.from_bytes(before[i:i + 8], "little") == 0 and int.from_bytes(after[i:i + 8], "little") == 1]
    assert words, "no word of the event log went 0 -> 1 when a read parked"
    writes = []

    def on_write(emu, access, addr, sz, value):
        if driver.model.phase == "DPC" and not any(st["held"] for st in driver.model.spin_locks.values()):
                writes.append((il.uc.reg_read(UC_X86_REG_RIP), addr))
        return True

    hooks = [driver.emu.add_mem_write_hook(on_write, begin=w, end=w + 7) for w in words]
    layer = L.LAYERS[0]
    driver.classify(layer.layer_id, _values(driver, layer))
    steal = il.after_api("KeReleaseSpinLock", "DPC", lambda n: [_steal(driver)] if n == 1 else [],
                         only=_releases_of(queue_lock))
    runs = driver.run_dpcs()
    for h in hooks:
        h.disable()
    il.api_points.clear()
    assert runs and all(r.error is None for r in runs), runs
    assert [j.done for j in steal.jobs_run] == [True]
    assert [c["status"] for c in driver.completions_of(steal.jobs_run[0].irp)] == [L.STATUS_SUCCESS], \
        "the second read of the handle took the record"
    assert driver.completions_of(parked.irp) == [], "the parked read went back in line"
    arms = sorted({pc for pc, _ in writes})
    assert len(arms) == 1, f"writes to the gate word outside the queue lock in the DPC: {[hex(a) for a in arms]}"
    return arms[0], parked.irp, queue_lock


def test_the_completion_dpc_queues_itself_again_when_out_of_rounds(driver):
    """One parked read R, and two CPUs besides the DPC: a second read of R's handle that takes the records each
    time the DPC lets go of the queue lock (so the DPC's drain finds nothing), and a producer that records an
    event each time the DPC is about to arm the gate to put R back (R is out of the queue: the record wakes
    nobody, and the DPC's look under the lock hands R back). For R's ATTEMPTS attempts; then both stop, with R
    out of attempts and one record for its handle in the ring. The DPC must park R and queue itself again; that
    run completes R with the record, without any new event."""
    il = Interleave(driver)
    try:
        # DriverEntry allocates the driver state, then the event log, then its ring slots.
        log = int(driver.model.calls_in("DriverEntry", "ExAllocatePool2")[1].args["returned"], 16)
        arm, r_irp, queue_lock = _find_arm(driver, il, log, driver.model.pool[log]["size"])
        layer = L.LAYERS[0]
        steals = il.after_api("KeReleaseSpinLock", "DPC",
                              lambda n: [_steal(driver)] if n <= ATTEMPTS else [], only=_releases_of(queue_lock))
        produces = il.before_instruction(arm, "DPC",
                                         lambda n: [classify_job(driver, layer, _values(driver, layer))] if n <= ATTEMPTS else [])
        driver.classify(layer.layer_id, _values(driver, layer))  # wakes the DPC for the parked read
        start = len(driver.model.calls)
        assert len(driver.model.queued_dpcs()) == 1
        first = driver.run_dpcs()
        il.close()
        ck = harness.Checker("completion DPC out of rounds")
        ck.true(first and first[0].error is None, "DPC routine", f"faulted: {first}")
        ck.eq(il.errors, [], "interleave", "errors")
        ck.eq(len(produces.jobs_run), ATTEMPTS, "producer on another CPU", "events recorded while the DPC held R")
        ck.eq(len(steals.jobs_run), ATTEMPTS, "reader on another CPU", "reads that took the records first")
        stolen = [driver.completions_of(j.irp) for j in steals.jobs_run]
        ck.true(all([c["status"] for c in s] == [L.STATUS_SUCCESS] for s in stolen), "reader on another CPU",
                f"every read completed at once with records: {stolen}")
        during = driver.model.calls[start:]
        ck.eq([c.label for c in during if c.api == "KeInsertQueueDpc" and c.phase == "classify"], [],
              "producer on another CPU", "DPC insertions by its classifies (they wake nobody: R was out of the queue)")
        ck.eq(driver.completions_of(r_irp), [], "R after the first DPC run", "completions (it ran out of rounds)")
        requeued = [c.label for c in during if c.api == "KeInsertQueueDpc" and c.phase == "DPC"]
        ck.true(driver.model.queued_dpcs() != [], "end of the DPC run",
                "the DPC ran out of rounds with R parked and a record in the ring, and did not queue itself again "
                f"(KeInsertQueueDpc calls from the DPC: {requeued}): R waits for the next event")
        ck.done()
        second = driver.run_dpcs()
        assert second and all(r.error is None for r in second), second
        assert [c["status"] for c in driver.completions_of(r_irp)] == [L.STATUS_SUCCESS]
        assert len(reply(driver, r_irp)) == 1, "the record recorded in the last round"
    finally:
        il.close()
    driver.expect_clean()

