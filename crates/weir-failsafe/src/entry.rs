//! One allow-list entry: `<direction> <protocol> <remote address> <ports>`,
//! four fields separated by spaces or tabs, keywords in any case.
//!
//! | field | accepted | meaning |
//! |---|---|---|
//! | direction | `out`, `in` | `out`: connections this machine opens (ALE connect layers); `in`: connections it accepts (ALE receive/accept layers) |
//! | protocol | `tcp`, `udp`, `icmp`, `icmpv6`, `any`, or a number 0..=255 | `FWPM_CONDITION_IP_PROTOCOL`; `any` adds no condition |
//! | remote address | `any`, an IPv4 or IPv6 address, optionally `/prefix` | `FWPM_CONDITION_IP_REMOTE_ADDRESS`; an IPv4 address makes the entry IPv4-only, IPv6 IPv6-only, `any` both; host bits under the prefix are cleared |
//! | ports | `any`, `N` or `N-M` (0..=65535, N <= M) | `out`: the remote port (`FWPM_CONDITION_IP_REMOTE_PORT`), `in`: the local port (`FWPM_CONDITION_IP_LOCAL_PORT`), the service's port either way; only with `tcp`, `udp` or `any` |
//!
//! Examples: `out udp 10.0.0.53 53`, `out tcp 10.1.2.0/24 443`,
//! `in udp any 67-68`, `out tcp fd00::/8 5985-5986`, `out icmp any any`.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

/// Which connections an entry permits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Connections this machine opens (ALE_AUTH_CONNECT_V4/V6).
    Out,
    /// Connections this machine accepts (ALE_AUTH_RECV_ACCEPT_V4/V6).
    In,
}

impl Direction {
    /// The keyword users write.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Out => "out",
            Self::In => "in",
        }
    }
}

/// IP version of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 layers.
    V4,
    /// IPv6 layers.
    V6,
}

/// The remote address an entry permits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Remote {
    /// Any address, IPv4 and IPv6.
    Any,
    /// An IPv4 network (`addr` has no bits set below `prefix`).
    V4 {
        /// Network address, in network byte order.
        addr: [u8; 4],
        /// 0..=32.
        prefix: u8,
    },
    /// An IPv6 network (`addr` has no bits set below `prefix`).
    V6 {
        /// Network address, in network byte order.
        addr: [u8; 16],
        /// 0..=128.
        prefix: u8,
    },
}

/// A port range, `low <= high`, never the full range (that is "any", which
/// an [`Entry`] holds as `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ports {
    /// First port.
    pub low: u16,
    /// Last port (inclusive).
    pub high: u16,
}

/// One allow-list entry.
///
/// # Invariants
/// `remote`'s address has no host bits; `ports`, when `Some`, has
/// `low <= high`, is not `0-65535`, and `protocol` is `None`, 6 or 17.
/// [`Entry::parse`] is the only constructor that establishes them for text;
/// [`Entry::new`] checks them for values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    direction: Direction,
    protocol: Option<u8>,
    remote: Remote,
    ports: Option<Ports>,
}

/// One condition of the filter an entry becomes, in WFP's terms (the driver
/// maps each to an `FWPM_FILTER_CONDITION0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterCondition {
    /// `FWPM_CONDITION_IP_PROTOCOL` equal to this number (`FWP_UINT8`).
    Protocol(u8),
    /// `FWPM_CONDITION_IP_REMOTE_ADDRESS` in this network
    /// (`FWP_V4_ADDR_MASK`: address and mask in host byte order).
    RemoteV4 {
        /// Host byte order.
        addr: u32,
        /// Host byte order, `prefix` leading ones.
        mask: u32,
    },
    /// `FWPM_CONDITION_IP_REMOTE_ADDRESS` in this network (`FWP_V6_ADDR_MASK`).
    RemoteV6 {
        /// Network byte order.
        addr: [u8; 16],
        /// 1..=128 (a 0 prefix adds no condition).
        prefix: u8,
    },
    /// `FWPM_CONDITION_IP_REMOTE_PORT` equal to `low` (when `low == high`,
    /// `FWP_MATCH_EQUAL`) or in `low..=high` (`FWP_MATCH_RANGE`).
    RemotePort {
        /// First port.
        low: u16,
        /// Last port.
        high: u16,
    },
    /// `FWPM_CONDITION_IP_LOCAL_PORT`, likewise.
    LocalPort {
        /// First port.
        low: u16,
        /// Last port.
        high: u16,
    },
}

