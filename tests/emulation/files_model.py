"""The file routines Weir calls to read its stored policy, and the filter-change record
that stands for WFP's reauthorization trigger.

Files: `KernelModel.files` maps an NT path (compared case-insensitively, as
OBJ_CASE_INSENSITIVE asks) to its bytes; a missing path is STATUS_OBJECT_NAME_NOT_FOUND.
Rules (a broken rule is a violation, the call fails as the real one would):

* ZwCreateFile: OBJ_KERNEL_HANDLE; create disposition FILE_OPEN only (the driver never
  creates or overwrites the stored policy); no write, delete or security-changing access;
  synchronous I/O (FILE_SYNCHRONOUS_IO_NONALERT with SYNCHRONIZE), since no event is passed;
* ZwQueryInformationFile / ZwReadFile: a live file handle; FileStandardInformation with a
  buffer of at least 24 bytes; ZwReadFile with no event and no APC routine (synchronous), an
  explicit byte offset; reading at or past the end is STATUS_END_OF_FILE.

Every handle must be closed (`KernelModel.leaks` lists open kernel handles).
"""

from __future__ import annotations

import struct

import layouts as L

# The stored policy's path as the driver opens it (src/driver.rs STORED_POLICY_PATH).
STORED_POLICY_PATH = "\\SystemRoot\\System32\\drivers\\weir\\weir.policy"

STATUS_END_OF_FILE = 0xC0000011
STATUS_INFO_LENGTH_MISMATCH = 0xC0000004
STATUS_DEVICE_DATA_ERROR = 0xC000009C
STATUS_OBJECT_PATH_NOT_FOUND = 0xC000003A

FILE_OPEN = 1
FILE_SYNCHRONOUS_IO_ALERT = 0x10
FILE_SYNCHRONOUS_IO_NONALERT = 0x20
SYNCHRONIZE = 0x00100000
# Write, delete and security-changing rights (specific and generic).
WRITE_LIKE_ACCESS = (0x2 | 0x4 | 0x10 | 0x100 | 0x10000 | 0x40000 | 0x80000 | 0x40000000 | 0x10000000)
FILE_STANDARD_INFORMATION_CLASS = 5

FILES_ARGC = {"ZwCreateFile": 11, "ZwQueryInformationFile": 5, "ZwReadFile": 9}

FILES_IRQL_RULES = {
    "ZwCreateFile": (0, "wdm/nf-wdm-zwcreatefile (PASSIVE_LEVEL)"),
    "ZwQueryInformationFile": (0, "wdm/nf-wdm-zwqueryinformationfile (PASSIVE_LEVEL)"),
    "ZwReadFile": (0, "wdm/nf-wdm-zwreadfile (PASSIVE_LEVEL)"),
}

# (value returned, status DriverEntry must return): a stored policy that cannot be read
# never stops the driver.
FILES_FAILURE_MODES = {
    "ZwCreateFile": (L.STATUS_ACCESS_DENIED, L.STATUS_SUCCESS),
    "ZwQueryInformationFile": (L.STATUS_INSUFFICIENT_RESOURCES, L.STATUS_SUCCESS),
    "ZwReadFile": (STATUS_DEVICE_DATA_ERROR, L.STATUS_SUCCESS),
}


