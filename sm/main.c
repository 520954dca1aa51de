/* switchboard-sm: configuration, start and shutdown of the session manager. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/component.h"
#include "common/config.h"
#include "common/crypto.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "sm/module.h"
#include "sm/sm.h"
#include "storage/storage.h"

static const config_key sm_keys[] = {
    PROCESS_KEYS_ROUTER_LINK("sm"),
    PROCESS_KEYS_LOG,
    PROCESS_KEYS_METRICS,
    {"database", CFG_SECTION, 0, "PostgreSQL"},
    {"database/conninfo", CFG_SECRET, CFG_REQUIRED, "libpq connection string (value, file:/path or env:NAME)"},
    {"database/connections", CFG_INT, 0, "connections in the pool (default 2)"},
    {"database/query-timeout", CFG_INT, 0, "seconds before a query counts as failed (default 10)"},
    {"database/batch-max", CFG_INT, 0, "requests committed together in one transaction (default 128, at most 256)"},
    {"database/migrate-on-start", CFG_FLAG, 0, "apply the SQL migrations before starting"},
    {"database/migrations", CFG_STRING, 0, "directory of the SQL migrations (default: installed or source tree)"},
    {"database/start-wait", CFG_INT, 0, "seconds to wait for the database at start when migrating (default 30)"},
    {"hosts", CFG_SECTION, CFG_REQUIRED, "hosted domains"},
    {"hosts/host", CFG_STRING, CFG_MULTI | CFG_REQUIRED, "a hosted domain (repeat for virtual hosts)"},
    {"limits", CFG_SECTION, 0, "limits"},
    {"limits/max-roster-items", CFG_INT, 0, "items in one roster (default 1000)"},
    {"limits/offline-quota", CFG_INT, 0, "offline messages kept per user (default 1000)"},
    {"limits/max-sessions-per-user", CFG_INT, 0, "simultaneous sessions of one user (default 10)"},
    {"limits/max-queue-per-user", CFG_INT, 0, "stanzas waiting for one user (default 1000)"},
    {"limits/max-item-name-bytes", CFG_INT, 0, "bytes of a roster item's name (default 1023)"},
    {"limits/max-groups-per-item", CFG_INT, 0, "groups of one roster item (default 64)"},
    {"limits/max-group-name-bytes", CFG_INT, 0, "bytes of a group name (default 1023)"},
    {"limits/park-timeout", CFG_INT, 0, "seconds unacknowledged messages wait for their c2s after the router was lost (default 60)"},
    {NULL, 0, 0, NULL},
};

#define FLUSH_TIMEOUT_MS 5000

typedef struct app {
    uv_timer_t flush_timer;       /* shutdown: waits for database writes */
    uint64_t flush_deadline;
    const char *config_path;
    const config_key *keys;
    int debug_forced;
    uv_loop_t loop;
    sm sm;
    component *comp;
    storage *db;
    int stopping;
} app;

static void on_component_stopped(component *c, void *ud)
{
    (void)c;
    sm *s = ud;   /* the component's user data is the sm (component_new below) */
    uv_stop(s->loop);
}

static void finish_stop(app *a)
{
    /* Requests still in flight complete now (with STORAGE_UNAVAILABLE). */
    storage_free(a->db);
    a->db = NULL;
    a->sm.db = NULL;
    component_stop(a->comp, on_component_stopped);
}

static void on_flush_tick(uv_timer_t *t)
{
    app *a = t->data;
    size_t left = a->db ? storage_pending(a->db) : 0;
    if (left && uv_now(&a->loop) < a->flush_deadline) return;
    if (left) log_warn("stopping: %zu database requests still unanswered after %d ms", left, FLUSH_TIMEOUT_MS);
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    finish_stop(a);
}

static void on_stop_signal(void *ud)
{
    app *a = ud;
    if (a->stopping) {
        log_warn("second stop signal: exiting now");
        uv_stop(&a->loop);
        return;
    }
    a->stopping = 1;
    log_notice("stopping: ending %zu sessions", strmap_count(&a->sm.sessions));
    sm_shutdown(&a->sm);
    /* What the ending sessions wrote (offline messages handed back, last
     * activity, ...) lands before the pool closes: wait for it, within a bound. */
    a->flush_deadline = uv_now(&a->loop) + FLUSH_TIMEOUT_MS;
    uv_timer_init(&a->loop, &a->flush_timer);
    a->flush_timer.data = a;
    uv_timer_start(&a->flush_timer, on_flush_tick, 0, 20);
}

static unsigned limit(const config *cfg, const char *path, long long def, long long max)
{
    long long v = config_int(cfg, path, def);
    if (v < 0) v = 0;
    if (v > max) v = max;
    return (unsigned)v;
}

