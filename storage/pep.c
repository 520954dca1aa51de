/* pep: storage of personal eventing nodes and items (see pep.h and
 * migrations/005_pep.sql). */
#include "storage/pep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "storage/modules.h"
#include "storage/query.h"

enum { PEP_NODE_GET, PEP_NODES, PEP_LAST, PEP_ITEMS, PEP_PUBLISH, PEP_CREATE, PEP_CONFIGURE, PEP_DELETE,
       PEP_PURGE, PEP_RETRACT };

/* Queries that return rows share one layout:
 * node, access_model, max_items, persist_items, whitelist, item_id, payload. */
#define PEP_NODE_COLS "n.node, n.access_model, n.max_items, n.persist_items, n.whitelist"

const storage_stmt pep_stmts[] = {
    [PEP_NODE_GET] = {"pep_node_get",
        "SELECT " PEP_NODE_COLS ", NULL, NULL FROM pep_nodes n"
        " WHERE n.domain = $1 AND n.username = $2 AND n.node = $3",
        3, 2},
    [PEP_NODES] = {"pep_nodes",
        "SELECT " PEP_NODE_COLS ", NULL, NULL FROM pep_nodes n"
        " WHERE n.domain = $1 AND n.username = $2 ORDER BY n.node",
        2, 2},
    [PEP_LAST] = {"pep_last",
        "SELECT " PEP_NODE_COLS ", i.item_id, i.payload FROM pep_nodes n"
        " LEFT JOIN LATERAL (SELECT p.item_id, p.payload FROM pep_items p"
        "   WHERE p.domain = n.domain AND p.username = n.username AND p.node = n.node"
        "   ORDER BY p.seq DESC LIMIT 1) i ON true"
        " WHERE n.domain = $1 AND n.username = $2 ORDER BY n.node",
        2, 2},
    [PEP_ITEMS] = {"pep_items",
        "SELECT " PEP_NODE_COLS ", i.item_id, i.payload FROM pep_nodes n"
        " LEFT JOIN pep_items i ON i.domain = n.domain AND i.username = n.username AND i.node = n.node"
        "   AND ($4::text[] IS NULL OR i.item_id = ANY ($4::text[]))"
        " WHERE n.domain = $1 AND n.username = $2 AND n.node = $3"
        " ORDER BY i.seq DESC NULLS LAST LIMIT $5::bigint",
        5, 2},
    [PEP_PUBLISH] = {"pep_publish",
        "SELECT switchboard_pep_publish($1, $2, $3, $4, $5, $6, $7::integer, $8::boolean, $9::bigint)",
        9, 2},
    [PEP_CREATE] = {"pep_create",
        "INSERT INTO pep_nodes (domain, username, node, access_model, max_items, persist_items)"
        " SELECT $1, $2, $3, $4, $5::integer, $6::boolean"
        " WHERE (SELECT count(*) FROM pep_nodes WHERE domain = $1 AND username = $2) < $7::bigint"
        " RETURNING 1",
        7, 2},
    [PEP_CONFIGURE] = {"pep_configure",
        "WITH u AS (UPDATE pep_nodes SET access_model = $4, max_items = $5::integer, persist_items = $6::boolean,"
        "             whitelist = $7::text[]"
        "           WHERE domain = $1 AND username = $2 AND node = $3 RETURNING 1),"
        " d AS (DELETE FROM pep_items WHERE domain = $1 AND username = $2 AND node = $3"
        "       AND (NOT $6::boolean OR seq NOT IN (SELECT seq FROM pep_items"
        "            WHERE domain = $1 AND username = $2 AND node = $3 ORDER BY seq DESC LIMIT $5::integer)))"
        " SELECT count(*) FROM u",
        7, 2},
    [PEP_DELETE] = {"pep_delete",
        "DELETE FROM pep_nodes WHERE domain = $1 AND username = $2 AND node = $3 RETURNING 1",
        3, 2},
    [PEP_PURGE] = {"pep_purge",
        "WITH d AS (DELETE FROM pep_items WHERE domain = $1 AND username = $2 AND node = $3)"
        " SELECT count(*) FROM pep_nodes WHERE domain = $1 AND username = $2 AND node = $3",
        3, 2},
    [PEP_RETRACT] = {"pep_retract",
        "WITH d AS (DELETE FROM pep_items WHERE domain = $1 AND username = $2 AND node = $3 AND item_id = $4"
        "           RETURNING 1)"
        " SELECT EXISTS (SELECT 1 FROM pep_nodes WHERE domain = $1 AND username = $2 AND node = $3),"
        "        (SELECT count(*) FROM d)",
        4, 2},
    {NULL, NULL, 0, 0},
};

