//! Builders for the management objects Weir adds: sublayer, callout, filter.
//!
//! Each builder is plain data with `'static` names; `to_raw` produces the
//! `FWPM_*0` structure the engine copies during the add call.

use crate::strings::WStr;
use core::ptr;
use wfp_km_sys::fwp_types::{
    FWPM_ACTION0, FWPM_ACTION0_0, FWPM_CALLOUT0, FWPM_DISPLAY_DATA0, FWPM_FILTER0, FWPM_FILTER0_0,
    FWPM_SUBLAYER0, FWP_BYTE_BLOB, FWP_EMPTY, FWP_UINT8, FWP_VALUE0, FWP_VALUE0_0,
};
use wfp_km_sys::GUID;

fn display(name: WStr, description: WStr) -> FWPM_DISPLAY_DATA0 {
    FWPM_DISPLAY_DATA0 {
        name: name.as_ptr().cast_mut(),
        description: description.as_ptr().cast_mut(),
    }
}

const NO_BLOB: FWP_BYTE_BLOB = FWP_BYTE_BLOB { size: 0, data: ptr::null_mut() };

/// A sublayer: Weir's own arbitration slot in every layer.
#[derive(Clone, Copy)]
pub struct SubLayer {
    pub key: GUID,
    pub name: WStr,
    pub description: WStr,
    pub weight: u16,
}

impl SubLayer {
    pub fn to_raw(&self) -> FWPM_SUBLAYER0 {
        FWPM_SUBLAYER0 {
            subLayerKey: self.key,
            displayData: display(self.name, self.description),
            flags: 0,
            providerKey: ptr::null_mut(),
            providerData: NO_BLOB,
            weight: self.weight,
        }
    }
}

/// The management half of a callout (its run-time half is registered with
/// [`crate::callout::Registration`] under the same key).
#[derive(Clone, Copy)]
pub struct Callout {
    pub key: GUID,
    pub name: WStr,
    pub description: WStr,
    pub layer: GUID,
}

impl Callout {
    pub fn to_raw(&self) -> FWPM_CALLOUT0 {
        FWPM_CALLOUT0 {
            calloutKey: self.key,
            displayData: display(self.name, self.description),
            flags: 0,
            providerKey: ptr::null_mut(),
            providerData: NO_BLOB,
            applicableLayer: self.layer,
            calloutId: 0,
        }
    }
}

/// A filter whose action is a callout.
#[derive(Clone, Copy)]
pub struct CalloutFilter {
    pub key: GUID,
    pub name: WStr,
    pub description: WStr,
    pub layer: GUID,
    pub sublayer: GUID,
    pub callout: GUID,
    /// `FWP_ACTION_CALLOUT_TERMINATING`, `_INSPECTION` or `_UNKNOWN`.
    pub action_type: u32,
    /// `FWPM_FILTER_FLAG_*`.
    pub flags: u32,
    /// `None` lets the engine assign a weight.
    pub weight: Option<u8>,
}

impl CalloutFilter {
    pub fn to_raw(&self) -> FWPM_FILTER0 {
        let weight = match self.weight {
            Some(w) => FWP_VALUE0 { r#type: FWP_UINT8, Anonymous: FWP_VALUE0_0 { uint8: w } },
            None => FWP_VALUE0 { r#type: FWP_EMPTY, Anonymous: FWP_VALUE0_0 { uint64: ptr::null_mut() } },
        };
        FWPM_FILTER0 {
            filterKey: self.key,
            displayData: display(self.name, self.description),
            flags: self.flags,
            providerKey: ptr::null_mut(),
            providerData: NO_BLOB,
            layerKey: self.layer,
            subLayerKey: self.sublayer,
            weight,
            numFilterConditions: 0,
            filterCondition: ptr::null_mut(),
            action: FWPM_ACTION0 {
                r#type: self.action_type,
                Anonymous: FWPM_ACTION0_0 { calloutKey: self.callout },
            },
            Anonymous: FWPM_FILTER0_0 { rawContext: 0 },
            reserved: ptr::null_mut(),
            filterId: 0,
            effectiveWeight: FWP_VALUE0 { r#type: FWP_EMPTY, Anonymous: FWP_VALUE0_0 { uint64: ptr::null_mut() } },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfp_km_sys::fwp_types::{
        FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED, FWPM_LAYER_ALE_AUTH_CONNECT_V4,
        FWP_ACTION_CALLOUT_TERMINATING,
    };

    const SUB: GUID = GUID::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888);
    const CO: GUID = GUID::from_u128(0xAAAA_BBBB_CCCC_DDDD_EEEE_FFFF_0000_1111);

    #[test]
    fn filter_points_at_its_callout_and_layer() {
        let f = CalloutFilter {
            key: GUID::from_u128(1),
            name: crate::wstr!("f"),
            description: crate::wstr!("d"),
            layer: FWPM_LAYER_ALE_AUTH_CONNECT_V4,
            sublayer: SUB,
            callout: CO,
            action_type: FWP_ACTION_CALLOUT_TERMINATING,
            flags: FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED,
            weight: None,
        }
        .to_raw();
        assert_eq!(f.layerKey.data1, FWPM_LAYER_ALE_AUTH_CONNECT_V4.data1);
        assert_eq!(f.subLayerKey.data1, SUB.data1);
        assert_eq!(f.action.r#type, FWP_ACTION_CALLOUT_TERMINATING);
        // SAFETY: test reads the union member we wrote.
        assert_eq!(unsafe { f.action.Anonymous.calloutKey }.data1, CO.data1);
        assert_eq!(f.flags, FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED);
        assert_eq!(f.weight.r#type, FWP_EMPTY);
        assert_eq!(f.numFilterConditions, 0);
    }

    #[test]
    fn explicit_weight_is_a_uint8() {
        let f = CalloutFilter {
            key: GUID::from_u128(1),
            name: crate::wstr!("f"),
            description: crate::wstr!("d"),
            layer: FWPM_LAYER_ALE_AUTH_CONNECT_V4,
            sublayer: SUB,
            callout: CO,
            action_type: FWP_ACTION_CALLOUT_TERMINATING,
            flags: 0,
            weight: Some(7),
        }
        .to_raw();
        assert_eq!(f.weight.r#type, FWP_UINT8);
        // SAFETY: test reads the union member we wrote.
        assert_eq!(unsafe { f.weight.Anonymous.uint8 }, 7);
    }

    #[test]
    fn sublayer_and_callout_carry_names() {
        let s = SubLayer { key: SUB, name: crate::wstr!("Weir"), description: crate::wstr!("x"), weight: 9 }.to_raw();
        assert_eq!(s.weight, 9);
        assert!(!s.displayData.name.is_null());
        let c = Callout { key: CO, name: crate::wstr!("c"), description: crate::wstr!("d"), layer: FWPM_LAYER_ALE_AUTH_CONNECT_V4 }.to_raw();
        assert_eq!(c.calloutKey.data1, CO.data1);
        assert_eq!(c.applicableLayer.data1, FWPM_LAYER_ALE_AUTH_CONNECT_V4.data1);
    }
}
