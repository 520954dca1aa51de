/* switchboard-s2s: server-to-server federation (RFC 6120 streams in the
 * jabber:server namespace, STARTTLS, dialback per XEP-0220 with keys per
 * XEP-0185, SRV per RFC 6120 §3.2 and XEP-0368).
 *
 * Internal interfaces shared by the files of this process:
 *   main.c         configuration, start and clean shutdown
 *   router_link.c  the component link to the router (default route)
 *   route.c        domain pairs (local -> remote): state, deadlines, connecting
 *   queue.c        stanzas waiting for a domain pair, and bounces
 *   out.c          outgoing streams (we are the Initiating/Receiving server)
 *   in.c           incoming streams (we are the Receiving/Authoritative server)
 *   listener.c     the listening socket(s)
 *   dialback.c     verification requests (db:verify on behalf of an incoming stream)
 *   dialback_element.c  db:result/db:verify elements, read and written
 *   resolve.c      DNS (c-ares on the loop) and the static host map
 *   stanza_io.c    writing stanzas into another stream namespace, domains
 *   custody.c      telling the sm which of its messages a remote server
 *                  acknowledged (XEP-0198 on our streams, docs/sessions.md §7)
 *
 * Words: a *route* is one domain pair we send on (local -> remote); an
 * out_conn is one outgoing TCP connection, which carries any number of
 * routes (multiplexing, XEP-0220 §4) and db:verify requests; an in_conn is
 * one incoming connection, with the domain pairs it has been authorised for. */
#ifndef SB_S2S_H
#define SB_S2S_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>
#include <openssl/ssl.h>

#include "common/buf.h"
#include "common/component.h"
#include "common/jid.h"
#include "common/conn.h"
#include "common/stanza.h"
#include "common/strmap.h"
#include "common/xml_stream.h"
#include "s2s/dialback_element.h"

#define NS_DIALBACK_FEATURE "urn:xmpp:features:dialback"
#define NS_SM3 "urn:xmpp:sm:3"
#define NS_SB_SESSION_S2S "urn:switchboard:session"   /* the sm's control namespace */
#define S2S_DEFAULT_PORT 5269
#define JID_DOMAIN_BUF (JID_PART_MAX + 1)

typedef struct s2s s2s;
typedef struct route route;
typedef struct out_conn out_conn;
typedef struct in_conn in_conn;
typedef struct verify_req verify_req;
typedef struct resolver resolver;
typedef struct resolve_req resolve_req;

/* ---- configuration ---- */

typedef struct host_map_entry {
    char *name;         /* remote domain */
    char *address;      /* IP literal */
    int port;
    int direct_tls;     /* XEP-0368: TLS from the first byte */
} host_map_entry;

typedef struct s2s_limits {
    size_t queue_max;             /* stanzas waiting per domain pair (default 1000) */
    uint64_t connect_timeout_ms;  /* from first stanza to an authorised pair (default 30 s) */
    uint64_t idle_timeout_ms;     /* close streams without traffic (default 10 min) */
    size_t max_stanza_bytes;      /* largest element a peer may send (default 256 KiB) */
    unsigned conns_per_domain;    /* incoming streams per remote domain (default 8) */
    size_t rate_bytes;            /* bytes/s per incoming stream, 0 = unlimited (default 1 MiB) */
    unsigned max_incoming;        /* incoming connections in all (default 10000) */
    unsigned pairs_per_stream;    /* domain pairs on one incoming stream (default 1000) */
    size_t unacked_max;           /* stanzas kept per outgoing stream until the peer acks (default 1000) */
    uint64_t retry_ms;            /* pause between reconnections for stanzas that must go again (default 1 s) */
} s2s_limits;

/* ---- DNS (resolve.c) ---- */

typedef struct s2s_target {
    struct sockaddr_storage addr;
    int direct_tls;
} s2s_target;

/* targets: in the order to try; n 0 with an error condition
 * ("remote-server-not-found") when the domain cannot be reached. */
typedef void (*resolve_cb)(void *ud, const s2s_target *targets, size_t n, const char *why);

