/* mod_roster: jabber:iq:roster (RFC 6121 §2) with roster versioning
 * (XEP-0237), the in-memory roster and its persistence. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jid.h"
#include "common/log.h"
#include "sm/module.h"
#include "sm/sub.h"
#include "storage/roster.h"

static char *dup_or_null(const char *s)
{
    if (!s) return NULL;
    char *p = strdup(s);
    if (!p) abort();
    return p;
}

sm_item *roster_item_make(const char *jid)
{
    sm_item *it = calloc(1, sizeof *it);
    if (!it) abort();
    it->jid = dup_or_null(jid);
    return it;
}

static void set_groups(sm_item *it, const char *const *groups, size_t n)
{
    it->groups = n ? calloc(n, sizeof *it->groups) : NULL;
    if (n && !it->groups) abort();
    for (size_t i = 0; i < n; i++) it->groups[i] = dup_or_null(groups[i]);
    it->ngroups = n;
}

static void free_groups(sm_item *it)
{
    for (size_t i = 0; i < it->ngroups; i++) free(it->groups[i]);
    free(it->groups);
    it->groups = NULL;
    it->ngroups = 0;
}

sm_item *roster_item_clone(const sm_item *src)
{
    sm_item *it = roster_item_make(src->jid);
    it->name = dup_or_null(src->name);
    set_groups(it, (const char *const *)src->groups, src->ngroups);
    it->sub = src->sub;
    it->ask_out = src->ask_out;
    it->pending_in = src->pending_in;
    it->approved = src->approved;
    it->pending_in_stanza = dup_or_null(src->pending_in_stanza);
    return it;
}

void roster_item_free(sm_item *it)
{
    if (!it) return;
    free(it->jid);
    free(it->name);
    free_groups(it);
    free(it->pending_in_stanza);
    free(it);
}

int roster_item_hidden(const sm_item *it)
{
    /* Every item the user has seen has a name ("" when it has none): a NULL
     * name marks a contact that only asked (Pending In). */
    return !it->name && it->sub == SUB_NONE && !it->ask_out && !it->approved && it->ngroups == 0;
}

void roster_load_rows(sm_user *u, const roster_row *rows, size_t n, int64_t version)
{
    roster_clear(u);
    for (size_t i = 0; i < n; i++) {
        const roster_row *r = &rows[i];
        if (!r->contact) continue;
        sm_item *it = roster_item_make(r->contact);
        it->name = dup_or_null(r->name);
        set_groups(it, r->groups, r->ngroups);
        it->sub = r->subscription;
        it->ask_out = r->ask_out;
        it->pending_in = r->pending_in;
        it->approved = r->approved;
        it->pending_in_stanza = dup_or_null(r->pending_in_stanza);
        sm_item *old = strmap_put(&u->roster, it->jid, it);
        roster_item_free(old);
    }
    u->roster_version = version;
}

void roster_clear(sm_user *u)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&u->roster, &pos, &key, &val)) roster_item_free(val);
    strmap_free(&u->roster);
    u->roster = (strmap)STRMAP_INIT;
}

void roster_item_xml(xnode *query, const sm_item *it, int removed)
{
    xnode *item = xnode_add_child(query, "item", NULL);
    xnode_set_attr(item, "jid", it->jid);
    if (removed) {
        xnode_set_attr(item, "subscription", "remove");
        return;
    }
    if (it->name && *it->name) xnode_set_attr(item, "name", it->name);
    xnode_set_attr(item, "subscription", sub_name(it->sub));
    if (it->ask_out) xnode_set_attr(item, "ask", "subscribe");
    if (it->approved) xnode_set_attr(item, "approved", "true");
    for (size_t i = 0; i < it->ngroups; i++) xnode_add_text_child(item, "group", NULL, it->groups[i]);
}

static void version_str(const sm_user *u, char *out, size_t len)
{
    snprintf(out, len, "%" PRId64, u->roster_version);
}

/* A roster push (RFC 6121 §2.1.6) to every interested resource. */
static void roster_push(sm_user *u, const sm_item *it, int removed)
{
    char ver[32];
    version_str(u, ver, sizeof ver);
    for (sm_session *s = u->sessions; s; s = s->next) {
        if (!s->interested) continue;
        stanza *st = stanza_new("iq", NS_CLIENT);
        xnode_set_attr(st->root, "type", "set");
        xnode_set_attr(st->root, "id", sm_new_id(u->sm));
        xnode_set_attr(st->root, "from", u->bare);
        xnode_set_attr(st->root, "to", s->full);
        xnode *q = xnode_add_child(st->root, "query", NS_ROSTER);
        xnode_set_attr(q, "ver", ver);
        roster_item_xml(q, it, removed);
        sm_session_send(s, st->root);
        stanza_free(st);
    }
}

