/* switchboard-s2s: configuration, start and clean shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/tls.h"
#include "s2s/s2s.h"

static const config_key s2s_keys[] = {
    PROCESS_KEYS_ROUTER_LINK("s2s"),
    PROCESS_KEYS_LOG,
    PROCESS_KEYS_METRICS,
    {"database", CFG_SECTION, 0, "not used by s2s (accepted so every process shares the same paths)"},
    {"database/conninfo", CFG_SECRET, 0, "not used by s2s"},
    {"hosts", CFG_SECTION, 0, "the domains served here"},
    {"hosts/host", CFG_STRING, CFG_MULTI, "a local domain; remote streams to other names get <host-unknown/>"},
    {"listen", CFG_SECTION, 0, "where remote servers connect"},
    {"listen/address", CFG_STRING, 0, "address to listen on (default 0.0.0.0)"},
    {"listen/port", CFG_INT, 0, "port to listen on (default 5269; 0 = do not listen)"},
    {"tls", CFG_SECTION, 0, "TLS"},
    {"tls/cert", CFG_FILE, 0, "certificate (PEM) offered with STARTTLS; without it STARTTLS is not offered"},
    {"tls/key", CFG_FILE, 0, "its private key (PEM)"},
    {"tls/certificate", CFG_SECTION, CFG_MULTI, "a certificate for one local domain, chosen by the name the peer asks for (SNI)"},
    {"tls/certificate/@domain", CFG_STRING, CFG_REQUIRED, "the domain (server name) this certificate is for"},
    {"tls/certificate/cert", CFG_FILE, CFG_REQUIRED, "its certificate chain (PEM)"},
    {"tls/certificate/key", CFG_FILE, CFG_REQUIRED, "its private key (PEM)"},
    {"tls/required", CFG_BOOL, 0, "refuse streams without TLS, both ways (default false)"},
    {"tls/verify", CFG_BOOL, 0, "verify remote certificates (RFC 6125) and require TLS outgoing (default false)"},
    {"tls/ca-file", CFG_FILE, 0, "CA certificates for tls/verify (default: the system store)"},
    {"dialback", CFG_SECTION, 0, "server dialback (XEP-0220)"},
    {"dialback/secret", CFG_SECRET, 0, "secret for dialback keys (XEP-0185); random per start if absent"},
    {"hosts-map", CFG_SECTION, 0, "static addresses of remote domains (before DNS)"},
    {"hosts-map/host", CFG_SECTION, CFG_MULTI, "one remote domain"},
    {"hosts-map/host/@name", CFG_STRING, CFG_REQUIRED, "the remote domain"},
    {"hosts-map/host/@address", CFG_STRING, CFG_REQUIRED, "its IP address"},
    {"hosts-map/host/@port", CFG_INT, 0, "its port (default 5269)"},
    {"hosts-map/host/@direct-tls", CFG_BOOL, 0, "TLS from the first byte, XEP-0368 (default false)"},
    {"dns", CFG_SECTION, 0, "DNS"},
    {"dns/nameserver", CFG_STRING, 0, "name servers, 'ip[:port],...' (default: /etc/resolv.conf)"},
    {"dns/direct-tls", CFG_BOOL, 0, "also look up _xmpps-server SRV records, XEP-0368 (default false)"},
    {"limits", CFG_SECTION, 0, "limits"},
    {"limits/queue-max-stanzas", CFG_INT, 0, "stanzas waiting per domain pair (default 1000)"},
    {"limits/connect-timeout", CFG_INT, 0, "seconds to connect and authenticate a domain pair (default 30)"},
    {"limits/idle-timeout", CFG_INT, 0, "seconds after which a stream without traffic is closed (default 600)"},
    {"limits/max-stanza-bytes", CFG_INT, 0, "largest element a remote server may send (default 256k)"},
    {"limits/connections-per-domain", CFG_INT, 0, "incoming streams per remote domain (default 8)"},
    {"limits/rate-bytes", CFG_INT, 0, "bytes per second read from one incoming stream, 0 = no limit (default 1m)"},
    {"limits/max-connections", CFG_INT, 0, "incoming connections in all (default 10000)"},
    {"limits/pairs-per-stream", CFG_INT, 0, "domain pairs authorised on one incoming stream (default 1000)"},
    {"limits/unacked-stanzas", CFG_INT, 0,
     "stanzas kept per outgoing stream until the remote server acknowledges them, XEP-0198 (default 1000)"},
    {"limits/retry-interval", CFG_INT, 0,
     "milliseconds between reconnections for stanzas a lost stream did not get acknowledged (default 1000)"},
    {NULL, 0, 0, NULL},
};

/* ---- shared helpers ---- */

