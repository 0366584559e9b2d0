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
 * stubs are pointed at working versions here (ExAllocatePool2, KeQuerySystemTimePrecise, and
 * a real DPC queue run by a worker thread), without changing a byte of weir.sys. A DLL load
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
    /* ntoskrnl routines the stand-in provides */
    R_ExAllocatePool2, R_KeQuerySystemTimePrecise, R_KeInitializeDpc, R_KeInsertQueueDpc,
    R_KeRemoveQueueDpc, R_KeFlushQueuedDpcs,
    /* Wine's own ntoskrnl routines, wrapped only to count calls and inject failures */
    R_IoCreateDevice, R_IoCreateSymbolicLink, R_RtlCreateSecurityDescriptor, R_RtlCreateAcl,
    R_RtlAddAccessAllowedAce, R_RtlSetDaclSecurityDescriptor, R_ObOpenObjectByPointer,
    R_ZwSetSecurityObject, R_ZwOpenKey, R_ZwQueryValueKey, R_ZwClose,
    R_COUNT
};
static const char *const routine_names[R_COUNT] = {
    "FwpmEngineOpen0", "FwpmEngineClose0", "FwpmTransactionBegin0", "FwpmTransactionCommit0",
    "FwpmTransactionAbort0", "FwpmSubLayerAdd0", "FwpmCalloutAdd0", "FwpmFilterAdd0",
    "FwpmFilterDeleteById0", "FwpmCalloutDeleteByKey0", "FwpmSubLayerDeleteByKey0",
    "FwpsCalloutRegister3", "FwpsCalloutUnregisterById0", "FwpmBfeStateGet0",
    "FwpmBfeStateSubscribeChanges0", "FwpmBfeStateUnsubscribeChanges0",
    "ExAllocatePool2", "KeQuerySystemTimePrecise", "KeInitializeDpc", "KeInsertQueueDpc",
    "KeRemoveQueueDpc", "KeFlushQueuedDpcs",
    "IoCreateDevice", "IoCreateSymbolicLink", "RtlCreateSecurityDescriptor", "RtlCreateAcl",
    "RtlAddAccessAllowedAce", "RtlSetDaclSecurityDescriptor", "ObOpenObjectByPointer",
    "ZwSetSecurityObject", "ZwOpenKey", "ZwQueryValueKey", "ZwClose",
};
/* First wrapped Wine routine; the ones from R_ExAllocatePool2 up to it are filled here. */
#define R_FIRST_WRAPPED R_IoCreateDevice
#define R_FIRST_FILLED R_ExAllocatePool2

static volatile LONG call_count[R_COUNT];
static volatile LONG fail_at[R_COUNT];     /* 0: no fault; else the call number that fails */
static NTSTATUS fail_status[R_COUNT];
static volatile LONG faults_hit;

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

/* ------------------------------------------------------------------ the engine */
typedef struct { uint32_t type, pad; uint64_t value; } FWP_VALUE0;
typedef struct { const WCHAR *name, *description; } DISPLAY;

typedef struct {
    int live, committed, session;  /* session: index of the session that added it */
    GUID key;
    GUID layer;                    /* callouts: applicableLayer; filters: layerKey */
    GUID callout_key;              /* filters with a callout action */
    uint32_t action, flags;
    uint64_t id;
} object_t;

enum kind { K_SUBLAYER, K_CALLOUT, K_FILTER, K_KINDS };
static const char *const kind_names[K_KINDS] = { "sublayers", "callouts", "filters" };
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

/* Deletes the objects of session `s` (-1: of every session); `staged_only` for a rollback. */
static void delete_objects(int s, int staged_only)
{
    for (int k = 0; k < K_KINDS; k++) {
        for (int i = 0; i < MAX_OBJECTS; i++) {
            object_t *o = &objects[k][i];
            if (o->live && (s < 0 || o->session == s) && (!staged_only || !o->committed)) o->live = 0;
        }
    }
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
    object_t *o;
    if (find_key(K_SUBLAYER, key, -1)) st = RULE_UNIQUE_KEYS;
    else if ((o = new_object(K_SUBLAYER, s)) == NULL) st = STATUS_INSUFFICIENT_RESOURCES;
    else o->key = *key;
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
    object_t *o;
    if (layer_by_key(layer) == NULL) {
        st = RULE_KNOWN_LAYER;
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
        o->flags = *(const uint32_t *)(f + 32);
        if (action & FWP_ACTION_FLAG_CALLOUT) o->callout_key = *callout_key;
        o->id = next_filter_id++;
        if (id) *id = o->id;
    }
    ReleaseSRWLockExclusive(&engine);
    return st;
}

