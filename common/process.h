/* What every Switchboard process does the same way: command line, signals,
 * and a clean shutdown of the event loop. */
#ifndef SB_PROCESS_H
#define SB_PROCESS_H
#include <uv.h>

typedef struct process_opts {
    const char *config_path;   /* -c FILE */
    int check_only;            /* --check: validate the config and exit */
    int debug;                 /* --debug: log level debug */
    const char *name;          /* --name NAME: component name, overriding the config (c2s-%(process_num)d) */
} process_opts;

/* Parse argv; prints usage and exits on --help or a bad argument. */
void process_parse_args(int argc, char **argv, const char *name, process_opts *out);

typedef void (*process_signal_cb)(void *ud);
/* SIGTERM and SIGINT call on_stop, SIGHUP calls on_reload (may be NULL);
 * SIGPIPE is ignored. */
void process_signals_start(uv_loop_t *loop, process_signal_cb on_stop, process_signal_cb on_reload, void *ud);
void process_signals_stop(void);
/* Config keys every process shares (config_key tables, common/config.h):
 * <log> and <metrics>, and for the processes that join the router, the
 * <router> section that says how (default_name: e.g. "sm"). */
#define PROCESS_KEYS_LOG                                                                       \
    {"log", CFG_SECTION, 0, "logging"},                                                        \
    {"log/level", CFG_STRING, 0, "error, warn, notice, info or debug (default notice)"},       \
    {"log/syslog", CFG_FLAG, 0, "log to syslog instead of stderr"}
#define PROCESS_KEYS_METRICS                                                                   \
    {"metrics", CFG_SECTION, 0, "Prometheus metrics endpoint"},                                \
    {"metrics/address", CFG_STRING, 0, "address of the metrics endpoint (default 127.0.0.1)"}, \
    {"metrics/port", CFG_INT, 0, "port of the metrics endpoint; 0 or absent: off"}
#define PROCESS_KEYS_ROUTER_LINK(default_name)                                                 \
    {"router", CFG_SECTION, 0, "how to reach the router"},                                     \
    {"router/host", CFG_STRING, 0, "router address (default 127.0.0.1)"},                      \
    {"router/port", CFG_INT, 0, "router port (default 5347)"},                                 \
    {"router/name", CFG_STRING, 0, "our component name (default " default_name "; --name overrides)"}, \
    {"router/secret", CFG_SECRET, CFG_REQUIRED, "shared secret with the router (value, file:/path or env:NAME)"}

/* Apply log/level of a freshly (re)loaded config. Returns 0, or -1 (and
 * logs) if the level is unknown. */
struct config;
int process_apply_log_level(const struct config *cfg, const char *path, int debug_forced);

/* Close every handle still open on the loop, run it until they are gone,
 * and close the loop (so a shutdown leaves nothing behind). */
void process_loop_close(uv_loop_t *loop);

#endif
