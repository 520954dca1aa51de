/* ctl_admin: switchboardctl's commands for a running server (sessions,
 * kick, status, announce), spoken to the sm through the router
 * (docs/admin-protocol.md). */
#ifndef SB_TOOLS_CTL_ADMIN_H
#define SB_TOOLS_CTL_ADMIN_H

typedef struct ctl_admin_opts {
    const char *config;     /* -c: a process configuration (router/..., hosts/host), or NULL */
    const char *router;     /* --router HOST:PORT, or NULL */
    const char *domain;     /* --domain, or NULL */
    int json;               /* --json: JSON lines instead of tab-separated text */
    unsigned timeout_s;     /* --timeout: every wait, in seconds */
} ctl_admin_opts;

/* 1 if name is one of these commands. */
int ctl_admin_is_command(const char *name);
/* Run the command argv[0] with its arguments; the exit status (0 ok,
 * 1 failure, 2 usage). */
int ctl_admin_run(const ctl_admin_opts *o, int argc, char **argv);

#endif
