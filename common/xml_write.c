/* Serialising element trees, with namespace declarations computed against
 * what is in scope in the output, and forwarding of original bytes. */
#include "common/xml_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Append s, replacing each byte that needs it by its reference. */
static void escape(buf *out, const char *s, size_t len, int attr)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        /* A literal CR would be read back as LF (end-of-line handling). */
        case '\r': rep = "&#13;"; break;
        /* In attributes, whitespace is normalised to spaces on reading. */
        case '\'': rep = attr ? "&apos;" : NULL; break;
        case '"': rep = attr ? "&quot;" : NULL; break;
        case '\t': rep = attr ? "&#9;" : NULL; break;
        case '\n': rep = attr ? "&#10;" : NULL; break;
        default: rep = NULL; break;
        }
        if (!rep) continue;
        buf_append(out, s + run, i - run);
        buf_append_str(out, rep);
        run = i + 1;
    }
    buf_append(out, s + run, len - run);
}

void xml_escape_text(buf *out, const char *s, size_t len)
{
    escape(out, s, len, 0);
}

void xml_escape_attr(buf *out, const char *s, size_t len)
{
    escape(out, s, len, 1);
}

/* ---- namespace scope of the output ---- */

/* A prefix bound in the output: either a prefix string from the tree or a
 * generated one, "ns<gen>". */
typedef struct binding {
    const char *prefix;
    unsigned gen;
    const char *uri;
} binding;

typedef struct scope {
    binding *b;
    size_t n, cap;
} scope;

static void scope_push(scope *sc, const char *prefix, unsigned gen, const char *uri)
{
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        binding *nb = realloc(sc->b, cap * sizeof *nb);
        if (!nb) {
            fprintf(stderr, "out of memory\n");
            abort();
        }
        sc->b = nb;
        sc->cap = cap;
    }
    sc->b[sc->n++] = (binding){prefix, gen, uri};
}

static int binding_has_prefix(const binding *b, const char *prefix)
{
    if (!b->gen) return strcmp(b->prefix, prefix) == 0;
    char name[32];
    snprintf(name, sizeof name, "ns%u", b->gen);
    return strcmp(name, prefix) == 0;
}

static void write_prefix(buf *out, const binding *b)
{
    if (b->gen) buf_printf(out, "ns%u", b->gen);
    else buf_append_str(out, b->prefix);
}

/* The innermost binding of prefix, or NULL. */
static const binding *scope_lookup(const scope *sc, const char *prefix)
{
    for (size_t i = sc->n; i-- > 0;)
        if (binding_has_prefix(&sc->b[i], prefix)) return &sc->b[i];
    return NULL;
}

/* A prefix bound to uri and not shadowed by a later binding, or NULL. */
static const binding *scope_find_uri(const scope *sc, const char *uri)
{
    for (size_t i = sc->n; i-- > 0;) {
        const binding *b = &sc->b[i];
        if (strcmp(b->uri, uri) != 0) continue;
        if (b->gen) {
            char name[32];
            snprintf(name, sizeof name, "ns%u", b->gen);
            if (scope_lookup(sc, name) == b) return b;
        } else if (scope_lookup(sc, b->prefix) == b) {
            return b;
        }
    }
    return NULL;
}

static void write_decl(buf *out, const binding *b)
{
    buf_append_str(out, " xmlns:");
    write_prefix(out, b);
    buf_append_str(out, "='");
    xml_escape_attr(out, b->uri, strlen(b->uri));
    buf_append_str(out, "'");
}

/* A generated prefix (ns1, ns2...) not bound in scope, bound to uri. */
static const binding *declare_generated(buf *out, scope *sc, const char *uri)
{
    unsigned gen = 1;
    for (;; gen++) {
        char name[32];
        snprintf(name, sizeof name, "ns%u", gen);
        if (!scope_lookup(sc, name)) break;
    }
    scope_push(sc, NULL, gen, uri);
    write_decl(out, &sc->b[sc->n - 1]);
    return &sc->b[sc->n - 1];
}

static int usable_prefix(const char *p)
{
    return p && *p && strcmp(p, "xml") != 0 && strcmp(p, "xmlns") != 0;
}

