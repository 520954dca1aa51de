/* Route envelopes from trusted components without parsing them into a tree.
 *
 * The c2s and the sm exchange almost everything inside <route/> envelopes
 * (docs/sessions.md), and the router needs only the envelope's 'to' and
 * 'from' to forward one; the same holds for the bare stanzas the sm and
 * s2s exchange for remote domains (the domains of 'to' and 'from'). A profile of the messages benchmark showed the
 * router spending most of its time in expat and tree building for exactly
 * that. So for a trusted component (one of Switchboard's own processes,
 * which write with xml_write) the top-level elements are delimited here by
 * the scanner of common/xml_scan.c, and an envelope is forwarded as its original bytes: the
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
 * stream error it always did. What is not checked here is full
 * well-formedness inside an envelope (xml_scan.h lists what is): the
 * receiving process refuses a malformed one, and only a trusted process
 * could have sent it. */
#include <string.h>

#include "common/jid.h"
#include "common/log.h"
#include "common/xml_scan.h"
#include "router/router.h"

#define MAX_SCAN_DEPTH 64

/* What the router makes of one scanned element. */
typedef enum { OTHER, ENVELOPE, STANZA } element_kind;

/* ENVELOPE and STANZA need no prefixed names inside (forwarding such bytes
 * would depend on declarations the receiver may not have); *stanza_kind:
 * 0 message, 1 presence, 2 iq. */
static element_kind kind_of(const xml_scanned *s, int *stanza_kind)
{
    if (s->prefixed) return OTHER;
    if (s->ns.p && xml_span_is(s->ns, NS_SB_ROUTER) && xml_span_is(s->name, "route")) return ENVELOPE;
    /* without xmlns a stanza is in the stream's namespace, jabber:component:accept */
    int stanza_ns = !s->ns.p || xml_span_is(s->ns, NS_COMPONENT) || xml_span_is(s->ns, NS_CLIENT) ||
                    xml_span_is(s->ns, NS_SERVER);
    static const char *const stanzas[] = {"message", "presence", "iq"};
    for (int k = 0; k < 3 && stanza_ns; k++)
        if (xml_span_is(s->name, stanzas[k])) {
            *stanza_kind = k;
            return STANZA;
        }
    return OTHER;
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
static int forward_raw(rclient *rc, const char *p, const xml_scanned *s)
{
    /* addresses are JIDs or component names: at most a full JID */
    char to[3 * JID_PART_MAX + 3], from[3 * JID_PART_MAX + 3];
    int stanza_kind = -1;
    element_kind kind = kind_of(s, &stanza_kind);
    if (kind == OTHER || s->dup_attr || s->attrs_dropped ||
        xml_span_plain(xml_scan_attr_value(s, "to"), to, sizeof to) < 0 ||
        xml_span_plain(xml_scan_attr_value(s, "from"), from, sizeof from) < 0)
        return -1;
    rclient *target;
    if (kind == ENVELOPE) {
        if (!route_owns(rc, from)) return -1;
        target = route_lookup(rc->r, to);
    } else {
        target = stanza_target(rc, to, from);
    }
    if (!target) return -1;
    router_forward_bytes(rc, target, p, s->len, kind == ENVELOPE ? -1 : stanza_kind);
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
        if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n') { i++; continue; }   /* keepalives */
        xml_scanned s;
        xml_scan_result rv = xml_scan_element(p + i, n - i, MAX_SCAN_DEPTH, &s);
        if (rv == XML_SCAN_INCOMPLETE && n - i <= rc->r->limits.max_stanza_bytes) return i;
        if (rv != XML_SCAN_DONE) {
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
