/* accounts: credentials as salted SCRAM secrets (see accounts.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/log.h"
#include "storage/accounts.h"
#include "storage/accounts_sql.h"
#include "storage/modules.h"

#define SECRET_COLUMNS "sha1_iterations, sha1_salt, sha1_stored_key, sha1_server_key, " \
                       "sha256_iterations, sha256_salt, sha256_stored_key, sha256_server_key, password"

const storage_stmt account_stmts[] = {
    [ACCOUNT_STMT_GET] = {"account_get",
        "SELECT " SECRET_COLUMNS " FROM accounts WHERE domain = $1 AND username = $2", 2, 2},
    [ACCOUNT_STMT_CREATE] = {"account_create",
        "INSERT INTO accounts (domain, username, " SECRET_COLUMNS ") VALUES ($1, $2, "
        "$3::integer, $4::bytea, $5::bytea, $6::bytea, $7::integer, $8::bytea, $9::bytea, $10::bytea, $11)",
        ACCOUNT_NPARAMS, 2},
    [ACCOUNT_STMT_SET] = {"account_set_password",
        "UPDATE accounts SET sha1_iterations = $3::integer, sha1_salt = $4::bytea, sha1_stored_key = $5::bytea, "
        "sha1_server_key = $6::bytea, sha256_iterations = $7::integer, sha256_salt = $8::bytea, "
        "sha256_stored_key = $9::bytea, sha256_server_key = $10::bytea, password = $11 "
        "WHERE domain = $1 AND username = $2",
        ACCOUNT_NPARAMS, 2},
    [ACCOUNT_STMT_DELETE] = {"account_delete",
        "DELETE FROM accounts WHERE domain = $1 AND username = $2", 2, 2},
    [ACCOUNT_STMT_EXISTS] = {"account_exists",
        "SELECT 1 FROM accounts WHERE domain = $1 AND username = $2", 2, 2},
    [ACCOUNT_STMT_LIST] = {"account_list",
        "SELECT username, domain FROM accounts WHERE $1::text IS NULL OR domain = $1 ORDER BY domain, username",
        1, 0},
    {NULL, NULL, 0, 0},
};

/* ---------------------------------------------------------------- parameters */

static void put_secrets(const scram_secrets *sec, char *iter, char *salt, char *stored, char *server)
{
    snprintf(iter, 16, "%u", sec->iterations);
    storage_bytea_param(sec->salt, sec->salt_len, salt);
    storage_bytea_param(sec->stored_key, hash_len(sec->alg), stored);
    storage_bytea_param(sec->server_key, hash_len(sec->alg), server);
}

int account_params_make(account_params *p, const char *domain, const char *username, const char *password,
                        unsigned iterations, int store_plaintext)
{
    memset(p, 0, sizeof *p);
    if (!password || !*password) return -1;
    if (iterations == 0) iterations = SCRAM_DEFAULT_ITERATIONS;
    scram_secrets s1, s256;
    if (scram_make_secrets_random(HASH_SHA1, password, iterations, &s1) != 0) return -1;
    if (scram_make_secrets_random(HASH_SHA256, password, iterations, &s256) != 0) {
        crypto_wipe(&s1, sizeof s1);
        return -1;
    }
    put_secrets(&s1, p->iter1, p->salt1, p->stored1, p->server1);
    put_secrets(&s256, p->iter256, p->salt256, p->stored256, p->server256);
    crypto_wipe(&s1, sizeof s1);
    crypto_wipe(&s256, sizeof s256);
    const char *v[ACCOUNT_NPARAMS] = {domain, username, p->iter1, p->salt1, p->stored1, p->server1,
                                      p->iter256, p->salt256, p->stored256, p->server256,
                                      store_plaintext ? password : NULL};
    memcpy(p->values, v, sizeof v);
    return 0;
}

void account_params_clear(account_params *p)
{
    crypto_wipe(p, sizeof *p);
}

/* ---------------------------------------------------------------- requests */

typedef struct {
    union {
        storage_status_cb status;
        account_credentials_cb creds;
    } cb;
    void *ud;
    int mode;
} account_req;

enum { MODE_ROWS_OR_NOT_FOUND, MODE_AFFECTED_OR_NOT_FOUND, MODE_STATUS };

static account_req *req_new(storage_status_cb scb, account_credentials_cb ccb, void *ud, int mode)
{
    account_req *r = malloc(sizeof *r);
    if (!r) abort();
    if (ccb) r->cb.creds = ccb;
    else r->cb.status = scb;
    r->ud = ud;
    r->mode = mode;
    return r;
}

static void on_status(void *ud, storage_status st, const PGresult *res)
{
    account_req *r = ud;
    if (st == STORAGE_OK) {
        if (r->mode == MODE_ROWS_OR_NOT_FOUND && PQntuples(res) == 0) st = STORAGE_NOT_FOUND;
        if (r->mode == MODE_AFFECTED_OR_NOT_FOUND && storage_affected(res) == 0) st = STORAGE_NOT_FOUND;
    }
    storage_status_cb cb = r->cb.status;
    void *cud = r->ud;
    free(r);
    cb(cud, st);
}