typedef struct pep_req {
    pep_rows_cb rows;
    storage_status_cb status;
    void (*published)(void *ud, storage_status st, int created);
    int kind;
    void *ud;
} pep_req;

static pep_req *req_new(void *ud)
{
    pep_req *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->ud = ud;
    return r;
}

static void on_rows(void *ud, storage_status st, const PGresult *res)
{
    pep_req *r = ud;
    pep_rows_cb cb = r->rows;
    void *cud = r->ud;
    free(r);
    if (st != STORAGE_OK) {
        cb(cud, st, NULL, 0);
        return;
    }
    int n = PQntuples(res);
    pep_row *rows = calloc((size_t)n + 1, sizeof *rows);
    char ***wl = calloc((size_t)n + 1, sizeof *wl);
    if (!rows || !wl) abort();
    for (int i = 0; i < n; i++) {
        pep_row *row = &rows[i];
        row->node = storage_get_text(res, i, 0);
        row->cfg.access_model = storage_get_text(res, i, 1);
        row->cfg.max_items = (int)storage_get_int64(res, i, 2, 1);
        row->cfg.persist_items = storage_get_bool(res, i, 3);
        wl[i] = storage_get_text_array(res, i, 4, &row->nwhitelist);
        row->whitelist = (const char *const *)wl[i];
        row->item_id = storage_get_text(res, i, 5);
        row->payload = storage_get_text(res, i, 6);
    }
    cb(cud, STORAGE_OK, rows, (size_t)n);
    for (int i = 0; i < n; i++) free(wl[i]);
    free(wl);
    free(rows);
}

static void rows_query(storage *s, int which, const char *const *v, pep_rows_cb cb, void *ud)
{
    pep_req *r = req_new(ud);
    r->rows = cb;
    storage_exec(s, &pep_stmts[which], v, on_rows, r);
}

void pep_node_get(storage *s, const char *domain, const char *username, const char *node, pep_rows_cb cb,
                  void *ud)
{
    const char *v[3] = {domain, username, node};
    rows_query(s, PEP_NODE_GET, v, cb, ud);
}

void pep_nodes_list(storage *s, const char *domain, const char *username, pep_rows_cb cb, void *ud)
{
    const char *v[2] = {domain, username};
    rows_query(s, PEP_NODES, v, cb, ud);
}

void pep_last_items(storage *s, const char *domain, const char *username, pep_rows_cb cb, void *ud)
{
    const char *v[2] = {domain, username};
    rows_query(s, PEP_LAST, v, cb, ud);
}

void pep_items_get(storage *s, const char *domain, const char *username, const char *node,
                   const char *const *ids, size_t nids, unsigned max, pep_rows_cb cb, void *ud)
{
    char *arr = nids ? storage_text_array_param(ids, nids) : NULL;
    char lim[24];
    snprintf(lim, sizeof lim, "%u", max);
    const char *v[5] = {domain, username, node, arr, max ? lim : NULL};
    rows_query(s, PEP_ITEMS, v, cb, ud);
    free(arr);
}

static void on_published(void *ud, storage_status st, const PGresult *res)
{
    pep_req *r = ud;
    void (*cb)(void *, storage_status, int) = r->published;
    void *cud = r->ud;
    free(r);
    int created = 0;
    if (st == STORAGE_OK) {
        long rc = (long)storage_get_int64(res, 0, 0, -3);
        if (rc == -1) st = STORAGE_QUOTA;
        else if (rc == -2) st = STORAGE_NOT_FOUND;
        else if (rc < 0) st = STORAGE_ERROR;
        else created = rc == 1;
    }
    cb(cud, st, created);
}

