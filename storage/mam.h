/* mam: the message archive (XEP-0313) of each account, and its archiving
 * preferences. Every request is keyed by the owner (domain, username), so
 * an archive write and a later query of the same owner complete in order:
 * a query sees every message archived before it was made.
 *
 * Times are microseconds since the Unix epoch (UTC). A position in an
 * archive is (stamp, id): messages are ordered by their stamp, then by
 * their row id. */
#ifndef SB_STORAGE_MAM_H
#define SB_STORAGE_MAM_H
#include <stddef.h>
#include <stdint.h>
#include "storage/storage.h"

/* Far enough in the past / future to bound any archive (0001-01-01, 9999-12-31). */
#define MAM_US_MIN (-62135596800000000LL)
#define MAM_US_MAX (253402300799999999LL)

typedef enum { MAM_ALWAYS = 0, MAM_NEVER, MAM_ROSTER } mam_mode;

/* "always", "never", "roster"; -1 for anything else. */
int mam_mode_parse(const char *s);
const char *mam_mode_name(mam_mode m);

/* One message to archive. */
typedef struct mam_entry {
    const char *stanza_id;      /* public id, unique in the owner's archive */
    const char *with_bare;      /* the other party, prepared */
    const char *with_resource;  /* its resource, or NULL */
    int outgoing;               /* sent by the owner (else received) */
    int64_t stamp_us;
    const char *stanza;         /* serialized message */
    int in_roster;              /* the other party is in the owner's roster */
    mam_mode default_mode;      /* when the owner has no preferences */
} mam_entry;

/* Archive e unless the owner's preferences refuse it. cb(ud, st, archived):
 * archived 1 when it was stored; STORAGE_NOT_FOUND: no such account. */
void mam_store(storage *s, const char *domain, const char *username, const mam_entry *e,
               void (*cb)(void *ud, storage_status st, int archived), void *ud);

typedef struct mam_prefs {
    int set;                    /* the owner has preferences (else the rest is empty) */
    mam_mode mode;
    const char *const *always;
    size_t nalways;
    const char *const *never;
    size_t nnever;
} mam_prefs;

/* The owner's preferences (p->set 0 when none); valid during the callback.
 * STORAGE_NOT_FOUND: no such account. */
void mam_prefs_get(storage *s, const char *domain, const char *username,
                   void (*cb)(void *ud, storage_status st, const mam_prefs *p), void *ud);
void mam_prefs_put(storage *s, const char *domain, const char *username, const mam_prefs *p,
                   storage_status_cb cb, void *ud);

typedef struct mam_row {
    int64_t id;
    const char *stanza_id;
    int64_t stamp_us;
    const char *stanza;
} mam_row;

/* The messages with these stanza ids, in archive order (those that do not
 * exist are left out). */
void mam_lookup(storage *s, const char *domain, const char *username, const char *const *ids, size_t n,
                void (*cb)(void *ud, storage_status st, const mam_row *rows, size_t n), void *ud);

/* A page query. The result set is the owner's messages (matching with_bare
 * and with_resource when not NULL) strictly between set_lo and set_hi; the
 * page is the first (forward) or last (backward) `limit` of them strictly
 * between page_lo and page_hi. */
typedef struct mam_pos {
    int64_t us, id;
} mam_pos;

typedef struct mam_page_query {
    const char *with_bare, *with_resource;
    mam_pos set_lo, set_hi, page_lo, page_hi;
    unsigned limit;
    int backward;
} mam_page_query;

/* rows in archive order (oldest first); total: the size of the result set;
 * index: the position of rows[0] in it. */
typedef void (*mam_page_cb)(void *ud, storage_status st, const mam_row *rows, size_t n, long total, long index);
void mam_page(storage *s, const char *domain, const char *username, const mam_page_query *q,
              mam_page_cb cb, void *ud);

/* The first and last messages of the archive (n 0 when empty, else 2 rows). */
void mam_bounds(storage *s, const char *domain, const char *username,
                void (*cb)(void *ud, storage_status st, const mam_row *rows, size_t n), void *ud);

/* Retention: delete the owner's oldest messages beyond `keep`; delete up
 * to `batch` messages older than max_days of all owners (cb's count: how
 * many were deleted). */
void mam_trim_user(storage *s, const char *domain, const char *username, unsigned keep,
                   void (*cb)(void *ud, storage_status st, long deleted), void *ud);
void mam_expire(storage *s, unsigned max_days, unsigned batch,
                void (*cb)(void *ud, storage_status st, long deleted), void *ud);

#endif
