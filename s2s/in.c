/* Incoming streams: we are the Receiving Server (a peer authenticates
 * domain pairs with db:result, which we verify with the authoritative
 * server over an outgoing stream) and the Authoritative Server (a peer asks
 * about a key of ours with db:verify). Stanzas are accepted only for
 * authorised pairs and go to the router as they came. */
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/dialback_key.h"
#include "common/log.h"
#include "common/stanza_error.h"
#include "common/xml_write.h"
#include "s2s/s2s.h"

static const conn_handler in_handler;
static const xml_stream_handler in_xml_handler;

#define CONN_ID(ic) ((unsigned long long)((ic)->c ? conn_id((ic)->c) : 0))

static void flush(in_conn *ic)
{
    if (ic->c && ic->out.len && !ic->closing) conn_write(ic->c, ic->out.data, ic->out.len);
    buf_reset(&ic->out);
}

static void domain_count(s2s *s, const char *domain, int delta)
{
    uintptr_t n = (uintptr_t)strmap_get(&s->in_per_domain, domain);
    if (delta > 0) n++;
    else if (n > 0) n--;
    if (n) strmap_put(&s->in_per_domain, domain, (void *)n);
    else strmap_del(&s->in_per_domain, domain);
}

/* Count this stream against its remote domain; -1 if that is one too many. */
static int count_domain(in_conn *ic, const char *domain)
{
    s2s *s = ic->s;
    if (ic->counted) return 0;
    uintptr_t n = (uintptr_t)strmap_get(&s->in_per_domain, domain);
    if (n >= s->lim.conns_per_domain) return -1;
    ic->counted = strdup(domain);
    if (!ic->counted) abort();
    domain_count(s, domain, 1);
    return 0;
}

static void write_header(in_conn *ic)
{
    s2s *s = ic->s;
    random_token(ic->id, sizeof ic->id - 1);
    const char *from = ic->to ? ic->to : (s->nhosts ? s->hosts[0] : NULL);
    stream_header_write(&ic->out, from, ic->from, ic->id, ic->version1);
    ic->header = 1;
}

/* End the stream with an error (our header first if not sent yet). */
static void in_error(in_conn *ic, const char *condition, const char *text)
{
    if (ic->closing || !ic->c) return;
    log_notice("s2s: conn %llu (%s, from %s): stream error %s%s%s", CONN_ID(ic), conn_peer(ic->c),
               ic->from ? ic->from : "?", condition, text ? ": " : "", text ? text : "");
    if (!ic->header) write_header(ic);
    stream_error_write(&ic->out, condition, text);
    buf_append_str(&ic->out, "</stream:stream>");
    flush(ic);
    ic->closing = 1;
    conn_set_timeout(ic->c, 5000);
    conn_close(ic->c);
}

static void in_end(in_conn *ic)
{
    if (ic->closing || !ic->c) return;
    if (!ic->header) write_header(ic);
    buf_append_str(&ic->out, "</stream:stream>");
    flush(ic);
    ic->closing = 1;
    conn_set_timeout(ic->c, 5000);
    conn_close(ic->c);
}

void in_close_all(s2s *s)
{
    for (in_conn *ic = s->ins; ic; ic = ic->next) in_error(ic, "system-shutdown", NULL);
}

/* ---- authorised pairs ---- */

static int pair_index(const in_conn *ic, const char *remote, const char *local)
{
    size_t rl = strlen(remote);
    for (size_t i = 0; i < ic->npairs; i++) {
        const char *p = ic->pairs[i];
        if (!strncmp(p, remote, rl) && p[rl] == ' ' && !strcmp(p + rl + 1, local)) return (int)i;
    }
    return -1;
}

static void pair_add(in_conn *ic, const char *remote, const char *local)
{
    if (pair_index(ic, remote, local) >= 0) return;
    if (ic->npairs == ic->cappairs) {
        size_t cap = ic->cappairs ? ic->cappairs * 2 : 2;
        char **np = realloc(ic->pairs, cap * sizeof *np);
        if (!np) abort();
        ic->pairs = np;
        ic->cappairs = cap;
    }
    size_t rl = strlen(remote), ll = strlen(local);
    char *p = malloc(rl + 1 + ll + 1);
    if (!p) abort();
    memcpy(p, remote, rl);
    p[rl] = ' ';
    memcpy(p + rl + 1, local, ll + 1);
    ic->pairs[ic->npairs++] = p;
}

