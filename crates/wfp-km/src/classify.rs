//! Read-only views of what the filter engine passes to classifyFn.
//!
//! classifyFn runs at IRQL <= DISPATCH_LEVEL with pointers that die when it
//! returns, so these views borrow for the duration of the call only, never
//! allocate, and check the value count and the value type before each read:
//! asking for a field the layer does not provide, or asking with the wrong
//! type, yields `None`.

use core::slice;
use wfp_km_sys::fwp_types::{
    FWP_BYTE_ARRAY16_TYPE, FWP_BYTE_BLOB, FWP_BYTE_BLOB_TYPE, FWP_DATA_TYPE, FWP_TOKEN_ACCESS_INFORMATION_TYPE, FWP_UINT16, FWP_UINT32, FWP_UINT8,
    FWP_VALUE0,
};
use wfp_km_sys::fwps::{
    FWPS_CLASSIFY_OUT0, FWPS_FILTER3, FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT,
    FWPS_INCOMING_METADATA_VALUES0, FWPS_INCOMING_VALUE0, FWPS_INCOMING_VALUES0,
    FWPS_METADATA_FIELD_PROCESS_ID, FWPS_METADATA_FIELD_PROCESS_PATH, FWPS_RIGHT_ACTION_WRITE,
};

/// The bytes of an `FWP_BYTE_BLOB` (`None` for a null pointer).
///
/// # Safety
/// `blob` is null or points to a blob whose `data` holds `size` bytes, all
/// valid for `'a`.
unsafe fn blob_bytes<'a>(blob: *const FWP_BYTE_BLOB) -> Option<&'a [u8]> {
    // SAFETY: caller contract.
    let blob = unsafe { blob.as_ref() }?;
    let len = usize::try_from(blob.size).ok()?;
    if len == 0 {
        return Some(&[]);
    }
    if blob.data.is_null() {
        return None;
    }
    // SAFETY: caller contract: `size` bytes at `data`, valid for 'a.
    Some(unsafe { slice::from_raw_parts(blob.data, len) })
}

/// The fixed values of one classification.
///
/// Invariant: `values` are the engine's `incomingValue` array of
/// `valueCount` entries, and every pointer-typed value in it points to data of
/// its type, all valid for `'a`.
#[derive(Clone, Copy)]
pub struct IncomingValues<'a> {
    layer_id: u16,
    values: &'a [FWPS_INCOMING_VALUE0],
}

impl<'a> IncomingValues<'a> {
    /// # Safety
    /// `raw` is null or the `inFixedValues` pointer of a classifyFn call that
    /// lasts at least `'a` (so it and everything it points to are valid and
    /// unchanged for `'a`).
    pub unsafe fn from_raw(raw: *const FWPS_INCOMING_VALUES0) -> Option<Self> {
        // SAFETY: caller contract: null or valid for 'a.
        let fixed = unsafe { raw.as_ref() }?;
        let count = usize::try_from(fixed.valueCount).ok()?;
        let values = if count == 0 {
            &[][..]
        } else if fixed.incomingValue.is_null() {
            return None;
        } else {
            // SAFETY: the engine provides `valueCount` initialised entries at
            // `incomingValue`, valid for 'a (caller contract).
            unsafe { slice::from_raw_parts(fixed.incomingValue, count) }
        };
        Some(Self { layer_id: fixed.layerId, values })
    }

    /// The run-time layer id (`FWPS_LAYER_*`).
    pub fn layer_id(&self) -> u16 {
        self.layer_id
    }

    /// Number of values the layer provided.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no values were provided.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn typed(&self, index: u32, ty: FWP_DATA_TYPE) -> Option<&'a FWP_VALUE0> {
        let value = &self.values.get(usize::try_from(index).ok()?)?.value;
        (value.r#type == ty).then_some(value)
    }

