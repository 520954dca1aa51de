/* Group commit in the pool: batch statements queued together commit in one
 * transaction, each callback runs only after that commit, the batch size
 * limit holds, a failing request inside a batch fails alone (the others are
 * run again one by one and succeed), reads keep their place in the order,
 * storage_free with a batch in flight completes every request once, and one
 * key's writes commit in order across the loss of its connection. */
#include "t/storage/helpers.h"

#include "storage/query.h"

enum { T_PUT, T_SLOW_PUT, T_GET, T_ORD_PUT, T_ORD_LOCKED_PUT, T_PID };
static char table[64], put_sql[256], slow_put_sql[256], get_sql[256], ord_put_sql[256], ord_locked_sql[256];
#define ORDER_LOCK "4242"   /* advisory lock that holds T_ORD_LOCKED_PUT back */
/* Built in main (the table is per process, so tests can share a database). */
static storage_stmt test_stmts[] = {
    [T_PUT] = {"test_batch_put", put_sql, 2, 1, 1},
    [T_SLOW_PUT] = {"test_batch_slow_put", slow_put_sql, 2, 1, 1},
    [T_GET] = {"test_batch_get", get_sql, 1, 1, 0},
    [T_ORD_PUT] = {"test_batch_ord_put", ord_put_sql, 2, 1, 1},
    [T_ORD_LOCKED_PUT] = {"test_batch_ord_locked_put", ord_locked_sql, 2, 1, 1},
    [T_PID] = {"test_batch_pid", "SELECT pg_backend_pid() WHERE $1::text IS NOT NULL", 1, 1, 0},
    {NULL, NULL, 0, 0, 0},
};

static PGconn *check;   /* a separate blocking connection: sees only committed rows */

typedef struct {
    int done;
    storage_status st;
    long long txid;     /* T_PUT: the transaction that inserted the row */
    long count;         /* T_GET */
    int visible;        /* T_PUT: the row was committed when the callback ran */
    int order;          /* position among the callbacks */
    const char *key;
    int value;
} put_res;

static int callbacks;

static int row_committed(const char *key, int value)
{
    char v[16];
    snprintf(v, sizeof v, "%d", value);
    const char *p[2] = {key, v};
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE k = $1 AND v = $2::integer", table);
    return db_value(check, sql, 2, p) == 1;
}

static void on_put(void *ud, storage_status st, const PGresult *res)
{
    put_res *r = ud;
    note_callback();
    r->done++;
    r->st = st;
    r->order = callbacks++;
    if (st == STORAGE_OK) {
        r->txid = storage_get_int64(res, 0, 0, -1);
        r->visible = row_committed(r->key, r->value);
    }
}

static void on_get(void *ud, storage_status st, const PGresult *res)
{
    put_res *r = ud;
    note_callback();
    r->done++;
    r->st = st;
    r->order = callbacks++;
    r->count = st == STORAGE_OK ? (long)storage_get_int64(res, 0, 0, -1) : -1;
}

static void put_stmt(storage *s, int stmt, const char *key, int value, put_res *r)
{
    char v[16];
    snprintf(v, sizeof v, "%d", value);
    r->key = key;
    r->value = value;
    const char *vals[2] = {key, v};
    CALL(storage_exec(s, &test_stmts[stmt], vals, on_put, r));
}

static void put(storage *s, const char *key, int value, put_res *r) { put_stmt(s, T_PUT, key, value, r); }

static void get(storage *s, const char *key, put_res *r)
{
    const char *vals[1] = {key};
    CALL(storage_exec(s, &test_stmts[T_GET], vals, on_get, r));
}

static int all_done(const put_res *r, int n)
{
    for (int i = 0; i < n; i++)
        if (!r[i].done) return 0;
    return 1;
}

static int distinct_txids(const put_res *r, int n)
{
    int d = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = r[j].txid == r[i].txid;
        d += !seen;
    }
    return d;
}

/* ---- one key's order when its connection is lost and comes back ---- */

typedef struct {
    int done;
    storage_status st;
    long long id, pid;
} ord_res;

static void on_ord(void *ud, storage_status st, const PGresult *res)
{
    ord_res *r = ud;
    note_callback();
    r->done++;
    r->st = st;
    if (st == STORAGE_OK) {
        r->id = storage_get_int64(res, 0, 0, -1);
        r->pid = storage_get_int64(res, 0, 1, -1);
    }
}

