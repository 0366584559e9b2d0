//! Weir's connection policy: the model, its versioned little-endian wire blob, a total decoder,
//! the compiler into a lookup structure whose speed does not depend on the number of rules, and
//! a plain first-match reference evaluator.
//!
//! The crate is `no_std` + `alloc` so the driver can use it in kernel mode. Every allocation on
//! the decode and compile paths is fallible (`try_reserve`); an allocation failure is an error
//! ([`wire::DecodeError::OutOfMemory`], [`CompileError::OutOfMemory`]), never a panic. Lookup
//! ([`CompiledPolicy::lookup`]) never allocates, never recurses and never panics.
//!
//! # Model
//!
//! A [`Policy`] is an ordered list of [`Rule`]s, a list of named [`AddressSet`]s and one default
//! [`Action`] per [`Direction`]. A connection is described by a [`Query`]. The verdict is the
//! action of the **first** rule (lowest index) whose conditions all hold; when none holds, the
//! default action of the query's direction. Every condition is optional; an absent condition
//! matches anything. The exact semantics of each condition are in the docs of [`Rule`] and in
//! `docs/policy.md`.
//!
//! # Pieces
//! - [`wire`]: `encode` / `decode` of the blob the control device receives (format in
//!   `docs/policy.md`).
//! - [`limits`]: every bound the decoder and the compiler enforce.
//! - [`CompiledPolicy`]: `compile` + `lookup` (design and stack bound in [`compiled`]).
//! - [`reference`]: the obvious first-match evaluator, for tests and benchmarks only.
//! - [`fold`]: the case folding used for application paths.
//!
//! The proptest generators for policies and queries live in `crates/weir-policy-testing` (host
//! only), not behind a feature: see Cargo.toml for why this crate has none.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

use alloc::string::String;
use alloc::vec::Vec;

pub mod compiled;
pub mod fold;
pub mod limits;
pub mod reference;
mod validate;
pub mod wire;

pub use compiled::{CompileError, CompiledPolicy, CompiledStats};
pub use validate::ValidationError;

/// What a rule (or the default) decides for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Let the connection proceed (a soft permit in WFP terms: the driver never overrides
    /// another provider's block).
    Permit,
    /// Refuse the connection (FWP_ACTION_BLOCK with FWPS_RIGHT_ACTION_WRITE cleared).
    Block,
}

impl Action {
    /// The name the policy file, `weirctl` and events use: `permit` or `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Permit => "permit",
            Action::Block => "block",
        }
    }

    /// The action named `s` (exact, lower case), as [`Action::as_str`] writes it.
    pub fn from_name(s: &str) -> Option<Action> {
        match s {
            "permit" => Some(Action::Permit),
            "block" => Some(Action::Block),
            _ => None,
        }
    }
}

/// Which way the connection goes, as the ALE layers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Locally initiated: FWPS_LAYER_ALE_AUTH_CONNECT_V4/V6.
    Outbound,
    /// Remotely initiated: FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4/V6.
    Inbound,
}

impl Direction {
    /// The name the policy file and `weirctl` use: `outbound` or `inbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }

    /// The direction named `s`, as [`Direction::as_str`] writes it.
    pub fn from_name(s: &str) -> Option<Direction> {
        match s {
            "outbound" => Some(Direction::Outbound),
            "inbound" => Some(Direction::Inbound),
            _ => None,
        }
    }
}

/// IP version of a connection or of an address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4 (32-bit addresses).
    V4,
    /// IPv6 (128-bit addresses).
    V6,
}

/// An IP address in host byte order (the order WFP's FWP_UINT32 IPv4 values already have; an
/// IPv6 FWP_BYTE_ARRAY16 is big-endian on the wire and is converted with `u128::from_be_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// IPv4 address, e.g. 10.0.0.1 = `0x0A00_0001`.
    V4(u32),
    /// IPv6 address, e.g. ::1 = `1`.
    V6(u128),
}

