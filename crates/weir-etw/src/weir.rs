//! The events of the `Weir` provider: names, keywords, levels and fields.
//!
//! | event | keyword | level | when |
//! |---|---|---|---|
//! | `Connection` | `CONNECTIONS` (+ `BLOCKS` when blocked) | 5 verbose (permit), 4 information (block) | every classification of an ALE authorization |
//! | `PolicyChanged` | `POLICY` | 4 | `IOCTL_WEIR_SET_POLICY` succeeded |
//! | `FilteringStarted` / `FilteringStopped` | `FILTERING` | 4 / 3 | Weir's filters entered / left BFE |
//! | `DriverStarted` / `DriverStopping` | `LIFECYCLE` | 4 | end of DriverEntry / start of DriverUnload |
//! | `Error` | `ERRORS` | 2 | every error the driver traces with DbgPrintEx |
//! | `EventsDropped` | `ERRORS` | 3 | the event stream's ring was full (total so far) |
//!
//! Field names and types are a contract (`docs/etw.md` lists them): a new
//! field is appended, never renamed or retyped.

use crate::encode::{level, Builder};
use core::fmt::{self, Write};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use weir_events::{Decision, Direction, Event, IpVersion};

/// Keyword bits of the `Weir` provider.
pub mod keyword {
    /// Every classification (`Connection`).
    pub const CONNECTIONS: u64 = 0x1;
    /// Blocked classifications only (`Connection` with Decision `block`).
    pub const BLOCKS: u64 = 0x2;
    /// Policy changes.
    pub const POLICY: u64 = 0x4;
    /// Filtering started / stopped (BFE state).
    pub const FILTERING: u64 = 0x8;
    /// Driver start / stop.
    pub const LIFECYCLE: u64 = 0x10;
    /// Errors and dropped events.
    pub const ERRORS: u64 = 0x20;
    /// Every bit above.
    pub const ALL: u64 = CONNECTIONS | BLOCKS | POLICY | FILTERING | LIFECYCLE | ERRORS;
}

/// The keyword a classification is written under.
pub fn connection_keyword(decision: Decision) -> u64 {
    match decision {
        Decision::Block => keyword::CONNECTIONS | keyword::BLOCKS,
        Decision::Permit | Decision::WriteRightAbsent => keyword::CONNECTIONS,
    }
}

/// The level a classification is written at.
pub fn connection_level(decision: Decision) -> u8 {
    match decision {
        Decision::Block => level::INFORMATION,
        Decision::Permit | Decision::WriteRightAbsent => level::VERBOSE,
    }
}

/// Names users read, shared with `weirctl events` and the docs.
pub fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Permit => "permit",
        Decision::Block => "block",
        Decision::WriteRightAbsent => "write-right-absent",
    }
}

/// `outbound` / `inbound`.
pub fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Outbound => "outbound",
        Direction::Inbound => "inbound",
    }
}

/// The IANA protocol name Weir shows (`tcp`, `udp`, `icmp`, `icmpv6`), or
/// `None` for other numbers (shown as the number).
pub fn protocol_name(p: u8) -> Option<&'static str> {
    match p {
        1 => Some("icmp"),
        2 => Some("igmp"),
        6 => Some("tcp"),
        17 => Some("udp"),
        47 => Some("gre"),
        50 => Some("esp"),
        51 => Some("ah"),
        58 => Some("icmpv6"),
        132 => Some("sctp"),
        _ => None,
    }
}

/// The ALE layer's name for a run-time layer id (`FWPS_BUILTIN_LAYERS`).
pub fn layer_name(layer_id: u16) -> &'static str {
    match layer_id {
        48 => "ALE_AUTH_CONNECT_V4",
        50 => "ALE_AUTH_CONNECT_V6",
        44 => "ALE_AUTH_RECV_ACCEPT_V4",
        46 => "ALE_AUTH_RECV_ACCEPT_V6",
        _ => "unknown",
    }
}

/// A small text buffer for fields formatted in the driver (addresses,
/// SIDs, protocol numbers); longer text is cut.
pub struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    /// Empty text.
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0 }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        // Only whole `str`s are ever copied in (write_str keeps char
        // boundaries), so this never fails.
        core::str::from_utf8(self.buf.get(..self.len).unwrap_or(&[])).unwrap_or("")
    }
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + take), s.as_bytes().get(..take)) {
            dst.copy_from_slice(src);
            self.len += take;
        }
        if take < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The event's address as text (`10.0.0.2`, `2001:db8::1`).
