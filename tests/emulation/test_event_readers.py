"""Several readers of the event stream on the real image: every handle that reads IOCTL_WEIR_READ_EVENTS has its
own cursor over the ring, so each sees every event (from the oldest the ring held at its first read on); a slow
reader loses only its own events, counted in its own dropped-events record; at most MAX_READERS handles read at
once (the next gets STATUS_WEIR_TOO_MANY_READERS); IRP_MJ_CLEANUP or IRP_MJ_CLOSE of one handle frees its slot and
leaves the others alone; the pool balances at unload.

On a driver whose readers share one queue (main before per-reader cursors) the two-reader tests fail: each event
goes to one read only."""

import events_wire as W
import harness
import layouts as L

RING_CAPACITY = 512
MAX_READERS = 16
STATUS_WEIR_TOO_MANY_READERS = 0xE057_4001
BIG = 64 * 1024
LAYER = L.LAYERS[0]


def handle(n: int) -> int:
    """The name of user-mode handle n (the harness makes one FILE_OBJECT per name)."""
    return 0xFFFF_A000_0001_0000 + 0x100 * n


A, B, C = handle(1), handle(2), handle(3)


def read(driver, fo, out_len=BIG):
    return driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_READ_EVENTS, out_len=out_len, file_object=fo)


def records(driver, r) -> list[dict]:
    info = driver.mem.u64(r.irp + L.IRP_IO_STATUS_INFORMATION)
    buf = driver.mem.ptr(r.irp + L.IRP_SYSTEM_BUFFER)
    return W.decode(driver.mem.read(buf, info)) if info else []


def summary(recs: list[dict]) -> list:
    """Connection records as their process id, drop markers as ("dropped", count)."""
    return [e["process_id"] if e["kind"] == "connection" else ("dropped", e["count"]) for e in recs]


def drain(driver, fo) -> list:
    """Everything handle `fo` has waiting; the read that parks at the end is cancelled (its cursor stays)."""
    out = []
    while True:
        r = read(driver, fo)
        assert r.status in (L.STATUS_SUCCESS, L.STATUS_PENDING), L.status_name(r.status)
        if r.status == L.STATUS_PENDING:
            driver.cancel_irp(r.irp)
            return out
        out += summary(records(driver, r))


def start(driver, fo):
    """Handle `fo` starts reading on an empty stream: its first read parks, is cancelled, its cursor stays."""
    r = read(driver, fo)
    assert r.status == L.STATUS_PENDING, L.status_name(r.status)
    driver.cancel_irp(r.irp)


def classify(driver, *pids):
    for pid in pids:
        res = driver.classify(LAYER.layer_id, driver.values_for(LAYER), pid=pid)
        assert res.run.error is None, res.run.error


def statuses(driver, r) -> list[int]:
    return [c["status"] for c in driver.completions_of(r.irp)]


def test_two_handles_reading_both_see_every_event(driver):
    """Two parked reads of two handles are both completed by the DPC with the same event; later events, read
    without parking, reach both handles too, in order."""
    ck = harness.Checker("two readers")
    a, b = read(driver, A), read(driver, B)
    ck.eq((a.status, b.status), (L.STATUS_PENDING, L.STATUS_PENDING), "two reads on an empty stream", "statuses")
    classify(driver, 1)
    runs = driver.run_dpcs()
    ck.true(runs and all(x.error is None for x in runs), "DPC", f"no DPC run or a fault: {runs}")
    for name, r in (("A", a), ("B", b)):
        ck.eq(statuses(driver, r), [L.STATUS_SUCCESS], "event 1", f"{name}'s parked read completions")
        ck.eq(summary(records(driver, r)), [1], "event 1", f"{name}'s records")
    classify(driver, 2, 3)
    ck.eq(drain(driver, A), [2, 3], "events 2, 3", "handle A")
    ck.eq(drain(driver, B), [2, 3], "events 2, 3", "handle B")
    ck.done()
    driver.expect_clean()


def test_a_new_reader_starts_with_the_backlog_the_ring_holds(driver):
    """`weirctl events` without --follow shows what the ring holds: a handle's first read starts at the oldest
    event still in the ring, whatever other handles already read."""
    ck = harness.Checker("backlog")
    classify(driver, 1, 2)
    ck.eq(drain(driver, A), [1, 2], "handle A, first read", "records")
    classify(driver, 3)
    ck.eq(drain(driver, B), [1, 2, 3], "handle B, first read after A drained", "records")
    ck.eq(drain(driver, A), [3], "handle A again", "records (its cursor continued)")
    ck.done()
    driver.expect_clean()


def test_a_slow_reader_loses_only_its_own_events_and_sees_its_count(driver):
    """Handle A stops reading while RING_CAPACITY + 7 events are recorded; handle B keeps up. B gets every event
    and no drop marker; A gets a dropped-events record of 7 first, then the newest RING_CAPACITY events. classify
    dropped nothing (the statistics' event_drops stays 0)."""
    ck = harness.Checker("slow reader")
    start(driver, A)
    start(driver, B)
    extra = 7
    total = RING_CAPACITY + extra
    got_b = []
    for lo in range(0, total, 100):
        classify(driver, *range(lo, min(lo + 100, total)))
        got_b += drain(driver, B)
    ck.eq(got_b, list(range(total)), "fast reader B", "records (every event, no marker)")
    got_a = drain(driver, A)
    ck.eq(got_a[:1], [("dropped", extra)], "slow reader A", "first record")
    ck.eq(got_a[1:], list(range(extra, total)), "slow reader A", "the newest events, in order")
    ck.eq(drain(driver, B), [], "fast reader B after A's read", "records (A's loss is not B's)")
    stats = driver.stats(ck)
    if stats is not None:
        ck.eq(stats["event_drops"], 0, "IOCTL_WEIR_GET_STATS", "event_drops (classify dropped nothing)")
    ck.done()
    driver.expect_clean()


