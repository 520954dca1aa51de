/* mod_presence: presence (RFC 6121 §4) and presence subscriptions (§3,
 * with the state machine of sub.c): broadcast of initial presence, updates
 * and unavailable presence, probes and their answers, directed presence,
 * and subscription requests kept across sessions. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/xml_write.h"
#include "sm/module.h"
#include "sm/sub.h"

static stanza *presence_new(const char *from, const char *to, const char *type)
{
    stanza *st = stanza_new("presence", NS_CLIENT);
    if (from) xnode_set_attr(st->root, "from", from);
    if (to) xnode_set_attr(st->root, "to", to);
    if (type) xnode_set_attr(st->root, "type", type);
    return st;
}

static void send_copy_to(sm *s, const xnode *el, const char *from, const char *to)
{
    stanza *c = stanza_from_node(el);
    if (from) xnode_set_attr(c->root, "from", from);
    xnode_set_attr(c->root, "to", to);
    sm_route(s, c);
}

void presence_to_available(sm_user *u, const xnode *el)
{
    for (sm_session *x = u->sessions; x; x = x->next)
        if (x->available) sm_session_send(x, el);
}

void presence_send_current(sm_user *u, const char *to)
{
    for (sm_session *x = u->sessions; x; x = x->next)
        if (x->available && x->presence) send_copy_to(u->sm, x->presence->root, x->full, to);
}

void presence_send_unavailable(sm_user *u, const char *to)
{
    for (sm_session *x = u->sessions; x; x = x->next)
        if (x->available) sm_route(u->sm, presence_new(x->full, to, "unavailable"));
}

/* ---- broadcast (§4.2, §4.4, §4.5) ---- */

static int parse_priority(const xnode *el)
{
    const char *p = xnode_child_text(el, "priority", NULL);
    if (!p) return 0;
    char *end;
    long v = strtol(p, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') end++;
    if (end == p || *end || v < -128 || v > 127) return 0;
    return (int)v;
}

static int to_contact_with_from(sm_user *u, const char *jidstr)
{
    char *b = jid_normalize_bare(jidstr);
    sm_item *it = b ? sm_roster_item(u, b) : NULL;
    free(b);
    return it && sub_has_from(it->sub);
}

/* Unavailable presence to the directed-presence entities that do not get
 * the broadcast anyway, then forget them. */
static void end_directed(sm_session *sess)
{
    sm_user *u = sess->user;
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&sess->directed, &pos, &key, &val))
        if (!to_contact_with_from(u, key)) sm_route(u->sm, presence_new(sess->full, key, "unavailable"));
    strmap_free(&sess->directed);
    sess->directed = (strmap)STRMAP_INIT;
}

static void broadcast(sm_session *sess, const xnode *el, int to_self)
{
    sm_user *u = sess->user;
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&u->roster, &pos, &key, &val)) {
        sm_item *it = val;
        if (sub_has_from(it->sub)) send_copy_to(u->sm, el, sess->full, it->jid);
    }
    for (sm_session *x = u->sessions; x; x = x->next) {
        if (!x->available || (x == sess && !to_self)) continue;
        stanza *c = stanza_from_node(el);
        xnode_set_attr(c->root, "from", sess->full);
        xnode_set_attr(c->root, "to", x->full);
        sm_session_send(x, c->root);
        stanza_free(c);
    }
}

static void deliver_pending_requests(sm_session *sess)
{
    sm_user *u = sess->user;
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&u->roster, &pos, &key, &val)) {
        sm_item *it = val;
        if (!it->pending_in) continue;
        stanza *st = it->pending_in_stanza ? sm_parse(it->pending_in_stanza, strlen(it->pending_in_stanza)) : NULL;
        if (!st || strcmp(st->root->name, "presence")) {
            if (st) stanza_free(st);
            st = presence_new(it->jid, u->bare, "subscribe");
        }
        sm_session_send(sess, st->root);
        stanza_free(st);
    }
}

static void mods_available(sm_session *sess, int initial)
{
    sm *s = sess->user->sm;
    for (size_t i = 0; i < s->nmodules; i++)
        if (s->modules[i]->available) s->modules[i]->available(sess, initial);
}

