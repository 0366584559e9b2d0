//! `IOCTL_WEIR_GET_STATS` reply, ABI version 2.
//!
//! ```text
//! offset  size  field
//!      0     4  size              bytes of the complete reply (header + every rule entry);
//!                                 when the reply was cut short, the size needed
//!      4     4  abi_version       2
//!      8     8  version           driver version [major, minor, patch, 0] as u16
//!     16     4  header_size       208 (rule entries start here)
//!     20     4  filtering         FILTERING_* flags
//!     24     8  policy_generation 0 = no policy was ever set; +1 per successful set
//!     32     8  event_drops       events dropped because the ring was full
//!     40     4  rule_count        rules of the active policy (entries in a complete reply)
//!     44     4  rule_entry_size   16
//!     48   160  layers[4]         LayerStats: connect v4, connect v6, accept v4, accept v6
//!    208  16*n  rules[n]          RuleHits, in policy order
//! ```
//!
//! The output buffer decides what is written:
//! - exactly [`STATS_V1_REPLY_SIZE`] (112) bytes: a version-1 tool; refused
//!   with `STATUS_WEIR_STATS_ABI_V1`, nothing written;
//! - smaller than the header: `STATUS_BUFFER_TOO_SMALL`, nothing written;
//! - at least the header but short of `size`: the header alone,
//!   `STATUS_BUFFER_OVERFLOW`, `Information` = 208; the client retries with
//!   `size` bytes (the policy, and so `size`, may change in between: retry
//!   until the status is success);
//! - at least `size`: the whole reply, `STATUS_SUCCESS`, `Information` = `size`.
//!
//! The counters are read without a common lock: each is exact, the set is a
//! near-simultaneous snapshot. The rule hits and `policy_generation` always
//! come from the same policy.

use crate::bytes::{put, u16_at, u32_at, u64_at};
use core::mem::{offset_of, size_of};

/// ABI version of this reply.
pub const STATS_ABI_VERSION: u32 = 2;
/// Size of the whole version-1 reply, which version-1 tools pass as their
/// output buffer length.
pub const STATS_V1_REPLY_SIZE: usize = 112;
// A v1 tool's buffer can never hold a v2 header.
const _: () = assert!(STATS_V1_REPLY_SIZE < STATS_HEADER_SIZE);

/// Number of layers reported.
pub const LAYER_COUNT: usize = 4;

/// `filtering` flag: Weir's callouts and filters are installed and the base
/// filtering engine is running (connections reach the policy).
pub const FILTERING_ACTIVE: u32 = 0x1;

/// Counters of one ALE layer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Authorizations of new connections (not reauthorizations).
    pub new_connections: u64,
    /// Reauthorizations of existing connections
    /// (`FWP_CONDITION_FLAG_IS_REAUTHORIZE` set).
    pub reauthorizations: u64,
    /// Of both, how many Weir permitted.
    pub permitted: u64,
    /// Of both, how many Weir blocked.
    pub blocked: u64,
    /// Of both, how many arrived without the write right (left untouched).
    pub write_right_absent: u64,
}

/// The fixed part of the reply.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsHeader {
    /// Bytes of the complete reply (see the module docs).
    pub size: u32,
    /// [`STATS_ABI_VERSION`].
    pub abi_version: u32,
    /// Driver version `[major, minor, patch, 0]`.
    pub version: [u16; 4],
    /// [`STATS_HEADER_SIZE`].
    pub header_size: u32,
    /// `FILTERING_*` flags.
    pub filtering: u32,
    /// Generation of the active policy (0: none was ever set).
    pub policy_generation: u64,
    /// Events dropped because the event ring was full.
    pub event_drops: u64,
    /// Rules of the active policy.
    pub rule_count: u32,
    /// [`RULE_ENTRY_SIZE`].
    pub rule_entry_size: u32,
    /// In layer order: connect v4, connect v6, accept v4, accept v6.
    pub layers: [LayerStats; LAYER_COUNT],
}

/// Hits of one rule.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleHits {
    /// The rule's user-chosen id.
    pub rule_id: u32,
    /// The rule's position in the policy (ids need not be unique).
    pub rule_index: u32,
    /// Connections this rule decided (first match).
    pub hits: u64,
}

