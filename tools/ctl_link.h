/* ctl_link: switchboardctl's connection to the router, as a trusted
 * XEP-0114 component (docs/admin-protocol.md). Blocking sockets with a
 * deadline on every wait: the tool does one thing and exits. */
#ifndef SB_TOOLS_CTL_LINK_H
#define SB_TOOLS_CTL_LINK_H
#include <stddef.h>
#include "common/stanza.h"

#define NS_SB_ADMIN "urn:switchboard:admin"

/* Where the router is and how to join it. */
typedef struct ctl_router_cfg {
    char *host;        /* malloc'd */
    int port;
    char *secret;      /* malloc'd; wiped when freed */
    char **hosts;      /* hosts/host of the configuration (the domains), malloc'd */
    size_t nhosts;
} ctl_router_cfg;

/* Fill cfg from the process configuration at path (router/host,
 * router/port, router/secret, hosts/host; anything else is ignored), or
 * with path NULL from the defaults and SWITCHBOARD_INTERNAL_SECRET.
 * router ("HOST:PORT" or "PORT", may be NULL) overrides the address.
 * 0, or -1 with a one-line message in err. */
int ctl_router_cfg_load(ctl_router_cfg *cfg, const char *path, const char *router, char *err, size_t errlen);
void ctl_router_cfg_free(ctl_router_cfg *cfg);

typedef struct ctl_link ctl_link;

/* Connect, authenticate as name and learn the names online (the router
 * announces them to trusted components). NULL with a message in err. */
ctl_link *ctl_link_open(const ctl_router_cfg *cfg, const char *name, unsigned timeout_ms, char *err, size_t errlen);
const char *ctl_link_name(const ctl_link *l);
/* The names online at the router (sorted; our own name left out). */
size_t ctl_link_names(const ctl_link *l, const char *const **names);
/* Send raw XML. 0, or -1 with a message in err. */
int ctl_link_send(ctl_link *l, const char *data, size_t len, char *err, size_t errlen);
/* The next element other than <online/>/<offline/> notices (which update the
 * names), waiting until the link's timeout from now. NULL on timeout or a
 * lost connection, with a message in err. The caller frees it. */
stanza *ctl_link_next(ctl_link *l, char *err, size_t errlen);
/* Close the stream and the connection. */
void ctl_link_close(ctl_link *l);

#endif