class FilesModelMixin:
    """File hooks for `KernelModel` (which owns `kernel_handles`, `violation`)."""

    def _files_init(self) -> None:
        self.files: dict[str, bytes] = {}
        # Committed transactions that deleted or added filters after the first
        # commit of a session: each is what makes WFP reauthorize the existing
        # flows at the layers it touched. {"session", "deleted": [filter dicts],
        # "added": [filter dicts], "call"}.
        self.filter_changes: list[dict] = []

    def _ZwCreateFile(self, emu, mem, call, orig, argv):
        hp, access, oa, iosb, _alloc, _attrs, share, disposition, options = argv[:9]
        access &= 0xFFFFFFFF
        name = mem.unicode_string(mem.u64(oa + 16)) if oa else None
        attrs = mem.u32(oa + 24) if oa else 0
        text = name["text"] if name else None
        call.args = {"FileHandle": hex(hp), "DesiredAccess": hex(access), "ObjectName": text, "Attributes": hex(attrs),
                     "ShareAccess": hex(share & 0xFFFFFFFF), "CreateDisposition": disposition & 0xFFFFFFFF,
                     "CreateOptions": hex(options & 0xFFFFFFFF)}
        if not attrs & L.OBJ_KERNEL_HANDLE:
            self.violation(call, "ObjectAttributes->Attributes", "no OBJ_KERNEL_HANDLE")
        if (disposition & 0xFFFFFFFF) != FILE_OPEN:
            self.violation(call, "CreateDisposition", f"{disposition} is not FILE_OPEN: the stored policy is never created by the driver")
            return L.STATUS_INVALID_PARAMETER
        if access & WRITE_LIKE_ACCESS:
            self.violation(call, "DesiredAccess", f"{access:#x} asks for write, delete or security rights")
            return L.STATUS_ACCESS_DENIED
        if not options & (FILE_SYNCHRONOUS_IO_NONALERT | FILE_SYNCHRONOUS_IO_ALERT) or not access & SYNCHRONIZE:
            self.violation(call, "CreateOptions", "not opened for synchronous I/O (FILE_SYNCHRONOUS_IO_* with SYNCHRONIZE)")
            return L.STATUS_INVALID_PARAMETER
        data = {k.lower(): v for k, v in self.files.items()}.get((text or "").lower())
        if data is None:
            if iosb:
                mem.w32(iosb, L.STATUS_OBJECT_NAME_NOT_FOUND)
            return L.STATUS_OBJECT_NAME_NOT_FOUND
        h = self._next_kernel_handle
        self._next_kernel_handle += 4
        self.kernel_handles[h] = {"object": 0, "file": text, "data": bytes(data), "access": access, "call": call.label}
        mem.w64(hp, h)
        if iosb:
            mem.w32(iosb, 0)
            mem.w64(iosb + 8, 1)  # FILE_OPENED
        call.args["assigned_handle"] = hex(h)
        return L.STATUS_SUCCESS

    def _file_handle(self, call, h):
        kh = self.kernel_handles.get(h)
        if kh is None or "file" not in kh:
            self.violation(call, "FileHandle", f"{h:#x} is not an open file handle")
            return None
        return kh

    def _ZwQueryInformationFile(self, emu, mem, call, orig, argv):
        h, iosb, info, length, cls = argv[:5]
        length &= 0xFFFFFFFF
        cls &= 0xFFFFFFFF
        call.args = {"FileHandle": hex(h), "Length": length, "FileInformationClass": cls}
        kh = self._file_handle(call, h)
        if kh is None:
            return L.STATUS_INVALID_HANDLE
        if cls != FILE_STANDARD_INFORMATION_CLASS:
            self.violation(call, "FileInformationClass", f"{cls}: only FileStandardInformation is modelled")
            return L.STATUS_INVALID_PARAMETER
        if length < 24:
            return STATUS_INFO_LENGTH_MISMATCH
        size = len(kh["data"])
        alloc = (size + 4095) // 4096 * 4096
        mem.write(info, struct.pack("<qqIBB", alloc, size, 1, 0, 0) + b"\0\0")
        mem.w32(iosb, 0)
        mem.w64(iosb + 8, 24)
        return L.STATUS_SUCCESS

    def _ZwReadFile(self, emu, mem, call, orig, argv):
        h, event, apc, _ctx, iosb, buf, length, offp, _key = argv[:9]
        length &= 0xFFFFFFFF
        call.args = {"FileHandle": hex(h), "Event": hex(event), "ApcRoutine": hex(apc), "Length": length,
                     "ByteOffset": hex(offp)}
        kh = self._file_handle(call, h)
        if kh is None:
            return L.STATUS_INVALID_HANDLE
        if event or apc:
            self.violation(call, "Event/ApcRoutine", "asynchronous read on a synchronous handle")
            return L.STATUS_INVALID_PARAMETER
        if not offp:
            self.violation(call, "ByteOffset", "null: the read position must be explicit")
            return L.STATUS_INVALID_PARAMETER
        offset = struct.unpack("<q", mem.read(offp, 8))[0]
        call.args["offset"] = offset
        data = kh["data"]
        if offset >= len(data):
            mem.w32(iosb, STATUS_END_OF_FILE)
            mem.w64(iosb + 8, 0)
            return STATUS_END_OF_FILE
        chunk = data[offset:offset + length]
        mem.write(buf, chunk)
        mem.w32(iosb, 0)
        mem.w64(iosb + 8, len(chunk))
        call.args["read"] = len(chunk)
        return L.STATUS_SUCCESS
