/* Hashes, HMAC, PBKDF2, randomness and helpers, all through OpenSSL. */
#ifndef SB_CRYPTO_H
#define SB_CRYPTO_H
#include <stddef.h>

#define SHA1_LEN 20
#define SHA256_LEN 32
#define HASH_MAX_LEN 32

typedef enum { HASH_SHA1 = 0, HASH_SHA256 = 1 } hash_alg;

size_t hash_len(hash_alg alg);
void hash_digest(hash_alg alg, const void *data, size_t len, unsigned char *out);
void sha1(const void *data, size_t len, unsigned char out[SHA1_LEN]);
void sha256(const void *data, size_t len, unsigned char out[SHA256_LEN]);
void hmac(hash_alg alg, const void *key, size_t keylen, const void *data, size_t len, unsigned char *out);
/* PBKDF2-HMAC (RFC 8018), i.e. SCRAM's Hi(). Returns 0, or -1 on failure. */
int pbkdf2_hmac(hash_alg alg, const char *pass, size_t passlen,
                const unsigned char *salt, size_t saltlen, unsigned iterations,
                unsigned char *out, size_t outlen);

/* Lower-case hex; out must hold 2*len+1. */
void hex_encode(const unsigned char *in, size_t len, char *out);
/* Hex of SHA-1(data), as in the XEP-0114 handshake and jabber:iq:auth digest. out: 41 bytes. */
void sha1_hex(const void *data, size_t len, char out[2 * SHA1_LEN + 1]);

/* Cryptographically strong random bytes; aborts if the RNG fails. */
void random_bytes(void *out, size_t len);
/* len random characters from [A-Za-z0-9] plus NUL (out holds len+1): stream ids, resources. */
void random_token(char *out, size_t len);

/* Constant-time comparison; 1 if equal. */
int crypto_memeq(const void *a, const void *b, size_t len);
/* Wipe memory that held a secret. */
void crypto_wipe(void *p, size_t len);

#endif
