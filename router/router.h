/* The router: the hub that every component joins over XEP-0114. Internal
 * interfaces shared by router.c (connections), routes.c (the routing table)
 * and bounce.c (errors for what cannot be delivered). */
#ifndef SB_ROUTER_H
#define SB_ROUTER_H
#include <uv.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/conn.h"
#include "common/metrics.h"
#include "common/strmap.h"
#include "common/xml_stream.h"

typedef enum { RC_HEADER, RC_HANDSHAKE, RC_READY, RC_CLOSING } rclient_state;

/* Who may connect: a name (or "prefix*", or "*") with its secret. */
typedef struct component_acl {
    char *pattern;
    char *secret;
    int trusted;       /* may bind names, send route envelopes, send from any name */
} component_acl;

typedef struct router router;

typedef struct rclient {
    router *r;
    conn *c;
    xml_stream *xs;
    rclient_state state;
    char stream_id[17];
    char *name;                 /* primary name, once authenticated */
    const component_acl *acl;
    int trusted;
    char **names;               /* extra names bound with <bind/> */
    size_t nnames;
    int is_default;             /* the default route (s2s) */
    int header_sent;
    struct rclient **waiters;   /* senders paused until this one drains */
    size_t nwaiters;
    int fast;                   /* 1: envelopes forwarded unparsed (envelope.c); -1: never again */
    buf pending;                /* fast path: bytes of an incomplete element */
    struct rclient *prev, *next;
} rclient;

typedef struct router_limits {
    size_t max_stanza_bytes;
    unsigned handshake_timeout_ms;
    size_t write_high_water;
    size_t write_max;
    int raw_envelopes;          /* forward trusted components' envelopes unparsed (envelope.c) */
} router_limits;

struct router {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listening;
    component_acl *acls;
    size_t nacls;
    router_limits limits;
    strmap routes;              /* name -> rclient */
    strmap known;               /* names once bound: never sent to the default route */
    rclient *default_route;
    rclient *clients;
    size_t nclients;
    buf out;
    struct {
        metric *routed[3];      /* message, presence, iq */
        metric *envelopes;
        metric *bounced;
        metric *refused_from;
        metric *auth_failures;
    } m;
    int stopping;
    void (*on_stopped)(router *r);
};

/* router.c */
void router_metrics_init(router *r);
int router_start(router *r, const char *address, int port);
void router_stop(router *r, void (*on_stopped)(router *r));
/* Write an element to a client, original bytes where possible. */
void rclient_write_element(rclient *rc, const xnode *el);
void rclient_stream_error(rclient *rc, const char *condition, const char *text);
/* Forward an element's original bytes from one client to another; kind
 * counts it: 0 message, 1 presence, 2 iq, -1 a route envelope. */
void router_forward_bytes(rclient *from, rclient *target, const char *data, size_t len, int kind);

/* envelope.c */
/* Bytes from a trusted client in the fast mode: envelopes and bare stanzas
 * are forwarded as they are, every other element goes through its xml_stream. */
void envelope_feed(rclient *rc, const char *data, size_t len);

/* routes.c */
const component_acl *route_find_acl(const router *r, const char *name);
/* Claim a name for rc; -1 if another client holds it. */
int route_add(router *r, const char *name, rclient *rc);
void route_remove_all(router *r, rclient *rc);
rclient *route_lookup(const router *r, const char *name);
int route_is_known(const router *r, const char *name);
int route_owns(const rclient *rc, const char *name);
/* Tell trusted clients (except skip) that a name came or went. */
void route_announce(router *r, const char *name, int online, const rclient *skip);
/* Send rc the names currently online. */
void route_announce_all_to(router *r, rclient *rc);
/* The prepared domain of a JID string into out; -1 if it is not a valid JID. */
int route_domain_of(const char *jid, char *out, size_t outlen);

/* bounce.c */
/* Answer st (sent by rc) with an error to rc; st is consumed. */
void bounce_to_sender(rclient *rc, stanza *st, const char *condition, const char *text);
/* Bytes queued for rc that never left: parse them and bounce each element
 * back to the client that sent it. */
void bounce_unsent(router *r, const char *data, size_t len);

#endif
