/* Accounts: credentials stored as salted SCRAM secrets (SHA-1 and
 * SHA-256), and the plaintext password only when the operator opts in
 * (for legacy digest authentication). */
#ifndef SB_STORAGE_ACCOUNTS_H
#define SB_STORAGE_ACCOUNTS_H
#include "common/scram.h"
#include "storage/storage.h"

typedef struct account_credentials {
    scram_secrets sha1;
    scram_secrets sha256;
    const char *plaintext;      /* NULL unless stored by opt-in */
} account_credentials;

/* cb(ud, STORAGE_OK, creds) / (STORAGE_NOT_FOUND, NULL) / (STORAGE_UNAVAILABLE, NULL)...
 * creds is valid only during the callback. */
typedef void (*account_credentials_cb)(void *ud, storage_status st, const account_credentials *creds);

/* username: already Nodeprep'd; domain: already Nameprep'd. */
void account_get_credentials(storage *s, const char *domain, const char *username,
                             account_credentials_cb cb, void *ud);
/* Create: STORAGE_CONFLICT if it exists. Secrets are derived here (with a
 * fresh salt each); store_plaintext keeps the password too. */
void account_create(storage *s, const char *domain, const char *username, const char *password,
                    unsigned iterations, int store_plaintext, storage_status_cb cb, void *ud);
void account_set_password(storage *s, const char *domain, const char *username, const char *password,
                          unsigned iterations, int store_plaintext, storage_status_cb cb, void *ud);
/* Delete the account and everything of the user (roster, offline, ...:
 * ON DELETE CASCADE). STORAGE_NOT_FOUND if there was none. */
void account_delete(storage *s, const char *domain, const char *username, storage_status_cb cb, void *ud);
void account_exists(storage *s, const char *domain, const char *username, storage_status_cb cb, void *ud);

/* Verify a plaintext password (SASL PLAIN, jabber:iq:auth) against the
 * stored SCRAM-SHA-256 secret (or SHA-1 if that is all there is), in
 * constant time. 1 if it matches. */
int account_check_password(const account_credentials *creds, const char *password);

#endif