static NTSTATUS delete_where(HANDLE h, enum kind k, const GUID *key, uint64_t id)
{
    AcquireSRWLockExclusive(&engine);
    int s = session_of(h);
    NTSTATUS st = STATUS_FWP_NOT_FOUND;
    if (s < 0) st = STATUS_INVALID_HANDLE;
    else if (dead(s)) st = RPC_NT_CALL_FAILED;
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
    return delete_where(h, K_FILTER, NULL, id);
}

EXPORT NTSTATUS WINAPI FwpmCalloutDeleteByKey0(HANDLE h, const GUID *key)
{
    if (fault(R_FwpmCalloutDeleteByKey0)) return fail_status[R_FwpmCalloutDeleteByKey0];
    return key ? delete_where(h, K_CALLOUT, key, 0) : STATUS_FWP_NULL_POINTER;
}

EXPORT NTSTATUS WINAPI FwpmSubLayerDeleteByKey0(HANDLE h, const GUID *key)
{
    if (fault(R_FwpmSubLayerDeleteByKey0)) return fail_status[R_FwpmSubLayerDeleteByKey0];
    return key ? delete_where(h, K_SUBLAYER, key, 0) : STATUS_FWP_NULL_POINTER;
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
    bfe_state = (LONG)state;
    ReleaseSRWLockExclusive(&engine);
    for (int i = 0; i < MAX_SUBS; i++) {
        if (subs[i].live) subs[i].fn(subs[i].ctx, state);
    }
    LeaveCriticalSection(&bfe_lock);
}

/* ------------------------------------------------------------------ ntoskrnl fills */
typedef void *(WINAPI *alloc_fn)(int, SIZE_T, ULONG);
static alloc_fn wine_alloc_with_tag;

/* ExAllocatePool2: zeroed unless POOL_FLAG_UNINITIALIZED (0x2); from Wine's pool, so Wine's
   ExFreePoolWithTag frees it. */
static void *WINAPI fill_ExAllocatePool2(uint64_t flags, SIZE_T size, ULONG tag)
{
    if (fault(R_ExAllocatePool2)) return NULL;
    void *p = wine_alloc_with_tag ? wine_alloc_with_tag(0, size, tag) : NULL;
    if (p && !(flags & 0x2)) memset(p, 0, size);
    return p;
}

