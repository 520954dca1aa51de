/* mod_privacy: privacy lists (jabber:iq:privacy, XEP-0016 / RFC 3921 §10)
 * and the blocking command (urn:xmpp:blocking, XEP-0191), enforced by one
 * code path.
 *
 * The blocklist is a view on the default privacy list (XEP-0191 §5): the
 * blocked JIDs are its items of type 'jid', action 'deny' and no child
 * element. Blocking a JID adds such items at the front of the default list
 * (creating a default list named "urn:xmpp:blocking" when there is none);
 * unblocking removes them. So a privacy list edit of the default list shows
 * in the blocklist, and both are enforced by the same rules
 * (sm/privacy_rules.h).
 *
 * The user's lists are loaded with the user (user_loading) and kept in
 * memory while it is; active lists are per session and not stored.
 * Enforcement:
 *  - in_stanza: stanzas for the user, before presence, message and offline
 *    delivery see them (so nothing blocked is stored offline);
 *  - out_stanza: stanzas from a session (blocked: <not-acceptable/>, with
 *    <blocked xmlns='urn:xmpp:blocking:errors'/> for a blocked JID);
 *  - presence_from_user: presence the server sends for the user
 *    (broadcasts, probe answers, unavailable presence), dropped silently;
 *  - privacy_allows() for other modules (offline, carbons, ...).
 * Stanzas between the user's own resources, and to or from the user's own
 * server (the domain JID), are never blocked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jid.h"
#include "common/log.h"
#include "common/stanza_error.h"
#include "sm/module.h"
#include "sm/privacy_rules.h"
#include "storage/privacy.h"

#define NS_PRIVACY "jabber:iq:privacy"
#define NS_BLOCKING "urn:xmpp:blocking"
#define NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"
#define BLOCKLIST_NAME "urn:xmpp:blocking"

typedef struct priv_sess {
    uint64_t id;
    char *active;               /* the session's active list, or NULL */
    int blocklist;              /* asked for the blocklist: gets blocking pushes */
    struct priv_sess *next;
} priv_sess;

typedef struct priv_user {
    strmap lists;               /* name -> privacy_list* */
    char *def;                  /* the default list's name, or NULL */
    priv_sess *sessions;
} priv_user;

static strmap priv_users = STRMAP_INIT;     /* bare JID -> priv_user* */
static long max_lists = 50, max_items = 250;
static int bypass;                          /* routing presence of our own: no filter */

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) abort();
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p) abort();
    return p;
}

/* ---- lists in memory ---- */

static void list_free(privacy_list *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->nitems; i++) free(l->items[i].value);
    free(l->items);
    free(l->name);
    free(l);
}

static privacy_list *list_new(const char *name, size_t cap)
{
    privacy_list *l = xcalloc(1, sizeof *l);
    l->name = xstrdup(name);
    l->items = xcalloc(cap, sizeof *l->items);
    return l;
}

static void list_add(privacy_list *l, privacy_type type, const char *value, int deny, unsigned kinds,
                     unsigned long order)
{
    privacy_item *it = &l->items[l->nitems++];
    it->type = type;
    it->value = value ? xstrdup(value) : NULL;
    it->deny = deny;
    it->kinds = kinds;
    it->order = order;
}

static int cmp_order(const void *a, const void *b)
{
    const privacy_item *x = a, *y = b;
    return (x->order > y->order) - (x->order < y->order);
}

static const char *type_name(privacy_type t)
{
    switch (t) {
    case PRIV_JID: return "jid";
    case PRIV_GROUP: return "group";
    case PRIV_SUBSCRIPTION: return "subscription";
    default: return NULL;
    }
}

static privacy_type type_parse(const char *s)
{
    if (!s) return PRIV_FALLTHROUGH;
    if (!strcmp(s, "jid")) return PRIV_JID;
    if (!strcmp(s, "group")) return PRIV_GROUP;
    return PRIV_SUBSCRIPTION;
}

static priv_user *pu_get(const sm_user *u) { return strmap_get(&priv_users, u->bare); }

static priv_sess *ps_get(priv_user *pu, uint64_t id, int create)
{
    for (priv_sess *p = pu->sessions; p; p = p->next)
        if (p->id == id) return p;
    if (!create) return NULL;
    priv_sess *p = xcalloc(1, sizeof *p);
    p->id = id;
    p->next = pu->sessions;
    pu->sessions = p;
    return p;
}

static const privacy_list *list_named(const priv_user *pu, const char *name)
{
    return name ? strmap_get(&pu->lists, name) : NULL;
}

static const privacy_list *default_list(const priv_user *pu) { return list_named(pu, pu->def); }

/* The list that applies to a session (its active list, else the default),
 * or to the user as a whole when sess is NULL. */
static const privacy_list *list_for(priv_user *pu, const sm_session *sess)
{
    if (sess) {
        priv_sess *ps = ps_get(pu, sess->id, 0);
        if (ps && ps->active) return list_named(pu, ps->active);
    }
    return default_list(pu);
}

