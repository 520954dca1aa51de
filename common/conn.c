/* A TCP connection on libuv with optional TLS over OpenSSL memory BIOs.
 *
 * Memory: idle connections are cheap. All connections of a thread (one
 * loop per thread) share one read buffer: libuv hands it out in alloc_cb and
 * the bytes are consumed synchronously in the read callback (copied into the
 * TLS input BIO or passed to on_read), so no connection keeps a buffer of
 * its own between reads. What only a closing or
 * connecting conn needs (the connect and shutdown requests, the close
 * reason) is allocated when it is needed, not carried by every conn.
 *
 * Writing: conn_write appends to the conn's pending output and puts the
 * conn on its thread's dirty list; a uv_prepare handle (one per thread, so
 * one per loop) writes every dirty conn's output just before the loop waits
 * for I/O, so that all a handler or a loop iteration wrote goes out in one
 * write() instead of one per message. Past write_coalesce bytes the output
 * goes at once. The pending buffer becomes the write request, freed when
 * the kernel has taken the bytes: a drained conn holds no write buffer.
 *
 * TLS: network bytes -> BIO_write(rbio) -> SSL_do_handshake / SSL_read ->
 * on_read; conn_write -> pending plaintext -> (flush) SSL_write -> drain
 * wbio -> uv_write.
 *
 * Closing: conn_close stops reading, queues close_notify (TLS), waits for
 * the write queue to empty, shuts the write side down and closes.
 * conn_abort closes at once. Both only mark the conn and start uv_close;
 * on_close runs from the uv_close callback (never from inside the caller's
 * handler), then the memory is freed. */
#include "common/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/buffer.h>
#include <openssl/err.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/tls.h"

#define DEFAULT_HIGH_WATER (256u * 1024u)
#define DEFAULT_WRITE_MAX (4u * 1024u * 1024u)
#define DEFAULT_READ_CHUNK (16u * 1024u)
#define DEFAULT_WRITE_COALESCE (64u * 1024u)
#define PENDING_MIN 512u            /* first allocation of a conn's pending output */
#define LISTEN_BACKLOG 1024
#define EXPORTER_LABEL "EXPORTER-Channel-Binding"
#define REASON_MAX 160

enum conn_state {
    CONN_OPEN,      /* reading and writing */
    CONN_CLOSING,   /* conn_close: flushing the queue, then shutdown */
    CONN_CLOSED,    /* uv_close started; on_close comes from its callback */
};

struct conn {
    uv_tcp_t tcp;               /* tcp.data = this conn */
    uv_connect_t *connect_req;  /* while an outgoing connect is under way */
    uv_timer_t *timer;          /* only when an idle timeout is set */
    uint64_t timeout_ms;

    conn_handler h;
    void *ud;
    conn_limits lim;
    uint64_t id;
    enum conn_state state;
    unsigned connecting : 1;    /* outgoing, connect not finished */
    unsigned reading : 1;       /* uv_read_start in effect */
    unsigned paused : 1;        /* the user asked for no reads */
    unsigned above_high : 1;    /* went above high water, on_drain owed */
    unsigned shutting_down : 1; /* uv_shutdown issued */
    unsigned notify_close : 1;  /* call on_close from the close callback */

    size_t in_flight;           /* bytes in uv_write requests whose callback has not run */
    /* Of in_flight, bytes the kernel had taken when the close started: the
     * cancelled requests' callbacks leave them out of on_unsent. */
    size_t close_taken;
    struct write_req *pend;     /* output not handed to libuv yet (plaintext) */
    conn *dirty_prev, *dirty_next;  /* on the thread's dirty list */
    unsigned dirty : 1;
    uint64_t write_requests;    /* uv_write requests issued */
    /* Plain writes refused because the conn was closing or its queue full,
     * kept (up to write_max bytes) for on_unsent. */
    struct write_req *dropped, **dropped_tail;
    size_t dropped_bytes;
    unsigned unsent_reported : 1;

    SSL *ssl;
    BIO *rbio, *wbio;           /* owned by ssl */
    unsigned tls_ready : 1;
    buf held;                   /* plaintext written before the handshake ended */
    char *servername;           /* SNI the client asked for (server side) */

    char *reason;               /* set when closing starts; passed to on_close */
    char peer[64];              /* "[" INET6_ADDRSTRLEN "]:65535" fits */
    char peer_ip[INET6_ADDRSTRLEN];
};

