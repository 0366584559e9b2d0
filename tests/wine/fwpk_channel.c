/*
 * Classifications built as the filter engine builds them, the concurrency run, and the
 * localhost test channel (see fwpkclnt.c).
 * Part of fwpkclnt.c (one translation unit, so the engine's state stays file-static).
 */

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
            PUT("%s{\"key\":\"%s\",\"layer\":\"%s\",\"flags\":%u,\"action\":%u", first ? "" : ",", key, layer, o->flags, o->action);
            if (k == K_FILTER) PUT(",\"weight\":%llu,\"conds\":\"%s\"", (unsigned long long)o->weight, o->conds);
            PUT("}");
            first = 0;
        }
        PUT("]");
    }
    ReleaseSRWLockShared(&engine);
    int registered = 0;
    for (int i = 0; i < MAX_CALLOUTS; i++) registered += callouts[i].live;
    int subscribed = 0;
    for (int i = 0; i < MAX_SUBS; i++) subscribed += subs[i].live;
    PUT(",\"registered_callouts\":%d,\"subscriptions\":%d,\"dpcs_run\":%ld,\"faults_hit\":%ld,\"pool_live\":%lld,\"etw_live\":%ld,\"calls\":{",
        registered, subscribed, dpcs_run, faults_hit, (long long)(pool_allocated - call_count[R_ExFreePoolWithTag]), etw_live);
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
    char *reply = malloc(65536);
    if (reply == NULL) { closesocket(c); return 1; }
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
            command(line, reply, 65535);
            strcat(reply, "\n");
            send(c, reply, (int)strlen(reply), 0);
            size_t rest = used - (size_t)(nl + 1 - line);
            memmove(line, nl + 1, rest);
            used = rest;
            line[used] = 0;
        }
        if (used >= sizeof line - 1) break;
    }
    free(reply);
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
