/* conn and tls: a real libuv loop in-process, a listening server and a
 * conn_connect client on 127.0.0.1, plain and TLS. Every wait is bounded by
 * a watchdog timer so a hang fails the test instead of blocking. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/buffer.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/buf.h"
#include "common/conn.h"
#include "common/tls.h"
#include "t/unit/tap.h"

static uv_loop_t loop;

typedef struct side side;
struct side {
    const char *name;
    conn *c;
    conn_limits lim;
    buf got;
    buf unsent;                      /* on_unsent data, concatenated */
    int unsent_calls, unsent_after_close, unsent_whole;
    int reads, closes, tls_ready, drains, timeouts, connects, connect_status;
    char reason[200];
    uint64_t id;

    /* behaviour */
    int echo;
    int close_in_read;               /* 1: conn_close x2; 2: conn_abort x2 then conn_close */
    const char *starttls_marker;     /* server: switch to TLS when this arrives */
    SSL_CTX *tls_ctx;                /* server ctx (marker or direct), or client ctx */
    int direct_tls;                  /* server: TLS from the first byte */
    size_t pending_len;              /* bytes after the marker fed as TLS input */
    int pause_on_accept;
    uint64_t timeout_ms;
    int close_on_timeout;
    int no_timeout_handler;          /* server: accept with on_timeout = NULL */
    int drain_writable;              /* conn_writable() seen inside on_drain */
    size_t drain_queued;             /* conn_queued() seen inside on_drain */
    size_t batch_queued;             /* conn_queued() right after hook_batch_then_close's writes */
    uint64_t batch_requests;         /* conn_write_requests() at that moment */
    int tls_version;
    void (*connect_hook)(side *s);
    void (*read_hook)(side *s, const char *d, size_t n);
    void (*ready_hook)(side *s);
};

static void side_init(side *s, const char *name)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    conn_limits_default(&s->lim);
}

static void side_free(side *s)
{
    buf_free(&s->got);
    buf_free(&s->unsent);
}

/* --- handlers --- */

static void h_read(conn *c, const char *d, size_t n)
{
    side *s = conn_data(c);
    s->reads++;
    if (s->starttls_marker && !conn_is_tls(c)) {
        const char *m = memmem(d, n, s->starttls_marker, strlen(s->starttls_marker));
        if (m) {
            size_t skip = (size_t)(m - d) + strlen(s->starttls_marker);
            buf_append(&s->got, d, (size_t)(m - d));
            s->pending_len = n - skip;
            conn_starttls_server(c, s->tls_ctx, d + skip, n - skip);
            return;
        }
    }
    buf_append(&s->got, d, n);
    if (s->close_in_read == 1) {
        conn_close(c);
        conn_close(c);
        return;
    }
    if (s->close_in_read == 2) {
        conn_abort(c, "abort from on_read");
        conn_abort(c, "second abort");
        conn_close(c);
        return;
    }
    if (s->echo) conn_write(c, d, n);
    if (s->read_hook) s->read_hook(s, d, n);
}

static void h_connect(conn *c, int status)
{
    side *s = conn_data(c);
    s->connects++;
    s->connect_status = status;
    if (status == 0 && s->connect_hook) s->connect_hook(s);
}

static void h_tls_ready(conn *c)
{
    side *s = conn_data(c);
    s->tls_ready++;
    s->tls_version = SSL_version(conn_ssl(c));
    if (s->ready_hook) s->ready_hook(s);
}

static void h_drain(conn *c)
{
    side *s = conn_data(c);
    s->drains++;
    s->drain_writable = conn_writable(c);
    s->drain_queued = conn_queued(c);
}

static void h_timeout(conn *c)
{
    side *s = conn_data(c);
    s->timeouts++;
    if (s->close_on_timeout) conn_close(c);
}

/* Writes in the unsent tests are whole "<m n='i'/>" elements (or zero
 * chunks); count calls that are not exactly one such element. */
static void h_unsent(conn *c, const char *d, size_t n)
{
    side *s = conn_data(c);
    s->unsent_calls++;
    if (s->closes) s->unsent_after_close++;
    if (n >= 4 && memcmp(d, "<m n", 4) == 0 && d[n - 1] == '>' && memchr(d + 1, '<', n - 1) == NULL) s->unsent_whole++;
    buf_append(&s->unsent, d, n);
}

static void h_close(conn *c, const char *reason)
{
    side *s = conn_data(c);
    s->closes++;
    snprintf(s->reason, sizeof s->reason, "%s", reason ? reason : "(null)");
    s->id = conn_id(c);
    s->c = NULL;
}

static const conn_handler handler = {
    .on_read = h_read, .on_connect = h_connect, .on_tls_ready = h_tls_ready, .on_drain = h_drain,
    .on_timeout = h_timeout, .on_unsent = h_unsent, .on_close = h_close,
};
static const conn_handler handler_no_timeout = {
    .on_read = h_read, .on_connect = h_connect, .on_tls_ready = h_tls_ready, .on_drain = h_drain,
    .on_unsent = h_unsent, .on_close = h_close,
};

/* --- loop helpers --- */

static void watchdog_fired(uv_timer_t *t) { *(int *)t->data = 1; }

typedef int (*pred_fn)(void *);

/* Run the loop until done(arg) or ms elapse. Returns 1 if done. */
/* Deadlines stretch under a slow tool such as valgrind
 * (SWITCHBOARD_TEST_TIME_SCALE, a factor; ./switchboard test sets it). */
static unsigned time_scale(void)
{
    const char *s = getenv("SWITCHBOARD_TEST_TIME_SCALE");
    int f = s ? atoi(s) : 1;
    return f > 0 ? (unsigned)f : 1;
}

