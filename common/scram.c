/* SCRAM (RFC 5802, RFC 7677): salted secrets, the server side of an
 * exchange and a client side for tests and the benchmark.
 *
 * Messages are parsed strictly in the order and syntax of RFC 5802 §7:
 * anything the grammar does not allow is SCRAM_ERR_MALFORMED. */
#include "common/scram.h"
#include "common/utf8.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stringprep.h>

#include "common/base64.h"

/* Length of the nonce part we generate: 24 characters of [A-Za-z0-9] carry
 * about 143 bits. */
#define SCRAM_NONCE_LEN 24

/* ---------------------------------------------------------------- helpers */

/* Concatenate NUL-terminated strings up to a NULL; malloc'd or NULL. */
static char *str_join(const char *first, ...)
{
    va_list ap;
    size_t total = 0;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        total += strlen(s);
    va_end(ap);
    char *out = malloc(total + 1);
    if (!out)
        return NULL;
    char *p = out;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        size_t n = strlen(s);
        memcpy(p, s, n);
        p += n;
    }
    va_end(ap);
    *p = '\0';
    return out;
}

static char *str_ndup(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* Free a string that held a secret. */
static void free_secret_str(char *s)
{
    if (s) {
        crypto_wipe(s, strlen(s));
        free(s);
    }
}

static char *b64_alloc(const void *data, size_t len)
{
    char *out = malloc(base64_encoded_len(len) + 1);
    if (out)
        base64_encode(data, len, out);
    return out;
}


/* A copy of msg[0..len) with a NUL after it, or NULL if msg holds a NUL
 * (SCRAM messages never do) or memory ran out. */
static char *msg_dup(const char *msg, size_t len)
{
    if (!msg || memchr(msg, '\0', len))
        return NULL;
    return str_ndup(msg, len);
}

/* printable = %x21-2B / %x2D-7E: the nonce alphabet. */
static int nonce_valid(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ',')
            return 0;
    }
    return 1;
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Decode a saslname: "=2C" is ',' and "=3D" is '='; any other '=' is an
 * error, as is an empty name or bad UTF-8. Returns malloc'd or NULL. */
