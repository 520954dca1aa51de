/* The link to the sm through the router (docs/sessions.md): session start,
 * started/failed, end in both directions, client stanzas wrapped in route
 * envelopes to the user's domain, stanzas from the sm written to the
 * client, hand-backs of what could not be delivered, and the sm going away. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s/c2s.h"
#include "c2s/observe.h"
#include "common/crypto.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/stanza_error.h"
#include "common/xml_write.h"

static client *client_by_id(c2s *srv, const char *id)
{
    return id ? strmap_get(&srv->clients_by_id, id) : NULL;
}

int session_sm_online(const c2s *srv, int host_index)
{
    return host_index >= 0 && (size_t)host_index < srv->nhosts && srv->host_online[host_index] &&
           component_ready(srv->comp);
}

static int send_control_attr(c2s *srv, const char *domain, uint64_t c2s_id, uint64_t sm_id, const char *action,
                             const char *jid, const char *attr, const char *value)
{
    stanza *st = stanza_new("session", NS_SESSION_CTL);
    xnode_set_attr(st->root, "action", action);
    if (jid) xnode_set_attr(st->root, "jid", jid);
    if (attr && value) xnode_set_attr(st->root, attr, value);
    char cid[24], sid[24];
    u64_to_dec(cid, c2s_id);
    u64_to_dec(sid, sm_id);
    const char *attrs[] = {"c2s-id", cid, sm_id ? "sm-id" : NULL, sid, NULL};
    int rc = component_route(srv->comp, domain, st->root, attrs);
    stanza_free(st);
    return rc;
}

static int send_control(c2s *srv, const char *domain, uint64_t c2s_id, uint64_t sm_id, const char *action,
                        const char *jid)
{
    return send_control_attr(srv, domain, c2s_id, sm_id, action, jid, NULL, NULL);
}

int session_send_start(client *cl, const char *full_jid)
{
    /* acks='true': this c2s reports what clients acknowledged and counts
     * client stanzas on the sm's confirmations (docs/sessions.md §7). */
    return send_control_attr(cl->srv, cl->domain, cl->id, 0, "start", full_jid, "acks", "true");
}

void session_send_acked(client *cl)
{
    c2s_session *s = cl->sess;
    if (!s || !s->sm_id || s->sm_lost || s->acked_seq == s->reported_seq) return;
    char v[24];
    u64_to_dec(v, s->acked_seq);
    if (send_control_attr(cl->srv, cl->domain, cl->id, s->sm_id, "acked", NULL, "seq", v) == 0)
        s->reported_seq = s->acked_seq;
}

void session_end_orphan(c2s *srv, const char *domain, uint64_t c2s_id, uint64_t sm_id, uint32_t acked_seq)
{
    char v[16];
    snprintf(v, sizeof v, "%" PRIu32, acked_seq);
    send_control_attr(srv, domain, c2s_id, sm_id, "end", NULL, acked_seq ? "acked" : NULL, v);
}

void session_send_end(client *cl)
{
    if (!cl->sess || !cl->sess->sm_id) return;
    if (cl->sess->sm_lost || !session_sm_online(cl->srv, cl->host_index)) {
        /* The sm is not there to be told: it learns when it is back. */
        sm_orphan(cl);
        return;
    }
    char v[16];
    snprintf(v, sizeof v, "%" PRIu32, cl->sess->acked_seq);
    if (send_control_attr(cl->srv, cl->domain, cl->id, cl->sess->sm_id, "end", NULL,
                          cl->sess->acked_seq ? "acked" : NULL, v) != 0)
        log_info("c2s %s: client %" PRIu64 " (%s): end of session not sent: no router connection", cl->srv->name,
                 cl->id, client_label(cl));
    log_debug("c2s %s: client %" PRIu64 " (%s): session ended", cl->srv->name, cl->id, client_label(cl));
}

void session_account_removed(client *cl)
{
    c2s *srv = cl->srv;
    stanza *st = stanza_new("account", NS_SESSION_CTL);
    xnode_set_attr(st->root, "action", "removed");
    char bare[2 * JID_PART_MAX + 2];
    snprintf(bare, sizeof bare, "%s@%s", cl->user, cl->domain);
    xnode_set_attr(st->root, "jid", bare);
    char cid[24], sid[24];
    u64_to_dec(cid, cl->id);
    u64_to_dec(sid, cl->sess ? cl->sess->sm_id : 0);
    const char *attrs[] = {"c2s-id", cid, (cl->sess && cl->sess->sm_id) ? "sm-id" : NULL, sid, NULL};
    component_route(srv->comp, cl->domain, st->root, attrs);
    stanza_free(st);
}

