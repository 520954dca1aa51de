#include "common/component.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/conn.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/xml_stream.h"
#include "common/xml_write.h"

#define HANDSHAKE_TIMEOUT_MS 15000

typedef enum {
    CS_IDLE,          /* not connected; maybe waiting to reconnect */
    CS_RESOLVING,
    CS_CONNECTING,
    CS_HEADER,        /* header sent, waiting for the router's */
    CS_HANDSHAKE,     /* handshake sent */
    CS_BINDING,       /* binds sent, waiting for answers */
    CS_READY,
    CS_STOPPED,
} component_state;

typedef struct bound_name {
    char *name;
    int is_default;
    int confirmed;
} bound_name;

struct component {
    uv_loop_t *loop;
    component_config cfg;
    char *name, *secret, *router_host;
    const component_handler *h;
    void *ud;

    component_state state;
    conn *conn;
    xml_stream *xs;
    uv_timer_t reconnect_timer;
    uv_getaddrinfo_t resolver;
    unsigned attempt;
    int resolver_busy;
    int freed;          /* component_free was called */

    bound_name *binds;
    size_t nbinds;
    buf out;            /* reused for serialisation */
    int raw;            /* raw routes: 0 not yet (parser has a partial element), 1 on, -1 off for this connection */
    buf pending;        /* raw routes: bytes of an incomplete element */
    void (*on_done)(component *c, void *ud);
};

static const conn_handler component_conn_handler;
static void component_connect(component *c);

static xs_action on_stream_open(void *ud, stanza *header);
static xs_action on_element(void *ud, stanza *st);
static void on_stream_close(void *ud);
static const xml_stream_handler component_xml_handler = {on_stream_open, on_element, on_stream_close};

component *component_new(uv_loop_t *loop, const component_config *cfg,
                         const component_handler *h, void *ud)
{
    component *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->loop = loop;
    c->cfg = *cfg;
    c->name = strdup(cfg->name);
    c->secret = strdup(cfg->secret);
    c->router_host = strdup(cfg->router_host ? cfg->router_host : "127.0.0.1");
    if (!c->name || !c->secret || !c->router_host) abort();
    if (!c->cfg.reconnect_min_ms) c->cfg.reconnect_min_ms = 100;
    if (!c->cfg.reconnect_max_ms) c->cfg.reconnect_max_ms = 10000;
    if (!c->cfg.max_stanza_bytes) c->cfg.max_stanza_bytes = 1024 * 1024;
    c->h = h;
    c->ud = ud;
    c->state = CS_IDLE;
    uv_timer_init(loop, &c->reconnect_timer);
    c->reconnect_timer.data = c;

    xml_limits lim;
    xml_limits_default(&lim);
    lim.max_stanza_bytes = c->cfg.max_stanza_bytes;
    lim.max_depth = 64;   /* envelopes add levels to client stanzas */
    c->xs = xml_stream_new(&lim, &component_xml_handler, c);
    return c;
}

const char *component_name(const component *c)
{
    return c->name;
}

int component_ready(const component *c)
{
    return c->state == CS_READY;
}

int component_writable(const component *c)
{
    return c->state == CS_READY && conn_writable(c->conn);
}

static void send_bind(component *c, const bound_name *b)
{
    buf_reset(&c->out);
    buf_append_str(&c->out, "<bind xmlns='" NS_SB_ROUTER "' name='");
    xml_escape_attr(&c->out, b->name, strlen(b->name));
    buf_append_str(&c->out, b->is_default ? "' default='true'/>" : "'/>");
    conn_write(c->conn, c->out.data, c->out.len);
}

void component_bind(component *c, const char *name, int is_default)
{
    for (size_t i = 0; i < c->nbinds; i++)
        if (!strcmp(c->binds[i].name, name)) return;
    bound_name *nb = realloc(c->binds, (c->nbinds + 1) * sizeof *nb);
    if (!nb) abort();
    c->binds = nb;
    bound_name *b = &c->binds[c->nbinds++];
    b->name = strdup(name);
    if (!b->name) abort();
    b->is_default = is_default;
    b->confirmed = 0;
    /* Already up: bind now; otherwise it is sent after the handshake. */
    if (c->state == CS_READY || c->state == CS_BINDING) send_bind(c, b);
}

