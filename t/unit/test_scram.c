/* SCRAM-SHA-1 / SCRAM-SHA-256 (-PLUS): the RFC 5802 and RFC 7677 examples
 * byte for byte, through the server and the client; failures, malformed
 * messages and channel binding. */
#include "common/scram.h"

#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/crypto.h"
#include "t/unit/tap.h"

typedef struct rfc_example {
    const char *name;
    hash_alg alg;
    const char *client_nonce, *server_nonce, *salt64;
    const char *client_first, *server_first, *client_final, *server_final;
    const char *stored_key_hex, *server_key_hex, *salted_hex;
} rfc_example;

/* RFC 5802 §5 */
static const rfc_example sha1_example = {
    "SCRAM-SHA-1 (RFC 5802)", HASH_SHA1,
    "fyko+d2lbbFgONRv9qkxdawL", "3rfcNHYJY1ZVvWVs7j", "QSXCR+Q6sek8bf92",
    "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    "e9d94660c39d65c38fbad91c358f14da0eef2bd6",
    "0fe09258b3ac852ba502cc62ba903eaacdbf7d31",
    "1d96ee3a529b5a5f9e47c01f229a2cb8a6e15f7d",
};

/* RFC 7677 §3 */
static const rfc_example sha256_example = {
    "SCRAM-SHA-256 (RFC 7677)", HASH_SHA256,
    "rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "W22ZaJ0SNY7soEsUEjb6gQ==",
    "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    "586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6",
    "c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5",
    "c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d",
};

static char *hex_of(const unsigned char *b, size_t len)
{
    static char buf[2 * HASH_MAX_LEN + 1];
    hex_encode(b, len, buf);
    return buf;
}

static void secrets_for(hash_alg alg, const char *password, const char *salt64, unsigned iter,
                        scram_secrets *sec)
{
    unsigned char salt[SCRAM_SALT_MAX];
    long n = base64_decode(salt64, strlen(salt64), salt);
    if (n <= 0 || scram_make_secrets(alg, password, salt, (size_t)n, iter, sec) != 0)
        memset(sec, 0, sizeof *sec);
}

/* Run a server through client-first and server-first. Returns the server
 * (or NULL if either step failed). */
static scram_server *server_upto_first(hash_alg alg, const char *cb_type, const unsigned char *cb,
                                       size_t cb_len, const char *snonce, const scram_secrets *sec,
                                       const char *client_first, char **server_first)
{
    scram_server *s = scram_server_new(alg, cb_type, cb, cb_len, snonce);
    const char *user = NULL, *authz = NULL;
    *server_first = NULL;
    if (!s || scram_server_client_first(s, client_first, strlen(client_first), cb_type != NULL,
                                        &user, &authz) != SCRAM_OK
        || scram_server_first(s, sec, server_first) != SCRAM_OK) {
        scram_server_free(s);
        return NULL;
    }
    return s;
}

static void test_rfc_example_server(const rfc_example *ex)
{
    scram_secrets sec;
    secrets_for(ex->alg, "pencil", ex->salt64, 4096, &sec);
    is_str(hex_of(sec.stored_key, hash_len(ex->alg)), ex->stored_key_hex, "%s: StoredKey", ex->name);
    is_str(hex_of(sec.server_key, hash_len(ex->alg)), ex->server_key_hex, "%s: ServerKey", ex->name);
    is_int(sec.iterations, 4096, "%s: iterations kept", ex->name);

    scram_server *s = scram_server_new(ex->alg, NULL, NULL, 0, ex->server_nonce);
    ok(s != NULL, "%s: server created", ex->name);
    const char *user = NULL, *authz = "unset";
    is_int(scram_server_client_first(s, ex->client_first, strlen(ex->client_first), 0, &user, &authz),
           SCRAM_OK, "%s: server accepts client-first", ex->name);
    is_str(user, "user", "%s: username", ex->name);
    ok(authz == NULL, "%s: no authzid", ex->name);
    char *out = NULL;
    is_int(scram_server_first(s, &sec, &out), SCRAM_OK, "%s: server-first made", ex->name);
    is_str(out, ex->server_first, "%s: server-first byte for byte", ex->name);
    free(out);
    out = NULL;
    is_int(scram_server_client_final(s, ex->client_final, strlen(ex->client_final), &out), SCRAM_OK,
           "%s: server accepts the client proof", ex->name);
    is_str(out, ex->server_final, "%s: server-final byte for byte", ex->name);
    free(out);
    out = NULL;
    is_int(scram_server_client_final(s, ex->client_final, strlen(ex->client_final), &out),
           SCRAM_ERR_INTERNAL, "%s: a finished exchange takes no more messages", ex->name);
    scram_server_free(s);
}

