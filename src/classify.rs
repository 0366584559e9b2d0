//! What Weir does with each ALE authorization: read the connection, decide
//! it with the active policy, apply the decision as WFP allows, and count.
//!
//! Runs at IRQL <= DISPATCH_LEVEL: no allocation, no locks, no paged data.
//! Counters are relaxed atomics in a static, shared by concurrent classify
//! calls on every CPU; the policy is read through `policy::PolicyStore`
//! (never waits).
//!
//! # Applying a decision
//!
//! - The write right (`FWPS_RIGHT_ACTION_WRITE`) is absent: a higher-weight
//!   filter has decided; nothing is changed, no lookup is made, and
//!   `write_right_absent` counts it.
//! - **Block**: `actionType = FWP_ACTION_BLOCK` and the write right is cleared,
//!   so no lower-weight filter can turn it into a permit.
//! - **Permit**: `actionType = FWP_ACTION_PERMIT`, write right kept (a *soft*
//!   permit): lower-weight sublayers may still block, and Weir never
//!   overrides another provider's block. If the matching filter carries
//!   `FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT` (set by whoever added the filter,
//!   asking for a hard decision), the right is cleared after the permit too.
//!   Weir's own filters never set it.
//!
//! Reauthorizations (`FWP_CONDITION_FLAG_IS_REAUTHORIZE` in the layer's
//! FLAGS field) are decided like new connections, with the policy active at
//! that moment, and counted separately.

use crate::policy::{ActivePolicy, PolicyStore};
use core::net::IpAddr;
use core::sync::atomic::{AtomicU64, Ordering};
use weir_policy::{Action, Addr, Direction, Query};
use wfp_km::ale::{AleLayer, Connection};
use wfp_km::classify::{ClassifyOut, Filter, IncomingValues, Metadata, Verdict};
use wfp_km::sys::fwps::{ale_auth_connect_v4 as connect, ale_auth_recv_accept_v4 as accept};

/// `FWP_CONDITION_FLAG_IS_LOOPBACK` (fwptypes.h).
pub const FWP_CONDITION_FLAG_IS_LOOPBACK: u32 = 0x0000_0001;
/// `FWP_CONDITION_FLAG_IS_REAUTHORIZE` (fwptypes.h).
pub const FWP_CONDITION_FLAG_IS_REAUTHORIZE: u32 = 0x0000_0004;

/// Counters of one layer.
#[derive(Default)]
pub struct LayerCounters {
    /// Authorizations of new connections.
    pub new_connections: AtomicU64,
    /// Reauthorizations of existing connections.
    pub reauthorizations: AtomicU64,
    /// Of both, how many Weir permitted.
    pub permitted: AtomicU64,
    /// Of both, how many Weir blocked.
    pub blocked: AtomicU64,
    /// Of both, how many arrived without the write right (left untouched).
    pub write_right_absent: AtomicU64,
}

/// A copy of one layer's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerSnapshot {
    pub new_connections: u64,
    pub reauthorizations: u64,
    pub permitted: u64,
    pub blocked: u64,
    pub write_right_absent: u64,
}

/// Per-layer counters, indexed by [`AleLayer::index`].
#[derive(Default)]
pub struct Counters {
    layers: [LayerCounters; 4],
}

impl Counters {
    pub const fn new() -> Self {
        Self {
            layers: [const {
                LayerCounters {
                    new_connections: AtomicU64::new(0),
                    reauthorizations: AtomicU64::new(0),
                    permitted: AtomicU64::new(0),
                    blocked: AtomicU64::new(0),
                    write_right_absent: AtomicU64::new(0),
                }
            }; 4],
        }
    }

    pub fn layer(&self, layer: AleLayer) -> Option<&LayerCounters> {
        self.layers.get(layer.index())
    }

    pub fn snapshot(&self) -> [LayerSnapshot; 4] {
        self.layers.each_ref().map(|c| LayerSnapshot {
            new_connections: c.new_connections.load(Ordering::Relaxed),
            reauthorizations: c.reauthorizations.load(Ordering::Relaxed),
            permitted: c.permitted.load(Ordering::Relaxed),
            blocked: c.blocked.load(Ordering::Relaxed),
            write_right_absent: c.write_right_absent.load(Ordering::Relaxed),
        })
    }
}

/// The driver's counters.
pub static COUNTERS: Counters = Counters::new();

