/* Incremental XML stream parser on expat (see xml_stream.h).
 *
 * Positions: expat reports every event's absolute byte offset since the
 * start of the stream (XML_GetCurrentByteIndex). We keep the input bytes
 * from `keep_from` on (the start of the open top-level element, or the end
 * of the last event between elements) in `inbuf`, so that when a top-level
 * element ends its original bytes can be copied out even if they arrived
 * over many feeds. During a feed the bytes of that call are read in place.
 *
 * Idle streams and their parser: expat keeps several KB per parser (its
 * structure, name pools, tag stack, input buffer) even between elements, and
 * a server holds one per idle client. A stream that is between top-level
 * elements with no input pending goes on a per-thread idle list; after
 * parser_idle_ms its parser is freed along with the stream's own buffers.
 * The stream keeps the raw start tag of the root, its namespace declarations
 * and its absolute offsets; a new parser is fed that start tag with no
 * handlers installed (expat then knows the open root and its bindings) and
 * carries on. Expat counts bytes and lines from its own start, so
 * `index_delta` and `line_delta` map its numbers back to the stream's. */
#include "common/xml_stream.h"

#include <expat.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "common/buf.h"

/* Separator between URI, local name and prefix in expat's names. It is not
 * a legal XML character, so it can never occur inside a URI or name. */
#define NS_SEP '\x01'

#define LIMIT_DEFAULT_STANZA_BYTES 65536
#define LIMIT_DEFAULT_DEPTH 32
#define LIMIT_DEFAULT_ATTRS 64

void xml_limits_default(xml_limits *lim)
{
    lim->max_stanza_bytes = LIMIT_DEFAULT_STANZA_BYTES;
    lim->max_depth = LIMIT_DEFAULT_DEPTH;
    lim->max_attrs = LIMIT_DEFAULT_ATTRS;
}

const char *xml_err_condition(xml_err err)
{
    switch (err) {
    case XML_OK: return NULL;
    case XML_ERR_NOT_WELL_FORMED: return "not-well-formed";
    case XML_ERR_RESTRICTED: return "restricted-xml";
    case XML_ERR_BAD_PREFIX: return "bad-namespace-prefix";
    case XML_ERR_TOO_BIG:
    case XML_ERR_TOO_DEEP:
    case XML_ERR_TOO_MANY_ATTRS: return "policy-violation";
    case XML_ERR_AFTER_END: return "not-well-formed";
    case XML_ERR_NOMEM: return "resource-constraint";
    case XML_ERR_STREAM_REOPENED: return "unsupported-stanza-type";
    }
    return "internal-server-error";
}

const char *xml_err_string(xml_err err)
{
    switch (err) {
    case XML_OK: return "ok";
    case XML_ERR_NOT_WELL_FORMED: return "XML not well-formed";
    case XML_ERR_RESTRICTED: return "XML feature not allowed in XMPP (restricted XML)";
    case XML_ERR_BAD_PREFIX: return "undeclared namespace prefix";
    case XML_ERR_TOO_BIG: return "element too large";
    case XML_ERR_TOO_DEEP: return "elements nested too deeply";
    case XML_ERR_TOO_MANY_ATTRS: return "too many attributes";
    case XML_ERR_AFTER_END: return "data after the end of the stream";
    case XML_ERR_NOMEM: return "out of memory";
    case XML_ERR_STREAM_REOPENED: return "stream header inside an open stream";
    }
    return "unknown XML error";
}

/* One namespace declaration in scope: prefix (an offset into ns_names, or
 * NO_PREFIX for the default namespace) and the level of its element. */
#define NO_PREFIX SIZE_MAX
typedef struct ns_decl {
    size_t prefix_off;
    unsigned level;
} ns_decl;

struct xml_stream {
    XML_Parser parser;
    xml_limits lim;
    xml_stream_handler h;
    void *ud;
    int document;            /* xml_parse_document: the root itself is the result */
    unsigned top_level;      /* level of the elements reported as stanzas */

    xml_err err;
    buf errtext;
    int stopped;             /* error, pause or end: later callbacks are ignored */
    int paused;
    uint64_t pause_end;      /* absolute offset just after the paused element */
    int closed;              /* the root element has ended */
    uint64_t root_end;

    unsigned depth;          /* open elements; the root has level 0 */
    xnode **open;            /* open element per level (NULL for the stream root) */
    size_t open_cap;
    stanza *cur;             /* the top-level element being built */
    stanza *result;          /* document mode: the finished root */
    buf text;                /* character data not yet turned into a text node */

    buf inbuf;               /* input bytes from inbuf_base on */
    uint64_t inbuf_base;
    const char *feed_data;   /* the bytes of the current XML_Parse call */
    size_t feed_len;
    uint64_t feed_base;
    uint64_t keep_from;      /* bytes before this are no longer needed */
    uint64_t elem_start;     /* start of the open top-level element */

