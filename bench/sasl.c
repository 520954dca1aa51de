/* SASL client for the load generator: PLAIN, and SCRAM-SHA-1 (RFC 5802)
 * caching the salted password per account as a real client does, so that a
 * repeated login costs the client no PBKDF2 (common/scram.c's client always
 * derives it; the primitives come from common/crypto.h and base64.h). */
#include "bench/lg.h"
#include "common/base64.h"
#include "common/crypto.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHA1_LEN 20

struct lg_salt_cache {
    int users;
    struct entry {
        unsigned char salted[SHA1_LEN];
        unsigned char salt[64];   /* Prosody's salts are 36-byte UUIDs */
        unsigned salt_len, iterations;
        int valid;
    } *e;
};

typedef struct lg_scram {
    char cnonce[25];
    char first_bare[128];
    unsigned char server_sig[SHA1_LEN];
} lg_scram;

lg_salt_cache *sasl_cache_new(int users)
{
    lg_salt_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->users = users;
    c->e = calloc((size_t)(users > 0 ? users : 1), sizeof *c->e);
    if (!c->e) { free(c); return NULL; }
    return c;
}

void sasl_cache_free(lg_salt_cache *c)
{
    if (!c) return;
    free(c->e);
    free(c);
}

void sasl_free(lg_conn *c)
{
    free(c->scram);
    c->scram = NULL;
}

static void send_b64_element(lg_worker *w, lg_conn *c, const char *head, const char *data, size_t len,
                             const char *tail)
{
    char *b = malloc(base64_encoded_len(len) + 1);
    if (!b) { conn_close(w, c, 0); return; }
    size_t n = base64_encode(data, len, b);
    conn_send(w, c, head, strlen(head));
    conn_send(w, c, b, n);
    conn_send(w, c, tail, strlen(tail));
    free(b);
}

void sasl_begin(lg_worker *w, lg_conn *c)
{
    const lg_opts *o = w->o;
    char user[64];
    snprintf(user, sizeof user, "%s%d", o->prefix, c->user);
    if (o->mech == MECH_PLAIN) {
        char msg[256];
        int n = snprintf(msg, sizeof msg, "%c%s%c%s", 0, user, 0, o->password);
        send_b64_element(w, c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>", msg,
                         (size_t)n, "</auth>");
        return;
    }
    sasl_free(c);
    c->scram = calloc(1, sizeof *c->scram);
    if (!c->scram) { conn_close(w, c, 0); return; }
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[24];
    RAND_bytes(rnd, sizeof rnd);
    for (int i = 0; i < 24; i++) c->scram->cnonce[i] = alnum[rnd[i] % 62];
    snprintf(c->scram->first_bare, sizeof c->scram->first_bare, "n=%s,r=%s", user, c->scram->cnonce);
    char msg[160];
    int n = snprintf(msg, sizeof msg, "n,,%s", c->scram->first_bare);
    send_b64_element(w, c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>", msg,
                     (size_t)n, "</auth>");
}

/* The value of attribute K in a SCRAM message ("r=...,s=...,i=..."). */
static int attr(const char *msg, size_t len, char k, const char **v, size_t *vlen)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && msg[j] != ',') j++;
        if (j - i >= 2 && msg[i] == k && msg[i + 1] == '=') {
            *v = msg + i + 2;
            *vlen = j - i - 2;
            return 0;
        }
        i = j + 1;
    }
    return -1;
}

