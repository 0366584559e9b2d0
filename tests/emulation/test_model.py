"""The kernel model's own rules, exercised directly (no driver, no emulator).

These show that the model catches what the driver tests rely on it to catch:
a driver that breaks a rule produces a violation naming the call and argument,
and gets the error status the real API would return.
"""

import struct
import uuid

import pytest

import kernel_model
import layouts as L
from kernel_model import KernelModel


class FakeEmu:
    """Flat memory with a bump allocator; enough for the model's decoders."""

    def __init__(self):
        self.mem = bytearray(0x10000)
        self.next = 0x100

    def mem_read(self, addr, size):
        return bytes(self.mem[addr:addr + size])

    def mem_write(self, addr, data):
        self.mem[addr:addr + len(data)] = data

    def alloc(self, data: bytes) -> int:
        addr = self.next
        self.next += (len(data) + 15) & ~15
        self.mem_write(addr, data)
        return addr

    def wstr(self, text: str) -> int:
        return self.alloc((text + "\0").encode("utf-16-le"))


SUB = uuid.UUID("11111111-2222-3333-4444-555555555555")
KEY = uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
V4 = L.FWPM_LAYER_ALE_AUTH_CONNECT_V4
V6 = L.FWPM_LAYER_ALE_AUTH_CONNECT_V6


class Rig:
    def __init__(self):
        self.model = KernelModel()
        self.model.phase = "test"
        self.emu = FakeEmu()
        self.table = self.model.hook_table()

    def call(self, api, *argv, orig=None):
        mod = "fwpkclnt" if api.startswith("Fwp") else "ntoskrnl"
        _, handler = self.table[(mod, api)]
        return self.model.make_hook(mod, api, handler)(self.emu, api, orig, list(argv))

    def display(self, name="n"):
        return struct.pack("<QQ", self.emu.wstr(name) if name else 0, 0)

    def session(self, dynamic=True):
        s = bytearray(72)
        struct.pack_into("<I", s, 32, L.FWPM_SESSION_FLAG_DYNAMIC if dynamic else 0)
        out = self.emu.alloc(bytes(8))
        assert self.call("FwpmEngineOpen0", 0, L.RPC_C_AUTHN_WINNT, 0, self.emu.alloc(bytes(s)), out) == 0
        return struct.unpack("<Q", self.emu.mem_read(out, 8))[0]

    def device(self):
        return 0x5000

    def register(self, key=KEY):
        self.model.devices[self.device()] = {"name": "\\Device\\T", "live": True}
        c = key.bytes_le + struct.pack("<IIQQQ", 0, 0, 0x1000, 0x1100, 0)
        idp = self.emu.alloc(bytes(4))
        status = self.call("FwpsCalloutRegister3", self.device(), self.emu.alloc(c), idp)
        return status, struct.unpack("<I", self.emu.mem_read(idp, 4))[0]

    def sublayer(self, h, key=SUB):
        s = key.bytes_le + self.display() + bytes(40)
        return self.call("FwpmSubLayerAdd0", h, self.emu.alloc(s), 0)

    def callout(self, h, key=KEY, layer=V4):
        c = key.bytes_le + self.display() + bytes(4 + 4 + 8 + 16) + layer.bytes_le + bytes(8)
        return self.call("FwpmCalloutAdd0", h, self.emu.alloc(c), 0, self.emu.alloc(bytes(4)))

    def filter(self, h, key=uuid.UUID(int=7), layer=V4, sub=SUB, callout=KEY, action=L.FWP_ACTION_CALLOUT_TERMINATING):
        f = bytearray(200)
        f[0:16] = key.bytes_le
        f[16:32] = self.display()
        f[64:80] = layer.bytes_le
        f[80:96] = sub.bytes_le
        struct.pack_into("<I", f, 128, action)
        f[132:148] = callout.bytes_le
        return self.call("FwpmFilterAdd0", h, self.emu.alloc(bytes(f)), 0, self.emu.alloc(bytes(8)))

    def violations(self):
        return [str(v) for v in self.model.violations]


@pytest.fixture
def rig():
    return Rig()


