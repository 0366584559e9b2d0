"""The fail-closed allow-list (`Parameters\\FailClosedAllow`, src/failsafe.rs, crates/weir-failsafe) as
the model sees it: the REG_MULTI_SZ value a test puts in the registry, and the condition values that
are not inline in an FWPM_FILTER_CONDITION0 (address and mask, range), decoded with their x64 layouts
from fwptypes.h:

* FWP_V4_ADDR_AND_MASK: addr u32 @0, mask u32 @4 (host byte order);
* FWP_V6_ADDR_AND_MASK: addr u8[16] @0, prefixLength u8 @16;
* FWP_RANGE0: valueLow FWP_VALUE0 @0, valueHigh FWP_VALUE0 @16 (each: type u32 @0, union @8).

`store_model.decode_conditions` calls `decode_pointer_value` for these types; a null pointer is a
model violation the caller reports (the engine would fault or answer FWP_NULL_POINTER).
"""

from __future__ import annotations

import ipaddress

import layouts as L

REG_SZ = 1
REG_MULTI_SZ = 7
FWP_V4_ADDR_MASK = 256
FWP_V6_ADDR_MASK = 257
FWP_RANGE_TYPE = 258
FWP_MATCH_RANGE = 5
POINTER_TYPES = (FWP_V4_ADDR_MASK, FWP_V6_ADDR_MASK, FWP_RANGE_TYPE)

# crates/weir-failsafe/src/lib.rs and src/failsafe.rs
VALUE_NAME = "FailClosedAllow"
ALLOW_WEIGHT = 11
EXTRA_PERSISTENT_PREFIX = "3a6d0c52-7e14-4c8b-9f20-5b7e1f"
EXTRA_BOOT_TIME_PREFIX = "3a6d0c52-7e14-4c8b-9f20-5b7e20"
ALLOW_UNREADABLE = 4


def multi_sz(strings: list[str]) -> bytes:
    """REG_MULTI_SZ data: each string UTF-16LE and NUL-terminated, then one more NUL."""
    return b"".join(s.encode("utf-16-le") + b"\0\0" for s in strings) + b"\0\0"


def extra_key(prefix: str, n: int) -> str:
    """The n-th extra filter's key (wfp_km::failsafe::extra_key: base + n)."""
    return f"{prefix}{n:06x}"


def decode_pointer_value(mem, ty: int, ptr: int):
    """The value an FWP_CONDITION_VALUE0 of a pointer type points to, as a tuple tests compare."""
    if ptr == 0:
        return ("null", ty)
    if ty == FWP_V4_ADDR_MASK:
        return ("v4", mem.u32(ptr), mem.u32(ptr + 4))
    if ty == FWP_V6_ADDR_MASK:
        addr = bytes(mem.read(ptr, 16))
        return ("v6", str(ipaddress.IPv6Address(addr)), mem.read(ptr + 16, 1)[0])
    if ty == FWP_RANGE_TYPE:
        lo_ty, hi_ty = mem.u32(ptr), mem.u32(ptr + 16)
        width = {L.FWP_UINT8: 0xFF, L.FWP_UINT16: 0xFFFF, L.FWP_UINT32: 0xFFFFFFFF}
        lo = mem.u64(ptr + 8) & width.get(lo_ty, 0xFFFFFFFFFFFFFFFF)
        hi = mem.u64(ptr + 24) & width.get(hi_ty, 0xFFFFFFFFFFFFFFFF)
        return ("range", lo_ty, lo, hi_ty, hi)
    return ("unknown", ty, hex(ptr))


def v4(text: str) -> tuple:
    """The expected FWP_V4_ADDR_MASK value of a network written like `10.1.2.0/24`."""
    net = ipaddress.IPv4Network(text)
    return ("v4", int(net.network_address), int(net.netmask))


def v6(text: str) -> tuple:
    net = ipaddress.IPv6Network(text)
    return ("v6", str(net.network_address), net.prefixlen)


def range16(lo: int, hi: int) -> tuple:
    return ("range", L.FWP_UINT16, lo, L.FWP_UINT16, hi)
