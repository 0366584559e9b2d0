"""Constants and x64 structure layouts of the kernel and WFP APIs Weir uses.

Every offset here is the documented x64 layout (the same one the driver's
`wfp-km-sys` layout tests pin). speakeasy's own struct definitions are never
used to read the driver's arguments: some of them are wrong past
`providerKey`.
"""

from __future__ import annotations

import struct
import uuid

# --------------------------------------------------------------------------
# NTSTATUS values
# --------------------------------------------------------------------------
STATUS_SUCCESS = 0x00000000
STATUS_PENDING = 0x00000103
STATUS_DEVICE_BUSY = 0x80000011
STATUS_UNSUCCESSFUL = 0xC0000001
STATUS_INVALID_HANDLE = 0xC0000008
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_INVALID_DEVICE_REQUEST = 0xC0000010
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_BUFFER_TOO_SMALL = 0xC0000023
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_OBJECT_NAME_COLLISION = 0xC0000035
STATUS_INSUFFICIENT_RESOURCES = 0xC000009A
STATUS_CANCELLED = 0xC0000120
STATUS_INVALID_BUFFER_SIZE = 0xC0000206
STATUS_FWP_CALLOUT_NOT_FOUND = 0xC0220001
STATUS_FWP_LAYER_NOT_FOUND = 0xC0220004
STATUS_FWP_SUBLAYER_NOT_FOUND = 0xC0220007
STATUS_FWP_NOT_FOUND = 0xC0220008
STATUS_FWP_ALREADY_EXISTS = 0xC0220009
STATUS_FWP_IN_USE = 0xC022000A
STATUS_FWP_NO_TXN_IN_PROGRESS = 0xC022000D
STATUS_FWP_TXN_IN_PROGRESS = 0xC022000E
STATUS_FWP_TXN_ABORTED = 0xC022000F
STATUS_FWP_TIMEOUT = 0xC0220012
STATUS_FWP_INCOMPATIBLE_LAYER = 0xC0220014
STATUS_FWP_NULL_POINTER = 0xC022001C
STATUS_FWP_INVALID_FLAGS = 0xC022001E
STATUS_FWP_NULL_DISPLAY_NAME = 0xC0220023
STATUS_FWP_INVALID_ACTION_TYPE = 0xC0220024
STATUS_FWP_INVALID_PARAMETER = 0xC0220035
STATUS_FWP_TOO_MANY_CALLOUTS = 0xC0220018
STATUS_NOT_SUPPORTED = 0xC00000BB
REG_DWORD = 4
STATUS_TIMEOUT = 0x00000102
STATUS_UNKNOWN_REVISION = 0xC0000058
STATUS_INVALID_SECURITY_DESCR = 0xC0000079
STATUS_ALLOTTED_SPACE_EXCEEDED = 0xC0000099
RPC_NT_SERVER_UNAVAILABLE = 0xC0020017
RPC_NT_CALL_FAILED = 0xC002001B

STATUS_NAMES = {v: k for k, v in dict(globals()).items() if k.startswith(("STATUS_", "RPC_NT_"))}


def is_success(status: int) -> bool:
    """NT_SUCCESS for a 32-bit status."""
    return (status & 0xFFFFFFFF) < 0x80000000


def status_name(status: int | None) -> str:
    if status is None:
        return "None"
    status &= 0xFFFFFFFF
    name = STATUS_NAMES.get(status)
    return f"{name} (0x{status:08X})" if name else f"0x{status:08X}"


# --------------------------------------------------------------------------
# Kernel constants
# --------------------------------------------------------------------------
FILE_DEVICE_NETWORK = 0x12
FILE_DEVICE_SECURE_OPEN = 0x100
POOL_FLAG_NON_PAGED = 0x40
POOL_FLAG_PAGED = 0x100
IRP_MJ_CREATE = 0x00
IRP_MJ_CLOSE = 0x02
IRP_MJ_READ = 0x03
IRP_MJ_DEVICE_CONTROL = 0x0E
IRP_MJ_CLEANUP = 0x12
IRP_MJ_MAXIMUM_FUNCTION = 0x1B
RPC_C_AUTHN_WINNT = 10
RPC_C_AUTHN_DEFAULT = 0xFFFFFFFF
DPFLTR_INFO_LEVEL = 3
DPFLTR_IHVNETWORK_ID = 80