struct write_req {
    uv_write_t req;             /* first: the uv_write_t* is the write_req* */
    conn *c;
    struct write_req *next;     /* in conn.dropped only */
    size_t len;
    size_t cap;                 /* room in data while it is a conn's pending output */
    /* Plain requests of a conn with on_unsent: where each conn_write ends
     * in data, so that unsent bytes go back one conn_write per call. */
    size_t *ends;
    size_t nends, ends_cap;
    unsigned plain : 1;         /* plaintext conn_write bytes (not TLS records) */
    char data[];
};

/* --- the shared read buffer (one per thread, so one per loop) --- */

static _Thread_local struct {
    char *data;
    size_t cap;
    int busy;                   /* bytes in it are being handed to a handler */
    size_t live_conns;          /* freed when the last conn goes */
} shared_rd;

static void flusher_release(void);

static char *shared_buf_get(size_t want)
{
    if (shared_rd.cap < want) {
        char *p = realloc(shared_rd.data, want);
        if (!p) return NULL;
        shared_rd.data = p;
        shared_rd.cap = want;
    }
    return shared_rd.data;
}

static void shared_conn_gone(void)
{
    if (--shared_rd.live_conns == 0) flusher_release();
    if (shared_rd.live_conns == 0 && !shared_rd.busy) {
        free(shared_rd.data);
        shared_rd.data = NULL;
        shared_rd.cap = 0;
    }
}

static uint64_t next_conn_id = 1;   /* processes are single-threaded */

/* --- the write flusher (one per thread, so one per loop) --- */

enum flusher_state { FLUSHER_NONE, FLUSHER_READY, FLUSHER_CLOSING };

static _Thread_local struct {
    uv_prepare_t handle;        /* runs just before the loop waits for I/O */
    enum flusher_state state;
    conn *dirty;                /* conns with pending output */
} flusher;

static void flush_pending(conn *c);

static void flush_all(uv_prepare_t *h)
{
    while (flusher.dirty) flush_pending(flusher.dirty);
    uv_prepare_stop(h);
}

static void flusher_closed(uv_handle_t *h)
{
    (void)h;
    flusher.state = FLUSHER_NONE;
}

/* The flusher of loop, created on first use; 0 if it cannot serve this
 * loop (another loop on this thread, or closing): the caller writes at once. */
static int flusher_ready(uv_loop_t *loop)
{
    if (flusher.state == FLUSHER_NONE) {
        if (uv_prepare_init(loop, &flusher.handle) != 0) return 0;
        flusher.state = FLUSHER_READY;
    }
    return flusher.state == FLUSHER_READY && flusher.handle.loop == loop &&
           !uv_is_closing((uv_handle_t *)&flusher.handle);
}

/* Closed with the last conn so that the loop can end and be closed. */
static void flusher_release(void)
{
    if (flusher.state != FLUSHER_READY || uv_is_closing((uv_handle_t *)&flusher.handle)) return;
    flusher.state = FLUSHER_CLOSING;
    uv_close((uv_handle_t *)&flusher.handle, flusher_closed);
}

/* 1 if the conn is on the dirty list (now), 0 if it must write at once. */
static int mark_dirty(conn *c)
{
    if (c->dirty) return 1;
    if (!flusher_ready(c->tcp.loop)) return 0;
    c->dirty = 1;
    c->dirty_prev = NULL;
    c->dirty_next = flusher.dirty;
    if (flusher.dirty) flusher.dirty->dirty_prev = c;
    flusher.dirty = c;
    if (!uv_is_active((uv_handle_t *)&flusher.handle)) uv_prepare_start(&flusher.handle, flush_all);
    return 1;
}

static void unmark_dirty(conn *c)
{
    if (!c->dirty) return;
    if (c->dirty_prev) c->dirty_prev->dirty_next = c->dirty_next;
    else flusher.dirty = c->dirty_next;
    if (c->dirty_next) c->dirty_next->dirty_prev = c->dirty_prev;
    c->dirty_prev = c->dirty_next = NULL;
    c->dirty = 0;
}

void conn_limits_default(conn_limits *l)
{
    l->write_high_water = DEFAULT_HIGH_WATER;
    l->write_max = DEFAULT_WRITE_MAX;
    l->read_chunk = DEFAULT_READ_CHUNK;
    l->write_coalesce = DEFAULT_WRITE_COALESCE;
}

static void start_close(conn *c, const char *reason);
static void tls_flush(conn *c);
static void tls_pump(conn *c);
static void tls_trim_bios(conn *c);

/* --- accessors --- */