static int run_until(pred_fn done, void *arg, unsigned ms)
{
    ms *= time_scale();
    uv_timer_t wd;
    int fired = 0;
    uv_timer_init(&loop, &wd);
    wd.data = &fired;
    uv_timer_start(&wd, watchdog_fired, ms, 0);
    while (!done(arg) && !fired) uv_run(&loop, UV_RUN_ONCE);
    int ok = done(arg);
    uv_close((uv_handle_t *)&wd, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return ok;
}

static int never(void *a) { (void)a; return 0; }
/* Let the loop run for ms (to see that something does NOT happen). */
static void run_for(unsigned ms) { run_until(never, NULL, ms); }

typedef struct { side *a, *b; } pair;
static int both_closed(void *p) { pair *x = p; return x->a->closes > 0 && x->b->closes > 0; }
static int one_closed(void *p) { return ((side *)p)->closes > 0; }

typedef struct { side *s; size_t len; } want_bytes;
static int got_bytes(void *p) { want_bytes *w = p; return w->s->got.len >= w->len || w->s->closes > 0; }

static int got_tls(void *p) { pair *x = p; return (x->a->tls_ready && x->b->tls_ready) || x->a->closes || x->b->closes; }

/* --- server --- */

typedef struct server {
    uv_tcp_t tcp;
    side *srv;
    struct sockaddr_in addr;
} server;

static void on_connection(uv_stream_t *st, int status)
{
    server *sv = st->data;
    side *s = sv->srv;
    if (status != 0 || s->c || s->closes) return;   /* one connection per test */
    s->c = conn_accept(st, &s->lim, s->no_timeout_handler ? &handler_no_timeout : &handler, s);
    if (!s->c) return;
    if (s->direct_tls) conn_starttls_server(s->c, s->tls_ctx, NULL, 0);
    if (s->pause_on_accept) conn_pause_read(s->c);
    if (s->timeout_ms) conn_set_timeout(s->c, s->timeout_ms);
}

/* Listen on listen_addr, port 0; sv->addr is where clients connect
 * (127.0.0.1 and the chosen port). */
static int server_start_on(server *sv, side *s, const char *listen_addr)
{
    memset(sv, 0, sizeof *sv);
    sv->srv = s;
    int rc = conn_listen(&loop, &sv->tcp, listen_addr, 0, 0, on_connection);
    if (rc != 0) return rc;
    sv->tcp.data = sv;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    rc = uv_tcp_getsockname(&sv->tcp, (struct sockaddr *)&ss, &len);
    if (rc != 0) return rc;
    int port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                        : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return uv_ip4_addr("127.0.0.1", port, &sv->addr);
}

static int server_start(server *sv, side *s) { return server_start_on(sv, s, "127.0.0.1"); }

static void server_stop(server *sv)
{
    uv_close((uv_handle_t *)&sv->tcp, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static int client_start(side *cl, server *sv)
{
    cl->c = conn_connect(&loop, (struct sockaddr *)&sv->addr, &cl->lim, &handler, cl);
    return cl->c ? 0 : -1;
}

/* Close whatever is still open at the end of a test and let it finish. */
static void finish(side *a, side *b)
{
    if (a->c) conn_abort(a->c, "test end");
    if (b->c) conn_abort(b->c, "test end");
    pair p = {a, b};
    run_until(both_closed, &p, 2000);
    run_for(20);   /* a second on_close would show up here */
}

/* --- TLS material --- */

static char tmpdir[64];
static char cert_path[128], key_path[128], cert2_path[128], key2_path[128];
static SSL_CTX *server_ctx;

/* ========== tests ========== */

static void hook_write_hello(side *s) { conn_write_str(s->c, "hello, "); conn_write_str(s->c, "world\n"); }

static void test_plain_echo(void)
{
    side sv, cl;
    server srv;
    side_init(&sv, "server");
    side_init(&cl, "client");
    sv.echo = 1;
    cl.connect_hook = hook_write_hello;
    ok(server_start(&srv, &sv) == 0, "plain: listen on 127.0.0.1 port 0");
    ok(client_start(&cl, &srv) == 0, "plain: conn_connect returns a conn");

    char want_peer[64];
    snprintf(want_peer, sizeof want_peer, "127.0.0.1:%d", ntohs(srv.addr.sin_port));
    is_str(conn_peer(cl.c), want_peer, "plain: client's peer is the server address");
    is_str(conn_peer_ip(cl.c), "127.0.0.1", "plain: client's peer ip");
    uint64_t cid = conn_id(cl.c);

    want_bytes w = {&cl, 13};
    ok(run_until(got_bytes, &w, 5000), "plain: echo arrives");
    is_int(cl.connects, 1, "plain: on_connect called once");
    is_int(cl.connect_status, 0, "plain: connect status 0");
    is_str(buf_cstr(&cl.got), "hello, world\n", "plain: echoed bytes equal what was sent");
    ok(sv.c != NULL, "plain: server accepted");
    if (sv.c) {
        is_str(conn_peer_ip(sv.c), "127.0.0.1", "plain: server sees client ip");
        ok(strncmp(conn_peer(sv.c), "127.0.0.1:", 10) == 0, "plain: server peer has ip:port form");
        ok(conn_id(sv.c) > cid, "plain: conn ids increase");
        ok(!conn_is_tls(sv.c), "plain: not TLS");
    }
    is_int(conn_queued(cl.c), 0, "plain: nothing left queued");
    ok(conn_writable(cl.c), "plain: writable");

    conn_close(cl.c);
    pair p = {&sv, &cl};
    ok(run_until(both_closed, &p, 5000), "plain: both sides close after conn_close");
    is_str(cl.reason, "closed", "plain: closing side reason");
    is_str(sv.reason, "peer closed", "plain: other side sees peer closed");
    is_int(cl.id, cid, "plain: on_close gets the same conn");
    finish(&sv, &cl);
    is_int(sv.closes, 1, "plain: server on_close exactly once");
    is_int(cl.closes, 1, "plain: client on_close exactly once");
    server_stop(&srv);
    side_free(&sv);
    side_free(&cl);
}

#define SMALL_WRITES 20000
static void build_pattern(buf *b)
{
    for (int i = 0; i < SMALL_WRITES; i++) buf_printf(b, "<m n='%d'/>", i);
}

static void hook_many_writes(side *s)
{
    for (int i = 0; i < SMALL_WRITES; i++) {
        char one[32];
        int n = snprintf(one, sizeof one, "<m n='%d'/>", i);
        conn_write(s->c, one, (size_t)n);
    }
}

static void test_many_small_writes(void)
{
    side sv, cl;
    server srv;
    side_init(&sv, "server");
    side_init(&cl, "client");
    cl.connect_hook = hook_many_writes;
    sv.lim.read_chunk = 1000;   /* many reads too */
    buf want = BUF_INIT;
    build_pattern(&want);
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "small writes: connected");
    want_bytes w = {&sv, want.len};
    ok(run_until(got_bytes, &w, 10000), "small writes: all bytes arrive");
    is_int(sv.got.len, want.len, "small writes: length matches");
    ok(sv.got.len == want.len && memcmp(sv.got.data, want.data, want.len) == 0,
       "small writes: %d writes arrive complete and in order", SMALL_WRITES);
    ok(sv.reads > 1, "small writes: delivered over several reads of at most read_chunk");
    finish(&sv, &cl);
    is_int(sv.closes + cl.closes, 2, "small writes: one on_close per side");
    server_stop(&srv);
    buf_free(&want);
    side_free(&sv);
    side_free(&cl);
}

/* Write coalescing: what a handler writes goes out as one socket write
 * when the loop is next about to wait, in order; a close right after the
 * writes still delivers all of them; past write_coalesce bytes the pending
 * output goes at once. */
#define BATCH_WRITES 200
static void hook_batch_then_close(side *s)
{
    for (int i = 0; i < BATCH_WRITES; i++) {
        char one[32];
        int n = snprintf(one, sizeof one, "<m n='%d'/>", i);
        conn_write(s->c, one, (size_t)n);
    }
    s->batch_queued = conn_queued(s->c);            /* pending, not yet written */
    s->batch_requests = conn_write_requests(s->c);
    if (s->close_in_read == 3) conn_close(s->c);
}

static void test_coalescing(void)
{
    buf want = BUF_INIT;
    for (int i = 0; i < BATCH_WRITES; i++) buf_printf(&want, "<m n='%d'/>", i);

    for (int closing = 0; closing < 2; closing++) {
        const char *what = closing ? "coalesce+close" : "coalesce";
        side sv, cl;
        server srv;
        side_init(&sv, "server");
        side_init(&cl, "client");
        cl.connect_hook = hook_batch_then_close;
        cl.close_in_read = closing ? 3 : 0;
        ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "%s: connected", what);
        want_bytes w = {&sv, want.len};
        ok(run_until(got_bytes, &w, 5000), "%s: bytes arrive", what);
        ok(sv.got.len == want.len && memcmp(sv.got.data, want.data, want.len) == 0,
           "%s: %d writes arrive complete and in order", what, BATCH_WRITES);
        is_int(cl.batch_queued, want.len, "%s: the writes wait as pending output inside the handler", what);
        is_int(cl.batch_requests, 0, "%s: no socket write from inside the handler", what);
        if (closing) {
            pair p = {&sv, &cl};
            ok(run_until(both_closed, &p, 5000), "%s: both sides close", what);
            is_str(cl.reason, "closed", "%s: a graceful close", what);
            is_str(sv.reason, "peer closed", "%s: the reader sees the end after the data", what);
            is_int(cl.unsent_calls, 0, "%s: nothing reported unsent", what);
        } else {
            is_int(cl.c ? conn_write_requests(cl.c) : 0, 1, "%s: %d writes left as one socket write", what, BATCH_WRITES);
            is_int(cl.c ? conn_queued(cl.c) : 1, 0, "%s: nothing left queued", what);
        }
        finish(&sv, &cl);
        is_int(sv.closes + cl.closes, 2, "%s: one on_close per side", what);
        server_stop(&srv);
        side_free(&sv);
        side_free(&cl);
    }

    /* A low write_coalesce: the pending output goes at once when it passes it. */
    side sv, cl;
    server srv;
    side_init(&sv, "server");
    side_init(&cl, "client");
    cl.lim.write_coalesce = 1000;
    cl.connect_hook = hook_batch_then_close;
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "coalesce limit: connected");
    want_bytes w = {&sv, want.len};
    ok(run_until(got_bytes, &w, 5000), "coalesce limit: bytes arrive");
    ok(sv.got.len == want.len && memcmp(sv.got.data, want.data, want.len) == 0, "coalesce limit: complete and in order");
    ok(cl.batch_requests >= want.len / 1100, "coalesce limit: written at once past the limit (%llu writes)",
       (unsigned long long)cl.batch_requests);
    ok(cl.batch_queued < 1000, "coalesce limit: less than the limit left pending (%zu)", cl.batch_queued);
    finish(&sv, &cl);
    server_stop(&srv);
    side_free(&sv);
    side_free(&cl);
    buf_free(&want);
}