int s2s_is_local(const s2s *s, const char *domain)
{
    for (size_t i = 0; i < s->nhosts; i++)
        if (!strcmp(s->hosts[i], domain)) return 1;
    return 0;
}

const host_map_entry *s2s_map_find(const s2s *s, const char *domain)
{
    for (size_t i = 0; i < s->nmap; i++)
        if (!strcmp(s->map[i].name, domain)) return &s->map[i];
    return NULL;
}

void s2s_conn_gone(s2s *s)
{
    if (s->open_conns) s->open_conns--;
    if (s->stopping && s->open_conns == 0 && s->on_conns_closed) {
        void (*cb)(s2s *) = s->on_conns_closed;
        s->on_conns_closed = NULL;
        cb(s);
    }
}

/* ---- start ---- */

static int load_hosts(s2s *s, const config *cfg, char *err, size_t errlen)
{
    for (const xnode *n = config_first(cfg, "hosts/host"); n; n = config_next(n)) s->nhosts++;
    s->hosts = calloc(s->nhosts ? s->nhosts : 1, sizeof *s->hosts);
    if (!s->hosts) abort();
    size_t i = 0;
    for (const xnode *n = config_first(cfg, "hosts/host"); n; n = config_next(n)) {
        char dom[JID_DOMAIN_BUF];
        const char *v = config_node_str(n, "", "");
        if (jid_domain_of(v, dom, sizeof dom) < 0 || strpbrk(v, "@/")) {
            snprintf(err, errlen, "hosts/host: '%s' is not a domain", v);
            return -1;
        }
        s->hosts[i] = strdup(dom);
        if (!s->hosts[i++]) abort();
    }
    for (const xnode *n = config_first(cfg, "hosts-map/host"); n; n = config_next(n)) s->nmap++;
    s->map = calloc(s->nmap ? s->nmap : 1, sizeof *s->map);
    if (!s->map) abort();
    i = 0;
    for (const xnode *n = config_first(cfg, "hosts-map/host"); n; n = config_next(n), i++) {
        char dom[JID_DOMAIN_BUF];
        const char *name = config_node_str(n, "@name", "");
        host_map_entry *m = &s->map[i];
        if (jid_domain_of(name, dom, sizeof dom) < 0) {
            snprintf(err, errlen, "hosts-map/host: '%s' is not a domain", name);
            return -1;
        }
        m->name = strdup(dom);
        m->address = strdup(config_node_str(n, "@address", ""));
        if (!m->name || !m->address) abort();
        m->port = (int)config_node_int(n, "@port", S2S_DEFAULT_PORT);
        m->direct_tls = config_node_bool(n, "@direct-tls", 0);
        struct sockaddr_storage ss;
        if (uv_ip4_addr(m->address, m->port, (struct sockaddr_in *)&ss) != 0 &&
            uv_ip6_addr(m->address, m->port, (struct sockaddr_in6 *)&ss) != 0) {
            snprintf(err, errlen, "hosts-map/host '%s': '%s' is not an IP address", m->name, m->address);
            return -1;
        }
        if (m->port <= 0 || m->port > 65535) {
            snprintf(err, errlen, "hosts-map/host '%s': bad port %d", m->name, m->port);
            return -1;
        }
    }
    return 0;
}

static long long positive(const config *cfg, const char *path, long long def)
{
    long long v = config_int(cfg, path, def);
    return v < 0 ? def : v;
}

static void load_limits(s2s *s, const config *cfg)
{
    s->lim.queue_max = (size_t)positive(cfg, "limits/queue-max-stanzas", 1000);
    s->lim.connect_timeout_ms = (uint64_t)positive(cfg, "limits/connect-timeout", 30) * 1000u;
    if (!s->lim.connect_timeout_ms) s->lim.connect_timeout_ms = 30000;
    s->lim.idle_timeout_ms = (uint64_t)positive(cfg, "limits/idle-timeout", 600) * 1000u;
    if (!s->lim.idle_timeout_ms) s->lim.idle_timeout_ms = 600000;
    s->lim.max_stanza_bytes = (size_t)positive(cfg, "limits/max-stanza-bytes", 256 * 1024);
    if (s->lim.max_stanza_bytes < 4096) s->lim.max_stanza_bytes = 4096;
    s->lim.conns_per_domain = (unsigned)positive(cfg, "limits/connections-per-domain", 8);
    s->lim.rate_bytes = (size_t)positive(cfg, "limits/rate-bytes", 1024 * 1024);
    s->lim.max_incoming = (unsigned)positive(cfg, "limits/max-connections", 10000);
    s->lim.pairs_per_stream = (unsigned)positive(cfg, "limits/pairs-per-stream", 1000);
    s->lim.unacked_max = (size_t)positive(cfg, "limits/unacked-stanzas", 1000);
    s->lim.retry_ms = (uint64_t)positive(cfg, "limits/retry-interval", 1000);
    if (s->lim.retry_ms < 10) s->lim.retry_ms = 10;
}