/// Size of [`StatsHeader`] on the wire (208).
pub const STATS_HEADER_SIZE: usize = size_of::<StatsHeader>();
/// Size of one [`RuleHits`] on the wire (16).
pub const RULE_ENTRY_SIZE: usize = size_of::<RuleHits>();

/// Bytes of a complete reply with `rule_count` rules; `None` if that does not
/// fit the `u32` size field.
pub const fn reply_size(rule_count: usize) -> Option<u32> {
    let Some(rules) = rule_count.checked_mul(RULE_ENTRY_SIZE) else { return None };
    let Some(total) = rules.checked_add(STATS_HEADER_SIZE) else { return None };
    if total > u32::MAX as usize {
        None
    } else {
        Some(total as u32)
    }
}

const LAYER_FIELDS: [usize; 5] = [
    offset_of!(LayerStats, new_connections),
    offset_of!(LayerStats, reauthorizations),
    offset_of!(LayerStats, permitted),
    offset_of!(LayerStats, blocked),
    offset_of!(LayerStats, write_right_absent),
];

impl LayerStats {
    fn fields(&self) -> [u64; 5] {
        [self.new_connections, self.reauthorizations, self.permitted, self.blocked, self.write_right_absent]
    }
}

impl StatsHeader {
    /// Writes the header at the start of `out`; `None` (nothing written) if
    /// `out` is shorter than [`STATS_HEADER_SIZE`].
    pub fn encode_into(&self, out: &mut [u8]) -> Option<()> {
        let out = out.get_mut(..STATS_HEADER_SIZE)?;
        put(out, offset_of!(Self, size), &self.size.to_le_bytes())?;
        put(out, offset_of!(Self, abi_version), &self.abi_version.to_le_bytes())?;
        for (i, v) in self.version.iter().enumerate() {
            put(out, offset_of!(Self, version) + 2 * i, &v.to_le_bytes())?;
        }
        put(out, offset_of!(Self, header_size), &self.header_size.to_le_bytes())?;
        put(out, offset_of!(Self, filtering), &self.filtering.to_le_bytes())?;
        put(out, offset_of!(Self, policy_generation), &self.policy_generation.to_le_bytes())?;
        put(out, offset_of!(Self, event_drops), &self.event_drops.to_le_bytes())?;
        put(out, offset_of!(Self, rule_count), &self.rule_count.to_le_bytes())?;
        put(out, offset_of!(Self, rule_entry_size), &self.rule_entry_size.to_le_bytes())?;
        for (i, layer) in self.layers.iter().enumerate() {
            let base = offset_of!(Self, layers) + i * size_of::<LayerStats>();
            for (off, value) in LAYER_FIELDS.iter().zip(layer.fields()) {
                put(out, base + off, &value.to_le_bytes())?;
            }
        }
        Some(())
    }

    /// Reads a header (any `abi_version`; see [`decode_reply`] for checks).
    fn read(b: &[u8]) -> Option<Self> {
        let mut h = Self {
            size: u32_at(b, offset_of!(Self, size))?,
            abi_version: u32_at(b, offset_of!(Self, abi_version))?,
            header_size: u32_at(b, offset_of!(Self, header_size))?,
            filtering: u32_at(b, offset_of!(Self, filtering))?,
            policy_generation: u64_at(b, offset_of!(Self, policy_generation))?,
            event_drops: u64_at(b, offset_of!(Self, event_drops))?,
            rule_count: u32_at(b, offset_of!(Self, rule_count))?,
            rule_entry_size: u32_at(b, offset_of!(Self, rule_entry_size))?,
            ..Self::default()
        };
        for (i, v) in h.version.iter_mut().enumerate() {
            *v = u16_at(b, offset_of!(Self, version) + 2 * i)?;
        }
        for (i, layer) in h.layers.iter_mut().enumerate() {
            let base = offset_of!(Self, layers) + i * size_of::<LayerStats>();
            let mut vals = [0u64; 5];
            for (v, off) in vals.iter_mut().zip(LAYER_FIELDS) {
                *v = u64_at(b, base + off)?;
            }
            let [new_connections, reauthorizations, permitted, blocked, write_right_absent] = vals;
            *layer = LayerStats { new_connections, reauthorizations, permitted, blocked, write_right_absent };
        }
        Some(h)
    }
}

