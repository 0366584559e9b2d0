//! An ETW provider: `EtwRegister` on creation, `EtwUnregister` on drop, and
//! TraceLogging events written with `EtwWriteTransfer`.
//!
//! # How a writer decides
//!
//! ETW calls the enable callback whenever a session enables or disables the
//! provider, passing the level and keywords it now wants. The callback
//! stores them in [`ProviderState`]'s atomics, so a writer (classifyFn, at
//! up to DISPATCH_LEVEL) pays one relaxed load and one branch when nothing
//! is enabled ([`ProviderState::keywords`]), and calls nothing. A keyword
//! mask of 0 from ETW means "every keyword" and a level of 0 "every level",
//! as evntprov.h defines them; both are stored in that widened form.
//!
//! # Why relaxed atomics suffice
//!
//! The level and the keywords are hints: a writer that reads a stale value
//! writes one event no session wants (ETW filters each event per session
//! again) or skips one event written while a session was being enabled,
//! which ETW allows. No memory is published through them. The registration
//! handle is written once, before any writer can see this provider through
//! the driver's state, and cleared only in [`Drop`], which the driver runs
//! after every writer is gone (callouts unregistered, BFE unsubscribed, the
//! device deleted; see `src/driver.rs`).
//!
//! # Metadata
//!
//! Each event carries three data descriptors: the provider's metadata
//! (type `EVENT_DATA_DESCRIPTOR_TYPE_PROVIDER_METADATA`), the event's
//! metadata (`..._EVENT_METADATA`) and the payload, as TraceLoggingProvider.h
//! writes them; the encoding is `weir_etw::encode`.

use crate::status::{NtStatus, Result};

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};
use weir_etw::Builder;
use wfp_km_sys::etw::{
    EtwRegister, EtwUnregister, EtwWriteTransfer, EVENT_CONTROL_CODE_DISABLE_PROVIDER,
    EVENT_CONTROL_CODE_ENABLE_PROVIDER, EVENT_DATA_DESCRIPTOR, EVENT_DATA_DESCRIPTOR_TYPE_EVENT_METADATA,
    EVENT_DATA_DESCRIPTOR_TYPE_NONE, EVENT_DATA_DESCRIPTOR_TYPE_PROVIDER_METADATA, EVENT_DESCRIPTOR,
    EVENT_FILTER_DESCRIPTOR, REGHANDLE,
};
use wfp_km_sys::GUID;

/// What the enable callback last said, and the registration handle. A
/// `static` in the driver, so classifyFn reaches it with no context.
///
/// # Invariants
///
/// `handle` is 0 or a live registration of this state's provider (set by
/// [`Provider::register`], cleared by its drop before `EtwUnregister`).
pub struct ProviderState {
    handle: AtomicU64,
    /// Keywords any session enabled; 0 when none is enabled.
    keywords: AtomicU64,
    /// Highest level any session enabled (255: all).
    level: AtomicU8,
    /// Enable callbacks seen (for diagnostics and tests).
    enables: AtomicU64,
    metadata: &'static [u8],
}

impl ProviderState {
    /// A disabled, unregistered provider whose events carry `metadata`
    /// (`weir_etw::provider::METADATA`).
    pub const fn new(metadata: &'static [u8]) -> Self {
        Self {
            handle: AtomicU64::new(0),
            keywords: AtomicU64::new(0),
            level: AtomicU8::new(0),
            enables: AtomicU64::new(0),
            metadata,
        }
    }

    /// The keyword bits some session enabled; 0 when the provider is off.
    /// One relaxed load: the whole cost of a disabled provider. IRQL: any.
    #[inline(always)]
    pub fn keywords(&self) -> u64 {
        self.keywords.load(Ordering::Relaxed)
    }

    /// Whether an event of `level` under `keyword` is wanted. IRQL: any.
    #[inline]
    pub fn enabled(&self, level: u8, keyword: u64) -> bool {
        self.keywords() & keyword != 0 && level <= self.level.load(Ordering::Relaxed)
    }

    /// The registration handle, if an event of `level` under `keyword` is
    /// wanted and the provider is registered.
    fn handle_if_wanted(&self, level: u8, keyword: u64) -> Option<REGHANDLE> {
        if !self.enabled(level, keyword) {
            return None;
        }
        let handle: REGHANDLE = self.handle.load(Ordering::Acquire);
        (handle != 0).then_some(handle)
    }

    /// How many enable/disable callbacks ETW made.
    pub fn enable_callbacks(&self) -> u64 {
        self.enables.load(Ordering::Relaxed)
    }

