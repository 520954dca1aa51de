/* storage: the asynchronous PostgreSQL pool (see storage.h and query.h).
 *
 * Each connection of the pool goes through DOWN -> CONNECTING (PQconnectPoll
 * driven by a uv_poll on PQsocket) -> PREPARING (every registered statement
 * is prepared) -> READY (takes requests). It runs in pipeline mode.
 *
 * A statement with key parameters (an owner: domain and user) goes to the
 * owner's connection, so one owner's requests run in order (see route).
 * Requests wait in a per-connection queue of unsent requests (bounded over
 * the pool by max_pending) and are sent in their order, up to PIPELINE_MAX
 * in flight: each transaction is [Parse] Bind/Execute for each of its
 * requests and one Sync. Without an explicit BEGIN, the statements between
 * two Syncs of the extended protocol form one implicit transaction,
 * committed at the Sync. The results come back in order, and the requests
 * of a transaction are completed only when its Sync comes back, that is
 * after the commit.
 *
 * Group commit: a statement marked `batch` (a write whose cost is mostly
 * its commit, one WAL flush) is committed together with the batch
 * statements queued after it, up to batch_max in one transaction. While a
 * batch is in flight on a connection, nothing more is sent on it: the next
 * batch is whatever queued up meanwhile, and what is queued behind a batch
 * stays behind it even when the batch has to be run again (below). Every
 * other statement (reads) is a transaction of its own, pipelined with the
 * others. Sending is done from a prepare handle (just before the loop
 * waits for I/O) and whenever results come back, so a request made while
 * its connection has no batch in flight goes out in the same loop
 * iteration: nothing waits at low load.
 *
 * A failing request aborts its whole transaction. When a transaction of
 * several requests fails (a statement's error, or the commit's), nothing of
 * it was committed and no callback has run: its requests go back to the
 * front of the queue, in order, marked solo, and each is run again in a
 * transaction of its own, so one bad request fails alone and the others
 * succeed (the statements are run twice, but the first run was rolled
 * back). This is preferred to failing them all with a temporary error: a
 * caller would see an error that its own request did not cause.
 *
 * When a connection breaks, its in-flight requests fail with
 * STORAGE_UNAVAILABLE (a write may or may not have happened: it is never
 * replayed), its unsent ones move to another ready connection (they were
 * never sent, so this is safe), and it reconnects with exponential back-off.
 *
 * Callbacks may do anything, including making requests and calling
 * storage_free: after every callback the code checks s->closing and stops
 * touching the pool. The storage struct itself is freed only when the last
 * of its uv handles has been closed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/crypto.h"
#include "common/log.h"
#include "storage/modules.h"
#include "storage/query.h"
#include "storage/storage.h"

/* Prepared on every connection before it takes requests (see modules.h). */
static const storage_stmt *const builtin_tables[] = {account_stmts, roster_stmts, offline_stmts, vcard_stmts,
                                                     private_stmts, privacy_stmts, last_stmts, pep_stmts, mam_stmts};

#define PIPELINE_MAX 256          /* requests in flight per connection (and the largest batch) */
#define RECONNECT_MIN_MS 100
#define KEY_BUCKETS 1024          /* keys hashed for the ordering of requests kept away from home (route) */
_Static_assert(STORAGE_BATCH_MAX <= PIPELINE_MAX, "a batch is sent at once");

typedef struct request request;
struct request {
    request *next;
    storage *owner;
    uint64_t started_ns;          /* uv_hrtime() when it was asked for (latency metrics) */
    int stmt_idx;
    storage_result_cb cb;
    void *ud;
    uint64_t deadline;            /* loop time (ms) by which it must be answered */
    storage_status status;        /* for completions deferred to the idle handle */
    int solo;                     /* its batch failed: run it in a transaction of its own */
    unsigned away;                /* keyed, on a connection not its home: its key bucket + 1 (route) */
    PGresult *res;
    char **values;                /* nparams pointers, then the strings, in this allocation */
};

typedef struct {
    request *head, *tail;
    size_t n;
} req_queue;

enum { IT_PREPARE, IT_QUERY, IT_SYNC };

typedef struct {
    int kind;
    int got;                      /* PREPARE/QUERY: the result came, waiting for its NULL */
    int stmt_idx;
    int connect_done;             /* SYNC that ends the preparation after connecting */
    request *req;                 /* QUERY */
    request *txn;                 /* SYNC: the requests of its transaction, in order (linked by next) */
    size_t ntxn;
    int batch;                    /* SYNC: of a batch (see nbatch) */
    PGresult *res;                /* PREPARE/QUERY: the result; SYNC: an error of the commit */
} item;

typedef enum { C_DOWN = 0, C_CONNECTING, C_PREPARING, C_READY } conn_state;