static int setup_tls(s2s *s, const config *cfg, char *err, size_t errlen)
{
    const char *cert = config_str(cfg, "tls/cert", NULL);
    const char *key = config_str(cfg, "tls/key", NULL);
    s->tls_required = config_bool(cfg, "tls/required", 0);
    s->tls_verify = config_bool(cfg, "tls/verify", 0);
    if ((cert == NULL) != (key == NULL)) {
        snprintf(err, errlen, "tls/cert and tls/key go together");
        return -1;
    }
    if (!cert && config_first(cfg, "tls/certificate")) {
        snprintf(err, errlen, "tls/certificate needs tls/cert and tls/key as the default");
        return -1;
    }
    if (cert) {
        char e[256];   /* smaller than err, with room for the "tls: " prefix */
        s->server_ctx = tls_server_ctx_from_config(cfg, e, sizeof e);
        if (!s->server_ctx) {
            snprintf(err, errlen, "tls: %s", e);
            return -1;
        }
    } else if (s->tls_required) {
        snprintf(err, errlen, "tls/required needs tls/cert and tls/key");
        return -1;
    }
    char e[256];
    s->client_ctx = tls_client_ctx(s->tls_verify, config_str(cfg, "tls/ca-file", NULL), e, sizeof e);
    if (!s->client_ctx) {
        snprintf(err, errlen, "tls: %s", e);
        return -1;
    }
    return 0;
}

static void sweep_cb(uv_timer_t *t)
{
    s2s *s = t->data;
    out_sweep_idle(s, uv_now(s->loop));
    routes_reap(s);
}

/* ---- stop ---- */

static void on_link_stopped(s2s *s)
{
    log_notice("s2s: stopped");
    uv_stop(s->loop);
}

static void on_conns_closed(s2s *s)
{
    router_link_stop(s, on_link_stopped);
}

static void on_stop_signal(void *ud)
{
    s2s *s = ud;
    if (s->stopping) {
        log_warn("s2s: second stop signal: exiting now");
        uv_stop(s->loop);
        return;
    }
    log_notice("s2s: stopping");
    s->stopping = 1;
    listener_stop(s);
    uv_timer_stop(&s->sweep);
    /* Bounce what waits while the router is still there, and tell the sm. */
    routes_shutdown(s);
    custody_flush(s);
    in_close_all(s);
    out_close_all(s);
    if (s->open_conns == 0) on_conns_closed(s);
    else s->on_conns_closed = on_conns_closed;
}

static void free_all(s2s *s)
{
    for (size_t i = 0; i < s->nhosts; i++) free(s->hosts[i]);
    free(s->hosts);
    for (size_t i = 0; i < s->nmap; i++) {
        free(s->map[i].name);
        free(s->map[i].address);
    }
    free(s->map);
    if (s->secret) {
        crypto_wipe(s->secret, strlen(s->secret));
        free(s->secret);
    }
    if (s->server_ctx) SSL_CTX_free(s->server_ctx);
    if (s->client_ctx) SSL_CTX_free(s->client_ctx);
    strmap_free(&s->routes);
    strmap_free(&s->in_per_domain);
    buf_free(&s->scratch);
    buf_free(&s->keybuf);
}

static double gauge_incoming(void *ud) { return (double)((s2s *)ud)->nins; }
static double gauge_routes(void *ud) { return (double)strmap_count(&((s2s *)ud)->routes); }
static double gauge_conns(void *ud) { return (double)((s2s *)ud)->open_conns; }

static int start_metrics(s2s *s, const config *cfg)
{
    int port = (int)config_int(cfg, "metrics/port", 0);
    if (port <= 0) return 0;
    metrics_gauge_fn("switchboard_s2s_incoming_streams", "Streams from other servers", NULL, gauge_incoming, s);
    metrics_gauge_fn("switchboard_s2s_domain_pairs", "Local/remote domain pairs with a route", NULL, gauge_routes, s);
    metrics_gauge_fn("switchboard_s2s_connections", "Server connections open", NULL, gauge_conns, s);
    return metrics_listen(s->loop, config_str(cfg, "metrics/address", "127.0.0.1"), port) < 0 ? -1 : 0;
}

static const char *reload_path;
static int reload_debug;

