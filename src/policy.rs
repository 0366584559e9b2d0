//! The active policy and how it is replaced.
//!
//! The active policy is one pool allocation ([`ActivePolicy`]) holding the
//! blob exactly as user mode sent it, its compiled lookup structure, one hit
//! counter per rule, and its generation. It is published to classifyFn
//! through `wfp_km::rcu::Rcu`: classify reads it on any CPU at up to
//! DISPATCH_LEVEL without waiting; [`PolicyStore::set`] builds the
//! replacement completely at PASSIVE_LEVEL (copy, decode, compile, allocate
//! the counters — every allocation fallible, in non-paged NX pool), and only
//! then publishes it and frees the previous one after the grace period. Any
//! error leaves the active policy exactly as it was.
//!
//! An empty blob clears the policy (monitor mode: every connection is
//! permitted, as before Weir had policies); the cleared state is itself a
//! published `ActivePolicy` without a compiled policy, so the generation and
//! the (empty) blob are always read together.
//!
//! Generations: 0 until the first successful set, then +1 for every
//! successful set (clears included). Sets are serialised by `setting`.
//!
//! Shared sections, and why no suspended thread can stall them (a thread
//! stopped by `SuspendThread` or a debugger receives a normal kernel APC):
//!
//! - the read section ([`PolicyStore::read`], an RCU read): in classifyFn at
//!   DISPATCH_LEVEL, or inside the critical region the kernel boundary
//!   enters when the engine classifies at PASSIVE_LEVEL; in the IOCTLs
//!   (GET_STATS, GET_POLICY's copy of up to 64 MiB, SET_POLICY's `log_all`
//!   update) inside the dispatch routine's critical region. A reader stuck
//!   there would make every SET_POLICY wait forever for its grace period.
//! - the setter lock (`setting`, and the grace-period wait inside it): only
//!   SET_POLICY and unload take it, both inside a critical region (the
//!   dispatch routine's; DriverUnload's thread is the system's), so a setter
//!   cannot be suspended while the others wait for it.
//!
//! The kernel boundary (`src/kernel.rs`) enters the regions; this module
//! needs nothing of its own.
//!
//! Sources: each published policy records where it came from
//! ([`SOURCE_STORED`]: the stored policy file, read at DriverEntry or on
//! RELOAD_POLICY; [`SOURCE_THIS_RUN`]: a SET_POLICY blob; [`SOURCE_NONE`]:
//! cleared), when it was loaded and the SHA-256 of its blob. The stored file
//! goes through [`PolicyStore::load_stored`]: the stored form's header and
//! checksum (`weir_abi::stored`), then the very same decode and compile as
//! SET_POLICY. Every refusal (missing, unreadable, truncated, corrupted,
//! over the limit, newer format, a blob the decoder or compiler refuses)
//! is recorded as an NTSTATUS that GET_POLICY_STATUS reports ("stored policy
//! refused: <status>") and leaves the active policy as it was.

use crate::classify::Decision;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use weir_abi::policy_status::{PolicyStatus, SOURCE_NONE, SOURCE_STORED, SOURCE_THIS_RUN};
use weir_abi::status as abi_status;
use weir_abi::stored;
use weir_policy::wire::DecodeError;
use weir_policy::{limits, CompileError, CompiledPolicy, Query, Verdict};
use wfp_km::rcu::Rcu;
use wfp_km::NtStatus;

extern crate alloc;
use alloc::vec::Vec;

/// The owner the active policy lives in: non-paged pool in the kernel, the
/// heap in host tests.
#[cfg(not(test))]
pub type Holder = wfp_km::pool::PoolBox<ActivePolicy>;
#[cfg(test)]
pub type Holder = wfp_km::rcu::host::HeapBox<ActivePolicy>;