void pep_publish(storage *s, const char *domain, const char *username, const char *node, const char *item_id,
                 const char *payload, const pep_node_cfg *cfg, unsigned max_nodes,
                 void (*cb)(void *ud, storage_status st, int created), void *ud)
{
    pep_req *r = req_new(ud);
    r->published = cb;
    char maxi[24], maxn[24];
    snprintf(maxi, sizeof maxi, "%d", cfg->max_items > 0 ? cfg->max_items : 1);
    snprintf(maxn, sizeof maxn, "%u", max_nodes);
    const char *v[9] = {domain, username, node, item_id, payload, cfg->access_model, maxi,
                        cfg->persist_items ? "t" : "f", maxn};
    storage_exec(s, &pep_stmts[PEP_PUBLISH], v, on_published, r);
}

/* Status from a statement returning rows (PEP_CREATE, PEP_DELETE) or one count (the others). */
enum { K_ROWS_EXIST = 0, K_ROWS_QUOTA, K_COUNT, K_RETRACT };

static void on_status(void *ud, storage_status st, const PGresult *res)
{
    pep_req *r = ud;
    storage_status_cb cb = r->status;
    void *cud = r->ud;
    int kind = r->kind;
    free(r);
    if (st == STORAGE_OK) {
        switch (kind) {
        case K_ROWS_EXIST:
            if (PQntuples(res) == 0) st = STORAGE_NOT_FOUND;
            break;
        case K_ROWS_QUOTA:
            if (PQntuples(res) == 0) st = STORAGE_QUOTA;
            break;
        case K_COUNT:
            if (storage_get_int64(res, 0, 0, 0) == 0) st = STORAGE_NOT_FOUND;
            break;
        case K_RETRACT:
            if (!storage_get_bool(res, 0, 0)) st = STORAGE_NOT_FOUND;
            else if (storage_get_int64(res, 0, 1, 0) == 0) st = STORAGE_CONFLICT;
            break;
        }
    }
    cb(cud, st);
}

static void status_query(storage *s, int which, int kind, const char *const *v, storage_status_cb cb, void *ud)
{
    pep_req *r = req_new(ud);
    r->status = cb;
    r->kind = kind;
    storage_exec(s, &pep_stmts[which], v, on_status, r);
}

void pep_node_create(storage *s, const char *domain, const char *username, const char *node,
                     const pep_node_cfg *cfg, unsigned max_nodes, storage_status_cb cb, void *ud)
{
    char maxi[24], maxn[24];
    snprintf(maxi, sizeof maxi, "%d", cfg->max_items > 0 ? cfg->max_items : 1);
    snprintf(maxn, sizeof maxn, "%u", max_nodes);
    const char *v[7] = {domain, username, node, cfg->access_model, maxi, cfg->persist_items ? "t" : "f", maxn};
    status_query(s, PEP_CREATE, K_ROWS_QUOTA, v, cb, ud);
}

void pep_node_configure(storage *s, const char *domain, const char *username, const char *node,
                        const pep_node_cfg *cfg, const char *const *whitelist, size_t nwhitelist,
                        storage_status_cb cb, void *ud)
{
    char maxi[24];
    snprintf(maxi, sizeof maxi, "%d", cfg->max_items > 0 ? cfg->max_items : 1);
    char *wl = storage_text_array_param(whitelist, nwhitelist);
    const char *v[7] = {domain, username, node, cfg->access_model, maxi, cfg->persist_items ? "t" : "f", wl};
    status_query(s, PEP_CONFIGURE, K_COUNT, v, cb, ud);
    free(wl);
}

void pep_node_delete(storage *s, const char *domain, const char *username, const char *node,
                     storage_status_cb cb, void *ud)
{
    const char *v[3] = {domain, username, node};
    status_query(s, PEP_DELETE, K_ROWS_EXIST, v, cb, ud);
}

void pep_node_purge(storage *s, const char *domain, const char *username, const char *node,
                    storage_status_cb cb, void *ud)
{
    const char *v[3] = {domain, username, node};
    status_query(s, PEP_PURGE, K_COUNT, v, cb, ud);
}

void pep_retract(storage *s, const char *domain, const char *username, const char *node, const char *item_id,
                 storage_status_cb cb, void *ud)
{
    const char *v[4] = {domain, username, node, item_id};
    status_query(s, PEP_RETRACT, K_RETRACT, v, cb, ud);
}
