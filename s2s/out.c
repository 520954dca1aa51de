/* Outgoing streams: connect (direct TLS for XEP-0368 targets), open a
 * jabber:server stream, take STARTTLS when offered (certificate checked
 * per RFC 6125 when tls/verify is on, opportunistic otherwise), then
 * authenticate each domain pair with dialback (db:result) and carry the
 * db:verify requests of incoming streams. One stream per remote server
 * carries every domain pair that resolves to it.
 *
 * Stream management (XEP-0198, without resumption) when the peer offers it:
 * enabled once the first pair is authorised; each stanza is kept with its
 * number until the peer's <a h/> covers it, then its sm hears that the
 * remote server took it over (custody.c). A stream lost with stanzas not
 * acknowledged puts them back at the head of their pairs' queues, to go
 * again on a new stream (docs/sessions.md §7). */
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "common/log.h"
#include "common/stanza_error.h"
#include "common/tls.h"
#include "common/xml_write.h"
#include "s2s/s2s.h"

static const conn_handler out_handler;
static const xml_stream_handler out_xml_handler;
static void out_error(out_conn *oc, const char *condition, const char *text);

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) abort();
    return d;
}

static void write_buf(out_conn *oc)
{
    if (oc->c && oc->out.len) conn_write(oc->c, oc->out.data, oc->out.len);
    buf_reset(&oc->out);
}

out_conn *out_open(s2s *s, route *rt, const s2s_target *target)
{
    out_conn *oc = calloc(1, sizeof *oc);
    if (!oc) abort();
    oc->s = s;
    oc->local = xstrdup(rt->local);
    oc->remote = xstrdup(rt->remote);
    oc->target = *target;
    target_key(target, oc->addr, sizeof oc->addr);
    oc->state = OC_CONNECTING;
    oc->last_used = uv_now(s->loop);

    conn_limits lim;
    conn_limits_default(&lim);
    lim.write_max = 16u * 1024u * 1024u;
    oc->c = conn_connect(s->loop, (const struct sockaddr *)&target->addr, &lim, &out_handler, oc);
    if (!oc->c) {
        log_warn("s2s: %s -> %s: cannot connect to %s", rt->local, rt->remote, oc->addr);
        free(oc->local);
        free(oc->remote);
        free(oc);
        return NULL;
    }
    xml_limits xl;
    xml_limits_default(&xl);
    xl.max_stanza_bytes = s->lim.max_stanza_bytes;
    oc->xs = xml_stream_new(&xl, &out_xml_handler, oc);
    oc->next = s->outs;
    if (s->outs) s->outs->prev = oc;
    s->outs = oc;
    s->open_conns++;
    log_info("s2s: conn %llu: connecting to %s for %s%s", (unsigned long long)conn_id(oc->c), oc->addr,
             oc->remote, target->direct_tls ? " (direct TLS)" : "");
    out_attach(oc, rt);
    return oc;
}

out_conn *out_find_for_target(s2s *s, const s2s_target *target, const char *remote)
{
    char key[64];
    target_key(target, key, sizeof key);
    for (out_conn *oc = s->outs; oc; oc = oc->next) {
        if (oc->state == OC_CLOSED || strcmp(oc->addr, key) != 0) continue;
        /* Target multiplexing needs dialback errors (XEP-0220 §4.3), or
         * the stream is still being set up and its features are unknown. */
        if (!strcmp(oc->remote, remote) || oc->db_errors || oc->state < OC_READY) return oc;
    }
    return NULL;
}

void out_attach(out_conn *oc, route *rt)
{
    rt->oc = oc;
    rt->oc_next = oc->routes;
    oc->routes = rt;
}

void out_detach(out_conn *oc, route *rt)
{
    for (route **pp = &oc->routes; *pp; pp = &(*pp)->oc_next) {
        if (*pp == rt) {
            *pp = rt->oc_next;
            break;
        }
    }
    rt->oc = NULL;
    rt->oc_next = NULL;
    /* Nobody waits for a stream still being set up: give it up. */
    if (!oc->routes && !oc->sent && oc->state != OC_READY && oc->state != OC_CLOSED)
        out_close(oc, "no domain pair needs it any more");
}