/* Does name apply to session x? */
static int applies_to(priv_user *pu, const sm_session *x, const char *name)
{
    priv_sess *ps = ps_get(pu, x->id, 0);
    if (ps && ps->active) return !strcmp(ps->active, name);
    return pu->def && !strcmp(pu->def, name);
}

/* ---- evaluation ---- */

/* Never blocked: the user's own resources and the user's own server. */
static int exempt(const sm_user *u, const char *other)
{
    if (!other) return 1;
    size_t n = strcspn(other, "/");
    if (strlen(u->bare) == n && !strncmp(other, u->bare, n)) return 1;
    return !strcmp(other, u->domain);
}

/* The deny item that blocks a stanza of kind to/from 'other', or NULL. */
static const privacy_item *blocker(sm_user *u, const privacy_list *l, const char *other, unsigned kind)
{
    if (!l || exempt(u, other)) return NULL;
    char bare[2 * JID_PART_MAX + 4];
    size_t n = strcspn(other, "/");
    if (n >= sizeof bare) n = sizeof bare - 1;
    memcpy(bare, other, n);
    bare[n] = 0;
    privacy_contact c = {other, 0, PRIV_SUB_NONE, NULL, 0};
    sm_item *it = sm_roster_item(u, bare);
    if (it && !roster_item_hidden(it)) {
        c.in_roster = 1;
        c.sub = (privacy_sub)it->sub;
        c.groups = (const char *const *)it->groups;
        c.ngroups = it->ngroups;
    }
    const privacy_item *m = privacy_list_match(l, &c, kind);
    return m && m->deny ? m : NULL;
}

int privacy_allows(sm_user *u, sm_session *sess, const xnode *stanza, int inbound)
{
    priv_user *pu = pu_get(u);
    if (!pu || !stanza) return 1;
    const char *other = xnode_attr(stanza, inbound ? "from" : "to");
    unsigned kind = privacy_stanza_kind(stanza->name, xnode_attr(stanza, "type"), inbound);
    return blocker(u, list_for(pu, sess), other, kind) == NULL;
}

/* ---- blocklist view and presence bookkeeping ---- */

typedef struct strvec {
    char **v;
    size_t n, cap;
} strvec;

static void sv_add(strvec *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], x)) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) abort();
    }
    s->v[s->n++] = xstrdup(x);
}

static int sv_has(const strvec *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], x)) return 1;
    return 0;
}

static void sv_free(strvec *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static void blocked_jids(const priv_user *pu, strvec *out)
{
    const privacy_list *l = default_list(pu);
    for (size_t i = 0; l && i < l->nitems; i++)
        if (privacy_item_is_block(&l->items[i])) sv_add(out, l->items[i].value);
}

/* Who may get each available session's presence, and whether the lists let
 * it through: taken before a change, compared after it (XEP-0016 §2.11,
 * XEP-0191 §3.3/§3.4: unavailable presence to whom it is now blocked for,
 * current presence to whom it is no longer blocked for). */
typedef struct snap_entry {
    uint64_t sess;
    char *jid;
    int allowed;
} snap_entry;

typedef struct snapshot {
    snap_entry *e;
    size_t n, cap;
} snapshot;

static void snap_add(snapshot *s, uint64_t sess, const char *jid, int allowed)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->e = realloc(s->e, s->cap * sizeof *s->e);
        if (!s->e) abort();
    }
    s->e[s->n++] = (snap_entry){sess, xstrdup(jid), allowed};
}

static void snap_free(snapshot *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->e[i].jid);
    free(s->e);
    s->e = NULL;
    s->n = s->cap = 0;
}

static void snap_take(sm_user *u, priv_user *pu, snapshot *s)
{
    for (sm_session *x = u->sessions; x; x = x->next) {
        if (!x->available) continue;
        const privacy_list *l = list_for(pu, x);
        size_t pos = 0;
        const char *key;
        void *val;
        while (strmap_next(&u->roster, &pos, &key, &val)) {
            sm_item *it = val;
            if (it->sub == SUB_FROM || it->sub == SUB_BOTH)
                snap_add(s, x->id, it->jid, blocker(u, l, it->jid, PRIV_PRESENCE_OUT) == NULL);
        }
        pos = 0;
        while (strmap_next(&x->directed, &pos, &key, &val))
            snap_add(s, x->id, key, blocker(u, l, key, PRIV_PRESENCE_OUT) == NULL);
    }
}

static sm_session *session_by_id(sm_user *u, uint64_t id)
{
    for (sm_session *x = u->sessions; x; x = x->next)
        if (x->id == id) return x;
    return NULL;
}

static void snap_apply(sm_user *u, priv_user *pu, const snapshot *s)
{
    bypass++;
    for (size_t i = 0; i < s->n; i++) {
        const snap_entry *e = &s->e[i];
        sm_session *x = session_by_id(u, e->sess);
        if (!x || !x->available) continue;
        int now = blocker(u, list_for(pu, x), e->jid, PRIV_PRESENCE_OUT) == NULL;
        if (now == e->allowed) continue;
        stanza *p;
        if (now && x->presence) {
            p = stanza_from_node(x->presence->root);
        } else if (!now) {
            p = stanza_new("presence", NS_CLIENT);
            xnode_set_attr(p->root, "type", "unavailable");
        } else {
            continue;
        }
        xnode_set_attr(p->root, "from", x->full);
        xnode_set_attr(p->root, "to", e->jid);
        sm_route(u->sm, p);
    }
    bypass--;
}

