/* The pool: statements of a module of its own, SQL errors, the bound on
 * waiting requests, query timeout, storage_free with requests pending (also
 * from inside a callback), and a database that is unreachable, comes up,
 * goes away with a request in flight and comes back. */
#include <sys/stat.h>

#include "t/storage/helpers.h"

#include "storage/query.h"

enum { T_ECHO, T_SLEEP, T_BAD };
static const storage_stmt test_stmts[] = {
    [T_ECHO] = {"test_echo", "SELECT $2::integer WHERE $1::text IS NOT NULL", 2, 1},
    [T_SLEEP] = {"test_sleep", "SELECT pg_sleep($1::float8)", 1, 0},
    [T_BAD] = {"test_bad", "SELEC nonsense", 0, 0},
    {NULL, NULL, 0, 0},
};

typedef struct {
    int done;
    storage_status st;
    long value;
    storage *free_me;   /* call storage_free from the callback */
} q_res;

static void on_q(void *ud, storage_status st, const PGresult *res)
{
    q_res *r = ud;
    note_callback();
    r->done++;
    r->st = st;
    r->value = st == STORAGE_OK ? (long)storage_get_int64(res, 0, 0, -1) : -1;
    if (r->free_me) storage_free(r->free_me);
}

static void echo(storage *s, int v, q_res *r)
{
    char num[16];
    snprintf(num, sizeof num, "%d", v);
    const char *vals[2] = {"key", num};
    CALL(storage_exec(s, &test_stmts[T_ECHO], vals, on_q, r));
}

static int echo_wait(storage *s, int v)
{
    q_res r = {0};
    echo(s, v, &r);
    WAIT_FOR(r.done, 20000);
    if (r.done != 1) return -1;
    if (r.st == STORAGE_OK && r.value != v) return -2;
    return (int)r.st;
}

static int ready_changes, last_ready;
static void on_ready(storage *s, int ready, void *ud)
{
    (void)s;
    (void)ud;
    ready_changes++;
    last_ready = ready;
}