static void send_header(out_conn *oc)
{
    stream_header_write(&oc->out, oc->local, oc->remote, NULL, 1);
    write_buf(oc);
    oc->state = OC_HEADER;
}

void out_send_result(out_conn *oc, route *rt)
{
    db_write_result_request(&oc->out, oc->s->secret, rt->local, rt->remote, oc->stream_id);
    write_buf(oc);
    oc->last_used = uv_now(oc->s->loop);
    log_info("s2s: conn %llu: dialback for %s -> %s", oc->c ? (unsigned long long)conn_id(oc->c) : 0ULL,
             rt->local, rt->remote);
}

void out_send_verify(out_conn *oc, verify_req *vr)
{
    db_write_verify_request(&oc->out, vr->local, vr->remote, vr->id, vr->key);
    write_buf(oc);
    vr->next = oc->sent;
    oc->sent = vr;
    oc->last_used = uv_now(oc->s->loop);
}

/* a <= b in sequence-number arithmetic (32 bits, wrapping). */
static int seq_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }

void out_write_stanza(out_conn *oc, stanza *st, s2s_ticket *t)
{
    s2s *s = oc->s;
    stanza_write_as(&oc->out, st->root, NS_SERVER);
    write_buf(oc);
    oc->last_used = uv_now(s->loop);
    if (!oc->sm_enabling && !oc->sm_on) {
        /* A peer without stream management: written is all we can know. */
        stanza_free(st);
        if (t) ticket_confirm(s, t);
        return;
    }
    oc->sm_sent++;
    oc->r_due = 1;
    custody_wake(s);
    if (oc->unacked.count >= s->lim.unacked_max) {
        if (!oc->over_limit_logged)
            log_warn("s2s: conn %llu: %zu stanzas to %s not acknowledged; not keeping more (limits/unacked-stanzas)",
                     oc->c ? (unsigned long long)conn_id(oc->c) : 0ULL, oc->unacked.count, oc->remote);
        oc->over_limit_logged = 1;
        stanza_free(st);
        if (t) ticket_confirm(s, t);
        return;
    }
    queue_push(&oc->unacked, st, t);
    oc->unacked.tail->h = oc->sm_sent;
}

void out_sm_enable(out_conn *oc)
{
    if (!oc->sm_offered || oc->sm_enabling || oc->sm_on || !oc->c || oc->state != OC_READY) return;
    buf_append_str(&oc->out, "<enable xmlns='" NS_SM3 "'/>");
    write_buf(oc);
    oc->sm_enabling = 1;
    oc->sm_sent = 0;
    oc->sm_acked = 0;
    log_info("s2s: conn %llu: enabling stream management to %s", (unsigned long long)conn_id(oc->c), oc->remote);
}

void out_request_acks(s2s *s)
{
    for (out_conn *oc = s->outs; oc; oc = oc->next) {
        if (!oc->r_due) continue;
        oc->r_due = 0;
        if (!oc->c || oc->state != OC_READY || (!oc->sm_enabling && !oc->sm_on)) continue;
        buf_append_str(&oc->out, "<r xmlns='" NS_SM3 "'/>");
        write_buf(oc);
    }
}

/* Everything kept is taken over: the peer acknowledged it, or stream
 * management failed and written is all we will know (upto 0: all). */
static void release_unacked(out_conn *oc, uint32_t upto, int all)
{
    while (oc->unacked.head && (all || seq_le(oc->unacked.head->h, upto))) {
        queued *n = queue_pop_item(&oc->unacked);
        ticket_confirm(oc->s, &n->ticket);
        stanza_free(n->st);
        free(n);
    }
}

