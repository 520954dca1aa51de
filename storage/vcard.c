/* vcard: vCards and the user directory search (see vcard.h).
 *
 * Search is a case-insensitive prefix match. The field that drives the
 * query (the first given one of email, nick, last, first) is matched as a
 * range, lower(col) ~>=~ p AND lower(col) ~<~ p || U+10FFFF, which the
 * (domain, lower(col) text_pattern_ops) indexes of migration 002 serve even
 * with a generic plan; the other fields filter the rows found. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "storage/modules.h"
#include "storage/query.h"
#include "storage/vcard.h"

enum {
    VCARD_GET,
    VCARD_PUT,
    VCARD_DELETE,
    VCARD_PHOTO,
    VCARD_SEARCH_EMAIL,
    VCARD_SEARCH_NICK,
    VCARD_SEARCH_LAST,
    VCARD_SEARCH_FIRST,
};

/* Parameters of the search: $1 domain, $2 first, $3 last, $4 nick, $5 email, $6 limit. */
#define SEARCH_FILTERS                                                        \
    " AND ($2::text IS NULL OR starts_with(lower(given), lower($2::text)))"   \
    " AND ($3::text IS NULL OR starts_with(lower(family), lower($3::text)))"  \
    " AND ($4::text IS NULL OR starts_with(lower(nickname), lower($4::text)))" \
    " AND ($5::text IS NULL OR starts_with(lower(email), lower($5::text)))"
#define SEARCH_SQL(col, p)                                                                         \
    "SELECT username, given, family, nickname, email FROM vcards WHERE domain = $1"                \
    " AND lower(" col ") ~>=~ lower($" p "::text) AND lower(" col ") ~<~ (lower($" p "::text) || chr(1114111))" \
    SEARCH_FILTERS " ORDER BY username LIMIT $6::bigint"

const storage_stmt vcard_stmts[] = {
    [VCARD_GET] = {"vcard_get", "SELECT vcard FROM vcards WHERE domain = $1 AND username = $2", 2, 2},
    [VCARD_PUT] = {"vcard_put",
        "INSERT INTO vcards (domain, username, vcard, fn, given, family, nickname, email, photo_hash)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (domain, username) DO UPDATE SET vcard = EXCLUDED.vcard, fn = EXCLUDED.fn,"
        "   given = EXCLUDED.given, family = EXCLUDED.family, nickname = EXCLUDED.nickname,"
        "   email = EXCLUDED.email, photo_hash = EXCLUDED.photo_hash, updated_at = now()",
        9, 2},
    [VCARD_DELETE] = {"vcard_delete", "DELETE FROM vcards WHERE domain = $1 AND username = $2", 2, 2},
    [VCARD_PHOTO] = {"vcard_photo", "SELECT photo_hash FROM vcards WHERE domain = $1 AND username = $2", 2, 2},
    [VCARD_SEARCH_EMAIL] = {"vcard_search_email", SEARCH_SQL("email", "5"), 6, 0},
    [VCARD_SEARCH_NICK] = {"vcard_search_nick", SEARCH_SQL("nickname", "4"), 6, 0},
    [VCARD_SEARCH_LAST] = {"vcard_search_last", SEARCH_SQL("family", "3"), 6, 0},
    [VCARD_SEARCH_FIRST] = {"vcard_search_first", SEARCH_SQL("given", "2"), 6, 0},
    {NULL, NULL, 0, 0},
};

typedef struct {
    void (*text)(void *ud, storage_status st, const char *text);
    storage_status_cb status;
    void (*search)(void *ud, storage_status st, const vcard_search_row *rows, size_t n);
    void *ud;
} vcard_req;

static vcard_req *req_new(void *ud)
{
    vcard_req *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->ud = ud;
    return r;
}

static void on_get(void *ud, storage_status st, const PGresult *res)
{
    vcard_req *r = ud;
    void (*cb)(void *, storage_status, const char *) = r->text;
    void *cud = r->ud;
    free(r);
    const char *xml = NULL;
    if (st == STORAGE_OK) {
        xml = PQntuples(res) > 0 ? storage_get_text(res, 0, 0) : NULL;
        if (!xml) st = STORAGE_NOT_FOUND;
    }
    cb(cud, st, xml);
}

