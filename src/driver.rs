//! What Weir owns while loaded, and the order in which it gets and gives it
//! back.
//!
//! DriverEntry ([`Driver::start`]) allocates the state first and then fills
//! it step by step: ETW provider (its failure is traced, not fatal) →
//! control device → its DACL (before any name points at it) → symbolic link
//! → event log → stored policy (read and published before any filter
//! exists, so the first classification is decided by it; a refusal is
//! traced and recorded, never fatal) → run-time callouts → BFE state
//! subscription → fail-closed boot-time filters (FailMode = 1 and BFE not
//! running yet; `crate::failsafe`) → filtering (a dynamic session with the
//! sublayer, callouts and filters) if BFE runs.
//! If a step fails, [`Driver::shutdown`] undoes whatever exists, in reverse
//! order; DriverUnload calls the same function:
//!
//! 1. stop filtering: under [`FILTERING`]'s lock, mark it stopping and close
//!    the dynamic session (the engine deletes the sublayer, callouts and
//!    filters), so no new classification reaches Weir and a late BFE callback
//!    does nothing;
//! 2. unsubscribe from BFE state changes (waits for a callback in flight);
//! 3. unregister the run-time callouts, waiting out classify calls in flight;
//! 4. drop the event log: flush its completion DPC, complete every parked
//!    READ_EVENTS with STATUS_CANCELLED, free the ring (no classify can
//!    reach it any more);
//! 5. delete the symbolic link, then 6. the device;
//! 7. write `DriverStopping` and unregister the ETW provider (nothing that
//!    writes events is left), then the state goes;
//! 8. leave the fail-closed boot-time and persistent filters in place: they
//!    block until BFE starts / until Weir decides again (`crate::failsafe`).
//!
//! Nothing is freed while something else may still reach it: if the BFE
//! subscription or a callout registration cannot be removed (after bounded,
//! traced retries), shutdown stops there and reports [`Teardown::Pinned`]; the
//! caller then leaks the state, the link and the device on purpose. A device
//! that still exists keeps the driver object and therefore the image mapped,
//! so the classifyFn and BFE callback the engine may still call stay valid
//! code, and what they read ([`FILTERING`], the counters) are statics of that
//! image. A later load then fails (the old driver object still exists), which
//! is visible, instead of a blue screen.
//!
//! Everything here runs at PASSIVE_LEVEL.

use crate::events::EventLog;
use crate::ids;
use core::sync::atomic::{AtomicBool, Ordering};
use wfp_km::ale::AleLayer;
use wfp_km::bfe::{self, BfeState, PassiveMutex, SessionSlot, Subscription};
use wfp_km::callout::{CalloutFns, Registration};
use wfp_km::device::{ControlDevice, DriverObject, SymbolicLink};
use wfp_km::engine::Engine;
use wfp_km::objects::{Callout, CalloutFilter, SubLayer};
use wfp_km::pool::PoolBox;
use wfp_km::sys::fwp_types::{FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED, FWP_ACTION_CALLOUT_TERMINATING};
use wfp_km::sys::fwpm::FWPM_SERVICE_STATE_CHANGE_CALLBACK0;
use wfp_km::sys::fwps::{
    FWPS_CALLOUT_CLASSIFY_FN3, FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0, FWPS_CALLOUT_NOTIFY_FN3,
};
use wfp_km::sys::ntos::FILE_DEVICE_NETWORK;
use wfp_km::{security, trace, Result};

/// `FILE_DEVICE_SECURE_OPEN`: opens of `\Device\Weir\anything` are checked
/// like opens of the device itself.
const FILE_DEVICE_SECURE_OPEN: u32 = 0x0000_0100;