def test_model_accepts_the_documented_sequence(rig):
    assert rig.register()[0] == 0
    h = rig.session()
    assert rig.call("FwpmTransactionBegin0", h, 0) == 0
    assert rig.sublayer(h) == 0
    assert rig.callout(h) == 0
    assert rig.filter(h) == 0
    assert rig.call("FwpmTransactionCommit0", h) == 0
    assert len(rig.model.engine_objects()["filters"]) == 1
    assert rig.call("FwpmEngineClose0", h) == 0
    assert rig.model.engine_objects() == {"providers": {}, "sublayers": {}, "callouts": {}, "filters": {}}, "dynamic objects must go with the session"
    assert rig.violations() == []


def test_model_refuses_adds_outside_a_transaction(rig):
    rig.register()
    h = rig.session()
    assert rig.sublayer(h) == L.STATUS_FWP_NO_TXN_IN_PROGRESS
    assert any("FwpmSubLayerAdd0" in v and "no open transaction" in v for v in rig.violations()), rig.violations()


def test_model_checks_filter_layer_against_callout(rig):
    rig.register()
    h = rig.session()
    rig.call("FwpmTransactionBegin0", h, 0)
    rig.sublayer(h)
    rig.callout(h, layer=V4)
    assert rig.filter(h, layer=V6) == L.STATUS_FWP_INCOMPATIBLE_LAYER
    assert any("filter->layerKey" in v for v in rig.violations()), rig.violations()


def test_model_checks_sublayer_and_callout_references(rig):
    rig.register()
    h = rig.session()
    rig.call("FwpmTransactionBegin0", h, 0)
    assert rig.filter(h) == L.STATUS_FWP_SUBLAYER_NOT_FOUND
    rig.sublayer(h)
    assert rig.filter(h) == L.STATUS_FWP_CALLOUT_NOT_FOUND  # no FwpmCalloutAdd0 yet
    other = uuid.UUID(int=99)
    assert rig.callout(h, key=other) == L.STATUS_FWP_CALLOUT_NOT_FOUND  # never registered with FwpsCalloutRegister3
    assert any("filter->subLayerKey" in v for v in rig.violations())
    assert any("callout->calloutKey" in v and "FwpsCalloutRegister3" in v for v in rig.violations())


def test_model_requires_transactions_to_end(rig):
    rig.register()
    h = rig.session()
    rig.call("FwpmTransactionBegin0", h, 0)
    rig.model.end_of_driver_entry(0)
    assert any("transaction still open" in v for v in rig.violations()), rig.violations()
    rig.call("FwpmEngineClose0", h)
    assert any("FwpmEngineClose0" in v and "transaction" in v for v in rig.violations()), rig.violations()


def test_model_accepts_abort_after_a_failed_commit(rig):
    rig.register()
    h = rig.session()
    rig.call("FwpmTransactionBegin0", h, 0)
    rig.model.fail("test", "FwpmTransactionCommit0", 1)
    assert rig.call("FwpmTransactionCommit0", h) == L.STATUS_FWP_TXN_ABORTED
    assert any("never ended" in leak for leak in rig.model.leaks()), rig.model.leaks()
    assert rig.call("FwpmTransactionAbort0", h) == 0
    assert rig.call("FwpmTransactionAbort0", h) == L.STATUS_FWP_NO_TXN_IN_PROGRESS  # only once
    assert rig.call("FwpmEngineClose0", h) == 0
    assert rig.violations() == ["FwpmTransactionAbort0#2 (test): engineHandle: no transaction to abort"]


def test_model_validates_handles_and_callout_ids(rig):
    assert rig.call("FwpmTransactionBegin0", 0xBAD, 0) == L.STATUS_INVALID_HANDLE
    assert rig.call("FwpmEngineClose0", 0xBAD) == L.STATUS_INVALID_HANDLE
    assert rig.call("FwpsCalloutUnregisterById0", 12345) == L.STATUS_FWP_CALLOUT_NOT_FOUND
    status, cid = rig.register()
    assert rig.call("FwpsCalloutUnregisterById0", cid) == 0
    assert rig.call("FwpsCalloutUnregisterById0", cid) == L.STATUS_FWP_CALLOUT_NOT_FOUND
    assert len(rig.violations()) == 4, rig.violations()


