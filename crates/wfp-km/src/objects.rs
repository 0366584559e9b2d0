//! Builders for the management objects Weir adds: provider, sublayer,
//! callout, callout filter and plain permit/block filter.
//!
//! Each builder is plain data with `'static` names; `to_raw` produces the
//! `FWPM_*0` structure the engine copies during the add call.

use crate::strings::WStr;
use core::ptr;
use wfp_km_sys::fwp_types::{
    FWPM_ACTION0, FWPM_ACTION0_0, FWPM_CALLOUT0, FWPM_DISPLAY_DATA0, FWPM_FILTER0, FWPM_FILTER0_0,
    FWPM_FILTER_CONDITION0, FWPM_PROVIDER0, FWPM_SUBLAYER0, FWP_BYTE_BLOB, FWP_CONDITION_VALUE0,
    FWP_CONDITION_VALUE0_0, FWP_EMPTY, FWP_MATCH_EQUAL, FWP_MATCH_FLAGS_ALL_SET, FWP_RANGE0, FWP_UINT16, FWP_UINT32,
    FWP_UINT8, FWP_V4_ADDR_AND_MASK, FWP_V6_ADDR_AND_MASK, FWP_VALUE0, FWP_VALUE0_0,
};
use wfp_km_sys::GUID;

fn display(name: WStr, description: WStr) -> FWPM_DISPLAY_DATA0 {
    FWPM_DISPLAY_DATA0 {
        name: name.as_ptr().cast_mut(),
        description: description.as_ptr().cast_mut(),
    }
}

const NO_BLOB: FWP_BYTE_BLOB = FWP_BYTE_BLOB { size: 0, data: ptr::null_mut() };

/// `&self.provider` as the raw `providerKey` (null for none); valid while
/// the builder is borrowed, which covers the add call.
fn provider_ptr(provider: &Option<GUID>) -> *mut GUID {
    provider
        .as_ref()
        .map_or(ptr::null_mut(), |key| ptr::from_ref(key).cast_mut())
}

/// A provider: the owner named by persistent objects, so an administrator
/// (`netsh wfp show state`) and an uninstall can find everything it left.
#[derive(Clone, Copy)]
pub struct Provider {
    pub key: GUID,
    pub name: WStr,
    pub description: WStr,
    /// `FWPM_PROVIDER_FLAG_*`.
    pub flags: u32,
}

impl Provider {
    pub fn to_raw(&self) -> FWPM_PROVIDER0 {
        FWPM_PROVIDER0 {
            providerKey: self.key,
            displayData: display(self.name, self.description),
            flags: self.flags,
            providerData: NO_BLOB,
            serviceName: ptr::null_mut(),
        }
    }
}

/// A sublayer: an arbitration slot in every layer.
#[derive(Clone, Copy)]
pub struct SubLayer {
    pub key: GUID,
    pub name: WStr,
    pub description: WStr,
    pub weight: u16,
    /// `FWPM_SUBLAYER_FLAG_*`.
    pub flags: u32,
    pub provider: Option<GUID>,
}

