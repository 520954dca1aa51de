/* Stream management (XEP-0198, urn:xmpp:sm:3): enable, <r/>/<a/> counting,
 * the queue of stanzas sent and not yet acknowledged, resumption within
 * this c2s process for sm/resume-timeout, and the hand-back of what was
 * never acknowledged when the session finally ends (so messages go to the
 * sm's offline storage, not into the void). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s/c2s.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/xml_write.h"

#define RESUME_ID_LEN 24

struct sm_item {
    struct sm_item *next;
    uint32_t seq;           /* the sm's number for it (docs/sessions.md §7), 0 for none */
    size_t len;
    char data[];
};

void sm_features(client *cl, buf *out)
{
    (void)cl;
    buf_append_str(out, "<sm xmlns='" NS_SM3 "'/>");
}

static void sm_failed(client *cl, const char *condition, const char *h)
{
    buf *o = &cl->srv->out;
    buf_reset(o);
    buf_append_str(o, "<failed xmlns='" NS_SM3 "'");
    if (h) buf_printf(o, " h='%s'", h);
    buf_printf(o, "><%s xmlns='" NS_XMPP_STANZAS "'/></failed>", condition);
    client_write(cl, o->data, o->len);
}

void sm_request_ack(client *cl)
{
    if (!cl->sess || !cl->sess->sm_enabled || !cl->c || cl->state != CL_SESSION) return;
    client_write_str(cl, "<r xmlns='" NS_SM3 "'/>");
    cl->sess->r_outstanding = 1;
}

static int seq_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }

/* Something is due for this client at the end of the loop iteration. */
static void due_push(client *cl)
{
    c2s *srv = cl->srv;
    c2s_session *s = cl->sess;
    if (s->ack_scheduled || s->report_scheduled) return;
    if (srv->nack_due == srv->ack_due_cap) {
        size_t cap = srv->ack_due_cap ? srv->ack_due_cap * 2 : 64;
        uint64_t *due = realloc(srv->ack_due, cap * sizeof *due);
        if (!due) abort();
        srv->ack_due = due;
        srv->ack_due_cap = cap;
    }
    srv->ack_due[srv->nack_due++] = cl->id;
}

/* Ask for an acknowledgement soon after stanzas are sent, so that a stanza
 * the client has received is not handed back (and delivered twice) when the
 * stream ends. All stanzas sent in one loop iteration share one <r/>, and
 * only one <r/> is outstanding at a time. */
static void schedule_ack_request(client *cl)
{
    c2s_session *s = cl->sess;
    if (s->r_outstanding || s->ack_scheduled) return;
    due_push(cl);
    s->ack_scheduled = 1;
}

/* Tell the sm what the client acknowledged, once per loop iteration. */
static void schedule_report(client *cl)
{
    c2s_session *s = cl->sess;
    if (s->report_scheduled) return;
    due_push(cl);
    s->report_scheduled = 1;
}

void sm_flush_ack_requests(c2s *srv)
{
    char key[24];
    for (size_t i = 0; i < srv->nack_due; i++) {
        /* By id: the client may have gone since it was scheduled. */
        snprintf(key, sizeof key, "%" PRIu64, srv->ack_due[i]);
        client *cl = strmap_get(&srv->clients_by_id, key);
        if (!cl || !cl->sess) continue;
        if (cl->sess->report_scheduled) {
            cl->sess->report_scheduled = 0;
            session_send_acked(cl);
        }
        if (!cl->sess->ack_scheduled) continue;
        cl->sess->ack_scheduled = 0;
        if (cl->sess->queued) sm_request_ack(cl);
    }
    srv->nack_due = 0;
}

static void drop_item(c2s_session *s)
{
    struct sm_item *it = s->queue;
    s->queue = it->next;
    if (!s->queue) s->queue_tail = &s->queue;
    s->queued--;
    free(it);
}

/* The client acknowledged h stanzas in all. 0, or -1 if h is more than was sent. */
static int ack(client *cl, uint32_t h)
{
    c2s_session *s = cl->sess;
    uint32_t newly = h - s->acked;   /* modulo 2^32 (XEP-0198 §4) */
    if (newly > s->queued) return -1;
    uint32_t before = s->acked_seq;
    for (uint32_t i = 0; i < newly; i++) {
        if (s->queue->seq) s->acked_seq = s->queue->seq;
        drop_item(s);
    }
    s->acked = h;
    if (s->acked_seq != before) schedule_report(cl);
    return 0;
}