static void part_running_database(const char *db)
{
    storage_config cfg = {.conninfo = db};
    storage *s = storage_new(&loop, &cfg);
    storage_register(s, test_stmts);
    storage_on_ready_change(s, on_ready, NULL);
    ok(!storage_ready(s), "not ready before the loop ran");
    WAIT_FOR(storage_ready(s), 20000);
    ok(storage_ready(s), "ready");
    ok(ready_changes == 1 && last_ready == 1, "the ready callback said so once");
    is_int(echo_wait(s, 42), STORAGE_OK, "a statement of a module's own table");

    q_res r = {0};
    CALL(storage_exec(s, &test_stmts[T_BAD], NULL, on_q, &r));
    WAIT_FOR(r.done, 20000);
    is_int(r.st, STORAGE_ERROR, "a statement with an SQL error: STORAGE_ERROR");
    is_int(echo_wait(s, 7), STORAGE_OK, "the connection still works afterwards");

    /* Unregistered statement, prepared on first use. */
    static const storage_stmt late = {"test_late", "SELECT $1::integer * 2", 1, 0, 0};
    memset(&r, 0, sizeof r);
    const char *v21[1] = {"21"};
    CALL(storage_exec(s, &late, v21, on_q, &r));
    WAIT_FOR(r.done, 20000);
    ok(r.st == STORAGE_OK && r.value == 42, "a statement seen for the first time is prepared on the way");

    /* A NULL parameter */
    static const storage_stmt isnull = {"test_isnull", "SELECT CASE WHEN $1::text IS NULL THEN 1 ELSE 0 END", 1, 0,
                                         0};
    memset(&r, 0, sizeof r);
    const char *vnull[1] = {NULL};
    CALL(storage_exec(s, &isnull, vnull, on_q, &r));
    WAIT_FOR(r.done, 20000);
    ok(r.st == STORAGE_OK && r.value == 1, "a NULL value is SQL NULL");

    /* storage_free with requests pending: each completes once, unavailable. */
    enum { N = 100 };
    static q_res many[N];
    memset(many, 0, sizeof many);
    for (int i = 0; i < N; i++) echo(s, i, &many[i]);
    q_res slow = {0};
    const char *thirty[1] = {"30"};
    CALL(storage_exec(s, &test_stmts[T_SLEEP], thirty, on_q, &slow));
    WAIT_FOR(many[0].done, 20000);   /* some answered, some still in flight */
    int before = 0;
    for (int i = 0; i < N; i++) before += many[i].done;
    storage_free(s);
    int once = 1, unavailable = 0;
    for (int i = 0; i < N; i++) {
        once &= many[i].done == 1;
        if (many[i].st == STORAGE_UNAVAILABLE) unavailable++;
    }
    ok(once && slow.done == 1, "storage_free completed every pending request exactly once");
    is_int(slow.st, STORAGE_UNAVAILABLE, "the request in flight: unavailable");
    is_int(unavailable, N - before, "the ones not answered yet: unavailable");
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void part_free_in_callback(const char *db)
{
    storage_config cfg = {.conninfo = db, .connections = 1};
    storage *s = storage_new(&loop, &cfg);
    WAIT_FOR(storage_ready(s), 20000);
    enum { N = 20 };
    q_res r[N];
    memset(r, 0, sizeof r);
    r[4].free_me = s;
    for (int i = 0; i < N; i++) echo(s, i, &r[i]);
    WAIT_FOR(r[N - 1].done, 20000);
    int once = 1, okn = 0;
    for (int i = 0; i < N; i++) {
        once &= r[i].done == 1;
        okn += r[i].st == STORAGE_OK;
    }
    ok(once, "storage_free from inside a callback: every request completed once");
    is_int(okn, 5, "the five answered before it succeeded, the rest did not");
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void part_limits(const char *db)
{
    storage_config cfg = {.conninfo = db, .connections = 1, .max_pending = 10, .query_timeout_ms = 500};
    storage *s = storage_new(&loop, &cfg);
    WAIT_FOR(storage_ready(s), 20000);

    enum { N = 600 };
    static q_res r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++) echo(s, i, &r[i]);
    WAIT_FOR(r[N - 1].done && r[0].done, 20000);
    int all = 0;
    for (int tries = 0; tries < 100; tries++) {
        all = 1;
        for (int i = 0; i < N; i++) all &= r[i].done == 1;
        if (all) break;
        WAIT_FOR(0, 50);
    }
    int okn = 0, unav = 0, right = 1;
    for (int i = 0; i < N; i++) {
        if (r[i].st == STORAGE_OK) {
            okn++;
            right &= r[i].value == i;
        }
        if (r[i].st == STORAGE_UNAVAILABLE) unav++;
    }
    ok(all, "600 requests at once: every one answered once");
    ok(okn >= 10 && unav > 0 && okn + unav == N, "beyond max_pending they fail with unavailable (%d ok, %d refused)",
       okn, unav);
    ok(right, "each answer is the one of its request");

    q_res slow = {0};
    const char *thirty[1] = {"30"};
    CALL(storage_exec(s, &test_stmts[T_SLEEP], thirty, on_q, &slow));
    WAIT_FOR(slow.done, 15000);
    is_int(slow.st, STORAGE_UNAVAILABLE, "a query slower than query_timeout_ms fails with unavailable");
    WAIT_FOR(storage_ready(s), 20000);
    is_int(echo_wait(s, 5), STORAGE_OK, "and the pool recovers by itself");
    free_storage(s);
}

static int sh(const char *fmt, const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    return system(cmd);
}

static void part_outage(void)
{
    const char *pglocal = getenv("SWITCHBOARD_PG_LOCAL");
    if (!pglocal) {
        printf("# SWITCHBOARD_PG_LOCAL unset: skipping the outage tests\n");
        return;
    }
    char dir[] = "/tmp/sb-pool-outage.XXXXXX";
    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "host=%s/run dbname=switchboard user=switchboard", dir);
    storage_config cfg = {.conninfo = conninfo, .reconnect_max_ms = 200};
    ready_changes = 0;
    last_ready = 0;
    storage *s = storage_new(&loop, &cfg);
    storage_on_ready_change(s, on_ready, NULL);

    int before_sync = sync_callbacks;
    q_res r = {0};
    echo(s, 1, &r);
    ok(r.done == 0, "no server: the callback does not run inside the call");
    WAIT_FOR(r.done, 2000);
    is_int(r.st, STORAGE_UNAVAILABLE, "no server: the request fails with unavailable at once");
    WAIT_FOR(0, 600);   /* a few attempts fail */
    is_int(echo_wait(s, 2), STORAGE_UNAVAILABLE, "still unavailable while attempts fail");
    ok(!storage_ready(s) && ready_changes == 0, "never ready");
    is_int(sync_callbacks, before_sync, "no synchronous callbacks while unavailable");

    ok(sh("'%s' start '%s' >/dev/null", pglocal, dir) == 0, "start the server");
    WAIT_FOR(storage_ready(s), 30000);
    ok(storage_ready(s), "the pool connects by itself");
    ok(ready_changes == 1 && last_ready == 1, "the ready callback said so");
    is_int(echo_wait(s, 3), STORAGE_OK, "requests succeed");

    q_res slow = {0};
    const char *thirty[1] = {"30"};
    CALL(storage_exec(s, &test_stmts[T_SLEEP], thirty, on_q, &slow));
    WAIT_FOR(0, 200);
    ok(sh("'%s' stop '%s'", pglocal, dir) == 0, "stop the server with a request in flight");
    WAIT_FOR(slow.done, 20000);
    is_int(slow.st, STORAGE_UNAVAILABLE, "the request in flight fails with unavailable");
    WAIT_FOR(!storage_ready(s), 20000);
    ok(!storage_ready(s) && last_ready == 0, "the pool knows it is down");
    is_int(echo_wait(s, 4), STORAGE_UNAVAILABLE, "new requests fail at once");

    ok(sh("'%s' start '%s' >/dev/null", pglocal, dir) == 0, "start the server again");
    WAIT_FOR(storage_ready(s), 30000);
    ok(storage_ready(s) && last_ready == 1, "the pool is back by itself");
    is_int(echo_wait(s, 5), STORAGE_OK, "requests succeed again");
    free_storage(s);
    sh("'%s' stop '%s' >/dev/null 2>&1", pglocal, dir);
    sh("rm -rf '%s'%s", dir, "");
}

int main(void)
{
    const char *db = test_db();
    test_loop_init();
    migrate_or_bail(db);
    part_running_database(db);
    part_free_in_callback(db);
    part_limits(db);
    part_outage();
    is_int(sync_callbacks, 0, "no callback ran inside the call that made its request");
    test_loop_done();
    return tap_done();
}
