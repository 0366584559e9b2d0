//! Connection events: recorded by classifyFn, read by user mode through
//! `IOCTL_WEIR_READ_EVENTS` with the inverted-call pattern.
//!
//! - **Recording** (classifyFn, any CPU, IRQL <= DISPATCH_LEVEL): one copy of
//!   an [`Event`] (about 600 bytes) into a preallocated slot of the ring
//!   (`weir_events::Ring`: lock-free, never waits or allocates; full = the
//!   event is dropped and counted). If a read is parked, the completion DPC
//!   is queued (`KeInsertQueueDpc`, any IRQL). Per recorded event classify
//!   pays: one `KeQuerySystemTimePrecise`, the tuple/path copy, one
//!   compare-exchange on the ring's tail, one read-modify-write of the
//!   readers-waiting gate, and the DPC insert only when a reader waits.
//! - **Reading** (`IOCTL_WEIR_READ_EVENTS`, 0x804, METHOD_BUFFERED,
//!   FILE_READ_ACCESS, no input): the reply is as many whole records as fit
//!   (a dropped-events marker first when events were lost). An output buffer
//!   smaller than [`MIN_READ_BUFFER`] gets `STATUS_BUFFER_TOO_SMALL` and
//!   takes nothing from the ring. With nothing to report the request is
//!   pended (at most [`MAX_PENDING_READS`] at a time; more get
//!   `STATUS_INSUFFICIENT_RESOURCES`) and completed by the DPC when events
//!   arrive.
//! - **Cancelling**: CancelIoEx and thread/process exit reach the cancel
//!   routine; IRP_MJ_CLEANUP of a handle completes that handle's parked
//!   reads and refuses any read of that handle that arrives later; unload
//!   completes all. Each completes a read exactly once with
//!   `STATUS_CANCELLED` (see `wfp_km::csq`), after all bookkeeping: once a
//!   read is completed nothing of the log is touched.
//! - **Several readers share** the stream: each event goes to exactly one
//!   read request (the oldest parked one first). Run one reader per machine
//!   if every reader must see every event.
//!
//! Why the DPC, and not completing reads in classify: completing an IRP
//! runs I/O completion work (and possibly APC queueing) inside the network
//! stack's call; the DPC keeps classify's cost to the copy and moves
//! completion to one place at DISPATCH_LEVEL. The DPC routine and the IOCTL
//! path share only the ring (lock-free), the gate (atomic) and the IRP
//! queue (spin lock held across slot updates only).
//!
//! Shared sections and thread suspension: the ring's producer window (claim
//! a slot, publish it) runs in classifyFn at DISPATCH_LEVEL or, when the
//! engine classifies at PASSIVE_LEVEL, inside the critical region the
//! kernel boundary enters; its consumer window in the DPC (DISPATCH_LEVEL)
//! or in READ_EVENTS inside a critical region (`KeEnterCriticalRegion`), so
//! no thread can be suspended holding a slot; the queue's sections hold its
//! spin lock (DISPATCH_LEVEL).

use crate::classify::{Applied, Outcome};
use core::net::IpAddr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use weir_events::{drain_into, AppPath, Decision, Direction, Event, IpVersion, Ring, WakeGate};
use wfp_km::classify::{IncomingValues, Metadata};
use wfp_km::csq::{IrpQueue, Pend, Waiters};
use wfp_km::dpc::Dpc;
use wfp_km::irp::{DeviceControl, Irp};
use wfp_km::pool::PoolBox;
use wfp_km::sync::critical::CriticalRegion;
use wfp_km::sys::fwps::{ale_auth_connect_v4 as connect, ale_auth_recv_accept_v4 as accept};
use wfp_km::{NtStatus, Result};

pub use weir_events::{MAX_CONNECTION_SIZE, MIN_READ_BUFFER};

/// `IOCTL_WEIR_READ_EVENTS` (`0x80576010`, defined in `weir-abi`).
pub use weir_abi::ioctl::IOCTL_WEIR_READ_EVENTS;

/// Events the ring holds (a power of two): 512 × 608-byte slots, about
/// 304 KiB of non-paged pool.
pub const RING_CAPACITY: usize = 512;