static void presence_available(sm_session *sess, stanza *st)
{
    sm_user *u = sess->user;
    int initial = !sess->available;
    xnode_set_attr(st->root, "to", NULL);
    sess->available = 1;
    sess->priority = parse_priority(st->root);
    if (sess->presence) stanza_free(sess->presence);
    sess->presence = st;
    broadcast(sess, st->root, 1);
    if (initial) {
        size_t pos = 0;
        const char *key;
        void *val;
        while (strmap_next(&u->roster, &pos, &key, &val)) {
            sm_item *it = val;
            if (sub_has_to(it->sub)) sm_route(u->sm, presence_new(u->bare, it->jid, "probe"));
        }
        /* The other resources' presence to the new one. */
        for (sm_session *x = u->sessions; x; x = x->next) {
            if (x == sess || !x->available || !x->presence) continue;
            stanza *c = stanza_from_node(x->presence->root);
            xnode_set_attr(c->root, "from", x->full);
            xnode_set_attr(c->root, "to", sess->full);
            sm_session_send(sess, c->root);
            stanza_free(c);
        }
        deliver_pending_requests(sess);
    }
    mods_available(sess, initial);
}

static void presence_unavailable(sm_session *sess, const xnode *el, int to_self)
{
    if (sess->available) {
        broadcast(sess, el, to_self);
        sess->available = 0;
        if (sess->presence) stanza_free(sess->presence);
        sess->presence = NULL;
    }
    end_directed(sess);
}

static void presence_session_ending(sm_session *sess)
{
    stanza *st = presence_new(sess->full, NULL, "unavailable");
    presence_unavailable(sess, st->root, 0);
    stanza_free(st);
}

/* ---- subscriptions (§3) ---- */

typedef struct sub_ctx {
    sm_user *u;
    stanza *st;             /* to route (outbound) or deliver (inbound) */
    char *contact;
    char *session_full;     /* outbound: the session that sent it */
    sub_result r;
    int outbound;
} sub_ctx;

static void sub_ctx_free(sub_ctx *c)
{
    if (c->st) stanza_free(c->st);
    free(c->contact);
    free(c->session_full);
    free(c);
}

static void sub_effects(sub_ctx *c)
{
    sm_user *u = c->u;
    if (c->outbound) {
        if (c->r.forward) {
            sm_route(u->sm, c->st);
            c->st = NULL;
        }
        /* §3.1.5: the new subscriber gets the user's current presence; §3.2.2:
         * a cancelled one gets unavailable presence. */
        if (c->r.gained_from) presence_send_current(u, c->contact);
        if (c->r.lost_from) presence_send_unavailable(u, c->contact);
        return;
    }
    if (c->r.forward && c->st) presence_to_available(u, c->st->root);
    if (c->r.auto_reply) sm_route(u->sm, presence_new(u->bare, c->contact, "subscribed"));
    if (c->r.gained_from) presence_send_current(u, c->contact);
}

static void on_sub_committed(sm_user *u, storage_status st, void *ud)
{
    sub_ctx *c = ud;
    if (u->sm->stopping) {
        sub_ctx_free(c);
        return;
    }
    if (st == STORAGE_OK) {
        sub_effects(c);
    } else {
        log_warn("user %s: subscription %s with %s not stored: %s", u->bare,
                 c->st ? xnode_attr(c->st->root, "type") : "?", c->contact, storage_status_string(st));
        if (c->outbound && c->session_full && c->st) {
            /* Tell the session it did not happen. */
            stanza *e = c->st;
            c->st = NULL;
            xnode_set_attr(e->root, "to", c->session_full);
            xnode_set_attr(e->root, "from", c->contact);
            xnode_set_attr(e->root, "type", "error");
            xnode *err = xnode_add_child(e->root, "error", NULL);
            xnode_set_attr(err, "type", "wait");
            xnode_set_attr(err, "code", "500");
            xnode_add_child(err, "internal-server-error", NS_XMPP_STANZAS);
            sm_route(u->sm, e);
        }
    }
    sub_ctx_free(c);
}

