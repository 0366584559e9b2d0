"""No global points to freed pool: a rule of the kernel model's pool routines.

A driver's statics (the image's writable sections, .data/.bss) are what every
entry point can reach without an argument: classifyFn, dispatch routines,
cancel routines, DPCs, BFE callbacks. A static that still holds the address of
a pool block when the block is freed is a dangling pointer any of them may
follow on another CPU (the issue-15 case: DriverUnload cleared the event log's
pointer after the log was freed, so a classify that started before the callout
was unregistered could read freed pool). Clearing the pointer first, then
waiting out its users, then freeing is the only safe order, and it is visible
in memory at the moment of the free.

So at every ExFreePool/ExFreePoolWithTag the model reads the image's writable
sections and looks for a pointer-sized, pointer-aligned global whose value is
the freed block's address or a pointer-aligned address inside it; each one
found is a violation naming the section and its RVA ("freed pool still
referenced by a global at <rva>"). Pool blocks pointing at each other are not
this rule's business (the block being freed may be reached through its owner,
which the owner's own teardown orders); only the image's globals are scanned.

Why the value must be pointer-aligned: the emulator's pool lives at low
addresses (a few MiB), where plain data collides with pool addresses (the
allow-list's parsed entry for 10.0.0.0/32 reads as 0xa2001, inside a 330 KiB
ring block). On Windows x64 pool is above 0xFFFF8000_00000000 and no such
ambiguity exists. What a static holds into pool is the block (16-byte aligned)
or an object in it (a Rust `AtomicPtr`/`NonNull` to a type holding pointers or
atomics, 8-byte aligned); a byte pointer into a pool buffer kept in a static
would escape this rule.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

POINTER_SIZE = 8


@dataclass(frozen=True)
class Section:
    start: int  # absolute, once loaded
    end: int
    name: str
    image_base: int


def globals_pointing_into(read, sections: list[Section], addr: int, size: int) -> list[tuple[Section, int, int]]:
    """(section, absolute address of the global, value) of every aligned pointer-sized value in `sections`
    that is pointer-aligned and lies in [addr, addr + size) (a zero-sized block counts its first byte). `read(start, n)` reads
    emulated memory."""
    end = addr + max(size, 1)
    out = []
    for s in sections:
        first = (s.start + POINTER_SIZE - 1) // POINTER_SIZE * POINTER_SIZE
        n = (s.end - first) // POINTER_SIZE
        if n <= 0:
            continue
        data = read(first, n * POINTER_SIZE)
        for i, value in enumerate(struct.unpack(f"<{n}Q", data)):
            if addr <= value < end and value % POINTER_SIZE == 0:
                out.append((s, first + i * POINTER_SIZE, value))
    return out


class PoolRefsMixin:
    """Mixed into `KernelModel`; `_free` calls `check_no_global_refs` before the block goes."""

    def init_pool_refs(self) -> None:
        # The image's writable sections (set by the harness once the image is loaded).
        self.global_sections: list[Section] = []

    def check_no_global_refs(self, mem, call, addr: int, size: int) -> None:
        for s, at, value in globals_pointing_into(mem.read, self.global_sections, addr, size):
            inside = "" if value == addr else f" (+{value - addr:#x} inside it)"
            self.violation(call, "P", f"freed pool still referenced by a global at RVA {at - s.image_base:#x} "
                                      f"({s.name.removeprefix('image section ')}): it holds {value:#x}{inside}, "
                                      "a dangling pointer every entry point can follow; clear it before the free")