def test_model_scripts_busy_unregistration(rig):
    _, cid = rig.register()
    rig.model.unregister_script[cid] = [L.STATUS_DEVICE_BUSY, L.STATUS_DEVICE_BUSY]
    assert [rig.call("FwpsCalloutUnregisterById0", cid) for _ in range(3)] == [L.STATUS_DEVICE_BUSY] * 2 + [0]
    assert rig.model.callouts_rt == {}
    assert rig.violations() == []


def test_model_tracks_pool_blocks(rig):
    rig.call("ExAllocatePool2", L.POOL_FLAG_NON_PAGED, 64, 0x72696557, orig=lambda argv: 0x9000)
    assert rig.model.leaks() and "pool block 0x9000" in rig.model.leaks()[0]
    rig.call("ExFreePoolWithTag", 0x9000, 0x72696557, orig=lambda argv: None)
    assert rig.model.leaks() == []
    rig.call("ExFreePoolWithTag", 0x9000, 0x72696557, orig=lambda argv: None)
    assert any("double free" in v for v in rig.violations()), rig.violations()


def test_model_refuses_a_free_while_a_global_points_into_the_block(rig):
    """No global points to freed pool: a pointer to the block (or into it) in the image's writable sections at the
    free is a violation naming the global's RVA; cleared first, the same free is clean."""
    from pool_refs import Section

    data = rig.emu.alloc(bytes(64))  # stands for .data: 8 pointer-sized globals
    rig.model.global_sections = [Section(data, data + 64, "image section .data", data - 0x28000)]
    for at, value in ((data + 16, 0x9000), (data + 40, 0x9010)):
        rig.call("ExAllocatePool2", L.POOL_FLAG_NON_PAGED, 64, 0x72696557, orig=lambda argv: 0x9000)
        rig.emu.mem_write(at, struct.pack("<Q", value))
        rig.call("ExFreePoolWithTag", 0x9000, 0x72696557, orig=lambda argv: None)
        want = f"freed pool still referenced by a global at RVA {at - data + 0x28000:#x} (.data)"
        assert [v for v in rig.violations() if want in v], rig.violations()
        rig.emu.mem_write(at, bytes(8))
    rig.model.violations.clear()
    rig.call("ExAllocatePool2", L.POOL_FLAG_NON_PAGED, 64, 0x72696557, orig=lambda argv: 0x9000)
    rig.emu.mem_write(data, struct.pack("<Q", 0x9040))  # just past the block: not into it
    # Data, not a pointer: an unaligned value that happens to lie in the block (the emulator's pool is at low
    # addresses; a parsed allow-list entry 01 20 0a 00.. reads as 0xa2001).
    rig.emu.mem_write(data + 8, struct.pack("<Q", 0x9021))
    rig.call("ExFreePoolWithTag", 0x9000, 0x72696557, orig=lambda argv: None)
    assert rig.violations() == []


def test_model_injects_faults_once(rig):
    rig.model.fail("test", "FwpmEngineOpen0", 2)
    h1 = rig.session()
    out = rig.emu.alloc(bytes(8))
    s = rig.emu.alloc(bytes(72))
    assert rig.call("FwpmEngineOpen0", 0, L.RPC_C_AUTHN_WINNT, 0, s, out) == L.STATUS_FWP_TIMEOUT
    assert rig.call("FwpmEngineOpen0", 0, L.RPC_C_AUTHN_WINNT, 0, s, out) == 0
    assert [c.injected for c in rig.model.calls] == [False, True, False]
    assert h1


# --------------------------------------------------------------- IRQL rules
def test_model_fails_calls_above_their_documented_irql(rig):
    rig.model.irql = kernel_model.DISPATCH_LEVEL
    rig.session()  # FwpmEngineOpen0 at DISPATCH_LEVEL
    irql = [str(v) for v in rig.model.irql_violations()]
    assert any("FwpmEngineOpen0" in v and "PASSIVE_LEVEL" in v and "fwpmk/nf-fwpmk-fwpmengineopen0" in v for v in irql), irql
    rig.model.violations.clear()
    rig.call("ExFreePoolWithTag", 0x9000, 0, orig=lambda argv: None)  # DISPATCH_LEVEL is allowed
    assert rig.model.irql_violations() == []


