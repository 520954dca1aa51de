/* switchboard-c2s: configuration, start and shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s/auth_cache.h"
#include "c2s/c2s.h"
#include "c2s/observe.h"
#include "common/crypto.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/scram.h"
#include "common/tls.h"

static const config_key c2s_keys[] = {
    PROCESS_KEYS_ROUTER_LINK("c2s-1"),
    {"router/max-stanza-bytes", CFG_INT, 0, "largest element accepted from the router (default 1M)"},
    {"router/raw-routes", CFG_BOOL, 0, "deliver plain stanzas from the sm without parsing them (default true)"},
    PROCESS_KEYS_LOG,
    {"log/debug-jid", CFG_STRING, CFG_MULTI, "trace the stanzas of this user (names and addresses, never content)"},
    PROCESS_KEYS_METRICS,
    {"database", CFG_SECTION, 0, "PostgreSQL, for credentials and registration"},
    {"database/conninfo", CFG_SECRET, 0, "libpq connection string (value, file:/path or env:NAME)"},
    {"database/connections", CFG_INT, 0, "connections in the pool (default 2)"},
    {"hosts", CFG_SECTION, 0, "hosted domains"},
    {"hosts/host", CFG_STRING, CFG_MULTI, "a hosted domain"},
    {"listen", CFG_SECTION, 0, "where clients connect"},
    {"listen/address", CFG_STRING, 0, "address to listen on (default 0.0.0.0)"},
    {"listen/port", CFG_INT, 0, "port for STARTTLS streams (default 5222)"},
    {"listen/tls-port", CFG_INT, 0, "port for direct TLS, XEP-0368 (default 5223; 0 = off)"},
    {"listen/reuseport", CFG_FLAG, 0, "share the ports with other c2s processes (SO_REUSEPORT)"},
    {"listen/proxy-protocol", CFG_FLAG, 0, "connections start with a PROXY protocol v2 header (behind a balancer)"},
    {"tls", CFG_SECTION, 0, "TLS"},
    {"tls/cert", CFG_FILE, 0, "certificate chain (PEM)"},
    {"tls/key", CFG_FILE, 0, "private key (PEM)"},
    {"tls/required", CFG_BOOL, 0, "STARTTLS before authentication (default true)"},
    {"tls/certificate", CFG_SECTION, CFG_MULTI, "a certificate for one domain, chosen by the name the client asks for (SNI)"},
    {"tls/certificate/@domain", CFG_STRING, CFG_REQUIRED, "the domain (server name) this certificate is for"},
    {"tls/certificate/cert", CFG_FILE, CFG_REQUIRED, "its certificate chain (PEM)"},
    {"tls/certificate/key", CFG_FILE, CFG_REQUIRED, "its private key (PEM)"},
    {"auth", CFG_SECTION, 0, "authentication"},
    {"auth/plain-without-tls", CFG_BOOL, 0, "allow PLAIN and plaintext iq:auth on unencrypted streams (default false)"},
    {"auth/store-plaintext", CFG_BOOL, 0, "keep plaintext passwords for legacy digest auth (default false)"},
    {"auth/channel-binding", CFG_BOOL, 0, "offer SCRAM-*-PLUS with tls-exporter over TLS 1.3 (default false)"},
    {"auth/scram-iterations", CFG_INT, 0, "PBKDF2 iterations for new SCRAM secrets (default 4096)"},
    {"auth/password-cache-size", CFG_INT, 0, "accounts whose last good PLAIN/iq:auth password check is remembered (default 10000; 0 = off)"},
    {"auth/password-cache-ttl", CFG_INT, 0, "seconds a remembered password check stays good (default 300)"},
    {"register", CFG_SECTION, 0, "in-band registration (XEP-0077)"},
    {"register/enabled", CFG_BOOL, 0, "allow creating accounts in-band (default false)"},
    {"register/per-ip-per-minute", CFG_INT, 0, "accounts one address may create per minute (default 3; 0 = no cap)"},
    {"limits", CFG_SECTION, 0, "limits"},
    {"limits/max-stanza-bytes", CFG_INT, 0, "largest element a client may send (default 64k)"},
    {"limits/parser-idle-ms", CFG_INT, 0, "milliseconds a stream idle between stanzas keeps its XML parser (default 250; 0 = frees it at once)"},
    {"limits/connections-per-ip", CFG_INT, 0, "connections from one address (default 32; 0 = no cap)"},
    {"limits/max-connections", CFG_INT, 0, "connections in all (default 0 = no cap)"},
    {"limits/unauthenticated-timeout", CFG_INT, 0, "seconds to authenticate and bind (default 60)"},
    {"limits/idle-timeout", CFG_INT, 0, "seconds without traffic before the stream is closed (default 600)"},
    {"limits/keepalive-interval", CFG_INT, 0, "seconds of silence before a whitespace keepalive (default 60; 0 = off)"},
    {"limits/rate-bytes", CFG_INT, 0, "bytes per second a client may send, sustained (default 10k; 0 = no limit)"},
    {"limits/rate-burst", CFG_INT, 0, "bytes a client may send in a burst (default 100k)"},
    {"limits/rate-disconnect-after", CFG_INT, 0, "seconds over the rate before disconnecting (default 30)"},
    {"limits/auth-failures-per-ip", CFG_INT, 0, "failed logins per address per window (default 10)"},
    {"limits/auth-failures-per-account", CFG_INT, 0, "failed logins per account per window (default 5)"},
    {"limits/auth-failure-window", CFG_INT, 0, "seconds the failed-login counts cover (default 300)"},
    {"limits/auth-retries", CFG_INT, 0, "SASL failures on one stream before it is closed (default 3)"},
    {"limits/write-queue-high", CFG_INT, 0, "bytes queued to a slow client before it counts as congested (default 256k)"},
    {"limits/write-queue-max", CFG_INT, 0, "bytes queued to a client that does not read before it is cut off (default 4m)"},
    {"limits/session-start-timeout", CFG_INT, 0, "seconds to wait for the sm to start a session (default 30)"},
    {"limits/max-unauthenticated", CFG_INT, 0, "connections not authenticated yet, in all (default 1000; 0 = no cap)"},
    {"limits/unauthenticated-per-ip", CFG_INT, 0, "connections not authenticated yet from one address (default 16; 0 = no cap)"},
    {"limits/rate-stanzas", CFG_INT, 0, "top-level elements per second a connection may send, sustained (default 20; 0 = no limit)"},
    {"limits/rate-stanzas-burst", CFG_INT, 0, "top-level elements a connection may send in a burst (default 200)"},
    {"limits/rate-stanzas-per-ip", CFG_INT, 0, "top-level elements per second from one address, all connections (default 100; 0 = no limit)"},
    {"limits/rate-stanzas-per-ip-burst", CFG_INT, 0, "top-level elements from one address in a burst (default 1000)"},
    {"csi", CFG_SECTION, 0, "client state indication (XEP-0352)"},
    {"csi/max-held", CFG_INT, 0, "presence stanzas held for an inactive client before all are written (default 100)"},
    {"csi/max-held-bytes", CFG_INT, 0, "bytes held for an inactive client before all are written (default 256k)"},
    {"sm", CFG_SECTION, 0, "stream management (XEP-0198)"},
    {"sm/resume-timeout", CFG_INT, 0, "seconds a dropped session may be resumed (default 300; 0 = no resumption)"},
    {"sm/max-unacked", CFG_INT, 0, "stanzas sent and not acknowledged before the stream is closed (default 1000)"},
    {"sm/drain-timeout", CFG_INT, 0, "seconds to wait for a client's <a/> when the sm is lost (default 5; 0 = close at once)"},
    {NULL, 0, 0, NULL},
};

int c2s_host_index(const c2s *srv, const char *domain)
{
    for (size_t i = 0; i < srv->nhosts; i++)
        if (!strcmp(srv->hosts[i], domain)) return (int)i;
    return -1;
}

static int load_hosts(c2s *srv)
{
    for (const xnode *n = config_first(srv->cfg, "hosts/host"); n; n = config_next(n)) srv->nhosts++;
    if (!srv->nhosts) {
        fprintf(stderr, "switchboard-c2s: %s: no hosts/host: at least one hosted domain is needed\n",
                config_path(srv->cfg));
        return -1;
    }
    srv->hosts = calloc(srv->nhosts, sizeof *srv->hosts);
    srv->host_online = calloc(srv->nhosts, 1);
    if (!srv->hosts || !srv->host_online) abort();
    size_t i = 0;
    for (const xnode *n = config_first(srv->cfg, "hosts/host"); n; n = config_next(n), i++) {
        const char *v = config_node_str(n, "", "");
        char d[JID_PART_MAX + 1];
        if (jid_nameprep(v, d, sizeof d) <= 0) {
            fprintf(stderr, "switchboard-c2s: %s:%u: hosts/host: '%s' is not a valid domain\n",
                    config_path(srv->cfg), n->line, v);
            return -1;
        }
        srv->hosts[i] = strdup(d);
        if (!srv->hosts[i]) abort();
    }
    return 0;
}

static void load_auth_settings(c2s *srv)
{
    const config *cfg = srv->cfg;
    srv->plain_without_tls = config_bool(cfg, "auth/plain-without-tls", 0);
    srv->store_plaintext = config_bool(cfg, "auth/store-plaintext", 0);
    srv->channel_binding = config_bool(cfg, "auth/channel-binding", 0);
    srv->scram_iterations = (unsigned)config_int(cfg, "auth/scram-iterations", SCRAM_DEFAULT_ITERATIONS);
    if (srv->scram_iterations < 1) srv->scram_iterations = SCRAM_DEFAULT_ITERATIONS;
    srv->register_enabled = config_bool(cfg, "register/enabled", 0);
    srv->register_per_ip_per_minute = (unsigned)config_int(cfg, "register/per-ip-per-minute", 3);
    long long cache_size = config_int(cfg, "auth/password-cache-size", 10000);
    long long cache_ttl = config_int(cfg, "auth/password-cache-ttl", 300);
    size_t n = cache_size > 0 ? (size_t)cache_size : 0;
    uint64_t ttl_ms = (uint64_t)(cache_ttl > 0 ? (cache_ttl > 86400 ? 86400 : cache_ttl) : 0) * 1000;
    if (ttl_ms == 0) n = 0;
    if (!srv->auth_cache) srv->auth_cache = auth_cache_new(n, ttl_ms);
    else auth_cache_configure(srv->auth_cache, n, ttl_ms);
}

static void load_limits(c2s *srv)
{
    const config *cfg = srv->cfg;
    c2s_limits *l = &srv->lim;
    l->max_stanza_bytes = (size_t)config_int(cfg, "limits/max-stanza-bytes", 64 * 1024);
    long long parser_idle = config_int(cfg, "limits/parser-idle-ms", XML_PARSER_IDLE_MS_DEFAULT);
    xml_stream_set_parser_idle_ms(parser_idle < 0 ? XML_PARSER_IDLE_MS_DEFAULT
                                  : parser_idle > 3600000 ? 3600000u : (unsigned)parser_idle);
    l->connections_per_ip = (unsigned)config_int(cfg, "limits/connections-per-ip", 32);
    l->max_connections = (unsigned)config_int(cfg, "limits/max-connections", 0);
    l->unauth_timeout_ms = (uint64_t)config_int(cfg, "limits/unauthenticated-timeout", 60) * 1000;
    l->idle_timeout_ms = (uint64_t)config_int(cfg, "limits/idle-timeout", 600) * 1000;
    l->keepalive_ms = (uint64_t)config_int(cfg, "limits/keepalive-interval", 60) * 1000;
    l->rate_bytes = (uint64_t)config_int(cfg, "limits/rate-bytes", 10 * 1024);
    l->rate_burst = (uint64_t)config_int(cfg, "limits/rate-burst", 100 * 1024);
    if (l->rate_burst < l->rate_bytes) l->rate_burst = l->rate_bytes;
    l->rate_max_throttled_ms = (uint64_t)config_int(cfg, "limits/rate-disconnect-after", 30) * 1000;
    l->auth_failures_per_ip = (unsigned)config_int(cfg, "limits/auth-failures-per-ip", 10);
    l->auth_failures_per_account = (unsigned)config_int(cfg, "limits/auth-failures-per-account", 5);
    l->auth_failure_window_ms = (uint64_t)config_int(cfg, "limits/auth-failure-window", 300) * 1000;
    l->auth_retries = (unsigned)config_int(cfg, "limits/auth-retries", 3);
    if (l->auth_retries > 10) l->auth_retries = 10;
    l->write_high_water = (size_t)config_int(cfg, "limits/write-queue-high", 256 * 1024);
    l->write_max = (size_t)config_int(cfg, "limits/write-queue-max", 4 * 1024 * 1024);
    l->session_start_timeout_ms = (uint64_t)config_int(cfg, "limits/session-start-timeout", 30) * 1000;
    l->max_unauthenticated = (unsigned)config_int(cfg, "limits/max-unauthenticated", 1000);
    l->unauthenticated_per_ip = (unsigned)config_int(cfg, "limits/unauthenticated-per-ip", 16);
    l->rate_stanzas = (uint64_t)config_int(cfg, "limits/rate-stanzas", 20);
    l->rate_stanzas_burst = (uint64_t)config_int(cfg, "limits/rate-stanzas-burst", 200);
    if (l->rate_stanzas_burst < l->rate_stanzas) l->rate_stanzas_burst = l->rate_stanzas;
    l->rate_stanzas_per_ip = (uint64_t)config_int(cfg, "limits/rate-stanzas-per-ip", 100);
    l->rate_stanzas_per_ip_burst = (uint64_t)config_int(cfg, "limits/rate-stanzas-per-ip-burst", 1000);
    if (l->rate_stanzas_per_ip_burst < l->rate_stanzas_per_ip) l->rate_stanzas_per_ip_burst = l->rate_stanzas_per_ip;
    srv->resume_timeout_ms = (uint64_t)config_int(cfg, "sm/resume-timeout", 300) * 1000;
    srv->max_unacked = (unsigned)config_int(cfg, "sm/max-unacked", 1000);
    long long drain_s = config_int(cfg, "sm/drain-timeout", 5);
    srv->drain_timeout_ms = drain_s > 0 ? (uint64_t)(drain_s > 3600 ? 3600 : drain_s) * 1000 : 0;
}

/* SIGHUP: read the config again and apply what can change while clients
 * stay connected: log level, limits, authentication and registration
 * settings, and the TLS certificates, the default and those per domain (new
 * connections get the new ones). A
 * config that does not validate is refused and the running one kept. */