void in_dialback_done(in_conn *ic, const char *remote, const char *local, const char *type,
                      const char *condition)
{
    if (ic->closing || !ic->c) return;
    if (!strcmp(type, "valid")) {
        pair_add(ic, remote, local);
        log_notice("s2s: conn %llu (%s): %s -> %s authorised by dialback", CONN_ID(ic), conn_peer(ic->c), remote,
                   local);
        db_write_answer(&ic->out, "result", local, remote, NULL, "valid", NULL);
        flush(ic);
        /* Authenticated: from now on only idleness closes it. */
        conn_set_timeout(ic->c, ic->s->lim.idle_timeout_ms);
        return;
    }
    if (!strcmp(type, "invalid")) {
        log_warn("s2s: conn %llu (%s): the authoritative server of %s says the key for %s is invalid", CONN_ID(ic),
                 conn_peer(ic->c), remote, local);
        if (ic->npairs == 0) {
            /* XEP-0220 §2.2.1: report it and close the stream. */
            db_write_answer(&ic->out, "result", local, remote, NULL, "invalid", NULL);
            flush(ic);
            in_end(ic);
        } else {
            /* Keep the pairs already authorised on this stream. */
            db_write_answer(&ic->out, "result", local, remote, NULL, "error", "forbidden");
            flush(ic);
        }
        return;
    }
    log_notice("s2s: conn %llu (%s): could not verify %s -> %s: %s", CONN_ID(ic), conn_peer(ic->c), remote, local,
               condition ? condition : "error");
    const char *cond = condition;
    if (!cond || (strcmp(cond, "remote-server-timeout") && strcmp(cond, "remote-server-not-found") &&
                  strcmp(cond, "remote-connection-failed")))
        cond = "remote-server-not-found";
    db_write_answer(&ic->out, "result", local, remote, NULL, "error", cond);
    flush(ic);
}

/* ---- dialback requests ---- */

static void handle_db_result(in_conn *ic, const db_element *db)
{
    s2s *s = ic->s;
    const char *remote = db->from, *local = db->to;
    if (!s2s_is_local(s, local)) {
        log_notice("s2s: conn %llu: db:result for %s, which we do not host", CONN_ID(ic), local);
        db_write_answer(&ic->out, "result", local, remote, NULL, "error", "item-not-found");
        flush(ic);
        return;
    }
    if (s2s_is_local(s, remote)) {
        in_error(ic, "invalid-from", "that domain is ours");
        return;
    }
    if (s->tls_required && !ic->tls) {
        db_write_answer(&ic->out, "result", local, remote, NULL, "error", "policy-violation");
        flush(ic);
        return;
    }
    if (pair_index(ic, remote, local) >= 0) {
        /* Already authorised on this stream: no need to ask again. */
        db_write_answer(&ic->out, "result", local, remote, NULL, "valid", NULL);
        flush(ic);
        return;
    }
    if (ic->npairs + ic->pending >= s->lim.pairs_per_stream) {
        db_write_answer(&ic->out, "result", local, remote, NULL, "error", "resource-constraint");
        flush(ic);
        return;
    }
    if (count_domain(ic, remote) < 0) {
        in_error(ic, "policy-violation", "too many connections from that domain");
        return;
    }
    log_info("s2s: conn %llu (%s): verifying %s -> %s with its authoritative server", CONN_ID(ic),
             conn_peer(ic->c), remote, local);
    verify_req *vr = verify_new(ic, remote, local, ic->id, db->key);
    route_add_verify(route_get(s, local, remote), vr);
}

static void handle_db_verify(in_conn *ic, const db_element *db)
{
    s2s *s = ic->s;
    const char *local = db->to;
    if (!s2s_is_local(s, local)) {
        db_write_answer(&ic->out, "verify", local, db->from, db->id, "error", "item-not-found");
        flush(ic);
        return;
    }
    int ok = dialback_key_check(s->secret, db->from, local, db->id, db->key);
    log_info("s2s: conn %llu (%s): db:verify from %s about %s: %s", CONN_ID(ic), conn_peer(ic->c), db->from, local,
             ok ? "valid" : "invalid");
    db_write_answer(&ic->out, "verify", local, db->from, db->id, ok ? "valid" : "invalid", NULL);
    flush(ic);
}

/* A db:result or db:verify on an incoming stream: a request to us. */
static void handle_dialback(in_conn *ic, const xnode *el)
{
    db_element db;
    const char *why;
    if (xnode_attr(el, "type")) {
        /* An answer: we never asked anything on a stream we did not open. */
        log_info("s2s: conn %llu: db:%s with a type on an incoming stream ignored", CONN_ID(ic), el->name);
        return;
    }
    if (db_element_parse(el, &db, &why) != DB_PARSE_OK) {
        in_error(ic, "improper-addressing", why);
        return;
    }
    if (db.kind == DB_RESULT) handle_db_result(ic, &db);
    else handle_db_verify(ic, &db);
}