static void load_limits(sm_limits *l, const config *cfg)
{
    l->max_roster_items = limit(cfg, "limits/max-roster-items", 1000, 1000000);
    l->offline_quota = limit(cfg, "limits/offline-quota", 1000, 1000000);
    l->max_sessions = limit(cfg, "limits/max-sessions-per-user", 10, 100000);
    l->max_queue = limit(cfg, "limits/max-queue-per-user", 1000, 1000000);
    l->max_item_name_bytes = limit(cfg, "limits/max-item-name-bytes", 1023, 65536);
    l->max_groups = limit(cfg, "limits/max-groups-per-item", 64, 10000);
    l->max_group_bytes = limit(cfg, "limits/max-group-name-bytes", 1023, 65536);
    l->park_timeout_s = limit(cfg, "limits/park-timeout", 60, 86400);
}

/* SIGHUP: log level and limits change in place; hosts, the database and
 * the modules need a restart. A config that does not validate is refused. */
static void on_reload_signal(void *ud)
{
    app *a = ud;
    char err[512];
    config *ncfg = config_load(a->config_path, "sm", a->keys, err, sizeof err);
    if (!ncfg) {
        log_error("reload refused, keeping the running configuration: %s", err);
        return;
    }
    if (process_apply_log_level(ncfg, a->config_path, a->debug_forced) == 0) {
        load_limits(&a->sm.limits, ncfg);
        log_notice("configuration reloaded from %s (hosts, database and modules need a restart)", a->config_path);
    }
    config_free(ncfg);
}

static double gauge_sessions(void *ud) { return (double)strmap_count(&((sm *)ud)->sessions); }
static double gauge_users(void *ud) { return (double)strmap_count(&((sm *)ud)->users); }
static double gauge_db_ready(void *ud) { return ((sm *)ud)->db && storage_ready(((sm *)ud)->db) ? 1 : 0; }

static double db_answered(void *ud)
{
    uint64_t n = 0;
    if (((sm *)ud)->db) storage_stats(((sm *)ud)->db, &n, NULL);
    return (double)n;
}

static double db_seconds(void *ud)
{
    double secs = 0;
    if (((sm *)ud)->db) storage_stats(((sm *)ud)->db, NULL, &secs);
    return secs;
}

