//! Addresses: single addresses, CIDRs, ranges, `@file` lists, and their shortest printed form.
//!
//! What is refused or rewritten, and why:
//! - An IPv4 octet with a leading zero (`010.0.0.1`, in any form): `inet_aton` and the tools
//!   built on it read it as octal (8), others as decimal (10), so the text names two hosts.
//! - An IPv4-mapped IPv6 address or prefix (`::ffff:a.b.c.d`, `::ffff:a.b.c.d/n` with n >= 96,
//!   or a range inside `::ffff:0:0/96`) is the IPv4 host WFP reports for a dual-stack socket at
//!   the IPv4 layers; it becomes that IPv4 address or prefix, with a `mapped_ipv4` warning.
//! - A CIDR with host bits set (`10.1.2.3/8`) covers its network (`10.0.0.0/8`), with a
//!   `host_bits` warning naming it.

use super::diagnostic::{Diagnostic, Diagnostics};
use super::fields::as_str;
use super::raw::{elements, ListField};
use super::source;
use super::Parser;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use weir_policy::{AddrCond, AddrRange, IpVersion};

/// A warning about an address entry that was accepted: its stable code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressNote {
    /// `host_bits` or `mapped_ipv4`.
    pub code: &'static str,
    /// What the entry was taken to mean.
    pub message: String,
}

/// The IPv4 text of `s` (an IPv4 address, or the dotted tail of an IPv6 one) with a leading
/// zero in an octet, as an error; `None` when there is none.
fn leading_zero(s: &str) -> Option<String> {
    let tail = s.rsplit(':').next().unwrap_or(s);
    let octets: Vec<&str> = tail.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    let bad = octets
        .iter()
        .find(|o| o.len() > 1 && o.starts_with('0') && o.bytes().all(|b| b.is_ascii_digit()))?;
    let decimal = bad.trim_start_matches('0');
    let decimal = if decimal.is_empty() { "0" } else { decimal };
    let octal =
        u32::from_str_radix(bad, 8).map_or_else(|_| "not octal".to_string(), |v| v.to_string());
    Some(format!(
        "`{s}` has a leading zero in the octet `{bad}`: inet_aton and tools built on it read it as \
         octal ({octal}), others as decimal ({decimal}); write it without leading zeros"
    ))
}

fn parse_ip(s: &str, what: impl FnOnce() -> String) -> Result<IpAddr, String> {
    if let Some(e) = leading_zero(s) {
        return Err(e);
    }
    s.parse().map_err(|_| what())
}

const MAPPED_LO: u128 = 0xffff_0000_0000;
const MAPPED_HI: u128 = 0xffff_ffff_ffff;

fn bits(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(v) => (false, u128::from(v.to_bits())),
        IpAddr::V6(v) => (true, v.to_bits()),
    }
}

fn v4(x: u128) -> u32 {
    // Callers pass values of at most 32 bits (IPv4, or the low bits of a mapped address).
    u32::try_from(x & 0xffff_ffff).unwrap_or(u32::MAX)
}

/// The range `lo..=hi`; an IPv6 range inside `::ffff:0:0/96` becomes the IPv4 range it maps,
/// with a note.
fn range_of(s: &str, v6: bool, lo: u128, hi: u128) -> (AddrRange, Option<AddressNote>) {
    if !v6 {
        return (
            AddrRange::V4 {
                lo: v4(lo),
                hi: v4(hi),
            },
            None,
        );
    }
    if (MAPPED_LO..=MAPPED_HI).contains(&lo) && (MAPPED_LO..=MAPPED_HI).contains(&hi) {
        let r = AddrRange::V4 {
            lo: v4(lo),
            hi: v4(hi),
        };
        let message = format!(
            "`{s}` is an IPv4-mapped IPv6 address: WFP reports dual-stack connections to it at \
             the IPv4 layers, so it is matched as the IPv4 {} {}",
            if lo == hi { "host" } else { "range" },
            format_range(&r)
        );
        return (
            r,
            Some(AddressNote {
                code: "mapped_ipv4",
                message,
            }),
        );
    }
    (AddrRange::V6 { lo, hi }, None)
}

/// Parses one address entry: `a.b.c.d`, `a.b.c.d/n`, `a.b.c.d-e.f.g.h` or the IPv6 forms.
/// CIDRs with host bits set cover their whole network (`10.1.2.3/8` = `10.0.0.0/8`).
///
/// # Errors
/// A message naming the text at fault.
pub fn parse_address(s: &str) -> Result<AddrRange, String> {
    parse_address_entry(s).map(|(r, _)| r)
}