/// Reads parked at once, all handles together.
pub const MAX_PENDING_READS: usize = 16;

/// The most one drain can write: a dropped-events marker and every event
/// the ring holds. The completion DPC views (and zeroes) at most this much
/// of a caller's buffer, whatever length user mode asked for, so its work
/// is bounded by the ring, not by the caller.
pub const MAX_DRAIN_BYTES: usize = MIN_READ_BUFFER + RING_CAPACITY * MAX_CONNECTION_SIZE;

/// Rounds of one DPC run before it re-queues itself (each round completes
/// a read, or finds its records taken by a concurrent read).
const DPC_ROUNDS: usize = 2 * MAX_PENDING_READS;

/// The driver setting "record every connection", on while no policy is
/// loaded (monitor mode: nothing would be recorded otherwise). The control
/// device turns it off when a policy is set and on again when it is cleared
/// (src/kernel.rs); with a policy, blocks and the connections the policy marks
/// for logging (a rule's `log`, or the policy's `log_all`, which `weir_policy`
/// folds into the verdict) are recorded.
pub const LOG_ALL_DEFAULT: bool = true;

/// The readers-waiting gate, kept by the IRP queue (armed before a read
/// looks at the ring a last time, disarmed under the queue lock whenever a
/// read leaves it).
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

/// The event ring, the parked reads and the DPC that completes them.
pub struct EventLog {
    /// Flushed first on drop (see `Drop`).
    dpc: Dpc,
    readers: Readers,
    ring: Ring<Event>,
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

    fn is_full(&self) -> bool {
        self.len >= self.done.len()
    }

