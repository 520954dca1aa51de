/* Component connections: stream header, XEP-0114 handshake, then routing
 * of every element, with the project's bind and route extensions. */
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/stanza_error.h"
#include "common/xml_write.h"
#include "router/router.h"

static const conn_handler rclient_conn_handler;
static xs_action on_stream_open(void *ud, stanza *header);
static xs_action on_element(void *ud, stanza *st);
static void on_stream_close(void *ud);
static const xml_stream_handler rclient_xml_handler = {on_stream_open, on_element, on_stream_close};

static const char *rc_label(const rclient *rc)
{
    return rc->name ? rc->name : conn_peer(rc->c);
}

void rclient_write_element(rclient *rc, const xnode *el)
{
    buf *o = &rc->r->out;
    buf_reset(o);
    xml_write(o, el, NS_COMPONENT);
    conn_write(rc->c, o->data, o->len);
}

static void send_header(rclient *rc, const char *from)
{
    buf *o = &rc->r->out;
    buf_reset(o);
    buf_append_str(o, "<?xml version='1.0'?><stream:stream xmlns:stream='" NS_STREAMS
                      "' xmlns='" NS_COMPONENT "' id='");
    buf_append_str(o, rc->stream_id);
    if (from) {
        buf_append_str(o, "' from='");
        xml_escape_attr(o, from, strlen(from));
    }
    buf_append_str(o, "'>");
    conn_write(rc->c, o->data, o->len);
    rc->header_sent = 1;
}

void rclient_stream_error(rclient *rc, const char *condition, const char *text)
{
    if (rc->state == RC_CLOSING) return;
    log_notice("component %s (%s): stream error %s%s%s", rc_label(rc), conn_peer(rc->c), condition,
               text ? ": " : "", text ? text : "");
    if (!rc->header_sent) send_header(rc, NULL);
    buf *o = &rc->r->out;
    buf_reset(o);
    stream_error_write(o, condition, text);
    buf_append_str(o, "</stream:stream>");
    conn_write(rc->c, o->data, o->len);
    rc->state = RC_CLOSING;
    conn_close(rc->c);
}

/* ---- flow control: a slow destination pauses its senders ---- */

static void add_waiter(rclient *target, rclient *sender)
{
    for (size_t i = 0; i < target->nwaiters; i++)
        if (target->waiters[i] == sender) return;
    rclient **w = realloc(target->waiters, (target->nwaiters + 1) * sizeof *w);
    if (!w) abort();
    target->waiters = w;
    target->waiters[target->nwaiters++] = sender;
    conn_pause_read(sender->c);
}

static void release_waiters(rclient *target)
{
    for (size_t i = 0; i < target->nwaiters; i++) conn_resume_read(target->waiters[i]->c);
    target->nwaiters = 0;
}

static void forget_waiter(router *r, rclient *gone)
{
    for (rclient *rc = r->clients; rc; rc = rc->next)
        for (size_t i = 0; i < rc->nwaiters; i++)
            if (rc->waiters[i] == gone) rc->waiters[i] = rc->waiters[--rc->nwaiters];
}

static double count_components(void *ud)
{
    return (double)((router *)ud)->nclients;
}

static double queued_bytes(void *ud)
{
    double total = 0;
    for (rclient *rc = ((router *)ud)->clients; rc; rc = rc->next) total += (double)conn_queued(rc->c);
    return total;
}

static double count_routes(void *ud)
{
    return (double)strmap_count(&((router *)ud)->routes);
}

void router_metrics_init(router *r)
{
    const char *h = "Stanzas forwarded, by kind";
    r->m.routed[0] = metrics_counter("switchboard_router_stanzas_total", h, "kind=\"message\"");
    r->m.routed[1] = metrics_counter("switchboard_router_stanzas_total", h, "kind=\"presence\"");
    r->m.routed[2] = metrics_counter("switchboard_router_stanzas_total", h, "kind=\"iq\"");
    r->m.envelopes = metrics_counter("switchboard_router_routes_total", "Route envelopes forwarded", NULL);
    r->m.bounced = metrics_counter("switchboard_router_bounces_total", "Stanzas answered with an error", NULL);
    r->m.refused_from = metrics_counter("switchboard_router_spoofed_from_total",
                                        "Stanzas refused for a 'from' the component does not own", NULL);
    r->m.auth_failures = metrics_counter("switchboard_router_auth_failures_total", "Failed component handshakes", NULL);
    metrics_gauge_fn("switchboard_router_connections", "Component connections", NULL, count_components, r);
    metrics_gauge_fn("switchboard_router_names", "Names in the routing table", NULL, count_routes, r);
    metrics_gauge_fn("switchboard_router_queued_bytes", "Bytes waiting to be written to components", NULL,
                     queued_bytes, r);
}