/// What the policy decided for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The deciding rule's index and id; `None` for the default action or
    /// monitor mode.
    pub rule: Option<(u32, u32)>,
    /// The rule's (or the policy's) log flag.
    pub log: bool,
}

impl Decision {
    /// No policy (monitor mode): permit, no rule.
    pub const fn monitor() -> Self {
        Self { action: Action::Permit, rule: None, log: false }
    }

    pub const fn default_action(action: Action) -> Self {
        Self { action, rule: None, log: false }
    }

    pub const fn rule(action: Action, index: u32, id: u32, log: bool) -> Self {
        Self { action, rule: Some((index, id)), log }
    }

    pub fn from_verdict(v: &weir_policy::Verdict) -> Self {
        let rule = match (v.rule_index, v.rule_id) {
            (Some(i), Some(id)) => Some((i, id)),
            _ => None,
        };
        Self { action: v.action, rule, log: v.log }
    }
}

/// What classify did to the classify-out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Permitted,
    Blocked,
    /// The write right was absent: nothing changed.
    WriteRightAbsent,
}

/// What one classification did, for tracing (and the event stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub layer: AleLayer,
    /// The tuple, when the layer supplied every field with its documented type.
    pub connection: Option<Connection>,
    pub process_id: Option<u64>,
    pub reauthorization: bool,
    /// The policy's decision (`None` when the write right was absent and no
    /// lookup was made).
    pub decision: Option<Decision>,
    /// Generation of the policy that made `decision` (0: none was ever set,
    /// or no lookup was made): with the rule index it names the rule.
    pub policy_generation: u64,
    pub applied: Applied,
    /// Whether Weir set the action (false: the write right was absent).
    pub permitted: bool,
}

/// The policy query for a classification whose tuple was read, borrowing
/// the app path (ALE_APP_ID, without its NUL) from the engine's values.
pub fn query<'a>(layer: AleLayer, values: &IncomingValues<'a>, conn: &Connection, loopback: bool) -> Query<'a> {
    let app_index = if layer.is_outbound() { connect::ALE_APP_ID } else { accept::ALE_APP_ID };
    Query {
        direction: direction(layer),
        remote: addr(conn.remote),
        local: addr(conn.local),
        protocol: conn.protocol,
        remote_port: conn.remote_port,
        local_port: conn.local_port,
        app: values.utf16_blob(app_index),
        loopback,
    }
}

fn direction(layer: AleLayer) -> Direction {
    if layer.is_outbound() {
        Direction::Outbound
    } else {
        Direction::Inbound
    }
}

fn addr(a: IpAddr) -> Addr {
    match a {
        IpAddr::V4(v4) => Addr::V4(u32::from(v4)),
        IpAddr::V6(v6) => Addr::V6(u128::from(v6)),
    }
}

/// The layer's `FLAGS` field (`FWP_CONDITION_FLAG_*`), 0 when absent.
pub fn condition_flags(layer: AleLayer, values: &IncomingValues<'_>) -> u32 {
    let index = if layer.is_outbound() { connect::FLAGS } else { accept::FLAGS };
    values.u32(index).unwrap_or(0)
}

/// Decides with `policy` (None: no policy was ever set).
fn decide(policy: Option<&ActivePolicy>, layer: AleLayer, values: &IncomingValues<'_>, conn: Option<&Connection>, loopback: bool) -> Decision {
    let Some(policy) = policy else { return Decision::monitor() };
    match conn {
        Some(c) => policy.decide(&query(layer, values, c, loopback)),
        // A classification without a complete tuple: no rule can be
        // evaluated, so the direction's default action applies.
        None => policy.default_decision(direction(layer)),
    }
}