# DRIVER_OBJECT (x64)
DRIVER_OBJECT_DEVICE_OBJECT = 0x08
DRIVER_OBJECT_DRIVER_UNLOAD = 0x68
DRIVER_OBJECT_MAJOR_FUNCTION = 0x70

# IRP (x64)
IRP_SIZE = 0xD0
IRP_SYSTEM_BUFFER = 0x18
IRP_IO_STATUS_STATUS = 0x30
IRP_IO_STATUS_INFORMATION = 0x38
IRP_CURRENT_STACK_LOCATION = 0xB8
# IO_STACK_LOCATION (x64)
IO_STACK_LOCATION_SIZE = 0x48
IOSL_MAJOR_FUNCTION = 0x00
IOSL_PARAMETERS = 0x08
IOSL_CREATE_SECURITY_CONTEXT = 0x08
IOSL_DIOC_OUTPUT_LENGTH = 0x08
IOSL_DIOC_INPUT_LENGTH = 0x10
IOSL_DIOC_CODE = 0x18
IOSL_FILE_OBJECT = 0x30
# FILE_OBJECT (x64): FsContext2 is the device driver's (Weir marks a handle cleaned up there).
FILE_OBJECT_SIZE = 0xD8
FILE_OBJECT_FS_CONTEXT2 = 0x20
# IO_SECURITY_CONTEXT / ACCESS_STATE / SECURITY_SUBJECT_CONTEXT (x64)
IO_SECURITY_CONTEXT_ACCESS_STATE = 0x08
ACCESS_STATE_SUBJECT_CONTEXT = 0x20
SUBJECT_CLIENT_TOKEN = 0x00
SUBJECT_IMPERSONATION_LEVEL = 0x08
SUBJECT_PRIMARY_TOKEN = 0x10
# SECURITY_IMPERSONATION_LEVEL
SECURITY_IDENTIFICATION = 1
SECURITY_IMPERSONATION = 2

# --------------------------------------------------------------------------
# WFP constants
# --------------------------------------------------------------------------
FWPM_SESSION_FLAG_DYNAMIC = 0x1
FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED = 0x10
FWP_ACTION_FLAG_TERMINATING = 0x1000
FWP_ACTION_FLAG_CALLOUT = 0x4000
FWP_ACTION_BLOCK = 0x1001
FWP_ACTION_PERMIT = 0x1002
FWP_ACTION_CALLOUT_TERMINATING = 0x5003
FWP_ACTION_CALLOUT_INSPECTION = 0x6004
FWP_ACTION_CALLOUT_UNKNOWN = 0x4005
FWPS_RIGHT_ACTION_WRITE = 0x1
FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT = 0x1
# 0x20 per windows-sys 0.61.2 (fwpsk.h); 0x40 is FWPS_METADATA_FIELD_SYSTEM_FLAGS.
FWPS_METADATA_FIELD_PROCESS_ID = 0x20
FWPS_METADATA_FIELD_PROCESS_PATH = 0x08
FWP_CONDITION_FLAG_IS_REAUTHORIZE = 0x4

FWP_EMPTY = 0
FWP_UINT8 = 1
FWP_UINT16 = 2
FWP_UINT32 = 3
FWP_UINT64 = 4
FWP_BYTE_ARRAY16_TYPE = 11
FWP_BYTE_BLOB_TYPE = 12

