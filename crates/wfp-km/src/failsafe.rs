//! Fail-closed filters: what blocks a machine while a callout driver is not
//! deciding, built from WFP's own mechanisms for the windows a driver cannot
//! cover itself.
//!
//! * **Boot-time filters** (`FWPM_FILTER_FLAG_BOOTTIME`) are enforced by the
//!   TCP/IP stack from the moment they are added until BFE starts; BFE then
//!   drops them and enforces its own (persistent) policy. A driver adds them
//!   from DriverEntry while BFE is not running yet. Boot-time objects cannot
//!   name a provider or a non-default sublayer (neither exists without BFE),
//!   so they live in the default sublayer.
//! * **Persistent objects** (`FWPM_*_FLAG_PERSISTENT`) are stored by BFE:
//!   they survive the session that added them, BFE restarts, reboots and the
//!   driver's unload. They are grouped under one provider and one sublayer,
//!   so they are found and removed as a set.
//!
//! Within that sublayer the driver's own callout filters get a higher weight
//! than every filter here, so while they exist they decide; the permit and
//! block filters here decide only while the callout filters are gone.
//! Every routine runs at PASSIVE_LEVEL and changes the set in one transaction:
//! a failure leaves the previous set whole.
//!
//! **Extra filters** (an administrator's allow-list entries, whose number
//! changes from one start to the next) get their keys here, densely from
//! a base: the n-th extra filter's key is `base + n`. A set is only ever
//! added whole, in one transaction, so the extras in BFE are always keys
//! `base + 0 .. base + k`: deleting by key from `base` up to the first
//! NOT_FOUND removes them all without knowing the list they came from
//! (the one of an earlier start, or none). A gap could only come from
//! someone deleting one of them by hand; the install then fails on the
//! leftover (traced by the caller) and the previous set stays whole.

use crate::engine::{Engine, Transaction};
use crate::objects::{Provider, RuleFilter, SubLayer};
use crate::status::{NtStatus, Result};
use crate::strings::WStr;
use wfp_km_sys::GUID;

/// One fail-closed set: its owner, its sublayer and its filters.
pub struct FailClosed {
    pub session_name: WStr,
    pub session_description: WStr,
    pub provider: Provider,
    pub sublayer: SubLayer,
    /// Persistent filters, in `sublayer`, naming `provider`.
    pub persistent: &'static [RuleFilter],
    /// Boot-time filters (default sublayer, no provider).
    pub boot_time: &'static [RuleFilter],
    /// Key base of the extra persistent filters (see the module doc).
    pub extra_persistent_base: u128,
    /// Key base of the extra boot-time filters.
    pub extra_boot_time_base: u128,
    /// Most extra filters in one set (more is refused: INVALID_PARAMETER).
    pub max_extra: usize,
}

/// Proof that DriverEntry added the boot-time filters. Dropping it leaves
/// them in place on purpose: they must keep blocking until BFE starts (which
/// removes them), even when the driver is stopped before that.
#[derive(Debug)]
pub struct BootTimeFilters {
    /// Filters added, fixed and extra.
    pub count: usize,
}

/// The key of the `n`-th extra filter from `base`.
pub const fn extra_key(base: u128, n: usize) -> GUID {
    GUID::from_u128(base.wrapping_add(n as u128))
}

/// Not-found is what a delete of an absent object returns: the goal (the
/// object is gone) holds.
fn gone(result: Result<()>) -> Result<()> {
    match result {
        Err(s)
            if s == NtStatus::FWP_FILTER_NOT_FOUND
                || s == NtStatus::FWP_SUBLAYER_NOT_FOUND
                || s == NtStatus::FWP_PROVIDER_NOT_FOUND
                || s == NtStatus::FWP_NOT_FOUND =>
        {
            Ok(())
        }
        other => other,
    }
}

