/*
 * Test-only stand-in for fwpkclnt.sys, for the Wine kernel stage (xtask/src/wine_kernel.rs).
 * Never part of the package.
 *
 * Wine 8 hosts kernel drivers in winedevice.exe but has no fwpkclnt.sys, so the real, signed
 * weir.sys could not load there. This ordinary Windows DLL, placed in system32\drivers,
 * exports every Fwpm and Fwps routine the driver imports and keeps a small in-memory filter
 * engine whose rules are those of tests/wine/wfp_rules.toml (the table the emulation suite's
 * Python model is checked against too; `wfp_rules.h` is generated from it).
 *
 * Wine runs this DLL's DllMain while it binds weir.sys's imports: after the driver's import
 * table is filled, before DriverEntry. That is where the ntoskrnl routines Wine lacks or
 * stubs are pointed at working versions here (ExAllocatePool2, KeQuerySystemTimePrecise,
 * a real DPC queue run by a worker thread, and ETW registration with no session listening), without changing a byte of weir.sys. A DLL load
 * notification does the same for later loads of weir.sys in the same host. An import bound
 * to nothing (Wine's loader stub) makes the load fail, and the routine is named in
 * C:\weirtest\refused.txt.
 *
 * Tests drive the engine over a localhost TCP socket (the port is written to
 * C:\weirtest\port.txt): one text command per line, one reply line (see `command`).
 * Faults for the next load are read from C:\weirtest\faults.txt ("routine n status" lines:
 * the n-th call of routine fails with status).
 */
#define WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wfp_rules.h"

typedef int32_t NTSTATUS;
#define EXPORT __declspec(dllexport)
#define DIR_ROOT "C:\\weirtest"

/* ------------------------------------------------------------------ call counts, faults */
enum routine {
    R_FwpmEngineOpen0, R_FwpmEngineClose0, R_FwpmTransactionBegin0, R_FwpmTransactionCommit0,
    R_FwpmTransactionAbort0, R_FwpmSubLayerAdd0, R_FwpmCalloutAdd0, R_FwpmFilterAdd0,
    R_FwpmFilterDeleteById0, R_FwpmCalloutDeleteByKey0, R_FwpmSubLayerDeleteByKey0,
    R_FwpsCalloutRegister3, R_FwpsCalloutUnregisterById0, R_FwpmBfeStateGet0,
    R_FwpmBfeStateSubscribeChanges0, R_FwpmBfeStateUnsubscribeChanges0,
    R_FwpmProviderAdd0, R_FwpmProviderDeleteByKey0, R_FwpmFilterDeleteByKey0,
    /* ntoskrnl routines the stand-in provides */
    R_ExAllocatePool2, R_KeQuerySystemTimePrecise, R_KeInitializeDpc, R_KeInsertQueueDpc,
    R_KeRemoveQueueDpc, R_KeFlushQueuedDpcs, R_EtwRegister, R_EtwUnregister, R_EtwWriteTransfer,
    /* Wine's own ntoskrnl routines, wrapped only to count calls and inject failures */
    R_IoCreateDevice, R_IoCreateSymbolicLink, R_RtlCreateSecurityDescriptor, R_RtlCreateAcl,
    R_RtlAddAccessAllowedAce, R_RtlSetDaclSecurityDescriptor, R_ObOpenObjectByPointer,
    R_ZwSetSecurityObject, R_ZwOpenKey, R_ZwQueryValueKey, R_ZwClose, R_ExFreePoolWithTag,
    R_ZwCreateFile,
    R_COUNT
};
static const char *const routine_names[R_COUNT] = {
    "FwpmEngineOpen0", "FwpmEngineClose0", "FwpmTransactionBegin0", "FwpmTransactionCommit0",
    "FwpmTransactionAbort0", "FwpmSubLayerAdd0", "FwpmCalloutAdd0", "FwpmFilterAdd0",
    "FwpmFilterDeleteById0", "FwpmCalloutDeleteByKey0", "FwpmSubLayerDeleteByKey0",
    "FwpsCalloutRegister3", "FwpsCalloutUnregisterById0", "FwpmBfeStateGet0",
    "FwpmBfeStateSubscribeChanges0", "FwpmBfeStateUnsubscribeChanges0",
    "FwpmProviderAdd0", "FwpmProviderDeleteByKey0", "FwpmFilterDeleteByKey0",
    "ExAllocatePool2", "KeQuerySystemTimePrecise", "KeInitializeDpc", "KeInsertQueueDpc",
    "KeRemoveQueueDpc", "KeFlushQueuedDpcs", "EtwRegister", "EtwUnregister", "EtwWriteTransfer",
    "IoCreateDevice", "IoCreateSymbolicLink", "RtlCreateSecurityDescriptor", "RtlCreateAcl",
    "RtlAddAccessAllowedAce", "RtlSetDaclSecurityDescriptor", "ObOpenObjectByPointer",
    "ZwSetSecurityObject", "ZwOpenKey", "ZwQueryValueKey", "ZwClose", "ExFreePoolWithTag",
    "ZwCreateFile",
};
/* First wrapped Wine routine; the ones from R_ExAllocatePool2 up to it are filled here. */
#define R_FIRST_WRAPPED R_IoCreateDevice
#define R_FIRST_FILLED R_ExAllocatePool2

