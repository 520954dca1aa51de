/* Offline messages against a real database: order, quota exactly at the
 * limit, expiry, delete up to an id, count, unknown users, 2000 stores in
 * flight answered in order (and group-committed), and the per-user counter
 * (offline_counters) equal to the stored rows after every step. */
#include <time.h>

#include "t/storage/helpers.h"

#include "storage/accounts.h"
#include "storage/offline.h"

typedef struct {
    int done;
    storage_status st;
    size_t n;
    int64_t ids[64];
    char stanzas[64][64];
    time_t stored_at[64], expire_at[64];
    long count;
} off_res;

static void on_fetch(void *ud, storage_status st, const offline_row *rows, size_t n)
{
    off_res *r = ud;
    note_callback();
    r->done++;
    r->st = st;
    r->n = n;
    for (size_t i = 0; i < n && i < 64; i++) {
        r->ids[i] = rows[i].id;
        snprintf(r->stanzas[i], sizeof r->stanzas[i], "%.*s", (int)rows[i].len, rows[i].stanza);
        r->stored_at[i] = rows[i].stored_at;
        r->expire_at[i] = rows[i].expire_at;
    }
}

static void on_count(void *ud, storage_status st, long count)
{
    off_res *r = ud;
    note_callback();
    r->done++;
    r->st = st;
    r->count = count;
}

static storage *s;
static const char *domain;
static const char *dbinfo;

/* The user's counter, or -1 without a counter row. */
static long long counter(const char *user)
{
    PGconn *pg = db_connect(dbinfo);
    const char *p[2] = {domain, user};
    long long v = db_value(pg, "SELECT coalesce((SELECT stored FROM offline_counters WHERE domain=$1 AND username=$2), -1)",
                           2, p);
    PQfinish(pg);
    return v;
}

/* 1 when the counter equals the user's rows in offline_messages. */
static int counter_exact(const char *user)
{
    PGconn *pg = db_connect(dbinfo);
    const char *p[2] = {domain, user};
    long long rows = db_value(pg, "SELECT count(*) FROM offline_messages WHERE domain=$1 AND username=$2", 2, p);
    long long c = db_value(pg, "SELECT coalesce((SELECT stored FROM offline_counters WHERE domain=$1 AND username=$2), 0)",
                           2, p);
    PQfinish(pg);
    if (rows != c) printf("# %s: %lld rows, counter %lld\n", user, rows, c);
    return rows == c;
}

static void sql_exec(const char *sql, const char *user)
{
    PGconn *pg = db_connect(dbinfo);
    const char *p[2] = {domain, user};
    db_value(pg, sql, 2, p);
    PQfinish(pg);
}

static int store(const char *user, const char *stanza, time_t expire, unsigned quota)
{
    status_res r = {0};
    CALL(offline_store(s, domain, user, stanza, strlen(stanza), expire, quota, on_status, &r));
    return wait_status(&r);
}

static int fetch(const char *user, off_res *r)
{
    memset(r, 0, sizeof *r);
    CALL(offline_fetch(s, domain, user, on_fetch, r));
    WAIT_FOR(r->done, 20000);
    return r->done == 1 ? (int)r->st : -1;
}

static long count(const char *user, int *st)
{
    off_res r = {0};
    CALL(offline_count(s, domain, user, on_count, &r));
    WAIT_FOR(r.done, 20000);
    *st = r.done == 1 ? (int)r.st : -1;
    return r.count;
}

static int del(const char *user, int64_t up_to)
{
    status_res r = {0};
    CALL(offline_delete(s, domain, user, up_to, on_status, &r));
    return wait_status(&r);
}

typedef struct {
    int *order;
    int *next;
    int idx;
    storage_status st;
} seq_ctx;

static void on_seq(void *ud, storage_status st)
{
    seq_ctx *c = ud;
    note_callback();
    c->st = st;
    c->order[(*c->next)++] = c->idx;
}

