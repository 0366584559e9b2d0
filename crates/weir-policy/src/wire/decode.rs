//! The total decoder: pass 1 checks the whole blob without allocating, pass 2 builds the
//! [`Policy`] with fallible allocation.

use alloc::string::String;
use alloc::vec::Vec;

use super::*;
use crate::validate::{self, Totals};
use crate::{
    Action, AddrCond, AddrRange, AddressSet, AppPath, Direction, IpVersion, Policy, PortCond, Rule,
    ValidationError,
};

fn rd_u8(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

fn rd_u16(b: &[u8], at: usize) -> u16 {
    match b
        .get(at..at.wrapping_add(2))
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
    {
        Some(a) => u16::from_le_bytes(a),
        None => 0,
    }
}

fn rd_u32(b: &[u8], at: usize) -> u32 {
    match b
        .get(at..at.wrapping_add(4))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
    {
        Some(a) => u32::from_le_bytes(a),
        None => 0,
    }
}

fn rd_u128(b: &[u8], at: usize) -> u128 {
    match b
        .get(at..at.wrapping_add(16))
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
    {
        Some(a) => u128::from_le_bytes(a),
        None => 0,
    }
}

/// The validated header: the section slices (the seventh empty in version 1) and the counts.
struct Layout<'a> {
    format: Format,
    rule_count: usize,
    set_count: usize,
    default_outbound: Action,
    default_inbound: Action,
    log_all: bool,
    sections: [&'a [u8]; 7],
}

fn parse_header(blob: &[u8]) -> Result<Layout<'_>, DecodeError> {
    if blob.len() > MAX_BLOB_BYTES {
        return Err(DecodeError::TooLarge);
    }
    if blob.len() < HEADER_LEN_V1 {
        return Err(DecodeError::TooShort);
    }
    if blob.get(0..8) != Some(&MAGIC[..]) {
        return Err(DecodeError::BadMagic);
    }
    let version = rd_u16(blob, 8);
    let format = format_of(version).ok_or(DecodeError::UnsupportedVersion { version })?;
    if blob.len() < format.header_len {
        return Err(DecodeError::TooShort);
    }
    if usize::from(rd_u16(blob, 10)) != format.header_len {
        return Err(DecodeError::BadHeaderLength);
    }
    if rd_u32(blob, 12) as usize != blob.len() {
        return Err(DecodeError::TotalLengthMismatch);
    }
    let default_outbound = action_from(rd_u8(blob, 16)).ok_or(DecodeError::BadDefaultAction)?;
    let default_inbound = action_from(rd_u8(blob, 17)).ok_or(DecodeError::BadDefaultAction)?;
    let flags = rd_u8(blob, 18);
    if flags & !1 != 0 || rd_u8(blob, 19) != 0 || rd_u32(blob, 28) != 0 {
        return Err(DecodeError::ReservedNotZero);
    }
    let rule_count = rd_u32(blob, 20) as usize;
    let set_count = rd_u32(blob, 24) as usize;
    if rule_count > MAX_RULES {
        return Err(DecodeError::Invalid(ValidationError::TooManyRules));
    }
    if set_count > MAX_SETS {
        return Err(DecodeError::Invalid(ValidationError::TooManySets));
    }
    let mut sections: [&[u8]; 7] = [&[]; 7];
    let mut expect = format.header_len;
    for (i, section) in SECTIONS.iter().take(format.sections).enumerate() {
        let at = 32 + 8 * i;
        let off = rd_u32(blob, at) as usize;
        let len = rd_u32(blob, at + 4) as usize;
        if off != expect {
            return Err(DecodeError::SectionLayout { section: *section });
        }
        let end = off
            .checked_add(len)
            .ok_or(DecodeError::SectionLayout { section: *section })?;
        let s = blob
            .get(off..end)
            .ok_or(DecodeError::SectionLayout { section: *section })?;
        if let Some(slot) = sections.get_mut(i) {
            *slot = s;
        }
        expect = end;
    }
    if expect != blob.len() {
        let last = SECTIONS.get(format.sections - 1).copied().unwrap_or(Section::Names);
        return Err(DecodeError::SectionLayout { section: last });
    }
    let [rules, sets, addrs, ports, apps, _names, _text] = sections;
    if rules.len() != rule_count.saturating_mul(format.rule_record_len) {
        return Err(DecodeError::SectionLength {
            section: Section::Rules,
        });
    }
    if sets.len() != set_count.saturating_mul(SET_RECORD_LEN) {
        return Err(DecodeError::SectionLength {
            section: Section::Sets,
        });
    }
    let _ = addrs;
    if ports.len() % PORT_RECORD_LEN != 0 {
        return Err(DecodeError::SectionLength {
            section: Section::Ports,
        });
    }
    if apps.len() % 2 != 0 {
        return Err(DecodeError::SectionLength {
            section: Section::Apps,
        });
    }
    Ok(Layout {
        format,
        rule_count,
        set_count,
        default_outbound,
        default_inbound,
        log_all: flags & 1 != 0,
        sections,
    })
}