/// Handles one classification. `None` when the layer is not one of Weir's
/// (then nothing is touched).
pub fn on_classify(
    counters: &Counters,
    store: &PolicyStore,
    values: &IncomingValues<'_>,
    meta: Option<&Metadata<'_>>,
    filter: Option<&Filter<'_>>,
    out: &mut ClassifyOut<'_>,
) -> Option<Outcome> {
    let layer = AleLayer::from_layer_id(values.layer_id())?;
    let c = counters.layer(layer)?;
    let flags = condition_flags(layer, values);
    let reauthorization = flags & FWP_CONDITION_FLAG_IS_REAUTHORIZE != 0;
    if reauthorization {
        c.reauthorizations.fetch_add(1, Ordering::Relaxed);
    } else {
        c.new_connections.fetch_add(1, Ordering::Relaxed);
    }
    let connection = Connection::read(values);
    let process_id = meta.and_then(Metadata::process_id);
    if !out.may_write_action() {
        c.write_right_absent.fetch_add(1, Ordering::Relaxed);
        return Some(Outcome {
            layer,
            connection,
            process_id,
            reauthorization,
            decision: None,
            policy_generation: 0,
            applied: Applied::WriteRightAbsent,
            permitted: false,
        });
    }
    let loopback = flags & FWP_CONDITION_FLAG_IS_LOOPBACK != 0;
    let (decision, policy_generation) =
        store.read(|p| (decide(p, layer, values, connection.as_ref(), loopback), p.map_or(0, ActivePolicy::generation)));
    let applied = match decision.action {
        Action::Block => {
            out.decide(Verdict::Block, true);
            c.blocked.fetch_add(1, Ordering::Relaxed);
            Applied::Blocked
        }
        Action::Permit => {
            let clear_right = filter.is_some_and(|f| f.wants_action_right_cleared());
            out.decide(Verdict::Permit, clear_right);
            c.permitted.fetch_add(1, Ordering::Relaxed);
            Applied::Permitted
        }
    };
    Some(Outcome {
        layer,
        connection,
        process_id,
        reauthorization,
        decision: Some(decision),
        policy_generation,
        applied,
        permitted: applied == Applied::Permitted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfp_km::classify::testing::{Classification, Value};
    use wfp_km::sys::fwp_types::{FWP_ACTION_BLOCK, FWP_ACTION_PERMIT};
    use wfp_km::sys::fwps::{FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT, FWPS_RIGHT_ACTION_WRITE};

    /// local 127.0.0.1:1234 -> remote 10.0.0.1:80, TCP, in the ALE order.
    fn v4_values() -> Vec<Value> {
        vec![
            Value::Empty,
            Value::Empty,
            Value::U32(0x7f00_0001),
            Value::Empty,
            Value::U16(1234),
            Value::U8(6),
            Value::U32(0x0a00_0001),
            Value::U16(80),
        ]
    }

    fn run(counters: &Counters, c: &mut Classification) -> Option<Outcome> {
        run_with(counters, &PolicyStore::new(), c)
    }

    fn run_with(counters: &Counters, store: &PolicyStore, c: &mut Classification) -> Option<Outcome> {
        c.run(|values, meta, filter, out| on_classify(counters, store, values, meta, filter, out))
    }

    #[test]
    fn permits_and_counts_when_writable() {
        let counters = Counters::new();
        let mut c = Classification::new(48, &v4_values()).rights(FWPS_RIGHT_ACTION_WRITE).action(FWP_ACTION_BLOCK).process_id(77);
        let outcome = run(&counters, &mut c).unwrap();
        assert!(outcome.permitted);
        assert_eq!(outcome.process_id, Some(77));
        assert_eq!(outcome.connection.unwrap().remote_port, 80);
        assert_eq!(c.out().actionType, FWP_ACTION_PERMIT);
        assert_eq!(c.out().rights, FWPS_RIGHT_ACTION_WRITE);
        let s = counters.snapshot();
        assert_eq!(s[AleLayer::ConnectV4.index()], LayerSnapshot { new_connections: 1, permitted: 1, ..Default::default() });
        assert_eq!(s[AleLayer::ConnectV6.index()], LayerSnapshot::default());
    }

    #[test]
    fn leaves_action_alone_without_write_right() {
        let counters = Counters::new();
        let mut c = Classification::new(44, &v4_values()).action(FWP_ACTION_BLOCK);
        assert!(!run(&counters, &mut c).unwrap().permitted);
        assert_eq!(c.out().actionType, FWP_ACTION_BLOCK);
        assert_eq!(counters.snapshot()[AleLayer::RecvAcceptV4.index()], LayerSnapshot { new_connections: 1, write_right_absent: 1, ..Default::default() });
    }

    #[test]
    fn clears_the_right_when_the_filter_asks() {
        let counters = Counters::new();
        let mut c = Classification::new(48, &v4_values())
            .rights(FWPS_RIGHT_ACTION_WRITE)
            .filter_flags(FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT);
        run(&counters, &mut c).unwrap();
        assert_eq!(c.out().actionType, FWP_ACTION_PERMIT);
        assert_eq!(c.out().rights, 0);
    }

    #[test]
    fn foreign_layers_are_untouched() {
        let counters = Counters::new();
        let mut c = Classification::new(20, &v4_values()).rights(FWPS_RIGHT_ACTION_WRITE).action(FWP_ACTION_BLOCK);
        assert!(run(&counters, &mut c).is_none());
        assert_eq!(c.out().actionType, FWP_ACTION_BLOCK);
        assert!(counters.snapshot().iter().all(|s| *s == LayerSnapshot::default()));
    }

    #[test]
    fn malformed_values_still_permit_but_have_no_tuple() {
        let counters = Counters::new();
        let mut c = Classification::new(50, &v4_values()[..3]).rights(FWPS_RIGHT_ACTION_WRITE);
        let outcome = run(&counters, &mut c).unwrap();
        assert!(outcome.connection.is_none());
        assert!(outcome.permitted);
        assert_eq!(c.out().actionType, FWP_ACTION_PERMIT);
    }

    #[test]
    fn ipv6_tuple_is_read_at_v6_layers() {
        let counters = Counters::new();
        let local = "fe80::1".parse::<core::net::Ipv6Addr>().unwrap().octets();
        let remote = "2001:db8::2".parse::<core::net::Ipv6Addr>().unwrap().octets();
        let values = [Value::Empty, Value::Empty, Value::Bytes16(local), Value::Empty, Value::U16(5353), Value::U8(17), Value::Bytes16(remote), Value::U16(53)];
        let mut c = Classification::new(50, &values).rights(FWPS_RIGHT_ACTION_WRITE);
        let conn = run(&counters, &mut c).unwrap().connection.unwrap();
        assert_eq!(conn.remote.to_string(), "2001:db8::2");
        assert_eq!((conn.local_port, conn.remote_port, conn.protocol), (5353, 53, 17));
        assert_eq!(counters.snapshot()[AleLayer::ConnectV6.index()].permitted, 1);
    }

    fn store_with(p: &weir_policy::Policy) -> PolicyStore {
        let store = PolicyStore::new();
        store.set(&weir_policy::wire::encode(p).unwrap()).unwrap();
        store
    }

    const APP: &[u16] = &[0x5C, 0x64, 0x65, 0x76, 0x5C, 0x61, 0x2E, 0x65, 0x78, 0x65]; // "\dev\a.exe"

    /// v4 values with the app path and a FLAGS field, at a connect layer.
    fn connect_values(flags: u32) -> Vec<Value> {
        let mut v = v4_values();
        v[0] = Value::Utf16(APP);
        v.extend([Value::Empty, Value::Empty, Value::Empty, Value::Empty, Value::U32(flags)]);
        v
    }

    #[test]
    fn block_rule_blocks_and_clears_the_right() {
        use weir_policy::{Action, Policy, PortCond, Rule};
        let mut r = Rule::any(42, Action::Block);
        r.remote_port = Some(PortCond { ranges: vec![(80, 80)] });
        let store = store_with(&Policy { rules: vec![r], ..Policy::permit_all() });
        let counters = Counters::new();
        let mut c = Classification::new(48, &v4_values()).rights(FWPS_RIGHT_ACTION_WRITE).action(FWP_ACTION_PERMIT);
        let o = run_with(&counters, &store, &mut c).unwrap();
        assert_eq!(o.applied, Applied::Blocked);
        assert_eq!(o.decision, Some(Decision::rule(Action::Block, 0, 42, false)));
        assert_eq!(o.policy_generation, 1, "the generation of the policy that decided");
        assert_eq!(c.out().actionType, FWP_ACTION_BLOCK);
        assert_eq!(c.out().rights, 0);
        assert_eq!(counters.snapshot()[0], LayerSnapshot { new_connections: 1, blocked: 1, ..Default::default() });
        assert_eq!(store.read(|p| p.unwrap().rules()[0].hits.load(Ordering::Relaxed)), 1);
    }

    #[test]
    fn default_block_and_soft_permit() {
        use weir_policy::{Action, Policy, Rule};
        let mut r = Rule::any(1, Action::Permit);
        r.app = Some(weir_policy::AppPath(APP.iter().map(|u| if (0x61..=0x7A).contains(u) { u - 0x20 } else { *u }).collect()));
        let store = store_with(&Policy { rules: vec![r], default_outbound: Action::Block, ..Policy::permit_all() });
        let counters = Counters::new();
        // The app matches (case-insensitively): soft permit, right kept.
        let mut c = Classification::new(48, &connect_values(0)).rights(FWPS_RIGHT_ACTION_WRITE).action(FWP_ACTION_BLOCK);
        let o = run_with(&counters, &store, &mut c).unwrap();
        assert_eq!(o.decision, Some(Decision::rule(Action::Permit, 0, 1, false)));
        assert_eq!((c.out().actionType, c.out().rights), (FWP_ACTION_PERMIT, FWPS_RIGHT_ACTION_WRITE));
        // No app: the outbound default blocks.
        let mut c = Classification::new(48, &v4_values()).rights(FWPS_RIGHT_ACTION_WRITE).action(FWP_ACTION_PERMIT);
        let o = run_with(&counters, &store, &mut c).unwrap();
        assert_eq!(o.decision, Some(Decision::default_action(Action::Block)));
        assert_eq!((c.out().actionType, c.out().rights), (FWP_ACTION_BLOCK, 0));
    }

    #[test]
    fn reauthorization_and_loopback_come_from_the_flags_field() {
        use weir_policy::{Action, Policy, Rule};
        let mut r = Rule::any(5, Action::Block);
        r.loopback = Some(true);
        let store = store_with(&Policy { rules: vec![r], ..Policy::permit_all() });
        let counters = Counters::new();
        let mut c = Classification::new(48, &connect_values(FWP_CONDITION_FLAG_IS_LOOPBACK | FWP_CONDITION_FLAG_IS_REAUTHORIZE)).rights(FWPS_RIGHT_ACTION_WRITE);
        let o = run_with(&counters, &store, &mut c).unwrap();
        assert!(o.reauthorization);
        assert_eq!(o.applied, Applied::Blocked);
        let mut c = Classification::new(48, &connect_values(0)).rights(FWPS_RIGHT_ACTION_WRITE);
        assert_eq!(run_with(&counters, &store, &mut c).unwrap().applied, Applied::Permitted);
        assert_eq!(counters.snapshot()[0], LayerSnapshot { new_connections: 1, reauthorizations: 1, permitted: 1, blocked: 1, write_right_absent: 0 });
    }

    #[test]
    fn without_the_write_right_nothing_changes_and_no_rule_is_hit() {
        use weir_policy::{Action, Policy, Rule};
        let store = store_with(&Policy { rules: vec![Rule::any(5, Action::Block)], ..Policy::permit_all() });
        let counters = Counters::new();
        let mut c = Classification::new(48, &v4_values()).action(FWP_ACTION_PERMIT);
        let o = run_with(&counters, &store, &mut c).unwrap();
        assert_eq!((o.applied, o.decision), (Applied::WriteRightAbsent, None));
        assert_eq!((c.out().actionType, c.out().rights), (FWP_ACTION_PERMIT, 0));
        assert_eq!(store.read(|p| p.unwrap().rules()[0].hits.load(Ordering::Relaxed)), 0);
        assert_eq!(counters.snapshot()[0].write_right_absent, 1);
    }

    proptest::proptest! {
        /// Any values at any layer: never a panic; counters move only for
        /// Weir's layers; the action changes only with the write right.
        #[test]
        fn arbitrary_classifications(layer in 0u16..60, rights in 0u32..4, kinds in proptest::collection::vec(0u8..7, 0..12), bits in proptest::num::u32::ANY) {
            let values: Vec<Value> = kinds.iter().map(|k| match k {
                0 => Value::Empty, 1 => Value::U8(bits as u8), 2 => Value::U16(bits as u16), 3 => Value::U32(bits),
                4 => Value::Bytes16([bits as u8; 16]), 5 => Value::OtherType(12), _ => Value::OtherType(i32::from(*k) * 1000),
            }).collect();
            let counters = Counters::new();
            let mut c = Classification::new(layer, &values).rights(rights).action(FWP_ACTION_BLOCK);
            let outcome = run(&counters, &mut c);
            let ours = AleLayer::from_layer_id(layer).is_some();
            proptest::prop_assert_eq!(outcome.is_some(), ours);
            let total: u64 = counters.snapshot().iter().map(|s| s.new_connections + s.reauthorizations).sum();
            proptest::prop_assert_eq!(total, u64::from(ours));
            let writable = rights & FWPS_RIGHT_ACTION_WRITE != 0;
            let expected = if ours && writable { FWP_ACTION_PERMIT } else { FWP_ACTION_BLOCK };
            proptest::prop_assert_eq!(c.out().actionType, expected);
        }
    }
}
