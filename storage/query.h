/* query: the internal API that storage modules (accounts.c, roster.c,
 * offline.c, and later vcard.c, private.c, privacy.c, mam.c, pep.c...) use
 * to run their SQL on the pool of storage.c.
 *
 * A module declares its statements in a table:
 *
 *     static const storage_stmt vcard_stmts[] = {
 *         [VCARD_GET] = {"vcard_get", "SELECT vcard FROM vcards WHERE domain = $1 AND username = $2", 2, 2},
 *         [VCARD_SET] = {"vcard_set", "INSERT INTO ... ON CONFLICT ... DO UPDATE ...", 3, 2},
 *         {NULL, NULL, 0, 0},
 *     };
 *
 * and runs one with storage_exec(s, &vcard_stmts[VCARD_GET], values, cb, ud).
 * Nothing else is needed: a statement is prepared on a connection the first
 * time it is used there (in the same pipeline, before the query), and once
 * the pool has seen it, on every new connection before that connection
 * takes requests. storage_register() pre-registers a whole table.
 *
 * Each request is its own implicit transaction (one statement followed by a
 * pipeline sync), except for statements marked `batch`: queued ones are
 * committed together (group commit: one transaction, one Sync, one WAL flush
 * for up to batch_max of them; see storage.c). Either way the callback runs
 * only once the transaction holding the request has been committed: a write
 * reported STORAGE_OK is durable. A batch request that fails does not fail
 * the others of its batch (they are run again one by one), so it still
 * behaves as its own transaction towards its caller; but a batch statement
 * must not depend on being alone in one (no transaction control, nothing
 * that refuses a transaction block), should be short (the batch waits for
 * its slowest), and holds its locks until the batch commits. Several
 * statements that must be atomic go into one SQL statement (data-modifying
 * CTEs) or into an SQL function defined by a migration.
 *
 * Ordering: requests with the same key (the first key_params parameters of
 * the statement, normally domain and username) are sent on the same
 * connection and complete in the order they were made (while the set of
 * live connections does not change: when a connection fails or comes back,
 * a key may move to another one). Requests with different keys may
 * complete in any order.
 *
 * Status given to the callback:
 *   STORAGE_OK           the statement ran and committed; res is its result
 *   STORAGE_CONFLICT     unique violation (SQLSTATE 23505); res holds the error
 *   STORAGE_NOT_FOUND    foreign key violation (23503): the owner does not exist
 *   STORAGE_UNAVAILABLE  no connection, queue full, timeout, connection lost
 *                        (the outcome of a write is then unknown); res NULL
 *   STORAGE_ERROR        any other SQL error (logged with the statement name); res holds it
 * res is valid only during the callback. */
#ifndef SB_STORAGE_QUERY_H
#define SB_STORAGE_QUERY_H
#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include "storage/storage.h"

typedef struct storage_stmt {
    const char *name;   /* unique in the program, "module_action"; the server-side prepared statement name */
    const char *sql;    /* parameters $1..$nparams, all passed as text */
    int nparams;
    int key_params;     /* the first key_params parameters identify the owner (ordering, see above); 0: none */
    int batch;          /* 1: a write that may be committed together with others (group commit, see above) */
} storage_stmt;

typedef void (*storage_result_cb)(void *ud, storage_status st, const PGresult *res);

/* Pre-register a table of statements (ended by an entry with name NULL),
 * so they are prepared on every connection before it takes requests. */
void storage_register(storage *s, const storage_stmt *table);

/* Run a statement. values: stmt->nparams NUL-terminated strings in
 * PostgreSQL's text format (NULL for SQL NULL); they are copied. The
 * callback runs exactly once, later, on the loop (never inside this call). */
void storage_exec(storage *s, const storage_stmt *stmt, const char *const *values,
                  storage_result_cb cb, void *ud);

/* Complete cb(ud, st, NULL) later on the loop, as storage_exec would: for
 * a module that refuses a request before running any SQL. */
void storage_complete_later(storage *s, storage_result_cb cb, void *ud, storage_status st);

/* ---- helpers for results and parameters (text format) ---- */

/* The value of a cell as int64/int; def when NULL or out of range. */
int64_t storage_get_int64(const PGresult *res, int row, int col, int64_t def);
/* 1 for 't', 0 for 'f' or NULL. */
int storage_get_bool(const PGresult *res, int row, int col);
/* The text of a cell, or NULL when it is SQL NULL. */
const char *storage_get_text(const PGresult *res, int row, int col);
/* Rows affected by an INSERT/UPDATE/DELETE. */
long storage_affected(const PGresult *res);

/* bytea as text parameter ("\x" + hex): out holds 2*len+3 bytes. */
void storage_bytea_param(const unsigned char *in, size_t len, char *out);
/* Decode a bytea cell (text format "\x..."); returns its length, or -1 if
 * it is NULL, malformed or longer than max. */
long storage_get_bytea(const PGresult *res, int row, int col, unsigned char *out, size_t max);

/* text[] parameter: an array literal of n strings (NULL for n == 0 gives '{}'); malloc'd. */
char *storage_text_array_param(const char *const *items, size_t n);
/* Parse a text[] cell into a malloc'd block holding the array of pointers
 * and the strings (free() it once); *n receives the count. NULL on error
 * or when the cell is NULL (then *n = 0). */
char **storage_get_text_array(const PGresult *res, int row, int col, size_t *n);

#endif
