//! The control device's requests.
//!
//! One request today: `IOCTL_WEIR_GET_STATS` returns the driver version and
//! the per-layer counters. The reply is a fixed little-endian layout
//! ([`StatsReply`]); its first field is its own size and its second an ABI
//! version, so a newer tool can recognise an older driver.
//!
//! Every malformed request gets an error status and writes nothing.

use crate::classify::{Counters, LayerSnapshot};
use core::mem::{offset_of, size_of};
use wfp_km::irp::{ctl_code, DeviceControl, FILE_READ_ACCESS, METHOD_BUFFERED};
use wfp_km::NtStatus;

/// Device type of the control device's IOCTL codes (vendor range >= 0x8000).
pub const WEIR_DEVICE_TYPE: u32 = 0x8057;

/// Returns a [`StatsReply`]. `0x80576004`.
pub const IOCTL_WEIR_GET_STATS: u32 = ctl_code(WEIR_DEVICE_TYPE, 0x801, METHOD_BUFFERED, FILE_READ_ACCESS);

/// ABI version of [`StatsReply`].
pub const STATS_ABI_VERSION: u32 = 1;

/// Counters of one layer as sent to user mode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerStats {
    pub classified: u64,
    pub permitted: u64,
    pub write_right_absent: u64,
}

/// Reply of `IOCTL_WEIR_GET_STATS` (112 bytes, little-endian).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsReply {
    /// `size_of::<StatsReply>()`.
    pub size: u32,
    /// [`STATS_ABI_VERSION`].
    pub abi_version: u32,
    /// Driver version `[major, minor, patch, 0]`.
    pub version: [u16; 4],
    /// In layer order: connect v4, connect v6, accept v4, accept v6.
    pub layers: [LayerStats; 4],
}

/// Size of the reply on the wire.
pub const STATS_REPLY_SIZE: usize = size_of::<StatsReply>();

impl StatsReply {
    pub fn new(version: [u16; 4], snapshot: [LayerSnapshot; 4]) -> Self {
        Self {
            // Cannot truncate: the size is 112.
            #[allow(clippy::cast_possible_truncation)]
            size: STATS_REPLY_SIZE as u32,
            abi_version: STATS_ABI_VERSION,
            version,
            layers: snapshot.map(|s| LayerStats {
                classified: s.classified,
                permitted: s.permitted,
                write_right_absent: s.write_right_absent,
            }),
        }
    }

    /// Serialises into exactly [`STATS_REPLY_SIZE`] bytes at the `repr(C)`
    /// offsets, without `unsafe` reinterpretation.
    pub fn encode(&self) -> [u8; STATS_REPLY_SIZE] {
        let mut out = [0u8; STATS_REPLY_SIZE];
        let mut put = |offset: usize, bytes: &[u8]| {
            if let Some(dst) = out.get_mut(offset..offset.saturating_add(bytes.len())) {
                dst.copy_from_slice(bytes);
            }
        };
        put(offset_of!(StatsReply, size), &self.size.to_le_bytes());
        put(offset_of!(StatsReply, abi_version), &self.abi_version.to_le_bytes());
        for (i, v) in self.version.iter().enumerate() {
            put(offset_of!(StatsReply, version) + 2 * i, &v.to_le_bytes());
        }
        for (i, l) in self.layers.iter().enumerate() {
            let base = offset_of!(StatsReply, layers) + i * size_of::<LayerStats>();
            put(base + offset_of!(LayerStats, classified), &l.classified.to_le_bytes());
            put(base + offset_of!(LayerStats, permitted), &l.permitted.to_le_bytes());
            put(base + offset_of!(LayerStats, write_right_absent), &l.write_right_absent.to_le_bytes());
        }
        out
    }