/// Iterates `count` address-range records starting at byte `start` of the address section,
/// checking tags, bounds and range order; `end()` is the byte after the last record.
struct AddrIter<'a> {
    sec: &'a [u8],
    pos: usize,
    left: u32,
}

impl AddrIter<'_> {
    fn next_range(&mut self) -> Result<Option<AddrRange>, DecodeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let oob = DecodeError::ListOutOfBounds {
            section: Section::Addrs,
        };
        let tag = *self.sec.get(self.pos).ok_or(oob)?;
        let (len, r) = match tag {
            TAG_V4 => {
                let b = self
                    .sec
                    .get(self.pos + 1..self.pos + ADDR_V4_RECORD_LEN)
                    .ok_or(oob)?;
                (
                    ADDR_V4_RECORD_LEN,
                    AddrRange::V4 {
                        lo: rd_u32(b, 0),
                        hi: rd_u32(b, 4),
                    },
                )
            }
            TAG_V6 => {
                let b = self
                    .sec
                    .get(self.pos + 1..self.pos + ADDR_V6_RECORD_LEN)
                    .ok_or(oob)?;
                (
                    ADDR_V6_RECORD_LEN,
                    AddrRange::V6 {
                        lo: rd_u128(b, 0),
                        hi: rd_u128(b, 16),
                    },
                )
            }
            _ => return Err(DecodeError::BadAddrTag),
        };
        self.pos += len;
        Ok(Some(r))
    }
}

/// One rule record, decoded to scalars and validated list positions.
struct RuleRec {
    id: u32,
    action: Action,
    log: bool,
    direction: Option<Direction>,
    ip_version: Option<IpVersion>,
    protocol: Option<u8>,
    loopback: Option<bool>,
    /// (kind, a, byte offset) for remote and local.
    addr: [(u8, u32, u32); 2],
    /// (count, first) for remote and local ports, `None` if absent.
    ports: [Option<(u32, u32)>; 2],
    /// (len, first) of the app path.
    app: Option<(u32, u32)>,
    /// Version 2: the rule is disabled.
    disabled: bool,
    /// Version 2: (name length, description length, byte offset in the rule-text section),
    /// `None` when both lengths are 0.
    text: Option<(usize, usize, usize)>,
}

/// Cursors through the list-carrying sections, for the canonical-offset checks.
#[derive(Default, Clone, Copy)]
struct Cursors {
    addr: usize,
    port: usize,
    app: usize,
    name: usize,
    text: usize,
}

