/* mod_pep: personal eventing (XEP-0163) on every account, with the subset
 * of publish-subscribe (XEP-0060) that PEP clients use: publish (with
 * auto-create and publish-options preconditions), items retrieval (all,
 * by id, max_items), retract, node creation, deletion, purge,
 * configuration (access_model open / presence / whitelist, max_items,
 * persist_items) and the whitelist as member affiliations. Nodes and items
 * live in PostgreSQL (storage/pep.c).
 *
 * Notifications follow presence (XEP-0163 §4): they go to the owner's
 * available resources and to those of contacts with a subscription
 * 'from'/'both' (only whitelisted ones for whitelist nodes) that asked for
 * them with "NODE+notify" in their entity capabilities (XEP-0115). The sm
 * learns what a caps 'ver' means by asking one resource that advertises it
 * for disco#info (once per ver; the answers are cached):
 *  - local resources are asked from their own account's bare JID when they
 *    send available presence, which also sends them the last item of each
 *    node of theirs and of their local contacts ('to'/'both');
 *  - remote resources are asked by the local user whose presence they sent
 *    to, which then sends them its last items. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jid.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/stanza_error.h"
#include "common/xml_write.h"
#include "sm/module.h"
#include "sm/sub.h"
#include "storage/pep.h"

#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_OWNER NS_PUBSUB "#owner"
#define NS_PUBSUB_EVENT NS_PUBSUB "#event"
#define NS_PUBSUB_ERRORS NS_PUBSUB "#errors"
#define NS_CAPS "http://jabber.org/protocol/caps"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_XDATA "jabber:x:data"
#define FORM_PUBLISH_OPTIONS NS_PUBSUB "#publish-options"
#define FORM_NODE_CONFIG NS_PUBSUB "#node_config"
#define CAPS_ID_PREFIX "pepcaps-"
#define MAX_WAITERS 64
#define CAPS_RETRY_SECONDS 30   /* a query not answered by then is sent again, to the next resource */

/* ---- state ---- */

typedef struct waiter {
    struct waiter *next;
    char *owner;                /* local session: its user's bare JID; remote: the local user it told */
    char *target;               /* remote: its full JID (NULL for a local session) */
    uint64_t sess_id;           /* local session */
} waiter;

typedef struct caps_entry {
    int known;
    time_t asked;               /* pending: when the query went out */
    char qid[64];               /* pending: its id */
    char **notify;              /* nodes with +notify */
    size_t nnotify;
    waiter *waiters;
    size_t nwaiters;
} caps_entry;

typedef struct caps_query {
    char *ver, *jid;            /* what was asked, and of whom */
} caps_query;

static struct {
    unsigned default_max_items, max_items, max_payload, max_nodes, caps_cache, max_tracked;
    strmap caps;                /* ver -> caps_entry* */
    strmap queries;             /* iq id -> caps_query* */
    strmap sess_ver;            /* local session id -> char* ver (last one handled) */
    strmap remote;              /* local bare JID -> strmap* (remote full JID -> char* ver) */
    uint64_t next_query;
    sm *sm;
} P;

static char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p) abort();
    return p;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) abort();
    return p;
}

static void waiter_free(waiter *w)
{
    free(w->owner);
    free(w->target);
    free(w);
}

static void caps_entry_free(caps_entry *e)
{
    for (size_t i = 0; i < e->nnotify; i++) free(e->notify[i]);
    free(e->notify);
    while (e->waiters) {
        waiter *w = e->waiters;
        e->waiters = w->next;
        waiter_free(w);
    }
    free(e);
}

static int caps_wants(const char *ver, const char *node)
{
    caps_entry *e = ver ? strmap_get(&P.caps, ver) : NULL;
    if (!e || !e->known) return 0;
    for (size_t i = 0; i < e->nnotify; i++)
        if (!strcmp(e->notify[i], node)) return 1;
    return 0;
}

static void free_str_map(strmap *m)
{
    size_t pos = 0;
    const char *k;
    void *v;
    while (strmap_next(m, &pos, &k, &v)) free(v);
    strmap_free(m);
}

static void remote_forget_owner(const char *bare)
{
    strmap *m = strmap_del(&P.remote, bare);
    if (!m) return;
    free_str_map(m);
    free(m);
}

/* The caps ver a presence advertises (XEP-0115 with a hash), or NULL. */
static const char *presence_ver(const xnode *pres, const char **cnode)
{
    xnode *c = pres ? xnode_child(pres, "c", NS_CAPS) : NULL;
    if (!c || !xnode_attr(c, "hash")) return NULL;
    const char *ver = xnode_attr(c, "ver");
    if (!ver || !*ver || strlen(ver) > 256) return NULL;
    if (cnode) *cnode = xnode_attr(c, "node");
    return ver;
}

static int access_name_ok(const char *a)
{
    return a && (!strcmp(a, "open") || !strcmp(a, "presence") || !strcmp(a, "whitelist"));
}

static int in_list(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], s)) return 1;
    return 0;
}

/* 0: requester (a bare JID) may see the node's items; else the pubsub#errors
 * condition that says why not. presence_ok: whether a presence subscription
 * ('from' at the owner) exists. */
static const char *access_denied(const char *owner, const char *requester, const pep_row *row, int presence_ok)
{
    if (!strcmp(owner, requester)) return NULL;
    const char *a = row->cfg.access_model ? row->cfg.access_model : "presence";
    if (!strcmp(a, "open")) return NULL;
    if (!strcmp(a, "presence")) return presence_ok ? NULL : "presence-subscription-required";
    if (!strcmp(a, "whitelist"))
        return in_list(row->whitelist, row->nwhitelist, requester) ? NULL : "closed-node";
    return "closed-node";
}

static int has_from(sm_user *u, const char *bare)
{
    sm_item *it = sm_roster_item(u, bare);
    return it && sub_has_from(it->sub);
}

/* ---- errors ---- */

static void pep_error(sm_iq *iq, const char *condition, const char *type, const char *app, const char *feature)
{
    stanza *st = iq->st;
    iq->st = NULL;
    if (stanza_make_error(st, condition, NULL) < 0) {
        stanza_free(st);
        free(iq);
        return;
    }
    xnode *err = xnode_child(st->root, "error", NULL);
    if (err && type) xnode_set_attr(err, "type", type);
    if (err && app) {
        xnode *a = xnode_add_child(err, app, NS_PUBSUB_ERRORS);
        if (feature) xnode_set_attr(a, "feature", feature);
    }
    if (!iq->sm->stopping && iq->session) {
        sm_session_send(iq->session, st->root);
        stanza_free(st);
    } else {
        sm_route(iq->sm, st);
    }
    free(iq);
}

static void storage_error(sm_iq *iq, storage_status st)
{
    log_warn("pep: %s: storage failed: %s", iq->user ? iq->user->bare : "?", storage_status_string(st));
    sm_iq_error(iq, "internal-server-error", "wait");
}

/* ---- notifications ---- */

