/* Where a remote domain's server is: the static host map first, then DNS
 * through c-ares on the loop (never blocking): _xmpp-server._tcp SRV
 * records (and _xmpps-server._tcp for direct TLS, XEP-0368, when enabled),
 * ordered by priority and weight (RFC 2782), each target's A/AAAA
 * addresses; without SRV records, the domain's own addresses on 5269. A
 * single SRV record with the target "." says the service is not offered. */
#include <arpa/inet.h>
#include <ares.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/log.h"
#include "s2s/s2s.h"

#define MAX_SRV 16
#define MAX_TARGETS 16

typedef struct poll_entry {
    uv_poll_t h;
    ares_socket_t fd;
    resolver *r;
    struct poll_entry *next;
} poll_entry;

struct resolver {
    s2s *s;
    ares_channel ch;
    int ch_ok;
    int use_xmpps;
    uv_timer_t timer;
    poll_entry *polls;
    resolve_req *reqs;
    int destroying;
};

typedef struct srv_rec {
    char *host;
    unsigned prio, weight, port;
    int tls;
} srv_rec;

struct resolve_req {
    resolver *r;
    resolve_req *prev, *next;
    char *domain;
    resolve_cb cb;
    void *ud;
    int cancelled;
    int starting;       /* issuing the SRV queries */
    int in_lookup;      /* inside resolver_lookup: finishing must not free */
    int finished;
    int pending;
    int no_service;
    srv_rec srv[MAX_SRV];
    size_t nsrv;
    size_t host_idx;
    s2s_target targets[MAX_TARGETS];
    size_t ntargets;
};

void target_key(const s2s_target *t, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (t->addr.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&t->addr;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
        snprintf(out, outlen, "%s:%d%s", ip, port, t->direct_tls ? "/tls" : "");
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&t->addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
        snprintf(out, outlen, "[%s]:%d%s", ip, port, t->direct_tls ? "/tls" : "");
    }
}

static int make_target(s2s_target *t, const char *ip, int port, int direct_tls)
{
    memset(t, 0, sizeof *t);
    t->direct_tls = direct_tls;
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&t->addr) == 0) return 0;
    if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&t->addr) == 0) return 0;
    return -1;
}

/* ---- c-ares on the loop ---- */

static void timer_cb(uv_timer_t *t);

/* c-ares keeps its own deadlines (retries, timeouts): wake up for the next one. */
static void update_timer(resolver *r)
{
    if (!r->ch_ok || r->destroying) return;
    struct timeval tv, *tvp = ares_timeout(r->ch, NULL, &tv);
    if (tvp) {
        uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)tvp->tv_usec / 1000 + 1;
        uv_timer_start(&r->timer, timer_cb, ms, 0);
    } else {
        uv_timer_stop(&r->timer);
    }
}

static void timer_cb(uv_timer_t *t)
{
    resolver *r = t->data;
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    update_timer(r);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    poll_entry *e = h->data;
    resolver *r = e->r;
    ares_socket_t rfd = (status < 0 || (events & UV_READABLE)) ? e->fd : ARES_SOCKET_BAD;
    ares_socket_t wfd = (status < 0 || (events & UV_WRITABLE)) ? e->fd : ARES_SOCKET_BAD;
    ares_process_fd(r->ch, rfd, wfd);
    update_timer(r);
}

static void poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    resolver *r = data;
    poll_entry **pp = &r->polls, *e = NULL;
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->fd == fd) {
            e = *pp;
            break;
        }
    }
    if (!readable && !writable) {
        if (e) {
            *pp = e->next;
            uv_poll_stop(&e->h);
            uv_close((uv_handle_t *)&e->h, poll_closed);
        }
        return;
    }
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) abort();
        if (uv_poll_init_socket(r->s->loop, &e->h, fd) != 0) {
            log_error("s2s: dns: cannot watch socket %d", (int)fd);
            free(e);
            return;
        }
        e->fd = fd;
        e->r = r;
        e->h.data = e;
        e->next = r->polls;
        r->polls = e;
    }
    uv_poll_start(&e->h, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), poll_cb);
}

resolver *resolver_new(s2s *s, const char *nameserver, int use_xmpps, char *err, size_t errlen)
{
    resolver *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->s = s;
    r->use_xmpps = use_xmpps;
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        free(r);
        return NULL;
    }
    struct ares_options opt;
    memset(&opt, 0, sizeof opt);
    opt.sock_state_cb = sock_state_cb;
    opt.sock_state_cb_data = r;
    opt.timeout = 3000;
    opt.tries = 2;
    rc = ares_init_options(&r->ch, &opt, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        ares_library_cleanup();
        free(r);
        return NULL;
    }
    r->ch_ok = 1;
    if (nameserver && *nameserver) {
        rc = ares_set_servers_ports_csv(r->ch, nameserver);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "dns/nameserver '%s': %s", nameserver, ares_strerror(rc));
            ares_destroy(r->ch);
            ares_library_cleanup();
            free(r);
            return NULL;
        }
    }
    uv_timer_init(s->loop, &r->timer);
    r->timer.data = r;
    return r;
}