static int parse_h(const char *v, uint32_t *out)
{
    if (!v || !*v) return -1;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || n > UINT32_MAX) return -1;
    *out = (uint32_t)n;
    return 0;
}

static void handled_count_too_high(client *cl, uint32_t h)
{
    c2s *srv = cl->srv;
    log_notice("c2s %s: client %" PRIu64 " (%s): acknowledged %" PRIu32 " stanzas, only %" PRIu32 " were sent",
               srv->name, cl->id, client_label(cl), h, cl->sess->h_out);
    buf *o = &srv->out;
    buf_reset(o);
    buf_printf(o, "<stream:error><undefined-condition xmlns='" NS_XMPP_STREAMS "'/>"
                  "<handled-count-too-high xmlns='" NS_SM3 "' h='%" PRIu32 "' send-count='%" PRIu32 "'/>"
                  "</stream:error></stream:stream>",
               h, cl->sess->h_out);
    client_write(cl, o->data, o->len);
    cl->state = CL_CLOSING;
    if (cl->c) {
        conn_set_timeout(cl->c, 5000);
        conn_close(cl->c);
    }
}

static void handle_enable(client *cl, const xnode *el)
{
    c2s *srv = cl->srv;
    if (cl->state != CL_SESSION || !cl->sess || cl->sess->sm_enabled) {
        sm_failed(cl, "unexpected-request", NULL);
        return;
    }
    c2s_session *s = cl->sess;
    s->sm_enabled = 1;
    s->queue = NULL;
    s->queue_tail = &s->queue;
    const char *resume = xnode_attr(el, "resume");
    int want = resume && (!strcmp(resume, "true") || !strcmp(resume, "1"));
    buf *o = &srv->out;
    buf_reset(o);
    if (want && srv->resume_timeout_ms) {
        s->resume_id = malloc(RESUME_ID_LEN + 1);
        if (!s->resume_id) abort();
        random_token(s->resume_id, RESUME_ID_LEN);
        s->sm_resumable = 1;
        strmap_put(&srv->resumable, s->resume_id, cl);
        buf_printf(o, "<enabled xmlns='" NS_SM3 "' id='%s' resume='true' max='%" PRIu64 "'/>", s->resume_id,
                   srv->resume_timeout_ms / 1000);
    } else {
        buf_append_str(o, "<enabled xmlns='" NS_SM3 "'/>");
    }
    client_write(cl, o->data, o->len);
    log_debug("c2s %s: client %" PRIu64 " (%s): stream management on%s", srv->name, cl->id, client_label(cl),
              s->sm_resumable ? ", resumable" : "");
}

static void handle_resume(client *cl, const xnode *el)
{
    c2s *srv = cl->srv;
    const char *previd = xnode_attr(el, "previd");
    uint32_t h;
    if (cl->state != CL_AUTHED || cl->sess) {
        sm_failed(cl, "unexpected-request", NULL);
        return;
    }
    if (!previd || parse_h(xnode_attr(el, "h"), &h) != 0) {
        sm_failed(cl, "bad-request", NULL);
        return;
    }
    client *old = strmap_get(&srv->resumable, previd);
    if (!old || !old->sess || !old->sess->sm_id || strcmp(old->user, cl->user) != 0 ||
        old->host_index != cl->host_index || (old->state != CL_SESSION && old->state != CL_DETACHED)) {
        log_info("c2s %s: client %" PRIu64 " (%s): nothing to resume", srv->name, cl->id, client_label(cl));
        sm_failed(cl, "item-not-found", NULL);
        return;
    }
    if (ack(old, h) != 0) {
        handled_count_too_high(cl, h);
        return;
    }
    /* Take the session over: the new connection becomes the client that
     * the sm knows (same c2s-id), the old one goes quietly. */
    if (old->c) {
        conn *oc = old->c;
        conn_set_data(oc, NULL);
        old->c = NULL;
        conn_abort(oc, "session resumed on another connection");
    }
    c2s_session *s = old->sess;
    old->sess = NULL;
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, cl->id);
    strmap_del(&srv->clients_by_id, key);
    snprintf(key, sizeof key, "%" PRIu64, old->id);
    strmap_del(&srv->clients_by_id, key);
    uint64_t id = old->id;
    old->id = 0;
    client_free(old);
    cl->id = id;
    strmap_put(&srv->clients_by_id, key, cl);
    cl->sess = s;
    s->detached_until = 0;
    s->r_outstanding = 0;   /* an <r/> sent on the old connection will never be answered */
    strmap_put(&srv->resumable, s->resume_id, cl);
    cl->state = CL_SESSION;
    if (cl->c) conn_set_timeout(cl->c, srv->lim.idle_timeout_ms);
    buf *o = &srv->out;
    buf_reset(o);
    buf_printf(o, "<resumed xmlns='" NS_SM3 "' previd='%s' h='%" PRIu32 "'/>", s->resume_id, s->h_in);
    client_write(cl, o->data, o->len);
    log_notice("c2s %s: client %" PRIu64 " (%s): session %s resumed, %u stanzas resent", srv->name, cl->id,
               cl->ipe ? cl->ipe->ip : "?", s->full_jid, s->queued);
    for (struct sm_item *it = s->queue; it; it = it->next) client_write(cl, it->data, it->len);
    if (s->queued) sm_request_ack(cl);
}