impl Addr {
    /// The address's IP version.
    pub fn version(&self) -> IpVersion {
        match self {
            Addr::V4(_) => IpVersion::V4,
            Addr::V6(_) => IpVersion::V6,
        }
    }
}

impl From<core::net::IpAddr> for Addr {
    fn from(a: core::net::IpAddr) -> Self {
        match a {
            core::net::IpAddr::V4(v) => Addr::V4(v.to_bits()),
            core::net::IpAddr::V6(v) => Addr::V6(v.to_bits()),
        }
    }
}

/// An inclusive range of addresses of one IP version (host byte order). A single address is
/// `lo == hi`; a CIDR `a/n` is `lo = a & mask(n)`, `hi = lo | !mask(n)`. Valid only when
/// `lo <= hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrRange {
    /// IPv4 range.
    V4 {
        /// First address (inclusive).
        lo: u32,
        /// Last address (inclusive).
        hi: u32,
    },
    /// IPv6 range.
    V6 {
        /// First address (inclusive).
        lo: u128,
        /// Last address (inclusive).
        hi: u128,
    },
}

impl AddrRange {
    /// The range's IP version.
    pub fn version(&self) -> IpVersion {
        match self {
            AddrRange::V4 { .. } => IpVersion::V4,
            AddrRange::V6 { .. } => IpVersion::V6,
        }
    }

    /// The IPv4 CIDR `addr/len` as a range; `None` when `len > 32`.
    pub fn v4_cidr(addr: u32, len: u8) -> Option<AddrRange> {
        let mask = prefix_mask_u32(len)?;
        Some(AddrRange::V4 {
            lo: addr & mask,
            hi: (addr & mask) | !mask,
        })
    }

    /// The IPv6 CIDR `addr/len` as a range; `None` when `len > 128`.
    pub fn v6_cidr(addr: u128, len: u8) -> Option<AddrRange> {
        let mask = prefix_mask_u128(len)?;
        Some(AddrRange::V6 {
            lo: addr & mask,
            hi: (addr & mask) | !mask,
        })
    }

    /// Whether `a` lies in the range (false when the versions differ).
    pub fn contains(&self, a: Addr) -> bool {
        match (*self, a) {
            (AddrRange::V4 { lo, hi }, Addr::V4(x)) => lo <= x && x <= hi,
            (AddrRange::V6 { lo, hi }, Addr::V6(x)) => lo <= x && x <= hi,
            _ => false,
        }
    }
}

pub(crate) fn prefix_mask_u32(len: u8) -> Option<u32> {
    match len {
        0 => Some(0),
        1..=32 => Some(u32::MAX << (32 - u32::from(len))),
        _ => None,
    }
}

pub(crate) fn prefix_mask_u128(len: u8) -> Option<u128> {
    match len {
        0 => Some(0),
        1..=128 => Some(u128::MAX << (128 - u32::from(len))),
        _ => None,
    }
}

/// An address condition of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddrCond {
    /// Matches when the address lies in any of the ranges. Ranges of the other IP version than
    /// the connection's are ignored, so a condition whose ranges are all of the other version
    /// never matches. Must not be empty; at most [`limits::MAX_ADDR_RANGES`] ranges.
    Ranges(Vec<AddrRange>),
    /// Matches when the address lies in the address set `Policy::sets[index]`.
    Set(u32),
}

/// A port condition: matches when the port lies in any of the inclusive `(lo, hi)` ranges
/// (`lo <= hi`; a single port is `(p, p)`). Not empty; at most [`limits::MAX_PORT_RANGES`].
/// For ICMP, WFP reports the type in the remote/local port fields; the condition compares
/// whatever number the query carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortCond {
    /// Inclusive ranges, any order, overlaps allowed.
    pub ranges: Vec<(u16, u16)>,
}