static void on_reload_signal(void *ud)
{
    c2s *srv = ud;
    char err[512];
    config *ncfg = config_load(srv->config_path, "c2s", c2s_keys, err, sizeof err);
    if (!ncfg) {
        log_error("c2s %s: reload refused, keeping the running configuration: %s", srv->name, err);
        return;
    }
    SSL_CTX *ctx = NULL;
    if (!config_str(ncfg, "tls/cert", NULL) && config_first(ncfg, "tls/certificate")) {
        log_error("c2s %s: reload refused, keeping the running configuration: tls/certificate needs tls/cert and "
                  "tls/key as the default", srv->name);
        config_free(ncfg);
        return;
    }
    if (config_str(ncfg, "tls/cert", NULL) && config_str(ncfg, "tls/key", NULL)) {
        ctx = tls_server_ctx_from_config(ncfg, err, sizeof err);
        if (!ctx) {
            log_error("c2s %s: reload refused, keeping the running configuration: %s", srv->name, err);
            config_free(ncfg);
            return;
        }
    }
    if (process_apply_log_level(ncfg, srv->config_path, srv->debug_forced) < 0) {
        if (ctx) SSL_CTX_free(ctx);
        config_free(ncfg);
        return;
    }
    if (ctx) {
        /* Streams already encrypted hold a reference to the old context. */
        if (srv->tls_ctx) SSL_CTX_free(srv->tls_ctx);
        srv->tls_ctx = ctx;
    }
    config *running = srv->cfg;
    srv->cfg = ncfg;
    load_limits(srv);
    c2s_reschedule_clients(srv);   /* the deadlines follow the new limits */
    load_auth_settings(srv);
    observe_reload(ncfg);
    srv->cfg = running;
    config_free(ncfg);
    log_notice("c2s %s: configuration reloaded from %s (hosts, ports and the router link need a restart)",
               srv->name, srv->config_path);
}