fn parse_rule(rec: &[u8], index: u32) -> Result<RuleRec, DecodeError> {
    let bad = DecodeError::BadField { rule: index };
    let absent = DecodeError::AbsentNotZero { rule: index };
    let action = action_from(rd_u8(rec, 4)).ok_or(bad)?;
    let log = bool_from(rd_u8(rec, 5)).ok_or(bad)?;
    let direction = match rd_u8(rec, 6) {
        0 => None,
        1 => Some(Direction::Outbound),
        2 => Some(Direction::Inbound),
        _ => return Err(bad),
    };
    let ip_version = match rd_u8(rec, 7) {
        0 => None,
        1 => Some(IpVersion::V4),
        2 => Some(IpVersion::V6),
        _ => return Err(bad),
    };
    let protocol = match (rd_u8(rec, 8), rd_u8(rec, 9)) {
        (0, 0) => None,
        (0, _) => return Err(absent),
        (1, p) => Some(p),
        _ => return Err(bad),
    };
    let loopback = match rd_u8(rec, 10) {
        0 => None,
        1 => Some(false),
        2 => Some(true),
        _ => return Err(bad),
    };
    let mut addr = [(0u8, 0u32, 0u32); 2];
    for (i, (kind_at, a_at, off_at)) in [(11usize, 16usize, 36usize), (12, 20, 40)]
        .into_iter()
        .enumerate()
    {
        let kind = rd_u8(rec, kind_at);
        let a = rd_u32(rec, a_at);
        let off = rd_u32(rec, off_at);
        match kind {
            ADDR_ANY if a == 0 && off == 0 => {}
            ADDR_ANY => return Err(absent),
            ADDR_RANGES => {}
            ADDR_SET if off == 0 => {}
            ADDR_SET => return Err(absent),
            _ => return Err(bad),
        }
        if let Some(slot) = addr.get_mut(i) {
            *slot = (kind, a, off);
        }
    }
    let mut ports = [None; 2];
    for (i, (present_at, count_at, first_at)) in [(13usize, 24usize, 44usize), (14, 28, 48)]
        .into_iter()
        .enumerate()
    {
        let count = rd_u32(rec, count_at);
        let first = rd_u32(rec, first_at);
        let v = match rd_u8(rec, present_at) {
            0 if count == 0 && first == 0 => None,
            0 => return Err(absent),
            1 => Some((count, first)),
            _ => return Err(bad),
        };
        if let Some(slot) = ports.get_mut(i) {
            *slot = v;
        }
    }
    let app_len = rd_u32(rec, 32);
    let app_first = rd_u32(rec, 52);
    let app = match rd_u8(rec, 15) {
        0 if app_len == 0 && app_first == 0 => None,
        0 => return Err(absent),
        1 => Some((app_len, app_first)),
        _ => return Err(bad),
    };
    // Version-1 records end before these fields, which then read as 0: enabled, no text.
    let disabled = bool_from(rd_u8(rec, RULE_DISABLED_AT)).ok_or(bad)?;
    let name_len = usize::from(rd_u8(rec, RULE_NAME_LEN_AT));
    let description_len = usize::from(rd_u16(rec, RULE_DESCRIPTION_LEN_AT));
    let text_at = rd_u32(rec, RULE_TEXT_AT) as usize;
    let text = match (name_len + description_len, text_at) {
        (0, 0) => None,
        (0, _) => return Err(absent),
        _ => Some((name_len, description_len, text_at)),
    };
    Ok(RuleRec {
        id: rd_u32(rec, 0),
        action,
        log,
        direction,
        ip_version,
        protocol,
        loopback,
        addr,
        ports,
        app,
        disabled,
        text,
    })
}

