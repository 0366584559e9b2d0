//! What Weir does with each ALE authorization: read the connection, count
//! it, and permit it unless a higher-weight filter has taken the decision
//! away (cleared the write right).
//!
//! Runs at IRQL <= DISPATCH_LEVEL: no allocation, no locks, no paged data.
//! Counters are relaxed atomics in a static, shared by concurrent classify
//! calls on every CPU.

use core::sync::atomic::{AtomicU64, Ordering};
use wfp_km::ale::{AleLayer, Connection};
use wfp_km::classify::{ClassifyOut, Filter, IncomingValues, Metadata, Verdict};

/// Counters of one layer.
#[derive(Default)]
pub struct LayerCounters {
    /// Classifications seen at this layer.
    pub classified: AtomicU64,
    /// Of those, how many Weir permitted.
    pub permitted: AtomicU64,
    /// Of those, how many arrived without the write right (left untouched).
    pub write_right_absent: AtomicU64,
}

/// A consistent-enough copy of one layer's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerSnapshot {
    pub classified: u64,
    pub permitted: u64,
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
                    classified: AtomicU64::new(0),
                    permitted: AtomicU64::new(0),
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
            classified: c.classified.load(Ordering::Relaxed),
            permitted: c.permitted.load(Ordering::Relaxed),
            write_right_absent: c.write_right_absent.load(Ordering::Relaxed),
        })
    }
}

/// The driver's counters.
pub static COUNTERS: Counters = Counters::new();

/// What one classification did, for tracing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub layer: AleLayer,
    /// The tuple, when the layer supplied every field with its documented type.
    pub connection: Option<Connection>,
    pub process_id: Option<u64>,
    /// Whether Weir set the action (false: the write right was absent).
    pub permitted: bool,
}

/// Handles one classification. `None` when the layer is not one of Weir's
/// (then nothing is touched).
pub fn on_classify(
    counters: &Counters,
    values: &IncomingValues<'_>,
    meta: Option<&Metadata<'_>>,
    filter: Option<&Filter<'_>>,
    out: &mut ClassifyOut<'_>,
) -> Option<Outcome> {
    let layer = AleLayer::from_layer_id(values.layer_id())?;
    let c = counters.layer(layer)?;
    c.classified.fetch_add(1, Ordering::Relaxed);
    let clear_right = filter.is_some_and(|f| f.wants_action_right_cleared());
    let permitted = out.decide(Verdict::Permit, clear_right);
    if permitted {
        c.permitted.fetch_add(1, Ordering::Relaxed);
    } else {
        c.write_right_absent.fetch_add(1, Ordering::Relaxed);
    }
    Some(Outcome {
        layer,
        connection: Connection::read(values),
        process_id: meta.and_then(Metadata::process_id),
        permitted,
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
        c.run(|values, meta, filter, out| on_classify(counters, values, meta, filter, out))
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
        assert_eq!(s[AleLayer::ConnectV4.index()], LayerSnapshot { classified: 1, permitted: 1, write_right_absent: 0 });
        assert_eq!(s[AleLayer::ConnectV6.index()], LayerSnapshot::default());
    }

    #[test]
    fn leaves_action_alone_without_write_right() {
        let counters = Counters::new();
        let mut c = Classification::new(44, &v4_values()).action(FWP_ACTION_BLOCK);
        assert!(!run(&counters, &mut c).unwrap().permitted);
        assert_eq!(c.out().actionType, FWP_ACTION_BLOCK);
        assert_eq!(counters.snapshot()[AleLayer::RecvAcceptV4.index()], LayerSnapshot { classified: 1, permitted: 0, write_right_absent: 1 });
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
            let total: u64 = counters.snapshot().iter().map(|s| s.classified).sum();
            proptest::prop_assert_eq!(total, u64::from(ours));
            let writable = rights & FWPS_RIGHT_ACTION_WRITE != 0;
            let expected = if ours && writable { FWP_ACTION_PERMIT } else { FWP_ACTION_BLOCK };
            proptest::prop_assert_eq!(c.out().actionType, expected);
        }
    }
}
