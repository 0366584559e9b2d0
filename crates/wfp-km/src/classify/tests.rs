//! Tests of the classify views (`classify.rs`).
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
