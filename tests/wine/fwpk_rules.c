/*
 * The rules self-test (see fwpkclnt.c).
 * Part of fwpkclnt.c (one translation unit, so the engine's state stays file-static).
 */

/* ------------------------------------------------------------------ rules self-test */
#ifdef WFP_RULES_SELFTEST
/* Built as an exe (`-DWFP_RULES_SELFTEST`): runs the scenario of every rule of
   wfp_rules.toml on this engine, as tests/wine/test_rules_table.py does on the Python model,
   and prints "rule-id status" lines for the stage to compare with the table. */
static WCHAR name_text[] = L"n";
static uint8_t fake_device[16];

static void reset(void)
{
    memset(objects, 0, sizeof objects);
    memset(sessions, 0, sizeof sessions);
    memset(callouts, 0, sizeof callouts);
    bfe_state = FWPM_SERVICE_RUNNING;
    InterlockedIncrement(&bfe_generation);
}

static GUID key_n(unsigned n) { GUID g = { 0xABC0000u + n, 0, 0, { 0 } }; return g; }

static HANDLE open_session(int dynamic)
{
    uint8_t s[72] = { 0 };
    *(uint32_t *)(s + 32) = dynamic ? 1 : 0;
    HANDLE h = NULL;
    FwpmEngineOpen0(NULL, 10, NULL, s, &h);
    return h;
}

static NTSTATUS add_sublayer(HANDLE h, unsigned n, int named)
{
    uint8_t s[72] = { 0 };
    *(GUID *)s = key_n(n);
    ((DISPLAY *)(s + 16))->name = named ? name_text : NULL;
    return FwpmSubLayerAdd0(h, s, NULL);
}

static NTSTATUS register_callout(unsigned n)
{
    uint8_t c[48] = { 0 };
    *(GUID *)c = key_n(n);
    *(void **)(c + 24) = (void *)reset;
    *(void **)(c + 32) = (void *)reset;
    return FwpsCalloutRegister3(fake_device, c, NULL);
}

static NTSTATUS add_callout(HANDLE h, unsigned n, unsigned layer)
{
    uint8_t c[88] = { 0 };
    *(GUID *)c = key_n(n);
    ((DISPLAY *)(c + 16))->name = name_text;
    *(GUID *)(c + 64) = layer_by_id(layer) ? layer_by_id(layer)->key : key_n(999);
    return FwpmCalloutAdd0(h, c, NULL, NULL);
}

static NTSTATUS add_filter(HANDLE h, unsigned n, unsigned layer, unsigned sublayer, unsigned callout, uint32_t flags)
{
    uint8_t f[200] = { 0 };
    *(GUID *)f = key_n(n);
    ((DISPLAY *)(f + 16))->name = name_text;
    *(uint32_t *)(f + 32) = flags;
    *(GUID *)(f + 64) = layer_by_id(layer)->key;
    if (sublayer) *(GUID *)(f + 80) = key_n(sublayer);
    *(uint32_t *)(f + 128) = callout ? 0x5003 : FWP_ACTION_BLOCK;
    if (callout) *(GUID *)(f + 132) = key_n(callout);
    return FwpmFilterAdd0(h, f, NULL, NULL);
}

/* The providerKey pointers name this (the engine copies the key). */
static GUID provider_key;

static const GUID *provider_of(unsigned n)
{
    if (n == 0) return NULL;
    provider_key = key_n(n);
    return &provider_key;
}

static NTSTATUS add_provider(HANDLE h, unsigned n, uint32_t flags)
{
    uint8_t p[72] = { 0 };
    *(GUID *)p = key_n(n);
    ((DISPLAY *)(p + 16))->name = name_text;
    *(uint32_t *)(p + 32) = flags;
    return FwpmProviderAdd0(h, p, NULL);
}

static NTSTATUS add_sublayer_of(HANDLE h, unsigned n, uint32_t flags, unsigned provider)
{
    uint8_t s[72] = { 0 };
    *(GUID *)s = key_n(n);
    ((DISPLAY *)(s + 16))->name = name_text;
    *(uint32_t *)(s + 32) = flags;
    *(const GUID **)(s + 40) = provider_of(provider);
    return FwpmSubLayerAdd0(h, s, NULL);
}

