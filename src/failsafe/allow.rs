//! The administrator's allow-list (`Parameters\FailClosedAllow`): read by
//! DriverEntry, kept for the fail-closed steps of the parent module, and
//! turned into extra permit filters of both sets (see the parent's module
//! doc and `docs/deployment.md`).

extern crate alloc;

use super::{DESCRIPTION, PROVIDER_KEY, SUBLAYER_KEY};
use core::sync::atomic::{AtomicU32, Ordering};
use wfp_km::ale::AleLayer;
use wfp_km::objects::{Condition, RuleFilter};
use wfp_km::strings::WStr;
use wfp_km::sync::passive::PassiveMutex;
use wfp_km::sys::fwp_types::{FWPM_FILTER_FLAG_BOOTTIME, FWPM_FILTER_FLAG_PERSISTENT, FWP_ACTION_PERMIT};
use wfp_km::{wstr, GUID};
use weir_failsafe::{AllowList, Direction, Family, FilterCondition, ListError};

/// The `Parameters` value with the administrator's entries.
pub const ALLOW_VALUE: WStr = wstr!("FailClosedAllow");

/// The entries DriverEntry accepted (empty: none set, or refused). Written
/// once by DriverEntry before anything that reads it exists (the BFE
/// subscription); read under FILTERING's lock (lock order: FILTERING, then
/// ALLOW) and by DriverEntry's boot-time step.
static ALLOW: PassiveMutex<AllowList> = PassiveMutex::new(AllowList::new());

/// What became of the value, for GET_POLICY_STATUS (any IRQL).
static ALLOW_APPLIED: AtomicU32 = AtomicU32::new(0);
static ALLOW_BAD: AtomicU32 = AtomicU32::new(0);
static ALLOW_ERROR: AtomicU32 = AtomicU32::new(0);
static ALLOW_LINE: AtomicU32 = AtomicU32::new(0);

/// How the value was read (by the kernel boundary, `wfp_km::registry`).
pub type AllowRead = core::result::Result<alloc::vec::Vec<u8>, wfp_km::registry::ValueError>;

/// `ListError::code` for "the value could not be read" (the read's status is
/// traced): not one of the parser's codes.
pub const ALLOW_UNREADABLE: u32 = weir_abi::policy_status::ALLOW_UNREADABLE;

/// DriverEntry's allow-list step (before `Driver::start`): parse what was
/// read, keep the entries if the list is accepted, record the outcome.
/// Never fails: a missing value is an empty list; a wrong type, an
/// unreadable value or a refused list is traced and leaves the fixed
/// filters alone. IRQL: PASSIVE_LEVEL.
pub fn set_allow_list(read: AllowRead) {
    use wfp_km::registry::ValueError;
    ALLOW.init();
    let Some(mut list) = ALLOW.lock() else { return };
    list.clear();
    let (error, line, bad) = match read {
        Err(ValueError::NotFound) => (0, 0, 0),
        Err(ValueError::WrongType(t)) => {
            wfp_km::trace::error(format_args!(
                "weir: Parameters\\FailClosedAllow has type {t}, not REG_MULTI_SZ (7); only the fixed allow-list applies"
            ));
            (ALLOW_UNREADABLE, 0, 0)
        }
        Err(ValueError::TooLarge) => {
            wfp_km::trace::error(format_args!(
                "weir: Parameters\\FailClosedAllow refused: {}; only the fixed allow-list applies",
                ListError::TooLarge
            ));
            (ListError::TooLarge.code(), 0, 0)
        }
        Err(ValueError::Status(s)) => {
            wfp_km::trace::error(format_args!(
                "weir: Parameters\\FailClosedAllow unreadable ({s}); only the fixed allow-list applies"
            ));
            (ALLOW_UNREADABLE, 0, 0)
        }
        Ok(bytes) => {
            let report = weir_failsafe::parse_multi_sz_into(&bytes, &mut list);
            match report.error {
                None => {
                    wfp_km::trace::info(format_args!("weir: FailClosedAllow: {} entries", list.len()));
                    (0, 0, 0)
                }
                Some(e) => {
                    wfp_km::trace::error(format_args!(
                        "weir: Parameters\\FailClosedAllow refused ({} bad of {} entries): {e}; only the fixed allow-list applies",
                        report.bad, report.found
                    ));
                    (e.code(), e.line(), report.bad)
                }
            }
        }
    };
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    ALLOW_APPLIED.store(to_u32(list.len()), Ordering::Release);
    ALLOW_BAD.store(to_u32(bad), Ordering::Release);
    ALLOW_ERROR.store(error, Ordering::Release);
    ALLOW_LINE.store(to_u32(line), Ordering::Release);
}

/// The boot-time or persistent filters of the accepted entries, handed to
/// `add`, with ALLOW held (the list stays in its static: it is a few KiB,
/// too much to copy onto a kernel stack). Before DriverEntry's allow-list
/// step (FailMode open, or host tests): no entries.
pub(super) fn with_allow_filters<R>(boot_time: bool, add: impl FnOnce(&mut dyn Iterator<Item = RuleFilter>) -> R) -> R {
    match ALLOW.lock() {
        Some(list) => add(&mut allow_filters(&list, boot_time)),
        None => add(&mut core::iter::empty()),
    }
}