static void test_rfc_example_client(const rfc_example *ex)
{
    scram_client *c = scram_client_new(ex->alg, "user", "pencil", ex->client_nonce);
    ok(c != NULL, "%s: client created", ex->name);
    size_t len = 99;
    ok(scram_client_salted_password(c, &len) == NULL && len == 0,
       "%s: no salted password before the exchange", ex->name);
    char *first = scram_client_first(c);
    is_str(first, ex->client_first, "%s: client-first byte for byte", ex->name);
    free(first);
    char *final = scram_client_final(c, ex->server_first, strlen(ex->server_first));
    is_str(final, ex->client_final, "%s: client-final byte for byte", ex->name);
    free(final);
    const unsigned char *salted = scram_client_salted_password(c, &len);
    is_int(len, hash_len(ex->alg), "%s: salted password length", ex->name);
    if (salted)
        is_str(hex_of(salted, len), ex->salted_hex, "%s: salted password", ex->name);
    else
        ok(0, "%s: salted password", ex->name);
    ok(scram_client_verify(c, ex->server_final, strlen(ex->server_final)),
       "%s: client verifies the server signature", ex->name);

    /* Flip one character of the signature */
    char *bad = strdup(ex->server_final);
    bad[2] = bad[2] == 'A' ? 'B' : 'A';
    ok(!scram_client_verify(c, bad, strlen(bad)), "%s: client refuses a wrong server signature", ex->name);
    free(bad);
    ok(!scram_client_verify(c, "e=invalid-proof", 15), "%s: client refuses a server error", ex->name);
    ok(!scram_client_verify(c, "v=", 2), "%s: client refuses an empty verifier", ex->name);
    scram_client_free(c);
}

/* Full exchange between our client and our server. Returns the server's
 * result for client-final; *verified tells whether the client accepted. */
static scram_result exchange(hash_alg alg, const char *user, const char *password,
                             const char *stored_password, int *verified)
{
    scram_secrets sec;
    *verified = 0;
    if (scram_make_secrets_random(alg, stored_password, 4096, &sec) != 0)
        return SCRAM_ERR_INTERNAL;
    scram_client *c = scram_client_new(alg, user, password, NULL);
    scram_server *s = scram_server_new(alg, NULL, NULL, 0, NULL);
    char *cf = scram_client_first(c), *sf = NULL, *cfin = NULL, *sfin = NULL;
    const char *u = NULL, *a = NULL;
    scram_result rc = scram_server_client_first(s, cf, strlen(cf), 0, &u, &a);
    if (rc == SCRAM_OK)
        rc = scram_server_first(s, &sec, &sf);
    if (rc == SCRAM_OK) {
        cfin = scram_client_final(c, sf, strlen(sf));
        rc = cfin ? scram_server_client_final(s, cfin, strlen(cfin), &sfin) : SCRAM_ERR_INTERNAL;
    }
    if (rc == SCRAM_OK)
        *verified = scram_client_verify(c, sfin, strlen(sfin));
    free(cf);
    free(sf);
    free(cfin);
    free(sfin);
    scram_client_free(c);
    scram_server_free(s);
    return rc;
}

