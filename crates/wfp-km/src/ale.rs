//! The ALE authorization layers Weir hooks, and the connection tuple they
//! carry.

use crate::classify::IncomingValues;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wfp_km_sys::fwp_types::{
    FWPM_LAYER_ALE_AUTH_CONNECT_V4, FWPM_LAYER_ALE_AUTH_CONNECT_V6,
    FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4, FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6,
};
use wfp_km_sys::fwps::{
    ale_auth_connect_v4 as connect, ale_auth_recv_accept_v4 as accept,
    FWPS_LAYER_ALE_AUTH_CONNECT_V4, FWPS_LAYER_ALE_AUTH_CONNECT_V6,
    FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4, FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V6,
};
use wfp_km_sys::GUID;

/// One of the four ALE authorization layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AleLayer {
    ConnectV4,
    ConnectV6,
    RecvAcceptV4,
    RecvAcceptV6,
}

impl AleLayer {
    /// All four, in the order Weir registers and reports them.
    pub const ALL: [Self; 4] = [Self::ConnectV4, Self::ConnectV6, Self::RecvAcceptV4, Self::RecvAcceptV6];

    /// The layer for a run-time layer id, if it is one of ours.
    pub fn from_layer_id(id: u16) -> Option<Self> {
        match id {
            FWPS_LAYER_ALE_AUTH_CONNECT_V4 => Some(Self::ConnectV4),
            FWPS_LAYER_ALE_AUTH_CONNECT_V6 => Some(Self::ConnectV6),
            FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4 => Some(Self::RecvAcceptV4),
            FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V6 => Some(Self::RecvAcceptV6),
            _ => None,
        }
    }

    /// Run-time layer id (`FWPS_LAYER_*`).
    pub fn layer_id(self) -> u16 {
        match self {
            Self::ConnectV4 => FWPS_LAYER_ALE_AUTH_CONNECT_V4,
            Self::ConnectV6 => FWPS_LAYER_ALE_AUTH_CONNECT_V6,
            Self::RecvAcceptV4 => FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4,
            Self::RecvAcceptV6 => FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V6,
        }
    }

    /// Management layer key (`FWPM_LAYER_*`).
    pub const fn layer_key(self) -> GUID {
        match self {
            Self::ConnectV4 => FWPM_LAYER_ALE_AUTH_CONNECT_V4,
            Self::ConnectV6 => FWPM_LAYER_ALE_AUTH_CONNECT_V6,
            Self::RecvAcceptV4 => FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4,
            Self::RecvAcceptV6 => FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6,
        }
    }

    /// Position in [`AleLayer::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::ConnectV4 => 0,
            Self::ConnectV6 => 1,
            Self::RecvAcceptV4 => 2,
            Self::RecvAcceptV6 => 3,
        }
    }

    pub fn is_ipv6(self) -> bool {
        matches!(self, Self::ConnectV6 | Self::RecvAcceptV6)
    }

    /// Outbound (connect) or inbound (accept).
    pub fn is_outbound(self) -> bool {
        matches!(self, Self::ConnectV4 | Self::ConnectV6)
    }

    /// A short name for traces.
    pub fn name(self) -> &'static str {
        match self {
            Self::ConnectV4 => "connect-v4",
            Self::ConnectV6 => "connect-v6",
            Self::RecvAcceptV4 => "accept-v4",
            Self::RecvAcceptV6 => "accept-v6",
        }
    }
}

/// The connection an ALE authorization is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection {
    pub layer: AleLayer,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub protocol: u8,
}

struct Indices {
    local_address: u32,
    local_port: u32,
    protocol: u32,
    remote_address: u32,
    remote_port: u32,
}

const CONNECT: Indices = Indices {
    local_address: connect::IP_LOCAL_ADDRESS,
    local_port: connect::IP_LOCAL_PORT,
    protocol: connect::IP_PROTOCOL,
    remote_address: connect::IP_REMOTE_ADDRESS,
    remote_port: connect::IP_REMOTE_PORT,
};

const ACCEPT: Indices = Indices {
    local_address: accept::IP_LOCAL_ADDRESS,
    local_port: accept::IP_LOCAL_PORT,
    protocol: accept::IP_PROTOCOL,
    remote_address: accept::IP_REMOTE_ADDRESS,
    remote_port: accept::IP_REMOTE_PORT,
};

