"""The I/O manager, pool and debugger routines of the kernel model, as a mixin of `KernelModel`.

Device objects and symbolic links, pool blocks (with `PoolArena`, an optional
single-mapping backing), IRP completion, KeBugCheck(Ex) (`BugCheck`), debug
output and the C runtime's memory routines.
"""

from __future__ import annotations

import struct

import layouts as L
from events_model import PASSIVE_LEVEL


class BugCheck(Exception):
    pass


class PoolArena:
    """Optional pool backing: one large mapping carved into size classes.

    speakeasy maps every allocation separately and its cost grows with the number of mappings, so
    a driver making tens of thousands of allocations in one request (compiling a 10,000-rule policy)
    would take many minutes. With an arena, allocations are served from free lists per power-of-two
    size class; blocks are zeroed like ExAllocatePool2's. The model's bookkeeping (live blocks, tags,
    double frees, balance) is unchanged; what is lost is speakeasy's fault on access beyond a
    block's own mapping, so tests that need that keep the default.
    """

    def __init__(self, se, size: int = 512 << 20):
        self.se = se
        self.base = se.mem_alloc(size, tag="weir.model.pool_arena")
        self.end = self.base + size
        self.next = self.base
        self.free_lists: dict[int, list[int]] = {}
        self.sizes: dict[int, int] = {}

    @staticmethod
    def _class(size: int) -> int:
        return max(16, 1 << (max(size, 1) - 1).bit_length())

    def alloc(self, size: int) -> int:
        cls = self._class(size)
        free = self.free_lists.get(cls)
        if free:
            addr = free.pop()
        elif self.next + cls <= self.end:
            addr, self.next = self.next, self.next + cls
        else:
            return 0
        self.sizes[addr] = cls
        self.se.mem_write(addr, bytes(max(size, 1)))
        return addr

    def free(self, addr: int) -> None:
        cls = self.sizes.pop(addr, None)
        if cls is not None:
            self.free_lists.setdefault(cls, []).append(addr)