void session_route_stanza(client *cl, const xnode *el)
{
    c2s *srv = cl->srv;
    /* RFC 6120 §8.1.2.1: whatever the client wrote, 'from' is its full JID. */
    xnode_set_attr((xnode *)el, "from", cl->sess->full_jid);
    stanza_touch(el->doc);
    observe_stanza_in(cl, el);
    char cid[24], sid[24], seq[24];
    u64_to_dec(cid, cl->id);
    u64_to_dec(sid, cl->sess->sm_id);
    const char *attrs[] = {"c2s-id", cid, "sm-id", sid, NULL, seq, NULL};
    if (cl->sess->sm_enabled) {
        /* Numbered: the client's <a/> counts it once the sm confirms it. */
        uint32_t n = ++cl->sess->route_seq;
        if (!n) n = ++cl->sess->route_seq;
        u64_to_dec(seq, n);
        attrs[4] = "seq";
        sm_routed(cl, n);
    }
    if (component_route(srv->comp, cl->domain, el, attrs) != 0) {
        log_info("c2s %s: client %" PRIu64 " (%s): no router connection, <%s/> dropped", srv->name, cl->id,
                 client_label(cl), el->name);
        if (stanza_error_allowed(el)) {
            stanza *err = stanza_from_node(el);
            if (stanza_make_error(err, "service-unavailable", "the server is not connected") == 0)
                client_write_element(cl, err->root);
            stanza_free(err);
        }
    }
}

void session_hand_back(c2s *srv, uint64_t c2s_id, uint64_t sm_id, const char *domain, const char *data, size_t len)
{
    session_hand_back_seq(srv, c2s_id, sm_id, domain, data, len, 0);
}

void session_hand_back_seq(c2s *srv, uint64_t c2s_id, uint64_t sm_id, const char *domain, const char *data,
                           size_t len, uint32_t seq)
{
    buf doc = BUF_INIT;
    buf_append_str(&doc, "<x xmlns='" NS_CLIENT "'>");
    buf_append(&doc, data, len);
    buf_append_str(&doc, "</x>");
    xml_limits lim;
    xml_limits_default(&lim);
    lim.max_stanza_bytes = doc.len + 1;
    lim.max_depth = 64;
    xml_err err;
    char errtext[128];
    stanza *st = xml_parse_document(doc.data, doc.len, &lim, &err, errtext, sizeof errtext);
    buf_free(&doc);
    xnode *inner = st ? xnode_first_element(st->root) : NULL;
    if (!inner) {
        log_error("c2s %s: cannot hand back a stanza of client %" PRIu64 ": %s", srv->name, c2s_id,
                  st ? "empty" : errtext);
        stanza_free(st);
        return;
    }
    char cid[24], sid[24], sq[16];
    u64_to_dec(cid, c2s_id);
    u64_to_dec(sid, sm_id);
    snprintf(sq, sizeof sq, "%" PRIu32, seq);
    const char *attrs[] = {"c2s-id", cid, "sm-id", sid, "type", "error", seq ? "seq" : NULL, sq, NULL};
    if (component_route(srv->comp, domain, inner, attrs) != 0)
        log_warn("c2s %s: client %" PRIu64 ": a <%s/> could not be handed back: no router connection", srv->name,
                 c2s_id, inner->name);
    stanza_free(st);
}

/* ---- from the sm ---- */

static const char *end_reason_condition(const char *reason)
{
    if (!reason) return "undefined-condition";
    if (!strcmp(reason, "conflict")) return "conflict";
    if (!strcmp(reason, "removed")) return "not-authorized";
    if (!strcmp(reason, "reset")) return "reset";
    if (!strcmp(reason, "shutdown")) return "system-shutdown";
    if (!strcmp(reason, "kicked")) return "policy-violation";
    return "undefined-condition";
}

static int session_matches(const client *cl, const char *sm_id)
{
    if (!cl->sess || !cl->sess->sm_id) return 0;
    char sid[24];
    u64_to_dec(sid, cl->sess->sm_id);
    return sm_id && !strcmp(sm_id, sid);
}

