//! The kernel boundary: every entry point the kernel calls, turning raw
//! pointers into `wfp-km`'s safe views and handing them to the safe modules.
//! This is the driver's only module with `unsafe` code.

use crate::classify::{on_classify, Applied, Outcome, COUNTERS};
use crate::driver::{self, Callbacks, Driver, Teardown};
use crate::events::{event_for, EventLog};
use crate::{etw, ids, ioctl, policy};
use core::ffi::c_void;
use core::net::SocketAddr;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, IRP};
use windows_sys::Win32::Foundation::UNICODE_STRING;
use wfp_km::classify::{ClassifyOut, Filter, IncomingValues, Metadata};
use wfp_km::bfe::BfeState;
use wfp_km::device::{major, DriverObject};
use wfp_km::sys::fwpm::FWPM_SERVICE_STATE;
use wfp_km::irp::Irp;
use wfp_km::pool::PoolBox;
use wfp_km::sync::critical::CriticalRegion;
use wfp_km::sys::fwps::{
    FWPS_CALLOUT_NOTIFY_TYPE, FWPS_CLASSIFY_OUT0, FWPS_FILTER3, FWPS_INCOMING_METADATA_VALUES0,
    FWPS_INCOMING_VALUES0,
};
use wfp_km::{trace, NtStatus, GUID};

/// The loaded driver's state: null before DriverEntry succeeds and after
/// DriverUnload.
static DRIVER: AtomicPtr<Driver> = AtomicPtr::new(ptr::null_mut());

/// The event log inside `DRIVER`, for classify and dispatch: published
/// once its DPC is initialised, cleared by DriverUnload *before* shutdown
/// frees the log. Lifetime argument: shutdown frees the log only after the
/// callouts are unregistered (no classify runs, and any classify that
/// loaded the pointer before it was cleared has returned), with its DPC
/// flushed and every parked read completed; dispatch routines do not run
/// during unload; the cancel routine and the DPC never read this pointer
/// (they get the queue or the log from the IRP or the DPC's context). If
/// shutdown leaves registrations pinned, the log is leaked with the state
/// and stays valid. So no load of this pointer can see freed memory.
static EVENTS: AtomicPtr<EventLog> = AtomicPtr::new(ptr::null_mut());

fn events() -> Option<&'static EventLog> {
    // SAFETY: null or the live log (see EVENTS); only shared references
    // are made, and EventLog is Sync.
    unsafe { EVENTS.load(Ordering::Acquire).as_ref() }
}

/// DriverEntry: set the dispatch table, then run [`Driver::start`].
///
/// # Safety
/// Called once by the I/O manager at PASSIVE_LEVEL with this driver's object.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver_object: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
) -> i32 {
    // SAFETY: the I/O manager passes the service key's name (or null),
    // valid during DriverEntry.
    if let Some(key) = unsafe { registry_path.as_ref() } {
        trace::set_trace_level(trace::load_trace_level(key).unwrap_or(0));
        let fail_mode = trace::load_parameter_dword(key, crate::failsafe::FAIL_MODE_VALUE);
        crate::failsafe::set_mode(crate::failsafe::FailMode::from_registry(fail_mode));
        if crate::failsafe::mode() == crate::failsafe::FailMode::Closed {
            crate::failsafe::set_allow_list(wfp_km::registry::read_parameter(
                key,
                crate::failsafe::ALLOW_VALUE,
                wfp_km::sys::ntos::REG_MULTI_SZ,
                weir_failsafe::MAX_VALUE_BYTES,
            ));
        }
    }
    // SAFETY: the I/O manager passes our DRIVER_OBJECT; we are DriverEntry.
    let Some(mut driver) = (unsafe { DriverObject::from_raw(driver_object) }) else {
        return NtStatus::INVALID_PARAMETER.raw();
    };
    driver.set_unload(Some(driver_unload));
    for code in [major::CREATE, major::CLOSE, major::CLEANUP, major::DEVICE_CONTROL] {
        driver.set_dispatch(code, Some(dispatch));
    }
    let callbacks = Callbacks {
        classify: Some(classify),
        notify: Some(notify),
        flow_delete: Some(flow_delete),
        bfe_state: Some(bfe_state_changed),
    };
    match Driver::start(&driver, &callbacks) {
        Ok(state) => {
            if let Some(log) = state.events() {
                // SAFETY: the log lives in pool memory owned by `state` and
                // does not move; it outlives its DPC (EventLog's drop flushes
                // it before the memory goes). Not queued yet: nothing reaches
                // the log before EVENTS is published below.
                unsafe { log.dpc().init(events_dpc, ptr::from_ref(log).cast()) };
                EVENTS.store(ptr::from_ref(log).cast_mut(), Ordering::Release);
            }
            DRIVER.store(PoolBox::into_raw(state), Ordering::Release);
            trace::info(format_args!("weir: started, version {:?}", ids::VERSION));
            crate::etw::lifecycle(true);
            NtStatus::SUCCESS.raw()
        }
        Err(status) => {
            trace::error(format_args!("weir: DriverEntry failed: {status}"));
            status.raw()
        }
    }
}