/* STARTTLS: a plain round trip, then the client sends the marker and its
 * ClientHello back to back and writes plaintext before the handshake ends. */
static void hook_starttls_client_read(side *s, const char *d, size_t n)
{
    (void)d;
    (void)n;
    if (conn_is_tls(s->c)) return;
    if (s->got.len >= 6 && memcmp(s->got.data, "plain\n", 6) == 0) {
        buf_reset(&s->got);
        conn_write_str(s->c, "STARTTLS\n");
        ok(conn_starttls_client(s->c, s->tls_ctx, "xmpp.example.test") == 0, "starttls: client switches");
        ok(conn_is_tls(s->c) && !conn_tls_ready(s->c), "starttls: client is TLS, handshake not done");
        conn_write_str(s->c, "secret before handshake;");   /* held until ready */
        ok(conn_queued(s->c) > 0, "starttls: held plaintext counts as queued");
    }
}

static void hook_ready_write(side *s) { conn_write_str(s->c, "secret after handshake\n"); }

static void hook_write_plain(side *s) { conn_write_str(s->c, "plain\n"); }

/* Memory BIOs of an idle TLS conn: empty and small. */
static int bio_small(SSL *ssl)
{
    BIO *bios[2] = {SSL_get_rbio(ssl), SSL_get_wbio(ssl)};
    for (int i = 0; i < 2; i++) {
        BUF_MEM *bm = NULL;
        if (BIO_ctrl_pending(bios[i]) != 0) return 0;
        BIO_get_mem_ptr(bios[i], &bm);
        if (bm && bm->max > 4096) return 0;
    }
    return 1;
}

static void check_tls_pair(const char *what, side *sv, side *cl, const char *sni)
{
    unsigned char a[32], b[32];
    memset(a, 0, sizeof a);
    memset(b, 0x55, sizeof b);
    ok(sv->c && cl->c, "%s: both open", what);
    if (!sv->c || !cl->c) return;
    is_int(sv->tls_ready, 1, "%s: server on_tls_ready once", what);
    is_int(cl->tls_ready, 1, "%s: client on_tls_ready once", what);
    ok(conn_tls_ready(sv->c) && conn_tls_ready(cl->c), "%s: both report TLS ready", what);
    is_int(cl->tls_version, TLS1_3_VERSION, "%s: TLS 1.3 negotiated", what);
    is_str(conn_tls_servername(sv->c), sni, "%s: server saw SNI", what);
    ok(conn_tls_servername(cl->c) == NULL, "%s: client side has no SNI record", what);
    is_int(conn_tls_exporter(sv->c, a), 0, "%s: server exporter available", what);
    is_int(conn_tls_exporter(cl->c, b), 0, "%s: client exporter available", what);
    ok(memcmp(a, b, 32) == 0, "%s: tls-exporter equal on both sides", what);
    unsigned char zero[32] = {0};
    ok(memcmp(a, zero, 32) != 0, "%s: exporter is not all zero", what);
    ok(bio_small(conn_ssl(sv->c)) && bio_small(conn_ssl(cl->c)), "%s: idle TLS conns keep no large BIO buffers", what);
}