#[cfg(not(test))]
fn hold(p: ActivePolicy) -> Result<Holder, NtStatus> {
    wfp_km::pool::PoolBox::try_new(p)
}
#[cfg(test)]
fn hold(p: ActivePolicy) -> Result<Holder, NtStatus> {
    Ok(wfp_km::rcu::host::HeapBox(std::boxed::Box::new(p)))
}

/// What the writer does between checks of the grace period: sleep 1 ms
/// (PASSIVE_LEVEL) in the kernel, yield in host tests.
fn writer_wait() {
    #[cfg(all(target_os = "windows", not(test)))]
    wfp_km::irp::sleep_ms(1);
    #[cfg(not(all(target_os = "windows", not(test))))]
    std::thread::yield_now();
}

/// The current system time (100 ns since 1601 UTC): the kernel's clock, a
/// counter in host tests.
fn now() -> u64 {
    #[cfg(all(target_os = "windows", not(test)))]
    return wfp_km::sync::system_time_precise();
    #[cfg(not(all(target_os = "windows", not(test))))]
    {
        static CLOCK: AtomicU64 = AtomicU64::new(133_000_000_000_000_000);
        CLOCK.fetch_add(10_000_000, Ordering::Relaxed)
    }
}

/// One published policy.
pub struct ActivePolicy {
    generation: u64,
    /// `SOURCE_*` of `weir_abi::policy_status`.
    source: u32,
    /// System time of the publication.
    loaded_at: u64,
    /// SHA-256 of `blob` (zero when cleared).
    sha256: [u8; 32],
    /// The blob as received (empty when cleared).
    blob: Vec<u8>,
    /// `None`: cleared (monitor mode).
    compiled: Option<CompiledPolicy>,
    /// Per rule, by index: its id, name and how many connections it decided.
    rules: Vec<RuleSlot>,
    /// Every rule's name, UTF-8, one after the other (`RuleSlot::name`
    /// says where): kept for the ETW `Connection` event's `RuleName`.
    names: Vec<u8>,
    set_count: u32,
    /// Default actions `[outbound, inbound]`.
    defaults: [weir_policy::Action; 2],
}

/// A rule's id, name and hit counter.
pub struct RuleSlot {
    pub id: u32,
    pub hits: AtomicU64,
    /// Where the name is in `ActivePolicy::names`: offset and length (a
    /// name is at most `MAX_RULE_NAME_BYTES`, 255).
    name: (u32, u8),
}

impl ActivePolicy {
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// `SOURCE_*` of `weir_abi::policy_status`.
    pub fn source(&self) -> u32 {
        self.source
    }

    pub fn rules(&self) -> &[RuleSlot] {
        &self.rules
    }

    /// The name of the rule at `index` (empty: the rule has none; `None`:
    /// no such rule). IRQL: any (non-paged, no allocation).
    pub fn rule_name(&self, index: u32) -> Option<&str> {
        let slot = self.rules.get(usize::try_from(index).ok()?)?;
        let (at, len) = (usize::try_from(slot.name.0).ok()?, usize::from(slot.name.1));
        // Built from `String`s split at their own boundaries: always UTF-8.
        core::str::from_utf8(self.names.get(at..at.checked_add(len)?)?).ok()
    }

    /// Decides `query` and counts the deciding rule's hit. Monitor mode
    /// (cleared) permits without a rule. IRQL <= DISPATCH_LEVEL: no
    /// allocation, no waiting.
    pub fn decide(&self, query: &Query<'_>) -> Decision {
        let Some(compiled) = &self.compiled else { return Decision::monitor() };
        let verdict: Verdict = compiled.lookup(query);
        if let Some(slot) = verdict.rule_index.and_then(|i| usize::try_from(i).ok()).and_then(|i| self.rules.get(i)) {
            slot.hits.fetch_add(1, Ordering::Relaxed);
        }
        Decision::from_verdict(&verdict)
    }

