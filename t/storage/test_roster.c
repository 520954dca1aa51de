/* Rosters against a real database: put/load with every field and groups,
 * version increments, replace, remove, NOT_FOUND, count. */
#include "t/storage/helpers.h"

#include "storage/accounts.h"
#include "storage/roster.h"

typedef struct {
    char contact[128], name[128], stanza[256];
    int has_name, has_stanza;
    roster_subscription sub;
    int ask_out, pending_in, approved;
    char groups[8][64];
    size_t ngroups;
} saved_row;

typedef struct {
    int done;
    storage_status st;
    int64_t version;
    saved_row rows[16];
    size_t n;
    long count;
} roster_res;

static void on_load(void *ud, storage_status st, const roster_row *rows, size_t n, int64_t version)
{
    roster_res *r = ud;
    note_callback();
    r->done++;
    r->st = st;
    r->version = version;
    r->n = n;
    for (size_t i = 0; i < n && i < 16; i++) {
        saved_row *s = &r->rows[i];
        memset(s, 0, sizeof *s);
        snprintf(s->contact, sizeof s->contact, "%s", rows[i].contact);
        s->has_name = rows[i].name != NULL;
        snprintf(s->name, sizeof s->name, "%s", rows[i].name ? rows[i].name : "");
        s->has_stanza = rows[i].pending_in_stanza != NULL;
        snprintf(s->stanza, sizeof s->stanza, "%s", rows[i].pending_in_stanza ? rows[i].pending_in_stanza : "");
        s->sub = rows[i].subscription;
        s->ask_out = rows[i].ask_out;
        s->pending_in = rows[i].pending_in;
        s->approved = rows[i].approved;
        s->ngroups = rows[i].ngroups;
        for (size_t g = 0; g < rows[i].ngroups && g < 8; g++)
            snprintf(s->groups[g], sizeof s->groups[g], "%s", rows[i].groups[g]);
    }
}

static void on_write(void *ud, storage_status st, int64_t version)
{
    roster_res *r = ud;
    note_callback();
    r->done++;
    r->st = st;
    r->version = version;
}

static void on_count(void *ud, storage_status st, long count)
{
    roster_res *r = ud;
    note_callback();
    r->done++;
    r->st = st;
    r->count = count;
}

static storage *s;
static const char *domain;

static int load(roster_res *r)
{
    memset(r, 0, sizeof *r);
    CALL(roster_load(s, domain, "romeo", on_load, r));
    WAIT_FOR(r->done, 20000);
    return r->done == 1 ? (int)r->st : -1;
}

static int put(const roster_row *row, int64_t *version)
{
    roster_res r = {0};
    CALL(roster_put(s, domain, "romeo", row, on_write, &r));
    WAIT_FOR(r.done, 20000);
    *version = r.version;
    return r.done == 1 ? (int)r.st : -1;
}

static int rm(const char *user, const char *contact, int64_t *version)
{
    roster_res r = {0};
    CALL(roster_remove(s, domain, user, contact, on_write, &r));
    WAIT_FOR(r.done, 20000);
    *version = r.version;
    return r.done == 1 ? (int)r.st : -1;
}

static long count(const char *user, int *st)
{
    roster_res r = {0};
    CALL(roster_count(s, domain, user, on_count, &r));
    WAIT_FOR(r.done, 20000);
    *st = r.done == 1 ? (int)r.st : -1;
    return r.count;
}