static NTSTATUS add_filter_of(HANDLE h, unsigned n, unsigned sublayer, uint32_t flags, unsigned provider)
{
    uint8_t f[200] = { 0 };
    *(GUID *)f = key_n(n);
    ((DISPLAY *)(f + 16))->name = name_text;
    *(uint32_t *)(f + 32) = flags;
    *(const GUID **)(f + 40) = provider_of(provider);
    *(GUID *)(f + 64) = layer_by_id(48)->key;
    if (sublayer) *(GUID *)(f + 80) = key_n(sublayer);
    *(uint32_t *)(f + 128) = FWP_ACTION_BLOCK;
    return FwpmFilterAdd0(h, f, NULL, NULL);
}

static NTSTATUS delete_key(NTSTATUS (WINAPI *del)(HANDLE, const GUID *), HANDLE h, unsigned n)
{
    GUID k = key_n(n);
    return del(h, &k);
}

static int live_objects(void)
{
    int n = 0;
    for (int k = 0; k < K_KINDS; k++)
        for (int i = 0; i < MAX_OBJECTS; i++) n += objects[k][i].live && objects[k][i].committed;
    return n;
}

#define EXPECT(cond) do { if (!(cond)) { printf("FAIL line %d: %s\n", __LINE__, #cond); return (NTSTATUS)0xC0000001u; } } while (0)