static stanza *event_message(const char *from, const char *to)
{
    stanza *m = stanza_new("message", NS_CLIENT);
    xnode_set_attr(m->root, "from", from);
    xnode_set_attr(m->root, "to", to);
    xnode_set_attr(m->root, "type", "headline");
    xnode_set_attr(m->root, "id", sm_new_id(P.sm));
    return m;
}

/* Add <item id=..>payload</item> to parent; 0 if the payload does not parse. */
static int add_item(xnode *parent, const char *id, const char *payload)
{
    xnode *item = xnode_add_child(parent, "item", NULL);
    xnode_set_attr(item, "id", id);
    if (!payload) return 1;
    stanza *p = sm_parse(payload, strlen(payload));
    if (!p) {
        log_warn("pep: a stored payload does not parse (item %s)", id);
        xnode_remove(item);
        return 0;
    }
    xnode_copy_into(item, p->root);
    stanza_free(p);
    return 1;
}

static void send_event(const char *owner, const char *to, const xnode *event)
{
    stanza *m = event_message(owner, to);
    xnode_copy_into(m->root, event);
    sm_route(P.sm, m);
}

/* Send event (a pubsub#event element about node) to everyone who should get it. */
static void notify_all(sm_user *u, const char *node, const pep_row *cfg, const xnode *event)
{
    const char *access = cfg->cfg.access_model ? cfg->cfg.access_model : "presence";
    int whitelist = !strcmp(access, "whitelist");
    for (sm_session *x = u->sessions; x; x = x->next)
        if (x->available && caps_wants(strmap_get(&P.sess_ver, x->id_str), node)) send_event(u->bare, x->full, event);
    strmap *remote = strmap_get(&P.remote, u->bare);
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&u->roster, &pos, &key, &val)) {
        sm_item *it = val;
        if (!sub_has_from(it->sub) || !strcmp(it->jid, u->bare)) continue;
        if (whitelist && !in_list(cfg->whitelist, cfg->nwhitelist, it->jid)) continue;
        const char *at = strchr(it->jid, '@');
        const char *domain = at ? at + 1 : it->jid;
        if (sm_is_local(u->sm, domain)) {
            sm_user *cu = sm_user_find(u->sm, it->jid);
            for (sm_session *x = cu ? cu->sessions : NULL; x; x = x->next)
                if (x->available && caps_wants(strmap_get(&P.sess_ver, x->id_str), node))
                    send_event(u->bare, x->full, event);
        } else if (remote) {
            size_t rpos = 0;
            const char *full;
            void *ver;
            size_t blen = strlen(it->jid);
            while (strmap_next(remote, &rpos, &full, &ver))
                if (!strncmp(full, it->jid, blen) && full[blen] == '/' && caps_wants(ver, node))
                    send_event(u->bare, full, event);
        }
    }
}

/* ---- last items ---- */

typedef struct last_ctx {
    char *owner, *target, *target_bare, *ver;
    int presence_ok;
} last_ctx;

static void on_last_items(void *ud, storage_status st, const pep_row *rows, size_t n)
{
    last_ctx *c = ud;
    if (st != STORAGE_OK) {
        if (!P.sm->stopping) log_info("pep: last items of %s for %s: %s", c->owner, c->target, storage_status_string(st));
    } else if (!P.sm->stopping) {
        for (size_t i = 0; i < n; i++) {
            const pep_row *r = &rows[i];
            if (!r->item_id || !caps_wants(c->ver, r->node)) continue;
            if (access_denied(c->owner, c->target_bare, r, c->presence_ok)) continue;
            stanza *m = event_message(c->owner, c->target);
            xnode *items = xnode_add_child(xnode_add_child(m->root, "event", NS_PUBSUB_EVENT), "items", NULL);
            xnode_set_attr(items, "node", r->node);
            if (add_item(items, r->item_id, r->payload)) sm_route(P.sm, m);
            else stanza_free(m);
        }
    }
    free(c->owner);
    free(c->target);
    free(c->target_bare);
    free(c->ver);
    free(c);
}

static void send_last_items(sm *s, const char *owner, const char *target, const char *ver, int presence_ok)
{
    char *tb = jid_normalize_bare(target);
    char *on = jid_normalize_bare(owner);
    const char *at = on ? strchr(on, '@') : NULL;
    if (!tb || !at) {
        free(tb);
        free(on);
        return;
    }
    last_ctx *c = xcalloc(1, sizeof *c);
    c->owner = on;
    c->target = xstrdup(target);
    c->target_bare = tb;
    c->ver = xstrdup(ver);
    c->presence_ok = presence_ok;
    char *node = xstrdup(on);
    node[at - on] = 0;
    pep_last_items(s->db, at + 1, node, on_last_items, c);
    free(node);
}

/* A local session's caps are known: its own last items and those of its
 * local contacts it is subscribed to. */
static void session_caps_ready(sm_session *sess, const char *ver)
{
    sm_user *u = sess->user;
    send_last_items(u->sm, u->bare, sess->full, ver, 1);
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&u->roster, &pos, &key, &val)) {
        sm_item *it = val;
        const char *at = strchr(it->jid, '@');
        if (!at || !sub_has_to(it->sub) || !strcmp(it->jid, u->bare) || !sm_is_local(u->sm, at + 1)) continue;
        send_last_items(u->sm, it->jid, sess->full, ver, 1);
    }
}

/* ---- entity capabilities ---- */

static void caps_evict_known(void)
{
    size_t pos = 0;
    const char *k;
    void *v;
    while (strmap_next(&P.caps, &pos, &k, &v)) {
        caps_entry *e = v;
        if (e->known) {
            strmap_del(&P.caps, k);
            caps_entry_free(e);
        }
    }
}

/* The caps entry for ver if it is known; otherwise queue w (owned) until
 * the answer to a disco#info query (sent from 'from' to 'to') comes. */