void *conn_data(const conn *c) { return c->ud; }
void conn_set_data(conn *c, void *ud) { c->ud = ud; }
void conn_set_handler(conn *c, const conn_handler *h) { c->h = *h; }
const char *conn_peer(const conn *c) { return c->peer; }
const char *conn_peer_ip(const conn *c) { return c->peer_ip; }
uint64_t conn_id(const conn *c) { return c->id; }
/* libuv's count is exact: it drops as the kernel takes bytes, even before
 * the write callbacks run. */
size_t conn_queued(const conn *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp) + c->held.len +
           (c->pend ? c->pend->len : 0);
}
uint64_t conn_write_requests(const conn *c) { return c->write_requests; }
int conn_writable(const conn *c) { return c->state == CONN_OPEN && conn_queued(c) <= c->lim.write_high_water; }
int conn_is_tls(const conn *c) { return c->ssl != NULL; }
int conn_tls_ready(const conn *c) { return c->ssl != NULL && c->tls_ready; }
SSL *conn_ssl(const conn *c) { return c->ssl; }
const char *conn_tls_servername(const conn *c) { return c->servername; }

/* --- creation and teardown --- */

static void format_peer(conn *c, const struct sockaddr *sa)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0, v6 = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        uv_inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            /* A v4 client on a dual-stack socket: show it as v4 so per-IP
             * limits and logs see one form. */
            uv_inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, sizeof ip);
        } else {
            uv_inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
            v6 = 1;
        }
    }
    snprintf(c->peer_ip, sizeof c->peer_ip, "%s", ip);
    snprintf(c->peer, sizeof c->peer, v6 ? "[%s]:%d" : "%s:%d", ip, port);
}

static conn *conn_new(uv_loop_t *loop, const conn_limits *lim, const conn_handler *h, void *ud)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (uv_tcp_init(loop, &c->tcp) != 0) {
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    if (lim) c->lim = *lim;
    else conn_limits_default(&c->lim);
    if (c->lim.read_chunk == 0) c->lim.read_chunk = DEFAULT_READ_CHUNK;
    if (c->lim.write_max == 0) c->lim.write_max = DEFAULT_WRITE_MAX;
    if (c->lim.write_high_water == 0 || c->lim.write_high_water > c->lim.write_max)
        c->lim.write_high_water = c->lim.write_max;
    /* Pending output never waits above the high water for the flusher. */
    if (c->lim.write_coalesce == 0) c->lim.write_coalesce = DEFAULT_WRITE_COALESCE;
    if (c->lim.write_coalesce > c->lim.write_high_water) c->lim.write_coalesce = c->lim.write_high_water;
    if (h) c->h = *h;
    c->ud = ud;
    c->id = next_conn_id++;
    c->state = CONN_OPEN;
    c->notify_close = 1;
    c->dropped_tail = &c->dropped;
    snprintf(c->peer, sizeof c->peer, "?");
    snprintf(c->peer_ip, sizeof c->peer_ip, "?");
    shared_rd.live_conns++;
    return c;
}

static void timer_closed(uv_handle_t *h) { free(h); }

static void write_req_free(struct write_req *w)
{
    if (!w) return;
    free(w->ends);
    free(w);
}

/* Give the plaintext of w back through on_unsent, one call per conn_write,
 * leaving out the writes that lie wholly within the first skip bytes (the
 * kernel took them). A write cut by skip is reported whole: the peer holds
 * only a prefix it cannot use. */
static void report_unsent(conn *c, const struct write_req *w, size_t skip)
{
    if (!w->plain || !c->notify_close || !c->h.on_unsent) return;
    size_t start = 0;
    for (size_t i = 0; i <= w->nends; i++) {
        size_t end = i < w->nends ? w->ends[i] : w->len;
        if (end > start && end > skip) c->h.on_unsent(c, w->data + start, end - start);
        start = end;
    }
}

static void tcp_closed(uv_handle_t *h)
{
    conn *c = h->data;
    /* Cancelled uv_write requests were reported from write_done just
     * before this; the writes that were never submitted come next. */
    struct write_req *w = c->dropped;
    c->dropped = NULL;
    c->dropped_tail = &c->dropped;
    c->unsent_reported = 1;
    while (w) {
        struct write_req *next = w->next;
        report_unsent(c, w, 0);
        write_req_free(w);
        w = next;
    }
    write_req_free(c->pend);   /* start_close took it; kept for safety */
    if (c->notify_close && c->h.on_close) c->h.on_close(c, c->reason ? c->reason : "closed");
    if (c->ssl) SSL_free(c->ssl);   /* frees rbio and wbio */
    buf_free(&c->held);
    free(c->servername);
    free(c->reason);
    free(c);
    shared_conn_gone();
}