/// Most conditions one entry's filter carries (protocol, address, port).
pub const MAX_FILTER_CONDITIONS: usize = 3;

/// Why an entry's text is not an entry. Each message says what to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryError {
    /// More than [`crate::MAX_ENTRY_UNITS`] characters.
    TooLong,
    /// A character outside printable ASCII (entries are plain ASCII).
    NotAscii,
    /// Not exactly four fields.
    Fields {
        /// Fields found.
        found: usize,
    },
    /// The first field is neither `out` nor `in`.
    Direction,
    /// The second field is not a protocol.
    Protocol,
    /// The third field is not `any` or an address.
    Address,
    /// The prefix after `/` is not a number within the address's length.
    Prefix,
    /// The fourth field is not `any`, a port or a range of ports.
    Port,
    /// A range whose first port is above its last.
    PortOrder,
    /// Ports given for a protocol that has none (only tcp, udp, any).
    PortsNeedTcpOrUdp,
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => write!(f, "longer than {} characters; shorten it", crate::MAX_ENTRY_UNITS),
            Self::NotAscii => f.write_str("contains a character outside printable ASCII; retype it in plain ASCII"),
            Self::Fields { found } => write!(
                f,
                "has {found} fields, not 4; write `<out|in> <protocol> <address|any> <ports|any>`, e.g. `out tcp 10.1.2.0/24 443`"
            ),
            Self::Direction => f.write_str("direction must be `out` or `in`"),
            Self::Protocol => f.write_str("protocol must be tcp, udp, icmp, icmpv6, any or a number 0-255"),
            Self::Address => f.write_str("address must be `any` or an IPv4/IPv6 address, optionally with /prefix"),
            Self::Prefix => f.write_str("prefix must be 0-32 for IPv4, 0-128 for IPv6"),
            Self::Port => f.write_str("ports must be `any`, a port 0-65535 or a range like 5985-5986"),
            Self::PortOrder => f.write_str("port range is reversed; write the lower port first"),
            Self::PortsNeedTcpOrUdp => f.write_str("ports apply to tcp, udp or any only; write `any` as the ports"),
        }
    }
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// A decimal number of at most `max_digits` ASCII digits (no sign, no
/// spaces); `None` otherwise.
fn number(s: &str, max_digits: usize) -> Option<u32> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    u32::from_str(s).ok()
}

fn port(s: &str) -> Result<u16, EntryError> {
    number(s, 5).and_then(|n| u16::try_from(n).ok()).ok_or(EntryError::Port)
}

fn parse_protocol(s: &str) -> Result<Option<u8>, EntryError> {
    let named = [("tcp", TCP), ("udp", UDP), ("icmp", ICMP), ("icmpv6", ICMPV6)];
    if s.eq_ignore_ascii_case("any") {
        return Ok(None);
    }
    if let Some((_, n)) = named.iter().find(|(name, _)| s.eq_ignore_ascii_case(name)) {
        return Ok(Some(*n));
    }
    number(s, 3).and_then(|n| u8::try_from(n).ok()).map(Some).ok_or(EntryError::Protocol)
}

/// `value` with every bit below the first `prefix` bits cleared.
fn masked<const N: usize>(mut value: [u8; N], prefix: u8) -> [u8; N] {
    let mut left = u32::from(prefix);
    for byte in value.iter_mut() {
        let keep = left.min(8);
        // NO-OVERFLOW: keep <= 8, so the shift is at most 8 on a u16.
        let mask = (0xFF00u16 >> keep) as u8;
        *byte &= mask;
        left -= keep;
    }
    value
}