impl SubLayer {
    pub fn to_raw(&self) -> FWPM_SUBLAYER0 {
        FWPM_SUBLAYER0 {
            subLayerKey: self.key,
            displayData: display(self.name, self.description),
            flags: self.flags,
            providerKey: provider_ptr(&self.provider),
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

/// One condition of a [`RuleFilter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `FWPM_CONDITION_FLAGS` has `FWP_CONDITION_FLAG_IS_LOOPBACK` set.
    Loopback,
    /// `FWPM_CONDITION_IP_PROTOCOL` equals this IANA protocol number.
    Protocol(u8),
    /// `FWPM_CONDITION_IP_REMOTE_PORT` equals this port.
    RemotePort(u16),
    /// `FWPM_CONDITION_IP_LOCAL_PORT` equals this port.
    LocalPort(u16),
    /// `FWPM_CONDITION_IP_REMOTE_PORT` in `low..=high` (`FWP_MATCH_RANGE`).
    RemotePortRange(u16, u16),
    /// `FWPM_CONDITION_IP_LOCAL_PORT` in `low..=high` (`FWP_MATCH_RANGE`).
    LocalPortRange(u16, u16),
    /// `FWPM_CONDITION_IP_REMOTE_ADDRESS` in an IPv4 network
    /// (`FWP_V4_ADDR_MASK`; address and mask in host byte order).
    RemoteV4 { addr: u32, mask: u32 },
    /// `FWPM_CONDITION_IP_REMOTE_ADDRESS` in an IPv6 network
    /// (`FWP_V6_ADDR_MASK`; address in network byte order).
    RemoteV6 { addr: [u8; 16], prefix: u8 },
}

/// What a condition's value points to when it is not inline (an address
/// and mask, a range): one per condition slot of [`ConditionStorage`].
#[derive(Clone, Copy, Default)]
pub struct ConditionValue {
    v4: FWP_V4_ADDR_AND_MASK,
    v6: FWP_V6_ADDR_AND_MASK,
    range: FWP_RANGE0,
}

/// The raw conditions of one filter and the values they point to, filled by
/// [`RuleFilter::to_raw`]. It must stay where it is (not moved, not
/// changed) from `to_raw` until the add call returns: the raw filter and
/// its conditions point into it.
#[derive(Clone, Copy)]
pub struct ConditionStorage {
    conditions: [FWPM_FILTER_CONDITION0; MAX_CONDITIONS],
    values: [ConditionValue; MAX_CONDITIONS],
}

impl Default for ConditionStorage {
    fn default() -> Self {
        let mut placeholder = ConditionValue::default();
        Self {
            conditions: [Condition::Loopback.to_raw(&mut placeholder); MAX_CONDITIONS],
            values: [ConditionValue::default(); MAX_CONDITIONS],
        }
    }
}

impl ConditionStorage {
    /// The raw conditions (for tests and the add call).
    pub fn conditions(&self) -> &[FWPM_FILTER_CONDITION0; MAX_CONDITIONS] {
        &self.conditions
    }
}

fn uint16(v: u16) -> FWP_VALUE0 {
    FWP_VALUE0 { r#type: FWP_UINT16, Anonymous: FWP_VALUE0_0 { uint16: v } }
}

impl Condition {
    /// The raw condition; a value that is not inline (address and mask,
    /// range) is written to `value`, which the raw condition then points
    /// to, so `value` must outlive (and not move before) the add call.
    pub fn to_raw(self, value: &mut ConditionValue) -> FWPM_FILTER_CONDITION0 {
        use wfp_km_sys::fwp_types::{
            FWPM_CONDITION_FLAGS, FWPM_CONDITION_IP_LOCAL_PORT, FWPM_CONDITION_IP_PROTOCOL,
            FWPM_CONDITION_IP_REMOTE_ADDRESS, FWPM_CONDITION_IP_REMOTE_PORT, FWP_CONDITION_FLAG_IS_LOOPBACK,
            FWP_MATCH_RANGE, FWP_RANGE_TYPE, FWP_V4_ADDR_MASK, FWP_V6_ADDR_MASK,
        };
        let inline = |r#type, anonymous| FWP_CONDITION_VALUE0 { r#type, Anonymous: anonymous };
        let mut range = |low: u16, high: u16| {
            value.range = FWP_RANGE0 { valueLow: uint16(low), valueHigh: uint16(high) };
            inline(FWP_RANGE_TYPE, FWP_CONDITION_VALUE0_0 { rangeValue: ptr::from_mut(&mut value.range) })
        };
        let (field, match_type, condition_value) = match self {
            Self::Loopback => (
                FWPM_CONDITION_FLAGS,
                FWP_MATCH_FLAGS_ALL_SET,
                inline(FWP_UINT32, FWP_CONDITION_VALUE0_0 { uint32: FWP_CONDITION_FLAG_IS_LOOPBACK }),
            ),
            Self::Protocol(p) => {
                (FWPM_CONDITION_IP_PROTOCOL, FWP_MATCH_EQUAL, inline(FWP_UINT8, FWP_CONDITION_VALUE0_0 { uint8: p }))
            }
            Self::RemotePort(port) => (
                FWPM_CONDITION_IP_REMOTE_PORT,
                FWP_MATCH_EQUAL,
                inline(FWP_UINT16, FWP_CONDITION_VALUE0_0 { uint16: port }),
            ),
            Self::LocalPort(port) => (
                FWPM_CONDITION_IP_LOCAL_PORT,
                FWP_MATCH_EQUAL,
                inline(FWP_UINT16, FWP_CONDITION_VALUE0_0 { uint16: port }),
            ),
            Self::RemotePortRange(low, high) => (FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_RANGE, range(low, high)),
            Self::LocalPortRange(low, high) => (FWPM_CONDITION_IP_LOCAL_PORT, FWP_MATCH_RANGE, range(low, high)),
            Self::RemoteV4 { addr, mask } => {
                value.v4 = FWP_V4_ADDR_AND_MASK { addr, mask };
                (
                    FWPM_CONDITION_IP_REMOTE_ADDRESS,
                    FWP_MATCH_EQUAL,
                    inline(FWP_V4_ADDR_MASK, FWP_CONDITION_VALUE0_0 { v4AddrMask: ptr::from_mut(&mut value.v4) }),
                )
            }
            Self::RemoteV6 { addr, prefix } => {
                value.v6 = FWP_V6_ADDR_AND_MASK { addr, prefixLength: prefix };
                (
                    FWPM_CONDITION_IP_REMOTE_ADDRESS,
                    FWP_MATCH_EQUAL,
                    inline(FWP_V6_ADDR_MASK, FWP_CONDITION_VALUE0_0 { v6AddrMask: ptr::from_mut(&mut value.v6) }),
                )
            }
        };
        FWPM_FILTER_CONDITION0 { fieldKey: field, matchType: match_type, conditionValue: condition_value }
    }
}

/// Most conditions a [`RuleFilter`] carries (all must match).
pub const MAX_CONDITIONS: usize = 3;

/// A filter whose action is a plain permit or block, with up to
/// [`MAX_CONDITIONS`] conditions and an explicit weight.
#[derive(Clone, Copy)]
pub struct RuleFilter {
    pub key: GUID,
    pub name: WStr,
    pub description: WStr,
    pub layer: GUID,
    /// `None`: the default sublayer (boot-time filters, whose sublayer must
    /// exist before BFE does).
    pub sublayer: Option<GUID>,
    pub provider: Option<GUID>,
    /// `FWP_ACTION_PERMIT` or `FWP_ACTION_BLOCK`.
    pub action_type: u32,
    /// `FWPM_FILTER_FLAG_*` (PERSISTENT or BOOTTIME, never both).
    pub flags: u32,
    /// 0..=15 within the sublayer; higher is evaluated first.
    pub weight: u8,
    pub conditions: [Option<Condition>; MAX_CONDITIONS],
}

impl RuleFilter {
    /// The raw filter; its conditions (and their values) live in
    /// `storage`, which the caller keeps in place, unchanged, for the add
    /// call.
    pub fn to_raw(&self, storage: &mut ConditionStorage) -> FWPM_FILTER0 {
        let mut count = 0u32;
        let slots = storage.conditions.iter_mut().zip(storage.values.iter_mut());
        for ((slot, value), c) in slots.zip(self.conditions.iter().flatten()) {
            *slot = c.to_raw(value);
            count += 1;
        }
        let conditions = &mut storage.conditions;
        FWPM_FILTER0 {
            filterKey: self.key,
            displayData: display(self.name, self.description),
            flags: self.flags,
            providerKey: provider_ptr(&self.provider),
            providerData: NO_BLOB,
            layerKey: self.layer,
            subLayerKey: self.sublayer.unwrap_or(GUID::from_u128(0)),
            weight: FWP_VALUE0 {
                r#type: FWP_UINT8,
                Anonymous: FWP_VALUE0_0 { uint8: self.weight },
            },
            numFilterConditions: count,
            filterCondition: if count == 0 {
                ptr::null_mut()
            } else {
                conditions.as_mut_ptr()
            },
            action: FWPM_ACTION0 {
                r#type: self.action_type,
                Anonymous: FWPM_ACTION0_0 {
                    calloutKey: GUID::from_u128(0),
                },
            },
            Anonymous: FWPM_FILTER0_0 { rawContext: 0 },
            reserved: ptr::null_mut(),
            filterId: 0,
            effectiveWeight: FWP_VALUE0 {
                r#type: FWP_EMPTY,
                Anonymous: FWP_VALUE0_0 {
                    uint64: ptr::null_mut(),
                },
            },
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
        let s = SubLayer { key: SUB, name: crate::wstr!("Weir"), description: crate::wstr!("x"), weight: 9, flags: 0, provider: None }.to_raw();
        assert_eq!(s.weight, 9);
        assert!(s.providerKey.is_null());
        assert!(!s.displayData.name.is_null());
        let c = Callout { key: CO, name: crate::wstr!("c"), description: crate::wstr!("d"), layer: FWPM_LAYER_ALE_AUTH_CONNECT_V4 }.to_raw();
        assert_eq!(c.calloutKey.data1, CO.data1);
        assert_eq!(c.applicableLayer.data1, FWPM_LAYER_ALE_AUTH_CONNECT_V4.data1);
    }

    #[test]
    fn rule_filter_carries_provider_flags_weight_and_conditions() {
        use wfp_km_sys::fwp_types::{
            FWPM_CONDITION_IP_PROTOCOL, FWPM_CONDITION_IP_REMOTE_PORT, FWPM_FILTER_FLAG_PERSISTENT,
            FWP_ACTION_PERMIT,
        };
        let rule = RuleFilter {
            key: GUID::from_u128(5),
            name: crate::wstr!("f"),
            description: crate::wstr!("d"),
            layer: FWPM_LAYER_ALE_AUTH_CONNECT_V4,
            sublayer: Some(SUB),
            provider: Some(CO),
            action_type: FWP_ACTION_PERMIT,
            flags: FWPM_FILTER_FLAG_PERSISTENT,
            weight: 13,
            conditions: [
                Some(Condition::Protocol(17)),
                Some(Condition::RemotePort(67)),
                None,
            ],
        };
        let mut storage = ConditionStorage::default();
        let f = rule.to_raw(&mut storage);
        assert_eq!(f.numFilterConditions, 2);
        assert_eq!(f.filterCondition.cast_const(), storage.conditions().as_ptr());
        let conds = *storage.conditions();
        // SAFETY: provider_ptr points at `rule.provider`, alive here.
        assert_eq!(unsafe { (*f.providerKey).data1 }, CO.data1);
        assert_eq!(f.flags, FWPM_FILTER_FLAG_PERSISTENT);
        assert_eq!(f.action.r#type, FWP_ACTION_PERMIT);
        // SAFETY: test reads the union members we wrote.
        unsafe {
            assert_eq!(f.weight.Anonymous.uint8, 13);
            assert_eq!(conds[0].fieldKey.data1, FWPM_CONDITION_IP_PROTOCOL.data1);
            assert_eq!(conds[0].conditionValue.Anonymous.uint8, 17);
            assert_eq!(conds[1].fieldKey.data1, FWPM_CONDITION_IP_REMOTE_PORT.data1);
            assert_eq!(conds[1].conditionValue.Anonymous.uint16, 67);
        }
        let none = RuleFilter {
            conditions: [None, None, None],
            sublayer: None,
            ..rule
        }
        .to_raw(&mut storage);
        assert_eq!(none.numFilterConditions, 0);
        assert!(none.filterCondition.is_null());
        assert_eq!(none.subLayerKey.data1, 0);
    }

    #[test]
    fn address_and_range_conditions_point_into_the_storage() {
        use wfp_km_sys::fwp_types::{
            FWPM_CONDITION_IP_LOCAL_PORT, FWPM_CONDITION_IP_REMOTE_ADDRESS, FWPM_CONDITION_IP_REMOTE_PORT,
            FWPM_FILTER_FLAG_PERSISTENT, FWP_ACTION_PERMIT, FWP_MATCH_RANGE, FWP_RANGE_TYPE, FWP_V4_ADDR_MASK,
            FWP_V6_ADDR_MASK,
        };
        let mut v6 = [0u8; 16];
        v6[0] = 0xfd;
        let rule = RuleFilter {
            key: GUID::from_u128(6),
            name: crate::wstr!("f"),
            description: crate::wstr!("d"),
            layer: FWPM_LAYER_ALE_AUTH_CONNECT_V4,
            sublayer: Some(SUB),
            provider: Some(CO),
            action_type: FWP_ACTION_PERMIT,
            flags: FWPM_FILTER_FLAG_PERSISTENT,
            weight: 11,
            conditions: [
                Some(Condition::RemoteV4 { addr: 0x0A01_0200, mask: 0xFFFF_FF00 }),
                Some(Condition::RemotePortRange(5985, 5986)),
                Some(Condition::RemoteV6 { addr: v6, prefix: 8 }),
            ],
        };
        let mut storage = ConditionStorage::default();
        let f = rule.to_raw(&mut storage);
        assert_eq!(f.numFilterConditions, 3);
        let c = storage.conditions();
        assert_eq!(c[0].fieldKey.data1, FWPM_CONDITION_IP_REMOTE_ADDRESS.data1);
        assert_eq!(c[0].conditionValue.r#type, FWP_V4_ADDR_MASK);
        assert_eq!(c[1].fieldKey.data1, FWPM_CONDITION_IP_REMOTE_PORT.data1);
        assert_eq!((c[1].matchType, c[1].conditionValue.r#type), (FWP_MATCH_RANGE, FWP_RANGE_TYPE));
        assert_eq!(c[2].conditionValue.r#type, FWP_V6_ADDR_MASK);
        // SAFETY: each pointer was just set to a field of `storage`, alive
        // and unchanged here; the union members read are the ones written.
        unsafe {
            let v4 = &*c[0].conditionValue.Anonymous.v4AddrMask;
            assert_eq!((v4.addr, v4.mask), (0x0A01_0200, 0xFFFF_FF00));
            let r = &*c[1].conditionValue.Anonymous.rangeValue;
            assert_eq!((r.valueLow.r#type, r.valueLow.Anonymous.uint16, r.valueHigh.Anonymous.uint16), (FWP_UINT16, 5985, 5986));
            let v = &*c[2].conditionValue.Anonymous.v6AddrMask;
            assert_eq!((v.addr, v.prefixLength), (v6, 8));
        }
        let mut value = ConditionValue::default();
        let local = Condition::LocalPortRange(67, 68).to_raw(&mut value);
        assert_eq!(local.fieldKey.data1, FWPM_CONDITION_IP_LOCAL_PORT.data1);
        // SAFETY: points at `value.range`, alive here.
        assert_eq!(unsafe { (*local.conditionValue.Anonymous.rangeValue).valueHigh.Anonymous.uint16 }, 68);
    }
}