static void WINAPI fill_KeQuerySystemTimePrecise(LARGE_INTEGER *t)
{
    (void)fault(R_KeQuerySystemTimePrecise);
    FILETIME ft;
    GetSystemTimePreciseAsFileTime(&ft);
    t->QuadPart = ((int64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
}

/* KDPC (x64): DpcListEntry @8, DeferredRoutine @24, DeferredContext @32, SystemArgument1/2
   @40/@48, DpcData @56 (here: nonzero while queued). One worker thread plays the DPC queue. */
typedef void (WINAPI *dpc_routine)(void *, void *, void *, void *);
struct kdpc {
    uint8_t type, importance;
    uint16_t number;
    uint32_t pad;
    struct kdpc *next;
    uint64_t history;
    dpc_routine routine;
    void *context, *arg1, *arg2;
    volatile void *queued;
};
static CRITICAL_SECTION dpc_lock;
static CONDITION_VARIABLE dpc_cv;
static struct kdpc *dpc_head, *dpc_tail;
static int dpc_running;
static volatile LONG dpcs_run;

static void WINAPI fill_KeInitializeDpc(struct kdpc *dpc, dpc_routine routine, void *context)
{
    (void)fault(R_KeInitializeDpc);
    memset(dpc, 0, sizeof *dpc);
    dpc->type = 19; /* DpcObject */
    dpc->routine = routine;
    dpc->context = context;
}

static BOOLEAN WINAPI fill_KeInsertQueueDpc(struct kdpc *dpc, void *a1, void *a2)
{
    (void)fault(R_KeInsertQueueDpc);
    EnterCriticalSection(&dpc_lock);
    BOOLEAN inserted = dpc->queued == NULL;
    if (inserted) {
        dpc->arg1 = a1;
        dpc->arg2 = a2;
        dpc->queued = dpc;
        dpc->next = NULL;
        if (dpc_tail) dpc_tail->next = dpc; else dpc_head = dpc;
        dpc_tail = dpc;
        WakeAllConditionVariable(&dpc_cv);
    }
    LeaveCriticalSection(&dpc_lock);
    return inserted;
}

static BOOLEAN WINAPI fill_KeRemoveQueueDpc(struct kdpc *dpc)
{
    (void)fault(R_KeRemoveQueueDpc);
    EnterCriticalSection(&dpc_lock);
    BOOLEAN removed = FALSE;
    struct kdpc **link = &dpc_head, *prev = NULL;
    while (*link) {
        if (*link == dpc) {
            *link = dpc->next;
            if (dpc_tail == dpc) dpc_tail = prev;
            dpc->queued = NULL;
            removed = TRUE;
            break;
        }
        prev = *link;
        link = &(*link)->next;
    }
    LeaveCriticalSection(&dpc_lock);
    return removed;
}

static void WINAPI fill_KeFlushQueuedDpcs(void)
{
    (void)fault(R_KeFlushQueuedDpcs);
    EnterCriticalSection(&dpc_lock);
    while (dpc_head != NULL || dpc_running) SleepConditionVariableCS(&dpc_cv, &dpc_lock, INFINITE);
    LeaveCriticalSection(&dpc_lock);
}

static DWORD WINAPI dpc_worker(void *unused)
{
    (void)unused;
    EnterCriticalSection(&dpc_lock);
    for (;;) {
        while (dpc_head == NULL) SleepConditionVariableCS(&dpc_cv, &dpc_lock, INFINITE);
        struct kdpc *d = dpc_head;
        dpc_head = d->next;
        if (dpc_head == NULL) dpc_tail = NULL;
        d->queued = NULL;
        dpc_running = 1;
        dpc_routine fn = d->routine;
        void *ctx = d->context, *a1 = d->arg1, *a2 = d->arg2;
        LeaveCriticalSection(&dpc_lock);
        fn(d, ctx, a1, a2);
        InterlockedIncrement(&dpcs_run);
        EnterCriticalSection(&dpc_lock);
        dpc_running = 0;
        WakeAllConditionVariable(&dpc_cv);
    }
    return 0;
}

/* Wrappers of Wine's own routines: count, inject the failure, else call Wine's. Up to eight
   integer arguments are passed through (every wrapped routine takes at most seven). */
typedef uint64_t (WINAPI *any_fn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
static any_fn original[R_COUNT];
#define WRAP(name)                                                                                       \
    static uint64_t WINAPI wrap_##name(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e,     \
                                       uint64_t f, uint64_t g, uint64_t h)                            \
    {                                                                                                  \
        if (fault(R_##name)) return (uint32_t)fail_status[R_##name];                                   \
        return original[R_##name](a, b, c, d, e, f, g, h);                                             \
    }
WRAP(IoCreateDevice)
WRAP(IoCreateSymbolicLink)
WRAP(RtlCreateSecurityDescriptor)
WRAP(RtlCreateAcl)
WRAP(RtlAddAccessAllowedAce)
WRAP(RtlSetDaclSecurityDescriptor)
WRAP(ObOpenObjectByPointer)
WRAP(ZwSetSecurityObject)
WRAP(ZwOpenKey)
WRAP(ZwQueryValueKey)
WRAP(ZwClose)

static void *const replacement[R_COUNT] = {
    [R_ExAllocatePool2] = (void *)fill_ExAllocatePool2,
    [R_KeQuerySystemTimePrecise] = (void *)fill_KeQuerySystemTimePrecise,
    [R_KeInitializeDpc] = (void *)fill_KeInitializeDpc,
    [R_KeInsertQueueDpc] = (void *)fill_KeInsertQueueDpc,
    [R_KeRemoveQueueDpc] = (void *)fill_KeRemoveQueueDpc,
    [R_KeFlushQueuedDpcs] = (void *)fill_KeFlushQueuedDpcs,
    [R_IoCreateDevice] = (void *)wrap_IoCreateDevice,
    [R_IoCreateSymbolicLink] = (void *)wrap_IoCreateSymbolicLink,
    [R_RtlCreateSecurityDescriptor] = (void *)wrap_RtlCreateSecurityDescriptor,
    [R_RtlCreateAcl] = (void *)wrap_RtlCreateAcl,
    [R_RtlAddAccessAllowedAce] = (void *)wrap_RtlAddAccessAllowedAce,
    [R_RtlSetDaclSecurityDescriptor] = (void *)wrap_RtlSetDaclSecurityDescriptor,
    [R_ObOpenObjectByPointer] = (void *)wrap_ObOpenObjectByPointer,
    [R_ZwSetSecurityObject] = (void *)wrap_ZwSetSecurityObject,
    [R_ZwOpenKey] = (void *)wrap_ZwOpenKey,
    [R_ZwQueryValueKey] = (void *)wrap_ZwQueryValueKey,
    [R_ZwClose] = (void *)wrap_ZwClose,
};

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

static int in_some_module(const void *addr)
{
    HMODULE m;
    return GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                              (LPCWSTR)addr, &m) != 0;
}

/* Points weir.sys's ntoskrnl slots at the fills and wrappers, and checks that every import is
   bound to code of some module. Returns 0 (and names the routine in refused.txt) if not. */
static int patch_image(HMODULE image)
{
    uint8_t *base = (uint8_t *)image;
    IMAGE_NT_HEADERS64 *nt = (IMAGE_NT_HEADERS64 *)(base + ((IMAGE_DOS_HEADER *)base)->e_lfanew);
    IMAGE_DATA_DIRECTORY dir = nt->OptionalHeader.DataDirectory[IMAGE_DIRECTORY_ENTRY_IMPORT];
    if (dir.VirtualAddress == 0) return 1;
    int ok = 1;
    for (IMAGE_IMPORT_DESCRIPTOR *d = (IMAGE_IMPORT_DESCRIPTOR *)(base + dir.VirtualAddress); d->Name; d++) {
        const char *dll = (const char *)(base + d->Name);
        uint64_t *names = (uint64_t *)(base + (d->OriginalFirstThunk ? d->OriginalFirstThunk : d->FirstThunk));
        void **slots = (void **)(base + d->FirstThunk);
        for (int i = 0; names[i]; i++) {
            if (names[i] & IMAGE_ORDINAL_FLAG64) continue;
            const char *name = (const char *)(base + (uint32_t)names[i] + 2);
            int r = _stricmp(dll, "ntoskrnl.exe") == 0 ? routine_index(name) : -1;
            if (r >= R_FIRST_FILLED && replacement[r] != NULL) {
                if (r >= R_FIRST_WRAPPED && original[r] == NULL) original[r] = (any_fn)slots[i];
                DWORD old;
                VirtualProtect(&slots[i], sizeof slots[i], PAGE_READWRITE, &old);
                slots[i] = replacement[r];
                VirtualProtect(&slots[i], sizeof slots[i], old, &old);
            } else if (!in_some_module(slots[i])) {
                char line[256];
                snprintf(line, sizeof line, "%s!%s: neither Wine nor the fwpkclnt.sys stand-in provides it\n", dll, name);
                note("refused.txt", line);
                ok = 0;
            }
        }
    }
    return ok;
}

static void load_faults(void)
{
    FILE *f = fopen(DIR_ROOT "\\faults.txt", "r");
    if (!f) return;
    char name[128];
    long n;
    unsigned long status;
    while (fscanf(f, "%127s %ld %lx", name, &n, &status) == 3) {
        int r = routine_index(name);
        if (r >= 0) {
            fail_status[r] = (NTSTATUS)status;
            fail_at[r] = call_count[r] + n;
        }
    }
    fclose(f);
}

/* ------------------------------------------------------------------ classification */
/* One classification built as the engine builds it for `layer` (wfp_rules.toml [[layer]]). */
struct conn {
    unsigned layer;
    uint8_t local[16], remote[16];
    unsigned lport, rport, proto, flags, rights;
    uint64_t pid;
    WCHAR app[260];
    int app_len; /* -1: no app id */
};

struct verdict { uint32_t action, rights, callout_called, filters; };

static struct verdict classify(const struct conn *c)
{
    struct verdict v = { FWP_ACTION_PERMIT, c->rights, 0, 0 };
    const struct layer_rule *L = layer_by_id(c->layer);
    if (!L) return v;
    FWP_VALUE0 vals[16];
    memset(vals, 0, sizeof vals);
    uint8_t local[16], remote[16];
    memcpy(local, c->local, 16);
    memcpy(remote, c->remote, 16);
    struct { uint32_t size, pad; void *data; } app = { (uint32_t)(c->app_len + 1) * 2, 0, (void *)c->app };
    if (L->ipv6) {
        vals[L->local_address] = (FWP_VALUE0){ 11, 0, (uint64_t)(uintptr_t)local };
        vals[L->remote_address] = (FWP_VALUE0){ 11, 0, (uint64_t)(uintptr_t)remote };
    } else {
        /* IPv4 addresses travel as host-order UINT32. */
        vals[L->local_address] = (FWP_VALUE0){ 3, 0, (uint64_t)((uint32_t)local[0] << 24 | local[1] << 16 | local[2] << 8 | local[3]) };
        vals[L->remote_address] = (FWP_VALUE0){ 3, 0, (uint64_t)((uint32_t)remote[0] << 24 | remote[1] << 16 | remote[2] << 8 | remote[3]) };
    }
    vals[L->local_port] = (FWP_VALUE0){ 2, 0, c->lport };
    vals[L->remote_port] = (FWP_VALUE0){ 2, 0, c->rport };
    vals[L->protocol] = (FWP_VALUE0){ 1, 0, c->proto };
    vals[L->flags] = (FWP_VALUE0){ 3, 0, c->flags };
    if (c->app_len >= 0) vals[L->app_id] = (FWP_VALUE0){ 12, 0, (uint64_t)(uintptr_t)&app };
    struct { uint16_t layer, pad; uint32_t count; FWP_VALUE0 *values; } fixed = { (uint16_t)c->layer, 0, L->count, vals };
    uint8_t meta[0x200];
    memset(meta, 0, sizeof meta);
    *(uint32_t *)meta = 0x20; /* FWPS_METADATA_FIELD_PROCESS_ID */
    *(uint64_t *)(meta + 64) = c->pid;

    /* The first callout filter at the layer (Weir has one per layer) decides. */
    AcquireSRWLockShared(&engine);
    object_t *f = NULL;
    for (int i = 0; i < MAX_OBJECTS; i++) {
        object_t *o = &objects[K_FILTER][i];
        if (o->live && o->committed && memcmp(&o->layer, &L->key, sizeof L->key) == 0) {
            v.filters++;
            if (!f) f = o;
        }
    }
    struct callout_rt *rt = NULL;
    uint64_t fid = 0;
    if (f) {
        fid = f->id;
        if (f->action & FWP_ACTION_FLAG_CALLOUT) {
            rt = runtime_by_key(&f->callout_key);
            if (rt) InterlockedIncrement(&rt->inflight);
            else v.action = (f->flags & FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED) ? FWP_ACTION_PERMIT : FWP_ACTION_BLOCK;
        } else {
            v.action = f->action;
        }
    }
    ReleaseSRWLockShared(&engine);
    if (rt) {
        uint8_t filter[0x50];
        memset(filter, 0, sizeof filter);
        *(uint64_t *)filter = fid;
        *(uint32_t *)(filter + 40) = f->action;
        *(uint32_t *)(filter + 44) = rt->id;
        struct { uint32_t action, pad; uint64_t context, filter_id; uint32_t rights, flags, reserved, pad2; } out = {
            FWP_ACTION_BLOCK, 0, 0, fid, c->rights, 0, 0, 0 };
        rt->classify(&fixed, meta, NULL, NULL, filter, 0, &out);
        InterlockedDecrement(&rt->inflight);
        v.callout_called = 1;
        v.action = out.action;
        v.rights = out.rights;
    }
    return v;
}

/* xorshift64*, so stress runs are reproducible from their seed. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

struct stress {
    uint64_t seed;
    long count;
    long per_layer[4][3]; /* permitted, blocked, right absent */
};

static const unsigned stress_layers[4] = { 48, 50, 44, 46 };

static DWORD WINAPI stress_thread(void *arg)
{
    struct stress *s = arg;
    uint64_t r = s->seed | 1;
    for (long i = 0; i < s->count; i++) {
        uint64_t x = next_rand(&r);
        struct conn c;
        memset(&c, 0, sizeof c);
        int li = (int)(x & 3);
        c.layer = stress_layers[li];
        c.local[0] = 10, c.local[3] = 2;
        c.remote[0] = 192, c.remote[1] = 0, c.remote[2] = 2, c.remote[3] = (uint8_t)(x >> 8);
        if (li == 1 || li == 3) { memset(c.local, 0, 16); c.local[15] = 1; c.remote[0] = 0x20; c.remote[1] = 0x01; c.remote[15] = (uint8_t)(x >> 8); }
        c.lport = 50000 + (unsigned)((x >> 16) & 0xFF);
        c.rport = (unsigned)((x >> 24) & 1) ? 443 : (unsigned)((x >> 32) & 0xFFFF);
        c.proto = (x >> 48) & 1 ? 6 : 17;
        c.rights = (x >> 49) & 7 ? 1 : 0;
        c.pid = 4242;
        c.app_len = -1;
        struct verdict v = classify(&c);
        if (!v.callout_called) continue;
        int k = v.rights == 0 && c.rights == 0 ? 2 : (v.action == FWP_ACTION_PERMIT ? 0 : 1);
        s->per_layer[li][k]++;
    }
    return 0;
}

/* ------------------------------------------------------------------ the test channel */
static int parse_addr(const char *text, uint8_t out[16])
{
    memset(out, 0, 16);
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET6, text, &a6) == 1) { memcpy(out, &a6, 16); return 1; }
    if (inet_pton(AF_INET, text, &a4) == 1) { memcpy(out, &a4, 4); return 1; }
    return 0;
}

static void guid_text(const GUID *g, char *out, size_t n)
{
    snprintf(out, n, "%08lx-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", (unsigned long)g->Data1, g->Data2, g->Data3,
             g->Data4[0], g->Data4[1], g->Data4[2], g->Data4[3], g->Data4[4], g->Data4[5], g->Data4[6], g->Data4[7]);
}

/* Engine state as one JSON line. */
static int state_json(char *out, size_t n)
{
    size_t len = 0;
#define PUT(...) len += (size_t)snprintf(out + len, len < n ? n - len : 0, __VA_ARGS__)
    AcquireSRWLockShared(&engine);
    int open = 0, txns = 0;
    for (int i = 0; i < MAX_SESSIONS; i++) {
        open += sessions[i].open;
        txns += sessions[i].open && sessions[i].txn;
    }
    PUT("{\"bfe_state\":%ld,\"bfe_generation\":%ld,\"sessions\":%d,\"transactions\":%d", bfe_state, bfe_generation, open, txns);
    for (int k = 0; k < K_KINDS; k++) {
        PUT(",\"%s\":[", kind_names[k]);
        int first = 1;
        for (int i = 0; i < MAX_OBJECTS; i++) {
            object_t *o = &objects[k][i];
            if (!o->live || !o->committed) continue;
            char key[40], layer[40];
            guid_text(&o->key, key, sizeof key);
            guid_text(&o->layer, layer, sizeof layer);
            PUT("%s{\"key\":\"%s\",\"layer\":\"%s\",\"flags\":%u,\"action\":%u}", first ? "" : ",", key, layer, o->flags, o->action);
            first = 0;
        }
        PUT("]");
    }
    ReleaseSRWLockShared(&engine);
    int registered = 0;
    for (int i = 0; i < MAX_CALLOUTS; i++) registered += callouts[i].live;
    int subscribed = 0;
    for (int i = 0; i < MAX_SUBS; i++) subscribed += subs[i].live;
    PUT(",\"registered_callouts\":%d,\"subscriptions\":%d,\"dpcs_run\":%ld,\"faults_hit\":%ld,\"calls\":{", registered, subscribed, dpcs_run, faults_hit);
    for (int r = 0; r < R_COUNT; r++) PUT("%s\"%s\":%ld", r ? "," : "", routine_names[r], call_count[r]);
    PUT("}}");
#undef PUT
    return len < n;
}

/* Commands (one line each; the reply is one line):
     classify LAYER LOCAL LPORT PROTO REMOTE RPORT FLAGS RIGHTS PID [APP]
         -> "action A rights R callout C filters F"
     bfe STATE                      -> "ok" (3 running, 0 stopped; callbacks delivered first)
     state                          -> the engine as JSON
     fail ROUTINE N STATUS          -> "ok": the N-th call from now fails with STATUS (hex)
     stress THREADS COUNT SEED      -> per layer "p b w" for each thread's counts summed */
static void command(char *line, char *reply, size_t n)
{
    char *argv[12];
    int argc = 0;
    for (char *t = strtok(line, " \r\n"); t && argc < 12; t = strtok(NULL, " \r\n")) argv[argc++] = t;
    if (argc == 0) { snprintf(reply, n, "error empty"); return; }
    if (strcmp(argv[0], "classify") == 0 && argc >= 10) {
        struct conn c;
        memset(&c, 0, sizeof c);
        c.layer = (unsigned)strtoul(argv[1], NULL, 0);
        if (!parse_addr(argv[2], c.local) || !parse_addr(argv[5], c.remote)) { snprintf(reply, n, "error address"); return; }
        c.lport = (unsigned)strtoul(argv[3], NULL, 0);
        c.proto = (unsigned)strtoul(argv[4], NULL, 0);
        c.rport = (unsigned)strtoul(argv[6], NULL, 0);
        c.flags = (unsigned)strtoul(argv[7], NULL, 0);
        c.rights = (unsigned)strtoul(argv[8], NULL, 0);
        c.pid = strtoull(argv[9], NULL, 0);
        c.app_len = -1;
        if (argc >= 11) c.app_len = MultiByteToWideChar(CP_UTF8, 0, argv[10], -1, c.app, 259) - 1;
        struct verdict v = classify(&c);
        snprintf(reply, n, "action %#x rights %u callout %u filters %u", v.action, v.rights, v.callout_called, v.filters);
    } else if (strcmp(argv[0], "bfe") == 0 && argc == 2) {
        set_bfe_state((uint32_t)strtoul(argv[1], NULL, 0));
        snprintf(reply, n, "ok");
    } else if (strcmp(argv[0], "state") == 0) {
        if (!state_json(reply, n)) snprintf(reply, n, "error state too large");
    } else if (strcmp(argv[0], "fail") == 0 && argc == 4) {
        int r = routine_index(argv[1]);
        if (r < 0) { snprintf(reply, n, "error unknown routine %s", argv[1]); return; }
        fail_status[r] = (NTSTATUS)strtoul(argv[3], NULL, 16);
        fail_at[r] = call_count[r] + strtol(argv[2], NULL, 0);
        snprintf(reply, n, "ok");
    } else if (strcmp(argv[0], "stress") == 0 && argc == 4) {
        int threads = atoi(argv[1]);
        if (threads < 1 || threads > 16) { snprintf(reply, n, "error threads"); return; }
        struct stress s[16];
        HANDLE th[16];
        memset(s, 0, sizeof s);
        for (int i = 0; i < threads; i++) {
            s[i].seed = strtoull(argv[3], NULL, 0) + (uint64_t)i * 0x9E3779B97F4A7C15ULL;
            s[i].count = atol(argv[2]);
            th[i] = CreateThread(NULL, 0, stress_thread, &s[i], 0, NULL);
        }
        WaitForMultipleObjects((DWORD)threads, th, TRUE, INFINITE);
        long sum[4][3] = { { 0 } };
        for (int i = 0; i < threads; i++) {
            CloseHandle(th[i]);
            for (int l = 0; l < 4; l++)
                for (int k = 0; k < 3; k++) sum[l][k] += s[i].per_layer[l][k];
        }
        snprintf(reply, n, "%ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld", sum[0][0], sum[0][1], sum[0][2], sum[1][0],
                 sum[1][1], sum[1][2], sum[2][0], sum[2][1], sum[2][2], sum[3][0], sum[3][1], sum[3][2]);
    } else {
        snprintf(reply, n, "error unknown command %s", argv[0]);
    }
}

static DWORD WINAPI client_thread(void *arg)
{
    SOCKET c = (SOCKET)(uintptr_t)arg;
    static __thread char reply[65536];
    char line[1024];
    size_t used = 0;
    for (;;) {
        int got = recv(c, line + used, (int)(sizeof line - 1 - used), 0);
        if (got <= 0) break;
        used += (size_t)got;
        line[used] = 0;
        char *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = 0;
            command(line, reply, sizeof reply - 1);
            strcat(reply, "\n");
            send(c, reply, (int)strlen(reply), 0);
            size_t rest = used - (size_t)(nl + 1 - line);
            memmove(line, nl + 1, rest);
            used = rest;
            line[used] = 0;
        }
        if (used >= sizeof line - 1) break;
    }
    closesocket(c);
    return 0;
}