/* ---- pushes ---- */

static stanza *push_new(sm_user *u, sm_session *x)
{
    stanza *st = stanza_new("iq", NS_CLIENT);
    xnode_set_attr(st->root, "type", "set");
    xnode_set_attr(st->root, "id", sm_new_id(u->sm));
    xnode_set_attr(st->root, "from", u->bare);
    xnode_set_attr(st->root, "to", x->full);
    return st;
}

/* XEP-0016 §2.6: the list's name to every connected resource. */
static void push_list(sm_user *u, const char *name)
{
    for (sm_session *x = u->sessions; x; x = x->next) {
        stanza *st = push_new(u, x);
        xnode *q = xnode_add_child(st->root, "query", NS_PRIVACY);
        xnode_set_attr(xnode_add_child(q, "list", NULL), "name", name);
        sm_session_send(x, st->root);
        stanza_free(st);
    }
}

/* XEP-0191 §3.3/§3.4: to the resources that asked for the blocklist. el
 * is <block/> or <unblock/> with its items (none: unblock all). */
static void push_blocking(sm_user *u, priv_user *pu, const char *what, const strvec *jids)
{
    for (sm_session *x = u->sessions; x; x = x->next) {
        priv_sess *ps = ps_get(pu, x->id, 0);
        if (!ps || !ps->blocklist) continue;
        stanza *st = push_new(u, x);
        xnode *b = xnode_add_child(st->root, what, NS_BLOCKING);
        for (size_t i = 0; jids && i < jids->n; i++) xnode_set_attr(xnode_add_child(b, "item", NULL), "jid", jids->v[i]);
        sm_session_send(x, st->root);
        stanza_free(st);
    }
}

/* ---- changes: stored first, then applied in memory ---- */

typedef enum { OP_PUT, OP_REMOVE, OP_DEFAULT } op_kind;

typedef struct op {
    sm_iq *iq;
    sm_user *u;
    op_kind kind;
    privacy_list *list;         /* OP_PUT: the new list (owned) */
    int make_default;           /* OP_PUT */
    char *name;                 /* OP_REMOVE, OP_DEFAULT (NULL: no default) */
    int push_list;              /* push the list's name (XEP-0016) */
    const char *bpush;          /* "block"/"unblock": push these items (XEP-0191), else the blocklist's changes */
    strvec bitems;
    int unblock_all;
    strvec blocked_before;
    snapshot snap;
} op;

static void op_free(op *o)
{
    list_free(o->list);
    free(o->name);
    sv_free(&o->bitems);
    sv_free(&o->blocked_before);
    snap_free(&o->snap);
    free(o);
}

static void op_applied(op *o)
{
    sm_user *u = o->u;
    priv_user *pu = pu_get(u);
    const char *pushed = NULL;
    switch (o->kind) {
    case OP_PUT: {
        privacy_list *old = strmap_put(&pu->lists, o->list->name, o->list);
        pushed = o->list->name;
        if (o->make_default) {
            free(pu->def);
            pu->def = xstrdup(o->list->name);
        }
        o->list = NULL;
        list_free(old);
        break;
    }
    case OP_REMOVE:
        list_free(strmap_del(&pu->lists, o->name));
        if (pu->def && !strcmp(pu->def, o->name)) {
            free(pu->def);
            pu->def = NULL;
        }
        for (priv_sess *ps = pu->sessions; ps; ps = ps->next)
            if (ps->active && !strcmp(ps->active, o->name)) {
                free(ps->active);
                ps->active = NULL;
            }
        pushed = o->name;
        break;
    case OP_DEFAULT:
        free(pu->def);
        pu->def = o->name ? xstrdup(o->name) : NULL;
        break;
    }
    sm_iq_reply(o->iq, NULL);
    o->iq = NULL;
    if (o->push_list && pushed) push_list(u, pushed);
    if (o->bpush) {
        push_blocking(u, pu, o->bpush, o->unblock_all ? NULL : &o->bitems);
    } else {
        strvec after = {0};
        blocked_jids(pu, &after);
        strvec added = {0}, removed = {0};
        for (size_t i = 0; i < after.n; i++)
            if (!sv_has(&o->blocked_before, after.v[i])) sv_add(&added, after.v[i]);
        for (size_t i = 0; i < o->blocked_before.n; i++)
            if (!sv_has(&after, o->blocked_before.v[i])) sv_add(&removed, o->blocked_before.v[i]);
        if (added.n) push_blocking(u, pu, "block", &added);
        if (removed.n) push_blocking(u, pu, "unblock", &removed);
        sv_free(&after);
        sv_free(&added);
        sv_free(&removed);
    }
    snap_apply(u, pu, &o->snap);
}

