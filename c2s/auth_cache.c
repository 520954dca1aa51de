/* Memo of successful password checks (see auth_cache.h). Entries are in a
 * hash map by account and in a list by the time they were stored, oldest
 * first: the list gives both eviction order and expiry order, as every
 * entry lives for the same ttl. */
#include "c2s/auth_cache.h"

#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/strmap.h"

#define TAG_LEN 32   /* HMAC-SHA-256 */

typedef struct cache_entry {
    struct cache_entry *older, *newer;
    uint64_t stored_at;
    unsigned char tag[TAG_LEN];
    char account[];
} cache_entry;

struct auth_cache {
    strmap by_account;             /* account -> cache_entry */
    cache_entry *oldest, *newest;
    size_t max_entries;
    uint64_t ttl_ms;
    unsigned char key[32];         /* per process, never leaves it */
};

auth_cache *auth_cache_new(size_t max_entries, uint64_t ttl_ms)
{
    auth_cache *ac = calloc(1, sizeof *ac);
    if (!ac) abort();
    ac->max_entries = max_entries;
    ac->ttl_ms = ttl_ms;
    random_bytes(ac->key, sizeof ac->key);
    return ac;
}

/* The tag of (password, secrets): the salt and StoredKey bind it to one
 * setting of the password in the database. */
static void make_tag(const auth_cache *ac, const scram_secrets *sec, const char *password,
                     unsigned char out[TAG_LEN])
{
    size_t hl = hash_len(sec->alg), pl = strlen(password);
    size_t salt_len = sec->salt_len < sizeof sec->salt ? sec->salt_len : sizeof sec->salt;
    size_t n = 1 + 4 + 1 + salt_len + hl + pl;
    unsigned char *in = malloc(n);
    if (!in) abort();
    unsigned char *p = in;
    *p++ = (unsigned char)sec->alg;
    *p++ = (unsigned char)(sec->iterations >> 24);
    *p++ = (unsigned char)(sec->iterations >> 16);
    *p++ = (unsigned char)(sec->iterations >> 8);
    *p++ = (unsigned char)sec->iterations;
    *p++ = (unsigned char)salt_len;
    memcpy(p, sec->salt, salt_len);
    p += salt_len;
    memcpy(p, sec->stored_key, hl);
    p += hl;
    memcpy(p, password, pl);
    hmac(HASH_SHA256, ac->key, sizeof ac->key, in, n, out);
    crypto_wipe(in, n);
    free(in);
}

static void unlink_entry(auth_cache *ac, cache_entry *e)
{
    if (e->older) e->older->newer = e->newer;
    else ac->oldest = e->newer;
    if (e->newer) e->newer->older = e->older;
    else ac->newest = e->older;
    e->older = e->newer = NULL;
}

static void append_entry(auth_cache *ac, cache_entry *e)
{
    e->older = ac->newest;
    e->newer = NULL;
    if (ac->newest) ac->newest->newer = e;
    else ac->oldest = e;
    ac->newest = e;
}

static void drop_entry(auth_cache *ac, cache_entry *e)
{
    unlink_entry(ac, e);
    strmap_del(&ac->by_account, e->account);
    crypto_wipe(e->tag, sizeof e->tag);
    free(e);
}

static int expired(const auth_cache *ac, const cache_entry *e, uint64_t now)
{
    return now < e->stored_at || now - e->stored_at >= ac->ttl_ms;
}

void auth_cache_configure(auth_cache *ac, size_t max_entries, uint64_t ttl_ms)
{
    ac->max_entries = max_entries;
    ac->ttl_ms = ttl_ms;
    while (ac->oldest && strmap_count(&ac->by_account) > max_entries) drop_entry(ac, ac->oldest);
}

int auth_cache_hit(auth_cache *ac, const char *account, const scram_secrets *sec, const char *password,
                   uint64_t now)
{
    if (!ac || ac->max_entries == 0 || !sec || !password) return 0;
    cache_entry *e = strmap_get(&ac->by_account, account);
    if (!e) return 0;
    if (expired(ac, e, now)) {
        drop_entry(ac, e);
        return 0;
    }
    unsigned char tag[TAG_LEN];
    make_tag(ac, sec, password, tag);
    int hit = crypto_memeq(tag, e->tag, TAG_LEN);
    crypto_wipe(tag, sizeof tag);
    /* A mismatch (a wrong password, or secrets changed since) leaves the
     * entry: it can only ever match the secrets it was made for. */
    return hit;
}

void auth_cache_store(auth_cache *ac, const char *account, const scram_secrets *sec, const char *password,
                      uint64_t now)
{
    if (!ac || ac->max_entries == 0 || !sec || !password) return;
    cache_entry *e = strmap_get(&ac->by_account, account);
    if (e) {
        unlink_entry(ac, e);
    } else {
        while (ac->oldest && strmap_count(&ac->by_account) >= ac->max_entries) drop_entry(ac, ac->oldest);
        size_t len = strlen(account);
        e = calloc(1, sizeof *e + len + 1);
        if (!e) abort();
        memcpy(e->account, account, len + 1);
        strmap_put(&ac->by_account, e->account, e);
    }
    e->stored_at = now;
    make_tag(ac, sec, password, e->tag);
    append_entry(ac, e);
}

void auth_cache_forget(auth_cache *ac, const char *account)
{
    if (!ac) return;
    cache_entry *e = strmap_get(&ac->by_account, account);
    if (e) drop_entry(ac, e);
}

void auth_cache_expire(auth_cache *ac, uint64_t now)
{
    if (!ac) return;
    while (ac->oldest && expired(ac, ac->oldest, now)) drop_entry(ac, ac->oldest);
}

size_t auth_cache_count(const auth_cache *ac)
{
    return ac ? strmap_count(&ac->by_account) : 0;
}

void auth_cache_free(auth_cache *ac)
{
    if (!ac) return;
    while (ac->oldest) drop_entry(ac, ac->oldest);
    strmap_free(&ac->by_account);
    crypto_wipe(ac->key, sizeof ac->key);
    free(ac);
}