static char *saslname_decode(const char *s, size_t len)
{
    if (len == 0 || !utf8_valid(s, len))
        return NULL;
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '=') {
            out[o++] = s[i];
            continue;
        }
        /* ABNF literals are case-insensitive, so "=2c" is as good as "=2C" */
        if (len - i >= 3 && s[i + 1] == '2' && (s[i + 2] == 'C' || s[i + 2] == 'c'))
            out[o++] = ',';
        else if (len - i >= 3 && s[i + 1] == '3' && (s[i + 2] == 'D' || s[i + 2] == 'd'))
            out[o++] = '=';
        else {
            free(out);
            return NULL;
        }
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* Encode a name as a saslname. Returns malloc'd or NULL. */
static char *saslname_encode(const char *s)
{
    size_t len = strlen(s), extra = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ',' || s[i] == '=')
            extra += 2;
    char *out = malloc(len + extra + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ',') {
            memcpy(out + o, "=2C", 3);
            o += 3;
        } else if (s[i] == '=') {
            memcpy(out + o, "=3D", 3);
            o += 3;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* The value of attribute `name` at *p ("name=value" up to ',' or NUL).
 * On success *p points at the ',' or NUL after it. The value must not be
 * empty. Returns a pointer to the value and its length in *vlen, or NULL. */
static const char *attr_take(const char **p, char name, size_t *vlen)
{
    const char *s = *p;
    if (s[0] != name || s[1] != '=')
        return NULL;
    const char *v = s + 2;
    const char *end = strchr(v, ',');
    if (!end)
        end = v + strlen(v);
    if (end == v)
        return NULL;
    *vlen = (size_t)(end - v);
    *p = end;
    return v;
}

/* Optional extensions: *("," ALPHA "=" 1*value-char) up to the end of s.
 * Unknown extensions are ignored, as RFC 5802 §5.1 requires. */
static int extensions_valid(const char *s)
{
    while (*s) {
        if (s[0] != ',' || !is_alpha(s[1]) || s[2] != '=')
            return 0;
        const char *v = s + 3;
        const char *end = strchr(v, ',');
        if (!end)
            end = v + strlen(v);
        if (end == v || !utf8_valid(v, (size_t)(end - v)))
            return 0;
        s = end;
    }
    return 1;
}

/* ------------------------------------------------------------- secrets */

char *scram_saslprep(const char *s)
{
    if (!s || !utf8_valid(s, strlen(s)))
        return NULL;
    char *out = NULL;
    if (stringprep_profile(s, &out, "SASLprep", 0) != STRINGPREP_OK) {
        free(out);
        return NULL;
    }
    return out;
}

/* ClientKey, StoredKey and ServerKey from a salted password (RFC 5802 §3). */
static void keys_from_salted(hash_alg alg, const unsigned char *salted,
                             unsigned char *client_key, unsigned char *stored_key,
                             unsigned char *server_key)
{
    size_t hl = hash_len(alg);
    hmac(alg, salted, hl, "Client Key", 10, client_key);
    hash_digest(alg, client_key, hl, stored_key);
    hmac(alg, salted, hl, "Server Key", 10, server_key);
}

int scram_make_secrets(hash_alg alg, const char *password,
                       const unsigned char *salt, size_t salt_len,
                       unsigned iterations, scram_secrets *out)
{
    if (!password || !salt || salt_len == 0 || salt_len > SCRAM_SALT_MAX || iterations == 0)
        return -1;
    char *prepped = scram_saslprep(password);
    if (!prepped)
        return -1;
    unsigned char salted[HASH_MAX_LEN], client_key[HASH_MAX_LEN];
    size_t hl = hash_len(alg);
    int rc = pbkdf2_hmac(alg, prepped, strlen(prepped), salt, salt_len, iterations, salted, hl);
    free_secret_str(prepped);
    if (rc < 0)
        return -1;
    memset(out, 0, sizeof *out);
    out->alg = alg;
    out->iterations = iterations;
    memcpy(out->salt, salt, salt_len);
    out->salt_len = salt_len;
    keys_from_salted(alg, salted, client_key, out->stored_key, out->server_key);
    crypto_wipe(salted, sizeof salted);
    crypto_wipe(client_key, sizeof client_key);
    return 0;
}

int scram_make_secrets_random(hash_alg alg, const char *password, unsigned iterations, scram_secrets *out)
{
    unsigned char salt[16];
    random_bytes(salt, sizeof salt);
    return scram_make_secrets(alg, password, salt, sizeof salt, iterations, out);
}

/* ClientProof or the key recovered from it: a XOR b into out. */
static void xor_into(unsigned char *out, const unsigned char *a, const unsigned char *b, size_t len)
{
    for (size_t i = 0; i < len; i++)
        out[i] = a[i] ^ b[i];
}

/* --------------------------------------------------------------- server */

typedef enum {
    SERVER_WANT_CLIENT_FIRST,
    SERVER_WANT_SERVER_FIRST,
    SERVER_WANT_CLIENT_FINAL,
    SERVER_DONE,
    SERVER_FAILED,
} server_state;

typedef enum { CB_FLAG_N, CB_FLAG_Y, CB_FLAG_P } cb_flag;

struct scram_server {
    hash_alg alg;
    server_state state;
    char *cb_type;             /* NULL unless this is the -PLUS mechanism */
    unsigned char *cb_data;
    size_t cb_len;
    char *server_nonce;
    cb_flag flag;
    char *gs2_header;          /* as received, with its final ',' */
    char *client_first_bare;
    char *username;
    char *authzid;
    char *nonce;               /* client nonce + server nonce */
    char *server_first;
    scram_secrets sec;
};

scram_server *scram_server_new(hash_alg alg, const char *cb_type,
                               const unsigned char *cb_data, size_t cb_len,
                               const char *server_nonce)
{
    if (alg != HASH_SHA1 && alg != HASH_SHA256)
        return NULL;
    if (server_nonce && !nonce_valid(server_nonce, strlen(server_nonce)))
        return NULL;
    scram_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->alg = alg;
    s->state = SERVER_WANT_CLIENT_FIRST;
    if (server_nonce) {
        s->server_nonce = strdup(server_nonce);
    } else if ((s->server_nonce = malloc(SCRAM_NONCE_LEN + 1))) {
        random_token(s->server_nonce, SCRAM_NONCE_LEN);
    }
    if (!s->server_nonce)
        goto fail;
    if (cb_type) {
        if (!(s->cb_type = strdup(cb_type)))
            goto fail;
        if (cb_len > 0) {
            if (!cb_data || !(s->cb_data = malloc(cb_len)))
                goto fail;
            memcpy(s->cb_data, cb_data, cb_len);
            s->cb_len = cb_len;
        }
    }
    return s;
fail:
    scram_server_free(s);
    return NULL;
}

/* cb-name = 1*(ALPHA / DIGIT / "." / "-") */
static int cb_name_valid(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!is_alpha(c) && !(c >= '0' && c <= '9') && c != '.' && c != '-')
            return 0;
    }
    return 1;
}