static int item_empty(const sm_item *it)
{
    return it->sub == SUB_NONE && !it->ask_out && !it->pending_in && !it->approved && !it->name && it->ngroups == 0;
}

static void apply_subscription(sm_user *u, const char *contact, sub_type t, int outbound, stanza *st,
                               const char *session_full)
{
    sm_item *cur = sm_roster_item(u, contact);
    sub_state state = {SUB_NONE, 0, 0, 0};
    if (cur) {
        state.sub = cur->sub;
        state.ask_out = cur->ask_out;
        state.pending_in = cur->pending_in;
        state.approved = cur->approved;
    }
    sub_result r = outbound ? sub_outbound(state, cur != NULL, t) : sub_inbound(state, cur != NULL, t);
    if (log_get_level() >= LOG_LVL_DEBUG) {
        char a[64], b[64];
        log_debug("user %s: %s %s %s %s: %s -> %s%s", u->bare, outbound ? "outbound" : "inbound", sub_type_name(t),
                  outbound ? "to" : "from", contact, sub_state_name(state, a, sizeof a),
                  sub_state_name(r.next, b, sizeof b), r.forward ? " (forwarded)" : "");
    }
    sub_ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->u = u;
    c->st = st;
    c->contact = strdup(contact);
    c->session_full = session_full ? strdup(session_full) : NULL;
    c->r = r;
    c->outbound = outbound;
    if (!c->contact || (session_full && !c->session_full)) abort();
    if (!r.changed) {
        sub_effects(c);
        sub_ctx_free(c);
        return;
    }
    if (!cur && u->sm->limits.max_roster_items && strmap_count(&u->roster) >= u->sm->limits.max_roster_items) {
        log_notice("user %s: roster full (%u items): %s %s %s refused", u->bare, u->sm->limits.max_roster_items,
                   sub_type_name(t), outbound ? "to" : "from", contact);
        if (outbound && c->st) {
            stanza *e = c->st;
            c->st = NULL;
            xnode_set_attr(e->root, "from", session_full);
            sm_bounce(u->sm, e, "not-allowed", NULL, "the roster is full");
        }
        sub_ctx_free(c);
        return;
    }
    sm_item *next = cur ? roster_item_clone(cur) : roster_item_make(contact);
    next->sub = r.next.sub;
    next->ask_out = r.next.ask_out;
    next->pending_in = r.next.pending_in;
    next->approved = r.next.approved;
    if (!next->pending_in) {
        free(next->pending_in_stanza);
        next->pending_in_stanza = NULL;
    } else if (!outbound && t == SUBT_SUBSCRIBE && st) {
        /* Kept for re-delivery at the next login (§3.1.3). */
        free(next->pending_in_stanza);
        next->pending_in_stanza = xml_to_string(st->root, "");
    }
    if (!next->name && (next->sub != SUB_NONE || next->ask_out || next->approved)) {
        next->name = strdup("");    /* now part of the roster the user sees */
        if (!next->name) abort();
    }
    int remove = item_empty(next) && (!cur || roster_item_hidden(cur));
    roster_commit(u, next, remove, r.push, on_sub_committed, c);
}

/* The user (session sess) sent a subscription stanza. */
static void subscription_out(sm_session *sess, stanza *st, sub_type t)
{
    sm_user *u = sess->user;
    const char *to = xnode_attr(st->root, "to");
    char *contact = jid_normalize_bare(to);
    if (!contact) {
        stanza_free(st);
        return;
    }
    /* §3.1.2: stamped with the user's bare JID, to the contact's bare JID. */
    xnode_set_attr(st->root, "from", u->bare);
    xnode_set_attr(st->root, "to", contact);
    apply_subscription(u, contact, t, 1, st, sess->full);
    free(contact);
}

static void subscription_in(sm_user *u, stanza *st, sub_type t)
{
    const char *from = xnode_attr(st->root, "from");
    char *contact = from ? jid_normalize_bare(from) : NULL;
    if (!contact) {
        stanza_free(st);
        return;
    }
    xnode_set_attr(st->root, "from", contact);
    xnode_set_attr(st->root, "to", u->bare);
    apply_subscription(u, contact, t, 0, st, NULL);
    free(contact);
}