static void test_starttls(void)
{
    side sv, cl;
    server srv;
    char err[256];
    side_init(&sv, "server");
    side_init(&cl, "client");
    sv.echo = 1;
    sv.starttls_marker = "STARTTLS\n";
    sv.tls_ctx = server_ctx;
    cl.tls_ctx = tls_client_ctx(1, cert_path, err, sizeof err);
    ok(cl.tls_ctx != NULL, "starttls: verifying client ctx with the self-signed cert as CA");
    cl.connect_hook = hook_write_plain;
    cl.read_hook = hook_starttls_client_read;
    cl.ready_hook = hook_ready_write;
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "starttls: connected");

    const char *want = "secret before handshake;secret after handshake\n";
    want_bytes w = {&cl, strlen(want)};
    ok(run_until(got_bytes, &w, 10000), "starttls: echo through TLS arrives");
    is_str(buf_cstr(&cl.got), want, "starttls: held and later plaintext echoed in order");
    is_str(buf_cstr(&sv.got), "plain\nsecret before handshake;secret after handshake\n",
           "starttls: server got plain bytes then decrypted bytes");
    ok(sv.pending_len > 0, "starttls: ClientHello bytes read with the marker were fed as TLS input");
    check_tls_pair("starttls", &sv, &cl, "xmpp.example.test");

    /* TLS close: close_notify, then the server reports the peer closed. */
    if (cl.c) conn_close(cl.c);
    pair p = {&sv, &cl};
    ok(run_until(both_closed, &p, 5000), "starttls: both close");
    is_str(sv.reason, "peer closed", "starttls: server sees close_notify / EOF as peer closed");
    is_str(cl.reason, "closed", "starttls: client reason");
    finish(&sv, &cl);
    is_int(sv.closes, 1, "starttls: server on_close once");
    is_int(cl.closes, 1, "starttls: client on_close once");
    server_stop(&srv);
    SSL_CTX_free(cl.tls_ctx);
    side_free(&sv);
    side_free(&cl);
}

static void hook_direct_tls_connect(side *s)
{
    conn_starttls_client(s->c, s->tls_ctx, "localhost");
    conn_write_str(s->c, "direct hello\n");
}

static void test_direct_tls(void)
{
    side sv, cl;
    server srv;
    char err[256];
    side_init(&sv, "server");
    side_init(&cl, "client");
    sv.echo = 1;
    sv.direct_tls = 1;
    sv.tls_ctx = server_ctx;
    cl.tls_ctx = tls_client_ctx(1, cert_path, err, sizeof err);
    cl.connect_hook = hook_direct_tls_connect;
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "direct tls: connected");
    pair p = {&sv, &cl};
    ok(run_until(got_tls, &p, 10000), "direct tls: handshake completes");
    want_bytes w = {&cl, 13};
    ok(run_until(got_bytes, &w, 5000), "direct tls: echo arrives");
    is_str(buf_cstr(&cl.got), "direct hello\n", "direct tls: echo content");
    /* 200 KB both ways in one write: many records, then idle. */
    buf big = BUF_INIT;
    for (int i = 0; big.len < 200 * 1024; i++) buf_printf(&big, "line %d of the big write\n", i);
    buf_reset(&cl.got);
    if (cl.c) conn_write(cl.c, big.data, big.len);
    want_bytes wb = {&cl, big.len};
    ok(run_until(got_bytes, &wb, 10000), "direct tls: large echo arrives");
    ok(cl.got.len == big.len && memcmp(cl.got.data, big.data, big.len) == 0, "direct tls: large echo intact");
    buf_free(&big);
    buf_reset(&cl.got);
    /* Small writes in one go are encrypted and sent as one batch. */
    buf small = BUF_INIT;
    uint64_t before = cl.c ? conn_write_requests(cl.c) : 0;
    for (int i = 0; cl.c && i < 50; i++) {
        char one[32];
        int n = snprintf(one, sizeof one, "<m n='%d'/>", i);
        conn_write(cl.c, one, (size_t)n);
        buf_append(&small, one, (size_t)n);
    }
    want_bytes ws = {&cl, small.len};
    ok(run_until(got_bytes, &ws, 5000), "direct tls: echo of 50 small writes arrives");
    ok(cl.got.len == small.len && memcmp(cl.got.data, small.data, small.len) == 0, "direct tls: small writes intact, in order");
    is_int(cl.c ? conn_write_requests(cl.c) - before : 0, 1, "direct tls: 50 small writes left as one socket write");
    buf_free(&small);
    buf_reset(&cl.got);
    check_tls_pair("direct tls", &sv, &cl, "localhost");
    /* Now abort twice and close from inside a TLS on_read. */
    cl.close_in_read = 2;
    if (cl.c) conn_write_str(cl.c, "bye\n");
    ok(run_until(both_closed, &p, 5000), "direct tls: both closed after abort in on_read");
    is_str(cl.reason, "abort from on_read", "direct tls: first abort's reason wins");
    ok(strcmp(sv.reason, "peer closed") == 0 || strncmp(sv.reason, "read error", 10) == 0,
       "direct tls: server sees the peer go (%s)", sv.reason);
    is_str(buf_cstr(&cl.got), "bye\n", "direct tls: second echo delivered once");
    int reads = cl.reads;
    run_for(30);
    is_int(cl.reads, reads, "direct tls: no reads after abort");
    finish(&sv, &cl);
    is_int(sv.closes, 1, "direct tls: server on_close once");
    is_int(cl.closes, 1, "direct tls: client on_close once");
    server_stop(&srv);
    SSL_CTX_free(cl.tls_ctx);
    side_free(&sv);
    side_free(&cl);
}