typedef struct slot {
    storage *s;
    unsigned idx;
    conn_state state;
    PGconn *pg;
    uv_poll_t *poll;
    int poll_fd;
    int poll_events;
    uv_timer_t retry;
    unsigned backoff_ms;
    uint64_t connect_deadline;
    req_queue unsent;
    item *ring;
    size_t rcap, rhead, rlen;
    size_t ninflight;             /* requests (not items) in flight */
    size_t nbatch;                /* batch transactions in flight (0 or 1) */
    req_queue completing;         /* committed, callbacks being run */
    unsigned char *prepared;      /* per statement index */
    int failures;                 /* consecutive failed attempts */
    char lasterr[200];
} slot;

struct storage {
    uv_loop_t *loop;
    uint64_t answered;            /* requests answered successfully */
    uint64_t answered_ns;         /* their total time from request to answer */
    char *conninfo;
    unsigned nconns;
    unsigned reconnect_max_ms;
    unsigned max_pending;
    unsigned query_timeout_ms;
    unsigned batch_max;
    slot *conns;
    const storage_stmt **stmts;
    size_t nstmts, capstmts;
    req_queue done;               /* completed, callbacks deferred to the idle handle */
    uv_idle_t idle;
    int idle_active;
    uv_timer_t tick;
    uv_prepare_t flush;           /* sends what was queued, before the loop waits */
    int flush_active;
    int in_flush, flush_again;
    size_t npending;              /* unsent requests over all connections */
    int was_ready;
    void (*ready_cb)(storage *s, int ready, void *ud);
    void *ready_ud;
    int closing;
    int open_handles;
    unsigned rr;
    uint64_t last_full_log;
    uint32_t away[KEY_BUCKETS];   /* keyed requests not answered yet that are away from home, per key bucket */
};

const char *storage_status_string(storage_status st)
{
    switch (st) {
    case STORAGE_OK: return "ok";
    case STORAGE_NOT_FOUND: return "not found";
    case STORAGE_CONFLICT: return "conflict";
    case STORAGE_QUOTA: return "quota reached";
    case STORAGE_UNAVAILABLE: return "unavailable";
    case STORAGE_ERROR: return "error";
    }
    return "unknown";
}

/* ---------------------------------------------------------------- queues */

static void q_push(req_queue *q, request *r)
{
    r->next = NULL;
    if (q->tail) q->tail->next = r;
    else q->head = r;
    q->tail = r;
    q->n++;
}

static request *q_pop(req_queue *q)
{
    request *r = q->head;
    if (!r) return NULL;
    q->head = r->next;
    if (!q->head) q->tail = NULL;
    q->n--;
    r->next = NULL;
    return r;
}

static void q_append(req_queue *dst, req_queue *src)
{
    if (!src->head) return;
    if (dst->tail) dst->tail->next = src->head;
    else dst->head = src->head;
    dst->tail = src->tail;
    dst->n += src->n;
    src->head = src->tail = NULL;
    src->n = 0;
}

/* Move the requests of a transaction (linked by next) to the end of q. */
static void txn_to_queue(req_queue *q, request *txn)
{
    while (txn) {
        request *next = txn->next;
        q_push(q, txn);
        txn = next;
    }
}

static void ring_push(slot *c, item it)
{
    if (c->rlen == c->rcap) {
        size_t ncap = c->rcap ? c->rcap * 2 : 64;
        item *n = malloc(ncap * sizeof *n);
        if (!n) abort();
        for (size_t i = 0; i < c->rlen; i++) n[i] = c->ring[(c->rhead + i) % c->rcap];
        free(c->ring);
        c->ring = n;
        c->rcap = ncap;
        c->rhead = 0;
    }
    c->ring[(c->rhead + c->rlen) % c->rcap] = it;
    c->rlen++;
}

static item *ring_head(slot *c) { return c->rlen ? &c->ring[c->rhead] : NULL; }

static item ring_pop(slot *c)
{
    item it = c->ring[c->rhead];
    c->rhead = (c->rhead + 1) % c->rcap;
    c->rlen--;
    return it;
}

/* ---------------------------------------------------------------- helpers */

static void one_line(char *dst, size_t len, const char *msg)
{
    snprintf(dst, len, "%s", msg ? msg : "");
    for (char *p = dst; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    size_t n = strlen(dst);
    while (n && dst[n - 1] == ' ') dst[--n] = 0;
}

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    char line[256];
    one_line(line, sizeof line, message);
    log_debug("storage: server notice: %s", line);
}

/* Run the callback and free the request. The callback may free the pool. */
static void complete(request *r, storage_status st)
{
    if (r->away && r->owner) r->owner->away[r->away - 1]--;
    if (st == STORAGE_OK && r->owner) {
        r->owner->answered++;
        r->owner->answered_ns += uv_hrtime() - r->started_ns;
    }
    storage_result_cb cb = r->cb;
    void *ud = r->ud;
    PGresult *res = r->res;
    r->res = NULL;
    free(r);
    if (cb) cb(ud, st, res);
    if (res) PQclear(res);
}

static void storage_destroy(storage *s);
static void on_idle(uv_idle_t *h);