static void ord_put(storage *s, int stmt, const char *key, int value, ord_res *r)
{
    char v[16];
    snprintf(v, sizeof v, "%d", value);
    const char *vals[2] = {key, v};
    CALL(storage_exec(s, &test_stmts[stmt], vals, on_ord, r));
}

/* The backend that serves key (-1 if the request failed). */
static long long key_pid(storage *s, const char *key)
{
    ord_res r = {0};
    const char *vals[1] = {key};
    CALL(storage_exec(s, &test_stmts[T_PID], vals, on_ord, &r));
    WAIT_FOR(r.done, 20000);
    return r.st == STORAGE_OK ? r.id : -1;
}

/* Wait (at most 20 s) until a client backend started after `since` is idle. */
static void wait_new_backend(const char *since)
{
    const char *p[1] = {since};
    for (int i = 0; i < 200; i++) {
        if (db_value(check, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                            " AND backend_start > $1::timestamptz AND state = 'idle'", 1, p) > 0)
            break;
        WAIT_FOR(0, 100);
    }
    WAIT_FOR(0, 300);   /* its statements are prepared */
}

static void part_order_across_reconnect(const char *db)
{
    storage_config cfg = {.conninfo = db, .connections = 2, .reconnect_max_ms = 200};
    storage *s = storage_new(&loop, &cfg);
    storage_register(s, test_stmts);
    /* Two keys served by different connections. */
    char keys[16][8];
    const char *k = NULL;
    long long pk = -1, pl = -1;
    for (int attempt = 0; attempt < 100 && !k; attempt++) {
        WAIT_FOR(0, 100);
        long long pids[16];
        for (int i = 0; i < 16; i++) {
            snprintf(keys[i], sizeof keys[i], "o%d", i);
            pids[i] = key_pid(s, keys[i]);
        }
        for (int i = 1; i < 16 && !k; i++)
            if (pids[0] > 0 && pids[i] > 0 && pids[i] != pids[0]) {
                k = keys[0];
                pk = pids[0];
                pl = pids[i];
            }
    }
    if (!ok(k != NULL, "two connections, keys served by each")) {
        free_storage(s);
        return;
    }
    /* A session lock of ours holds back the first write of the key. */
    PGresult *res = PQexec(check, "SELECT pg_advisory_lock(" ORDER_LOCK "), now()::text");
    char since[64];
    snprintf(since, sizeof since, "%s", PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 1) : "now");
    PQclear(res);
    /* The key's connection is lost: the pool notices at its next request. */
    char pidstr[24];
    snprintf(pidstr, sizeof pidstr, "%lld", pk);
    const char *pp[1] = {pidstr};
    db_value(check, "SELECT pg_terminate_backend($1::integer)::int", 1, pp);
    long long now_pid = key_pid(s, k);
    ok(now_pid != pk, "the key's connection was lost");
    enum { N = 4 };
    static ord_res r[N];
    memset(r, 0, sizeof r);
    /* 0 goes to the other connection and waits there for the lock; 1 and 2
     * queue behind it. */
    ord_put(s, T_ORD_LOCKED_PUT, k, 0, &r[0]);
    uv_run(&loop, UV_RUN_NOWAIT);
    ord_put(s, T_ORD_PUT, k, 1, &r[1]);
    ord_put(s, T_ORD_PUT, k, 2, &r[2]);
    /* The key's own connection is back; 3 must still queue behind 1 and 2. */
    wait_new_backend(since);
    ord_put(s, T_ORD_PUT, k, 3, &r[3]);
    WAIT_FOR(r[3].done, 1000);
    ok(!r[0].done, "the first write was still held back");
    db_value(check, "SELECT pg_advisory_unlock(" ORDER_LOCK ")::int", 0, NULL);
    WAIT_FOR(r[0].done && r[1].done && r[2].done && r[3].done, 20000);
    int okn = 0, inorder = 1;
    for (int i = 0; i < N; i++) {
        okn += r[i].st == STORAGE_OK;
        if (i) inorder &= r[i].id > r[i - 1].id;
    }
    is_int(okn, N, "the key's writes across the reconnection all succeed");
    ok(inorder, "and commit in the order they were made");
    ok(r[3].pid == r[1].pid && r[1].pid == pl, "the later one ran where the earlier ones waited");
    free_storage(s);
}