resolver *resolver_new(s2s *s, const char *nameserver, int use_xmpps, char *err, size_t errlen);
/* Starts a lookup. The callback may run before this returns (static map,
 * IP literal), in which case NULL is returned. */
resolve_req *resolver_lookup(resolver *r, const char *domain, resolve_cb cb, void *ud);
/* The callback will not be called. */
void resolver_cancel(resolve_req *rq);
/* Cancels everything (callbacks are not called) and frees the resolver. */
void resolver_free(resolver *r);
/* "ip:port" or "[ip6]:port" of a target, for logs and for multiplexing. */
void target_key(const s2s_target *t, char *out, size_t outlen);

/* ---- queues (queue.c) ---- */

/* Who waits to hear that a stanza was taken over: the sm that sent it in a
 * route envelope with s2s-seq (docs/sessions.md §7). sm NULL: nobody. */
typedef struct s2s_ticket {
    char *sm;
    unsigned long long seq;
} s2s_ticket;

typedef struct queued {
    struct queued *next;
    stanza *st;
    s2s_ticket ticket;
    uint32_t h;                   /* in an out_conn's unacked list: its XEP-0198 number */
} queued;

typedef struct stanza_queue {
    queued *head, *tail;
    size_t count;
} stanza_queue;

/* Takes st and the ticket (t may be NULL). */
void queue_push(stanza_queue *q, stanza *st, s2s_ticket *t);
void queue_push_front(stanza_queue *q, queued *n);
queued *queue_pop_item(stanza_queue *q);
/* Bounce every stanza with condition (to the router) and empty the queue. */
void queue_bounce_all(s2s *s, stanza_queue *q, const char *condition, const char *text);
/* Bounce one stanza (or drop it with a log line when it may not be bounced); frees st. */
void s2s_bounce(s2s *s, stanza *st, const char *condition, const char *text);

/* ---- domain pairs (route.c) ---- */

typedef enum {
    RT_IDLE = 0,      /* no connection */
    RT_RESOLVING,     /* DNS */
    RT_CONNECTING,    /* attached to an out_conn that is not ready yet */
    RT_AUTH,          /* db:result sent, waiting for the answer */
    RT_VALID,         /* we may send stanzas */
    RT_RETRY,         /* every target failed; connecting again after limits/retry-interval */
} route_state;

struct route {
    s2s *s;
    char *local, *remote;         /* in one allocation with the map key */
    route_state state;
    int want_auth;                /* stanzas to send: authenticate (not only verify) */
    out_conn *oc;                 /* the stream carrying us, once attached */
    route *oc_next;
    resolve_req *rq;
    s2s_target *targets;
    size_t ntargets, next_target;
    const char *fail_condition;   /* what to bounce with when all targets fail */
    stanza_queue q;
    verify_req *verifies;         /* db:verify to send once the stream is ready */
    uv_timer_t *timer;            /* connect deadline */
    uv_timer_t *retry_timer;      /* RT_RETRY: the pause before connecting again */
    int retry;                    /* holds stanzas a lost stream never got acknowledged: retry until the deadline */
    char *mem;
};

/* The pair, created when missing. */
route *route_get(s2s *s, const char *local, const char *remote);
/* A stanza from the router for a remote domain: send, or queue and connect.
 * Takes st and the ticket (t may be NULL). */
void route_send(route *rt, stanza *st, s2s_ticket *t);
/* Stanzas a lost stream never got acknowledged are back at the head of the
 * queue: connect again, retrying until limits/connect-timeout. */
void route_requeued(route *rt);
/* Ask for a db:verify to the authoritative server of rt->remote. */
void route_add_verify(route *rt, verify_req *vr);
/* Called by out.c. */
void route_conn_ready(route *rt);          /* the stream is ready: send db:result/db:verify */
void route_dialback_result(route *rt, const char *type, const char *condition);
void route_conn_lost(route *rt, const char *condition);  /* the out_conn went away */
/* Free the pairs that hold nothing (from the sweep timer). */
void routes_reap(s2s *s);
/* Free every route (shutdown); bounces what waits. */
void routes_shutdown(s2s *s);

