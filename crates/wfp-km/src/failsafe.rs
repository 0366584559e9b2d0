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

use crate::engine::{Engine, Transaction};
use crate::objects::{Provider, RuleFilter, SubLayer};
use crate::status::{NtStatus, Result};
use crate::strings::WStr;

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
}

/// Proof that DriverEntry added the boot-time filters. Dropping it leaves
/// them in place on purpose: they must keep blocking until BFE starts (which
/// removes them), even when the driver is stopped before that.
#[derive(Debug)]
pub struct BootTimeFilters {
    pub count: usize,
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
    pub fn add_boot_time(&self) -> Result<BootTimeFilters> {
        let engine = Engine::open_static(self.session_name, self.session_description)?;
        let txn = engine.begin()?;
        for filter in self.boot_time {
            gone(txn.delete_filter_by_key(&filter.key))?;
            txn.add_rule_filter(filter)?;
        }
        txn.commit()?;
        Ok(BootTimeFilters {
            count: self.boot_time.len(),
        })
    }

    /// Makes BFE hold exactly this persistent set (the previous set, if any,
    /// is deleted in the same transaction, so a changed allow-list replaces
    /// the old one and there is no instant without a block). Call it while
    /// none of the driver's own filters is in the sublayer (before its
    /// dynamic session adds them), or deleting the sublayer fails IN_USE.
    pub fn install_persistent(&self) -> Result<()> {
        let engine = Engine::open_static(self.session_name, self.session_description)?;
        let txn = engine.begin()?;
        self.delete_all(&txn)?;
        txn.add_provider(&self.provider)?;
        txn.add_sublayer(&self.sublayer)?;
        for filter in self.persistent {
            txn.add_rule_filter(filter)?;
        }
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

    fn delete_all(&self, txn: &Transaction<'_>) -> Result<()> {
        for filter in self.persistent {
            gone(txn.delete_filter_by_key(&filter.key))?;
        }
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