/* TLS 1.2 still works with the policy's suites; tls-exporter is refused. */
static void test_tls12(void)
{
    side sv, cl;
    server srv;
    char err[256];
    side_init(&sv, "server");
    side_init(&cl, "client");
    sv.echo = 1;
    sv.direct_tls = 1;
    sv.tls_ctx = server_ctx;
    cl.tls_ctx = tls_client_ctx(0, NULL, err, sizeof err);
    SSL_CTX_set_max_proto_version(cl.tls_ctx, TLS1_2_VERSION);
    cl.connect_hook = hook_direct_tls_connect;
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "tls1.2: connected");
    want_bytes w = {&cl, 13};
    ok(run_until(got_bytes, &w, 10000), "tls1.2: echo arrives");
    is_str(buf_cstr(&cl.got), "direct hello\n", "tls1.2: echo content");
    is_int(cl.tls_version, TLS1_2_VERSION, "tls1.2: negotiated TLS 1.2");
    if (cl.c && sv.c) {
        const char *cipher = SSL_get_cipher_name(conn_ssl(cl.c));
        ok(strncmp(cipher, "ECDHE-ECDSA-", 12) == 0, "tls1.2: ECDHE suite (%s)", cipher);
        unsigned char out[32];
        is_int(conn_tls_exporter(cl.c, out), -1, "tls1.2: no tls-exporter on the client");
        is_int(conn_tls_exporter(sv.c, out), -1, "tls1.2: no tls-exporter on the server");
        is_str(conn_tls_servername(sv.c), "localhost", "tls1.2: SNI seen");
    }
    finish(&sv, &cl);
    is_int(sv.closes + cl.closes, 2, "tls1.2: one on_close per side");
    server_stop(&srv);
    SSL_CTX_free(cl.tls_ctx);
    side_free(&sv);
    side_free(&cl);
}

static void hook_tls_connect_wrong_name(side *s)
{
    conn_starttls_client(s->c, s->tls_ctx, "not-in-the-cert.test");
    conn_write_str(s->c, "must never arrive\n");
}

static void test_tls_verify_fails(void)
{
    side sv, cl;
    server srv;
    char err[256];
    side_init(&sv, "server");
    side_init(&cl, "client");
    sv.direct_tls = 1;
    sv.tls_ctx = server_ctx;
    cl.tls_ctx = tls_client_ctx(1, cert_path, err, sizeof err);
    cl.connect_hook = hook_tls_connect_wrong_name;
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "verify: connected");
    pair p = {&sv, &cl};
    ok(run_until(both_closed, &p, 10000), "verify: name mismatch ends both sides");
    ok(strncmp(cl.reason, "tls error", 9) == 0, "verify: client reason is a tls error (%s)", cl.reason);
    is_int(cl.tls_ready + sv.tls_ready, 0, "verify: no side reported TLS ready");
    is_int(sv.got.len, 0, "verify: held plaintext never sent");
    finish(&sv, &cl);
    server_stop(&srv);
    SSL_CTX_free(cl.tls_ctx);
    side_free(&sv);
    side_free(&cl);
}

static void hook_tls_connect_plain(side *s) { conn_starttls_client(s->c, s->tls_ctx, "localhost"); }

static void test_tls11_refused(void)
{
    side sv, cl;
    server srv;
    side_init(&sv, "server");
    side_init(&cl, "client");
    sv.direct_tls = 1;
    sv.tls_ctx = server_ctx;
    /* A client that offers only TLS 1.0/1.1 (with the legacy suites those
     * need), so that the refusal comes from the server's policy. */
    cl.tls_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(cl.tls_ctx, 0);
    SSL_CTX_set_cipher_list(cl.tls_ctx, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(cl.tls_ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(cl.tls_ctx, TLS1_1_VERSION);
    cl.connect_hook = hook_tls_connect_plain;
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "tls1.1: connected");
    pair p = {&sv, &cl};
    ok(run_until(both_closed, &p, 10000), "tls1.1: handshake fails and both close");
    ok(strncmp(sv.reason, "tls error", 9) == 0, "tls1.1: server refuses with a tls error (%s)", sv.reason);
    ok(strstr(sv.reason, "version") != NULL || strstr(sv.reason, "protocol") != NULL,
       "tls1.1: the error is about the protocol version");
    ok(strncmp(cl.reason, "tls error", 9) == 0, "tls1.1: client sees a tls error (%s)", cl.reason);
    is_int(sv.tls_ready + cl.tls_ready, 0, "tls1.1: no TLS session established");
    finish(&sv, &cl);
    server_stop(&srv);
    SSL_CTX_free(cl.tls_ctx);
    side_free(&sv);
    side_free(&cl);
}

/* Server closes from inside on_read; later client bytes are not delivered. */
static void late_write(uv_timer_t *t)
{
    side *cl = t->data;
    if (cl->c) conn_write_str(cl->c, "late bytes\n");
}

static void test_close_in_read(void)
{
    side sv, cl;
    server srv;
    uv_timer_t late;
    side_init(&sv, "server");
    side_init(&cl, "client");
    sv.close_in_read = 1;
    cl.connect_hook = hook_write_hello;
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "close in read: connected");
    uv_timer_init(&loop, &late);
    late.data = &cl;
    /* The late bytes leave once the server has closed in its read callback,
     * so that they cannot arrive in the same read as the first ones. */
    run_until(one_closed, &sv, 5000);
    uv_timer_start(&late, late_write, 0, 0);
    pair p = {&sv, &cl};
    ok(run_until(both_closed, &p, 5000), "close in read: both closed");
    run_for(60);   /* the late write happens; nothing must be delivered */
    uv_close((uv_handle_t *)&late, NULL);
    is_int(sv.reads, 1, "close in read: exactly one on_read");
    ok(strstr(buf_cstr(&sv.got), "late") == NULL, "close in read: no bytes after close");
    is_str(sv.reason, "closed", "close in read: server reason");
    is_str(cl.reason, "peer closed", "close in read: client sees peer closed");
    finish(&sv, &cl);
    is_int(sv.closes, 1, "close in read: server on_close once despite two conn_close");
    is_int(cl.closes, 1, "close in read: client on_close once");
    server_stop(&srv);
    side_free(&sv);
    side_free(&cl);
}

/* Idle timeout: reads restart it; silence fires it. */
typedef struct { side *s; int left; } ticker;
static void tick_write(uv_timer_t *t)
{
    ticker *k = t->data;
    if (k->s->c && k->left-- > 0) conn_write_str(k->s->c, ".");
    if (k->left <= 0) uv_timer_stop(t);
}
static int timed_out(void *p) { return ((side *)p)->timeouts > 0 || ((side *)p)->closes > 0; }