/// The kernel callbacks, supplied by the kernel boundary.
#[derive(Clone, Copy)]
pub struct Callbacks {
    pub classify: FWPS_CALLOUT_CLASSIFY_FN3,
    pub notify: FWPS_CALLOUT_NOTIFY_FN3,
    pub flow_delete: FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0,
    /// Called by the filter engine at PASSIVE_LEVEL on BFE state changes.
    pub bfe_state: FWPM_SERVICE_STATE_CHANGE_CALLBACK0,
}

/// An open session with BFE and the run-time ids of Weir's filters in it,
/// by layer (0: no filter), so a policy change can replace them. Dropping
/// it closes the session (the engine deletes the dynamic objects).
pub struct Filtering {
    engine: Engine,
    filter_ids: [u64; 4],
}

/// Weir's filtering state: the session with BFE (`wfp_km::bfe::SessionSlot`,
/// whose argument and loom test cover DriverEntry, DriverUnload and the BFE
/// state callback racing), behind a PASSIVE_LEVEL lock. A static (not part
/// of [`Driver`]) so the BFE callback can reach it with no context pointer,
/// whatever happens to the pool-allocated state.
pub static FILTERING: PassiveMutex<SessionSlot<Filtering>> = PassiveMutex::new(SessionSlot::new());

/// Whether Weir's filters are in BFE now (the stats reply's "filtering").
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether Weir's sublayer, callouts and filters are currently in the
/// filter engine. False before BFE runs, while BFE is stopped or restarting,
/// and after unload begins. Any IRQL.
pub fn filtering() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

/// Outcome of [`Driver::shutdown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Teardown {
    /// Everything is released; the state may be freed.
    Complete,
    /// A registration could not be removed: the state, link and device must
    /// be leaked (see the module documentation).
    Pinned,
}

/// Everything Weir holds while loaded, besides [`FILTERING`].
pub struct Driver {
    etw: Option<wfp_km::etw::Provider>,
    bfe: Option<Subscription>,
    boot_time: Option<wfp_km::failsafe::BootTimeFilters>,
    callouts: Callouts,
    events: Option<PoolBox<EventLog>>,
    link: Option<SymbolicLink>,
    device: Option<ControlDevice>,
}

impl Driver {
    /// DriverEntry's steps. On failure everything obtained so far has been
    /// released (or, if that was impossible, deliberately leaked and traced)
    /// and the failing status is returned.
    pub fn start(driver: &DriverObject, callbacks: &Callbacks) -> Result<PoolBox<Self>> {
        FILTERING.init();
        let mut this = PoolBox::try_new(Self {
            etw: None,
            bfe: None,
            boot_time: None,
            callouts: Callouts::new(),
            events: None,
            link: None,
            device: None,
        })
            .inspect_err(|s| trace::failed("ExAllocatePool2(driver state)", *s))?;
        match this.fill(driver, callbacks) {
            Ok(()) => Ok(this),
            Err(status) => {
                if this.shutdown() == Teardown::Pinned {
                    trace::error(format_args!("weir: DriverEntry failed and left state pinned (see earlier errors)"));
                    let _ = PoolBox::into_raw(this);
                }
                Err(status)
            }
        }
    }

    fn fill(&mut self, driver: &DriverObject, callbacks: &Callbacks) -> Result<()> {
        self.etw = crate::etw::register();
        let device = self.device.insert(ControlDevice::create(
            driver,
            ids::DEVICE_NAME,
            FILE_DEVICE_NETWORK,
            FILE_DEVICE_SECURE_OPEN,
        )?);
        security::restrict_to_system_and_administrators(device)?;
        self.link = Some(SymbolicLink::create(ids::LINK_NAME, ids::DEVICE_NAME)?);
        // Before the callouts: classify records into it as soon as filters
        // exist; shutdown frees it after the callouts are gone.
        let events = self.events.insert(EventLog::try_new()?);
        load_stored_policy(&crate::policy::STORE);
        // The log starts in monitor mode (record everything); a stored policy
        // narrows it as SET_POLICY would, before any classify can record.
        events.set_log_all(crate::policy::STORE.log_all());
        self.callouts.register(device, callbacks)?;
        self.bfe = Some(Subscription::subscribe(device, callbacks.bfe_state)?);
        // Subscribed first, then asked: a change in between is not lost (the
        // callback and this check serialise on FILTERING's lock).
        let state = bfe::current_state();
        self.boot_time = crate::failsafe::at_driver_entry(state);
        match state {
            BfeState::Running => start_filtering("DriverEntry"),
            state => {
                trace::error(format_args!(
                    "weir: the Base Filtering Engine is not running ({state:?}); not filtering until it starts"
                ));
                Ok(())
            }
        }
    }

