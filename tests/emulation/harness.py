"""Runs the real weir.sys under speakeasy against `kernel_model.KernelModel`.

A `DriverRun` loads the image into a fresh emulator, installs the model's hooks
for every import (refusing to start if an import has none), runs DriverEntry,
and then calls the driver's own function pointers the way the kernel would:
classifyFn, notifyFn and flowDeleteFn from the FwpsCalloutRegister3 records, the
dispatch routines from DRIVER_OBJECT.MajorFunction[] and DriverUnload.
Inputs (FWPS_* structures, IRPs, IO_STACK_LOCATIONs, security contexts) are
built here with the real x64 layouts.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pefile

import layouts as L
from kernel_model import APC_LEVEL, DISPATCH_LEVEL, PASSIVE_LEVEL, KernelModel
from pool_refs import Section

# IRQL classifyFn is called at unless a call says otherwise. The filter engine
# calls classifyFn at IRQL <= DISPATCH_LEVEL; test_classify runs every test at
# both DISPATCH_LEVEL and PASSIVE_LEVEL by switching this.
DEFAULT_CLASSIFY_IRQL = DISPATCH_LEVEL

# Well-formed requests of every IOCTL the driver serves, for per-IOCTL fault
# injection (test_faults): name -> DriverRun.irp keyword arguments. A helper
# adding an IOCTL adds its request here.
IOCTL_SAMPLES: dict[str, dict] = {
    "GET_STATS": dict(major=L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_GET_STATS, out_len=L.STATS_SIZE),
}

# Tokens for IRP_MJ_CREATE access checks (see KernelModel.access_check).
TOKENS: dict[str, dict] = {
    "SYSTEM": {"user": L.SID_SYSTEM, "groups": [L.SID_ADMINISTRATORS, L.SID_EVERYONE, L.SID_AUTHENTICATED_USERS], "integrity": L.SYSTEM_RID},
    "elevated administrator": {"user": "S-1-5-21-1-2-3-500", "groups": [L.SID_ADMINISTRATORS, L.SID_USERS, L.SID_EVERYONE, L.SID_INTERACTIVE, L.SID_AUTHENTICATED_USERS], "integrity": L.HIGH_RID},
    # UAC's filtered token of an administrator: Administrators is deny-only.
    "non-elevated administrator": {"user": "S-1-5-21-1-2-3-500", "groups": [(L.SID_ADMINISTRATORS, "deny-only"), L.SID_USERS, L.SID_EVERYONE, L.SID_INTERACTIVE, L.SID_AUTHENTICATED_USERS], "integrity": L.MEDIUM_RID},
    "standard user": {"user": "S-1-5-21-1-2-3-1001", "groups": [L.SID_USERS, L.SID_EVERYONE, L.SID_INTERACTIVE, L.SID_AUTHENTICATED_USERS], "integrity": L.MEDIUM_RID},
    # An elevated administrator's token restricted to Everyone and RESTRICTED
    # (CreateRestrictedToken): Administrators stays enabled, but the second
    # access check runs with the restricting SIDs only.
    "restricted administrator": {"user": "S-1-5-21-1-2-3-500", "groups": [L.SID_ADMINISTRATORS, L.SID_USERS, L.SID_EVERYONE], "restricted": [L.SID_EVERYONE, L.SID_RESTRICTED_CODE], "integrity": L.HIGH_RID},
    # A low-integrity process started by an administrator (protected-mode
    # browser, `icacls /setintegritylevel low` binaries).
    "low-integrity administrator": {"user": "S-1-5-21-1-2-3-500", "groups": [(L.SID_ADMINISTRATORS, "deny-only"), L.SID_USERS, L.SID_EVERYONE], "integrity": L.LOW_RID},
    # Same, with Administrators enabled (a token whose integrity level was lowered after elevation).
    "elevated administrator lowered to low integrity": {"user": "S-1-5-21-1-2-3-500", "groups": [L.SID_ADMINISTRATORS, L.SID_EVERYONE], "integrity": L.LOW_RID},
}

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
DEFAULT_IMAGE = REPO_ROOT / "target" / "x86_64-pc-windows-msvc" / "release" / "weir.sys"

# speakeasy logs every API call at INFO; keep the test output readable.
logging.getLogger("speakeasy").setLevel(logging.CRITICAL)


def image_path() -> Path:
    return Path(os.environ.get("WEIR_IMAGE") or DEFAULT_IMAGE)


class ImageMissing(Exception):
    pass


class EmulationFault(AssertionError):
    pass


def image_imports(path: Path) -> dict[str, list[str]]:
    """{module (lower-case, as in the import table): [function names]}."""
    pe = pefile.PE(str(path), fast_load=True)
    pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"]])
    out: dict[str, list[str]] = {}
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        dll = entry.dll.decode("ascii").lower()
        out.setdefault(dll, [])
        for imp in entry.imports:
            out[dll].append(imp.name.decode("ascii") if imp.name else f"ordinal_{imp.ordinal}")
    pe.close()
    return out


def writable_sections(path: Path, base: int) -> list[tuple[int, int, str]]:
    """(start, end, name) of the image's writable sections once loaded at `base` (the driver's statics)."""
    pe = pefile.PE(str(path), fast_load=True)
    out = []
    for s in pe.sections:
        if s.Characteristics & 0x8000_0000:  # IMAGE_SCN_MEM_WRITE
            name = s.Name.rstrip(b"\0").decode("ascii", "replace")
            out.append((base + s.VirtualAddress, base + s.VirtualAddress + max(s.Misc_VirtualSize, 1), f"image section {name}"))
    pe.close()
    return out


def _speakeasy_config() -> dict:
    from speakeasy.config import get_default_config_dict

    cfg = get_default_config_dict()
    cfg["timeout"] = 30
    cfg["max_api_count"] = 5000
    cfg["analysis"]["strings"] = False
    cfg["analysis"]["memory_tracing"] = False
    cfg["analysis"]["coverage"] = False
    cfg["modules"]["functions_always_exist"] = False
    cfg["modules"]["modules_always_exist"] = False
    return cfg


@dataclass
class RunResult:
    """One call into the driver."""

    what: str
    ret: int | None
    error: dict | None

    @property
    def status(self) -> int:
        return (self.ret or 0) & 0xFFFFFFFF


@dataclass
class ClassifyResult:
    run: RunResult
    action: int
    rights: int
    out_before: bytes
    out_after: bytes
    messages: list[str] = field(default_factory=list)


@dataclass
class IrpResult:
    run: RunResult
    irp: int
    io_status: int
    information: int
    buffer_before: bytes | None
    buffer_after: bytes | None
    guard_intact: bool
    completions: list[dict]

    @property
    def status(self) -> int:
        return self.run.status


class DriverRun:
    """One loaded driver instance inside one emulator."""

    def __init__(self, image: Path | None = None, model: KernelModel | None = None, label: str = "run"):
        import speakeasy

        self.image = Path(image or image_path())
        if not self.image.is_file():
            raise ImageMissing(
                f"driver image {self.image} does not exist: build it with `cargo xtask build` "
                "in the repository root, or point WEIR_IMAGE at an image"
            )
        self.label = label
        self.model = model or KernelModel()
        self.results: list[dict] = []
        self.imports = image_imports(self.image)
        self.se = speakeasy.Speakeasy(config=_speakeasy_config())
        self._install_hooks()
        self.module = self.se.load_module(str(self.image))
        self.model.watch_extra_ranges = writable_sections(self.image, self.module.base)
        self.model.global_sections = [Section(a, e, name, self.module.base) for a, e, name in self.model.watch_extra_ranges]
        # Test file-object names (any number) -> FILE_OBJECTs in emulated memory.
        self.file_objects: dict[int, int] = {}
        self.mem: L.Memory | None = None
        self.driver_object: int | None = None
        self.entry_status: int | None = None
        self.unload_fn = 0
        self.major: list[int] = []
        self.unloaded = False
        # What a test expects to stay behind after unload (substrings of
        # KernelModel.leaks() lines); the after-test leak check allows these only.
        self.expected_leaks: list[str] = []

    # -------------------------------------------------------------- hooks
    def _install_hooks(self) -> None:
        table = self.model.hook_table()
        missing = []
        for dll, names in self.imports.items():
            mod = dll.rsplit(".", 1)[0]
            for name in names:
                if (mod, name) not in table:
                    missing.append(f"{dll}!{name}")
        if missing:
            raise AssertionError(
                "the image imports functions the kernel model has no hook for "
                f"(add them to kernel_model.KernelModel.hook_table): {', '.join(missing)}"
            )
        for (mod, name), (argc, handler) in table.items():
            self.se.add_api_hook(self.model.make_hook(mod, name, handler), mod, name, argc=argc)

    # ---------------------------------------------------------- low level
    @property
    def emu(self):
        return self.se.emu

    def alloc(self, size: int, data: bytes | None = None, tag: str = "weir.test") -> int:
        addr = self.se.mem_alloc(max(size, 1), tag=tag)
        payload = (data or b"") + b"\0" * (size - len(data or b""))
        self.se.mem_write(addr, payload[:size])
        return addr

    def _record(self, what: str, run) -> RunResult:
        err = None
        if run.error is not None:
            e = run.error
            err = {k: (hex(v) if isinstance(v, int) else v) for k, v in (e.model_dump() if hasattr(e, "model_dump") else vars(e)).items() if v is not None}
        res = RunResult(what, run.ret_val, err)
        self.results.append({"call": what, "phase": self.model.phase,
                             "ret": None if run.ret_val is None else f"0x{run.ret_val & 0xFFFFFFFFFFFFFFFF:X}",
                             "emulator_error": err})
        return res

    def call(self, addr: int, args: list[int], what: str) -> RunResult:
        before = len(self.emu.runs)
        try:
            self.se.call(addr, list(args))
        finally:
            self.model.end_of_driver_call(what)
        runs = self.emu.runs[before:]
        if not runs:
            raise EmulationFault(f"{what}: speakeasy did not run anything at {addr:#x}")
        return self._record(what, runs[0])

    # -------------------------------------------------------- DriverEntry
    def driver_entry(self) -> int:
        self.model.begin_phase("DriverEntry")
        self.se.run_module(self.module, all_entrypoints=False)
        run = self.emu.runs[0]
        self.mem = L.Memory(self.emu)
        self.driver_object = run.args[0]
        res = self._record("DriverEntry", run)
        self.entry_result = res
        self.entry_status = res.status
        self.model.end_of_driver_entry(self.entry_status)
        self.unload_fn = self.mem.ptr(self.driver_object + L.DRIVER_OBJECT_DRIVER_UNLOAD)
        self.major = [self.mem.ptr(self.driver_object + L.DRIVER_OBJECT_MAJOR_FUNCTION + 8 * i) for i in range(L.IRP_MJ_MAXIMUM_FUNCTION + 1)]
        self.model.phase = "after DriverEntry"
        return self.entry_status

    def start(self) -> "DriverRun":
        """DriverEntry that must succeed without emulator faults or violations."""
        # The model must know the driver object before IoCreateDevice checks it;
        # speakeasy passes the one it created as the first DriverEntry argument.
        status = self.driver_entry()
        self.expect_no_fault(self.entry_result)
        assert status == L.STATUS_SUCCESS, f"DriverEntry returned {L.status_name(status)}; violations: {self.violation_text()}"
        return self

    # ------------------------------------------------------- registrations
    def registrations(self) -> list[dict]:
        """FwpsCalloutRegister3 records (successful ones), in call order."""
        out = []
        for c in self.model.calls_in(api="FwpsCalloutRegister3"):
            if c.ret == L.STATUS_SUCCESS and not c.injected:
                out.append({**c.args["callout"], "id": c.args["assigned_calloutId"], "call": c.label})
        return out

    def classify_fn(self) -> int:
        fns = {r["classifyFn"] for r in self.registrations()}
        assert len(fns) >= 1, "no callout was registered: no classifyFn to call"
        return self.registrations()[0]["classifyFn"]

    # ------------------------------------------------------------ classify
    def values_for(self, layer: L.Layer, *, local="10.0.0.2", lport=50000, proto=6, remote="93.184.216.34",
                   rport=443) -> list[tuple[int, Any]]:
        """The incoming values a layer passes (indices 0..7), as (type, payload) pairs."""
        if layer.ipv6:
            la = ("bytes16", ipaddress.IPv6Address(local if ":" in local else "fe80::2").packed)
            ra = ("bytes16", ipaddress.IPv6Address(remote if ":" in remote else "2001:db8::1").packed)
        else:
            la = (L.FWP_UINT32, int(ipaddress.IPv4Address(local)))
            ra = (L.FWP_UINT32, int(ipaddress.IPv4Address(remote)))
        vals: list[tuple[int, Any]] = [(L.FWP_EMPTY, 0)] * L.FIELD_COUNT
        vals[L.FIELD_LOCAL_ADDRESS] = la
        vals[L.FIELD_LOCAL_PORT] = (L.FWP_UINT16, lport)
        vals[L.FIELD_PROTOCOL] = (L.FWP_UINT8, proto)
        vals[L.FIELD_REMOTE_ADDRESS] = ra
        vals[L.FIELD_REMOTE_PORT] = (L.FWP_UINT16, rport)
        return vals

    def _build_values(self, values: list[tuple[Any, Any]]) -> int:
        blob = bytearray()
        for ty, payload in values:
            if ty == "bytes16":
                ptr = self.alloc(16, payload, tag="weir.test.bytes16")
                blob += struct.pack("<IIQ", L.FWP_BYTE_ARRAY16_TYPE, 0, ptr)
            elif ty == "blob":  # FWP_BYTE_BLOB_TYPE: payload = the bytes
                blob += struct.pack("<IIQ", L.FWP_BYTE_BLOB_TYPE, 0, self.byte_blob(payload))
            elif ty == "raw":  # (type, raw 64-bit union)
                t, raw = payload
                blob += struct.pack("<IIQ", t, 0, raw)
            else:
                blob += struct.pack("<IIQ", ty, 0, payload)
        return self.alloc(max(len(blob), 16), bytes(blob), tag="weir.test.values")

    def byte_blob(self, data: bytes) -> int:
        """An FWP_BYTE_BLOB {size u32, data ptr @8} holding `data`; returns its address."""
        dptr = self.alloc(max(len(data), 1), data, tag="weir.test.blobdata")
        return self.alloc(16, struct.pack("<IIQ", len(data), 0, dptr), tag="weir.test.blob")

    def classify(self, layer_id: int, values: list[tuple[Any, Any]] | None, *, rights: int = L.FWPS_RIGHT_ACTION_WRITE,
                 filter_flags: int = 0, pid: int | None = 4242, pid_valid: bool = True, meta: bool = True, value_count: int | None = None,
                 null_values_array: bool = False, null_fixed: bool = False, null_filter: bool = False,
                 null_out: bool = False, action_in: int = L.FWP_ACTION_BLOCK, fn: int | None = None,
                 irql: int | None = None, process_path: bytes | None = None) -> ClassifyResult:
        """Calls classifyFn like the filter engine, at `irql` (default
        DEFAULT_CLASSIFY_IRQL). Returns the classify-out before and after."""
        prev_phase = self.model.phase
        self.model.begin_phase("classify")
        n_msgs = len(self.model.debug_messages)
        fn, args = self.build_classify(layer_id, values, rights=rights, filter_flags=filter_flags, pid=pid,
                                       pid_valid=pid_valid, meta=meta, value_count=value_count,
                                       null_values_array=null_values_array, null_fixed=null_fixed,
                                       null_filter=null_filter, null_out=null_out, action_in=action_in, fn=fn,
                                       process_path=process_path)
        out = args[6]
        out_before = self.mem.read(out, L.CLASSIFY_OUT_SIZE) if out else struct.pack(
            "<IIQQIIII", action_in, 0, 0x1111, 0x10001, rights, 0x0, 0x0, 0x0)
        level = DEFAULT_CLASSIFY_IRQL if irql is None else irql
        with self.model.at_irql(level):
            res = self.call(fn, args, f"classifyFn(layer {layer_id})")
        after = self.mem.read(out, L.CLASSIFY_OUT_SIZE) if out else b""
        self.model.phase = prev_phase
        action = struct.unpack_from("<I", after, 0)[0] if out else None
        rights_after = struct.unpack_from("<I", after, L.CLASSIFY_OUT_RIGHTS)[0] if out else None
        msgs = [m["text"] for m in self.model.debug_messages[n_msgs:]]
        return ClassifyResult(res, action, rights_after, out_before, after, msgs)

    def build_classify(self, layer_id: int, values: list[tuple[Any, Any]] | None, *,
                       rights: int = L.FWPS_RIGHT_ACTION_WRITE, filter_flags: int = 0, pid: int | None = 4242,
                       pid_valid: bool = True, meta: bool = True, value_count: int | None = None,
                       null_values_array: bool = False, null_fixed: bool = False, null_filter: bool = False,
                       null_out: bool = False, action_in: int = L.FWP_ACTION_BLOCK, fn: int | None = None,
                       process_path: bytes | None = None) -> tuple[int, list[int]]:
        """classifyFn and the seven arguments `classify` passes it."""
        values = values or []
        arr = 0 if null_values_array else self._build_values(values)
        count = len(values) if value_count is None else value_count
        fixed = 0 if null_fixed else self.alloc(16, struct.pack("<HHIQ", layer_id, 0, count, arr), tag="weir.test.fixed")
        meta_ptr = 0
        if meta:
            m = bytearray(L.METADATA_SIZE)
            if pid is not None:
                # processId is written either way; only the bit makes it valid.
                # Without the bit, every other bit is set: only PROCESS_ID may validate processId.
                bits = L.FWPS_METADATA_FIELD_PROCESS_ID if pid_valid else 0xFFFFFFFF & ~L.FWPS_METADATA_FIELD_PROCESS_ID
                struct.pack_into("<I", m, L.METADATA_CURRENT_VALUES, bits)
                struct.pack_into("<Q", m, L.METADATA_PROCESS_ID, pid)
            if process_path is not None:
                bits = struct.unpack_from("<I", m, L.METADATA_CURRENT_VALUES)[0] | L.FWPS_METADATA_FIELD_PROCESS_PATH
                struct.pack_into("<I", m, L.METADATA_CURRENT_VALUES, bits)
                struct.pack_into("<Q", m, L.METADATA_PROCESS_PATH, self.byte_blob(process_path))
            meta_ptr = self.alloc(L.METADATA_SIZE, bytes(m), tag="weir.test.meta")
        flt = 0
        if not null_filter:
            f = bytearray(L.FWPS_FILTER3_SIZE)
            struct.pack_into("<Q", f, L.FWPS_FILTER3_ID, 0x10001)
            struct.pack_into("<H", f, L.FWPS_FILTER3_FLAGS, filter_flags)
            flt = self.alloc(L.FWPS_FILTER3_SIZE, bytes(f), tag="weir.test.filter")
        out_before = struct.pack("<IIQQIIII", action_in, 0, 0x1111, 0x10001, rights, 0x0, 0x0, 0x0)
        out = 0 if null_out else self.alloc(L.CLASSIFY_OUT_SIZE, out_before, tag="weir.test.classifyout")
        fn = fn or self.classify_fn()
        return fn, [fixed, meta_ptr, 0, 0, flt, 0, out]

    # ------------------------------------------------------------ dispatch
    def irp(self, major: int, *, code: int = 0, in_len: int = 0, out_len: int = 0, buffer_size: int | None = None,
            null_buffer: bool = False, create_token: tuple[str, int] | dict | None = None,
            null_security_context: bool = False, null_access_state: bool = False,
            dispatch: int | None = None, input: bytes | None = None,
            file_object: int = 0) -> IrpResult:
        """Builds an IRP with one IO_STACK_LOCATION and calls MajorFunction[major]
        at PASSIVE_LEVEL (a top-level driver's dispatch routines run there)."""
        prev_phase = self.model.phase
        self.model.begin_phase("dispatch")
        n_comp = len(self.model.irp_completions)
        fn, irp, buf, size, before, guard = self.build_irp(
            major, code=code, in_len=in_len, out_len=out_len, buffer_size=buffer_size, null_buffer=null_buffer,
            create_token=create_token, null_security_context=null_security_context,
            null_access_state=null_access_state, dispatch=dispatch, input=input, file_object=file_object)
        dev = self.device_object()
        self.model.irp_dispatched(irp)
        self.model.dispatch_major = major
        try:
            res = self.call(fn, [dev, irp], f"dispatch(IRP_MJ {major:#x}, code {code:#x})")
        finally:
            self.model.dispatch_major = None
        self.model.phase = prev_phase
        after = None
        guard_ok = True
        if buf:
            after = self.mem.read(buf, size)
            guard_ok = self.mem.read(buf + size, len(guard)) == guard
        return IrpResult(
            res, irp, self.mem.u32(irp + L.IRP_IO_STATUS_STATUS), self.mem.u64(irp + L.IRP_IO_STATUS_INFORMATION),
            before, after, guard_ok,
            [c for c in self.model.irp_completions[n_comp:] if c["irp"] == irp],
        )

    def build_irp(self, major: int, *, code: int = 0, in_len: int = 0, out_len: int = 0, buffer_size: int | None = None,
                  null_buffer: bool = False, create_token: tuple[str, int] | dict | None = None,
                  null_security_context: bool = False, null_access_state: bool = False,
                  dispatch: int | None = None, input: bytes | None = None,
                  file_object: int = 0) -> tuple[int, int, int, int, bytes | None, bytes]:
        """The IRP `irp` sends: (dispatch routine, IRP, system buffer, its size, its bytes before, guard)."""
        irp = self.alloc(L.IRP_SIZE + L.IO_STACK_LOCATION_SIZE, tag="weir.test.irp")
        stack = irp + L.IRP_SIZE
        m = self.mem
        m.write(irp, struct.pack("<HH", 6, L.IRP_SIZE + L.IO_STACK_LOCATION_SIZE))  # IO_TYPE_IRP
        m.write(irp + 0x42, bytes([1, 1]))  # StackCount, CurrentLocation
        m.w64(irp + L.IRP_CURRENT_STACK_LOCATION, stack)
        m.w32(irp + L.IRP_IO_STATUS_STATUS, 0xDEADBEEF)  # sentinels: must be overwritten
        m.w64(irp + L.IRP_IO_STATUS_INFORMATION, 0xDEADBEEFDEADBEEF)
        m.write(stack + L.IOSL_MAJOR_FUNCTION, bytes([major]))
        m.w64(stack + L.IOSL_FILE_OBJECT, self.file_object(file_object))
        buf = 0
        size = 0
        guard = b"\xA5" * 64
        before = None
        if major == L.IRP_MJ_DEVICE_CONTROL:
            m.w32(stack + L.IOSL_DIOC_OUTPUT_LENGTH, out_len)
            m.w32(stack + L.IOSL_DIOC_INPUT_LENGTH, in_len)
            m.w32(stack + L.IOSL_DIOC_CODE, code)
            if not null_buffer:
                size = buffer_size if buffer_size is not None else max(in_len, out_len)
                if size:
                    # METHOD_BUFFERED: the input (if any) at the start of the system buffer.
                    data = (input or b"")[:size]
                    before = data + b"\xEE" * (size - len(data))
                    buf = self.alloc(size + len(guard), before + guard, tag="weir.test.systembuffer")
            m.w64(irp + L.IRP_SYSTEM_BUFFER, buf)
        elif major == L.IRP_MJ_CREATE and not null_security_context:
            access = 0
            if not null_access_state:
                access = self.alloc(0x80, tag="weir.test.access_state")
                tokens = dict([create_token]) if isinstance(create_token, tuple) else dict(create_token or {})
                # An impersonation token defaults to SecurityImpersonation (2);
                # "level" overrides it.
                level = tokens.pop("level", L.SECURITY_IMPERSONATION if "client" in tokens else 0)
                for which, value in tokens.items():
                    off = {"client": L.SUBJECT_CLIENT_TOKEN, "primary": L.SUBJECT_PRIMARY_TOKEN}[which]
                    m.w64(access + L.ACCESS_STATE_SUBJECT_CONTEXT + off, value)
                m.w32(access + L.ACCESS_STATE_SUBJECT_CONTEXT + L.SUBJECT_IMPERSONATION_LEVEL, level)
            sec = self.alloc(0x20, tag="weir.test.io_security_context")
            m.w64(sec + L.IO_SECURITY_CONTEXT_ACCESS_STATE, access)
            m.w64(stack + L.IOSL_CREATE_SECURITY_CONTEXT, sec)
        fn = dispatch if dispatch is not None else self.major[major]
        assert fn, f"DRIVER_OBJECT.MajorFunction[{major:#x}] is null"
        return fn, irp, buf, size, before, guard

    def file_object(self, name: int) -> int:
        """The FILE_OBJECT (zeroed, as the I/O manager creates it) standing for handle `name`; 0 stays 0."""
        if not name:
            return 0
        if name not in self.file_objects:
            self.file_objects[name] = self.alloc(L.FILE_OBJECT_SIZE, tag="weir.test.file_object")
        return self.file_objects[name]

    def device_object(self) -> int:
        devs = list(self.model.live_devices())
        return devs[0] if devs else 0

    def stats(self, ck: "Checker | None" = None, out_len: int = 1 << 16) -> dict | None:
        """IOCTL_WEIR_GET_STATS, decoded. With a Checker, a failure is recorded there and None returned."""
        r = self.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_GET_STATS, out_len=out_len)
        problem = None
        if r.run.error:
            problem = f"emulator fault {r.run.error}"
        elif r.status != L.STATUS_SUCCESS:
            problem = f"returned {L.status_name(r.status)} (Information {r.information})"
        if problem:
            where = f"IRP_MJ_DEVICE_CONTROL IOCTL_WEIR_GET_STATS (in 0, out {out_len})"
            if ck is None:
                raise AssertionError(f"{where}: {problem}")
            ck.true(False, where, problem)
            return None
        return L.decode_stats(r.buffer_after)

    # ----------------------------------------------- DPCs, cancel routines
    def run_dpcs(self) -> list[RunResult]:
        """Runs every queued DPC once, as the kernel does after the queuing call returned (DISPATCH_LEVEL)."""
        out = []
        for dpc, d in self.model.queued_dpcs():
            d["queued"] = False
            a1, a2 = d.get("args", (0, 0))
            prev = self.model.phase
            self.model.begin_phase("DPC")
            with self.model.at_irql(2):  # DISPATCH_LEVEL
                res = self.call(d["routine"], [dpc, d["context"], a1, a2], f"DPC routine {d['routine']:#x}")
            self.model.phase = prev
            self.model.dpc_runs.append({"dpc": dpc, "error": res.error})
            out.append(res)
        return out

    def cancel_irp(self, irp: int) -> RunResult | None:
        """IoCancelIrp: under the cancel spin lock set Irp->Cancel, exchange Irp->CancelRoutine with NULL and,
        if there was one, call it with the lock held and Irp->CancelIrql = PASSIVE_LEVEL. None when no routine
        was set (nothing runs). A routine that returns without releasing the cancel spin lock is a violation."""
        m = self.mem
        self.model.cancel_lock_held = True
        m.write(irp + 0x44, b"\x01")  # Cancel = TRUE
        routine = m.u64(irp + 0x68)
        m.w64(irp + 0x68, 0)
        if not routine:
            self.model.cancel_lock_held = False
            return None
        m.write(irp + 0x45, bytes([self.model.irql]))  # CancelIrql: the IRQL to restore
        prev = self.model.phase
        self.model.begin_phase("cancel")
        with self.model.at_irql(2):  # IoCancelIrp holds the cancel spin lock: DISPATCH_LEVEL
            res = self.call(routine, [self.device_object(), irp], f"cancel routine {routine:#x} (IRP {irp:#x})")
        self.model.phase = prev
        if self.model.cancel_lock_held:
            self.model.violation(res.what, "cancel spin lock", "the cancel routine returned without IoReleaseCancelSpinLock")
            self.model.cancel_lock_held = False
        return res

    def completions_of(self, irp: int) -> list[dict]:
        return [c for c in self.model.irp_completions if c["irp"] == irp]

    def pending_marked(self, irp: int) -> bool:
        """IoMarkIrpPending's SL_PENDING_RETURNED in the IRP's (single) stack location."""
        return bool(self.mem.u8(irp + L.IRP_SIZE + 0x03) & 0x01)

    def open_device(self, token: str | dict, desired: int = L.GENERIC_READ | L.GENERIC_WRITE) -> tuple[int, str, IrpResult | None]:
        """A user-mode CreateFile of the control device: the I/O manager's access check
        (KernelModel.access_check, from the DACL the driver applied), then, if
        granted, IRP_MJ_CREATE to the driver. Returns (status, reason, irp result)."""
        tok = TOKENS[token] if isinstance(token, str) else token
        granted, reason = self.model.access_check(self.device_object(), tok, desired)
        if not granted:
            return L.STATUS_ACCESS_DENIED, reason, None
        r = self.irp(L.IRP_MJ_CREATE, create_token=("primary", 0xFFFF_C000_0000_7000))
        return r.status, reason, r

    # ----------------------------------------------------------------- BFE
    def bfe_transition(self, state: int) -> list[RunResult]:
        """The Base Filtering Engine changes state: the model's engine follows,
        then every FwpmBfeStateSubscribeChanges0 callback is called with the new
        state at PASSIVE_LEVEL (its documented IRQL), the way the filter engine does."""
        self.model.bfe_set_state(state)
        out = []
        for handle, sub in list(self.model.bfe_subscriptions.items()):
            prev = self.model.phase
            self.model.begin_phase("BfeStateChange")
            self.model.bfe_callbacks_running.add(handle)
            try:
                with self.model.at_irql(PASSIVE_LEVEL):
                    out.append(self.call(sub["callback"], [sub["context"], state], f"BFE state callback ({state})"))
            finally:
                self.model.bfe_callbacks_running.discard(handle)
                self.model.phase = prev
        return out

    def bfe_restart(self) -> list[RunResult]:
        """STOP_PENDING, STOPPED, START_PENDING, RUNNING, as the service control manager reports them."""
        out = []
        for st in (L.FWPM_SERVICE_STOP_PENDING, L.FWPM_SERVICE_STOPPED, L.FWPM_SERVICE_START_PENDING, L.FWPM_SERVICE_RUNNING):
            out += self.bfe_transition(st)
        return out

    # -------------------------------------------------------------- unload
    def unload(self) -> RunResult:
        assert self.unload_fn, "DRIVER_OBJECT.DriverUnload is null"
        prev = self.model.phase
        self.model.begin_phase("DriverUnload")
        res = self.call(self.unload_fn, [self.driver_object], "DriverUnload")
        self.model.phase = prev
        self.unloaded = True
        return res

    def after_test_leaks(self) -> list[str]:
        """Unloads if the test did not, then lists what is still held beyond
        `expected_leaks`. A run whose DriverEntry never ran holds nothing."""
        if self.entry_status is None:
            return []
        if not self.unloaded and self.unload_fn:
            self.unload()
        return [l for l in self.model.leaks() if not any(e in l for e in self.expected_leaks)]

    # ---------------------------------------------------------- assertions
    def violation_text(self) -> str:
        return "; ".join(str(v) for v in self.model.violations) or "none"

    def expect_no_fault(self, res: RunResult) -> None:
        if res.error:
            raise EmulationFault(f"{res.what}: emulator fault {res.error}")
        if self.model.bugchecks:
            raise EmulationFault(f"{res.what}: KeBugCheckEx called: {self.model.bugchecks}")

    def expect_clean(self) -> None:
        faults = [r for r in self.results if r["emulator_error"]]
        assert not faults, f"emulator faults: {faults}"
        assert not self.model.bugchecks, f"KeBugCheckEx called: {self.model.bugchecks}"
        assert not self.model.violations, f"kernel model violations: {self.violation_text()}"

    # ----------------------------------------------------------- artifacts
    def to_json(self) -> dict:
        return {
            "label": self.label,
            "image": _display_path(self.image),
            "driver_entry_status": None if self.entry_status is None else L.status_name(self.entry_status),
            "runs": self.results,
            "calls": [c.to_json() for c in self.model.calls],
            "violations": [v.to_json() for v in self.model.violations],
            "bugchecks": self.model.bugchecks,
            "debug_messages": self.model.debug_messages,
            "pool_history": self.model.pool_history,
            "live_state": self.model.live_state(),
        }


