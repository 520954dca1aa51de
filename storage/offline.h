/* Offline messages (XEP-0160): stored durably, in order, and committed
 * before the callback says so (the sender may be told it was stored only
 * then). */
#ifndef SB_STORAGE_OFFLINE_H
#define SB_STORAGE_OFFLINE_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "storage/storage.h"

typedef struct offline_row {
    int64_t id;
    const char *stanza;         /* serialized message (jabber:client) */
    size_t len;
    time_t stored_at;           /* when it was stored (UTC) */
    time_t expire_at;           /* 0 if it does not expire */
} offline_row;

/* Store one message unless the user already has `quota` messages (then
 * STORAGE_QUOTA). expire_at 0 = never. STORAGE_NOT_FOUND if no such user.
 * Expired messages do not count against the quota; quota 0 refuses every
 * message. The quota check and the insert are one transaction under a lock
 * of the owner's message counter (a row of offline_counters, kept exact in
 * the same transaction as every insert and delete), so concurrent stores
 * cannot exceed it; only a store that finds the counter at the quota
 * counts the rows (after purging the expired ones). */
void offline_store(storage *s, const char *domain, const char *username, const char *stanza, size_t len,
                   time_t expire_at, unsigned quota, storage_status_cb cb, void *ud);
/* All stored messages of a user, oldest first (expired ones left out). Rows valid during the callback.
 * STORAGE_NOT_FOUND if no such user (also for offline_delete and offline_count). */
void offline_fetch(storage *s, const char *domain, const char *username,
                   void (*cb)(void *ud, storage_status st, const offline_row *rows, size_t n), void *ud);
/* Delete messages with id <= up_to (after they were delivered), and expired ones. */
void offline_delete(storage *s, const char *domain, const char *username, int64_t up_to,
                    storage_status_cb cb, void *ud);
void offline_count(storage *s, const char *domain, const char *username,
                   void (*cb)(void *ud, storage_status st, long count), void *ud);

#endif