/* Complete later, from the idle handle (never inside the caller's call). */
static void defer(storage *s, request *r, storage_status st)
{
    r->status = st;
    q_push(&s->done, r);
    if (!s->closing && !s->idle_active) {
        uv_idle_start(&s->idle, on_idle);
        s->idle_active = 1;
    }
}

static void on_idle(uv_idle_t *h)
{
    storage *s = h->data;
    /* Only what is queued now: callbacks that make new failing requests
     * are served on the next iteration. */
    size_t n = s->done.n;
    while (n-- && s->done.head) {
        request *r = q_pop(&s->done);
        complete(r, r->status);
        if (s->closing) return;
    }
    if (!s->done.head) {
        uv_idle_stop(&s->idle);
        s->idle_active = 0;
    }
}

static int stmt_index(storage *s, const storage_stmt *stmt)
{
    for (size_t i = 0; i < s->nstmts; i++)
        if (s->stmts[i] == stmt) return (int)i;
    for (size_t i = 0; i < s->nstmts; i++) {
        if (strcmp(s->stmts[i]->name, stmt->name) == 0) {
            if (strcmp(s->stmts[i]->sql, stmt->sql) != 0) {
                log_error("storage: two different statements are named '%s'", stmt->name);
                return -1;
            }
            return (int)i;
        }
    }
    if (s->nstmts == s->capstmts) {
        size_t ncap = s->capstmts ? s->capstmts * 2 : 32;
        const storage_stmt **n = realloc(s->stmts, ncap * sizeof *n);
        if (!n) abort();
        s->stmts = n;
        for (unsigned i = 0; i < s->nconns; i++) {
            unsigned char *p = realloc(s->conns[i].prepared, ncap);
            if (!p) abort();
            memset(p + s->capstmts, 0, ncap - s->capstmts);
            s->conns[i].prepared = p;
        }
        s->capstmts = ncap;
    }
    s->stmts[s->nstmts] = stmt;
    return (int)s->nstmts++;
}

void storage_register(storage *s, const storage_stmt *table)
{
    for (const storage_stmt *st = table; st->name; st++) stmt_index(s, st);
}

/* ---------------------------------------------------------------- readiness */

static int count_ready(const storage *s)
{
    int n = 0;
    for (unsigned i = 0; i < s->nconns; i++)
        if (s->conns[i].state == C_READY) n++;
    return n;
}

int storage_ready(const storage *s)
{
    return s && !s->closing && count_ready(s) > 0;
}

void storage_on_ready_change(storage *s, void (*cb)(storage *s, int ready, void *ud), void *ud)
{
    s->ready_cb = cb;
    s->ready_ud = ud;
}

static void update_ready(storage *s)
{
    int ready = count_ready(s) > 0;
    if (ready == s->was_ready) return;
    s->was_ready = ready;
    if (ready) log_notice("storage: database available");
    else log_warn("storage: database unavailable (no connection up); requests fail until it is back");
    if (s->ready_cb) s->ready_cb(s, ready, s->ready_ud);
}

/* ---------------------------------------------------------------- connections */

static void conn_start(slot *c);
static void conn_fail(slot *c, const char *why);
static void schedule_flush(storage *s);
static void conn_send(slot *c);
static void on_poll(uv_poll_t *h, int status, int events);

static void poll_closed(uv_handle_t *h)
{
    storage *s = h->data;
    free(h);
    if (--s->open_handles == 0 && s->closing) storage_destroy(s);
}

static void poll_close(slot *c)
{
    if (!c->poll) return;
    c->poll->data = c->s;
    uv_close((uv_handle_t *)c->poll, poll_closed);
    c->poll = NULL;
    c->poll_fd = -1;
    c->poll_events = 0;
}

static int poll_update(slot *c, int events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0) return -1;
    if (c->poll && c->poll_fd != fd) poll_close(c);
    if (!c->poll) {
        c->poll = malloc(sizeof *c->poll);
        if (!c->poll) abort();
        if (uv_poll_init(c->s->loop, c->poll, fd) != 0) {
            free(c->poll);
            c->poll = NULL;
            return -1;
        }
        c->s->open_handles++;
        c->poll->data = c;
        c->poll_fd = fd;
        c->poll_events = 0;
    }
    if (events != c->poll_events) {
        if (uv_poll_start(c->poll, events, on_poll) != 0) return -1;
        c->poll_events = events;
    }
    return 0;
}

/* Write what libpq has buffered; watch for writability while some is left. */
static int conn_flush(slot *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        conn_fail(c, PQerrorMessage(c->pg));
        return -1;
    }
    if (poll_update(c, UV_READABLE | (r == 1 ? UV_WRITABLE : 0)) != 0) {
        conn_fail(c, "cannot watch the socket");
        return -1;
    }
    return 0;
}

static void on_retry(uv_timer_t *t)
{
    slot *c = t->data;
    conn_start(c);
}

