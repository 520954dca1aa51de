/* The stanza model: an element tree whose nodes, strings and original bytes
 * all live in the stanza's own arena (see stanza.h). */
#include "common/stanza.h"

#include <string.h>

#define STANZA_FIRST_CHUNK 1024

/* The stanza struct itself is the first allocation of its own arena, so a
 * new stanza costs one malloc until it outgrows the first chunk. */
static stanza *stanza_alloc(size_t first_chunk)
{
    arena a;
    arena_init(&a, first_chunk);
    stanza *st = arena_alloc(&a, sizeof *st);
    memset(st, 0, sizeof *st);
    st->mem = a;
    return st;
}

stanza *stanza_new_empty(void)
{
    return stanza_alloc(STANZA_FIRST_CHUNK);
}

static xnode *node_alloc(stanza *st, xnode_type type)
{
    xnode *n = arena_alloc(&st->mem, sizeof *n);
    memset(n, 0, sizeof *n);
    n->type = type;
    n->doc = st;
    return n;
}

stanza *stanza_new(const char *name, const char *ns)
{
    stanza *st = stanza_new_empty();
    xnode *root = node_alloc(st, XNODE_ELEMENT);
    root->name = arena_strdup(&st->mem, name);
    root->ns = arena_strdup(&st->mem, ns ? ns : "");
    st->root = root;
    return st;
}

void stanza_free(stanza *st)
{
    if (!st) return;
    /* Copy the arena header out first: it lives inside the memory it frees. */
    arena a = st->mem;
    arena_free(&a);
}

char *stanza_strdup(stanza *st, const char *s)
{
    return s ? arena_strdup(&st->mem, s) : NULL;
}

char *stanza_strndup(stanza *st, const char *s, size_t n)
{
    return arena_strndup(&st->mem, s, n);
}

void stanza_touch(stanza *st)
{
    if (!st) return;
    st->raw = NULL;
    st->raw_len = 0;
}

static void link_child(xnode *parent, xnode *child)
{
    child->parent = parent;
    child->next = NULL;
    child->prev = parent->last_child;
    if (parent->last_child) parent->last_child->next = child;
    else parent->children = child;
    parent->last_child = child;
}

/* Strings that are already in the destination arena are shared, not copied. */
static const char *copy_str(stanza *dst, const stanza *src, const char *s)
{
    if (!s) return NULL;
    if (dst == src) return s;
    return arena_strdup(&dst->mem, s);
}

/* Deep copy of src into dst's arena. keep_raw keeps raw spans, rebased by
 * raw_base (the offset of the new root's bytes in the old raw). */
static xnode *copy_tree(stanza *dst, const xnode *src, int keep_raw, uint32_t raw_base)
{
    const stanza *from = src->doc;
    xnode *n = node_alloc(dst, src->type);
    n->flags = src->flags;
    n->line = src->line;
    if (src->type == XNODE_TEXT) {
        n->text = arena_strndup(&dst->mem, src->text, src->text_len);
        n->text_len = src->text_len;
        return n;
    }
    n->name = copy_str(dst, from, src->name);
    n->ns = copy_str(dst, from, src->ns);
    n->prefix = copy_str(dst, from, src->prefix);
    if (keep_raw && src->raw_len > 0 && src->raw_off >= raw_base) {
        n->raw_off = src->raw_off - raw_base;
        n->raw_len = src->raw_len;
    }
    xattr **tail = &n->attrs;
    for (const xattr *a = src->attrs; a; a = a->next) {
        xattr *c = arena_alloc(&dst->mem, sizeof *c);
        c->name = copy_str(dst, from, a->name);
        c->ns = copy_str(dst, from, a->ns);
        c->prefix = copy_str(dst, from, a->prefix);
        c->value = copy_str(dst, from, a->value);
        c->next = NULL;
        *tail = c;
        tail = &c->next;
    }
    for (const xnode *c = src->children; c; c = c->next)
        link_child(n, copy_tree(dst, c, keep_raw, raw_base));
    return n;
}

stanza *stanza_copy(const stanza *st)
{
    stanza *c = stanza_alloc(arena_size(&st->mem) + 256);
    if (st->raw && st->raw_len) {
        c->raw = arena_strndup(&c->mem, st->raw, st->raw_len);
        c->raw_len = st->raw_len;
    }
    if (st->root) c->root = copy_tree(c, st->root, c->raw != NULL, 0);
    return c;
}

stanza *stanza_from_node(const xnode *node)
{
    const stanza *from = node->doc;
    stanza *c = stanza_new_empty();
    int keep_raw = from->raw && node->type == XNODE_ELEMENT && node->raw_len > 0 &&
                   (size_t)node->raw_off + node->raw_len <= from->raw_len;
    if (keep_raw) {
        c->raw = arena_strndup(&c->mem, from->raw + node->raw_off, node->raw_len);
        c->raw_len = node->raw_len;
    }
    c->root = copy_tree(c, node, keep_raw, keep_raw ? node->raw_off : 0);
    return c;
}

/* ---- building and changing ---- */

xnode *xnode_add_child(xnode *parent, const char *name, const char *ns)
{
    stanza *st = parent->doc;
    stanza_touch(st);
    xnode *n = node_alloc(st, XNODE_ELEMENT);
    n->name = arena_strdup(&st->mem, name);
    if (!ns) n->ns = parent->ns;   /* same arena: share the string */
    else if (parent->ns && strcmp(ns, parent->ns) == 0) n->ns = parent->ns;
    else n->ns = arena_strdup(&st->mem, ns);
    link_child(parent, n);
    return n;
}