static void test_idle_timeout(void)
{
    side sv, cl;
    server srv;
    uv_timer_t tick;
    side_init(&sv, "server");
    side_init(&cl, "client");
    sv.timeout_ms = 150;
    sv.close_on_timeout = 1;
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "timeout: connected");
    /* 8 bytes 40 ms apart: 320 ms of traffic, never 150 ms of silence. */
    ticker k = {&cl, 8};
    uv_timer_init(&loop, &tick);
    tick.data = &k;
    uv_timer_start(&tick, tick_write, 40, 40);
    want_bytes w = {&sv, 8};
    ok(run_until(got_bytes, &w, 5000), "timeout: ticks arrive");
    is_int(sv.timeouts, 0, "timeout: reads kept restarting the timer");
    uv_close((uv_handle_t *)&tick, NULL);
    ok(run_until(timed_out, &sv, 5000), "timeout: silence fires on_timeout");
    is_int(sv.timeouts, 1, "timeout: on_timeout called once");
    pair p = {&sv, &cl};
    ok(run_until(both_closed, &p, 5000), "timeout: conn_close from on_timeout closes both");
    is_str(sv.reason, "closed", "timeout: server closed itself");
    finish(&sv, &cl);
    is_int(sv.closes + cl.closes, 2, "timeout: one on_close per side");
    server_stop(&srv);
    side_free(&sv);
    side_free(&cl);

    /* No on_timeout handler: the conn is aborted. */
    side_init(&sv, "server");
    side_init(&cl, "client");
    sv.timeout_ms = 50;
    sv.no_timeout_handler = 1;
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "timeout abort: connected");
    p = (pair){&sv, &cl};
    ok(run_until(both_closed, &p, 5000), "timeout abort: closed without a handler");
    is_str(sv.reason, "idle timeout", "timeout abort: reason");
    is_int(sv.timeouts, 0, "timeout abort: no handler was called");
    finish(&sv, &cl);
    server_stop(&srv);
    side_free(&sv);
    side_free(&cl);
}

/* Back-pressure: a peer that does not read makes the queue pass write_max. */
typedef struct { side *s; size_t sent; int saw_unwritable; } flood;
static void flood_tick(uv_timer_t *t)
{
    flood *f = t->data;
    static char chunk[64 * 1024];
    for (int i = 0; i < 4 && f->s->c; i++) {
        conn_write(f->s->c, chunk, sizeof chunk);
        if (!f->s->c) break;
        f->sent += sizeof chunk;
        if (!conn_writable(f->s->c)) f->saw_unwritable = 1;
    }
    if (!f->s->c || f->s->closes) uv_timer_stop(t);
}

static void test_write_max(void)
{
    side sv, cl;
    server srv;
    uv_timer_t t;
    side_init(&sv, "server");
    side_init(&cl, "client");
    sv.pause_on_accept = 1;
    cl.lim.write_high_water = 128 * 1024;
    cl.lim.write_max = 1024 * 1024;
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "write_max: connected");
    flood f = {&cl, 0, 0};
    uv_timer_init(&loop, &t);
    t.data = &f;
    uv_timer_start(&t, flood_tick, 2, 2);
    ok(run_until(one_closed, &cl, 20000), "write_max: writer aborted while the peer does not read");
    uv_close((uv_handle_t *)&t, NULL);
    is_str(cl.reason, "write queue full", "write_max: reason");
    ok(f.saw_unwritable, "write_max: conn_writable() was 0 above high water first");
    ok(f.sent > cl.lim.write_max, "write_max: more than write_max was offered (%zu)", f.sent);
    is_int(sv.closes, 0, "write_max: the paused reader is still open");
    ok(cl.unsent_calls > 0 && cl.unsent.len >= 64 * 1024, "write_max: refused and queued writes reported unsent (%d calls)", cl.unsent_calls);
    is_int(cl.unsent.len % (64 * 1024), 0, "write_max: each unsent report is one whole write");
    is_int(cl.unsent_after_close, 0, "write_max: on_unsent comes before on_close");
    if (sv.c) conn_resume_read(sv.c);
    ok(run_until(one_closed, &sv, 10000), "write_max: reader sees the end after resuming");
    ok(sv.got.len > 0 && sv.got.len < f.sent, "write_max: reader got part of the data (%zu)", sv.got.len);
    finish(&sv, &cl);
    is_int(sv.closes + cl.closes, 2, "write_max: one on_close per side");
    server_stop(&srv);
    side_free(&sv);
    side_free(&cl);
}

/* Abort with writes queued: on_unsent gives back every write that did not
 * reach the socket, each as one call; with what the reader got, nothing
 * is lost. Writes after the abort are reported too. */
#define UNSENT_QUEUED (512u * 1024u)
static int connected_pred(void *p) { return ((side *)p)->connects > 0; }

static void test_unsent(void)
{
    side sv, cl;
    server srv;
    side_init(&sv, "server");
    side_init(&cl, "client");
    sv.pause_on_accept = 1;
    cl.lim.write_max = 64 * 1024 * 1024;
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "unsent: started");
    ok(run_until(connected_pred, &cl, 5000) && cl.connect_status == 0, "unsent: connected");
    buf sent = BUF_INIT;
    /* The kernel takes what fits; write until 512 KiB wait in our queue. */
    for (int i = 0; i < 2000000 && cl.c && conn_queued(cl.c) < UNSENT_QUEUED; i++) {
        char one[32];
        int n = snprintf(one, sizeof one, "<m n='%d'/>", i);
        conn_write(cl.c, one, (size_t)n);
        buf_append(&sent, one, (size_t)n);
    }
    ok(cl.c && conn_queued(cl.c) >= UNSENT_QUEUED, "unsent: writes are queued behind a reader that does not read");
    conn_abort(cl.c, "test abort");
    conn_write_str(cl.c, "<m n='after'/>");   /* still valid until on_close */
    buf_append_str(&sent, "<m n='after'/>");
    is_int(cl.unsent_calls, 0, "unsent: nothing reported from inside conn_abort/conn_write");
    ok(run_until(one_closed, &cl, 5000), "unsent: writer closed");
    is_str(cl.reason, "test abort", "unsent: abort reason");
    ok(cl.unsent_calls > 1, "unsent: writes reported (%d)", cl.unsent_calls);
    is_int(cl.unsent_whole, cl.unsent_calls, "unsent: each report is exactly one conn_write");
    is_int(cl.unsent_after_close, 0, "unsent: all reports before on_close");
    ok(cl.unsent.len <= sent.len && memcmp(sent.data + sent.len - cl.unsent.len, cl.unsent.data, cl.unsent.len) == 0,
       "unsent: the reports are the tail of what was written, in order");
    if (sv.c) conn_resume_read(sv.c);
    ok(run_until(one_closed, &sv, 10000), "unsent: reader sees the end");
    ok(sv.got.len <= sent.len && memcmp(sv.got.data, sent.data, sv.got.len) == 0, "unsent: reader got a prefix");
    ok(sv.got.len + cl.unsent.len >= sent.len, "unsent: received + unsent covers everything (%zu + %zu of %zu)",
       sv.got.len, cl.unsent.len, sent.len);
    finish(&sv, &cl);
    is_int(sv.closes + cl.closes, 2, "unsent: one on_close per side");
    server_stop(&srv);
    buf_free(&sent);
    side_free(&sv);
    side_free(&cl);
}