static void schedule_retry(slot *c)
{
    storage *s = c->s;
    unsigned delay = c->backoff_ms ? c->backoff_ms : RECONNECT_MIN_MS;
    unsigned jitter;
    random_bytes(&jitter, sizeof jitter);
    delay += jitter % (delay / 4 + 1);
    if (delay > s->reconnect_max_ms) delay = s->reconnect_max_ms;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : RECONNECT_MIN_MS * 2;
    if (c->backoff_ms > s->reconnect_max_ms) c->backoff_ms = s->reconnect_max_ms;
    uv_timer_start(&c->retry, on_retry, delay, 0);
}

/* Pick the connection for a request: by key when the statement has one, so
 * that one owner's requests stay in order (one connection runs them one
 * after the other); else the least loaded. A keyed request whose home
 * connection is down goes to the next ready one, and so do the requests of
 * its key bucket after it until those sent away are all answered, even when
 * home is back meanwhile: else a later request could commit before an
 * earlier one (offline messages stored out of order). */
static slot *route(storage *s, const storage_stmt *stmt, request *r)
{
    char **values = r->values;
    if (stmt->key_params > 0) {
        uint32_t h = 2166136261u;
        for (int i = 0; i < stmt->key_params && i < stmt->nparams; i++) {
            const unsigned char *p = (const unsigned char *)(values[i] ? values[i] : "");
            for (; *p; p++) h = (h ^ *p) * 16777619u;
            h = (h ^ 0xff) * 16777619u;
        }
        unsigned bucket = h % KEY_BUCKETS;
        slot *home = &s->conns[h % s->nconns];
        if (home->state == C_READY && s->away[bucket] == 0) return home;
        for (unsigned k = 1; k < s->nconns; k++) {
            slot *c = &s->conns[(h + k) % s->nconns];
            if (c->state == C_READY) {
                s->away[bucket]++;
                r->away = bucket + 1;
                return c;
            }
        }
        return home->state == C_READY ? home : NULL;
    }
    slot *best = NULL;
    for (unsigned k = 0; k < s->nconns; k++) {
        slot *c = &s->conns[(s->rr + k) % s->nconns];
        if (c->state != C_READY) continue;
        if (!best || c->unsent.n + c->ninflight < best->unsent.n + best->ninflight) best = c;
    }
    s->rr++;
    return best;
}

/* Fail a connection: in-flight requests fail with STORAGE_UNAVAILABLE,
 * unsent ones go to another ready connection (or fail), and a reconnection
 * is scheduled. */
static void conn_fail(slot *c, const char *why)
{
    storage *s = c->s;
    char msg[sizeof c->lasterr];
    one_line(msg, sizeof msg, why);
    int was_up = c->state == C_PREPARING || c->state == C_READY;
    if (was_up) {
        log_warn("storage: connection %u lost: %s (%zu requests in flight fail)", c->idx, msg, c->ninflight);
        c->failures = 0;
        c->backoff_ms = 0;
    } else if (c->failures == 0 || strcmp(msg, c->lasterr) != 0) {
        log_warn("storage: connection %u: cannot connect: %s (retrying)", c->idx, msg);
    } else {
        log_debug("storage: connection %u: cannot connect: %s", c->idx, msg);
    }
    c->failures++;
    snprintf(c->lasterr, sizeof c->lasterr, "%s", msg);

    poll_close(c);
    if (c->pg) PQfinish(c->pg);
    c->pg = NULL;
    c->state = C_DOWN;
    if (s->capstmts) memset(c->prepared, 0, s->capstmts);

    /* Committed before the failure (a callback can only get here through
     * storage_free, but stay safe): they complete with their own status. */
    req_queue committed = {0};
    q_append(&committed, &c->completing);
    req_queue failed = {0};
    while (c->rlen) {
        item it = ring_pop(c);
        if (it.res) PQclear(it.res);
        if (it.kind == IT_SYNC) txn_to_queue(&failed, it.txn);
    }
    c->ninflight = 0;
    c->nbatch = 0;
    req_queue unsent = {0};
    q_append(&unsent, &c->unsent);
    s->npending -= unsent.n;

    if (!s->closing) schedule_retry(c);
    update_ready(s);
    if (s->closing) goto closing;

    while (committed.head) {
        request *r = q_pop(&committed);
        complete(r, r->status);
        if (s->closing) goto closing;
    }
    while (failed.head) {
        complete(q_pop(&failed), STORAGE_UNAVAILABLE);
        if (s->closing) goto closing;
    }
    while (unsent.head) {
        request *r = q_pop(&unsent);
        if (r->away) s->away[r->away - 1]--;   /* routed again */
        r->away = 0;
        slot *o = route(s, s->stmts[r->stmt_idx], r);
        if (o) {
            q_push(&o->unsent, r);
            s->npending++;
            conn_send(o);
        } else {
            complete(r, STORAGE_UNAVAILABLE);
        }
        if (s->closing) goto closing;
    }
    return;
closing:
    /* storage_free ran inside a callback: fail what is still ours here. */
    q_append(&failed, &committed);
    q_append(&failed, &unsent);
    while (failed.head) complete(q_pop(&failed), STORAGE_UNAVAILABLE);
}

