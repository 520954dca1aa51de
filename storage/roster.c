/* roster: roster items and the roster version per user (see roster.h).
 * Every change bumps the version in the same statement (one transaction). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "storage/query.h"
#include "storage/modules.h"
#include "storage/roster.h"

enum { ROSTER_LOAD, ROSTER_PUT, ROSTER_REMOVE, ROSTER_COUNT };

const storage_stmt roster_stmts[] = {
    [ROSTER_LOAD] = {"roster_load",
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE domain = $1 AND username = $2),"
        " coalesce((SELECT version FROM roster_versions WHERE domain = $1 AND username = $2), 0),"
        " r.contact, r.name, r.subscription, r.ask_out, r.pending_in, r.approved, r.pending_in_stanza, r.groups"
        " FROM (SELECT 1) AS one"
        " LEFT JOIN roster_items r ON r.domain = $1 AND r.username = $2"
        " ORDER BY r.contact",
        2, 2},
    [ROSTER_PUT] = {"roster_put",
        "WITH v AS (INSERT INTO roster_versions (domain, username, version) VALUES ($1, $2, 1)"
        "           ON CONFLICT (domain, username) DO UPDATE SET version = roster_versions.version + 1"
        "           RETURNING version),"
        " i AS (INSERT INTO roster_items (domain, username, contact, name, subscription, ask_out, pending_in,"
        "                                 approved, pending_in_stanza, groups)"
        "       VALUES ($1, $2, $3, $4, $5, $6::boolean, $7::boolean, $8::boolean, $9, $10::text[])"
        "       ON CONFLICT (domain, username, contact) DO UPDATE SET name = EXCLUDED.name,"
        "         subscription = EXCLUDED.subscription, ask_out = EXCLUDED.ask_out,"
        "         pending_in = EXCLUDED.pending_in, approved = EXCLUDED.approved,"
        "         pending_in_stanza = EXCLUDED.pending_in_stanza, groups = EXCLUDED.groups"
        "       RETURNING 1)"
        " SELECT version FROM v",
        10, 2},
    [ROSTER_REMOVE] = {"roster_remove",
        "WITH d AS (DELETE FROM roster_items WHERE domain = $1 AND username = $2 AND contact = $3 RETURNING 1),"
        " v AS (INSERT INTO roster_versions (domain, username, version) SELECT $1, $2, 1 FROM d"
        "       ON CONFLICT (domain, username) DO UPDATE SET version = roster_versions.version + 1"
        "       RETURNING version)"
        " SELECT version FROM v",
        3, 2},
    [ROSTER_COUNT] = {"roster_count",
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE domain = $1 AND username = $2),"
        " (SELECT count(*) FROM roster_items WHERE domain = $1 AND username = $2)",
        2, 2},
    {NULL, NULL, 0, 0},
};

static const char *const sub_names[] = {"none", "to", "from", "both"};

static roster_subscription sub_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, sub_names[i]) == 0) return (roster_subscription)i;
    return SUB_NONE;
}

typedef struct {
    roster_load_cb load;
    roster_write_cb write;
    void (*count)(void *ud, storage_status st, long count);
    void *ud;
} roster_req;

static roster_req *req_new(void *ud)
{
    roster_req *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->ud = ud;
    return r;
}

static void on_load(void *ud, storage_status st, const PGresult *res)
{
    roster_req *r = ud;
    roster_load_cb cb = r->load;
    void *cud = r->ud;
    free(r);
    if (st != STORAGE_OK) {
        cb(cud, st, NULL, 0, 0);
        return;
    }
    int n = PQntuples(res);
    if (n < 1 || !storage_get_bool(res, 0, 0)) {
        cb(cud, STORAGE_NOT_FOUND, NULL, 0, 0);
        return;
    }
    int64_t version = storage_get_int64(res, 0, 1, 0);
    roster_row *rows = calloc((size_t)n, sizeof *rows);
    char ***groups = calloc((size_t)n, sizeof *groups);
    if (!rows || !groups) abort();
    size_t count = 0;
    for (int i = 0; i < n; i++) {
        const char *contact = storage_get_text(res, i, 2);
        if (!contact) continue;   /* the one row of a user without items */
        roster_row *row = &rows[count];
        row->contact = contact;
        row->name = storage_get_text(res, i, 3);
        row->subscription = sub_parse(storage_get_text(res, i, 4));
        row->ask_out = storage_get_bool(res, i, 5);
        row->pending_in = storage_get_bool(res, i, 6);
        row->approved = storage_get_bool(res, i, 7);
        row->pending_in_stanza = storage_get_text(res, i, 8);
        groups[count] = storage_get_text_array(res, i, 9, &row->ngroups);
        row->groups = (const char *const *)groups[count];
        count++;
    }
    cb(cud, STORAGE_OK, rows, count, version);
    for (size_t i = 0; i < count; i++) free(groups[i]);
    free(groups);
    free(rows);
}

static void on_write(void *ud, storage_status st, const PGresult *res)
{
    roster_req *r = ud;
    roster_write_cb cb = r->write;
    void *cud = r->ud;
    free(r);
    if (st == STORAGE_OK && PQntuples(res) == 0) st = STORAGE_NOT_FOUND;
    cb(cud, st, st == STORAGE_OK ? storage_get_int64(res, 0, 0, 0) : 0);
}

static void on_count(void *ud, storage_status st, const PGresult *res)
{
    roster_req *r = ud;
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

void roster_load(storage *s, const char *domain, const char *username, roster_load_cb cb, void *ud)
{
    roster_req *r = req_new(ud);
    r->load = cb;
    const char *v[2] = {domain, username};
    storage_exec(s, &roster_stmts[ROSTER_LOAD], v, on_load, r);
}

void roster_put(storage *s, const char *domain, const char *username, const roster_row *item,
                roster_write_cb cb, void *ud)
{
    roster_req *r = req_new(ud);
    r->write = cb;
    if (!item || !item->contact || (unsigned)item->subscription > SUB_BOTH) {
        log_error("storage: roster_put for %s@%s: invalid item", username, domain);
        storage_complete_later(s, on_write, r, STORAGE_ERROR);
        return;
    }
    char *groups = storage_text_array_param(item->groups, item->groups ? item->ngroups : 0);
    const char *v[10] = {domain, username, item->contact, item->name, sub_names[item->subscription],
                         item->ask_out ? "t" : "f", item->pending_in ? "t" : "f", item->approved ? "t" : "f",
                         item->pending_in_stanza, groups};
    storage_exec(s, &roster_stmts[ROSTER_PUT], v, on_write, r);
    free(groups);
}

void roster_remove(storage *s, const char *domain, const char *username, const char *contact,
                   roster_write_cb cb, void *ud)
{
    roster_req *r = req_new(ud);
    r->write = cb;
    const char *v[3] = {domain, username, contact};
    storage_exec(s, &roster_stmts[ROSTER_REMOVE], v, on_write, r);
}

void roster_count(storage *s, const char *domain, const char *username,
                  void (*cb)(void *ud, storage_status st, long count), void *ud)
{
    roster_req *r = req_new(ud);
    r->count = cb;
    const char *v[2] = {domain, username};
    storage_exec(s, &roster_stmts[ROSTER_COUNT], v, on_count, r);
}