    ns_decl *decls;          /* namespace declarations in scope, innermost last */
    size_t ndecls, decls_cap;
    buf ns_names;            /* NUL-terminated prefixes of decls */
    buf root_default_ns;     /* default namespace declared on the root */
    int has_root_default_ns;

    char *header;            /* raw start tag of the root, replayed to a new parser */
    size_t header_len;
    int64_t index_delta;     /* stream offset = expat byte index + index_delta */
    long line_delta;         /* stream line = expat line + line_delta */
    unsigned long idle_line; /* without a parser: the stream's current line */
    xml_stream *idle_prev, *idle_next;   /* on the idle list */
    int on_idle_list;
    uint64_t idle_since_ms;
};

/* Streams between elements, least recently fed first (one list per thread;
 * every process is single-threaded). */
static _Thread_local struct {
    xml_stream *head, *tail;
    unsigned idle_ms;
    int idle_ms_set;
    unsigned long hash_salt;
    int hash_salt_set;
} idle_streams;

static void install_handlers(xml_stream *xs);

static unsigned long current_line(const xml_stream *xs)
{
    if (!xs->parser) return xs->idle_line;
    return (unsigned long)((long)XML_GetCurrentLineNumber(xs->parser) + xs->line_delta);
}

/* ---- errors ---- */

static void set_error_at(xml_stream *xs, xml_err err, const char *msg)
{
    if (xs->err) return;
    xs->err = err;
    buf_reset(&xs->errtext);
    buf_printf(&xs->errtext, "line %lu: %s (column %lu)", current_line(xs), msg,
               xs->parser ? (unsigned long)XML_GetCurrentColumnNumber(xs->parser) + 1 : 1);
}

/* Refuse from inside a callback: record the error and abort the parse. */
static void fail(xml_stream *xs, xml_err err, const char *msg)
{
    if (xs->stopped) return;   /* paused or already failed: nothing more to say */
    set_error_at(xs, err, msg);
    xs->stopped = 1;
    XML_StopParser(xs->parser, XML_FALSE);
}

static xml_err map_expat_error(enum XML_Error e)
{
    switch (e) {
    case XML_ERROR_UNDEFINED_ENTITY:
    case XML_ERROR_RECURSIVE_ENTITY_REF:
    case XML_ERROR_PARAM_ENTITY_REF:
    case XML_ERROR_BINARY_ENTITY_REF:
    case XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF:
    case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
    case XML_ERROR_ENTITY_DECLARED_IN_PE:
    case XML_ERROR_NOT_STANDALONE:
    case XML_ERROR_AMPLIFICATION_LIMIT_BREACH:
        return XML_ERR_RESTRICTED;
    case XML_ERROR_UNBOUND_PREFIX:
        return XML_ERR_BAD_PREFIX;
    case XML_ERROR_NO_MEMORY:
        return XML_ERR_NOMEM;
    case XML_ERROR_JUNK_AFTER_DOC_ELEMENT:
        return XML_ERR_AFTER_END;
    default:
        return XML_ERR_NOT_WELL_FORMED;
    }
}

/* ---- positions and input bytes ---- */

static uint64_t event_start(const xml_stream *xs)
{
    XML_Index i = XML_GetCurrentByteIndex(xs->parser);
    if (i < 0) return 0;
    int64_t at = (int64_t)i + xs->index_delta;
    return at < 0 ? 0 : (uint64_t)at;
}

static uint64_t event_end(const xml_stream *xs)
{
    return event_start(xs) + (uint64_t)XML_GetCurrentByteCount(xs->parser);
}

/* Copy input bytes [from, to) (absolute offsets) to dst; they lie partly in
 * inbuf and partly in the current feed. */
static void copy_input(const xml_stream *xs, uint64_t from, uint64_t to, char *dst)
{
    uint64_t inbuf_end = xs->inbuf_base + xs->inbuf.len;
    if (from < inbuf_end) {
        uint64_t upto = to < inbuf_end ? to : inbuf_end;
        memcpy(dst, xs->inbuf.data + (from - xs->inbuf_base), (size_t)(upto - from));
        dst += upto - from;
        from = upto;
    }
    if (from < to) memcpy(dst, xs->feed_data + (from - xs->feed_base), (size_t)(to - from));
}

/* The start of what counts against max_stanza_bytes right now. */
static uint64_t limit_base(const xml_stream *xs)
{
    return xs->cur ? xs->elem_start : xs->keep_from;
}