#define DRAIN_TOTAL (4u * 1024u * 1024u)
static int drained(void *p) { return ((side *)p)->drains > 0 || ((side *)p)->closes > 0; }

static void test_drain(void)
{
    side sv, cl;
    server srv;
    side_init(&sv, "server");
    side_init(&cl, "client");
    cl.lim.write_high_water = 64 * 1024;
    cl.lim.write_max = 64 * 1024 * 1024;
    ok(server_start(&srv, &sv) == 0 && client_start(&cl, &srv) == 0, "drain: started");
    /* Wait for the connect, then write a burst far above the kernel buffers. */
    int connected = 0;
    for (int i = 0; i < 200 && !cl.connects; i++) uv_run(&loop, UV_RUN_ONCE);
    connected = cl.connects == 1 && cl.connect_status == 0;
    ok(connected, "drain: connected");
    char *chunk = calloc(1, 64 * 1024);
    for (size_t sent = 0; connected && sent < DRAIN_TOTAL; sent += 64 * 1024) conn_write(cl.c, chunk, 64 * 1024);
    free(chunk);
    ok(cl.c && conn_queued(cl.c) > cl.lim.write_high_water, "drain: queue above high water after the burst");
    ok(cl.c && !conn_writable(cl.c), "drain: not writable above high water");
    ok(run_until(drained, &cl, 20000), "drain: on_drain called");
    is_int(cl.drains, 1, "drain: once");
    ok(cl.drain_writable, "drain: writable again inside on_drain");
    ok(cl.drain_queued < cl.lim.write_high_water / 2, "drain: queue below half the high water (%zu)", cl.drain_queued);
    want_bytes w = {&sv, DRAIN_TOTAL};
    ok(run_until(got_bytes, &w, 20000), "drain: the reader gets everything");
    is_int(sv.got.len, DRAIN_TOTAL, "drain: byte count");
    is_int(cl.drains, 1, "drain: no further on_drain without going above high water again");
    finish(&sv, &cl);
    server_stop(&srv);
    side_free(&sv);
    side_free(&cl);
}

static void test_connect_refused(void)
{
    side sv, cl;
    server srv;
    side_init(&sv, "unused");
    side_init(&cl, "client");
    ok(server_start(&srv, &sv) == 0, "refused: get a free port");
    struct sockaddr_in addr = srv.addr;
    server_stop(&srv);   /* nobody listens there now */
    cl.c = conn_connect(&loop, (struct sockaddr *)&addr, &cl.lim, &handler, &cl);
    ok(cl.c != NULL, "refused: conn_connect returns a conn");
    ok(run_until(one_closed, &cl, 5000), "refused: closes");
    is_int(cl.connects, 1, "refused: on_connect called once");
    ok(cl.connect_status < 0, "refused: with an error status");
    ok(strncmp(cl.reason, "connect failed", 14) == 0, "refused: reason (%s)", cl.reason);
    run_for(20);
    is_int(cl.closes, 1, "refused: on_close once");
    side_free(&sv);
    side_free(&cl);
}

/* A dual-stack "::" listener shows IPv4 clients as plain IPv4. */
static void test_dual_stack(void)
{
    side sv, cl;
    server srv;
    side_init(&sv, "server");
    side_init(&cl, "client");
    sv.echo = 1;
    cl.connect_hook = hook_write_hello;
    int rc = server_start_on(&srv, &sv, "::");
    if (rc != 0) {
        ok(rc == UV_EAFNOSUPPORT || rc == UV_EADDRNOTAVAIL, "dual stack: no IPv6 here (%s)", uv_strerror(rc));
        side_free(&sv);
        side_free(&cl);
        return;
    }
    ok(client_start(&cl, &srv) == 0, "dual stack: connect to 127.0.0.1");
    want_bytes w = {&cl, 13};
    ok(run_until(got_bytes, &w, 5000), "dual stack: echo arrives");
    ok(sv.c != NULL, "dual stack: accepted");
    if (sv.c) {
        is_str(conn_peer_ip(sv.c), "127.0.0.1", "dual stack: v4-mapped peer shown as IPv4");
        ok(strncmp(conn_peer(sv.c), "127.0.0.1:", 10) == 0, "dual stack: peer without brackets (%s)", conn_peer(sv.c));
    }
    finish(&sv, &cl);
    server_stop(&srv);
    side_free(&sv);
    side_free(&cl);
}

static void noop_connection(uv_stream_t *s, int status) { (void)s; (void)status; }

static void test_listen(void)
{
    uv_tcp_t a, b, b2, c6;
    struct sockaddr_in addr;
    int len = sizeof addr;
    is_int(conn_listen(&loop, &a, "127.0.0.1", 0, 1, noop_connection), 0, "listen: reuseport listener");
    uv_tcp_getsockname(&a, (struct sockaddr *)&addr, &len);
    int port = ntohs(addr.sin_port);
    is_int(conn_listen(&loop, &b, "127.0.0.1", port, 1, noop_connection), 0, "listen: second reuseport listener on the same port");
    uv_close((uv_handle_t *)&b, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    /* On failure conn_listen closes the handle itself. */
    is_int(conn_listen(&loop, &b2, "127.0.0.1", port, 0, noop_connection), UV_EADDRINUSE,
           "listen: without reuseport the port is in use");
    uv_run(&loop, UV_RUN_NOWAIT);
    ok(uv_is_closing((uv_handle_t *)&b2), "listen: failed listener handle is closed");
    uv_close((uv_handle_t *)&a, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    ok(conn_listen(&loop, &b, "not-an-address", 0, 0, noop_connection) != 0, "listen: bad address rejected");
    int rc6 = conn_listen(&loop, &c6, "::1", 0, 0, noop_connection);
    if (rc6 == 0) {
        struct sockaddr_in6 a6;
        int l6 = sizeof a6;
        uv_tcp_getsockname(&c6, (struct sockaddr *)&a6, &l6);
        is_int(a6.sin6_family, AF_INET6, "listen: IPv6 ::1 listener");
        uv_close((uv_handle_t *)&c6, NULL);
    } else {
        ok(rc6 == UV_EADDRNOTAVAIL || rc6 == UV_EAFNOSUPPORT, "listen: no IPv6 here (%s)", uv_strerror(rc6));
    }
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* --- certificates --- */

static int san_has(X509 *x, const char *name)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int found = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS && (size_t)ASN1_STRING_length(g->d.dNSName) == strlen(name) &&
            memcmp(ASN1_STRING_get0_data(g->d.dNSName), name, strlen(name)) == 0)
            found = 1;
    }
    GENERAL_NAMES_free(gens);
    return found;
}

