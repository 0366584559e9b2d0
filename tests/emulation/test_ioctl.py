"""IRP_MJ_DEVICE_CONTROL, CLOSE and CLEANUP through the dispatch routines in DRIVER_OBJECT.MajorFunction[]."""

import tomllib

import harness
import layouts as L


def _crate_version():
    data = tomllib.loads((harness.REPO_ROOT / "Cargo.toml").read_text())
    major, minor, patch = (int(x) for x in data["package"]["version"].split("-")[0].split("+")[0].split("."))
    return [major, minor, patch, 0]


def _check_completion(ck, r, where, status, information):
    ck.eq(r.status, status, where, "dispatch return value")
    ck.eq(r.io_status, status, where, "Irp->IoStatus.Status")
    ck.eq(r.information, information, where, "Irp->IoStatus.Information")
    ck.eq(len(r.completions), 1, where, "IofCompleteRequest calls for this IRP")
    ck.true(r.guard_intact, where, "wrote past the end of the system buffer")


def test_get_stats_reports_version_and_zero_counters(driver):
    ck = harness.Checker("IOCTL_WEIR_GET_STATS on a fresh driver")
    r = driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_GET_STATS, out_len=L.STATS_SIZE)
    driver.expect_no_fault(r.run)
    where = "IRP_MJ_DEVICE_CONTROL IOCTL_WEIR_GET_STATS (out 208: header, no policy)"
    _check_completion(ck, r, where, L.STATUS_SUCCESS, L.STATS_SIZE)
    if r.status == L.STATUS_SUCCESS:
        s = L.decode_stats(r.buffer_after)
        ck.eq(s["size"], L.STATS_SIZE, where, "WEIR_STATS.size")
        ck.eq(s["filtering"], L.FILTERING_ACTIVE, where, "WEIR_STATS.filtering (BFE runs, filters added)")
        ck.eq(s["abi_version"], L.STATS_ABI_VERSION, where, "WEIR_STATS.abi_version")
        ck.eq(s["version"], _crate_version(), where, "WEIR_STATS.version (crate version from Cargo.toml)")
        ck.eq((s["header_size"], s["rule_count"], s["rule_entry_size"], s["policy_generation"]), (208, 0, 16, 0), where,
              "header_size, rule_count, rule_entry_size, policy_generation")
        for i, layer in enumerate(s["layers_v2"]):
            ck.eq(set(layer.values()), {0}, where, f"WEIR_STATS.layers[{i}]")
    ck.done()
    driver.expect_clean()


def test_get_stats_counts_per_layer(driver):
    ck = harness.Checker("IOCTL_WEIR_GET_STATS after classifications")
    plan = {"connect-v4": (3, 1), "connect-v6": (0, 2), "accept-v4": (1, 0), "accept-v6": (2, 2)}
    for layer in L.LAYERS:
        with_right, without = plan[layer.name]
        for _ in range(with_right):
            driver.classify(layer.layer_id, driver.values_for(layer), rights=L.FWPS_RIGHT_ACTION_WRITE)
        for _ in range(without):
            driver.classify(layer.layer_id, driver.values_for(layer), rights=0)
    driver.classify(20, driver.values_for(L.LAYERS[0]))  # not Weir's layer: not counted
    s = driver.stats(ck)
    for layer in L.LAYERS if s else []:
        w, wo = plan[layer.name]
        ck.eq(s["layers"][layer.index], {"classified": w + wo, "permitted": w, "write_right_absent": wo},
              "IOCTL_WEIR_GET_STATS", f"WEIR_STATS.layers[{layer.index}] ({layer.name})")
    # Reading the stats twice gives the same answer (reading does not reset).
    if s:
        ck.eq(driver.stats(ck), s, "IOCTL_WEIR_GET_STATS (second read)", "reply")
    ck.done()
    driver.expect_clean()


BAD_REQUESTS = [
    # (name, irp kwargs, expected status)
    ("unknown code 0x80576008", dict(code=0x80576008, out_len=208), L.STATUS_INVALID_DEVICE_REQUEST),
    ("unknown code 0x00220000", dict(code=0x00220000, out_len=208), L.STATUS_INVALID_DEVICE_REQUEST),
    ("GET_STATS with METHOD_NEITHER bits", dict(code=L.IOCTL_WEIR_GET_STATS | 3, out_len=208), L.STATUS_INVALID_DEVICE_REQUEST),
    ("code 0", dict(code=0, out_len=208), L.STATUS_INVALID_DEVICE_REQUEST),
    ("input buffer present (4 bytes)", dict(code=L.IOCTL_WEIR_GET_STATS, in_len=4, out_len=208), L.STATUS_INVALID_PARAMETER),
    ("input buffer present (208 bytes)", dict(code=L.IOCTL_WEIR_GET_STATS, in_len=208, out_len=208), L.STATUS_INVALID_PARAMETER),
    ("GET_POLICY with input", dict(code=L.IOCTL_WEIR_GET_POLICY, in_len=8, out_len=64), L.STATUS_INVALID_PARAMETER),
    ("empty output (0)", dict(code=L.IOCTL_WEIR_GET_STATS, out_len=0), L.STATUS_BUFFER_TOO_SMALL),
    ("short output (4)", dict(code=L.IOCTL_WEIR_GET_STATS, out_len=4), L.STATUS_BUFFER_TOO_SMALL),
    ("short output (111)", dict(code=L.IOCTL_WEIR_GET_STATS, out_len=111), L.STATUS_BUFFER_TOO_SMALL),
    ("a stats ABI v1 tool (112)", dict(code=L.IOCTL_WEIR_GET_STATS, out_len=112), L.STATUS_WEIR_STATS_ABI_V1),
    ("short output (207)", dict(code=L.IOCTL_WEIR_GET_STATS, out_len=207), L.STATUS_BUFFER_TOO_SMALL),
    ("GET_POLICY short output (23)", dict(code=L.IOCTL_WEIR_GET_POLICY, out_len=23), L.STATUS_BUFFER_TOO_SMALL),
    ("SET_POLICY short output (23)", dict(code=L.IOCTL_WEIR_SET_POLICY, in_len=0, out_len=23), L.STATUS_BUFFER_TOO_SMALL),
    ("NULL SystemBuffer with output length 208", dict(code=L.IOCTL_WEIR_GET_STATS, out_len=208, null_buffer=True), L.STATUS_INVALID_PARAMETER),
]