/* Parse client-first into s. Returns SCRAM_OK or an error. */
static scram_result parse_client_first(scram_server *s, const char *m, int plus_advertised)
{
    const char *p = m;
    const char *cb_name = NULL;
    size_t cb_name_len = 0;

    /* gs2-cbind-flag */
    if (p[0] == 'n' && p[1] == ',') {
        s->flag = CB_FLAG_N;
        p += 1;
    } else if (p[0] == 'y' && p[1] == ',') {
        s->flag = CB_FLAG_Y;
        p += 1;
    } else if (p[0] == 'p' && p[1] == '=') {
        s->flag = CB_FLAG_P;
        cb_name = p + 2;
        const char *end = strchr(cb_name, ',');
        if (!end || !cb_name_valid(cb_name, (size_t)(end - cb_name)))
            return SCRAM_ERR_MALFORMED;
        cb_name_len = (size_t)(end - cb_name);
        p = end;
    } else {
        return SCRAM_ERR_MALFORMED;
    }
    p++; /* the ',' after the flag */

    /* [ authzid ] "," */
    if (p[0] == 'a') {
        size_t vlen;
        const char *v = attr_take(&p, 'a', &vlen);
        if (!v || *p != ',')
            return SCRAM_ERR_MALFORMED;
        if (!(s->authzid = saslname_decode(v, vlen)))
            return SCRAM_ERR_MALFORMED;
    } else if (p[0] != ',') {
        return SCRAM_ERR_MALFORMED;
    }
    p++;
    if (!(s->gs2_header = str_ndup(m, (size_t)(p - m))))
        return SCRAM_ERR_INTERNAL;

    /* client-first-message-bare: [reserved-mext ","] username "," nonce ["," extensions].
     * We support no mandatory extension, so 'm=' fails the exchange. */
    const char *bare = p;
    if (p[0] == 'm' && p[1] == '=')
        return SCRAM_ERR_MALFORMED;
    size_t vlen;
    const char *v = attr_take(&p, 'n', &vlen);
    if (!v || *p != ',')
        return SCRAM_ERR_MALFORMED;
    char *name = saslname_decode(v, vlen);
    if (!name)
        return SCRAM_ERR_MALFORMED;
    s->username = scram_saslprep(name);
    free(name);
    if (!s->username || !s->username[0])
        return SCRAM_ERR_MALFORMED;
    p++;
    const char *cnonce = attr_take(&p, 'r', &vlen);
    if (!cnonce || !nonce_valid(cnonce, vlen))
        return SCRAM_ERR_MALFORMED;
    if (!extensions_valid(p))
        return SCRAM_ERR_MALFORMED;
    if (!(s->client_first_bare = strdup(bare)))
        return SCRAM_ERR_INTERNAL;
    if (!(s->nonce = malloc(vlen + strlen(s->server_nonce) + 1)))
        return SCRAM_ERR_INTERNAL;
    memcpy(s->nonce, cnonce, vlen);
    strcpy(s->nonce + vlen, s->server_nonce);

    /* Channel binding (RFC 5802 §6) */
    switch (s->flag) {
    case CB_FLAG_N:
        /* The client does not do channel binding; fine unless it chose -PLUS. */
        if (s->cb_type)
            return SCRAM_ERR_CHANNEL_BINDING;
        break;
    case CB_FLAG_Y:
        /* The client could bind but believes we cannot: if we advertised
         * -PLUS, someone stripped it from the offer. */
        if (s->cb_type || plus_advertised)
            return SCRAM_ERR_CHANNEL_BINDING;
        break;
    case CB_FLAG_P:
        if (!s->cb_type || strlen(s->cb_type) != cb_name_len
            || memcmp(s->cb_type, cb_name, cb_name_len) != 0)
            return SCRAM_ERR_CHANNEL_BINDING;
        break;
    }
    return SCRAM_OK;
}