/* The timer's data is the component (not the timer itself). */
static void on_reconnect_timer(uv_timer_t *t)
{
    component_connect(t->data);
}

static void schedule_reconnect(component *c)
{
    if (c->state == CS_STOPPED || c->freed) return;
    uint64_t delay = c->cfg.reconnect_min_ms;
    for (unsigned i = 0; i < c->attempt && delay < c->cfg.reconnect_max_ms; i++) delay *= 2;
    if (delay > c->cfg.reconnect_max_ms) delay = c->cfg.reconnect_max_ms;
    /* Jitter of up to a quarter, so restarted processes do not reconnect in lockstep. */
    unsigned r;
    random_bytes(&r, sizeof r);
    delay = delay - delay / 4 + (delay / 2 ? r % (delay / 2 + 1) : 0);
    c->attempt++;
    c->state = CS_IDLE;
    log_info("component %s: reconnecting to router in %llu ms", c->name, (unsigned long long)delay);
    uv_timer_start(&c->reconnect_timer, on_reconnect_timer, delay, 0);
}

static void connect_to(component *c, const struct sockaddr *addr)
{
    conn_limits lim;
    conn_limits_default(&lim);
    /* A process's link to the router carries everybody's traffic. */
    lim.write_high_water = 1024 * 1024;
    lim.write_max = 64 * 1024 * 1024;
    c->state = CS_CONNECTING;
    xml_stream_reset(c->xs);
    c->raw = 0;
    buf_reset(&c->pending);
    c->conn = conn_connect(c->loop, addr, &lim, &component_conn_handler, c);
    if (!c->conn) {
        log_warn("component %s: cannot connect to router %s:%d", c->name, c->router_host, c->cfg.router_port);
        schedule_reconnect(c);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    component *c = req->data;
    c->resolver_busy = 0;
    if (c->freed) {
        if (res) uv_freeaddrinfo(res);
        free(c);
        return;
    }
    if (c->state != CS_RESOLVING) {
        if (res) uv_freeaddrinfo(res);
        return;
    }
    if (status < 0 || !res) {
        log_warn("component %s: cannot resolve router host %s: %s", c->name, c->router_host, uv_strerror(status));
        schedule_reconnect(c);
        return;
    }
    connect_to(c, res->ai_addr);
    uv_freeaddrinfo(res);
}

static void component_connect(component *c)
{
    if (c->state == CS_STOPPED) return;
    struct sockaddr_storage ss;
    char port[16];
    if (uv_ip4_addr(c->router_host, c->cfg.router_port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(c->router_host, c->cfg.router_port, (struct sockaddr_in6 *)&ss) == 0) {
        connect_to(c, (struct sockaddr *)&ss);
        return;
    }
    snprintf(port, sizeof port, "%d", c->cfg.router_port);
    struct addrinfo hints = {0};
    hints.ai_socktype = SOCK_STREAM;
    c->resolver.data = c;
    c->state = CS_RESOLVING;
    c->resolver_busy = 1;
    if (uv_getaddrinfo(c->loop, &c->resolver, on_resolved, c->router_host, port, &hints) != 0) {
        c->resolver_busy = 0;
        schedule_reconnect(c);
    }
}

void component_start(component *c)
{
    c->attempt = 0;
    component_connect(c);
}

/* ---- connection events ---- */

static void on_connect(conn *cn, int status)
{
    component *c = conn_data(cn);
    if (status < 0) return;   /* on_close follows */
    c->state = CS_HEADER;
    conn_set_timeout(cn, HANDSHAKE_TIMEOUT_MS);
    buf_reset(&c->out);
    buf_append_str(&c->out, "<?xml version='1.0'?><stream:stream xmlns='" NS_COMPONENT
                            "' xmlns:stream='" NS_STREAMS "' to='");
    xml_escape_attr(&c->out, c->name, strlen(c->name));
    buf_append_str(&c->out, "'>");
    conn_write(cn, c->out.data, c->out.len);
}

/* Bytes for the parser; -1 when it stopped before their end (an error:
 * the connection is closing; or a handler paused it). */
static int feed_parser(component *c, const char *data, size_t len)
{
    size_t consumed;
    xml_err err = xml_stream_feed(c->xs, data, len, &consumed);
    if (err != XML_OK) {
        log_error("component %s: bad XML from router: %s", c->name, xml_stream_error_text(c->xs));
        if (c->conn) conn_abort(c->conn, "bad xml from router");
        return -1;
    }
    return consumed < len ? -1 : 0;
}

/* Raw routes: a route envelope the handler may take as bytes. */
static int raw_route(const xml_scanned *s)
{
    return xml_span_is(s->name, "route") && xml_span_is(s->ns, NS_SB_ROUTER) && !s->prefixed && !s->dup_attr &&
           !s->attrs_dropped;
}

/* Whole elements from p[0..n): envelopes offered to on_raw_route, the rest
 * (and what it declines) fed to the parser. Returns the bytes used (the
 * rest is an incomplete element), n once the parser gets everything. */
static size_t raw_elements(component *c, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (!c->conn) return n;
        if (c->state != CS_READY) break;   /* stopping: the parser sees the rest, as it always did */
        if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n') { i++; continue; }
        xml_scanned s;
        xml_scan_result rv = xml_scan_element(p + i, n - i, XML_SCAN_DEFAULT_DEPTH, &s);
        if (rv == XML_SCAN_INCOMPLETE && n - i <= c->cfg.max_stanza_bytes) return i;
        if (rv != XML_SCAN_DONE) break;   /* the stream's end, an error, anything unexpected */
        if ((!raw_route(&s) || c->h->on_raw_route(c, p + i, &s, c->ud) != 0) && feed_parser(c, p + i, s.len) != 0) {
            c->raw = -1;   /* as without raw routes, what follows a stop is not read here */
            return n;
        }
        i += s.len;
    }
    if (i < n && c->conn) {
        /* from here on the parser sees everything, and says what is wrong */
        c->raw = -1;
        feed_parser(c, p + i, n - i);
    }
    return n;
}

static void on_read(conn *cn, const char *data, size_t len)
{
    component *c = conn_data(cn);
    if (c->raw > 0) {
        buf *pend = &c->pending;
        if (pend->len == 0) {
            size_t used = raw_elements(c, data, len);
            if (used < len && c->conn && c->raw > 0) buf_append(pend, data + used, len - used);
            return;
        }
        buf_append(pend, data, len);
        size_t used = raw_elements(c, pend->data, pend->len);
        if (!c->conn || c->raw < 0) buf_reset(pend);
        else buf_consume(pend, used);
        return;
    }
    if (feed_parser(c, data, len) != 0) return;
    /* Raw routes start at an element boundary once the link is up. */
    if (!c->raw && c->cfg.raw_routes && c->h->on_raw_route && c->state == CS_READY &&
        xml_stream_pending_bytes(c->xs) == 0)
        c->raw = 1;
}

static void on_timeout(conn *cn)
{
    component *c = conn_data(cn);
    log_warn("component %s: router did not complete the handshake in time", c->name);
    conn_abort(cn, "handshake timeout");
}

static void on_close(conn *cn, const char *reason)
{
    component *c = conn_data(cn);
    int was_ready = c->state == CS_READY || c->state == CS_BINDING;
    c->conn = NULL;
    for (size_t i = 0; i < c->nbinds; i++) c->binds[i].confirmed = 0;
    if (c->state == CS_STOPPED) {
        if (c->on_done) c->on_done(c, c->ud);
        return;
    }
    buf_reset(&c->pending);
    log_warn("component %s: connection to router lost: %s", c->name, reason);
    c->state = CS_IDLE;
    if (c->h->on_lost) c->h->on_lost(c, reason, c->ud);
    if (was_ready) c->attempt = 0;
    schedule_reconnect(c);
}

/* For a connection whose component is being freed: nothing to tell anyone. */
static void on_close_detached(conn *cn, const char *reason)
{
    (void)cn;
    (void)reason;
}
static const conn_handler detached_conn_handler = {.on_close = on_close_detached};

static const conn_handler component_conn_handler = {
    .on_read = on_read,
    .on_connect = on_connect,
    .on_timeout = on_timeout,
    .on_close = on_close,
};

/* ---- stream events ---- */

static void became_ready(component *c)
{
    c->state = CS_READY;
    c->attempt = 0;
    conn_set_timeout(c->conn, 0);
    log_notice("component %s: connected to router %s:%d", c->name, c->router_host, c->cfg.router_port);
    if (c->h->on_ready) c->h->on_ready(c, c->ud);
}

static void check_binds_done(component *c)
{
    for (size_t i = 0; i < c->nbinds; i++)
        if (!c->binds[i].confirmed) return;
    if (c->state == CS_BINDING) became_ready(c);
}

static xs_action on_stream_open(void *ud, stanza *header)
{
    component *c = ud;
    const char *id = xnode_attr(header->root, "id");
    if (c->state != CS_HEADER || !id || !*id) {
        log_error("component %s: router sent a stream header without an id", c->name);
        stanza_free(header);
        conn_abort(c->conn, "bad stream header");
        return XS_PAUSE;
    }
    buf digest_input = BUF_INIT;
    buf_append_str(&digest_input, id);
    buf_append_str(&digest_input, c->secret);
    char hex[2 * SHA1_LEN + 1];
    sha1_hex(digest_input.data, digest_input.len, hex);
    crypto_wipe(digest_input.data, digest_input.len);
    buf_free(&digest_input);
    buf_reset(&c->out);
    buf_printf(&c->out, "<handshake>%s</handshake>", hex);
    conn_write(c->conn, c->out.data, c->out.len);
    c->state = CS_HANDSHAKE;
    stanza_free(header);
    return XS_CONTINUE;
}

static void handle_bind_answer(component *c, const xnode *el)
{
    const char *name = xnode_attr(el, "name");
    const char *type = xnode_attr(el, "type");
    if (!name) return;
    for (size_t i = 0; i < c->nbinds; i++) {
        bound_name *b = &c->binds[i];
        if (strcmp(b->name, name)) continue;
        if (type && !strcmp(type, "error")) {
            const xnode *cond = xnode_first_element(el);
            const char *condition = cond ? cond->name : "undefined-condition";
            log_error("component %s: router refused to bind '%s': %s", c->name, name, condition);
            if (c->h->on_bind_failed) c->h->on_bind_failed(c, name, condition, c->ud);
        } else {
            log_info("component %s: bound '%s'%s", c->name, name, b->is_default ? " as default route" : "");
        }
        /* Answered either way: a refused name does not keep the component from running. */
        b->confirmed = 1;
    }
    check_binds_done(c);
}

static xs_action on_element(void *ud, stanza *st)
{
    component *c = ud;
    xnode *el = st->root;
    if (xnode_is(el, "error", NS_STREAMS)) {
        xnode *cond = xnode_first_element(el);
        log_error("component %s: stream error from router: %s", c->name, cond ? cond->name : "?");
        stanza_free(st);
        conn_close(c->conn);
        return XS_PAUSE;
    }
    if (c->state == CS_HANDSHAKE) {
        if (!xnode_is(el, "handshake", NULL)) {
            log_error("component %s: expected <handshake/> from router, got <%s/>", c->name, el->name);
            stanza_free(st);
            conn_abort(c->conn, "handshake failed");
            return XS_PAUSE;
        }
        stanza_free(st);
        if (c->nbinds == 0) {
            became_ready(c);
        } else {
            c->state = CS_BINDING;
            for (size_t i = 0; i < c->nbinds; i++) send_bind(c, &c->binds[i]);
        }
        return XS_CONTINUE;
    }
    if (c->state != CS_READY && c->state != CS_BINDING) {
        stanza_free(st);
        return XS_CONTINUE;
    }
    if (el->ns && !strcmp(el->ns, NS_SB_ROUTER)) {
        if (!strcmp(el->name, "bind")) {
            handle_bind_answer(c, el);
            stanza_free(st);
            return XS_CONTINUE;
        }
        if (!strcmp(el->name, "online") || !strcmp(el->name, "offline")) {
            const char *name = xnode_attr(el, "name");
            if (name && c->h->on_name) c->h->on_name(c, name, el->name[1] == 'n', c->ud);
            stanza_free(st);
            return XS_CONTINUE;
        }
    }
    if (c->h->on_stanza)
        c->h->on_stanza(c, st, c->ud);
    else
        stanza_free(st);
    return c->conn ? XS_CONTINUE : XS_PAUSE;
}

static void on_stream_close(void *ud)
{
    component *c = ud;
    log_warn("component %s: router closed the stream", c->name);
    if (c->conn) conn_close(c->conn);
}

/* ---- sending ---- */

int component_send_raw(component *c, const char *data, size_t len)
{
    if (c->state != CS_READY || !c->conn) return -1;
    conn_write(c->conn, data, len);
    return 0;
}

int component_send(component *c, const xnode *el)
{
    if (c->state != CS_READY || !c->conn) return -1;
    buf_reset(&c->out);
    xml_write(&c->out, el, NS_COMPONENT);
    conn_write(c->conn, c->out.data, c->out.len);
    return 0;
}

int component_route(component *c, const char *to, const xnode *el, const char *const *attrs)
{
    if (c->state != CS_READY || !c->conn) return -1;
    buf *o = &c->out;
    buf_reset(o);
    buf_append_str(o, "<route xmlns='" NS_SB_ROUTER "' to='");
    xml_escape_attr(o, to, strlen(to));
    buf_append_str(o, "' from='");
    xml_escape_attr(o, c->name, strlen(c->name));
    buf_append_str(o, "'");
    for (size_t i = 0; attrs && attrs[i] && attrs[i + 1]; i += 2) {
        buf_append_str(o, " ");
        buf_append_str(o, attrs[i]);
        buf_append_str(o, "='");
        xml_escape_attr(o, attrs[i + 1], strlen(attrs[i + 1]));
        buf_append_str(o, "'");
    }
    buf_append_str(o, ">");
    xml_write(o, el, NS_SB_ROUTER);
    buf_append_str(o, "</route>");
    conn_write(c->conn, o->data, o->len);
    return 0;
}

void component_stop(component *c, void (*on_done)(component *c, void *ud))
{
    component_state was = c->state;
    c->state = CS_STOPPED;
    c->on_done = on_done;
    uv_timer_stop(&c->reconnect_timer);
    if (c->conn) {
        if (was >= CS_HEADER) conn_write_str(c->conn, "</stream:stream>");
        conn_close(c->conn);
    } else if (on_done) {
        on_done(c, c->ud);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    component *c = h->data;
    if (!c->resolver_busy) free(c);   /* else on_resolved frees it */
}

void component_free(component *c)
{
    if (!c) return;
    c->state = CS_STOPPED;
    c->freed = 1;
    if (c->conn) {
        conn_set_data(c->conn, NULL);
        conn_set_handler(c->conn, &detached_conn_handler);
        conn_abort(c->conn, "component freed");
        c->conn = NULL;
    }
    xml_stream_free(c->xs);
    for (size_t i = 0; i < c->nbinds; i++) free(c->binds[i].name);
    free(c->binds);
    buf_free(&c->out);
    buf_free(&c->pending);
    crypto_wipe(c->secret, strlen(c->secret));
    free(c->secret);
    free(c->name);
    free(c->router_host);
    if (c->resolver_busy) uv_cancel((uv_req_t *)&c->resolver);
    uv_close((uv_handle_t *)&c->reconnect_timer, on_timer_closed);
}
