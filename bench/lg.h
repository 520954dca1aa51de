/* Switchboard load generator: shared declarations.
 * One worker process runs one epoll loop over many XMPP client connections;
 * the parent (loadgen.c) forks the workers, starts the measured phase and
 * merges their statistics. One concern per file: conn.c (connection state
 * machine, TLS, XML), sasl.c (PLAIN and SCRAM-SHA-1 with a salted-password
 * cache), scenario.c (what each scenario does), stats.c (counters and
 * latency histograms). */
#ifndef BENCH_LG_H
#define BENCH_LG_H

#include <expat.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

/* ---- stats.c ---- */
#define LG_HBUCKETS 560
typedef struct {
    uint64_t n[LG_HBUCKETS];
} lg_hist;

void lg_hist_add(lg_hist *h, uint64_t usec);
void lg_hist_merge(lg_hist *into, const lg_hist *from);
uint64_t lg_hist_count(const lg_hist *h);
double lg_hist_quantile_ms(const lg_hist *h, double q);

typedef struct {
    uint64_t logins, login_failures, connect_failures, stream_errors, disconnects;
    uint64_t pbkdf2, registered, register_failures;
    uint64_t sent, received, received_self, received_other, stanza_errors;
    uint64_t setup_failures;
    double t_go, t_end;          /* monotonic seconds: measured phase */
    lg_hist login_lat, lat;      /* microseconds */
} lg_stats;

double lg_now(void);             /* CLOCK_MONOTONIC seconds (same clock in all processes) */
uint64_t lg_now_ns(void);

/* ---- options (loadgen.c) ---- */
typedef enum { TLS_NONE = 0, TLS_STARTTLS = 1, TLS_DIRECT = 2 } lg_tls_mode;
typedef enum { MECH_PLAIN = 0, MECH_SCRAM_SHA1 = 1 } lg_mech;

typedef struct {
    const char *scenario;        /* login idle messages presence offline-send offline-recv register */
    const char *domain;
    const char *host;            /* server address */
    int ports[32], nports;       /* STARTTLS/plain ports (one per c2s) */
    /* messages across two servers (s2s): receivers (odd connections) log in
     * to peer_domain on peer_ports; senders to domain on ports. */
    const char *peer_domain;
    int peer_ports[32], npeer_ports;
    lg_tls_mode tls;
    lg_mech mech;
    const char *prefix;          /* user names: PREFIX<N> */
    const char *password;
    int user_base, users;        /* accounts PREFIX<base> .. PREFIX<base+users-1> */
    int conns;                   /* concurrent connections in all */
    int procs;                   /* worker processes */
    int nsrc;                    /* source addresses 127.0.0.1 .. 127.0.0.nsrc */
    int per_src;                 /* connections per source address before the next */
    int concurrency;             /* logins in progress at once, per worker */
    double duration;             /* seconds of the measured phase */
    int window;                  /* messages in flight per pair */
    double rate;                 /* messages: open loop, messages/s in all (0 = closed loop with window) */
    int contacts;                /* presence: contacts per user (for expected deliveries) */
    int messages;                /* offline-send: messages in all */
    int target_base, targets;    /* offline-send: recipients PREFIX<tb> .. */
    long expect;                 /* offline-recv: messages expected in all */
    int body_bytes;
    int wait_go;                 /* wait for "go" on stdin before the measured phase */
    int shared_salt;             /* one SCRAM salted-password cache entry for all accounts (set-up of
                                    large runs whose accounts share one salt; not for login figures) */
    double timeout;              /* seconds for the setup and for draining */
    int verbose;
} lg_opts;

/* ---- conn.c ---- */
typedef enum {
    C_FREE = 0, C_CONNECTING, C_TLS_HANDSHAKE, C_FEATURES, C_STARTTLS, C_REGISTER, C_AUTH, C_AUTH_FINAL,
    C_BIND, C_SESSION, C_ROSTER, C_READY, C_CLOSING
} lg_state;

struct lg_worker;

