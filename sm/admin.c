/* Administration requests (docs/admin-protocol.md): sessions, kick, status
 * and announce. A request arrives as
 *
 *   <route xmlns='urn:switchboard:router' to='DOMAIN' from='ctl-123'>
 *     <admin xmlns='urn:switchboard:admin' action='sessions' id='1'/></route>
 *
 * and is answered in a route back to the sender with the same action and
 * id and type='result' (or type='error' with a stanza error condition).
 * Requests addressed to a hosted domain are about that domain; addressed
 * to the sm's component name, about every domain. */
#include "sm/admin.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/stanza_error.h"
#include "common/xml_write.h"

/* Sessions per answer: a long list goes in several answers (more='true' on
 * all but the last) so that no envelope nears the router's element limit. */
#define SESSIONS_PER_ANSWER 200

typedef struct request {
    sm *s;
    const char *to;        /* the sender: where answers go */
    const char *from;      /* our name in the answers */
    const char *domain;    /* the domain asked about, or NULL for all */
    const char *action;
    const char *id;
} request;

static void attr(buf *o, const char *name, const char *value)
{
    buf_printf(o, " %s='", name);
    xml_escape_attr(o, value, strlen(value));
    buf_append_str(o, "'");
}

/* "<route ...><admin ... type='result'" without the closing '>'. */
static void answer_open(buf *o, const request *r, const char *type)
{
    buf_append_str(o, "<route xmlns='" NS_SB_ROUTER "'");
    attr(o, "to", r->to);
    attr(o, "from", r->from);
    buf_append_str(o, "><admin xmlns='" NS_SB_ADMIN "'");
    attr(o, "action", r->action);
    if (r->id) attr(o, "id", r->id);
    attr(o, "type", type);
}

static void answer_send(const request *r, buf *o)
{
    if (component_send_raw(r->s->comp, o->data, o->len) < 0)
        log_info("admin: router not connected: answer to %s (%s) dropped", r->to, r->action);
    buf_free(o);
}

static void answer_error(const request *r, const char *condition, const char *text)
{
    buf o = BUF_INIT;
    answer_open(&o, r, "error");
    const stanza_error_info *info = stanza_error_lookup(condition);
    buf_printf(&o, "><error type='%s' code='%d'><%s xmlns='" NS_XMPP_STANZAS "'/>", info ? info->type : "cancel",
               info ? info->code : 500, condition);
    if (text) {
        buf_append_str(&o, "<text xmlns='" NS_XMPP_STANZAS "'>");
        xml_escape_text(&o, text, strlen(text));
        buf_append_str(&o, "</text>");
    }
    buf_append_str(&o, "</error></admin></route>");
    answer_send(r, &o);
}

static int in_scope(const request *r, const sm_session *sess)
{
    return !r->domain || !strcmp(sess->user->domain, r->domain);
}

static void session_xml(buf *o, const sm_session *sess)
{
    char since[32] = "";
    time_t t = sess->started;
    struct tm tm;
    if (t && gmtime_r(&t, &tm)) strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
    buf_append_str(o, "<session");
    attr(o, "jid", sess->full);
    attr(o, "c2s", sess->c2s);
    attr(o, "c2s-id", sess->c2s_id);
    attr(o, "sm-id", sess->id_str);
    buf_printf(o, " priority='%d' available='%s'", sess->priority, sess->available ? "true" : "false");
    if (*since) attr(o, "since", since);
    buf_append_str(o, "/>");
}

/* Every session in scope, SESSIONS_PER_ANSWER per answer. */
static void do_sessions(const request *r)
{
    size_t pos = 0, in_answer = 0;
    const char *key;
    void *val;
    buf o = BUF_INIT, list = BUF_INIT;
    while (strmap_next(&r->s->sessions, &pos, &key, &val)) {
        const sm_session *sess = val;
        if (!in_scope(r, sess)) continue;
        if (in_answer == SESSIONS_PER_ANSWER) {
            answer_open(&o, r, "result");
            buf_append_str(&o, " more='true'>");
            buf_append(&o, list.data, list.len);
            buf_append_str(&o, "</admin></route>");
            answer_send(r, &o);
            buf_reset(&list);
            in_answer = 0;
        }
        session_xml(&list, sess);
        in_answer++;
    }
    answer_open(&o, r, "result");
    buf_append_str(&o, ">");
    if (list.len) buf_append(&o, list.data, list.len);
    buf_append_str(&o, "</admin></route>");
    answer_send(r, &o);
    buf_free(&list);
}