static void test_exchanges(void)
{
    int verified;
    is_int(exchange(HASH_SHA256, "juliet", "r0m30myr0m30", "r0m30myr0m30", &verified), SCRAM_OK,
           "SCRAM-SHA-256 with random nonces and salt");
    ok(verified, "  client verifies the server");
    is_int(exchange(HASH_SHA1, "juliet", "r0m30myr0m30", "r0m30myr0m30", &verified), SCRAM_OK,
           "SCRAM-SHA-1 with random nonces and salt");
    ok(verified, "  client verifies the server");
    is_int(exchange(HASH_SHA256, "juliet", "wrong", "r0m30myr0m30", &verified),
           SCRAM_ERR_NOT_AUTHORIZED, "wrong password: not authorized");
    is_int(exchange(HASH_SHA1, "juliet", "Pencil", "pencil", &verified), SCRAM_ERR_NOT_AUTHORIZED,
           "passwords are case-sensitive");
    /* SASLprep on both sides: U+00A0 NO-BREAK SPACE maps to a space, U+00AD
     * SOFT HYPHEN to nothing */
    is_int(exchange(HASH_SHA256, "juliet", "my\xc2\xa0pass\xc2\xadword", "my password", &verified),
           SCRAM_OK, "password SASLprep'd on both sides");
    is_int(exchange(HASH_SHA256, "juliet", "", "", &verified), SCRAM_OK, "empty password works");
}

/* The RFC example's server up to server-first, ready for a client-final. */
static scram_server *rfc_server(const rfc_example *ex, const scram_secrets *sec)
{
    char *sf = NULL;
    scram_server *s = server_upto_first(ex->alg, NULL, NULL, 0, ex->server_nonce, sec,
                                        ex->client_first, &sf);
    free(sf);
    return s;
}

static void check_final(const rfc_example *ex, const scram_secrets *sec, const char *msg,
                        scram_result want, const char *why)
{
    scram_server *s = rfc_server(ex, sec);
    char *out = (char *)"unset";
    is_int(scram_server_client_final(s, msg, strlen(msg), &out), want, "client-final: %s", why);
    ok(out == NULL, "  no server-final (%s)", why);
    scram_server_free(s);
}