static void count_forwarded(router *r, const xnode *el)
{
    if (!r->m.envelopes) return;
    switch (el->name[0]) {
    case 'm': metric_inc(r->m.routed[0]); break;
    case 'p': metric_inc(r->m.routed[1]); break;
    case 'i': metric_inc(r->m.routed[2]); break;
    default: metric_inc(r->m.envelopes); break;
    }
}

void router_forward_bytes(rclient *from, rclient *target, const char *data, size_t len, int kind)
{
    router *r = from->r;
    if (r->m.envelopes) metric_inc(kind >= 0 && kind < 3 ? r->m.routed[kind] : r->m.envelopes);
    conn_write(target->c, data, len);
    if (!conn_writable(target->c) && from != target) add_waiter(target, from);
}

static void forward(rclient *from, rclient *target, stanza *st)
{
    count_forwarded(from->r, st->root);
    rclient_write_element(target, st->root);
    stanza_free(st);
    if (!conn_writable(target->c) && from != target) add_waiter(target, from);
}

/* ---- routing ---- */

static void route_stanza(rclient *rc, stanza *st)
{
    router *r = rc->r;
    xnode *el = st->root;
    const char *to = xnode_attr(el, "to");
    const char *from = xnode_attr(el, "from");
    char to_domain[JID_PART_MAX + 1], from_domain[JID_PART_MAX + 1];

    if (!from || route_domain_of(from, from_domain, sizeof from_domain) < 0) {
        bounce_to_sender(rc, st, "bad-request", from ? "'from' is not a valid JID" : "a component must set 'from'");
        return;
    }
    if (!rc->trusted && !route_owns(rc, from_domain)) {
        log_warn("component %s (%s): refused <%s/> with foreign from='%s'", rc_label(rc), conn_peer(rc->c),
                 el->name, from);
        if (r->m.refused_from) metric_inc(r->m.refused_from);
        bounce_to_sender(rc, st, "forbidden", "'from' is not an address of this component");
        return;
    }
    if (!to) {
        bounce_to_sender(rc, st, "bad-request", "no 'to' address");
        return;
    }
    if (route_domain_of(to, to_domain, sizeof to_domain) < 0) {
        bounce_to_sender(rc, st, "jid-malformed", "'to' is not a valid JID");
        return;
    }
    rclient *target = route_lookup(r, to_domain);
    if (!target) {
        if (route_is_known(r, to_domain)) {
            bounce_to_sender(rc, st, "service-unavailable", "the service for this domain is not connected");
            return;
        }
        if (!r->default_route || r->default_route == rc) {
            bounce_to_sender(rc, st, "remote-server-not-found", NULL);
            return;
        }
        target = r->default_route;
    }
    forward(rc, target, st);
}

static void route_envelope(rclient *rc, stanza *st)
{
    router *r = rc->r;
    const char *to = xnode_attr(st->root, "to");
    const char *from = xnode_attr(st->root, "from");
    if (!rc->trusted) {
        bounce_to_sender(rc, st, "forbidden", "route envelopes are for trusted components");
        return;
    }
    if (!from || !route_owns(rc, from)) {
        bounce_to_sender(rc, st, "forbidden", "a route must come from a name of the sending component");
        return;
    }
    rclient *target = to ? route_lookup(r, to) : NULL;
    if (!target) {
        bounce_to_sender(rc, st, "service-unavailable", "no component by that name");
        return;
    }
    forward(rc, target, st);
}