# Management layer keys (checked against windows-sys 0.61.2).
FWPM_LAYER_ALE_AUTH_CONNECT_V4 = uuid.UUID("c38d57d1-05a7-4c33-904f-7fbceee60e82")
FWPM_LAYER_ALE_AUTH_CONNECT_V6 = uuid.UUID("4a72393b-319f-44bc-84c3-ba54dcb3b6b4")
FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4 = uuid.UUID("e1cd9fe7-f4b5-4273-96c0-592e487b8650")
FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6 = uuid.UUID("a3b42c97-9f04-4672-b87e-cee9c483257f")

# Run-time layer ids.
FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4 = 44
FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V6 = 46
FWPS_LAYER_ALE_AUTH_CONNECT_V4 = 48
FWPS_LAYER_ALE_AUTH_CONNECT_V6 = 50


class Layer:
    """One of Weir's four layers, in the driver's reporting order."""

    def __init__(self, name, index, layer_id, key, ipv6, outbound):
        self.name = name
        self.index = index
        self.layer_id = layer_id
        self.key = key
        self.ipv6 = ipv6
        self.outbound = outbound

    def __repr__(self):
        return self.name


LAYERS = [
    Layer("connect-v4", 0, FWPS_LAYER_ALE_AUTH_CONNECT_V4, FWPM_LAYER_ALE_AUTH_CONNECT_V4, False, True),
    Layer("connect-v6", 1, FWPS_LAYER_ALE_AUTH_CONNECT_V6, FWPM_LAYER_ALE_AUTH_CONNECT_V6, True, True),
    Layer("accept-v4", 2, FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4, FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4, False, False),
    Layer("accept-v6", 3, FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V6, FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6, True, False),
]
LAYER_BY_KEY = {layer.key: layer for layer in LAYERS}
# Layers the model's engine knows (a filter or callout at another layer gets
# STATUS_FWP_LAYER_NOT_FOUND).
KNOWN_LAYER_KEYS = set(LAYER_BY_KEY)

# Field indices shared by the four ALE authorization layers.
FIELD_LOCAL_ADDRESS = 2
FIELD_LOCAL_PORT = 4
FIELD_PROTOCOL = 5
FIELD_REMOTE_ADDRESS = 6
FIELD_REMOTE_PORT = 7
FIELD_COUNT = 8  # the minimum count that holds every field Weir reads

# FWPS_CALLOUT3 (x64)
FWPS_CALLOUT3_KEY = 0
FWPS_CALLOUT3_FLAGS = 16
FWPS_CALLOUT3_CLASSIFY = 24
FWPS_CALLOUT3_NOTIFY = 32
FWPS_CALLOUT3_FLOW_DELETE = 40
FWPS_CALLOUT3_SIZE = 48

# FWPS_INCOMING_VALUES0 / FWP_VALUE0 / metadata / filter / classify out
FWP_VALUE0_SIZE = 16
METADATA_SIZE = 0x200
METADATA_CURRENT_VALUES = 0
METADATA_PROCESS_ID = 64
METADATA_PROCESS_PATH = 48
FWPS_FILTER3_SIZE = 0x50
FWPS_FILTER3_ID = 0
FWPS_FILTER3_FLAGS = 26
CLASSIFY_OUT_SIZE = 40
CLASSIFY_OUT_ACTION = 0
CLASSIFY_OUT_RIGHTS = 24
CLASSIFY_OUT_FLAGS = 28

# IOCTL
IOCTL_WEIR_GET_STATS = 0x80576004
IOCTL_WEIR_READ_EVENTS = 0x80576010
IOCTL_WEIR_SET_POLICY = 0x8057A008
IOCTL_WEIR_GET_POLICY = 0x8057600C
# Stats reply v2 (crates/weir-abi/src/stats.rs): 208-byte header, then 16 bytes per rule.
STATS_SIZE = 208
STATS_HEADER_SIZE = 208
STATS_RULE_ENTRY_SIZE = 16
STATS_V1_SIZE = 112
STATS_ABI_VERSION = 2
SET_POLICY_REPLY_SIZE = 24
POLICY_REPLY_HEADER_SIZE = 24
POLICY_ABI_VERSION = 1
STATUS_BUFFER_OVERFLOW = 0x80000005
STATUS_WEIR_POLICY_TOO_LARGE = 0xE0571002
FILTERING_ACTIVE = 0x1
STATUS_WEIR_STATS_ABI_V1 = 0xE0572001