typedef struct lg_conn {
    int fd;
    int idx;                     /* index in the worker */
    int gidx;                    /* global index */
    int user;                    /* account number */
    int side;                    /* 0: domain/ports; 1: peer_domain/peer_ports */
    lg_state state;
    int stage;                   /* 0 before TLS, 1 before auth, 2 after auth */
    SSL *ssl;
    int tls_active;
    XML_Parser xp;
    int depth;
    int restart;                 /* restart the stream after the current element */
    /* the current top-level element */
    char el[24], id[72], type[16], from[96];
    char *text; size_t text_len, text_cap;
    unsigned feat;               /* features seen */
    /* output */
    char *wbuf; size_t wlen, wcap, woff;
    int want_out;
    /* SASL */
    struct lg_scram *scram;
    double t_start;
    /* scenario state */
    int peer;                    /* messages: the partner connection's idx */
    int inflight;
    uint64_t seq;
    long got;                    /* messages received */
    int in_login;                /* counted in the worker's logins under way */
    int closing_after;           /* close once the write buffer is flushed */
    int in_parse;                /* inside XML_Parse on this connection's parser */
    int start_after_parse;       /* a new login was asked for from inside XML_Parse */
} lg_conn;

#define FEAT_STARTTLS 1u
#define FEAT_MECHS 2u
#define FEAT_BIND 4u
#define FEAT_SESSION 8u
#define FEAT_REGISTER 16u

typedef struct lg_worker {
    const lg_opts *o;
    int wid, first, count;       /* global connection indices first .. first+count-1 */
    int epfd;
    lg_conn *conns;
    SSL_CTX *ssl_ctx;
    lg_stats st;
    int in_progress;             /* logins under way */
    int next_start;              /* next connection to start in the setup phase */
    int ready_count;
    int go, stopping, done;
    double go_at;
    uint64_t go_ns;              /* lg_now_ns() at go: the open-loop schedule starts here */
    double rate;                 /* open loop: this worker's messages/s (0 = closed loop) */
    uint64_t scheduled;          /* open loop: messages sent on the schedule so far */
    int next_sender;             /* open loop: round-robin over the pairs */
    struct lg_salt_cache *cache;
    long login_round;            /* login scenario: accounts cycle */
} lg_worker;

int conn_start(lg_worker *w, lg_conn *c);              /* connect and begin the login */
void conn_send(lg_worker *w, lg_conn *c, const char *data, size_t len);
void conn_sendf(lg_worker *w, lg_conn *c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void conn_close(lg_worker *w, lg_conn *c, int graceful);
void conn_event(lg_worker *w, lg_conn *c, uint32_t events);
void conn_free_all(lg_worker *w);
const char *conn_jid_user(const lg_worker *w, int user, char *buf, size_t len);
/* The bare JID of a connection's account, on that connection's side. */
const char *conn_jid(const lg_worker *w, const lg_conn *c, char *buf, size_t len);
const char *conn_domain(const lg_worker *w, const lg_conn *c);

/* ---- sasl.c ---- */
typedef struct lg_salt_cache lg_salt_cache;
lg_salt_cache *sasl_cache_new(int users);
void sasl_cache_free(lg_salt_cache *c);
/* The initial <auth/> element for this connection (written with conn_send). */
void sasl_begin(lg_worker *w, lg_conn *c);
/* Handle <challenge/> or <success/> text (base64); 0 ok, -1 failure. */
int sasl_challenge(lg_worker *w, lg_conn *c, const char *b64, size_t len);
int sasl_success(lg_worker *w, lg_conn *c, const char *b64, size_t len);
void sasl_free(lg_conn *c);

/* ---- scenario.c ---- */
void scen_setup(lg_worker *w);                 /* assign users, start the first logins */
void scen_on_ready(lg_worker *w, lg_conn *c);  /* a login completed */
void scen_on_closed(lg_worker *w, lg_conn *c, int failed);
void scen_on_stanza(lg_worker *w, lg_conn *c); /* message or presence in the READY state */
void scen_go(lg_worker *w);                    /* the measured phase begins */
void scen_tick(lg_worker *w);                  /* every few milliseconds */
int scen_setup_done(const lg_worker *w);
/* Nanoseconds until the next scheduled send (open loop), or -1 if none is scheduled. */
long long scen_next_due_ns(const lg_worker *w);

#endif