int sm_handle(client *cl, stanza *st)
{
    xnode *el = st->root;
    const char *name = el->name;
    if (!strcmp(name, "enable")) {
        handle_enable(cl, el);
    } else if (!strcmp(name, "resume")) {
        if (!cl->authed) {
            stanza_free(st);
            client_stream_error(cl, "not-authorized", "authenticate before resuming");
            return 1;
        }
        handle_resume(cl, el);
    } else if (!strcmp(name, "r")) {
        if (!cl->sess || !cl->sess->sm_enabled) {
            stanza_free(st);
            client_stream_error(cl, "unsupported-stanza-type", "stream management is not enabled");
            return 1;
        }
        c2s_session *ss = cl->sess;
        if (ss->h_wait_len) {
            /* Stanzas the sm has not confirmed yet are not counted: the
             * answer waits until what came before this <r/> is. */
            ss->a_owed = 1;
            ss->a_target = ss->h_wait[ss->h_wait_head + ss->h_wait_len - 1];
        } else {
            char a[64];
            snprintf(a, sizeof a, "<a xmlns='" NS_SM3 "' h='%" PRIu32 "'/>", ss->h_in);
            client_write_str(cl, a);
        }
    } else if (!strcmp(name, "a")) {
        uint32_t h;
        if (!cl->sess || !cl->sess->sm_enabled) {
            stanza_free(st);
            client_stream_error(cl, "unsupported-stanza-type", "stream management is not enabled");
            return 1;
        }
        if (parse_h(xnode_attr(el, "h"), &h) != 0) {
            stanza_free(st);
            client_stream_error(cl, "invalid-xml", "<a/> needs a numeric 'h'");
            return 1;
        }
        if (ack(cl, h) != 0) {
            stanza_free(st);
            handled_count_too_high(cl, h);
            return 1;
        }
        cl->sess->r_outstanding = 0;
        if (cl->sess->draining) {
            if (cl->sess->drain_answers) cl->sess->drain_answers--;
            if (!cl->sess->queued || !cl->sess->drain_answers) {
                stanza_free(st);
                sm_drain_done(cl);
                return 1;
            }
        }
        if (cl->sess->queued) {
            /* Sent while our last <r/> was on its way: ask again. */
            schedule_ack_request(cl);
        }
    } else {
        stanza_free(st);
        client_stream_error(cl, "unsupported-stanza-type", "unknown stream management element");
        return 1;
    }
    stanza_free(st);
    return 1;
}

static void h_wait_push(c2s_session *s, uint32_t seq)
{
    if (s->h_wait_head + s->h_wait_len == s->h_wait_cap) {
        if (s->h_wait_head) {
            memmove(s->h_wait, s->h_wait + s->h_wait_head, s->h_wait_len * sizeof *s->h_wait);
            s->h_wait_head = 0;
        } else {
            unsigned cap = s->h_wait_cap ? s->h_wait_cap * 2 : 16;
            uint32_t *w = realloc(s->h_wait, cap * sizeof *w);
            if (!w) abort();
            s->h_wait = w;
            s->h_wait_cap = cap;
        }
    }
    s->h_wait[s->h_wait_head + s->h_wait_len++] = seq;
}

/* A client stanza: handled here (counted now, unless stanzas before it
 * still wait for the sm) until sm_routed says it went to the sm. */
