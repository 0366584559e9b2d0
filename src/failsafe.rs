//! Weir's failure mode: `Parameters\FailMode` (REG_DWORD, 0 = open, the
//! default; 1 = closed) and Weir's fail-closed set (see
//! `wfp_km::failsafe` for the mechanisms and `docs/deployment.md` for what
//! happens in each window).
//!
//! The setting lives in the service's `Parameters` key, not in the stored
//! policy: it must be known when the stored policy is refused (a damaged
//! policy cannot be trusted to say how to fail), it is read before BFE runs,
//! and a registry value under the service key is what Group Policy and
//! Intune set most easily.
//!
//! The allow-list while closed: loopback (both directions), DHCP (v4: UDP to
//! remote port 67 and from it to local port 68; v6: 547 and 546) and DNS
//! (outbound to remote port 53, UDP or TCP), so a machine can still get an
//! address and resolve the name of the server it gets its policy from.
//!
//! The administrator's entries (`Parameters\FailClosedAllow`, REG_MULTI_SZ,
//! grammar and parser in the `weir-failsafe` crate) come on top: DriverEntry
//! reads and parses the value once, like `FailMode` and for the same reasons
//! (it must hold when the stored policy is refused, and before BFE runs);
//! each entry becomes one permit filter per IP version it covers, in both
//! sets, with the fixed filters' provider, sublayer and flags and weight
//! [`ALLOW_WEIGHT`] (below the fixed permits, above the block: all permits
//! are equal in effect). Their keys are assigned by `wfp_km::failsafe`
//! from [`SET`]'s extra bases, so a shorter list (or none) replaces a longer
//! one and an open start removes them with the rest. A list with a bad
//! entry is refused whole: traced, reported in GET_POLICY_STATUS, and the
//! fixed filters alone are added.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use wfp_km::ale::AleLayer;
use wfp_km::failsafe::FailClosed;
use wfp_km::objects::{Condition, Provider, RuleFilter, SubLayer, MAX_CONDITIONS};
use wfp_km::strings::WStr;
use wfp_km::sys::fwp_types::{
    FWPM_FILTER_FLAG_BOOTTIME, FWPM_FILTER_FLAG_PERSISTENT, FWPM_PROVIDER_FLAG_PERSISTENT,
    FWPM_SUBLAYER_FLAG_PERSISTENT, FWP_ACTION_BLOCK, FWP_ACTION_PERMIT,
};
use wfp_km::{wstr, GUID};

mod allow;
pub use allow::{allow_filters, set_allow_list, AllowRead, ALLOW_UNREADABLE, ALLOW_VALUE};
use allow::{allow_status, with_allow_filters};

/// The `Parameters` value that selects the failure mode.
pub const FAIL_MODE_VALUE: WStr = wstr!("FailMode");

/// How Weir fails while it is not deciding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Traffic flows (no Weir filter decides): today's behaviour.
    Open,
    /// Traffic is blocked except loopback and the allow-list.
    Closed,
}

impl FailMode {
    /// The registry value: 1 is closed; missing, 0 or anything else is open
    /// (an unreadable setting must not cut a machine off).
    pub const fn from_registry(value: Option<u32>) -> Self {
        match value {
            Some(1) => Self::Closed,
            _ => Self::Open,
        }
    }
}

static MODE: AtomicU32 = AtomicU32::new(0);

/// Whether the persistent set is in BFE (the last `before_filtering`
/// installed it), so Weir's callout filters can be placed in its sublayer.
/// Written and read under FILTERING's lock (start_filtering, reauthorize).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Set once by DriverEntry (kernel boundary) before `Driver::start`.
pub fn set_mode(mode: FailMode) {
    MODE.store(u32::from(mode == FailMode::Closed), Ordering::Release);
}

pub fn mode() -> FailMode {
    if MODE.load(Ordering::Acquire) == 1 {
        FailMode::Closed
    } else {
        FailMode::Open
    }
}