/// [`parse_address`], with the note to show the user when the entry means something other
/// than what it literally says (host bits set, IPv4-mapped IPv6).
///
/// # Errors
/// A message naming the text at fault.
pub fn parse_address_entry(s: &str) -> Result<(AddrRange, Option<AddressNote>), String> {
    let s = s.trim();
    if let Some((a, len)) = s.split_once('/') {
        let bad = || format!("`{s}` is not a valid CIDR (a.b.c.d/0-32 or IPv6/0-128)");
        let addr = parse_ip(a.trim(), bad)?;
        let len = len.trim();
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
            return Err(bad());
        }
        let len: u32 = len.parse().map_err(|_| bad())?;
        let (v6, x) = bits(addr);
        let width = if v6 { 128 } else { 32 };
        if len > width {
            return Err(bad());
        }
        let host = if len == 0 {
            u128::MAX
        } else {
            u128::MAX >> len
        } >> (128 - width);
        let (lo, hi) = (x & !host, (x & !host) | host);
        let (range, mapped) = range_of(s, v6, lo, hi);
        if x & host != 0 {
            let network = format_range(&range);
            let message = format!(
                "`{s}` has host bits set: it covers the whole network {network}; write {network} \
                 (or the single address without /{len})"
            );
            return Ok((
                range,
                Some(AddressNote {
                    code: "host_bits",
                    message,
                }),
            ));
        }
        return Ok((range, mapped));
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (a.trim(), b.trim());
        let lo = parse_ip(a, || format!("`{a}` in range `{s}` is not an IP address"))?;
        let hi = parse_ip(b, || format!("`{b}` in range `{s}` is not an IP address"))?;
        let ((v6a, x), (v6b, y)) = (bits(lo), bits(hi));
        if v6a != v6b {
            return Err(format!("address range {s} mixes IPv4 and IPv6"));
        }
        if x > y {
            return Err(format!("address range {s} is reversed"));
        }
        return Ok(range_of(s, v6a, x, y));
    }
    let a = parse_ip(s, || {
        format!("`{s}` is not an IP address, CIDR (addr/len) or range (first-last)")
    })?;
    let (v6, x) = bits(a);
    Ok(range_of(s, v6, x, x))
}

/// An address list as read: its entries and the warnings about them (with positions).
#[derive(Clone, Debug, Default)]
pub struct AddressList {
    /// The entries, in file order.
    pub entries: Vec<AddrRange>,
    /// Warnings (host bits, mapped IPv4), at most `MAX_DIAGNOSTICS`, with the rest counted.
    pub warnings: Diagnostics,
}

/// Reads an address list file: one address, CIDR or range per line; `#` starts a comment.
/// The file may be UTF-8 (with or without BOM) or UTF-16 with BOM, with LF or CRLF line ends.
///
/// # Errors
/// Every bad line (up to the cap), naming the list file as `display` and its line; a file
/// that cannot be read names `path`, where it was looked for.
pub fn read_address_list(path: &Path, display: &str) -> Result<AddressList, Diagnostics> {
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostics::one(Diagnostic::file_error(
            display,
            format!("cannot read list file (looked for {}): {e}", path.display()),
        ))
    })?;
    let text = source::decode(display, &bytes).map_err(Diagnostics::one)?;
    parse_address_list(&text, display)
}

/// [`read_address_list`] on text already read.
///
/// # Errors
/// As [`read_address_list`].
pub fn parse_address_list(text: &str, display: &str) -> Result<AddressList, Diagnostics> {
    let mut out = AddressList {
        entries: Vec::with_capacity(text.len() / 12),
        warnings: Diagnostics::default(),
    };
    let mut errors = Diagnostics::default();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("");
        let entry = content.trim();
        if entry.is_empty() {
            continue;
        }
        let at = |message: String| {
            let column = line
                .find(entry)
                .map_or(1, |b| line.get(..b).map_or(0, |s| s.chars().count()) + 1);
            let mut d = Diagnostic::error(display, i + 1, column, message);
            d.end_column = column + entry.chars().count();
            d
        };
        match parse_address_entry(entry) {
            Ok((r, note)) => {
                out.entries.push(r);
                if let Some(n) = note {
                    out.warnings.push(at(n.message).warning(n.code));
                }
            }
            Err(message) => errors.push(at(message)),
        }
    }
    if errors.list.is_empty() {
        Ok(out)
    } else {
        Err(errors)
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
                // After a broken [sets] table the set may exist: say nothing more.
                None if p.sets_broken => {}
                None => p.err(
                    span,
                    format!("no address set named `{name}` (define it under [sets])"),
                ),
            }
            continue;
        }
        match parse_address_entry(s) {
            Ok((r, note)) => {
                if let Some(n) = note {
                    p.warn(span, n.code, n.message);
                }
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