static void answer_bind(rclient *rc, const char *name, const char *condition)
{
    buf *o = &rc->r->out;
    buf_reset(o);
    buf_append_str(o, "<bind xmlns='" NS_SB_ROUTER "' name='");
    xml_escape_attr(o, name, strlen(name));
    if (!condition) {
        buf_append_str(o, "' type='result'/>");
    } else {
        buf_printf(o, "' type='error'><%s xmlns='" NS_XMPP_STANZAS "'/></bind>", condition);
    }
    conn_write(rc->c, o->data, o->len);
}

static void handle_bind(rclient *rc, stanza *st)
{
    router *r = rc->r;
    const char *raw_name = xnode_attr(st->root, "name");
    const char *def = xnode_attr(st->root, "default");
    int is_default = def && (!strcmp(def, "true") || !strcmp(def, "1"));
    char name[JID_PART_MAX + 1];
    if (!raw_name) {
        rclient_stream_error(rc, "bad-format", "<bind/> needs a name");
    } else if (!rc->trusted) {
        answer_bind(rc, raw_name, "forbidden");
    } else if (jid_nameprep(raw_name, name, sizeof name) < 0) {
        answer_bind(rc, raw_name, "jid-malformed");
    } else if (is_default && r->default_route && r->default_route != rc) {
        answer_bind(rc, raw_name, "conflict");
    } else if (route_add(r, name, rc) < 0) {
        log_warn("component %s: bind of '%s' refused: held by %s", rc->name, name, route_lookup(r, name)->name);
        answer_bind(rc, raw_name, "conflict");
    } else {
        if (!route_owns(rc, name)) {
            char **n = realloc(rc->names, (rc->nnames + 1) * sizeof *n);
            if (!n) abort();
            rc->names = n;
            rc->names[rc->nnames++] = strdup(name);
        }
        if (is_default) {
            r->default_route = rc;
            rc->is_default = 1;
        }
        log_notice("component %s bound '%s'%s", rc->name, name, is_default ? " as the default route" : "");
        answer_bind(rc, raw_name, NULL);
        route_announce(r, name, 1, rc);
    }
    stanza_free(st);
}

static void handle_unbind(rclient *rc, stanza *st)
{
    router *r = rc->r;
    const char *name = xnode_attr(st->root, "name");
    for (size_t i = 0; name && i < rc->nnames; i++) {
        if (strcmp(rc->names[i], name)) continue;
        strmap_del(&r->routes, name);
        route_announce(r, name, 0, rc);
        free(rc->names[i]);
        rc->names[i] = rc->names[--rc->nnames];
        log_notice("component %s unbound '%s'", rc->name, name);
        break;
    }
    stanza_free(st);
}

static void authenticate(rclient *rc, stanza *st)
{
    router *r = rc->r;
    char expected[2 * SHA1_LEN + 1];
    buf input = BUF_INIT;
    buf_append_str(&input, rc->stream_id);
    buf_append_str(&input, rc->acl->secret);
    sha1_hex(input.data, input.len, expected);
    crypto_wipe(input.data, input.len);
    buf_free(&input);

    const char *given = xnode_is(st->root, "handshake", NS_COMPONENT) ? xnode_text(st->root) : NULL;
    int good = given && strlen(given) == 2 * SHA1_LEN && crypto_memeq(given, expected, 2 * SHA1_LEN);
    stanza_free(st);
    if (!good) {
        log_warn("component %s (%s): handshake failed", rc->name, conn_peer(rc->c));
        if (r->m.auth_failures) metric_inc(r->m.auth_failures);
        rclient_stream_error(rc, "not-authorized", NULL);
        return;
    }
    if (route_add(r, rc->name, rc) < 0) {
        rclient_stream_error(rc, "conflict", "a component with this name is already connected");
        return;
    }
    rc->trusted = rc->acl->trusted;
    rc->state = RC_READY;
    conn_set_timeout(rc->c, 0);
    conn_write_str(rc->c, "<handshake/>");
    log_notice("component %s connected from %s%s", rc->name, conn_peer(rc->c), rc->trusted ? " (trusted)" : "");
    if (rc->trusted) route_announce_all_to(r, rc);
    route_announce(r, rc->name, 1, rc);
}