def _display_path(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return p.name


class Checker:
    """Collects every broken expectation of a test, then fails once with all of them.

    Each message names the call (e.g. `FwpmFilterAdd0#2 (DriverEntry)`) and the
    argument or field that broke the expectation.
    """

    def __init__(self, title: str = ""):
        self.title = title
        self.failures: list[str] = []

    def true(self, cond: bool, where: str, message: str) -> bool:
        if not cond:
            self.failures.append(f"{where}: {message}")
        return bool(cond)

    def eq(self, actual, expected, where: str, what: str = "") -> bool:
        ok = actual == expected
        if not ok:
            fa = _fmt(actual)
            fe = _fmt(expected)
            hint = ""
            if isinstance(actual, list) and isinstance(expected, list):
                i = next((i for i, (a, e) in enumerate(zip(actual, expected)) if a != e), min(len(actual), len(expected)))
                got = _fmt(actual[i]) if i < len(actual) else "(nothing)"
                want = _fmt(expected[i]) if i < len(expected) else "(nothing)"
                hint = f" [first difference at position {i}: got {got}, expected {want}]"
            self.failures.append(f"{where}: {what + ' ' if what else ''}is {fa}, expected {fe}{hint}")
        return ok

    def done(self) -> None:
        if self.failures:
            head = f"{self.title}: " if self.title else ""
            raise AssertionError(head + f"{len(self.failures)} broken expectation(s):\n  - " + "\n  - ".join(self.failures))


def _fmt(v) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and v > 9:
        return f"{v:#x}"
    return repr(v)