typedef struct commit_ctx {
    sm_user *u;
    sm_item *next;
    int remove;
    int push;
    int was_visible;
    void (*done)(sm_user *u, storage_status st, void *ud);
    void *ud;
} commit_ctx;

static void on_committed(void *ud, storage_status st, int64_t version)
{
    commit_ctx *c = ud;
    sm_user *u = c->u;
    if (st == STORAGE_NOT_FOUND && c->remove) st = STORAGE_OK;   /* already gone */
    if (st == STORAGE_OK && !u->sm->stopping) {
        if (version > 0) u->roster_version = version;
        if (c->remove) {
            sm_item *old = strmap_del(&u->roster, c->next->jid);
            if (c->was_visible && c->push) roster_push(u, c->next, 1);
            roster_item_free(old);
            roster_item_free(c->next);
        } else {
            sm_item *old = strmap_put(&u->roster, c->next->jid, c->next);
            if (c->push && !roster_item_hidden(c->next)) roster_push(u, c->next, 0);
            roster_item_free(old);
        }
        c->next = NULL;
    } else if (st != STORAGE_OK) {
        log_warn("user %s: storing roster item %s failed: %s", u->bare, c->next->jid, storage_status_string(st));
    }
    roster_item_free(c->next);
    if (c->done) c->done(u, st, c->ud);
    free(c);
    sm_user_release(u);
}

void roster_commit(sm_user *u, sm_item *next, int remove, int push,
                   void (*done)(sm_user *u, storage_status st, void *ud), void *ud)
{
    commit_ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->u = u;
    c->next = next;
    c->remove = remove;
    c->push = push;
    c->done = done;
    c->ud = ud;
    sm_item *cur = sm_roster_item(u, next->jid);
    c->was_visible = cur && !roster_item_hidden(cur);
    sm_user_hold(u);
    if (remove) {
        roster_remove(u->sm->db, u->domain, u->node, next->jid, on_committed, c);
        return;
    }
    roster_row row;
    memset(&row, 0, sizeof row);
    row.contact = next->jid;
    row.name = next->name;
    row.subscription = next->sub;
    row.ask_out = next->ask_out;
    row.pending_in = next->pending_in;
    row.approved = next->approved;
    row.pending_in_stanza = next->pending_in_stanza;
    row.groups = (const char *const *)next->groups;
    row.ngroups = next->ngroups;
    roster_put(u->sm->db, u->domain, u->node, &row, on_committed, c);
}

/* ---- jabber:iq:roster ---- */

static void roster_get(sm_iq *iq)
{
    sm_user *u = iq->user;
    if (iq->session) iq->session->interested = 1;
    char ver[32];
    version_str(u, ver, sizeof ver);
    const char *asked = xnode_attr(iq->payload, "ver");
    stanza *r = sm_iq_result(iq->st->root);
    if (asked && !strcmp(asked, ver)) {
        /* XEP-0237: nothing changed, empty result; changes would come as pushes. */
        sm_iq_reply(iq, r);
        return;
    }
    xnode *q = xnode_add_child(r->root, "query", NS_ROSTER);
    if (asked) xnode_set_attr(q, "ver", ver);
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&u->roster, &pos, &key, &val))
        if (!roster_item_hidden(val)) roster_item_xml(q, val, 0);
    sm_iq_reply(iq, r);
}

typedef struct set_ctx {
    sm_iq *iq;
    sm_item *old;           /* remove: the item as it was (copy) */
} set_ctx;

static void send_sub(sm_user *u, const char *contact, const char *type)
{
    stanza *st = stanza_new("presence", NS_CLIENT);
    xnode_set_attr(st->root, "from", u->bare);
    xnode_set_attr(st->root, "to", contact);
    xnode_set_attr(st->root, "type", type);
    sm_route(u->sm, st);
}

static void on_set_done(sm_user *u, storage_status st, void *ud)
{
    set_ctx *c = ud;
    if (st != STORAGE_OK) {
        sm_iq_error(c->iq, "internal-server-error", "wait");
    } else {
        if (c->old && !u->sm->stopping) {
            /* RFC 6121 §2.5.2: removing an item cancels the subscriptions both ways. */
            sm_item *o = c->old;
            if (o->sub == SUB_TO || o->sub == SUB_BOTH || o->ask_out) send_sub(u, o->jid, "unsubscribe");
            if (o->sub == SUB_FROM || o->sub == SUB_BOTH || o->pending_in) send_sub(u, o->jid, "unsubscribed");
            if (o->sub == SUB_FROM || o->sub == SUB_BOTH) presence_send_unavailable(u, o->jid);
        }
        sm_iq_reply(c->iq, NULL);
    }
    roster_item_free(c->old);
    free(c);
}