static xs_action on_stream_open(void *ud, stanza *header)
{
    rclient *rc = ud;
    xnode *h = header->root;
    const char *to = xnode_attr(h, "to");
    const char *default_ns = xml_stream_default_ns(rc->xs);
    char name[JID_PART_MAX + 1];
    if (!xnode_is(h, "stream", NS_STREAMS)) {
        rclient_stream_error(rc, "invalid-namespace", "expected <stream:stream/>");
    } else if (!default_ns || strcmp(default_ns, NS_COMPONENT) != 0) {
        rclient_stream_error(rc, "invalid-namespace", "the default namespace must be " NS_COMPONENT);
    } else if (!to || jid_nameprep(to, name, sizeof name) < 0) {
        rclient_stream_error(rc, "improper-addressing", "the stream header must name the component in 'to'");
    } else if (!(rc->acl = route_find_acl(rc->r, name))) {
        log_warn("unknown component '%s' from %s", to, conn_peer(rc->c));
        rclient_stream_error(rc, "host-unknown", "no component by that name is configured");
    } else {
        rc->name = strdup(name);
        send_header(rc, name);
        rc->state = RC_HANDSHAKE;
    }
    stanza_free(header);
    return rc->state == RC_CLOSING ? XS_PAUSE : XS_CONTINUE;
}

/* A message, presence or iq. Components send them in their stream's
 * namespace; Switchboard's own processes may forward a client's or a
 * server's stanza with its original namespace declared (xml_write adds
 * xmlns='jabber:client'), and that is the same stanza. */
static int is_stanza(const xnode *el)
{
    if (!el->ns || (strcmp(el->ns, NS_COMPONENT) && strcmp(el->ns, NS_CLIENT) && strcmp(el->ns, NS_SERVER)))
        return 0;
    return !strcmp(el->name, "message") || !strcmp(el->name, "presence") || !strcmp(el->name, "iq");
}

static xs_action on_element(void *ud, stanza *st)
{
    rclient *rc = ud;
    xnode *el = st->root;
    if (rc->state == RC_HANDSHAKE) {
        authenticate(rc, st);
    } else if (rc->state != RC_READY) {
        stanza_free(st);
    } else if (is_stanza(el)) {
        route_stanza(rc, st);
    } else if (el->ns && !strcmp(el->ns, NS_SB_ROUTER) && !strcmp(el->name, "route")) {
        route_envelope(rc, st);
    } else if (el->ns && !strcmp(el->ns, NS_SB_ROUTER) && !strcmp(el->name, "bind")) {
        handle_bind(rc, st);
    } else if (el->ns && !strcmp(el->ns, NS_SB_ROUTER) && !strcmp(el->name, "unbind")) {
        handle_unbind(rc, st);
    } else if (xnode_is(el, "error", NS_STREAMS)) {
        xnode *cond = xnode_first_element(el);
        log_warn("component %s sent a stream error: %s", rc_label(rc), cond ? cond->name : "?");
        stanza_free(st);
        rc->state = RC_CLOSING;
        conn_close(rc->c);
    } else {
        char text[128];
        snprintf(text, sizeof text, "unexpected <%s/>", el->name);
        stanza_free(st);
        rclient_stream_error(rc, "unsupported-stanza-type", text);
    }
    return rc->state == RC_CLOSING ? XS_PAUSE : XS_CONTINUE;
}

static void on_stream_close(void *ud)
{
    rclient *rc = ud;
    if (rc->state == RC_CLOSING) return;
    if (rc->state == RC_READY) conn_write_str(rc->c, "</stream:stream>");
    rc->state = RC_CLOSING;
    conn_close(rc->c);
}

/* ---- connection events ---- */

static void on_read(conn *c, const char *data, size_t len)
{
    rclient *rc = conn_data(c);
    if (rc->state == RC_CLOSING) return;
    if (rc->fast > 0) {
        envelope_feed(rc, data, len);
        return;
    }
    size_t consumed;
    xml_err err = xml_stream_feed(rc->xs, data, len, &consumed);
    if (err != XML_OK) {
        rclient_stream_error(rc, xml_err_condition(err), xml_stream_error_text(rc->xs));
        return;
    }
    /* A trusted component goes over to the fast path once it is in and the
     * parser holds no partial element: from then on the scanner hands the
     * parser whole elements only. */
    if (!rc->fast && rc->state == RC_READY && rc->trusted && rc->r->limits.raw_envelopes &&
        xml_stream_pending_bytes(rc->xs) == 0)
        rc->fast = 1;
}

