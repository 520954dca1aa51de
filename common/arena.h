/* A bump allocator: many small allocations, one free. Each stanza owns one,
 * so building or discarding a stanza is a handful of mallocs, not one per node. */
#ifndef SB_ARENA_H
#define SB_ARENA_H
#include <stddef.h>

typedef struct arena_chunk arena_chunk;

typedef struct arena {
    arena_chunk *head;      /* newest chunk first */
    size_t next_size;       /* size of the next chunk to allocate */
} arena;

void arena_init(arena *a, size_t first_chunk);
/* Memory aligned for any type; never NULL (aborts on out of memory). */
void *arena_alloc(arena *a, size_t n);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_strdup(arena *a, const char *s);
/* Bytes held by the arena (for limits and accounting). */
size_t arena_size(const arena *a);
void arena_free(arena *a);

#endif
