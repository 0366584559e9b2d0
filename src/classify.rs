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
    #![allow(unsafe_code)]
    use super::*;
    use wfp_km::sys::fwp_types::{
        FWP_ACTION_BLOCK, FWP_ACTION_PERMIT, FWP_UINT16, FWP_UINT32, FWP_UINT8, FWP_VALUE0, FWP_VALUE0_0,
    };
    use wfp_km::sys::fwps::{
        FWPS_CLASSIFY_OUT0, FWPS_FILTER3, FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT, FWPS_INCOMING_VALUE0,
        FWPS_INCOMING_VALUES0, FWPS_RIGHT_ACTION_WRITE,
    };

    fn v(ty: i32, bits: u32) -> FWPS_INCOMING_VALUE0 {
        let anon = match ty {
            FWP_UINT8 => FWP_VALUE0_0 { uint8: bits as u8 },
            FWP_UINT16 => FWP_VALUE0_0 { uint16: bits as u16 },
            _ => FWP_VALUE0_0 { uint32: bits },
        };
        FWPS_INCOMING_VALUE0 { value: FWP_VALUE0 { r#type: ty, Anonymous: anon } }
    }

    fn v4_values() -> Vec<FWPS_INCOMING_VALUE0> {
        vec![v(0, 0), v(0, 0), v(FWP_UINT32, 0x7f00_0001), v(0, 0), v(FWP_UINT16, 1234), v(FWP_UINT8, 6), v(FWP_UINT32, 0x0a00_0001), v(FWP_UINT16, 80)]
    }

    fn run(counters: &Counters, layer: u16, vals: &mut [FWPS_INCOMING_VALUE0], rights: u32, filter_flags: u16) -> (Option<Outcome>, FWPS_CLASSIFY_OUT0) {
        let fixed = FWPS_INCOMING_VALUES0 { layerId: layer, valueCount: vals.len() as u32, incomingValue: vals.as_mut_ptr() };
        let mut out = FWPS_CLASSIFY_OUT0 { actionType: FWP_ACTION_BLOCK, outContext: 0, filterId: 0, rights, flags: 0, reserved: 0 };
        // SAFETY: all-zero is a valid filter.
        let mut filter: FWPS_FILTER3 = unsafe { core::mem::zeroed() };
        filter.flags = filter_flags;
        // SAFETY: every pointer refers to a local that outlives the views.
        let outcome = unsafe {
            let values = IncomingValues::from_raw(&fixed).unwrap();
            let f = Filter::from_raw(&filter);
            let mut o = ClassifyOut::from_raw(&mut out).unwrap();
            on_classify(counters, &values, None, f.as_ref(), &mut o)
        };
        (outcome, out)
    }

    #[test]
    fn permits_and_counts_when_writable() {
        let counters = Counters::new();
        let (outcome, out) = run(&counters, 48, &mut v4_values(), FWPS_RIGHT_ACTION_WRITE, 0);
        let outcome = outcome.unwrap();
        assert!(outcome.permitted);
        assert_eq!(outcome.connection.unwrap().remote_port, 80);
        assert_eq!(out.actionType, FWP_ACTION_PERMIT);
        assert_eq!(out.rights, FWPS_RIGHT_ACTION_WRITE);
        let s = counters.snapshot();
        assert_eq!(s[AleLayer::ConnectV4.index()], LayerSnapshot { classified: 1, permitted: 1, write_right_absent: 0 });
        assert_eq!(s[AleLayer::ConnectV6.index()], LayerSnapshot::default());
    }

    #[test]
    fn leaves_action_alone_without_write_right() {
        let counters = Counters::new();
        let (outcome, out) = run(&counters, 44, &mut v4_values(), 0, 0);
        assert!(!outcome.unwrap().permitted);
        assert_eq!(out.actionType, FWP_ACTION_BLOCK);
        assert_eq!(counters.snapshot()[AleLayer::RecvAcceptV4.index()], LayerSnapshot { classified: 1, permitted: 0, write_right_absent: 1 });
    }

    #[test]
    fn clears_the_right_when_the_filter_asks() {
        let counters = Counters::new();
        let (_, out) = run(&counters, 48, &mut v4_values(), FWPS_RIGHT_ACTION_WRITE, FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT);
        assert_eq!(out.actionType, FWP_ACTION_PERMIT);
        assert_eq!(out.rights, 0);
    }

    #[test]
    fn foreign_layers_are_untouched() {
        let counters = Counters::new();
        let (outcome, out) = run(&counters, 20, &mut v4_values(), FWPS_RIGHT_ACTION_WRITE, 0);
        assert!(outcome.is_none());
        assert_eq!(out.actionType, FWP_ACTION_BLOCK);
        assert!(counters.snapshot().iter().all(|s| *s == LayerSnapshot::default()));
    }

    #[test]
    fn malformed_values_still_permit_but_have_no_tuple() {
        let counters = Counters::new();
        let mut vals = v4_values();
        vals.truncate(3);
        let (outcome, out) = run(&counters, 50, &mut vals, FWPS_RIGHT_ACTION_WRITE, 0);
        let outcome = outcome.unwrap();
        assert!(outcome.connection.is_none());
        assert!(outcome.permitted);
        assert_eq!(out.actionType, FWP_ACTION_PERMIT);
    }
}
