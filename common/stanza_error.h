/* Stanza and stream errors: RFC 6120 conditions with the legacy numeric
 * codes of XEP-0086, so old clients that read 'code' understand them too. */
#ifndef SB_STANZA_ERROR_H
#define SB_STANZA_ERROR_H
#include "common/buf.h"
#include "common/stanza.h"

typedef struct stanza_error_info {
    const char *condition;  /* e.g. "service-unavailable" */
    const char *type;       /* cancel, continue, modify, auth, wait */
    int code;               /* legacy code, e.g. 503 */
} stanza_error_info;

/* Known condition -> info; NULL if the condition is not an RFC 6120 one. */
const stanza_error_info *stanza_error_lookup(const char *condition);

/* May this stanza be answered with an error? Not when it is an error itself
 * (never bounce an error) or an iq result. */
int stanza_error_allowed(const xnode *st);

/* Turn st into the error reply in place: swap 'to' and 'from', type='error',
 * and append <error type='..' code='..'><condition/><text/></error> in the
 * stanza's own namespace. text may be NULL. Returns -1 (and leaves st alone)
 * if stanza_error_allowed says no. */
int stanza_make_error(stanza *st, const char *condition, const char *text);

/* The bytes of a stream error: <stream:error><condition xmlns=.../>[<text>]</stream:error>.
 * Assumes the 'stream' prefix is bound in the stream header. */
void stream_error_write(buf *out, const char *condition, const char *text);

#endif