static int check_size(xml_stream *xs, uint64_t base, uint64_t pos)
{
    if (pos > base && pos - base > xs->lim.max_stanza_bytes) {
        char msg[96];
        snprintf(msg, sizeof msg, "element larger than %zu bytes", xs->lim.max_stanza_bytes);
        fail(xs, XML_ERR_TOO_BIG, msg);
        return -1;
    }
    return 0;
}

/* ---- namespace declarations ---- */

static void on_ns_start(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    xml_stream *xs = ud;
    if (xs->stopped) return;
    if (xs->ndecls == xs->decls_cap) {
        size_t cap = xs->decls_cap ? xs->decls_cap * 2 : 16;
        ns_decl *d = realloc(xs->decls, cap * sizeof *d);
        if (!d) {
            fail(xs, XML_ERR_NOMEM, "out of memory");
            return;
        }
        xs->decls = d;
        xs->decls_cap = cap;
    }
    ns_decl *d = &xs->decls[xs->ndecls++];
    d->level = xs->depth;   /* declared on the element about to start */
    if (prefix) {
        d->prefix_off = xs->ns_names.len;
        buf_append(&xs->ns_names, prefix, strlen(prefix) + 1);
    } else {
        d->prefix_off = NO_PREFIX;
        if (xs->depth == 0 && uri && *uri) {
            buf_reset(&xs->root_default_ns);
            buf_append_str(&xs->root_default_ns, uri);
            buf_cstr(&xs->root_default_ns);
            xs->has_root_default_ns = 1;
        }
    }
}

static void pop_decls(xml_stream *xs, unsigned level)
{
    while (xs->ndecls > 0 && xs->decls[xs->ndecls - 1].level >= level) {
        ns_decl *d = &xs->decls[--xs->ndecls];
        if (d->prefix_off != NO_PREFIX) xs->ns_names.len = d->prefix_off;
    }
}

/* The element at `level` (or a descendant) uses `prefix`: flag every open
 * element the declaration lies outside of. */
static void note_prefix_use(xml_stream *xs, const char *prefix, unsigned level)
{
    if (!prefix || strcmp(prefix, "xml") == 0) return;
    for (size_t i = xs->ndecls; i-- > 0;) {
        const ns_decl *d = &xs->decls[i];
        if (d->prefix_off == NO_PREFIX || strcmp(xs->ns_names.data + d->prefix_off, prefix) != 0)
            continue;
        for (unsigned k = d->level + 1; k <= level; k++)
            if (xs->open[k]) xs->open[k]->flags |= XNODE_USES_OUTER_PREFIX;
        return;
    }
}

/* ---- building the tree ---- */

typedef struct qname {
    const char *ns;        /* NULL when empty */
    size_t ns_len;
    const char *local;
    size_t local_len;
    const char *prefix;    /* NULL if none */
} qname;

/* Split expat's "uri SEP local [SEP prefix]" (or plain "local"). */
static qname split_name(const char *s)
{
    qname q = {NULL, 0, s, strlen(s), NULL};
    const char *sep = strchr(s, NS_SEP);
    if (!sep) return q;
    q.ns = s;
    q.ns_len = (size_t)(sep - s);
    q.local = sep + 1;
    const char *sep2 = strchr(q.local, NS_SEP);
    if (sep2) {
        q.local_len = (size_t)(sep2 - q.local);
        q.prefix = sep2 + 1;
    } else {
        q.local_len = strlen(q.local);
    }
    return q;
}

/* Namespace strings are shared with the parent when equal (the usual case). */
static const char *intern_ns(stanza *st, const xnode *parent, const qname *q)
{
    if (!q->ns || q->ns_len == 0) return "";
    if (parent && strlen(parent->ns) == q->ns_len && memcmp(parent->ns, q->ns, q->ns_len) == 0)
        return parent->ns;
    if (q->ns_len == sizeof NS_XML - 1 && memcmp(q->ns, NS_XML, q->ns_len) == 0) return NS_XML;
    return stanza_strndup(st, q->ns, q->ns_len);
}

static xnode *new_element(stanza *st, xnode *parent, const qname *q)
{
    xnode *n = arena_alloc(&st->mem, sizeof *n);
    memset(n, 0, sizeof *n);
    n->type = XNODE_ELEMENT;
    n->doc = st;
    n->name = stanza_strndup(st, q->local, q->local_len);
    n->ns = intern_ns(st, parent, q);
    n->prefix = q->prefix ? stanza_strdup(st, q->prefix) : NULL;
    n->parent = parent;
    if (parent) {
        n->prev = parent->last_child;
        if (parent->last_child) parent->last_child->next = n;
        else parent->children = n;
        parent->last_child = n;
    }
    return n;
}

