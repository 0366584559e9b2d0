"""The kernel-mode ETW provider API behind Weir's `Weir` provider, as a mixin of `KernelModel`.

* `EtwRegister` records the provider GUID, enable callback and context and hands out a handle;
  `EtwUnregister` retires it. Writing through a handle that is not live (never registered, or
  unregistered) is a violation: on Windows the handle points at freed memory.
* `EtwWriteTransfer` decodes the event the way an ETW consumer (TDH) would: the EVENT_DESCRIPTOR,
  then the data descriptors. A TraceLogging event must carry exactly one provider-metadata block
  (type 2) and one event-metadata block (type 1) before its payload; the model decodes both and
  the payload with its own TraceLogging reader (`decode_event`), written from the format
  description, independent of the Rust encoder. Every decoded event lands in `etw_events`.
* ETW sessions: `enable_session` plays a controller (logman, WPR) enabling the provider: it calls
  the driver's enable callback at PASSIVE_LEVEL with the level and keywords, as ETW does. The model
  delivers an event only if it passes the session's level and keyword filter (what ETW would do
  per session), so a test sees what a real session would have recorded; events written while no
  session wants them are recorded as `etw_unwanted` (a driver that should have checked first).
* `PsGetCurrentProcessId` returns `current_process_id` (the requestor of the IRP being dispatched).
"""

from __future__ import annotations

import struct
import uuid

PASSIVE_LEVEL = 0
DISPATCH_LEVEL = 2
HIGH_LEVEL = 15

EVENT_CONTROL_CODE_DISABLE_PROVIDER = 0
EVENT_CONTROL_CODE_ENABLE_PROVIDER = 1
EVENT_CONTROL_CODE_CAPTURE_STATE = 2

STATUS_SUCCESS = 0
STATUS_INVALID_HANDLE = 0xC0000008
STATUS_INSUFFICIENT_RESOURCES = 0xC000009A

ETW_ARGC = {"EtwRegister": 4, "EtwUnregister": 1, "EtwWriteTransfer": 6, "PsGetCurrentProcessId": 0}

ETW_IRQL_RULES = {
    "EtwRegister": (PASSIVE_LEVEL, "wdm/nf-wdm-etwregister"),
    "EtwUnregister": (PASSIVE_LEVEL, "wdm/nf-wdm-etwunregister"),
    # "Any level", with non-paged data above APC_LEVEL.
    "EtwWriteTransfer": (HIGH_LEVEL, "wdm/nf-wdm-etwwritetransfer"),
    "PsGetCurrentProcessId": (DISPATCH_LEVEL, "ntddk/nf-ntddk-psgetcurrentprocessid"),
}

# The `Weir` provider id (crates/weir-etw/src/provider.rs), derived from the name.
WEIR_PROVIDER_ID = uuid.UUID("29506611-661d-5855-fb09-d04b2205cbb1")


def tracelogging_id(name: str) -> uuid.UUID:
    """The provider id TraceLoggingProvider.h derives from a name (EventSource's algorithm)."""
    import hashlib

    ns = bytes.fromhex("482C2DB2C39047C887F81A15BFC130FB")
    h = bytearray(hashlib.sha1(ns + name.upper().encode("utf-16-be")).digest()[:16])
    h[7] = (h[7] & 0x0F) | 0x50
    return uuid.UUID(bytes_le=bytes(h))


def decode_event(provider_meta: bytes, event_meta: bytes, payload: bytes) -> dict:
    """One TraceLogging event -> {"provider", "name", "fields": {name: value}, "types": {name: (in, out)}}.
    Raises ValueError on any inconsistency (sizes, NULs, payload too short or too long)."""

    def cstr(b: bytes, i: int) -> tuple[str, int]:
        end = b.index(b"\0", i)
        return b[i:end].decode("utf-8"), end + 1

    psize = struct.unpack_from("<H", provider_meta)[0]
    if psize != len(provider_meta):
        raise ValueError(f"provider metadata size {psize} != block size {len(provider_meta)}")
    provider, _ = cstr(provider_meta, 2)
    esize = struct.unpack_from("<H", event_meta)[0]
    if esize != len(event_meta):
        raise ValueError(f"event metadata size {esize} != block size {len(event_meta)}")
    i = 2
    while event_meta[i] & 0x80:  # event tag bytes
        i += 1
    i += 1
    name, i = cstr(event_meta, i)
    fields, types, p = {}, {}, 0
    while i < len(event_meta):
        fname, i = cstr(event_meta, i)
        intype = event_meta[i]
        i += 1
        outtype = 0
        if intype & 0x80:
            outtype = event_meta[i]
            i += 1
            if outtype & 0x80:
                i += 4  # field tag
        it, ot = intype & 0x1F, outtype & 0x7F
        if intype & 0x60:
            raise ValueError(f"field {fname}: arrays are not used by Weir")
        if it in (4,):
            v = payload[p]; p += 1
        elif it == 6:
            v = struct.unpack_from(">H" if ot == 7 else "<H", payload, p)[0]; p += 2
        elif it in (7, 13):
            v = struct.unpack_from("<i", payload, p)[0]; p += 4
            if it == 13:
                v = bool(v)
        elif it in (8, 20):
            v = struct.unpack_from("<I", payload, p)[0]; p += 4
        elif it in (10, 21):
            v = struct.unpack_from("<Q", payload, p)[0]; p += 8
        elif it in (14, 22, 23):
            n = struct.unpack_from("<H", payload, p)[0]; p += 2
            raw = payload[p:p + n]
            if len(raw) != n:
                raise ValueError(f"field {fname}: {n} bytes announced, {len(raw)} left")
            p += n
            v = raw.decode("utf-16-le") if it == 22 else raw.decode("utf-8") if it == 23 else raw
        else:
            raise ValueError(f"field {fname}: in-type {it} not expected in Weir's events")
        if p > len(payload):
            raise ValueError(f"payload too short at field {fname}")
        fields[fname], types[fname] = v, (it, ot)
    if p != len(payload):
        raise ValueError(f"{len(payload) - p} payload bytes left after the last field")
    return {"provider": provider, "name": name, "fields": fields, "types": types}


