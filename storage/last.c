/* last: last activity per account (see last.h). Times come from the
 * database's clock both when written and when read, so the seconds do not
 * depend on the sm's clock. */
#include <stdlib.h>

#include "storage/last.h"
#include "storage/modules.h"
#include "storage/query.h"

enum { LAST_SET, LAST_GET };

const storage_stmt last_stmts[] = {
    [LAST_SET] = {"last_set",
        "INSERT INTO last_activity (domain, username, logout_at, status) VALUES ($1, $2, now(), $3)"
        " ON CONFLICT (domain, username) DO UPDATE SET logout_at = EXCLUDED.logout_at, status = EXCLUDED.status",
        3, 2, 1},   /* batch: group-committed */
    [LAST_GET] = {"last_get",
        "SELECT greatest(0, floor(extract(epoch FROM now() - logout_at)))::bigint, status"
        " FROM last_activity WHERE domain = $1 AND username = $2",
        2, 2},
    {NULL, NULL, 0, 0},
};

typedef struct {
    storage_status_cb set;
    last_get_cb get;
    void *ud;
} last_req;

static last_req *req_new(void *ud)
{
    last_req *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->ud = ud;
    return r;
}

static void on_set(void *ud, storage_status st, const PGresult *res)
{
    (void)res;
    last_req *r = ud;
    storage_status_cb cb = r->set;
    void *cud = r->ud;
    free(r);
    cb(cud, st);
}

static void on_get(void *ud, storage_status st, const PGresult *res)
{
    last_req *r = ud;
    last_get_cb cb = r->get;
    void *cud = r->ud;
    free(r);
    if (st != STORAGE_OK) {
        cb(cud, st, 0, NULL);
        return;
    }
    if (PQntuples(res) < 1) {
        cb(cud, STORAGE_NOT_FOUND, 0, NULL);
        return;
    }
    cb(cud, STORAGE_OK, storage_get_int64(res, 0, 0, 0), storage_get_text(res, 0, 1));
}

void last_set(storage *s, const char *domain, const char *username, const char *status,
              storage_status_cb cb, void *ud)
{
    last_req *r = req_new(ud);
    r->set = cb;
    const char *v[3] = {domain, username, status};
    storage_exec(s, &last_stmts[LAST_SET], v, on_set, r);
}

void last_get(storage *s, const char *domain, const char *username, last_get_cb cb, void *ud)
{
    last_req *r = req_new(ud);
    r->get = cb;
    const char *v[2] = {domain, username};
    storage_exec(s, &last_stmts[LAST_GET], v, on_get, r);
}
