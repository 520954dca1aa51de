/* Errors for stanzas the router cannot deliver. Errors are never bounced;
 * an iq result that cannot be delivered is dropped with a log line. */
#include <string.h>

#include "common/log.h"
#include "common/stanza_error.h"
#include "router/router.h"

void bounce_to_sender(rclient *rc, stanza *st, const char *condition, const char *text)
{
    xnode *el = st->root;
    const char *to = xnode_attr(el, "to");
    const char *from = xnode_attr(el, "from");
    if (stanza_make_error(st, condition, text) < 0) {
        log_info("dropped undeliverable <%s type='%s'> from %s to %s (%s): errors are not bounced",
                 el->name, xnode_attr(el, "type") ? xnode_attr(el, "type") : "", from ? from : "?",
                 to ? to : "?", condition);
        stanza_free(st);
        return;
    }
    if (rc && rc->r->m.bounced) metric_inc(rc->r->m.bounced);
    log_info("bounced <%s/> from %s to %s: %s", el->name, from ? from : "?", to ? to : "?", condition);
    if (rc && rc->state == RC_READY) rclient_write_element(rc, st->root);
    stanza_free(st);
}

/* Re-reading bytes we had queued: they were written with the component
 * namespace as default, so parse them inside a stream header that says so. */
typedef struct unsent_ctx {
    router *r;
} unsent_ctx;

static xs_action unsent_open(void *ud, stanza *header)
{
    (void)ud;
    stanza_free(header);
    return XS_CONTINUE;
}

static xs_action unsent_element(void *ud, stanza *st)
{
    unsent_ctx *u = ud;
    const char *from = xnode_attr(st->root, "from");
    char domain[1024];
    rclient *sender = NULL;
    if (from) {
        /* A route envelope names its sender component; a stanza its sender's domain. */
        if (xnode_is(st->root, "route", NS_SB_ROUTER))
            sender = route_lookup(u->r, from);
        else if (route_domain_of(from, domain, sizeof domain) == 0)
            sender = route_lookup(u->r, domain);
        if (!sender) sender = u->r->default_route;
    }
    if (!from) {   /* router notices (<online/>...) have no sender to tell */
        stanza_free(st);
        return XS_CONTINUE;
    }
    if (!sender) {
        log_warn("lost undelivered <%s/> from %s: its sender is gone too", st->root->name, from ? from : "?");
        stanza_free(st);
        return XS_CONTINUE;
    }
    bounce_to_sender(sender, st, "service-unavailable", "the destination disconnected before delivery");
    return XS_CONTINUE;
}

static void unsent_close(void *ud)
{
    (void)ud;
}

static const xml_stream_handler unsent_handler = {unsent_open, unsent_element, unsent_close};

void bounce_unsent(router *r, const char *data, size_t len)
{
    static const char header[] = "<stream:stream xmlns='" NS_COMPONENT "' xmlns:stream='" NS_STREAMS "'>";
    unsent_ctx u = {r};
    xml_limits lim;
    xml_limits_default(&lim);
    lim.max_stanza_bytes = r->limits.max_stanza_bytes + 4096;
    lim.max_depth = 64;
    xml_stream *xs = xml_stream_new(&lim, &unsent_handler, &u);
    size_t consumed;
    if (xml_stream_feed(xs, header, sizeof header - 1, &consumed) != XML_OK ||
        xml_stream_feed(xs, data, len, &consumed) != XML_OK)
        log_error("could not re-read %zu undelivered bytes to bounce them: %s", len, xml_stream_error_text(xs));
    xml_stream_free(xs);
}