/// Weir's provider: owner of everything persistent Weir leaves in BFE.
pub const PROVIDER_KEY: GUID = GUID::from_u128(0x5c1f7a2e_93d4_4b6e_a0c8_2f4e8d1b7a63);
/// The persistent sublayer of the fail-closed set (and of Weir's callout
/// filters while closed, so that they outrank the block inside it).
pub const SUBLAYER_KEY: GUID = GUID::from_u128(0x8e2b4c71_0d5a_4f39_b6e2_7a91c3d4e5f6);
/// Weight of Weir's callout filters in the fail-closed sublayer: above every
/// filter of the set (their weights are 0..=14).
pub const CALLOUT_WEIGHT: u8 = 15;

const LOOPBACK_WEIGHT: u8 = 14;
const DHCP_WEIGHT: u8 = 13;
const DNS_WEIGHT: u8 = 12;
/// Weight of the administrator's permits (`FailClosedAllow`).
pub const ALLOW_WEIGHT: u8 = 11;
const BLOCK_WEIGHT: u8 = 0;
// Between the fixed permits and the block, below Weir's callout filters.
const _: () = assert!(ALLOW_WEIGHT > BLOCK_WEIGHT && ALLOW_WEIGHT < DNS_WEIGHT && ALLOW_WEIGHT < CALLOUT_WEIGHT);

const UDP: u8 = 17;
const PERSISTENT_BASE: u128 = 0x3a6d0c52_7e14_4c8b_9f20_5b7e1d000000;
const BOOT_TIME_BASE: u128 = 0x3a6d0c52_7e14_4c8b_9f20_5b7e1e000000;
/// Key bases of the administrator's filters (`wfp_km::failsafe::extra_key`).
const ALLOW_PERSISTENT_BASE: u128 = 0x3a6d0c52_7e14_4c8b_9f20_5b7e1f000000;
const ALLOW_BOOT_TIME_BASE: u128 = 0x3a6d0c52_7e14_4c8b_9f20_5b7e20000000;

const fn dhcp(port: Condition) -> Rule {
    (
        wstr!("Weir fail-closed: permit DHCP"),
        FWP_ACTION_PERMIT,
        DHCP_WEIGHT,
        [Some(Condition::Protocol(UDP)), Some(port), None],
    )
}

/// One layer's rules as (name, action, weight, conditions).
type Rule = (WStr, u32, u8, [Option<Condition>; MAX_CONDITIONS]);

const fn rules(layer: AleLayer) -> [Option<Rule>; 4] {
    let loopback: Rule = (
        wstr!("Weir fail-closed: permit loopback"),
        FWP_ACTION_PERMIT,
        LOOPBACK_WEIGHT,
        [Some(Condition::Loopback), None, None],
    );
    let block: Rule = (
        wstr!("Weir fail-closed: block"),
        FWP_ACTION_BLOCK,
        BLOCK_WEIGHT,
        [None, None, None],
    );
    let dns: Rule = (
        wstr!("Weir fail-closed: permit DNS"),
        FWP_ACTION_PERMIT,
        DNS_WEIGHT,
        [Some(Condition::RemotePort(53)), None, None],
    );
    match layer {
        AleLayer::ConnectV4 => [
            Some(loopback),
            Some(dhcp(Condition::RemotePort(67))),
            Some(dns),
            Some(block),
        ],
        AleLayer::ConnectV6 => [
            Some(loopback),
            Some(dhcp(Condition::RemotePort(547))),
            Some(dns),
            Some(block),
        ],
        AleLayer::RecvAcceptV4 => [
            Some(loopback),
            Some(dhcp(Condition::LocalPort(68))),
            Some(block),
            None,
        ],
        AleLayer::RecvAcceptV6 => [
            Some(loopback),
            Some(dhcp(Condition::LocalPort(546))),
            Some(block),
            None,
        ],
    }
}

/// Number of filters in each of the two sets.
pub const FILTER_COUNT: usize = 14;