static caps_entry *caps_get(const char *ver, const char *cnode, const char *from, const char *to, waiter *w)
{
    caps_entry *e = strmap_get(&P.caps, ver);
    if (e && e->known) {
        waiter_free(w);
        return e;
    }
    if (e) {
        if (e->nwaiters >= MAX_WAITERS) {
            waiter_free(w);
        } else {
            w->next = e->waiters;
            e->waiters = w;
            e->nwaiters++;
        }
        if (sm_now() - e->asked < CAPS_RETRY_SECONDS) return NULL;
        /* The one asked never answered: ask this one instead. */
        caps_query *old = strmap_del(&P.queries, e->qid);
        if (old) {
            free(old->ver);
            free(old->jid);
            free(old);
        }
    } else {
        if (strmap_count(&P.caps) >= P.caps_cache) caps_evict_known();
        if (strmap_count(&P.caps) >= P.caps_cache) {
            log_info("pep: caps cache full of pending queries; %s not asked", to);
            waiter_free(w);
            return NULL;
        }
        e = xcalloc(1, sizeof *e);
        e->waiters = w;
        e->nwaiters = 1;
        strmap_put(&P.caps, ver, e);
    }
    char id[64], rnd[13];
    random_token(rnd, 12);
    snprintf(id, sizeof id, CAPS_ID_PREFIX "%llu-%s", (unsigned long long)++P.next_query, rnd);
    snprintf(e->qid, sizeof e->qid, "%s", id);
    e->asked = sm_now();
    caps_query *q = xcalloc(1, sizeof *q);
    q->ver = xstrdup(ver);
    q->jid = xstrdup(to);
    strmap_put(&P.queries, id, q);
    stanza *iq = stanza_new("iq", NS_CLIENT);
    xnode_set_attr(iq->root, "type", "get");
    xnode_set_attr(iq->root, "id", id);
    xnode_set_attr(iq->root, "from", from);
    xnode_set_attr(iq->root, "to", to);
    xnode *qn = xnode_add_child(iq->root, "query", NS_DISCO_INFO);
    if (cnode) {
        size_t n = strlen(cnode) + strlen(ver) + 2;
        char *nv = xcalloc(n, 1);
        snprintf(nv, n, "%s#%s", cnode, ver);
        xnode_set_attr(qn, "node", nv);
        free(nv);
    }
    log_debug("pep: asking %s what caps %s means", to, ver);
    sm_route(P.sm, iq);
    return NULL;
}

static void waiter_run(const char *ver, waiter *w)
{
    sm_user *u = sm_user_find(P.sm, w->owner);
    if (!u) return;
    if (!w->target) {
        for (sm_session *x = u->sessions; x; x = x->next) {
            const char *cur = strmap_get(&P.sess_ver, x->id_str);
            if (x->id == w->sess_id && x->available && cur && !strcmp(cur, ver)) session_caps_ready(x, ver);
        }
        return;
    }
    strmap *m = strmap_get(&P.remote, u->bare);
    const char *cur = m ? strmap_get(m, w->target) : NULL;
    if (!cur || strcmp(cur, ver)) return;
    char *tb = jid_normalize_bare(w->target);
    send_last_items(u->sm, u->bare, w->target, ver, tb && has_from(u, tb));
    free(tb);
}

/* An answer to one of our caps queries: 1 when it was one (consumed). */
static int caps_answer(stanza *st)
{
    xnode *el = st->root;
    const char *id = xnode_attr(el, "id");
    const char *type = sm_type(el);
    if (strcmp(el->name, "iq") || !id || strncmp(id, CAPS_ID_PREFIX, strlen(CAPS_ID_PREFIX)) || !type ||
        (strcmp(type, "result") && strcmp(type, "error")))
        return 0;
    caps_query *q = strmap_get(&P.queries, id);
    if (!q) {
        stanza_free(st);
        return 1;
    }
    const char *from = xnode_attr(el, "from");
    char *nf = from ? jid_normalize(from) : NULL;
    if (!nf || strcmp(nf, q->jid)) {
        free(nf);
        stanza_free(st);    /* not from whom we asked: ignored */
        return 1;
    }
    free(nf);
    strmap_del(&P.queries, id);
    caps_entry *e = strmap_get(&P.caps, q->ver);
    xnode *query = xnode_child(el, "query", NS_DISCO_INFO);
    if (e && !e->known) {
        if (!strcmp(type, "error") || !query) {
            log_info("pep: %s did not say what caps %s means", q->jid, q->ver);
            strmap_del(&P.caps, q->ver);
            caps_entry_free(e);
        } else {
            size_t n = 0;
            for (xnode *f = xnode_child(query, "feature", NULL); f; f = xnode_next(f, "feature", NULL)) n++;
            e->notify = xcalloc(n, sizeof *e->notify);
            for (xnode *f = xnode_child(query, "feature", NULL); f; f = xnode_next(f, "feature", NULL)) {
                const char *var = xnode_attr(f, "var");
                size_t len = var ? strlen(var) : 0;
                if (len > 7 && !strcmp(var + len - 7, "+notify")) {
                    e->notify[e->nnotify] = xstrdup(var);
                    e->notify[e->nnotify++][len - 7] = 0;
                }
            }
            e->known = 1;
            waiter *w = e->waiters;
            e->waiters = NULL;
            e->nwaiters = 0;
            while (w) {
                waiter *next = w->next;
                waiter_run(q->ver, w);
                waiter_free(w);
                w = next;
            }
        }
    }
    free(q->ver);
    free(q->jid);
    free(q);
    stanza_free(st);
    return 1;
}

/* ---- hooks ---- */

static void pep_available(sm_session *sess, int initial)
{
    (void)initial;
    const char *cnode = NULL;
    const char *ver = sess->presence ? presence_ver(sess->presence->root, &cnode) : NULL;
    char *prev = ver ? NULL : strmap_del(&P.sess_ver, sess->id_str);
    free(prev);
    if (!ver) return;
    const char *cur = strmap_get(&P.sess_ver, sess->id_str);
    if (cur && !strcmp(cur, ver)) return;
    free(strmap_put(&P.sess_ver, sess->id_str, xstrdup(ver)));
    waiter *w = xcalloc(1, sizeof *w);
    w->owner = xstrdup(sess->user->bare);
    w->sess_id = sess->id;
    if (caps_get(ver, cnode, sess->user->bare, sess->full, w)) session_caps_ready(sess, ver);
}

static void pep_session_ending(sm_session *sess)
{
    free(strmap_del(&P.sess_ver, sess->id_str));
}

static void pep_user_unloading(sm_user *u) { remote_forget_owner(u->bare); }

/* Presence from a remote entity to a local user: track its caps. */
static void remote_presence(sm_user *u, stanza *st)
{
    const char *from = xnode_attr(st->root, "from");
    const char *type = sm_type(st->root);
    if (!from || !strchr(from, '/')) return;
    const char *at = strchr(from, '@');
    const char *domain = at ? at + 1 : from;
    char dom[JID_PART_MAX + 1];
    snprintf(dom, sizeof dom, "%.*s", (int)strcspn(domain, "/"), domain);
    if (sm_is_local(u->sm, dom)) return;   /* local sessions are seen directly */
    strmap *m = strmap_get(&P.remote, u->bare);
    if (type) {
        if ((!strcmp(type, "unavailable") || !strcmp(type, "error")) && m) free(strmap_del(m, from));
        return;
    }
    const char *cnode = NULL;
    const char *ver = presence_ver(st->root, &cnode);
    if (!ver) {
        if (m) free(strmap_del(m, from));
        return;
    }
    if (!u->sessions) return;
    if (!m) {
        m = xcalloc(1, sizeof *m);
        strmap_put(&P.remote, u->bare, m);
    }
    const char *cur = strmap_get(m, from);
    if (cur && !strcmp(cur, ver)) return;
    if (!cur && strmap_count(m) >= P.max_tracked) {
        log_info("pep: %s: %zu remote resources tracked already; %s left out", u->bare, strmap_count(m), from);
        return;
    }
    free(strmap_put(m, from, xstrdup(ver)));
    waiter *w = xcalloc(1, sizeof *w);
    w->owner = xstrdup(u->bare);
    w->target = xstrdup(from);
    if (caps_get(ver, cnode, u->bare, from, w)) {
        char *fb = jid_normalize_bare(from);
        send_last_items(u->sm, u->bare, from, ver, fb && has_from(u, fb));
        free(fb);
    }
}