static void on_stored(void *ud, storage_status st)
{
    op *o = ud;
    sm_user *u = o->u;
    if (u->sm->stopping) {
        stanza_free(o->iq->st);
        free(o->iq);
    } else if (st == STORAGE_OK) {
        op_applied(o);
    } else if (st == STORAGE_NOT_FOUND && o->kind != OP_PUT) {
        sm_iq_error(o->iq, "item-not-found", NULL);
    } else {
        log_warn("user %s: privacy change not stored: %s", u->bare, storage_status_string(st));
        sm_iq_error(o->iq, "internal-server-error", "wait");
    }
    op_free(o);
    sm_user_release(u);
}

static op *op_new(sm_iq *iq, op_kind kind)
{
    op *o = xcalloc(1, sizeof *o);
    o->iq = iq;
    o->u = iq->user;
    o->kind = kind;
    priv_user *pu = pu_get(iq->user);
    blocked_jids(pu, &o->blocked_before);
    snap_take(iq->user, pu, &o->snap);
    return o;
}

static void op_run(op *o)
{
    sm_user *u = o->u;
    storage *db = u->sm->db;
    sm_user_hold(u);
    if (o->kind == OP_PUT) {
        privacy_item_row *rows = xcalloc(o->list->nitems, sizeof *rows);
        for (size_t i = 0; i < o->list->nitems; i++) {
            const privacy_item *it = &o->list->items[i];
            rows[i] = (privacy_item_row){it->order, type_name(it->type), it->value, it->deny, it->kinds};
        }
        privacy_list_row lr = {o->list->name, o->make_default, rows, o->list->nitems};
        privacy_put_list(db, u->domain, u->node, &lr, o->make_default, on_stored, o);
        free(rows);
    } else if (o->kind == OP_REMOVE) {
        privacy_remove_list(db, u->domain, u->node, o->name, on_stored, o);
    } else {
        privacy_set_default(db, u->domain, u->node, o->name, on_stored, o);
    }
}

/* ---- jabber:iq:privacy ---- */

static void item_xml(xnode *list, const privacy_item *it)
{
    xnode *x = xnode_add_child(list, "item", NULL);
    if (it->type != PRIV_FALLTHROUGH) {
        xnode_set_attr(x, "type", type_name(it->type));
        xnode_set_attr(x, "value", it->value);
    }
    xnode_set_attr(x, "action", it->deny ? "deny" : "allow");
    char ord[24];
    snprintf(ord, sizeof ord, "%lu", it->order);
    xnode_set_attr(x, "order", ord);
    if (it->kinds & PRIV_MESSAGE) xnode_add_child(x, "message", NULL);
    if (it->kinds & PRIV_IQ) xnode_add_child(x, "iq", NULL);
    if (it->kinds & PRIV_PRESENCE_IN) xnode_add_child(x, "presence-in", NULL);
    if (it->kinds & PRIV_PRESENCE_OUT) xnode_add_child(x, "presence-out", NULL);
}

static int group_in_roster(sm_user *u, const char *g)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&u->roster, &pos, &key, &val)) {
        sm_item *it = val;
        for (size_t i = 0; i < it->ngroups; i++)
            if (!strcmp(it->groups[i], g)) return 1;
    }
    return 0;
}

static int parse_order(const char *s, unsigned long *out)
{
    if (!s || !*s || strlen(s) > 18) return -1;
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    *out = v;
    return 0;
}

/* Parse <list name='...'> with items; NULL with *cond set when it is refused. */
static privacy_list *parse_list(sm_user *u, const xnode *el, const char **cond)
{
    size_t n = xnode_count_elements(el);
    if ((long)n > max_items) {
        *cond = "resource-constraint";
        return NULL;
    }
    privacy_list *l = list_new(xnode_attr(el, "name"), n);
    *cond = "bad-request";
    for (xnode *x = xnode_first_element(el); x; x = xnode_next_element(x)) {
        if (strcmp(x->name, "item") || !x->ns || strcmp(x->ns, NS_PRIVACY)) goto bad;
        const char *type = xnode_attr(x, "type"), *value = xnode_attr(x, "value");
        const char *action = xnode_attr(x, "action");
        unsigned long order;
        if (!action || (strcmp(action, "allow") && strcmp(action, "deny"))) goto bad;
        if (parse_order(xnode_attr(x, "order"), &order) < 0) goto bad;
        for (size_t i = 0; i < l->nitems; i++)
            if (l->items[i].order == order) goto bad;   /* unique orders */
        char *norm = NULL;
        if (type) {
            if (strcmp(type, "jid") && strcmp(type, "group") && strcmp(type, "subscription")) goto bad;
            if (!value || !*value) goto bad;
            if (!strcmp(type, "jid")) {
                norm = jid_normalize(value);
                if (!norm) goto bad;
            } else if (!strcmp(type, "subscription")) {
                if (privacy_sub_parse(value) < 0) goto bad;
            } else if (!group_in_roster(u, value)) {
                *cond = "item-not-found";   /* XEP-0016 §2.1: a group not in the roster */
                goto bad;
            }
        }
        unsigned kinds = 0;
        for (xnode *k = xnode_first_element(x); k; k = xnode_next_element(k)) {
            if (!strcmp(k->name, "message")) kinds |= PRIV_MESSAGE;
            else if (!strcmp(k->name, "iq")) kinds |= PRIV_IQ;
            else if (!strcmp(k->name, "presence-in")) kinds |= PRIV_PRESENCE_IN;
            else if (!strcmp(k->name, "presence-out")) kinds |= PRIV_PRESENCE_OUT;
            else {
                free(norm);
                goto bad;
            }
        }
        list_add(l, type_parse(type), type ? (norm ? norm : value) : NULL, !strcmp(action, "deny"), kinds, order);
        free(norm);
    }
    qsort(l->items, l->nitems, sizeof *l->items, cmp_order);
    return l;
bad:
    list_free(l);
    return NULL;
}

