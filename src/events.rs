//! Connection events: recorded by classifyFn, read by user mode through
//! `IOCTL_WEIR_READ_EVENTS` with the inverted-call pattern. Every handle
//! that reads has its own cursor, so every reader sees every event.
//!
//! - **Recording** (classifyFn, any CPU, IRQL <= DISPATCH_LEVEL): the
//!   [`Event`] is encoded once (at most [`MAX_CONNECTION_SIZE`] bytes) and
//!   written once into the broadcast ring (`weir_events::EventRing`: one
//!   `fetch_add`, one compare-exchange, the word stores; never waits for a
//!   producer or a reader, never allocates). If a read is parked, the
//!   completion DPC is queued (`KeInsertQueueDpc`, any IRQL). Per recorded
//!   event classify pays: one `KeQuerySystemTimePrecise`, the encode, the
//!   ring write, one read-modify-write of the readers-waiting gate, and the
//!   DPC insert only when a reader waits. classify never touches the reader
//!   table or its lock.
//! - **Readers** (one per handle, that is per `FILE_OBJECT`): a handle's
//!   first `IOCTL_WEIR_READ_EVENTS` claims one of [`MAX_READERS`] cursor
//!   slots, preallocated with the log (non-paged). Its cursor starts at the
//!   oldest event the ring still holds (so `weirctl events` without
//!   `--follow` shows the recent backlog), then follows every later event.
//!   A reader that falls more than [`RING_CAPACITY`] events behind loses
//!   its own oldest unread events, reported to it alone in a dropped-events
//!   record at the front of its next reply; classify and the other readers
//!   are not affected. Past [`MAX_READERS`] handles a new reader's read is
//!   completed with `STATUS_WEIR_TOO_MANY_READERS` (0xE0574001), nothing
//!   read or taken. The slot is freed at the handle's `IRP_MJ_CLEANUP` (and
//!   again, idempotently, at `IRP_MJ_CLOSE`: a read racing the cleanup may
//!   claim a slot after it, and Wine sends only CLOSE).
//! - **Reading** (`IOCTL_WEIR_READ_EVENTS`, 0x804, METHOD_BUFFERED,
//!   FILE_READ_ACCESS, no input): the reply is as many whole records as fit
//!   from this handle's cursor (its dropped-events record first when it lost
//!   events). An output buffer smaller than [`MIN_READ_BUFFER`] gets
//!   `STATUS_BUFFER_TOO_SMALL` and reads nothing. With nothing new for the
//!   handle the request is pended (at most [`MAX_PENDING_READS`] at a time,
//!   all handles together; more get `STATUS_INSUFFICIENT_RESOURCES`) and
//!   completed by the DPC when events arrive.
//! - **Cancelling**: CancelIoEx and thread/process exit reach the cancel
//!   routine; IRP_MJ_CLEANUP of a handle completes that handle's parked
//!   reads and refuses any read of that handle that arrives later; unload
//!   completes all. Each completes a read exactly once with
//!   `STATUS_CANCELLED` (see `wfp_km::csq`), after all bookkeeping: once a
//!   read is completed nothing of the log is touched.
//!
//! Why the DPC, and not completing reads in classify: completing an IRP
//! runs I/O completion work (and possibly APC queueing) inside the network
//! stack's call; the DPC keeps classify's cost to the copy and moves
//! completion to one place at DISPATCH_LEVEL.
//!
//! # Shared state and why it is sound
//!
//! - The ring (`weir_events::broadcast`): producers and readers share only
//!   atomics; its protocol and loom model are in that module. Readers write
//!   no shared memory of the ring, so a reader preempted or suspended
//!   anywhere cannot stall a producer or another reader. A producer's
//!   claim-to-publish window runs at DISPATCH_LEVEL or inside the critical
//!   region the kernel boundary enters, as before.
//! - The reader table (`weir_events::ReaderTable`, cursors keyed by file
//!   object): every access holds its spin lock (`cursors`), so one handle's
//!   concurrent reads (overlapped I/O, or a dispatch read racing the DPC)
//!   use its cursor one at a time. A drain (at most [`MAX_DRAIN_BYTES`]
//!   copied) runs under it at DISPATCH_LEVEL; only readers wait on it.
//! - The parked reads (`wfp_km::csq::IrpQueue`, its own spin lock) and the
//!   readers-waiting gate. Lock order: the queue lock may be held while the
//!   table lock is taken (a read's "look again" inside `pend_unless`), never
//!   the reverse (no path takes the queue lock while holding the table
//!   lock), so the two cannot deadlock.
//! - No lost wake-up, per reader: a read that found nothing arms the gate,
//!   then (under the queue lock) looks again at *its own cursor*
//!   (`Broadcast::has_ready`) before it parks; a producer publishes, then
//!   asks the gate. Loom checks it with two readers and a broken variant
//!   that looks before arming (`crates/weir-events/tests/loom.rs`,
//!   `broadcast_every_parked_reader_with_a_record_ready_is_woken`).
//! - The DPC takes every parked read out at once (`IrpQueue::take_all`),
//!   drains each from its own cursor, and completes those that got records;
//!   one that got none (another read of its handle took them first) is
//!   parked again with the same look, and at most once more is retried, so
//!   a run does at most `2 * MAX_PENDING_READS` drains; it re-queues itself
//!   if a read it parked without a look has records. The reads are
//!   completed at the very end.

