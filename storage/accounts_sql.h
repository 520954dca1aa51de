/* accounts_sql: the accounts statements and their parameters, shared by
 * accounts.c (asynchronous, on the pool) and tools/switchboardctl
 * (blocking libpq), so that both store credentials the same way. */
#ifndef SB_STORAGE_ACCOUNTS_SQL_H
#define SB_STORAGE_ACCOUNTS_SQL_H
#include "common/scram.h"
#include "storage/query.h"

enum {
    ACCOUNT_STMT_GET,       /* $1 domain, $2 username -> the credential columns */
    ACCOUNT_STMT_CREATE,    /* ACCOUNT_NPARAMS parameters */
    ACCOUNT_STMT_SET,       /* ACCOUNT_NPARAMS parameters; 0 rows: no such user */
    ACCOUNT_STMT_DELETE,    /* $1, $2; 0 rows: no such user */
    ACCOUNT_STMT_EXISTS,    /* $1, $2 */
    ACCOUNT_STMT_LIST,      /* $1 domain or NULL -> username, domain ordered */
    ACCOUNT_STMT_COUNT_
};
extern const storage_stmt account_stmts[];

#define ACCOUNT_NPARAMS 11

/* The parameters of ACCOUNT_STMT_CREATE/SET: fresh SCRAM-SHA-1 and
 * SCRAM-SHA-256 secrets (new salt each) and the password only when
 * store_plaintext. The values point to domain, username and (with
 * store_plaintext) password: they must outlive the use of p. */
typedef struct account_params {
    const char *values[ACCOUNT_NPARAMS];
    char iter1[16], iter256[16];
    char salt1[2 * SCRAM_SALT_MAX + 3], salt256[2 * SCRAM_SALT_MAX + 3];
    char stored1[2 * HASH_MAX_LEN + 3], server1[2 * HASH_MAX_LEN + 3];
    char stored256[2 * HASH_MAX_LEN + 3], server256[2 * HASH_MAX_LEN + 3];
} account_params;

/* 0, or -1 if the password is not acceptable (SASLprep fails, empty). */
int account_params_make(account_params *p, const char *domain, const char *username, const char *password,
                        unsigned iterations, int store_plaintext);
/* Wipe the derived secrets. */
void account_params_clear(account_params *p);

#endif