/* Is name applied to a session other than the sender's? */
static int in_use_elsewhere(sm_user *u, priv_user *pu, const sm_session *self, const char *name)
{
    for (sm_session *x = u->sessions; x; x = x->next)
        if (x != self && applies_to(pu, x, name)) return 1;
    return 0;
}

static void privacy_get(sm_iq *iq, priv_user *pu)
{
    xnode *q = iq->payload;
    size_t n = xnode_count_elements(q);
    stanza *r = sm_iq_result(iq->st->root);
    xnode *rq = xnode_add_child(r->root, "query", NS_PRIVACY);
    if (n == 0) {
        priv_sess *ps = ps_get(pu, iq->session->id, 0);
        if (ps && ps->active) xnode_set_attr(xnode_add_child(rq, "active", NULL), "name", ps->active);
        if (pu->def) xnode_set_attr(xnode_add_child(rq, "default", NULL), "name", pu->def);
        size_t pos = 0;
        const char *key;
        void *val;
        while (strmap_next(&pu->lists, &pos, &key, &val))
            xnode_set_attr(xnode_add_child(rq, "list", NULL), "name", key);
        sm_iq_reply(iq, r);
        return;
    }
    xnode *el = xnode_first_element(q);
    if (n > 1 || strcmp(el->name, "list") || !xnode_attr(el, "name")) {
        stanza_free(r);
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    const privacy_list *l = list_named(pu, xnode_attr(el, "name"));
    if (!l) {
        stanza_free(r);
        sm_iq_error(iq, "item-not-found", NULL);
        return;
    }
    xnode *lx = xnode_add_child(rq, "list", NULL);
    xnode_set_attr(lx, "name", l->name);
    for (size_t i = 0; i < l->nitems; i++) item_xml(lx, &l->items[i]);
    sm_iq_reply(iq, r);
}

static void privacy_set(sm_iq *iq, priv_user *pu)
{
    sm_user *u = iq->user;
    xnode *el = xnode_first_element(iq->payload);
    if (!el || xnode_next_element(el)) {
        sm_iq_error(iq, "bad-request", NULL);   /* exactly one child (XEP-0016 §2.1) */
        return;
    }
    const char *name = xnode_attr(el, "name");
    if (!strcmp(el->name, "active")) {
        if (name && !list_named(pu, name)) {
            sm_iq_error(iq, "item-not-found", NULL);
            return;
        }
        snapshot snap = {0};
        snap_take(u, pu, &snap);
        priv_sess *ps = ps_get(pu, iq->session->id, 1);
        free(ps->active);
        ps->active = name ? xstrdup(name) : NULL;
        sm_iq_reply(iq, NULL);
        snap_apply(u, pu, &snap);
        snap_free(&snap);
        return;
    }
    if (!strcmp(el->name, "default")) {
        if (name && !list_named(pu, name)) {
            sm_iq_error(iq, "item-not-found", NULL);
            return;
        }
        if ((name && pu->def && !strcmp(name, pu->def)) || (!name && !pu->def)) {
            sm_iq_reply(iq, NULL);  /* no change */
            return;
        }
        if (pu->def && in_use_elsewhere(u, pu, iq->session, pu->def)) {
            sm_iq_error(iq, "conflict", NULL);
            return;
        }
        op *o = op_new(iq, OP_DEFAULT);
        o->name = name ? xstrdup(name) : NULL;
        op_run(o);
        return;
    }
    if (strcmp(el->name, "list") || !name || !*name) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    if (!xnode_first_element(el)) {
        /* Remove the list (§2.8). */
        if (!list_named(pu, name)) {
            sm_iq_error(iq, "item-not-found", NULL);
            return;
        }
        if (in_use_elsewhere(u, pu, iq->session, name)) {
            sm_iq_error(iq, "conflict", NULL);
            return;
        }
        op *o = op_new(iq, OP_REMOVE);
        o->name = xstrdup(name);
        o->push_list = 1;
        op_run(o);
        return;
    }
    if (!list_named(pu, name) && (long)strmap_count(&pu->lists) >= max_lists) {
        log_notice("user %s: %ld privacy lists already: new list refused", u->bare, max_lists);
        sm_iq_error(iq, "resource-constraint", NULL);
        return;
    }
    const char *cond = NULL;
    privacy_list *l = parse_list(u, el, &cond);
    if (!l) {
        sm_iq_error(iq, cond, NULL);
        return;
    }
    op *o = op_new(iq, OP_PUT);
    o->list = l;
    o->make_default = pu->def && !strcmp(pu->def, name);
    o->push_list = 1;
    op_run(o);
}

static void privacy_iq(sm_iq *iq)
{
    priv_user *pu = iq->user ? pu_get(iq->user) : NULL;
    if (!iq->session || !pu) {
        /* Only the user's own resources manage its lists. */
        sm_iq_error(iq, iq->session ? "internal-server-error" : "service-unavailable", NULL);
        return;
    }
    if (iq->is_set) privacy_set(iq, pu);
    else privacy_get(iq, pu);
}

/* ---- urn:xmpp:blocking ---- */

static void blocking_iq(sm_iq *iq)
{
    priv_user *pu = iq->user ? pu_get(iq->user) : NULL;
    if (!iq->session || !pu) {
        sm_iq_error(iq, iq->session ? "internal-server-error" : "service-unavailable", NULL);
        return;
    }
    sm_user *u = iq->user;
    xnode *p = iq->payload;
    if (!iq->is_set) {
        if (strcmp(p->name, "blocklist")) {
            sm_iq_error(iq, "bad-request", NULL);
            return;
        }
        ps_get(pu, iq->session->id, 1)->blocklist = 1;
        stanza *r = sm_iq_result(iq->st->root);
        xnode *bl = xnode_add_child(r->root, "blocklist", NS_BLOCKING);
        strvec jids = {0};
        blocked_jids(pu, &jids);
        for (size_t i = 0; i < jids.n; i++) xnode_set_attr(xnode_add_child(bl, "item", NULL), "jid", jids.v[i]);
        sv_free(&jids);
        sm_iq_reply(iq, r);
        return;
    }
    int block = !strcmp(p->name, "block");
    if (!block && strcmp(p->name, "unblock")) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    strvec items = {0};
    for (xnode *x = xnode_first_element(p); x; x = xnode_next_element(x)) {
        const char *j = strcmp(x->name, "item") ? NULL : xnode_attr(x, "jid");
        char *norm = j ? jid_normalize(j) : NULL;
        if (!norm) {
            sv_free(&items);
            sm_iq_error(iq, j ? "jid-malformed" : "bad-request", NULL);
            return;
        }
        sv_add(&items, norm);
        free(norm);
    }
    if (block && !items.n) {
        sm_iq_error(iq, "bad-request", NULL);   /* §3.3: at least one item */
        return;
    }
    const privacy_list *cur = default_list(pu);
    size_t have = cur ? cur->nitems : 0;
    privacy_list *l;
    if (block) {
        /* The new blocked JIDs first (§5: blocked items come first), then
         * the list as it was, renumbered in the same order. */
        strvec fresh = {0};
        for (size_t i = 0; i < items.n; i++) {
            int dup = 0;
            for (size_t k = 0; cur && k < cur->nitems && !dup; k++)
                dup = privacy_item_is_block(&cur->items[k]) && !strcmp(cur->items[k].value, items.v[i]);
            if (!dup) sv_add(&fresh, items.v[i]);
        }
        if ((long)(have + fresh.n) > max_items) {
            sv_free(&fresh);
            sv_free(&items);
            sm_iq_error(iq, "resource-constraint", NULL);
            return;
        }
        if (!cur && (long)strmap_count(&pu->lists) >= max_lists && !list_named(pu, BLOCKLIST_NAME)) {
            sv_free(&fresh);
            sv_free(&items);
            sm_iq_error(iq, "resource-constraint", NULL);
            return;
        }
        l = list_new(cur ? cur->name : BLOCKLIST_NAME, have + fresh.n);
        unsigned long ord = 1;
        for (size_t i = 0; i < fresh.n; i++) list_add(l, PRIV_JID, fresh.v[i], 1, 0, ord++);
        for (size_t k = 0; k < have; k++) {
            const privacy_item *it = &cur->items[k];
            list_add(l, it->type, it->value, it->deny, it->kinds, ord++);
        }
        sv_free(&fresh);
    } else {
        if (!cur) {
            /* Nothing is blocked: still the same answer and pushes. */
            sm_iq_reply(iq, NULL);
            push_blocking(u, pu, "unblock", items.n ? &items : NULL);
            sv_free(&items);
            return;
        }
        l = list_new(cur->name, have);
        for (size_t k = 0; k < have; k++) {
            const privacy_item *it = &cur->items[k];
            if (privacy_item_is_block(it) && (!items.n || sv_has(&items, it->value))) continue;
            list_add(l, it->type, it->value, it->deny, it->kinds, it->order);
        }
    }
    op *o = op_new(iq, OP_PUT);
    o->list = l;
    o->make_default = 1;
    o->push_list = 1;
    o->bpush = block ? "block" : "unblock";
    o->unblock_all = !block && !items.n;
    o->bitems = items;
    op_run(o);
}

/* ---- enforcement ---- */

/* Handle a stanza for the user that its lists block (XEP-0016 §2.13,
 * XEP-0191 §3.5): presence silently dropped, messages and iq get/set
 * answered with <service-unavailable/>, anything else dropped. */
static void blocked_in(sm_user *u, stanza *st)
{
    const char *name = st->root->name;
    const char *type = sm_type(st->root);
    log_debug("user %s: <%s/> from %s blocked by a privacy list", u->bare, name,
              xnode_attr(st->root, "from") ? xnode_attr(st->root, "from") : "?");
    if (!strcmp(name, "message") ||
        (!strcmp(name, "iq") && type && (!strcmp(type, "get") || !strcmp(type, "set")))) {
        sm_bounce(u->sm, st, "service-unavailable", NULL, NULL);
        return;
    }
    stanza_free(st);
}

/* A message or presence notification for the bare JID when the available
 * sessions' lists disagree: deliver it where it is allowed, with the rules
 * of RFC 6121 §8.5.2 (messages: the highest non-negative priority, headline
 * to all; presence: every available resource). */
static void deliver_where_allowed(sm_user *u, priv_user *pu, stanza *st, unsigned kind, sm_session *skip)
{
    const char *from = xnode_attr(st->root, "from");
    int msg = kind == PRIV_MESSAGE;
    const char *type = sm_type(st->root);
    int headline = msg && type && !strcmp(type, "headline");
    int best = -1;
    for (sm_session *x = u->sessions; x; x = x->next) {
        if (x == skip || !x->available || (msg && x->priority < 0)) continue;
        if (blocker(u, list_for(pu, x), from, kind)) continue;
        if (x->priority > best) best = x->priority;
    }
    for (sm_session *x = u->sessions; x; x = x->next) {
        if (x == skip || !x->available || (msg && x->priority < 0)) continue;
        if (blocker(u, list_for(pu, x), from, kind)) continue;
        if (!msg || headline || x->priority == best) sm_session_send(x, st->root);
    }
    stanza_free(st);
}

static sm_hook_rc privacy_in(sm_user *u, stanza *st, int returned, sm_session *skip)
{
    priv_user *pu = pu_get(u);
    if (!pu || !strmap_count(&pu->lists)) return SM_PASS;
    xnode *el = st->root;
    const char *from = xnode_attr(el, "from");
    if (exempt(u, from)) return SM_PASS;
    const char *type = sm_type(el);
    unsigned kind = privacy_stanza_kind(el->name, type, 1);
    const char *to = xnode_attr(el, "to");
    const char *slash = to ? strchr(to, '/') : NULL;
    sm_session *target = slash && !returned ? sm_user_session(u, slash + 1) : NULL;
    if (target) {
        if (blocker(u, list_for(pu, target), from, kind)) {
            blocked_in(u, st);
            return SM_DONE;
        }
        return SM_PASS;
    }
    /* For the bare JID (or a resource that is not there). Messages and
     * presence notifications go to the available resources: each one's
     * list decides for it; with none, the default list decides (offline
     * storage). Anything else is the account's: the default list. */
    int per_session = (kind == PRIV_MESSAGE && (!type || strcmp(type, "error"))) ||
                      (kind == PRIV_PRESENCE_IN && !slash);
    if (per_session) {
        size_t allowed = 0, blocked = 0;
        for (sm_session *x = u->sessions; x; x = x->next) {
            if (x == skip || !x->available || (kind == PRIV_MESSAGE && x->priority < 0)) continue;
            if (blocker(u, list_for(pu, x), from, kind)) blocked++;
            else allowed++;
        }
        if (allowed || blocked) {
            if (!blocked) return SM_PASS;
            if (!allowed) {
                blocked_in(u, st);
                return SM_DONE;
            }
            deliver_where_allowed(u, pu, st, kind, skip);
            return SM_DONE;
        }
    }
    if (blocker(u, default_list(pu), from, kind)) {
        blocked_in(u, st);
        return SM_DONE;
    }
    return SM_PASS;
}

static sm_hook_rc privacy_out(sm_session *sess, stanza *st)
{
    sm_user *u = sess->user;
    priv_user *pu = pu_get(u);
    if (!pu || !strmap_count(&pu->lists)) return SM_PASS;
    const char *to = xnode_attr(st->root, "to");
    if (!to) return SM_PASS;
    const privacy_list *l = list_for(pu, sess);
    unsigned kind = privacy_stanza_kind(st->root->name, sm_type(st->root), 0);
    const privacy_item *b = blocker(u, l, to, kind);
    if (!b) return SM_PASS;
    log_debug("session %s (%s): <%s/> to %s blocked by a privacy list", sess->id_str, sess->full, st->root->name,
              to);
    /* XEP-0016 §2.13 / XEP-0191 §3.5: not routed; <not-acceptable/> to the user. */
    if (!stanza_error_allowed(st->root) || stanza_make_error(st, "not-acceptable", NULL) < 0) {
        stanza_free(st);
        return SM_DONE;
    }
    if (l == default_list(pu) && privacy_item_is_block(b)) {
        xnode *err = xnode_child(st->root, "error", NULL);
        if (err) xnode_add_child(err, "blocked", NS_BLOCKING_ERRORS);
        stanza_touch(st);
    }
    sm_session_send(sess, st->root);
    stanza_free(st);
    return SM_DONE;
}

static sm_hook_rc privacy_presence_from_user(sm_user *u, stanza *st)
{
    if (bypass) return SM_PASS;
    priv_user *pu = pu_get(u);
    if (!pu || !strmap_count(&pu->lists)) return SM_PASS;
    const char *from = xnode_attr(st->root, "from");
    const char *slash = from ? strchr(from, '/') : NULL;
    sm_session *sess = slash ? sm_user_session(u, slash + 1) : NULL;
    unsigned kind = privacy_stanza_kind("presence", sm_type(st->root), 0);
    if (!blocker(u, list_for(pu, sess), xnode_attr(st->root, "to"), kind)) return SM_PASS;
    stanza_free(st);
    return SM_DONE;
}

/* ---- users and sessions ---- */

static void pu_free(priv_user *pu)
{
    if (!pu) return;
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&pu->lists, &pos, &key, &val)) list_free(val);
    strmap_free(&pu->lists);
    while (pu->sessions) {
        priv_sess *ps = pu->sessions;
        pu->sessions = ps->next;
        free(ps->active);
        free(ps);
    }
    free(pu->def);
    free(pu);
}