/// DriverUnload: `Driver::shutdown` (see `driver` for the order), then free
/// the state, unless shutdown reports it pinned: then it is leaked on purpose
/// (with the device, which keeps this image mapped). Does nothing if there is
/// no state (a failed start, or a second call).
unsafe extern "system" fn driver_unload(_driver_object: *const DRIVER_OBJECT) {
    // Before anything can free the log: classify (until its callout is
    // unregistered) then finds no log and records nothing.
    EVENTS.store(ptr::null_mut(), Ordering::Release);
    let raw = DRIVER.swap(ptr::null_mut(), Ordering::AcqRel);
    if let Some(raw) = NonNull::new(raw) {
        // SAFETY: `raw` came from PoolBox::into_raw in DriverEntry and the
        // swap above gave us sole ownership.
        let mut state = unsafe { PoolBox::from_raw(raw) };
        match state.shutdown() {
            Teardown::Complete => drop(state),
            Teardown::Pinned => {
                let _ = PoolBox::into_raw(state);
                trace::error(format_args!("weir: unloaded with registrations left; state and device leaked"));
                return;
            }
        }
    }
    // Callouts are unregistered and the device is gone: nothing reads or
    // sets the policy any more.
    policy::STORE.release();
    trace::info(format_args!("weir: unloaded"));
}

/// FWPM_SERVICE_STATE_CHANGE_CALLBACK0: called by the filter engine at
/// PASSIVE_LEVEL whenever BFE changes state. Reaches only statics.
unsafe extern "system" fn bfe_state_changed(_context: *mut c_void, new_state: FWPM_SERVICE_STATE) {
    driver::on_bfe_state(BfeState::from_raw(new_state));
}

/// One dispatch routine for every major function Weir handles. Every shared
/// section a request enters (the policy read sections, GET_POLICY's copy,
/// the setter lock and grace period, a drain of the event reader table) runs
/// inside a critical region (`wfp_km::sync::critical`), so a suspended
/// thread cannot stretch it; the IRP is completed after the region is left,
/// as the last thing the routine does.
unsafe extern "system" fn dispatch(_device: *const DEVICE_OBJECT, irp: *mut IRP) -> i32 {
    // SAFETY: the I/O manager passes the IRP for this dispatch call, and every
    // path below completes it exactly once through `Irp::complete`.
    let Some(mut irp) = (unsafe { Irp::from_raw(irp) }) else {
        return NtStatus::INVALID_PARAMETER.raw();
    };
    let major_function = irp.major_function();
    let control = irp.device_control().filter(|_| major_function == Some(major::DEVICE_CONTROL));
    if let Some(request) = control.filter(|c| c.code == weir_abi::ioctl::IOCTL_WEIR_READ_EVENTS) {
        // Completes the IRP, or parks it (STATUS_PENDING); drains inside a
        // critical region of its own.
        return match events() {
            Some(log) => log.read(irp, request).raw(),
            None => irp.complete(NtStatus::INVALID_DEVICE_REQUEST, 0).raw(),
        };
    }
    if major_function == Some(major::CLEANUP) {
        if let Some(log) = events() {
            log.cleanup(&irp);
        }
    }
    if major_function == Some(major::CLOSE) {
        if let Some(log) = events() {
            log.release(&irp);
        }
    }
    let (status, information) = CriticalRegion::run(|| {
        let len = control.map_or(0, |c| usize::try_from(c.input_len.max(c.output_len)).unwrap_or(0));
        let ctx = ioctl::Context {
            version: ids::VERSION,
            counters: &COUNTERS,
            store: &policy::STORE,
            filtering: if driver::filtering() { weir_abi::stats::FILTERING_ACTIVE } else { 0 },
            event_drops: events().map_or(0, |log| log.totals().1),
        };
        let (status, information) = driver::dispatch(major_function, control, irp.buffered(len), &ctx);
        // SET_POLICY and RELOAD_POLICY publish a policy; a refused one changes nothing.
        let source = match control.map(|c| c.code) {
            Some(weir_abi::IOCTL_WEIR_SET_POLICY) => Some("IOCTL_WEIR_SET_POLICY"),
            Some(weir_abi::IOCTL_WEIR_RELOAD_POLICY) => Some("IOCTL_WEIR_RELOAD_POLICY"),
            _ => None,
        };
        if let Some(source) = source.filter(|_| status.is_success()) {
            // Monitor mode (no policy) records every connection; with a
            // policy, blocks, rules marked `log` and the policy's `log_all`
            // (docs/events.md).
            if let Some(log) = events() {
                log.set_log_all(policy::STORE.log_all());
            }
            policy::STORE.read(|p| {
                if let Some(p) = p {
                    etw::policy_changed(&weir_etw::weir::PolicyChange {
                        generation: p.generation(),
                        rule_count: u32::try_from(p.rules().len()).unwrap_or(u32::MAX),
                        blob: p.blob(),
                        source,
                        process_id: wfp_km::sync::current_process_id(),
                    });
                }
            });
        }
        (status, information)
    });
    irp.complete(status, information).raw()
}