static void handle_sm(out_conn *oc, const xnode *el)
{
    if (!strcmp(el->name, "enabled") && oc->sm_enabling) {
        oc->sm_enabling = 0;
        oc->sm_on = 1;
        log_info("s2s: conn %llu: stream management on to %s", (unsigned long long)conn_id(oc->c), oc->remote);
    } else if (!strcmp(el->name, "failed") && oc->sm_enabling) {
        const xnode *cond = xnode_first_element(el);
        log_notice("s2s: conn %llu: %s refused stream management (%s): written stanzas count as delivered",
                   (unsigned long long)conn_id(oc->c), oc->remote, cond ? cond->name : "no reason");
        oc->sm_enabling = 0;
        release_unacked(oc, 0, 1);
    } else if (!strcmp(el->name, "a") && (oc->sm_enabling || oc->sm_on)) {
        const char *hs = xnode_attr(el, "h");
        char *end = NULL;
        unsigned long h = hs ? strtoul(hs, &end, 10) : 0;
        if (!hs || !*hs || *end || h > 0xffffffffUL || !seq_le((uint32_t)h, oc->sm_sent) ||
            !seq_le(oc->sm_acked, (uint32_t)h)) {
            log_warn("s2s: conn %llu: %s acknowledged h='%s' (we sent %lu, it had acknowledged %lu)",
                     (unsigned long long)conn_id(oc->c), oc->remote, hs ? hs : "", (unsigned long)oc->sm_sent,
                     (unsigned long)oc->sm_acked);
            out_error(oc, "undefined-condition", "bad stream management acknowledgement");
            return;
        }
        oc->sm_acked = (uint32_t)h;
        release_unacked(oc, oc->sm_acked, 0);
    } else if (!strcmp(el->name, "r")) {
        /* Nothing is received on our outgoing stream. */
        buf_append_str(&oc->out, "<a xmlns='" NS_SM3 "' h='0'/>");
        write_buf(oc);
    } else {
        log_info("s2s: conn %llu: ignoring stream management <%s/> from %s", (unsigned long long)conn_id(oc->c),
                 el->name, oc->remote);
    }
}

/* The stream is gone: what it never got acknowledged goes again on a new
 * one (at least once: the peer may have taken it before it died). */
static void requeue_unacked(out_conn *oc)
{
    s2s *s = oc->s;
    if (!oc->unacked.count) return;
    /* Reversed, so that pushing each to the front keeps the order. */
    queued *rev = NULL, *n;
    size_t count = oc->unacked.count;
    while ((n = queue_pop_item(&oc->unacked)) != NULL) {
        n->next = rev;
        rev = n;
    }
    if (!s->stopping)
        log_notice("s2s: %s lost the stream with %zu stanzas not acknowledged: sending them again", oc->remote,
                   count);
    while (rev) {
        n = rev;
        rev = n->next;
        n->next = NULL;
        char local[JID_DOMAIN_BUF], remote[JID_DOMAIN_BUF];
        const char *from = xnode_attr(n->st->root, "from"), *to = xnode_attr(n->st->root, "to");
        if (s->stopping || !from || !to || jid_domain_of(from, local, sizeof local) < 0 ||
            jid_domain_of(to, remote, sizeof remote) < 0) {
            /* Shutting down: the sm sends its copy to our successor. */
            ticket_drop(&n->ticket);
            stanza_free(n->st);
            free(n);
            continue;
        }
        route *rt = route_get(s, local, remote);
        n->h = 0;
        queue_push_front(&rt->q, n);
        route_requeued(rt);
    }
}

void out_close(out_conn *oc, const char *why)
{
    if (oc->state == OC_CLOSED || !oc->c) return;
    int graceful = oc->state >= OC_HEADER && oc->state != OC_TLS;
    oc->state = OC_CLOSED;
    log_info("s2s: conn %llu: closing the stream to %s (%s)", (unsigned long long)conn_id(oc->c), oc->remote, why);
    if (graceful) {
        conn_write_str(oc->c, "</stream:stream>");
        conn_set_timeout(oc->c, 5000);   /* bounds the flush */
        conn_close(oc->c);
    } else {
        conn_abort(oc->c, why);
    }
}

/* Close with a stream error of ours. */
static void out_error(out_conn *oc, const char *condition, const char *text)
{
    if (!oc->c || oc->state == OC_CLOSED) return;
    log_warn("s2s: conn %llu: stream error to %s: %s%s%s", (unsigned long long)conn_id(oc->c), oc->remote,
             condition, text ? ": " : "", text ? text : "");
    if (oc->state >= OC_FEATURES && oc->state != OC_TLS) {
        stream_error_write(&oc->out, condition, text);
        buf_append_str(&oc->out, "</stream:stream>");
        write_buf(oc);
        oc->state = OC_CLOSED;
        conn_set_timeout(oc->c, 5000);
        conn_close(oc->c);
    } else {
        oc->state = OC_CLOSED;
        conn_abort(oc->c, condition);
    }
}