static NTSTATUS s_add_needs_transaction(void) { return add_sublayer(open_session(1), 1, 1); }
static NTSTATUS s_one_transaction_per_session(void)
{
    HANDLE h = open_session(1);
    FwpmTransactionBegin0(h, 0);
    return FwpmTransactionBegin0(h, 0);
}
static NTSTATUS s_commit_needs_transaction(void) { return FwpmTransactionCommit0(open_session(1)); }
static NTSTATUS s_abort_rolls_back(void)
{
    HANDLE h = open_session(1);
    FwpmTransactionBegin0(h, 0);
    EXPECT(add_sublayer(h, 1, 1) == STATUS_SUCCESS);
    NTSTATUS st = FwpmTransactionAbort0(h);
    FwpmTransactionBegin0(h, 0);
    EXPECT(add_sublayer(h, 1, 1) == STATUS_SUCCESS);
    return st;
}
static NTSTATUS s_unique_keys(void)
{
    HANDLE h = open_session(1);
    FwpmTransactionBegin0(h, 0);
    add_sublayer(h, 1, 1);
    return add_sublayer(h, 1, 1);
}
static NTSTATUS s_callout_registered_first(void)
{
    HANDLE h = open_session(1);
    FwpmTransactionBegin0(h, 0);
    return add_callout(h, 2, 48);
}
static NTSTATUS s_filter_callout_added_first(void)
{
    register_callout(2);
    HANDLE h = open_session(1);
    FwpmTransactionBegin0(h, 0);
    return add_filter(h, 3, 48, 0, 2, 0);
}
static NTSTATUS s_filter_layer_matches_callout(void)
{
    register_callout(2);
    HANDLE h = open_session(1);
    FwpmTransactionBegin0(h, 0);
    EXPECT(add_callout(h, 2, 48) == STATUS_SUCCESS);
    return add_filter(h, 3, 50, 0, 2, 0);
}
static NTSTATUS s_filter_sublayer_exists(void)
{
    HANDLE h = open_session(1);
    FwpmTransactionBegin0(h, 0);
    return add_filter(h, 3, 48, 9, 0, 0);
}
static NTSTATUS s_known_layer(void)
{
    register_callout(2);
    HANDLE h = open_session(1);
    FwpmTransactionBegin0(h, 0);
    return add_callout(h, 2, 7);
}
static NTSTATUS s_display_name_required(void)
{
    HANDLE h = open_session(1);
    FwpmTransactionBegin0(h, 0);
    return add_sublayer(h, 1, 0);
}
static NTSTATUS s_open_needs_running_bfe(void)
{
    set_bfe_state(0);
    HANDLE h;
    uint8_t s[72] = { 0 };
    *(uint32_t *)(s + 32) = 1; /* FWPM_SESSION_FLAG_DYNAMIC */
    return FwpmEngineOpen0(NULL, 10, NULL, s, &h);
}
static NTSTATUS s_stopped_bfe_breaks_sessions(void)
{
    HANDLE h = open_session(1);
    set_bfe_state(0);
    return FwpmEngineClose0(h);
}
static NTSTATUS s_bfe_stop_deletes_objects(void)
{
    HANDLE h = open_session(0);
    FwpmTransactionBegin0(h, 0);
    add_sublayer(h, 1, 1);
    NTSTATUS st = FwpmTransactionCommit0(h);
    EXPECT(live_objects() == 1);
    set_bfe_state(0);
    EXPECT(live_objects() == 0);
    return st;
}
static NTSTATUS s_dynamic_close_deletes(void)
{
    HANDLE h = open_session(1);
    FwpmTransactionBegin0(h, 0);
    add_sublayer(h, 1, 1);
    FwpmTransactionCommit0(h);
    EXPECT(live_objects() == 1);
    NTSTATUS st = FwpmEngineClose0(h);
    EXPECT(live_objects() == 0);
    return st;
}
static NTSTATUS s_permit_if_callout_unregistered(void)
{
    uint32_t flags[2] = { FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED, 0 };
    uint32_t want[2] = { FWP_ACTION_PERMIT, FWP_ACTION_BLOCK };
    for (int i = 0; i < 2; i++) {
        reset();
        EXPECT(register_callout(2) == STATUS_SUCCESS);
        HANDLE h = open_session(1);
        FwpmTransactionBegin0(h, 0);
        EXPECT(add_callout(h, 2, 48) == STATUS_SUCCESS);
        EXPECT(add_filter(h, 3, 48, 0, 2, flags[i]) == STATUS_SUCCESS);
        EXPECT(FwpmTransactionCommit0(h) == STATUS_SUCCESS);
        EXPECT(FwpsCalloutUnregisterById0(1 + (uint32_t)(next_callout_id - 2)) == STATUS_SUCCESS);
        struct conn c;
        memset(&c, 0, sizeof c);
        c.layer = 48;
        c.rights = 1;
        c.app_len = -1;
        struct verdict v = classify(&c);
        EXPECT(v.callout_called == 0 && v.action == want[i]);
    }
    return STATUS_SUCCESS;
}
static NTSTATUS s_provider_exists(void)
{
    HANDLE h = open_session(0);
    FwpmTransactionBegin0(h, 0);
    EXPECT(add_sublayer_of(h, 1, 0, 5) == STATUS_FWP_PROVIDER_NOT_FOUND);
    return add_filter_of(h, 3, 0, 0, 5);
}
static NTSTATUS s_persistent_needs_static_session(void)
{
    HANDLE h = open_session(1);
    FwpmTransactionBegin0(h, 0);
    return add_provider(h, 5, FLAG_PERSISTENT);
}
static NTSTATUS s_persistent_survives_close_and_bfe_restart(void)
{
    HANDLE h = open_session(0);
    FwpmTransactionBegin0(h, 0);
    EXPECT(add_provider(h, 5, FLAG_PERSISTENT) == STATUS_SUCCESS);
    EXPECT(add_sublayer_of(h, 1, FLAG_PERSISTENT, 5) == STATUS_SUCCESS);
    EXPECT(FwpmTransactionCommit0(h) == STATUS_SUCCESS);
    EXPECT(FwpmEngineClose0(h) == STATUS_SUCCESS);
    set_bfe_state(0);
    set_bfe_state(FWPM_SERVICE_RUNNING);
    h = open_session(0);
    FwpmTransactionBegin0(h, 0);
    EXPECT(add_sublayer_of(h, 1, 0, 5) == STATUS_FWP_ALREADY_EXISTS);
    return add_provider(h, 5, FLAG_PERSISTENT);
}
static NTSTATUS s_delete_absent_filter(void)
{
    HANDLE h = open_session(1);
    EXPECT(delete_key(FwpmSubLayerDeleteByKey0, h, 1) == STATUS_FWP_SUBLAYER_NOT_FOUND);
    return delete_key(FwpmFilterDeleteByKey0, h, 3);
}
static NTSTATUS s_delete_absent_provider(void) { return delete_key(FwpmProviderDeleteByKey0, open_session(1), 5); }
static NTSTATUS s_in_use_not_deleted(void)
{
    HANDLE h = open_session(0);
    FwpmTransactionBegin0(h, 0);
    EXPECT(add_provider(h, 5, 0) == STATUS_SUCCESS);
    EXPECT(add_sublayer_of(h, 1, 0, 5) == STATUS_SUCCESS);
    EXPECT(add_filter_of(h, 3, 1, 0, 0) == STATUS_SUCCESS);
    EXPECT(FwpmTransactionCommit0(h) == STATUS_SUCCESS);
    EXPECT(delete_key(FwpmSubLayerDeleteByKey0, h, 1) == STATUS_FWP_IN_USE);
    NTSTATUS st = delete_key(FwpmProviderDeleteByKey0, h, 5);
    /* Emptied in order, each goes. */
    EXPECT(delete_key(FwpmFilterDeleteByKey0, h, 3) == STATUS_SUCCESS);
    EXPECT(delete_key(FwpmSubLayerDeleteByKey0, h, 1) == STATUS_SUCCESS);
    EXPECT(delete_key(FwpmProviderDeleteByKey0, h, 5) == STATUS_SUCCESS);
    return st;
}
static NTSTATUS s_boot_time_dropped_at_bfe_start(void)
{
    HANDLE h = open_session(0);
    FwpmTransactionBegin0(h, 0);
    EXPECT(add_filter_of(h, 3, 0, FWPM_FILTER_FLAG_BOOTTIME, 0) == STATUS_SUCCESS);
    EXPECT(FwpmTransactionCommit0(h) == STATUS_SUCCESS);
    set_bfe_state(0);
    EXPECT(live_objects() == 1); /* a boot-time filter outlives the BFE stop */
    set_bfe_state(FWPM_SERVICE_RUNNING);
    EXPECT(live_objects() == 0);
    return delete_key(FwpmFilterDeleteByKey0, open_session(1), 3);
}

