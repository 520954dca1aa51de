/* Domain pairs we send on (local -> remote). A pair with stanzas to send
 * finds a stream (an existing one to that domain or to the same address,
 * or a new connection to each DNS target in turn), authenticates with
 * dialback, then sends what waited. Everything that waits is bounded: the
 * queue by limits/queue-max-stanzas, the time by limits/connect-timeout;
 * what cannot be delivered is bounced. The same machinery carries the
 * db:verify requests of incoming streams to the authoritative server. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "s2s/s2s.h"

static void route_key(buf *b, const char *local, const char *remote)
{
    buf_reset(b);
    buf_append_str(b, local);
    buf_append_str(b, " ");
    buf_append_str(b, remote);
    buf_cstr(b);
}

route *route_get(s2s *s, const char *local, const char *remote)
{
    buf *k = &s->keybuf;
    route_key(k, local, remote);
    route *rt = strmap_get(&s->routes, k->data);
    if (!rt) {
        rt = calloc(1, sizeof *rt);
        if (!rt) abort();
        rt->s = s;
        size_t ll = strlen(local), rl = strlen(remote);
        rt->mem = malloc(ll + 1 + rl + 1);
        if (!rt->mem) abort();
        memcpy(rt->mem, local, ll + 1);
        memcpy(rt->mem + ll + 1, remote, rl + 1);
        rt->local = rt->mem;
        rt->remote = rt->mem + ll + 1;
        strmap_put(&s->routes, k->data, rt);
    }
    return rt;
}

/* ---- the deadline ---- */

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

static void stop_deadline(route *rt)
{
    if (rt->timer) {
        uv_timer_stop(rt->timer);
        rt->timer->data = NULL;
        uv_close((uv_handle_t *)rt->timer, timer_closed);
        rt->timer = NULL;
    }
}

static void route_fail(route *rt, const char *condition, const char *text);

static void deadline_cb(uv_timer_t *t)
{
    route *rt = t->data;
    if (!rt) return;
    log_notice("s2s: %s -> %s: not connected within %llu s", rt->local, rt->remote,
               (unsigned long long)(rt->s->lim.connect_timeout_ms / 1000));
    route_fail(rt, "remote-server-timeout", "the remote server did not answer in time");
}

static void start_deadline(route *rt)
{
    if (rt->timer) return;
    rt->timer = malloc(sizeof *rt->timer);
    if (!rt->timer) abort();
    uv_timer_init(rt->s->loop, rt->timer);
    rt->timer->data = rt;
    uv_timer_start(rt->timer, deadline_cb, rt->s->lim.connect_timeout_ms, 0);
}

/* ---- retrying (stanzas a lost stream never got acknowledged) ---- */

static void route_connect(route *rt);

static void stop_retry(route *rt)
{
    if (rt->retry_timer) {
        uv_timer_stop(rt->retry_timer);
        rt->retry_timer->data = NULL;
        uv_close((uv_handle_t *)rt->retry_timer, timer_closed);
        rt->retry_timer = NULL;
    }
}

static void retry_cb(uv_timer_t *t)
{
    route *rt = t->data;
    if (!rt || rt->state != RT_RETRY) return;
    stop_retry(rt);
    rt->state = RT_IDLE;
    log_info("s2s: %s -> %s: connecting again for %zu stanzas", rt->local, rt->remote, rt->q.count);
    route_connect(rt);
}

/* Every target failed but the deadline is still running: the peer may be
 * restarting (the stream was lost with stanzas in flight), so try again. */
static void schedule_retry(route *rt)
{
    rt->state = RT_RETRY;
    if (rt->retry_timer) return;
    rt->retry_timer = malloc(sizeof *rt->retry_timer);
    if (!rt->retry_timer) abort();
    uv_timer_init(rt->s->loop, rt->retry_timer);
    rt->retry_timer->data = rt;
    uv_timer_start(rt->retry_timer, retry_cb, rt->s->lim.retry_ms, 0);
}

void route_requeued(route *rt)
{
    rt->retry = 1;
    rt->want_auth = 1;
    if (rt->state == RT_IDLE) {
        route_connect(rt);
        return;
    }
    start_deadline(rt);
    /* Attached to a ready stream for verifications only: authenticate now. */
    if (rt->state == RT_CONNECTING && rt->oc && rt->oc->state == OC_READY) route_conn_ready(rt);
}

/* ---- failure ---- */

static void fail_verifies(verify_req **list, const char *condition)
{
    verify_req *vr = *list;
    *list = NULL;
    while (vr) {
        verify_req *next = vr->next;
        verify_finish(vr, "error", condition);
        vr = next;
    }
}