    /// Parses a reply (for tools and tests); `None` unless `bytes` is exactly
    /// one reply of this ABI version.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let u32_at = |o: usize| bytes.get(o..o + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
        let u16_at = |o: usize| bytes.get(o..o + 2).and_then(|b| b.try_into().ok()).map(u16::from_le_bytes);
        let u64_at = |o: usize| bytes.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
        if bytes.len() != STATS_REPLY_SIZE
            || usize::try_from(u32_at(0)?).ok()? != STATS_REPLY_SIZE
            || u32_at(4)? != STATS_ABI_VERSION
        {
            return None;
        }
        let mut reply = Self { size: u32_at(0)?, abi_version: u32_at(4)?, ..Self::default() };
        for (i, v) in reply.version.iter_mut().enumerate() {
            *v = u16_at(offset_of!(StatsReply, version) + 2 * i)?;
        }
        for (i, l) in reply.layers.iter_mut().enumerate() {
            let base = offset_of!(StatsReply, layers) + i * size_of::<LayerStats>();
            l.classified = u64_at(base)?;
            l.permitted = u64_at(base + 8)?;
            l.write_right_absent = u64_at(base + 16)?;
        }
        Some(reply)
    }
}

/// Handles an `IRP_MJ_DEVICE_CONTROL` request. `output` is the buffered
/// system buffer viewed as `request.output_len` bytes, or `None` if there is
/// none. Returns the completion status and the number of bytes written.
pub fn device_control(
    request: DeviceControl,
    output: Option<&mut [u8]>,
    version: [u16; 4],
    counters: &Counters,
) -> (NtStatus, usize) {
    if request.code != IOCTL_WEIR_GET_STATS {
        return (NtStatus::INVALID_DEVICE_REQUEST, 0);
    }
    if request.input_len != 0 {
        return (NtStatus::INVALID_PARAMETER, 0);
    }
    let Ok(output_len) = usize::try_from(request.output_len) else {
        return (NtStatus::INVALID_PARAMETER, 0);
    };
    if output_len < STATS_REPLY_SIZE {
        return (NtStatus::BUFFER_TOO_SMALL, 0);
    }
    if output_len > STATS_REPLY_SIZE {
        // Strict size: the caller must be built against this ABI version.
        return (NtStatus::INVALID_BUFFER_SIZE, 0);
    }
    let Some(buffer) = output.and_then(|b| b.get_mut(..STATS_REPLY_SIZE)) else {
        return (NtStatus::INVALID_PARAMETER, 0);
    };
    buffer.copy_from_slice(&StatsReply::new(version, counters.snapshot()).encode());
    (NtStatus::SUCCESS, STATS_REPLY_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering;
    use proptest::prelude::*;
    use wfp_km::ale::AleLayer;

    #[test]
    fn ioctl_code_matches_ctl_code_macro() {
        assert_eq!(IOCTL_WEIR_GET_STATS, 0x8057_6004);
    }

    #[test]
    fn reply_layout_is_pinned() {
        assert_eq!(size_of::<StatsReply>(), 112);
        assert_eq!(core::mem::align_of::<StatsReply>(), 8);
        assert_eq!(offset_of!(StatsReply, size), 0);
        assert_eq!(offset_of!(StatsReply, abi_version), 4);
        assert_eq!(offset_of!(StatsReply, version), 8);
        assert_eq!(offset_of!(StatsReply, layers), 16);
        assert_eq!(size_of::<LayerStats>(), 24);
        assert_eq!(core::mem::align_of::<LayerStats>(), 8);
        assert_eq!(offset_of!(LayerStats, classified), 0);
        assert_eq!(offset_of!(LayerStats, permitted), 8);
        assert_eq!(offset_of!(LayerStats, write_right_absent), 16);
    }

    fn req(code: u32, input_len: u32, output_len: u32) -> DeviceControl {
        DeviceControl { code, input_len, output_len }
    }

    #[test]
    fn get_stats_returns_version_and_counters() {
        let counters = Counters::new();
        let l = counters.layer(AleLayer::RecvAcceptV6).unwrap();
        l.classified.store(5, Ordering::Relaxed);
        l.permitted.store(4, Ordering::Relaxed);
        l.write_right_absent.store(1, Ordering::Relaxed);
        let mut buf = [0xEEu8; STATS_REPLY_SIZE];
        let (status, n) = device_control(req(IOCTL_WEIR_GET_STATS, 0, 112), Some(&mut buf), [1, 2, 3, 0], &counters);
        assert_eq!(status, NtStatus::SUCCESS);
        assert_eq!(n, 112);
        let reply = StatsReply::decode(&buf).unwrap();
        assert_eq!(reply.version, [1, 2, 3, 0]);
        assert_eq!(reply.layers[3], LayerStats { classified: 5, permitted: 4, write_right_absent: 1 });
        assert_eq!(reply.layers[0], LayerStats::default());
        assert_eq!(&buf[..4], &112u32.to_le_bytes());
    }

    #[test]
    fn bad_requests_get_errors_and_write_nothing() {
        let counters = Counters::new();
        let cases = [
            (req(0x8057_6008, 0, 112), NtStatus::INVALID_DEVICE_REQUEST),
            (req(0x0022_0000, 0, 112), NtStatus::INVALID_DEVICE_REQUEST),
            (req(IOCTL_WEIR_GET_STATS, 4, 112), NtStatus::INVALID_PARAMETER),
            (req(IOCTL_WEIR_GET_STATS, 0, 0), NtStatus::BUFFER_TOO_SMALL),
            (req(IOCTL_WEIR_GET_STATS, 0, 111), NtStatus::BUFFER_TOO_SMALL),
            (req(IOCTL_WEIR_GET_STATS, 0, 113), NtStatus::INVALID_BUFFER_SIZE),
            (req(IOCTL_WEIR_GET_STATS, 0, 4096), NtStatus::INVALID_BUFFER_SIZE),
        ];
        for (request, expected) in cases {
            let mut buf = [0xEEu8; 4096];
            let len = (request.output_len as usize).min(buf.len());
            let (status, n) = device_control(request, Some(&mut buf[..len]), [0; 4], &counters);
            assert_eq!((status, n), (expected, 0), "{request:?}");
            assert!(buf.iter().all(|b| *b == 0xEE), "{request:?} wrote to the buffer");
        }
        // Right size but no system buffer.
        let (status, n) = device_control(req(IOCTL_WEIR_GET_STATS, 0, 112), None, [0; 4], &counters);
        assert_eq!((status, n), (NtStatus::INVALID_PARAMETER, 0));
    }

    #[test]
    fn decode_rejects_foreign_bytes() {
        assert!(StatsReply::decode(&[0u8; 112]).is_none());
        assert!(StatsReply::decode(&[0u8; 10]).is_none());
        let mut good = StatsReply::new([0, 1, 0, 0], Default::default()).encode();
        assert!(StatsReply::decode(&good).is_some());
        good[4] = 9;
        assert!(StatsReply::decode(&good).is_none());
    }

    proptest! {
        #[test]
        fn any_request_is_answered_without_panic(code in any::<u32>(), input_len in any::<u32>(), output_len in 0u32..300, has_buffer in any::<bool>()) {
            let counters = Counters::new();
            let mut buf = vec![0u8; output_len as usize];
            let output = if has_buffer { Some(&mut buf[..]) } else { None };
            let (status, n) = device_control(req(code, input_len, output_len), output, [0; 4], &counters);
            prop_assert!(n == 0 || (status == NtStatus::SUCCESS && n == STATS_REPLY_SIZE));
            prop_assert_eq!(status == NtStatus::SUCCESS, code == IOCTL_WEIR_GET_STATS && input_len == 0 && output_len == 112 && has_buffer);
        }

        #[test]
        fn encode_decode_round_trip(version in any::<[u16; 3]>(), vals in any::<[u64; 12]>()) {
            let snap: [LayerSnapshot; 4] = core::array::from_fn(|i| LayerSnapshot { classified: vals[3 * i], permitted: vals[3 * i + 1], write_right_absent: vals[3 * i + 2] });
            let reply = StatsReply::new([version[0], version[1], version[2], 0], snap);
            prop_assert_eq!(StatsReply::decode(&reply.encode()), Some(reply));
        }
    }
}