impl FailClosed {
    /// Adds the boot-time filters (replacing any left by an earlier load in
    /// this boot). Only while BFE is not running: once it runs, boot-time
    /// filters are not enforced and the persistent set covers the gaps.
    /// `extra` (keys assigned here) are added after the fixed filters.
    pub fn add_boot_time(&self, extra: impl IntoIterator<Item = RuleFilter>) -> Result<BootTimeFilters> {
        let engine = Engine::open_static(self.session_name, self.session_description)?;
        let txn = engine.begin()?;
        for filter in self.boot_time {
            gone(txn.delete_filter_by_key(&filter.key))?;
            txn.add_rule_filter(filter)?;
        }
        self.delete_extra(&txn, self.extra_boot_time_base)?;
        let added = self.add_extra(&txn, self.extra_boot_time_base, extra)?;
        txn.commit()?;
        Ok(BootTimeFilters {
            count: self.boot_time.len() + added,
        })
    }

    /// Makes BFE hold exactly this persistent set (the previous set, if any,
    /// is deleted in the same transaction, so a changed allow-list replaces
    /// the old one and there is no instant without a block). Call it while
    /// none of the driver's own filters is in the sublayer (before its
    /// dynamic session adds them), or deleting the sublayer fails IN_USE.
    /// `extra` (keys assigned here) are added after the fixed filters.
    pub fn install_persistent(&self, extra: impl IntoIterator<Item = RuleFilter>) -> Result<()> {
        let engine = Engine::open_static(self.session_name, self.session_description)?;
        let txn = engine.begin()?;
        self.delete_all(&txn)?;
        txn.add_provider(&self.provider)?;
        txn.add_sublayer(&self.sublayer)?;
        for filter in self.persistent {
            txn.add_rule_filter(filter)?;
        }
        self.add_extra(&txn, self.extra_persistent_base, extra)?;
        txn.commit()
    }

    /// Deletes the persistent set (filters, sublayer, provider) through
    /// `engine` (any session may delete them). The common case, nothing
    /// there, costs one call: deleting the provider alone answers NOT_FOUND
    /// (nothing was installed; the set is only ever added whole), SUCCESS (a
    /// provider without objects) or IN_USE (objects name it: delete the
    /// whole set in one transaction). Same precondition as
    /// `install_persistent`.
    pub fn remove_persistent(&self, engine: &Engine) -> Result<()> {
        match gone(engine.delete_provider_by_key(&self.provider.key)) {
            Err(s) if s == NtStatus::FWP_IN_USE => {}
            other => return other,
        }
        let txn = engine.begin()?;
        self.delete_all(&txn)?;
        txn.commit()
    }

    /// Adds `extra` with keys `base + 0..`; returns how many.
    fn add_extra(&self, txn: &Transaction<'_>, base: u128, extra: impl IntoIterator<Item = RuleFilter>) -> Result<usize> {
        let mut n = 0usize;
        for filter in extra {
            if n >= self.max_extra {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            txn.add_rule_filter(&RuleFilter { key: extra_key(base, n), ..filter })?;
            n += 1;
        }
        Ok(n)
    }

    /// Deletes the extras from `base` up to the first key not there (see
    /// the module doc): one call more than there are.
    fn delete_extra(&self, txn: &Transaction<'_>, base: u128) -> Result<()> {
        for n in 0..self.max_extra {
            match txn.delete_filter_by_key(&extra_key(base, n)) {
                Ok(()) => {}
                Err(s) if gone(Err(s)).is_ok() => break,
                Err(s) => return Err(s),
            }
        }
        Ok(())
    }

    fn delete_all(&self, txn: &Transaction<'_>) -> Result<()> {
        for filter in self.persistent {
            gone(txn.delete_filter_by_key(&filter.key))?;
        }
        self.delete_extra(txn, self.extra_persistent_base)?;
        gone(txn.delete_sublayer_by_key(&self.sublayer.key))?;
        gone(txn.delete_provider_by_key(&self.provider.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_not_found_counts_as_gone() {
        assert_eq!(gone(Err(NtStatus::FWP_FILTER_NOT_FOUND)), Ok(()));
        assert_eq!(gone(Err(NtStatus::FWP_PROVIDER_NOT_FOUND)), Ok(()));
        assert_eq!(gone(Err(NtStatus::FWP_SUBLAYER_NOT_FOUND)), Ok(()));
        assert_eq!(gone(Err(NtStatus::FWP_IN_USE)), Err(NtStatus::FWP_IN_USE));
        assert_eq!(
            gone(Err(NtStatus::INSUFFICIENT_RESOURCES)),
            Err(NtStatus::INSUFFICIENT_RESOURCES)
        );
    }
}
