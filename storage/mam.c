/* mam: the message archive and archiving preferences (see mam.h; schema in
 * migration 006). Every page query is two index range scans on
 * (domain, username, stamp, id) or (domain, username, with_jid, stamp, id):
 * one counts the result set, the other reads the page. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "storage/mam.h"
#include "storage/modules.h"
#include "storage/query.h"

enum {
    MAM_STORE,
    MAM_PREFS_GET,
    MAM_PREFS_PUT,
    MAM_LOOKUP,
    MAM_BOUNDS,
    MAM_PAGE_ALL_FWD,
    MAM_PAGE_ALL_BWD,
    MAM_PAGE_BARE_FWD,
    MAM_PAGE_BARE_BWD,
    MAM_PAGE_FULL_FWD,
    MAM_PAGE_FULL_BWD,
    MAM_TRIM,
    MAM_EXPIRE,
};

/* microseconds since the epoch <-> timestamptz, exactly */
#define TS(n) "('epoch'::timestamptz + $" #n "::bigint * interval '1 microsecond')"
#define US_OUT "(extract(epoch FROM stamp) * 1000000)::bigint"

#define OWNER "domain = $1 AND username = $2"
#define W_ALL ""
#define W_BARE " AND with_jid = $12"
#define W_FULL " AND with_jid = $12 AND with_resource = $13"
#define SET_RANGE " AND (stamp, id) > (" TS(3) ", $4::bigint) AND (stamp, id) < (" TS(5) ", $6::bigint)"
#define PAGE_RANGE " AND (stamp, id) > (" TS(7) ", $8::bigint) AND (stamp, id) < (" TS(9) ", $10::bigint)"

#define PAGE_SQL(W, DIR)                                                                              \
    "SELECT c.total, c.n_lo, c.n_hi, p.id, p.stanza_id, p.us, p.stanza FROM"                          \
    " (SELECT count(*) AS total,"                                                                     \
    "   count(*) FILTER (WHERE (stamp, id) <= (" TS(7) ", $8::bigint)) AS n_lo,"                      \
    "   count(*) FILTER (WHERE (stamp, id) >= (" TS(9) ", $10::bigint)) AS n_hi"                      \
    "  FROM mam_messages WHERE " OWNER W SET_RANGE ") c"                                              \
    " LEFT JOIN LATERAL (SELECT id, stanza_id, stamp, " US_OUT " AS us, stanza FROM mam_messages"     \
    "  WHERE " OWNER W PAGE_RANGE " ORDER BY stamp " DIR ", id " DIR " LIMIT $11::bigint) p ON true" \
    " ORDER BY p.stamp " DIR ", p.id " DIR