/* Begin the end: no more reads, writes or timers; on_close follows from
 * the close callback. Safe to call repeatedly. */
static void keep_unsent_req(conn *c, struct write_req *w);

static void start_close(conn *c, const char *reason)
{
    if (c->state == CONN_CLOSED) return;
    c->state = CONN_CLOSED;
    /* What the kernel has taken of the requests still in flight. */
    size_t waiting = uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
    c->close_taken = c->in_flight > waiting ? c->in_flight - waiting : 0;
    unmark_dirty(c);
    if (c->pend) {
        struct write_req *w = c->pend;
        c->pend = NULL;
        keep_unsent_req(c, w);   /* after the requests in flight, in order */
    }
    c->reason = strndup(reason ? reason : "closed", REASON_MAX - 1);   /* NULL: on_close gets "closed" */
    if (c->timer) {
        uv_close((uv_handle_t *)c->timer, timer_closed);
        c->timer = NULL;
    }
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    /* Pending writes, the connect and the shutdown request are cancelled
     * by uv_close; their callbacks run before tcp_closed. */
    uv_close((uv_handle_t *)&c->tcp, tcp_closed);
}

/* --- writing --- */

static void note_queue_growth(conn *c)
{
    if (conn_queued(c) > c->lim.write_high_water) c->above_high = 1;
}

static void shutdown_done(uv_shutdown_t *req, int status)
{
    conn *c = req->data;
    (void)status;   /* the conn is closed either way */
    free(req);
    start_close(c, "closed");
}

static void maybe_finish_close(conn *c)
{
    if (c->state != CONN_CLOSING || c->in_flight > 0 || c->shutting_down || c->connecting) return;
    c->shutting_down = 1;
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req) {
        start_close(c, "closed");
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, shutdown_done) != 0) {
        free(req);
        start_close(c, "closed");
    }
}

static void write_done(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    conn *c = w->c;
    c->in_flight -= w->len;
    size_t taken = c->close_taken < w->len ? c->close_taken : w->len;
    c->close_taken -= taken;
    if (status < 0) {
        if (c->state != CONN_CLOSED) {
            char why[128];
            snprintf(why, sizeof why, "write error: %s", uv_strerror(status));
            start_close(c, why);
        }
        /* Not (completely) written: every conn_write the kernel did not
         * take whole is reported, each as its own call. */
        report_unsent(c, w, taken);
        write_req_free(w);
        return;
    }
    write_req_free(w);
    if (c->state == CONN_CLOSED) return;
    if (c->state == CONN_CLOSING) {
        maybe_finish_close(c);
        return;
    }
    if (c->above_high && conn_queued(c) < c->lim.write_high_water / 2) {
        c->above_high = 0;
        if (c->h.on_drain) c->h.on_drain(c);
    }
}

static struct write_req *write_req_new(conn *c, const void *data, size_t len, int plain)
{
    struct write_req *w = malloc(sizeof *w + len);
    if (!w) return NULL;
    memset(w, 0, sizeof *w);
    w->c = c;
    w->len = w->cap = len;
    w->plain = plain ? 1 : 0;
    memcpy(w->data, data, len);
    return w;
}

/* Keep a refused plain request for on_unsent (from the close callback). */
static void keep_unsent_req(conn *c, struct write_req *w)
{
    if (!w->plain || c->ssl || !c->h.on_unsent || !c->notify_close || c->unsent_reported ||
        c->dropped_bytes + w->len > c->lim.write_max) {
        if (w->plain && c->h.on_unsent && c->notify_close && !c->unsent_reported)
            log_warn("conn %llu: dropping %zu unsent bytes beyond write_max", (unsigned long long)c->id, w->len);
        write_req_free(w);
        return;
    }
    w->next = NULL;
    *c->dropped_tail = w;
    c->dropped_tail = &w->next;
    c->dropped_bytes += w->len;
}

/* Append to the pending output; -1 when out of memory. */
static int pending_append(conn *c, const void *data, size_t len)
{
    struct write_req *w = c->pend;
    size_t have = w ? w->len : 0;
    if (!w || w->cap - w->len < len) {
        size_t cap = w ? w->cap : PENDING_MIN;
        while (cap < have + len) cap *= 2;
        struct write_req *n = realloc(w, sizeof *n + cap);
        if (!n) return -1;
        if (!w) {
            memset(n, 0, sizeof *n);
            n->c = c;
            n->plain = c->ssl ? 0 : 1;
        }
        n->cap = cap;
        c->pend = w = n;
    }
    memcpy(w->data + w->len, data, len);
    w->len += len;
    if (w->plain && c->h.on_unsent) {
        if (w->nends == w->ends_cap) {
            size_t ncap = w->ends_cap ? w->ends_cap * 2 : 16;
            size_t *e = realloc(w->ends, ncap * sizeof *e);
            if (!e) return -1;
            w->ends = e;
            w->ends_cap = ncap;
        }
        w->ends[w->nends++] = w->len;
    }
    return 0;
}