void out_close_all(s2s *s)
{
    for (out_conn *oc = s->outs; oc; oc = oc->next) out_close(oc, "shutting down");
}

void out_sweep_idle(s2s *s, uint64_t now)
{
    for (out_conn *oc = s->outs; oc; oc = oc->next) {
        if (oc->state != OC_READY || oc->sent) continue;
        if (now - oc->last_used < s->lim.idle_timeout_ms) continue;
        int busy = oc->unacked.count > 0;
        for (route *rt = oc->routes; rt; rt = rt->oc_next)
            if (rt->state == RT_AUTH || rt->q.count || rt->verifies) busy = 1;
        if (!busy) out_close(oc, "idle");
    }
}

/* ---- the stream becomes usable ---- */

static void became_ready(out_conn *oc)
{
    oc->state = OC_READY;
    log_info("s2s: conn %llu: stream to %s ready (%s%s)", (unsigned long long)conn_id(oc->c), oc->remote,
             oc->tls ? "TLS" : "no TLS", oc->db_errors ? ", dialback errors" : "");
    route *rt = oc->routes;
    while (rt && oc->state == OC_READY) {
        route *next = rt->oc_next;
        route_conn_ready(rt);
        rt = next;
    }
}

static void start_tls(out_conn *oc)
{
    oc->state = OC_TLS;
    if (conn_starttls_client(oc->c, oc->s->client_ctx, oc->remote) != 0) {
        log_warn("s2s: conn %llu: cannot start TLS to %s: %s", (unsigned long long)conn_id(oc->c), oc->remote,
                 tls_last_error());
        oc->fail_condition = "remote-server-not-found";
        out_close(oc, "tls failed");
    }
}

/* ---- connection events ---- */

static void on_connect(conn *c, int status)
{
    out_conn *oc = conn_data(c);
    if (status < 0) {
        log_notice("s2s: conn %llu: cannot connect to %s for %s: %s", (unsigned long long)conn_id(c), oc->addr,
                   oc->remote, uv_strerror(status));
        oc->fail_condition = "remote-server-not-found";
        return;   /* on_close follows */
    }
    if (oc->state == OC_CLOSED) return;
    if (oc->target.direct_tls) start_tls(oc);
    else send_header(oc);
}

static void on_tls_ready(conn *c)
{
    out_conn *oc = conn_data(c);
    if (oc->state == OC_CLOSED) return;
    oc->tls = 1;
    xml_stream_reset(oc->xs);
    send_header(oc);   /* the stream restarts over TLS (RFC 6120 §5.4.3.3) */
}

static void on_read(conn *c, const char *data, size_t len)
{
    out_conn *oc = conn_data(c);
    size_t consumed = 0;
    xml_err err = xml_stream_feed(oc->xs, data, len, &consumed);
    if (err != XML_OK) {
        out_error(oc, xml_err_condition(err), NULL);
        return;
    }
    if (oc->state == OC_TLS && !oc->tls && oc->c) {
        xml_stream_reset(oc->xs);
        start_tls(oc);
    }
}

static void on_timeout(conn *c)
{
    conn_abort(c, "close timeout");
}

static void on_close(conn *c, const char *reason)
{
    out_conn *oc = conn_data(c);
    s2s *s = oc->s;
    int was_ready = oc->state == OC_READY || oc->stream_id != NULL;
    oc->c = NULL;
    oc->state = OC_CLOSED;
    log_info("s2s: conn %llu: stream to %s (%s) closed: %s", (unsigned long long)conn_id(c), oc->remote, oc->addr,
             reason);
    if (oc->prev) oc->prev->next = oc->next;
    else s->outs = oc->next;
    if (oc->next) oc->next->prev = oc->prev;

    const char *cond = oc->fail_condition;
    if (!cond) cond = was_ready ? "remote-server-timeout" : "remote-server-not-found";
    verify_req *vr = oc->sent;
    oc->sent = NULL;
    while (vr) {
        verify_req *next = vr->next;
        verify_finish(vr, "error", "remote-server-timeout");
        vr = next;
    }
    route *rt = oc->routes;
    oc->routes = NULL;
    while (rt) {
        route *next = rt->oc_next;
        rt->oc = NULL;
        rt->oc_next = NULL;
        route_conn_lost(rt, cond);
        rt = next;
    }
    requeue_unacked(oc);
    xml_stream_free(oc->xs);
    buf_free(&oc->out);
    free(oc->stream_id);
    free(oc->local);
    free(oc->remote);
    free(oc);
    s2s_conn_gone(s);
}