    /// DriverUnload's steps (see the module documentation). Idempotent.
    pub fn shutdown(&mut self) -> Teardown {
        stop_filtering();
        if let Some(sub) = self.bfe.take() {
            if let Err(left) = sub.unsubscribe() {
                trace::error(format_args!(
                    "weir: BFE state subscription cannot be removed; keeping the device and driver state (leaked)"
                ));
                self.bfe = Some(left);
                return Teardown::Pinned;
            }
        }
        if !self.callouts.unregister_all() {
            trace::error(format_args!(
                "weir: a callout cannot be unregistered; keeping the device and driver state (leaked)"
            ));
            return Teardown::Pinned;
        }
        // No classify can run now: parked reads complete, the ring goes.
        drop(self.events.take());
        drop(self.link.take());
        drop(self.device.take());
        if let Some(provider) = self.etw.take() {
            crate::etw::lifecycle(false);
            crate::etw::unregister(provider);
        }
        self.boot_time = None; // the filters stay: BFE's start removes them
        Teardown::Complete
    }

    /// The event log (ring, parked reads), once DriverEntry created it.
    pub fn events(&self) -> Option<&EventLog> {
        self.events.as_deref()
    }
}

/// Opens the dynamic session and adds Weir's objects, unless a session exists
/// or shutdown began. Called with BFE running: from DriverEntry (whose failure
/// it is) and from the BFE callback (which traces it and waits for the next
/// start).
fn start_filtering(reason: &str) -> Result<()> {
    let Some(mut session) = FILTERING.lock() else { return Ok(()) };
    let was_open = session.is_open();
    let open = session.start(|| {
        let engine = Engine::open_dynamic(ids::SESSION_NAME, ids::SESSION_DESCRIPTION)?;
        crate::failsafe::before_filtering(&engine);
        let filter_ids = add_filtering_objects(&engine)?;
        Ok(Filtering { engine, filter_ids })
    })?;
    if open {
        ACTIVE.store(true, Ordering::Release);
        if !was_open {
            crate::etw::filtering(true, reason);
        }
    }
    Ok(())
}

/// Closes the session (if any) and, with `stopping`, keeps it closed.
fn close_session(stopping: bool) {
    let Some(mut session) = FILTERING.lock() else { return };
    ACTIVE.store(false, Ordering::Release);
    if let Some(engine) = session.close(stopping) {
        drop(engine);
        crate::etw::filtering(false, if stopping { "unload" } else { "BFE stopping" });
    }
}

fn stop_filtering() {
    close_session(true);
}

/// The BFE state callback's work (PASSIVE_LEVEL, so `Fwpm*` calls are fine
/// here): on RUNNING re-open the session and re-add everything; on
/// STOP_PENDING or STOPPED close the session (its objects are going or gone)
/// and report "not filtering". Other states change nothing.
pub fn on_bfe_state(state: BfeState) {
    match state {
        BfeState::Running => match start_filtering("BFE running") {
            Ok(()) if filtering() => trace::info(format_args!("weir: BFE running; filtering")),
            Ok(()) => {}
            Err(status) => trace::error(format_args!(
                "weir: BFE running but Weir's filters could not be added ({status}); not filtering until BFE restarts"
            )),
        },
        BfeState::StopPending | BfeState::Stopped => {
            if filtering() {
                trace::error(format_args!("weir: BFE stopping ({state:?}); not filtering until it runs again"));
            }
            close_session(false);
        }
        BfeState::StartPending | BfeState::Other(_) => {}
    }
}