const storage_stmt mam_stmts[] = {
    [MAM_STORE] = {"mam_store",
        "SELECT switchboard_mam_store($1, $2, $3, $4, $5, $6, " TS(7) ", $8, $9::boolean, $10)", 10, 2,
        1},   /* batch: archived messages are group-committed */
    [MAM_PREFS_GET] = {"mam_prefs_get",
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE " OWNER "), p.default_mode, p.always_jids, p.never_jids"
        " FROM (SELECT 1) AS one LEFT JOIN mam_prefs p ON p.domain = $1 AND p.username = $2",
        2, 2},
    [MAM_PREFS_PUT] = {"mam_prefs_put",
        "INSERT INTO mam_prefs (domain, username, default_mode, always_jids, never_jids)"
        " VALUES ($1, $2, $3, $4::text[], $5::text[])"
        " ON CONFLICT (domain, username) DO UPDATE SET default_mode = EXCLUDED.default_mode,"
        "   always_jids = EXCLUDED.always_jids, never_jids = EXCLUDED.never_jids",
        5, 2},
    [MAM_LOOKUP] = {"mam_lookup",
        "SELECT id, stanza_id, " US_OUT ", stanza FROM mam_messages"
        " WHERE " OWNER " AND stanza_id = ANY ($3::text[]) ORDER BY stamp, id",
        3, 2},
    [MAM_BOUNDS] = {"mam_bounds",
        "SELECT f.id, f.stanza_id, f.us, l.id, l.stanza_id, l.us FROM (SELECT 1) AS one"
        " LEFT JOIN LATERAL (SELECT id, stanza_id, " US_OUT " AS us FROM mam_messages WHERE " OWNER
        "   ORDER BY stamp, id LIMIT 1) f ON true"
        " LEFT JOIN LATERAL (SELECT id, stanza_id, " US_OUT " AS us FROM mam_messages WHERE " OWNER
        "   ORDER BY stamp DESC, id DESC LIMIT 1) l ON true",
        2, 2},
    [MAM_PAGE_ALL_FWD] = {"mam_page_all_fwd", PAGE_SQL(W_ALL, "ASC"), 11, 2},
    [MAM_PAGE_ALL_BWD] = {"mam_page_all_bwd", PAGE_SQL(W_ALL, "DESC"), 11, 2},
    [MAM_PAGE_BARE_FWD] = {"mam_page_bare_fwd", PAGE_SQL(W_BARE, "ASC"), 12, 2},
    [MAM_PAGE_BARE_BWD] = {"mam_page_bare_bwd", PAGE_SQL(W_BARE, "DESC"), 12, 2},
    [MAM_PAGE_FULL_FWD] = {"mam_page_full_fwd", PAGE_SQL(W_FULL, "ASC"), 13, 2},
    [MAM_PAGE_FULL_BWD] = {"mam_page_full_bwd", PAGE_SQL(W_FULL, "DESC"), 13, 2},
    [MAM_TRIM] = {"mam_trim",
        "DELETE FROM mam_messages WHERE " OWNER " AND (stamp, id) <"
        " (SELECT stamp, id FROM mam_messages WHERE " OWNER
        "  ORDER BY stamp DESC, id DESC OFFSET $3::bigint LIMIT 1)",
        3, 2},
    [MAM_EXPIRE] = {"mam_expire",
        "DELETE FROM mam_messages WHERE id IN (SELECT id FROM mam_messages"
        " WHERE stamp < now() - $1::bigint * interval '1 day' LIMIT $2::bigint)",
        2, 0},
    {NULL, NULL, 0, 0},
};

static const char *const mode_names[] = {"always", "never", "roster"};

int mam_mode_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, mode_names[i])) return i;
    return -1;
}

const char *mam_mode_name(mam_mode m) { return (unsigned)m < 3 ? mode_names[m] : "always"; }

typedef struct mam_req {
    void (*store)(void *ud, storage_status st, int archived);
    void (*prefs)(void *ud, storage_status st, const mam_prefs *p);
    storage_status_cb status;
    void (*rows)(void *ud, storage_status st, const mam_row *rows, size_t n);
    mam_page_cb page;
    void (*count)(void *ud, storage_status st, long n);
    int backward;
    void *ud;
} mam_req;

static mam_req *req_new(void *ud)
{
    mam_req *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->ud = ud;
    return r;
}

/* ---- store ---- */

static void on_store(void *ud, storage_status st, const PGresult *res)
{
    mam_req *r = ud;
    int archived = 0;
    if (st == STORAGE_OK) archived = PQntuples(res) == 1 && storage_get_int64(res, 0, 0, -1) > 0;
    r->store(r->ud, st, archived);
    free(r);
}

void mam_store(storage *s, const char *domain, const char *username, const mam_entry *e,
               void (*cb)(void *ud, storage_status st, int archived), void *ud)
{
    mam_req *r = req_new(ud);
    r->store = cb;
    char stamp[32];
    snprintf(stamp, sizeof stamp, "%" PRId64, e->stamp_us);
    const char *v[10] = {domain, username, e->stanza_id, e->with_bare, e->with_resource ? e->with_resource : "",
                         e->outgoing ? "out" : "in", stamp, e->stanza, e->in_roster ? "true" : "false",
                         mam_mode_name(e->default_mode)};
    storage_exec(s, &mam_stmts[MAM_STORE], v, on_store, r);
}

/* ---- preferences ---- */