use crate::classify::Outcome;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use weir_events::{
    drain_cursor, encode_event, Event, EventRing, ReaderTable, WakeGate,
};
use wfp_km::csq::{IrpQueue, Pend, Waiters};
use wfp_km::dpc::Dpc;
use wfp_km::irp::{DeviceControl, Irp};
use wfp_km::pool::PoolBox;
use wfp_km::sync::critical::CriticalRegion;
use wfp_km::sync::SpinLock;
use wfp_km::{NtStatus, Result};

mod fields;
pub use fields::{event_for, Selection};

pub use weir_events::{MAX_CONNECTION_SIZE, MIN_READ_BUFFER};

/// `IOCTL_WEIR_READ_EVENTS` (`0x80576010`, defined in `weir-abi`).
pub use weir_abi::ioctl::IOCTL_WEIR_READ_EVENTS;

/// Events the ring holds (a power of two): 512 slots of 696 bytes (stamp,
/// dropped-position mark, length, 84 words), 348 KiB of non-paged pool.
pub const RING_CAPACITY: usize = 512;

/// Handles that can read at once, each with its own cursor (slots
/// preallocated with the log; `weir_abi::MAX_EVENT_READERS`).
pub const MAX_READERS: usize = weir_abi::status::MAX_EVENT_READERS;

/// Reads parked at once, all handles together.
pub const MAX_PENDING_READS: usize = 16;

/// The most one drain can write: a dropped-events marker and every event
/// the ring holds. Every drain views (and zeroes) at most this much of a
/// caller's buffer, whatever length user mode asked for, so its work (and
/// the time the reader table's lock is held) is bounded by the ring, not
/// by the caller.
pub const MAX_DRAIN_BYTES: usize = MIN_READ_BUFFER + RING_CAPACITY * MAX_CONNECTION_SIZE;

/// `STATUS_WEIR_TOO_MANY_READERS`: a new reader past [`MAX_READERS`].
pub const TOO_MANY_READERS: NtStatus = NtStatus::from_u32(weir_abi::status::STATUS_WEIR_TOO_MANY_READERS);

/// The driver setting "record every connection", on while no policy is
/// loaded (monitor mode: nothing would be recorded otherwise). The control
/// device turns it off when a policy is set and on again when it is cleared
/// (src/kernel.rs); with a policy, blocks and the connections the policy marks
/// for logging (a rule's `log`, or the policy's `log_all`, which `weir_policy`
/// folds into the verdict) are recorded.
pub const LOG_ALL_DEFAULT: bool = true;

/// The readers-waiting gate, kept by the IRP queue (armed before a read
/// looks at its cursor a last time, disarmed under the queue lock whenever
/// a read leaves it).
pub struct Gate(WakeGate);

impl Waiters for Gate {
    fn arm(&self) {
        self.0.arm();
    }
    fn disarm(&self) {
        self.0.disarm();
    }
}

