#include "common/strmap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct strmap_slot {
    char *key;        /* NULL: empty; TOMBSTONE: deleted */
    void *value;
    uint32_t hash;
};

static char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

static uint32_t strmap_hash(const char *s)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static strmap_slot *strmap_find(const strmap *m, const char *key, uint32_t h)
{
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        strmap_slot *s = &m->slots[i];
        if (!s->key) return NULL;
        if (s->key != TOMBSTONE && s->hash == h && strcmp(s->key, key) == 0) return s;
    }
}

static void strmap_grow(strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    /* Only rehash into the same size when tombstones, not entries, fill it. */
    if (m->cap && m->count * 4 < m->cap) cap = m->cap;
    strmap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    for (size_t i = 0; i < m->cap; i++) {
        strmap_slot *s = &m->slots[i];
        if (!s->key || s->key == TOMBSTONE) continue;
        size_t j = s->hash & (cap - 1);
        while (slots[j].key) j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    m->used = m->count;
}

void *strmap_get(const strmap *m, const char *key)
{
    strmap_slot *s = strmap_find(m, key, strmap_hash(key));
    return s ? s->value : NULL;
}

void *strmap_put(strmap *m, const char *key, void *value)
{
    uint32_t h = strmap_hash(key);
    strmap_slot *s = strmap_find(m, key, h);
    if (s) {
        void *old = s->value;
        s->value = value;
        return old;
    }
    if ((m->used + 1) * 4 >= m->cap * 3) strmap_grow(m);
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].key && m->slots[i].key != TOMBSTONE) i = (i + 1) & mask;
    if (!m->slots[i].key) m->used++;
    m->slots[i].key = strdup(key);
    if (!m->slots[i].key) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    m->slots[i].value = value;
    m->slots[i].hash = h;
    m->count++;
    return NULL;
}

void *strmap_del(strmap *m, const char *key)
{
    strmap_slot *s = strmap_find(m, key, strmap_hash(key));
    if (!s) return NULL;
    void *old = s->value;
    free(s->key);
    s->key = TOMBSTONE;
    s->value = NULL;
    m->count--;
    return old;
}

size_t strmap_count(const strmap *m)
{
    return m->count;
}

int strmap_next(const strmap *m, size_t *pos, const char **key, void **value)
{
    for (; *pos < m->cap; (*pos)++) {
        strmap_slot *s = &m->slots[*pos];
        if (!s->key || s->key == TOMBSTONE) continue;
        if (key) *key = s->key;
        if (value) *value = s->value;
        (*pos)++;
        return 1;
    }
    return 0;
}

void strmap_free(strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMBSTONE) free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = m->used = 0;
}