impl RuleHits {
    /// Writes the entry at the start of `out`; `None` if it does not fit.
    pub fn encode_into(&self, out: &mut [u8]) -> Option<()> {
        let out = out.get_mut(..RULE_ENTRY_SIZE)?;
        put(out, offset_of!(Self, rule_id), &self.rule_id.to_le_bytes())?;
        put(out, offset_of!(Self, rule_index), &self.rule_index.to_le_bytes())?;
        put(out, offset_of!(Self, hits), &self.hits.to_le_bytes())
    }

    fn read(b: &[u8]) -> Option<Self> {
        Some(Self {
            rule_id: u32_at(b, offset_of!(Self, rule_id))?,
            rule_index: u32_at(b, offset_of!(Self, rule_index))?,
            hits: u64_at(b, offset_of!(Self, hits))?,
        })
    }
}

/// What [`write_reply`] did, mapped by the driver to a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The whole reply (`STATUS_SUCCESS`), this many bytes.
    Complete(usize),
    /// The header only (`STATUS_BUFFER_OVERFLOW`), this many bytes.
    HeaderOnly(usize),
    /// The buffer is the version-1 reply size (`STATUS_WEIR_STATS_ABI_V1`);
    /// nothing written.
    V1Caller,
    /// The buffer cannot hold the header (`STATUS_BUFFER_TOO_SMALL`); nothing
    /// written.
    TooSmall,
    /// More rules than the `u32` size field can describe
    /// (`STATUS_INVALID_PARAMETER`); nothing written.
    Unrepresentable,
}

/// Writes a reply into `out` (the whole output buffer). `header`'s `size`,
/// `abi_version`, `header_size`, `rule_count` and `rule_entry_size` are
/// filled in here; `rules` yields exactly `rule_count` entries.
pub fn write_reply<I>(out: &mut [u8], mut header: StatsHeader, rules: I) -> Written
where
    I: ExactSizeIterator<Item = RuleHits>,
{
    if out.len() == STATS_V1_REPLY_SIZE {
        return Written::V1Caller;
    }
    if out.len() < STATS_HEADER_SIZE {
        return Written::TooSmall;
    }
    let count = rules.len();
    let (Some(size), Ok(rule_count)) = (reply_size(count), u32::try_from(count)) else {
        return Written::Unrepresentable;
    };
    header.size = size;
    header.abi_version = STATS_ABI_VERSION;
    header.header_size = STATS_HEADER_SIZE as u32;
    header.rule_count = rule_count;
    header.rule_entry_size = RULE_ENTRY_SIZE as u32;
    if header.encode_into(out).is_none() {
        return Written::TooSmall;
    }
    // `size` fits u32 and usize is at least 32 bits on every target Weir builds for.
    let Ok(total) = usize::try_from(size) else { return Written::HeaderOnly(STATS_HEADER_SIZE) };
    let Some(body) = out.get_mut(STATS_HEADER_SIZE..total) else {
        return Written::HeaderOnly(STATS_HEADER_SIZE);
    };
    for (entry, chunk) in rules.zip(body.chunks_exact_mut(RULE_ENTRY_SIZE)) {
        if entry.encode_into(chunk).is_none() {
            return Written::HeaderOnly(STATS_HEADER_SIZE);
        }
    }
    Written::Complete(total)
}

/// Why a buffer is not a usable stats reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsError {
    /// Shorter than the size and version fields.
    TooShort,
    /// Another ABI version (e.g. 1: an older driver).
    AbiVersion { found: u32 },
    /// The header's sizes are inconsistent.
    Malformed,
    /// A valid header of a reply that was cut short (`STATUS_BUFFER_OVERFLOW`):
    /// retry with `needed` bytes.
    Truncated { needed: u32, policy_generation: u64, rule_count: u32 },
}

impl core::fmt::Display for StatsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort => write!(f, "stats reply shorter than its header"),
            Self::AbiVersion { found } => write!(f, "stats reply has ABI version {found}, this tool reads {STATS_ABI_VERSION}"),
            Self::Malformed => write!(f, "stats reply header is inconsistent"),
            Self::Truncated { needed, .. } => write!(f, "stats reply cut short: {needed} bytes needed"),
        }
    }
}

/// A decoded reply: the header and its rule entries.
#[derive(Clone, Copy, Debug)]
pub struct StatsReply<'a> {
    pub header: StatsHeader,
    rules: &'a [u8],
}