/* Give up on this attempt: bounce what waits, answer waiting verifications. */
static void route_fail(route *rt, const char *condition, const char *text)
{
    s2s *s = rt->s;
    if (rt->rq) {
        resolver_cancel(rt->rq);
        rt->rq = NULL;
    }
    stop_deadline(rt);
    stop_retry(rt);
    rt->retry = 0;
    free(rt->targets);
    rt->targets = NULL;
    rt->ntargets = rt->next_target = 0;
    rt->fail_condition = NULL;
    rt->state = RT_IDLE;
    rt->want_auth = 0;
    if (rt->oc) out_detach(rt->oc, rt);
    if (rt->q.count)
        log_notice("s2s: %s -> %s: bouncing %zu stanzas (%s)", rt->local, rt->remote, rt->q.count, condition);
    queue_bounce_all(s, &rt->q, condition, text);
    fail_verifies(&rt->verifies, condition);
}

/* ---- connecting ---- */

static void try_next_target(route *rt)
{
    s2s *s = rt->s;
    while (rt->next_target < rt->ntargets) {
        const s2s_target *t = &rt->targets[rt->next_target++];
        out_conn *oc = out_find_for_target(s, t, rt->remote);
        if (oc) {
            log_info("s2s: %s -> %s: multiplexed on the stream to %s (%s)", rt->local, rt->remote, oc->remote, oc->addr);
            rt->state = RT_CONNECTING;
            out_attach(oc, rt);
            if (oc->state == OC_READY) route_conn_ready(rt);
            return;
        }
        rt->state = RT_CONNECTING;
        if (out_open(s, rt, t)) return;
    }
    const char *cond = rt->fail_condition ? rt->fail_condition : "remote-server-not-found";
    if (rt->retry && rt->timer && rt->q.count) {
        log_notice("s2s: %s -> %s: no server could be reached (%s); trying again in %llu ms", rt->local, rt->remote,
                   cond, (unsigned long long)s->lim.retry_ms);
        schedule_retry(rt);
        return;
    }
    log_notice("s2s: %s -> %s: no server could be reached (%s)", rt->local, rt->remote, cond);
    route_fail(rt, cond, "the remote server could not be reached");
}

static void on_resolved(void *ud, const s2s_target *targets, size_t n, const char *why)
{
    route *rt = ud;
    rt->rq = NULL;
    if (rt->state != RT_RESOLVING) return;
    if (n == 0) {
        route_fail(rt, why ? why : "remote-server-not-found", "the remote domain could not be resolved");
        return;
    }
    free(rt->targets);
    rt->targets = malloc(n * sizeof *targets);
    if (!rt->targets) abort();
    memcpy(rt->targets, targets, n * sizeof *targets);
    rt->ntargets = n;
    rt->next_target = 0;
    try_next_target(rt);
}

static void route_connect(route *rt)
{
    s2s *s = rt->s;
    start_deadline(rt);
    /* A stream to that domain already exists: one connection per remote
     * domain carries every local domain (sender multiplexing). */
    for (out_conn *oc = s->outs; oc; oc = oc->next) {
        if (oc->state != OC_CLOSED && !strcmp(oc->remote, rt->remote)) {
            rt->state = RT_CONNECTING;
            out_attach(oc, rt);
            if (oc->state == OC_READY) route_conn_ready(rt);
            return;
        }
    }
    rt->state = RT_RESOLVING;
    resolve_req *rq = resolver_lookup(s->res, rt->remote, on_resolved, rt);
    if (rt->state == RT_RESOLVING) rt->rq = rq;
}

/* ---- events ---- */

void route_send(route *rt, stanza *st, s2s_ticket *t)
{
    s2s *s = rt->s;
    if (rt->state == RT_VALID && rt->oc) {
        out_write_stanza(rt->oc, st, t);
        return;
    }
    if (rt->q.count >= s->lim.queue_max) {
        log_warn("s2s: %s -> %s: %zu stanzas already waiting; bouncing", rt->local, rt->remote, rt->q.count);
        s2s_bounce(s, st, "resource-constraint", "too many stanzas waiting for the remote server");
        if (t) ticket_confirm(s, t);
        return;
    }
    queue_push(&rt->q, st, t);
    rt->want_auth = 1;
    switch (rt->state) {
    case RT_IDLE:
        route_connect(rt);
        break;
    case RT_CONNECTING:
        start_deadline(rt);
        /* Attached to a ready stream for verifications only: authenticate now. */
        if (rt->oc && rt->oc->state == OC_READY) route_conn_ready(rt);
        break;
    default:
        start_deadline(rt);
        break;
    }
}