/// Pass-1 and pass-2 shared walk over one rule's lists. With `out == None` it only checks;
/// with `Some`, it also builds the rule (fallible allocation).
fn walk_rule(
    rec: &RuleRec,
    index: u32,
    l: &Layout<'_>,
    cur: &mut Cursors,
    totals: &mut Totals,
    build: bool,
) -> Result<Option<Rule>, DecodeError> {
    let [_, _, addrs, ports, apps, _, texts] = l.sections;
    let mut conds: [Option<AddrCond>; 2] = [None, None];
    for (i, (kind, a, off)) in rec.addr.iter().copied().enumerate() {
        let cond = match kind {
            ADDR_RANGES => {
                if off as usize != cur.addr {
                    return Err(DecodeError::NonCanonicalOffset {
                        section: Section::Addrs,
                    });
                }
                if a == 0 {
                    return Err(ValidationError::EmptyAddrRanges { rule: index }.into());
                }
                if a as usize > MAX_ADDR_RANGES {
                    return Err(ValidationError::TooManyAddrRanges { rule: index }.into());
                }
                totals.rule_addr_ranges = totals.rule_addr_ranges.saturating_add(a as usize);
                if totals.rule_addr_ranges > MAX_RULE_ADDR_RANGES_TOTAL {
                    return Err(ValidationError::TooManyRuleAddrRanges.into());
                }
                let mut it = AddrIter {
                    sec: addrs,
                    pos: cur.addr,
                    left: a,
                };
                let mut v: Vec<AddrRange> = Vec::new();
                if build {
                    v.try_reserve_exact(a as usize)
                        .map_err(|_| DecodeError::OutOfMemory)?;
                }
                while let Some(r) = it.next_range()? {
                    if !validate::range_ordered(&r) {
                        return Err(ValidationError::AddrRangeOrder { rule: index }.into());
                    }
                    if build {
                        v.push(r);
                    }
                }
                cur.addr = it.pos;
                Some(AddrCond::Ranges(v))
            }
            ADDR_SET => {
                if a as usize >= l.set_count {
                    return Err(ValidationError::SetIndex {
                        rule: index,
                        set: a,
                    }
                    .into());
                }
                Some(AddrCond::Set(a))
            }
            _ => None,
        };
        if let Some(slot) = conds.get_mut(i) {
            *slot = cond;
        }
    }
    let mut pconds: [Option<PortCond>; 2] = [None, None];
    for (i, p) in rec.ports.iter().enumerate() {
        let Some((count, first)) = *p else { continue };
        if first as usize != cur.port {
            return Err(DecodeError::NonCanonicalOffset {
                section: Section::Ports,
            });
        }
        if count == 0 {
            return Err(ValidationError::EmptyPortRanges { rule: index }.into());
        }
        if count as usize > MAX_PORT_RANGES {
            return Err(ValidationError::TooManyPortRanges { rule: index }.into());
        }
        let start = cur.port * PORT_RECORD_LEN;
        let end = start + count as usize * PORT_RECORD_LEN;
        let bytes = ports.get(start..end).ok_or(DecodeError::ListOutOfBounds {
            section: Section::Ports,
        })?;
        let mut v: Vec<(u16, u16)> = Vec::new();
        if build {
            v.try_reserve_exact(count as usize)
                .map_err(|_| DecodeError::OutOfMemory)?;
        }
        for c in bytes.chunks_exact(PORT_RECORD_LEN) {
            let (lo, hi) = (rd_u16(c, 0), rd_u16(c, 2));
            if lo > hi {
                return Err(ValidationError::PortRangeOrder { rule: index }.into());
            }
            if build {
                v.push((lo, hi));
            }
        }
        cur.port += count as usize;
        if let Some(slot) = pconds.get_mut(i) {
            *slot = Some(PortCond { ranges: v });
        }
    }
    let mut app = None;
    if let Some((len, first)) = rec.app {
        if first as usize != cur.app {
            return Err(DecodeError::NonCanonicalOffset {
                section: Section::Apps,
            });
        }
        validate::check_app_len(len as usize, index, totals)?;
        let start = cur.app * 2;
        let end = start + len as usize * 2;
        let bytes = apps.get(start..end).ok_or(DecodeError::ListOutOfBounds {
            section: Section::Apps,
        })?;
        if build {
            let mut v: Vec<u16> = Vec::new();
            v.try_reserve_exact(len as usize)
                .map_err(|_| DecodeError::OutOfMemory)?;
            v.extend(bytes.chunks_exact(2).map(|c| rd_u16(c, 0)));
            app = Some(AppPath(v));
        }
        cur.app += len as usize;
    }
    let mut name = String::new();
    let mut description = String::new();
    if let Some((name_len, description_len, at)) = rec.text {
        if at != cur.text {
            return Err(DecodeError::NonCanonicalOffset {
                section: Section::RuleText,
            });
        }
        validate::check_rule_text_len(name_len, description_len, index)?;
        let oob = DecodeError::ListOutOfBounds {
            section: Section::RuleText,
        };
        let name_end = at + name_len;
        let end = name_end + description_len;
        let utf8 = DecodeError::RuleTextUtf8 { rule: index };
        let name_str = core::str::from_utf8(texts.get(at..name_end).ok_or(oob)?)
            .map_err(|_| utf8)?;
        let description_str = core::str::from_utf8(texts.get(name_end..end).ok_or(oob)?)
            .map_err(|_| utf8)?;
        validate::check_rule_text_chars(name_str, index)?;
        validate::check_rule_text_chars(description_str, index)?;
        if build {
            name.try_reserve_exact(name_len)
                .map_err(|_| DecodeError::OutOfMemory)?;
            name.push_str(name_str);
            description
                .try_reserve_exact(description_len)
                .map_err(|_| DecodeError::OutOfMemory)?;
            description.push_str(description_str);
        }
        cur.text = end;
    }
    if !build {
        return Ok(None);
    }
    let [remote_addr, local_addr] = conds;
    let [remote_port, local_port] = pconds;
    Ok(Some(Rule {
        id: rec.id,
        action: rec.action,
        log: rec.log,
        direction: rec.direction,
        ip_version: rec.ip_version,
        protocol: rec.protocol,
        remote_addr,
        local_addr,
        remote_port,
        local_port,
        app,
        loopback: rec.loopback,
        name,
        description,
        enabled: !rec.disabled,
    }))
}