impl Connection {
    /// Reads the tuple from a classification at one of the four layers.
    /// `None` if the layer is not ours or a field is missing or mistyped.
    pub fn read(values: &IncomingValues<'_>) -> Option<Self> {
        let layer = AleLayer::from_layer_id(values.layer_id())?;
        let idx = if layer.is_outbound() { &CONNECT } else { &ACCEPT };
        let address = |index: u32| -> Option<IpAddr> {
            if layer.is_ipv6() {
                values.byte_array16(index).map(|b| IpAddr::V6(Ipv6Addr::from(b)))
            } else {
                // IPv4 addresses arrive as host-order UINT32.
                values.u32(index).map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            }
        };
        Some(Self {
            layer,
            local: address(idx.local_address)?,
            local_port: values.u16(idx.local_port)?,
            remote: address(idx.remote_address)?,
            remote_port: values.u16(idx.remote_port)?,
            protocol: values.u8(idx.protocol)?,
        })
    }
}

/// The user's SID inside an `ALE_USER_ID` value (`TOKEN_ACCESS_INFORMATION`,
/// winnt.h: `SidHash` at offset 0 points to a `SID_AND_ATTRIBUTES_HASH`
/// whose `SidCount` (offset 0) and `SidAttr` (offset 8) give the token's
/// SIDs, the user's first), as the bytes of a `SID`.
///
/// The structure's pointers point into the same blob, which starts at
/// address `base`; each is followed only if it lands inside `info`, and
/// the SID only if all of it does, so a malformed or foreign layout gives
/// `None`, never a read outside the blob. IRQL: any.
pub fn user_sid(info: &[u8], base: usize) -> Option<&[u8]> {
    let word = |at: usize| info.get(at..at.checked_add(8)?).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let inside = |ptr: u64| {
        let offset = usize::try_from(ptr).ok()?.checked_sub(base)?;
        (offset < info.len()).then_some(offset)
    };
    let hash = inside(word(0)?)?;
    let count = info.get(hash..hash.checked_add(4)?).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)?;
    if count == 0 {
        return None;
    }
    let attributes = inside(word(hash.checked_add(8)?)?)?;
    let sid = inside(word(attributes)?)?;
    let sub_authorities = usize::from(*info.get(sid.checked_add(1)?)?);
    if *info.get(sid)? != 1 || sub_authorities > 15 {
        return None;
    }
    info.get(sid..sid.checked_add(8 + 4 * sub_authorities)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tests::{empty, fixed, val_bytes16, val_u16, val_u32, val_u8};
    use wfp_km_sys::fwp_types::FWP_BYTE_ARRAY16;

    #[test]
    fn reads_ipv4_connect_tuple() {
        let mut vals = [empty(), empty(), val_u32(0x0a00_0002), empty(), val_u16(50000), val_u8(6), val_u32(0x5db8_d822), val_u16(443)];
        let raw = fixed(FWPS_LAYER_ALE_AUTH_CONNECT_V4, &mut vals);
        // SAFETY: raw and vals outlive the view.
        let iv = unsafe { IncomingValues::from_raw(&raw) }.unwrap();
        let c = Connection::read(&iv).unwrap();
        assert_eq!(c.layer, AleLayer::ConnectV4);
        assert_eq!(c.local, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(c.local_port, 50000);
        assert_eq!(c.remote, IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)));
        assert_eq!(c.remote_port, 443);
        assert_eq!(c.protocol, 6);
    }

    #[test]
    fn reads_ipv6_accept_tuple() {
        let mut local = FWP_BYTE_ARRAY16 { byteArray16: Ipv6Addr::LOCALHOST.octets() };
        let mut remote = FWP_BYTE_ARRAY16 { byteArray16: "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets() };
        let mut vals = [empty(), empty(), val_bytes16(&mut local), empty(), val_u16(22), val_u8(17), val_bytes16(&mut remote), val_u16(40000)];
        let raw = fixed(FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V6, &mut vals);
        // SAFETY: raw, vals and the arrays outlive the view.
        let iv = unsafe { IncomingValues::from_raw(&raw) }.unwrap();
        let c = Connection::read(&iv).unwrap();
        assert_eq!(c.layer, AleLayer::RecvAcceptV6);
        assert_eq!(c.local, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(c.remote.to_string(), "2001:db8::1");
        assert_eq!((c.local_port, c.remote_port, c.protocol), (22, 40000, 17));
    }

    #[test]
    fn missing_or_mistyped_fields_give_none() {
        // Too few values.
        let mut vals = [empty(), empty(), val_u32(1), empty(), val_u16(1), val_u8(6)];
        let raw = fixed(FWPS_LAYER_ALE_AUTH_CONNECT_V4, &mut vals);
        // SAFETY: raw and vals outlive the view.
        assert_eq!(Connection::read(&unsafe { IncomingValues::from_raw(&raw) }.unwrap()), None);
        // An IPv4 address at a V6 layer.
        let mut vals = [empty(), empty(), val_u32(1), empty(), val_u16(1), val_u8(6), val_u32(2), val_u16(2)];
        let raw = fixed(FWPS_LAYER_ALE_AUTH_CONNECT_V6, &mut vals);
        // SAFETY: as above.
        assert_eq!(Connection::read(&unsafe { IncomingValues::from_raw(&raw) }.unwrap()), None);
        // Not one of our layers.
        let raw = fixed(7, &mut vals);
        // SAFETY: as above.
        assert_eq!(Connection::read(&unsafe { IncomingValues::from_raw(&raw) }.unwrap()), None);
    }

    #[test]
    fn layer_mappings_round_trip() {
        for (i, layer) in AleLayer::ALL.iter().enumerate() {
            assert_eq!(layer.index(), i);
            assert_eq!(AleLayer::from_layer_id(layer.layer_id()), Some(*layer));
        }
        assert_eq!(AleLayer::from_layer_id(0), None);
    }

    proptest::proptest! {
        /// Arbitrary value arrays (any types, any count, any layer id) never
        /// make the reader fault or misread a mistyped union.
        #[test]
        fn arbitrary_values_never_fault(layer in 40u16..52, types in proptest::collection::vec(0i32..20, 0..12), raw_bits in proptest::num::u32::ANY) {
            let mut arr = FWP_BYTE_ARRAY16 { byteArray16: [1; 16] };
            let mut vals: Vec<FWPS_INCOMING_VALUE0> = types.iter().map(|&t| {
                let mut v = match t { 1 => val_u8(raw_bits as u8), 2 => val_u16(raw_bits as u16), 3 => val_u32(raw_bits), 11 => val_bytes16(&mut arr), _ => empty() };
                if ![1, 2, 3, 11].contains(&t) { v.value.r#type = t; }
                v
            }).collect();
            let raw = fixed(layer, &mut vals);
            // SAFETY: raw, vals and arr outlive the view; mistyped non-pointer
            // types carry a null pointer payload and are never dereferenced.
            let iv = unsafe { IncomingValues::from_raw(&raw) }.unwrap();
            let _ = Connection::read(&iv);
        }
    }
    use wfp_km_sys::fwps::FWPS_INCOMING_VALUE0;

    /// A TOKEN_ACCESS_INFORMATION blob as WFP hands it over: pointers are
    /// addresses inside the blob, which starts at `base`.
    fn token_blob(base: usize, sid: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 96];
        let hash = 96usize;
        let attrs = hash + 16;
        let sid_at = attrs + 16;
        b[0..8].copy_from_slice(&((base + hash) as u64).to_le_bytes());
        b.resize(sid_at, 0);
        b[hash..hash + 4].copy_from_slice(&1u32.to_le_bytes());
        b[hash + 8..hash + 16].copy_from_slice(&((base + attrs) as u64).to_le_bytes());
        b[attrs..attrs + 8].copy_from_slice(&((base + sid_at) as u64).to_le_bytes());
        b.extend_from_slice(sid);
        b
    }

    #[test]
    fn user_sid_follows_the_pointers_inside_the_blob() {
        let sid = [1u8, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x21, 2, 0, 0];
        let base = 0xFFFF_8000_1234_0000;
        let blob = token_blob(base, &sid);
        assert_eq!(user_sid(&blob, base), Some(&sid[..]));
        // Pointers that leave the blob (another base) are not followed.
        assert_eq!(user_sid(&blob, base + 0x1000), None);
        // A SID cut by the blob's end is refused.
        assert_eq!(user_sid(&blob[..blob.len() - 1], base), None);
    }

    proptest::proptest! {
        #[test]
        fn user_sid_of_any_bytes_stays_inside_them(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), base in 0usize..4096) {
            if let Some(sid) = user_sid(&bytes, base) {
                let start = sid.as_ptr() as usize - bytes.as_ptr() as usize;
                proptest::prop_assert!(start + sid.len() <= bytes.len());
            }
        }
    }
}