/* A plain write that will not be sent: keep it for on_unsent, which runs
 * from the close callback (never from inside the caller's conn_write). */
static void keep_unsent(conn *c, const void *data, size_t len)
{
    if (c->ssl || !c->h.on_unsent || !c->notify_close || c->unsent_reported) return;
    if (c->dropped_bytes + len > c->lim.write_max) {
        log_warn("conn %llu: dropping %zu unsent bytes beyond write_max", (unsigned long long)c->id, len);
        return;
    }
    struct write_req *w = write_req_new(c, data, len, 1);
    if (w) keep_unsent_req(c, w);
}

/* Submit one write request (plaintext, or ciphertext when TLS is on). */
static void submit_write(conn *c, struct write_req *w)
{
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_done);
    if (rc != 0) {
        char why[128];
        snprintf(why, sizeof why, "write error: %s", uv_strerror(rc));
        start_close(c, why);
        keep_unsent_req(c, w);
        return;
    }
    c->in_flight += w->len;
    c->write_requests++;
}

/* Hand the pending output to the socket: as it is, or encrypted as one
 * batch of TLS records. */
static void flush_pending(conn *c)
{
    unmark_dirty(c);
    struct write_req *w = c->pend;
    if (!w) return;
    c->pend = NULL;
    if (!c->ssl) {
        submit_write(c, w);
        return;
    }
    const char *p = w->data;
    size_t len = w->len;
    while (len > 0 && c->state != CONN_CLOSED) {
        ERR_clear_error();
        size_t done = 0;
        if (SSL_write_ex(c->ssl, p, len, &done) != 1) {
            char why[REASON_MAX];
            snprintf(why, sizeof why, "tls error: %s", tls_last_error());
            start_close(c, why);
            break;
        }
        p += done;
        len -= done;
    }
    write_req_free(w);
    if (c->state == CONN_CLOSED) return;
    tls_flush(c);
    if (c->state != CONN_CLOSED) tls_trim_bios(c);
}

void conn_write(conn *c, const void *data, size_t len)
{
    if (len == 0) return;
    if (c->state != CONN_OPEN) {
        keep_unsent(c, data, len);
        return;
    }
    if (conn_queued(c) + len > c->lim.write_max) {
        start_close(c, "write queue full");
        keep_unsent(c, data, len);
        return;
    }
    if (c->ssl && !c->tls_ready) {
        buf_append(&c->held, data, len);
    } else {
        if (pending_append(c, data, len) != 0) {
            start_close(c, "out of memory");
            return;
        }
        if (c->pend->len >= c->lim.write_coalesce || !mark_dirty(c)) flush_pending(c);
        if (c->state == CONN_CLOSED) return;
    }
    note_queue_growth(c);
}

void conn_write_str(conn *c, const char *s)
{
    conn_write(c, s, strlen(s));
}

/* --- reading --- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    conn *c = h->data;
    (void)suggested;
    char *p = shared_rd.busy ? NULL : shared_buf_get(c->lim.read_chunk);
    *out = uv_buf_init(p, p ? (unsigned)c->lim.read_chunk : 0);
}

static void restart_timer(conn *c)
{
    if (c->timer) uv_timer_again(c->timer);
}

/* Hand plaintext to the user; the caller checks c->state afterwards. */
static void deliver(conn *c, const char *data, size_t len)
{
    if (c->state != CONN_OPEN || !c->h.on_read) return;
    c->h.on_read(c, data, len);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn *c = s->data;
    (void)b;
    if (nread == 0 || c->state != CONN_OPEN) return;
    if (nread < 0) {
        if (nread == UV_EOF) {
            start_close(c, "peer closed");
        } else if (nread == UV_ENOBUFS) {
            start_close(c, "out of memory");
        } else {
            char why[128];
            snprintf(why, sizeof why, "read error: %s", uv_strerror((int)nread));
            start_close(c, why);
        }
        return;
    }
    restart_timer(c);
    if (c->ssl) {
        if (BIO_write(c->rbio, b->base, (int)nread) != (int)nread) {
            start_close(c, "out of memory");
            return;
        }
        tls_pump(c);
    } else {
        shared_rd.busy++;
        deliver(c, b->base, (size_t)nread);
        shared_rd.busy--;
    }
}

