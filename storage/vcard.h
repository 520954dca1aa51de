/* vCards (XEP-0054): one per user, the whole XML plus the fields the user
 * directory (XEP-0055) searches and the avatar hash (XEP-0153), all taken
 * from the XML by the caller when it is stored. */
#ifndef SB_STORAGE_VCARD_H
#define SB_STORAGE_VCARD_H
#include <stddef.h>
#include "storage/storage.h"

/* The searchable copies of a vCard's fields (NULL when absent). */
typedef struct vcard_fields {
    const char *fn;             /* FN */
    const char *given;          /* N/GIVEN */
    const char *family;         /* N/FAMILY */
    const char *nickname;       /* NICKNAME */
    const char *email;          /* EMAIL/USERID */
    const char *photo_hash;     /* hex SHA-1 of the decoded PHOTO/BINVAL */
} vcard_fields;

/* The stored vCard XML (valid during the callback), or STORAGE_NOT_FOUND
 * when the user has none. */
void vcard_get(storage *s, const char *domain, const char *username,
               void (*cb)(void *ud, storage_status st, const char *xml), void *ud);
/* Store (replace) the vCard. STORAGE_NOT_FOUND if there is no such account. */
void vcard_put(storage *s, const char *domain, const char *username, const char *xml,
               const vcard_fields *f, storage_status_cb cb, void *ud);
/* Remove the vCard (an empty one was set); STORAGE_OK also when there was none. */
void vcard_delete(storage *s, const char *domain, const char *username, storage_status_cb cb, void *ud);
/* The avatar hash: hash NULL when the user has no vCard or no photo. */
void vcard_photo_hash(storage *s, const char *domain, const char *username,
                      void (*cb)(void *ud, storage_status st, const char *hash), void *ud);

/* ---- user directory (XEP-0055) ---- */

/* What to look for: each NULL or a non-empty prefix; at least one set.
 * Matching is a case-insensitive prefix match on each given field, all
 * given fields must match. */
typedef struct vcard_search_query {
    const char *first, *last, *nick, *email;
} vcard_search_query;

typedef struct vcard_search_row {
    const char *username;
    const char *first, *last, *nick, *email;    /* NULL when absent */
} vcard_search_row;

/* At most limit users of domain, ordered by username. Rows valid during the callback. */
void vcard_search(storage *s, const char *domain, const vcard_search_query *q, unsigned limit,
                  void (*cb)(void *ud, storage_status st, const vcard_search_row *rows, size_t n), void *ud);

#endif
