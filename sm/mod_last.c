/* mod_last: Last Activity (XEP-0012, jabber:iq:last).
 *
 *  - to the server: its uptime in seconds (§5);
 *  - to an account's bare JID: answered by the server for the user (§3).
 *    Only the user and entities subscribed to the user's presence (from or
 *    both) may ask; others get <forbidden/>. While the user has a session
 *    the answer is 0 seconds; otherwise the seconds since the last session
 *    ended and the status text of the last unavailable presence, both
 *    recorded in PostgreSQL when the last session ends;
 *  - to a full JID: the client answers with its idle time (§4); the server
 *    delivers the query only to the user and its subscribers, and answers
 *    <forbidden/> to anyone else without delivering it. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/jid.h"
#include "common/log.h"
#include "common/strmap.h"
#include "sm/module.h"
#include "sm/sub.h"
#include "storage/last.h"

#define NS_LAST "jabber:iq:last"
#define DEFAULT_MAX_STATUS 1024

static uint64_t started_ns;     /* uv_hrtime() when the module started */
static strmap statuses;         /* sm-id -> status text (malloc'd) of the session's last unavailable presence */

/* May `from` see the user's last activity: the user itself or a contact with
 * a subscription to the user's presence (XEP-0012 §3, §4). */
static int authorized(sm_user *u, const char *from)
{
    char *fb = from ? jid_normalize_bare(from) : NULL;
    int ok = 0;
    if (fb) {
        if (!strcmp(fb, u->bare)) {
            ok = 1;
        } else {
            sm_item *it = sm_roster_item(u, fb);
            ok = it && sub_has_from(it->sub);
        }
    }
    free(fb);
    return ok;
}

static stanza *last_result(sm_iq *iq, long long seconds, const char *status)
{
    stanza *r = sm_iq_result(iq->st->root);
    xnode *q = xnode_add_child(r->root, "query", NS_LAST);
    char secs[32];
    snprintf(secs, sizeof secs, "%lld", seconds < 0 ? 0 : seconds);
    xnode_set_attr(q, "seconds", secs);
    if (status && *status) xnode_add_text(q, status, strlen(status));
    return r;
}

static void on_last(void *ud, storage_status st, int64_t seconds, const char *status)
{
    sm_iq *iq = ud;
    sm_user *u = iq->user;
    if (u->sm->stopping) {
        stanza_free(iq->st);
        free(iq);
    } else if (st == STORAGE_OK) {
        sm_iq_reply(iq, last_result(iq, (long long)seconds, status));
    } else if (st == STORAGE_NOT_FOUND) {
        sm_iq_error(iq, "service-unavailable", NULL);   /* never logged out: nothing to tell */
    } else {
        log_warn("user %s: reading last activity failed: %s", u->bare, storage_status_string(st));
        sm_iq_error(iq, "internal-server-error", "wait");
    }
    sm_user_release(u);
}

static void last_iq(sm_iq *iq)
{
    if (iq->is_set) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    if (iq->target == SM_IQ_SERVER) {
        long long up = (long long)((uv_hrtime() - started_ns) / 1000000000ull);
        sm_iq_reply(iq, last_result(iq, up, NULL));
        return;
    }
    sm_user *u = iq->user;
    if (!authorized(u, iq->from)) {
        sm_iq_error(iq, "forbidden", NULL);
        return;
    }
    if (u->nsessions > 0) {
        /* §3: a connected or available resource means 0 seconds, no text. */
        sm_iq_reply(iq, last_result(iq, 0, NULL));
        return;
    }
    sm_user_hold(u);
    last_get(u->sm->db, u->domain, u->node, on_last, iq);
}

/* A query for a full JID goes to the client only from someone allowed to
 * see the user's presence (§4). */
static sm_hook_rc last_in(sm_user *u, stanza *st, int returned, sm_session *skip)
{
    (void)skip;
    xnode *el = st->root;
    if (returned || strcmp(el->name, "iq")) return SM_PASS;
    const char *type = sm_type(el);
    const char *to = xnode_attr(el, "to");
    if (!type || strcmp(type, "get") || !to || !strchr(to, '/')) return SM_PASS;
    xnode *q = xnode_first_element(el);
    if (!q || !q->ns || strcmp(q->ns, NS_LAST)) return SM_PASS;
    if (authorized(u, xnode_attr(el, "from"))) return SM_PASS;
    sm_bounce(u->sm, st, "forbidden", NULL, NULL);
    return SM_DONE;
}

/* The status text of the session's last unavailable presence, kept until
 * the session ends (a client says goodbye, then closes its stream). */
static sm_hook_rc last_out(sm_session *sess, stanza *st)
{
    xnode *el = st->root;
    if (strcmp(el->name, "presence") || xnode_attr(el, "to")) return SM_PASS;
    const char *type = sm_type(el);
    if (!type) {
        free(strmap_del(&statuses, sess->id_str));
    } else if (!strcmp(type, "unavailable")) {
        const char *status = xnode_child_text(el, "status", NULL);
        size_t max = (size_t)config_node_int(sm_module_config(sess->user->sm, "last"), "max-status-bytes",
                                             DEFAULT_MAX_STATUS);
        char *copy = NULL;
        if (status && *status) {
            size_t n = strlen(status);
            if (n > max) {
                n = max;
                while (n > 0 && ((unsigned char)status[n] & 0xC0) == 0x80) n--;   /* whole characters */
            }
            copy = strndup(status, n);
            if (!copy) abort();
        }
        free(strmap_del(&statuses, sess->id_str));
        if (copy) strmap_put(&statuses, sess->id_str, copy);
    }
    return SM_PASS;
}

static void on_recorded(void *ud, storage_status st)
{
    sm_user *u = ud;
    if (st != STORAGE_OK && !u->sm->stopping)
        log_info("user %s: last activity not recorded: %s", u->bare, storage_status_string(st));
    sm_user_release(u);
}

static void last_session_ending(sm_session *sess)
{
    char *status = strmap_del(&statuses, sess->id_str);
    sm_user *u = sess->user;
    if (u->nsessions == 1 && u->state == USER_READY) {
        /* The last session: the user logs out now. Holding the queue makes
         * a query that follows wait for the record. */
        sm_user_hold(u);
        last_set(u->sm->db, u->domain, u->node, status, on_recorded, u);
    }
    free(status);
}

static int last_init(sm *s)
{
    (void)s;
    started_ns = uv_hrtime();
    statuses = (strmap)STRMAP_INIT;
    return 0;
}

static void last_shutdown(sm *s)
{
    (void)s;
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&statuses, &pos, &key, &val)) free(val);
    strmap_free(&statuses);
}

static const sm_iq_handler last_iqs[] = {
    {NS_LAST, SM_IQ_SERVER | SM_IQ_ACCOUNT, last_iq},
    {NULL, 0, NULL},
};

static const char *const last_features[] = {NS_LAST, NULL};

static const config_key last_keys[] = {
    {"max-status-bytes", CFG_INT, 0, "longest status text kept for last activity, in bytes (default 1024)"},
    {NULL, 0, 0, NULL},
};

const sm_module mod_last = {
    .name = "last",
    .iqs = last_iqs,
    .server_features = last_features,
    .account_features = last_features,
    .init = last_init,
    .shutdown = last_shutdown,
    .session_ending = last_session_ending,
    .out_stanza = last_out,
    .in_stanza = last_in,
    .config_keys = last_keys,
};
