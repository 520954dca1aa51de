/* Fuzz target: building and changing stanzas (common/stanza.c) and writing
 * them (common/xml_write.c). The parser only makes trees a parser can
 * make; the server also builds and edits trees (stamping 'from', making
 * errors, copying payloads between stanzas), and those must serialise to
 * XML that parses back to the same tree too.
 *
 * Input: [L] L bytes of a document to start from (L = 0, or a document that
 * does not parse: a new <message xmlns='jabber:client'/>), then operations,
 * one byte each plus its arguments:
 *   0 add a child element        1 add text          2 add a text child
 *   3 set/remove an attribute    4 set/remove a namespaced attribute
 *   5 remove a node              6 copy a node into another
 *   7 clear children             8 parse a small document, copy it in
 *   9 stanza_make_error          10 stanza_copy     11 stanza_from_node
 * Arguments pick nodes from the elements seen so far, and names, namespaces
 * and prefixes from fixed lists (well-formed names: the API does not check
 * them, so garbage names are the caller's bug, not the serializer's); text
 * comes from the input, with what XML cannot carry replaced by '?'.
 *
 * After every operation the links of the tree must be consistent and any
 * original bytes still kept must describe the tree as it is; at the end the tree (and a copy of each
 * element) must survive xml_serialize / xml_write and parsing again. */
#include <stdlib.h>
#include <string.h>

#include "common/stanza_error.h"
#include "common/utf8.h"
#include "common/xml_stream.h"
#include "common/xml_write.h"
#include "fuzz/fuzz_util.h"

#define MAX_NODES 64

static const char *const names[] = {"message", "body", "x", "item", "error", "query", "a", "b",
                                    "iq", "presence", "text", "ns1", "stream", "xml-ish", "é"};
static const char *const namespaces[] = {NULL, "", NS_CLIENT, NS_SERVER, NS_XMPP_STANZAS, "urn:a", "urn:b",
                                         "urn:'q\"&<>", NS_XML, NS_STREAMS, "jabber:server:dialback"};
static const char *const prefixes[] = {NULL, "", "p", "q", "ns1", "ns2", "xml", "xmlns", "stream", "db"};
static const char *const attr_names[] = {"to", "from", "type", "id", "lang", "a", "b", "ns1", "code"};
static const char *const conditions[] = {"bad-request", "service-unavailable", "not-a-condition", NULL};

typedef struct cursor {
    const uint8_t *p;
    size_t left;
} cursor;

static int take(cursor *c, uint8_t *b)
{
    if (!c->left) return 0;
    *b = *c->p++;
    c->left--;
    return 1;
}

#define PICK(list, byte) (list[(byte) % (sizeof list / sizeof list[0])])

/* A copy of the next n input bytes that XML can carry: invalid UTF-8,
 * control characters other than tab, LF and CR, and U+FFFE/U+FFFF become '?'. */