int sasl_challenge(lg_worker *w, lg_conn *c, const char *b64, size_t len)
{
    if (!c->scram) return -1;
    unsigned char sf[512];
    if (len > 600) return -1;
    long sflen = base64_decode(b64, len, sf);
    if (sflen <= 0 || sflen >= (long)sizeof sf) return -1;
    const char *r, *s, *i;
    size_t rl, sl, il;
    if (attr((char *)sf, (size_t)sflen, 'r', &r, &rl) || attr((char *)sf, (size_t)sflen, 's', &s, &sl)
        || attr((char *)sf, (size_t)sflen, 'i', &i, &il))
        return -1;
    if (rl < 24 || memcmp(r, c->scram->cnonce, 24) != 0 || rl > 200 || il > 10) return -1;
    unsigned char salt[96];
    if (sl > 128) return -1;   /* decodes to at most 96 bytes */
    long saltlen = base64_decode(s, sl, salt);
    if (saltlen <= 0 || saltlen > 64) return -1;
    char ibuf[12];
    memcpy(ibuf, i, il);
    ibuf[il] = 0;
    unsigned iter = (unsigned)strtoul(ibuf, NULL, 10);
    if (!iter) return -1;

    unsigned char salted[SHA1_LEN];
    struct entry *e = NULL;
    /* --shared-salt: every account was provisioned with one salt; the entry
     * is still checked against the salt and iterations offered. */
    int slot = w->o->shared_salt ? 0 : c->user - w->o->user_base;
    if (w->cache && slot >= 0 && slot < w->cache->users) e = &w->cache->e[slot];
    if (e && e->valid && e->iterations == iter && e->salt_len == (unsigned)saltlen
        && memcmp(e->salt, salt, (size_t)saltlen) == 0) {
        memcpy(salted, e->salted, SHA1_LEN);
    } else {
        if (pbkdf2_hmac(HASH_SHA1, w->o->password, strlen(w->o->password), salt, (size_t)saltlen, iter, salted,
                        SHA1_LEN) != 0)
            return -1;
        w->st.pbkdf2++;
        if (e) {
            memcpy(e->salted, salted, SHA1_LEN);
            memcpy(e->salt, salt, (size_t)saltlen);
            e->salt_len = (unsigned)saltlen;
            e->iterations = iter;
            e->valid = 1;
        }
    }
    char final_wo[256];
    int fl = snprintf(final_wo, sizeof final_wo, "c=biws,r=%.*s", (int)rl, r);
    char auth[900];
    int al = snprintf(auth, sizeof auth, "%s,%.*s,%s", c->scram->first_bare, (int)sflen, (char *)sf, final_wo);
    if (al <= 0 || al >= (int)sizeof auth) return -1;
    unsigned char ck[SHA1_LEN], sk[SHA1_LEN], stored[SHA1_LEN], csig[SHA1_LEN], proof[SHA1_LEN];
    hmac(HASH_SHA1, salted, SHA1_LEN, "Client Key", 10, ck);
    hash_digest(HASH_SHA1, ck, SHA1_LEN, stored);
    hmac(HASH_SHA1, stored, SHA1_LEN, auth, (size_t)al, csig);
    for (int k = 0; k < SHA1_LEN; k++) proof[k] = ck[k] ^ csig[k];
    hmac(HASH_SHA1, salted, SHA1_LEN, "Server Key", 10, sk);
    hmac(HASH_SHA1, sk, SHA1_LEN, auth, (size_t)al, c->scram->server_sig);
    char pb[40];
    size_t pl = base64_encode(proof, SHA1_LEN, pb);
    char msg[320];
    int ml = snprintf(msg, sizeof msg, "%s,p=%.*s", final_wo, (int)pl, pb);
    send_b64_element(w, c, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>", msg, (size_t)ml, "</response>");
    (void)fl;
    return 0;
}

int sasl_success(lg_worker *w, lg_conn *c, const char *b64, size_t len)
{
    (void)w;
    if (w->o->mech == MECH_PLAIN) return 0;
    if (!c->scram || len == 0 || len > 200) return -1;
    unsigned char v[160];
    long vl = base64_decode(b64, len, v);
    if (vl < 3 || v[0] != 'v' || v[1] != '=') return -1;
    unsigned char sig[128];
    long sgl = base64_decode((char *)v + 2, (size_t)vl - 2, sig);
    int ok = sgl == SHA1_LEN && memcmp(sig, c->scram->server_sig, SHA1_LEN) == 0;
    sasl_free(c);
    return ok ? 0 : -1;
}