/* ---- outgoing streams (out.c) ---- */

typedef enum {
    OC_CONNECTING = 0,
    OC_HEADER,        /* our header sent, waiting for theirs */
    OC_FEATURES,      /* waiting for stream features */
    OC_STARTTLS,      /* <starttls/> sent */
    OC_TLS,           /* TLS handshake */
    OC_READY,         /* dialback may be used */
    OC_CLOSED,
} oc_state;

struct out_conn {
    s2s *s;
    conn *c;
    xml_stream *xs;
    out_conn *prev, *next;
    char *local, *remote;         /* from/to of our stream header */
    s2s_target target;
    char addr[64];
    oc_state state;
    char *stream_id;              /* from the peer's latest header */
    unsigned version1 : 1, db_errors : 1, tls : 1, tls_offered : 1;
    const char *fail_condition;   /* why it closed, for the pairs waiting on it */
    route *routes;
    verify_req *sent;             /* db:verify sent, waiting for answers */
    uint64_t last_used;
    /* XEP-0198 (no resumption): enabled after the first pair is authorised */
    unsigned sm_offered : 1, sm_enabling : 1, sm_on : 1, r_due : 1, over_limit_logged : 1;
    uint32_t sm_sent;             /* stanzas sent since <enable/> (mod 2^32) */
    uint32_t sm_acked;            /* the peer's latest h */
    stanza_queue unacked;         /* kept until acked: requeued if the stream is lost */
    buf out;
};

/* Open a stream for rt to target (rt is attached to it). */
out_conn *out_open(s2s *s, route *rt, const s2s_target *target);
/* An existing stream to the same address that can take another domain pair. */
out_conn *out_find_for_target(s2s *s, const s2s_target *target, const char *remote);
void out_attach(out_conn *oc, route *rt);
void out_detach(out_conn *oc, route *rt);
void out_send_result(out_conn *oc, route *rt);
void out_send_verify(out_conn *oc, verify_req *vr);
/* Write a stanza for a valid pair. Takes st and the ticket (t may be NULL). */
void out_write_stanza(out_conn *oc, stanza *st, s2s_ticket *t);
/* A pair was authorised on oc: ask for stream management if offered. */
void out_sm_enable(out_conn *oc);
/* Send the <r/> due on the streams that wrote stanzas (once per loop turn). */
void out_request_acks(s2s *s);
void out_close(out_conn *oc, const char *why);
void out_close_all(s2s *s);
void out_sweep_idle(s2s *s, uint64_t now);

/* ---- incoming streams (in.c, listener.c) ---- */

struct in_conn {
    s2s *s;
    conn *c;
    xml_stream *xs;
    in_conn *prev, *next;
    char id[17];
    char *from, *to;              /* of the peer's header */
    char *counted;                /* remote domain counted against conns_per_domain */
    unsigned header : 1, version1 : 1, tls : 1, starting_tls : 1, closing : 1, db_errors : 1, sm_on : 1;
    uint32_t sm_handled;          /* XEP-0198 h: stanzas handed to the router (or bounced) */
    char **pairs;                 /* authorised "remote local" */
    size_t npairs, cappairs;
    verify_req *verifies;         /* our db:verify requests on behalf of this stream */
    size_t pending;
    double tokens;                /* rate limit bucket */
    uint64_t refill_at;
    uv_timer_t *rate_timer;
    buf out;
};

void in_accept(s2s *s, uv_stream_t *server, int direct_tls);
/* The verification for a db:result we received finished. type: valid,
 * invalid or error (with condition). */
void in_dialback_done(in_conn *ic, const char *remote, const char *local, const char *type,
                      const char *condition);
void in_close_all(s2s *s);
int listener_start(s2s *s, const char *address, int port);
void listener_stop(s2s *s);

/* ---- dialback (dialback.c) ---- */

struct verify_req {
    s2s *s;
    in_conn *ic;                  /* NULL once that stream is gone */
    verify_req *ic_next;
    verify_req *next;             /* in route->verifies or oc->sent */
    char *remote, *local, *id, *key;
};

