/* Shared helpers of the storage tests: the loop, waiting with a timeout,
 * the test database and blocking SQL for checks. */
#ifndef SB_T_STORAGE_HELPERS_H
#define SB_T_STORAGE_HELPERS_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <uv.h>

#include "common/crypto.h"
#include "storage/storage.h"
#include "t/unit/tap.h"

static uv_loop_t loop;
static uv_timer_t wait_timer;
static int wait_expired;
/* Set while a test is inside a storage call: a callback that sees it set ran synchronously. */
static int in_call;
static int sync_callbacks;

__attribute__((unused)) static void wait_cb(uv_timer_t *t)
{
    (void)t;
    wait_expired = 1;
}

/* Run the loop until cond holds or ms pass; evaluates to cond. */
#define WAIT_FOR(cond, ms)                                                    \
    do {                                                                      \
        wait_expired = 0;                                                     \
        uv_timer_start(&wait_timer, wait_cb, (ms), 0);                        \
        while (!(cond) && !wait_expired) uv_run(&loop, UV_RUN_ONCE);          \
        uv_timer_stop(&wait_timer);                                           \
    } while (0)

/* Make a request: flags a callback that runs inside the call. */
#define CALL(expr)        \
    do {                  \
        in_call = 1;      \
        expr;             \
        in_call = 0;      \
    } while (0)

__attribute__((unused)) static void note_callback(void)
{
    if (in_call) sync_callbacks++;
}

__attribute__((unused)) static void test_loop_init(void)
{
    uv_loop_init(&loop);
    uv_timer_init(&loop, &wait_timer);
}

/* Close the helper's timer and check that nothing else is left on the loop. */
__attribute__((unused)) static void test_loop_done(void)
{
    uv_close((uv_handle_t *)&wait_timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(uv_loop_close(&loop) == 0, "every handle of the loop was closed");
}

__attribute__((unused)) static const char *test_db(void)
{
    const char *db = getenv("SWITCHBOARD_TEST_DB");
    if (!db || !*db) {
        printf("Bail out! SWITCHBOARD_TEST_DB is not set (run through t/storage/with-pg.sh)\n");
        exit(1);
    }
    return db;
}

/* A domain of our own, so that tests can share one database. */
__attribute__((unused)) static const char *test_domain(const char *prefix)
{
    static char buf[128];
    char tok[9];
    random_token(tok, 8);
    for (char *p = tok; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    snprintf(buf, sizeof buf, "%s-%ld-%s.test", prefix, (long)getpid(), tok);
    return buf;
}

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

__attribute__((unused)) static PGconn *db_connect(const char *conninfo)
{
    PGconn *pg = PQconnectdb(conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        printf("Bail out! cannot connect: %s\n", PQerrorMessage(pg));
        exit(1);
    }
    PQsetNoticeProcessor(pg, quiet_notice, NULL);
    return pg;
}

/* Blocking query returning the first cell as a number (-1 on error). */
__attribute__((unused)) static long long db_value(PGconn *pg, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = atoll(PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) == PGRES_COMMAND_OK)
        v = atoll(PQcmdTuples(r));
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        printf("# query failed: %s", PQerrorMessage(pg));
    PQclear(r);
    return v;
}

__attribute__((unused)) static void migrate_or_bail(const char *db)
{
    char err[512];
    if (storage_migrate_sync(db, NULL, err, sizeof err) != 0) {
        printf("Bail out! migrations: %s\n", err);
        exit(1);
    }
}

__attribute__((unused)) static storage *ready_storage(const char *db)
{
    storage_config cfg = {.conninfo = db};
    storage *s = storage_new(&loop, &cfg);
    WAIT_FOR(storage_ready(s), 30000);
    if (!storage_ready(s)) {
        printf("Bail out! storage did not become ready\n");
        exit(1);
    }
    return s;
}

__attribute__((unused)) static void free_storage(storage *s)
{
    storage_free(s);
    uv_run(&loop, UV_RUN_NOWAIT);
}

typedef struct {
    int done;
    storage_status st;
} status_res;

__attribute__((unused)) static void on_status(void *ud, storage_status st)
{
    status_res *r = ud;
    note_callback();
    r->done++;
    r->st = st;
}

/* Wait for one status callback and return its status (-1 on timeout). */
__attribute__((unused)) static int wait_status(status_res *r)
{
    WAIT_FOR(r->done, 20000);
    return r->done == 1 ? (int)r->st : -1;
}

#endif