class IoModelMixin:
    # ================================================================ ntoskrnl
    def _decode_IoCreateDevice(self, mem, argv):
        drv, ext, name, dtype, chars, excl, out = argv[:7]
        us = mem.unicode_string(name)
        return {
            "DriverObject": hex(drv), "DeviceExtensionSize": ext & 0xFFFFFFFF,
            "DeviceName": us["text"] if us else None, "DeviceName_UNICODE_STRING": us,
            "DeviceType": dtype & 0xFFFFFFFF, "DeviceCharacteristics": chars & 0xFFFFFFFF,
            "Exclusive": excl & 0xFF, "DeviceObject": hex(out),
        }

    def _IoCreateDevice(self, emu, mem, call, orig, argv):
        drv, _ext, _name, _dtype, _chars, _excl, out = argv[:7]
        call.args = a = self._decode_IoCreateDevice(mem, argv)
        if self.driver_object is not None and drv != self.driver_object:
            self.violation(call, "DriverObject", f"{drv:#x} is not the DRIVER_OBJECT passed to DriverEntry ({self.driver_object:#x})")
            return L.STATUS_INVALID_PARAMETER
        if not out:
            self.violation(call, "DeviceObject", "null out pointer")
            return L.STATUS_INVALID_PARAMETER
        us = a["DeviceName_UNICODE_STRING"]
        if us and (us["Length"] % 2 or us["Length"] > us["MaximumLength"]):
            self.violation(call, "DeviceName", f"malformed UNICODE_STRING {us}")
            return L.STATUS_INVALID_PARAMETER
        if a["DeviceName"] and any(d["name"] == a["DeviceName"] for d in self.live_devices().values()):
            self.violation(call, "DeviceName", f"{a['DeviceName']!r} already exists")
            return L.STATUS_OBJECT_NAME_COLLISION
        status = orig(argv)
        if not L.is_success(status or 0):
            return status
        dev = mem.ptr(out)
        self.devices[dev] = {
            "name": a["DeviceName"], "type": a["DeviceType"], "characteristics": a["DeviceCharacteristics"],
            "exclusive": a["Exclusive"], "live": True, "call": call.label,
        }
        call.args["created_device"] = hex(dev)
        return L.STATUS_SUCCESS

    def _decode_IoDeleteDevice(self, mem, argv):
        return {"DeviceObject": hex(argv[0])}

    def _IoDeleteDevice(self, emu, mem, call, orig, argv):
        dev = argv[0]
        call.args = {"DeviceObject": hex(dev)}
        d = self.devices.get(dev)
        if d is None or not d["live"]:
            self.violation(call, "DeviceObject", f"{dev:#x} is not a live device (double delete or never created)")
            return None
        call.args["DeviceName"] = d["name"]
        still = [i for i, c in self.callouts_rt.items() if c["device"] == dev]
        if still:
            self.violation(call, "DeviceObject", f"device deleted while callouts {still} registered against it are still registered")
        subs = [hex(h) for h, sub in self.bfe_subscriptions.items() if sub["device"] == dev]
        if subs:
            self.violation(call, "DeviceObject", f"device deleted while BFE state subscriptions {subs} made with it are active")
        handles = [hex(h) for h, kh in self.kernel_handles.items() if kh["object"] == dev and dev]
        if handles:
            self.violation(call, "DeviceObject", f"device deleted while kernel handles {handles} to it are open")
        d["live"] = False
        orig(argv)
        return None

    def _decode_IoCreateSymbolicLink(self, mem, argv):
        link, target = mem.unicode_string(argv[0]), mem.unicode_string(argv[1])
        return {"SymbolicLinkName": link and link["text"], "DeviceName": target and target["text"]}

    def _IoCreateSymbolicLink(self, emu, mem, call, orig, argv):
        call.args = a = self._decode_IoCreateSymbolicLink(mem, argv)
        if a["SymbolicLinkName"] is None or a["DeviceName"] is None:
            self.violation(call, "SymbolicLinkName/DeviceName", "null UNICODE_STRING")
            return L.STATUS_INVALID_PARAMETER
        if a["SymbolicLinkName"] in self.symlinks:
            self.violation(call, "SymbolicLinkName", f"{a['SymbolicLinkName']!r} already exists")
            return L.STATUS_OBJECT_NAME_COLLISION
        target = [d for d in self.live_devices().values() if d["name"] == a["DeviceName"]]
        if not target:
            self.violation(call, "DeviceName", f"{a['DeviceName']!r} is not a live device")
            return L.STATUS_OBJECT_NAME_NOT_FOUND
        if self.require_dacl_before_link and target[0].get("dacl") is None:
            self.violation(call, "DeviceName", f"symbolic link created to {a['DeviceName']!r} before its DACL was set "
                           "(user mode could open the device with the default security in between)")
        status = orig(argv)
        if L.is_success(status or 0):
            self.symlinks[a["SymbolicLinkName"]] = a["DeviceName"]
        return status

    def _decode_IoDeleteSymbolicLink(self, mem, argv):
        link = mem.unicode_string(argv[0])
        return {"SymbolicLinkName": link and link["text"]}

    def _IoDeleteSymbolicLink(self, emu, mem, call, orig, argv):
        call.args = a = self._decode_IoDeleteSymbolicLink(mem, argv)
        name = a["SymbolicLinkName"]
        if name not in self.symlinks:
            self.violation(call, "SymbolicLinkName", f"{name!r} does not exist")
            return L.STATUS_OBJECT_NAME_NOT_FOUND
        call.args["target"] = self.symlinks.pop(name)
        orig(argv)
        return L.STATUS_SUCCESS

    def _alloc(self, call, orig, argv, flags, size, tag, kind):
        addr = self.pool_arena.alloc(size) if self.pool_arena else (orig(argv) or 0)
        call.args["returned"] = hex(addr)
        if addr:
            block = {"size": size, "tag": tag, "flags": flags, "call": call.label, "kind": kind}
            self.pool[addr] = block
            self.pool_history.append({"op": "alloc", "address": hex(addr), **block})
        return addr

    def _decode_ExAllocatePool2(self, mem, argv):
        flags, size, tag = argv[0], argv[1], argv[2] & 0xFFFFFFFF
        return {"Flags": hex(flags), "NumberOfBytes": size, "Tag": _tag(tag)}

    def _ExAllocatePool2(self, emu, mem, call, orig, argv):
        call.args = self._decode_ExAllocatePool2(mem, argv)
        return self._alloc(call, orig, argv, argv[0], argv[1], argv[2] & 0xFFFFFFFF, "ExAllocatePool2")

    def _decode_ExAllocatePoolWithTag(self, mem, argv):
        return {"PoolType": argv[0] & 0xFFFFFFFF, "NumberOfBytes": argv[1], "Tag": _tag(argv[2] & 0xFFFFFFFF)}

    def _ExAllocatePoolWithTag(self, emu, mem, call, orig, argv):
        call.args = self._decode_ExAllocatePoolWithTag(mem, argv)
        return self._alloc(call, orig, argv, argv[0] & 0xFFFFFFFF, argv[1], argv[2] & 0xFFFFFFFF, "ExAllocatePoolWithTag")

    def _free(self, mem, call, orig, argv, addr, tag):
        block = self.pool.get(addr)
        if block is None:
            self.violation(call, "P", f"{addr:#x} is not a live pool block (double free or foreign pointer)")
            return None
        if tag is not None and block["tag"] != tag:
            self.violation(call, "Tag", f"tag {_tag(tag)!r} differs from the allocation's tag {_tag(block['tag'])!r}")
        self.check_free(call, addr, block["size"])
        self.check_no_global_refs(mem, call, addr, block["size"])
        del self.pool[addr]
        self.pool_history.append({"op": "free", "address": hex(addr), "call": call.label})
        if self.pool_arena:
            self.pool_arena.free(addr)
        else:
            orig(argv)
        return None

    def _ExFreePoolWithTag(self, emu, mem, call, orig, argv):
        addr, tag = argv[0], argv[1] & 0xFFFFFFFF
        call.args = {"P": hex(addr), "Tag": _tag(tag)}
        return self._free(mem, call, orig, argv, addr, tag)

    def _ExFreePool(self, emu, mem, call, orig, argv):
        call.args = {"P": hex(argv[0])}
        return self._free(mem, call, orig, argv, argv[0], None)

    def _SeTokenIsAdmin(self, emu, mem, call, orig, argv):
        token = argv[0]
        admin = token in self.admin_tokens
        call.args = {"Token": hex(token), "model_answer": admin}
        return 1 if admin else 0

    def _KeDelayExecutionThread(self, emu, mem, call, orig, argv):
        mode, alertable, interval = argv[0] & 0xFF, argv[1] & 0xFF, argv[2]
        value = struct.unpack("<q", mem.read(interval, 8))[0] if interval else None
        call.args = {"WaitMode": mode, "Alertable": alertable, "Interval": value}
        if interval == 0:
            self.violation(call, "Interval", "null pointer")
        return L.STATUS_SUCCESS

    def _bugcheck(self, emu, call, args):
        call.args = args
        self.bugchecks.append({"call": call.label, **args})
        self.violation(call, "BugCheckCode", f"KeBugCheck called: {args}")
        # KeBugCheckEx never returns: end this run as a fault.
        try:
            err = emu.get_error_info("KeBugCheckEx", emu.get_pc())
            emu.curr_run.error = err
            emu.on_run_complete()
        except Exception:
            emu.stop()
        return 0

    def _KeBugCheckEx(self, emu, mem, call, orig, argv):
        code, p1, p2, p3, p4 = (list(argv) + [0] * 5)[:5]
        return self._bugcheck(emu, call, {"BugCheckCode": hex(code & 0xFFFFFFFF), "P1": hex(p1), "P2": hex(p2), "P3": hex(p3), "P4": hex(p4)})

    def _KeBugCheck(self, emu, mem, call, orig, argv):
        return self._bugcheck(emu, call, {"BugCheckCode": hex(argv[0] & 0xFFFFFFFF)})

    def _IofCompleteRequest(self, emu, mem, call, orig, argv):
        irp, boost = argv[0], argv[1] & 0xFF
        status = mem.u32(irp + L.IRP_IO_STATUS_STATUS)
        info = mem.u64(irp + L.IRP_IO_STATUS_INFORMATION)
        call.args = {"Irp": hex(irp), "PriorityBoost": boost, "IoStatus.Status": L.status_name(status), "IoStatus.Information": info}
        self.irp_completions.append({"irp": irp, "status": status, "information": info, "call": call.label})
        self.check_completion(mem, call, irp)
        orig(argv)
        self.outstanding_irps.discard(irp)
        self._watch_after_completion(emu, call, irp)
        return None

    def _dbgprint(self, emu, mem, call, fixed):
        import speakeasy.winenv.arch as _arch

        args = emu.get_func_argv(_arch.CALL_CONV_CDECL, fixed + 2)
        fmt = mem.cstr(args[fixed])
        text = fmt
        if fmt == "%s":
            text = mem.cstr(args[fixed + 1])
        return args, fmt, text

    def _DbgQueryDebugFilterState(self, emu, mem, call, orig, argv):
        call.args = {"ComponentId": argv[0] & 0xFFFFFFFF, "Level": argv[1] & 0xFFFFFFFF,
                     "model_answer": self.debug_filter_enabled}
        return 1 if self.debug_filter_enabled else 0

    def _DbgPrintEx(self, emu, mem, call, orig, argv):
        args, fmt, text = self._dbgprint(emu, mem, call, 2)
        call.args = {"ComponentId": args[0] & 0xFFFFFFFF, "Level": args[1] & 0xFFFFFFFF, "Format": fmt, "text": text}
        if self.irql > PASSIVE_LEVEL and fmt and any(c in fmt for c in ("%wc", "%wZ", "%ws", "%wS", "%C", "%S", "%Z", "%ls", "%lc")):
            self.violation(call, "IRQL", f"Unicode format {fmt!r} above PASSIVE_LEVEL (DbgPrintEx page: Unicode conversions only at PASSIVE_LEVEL)")
        self.debug_messages.append({"phase": self.phase, "level": args[1] & 0xFFFFFFFF, "text": text})
        return len(text or "")

    def _DbgPrint(self, emu, mem, call, orig, argv):
        args, fmt, text = self._dbgprint(emu, mem, call, 0)
        call.args = {"Format": fmt, "text": text}
        self.debug_messages.append({"phase": self.phase, "level": None, "text": text})
        return len(text or "")

    def _passthrough(self, emu, mem, call, orig, argv):
        call.args = {f"arg{i}": hex(a) for i, a in enumerate(argv)}
        return orig(argv)

    _memcpy = _memset = _memmove = _memcmp = _passthrough


def _tag(tag: int) -> str:
    try:
        return struct.pack("<I", tag).decode("ascii")
    except Exception:
        return f"0x{tag:08X}"
