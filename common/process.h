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
/* Apply log/level of a freshly (re)loaded config. Returns 0, or -1 (and
 * logs) if the level is unknown. */
struct config;
int process_apply_log_level(const struct config *cfg, const char *path, int debug_forced);

/* Close every handle still open on the loop, run it until they are gone,
 * and close the loop (so a shutdown leaves nothing behind). */
void process_loop_close(uv_loop_t *loop);

#endif
