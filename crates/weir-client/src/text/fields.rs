//! Scalar fields: action, protocol, direction, IP version, ports, booleans.

use super::raw::{elements, ListField, Scalar};
use super::Parser;
use weir_policy::{Action, Direction, IpVersion, PortCond};

pub(super) fn parse_port_number(s: &str) -> Result<u16, String> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a port number"))?;
    u16::try_from(n).map_err(|_| format!("port {n} is out of range (0 to 65535)"))
}

/// Parses a port entry: `80`, `"80"` or `"8000-8080"`.
pub(super) fn parse_port(v: &Scalar) -> Result<(u16, u16), String> {
    match v {
        Scalar::Int(n) => {
            let p =
                u16::try_from(*n).map_err(|_| format!("port {n} is out of range (0 to 65535)"))?;
            Ok((p, p))
        }
        Scalar::Str(s) => {
            if let Some((a, b)) = s.split_once('-') {
                let (lo, hi) = (parse_port_number(a)?, parse_port_number(b)?);
                if lo > hi {
                    return Err(format!("port range {lo}-{hi} is reversed"));
                }
                Ok((lo, hi))
            } else {
                let p = parse_port_number(s)?;
                Ok((p, p))
            }
        }
        other => Err(format!(
            "a port is a number or a \"first-last\" string, not {}",
            other.kind()
        )),
    }
}

pub(super) fn as_str<'s>(v: &'s Scalar, what: &str) -> Result<&'s str, String> {
    match v {
        Scalar::Str(s) => Ok(s),
        other => Err(format!("{what} must be a string, not {}", other.kind())),
    }
}

/// A rule's `name` or `description`: a non-empty string of at most `max` UTF-8 bytes without
/// control characters (what `weir_policy` keeps in the blob; `policy show`, `stats` and
/// terminals print it).
pub(super) fn rule_text(v: &Scalar, what: &str, max: usize) -> Result<String, String> {
    let s = as_str(v, what)?;
    if s.is_empty() {
        return Err(format!("{what} is empty: omit `{what}` for a rule without one"));
    }
    if s.len() > max {
        return Err(format!(
            "{what} is {} bytes long (UTF-8); the limit is {max}",
            s.len()
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{what} holds the control character U+{:04X}: write it on one line, without tabs or escapes",
            u32::from(c)
        ));
    }
    Ok(s.to_string())
}

pub(super) fn as_bool(v: &Scalar, what: &str) -> Result<bool, String> {
    match v {
        Scalar::Bool(b) => Ok(*b),
        other => Err(format!(
            "{what} must be true or false, not {}",
            other.kind()
        )),
    }
}

pub(super) fn parse_action(v: &Scalar, what: &str) -> Result<Action, String> {
    let s = as_str(v, what)?;
    match Action::from_name(s) {
        Some(a) => Ok(a),
        None => Err(format!(
            "{what} must be \"permit\" or \"block\", not \"{s}\""
        )),
    }
}

pub(super) fn parse_protocol(v: &Scalar) -> Result<u8, String> {
    match v {
        Scalar::Int(n) => {
            u8::try_from(*n).map_err(|_| format!("protocol {n} is out of range (0 to 255)"))
        }
        Scalar::Str(s) => match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(6),
            "udp" => Ok(17),
            "icmp" => Ok(1),
            "icmpv6" => Ok(58),
            _ => Err(format!(
                "protocol must be tcp, udp, icmp, icmpv6 or a number 0-255, not \"{s}\""
            )),
        },
        Scalar::Bool(_) => Err("protocol must be a name or a number, not a boolean".into()),
    }
}

pub(super) fn parse_ip_version(v: &Scalar) -> Result<IpVersion, String> {
    match v {
        Scalar::Int(4) => Ok(IpVersion::V4),
        Scalar::Int(6) => Ok(IpVersion::V6),
        Scalar::Str(s) if s == "v4" || s == "ipv4" => Ok(IpVersion::V4),
        Scalar::Str(s) if s == "v6" || s == "ipv6" => Ok(IpVersion::V6),
        _ => Err("ip_version must be \"v4\" or \"v6\"".into()),
    }
}

