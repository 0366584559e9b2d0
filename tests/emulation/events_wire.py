"""Decoder of READ_EVENTS replies for the emulation tests: an independent
reading of the byte table in docs/events.md (not a port of the Rust decoder),
so a driver and a document that drift apart fail here."""

from __future__ import annotations

import ipaddress
import struct

KIND_CONNECTION = 1
KIND_DROPPED = 2
CONNECTION_FIXED = 72
MAX_PATH_UNITS = 260
MAX_SID_BYTES = 68
TRAILER = 12  # version 3: u64 policy generation, u32 rule index, after the SID
MAX_CONNECTION_SIZE = 672
DROPPED_SIZE = 16
MIN_READ_BUFFER = DROPPED_SIZE + MAX_CONNECTION_SIZE

F_PROCESS_ID = 0x01
F_RULE = 0x02
F_REAUTH = 0x04
F_PATH = 0x08
F_PATH_TRUNCATED = 0x10
F_TUPLE = 0x20
F_RULE_INDEX = 0x40

DECISIONS = {1: "permit", 2: "block", 3: "write-right-absent"}


def sid_text(b: bytes) -> str:
    """S-R-A-S1-...: revision, 48-bit big-endian authority, little-endian 32-bit sub-authorities."""
    assert len(b) >= 8 and b[0] == 1 and len(b) == 8 + 4 * b[1], f"malformed SID {b.hex()}"
    subs = struct.unpack_from(f"<{b[1]}I", b, 8)
    return "-".join(["S", str(b[0]), str(int.from_bytes(b[2:8], "big"))] + [str(x) for x in subs])


def decode(buf: bytes) -> list[dict]:
    out = []
    off = 0
    while off < len(buf):
        assert len(buf) - off >= 4, f"truncated header at {off}"
        size, kind, version = struct.unpack_from("<HBB", buf, off)
        assert size >= 8 and size % 8 == 0 and off + size <= len(buf), f"bad size {size} at {off}"
        rec = buf[off:off + size]
        if kind == KIND_DROPPED:
            out.append({"kind": "dropped", "version": version, "count": struct.unpack_from("<Q", rec, 8)[0]})
        elif kind == KIND_CONNECTION:
            flags, layer_id, time, pid, rule = struct.unpack_from("<HHQQI", rec, 4)
            direction, ipv, proto, decision = struct.unpack_from("<BBBB", rec, 28)
            lport, rport, units, user_len = struct.unpack_from("<HHHB", rec, 32)
            if version < 2:
                user_len = 0  # reserved in version 1
            la, ra = rec[40:56], rec[56:72]
            end = 72 + 2 * units
            assert end + user_len <= size
            path = rec[72:end].decode("utf-16-le")
            user = sid_text(rec[end:end + user_len]) if user_len else None
            end += user_len
            generation, rule_index = 0, None
            if version >= 3:
                assert end + TRAILER <= size, f"version-3 record of {size} bytes has no room for its trailer"
                generation, index = struct.unpack_from("<QI", rec, end)
                rule_index = index if flags & F_RULE and flags & F_RULE_INDEX else None
                end += TRAILER
            addr = (lambda b: str(ipaddress.IPv6Address(b)) if ipv == 6 else str(ipaddress.IPv4Address(b[:4])))
            out.append({
                "kind": "connection", "version": version, "size": size, "flags": flags, "layer_id": layer_id,
                "time": time, "process_id": pid if flags & F_PROCESS_ID else None,
                "rule_id": rule if flags & F_RULE else None, "direction": "outbound" if direction == 0 else "inbound",
                "ip_version": ipv, "protocol": proto, "decision": DECISIONS.get(decision, decision),
                "local": addr(la), "local_port": lport, "remote": addr(ra), "remote_port": rport,
                "path": path if flags & F_PATH else None, "path_truncated": bool(flags & F_PATH_TRUNCATED),
                "reauthorization": bool(flags & F_REAUTH), "tuple": bool(flags & F_TUPLE),
                "user": user, "policy_generation": generation, "rule_index": rule_index,
                "padding_zero": all(b == 0 for b in rec[end:]),
            })
        else:
            out.append({"kind": kind, "version": version, "size": size})
        off += size
    return out