int main(void)
{
    const char *db = test_db();
    dbinfo = db;
    test_loop_init();
    migrate_or_bail(db);
    s = ready_storage(db);
    domain = test_domain("offline");
    status_res cr = {0};
    CALL(account_create(s, domain, "juliet", "pw", 4096, 0, on_status, &cr));
    is_int(wait_status(&cr), STORAGE_OK, "account juliet");
    cr.done = 0;
    CALL(account_create(s, domain, "many", "pw", 4096, 0, on_status, &cr));
    is_int(wait_status(&cr), STORAGE_OK, "account many");

    off_res r;
    is_int(fetch("juliet", &r), STORAGE_OK, "fetch with nothing stored");
    is_int(r.n, 0, "no messages");

    time_t now = time(NULL);
    is_int(store("juliet", "<message id='1'/>", 0, 3), STORAGE_OK, "store 1 (quota 3)");
    is_int(store("juliet", "<message id='2'/>", now + 3600, 3), STORAGE_OK, "store 2, expiring in an hour");
    is_int(store("juliet", "<message id='3'/>", 0, 3), STORAGE_OK, "store 3: exactly at the limit");
    is_int(store("juliet", "<message id='4'/>", 0, 3), STORAGE_QUOTA, "store 4: over the quota, refused");
    is_int(store("juliet", "<message id='4'/>", 0, 0), STORAGE_QUOTA, "quota 0 refuses too");
    ok(counter_exact("juliet"), "counter: 3 after three stores and two refusals");
    int st;
    is_int(count("juliet", &st), 3, "count 3");
    is_int(st, STORAGE_OK, "count ok");

    is_int(fetch("juliet", &r), STORAGE_OK, "fetch");
    is_int(r.n, 3, "three messages");
    is_str(r.stanzas[0], "<message id='1'/>", "first stored comes first");
    is_str(r.stanzas[1], "<message id='2'/>", "then the second");
    is_str(r.stanzas[2], "<message id='3'/>", "then the third");
    ok(r.ids[0] < r.ids[1] && r.ids[1] < r.ids[2], "ids increase");
    ok(r.stored_at[0] >= now - 300 && r.stored_at[0] <= now + 300, "stored_at is now");
    is_int(r.expire_at[0], 0, "no expiry is 0");
    is_int(r.expire_at[1], now + 3600, "expiry kept to the second");

    /* Expired messages are left out and do not count against the quota. */
    is_int(store("juliet", "<message id='old'/>", now - 10, 10), STORAGE_OK, "store an already expired message");
    is_int(fetch("juliet", &r), STORAGE_OK, "fetch");
    is_int(r.n, 3, "the expired message is left out");
    is_int(count("juliet", &st), 3, "and not counted");
    ok(counter_exact("juliet"), "counter: the expired row counts while it is stored");
    is_int(store("juliet", "<message id='5'/>", 0, 4), STORAGE_OK, "an expired message does not take quota");
    ok(counter_exact("juliet"), "counter: at the quota the expired row was purged, the new one counted");

    /* Delete up to an id (and the expired ones). */
    is_int(fetch("juliet", &r), STORAGE_OK, "fetch 4");
    is_int(r.n, 4, "four messages");
    int64_t second = r.ids[1], last = r.ids[3];
    is_int(del("juliet", second), STORAGE_OK, "delete up to the second");
    ok(counter_exact("juliet"), "counter: exact after delete");
    is_int(fetch("juliet", &r), STORAGE_OK, "fetch after delete");
    is_int(r.n, 2, "two left");
    is_str(r.stanzas[0], "<message id='3'/>", "the third is first now");
    {
        PGconn *pg = db_connect(db);
        const char *p[2] = {domain, "juliet"};
        is_int(db_value(pg, "SELECT count(*) FROM offline_messages WHERE domain=$1 AND username=$2", 2, p), 2,
               "the expired row was deleted too");
        PQfinish(pg);
    }
    is_int(del("juliet", last), STORAGE_OK, "delete up to the last");
    is_int(count("juliet", &st), 0, "none left");
    is_int(del("juliet", last), STORAGE_OK, "deleting nothing is fine");
    is_int(counter("juliet"), 0, "counter: 0 once everything was delivered and deleted");

    /* The counter under deletes behind the server's back, and a counter
     * made wrong by rows inserted behind it: a refusal is still exact. */
    is_int(store("juliet", "<message id='6'/>", 0, 5), STORAGE_OK, "store 6");
    is_int(store("juliet", "<message id='7'/>", 0, 5), STORAGE_OK, "store 7");
    sql_exec("DELETE FROM offline_messages WHERE domain=$1 AND username=$2 AND stanza = '<message id=''6''/>'",
             "juliet");
    ok(counter_exact("juliet"), "counter: exact after an operator's DELETE (trigger)");
    sql_exec("UPDATE offline_counters SET stored = 5 WHERE domain=$1 AND username=$2", "juliet");
    is_int(store("juliet", "<message id='8'/>", 0, 5), STORAGE_OK,
           "a counter too high: the store at the quota recounts and stores");
    ok(counter_exact("juliet"), "counter: corrected by the recount");
    is_int(store("juliet", "<message id='9'/>", 0, 2), STORAGE_QUOTA, "refused at an exact quota of 2");
    ok(counter_exact("juliet"), "counter: a refusal changes nothing");
    is_int(fetch("juliet", &r), STORAGE_OK, "fetch");
    is_int(del("juliet", r.ids[r.n - 1]), STORAGE_OK, "delete them");
    is_int(counter("juliet"), 0, "counter: 0 again");

    /* Unknown users */
    is_int(store("nobody", "<message/>", 0, 10), STORAGE_NOT_FOUND, "store for an unknown user: not found");
    is_int(fetch("nobody", &r), STORAGE_NOT_FOUND, "fetch for an unknown user: not found");
    count("nobody", &st);
    is_int(st, STORAGE_NOT_FOUND, "count for an unknown user: not found");
    is_int(del("nobody", 100), STORAGE_NOT_FOUND, "delete for an unknown user: not found");

    /* 2000 stores in flight at once: all answered, in order, stored in order;
     * with a quota of 1500 exactly the last 500 are refused. */
    {
        enum { N = 2000, Q = 1500 };
        static int order[N];
        static seq_ctx ctx[N];
        int next = 0;
        char stanza[64];
        for (int i = 0; i < N; i++) {
            ctx[i] = (seq_ctx){.order = order, .next = &next, .idx = i, .st = -1};
            snprintf(stanza, sizeof stanza, "<message id='m%d'/>", i);
            CALL(offline_store(s, domain, "many", stanza, strlen(stanza), 0, Q, on_seq, &ctx[i]));
        }
        WAIT_FOR(next == N, 60000);
        is_int(next, N, "2000 callbacks");
        int inorder = 1, okn = 0, quota_first = -1;
        for (int i = 0; i < next; i++) inorder &= order[i] == i;
        for (int i = 0; i < N; i++) {
            if (ctx[i].st == STORAGE_OK) okn++;
            if (ctx[i].st == STORAGE_QUOTA && quota_first < 0) quota_first = i;
        }
        ok(inorder, "callbacks in the order of the calls");
        is_int(okn, Q, "1500 stored");
        is_int(quota_first, Q, "the first refused is number 1501");
        PGconn *pg = db_connect(db);
        const char *p[2] = {domain, "many"};
        PGresult *res = PQexecParams(pg, "SELECT stanza FROM offline_messages WHERE domain=$1 AND username=$2 "
                                         "ORDER BY id", 2, NULL, p, NULL, NULL, 0);
        int stored_in_order = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == Q;
        for (int i = 0; stored_in_order && i < Q; i++) {
            snprintf(stanza, sizeof stanza, "<message id='m%d'/>", i);
            stored_in_order = strcmp(PQgetvalue(res, i, 0), stanza) == 0;
        }
        ok(stored_in_order, "stored in the order of the calls");
        PQclear(res);
        long long txns = db_value(pg, "SELECT count(DISTINCT xmin::text) FROM offline_messages WHERE domain=$1 AND "
                                      "username=$2", 2, p);
        ok(txns > 0 && txns <= 2 * (Q / STORAGE_BATCH_DEFAULT + 1),
           "group commit: 1500 rows written by %lld transactions", txns);
        is_int(counter("many"), Q, "counter: exactly the quota");
        PQfinish(pg);
    }

    /* Two pools (two connections) racing for one user's last places: the
     * quota holds exactly. */
    {
        enum { N = 200, Q = 60 };
        status_res cr2 = {0};
        CALL(account_create(s, domain, "race", "pw", 4096, 0, on_status, &cr2));
        is_int(wait_status(&cr2), STORAGE_OK, "account race");
        storage *s2 = ready_storage(db);
        static status_res a[N], b[N];
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        const char *m = "<message/>";
        for (int i = 0; i < N; i++) {
            CALL(offline_store(s, domain, "race", m, strlen(m), 0, Q, on_status, &a[i]));
            CALL(offline_store(s2, domain, "race", m, strlen(m), 0, Q, on_status, &b[i]));
        }
        WAIT_FOR(a[N - 1].done && b[N - 1].done, 60000);
        int stored = 0, refused = 0;
        for (int i = 0; i < N; i++) {
            stored += (a[i].st == STORAGE_OK) + (b[i].st == STORAGE_OK);
            refused += (a[i].st == STORAGE_QUOTA) + (b[i].st == STORAGE_QUOTA);
        }
        is_int(stored, Q, "two connections racing: exactly the quota stored");
        is_int(refused, 2 * N - Q, "and the rest refused");
        is_int(count("race", &st), Q, "count agrees");
        is_int(counter("race"), Q, "counter agrees");
        free_storage(s2);
    }

    is_int(sync_callbacks, 0, "no callback ran inside the call that made its request");
    free_storage(s);
    test_loop_done();
    return tap_done();
}