def test_model_requires_an_irql_row_for_every_hook(rig):
    table = rig.model.hook_table()
    missing = sorted(api for (_, api) in table if api not in kernel_model.IRQL_RULES)
    # Kept hooked (so an image importing it still loads) but without a row:
    # it has no documented IRQL, so any call is a violation.
    assert missing == ["DbgQueryDebugFilterState"], f"hooks without a documented IRQL: {missing}"
    rig.model.check_irql(kernel_model.Call(1, "ntoskrnl", "DbgQueryDebugFilterState", "test", 1), "DbgQueryDebugFilterState")
    assert any("no row" in str(v) for v in rig.model.irql_violations())


def test_model_instance_faults_hit_one_phase_entry_only(rig):
    rig.model.fail("dispatch", "ExAllocatePool2", 1, instance=2)
    alloc = lambda argv: 0x7000
    results = []
    for _ in range(3):
        rig.model.begin_phase("dispatch")
        results.append(rig.call("ExAllocatePool2", 0x40, 16, 0x72696557, orig=alloc))
    assert results == [0x7000, 0, 0x7000], results


# ----------------------------------------------------- BFE and access check
def test_model_bfe_stop_kills_sessions_and_blocks_open(rig):
    h = rig.session()
    rig.model.bfe_set_state(L.FWPM_SERVICE_STOPPED)
    out = rig.emu.alloc(bytes(8))
    # A dynamic session needs BFE; a static one opens for boot-time filters only (store_model).
    s = rig.emu.alloc(bytes(32) + (1).to_bytes(4, "little") + bytes(36))
    assert rig.call("FwpmEngineOpen0", 0, L.RPC_C_AUTHN_WINNT, 0, s, out) == L.RPC_NT_SERVER_UNAVAILABLE
    assert rig.call("FwpmTransactionBegin0", h, 0) == L.RPC_NT_CALL_FAILED
    assert rig.call("FwpmEngineClose0", h) == L.RPC_NT_CALL_FAILED
    assert rig.model.open_sessions() == {}
    assert rig.violations() == []


def test_model_refuses_unsubscribe_from_its_own_callback(rig):
    rig.model.devices[0x5000] = {"name": "\\Device\\T", "live": True}
    hp = rig.emu.alloc(bytes(8))
    assert rig.call("FwpmBfeStateSubscribeChanges0", 0x5000, 0x1234, 0, hp) == 0
    h = struct.unpack("<Q", rig.emu.mem_read(hp, 8))[0]
    rig.model.bfe_callbacks_running.add(h)
    rig.call("FwpmBfeStateUnsubscribeChanges0", h)
    assert any("deadlock" in v for v in rig.violations()), rig.violations()


def test_model_access_check_follows_the_dacl():
    m = KernelModel()
    m.devices[0x5000] = {"name": "\\Device\\T", "live": True, "dacl": [
        {"type": L.ACCESS_ALLOWED_ACE_TYPE, "mask": L.GENERIC_ALL, "sid": L.SID_SYSTEM},
        {"type": L.ACCESS_ALLOWED_ACE_TYPE, "mask": L.GENERIC_ALL, "sid": L.SID_ADMINISTRATORS},
    ]}
    import harness
    rw = L.GENERIC_READ | L.GENERIC_WRITE
    assert m.access_check(0x5000, harness.TOKENS["SYSTEM"], rw)[0]
    assert m.access_check(0x5000, harness.TOKENS["elevated administrator"], rw)[0]
    for who in ("standard user", "non-elevated administrator", "restricted administrator", "low-integrity administrator"):
        assert not m.access_check(0x5000, harness.TOKENS[who], L.GENERIC_READ)[0], who
    m.devices[0x5000]["dacl"] = None  # default device security
    assert m.access_check(0x5000, harness.TOKENS["standard user"], rw)[0]


