#include "c2s/observe.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jid.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/strmap.h"

static metric *stanzas[2][3];   /* [in/out][message/presence/iq] */
static metric *auth_failures;
static strmap traced = STRMAP_INIT;   /* bare JIDs whose stanzas are traced */

static void load_traced(const config *cfg)
{
    strmap_free(&traced);
    for (const xnode *n = config_first(cfg, "log/debug-jid"); n; n = config_next(n)) {
        char *bare = jid_normalize_bare(xnode_text(n));
        if (!bare) {
            log_warn("log/debug-jid '%s' is not a JID: ignored", xnode_text(n));
            continue;
        }
        strmap_put(&traced, bare, (void *)1);
        log_notice("tracing the stanzas of %s (names and addresses only)", bare);
        free(bare);
    }
}

void observe_init(c2s *srv, int metrics_on)
{
    load_traced(srv->cfg);
    if (!metrics_on) return;
    static const char *const dir[2] = {"in", "out"};
    static const char *const kind[3] = {"message", "presence", "iq"};
    char labels[64];
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < 3; k++) {
            snprintf(labels, sizeof labels, "direction=\"%s\",kind=\"%s\"", dir[d], kind[k]);
            stanzas[d][k] = metrics_counter("switchboard_c2s_stanzas_total",
                                            "Stanzas from (in) and to (out) clients", labels);
        }
    auth_failures = metrics_counter("switchboard_c2s_auth_failures_total", "Failed authentications", NULL);
}

void observe_reload(const config *cfg)
{
    load_traced(cfg);
}

static int kind_index(const char *name)
{
    switch (name[0]) {
    case 'm': return 0;
    case 'p': return 1;
    case 'i': return 2;
    default: return -1;
    }
}

/* Log one traced stanza: its name, type, id and addresses, never its content. */
static void trace(client *cl, const xnode *el, const char *direction)
{
    if (!cl->sess || !cl->sess->full_jid || !strmap_count(&traced)) return;
    const char *full = cl->sess->full_jid;
    const char *slash = strchr(full, '/');
    size_t n = slash ? (size_t)(slash - full) : strlen(full);
    char bare[JID_PART_MAX * 2 + 2];
    if (n >= sizeof bare) return;
    memcpy(bare, full, n);
    bare[n] = '\0';
    if (!strmap_get(&traced, bare)) return;
    const char *type = xnode_attr(el, "type"), *id = xnode_attr(el, "id");
    const char *to = xnode_attr(el, "to"), *from = xnode_attr(el, "from");
    const xnode *payload = xnode_first_element(el);
    log_notice("c2s %s: trace %s client %" PRIu64 " %s: <%s type='%s' id='%s' from='%s' to='%s'> first child <%s xmlns='%s'>",
               cl->srv->name, full, cl->id, direction, el->name, type ? type : "", id ? id : "", from ? from : "",
               to ? to : "", payload ? payload->name : "", payload && payload->ns ? payload->ns : "");
}

void observe_stanza_in(client *cl, const xnode *el)
{
    int k = kind_index(el->name);
    if (k >= 0 && stanzas[0][k]) metric_inc(stanzas[0][k]);
    trace(cl, el, "sent");
}

void observe_stanza_out(client *cl, const xnode *el)
{
    int k = kind_index(el->name);
    if (k >= 0 && stanzas[1][k]) metric_inc(stanzas[1][k]);
    trace(cl, el, "received");
}

int observe_tracing(void)
{
    return strmap_count(&traced) != 0;
}

void observe_stanza_out_name(const char *name)
{
    int k = kind_index(name);
    if (k >= 0 && stanzas[1][k]) metric_inc(stanzas[1][k]);
}

void observe_auth_failure(void)
{
    if (auth_failures) metric_inc(auth_failures);
}

void observe_shutdown(void)
{
    strmap_free(&traced);
    memset(stanzas, 0, sizeof stanzas);
    auth_failures = NULL;
}