/// One request to the control device, completed by the caller with the
/// returned status and byte count (exactly once: the kernel boundary consumes
/// the IRP when completing it). `major` is the stack location's `IRP_MJ_*`
/// code, `control` the device-control parameters (for DEVICE_CONTROL), and
/// `buffer` the METHOD_BUFFERED system buffer viewed as max(input, output)
/// bytes, input first, already initialised. Access control happened before: the I/O manager
/// checked the device's DACL on IRP_MJ_CREATE and each IOCTL's required
/// access against the handle.
pub fn dispatch(
    major: Option<u8>,
    control: Option<wfp_km::irp::DeviceControl>,
    buffer: Option<&mut [u8]>,
    ctx: &crate::ioctl::Context<'_>,
) -> (wfp_km::NtStatus, usize) {
    use wfp_km::device::major as mj;
    use wfp_km::NtStatus;
    match major {
        Some(mj::CREATE | mj::CLOSE | mj::CLEANUP) => (NtStatus::SUCCESS, 0),
        Some(mj::DEVICE_CONTROL) => match control {
            Some(request) => crate::ioctl::device_control(request, buffer, ctx),
            None => (NtStatus::INVALID_PARAMETER, 0),
        },
        _ => (NtStatus::INVALID_DEVICE_REQUEST, 0),
    }
}

/// In one transaction: the sublayer, a callout per layer and a filter per
/// layer that sends every authorization there. If anything fails, the
/// transaction guard aborts. Returns the filters' run-time ids by layer.
fn add_filtering_objects(engine: &Engine) -> Result<[u64; 4]> {
    let txn = engine.begin()?;
    txn.add_sublayer(&SubLayer {
        key: ids::SUBLAYER_KEY,
        name: ids::SUBLAYER_NAME,
        description: ids::SUBLAYER_DESCRIPTION,
        weight: ids::SUBLAYER_WEIGHT,
        flags: 0,
        provider: None,
    })?;
    for layer in AleLayer::ALL {
        txn.add_callout(&management_callout(layer))?;
    }
    // 0 = no filter: while closed without a policy the fail-closed set decides.
    let mut filter_ids = [0u64; 4];
    if crate::failsafe::callouts_decide(&crate::policy::STORE) {
        for (layer, id) in AleLayer::ALL.into_iter().zip(filter_ids.iter_mut()) {
            *id = txn.add_filter(&filter(layer))?;
        }
    }
    txn.commit()?;
    Ok(filter_ids)
}

// ---------------------------------------------------------------------------
// The stored policy and reauthorization (see `crate::policy` for the format
// checks and `docs/deployment.md` for what administrators do with them).
// ---------------------------------------------------------------------------

/// Where the stored policy lives: a file, not a registry value, because a
/// blob may be 64 MiB and the SYSTEM hive (which holds the service key) is
/// loaded whole by the boot loader; `\SystemRoot` resolves at system start.
/// The directory's DACL (set by the install script) admits writes by SYSTEM
/// and Administrators only.
pub const STORED_POLICY_PATH: wfp_km::strings::WStr = wfp_km::wstr!("\\SystemRoot\\System32\\drivers\\weir\\weir.policy");

/// The stored policy file's bytes: the kernel reads the file; host tests
/// (which have no kernel to link against) see no file.
fn read_stored() -> crate::policy::StoredRead {
    #[cfg(all(target_os = "windows", not(test)))]
    return wfp_km::file::read_all(STORED_POLICY_PATH, crate::policy::MAX_STORED_BYTES);
    #[cfg(not(all(target_os = "windows", not(test))))]
    Err(wfp_km::file::ReadError::Status(wfp_km::NtStatus::OBJECT_NAME_NOT_FOUND))
}