/// Runs only in const evaluation (the two statics below): an index out of
/// range fails the build, never the driver.
#[allow(clippy::indexing_slicing)]
const fn build(boot_time: bool) -> [RuleFilter; FILTER_COUNT] {
    let placeholder = RuleFilter {
        key: GUID::from_u128(0),
        name: wstr!(""),
        description: DESCRIPTION,
        layer: GUID::from_u128(0),
        sublayer: None,
        provider: None,
        action_type: FWP_ACTION_BLOCK,
        flags: 0,
        weight: 0,
        conditions: [None, None, None],
    };
    let mut out = [placeholder; FILTER_COUNT];
    let layers = AleLayer::ALL;
    let mut n = 0;
    let mut l = 0;
    while l < layers.len() {
        let layer = layers[l];
        let rs = rules(layer);
        let mut r = 0;
        while r < rs.len() {
            if let Some((name, action_type, weight, conditions)) = rs[r] {
                let base = if boot_time {
                    BOOT_TIME_BASE
                } else {
                    PERSISTENT_BASE
                };
                out[n] = RuleFilter {
                    key: GUID::from_u128(base + n as u128),
                    name,
                    description: DESCRIPTION,
                    layer: layer.layer_key(),
                    sublayer: if boot_time { None } else { Some(SUBLAYER_KEY) },
                    provider: if boot_time { None } else { Some(PROVIDER_KEY) },
                    action_type,
                    flags: if boot_time {
                        FWPM_FILTER_FLAG_BOOTTIME
                    } else {
                        FWPM_FILTER_FLAG_PERSISTENT
                    },
                    weight,
                    conditions,
                };
                n += 1;
            }
            r += 1;
        }
        l += 1;
    }
    assert!(n == FILTER_COUNT, "fail-closed rule count");
    out
}

const DESCRIPTION: WStr =
    wstr!("Weir: blocks while Weir is not deciding (FailMode = 1); see docs/deployment.md");

static PERSISTENT: [RuleFilter; FILTER_COUNT] = build(false);
static BOOT_TIME: [RuleFilter; FILTER_COUNT] = build(true);

/// Weir's fail-closed set.
pub static SET: FailClosed = FailClosed {
    session_name: wstr!("Weir fail-closed"),
    session_description: wstr!("Weir: adds or removes its fail-closed filters"),
    provider: Provider {
        key: PROVIDER_KEY,
        name: wstr!("Weir"),
        description: wstr!("Weir callout driver: owner of its persistent fail-closed objects"),
        flags: FWPM_PROVIDER_FLAG_PERSISTENT,
    },
    sublayer: SubLayer {
        key: SUBLAYER_KEY,
        name: wstr!("Weir fail-closed sublayer"),
        description: DESCRIPTION,
        weight: crate::ids::SUBLAYER_WEIGHT,
        flags: FWPM_SUBLAYER_FLAG_PERSISTENT,
        provider: Some(PROVIDER_KEY),
    },
    persistent: &PERSISTENT,
    boot_time: &BOOT_TIME,
    extra_persistent_base: ALLOW_PERSISTENT_BASE,
    extra_boot_time_base: ALLOW_BOOT_TIME_BASE,
    max_extra: weir_failsafe::MAX_FILTERS,
};

// ---------------------------------------------------------------------------
// The driver's steps (called from `crate::driver`).
// ---------------------------------------------------------------------------

/// DriverEntry's step: while closed and BFE is not running yet, add the
/// boot-time filters, so the window until BFE starts is blocked. A failure is
/// traced, never fatal (the driver still starts and decides once BFE runs).
pub fn at_driver_entry(bfe: wfp_km::bfe::BfeState) -> Option<wfp_km::failsafe::BootTimeFilters> {
    if mode() != FailMode::Closed || bfe == wfp_km::bfe::BfeState::Running {
        return None;
    }
    with_allow_filters(true, |extra| SET.add_boot_time(extra))
        .inspect_err(|s| {
            wfp_km::trace::error(format_args!(
                "weir: fail-closed boot-time filters not added ({s})"
            ))
        })
        .ok()
}

/// Before Weir's dynamic session adds its filters (BFE running): closed
/// makes BFE hold the persistent set; open deletes any left from an earlier
/// closed run (which is how `FailMode = 0` and a restart of the driver
/// remove them, as the uninstall script does).
pub fn before_filtering(engine: &wfp_km::engine::Engine) {
    let (what, result) = match mode() {
        FailMode::Closed => ("added", with_allow_filters(false, |extra| SET.install_persistent(extra))),
        FailMode::Open => ("removed", SET.remove_persistent(engine)),
    };
    INSTALLED.store(mode() == FailMode::Closed && result.is_ok(), Ordering::Release);
    if let Err(s) = result {
        wfp_km::trace::error(format_args!(
            "weir: fail-closed persistent filters not {what} ({s})"
        ));
    }
}