pub(super) fn parse_direction(v: &Scalar) -> Result<Direction, String> {
    let s = as_str(v, "direction")?;
    match Direction::from_name(s) {
        Some(d) => Ok(d),
        None => Err(format!(
            "direction must be \"outbound\" or \"inbound\", not \"{s}\""
        )),
    }
}

pub(super) fn port_condition(p: &mut Parser<'_>, field: &ListField) -> Option<PortCond> {
    let field = field.as_ref()?;
    let items = elements(field);
    if items.is_empty() {
        p.err(
            &field.span(),
            "empty port list (omit the field to match any port)",
        );
        return None;
    }
    let mut ranges = Vec::new();
    for (span, v) in items {
        match parse_port(v) {
            Ok(r) => ranges.push(r),
            Err(e) => p.err(&span, e),
        }
    }
    (!ranges.is_empty()).then_some(PortCond { ranges })
}

/// ICMP (protocol 1) type names, as `ping` and firewall tools spell them.
const ICMP_TYPES: &[(&str, u16)] = &[
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
];

/// ICMPv6 (protocol 58) type names.
const ICMPV6_TYPES: &[(&str, u16)] = &[
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("router-solicitation", 133),
    ("router-advertisement", 134),
    ("neighbor-solicitation", 135),
    ("neighbor-advertisement", 136),
    ("redirect", 137),
];

/// The type names of `protocol` (1 or 58).
pub(super) fn icmp_names(protocol: u8) -> &'static [(&'static str, u16)] {
    if protocol == 58 {
        ICMPV6_TYPES
    } else {
        ICMP_TYPES
    }
}

/// `icmp_type` / `icmp_code` of a rule: a number 0-255, a `"first-last"` range, or (types) a
/// name; WFP carries them in the local and remote port fields at the ALE layers
/// (FWPM_CONDITION_ICMP_TYPE is FWPM_CONDITION_IP_LOCAL_PORT, FWPM_CONDITION_ICMP_CODE is
/// FWPM_CONDITION_IP_REMOTE_PORT).
pub(super) fn icmp_condition(
    p: &mut Parser<'_>,
    field: &ListField,
    what: &str,
    protocol: Option<u8>,
    port_field: &ListField,
    port_name: &str,
) -> Option<PortCond> {
    let field = field.as_ref()?;
    let proto = match protocol {
        Some(x @ (1 | 58)) => x,
        _ => {
            p.err(
                &field.span(),
                format!("{what} needs protocol = \"icmp\" or \"icmpv6\" in the same rule"),
            );
            return None;
        }
    };
    if port_field.is_some() {
        p.err(
            &field.span(),
            format!("{what} and {port_name} are the same WFP field for ICMP; use only {what}"),
        );
        return None;
    }
    let items = elements(field);
    if items.is_empty() {
        p.err(
            &field.span(),
            format!("empty {what} list (omit the field to match any)"),
        );
        return None;
    }
    let mut ranges = Vec::new();
    for (span, v) in items {
        let named = match v {
            Scalar::Str(s) if what == "icmp_type" && s.chars().any(|c| c.is_ascii_alphabetic()) => {
                let found = icmp_names(proto)
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(s));
                match found {
                    Some(&(_, t)) => Some(Ok((t, t))),
                    None => Some(Err(format!(
                        "unknown {} type `{s}` (known: {}; or a number 0-255)",
                        if proto == 58 { "ICMPv6" } else { "ICMP" },
                        icmp_names(proto)
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                }
            }
            _ => None,
        };
        let r = named.unwrap_or_else(|| {
            parse_port(v).and_then(|(lo, hi)| {
                if hi > 255 {
                    Err(format!("{what} {hi} is out of range (0 to 255)"))
                } else {
                    Ok((lo, hi))
                }
            })
        });
        match r {
            Ok(r) => ranges.push(r),
            Err(e) => p.err(&span, e),
        }
    }
    (!ranges.is_empty()).then_some(PortCond { ranges })
}
