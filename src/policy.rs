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

use crate::classify::Decision;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use weir_abi::status as abi_status;
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

/// One published policy.
pub struct ActivePolicy {
    generation: u64,
    /// The blob as received (empty when cleared).
    blob: Vec<u8>,
    /// `None`: cleared (monitor mode).
    compiled: Option<CompiledPolicy>,
    /// Per rule, by index: its id and how many connections it decided.
    rules: Vec<RuleSlot>,
    set_count: u32,
    /// Default actions `[outbound, inbound]`.
    defaults: [weir_policy::Action; 2],
}

/// A rule's id and hit counter.
pub struct RuleSlot {
    pub id: u32,
    pub hits: AtomicU64,
}

impl ActivePolicy {
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    pub fn rules(&self) -> &[RuleSlot] {
        &self.rules
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
}

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
        Self { active: Rcu::new(), generation: AtomicU64::new(0), setting: AtomicBool::new(false) }
    }

    /// Calls `f` with the active policy (`None` before the first set).
    /// IRQL <= DISPATCH_LEVEL; never waits.
    pub fn read<R>(&self, f: impl FnOnce(Option<&ActivePolicy>) -> R) -> R {
        self.active.read(f)
    }

    /// Replaces the active policy with `blob` (empty: clear). PASSIVE_LEVEL.
    ///
    /// Errors (the active policy is then unchanged):
    /// `STATUS_WEIR_POLICY_TOO_LARGE` above `limits::MAX_BLOB_BYTES`;
    /// `0xE057_0000 | DecodeError::code()` for a malformed blob;
    /// `STATUS_WEIR_POLICY_COMPILE`; `STATUS_INSUFFICIENT_RESOURCES`.
    pub fn set(&self, blob: &[u8]) -> Result<SetOutcome, NtStatus> {
        if blob.len() > limits::MAX_BLOB_BYTES {
            return Err(status(abi_status::STATUS_WEIR_POLICY_TOO_LARGE));
        }
        // Serialise setters so generations follow publication order.
        while self.setting.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            writer_wait();
        }
        let result = self.build_and_publish(blob);
        self.setting.store(false, Ordering::Release);
        result
    }

    fn build_and_publish(&self, blob: &[u8]) -> Result<SetOutcome, NtStatus> {
        let generation = self.generation.load(Ordering::Relaxed).wrapping_add(1);
        let next = if blob.is_empty() {
            ActivePolicy {
                generation,
                blob: Vec::new(),
                compiled: None,
                rules: Vec::new(),
                set_count: 0,
                defaults: [weir_policy::Action::Permit; 2],
            }
        } else {
            build(blob, generation)?
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

/// Copies, decodes and compiles `blob`; allocates the hit counters.
fn build(blob: &[u8], generation: u64) -> Result<ActivePolicy, NtStatus> {
    // METHOD_BUFFERED: the system buffer is overwritten by the reply, so
    // keep our own copy (byte-identical for GET_POLICY).
    let mut copy = Vec::new();
    copy.try_reserve_exact(blob.len()).map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)?;
    copy.extend_from_slice(blob);
    let policy = weir_policy::wire::decode(&copy).map_err(|e| decode_status(&e))?;
    let compiled = CompiledPolicy::compile(&policy).map_err(|e| compile_status(&e))?;
    let mut rules = Vec::new();
    rules.try_reserve_exact(policy.rules.len()).map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)?;
    rules.extend(policy.rules.iter().map(|r| RuleSlot { id: r.id, hits: AtomicU64::new(0) }));
    let set_count = u32::try_from(policy.sets.len()).unwrap_or(u32::MAX);
    // `policy` (the decoded model) is dropped here: lookups use `compiled`.
    let defaults = [policy.default_outbound, policy.default_inbound];
    Ok(ActivePolicy { generation, blob: copy, compiled: Some(compiled), rules, set_count, defaults })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use weir_policy::{Action, Addr, Direction, Policy, Rule};

    fn blob(p: &Policy) -> Vec<u8> {
        weir_policy::wire::encode(p).unwrap()
    }

    fn block_port_80() -> Policy {
        let mut r = Rule::any(7, Action::Block);
        r.remote_port = Some(weir_policy::PortCond { ranges: vec![(80, 80)] });
        Policy { rules: vec![r, Rule::any(9, Action::Permit)], ..Policy::permit_all() }
    }

    fn query(port: u16) -> Query<'static> {
        Query {
            direction: Direction::Outbound,
            remote: Addr::V4(0x0a00_0001),
            local: Addr::V4(0x0a00_0002),
            protocol: 6,
            remote_port: port,
            local_port: 50000,
            app: None,
            loopback: false,
        }
    }

    #[test]
    fn set_get_clear_and_generations() {
        let store = PolicyStore::new();
        assert!(store.read(|p| p.is_none()));
        let b = blob(&block_port_80());
        let out = store.set(&b).unwrap();
        assert_eq!(out, SetOutcome { generation: 1, rule_count: 2, set_count: 0 });
        store.read(|p| {
            let p = p.unwrap();
            assert_eq!(p.blob(), &b[..]);
            assert_eq!(p.decide(&query(80)), Decision::rule(Action::Block, 0, 7, false));
            assert_eq!(p.decide(&query(81)), Decision::rule(Action::Permit, 1, 9, false));
            assert_eq!(p.decide(&query(80)).action, Action::Block);
            assert_eq!(p.rules()[0].hits.load(Ordering::Relaxed), 2);
            assert_eq!(p.rules()[1].hits.load(Ordering::Relaxed), 1);
        });
        let out = store.set(&[]).unwrap();
        assert_eq!(out, SetOutcome { generation: 2, rule_count: 0, set_count: 0 });
        store.read(|p| {
            let p = p.unwrap();
            assert!(p.blob().is_empty());
            assert_eq!(p.decide(&query(80)), Decision::monitor());
        });
        store.release();
        assert!(store.read(|p| p.is_none()));
    }

    #[test]
    fn malformed_blobs_leave_the_policy_unchanged() {
        let store = PolicyStore::new();
        let good = blob(&block_port_80());
        store.set(&good).unwrap();
        let mut bad_magic = good.clone();
        bad_magic[0] ^= 0xFF;
        let cases: Vec<(Vec<u8>, u32)> = vec![
            (good[..good.len() - 1].to_vec(), 0),
            (bad_magic, 0xE057_0002),
            (vec![0u8; 10], 0xE057_0001),
        ];
        for (bytes, expected) in cases {
            let err = store.set(&bytes).unwrap_err();
            let raw = u32::from_ne_bytes(err.raw().to_ne_bytes());
            assert!(abi_status::decode_code_of(raw).is_some(), "{raw:#x}");
            if expected != 0 {
                assert_eq!(raw, expected);
            }
            store.read(|p| {
                let p = p.unwrap();
                assert_eq!(p.generation(), 1);
                assert_eq!(p.blob(), &good[..]);
                assert_eq!(p.decide(&query(80)).action, Action::Block);
            });
        }
        let too_big = vec![0u8; limits::MAX_BLOB_BYTES + 1];
        assert_eq!(store.set(&too_big).unwrap_err(), status(abi_status::STATUS_WEIR_POLICY_TOO_LARGE));
        store.read(|p| assert_eq!(p.unwrap().generation(), 1));
    }

    proptest::proptest! {
        /// Random bytes, and a valid blob with one byte changed: never a
        /// panic; a refusal keeps the previous policy.
        #[test]
        fn arbitrary_blobs(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), flip in 0usize..10_000, xor in 1u8..=255) {
            let store = PolicyStore::new();
            let good = blob(&block_port_80());
            store.set(&good).unwrap();
            let mut mutated = good.clone();
            let i = flip % mutated.len();
            mutated[i] ^= xor;
            for candidate in [bytes, mutated] {
                let before = store.read(|p| p.unwrap().generation());
                match store.set(&candidate) {
                    Ok(o) => proptest::prop_assert_eq!(o.generation, before + 1),
                    Err(_) => proptest::prop_assert_eq!(store.read(|p| p.unwrap().generation()), before),
                }
            }
        }
    }
}