static void part_one_transaction(storage *s)
{
    enum { N = 50 };
    static put_res r[N];
    memset(r, 0, sizeof r);
    callbacks = 0;
    for (int i = 0; i < N; i++) put(s, "a", i, &r[i]);
    WAIT_FOR(all_done(r, N), 20000);
    int okn = 0, visible = 0, inorder = 1;
    for (int i = 0; i < N; i++) {
        okn += r[i].st == STORAGE_OK && r[i].done == 1;
        visible += r[i].visible;
        inorder &= r[i].order == i;
    }
    is_int(okn, N, "50 writes queued together: all stored");
    is_int(distinct_txids(r, N), 1, "in one transaction (group commit)");
    is_int(visible, N, "each callback ran after the commit (the row was visible to another connection)");
    ok(inorder, "callbacks in the order of the calls");
}

static void part_failure_inside(storage *s)
{
    /* 0..9, then 5 again (unique violation), then -1 (check violation),
     * then 10..19, and a read at the end. */
    enum { N = 23 };
    static put_res r[N];
    memset(r, 0, sizeof r);
    callbacks = 0;
    int n = 0;
    for (int i = 0; i < 10; i++) put(s, "b", i, &r[n++]);
    put(s, "b", 5, &r[n++]);
    put(s, "b", -1, &r[n++]);
    for (int i = 10; i < 20; i++) put(s, "b", i, &r[n++]);
    get(s, "b", &r[n++]);
    WAIT_FOR(all_done(r, N), 20000);
    int good = 0, inorder = 1, once = 1;
    for (int i = 0; i < N; i++) {
        once &= r[i].done == 1;
        inorder &= r[i].order == i;
        if (i != 10 && i != 11 && i != N - 1) good += r[i].st == STORAGE_OK && r[i].visible;
    }
    ok(once, "a batch with failing requests: every callback ran once");
    is_int(good, 20, "the 20 good writes of the failed batch were stored (run again one by one)");
    is_int(r[10].st, STORAGE_CONFLICT, "the duplicate fails alone with conflict");
    is_int(r[11].st, STORAGE_ERROR, "the check violation fails alone with error");
    ok(inorder, "callbacks still in the order of the calls");
    is_int(r[N - 1].st, STORAGE_OK, "a read queued behind them");
    is_int(r[N - 1].count, 20, "sees exactly the 20 rows stored before it");
    const char *p[1] = {"b"};
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE k = $1", table);
    is_int(db_value(check, sql, 1, p), 20, "the table holds 20 rows for the key");

    /* The pool goes on batching afterwards. */
    enum { M = 10 };
    static put_res more[M];
    memset(more, 0, sizeof more);
    for (int i = 0; i < M; i++) put(s, "b", 100 + i, &more[i]);
    WAIT_FOR(all_done(more, M), 20000);
    int okn = 0;
    for (int i = 0; i < M; i++) okn += more[i].st == STORAGE_OK;
    is_int(okn, M, "later writes succeed");
    is_int(distinct_txids(more, M), 1, "and are batched again");
}

static void part_batch_limit(const char *db)
{
    storage_config cfg = {.conninfo = db, .connections = 1, .batch_max = 4};
    storage *s = storage_new(&loop, &cfg);
    storage_register(s, test_stmts);
    WAIT_FOR(storage_ready(s), 20000);
    enum { N = 10 };
    static put_res r[N];
    memset(r, 0, sizeof r);
    callbacks = 0;
    for (int i = 0; i < N; i++) put(s, "c", i, &r[i]);
    WAIT_FOR(all_done(r, N), 20000);
    int okn = 0;
    for (int i = 0; i < N; i++) okn += r[i].st == STORAGE_OK;
    is_int(okn, N, "batch_max 4: 10 writes stored");
    is_int(distinct_txids(r, N), 3, "in 3 transactions (4 + 4 + 2)");
    ok(r[0].txid == r[3].txid && r[3].txid != r[4].txid && r[4].txid == r[7].txid && r[8].txid == r[9].txid,
       "each transaction holds consecutive requests");
    free_storage(s);

    /* batch_max 1: a transaction per request, as without group commit. */
    storage_config one = {.conninfo = db, .connections = 1, .batch_max = 1};
    s = storage_new(&loop, &one);
    storage_register(s, test_stmts);
    WAIT_FOR(storage_ready(s), 20000);
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++) put(s, "d", i, &r[i]);
    WAIT_FOR(all_done(r, N), 20000);
    okn = 0;
    for (int i = 0; i < N; i++) okn += r[i].st == STORAGE_OK;
    is_int(okn, N, "batch_max 1: 10 writes stored");
    is_int(distinct_txids(r, N), N, "each in its own transaction");
    free_storage(s);
}

