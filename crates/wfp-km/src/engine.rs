//! Filter-engine sessions and transactions.

use crate::objects::{Callout, CalloutFilter, ConditionStorage, Provider, RuleFilter, SubLayer};
use crate::status::{NtStatus, Result};
use crate::strings::WStr;
use crate::trace;
use core::ptr;
use wfp_km_sys::fwp_types::{FWPM_DISPLAY_DATA0, FWPM_SESSION0, FWPM_SESSION_FLAG_DYNAMIC};
use wfp_km_sys::fwpm::{
    FwpmCalloutAdd0, FwpmEngineClose0, FwpmEngineOpen0, FwpmFilterAdd0, FwpmFilterDeleteById0,
    FwpmFilterDeleteByKey0, FwpmProviderAdd0, FwpmProviderDeleteByKey0, FwpmSubLayerAdd0, FwpmSubLayerDeleteByKey0,
    FwpmTransactionAbort0, FwpmTransactionBegin0, FwpmTransactionCommit0, RPC_C_AUTHN_WINNT,
};
use wfp_km_sys::{GUID, HANDLE};

/// An open session to the filter engine.
///
/// Invariant: `handle` came from a successful `FwpmEngineOpen0` and is closed
/// exactly once, in `drop`. All methods need IRQL == PASSIVE_LEVEL.
pub struct Engine {
    handle: HANDLE,
}

// SAFETY: engine handles are not thread-affine.
unsafe impl Send for Engine {}
// Not Sync: a transaction belongs to the session, not to a thread, so two
// holders of &Engine could mix their adds into one transaction.

impl Engine {
    /// Opens a **dynamic** session: every object added through it is deleted
    /// when the session closes, including when the driver crashes or unloads
    /// without cleaning up.
    pub fn open_dynamic(name: WStr, description: WStr) -> Result<Self> {
        Self::open(name, description, FWPM_SESSION_FLAG_DYNAMIC)
    }

    /// Opens a session whose objects outlive it: what it adds stays until
    /// deleted (persistent objects across BFE restarts and reboots,
    /// boot-time filters until BFE starts).
    pub fn open_static(name: WStr, description: WStr) -> Result<Self> {
        Self::open(name, description, 0)
    }

    fn open(name: WStr, description: WStr, flags: u32) -> Result<Self> {
        // SAFETY: FWPM_SESSION0 is plain data; all-zero is its documented
        // "defaults" value (null pointers, zero GUID, zero flags).
        let mut session: FWPM_SESSION0 = unsafe { core::mem::zeroed() };
        session.displayData = FWPM_DISPLAY_DATA0 {
            name: name.as_ptr().cast_mut(),
            description: description.as_ptr().cast_mut(),
        };
        session.flags = flags;
        let mut handle: HANDLE = ptr::null_mut();
        // SAFETY: server name null and auth identity null are required/allowed
        // in kernel mode; `session` and `handle` are valid for the call.
        let status = unsafe {
            FwpmEngineOpen0(ptr::null(), RPC_C_AUTHN_WINNT, ptr::null(), &session, &mut handle)
        };
        trace::checked("FwpmEngineOpen0", status)?;
        if handle.is_null() {
            return Err(NtStatus::UNSUCCESSFUL);
        }
        Ok(Self { handle })
    }

    /// Begins an explicit transaction. Objects can only be added through the
    /// returned guard, which aborts unless committed.
    pub fn begin(&self) -> Result<Transaction<'_>> {
        // SAFETY: handle is open (invariant).
        trace::checked("FwpmTransactionBegin0", unsafe { FwpmTransactionBegin0(self.handle, 0) })?;
        Ok(Transaction { engine: self, ended: false })
    }

    /// `FwpmProviderDeleteByKey0` outside a transaction (its own implicit
    /// one); NOT_FOUND and IN_USE are answers, returned untraced.
    pub fn delete_provider_by_key(&self, key: &GUID) -> Result<()> {
        // SAFETY: handle is open (invariant); `key` is valid for the call.
        let raw = unsafe { FwpmProviderDeleteByKey0(self.handle, key) };
        answered("FwpmProviderDeleteByKey0", raw, &[NtStatus::FWP_PROVIDER_NOT_FOUND, NtStatus::FWP_IN_USE])
    }

}

impl Drop for Engine {
    /// `FwpmEngineClose0`. A failure (for example RPC_NT_CALL_FAILED while
    /// BFE is stopping or briefly unavailable) is traced and **not retried**:
    /// the call consumes the handle whatever it returns, and closing a handle
    /// value twice could close someone else's session. What a failed close can
    /// leave is the dynamic session's objects in BFE, which BFE deletes when
    /// it runs the session down or restarts; its filters carry
    /// `PERMIT_IF_CALLOUT_UNREGISTERED`, so after the callouts are unregistered
    /// they permit.
    fn drop(&mut self) {
        // SAFETY: invariant: open handle, closed once.
        let _ = trace::checked("FwpmEngineClose0", unsafe { FwpmEngineClose0(self.handle) });
    }
}

/// A delete-by-key's status: the expected answers (`answers`, such as
/// NOT_FOUND for "make sure it is gone") are returned untraced, any other
/// failure is traced like every failed call.
fn answered(what: &str, raw: i32, answers: &[NtStatus]) -> Result<()> {
    let result = NtStatus::check(raw);
    if let Err(status) = result {
        if !answers.contains(&status) {
            trace::failed(what, status);
        }
    }
    result
}