static const conn_handler out_handler = {
    .on_read = on_read,
    .on_connect = on_connect,
    .on_tls_ready = on_tls_ready,
    .on_timeout = on_timeout,
    .on_close = on_close,
};

/* ---- stream events ---- */

static xs_action on_stream_open(void *ud, stanza *header)
{
    out_conn *oc = ud;
    const xnode *h = header->root;
    const char *ns = xml_stream_default_ns(oc->xs);
    if (!xnode_is(h, "stream", NS_STREAMS) || !ns || strcmp(ns, NS_SERVER) != 0) {
        stanza_free(header);
        oc->fail_condition = "remote-server-not-found";
        out_error(oc, "invalid-namespace", NULL);
        return XS_PAUSE;
    }
    const char *id = xnode_attr(h, "id");
    if (!id || !*id) {
        stanza_free(header);
        oc->fail_condition = "remote-server-not-found";
        out_error(oc, "invalid-id", "a stream id is needed for dialback");
        return XS_PAUSE;
    }
    free(oc->stream_id);
    oc->stream_id = xstrdup(id);
    const char *version = xnode_attr(h, "version");
    oc->version1 = version && atoi(version) >= 1;
    stanza_free(header);
    if (oc->version1) {
        oc->state = OC_FEATURES;
    } else if (oc->s->tls_required || oc->s->tls_verify) {
        if (!oc->tls) {
            oc->fail_condition = "remote-server-not-found";
            out_error(oc, "policy-violation", "TLS is required");
            return XS_PAUSE;
        }
        became_ready(oc);
    } else {
        became_ready(oc);   /* a pre-XMPP 1.0 server: dialback right away */
    }
    return XS_CONTINUE;
}

static void handle_features(out_conn *oc, const xnode *el)
{
    s2s *s = oc->s;
    oc->tls_offered = xnode_child(el, "starttls", NS_XMPP_TLS) != NULL;
    oc->sm_offered = xnode_child(el, "sm", NS_SM3) != NULL;
    oc->db_errors = 0;
    const xnode *db = xnode_child(el, "dialback", NS_DIALBACK_FEATURE);
    if (db && xnode_child(db, "errors", NULL)) oc->db_errors = 1;
    if (!oc->tls && oc->tls_offered && s->client_ctx) {
        buf_append_str(&oc->out, "<starttls xmlns='" NS_XMPP_TLS "'/>");
        write_buf(oc);
        oc->state = OC_STARTTLS;
        return;
    }
    if (!oc->tls && (s->tls_required || s->tls_verify)) {
        log_warn("s2s: conn %llu: %s does not offer TLS, which we require", (unsigned long long)conn_id(oc->c),
                 oc->remote);
        oc->fail_condition = "remote-server-not-found";
        out_error(oc, "policy-violation", "TLS is required");
        return;
    }
    became_ready(oc);
}

static route *find_auth_route(out_conn *oc, const char *local, const char *remote)
{
    for (route *rt = oc->routes; rt; rt = rt->oc_next)
        if (!strcmp(rt->local, local) && !strcmp(rt->remote, remote)) return rt;
    return NULL;
}