# --------------------------------------------------------------------------
# Decoding helpers
# --------------------------------------------------------------------------
# --------------------------------------------------------------------------
# Base Filtering Engine service state (FWPM_SERVICE_STATE, fwpmtypes.h)
# --------------------------------------------------------------------------
FWPM_SERVICE_STOPPED = 0
FWPM_SERVICE_START_PENDING = 1
FWPM_SERVICE_STOP_PENDING = 2
FWPM_SERVICE_RUNNING = 3

# --------------------------------------------------------------------------
# Security (winnt.h / wdm.h): absolute SECURITY_DESCRIPTOR on x64, ACL, ACEs
# --------------------------------------------------------------------------
SECURITY_DESCRIPTOR_REVISION = 1
SECURITY_DESCRIPTOR_SIZE = 40  # Revision, Sbz1, Control, then Owner/Group/Sacl/Dacl pointers
SD_CONTROL = 2
SD_OWNER, SD_GROUP, SD_SACL, SD_DACL = 8, 16, 24, 32
SE_DACL_PRESENT = 0x0004
SE_DACL_DEFAULTED = 0x0008
SE_DACL_PROTECTED = 0x1000
SE_SELF_RELATIVE = 0x8000
ACCESS_ALLOWED_ACE_TYPE = 0
ACCESS_DENIED_ACE_TYPE = 1
SYSTEM_MANDATORY_LABEL_ACE_TYPE = 0x11
NO_WRITE_UP, NO_READ_UP, NO_EXECUTE_UP = 0x1, 0x2, 0x4
SE_SACL_PRESENT = 0x0010
DACL_SECURITY_INFORMATION = 0x4
LABEL_SECURITY_INFORMATION = 0x10
PROTECTED_DACL_SECURITY_INFORMATION = 0x80000000
OBJ_KERNEL_HANDLE = 0x200
DELETE, READ_CONTROL, WRITE_DAC, WRITE_OWNER, SYNCHRONIZE = 0x10000, 0x20000, 0x40000, 0x80000, 0x100000
GENERIC_READ, GENERIC_WRITE, GENERIC_EXECUTE, GENERIC_ALL = 0x80000000, 0x40000000, 0x20000000, 0x10000000
FILE_GENERIC_READ, FILE_GENERIC_WRITE, FILE_GENERIC_EXECUTE, FILE_ALL_ACCESS = 0x120089, 0x120116, 0x1200A0, 0x1F01FF
# Rights NO_WRITE_UP withholds from a caller below the object's integrity level.
WRITE_UP_MASK = 0x0116 | DELETE | WRITE_DAC | WRITE_OWNER
# Rights NO_READ_UP withholds (the file type's GENERIC_READ mapping without
# SYNCHRONIZE), and NO_EXECUTE_UP (GENERIC_EXECUTE's, likewise).
READ_UP_MASK = 0x0089 | READ_CONTROL
EXECUTE_UP_MASK = 0x00A0
LOW_RID, MEDIUM_RID, HIGH_RID, SYSTEM_RID = 0x1000, 0x2000, 0x3000, 0x4000
SYNCHRONIZATION_EVENT = 1
NOTIFICATION_EVENT = 0

SID_SYSTEM = "S-1-5-18"
SID_ADMINISTRATORS = "S-1-5-32-544"
SID_USERS = "S-1-5-32-545"
SID_EVERYONE = "S-1-1-0"
SID_RESTRICTED_CODE = "S-1-5-12"
SID_AUTHENTICATED_USERS = "S-1-5-11"
SID_INTERACTIVE = "S-1-5-4"