    /// The enable callback's work: remember what sessions want. Capture-state
    /// requests change nothing. IRQL: any.
    pub fn on_enable(&self, control_code: u32, level: u8, match_any_keyword: u64) {
        self.enables.fetch_add(1, Ordering::Relaxed);
        match control_code {
            EVENT_CONTROL_CODE_ENABLE_PROVIDER => {
                self.level.store(if level == 0 { u8::MAX } else { level }, Ordering::Relaxed);
                let keywords = if match_any_keyword == 0 { u64::MAX } else { match_any_keyword };
                self.keywords.store(keywords, Ordering::Relaxed);
            }
            EVENT_CONTROL_CODE_DISABLE_PROVIDER => {
                self.keywords.store(0, Ordering::Relaxed);
                self.level.store(0, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Writes `event` if it is enabled and the provider registered; returns
    /// whether `EtwWriteTransfer` was called and succeeded. Events that ETW
    /// cannot take (no buffer, too large) are lost: ETW counts them per
    /// session. IRQL: any (the buffers are on the caller's non-paged stack).
    pub fn write(&self, event: &mut Builder) -> bool {
        let d = event.descriptor();
        let Some(handle) = self.handle_if_wanted(d.level, d.keyword) else { return false };
        let descriptor = EVENT_DESCRIPTOR {
            Channel: weir_etw::encode::CHANNEL_TRACELOGGING,
            Level: d.level,
            Keyword: d.keyword,
            ..EVENT_DESCRIPTOR::default()
        };
        let block = |bytes: &[u8], kind: u32| EVENT_DATA_DESCRIPTOR {
            Ptr: bytes.as_ptr() as u64,
            Size: u32::try_from(bytes.len()).unwrap_or(0),
            Reserved: kind,
        };
        let provider = block(self.metadata, EVENT_DATA_DESCRIPTOR_TYPE_PROVIDER_METADATA);
        let meta = block(event.metadata(), EVENT_DATA_DESCRIPTOR_TYPE_EVENT_METADATA);
        let data = [provider, meta, block(event.payload(), EVENT_DATA_DESCRIPTOR_TYPE_NONE)];
        // SAFETY: type invariant: `handle` is a live registration (writers
        // run only while the Provider exists, see the module doc). The
        // descriptor and the three blocks live on this stack frame (or in
        // the image, for the provider metadata) for the whole call, and
        // their lengths are the ones passed. ETW copies the data before it
        // returns.
        let status = unsafe {
            EtwWriteTransfer(handle, &descriptor, ptr::null(), ptr::null(), data.len() as u32, data.as_ptr())
        };
        NtStatus::check(status).is_ok()
    }
}

/// A registered ETW provider. Calls `EtwRegister` on creation and
/// `EtwUnregister` on drop.
///
/// # Invariants
///
/// `state.handle` holds this registration's handle until drop.
#[must_use = "dropping the provider unregisters it (EtwUnregister)"]
pub struct Provider {
    state: &'static ProviderState,
}

impl Provider {
    /// Registers provider `id`, whose enable callback updates `state`.
    ///
    /// # Errors
    /// The status of `EtwRegister` (e.g. STATUS_INSUFFICIENT_RESOURCES).
    ///
    /// IRQL: PASSIVE_LEVEL.
    pub fn register(state: &'static ProviderState, id: &GUID) -> Result<Self> {
        let mut handle: REGHANDLE = 0;
        // SAFETY: `id` and `handle` are valid for the call; the context is
        // a `&'static ProviderState`, which `enable_callback` reads back as
        // one and which outlives the registration; PASSIVE_LEVEL (caller).
        let status = unsafe {
            EtwRegister(id, Some(enable_callback), ptr::from_ref(state).cast_mut().cast(), &mut handle)
        };
        NtStatus::check(status)?;
        // INVARIANT: the live handle is published for writers.
        state.handle.store(handle, Ordering::Release);
        Ok(Self { state })
    }

    /// The state the enable callback keeps.
    pub fn state(&self) -> &'static ProviderState {
        self.state
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let handle = self.state.handle.swap(0, Ordering::AcqRel);
        self.state.keywords.store(0, Ordering::Relaxed);
        if handle != 0 {
            // SAFETY: type invariant: `handle` is our live registration, and
            // the swap above made this the only use of it; no writer runs
            // any more (module doc). After EtwUnregister returns no enable
            // callback runs, so `state` is no longer reached through it.
            let status = unsafe { EtwUnregister(handle) };
            if let Err(s) = NtStatus::check(status) {
                crate::trace::failed("EtwUnregister", s);
            }
        }
    }
}

/// ETWENABLECALLBACK: hands what the session asked for to the state.
unsafe extern "system" fn enable_callback(
    _source_id: *const GUID,
    control_code: u32,
    level: u8,
    match_any_keyword: u64,
    _match_all_keyword: u64,
    _filter_data: *const EVENT_FILTER_DESCRIPTOR,
    callback_context: *mut c_void,
) {
    // SAFETY: the context is the `&'static ProviderState` given to
    // EtwRegister (Provider::register); it is only read through `&`.
    if let Some(state) = unsafe { callback_context.cast::<ProviderState>().cast_const().as_ref() } {
        state.on_enable(control_code, level, match_any_keyword);
    }
}

/// Where [`crate::trace::error`] also sends its messages (`Error` events);
/// null until [`set_error_sink`].
static ERROR_SINK: AtomicPtr<ProviderState> = AtomicPtr::new(ptr::null_mut());

/// Makes every traced error also an ETW `Error` event of `state`'s
/// provider (or stops it, with `None`). IRQL: any.
pub fn set_error_sink(state: Option<&'static ProviderState>) {
    ERROR_SINK.store(state.map_or(ptr::null_mut(), |s| ptr::from_ref(s).cast_mut()), Ordering::Release);
}

/// Writes `message` as an `Error` event if a sink is set and a session
/// enabled errors. IRQL: any.
pub(crate) fn error_event(message: &str) {
    // SAFETY: null or a `&'static ProviderState` (set_error_sink takes
    // only those); only shared references are made.
    let Some(state) = (unsafe { ERROR_SINK.load(Ordering::Acquire).as_ref() }) else { return };
    if state.enabled(weir_etw::encode::level::ERROR, weir_etw::weir::keyword::ERRORS) {
        write_error(state, message);
    }
}

#[inline(never)]
fn write_error(state: &ProviderState, message: &str) {
    let mut event = weir_etw::weir::error(message);
    state.write(&mut event);
}

#[cfg(test)]
mod tests {
    use super::*;

    static META: [u8; 7] = *b"\x07\x00Weir\x00";

    #[test]
    fn a_disabled_provider_wants_nothing() {
        let s = ProviderState::new(&META);
        assert_eq!(s.keywords(), 0);
        assert!(!s.enabled(1, u64::MAX));
    }

    #[test]
    fn enable_stores_level_and_keywords_and_disable_clears_them() {
        let s = ProviderState::new(&META);
        s.on_enable(EVENT_CONTROL_CODE_ENABLE_PROVIDER, 4, 0x2);
        assert!(s.enabled(4, 0x3), "keyword 0x3 shares bit 0x2");
        assert!(!s.enabled(5, 0x2), "verbose is above level 4");
        assert!(!s.enabled(4, 0x1), "keyword 0x1 not enabled");
        s.on_enable(wfp_km_sys::etw::EVENT_CONTROL_CODE_CAPTURE_STATE, 1, 0);
        assert!(s.enabled(4, 0x2), "capture state changes nothing");
        s.on_enable(EVENT_CONTROL_CODE_DISABLE_PROVIDER, 0, 0);
        assert!(!s.enabled(1, u64::MAX));
        assert_eq!(s.enable_callbacks(), 3);
    }

    #[test]
    fn zero_keyword_and_level_mean_everything() {
        let s = ProviderState::new(&META);
        s.on_enable(EVENT_CONTROL_CODE_ENABLE_PROVIDER, 0, 0);
        assert!(s.enabled(5, 0x20));
        assert!(s.enabled(255, 1 << 40));
    }

    #[test]
    fn an_unregistered_provider_writes_nothing_even_when_enabled() {
        let s = ProviderState::new(&META);
        s.on_enable(EVENT_CONTROL_CODE_ENABLE_PROVIDER, 5, u64::MAX);
        assert_eq!(s.handle_if_wanted(2, 0x20), None, "handle 0: EtwWriteTransfer must not be called");
        s.handle.store(0x1234, Ordering::Release);
        assert_eq!(s.handle_if_wanted(2, 0x20), Some(0x1234));
        s.on_enable(EVENT_CONTROL_CODE_DISABLE_PROVIDER, 0, 0);
        assert_eq!(s.handle_if_wanted(2, 0x20), None, "disabled: nothing is written");
    }
}