static void on_prefs(void *ud, storage_status st, const PGresult *res)
{
    mam_req *r = ud;
    if (st != STORAGE_OK) {
        r->prefs(r->ud, st, NULL);
        free(r);
        return;
    }
    if (PQntuples(res) < 1 || !storage_get_bool(res, 0, 0)) {
        r->prefs(r->ud, STORAGE_NOT_FOUND, NULL);
        free(r);
        return;
    }
    mam_prefs p;
    memset(&p, 0, sizeof p);
    char **always = NULL, **never = NULL;
    const char *mode = storage_get_text(res, 0, 1);
    if (mode) {
        int m = mam_mode_parse(mode);
        p.set = 1;
        p.mode = m < 0 ? MAM_ALWAYS : (mam_mode)m;
        always = storage_get_text_array(res, 0, 2, &p.nalways);
        never = storage_get_text_array(res, 0, 3, &p.nnever);
        p.always = (const char *const *)always;
        p.never = (const char *const *)never;
    }
    r->prefs(r->ud, STORAGE_OK, &p);
    free(always);
    free(never);
    free(r);
}

void mam_prefs_get(storage *s, const char *domain, const char *username,
                   void (*cb)(void *ud, storage_status st, const mam_prefs *p), void *ud)
{
    mam_req *r = req_new(ud);
    r->prefs = cb;
    const char *v[2] = {domain, username};
    storage_exec(s, &mam_stmts[MAM_PREFS_GET], v, on_prefs, r);
}

static void on_status(void *ud, storage_status st, const PGresult *res)
{
    (void)res;
    mam_req *r = ud;
    r->status(r->ud, st);
    free(r);
}

void mam_prefs_put(storage *s, const char *domain, const char *username, const mam_prefs *p,
                   storage_status_cb cb, void *ud)
{
    mam_req *r = req_new(ud);
    r->status = cb;
    char *always = storage_text_array_param(p->always, p->nalways);
    char *never = storage_text_array_param(p->never, p->nnever);
    const char *v[5] = {domain, username, mam_mode_name(p->mode), always, never};
    storage_exec(s, &mam_stmts[MAM_PREFS_PUT], v, on_status, r);
    free(always);
    free(never);
}

/* ---- reading ---- */

static void on_rows(void *ud, storage_status st, const PGresult *res)
{
    mam_req *r = ud;
    if (st != STORAGE_OK) {
        r->rows(r->ud, st, NULL, 0);
        free(r);
        return;
    }
    int n = PQntuples(res);
    mam_row *rows = calloc((size_t)n + 1, sizeof *rows);
    if (!rows) abort();
    for (int i = 0; i < n; i++) {
        rows[i].id = storage_get_int64(res, i, 0, 0);
        rows[i].stanza_id = storage_get_text(res, i, 1);
        rows[i].stamp_us = storage_get_int64(res, i, 2, 0);
        rows[i].stanza = storage_get_text(res, i, 3);
    }
    r->rows(r->ud, STORAGE_OK, rows, (size_t)n);
    free(rows);
    free(r);
}

void mam_lookup(storage *s, const char *domain, const char *username, const char *const *ids, size_t n,
                void (*cb)(void *ud, storage_status st, const mam_row *rows, size_t n), void *ud)
{
    mam_req *r = req_new(ud);
    r->rows = cb;
    char *arr = storage_text_array_param(ids, n);
    const char *v[3] = {domain, username, arr};
    storage_exec(s, &mam_stmts[MAM_LOOKUP], v, on_rows, r);
    free(arr);
}

static void on_bounds(void *ud, storage_status st, const PGresult *res)
{
    mam_req *r = ud;
    if (st != STORAGE_OK) {
        r->rows(r->ud, st, NULL, 0);
        free(r);
        return;
    }
    mam_row rows[2];
    memset(rows, 0, sizeof rows);
    size_t n = 0;
    if (PQntuples(res) == 1 && storage_get_text(res, 0, 1)) {
        for (int k = 0; k < 2; k++) {
            rows[k].id = storage_get_int64(res, 0, 3 * k, 0);
            rows[k].stanza_id = storage_get_text(res, 0, 3 * k + 1);
            rows[k].stamp_us = storage_get_int64(res, 0, 3 * k + 2, 0);
        }
        n = 2;
    }
    r->rows(r->ud, STORAGE_OK, rows, n);
    free(r);
}