/* SIGHUP: the log level changes in place; everything else needs a restart
 * (connections to other servers would have to be renegotiated). */
static void on_reload_signal(void *ud)
{
    (void)ud;
    char err[512];
    config *ncfg = config_load(reload_path, "s2s", s2s_keys, err, sizeof err);
    if (!ncfg) {
        log_error("reload refused, keeping the running configuration: %s", err);
        return;
    }
    if (process_apply_log_level(ncfg, reload_path, reload_debug) == 0)
        log_notice("log level reloaded from %s (other settings need a restart)", reload_path);
    config_free(ncfg);
}

int main(int argc, char **argv)
{
    process_opts opts;
    process_parse_args(argc, argv, "s2s", &opts);
    reload_path = opts.config_path;
    reload_debug = opts.debug;
    log_open("s2s", opts.debug ? LOG_LVL_DEBUG : LOG_LVL_NOTICE, 0);

    char err[512];
    config *cfg = config_load(opts.config_path, "s2s", s2s_keys, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "switchboard-s2s: %s\n", err);
        return 2;
    }
    const char *level = config_str(cfg, "log/level", "notice");
    int lvl = log_level_parse(level);
    if (lvl < 0) {
        fprintf(stderr, "switchboard-s2s: %s: log/level: unknown level '%s'\n", opts.config_path, level);
        config_free(cfg);
        return 2;
    }

    s2s s;
    memset(&s, 0, sizeof s);
    load_limits(&s, cfg);
    if (load_hosts(&s, cfg, err, sizeof err) < 0 || setup_tls(&s, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "switchboard-s2s: %s: %s\n", opts.config_path, err);
        free_all(&s);
        config_free(cfg);
        return 2;
    }
    if (s.nhosts == 0) fprintf(stderr, "switchboard-s2s: %s: warning: no hosts/host: nothing can federate\n", opts.config_path);
    if (opts.check_only) {
        printf("%s: ok\n", opts.config_path);
        free_all(&s);
        config_free(cfg);
        return 0;
    }
    log_open("s2s", opts.debug ? LOG_LVL_DEBUG : (log_level)lvl, config_bool(cfg, "log/syslog", 0));

    s.secret = config_secret(cfg, "dialback/secret");
    if (!s.secret) {
        char tok[33];
        random_token(tok, 32);
        s.secret = strdup(tok);
        if (!s.secret) abort();
        log_notice("s2s: no dialback/secret: using a random one (keys will not survive a restart)");
    }
    char *router_secret = config_secret(cfg, "router/secret");

    uv_loop_t loop;
    uv_loop_init(&loop);
    s.loop = &loop;
    custody_start(&s);
    int rc = 0;
    s.res = resolver_new(&s, config_str(cfg, "dns/nameserver", NULL), config_bool(cfg, "dns/direct-tls", 0), err,
                         sizeof err);
    if (!s.res) {
        log_error("s2s: %s", err);
        rc = 1;
    }
    int port = (int)config_int(cfg, "listen/port", S2S_DEFAULT_PORT);
    if (rc == 0 && port > 0 && listener_start(&s, config_str(cfg, "listen/address", "0.0.0.0"), port) < 0) rc = 1;
    if (rc == 0 && start_metrics(&s, cfg) < 0) rc = 1;
    const char *name = opts.name ? opts.name : config_str(cfg, "router/name", "s2s");
    if (rc == 0 &&
        router_link_start(&s, name, router_secret ? router_secret : "", config_str(cfg, "router/host", "127.0.0.1"),
                          (int)config_int(cfg, "router/port", 5347)) < 0)
        rc = 1;
    if (router_secret) {
        crypto_wipe(router_secret, strlen(router_secret));
        free(router_secret);
    }
    if (rc == 0) {
        uv_timer_init(&loop, &s.sweep);
        s.sweep.data = &s;
        uint64_t every = s.lim.idle_timeout_ms / 4;
        if (every < 250) every = 250;
        if (every > 30000) every = 30000;
        uv_timer_start(&s.sweep, sweep_cb, every, every);
        process_signals_start(&loop, on_stop_signal, on_reload_signal, &s);
        log_notice("s2s: started for %zu domain(s)", s.nhosts);
        uv_run(&loop, UV_RUN_DEFAULT);
        process_signals_stop();
    }
    if (!s.stopping) {
        s.stopping = 1;
        listener_stop(&s);
        routes_shutdown(&s);
    }
    resolver_free(s.res);
    custody_stop(&s);
    if (s.comp) component_free(s.comp);
    metrics_shutdown();
    process_loop_close(&loop);
    free_all(&s);
    config_free(cfg);
    log_close();
    return rc;
}