static void handle_control(c2s *srv, const xnode *env, const xnode *ctl)
{
    const char *action = xnode_attr(ctl, "action");
    const char *cid = xnode_attr(env, "c2s-id");
    const char *sid = xnode_attr(env, "sm-id");
    const char *from = xnode_attr(env, "from");
    client *cl = client_by_id(srv, cid);
    if (!action || !xnode_is(ctl, "session", NS_SESSION_CTL)) {
        log_info("c2s %s: ignoring <%s action='%s'/> from %s", srv->name, ctl->name, action ? action : "", from);
        return;
    }
    if (!strcmp(action, "started")) {
        uint64_t sm_id = sid ? strtoull(sid, NULL, 10) : 0;
        if (cl && cl->state == CL_BINDING && cl->op && cl->op->kind == OP_SESSION_START && sm_id) {
            bind_session_answer(cl, sm_id, NULL);
        } else if (sm_id && from) {
            /* The client left while the sm was starting its session. */
            log_info("c2s %s: session %s for a connection that is gone: ending it", srv->name, sid);
            send_control(srv, from, cid ? strtoull(cid, NULL, 10) : 0, sm_id, "end", NULL);
        }
    } else if (!strcmp(action, "handled")) {
        const char *seq = xnode_attr(ctl, "seq");
        if (cl && seq && session_matches(cl, sid)) sm_handled(cl, (uint32_t)strtoul(seq, NULL, 10));
    } else if (!strcmp(action, "failed")) {
        if (cl && cl->state == CL_BINDING && cl->op && cl->op->kind == OP_SESSION_START) {
            const char *cond = xnode_attr(ctl, "condition");
            bind_session_answer(cl, 0, cond && stanza_error_lookup(cond) ? cond : "internal-server-error");
        }
    } else if (!strcmp(action, "end")) {
        if (!cl || !session_matches(cl, sid)) return;
        const char *reason = xnode_attr(ctl, "reason");
        log_notice("c2s %s: client %" PRIu64 " (%s): the sm ended the session (%s)", srv->name, cl->id,
                   client_label(cl), reason ? reason : "no reason");
        sm_hand_back_all(cl);
        cl->sess->sm_id = 0;   /* gone at the sm: no 'end' back */
        if (cl->sess->resume_id) {
            strmap_del(&srv->resumable, cl->sess->resume_id);
        }
        client_stream_error(cl, end_reason_condition(reason), NULL);
    } else {
        log_info("c2s %s: unknown session action '%s' from %s", srv->name, action, from ? from : "?");
    }
}

/* A route we sent came back: the name it was for is not connected. */
static void handle_route_error(c2s *srv, const xnode *env)
{
    const xnode *inner = xnode_first_element(env);
    client *cl = client_by_id(srv, xnode_attr(env, "c2s-id"));
    if (!inner) return;
    if (xnode_is(inner, "session", NS_SESSION_CTL)) {
        const char *action = xnode_attr(inner, "action");
        if (cl && action && !strcmp(action, "start") && cl->state == CL_BINDING && cl->op &&
            cl->op->kind == OP_SESSION_START)
            bind_session_answer(cl, 0, "service-unavailable");
        return;
    }
    if (!inner->ns || strcmp(inner->ns, NS_CLIENT) || !cl || !cl->c || cl->state != CL_SESSION) return;
    /* A client stanza the sm could not get: tell the client. */
    if (!stanza_error_allowed(inner)) return;
    stanza *err = stanza_from_node(inner);
    if (stanza_make_error(err, "service-unavailable", "the session manager is not available") == 0) {
        buf *o = &srv->out;
        buf_reset(o);
        xml_write(o, err->root, NS_CLIENT);
        buf copy = BUF_INIT;
        buf_append(&copy, o->data, o->len);
        client_write(cl, copy.data, copy.len);
        sm_outgoing(cl, copy.data, copy.len);
        buf_free(&copy);
    }
    stanza_free(err);
}