static double gauge_connections(void *ud) { return (double)((c2s *)ud)->nclients; }
static double gauge_sessions(void *ud) { return (double)strmap_count(&((c2s *)ud)->clients_by_id); }
static double gauge_resumable(void *ud) { return (double)strmap_count(&((c2s *)ud)->resumable); }
static double gauge_addresses(void *ud) { return (double)strmap_count(&((c2s *)ud)->ips); }
static double gauge_unauthenticated(void *ud) { return (double)((c2s *)ud)->nunauthed; }

static int start_metrics(c2s *srv)
{
    int port = (int)config_int(srv->cfg, "metrics/port", 0);
    observe_init(srv, port > 0);
    if (port <= 0) return 0;
    metrics_gauge_fn("switchboard_c2s_connections", "Client connections", NULL, gauge_connections, srv);
    metrics_gauge_fn("switchboard_c2s_clients_by_id", "Connections and detached sessions known by id", NULL,
                     gauge_sessions, srv);
    metrics_gauge_fn("switchboard_c2s_resumable_sessions", "Sessions that can be resumed (XEP-0198)", NULL,
                     gauge_resumable, srv);
    metrics_gauge_fn("switchboard_c2s_client_addresses", "Distinct client addresses connected", NULL,
                     gauge_addresses, srv);
    metrics_gauge_fn("switchboard_c2s_unauthenticated_connections", "Connections not authenticated yet", NULL,
                     gauge_unauthenticated, srv);
    return metrics_listen(srv->loop, config_str(srv->cfg, "metrics/address", "127.0.0.1"), port) < 0 ? -1 : 0;
}