static void update_reading(conn *c)
{
    int want = c->state == CONN_OPEN && !c->paused && !c->connecting;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0) c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

void conn_pause_read(conn *c)
{
    c->paused = 1;
    update_reading(c);
}

void conn_resume_read(conn *c)
{
    c->paused = 0;
    update_reading(c);
}

/* --- idle timeout --- */

static void timer_cb(uv_timer_t *t)
{
    conn *c = t->data;
    if (c->state == CONN_CLOSING) {
        /* The peer does not take what conn_close is flushing. */
        start_close(c, "close timeout");
    } else if (c->state == CONN_OPEN) {
        if (c->h.on_timeout) c->h.on_timeout(c);
        else start_close(c, "idle timeout");
    }
}

void conn_set_timeout(conn *c, uint64_t ms)
{
    if (c->state == CONN_CLOSED) return;
    c->timeout_ms = ms;
    if (ms == 0) {
        if (c->timer) {
            uv_close((uv_handle_t *)c->timer, timer_closed);
            c->timer = NULL;
        }
        return;
    }
    if (!c->timer) {
        c->timer = malloc(sizeof *c->timer);
        if (!c->timer) return;
        uv_timer_init(c->tcp.loop, c->timer);
        c->timer->data = c;
    }
    /* Repeats while idle: each further period without reads fires again. */
    uv_timer_start(c->timer, timer_cb, ms, ms);
}

/* --- accept / connect / listen --- */

static void set_nodelay(conn *c)
{
    /* Stanzas are small and latency matters more than packet count. */
    uv_tcp_nodelay(&c->tcp, 1);
}

conn *conn_accept(uv_stream_t *server, const conn_limits *lim, const conn_handler *h, void *ud)
{
    conn *c = conn_new(server->loop, lim, h, ud);
    if (!c) {
        log_error("accept: out of memory");
        return NULL;
    }
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc != 0) {
        log_warn("accept failed: %s", uv_strerror(rc));
        c->notify_close = 0;
        start_close(c, "accept failed");
        return NULL;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) format_peer(c, (struct sockaddr *)&ss);
    set_nodelay(c);
    update_reading(c);
    return c;
}

static void connect_cb(uv_connect_t *req, int status)
{
    conn *c = req->data;
    free(req);
    c->connect_req = NULL;
    c->connecting = 0;
    if (c->state == CONN_CLOSED) return;   /* cancelled by an abort */
    if (status < 0) {
        if (c->h.on_connect) c->h.on_connect(c, status);
        char why[128];
        snprintf(why, sizeof why, "connect failed: %s", uv_strerror(status));
        start_close(c, why);
        return;
    }
    set_nodelay(c);
    if (c->state == CONN_CLOSING) {
        maybe_finish_close(c);
        return;
    }
    update_reading(c);
    if (c->h.on_connect) c->h.on_connect(c, 0);
}

conn *conn_connect(uv_loop_t *loop, const struct sockaddr *addr, const conn_limits *lim,
                   const conn_handler *h, void *ud)
{
    conn *c = conn_new(loop, lim, h, ud);
    if (!c) {
        log_error("connect: out of memory");
        return NULL;
    }
    format_peer(c, addr);
    c->connect_req = malloc(sizeof *c->connect_req);
    int rc = UV_ENOMEM;
    if (c->connect_req) {
        c->connect_req->data = c;
        rc = uv_tcp_connect(c->connect_req, &c->tcp, addr, connect_cb);
        if (rc != 0) {
            free(c->connect_req);
            c->connect_req = NULL;
        }
    }
    if (rc != 0) {
        log_warn("connect to %s failed: %s", c->peer, uv_strerror(rc));
        c->notify_close = 0;   /* the caller never had it */
        start_close(c, "connect failed");
        return NULL;
    }
    c->connecting = 1;
    return c;
}

/* On failure after the handle was initialised, the handle is closed here
 * (uv_close without callback) so the loop can still end cleanly. */