    fn push(&mut self, irp: Irp, status: NtStatus, information: usize) {
        if let Some(slot) = self.done.get_mut(self.len) {
            *slot = Some((irp, status, information));
            self.len += 1;
        } else {
            // Not reached: callers check is_full first. Completing here is
            // still correct, only not last.
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

/// The part of a read's output buffer a drain uses: the caller's length,
/// at most [`MAX_DRAIN_BYTES`].
fn drain_len(irp: &Irp) -> usize {
    irp.device_control()
        .and_then(|r| usize::try_from(r.output_len).ok())
        .unwrap_or(0)
        .min(MAX_DRAIN_BYTES)
}

impl EventLog {
    /// Allocates the ring (fallibly) in non-paged pool. Parked reads get
    /// `wfp_km::csq::cancel_routine`, which finds this log's queue through
    /// the IRP. The DPC still needs `Dpc::init` with this log as context
    /// (the kernel boundary does it) before reads can be woken by classify.
    pub fn try_new() -> Result<PoolBox<Self>> {
        // The log first, then its slots: on unload they are freed in the
        // reverse order.
        let mut log = PoolBox::try_new(Self {
            dpc: Dpc::new(),
            readers: IrpQueue::new(Gate(WakeGate::new())),
            ring: Ring::unallocated(),
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

    /// classifyFn: copies `event` into the ring; wakes a parked read.
    /// Returns false when the ring was full (the event is counted as
    /// dropped). Called with normal kernel APCs disabled (classifyFn at
    /// DISPATCH_LEVEL, or inside the critical region the kernel boundary
    /// enters at PASSIVE_LEVEL), so a suspended thread cannot stretch the
    /// ring's claim-to-publish window.
    pub fn record(&self, event: &Event) -> bool {
        if !self.ring.push(*event) {
            return false;
        }
        self.recorded.fetch_add(1, Ordering::Relaxed);
        if self.readers.waiters().0.should_wake() {
            self.dpc.queue();
        }
        true
    }

    /// Events recorded and dropped since load.
    pub fn totals(&self) -> (u64, u64) {
        (self.recorded.load(Ordering::Relaxed), self.ring.dropped_total())
    }

    fn has_work(&self) -> bool {
        self.ring.has_ready() || self.ring.has_dropped()
    }

    /// `IOCTL_WEIR_READ_EVENTS`: completes `irp` with records, or parks it.
    /// Returns what the dispatch routine returns (`STATUS_PENDING` when
    /// parked; from then on nothing of the log is touched). PASSIVE_LEVEL
    /// (dispatch); the drain (the ring's consumer window) runs in a
    /// critical region, the park under the queue's spin lock.
    pub fn read(&self, mut irp: Irp, request: DeviceControl) -> NtStatus {
        if request.input_len != 0 {
            return irp.complete(NtStatus::INVALID_PARAMETER, 0);
        }
        let len = usize::try_from(request.output_len).unwrap_or(0);
        if len < MIN_READ_BUFFER {
            return irp.complete(NtStatus::BUFFER_TOO_SMALL, 0);
        }
        loop {
            // The ring's consumer window, at PASSIVE_LEVEL: in a critical
            // region, left before any completion.
            let drained = CriticalRegion::run(|| irp.buffered(len.min(MAX_DRAIN_BYTES)).map(|b| drain_into(&self.ring, b)));
            match drained {
                None => return irp.complete(NtStatus::INVALID_PARAMETER, 0),
                Some(Ok(0)) => {}
                Some(Ok(n)) => return irp.complete(NtStatus::SUCCESS, n),
                Some(Err(_)) => return irp.complete(NtStatus::BUFFER_TOO_SMALL, 0),
            }
            // Arm, then look again under the queue lock (WakeGate's
            // protocol): an event recorded in between is either seen there
            // (the read is handed back and drains again) or wakes the DPC,
            // which finds the read parked.
            irp = match self.readers.pend_unless(irp, || self.has_work()) {
                Pend::Parked => return NtStatus::PENDING,
                Pend::Ready(irp) => irp,
                Pend::Refused(irp, status) => return irp.complete(status, 0),
            };
        }
    }

    /// The DPC routine's body (DISPATCH_LEVEL): completes parked reads
    /// while records are waiting. Bounded per run (at most
    /// `DPC_ROUNDS` rounds and [`MAX_PENDING_READS`] completions, each
    /// drain at most [`MAX_DRAIN_BYTES`]); when it stops with records left,
    /// the DPC is queued again rather than leaving a reader waiting for the
    /// next event. The reads are
    /// completed at the very end, after every use of the log (the last one
    /// may let a deferred unload start; unload flushes this DPC, so its
    /// memory stays until this routine returns anyway).
    pub fn complete_waiting(&self) {
        let mut done = Completions::new();
        // A read handed back by `pend_unless` because records came.
        let mut current: Option<Irp> = None;
        let mut rounds = 0;
        loop {
            if rounds >= DPC_ROUNDS {
                // Out of rounds: park a read still in hand without a last
                // look (this run is about to be queued again, and that run
                // looks), and come back.
                if let Some(irp) = current.take() {
                    match self.readers.pend_unless(irp, || false) {
                        Pend::Parked => {}
                        // Not reached: `|| false` never hands it back.
                        Pend::Ready(irp) => done.push(irp, NtStatus::CANCELLED, 0),
                        // Its handle was cleaned up, or the queue is full.
                        Pend::Refused(irp, status) => done.push(irp, status, 0),
                    }
                }
                if self.has_work() && !self.closing.load(Ordering::Acquire) {
                    self.dpc.queue();
                }
                break;
            }
            let irp = match current.take() {
                Some(irp) => irp,
                None if !self.has_work() => break,
                None if done.is_full() => {
                    // Records left and maybe readers parked meanwhile: come
                    // back after these completions.
                    if !self.closing.load(Ordering::Acquire) {
                        self.dpc.queue();
                    }
                    break;
                }
                None => match self.readers.next() {
                    Some(irp) => irp,
                    None => break,
                },
            };
            rounds += 1;
            let mut irp = irp;
            let len = drain_len(&irp);
            match irp.buffered(len).map(|b| drain_into(&self.ring, b)) {
                Some(Ok(n)) if n > 0 => done.push(irp, NtStatus::SUCCESS, n),
                // Another read took the records first: back in line, unless
                // records came meanwhile (then drain again) or its handle
                // was cleaned up (then it completes).
                Some(Ok(_)) => match self.readers.pend_unless(irp, || self.has_work()) {
                    Pend::Parked => {}
                    Pend::Ready(irp) => current = Some(irp),
                    Pend::Refused(irp, status) => done.push(irp, status, 0),
                },
                // Checked when parked; unreachable for a well-formed IRP.
                Some(Err(_)) | None => done.push(irp, NtStatus::INVALID_PARAMETER, 0),
            }
        }
        done.complete_all();
    }

    /// `IRP_MJ_CLEANUP` of a handle: completes its parked reads and refuses
    /// any later one (see `wfp_km::csq`).
    pub fn cleanup(&self, cleanup: &Irp) {
        self.readers.cancel_file(cleanup);
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

/// Which classifications produce an event.
#[derive(Clone, Copy, Debug)]
pub struct Selection {
    /// The driver setting: record every connection.
    pub log_all: bool,
}

impl Selection {
    /// Every block, every classification the policy marks for logging (a
    /// rule's `log`, or the policy's `log_all`), everything with `log_all`.
    pub fn wants(&self, outcome: &Outcome) -> bool {
        outcome.applied == Applied::Blocked || outcome.decision.is_some_and(|d| d.log) || self.log_all
    }
}

/// The event for one classification. `time` is the system time (100 ns
/// units since 1601).
pub fn event_for(outcome: &Outcome, values: &IncomingValues<'_>, meta: Option<&Metadata<'_>>, time: u64) -> Event {
    let layer = outcome.layer;
    let app_id = if layer.is_outbound() { connect::ALE_APP_ID } else { accept::ALE_APP_ID };
    let path = values
        .byte_blob(app_id)
        .or_else(|| meta.and_then(Metadata::process_path))
        .map_or(AppPath::EMPTY, AppPath::from_utf16le_bytes);
    let mut event = Event {
        time,
        layer_id: layer.layer_id(),
        direction: if layer.is_outbound() { Direction::Outbound } else { Direction::Inbound },
        ip_version: if layer.is_ipv6() { IpVersion::V6 } else { IpVersion::V4 },
        tuple: false,
        protocol: 0,
        local_addr: [0; 16],
        local_port: 0,
        remote_addr: [0; 16],
        remote_port: 0,
        process_id: outcome.process_id,
        path,
        decision: match outcome.applied {
            Applied::Permitted => Decision::Permit,
            Applied::Blocked => Decision::Block,
            Applied::WriteRightAbsent => Decision::WriteRightAbsent,
        },
        rule_id: outcome.decision.and_then(|d| d.rule).map(|(_, id)| id),
        reauthorization: outcome.reauthorization,
    };
    if let Some(c) = outcome.connection {
        event.tuple = true;
        event.protocol = c.protocol;
        event.local_addr = address_bytes(c.local);
        event.local_port = c.local_port;
        event.remote_addr = address_bytes(c.remote);
        event.remote_port = c.remote_port;
    }
    event
}

/// Network byte order; IPv4 in the first four bytes.
fn address_bytes(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(v6) => v6.octets(),
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            if let Some(dst) = b.get_mut(..4) {
                dst.copy_from_slice(&v4.octets());
            }
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{on_classify, Counters, Decision as PolicyDecision, FWP_CONDITION_FLAG_IS_REAUTHORIZE};
    use crate::policy::PolicyStore;
    use weir_policy::Action;
    use wfp_km::ale::AleLayer;
    use wfp_km::classify::testing::{Classification, Value};
    use wfp_km::sys::fwps::FWPS_RIGHT_ACTION_WRITE;

    fn v6_values(flags: u32) -> Vec<Value> {
        let local = "fe80::1".parse::<core::net::Ipv6Addr>().unwrap().octets();
        let remote = "2001:db8::2".parse::<core::net::Ipv6Addr>().unwrap().octets();
        let mut v = vec![Value::Empty, Value::Empty, Value::Bytes16(local), Value::Empty, Value::U16(5353), Value::U8(17), Value::Bytes16(remote), Value::U16(53)];
        v.resize(12, Value::Empty);
        v.push(Value::U32(flags)); // index 12: FLAGS at the connect layers
        v
    }

    const APP: &[u16] = &[0x5c, 0x64, 0x5c, 0x61, 0x2e, 0x65, 0x78, 0x65]; // \d\a.exe

    #[test]
    fn ioctl_code() {
        assert_eq!(IOCTL_WEIR_READ_EVENTS, 0x8057_6010);
    }

    #[test]
    fn event_fields_from_a_v6_connect_reauthorization() {
        let counters = Counters::new();
        let store = PolicyStore::new();
        let mut values = v6_values(FWP_CONDITION_FLAG_IS_REAUTHORIZE);
        values[0] = Value::Utf16(APP);
        let mut c = Classification::new(50, &values).rights(FWPS_RIGHT_ACTION_WRITE).process_id(77);
        let e = c.run(|values, meta, filter, out| {
            let o = on_classify(&counters, &store, values, meta, filter, out).unwrap();
            event_for(&o, values, meta, 1234)
        });
        assert_eq!(e.layer_id, 50);
        assert_eq!(e.direction, Direction::Outbound);
        assert_eq!(e.ip_version, IpVersion::V6);
        assert!(e.tuple);
        assert_eq!((e.protocol, e.local_port, e.remote_port), (17, 5353, 53));
        assert_eq!(e.remote_addr, "2001:db8::2".parse::<core::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(e.process_id, Some(77));
        assert_eq!(e.decision, Decision::Permit);
        assert_eq!(e.rule_id, None);
        assert!(e.reauthorization);
        assert_eq!(e.time, 1234);
        assert_eq!(e.path.units(), APP);
    }

    #[test]
    fn v4_accept_without_write_right_or_tuple() {
        let counters = Counters::new();
        let store = PolicyStore::new();
        let mut c = Classification::new(44, &[Value::Empty]);
        let e = c.run(|values, meta, filter, out| {
            let o = on_classify(&counters, &store, values, meta, filter, out).unwrap();
            event_for(&o, values, meta, 0)
        });
        assert_eq!((e.direction, e.ip_version), (Direction::Inbound, IpVersion::V4));
        assert!(!e.tuple && !e.reauthorization);
        assert_eq!(e.decision, Decision::WriteRightAbsent);
        assert_eq!(e.local_addr, [0; 16]);
        assert!(e.path.is_empty());
    }

    fn outcome(applied: Applied, decision: Option<PolicyDecision>) -> Outcome {
        Outcome {
            layer: AleLayer::ConnectV4,
            connection: None,
            process_id: None,
            reauthorization: false,
            decision,
            applied,
            permitted: applied == Applied::Permitted,
        }
    }

    #[test]
    fn block_and_rule_ids_map_to_the_record() {
        let o = outcome(Applied::Blocked, Some(PolicyDecision::rule(Action::Block, 3, 42, false)));
        // SAFETY-free: event_for only reads the views, an empty classification suffices.
        let mut c = Classification::new(48, &[]);
        let e = c.run(|values, meta, _, _| event_for(&o, values, meta, 0));
        assert_eq!((e.decision, e.rule_id), (Decision::Block, Some(42)));
    }

    /// Which classifications are recorded, with the driver setting off: every
    /// block, and what the policy marks for logging (a rule's `log`, or
    /// `log_all` folded into the verdict); with it on, everything.
    #[test]
    fn recording_rules() {
        let log = Selection { log_all: false };
        let permit_rule = PolicyDecision::rule(Action::Permit, 0, 7, false);
        let permit_logged = PolicyDecision::rule(Action::Permit, 0, 7, true);
        assert!(log.wants(&outcome(Applied::Blocked, Some(PolicyDecision::default_action(Action::Block)))));
        assert!(log.wants(&outcome(Applied::Permitted, Some(permit_logged))));
        assert!(!log.wants(&outcome(Applied::Permitted, Some(permit_rule))));
        assert!(!log.wants(&outcome(Applied::Permitted, Some(PolicyDecision::monitor()))));
        assert!(!log.wants(&outcome(Applied::WriteRightAbsent, None)));
        let all = Selection { log_all: true };
        assert!(all.wants(&outcome(Applied::WriteRightAbsent, None)));
        assert!(all.wants(&outcome(Applied::Permitted, Some(permit_rule))));
    }

    #[test]
    fn ipv4_addresses_fill_the_first_four_bytes() {
        let b = address_bytes(IpAddr::V4(core::net::Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(&b[..4], &[10, 1, 2, 3]);
        assert!(b[4..].iter().all(|x| *x == 0));
    }
}