static void on_loop_iteration_done(uv_check_t *h)
{
    c2s *srv = h->data;
    if (srv->nack_due) sm_flush_ack_requests(srv);
}

static void on_tick(uv_timer_t *t)
{
    c2s *srv = t->data;
    c2s_tick(srv, uv_now(srv->loop));
    /* Idle streams give their parsers back even when no other stream is fed. */
    xml_stream_release_idle();
    auth_cache_expire(srv->auth_cache, uv_now(srv->loop));
}

static void link_stopped(c2s *srv)
{
    log_notice("c2s %s: stopped", srv->name);
    uv_stop(srv->loop);
}

static void clients_gone(c2s *srv)
{
    log_notice("c2s %s: every client is gone; leaving the router", srv->name);
    session_link_stop(srv, link_stopped);
}

static void on_stop_signal(void *ud)
{
    c2s *srv = ud;
    if (srv->stopping) {
        log_warn("c2s %s: second stop signal: exiting now", srv->name);
        uv_stop(srv->loop);
        return;
    }
    srv->stopping = 1;
    log_notice("c2s %s: stopping: closing %zu client connections", srv->name, srv->nclients);
    listener_stop(srv);
    uv_timer_stop(&srv->tick);
    srv->on_stopped = clients_gone;
    c2s_stop_clients(srv);
    if (!srv->clients && srv->on_stopped) {
        srv->on_stopped = NULL;
        clients_gone(srv);
    }
}