static volatile LONG call_count[R_COUNT];
static volatile LONG fail_at[R_COUNT];     /* 0: no fault; else the call number that fails */
static NTSTATUS fail_status[R_COUNT];
static volatile LONG faults_hit;
static volatile LONG dpcs_run; /* DPCs the worker ran (fwpk_kernel.c) */
static volatile LONG etw_live; /* EtwRegister successes not yet unregistered (fwpk_kernel.c) */
static volatile LONG64 pool_allocated; /* ExAllocatePool2 successes (fwpk_kernel.c) */

static int routine_index(const char *name)
{
    for (int i = 0; i < R_COUNT; i++) {
        if (strcmp(routine_names[i], name) == 0) return i;
    }
    return -1;
}

/* Counts the call; returns nonzero when this call is the one to fail. */
static int fault(enum routine r)
{
    LONG n = InterlockedIncrement(&call_count[r]);
    if (fail_at[r] != 0 && n == fail_at[r]) {
        InterlockedIncrement(&faults_hit);
        return 1;
    }
    return 0;
}

/* Appends `text` to C:\\weirtest\\<file>, where the stage reads it. */
static void note(const char *file, const char *text)
{
    char path[MAX_PATH];
    snprintf(path, sizeof path, DIR_ROOT "\\%s", file);
    FILE *f = fopen(path, "a");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* ------------------------------------------------------------------ the engine */
typedef struct { uint32_t type, pad; uint64_t value; } FWP_VALUE0;
typedef struct { const WCHAR *name, *description; } DISPLAY;

typedef struct {
    int live, committed, session;  /* session: index of the session that added it */
    int persistent;                /* the object's PERSISTENT flag (0x1 for every kind) */
    int has_provider;
    GUID key;
    GUID layer;                    /* callouts: applicableLayer; filters: layerKey */
    GUID callout_key;              /* filters with a callout action */
    GUID sublayer;                 /* filters: subLayerKey (zero: the default sublayer) */
    GUID provider;                 /* the providerKey it names, when has_provider */
    uint32_t action, flags;
    uint64_t id;
    uint32_t weight_type;          /* filters: weight.type (0 FWP_EMPTY, 1 FWP_UINT8) */
    uint64_t weight;               /* filters: weight.uint8 */
    char conds[256];               /* filters: the conditions as text (see describe_conditions) */
} object_t;

/* FWPM_*_FLAG_PERSISTENT is 0x1 for providers, sublayers, callouts and filters. */
#define FLAG_PERSISTENT 0x1u
#define FWPM_FILTER_FLAG_BOOTTIME 0x2u

enum kind { K_PROVIDER, K_SUBLAYER, K_CALLOUT, K_FILTER, K_KINDS };
static const char *const kind_names[K_KINDS] = { "providers", "sublayers", "callouts", "filters" };
#define MAX_OBJECTS 256
static object_t objects[K_KINDS][MAX_OBJECTS];

#define MAX_SESSIONS 32
static struct session {
    int open, dynamic, txn;
    LONG generation;
} sessions[MAX_SESSIONS];

typedef void (WINAPI *classify_fn)(const void *, const void *, void *, const void *, const void *, uint64_t, void *);
typedef NTSTATUS (WINAPI *notify_fn)(uint32_t, const GUID *, void *);
#define MAX_CALLOUTS 16
static struct callout_rt {
    int live;
    uint32_t id;
    GUID key;
    classify_fn classify;
    notify_fn notify;
    volatile LONG inflight;
} callouts[MAX_CALLOUTS];
static uint32_t next_callout_id = 1;
static uint64_t next_filter_id = 0x10000;

typedef void (WINAPI *bfe_callback)(void *, uint32_t);
#define MAX_SUBS 8
static struct subscription { int live; bfe_callback fn; void *ctx; } subs[MAX_SUBS];
static volatile LONG bfe_state = FWPM_SERVICE_RUNNING;
static volatile LONG bfe_generation = 1;

/* Engine books; classify takes it shared, every change exclusive. */
static SRWLOCK engine = SRWLOCK_INIT;
/* Serialises BFE state changes with (un)subscription, as BFE delivers callbacks one at a time. */
static CRITICAL_SECTION bfe_lock;

#define SESSION_BASE 0x5E550000u
static int session_of(HANDLE h)
{
    uintptr_t v = (uintptr_t)h;
    if (v < SESSION_BASE || v >= SESSION_BASE + MAX_SESSIONS) return -1;
    int i = (int)(v - SESSION_BASE);
    return sessions[i].open ? i : -1;
}

static int dead(int s) { return sessions[s].generation != bfe_generation || bfe_state != FWPM_SERVICE_RUNNING; }

static object_t *find_key(enum kind k, const GUID *key, int visible_to)
{
    /* Committed objects of every session, plus staged ones of `visible_to` (-1: of every
       session with an open transaction: uniqueness is checked against those too). */
    for (int i = 0; i < MAX_OBJECTS; i++) {
        object_t *o = &objects[k][i];
        if (!o->live || memcmp(&o->key, key, sizeof *key) != 0) continue;
        if (o->committed || visible_to < 0 || o->session == visible_to) return o;
    }
    return NULL;
}

static object_t *new_object(enum kind k, int s)
{
    for (int i = 0; i < MAX_OBJECTS; i++) {
        if (!objects[k][i].live) {
            memset(&objects[k][i], 0, sizeof objects[k][i]);
            objects[k][i].live = 1;
            objects[k][i].session = s;
            return &objects[k][i];
        }
    }
    return NULL;
}

static struct callout_rt *runtime_by_key(const GUID *key)
{
    for (int i = 0; i < MAX_CALLOUTS; i++) {
        if (callouts[i].live && memcmp(&callouts[i].key, key, sizeof *key) == 0) return &callouts[i];
    }
    return NULL;
}

static const struct layer_rule *layer_by_key(const GUID *key)
{
    for (size_t i = 0; i < sizeof LAYERS / sizeof LAYERS[0]; i++) {
        if (memcmp(&LAYERS[i].key, key, sizeof *key) == 0) return &LAYERS[i];
    }
    return NULL;
}

static const struct layer_rule *layer_by_id(unsigned id)
{
    for (size_t i = 0; i < sizeof LAYERS / sizeof LAYERS[0]; i++) {
        if (LAYERS[i].id == id) return &LAYERS[i];
    }
    return NULL;
}

/* Deletes the objects of session `s` (-1: of every session); `staged_only` for a rollback.
   Committed persistent objects (BFE keeps them) and boot-time filters (enforced until BFE
   starts) stay unless `staged_only` takes them back. */
static void delete_objects(int s, int staged_only)
{
    for (int k = 0; k < K_KINDS; k++) {
        for (int i = 0; i < MAX_OBJECTS; i++) {
            object_t *o = &objects[k][i];
            int kept = o->committed && (o->persistent || (k == K_FILTER && (o->flags & FWPM_FILTER_FLAG_BOOTTIME)));
            if (o->live && (s < 0 || o->session == s) && (!staged_only || !o->committed) && !kept) o->live = 0;
        }
    }
}

/* RULE in-use-not-deleted: an object names the provider, or a filter the sublayer. */
static int in_use(enum kind k, const GUID *key)
{
    for (int j = K_SUBLAYER; j < K_KINDS; j++) {
        for (int i = 0; i < MAX_OBJECTS; i++) {
            const object_t *o = &objects[j][i];
            if (!o->live) continue;
            if (k == K_PROVIDER && o->has_provider && memcmp(&o->provider, key, sizeof *key) == 0) return 1;
            if (k == K_SUBLAYER && j == K_FILTER && memcmp(&o->sublayer, key, sizeof *key) == 0) return 1;
        }
    }
    return 0;
}

/* The persistence rules of an add of an object with `flags` naming the provider at
   `provider_key` (NULL: none) in session `s`; engine lock held. */
static NTSTATUS store_rules(int s, uint32_t flags, const GUID *provider_key)
{
    int persistent = (flags & FLAG_PERSISTENT) != 0;
    if (persistent && sessions[s].dynamic) return RULE_PERSISTENT_NEEDS_STATIC_SESSION;
    if (provider_key != NULL) {
        const object_t *p = find_key(K_PROVIDER, provider_key, s);
        if (p == NULL) return RULE_PROVIDER_EXISTS;
        if (persistent && !p->persistent) return STATUS_FWP_INVALID_PARAMETER_;
    }
    return STATUS_SUCCESS;
}

static void set_provider(object_t *o, const GUID *provider_key)
{
    o->has_provider = provider_key != NULL;
    if (provider_key) o->provider = *provider_key;
}

/* ------------------------------------------------------------------ Fwpm* management API */
EXPORT NTSTATUS WINAPI FwpmEngineOpen0(const WCHAR *server, uint32_t authn, void *identity,
                                       const uint8_t *session, HANDLE *handle)
{
    (void)identity;
    if (fault(R_FwpmEngineOpen0)) return fail_status[R_FwpmEngineOpen0];
    if (server != NULL || (authn != 10 && authn != 0xFFFFFFFF)) return STATUS_FWP_INVALID_PARAMETER_;
    if (handle == NULL) return STATUS_FWP_NULL_POINTER;
    if (bfe_state != FWPM_SERVICE_RUNNING) return RULE_OPEN_NEEDS_RUNNING_BFE;
    AcquireSRWLockExclusive(&engine);
    for (int i = 0; i < MAX_SESSIONS; i++) {
        if (!sessions[i].open) {
            sessions[i].open = 1;
            sessions[i].txn = 0;
            sessions[i].dynamic = session != NULL && (*(const uint32_t *)(session + 32) & 1) != 0;
            sessions[i].generation = bfe_generation;
            *handle = (HANDLE)(uintptr_t)(SESSION_BASE + i);
            ReleaseSRWLockExclusive(&engine);
            return STATUS_SUCCESS;
        }
    }
    ReleaseSRWLockExclusive(&engine);
    return STATUS_INSUFFICIENT_RESOURCES;
}

EXPORT NTSTATUS WINAPI FwpmEngineClose0(HANDLE h)
{
    if (fault(R_FwpmEngineClose0)) return fail_status[R_FwpmEngineClose0];
    AcquireSRWLockExclusive(&engine);
    int s = session_of(h);
    NTSTATUS st = STATUS_SUCCESS;
    if (s < 0) {
        st = STATUS_INVALID_HANDLE;
    } else if (dead(s)) {
        sessions[s].open = 0;
        st = RULE_STOPPED_BFE_BREAKS_SESSIONS;
    } else {
        if (sessions[s].txn) delete_objects(s, 1);
        if (sessions[s].dynamic) delete_objects(s, 0);
        sessions[s].open = 0;
        sessions[s].txn = 0;
    }
    ReleaseSRWLockExclusive(&engine);
    return st;
}

EXPORT NTSTATUS WINAPI FwpmTransactionBegin0(HANDLE h, uint32_t flags)
{
    (void)flags;
    if (fault(R_FwpmTransactionBegin0)) return fail_status[R_FwpmTransactionBegin0];
    AcquireSRWLockExclusive(&engine);
    int s = session_of(h);
    NTSTATUS st = STATUS_SUCCESS;
    if (s < 0) st = STATUS_INVALID_HANDLE;
    else if (dead(s)) st = RPC_NT_CALL_FAILED;
    else if (sessions[s].txn) st = RULE_ONE_TRANSACTION_PER_SESSION;
    else sessions[s].txn = 1;
    ReleaseSRWLockExclusive(&engine);
    return st;
}

static NTSTATUS end_txn(HANDLE h, int commit)
{
    AcquireSRWLockExclusive(&engine);
    int s = session_of(h);
    NTSTATUS st = STATUS_SUCCESS;
    if (s < 0) st = STATUS_INVALID_HANDLE;
    else if (dead(s)) st = RPC_NT_CALL_FAILED;
    else if (!sessions[s].txn) st = RULE_COMMIT_NEEDS_TRANSACTION;
    else {
        for (int k = 0; k < K_KINDS; k++) {
            for (int i = 0; i < MAX_OBJECTS; i++) {
                object_t *o = &objects[k][i];
                if (o->live && o->session == s && !o->committed) {
                    if (commit) o->committed = 1;
                    else o->live = 0;
                }
            }
        }
        sessions[s].txn = 0;
    }
    ReleaseSRWLockExclusive(&engine);
    return st;
}

EXPORT NTSTATUS WINAPI FwpmTransactionCommit0(HANDLE h)
{
    if (fault(R_FwpmTransactionCommit0)) return fail_status[R_FwpmTransactionCommit0];
    return end_txn(h, 1);
}

EXPORT NTSTATUS WINAPI FwpmTransactionAbort0(HANDLE h)
{
    if (fault(R_FwpmTransactionAbort0)) return fail_status[R_FwpmTransactionAbort0];
    return end_txn(h, 0);
}

/* The checks every Fwpm*Add0 makes first; on success the engine lock is held exclusively. */
static NTSTATUS add_prologue(HANDLE h, const uint8_t *obj, int *s)
{
    AcquireSRWLockExclusive(&engine);
    *s = session_of(h);
    NTSTATUS st = STATUS_SUCCESS;
    if (*s < 0) st = STATUS_INVALID_HANDLE;
    else if (dead(*s)) st = RPC_NT_CALL_FAILED;
    else if (!sessions[*s].txn) st = RULE_ADD_NEEDS_TRANSACTION;
    else if (obj == NULL) st = STATUS_FWP_NULL_POINTER;
    else if (((const DISPLAY *)(obj + 16))->name == NULL) st = RULE_DISPLAY_NAME_REQUIRED;
    if (st != STATUS_SUCCESS) ReleaseSRWLockExclusive(&engine);
    return st;
}

EXPORT NTSTATUS WINAPI FwpmSubLayerAdd0(HANDLE h, const uint8_t *sl, void *sd)
{
    (void)sd;
    int s;
    if (fault(R_FwpmSubLayerAdd0)) return fail_status[R_FwpmSubLayerAdd0];
    NTSTATUS st = add_prologue(h, sl, &s);
    if (st != STATUS_SUCCESS) return st;
    const GUID *key = (const GUID *)sl;
    uint32_t flags = *(const uint32_t *)(sl + 32);
    const GUID *provider = *(const GUID *const *)(sl + 40);
    object_t *o;
    if ((st = store_rules(s, flags, provider)) != STATUS_SUCCESS) {
    } else if (find_key(K_SUBLAYER, key, -1)) st = RULE_UNIQUE_KEYS;
    else if ((o = new_object(K_SUBLAYER, s)) == NULL) st = STATUS_INSUFFICIENT_RESOURCES;
    else {
        o->key = *key;
        o->flags = flags;
        o->persistent = (flags & FLAG_PERSISTENT) != 0;
        set_provider(o, provider);
    }
    ReleaseSRWLockExclusive(&engine);
    return st;
}

EXPORT NTSTATUS WINAPI FwpmCalloutAdd0(HANDLE h, const uint8_t *co, void *sd, uint32_t *id)
{
    (void)sd;
    int s;
    if (fault(R_FwpmCalloutAdd0)) return fail_status[R_FwpmCalloutAdd0];
    NTSTATUS st = add_prologue(h, co, &s);
    if (st != STATUS_SUCCESS) return st;
    const GUID *key = (const GUID *)co;
    const GUID *layer = (const GUID *)(co + 64);
    struct callout_rt *rt = runtime_by_key(key);
    object_t *o;
    if (layer_by_key(layer) == NULL) st = RULE_KNOWN_LAYER;
    else if (find_key(K_CALLOUT, key, -1)) st = RULE_UNIQUE_KEYS;
    else if (rt == NULL) st = RULE_CALLOUT_REGISTERED_FIRST;
    else if ((o = new_object(K_CALLOUT, s)) == NULL) st = STATUS_INSUFFICIENT_RESOURCES;
    else {
        o->key = *key;
        o->layer = *layer;
        o->id = rt->id;
        if (id) *id = rt->id;
    }
    ReleaseSRWLockExclusive(&engine);
    return st;
}

/* FWPM_FILTER_CONDITION0[n] (40 bytes: fieldKey @0, matchType @16, conditionValue.type @24,
   union @32) as "FIELD-DATA1:MATCH:TYPE:VALUE;..." for the stage's checks. Scalars are printed in
   decimal; FWP_V4_ADDR_MASK (256) as addr/mask in hex, FWP_V6_ADDR_MASK (257) as 32 hex digits and
   the prefix, FWP_RANGE_TYPE (258) as low-high, each read through its pointer. */
static void describe_conditions(const uint8_t *c, uint32_t n, char *out, size_t size)
{
    size_t len = 0;
    out[0] = 0;
    for (uint32_t i = 0; i < n && i < 8 && len < size; i++, c += 40) {
        uint32_t field = *(const uint32_t *)c, match = *(const uint32_t *)(c + 16), type = *(const uint32_t *)(c + 24);
        uint64_t raw = *(const uint64_t *)(c + 32);
        const uint8_t *p = (const uint8_t *)(uintptr_t)raw;
        char value[64];
        if (type >= 256 && type <= 258 && p == NULL) {
            snprintf(value, sizeof value, "null");
        } else if (type == 256) {
            snprintf(value, sizeof value, "%08x/%08x", *(const uint32_t *)p, *(const uint32_t *)(p + 4));
        } else if (type == 257) {
            size_t k = 0;
            for (int b = 0; b < 16; b++) k += (size_t)snprintf(value + k, sizeof value - k, "%02x", p[b]);
            snprintf(value + k, sizeof value - k, "/%u", p[16]);
        } else if (type == 258) {
            snprintf(value, sizeof value, "%llu-%llu", (unsigned long long)(*(const uint64_t *)(p + 8) & 0xFFFF),
                     (unsigned long long)(*(const uint64_t *)(p + 24) & 0xFFFF));
        } else {
            snprintf(value, sizeof value, "%llu", (unsigned long long)(type == 1 ? raw & 0xFF : type == 2 ? raw & 0xFFFF : raw & 0xFFFFFFFF));
        }
        len += (size_t)snprintf(out + len, size - len, "%s%08x:%u:%u:%s", i ? ";" : "", field, match, type, value);
    }
}

EXPORT NTSTATUS WINAPI FwpmFilterAdd0(HANDLE h, const uint8_t *f, void *sd, uint64_t *id)
{
    (void)sd;
    int s;
    if (fault(R_FwpmFilterAdd0)) return fail_status[R_FwpmFilterAdd0];
    NTSTATUS st = add_prologue(h, f, &s);
    if (st != STATUS_SUCCESS) return st;
    static const GUID zero;
    const GUID *key = (const GUID *)f;
    const GUID *layer = (const GUID *)(f + 64);
    const GUID *sublayer = (const GUID *)(f + 80);
    uint32_t action = *(const uint32_t *)(f + 128);
    const GUID *callout_key = (const GUID *)(f + 132);
    uint32_t flags = *(const uint32_t *)(f + 32);
    const GUID *provider = *(const GUID *const *)(f + 40);
    object_t *o;
    if (layer_by_key(layer) == NULL) {
        st = RULE_KNOWN_LAYER;
    } else if ((flags & FLAG_PERSISTENT) && (flags & FWPM_FILTER_FLAG_BOOTTIME)) {
        st = STATUS_FWP_INVALID_FLAGS;
    } else if ((st = store_rules(s, flags, provider)) != STATUS_SUCCESS) {
    } else if (memcmp(sublayer, &zero, sizeof zero) != 0 && find_key(K_SUBLAYER, sublayer, s) == NULL) {
        st = RULE_FILTER_SUBLAYER_EXISTS;
    } else if (action != FWP_ACTION_BLOCK && action != FWP_ACTION_PERMIT && (action & FWP_ACTION_FLAG_CALLOUT) == 0) {
        st = STATUS_FWP_INVALID_ACTION_TYPE;
    } else if ((action & FWP_ACTION_FLAG_CALLOUT) && (o = find_key(K_CALLOUT, callout_key, s)) == NULL) {
        st = RULE_FILTER_CALLOUT_ADDED_FIRST;
    } else if ((action & FWP_ACTION_FLAG_CALLOUT) && memcmp(&o->layer, layer, sizeof *layer) != 0) {
        st = RULE_FILTER_LAYER_MATCHES_CALLOUT;
    } else if ((action & FWP_ACTION_FLAG_CALLOUT) && runtime_by_key(callout_key) == NULL) {
        st = RULE_CALLOUT_REGISTERED_FIRST;
    } else if (find_key(K_FILTER, key, -1)) {
        st = RULE_UNIQUE_KEYS;
    } else if ((o = new_object(K_FILTER, s)) == NULL) {
        st = STATUS_INSUFFICIENT_RESOURCES;
    } else {
        o->key = *key;
        o->layer = *layer;
        o->action = action;
        o->flags = flags;
        o->persistent = (flags & FLAG_PERSISTENT) != 0;
        o->sublayer = *sublayer;
        set_provider(o, provider);
        if (action & FWP_ACTION_FLAG_CALLOUT) o->callout_key = *callout_key;
        o->weight_type = *(const uint32_t *)(f + 96);
        o->weight = o->weight_type == 1 ? (*(const uint64_t *)(f + 104) & 0xFF) : 0;
        uint32_t n = *(const uint32_t *)(f + 112);
        const uint8_t *conds = *(const uint8_t *const *)(f + 120);
        if (n && conds) describe_conditions(conds, n, o->conds, sizeof o->conds);
        else o->conds[0] = 0;
        o->id = next_filter_id++;
        if (id) *id = o->id;
    }
    ReleaseSRWLockExclusive(&engine);
    return st;
}

/* `absent`: what deleting a missing object answers (RULE delete-absent-*). */
static NTSTATUS delete_where(HANDLE h, enum kind k, const GUID *key, uint64_t id, NTSTATUS absent)
{
    AcquireSRWLockExclusive(&engine);
    int s = session_of(h);
    NTSTATUS st = absent;
    if (s < 0) st = STATUS_INVALID_HANDLE;
    else if (dead(s)) st = RPC_NT_CALL_FAILED;
    else if (key && (k == K_PROVIDER || k == K_SUBLAYER) && find_key(k, key, -1) && in_use(k, key)) st = RULE_IN_USE_NOT_DELETED;
    else {
        for (int i = 0; i < MAX_OBJECTS; i++) {
            object_t *o = &objects[k][i];
            if (o->live && (key ? memcmp(&o->key, key, sizeof *key) == 0 : o->id == id)) {
                o->live = 0;
                st = STATUS_SUCCESS;
                break;
            }
        }
    }
    ReleaseSRWLockExclusive(&engine);
    return st;
}

EXPORT NTSTATUS WINAPI FwpmFilterDeleteById0(HANDLE h, uint64_t id)
{
    if (fault(R_FwpmFilterDeleteById0)) return fail_status[R_FwpmFilterDeleteById0];
    return delete_where(h, K_FILTER, NULL, id, STATUS_FWP_NOT_FOUND);
}

EXPORT NTSTATUS WINAPI FwpmCalloutDeleteByKey0(HANDLE h, const GUID *key)
{
    if (fault(R_FwpmCalloutDeleteByKey0)) return fail_status[R_FwpmCalloutDeleteByKey0];
    return key ? delete_where(h, K_CALLOUT, key, 0, STATUS_FWP_NOT_FOUND) : STATUS_FWP_NULL_POINTER;
}

EXPORT NTSTATUS WINAPI FwpmSubLayerDeleteByKey0(HANDLE h, const GUID *key)
{
    if (fault(R_FwpmSubLayerDeleteByKey0)) return fail_status[R_FwpmSubLayerDeleteByKey0];
    return key ? delete_where(h, K_SUBLAYER, key, 0, STATUS_FWP_SUBLAYER_NOT_FOUND) : STATUS_FWP_NULL_POINTER;
}

EXPORT NTSTATUS WINAPI FwpmFilterDeleteByKey0(HANDLE h, const GUID *key)
{
    if (fault(R_FwpmFilterDeleteByKey0)) return fail_status[R_FwpmFilterDeleteByKey0];
    return key ? delete_where(h, K_FILTER, key, 0, RULE_DELETE_ABSENT_FILTER) : STATUS_FWP_NULL_POINTER;
}

EXPORT NTSTATUS WINAPI FwpmProviderDeleteByKey0(HANDLE h, const GUID *key)
{
    if (fault(R_FwpmProviderDeleteByKey0)) return fail_status[R_FwpmProviderDeleteByKey0];
    return key ? delete_where(h, K_PROVIDER, key, 0, RULE_DELETE_ABSENT_PROVIDER) : STATUS_FWP_NULL_POINTER;
}

/* FWPM_PROVIDER0: providerKey, displayData, flags (+32). */
EXPORT NTSTATUS WINAPI FwpmProviderAdd0(HANDLE h, const uint8_t *p, void *sd)
{
    (void)sd;
    int s;
    if (fault(R_FwpmProviderAdd0)) return fail_status[R_FwpmProviderAdd0];
    NTSTATUS st = add_prologue(h, p, &s);
    if (st != STATUS_SUCCESS) return st;
    const GUID *key = (const GUID *)p;
    uint32_t flags = *(const uint32_t *)(p + 32);
    object_t *o;
    if ((st = store_rules(s, flags, NULL)) != STATUS_SUCCESS) {
    } else if (find_key(K_PROVIDER, key, -1)) st = RULE_UNIQUE_KEYS;
    else if ((o = new_object(K_PROVIDER, s)) == NULL) st = STATUS_INSUFFICIENT_RESOURCES;
    else {
        o->key = *key;
        o->flags = flags;
        o->persistent = (flags & FLAG_PERSISTENT) != 0;
    }
    ReleaseSRWLockExclusive(&engine);
    return st;
}

/* ------------------------------------------------------------------ Fwps* run-time API */
EXPORT NTSTATUS WINAPI FwpsCalloutRegister3(void *device, const uint8_t *callout, uint32_t *id)
{
    if (fault(R_FwpsCalloutRegister3)) return fail_status[R_FwpsCalloutRegister3];
    if (device == NULL || callout == NULL) return STATUS_FWP_NULL_POINTER;
    classify_fn fn = *(classify_fn const *)(callout + 24);
    notify_fn nf = *(notify_fn const *)(callout + 32);
    if (fn == NULL || nf == NULL) return STATUS_FWP_NULL_POINTER;
    AcquireSRWLockExclusive(&engine);
    NTSTATUS st = STATUS_INSUFFICIENT_RESOURCES;
    if (runtime_by_key((const GUID *)callout)) {
        st = RULE_UNIQUE_KEYS;
    } else {
        for (int i = 0; i < MAX_CALLOUTS; i++) {
            if (!callouts[i].live && callouts[i].inflight == 0) {
                callouts[i].live = 1;
                callouts[i].id = next_callout_id++;
                callouts[i].key = *(const GUID *)callout;
                callouts[i].classify = fn;
                callouts[i].notify = nf;
                if (id) *id = callouts[i].id;
                st = STATUS_SUCCESS;
                break;
            }
        }
    }
    ReleaseSRWLockExclusive(&engine);
    return st;
}

/* Unregistering waits out classifyFn calls in flight, as the engine's rundown does. */
EXPORT NTSTATUS WINAPI FwpsCalloutUnregisterById0(uint32_t id)
{
    if (fault(R_FwpsCalloutUnregisterById0)) return fail_status[R_FwpsCalloutUnregisterById0];
    AcquireSRWLockExclusive(&engine);
    struct callout_rt *c = NULL;
    for (int i = 0; i < MAX_CALLOUTS; i++) {
        if (callouts[i].live && callouts[i].id == id) c = &callouts[i];
    }
    if (c) c->live = 0;
    ReleaseSRWLockExclusive(&engine);
    if (!c) return STATUS_FWP_CALLOUT_NOT_FOUND;
    while (c->inflight != 0) Sleep(0);
    return STATUS_SUCCESS;
}

EXPORT uint32_t WINAPI FwpmBfeStateGet0(void)
{
    (void)fault(R_FwpmBfeStateGet0);
    return (uint32_t)bfe_state;
}

EXPORT NTSTATUS WINAPI FwpmBfeStateSubscribeChanges0(void *device, bfe_callback fn, void *ctx, HANDLE *out)
{
    if (fault(R_FwpmBfeStateSubscribeChanges0)) return fail_status[R_FwpmBfeStateSubscribeChanges0];
    if (device == NULL || fn == NULL || out == NULL) return STATUS_FWP_NULL_POINTER;
    EnterCriticalSection(&bfe_lock);
    for (int i = 0; i < MAX_SUBS; i++) {
        if (!subs[i].live) {
            subs[i].live = 1;
            subs[i].fn = fn;
            subs[i].ctx = ctx;
            *out = (HANDLE)(uintptr_t)(0xBFE00 + i);
            LeaveCriticalSection(&bfe_lock);
            return STATUS_SUCCESS;
        }
    }
    LeaveCriticalSection(&bfe_lock);
    return STATUS_INSUFFICIENT_RESOURCES;
}

/* Waits for a callback in flight: state changes hold bfe_lock while calling back. */
EXPORT NTSTATUS WINAPI FwpmBfeStateUnsubscribeChanges0(HANDLE h)
{
    if (fault(R_FwpmBfeStateUnsubscribeChanges0)) return fail_status[R_FwpmBfeStateUnsubscribeChanges0];
    uintptr_t i = (uintptr_t)h - 0xBFE00;
    EnterCriticalSection(&bfe_lock);
    NTSTATUS st = STATUS_INVALID_HANDLE;
    if (i < MAX_SUBS && subs[i].live) {
        subs[i].live = 0;
        st = STATUS_SUCCESS;
    }
    LeaveCriticalSection(&bfe_lock);
    return st;
}

static void set_bfe_state(uint32_t state)
{
    EnterCriticalSection(&bfe_lock);
    AcquireSRWLockExclusive(&engine);
    if (state != FWPM_SERVICE_RUNNING && bfe_state == FWPM_SERVICE_RUNNING) {
        /* RULE bfe-stop-deletes-objects: BFE takes every object with it; sessions die. */
        delete_objects(-1, 0);
        InterlockedIncrement(&bfe_generation);
    }
    if (state == FWPM_SERVICE_RUNNING && bfe_state != FWPM_SERVICE_RUNNING) {
        /* RULE boot-time-dropped-at-bfe-start: BFE drops the boot-time filters as it starts. */
        for (int i = 0; i < MAX_OBJECTS; i++) {
            object_t *o = &objects[K_FILTER][i];
            if (o->live && (o->flags & FWPM_FILTER_FLAG_BOOTTIME)) o->live = 0;
        }
    }
    bfe_state = (LONG)state;
    ReleaseSRWLockExclusive(&engine);
    for (int i = 0; i < MAX_SUBS; i++) {
        if (subs[i].live) subs[i].fn(subs[i].ctx, state);
    }
    LeaveCriticalSection(&bfe_lock);
}

#include "fwpk_channel.c"
#include "fwpk_kernel.c"
#include "fwpk_rules.c"