/// The NT image path of an application, as UTF-16 code units exactly as WFP reports it in
/// FWPS_FIELD_ALE_*_ALE_APP_ID (for example `\device\harddiskvolume3\windows\system32\svchost.exe`),
/// without the trailing NUL. Compared case-insensitively with [`fold::fold_unit`]; 1 to
/// [`limits::MAX_APP_PATH_UNITS`] units.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppPath(pub Vec<u16>);

impl AppPath {
    /// The UTF-16 encoding of `s` (host tools and tests; the kernel gets units from WFP).
    /// Errors with [`ValidationError::OutOfMemory`] only if allocation fails.
    pub fn from_str_units(s: &str) -> Result<AppPath, ValidationError> {
        let mut v = Vec::new();
        for u in s.encode_utf16() {
            v.try_reserve(1).map_err(|_| ValidationError::OutOfMemory)?;
            v.push(u);
        }
        Ok(AppPath(v))
    }

    /// The code units.
    pub fn units(&self) -> &[u16] {
        &self.0
    }
}

/// A named list of address ranges (any mix of IPv4 and IPv6, overlaps allowed) that rules refer
/// to by index ([`AddrCond::Set`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AddressSet {
    /// A label for tools (UTF-8, 1 to [`limits::MAX_SET_NAME_BYTES`] bytes). Names need not be
    /// unique: rules refer to sets by index.
    pub name: String,
    /// The ranges. May be empty (the set then matches nothing).
    pub entries: Vec<AddrRange>,
}

/// One rule. All present conditions must hold for the rule to match; an absent one (`None`)
/// matches anything.
///
/// - `id`: any `u32` chosen by the user, reported in counters and events. Ids need not be
///   unique (one user rule may be written as several); counters are kept per rule index.
/// - `direction`: the query's direction must equal it.
/// - `ip_version`: the query's IP version (that of its remote address) must equal it.
/// - `protocol`: IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...) must equal it.
/// - `remote_addr` / `local_addr`: see [`AddrCond`].
/// - `remote_port` / `local_port`: see [`PortCond`].
/// - `app`: the query's application path must equal it case-insensitively ([`fold`]); a query
///   without an application never matches a rule with an `app` condition.
/// - `loopback`: the query's loopback flag must equal it.
///
/// `name`, `description` and `enabled` do not take part in matching: a rule with
/// `enabled == false` is kept (so tools can show it, and rule indices stay those of the file)
/// but never matches, in the compiled lookup and the reference evaluator alike.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// User-chosen identifier.
    pub id: u32,
    /// What the rule decides.
    pub action: Action,
    /// Ask the driver to log connections this rule decides.
    pub log: bool,
    /// Direction condition.
    pub direction: Option<Direction>,
    /// IP version condition.
    pub ip_version: Option<IpVersion>,
    /// IP protocol condition.
    pub protocol: Option<u8>,
    /// Remote address condition.
    pub remote_addr: Option<AddrCond>,
    /// Local address condition.
    pub local_addr: Option<AddrCond>,
    /// Remote port condition.
    pub remote_port: Option<PortCond>,
    /// Local port condition.
    pub local_port: Option<PortCond>,
    /// Application condition.
    pub app: Option<AppPath>,
    /// Loopback condition.
    pub loopback: Option<bool>,
    /// A label for people (`weirctl policy show`, `stats --rules`, `explain`): UTF-8, at most
    /// [`limits::MAX_RULE_NAME_BYTES`] bytes, no control characters; empty means none.
    pub name: String,
    /// Free text for people: UTF-8, at most [`limits::MAX_RULE_DESCRIPTION_BYTES`] bytes, no
    /// control characters; empty means none.
    pub description: String,
    /// `false`: the rule is kept in the policy but never matches.
    pub enabled: bool,
}