static void flush_text(xml_stream *xs)
{
    if (xs->text.len == 0) return;
    xnode *parent = xs->depth > 0 ? xs->open[xs->depth - 1] : NULL;
    if (parent && xs->cur) {
        stanza *st = xs->cur;
        xnode *t = arena_alloc(&st->mem, sizeof *t);
        memset(t, 0, sizeof *t);
        t->type = XNODE_TEXT;
        t->doc = st;
        t->text = stanza_strndup(st, xs->text.data, xs->text.len);
        t->text_len = xs->text.len;
        t->parent = parent;
        t->prev = parent->last_child;
        if (parent->last_child) parent->last_child->next = t;
        else parent->children = t;
        parent->last_child = t;
    }
    buf_reset(&xs->text);
}

static void pause_at(xml_stream *xs, uint64_t end)
{
    xs->paused = 1;
    xs->pause_end = end;
    xs->stopped = 1;
    XML_StopParser(xs->parser, XML_TRUE);
}

static void on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xml_stream *xs = ud;
    if (xs->stopped) return;
    unsigned level = xs->depth;
    uint64_t start = event_start(xs), end = event_end(xs);
    uint64_t base = level == xs->top_level ? start : limit_base(xs);
    if (check_size(xs, base, end) < 0) return;
    if (level > xs->lim.max_depth) {
        char msg[96];
        snprintf(msg, sizeof msg, "elements nested deeper than %u", xs->lim.max_depth);
        fail(xs, XML_ERR_TOO_DEEP, msg);
        return;
    }
    size_t nattrs = 0, own_decls = 0;
    int declares_default = 0;
    while (atts[2 * nattrs]) nattrs++;
    for (size_t i = xs->ndecls; i-- > 0 && xs->decls[i].level == level;) {
        own_decls++;
        if (xs->decls[i].prefix_off == NO_PREFIX) declares_default = 1;
    }
    if (nattrs + own_decls > xs->lim.max_attrs) {
        char msg[96];
        snprintf(msg, sizeof msg, "more than %u attributes on one element", xs->lim.max_attrs);
        fail(xs, XML_ERR_TOO_MANY_ATTRS, msg);
        return;
    }
    if (level >= xs->open_cap) {
        size_t cap = xs->open_cap ? xs->open_cap * 2 : 8;
        while (cap <= level) cap *= 2;
        xnode **o = realloc(xs->open, cap * sizeof *o);
        if (!o) {
            fail(xs, XML_ERR_NOMEM, "out of memory");
            return;
        }
        xs->open = o;
        xs->open_cap = cap;
    }
    flush_text(xs);

    qname q = split_name(name);
    if (!xs->document && level == xs->top_level && q.ns && q.ns_len == strlen(NS_STREAMS) &&
        !memcmp(q.ns, NS_STREAMS, q.ns_len) && q.local_len == 6 && !memcmp(q.local, "stream", 6)) {
        /* A second <stream:stream> while the stream is open: refused at its
         * start tag, or everything after it would nest inside it unseen. */
        fail(xs, XML_ERR_STREAM_REOPENED, "a stream header inside the open stream (only a restart after "
                                          "STARTTLS or SASL success opens a new one)");
        return;
    }
    stanza *st;
    xnode *parent = NULL;
    if (level < xs->top_level) {
        st = stanza_new_empty();          /* the stream header */
    } else if (level == xs->top_level) {
        st = stanza_new_empty();
        xs->cur = st;
        xs->elem_start = start;
    } else {
        st = xs->cur;
        parent = xs->open[level - 1];
    }
    xnode *el = new_element(st, parent, &q);
    if (!parent) st->root = el;
    el->line = (uint32_t)current_line(xs);
    if (declares_default) el->flags |= XNODE_DECLARES_DEFAULT_NS;
    if (level >= xs->top_level) el->raw_off = (uint32_t)(start - xs->elem_start);

    xattr **tail = &el->attrs;
    for (size_t i = 0; i < nattrs; i++) {
        qname aq = split_name(atts[2 * i]);
        xattr *a = arena_alloc(&st->mem, sizeof *a);
        a->name = stanza_strndup(st, aq.local, aq.local_len);
        a->ns = intern_ns(st, NULL, &aq);
        a->prefix = aq.prefix ? stanza_strdup(st, aq.prefix) : NULL;
        a->value = stanza_strdup(st, atts[2 * i + 1]);
        a->next = NULL;
        *tail = a;
        tail = &a->next;
    }

    xs->open[level] = level < xs->top_level ? NULL : el;
    xs->depth++;
    note_prefix_use(xs, el->prefix, level);
    for (const xattr *a = el->attrs; a; a = a->next) note_prefix_use(xs, a->prefix, level);

    if (level < xs->top_level) {
        /* Kept to rebuild the parser of an idle stream (see above). */
        free(xs->header);
        xs->header_len = 0;
        xs->header = malloc(end - start);
        if (!xs->header) {
            stanza_free(st);
            fail(xs, XML_ERR_NOMEM, "out of memory");
            return;
        }
        copy_input(xs, start, end, xs->header);
        xs->header_len = (size_t)(end - start);
        xs->keep_from = end;
        xs_action act = XS_CONTINUE;
        if (xs->h.stream_open) act = xs->h.stream_open(xs->ud, st);
        else stanza_free(st);
        if (act == XS_PAUSE) pause_at(xs, end);
    }
}