    /// An `FWP_UINT8` field.
    pub fn u8(&self, index: u32) -> Option<u8> {
        // SAFETY: the type tag says the union holds uint8.
        self.typed(index, FWP_UINT8).map(|v| unsafe { v.Anonymous.uint8 })
    }

    /// An `FWP_UINT16` field.
    pub fn u16(&self, index: u32) -> Option<u16> {
        // SAFETY: the type tag says the union holds uint16.
        self.typed(index, FWP_UINT16).map(|v| unsafe { v.Anonymous.uint16 })
    }

    /// An `FWP_UINT32` field.
    pub fn u32(&self, index: u32) -> Option<u32> {
        // SAFETY: the type tag says the union holds uint32.
        self.typed(index, FWP_UINT32).map(|v| unsafe { v.Anonymous.uint32 })
    }

    /// An `FWP_BYTE_ARRAY16_TYPE` field (an IPv6 address).
    pub fn byte_array16(&self, index: u32) -> Option<[u8; 16]> {
        let v = self.typed(index, FWP_BYTE_ARRAY16_TYPE)?;
        // SAFETY: the type tag says the union holds an FWP_BYTE_ARRAY16
        // pointer, which the invariant makes null or valid.
        unsafe { v.Anonymous.byteArray16.as_ref() }.map(|a| a.byteArray16)
    }

    /// An `FWP_BYTE_BLOB_TYPE` field (for example `ALE_APP_ID`, the UTF-16LE
    /// NT image path with its trailing NUL), as bytes.
    pub fn byte_blob(&self, index: u32) -> Option<&'a [u8]> {
        let v = self.typed(index, FWP_BYTE_BLOB_TYPE)?;
        // SAFETY: the type tag says the union holds an FWP_BYTE_BLOB pointer,
        // which the invariant makes null or valid for 'a.
        unsafe { blob_bytes(v.Anonymous.byteBlob) }
    }

    /// An `FWP_TOKEN_ACCESS_INFORMATION_TYPE` field (`ALE_USER_ID`): the
    /// blob's bytes and the address they start at, which the pointers
    /// inside the structure are relative to (see [`crate::ale::user_sid`]).
    pub fn token_access_information(&self, index: u32) -> Option<(&'a [u8], usize)> {
        let v = self.typed(index, FWP_TOKEN_ACCESS_INFORMATION_TYPE)?;
        // SAFETY: the type tag says the union holds an FWP_BYTE_BLOB pointer
        // (tokenAccessInformation), which the invariant makes null or valid
        // for 'a.
        let blob = unsafe { v.Anonymous.tokenAccessInformation.as_ref() }?;
        // SAFETY: as above: `size` bytes at `data`, valid for 'a.
        let bytes = unsafe { blob_bytes(blob) }?;
        Some((bytes, blob.data as usize))
    }
}

impl<'a> IncomingValues<'a> {
    /// An `FWP_BYTE_BLOB_TYPE` field holding a NUL-terminated UTF-16 string
    /// (such as `FWPS_FIELD_ALE_*_ALE_APP_ID`, the NT image path), as code
    /// units without the trailing NUL. `None` when the field is absent,
    /// mistyped, null, of odd size, or not 2-byte aligned.
    pub fn utf16_blob(&self, index: u32) -> Option<&'a [u16]> {
        let v = self.typed(index, FWP_BYTE_BLOB_TYPE)?;
        // SAFETY: the type tag says the union holds an FWP_BYTE_BLOB pointer,
        // which the invariant makes null or valid for 'a.
        let blob = unsafe { v.Anonymous.byteBlob.as_ref() }?;
        let bytes = usize::try_from(blob.size).ok()?;
        if bytes == 0 {
            return Some(&[]);
        }
        if blob.data.is_null() || bytes % 2 != 0 || blob.data.align_offset(core::mem::align_of::<u16>()) != 0 {
            return None;
        }
        // SAFETY: the engine's blob holds `size` readable bytes at `data`,
        // valid for 'a (invariant); the pointer is non-null and u16-aligned
        // (checked), and any bit pattern is a valid u16.
        let units = unsafe { slice::from_raw_parts(blob.data.cast::<u16>(), bytes / 2) };
        Some(match units.split_last() {
            Some((0, rest)) => rest,
            _ => units,
        })
    }
}