scram_result scram_server_client_first(scram_server *s, const char *msg, size_t len,
                                       int plus_advertised,
                                       const char **username, const char **authzid)
{
    if (!s || s->state != SERVER_WANT_CLIENT_FIRST)
        return SCRAM_ERR_INTERNAL;
    s->state = SERVER_FAILED;
    char *m = msg_dup(msg, len);
    if (!m)
        return msg ? SCRAM_ERR_MALFORMED : SCRAM_ERR_INTERNAL;
    scram_result rc = parse_client_first(s, m, plus_advertised);
    free(m);
    if (rc != SCRAM_OK)
        return rc;
    s->state = SERVER_WANT_SERVER_FIRST;
    if (username)
        *username = s->username;
    if (authzid)
        *authzid = s->authzid;
    return SCRAM_OK;
}

scram_result scram_server_first(scram_server *s, const scram_secrets *sec, char **out)
{
    *out = NULL;
    if (!s || s->state != SERVER_WANT_SERVER_FIRST)
        return SCRAM_ERR_INTERNAL;
    if (!sec || sec->alg != s->alg || sec->salt_len == 0 || sec->salt_len > SCRAM_SALT_MAX
        || sec->iterations == 0) {
        s->state = SERVER_FAILED;
        return SCRAM_ERR_INTERNAL;
    }
    s->sec = *sec;
    char *salt = b64_alloc(sec->salt, sec->salt_len);
    char iter[24];
    snprintf(iter, sizeof iter, "%u", sec->iterations);
    if (salt)
        s->server_first = str_join("r=", s->nonce, ",s=", salt, ",i=", iter, (char *)NULL);
    free(salt);
    if (!s->server_first || !(*out = strdup(s->server_first))) {
        s->state = SERVER_FAILED;
        return SCRAM_ERR_INTERNAL;
    }
    s->state = SERVER_WANT_CLIENT_FINAL;
    return SCRAM_OK;
}

/* Check c=: base64 of the gs2 header, followed by the channel binding data
 * when the client bound the channel. */
static scram_result check_cbind_input(const scram_server *s, const char *v, size_t vlen)
{
    unsigned char *got = malloc(vlen / 4 * 3 + 1);
    if (!got)
        return SCRAM_ERR_INTERNAL;
    long n = base64_decode(v, vlen, got);
    if (n < 0) {
        free(got);
        return SCRAM_ERR_MALFORMED;
    }
    size_t hlen = strlen(s->gs2_header);
    size_t cblen = s->flag == CB_FLAG_P ? s->cb_len : 0;
    int match = (size_t)n == hlen + cblen && memcmp(got, s->gs2_header, hlen) == 0
             && (cblen == 0 || crypto_memeq(got + hlen, s->cb_data, cblen));
    free(got);
    return match ? SCRAM_OK : SCRAM_ERR_CHANNEL_BINDING;
}

/* Verify the parsed client-final. m is the message copy, without_proof_len
 * the length of client-final-message-without-proof, proof the decoded proof. */