static sm_hook_rc pep_in(sm_user *u, stanza *st, int returned, sm_session *skip)
{
    (void)skip;
    const char *name = st->root->name;
    if (!strcmp(name, "iq")) {
        const char *to = xnode_attr(st->root, "to");
        if (!returned && to && !strchr(to, '/') && caps_answer(st)) return SM_DONE;
    } else if (!strcmp(name, "presence") && !returned) {
        remote_presence(u, st);
    }
    return SM_PASS;
}

static sm_hook_rc pep_out(sm_session *sess, stanza *st)
{
    /* A local resource answering our caps query (sent from its own bare JID). */
    const char *to = xnode_attr(st->root, "to");
    if (!strcmp(st->root->name, "iq") && to && !strcmp(to, sess->user->bare) && caps_answer(st)) return SM_DONE;
    return SM_PASS;
}

/* ---- data forms ---- */

/* The first value of field var, or NULL. */
static const char *form_value(const xnode *x, const char *var)
{
    for (xnode *f = xnode_child(x, "field", NULL); f; f = xnode_next(f, "field", NULL)) {
        const char *v = xnode_attr(f, "var");
        if (v && !strcmp(v, var)) {
            const char *t = xnode_child_text(f, "value", NULL);
            return t ? t : "";
        }
    }
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    if (!strcmp(v, "1") || !strcmp(v, "true")) *out = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "false")) *out = 0;
    else return -1;
    return 0;
}

/* max_items: "max" or 1..P.max_items (larger values are capped). */
static int parse_max_items(const char *v, int *out)
{
    if (!strcmp(v, "max")) {
        *out = (int)P.max_items;
        return 0;
    }
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 1) return -1;
    *out = n > (long)P.max_items ? (int)P.max_items : (int)n;
    return 0;
}

typedef struct pep_opts {
    int has_access, has_max, has_persist;
    char access[16];
    int max_items, persist;
} pep_opts;

/* Read a form of pubsub#publish-options or pubsub#node_config. -1: malformed
 * or a value this service does not support; *bad names the field. */
static int parse_opts(const xnode *x, const char *form_type, pep_opts *o, const char **bad)
{
    memset(o, 0, sizeof *o);
    const char *ft = form_value(x, "FORM_TYPE");
    if (!ft || strcmp(ft, form_type)) {
        *bad = "FORM_TYPE";
        return -1;
    }
    for (xnode *f = xnode_child(x, "field", NULL); f; f = xnode_next(f, "field", NULL)) {
        const char *var = xnode_attr(f, "var");
        const char *v = xnode_child_text(f, "value", NULL);
        if (!var || !strcmp(var, "FORM_TYPE")) continue;
        *bad = var;
        if (!v) v = "";
        if (!strcmp(var, "pubsub#access_model")) {
            if (!access_name_ok(v)) return -1;
            o->has_access = 1;
            snprintf(o->access, sizeof o->access, "%s", v);
        } else if (!strcmp(var, "pubsub#max_items")) {
            if (parse_max_items(v, &o->max_items) < 0) return -1;
            o->has_max = 1;
        } else if (!strcmp(var, "pubsub#persist_items")) {
            if (parse_bool(v, &o->persist) < 0) return -1;
            o->has_persist = 1;
        } else if (!strcmp(var, "pubsub#send_last_published_item")) {
            if (strcmp(v, "on_sub_and_presence")) return -1;   /* what PEP does */
        } else if (!strcmp(var, "pubsub#deliver_notifications") || !strcmp(var, "pubsub#deliver_payloads") ||
                   !strcmp(var, "pubsub#notify_retract") || !strcmp(var, "pubsub#presence_based_delivery")) {
            int b;
            if (parse_bool(v, &b) < 0 || !b) return -1;       /* always on here */
        } else if (!strcmp(var, "pubsub#title") || !strcmp(var, "pubsub#type")) {
            /* accepted, not kept */
        } else {
            return -1;
        }
    }
    return 0;
}

static void apply_opts(pep_node_cfg *cfg, const pep_opts *o)
{
    if (o->has_access) cfg->access_model = o->access;
    if (o->has_max) cfg->max_items = o->max_items;
    if (o->has_persist) cfg->persist_items = o->persist;
}

static void default_cfg(pep_node_cfg *cfg)
{
    cfg->access_model = "presence";
    cfg->max_items = (int)P.default_max_items;
    cfg->persist_items = 1;
}

/* ---- requests ---- */

typedef struct req {
    sm_iq *iq;
    sm_user *u;
    char *node, *item_id, *payload, *requester;
    pep_opts opts;
    int has_opts;
    stanza *form;               /* configure set: the submitted form's copy */
    pep_row cfg;                /* the node as it was (node_get), strings owned below */
    char *cfg_access;
    char **cfg_whitelist;
    size_t cfg_nwhitelist;
    unsigned max;
    char **ids;
    size_t nids;
    void (*next)(struct req *r);    /* after node_get found the node */
} req;

static req *req_new(sm_iq *iq)
{
    req *r = xcalloc(1, sizeof *r);
    r->iq = iq;
    r->u = iq->user;
    char *rb = iq->from ? jid_normalize_bare(iq->from) : NULL;
    r->requester = rb ? rb : xstrdup(iq->user->bare);
    sm_user_hold(r->u);
    return r;
}

static void req_done(req *r)
{
    sm_user *u = r->u;
    free(r->node);
    free(r->item_id);
    free(r->payload);
    free(r->requester);
    free(r->cfg_access);
    for (size_t i = 0; i < r->cfg_nwhitelist; i++) free(r->cfg_whitelist[i]);
    free(r->cfg_whitelist);
    for (size_t i = 0; i < r->nids; i++) free(r->ids[i]);
    free(r->ids);
    if (r->form) stanza_free(r->form);
    free(r);
    sm_user_release(u);
}

static void keep_cfg(req *r, const pep_row *row)
{
    r->cfg_access = xstrdup(row->cfg.access_model ? row->cfg.access_model : "presence");
    r->cfg.cfg = row->cfg;
    r->cfg.cfg.access_model = r->cfg_access;
    r->cfg_whitelist = xcalloc(row->nwhitelist, sizeof *r->cfg_whitelist);
    for (size_t i = 0; i < row->nwhitelist; i++) r->cfg_whitelist[i] = xstrdup(row->whitelist[i]);
    r->cfg_nwhitelist = row->nwhitelist;
    r->cfg.whitelist = (const char *const *)r->cfg_whitelist;
    r->cfg.nwhitelist = row->nwhitelist;
    r->cfg.node = r->node;
}