fn parse_remote(s: &str) -> Result<Remote, EntryError> {
    if s.eq_ignore_ascii_case("any") {
        return Ok(Remote::Any);
    }
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(number(p, 3).ok_or(EntryError::Prefix)?)),
        None => (s, None),
    };
    if let Ok(v4) = Ipv4Addr::from_str(addr) {
        let prefix = u8::try_from(prefix.unwrap_or(32)).ok().filter(|p| *p <= 32).ok_or(EntryError::Prefix)?;
        return Ok(Remote::V4 { addr: masked(v4.octets(), prefix), prefix });
    }
    if let Ok(v6) = Ipv6Addr::from_str(addr) {
        let prefix = u8::try_from(prefix.unwrap_or(128)).ok().filter(|p| *p <= 128).ok_or(EntryError::Prefix)?;
        return Ok(Remote::V6 { addr: masked(v6.octets(), prefix), prefix });
    }
    Err(EntryError::Address)
}

fn parse_ports(s: &str) -> Result<Option<Ports>, EntryError> {
    if s.eq_ignore_ascii_case("any") {
        return Ok(None);
    }
    let (low, high) = match s.split_once('-') {
        Some((l, h)) => (port(l)?, port(h)?),
        None => {
            let p = port(s)?;
            (p, p)
        }
    };
    if low > high {
        return Err(EntryError::PortOrder);
    }
    // The full range is normalised to "any" by `Entry::new`.
    Ok(Some(Ports { low, high }))
}

impl Entry {
    /// `out any any any`, the filler of unused list slots (it satisfies the
    /// invariants: no address, no ports).
    pub(crate) const UNUSED: Self = Self { direction: Direction::Out, protocol: None, remote: Remote::Any, ports: None };

    /// An entry from values: the address's host bits are cleared, the full
    /// port range becomes "any".
    ///
    /// # Errors
    /// [`EntryError::Prefix`] for a prefix longer than the address,
    /// [`EntryError::PortOrder`] for `low > high`,
    /// [`EntryError::PortsNeedTcpOrUdp`] for ports with another protocol.
    pub fn new(direction: Direction, protocol: Option<u8>, remote: Remote, ports: Option<Ports>) -> Result<Self, EntryError> {
        let remote = match remote {
            Remote::Any => Remote::Any,
            Remote::V4 { addr, prefix } if prefix <= 32 => Remote::V4 { addr: masked(addr, prefix), prefix },
            Remote::V6 { addr, prefix } if prefix <= 128 => Remote::V6 { addr: masked(addr, prefix), prefix },
            _ => return Err(EntryError::Prefix),
        };
        let ports = match ports {
            Some(p) if p.low > p.high => return Err(EntryError::PortOrder),
            Some(Ports { low: 0, high: u16::MAX }) | None => None,
            Some(p) => Some(p),
        };
        if ports.is_some() && !matches!(protocol, None | Some(TCP) | Some(UDP)) {
            return Err(EntryError::PortsNeedTcpOrUdp);
        }
        // INVARIANT: host bits cleared, ports ordered, not full, with a
        // protocol that has ports (checked above).
        Ok(Self { direction, protocol, remote, ports })
    }