/// DriverEntry's stored-policy step: read, check, publish. Never fails the
/// start: a refusal is traced and recorded (GET_POLICY_STATUS), and Weir
/// starts with no policy (monitor mode). PASSIVE_LEVEL.
fn load_stored_policy(store: &crate::policy::PolicyStore) {
    match store.load_stored(read_stored()) {
        Ok(o) => trace::info(format_args!(
            "weir: stored policy loaded: generation {}, {} rules", o.generation, o.rule_count
        )),
        Err(s) if s == wfp_km::NtStatus::OBJECT_NAME_NOT_FOUND || s == wfp_km::NtStatus::OBJECT_PATH_NOT_FOUND => {
            trace::info(format_args!("weir: no stored policy ({s}); monitor mode until a policy is set"))
        }
        Err(s) => trace::error(format_args!("weir: stored policy refused: {s}; monitor mode until a policy is set")),
    }
}

/// RELOAD_POLICY: DriverEntry's stored-policy step again, and on success the
/// reauthorization of existing connections. PASSIVE_LEVEL.
pub fn reload_stored(store: &crate::policy::PolicyStore) -> core::result::Result<crate::policy::SetOutcome, wfp_km::NtStatus> {
    let outcome = store.load_stored(read_stored());
    match &outcome {
        Ok(_) => policy_changed(),
        // Host tests link no DbgPrintEx: the kernel build traces.
        #[cfg(all(target_os = "windows", not(test)))]
        Err(s) => trace::error(format_args!("weir: stored policy refused on reload: {s}; the active policy is unchanged")),
        #[cfg(not(all(target_os = "windows", not(test))))]
        Err(_) => {}
    }
    outcome
}

/// After a new policy is published (SET_POLICY, RELOAD_POLICY): make WFP
/// reauthorize the connections that exist, so the new policy decides them.
/// PASSIVE_LEVEL. A no-op in host tests (no filter engine).
pub fn policy_changed() {
    #[cfg(all(target_os = "windows", not(test)))]
    reauthorize();
}