int conn_listen(uv_loop_t *loop, uv_tcp_t *server, const char *addr, int port, int reuseport,
                uv_connection_cb cb)
{
    struct sockaddr_storage ss;
    int rc;
    memset(&ss, 0, sizeof ss);
    if (strchr(addr, ':')) rc = uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss);
    else rc = uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss);
    if (rc != 0) return rc;

    rc = uv_tcp_init_ex(loop, server, ss.ss_family);
    if (rc != 0) return rc;
    if (reuseport) {
        /* libuv 1.44 has no UV_TCP_REUSEPORT: set it on the socket that
         * uv_tcp_init_ex created, before bind. */
        uv_os_fd_t fd;
        int one = 1;
        rc = uv_fileno((uv_handle_t *)server, &fd);
        if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) rc = uv_translate_sys_error(errno);
        if (rc != 0) goto fail;
    }
    rc = uv_tcp_bind(server, (const struct sockaddr *)&ss, 0);
    if (rc != 0) goto fail;
    rc = uv_listen((uv_stream_t *)server, LISTEN_BACKLOG, cb);
    if (rc != 0) goto fail;
    return 0;
fail:
    uv_close((uv_handle_t *)server, NULL);
    return rc;
}

/* --- TLS --- */

static BIO *new_mem_bio(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    /* An empty memory BIO reports "retry" rather than EOF. */
    if (b) BIO_set_mem_eof_return(b, -1);
    return b;
}

/* An emptied memory BIO gives its buffer back, so that an idle TLS conn
 * keeps no record-sized buffers of ours (SSL_MODE_RELEASE_BUFFERS, set on
 * every SSL in tls_start, does the same for OpenSSL's own). Swapping in an
 * empty BUF_MEM is one small allocation; the BIO itself stays. */
static void bio_trim(BIO *b)
{
    BUF_MEM *bm = NULL;
    if (BIO_ctrl_pending(b) != 0) return;
    BIO_get_mem_ptr(b, &bm);
    if (!bm || bm->max == 0) return;
    BUF_MEM *empty = BUF_MEM_new();
    if (!empty) return;   /* keep the old buffer; it still works */
    BIO_set_mem_buf(b, empty, BIO_CLOSE);   /* frees the old BUF_MEM and its data */
}

static void tls_trim_bios(conn *c)
{
    bio_trim(c->rbio);
    bio_trim(c->wbio);
}

/* Send whatever the TLS engine has produced. */
static void tls_flush(conn *c)
{
    size_t pending;
    while (c->state != CONN_CLOSED && (pending = BIO_ctrl_pending(c->wbio)) > 0) {
        struct write_req *w = malloc(sizeof *w + pending);
        if (!w) {
            start_close(c, "out of memory");
            return;
        }
        memset(w, 0, sizeof *w);
        int n = BIO_read(c->wbio, w->data, (int)pending);
        if (n <= 0) {
            free(w);
            return;
        }
        w->c = c;
        w->len = w->cap = (size_t)n;
        submit_write(c, w);
    }
}

static void tls_fail(conn *c, const char *what)
{
    char why[REASON_MAX];
    snprintf(why, sizeof why, "tls error: %s", what ? what : tls_last_error());
    tls_flush(c);   /* an alert, if OpenSSL produced one */
    start_close(c, why);
}

static void tls_handshake_done(conn *c)
{
    c->tls_ready = 1;
    if (SSL_is_server(c->ssl)) {
        const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
        if (sni) c->servername = strdup(sni);
    }
    if (c->held.len > 0) {
        /* Plaintext written during the handshake goes out now, in order. */
        buf held = c->held;
        c->held = (buf)BUF_INIT;
        const char *p = held.data;
        size_t len = held.len;
        while (len > 0) {
            size_t done = 0;
            ERR_clear_error();
            if (SSL_write_ex(c->ssl, p, len, &done) != 1) {
                buf_free(&held);
                tls_fail(c, NULL);
                return;
            }
            p += done;
            len -= done;
        }
        buf_free(&held);
    }
    tls_flush(c);
    note_queue_growth(c);
}

/* Run the TLS engine on what rbio holds: finish the handshake, then
 * decrypt and deliver application data. */
static void tls_pump(conn *c)
{
    if (c->state != CONN_OPEN) return;
    if (!c->tls_ready) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            tls_flush(c);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
            tls_fail(c, NULL);
            return;
        }
        tls_handshake_done(c);
        if (c->state != CONN_OPEN) return;
        if (c->h.on_tls_ready) c->h.on_tls_ready(c);
        if (c->state != CONN_OPEN) return;
    }

    /* Decrypt into the shared read buffer unless its current bytes are
     * still being handled (a pump started from inside on_read), then use a
     * private one for this round. */
    char *out = NULL, *own = NULL;
    if (!shared_rd.busy) out = shared_buf_get(c->lim.read_chunk);
    if (!out) out = own = malloc(c->lim.read_chunk);
    if (!out) {
        start_close(c, "out of memory");
        return;
    }
    shared_rd.busy += own ? 0 : 1;
    while (c->state == CONN_OPEN) {
        size_t got = 0;
        ERR_clear_error();
        if (SSL_read_ex(c->ssl, out, c->lim.read_chunk, &got) == 1) {
            deliver(c, out, got);
            continue;
        }
        int e = SSL_get_error(c->ssl, 0);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        if (e == SSL_ERROR_ZERO_RETURN) start_close(c, "peer closed");
        else tls_fail(c, NULL);
        break;
    }
    shared_rd.busy -= own ? 0 : 1;
    free(own);
    /* Reading may have produced output (session tickets, key updates). */
    if (c->state != CONN_CLOSED) {
        tls_flush(c);
        tls_trim_bios(c);
    }
}

