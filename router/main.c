/* switchboard-router: configuration, start and shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/process.h"
#include "router/router.h"

static const config_key router_keys[] = {
    {"listen", CFG_SECTION, 0, "where components connect"},
    {"listen/address", CFG_STRING, 0, "address to listen on (default 127.0.0.1)"},
    {"listen/port", CFG_INT, 0, "port to listen on (default 5347)"},
    PROCESS_KEYS_LOG,
    {"limits", CFG_SECTION, 0, "limits"},
    {"limits/max-stanza-bytes", CFG_INT, 0, "largest element a component may send (default 1M)"},
    {"limits/handshake-timeout", CFG_INT, 0, "seconds a new connection has to authenticate (default 10)"},
    {"limits/write-queue-high", CFG_INT, 0, "queued bytes at which senders to a component are paused (default 1M)"},
    {"limits/write-queue-max", CFG_INT, 0, "queued bytes at which a component that does not read is cut off (default 64M)"},
    {"limits/raw-envelopes", CFG_BOOL, 0,
     "forward route envelopes of trusted components as their bytes, unparsed (default true)"},
    PROCESS_KEYS_METRICS,
    {"component", CFG_SECTION, CFG_MULTI, "a component that may connect"},
    {"component/@name", CFG_STRING, CFG_REQUIRED, "its name; 'prefix*' or '*' match several"},
    {"component/@secret", CFG_SECRET, CFG_REQUIRED, "its shared secret (value, file:/path or env:NAME)"},
    {"component/@trusted", CFG_BOOL, 0, "a Switchboard process: may bind names and route (default false)"},
    {NULL, 0, 0, NULL},
};

typedef struct router_app {
    router r;
    const char *config_path;
    int debug_forced;
} router_app;

static void load_acls(router *r, const config *cfg)
{
    r->nacls = 0;
    for (const xnode *n = config_first(cfg, "component"); n; n = config_next(n)) r->nacls++;
    r->acls = calloc(r->nacls ? r->nacls : 1, sizeof *r->acls);
    if (!r->acls) abort();
    size_t i = 0;
    for (const xnode *n = config_first(cfg, "component"); n; n = config_next(n), i++) {
        r->acls[i].pattern = strdup(config_node_str(n, "@name", ""));
        r->acls[i].secret = config_node_secret(n, "@secret");
        r->acls[i].trusted = config_node_bool(n, "@trusted", 0);
        if (!r->acls[i].pattern || !r->acls[i].secret) abort();
    }
}

static void free_acls(router *r)
{
    for (size_t i = 0; i < r->nacls; i++) {
        free(r->acls[i].pattern);
        crypto_wipe(r->acls[i].secret, strlen(r->acls[i].secret));
        free(r->acls[i].secret);
    }
    free(r->acls);
}

static void load_limits(router *r, const config *cfg)
{
    r->limits.max_stanza_bytes = (size_t)config_int(cfg, "limits/max-stanza-bytes", 1024 * 1024);
    r->limits.handshake_timeout_ms = (unsigned)config_int(cfg, "limits/handshake-timeout", 10) * 1000u;
    r->limits.write_high_water = (size_t)config_int(cfg, "limits/write-queue-high", 1024 * 1024);
    r->limits.write_max = (size_t)config_int(cfg, "limits/write-queue-max", 64 * 1024 * 1024);
    r->limits.raw_envelopes = config_bool(cfg, "limits/raw-envelopes", 1);
}

/* SIGHUP: the component list (names, secrets, trust), limits for new
 * connections and the log level change without dropping any component. */
static void on_reload_signal(void *ud)
{
    router_app *app = ud;
    router *r = &app->r;
    char err[512];
    config *ncfg = config_load(app->config_path, "router", router_keys, err, sizeof err);
    if (!ncfg) {
        log_error("reload refused, keeping the running configuration: %s", err);
        return;
    }
    if (process_apply_log_level(ncfg, app->config_path, app->debug_forced) < 0) {
        config_free(ncfg);
        return;
    }
    free_acls(r);
    load_acls(r, ncfg);
    load_limits(r, ncfg);
    /* Connections still in their handshake look their entry up again. */
    for (rclient *rc = r->clients; rc; rc = rc->next)
        if (rc->state == RC_HANDSHAKE && rc->name) {
            rc->acl = route_find_acl(r, rc->name);
            if (!rc->acl) rclient_stream_error(rc, "host-unknown", "this component is no longer configured");
        }
    config_free(ncfg);
    log_notice("configuration reloaded from %s: %zu component entries", app->config_path, r->nacls);
}

static void on_stopped(router *r)
{
    log_notice("all components disconnected; router stopped");
    uv_stop(r->loop);
}

static void on_stop_signal(void *ud)
{
    router *r = &((router_app *)ud)->r;
    if (r->stopping) {
        log_warn("second stop signal: exiting now");
        uv_stop(r->loop);
        return;
    }
    log_notice("stopping: telling %zu components", r->nclients);
    router_stop(r, on_stopped);
}

int main(int argc, char **argv)
{
    process_opts opts;
    process_parse_args(argc, argv, "router", &opts);
    log_open("router", opts.debug ? LOG_LVL_DEBUG : LOG_LVL_NOTICE, 0);

    char err[512];
    config *cfg = config_load(opts.config_path, "router", router_keys, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "switchboard-router: %s\n", err);
        return 2;
    }
    if (opts.check_only) {
        printf("%s: ok\n", opts.config_path);
        config_free(cfg);
        return 0;
    }
    const char *level = config_str(cfg, "log/level", "notice");
    int lvl = log_level_parse(level);
    if (lvl < 0) {
        fprintf(stderr, "switchboard-router: %s: log/level: unknown level '%s'\n", opts.config_path, level);
        config_free(cfg);
        return 2;
    }
    log_open("router", opts.debug ? LOG_LVL_DEBUG : (log_level)lvl, config_bool(cfg, "log/syslog", 0));

    uv_loop_t loop;
    uv_loop_init(&loop);
    router_app app;
    memset(&app, 0, sizeof app);
    app.config_path = opts.config_path;
    app.debug_forced = opts.debug;
    router *rt = &app.r;
    rt->loop = &loop;
    load_limits(rt, cfg);
    load_acls(rt, cfg);

    int rc = 0;
    if (router_start(rt, config_str(cfg, "listen/address", "127.0.0.1"), (int)config_int(cfg, "listen/port", 5347)) < 0) {
        rc = 1;
    } else {
        int metrics_port = (int)config_int(cfg, "metrics/port", 0);
        if (metrics_port > 0) {
            router_metrics_init(rt);
            if (metrics_listen(&loop, config_str(cfg, "metrics/address", "127.0.0.1"), metrics_port) < 0) rc = 1;
        }
    }
    if (rc == 0) {
        process_signals_start(&loop, on_stop_signal, on_reload_signal, &app);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    metrics_shutdown();
    process_loop_close(&loop);
    strmap_free(&rt->routes);
    strmap_free(&rt->known);
    buf_free(&rt->out);
    free_acls(rt);
    config_free(cfg);
    log_close();
    return rc;
}