def map_generic(mask: int) -> int:
    """The file object type's generic mapping (IoGetFileObjectGenericMapping)."""
    out = mask & 0x0FFFFFFF
    if mask & GENERIC_READ:
        out |= FILE_GENERIC_READ
    if mask & GENERIC_WRITE:
        out |= FILE_GENERIC_WRITE
    if mask & GENERIC_EXECUTE:
        out |= FILE_GENERIC_EXECUTE
    if mask & GENERIC_ALL:
        out |= FILE_ALL_ACCESS
    return out


# What IoCreateDevice gives an unnamed-SD device in this model: SYSTEM and
# Administrators everything, Everyone read/write/execute, restricted code
# read/execute (the shape of the kernel's default device security).
DEFAULT_DEVICE_DACL = [
    {"type": ACCESS_ALLOWED_ACE_TYPE, "mask": GENERIC_ALL, "sid": SID_SYSTEM},
    {"type": ACCESS_ALLOWED_ACE_TYPE, "mask": GENERIC_ALL, "sid": SID_ADMINISTRATORS},
    {"type": ACCESS_ALLOWED_ACE_TYPE, "mask": GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE, "sid": SID_EVERYONE},
    {"type": ACCESS_ALLOWED_ACE_TYPE, "mask": GENERIC_READ | GENERIC_EXECUTE, "sid": SID_RESTRICTED_CODE},
]


def read_sid(mem, addr: int) -> tuple[str, int]:
    """(S-R-I-S-S... text, length in bytes) of the SID at `addr`."""
    rev, count = mem.read(addr, 2)
    if rev != 1 or count > 15:
        raise ValueError(f"invalid SID at {addr:#x} (revision {rev}, {count} subauthorities)")
    auth = int.from_bytes(mem.read(addr + 2, 6), "big")
    subs = struct.unpack(f"<{count}I", mem.read(addr + 8, 4 * count))
    return "S-1-" + "-".join(str(x) for x in (auth, *subs)), 8 + 4 * count


def read_acl(mem, addr: int) -> list[dict]:
    rev, _, size, count, _ = struct.unpack("<BBHHH", mem.read(addr, 8))
    if rev not in (2, 4) or size < 8:
        raise ValueError(f"invalid ACL at {addr:#x} (revision {rev}, size {size})")
    aces, off = [], 8
    for i in range(count):
        atype, flags, asize, mask = struct.unpack("<BBHI", mem.read(addr + off, 8))
        if asize < 8 or off + asize > size:
            raise ValueError(f"ACE {i} of the ACL at {addr:#x} overruns it (size {asize} at offset {off}, ACL size {size})")
        sid, _ = read_sid(mem, addr + off + 8)
        aces.append({"type": atype, "flags": flags, "mask": mask, "sid": sid})
        off += asize
    return aces


def read_security_descriptor(mem, addr: int) -> dict:
    """Parses an absolute or self-relative SECURITY_DESCRIPTOR (x64)."""
    if not addr:
        raise ValueError("null security descriptor")
    rev, _, control = struct.unpack("<BBH", mem.read(addr, 4))
    if rev != SECURITY_DESCRIPTOR_REVISION:
        raise ValueError(f"revision {rev}")
    if control & SE_SELF_RELATIVE:
        sacl_off, dacl_off = struct.unpack("<II", mem.read(addr + 12, 8))
        dacl_ptr = addr + dacl_off if dacl_off else 0
        sacl_ptr = addr + sacl_off if sacl_off else 0
    else:
        dacl_ptr = struct.unpack("<Q", mem.read(addr + SD_DACL, 8))[0]
        sacl_ptr = struct.unpack("<Q", mem.read(addr + SD_SACL, 8))[0]
    sacl = None
    if control & SE_SACL_PRESENT:
        sacl = read_acl(mem, sacl_ptr) if sacl_ptr else []
    dacl = None
    if control & SE_DACL_PRESENT:
        # A present but null DACL grants everyone everything.
        dacl = read_acl(mem, dacl_ptr) if dacl_ptr else [{"type": ACCESS_ALLOWED_ACE_TYPE, "flags": 0, "mask": GENERIC_ALL, "sid": SID_EVERYONE}]
    return {"control": control, "dacl": dacl, "sacl": sacl, "protected": bool(control & SE_DACL_PROTECTED)}


