r"""weir-client's own bytes against the real image: the proof that weirctl and weir.sys speak the same ABI.

Two tests:
- the session: weir-client's `Client` (crates/weir-client/examples/emulated_session.rs) checks every
  reply it decodes, step by step;
- the commands: the weirctl binary itself (built with its `emulated` feature, which swaps \\.\Weir
  for a TCP connection to this module) runs the commands the README's test-VM section uses.

`crates/weir-client/examples/emulated_session.rs` runs weir-client's `Client` over a pipe: each
request it makes (stats, set/get/clear policy, read events) arrives here as a JSON line with the
exact input bytes, IOCTL code and output size; this module dispatches it to the emulated driver
as IRP_MJ_DEVICE_CONTROL and sends back the completion status and output bytes, which the Rust
side decodes with weir-client's decoders and checks. Any format change on one side that the
other does not follow fails here.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import socket
import subprocess

import harness
import layouts as L

EXAMPLE = "emulated_session"


def _session_binary():
    cargo = os.environ.get("CARGO") or shutil.which("cargo") or "cargo"
    subprocess.run([cargo, "build", "-q", "-p", "weir-client", "--example", EXAMPLE, "--features", "line-transport"], cwd=harness.REPO_ROOT, check=True)
    exe = harness.REPO_ROOT / "target" / "debug" / "examples" / EXAMPLE
    assert exe.is_file(), f"{exe} was not built"
    return exe


# The FILE_OBJECT of the client's handle: one for the whole session, so its event cursor
# continues from one read to the next, as a real client's handle does.
CLIENT_HANDLE = 0xFFFF_A000_0000_0F00


def _ioctl(d: harness.DriverRun, code: int, data: bytes, out_len: int) -> harness.IrpResult:
    """One METHOD_BUFFERED request with `data` at the start of the system buffer."""
    if "input" in inspect.signature(d.irp).parameters:
        # The client's one handle (a file object, as every user-mode request has).
        return d.irp(L.IRP_MJ_DEVICE_CONTROL, code=code, in_len=len(data), out_len=out_len, input=data,
                     file_object=CLIENT_HANDLE)
    # A harness without input support: put the bytes into the system buffer as it is allocated.
    alloc = d.alloc

    def alloc_with_input(size, init=None, tag="weir.test"):
        if tag == "weir.test.systembuffer" and init is not None:
            init = data + init[len(data):]
        return alloc(size, init, tag=tag)

    d.alloc = alloc_with_input
    try:
        return d.irp(L.IRP_MJ_DEVICE_CONTROL, code=code, in_len=len(data), out_len=out_len,
                     file_object=CLIENT_HANDLE)
    finally:
        d.alloc = alloc


def _events_supported() -> bool:
    return hasattr(L, "IOCTL_WEIR_READ_EVENTS")


def _connect(d: harness.DriverRun, msg: dict) -> dict:
    layer = next(layer for layer in L.LAYERS if layer.name == msg["layer"])
    values = d.values_for(layer, local=msg["local"], lport=msg["local_port"], remote=msg["remote"],
                          rport=msg["remote_port"])
    r = d.classify(layer.layer_id, values)
    assert r.run.error is None, r.run.error
    action = {L.FWP_ACTION_BLOCK: "block", L.FWP_ACTION_PERMIT: "permit"}.get(r.action, hex(r.action))
    return {"action": action}


def _answer(d: harness.DriverRun, msg: dict, calls: list) -> dict:
    """Carries out one request line of weir-client's line transport on the emulated driver."""
    if msg["op"] == "connect":
        return _connect(d, msg)
    assert msg["op"] == "call", f"unknown request {msg}"
    data = bytes.fromhex(msg["input"])
    r = _ioctl(d, msg["code"], data, msg["output_len"])
    assert r.run.error is None, f"{msg['name']}: emulator fault {r.run.error}"
    assert r.guard_intact, f"{msg['name']}: the driver wrote past the system buffer"
    status = r.status & 0xFFFFFFFF
    if status == getattr(L, "STATUS_PENDING", 0x103) and hasattr(d, "cancel_irp"):
        # A read with no events waiting is parked; nothing else will complete it here, so cancel
        # it (as Ctrl-C does) and answer with the status it completes with.
        d.cancel_irp(r.irp)
        done = [c for c in d.model.irp_completions if c.get("irp") == r.irp]
        status = d.mem.u32(r.irp + L.IRP_IO_STATUS_STATUS) if done else status
    is_error = status >> 30 == 0b11
    out = b"" if is_error or not r.buffer_after else r.buffer_after[: min(r.information, msg["output_len"])]
    calls.append((msg["name"], L.status_name(status), len(data), len(out)))
    return {"status": status, "output": out.hex()}


