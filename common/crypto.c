/* Hashes, HMAC, PBKDF2 and randomness, all through OpenSSL 3's EVP layer. */
#include "common/crypto.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

static const EVP_MD *hash_md(hash_alg alg)
{
    return alg == HASH_SHA256 ? EVP_sha256() : EVP_sha1();
}

/* A failing digest means a broken OpenSSL (e.g. a FIPS provider refusing
 * SHA-1); there is no sensible way to carry on with garbage in out. */
static void crypto_fatal(const char *what)
{
    fprintf(stderr, "crypto: %s failed\n", what);
    abort();
}

size_t hash_len(hash_alg alg)
{
    return alg == HASH_SHA256 ? SHA256_LEN : SHA1_LEN;
}

void hash_digest(hash_alg alg, const void *data, size_t len, unsigned char *out)
{
    unsigned int outlen = 0;
    if (!EVP_Digest(data, len, out, &outlen, hash_md(alg), NULL) || outlen != hash_len(alg))
        crypto_fatal("EVP_Digest");
}

void sha1(const void *data, size_t len, unsigned char out[SHA1_LEN])
{
    hash_digest(HASH_SHA1, data, len, out);
}

void sha256(const void *data, size_t len, unsigned char out[SHA256_LEN])
{
    hash_digest(HASH_SHA256, data, len, out);
}

void hmac(hash_alg alg, const void *key, size_t keylen, const void *data, size_t len, unsigned char *out)
{
    unsigned int outlen = 0;
    /* HMAC() treats a NULL key as "reuse the previous key"; give it a real
     * pointer even for an empty key. */
    static const unsigned char empty_key[1];
    if (keylen > (size_t)0x7fffffff)
        crypto_fatal("HMAC key length");
    if (!HMAC(hash_md(alg), key ? key : empty_key, (int)keylen, data, len, out, &outlen)
        || outlen != hash_len(alg))
        crypto_fatal("HMAC");
}

int pbkdf2_hmac(hash_alg alg, const char *pass, size_t passlen,
                const unsigned char *salt, size_t saltlen, unsigned iterations,
                unsigned char *out, size_t outlen)
{
    if (iterations == 0 || iterations > 0x7fffffffu || passlen > 0x7fffffff
        || saltlen > 0x7fffffff || outlen > 0x7fffffff)
        return -1;
    if (!PKCS5_PBKDF2_HMAC(pass ? pass : "", (int)passlen, salt, (int)saltlen,
                           (int)iterations, hash_md(alg), (int)outlen, out))
        return -1;
    return 0;
}

void hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

void sha1_hex(const void *data, size_t len, char out[2 * SHA1_LEN + 1])
{
    unsigned char md[SHA1_LEN];
    sha1(data, len, md);
    hex_encode(md, sizeof md, out);
}

void random_bytes(void *out, size_t len)
{
    unsigned char *p = out;
    /* RAND_bytes takes an int; feed it in chunks. */
    while (len > 0) {
        int n = len > 1 << 20 ? 1 << 20 : (int)len;
        if (RAND_bytes(p, n) != 1)
            crypto_fatal("RAND_bytes");
        p += n;
        len -= (size_t)n;
    }
}

void random_token(char *out, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    enum { ALPHABET_LEN = sizeof alphabet - 1 }; /* 62 */
    /* Rejection sampling: only bytes below the largest multiple of 62 that
     * fits in a byte (248) are used, so every character is equally likely. */
    const unsigned limit = 256 - 256 % ALPHABET_LEN;
    unsigned char pool[64];
    size_t have = 0, used = 0, i = 0;
    while (i < len) {
        if (used == have) {
            random_bytes(pool, sizeof pool);
            have = sizeof pool;
            used = 0;
        }
        unsigned b = pool[used++];
        if (b < limit)
            out[i++] = alphabet[b % ALPHABET_LEN];
    }
    out[len] = '\0';
    OPENSSL_cleanse(pool, sizeof pool);
}

int crypto_memeq(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

void crypto_wipe(void *p, size_t len)
{
    if (p && len)
        OPENSSL_cleanse(p, len);
}