static void on_end(void *ud, const XML_Char *name)
{
    (void)name;
    xml_stream *xs = ud;
    if (xs->stopped) return;
    uint64_t end = event_end(xs);
    flush_text(xs);   /* text belongs to the element that is ending */
    unsigned level = --xs->depth;
    if (level < xs->top_level) {
        /* </stream:stream>: whatever follows is checked by feed itself. */
        pop_decls(xs, level);
        xs->closed = 1;
        xs->root_end = end;
        xs->keep_from = end;
        xs->stopped = 1;
        XML_StopParser(xs->parser, XML_FALSE);
        if (xs->h.stream_close) xs->h.stream_close(xs->ud);
        return;
    }
    if (check_size(xs, xs->elem_start, end) < 0) return;
    xnode *el = xs->open[level];
    el->raw_len = (uint32_t)(end - xs->elem_start - el->raw_off);
    xs->open[level] = NULL;
    pop_decls(xs, level);
    if (level != xs->top_level) return;

    stanza *st = xs->cur;
    xs->cur = NULL;
    size_t n = (size_t)(end - xs->elem_start);
    if (n <= UINT32_MAX) {   /* raw spans are 32-bit; beyond that, forwarders re-serialize */
        char *raw = arena_alloc(&st->mem, n + 1);
        copy_input(xs, xs->elem_start, end, raw);
        raw[n] = '\0';
        st->raw = raw;
        st->raw_len = n;
    }
    xs->keep_from = end;
    if (xs->document) {
        xs->result = st;
        xs->closed = 1;
        return;
    }
    xs_action act = XS_CONTINUE;
    if (xs->h.element) act = xs->h.element(xs->ud, st);
    else stanza_free(st);
    if (act == XS_PAUSE) pause_at(xs, end);
}

static void on_text(void *ud, const XML_Char *s, int len)
{
    xml_stream *xs = ud;
    if (xs->stopped) return;
    uint64_t end = event_end(xs);
    if (!xs->cur) {
        /* Whitespace between stanzas: dropped, and its bytes need not be kept. */
        xs->keep_from = end;
        return;
    }
    if (check_size(xs, xs->elem_start, end) < 0) return;
    buf_append(&xs->text, s, (size_t)len);
}

/* ---- restricted XML ---- */

static void on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                       const XML_Char *pubid, int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    fail(ud, XML_ERR_RESTRICTED, "DOCTYPE is not allowed");
}

static void on_entity_decl(void *ud, const XML_Char *name, int is_param, const XML_Char *value,
                           int value_len, const XML_Char *base, const XML_Char *sysid,
                           const XML_Char *pubid, const XML_Char *notation)
{
    (void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid,
        (void)pubid, (void)notation;
    fail(ud, XML_ERR_RESTRICTED, "entity declarations are not allowed");
}

static void on_skipped_entity(void *ud, const XML_Char *name, int is_param)
{
    (void)name, (void)is_param;
    fail(ud, XML_ERR_RESTRICTED, "references to undeclared entities are not allowed");
}

static void on_comment(void *ud, const XML_Char *data)
{
    (void)data;
    xml_stream *xs = ud;
    if (xs->document) return;   /* config files may carry comments */
    fail(xs, XML_ERR_RESTRICTED, "comments are not allowed");
}

static void on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    (void)target, (void)data;
    fail(ud, XML_ERR_RESTRICTED, "processing instructions are not allowed");
}

/* XMPP is UTF-8 only (RFC 6120 §11.6); the original bytes are forwarded as
 * they are, so another declared encoding cannot be converted silently. */
static void on_xml_decl(void *ud, const XML_Char *version, const XML_Char *encoding,
                        int standalone)
{
    (void)version, (void)standalone;
    if (encoding && strcasecmp(encoding, "UTF-8") != 0)
        fail(ud, XML_ERR_NOT_WELL_FORMED, "only UTF-8 is supported");
}

static void install_handlers(xml_stream *xs)
{
    XML_Parser p = xs->parser;
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_text);
    XML_SetStartNamespaceDeclHandler(p, on_ns_start);
    XML_SetStartDoctypeDeclHandler(p, on_doctype);
    XML_SetEntityDeclHandler(p, on_entity_decl);
    XML_SetSkippedEntityHandler(p, on_skipped_entity);
    XML_SetCommentHandler(p, on_comment);
    XML_SetProcessingInstructionHandler(p, on_pi);
    XML_SetXmlDeclHandler(p, on_xml_decl);
}

