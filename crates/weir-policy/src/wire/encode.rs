//! The encoder: a valid [`Policy`] to its one canonical blob.

use alloc::vec::Vec;

use super::*;
use crate::{AddrCond, AddrRange, Direction, IpVersion, Policy, ValidationError};


/// The canonical blob of `p`. Validates `p` first ([`Policy::validate`]).
///
/// Errors: [`EncodeError::Invalid`] for a policy `decode` would refuse, [`EncodeError::TooLarge`]
/// over [`MAX_BLOB_BYTES`], [`EncodeError::OutOfMemory`] when allocation fails.
pub fn encode(p: &Policy) -> Result<Vec<u8>, EncodeError> {
    p.validate().map_err(|e| match e {
        ValidationError::OutOfMemory => EncodeError::OutOfMemory,
        e => EncodeError::Invalid(e),
    })?;
    // Section sizes; validation bounds every count, so these sums stay far below u64 limits,
    // but keep them checked anyway and compare against the blob limit.
    let mut addr_len: u64 = 0;
    let mut port_count: u64 = 0;
    let mut app_units: u64 = 0;
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
    let lens: [u64; 6] = [
        (p.rules.len() * RULE_RECORD_LEN) as u64,
        (p.sets.len() * SET_RECORD_LEN) as u64,
        addr_len,
        port_count * PORT_RECORD_LEN as u64,
        app_units * 2,
        name_len,
    ];
    let total: u64 = HEADER_LEN as u64 + lens.iter().sum::<u64>();
    if total > MAX_BLOB_BYTES as u64 {
        return Err(EncodeError::TooLarge);
    }
    let total = total as usize;
    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| EncodeError::OutOfMemory)?;

    // Header.
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.push(action_code(p.default_outbound));
    out.push(action_code(p.default_inbound));
    out.push(u8::from(p.log_all));
    out.push(0);
    out.extend_from_slice(&(p.rules.len() as u32).to_le_bytes());
    out.extend_from_slice(&(p.sets.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut off = HEADER_LEN as u64;
    for len in lens {
        out.extend_from_slice(&(off as u32).to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        off += len;
    }

    // Rules.
    let mut addr_cursor: u32 = 0;
    let mut port_cursor: u32 = 0;
    let mut app_cursor: u32 = 0;
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
        out.extend_from_slice(&rec);
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
    fn u32(&mut self, at: usize, v: u32) {
        if let Some(b) = self.rec.get_mut(at..at + 4) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
}