/// classifyFn for all four layers. IRQL <= DISPATCH_LEVEL.
unsafe extern "system" fn classify(
    in_fixed_values: *const FWPS_INCOMING_VALUES0,
    in_meta_values: *const FWPS_INCOMING_METADATA_VALUES0,
    _layer_data: *mut c_void,
    _classify_context: *const c_void,
    filter: *const FWPS_FILTER3,
    _flow_context: u64,
    classify_out: *mut FWPS_CLASSIFY_OUT0,
) {
    // SAFETY: the filter engine passes these pointers (each possibly null) for
    // the duration of this call; the views do not outlive it, and
    // classify_out is referenced only through `out`.
    let (values, meta, filter, out) = unsafe {
        (
            IncomingValues::from_raw(in_fixed_values),
            Metadata::from_raw(in_meta_values),
            Filter::from_raw(filter),
            ClassifyOut::from_raw(classify_out),
        )
    };
    let (Some(values), Some(mut out)) = (values, out) else { return };
    // classifyFn may run at PASSIVE_LEVEL (ALE layers): the policy read
    // section and the ring's claim-to-publish window then run inside a
    // critical region; at DISPATCH_LEVEL this costs one call.
    let _region = CriticalRegion::enter();
    if let Some(outcome) = on_classify(&COUNTERS, &policy::STORE, &values, meta.as_ref(), filter.as_ref(), &mut out) {
        // With no ETW session: one load and one branch (etw::wants_connections).
        let etw = etw::wants_connections() && etw::wants(&outcome);
        let log = events().filter(|log| log.wants(&outcome));
        if etw || log.is_some() {
            let time = wfp_km::sync::system_time_precise();
            let event = event_for(&outcome, &values, meta.as_ref(), time);
            if let Some(log) = log {
                if !log.record(&event) {
                    etw::events_dropped(log.totals().1);
                }
            }
            if etw {
                etw::connection(&event, &values);
            }
        }
        if trace::connection_traces() {
            trace_outcome(&outcome);
        }
    }
}

/// The event log's DPC: completes parked reads (DISPATCH_LEVEL).
unsafe extern "system" fn events_dpc(
    _dpc: *mut windows_sys::Wdk::Foundation::KDPC,
    context: *mut c_void,
    _argument1: *mut c_void,
    _argument2: *mut c_void,
) {
    // SAFETY: the context is the live EventLog this DPC belongs to (Dpc::init
    // in driver_entry); the log flushes the DPC before it is freed.
    if let Some(log) = unsafe { context.cast::<EventLog>().cast_const().as_ref() } {
        log.complete_waiting();
    }
}

fn trace_outcome(o: &Outcome) {
    let verdict = match o.applied {
        Applied::Permitted => "permit",
        Applied::Blocked => "block",
        Applied::WriteRightAbsent => "no-write-right",
    };
    let rule = o.decision.and_then(|d| d.rule).map_or(-1, |(_, id)| i64::from(id));
    let pid = o.process_id.unwrap_or(0);
    match o.connection {
        Some(c) => trace::info(format_args!(
            "weir: {} {} rule {} proto {} local {} remote {} pid {}",
            o.layer.name(),
            verdict,
            rule,
            c.protocol,
            SocketAddr::new(c.local, c.local_port),
            SocketAddr::new(c.remote, c.remote_port),
            pid
        )),
        None => trace::info(format_args!("weir: {} {} rule {} (incomplete fields) pid {}", o.layer.name(), verdict, rule, pid)),
    }
}

/// notifyFn: Weir keeps no per-filter state, so every notification is fine.
unsafe extern "system" fn notify(
    _notify_type: FWPS_CALLOUT_NOTIFY_TYPE,
    _filter_key: *const GUID,
    _filter: *mut FWPS_FILTER3,
) -> i32 {
    NtStatus::SUCCESS.raw()
}

/// flowDeleteFn: Weir associates no flow contexts.
unsafe extern "system" fn flow_delete(_layer_id: u16, _callout_id: u32, _flow_context: u64) {}