/// The optional metadata of one classification.
///
/// Invariant: `raw` is the engine's metadata for a classifyFn call lasting
/// `'a`; a field is read only when its `currentMetadataValues` bit is set.
#[derive(Clone, Copy)]
pub struct Metadata<'a> {
    raw: &'a FWPS_INCOMING_METADATA_VALUES0,
}

impl<'a> Metadata<'a> {
    /// # Safety
    /// `raw` is null or the `inMetaValues` pointer of a classifyFn call lasting
    /// `'a`.
    pub unsafe fn from_raw(raw: *const FWPS_INCOMING_METADATA_VALUES0) -> Option<Self> {
        // SAFETY: caller contract.
        unsafe { raw.as_ref() }.map(|raw| Self { raw })
    }

    /// Whether an `FWPS_METADATA_FIELD_*` bit is set.
    pub fn has(&self, field: u32) -> bool {
        self.raw.currentMetadataValues & field == field
    }

    /// The process id, when the layer supplied one.
    pub fn process_id(&self) -> Option<u64> {
        self.has(FWPS_METADATA_FIELD_PROCESS_ID).then_some(self.raw.processId)
    }

    /// The process image path (`FWPS_METADATA_FIELD_PROCESS_PATH`): UTF-16LE
    /// bytes of the NT path with its trailing NUL.
    pub fn process_path(&self) -> Option<&'a [u8]> {
        if !self.has(FWPS_METADATA_FIELD_PROCESS_PATH) {
            return None;
        }
        // SAFETY: the flag says processPath is the engine's blob, valid for
        // the classification ('a).
        unsafe { blob_bytes(self.raw.processPath) }
    }
}

/// The run-time filter that matched.
#[derive(Clone, Copy)]
pub struct Filter<'a> {
    raw: &'a FWPS_FILTER3,
}

impl<'a> Filter<'a> {
    /// # Safety
    /// `raw` is null or the `filter` pointer of a classifyFn call lasting `'a`.
    pub unsafe fn from_raw(raw: *const FWPS_FILTER3) -> Option<Self> {
        // SAFETY: caller contract.
        unsafe { raw.as_ref() }.map(|raw| Self { raw })
    }

    pub fn id(&self) -> u64 {
        self.raw.filterId
    }

    /// Whether the filter asks its callout to clear the write right after
    /// deciding (`FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT`).
    pub fn wants_action_right_cleared(&self) -> bool {
        self.raw.flags & FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT != 0
    }
}

/// The verdict a callout returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Permit,
    Block,
}

impl Verdict {
    fn action_type(self) -> u32 {
        match self {
            Self::Permit => wfp_km_sys::fwp_types::FWP_ACTION_PERMIT,
            Self::Block => wfp_km_sys::fwp_types::FWP_ACTION_BLOCK,
        }
    }
}

/// The classify output, writable only as the engine allows.
pub struct ClassifyOut<'a> {
    raw: &'a mut FWPS_CLASSIFY_OUT0,
}

impl<'a> ClassifyOut<'a> {
    /// # Safety
    /// `raw` is null or the `classifyOut` pointer of a classifyFn call lasting
    /// `'a`, not aliased by any other reference during `'a`.
    pub unsafe fn from_raw(raw: *mut FWPS_CLASSIFY_OUT0) -> Option<Self> {
        // SAFETY: caller contract.
        unsafe { raw.as_mut() }.map(|raw| Self { raw })
    }

    /// Whether this callout may set the action (`FWPS_RIGHT_ACTION_WRITE`).
    /// When a higher-weight filter has cleared it, the action must be left
    /// alone.
    pub fn may_write_action(&self) -> bool {
        self.raw.rights & FWPS_RIGHT_ACTION_WRITE != 0
    }

