#include "common/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_MAX_CHUNK (64 * 1024)

struct arena_chunk {
    arena_chunk *next;
    size_t size;     /* usable bytes after the header */
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

void arena_init(arena *a, size_t first_chunk)
{
    a->head = NULL;
    a->next_size = first_chunk ? first_chunk : 512;
}

static void *arena_oom(void)
{
    fprintf(stderr, "out of memory\n");
    abort();
}

void *arena_alloc(arena *a, size_t n)
{
    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    arena_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = a->next_size;
        if (size < n) size = n;
        c = malloc(sizeof *c + size);
        if (!c) return arena_oom();
        c->size = size;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        /* Grow geometrically so big documents need few chunks. */
        if (a->next_size < ARENA_MAX_CHUNK) a->next_size *= 2;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

size_t arena_size(const arena *a)
{
    size_t total = 0;
    for (const arena_chunk *c = a->head; c; c = c->next) total += c->size;
    return total;
}

void arena_free(arena *a)
{
    arena_chunk *c = a->head;
    while (c) {
        arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}