def test_past_the_reader_bound_a_new_handle_gets_a_clear_status(driver):
    """MAX_READERS handles hold cursors; the next handle's read is completed at once with
    STATUS_WEIR_TOO_MANY_READERS, its buffer untouched. Closing one handle (IRP_MJ_CLEANUP) frees a slot, and
    IRP_MJ_CLOSE alone (Wine sends no cleanup) does too."""
    ck = harness.Checker("reader bound")
    for n in range(MAX_READERS):
        start(driver, handle(10 + n))
    extra = handle(50)
    r = read(driver, extra)
    ck.eq(r.status, STATUS_WEIR_TOO_MANY_READERS, f"read of handle {MAX_READERS + 1}", "status")
    ck.eq([(c["status"]) for c in r.completions], [STATUS_WEIR_TOO_MANY_READERS], "refused read", "completions")
    ck.eq(r.information, 0, "refused read", "Information")
    classify(driver, 1)
    ck.eq(drain(driver, handle(10)), [1], "a handle inside the bound", "records")
    c = driver.irp(L.IRP_MJ_CLEANUP, file_object=handle(10))
    ck.eq(c.status, L.STATUS_SUCCESS, "IRP_MJ_CLEANUP of one reader", "status")
    ck.eq(drain(driver, extra), [1], "the extra handle after a cleanup", "records (it got the freed slot)")
    another = handle(51)
    ck.eq(read(driver, another).status, STATUS_WEIR_TOO_MANY_READERS, "one more handle", "status (bound again)")
    cl = driver.irp(L.IRP_MJ_CLOSE, file_object=handle(11))
    ck.eq(cl.status, L.STATUS_SUCCESS, "IRP_MJ_CLOSE (no cleanup) of one reader", "status")
    ck.eq(drain(driver, another), [1], "one more handle after a close", "records")
    ck.done()
    u = driver.unload()
    driver.expect_no_fault(u)
    ck2 = harness.Checker("reader bound, unload")
    ck2.eq(driver.model.leaks(), [], "DriverUnload with 16 cursors held", "leaks")
    ck2.done()
    driver.expect_clean()


def test_cleanup_of_one_handle_leaves_the_other_intact(driver):
    """Handle A's IRP_MJ_CLEANUP completes A's parked read and frees A's cursor; B's parked read stays and gets the
    next event; a read racing A's cleanup is refused; the pool balances at unload."""
    ck = harness.Checker("cleanup of one reader")
    classify(driver, 1)
    ck.eq(drain(driver, A), [1], "A", "backlog")
    ck.eq(drain(driver, B), [1], "B", "backlog")
    a, b = read(driver, A), read(driver, B)
    c = driver.irp(L.IRP_MJ_CLEANUP, file_object=A)
    ck.eq(c.status, L.STATUS_SUCCESS, "IRP_MJ_CLEANUP (A)", "status")
    ck.eq(statuses(driver, a), [L.STATUS_CANCELLED], "cleanup of A", "A's parked read")
    ck.eq(statuses(driver, b), [], "cleanup of A", "B's parked read (must stay parked)")
    classify(driver, 2)
    driver.run_dpcs()
    ck.eq(statuses(driver, b), [L.STATUS_SUCCESS], "event 2", "B's parked read")
    ck.eq(summary(records(driver, b)), [2], "event 2", "B's records")
    late = read(driver, A)
    ck.eq(late.status in (L.STATUS_CANCELLED, L.STATUS_SUCCESS), True, "a read of A after its cleanup",
          f"status {L.status_name(late.status)} (never parked)")
    driver.irp(L.IRP_MJ_CLOSE, file_object=A)
    classify(driver, 3)
    ck.eq(drain(driver, B), [3], "B after A's close", "records")
    ck.done()
    u = driver.unload()
    driver.expect_no_fault(u)
    ck2 = harness.Checker("cleanup of one reader, unload")
    ck2.eq(driver.model.leaks(), [], "DriverUnload", "leaks")
    ck2.done()
    driver.expect_clean()


def test_the_dpc_serves_every_parked_reader_once(driver):
    """Sixteen parked reads of sixteen handles (the parked-read bound) and one event: one DPC run completes all of
    them, each with that event, and queues nothing more."""
    ck = harness.Checker("one DPC, many readers")
    reads = [read(driver, handle(20 + n)) for n in range(16)]
    ck.eq({r.status for r in reads}, {L.STATUS_PENDING}, "16 reads", "statuses")
    classify(driver, 7)
    runs = driver.run_dpcs()
    ck.eq(len(runs), 1, "event", "DPC runs")
    ck.eq([statuses(driver, r) for r in reads], [[L.STATUS_SUCCESS]] * 16, "after the DPC", "completions")
    ck.eq({tuple(summary(records(driver, r))) for r in reads}, {(7,)}, "after the DPC", "records of every read")
    ck.eq(driver.model.queued_dpcs(), [], "after the DPC", "DPCs still queued")
    ck.done()
    driver.expect_clean()
