/* The link to the router: s2s joins as a trusted component and binds
 * itself as the default route, so every stanza for a domain no component
 * has bound arrives here; stanzas from remote servers go back as plain
 * stanzas (a trusted component may send from any address). The sm sends
 * client messages in route envelopes with s2s-seq, to be confirmed when the
 * remote server has them (custody.c). */
#include <string.h>

#include "common/log.h"
#include "s2s/s2s.h"

static void (*stop_done)(s2s *s);

static void on_ready(component *c, void *ud)
{
    s2s *s = ud;
    (void)c;
    log_notice("s2s: ready at the router as the default route");
    /* Incoming streams were paused while the router was away. */
    for (in_conn *ic = s->ins; ic; ic = ic->next)
        if (ic->c && !ic->rate_timer) conn_resume_read(ic->c);
    custody_link_ready(s);
}

static void on_lost(component *c, const char *reason, void *ud)
{
    s2s *s = ud;
    (void)c;
    log_warn("s2s: lost the router (%s): incoming streams paused", reason);
    for (in_conn *ic = s->ins; ic; ic = ic->next)
        if (ic->c) conn_pause_read(ic->c);
    custody_link_lost(s);
}

static void on_stanza(component *c, stanza *st, void *ud)
{
    s2s *s = ud;
    (void)c;
    xnode *el = st->root;
    if (xnode_is(el, "route", NS_SB_ROUTER)) {
        custody_route(s, st);
        return;
    }
    if (!xnode_is(el, "message", NULL) && !xnode_is(el, "presence", NULL) && !xnode_is(el, "iq", NULL)) {
        log_info("s2s: ignoring <%s/> from the router", el->name);
        stanza_free(st);
        return;
    }
    router_link_outbound(s, st, NULL);
}

void router_link_outbound(s2s *s, stanza *st, s2s_ticket *t)
{
    xnode *el = st->root;
    char local[JID_DOMAIN_BUF], remote[JID_DOMAIN_BUF];
    const char *from = xnode_attr(el, "from");
    const char *to = xnode_attr(el, "to");
    if (!to || jid_domain_of(to, remote, sizeof remote) < 0) {
        log_info("s2s: <%s/> without a valid 'to' from the router", el->name);
        s2s_bounce(s, st, "jid-malformed", NULL);
        if (t) ticket_confirm(s, t);
        return;
    }
    if (!from || jid_domain_of(from, local, sizeof local) < 0) {
        log_info("s2s: <%s/> to %s without a valid 'from': dropped", el->name, remote);
        stanza_free(st);
        if (t) ticket_confirm(s, t);
        return;
    }
    if (s2s_is_local(s, remote)) {
        /* One of ours with nobody serving it: never federate with ourselves. */
        s2s_bounce(s, st, "service-unavailable", NULL);
        if (t) ticket_confirm(s, t);
        return;
    }
    if (s->stopping) {
        s2s_bounce(s, st, "remote-server-timeout", "the server is shutting down");
        if (t) ticket_confirm(s, t);
        return;
    }
    route_send(route_get(s, local, remote), st, t);
}

static void on_bind_failed(component *c, const char *name, const char *condition, void *ud)
{
    (void)c;
    (void)ud;
    log_error("s2s: the router refused the default route '%s': %s (is another s2s running?)", name, condition);
}

static void on_name(component *c, const char *name, int online, void *ud)
{
    (void)c;
    custody_name(ud, name, online);
}

static const component_handler link_handler = {
    .on_ready = on_ready,
    .on_lost = on_lost,
    .on_stanza = on_stanza,
    .on_name = on_name,
    .on_bind_failed = on_bind_failed,
};

int router_link_start(s2s *s, const char *name, const char *secret, const char *host, int port)
{
    component_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = name;
    cfg.secret = secret;
    cfg.router_host = host;
    cfg.router_port = port;
    cfg.max_stanza_bytes = s->lim.max_stanza_bytes * 2 + 4096;
    s->comp = component_new(s->loop, &cfg, &link_handler, s);
    if (!s->comp) return -1;
    component_bind(s->comp, name, 1);
    component_start(s->comp);
    return 0;
}

int router_link_ready(const s2s *s)
{
    return s->comp && component_ready(s->comp);
}

int router_link_deliver(s2s *s, xnode *el)
{
    if (!router_link_ready(s)) return -1;
    buf *b = &s->scratch;
    buf_reset(b);
    stanza_write_as(b, el, NS_COMPONENT);
    return component_send_raw(s->comp, b->data, b->len);
}

int router_link_send(s2s *s, const xnode *el)
{
    if (!router_link_ready(s)) return -1;
    return component_send(s->comp, el);
}

static void on_stopped(component *c, void *ud)
{
    (void)c;
    s2s *s = ud;
    if (stop_done) stop_done(s);
}

void router_link_stop(s2s *s, void (*done)(s2s *s))
{
    stop_done = done;
    if (!s->comp) {
        if (done) done(s);
        return;
    }
    component_stop(s->comp, on_stopped);
}