static void test_bad_client_final(void)
{
    const rfc_example *ex = &sha1_example;
    scram_secrets sec;
    secrets_for(ex->alg, "pencil", ex->salt64, 4096, &sec);

    check_final(ex, &sec,
                "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7X,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                SCRAM_ERR_NOT_AUTHORIZED, "tampered nonce");
    check_final(ex, &sec,
                "c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                SCRAM_ERR_NOT_AUTHORIZED, "client nonce only");
    check_final(ex, &sec,
                "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Tt=",
                SCRAM_ERR_MALFORMED, "proof with non-zero pad bits");
    check_final(ex, &sec,
                "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=w0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                SCRAM_ERR_NOT_AUTHORIZED, "wrong proof");
    check_final(ex, &sec,
                "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI",
                SCRAM_ERR_MALFORMED, "short proof");
    check_final(ex, &sec,
                "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts!",
                SCRAM_ERR_MALFORMED, "bad base64 in the proof");
    check_final(ex, &sec,
                "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=",
                SCRAM_ERR_MALFORMED, "empty proof");
    check_final(ex, &sec, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
                SCRAM_ERR_MALFORMED, "missing proof");
    check_final(ex, &sec, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                SCRAM_ERR_MALFORMED, "missing channel binding");
    check_final(ex, &sec, "c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                SCRAM_ERR_MALFORMED, "missing nonce");
    check_final(ex, &sec,
                "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                SCRAM_ERR_MALFORMED, "attributes out of order");
    check_final(ex, &sec,
                "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=,x=1",
                SCRAM_ERR_MALFORMED, "attribute after the proof");
    check_final(ex, &sec,
                "c=bi,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                SCRAM_ERR_MALFORMED, "bad base64 in c=");
    check_final(ex, &sec,
                "c=eSws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                SCRAM_ERR_CHANNEL_BINDING, "c= does not repeat the gs2 header (y,, for n,,)");
    check_final(ex, &sec, "", SCRAM_ERR_MALFORMED, "empty message");
    check_final(ex, &sec, ",,,", SCRAM_ERR_MALFORMED, "only commas");

    /* An extension between the nonce and the proof is allowed, and is part
     * of the signed AuthMessage: the RFC proof no longer matches it. */
    check_final(ex, &sec,
                "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,x=ext,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                SCRAM_ERR_NOT_AUTHORIZED, "extension not covered by the proof");

    /* A NUL inside the message */
    scram_server *s = rfc_server(ex, &sec);
    char *out = NULL;
    is_int(scram_server_client_final(s, ex->client_final, strlen(ex->client_final) + 1, &out),
           SCRAM_ERR_MALFORMED, "client-final with a NUL byte");
    scram_server_free(s);
}

static void check_first(const char *msg, int plus_advertised, scram_result want, const char *why)
{
    scram_server *s = scram_server_new(HASH_SHA256, NULL, NULL, 0, "snonce");
    const char *u = NULL, *a = NULL;
    is_int(scram_server_client_first(s, msg, strlen(msg), plus_advertised, &u, &a), want,
           "client-first: %s", why);
    if (want != SCRAM_OK) {
        char *out = NULL;
        scram_secrets sec = {0};
        sec.alg = HASH_SHA256;
        is_int(scram_server_first(s, &sec, &out), SCRAM_ERR_INTERNAL, "  no server-first after that");
    }
    scram_server_free(s);
}

static void test_client_first_parsing(void)
{
    check_first("", 0, SCRAM_ERR_MALFORMED, "empty");
    check_first("n,", 0, SCRAM_ERR_MALFORMED, "gs2 header cut short");
    check_first("n,,", 0, SCRAM_ERR_MALFORMED, "no bare message");
    check_first("x,,n=user,r=abc", 0, SCRAM_ERR_MALFORMED, "unknown cbind flag");
    check_first("N,,n=user,r=abc", 0, SCRAM_ERR_MALFORMED, "upper-case flag");
    check_first("nn,,n=user,r=abc", 0, SCRAM_ERR_MALFORMED, "flag too long");
    check_first("n,,r=abc", 0, SCRAM_ERR_MALFORMED, "missing username");
    check_first("n,,n=user", 0, SCRAM_ERR_MALFORMED, "missing nonce");
    check_first("n,,r=abc,n=user", 0, SCRAM_ERR_MALFORMED, "nonce before username");
    check_first("n,,n=,r=abc", 0, SCRAM_ERR_MALFORMED, "empty username");
    check_first("n,,n=user,r=", 0, SCRAM_ERR_MALFORMED, "empty nonce");
    check_first("n,,n=user,r=a b", 0, SCRAM_ERR_MALFORMED, "space in the nonce");
    check_first("n,,n=user,r=abc,", 0, SCRAM_ERR_MALFORMED, "trailing comma");
    check_first("n,,n=user,r=abc,1=x", 0, SCRAM_ERR_MALFORMED, "extension name not a letter");
    check_first("n,,n=user,r=abc,x=", 0, SCRAM_ERR_MALFORMED, "empty extension value");
    check_first("n,,n=us=2Xer,r=abc", 0, SCRAM_ERR_MALFORMED, "bad escape =2X");
    check_first("n,,n=us=er,r=abc", 0, SCRAM_ERR_MALFORMED, "bare '=' in username");
    check_first("n,,n=user=2,r=abc", 0, SCRAM_ERR_MALFORMED, "escape cut short");
    check_first("n,,n=user=,r=abc", 0, SCRAM_ERR_MALFORMED, "'=' at the end of the username");
    check_first("n,,m=foo,n=user,r=abc", 0, SCRAM_ERR_MALFORMED, "mandatory extension m=");
    check_first("n,a=,n=user,r=abc", 0, SCRAM_ERR_MALFORMED, "empty authzid");
    check_first("n,a=x=2Zy,n=user,r=abc", 0, SCRAM_ERR_MALFORMED, "bad escape in authzid");
    check_first("n,b=x,n=user,r=abc", 0, SCRAM_ERR_MALFORMED, "unknown gs2 attribute");
    check_first("n,,n=\xff,r=abc", 0, SCRAM_ERR_MALFORMED, "username not UTF-8");
    check_first("n,,n=us\x07r,r=abc", 0, SCRAM_ERR_MALFORMED, "username prohibited by SASLprep");
    check_first("p=,,n=user,r=abc", 0, SCRAM_ERR_MALFORMED, "empty cb-name");
    check_first("p=tls_exporter,,n=user,r=abc", 0, SCRAM_ERR_MALFORMED, "bad cb-name");
    check_first("n,,n=user,r=abc,x=ext", 0, SCRAM_OK, "optional extension accepted");

    scram_server *s = scram_server_new(HASH_SHA256, NULL, NULL, 0, "snonce");
    const char *u = NULL, *a = NULL;
    const char msg[] = "n,,n=user,r=abc";
    is_int(scram_server_client_first(s, msg, sizeof msg, 0, &u, &a), SCRAM_ERR_MALFORMED,
           "client-first with a NUL byte");
    scram_server_free(s);

    /* escapes and SASLprep of the username, and the authzid */
    s = scram_server_new(HASH_SHA256, NULL, NULL, 0, "snonce");
    const char *m2 = "n,a=juliet@example.com/a=2Cb=3D,n=a=2Cb=3Dc,r=abc";
    is_int(scram_server_client_first(s, m2, strlen(m2), 0, &u, &a), SCRAM_OK,
           "client-first with authzid and escapes");
    is_str(u, "a,b=c", "  username escapes decoded");
    is_str(a, "juliet@example.com/a,b=", "  authzid escapes decoded");
    scram_server_free(s);

    s = scram_server_new(HASH_SHA256, NULL, NULL, 0, "snonce");
    const char *m3 = "n,,n=\xe2\x85\xa8" "a\xc2\xad" "b,r=abc";
    is_int(scram_server_client_first(s, m3, strlen(m3), 0, &u, &a), SCRAM_OK,
           "client-first with a username needing SASLprep");
    is_str(u, "IXab", "  username SASLprep'd (U+2168 -> IX, soft hyphen dropped)");
    scram_server_free(s);

    ok(scram_server_new(HASH_SHA256, NULL, NULL, 0, "bad,nonce") == NULL,
       "server nonce with a comma refused");
}

/* A client-final computed here, independently of scram_client. */
static char *manual_final(hash_alg alg, const char *password, const char *salt64, unsigned iter,
                          const char *client_first_bare, const char *server_first,
                          const char *without_proof)
{
    size_t hl = hash_len(alg);
    unsigned char salt[SCRAM_SALT_MAX], salted[HASH_MAX_LEN], ck[HASH_MAX_LEN], sk[HASH_MAX_LEN];
    unsigned char sig[HASH_MAX_LEN], proof[HASH_MAX_LEN];
    long n = base64_decode(salt64, strlen(salt64), salt);
    pbkdf2_hmac(alg, password, strlen(password), salt, (size_t)n, iter, salted, hl);
    hmac(alg, salted, hl, "Client Key", 10, ck);
    hash_digest(alg, ck, hl, sk);
    size_t am_len = strlen(client_first_bare) + strlen(server_first) + strlen(without_proof) + 2;
    char *am = malloc(am_len + 1);
    snprintf(am, am_len + 1, "%s,%s,%s", client_first_bare, server_first, without_proof);
    hmac(alg, sk, hl, am, am_len, sig);
    for (size_t i = 0; i < hl; i++)
        proof[i] = ck[i] ^ sig[i];
    char p64[64];
    base64_encode(proof, hl, p64);
    size_t out_len = strlen(without_proof) + 3 + strlen(p64);
    char *out = malloc(out_len + 1);
    snprintf(out, out_len + 1, "%s,p=%s", without_proof, p64);
    free(am);
    return out;
}

static void test_authzid_exchange(void)
{
    /* A full exchange with an authzid: c= must carry it, since the gs2
     * header is part of the signed channel binding. */
    scram_secrets sec;
    secrets_for(HASH_SHA256, "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096, &sec);
    char *sf = NULL;
    const char *cf = "n,a=admin@example.com,n=user,r=cnonce";
    scram_server *s = server_upto_first(HASH_SHA256, NULL, NULL, 0, "snonce", &sec, cf, &sf);
    ok(s != NULL, "authzid exchange: server-first");
    is_str(sf, "r=cnoncesnonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "  server-first");
    char c64[64];
    base64_encode("n,a=admin@example.com,", 22, c64);
    char wp[128];
    snprintf(wp, sizeof wp, "c=%s,r=cnoncesnonce", c64);
    char *final = manual_final(HASH_SHA256, "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096,
                               "n=user,r=cnonce", sf, wp);
    char *out = NULL;
    is_int(scram_server_client_final(s, final, strlen(final), &out), SCRAM_OK,
           "  proof over the authzid header accepted");
    ok(out && strncmp(out, "v=", 2) == 0, "  server-final is a verifier");
    free(out);
    free(final);
    free(sf);
    scram_server_free(s);

    /* Same, but c= is "biws" (n,, without the authzid): refused */
    s = server_upto_first(HASH_SHA256, NULL, NULL, 0, "snonce", &sec, cf, &sf);
    final = manual_final(HASH_SHA256, "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096,
                         "n=user,r=cnonce", sf, "c=biws,r=cnoncesnonce");
    out = NULL;
    is_int(scram_server_client_final(s, final, strlen(final), &out), SCRAM_ERR_CHANNEL_BINDING,
           "  c= without the authzid refused");
    free(final);
    free(sf);
    scram_server_free(s);
}

static void test_channel_binding(void)
{
    const unsigned char cb[] = "fake tls-exporter data \x01\x02\x03 with bytes";
    const unsigned char cb_other[] = "other connection's exporter data 0123456789";
    const char *u, *a;

    /* 'y' downgrade: the client could bind and we offered -PLUS */
    check_first("y,,n=user,r=abc", 1, SCRAM_ERR_CHANNEL_BINDING, "'y' while -PLUS was advertised");
    check_first("y,,n=user,r=abc", 0, SCRAM_OK, "'y' while -PLUS was not advertised");
    check_first("p=tls-exporter,,n=user,r=abc", 0, SCRAM_ERR_CHANNEL_BINDING,
                "'p' on a mechanism without -PLUS");

    scram_server *s = scram_server_new(HASH_SHA256, "tls-exporter", cb, sizeof cb, "snonce");
    const char *m = "n,,n=user,r=abc";
    is_int(scram_server_client_first(s, m, strlen(m), 1, &u, &a), SCRAM_ERR_CHANNEL_BINDING,
           "'n' on -PLUS refused");
    scram_server_free(s);
    s = scram_server_new(HASH_SHA256, "tls-exporter", cb, sizeof cb, "snonce");
    m = "p=tls-unique,,n=user,r=abc";
    is_int(scram_server_client_first(s, m, strlen(m), 1, &u, &a), SCRAM_ERR_CHANNEL_BINDING,
           "wrong channel binding type refused");
    scram_server_free(s);

    /* 'y' exchange completes when -PLUS was not offered (c= is "eSws") */
    scram_secrets sec;
    secrets_for(HASH_SHA256, "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096, &sec);
    char *sf = NULL, *out = NULL;
    s = server_upto_first(HASH_SHA256, NULL, NULL, 0, "snonce", &sec, "y,,n=user,r=cnonce", &sf);
    char *final = manual_final(HASH_SHA256, "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096,
                               "n=user,r=cnonce", sf, "c=eSws,r=cnoncesnonce");
    is_int(scram_server_client_final(s, final, strlen(final), &out), SCRAM_OK,
           "'y' exchange without -PLUS on offer succeeds");
    free(out);
    free(final);
    free(sf);
    scram_server_free(s);

    /* A full SCRAM-SHA-256-PLUS exchange, both ends ours */
    scram_client *c = scram_client_new(HASH_SHA256, "user", "pencil", NULL);
    is_int(scram_client_set_channel_binding(c, "tls-exporter", cb, sizeof cb), 0,
           "client binds the channel");
    char *cf = scram_client_first(c);
    ok(cf && strncmp(cf, "p=tls-exporter,,n=user,r=", 25) == 0, "-PLUS client-first has p=tls-exporter");
    is_int(scram_client_set_channel_binding(c, "tls-exporter", cb, sizeof cb), -1,
           "binding after client-first refused");
    s = scram_server_new(HASH_SHA256, "tls-exporter", cb, sizeof cb, NULL);
    is_int(scram_server_client_first(s, cf, strlen(cf), 1, &u, &a), SCRAM_OK,
           "-PLUS server accepts client-first");
    sf = NULL;
    is_int(scram_server_first(s, &sec, &sf), SCRAM_OK, "-PLUS server-first");
    final = scram_client_final(c, sf, strlen(sf));
    ok(final != NULL, "-PLUS client-final made");
    /* c= is base64 of "p=tls-exporter,," followed by the binding data */
    unsigned char expect_raw[128];
    memcpy(expect_raw, "p=tls-exporter,,", 16);
    memcpy(expect_raw + 16, cb, sizeof cb);
    char expect64[256];
    base64_encode(expect_raw, 16 + sizeof cb, expect64);
    ok(final && strncmp(final + 2, expect64, strlen(expect64)) == 0,
       "-PLUS c= carries header and binding data");
    out = NULL;
    is_int(scram_server_client_final(s, final, strlen(final), &out), SCRAM_OK,
           "-PLUS exchange succeeds");
    ok(out && scram_client_verify(c, out, strlen(out)), "-PLUS client verifies the server");
    free(out);
    free(final);
    free(sf);
    free(cf);
    scram_server_free(s);
    scram_client_free(c);

    /* Mismatch: the client saw another channel (a man in the middle) */
    c = scram_client_new(HASH_SHA256, "user", "pencil", NULL);
    scram_client_set_channel_binding(c, "tls-exporter", cb_other, sizeof cb_other);
    cf = scram_client_first(c);
    s = scram_server_new(HASH_SHA256, "tls-exporter", cb, sizeof cb, NULL);
    is_int(scram_server_client_first(s, cf, strlen(cf), 1, &u, &a), SCRAM_OK,
           "mismatch: client-first accepted");
    sf = NULL;
    scram_server_first(s, &sec, &sf);
    final = scram_client_final(c, sf, strlen(sf));
    out = NULL;
    is_int(scram_server_client_final(s, final, strlen(final), &out), SCRAM_ERR_CHANNEL_BINDING,
           "mismatch: channel binding data differs");
    ok(out == NULL, "  no server-final");
    free(final);
    free(sf);
    free(cf);
    scram_server_free(s);
    scram_client_free(c);
}

static void test_client_rejects(void)
{
    static const struct {
        const char *msg, *why;
    } bad[] = {
        {"r=othernonceXYZ,s=QSXCR+Q6sek8bf92,i=4096", "nonce not extending ours"},
        {"r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096", "nonce without server part"},
        {"r=fyko+d2lbbFgONRv9qkxdawLxyz,i=4096", "missing salt"},
        {"r=fyko+d2lbbFgONRv9qkxdawLxyz,s=QSXCR+Q6sek8bf92", "missing iteration count"},
        {"r=fyko+d2lbbFgONRv9qkxdawLxyz,s=QSXCR+Q6sek8bf9,i=4096", "bad salt base64"},
        {"r=fyko+d2lbbFgONRv9qkxdawLxyz,s=QSXCR+Q6sek8bf92,i=0", "zero iterations"},
        {"r=fyko+d2lbbFgONRv9qkxdawLxyz,s=QSXCR+Q6sek8bf92,i=-1", "negative iterations"},
        {"r=fyko+d2lbbFgONRv9qkxdawLxyz,s=QSXCR+Q6sek8bf92,i=4x", "non-numeric iterations"},
        {"r=fyko+d2lbbFgONRv9qkxdawLxyz,s=QSXCR+Q6sek8bf92,i=99999999999", "huge iterations"},
        {"m=ext,r=fyko+d2lbbFgONRv9qkxdawLxyz,s=QSXCR+Q6sek8bf92,i=4096", "mandatory extension"},
        {"e=other-error", "server error"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        scram_client *c = scram_client_new(HASH_SHA1, "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL");
        free(scram_client_first(c));
        char *final = scram_client_final(c, bad[i].msg, strlen(bad[i].msg));
        ok(final == NULL, "client refuses server-first: %s", bad[i].why);
        free(final);
        ok(!scram_client_verify(c, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", 30), "  and verifies nothing");
        scram_client_free(c);
    }

    /* The client escapes ',' and '=' in the username */
    scram_client *c = scram_client_new(HASH_SHA1, "a,b=c", "pencil", "xyz");
    char *cf = scram_client_first(c);
    is_str(cf, "n,,n=a=2Cb=3Dc,r=xyz", "client escapes the username");
    free(cf);
    scram_client_free(c);
    ok(scram_client_new(HASH_SHA1, "us\x07r", "pencil", NULL) == NULL,
       "client refuses a username prohibited by SASLprep");
    ok(scram_client_new(HASH_SHA1, "user", "pencil", "bad nonce") == NULL,
       "client refuses a nonce with a space");
}

static void test_saslprep_and_secrets(void)
{
    /* RFC 4013 §3 examples */
    char *p;
    is_str(p = scram_saslprep("I\xc2\xadX"), "IX", "SASLprep: soft hyphen mapped to nothing");
    free(p);
    is_str(p = scram_saslprep("user"), "user", "SASLprep: no transformation");
    free(p);
    is_str(p = scram_saslprep("USER"), "USER", "SASLprep: case preserved");
    free(p);
    is_str(p = scram_saslprep("\xc2\xaa"), "a", "SASLprep: U+00AA NFKC to 'a'");
    free(p);
    is_str(p = scram_saslprep("\xe2\x85\xa8"), "IX", "SASLprep: U+2168 NFKC to 'IX'");
    free(p);
    ok(scram_saslprep("\x07") == NULL, "SASLprep: U+0007 prohibited");
    ok(scram_saslprep("\xd8\xa7" "1") == NULL, "SASLprep: bidi violation");
    ok(scram_saslprep("\xc3\x28") == NULL, "SASLprep: invalid UTF-8");

    scram_secrets a, b;
    ok(scram_make_secrets_random(HASH_SHA256, "pencil", 4096, &a) == 0, "random secrets made");
    ok(scram_make_secrets_random(HASH_SHA256, "pencil", 4096, &b) == 0, "random secrets again");
    is_int(a.salt_len, 16, "random salt is 16 bytes");
    ok(memcmp(a.salt, b.salt, 16) != 0, "random salts differ");
    ok(memcmp(a.stored_key, b.stored_key, SHA256_LEN) != 0, "so do the stored keys");
    is_int(a.alg, HASH_SHA256, "algorithm recorded");

    unsigned char salt[SCRAM_SALT_MAX + 1] = {0};
    is_int(scram_make_secrets(HASH_SHA1, "pencil", salt, SCRAM_SALT_MAX + 1, 4096, &a), -1,
           "salt longer than SCRAM_SALT_MAX refused");
    is_int(scram_make_secrets(HASH_SHA1, "pencil", salt, 0, 4096, &a), -1, "empty salt refused");
    is_int(scram_make_secrets(HASH_SHA1, "pencil", salt, 16, 0, &a), -1, "zero iterations refused");
    is_int(scram_make_secrets(HASH_SHA1, "\x07", salt, 16, 4096, &a), -1,
           "password prohibited by SASLprep refused");

    /* Secrets of another algorithm are an internal error, not a crash */
    scram_server *s = scram_server_new(HASH_SHA256, NULL, NULL, 0, "snonce");
    const char *u, *az;
    scram_server_client_first(s, "n,,n=user,r=abc", 15, 0, &u, &az);
    scram_secrets sha1_sec;
    secrets_for(HASH_SHA1, "pencil", "QSXCR+Q6sek8bf92", 4096, &sha1_sec);
    char *out = NULL;
    is_int(scram_server_first(s, &sha1_sec, &out), SCRAM_ERR_INTERNAL, "secrets of the wrong hash refused");
    ok(out == NULL, "  no server-first");
    scram_server_free(s);

    /* Steps out of order */
    s = scram_server_new(HASH_SHA256, NULL, NULL, 0, NULL);
    out = NULL;
    is_int(scram_server_client_final(s, "c=biws,r=x,p=x", 14, &out), SCRAM_ERR_INTERNAL,
           "client-final before client-first refused");
    scram_server_free(s);
}

int main(void)
{
    test_rfc_example_server(&sha1_example);
    test_rfc_example_client(&sha1_example);
    test_rfc_example_server(&sha256_example);
    test_rfc_example_client(&sha256_example);
    test_exchanges();
    test_bad_client_final();
    test_client_first_parsing();
    test_authzid_exchange();
    test_channel_binding();
    test_client_rejects();
    test_saslprep_and_secrets();
    return tap_done();
}
