/* The component client: how every Switchboard process (and the tests) joins
 * the router over XEP-0114, with the project's bind and route extensions
 * (docs/router-protocol.md).
 *
 * It connects, sends the stream header to its name, answers the handshake
 * with hex SHA-1(stream id + secret), binds the extra names asked for, and
 * then passes every element to on_stanza. When the router goes away it
 * calls on_lost and reconnects with exponential back-off (with jitter),
 * binding its names again. */
#ifndef SB_COMPONENT_H
#define SB_COMPONENT_H
#include <uv.h>
#include "common/stanza.h"
#include "common/xml_scan.h"

typedef struct component component;

typedef struct component_config {
    const char *name;           /* our component name, e.g. "sm" */
    const char *secret;         /* shared secret (not logged) */
    const char *router_host;    /* address of the router, e.g. "127.0.0.1" */
    int router_port;            /* e.g. 5347 */
    unsigned reconnect_min_ms;  /* first back-off step; default 100 */
    unsigned reconnect_max_ms;  /* back-off ceiling; default 10000 */
    size_t max_stanza_bytes;    /* default 1 MiB (router traffic carries envelopes) */
    int raw_routes;             /* offer route envelopes to on_raw_route unparsed (see below) */
} component_config;

typedef struct component_handler {
    /* Connected, authenticated, and every bind confirmed. */
    void (*on_ready)(component *c, void *ud);
    /* The connection to the router was lost (or refused); a reconnect is scheduled. */
    void (*on_lost)(component *c, const char *reason, void *ud);
    /* An element from the router (stanza or route envelope); the callee owns st. */
    void (*on_stanza)(component *c, stanza *st, void *ud);
    /* A name came online or went offline at the router. */
    void (*on_name)(component *c, const char *name, int online, void *ud);
    /* A bind was refused (e.g. conflict): the component cannot serve that name. */
    void (*on_bind_failed)(component *c, const char *name, const char *condition, void *ud);
    /* With raw_routes: a <route xmlns='urn:switchboard:router'/> envelope
     * as its bytes data[0..env->len), delimited by the scanner
     * (common/xml_scan.h) instead of parsed; no prefixed names in it, no
     * attribute twice on it. The router is trusted to send well-formed
     * XML, the scanner checks what xml_scan.h says. Return 0 if handled,
     * -1 to have it parsed and passed to on_stanza as usual. */
    int (*on_raw_route)(component *c, const char *data, const xml_scanned *env, void *ud);
} component_handler;

component *component_new(uv_loop_t *loop, const component_config *cfg,
                         const component_handler *h, void *ud);
/* Ask for an extra name (before or after connecting; kept across reconnects).
 * is_default: become the default route (s2s). */
void component_bind(component *c, const char *name, int is_default);
/* Start connecting. */
void component_start(component *c);
/* 1 when connected and ready to send. */
int component_ready(const component *c);
const char *component_name(const component *c);
/* Send an element (original bytes when unchanged). Returns 0, or -1 when
 * not connected (the caller decides: bounce, queue, or drop with a log line). */
int component_send(component *c, const xnode *el);
int component_send_raw(component *c, const char *data, size_t len);
/* Wrap el in <route to from> (from = our name) and send it. attrs: NULL or
 * a NULL-terminated list of name, value pairs added to the envelope. */
int component_route(component *c, const char *to, const xnode *el, const char *const *attrs);
/* 0 while the router connection's write queue is above its high-water mark. */
int component_writable(const component *c);
/* Close the connection (unbinding everything) and stop reconnecting.
 * on_done is called when the connection is gone (may be NULL). */
void component_stop(component *c, void (*on_done)(component *c, void *ud));
void component_free(component *c);

#endif