static int tls_start(conn *c, SSL_CTX *ctx)
{
    if (c->ssl || c->state != CONN_OPEN || !ctx) return -1;
    /* What was written before the switch (<proceed/>) goes out in the clear. */
    flush_pending(c);
    if (c->state != CONN_OPEN) return -1;
    ERR_clear_error();
    SSL *ssl = SSL_new(ctx);
    if (!ssl) return -1;
    BIO *rbio = new_mem_bio();
    BIO *wbio = new_mem_bio();
    if (!rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(ssl);
        return -1;
    }
    SSL_set_bio(ssl, rbio, wbio);
    /* Also set on the shipped contexts (common/tls.c); set here so that no
     * SSL of a conn, whatever its context, keeps its record buffers idle. */
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    c->ssl = ssl;
    c->rbio = rbio;
    c->wbio = wbio;
    c->tls_ready = 0;
    return 0;
}

int conn_starttls_server(conn *c, SSL_CTX *ctx, const char *pending, size_t pending_len)
{
    if (tls_start(c, ctx) != 0) return -1;
    SSL_set_accept_state(c->ssl);
    if (pending && pending_len > 0) {
        /* Copied into the BIO before anything can reuse the shared buffer
         * that pending may point into. */
        if (BIO_write(c->rbio, pending, (int)pending_len) != (int)pending_len) {
            start_close(c, "out of memory");
            return -1;
        }
        tls_pump(c);
    }
    return 0;
}

int conn_starttls_client(conn *c, SSL_CTX *ctx, const char *sni)
{
    if (tls_start(c, ctx) != 0) return -1;
    SSL_set_connect_state(c->ssl);
    if (sni && *sni) {
        struct in6_addr a6;
        struct in_addr a4;
        /* SNI carries host names only, never address literals. */
        int is_ip = uv_inet_pton(AF_INET, sni, &a4) == 0 || uv_inet_pton(AF_INET6, sni, &a6) == 0;
        if (!is_ip && !SSL_set_tlsext_host_name(c->ssl, sni)) return -1;
        if (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) {
            /* Verification checks the certificate against this name. */
            if (!SSL_set1_host(c->ssl, sni)) return -1;
        }
    }
    tls_pump(c);   /* sends the ClientHello */
    return c->state == CONN_CLOSED ? -1 : 0;
}

int conn_tls_exporter(const conn *c, unsigned char out[32])
{
    if (!c->ssl || !c->tls_ready) return -1;
    /* RFC 9266 requires TLS 1.3 (or TLS 1.2 with extended master secret);
     * only TLS 1.3 is offered here. */
    if (SSL_version(c->ssl) != TLS1_3_VERSION) return -1;
    if (SSL_export_keying_material(c->ssl, out, 32, EXPORTER_LABEL, strlen(EXPORTER_LABEL), NULL, 0, 0) != 1) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/* --- closing --- */

void conn_close(conn *c)
{
    if (c->state != CONN_OPEN) return;
    flush_pending(c);   /* what was written before the close goes first */
    if (c->state != CONN_OPEN) return;
    c->state = CONN_CLOSING;
    c->paused = 1;
    update_reading(c);
    buf_free(&c->held);   /* the handshake never finished: nothing to protect it */
    if (c->ssl && c->tls_ready) {
        ERR_clear_error();
        SSL_shutdown(c->ssl);   /* queues close_notify; we do not wait for the peer's */
        ERR_clear_error();
        tls_flush(c);
    }
    if (c->state != CONN_CLOSING) return;
    /* The idle timer, if any, now bounds how long the flush may take. */
    if (c->timer) uv_timer_start(c->timer, timer_cb, c->timeout_ms, 0);
    maybe_finish_close(c);
}

void conn_abort(conn *c, const char *reason)
{
    start_close(c, reason ? reason : "aborted");
}
