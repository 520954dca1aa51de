/* c2s: client connections, from the first byte to a bound session.
 *
 * Internal interfaces shared by the files of c2s/, one concern each:
 *   main.c        configuration, start and shutdown
 *   listener.c    listening sockets, accepting, per-IP connection caps
 *   proxy.c       PROXY protocol v2 in front of a connection
 *   stream.c      the XML stream: header, features, stream errors, dispatch
 *   starttls.c    STARTTLS
 *   sasl.c        SASL (SCRAM-SHA-1/256[-PLUS], PLAIN)
 *   legacy_auth.c jabber:iq:auth (XEP-0078)
 *   register.c    jabber:iq:register (XEP-0077)
 *   bind.c        resource binding and the legacy session iq
 *   session.c     the link to the sm (docs/sessions.md)
 *   stream_mgmt.c stream management (XEP-0198)
 *   csi.c         client state indication (XEP-0352): presence held back while inactive
 *   limits.c      rate limiting (bytes, stanzas per connection and per address),
 *                 caps on unauthenticated connections, failed-auth and
 *                 registration throttles
 *   accounts.c    credentials from storage/ (asynchronous)
 */
#ifndef SB_C2S_H
#define SB_C2S_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <openssl/ssl.h>

#include "common/buf.h"
#include "common/component.h"
#include "common/config.h"
#include "common/conn.h"
#include "common/stanza.h"
#include "common/strmap.h"
#include "common/xml_stream.h"

#define NS_IQ_AUTH "jabber:iq:auth"
#define NS_IQ_REGISTER "jabber:iq:register"
#define NS_FEATURE_IQ_AUTH "http://jabber.org/features/iq-auth"
#define NS_FEATURE_IQ_REGISTER "http://jabber.org/features/iq-register"
#define NS_SM3 "urn:xmpp:sm:3"
#define NS_SESSION_CTL "urn:switchboard:session"
#define NS_SASL_CB "urn:xmpp:sasl-cb:0"
#define NS_CSI "urn:xmpp:csi:0"

#define STREAM_ID_LEN 24   /* [A-Za-z0-9]: about 143 bits, RFC 6120 §4.7.3 */

typedef struct c2s c2s;
typedef struct client client;
typedef struct ip_entry ip_entry;
typedef struct sasl_state sasl_state;
typedef struct c2s_session c2s_session;
typedef struct pending_op pending_op;
typedef struct csi_state csi_state;
typedef struct c2s_orphan c2s_orphan;

typedef struct c2s_limits {
    size_t max_stanza_bytes;        /* limits/max-stanza-bytes */
    unsigned connections_per_ip;    /* limits/connections-per-ip (0 = no cap) */
    unsigned max_connections;       /* limits/max-connections (0 = no cap) */
    uint64_t unauth_timeout_ms;     /* limits/unauthenticated-timeout */
    uint64_t idle_timeout_ms;       /* limits/idle-timeout */
    uint64_t keepalive_ms;          /* limits/keepalive-interval */
    uint64_t rate_bytes;            /* limits/rate-bytes per second (0 = no limit) */
    uint64_t rate_burst;            /* limits/rate-burst */
    uint64_t rate_max_throttled_ms; /* limits/rate-disconnect-after */
    unsigned auth_failures_per_ip;  /* limits/auth-failures-per-ip */
    unsigned auth_failures_per_account; /* limits/auth-failures-per-account */
    uint64_t auth_failure_window_ms;/* limits/auth-failure-window */
    unsigned auth_retries;          /* limits/auth-retries per stream */
    size_t write_high_water;        /* limits/write-queue-high */
    size_t write_max;               /* limits/write-queue-max */
    uint64_t session_start_timeout_ms; /* limits/session-start-timeout */
    unsigned max_unauthenticated;   /* limits/max-unauthenticated (0 = no cap) */
    unsigned unauthenticated_per_ip;/* limits/unauthenticated-per-ip (0 = no cap) */
    uint64_t rate_stanzas;          /* limits/rate-stanzas per second per connection (0 = no limit) */
    uint64_t rate_stanzas_burst;    /* limits/rate-stanzas-burst */
    uint64_t rate_stanzas_per_ip;   /* limits/rate-stanzas-per-ip per second, all connections of an address */
    uint64_t rate_stanzas_per_ip_burst; /* limits/rate-stanzas-per-ip-burst */
} c2s_limits;

typedef struct c2s_listener {
    c2s *srv;
    uv_tcp_t tcp;
    int open;
    int direct_tls;
    int port;
} c2s_listener;

