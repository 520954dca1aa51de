/* The sm's messages to remote domains stay the sm's responsibility until
 * the remote server has them (docs/sessions.md §7): the sm sends each in a
 * route envelope with s2s-seq, and we answer, batched once per loop turn
 *
 *   <route to='localhost' from='s2s'>
 *     <s2s xmlns='urn:switchboard:session' action='confirmed' seqs='7 8 9'/></route>
 *
 * when its stanza was acknowledged by the remote server (XEP-0198 <a/>),
 * written to a peer without stream management, or bounced. To each hosted
 * domain that comes online we say who we are (action='hello' with a random
 * instance per process): an sm that sees a new instance sends again what
 * the previous s2s never confirmed. */
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/log.h"
#include "common/xml_write.h"
#include "s2s/s2s.h"

/* seqs per confirmation element (keeps it far below any stanza limit) */
#define SEQS_PER_ELEMENT 500

void ticket_drop(s2s_ticket *t)
{
    free(t->sm);
    t->sm = NULL;
}

static void confirm_check_cb(uv_check_t *h);

void custody_wake(s2s *s)
{
    if (s->custody_on) uv_check_start(&s->confirm_check, confirm_check_cb);
}

void ticket_confirm(s2s *s, s2s_ticket *t)
{
    if (!t || !t->sm) return;
    if (s->nconfirms == s->capconfirms) {
        size_t cap = s->capconfirms ? s->capconfirms * 2 : 64;
        s2s_ticket *c = realloc(s->confirms, cap * sizeof *c);
        if (!c) abort();
        s->confirms = c;
        s->capconfirms = cap;
    }
    s->confirms[s->nconfirms++] = *t;
    t->sm = NULL;
    custody_wake(s);
}

static void write_envelope_start(buf *b, const char *to, const char *from)
{
    buf_append_str(b, "<route xmlns='" NS_SB_ROUTER "' to='");
    xml_escape_attr(b, to, strlen(to));
    buf_append_str(b, "' from='");
    xml_escape_attr(b, from, strlen(from));
    buf_append_str(b, "'>");
}

/* Send the confirmations of the sms that are online; the others wait for
 * their name to come back (or for the router). */
static void send_confirmations(s2s *s)
{
    if (!s->nconfirms || !router_link_ready(s)) return;
    const char *me = component_name(s->comp);
    buf b = BUF_INIT;
    size_t keep = 0;
    for (size_t i = 0; i < s->nconfirms; i++) {
        char *sm = s->confirms[i].sm;
        if (!sm) continue;   /* sent with an earlier one */
        if (!strmap_get(&s->names_online, sm)) {
            s->confirms[keep++] = s->confirms[i];
            continue;
        }
        size_t in_element = 0;
        buf_reset(&b);
        for (size_t j = i; j < s->nconfirms; j++) {
            s2s_ticket *t = &s->confirms[j];
            if (!t->sm || (j != i && strcmp(t->sm, sm) != 0)) continue;
            if (in_element == 0) {
                write_envelope_start(&b, sm, me);
                buf_append_str(&b, "<s2s xmlns='" NS_SB_SESSION_S2S "' action='confirmed' seqs='");
            } else {
                buf_append_str(&b, " ");
            }
            buf_printf(&b, "%llu", t->seq);
            if (j != i) ticket_drop(t);
            if (++in_element == SEQS_PER_ELEMENT) {
                buf_append_str(&b, "'/></route>");
                if (component_send_raw(s->comp, b.data, b.len) < 0)
                    log_warn("s2s: %zu confirmations to %s lost: router unavailable", in_element, sm);
                buf_reset(&b);
                in_element = 0;
            }
        }
        if (in_element) {
            buf_append_str(&b, "'/></route>");
            if (component_send_raw(s->comp, b.data, b.len) < 0)
                log_warn("s2s: %zu confirmations to %s lost: router unavailable", in_element, sm);
        }
        free(sm);
        s->confirms[i].sm = NULL;
    }
    s->nconfirms = keep;
    buf_free(&b);
}

static void confirm_check_cb(uv_check_t *h)
{
    s2s *s = h->data;
    uv_check_stop(h);
    out_request_acks(s);
    send_confirmations(s);
}

