/* Privacy lists (XEP-0016) and the blocking command (XEP-0191, stored as
 * the default privacy list): a user's named lists of ordered items, and
 * which of them is the default. */
#ifndef SB_STORAGE_PRIVACY_H
#define SB_STORAGE_PRIVACY_H
#include <stddef.h>
#include "storage/storage.h"

typedef struct privacy_item_row {
    unsigned long order;
    const char *type;       /* "jid", "group", "subscription", or NULL (fall-through) */
    const char *value;      /* NULL for fall-through */
    int deny;               /* action */
    unsigned kinds;         /* 1 message, 2 iq, 4 presence-in, 8 presence-out; 0 everything */
} privacy_item_row;

typedef struct privacy_list_row {
    const char *name;
    int is_default;
    const privacy_item_row *items;  /* ascending order */
    size_t nitems;
} privacy_list_row;

/* Rows and strings are valid only during the callback. Lists are ordered by
 * name. A user without lists (or with no account) gets STORAGE_OK and n = 0. */
typedef void (*privacy_load_cb)(void *ud, storage_status st, const privacy_list_row *lists, size_t n);

void privacy_load(storage *s, const char *domain, const char *username, privacy_load_cb cb, void *ud);
/* Create or replace list (all its items) and, when make_default, make it the
 * default, atomically. STORAGE_NOT_FOUND if there is no such user. */
void privacy_put_list(storage *s, const char *domain, const char *username, const privacy_list_row *list,
                      int make_default, storage_status_cb cb, void *ud);
/* Remove a list (and the default if it was that). STORAGE_NOT_FOUND if there is no such list. */
void privacy_remove_list(storage *s, const char *domain, const char *username, const char *name,
                         storage_status_cb cb, void *ud);
/* Make list name the default (NULL: no default list). STORAGE_NOT_FOUND if there is no such list. */
void privacy_set_default(storage *s, const char *domain, const char *username, const char *name,
                         storage_status_cb cb, void *ud);

#endif
