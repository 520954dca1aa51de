/* privacy: privacy lists and the default list (see privacy.h). A list is
 * replaced with its items by one SQL function (migration 003), so a change
 * is atomic; the callback runs after the commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "storage/modules.h"
#include "storage/privacy.h"
#include "storage/query.h"

enum { PRIVACY_LOAD, PRIVACY_PUT, PRIVACY_REMOVE, PRIVACY_DEFAULT, PRIVACY_NO_DEFAULT };

const storage_stmt privacy_stmts[] = {
    [PRIVACY_LOAD] = {"privacy_load",
        "SELECT l.name, d.list IS NOT NULL, i.ord, i.type, i.value, i.action, i.kinds"
        " FROM privacy_lists l"
        " LEFT JOIN privacy_defaults d ON d.domain = l.domain AND d.username = l.username AND d.list = l.name"
        " LEFT JOIN privacy_items i ON i.domain = l.domain AND i.username = l.username AND i.list = l.name"
        " WHERE l.domain = $1 AND l.username = $2"
        " ORDER BY l.name, i.ord",
        2, 2},
    [PRIVACY_PUT] = {"privacy_put",
        "SELECT switchboard_privacy_put($1, $2, $3, $4::boolean, $5::bigint[], $6::text[], $7::text[],"
        " $8::text[], $9::smallint[])",
        9, 2},
    [PRIVACY_REMOVE] = {"privacy_remove",
        "DELETE FROM privacy_lists WHERE domain = $1 AND username = $2 AND name = $3",
        3, 2},
    [PRIVACY_DEFAULT] = {"privacy_default",
        "INSERT INTO privacy_defaults (domain, username, list) VALUES ($1, $2, $3)"
        " ON CONFLICT (domain, username) DO UPDATE SET list = EXCLUDED.list",
        3, 2},
    [PRIVACY_NO_DEFAULT] = {"privacy_no_default",
        "DELETE FROM privacy_defaults WHERE domain = $1 AND username = $2",
        2, 2},
    {NULL, NULL, 0, 0},
};

typedef struct {
    privacy_load_cb load;
    storage_status_cb status;
    int affected_needed;    /* STORAGE_NOT_FOUND when no row was affected */
    void *ud;
} privacy_req;

static privacy_req *req_new(void *ud)
{
    privacy_req *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->ud = ud;
    return r;
}

static void on_load(void *ud, storage_status st, const PGresult *res)
{
    privacy_req *r = ud;
    privacy_load_cb cb = r->load;
    void *cud = r->ud;
    free(r);
    if (st != STORAGE_OK) {
        cb(cud, st, NULL, 0);
        return;
    }
    int n = PQntuples(res);
    privacy_list_row *lists = calloc((size_t)n + 1, sizeof *lists);
    privacy_item_row *items = calloc((size_t)n + 1, sizeof *items);
    if (!lists || !items) abort();
    size_t nl = 0;
    for (int i = 0; i < n; i++) {
        const char *name = storage_get_text(res, i, 0);
        if (!name) continue;
        if (!nl || strcmp(lists[nl - 1].name, name)) {
            lists[nl].name = name;
            lists[nl].is_default = storage_get_bool(res, i, 1);
            lists[nl].items = &items[i];
            lists[nl].nitems = 0;
            nl++;
        }
        if (PQgetisnull(res, i, 2)) continue;   /* a list without items */
        /* The items of a list are consecutive rows, from its first one. */
        privacy_list_row *l = &lists[nl - 1];
        privacy_item_row *it = (privacy_item_row *)&l->items[l->nitems];
        it->order = (unsigned long)storage_get_int64(res, i, 2, 0);
        it->type = storage_get_text(res, i, 3);
        it->value = storage_get_text(res, i, 4);
        const char *action = storage_get_text(res, i, 5);
        it->deny = action && !strcmp(action, "deny");
        it->kinds = (unsigned)storage_get_int64(res, i, 6, 0);
        l->nitems++;
    }
    cb(cud, STORAGE_OK, lists, nl);
    free(items);
    free(lists);
}

static void on_status(void *ud, storage_status st, const PGresult *res)
{
    privacy_req *r = ud;
    storage_status_cb cb = r->status;
    void *cud = r->ud;
    int need = r->affected_needed;
    free(r);
    if (st == STORAGE_OK && need && storage_affected(res) <= 0) st = STORAGE_NOT_FOUND;
    cb(cud, st);
}