static void test_certificates(void)
{
    char err[512];
    struct stat st;
    is_int(tls_make_self_signed(cert_path, key_path, "xmpp.example.test, localhost,", 30, err, sizeof err), 0,
           "cert: self-signed made (%s)", err);
    ok(stat(key_path, &st) == 0 && (st.st_mode & 0777) == 0600, "cert: key file mode 0600");
    is_int(tls_make_self_signed(cert2_path, key2_path, "other.test", 1, err, sizeof err), 0, "cert: second one");

    FILE *fp = fopen(cert_path, "r");
    X509 *x = fp ? PEM_read_X509(fp, NULL, NULL, NULL) : NULL;
    if (fp) fclose(fp);
    ok(x != NULL, "cert: PEM certificate readable");
    if (x) {
        char cn[128] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
        is_str(cn, "xmpp.example.test", "cert: CN is the first name");
        ok(san_has(x, "xmpp.example.test") && san_has(x, "localhost"), "cert: SAN has both names");
        ok(!san_has(x, ""), "cert: empty names skipped");
        is_int(X509_check_ca(x), 0, "cert: not a CA (basicConstraints CA:FALSE)");
        ok(X509_get_extension_flags(x) & EXFLAG_BCONS, "cert: basicConstraints present");
        is_int(X509_get_signature_nid(x), NID_ecdsa_with_SHA256, "cert: ECDSA with SHA-256");
        EVP_PKEY *pk = X509_get0_pubkey(x);
        ok(pk && EVP_PKEY_is_a(pk, "EC") && EVP_PKEY_get_bits(pk) == 256, "cert: EC P-256 key");
        is_int(X509_cmp(x, x), 0, "cert: self-consistent");
        ok(X509_check_issued(x, x) == X509_V_OK, "cert: self-issued");
        const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
        ok(serial && ASN1_STRING_length(serial) >= 8, "cert: random serial of 64+ bits");
        X509_free(x);
    }

    server_ctx = tls_server_ctx(cert_path, key_path, err, sizeof err);
    ok(server_ctx != NULL, "cert: server ctx loads cert and key (%s)", server_ctx ? "" : err);

    SSL_CTX *bad = tls_server_ctx(cert_path, key2_path, err, sizeof err);
    ok(bad == NULL, "cert: mismatched key refused");
    ok(strstr(err, key2_path) != NULL && strstr(err, "does not match") != NULL, "cert: error names the key file (%s)", err);
    SSL_CTX_free(bad);

    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.pem", tmpdir);
    bad = tls_server_ctx(missing, key_path, err, sizeof err);
    ok(bad == NULL && strstr(err, missing) != NULL, "cert: missing cert file named in error");
    SSL_CTX_free(bad);

    is_int(tls_make_self_signed(cert2_path, key2_path, " , ", 1, err, sizeof err), -1, "cert: no names refused");
    ok(err[0] != '\0', "cert: with a message");

    SSL_CTX *cc = tls_client_ctx(0, NULL, err, sizeof err);
    ok(cc != NULL, "tls: opportunistic client ctx");
    if (cc) {
        is_int(SSL_CTX_get_min_proto_version(cc), TLS1_2_VERSION, "tls: client minimum TLS 1.2");
        ok(SSL_CTX_get_options(cc) & SSL_OP_NO_COMPRESSION, "tls: no compression");
        ok(SSL_CTX_get_options(cc) & SSL_OP_NO_RENEGOTIATION, "tls: no renegotiation");
        ok(SSL_CTX_get_mode(cc) & SSL_MODE_RELEASE_BUFFERS, "tls: release buffers");
        SSL_CTX_free(cc);
    }
    if (server_ctx) {
        is_int(SSL_CTX_get_min_proto_version(server_ctx), TLS1_2_VERSION, "tls: server minimum TLS 1.2");
        /* Every TLS 1.2 suite offered is ECDHE + AEAD. */
        SSL *s = SSL_new(server_ctx);
        STACK_OF(SSL_CIPHER) *cs = SSL_get_ciphers(s);
        int all_good = sk_SSL_CIPHER_num(cs) > 0;
        for (int i = 0; i < sk_SSL_CIPHER_num(cs); i++) {
            const SSL_CIPHER *ci = sk_SSL_CIPHER_value(cs, i);
            if (strcmp(SSL_CIPHER_get_version(ci), "TLSv1.3") == 0) continue;
            const char *n = SSL_CIPHER_get_name(ci);
            if (strncmp(n, "ECDHE-", 6) != 0 || (!strstr(n, "GCM") && !strstr(n, "CHACHA20"))) all_good = 0;
        }
        ok(all_good, "tls: TLS 1.2 suites are ECDHE with AES-GCM or ChaCha20-Poly1305 only");
        SSL_free(s);
    }
    conn_limits l;
    conn_limits_default(&l);
    ok(l.write_high_water == 256 * 1024 && l.write_max == 4 * 1024 * 1024 && l.read_chunk == 16 * 1024 &&
           l.write_coalesce == 64 * 1024,
       "conn: default limits as documented");
}

int main(void)
{
    uv_loop_init(&loop);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sb-conn-XXXXXX");
    ok(mkdtemp(tmpdir) != NULL, "temp dir created");
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", tmpdir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", tmpdir);
    snprintf(cert2_path, sizeof cert2_path, "%s/cert2.pem", tmpdir);
    snprintf(key2_path, sizeof key2_path, "%s/key2.pem", tmpdir);

    test_certificates();
    test_plain_echo();
    test_many_small_writes();
    test_coalescing();
    test_close_in_read();
    test_connect_refused();
    test_listen();
    test_dual_stack();
    test_idle_timeout();
    test_drain();
    test_unsent();
    test_write_max();
    if (server_ctx) {
        test_starttls();
        test_direct_tls();
        test_tls12();
        test_tls_verify_fails();
        test_tls11_refused();
    }

    SSL_CTX_free(server_ctx);
    unlink(cert_path);
    unlink(key_path);
    unlink(cert2_path);
    unlink(key2_path);
    ok(rmdir(tmpdir) == 0, "temp dir removed");
    uv_run(&loop, UV_RUN_NOWAIT);
    is_int(uv_loop_close(&loop), 0, "loop closes: no handle left open");
    return tap_done();
}