class Memory:
    """Typed reads and writes over an emulator (anything with mem_read/mem_write)."""

    def __init__(self, emu):
        self.emu = emu

    def read(self, addr: int, size: int) -> bytes:
        return bytes(self.emu.mem_read(addr, size))

    def write(self, addr: int, data: bytes) -> None:
        self.emu.mem_write(addr, bytes(data))

    def u8(self, addr):
        return self.read(addr, 1)[0]

    def u16(self, addr):
        return struct.unpack("<H", self.read(addr, 2))[0]

    def u32(self, addr):
        return struct.unpack("<I", self.read(addr, 4))[0]

    def u64(self, addr):
        return struct.unpack("<Q", self.read(addr, 8))[0]

    def ptr(self, addr):
        return self.u64(addr)

    def w32(self, addr, value):
        self.write(addr, struct.pack("<I", value & 0xFFFFFFFF))

    def w64(self, addr, value):
        self.write(addr, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))

    def guid(self, addr) -> uuid.UUID:
        return uuid.UUID(bytes_le=self.read(addr, 16))

    def wstr(self, addr, max_chars=512) -> str | None:
        """A NUL-terminated UTF-16 string, or None for a null pointer."""
        if not addr:
            return None
        out = bytearray()
        for i in range(max_chars):
            unit = self.read(addr + 2 * i, 2)
            if unit == b"\0\0":
                break
            out += unit
        return out.decode("utf-16-le", errors="replace")

    def cstr(self, addr, max_chars=1024) -> str | None:
        if not addr:
            return None
        out = bytearray()
        for i in range(max_chars):
            b = self.read(addr + i, 1)
            if b == b"\0":
                break
            out += b
        return out.decode("latin-1")

    def unicode_string(self, addr) -> dict | None:
        """UNICODE_STRING {Length u16, MaximumLength u16, Buffer ptr @8}."""
        if not addr:
            return None
        length, maximum = struct.unpack("<HH", self.read(addr, 4))
        buf = self.ptr(addr + 8)
        text = self.read(buf, length).decode("utf-16-le", errors="replace") if buf and length else ""
        return {"text": text, "Length": length, "MaximumLength": maximum, "Buffer": hex(buf)}

    def display_data(self, addr) -> dict:
        """FWPM_DISPLAY_DATA0 {name ptr, description ptr}."""
        return {"name": self.wstr(self.ptr(addr)), "description": self.wstr(self.ptr(addr + 8))}

    def byte_blob(self, addr) -> dict:
        """FWP_BYTE_BLOB {size u32, data ptr @8}."""
        return {"size": self.u32(addr), "data": hex(self.ptr(addr + 8))}

    def fwp_value(self, addr) -> dict:
        """FWP_VALUE0 {type u32, union @8} (only the scalar members decoded)."""
        ty = self.u32(addr)
        raw = self.u64(addr + 8)
        value = {FWP_UINT8: raw & 0xFF, FWP_UINT16: raw & 0xFFFF, FWP_UINT32: raw & 0xFFFFFFFF}.get(ty, hex(raw))
        return {"type": ty, "value": value}

    # ---- WFP structures ----------------------------------------------------
    def fwpm_session0(self, addr) -> dict | None:
        if not addr:
            return None
        return {
            "sessionKey": str(self.guid(addr)),
            "displayData": self.display_data(addr + 16),
            "flags": self.u32(addr + 32),
            "txnWaitTimeoutInMSec": self.u32(addr + 36),
            "processId": self.u32(addr + 40),
            "sid": hex(self.ptr(addr + 48)),
            "username": self.wstr(self.ptr(addr + 56)),
            "kernelMode": self.u32(addr + 64),
        }

    def fwpm_sublayer0(self, addr) -> dict | None:
        if not addr:
            return None
        return {
            "subLayerKey": str(self.guid(addr)),
            "displayData": self.display_data(addr + 16),
            "flags": self.u32(addr + 32),
            "providerKey": hex(self.ptr(addr + 40)),
            "providerData": self.byte_blob(addr + 48),
            "weight": self.u16(addr + 64),
        }

    def fwpm_callout0(self, addr) -> dict | None:
        if not addr:
            return None
        return {
            "calloutKey": str(self.guid(addr)),
            "displayData": self.display_data(addr + 16),
            "flags": self.u32(addr + 32),
            "providerKey": hex(self.ptr(addr + 40)),
            "providerData": self.byte_blob(addr + 48),
            "applicableLayer": str(self.guid(addr + 64)),
            "calloutId": self.u32(addr + 80),
        }

    def fwpm_filter0(self, addr) -> dict | None:
        if not addr:
            return None
        action_type = self.u32(addr + 128)
        return {
            "filterKey": str(self.guid(addr)),
            "displayData": self.display_data(addr + 16),
            "flags": self.u32(addr + 32),
            "providerKey": hex(self.ptr(addr + 40)),
            "providerData": self.byte_blob(addr + 48),
            "layerKey": str(self.guid(addr + 64)),
            "subLayerKey": str(self.guid(addr + 80)),
            "weight": self.fwp_value(addr + 96),
            "numFilterConditions": self.u32(addr + 112),
            "filterCondition": hex(self.ptr(addr + 120)),
            "action": {
                "type": action_type,
                # The union holds filterType or calloutKey; decoded as a GUID either way.
                "calloutKey": str(self.guid(addr + 132)),
            },
            "rawContext": hex(self.u64(addr + 152)),
            "reserved": hex(self.ptr(addr + 168)),
            "filterId": self.u64(addr + 176),
            "effectiveWeight": self.fwp_value(addr + 184),
        }

    def fwps_callout3(self, addr) -> dict | None:
        if not addr:
            return None
        return {
            "calloutKey": str(self.guid(addr + FWPS_CALLOUT3_KEY)),
            "flags": self.u32(addr + FWPS_CALLOUT3_FLAGS),
            "classifyFn": self.ptr(addr + FWPS_CALLOUT3_CLASSIFY),
            "notifyFn": self.ptr(addr + FWPS_CALLOUT3_NOTIFY),
            "flowDeleteFn": self.ptr(addr + FWPS_CALLOUT3_FLOW_DELETE),
        }


