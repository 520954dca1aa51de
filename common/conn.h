/* A TCP connection on libuv, with optional TLS through OpenSSL memory BIOs
 * (STARTTLS upgrade in place, or direct TLS from the first byte), a write
 * queue with back-pressure, and an idle timeout.
 *
 * Life cycle: conn_accept or conn_connect creates it; handlers are called
 * from the loop; conn_close flushes what is queued and closes; conn_abort
 * closes at once. on_close is called exactly once, after which the conn is
 * freed: do not touch it after on_close returns. Calling conn_close or
 * conn_abort from inside a handler is allowed. */
#ifndef SB_CONN_H
#define SB_CONN_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <openssl/ssl.h>

typedef struct conn conn;

typedef struct conn_handler {
    /* Plaintext bytes from the peer. */
    void (*on_read)(conn *c, const char *data, size_t len);
    /* Outgoing connections: the TCP connect finished (status 0) or failed
     * (status < 0, then on_close follows). */
    void (*on_connect)(conn *c, int status);
    /* The TLS handshake finished. */
    void (*on_tls_ready)(conn *c);
    /* The write queue went above the high-water mark and is now back below the low mark. */
    void (*on_drain)(conn *c);
    /* No bytes were read for the idle timeout. If NULL, the conn is aborted. */
    void (*on_timeout)(conn *c);
    /* The connection is closed; reason is a short text for logs. */
    void (*on_close)(conn *c, const char *reason);
    /* Plain (non-TLS) connections being closed: called once for every
     * conn_write whose bytes never reached the socket, with exactly those
     * bytes, before on_close; may be NULL (lets the router bounce queued stanzas). */
    void (*on_unsent)(conn *c, const char *data, size_t len);
} conn_handler;

typedef struct conn_limits {
    size_t write_high_water;   /* above this, conn_writable() is 0; default 256 KiB */
    size_t write_max;          /* above this, the conn is aborted ("write queue full"); default 4 MiB */
    size_t read_chunk;         /* read buffer size; default 16 KiB */
    size_t write_coalesce;     /* pending output written at once above this; default 64 KiB */
} conn_limits;

void conn_limits_default(conn_limits *l);

/* Accept a pending connection on a listening stream. NULL on failure (logged). */
conn *conn_accept(uv_stream_t *server, const conn_limits *lim, const conn_handler *h, void *ud);
/* Start an outgoing connection; on_connect reports the result. */
conn *conn_connect(uv_loop_t *loop, const struct sockaddr *addr, const conn_limits *lim,
                   const conn_handler *h, void *ud);

void *conn_data(const conn *c);
void conn_set_data(conn *c, void *ud);
void conn_set_handler(conn *c, const conn_handler *h);
/* "1.2.3.4:5678" or "[::1]:5678". */
const char *conn_peer(const conn *c);
/* The peer's address without the port. */
const char *conn_peer_ip(const conn *c);
uint64_t conn_id(const conn *c);   /* unique within the process */

/* Queue bytes (copied). Writes are coalesced: what a conn is given during
 * one loop iteration goes to the socket as one write (encrypted as one
 * batch when TLS is on) just before the loop next waits, or at once when
 * more than write_coalesce bytes are pending. Order is kept. */
void conn_write(conn *c, const void *data, size_t len);
void conn_write_str(conn *c, const char *s);
/* Bytes queued and not yet written to the socket. */
size_t conn_queued(const conn *c);
/* 0 while above the high-water mark. */
int conn_writable(const conn *c);
/* Socket write requests this conn has issued (statistics and tests). */
uint64_t conn_write_requests(const conn *c);

/* Switch to TLS as server/client. Bytes read from now on are TLS records;
 * pending holds bytes already read that belong to the TLS stream (may be
 * NULL/0). sni: server name for a client (may be NULL). Returns 0 or -1. */
int conn_starttls_server(conn *c, SSL_CTX *ctx, const char *pending, size_t pending_len);
int conn_starttls_client(conn *c, SSL_CTX *ctx, const char *sni);
int conn_is_tls(const conn *c);
int conn_tls_ready(const conn *c);
SSL *conn_ssl(const conn *c);
/* SNI name the client asked for (server side), or NULL. */
const char *conn_tls_servername(const conn *c);
/* tls-exporter channel binding (RFC 9266): 32 bytes into out; -1 if unavailable. */
int conn_tls_exporter(const conn *c, unsigned char out[32]);

/* Idle timeout in ms (0 = none): restarted by every read. */
void conn_set_timeout(conn *c, uint64_t ms);
void conn_pause_read(conn *c);
void conn_resume_read(conn *c);

/* Flush then close (TLS close_notify is sent first). */
void conn_close(conn *c);
/* Close now, dropping what is queued. */
void conn_abort(conn *c, const char *reason);

/* Listen helper: bind addr:port (reuseport for SO_REUSEPORT) and listen.
 * Returns 0 or a libuv error code (logged by the caller). */
int conn_listen(uv_loop_t *loop, uv_tcp_t *server, const char *addr, int port, int reuseport,
                uv_connection_cb cb);

#endif