    /// Sets the action if the write right allows it; returns whether it did.
    /// With `clear_right`, the write right is cleared afterwards (a hard
    /// decision lower-weight filters cannot override).
    pub fn decide(&mut self, verdict: Verdict, clear_right: bool) -> bool {
        if !self.may_write_action() {
            return false;
        }
        self.raw.actionType = verdict.action_type();
        if clear_right {
            self.raw.rights &= !FWPS_RIGHT_ACTION_WRITE;
        }
        true
    }

    /// The current action type.
    pub fn action_type(&self) -> u32 {
        self.raw.actionType
    }
}

/// Synthetic classifications for host tests of classify logic built on these
/// views (feature `test-util`): owns every buffer the engine would own and
/// hands out the same views classifyFn gets, so callers need no `unsafe`.
#[cfg(any(test, feature = "test-util"))]
pub mod testing {
    extern crate std;
    use super::{ClassifyOut, Filter, IncomingValues, Metadata};
    use core::ptr;
    use std::boxed::Box;
    use std::vec::Vec;
    use wfp_km_sys::fwp_types::{
        FWP_BYTE_ARRAY16, FWP_BYTE_ARRAY16_TYPE, FWP_BYTE_BLOB, FWP_BYTE_BLOB_TYPE, FWP_EMPTY,
        FWP_UINT16, FWP_UINT32, FWP_UINT8, FWP_VALUE0, FWP_VALUE0_0,
    };
    use wfp_km_sys::fwps::{
        FWPS_CLASSIFY_OUT0, FWPS_FILTER3, FWPS_INCOMING_METADATA_VALUES0, FWPS_INCOMING_VALUE0,
        FWPS_INCOMING_VALUES0, FWPS_METADATA_FIELD_PROCESS_ID,
    };

    /// One incoming value.
    #[derive(Clone, Copy, Debug)]
    pub enum Value {
        Empty,
        U8(u8),
        U16(u16),
        U32(u32),
        Bytes16([u8; 16]),
        /// A value of any other `FWP_DATA_TYPE`, with a null payload.
        OtherType(i32),
        /// An `FWP_BYTE_BLOB_TYPE` holding these UTF-16 units plus a NUL (as
        /// ALE_APP_ID arrives).
        Utf16(&'static [u16]),
    }

    /// A classification: fixed values, metadata, filter and classify output.
    pub struct Classification {
        layer_id: u16,
        values: Vec<Value>,
        arrays: Vec<FWP_BYTE_ARRAY16>,
        blobs: Vec<(Vec<u16>, FWP_BYTE_BLOB)>,
        meta: Box<FWPS_INCOMING_METADATA_VALUES0>,
        filter: Box<FWPS_FILTER3>,
        out: Box<FWPS_CLASSIFY_OUT0>,
    }

    impl Classification {
        /// A classification at `layer_id` with `values`; no rights, action 0.
        pub fn new(layer_id: u16, values: &[Value]) -> Self {
            let arrays = values
                .iter()
                .filter_map(|v| match v {
                    Value::Bytes16(b) => Some(FWP_BYTE_ARRAY16 { byteArray16: *b }),
                    _ => None,
                })
                .collect();
            let blobs = values
                .iter()
                .filter_map(|v| match v {
                    Value::Utf16(u) => {
                        let mut units = u.to_vec();
                        units.push(0);
                        Some((units, FWP_BYTE_BLOB { size: 0, data: ptr::null_mut() }))
                    }
                    _ => None,
                })
                .collect();
            Self {
                layer_id,
                values: values.to_vec(),
                arrays,
                blobs,
                // SAFETY: all-zero is a valid value of these plain C structs.
                meta: Box::new(unsafe { core::mem::zeroed() }),
                // SAFETY: as above.
                filter: Box::new(unsafe { core::mem::zeroed() }),
                out: Box::new(FWPS_CLASSIFY_OUT0 {
                    actionType: 0,
                    outContext: 0,
                    filterId: 0,
                    rights: 0,
                    flags: 0,
                    reserved: 0,
                }),
            }
        }