static void roster_set(sm_iq *iq)
{
    sm_user *u = iq->user;
    const sm_limits *lim = &u->sm->limits;
    xnode *item = xnode_child(iq->payload, "item", NULL);
    if (!item || xnode_next(item, "item", NULL)) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    const char *jidstr = xnode_attr(item, "jid");
    char *contact = jidstr ? jid_normalize(jidstr) : NULL;
    if (!contact) {
        sm_iq_error(iq, jidstr ? "jid-malformed" : "bad-request", NULL);
        return;
    }
    if (strchr(contact, '/')) {
        /* Roster items are bare JIDs. */
        free(contact);
        sm_iq_error(iq, "jid-malformed", NULL);
        return;
    }
    const char *subscription = xnode_attr(item, "subscription");
    sm_item *cur = sm_roster_item(u, contact);
    if (subscription && !strcmp(subscription, "remove")) {
        if (!cur) {
            free(contact);
            sm_iq_error(iq, "item-not-found", NULL);
            return;
        }
        set_ctx *c = calloc(1, sizeof *c);
        if (!c) abort();
        c->iq = iq;
        c->old = roster_item_clone(cur);
        roster_commit(u, roster_item_make(contact), 1, 1, on_set_done, c);
        free(contact);
        return;
    }
    /* Any other 'subscription' (and 'ask') from a client is ignored (§2.1.2.5). */
    const char *name = xnode_attr(item, "name");
    if (name && strlen(name) > lim->max_item_name_bytes) {
        free(contact);
        sm_iq_error(iq, "not-acceptable", NULL);
        return;
    }
    size_t ng = 0;
    for (xnode *g = xnode_child(item, "group", NULL); g; g = xnode_next(g, "group", NULL)) ng++;
    if (ng > lim->max_groups) {
        free(contact);
        sm_iq_error(iq, "not-acceptable", NULL);
        return;
    }
    const char **groups = calloc(ng ? ng : 1, sizeof *groups);
    if (!groups) abort();
    size_t k = 0;
    const char *bad = NULL;
    for (xnode *g = xnode_child(item, "group", NULL); g; g = xnode_next(g, "group", NULL)) {
        const char *t = xnode_text(g);
        if (!*t || strlen(t) > lim->max_group_bytes) bad = "not-acceptable";
        for (size_t i = 0; i < k && !bad; i++)
            if (!strcmp(groups[i], t)) bad = "bad-request";     /* a group twice */
        groups[k++] = t;
    }
    if (bad) {
        free(groups);
        free(contact);
        sm_iq_error(iq, bad, NULL);
        return;
    }
    if (!cur && lim->max_roster_items && strmap_count(&u->roster) >= lim->max_roster_items) {
        log_notice("user %s: roster full (%u items)", u->bare, lim->max_roster_items);
        free(groups);
        free(contact);
        sm_iq_error(iq, "not-allowed", NULL);
        return;
    }
    sm_item *next = cur ? roster_item_clone(cur) : roster_item_make(contact);
    free(next->name);
    next->name = dup_or_null(name ? name : "");   /* "" : in the roster, without a name */
    free_groups(next);
    set_groups(next, groups, ng);
    free(groups);
    free(contact);
    set_ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->iq = iq;
    roster_commit(u, next, 0, 1, on_set_done, c);
}

static void roster_iq(sm_iq *iq)
{
    sm_user *u = iq->user;
    /* Only the user manages the roster; a 'to' of the user's own bare JID
     * was already taken as no 'to' (RFC 6121 §2.1.5). */
    char *fb = iq->from ? jid_normalize_bare(iq->from) : NULL;
    int self = fb && u && !strcmp(fb, u->bare);
    free(fb);
    if (!self) {
        sm_iq_error(iq, "forbidden", NULL);
        return;
    }
    if (iq->is_set) roster_set(iq);
    else roster_get(iq);
}

static const sm_iq_handler roster_iqs[] = {
    {NS_ROSTER, SM_IQ_ACCOUNT, roster_iq},
    {NULL, 0, NULL},
};

static const char *const roster_features[] = {NS_ROSTER, NULL};

const sm_module mod_roster = {
    .name = "roster",
    .iqs = roster_iqs,
    .server_features = roster_features,
};