int main(void)
{
    const char *db = test_db();
    test_loop_init();
    migrate_or_bail(db);
    s = ready_storage(db);
    domain = test_domain("roster");
    status_res cr = {0};
    CALL(account_create(s, domain, "romeo", "pw", 4096, 0, on_status, &cr));
    is_int(wait_status(&cr), STORAGE_OK, "account romeo");

    roster_res r;
    is_int(load(&r), STORAGE_OK, "load an empty roster");
    is_int(r.n, 0, "no items");
    is_int(r.version, 0, "version 0 before any change");

    const char *groups[] = {"Friends", "Family \"close\"", "back\\slash, comma {brace}", "NULL", ""};
    roster_row juliet = {
        .contact = "juliet@example.com", .name = "Juliet Capulet", .subscription = SUB_BOTH,
        .ask_out = 1, .pending_in = 1, .approved = 1,
        .pending_in_stanza = "<presence type='subscribe' from='juliet@example.com'/>",
        .groups = groups, .ngroups = 5,
    };
    int64_t v1 = 0, v2 = 0, v3 = 0, v4 = 0;
    is_int(put(&juliet, &v1), STORAGE_OK, "put juliet");
    is_int(v1, 1, "the first change makes version 1");
    roster_row nurse = {.contact = "nurse@example.com", .subscription = SUB_TO};
    is_int(put(&nurse, &v2), STORAGE_OK, "put the nurse (no name, no groups)");
    is_int(v2, 2, "version 2");

    is_int(load(&r), STORAGE_OK, "load");
    is_int(r.version, 2, "loaded version 2");
    is_int(r.n, 2, "two items");
    saved_row *j = &r.rows[0], *n = &r.rows[1];
    is_str(j->contact, "juliet@example.com", "contact");
    is_str(j->name, "Juliet Capulet", "name");
    is_int(j->sub, SUB_BOTH, "subscription both");
    ok(j->ask_out && j->pending_in && j->approved, "ask_out, pending_in and approved kept");
    ok(j->has_stanza && strcmp(j->stanza, juliet.pending_in_stanza) == 0, "pending subscribe stanza kept");
    is_int(j->ngroups, 5, "five groups");
    int same = j->ngroups == 5;
    for (size_t g = 0; same && g < 5; g++) same = strcmp(j->groups[g], groups[g]) == 0;
    ok(same, "groups with quotes, backslashes, commas, braces, 'NULL' and empty come back the same");
    is_str(n->contact, "nurse@example.com", "second contact");
    ok(!n->has_name, "no name is NULL");
    ok(!n->has_stanza, "no stanza is NULL");
    is_int(n->sub, SUB_TO, "subscription to");
    ok(!n->ask_out && !n->pending_in && !n->approved, "flags false");
    is_int(n->ngroups, 0, "no groups");

    /* Replace */
    roster_row juliet2 = {.contact = "juliet@example.com", .name = "J", .subscription = SUB_FROM,
                          .groups = groups, .ngroups = 1};
    is_int(put(&juliet2, &v3), STORAGE_OK, "replace juliet");
    is_int(v3, 3, "version 3");
    is_int(load(&r), STORAGE_OK, "load after replace");
    is_int(r.n, 2, "still two items");
    ok(strcmp(r.rows[0].name, "J") == 0 && r.rows[0].sub == SUB_FROM && !r.rows[0].ask_out
       && !r.rows[0].pending_in && !r.rows[0].approved && !r.rows[0].has_stanza && r.rows[0].ngroups == 1,
       "every field replaced");

    int st;
    is_int(count("romeo", &st), 2, "count 2");
    is_int(st, STORAGE_OK, "count ok");

    is_int(rm("romeo", "nurse@example.com", &v4), STORAGE_OK, "remove the nurse");
    is_int(v4, 4, "version 4");
    int64_t vx = 0;
    is_int(rm("romeo", "nurse@example.com", &vx), STORAGE_NOT_FOUND, "removing her again: not found");
    is_int(load(&r), STORAGE_OK, "load after remove");
    is_int(r.version, 4, "a failed remove does not bump the version");
    is_int(r.n, 1, "one item left");
    is_int(count("romeo", &st), 1, "count 1");

    is_int(rm("nobody", "juliet@example.com", &vx), STORAGE_NOT_FOUND, "remove for an unknown user: not found");
    roster_res r2 = {0};
    CALL(roster_load(s, domain, "nobody", on_load, &r2));
    WAIT_FOR(r2.done, 20000);
    is_int(r2.st, STORAGE_NOT_FOUND, "load of an unknown user: not found");
    r2.done = 0;
    CALL(roster_put(s, domain, "nobody", &nurse, on_write, &r2));
    WAIT_FOR(r2.done, 20000);
    is_int(r2.st, STORAGE_NOT_FOUND, "put for an unknown user: not found");
    count("nobody", &st);
    is_int(st, STORAGE_NOT_FOUND, "count of an unknown user: not found");

    /* Many changes in flight for one user: versions come back in order. */
    {
        enum { N = 50 };
        roster_res w[N];
        memset(w, 0, sizeof w);
        char contacts[N][32];
        for (int i = 0; i < N; i++) {
            snprintf(contacts[i], sizeof contacts[i], "c%d@example.net", i);
            roster_row row = {.contact = contacts[i], .subscription = SUB_NONE};
            CALL(roster_put(s, domain, "romeo", &row, on_write, &w[i]));
        }
        int all = 0;
        for (int tries = 0; tries < 200 && !all; tries++) {
            WAIT_FOR(w[N - 1].done, 100);
            all = 1;
            for (int i = 0; i < N; i++) all &= w[i].done == 1;
        }
        int inorder = 1;
        for (int i = 0; i < N; i++) inorder &= w[i].st == STORAGE_OK && w[i].version == 5 + i;
        ok(all && inorder, "50 puts in flight: versions 5..54 in the order of the calls");
    }

    is_int(sync_callbacks, 0, "no callback ran inside the call that made its request");
    free_storage(s);
    test_loop_done();
    return tap_done();
}
