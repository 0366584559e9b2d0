//! The encoder: a valid [`Policy`] to its one canonical blob.

use alloc::vec::Vec;

use super::*;
use crate::{AddrCond, AddrRange, Direction, IpVersion, Policy, ValidationError};

/// The canonical blob of `p` in the current format ([`VERSION`]). Validates `p` first
/// ([`Policy::validate`]).
///
/// # Errors
/// [`EncodeError::Invalid`] for a policy `decode` would refuse, [`EncodeError::TooLarge`]
/// over [`MAX_BLOB_BYTES`], [`EncodeError::OutOfMemory`] when allocation fails.
pub fn encode(p: &Policy) -> Result<Vec<u8>, EncodeError> {
    encode_as(p, FORMAT_V2)
}

/// The canonical blob of `p` in format version 1, which older drivers and weirctl read: for
/// tests of the decoder's version-1 path (and to build seeds of it), not for tools.
///
/// # Errors
/// As [`encode`], and [`EncodeError::NotInVersion1`] for a rule with a name, a description or
/// `enabled == false`, which version 1 cannot hold.
pub fn encode_v1(p: &Policy) -> Result<Vec<u8>, EncodeError> {
    if let Some(i) = p
        .rules
        .iter()
        .position(|r| !r.name.is_empty() || !r.description.is_empty() || !r.enabled)
    {
        return Err(EncodeError::NotInVersion1 { rule: i as u32 });
    }
    encode_as(p, FORMAT_V1)
}