        pub fn rights(mut self, rights: u32) -> Self {
            self.out.rights = rights;
            self
        }

        pub fn action(mut self, action_type: u32) -> Self {
            self.out.actionType = action_type;
            self
        }

        pub fn filter_flags(mut self, flags: u16) -> Self {
            self.filter.flags = flags;
            self
        }

        pub fn process_id(mut self, pid: u64) -> Self {
            self.meta.currentMetadataValues |= FWPS_METADATA_FIELD_PROCESS_ID;
            self.meta.processId = pid;
            self
        }

        /// The classify output as the engine would read it afterwards.
        pub fn out(&self) -> &FWPS_CLASSIFY_OUT0 {
            &self.out
        }

        /// Calls `f` with the views classifyFn would build.
        pub fn run<R>(
            &mut self,
            f: impl FnOnce(&IncomingValues<'_>, Option<&Metadata<'_>>, Option<&Filter<'_>>, &mut ClassifyOut<'_>) -> R,
        ) -> R {
            let mut arrays = self.arrays.iter_mut();
            let mut blobs = self.blobs.iter_mut();
            let mut raw: Vec<FWPS_INCOMING_VALUE0> = self
                .values
                .iter()
                .map(|v| {
                    let (ty, anon) = match *v {
                        Value::Empty => (FWP_EMPTY, FWP_VALUE0_0 { uint64: ptr::null_mut() }),
                        Value::U8(x) => (FWP_UINT8, FWP_VALUE0_0 { uint8: x }),
                        Value::U16(x) => (FWP_UINT16, FWP_VALUE0_0 { uint16: x }),
                        Value::U32(x) => (FWP_UINT32, FWP_VALUE0_0 { uint32: x }),
                        Value::Bytes16(_) => (
                            FWP_BYTE_ARRAY16_TYPE,
                            FWP_VALUE0_0 {
                                byteArray16: arrays.next().map_or(ptr::null_mut(), ptr::from_mut),
                            },
                        ),
                        Value::OtherType(t) => (t, FWP_VALUE0_0 { uint64: ptr::null_mut() }),
                        Value::Utf16(_) => (
                            FWP_BYTE_BLOB_TYPE,
                            FWP_VALUE0_0 {
                                byteBlob: blobs.next().map_or(ptr::null_mut(), |(units, blob)| {
                                    blob.size = u32::try_from(units.len() * 2).unwrap_or(0);
                                    blob.data = units.as_mut_ptr().cast();
                                    ptr::from_mut(blob)
                                }),
                            },
                        ),
                    };
                    FWPS_INCOMING_VALUE0 { value: FWP_VALUE0 { r#type: ty, Anonymous: anon } }
                })
                .collect();
            let fixed = FWPS_INCOMING_VALUES0 {
                layerId: self.layer_id,
                valueCount: u32::try_from(raw.len()).unwrap_or(u32::MAX),
                incomingValue: raw.as_mut_ptr(),
            };
            // SAFETY: every pointer refers to buffers owned by `self` or this
            // frame, alive and unaliased until `f` returns; byte-array values
            // point into `self.arrays`, which is not resized while borrowed, other values carry no pointer that the
            // views dereference without checking the type first.
            let (values, meta, filter, mut out) = unsafe {
                (
                    IncomingValues::from_raw(&fixed),
                    Metadata::from_raw(&*self.meta),
                    Filter::from_raw(&*self.filter),
                    ClassifyOut::from_raw(&mut *self.out),
                )
            };
            match (values, out.as_mut()) {
                (Some(values), Some(out)) => f(&values, meta.as_ref(), filter.as_ref(), out),
                _ => unreachable!("the synthetic classification's pointers are never null"),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