/* ---- stanzas ---- */

static void handle_stanza(in_conn *ic, stanza *st)
{
    s2s *s = ic->s;
    xnode *el = st->root;
    const char *from = xnode_attr(el, "from");
    const char *to = xnode_attr(el, "to");
    char remote[JID_DOMAIN_BUF], local[JID_DOMAIN_BUF];
    if (!from || !to || jid_domain_of(from, remote, sizeof remote) < 0 || jid_domain_of(to, local, sizeof local) < 0) {
        in_error(ic, "improper-addressing", "stanzas need valid 'from' and 'to'");
        return;
    }
    if (!s2s_is_local(s, local)) {
        in_error(ic, "host-unknown", "that domain is not served here");
        return;
    }
    if (pair_index(ic, remote, local) < 0) {
        in_error(ic, "invalid-from", "that domain pair is not authorised on this stream");
        return;
    }
    if (router_link_deliver(s, el) != 0) {
        /* The router went away: answer through our own stream to them. */
        log_warn("s2s: conn %llu: router unavailable; bouncing <%s/> from %s", CONN_ID(ic), el->name, remote);
        stanza *copy = stanza_copy(st);
        if (stanza_make_error(copy, "service-unavailable", NULL) == 0)
            route_send(route_get(s, local, remote), copy, NULL);
        else stanza_free(copy);
    }
    ic->sm_handled++;   /* XEP-0198 h: handed to the router, or bounced */
}

/* XEP-0198 on the stream a peer sends on (no resumption): <enabled/> once
 * a pair is authorised, and <a h/> counting what went to the router. */
