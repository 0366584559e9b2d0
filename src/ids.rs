//! Names, keys and numbers Weir registers under. Changing a GUID here changes
//! the identity of Weir's WFP objects (and what `netsh wfp show filters`
//! lists).

use wfp_km::ale::AleLayer;
use wfp_km::strings::WStr;
use wfp_km::{wstr, GUID};

/// `\Device\Weir`.
pub const DEVICE_NAME: WStr = wstr!("\\Device\\Weir");
/// `\??\Weir`, so user mode opens `\\.\Weir`.
pub const LINK_NAME: WStr = wstr!("\\??\\Weir");

/// The engine session's display data.
pub const SESSION_NAME: WStr = wstr!("Weir");
pub const SESSION_DESCRIPTION: WStr = wstr!("Weir callout driver dynamic session");

/// Weir's sublayer.
pub const SUBLAYER_KEY: GUID = GUID::from_u128(0xfb491bab_9a28_4b1d_b2c9_504326e39e80);
pub const SUBLAYER_NAME: WStr = wstr!("Weir sublayer");
pub const SUBLAYER_DESCRIPTION: WStr = wstr!("Weir connection monitor");
/// Sublayer weight: mid-range, so Weir neither pre-empts nor trails the
/// Windows Firewall's sublayers by construction.
pub const SUBLAYER_WEIGHT: u16 = 0x8000;

/// The WFP identity of Weir's objects at one layer.
#[derive(Clone, Copy)]
pub struct LayerIds {
    pub callout_key: GUID,
    pub callout_name: WStr,
    pub filter_key: GUID,
    pub filter_name: WStr,
}

pub const CALLOUT_DESCRIPTION: WStr = wstr!("Weir: counts and traces ALE authorizations");
pub const FILTER_DESCRIPTION: WStr = wstr!("Weir: sends every ALE authorization to its callout");

/// Keys and names of the callout and filter at `layer`.
pub const fn layer_ids(layer: AleLayer) -> LayerIds {
    match layer {
        AleLayer::ConnectV4 => LayerIds {
            callout_key: GUID::from_u128(0xeee93924_3cb7_494c_b765_d26e85c4381b),
            callout_name: wstr!("Weir connect v4"),
            filter_key: GUID::from_u128(0x302224c4_c856_4458_95f2_a18d605315ae),
            filter_name: wstr!("Weir connect v4 filter"),
        },
        AleLayer::ConnectV6 => LayerIds {
            callout_key: GUID::from_u128(0x02b4a1c3_29dc_4468_a3f2_36b6d5921a15),
            callout_name: wstr!("Weir connect v6"),
            filter_key: GUID::from_u128(0xb423841f_5949_41bc_b756_01afb567d896),
            filter_name: wstr!("Weir connect v6 filter"),
        },
        AleLayer::RecvAcceptV4 => LayerIds {
            callout_key: GUID::from_u128(0x76b58f62_7d39_430d_9210_9eb149182838),
            callout_name: wstr!("Weir accept v4"),
            filter_key: GUID::from_u128(0x1704c9f5_9d9f_4307_91c1_8e87b4898e6f),
            filter_name: wstr!("Weir accept v4 filter"),
        },
        AleLayer::RecvAcceptV6 => LayerIds {
            callout_key: GUID::from_u128(0x116fcbf6_6346_4dce_8230_fd91672f3de5),
            callout_name: wstr!("Weir accept v6"),
            filter_key: GUID::from_u128(0x0977b719_0820_448c_8014_c52759dd7772),
            filter_name: wstr!("Weir accept v6 filter"),
        },
    }
}

/// The driver's version, from the crate version, as `[major, minor, patch, 0]`.
pub const VERSION: [u16; 4] = [
    parse_u16(env!("CARGO_PKG_VERSION_MAJOR")),
    parse_u16(env!("CARGO_PKG_VERSION_MINOR")),
    parse_u16(env!("CARGO_PKG_VERSION_PATCH")),
    0,
];

/// Parses a decimal `u16` at compile time; a bad crate version fails the
/// build rather than the driver.
const fn parse_u16(s: &str) -> u16 {
    let bytes = s.as_bytes();
    assert!(!bytes.is_empty(), "empty version field");
    let mut value: u32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        #[allow(clippy::indexing_slicing)]
        let b = bytes[i];
        assert!(b.is_ascii_digit(), "version field is not a number");
        value = value * 10 + (b - b'0') as u32;
        assert!(value <= u16::MAX as u32, "version field above 65535");
        i += 1;
    }
    value as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct() {
        let keys = AleLayer::ALL.iter().flat_map(|l| [layer_ids(*l).callout_key, layer_ids(*l).filter_key]);
        let mut all: Vec<u128> = keys.chain([SUBLAYER_KEY])
            .map(|g| (u128::from(g.data1) << 96) | (u128::from(g.data2) << 80) | (u128::from(g.data3) << 64) | u128::from(u64::from_be_bytes(g.data4)))
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 9);
    }

    #[test]
    fn version_matches_cargo() {
        let text = format!("{}.{}.{}", VERSION[0], VERSION[1], VERSION[2]);
        assert_eq!(text, env!("CARGO_PKG_VERSION"));
        assert_eq!(VERSION[3], 0);
    }

    #[test]
    fn names() {
        assert_eq!(String::from_utf16_lossy(DEVICE_NAME.units()), "\\Device\\Weir");
        assert_eq!(String::from_utf16_lossy(LINK_NAME.units()), "\\??\\Weir");
        assert_eq!(layer_ids(AleLayer::RecvAcceptV6).callout_key.data1, 0x116fcbf6);
        assert_eq!(layer_ids(AleLayer::ConnectV4).filter_key.data1, 0x302224c4);
        assert_eq!(String::from_utf16_lossy(layer_ids(AleLayer::ConnectV6).callout_name.units()), "Weir connect v6");
    }
}