static void part_free_with_batch(const char *db)
{
    storage_config cfg = {.conninfo = db, .connections = 1};
    storage *s = storage_new(&loop, &cfg);
    storage_register(s, test_stmts);
    WAIT_FOR(storage_ready(s), 20000);
    enum { N = 30 };
    static put_res r[N];
    memset(r, 0, sizeof r);
    /* The first one takes a second in the database: the batch is still
     * there when the pool is freed. */
    put_stmt(s, T_SLOW_PUT, "e", 0, &r[0]);
    for (int i = 1; i < N; i++) put(s, "e", i, &r[i]);
    uv_run(&loop, UV_RUN_NOWAIT);   /* the batch goes out */
    storage_free(s);
    int once = 1, unavailable = 0;
    for (int i = 0; i < N; i++) {
        once &= r[i].done == 1;
        unavailable += r[i].st == STORAGE_UNAVAILABLE;
    }
    ok(once, "storage_free with a batch in flight: every request completed once");
    is_int(unavailable, N, "unavailable (their outcome is unknown)");
    uv_run(&loop, UV_RUN_NOWAIT);
}

int main(void)
{
    const char *db = test_db();
    test_loop_init();
    migrate_or_bail(db);
    check = db_connect(db);
    snprintf(table, sizeof table, "test_batch_%ld", (long)getpid());
    snprintf(put_sql, sizeof put_sql, "INSERT INTO %s (k, v) VALUES ($1, $2::integer) RETURNING txid_current()",
             table);
    snprintf(slow_put_sql, sizeof slow_put_sql,
             "INSERT INTO %s (k, v) SELECT $1, $2::integer FROM pg_sleep(1) RETURNING txid_current()", table);
    snprintf(get_sql, sizeof get_sql, "SELECT count(*) FROM %s WHERE k = $1", table);
    snprintf(ord_put_sql, sizeof ord_put_sql,
             "INSERT INTO %s_ord (k, v) VALUES ($1, $2::integer) RETURNING id, pg_backend_pid()", table);
    snprintf(ord_locked_sql, sizeof ord_locked_sql,
             "INSERT INTO %s_ord (k, v) SELECT $1, $2::integer FROM pg_advisory_xact_lock(" ORDER_LOCK ")"
             " RETURNING id, pg_backend_pid()", table);
    char ddl[256];
    snprintf(ddl, sizeof ddl, "CREATE TABLE %s (k text, v integer CHECK (v >= 0), PRIMARY KEY (k, v))", table);
    PQclear(PQexec(check, ddl));
    snprintf(ddl, sizeof ddl, "CREATE TABLE %s_ord (id bigserial PRIMARY KEY, k text, v integer)", table);
    PQclear(PQexec(check, ddl));
    part_order_across_reconnect(db);

    storage_config cfg = {.conninfo = db, .connections = 1};
    storage *s = storage_new(&loop, &cfg);
    storage_register(s, test_stmts);
    WAIT_FOR(storage_ready(s), 20000);
    if (!storage_ready(s)) {
        printf("Bail out! storage did not become ready\n");
        return 1;
    }
    part_one_transaction(s);
    part_failure_inside(s);
    free_storage(s);
    part_batch_limit(db);
    part_free_with_batch(db);

    snprintf(ddl, sizeof ddl, "DROP TABLE %s, %s_ord", table, table);
    PQclear(PQexec(check, ddl));
    PQfinish(check);
    is_int(sync_callbacks, 0, "no callback ran inside the call that made its request");
    test_loop_done();
    return tap_done();
}