    /// The default action of `direction` (for classifications whose tuple is
    /// incomplete, so that no rule can be evaluated).
    pub fn default_decision(&self, direction: weir_policy::Direction) -> Decision {
        if self.compiled.is_none() {
            return Decision::monitor();
        }
        let [outbound, inbound] = self.defaults;
        Decision::default_action(match direction {
            weir_policy::Direction::Outbound => outbound,
            weir_policy::Direction::Inbound => inbound,
        })
    }
}

/// Outcome of a successful set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetOutcome {
    pub generation: u64,
    pub rule_count: u32,
    pub set_count: u32,
}

/// The active policy slot and its writer state.
pub struct PolicyStore {
    active: Rcu<Holder>,
    generation: AtomicU64,
    setting: AtomicBool,
    /// NTSTATUS (as u32) of the last stored-policy read; 0: loaded.
    stored_status: AtomicU32,
    /// System time of the last stored-policy read.
    stored_read_at: AtomicU64,
    /// Stored-policy reads since start.
    stored_reads: AtomicU32,
}

/// What reading the stored policy file gave: its bytes, or why there are
/// none (the file routines' status, or a size over the limit).
pub type StoredRead = Result<Vec<u8>, wfp_km::file::ReadError>;

/// The largest stored file accepted: the header plus the largest blob.
pub const MAX_STORED_BYTES: usize = stored::STORED_HEADER_SIZE + limits::MAX_BLOB_BYTES;

/// The driver's policy store, read by classifyFn and written by the
/// control device.
pub static STORE: PolicyStore = PolicyStore::new();

/// Maps a decode error to the control device's status: out of memory is
/// `STATUS_INSUFFICIENT_RESOURCES`, everything else Weir's
/// `0xE057_0000 | DecodeError::code()`.
pub fn decode_status(e: &DecodeError) -> NtStatus {
    match e {
        DecodeError::OutOfMemory => NtStatus::INSUFFICIENT_RESOURCES,
        other => status(abi_status::policy_decode_status(other.code())),
    }
}

/// Maps a compile error: memory, or [`abi_status::STATUS_WEIR_POLICY_COMPILE`].
pub fn compile_status(e: &CompileError) -> NtStatus {
    match e {
        CompileError::OutOfMemory => NtStatus::INSUFFICIENT_RESOURCES,
        CompileError::Invalid(_) => status(abi_status::STATUS_WEIR_POLICY_COMPILE),
    }
}

fn status(raw: u32) -> NtStatus {
    NtStatus(i32::from_ne_bytes(raw.to_ne_bytes()))
}

impl PolicyStore {
    pub const fn new() -> Self {
        Self {
            active: Rcu::new(),
            generation: AtomicU64::new(0),
            setting: AtomicBool::new(false),
            stored_status: AtomicU32::new(0),
            stored_read_at: AtomicU64::new(0),
            stored_reads: AtomicU32::new(0),
        }
    }

    /// The GET_POLICY_STATUS reply. IRQL <= DISPATCH_LEVEL.
    pub fn status(&self) -> PolicyStatus {
        let mut s = PolicyStatus {
            stored_status: self.stored_status.load(Ordering::Acquire),
            stored_read_at: self.stored_read_at.load(Ordering::Relaxed),
            stored_reads: self.stored_reads.load(Ordering::Acquire),
            ..PolicyStatus::default()
        };
        self.read(|p| {
            if let Some(p) = p {
                s.generation = p.generation;
                s.source = p.source;
                s.loaded_at = p.loaded_at;
                s.blob_sha256 = p.sha256;
                s.blob_len = p.blob.len() as u64;
                s.rule_count = u32::try_from(p.rules.len()).unwrap_or(u32::MAX);
            }
        });
        s
    }