def _started(new_run) -> harness.DriverRun:
    return new_run("driver").start()


def test_weir_client_session_on_the_real_image(new_run):
    exe = _session_binary()
    d = _started(new_run)
    args = [str(exe)] + (["--events"] if _events_supported() else [])
    proc = subprocess.Popen(args, cwd=harness.REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    calls = []
    done = None
    try:
        for line in proc.stdout:
            msg = json.loads(line)
            if msg["op"] == "done":
                done = msg
                break
            answer = _answer(d, msg, calls)
            proc.stdin.write(json.dumps(answer) + "\n")
            proc.stdin.flush()
    finally:
        proc.stdin.close()
        stderr = proc.stderr.read()
        rc = proc.wait(timeout=60)
    print(stderr)
    print("\n".join(f"{n}: {s} (in {i}, out {o})" for n, s, i, o in calls))
    assert done is not None and done["ok"], f"weir-client session failed: {done}\n{stderr}"
    assert rc == 0, stderr
    names = {c[0] for c in calls}
    assert {"get stats", "set policy", "get policy", "clear policy"} <= names, names
    statuses = [(c[0], c[1].split()[0]) for c in calls]
    # The large policy came back after STATUS_BUFFER_OVERFLOW and a retry; the bad magic was
    # refused with Weir's own status (0xE057_0000 | DecodeError::BadMagic.code() = 2).
    assert ("get policy", "0x80000005") in statuses, statuses
    assert ("set policy", "0xE0570002") in statuses, statuses
    if _events_supported():
        assert "read events" in names, names
    d.expect_no_fault(d.unload())
    d.expect_clean()


def _weirctl_binary():
    cargo = os.environ.get("CARGO") or shutil.which("cargo") or "cargo"
    subprocess.run([cargo, "build", "-q", "-p", "weirctl", "--features", "emulated"], cwd=harness.REPO_ROOT, check=True)
    exe = harness.REPO_ROOT / "target" / "debug" / "weirctl"
    assert exe.is_file(), f"{exe} was not built"
    return exe


def _weirctl(d: harness.DriverRun, exe, *args: str, stored=None) -> tuple[int, str, str, list]:
    """Runs `weirctl ARGS` with the emulated driver behind WEIRCTL_EMULATOR; returns (exit code,
    stdout, stderr, the requests it made). `stored`: the file weirctl writes as the stored policy
    (`--stored-path`); before each request it is what the emulated driver finds at its stored-policy
    path, as if both were the same disk."""
    from files_model import STORED_POLICY_PATH

    def sync_stored():
        if stored is None:
            return
        if stored.exists():
            d.model.files[STORED_POLICY_PATH] = stored.read_bytes()
        else:
            d.model.files.pop(STORED_POLICY_PATH, None)

    calls: list = []
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(0.2)
        env = dict(os.environ, WEIRCTL_EMULATOR=f"127.0.0.1:{srv.getsockname()[1]}")
        proc = subprocess.Popen([str(exe), *args], cwd=harness.REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        conn = None
        while conn is None and proc.poll() is None:
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
        if conn is not None:
            with conn, conn.makefile("rw") as f:
                for line in f:
                    sync_stored()
                    f.write(json.dumps(_answer(d, json.loads(line), calls)) + "\n")
                    f.flush()
        out, err = proc.communicate(timeout=120)
    print(f"$ weirctl {' '.join(args)} -> {proc.returncode}\n{out}{err}")
    return proc.returncode, out, err, calls


def test_weirctl_commands_on_the_real_image(new_run, tmp_path):
    """The README's test-VM walk-through, run by the weirctl binary against the emulated image."""
    exe = _weirctl_binary()
    d = _started(new_run)

    rc, out, err, _ = _weirctl(d, exe, "status")
    assert rc == 0, err
    assert "driver:     loaded, version" in out and "abi:        stats v2" in out
    assert "policy:     generation 0, 0 rules" in out
    assert "source:     none (monitor mode" in out and "stored:     none" in out, out

    # Load = store (atomically) + the driver reads the stored file itself (RELOAD_POLICY).
    stored = tmp_path / "weir.policy"
    rc, out, err, calls = _weirctl(d, exe, "policy", "load", "--stored-path", str(stored), "examples/server-ports.toml",
                                   stored=stored)
    assert rc == 0, err
    assert out.startswith("loaded and stored examples/server-ports.toml: generation 1, 4 rules, 1 address set (4 entries)"), out
    assert [(c[0], c[1].split()[0]) for c in calls] == [("reload policy", "STATUS_SUCCESS")], calls
    # `policy compile -o` writes exactly the bytes `load` stored and the driver accepted.
    compiled = tmp_path / "compiled.policy"
    rc, out, err, calls = _weirctl(d, exe, "--json", "policy", "compile", "examples/server-ports.toml", "-o", str(compiled))
    assert rc == 0 and calls == [], (rc, err, calls)
    assert compiled.read_bytes() == stored.read_bytes()
    payload = stored.read_bytes()[64:]
    assert json.loads(out)["sha256"] == hashlib.sha256(payload).hexdigest()
    rc, out, err, _ = _weirctl(d, exe, "--json", "status")
    assert rc == 0, err
    doc = json.loads(out)["policy"]
    assert (doc["source"], doc["generation"], doc["sha256"], doc["stored_refused"]) == (
        "stored", 1, hashlib.sha256(payload).hexdigest(), None), doc
    # A restart reads the same file: `weirctl policy reload` stands for it here.
    rc, out, err, calls = _weirctl(d, exe, "policy", "reload", stored=stored)
    assert rc == 0 and out.startswith("reloaded the stored policy: generation 2, 4 rules"), (out, err)
    # --this-run: active, not stored.
    rc, out, err, calls = _weirctl(d, exe, "policy", "load", "--this-run", "examples/server-ports.toml", stored=stored)
    assert rc == 0 and "for this run only: generation 3" in out, (out, err)
    assert [c[0] for c in calls] == ["set policy"], calls
    rc, out, err, _ = _weirctl(d, exe, "--json", "status")
    assert json.loads(out)["policy"]["source"] == "this-run", out
    # A damaged stored file: reload is refused with the reason, the active policy stays.
    stored.write_bytes(stored.read_bytes()[:-1])
    rc, out, err, calls = _weirctl(d, exe, "policy", "reload", stored=stored)
    assert rc == 1 and "0xE0573001" in err and "truncated" in err, (rc, err)
    rc, out, err, _ = _weirctl(d, exe, "status")
    assert "source:     this-run, generation 3" in out and "stored policy refused: 0xE0573001" in out, out
    stored.write_bytes(compiled.read_bytes())
    _weirctl(d, exe, "policy", "reload", stored=stored)

    rc, out, err, _ = _weirctl(d, exe, "policy", "show")
    assert rc == 0, err
    assert out.startswith("# active policy, generation 4\n"), out
    shown = tmp_path / "shown.toml"
    shown.write_text(out)
    rc, out, err, _ = _weirctl(d, exe, "--json", "policy", "check", str(shown))
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["policy"] == {"rules": 4, "disabled_rules": 0, "sets": 1, "set_entries": 4, "default_outbound": "permit",
                             "default_inbound": "block", "log_all": False}, doc
    # The shown text encodes to the same blob the file does.
    rc, out2, err, _ = _weirctl(d, exe, "--json", "policy", "check", "examples/server-ports.toml")
    assert json.loads(out2)["blob_bytes"] == doc["blob_bytes"]

    rc, out, err, _ = _weirctl(d, exe, "stats", "--rules")
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert [r[1] for r in rows if len(r) == 3 and r[0].isdigit()] == ["1", "2", "3", "9"], out
    assert out.splitlines()[0].split()[:3] == ["layer", "new", "reauth"], out

    if _events_supported():
        # An inbound connection to a closed port: the default action blocks it, rule 9 logs it.
        layer = next(layer for layer in L.LAYERS if layer.name == "accept-v4")
        r = d.classify(layer.layer_id, d.values_for(layer, local="10.0.0.2", lport=80, remote="198.51.100.9",
                                                    rport=40000))
        assert r.action == L.FWP_ACTION_BLOCK
        rc, out, err, _ = _weirctl(d, exe, "events")
        assert rc == 0, err
        assert "in  tcp 10.0.0.2:80 -> 198.51.100.9:40000 block rule 9" in out, out
        # The same handle's cursor continues: a second connection, read as JSON (schema 1, docs/events.md).
        d.classify(layer.layer_id, d.values_for(layer, local="10.0.0.2", lport=81, remote="198.51.100.9",
                                                rport=40001))
        rc, out, err, _ = _weirctl(d, exe, "--json", "events")
        assert rc == 0, err
        lines = [json.loads(x) for x in out.splitlines()]
        assert [(x["schema"], x["kind"], x["protocol"], x["protocol_number"], x["local_port"], x["decision"],
                 x["rule_id"], x["direction"], x["layer"]) for x in lines] == [
            (1, "connection", "tcp", 6, 81, "block", 9, "inbound", "ALE_AUTH_RECV_ACCEPT_V4")], lines

    # Rule names, descriptions and a disabled rule survive the trip through the driver (format version 2).
    rc, out, err, _ = _weirctl(d, exe, "policy", "load", "--this-run", "crates/weirctl/tests/policies/named.toml",
                               stored=stored)
    assert rc == 0 and "generation 5, 3 rules (1 disabled)" in out, (out, err)
    rc, out, err, _ = _weirctl(d, exe, "--json", "policy", "show")
    assert rc == 0, err
    doc = json.loads(out)
    assert [(r["id"], r.get("name"), r["enabled"]) for r in doc["rules"]] == [
        (1, "web", True), (2, "ssh", False), (3, None, True)], doc["rules"]
    assert "id = 2\nname = 'ssh'\nenabled = false\n" in doc["text"], doc["text"]
    rc, out, err, _ = _weirctl(d, exe, "stats", "--rules")
    assert rc == 0, err
    rows = [line.split(None, 3) for line in out.splitlines()]
    assert [r[1:] for r in rows if r and r[0].isdigit() and len(r) >= 3 and r[1].isdigit()] == [
        ["1", "0", "web"], ["2", "0", "ssh (disabled)"], ["3", "0"]], out

    if _events_supported():
        # weirctl events names the deciding rule from the policy that decided (record version 3: generation
        # and rule index; ids need not be unique, so the index decides), and never from a later policy.
        named = tmp_path / "telnet.toml"
        named.write_text('[[rule]]\nid = 7\nname = "no telnet"\naction = "block"\nprotocol = "tcp"\nremote_port = 23\n\n'
                         '[[rule]]\nid = 7\nname = "no rlogin"\naction = "block"\nprotocol = "tcp"\nremote_port = 513\n')
        rc, out, err, _ = _weirctl(d, exe, "policy", "load", "--this-run", str(named), stored=stored)
        assert rc == 0 and "generation 6" in out, (out, err)
        layer = next(layer for layer in L.LAYERS if layer.name == "connect-v4")
        for port in (23, 513):
            r = d.classify(layer.layer_id, d.values_for(layer, local="10.0.0.2", lport=50000, remote="192.0.2.7",
                                                        rport=port))
            assert r.action == L.FWP_ACTION_BLOCK
        rc, out, err, _ = _weirctl(d, exe, "--json", "events")
        assert rc == 0, err
        lines = [json.loads(x) for x in out.splitlines()]
        assert [(x["remote_port"], x["rule_id"], x["rule_index"], x["policy_generation"], x["rule"]) for x in lines] == [
            (23, 7, 0, 6, "no telnet"), (513, 7, 1, 6, "no rlogin")], lines
        # Recorded under generation 6, read after generation 7 (other names at the same indices) was loaded.
        r = d.classify(layer.layer_id, d.values_for(layer, local="10.0.0.2", lport=50001, remote="192.0.2.7", rport=23))
        assert r.action == L.FWP_ACTION_BLOCK
        named.write_text(named.read_text().replace("no telnet", "renamed").replace("no rlogin", "renamed too"))
        rc, out, err, _ = _weirctl(d, exe, "policy", "load", "--this-run", str(named), stored=stored)
        assert rc == 0 and "generation 7" in out, (out, err)
        rc, out, err, _ = _weirctl(d, exe, "events")
        assert rc == 0, err
        assert "out tcp 10.0.0.2:50001 -> 192.0.2.7:23 block rule 7 " in out, out
        assert "renamed" not in out, out

    # A broken file is refused before anything reaches the driver.
    rc, out, err, calls = _weirctl(d, exe, "policy", "load", "crates/weirctl/tests/policies/bad-port-range.toml")
    assert rc == 1 and calls == [], (rc, calls)
    assert "bad-port-range.toml:5:20: port range 9000-80 is reversed" in err, err

    rc, out, err, _ = _weirctl(d, exe, "policy", "clear", "--stored-path", str(stored), stored=stored)
    assert rc == 0, err
    # Generation 5 was the named policy; the rule-name checks above load two more when events are supported.
    cleared = 8 if _events_supported() else 6
    assert out.startswith(f"deleted the stored policy {stored}\nactive policy cleared: generation {cleared}"), out
    assert not stored.exists()
    rc, out, err, _ = _weirctl(d, exe, "--json", "status")
    assert rc == 0, err
    doc = json.loads(out)
    assert (doc["loaded"], doc["policy_generation"], doc["rule_count"], doc["policy"]["source"]) == (True, cleared, 0, "none"), doc
    rc, out, err, _ = _weirctl(d, exe, "policy", "show")
    assert rc == 0 and out.startswith(f"# no policy loaded (generation {cleared})"), out

    d.expect_no_fault(d.unload())
    d.expect_clean()
