"""Static worst-case stack of a function in a PE image: the deepest direct-call path, summing each
function's frame (pushes + `sub rsp` + return address). Indirect calls (imports) are not followed.

Usage: python3 tests/emulation/stack_depth.py IMAGE ENTRY_ADDRESS   (needs llvm-objdump)
"""
import re, subprocess, sys
image, entry = sys.argv[1], int(sys.argv[2], 0)
out = subprocess.run(["llvm-objdump", "-d", "--no-show-raw-insn", "-M", "intel", image], capture_output=True, text=True).stdout
insns = []
for line in out.splitlines():
    m = re.match(r"\s*([0-9a-f]+):\s+(\S+)\s*(.*)", line)
    if m:
        insns.append((int(m.group(1), 16), m.group(2), m.group(3)))
addr_index = {a: i for i, (a, _, _) in enumerate(insns)}
def analyse(start, seen=set()):
    """frame bytes of the function at start, direct call targets, indirect calls (count)."""
    i = addr_index.get(start)
    if i is None:
        return 0, set(), 0
    frame, calls, indirect, prologue = 8, set(), 0, True
    jmps = set()
    visited = set()
    work = [i]
    while work:
        j = work.pop()
        while j < len(insns) and j not in visited:
            visited.add(j)
            a, op, args = insns[j]
            if prologue and op == "push":
                frame += 8
            elif prologue and op == "sub" and args.startswith("rsp,"):
                frame += int(args.split(",")[1].strip(), 0)
                prologue = False
            elif op not in ("push", "mov", "lea"):
                prologue = False
            if op == "call":
                t = re.match(r"(0x[0-9a-f]+)", args)
                if t:
                    calls.add(int(t.group(1), 16))
                else:
                    indirect += 1
            if op.startswith("j"):
                t = re.match(r"(0x[0-9a-f]+)", args)
                if t and int(t.group(1), 16) in addr_index:
                    k = addr_index[int(t.group(1), 16)]
                    if op == "jmp" and abs(int(t.group(1), 16) - start) > 0x4000:
                        calls.add(int(t.group(1), 16))  # tail call
                    else:
                        work.append(k)
                if op == "jmp":
                    break
            if op in ("ret", "int3", "ud2"):
                break
            j += 1
    return frame, calls, indirect
memo = {}
def worst(f, stack=()):
    if f in stack:
        return 0, ["(recursion)"]
    if f in memo:
        return memo[f]
    frame, calls, _ = analyse(f)
    best, path = 0, []
    for c in calls:
        w, p = worst(c, stack + (f,))
        if w > best:
            best, path = w, p
    memo[f] = (frame + best, [f"{f:#x}:{frame}"] + path)
    return memo[f]
total, path = worst(entry)
print(total, " -> ".join(path))