void sm_incoming(client *cl)
{
    c2s_session *s = cl->sess;
    if (!s || !s->sm_enabled) return;
    if (!s->h_wait_len) {
        s->h_in++;
        s->last_direct = 1;
    } else {
        h_wait_push(s, s->route_seq);
        s->last_direct = 0;
    }
}

void sm_routed(client *cl, uint32_t seq)
{
    c2s_session *s = cl->sess;
    if (!s || !s->sm_enabled) return;
    /* Not counted before the sm confirms it: take back what sm_incoming did. */
    if (s->last_direct) s->h_in--;
    else if (s->h_wait_len) s->h_wait_len--;
    s->last_direct = 0;
    h_wait_push(s, seq);
}

void sm_handled(client *cl, uint32_t seq)
{
    c2s_session *s = cl->sess;
    if (!s || !s->sm_enabled) return;
    int advanced = 0;
    while (s->h_wait_len && seq_le(s->h_wait[s->h_wait_head], seq)) {
        s->h_wait_head++;
        s->h_wait_len--;
        s->h_in++;
        advanced = 1;
    }
    if (!s->h_wait_len) s->h_wait_head = 0;
    if (advanced && s->a_owed && seq_le(s->a_target, seq) && cl->c && cl->state == CL_SESSION) {
        char a[64];
        snprintf(a, sizeof a, "<a xmlns='" NS_SM3 "' h='%" PRIu32 "'/>", s->h_in);
        client_write_str(cl, a);
        s->a_owed = 0;
    }
}

void sm_outgoing(client *cl, const char *data, size_t len)
{
    sm_outgoing_seq(cl, data, len, 0);
}

void sm_outgoing_seq(client *cl, const char *data, size_t len, uint32_t seq)
{
    c2s_session *s = cl->sess;
    if (!s) return;
    if (!s->sm_enabled) {
        /* Without stream management, written is all the c2s ever knows. */
        if (seq) {
            s->acked_seq = seq;
            schedule_report(cl);
        }
        return;
    }
    struct sm_item *it = malloc(sizeof *it + len);
    if (!it) abort();
    it->next = NULL;
    it->seq = seq;
    it->len = len;
    memcpy(it->data, data, len);
    *s->queue_tail = it;
    s->queue_tail = &it->next;
    s->queued++;
    s->h_out++;
    if (cl->srv->max_unacked && s->queued > cl->srv->max_unacked) {
        log_warn("c2s %s: client %" PRIu64 " (%s): %u stanzas not acknowledged, closing", cl->srv->name, cl->id,
                 client_label(cl), s->queued);
        if (cl->state == CL_DETACHED) {
            session_send_end(cl);
            sm_hand_back_all(cl);
            client_free(cl);
        } else {
            client_stream_error(cl, "policy-violation", "too many unacknowledged stanzas");
        }
        return;
    }
    schedule_ack_request(cl);
}

int sm_detach(client *cl)
{
    c2s *srv = cl->srv;
    c2s_session *s = cl->sess;
    if (!s || !s->sm_resumable || !srv->resume_timeout_ms) return 0;
    cl->state = CL_DETACHED;
    s->detached_until = uv_now(srv->loop) + srv->resume_timeout_ms;
    /* Nothing of the connection is needed while waiting. */
    xml_stream_free(cl->xs);
    cl->xs = NULL;
    for (unsigned i = 0; i < cl->nbacklog; i++) stanza_free(cl->backlog[i]);
    free(cl->backlog);
    cl->backlog = NULL;
    cl->nbacklog = 0;
    if (cl->throttled) rate_unthrottle(cl);
    log_info("c2s %s: client %" PRIu64 " (%s): connection lost, session kept %" PRIu64 " s for resumption",
             srv->name, cl->id, client_label(cl), srv->resume_timeout_ms / 1000);
    return 1;
}

void sm_hand_back_all(client *cl)
{
    c2s_session *s = cl->sess;
    if (!s) return;
    if (s->sm_id && (s->sm_lost || !session_sm_online(cl->srv, cl->host_index))) {
        sm_orphan(cl);
        return;
    }
    while (s->queue) {
        /* What the sm numbered, it keeps a copy of and delivers again itself. */
        if (s->sm_id && !s->queue->seq)
            session_hand_back(cl->srv, cl->id, s->sm_id, cl->domain, s->queue->data, s->queue->len);
        drop_item(s);
    }
}

/* ---- the sm went away (docs/sessions.md §7) ---- */