/// Where Weir's callout filter goes: while closed (and the set is
/// installed), into the fail-closed sublayer above the block, and without
/// PERMIT_IF_CALLOUT_UNREGISTERED (a filter whose callout is gone must not
/// permit). If the set could not be installed, the filter stays in Weir's
/// own sublayer (traced by `before_filtering`): Weir still decides.
pub fn place(mut filter: wfp_km::objects::CalloutFilter) -> wfp_km::objects::CalloutFilter {
    if mode() == FailMode::Closed && INSTALLED.load(Ordering::Acquire) {
        filter.sublayer = SUBLAYER_KEY;
        filter.weight = Some(CALLOUT_WEIGHT);
        filter.flags &= !wfp_km::sys::fwp_types::FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED;
    }
    filter
}

/// GET_POLICY_STATUS's failure-mode fields filled in. Any IRQL.
pub fn with_status(mut s: weir_abi::policy_status::PolicyStatus) -> weir_abi::policy_status::PolicyStatus {
    use weir_abi::policy_status::{FAIL_MODE_CLOSED, FAIL_MODE_OPEN};
    s.fail_mode = if mode() == FailMode::Closed { FAIL_MODE_CLOSED } else { FAIL_MODE_OPEN };
    s.fail_closed_set = u32::from(INSTALLED.load(Ordering::Acquire));
    allow_status(s)
}

/// Whether Weir's callout filters should decide now: always while open
/// (monitor mode without a policy) or without the installed set; while
/// closed only with an active policy,
/// so that after a refused or missing stored policy the fail-closed set
/// decides instead of a permit-everything monitor.
pub fn callouts_decide(store: &crate::policy::PolicyStore) -> bool {
    mode() == FailMode::Open || !INSTALLED.load(Ordering::Acquire) || store.read(|p| p.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_value_one_alone_means_closed() {
        assert_eq!(FailMode::from_registry(Some(1)), FailMode::Closed);
        for v in [None, Some(0), Some(2), Some(u32::MAX)] {
            assert_eq!(FailMode::from_registry(v), FailMode::Open);
        }
    }

    #[test]
    fn sets_are_complete_distinct_and_flagged() {
        let mut keys: Vec<u128> = Vec::new();
        for (set, flag) in [
            (&PERSISTENT, FWPM_FILTER_FLAG_PERSISTENT),
            (&BOOT_TIME, FWPM_FILTER_FLAG_BOOTTIME),
        ] {
            for layer in AleLayer::ALL {
                let at: Vec<&RuleFilter> = set
                    .iter()
                    .filter(|f| f.layer.data1 == layer.layer_key().data1)
                    .collect();
                // Each layer: loopback permit on top, one block at the bottom.
                assert!(at
                    .iter()
                    .any(|f| f.conditions[0] == Some(Condition::Loopback)
                        && f.action_type == FWP_ACTION_PERMIT));
                let blocks: Vec<_> = at
                    .iter()
                    .filter(|f| f.action_type == FWP_ACTION_BLOCK)
                    .collect();
                assert_eq!(blocks.len(), 1);
                assert!(at
                    .iter()
                    .all(|f| f.weight < CALLOUT_WEIGHT && f.weight >= blocks[0].weight));
            }
            for f in set.iter() {
                assert_eq!(f.flags, flag);
                let k = f.key;
                keys.push(
                    u128::from(k.data1) << 96
                        | u128::from(k.data2) << 80
                        | u128::from(k.data3) << 64
                        | u128::from_be_bytes([
                            0, 0, 0, 0, 0, 0, 0, 0, k.data4[0], k.data4[1], k.data4[2], k.data4[3],
                            k.data4[4], k.data4[5], k.data4[6], k.data4[7],
                        ]),
                );
            }
        }
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n, "filter keys must be distinct");
        assert!(PERSISTENT
            .iter()
            .all(|f| f.provider.is_some() && f.sublayer.is_some()));
        assert!(BOOT_TIME
            .iter()
            .all(|f| f.provider.is_none() && f.sublayer.is_none()));
    }
}