/// The parked reads.
pub type Readers = IrpQueue<Gate, MAX_PENDING_READS>;

/// The event ring, the readers' cursors, the parked reads and the DPC that
/// completes them.
pub struct EventLog {
    /// Flushed first on drop (see `Drop`).
    dpc: Dpc,
    readers: Readers,
    cursors: SpinLock<ReaderTable<MAX_READERS>>,
    ring: EventRing,
    log_all: AtomicBool,
    recorded: AtomicU64,
    /// Set by unload before the DPC is flushed: the DPC no longer re-queues
    /// itself.
    closing: AtomicBool,
}

/// Reads to complete, collected while the log is still being used and
/// completed at the very end (nothing of the log is touched after a
/// completion: see `wfp_km::csq`).
struct Completions {
    done: [Option<(Irp, NtStatus, usize)>; MAX_PENDING_READS],
    len: usize,
}

impl Completions {
    fn new() -> Self {
        Self { done: [const { None }; MAX_PENDING_READS], len: 0 }
    }

    fn push(&mut self, irp: Irp, status: NtStatus, information: usize) {
        if let Some(slot) = self.done.get_mut(self.len) {
            *slot = Some((irp, status, information));
            self.len += 1;
        } else {
            // Not reached: the DPC takes at most MAX_PENDING_READS reads
            // and pushes each at most once. Completing here is still
            // correct, only not last.
            irp.complete(status, information);
        }
    }

    /// Completes them all; the caller touches nothing of the log after.
    fn complete_all(self) {
        for (irp, status, information) in self.done.into_iter().flatten() {
            irp.complete(status, information);
        }
    }
}

/// What one drain for one read found.
enum Drained {
    /// Records (bytes written).
    Some(usize),
    /// Nothing new for this handle (or it has no cursor: cleaned up).
    Nothing,
    /// Refused with this status.
    Refused(NtStatus),
}

