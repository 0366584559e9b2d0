/*
 * The ntoskrnl routines the stand-in fills or wraps, and their installation into weir.sys's
 * import table from DllMain (see fwpkclnt.c).
 * Part of fwpkclnt.c (one translation unit, so the engine's state stays file-static).
 */

/* ------------------------------------------------------------------ ntoskrnl fills */
typedef void *(WINAPI *alloc_fn)(int, SIZE_T, ULONG);
static alloc_fn wine_alloc_with_tag;

/* ExAllocatePool2: zeroed unless POOL_FLAG_UNINITIALIZED (0x2); from Wine's pool, with a
   16-byte header holding the size (the driver gets the block after it, still 16-byte aligned),
   so the free below can poison exactly the block. */
#define POOL_HEADER 16
static void *WINAPI fill_ExAllocatePool2(uint64_t flags, SIZE_T size, ULONG tag)
{
    if (fault(R_ExAllocatePool2)) return NULL;
    uint8_t *base = wine_alloc_with_tag && size <= (SIZE_T)-1 - POOL_HEADER
                        ? wine_alloc_with_tag(0, size + POOL_HEADER, tag) : NULL;
    if (base == NULL) return NULL;
    InterlockedIncrement64(&pool_allocated);
    *(SIZE_T *)base = size;
    if (!(flags & 0x2)) memset(base + POOL_HEADER, 0, size);
    return base + POOL_HEADER;
}

/* ExFreePoolWithTag of the driver's blocks: the block is filled with POOL_POISON (a pointer
   read from it is non-canonical, a length absurd) and held in a quarantine before Wine frees
   it, so memory the driver still uses after freeing it (a policy swapped out while a classify
   on another thread still reads it) is neither valid data nor reused at once: the use faults
   or decides wrongly, and the stage sees it. The quarantine keeps the newest blocks up to
   QUARANTINE_BLOCKS and QUARANTINE_BYTES. */
#define POOL_POISON 0xDB
#define QUARANTINE_BLOCKS 4096
#define QUARANTINE_BYTES ((SIZE_T)64 << 20)
typedef void (WINAPI *free_fn)(void *, ULONG);
static free_fn wine_free_with_tag;
static CRITICAL_SECTION quarantine_lock;
static struct { uint8_t *base; SIZE_T size; } quarantine[QUARANTINE_BLOCKS];
static size_t quarantine_head, quarantine_len;
static SIZE_T quarantine_bytes;

