/* Route envelopes from trusted components without parsing them into a tree.
 *
 * The c2s and the sm exchange almost everything inside <route/> envelopes
 * (docs/sessions.md), and the router needs only the envelope's 'to' and
 * 'from' to forward one; the same holds for the bare stanzas the sm and
 * s2s exchange for remote domains (the domains of 'to' and 'from'). A profile of the messages benchmark showed the
 * router spending most of its time in expat and tree building for exactly
 * that. So for a trusted component (one of Switchboard's own processes,
 * which write with xml_write) the top-level elements are delimited here by
 * a small scanner, and an envelope is forwarded as its original bytes: the
 * bytes xml_write would write too, since an envelope declares its own
 * namespace.
 *
 * Everything else goes to the client's xml_stream as whole elements, which
 * validates and handles it as before: bind, unbind, bare stanzas, stream
 * errors, an envelope the router must bounce (no such name, a 'from' that
 * is not the sender's), an envelope with a prefixed name or an entity in
 * its addresses. Anything the scanner does not expect at all (the end of
 * the stream, a comment or processing instruction, text between elements,
 * an element over the size limit) turns the fast path off for the rest of
 * the connection, and the xml_stream gets all further bytes, raising the
 * stream error it always did. What is not checked here is well-formedness
 * inside an envelope: the receiving process's own parser refuses a
 * malformed one, and only a trusted process could have sent it. */
#include <string.h>

#include "common/jid.h"
#include "common/log.h"
#include "router/router.h"

#define MAX_SCAN_DEPTH 64

typedef struct span {
    const char *p;
    size_t n;
} span;

/* What the scanner learnt about one complete top-level element. */
typedef struct scanned {
    size_t len;        /* bytes from its '<' through its last '>' */
    enum { OTHER, ENVELOPE, STANZA } kind;   /* ENVELOPE and STANZA: no prefixed names inside */
    int stanza_kind;   /* STANZA: 0 message, 1 presence, 2 iq */
    span to, from;
    int dup_addr;      /* 'to' or 'from' given twice */
} scanned;

enum { SCAN_INCOMPLETE = 0, SCAN_DONE = 1, SCAN_UNEXPECTED = -1 };

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

