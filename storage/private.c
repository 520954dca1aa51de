/* private: private XML storage (see private.h). A set of several
 * namespaces is one statement: the namespace quota is checked and every
 * namespace written in the same transaction, or nothing is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "storage/modules.h"
#include "storage/private.h"
#include "storage/query.h"

enum { PRIVATE_GET, PRIVATE_PUT };

const storage_stmt private_stmts[] = {
    [PRIVATE_GET] = {"private_get",
        "SELECT xml FROM private_storage WHERE domain = $1 AND username = $2 AND namespace = $3", 3, 2},
    [PRIVATE_PUT] = {"private_put",
        "WITH new AS (SELECT * FROM unnest($3::text[], $4::text[]) AS n(namespace, xml)),"
        " kept AS (SELECT count(*) AS c FROM private_storage p WHERE p.domain = $1 AND p.username = $2"
        "          AND p.namespace NOT IN (SELECT namespace FROM new))"
        " INSERT INTO private_storage (domain, username, namespace, xml)"
        " SELECT $1, $2, new.namespace, new.xml FROM new, kept"
        "  WHERE kept.c + (SELECT count(*) FROM new) <= $5::bigint"
        " ON CONFLICT (domain, username, namespace) DO UPDATE SET xml = EXCLUDED.xml, updated_at = now()"
        " RETURNING 1",
        5, 2},
    {NULL, NULL, 0, 0},
};

typedef struct {
    void (*get)(void *ud, storage_status st, const char *xml);
    storage_status_cb put;
    size_t n;
    void *ud;
} private_req;

static private_req *req_new(void *ud)
{
    private_req *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->ud = ud;
    return r;
}

static void on_get(void *ud, storage_status st, const PGresult *res)
{
    private_req *r = ud;
    void (*cb)(void *, storage_status, const char *) = r->get;
    void *cud = r->ud;
    free(r);
    cb(cud, st, st == STORAGE_OK && PQntuples(res) > 0 ? storage_get_text(res, 0, 0) : NULL);
}

static void on_put(void *ud, storage_status st, const PGresult *res)
{
    private_req *r = ud;
    storage_status_cb cb = r->put;
    void *cud = r->ud;
    size_t n = r->n;
    free(r);
    if (st == STORAGE_OK && (size_t)PQntuples(res) != n) st = STORAGE_QUOTA;
    cb(cud, st);
}

void private_get(storage *s, const char *domain, const char *username, const char *ns,
                 void (*cb)(void *ud, storage_status st, const char *xml), void *ud)
{
    private_req *r = req_new(ud);
    r->get = cb;
    const char *v[3] = {domain, username, ns};
    storage_exec(s, &private_stmts[PRIVATE_GET], v, on_get, r);
}

void private_put(storage *s, const char *domain, const char *username, const char *const *namespaces,
                 const char *const *xml, size_t n, unsigned max_namespaces, storage_status_cb cb, void *ud)
{
    private_req *r = req_new(ud);
    r->put = cb;
    r->n = n;
    if (n == 0) {
        log_error("storage: private_put for %s@%s with nothing to store", username, domain);
        storage_complete_later(s, on_put, r, STORAGE_ERROR);
        return;
    }
    char *nss = storage_text_array_param(namespaces, n);
    char *xmls = storage_text_array_param(xml, n);
    char quota[24];
    snprintf(quota, sizeof quota, "%u", max_namespaces);
    const char *v[5] = {domain, username, nss, xmls, quota};
    storage_exec(s, &private_stmts[PRIVATE_PUT], v, on_put, r);
    free(nss);
    free(xmls);
}