static void handle_sm(in_conn *ic, const xnode *el)
{
    if (!strcmp(el->name, "enable")) {
        if (ic->sm_on || ic->npairs == 0) {
            buf_append_str(&ic->out, "<failed xmlns='" NS_SM3 "'><unexpected-request "
                                     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
        } else {
            ic->sm_on = 1;
            ic->sm_handled = 0;
            buf_append_str(&ic->out, "<enabled xmlns='" NS_SM3 "'/>");
            log_info("s2s: conn %llu (from %s): stream management on", CONN_ID(ic), ic->from ? ic->from : "?");
        }
    } else if (!strcmp(el->name, "r")) {
        if (!ic->sm_on) {
            in_error(ic, "unsupported-stanza-type", "stream management is not enabled");
            return;
        }
        buf_printf(&ic->out, "<a xmlns='" NS_SM3 "' h='%lu'/>", (unsigned long)ic->sm_handled);
    }
    /* <a/>: we send nothing on this stream that it could acknowledge. */
    flush(ic);
}

/* ---- connection events ---- */

static void rate_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void rate_resume(uv_timer_t *t)
{
    in_conn *ic = t->data;
    uv_close((uv_handle_t *)t, rate_timer_closed);
    ic->rate_timer = NULL;
    if (ic->c && !ic->closing && router_link_ready(ic->s)) conn_resume_read(ic->c);
}

/* Token bucket: one second's worth of burst (at least one stanza). */
static void rate_account(in_conn *ic, size_t len)
{
    s2s *s = ic->s;
    if (!s->lim.rate_bytes) return;
    uint64_t now = uv_now(s->loop);
    double burst = (double)(s->lim.rate_bytes > s->lim.max_stanza_bytes ? s->lim.rate_bytes : s->lim.max_stanza_bytes);
    ic->tokens += (double)(now - ic->refill_at) * (double)s->lim.rate_bytes / 1000.0;
    if (ic->tokens > burst) ic->tokens = burst;
    ic->refill_at = now;
    ic->tokens -= (double)len;
    if (ic->tokens >= 0 || ic->rate_timer) return;
    uint64_t wait = (uint64_t)(-ic->tokens * 1000.0 / (double)s->lim.rate_bytes) + 1;
    ic->rate_timer = malloc(sizeof *ic->rate_timer);
    if (!ic->rate_timer) abort();
    uv_timer_init(s->loop, ic->rate_timer);
    ic->rate_timer->data = ic;
    uv_timer_start(ic->rate_timer, rate_resume, wait, 0);
    conn_pause_read(ic->c);
    log_debug("s2s: conn %llu: over %zu bytes/s, pausing %llu ms", CONN_ID(ic), s->lim.rate_bytes,
              (unsigned long long)wait);
}

static void on_read(conn *c, const char *data, size_t len)
{
    in_conn *ic = conn_data(c);
    rate_account(ic, len);
    size_t consumed = 0;
    xml_err err = xml_stream_feed(ic->xs, data, len, &consumed);
    if (err != XML_OK) {
        log_notice("s2s: conn %llu: bad XML: %s", CONN_ID(ic), xml_stream_error_text(ic->xs));
        in_error(ic, xml_err_condition(err), NULL);
        return;
    }
    if (ic->starting_tls && !ic->closing) {
        ic->starting_tls = 0;
        xml_stream_reset(ic->xs);
        ic->header = 0;
        if (conn_starttls_server(c, ic->s->server_ctx, data + consumed, len - consumed) != 0) {
            log_warn("s2s: conn %llu: cannot start TLS", CONN_ID(ic));
            ic->closing = 1;
            conn_abort(c, "tls failed");
        }
    }
}

static void on_tls_ready(conn *c)
{
    in_conn *ic = conn_data(c);
    ic->tls = 1;
    log_info("s2s: conn %llu (%s): TLS established", CONN_ID(ic), conn_peer(c));
}

static void on_timeout(conn *c)
{
    in_conn *ic = conn_data(c);
    if (ic->closing) {
        conn_abort(c, "close timeout");
        return;
    }
    if (ic->npairs == 0) {
        in_error(ic, "connection-timeout", "no dialback in time");
    } else {
        log_info("s2s: conn %llu (%s): idle, closing", CONN_ID(ic), conn_peer(c));
        in_end(ic);
    }
}

static void on_close(conn *c, const char *reason)
{
    in_conn *ic = conn_data(c);
    s2s *s = ic->s;
    log_info("s2s: conn %llu (%s, from %s): closed: %s", (unsigned long long)conn_id(c), conn_peer(c),
             ic->from ? ic->from : "?", reason);
    ic->c = NULL;
    verify_detach_all(ic);
    if (ic->counted) domain_count(s, ic->counted, -1);
    if (ic->prev) ic->prev->next = ic->next;
    else s->ins = ic->next;
    if (ic->next) ic->next->prev = ic->prev;
    s->nins--;
    if (ic->rate_timer) {
        uv_timer_stop(ic->rate_timer);
        uv_close((uv_handle_t *)ic->rate_timer, rate_timer_closed);
    }
    for (size_t i = 0; i < ic->npairs; i++) free(ic->pairs[i]);
    free(ic->pairs);
    xml_stream_free(ic->xs);
    buf_free(&ic->out);
    free(ic->from);
    free(ic->to);
    free(ic->counted);
    free(ic);
    s2s_conn_gone(s);
}

static const conn_handler in_handler = {
    .on_read = on_read,
    .on_tls_ready = on_tls_ready,
    .on_timeout = on_timeout,
    .on_close = on_close,
};

void in_accept(s2s *s, uv_stream_t *server, int direct_tls)
{
    in_conn *ic = calloc(1, sizeof *ic);
    if (!ic) abort();
    ic->s = s;
    conn_limits lim;
    conn_limits_default(&lim);
    ic->c = conn_accept(server, &lim, &in_handler, ic);
    if (!ic->c) {
        free(ic);
        return;
    }
    s->open_conns++;
    ic->next = s->ins;
    if (s->ins) s->ins->prev = ic;
    s->ins = ic;
    s->nins++;
    xml_limits xl;
    xml_limits_default(&xl);
    xl.max_stanza_bytes = s->lim.max_stanza_bytes;
    ic->xs = xml_stream_new(&xl, &in_xml_handler, ic);
    ic->tokens = (double)(s->lim.rate_bytes > s->lim.max_stanza_bytes ? s->lim.rate_bytes : s->lim.max_stanza_bytes);
    ic->refill_at = uv_now(s->loop);
    log_info("s2s: conn %llu: incoming from %s", CONN_ID(ic), conn_peer(ic->c));
    if (s->stopping || s->nins > s->lim.max_incoming) {
        log_warn("s2s: conn %llu: refused (%s)", CONN_ID(ic), s->stopping ? "shutting down" : "too many connections");
        ic->closing = 1;
        conn_abort(ic->c, "refused");
        return;
    }
    /* Until a domain pair is authorised, the stream must make progress. */
    conn_set_timeout(ic->c, s->lim.connect_timeout_ms);
    if (direct_tls && s->server_ctx) {
        if (conn_starttls_server(ic->c, s->server_ctx, NULL, 0) != 0) {
            ic->closing = 1;
            conn_abort(ic->c, "tls failed");
            return;
        }
    }
    if (!router_link_ready(s)) conn_pause_read(ic->c);
}

/* ---- stream events ---- */

static xs_action on_stream_open(void *ud, stanza *header)
{
    in_conn *ic = ud;
    s2s *s = ic->s;
    const xnode *h = header->root;
    const char *ns = xml_stream_default_ns(ic->xs);
    const char *version = xnode_attr(h, "version");
    ic->version1 = version && atoi(version) >= 1;
    free(ic->to);
    ic->to = NULL;
    const char *to = xnode_attr(h, "to");
    const char *from = xnode_attr(h, "from");
    char dom[JID_DOMAIN_BUF];
    if (to && jid_domain_of(to, dom, sizeof dom) >= 0) ic->to = strdup(dom);
    if (!ic->from && from && jid_domain_of(from, dom, sizeof dom) >= 0) ic->from = strdup(dom);
    int is_stream = xnode_is(h, "stream", NS_STREAMS);
    int has_to = to != NULL;
    stanza_free(header);
    if (!is_stream || !ns || strcmp(ns, NS_SERVER) != 0) {
        in_error(ic, "invalid-namespace", "this is a jabber:server port");
        return XS_PAUSE;
    }
    if (has_to && (!ic->to || !s2s_is_local(s, ic->to))) {
        in_error(ic, "host-unknown", "that domain is not served here");
        return XS_PAUSE;
    }
    if (ic->from && s2s_is_local(s, ic->from)) {
        in_error(ic, "invalid-from", "that domain is ours");
        return XS_PAUSE;
    }
    if (ic->from && count_domain(ic, ic->from) < 0) {
        in_error(ic, "policy-violation", "too many connections from that domain");
        return XS_PAUSE;
    }
    write_header(ic);
    if (ic->version1) {
        buf_append_str(&ic->out, "<stream:features>");
        if (s->server_ctx && !ic->tls) {
            buf_append_str(&ic->out, "<starttls xmlns='" NS_XMPP_TLS "'>");
            if (s->tls_required) buf_append_str(&ic->out, "<required/>");
            buf_append_str(&ic->out, "</starttls>");
        }
        if (ic->tls || !s->tls_required)
            buf_append_str(&ic->out, "<dialback xmlns='" NS_DIALBACK_FEATURE "'><errors/></dialback>"
                                     "<sm xmlns='" NS_SM3 "'/>");
        buf_append_str(&ic->out, "</stream:features>");
    }
    flush(ic);
    return XS_CONTINUE;
}

static xs_action on_element(void *ud, stanza *st)
{
    in_conn *ic = ud;
    s2s *s = ic->s;
    xnode *el = st->root;
    if (ic->closing || !ic->c) {
        stanza_free(st);
        return XS_PAUSE;
    }
    if (xnode_is(el, "error", NS_STREAMS)) {
        const xnode *cond = xnode_first_element(el);
        log_notice("s2s: conn %llu (%s): stream error from peer: %s", CONN_ID(ic), conn_peer(ic->c),
                   cond ? cond->name : "?");
        in_end(ic);
    } else if (xnode_is(el, "starttls", NS_XMPP_TLS)) {
        if (!s->server_ctx || ic->tls) {
            buf_append_str(&ic->out, "<failure xmlns='" NS_XMPP_TLS "'/>");
            in_end(ic);
        } else {
            buf_append_str(&ic->out, "<proceed xmlns='" NS_XMPP_TLS "'/>");
            flush(ic);
            ic->starting_tls = 1;
            stanza_free(st);
            return XS_PAUSE;
        }
    } else if (el->ns && !strcmp(el->ns, NS_DIALBACK) && (!strcmp(el->name, "result") || !strcmp(el->name, "verify"))) {
        handle_dialback(ic, el);
    } else if (el->ns && !strcmp(el->ns, NS_SM3)) {
        handle_sm(ic, el);
    } else if (el->ns && !strcmp(el->ns, NS_SERVER) &&
               (!strcmp(el->name, "message") || !strcmp(el->name, "presence") || !strcmp(el->name, "iq"))) {
        if (s->tls_required && !ic->tls) in_error(ic, "policy-violation", "TLS is required");
        else handle_stanza(ic, st);
    } else {
        in_error(ic, "unsupported-stanza-type", NULL);
    }
    stanza_free(st);
    return (ic->closing || !ic->c) ? XS_PAUSE : XS_CONTINUE;
}

static void on_stream_close(void *ud)
{
    in_conn *ic = ud;
    log_info("s2s: conn %llu (%s): the peer closed the stream", CONN_ID(ic), ic->c ? conn_peer(ic->c) : "?");
    in_end(ic);
}

static const xml_stream_handler in_xml_handler = {on_stream_open, on_element, on_stream_close};
