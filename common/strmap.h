/* A hash map from strings to pointers (open addressing, keys copied).
 * Used for routing tables and session tables. */
#ifndef SB_STRMAP_H
#define SB_STRMAP_H
#include <stddef.h>

typedef struct strmap_slot strmap_slot;

typedef struct strmap {
    strmap_slot *slots;
    size_t cap;        /* power of two, or 0 */
    size_t count;      /* live entries */
    size_t used;       /* live + deleted slots */
} strmap;

#define STRMAP_INIT {NULL, 0, 0, 0}

void *strmap_get(const strmap *m, const char *key);
/* Insert or replace; returns the previous value or NULL. */
void *strmap_put(strmap *m, const char *key, void *value);
/* Remove; returns the removed value or NULL. */
void *strmap_del(strmap *m, const char *key);
size_t strmap_count(const strmap *m);
/* Iterate: start with *pos = 0; returns 0 at the end. Do not change the map
 * while iterating, except strmap_del of the current key. */
int strmap_next(const strmap *m, size_t *pos, const char **key, void **value);
void strmap_free(strmap *m);   /* frees keys, not values */

#endif
