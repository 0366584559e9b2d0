//! What Weir owns while loaded, and the order in which it gets and gives it
//! back.
//!
//! DriverEntry is the list of steps in [`Driver::start`]. Each step returns an
//! owning value; if a later step fails, `?` drops the values already obtained
//! in reverse order, which undoes the earlier steps. DriverUnload drops the
//! [`Driver`], whose fields drop in declaration order — the documented WFP
//! teardown order:
//!
//! 1. `engine`: close the dynamic session; the engine deletes the sublayer,
//!    callouts and filters, so no new classification can reach Weir;
//! 2. `callouts`: unregister the run-time callouts, waiting out classify
//!    calls still in flight;
//! 3. `events`: complete every parked read (STATUS_CANCELLED), flush the
//!    completion DPC, free the ring (classify can no longer reach it);
//! 4. `link`, then 5. `device`: remove the control device's name and the
//!    device (callout registrations reference it, so it goes last).
//!
//! All of this runs at PASSIVE_LEVEL.

use crate::events::EventLog;
use crate::ids;
use wfp_km::ale::AleLayer;
use wfp_km::callout::{CalloutFns, Registration};
use wfp_km::device::{ControlDevice, DriverObject, SymbolicLink};
use wfp_km::engine::Engine;
use wfp_km::objects::{Callout, CalloutFilter, SubLayer};
use wfp_km::pool::PoolBox;
use wfp_km::sys::fwp_types::{FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED, FWP_ACTION_CALLOUT_TERMINATING};
use wfp_km::sys::fwps::{
    FWPS_CALLOUT_CLASSIFY_FN3, FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0, FWPS_CALLOUT_NOTIFY_FN3,
};
use wfp_km::sys::ntos::FILE_DEVICE_NETWORK;
use wfp_km::Result;

/// `FILE_DEVICE_SECURE_OPEN`: opens of `\Device\Weir\anything` are checked
/// like opens of the device itself.
const FILE_DEVICE_SECURE_OPEN: u32 = 0x0000_0100;

/// The WFP callbacks, supplied by the kernel boundary.
#[derive(Clone, Copy)]
pub struct Callbacks {
    pub classify: FWPS_CALLOUT_CLASSIFY_FN3,
    pub notify: FWPS_CALLOUT_NOTIFY_FN3,
    pub flow_delete: FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0,
    /// Cancel routine of parked READ_EVENTS requests.
    pub cancel_read: wfp_km::csq::CancelRoutine,
}

/// Everything Weir holds while loaded. Field order is teardown order.
pub struct Driver {
    _engine: Engine,
    _callouts: Callouts,
    events: PoolBox<EventLog>,
    _link: SymbolicLink,
    _device: ControlDevice,
}

impl Driver {
    /// DriverEntry's steps. On failure everything obtained so far has been
    /// released and the failing status is returned.
    pub fn start(driver: &DriverObject, callbacks: &Callbacks) -> Result<PoolBox<Self>> {
        let device = ControlDevice::create(
            driver,
            ids::DEVICE_NAME,
            FILE_DEVICE_NETWORK,
            FILE_DEVICE_SECURE_OPEN,
        )?;
        let link = SymbolicLink::create(ids::LINK_NAME, ids::DEVICE_NAME)?;
        // Before the callouts: classify may run as soon as the filters are
        // committed, and teardown (field order) frees it after them.
        let events = EventLog::try_new(callbacks.cancel_read)?;
        let callouts = Callouts::register(&device, callbacks)?;
        let engine = Engine::open_dynamic(ids::SESSION_NAME, ids::SESSION_DESCRIPTION)?;
        add_filtering_objects(&engine)?;
        PoolBox::try_new(Self { _engine: engine, _callouts: callouts, events, _link: link, _device: device })
    }
}

impl Driver {
    /// The event log (ring, parked reads).
    pub fn events(&self) -> &EventLog {
        &self.events
    }
}

/// In one transaction: the sublayer, a callout per layer and a filter per
/// layer that sends every authorization there. If anything fails, the
/// transaction guard aborts.
fn add_filtering_objects(engine: &Engine) -> Result<()> {
    let txn = engine.begin()?;
    txn.add_sublayer(&SubLayer {
        key: ids::SUBLAYER_KEY,
        name: ids::SUBLAYER_NAME,
        description: ids::SUBLAYER_DESCRIPTION,
        weight: ids::SUBLAYER_WEIGHT,
    })?;
    for layer in AleLayer::ALL {
        txn.add_callout(&management_callout(layer))?;
    }
    for layer in AleLayer::ALL {
        txn.add_filter(&filter(layer))?;
    }
    txn.commit()
}

fn management_callout(layer: AleLayer) -> Callout {
    Callout {
        key: ids::layer_ids(layer).callout_key,
        name: ids::layer_ids(layer).callout_name,
        description: ids::CALLOUT_DESCRIPTION,
        layer: layer.layer_key(),
    }
}

/// The filter for one layer. Terminating, so the callout's permit counts in
/// arbitration; `PERMIT_IF_CALLOUT_UNREGISTERED` so that traffic flows if the
/// callout is ever gone while the filter still exists (fail open: Weir is a
/// monitor, it must never cut a machine off the network).
pub fn filter(layer: AleLayer) -> CalloutFilter {
    CalloutFilter {
        key: ids::layer_ids(layer).filter_key,
        name: ids::layer_ids(layer).filter_name,
        description: ids::FILTER_DESCRIPTION,
        layer: layer.layer_key(),
        sublayer: ids::SUBLAYER_KEY,
        callout: ids::layer_ids(layer).callout_key,
        action_type: FWP_ACTION_CALLOUT_TERMINATING,
        flags: FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED,
        weight: None,
    }
}

/// The four run-time callout registrations, unregistered in reverse order.
struct Callouts {
    registrations: [Option<Registration>; 4],
}

impl Callouts {
    fn register(device: &ControlDevice, callbacks: &Callbacks) -> Result<Self> {
        let mut set = Self { registrations: [None, None, None, None] };
        for (layer, slot) in AleLayer::ALL.into_iter().zip(set.registrations.iter_mut()) {
            let fns = CalloutFns {
                key: ids::layer_ids(layer).callout_key,
                classify: callbacks.classify,
                notify: callbacks.notify,
                flow_delete: callbacks.flow_delete,
            };
            // On failure `set` drops, unregistering those already registered.
            *slot = Some(Registration::register(device, &fns)?);
        }
        Ok(set)
    }
}

impl Drop for Callouts {
    fn drop(&mut self) {
        for slot in self.registrations.iter_mut().rev() {
            drop(slot.take());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfp_km::GUID;

    fn g(x: GUID) -> (u32, u16, u16, [u8; 8]) {
        (x.data1, x.data2, x.data3, x.data4)
    }

    #[test]
    fn every_filter_targets_its_own_callout_at_its_layer() {
        for layer in AleLayer::ALL {
            let f = filter(layer);
            let c = management_callout(layer);
            assert_eq!(g(f.callout), g(c.key));
            assert_eq!(g(f.layer), g(c.layer));
            assert_eq!(g(f.layer), g(layer.layer_key()));
            assert_eq!(g(f.sublayer), g(ids::SUBLAYER_KEY));
            assert_eq!(f.flags & FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED, FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED);
            assert_eq!(f.action_type, FWP_ACTION_CALLOUT_TERMINATING);
        }
    }
}
