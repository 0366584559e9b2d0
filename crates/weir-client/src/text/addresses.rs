//! Addresses: single addresses, CIDRs, ranges, `@file` lists, and their shortest printed form.

use super::diagnostic::{Diagnostic, Diagnostics, MAX_DIAGNOSTICS};
use super::fields::as_str;
use super::raw::{elements, ListField};
use super::Parser;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use weir_policy::{AddrCond, AddrRange, IpVersion};

pub(super) fn addr_bits(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(v) => (false, u128::from(v.to_bits())),
        IpAddr::V6(v) => (true, v.to_bits()),
    }
}

/// Parses one address entry: `a.b.c.d`, `a.b.c.d/n`, `a.b.c.d-e.f.g.h` or the IPv6 forms.
/// CIDRs with host bits set are accepted and cover their whole network (`10.1.2.3/8` =
/// `10.0.0.0/8`), as blocklists commonly write them.
pub fn parse_address(s: &str) -> Result<AddrRange, String> {
    let s = s.trim();
    if s.contains('/') {
        let net: ipnet::IpNet = s
            .parse()
            .map_err(|_| format!("`{s}` is not a valid CIDR (a.b.c.d/0-32 or IPv6/0-128)"))?;
        return Ok(match net {
            ipnet::IpNet::V4(n) => AddrRange::V4 {
                lo: n.network().to_bits(),
                hi: n.broadcast().to_bits(),
            },
            ipnet::IpNet::V6(n) => AddrRange::V6 {
                lo: n.network().to_bits(),
                hi: n.broadcast().to_bits(),
            },
        });
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (a.trim(), b.trim());
        let lo: IpAddr = a
            .parse()
            .map_err(|_| format!("`{a}` in range `{s}` is not an IP address"))?;
        let hi: IpAddr = b
            .parse()
            .map_err(|_| format!("`{b}` in range `{s}` is not an IP address"))?;
        let ((v6a, x), (v6b, y)) = (addr_bits(lo), addr_bits(hi));
        if v6a != v6b {
            return Err(format!("address range {s} mixes IPv4 and IPv6"));
        }
        if x > y {
            return Err(format!("address range {s} is reversed"));
        }
        return Ok(range_of(v6a, x, y));
    }
    let a: IpAddr = s.parse().map_err(|_| {
        format!("`{s}` is not an IP address, CIDR (addr/len) or range (first-last)")
    })?;
    let (v6, x) = addr_bits(a);
    Ok(range_of(v6, x, x))
}

pub(super) fn range_of(v6: bool, lo: u128, hi: u128) -> AddrRange {
    if v6 {
        AddrRange::V6 { lo, hi }
    } else {
        // Both came from u32 values.
        AddrRange::V4 {
            lo: u32::try_from(lo).unwrap_or(u32::MAX),
            hi: u32::try_from(hi).unwrap_or(u32::MAX),
        }
    }
}

/// Reads an address list file: one address, CIDR or range per line; `#` starts a comment.
/// Errors name the list file and its line.
pub fn read_address_list(path: &Path, display: &str) -> Result<Vec<AddrRange>, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: display.to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse_address_list(&text, display)
}

/// [`read_address_list`] on text already read.
pub fn parse_address_list(text: &str, display: &str) -> Result<Vec<AddrRange>, Diagnostics> {
    let mut out = Vec::with_capacity(text.len() / 12);
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("");
        let entry = content.trim();
        if entry.is_empty() {
            continue;
        }
        match parse_address(entry) {
            Ok(r) => out.push(r),
            Err(message) => {
                let column = line
                    .find(entry)
                    .map_or(1, |b| line.get(..b).map_or(0, |s| s.chars().count()) + 1);
                if errors.len() < MAX_DIAGNOSTICS {
                    errors.push(Diagnostic {
                        file: display.to_string(),
                        line: i + 1,
                        column,
                        message,
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Diagnostics(errors))
    }
}

pub(super) fn address_condition(
    p: &mut Parser<'_>,
    field: &ListField,
    what: &str,
    sets: &HashMap<String, u32>,
    version: Option<IpVersion>,
) -> Option<AddrCond> {
    let field = field.as_ref()?;
    let items = elements(field);
    let mut ranges = Vec::new();
    let mut set_ref = None;
    for (span, v) in &items {
        let s = match as_str(v, "an address") {
            Ok(s) => s,
            Err(e) => {
                p.err(span, e);
                continue;
            }
        };
        if let Some(name) = s.strip_prefix('@') {
            if items.len() != 1 {
                p.err(span, format!("a set reference must be the only value of `{what}` (put the other addresses into the set)"));
                continue;
            }
            match sets.get(name) {
                Some(i) => set_ref = Some(*i),
                None => p.err(
                    span,
                    format!("no address set named `{name}` (define it under [sets])"),
                ),
            }
            continue;
        }
        match parse_address(s) {
            Ok(r) => {
                if let Some(v) = version {
                    if r.version() != v {
                        let (has, says) = match v {
                            IpVersion::V4 => ("IPv6", "v4"),
                            IpVersion::V6 => ("IPv4", "v6"),
                        };
                        p.err(span, format!("`{s}` is {has} but the rule says ip_version = \"{says}\": it could never match"));
                        continue;
                    }
                }
                ranges.push(r);
            }
            Err(e) => p.err(span, e),
        }
    }
    if let Some(i) = set_ref {
        return Some(AddrCond::Set(i));
    }
    if items.is_empty() {
        p.err(
            &field.span(),
            format!("`{what}` is an empty list (omit it to match any address)"),
        );
        return None;
    }
    (!ranges.is_empty()).then_some(AddrCond::Ranges(ranges))
}

/// An address range as the shortest of `addr`, `addr/len` or `first-last`.
pub fn format_range(r: &AddrRange) -> String {
    fn prefix(lo: u128, hi: u128, bits: u32) -> Option<u32> {
        let span = lo ^ hi;
        let ones = span.count_ones();
        // `span` must be a run of low ones and `lo` aligned to it.
        (span.trailing_ones() == ones && lo & span == 0 && hi == lo | span).then(|| bits - ones)
    }
    match *r {
        AddrRange::V4 { lo, hi } => {
            let (a, b) = (
                std::net::Ipv4Addr::from_bits(lo),
                std::net::Ipv4Addr::from_bits(hi),
            );
            if lo == hi {
                a.to_string()
            } else if let Some(n) = prefix(lo.into(), hi.into(), 32) {
                format!("{a}/{n}")
            } else {
                format!("{a}-{b}")
            }
        }
        AddrRange::V6 { lo, hi } => {
            let (a, b) = (
                std::net::Ipv6Addr::from_bits(lo),
                std::net::Ipv6Addr::from_bits(hi),
            );
            if lo == hi {
                a.to_string()
            } else if let Some(n) = prefix(lo, hi, 128) {
                format!("{a}/{n}")
            } else {
                format!("{a}-{b}")
            }
        }
    }
}