    /// Parses one entry's text (surrounding spaces and tabs are ignored).
    ///
    /// # Errors
    /// The first [`EntryError`] found, reading the fields left to right.
    ///
    /// # Examples
    /// ```
    /// use weir_failsafe::{Direction, Entry};
    /// let e = Entry::parse("OUT  tcp 10.1.2.9/24\t443").unwrap();
    /// assert_eq!(e.direction(), Direction::Out);
    /// assert_eq!(e.to_string(), "out tcp 10.1.2.0/24 443");
    /// assert!(Entry::parse("out tcp 10.1.2.0/33 443").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, EntryError> {
        if text.len() > crate::MAX_ENTRY_UNITS {
            return Err(EntryError::TooLong);
        }
        if !text.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
            return Err(EntryError::NotAscii);
        }
        let mut fields = [""; 4];
        let mut found = 0usize;
        for (i, field) in text.split_ascii_whitespace().enumerate() {
            if let Some(slot) = fields.get_mut(i) {
                *slot = field;
            }
            found = i + 1;
        }
        if found != 4 {
            return Err(EntryError::Fields { found });
        }
        let [direction, protocol, remote, ports] = fields;
        let direction = if direction.eq_ignore_ascii_case("out") {
            Direction::Out
        } else if direction.eq_ignore_ascii_case("in") {
            Direction::In
        } else {
            return Err(EntryError::Direction);
        };
        let protocol = parse_protocol(protocol)?;
        let remote = parse_remote(remote)?;
        let ports = parse_ports(ports)?;
        Self::new(direction, protocol, remote, ports)
    }

    /// Which connections it permits.
    pub const fn direction(&self) -> Direction {
        self.direction
    }

    /// IANA protocol number; `None` for any.
    pub const fn protocol(&self) -> Option<u8> {
        self.protocol
    }

    /// Remote address.
    pub const fn remote(&self) -> Remote {
        self.remote
    }

    /// Remote port (out) or local port (in); `None` for any.
    pub const fn ports(&self) -> Option<Ports> {
        self.ports
    }

    /// The IP versions it covers, in order: both for `any`, else the
    /// address's own.
    pub fn families(&self) -> impl Iterator<Item = Family> {
        let (v4, v6) = match self.remote {
            Remote::Any => (true, true),
            Remote::V4 { .. } => (true, false),
            Remote::V6 { .. } => (false, true),
        };
        [(v4, Family::V4), (v6, Family::V6)].into_iter().filter(|(on, _)| *on).map(|(_, f)| f)
    }

    /// The conditions of its filter at a layer of `family` (all must
    /// match; none at all permits every connection at that layer).
    pub fn conditions(&self, family: Family) -> [Option<FilterCondition>; MAX_FILTER_CONDITIONS] {
        let protocol = self.protocol.map(FilterCondition::Protocol);
        let remote = match (self.remote, family) {
            (Remote::V4 { addr, prefix }, Family::V4) if prefix > 0 => Some(FilterCondition::RemoteV4 {
                addr: u32::from_be_bytes(addr),
                mask: u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0),
            }),
            (Remote::V6 { addr, prefix }, Family::V6) if prefix > 0 => Some(FilterCondition::RemoteV6 { addr, prefix }),
            _ => None,
        };
        let ports = self.ports.map(|Ports { low, high }| match self.direction {
            Direction::Out => FilterCondition::RemotePort { low, high },
            Direction::In => FilterCondition::LocalPort { low, high },
        });
        [protocol, remote, ports]
    }
}

impl fmt::Display for Entry {
    /// The canonical text: lower-case keywords, protocol names for 1, 6,
    /// 17 and 58, no `/32` or `/128`; it parses back to the same entry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.direction.as_str())?;
        match self.protocol {
            None => f.write_str("any")?,
            Some(TCP) => f.write_str("tcp")?,
            Some(UDP) => f.write_str("udp")?,
            Some(ICMP) => f.write_str("icmp")?,
            Some(ICMPV6) => f.write_str("icmpv6")?,
            Some(n) => write!(f, "{n}")?,
        }
        match self.remote {
            Remote::Any => f.write_str(" any")?,
            Remote::V4 { addr, prefix: 32 } => write!(f, " {}", Ipv4Addr::from(addr))?,
            Remote::V4 { addr, prefix } => write!(f, " {}/{prefix}", Ipv4Addr::from(addr))?,
            Remote::V6 { addr, prefix: 128 } => write!(f, " {}", Ipv6Addr::from(addr))?,
            Remote::V6 { addr, prefix } => write!(f, " {}/{prefix}", Ipv6Addr::from(addr))?,
        }
        match self.ports {
            None => f.write_str(" any"),
            Some(Ports { low, high }) if low == high => write!(f, " {low}"),
            Some(Ports { low, high }) => write!(f, " {low}-{high}"),
        }
    }
}

#[cfg(test)]
mod tests;