def test_model_security_routines_write_a_parseable_descriptor(rig):
    e = rig.emu
    sd, acl = e.alloc(bytes(40)), e.alloc(bytes(52))
    system = e.alloc(bytes([1, 1, 0, 0, 0, 0, 0, 5]) + struct.pack("<I", 18))
    admins = e.alloc(bytes([1, 2, 0, 0, 0, 0, 0, 5]) + struct.pack("<II", 32, 544))
    assert rig.call("RtlCreateSecurityDescriptor", sd, 1) == 0
    assert rig.call("RtlCreateAcl", acl, 52, 2) == 0
    assert rig.call("RtlAddAccessAllowedAce", acl, 2, L.GENERIC_ALL, system) == 0
    assert rig.call("RtlAddAccessAllowedAce", acl, 2, L.GENERIC_ALL, admins) == 0
    assert rig.call("RtlAddAccessAllowedAce", acl, 2, L.GENERIC_ALL, admins) == L.STATUS_ALLOTTED_SPACE_EXCEEDED
    assert rig.call("RtlSetDaclSecurityDescriptor", sd, 1, acl, 0) == 0
    parsed = L.read_security_descriptor(L.Memory(e), sd)
    assert [(a["sid"], a["mask"]) for a in parsed["dacl"]] == [(L.SID_SYSTEM, L.GENERIC_ALL), (L.SID_ADMINISTRATORS, L.GENERIC_ALL)]


def test_critical_regions_balance_and_gate_shared_section_work():
    """KeAreApcsDisabled answers from the IRQL and the region depth; a copy in classify or DEVICE_CONTROL dispatch at
    PASSIVE_LEVEL with APCs enabled is a violation, inside a region it is not; an unbalanced leave is one too."""
    r = Rig()
    r.model.phase = "classify"
    assert r.call("KeAreApcsDisabled") == 0
    r.call("memcpy", 0x100, 0x200, 16, orig=lambda argv: None)
    assert [v for v in r.model.violations if v.arg == "APC"], "a copy with APCs enabled went unnoticed"
    r.model.violations.clear()
    r.call("KeEnterCriticalRegion")
    assert r.call("KeAreApcsDisabled") == 1
    r.call("memcpy", 0x100, 0x200, 16, orig=lambda argv: None)
    r.call("KeLeaveCriticalRegion")
    assert r.model.violations == []
    r.model.irql = 2
    assert r.call("KeAreApcsDisabled") == 1
    r.call("memcpy", 0x100, 0x200, 16, orig=lambda argv: None)
    assert r.model.violations == [], "DISPATCH_LEVEL is not suspendable"
    r.model.irql = 0
    r.call("KeLeaveCriticalRegion")
    assert r.model.violations, "leaving a region never entered"
    r.model.violations.clear()
    r.call("KeEnterCriticalRegion")
    r.model.end_of_driver_call("classifyFn")
    assert r.model.violations and "critical region" in r.model.violations[0].message


def test_a_call_after_the_last_completion_is_a_violation():
    """Once a completion leaves no IRP outstanding, any kernel call before the driver call returns is flagged (an
    unload may have run); with another IRP still outstanding it is not. DriverUnload is exempt."""
    class Emu(FakeEmu):
        def add_mem_read_hook(self, cb, begin, end):
            return None
        add_mem_write_hook = add_mem_read_hook

    r = Rig()
    r.emu = Emu()
    r.model.phase = "cancel"
    irp_a, irp_b = r.emu.alloc(bytes(0x100)), r.emu.alloc(bytes(0x100))
    r.model.irp_dispatched(irp_a)
    r.model.irp_dispatched(irp_b)
    r.call("IofCompleteRequest", irp_a, 0, orig=lambda argv: None)
    r.call("KeAreApcsDisabled")
    assert r.model.violations == [], "IRP b is still outstanding"
    r.call("IofCompleteRequest", irp_b, 0, orig=lambda argv: None)
    r.call("KeAreApcsDisabled")
    assert any("after" in v.message and "last outstanding IRP" in v.message for v in r.model.violations), r.model.violations
    r.model.end_of_driver_call("cancel routine")
    r.model.violations.clear()
    r.model.phase = "DriverUnload"
    irp_c = r.emu.alloc(bytes(0x100))
    r.model.irp_dispatched(irp_c)
    r.call("IofCompleteRequest", irp_c, 0, orig=lambda argv: None)
    r.call("KeAreApcsDisabled")
    assert r.model.violations == []
