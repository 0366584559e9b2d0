//! Weir's ETW provider (`Weir`, TraceLogging): what the driver writes and
//! when. The encoding and the event definitions are `weir_etw`; the
//! registration and the enable callback are `wfp_km::etw`.
//!
//! [`ETW`] is a static so classifyFn reaches it with no context pointer:
//! with no session enabled, classify's whole cost is [`wants_connections`]
//! (one relaxed load and one branch). Each writer below is
//! `#[inline(never)]`, so the ~1.3 KB event buffer is on the stack only
//! while an event is being written.

use crate::classify::Outcome;
use weir_etw::weir::{self, keyword, ConnectionExtra, PolicyChange};
use weir_events::Event;
use wfp_km::classify::IncomingValues;
use wfp_km::etw::{Provider, ProviderState};
use wfp_km::sys::fwps::ale_auth_connect_v4;
use wfp_km::{trace, GUID};

/// The provider's state (level and keywords from the enable callback, the
/// registration handle).
pub static ETW: ProviderState = ProviderState::new(&weir_etw::provider::METADATA);

/// The provider id (`weir_etw::provider::ID`) as the kernel's GUID type.
pub const PROVIDER_ID: GUID = GUID {
    data1: weir_etw::provider::ID.data1,
    data2: weir_etw::provider::ID.data2,
    data3: weir_etw::provider::ID.data3,
    data4: weir_etw::provider::ID.data4,
};

/// DriverEntry's first step: registers `Weir`. A failure is traced and
/// returns `None`; the driver runs on without ETW. IRQL: PASSIVE_LEVEL.
pub fn register() -> Option<Provider> {
    match Provider::register(&ETW, &PROVIDER_ID) {
        Ok(provider) => {
            wfp_km::etw::set_error_sink(Some(&ETW));
            Some(provider)
        }
        Err(status) => {
            trace::error(format_args!("weir: EtwRegister failed: {status}; running without ETW events"));
            None
        }
    }
}

/// DriverUnload's last step: stops routing errors to ETW, then unregisters
/// (dropping `provider`). IRQL: PASSIVE_LEVEL.
pub fn unregister(provider: Provider) {
    wfp_km::etw::set_error_sink(None);
    drop(provider);
}

/// Whether a session wants classifications: one load, one branch. IRQL: any.
#[inline(always)]
pub fn wants_connections() -> bool {
    ETW.keywords() & (keyword::CONNECTIONS | keyword::BLOCKS) != 0
}

/// Writes `Connection` for a classification already recorded as `event`,
/// adding the user's SID from the layer's `ALE_USER_ID` when present and
/// the deciding rule's name. IRQL: <= DISPATCH_LEVEL (classify's critical
/// region or DISPATCH_LEVEL covers the policy read section).
///
/// The name is borrowed from the policy that decided, so the event is
/// written inside a policy read section; if that policy was replaced since
/// the decision (the generation differs), the event has no name rather than
/// another policy's (its `PolicyGeneration` and `RuleId` still say which).
#[inline(never)]
pub fn connection(event: &Event, values: &IncomingValues<'_>) {
    // ALE_USER_ID has the same index at the four layers.
    let user_sid = values
        .token_access_information(ale_auth_connect_v4::ALE_USER_ID)
        .and_then(|(info, base)| wfp_km::ale::user_sid(info, base));
    let mut e = weir::connection_builder(event);
    crate::policy::STORE.read(|policy| {
        let rule_name = policy
            .filter(|p| event.policy_generation != 0 && p.generation() == event.policy_generation)
            .zip(event.rule_index)
            .and_then(|(p, index)| p.rule_name(index));
        weir::fill_connection(&mut e, event, &ConnectionExtra { user_sid, rule_name });
        ETW.write(&mut e);
    });
}

/// Whether `outcome` is one a session wants (level and keyword checked
/// before the event is built). IRQL: any.
pub fn wants(outcome: &Outcome) -> bool {
    use crate::classify::Applied;
    let decision = match outcome.applied {
        Applied::Permitted => weir_events::Decision::Permit,
        Applied::Blocked => weir_events::Decision::Block,
        Applied::WriteRightAbsent => weir_events::Decision::WriteRightAbsent,
    };
    ETW.enabled(weir::connection_level(decision), weir::connection_keyword(decision))
}

/// Writes `PolicyChanged`. IRQL: PASSIVE_LEVEL (dispatch).
#[inline(never)]
pub fn policy_changed(change: &PolicyChange<'_>) {
    if ETW.keywords() & keyword::POLICY != 0 {
        ETW.write(&mut weir::policy_changed(change));
    }
}

/// Writes `FilteringStarted` / `FilteringStopped`. IRQL: PASSIVE_LEVEL.
#[inline(never)]
pub fn filtering(started: bool, reason: &str) {
    if ETW.keywords() & keyword::FILTERING != 0 {
        ETW.write(&mut weir::filtering(started, reason));
    }
}

/// Writes `DriverStarted` / `DriverStopping`. IRQL: PASSIVE_LEVEL.
#[inline(never)]
pub fn lifecycle(started: bool) {
    if ETW.keywords() & keyword::LIFECYCLE != 0 {
        ETW.write(&mut weir::lifecycle(started, env!("CARGO_PKG_VERSION")));
    }
}

/// Writes `EventsDropped` with the ring's running total, at the first drop
/// and then every 1024th, so a full ring under load does not also flood
/// ETW. IRQL: <= DISPATCH_LEVEL.
#[inline(never)]
pub fn events_dropped(total: u64) {
    if total % 1024 == 1 && ETW.keywords() & keyword::ERRORS != 0 {
        ETW.write(&mut weir::events_dropped(total));
    }
}