verify_req *verify_new(in_conn *ic, const char *remote, const char *local, const char *id,
                       const char *key);
/* Report the outcome to the in_conn (if any) and free. */
void verify_finish(verify_req *vr, const char *type, const char *condition);
/* The in_conn is going away: its requests stay where they are but report nowhere. */
void verify_detach_all(in_conn *ic);

/* ---- stanzas between namespaces (stanza_io.c) ---- */

/* Write el for a stream whose default namespace is target_ns (jabber:server
 * or jabber:component:accept): original bytes where they mean the same
 * there, stanza namespaces mapped otherwise. */
void stanza_write_as(buf *out, xnode *el, const char *target_ns);
/* Stream headers. */
void stream_header_write(buf *out, const char *from, const char *to, const char *id, int version1);

/* ---- confirmations to the sm (custody.c) ---- */

/* The stanza is taken over (acknowledged by the remote server, written to a
 * peer without stream management, or bounced): tell its sm, batched once
 * per loop turn. Empties the ticket; nothing for an empty one. */
void ticket_confirm(s2s *s, s2s_ticket *t);
void ticket_drop(s2s_ticket *t);
/* Run the once-per-loop-turn work (confirmations, due <r/>) soon. */
void custody_wake(s2s *s);
/* Send the due confirmations now (stopping: the router link goes next). */
void custody_flush(s2s *s);
/* A route envelope from the router (an sm's message with s2s-seq, or our
 * own confirmations bounced back). Takes env. */
void custody_route(s2s *s, stanza *env);
/* The router link is ready / a name came or went. */
void custody_link_ready(s2s *s);
void custody_link_lost(s2s *s);
void custody_name(s2s *s, const char *name, int online);
void custody_start(s2s *s);
void custody_stop(s2s *s);

/* ---- the process ---- */

struct s2s {
    uv_loop_t *loop;
    component *comp;
    char *secret;                 /* dialback secret (XEP-0185) */
    char **hosts;
    size_t nhosts;
    host_map_entry *map;
    size_t nmap;
    SSL_CTX *server_ctx;          /* NULL: STARTTLS not offered */
    SSL_CTX *client_ctx;
    int tls_required, tls_verify;
    s2s_limits lim;
    resolver *res;
    uv_tcp_t listener;
    int listening;
    strmap routes;                /* "local remote" -> route */
    out_conn *outs;
    in_conn *ins;
    size_t nins;
    strmap in_per_domain;         /* remote domain -> count (uintptr_t) */
    uv_timer_t sweep;
    int stopping;
    size_t open_conns;            /* conns whose on_close is still owed */
    void (*on_conns_closed)(s2s *s);
    buf scratch;                  /* serialising for the router */
    buf keybuf;                   /* route map keys */
    /* custody.c */
    char instance[17];            /* random per start: tells the sm we are a new process */
    strmap names_online;          /* names announced by the router */
    s2s_ticket *confirms;         /* due to the sms */
    size_t nconfirms, capconfirms;
    uv_check_t confirm_check;     /* sends them, and the due <r/>, once per loop turn */
    int custody_on;
};

int s2s_is_local(const s2s *s, const char *domain);
const host_map_entry *s2s_map_find(const s2s *s, const char *domain);
/* A connection closed: for the shutdown bookkeeping. */
void s2s_conn_gone(s2s *s);

/* router_link.c */
int router_link_start(s2s *s, const char *name, const char *secret, const char *host, int port);
/* A stanza from a remote server, to the router. Returns 0 or -1 (router down). */
int router_link_deliver(s2s *s, xnode *el);
/* A stanza for a remote domain (from the router, plain or out of an sm's
 * envelope): checks, then the domain pair. Takes st and the ticket. */
void router_link_outbound(s2s *s, stanza *st, s2s_ticket *t);
/* Send an element we built (bounces). */
int router_link_send(s2s *s, const xnode *el);
int router_link_ready(const s2s *s);
void router_link_stop(s2s *s, void (*done)(s2s *s));

#endif