static void on_loaded(void *ud, storage_status st, const privacy_list_row *lists, size_t n)
{
    sm_user *u = ud;
    priv_user *pu = pu_get(u);
    if (st == STORAGE_OK && pu) {
        for (size_t i = 0; i < n; i++) {
            const privacy_list_row *r = &lists[i];
            privacy_list *l = list_new(r->name, r->nitems);
            for (size_t k = 0; k < r->nitems; k++) {
                const privacy_item_row *it = &r->items[k];
                if (!!it->type != !!it->value) continue;
                list_add(l, type_parse(it->type), it->value, it->deny, it->kinds & PRIV_ALL_KINDS, it->order);
            }
            qsort(l->items, l->nitems, sizeof *l->items, cmp_order);
            list_free(strmap_put(&pu->lists, l->name, l));
            if (r->is_default) {
                free(pu->def);
                pu->def = xstrdup(r->name);
            }
        }
        if (n) log_debug("user %s: %zu privacy lists loaded (default %s)", u->bare, n, pu->def ? pu->def : "none");
    } else if (st != STORAGE_OK) {
        log_warn("user %s: loading privacy lists failed: %s", u->bare, storage_status_string(st));
    }
    sm_user_load_end(u, st);
}

static void privacy_user_loading(sm_user *u)
{
    priv_user *pu = xcalloc(1, sizeof *pu);
    pu_free(strmap_put(&priv_users, u->bare, pu));
    sm_user_load_begin(u);
    privacy_load(u->sm->db, u->domain, u->node, on_loaded, u);
}