/// Replaces Weir's four filters (delete and add again, same keys) in one
/// transaction. A filter change at an ALE authorization layer is what makes
/// WFP reauthorize the existing flows at that layer (each comes back to
/// classifyFn with `FWP_CONDITION_FLAG_IS_REAUTHORIZE`); one transaction
/// means there is no instant without Weir's filter. If any step fails, the
/// transaction aborts and the old filters stay (the policy is still the new
/// one for new connections; existing ones keep their verdict), traced.
/// Not filtering (BFE down): nothing to do, the filters added when BFE
/// returns cause the reauthorization then. PASSIVE_LEVEL.
#[cfg_attr(not(all(target_os = "windows", not(test))), allow(dead_code))]
fn reauthorize() {
    let Some(mut slot) = FILTERING.lock() else { return };
    // None: no session (BFE down, or shutdown began, which also took it out).
    let Some(session) = slot.open_mut() else { return };
    let old = session.filter_ids;
    let engine = &session.engine;
    let replaced = (|| -> Result<[u64; 4]> {
        let txn = engine.begin()?;
        let mut ids = [0u64; 4];
        for ((layer, old_id), new_id) in AleLayer::ALL.into_iter().zip(old).zip(ids.iter_mut()) {
            if old_id != 0 {
                txn.delete_filter(old_id)?;
            }
            *new_id = txn.add_filter(&filter(layer))?;
        }
        txn.commit()?;
        Ok(ids)
    })();
    match replaced {
        Ok(ids) => session.filter_ids = ids,
        Err(s) => trace::error(format_args!(
            "weir: replacing the filters to reauthorize existing connections failed ({s}); they keep their verdicts"
        )),
    }
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
/// callout is ever gone while the filter still exists (fail open). While
/// FailMode is closed, `crate::failsafe::place` moves it above the
/// fail-closed block instead.
pub fn filter(layer: AleLayer) -> CalloutFilter {
    crate::failsafe::place(CalloutFilter {
        key: ids::layer_ids(layer).filter_key,
        name: ids::layer_ids(layer).filter_name,
        description: ids::FILTER_DESCRIPTION,
        layer: layer.layer_key(),
        sublayer: ids::SUBLAYER_KEY,
        callout: ids::layer_ids(layer).callout_key,
        action_type: FWP_ACTION_CALLOUT_TERMINATING,
        flags: FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED,
        weight: None,
    })
}

/// The four run-time callout registrations, unregistered in reverse order.
struct Callouts {
    registrations: [Option<Registration>; 4],
}

impl Callouts {
    const fn new() -> Self {
        Self { registrations: [None, None, None, None] }
    }

    fn register(&mut self, device: &ControlDevice, callbacks: &Callbacks) -> Result<()> {
        for (layer, slot) in AleLayer::ALL.into_iter().zip(self.registrations.iter_mut()) {
            let fns = CalloutFns {
                key: ids::layer_ids(layer).callout_key,
                classify: callbacks.classify,
                notify: callbacks.notify,
                flow_delete: callbacks.flow_delete,
            };
            *slot = Some(Registration::register(device, &fns)?);
        }
        Ok(())
    }

    /// Unregisters every registration, newest first. False if one could not
    /// be removed (it stays in its slot; the others are still tried).
    fn unregister_all(&mut self) -> bool {
        let mut all = true;
        for slot in self.registrations.iter_mut().rev() {
            if let Some(registration) = slot.take() {
                if let Err(left) = registration.unregister() {
                    *slot = Some(left);
                    all = false;
                }
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use wfp_km::GUID;

    const GUARD: usize = 16;

    fn ctx() -> crate::ioctl::Context<'static> {
        crate::ioctl::Context {
            version: ids::VERSION,
            counters: &crate::classify::COUNTERS,
            store: &crate::policy::STORE,
            filtering: 0,
            event_drops: 0,
        }
    }

    proptest! {
        /// The whole request path as the kernel boundary drives it (the same
        /// shape as the cargo-fuzz target fuzz/fuzz_targets/control_request.rs,
        /// run by `cargo test`): any major function, code, lengths and bytes
        /// give one completion, no panic, 0 bytes on error, never more bytes
        /// than the output length, nothing written past the system buffer.
        #[test]
        fn any_request_completes_once_within_bounds(
            major_function in prop_oneof![Just(0u8), Just(2), Just(0x0e), Just(0x12), any::<u8>()],
            code in prop_oneof![
                Just(weir_abi::ioctl::IOCTL_WEIR_GET_STATS), Just(weir_abi::ioctl::IOCTL_WEIR_SET_POLICY),
                Just(weir_abi::ioctl::IOCTL_WEIR_GET_POLICY), Just(weir_abi::ioctl::IOCTL_WEIR_READ_EVENTS), any::<u32>()],
            input_len in 0u32..600,
            output_len in 0u32..600,
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let max = input_len.max(output_len) as usize;
            let mut system = vec![0xA5u8; max + GUARD];
            for (d, s) in system.iter_mut().zip(bytes.iter().take(input_len as usize)) { *d = *s; }
            for b in system.iter_mut().take(max).skip(input_len as usize) { *b = 0; }
            let (head, guard) = system.split_at_mut(max);
            let control = (major_function == 0x0e).then_some(wfp_km::irp::DeviceControl { code, input_len, output_len });
            let buffer = if max == 0 { None } else { Some(head) };
            let (status, information) = dispatch(Some(major_function), control, buffer, &ctx());
            prop_assert_ne!(status.raw(), 0x103, "left pending");
            if (status.raw() as u32) >> 30 == 3 {
                prop_assert_eq!(information, 0);
            }
            prop_assert!(information <= output_len as usize);
            prop_assert!(guard.iter().all(|b| *b == 0xA5));
        }
    }

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