void custody_flush(s2s *s)
{
    send_confirmations(s);
}

static void send_hello(s2s *s, const char *domain)
{
    if (!router_link_ready(s)) return;
    buf b = BUF_INIT;
    write_envelope_start(&b, domain, component_name(s->comp));
    buf_printf(&b, "<s2s xmlns='" NS_SB_SESSION_S2S "' action='hello' instance='%s'/></route>", s->instance);
    if (component_send_raw(s->comp, b.data, b.len) < 0) log_info("s2s: hello to %s not sent: no router", domain);
    buf_free(&b);
}

void custody_link_ready(s2s *s)
{
    for (size_t i = 0; i < s->nhosts; i++)
        if (strmap_get(&s->names_online, s->hosts[i])) send_hello(s, s->hosts[i]);
    custody_wake(s);
}

/* The router announces every name again when we are back. */
void custody_link_lost(s2s *s)
{
    strmap_free(&s->names_online);
}

void custody_name(s2s *s, const char *name, int online)
{
    if (!online) {
        strmap_del(&s->names_online, name);
        return;
    }
    strmap_put(&s->names_online, name, (void *)1);
    if (s2s_is_local(s, name)) send_hello(s, name);
    if (s->nconfirms) custody_wake(s);
}

/* Our confirmations came back (the sm's name went away meanwhile): they
 * wait for it to come back. */
static void confirmations_bounced(s2s *s, const char *sm, const char *seqs)
{
    const char *p = seqs;
    while (p && *p) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p) break;
        s2s_ticket t = {strdup(sm), v};
        if (!t.sm) abort();
        ticket_confirm(s, &t);
        p = end;
    }
}

/* The sm writes the stanza in jabber:client; bounces go back to the router
 * as the component stream's own stanzas. */
static void to_component_ns(xnode *el)
{
    if (el->type != XNODE_ELEMENT) return;
    if (el->ns && !strcmp(el->ns, NS_CLIENT)) el->ns = NS_COMPONENT;
    for (xnode *c = el->children; c; c = c->next) to_component_ns(c);
}

void custody_route(s2s *s, stanza *env)
{
    xnode *route = env->root;
    const char *from = xnode_attr(route, "from");
    const char *type = xnode_attr(route, "type");
    xnode *child = xnode_first_element(route);
    if (!child || !from) {
        stanza_free(env);
        return;
    }
    if (type && !strcmp(type, "error")) {
        if (xnode_is(child, "s2s", NS_SB_SESSION_S2S)) {
            const char *action = xnode_attr(child, "action");
            if (action && !strcmp(action, "confirmed")) confirmations_bounced(s, from, xnode_attr(child, "seqs"));
        }
        stanza_free(env);
        return;
    }
    const char *seq = xnode_attr(route, "s2s-seq");
    if (!seq || (!xnode_is(child, "message", NULL) && !xnode_is(child, "presence", NULL) &&
                 !xnode_is(child, "iq", NULL))) {
        log_info("s2s: ignoring a route envelope with <%s/> from %s", child->name, from);
        stanza_free(env);
        return;
    }
    s2s_ticket t = {strdup(from), strtoull(seq, NULL, 10)};
    if (!t.sm) abort();
    stanza *st = stanza_from_node(child);
    stanza_free(env);
    to_component_ns(st->root);
    stanza_touch(st);
    router_link_outbound(s, st, &t);
}

void custody_start(s2s *s)
{
    random_token(s->instance, sizeof s->instance - 1);
    uv_check_init(s->loop, &s->confirm_check);
    s->confirm_check.data = s;
    s->custody_on = 1;
}

static void check_closed(uv_handle_t *h)
{
    (void)h;
}

/* What is still unconfirmed is the sm's to send again to our successor. */
void custody_stop(s2s *s)
{
    for (size_t i = 0; i < s->nconfirms; i++) ticket_drop(&s->confirms[i]);
    free(s->confirms);
    s->confirms = NULL;
    s->nconfirms = s->capconfirms = 0;
    strmap_free(&s->names_online);
    if (s->custody_on) {
        s->custody_on = 0;
        uv_close((uv_handle_t *)&s->confirm_check, check_closed);
    }
}