static const struct { const char *id; NTSTATUS (*run)(void); } scenarios[] = {
    { "add-needs-transaction", s_add_needs_transaction },
    { "one-transaction-per-session", s_one_transaction_per_session },
    { "commit-needs-transaction", s_commit_needs_transaction },
    { "abort-rolls-back", s_abort_rolls_back },
    { "unique-keys", s_unique_keys },
    { "callout-registered-first", s_callout_registered_first },
    { "filter-callout-added-first", s_filter_callout_added_first },
    { "filter-layer-matches-callout", s_filter_layer_matches_callout },
    { "filter-sublayer-exists", s_filter_sublayer_exists },
    { "known-layer", s_known_layer },
    { "display-name-required", s_display_name_required },
    { "open-needs-running-bfe", s_open_needs_running_bfe },
    { "stopped-bfe-breaks-sessions", s_stopped_bfe_breaks_sessions },
    { "bfe-stop-deletes-objects", s_bfe_stop_deletes_objects },
    { "dynamic-close-deletes", s_dynamic_close_deletes },
    { "permit-if-callout-unregistered", s_permit_if_callout_unregistered },
    { "provider-exists", s_provider_exists },
    { "persistent-needs-static-session", s_persistent_needs_static_session },
    { "persistent-survives-close-and-bfe-restart", s_persistent_survives_close_and_bfe_restart },
    { "delete-absent-filter", s_delete_absent_filter },
    { "delete-absent-provider", s_delete_absent_provider },
    { "in-use-not-deleted", s_in_use_not_deleted },
    { "boot-time-dropped-at-bfe-start", s_boot_time_dropped_at_bfe_start },
};

int main(int argc, char **argv)
{
    /* "hold": stay alive until killed. Wine ends its system processes (services.exe and the
       driver host) when no other process of the prefix runs; the stage keeps this one. */
    if (argc > 1 && strcmp(argv[1], "hold") == 0) {
        Sleep(INFINITE);
        return 0;
    }
    InitializeCriticalSection(&bfe_lock);
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        reset();
        printf("%s %#lx\n", scenarios[i].id, (unsigned long)(uint32_t)scenarios[i].run());
    }
    return 0;
}
#endif