void sm_orphan(client *cl)
{
    c2s *srv = cl->srv;
    c2s_session *s = cl->sess;
    if (!s || !s->sm_id) return;
    c2s_orphan *o = calloc(1, sizeof *o);
    if (!o) abort();
    o->host_index = cl->host_index;
    o->c2s_id = cl->id;
    o->sm_id = s->sm_id;
    o->acked_seq = s->acked_seq;
    o->items = s->queue;
    s->queue = NULL;
    s->queue_tail = &s->queue;
    s->queued = 0;
    s->sm_id = 0;   /* the orphan speaks for it now: no 'end', no hand-back */
    c2s_orphan **pp = &srv->orphans;
    while (*pp) pp = &(*pp)->next;
    *pp = o;
    log_info("c2s %s: client %" PRIu64 " (%s): session kept for the sm of %s (acknowledged up to %" PRIu32 ")",
             srv->name, cl->id, client_label(cl), cl->domain, o->acked_seq);
    if (session_sm_online(srv, cl->host_index)) sm_orphans_flush(srv, cl->host_index);
}

void sm_orphans_flush(c2s *srv, int host_index)
{
    for (c2s_orphan **pp = &srv->orphans; *pp;) {
        c2s_orphan *o = *pp;
        if (o->host_index != host_index) {
            pp = &o->next;
            continue;
        }
        *pp = o->next;
        const char *domain = srv->hosts[host_index];
        session_end_orphan(srv, domain, o->c2s_id, o->sm_id, o->acked_seq);
        unsigned n = 0;
        while (o->items) {
            struct sm_item *it = o->items;
            o->items = it->next;
            session_hand_back_seq(srv, o->c2s_id, o->sm_id, domain, it->data, it->len, it->seq);
            free(it);
            n++;
        }
        log_info("c2s %s: session %" PRIu64 " of a lost sm ended at %s, %u stanzas handed back", srv->name, o->sm_id,
                 domain, n);
        free(o);
    }
}

void sm_orphans_free(c2s *srv)
{
    unsigned n = 0;
    while (srv->orphans) {
        c2s_orphan *o = srv->orphans;
        srv->orphans = o->next;
        while (o->items) {
            struct sm_item *it = o->items;
            o->items = it->next;
            free(it);
            n++;
        }
        free(o);
    }
    if (n) log_warn("c2s %s: stopping with %u stanzas for an sm that did not come back", srv->name, n);
}

void sm_drain_done(client *cl)
{
    c2s_session *s = cl->sess;
    s->draining = 0;
    session_send_end(cl);   /* sm_lost: becomes an orphan */
    sm_hand_back_all(cl);
    client_stream_error(cl, "system-shutdown", "the session manager went away");
}

static void drain_tick(uv_timer_t *t)
{
    c2s *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    int left = 0;
    for (client *cl = srv->clients, *next; cl; cl = next) {
        next = cl->next;
        if (!cl->sess || !cl->sess->draining) continue;
        if (now >= cl->sess->drain_until || cl->state != CL_SESSION) {
            log_info("c2s %s: client %" PRIu64 " (%s): no acknowledgement before the drain timeout", srv->name,
                     cl->id, client_label(cl));
            sm_drain_done(cl);
        } else {
            left = 1;
        }
    }
    if (!left) {
        uv_timer_stop(t);
        srv->drain_timer_on = 0;
    }
}

void sm_drain(client *cl)
{
    c2s *srv = cl->srv;
    c2s_session *s = cl->sess;
    s->sm_lost = 1;
    if (cl->state != CL_SESSION || !cl->c || !s->sm_enabled || !s->queued || !srv->drain_timeout_ms) {
        sm_drain_done(cl);
        return;
    }
    /* Ask what the client got: its <a/> tells exactly which stanzas the
     * next sm must deliver again, so none comes twice. */
    s->draining = 1;
    s->drain_answers = s->r_outstanding ? 2 : 1;
    s->drain_until = uv_now(srv->loop) + srv->drain_timeout_ms;
    sm_request_ack(cl);
    if (!srv->drain_timer_on) {
        srv->drain_timer.data = srv;
        uv_timer_start(&srv->drain_timer, drain_tick, 200, 200);
        srv->drain_timer_on = 1;
    }
}

void sm_session_free(c2s *srv, c2s_session *s)
{
    while (s->queue) drop_item(s);
    free(s->h_wait);
    if (s->resume_id) {
        strmap_del(&srv->resumable, s->resume_id);
        free(s->resume_id);
    }
    free(s->full_jid);
    free(s);
}