fn walk_set(
    rec: &[u8],
    index: u32,
    l: &Layout<'_>,
    cur: &mut Cursors,
    totals: &mut Totals,
    build: bool,
) -> Result<Option<AddressSet>, DecodeError> {
    let [_, _, addrs, _, _, names, _] = l.sections;
    let name_off = rd_u32(rec, 0) as usize;
    let name_len = rd_u32(rec, 4) as usize;
    let entries_off = rd_u32(rec, 8) as usize;
    let count = rd_u32(rec, 12);
    if name_off != cur.name {
        return Err(DecodeError::NonCanonicalOffset {
            section: Section::Names,
        });
    }
    validate::check_set_name(name_len, index)?;
    let name_bytes =
        names
            .get(name_off..name_off + name_len)
            .ok_or(DecodeError::ListOutOfBounds {
                section: Section::Names,
            })?;
    let name_str =
        core::str::from_utf8(name_bytes).map_err(|_| DecodeError::SetNameUtf8 { set: index })?;
    cur.name += name_len;
    if entries_off != cur.addr {
        return Err(DecodeError::NonCanonicalOffset {
            section: Section::Addrs,
        });
    }
    totals.set_entries = totals.set_entries.saturating_add(count as usize);
    if totals.set_entries > MAX_SET_ENTRIES_TOTAL {
        return Err(ValidationError::TooManySetEntries.into());
    }
    // Each record is at least 9 bytes: refuse an impossible count before reserving for it.
    if (count as usize).saturating_mul(ADDR_V4_RECORD_LEN) > addrs.len().saturating_sub(cur.addr) {
        return Err(DecodeError::ListOutOfBounds {
            section: Section::Addrs,
        });
    }
    let mut entries: Vec<AddrRange> = Vec::new();
    let mut name = String::new();
    if build {
        entries
            .try_reserve_exact(count as usize)
            .map_err(|_| DecodeError::OutOfMemory)?;
        name.try_reserve_exact(name_len)
            .map_err(|_| DecodeError::OutOfMemory)?;
        name.push_str(name_str);
    }
    let mut it = AddrIter {
        sec: addrs,
        pos: cur.addr,
        left: count,
    };
    while let Some(r) = it.next_range()? {
        if !validate::range_ordered(&r) {
            return Err(ValidationError::SetEntryOrder { set: index }.into());
        }
        if build {
            entries.push(r);
        }
    }
    cur.addr = it.pos;
    Ok(if build {
        Some(AddressSet { name, entries })
    } else {
        None
    })
}

fn walk(l: &Layout<'_>, mut out: Option<&mut Policy>) -> Result<(), DecodeError> {
    let [rules, sets, addrs, ports, apps, names, texts] = l.sections;
    let build = out.is_some();
    let mut cur = Cursors::default();
    let mut totals = Totals::default();
    for (i, rec) in rules.chunks_exact(l.format.rule_record_len).enumerate() {
        let i = i as u32;
        let rr = parse_rule(rec, i)?;
        let built = walk_rule(&rr, i, l, &mut cur, &mut totals, build)?;
        if let (Some(p), Some(r)) = (out.as_deref_mut(), built) {
            p.rules.push(r);
        }
    }
    for (i, rec) in sets.chunks_exact(SET_RECORD_LEN).enumerate() {
        let built = walk_set(rec, i as u32, l, &mut cur, &mut totals, build)?;
        if let (Some(p), Some(s)) = (out.as_deref_mut(), built) {
            p.sets.push(s);
        }
    }
    for (section, used, len) in [
        (Section::Addrs, cur.addr, addrs.len()),
        (Section::Ports, cur.port * PORT_RECORD_LEN, ports.len()),
        (Section::Apps, cur.app * 2, apps.len()),
        (Section::Names, cur.name, names.len()),
        (Section::RuleText, cur.text, texts.len()),
    ] {
        if used != len {
            return Err(DecodeError::TrailingBytes { section });
        }
    }
    Ok(())
}

/// Decodes and fully validates a blob. Total: any input gives `Ok` or a specific
/// [`DecodeError`], never a panic; nothing is allocated until the whole blob has been checked
/// (pass 1), and every allocation of pass 2 is fallible.
pub fn decode(blob: &[u8]) -> Result<Policy, DecodeError> {
    let l = parse_header(blob)?;
    walk(&l, None)?;
    let mut p = Policy {
        rules: Vec::new(),
        sets: Vec::new(),
        default_outbound: l.default_outbound,
        default_inbound: l.default_inbound,
        log_all: l.log_all,
    };
    p.rules
        .try_reserve_exact(l.rule_count)
        .map_err(|_| DecodeError::OutOfMemory)?;
    p.sets
        .try_reserve_exact(l.set_count)
        .map_err(|_| DecodeError::OutOfMemory)?;
    walk(&l, Some(&mut p))?;
    Ok(p)
}

/// Checks a blob exactly as [`decode`] does, without building anything (no allocation).
pub fn check(blob: &[u8]) -> Result<(), DecodeError> {
    let l = parse_header(blob)?;
    walk(&l, None)
}