static DWORD WINAPI server_thread(void *unused)
{
    (void)unused;
    WSADATA wsa;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) return 1;
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int len = sizeof a;
    if (s == INVALID_SOCKET || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 8) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        note("port.txt.error", "cannot listen\n");
        return 1;
    }
    char port[32];
    snprintf(port, sizeof port, "%u\n", ntohs(a.sin_port));
    DeleteFileA(DIR_ROOT "\\port.txt");
    note("port.txt", port);
    for (;;) {
        SOCKET c = accept(s, NULL, NULL);
        if (c == INVALID_SOCKET) continue;
        HANDLE t = CreateThread(NULL, 0, client_thread, (void *)(uintptr_t)c, 0, NULL);
        if (t) CloseHandle(t);
    }
    return 0;
}

/* ------------------------------------------------------------------ loading */
typedef struct { uint16_t Length, MaximumLength; WCHAR *Buffer; } USTR;
typedef struct { ULONG Flags; const USTR *FullDllName, *BaseDllName; void *DllBase; ULONG SizeOfImage; } LDR_NOTIFY_DATA;
typedef void (CALLBACK *ldr_notify_fn)(ULONG, const LDR_NOTIFY_DATA *, void *);
typedef NTSTATUS (NTAPI *ldr_register_fn)(ULONG, ldr_notify_fn, void *, void **);