static void handle_db_answer(out_conn *oc, xnode *el)
{
    db_element db;
    const char *why;
    if (db_element_parse(el, &db, &why) != DB_PARSE_OK || db.type == DB_REQUEST) {
        log_info("s2s: conn %llu: ignoring a db:%s that is not a usable answer: %s", (unsigned long long)conn_id(oc->c),
                 el->name, why ? why : "no 'type'");
        return;
    }
    const char *type = db.type == DB_VALID ? "valid" : db.type == DB_INVALID ? "invalid" : "error";
    if (db.kind == DB_RESULT) {
        route *rt = find_auth_route(oc, db.to, db.from);
        if (!rt || rt->state != RT_AUTH) {
            log_warn("s2s: conn %llu: unsolicited db:result %s -> %s ignored", (unsigned long long)conn_id(oc->c),
                     db.from, db.to);
            return;
        }
        oc->last_used = uv_now(oc->s->loop);
        route_dialback_result(rt, type, db.condition);
        return;
    }
    for (verify_req **pp = &oc->sent; *pp; pp = &(*pp)->next) {
        verify_req *vr = *pp;
        if (!strcmp(vr->id, db.id) && !strcmp(vr->remote, db.from) && !strcmp(vr->local, db.to)) {
            *pp = vr->next;
            oc->last_used = uv_now(oc->s->loop);
            verify_finish(vr, type, db.condition);
            return;
        }
    }
    log_warn("s2s: conn %llu: unsolicited db:verify %s -> %s ignored", (unsigned long long)conn_id(oc->c), db.from,
             db.to);
}

static xs_action on_element(void *ud, stanza *st)
{
    out_conn *oc = ud;
    xnode *el = st->root;
    xs_action act = XS_CONTINUE;
    if (oc->state == OC_CLOSED || !oc->c) {
        stanza_free(st);
        return XS_PAUSE;
    }
    if (xnode_is(el, "error", NS_STREAMS)) {
        const xnode *cond = xnode_first_element(el);
        const char *name = cond ? cond->name : "undefined-condition";
        log_warn("s2s: conn %llu: stream error from %s: %s", (unsigned long long)conn_id(oc->c), oc->remote, name);
        oc->fail_condition = (!strcmp(name, "host-unknown") || !strcmp(name, "host-gone") ||
                              !strcmp(name, "improper-addressing"))
                                 ? "remote-server-not-found"
                                 : "remote-server-timeout";
        oc->state = OC_CLOSED;
        conn_write_str(oc->c, "</stream:stream>");
        conn_set_timeout(oc->c, 5000);
        conn_close(oc->c);
        stanza_free(st);
        return XS_PAUSE;
    }
    switch (oc->state) {
    case OC_FEATURES:
        if (xnode_is(el, "features", NS_STREAMS)) handle_features(oc, el);
        else out_error(oc, "unsupported-stanza-type", "expected stream features");
        break;
    case OC_STARTTLS:
        if (xnode_is(el, "proceed", NS_XMPP_TLS)) {
            oc->state = OC_TLS;   /* on_read starts TLS once the parser has stopped */
            act = XS_PAUSE;
        } else {
            oc->fail_condition = "remote-server-not-found";
            out_error(oc, "undefined-condition", "STARTTLS refused");
        }
        break;
    case OC_READY:
        if (el->ns && !strcmp(el->ns, NS_DIALBACK) && (!strcmp(el->name, "result") || !strcmp(el->name, "verify"))) {
            handle_db_answer(oc, el);
        } else if (el->ns && !strcmp(el->ns, NS_SM3)) {
            handle_sm(oc, el);
        } else {
            /* Streams are one-way without XEP-0288: nothing else belongs here. */
            log_info("s2s: conn %llu: ignoring <%s/> from %s on our outgoing stream",
                     (unsigned long long)conn_id(oc->c), el->name, oc->remote);
        }
        break;
    default:
        out_error(oc, "unsupported-stanza-type", NULL);
        break;
    }
    stanza_free(st);
    if (!oc->c || oc->state == OC_CLOSED) return XS_PAUSE;
    return act;
}

static void on_stream_close(void *ud)
{
    out_conn *oc = ud;
    if (!oc->c || oc->state == OC_CLOSED) return;
    log_info("s2s: conn %llu: %s closed the stream", (unsigned long long)conn_id(oc->c), oc->remote);
    oc->state = OC_CLOSED;
    conn_write_str(oc->c, "</stream:stream>");
    conn_set_timeout(oc->c, 5000);
    conn_close(oc->c);
}

static const xml_stream_handler out_xml_handler = {on_stream_open, on_element, on_stream_close};