/* Per remote address: connection count and throttle windows. */
struct ip_entry {
    unsigned conns;
    unsigned auth_failures;
    uint64_t auth_window_start;
    unsigned registrations;
    uint64_t reg_window_start;
    unsigned unauthed;              /* connections from here not authenticated yet */
    int64_t stanza_tokens;          /* the address's stanza bucket (limits/rate-stanzas-per-ip) */
    uint64_t stanza_refill_at;
    char ip[];
};

struct c2s {
    uv_loop_t *loop;
    config *cfg;
    const char *config_path;        /* for SIGHUP reloads */
    int debug_forced;               /* --debug */
    const char *name;               /* component name, e.g. c2s-1 */
    char **hosts;                   /* hosted domains (prepared) */
    size_t nhosts;
    unsigned char *host_online;     /* per host: the sm for it is online */

    SSL_CTX *tls_ctx;
    int tls_required;
    int plain_without_tls;
    int store_plaintext;
    int channel_binding;            /* offer SCRAM-*-PLUS (tls-exporter) */
    unsigned scram_iterations;
    int register_enabled;
    unsigned register_per_ip_per_minute;
    int proxy_protocol;
    c2s_limits lim;

    /* stream management */
    uint64_t resume_timeout_ms;     /* sm/resume-timeout; 0 = no resumption */
    unsigned max_unacked;           /* sm/max-unacked */
    uint64_t drain_timeout_ms;      /* sm/drain-timeout: wait for the client's <a/> when the sm is lost */

    c2s_listener listeners[2];      /* [0] STARTTLS port, [1] direct TLS port */
    component *comp;
    struct storage *store;

    strmap clients_by_id;           /* decimal c2s-id -> client */
    strmap resumable;               /* resume id -> client */
    strmap ips;                     /* ip -> ip_entry */
    strmap account_failures;        /* "user@domain" -> fail_entry */
    client *clients;
    size_t nclients;
    size_t nunauthed;               /* connections from accept until authentication */
    client *throttled;              /* clients paused by the rate limiter */
    uv_timer_t tick;                /* 1 s housekeeping */
    /* Clients by the next time their housekeeping may be due: a min-heap
     * on client.wake_at (stream.c), so a tick only looks at due clients. */
    client **wakeups;
    size_t nwakeups, wakeups_cap;
    client *waking;                 /* the client c2s_tick is handling (NULL once freed) */
    uv_timer_t throttle_timer;
    uv_check_t ack_check;           /* sends the <r/> that are due, once per loop iteration */
    uint64_t *ack_due;              /* c2s-ids of clients with an <r/> due */
    size_t nack_due, ack_due_cap;
    int throttle_timer_on;
    /* delivery guarantees (docs/sessions.md §7) */
    c2s_orphan *orphans;            /* sessions whose sm was lost, waiting for it to come back */
    uv_timer_t drain_timer;         /* ends the sessions whose client did not answer in time */
    int drain_timer_on;
    buf out;                        /* scratch for serialisation */
    uint64_t next_client_id;
    unsigned char fake_salt_key[32];/* for answers about unknown users */
    struct auth_cache *auth_cache;  /* successful password checks (auth_cache.c) */
    int stopping;
    void (*on_stopped)(c2s *srv);
};

typedef enum {
    CL_PROXY = 0,     /* waiting for the PROXY protocol header */
    CL_HEADER,        /* waiting for the client's stream header */
    CL_NEGOTIATING,   /* header answered; TLS / SASL / legacy auth / registration */
    CL_AUTHED,        /* authenticated, no resource yet */
    CL_BINDING,       /* asked the sm to start the session */
    CL_SESSION,       /* bound: stanzas flow */
    CL_DETACHED,      /* connection lost, stream management keeps the session for resumption */
    CL_CLOSING,
} client_state;

/* What an asynchronous operation (storage, the sm) resumes with. */
typedef enum {
    OP_NONE = 0,
    OP_SASL_CREDS,
    OP_LEGACY_CREDS,
    OP_REGISTER,
    OP_PASSWORD,
    OP_REMOVE,
    OP_SESSION_START,
} op_kind;