static void free_maps(c2s *srv)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&srv->ips, &pos, &key, &val)) free(val);
    strmap_free(&srv->ips);
    pos = 0;
    while (strmap_next(&srv->account_failures, &pos, &key, &val)) free(val);
    strmap_free(&srv->account_failures);
    strmap_free(&srv->clients_by_id);
    free(srv->ack_due);
    strmap_free(&srv->resumable);
}

int main(int argc, char **argv)
{
    process_opts opts;
    process_parse_args(argc, argv, "c2s", &opts);
    log_open("c2s", opts.debug ? LOG_LVL_DEBUG : LOG_LVL_NOTICE, 0);

    char err[512];
    config *cfg = config_load(opts.config_path, "c2s", c2s_keys, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "switchboard-c2s: %s\n", err);
        return 2;
    }
    c2s srv;
    memset(&srv, 0, sizeof srv);
    srv.cfg = cfg;
    srv.name = opts.name ? opts.name : config_str(cfg, "router/name", "c2s-1");
    int rc = 0;
    const char *level = config_str(cfg, "log/level", "notice");
    int lvl = log_level_parse(level);
    if (lvl < 0) {
        fprintf(stderr, "switchboard-c2s: %s: log/level: unknown level '%s'\n", opts.config_path, level);
        rc = 2;
        goto out_cfg;
    }
    if (load_hosts(&srv) < 0) {
        rc = 2;
        goto out_cfg;
    }
    const char *cert = config_str(cfg, "tls/cert", NULL);
    const char *key = config_str(cfg, "tls/key", NULL);
    srv.tls_required = config_bool(cfg, "tls/required", 1);
    int tls_port = (int)config_int(cfg, "listen/tls-port", 5223);
    if ((cert == NULL) != (key == NULL)) {
        fprintf(stderr, "switchboard-c2s: %s: tls/cert and tls/key go together\n", opts.config_path);
        rc = 2;
        goto out_cfg;
    }
    if (!cert && (srv.tls_required || tls_port > 0)) {
        fprintf(stderr, "switchboard-c2s: %s: tls/cert and tls/key are needed (tls/required is on or "
                        "listen/tls-port is set); create them with switchboardctl tls-selfsigned\n", opts.config_path);
        rc = 2;
        goto out_cfg;
    }
    if (!cert && config_first(cfg, "tls/certificate")) {
        fprintf(stderr, "switchboard-c2s: %s: tls/certificate needs tls/cert and tls/key as the default\n",
                opts.config_path);
        rc = 2;
        goto out_cfg;
    }
    if (cert) {
        srv.tls_ctx = tls_server_ctx_from_config(cfg, err, sizeof err);
        if (!srv.tls_ctx) {
            fprintf(stderr, "switchboard-c2s: %s: %s\n", opts.config_path, err);
            rc = 2;
            goto out_cfg;
        }
    }
    if (opts.check_only) {
        printf("%s: ok\n", opts.config_path);
        goto out_cfg;
    }
    log_open("c2s", opts.debug ? LOG_LVL_DEBUG : (log_level)lvl, config_bool(cfg, "log/syslog", 0));

    srv.proxy_protocol = config_bool(cfg, "listen/proxy-protocol", 0);
    srv.config_path = opts.config_path;
    srv.debug_forced = opts.debug;
    load_auth_settings(&srv);
    load_limits(&srv);
    random_bytes(srv.fake_salt_key, sizeof srv.fake_salt_key);

    uv_loop_t loop;
    uv_loop_init(&loop);
    srv.loop = &loop;
    uv_timer_init(&loop, &srv.tick);
    srv.tick.data = &srv;
    uv_timer_init(&loop, &srv.throttle_timer);
    srv.throttle_timer.data = &srv;
    uv_check_init(&loop, &srv.ack_check);
    srv.ack_check.data = &srv;
    uv_check_start(&srv.ack_check, on_loop_iteration_done);
    uv_unref((uv_handle_t *)&srv.ack_check);

    if (start_metrics(&srv) < 0 || accounts_open(&srv) < 0 || session_link_start(&srv) < 0 ||
        listener_start(&srv, config_str(cfg, "listen/address", "0.0.0.0"), (int)config_int(cfg, "listen/port", 5222),
                       tls_port, config_bool(cfg, "listen/reuseport", 0)) < 0) {
        rc = 1;
    } else {
        log_notice("c2s %s: serving %zu domain%s, TLS %s, registration %s", srv.name, srv.nhosts,
                   srv.nhosts == 1 ? "" : "s", srv.tls_required ? "required" : "optional",
                   srv.register_enabled ? "open" : "closed");
        uv_timer_start(&srv.tick, on_tick, 1000, 1000);
        process_signals_start(&loop, on_stop_signal, on_reload_signal, &srv);
        uv_run(&loop, UV_RUN_DEFAULT);
        process_signals_stop();
    }
    /* Whatever is left (a second signal, a failed start). */
    srv.stopping = 1;
    srv.on_stopped = NULL;
    while (srv.clients) client_free(srv.clients);
    listener_stop(&srv);
    if (srv.comp) component_free(srv.comp);
    accounts_close(&srv);
    metrics_shutdown();
    observe_shutdown();
    process_loop_close(&loop);
    free_maps(&srv);
    auth_cache_free(srv.auth_cache);
    srv.auth_cache = NULL;
    buf_free(&srv.out);
    free(srv.wakeups);

out_cfg:
    if (srv.tls_ctx) SSL_CTX_free(srv.tls_ctx);
    for (size_t i = 0; i < srv.nhosts; i++) free(srv.hosts ? srv.hosts[i] : NULL);
    free(srv.hosts);
    free(srv.host_online);
    config_free(cfg);
    log_close();
    return rc;
}