static int owner_request(sm_iq *iq)
{
    if (iq->session) return 1;
    char *fb = iq->from ? jid_normalize_bare(iq->from) : NULL;
    int ok = fb && !strcmp(fb, iq->user->bare);
    free(fb);
    return ok;
}

/* ---- publish ---- */

static void on_published(void *ud, storage_status st, int created)
{
    req *r = ud;
    sm_iq *iq = r->iq;
    if (st == STORAGE_QUOTA) {
        log_notice("pep: %s: %u nodes already; node %s not created", r->u->bare, P.max_nodes, r->node);
        pep_error(iq, "not-allowed", "cancel", NULL, NULL);
    } else if (st != STORAGE_OK) {
        storage_error(iq, st);
    } else {
        if (created) log_debug("pep: %s created node %s", r->u->bare, r->node);
        stanza *res = sm_iq_result(iq->st->root);
        xnode *pub = xnode_add_child(xnode_add_child(res->root, "pubsub", NS_PUBSUB), "publish", NULL);
        xnode_set_attr(pub, "node", r->node);
        xnode_set_attr(xnode_add_child(pub, "item", NULL), "id", r->item_id);
        sm_iq_reply(iq, res);
        if (!P.sm->stopping) {
            stanza *ev = stanza_new("event", NS_PUBSUB_EVENT);
            xnode *items = xnode_add_child(ev->root, "items", NULL);
            xnode_set_attr(items, "node", r->node);
            if (add_item(items, r->item_id, r->payload)) notify_all(r->u, r->node, &r->cfg, ev->root);
            stanza_free(ev);
        }
    }
    req_done(r);
}

static void publish_now(req *r)
{
    pep_node_cfg cfg;
    if (r->cfg_access) {
        cfg = r->cfg.cfg;
    } else {
        default_cfg(&cfg);
        if (r->has_opts) apply_opts(&cfg, &r->opts);
        r->cfg_access = xstrdup(cfg.access_model);
        cfg.access_model = r->cfg_access;
        r->cfg.cfg = cfg;
        r->cfg.node = r->node;
    }
    pep_publish(P.sm->db, r->u->domain, r->u->node, r->node, r->item_id, r->payload, &cfg, P.max_nodes,
                on_published, r);
}

static void on_publish_node(void *ud, storage_status st, const pep_row *rows, size_t n)
{
    req *r = ud;
    if (st != STORAGE_OK) {
        storage_error(r->iq, st);
        req_done(r);
        return;
    }
    if (n > 0) {
        keep_cfg(r, &rows[0]);
        const pep_node_cfg *c = &rows[0].cfg;
        const pep_opts *o = &r->opts;
        if (r->has_opts && ((o->has_access && strcmp(o->access, c->access_model ? c->access_model : "")) ||
                            (o->has_max && o->max_items != c->max_items) ||
                            (o->has_persist && !o->persist != !c->persist_items))) {
            pep_error(r->iq, "conflict", "cancel", "precondition-not-met", NULL);
            req_done(r);
            return;
        }
    }
    publish_now(r);
}

static void do_publish(sm_iq *iq, xnode *pubsub, xnode *publish)
{
    const char *node = xnode_attr(publish, "node");
    if (!node || !*node) {
        pep_error(iq, "bad-request", "modify", "nodeid-required", NULL);
        return;
    }
    xnode *item = xnode_child(publish, "item", NULL);
    if (item && xnode_next(item, "item", NULL)) {
        pep_error(iq, "bad-request", "modify", "invalid-payload", NULL);
        return;
    }
    xnode *payload = item ? xnode_first_element(item) : NULL;
    if (!payload) {
        pep_error(iq, "bad-request", "modify", "payload-required", NULL);
        return;
    }
    if (xnode_next_element(payload)) {
        pep_error(iq, "bad-request", "modify", "invalid-payload", NULL);
        return;
    }
    pep_opts opts;
    int has_opts = 0;
    xnode *po = xnode_child(pubsub, "publish-options", NULL);
    xnode *x = po ? xnode_child(po, "x", NS_XDATA) : NULL;
    if (x) {
        const char *bad = NULL;
        if (parse_opts(x, FORM_PUBLISH_OPTIONS, &opts, &bad) < 0) {
            log_info("pep: %s: publish-options field %s not supported", iq->user->bare, bad ? bad : "?");
            pep_error(iq, "conflict", "cancel", "precondition-not-met", NULL);
            return;
        }
        has_opts = 1;
    }
    char *data = xml_to_string(payload, "");
    if (!data) abort();
    if (strlen(data) > P.max_payload) {
        free(data);
        pep_error(iq, "not-acceptable", "modify", "payload-too-big", NULL);
        return;
    }
    const char *id = xnode_attr(item, "id");
    char gen[25];
    if (!id || !*id) {
        random_token(gen, 24);
        id = gen;
    }
    if (strlen(node) > 1024 || strlen(id) > 1024) {
        free(data);
        pep_error(iq, "not-acceptable", "modify", NULL, NULL);
        return;
    }
    req *r = req_new(iq);
    r->node = xstrdup(node);
    r->item_id = xstrdup(id);
    r->payload = data;
    r->opts = opts;
    r->has_opts = has_opts;
    pep_node_get(iq->sm->db, r->u->domain, r->u->node, r->node, on_publish_node, r);
}

/* ---- items ---- */

static void on_items(void *ud, storage_status st, const pep_row *rows, size_t n)
{
    req *r = ud;
    sm_iq *iq = r->iq;
    if (st != STORAGE_OK) {
        storage_error(iq, st);
    } else if (n == 0) {
        sm_iq_error(iq, "item-not-found", NULL);
    } else {
        const char *why = access_denied(r->u->bare, r->requester, &rows[0], has_from(r->u, r->requester));
        if (why) {
            if (!strcmp(why, "presence-subscription-required"))
                pep_error(iq, "not-authorized", "auth", why, NULL);
            else
                pep_error(iq, "not-allowed", "cancel", why, NULL);
        } else {
            stanza *res = sm_iq_result(iq->st->root);
            xnode *items = xnode_add_child(xnode_add_child(res->root, "pubsub", NS_PUBSUB), "items", NULL);
            xnode_set_attr(items, "node", r->node);
            for (size_t i = 0; i < n; i++)
                if (rows[i].item_id) add_item(items, rows[i].item_id, rows[i].payload);
            sm_iq_reply(iq, res);
        }
    }
    req_done(r);
}

