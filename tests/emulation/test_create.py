"""Who may open \\\\.\\Weir: the DACL DriverEntry puts on the control device,
checked the way the I/O manager checks it on IRP_MJ_CREATE (SeAccessCheck
with the caller's token), before the driver sees the request."""

import pytest

import harness
import layouts as L

ALLOWED = ["SYSTEM", "elevated administrator"]
REFUSED = ["standard user", "non-elevated administrator", "restricted administrator", "low-integrity administrator"]


def test_device_dacl_allows_only_system_and_administrators(driver):
    (dev,) = driver.model.live_devices().values()
    ck = harness.Checker("control device DACL")
    ck.eq(dev.get("dacl"), [
        {"type": L.ACCESS_ALLOWED_ACE_TYPE, "flags": 0, "mask": L.GENERIC_ALL, "sid": L.SID_SYSTEM},
        {"type": L.ACCESS_ALLOWED_ACE_TYPE, "flags": 0, "mask": L.GENERIC_ALL, "sid": L.SID_ADMINISTRATORS},
    ], "ZwSetSecurityObject", "DACL applied to \\Device\\Weir (D:(A;;GA;;;SY)(A;;GA;;;BA))")
    (link,) = driver.model.calls_in("DriverEntry", "IoCreateSymbolicLink")
    (apply,) = driver.model.calls_in("DriverEntry", "ZwSetSecurityObject")
    ck.true(apply.seq < link.seq, link.label, "symbolic link created before the DACL was applied")
    ck.eq(dev["characteristics"] & L.FILE_DEVICE_SECURE_OPEN, L.FILE_DEVICE_SECURE_OPEN, "IoCreateDevice",
          "FILE_DEVICE_SECURE_OPEN (opens of names below the device use its DACL)")
    ck.done()
    driver.expect_clean()


@pytest.mark.parametrize("who", ALLOWED)
def test_create_accepts(driver, who):
    status, reason, r = driver.open_device(who)
    assert status == L.STATUS_SUCCESS, f"{who}: refused ({reason}, {L.status_name(status)})"
    assert r is not None and len(r.completions) == 1 and r.io_status == L.STATUS_SUCCESS and r.information == 0
    driver.expect_clean()


@pytest.mark.parametrize("who", REFUSED)
def test_create_refuses(driver, who):
    for desired in (L.GENERIC_READ, L.GENERIC_READ | L.GENERIC_WRITE):
        status, reason, r = driver.open_device(who, desired)
        assert status == L.STATUS_ACCESS_DENIED, f"{who} opened the device for {desired:#x} ({reason})"
        assert r is None, "the driver saw an IRP_MJ_CREATE the I/O manager refuses"
    driver.expect_clean()


def test_default_device_security_would_let_a_user_in(new_run):
    """The model's access check is not vacuous: without the driver's DACL (the
    default device security) a standard user gets in."""
    run = new_run("default-sd").start()
    (dev,) = run.model.live_devices().values()
    dev["dacl"] = None
    dev["label"] = None  # and without its mandatory label (the default medium one applies)
    status, reason, _ = run.open_device("standard user")
    assert status == L.STATUS_SUCCESS, reason


def test_create_close_cleanup_complete_once(driver):
    ck = harness.Checker("CREATE/CLOSE/CLEANUP")
    for major in (L.IRP_MJ_CREATE, L.IRP_MJ_CLEANUP, L.IRP_MJ_CLOSE):
        r = driver.irp(major)
        where = f"IRP_MJ {major:#x}"
        ck.eq(r.run.error, None, where, "emulator fault")
        ck.eq(r.status, L.STATUS_SUCCESS, where, "status")
        ck.eq(len(r.completions), 1, where, "IofCompleteRequest calls")
    ck.eq(driver.model.calls_in("dispatch", "SeTokenIsAdmin"), [], "dispatch", "SeTokenIsAdmin calls (access is the DACL's job)")
    ck.done()
    driver.expect_clean()


def test_low_integrity_elevated_token_is_refused_even_read_only(driver):
    """An elevated administrator token lowered to low integrity keeps Administrators enabled, so the DACL alone
    would let it open the device for reading (read the event stream, GET_STATS, GET_POLICY). The device's mandatory
    label (High, no write-up, no read-up, no execute-up) refuses every open from below High integrity."""
    (dev,) = driver.model.live_devices().values()
    assert dev.get("label") == {"level": L.HIGH_RID, "policy": L.NO_WRITE_UP | L.NO_READ_UP | L.NO_EXECUTE_UP}, dev.get("label")
    who = "elevated administrator lowered to low integrity"
    for desired in (L.GENERIC_READ | L.GENERIC_WRITE, L.GENERIC_READ, L.FILE_GENERIC_READ):
        status, reason, r = driver.open_device(who, desired)
        assert status == L.STATUS_ACCESS_DENIED, f"open for {desired:#x} granted ({reason})"
        assert "mandatory integrity" in reason, reason
        assert r is None
    medium = dict(harness.TOKENS["elevated administrator"], integrity=L.MEDIUM_RID)
    status, reason, _ = driver.open_device(medium, L.GENERIC_READ)
    assert status == L.STATUS_ACCESS_DENIED, f"medium-integrity token with Administrators enabled opened it ({reason})"
    for who in ALLOWED:
        status, reason, _ = driver.open_device(who, L.GENERIC_READ | L.GENERIC_WRITE)
        assert status == L.STATUS_SUCCESS, f"{who}: {reason}"
    driver.expect_clean()