/* The session with the sm, once binding starts. */
struct c2s_session {
    char *full_jid;
    uint64_t sm_id;                 /* 0 until 'started' */
    /* stream management (XEP-0198) */
    unsigned sm_enabled : 1;
    unsigned sm_resumable : 1;
    uint32_t h_in;                  /* stanzas handled from the client */
    uint32_t h_out;                 /* stanzas sent to the client */
    uint32_t acked;                 /* last h the client acknowledged */
    struct sm_item *queue, **queue_tail;  /* sent and not acknowledged, oldest first */
    unsigned queued;
    unsigned r_outstanding : 1;     /* we sent <r/> and no <a/> came yet */
    unsigned ack_scheduled : 1;     /* an <r/> is due at the end of this loop iteration */
    char *resume_id;
    uint64_t detached_until;        /* CL_DETACHED: loop time when the session ends */
    /* delivery guarantees (docs/sessions.md §7) */
    uint32_t route_seq;             /* seq of the last client stanza routed to the sm */
    uint32_t *h_wait;               /* per client stanza not yet counted in h_in: the seq it waits for */
    unsigned h_wait_head, h_wait_len, h_wait_cap;
    unsigned last_direct : 1;       /* the last client stanza was counted at once */
    unsigned a_owed : 1;            /* an <r/> waits for the sm's confirmations to be answered */
    unsigned report_scheduled : 1;  /* 'acked' to send to the sm at the end of this loop iteration */
    unsigned sm_lost : 1;           /* the sm is gone: what is left goes to an orphan */
    unsigned draining : 1;          /* ... after the client's <a/> (or drain_until) */
    unsigned drain_answers : 2;     /* <a/> still to come for the <r/> sent */
    uint32_t acked_seq;             /* the last sm seq the client acknowledged (or was written, without SM) */
    uint32_t reported_seq;          /* the last acked_seq told to the sm */
    uint32_t a_target;              /* a_owed: the seq whose confirmation answers the <r/> */
    uint64_t drain_until;
};

/* A session of a lost sm: what the client acknowledged and what it did not,
 * told to the sm of its domain when that is back. */
struct c2s_orphan {
    c2s_orphan *next;
    int host_index;
    uint64_t c2s_id, sm_id;
    uint32_t acked_seq;
    struct sm_item *items;          /* not acknowledged, oldest first */
};

struct client {
    c2s *srv;
    conn *c;
    xml_stream *xs;
    ip_entry *ipe;
    uint64_t id;                    /* c2s-id */
    client_state state;
    unsigned tls : 1;               /* the stream is encrypted */
    unsigned direct_tls : 1;
    unsigned legacy : 1;            /* the header had no version: a pre-XMPP-1.0 stream */
    unsigned header_sent : 1;
    unsigned authed : 1;
    unsigned restart : 1;           /* a stream restart is due after the current element */
    unsigned clean_close : 1;       /* the client closed the stream itself */
    unsigned registered_here : 1;   /* registered an account on this stream */
    unsigned sasl_failures : 4;
    char stream_id[STREAM_ID_LEN + 1];
    const char *domain;             /* the hosted domain of the stream (srv->hosts[i]) */
    int host_index;
    char *user;                     /* authenticated node (prepared), once authed */
    sasl_state *sasl;               /* during a SASL exchange only */
    c2s_session *sess;              /* from binding on */
    pending_op *op;                 /* an asynchronous operation in flight */
    stanza **backlog;               /* elements that arrived while an operation was in flight */
    unsigned nbacklog;
    buf proxy_buf;                  /* CL_PROXY only */
    /* rate limiting */
    int64_t tokens;
    uint64_t refill_at;
    uint64_t throttled_since;
    uint64_t resume_read_at;
    client *next_throttled;
    unsigned throttled : 1;
    unsigned unauth_counted : 1;    /* counted in nunauthed (and its address's unauthed) */
    const char *throttled_by;       /* which rate it is over (for logs); a string literal */
    int64_t stanza_tokens;          /* elements (limits/rate-stanzas) */
    uint64_t stanza_refill_at;
    uint64_t last_write;            /* loop time of the last write (keepalives) */
    uint64_t connected_at;          /* loop time of the accept (unauthenticated timeout) */
    uint64_t op_deadline;           /* loop time by which the pending sm answer must come */
    uint64_t wake_at;               /* loop time of its next housekeeping (srv->wakeups) */
    size_t wake_slot;               /* index + 1 in srv->wakeups; 0 when not scheduled */
    client *prev, *next;
    csi_state *csi;                 /* client state indication, once the client said anything */
};

/* An asynchronous operation: the storage or the sm answers later; the
 * client may be gone by then (cl is NULL). */
struct pending_op {
    client *cl;
    op_kind kind;
    unsigned legacy_auth : 1;       /* OP_SESSION_START for jabber:iq:auth */
    char *iq_id;                    /* the iq to answer */
    char *username;
    char *resource;
    char *password;                 /* wiped on free */
    char *digest;
};

/* ---- main.c ---- */
int c2s_host_index(const c2s *srv, const char *domain);