static char *take_text(cursor *c, size_t n)
{
    if (n > c->left) n = c->left;
    char *s = malloc(n + 1);
    if (!s) abort();
    size_t i = 0;
    while (i < n) {
        unsigned char b = c->p[i];
        size_t len = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
        if (b < 0x80) {
            s[i] = (b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7f ? '?' : (char)b;
            i++;
            continue;
        }
        int fffx = len == 3 && i + 2 < n && b == 0xef && c->p[i + 1] == 0xbf && (c->p[i + 2] & 0xfe) == 0xbe;
        if (i + len <= n && utf8_valid((const char *)c->p + i, len) && !fffx) {
            memcpy(s + i, c->p + i, len);
            i += len;
        } else {
            s[i++] = '?';
        }
    }
    s[n] = '\0';
    c->p += n;
    c->left -= n;
    return s;
}

static void check_links(const xnode *el)
{
    const xnode *prev = NULL;
    for (const xnode *c = el->children; c; c = c->next) {
        FUZZ_CHECK(c->parent == el && c->prev == prev && c->doc == el->doc, "broken links below <%s>", el->name);
        if (c->type == XNODE_ELEMENT) check_links(c);
        prev = c;
    }
    FUZZ_CHECK(el->last_child == prev, "last_child of <%s> is wrong", el->name);
}

typedef struct state {
    stanza *st;
    xnode *nodes[MAX_NODES];
    size_t n;
} state;

static void remember(state *s, xnode *el)
{
    if (el && el->type == XNODE_ELEMENT && s->n < MAX_NODES) s->nodes[s->n++] = el;
}

static void remember_tree(state *s, xnode *el)
{
    remember(s, el);
    for (xnode *c = el->children; c; c = c->next)
        if (c->type == XNODE_ELEMENT) remember_tree(s, c);
}

/* Nodes in the tree below and including n. */
static size_t count_nodes(const xnode *n)
{
    size_t k = 1;
    for (const xnode *c = n->children; c; c = c->next) k += c->type == XNODE_ELEMENT ? count_nodes(c) : 1;
    return k;
}

/* Copying a tree into itself doubles it: keep trees small enough to check
 * after every step. */
#define MAX_TREE_NODES 256

static int is_ancestor_or_self(const xnode *a, const xnode *n)
{
    for (; n; n = n->parent)
        if (n == a) return 1;
    return 0;
}

/* Original bytes a stanza still holds must still say what its tree says:
 * an operation that changed nothing (removing the root, copying in a
 * document that did not parse) may keep them; any real change must drop
 * them, or stale bytes would be forwarded. */
static void check_raw_is_current(const stanza *st)
{
    if (!st->raw) return;
    const xnode *el = NULL;
    char err[128];
    /* The harness's stanzas come from xml_parse_document: no default
     * namespace around the root. */
    stanza *again = fuzz_reparse(st->raw, st->raw_len, "", &el, err, sizeof err);
    FUZZ_CHECK(again && el, "the kept original bytes do not parse: %s", err);
    const char *diff = fuzz_tree_diff(el, st->root);
    FUZZ_CHECK(!diff, "a changed stanza kept its original bytes: %s", diff);
    stanza_free(again);
}

/* One operation; returns 0 when the input ran out. */
static int step(state *s, cursor *c)
{
    uint8_t op, a, b, d, e;
    if (!take(c, &op)) return 0;
    if (!take(c, &a)) return 0;
    xnode *node = s->nodes[a % s->n];
    switch (op % 12) {
    case 0:
        if (!take(c, &b) || !take(c, &d)) return 0;
        remember(s, xnode_add_child(node, PICK(names, b), PICK(namespaces, d)));
        break;
    case 1: {
        if (!take(c, &b)) return 0;
        char *t = take_text(c, b % 16);
        xnode_add_text(node, t, strlen(t));
        free(t);
        break;
    }
    case 2: {
        if (!take(c, &b) || !take(c, &d) || !take(c, &e)) return 0;
        char *t = take_text(c, e % 16);
        remember(s, xnode_add_text_child(node, PICK(names, b), PICK(namespaces, d), t));
        free(t);
        break;
    }
    case 3: {
        if (!take(c, &b) || !take(c, &e)) return 0;
        char *v = e == 0xff ? NULL : take_text(c, e % 16);
        xnode_set_attr(node, PICK(attr_names, b), v);
        FUZZ_CHECK((!v && !xnode_attr(node, PICK(attr_names, b))) ||
                       (v && xnode_attr(node, PICK(attr_names, b)) && strcmp(xnode_attr(node, PICK(attr_names, b)), v) == 0),
                   "xnode_set_attr did not take");
        free(v);
        break;
    }
    case 4: {
        uint8_t f;
        if (!take(c, &b) || !take(c, &d) || !take(c, &f) || !take(c, &e)) return 0;
        const char *ns = PICK(namespaces, d);
        char *v = e == 0xff ? NULL : take_text(c, e % 16);
        xnode_set_attr_ns(node, ns, PICK(prefixes, f), PICK(attr_names, b), v);
        const char *now = xnode_attr_ns(node, ns ? ns : "", PICK(attr_names, b));
        FUZZ_CHECK((!v && !now) || (v && now && strcmp(now, v) == 0), "xnode_set_attr_ns did not take");
        free(v);
        break;
    }
    case 5:
        xnode_remove(node);
        FUZZ_CHECK(!node->parent, "removed node keeps its parent");
        break;
    case 6: {
        if (!take(c, &b)) return 0;
        xnode *src = s->nodes[b % s->n];
        if (count_nodes(s->st->root) + count_nodes(src) > MAX_TREE_NODES) return 1;
        size_t before = xnode_count_elements(node);
        xnode *copy = xnode_copy_into(node, src);
        FUZZ_CHECK(xnode_count_elements(node) == before + 1 && node->last_child == copy, "copy not appended");
        /* Copying a node into itself copies the tree as it was before. */
        if (!is_ancestor_or_self(src, node)) {
            const char *diff = fuzz_tree_diff(src, copy);
            FUZZ_CHECK(!diff, "xnode_copy_into changed the tree: %s", diff);
        }
        remember(s, copy);
        break;
    }
    case 7:
        xnode_clear_children(node);
        FUZZ_CHECK(!node->children && !node->last_child, "children left");
        break;
    case 8: {
        if (!take(c, &b)) return 0;
        size_t n = b % 64;
        if (n > c->left) n = c->left;
        stanza *sub = xml_parse_document((const char *)c->p, n, NULL, NULL, NULL, 0);
        c->p += n;
        c->left -= n;
        if (sub) {
            xnode *copy = xnode_copy_into(node, sub->root);
            const char *diff = fuzz_tree_diff(sub->root, copy);
            FUZZ_CHECK(!diff, "copy of a parsed tree differs: %s", diff);
            remember_tree(s, copy);
            stanza_free(sub);
        }
        break;
    }
    case 9: {
        int allowed = stanza_error_allowed(s->st->root);
        int rc = stanza_make_error(s->st, PICK(conditions, a), a & 0x80 ? "some text" : NULL);
        FUZZ_CHECK(rc == (allowed ? 0 : -1), "stanza_make_error returned %d, allowed %d", rc, allowed);
        if (rc == 0) remember(s, s->st->root->last_child);
        break;
    }
    case 10: {
        stanza *copy = stanza_copy(s->st);
        const char *diff = fuzz_tree_diff(s->st->root, copy->root);
        FUZZ_CHECK(!diff, "stanza_copy differs: %s", diff);
        check_links(copy->root);
        stanza_free(copy);
        return 1;   /* not a change */
    }
    case 11: {
        stanza *sub = stanza_from_node(node);
        const char *diff = fuzz_tree_diff(node, sub->root);
        FUZZ_CHECK(!diff, "stanza_from_node differs: %s", diff);
        check_links(sub->root);
        fuzz_check_roundtrip(sub->root, node->parent ? node->parent->ns : "");
        stanza_free(sub);
        return 1;
    }
    }
    check_raw_is_current(s->st);
    check_links(s->st->root);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t doclen = data[0];
    if (doclen > size - 1) doclen = size - 1;
    state s = {0};
    if (doclen) s.st = xml_parse_document((const char *)data + 1, doclen, NULL, NULL, NULL, 0);
    if (!s.st) s.st = stanza_new("message", NS_CLIENT);
    remember_tree(&s, s.st->root);
    cursor c = {data + 1 + doclen, size - 1 - doclen};
    for (int i = 0; i < 128 && step(&s, &c); i++) {}

    fuzz_check_roundtrip(s.st->root, "");
    fuzz_check_roundtrip(s.st->root, NS_CLIENT);
    fuzz_check_roundtrip(s.st->root, s.st->root->ns);
    for (size_t i = 1; i < s.n && i < 8; i++) {
        if (!s.nodes[i]->parent) continue;
        stanza *sub = stanza_from_node(s.nodes[i]);
        fuzz_check_roundtrip(sub->root, s.nodes[i]->parent->ns);
        stanza_free(sub);
    }
    stanza_free(s.st);
    return 0;
}