void mam_bounds(storage *s, const char *domain, const char *username,
                void (*cb)(void *ud, storage_status st, const mam_row *rows, size_t n), void *ud)
{
    mam_req *r = req_new(ud);
    r->rows = cb;
    const char *v[2] = {domain, username};
    storage_exec(s, &mam_stmts[MAM_BOUNDS], v, on_bounds, r);
}

static void on_page(void *ud, storage_status st, const PGresult *res)
{
    mam_req *r = ud;
    if (st != STORAGE_OK || PQntuples(res) < 1) {
        r->page(r->ud, st == STORAGE_OK ? STORAGE_ERROR : st, NULL, 0, 0, 0);
        free(r);
        return;
    }
    int n = PQntuples(res);
    long total = (long)storage_get_int64(res, 0, 0, 0);
    long n_lo = (long)storage_get_int64(res, 0, 1, 0);
    long n_hi = (long)storage_get_int64(res, 0, 2, 0);
    mam_row *rows = calloc((size_t)n, sizeof *rows);
    if (!rows) abort();
    size_t count = 0;
    for (int i = 0; i < n; i++) {
        if (!storage_get_text(res, i, 4)) continue;   /* the one row of an empty page */
        mam_row *row = &rows[count++];
        row->id = storage_get_int64(res, i, 3, 0);
        row->stanza_id = storage_get_text(res, i, 4);
        row->stamp_us = storage_get_int64(res, i, 5, 0);
        row->stanza = storage_get_text(res, i, 6);
    }
    /* backward pages come newest first: put them in archive order */
    if (r->backward) {
        for (size_t i = 0; i < count / 2; i++) {
            mam_row t = rows[i];
            rows[i] = rows[count - 1 - i];
            rows[count - 1 - i] = t;
        }
    }
    long index = r->backward ? total - n_hi - (long)count : n_lo;
    if (index < 0) index = 0;
    r->page(r->ud, STORAGE_OK, rows, count, total, index);
    free(rows);
    free(r);
}

void mam_page(storage *s, const char *domain, const char *username, const mam_page_query *q,
              mam_page_cb cb, void *ud)
{
    mam_req *r = req_new(ud);
    r->page = cb;
    r->backward = q->backward;
    char num[9][24];
    const int64_t vals[8] = {q->set_lo.us, q->set_lo.id, q->set_hi.us, q->set_hi.id,
                             q->page_lo.us, q->page_lo.id, q->page_hi.us, q->page_hi.id};
    for (int i = 0; i < 8; i++) snprintf(num[i], sizeof num[i], "%" PRId64, vals[i]);
    snprintf(num[8], sizeof num[8], "%u", q->limit);
    const char *v[13] = {domain, username, num[0], num[1], num[2], num[3], num[4], num[5],
                         num[6], num[7], num[8], q->with_bare, q->with_resource};
    int stmt = q->with_resource ? MAM_PAGE_FULL_FWD : q->with_bare ? MAM_PAGE_BARE_FWD : MAM_PAGE_ALL_FWD;
    if (q->backward) stmt++;
    storage_exec(s, &mam_stmts[stmt], v, on_page, r);
}

/* ---- retention ---- */

static void on_count(void *ud, storage_status st, const PGresult *res)
{
    mam_req *r = ud;
    r->count(r->ud, st, st == STORAGE_OK ? storage_affected(res) : 0);
    free(r);
}

void mam_trim_user(storage *s, const char *domain, const char *username, unsigned keep,
                   void (*cb)(void *ud, storage_status st, long deleted), void *ud)
{
    mam_req *r = req_new(ud);
    r->count = cb;
    char off[24];
    snprintf(off, sizeof off, "%u", keep ? keep - 1 : 0);
    const char *v[3] = {domain, username, off};
    storage_exec(s, &mam_stmts[MAM_TRIM], v, on_count, r);
}

void mam_expire(storage *s, unsigned max_days, unsigned batch,
                void (*cb)(void *ud, storage_status st, long deleted), void *ud)
{
    mam_req *r = req_new(ud);
    r->count = cb;
    char days[24], lim[24];
    snprintf(days, sizeof days, "%u", max_days);
    snprintf(lim, sizeof lim, "%u", batch);
    const char *v[2] = {days, lim};
    storage_exec(s, &mam_stmts[MAM_EXPIRE], v, on_count, r);
}