    /// Takes the stored policy: `file` is what reading the stored policy
    /// file gave. Checks the stored form (header, length, limit, SHA-256),
    /// then decodes and compiles the payload exactly as [`PolicyStore::set`]
    /// does, and publishes it with source "stored". Records the outcome for
    /// GET_POLICY_STATUS either way. On any refusal the active policy is
    /// unchanged. PASSIVE_LEVEL.
    pub fn load_stored(&self, file: StoredRead) -> Result<SetOutcome, NtStatus> {
        let result = match file {
            Ok(bytes) => self.publish_stored(bytes),
            Err(wfp_km::file::ReadError::Status(s)) => Err(s),
            Err(wfp_km::file::ReadError::TooLarge { .. }) => Err(status(abi_status::STATUS_WEIR_POLICY_TOO_LARGE)),
            Err(wfp_km::file::ReadError::OutOfMemory { .. }) => Err(NtStatus::INSUFFICIENT_RESOURCES),
        };
        let code = match &result {
            Ok(_) => 0,
            Err(s) => u32::from_ne_bytes(s.raw().to_ne_bytes()),
        };
        self.stored_read_at.store(now(), Ordering::Relaxed);
        self.stored_status.store(code, Ordering::Release);
        self.stored_reads.fetch_add(1, Ordering::AcqRel);
        result
    }

    fn publish_stored(&self, mut bytes: Vec<u8>) -> Result<SetOutcome, NtStatus> {
        let payload_len = match stored::decode(&bytes, limits::MAX_BLOB_BYTES) {
            Ok((header, _)) => header.payload_len,
            Err(e) => return Err(status(e.status())),
        };
        if payload_len == 0 {
            // Storing nothing is not how a policy is cleared (`weirctl
            // policy clear` deletes the file): an empty payload is refused.
            return Err(status(abi_status::policy_decode_status(1)));
        }
        // The payload becomes the policy's own copy: move it to the front
        // instead of allocating a second buffer of up to 64 MiB.
        bytes.drain(..stored::STORED_HEADER_SIZE);
        self.replace(Blob::Owned(bytes), SOURCE_STORED)
    }

    /// Calls `f` with the active policy (`None` before the first set).
    /// IRQL <= DISPATCH_LEVEL; never waits.
    pub fn read<R>(&self, f: impl FnOnce(Option<&ActivePolicy>) -> R) -> R {
        self.active.read(f)
    }

    /// Whether the event log records every connection: in monitor mode (no
    /// policy, or a cleared one) yes; with a policy only blocks, rules marked
    /// `log` and the policy's own `log_all` (folded into the rules' verdicts).
    /// Every publication (stored policy at DriverEntry, SET_POLICY,
    /// RELOAD_POLICY) passes this to `EventLog::set_log_all`.
    /// IRQL <= DISPATCH_LEVEL; never waits.
    pub fn log_all(&self) -> bool {
        self.read(|p| p.is_none_or(|p| p.blob().is_empty()))
    }

    /// Replaces the active policy with `blob` (empty: clear). PASSIVE_LEVEL.
    ///
    /// Errors (the active policy is then unchanged):
    /// `STATUS_WEIR_POLICY_TOO_LARGE` above `limits::MAX_BLOB_BYTES`;
    /// `0xE057_0000 | DecodeError::code()` for a malformed blob;
    /// `STATUS_WEIR_POLICY_COMPILE`; `STATUS_INSUFFICIENT_RESOURCES`.
    pub fn set(&self, blob: &[u8]) -> Result<SetOutcome, NtStatus> {
        self.replace(Blob::Borrowed(blob), SOURCE_THIS_RUN)
    }

