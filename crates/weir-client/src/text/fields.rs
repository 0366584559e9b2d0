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