static void deliver(c2s *srv, const xnode *env, const xnode *inner)
{
    const char *cid = xnode_attr(env, "c2s-id");
    const char *sid = xnode_attr(env, "sm-id");
    const char *from = xnode_attr(env, "from");
    client *cl = client_by_id(srv, cid);
    buf bytes = BUF_INIT;
    xml_write(&bytes, inner, NS_CLIENT);
    const char *seqattr = xnode_attr(env, "seq");
    uint32_t seq = seqattr ? (uint32_t)strtoul(seqattr, NULL, 10) : 0;
    if (cl && (cl->state == CL_SESSION || cl->state == CL_DETACHED) && session_matches(cl, sid)) {
        observe_stanza_out(cl, inner);
        if (cl->state == CL_SESSION && csi_hold(cl, inner, bytes.data, bytes.len)) {
            /* held back while the client is inactive (csi.c holds presence, never a message) */
        } else {
            if (cl->state == CL_SESSION) client_write(cl, bytes.data, bytes.len);
            sm_outgoing_seq(cl, bytes.data, bytes.len, seq);
        }
    } else if (seq && from && cid && sid) {
        /* The sm holds a copy: it delivers it again once it knows the
         * session is over, which this tells it (again, maybe). */
        log_debug("c2s %s: message for connection %s that is gone: ending its session", srv->name, cid);
        send_control(srv, from, strtoull(cid, NULL, 10), strtoull(sid, NULL, 10), "end", NULL);
    } else if (from && cid && sid) {
        log_debug("c2s %s: <%s/> for connection %s that is gone: handing it back", srv->name, inner->name, cid);
        session_hand_back(srv, strtoull(cid, NULL, 10), strtoull(sid, NULL, 10), from, bytes.data, bytes.len);
    }
    buf_free(&bytes);
}

/* The plain delivery case without a tree (raw routes, common/component.h):
 * a message, presence or iq in jabber:client, alone in an envelope without
 * a type, for a client whose session it is. Written as the sm wrote it,
 * which is what xml_write gave for the parsed element too (it declares its
 * namespace, so its original bytes are kept). Everything else (control
 * elements, errors, a client that is gone, presence that client state
 * indication may hold back, a traced user) goes the parsed way: -1. */
static int on_raw_route(component *comp, const char *data, const xml_scanned *env, void *ud)
{
    (void)comp;
    c2s *srv = ud;
    char cid[24], sid[24], seqv[16];
    xml_span seqattr = xml_scan_attr_value(env, "seq");
    if (xml_scan_attr_value(env, "type").p || env->start_len == env->len ||
        xml_span_plain(xml_scan_attr_value(env, "c2s-id"), cid, sizeof cid) < 0 ||
        xml_span_plain(xml_scan_attr_value(env, "sm-id"), sid, sizeof sid) < 0 ||
        (seqattr.p && xml_span_plain(seqattr, seqv, sizeof seqv) < 0))
        return -1;
    uint32_t seq = seqattr.p ? (uint32_t)strtoul(seqv, NULL, 10) : 0;
    const char *inner = data + env->start_len;
    size_t inner_len = env->content_end - env->start_len;
    /* exactly one element in the envelope, nothing around it; its content
     * was checked with the envelope's (no prefixes, tags nest) */
    xml_scanned in;
    if (env->nchildren != 1 || env->child_start != env->start_len || env->child_end != env->content_end ||
        xml_scan_start_tag(inner, inner_len, &in) != XML_SCAN_DONE || in.dup_attr || in.attrs_dropped ||
        !xml_span_is(in.ns, NS_CLIENT))
        return -1;
    int presence = xml_span_is(in.name, "presence");
    if (!presence && !xml_span_is(in.name, "message") && !xml_span_is(in.name, "iq")) return -1;
    client *cl = client_by_id(srv, cid);
    if (!cl || (cl->state != CL_SESSION && cl->state != CL_DETACHED) || !session_matches(cl, sid)) return -1;
    if (observe_tracing() || (presence && cl->csi)) return -1;
    observe_stanza_out_name(presence ? "presence" : in.name.p[0] == 'm' ? "message" : "iq");
    if (cl->state == CL_SESSION) {
        /* What client state indication held goes first (csi_hold does the
         * same for everything it does not hold). */
        csi_flush(cl);
        if (cl->state == CL_SESSION) client_write(cl, inner, inner_len);
    }
    sm_outgoing_seq(cl, inner, inner_len, seq);
    return 0;
}