pub fn address_text(version: IpVersion, bytes: &[u8; 16]) -> Text<46> {
    let addr = match version {
        IpVersion::V4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        IpVersion::V6 => IpAddr::V6(Ipv6Addr::from(*bytes)),
    };
    let mut t = Text::new();
    let _ = write!(t, "{addr}");
    t
}

/// A binary SID (`SID` structure: revision, sub-authority count, 6-byte
/// big-endian identifier authority, little-endian `u32` sub-authorities)
/// as the `S-1-5-21-...` text Windows shows. `None` if the bytes are not a
/// whole SID.
pub fn sid_text(sid: &[u8]) -> Option<Text<184>> {
    let (&revision, rest) = sid.split_first()?;
    let (&count, rest) = rest.split_first()?;
    let authority = rest.get(..6)?;
    let subs = rest.get(6..6 + 4 * usize::from(count))?;
    if revision != 1 || count > 15 {
        return None;
    }
    let mut value = 0u64;
    for b in authority {
        value = (value << 8) | u64::from(*b);
    }
    let mut t = Text::new();
    let _ = write!(t, "S-{revision}-{value}");
    for c in subs.chunks_exact(4) {
        let sub = u32::from_le_bytes(c.try_into().unwrap_or([0; 4]));
        let _ = write!(t, "-{sub}");
    }
    Some(t)
}

/// What a `Connection` event carries beyond the event stream's [`Event`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectionExtra<'a> {
    /// The user's SID (binary), from the ALE layer's user id, when present.
    pub user_sid: Option<&'a [u8]>,
    /// The deciding rule's name (the policy's rule at `event.rule_index`
    /// of generation `event.policy_generation`); `None` or empty: unnamed.
    pub rule_name: Option<&'a str>,
}

/// Builds `Connection` (see the module table) from the event stream's
/// record of the same classification.
pub fn connection(event: &Event, extra: &ConnectionExtra<'_>) -> Builder {
    let mut b = connection_builder(event);
    fill_connection(&mut b, event, extra);
    b
}

/// An empty `Connection` event with the level and keyword of `event`'s
/// decision; [`fill_connection`] adds the fields. The driver uses the two
/// halves so the builder is never moved (one copy on the stack, not three).
#[inline(always)]
pub fn connection_builder(event: &Event) -> Builder {
    Builder::new("Connection", connection_level(event.decision), connection_keyword(event.decision))
}

/// Adds the `Connection` fields to `b` (from [`connection_builder`]).
pub fn fill_connection(b: &mut Builder, event: &Event, extra: &ConnectionExtra<'_>) {
    let mut number = Text::<4>::new();
    let protocol = match protocol_name(event.protocol) {
        Some(name) => name,
        None => {
            let _ = write!(number, "{}", event.protocol);
            number.as_str()
        }
    };
    let user = extra.user_sid.and_then(sid_text);
    let local = address_text(event.ip_version, &event.local_addr);
    let remote = address_text(event.ip_version, &event.remote_addr);
    b.str8("Layer", layer_name(event.layer_id))
        .str8("Direction", direction_name(event.direction))
        .str8("Decision", decision_name(event.decision))
        .u32("RuleId", event.rule_id.unwrap_or(0))
        .bool32("HasRule", event.rule_id.is_some())
        .u8("ProtocolNumber", event.protocol)
        .str8("Protocol", if event.tuple { protocol } else { "" })
        .str8("LocalAddress", if event.tuple { local.as_str() } else { "" })
        .u16("LocalPort", event.local_port)
        .str8("RemoteAddress", if event.tuple { remote.as_str() } else { "" })
        .u16("RemotePort", event.remote_port)
        .pid("ProcessId", event.process_id.and_then(|p| u32::try_from(p).ok()).unwrap_or(0))
        .str16("Image", event.path.units())
        .bool32("ImageTruncated", event.path.truncated())
        .str8("User", user.as_ref().map_or("", Text::as_str))
        .bool32("Reauthorization", event.reauthorization)
        // Appended (fields are never inserted: readers by position keep working).
        .str8("RuleName", extra.rule_name.unwrap_or(""))
        .u64("PolicyGeneration", event.policy_generation)
        .u32("RuleIndex", event.rule_index.filter(|_| event.rule_id.is_some()).unwrap_or(0));
}