static void on_connected(slot *c)
{
    storage *s = c->s;
    if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    c->state = C_PREPARING;
    c->connect_deadline = uv_now(s->loop) + s->query_timeout_ms;
    for (size_t i = 0; i < s->nstmts; i++) {
        const storage_stmt *st = s->stmts[i];
        if (!PQsendPrepare(c->pg, st->name, st->sql, st->nparams, NULL) || !PQpipelineSync(c->pg)) {
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        c->prepared[i] = 1;
        ring_push(c, (item){.kind = IT_PREPARE, .stmt_idx = (int)i});
        ring_push(c, (item){.kind = IT_SYNC});
    }
    if (!PQpipelineSync(c->pg)) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    ring_push(c, (item){.kind = IT_SYNC, .connect_done = 1});
    conn_flush(c);
}

static void conn_start(slot *c)
{
    storage *s = c->s;
    if (s->closing) return;
    c->pg = PQconnectStart(s->conninfo);
    if (!c->pg) {
        conn_fail(c, "out of memory");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeProcessor(c->pg, quiet_notices, NULL);
    c->state = C_CONNECTING;
    c->connect_deadline = uv_now(s->loop) + s->query_timeout_ms;
    if (poll_update(c, UV_WRITABLE) != 0) conn_fail(c, "cannot watch the socket");
}

/* Send what is queued, in order (see the top of the file): a run of batch
 * statements as one transaction of up to batch_max; any other request, or
 * one whose batch failed (solo), as a transaction of its own; nothing while
 * a batch is in flight. */
static void conn_send(slot *c)
{
    storage *s = c->s;
    if (c->state != C_READY) return;
    while (c->unsent.head && c->ninflight < PIPELINE_MAX) {
        if (c->nbatch > 0) break;
        request *head = c->unsent.head;
        int batch = s->stmts[head->stmt_idx]->batch && !head->solo;
        size_t limit = batch ? s->batch_max : 1;
        req_queue txn = {0};
        while (txn.n < limit && c->unsent.head && c->ninflight < PIPELINE_MAX) {
            request *r = c->unsent.head;
            const storage_stmt *st = s->stmts[r->stmt_idx];
            if (txn.n > 0 && (!st->batch || r->solo)) break;
            if (!c->prepared[r->stmt_idx]) {
                if (!PQsendPrepare(c->pg, st->name, st->sql, st->nparams, NULL)) goto broken;
                c->prepared[r->stmt_idx] = 1;
                ring_push(c, (item){.kind = IT_PREPARE, .stmt_idx = r->stmt_idx});
            }
            if (!PQsendQueryPrepared(c->pg, st->name, st->nparams, (const char *const *)r->values, NULL, NULL, 0))
                goto broken;
            q_pop(&c->unsent);
            s->npending--;
            ring_push(c, (item){.kind = IT_QUERY, .stmt_idx = r->stmt_idx, .req = r});
            c->ninflight++;
            q_push(&txn, r);
        }
        /* The Sync item owns the transaction's requests, even when the
         * Sync cannot be sent: conn_fail then fails them. */
        ring_push(c, (item){.kind = IT_SYNC, .txn = txn.head, .ntxn = txn.n, .batch = batch});
        if (batch) c->nbatch++;
        if (!PQpipelineSync(c->pg)) {
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        continue;
    broken:
        /* The request at the head of the queue was not sent: it moves
         * elsewhere with the queue; those of its transaction already sent
         * were never committed and fail with the connection. */
        if (txn.n) ring_push(c, (item){.kind = IT_SYNC, .txn = txn.head, .ntxn = txn.n});
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    conn_flush(c);
}

static int result_ok(const PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}

static storage_status result_status(storage *s, request *r)
{
    const storage_stmt *st = s->stmts[r->stmt_idx];
    if (!r->res) return STORAGE_ERROR;
    switch (PQresultStatus(r->res)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
        return STORAGE_OK;
    case PGRES_PIPELINE_ABORTED:
        return STORAGE_ERROR;   /* its Parse failed: logged there */
    default: break;
    }
    const char *state = PQresultErrorField(r->res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(r->res, PG_DIAG_MESSAGE_PRIMARY);
    char msg[256];
    one_line(msg, sizeof msg, primary ? primary : PQresultErrorMessage(r->res));
    if (!state) state = "";
    if (strcmp(state, "23505") == 0) return STORAGE_CONFLICT;
    if (strcmp(state, "23503") == 0) return STORAGE_NOT_FOUND;
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 || strncmp(state, "57P", 3) == 0
        || strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0) {
        log_warn("storage: %s: temporary failure: %s (SQLSTATE %s)", st->name, msg, state);
        return STORAGE_UNAVAILABLE;
    }
    log_error("storage: %s failed: %s (SQLSTATE %s)", st->name, msg, state);
    return STORAGE_ERROR;
}

/* Log why a transaction of several requests failed (the first error). */
static void log_batch_failure(storage *s, slot *c, const item *sync)
{
    const char *name = "commit";
    const PGresult *err = sync->res;
    for (request *r = sync->txn; r && !err; r = r->next) {
        if (r->res && PQresultStatus(r->res) == PGRES_PIPELINE_ABORTED) continue;
        if (!result_ok(r->res)) {
            name = s->stmts[r->stmt_idx]->name;
            err = r->res;
        }
    }
    const char *state = err ? PQresultErrorField(err, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = err ? PQresultErrorField(err, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char msg[256];
    one_line(msg, sizeof msg, primary ? primary : err ? PQresultErrorMessage(err) : "no result");
    log_info("storage: connection %u: a transaction of %zu requests failed at %s: %s (SQLSTATE %s);"
             " running them one by one", c->idx, sync->ntxn, name, msg, state ? state : "none");
}

/* The Sync of a transaction came back: complete its requests in order, or,
 * when a transaction of several failed, queue them again as solo requests
 * (see the top of the file). */
static void txn_done(slot *c, item *sync)
{
    storage *s = c->s;
    int failed = sync->res != NULL;
    for (request *r = sync->txn; r && !failed; r = r->next) failed = !result_ok(r->res);
    c->ninflight -= sync->ntxn;
    if (failed && sync->ntxn > 1) {
        log_batch_failure(s, c, sync);
        PQclear(sync->res);
        req_queue again = {0};
        txn_to_queue(&again, sync->txn);
        for (request *r = again.head; r; r = r->next) {
            if (r->res) PQclear(r->res);
            r->res = NULL;
            r->solo = 1;
        }
        s->npending += again.n;
        q_append(&again, &c->unsent);
        c->unsent = again;
        return;
    }
    if (sync->res) {
        /* The commit of a single request failed: that is its result. */
        request *r = sync->txn;
        if (r->res) PQclear(r->res);
        r->res = sync->res;
    }
    req_queue done = {0};
    txn_to_queue(&done, sync->txn);
    for (request *r = done.head; r; r = r->next) r->status = result_status(s, r);
    q_append(&c->completing, &done);
    while (c->completing.head) {
        request *r = q_pop(&c->completing);
        complete(r, r->status);
        if (s->closing || c->state == C_DOWN) return;
    }
}

/* Read results and complete requests whose Sync came back. */
static void conn_read(slot *c)
{
    storage *s = c->s;
    if (!PQconsumeInput(c->pg)) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    int nulls = 0;
    while (c->rlen) {
        if (PQisBusy(c->pg)) break;
        PGresult *res = PQgetResult(c->pg);
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            if (res) PQclear(res);
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        item *it = ring_head(c);
        if (it->kind == IT_SYNC) {
            if (!res) {
                if (++nulls > 1) break;
                continue;
            }
            nulls = 0;
            if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
                /* An error at the end of the transaction (commit). */
                if (it->txn && !it->res && PQresultStatus(res) == PGRES_FATAL_ERROR) it->res = res;
                else PQclear(res);
                continue;
            }
            PQclear(res);
            item done = ring_pop(c);
            if (done.connect_done) {
                c->state = C_READY;
                c->failures = 0;
                c->backoff_ms = 0;
                c->lasterr[0] = 0;
                log_info("storage: connection %u ready", c->idx);
                update_ready(s);
                if (s->closing) return;
                continue;
            }
            if (done.txn) {
                if (done.batch) c->nbatch--;
                txn_done(c, &done);
                if (s->closing || c->state == C_DOWN) return;
            }
            continue;
        }
        nulls = 0;
        if (!it->got) {
            if (!res) continue;   /* should not happen: wait for the result */
            it->res = res;
            it->got = 1;
            continue;
        }
        if (res) {   /* a second result for one command: not expected */
            PQclear(res);
            continue;
        }
        item done = ring_pop(c);
        if (done.kind == IT_PREPARE) {
            if (PQresultStatus(done.res) != PGRES_COMMAND_OK) {
                char msg[256];
                one_line(msg, sizeof msg, PQresultErrorMessage(done.res));
                log_error("storage: connection %u: preparing %s failed: %s", c->idx,
                          s->stmts[done.stmt_idx]->name, msg);
                c->prepared[done.stmt_idx] = 0;
            }
            PQclear(done.res);
        } else {
            done.req->res = done.res;
        }
    }
    if (c->state == C_READY) conn_send(c);
    else if (c->pg) conn_flush(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    slot *c = h->data;
    storage *s = c->s;
    (void)status;
    if (c->state == C_CONNECTING) {
        /* libpq may close its socket and open another one (next address,
         * SSL/GSS fallback), possibly with the same number, which epoll
         * would no longer watch: while connecting, watch afresh each step. */
        poll_close(c);
        switch (PQconnectPoll(c->pg)) {
        case PGRES_POLLING_FAILED:
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        case PGRES_POLLING_READING:
            if (poll_update(c, UV_READABLE) != 0) conn_fail(c, "cannot watch the socket");
            return;
        case PGRES_POLLING_WRITING:
            if (poll_update(c, UV_WRITABLE) != 0) conn_fail(c, "cannot watch the socket");
            return;
        case PGRES_POLLING_OK:
            on_connected(c);
            return;
        default:
            return;
        }
    }
    if (!c->pg) return;
    if (events & UV_WRITABLE) {
        if (conn_flush(c) != 0) return;
    }
    if (events & UV_READABLE || status < 0) conn_read(c);
    (void)s;
}

/* ---------------------------------------------------------------- timeouts */

static void on_tick(uv_timer_t *t)
{
    storage *s = t->data;
    uint64_t now = uv_now(s->loop);
    for (unsigned i = 0; i < s->nconns && !s->closing; i++) {
        slot *c = &s->conns[i];
        if ((c->state == C_CONNECTING || c->state == C_PREPARING) && now > c->connect_deadline) {
            conn_fail(c, "connection attempt timed out");
            continue;
        }
        for (size_t k = 0; k < c->rlen; k++) {
            item *it = &c->ring[(c->rhead + k) % c->rcap];
            if (it->kind != IT_QUERY) continue;
            if (it->req->deadline <= now) {
                char why[160];
                snprintf(why, sizeof why, "%s not answered within %u ms",
                         s->stmts[it->stmt_idx]->name, s->query_timeout_ms);
                conn_fail(c, why);
            }
            break;
        }
        while (!s->closing && c->unsent.head && c->unsent.head->deadline <= now) {
            request *r = q_pop(&c->unsent);
            s->npending--;
            log_warn("storage: %s waited %u ms for a connection: failing it",
                     s->stmts[r->stmt_idx]->name, s->query_timeout_ms);
            complete(r, STORAGE_UNAVAILABLE);
        }
    }
}

/* ---------------------------------------------------------------- requests */

/* Send what every free connection has queued. Runs before the loop waits
 * for I/O, so requests made during this iteration go out before it does. */
static void on_flush(uv_prepare_t *h)
{
    storage *s = h->data;
    uv_prepare_stop(h);
    s->flush_active = 0;
    s->in_flush = 1;
    do {
        /* A callback run from here (a connection failing) may queue more:
         * send it now rather than after the next wake-up. */
        s->flush_again = 0;
        for (unsigned i = 0; i < s->nconns && !s->closing; i++) conn_send(&s->conns[i]);
    } while (s->flush_again && !s->closing);
    s->in_flush = 0;
}

static void schedule_flush(storage *s)
{
    if (s->closing) return;
    if (s->in_flush) {
        s->flush_again = 1;
    } else if (!s->flush_active) {
        uv_prepare_start(&s->flush, on_flush);
        s->flush_active = 1;
    }
}

void storage_exec(storage *s, const storage_stmt *stmt, const char *const *values,
                  storage_result_cb cb, void *ud)
{
    size_t size = sizeof(request) + (size_t)stmt->nparams * sizeof(char *);
    for (int i = 0; i < stmt->nparams; i++)
        if (values[i]) size += strlen(values[i]) + 1;
    request *r = calloc(1, size);
    if (!r) abort();
    r->cb = cb;
    r->ud = ud;
    r->values = (char **)(r + 1);
    char *p = (char *)(r->values + stmt->nparams);
    for (int i = 0; i < stmt->nparams; i++) {
        if (!values[i]) continue;
        size_t n = strlen(values[i]) + 1;
        memcpy(p, values[i], n);
        r->values[i] = p;
        p += n;
    }
    if (s->closing) {
        defer(s, r, STORAGE_UNAVAILABLE);
        return;
    }
    r->stmt_idx = stmt_index(s, stmt);
    if (r->stmt_idx < 0) {
        defer(s, r, STORAGE_ERROR);
        return;
    }
    r->deadline = uv_now(s->loop) + s->query_timeout_ms;
    r->owner = s;
    r->started_ns = uv_hrtime();
    slot *c = route(s, stmt, r);
    if (!c) {
        defer(s, r, STORAGE_UNAVAILABLE);
        return;
    }
    if (s->npending >= s->max_pending) {
        uint64_t now = uv_now(s->loop);
        if (now - s->last_full_log >= 1000) {
            log_warn("storage: %zu requests waiting (max_pending): refusing %s", s->npending, stmt->name);
            s->last_full_log = now;
        }
        defer(s, r, STORAGE_UNAVAILABLE);
        return;
    }
    q_push(&c->unsent, r);
    s->npending++;
    schedule_flush(s);
}

/* ---------------------------------------------------------------- life cycle */

static void storage_destroy(storage *s)
{
    /* Requests made after storage_free (while its handles were closing). */
    while (s->done.head) complete(q_pop(&s->done), STORAGE_UNAVAILABLE);
    for (unsigned i = 0; i < s->nconns; i++) {
        free(s->conns[i].ring);
        free(s->conns[i].prepared);
    }
    free(s->conns);
    free(s->stmts);
    if (s->conninfo) {
        crypto_wipe(s->conninfo, strlen(s->conninfo));
        free(s->conninfo);
    }
    free(s);
}

static void storage_handle_closed(uv_handle_t *h)
{
    storage *s = h->data;
    if (--s->open_handles == 0) storage_destroy(s);
}

static void retry_closed(uv_handle_t *h)
{
    slot *c = h->data;
    storage *s = c->s;
    if (--s->open_handles == 0) storage_destroy(s);
}

storage *storage_new(uv_loop_t *loop, const storage_config *cfg)
{
    storage *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->loop = loop;
    s->conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
    s->nconns = cfg->connections ? cfg->connections : 2;
    if (s->nconns > 64) s->nconns = 64;
    s->reconnect_max_ms = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : 5000;
    if (s->reconnect_max_ms < RECONNECT_MIN_MS) s->reconnect_max_ms = RECONNECT_MIN_MS;
    s->max_pending = cfg->max_pending ? cfg->max_pending : 10000;
    s->query_timeout_ms = cfg->query_timeout_ms ? cfg->query_timeout_ms : 10000;
    s->batch_max = cfg->batch_max ? cfg->batch_max : STORAGE_BATCH_DEFAULT;
    if (s->batch_max > STORAGE_BATCH_MAX) s->batch_max = STORAGE_BATCH_MAX;
    if (!s->conninfo) abort();
    s->conns = calloc(s->nconns, sizeof *s->conns);
    if (!s->conns) abort();

    uv_idle_init(loop, &s->idle);
    s->idle.data = s;
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    uv_prepare_init(loop, &s->flush);
    s->flush.data = s;
    s->open_handles = 3;
    unsigned tick = s->query_timeout_ms / 4;
    if (tick < 10) tick = 10;
    if (tick > 1000) tick = 1000;
    uv_timer_start(&s->tick, on_tick, tick, tick);
    uv_unref((uv_handle_t *)&s->tick);

    for (unsigned i = 0; i < s->nconns; i++) {
        slot *c = &s->conns[i];
        c->s = s;
        c->idx = i;
        c->poll_fd = -1;
        uv_timer_init(loop, &c->retry);
        c->retry.data = c;
        s->open_handles++;
    }
    for (size_t t = 0; t < sizeof builtin_tables / sizeof builtin_tables[0]; t++)
        storage_register(s, builtin_tables[t]);
    for (unsigned i = 0; i < s->nconns; i++) conn_start(&s->conns[i]);
    return s;
}

void storage_free(storage *s)
{
    if (!s || s->closing) return;
    s->closing = 1;
    req_queue failed = {0};
    q_append(&failed, &s->done);
    for (unsigned i = 0; i < s->nconns; i++) {
        slot *c = &s->conns[i];
        /* Committed, their callbacks not run yet (storage_free was called
         * from one of their batch): pending for the caller, so unavailable
         * like the rest (the outcome of a write is reported unknown). */
        for (request *r = c->completing.head; r; r = r->next) r->status = STORAGE_UNAVAILABLE;
        q_append(&failed, &c->completing);
        poll_close(c);
        if (c->pg) PQfinish(c->pg);
        c->pg = NULL;
        c->state = C_DOWN;
        while (c->rlen) {
            item it = ring_pop(c);
            if (it.res) PQclear(it.res);
            if (it.kind == IT_SYNC) {
                for (request *r = it.txn; r; r = r->next) r->status = STORAGE_UNAVAILABLE;
                txn_to_queue(&failed, it.txn);
            }
        }
        c->ninflight = 0;
        c->nbatch = 0;
        for (request *r = c->unsent.head; r; r = r->next) r->status = STORAGE_UNAVAILABLE;
        q_append(&failed, &c->unsent);
    }
    s->npending = 0;
    /* Callbacks may make new requests: they land in s->done (closing) and
     * are completed here too. */
    for (;;) {
        q_append(&failed, &s->done);
        request *r = q_pop(&failed);
        if (!r) break;
        complete(r, r->status == STORAGE_OK ? STORAGE_UNAVAILABLE : r->status);
    }
    uv_close((uv_handle_t *)&s->idle, storage_handle_closed);
    uv_close((uv_handle_t *)&s->tick, storage_handle_closed);
    uv_close((uv_handle_t *)&s->flush, storage_handle_closed);
    for (unsigned i = 0; i < s->nconns; i++)
        uv_close((uv_handle_t *)&s->conns[i].retry, retry_closed);
}

void storage_complete_later(storage *s, storage_result_cb cb, void *ud, storage_status st)
{
    request *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->cb = cb;
    r->ud = ud;
    defer(s, r, st);
}

void storage_stats(const storage *s, uint64_t *answered, double *seconds)
{
    if (answered) *answered = s->answered;
    if (seconds) *seconds = (double)s->answered_ns / 1e9;
}

int storage_crowded(const storage *s) { return s->npending * 2 >= s->max_pending; }

size_t storage_pending(const storage *s)
{
    size_t n = s->npending + s->done.n;
    for (unsigned i = 0; i < s->nconns; i++) n += s->conns[i].ninflight + s->conns[i].completing.n;
    return n;
}