/* ---- lookups ---- */

static void req_free(resolve_req *rq)
{
    resolver *r = rq->r;
    if (rq->prev) rq->prev->next = rq->next;
    else if (r->reqs == rq) r->reqs = rq->next;
    if (rq->next) rq->next->prev = rq->prev;
    for (size_t i = 0; i < rq->nsrv; i++) free(rq->srv[i].host);
    free(rq->domain);
    free(rq);
}

static void finish(resolve_req *rq)
{
    resolve_cb cb = rq->cb;
    void *ud = rq->ud;
    if (!rq->cancelled && cb) {
        if (rq->ntargets == 0)
            log_info("s2s: dns: no server found for %s", rq->domain);
        cb(ud, rq->targets, rq->ntargets, rq->ntargets ? NULL : "remote-server-not-found");
    }
    if (rq->in_lookup) rq->finished = 1;
    else req_free(rq);
}

static void next_host(resolve_req *rq);

static void addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    resolve_req *rq = arg;
    (void)timeouts;
    rq->pending--;
    if (status == ARES_EDESTRUCTION || rq->r->destroying) {
        if (res) ares_freeaddrinfo(res);
        if (rq->pending == 0) req_free(rq);
        return;
    }
    const srv_rec *sr = &rq->srv[rq->host_idx];
    if (status == ARES_SUCCESS && res) {
        for (struct ares_addrinfo_node *n = res->nodes; n && rq->ntargets < MAX_TARGETS; n = n->ai_next) {
            s2s_target *t = &rq->targets[rq->ntargets];
            memset(t, 0, sizeof *t);
            if (n->ai_family == AF_INET && n->ai_addrlen >= sizeof(struct sockaddr_in)) {
                memcpy(&t->addr, n->ai_addr, sizeof(struct sockaddr_in));
                ((struct sockaddr_in *)&t->addr)->sin_port = htons((uint16_t)sr->port);
            } else if (n->ai_family == AF_INET6 && n->ai_addrlen >= sizeof(struct sockaddr_in6)) {
                memcpy(&t->addr, n->ai_addr, sizeof(struct sockaddr_in6));
                ((struct sockaddr_in6 *)&t->addr)->sin6_port = htons((uint16_t)sr->port);
            } else {
                continue;
            }
            t->direct_tls = sr->tls;
            rq->ntargets++;
        }
    } else {
        log_info("s2s: dns: no address for %s (for %s): %s", sr->host, rq->domain, ares_strerror(status));
    }
    if (res) ares_freeaddrinfo(res);
    rq->host_idx++;
    if (rq->cancelled) {
        req_free(rq);
        return;
    }
    next_host(rq);
}

static void next_host(resolve_req *rq)
{
    if (rq->host_idx >= rq->nsrv || rq->ntargets >= MAX_TARGETS) {
        finish(rq);
        return;
    }
    const srv_rec *sr = &rq->srv[rq->host_idx];
    s2s_target lit;
    if (make_target(&lit, sr->host, (int)sr->port, sr->tls) == 0) {
        rq->targets[rq->ntargets++] = lit;
        rq->host_idx++;
        next_host(rq);
        return;
    }
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rq->pending++;
    ares_getaddrinfo(rq->r->ch, sr->host, NULL, &hints, addr_cb, rq);
    update_timer(rq->r);
}

static unsigned rand_below(unsigned n)
{
    unsigned v;
    random_bytes(&v, sizeof v);
    return n ? v % n : 0;
}

static int srv_cmp(const void *a, const void *b)
{
    const srv_rec *x = a, *y = b;
    if (x->prio != y->prio) return x->prio < y->prio ? -1 : 1;
    /* XEP-0368: at equal priority, direct TLS first. */
    if (x->tls != y->tls) return x->tls ? -1 : 1;
    return 0;
}

/* RFC 2782: within one priority, pick by weight, repeatedly. */
static void order_by_weight(srv_rec *v, size_t n)
{
    size_t start = 0;
    while (start < n) {
        size_t end = start + 1;
        while (end < n && v[end].prio == v[start].prio && v[end].tls == v[start].tls) end++;
        for (size_t i = start; i + 1 < end; i++) {
            unsigned total = 0;
            for (size_t j = i; j < end; j++) total += v[j].weight + 1;
            unsigned pick = rand_below(total), acc = 0;
            size_t chosen = i;
            for (size_t j = i; j < end; j++) {
                acc += v[j].weight + 1;
                if (pick < acc) {
                    chosen = j;
                    break;
                }
            }
            srv_rec tmp = v[i];
            v[i] = v[chosen];
            v[chosen] = tmp;
        }
        start = end;
    }
}

