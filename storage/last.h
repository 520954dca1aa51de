/* Last activity (XEP-0012): when an account's last session ended, and the
 * status text of its last unavailable presence. */
#ifndef SB_STORAGE_LAST_H
#define SB_STORAGE_LAST_H
#include <stdint.h>
#include "storage/storage.h"

/* Record a logout now (the database's clock); status may be NULL.
 * STORAGE_NOT_FOUND if there is no such account. */
void last_set(storage *s, const char *domain, const char *username, const char *status,
              storage_status_cb cb, void *ud);

/* The seconds since the last recorded logout and its status (NULL if none;
 * valid during the callback). STORAGE_NOT_FOUND when nothing was recorded
 * (or there is no such account). */
typedef void (*last_get_cb)(void *ud, storage_status st, int64_t seconds, const char *status);
void last_get(storage *s, const char *domain, const char *username, last_get_cb cb, void *ud);

#endif