static void on_drain(conn *c)
{
    release_waiters(conn_data(c));
}

static void on_timeout(conn *c)
{
    rclient *rc = conn_data(c);
    rclient_stream_error(rc, "connection-timeout", "the handshake took too long");
}

static void on_unsent(conn *c, const char *data, size_t len)
{
    rclient *rc = conn_data(c);
    bounce_unsent(rc->r, data, len);
}

static void on_close(conn *c, const char *reason)
{
    rclient *rc = conn_data(c);
    router *r = rc->r;
    if (rc->state == RC_READY || (rc->name && route_lookup(r, rc->name) == rc)) {
        log_notice("component %s disconnected: %s", rc_label(rc), reason);
    } else {
        log_info("connection from %s closed: %s", conn_peer(c), reason);
    }
    route_remove_all(r, rc);
    release_waiters(rc);
    forget_waiter(r, rc);
    if (rc->prev) rc->prev->next = rc->next; else r->clients = rc->next;
    if (rc->next) rc->next->prev = rc->prev;
    r->nclients--;
    xml_stream_free(rc->xs);
    for (size_t i = 0; i < rc->nnames; i++) free(rc->names[i]);
    free(rc->names);
    free(rc->waiters);
    free(rc->name);
    buf_free(&rc->pending);
    free(rc);
    if (r->stopping && !r->clients && r->on_stopped) r->on_stopped(r);
}

static const conn_handler rclient_conn_handler = {
    .on_read = on_read,
    .on_drain = on_drain,
    .on_timeout = on_timeout,
    .on_unsent = on_unsent,
    .on_close = on_close,
};

static void on_connection(uv_stream_t *server, int status)
{
    router *r = server->data;
    if (status < 0) {
        log_error("accept failed: %s", uv_strerror(status));
        return;
    }
    rclient *rc = calloc(1, sizeof *rc);
    if (!rc) abort();
    rc->r = r;
    conn_limits lim;
    conn_limits_default(&lim);
    lim.write_high_water = r->limits.write_high_water;
    lim.write_max = r->limits.write_max;
    rc->c = conn_accept(server, &lim, &rclient_conn_handler, rc);
    if (!rc->c) {
        free(rc);
        return;
    }
    xml_limits xl;
    xml_limits_default(&xl);
    xl.max_stanza_bytes = r->limits.max_stanza_bytes;
    xl.max_depth = 64;
    rc->xs = xml_stream_new(&xl, &rclient_xml_handler, rc);
    random_token(rc->stream_id, sizeof rc->stream_id - 1);
    rc->state = RC_HEADER;
    conn_set_timeout(rc->c, r->limits.handshake_timeout_ms);
    rc->next = r->clients;
    if (r->clients) r->clients->prev = rc;
    r->clients = rc;
    r->nclients++;
    log_debug("connection from %s", conn_peer(rc->c));
}

int router_start(router *r, const char *address, int port)
{
    r->listener.data = r;
    int rv = conn_listen(r->loop, &r->listener, address, port, 0, on_connection);
    if (rv < 0) {
        log_error("cannot listen on %s:%d: %s", address, port, uv_strerror(rv));
        uv_close((uv_handle_t *)&r->listener, NULL);
        return -1;
    }
    r->listening = 1;
    log_notice("listening for components on %s:%d", address, port);
    return 0;
}

void router_stop(router *r, void (*on_stopped)(router *r))
{
    r->stopping = 1;
    r->on_stopped = on_stopped;
    if (r->listening) {
        uv_close((uv_handle_t *)&r->listener, NULL);
        r->listening = 0;
    }
    for (rclient *rc = r->clients, *next; rc; rc = next) {
        next = rc->next;
        rclient_stream_error(rc, "system-shutdown", NULL);
    }
    if (!r->clients && on_stopped) on_stopped(r);
}