static void on_stanza(component *comp, stanza *st, void *ud)
{
    c2s *srv = ud;
    xnode *el = st->root;
    if (xnode_is(el, "route", NS_SB_ROUTER)) {
        const char *type = xnode_attr(el, "type");
        const xnode *inner = xnode_first_element(el);
        if (type && !strcmp(type, "error")) {
            handle_route_error(srv, el);
        } else if (!inner) {
            log_info("c2s %s: empty route from %s", srv->name, xnode_attr(el, "from"));
        } else if (inner->ns && !strcmp(inner->ns, NS_SESSION_CTL)) {
            handle_control(srv, el, inner);
        } else if (inner->ns && !strcmp(inner->ns, NS_CLIENT)) {
            deliver(srv, el, inner);
        } else {
            log_info("c2s %s: route with <%s/> in '%s' ignored", srv->name, inner->name, inner->ns ? inner->ns : "");
        }
        stanza_free(st);
        return;
    }
    /* A stanza to the c2s's own name: nothing is served here. */
    if (stanza_make_error(st, "service-unavailable", NULL) == 0) component_send(comp, st->root);
    stanza_free(st);
}

/* The sm of a domain is gone: no session of that domain stays half alive. */
static void sm_gone(c2s *srv, int host_index)
{
    for (client *cl = srv->clients, *next; cl; cl = next) {
        next = cl->next;
        if (host_index >= 0 && cl->host_index != host_index) continue;
        if (cl->state == CL_BINDING && cl->op && cl->op->kind == OP_SESSION_START) {
            bind_session_answer(cl, 0, "service-unavailable");
        } else if (cl->sess && cl->sess->sm_id && !cl->sess->sm_lost &&
                   (cl->state == CL_SESSION || cl->state == CL_DETACHED)) {
            /* The sm may have died with copies of what this client was sent
             * and did not acknowledge: find out exactly what it got, keep
             * the rest for the next sm, then close (docs/sessions.md §7). */
            sm_drain(cl);
        }
    }
}

static void on_name(component *comp, const char *name, int online, void *ud)
{
    (void)comp;
    c2s *srv = ud;
    int i = c2s_host_index(srv, name);
    if (i < 0) return;
    if (srv->host_online[i] == (online ? 1 : 0)) return;
    srv->host_online[i] = online ? 1 : 0;
    log_notice("c2s %s: the sm for %s is %s", srv->name, name, online ? "online" : "offline");
    if (!online) sm_gone(srv, i);
    else sm_orphans_flush(srv, i);
}

static void on_ready(component *comp, void *ud)
{
    (void)comp;
    c2s *srv = ud;
    log_notice("c2s %s: connected to the router", srv->name);
}

static void on_lost(component *comp, const char *reason, void *ud)
{
    (void)comp;
    c2s *srv = ud;
    log_warn("c2s %s: lost the router (%s): closing every session", srv->name, reason);
    for (size_t i = 0; i < srv->nhosts; i++) srv->host_online[i] = 0;
    sm_gone(srv, -1);
}

static const component_handler link_handler = {
    .on_ready = on_ready,
    .on_lost = on_lost,
    .on_stanza = on_stanza,
    .on_name = on_name,
    .on_raw_route = on_raw_route,
};

int session_link_start(c2s *srv)
{
    char *secret = config_secret(srv->cfg, "router/secret");
    if (!secret || !*secret) {
        log_error("c2s %s: router/secret is not set", srv->name);
        free(secret);
        return -1;
    }
    component_config cc = {0};
    cc.name = srv->name;
    cc.secret = secret;
    cc.router_host = config_str(srv->cfg, "router/host", "127.0.0.1");
    cc.router_port = (int)config_int(srv->cfg, "router/port", 5347);
    cc.max_stanza_bytes = (size_t)config_int(srv->cfg, "router/max-stanza-bytes", 1024 * 1024);
    cc.raw_routes = config_bool(srv->cfg, "router/raw-routes", 1);
    srv->comp = component_new(srv->loop, &cc, &link_handler, srv);
    uv_timer_init(srv->loop, &srv->drain_timer);
    srv->drain_timer.data = srv;
    crypto_wipe(secret, strlen(secret));
    free(secret);
    component_start(srv->comp);
    return 0;
}

static void (*link_done)(c2s *srv);
static void on_link_stopped(component *comp, void *ud)
{
    (void)comp;
    if (link_done) link_done(ud);
}

void session_link_stop(c2s *srv, void (*done)(c2s *srv))
{
    link_done = done;
    uv_timer_stop(&srv->drain_timer);
    if (!uv_is_closing((uv_handle_t *)&srv->drain_timer)) uv_close((uv_handle_t *)&srv->drain_timer, NULL);
    srv->drain_timer_on = 0;
    sm_orphans_free(srv);
    component_stop(srv->comp, on_link_stopped);
}
