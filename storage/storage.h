/* storage: Switchboard's PostgreSQL access, asynchronous on the libuv loop.
 *
 * One `storage` per process holds a small pool of libpq connections
 * (non-blocking connect, prepared statements, pipeline mode), reconnects
 * with back-off when the database goes away, and applies the SQL
 * migrations in storage/migrations when asked.
 *
 * Every request completes through its callback, exactly once, on the loop,
 * never inside the call that made it. While the database is unreachable
 * requests fail at once with STORAGE_UNAVAILABLE (the caller answers with a
 * temporary error: temporary-auth-failure, internal-server-error, wait);
 * nothing is queued without bound and nothing is silently dropped.
 * Parameters are always bound, never spliced into SQL. */
#ifndef SB_STORAGE_H
#define SB_STORAGE_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef enum {
    STORAGE_OK = 0,
    STORAGE_NOT_FOUND,      /* no such user / row */
    STORAGE_CONFLICT,       /* already exists */
    STORAGE_QUOTA,          /* a per-user limit was reached */
    STORAGE_UNAVAILABLE,    /* the database cannot be reached now: try again later */
    STORAGE_ERROR,          /* anything else (logged with context) */
} storage_status;

const char *storage_status_string(storage_status s);

#define STORAGE_BATCH_DEFAULT 128
#define STORAGE_BATCH_MAX 256

typedef struct storage_config {
    const char *conninfo;        /* libpq connection string */
    unsigned connections;        /* pool size; default 2 */
    unsigned reconnect_max_ms;   /* back-off ceiling; default 5000 */
    unsigned max_pending;        /* requests waiting for a connection before STORAGE_UNAVAILABLE; default 10000 */
    unsigned query_timeout_ms;   /* a request not answered by then fails with STORAGE_UNAVAILABLE; default 10000 */
    unsigned batch_max;          /* requests committed together in one transaction (group commit); default
                                    STORAGE_BATCH_DEFAULT, at most STORAGE_BATCH_MAX; 1: one per request */
    const char *migrations_dir;  /* for storage_migrate; default: the installed or source storage/migrations */
} storage_config;

typedef struct storage storage;

/* Create the pool and start connecting (asynchronously). */
storage *storage_new(uv_loop_t *loop, const storage_config *cfg);
/* 1 when at least one connection is up and prepared. */
int storage_ready(const storage *s);
/* Called whenever readiness changes (may be NULL). */
void storage_on_ready_change(storage *s, void (*cb)(storage *s, int ready, void *ud), void *ud);
/* Requests answered successfully so far, and their total latency (from
 * the request to its answer) in seconds: for metrics. */
void storage_stats(const storage *s, uint64_t *answered, double *seconds);
/* Requests asked for and not answered yet (for a shutdown that waits for
 * writes to land before closing). */
size_t storage_pending(const storage *s);
/* 1 while the requests waiting for a connection fill half of max_pending
 * or more: a caller that can hold requests back (pipelined writes) does, so
 * that the pool keeps room for the others and nothing is refused. */
int storage_crowded(const storage *s);
/* Close connections; pending requests complete with STORAGE_UNAVAILABLE. */
void storage_free(storage *s);

typedef void (*storage_status_cb)(void *ud, storage_status st);

/* ---- migrations (blocking: for the admin command and process start-up) ---- */

/* Apply every migration in dir (NULL: storage_default_migrations_dir()) not
 * yet applied (table switchboard_migrations), each in its own transaction,
 * under an advisory lock. Returns 0, or -1 with a message in err. */
int storage_migrate_sync(const char *conninfo, const char *dir, char *err, size_t errlen);
/* The migrations directory used when dir is NULL: the source tree's
 * storage/migrations for a program run from the build directory, else the
 * installed datadir/switchboard/migrations. */
const char *storage_default_migrations_dir(void);
/* The highest migration number in dir (NULL: the default), 0 if there is
 * none, or -1 with err. */
int storage_migrations_latest(const char *dir, char *err, size_t errlen);
/* The latest applied migration number, or -1 with err. */
int storage_schema_version_sync(const char *conninfo, char *err, size_t errlen);

#endif