/* ---- listener.c ---- */
int listener_start(c2s *srv, const char *address, int port, int tls_port, int reuseport);
void listener_stop(c2s *srv);
ip_entry *ip_entry_get(c2s *srv, const char *ip);
void ip_entry_release(c2s *srv, ip_entry *e);
/* Set the peer address (after accept, or from the PROXY header); applies
 * the per-IP cap. Returns -1 if the connection must be refused. */
int client_set_ip(client *cl, const char *ip);
void ip_entries_expire(c2s *srv, uint64_t now);

/* ---- proxy.c ---- */
/* Feed bytes while in CL_PROXY. Returns the number of bytes consumed by the
 * header (>0) once it is complete, 0 if more are needed, -1 if invalid.
 * *ip is set to the source address (or left NULL for LOCAL). */
long proxy_parse(const char *data, size_t len, char *ip, size_t iplen);

/* ---- stream.c ---- */
client *client_new(c2s *srv, conn *c, int direct_tls);
void client_on_read(client *cl, const char *data, size_t len);
const char *client_label(const client *cl);   /* JID or ip, for logs */
void client_write(client *cl, const char *data, size_t len);
void client_write_str(client *cl, const char *s);
void client_write_element(client *cl, const xnode *el);
/* Send a stream error, close the stream and the connection. */
void client_stream_error(client *cl, const char *condition, const char *text);
/* Close the stream cleanly (</stream:stream>) and the connection. */
void client_close(client *cl);
/* Answer an iq with an error (its payload dropped). */
void client_iq_error(client *cl, const char *id, const char *condition, const char *text);
/* Answer an iq with an empty result or with a child. */
void client_iq_result(client *cl, const char *id, const char *child_xml);
void client_restart_stream(client *cl);
/* Start/finish an asynchronous operation: reading pauses, elements that
 * already arrived wait in the backlog. */
pending_op *client_op_begin(client *cl, op_kind kind, const char *iq_id);
void client_op_end(client *cl);
void pending_op_free(pending_op *op);
void client_free(client *cl);
void c2s_stop_clients(c2s *srv);
void c2s_tick(c2s *srv, uint64_t now);
/* Place every client in the housekeeping schedule again (after a reload changed the limits). */
void c2s_reschedule_clients(c2s *srv);
/* Handle one element after negotiation. */
void client_handle_stanza(client *cl, stanza *st);

/* ---- starttls.c ---- */
void starttls_handle(client *cl, stanza *st);

/* ---- sasl.c ---- */
void sasl_features(client *cl, buf *out);
void sasl_handle(client *cl, stanza *st);
void sasl_free(sasl_state *s);

/* ---- legacy_auth.c ---- */
void legacy_auth_handle(client *cl, stanza *st);

/* ---- register.c ---- */
void register_handle(client *cl, stanza *st);

/* ---- bind.c ---- */
void bind_handle(client *cl, stanza *st);
void session_iq_handle(client *cl, stanza *st);
/* Ask the sm to start a session for cl->user@domain/resource (op answers). */
void bind_start_session(client *cl, pending_op *op, const char *resource);
/* The sm answered: started (condition NULL) or failed. */
void bind_session_answer(client *cl, uint64_t sm_id, const char *condition);

/* ---- session.c ---- */
int session_link_start(c2s *srv);
void session_link_stop(c2s *srv, void (*done)(c2s *srv));
int session_send_start(client *cl, const char *full_jid);
void session_send_end(client *cl);
void session_route_stanza(client *cl, const xnode *el);
/* Hand a stanza back to the sm (type='error' envelope): bytes as they were written to the client. */
void session_hand_back(c2s *srv, uint64_t c2s_id, uint64_t sm_id, const char *domain,
                       const char *data, size_t len);
void session_account_removed(client *cl);
/* Tell the sm which numbered messages the client acknowledged. */
void session_send_acked(client *cl);
/* The sm confirmed the client's stanzas up to seq ('handled'). */
void sm_handled(client *cl, uint32_t seq);
/* A client stanza goes to the sm with this seq: counted once it is confirmed. */
void sm_routed(client *cl, uint32_t seq);
/* Keep the session's unacknowledged stanzas for the sm of its domain (it is gone). */
void sm_orphan(client *cl);
/* The sm of a domain is back: give it the orphans of that domain. */
void sm_orphans_flush(c2s *srv, int host_index);
/* The sm of a domain is gone: ask each client what it got, then close. */
void sm_drain(client *cl);
void sm_orphans_free(c2s *srv);
/* The client answered (or the drain timed out): orphan the session and close the stream. */
void sm_drain_done(client *cl);
/* Hand back with the sm's number of the stanza (0 for none). */
void session_hand_back_seq(c2s *srv, uint64_t c2s_id, uint64_t sm_id, const char *domain, const char *data,
                           size_t len, uint32_t seq);
