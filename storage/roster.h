/* Rosters (RFC 6121 §2, §3): items with name, groups, subscription state,
 * the pending states of the subscription machine, and a roster version
 * (XEP-0237) per user. */
#ifndef SB_STORAGE_ROSTER_H
#define SB_STORAGE_ROSTER_H
#include <stddef.h>
#include <stdint.h>
#include "storage/storage.h"

typedef enum { SUB_NONE = 0, SUB_TO, SUB_FROM, SUB_BOTH } roster_subscription;

typedef struct roster_row {
    const char *contact;        /* bare JID, prepared */
    const char *name;           /* NULL if none */
    roster_subscription subscription;
    int ask_out;                /* pending out: we asked to subscribe (ask='subscribe') */
    int pending_in;             /* pending in: they asked, not yet answered */
    int approved;               /* pre-approved (RFC 6121 §3.4) */
    const char *pending_in_stanza; /* the subscribe stanza kept for re-delivery on login, or NULL */
    const char *const *groups;
    size_t ngroups;
} roster_row;

/* Rows and strings are valid only during the callback. version: the user's roster version
 * (0 before the first change; each put/remove adds 1). Rows are ordered by contact.
 * STORAGE_NOT_FOUND from roster_load, roster_put and roster_count if there is no such user. */
typedef void (*roster_load_cb)(void *ud, storage_status st, const roster_row *rows, size_t n, int64_t version);
typedef void (*roster_write_cb)(void *ud, storage_status st, int64_t new_version);

void roster_load(storage *s, const char *domain, const char *username, roster_load_cb cb, void *ud);
/* Insert or replace one item (all fields); bumps and returns the version. */
void roster_put(storage *s, const char *domain, const char *username, const roster_row *item,
                roster_write_cb cb, void *ud);
/* Remove one item; bumps and returns the version. STORAGE_NOT_FOUND if absent. */
void roster_remove(storage *s, const char *domain, const char *username, const char *contact,
                   roster_write_cb cb, void *ud);
/* Items a user has, to enforce the roster size limit without loading it. */
void roster_count(storage *s, const char *domain, const char *username,
                  void (*cb)(void *ud, storage_status st, long count), void *ud);

#endif