static void WINAPI fill_ExFreePoolWithTag(void *p, ULONG tag)
{
    (void)fault(R_ExFreePoolWithTag);
    if (p == NULL) return;
    uint8_t *base = (uint8_t *)p - POOL_HEADER;
    SIZE_T size = *(SIZE_T *)base;
    memset(p, POOL_POISON, size);
    EnterCriticalSection(&quarantine_lock);
    while (quarantine_len == QUARANTINE_BLOCKS || (quarantine_len > 0 && quarantine_bytes + size > QUARANTINE_BYTES)) {
        size_t oldest = (quarantine_head + QUARANTINE_BLOCKS - quarantine_len) % QUARANTINE_BLOCKS;
        wine_free_with_tag(quarantine[oldest].base, tag);
        quarantine_bytes -= quarantine[oldest].size;
        quarantine_len--;
    }
    quarantine[quarantine_head].base = base;
    quarantine[quarantine_head].size = size;
    quarantine_head = (quarantine_head + 1) % QUARANTINE_BLOCKS;
    quarantine_len++;
    quarantine_bytes += size;
    LeaveCriticalSection(&quarantine_lock);
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

/* ETW: Wine 8's ntoskrnl has no EtwRegister/EtwUnregister/EtwWriteTransfer. Here a provider
   registers and no trace session ever enables it, so the enable callback is never called and a
   driver that writes only when enabled writes nothing; a write anyway is counted and accepted.
   Live registrations are counted (etw_live) so the unload check sees them balanced. */

static NTSTATUS WINAPI fill_EtwRegister(const GUID *provider, void *callback, void *context, uint64_t *handle)
{
    (void)callback;
    (void)context;
    if (fault(R_EtwRegister)) return fail_status[R_EtwRegister];
    if (provider == NULL || handle == NULL) return (NTSTATUS)0xC000000Du; /* STATUS_INVALID_PARAMETER */
    *handle = 0xE7000000u + (uint64_t)InterlockedIncrement(&etw_live);
    return STATUS_SUCCESS;
}

static NTSTATUS WINAPI fill_EtwUnregister(uint64_t handle)
{
    (void)fault(R_EtwUnregister);
    if (handle == 0) return (NTSTATUS)0xC0000008u; /* STATUS_INVALID_HANDLE */
    InterlockedDecrement(&etw_live);
    return STATUS_SUCCESS;
}

static NTSTATUS WINAPI fill_EtwWriteTransfer(uint64_t handle, const void *descriptor, const GUID *activity,
                                             const GUID *related, ULONG count, const void *data)
{
    (void)descriptor;
    (void)activity;
    (void)related;
    (void)count;
    (void)data;
    (void)fault(R_EtwWriteTransfer);
    return handle == 0 ? (NTSTATUS)0xC0000008u : STATUS_SUCCESS;
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

/* ZwCreateFile: Wine 8's object namespace has no \SystemRoot link, so the driver's
   \SystemRoot\System32\drivers\weir\weir.policy would answer OBJECT_PATH_NOT_FOUND. A name
   under \SystemRoot\ (no root directory) is opened as \??\C:\windows\<rest>, where the
   prefix's SystemRoot is; every other call goes to Wine unchanged. */
typedef uint64_t (WINAPI *create_fn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                                     uint64_t, uint64_t, uint64_t);
struct unicode_string { USHORT length, maximum; WCHAR *buffer; };
static uint64_t WINAPI wrap_ZwCreateFile(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, uint64_t f,
                                         uint64_t g, uint64_t h, uint64_t i, uint64_t j, uint64_t k)
{
    if (fault(R_ZwCreateFile)) return (uint32_t)fail_status[R_ZwCreateFile];
    create_fn wine = (create_fn)original[R_ZwCreateFile];
    static const WCHAR from[] = L"\\SystemRoot\\", to[] = L"\\??\\C:\\windows\\";
    const size_t from_len = sizeof from / sizeof from[0] - 1, to_len = sizeof to / sizeof to[0] - 1;
    const uint8_t *oa = (const uint8_t *)(uintptr_t)c;
    const struct unicode_string *name = oa ? *(struct unicode_string *const *)(oa + 16) : NULL;
    if (name == NULL || *(void *const *)(oa + 8) != NULL || name->length / 2 < from_len ||
        _wcsnicmp(name->buffer, from, from_len) != 0) {
        return wine(a, b, c, d, e, f, g, h, i, j, k);
    }
    size_t rest = name->length / 2 - from_len;
    WCHAR path[600];
    if (to_len + rest >= sizeof path / sizeof path[0]) return (uint32_t)0xC0000033u; /* OBJECT_NAME_INVALID */
    memcpy(path, to, to_len * sizeof(WCHAR));
    memcpy(path + to_len, name->buffer + from_len, rest * sizeof(WCHAR));
    struct unicode_string mapped = { (USHORT)((to_len + rest) * 2), (USHORT)((to_len + rest) * 2), path };
    uint8_t copy[48];
    memcpy(copy, oa, sizeof copy);
    *(struct unicode_string **)(copy + 16) = &mapped;
    return wine(a, b, (uint64_t)(uintptr_t)copy, d, e, f, g, h, i, j, k);
}

static void *const replacement[R_COUNT] = {
    [R_ExAllocatePool2] = (void *)fill_ExAllocatePool2,
    [R_KeQuerySystemTimePrecise] = (void *)fill_KeQuerySystemTimePrecise,
    [R_KeInitializeDpc] = (void *)fill_KeInitializeDpc,
    [R_KeInsertQueueDpc] = (void *)fill_KeInsertQueueDpc,
    [R_KeRemoveQueueDpc] = (void *)fill_KeRemoveQueueDpc,
    [R_KeFlushQueuedDpcs] = (void *)fill_KeFlushQueuedDpcs,
    [R_EtwRegister] = (void *)fill_EtwRegister,
    [R_EtwUnregister] = (void *)fill_EtwUnregister,
    [R_EtwWriteTransfer] = (void *)fill_EtwWriteTransfer,
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
    [R_ExFreePoolWithTag] = (void *)fill_ExFreePoolWithTag,
    [R_ZwCreateFile] = (void *)wrap_ZwCreateFile,
};

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
    if (reason == DLL_PROCESS_DETACH) {
        /* The host exits once its only driver is gone (stopped, or failed to start): what the
           driver left in the engine is written for the stage to check. Other threads are
           already gone when the process exits (reserved != NULL). */
        static char text[65536];
        if (reserved != NULL && state_json(text, sizeof text)) {
            FILE *f = fopen(DIR_ROOT "\\unload.json", "w");
            if (f) {
                fputs(text, f);
                fclose(f);
            }
        }
        return TRUE;
    }
    if (reason != DLL_PROCESS_ATTACH) return TRUE;
    CreateDirectoryA(DIR_ROOT, NULL);
    InitializeCriticalSection(&bfe_lock);
    InitializeCriticalSection(&dpc_lock);
    InitializeConditionVariable(&dpc_cv);
    wine_alloc_with_tag = (alloc_fn)GetProcAddress(GetModuleHandleA("ntoskrnl.exe"), "ExAllocatePoolWithTag");
    wine_free_with_tag = (free_fn)GetProcAddress(GetModuleHandleA("ntoskrnl.exe"), "ExFreePoolWithTag");
    InitializeCriticalSection(&quarantine_lock);
    if (wine_alloc_with_tag == NULL || wine_free_with_tag == NULL) return FALSE;
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