impl EventLog {
    /// Allocates the ring (fallibly) in non-paged pool; the reader table
    /// is part of the log. Parked reads get `wfp_km::csq::cancel_routine`,
    /// which finds this log's queue through the IRP. The DPC still needs
    /// `Dpc::init` with this log as context (the kernel boundary does it)
    /// before reads can be woken by classify.
    pub fn try_new() -> Result<PoolBox<Self>> {
        // The log first, then its slots: on unload they are freed in the
        // reverse order.
        let mut log = PoolBox::try_new(Self {
            dpc: Dpc::new(),
            readers: IrpQueue::new(Gate(WakeGate::new())),
            cursors: SpinLock::new(ReaderTable::new()),
            ring: EventRing::unallocated(),
            log_all: AtomicBool::new(LOG_ALL_DEFAULT),
            recorded: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        })?;
        log.ring.allocate(RING_CAPACITY).map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)?;
        Ok(log)
    }

    /// The completion DPC, for `Dpc::init` at the kernel boundary.
    pub fn dpc(&self) -> &Dpc {
        &self.dpc
    }

    /// Records every connection (`true`) or only blocks and `log` rules.
    pub fn set_log_all(&self, on: bool) {
        self.log_all.store(on, Ordering::Relaxed);
    }

    /// Whether this classification is recorded (see [`Selection`]).
    pub fn wants(&self, outcome: &Outcome) -> bool {
        Selection { log_all: self.log_all.load(Ordering::Relaxed) }.wants(outcome)
    }

    /// classifyFn: writes `event` into the ring for every reader; wakes
    /// the DPC if a read is parked. Returns false when the write was
    /// dropped (a producer one lap earlier still held its slot; counted).
    /// Called with normal kernel APCs disabled (classifyFn at
    /// DISPATCH_LEVEL, or inside the critical region the kernel boundary
    /// enters at PASSIVE_LEVEL), so a suspended thread cannot stretch the
    /// ring's claim-to-publish window. IRQL: <= DISPATCH_LEVEL.
    #[inline(never)] // its encode buffer lives in its own frame, not in classify's during the ETW write
    pub fn record(&self, event: &Event) -> bool {
        let mut bytes = [0u8; MAX_CONNECTION_SIZE];
        let Ok(len) = encode_event(event, &mut bytes) else { return false };
        let written = self.ring.write(bytes.get(..len).unwrap_or(&[]));
        if written {
            self.recorded.fetch_add(1, Ordering::Relaxed);
        }
        // A dropped record wakes too: a reader parked at its position skips
        // it (counted lost) and goes on to later ones.
        if self.readers.waiters().0.should_wake() {
            self.dpc.queue();
        }
        written
    }

    /// Events recorded since load, and events no reader could get because
    /// classify dropped them (`Broadcast::collisions`). A reader's own
    /// losses are reported to it, not here.
    pub fn totals(&self) -> (u64, u64) {
        (self.recorded.load(Ordering::Relaxed), self.ring.collisions())
    }

    /// Whether the read of handle `file` would get something now (its
    /// cursor has a record or a loss to report). A handle without a cursor
    /// (cleaned up) has nothing. Takes the table lock.
    fn has_work_for(&self, file: usize) -> bool {
        let mut table = self.cursors.lock();
        table.find(file).is_some_and(|c| self.ring.has_ready(c))
    }

    /// One drain of `irp`'s handle's cursor into its buffer (at most
    /// [`MAX_DRAIN_BYTES`]), under the table lock. `claim`: a handle's
    /// first read takes a cursor slot (dispatch); the DPC only serves
    /// handles that have one.
    fn drain(&self, irp: &mut Irp, claim: bool) -> Drained {
        let file = irp.file_object();
        let len = irp
            .device_control()
            .and_then(|r| usize::try_from(r.output_len).ok())
            .unwrap_or(0)
            .min(MAX_DRAIN_BYTES);
        if file == 0 {
            // Every user-mode request has one; a cursor needs a handle.
            return Drained::Refused(NtStatus::INVALID_PARAMETER);
        }
        // Viewed (and zeroed) before the lock: the lock covers the copy only.
        let Some(out) = irp.buffered(len) else { return Drained::Refused(NtStatus::INVALID_PARAMETER) };
        let mut table = self.cursors.lock();
        let cursor = if claim {
            match table.claim(file, || self.ring.subscribe_oldest()) {
                Ok(cursor) => cursor,
                Err(_) => return Drained::Refused(TOO_MANY_READERS),
            }
        } else {
            match table.find(file) {
                Some(cursor) => cursor,
                None => return Drained::Nothing,
            }
        };
        match drain_cursor(&self.ring, cursor, out) {
            Err(_) => Drained::Refused(NtStatus::BUFFER_TOO_SMALL),
            Ok(0) => Drained::Nothing,
            Ok(n) => Drained::Some(n),
        }
    }

    /// `IOCTL_WEIR_READ_EVENTS`: completes `irp` with records for its
    /// handle, or parks it. Returns what the dispatch routine returns
    /// (`STATUS_PENDING` when parked; from then on nothing of the log is
    /// touched). IRQL: PASSIVE_LEVEL (dispatch); the drain runs under the
    /// table's spin lock, inside a critical region, the park under the
    /// queue's spin lock.
    pub fn read(&self, mut irp: Irp, request: DeviceControl) -> NtStatus {
        if request.input_len != 0 {
            return irp.complete(NtStatus::INVALID_PARAMETER, 0);
        }
        let len = usize::try_from(request.output_len).unwrap_or(0);
        if len < MIN_READ_BUFFER {
            return irp.complete(NtStatus::BUFFER_TOO_SMALL, 0);
        }
        let file = irp.file_object();
        loop {
            match CriticalRegion::run(|| self.drain(&mut irp, true)) {
                Drained::Some(n) => return irp.complete(NtStatus::SUCCESS, n),
                Drained::Refused(status) => return irp.complete(status, 0),
                Drained::Nothing => {}
            }
            // Arm, then look again at this handle's cursor under the queue
            // lock (the per-reader no-lost-wake-up handshake): an event
            // published in between is either seen there (the read is
            // handed back and drains again) or wakes the DPC, which finds
            // the read parked.
            irp = match self.readers.pend_unless(irp, || self.has_work_for(file)) {
                Pend::Parked => return NtStatus::PENDING,
                Pend::Ready(irp) => irp,
                Pend::Refused(irp, status) => return irp.complete(status, 0),
            };
        }
    }

    /// The DPC routine's body (DISPATCH_LEVEL): serves every parked read
    /// from its own handle's cursor. Bounded per run: at most
    /// [`MAX_PENDING_READS`] reads, each drained at most twice (at most
    /// [`MAX_DRAIN_BYTES`] each) and completed at most once. A read that
    /// got nothing is parked again with a last look; the second time
    /// without one, and if its handle then has records the DPC is queued
    /// again rather than leaving it waiting for the next event. The reads
    /// are completed at the very end, after every use of the log (the last
    /// one may let a deferred unload start; unload flushes this DPC, so
    /// its memory stays until this routine returns anyway).
    pub fn complete_waiting(&self) {
        let mut done = Completions::new();
        let mut requeue = false;
        for irp in self.readers.take_all().into_iter().flatten() {
            let file = irp.file_object();
            let mut irp = irp;
            for attempt in 0..2 {
                match self.drain(&mut irp, false) {
                    Drained::Some(n) => {
                        done.push(irp, NtStatus::SUCCESS, n);
                        break;
                    }
                    Drained::Refused(status) => {
                        // Checked when parked; unreachable for a well-formed IRP.
                        done.push(irp, status, 0);
                        break;
                    }
                    Drained::Nothing => {}
                }
                let last = attempt == 1;
                // Back in line, unless records came meanwhile (first time:
                // then drain again) or its handle was cleaned up (then it
                // completes).
                let pend = self.readers.pend_unless(irp, || !last && self.has_work_for(file));
                irp = match pend {
                    Pend::Parked => {
                        requeue |= last && self.has_work_for(file);
                        break;
                    }
                    Pend::Ready(irp) => irp,
                    Pend::Refused(irp, status) => {
                        done.push(irp, status, 0);
                        break;
                    }
                };
            }
        }
        if requeue && !self.closing.load(Ordering::Acquire) {
            self.dpc.queue();
        }
        done.complete_all();
    }

    /// `IRP_MJ_CLEANUP` of a handle: completes its parked reads, refuses
    /// any later one (see `wfp_km::csq`), and frees its cursor slot.
    /// IRQL: PASSIVE_LEVEL.
    pub fn cleanup(&self, cleanup: &Irp) {
        self.readers.cancel_file(cleanup);
        self.release(cleanup);
    }

    /// `IRP_MJ_CLOSE` (and the end of cleanup): frees the handle's cursor
    /// slot if it still has one. IRQL: PASSIVE_LEVEL.
    pub fn release(&self, irp: &Irp) {
        let file = irp.file_object();
        if file != 0 {
            self.cursors.lock().release(file);
        }
    }

    /// Handles holding a cursor slot (for tests and statistics).
    pub fn reader_count(&self) -> usize {
        self.cursors.lock().len()
    }
}

impl Drop for EventLog {
    /// Unload (PASSIVE_LEVEL, after the callouts are unregistered, so no
    /// classify runs): stop the DPC (twice: a run that started before
    /// `closing` was set may have queued it again), complete every parked
    /// read, wait for cancel routines already running to take theirs out,
    /// then the ring's memory goes.
    fn drop(&mut self) {
        self.closing.store(true, Ordering::Release);
        self.dpc.flush();
        self.dpc.flush();
        self.readers.cancel_all();
        while !self.readers.is_empty() {
            // A cancel routine owns the rest and is about to remove it.
            wfp_km::irp::sleep_ms(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_code_and_bounds() {
        assert_eq!(IOCTL_WEIR_READ_EVENTS, 0x8057_6010);
        assert_eq!(TOO_MANY_READERS.raw() as u32, 0xE057_4001);
        assert_eq!(MAX_READERS, 16);
        // One drain: a marker and every record the ring holds.
        assert_eq!(MAX_DRAIN_BYTES, 16 + 672 + 512 * 672);
    }
}