static void on_put(void *ud, storage_status st, const PGresult *res)
{
    privacy_req *r = ud;
    storage_status_cb cb = r->status;
    void *cud = r->ud;
    free(r);
    if (st == STORAGE_OK && storage_get_int64(res, 0, 0, -2) == -2) st = STORAGE_NOT_FOUND;
    cb(cud, st);
}

void privacy_load(storage *s, const char *domain, const char *username, privacy_load_cb cb, void *ud)
{
    privacy_req *r = req_new(ud);
    r->load = cb;
    const char *v[2] = {domain, username};
    storage_exec(s, &privacy_stmts[PRIVACY_LOAD], v, on_load, r);
}

static int valid_type(const char *t)
{
    return !t || !strcmp(t, "jid") || !strcmp(t, "group") || !strcmp(t, "subscription");
}

void privacy_put_list(storage *s, const char *domain, const char *username, const privacy_list_row *list,
                      int make_default, storage_status_cb cb, void *ud)
{
    privacy_req *r = req_new(ud);
    r->status = cb;
    size_t n = list ? list->nitems : 0;
    int ok = list && list->name;
    for (size_t i = 0; ok && i < n; i++)
        ok = valid_type(list->items[i].type) && (!list->items[i].type) == (!list->items[i].value) &&
             list->items[i].kinds <= 15;
    if (!ok) {
        log_error("storage: privacy_put_list for %s@%s: invalid list", username, domain);
        storage_complete_later(s, on_put, r, STORAGE_ERROR);
        return;
    }
    /* Parallel arrays; '' stands for the NULL type and value of a fall-through item. */
    const char **ords = calloc(n + 1, sizeof *ords), **types = calloc(n + 1, sizeof *types);
    const char **values = calloc(n + 1, sizeof *values), **actions = calloc(n + 1, sizeof *actions);
    const char **kinds = calloc(n + 1, sizeof *kinds);
    char (*nums)[24] = calloc(2 * n + 1, sizeof *nums);
    if (!ords || !types || !values || !actions || !kinds || !nums) abort();
    for (size_t i = 0; i < n; i++) {
        const privacy_item_row *it = &list->items[i];
        snprintf(nums[2 * i], sizeof nums[0], "%lu", it->order);
        snprintf(nums[2 * i + 1], sizeof nums[0], "%u", it->kinds);
        ords[i] = nums[2 * i];
        kinds[i] = nums[2 * i + 1];
        types[i] = it->type ? it->type : "";
        values[i] = it->value ? it->value : "";
        actions[i] = it->deny ? "deny" : "allow";
    }
    char *a_ords = storage_text_array_param(ords, n), *a_types = storage_text_array_param(types, n);
    char *a_values = storage_text_array_param(values, n), *a_actions = storage_text_array_param(actions, n);
    char *a_kinds = storage_text_array_param(kinds, n);
    const char *v[9] = {domain, username, list->name, make_default ? "t" : "f", a_ords, a_types, a_values,
                        a_actions, a_kinds};
    storage_exec(s, &privacy_stmts[PRIVACY_PUT], v, on_put, r);
    free(a_ords);
    free(a_types);
    free(a_values);
    free(a_actions);
    free(a_kinds);
    free(nums);
    free(ords);
    free(types);
    free(values);
    free(actions);
    free(kinds);
}

void privacy_remove_list(storage *s, const char *domain, const char *username, const char *name,
                         storage_status_cb cb, void *ud)
{
    privacy_req *r = req_new(ud);
    r->status = cb;
    r->affected_needed = 1;
    const char *v[3] = {domain, username, name};
    storage_exec(s, &privacy_stmts[PRIVACY_REMOVE], v, on_status, r);
}

void privacy_set_default(storage *s, const char *domain, const char *username, const char *name,
                         storage_status_cb cb, void *ud)
{
    privacy_req *r = req_new(ud);
    r->status = cb;
    if (name) {
        const char *v[3] = {domain, username, name};
        storage_exec(s, &privacy_stmts[PRIVACY_DEFAULT], v, on_status, r);
    } else {
        const char *v[2] = {domain, username};
        storage_exec(s, &privacy_stmts[PRIVACY_NO_DEFAULT], v, on_status, r);
    }
}