/* One hash salt per thread instead of one per parser: expat would ask the
 * kernel for entropy each time a parser is made, and idle streams make
 * them often. */
static void set_hash_salt(XML_Parser p)
{
    if (!idle_streams.hash_salt_set) {
        unsigned long salt = 0;
        if (getrandom(&salt, sizeof salt, 0) != (ssize_t)sizeof salt || salt == 0) return;   /* expat picks its own */
        idle_streams.hash_salt = salt;
        idle_streams.hash_salt_set = 1;
    }
    XML_SetHashSalt(p, idle_streams.hash_salt);
}

/* A parser with our settings and no handlers yet. */
static XML_Parser new_parser(xml_stream *xs)
{
    XML_Parser p = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (!p) return NULL;
    XML_SetUserData(p, xs);
    XML_SetReturnNSTriplet(p, 1);
    XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
    set_hash_salt(p);
    return p;
}

/* ---- idle streams ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static unsigned idle_ms(void)
{
    return idle_streams.idle_ms_set ? idle_streams.idle_ms : XML_PARSER_IDLE_MS_DEFAULT;
}

void xml_stream_set_parser_idle_ms(unsigned ms)
{
    idle_streams.idle_ms = ms;
    idle_streams.idle_ms_set = 1;
}

static void idle_unlink(xml_stream *xs)
{
    if (!xs->on_idle_list) return;
    if (xs->idle_prev) xs->idle_prev->idle_next = xs->idle_next;
    else idle_streams.head = xs->idle_next;
    if (xs->idle_next) xs->idle_next->idle_prev = xs->idle_prev;
    else idle_streams.tail = xs->idle_prev;
    xs->idle_prev = xs->idle_next = NULL;
    xs->on_idle_list = 0;
}

static void idle_append(xml_stream *xs, uint64_t now)
{
    idle_unlink(xs);
    xs->idle_since_ms = now;
    xs->idle_prev = idle_streams.tail;
    xs->idle_next = NULL;
    if (idle_streams.tail) idle_streams.tail->idle_next = xs;
    else idle_streams.head = xs;
    idle_streams.tail = xs;
    xs->on_idle_list = 1;
}

/* Free the parser and the input buffers of a stream between elements. */
static void parser_release(xml_stream *xs)
{
    idle_unlink(xs);
    if (!xs->parser) return;
    xs->idle_line = current_line(xs);
    XML_ParserFree(xs->parser);
    xs->parser = NULL;
    buf_free(&xs->inbuf);
    buf_free(&xs->text);
    buf_free(&xs->errtext);
    /* What stays (the root's declarations) is a few bytes: drop the room. */
    buf_shrink(&xs->ns_names);
    buf_shrink(&xs->root_default_ns);
    if (xs->decls_cap > xs->ndecls && xs->ndecls > 0) {
        ns_decl *d = realloc(xs->decls, xs->ndecls * sizeof *d);
        if (d) {
            xs->decls = d;
            xs->decls_cap = xs->ndecls;
        }
    }
}

static size_t release_expired(uint64_t now)
{
    size_t n = 0;
    unsigned ms = idle_ms();
    while (idle_streams.head && now - idle_streams.head->idle_since_ms >= ms) {
        parser_release(idle_streams.head);
        n++;
    }
    return n;
}

size_t xml_stream_release_idle(void)
{
    return idle_streams.head ? release_expired(now_ms()) : 0;
}

int xml_stream_has_parser(const xml_stream *xs)
{
    return xs->parser != NULL;
}

/* Between two top-level elements with nothing pending: the parser holds no
 * state that the stream could not rebuild from the header. */
static int between_elements(const xml_stream *xs)
{
    return !xs->document && xs->header && !xs->err && !xs->stopped && !xs->closed && !xs->cur &&
           xs->depth == xs->top_level && xs->inbuf.len == 0 && xs->text.len == 0;
}

/* Give a stream a parser again: replay the root's start tag to it with no
 * handlers, then map its offsets and lines onto the stream's. */
static int parser_attach(xml_stream *xs)
{
    XML_Parser p = new_parser(xs);
    if (!p) return -1;
    if (xs->header_len > 0) {
        if (XML_Parse(p, xs->header, (int)xs->header_len, 0) != XML_STATUS_OK) {
            XML_ParserFree(p);
            return -1;
        }
        uint64_t resume = xs->inbuf_base + xs->inbuf.len;
        xs->index_delta = (int64_t)resume - (int64_t)xs->header_len;
        xs->line_delta = (long)xs->idle_line - (long)XML_GetCurrentLineNumber(p);
    } else {
        xs->index_delta = (int64_t)(xs->inbuf_base + xs->inbuf.len);
        xs->line_delta = (long)xs->idle_line - 1;
    }
    xs->parser = p;
    install_handlers(xs);
    return 0;
}