static int start_metrics(sm *s, const config *cfg)
{
    int port = (int)config_int(cfg, "metrics/port", 0);
    if (port <= 0) return 0;
    metrics_gauge_fn("switchboard_sm_sessions", "Sessions", NULL, gauge_sessions, s);
    metrics_gauge_fn("switchboard_sm_users_loaded", "Users held in memory (rosters loaded)", NULL, gauge_users, s);
    metrics_gauge_fn("switchboard_sm_database_ready", "1 when the database is reachable", NULL, gauge_db_ready, s);
    metrics_counter_fn("switchboard_sm_database_requests_total", "Database requests answered", NULL, db_answered, s);
    metrics_counter_fn("switchboard_sm_database_seconds_total",
                       "Time database requests took, from request to answer (divide by requests for the mean)",
                       NULL, db_seconds, s);
    return metrics_listen(s->loop, config_str(cfg, "metrics/address", "127.0.0.1"), port) < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    process_opts opts;
    process_parse_args(argc, argv, "sm", &opts);
    log_open("sm", opts.debug ? LOG_LVL_DEBUG : LOG_LVL_NOTICE, 0);

    char err[512];
    config_key *keys = sm_config_keys(sm_keys);
    config *cfg = config_load(opts.config_path, "sm", keys, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "switchboard-sm: %s\n", err);
        sm_config_keys_free(keys);
        return 2;
    }
    if (opts.check_only) {
        printf("%s: ok\n", opts.config_path);
        config_free(cfg);
        sm_config_keys_free(keys);
        return 0;
    }
    const char *level = config_str(cfg, "log/level", "notice");
    int lvl = log_level_parse(level);
    if (lvl < 0) {
        fprintf(stderr, "switchboard-sm: %s: log/level: unknown level '%s'\n", opts.config_path, level);
        config_free(cfg);
        sm_config_keys_free(keys);
        return 2;
    }
    const char *name = opts.name ? opts.name : config_str(cfg, "router/name", "sm");
    log_open(name, opts.debug ? LOG_LVL_DEBUG : (log_level)lvl, config_bool(cfg, "log/syslog", 0));

    char *conninfo = config_secret(cfg, "database/conninfo");
    char *secret = config_secret(cfg, "router/secret");
    int rc = 0;
    if (!conninfo || !secret) {
        fprintf(stderr, "switchboard-sm: %s: database/conninfo and router/secret are required\n", opts.config_path);
        rc = 2;
        goto out_cfg;
    }
    if (config_bool(cfg, "database/migrate-on-start", 0)) {
        /* The database may be starting at the same moment (supervisord
         * starts everything together): wait for it, within a bound. */
        unsigned wait_s = limit(cfg, "database/start-wait", 30, 3600);
        uint64_t deadline = uv_hrtime() + (uint64_t)wait_s * 1000000000u;
        int tries = 0;
        while (storage_migrate_sync(conninfo, config_str(cfg, "database/migrations", NULL), err, sizeof err) < 0) {
            if (uv_hrtime() >= deadline) {
                log_error("migrations failed: %s", err);
                rc = 1;
                goto out_cfg;
            }
            if (tries++ == 0) log_notice("waiting for the database (%s)", err);
            uv_sleep(500);
        }
        log_notice("database schema up to date");
    }

    app a;
    memset(&a, 0, sizeof a);
    uv_loop_init(&a.loop);

    /* Hosted domains. */
    size_t nhosts = 0;
    for (const xnode *n = config_first(cfg, "hosts/host"); n; n = config_next(n)) nhosts++;
    a.sm.hosts = calloc(nhosts ? nhosts : 1, sizeof *a.sm.hosts);
    if (!a.sm.hosts) abort();
    for (const xnode *n = config_first(cfg, "hosts/host"); n; n = config_next(n)) {
        char *d = jid_normalize(xnode_text(n));
        if (!d || strchr(d, '@') || strchr(d, '/')) {
            log_error("%s: hosts/host '%s' is not a domain", opts.config_path, xnode_text(n));
            free(d);
            rc = 2;
            goto out_hosts;
        }
        a.sm.hosts[a.sm.nhosts++] = d;
    }
    load_limits(&a.sm.limits, cfg);
    a.config_path = opts.config_path;
    a.keys = keys;
    a.debug_forced = opts.debug;

    storage_config scfg;
    memset(&scfg, 0, sizeof scfg);
    scfg.conninfo = conninfo;
    scfg.connections = limit(cfg, "database/connections", 2, 64);
    scfg.query_timeout_ms = limit(cfg, "database/query-timeout", 10, 3600) * 1000u;
    scfg.batch_max = limit(cfg, "database/batch-max", STORAGE_BATCH_DEFAULT, STORAGE_BATCH_MAX);
    scfg.migrations_dir = config_str(cfg, "database/migrations", NULL);
    a.db = storage_new(&a.loop, &scfg);
    a.sm.db = a.db;
    if (!a.db) {
        log_error("cannot set up the database pool");
        rc = 1;
        goto out_hosts;
    }
    if (sm_init(&a.sm, &a.loop, cfg) < 0 || start_metrics(&a.sm, cfg) < 0) {
        rc = 1;
        storage_free(a.db);
        goto out_loop;
    }

    component_config ccfg;
    memset(&ccfg, 0, sizeof ccfg);
    ccfg.name = name;
    ccfg.secret = secret;
    ccfg.router_host = config_str(cfg, "router/host", "127.0.0.1");
    ccfg.router_port = (int)config_int(cfg, "router/port", 5347);
    a.comp = component_new(&a.loop, &ccfg, &sm_component_handler, &a.sm);
    sm_set_component(&a.sm, a.comp);
    for (size_t i = 0; i < a.sm.nhosts; i++) component_bind(a.comp, a.sm.hosts[i], 0);
    component_start(a.comp);
    log_notice("sm %s starting: %zu hosted domains, %zu modules", name, a.sm.nhosts, a.sm.nmodules);

    process_signals_start(&a.loop, on_stop_signal, on_reload_signal, &a);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    process_signals_stop();
    if (!a.stopping) sm_shutdown(&a.sm);
    if (a.db) {   /* not stopped by a signal, or a second signal cut the flush short */
        storage_free(a.db);
        a.db = NULL;
        a.sm.db = NULL;
    }
    component_free(a.comp);
    sm_free(&a.sm);
    metrics_shutdown();
    log_notice("sm stopped");
out_loop:
    process_loop_close(&a.loop);
out_hosts:
    for (size_t i = 0; i < a.sm.nhosts; i++) free(a.sm.hosts[i]);
    free(a.sm.hosts);
out_cfg:
    if (secret) {
        crypto_wipe(secret, strlen(secret));
        free(secret);
    }
    if (conninfo) {
        crypto_wipe(conninfo, strlen(conninfo));
        free(conninfo);
    }
    config_free(cfg);
    sm_config_keys_free(keys);
    log_close();
    return rc;
}
