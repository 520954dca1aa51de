/* Fuzz target: the incremental XML stream parser (common/xml_stream.c) and
 * the serializer (common/xml_write.c).
 *
 * Input: a 7-byte header, then the bytes of the stream.
 *   [0] limits: max_depth = 1 + 2*(b & 7), max_attrs = 1 + 3*((b >> 3) & 7)
 *   [1] max_stanza_bytes = 64 + 32*b
 *   [2] behaviour: 0x01 pause on the stream header, 0x02 pause after
 *       elements that restart a stream (starttls, proceed, success, auth),
 *       0x04 pause after every element, 0x08 reset and go on after an
 *       error, 0x10 reset and go on after the end of the stream;
 *       bits 5-6 pick a second context namespace for xml_write
 *       ("", jabber:client, jabber:server, urn:example:other)
 *   [3..6] chunk sizes, used in turn: b + 1 bytes, or the rest for 0xff
 *
 * Every element reported is checked against the limits, then written with
 * xml_serialize and xml_write (in the stream's default namespace and in the
 * second context), parsed again and compared with the original tree; the
 * same for a copy (stanza_copy) and for its first child (stanza_from_node).
 * A paused stream is reset and fed the rest, like a stream restart. */
#include <stdlib.h>
#include <string.h>

#include "common/xml_stream.h"
#include "common/xml_write.h"
#include "fuzz/fuzz_util.h"

#define HEADER_LEN 7

typedef struct run {
    xml_stream *xs;
    xml_limits lim;
    unsigned behaviour;
    const char *other_ctx;
    int closed;
    int paused;           /* a handler returned XS_PAUSE in this feed */
    const uint8_t *input; /* all the stream bytes, to find each element's in */
    size_t input_len;
} run;

static const char *const other_contexts[] = {"", NS_CLIENT, NS_SERVER, "urn:example:other"};

static int restarts_stream(const xnode *el)
{
    static const char *const names[] = {"starttls", "proceed", "success", "auth"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(el->name, names[i]) == 0) return 1;
    return 0;
}

/* Each element's span in the original bytes starts with its start tag and
 * ends with '>'. */
static void check_spans(const stanza *st, const xnode *el)
{
    FUZZ_CHECK(el->raw_len > 0 && (size_t)el->raw_off + el->raw_len <= st->raw_len,
               "<%s> span %u+%u outside %zu bytes", el->name, el->raw_off, el->raw_len, st->raw_len);
    const char *b = st->raw + el->raw_off;
    size_t plen = el->prefix ? strlen(el->prefix) + 1 : 0, nlen = strlen(el->name);
    FUZZ_CHECK(b[0] == '<' && b[el->raw_len - 1] == '>' && el->raw_len > plen + nlen &&
                   (!el->prefix || (memcmp(b + 1, el->prefix, plen - 1) == 0 && b[plen] == ':')) &&
                   memcmp(b + 1 + plen, el->name, nlen) == 0,
               "span of <%s> is '%.*s'", el->name, (int)el->raw_len, b);
    for (const xnode *c = el->children; c; c = c->next)
        if (c->type == XNODE_ELEMENT) check_spans(st, c);
}

static void check_limits(const run *r, const stanza *st)
{
    const xnode *root = st->root;
    FUZZ_CHECK(root && root->type == XNODE_ELEMENT, "element without a root");
    unsigned depth = fuzz_tree_depth(root);
    FUZZ_CHECK(depth <= r->lim.max_depth, "element tree %u deep, limit %u", depth, r->lim.max_depth);
    size_t attrs = fuzz_max_attrs(root);
    FUZZ_CHECK(attrs <= r->lim.max_attrs, "%zu attributes, limit %u", attrs, r->lim.max_attrs);
    FUZZ_CHECK(st->raw, "a parsed element has no original bytes");
    FUZZ_CHECK(st->raw_len <= r->lim.max_stanza_bytes, "element of %zu bytes, limit %zu",
               st->raw_len, r->lim.max_stanza_bytes);
    FUZZ_CHECK(root->raw_off == 0 && root->raw_len == st->raw_len,
               "root span %u+%u, raw %zu", root->raw_off, root->raw_len, st->raw_len);
    /* The original bytes are bytes of the input, in one piece, however it
     * was cut into chunks. */
    FUZZ_CHECK(memmem(r->input, r->input_len, st->raw, st->raw_len),
               "the original bytes of <%s> are not in the input: '%.*s'", root->name, (int)st->raw_len, st->raw);
    check_spans(st, root);
}

