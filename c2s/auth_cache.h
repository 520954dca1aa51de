/* A per-process memo of successful password checks (SASL PLAIN and
 * plaintext jabber:iq:auth), so that a client reconnecting with the same
 * password costs no PBKDF2.
 *
 * What is kept per account is a tag: HMAC-SHA-256, under a key drawn at
 * random when the process starts, of the password together with the stored
 * SCRAM secrets it was checked against (algorithm, iterations, salt,
 * StoredKey). Never the password. A later check of the same password
 * against the same stored secrets is answered from the tag; the secrets
 * are still read from the database on every login, so a password change
 * (new salt and keys, from any process or switchboardctl) or a deleted
 * account never matches an old tag: invalidation needs no notification.
 *
 * Bounded: at most max_entries accounts (the least recently stored goes
 * first), each for ttl_ms after its check. max_entries 0 turns it off.
 *
 * The trade-off: while an entry lives, someone who can read this process's
 * memory could test guesses of that password with one HMAC each instead of
 * a PBKDF2. Expired and evicted entries are wiped. */
#ifndef SB_C2S_AUTH_CACHE_H
#define SB_C2S_AUTH_CACHE_H
#include <stddef.h>
#include <stdint.h>

#include "common/scram.h"

typedef struct auth_cache auth_cache;

auth_cache *auth_cache_new(size_t max_entries, uint64_t ttl_ms);
/* New bounds (a reload); entries beyond max_entries are dropped. */
void auth_cache_configure(auth_cache *ac, size_t max_entries, uint64_t ttl_ms);
/* 1 if password was found right for account against exactly these secrets
 * less than ttl_ms before now. */
int auth_cache_hit(auth_cache *ac, const char *account, const scram_secrets *sec, const char *password,
                   uint64_t now);
/* Remember that password is right for account against these secrets. */
void auth_cache_store(auth_cache *ac, const char *account, const scram_secrets *sec, const char *password,
                      uint64_t now);
void auth_cache_forget(auth_cache *ac, const char *account);
/* Drop the entries whose time is over (a periodic timer). */
void auth_cache_expire(auth_cache *ac, uint64_t now);
size_t auth_cache_count(const auth_cache *ac);
void auth_cache_free(auth_cache *ac);

#endif
