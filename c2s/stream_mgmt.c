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

/* Ask for an acknowledgement soon after stanzas are sent, so that a stanza
 * the client has received is not handed back (and delivered twice) when the
 * stream ends. All stanzas sent in one loop iteration share one <r/>, and
 * only one <r/> is outstanding at a time. */
static void schedule_ack_request(client *cl)
{
    c2s *srv = cl->srv;
    c2s_session *s = cl->sess;
    if (s->r_outstanding || s->ack_scheduled) return;
    if (srv->nack_due == srv->ack_due_cap) {
        size_t cap = srv->ack_due_cap ? srv->ack_due_cap * 2 : 64;
        uint64_t *due = realloc(srv->ack_due, cap * sizeof *due);
        if (!due) abort();
        srv->ack_due = due;
        srv->ack_due_cap = cap;
    }
    srv->ack_due[srv->nack_due++] = cl->id;
    s->ack_scheduled = 1;
}

void sm_flush_ack_requests(c2s *srv)
{
    char key[24];
    for (size_t i = 0; i < srv->nack_due; i++) {
        /* By id: the client may have gone since it was scheduled. */
        snprintf(key, sizeof key, "%" PRIu64, srv->ack_due[i]);
        client *cl = strmap_get(&srv->clients_by_id, key);
        if (!cl || !cl->sess || !cl->sess->ack_scheduled) continue;
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
    for (uint32_t i = 0; i < newly; i++) drop_item(s);
    s->acked = h;
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
        char a[64];
        snprintf(a, sizeof a, "<a xmlns='" NS_SM3 "' h='%" PRIu32 "'/>", cl->sess->h_in);
        client_write_str(cl, a);
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

void sm_incoming(client *cl)
{
    if (cl->sess && cl->sess->sm_enabled) cl->sess->h_in++;
}

void sm_outgoing(client *cl, const char *data, size_t len)
{
    c2s_session *s = cl->sess;
    if (!s || !s->sm_enabled) return;
    struct sm_item *it = malloc(sizeof *it + len);
    if (!it) abort();
    it->next = NULL;
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
    while (s->queue) {
        if (s->sm_id) session_hand_back(cl->srv, cl->id, s->sm_id, cl->domain, s->queue->data, s->queue->len);
        drop_item(s);
    }
}

void sm_session_free(c2s *srv, c2s_session *s)
{
    while (s->queue) drop_item(s);
    if (s->resume_id) {
        strmap_del(&srv->resumable, s->resume_id);
        free(s->resume_id);
    }
    free(s->full_jid);
    free(s);
}