static void on_photo(void *ud, storage_status st, const PGresult *res)
{
    vcard_req *r = ud;
    void (*cb)(void *, storage_status, const char *) = r->text;
    void *cud = r->ud;
    free(r);
    cb(cud, st, st == STORAGE_OK && PQntuples(res) > 0 ? storage_get_text(res, 0, 0) : NULL);
}

static void on_status(void *ud, storage_status st, const PGresult *res)
{
    (void)res;
    vcard_req *r = ud;
    storage_status_cb cb = r->status;
    void *cud = r->ud;
    free(r);
    cb(cud, st);
}

static void on_search(void *ud, storage_status st, const PGresult *res)
{
    vcard_req *r = ud;
    void (*cb)(void *, storage_status, const vcard_search_row *, size_t) = r->search;
    void *cud = r->ud;
    free(r);
    if (st != STORAGE_OK) {
        cb(cud, st, NULL, 0);
        return;
    }
    int n = PQntuples(res);
    vcard_search_row *rows = n > 0 ? calloc((size_t)n, sizeof *rows) : NULL;
    if (n > 0 && !rows) abort();
    for (int i = 0; i < n; i++) {
        rows[i].username = storage_get_text(res, i, 0);
        rows[i].first = storage_get_text(res, i, 1);
        rows[i].last = storage_get_text(res, i, 2);
        rows[i].nick = storage_get_text(res, i, 3);
        rows[i].email = storage_get_text(res, i, 4);
    }
    cb(cud, STORAGE_OK, rows, n > 0 ? (size_t)n : 0);
    free(rows);
}

void vcard_get(storage *s, const char *domain, const char *username,
               void (*cb)(void *ud, storage_status st, const char *xml), void *ud)
{
    vcard_req *r = req_new(ud);
    r->text = cb;
    const char *v[2] = {domain, username};
    storage_exec(s, &vcard_stmts[VCARD_GET], v, on_get, r);
}

void vcard_put(storage *s, const char *domain, const char *username, const char *xml,
               const vcard_fields *f, storage_status_cb cb, void *ud)
{
    vcard_req *r = req_new(ud);
    r->status = cb;
    vcard_fields none = {0};
    if (!f) f = &none;
    const char *v[9] = {domain, username, xml, f->fn, f->given, f->family, f->nickname, f->email, f->photo_hash};
    storage_exec(s, &vcard_stmts[VCARD_PUT], v, on_status, r);
}

void vcard_delete(storage *s, const char *domain, const char *username, storage_status_cb cb, void *ud)
{
    vcard_req *r = req_new(ud);
    r->status = cb;
    const char *v[2] = {domain, username};
    storage_exec(s, &vcard_stmts[VCARD_DELETE], v, on_status, r);
}

void vcard_photo_hash(storage *s, const char *domain, const char *username,
                      void (*cb)(void *ud, storage_status st, const char *hash), void *ud)
{
    vcard_req *r = req_new(ud);
    r->text = cb;
    const char *v[2] = {domain, username};
    storage_exec(s, &vcard_stmts[VCARD_PHOTO], v, on_photo, r);
}

static const char *nonempty(const char *s) { return s && *s ? s : NULL; }

void vcard_search(storage *s, const char *domain, const vcard_search_query *q, unsigned limit,
                  void (*cb)(void *ud, storage_status st, const vcard_search_row *rows, size_t n), void *ud)
{
    vcard_req *r = req_new(ud);
    r->search = cb;
    const char *first = nonempty(q->first), *last = nonempty(q->last), *nick = nonempty(q->nick),
               *email = nonempty(q->email);
    int which = email ? VCARD_SEARCH_EMAIL : nick ? VCARD_SEARCH_NICK : last ? VCARD_SEARCH_LAST
              : first ? VCARD_SEARCH_FIRST : -1;
    if (which < 0) {
        log_error("storage: vcard_search in %s without any field", domain);
        storage_complete_later(s, on_search, r, STORAGE_ERROR);
        return;
    }
    char lim[24];
    snprintf(lim, sizeof lim, "%u", limit);
    const char *v[6] = {domain, first, last, nick, email, lim};
    storage_exec(s, &vcard_stmts[which], v, on_search, r);
}