static scram_result verify_proof(scram_server *s, const char *m, size_t without_proof_len,
                                 const unsigned char *proof, char **out)
{
    size_t hl = hash_len(s->alg);
    char *without_proof = str_ndup(m, without_proof_len);
    char *auth_message = without_proof
        ? str_join(s->client_first_bare, ",", s->server_first, ",", without_proof, (char *)NULL)
        : NULL;
    free(without_proof);
    if (!auth_message)
        return SCRAM_ERR_INTERNAL;
    size_t am_len = strlen(auth_message);

    unsigned char client_sig[HASH_MAX_LEN], client_key[HASH_MAX_LEN], stored[HASH_MAX_LEN];
    unsigned char server_sig[HASH_MAX_LEN];
    hmac(s->alg, s->sec.stored_key, hl, auth_message, am_len, client_sig);
    xor_into(client_key, proof, client_sig, hl);
    hash_digest(s->alg, client_key, hl, stored);
    int good = crypto_memeq(stored, s->sec.stored_key, hl);
    scram_result rc = SCRAM_ERR_NOT_AUTHORIZED;
    if (good) {
        hmac(s->alg, s->sec.server_key, hl, auth_message, am_len, server_sig);
        char *sig = b64_alloc(server_sig, hl);
        *out = sig ? str_join("v=", sig, (char *)NULL) : NULL;
        free(sig);
        rc = *out ? SCRAM_OK : SCRAM_ERR_INTERNAL;
    }
    crypto_wipe(client_key, sizeof client_key);
    crypto_wipe(client_sig, sizeof client_sig);
    free(auth_message);
    return rc;
}

static scram_result parse_client_final(scram_server *s, const char *m, char **out)
{
    /* client-final-message = without-proof "," proof; the proof is last and
     * base64 has no ',', so the last ',' starts it. */
    const char *last = strrchr(m, ',');
    if (!last)
        return SCRAM_ERR_MALFORMED;
    size_t without_proof_len = (size_t)(last - m);
    const char *pp = last + 1;
    size_t plen;
    const char *pv = attr_take(&pp, 'p', &plen);
    if (!pv)
        return SCRAM_ERR_MALFORMED;

    /* without-proof = channel-binding "," nonce ["," extensions] */
    char *head = str_ndup(m, without_proof_len);
    if (!head)
        return SCRAM_ERR_INTERNAL;
    const char *p = head;
    size_t clen, rlen;
    const char *c = attr_take(&p, 'c', &clen);
    const char *r = NULL;
    scram_result rc = SCRAM_ERR_MALFORMED;
    if (c && *p == ',') {
        p++;
        r = attr_take(&p, 'r', &rlen);
    }
    if (!r || !nonce_valid(r, rlen) || !extensions_valid(p))
        goto done;

    unsigned char proof[HASH_MAX_LEN + 3];
    size_t hl = hash_len(s->alg);
    /* a proof of the right length is 4*ceil(hl/3) characters; anything else
     * is malformed before we decode into a fixed buffer */
    if (plen != base64_encoded_len(hl) || base64_decode(pv, plen, proof) != (long)hl)
        goto done;
    if ((rc = check_cbind_input(s, c, clen)) != SCRAM_OK)
        goto done;
    if (rlen != strlen(s->nonce) || memcmp(r, s->nonce, rlen) != 0) {
        rc = SCRAM_ERR_NOT_AUTHORIZED;
        goto done;
    }
    rc = verify_proof(s, m, without_proof_len, proof, out);
done:
    free(head);
    return rc;
}

scram_result scram_server_client_final(scram_server *s, const char *msg, size_t len, char **out)
{
    *out = NULL;
    if (!s || s->state != SERVER_WANT_CLIENT_FINAL)
        return SCRAM_ERR_INTERNAL;
    s->state = SERVER_FAILED;
    char *m = msg_dup(msg, len);
    if (!m)
        return msg ? SCRAM_ERR_MALFORMED : SCRAM_ERR_INTERNAL;
    scram_result rc = parse_client_final(s, m, out);
    free(m);
    if (rc == SCRAM_OK)
        s->state = SERVER_DONE;
    return rc;
}