static void write_attr(buf *out, scope *sc, const xattr *a)
{
    const char *ns = a->ns ? a->ns : "";
    if (!*ns) {
        buf_append_str(out, " ");
        buf_append_str(out, a->name);
        buf_append_str(out, "='");
    } else if (strcmp(ns, NS_XML) == 0) {
        buf_append_str(out, " xml:");   /* 'xml' is bound everywhere */
        buf_append_str(out, a->name);
        buf_append_str(out, "='");
    } else {
        const binding *b = NULL;
        if (usable_prefix(a->prefix)) {
            b = scope_lookup(sc, a->prefix);
            if (!b) {
                scope_push(sc, a->prefix, 0, ns);
                b = &sc->b[sc->n - 1];
                write_decl(out, b);
            } else if (strcmp(b->uri, ns) != 0) {
                /* The prefix means another URI here, which the element or a
                 * sibling attribute may need: use another prefix. */
                b = NULL;
            }
        }
        if (!b) b = scope_find_uri(sc, ns);
        if (!b) b = declare_generated(out, sc, ns);
        buf_append_str(out, " ");
        write_prefix(out, b);
        buf_append_str(out, ":");
        buf_append_str(out, a->name);
        buf_append_str(out, "='");
    }
    xml_escape_attr(out, a->value ? a->value : "", a->value ? strlen(a->value) : 0);
    buf_append_str(out, "'");
}

static void serialize_node(buf *out, const xnode *el, const char *default_ns, scope *sc)
{
    if (el->type == XNODE_TEXT) {
        xml_escape_text(out, el->text, el->text_len);
        return;
    }
    const char *ns = el->ns ? el->ns : "";
    /* An element in the XML namespace can only be written with the 'xml'
     * prefix, which is bound everywhere and may never be declared. */
    int in_xml_ns = strcmp(ns, NS_XML) == 0;
    const char *prefix = in_xml_ns ? "xml" : usable_prefix(el->prefix) && *ns ? el->prefix : NULL;
    size_t mark = sc->n;
    buf_append_str(out, "<");
    if (prefix) {
        buf_append_str(out, prefix);
        buf_append_str(out, ":");
    }
    buf_append_str(out, el->name);
    if (in_xml_ns) {
        /* nothing to declare */
    } else if (prefix) {
        const binding *b = scope_lookup(sc, prefix);
        if (!b || strcmp(b->uri, ns) != 0) {
            scope_push(sc, prefix, 0, ns);
            write_decl(out, &sc->b[sc->n - 1]);
        }
    } else if (strcmp(ns, default_ns) != 0) {
        buf_append_str(out, " xmlns='");
        xml_escape_attr(out, ns, strlen(ns));
        buf_append_str(out, "'");
        default_ns = ns;
    }
    for (const xattr *a = el->attrs; a; a = a->next) write_attr(out, sc, a);
    if (!el->children) {
        buf_append_str(out, "/>");
    } else {
        buf_append_str(out, ">");
        for (const xnode *c = el->children; c; c = c->next) serialize_node(out, c, default_ns, sc);
        buf_append_str(out, "</");
        if (prefix) {
            buf_append_str(out, prefix);
            buf_append_str(out, ":");
        }
        buf_append_str(out, el->name);
        buf_append_str(out, ">");
    }
    sc->n = mark;
}

void xml_serialize(buf *out, const xnode *el, const char *context_ns)
{
    scope sc = {NULL, 0, 0};
    serialize_node(out, el, context_ns ? context_ns : "", &sc);
    free(sc.b);
}

void xml_write(buf *out, const xnode *el, const char *context_ns)
{
    const stanza *doc = el->doc;
    const char *ctx = context_ns ? context_ns : "";
    if (el->type == XNODE_ELEMENT && doc && doc->raw && el->raw_len > 0 &&
        (size_t)el->raw_off + el->raw_len <= doc->raw_len &&
        !(el->flags & XNODE_USES_OUTER_PREFIX) && !el->prefix) {
        const char *raw = doc->raw + el->raw_off;
        const char *ns = el->ns ? el->ns : "";
        if ((el->flags & XNODE_DECLARES_DEFAULT_NS) || strcmp(ns, ctx) == 0) {
            buf_append(out, raw, el->raw_len);
            return;
        }
        /* Only the default namespace is missing: add it after the name. */
        size_t name_len = strlen(el->name);
        if (el->raw_len > name_len + 1 && raw[0] == '<' &&
            memcmp(raw + 1, el->name, name_len) == 0) {
            buf_append(out, raw, name_len + 1);
            buf_append_str(out, " xmlns='");
            xml_escape_attr(out, ns, strlen(ns));
            buf_append_str(out, "'");
            buf_append(out, raw + name_len + 1, el->raw_len - name_len - 1);
            return;
        }
    }
    xml_serialize(out, el, context_ns);
}

char *xml_to_string(const xnode *el, const char *context_ns)
{
    buf b = BUF_INIT;
    xml_serialize(&b, el, context_ns);
    buf_cstr(&b);
    return b.data;   /* the caller frees it */
}
