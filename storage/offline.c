/* offline: offline messages (see offline.h). The quota is checked and the
 * message inserted by one SQL function that counts the message in the
 * owner's row of offline_counters, locked until the commit (migration 007);
 * deletes go through a function that locks that row first, and a trigger
 * keeps the counter exact. Callbacks run after the commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "storage/modules.h"
#include "storage/offline.h"
#include "storage/query.h"

enum { OFFLINE_STORE, OFFLINE_FETCH, OFFLINE_DELETE, OFFLINE_COUNT };

#define LIVE "(expire_at IS NULL OR expire_at > now())"

const storage_stmt offline_stmts[] = {
    [OFFLINE_STORE] = {"offline_store",
        "SELECT switchboard_offline_store($1, $2, $3,"
        " CASE WHEN $4::bigint = 0 THEN NULL ELSE to_timestamp($4::bigint) END, $5::bigint)",
        5, 2, 1},   /* batch: stores are group-committed */
    [OFFLINE_FETCH] = {"offline_fetch",
        "SELECT a.have, m.id, m.stanza, floor(extract(epoch FROM m.stored_at))::bigint,"
        " coalesce(floor(extract(epoch FROM m.expire_at))::bigint, 0)"
        " FROM (SELECT EXISTS (SELECT 1 FROM accounts WHERE domain = $1 AND username = $2) AS have) a"
        " LEFT JOIN offline_messages m ON m.domain = $1 AND m.username = $2"
        "   AND (m.expire_at IS NULL OR m.expire_at > now())"
        " ORDER BY m.id",
        2, 2},
    [OFFLINE_DELETE] = {"offline_delete", "SELECT switchboard_offline_delete($1, $2, $3::bigint)", 3, 2,
        1},   /* batch */
    [OFFLINE_COUNT] = {"offline_count",
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE domain = $1 AND username = $2),"
        " (SELECT count(*) FROM offline_messages WHERE domain = $1 AND username = $2 AND " LIVE ")",
        2, 2},
    {NULL, NULL, 0, 0},
};

typedef struct {
    storage_status_cb status;
    void (*fetch)(void *ud, storage_status st, const offline_row *rows, size_t n);
    void (*count)(void *ud, storage_status st, long count);
    void *ud;
} offline_req;

static offline_req *req_new(void *ud)
{
    offline_req *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->ud = ud;
    return r;
}

static void on_store(void *ud, storage_status st, const PGresult *res)
{
    offline_req *r = ud;
    storage_status_cb cb = r->status;
    void *cud = r->ud;
    free(r);
    if (st == STORAGE_OK) {
        int64_t id = storage_get_int64(res, 0, 0, -3);
        if (id == -1) st = STORAGE_QUOTA;
        else if (id == -2) st = STORAGE_NOT_FOUND;
        else if (id < 0) st = STORAGE_ERROR;
    }
    cb(cud, st);
}

static void on_fetch(void *ud, storage_status st, const PGresult *res)
{
    offline_req *r = ud;
    void (*cb)(void *, storage_status, const offline_row *, size_t) = r->fetch;
    void *cud = r->ud;
    free(r);
    if (st != STORAGE_OK) {
        cb(cud, st, NULL, 0);
        return;
    }
    int n = PQntuples(res);
    if (n < 1 || !storage_get_bool(res, 0, 0)) {
        cb(cud, STORAGE_NOT_FOUND, NULL, 0);
        return;
    }
    offline_row *rows = calloc((size_t)n, sizeof *rows);
    if (!rows) abort();
    size_t count = 0;
    for (int i = 0; i < n; i++) {
        if (PQgetisnull(res, i, 1)) continue;   /* the one row of a user without messages */
        offline_row *row = &rows[count++];
        row->id = storage_get_int64(res, i, 1, 0);
        row->stanza = PQgetvalue(res, i, 2);
        row->len = (size_t)PQgetlength(res, i, 2);
        row->stored_at = (time_t)storage_get_int64(res, i, 3, 0);
        row->expire_at = (time_t)storage_get_int64(res, i, 4, 0);
    }
    cb(cud, STORAGE_OK, rows, count);
    free(rows);
}

static void on_delete(void *ud, storage_status st, const PGresult *res)
{
    offline_req *r = ud;
    storage_status_cb cb = r->status;
    void *cud = r->ud;
    free(r);
    if (st == STORAGE_OK && storage_get_int64(res, 0, 0, -1) < 0) st = STORAGE_NOT_FOUND;
    cb(cud, st);
}

static void on_count(void *ud, storage_status st, const PGresult *res)
{
    offline_req *r = ud;
    void (*cb)(void *, storage_status, long) = r->count;
    void *cud = r->ud;
    free(r);
    long n = 0;
    if (st == STORAGE_OK) {
        if (!storage_get_bool(res, 0, 0)) st = STORAGE_NOT_FOUND;
        else n = (long)storage_get_int64(res, 0, 1, 0);
    }
    cb(cud, st, n);
}

void offline_store(storage *s, const char *domain, const char *username, const char *stanza, size_t len,
                   time_t expire_at, unsigned quota, storage_status_cb cb, void *ud)
{
    offline_req *r = req_new(ud);
    r->status = cb;
    if (!stanza || memchr(stanza, 0, len)) {
        log_error("storage: offline_store for %s@%s: invalid stanza", username, domain);
        storage_complete_later(s, on_store, r, STORAGE_ERROR);
        return;
    }
    char *text = strndup(stanza, len);
    if (!text) abort();
    char exp[24], q[24];
    u64_to_dec(exp, expire_at > 0 ? (uint64_t)expire_at : 0);
    u64_to_dec(q, quota);
    const char *v[5] = {domain, username, text, exp, q};
    storage_exec(s, &offline_stmts[OFFLINE_STORE], v, on_store, r);
    free(text);
}

void offline_fetch(storage *s, const char *domain, const char *username,
                   void (*cb)(void *ud, storage_status st, const offline_row *rows, size_t n), void *ud)
{
    offline_req *r = req_new(ud);
    r->fetch = cb;
    const char *v[2] = {domain, username};
    storage_exec(s, &offline_stmts[OFFLINE_FETCH], v, on_fetch, r);
}

void offline_delete(storage *s, const char *domain, const char *username, int64_t up_to,
                    storage_status_cb cb, void *ud)
{
    offline_req *r = req_new(ud);
    r->status = cb;
    char upto[32];
    snprintf(upto, sizeof upto, "%lld", (long long)up_to);
    const char *v[3] = {domain, username, upto};
    storage_exec(s, &offline_stmts[OFFLINE_DELETE], v, on_delete, r);
}

void offline_count(storage *s, const char *domain, const char *username,
                   void (*cb)(void *ud, storage_status st, long count), void *ud)
{
    offline_req *r = req_new(ud);
    r->count = cb;
    const char *v[2] = {domain, username};
    storage_exec(s, &offline_stmts[OFFLINE_COUNT], v, on_count, r);
}
