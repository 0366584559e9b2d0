"""IRP_MJ_CREATE: only SYSTEM and Administrators may open \\Device\\Weir."""

import harness
import layouts as L

ADMIN = 0xFFFF_C000_0000_A000
USER = 0xFFFF_C000_0000_B000

CASES = [
    # (name, irp kwargs, token SeTokenIsAdmin must be asked about (None: not called), expected status)
    ("admin primary token", dict(create_token=("primary", ADMIN)), ADMIN, L.STATUS_SUCCESS),
    ("non-admin primary token", dict(create_token=("primary", USER)), USER, L.STATUS_ACCESS_DENIED),
    ("admin impersonation (client) token", dict(create_token=("client", ADMIN)), ADMIN, L.STATUS_SUCCESS),
    ("non-admin impersonation (client) token", dict(create_token=("client", USER)), USER, L.STATUS_ACCESS_DENIED),
    ("no token at all", dict(), None, L.STATUS_ACCESS_DENIED),
    ("SecurityContext NULL", dict(null_security_context=True), None, L.STATUS_ACCESS_DENIED),
    ("SecurityContext->AccessState NULL", dict(null_access_state=True), None, L.STATUS_ACCESS_DENIED),
]


def test_create_allows_only_administrators(driver):
    driver.model.admin_tokens.add(ADMIN)
    ck = harness.Checker("IRP_MJ_CREATE access check")
    for name, kw, token, expected in CASES:
        before = len(driver.model.calls_in("dispatch", "SeTokenIsAdmin"))
        r = driver.irp(L.IRP_MJ_CREATE, **kw)
        where = f"IRP_MJ_CREATE [{name}]"
        if not ck.true(r.run.error is None, where, f"emulator fault {r.run.error}"):
            continue
        ck.eq(r.status, expected, where, "dispatch return value")
        ck.eq(r.io_status, expected, where, "Irp->IoStatus.Status")
        ck.eq(r.information, 0, where, "Irp->IoStatus.Information")
        ck.eq(len(r.completions), 1, where, "IofCompleteRequest calls for this IRP")
        asked = driver.model.calls_in("dispatch", "SeTokenIsAdmin")[before:]
        if token is not None:
            ck.eq([int(c.args["Token"], 16) for c in asked], [token], where, "SeTokenIsAdmin Token argument(s)")
    ck.done()
    driver.expect_clean()


def test_create_prefers_the_impersonation_token(driver):
    """ClientToken (impersonation) wins over PrimaryToken, in both directions."""
    driver.model.admin_tokens.add(ADMIN)
    ck = harness.Checker("IRP_MJ_CREATE token choice")
    for client, primary, expected in ((USER, ADMIN, L.STATUS_ACCESS_DENIED), (ADMIN, USER, L.STATUS_SUCCESS)):
        where = f"IRP_MJ_CREATE [ClientToken {client:#x}, PrimaryToken {primary:#x}]"
        r = driver.irp(L.IRP_MJ_CREATE, create_token={"client": client, "primary": primary})
        if not ck.true(r.run.error is None, where, f"emulator fault {r.run.error}"):
            continue
        ck.eq(r.status, expected, where, "dispatch return value")
        asked = [int(c.args["Token"], 16) for c in driver.model.calls_in("dispatch", "SeTokenIsAdmin")][-1:]
        ck.eq(asked, [client], where, "SeTokenIsAdmin Token argument")
    ck.done()
    driver.expect_clean()


def test_create_refuses_identification_level_impersonation(driver):
    """An administrator's token held only at SecurityIdentification level does
    not let its holder open the device; at SecurityImpersonation it does."""
    driver.model.admin_tokens.add(ADMIN)
    ck = harness.Checker("IRP_MJ_CREATE impersonation level")
    for level, expected in ((L.SECURITY_IDENTIFICATION, L.STATUS_ACCESS_DENIED), (L.SECURITY_IMPERSONATION, L.STATUS_SUCCESS)):
        where = f"IRP_MJ_CREATE [admin ClientToken at level {level}]"
        r = driver.irp(L.IRP_MJ_CREATE, create_token={"client": ADMIN, "primary": USER, "level": level})
        if not ck.true(r.run.error is None, where, f"emulator fault {r.run.error}"):
            continue
        ck.eq(r.status, expected, where, "dispatch return value")
        ck.eq(len(r.completions), 1, where, "IofCompleteRequest calls for this IRP")
    ck.done()
    driver.expect_clean()