/* A probe for u (§4.3.2). */
static void answer_probe(sm_user *u, stanza *st)
{
    const char *from = xnode_attr(st->root, "from");
    char *fb = from ? jid_normalize_bare(from) : NULL;
    if (!fb) {
        stanza_free(st);
        return;
    }
    sm_item *it = sm_roster_item(u, fb);
    int self = !strcmp(fb, u->bare);
    if (self || (it && sub_has_from(it->sub))) {
        int any = 0;
        for (sm_session *x = u->sessions; x; x = x->next) {
            if (!x->available || !x->presence) continue;
            send_copy_to(u->sm, x->presence->root, x->full, from);
            any = 1;
        }
        if (!any) sm_route(u->sm, presence_new(u->bare, from, "unavailable"));
    } else {
        /* Not subscribed: nothing is revealed, and the prober learns so. */
        sm_route(u->sm, presence_new(u->bare, fb, "unsubscribed"));
    }
    free(fb);
    stanza_free(st);
}

/* ---- hooks ---- */

static sm_hook_rc presence_out(sm_session *sess, stanza *st)
{
    if (strcmp(st->root->name, "presence")) return SM_PASS;
    const char *type = sm_type(st->root);
    const char *to = xnode_attr(st->root, "to");
    int t = sub_type_parse(type);
    if (t >= 0) {
        if (!to) stanza_free(st);
        else subscription_out(sess, st, (sub_type)t);
        return SM_DONE;
    }
    if (type && !strcmp(type, "probe")) {
        /* Probes are the server's business (§4.3). */
        stanza_free(st);
        return SM_DONE;
    }
    if (type && strcmp(type, "unavailable") && strcmp(type, "error")) {
        stanza_free(st);
        return SM_DONE;     /* unknown type */
    }
    if (!to) {
        if (type && !strcmp(type, "error")) {
            stanza_free(st);
        } else if (!type) {
            presence_available(sess, st);  /* keeps st */
        } else {
            presence_unavailable(sess, st->root, 1);
            stanza_free(st);
        }
        return SM_DONE;
    }
    /* Directed presence (§4.6): remembered so that unavailable follows it. */
    if (!type) {
        if (!to_contact_with_from(sess->user, to) || strchr(to, '/'))
            if (strmap_count(&sess->directed) < 1000) strmap_put(&sess->directed, to, (void *)1);
    } else if (!strcmp(type, "unavailable")) {
        strmap_del(&sess->directed, to);
    }
    return SM_PASS;
}

static sm_hook_rc presence_in(sm_user *u, stanza *st, int returned, sm_session *skip)
{
    (void)skip;
    if (strcmp(st->root->name, "presence")) return SM_PASS;
    if (returned) {
        stanza_free(st);
        return SM_DONE;
    }
    const char *type = sm_type(st->root);
    int t = sub_type_parse(type);
    if (t >= 0) {
        subscription_in(u, st, (sub_type)t);
        return SM_DONE;
    }
    if (type && !strcmp(type, "probe")) {
        answer_probe(u, st);
        return SM_DONE;
    }
    if (type && strcmp(type, "unavailable") && strcmp(type, "error")) {
        stanza_free(st);
        return SM_DONE;
    }
    const char *to = xnode_attr(st->root, "to");
    const char *slash = to ? strchr(to, '/') : NULL;
    if (type && !strcmp(type, "error")) {
        /* The entity did not take our presence: stop sending it more. */
        const char *from = xnode_attr(st->root, "from");
        for (sm_session *x = u->sessions; x && from; x = x->next) strmap_del(&x->directed, from);
    }
    if (slash) {
        sm_session *x = sm_user_session(u, slash + 1);
        if (x) sm_session_send(x, st->root);
    } else {
        presence_to_available(u, st->root);
    }
    stanza_free(st);
    return SM_DONE;
}

const sm_module mod_presence = {
    .name = "presence",
    .session_ending = presence_session_ending,
    .out_stanza = presence_out,
    .in_stanza = presence_in,
};