/// An open transaction on an [`Engine`].
///
/// Invariant: a transaction is open on `engine` while `ended` is false; it
/// ends by `commit` or by the abort in `drop`.
pub struct Transaction<'e> {
    engine: &'e Engine,
    ended: bool,
}

impl Transaction<'_> {
    /// `FwpmSubLayerAdd0`.
    pub fn add_sublayer(&self, sublayer: &SubLayer) -> Result<()> {
        let raw = sublayer.to_raw();
        // SAFETY: open session and transaction; `raw` and the names it points
        // to outlive the call (the engine copies them).
        trace::checked("FwpmSubLayerAdd0", unsafe { FwpmSubLayerAdd0(self.engine.handle, &raw, ptr::null()) })
    }

    /// `FwpmCalloutAdd0`; returns the callout's run-time id.
    pub fn add_callout(&self, callout: &Callout) -> Result<u32> {
        let raw = callout.to_raw();
        let mut id = 0u32;
        // SAFETY: as for add_sublayer; `id` is a valid out pointer.
        trace::checked("FwpmCalloutAdd0", unsafe {
            FwpmCalloutAdd0(self.engine.handle, &raw, ptr::null(), &mut id)
        })?;
        Ok(id)
    }

    /// `FwpmFilterAdd0`; returns the filter's run-time id.
    pub fn add_filter(&self, filter: &CalloutFilter) -> Result<u64> {
        let raw = filter.to_raw();
        let mut id = 0u64;
        // SAFETY: as for add_sublayer; `id` is a valid out pointer.
        trace::checked("FwpmFilterAdd0", unsafe {
            FwpmFilterAdd0(self.engine.handle, &raw, ptr::null(), &mut id)
        })?;
        Ok(id)
    }

    /// `FwpmFilterDeleteById0`: deletes a filter this session added.
    pub fn delete_filter(&self, id: u64) -> Result<()> {
        // SAFETY: open session and transaction; an id is plain data (an
        // unknown one is an error status, not undefined behaviour).
        trace::checked("FwpmFilterDeleteById0", unsafe { FwpmFilterDeleteById0(self.engine.handle, id) })
    }

    /// `FwpmProviderAdd0`.
    pub fn add_provider(&self, provider: &Provider) -> Result<()> {
        let raw = provider.to_raw();
        // SAFETY: as for add_sublayer.
        trace::checked("FwpmProviderAdd0", unsafe { FwpmProviderAdd0(self.engine.handle, &raw, ptr::null()) })
    }

    /// `FwpmFilterAdd0` for a permit/block filter; returns its run-time id.
    pub fn add_rule_filter(&self, filter: &RuleFilter) -> Result<u64> {
        let mut storage = ConditionStorage::default();
        let raw = filter.to_raw(&mut storage);
        let mut id = 0u64;
        // SAFETY: as for add_sublayer; `raw.filterCondition` and the values
        // its conditions point to are in `storage`, alive, unmoved and
        // unchanged for the call.
        trace::checked("FwpmFilterAdd0", unsafe {
            FwpmFilterAdd0(self.engine.handle, &raw, ptr::null(), &mut id)
        })?;
        Ok(id)
    }

    /// `FwpmFilterDeleteByKey0`; NOT_FOUND is an answer, returned untraced.
    pub fn delete_filter_by_key(&self, key: &GUID) -> Result<()> {
        // SAFETY: open session and transaction; `key` is valid for the call.
        let raw = unsafe { FwpmFilterDeleteByKey0(self.engine.handle, key) };
        answered("FwpmFilterDeleteByKey0", raw, &[NtStatus::FWP_FILTER_NOT_FOUND])
    }

    /// `FwpmSubLayerDeleteByKey0`; NOT_FOUND is an answer, returned untraced.
    pub fn delete_sublayer_by_key(&self, key: &GUID) -> Result<()> {
        // SAFETY: as for delete_filter_by_key.
        let raw = unsafe { FwpmSubLayerDeleteByKey0(self.engine.handle, key) };
        answered("FwpmSubLayerDeleteByKey0", raw, &[NtStatus::FWP_SUBLAYER_NOT_FOUND])
    }

    /// `FwpmProviderDeleteByKey0` inside the transaction; NOT_FOUND is an
    /// answer, returned untraced.
    pub fn delete_provider_by_key(&self, key: &GUID) -> Result<()> {
        // SAFETY: as for delete_filter_by_key.
        let raw = unsafe { FwpmProviderDeleteByKey0(self.engine.handle, key) };
        answered("FwpmProviderDeleteByKey0", raw, &[NtStatus::FWP_PROVIDER_NOT_FOUND])
    }

    /// Commits. If the commit fails the transaction is aborted (by `drop`)
    /// so that it always ends, and the commit's status is returned.
    pub fn commit(mut self) -> Result<()> {
        // SAFETY: open session and transaction.
        trace::checked("FwpmTransactionCommit0", unsafe { FwpmTransactionCommit0(self.engine.handle) })?;
        self.ended = true;
        Ok(())
    }

}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.ended {
            // SAFETY: invariant: a transaction is open on the session.
            let _ = trace::checked("FwpmTransactionAbort0", unsafe { FwpmTransactionAbort0(self.engine.handle) });
        }
    }
}