/* ---- the stream ---- */

static xml_stream *stream_create(const xml_limits *lim, const xml_stream_handler *h, void *ud,
                                 int document)
{
    xml_stream *xs = calloc(1, sizeof *xs);
    if (!xs) return NULL;
    if (lim) xs->lim = *lim;
    else xml_limits_default(&xs->lim);
    if (h) xs->h = *h;
    xs->ud = ud;
    xs->document = document;
    xs->top_level = document ? 0 : 1;
    xs->idle_line = 1;
    xs->parser = new_parser(xs);
    if (!xs->parser) {
        xml_stream_free(xs);
        return NULL;
    }
    install_handlers(xs);
    return xs;
}

xml_stream *xml_stream_new(const xml_limits *lim, const xml_stream_handler *h, void *ud)
{
    return stream_create(lim, h, ud, 0);
}

void xml_stream_reset(xml_stream *xs)
{
    stanza_free(xs->cur);
    stanza_free(xs->result);
    xs->cur = xs->result = NULL;
    /* A restart is a new document: the next feed makes a fresh parser
     * (XML_ParserReset would keep the old one's buffers). */
    parser_release(xs);
    free(xs->header);
    xs->header = NULL;
    xs->header_len = 0;
    xs->index_delta = 0;
    xs->line_delta = 0;
    xs->idle_line = 1;
    xs->err = XML_OK;
    buf_free(&xs->errtext);
    xs->stopped = xs->paused = xs->closed = 0;
    xs->pause_end = xs->root_end = 0;
    xs->depth = 0;
    buf_free(&xs->text);
    buf_free(&xs->inbuf);
    xs->inbuf_base = xs->feed_base = xs->keep_from = xs->elem_start = 0;
    xs->feed_data = NULL;
    xs->feed_len = 0;
    xs->ndecls = 0;
    buf_reset(&xs->ns_names);
    buf_reset(&xs->root_default_ns);
    xs->has_root_default_ns = 0;
}

void xml_stream_free(xml_stream *xs)
{
    if (!xs) return;
    idle_unlink(xs);
    stanza_free(xs->cur);
    stanza_free(xs->result);
    if (xs->parser) XML_ParserFree(xs->parser);
    free(xs->header);
    free(xs->open);
    free(xs->decls);
    buf_free(&xs->errtext);
    buf_free(&xs->text);
    buf_free(&xs->inbuf);
    buf_free(&xs->ns_names);
    buf_free(&xs->root_default_ns);
    free(xs);
}