static void do_items(sm_iq *iq, xnode *items)
{
    const char *node = xnode_attr(items, "node");
    if (!node || !*node) {
        pep_error(iq, "bad-request", "modify", "nodeid-required", NULL);
        return;
    }
    unsigned max = 0;
    const char *mx = xnode_attr(items, "max_items");
    if (mx) {
        char *end;
        long v = strtol(mx, &end, 10);
        if (end == mx || *end || v < 1) {
            sm_iq_error(iq, "bad-request", NULL);
            return;
        }
        max = v > 100000 ? 100000 : (unsigned)v;
    }
    req *r = req_new(iq);
    r->node = xstrdup(node);
    for (xnode *it = xnode_child(items, "item", NULL); it; it = xnode_next(it, "item", NULL))
        if (xnode_attr(it, "id")) r->nids++;
    if (r->nids) {
        r->ids = xcalloc(r->nids, sizeof *r->ids);
        size_t k = 0;
        for (xnode *it = xnode_child(items, "item", NULL); it; it = xnode_next(it, "item", NULL))
            if (xnode_attr(it, "id")) r->ids[k++] = xstrdup(xnode_attr(it, "id"));
    }
    pep_items_get(iq->sm->db, r->u->domain, r->u->node, r->node, (const char *const *)r->ids, r->nids, max,
                  on_items, r);
}

/* ---- operations on an existing node (owner only) ---- */

static void on_node_for_op(void *ud, storage_status st, const pep_row *rows, size_t n)
{
    req *r = ud;
    if (st != STORAGE_OK) {
        storage_error(r->iq, st);
        req_done(r);
    } else if (n == 0) {
        sm_iq_error(r->iq, "item-not-found", NULL);
        req_done(r);
    } else {
        keep_cfg(r, &rows[0]);
        r->next(r);
    }
}

static void node_op(sm_iq *iq, const char *node, void (*next)(req *r), req **out)
{
    req *r = req_new(iq);
    r->node = xstrdup(node);
    r->next = next;
    if (out) *out = r;
}

static void node_op_start(req *r)
{
    pep_node_get(P.sm->db, r->u->domain, r->u->node, r->node, on_node_for_op, r);
}

/* The node changed (retract, delete, purge, configure): answer, then notify with ev (may be NULL). */
static void op_finish(req *r, storage_status st, stanza *ev, const char *missing)
{
    if (st == STORAGE_NOT_FOUND || (st == STORAGE_CONFLICT && missing)) {
        sm_iq_error(r->iq, "item-not-found", NULL);
    } else if (st != STORAGE_OK) {
        storage_error(r->iq, st);
    } else {
        sm_iq_reply(r->iq, NULL);
        if (ev && !P.sm->stopping) notify_all(r->u, r->node, &r->cfg, ev->root);
    }
    if (ev) stanza_free(ev);
    req_done(r);
}

static void on_retracted(void *ud, storage_status st)
{
    req *r = ud;
    stanza *ev = stanza_new("event", NS_PUBSUB_EVENT);
    xnode *items = xnode_add_child(ev->root, "items", NULL);
    xnode_set_attr(items, "node", r->node);
    xnode_set_attr(xnode_add_child(items, "retract", NULL), "id", r->item_id);
    op_finish(r, st, ev, "item");
}

static void retract_next(req *r)
{
    pep_retract(P.sm->db, r->u->domain, r->u->node, r->node, r->item_id, on_retracted, r);
}

static void on_deleted(void *ud, storage_status st)
{
    req *r = ud;
    stanza *ev = stanza_new("event", NS_PUBSUB_EVENT);
    xnode_set_attr(xnode_add_child(ev->root, "delete", NULL), "node", r->node);
    op_finish(r, st, ev, NULL);
}

static void delete_next(req *r) { pep_node_delete(P.sm->db, r->u->domain, r->u->node, r->node, on_deleted, r); }

static void on_purged(void *ud, storage_status st)
{
    req *r = ud;
    stanza *ev = stanza_new("event", NS_PUBSUB_EVENT);
    xnode_set_attr(xnode_add_child(ev->root, "purge", NULL), "node", r->node);
    op_finish(r, st, ev, NULL);
}

static void purge_next(req *r) { pep_node_purge(P.sm->db, r->u->domain, r->u->node, r->node, on_purged, r); }

static void on_configured(void *ud, storage_status st)
{
    req *r = ud;
    op_finish(r, st, NULL, NULL);
}

static void configure_store(req *r, pep_node_cfg *cfg, char **wl, size_t nwl)
{
    pep_node_configure(P.sm->db, r->u->domain, r->u->node, r->node, cfg, (const char *const *)wl, nwl,
                       on_configured, r);
}

static void add_field(xnode *x, const char *var, const char *type, const char *label, const char *value)
{
    xnode *f = xnode_add_child(x, "field", NULL);
    xnode_set_attr(f, "var", var);
    if (type) xnode_set_attr(f, "type", type);
    if (label) xnode_set_attr(f, "label", label);
    if (value) xnode_add_text_child(f, "value", NULL, value);
}

static void configure_next(req *r)
{
    sm_iq *iq = r->iq;
    if (!iq->is_set) {
        stanza *res = sm_iq_result(iq->st->root);
        xnode *c = xnode_add_child(xnode_add_child(res->root, "pubsub", NS_PUBSUB_OWNER), "configure", NULL);
        xnode_set_attr(c, "node", r->node);
        xnode *x = xnode_add_child(c, "x", NS_XDATA);
        xnode_set_attr(x, "type", "form");
        add_field(x, "FORM_TYPE", "hidden", NULL, FORM_NODE_CONFIG);
        xnode *f = xnode_add_child(x, "field", NULL);
        xnode_set_attr(f, "var", "pubsub#access_model");
        xnode_set_attr(f, "type", "list-single");
        xnode_set_attr(f, "label", "Who may subscribe and retrieve items");
        xnode_add_text_child(f, "value", NULL, r->cfg.cfg.access_model);
        static const char *const models[] = {"open", "presence", "whitelist"};
        for (int i = 0; i < 3; i++) xnode_add_text_child(xnode_add_child(f, "option", NULL), "value", NULL, models[i]);
        char mi[24];
        snprintf(mi, sizeof mi, "%d", r->cfg.cfg.max_items);
        add_field(x, "pubsub#max_items", "text-single", "Max number of items to persist", mi);
        add_field(x, "pubsub#persist_items", "boolean", "Persist items to storage",
                  r->cfg.cfg.persist_items ? "1" : "0");
        sm_iq_reply(iq, res);
        req_done(r);
        return;
    }
    xnode *x = r->form ? r->form->root : NULL;
    if (!x || (xnode_attr(x, "type") && !strcmp(xnode_attr(x, "type"), "cancel"))) {
        sm_iq_reply(iq, NULL);
        req_done(r);
        return;
    }
    pep_opts o;
    const char *bad = NULL;
    if (parse_opts(x, FORM_NODE_CONFIG, &o, &bad) < 0) {
        log_info("pep: %s: node configuration field %s not supported", r->u->bare, bad ? bad : "?");
        sm_iq_error(iq, "not-acceptable", NULL);
        req_done(r);
        return;
    }
    pep_node_cfg cfg = r->cfg.cfg;
    apply_opts(&cfg, &o);
    configure_store(r, &cfg, r->cfg_whitelist, r->cfg_nwhitelist);
}