static void CALLBACK on_dll_load(ULONG reason, const LDR_NOTIFY_DATA *d, void *ctx)
{
    (void)ctx;
    if (reason == 1 /* LOADED */ && d->BaseDllName && d->BaseDllName->Buffer &&
        _wcsnicmp(d->BaseDllName->Buffer, L"weir.sys", d->BaseDllName->Length / 2) == 0) {
        load_faults();
        patch_image((HMODULE)d->DllBase);
    }
}

BOOL WINAPI DllMain(HINSTANCE self, DWORD reason, void *reserved)
{
    (void)reserved;
    if (reason != DLL_PROCESS_ATTACH) return TRUE;
    CreateDirectoryA(DIR_ROOT, NULL);
    InitializeCriticalSection(&bfe_lock);
    InitializeCriticalSection(&dpc_lock);
    InitializeConditionVariable(&dpc_cv);
    wine_alloc_with_tag = (alloc_fn)GetProcAddress(GetModuleHandleA("ntoskrnl.exe"), "ExAllocatePoolWithTag");
    load_faults();
    HMODULE image = GetModuleHandleA("weir.sys");
    if (image == NULL || !patch_image(image)) return FALSE;
    /* Stay loaded for the life of the host (the engine outlives a driver, as BFE does) and
       patch weir.sys again whenever it is loaded anew. */
    HMODULE pinned;
    GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_PIN | GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS, (LPCWSTR)DllMain, &pinned);
    void *cookie;
    ldr_register_fn reg = (ldr_register_fn)GetProcAddress(GetModuleHandleA("ntdll.dll"), "LdrRegisterDllNotification");
    if (reg) reg(0, on_dll_load, NULL, &cookie);
    (void)self;
    HANDLE t = CreateThread(NULL, 0, dpc_worker, NULL, 0, NULL);
    if (t) CloseHandle(t);
    t = CreateThread(NULL, 0, server_thread, NULL, 0, NULL);
    if (t) CloseHandle(t);
    return TRUE;
}