void scram_server_free(scram_server *s)
{
    if (!s)
        return;
    free(s->cb_type);
    free(s->cb_data);
    free(s->server_nonce);
    free(s->gs2_header);
    free(s->client_first_bare);
    free(s->username);
    free(s->authzid);
    free(s->nonce);
    free(s->server_first);
    crypto_wipe(&s->sec, sizeof s->sec);
    free(s);
}

/* --------------------------------------------------------------- client */

struct scram_client {
    hash_alg alg;
    char *username;            /* SASLprep'd and saslname-encoded */
    char *password;            /* SASLprep'd */
    char *cnonce;
    char *cb_type;
    unsigned char *cb_data;
    size_t cb_len;
    char *gs2_header;
    char *client_first_bare;
    unsigned char salted[HASH_MAX_LEN];
    size_t salted_len;
    unsigned char server_sig[HASH_MAX_LEN];
    int have_server_sig;
};

scram_client *scram_client_new(hash_alg alg, const char *username, const char *password,
                               const char *client_nonce)
{
    if ((alg != HASH_SHA1 && alg != HASH_SHA256) || !username || !password)
        return NULL;
    if (client_nonce && !nonce_valid(client_nonce, strlen(client_nonce)))
        return NULL;
    scram_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->alg = alg;
    char *user = scram_saslprep(username);
    if (!user || !user[0]) {
        free(user);
        goto fail;
    }
    c->username = saslname_encode(user);
    free(user);
    if (!c->username || !(c->password = scram_saslprep(password)))
        goto fail;
    if (client_nonce)
        c->cnonce = strdup(client_nonce);
    else if ((c->cnonce = malloc(SCRAM_NONCE_LEN + 1)))
        random_token(c->cnonce, SCRAM_NONCE_LEN);
    if (!c->cnonce)
        goto fail;
    return c;
fail:
    scram_client_free(c);
    return NULL;
}

int scram_client_set_channel_binding(scram_client *c, const char *cb_type,
                                     const unsigned char *cb_data, size_t cb_len)
{
    if (!c || !cb_type || !cb_name_valid(cb_type, strlen(cb_type)) || c->client_first_bare
        || c->cb_type || (cb_len > 0 && !cb_data))
        return -1;
    if (!(c->cb_type = strdup(cb_type)))
        return -1;
    if (cb_len > 0) {
        if (!(c->cb_data = malloc(cb_len)))
            return -1;
        memcpy(c->cb_data, cb_data, cb_len);
        c->cb_len = cb_len;
    }
    return 0;
}

char *scram_client_first(scram_client *c)
{
    if (!c || c->client_first_bare)
        return NULL;
    c->gs2_header = c->cb_type ? str_join("p=", c->cb_type, ",,", (char *)NULL) : strdup("n,,");
    c->client_first_bare = str_join("n=", c->username, ",r=", c->cnonce, (char *)NULL);
    if (!c->gs2_header || !c->client_first_bare)
        return NULL;
    return str_join(c->gs2_header, c->client_first_bare, (char *)NULL);
}

/* Parse a decimal iteration count: 1..UINT32_MAX, no sign, no leading zero. */
static int parse_iterations(const char *v, size_t len, unsigned *out)
{
    if (len == 0 || len > 10 || v[0] == '0')
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    if (n > 0x7fffffff) /* PKCS5_PBKDF2_HMAC takes an int */
        return -1;
    *out = (unsigned)n;
    return 0;
}