static void privacy_user_unloading(sm_user *u)
{
    priv_user *pu = strmap_del(&priv_users, u->bare);
    if (pu) pu_free(pu);
}

/* A session's state (its active list) is kept until the next session
 * starts: the session's unavailable presence, broadcast after the hooks of
 * session_ending ran, still goes through its own active list. */
static void privacy_session_started(sm_session *sess)
{
    sm_user *u = sess->user;
    priv_user *pu = pu_get(u);
    if (!pu) return;
    for (priv_sess **pp = &pu->sessions; *pp;) {
        priv_sess *ps = *pp;
        if (session_by_id(u, ps->id)) {
            pp = &ps->next;
            continue;
        }
        *pp = ps->next;
        free(ps->active);
        free(ps);
    }
}

static int privacy_init(sm *s)
{
    const xnode *cfg = sm_module_config(s, "privacy");
    max_lists = config_node_int(cfg, "max-lists", 50);
    max_items = config_node_int(cfg, "max-items", 250);
    if (max_lists < 1 || max_items < 1) {
        log_error("modules/privacy: max-lists and max-items must be at least 1");
        return -1;
    }
    return 0;
}

static void privacy_shutdown(sm *s)
{
    (void)s;
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&priv_users, &pos, &key, &val)) pu_free(val);
    strmap_free(&priv_users);
    priv_users = (strmap)STRMAP_INIT;
}

static const sm_iq_handler privacy_iqs[] = {
    {NS_PRIVACY, SM_IQ_ACCOUNT, privacy_iq},
    {NS_BLOCKING, SM_IQ_ACCOUNT, blocking_iq},
    {NULL, 0, NULL},
};

static const char *const privacy_features[] = {NS_PRIVACY, NS_BLOCKING, NULL};

static const config_key privacy_keys[] = {
    {"max-lists", CFG_INT, 0, "privacy lists a user may have (50)"},
    {"max-items", CFG_INT, 0, "items in one privacy list, blocked JIDs included (250)"},
    {NULL, 0, 0, NULL},
};

const sm_module mod_privacy = {
    .name = "privacy",
    .iqs = privacy_iqs,
    .server_features = privacy_features,
    .init = privacy_init,
    .shutdown = privacy_shutdown,
    .session_started = privacy_session_started,
    .out_stanza = privacy_out,
    .in_stanza = privacy_in,
    .config_keys = privacy_keys,
    .user_loading = privacy_user_loading,
    .user_unloading = privacy_user_unloading,
    .presence_from_user = privacy_presence_from_user,
};
