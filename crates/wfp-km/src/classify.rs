//! Read-only views of what the filter engine passes to classifyFn.
//!
//! classifyFn runs at IRQL <= DISPATCH_LEVEL with pointers that die when it
//! returns, so these views borrow for the duration of the call only, never
//! allocate, and check the value count and the value type before each read:
//! asking for a field the layer does not provide, or asking with the wrong
//! type, yields `None`.

use core::slice;
use wfp_km_sys::fwp_types::{
    FWP_BYTE_ARRAY16_TYPE, FWP_BYTE_BLOB, FWP_BYTE_BLOB_TYPE, FWP_DATA_TYPE, FWP_UINT16, FWP_UINT32, FWP_UINT8,
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
pub(crate) mod tests {
    use super::*;
    use core::ptr;
    use wfp_km_sys::fwp_types::{FWP_BYTE_ARRAY16, FWP_EMPTY, FWP_VALUE0_0, FWP_ACTION_PERMIT, FWP_ACTION_BLOCK};

    pub fn val_u8(v: u8) -> FWPS_INCOMING_VALUE0 {
        FWPS_INCOMING_VALUE0 { value: FWP_VALUE0 { r#type: FWP_UINT8, Anonymous: FWP_VALUE0_0 { uint8: v } } }
    }
    pub fn val_u16(v: u16) -> FWPS_INCOMING_VALUE0 {
        FWPS_INCOMING_VALUE0 { value: FWP_VALUE0 { r#type: FWP_UINT16, Anonymous: FWP_VALUE0_0 { uint16: v } } }
    }
    pub fn val_u32(v: u32) -> FWPS_INCOMING_VALUE0 {
        FWPS_INCOMING_VALUE0 { value: FWP_VALUE0 { r#type: FWP_UINT32, Anonymous: FWP_VALUE0_0 { uint32: v } } }
    }
    pub fn val_bytes16(v: &mut FWP_BYTE_ARRAY16) -> FWPS_INCOMING_VALUE0 {
        FWPS_INCOMING_VALUE0 {
            value: FWP_VALUE0 { r#type: FWP_BYTE_ARRAY16_TYPE, Anonymous: FWP_VALUE0_0 { byteArray16: v } },
        }
    }
    pub fn empty() -> FWPS_INCOMING_VALUE0 {
        FWPS_INCOMING_VALUE0 { value: FWP_VALUE0 { r#type: FWP_EMPTY, Anonymous: FWP_VALUE0_0 { uint64: ptr::null_mut() } } }
    }
    pub fn fixed(layer: u16, values: &mut [FWPS_INCOMING_VALUE0]) -> FWPS_INCOMING_VALUES0 {
        FWPS_INCOMING_VALUES0 {
            layerId: layer,
            valueCount: values.len() as u32,
            incomingValue: values.as_mut_ptr(),
        }
    }

    #[test]
    fn typed_reads_check_type_and_bounds() {
        let mut v6 = FWP_BYTE_ARRAY16 { byteArray16: [7; 16] };
        let mut vals = [val_u8(6), val_u16(443), val_u32(0x7f00_0001), val_bytes16(&mut v6), empty()];
        let raw = fixed(48, &mut vals);
        // SAFETY: raw and vals outlive `iv`.
        let iv = unsafe { IncomingValues::from_raw(&raw) }.unwrap();
        assert_eq!(iv.layer_id(), 48);
        assert_eq!(iv.len(), 5);
        assert_eq!(iv.u8(0), Some(6));
        assert_eq!(iv.u16(1), Some(443));
        assert_eq!(iv.u32(2), Some(0x7f00_0001));
        assert_eq!(iv.byte_array16(3), Some([7; 16]));
        // Wrong type.
        assert_eq!(iv.u16(0), None);
        assert_eq!(iv.u32(1), None);
        assert_eq!(iv.byte_array16(2), None);
        assert_eq!(iv.u8(4), None);
        // Past the end.
        assert_eq!(iv.u8(5), None);
        assert_eq!(iv.u32(u32::MAX), None);
    }

    #[test]
    fn utf16_blob_strips_the_nul_and_checks_shape() {
        use wfp_km_sys::fwp_types::FWP_BYTE_BLOB;
        let mut units: Vec<u16> = "\\device\\x.exe\0".encode_utf16().collect();
        let mut blob = FWP_BYTE_BLOB { size: (units.len() * 2) as u32, data: units.as_mut_ptr().cast() };
        let mut odd = FWP_BYTE_BLOB { size: 3, data: units.as_mut_ptr().cast() };
        let mut misaligned = FWP_BYTE_BLOB { size: 2, data: units.as_mut_ptr().cast::<u8>().wrapping_add(1) };
        let mut null = FWP_BYTE_BLOB { size: 2, data: ptr::null_mut() };
        let blob_val = |b: &mut FWP_BYTE_BLOB| FWPS_INCOMING_VALUE0 {
            value: FWP_VALUE0 { r#type: FWP_BYTE_BLOB_TYPE, Anonymous: FWP_VALUE0_0 { byteBlob: b } },
        };
        let mut vals = [blob_val(&mut blob), blob_val(&mut odd), blob_val(&mut misaligned), blob_val(&mut null), val_u32(1)];
        let raw = fixed(48, &mut vals);
        // SAFETY: raw, vals, the blobs and units outlive the view.
        let iv = unsafe { IncomingValues::from_raw(&raw) }.unwrap();
        let expected: Vec<u16> = "\\device\\x.exe".encode_utf16().collect();
        assert_eq!(iv.utf16_blob(0), Some(&expected[..]));
        assert_eq!(iv.utf16_blob(1), None);
        assert_eq!(iv.utf16_blob(2), None);
        assert_eq!(iv.utf16_blob(3), None);
        assert_eq!(iv.utf16_blob(4), None);
        assert_eq!(iv.utf16_blob(9), None);
    }

    #[test]
    fn null_pointers_are_rejected_not_read() {
        // SAFETY: null is allowed by the contract.
        assert!(unsafe { IncomingValues::from_raw(ptr::null()) }.is_none());
        let raw = FWPS_INCOMING_VALUES0 { layerId: 48, valueCount: 3, incomingValue: ptr::null_mut() };
        // SAFETY: raw is valid; its array pointer is null, which must be refused.
        assert!(unsafe { IncomingValues::from_raw(&raw) }.is_none());
        let raw = FWPS_INCOMING_VALUES0 { layerId: 48, valueCount: 0, incomingValue: ptr::null_mut() };
        // SAFETY: as above; zero values need no array.
        assert!(unsafe { IncomingValues::from_raw(&raw) }.unwrap().is_empty());
        // A byte-array value whose pointer is null reads as absent.
        let mut vals = [FWPS_INCOMING_VALUE0 {
            value: FWP_VALUE0 { r#type: FWP_BYTE_ARRAY16_TYPE, Anonymous: FWP_VALUE0_0 { byteArray16: ptr::null_mut() } },
        }];
        let raw = fixed(50, &mut vals);
        // SAFETY: raw and vals outlive the view.
        assert_eq!(unsafe { IncomingValues::from_raw(&raw) }.unwrap().byte_array16(0), None);
    }

    fn classify_out(rights: u32) -> FWPS_CLASSIFY_OUT0 {
        FWPS_CLASSIFY_OUT0 { actionType: 0, outContext: 0, filterId: 0, rights, flags: 0, reserved: 0 }
    }

    #[test]
    fn decide_respects_a_cleared_write_right() {
        let mut raw = classify_out(0);
        // SAFETY: raw is a valid, unaliased classify out.
        let mut out = unsafe { ClassifyOut::from_raw(&mut raw) }.unwrap();
        assert!(!out.may_write_action());
        assert!(!out.decide(Verdict::Permit, false));
        assert_eq!(raw.actionType, 0);
    }

    #[test]
    fn decide_sets_action_and_optionally_clears_right() {
        let mut raw = classify_out(FWPS_RIGHT_ACTION_WRITE);
        {
            // SAFETY: raw is a valid, unaliased classify out.
            let mut out = unsafe { ClassifyOut::from_raw(&mut raw) }.unwrap();
            assert!(out.decide(Verdict::Permit, false));
        }
        assert_eq!(raw.actionType, FWP_ACTION_PERMIT);
        assert_eq!(raw.rights, FWPS_RIGHT_ACTION_WRITE);
        {
            // SAFETY: as above.
            let mut out = unsafe { ClassifyOut::from_raw(&mut raw) }.unwrap();
            assert!(out.decide(Verdict::Block, true));
        }
        assert_eq!(raw.actionType, FWP_ACTION_BLOCK);
        assert_eq!(raw.rights, 0);
    }

    #[test]
    fn metadata_process_id_only_when_flagged() {
        // SAFETY: all-zero is a valid metadata value.
        let mut meta: FWPS_INCOMING_METADATA_VALUES0 = unsafe { core::mem::zeroed() };
        meta.processId = 4242;
        // SAFETY: meta outlives the view.
        let m = unsafe { Metadata::from_raw(&meta) }.unwrap();
        assert_eq!(m.process_id(), None);
        // 0x40 is FWPS_METADATA_FIELD_SYSTEM_FLAGS: not the process id.
        meta.currentMetadataValues = 0x40;
        // SAFETY: as above.
        assert_eq!(unsafe { Metadata::from_raw(&meta) }.unwrap().process_id(), None);
        meta.currentMetadataValues = FWPS_METADATA_FIELD_PROCESS_ID;
        // SAFETY: as above.
        let m = unsafe { Metadata::from_raw(&meta) }.unwrap();
        assert_eq!(m.process_id(), Some(4242));
        // SAFETY: null allowed.
        assert!(unsafe { Metadata::from_raw(ptr::null()) }.is_none());
    }

    #[test]
    fn filter_flags() {
        // SAFETY: all-zero is a valid filter value.
        let mut f: FWPS_FILTER3 = unsafe { core::mem::zeroed() };
        f.filterId = 9;
        // SAFETY: f outlives the view.
        let v = unsafe { Filter::from_raw(&f) }.unwrap();
        assert_eq!(v.id(), 9);
        assert!(!v.wants_action_right_cleared());
        f.flags = FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT;
        // SAFETY: as above.
        assert!(unsafe { Filter::from_raw(&f) }.unwrap().wants_action_right_cleared());
    }
}