char *scram_client_final(scram_client *c, const char *server_first, size_t len)
{
    if (!c || !c->client_first_bare || c->salted_len)
        return NULL;
    char *m = msg_dup(server_first, len);
    if (!m)
        return NULL;
    char *result = NULL, *without_proof = NULL, *auth_message = NULL, *cbind = NULL;
    unsigned char *salt = NULL, *cbind_raw = NULL;
    unsigned char client_key[HASH_MAX_LEN], stored[HASH_MAX_LEN], server_key[HASH_MAX_LEN];
    unsigned char client_sig[HASH_MAX_LEN], proof[HASH_MAX_LEN];
    size_t hl = hash_len(c->alg);

    /* server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions] */
    const char *p = m;
    size_t nlen, slen, ilen;
    const char *nonce = attr_take(&p, 'r', &nlen);
    if (!nonce || *p != ',' || !nonce_valid(nonce, nlen))
        goto done;
    /* it must extend our nonce with at least one character of the server's */
    size_t cnlen = strlen(c->cnonce);
    if (nlen <= cnlen || memcmp(nonce, c->cnonce, cnlen) != 0)
        goto done;
    p++;
    const char *salt64 = attr_take(&p, 's', &slen);
    if (!salt64 || *p != ',')
        goto done;
    p++;
    const char *iter = attr_take(&p, 'i', &ilen);
    unsigned iterations;
    if (!iter || parse_iterations(iter, ilen, &iterations) < 0 || !extensions_valid(p))
        goto done;
    if (!(salt = malloc(slen / 4 * 3 + 1)))
        goto done;
    long saltlen = base64_decode(salt64, slen, salt);
    if (saltlen <= 0)
        goto done;

    if (pbkdf2_hmac(c->alg, c->password, strlen(c->password), salt, (size_t)saltlen, iterations,
                    c->salted, hl) < 0)
        goto done;
    c->salted_len = hl;

    /* c= carries the gs2 header and, with -PLUS, the channel binding data */
    size_t hlen = strlen(c->gs2_header);
    if (!(cbind_raw = malloc(hlen + c->cb_len + 1)))
        goto done;
    memcpy(cbind_raw, c->gs2_header, hlen);
    if (c->cb_len)
        memcpy(cbind_raw + hlen, c->cb_data, c->cb_len);
    if (!(cbind = b64_alloc(cbind_raw, hlen + c->cb_len)))
        goto done;
    char *nonce_str = str_ndup(nonce, nlen);
    if (nonce_str)
        without_proof = str_join("c=", cbind, ",r=", nonce_str, (char *)NULL);
    free(nonce_str);
    if (!without_proof)
        goto done;
    auth_message = str_join(c->client_first_bare, ",", m, ",", without_proof, (char *)NULL);
    if (!auth_message)
        goto done;
    size_t am_len = strlen(auth_message);

    keys_from_salted(c->alg, c->salted, client_key, stored, server_key);
    hmac(c->alg, stored, hl, auth_message, am_len, client_sig);
    xor_into(proof, client_key, client_sig, hl);
    hmac(c->alg, server_key, hl, auth_message, am_len, c->server_sig);
    c->have_server_sig = 1;
    char *proof64 = b64_alloc(proof, hl);
    if (proof64)
        result = str_join(without_proof, ",p=", proof64, (char *)NULL);
    free(proof64);

done:
    crypto_wipe(client_key, sizeof client_key);
    crypto_wipe(server_key, sizeof server_key);
    crypto_wipe(client_sig, sizeof client_sig);
    free(m);
    free(salt);
    free(cbind_raw);
    free(cbind);
    free(without_proof);
    free(auth_message);
    return result;
}

int scram_client_verify(scram_client *c, const char *server_final, size_t len)
{
    if (!c || !c->have_server_sig)
        return 0;
    char *m = msg_dup(server_final, len);
    if (!m)
        return 0;
    const char *p = m;
    size_t vlen;
    const char *v = attr_take(&p, 'v', &vlen);
    size_t hl = hash_len(c->alg);
    unsigned char sig[HASH_MAX_LEN + 3];
    int good = v && extensions_valid(p) && vlen == base64_encoded_len(hl)
            && base64_decode(v, vlen, sig) == (long)hl
            && crypto_memeq(sig, c->server_sig, hl);
    free(m);
    return good;
}

const unsigned char *scram_client_salted_password(const scram_client *c, size_t *len)
{
    if (!c || !c->salted_len) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = c->salted_len;
    return c->salted;
}

void scram_client_free(scram_client *c)
{
    if (!c)
        return;
    free(c->username);
    free_secret_str(c->password);
    free(c->cnonce);
    free(c->cb_type);
    free(c->cb_data);
    free(c->gs2_header);
    free(c->client_first_bare);
    crypto_wipe(c->salted, sizeof c->salted);
    crypto_wipe(c->server_sig, sizeof c->server_sig);
    free(c);
}
