/* STARTTLS (RFC 6120 §5): <starttls/> is answered with <proceed/>, the
 * stream restarts over TLS (the switch itself happens in stream.c once
 * the parser has stopped after this element). */
#include <inttypes.h>

#include "c2s/c2s.h"
#include "common/log.h"

void starttls_handle(client *cl, stanza *st)
{
    c2s *srv = cl->srv;
    int ok = xnode_is(st->root, "starttls", NS_XMPP_TLS);
    stanza_free(st);
    if (!ok) {
        client_stream_error(cl, "unsupported-stanza-type", "unexpected element in the TLS namespace");
        return;
    }
    if (cl->tls || cl->authed || cl->state != CL_NEGOTIATING || cl->legacy || !srv->tls_ctx) {
        /* RFC 6120 §5.4.2.2: failure, then the stream and the connection close. */
        log_notice("c2s %s: client %" PRIu64 " (%s): STARTTLS refused (%s)", srv->name, cl->id, client_label(cl),
                   cl->tls ? "already encrypted" : !srv->tls_ctx ? "no certificate" : "not offered now");
        client_write_str(cl, "<failure xmlns='" NS_XMPP_TLS "'/>");
        client_close(cl);
        return;
    }
    client_write_str(cl, "<proceed xmlns='" NS_XMPP_TLS "'/>");
    cl->tls = 1;
    client_restart_stream(cl);
}