void route_add_verify(route *rt, verify_req *vr)
{
    if (rt->oc && rt->oc->state == OC_READY) {
        out_send_verify(rt->oc, vr);
        return;
    }
    vr->next = rt->verifies;
    rt->verifies = vr;
    if (rt->state == RT_IDLE) route_connect(rt);
    else start_deadline(rt);
}

void route_conn_ready(route *rt)
{
    out_conn *oc = rt->oc;
    if (!oc) return;
    verify_req *vr = rt->verifies;
    rt->verifies = NULL;
    while (vr) {
        verify_req *next = vr->next;
        out_send_verify(oc, vr);
        vr = next;
    }
    if (rt->want_auth && rt->state == RT_CONNECTING) {
        out_send_result(oc, rt);
        rt->state = RT_AUTH;
    } else if (!rt->want_auth) {
        stop_deadline(rt);
    }
}

void route_dialback_result(route *rt, const char *type, const char *condition)
{
    s2s *s = rt->s;
    if (type && !strcmp(type, "valid")) {
        log_notice("s2s: %s -> %s: authorised by dialback on %s", rt->local, rt->remote,
                   rt->oc ? rt->oc->addr : "?");
        rt->state = RT_VALID;
        rt->retry = 0;
        stop_deadline(rt);
        free(rt->targets);
        rt->targets = NULL;
        rt->ntargets = rt->next_target = 0;
        if (rt->oc) out_sm_enable(rt->oc);   /* before the stanzas, so that they are counted */
        queued *n;
        while (rt->oc && (n = queue_pop_item(&rt->q)) != NULL) {
            out_write_stanza(rt->oc, n->st, &n->ticket);
            free(n);
        }
        return;
    }
    if (type && !strcmp(type, "invalid")) {
        log_warn("s2s: %s -> %s: the remote server says our dialback key is invalid", rt->local, rt->remote);
        route_fail(rt, "internal-server-error", "the remote server refused our identity");
        return;
    }
    log_notice("s2s: %s -> %s: dialback error from the remote server: %s", rt->local, rt->remote,
               condition ? condition : "?");
    int not_found = condition && (!strcmp(condition, "item-not-found") || !strcmp(condition, "remote-server-not-found"));
    (void)s;
    route_fail(rt, not_found ? "remote-server-not-found" : "remote-server-timeout",
               "the remote server refused the domain pair");
}

void route_conn_lost(route *rt, const char *condition)
{
    rt->oc = NULL;
    switch (rt->state) {
    case RT_VALID:
        log_info("s2s: %s -> %s: stream closed; reconnecting on the next stanza", rt->local, rt->remote);
        rt->state = RT_IDLE;
        rt->want_auth = 0;
        if (rt->q.count || rt->verifies) route_connect(rt);
        break;
    case RT_CONNECTING:
    case RT_AUTH:
        if (!rt->q.count && !rt->verifies) {
            rt->state = RT_IDLE;
            rt->want_auth = 0;
            stop_deadline(rt);
            break;
        }
        rt->fail_condition = condition;
        if (rt->state == RT_AUTH) rt->next_target = rt->ntargets;   /* refused: do not try elsewhere */
        rt->state = RT_CONNECTING;
        try_next_target(rt);
        break;
    default:
        break;
    }
}

/* ---- housekeeping ---- */

static void route_free(route *rt)
{
    if (rt->rq) resolver_cancel(rt->rq);
    stop_deadline(rt);
    stop_retry(rt);
    free(rt->targets);
    free(rt->mem);
    free(rt);
}

void routes_reap(s2s *s)
{
    size_t pos = 0;
    const char *key;
    void *v;
    while (strmap_next(&s->routes, &pos, &key, &v)) {
        route *rt = v;
        if (rt->state == RT_IDLE && !rt->oc && !rt->rq && !rt->q.count && !rt->verifies) {
            strmap_del(&s->routes, key);
            route_free(rt);
        }
    }
}

void routes_shutdown(s2s *s)
{
    size_t pos = 0;
    const char *key;
    void *v;
    while (strmap_next(&s->routes, &pos, &key, &v)) {
        route *rt = v;
        route_fail(rt, "remote-server-timeout", "the server is shutting down");
    }
    pos = 0;
    while (strmap_next(&s->routes, &pos, &key, &v)) {
        strmap_del(&s->routes, key);
        route_free(v);
    }
    strmap_free(&s->routes);
}