/* Collect the sessions of a JID (bare: all of the user's) to end them. */
static void do_kick(const request *r, const xnode *req)
{
    const char *arg = xnode_attr(req, "jid");
    jid j = JID_INIT;
    if (!arg || jid_parse(&j, arg) < 0 || !j.node) {
        jid_free(&j);
        answer_error(r, "jid-malformed", "kick needs a user's JID (user@domain or user@domain/resource)");
        return;
    }
    if (!sm_is_local(r->s, j.domain) || (r->domain && strcmp(j.domain, r->domain))) {
        jid_free(&j);
        answer_error(r, "item-not-found", "not a domain of this sm");
        return;
    }
    sm_user *u = sm_user_find(r->s, j.bare);
    buf list = BUF_INIT;
    size_t n = 0, cap = u ? u->nsessions : 0;
    char (*ids)[24] = calloc(cap ? cap : 1, sizeof *ids);
    if (!ids) abort();
    for (sm_session *sess = u ? u->sessions : NULL; sess && n < cap; sess = sess->next) {
        if (j.resource && strcmp(sess->resource, j.resource)) continue;
        session_xml(&list, sess);
        memcpy(ids[n++], sess->id_str, sizeof ids[0]);
    }
    /* Ending a session may run at once and free it (and the user with its
     * last session): find each again by id. */
    for (size_t i = 0; i < n; i++) {
        sm_session *sess = strmap_get(&r->s->sessions, ids[i]);
        if (sess) sm_session_end_later(sess, "kicked");
    }
    free(ids);
    if (n == 0) {
        answer_error(r, "item-not-found", "no session of that JID is online");
    } else {
        log_notice("admin: %s kicked %s (%zu session%s)", r->to, j.full, n, n == 1 ? "" : "s");
        buf o = BUF_INIT;
        answer_open(&o, r, "result");
        buf_printf(&o, " sessions='%zu'>", n);
        buf_append(&o, list.data, list.len);
        buf_append_str(&o, "</admin></route>");
        answer_send(r, &o);
    }
    buf_free(&list);
    jid_free(&j);
}

/* The sm's name, its domains and its sessions per c2s. */
static void do_status(const request *r)
{
    strmap per_c2s = STRMAP_INIT;
    size_t pos = 0, total = 0;
    const char *key;
    void *val;
    while (strmap_next(&r->s->sessions, &pos, &key, &val)) {
        const sm_session *sess = val;
        uintptr_t n = (uintptr_t)strmap_get(&per_c2s, sess->c2s);
        strmap_put(&per_c2s, sess->c2s, (void *)(n + 1));
        total++;
    }
    buf o = BUF_INIT;
    answer_open(&o, r, "result");
    attr(&o, "sm", component_name(r->s->comp));
    buf_printf(&o, " sessions='%zu' users='%zu'>", total, strmap_count(&r->s->users));
    for (size_t i = 0; i < r->s->nhosts; i++) {
        buf_append_str(&o, "<domain");
        attr(&o, "name", r->s->hosts[i]);
        buf_append_str(&o, "/>");
    }
    pos = 0;
    while (strmap_next(&per_c2s, &pos, &key, &val)) {
        buf_append_str(&o, "<c2s");
        attr(&o, "name", key);
        buf_printf(&o, " sessions='%" PRIuPTR "'/>", (uintptr_t)val);
    }
    buf_append_str(&o, "</admin></route>");
    answer_send(r, &o);
    strmap_free(&per_c2s);
}

/* A headline message from the domain to every session in scope. */
static void do_announce(const request *r, const xnode *req)
{
    const char *body = xnode_child_text(req, "body", NS_SB_ADMIN);
    if (!body || !*body) {
        answer_error(r, "bad-request", "announce needs a non-empty <body/>");
        return;
    }
    size_t pos = 0, n = 0;
    const char *key;
    void *val;
    while (strmap_next(&r->s->sessions, &pos, &key, &val)) {
        sm_session *sess = val;
        if (!in_scope(r, sess)) continue;
        stanza *m = stanza_new("message", NS_CLIENT);
        xnode_set_attr(m->root, "from", sess->user->domain);
        xnode_set_attr(m->root, "to", sess->full);
        xnode_set_attr(m->root, "type", "headline");
        xnode_set_attr(m->root, "id", sm_new_id(r->s));
        xnode_add_text_child(m->root, "body", NS_CLIENT, body);
        sm_session_send(sess, m->root);
        stanza_free(m);
        n++;
    }
    log_notice("admin: %s announced a message to %zu sessions of %s", r->to, n, r->domain ? r->domain : "every domain");
    buf o = BUF_INIT;
    answer_open(&o, r, "result");
    buf_printf(&o, " sessions='%zu'/></route>", n);
    answer_send(r, &o);
}

void sm_admin_request(sm *s, const xnode *route, const xnode *req)
{
    request r = {0};
    r.s = s;
    r.to = xnode_attr(route, "from");
    const char *addressed = xnode_attr(route, "to");
    r.action = xnode_attr(req, "action");
    r.id = xnode_attr(req, "id");
    const char *type = xnode_attr(req, "type");
    if (!r.to || (type && strcmp(type, "request"))) return;   /* answers and errors are not requests */
    if (addressed && sm_is_local(s, addressed)) {
        r.domain = addressed;
        r.from = addressed;
    } else {
        r.from = component_name(s->comp);
    }
    if (!r.action) {
        r.action = "";
        answer_error(&r, "bad-request", "no action");
        return;
    }
    log_info("admin: %s asks '%s' (%s)", r.to, r.action, r.domain ? r.domain : "every domain");
    if (!strcmp(r.action, "sessions")) do_sessions(&r);
    else if (!strcmp(r.action, "kick")) do_kick(&r, req);
    else if (!strcmp(r.action, "status")) do_status(&r);
    else if (!strcmp(r.action, "announce")) do_announce(&r, req);
    else answer_error(&r, "feature-not-implemented", "unknown action");
}