static int span_is(span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* A name with a prefix other than xml: (or a namespace declaration with a
 * prefix): forwarding its bytes would depend on declarations the receiver
 * may not have. */
static int prefixed(span name)
{
    const char *colon = memchr(name.p, ':', name.n);
    if (!colon) return 0;
    return !(colon - name.p == 3 && memcmp(name.p, "xml", 3) == 0);
}

/* One tag from p[*i] (just after its '<') through its '>'. On SCAN_DONE *i
 * is after the '>', *empty says "/>", and for the element's own start tag
 * (top != NULL) the name and addresses are recorded. */
static int scan_start_tag(const char *p, size_t n, size_t *i, int *empty, scanned *top, int *clean, span *tag)
{
    size_t k = *i, name0 = k;
    while (k < n && !is_space(p[k]) && p[k] != '>' && p[k] != '/' && p[k] != '<') k++;
    if (k == n) return SCAN_INCOMPLETE;
    span name = {p + name0, k - name0};
    *tag = name;
    if (name.n == 0 || p[k] == '<') return SCAN_UNEXPECTED;
    if (prefixed(name)) *clean = 0;
    span ns = {NULL, 0};
    for (;;) {
        while (k < n && is_space(p[k])) k++;
        if (k == n) return SCAN_INCOMPLETE;
        if (p[k] == '>') { *empty = 0; k++; break; }
        if (p[k] == '/') {
            if (k + 1 == n) return SCAN_INCOMPLETE;
            if (p[k + 1] != '>') return SCAN_UNEXPECTED;
            *empty = 1;
            k += 2;
            break;
        }
        size_t a0 = k;
        while (k < n && !is_space(p[k]) && p[k] != '=' && p[k] != '>' && p[k] != '/' && p[k] != '<') k++;
        span an = {p + a0, k - a0};
        while (k < n && is_space(p[k])) k++;
        if (k == n) return SCAN_INCOMPLETE;
        if (an.n == 0 || p[k] != '=') return SCAN_UNEXPECTED;
        k++;
        while (k < n && is_space(p[k])) k++;
        if (k == n) return SCAN_INCOMPLETE;
        char q = p[k];
        if (q != '\'' && q != '"') return SCAN_UNEXPECTED;
        size_t v0 = ++k;
        while (k < n && p[k] != q && p[k] != '<') k++;
        if (k == n) return SCAN_INCOMPLETE;
        if (p[k] == '<') return SCAN_UNEXPECTED;
        span v = {p + v0, k - v0};
        k++;
        if (prefixed(an)) *clean = 0;
        if (!top) continue;
        if (span_is(an, "xmlns")) {
            ns = v;
        } else if (span_is(an, "to")) {
            if (top->to.p) top->dup_addr = 1;
            top->to = v;
        } else if (span_is(an, "from")) {
            if (top->from.p) top->dup_addr = 1;
            top->from = v;
        }
    }
    if (top) {
        /* without xmlns a stanza is in the stream's namespace, jabber:component:accept */
        int stanza_ns = !ns.p || span_is(ns, NS_COMPONENT) || span_is(ns, NS_CLIENT) || span_is(ns, NS_SERVER);
        static const char *const stanzas[] = {"message", "presence", "iq"};
        if (ns.p && span_is(ns, NS_SB_ROUTER) && span_is(name, "route")) top->kind = ENVELOPE;
        for (int s = 0; s < 3 && stanza_ns; s++)
            if (span_is(name, stanzas[s])) {
                top->kind = STANZA;
                top->stanza_kind = s;
            }
    }
    *i = k;
    return SCAN_DONE;
}

/* One top-level element at the start of p[0..n) (p[0] is '<'). End tags
 * must match their start tags, so that a broken element is not taken for a
 * longer one: the parser gets it and says what is wrong. */
static int scan_element(const char *p, size_t n, scanned *out)
{
    memset(out, 0, sizeof *out);
    if (n < 2) return SCAN_INCOMPLETE;
    if (p[1] == '/' || p[1] == '!' || p[1] == '?') return SCAN_UNEXPECTED;   /* stream end, comment, PI */
    int clean = 1, empty = 0;
    size_t i = 1;
    span open[MAX_SCAN_DEPTH];
    int rv = scan_start_tag(p, n, &i, &empty, out, &clean, &open[0]);
    if (rv != SCAN_DONE) return rv;
    unsigned depth = empty ? 0 : 1;
    while (depth > 0) {
        const char *lt = memchr(p + i, '<', n - i);
        if (!lt) return SCAN_INCOMPLETE;
        i = (size_t)(lt - p) + 1;
        if (i == n) return SCAN_INCOMPLETE;
        if (p[i] == '!' || p[i] == '?') return SCAN_UNEXPECTED;   /* CDATA, comment, PI: the parser decides */
        if (p[i] == '/') {
            const char *gt = memchr(p + i, '>', n - i);
            if (!gt) return SCAN_INCOMPLETE;
            span name = {p + i + 1, (size_t)(gt - p) - i - 1};
            while (name.n && is_space(name.p[name.n - 1])) name.n--;
            const span *o = &open[depth - 1];
            if (name.n != o->n || memcmp(name.p, o->p, name.n) != 0) return SCAN_UNEXPECTED;
            i = (size_t)(gt - p) + 1;
            depth--;
        } else {
            if (depth == MAX_SCAN_DEPTH) return SCAN_UNEXPECTED;
            rv = scan_start_tag(p, n, &i, &empty, NULL, &clean, &open[depth]);
            if (rv != SCAN_DONE) return rv;
            if (!empty) depth++;
        }
    }
    out->len = i;
    if (!clean) out->kind = OTHER;
    return SCAN_DONE;
}

/* An address copied out for the routing table, if it is plain (no entity). */
static int plain_address(span v, char *out, size_t outlen)
{
    if (!v.p || v.n == 0 || v.n >= outlen || memchr(v.p, '&', v.n)) return -1;
    memcpy(out, v.p, v.n);
    out[v.n] = '\0';
    return 0;
}

/* Where a bare stanza from a trusted component goes, as route_stanza
 * decides it; NULL when the router must answer it with an error. */
static rclient *stanza_target(rclient *rc, const char *to, const char *from)
{
    router *r = rc->r;
    char to_domain[JID_PART_MAX + 1], from_domain[JID_PART_MAX + 1];
    if (route_domain_of(from, from_domain, sizeof from_domain) < 0 ||
        route_domain_of(to, to_domain, sizeof to_domain) < 0)
        return NULL;
    rclient *target = route_lookup(r, to_domain);
    if (target) return target;
    if (route_is_known(r, to_domain) || !r->default_route || r->default_route == rc) return NULL;
    return r->default_route;
}

/* The element forwarded as its bytes; 0 if it was, -1 if the xml_stream
 * must handle it (the router answers with an error there, or it is not
 * for forwarding). */
static int forward_raw(rclient *rc, const char *p, const scanned *s)
{
    /* addresses are JIDs or component names: at most a full JID */
    char to[3 * JID_PART_MAX + 3], from[3 * JID_PART_MAX + 3];
    if (s->kind == OTHER || s->dup_addr || plain_address(s->to, to, sizeof to) < 0 ||
        plain_address(s->from, from, sizeof from) < 0)
        return -1;
    rclient *target;
    if (s->kind == ENVELOPE) {
        if (!route_owns(rc, from)) return -1;
        target = route_lookup(rc->r, to);
    } else {
        target = stanza_target(rc, to, from);
    }
    if (!target) return -1;
    router_forward_bytes(rc, target, p, s->len, s->kind == ENVELOPE ? -1 : s->stanza_kind);
    return 0;
}

/* The slow path: the xml_stream parses and handles these bytes. 0 to go
 * on, -1 once the client is closing. */
static int feed_stream(rclient *rc, const char *p, size_t n)
{
    size_t consumed;
    xml_err err = xml_stream_feed(rc->xs, p, n, &consumed);
    if (err != XML_OK) rclient_stream_error(rc, xml_err_condition(err), xml_stream_error_text(rc->xs));
    return rc->state == RC_CLOSING ? -1 : 0;
}

/* Whole elements from p[0..n): forwarded or fed; returns the bytes used
 * (the rest is an incomplete element), or n after switching to the slow path. */
static size_t feed_elements(rclient *rc, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && rc->state != RC_CLOSING) {
        if (is_space(p[i])) { i++; continue; }   /* whitespace keepalives between elements */
        scanned s;
        int rv = p[i] == '<' ? scan_element(p + i, n - i, &s) : SCAN_UNEXPECTED;
        if (rv == SCAN_INCOMPLETE && n - i <= rc->r->limits.max_stanza_bytes) return i;
        if (rv != SCAN_DONE) {
            /* from here on the parser sees everything, and says what is wrong */
            rc->fast = -1;
            feed_stream(rc, p + i, n - i);
            return n;
        }
        if (forward_raw(rc, p + i, &s) != 0 && feed_stream(rc, p + i, s.len) != 0) return n;
        i += s.len;
    }
    return rc->state == RC_CLOSING ? n : i;
}

void envelope_feed(rclient *rc, const char *data, size_t len)
{
    buf *pend = &rc->pending;
    if (pend->len == 0) {
        size_t used = feed_elements(rc, data, len);
        if (used < len && rc->state != RC_CLOSING && rc->fast > 0) buf_append(pend, data + used, len - used);
        return;
    }
    buf_append(pend, data, len);
    size_t used = feed_elements(rc, pend->data, pend->len);
    if (rc->state == RC_CLOSING || rc->fast < 0) buf_reset(pend);
    else buf_consume(pend, used);
}
