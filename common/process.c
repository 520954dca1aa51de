#include "common/process.h"

#include "common/config.h"
#include "common/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uv_signal_t sig_term, sig_int, sig_hup;
static process_signal_cb stop_cb, reload_cb;
static void *signal_ud;
static int signals_active;

static void usage(const char *name, FILE *to)
{
    fprintf(to,
            "usage: switchboard-%s [-c FILE] [--name NAME] [--check] [--debug]\n"
            "  -c, --config FILE  configuration file (default: etc/%s.xml)\n"
            "  --name NAME        component name at the router (overrides the config)\n"
            "  --check            validate the configuration and exit\n"
            "  --debug            log at debug level\n",
            name, name);
}

void process_parse_args(int argc, char **argv, const char *name, process_opts *out)
{
    static char default_path[256];
    snprintf(default_path, sizeof default_path, "etc/%s.xml", name);
    memset(out, 0, sizeof *out);
    out->config_path = default_path;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
            out->config_path = argv[++i];
        } else if (!strcmp(a, "--name") && i + 1 < argc) {
            out->name = argv[++i];
        } else if (!strcmp(a, "--check")) {
            out->check_only = 1;
        } else if (!strcmp(a, "--debug")) {
            out->debug = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(name, stdout);
            exit(0);
        } else {
            fprintf(stderr, "switchboard-%s: unknown argument '%s'\n", name, a);
            usage(name, stderr);
            exit(2);
        }
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (signum == SIGHUP) {
        if (reload_cb) reload_cb(signal_ud);
    } else if (stop_cb) {
        stop_cb(signal_ud);
    }
}

void process_signals_start(uv_loop_t *loop, process_signal_cb on_stop, process_signal_cb on_reload, void *ud)
{
    signal(SIGPIPE, SIG_IGN);
    stop_cb = on_stop;
    reload_cb = on_reload;
    signal_ud = ud;
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_hup);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_hup, on_signal, SIGHUP);
    /* Signal handles must not keep the loop alive on their own. */
    uv_unref((uv_handle_t *)&sig_term);
    uv_unref((uv_handle_t *)&sig_int);
    uv_unref((uv_handle_t *)&sig_hup);
    signals_active = 1;
}

void process_signals_stop(void)
{
    if (!signals_active) return;
    signals_active = 0;
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

void process_loop_close(uv_loop_t *loop)
{
    process_signals_stop();
    uv_run(loop, UV_RUN_DEFAULT);
    uv_walk(loop, close_walk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
}

int process_apply_log_level(const config *cfg, const char *path, int debug_forced)
{
    const char *name = config_str(cfg, "log/level", "notice");
    int lvl = log_level_parse(name);
    if (lvl < 0) {
        log_error("%s: log/level: unknown level '%s'", path, name);
        return -1;
    }
    log_set_level(debug_forced ? LOG_LVL_DEBUG : (log_level)lvl);
    return 0;
}