static int all_whitespace(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* After the root has closed only whitespace may follow (XML's epilog allows
 * it, and a peer's trailing newline is not worth an error). */
static xml_err after_end(xml_stream *xs, const char *data, size_t len)
{
    if (all_whitespace(data, len)) return XML_OK;
    xs->err = XML_ERR_AFTER_END;
    buf_reset(&xs->errtext);
    buf_printf(&xs->errtext, "line %lu: data after the end of the root element", current_line(xs));
    return xs->err;
}

/* One XML_Parse call over at most INT_MAX bytes. */
static xml_err feed_piece(xml_stream *xs, const char *data, size_t len, int final,
                          size_t *consumed)
{
    *consumed = 0;
    xs->feed_data = data;
    xs->feed_len = len;
    xs->feed_base = xs->inbuf_base + xs->inbuf.len;
    enum XML_Status status = XML_Parse(xs->parser, data, (int)len, final);
    uint64_t feed_end = xs->feed_base + len;

    if (xs->err) return xs->err;
    if (xs->closed && !xs->document) {
        size_t at = (size_t)(xs->root_end - xs->feed_base);
        *consumed = len;
        return after_end(xs, data + at, len - at);
    }
    if (status == XML_STATUS_ERROR) {
        enum XML_Error e = XML_GetErrorCode(xs->parser);
        xs->stopped = 1;
        xml_err mapped = map_expat_error(e);
        char msg[160];
        snprintf(msg, sizeof msg, "%s%s", XML_ErrorString(e),
                 mapped == XML_ERR_RESTRICTED ? " (only the five predefined entities are allowed)" : "");
        set_error_at(xs, mapped, msg);
        return xs->err;
    }
    if (xs->paused) {
        *consumed = (size_t)(xs->pause_end - xs->feed_base);
        return XML_OK;
    }
    if (xs->document && xs->result) {
        *consumed = len;
        return XML_OK;
    }
    /* Expat buffers an unfinished token without calling us: the limit must
     * hold for a huge start tag, attribute value or text as well. */
    if (check_size(xs, limit_base(xs), feed_end) < 0) return xs->err;

    /* Keep only the input that a later element may still need. */
    uint64_t keep = limit_base(xs);
    if (keep > xs->inbuf_base) {
        uint64_t drop = keep - xs->inbuf_base;
        if (drop > xs->inbuf.len) drop = xs->inbuf.len;
        buf_consume(&xs->inbuf, (size_t)drop);
        xs->inbuf_base += drop;
    }
    uint64_t from = keep > xs->feed_base ? keep : xs->feed_base;
    if (from < feed_end) buf_append(&xs->inbuf, data + (from - xs->feed_base), (size_t)(feed_end - from));
    xs->inbuf_base = feed_end - xs->inbuf.len;
    xs->feed_data = NULL;
    xs->feed_len = 0;
    *consumed = len;
    return XML_OK;
}

xml_err xml_stream_feed(xml_stream *xs, const char *data, size_t len, size_t *consumed)
{
    size_t dummy;
    if (!consumed) consumed = &dummy;
    *consumed = 0;
    if (xs->err) return xs->err;
    if (xs->paused) {
        xs->err = XML_ERR_NOT_WELL_FORMED;
        buf_reset(&xs->errtext);
        buf_append_str(&xs->errtext, "fed after a pause without xml_stream_reset");
        return xs->err;
    }
    if (xs->closed) {
        *consumed = len;
        return after_end(xs, data, len);
    }
    idle_unlink(xs);
    if (!xs->parser) {
        if (all_whitespace(data, len)) {
            /* A keepalive between elements: no parser needed for that. */
            for (size_t i = 0; i < len; i++) xs->idle_line += data[i] == '\n';
            xs->inbuf_base += len;
            xs->keep_from = xs->inbuf_base;
            *consumed = len;
            return XML_OK;
        }
        if (parser_attach(xs) < 0) {
            xs->err = XML_ERR_NOMEM;
            buf_reset(&xs->errtext);
            buf_printf(&xs->errtext, "line %lu: out of memory", xs->idle_line);
            return xs->err;
        }
    }
    size_t done = 0;
    while (done < len) {
        size_t piece = len - done > INT_MAX ? INT_MAX : len - done;
        size_t used = 0;
        xml_err e = feed_piece(xs, data + done, piece, 0, &used);
        done += used;
        if (e != XML_OK) return e;
        if (xs->paused) break;
        if (xs->closed) {
            *consumed = len;
            return after_end(xs, data + done, len - done);
        }
    }
    *consumed = done;
    if (between_elements(xs)) {
        uint64_t now = now_ms();
        idle_append(xs, now);
        release_expired(now);
    } else if (idle_streams.head) {
        release_expired(now_ms());
    }
    return XML_OK;
}

const char *xml_stream_error_text(const xml_stream *xs)
{
    if (!xs->err) return "";
    return xs->errtext.len ? xs->errtext.data : xml_err_string(xs->err);
}

const char *xml_stream_default_ns(const xml_stream *xs)
{
    return xs->has_root_default_ns ? xs->root_default_ns.data : NULL;
}

size_t xml_stream_pending_bytes(const xml_stream *xs)
{
    uint64_t end = xs->inbuf_base + xs->inbuf.len, base = limit_base(xs);
    return end > base ? (size_t)(end - base) : 0;
}

stanza *xml_parse_document(const char *data, size_t len, const xml_limits *lim, xml_err *err,
                           char *errtext, size_t errlen)
{
    xml_err dummy;
    if (!err) err = &dummy;
    if (errtext && errlen) errtext[0] = '\0';
    xml_stream *xs = stream_create(lim, NULL, NULL, 1);
    if (!xs) {
        *err = XML_ERR_NOMEM;
        if (errtext && errlen) snprintf(errtext, errlen, "line 0: out of memory");
        return NULL;
    }
    xml_err e = XML_OK;
    if (len > INT_MAX) {
        e = XML_ERR_TOO_BIG;
        set_error_at(xs, e, "document too large");
    } else {
        size_t used;
        e = feed_piece(xs, data, len, 1, &used);
        if (e == XML_OK && !xs->result) {
            e = XML_ERR_NOT_WELL_FORMED;
            set_error_at(xs, e, "no complete root element");
        }
    }
    stanza *st = NULL;
    if (e == XML_OK) {
        st = xs->result;
        xs->result = NULL;
    } else if (errtext && errlen) {
        snprintf(errtext, errlen, "%s", xml_stream_error_text(xs));
    }
    *err = e;
    xml_stream_free(xs);
    return st;
}