/// `PolicyChanged`: a policy was installed (or cleared: `rule_count` 0 and
/// an empty blob mean monitor mode).
#[derive(Clone, Copy, Debug)]
pub struct PolicyChange<'a> {
    /// The store's generation after the change.
    pub generation: u64,
    /// Rules in the new policy.
    pub rule_count: u32,
    /// The policy blob as received (hashed with [`blob_hash`]).
    pub blob: &'a [u8],
    /// Where it came from (`IOCTL_WEIR_SET_POLICY`).
    pub source: &'a str,
    /// The calling process (`PsGetCurrentProcessId` in the dispatch routine).
    pub process_id: u64,
}

/// FNV-1a, 64 bit, over the policy blob: identifies a blob in logs (not a
/// security hash; `weirctl policy` prints the same value).
pub fn blob_hash(blob: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in blob {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Builds `PolicyChanged`.
pub fn policy_changed(p: &PolicyChange<'_>) -> Builder {
    let mut b = Builder::new("PolicyChanged", level::INFORMATION, keyword::POLICY);
    b.u64("Generation", p.generation)
        .u32("RuleCount", p.rule_count)
        .u32("BlobSize", u32::try_from(p.blob.len()).unwrap_or(u32::MAX))
        .hex64("BlobHash", blob_hash(p.blob))
        .str8("Source", p.source)
        .pid("ProcessId", u32::try_from(p.process_id).unwrap_or(0));
    b
}

/// Builds `FilteringStarted` (`started`) or `FilteringStopped`, with the
/// reason (`DriverEntry`, `BFE running`, `BFE stopping`, `unload`).
pub fn filtering(started: bool, reason: &str) -> Builder {
    let mut b = if started {
        Builder::new("FilteringStarted", level::INFORMATION, keyword::FILTERING)
    } else {
        Builder::new("FilteringStopped", level::WARNING, keyword::FILTERING)
    };
    b.str8("Reason", reason);
    b
}

/// Builds `DriverStarted` (`started`) or `DriverStopping`, with Weir's
/// version.
pub fn lifecycle(started: bool, version: &str) -> Builder {
    let name = if started { "DriverStarted" } else { "DriverStopping" };
    let mut b = Builder::new(name, level::INFORMATION, keyword::LIFECYCLE);
    b.str8("Version", version);
    b
}

/// Builds `Error` with the message DbgPrintEx printed (without its
/// `weir: ` prefix and newline).
pub fn error(message: &str) -> Builder {
    let mut b = Builder::new("Error", level::ERROR, keyword::ERRORS);
    b.str8("Message", message);
    b
}

/// Builds `EventsDropped`: `total` events lost by the event stream's ring
/// since the driver started.
pub fn events_dropped(total: u64) -> Builder {
    let mut b = Builder::new("EventsDropped", level::WARNING, keyword::ERRORS);
    b.u64("Total", total);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_text_reads_a_user_sid() {
        // S-1-5-21-1-2-3-1001
        let mut sid = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
        for s in [21u32, 1, 2, 3, 1001] {
            sid.extend_from_slice(&s.to_le_bytes());
        }
        assert_eq!(sid_text(&sid).map(|t| t.as_str().to_string()).as_deref(), Some("S-1-5-21-1-2-3-1001"));
        assert!(sid_text(&sid[..sid.len() - 1]).is_none(), "a cut SID is refused");
        assert!(sid_text(&[]).is_none());
    }

    #[test]
    fn blob_hash_is_fnv1a64() {
        // Published FNV-1a 64 test values.
        assert_eq!(blob_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(blob_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn blocks_reach_a_blocks_only_session_and_permits_do_not() {
        assert_ne!(connection_keyword(Decision::Block) & keyword::BLOCKS, 0);
        assert_eq!(connection_keyword(Decision::Permit) & keyword::BLOCKS, 0);
        assert_ne!(connection_keyword(Decision::Permit) & keyword::CONNECTIONS, 0);
    }
}