static void srv_done(resolve_req *rq)
{
    if (rq->cancelled) {
        req_free(rq);
        return;
    }
    if (rq->nsrv == 0 && rq->no_service) {
        log_info("s2s: dns: %s says it offers no XMPP server (SRV target '.')", rq->domain);
        finish(rq);
        return;
    }
    if (rq->nsrv == 0) {
        rq->srv[0].host = strdup(rq->domain);
        if (!rq->srv[0].host) abort();
        rq->srv[0].port = S2S_DEFAULT_PORT;
        rq->srv[0].prio = rq->srv[0].weight = 0;
        rq->srv[0].tls = 0;
        rq->nsrv = 1;
    } else {
        qsort(rq->srv, rq->nsrv, sizeof rq->srv[0], srv_cmp);
        order_by_weight(rq->srv, rq->nsrv);
    }
    next_host(rq);
}

static void srv_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen, int tls)
{
    resolve_req *rq = arg;
    (void)timeouts;
    rq->pending--;
    if (status == ARES_EDESTRUCTION || rq->r->destroying) {
        if (rq->pending == 0) req_free(rq);
        return;
    }
    if (status == ARES_SUCCESS) {
        struct ares_srv_reply *reply = NULL;
        if (ares_parse_srv_reply(abuf, alen, &reply) == ARES_SUCCESS) {
            for (struct ares_srv_reply *p = reply; p; p = p->next) {
                if (!p->host || !*p->host || !strcmp(p->host, ".")) {
                    rq->no_service = 1;
                    continue;
                }
                if (rq->nsrv >= MAX_SRV) continue;
                srv_rec *sr = &rq->srv[rq->nsrv++];
                sr->host = strdup(p->host);
                if (!sr->host) abort();
                sr->prio = p->priority;
                sr->weight = p->weight;
                sr->port = p->port;
                sr->tls = tls;
            }
            ares_free_data(reply);
        }
    } else if (status != ARES_ENOTFOUND && status != ARES_ENODATA) {
        log_info("s2s: dns: SRV lookup for %s: %s", rq->domain, ares_strerror(status));
    }
    if (rq->pending == 0 && !rq->starting) srv_done(rq);
}

static void srv_plain_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    srv_cb(arg, status, timeouts, abuf, alen, 0);
}

static void srv_tls_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    srv_cb(arg, status, timeouts, abuf, alen, 1);
}

resolve_req *resolver_lookup(resolver *r, const char *domain, resolve_cb cb, void *ud)
{
    s2s_target t;
    const host_map_entry *m = s2s_map_find(r->s, domain);
    if (m) {
        if (make_target(&t, m->address, m->port, m->direct_tls) == 0) {
            cb(ud, &t, 1, NULL);
        } else {
            log_warn("s2s: hosts-map entry for %s has a bad address '%s'", domain, m->address);
            cb(ud, NULL, 0, "remote-server-not-found");
        }
        return NULL;
    }
    if (make_target(&t, domain, S2S_DEFAULT_PORT, 0) == 0) {
        cb(ud, &t, 1, NULL);
        return NULL;
    }
    resolve_req *rq = calloc(1, sizeof *rq);
    if (!rq) abort();
    rq->r = r;
    rq->domain = strdup(domain);
    if (!rq->domain) abort();
    rq->cb = cb;
    rq->ud = ud;
    rq->next = r->reqs;
    if (r->reqs) r->reqs->prev = rq;
    r->reqs = rq;

    char name[1100];
    rq->in_lookup = 1;
    rq->starting = 1;
    rq->pending++;
    snprintf(name, sizeof name, "_xmpp-server._tcp.%s", domain);
    ares_query(r->ch, name, 1 /* C_IN */, 33 /* T_SRV */, srv_plain_cb, rq);
    if (r->use_xmpps) {
        rq->pending++;
        snprintf(name, sizeof name, "_xmpps-server._tcp.%s", domain);
        ares_query(r->ch, name, 1, 33, srv_tls_cb, rq);
    }
    rq->starting = 0;
    update_timer(r);
    /* Both answered at once (a bad name, say): carry on now. The callback
     * may then run before we return (hosts file): report NULL then. */
    if (rq->pending == 0) srv_done(rq);
    rq->in_lookup = 0;
    if (rq->finished) {
        req_free(rq);
        return NULL;
    }
    return rq;
}

void resolver_cancel(resolve_req *rq)
{
    if (!rq) return;
    rq->cancelled = 1;
    rq->cb = NULL;
}

static void timer_closed(uv_handle_t *h)
{
    resolver *r = h->data;
    free(r);
}

void resolver_free(resolver *r)
{
    if (!r) return;
    for (resolve_req *p = r->reqs; p; p = p->next) {
        p->cancelled = 1;
        p->cb = NULL;
    }
    r->destroying = 1;
    if (r->ch_ok) ares_destroy(r->ch);   /* every pending callback runs with ARES_EDESTRUCTION */
    r->ch_ok = 0;
    while (r->reqs) req_free(r->reqs);
    while (r->polls) {
        poll_entry *e = r->polls;
        r->polls = e->next;
        uv_poll_stop(&e->h);
        uv_close((uv_handle_t *)&e->h, poll_closed);
    }
    ares_library_cleanup();
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, timer_closed);
}