def test_bad_device_control_requests(driver):
    ck = harness.Checker("malformed IRP_MJ_DEVICE_CONTROL requests")
    for name, kw, expected in BAD_REQUESTS:
        r = driver.irp(L.IRP_MJ_DEVICE_CONTROL, **kw)
        where = f"IRP_MJ_DEVICE_CONTROL [{name}]"
        if r.run.error:
            ck.true(False, where, f"emulator fault {r.run.error}")
            continue
        _check_completion(ck, r, where, expected, 0)
        if r.buffer_before is not None:
            # The input bytes stay; the bytes after them, which the I/O manager
            # leaves uninitialised, are zeroed before the driver views the
            # buffer as a slice (never any reply data on an error).
            n_in = kw.get("in_len", 0)
            initialised = r.buffer_before[:n_in] + b"\0" * (len(r.buffer_before) - n_in)
            ck.true(r.buffer_after in (r.buffer_before, initialised), where,
                    "SystemBuffer written on error (only the uninitialised tail may be zeroed)")
    # A dispatch routine called with a major function it does not handle.
    r = driver.irp(L.IRP_MJ_READ, dispatch=driver.major[L.IRP_MJ_DEVICE_CONTROL])
    ck.true(r.run.error is None, "dispatch [IRP_MJ_READ]", f"emulator fault {r.run.error}")
    _check_completion(ck, r, "dispatch [IRP_MJ_READ]", L.STATUS_INVALID_DEVICE_REQUEST, 0)
    # The driver still answers a good request afterwards.
    s = driver.stats(ck)
    if s:
        ck.eq(s["size"], L.STATS_SIZE, "IOCTL_WEIR_GET_STATS after bad requests", "WEIR_STATS.size")
    ck.done()
    driver.expect_clean()


def test_close_and_cleanup_succeed(driver):
    ck = harness.Checker("IRP_MJ_CLOSE / IRP_MJ_CLEANUP")
    for major, name in ((L.IRP_MJ_CLEANUP, "IRP_MJ_CLEANUP"), (L.IRP_MJ_CLOSE, "IRP_MJ_CLOSE")):
        r = driver.irp(major)
        if ck.true(r.run.error is None, name, f"emulator fault {r.run.error}"):
            _check_completion(ck, r, name, L.STATUS_SUCCESS, 0)
    ck.done()
    driver.expect_clean()


def test_device_control_reads_the_wdk_parameter_layout(driver):
    """Parameters.DeviceIoControl on x64: OutputBufferLength +0x08, InputBufferLength +0x10, IoControlCode +0x18
    (POINTER_ALIGNMENT on the last two). A driver using a layout without that alignment reads the code from
    InputBufferLength's slot and never recognises its own IOCTL."""
    r = driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=L.IOCTL_WEIR_GET_STATS, out_len=L.STATS_SIZE)
    driver.expect_no_fault(r.run)
    if r.status == L.STATUS_SUCCESS:
        return
    # Diagnose: put the code where an unaligned layout would look for it (the InputBufferLength slot).
    probe = driver.irp(L.IRP_MJ_DEVICE_CONTROL, code=0, in_len=L.IOCTL_WEIR_GET_STATS, out_len=L.STATS_SIZE,
                       buffer_size=L.STATS_SIZE)
    hint = ""
    if probe.status == L.STATUS_SUCCESS:
        hint = (" — with the code stored at IO_STACK_LOCATION+0x10 (InputBufferLength) it succeeds: the driver reads "
                "IoControlCode at +0x10 and InputBufferLength at +0x0C, i.e. its IO_STACK_LOCATION "
                "Parameters.DeviceIoControl layout lacks the WDK's POINTER_ALIGNMENT")
    raise AssertionError(f"IRP_MJ_DEVICE_CONTROL IOCTL_WEIR_GET_STATS at the WDK offsets returned "
                         f"{L.status_name(r.status)}{hint}")
