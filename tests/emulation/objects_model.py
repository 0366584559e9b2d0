"""Object-manager side of the kernel model, as a mixin of `KernelModel`.

Security descriptors and ACLs written by the Rtl* routines, the device's
security (ZwSetSecurityObject) and the I/O manager's access check on CREATE
(`access_check`), kernel handles (ObOpenObjectByPointer, ZwClose), the
service key's registry values (ZwOpenKey, ZwQueryValueKey) and dispatcher
events (KeInitializeEvent, KeSetEvent, KeWaitForSingleObject).
"""

from __future__ import annotations

import struct

import layouts as L
from events_model import APC_LEVEL


class ObjectsModelMixin:
    # ============================================================ security
    def _RtlCreateSecurityDescriptor(self, emu, mem, call, orig, argv):
        sd, rev = argv[0], argv[1] & 0xFFFFFFFF
        call.args = {"SecurityDescriptor": hex(sd), "Revision": rev}
        if rev != L.SECURITY_DESCRIPTOR_REVISION:
            return L.STATUS_UNKNOWN_REVISION
        mem.write(sd, bytes([rev]) + bytes(L.SECURITY_DESCRIPTOR_SIZE - 1))
        return L.STATUS_SUCCESS

    def _RtlCreateAcl(self, emu, mem, call, orig, argv):
        acl, length, rev = argv[0], argv[1] & 0xFFFFFFFF, argv[2] & 0xFFFFFFFF
        call.args = {"Acl": hex(acl), "AclLength": length, "AclRevision": rev}
        if length < 8 or length % 4 or length > 0xFFFF:
            return L.STATUS_INVALID_PARAMETER
        if rev not in (2, 4):
            return L.STATUS_INVALID_PARAMETER
        mem.write(acl, struct.pack("<BBHHH", rev, 0, length, 0, 0))
        return L.STATUS_SUCCESS

    def _RtlAddAccessAllowedAce(self, emu, mem, call, orig, argv):
        acl, rev, mask, sid = argv[0], argv[1] & 0xFFFFFFFF, argv[2] & 0xFFFFFFFF, argv[3]
        sid_text, sid_len = L.read_sid(mem, sid)
        call.args = {"Acl": hex(acl), "AceRevision": rev, "AccessMask": hex(mask), "Sid": sid_text}
        arev, _, size, count, _ = struct.unpack("<BBHHH", mem.read(acl, 8))
        off = 8
        for _ in range(count):
            off += struct.unpack("<H", mem.read(acl + off + 2, 2))[0]
        ace_size = 8 + sid_len
        if off + ace_size > size:
            return L.STATUS_ALLOTTED_SPACE_EXCEEDED
        mem.write(acl + off, struct.pack("<BBHI", L.ACCESS_ALLOWED_ACE_TYPE, 0, ace_size, mask) + mem.read(sid, sid_len))
        mem.write(acl + 4, struct.pack("<H", count + 1))
        return L.STATUS_SUCCESS

    def _RtlSetDaclSecurityDescriptor(self, emu, mem, call, orig, argv):
        sd, present, dacl, defaulted = argv[0], argv[1] & 0xFF, argv[2], argv[3] & 0xFF
        call.args = {"SecurityDescriptor": hex(sd), "DaclPresent": present, "Dacl": hex(dacl), "DaclDefaulted": defaulted}
        rev, _, control = struct.unpack("<BBH", mem.read(sd, 4))
        if rev != L.SECURITY_DESCRIPTOR_REVISION:
            return L.STATUS_UNKNOWN_REVISION
        if control & L.SE_SELF_RELATIVE:
            return L.STATUS_INVALID_SECURITY_DESCR
        control &= ~(L.SE_DACL_PRESENT | L.SE_DACL_DEFAULTED)
        if present:
            control |= L.SE_DACL_PRESENT | (L.SE_DACL_DEFAULTED if defaulted else 0)
            mem.w64(sd + L.SD_DACL, dacl)
        mem.write(sd + 2, struct.pack("<H", control))
        return L.STATUS_SUCCESS

    def _ObOpenObjectByPointer(self, emu, mem, call, orig, argv):
        obj, attrs, access_state, desired, otype, mode, hp = argv[:7]
        call.args = {"Object": hex(obj), "HandleAttributes": hex(attrs & 0xFFFFFFFF), "PassedAccessState": hex(access_state),
                     "DesiredAccess": hex(desired & 0xFFFFFFFF), "ObjectType": hex(otype), "AccessMode": mode & 0xFF, "Handle": hex(hp)}
        d = self.devices.get(obj)
        if d is None or not d["live"]:
            self.violation(call, "Object", f"{obj:#x} is not a live device object")
            return L.STATUS_INVALID_PARAMETER
        if not attrs & L.OBJ_KERNEL_HANDLE:
            self.violation(call, "HandleAttributes", "no OBJ_KERNEL_HANDLE: the handle would land in the current process's handle table")
        if mode & 0xFF != 0:
            self.violation(call, "AccessMode", "not KernelMode")
        if not hp:
            self.violation(call, "Handle", "null out pointer")
            return L.STATUS_INVALID_PARAMETER
        h = self._next_kernel_handle
        self._next_kernel_handle += 4
        self.kernel_handles[h] = {"object": obj, "access": desired & 0xFFFFFFFF, "call": call.label}
        mem.w64(hp, h)
        call.args["assigned_handle"] = hex(h)
        return L.STATUS_SUCCESS

    def _ZwSetSecurityObject(self, emu, mem, call, orig, argv):
        h, info, sd = argv[0], argv[1] & 0xFFFFFFFF, argv[2]
        call.args = {"Handle": hex(h), "SecurityInformation": hex(info), "SecurityDescriptor": hex(sd)}
        kh = self.kernel_handles.get(h)
        if kh is None:
            self.violation(call, "Handle", f"{h:#x} is not an open kernel handle")
            return L.STATUS_INVALID_HANDLE
        if info & L.DACL_SECURITY_INFORMATION and not kh["access"] & (L.WRITE_DAC | L.GENERIC_ALL):
            self.violation(call, "Handle", "opened without WRITE_DAC")
            return L.STATUS_ACCESS_DENIED
        try:
            parsed = L.read_security_descriptor(mem, sd)
        except ValueError as e:
            self.violation(call, "SecurityDescriptor", str(e))
            return L.STATUS_INVALID_SECURITY_DESCR
        call.args["parsed"] = parsed
        dev = self.devices[kh["object"]]
        if info & L.LABEL_SECURITY_INFORMATION:
            if not kh["access"] & (L.WRITE_OWNER | L.GENERIC_ALL):
                self.violation(call, "Handle", "LABEL_SECURITY_INFORMATION needs WRITE_OWNER; the handle was opened without it")
                return L.STATUS_ACCESS_DENIED
            labels = [a for a in (parsed["sacl"] or []) if a["type"] == L.SYSTEM_MANDATORY_LABEL_ACE_TYPE]
            if len(labels) != 1 or not labels[0]["sid"].startswith("S-1-16-"):
                self.violation(call, "SecurityDescriptor", f"LABEL_SECURITY_INFORMATION without exactly one mandatory label ACE in the SACL: {parsed['sacl']}")
                return L.STATUS_INVALID_SECURITY_DESCR
            dev["label"] = {"level": int(labels[0]["sid"].rsplit("-", 1)[1]), "policy": labels[0]["mask"]}
        if info & L.DACL_SECURITY_INFORMATION:
            dev["dacl"] = parsed["dacl"]
            dev["dacl_protected"] = bool(info & L.PROTECTED_DACL_SECURITY_INFORMATION) or parsed["protected"]
        return L.STATUS_SUCCESS

    def _ZwOpenKey(self, emu, mem, call, orig, argv):
        hp, access, oa = argv[0], argv[1] & 0xFFFFFFFF, argv[2]
        root = mem.u64(oa + 8) if oa else 0
        name = mem.unicode_string(mem.u64(oa + 16)) if oa else None
        attrs = mem.u32(oa + 24) if oa else 0
        text = name["text"] if name else None
        call.args = {"KeyHandle": hex(hp), "DesiredAccess": hex(access), "RootDirectory": hex(root), "ObjectName": text, "Attributes": hex(attrs)}
        if not attrs & L.OBJ_KERNEL_HANDLE:
            self.violation(call, "ObjectAttributes->Attributes", "no OBJ_KERNEL_HANDLE")
        if access & ~0x20019:
            self.violation(call, "DesiredAccess", f"{access:#x} asks for more than KEY_READ")
        if root:
            parent = self.kernel_handles.get(root)
            if parent is None or parent.get("key") is None:
                self.violation(call, "RootDirectory", f"{root:#x} is not an open key handle")
                return L.STATUS_INVALID_HANDLE
            if (text or "").lower() != "parameters" or self.parameters is None:
                return L.STATUS_OBJECT_NAME_NOT_FOUND
            key = parent["key"] + "\\Parameters"
        else:
            if not text or not text.lower().startswith("\\registry\\machine\\"):
                self.violation(call, "ObjectName", f"{text!r} is not an absolute registry path")
                return L.STATUS_OBJECT_NAME_NOT_FOUND
            key = text
        h = self._next_kernel_handle
        self._next_kernel_handle += 4
        self.kernel_handles[h] = {"object": 0, "key": key, "access": access, "call": call.label}
        mem.w64(hp, h)
        call.args["assigned_handle"] = hex(h)
        return L.STATUS_SUCCESS

    def _ZwQueryValueKey(self, emu, mem, call, orig, argv):
        h, name_p, cls, buf, length, resp = argv[:6]
        name = mem.unicode_string(name_p)
        text = name["text"] if name else None
        call.args = {"KeyHandle": hex(h), "ValueName": text, "KeyValueInformationClass": cls & 0xFFFFFFFF,
                     "Length": length & 0xFFFFFFFF}
        kh = self.kernel_handles.get(h)
        if kh is None or kh.get("key") is None:
            self.violation(call, "KeyHandle", f"{h:#x} is not an open key handle")
            return L.STATUS_INVALID_HANDLE
        if (cls & 0xFFFFFFFF) != 2:
            self.violation(call, "KeyValueInformationClass", "only KeyValuePartialInformation is modelled")
            return L.STATUS_INVALID_PARAMETER
        values = self.parameters or {}
        if not kh["key"].endswith("\\Parameters") or text not in values:
            return L.STATUS_OBJECT_NAME_NOT_FOUND
        vtype, value = values[text]
        data = struct.pack("<I", value) if vtype == L.REG_DWORD else bytes(value)
        blob = struct.pack("<III", 0, vtype, len(data)) + data
        if resp:
            mem.w32(resp, len(blob))
        if (length & 0xFFFFFFFF) < len(blob):
            return L.STATUS_BUFFER_OVERFLOW if (length & 0xFFFFFFFF) >= 12 else L.STATUS_BUFFER_TOO_SMALL
        mem.write(buf, blob)
        return L.STATUS_SUCCESS

    def _ZwClose(self, emu, mem, call, orig, argv):
        h = argv[0]
        call.args = {"Handle": hex(h)}
        if self.kernel_handles.pop(h, None) is None:
            self.violation(call, "Handle", f"{h:#x} is not an open kernel handle (double close?)")
            return L.STATUS_INVALID_HANDLE
        return L.STATUS_SUCCESS

    def access_check(self, device: int, token: dict, desired: int) -> tuple[bool, str]:
        """The I/O manager's access check on IRP_MJ_CREATE, from the DACL the
        driver applied (or the model's default device security if none).

        `token`: {"user": sid, "groups": [sid or (sid, "deny-only")],
        "restricted": [sid...] or None, "integrity": RID (0x1000 low,
        0x2000 medium, 0x3000 high, 0x4000 system)}. Follows SeAccessCheck's
        order: the mandatory integrity policy (the label the driver set, or
        for objects without one medium with NO_WRITE_UP), then the DACL in ACE order for the normal
        SIDs and, for a restricted token, again for the restricting SIDs.
        Returns (granted, reason)."""
        d = self.devices.get(device)
        if d is None or not d["live"]:
            return False, "no such device"
        desired = L.map_generic(desired)
        label = d.get("label") or {"level": L.MEDIUM_RID, "policy": L.NO_WRITE_UP}
        if token.get("integrity", L.MEDIUM_RID) < label["level"]:
            for bit, mask, what in ((L.NO_WRITE_UP, L.WRITE_UP_MASK, "write"), (L.NO_READ_UP, L.READ_UP_MASK, "read"),
                                    (L.NO_EXECUTE_UP, L.EXECUTE_UP_MASK, "execute")):
                if label["policy"] & bit and desired & mask:
                    return False, (f"mandatory integrity: {what} access from integrity {token.get('integrity', L.MEDIUM_RID):#x} "
                                   f"below the object's label {label['level']:#x} (policy {label['policy']:#x})")
        dacl = d.get("dacl")
        if dacl is None:
            dacl = L.DEFAULT_DEVICE_DACL
        enabled, deny_only = set([token["user"]]), set()
        for g in token.get("groups", []):
            if isinstance(g, tuple):
                deny_only.add(g[0])
            else:
                enabled.add(g)

        def evaluate(sids_allow, sids_deny) -> int:
            granted, denied = 0, 0
            for ace in dacl:
                mask = L.map_generic(ace["mask"])
                if ace["type"] == L.ACCESS_DENIED_ACE_TYPE and ace["sid"] in sids_deny:
                    denied |= mask & ~granted
                elif ace["type"] == L.ACCESS_ALLOWED_ACE_TYPE and ace["sid"] in sids_allow:
                    granted |= mask & ~denied
            return granted

        g1 = evaluate(enabled, enabled | deny_only)
        if desired & ~g1:
            return False, f"DACL grants {g1:#x} of {desired:#x} to the token's enabled SIDs"
        restricted = token.get("restricted")
        if restricted is not None:
            g2 = evaluate(set(restricted), set(restricted))
            if desired & ~g2:
                return False, f"DACL grants {g2:#x} of {desired:#x} to the restricting SIDs"
        return True, "granted"

    # ============================================================ events
    def _KeInitializeEvent(self, emu, mem, call, orig, argv):
        ev, typ, state = argv[0], argv[1] & 0xFFFFFFFF, argv[2] & 0xFF
        call.args = {"Event": hex(ev), "Type": typ, "State": state}
        self.events[ev] = {"type": typ, "signaled": bool(state), "call": call.label}
        return None

    def _KeSetEvent(self, emu, mem, call, orig, argv):
        ev, incr, wait = argv[0], argv[1], argv[2] & 0xFF
        call.args = {"Event": hex(ev), "Increment": incr, "Wait": wait}
        e = self.events.get(ev)
        if e is None:
            self.violation(call, "Event", f"{ev:#x} was never initialised with KeInitializeEvent")
            return 0
        if wait:
            self.violation(call, "Wait", "Wait TRUE is not modelled")
        prev = int(e["signaled"])
        e["signaled"] = True
        return prev

    def _KeWaitForSingleObject(self, emu, mem, call, orig, argv):
        obj, reason, mode, alertable, timeout = argv[:5]
        t = struct.unpack("<q", mem.read(timeout, 8))[0] if timeout else None
        call.args = {"Object": hex(obj), "WaitReason": reason & 0xFFFFFFFF, "WaitMode": mode & 0xFF,
                     "Alertable": alertable & 0xFF, "Timeout": t}
        e = self.events.get(obj)
        if e is None:
            self.violation(call, "Object", f"{obj:#x} is not an event the model knows")
            return L.STATUS_SUCCESS
        if timeout and t == 0 and self.irql > APC_LEVEL:
            pass
        elif self.irql > APC_LEVEL:
            pass  # reported by the IRQL rule
        if not e["signaled"]:
            if t is not None:
                return L.STATUS_TIMEOUT
            # One emulated thread: nobody else can ever set it.
            self.violation(call, "Object", "waits forever on an event that is not signaled (deadlock: already held?)")
            return L.STATUS_SUCCESS
        if e["type"] == L.SYNCHRONIZATION_EVENT:
            e["signaled"] = False
        return L.STATUS_SUCCESS