class EtwModelMixin:
    def init_etw_state(self) -> None:
        self.etw_providers: dict[int, dict] = {}  # handle -> {guid, callback, context, live, call}
        self._next_etw_handle = 0xFFFF_C000_0000_0100
        # Sessions: {"level", "keywords"}; an event is delivered if any wants it.
        self.etw_sessions: list[dict] = []
        self.etw_events: list[dict] = []  # delivered to at least one session
        self.etw_unwanted: list[dict] = []  # written while no session wanted it
        self.etw_writes = 0
        self.current_process_id = 4321

    def etw_leaks(self) -> list[str]:
        return [f"ETW provider {h:#x} (from {p['call']}) not unregistered (EtwUnregister missing)"
                for h, p in self.etw_providers.items() if p["live"]]

    def etw_live(self) -> list[dict]:
        return [p for p in self.etw_providers.values() if p["live"]]

    def _EtwRegister(self, emu, mem, call, orig, argv):
        guid_ptr, callback, context, out = argv[0], argv[1], argv[2], argv[3]
        guid = uuid.UUID(bytes_le=mem.read(guid_ptr, 16))
        call.args = {"ProviderId": str(guid), "EnableCallback": hex(callback), "CallbackContext": hex(context)}
        if not out:
            self.violation(call, "RegHandle", "null out pointer")
            return STATUS_INSUFFICIENT_RESOURCES
        h = self._next_etw_handle
        self._next_etw_handle += 0x10
        self.etw_providers[h] = {"guid": guid, "callback": callback, "context": context, "live": True, "call": call.label}
        mem.w64(out, h)
        call.args["assigned_RegHandle"] = hex(h)
        return STATUS_SUCCESS

    def _EtwUnregister(self, emu, mem, call, orig, argv):
        h = argv[0]
        call.args = {"RegHandle": hex(h)}
        p = self.etw_providers.get(h)
        if p is None or not p["live"]:
            self.violation(call, "RegHandle", f"{h:#x} is not a live registration")
            return STATUS_INVALID_HANDLE
        p["live"] = False
        return STATUS_SUCCESS

    def _EtwWriteTransfer(self, emu, mem, call, orig, argv):
        h, desc, activity, related, count, data = argv[:6]
        count &= 0xFFFF_FFFF
        self.etw_writes += 1
        call.args = {"RegHandle": hex(h), "UserDataCount": count}
        p = self.etw_providers.get(h)
        if p is None or not p["live"]:
            self.violation(call, "RegHandle", f"{h:#x} is not a live registration (write after EtwUnregister?)")
            return STATUS_INVALID_HANDLE
        ev_id, version, channel, level, opcode, task, keyword = struct.unpack("<HBBBBHQ", mem.read(desc, 16))
        blocks = []
        for k in range(count):
            ptr, size, reserved = struct.unpack("<QII", mem.read(data + 16 * k, 16))
            blocks.append((reserved & 0xFF, mem.read(ptr, size) if size else b""))
        kinds = [t for t, _ in blocks]
        if channel != 11 or kinds[:2] != [2, 1] or any(t != 0 for t in kinds[2:]):
            self.violation(call, "UserData", f"not a TraceLogging event: channel {channel}, block types {kinds}")
            return STATUS_SUCCESS
        try:
            ev = decode_event(blocks[0][1], blocks[1][1], b"".join(b for _, b in blocks[2:]))
        except (ValueError, IndexError, UnicodeDecodeError, struct.error) as e:
            self.violation(call, "UserData", f"TraceLogging event does not decode: {e}")
            return STATUS_SUCCESS
        ev.update({"level": level, "keyword": keyword, "irql": self.irql, "phase": self.phase, "call": call.label})
        call.args["event"] = ev["name"]
        wanted = any((s["keywords"] == 0 or keyword & s["keywords"]) and (s["level"] == 0 or level <= s["level"])
                     for s in self.etw_sessions)
        (self.etw_events if wanted else self.etw_unwanted).append(ev)
        return STATUS_SUCCESS

    def _PsGetCurrentProcessId(self, emu, mem, call, orig, argv):
        return self.current_process_id


def enable_session(run, level: int, keywords: int, code: int = EVENT_CONTROL_CODE_ENABLE_PROVIDER) -> list:
    """A controller enables (or, with code 0, disables) the `Weir` provider: the model's session
    list changes and every live registration's enable callback runs at PASSIVE_LEVEL with the
    combined level and keywords, as ETW calls it. Returns the callback runs."""
    m = run.model
    if code == EVENT_CONTROL_CODE_ENABLE_PROVIDER:
        m.etw_sessions.append({"level": level, "keywords": keywords})
    elif code == EVENT_CONTROL_CODE_DISABLE_PROVIDER:
        m.etw_sessions.clear()
    out = []
    guid = run.alloc(16, WEIR_PROVIDER_ID.bytes_le, tag="etw.guid")
    for p in m.etw_live():
        prev = m.phase
        m.begin_phase("EtwEnableCallback")
        try:
            with m.at_irql(PASSIVE_LEVEL):
                out.append(run.call(p["callback"], [guid, code, level, keywords, 0, 0, p["context"]],
                                    f"ETW enable callback (code {code})"))
        finally:
            m.phase = prev
    return out