/// The ALE layer an entry's filter goes to.
fn allow_layer(direction: Direction, family: Family) -> AleLayer {
    match (direction, family) {
        (Direction::Out, Family::V4) => AleLayer::ConnectV4,
        (Direction::Out, Family::V6) => AleLayer::ConnectV6,
        (Direction::In, Family::V4) => AleLayer::RecvAcceptV4,
        (Direction::In, Family::V6) => AleLayer::RecvAcceptV6,
    }
}

fn allow_condition(c: FilterCondition) -> Condition {
    match c {
        FilterCondition::Protocol(p) => Condition::Protocol(p),
        FilterCondition::RemoteV4 { addr, mask } => Condition::RemoteV4 { addr, mask },
        FilterCondition::RemoteV6 { addr, prefix } => Condition::RemoteV6 { addr, prefix },
        FilterCondition::RemotePort { low, high } if low == high => Condition::RemotePort(low),
        FilterCondition::RemotePort { low, high } => Condition::RemotePortRange(low, high),
        FilterCondition::LocalPort { low, high } if low == high => Condition::LocalPort(low),
        FilterCondition::LocalPort { low, high } => Condition::LocalPortRange(low, high),
    }
}

/// GET_POLICY_STATUS's allow-list fields filled in. IRQL: any.
pub(super) fn allow_status(mut s: weir_abi::policy_status::PolicyStatus) -> weir_abi::policy_status::PolicyStatus {
    s.allow_entries = ALLOW_APPLIED.load(Ordering::Acquire);
    s.allow_bad = ALLOW_BAD.load(Ordering::Acquire);
    s.allow_error = ALLOW_ERROR.load(Ordering::Acquire);
    s.allow_line = ALLOW_LINE.load(Ordering::Acquire);
    s
}

/// The filters `list`'s entries become in one set (keys are assigned by
/// `wfp_km::failsafe`): in entry order, IPv4 before IPv6.
pub fn allow_filters(list: &AllowList, boot_time: bool) -> impl Iterator<Item = RuleFilter> + '_ {
    list.entries().iter().flat_map(move |entry| {
        entry.families().map(move |family| RuleFilter {
            key: GUID::from_u128(0),
            name: wstr!("Weir fail-closed: permit (FailClosedAllow entry)"),
            description: DESCRIPTION,
            layer: allow_layer(entry.direction(), family).layer_key(),
            sublayer: if boot_time { None } else { Some(SUBLAYER_KEY) },
            provider: if boot_time { None } else { Some(PROVIDER_KEY) },
            action_type: FWP_ACTION_PERMIT,
            flags: if boot_time { FWPM_FILTER_FLAG_BOOTTIME } else { FWPM_FILTER_FLAG_PERSISTENT },
            weight: super::ALLOW_WEIGHT,
            conditions: entry.conditions(family).map(|c| c.map(allow_condition)),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::super::{ALLOW_WEIGHT, SET};

    fn list(lines: &[&str]) -> AllowList {
        let mut l = AllowList::new();
        for line in lines {
            assert!(l.push(weir_failsafe::Entry::parse(line).unwrap_or_else(|e| unreachable!("{line}: {e}"))));
        }
        l
    }

    #[test]
    fn each_entry_becomes_a_permit_per_ip_version_at_its_direction_with_the_sets_owner() {
        let l = list(&["out tcp 10.1.2.0/24 443", "in udp any 67-68", "out any fd00::/8 any"]);
        for boot_time in [false, true] {
            let fs: Vec<RuleFilter> = allow_filters(&l, boot_time).collect();
            let layers: Vec<u32> = fs.iter().map(|f| f.layer.data1).collect();
            let expect = [AleLayer::ConnectV4, AleLayer::RecvAcceptV4, AleLayer::RecvAcceptV6, AleLayer::ConnectV6];
            assert_eq!(layers, expect.map(|l| l.layer_key().data1));
            for f in &fs {
                assert_eq!((f.action_type, f.weight), (FWP_ACTION_PERMIT, ALLOW_WEIGHT));
                if boot_time {
                    assert_eq!(f.flags, FWPM_FILTER_FLAG_BOOTTIME);
                    assert!(f.provider.is_none() && f.sublayer.is_none());
                } else {
                    assert_eq!(f.flags, FWPM_FILTER_FLAG_PERSISTENT);
                    assert_eq!(f.provider.map(|g| g.data1), Some(PROVIDER_KEY.data1));
                    assert_eq!(f.sublayer.map(|g| g.data1), Some(SUBLAYER_KEY.data1));
                }
            }
            assert_eq!(
                fs[0].conditions,
                [
                    Some(Condition::Protocol(6)),
                    Some(Condition::RemoteV4 { addr: 0x0A01_0200, mask: 0xFFFF_FF00 }),
                    Some(Condition::RemotePort(443)),
                ]
            );
            assert_eq!(fs[1].conditions, [Some(Condition::Protocol(17)), None, Some(Condition::LocalPortRange(67, 68))]);
            assert_eq!(fs[2].conditions, fs[1].conditions);
            let mut fd = [0u8; 16];
            fd[0] = 0xfd;
            assert_eq!(fs[3].conditions, [None, Some(Condition::RemoteV6 { addr: fd, prefix: 8 }), None]);
        }
        // The most the parser accepts fits the set's bound.
        let full: Vec<String> = (0..weir_failsafe::MAX_ENTRIES).map(|i| format!("out tcp any {i}")).collect();
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        assert_eq!(allow_filters(&list(&refs), false).count(), SET.max_extra);
    }
}