static void affiliations_next(req *r)
{
    sm_iq *iq = r->iq;
    if (!iq->is_set) {
        stanza *res = sm_iq_result(iq->st->root);
        xnode *a = xnode_add_child(xnode_add_child(res->root, "pubsub", NS_PUBSUB_OWNER), "affiliations", NULL);
        xnode_set_attr(a, "node", r->node);
        xnode *o = xnode_add_child(a, "affiliation", NULL);
        xnode_set_attr(o, "jid", r->u->bare);
        xnode_set_attr(o, "affiliation", "owner");
        for (size_t i = 0; i < r->cfg_nwhitelist; i++) {
            xnode *m = xnode_add_child(a, "affiliation", NULL);
            xnode_set_attr(m, "jid", r->cfg_whitelist[i]);
            xnode_set_attr(m, "affiliation", "member");
        }
        sm_iq_reply(iq, res);
        req_done(r);
        return;
    }
    /* The new whitelist: the old one changed by each <affiliation/>. */
    size_t cap = r->cfg_nwhitelist + 1;
    xnode *list = xnode_child(xnode_child(iq->payload, "affiliations", NULL), NULL, NULL);
    for (xnode *a = list; a; a = xnode_next(a, "affiliation", NULL)) cap++;
    char **wl = xcalloc(cap, sizeof *wl);
    size_t n = 0;
    for (size_t i = 0; i < r->cfg_nwhitelist; i++) wl[n++] = xstrdup(r->cfg_whitelist[i]);
    const char *err = NULL;
    for (xnode *a = list; a && !err; a = xnode_next(a, "affiliation", NULL)) {
        const char *j = xnode_attr(a, "jid"), *aff = xnode_attr(a, "affiliation");
        char *b = j ? jid_normalize_bare(j) : NULL;
        if (!b || !aff) err = "bad-request";
        else if (!strcmp(b, r->u->bare)) err = "not-acceptable";    /* the owner stays the owner */
        else if (!strcmp(aff, "member") || !strcmp(aff, "publisher") || !strcmp(aff, "none")) {
            for (size_t i = 0; i < n; i++)
                if (!strcmp(wl[i], b)) {
                    free(wl[i]);
                    wl[i] = wl[--n];
                    break;
                }
            if (strcmp(aff, "none")) {
                if (n >= 1000) err = "not-allowed";
                else wl[n++] = xstrdup(b);
            }
        } else {
            err = "feature-not-implemented";
        }
        free(b);
    }
    if (err) {
        for (size_t i = 0; i < n; i++) free(wl[i]);
        free(wl);
        sm_iq_error(iq, err, NULL);
        req_done(r);
        return;
    }
    pep_node_cfg cfg = r->cfg.cfg;
    configure_store(r, &cfg, wl, n);
    for (size_t i = 0; i < n; i++) free(wl[i]);
    free(wl);
}

/* ---- create ---- */

static void on_created(void *ud, storage_status st)
{
    req *r = ud;
    if (st == STORAGE_CONFLICT) sm_iq_error(r->iq, "conflict", NULL);
    else if (st == STORAGE_QUOTA) pep_error(r->iq, "not-allowed", "cancel", NULL, NULL);
    else if (st != STORAGE_OK) storage_error(r->iq, st);
    else sm_iq_reply(r->iq, NULL);
    req_done(r);
}

static void do_create(sm_iq *iq, xnode *pubsub, xnode *create)
{
    const char *node = xnode_attr(create, "node");
    if (!node || !*node) {
        pep_error(iq, "not-acceptable", "modify", "nodeid-required", NULL);
        return;
    }
    if (strlen(node) > 1024) {
        sm_iq_error(iq, "not-acceptable", NULL);
        return;
    }
    pep_node_cfg cfg;
    default_cfg(&cfg);
    pep_opts o;
    xnode *conf = xnode_child(pubsub, "configure", NULL);
    xnode *x = conf ? xnode_child(conf, "x", NS_XDATA) : NULL;
    if (x) {
        const char *bad = NULL;
        if (parse_opts(x, FORM_NODE_CONFIG, &o, &bad) < 0) {
            log_info("pep: %s: node configuration field %s not supported", iq->user->bare, bad ? bad : "?");
            sm_iq_error(iq, "not-acceptable", NULL);
            return;
        }
        apply_opts(&cfg, &o);
    }
    req *r = req_new(iq);
    r->node = xstrdup(node);
    pep_node_create(iq->sm->db, r->u->domain, r->u->node, r->node, &cfg, P.max_nodes, on_created, r);
}

/* ---- iq handlers ---- */

static void pubsub_iq(sm_iq *iq)
{
    xnode *ps = iq->payload;
    if (strcmp(ps->name, "pubsub")) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    xnode *op = xnode_first_element(ps);
    if (op && !strcmp(op->name, "publish-options")) op = xnode_next_element(op);
    if (!op) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    int owner = owner_request(iq);
    if (!iq->is_set && !strcmp(op->name, "items")) {
        do_items(iq, op);
        return;
    }
    if (iq->is_set && (!strcmp(op->name, "publish") || !strcmp(op->name, "retract") || !strcmp(op->name, "create"))) {
        if (!owner) {
            sm_iq_error(iq, "forbidden", NULL);
            return;
        }
        if (!strcmp(op->name, "publish")) {
            do_publish(iq, ps, op);
        } else if (!strcmp(op->name, "create")) {
            do_create(iq, ps, op);
        } else {
            const char *node = xnode_attr(op, "node");
            xnode *item = xnode_child(op, "item", NULL);
            const char *id = item ? xnode_attr(item, "id") : NULL;
            if (!node || !*node) {
                pep_error(iq, "bad-request", "modify", "nodeid-required", NULL);
                return;
            }
            if (!id || !*id) {
                pep_error(iq, "bad-request", "modify", "item-required", NULL);
                return;
            }
            req *r;
            node_op(iq, node, retract_next, &r);
            r->item_id = xstrdup(id);
            node_op_start(r);
        }
        return;
    }
    /* Explicit subscriptions and the rest: PEP subscriptions come from presence. */
    const char *feature = !strcmp(op->name, "subscribe")       ? "subscribe"
                          : !strcmp(op->name, "unsubscribe")   ? "subscribe"
                          : !strcmp(op->name, "subscriptions") ? "retrieve-subscriptions"
                          : !strcmp(op->name, "affiliations")  ? "retrieve-affiliations"
                          : !strcmp(op->name, "options")       ? "subscription-options"
                          : !strcmp(op->name, "default")       ? "retrieve-default"
                                                               : NULL;
    if (feature) pep_error(iq, "feature-not-implemented", "cancel", "unsupported", feature);
    else sm_iq_error(iq, "bad-request", NULL);
}