impl Rule {
    /// A rule with no conditions (matches everything) and the given id and action.
    pub fn any(id: u32, action: Action) -> Rule {
        Rule {
            id,
            action,
            log: false,
            direction: None,
            ip_version: None,
            protocol: None,
            remote_addr: None,
            local_addr: None,
            remote_port: None,
            local_port: None,
            app: None,
            loopback: None,
            name: String::new(),
            description: String::new(),
            enabled: true,
        }
    }
}

/// A complete policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Rules in priority order: the first match wins.
    pub rules: Vec<Rule>,
    /// Address sets referred to by [`AddrCond::Set`] index.
    pub sets: Vec<AddressSet>,
    /// Action for outbound connections no rule matches.
    pub default_outbound: Action,
    /// Action for inbound connections no rule matches.
    pub default_inbound: Action,
    /// Log every connection, whatever decides it.
    pub log_all: bool,
}

impl Policy {
    /// The empty policy: no rules, no sets, permit both directions, no logging ("monitor
    /// mode": Weir's behaviour when no policy is loaded).
    pub fn permit_all() -> Policy {
        Policy {
            rules: Vec::new(),
            sets: Vec::new(),
            default_outbound: Action::Permit,
            default_inbound: Action::Permit,
            log_all: false,
        }
    }

    /// Checks everything [`wire::decode`] checks on the model level: limits, range and port
    /// order, set indices, non-empty lists and paths, name lengths. `wire::encode` and
    /// `CompiledPolicy::compile` call it.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::validate(self)
    }

    /// The default action for `direction`.
    pub fn default_for(&self, direction: Direction) -> Action {
        match direction {
            Direction::Outbound => self.default_outbound,
            Direction::Inbound => self.default_inbound,
        }
    }
}

/// One connection to decide, as the ALE classify of the driver sees it.
///
/// The query's IP version is that of `remote`. WFP always reports both addresses of one
/// version; should `local` be of the other version anyway, it is treated as the unspecified
/// address (0 / ::) of the remote's version, by the compiled lookup and the reference alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Query<'a> {
    /// Outbound (connect) or inbound (receive/accept).
    pub direction: Direction,
    /// Remote address (FWPS_FIELD_ALE_*_IP_REMOTE_ADDRESS), host order.
    pub remote: Addr,
    /// Local address (FWPS_FIELD_ALE_*_IP_LOCAL_ADDRESS), host order.
    pub local: Addr,
    /// IP protocol (FWPS_FIELD_ALE_*_IP_PROTOCOL).
    pub protocol: u8,
    /// Remote port (or ICMP type/code as WFP reports it).
    pub remote_port: u16,
    /// Local port.
    pub local_port: u16,
    /// NT image path (FWPS_FIELD_ALE_*_ALE_APP_ID) without the trailing NUL; `None` when WFP
    /// gives none.
    pub app: Option<&'a [u16]>,
    /// Whether the connection is loopback (FWP_CONDITION_FLAG_IS_LOOPBACK).
    pub loopback: bool,
}

impl Query<'_> {
    /// The query's IP version (that of the remote address).
    pub fn ip_version(&self) -> IpVersion {
        self.remote.version()
    }

    /// The local address in the remote's version (see the type's docs).
    pub fn local_normalized(&self) -> Addr {
        match (self.remote, self.local) {
            (Addr::V4(_), Addr::V4(l)) => Addr::V4(l),
            (Addr::V6(_), Addr::V6(l)) => Addr::V6(l),
            (Addr::V4(_), Addr::V6(_)) => Addr::V4(0),
            (Addr::V6(_), Addr::V4(_)) => Addr::V6(0),
        }
    }
}

/// The decision for one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Verdict {
    /// Index in `Policy::rules` of the deciding rule; `None` when the default action decided.
    pub rule_index: Option<u32>,
    /// That rule's id.
    pub rule_id: Option<u32>,
    /// The action to take.
    pub action: Action,
    /// Whether to log: the rule's `log` flag or the policy's `log_all`.
    pub log: bool,
}