impl<'a> StatsReply<'a> {
    /// The per-rule hit counters, in policy order.
    pub fn rules(&self) -> impl ExactSizeIterator<Item = RuleHits> + 'a {
        self.rules.chunks_exact(RULE_ENTRY_SIZE).map(|c| RuleHits::read(c).unwrap_or_default())
    }
}

/// Decodes the bytes the driver returned (`Information` bytes of the output
/// buffer). Checks the ABI version first, then the sizes; a header-only
/// reply is [`StatsError::Truncated`] with the size to retry with.
pub fn decode_reply(bytes: &[u8]) -> Result<StatsReply<'_>, StatsError> {
    let (Some(size), Some(abi)) = (u32_at(bytes, 0), u32_at(bytes, 4)) else {
        return Err(StatsError::TooShort);
    };
    if abi != STATS_ABI_VERSION {
        return Err(StatsError::AbiVersion { found: abi });
    }
    let header = StatsHeader::read(bytes).ok_or(StatsError::TooShort)?;
    if header.header_size as usize != STATS_HEADER_SIZE
        || header.rule_entry_size as usize != RULE_ENTRY_SIZE
        || reply_size(header.rule_count as usize) != Some(size)
    {
        return Err(StatsError::Malformed);
    }
    let total = size as usize;
    if bytes.len() < total {
        return Err(StatsError::Truncated { needed: size, policy_generation: header.policy_generation, rule_count: header.rule_count });
    }
    let rules = bytes.get(STATS_HEADER_SIZE..total).ok_or(StatsError::Malformed)?;
    Ok(StatsReply { header, rules })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::unwrap_used)]
    extern crate std;
    use super::*;
    use core::mem::align_of;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn layouts_are_pinned() {
        assert_eq!(size_of::<LayerStats>(), 40);
        assert_eq!(align_of::<LayerStats>(), 8);
        assert_eq!(LAYER_FIELDS, [0, 8, 16, 24, 32]);
        assert_eq!(size_of::<StatsHeader>(), 208);
        assert_eq!(align_of::<StatsHeader>(), 8);
        assert_eq!(offset_of!(StatsHeader, size), 0);
        assert_eq!(offset_of!(StatsHeader, abi_version), 4);
        assert_eq!(offset_of!(StatsHeader, version), 8);
        assert_eq!(offset_of!(StatsHeader, header_size), 16);
        assert_eq!(offset_of!(StatsHeader, filtering), 20);
        assert_eq!(offset_of!(StatsHeader, policy_generation), 24);
        assert_eq!(offset_of!(StatsHeader, event_drops), 32);
        assert_eq!(offset_of!(StatsHeader, rule_count), 40);
        assert_eq!(offset_of!(StatsHeader, rule_entry_size), 44);
        assert_eq!(offset_of!(StatsHeader, layers), 48);
        assert_eq!(size_of::<RuleHits>(), 16);
        assert_eq!(align_of::<RuleHits>(), 8);
        assert_eq!(offset_of!(RuleHits, rule_id), 0);
        assert_eq!(offset_of!(RuleHits, rule_index), 4);
        assert_eq!(offset_of!(RuleHits, hits), 8);
    }

    fn sample_header() -> StatsHeader {
        let mut h = StatsHeader { version: [1, 2, 3, 0], filtering: FILTERING_ACTIVE, policy_generation: 7, event_drops: 9, ..Default::default() };
        for (i, l) in h.layers.iter_mut().enumerate() {
            let b = 100 * i as u64;
            *l = LayerStats { new_connections: b + 1, reauthorizations: b + 2, permitted: b + 3, blocked: b + 4, write_right_absent: b + 5 };
        }
        h
    }

    fn rules(n: u32) -> Vec<RuleHits> {
        (0..n).map(|i| RuleHits { rule_id: 1000 + i, rule_index: i, hits: u64::from(i) * 3 }).collect()
    }

    #[test]
    fn complete_reply_round_trips_with_fields_at_their_offsets() {
        let mut buf = vec![0xEEu8; 208 + 3 * 16];
        let w = write_reply(&mut buf, sample_header(), rules(3).into_iter());
        assert_eq!(w, Written::Complete(256));
        assert_eq!(&buf[0..4], &256u32.to_le_bytes());
        assert_eq!(&buf[4..8], &2u32.to_le_bytes());
        assert_eq!(&buf[24..32], &7u64.to_le_bytes());
        assert_eq!(&buf[48 + 40 + 24..48 + 40 + 32], &104u64.to_le_bytes()); // connect v6 blocked
        assert_eq!(&buf[208 + 16..208 + 20], &1001u32.to_le_bytes());
        let reply = decode_reply(&buf).unwrap();
        let mut expected = sample_header();
        expected.size = 256;
        expected.abi_version = 2;
        expected.header_size = 208;
        expected.rule_count = 3;
        expected.rule_entry_size = 16;
        assert_eq!(reply.header, expected);
        assert_eq!(reply.rules().collect::<Vec<_>>(), rules(3));
    }

    #[test]
    fn short_buffers() {
        // The v1 tool's buffer: refused, untouched.
        let mut v1 = [0xEEu8; 112];
        assert_eq!(write_reply(&mut v1, sample_header(), rules(2).into_iter()), Written::V1Caller);
        assert!(v1.iter().all(|b| *b == 0xEE));
        for len in [0usize, 4, 8, 111, 113, 207] {
            let mut b = vec![0xEEu8; len];
            assert_eq!(write_reply(&mut b, sample_header(), rules(2).into_iter()), Written::TooSmall, "{len}");
            assert!(b.iter().all(|x| *x == 0xEE));
        }
        // Header fits, rules do not: header only, size says what is needed.
        for len in [208usize, 209, 239] {
            let mut b = vec![0xEEu8; len];
            assert_eq!(write_reply(&mut b, sample_header(), rules(2).into_iter()), Written::HeaderOnly(208));
            assert!(b[208..].iter().all(|x| *x == 0xEE));
            match decode_reply(&b[..208]) {
                Err(StatsError::Truncated { needed, policy_generation, rule_count }) => {
                    assert_eq!(needed, 240);
                    assert_eq!(rule_count, 2);
                    assert_eq!(policy_generation, 7);
                }
                other => panic!("{other:?}"),
            }
        }
        // No rules: the header is the whole reply.
        let mut b = vec![0u8; 208];
        assert_eq!(write_reply(&mut b, sample_header(), rules(0).into_iter()), Written::Complete(208));
        assert_eq!(decode_reply(&b).unwrap().rules().len(), 0);
        // A bigger buffer than needed is fine.
        let mut b = vec![0u8; 4096];
        assert_eq!(write_reply(&mut b, sample_header(), rules(2).into_iter()), Written::Complete(240));
    }

    #[test]
    fn decoder_refuses_other_versions_and_inconsistent_headers() {
        // A v1 reply (size 112, version 1).
        let mut v1 = [0u8; 112];
        v1[0..4].copy_from_slice(&112u32.to_le_bytes());
        v1[4..8].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(decode_reply(&v1).unwrap_err(), StatsError::AbiVersion { found: 1 });
        assert_eq!(decode_reply(&[0u8; 7]).unwrap_err(), StatsError::TooShort);
        let mut good = vec![0u8; 240];
        write_reply(&mut good, sample_header(), rules(2).into_iter());
        let mut bad = good.clone();
        bad[0..4].copy_from_slice(&241u32.to_le_bytes());
        assert_eq!(decode_reply(&bad).unwrap_err(), StatsError::Malformed);
        let mut bad = good.clone();
        bad[16..20].copy_from_slice(&200u32.to_le_bytes());
        assert_eq!(decode_reply(&bad).unwrap_err(), StatsError::Malformed);
        assert_eq!(decode_reply(&good[..100]).unwrap_err(), StatsError::TooShort);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_reply(&bytes);
        }

        #[test]
        fn any_buffer_length_is_answered_consistently(len in 0usize..600, n in 0u32..20) {
            let mut b = vec![0u8; len];
            let needed = 208 + 16 * n as usize;
            match write_reply(&mut b, sample_header(), rules(n).into_iter()) {
                Written::Complete(w) => { prop_assert!(len >= needed); prop_assert_eq!(w, needed); prop_assert_eq!(decode_reply(&b[..w]).unwrap().rules().collect::<Vec<_>>(), rules(n)); }
                Written::HeaderOnly(w) => { prop_assert!(len >= 208 && len < needed); prop_assert_eq!(w, 208); }
                Written::V1Caller => prop_assert_eq!(len, 112),
                Written::TooSmall => prop_assert!(len < 208 && len != 112),
                Written::Unrepresentable => prop_assert!(false),
            }
        }
    }
}