/* xml_write of an unchanged copy writes the same bytes as of the original. */
static void check_copy(const stanza *st, const char *ctx)
{
    stanza *copy = stanza_copy(st);
    buf a = BUF_INIT, b = BUF_INIT;
    xml_write(&a, st->root, ctx);
    xml_write(&b, copy->root, ctx);
    FUZZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
               "xml_write of a stanza_copy differs:\n  %.*s\n  %.*s", (int)a.len, a.data, (int)b.len, b.data);
    const char *d = fuzz_tree_diff(st->root, copy->root);
    FUZZ_CHECK(!d, "stanza_copy changed the tree: %s", d);
    buf_free(&a);
    buf_free(&b);
    stanza_free(copy);

    const xnode *child = xnode_first_element(st->root);
    if (child) {
        stanza *sub = stanza_from_node(child);
        d = fuzz_tree_diff(child, sub->root);
        FUZZ_CHECK(!d, "stanza_from_node changed the tree: %s", d);
        /* The child's bytes, written where its parent's namespace is the default. */
        fuzz_check_roundtrip(sub->root, st->root->ns);
        stanza_free(sub);
    }
}

static xs_action on_open(void *ud, stanza *header)
{
    run *r = ud;
    FUZZ_CHECK(header->root && !header->root->children, "stream header with children");
    fuzz_check_roundtrip(header->root, "");
    stanza_free(header);
    if (!(r->behaviour & 0x01)) return XS_CONTINUE;
    r->paused = 1;
    return XS_PAUSE;
}

static xs_action on_element(void *ud, stanza *st)
{
    run *r = ud;
    check_limits(r, st);
    const char *ctx = xml_stream_default_ns(r->xs);
    if (!ctx) ctx = "";
    fuzz_check_roundtrip(st->root, ctx);
    if (strcmp(ctx, r->other_ctx) != 0) fuzz_check_roundtrip(st->root, r->other_ctx);
    check_copy(st, ctx);
    int pause = (r->behaviour & 0x04) || ((r->behaviour & 0x02) && restarts_stream(st->root));
    stanza_free(st);
    if (!pause) return XS_CONTINUE;
    r->paused = 1;
    return XS_PAUSE;
}

static void on_close(void *ud)
{
    run *r = ud;
    r->closed = 1;
}

static const xml_stream_handler handler = {on_open, on_element, on_close};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER_LEN) return 0;
    run r = {0};
    r.lim.max_depth = 1 + 2 * (data[0] & 7);
    r.lim.max_attrs = 1 + 3 * ((data[0] >> 3) & 7);
    r.lim.max_stanza_bytes = 64 + 32 * (size_t)data[1];
    r.behaviour = data[2];
    r.other_ctx = other_contexts[(data[2] >> 5) & 3];
    const uint8_t *chunks = data + 3;
    data += HEADER_LEN;
    size -= HEADER_LEN;
    r.input = data;
    r.input_len = size;

    r.xs = xml_stream_new(&r.lim, &handler, &r);
    FUZZ_CHECK(r.xs, "xml_stream_new failed");
    size_t at = 0, turn = 0;
    while (at < size) {
        uint8_t c = chunks[turn++ % 4];
        size_t n = c == 0xff ? size - at : (size_t)c + 1;
        if (n > size - at) n = size - at;
        size_t used = 12345;
        xml_err e = xml_stream_feed(r.xs, (const char *)data + at, n, &used);
        if (e != XML_OK) {
            FUZZ_CHECK(xml_err_condition(e) && *xml_stream_error_text(r.xs), "error %d without text", e);
            if (!(r.behaviour & 0x08)) break;
            xml_stream_reset(r.xs);
            r.paused = r.closed = 0;
            at += n;
            continue;
        }
        FUZZ_CHECK(used <= n, "consumed %zu of %zu", used, n);
        if (r.paused) {
            /* The element that paused ended in this chunk. */
            FUZZ_CHECK(used > 0, "paused without consuming a byte");
            /* Feeding again without a reset must be refused. */
            size_t again;
            FUZZ_CHECK(xml_stream_feed(r.xs, (const char *)data + at + used, n - used, &again) != XML_OK,
                       "fed after a pause without reset");
            xml_stream_reset(r.xs);
            r.paused = r.closed = 0;
            at += used;
            continue;
        }
        FUZZ_CHECK(used == n, "consumed %zu of %zu without a pause", used, n);
        if (r.closed) {
            if (!(r.behaviour & 0x10)) break;
            xml_stream_reset(r.xs);
            r.closed = 0;
        } else {
            size_t pending = xml_stream_pending_bytes(r.xs);
            FUZZ_CHECK(pending <= r.lim.max_stanza_bytes, "%zu bytes pending, limit %zu", pending,
                       r.lim.max_stanza_bytes);
        }
        at += n;
    }
    xml_stream_free(r.xs);
    return 0;
}