/* 'end' for an orphan's session, with what its client acknowledged. */
void session_end_orphan(c2s *srv, const char *domain, uint64_t c2s_id, uint64_t sm_id, uint32_t acked_seq);
int session_sm_online(const c2s *srv, int host_index);

/* ---- stream_mgmt.c ---- */
void sm_features(client *cl, buf *out);
int sm_handle(client *cl, stanza *st);   /* 1 if it was a stream management element */
/* A stanza goes to the client: counted and kept until acknowledged. */
void sm_outgoing(client *cl, const char *data, size_t len);
/* The same for a stanza the sm numbered (seq, 0 for none). */
void sm_outgoing_seq(client *cl, const char *data, size_t len, uint32_t seq);
void sm_incoming(client *cl);
/* The connection is gone: 1 if the session stays for resumption. */
int sm_detach(client *cl);
/* Give every unacknowledged stanza back to the sm and empty the queue. */
void sm_hand_back_all(client *cl);
void sm_session_free(c2s *srv, c2s_session *s);
void sm_request_ack(client *cl);
/* Send the <r/> requests scheduled during this loop iteration. */
void sm_flush_ack_requests(c2s *srv);

/* ---- csi.c ---- */
void csi_features(client *cl, buf *out);
/* <active/> or <inactive/> from the client. */
void csi_handle(client *cl, stanza *st);
/* A stanza from the sm for a client in CL_SESSION, serialized as data: 1 if
 * it is held back (copied); 0 if it must be written now, after what was
 * held, which this call has written. */
int csi_hold(client *cl, const xnode *el, const char *data, size_t len);
/* Write everything held, in order. */
void csi_flush(client *cl);
/* The connection is gone: what is held goes to stream management's queue
 * (for a resumption), and the state is active again. */
void csi_detach(client *cl);
void csi_free(client *cl);

/* ---- limits.c ---- */
/* Account bytes read, before they are parsed; returns 0 to go on, -1 to
 * disconnect (over the rate for too long already). */
int rate_account(client *cl, size_t len);
/* Account one top-level element from the client (connection and address). */
void rate_account_element(client *cl);
/* After a read is parsed: pause reading while any bucket is in debt.
 * Returns 0 to go on, 1 if reading was paused, -1 to disconnect. */
int rate_settle(client *cl);
/* Start the stanza bucket of a new address entry. */
void rate_ip_entry_init(c2s *srv, ip_entry *e);
/* 1 while the address's stanza bucket is still in debt (keep its entry). */
int rate_ip_entry_in_debt(const c2s *srv, const ip_entry *e, uint64_t now);
/* Unauthenticated connections: counted from accept until authentication.
 * unauth_admit counts a new connection: -1 if over limits/max-unauthenticated. */
int unauth_admit(client *cl);
/* Authenticated or gone: no longer counted. */
void unauth_release(client *cl);
void rate_unthrottle(client *cl);
void throttle_timer_cb(uv_timer_t *t);
/* 1 if auth attempts from this IP / for this account must be refused now. */
int auth_throttled(client *cl, const char *user);
void auth_failed(client *cl, const char *user);
void auth_succeeded(client *cl, const char *user);
int register_throttled(client *cl);
void register_count(client *cl);
void account_failures_expire(c2s *srv, uint64_t now);

/* ---- accounts.c ---- */
#include "storage/storage.h"
#include "common/scram.h"
typedef struct c2s_creds {
    const scram_secrets *sha1, *sha256;
    const char *plaintext;
} c2s_creds;
typedef void (*c2s_creds_cb)(pending_op *op, storage_status st, const c2s_creds *creds);
void accounts_get(c2s *srv, const char *domain, const char *user, pending_op *op, c2s_creds_cb cb);
/* A plaintext password (PLAIN, jabber:iq:auth) against the stored secrets:
 * one PBKDF2, or none when auth_cache.c remembers the same check. */
int accounts_verify_password(c2s *srv, const char *domain, const char *user, const c2s_creds *creds,
                             const char *password);
void accounts_create(c2s *srv, const char *domain, const char *user, const char *password,
                     pending_op *op, void (*cb)(pending_op *op, storage_status st));
void accounts_set_password(c2s *srv, const char *domain, const char *user, const char *password,
                           pending_op *op, void (*cb)(pending_op *op, storage_status st));
void accounts_delete(c2s *srv, const char *domain, const char *user,
                     pending_op *op, void (*cb)(pending_op *op, storage_status st));
int accounts_open(c2s *srv);
void accounts_close(c2s *srv);

#endif