def decode_stats(data: bytes) -> dict:
    """Decodes a stats reply v2 (header + per-rule hits; weir-abi `stats`).

    `layers` is the per-layer view older tests use (classified = new + reauthorized);
    `layers_v2` has every v2 counter.
    """
    size, abi = struct.unpack_from("<II", data, 0)
    version = list(struct.unpack_from("<4H", data, 8))
    header_size, filtering, generation, drops, rule_count, entry_size = struct.unpack_from("<IIQQII", data, 16)
    layers, layers_v2 = [], []
    for i in range(4):
        new, reauth, permitted, blocked, wra = struct.unpack_from("<5Q", data, 48 + 40 * i)
        layers.append({"classified": new + reauth, "permitted": permitted, "write_right_absent": wra})
        layers_v2.append({"new_connections": new, "reauthorizations": reauth, "permitted": permitted,
                          "blocked": blocked, "write_right_absent": wra})
    rules = []
    for i in range(rule_count):
        off = STATS_HEADER_SIZE + STATS_RULE_ENTRY_SIZE * i
        if off + STATS_RULE_ENTRY_SIZE > len(data):
            break
        rid, idx, hits = struct.unpack_from("<IIQ", data, off)
        rules.append({"rule_id": rid, "rule_index": idx, "hits": hits})
    return {"size": size, "abi_version": abi, "version": version, "header_size": header_size,
            "filtering": filtering, "policy_generation": generation, "event_drops": drops,
            "rule_count": rule_count, "rule_entry_size": entry_size, "layers": layers,
            "layers_v2": layers_v2, "rules": rules}
