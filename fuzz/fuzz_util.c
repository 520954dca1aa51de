/* Helpers shared by the fuzz harnesses (see fuzz_util.h). */
#include "fuzz/fuzz_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xml_stream.h"
#include "common/xml_write.h"

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "\n%s:%d: invariant failed: %s\n  ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

char *fuzz_strndup(const uint8_t *data, size_t len)
{
    char *s = malloc(len + 1);
    if (!s) abort();
    if (len) memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

size_t fuzz_split_nul(const uint8_t *data, size_t len, char **pieces, size_t max, char **mem)
{
    char *s = fuzz_strndup(data, len);
    *mem = s;
    size_t n = 0, at = 0;
    for (size_t i = 0; i < max; i++) pieces[i] = s + len;   /* "" */
    while (n < max && at <= len) {
        pieces[n++] = s + at;
        if (n == max) break;
        char *nul = memchr(s + at, '\0', len - at);
        if (!nul) break;
        at = (size_t)(nul - s) + 1;
    }
    return n;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

static char diff_msg[512];

static const char *attr_diff(const xnode *a, const xnode *b)
{
    const xattr *x = a->attrs, *y = b->attrs;
    for (; x && y; x = x->next, y = y->next) {
        if (strcmp(x->name, y->name) != 0 || strcmp(str_or_empty(x->ns), str_or_empty(y->ns)) != 0) {
            snprintf(diff_msg, sizeof diff_msg, "<%s>: attribute {%s}%s vs {%s}%s", a->name,
                     str_or_empty(x->ns), x->name, str_or_empty(y->ns), y->name);
            return diff_msg;
        }
        if (strcmp(str_or_empty(x->value), str_or_empty(y->value)) != 0) {
            snprintf(diff_msg, sizeof diff_msg, "<%s>: attribute %s value '%s' vs '%s'", a->name,
                     x->name, str_or_empty(x->value), str_or_empty(y->value));
            return diff_msg;
        }
    }
    if (x || y) {
        snprintf(diff_msg, sizeof diff_msg, "<%s>: attribute %s only on one side", a->name,
                 x ? x->name : y->name);
        return diff_msg;
    }
    return NULL;
}

/* Children are compared as a sequence of elements and runs of text: a
 * built tree may hold adjacent or empty text nodes, which come back from
 * the parser as one node or none. */
static const xnode *skip_empty_text(const xnode *n)
{
    while (n && n->type == XNODE_TEXT && n->text_len == 0) n = n->next;
    return n;
}

/* The text of the run of text nodes starting at *n, and *n moved past it. */
static void take_text_run(const xnode **n, buf *out)
{
    buf_reset(out);
    for (; *n && (*n)->type == XNODE_TEXT; *n = (*n)->next) buf_append(out, (*n)->text, (*n)->text_len);
}

static const char *children_diff(const xnode *a, const xnode *b)
{
    const xnode *x = skip_empty_text(a->children), *y = skip_empty_text(b->children);
    buf tx = BUF_INIT, ty = BUF_INIT;
    const char *d = NULL;
    while (x && y && !d) {
        if (x->type != y->type) {
            snprintf(diff_msg, sizeof diff_msg, "<%s>: text on one side, <%s> on the other", a->name,
                     x->type == XNODE_ELEMENT ? x->name : y->name);
            d = diff_msg;
        } else if (x->type == XNODE_TEXT) {
            take_text_run(&x, &tx);
            take_text_run(&y, &ty);
            if (tx.len != ty.len || (tx.len && memcmp(tx.data, ty.data, tx.len) != 0)) {
                snprintf(diff_msg, sizeof diff_msg, "<%s>: text '%.*s' vs '%.*s'", a->name,
                         (int)(tx.len > 80 ? 80 : tx.len), tx.data ? tx.data : "",
                         (int)(ty.len > 80 ? 80 : ty.len), ty.data ? ty.data : "");
                d = diff_msg;
            }
        } else {
            d = fuzz_tree_diff(x, y);
            x = x->next;
            y = y->next;
        }
        x = skip_empty_text(x);
        y = skip_empty_text(y);
    }
    if (!d && (x || y)) {
        snprintf(diff_msg, sizeof diff_msg, "<%s>: a child only on one side", a->name);
        d = diff_msg;
    }
    buf_free(&tx);
    buf_free(&ty);
    return d;
}

const char *fuzz_tree_diff(const xnode *a, const xnode *b)
{
    if (a->type != b->type) return "node types differ";
    if (a->type == XNODE_TEXT) {
        if (a->text_len != b->text_len || memcmp(a->text, b->text, a->text_len) != 0) {
            snprintf(diff_msg, sizeof diff_msg, "text '%.*s' vs '%.*s'", (int)(a->text_len > 80 ? 80 : a->text_len),
                     a->text, (int)(b->text_len > 80 ? 80 : b->text_len), b->text);
            return diff_msg;
        }
        return NULL;
    }
    if (strcmp(a->name, b->name) != 0) {
        snprintf(diff_msg, sizeof diff_msg, "element name '%s' vs '%s'", a->name, b->name);
        return diff_msg;
    }
    if (strcmp(str_or_empty(a->ns), str_or_empty(b->ns)) != 0) {
        snprintf(diff_msg, sizeof diff_msg, "<%s>: namespace '%s' vs '%s'", a->name,
                 str_or_empty(a->ns), str_or_empty(b->ns));
        return diff_msg;
    }
    const char *d = attr_diff(a, b);
    if (d) return d;
    return children_diff(a, b);
}

stanza *fuzz_reparse(const char *bytes, size_t len, const char *context_ns, const xnode **el,
                     char *errtext, size_t errlen)
{
    buf doc = BUF_INIT;
    const char *ctx = str_or_empty(context_ns);
    buf_append_str(&doc, "<w");
    if (*ctx) {
        buf_append_str(&doc, " xmlns='");
        xml_escape_attr(&doc, ctx, strlen(ctx));
        buf_append_str(&doc, "'");
    }
    buf_append_str(&doc, ">");
    buf_append(&doc, bytes, len);
    buf_append_str(&doc, "</w>");

    xml_limits lim = {.max_stanza_bytes = 64u << 20, .max_depth = 100000, .max_attrs = 1000000};
    xml_err err;
    stanza *st = xml_parse_document(doc.data, doc.len, &lim, &err, errtext, errlen);
    buf_free(&doc);
    *el = NULL;
    if (!st) return NULL;
    const xnode *first = st->root->children;
    if (!first || first->next || first->type != XNODE_ELEMENT) {
        snprintf(errtext, errlen, "the bytes are not exactly one element");
        stanza_free(st);
        return NULL;
    }
    *el = first;
    return st;
}

static void check_bytes(const char *what, const buf *out, const xnode *el, const char *context_ns)
{
    char errtext[256];
    const xnode *again;
    stanza *st = fuzz_reparse(out->data, out->len, context_ns, &again, errtext, sizeof errtext);
    FUZZ_CHECK(st, "%s output does not parse (context '%s'): %s\n  bytes: %.*s", what,
               str_or_empty(context_ns), errtext, (int)(out->len > 2000 ? 2000 : out->len), out->data);
    const char *d = fuzz_tree_diff(el, again);
    FUZZ_CHECK(!d, "%s output parses to another tree (context '%s'): %s\n  bytes: %.*s", what,
               str_or_empty(context_ns), d, (int)(out->len > 2000 ? 2000 : out->len), out->data);
    stanza_free(st);
}

void fuzz_check_roundtrip(const xnode *el, const char *context_ns)
{
    /* No place in a document has the XML namespace as its default. */
    if (context_ns && strcmp(context_ns, NS_XML) == 0) return;
    buf ser = BUF_INIT, wr = BUF_INIT;
    xml_serialize(&ser, el, context_ns);
    check_bytes("xml_serialize", &ser, el, context_ns);

    char *s = xml_to_string(el, context_ns);
    FUZZ_CHECK(strlen(s) == ser.len && memcmp(s, ser.data, ser.len) == 0,
               "xml_to_string differs from xml_serialize");
    free(s);

    xml_write(&wr, el, context_ns);
    check_bytes("xml_write", &wr, el, context_ns);
    buf_free(&ser);
    buf_free(&wr);
}

unsigned fuzz_tree_depth(const xnode *el)
{
    unsigned deepest = 0;
    for (const xnode *c = el->children; c; c = c->next) {
        if (c->type != XNODE_ELEMENT) continue;
        unsigned d = fuzz_tree_depth(c);
        if (d > deepest) deepest = d;
    }
    return deepest + 1;
}

size_t fuzz_max_attrs(const xnode *el)
{
    size_t n = 0;
    for (const xattr *a = el->attrs; a; a = a->next) n++;
    for (const xnode *c = el->children; c; c = c->next) {
        if (c->type != XNODE_ELEMENT) continue;
        size_t m = fuzz_max_attrs(c);
        if (m > n) n = m;
    }
    return n;
}
