/* SCRAM (RFC 5802, RFC 7677) for SASL: salted secrets for storage, the
 * server side of an exchange, and a client side for tests and the benchmark.
 * Messages are the decoded SASL payloads (not base64). */
#ifndef SB_SCRAM_H
#define SB_SCRAM_H
#include <stddef.h>
#include "common/crypto.h"

#define SCRAM_SALT_MAX 64
#define SCRAM_DEFAULT_ITERATIONS 4096

typedef struct scram_secrets {
    hash_alg alg;
    unsigned iterations;
    unsigned char salt[SCRAM_SALT_MAX];
    size_t salt_len;
    unsigned char stored_key[HASH_MAX_LEN];
    unsigned char server_key[HASH_MAX_LEN];
} scram_secrets;

typedef enum {
    SCRAM_OK = 0,
    SCRAM_ERR_MALFORMED,      /* malformed-request */
    SCRAM_ERR_NOT_AUTHORIZED, /* wrong proof, unknown user: not-authorized */
    SCRAM_ERR_CHANNEL_BINDING,/* channel binding mismatch or not supported: not-authorized */
    SCRAM_ERR_INVALID_AUTHZID,/* invalid-authzid */
    SCRAM_ERR_INTERNAL,
} scram_result;

/* SASLprep (RFC 4013) a password or username; malloc'd result or NULL if prohibited. */
char *scram_saslprep(const char *s);

/* Derive stored and server keys from a password (SASLprep applied inside). */
int scram_make_secrets(hash_alg alg, const char *password,
                       const unsigned char *salt, size_t salt_len,
                       unsigned iterations, scram_secrets *out);
/* Same, with a fresh random 16-byte salt. */
int scram_make_secrets_random(hash_alg alg, const char *password, unsigned iterations, scram_secrets *out);

/* ---- server ---- */
typedef struct scram_server scram_server;

/* cb_type: NULL for SCRAM-SHA-*, or "tls-exporter"/"tls-unique" for -PLUS with
 * cb_data the channel binding data of this connection. server_nonce: NULL
 * for a random one (tests pass the RFC's). */
scram_server *scram_server_new(hash_alg alg, const char *cb_type,
                               const unsigned char *cb_data, size_t cb_len,
                               const char *server_nonce);
/* Step 1: parse client-first. On success *username (SASLprep'd, with =2C/=3D
 * decoded) and *authzid (or NULL) point into the state. channel_binding_offered:
 * whether the server advertises -PLUS (for the 'y' flag downgrade check). */
scram_result scram_server_client_first(scram_server *s, const char *msg, size_t len,
                                       int plus_advertised,
                                       const char **username, const char **authzid);
/* Step 2: the server-first message for these secrets (malloc'd, NUL-terminated). */
scram_result scram_server_first(scram_server *s, const scram_secrets *sec, char **out);
/* Step 3: verify client-final; on success *out is server-final ("v=..."), malloc'd. */
scram_result scram_server_client_final(scram_server *s, const char *msg, size_t len, char **out);
void scram_server_free(scram_server *s);

/* ---- client (tests, benchmark) ---- */
typedef struct scram_client scram_client;
scram_client *scram_client_new(hash_alg alg, const char *username, const char *password,
                               const char *client_nonce);
/* Added: bind the channel (SCRAM-*-PLUS). Call before scram_client_first;
 * cb_type e.g. "tls-exporter", cb_data this connection's binding data.
 * Returns 0, or -1 if called late or cb_type is not a valid cb-name. */
int scram_client_set_channel_binding(scram_client *c, const char *cb_type,
                                     const unsigned char *cb_data, size_t cb_len);
/* client-first message (malloc'd). */
char *scram_client_first(scram_client *c);
/* Given server-first, produce client-final (malloc'd) or NULL on a bad message. */
char *scram_client_final(scram_client *c, const char *server_first, size_t len);
/* Check server-final: 1 if the server proved it knows the password. */
int scram_client_verify(scram_client *c, const char *server_final, size_t len);
/* The salted password of the last exchange, to cache (as real clients do). */
const unsigned char *scram_client_salted_password(const scram_client *c, size_t *len);
void scram_client_free(scram_client *c);

#endif