static void pubsub_owner_iq(sm_iq *iq)
{
    xnode *ps = iq->payload;
    xnode *op = xnode_first_element(ps);
    if (strcmp(ps->name, "pubsub") || !op) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    if (!owner_request(iq)) {
        sm_iq_error(iq, "forbidden", NULL);
        return;
    }
    const char *node = xnode_attr(op, "node");
    void (*next)(req *) = NULL;
    int get_ok = 0, set_ok = 0;
    if (!strcmp(op->name, "delete")) next = delete_next, set_ok = 1;
    else if (!strcmp(op->name, "purge")) next = purge_next, set_ok = 1;
    else if (!strcmp(op->name, "configure")) next = configure_next, get_ok = set_ok = 1;
    else if (!strcmp(op->name, "affiliations")) next = affiliations_next, get_ok = set_ok = 1;
    if (!next) {
        const char *feature = !strcmp(op->name, "subscriptions") ? "manage-subscriptions"
                              : !strcmp(op->name, "default")     ? "retrieve-default"
                                                                 : NULL;
        if (feature) pep_error(iq, "feature-not-implemented", "cancel", "unsupported", feature);
        else sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    if ((iq->is_set && !set_ok) || (!iq->is_set && !get_ok)) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    if (!node || !*node) {
        pep_error(iq, "bad-request", "modify", "nodeid-required", NULL);
        return;
    }
    req *r;
    node_op(iq, node, next, &r);
    if (next == configure_next && iq->is_set) {
        xnode *x = xnode_child(op, "x", NS_XDATA);
        if (x) r->form = stanza_from_node(x);
    }
    node_op_start(r);
}

/* disco#items of the account: its nodes the requester may see. */
static void on_nodes_listed(void *ud, storage_status st, const pep_row *rows, size_t n)
{
    req *r = ud;
    sm_iq *iq = r->iq;
    if (st != STORAGE_OK) {
        storage_error(iq, st);
    } else {
        stanza *res = sm_iq_result(iq->st->root);
        xnode *q = xnode_add_child(res->root, "query", NS_DISCO_ITEMS);
        int pres = has_from(r->u, r->requester);
        for (size_t i = 0; i < n; i++) {
            if (access_denied(r->u->bare, r->requester, &rows[i], pres)) continue;
            xnode *item = xnode_add_child(q, "item", NULL);
            xnode_set_attr(item, "jid", r->u->bare);
            xnode_set_attr(item, "node", rows[i].node);
        }
        sm_iq_reply(iq, res);
    }
    req_done(r);
}

static void pep_account_items(sm_iq *iq)
{
    req *r = req_new(iq);
    pep_nodes_list(iq->sm->db, r->u->domain, r->u->node, on_nodes_listed, r);
}

/* ---- life cycle ---- */

static const config_key pep_keys[] = {
    {"max-items-per-node", CFG_INT, 0, "most items a node keeps, the value of pubsub#max_items 'max' (default 256)"},
    {"default-max-items", CFG_INT, 0, "items a new node keeps unless configured otherwise (default 1)"},
    {"max-payload-bytes", CFG_INT, 0, "largest item payload accepted, serialized, in bytes (default 131072)"},
    {"max-nodes-per-user", CFG_INT, 0, "most nodes an account may have (default 128)"},
    {"caps-cache-size", CFG_INT, 0, "entity capabilities (XEP-0115) remembered (default 4096)"},
    {"max-remote-resources", CFG_INT, 0,
     "remote resources whose capabilities are tracked per local user (default 1024)"},
    {NULL, 0, 0, NULL},
};

static unsigned cfg_uint(const xnode *mc, const char *key, long long def, long long lo, long long hi)
{
    long long v = config_node_int(mc, key, def);
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return (unsigned)v;
}

static int pep_init(sm *s)
{
    memset(&P, 0, sizeof P);
    P.sm = s;
    const xnode *mc = sm_module_config(s, "pep");
    P.max_items = cfg_uint(mc, "max-items-per-node", 256, 1, 100000);
    P.default_max_items = cfg_uint(mc, "default-max-items", 1, 1, P.max_items);
    P.max_payload = cfg_uint(mc, "max-payload-bytes", 131072, 64, 16 * 1024 * 1024);
    P.max_nodes = cfg_uint(mc, "max-nodes-per-user", 128, 1, 100000);
    P.caps_cache = cfg_uint(mc, "caps-cache-size", 4096, 16, 1000000);
    P.max_tracked = cfg_uint(mc, "max-remote-resources", 1024, 1, 1000000);
    return 0;
}

static void pep_shutdown(sm *s)
{
    (void)s;
    size_t pos = 0;
    const char *k;
    void *v;
    while (strmap_next(&P.caps, &pos, &k, &v)) caps_entry_free(v);
    strmap_free(&P.caps);
    pos = 0;
    while (strmap_next(&P.queries, &pos, &k, &v)) {
        caps_query *q = v;
        free(q->ver);
        free(q->jid);
        free(q);
    }
    strmap_free(&P.queries);
    free_str_map(&P.sess_ver);
    pos = 0;
    while (strmap_next(&P.remote, &pos, &k, &v)) {
        free_str_map(v);
        free(v);
    }
    strmap_free(&P.remote);
}

static const sm_iq_handler pep_iqs[] = {
    {NS_PUBSUB, SM_IQ_ACCOUNT, pubsub_iq},
    {NS_PUBSUB_OWNER, SM_IQ_ACCOUNT, pubsub_owner_iq},
    {NULL, 0, NULL},
};

static const char *const pep_features[] = {
    NS_PUBSUB "#access-open",
    NS_PUBSUB "#access-presence",
    NS_PUBSUB "#access-whitelist",
    NS_PUBSUB "#auto-create",
    NS_PUBSUB "#auto-subscribe",
    NS_PUBSUB "#config-node",
    NS_PUBSUB "#create-and-configure",
    NS_PUBSUB "#create-nodes",
    NS_PUBSUB "#delete-items",
    NS_PUBSUB "#delete-nodes",
    NS_PUBSUB "#filtered-notifications",
    NS_PUBSUB "#item-ids",
    NS_PUBSUB "#last-published",
    NS_PUBSUB "#modify-affiliations",
    NS_PUBSUB "#persistent-items",
    NS_PUBSUB "#presence-notifications",
    NS_PUBSUB "#publish",
    NS_PUBSUB "#publish-options",
    NS_PUBSUB "#purge-nodes",
    NS_PUBSUB "#retract-items",
    NS_PUBSUB "#retrieve-items",
    NULL,
};

static const sm_identity pep_identities[] = {
    {"pubsub", "pep", NULL},
    {NULL, NULL, NULL},
};

const sm_module mod_pep = {
    .name = "pep",
    .iqs = pep_iqs,
    .account_features = pep_features,
    .init = pep_init,
    .shutdown = pep_shutdown,
    .session_ending = pep_session_ending,
    .out_stanza = pep_out,
    .in_stanza = pep_in,
    .available = pep_available,
    .config_keys = pep_keys,
    .user_unloading = pep_user_unloading,
    .account_identities = pep_identities,
    .account_items = pep_account_items,
};