xnode *xnode_add_text(xnode *parent, const char *text, size_t len)
{
    stanza *st = parent->doc;
    stanza_touch(st);
    xnode *n = node_alloc(st, XNODE_TEXT);
    n->text = arena_strndup(&st->mem, text, len);
    n->text_len = len;
    link_child(parent, n);
    return n;
}

xnode *xnode_add_text_child(xnode *parent, const char *name, const char *ns, const char *text)
{
    xnode *el = xnode_add_child(parent, name, ns);
    if (text && *text) xnode_add_text(el, text, strlen(text));
    return el;
}

static void set_attr(xnode *el, const char *ns, const char *prefix, const char *name,
                     const char *value)
{
    stanza *st = el->doc;
    stanza_touch(st);
    xattr **pp = &el->attrs;
    for (; *pp; pp = &(*pp)->next) {
        xattr *a = *pp;
        if (strcmp(a->name, name) != 0 || strcmp(a->ns, ns) != 0) continue;
        if (!value) *pp = a->next;
        else {
            a->value = arena_strdup(&st->mem, value);
            if (prefix) a->prefix = arena_strdup(&st->mem, prefix);
        }
        return;
    }
    if (!value) return;
    xattr *a = arena_alloc(&st->mem, sizeof *a);
    a->name = arena_strdup(&st->mem, name);
    a->ns = *ns ? arena_strdup(&st->mem, ns) : "";
    a->prefix = prefix ? arena_strdup(&st->mem, prefix) : NULL;
    a->value = arena_strdup(&st->mem, value);
    a->next = NULL;
    *pp = a;   /* append: attribute order is kept as written */
}

void xnode_set_attr(xnode *el, const char *name, const char *value)
{
    set_attr(el, "", NULL, name, value);
}

void xnode_set_attr_ns(xnode *el, const char *ns, const char *prefix, const char *name,
                       const char *value)
{
    set_attr(el, ns ? ns : "", ns && *ns ? prefix : NULL, name, value);
}

void xnode_remove(xnode *node)
{
    xnode *p = node->parent;
    if (!p) return;
    stanza_touch(node->doc);
    if (node->prev) node->prev->next = node->next;
    else p->children = node->next;
    if (node->next) node->next->prev = node->prev;
    else p->last_child = node->prev;
    node->parent = node->next = node->prev = NULL;
}

xnode *xnode_copy_into(xnode *parent, const xnode *src)
{
    stanza_touch(parent->doc);
    xnode *n = copy_tree(parent->doc, src, 0, 0);
    link_child(parent, n);
    return n;
}

void xnode_clear_children(xnode *el)
{
    stanza_touch(el->doc);
    for (xnode *c = el->children; c; c = c->next) c->parent = NULL;
    el->children = el->last_child = NULL;
}

/* ---- querying ---- */

const char *xnode_attr(const xnode *el, const char *name)
{
    return xnode_attr_ns(el, "", name);
}

const char *xnode_attr_ns(const xnode *el, const char *ns, const char *name)
{
    if (!el || el->type != XNODE_ELEMENT) return NULL;
    if (!ns) ns = "";
    for (const xattr *a = el->attrs; a; a = a->next)
        if (strcmp(a->name, name) == 0 && strcmp(a->ns, ns) == 0) return a->value;
    return NULL;
}

int xnode_is(const xnode *el, const char *name, const char *ns)
{
    if (!el || el->type != XNODE_ELEMENT) return 0;
    if (name && strcmp(el->name, name) != 0) return 0;
    if (ns && strcmp(el->ns ? el->ns : "", ns) != 0) return 0;
    return 1;
}

static xnode *match_from(xnode *n, const char *name, const char *ns)
{
    for (; n; n = n->next)
        if (xnode_is(n, name, ns)) return n;
    return NULL;
}

xnode *xnode_child(const xnode *el, const char *name, const char *ns)
{
    return el ? match_from(el->children, name, ns) : NULL;
}

xnode *xnode_next(const xnode *el, const char *name, const char *ns)
{
    return el ? match_from(el->next, name, ns) : NULL;
}

xnode *xnode_first_element(const xnode *el)
{
    return xnode_child(el, NULL, NULL);
}

xnode *xnode_next_element(const xnode *el)
{
    return xnode_next(el, NULL, NULL);
}

const char *xnode_text(const xnode *el)
{
    if (!el) return "";
    size_t total = 0, pieces = 0;
    const xnode *only = NULL;
    for (const xnode *c = el->children; c; c = c->next) {
        if (c->type != XNODE_TEXT) continue;
        total += c->text_len;
        pieces++;
        only = c;
    }
    if (pieces == 0) return "";
    if (pieces == 1) return only->text;   /* already NUL-terminated in the arena */
    char *s = arena_alloc(&el->doc->mem, total + 1);
    size_t at = 0;
    for (const xnode *c = el->children; c; c = c->next) {
        if (c->type != XNODE_TEXT) continue;
        memcpy(s + at, c->text, c->text_len);
        at += c->text_len;
    }
    s[at] = '\0';
    return s;
}

const char *xnode_child_text(const xnode *el, const char *name, const char *ns)
{
    xnode *c = xnode_child(el, name, ns);
    return c ? xnode_text(c) : NULL;
}

size_t xnode_count_elements(const xnode *el)
{
    size_t n = 0;
    for (const xnode *c = el ? el->children : NULL; c; c = c->next)
        if (c->type == XNODE_ELEMENT) n++;
    return n;
}