fn encode_as(p: &Policy, format: Format) -> Result<Vec<u8>, EncodeError> {
    p.validate().map_err(|e| match e {
        ValidationError::OutOfMemory => EncodeError::OutOfMemory,
        e => EncodeError::Invalid(e),
    })?;
    // Section sizes; validation bounds every count, so these sums stay far below u64 limits,
    // but keep them checked anyway and compare against the blob limit.
    let mut addr_len: u64 = 0;
    let mut port_count: u64 = 0;
    let mut app_units: u64 = 0;
    let mut text_len: u64 = 0;
    for r in &p.rules {
        for c in [&r.remote_addr, &r.local_addr].into_iter().flatten() {
            if let AddrCond::Ranges(rs) = c {
                addr_len += rs.iter().map(|r| addr_record_len(r) as u64).sum::<u64>();
            }
        }
        for c in [&r.remote_port, &r.local_port].into_iter().flatten() {
            port_count += c.ranges.len() as u64;
        }
        if let Some(a) = &r.app {
            app_units += a.0.len() as u64;
        }
        text_len += (r.name.len() + r.description.len()) as u64;
    }
    let mut name_len: u64 = 0;
    for s in &p.sets {
        addr_len += s
            .entries
            .iter()
            .map(|r| addr_record_len(r) as u64)
            .sum::<u64>();
        name_len += s.name.len() as u64;
    }
    let lens_all: [u64; 7] = [
        (p.rules.len() * format.rule_record_len) as u64,
        (p.sets.len() * SET_RECORD_LEN) as u64,
        addr_len,
        port_count * PORT_RECORD_LEN as u64,
        app_units * 2,
        name_len,
        text_len,
    ];
    // Version 1 has no rule-text section (`encode_v1` refused rules that would need it).
    let lens = lens_all.get(..format.sections).unwrap_or(&lens_all);
    let total: u64 = format.header_len as u64 + lens.iter().sum::<u64>();
    if total > MAX_BLOB_BYTES as u64 {
        return Err(EncodeError::TooLarge);
    }
    let total = total as usize;
    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| EncodeError::OutOfMemory)?;

    // Header.
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&format.version.to_le_bytes());
    out.extend_from_slice(&(format.header_len as u16).to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.push(action_code(p.default_outbound));
    out.push(action_code(p.default_inbound));
    out.push(u8::from(p.log_all));
    out.push(0);
    out.extend_from_slice(&(p.rules.len() as u32).to_le_bytes());
    out.extend_from_slice(&(p.sets.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut off = format.header_len as u64;
    for &len in lens {
        out.extend_from_slice(&(off as u32).to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        off += len;
    }

    // Rules.
    let mut addr_cursor: u32 = 0;
    let mut port_cursor: u32 = 0;
    let mut app_cursor: u32 = 0;
    let mut text_cursor: u32 = 0;
    for r in &p.rules {
        let mut rec = [0u8; RULE_RECORD_LEN];
        let mut w = RecordWriter { rec: &mut rec };
        w.u32(0, r.id);
        w.u8(4, action_code(r.action));
        w.u8(5, u8::from(r.log));
        w.u8(
            6,
            match r.direction {
                None => 0,
                Some(Direction::Outbound) => 1,
                Some(Direction::Inbound) => 2,
            },
        );
        w.u8(
            7,
            match r.ip_version {
                None => 0,
                Some(IpVersion::V4) => 1,
                Some(IpVersion::V6) => 2,
            },
        );
        w.u8(8, u8::from(r.protocol.is_some()));
        w.u8(9, r.protocol.unwrap_or(0));
        w.u8(
            10,
            match r.loopback {
                None => 0,
                Some(false) => 1,
                Some(true) => 2,
            },
        );
        for (kind_at, a_at, off_at, c) in
            [(11, 16, 36, &r.remote_addr), (12, 20, 40, &r.local_addr)]
        {
            match c {
                None => {}
                Some(AddrCond::Ranges(rs)) => {
                    w.u8(kind_at, ADDR_RANGES);
                    w.u32(a_at, rs.len() as u32);
                    w.u32(off_at, addr_cursor);
                    addr_cursor += rs.iter().map(|r| addr_record_len(r) as u32).sum::<u32>();
                }
                Some(AddrCond::Set(s)) => {
                    w.u8(kind_at, ADDR_SET);
                    w.u32(a_at, *s);
                }
            }
        }
        for (present_at, count_at, first_at, c) in
            [(13, 24, 44, &r.remote_port), (14, 28, 48, &r.local_port)]
        {
            if let Some(c) = c {
                w.u8(present_at, 1);
                w.u32(count_at, c.ranges.len() as u32);
                w.u32(first_at, port_cursor);
                port_cursor += c.ranges.len() as u32;
            }
        }
        if let Some(a) = &r.app {
            w.u8(15, 1);
            w.u32(32, a.0.len() as u32);
            w.u32(52, app_cursor);
            app_cursor += a.0.len() as u32;
        }
        // Validation bounds the name to 255 bytes and the description to u16.
        let text = (r.name.len() + r.description.len()) as u32;
        w.u8(RULE_DISABLED_AT, u8::from(!r.enabled));
        w.u8(RULE_NAME_LEN_AT, r.name.len() as u8);
        w.u16(RULE_DESCRIPTION_LEN_AT, r.description.len() as u16);
        if text != 0 {
            w.u32(RULE_TEXT_AT, text_cursor);
            text_cursor += text;
        }
        out.extend_from_slice(rec.get(..format.rule_record_len).unwrap_or(&rec));
    }
    // Sets.
    let mut name_cursor: u32 = 0;
    let mut set_addr_cursor = addr_cursor;
    for s in &p.sets {
        out.extend_from_slice(&name_cursor.to_le_bytes());
        out.extend_from_slice(&(s.name.len() as u32).to_le_bytes());
        out.extend_from_slice(&set_addr_cursor.to_le_bytes());
        out.extend_from_slice(&(s.entries.len() as u32).to_le_bytes());
        name_cursor += s.name.len() as u32;
        set_addr_cursor += s
            .entries
            .iter()
            .map(|r| addr_record_len(r) as u32)
            .sum::<u32>();
    }
    // Address ranges.
    let put_range = |out: &mut Vec<u8>, r: &AddrRange| match r {
        AddrRange::V4 { lo, hi } => {
            out.push(TAG_V4);
            out.extend_from_slice(&lo.to_le_bytes());
            out.extend_from_slice(&hi.to_le_bytes());
        }
        AddrRange::V6 { lo, hi } => {
            out.push(TAG_V6);
            out.extend_from_slice(&lo.to_le_bytes());
            out.extend_from_slice(&hi.to_le_bytes());
        }
    };
    for r in &p.rules {
        for c in [&r.remote_addr, &r.local_addr].into_iter().flatten() {
            if let AddrCond::Ranges(rs) = c {
                for x in rs {
                    put_range(&mut out, x);
                }
            }
        }
    }
    for s in &p.sets {
        for x in &s.entries {
            put_range(&mut out, x);
        }
    }
    // Ports.
    for r in &p.rules {
        for c in [&r.remote_port, &r.local_port].into_iter().flatten() {
            for (lo, hi) in &c.ranges {
                out.extend_from_slice(&lo.to_le_bytes());
                out.extend_from_slice(&hi.to_le_bytes());
            }
        }
    }
    // Apps.
    for r in &p.rules {
        if let Some(a) = &r.app {
            for u in &a.0 {
                out.extend_from_slice(&u.to_le_bytes());
            }
        }
    }
    // Names.
    for s in &p.sets {
        out.extend_from_slice(s.name.as_bytes());
    }
    // Rule names and descriptions (empty in version 1: `encode_v1` refused any).
    for r in &p.rules {
        out.extend_from_slice(r.name.as_bytes());
        out.extend_from_slice(r.description.as_bytes());
    }
    debug_assert_eq!(out.len(), total);
    Ok(out)
}

struct RecordWriter<'a> {
    rec: &'a mut [u8; RULE_RECORD_LEN],
}

impl RecordWriter<'_> {
    fn u8(&mut self, at: usize, v: u8) {
        if let Some(b) = self.rec.get_mut(at) {
            *b = v;
        }
    }
    fn u16(&mut self, at: usize, v: u16) {
        if let Some(b) = self.rec.get_mut(at..at + 2) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn u32(&mut self, at: usize, v: u32) {
        if let Some(b) = self.rec.get_mut(at..at + 4) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
}