    fn replace(&self, blob: Blob<'_>, source: u32) -> Result<SetOutcome, NtStatus> {
        if blob.len() > limits::MAX_BLOB_BYTES {
            return Err(status(abi_status::STATUS_WEIR_POLICY_TOO_LARGE));
        }
        // Serialise setters so generations follow publication order.
        while self.setting.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            writer_wait();
        }
        let result = self.build_and_publish(blob, source);
        self.setting.store(false, Ordering::Release);
        result
    }

    fn build_and_publish(&self, blob: Blob<'_>, source: u32) -> Result<SetOutcome, NtStatus> {
        let generation = self.generation.load(Ordering::Relaxed).wrapping_add(1);
        let next = if blob.len() == 0 {
            ActivePolicy {
                generation,
                source: SOURCE_NONE,
                loaded_at: now(),
                sha256: [0; 32],
                blob: Vec::new(),
                compiled: None,
                rules: Vec::new(),
                names: Vec::new(),
                set_count: 0,
                defaults: [weir_policy::Action::Permit; 2],
            }
        } else {
            build(blob, generation, source)?
        };
        let outcome = SetOutcome {
            generation,
            rule_count: u32::try_from(next.rules.len()).unwrap_or(u32::MAX),
            set_count: next.set_count,
        };
        let holder = hold(next)?;
        let old = self.active.replace(Some(holder), writer_wait);
        self.generation.store(generation, Ordering::Relaxed);
        // The grace period is over: nobody can read `old` any more.
        drop(old);
        Ok(outcome)
    }

    /// Frees the active policy. PASSIVE_LEVEL, after classifyFn can no
    /// longer be called (callouts unregistered) and no request is in flight.
    pub fn release(&self) {
        while self.setting.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            writer_wait();
        }
        drop(self.active.replace(None, writer_wait));
        self.setting.store(false, Ordering::Release);
    }
}

impl Default for PolicyStore {
    fn default() -> Self {
        Self::new()
    }
}

/// A blob to publish: borrowed from a request (copied before use) or
/// already owned (the stored file's payload).
enum Blob<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Blob<'_> {
    fn len(&self) -> usize {
        match self {
            Blob::Borrowed(b) => b.len(),
            Blob::Owned(v) => v.len(),
        }
    }

    /// The policy's own copy of the bytes.
    fn into_owned(self) -> Result<Vec<u8>, NtStatus> {
        match self {
            Blob::Owned(v) => Ok(v),
            Blob::Borrowed(b) => {
                let mut copy = Vec::new();
                copy.try_reserve_exact(b.len()).map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)?;
                copy.extend_from_slice(b);
                Ok(copy)
            }
        }
    }
}

/// Copies, decodes and compiles `blob`; hashes it; allocates the hit counters.
fn build(blob: Blob<'_>, generation: u64, source: u32) -> Result<ActivePolicy, NtStatus> {
    // METHOD_BUFFERED: the system buffer is overwritten by the reply, so
    // keep our own copy (byte-identical for GET_POLICY).
    let copy = blob.into_owned()?;
    let policy = weir_policy::wire::decode(&copy).map_err(|e| decode_status(&e))?;
    let compiled = CompiledPolicy::compile(&policy).map_err(|e| compile_status(&e))?;
    let mut rules = Vec::new();
    rules.try_reserve_exact(policy.rules.len()).map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)?;
    let mut names = Vec::new();
    names
        .try_reserve_exact(policy.rules.iter().map(|r| r.name.len()).sum())
        .map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)?;
    for r in &policy.rules {
        // The decoder enforces MAX_RULE_NAME_BYTES (255) and MAX_BLOB_BYTES
        // bounds the total; a name past either is dropped, not truncated.
        let name = match (u32::try_from(names.len()), u8::try_from(r.name.len())) {
            (Ok(at), Ok(len)) => {
                names.extend_from_slice(r.name.as_bytes());
                (at, len)
            }
            _ => (0, 0),
        };
        rules.push(RuleSlot { id: r.id, hits: AtomicU64::new(0), name });
    }
    let set_count = u32::try_from(policy.sets.len()).unwrap_or(u32::MAX);
    // `policy` (the decoded model) is dropped here: lookups use `compiled`.
    let defaults = [policy.default_outbound, policy.default_inbound];
    let sha256 = stored::sha256(&copy);
    Ok(ActivePolicy { generation, source, loaded_at: now(), sha256, blob: copy, compiled: Some(compiled), rules, names, set_count, defaults })
}

#[cfg(test)]
mod tests;