static int get_secrets(const PGresult *res, int col, hash_alg alg, scram_secrets *out)
{
    memset(out, 0, sizeof *out);
    out->alg = alg;
    int64_t iter = storage_get_int64(res, 0, col, 0);
    if (iter <= 0) return 0;   /* not stored */
    long salt = storage_get_bytea(res, 0, col + 1, out->salt, sizeof out->salt);
    long stored = storage_get_bytea(res, 0, col + 2, out->stored_key, sizeof out->stored_key);
    long server = storage_get_bytea(res, 0, col + 3, out->server_key, sizeof out->server_key);
    if (iter > 0x7fffffff || salt <= 0 || stored != (long)hash_len(alg) || server != (long)hash_len(alg)) return -1;
    out->iterations = (unsigned)iter;
    out->salt_len = (size_t)salt;
    return 0;
}

static void on_credentials(void *ud, storage_status st, const PGresult *res)
{
    account_req *r = ud;
    account_credentials_cb cb = r->cb.creds;
    void *cud = r->ud;
    free(r);
    if (st != STORAGE_OK) {
        cb(cud, st, NULL);
        return;
    }
    if (PQntuples(res) == 0) {
        cb(cud, STORAGE_NOT_FOUND, NULL);
        return;
    }
    account_credentials creds;
    if (get_secrets(res, 0, HASH_SHA1, &creds.sha1) != 0 || get_secrets(res, 4, HASH_SHA256, &creds.sha256) != 0
        || (creds.sha1.iterations == 0 && creds.sha256.iterations == 0)) {
        log_error("storage: account_get: malformed credentials in the database");
        crypto_wipe(&creds, sizeof creds);
        cb(cud, STORAGE_ERROR, NULL);
        return;
    }
    creds.plaintext = storage_get_text(res, 0, 8);
    cb(cud, STORAGE_OK, &creds);
    crypto_wipe(&creds, sizeof creds);
}

void account_get_credentials(storage *s, const char *domain, const char *username,
                             account_credentials_cb cb, void *ud)
{
    const char *v[2] = {domain, username};
    storage_exec(s, &account_stmts[ACCOUNT_STMT_GET], v, on_credentials, req_new(NULL, cb, ud, 0));
}

static void write_secrets(storage *s, int stmt, const char *domain, const char *username, const char *password,
                          unsigned iterations, int store_plaintext, storage_status_cb cb, void *ud)
{
    account_req *r = req_new(cb, NULL, ud, stmt == ACCOUNT_STMT_SET ? MODE_AFFECTED_OR_NOT_FOUND : MODE_STATUS);
    account_params p;
    if (account_params_make(&p, domain, username, password, iterations, store_plaintext) != 0) {
        log_warn("storage: %s: password refused for %s@%s (empty or not SASLprep'able)",
                 account_stmts[stmt].name, username, domain);
        storage_complete_later(s, on_status, r, STORAGE_ERROR);
        return;
    }
    storage_exec(s, &account_stmts[stmt], p.values, on_status, r);
    account_params_clear(&p);
}

void account_create(storage *s, const char *domain, const char *username, const char *password,
                    unsigned iterations, int store_plaintext, storage_status_cb cb, void *ud)
{
    write_secrets(s, ACCOUNT_STMT_CREATE, domain, username, password, iterations, store_plaintext, cb, ud);
}

void account_set_password(storage *s, const char *domain, const char *username, const char *password,
                          unsigned iterations, int store_plaintext, storage_status_cb cb, void *ud)
{
    write_secrets(s, ACCOUNT_STMT_SET, domain, username, password, iterations, store_plaintext, cb, ud);
}

void account_delete(storage *s, const char *domain, const char *username, storage_status_cb cb, void *ud)
{
    const char *v[2] = {domain, username};
    storage_exec(s, &account_stmts[ACCOUNT_STMT_DELETE], v, on_status,
                 req_new(cb, NULL, ud, MODE_AFFECTED_OR_NOT_FOUND));
}

void account_exists(storage *s, const char *domain, const char *username, storage_status_cb cb, void *ud)
{
    const char *v[2] = {domain, username};
    storage_exec(s, &account_stmts[ACCOUNT_STMT_EXISTS], v, on_status,
                 req_new(cb, NULL, ud, MODE_ROWS_OR_NOT_FOUND));
}

int account_check_password(const account_credentials *creds, const char *password)
{
    if (!creds || !password) return 0;
    const scram_secrets *sec = creds->sha256.iterations ? &creds->sha256
                             : creds->sha1.iterations ? &creds->sha1 : NULL;
    if (!sec) return 0;
    scram_secrets got;
    if (scram_make_secrets(sec->alg, password, sec->salt, sec->salt_len, sec->iterations, &got) != 0) return 0;
    int ok = crypto_memeq(got.stored_key, sec->stored_key, hash_len(sec->alg));
    crypto_wipe(&got, sizeof got);
    return ok;
}
