/* What an operator can watch in c2s: Prometheus counters of stanzas and
 * authentication failures, and a trace of the stanzas of chosen users
 * (log/debug-jid) that never includes their content. */
#ifndef SB_C2S_OBSERVE_H
#define SB_C2S_OBSERVE_H
#include "c2s/c2s.h"

/* Register the counters (when metrics are on) and read log/debug-jid. */
void observe_init(c2s *srv, int metrics_on);
/* SIGHUP: take the debug-jid list of a freshly loaded config. */
void observe_reload(const config *cfg);
void observe_stanza_in(client *cl, const xnode *el);
void observe_stanza_out(client *cl, const xnode *el);
/* For stanzas written without a tree: 1 while some user's stanzas are
 * traced (observe_stanza_out needs the element then); counting by name. */
int observe_tracing(void);
void observe_stanza_out_name(const char *name);
void observe_auth_failure(void);
void observe_shutdown(void);

#endif
