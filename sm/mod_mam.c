/* mod_mam: the user's message archive (XEP-0313 urn:xmpp:mam:2, paged with
 * XEP-0059 RSM), archiving preferences (<prefs/>), and XEP-0359 stanza ids.
 *
 * What is archived: one-to-one messages of type chat or normal with a body
 * (or a XEP-0334 <store/> hint), unless they carry <no-store/> or
 * <no-permanent-store/>. A message a session sends goes into the sender's
 * archive (out_stanza, to local and remote recipients alike); a message
 * for a local user goes into the recipient's archive (in_stanza, whether it
 * is delivered or stored offline), with a <stanza-id/> added before it is
 * delivered. Messages handed back by c2s were archived the first time.
 *
 * Archive writes never hold up delivery: the stanza id is made in memory
 * and the write goes to the database without waiting for it. Writes and
 * queries of one user are ordered (storage keys), so a query sees every
 * message archived before it. The preferences are enforced by the database
 * function that archives (migration 006); a copy loaded with the user
 * (user_loading) decides whether a delivered message gets a stanza id.
 *
 * Retention: modules/mam/max-days and modules/mam/max-messages-per-user
 * (0: unlimited, the default), applied every prune-interval seconds. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/crypto.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/xml_write.h"
#include "sm/module.h"
#include "storage/mam.h"

#define NS_MAM "urn:xmpp:mam:2"
#define NS_MAM_EXT "urn:xmpp:mam:2#extended"
#define NS_SID "urn:xmpp:sid:0"
#define NS_RSM "http://jabber.org/protocol/rsm"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_DELAY "urn:xmpp:delay"
#define NS_HINTS "urn:xmpp:hints"
#define NS_XDATA "jabber:x:data"

#define EXPIRE_BATCH 10000
#define MAX_QUERY_IDS 4

typedef struct prefs_cache {
    int loaded;
    mam_mode mode;
    char **always, **never;
    size_t nalways, nnever;
} prefs_cache;

static struct {
    sm *s;
    strmap prefs;               /* bare JID -> prefs_cache*, while the user is in memory */
    strmap dirty;               /* bare JIDs that archived since the last trim */
    uv_timer_t timer;
    int timer_on;
    int expiring;
    mam_mode default_mode;
    unsigned default_page, max_page;
    unsigned max_days, max_messages, prune_interval;
} g;

/* ---- helpers ---- */

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

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* XEP-0082 DateTime: CCYY-MM-DDThh:mm:ss[.sss]TZD -> microseconds since the epoch. */
static int parse_datetime(const char *s, int64_t *out)
{
    int Y, M, D, h, m, sec, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n != 19) return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60 || Y < 1) return -1;
    const char *p = s + n;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        if (!isdigit((unsigned char)*p)) return -1;
        while (isdigit((unsigned char)*p)) {
            if (digits < 6) {
                frac = frac * 10 + (*p - '0');
                digits++;
            }
            p++;
        }
        while (digits++ < 6) frac *= 10;
    }
    long off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59) return -1;
        off = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p) return -1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *out = ((int64_t)t - off) * 1000000 + frac;
    return 0;
}

static void format_datetime(int64_t us, char *out, size_t len)
{
    int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    int64_t frac = us - secs * 1000000;
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, len, "%s.%06" PRId64 "Z", base, frac);
}

/* A UUID-like random id (version 4 layout). */
static void new_stanza_id(char out[37])
{
    unsigned char b[16];
    random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static const char *message_type(const xnode *el)
{
    const char *t = xnode_attr(el, "type");
    if (!t || (strcmp(t, "chat") && strcmp(t, "groupchat") && strcmp(t, "headline") && strcmp(t, "error")))
        return "normal";
    return t;
}

/* Worth archiving (XEP-0313 §7.1.1, XEP-0334 hints)? */
static int archivable(const xnode *msg)
{
    if (strcmp(msg->name, "message")) return 0;
    const char *type = message_type(msg);
    if (strcmp(type, "chat") && strcmp(type, "normal")) return 0;
    if (xnode_child(msg, "no-store", NS_HINTS) || xnode_child(msg, "no-permanent-store", NS_HINTS)) return 0;
    if (xnode_child(msg, "result", NS_MAM)) return 0;   /* an archive result, not a conversation */
    for (xnode *c = xnode_first_element(msg); c; c = xnode_next_element(c))
        if (!strcmp(c->name, "body") && c->ns && msg->ns && !strcmp(c->ns, msg->ns)) return 1;
    return xnode_child(msg, "store", NS_HINTS) != NULL;
}

/* XEP-0359 §3: remove any <stanza-id/> that claims to be by `bare` (ours to
 * give). Returns 1 when something was removed. */
static int strip_stanza_ids(stanza *st, const char *bare)
{
    int removed = 0;
    xnode *c = xnode_child(st->root, "stanza-id", NS_SID);
    while (c) {
        xnode *next = xnode_next(c, "stanza-id", NS_SID);
        const char *by = xnode_attr(c, "by");
        char *nb = by ? jid_normalize(by) : NULL;
        if (!by || (nb && !strcmp(nb, bare)) || (!nb && !strcasecmp(by, bare))) {
            xnode_remove(c);
            removed = 1;
        }
        free(nb);
        c = next;
    }
    if (removed) stanza_touch(st);
    return removed;
}

static int in_roster(sm_user *u, const char *bare)
{
    sm_item *it = sm_roster_item(u, bare);
    return it && !roster_item_hidden(it);
}

static int jid_listed(char **list, size_t n, const char *bare, const char *full)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], bare) || (full && !strcmp(list[i], full))) return 1;
    return 0;
}

/* What the preferences in memory say (the database has the last word);
 * 1 when they are not in memory. */
static int prefs_allow(sm_user *u, const char *bare, const char *full)
{
    prefs_cache *p = strmap_get(&g.prefs, u->bare);
    if (!p || !p->loaded) return 1;
    if (jid_listed(p->never, p->nnever, bare, full)) return 0;
    if (jid_listed(p->always, p->nalways, bare, full)) return 1;
    if (p->mode == MAM_NEVER) return 0;
    if (p->mode == MAM_ROSTER) return in_roster(u, bare);
    return 1;
}

/* ---- archiving ---- */

typedef struct store_ctx {
    char *bare;
} store_ctx;

static void on_archived(void *ud, storage_status st, int archived)
{
    store_ctx *c = ud;
    if (st != STORAGE_OK && !(g.s && g.s->stopping))
        log_warn("user %s: archiving a message failed: %s", c->bare, storage_status_string(st));
    else if (st == STORAGE_OK)
        log_debug("user %s: message %s", c->bare, archived ? "archived" : "not archived (preferences)");
    free(c->bare);
    free(c);
}

/* Archive st (as it is now) in u's archive, with other party `peer`. */
static void archive(sm_user *u, const stanza *st, const jid *peer, int outgoing, const char *stanza_id)
{
    sm *s = u->sm;
    if (!s->db) return;
    char *data = xml_to_string(st->root, "");
    if (!data) abort();
    mam_entry e;
    memset(&e, 0, sizeof e);
    e.stanza_id = stanza_id;
    e.with_bare = peer->bare;
    e.with_resource = peer->resource;
    e.outgoing = outgoing;
    e.stamp_us = now_us();
    e.stanza = data;
    e.in_roster = in_roster(u, peer->bare);
    e.default_mode = g.default_mode;
    store_ctx *c = xcalloc(1, sizeof *c);
    c->bare = xstrdup(u->bare);
    mam_store(s->db, u->domain, u->node, &e, on_archived, c);
    free(data);
    if (g.max_messages && !strmap_get(&g.dirty, u->bare)) strmap_put(&g.dirty, u->bare, (void *)1);
}

static sm_hook_rc mam_out(sm_session *sess, stanza *st)
{
    if (strcmp(st->root->name, "message")) return SM_PASS;
    sm_user *u = sess->user;
    strip_stanza_ids(st, u->bare);
    if (!archivable(st->root)) return SM_PASS;
    const char *to = xnode_attr(st->root, "to");
    if (!to) return SM_PASS;               /* to the user's own bare JID: archived as received */
    jid peer = JID_INIT;
    if (jid_parse(&peer, to) < 0) return SM_PASS;
    if (strcmp(peer.bare, u->bare) && prefs_allow(u, peer.bare, peer.full)) {
        char sid[37];
        new_stanza_id(sid);
        archive(u, st, &peer, 1, sid);
    }
    jid_free(&peer);
    return SM_PASS;
}

static sm_hook_rc mam_in(sm_user *u, stanza *st, int returned, sm_session *skip)
{
    (void)skip;
    if (returned || strcmp(st->root->name, "message")) return SM_PASS;
    strip_stanza_ids(st, u->bare);
    if (!archivable(st->root)) return SM_PASS;
    const char *from = xnode_attr(st->root, "from");
    jid peer = JID_INIT;
    if (!from || jid_parse(&peer, from) < 0) return SM_PASS;
    if (prefs_allow(u, peer.bare, peer.full)) {
        char sid[37];
        new_stanza_id(sid);
        archive(u, st, &peer, 0, sid);     /* stored as received, without our id */
        xnode *x = xnode_add_child(st->root, "stanza-id", NS_SID);
        xnode_set_attr(x, "id", sid);
        xnode_set_attr(x, "by", u->bare);
        stanza_touch(st);
    }
    jid_free(&peer);
    return SM_PASS;
}

/* ---- preferences in memory ---- */

static void cache_free(prefs_cache *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->nalways; i++) free(p->always[i]);
    for (size_t i = 0; i < p->nnever; i++) free(p->never[i]);
    free(p->always);
    free(p->never);
    free(p);
}

static char **dup_list(const char *const *v, size_t n)
{
    char **out = xcalloc(n, sizeof *out);
    for (size_t i = 0; i < n; i++) out[i] = xstrdup(v[i]);
    return out;
}

static void cache_fill(prefs_cache *c, const mam_prefs *p)
{
    for (size_t i = 0; i < c->nalways; i++) free(c->always[i]);
    for (size_t i = 0; i < c->nnever; i++) free(c->never[i]);
    free(c->always);
    free(c->never);
    c->mode = p && p->set ? p->mode : g.default_mode;
    c->nalways = p && p->set ? p->nalways : 0;
    c->nnever = p && p->set ? p->nnever : 0;
    c->always = dup_list(p && p->set ? p->always : NULL, c->nalways);
    c->never = dup_list(p && p->set ? p->never : NULL, c->nnever);
    c->loaded = 1;
}

static void on_prefs_loaded(void *ud, storage_status st, const mam_prefs *p)
{
    sm_user *u = ud;
    prefs_cache *pc = strmap_get(&g.prefs, u->bare);
    if (st == STORAGE_OK && pc) cache_fill(pc, p);
    else if (st != STORAGE_OK && st != STORAGE_NOT_FOUND && !u->sm->stopping)
        log_warn("user %s: loading archiving preferences failed: %s (the database decides alone)", u->bare,
                 storage_status_string(st));
    /* Not a reason to refuse the user: without preferences in memory, the
     * archiving function still applies the stored ones. */
    sm_user_load_end(u, STORAGE_OK);
}

static void mam_user_loading(sm_user *u)
{
    if (!u->sm->db || strmap_get(&g.prefs, u->bare)) return;
    prefs_cache *pc = xcalloc(1, sizeof *pc);
    strmap_put(&g.prefs, u->bare, pc);
    sm_user_load_begin(u);
    mam_prefs_get(u->sm->db, u->domain, u->node, on_prefs_loaded, u);
}

static void mam_user_unloading(sm_user *u)
{
    cache_free(strmap_del(&g.prefs, u->bare));
}

/* ---- the iq: queries, preferences, metadata ---- */

static int own_request(sm_iq *iq)
{
    if (iq->session) return 1;
    char *fb = iq->from ? jid_normalize_bare(iq->from) : NULL;
    int ok = fb && iq->user && !strcmp(fb, iq->user->bare);
    free(fb);
    return ok;
}

/* The iq is answered; its user's queue is released. */
static void finish_error(sm_iq *iq, const char *cond)
{
    sm_user *u = iq->user;
    sm_iq_error(iq, cond, NULL);
    sm_user_release(u);
}

static void finish_reply(sm_iq *iq, stanza *r)
{
    sm_user *u = iq->user;
    sm_iq_reply(iq, r);
    sm_user_release(u);
}

static void prefs_xml(xnode *parent, mam_mode mode, char *const *always, size_t na, char *const *never, size_t nn)
{
    xnode *p = xnode_add_child(parent, "prefs", NS_MAM);
    xnode_set_attr(p, "default", mam_mode_name(mode));
    xnode *a = xnode_add_child(p, "always", NULL);
    for (size_t i = 0; i < na; i++) xnode_add_text_child(a, "jid", NULL, always[i]);
    xnode *n = xnode_add_child(p, "never", NULL);
    for (size_t i = 0; i < nn; i++) xnode_add_text_child(n, "jid", NULL, never[i]);
}

static void on_prefs_get(void *ud, storage_status st, const mam_prefs *p)
{
    sm_iq *iq = ud;
    if (st != STORAGE_OK) {
        if (st != STORAGE_NOT_FOUND)
            log_warn("user %s: reading archiving preferences failed: %s", iq->user->bare, storage_status_string(st));
        finish_error(iq, st == STORAGE_NOT_FOUND ? "item-not-found" : "internal-server-error");
        return;
    }
    stanza *r = sm_iq_result(iq->st->root);
    if (p->set)
        prefs_xml(r->root, p->mode, (char *const *)p->always, p->nalways, (char *const *)p->never, p->nnever);
    else
        prefs_xml(r->root, g.default_mode, NULL, 0, NULL, 0);
    finish_reply(iq, r);
}

typedef struct prefs_set_ctx {
    sm_iq *iq;
    prefs_cache next;
} prefs_set_ctx;

static void prefs_set_free(prefs_set_ctx *c)
{
    for (size_t i = 0; i < c->next.nalways; i++) free(c->next.always[i]);
    for (size_t i = 0; i < c->next.nnever; i++) free(c->next.never[i]);
    free(c->next.always);
    free(c->next.never);
    free(c);
}

static void on_prefs_set(void *ud, storage_status st)
{
    prefs_set_ctx *c = ud;
    sm_iq *iq = c->iq;
    if (st != STORAGE_OK) {
        log_warn("user %s: storing archiving preferences failed: %s", iq->user->bare, storage_status_string(st));
        finish_error(iq, st == STORAGE_NOT_FOUND ? "item-not-found" : "internal-server-error");
        prefs_set_free(c);
        return;
    }
    prefs_cache *pc = strmap_get(&g.prefs, iq->user->bare);
    if (pc) {
        mam_prefs p = {1, c->next.mode, (const char *const *)c->next.always, c->next.nalways,
                       (const char *const *)c->next.never, c->next.nnever};
        cache_fill(pc, &p);
    }
    stanza *r = sm_iq_result(iq->st->root);
    prefs_xml(r->root, c->next.mode, c->next.always, c->next.nalways, c->next.never, c->next.nnever);
    finish_reply(iq, r);
    prefs_set_free(c);
}

/* Collect the <jid/>s of <always/> or <never/>, prepared; -1 if one is malformed. */
static int collect_jids(const xnode *list, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!list) return 0;
    size_t cap = xnode_count_elements(list);
    *out = xcalloc(cap, sizeof **out);
    for (xnode *j = xnode_child(list, "jid", NULL); j; j = xnode_next(j, "jid", NULL)) {
        char *norm = jid_normalize(xnode_text(j));
        if (!norm) return -1;
        int dup = 0;
        for (size_t i = 0; i < *n; i++)
            if (!strcmp((*out)[i], norm)) dup = 1;
        if (dup) free(norm);
        else (*out)[(*n)++] = norm;
    }
    return 0;
}

static void handle_prefs(sm_iq *iq)
{
    sm_user *u = iq->user;
    sm *s = iq->sm;
    if (!iq->is_set) {
        sm_user_hold(u);
        mam_prefs_get(s->db, u->domain, u->node, on_prefs_get, iq);
        return;
    }
    int mode = mam_mode_parse(xnode_attr(iq->payload, "default"));
    if (mode < 0) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    prefs_set_ctx *c = xcalloc(1, sizeof *c);
    c->iq = iq;
    c->next.mode = (mam_mode)mode;
    if (collect_jids(xnode_child(iq->payload, "always", NS_MAM), &c->next.always, &c->next.nalways) < 0 ||
        collect_jids(xnode_child(iq->payload, "never", NS_MAM), &c->next.never, &c->next.nnever) < 0) {
        prefs_set_free(c);
        sm_iq_error(iq, "jid-malformed", NULL);
        return;
    }
    size_t limit = 1000;
    if (c->next.nalways + c->next.nnever > limit) {
        prefs_set_free(c);
        sm_iq_error(iq, "policy-violation", NULL);
        return;
    }
    mam_prefs p = {1, c->next.mode, (const char *const *)c->next.always, c->next.nalways,
                   (const char *const *)c->next.never, c->next.nnever};
    sm_user_hold(u);
    mam_prefs_put(s->db, u->domain, u->node, &p, on_prefs_set, c);
}

static void on_metadata(void *ud, storage_status st, const mam_row *rows, size_t n)
{
    sm_iq *iq = ud;
    if (st != STORAGE_OK) {
        log_warn("user %s: reading archive metadata failed: %s", iq->user->bare, storage_status_string(st));
        finish_error(iq, "internal-server-error");
        return;
    }
    stanza *r = sm_iq_result(iq->st->root);
    xnode *m = xnode_add_child(r->root, "metadata", NS_MAM);
    for (size_t i = 0; i < n && i < 2; i++) {
        char ts[48];
        format_datetime(rows[i].stamp_us, ts, sizeof ts);
        xnode *e = xnode_add_child(m, i == 0 ? "start" : "end", NULL);
        xnode_set_attr(e, "id", rows[i].stanza_id);
        xnode_set_attr(e, "timestamp", ts);
    }
    finish_reply(iq, r);
}

static void query_form(sm_iq *iq)
{
    stanza *r = sm_iq_result(iq->st->root);
    xnode *q = xnode_add_child(r->root, "query", NS_MAM);
    xnode *x = xnode_add_child(q, "x", NS_XDATA);
    xnode_set_attr(x, "type", "form");
    static const char *const fields[][2] = {
        {"FORM_TYPE", "hidden"},     {"with", "jid-single"},     {"start", "text-single"},
        {"end", "text-single"},      {"after-id", "text-single"}, {"before-id", "text-single"},
        {"ids", "text-multi"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        xnode *f = xnode_add_child(x, "field", NULL);
        xnode_set_attr(f, "var", fields[i][0]);
        xnode_set_attr(f, "type", fields[i][1]);
        if (i == 0) xnode_add_text_child(f, "value", NULL, NS_MAM);
    }
    sm_iq_reply(iq, r);
}

typedef struct query_ctx {
    sm_iq *iq;
    const char *queryid;
    const char *with_bare, *with_resource;   /* in `with` */
    jid with;
    mam_pos set_lo, set_hi;
    /* stanza ids to resolve: form after-id, form before-id, rsm after, rsm before */
    const char *cursor[MAX_QUERY_IDS];
    const char *const *ids;                  /* the 'ids' field */
    size_t nids;
    const char **idbuf;
    int backward, flip, has_ids;
    unsigned max;
} query_ctx;

enum { C_AFTER_ID, C_BEFORE_ID, C_RSM_AFTER, C_RSM_BEFORE };

static void query_free(query_ctx *q)
{
    jid_free(&q->with);
    free(q->idbuf);
    free(q);
}

static int pos_cmp(mam_pos a, mam_pos b)
{
    if (a.us != b.us) return a.us < b.us ? -1 : 1;
    return (a.id > b.id) - (a.id < b.id);
}

/* Send rows [from, to) as results (in archive order, or reversed when flipped). */
static void send_results(query_ctx *q, const mam_row *rows, size_t from, size_t to)
{
    sm_iq *iq = q->iq;
    sm *s = iq->sm;
    if (s->stopping || !iq->session) return;
    for (size_t k = from; k < to; k++) {
        const mam_row *row = &rows[q->flip ? to - 1 - (k - from) : k];
        stanza *orig = row->stanza ? sm_parse(row->stanza, strlen(row->stanza)) : NULL;
        if (!orig || strcmp(orig->root->name, "message")) {
            log_warn("user %s: archived message %" PRId64 " does not parse: left out", iq->user->bare, row->id);
            if (orig) stanza_free(orig);
            continue;
        }
        stanza *m = stanza_new("message", NS_CLIENT);
        xnode_set_attr(m->root, "to", iq->session->full);
        xnode_set_attr(m->root, "from", iq->user->bare);
        xnode_set_attr(m->root, "id", sm_new_id(s));
        xnode *res = xnode_add_child(m->root, "result", NS_MAM);
        if (q->queryid) xnode_set_attr(res, "queryid", q->queryid);
        xnode_set_attr(res, "id", row->stanza_id);
        xnode *fw = xnode_add_child(res, "forwarded", NS_FORWARD);
        char ts[48];
        format_datetime(row->stamp_us, ts, sizeof ts);
        xnode *d = xnode_add_child(fw, "delay", NS_DELAY);
        xnode_set_attr(d, "stamp", ts);
        xnode_copy_into(fw, orig->root);
        sm_session_send(iq->session, m->root);
        stanza_free(m);
        stanza_free(orig);
    }
}

static void send_fin(query_ctx *q, const mam_row *first, const mam_row *last, long count, long index, int complete)
{
    sm_iq *iq = q->iq;
    stanza *r = sm_iq_result(iq->st->root);
    xnode *fin = xnode_add_child(r->root, "fin", NS_MAM);
    xnode_set_attr(fin, "complete", complete ? "true" : "false");
    if (q->queryid) xnode_set_attr(fin, "queryid", q->queryid);
    xnode *set = xnode_add_child(fin, "set", NS_RSM);
    if (first) {
        xnode *f = xnode_add_text_child(set, "first", NULL, first->stanza_id);
        char idx[24];
        snprintf(idx, sizeof idx, "%ld", index);
        xnode_set_attr(f, "index", idx);
        xnode_add_text_child(set, "last", NULL, last->stanza_id);
    }
    char cnt[24];
    snprintf(cnt, sizeof cnt, "%ld", count);
    xnode_add_text_child(set, "count", NULL, cnt);
    query_free(q);
    finish_reply(iq, r);
}

static void on_page(void *ud, storage_status st, const mam_row *rows, size_t n, long total, long index)
{
    query_ctx *q = ud;
    if (st != STORAGE_OK) {
        log_warn("user %s: archive query failed: %s", q->iq->user->bare, storage_status_string(st));
        sm_iq *iq = q->iq;
        query_free(q);
        finish_error(iq, "internal-server-error");
        return;
    }
    /* One row more than the page was asked for, to know if it is complete. */
    int complete = n <= q->max;
    size_t from = 0, to = n;
    if (!complete) {
        if (q->backward) {
            from = n - q->max;
            index += (long)from;
        } else {
            to = q->max;
        }
    }
    send_results(q, rows, from, to);
    send_fin(q, to > from ? &rows[from] : NULL, to > from ? &rows[to - 1] : NULL, total, index, complete);
}

static void on_ids(void *ud, storage_status st, const mam_row *rows, size_t n)
{
    query_ctx *q = ud;
    sm_iq *iq = q->iq;
    if (st != STORAGE_OK) {
        log_warn("user %s: archive lookup failed: %s", iq->user->bare, storage_status_string(st));
        query_free(q);
        finish_error(iq, "internal-server-error");
        return;
    }
    if (q->has_ids) {
        if (n != q->nids) {
            query_free(q);
            finish_error(iq, "item-not-found");
            return;
        }
        send_results(q, rows, 0, n);
        send_fin(q, n ? &rows[0] : NULL, n ? &rows[n - 1] : NULL, (long)n, 0, 1);
        return;
    }
    mam_pos pos[MAX_QUERY_IDS];
    for (int k = 0; k < MAX_QUERY_IDS; k++) {
        if (!q->cursor[k]) continue;
        size_t i = 0;
        while (i < n && strcmp(rows[i].stanza_id, q->cursor[k])) i++;
        if (i == n) {
            query_free(q);
            finish_error(iq, "item-not-found");
            return;
        }
        pos[k] = (mam_pos){rows[i].stamp_us, rows[i].id};
    }
    if (q->cursor[C_AFTER_ID] && pos_cmp(pos[C_AFTER_ID], q->set_lo) > 0) q->set_lo = pos[C_AFTER_ID];
    if (q->cursor[C_BEFORE_ID] && pos_cmp(pos[C_BEFORE_ID], q->set_hi) < 0) q->set_hi = pos[C_BEFORE_ID];
    mam_page_query pq;
    memset(&pq, 0, sizeof pq);
    pq.with_bare = q->with_bare;
    pq.with_resource = q->with_resource;
    pq.set_lo = pq.page_lo = q->set_lo;
    pq.set_hi = pq.page_hi = q->set_hi;
    if (q->cursor[C_RSM_AFTER] && pos_cmp(pos[C_RSM_AFTER], pq.page_lo) > 0) pq.page_lo = pos[C_RSM_AFTER];
    if (q->cursor[C_RSM_BEFORE] && pos_cmp(pos[C_RSM_BEFORE], pq.page_hi) < 0) pq.page_hi = pos[C_RSM_BEFORE];
    pq.limit = q->max + 1;
    pq.backward = q->backward;
    mam_page(iq->sm->db, iq->user->domain, iq->user->node, &pq, on_page, q);
}

static const char *field_value(const xnode *field)
{
    const char *v = xnode_child_text(field, "value", NULL);
    return v && *v ? v : NULL;
}

static void handle_query(sm_iq *iq)
{
    sm *s = iq->sm;
    sm_user *u = iq->user;
    if (!iq->is_set) {
        query_form(iq);
        return;
    }
    if (!iq->session) {
        /* Results go to the requesting resource, which must be a session here. */
        sm_iq_error(iq, "not-acceptable", NULL);
        return;
    }
    query_ctx *q = xcalloc(1, sizeof *q);
    q->iq = iq;
    q->queryid = xnode_attr(iq->payload, "queryid");
    q->set_lo = (mam_pos){MAM_US_MIN, 0};
    q->set_hi = (mam_pos){MAM_US_MAX, INT64_MAX};
    q->max = g.default_page;
    const char *bad = NULL;
    xnode *x = xnode_child(iq->payload, "x", NS_XDATA);
    for (xnode *f = x ? xnode_child(x, "field", NULL) : NULL; f && !bad; f = xnode_next(f, "field", NULL)) {
        const char *var = xnode_attr(f, "var");
        const char *v = field_value(f);
        if (!var) {
            bad = "bad-request";
        } else if (!strcmp(var, "FORM_TYPE")) {
            if (!v || strcmp(v, NS_MAM)) bad = "bad-request";
        } else if (!strcmp(var, "with")) {
            if (!v) continue;
            if (jid_parse(&q->with, v) < 0) {
                bad = "jid-malformed";
                continue;
            }
            q->with_bare = q->with.bare;
            q->with_resource = q->with.resource;
        } else if (!strcmp(var, "start") || !strcmp(var, "end")) {
            if (!v) continue;
            int64_t us;
            if (parse_datetime(v, &us) < 0) {
                bad = "bad-request";
                continue;
            }
            if (us < MAM_US_MIN) us = MAM_US_MIN;
            if (us > MAM_US_MAX) us = MAM_US_MAX;
            if (var[0] == 's') q->set_lo = (mam_pos){us, 0};
            else q->set_hi = (mam_pos){us, INT64_MAX};
        } else if (!strcmp(var, "after-id")) {
            q->cursor[C_AFTER_ID] = v;
        } else if (!strcmp(var, "before-id")) {
            q->cursor[C_BEFORE_ID] = v;
        } else if (!strcmp(var, "ids")) {
            size_t nv = xnode_count_elements(f);
            free(q->idbuf);
            q->idbuf = xcalloc(nv, sizeof *q->idbuf);
            q->nids = 0;
            for (xnode *val = xnode_child(f, "value", NULL); val; val = xnode_next(val, "value", NULL)) {
                const char *t = xnode_text(val);
                if (!t || !*t) continue;
                int dup = 0;
                for (size_t i = 0; i < q->nids; i++)
                    if (!strcmp(q->idbuf[i], t)) dup = 1;
                if (!dup) q->idbuf[q->nids++] = t;
            }
            q->ids = q->idbuf;
            q->has_ids = q->nids > 0;
        } else if (!strcmp(var, "include-groupchat")) {
            /* groupchat messages are never in a user's archive here */
        } else {
            bad = "bad-request";    /* a filter we do not know: refuse rather than ignore it */
        }
    }
    xnode *set = xnode_child(iq->payload, "set", NS_RSM);
    if (!bad && set) {
        const char *mx = xnode_child_text(set, "max", NULL);
        if (mx) {
            char *end = NULL;
            long long m = strtoll(mx, &end, 10);
            if (end == mx || *end || m < 0) bad = "bad-request";
            else q->max = m > (long long)g.max_page ? g.max_page : (unsigned)m;
        }
        xnode *after = xnode_child(set, "after", NULL);
        xnode *before = xnode_child(set, "before", NULL);
        if (xnode_child(set, "index", NULL)) bad = "feature-not-implemented";
        if (after) {
            const char *t = xnode_text(after);
            if (!t || !*t) bad = "bad-request";
            else q->cursor[C_RSM_AFTER] = t;
        }
        if (before) {
            const char *t = xnode_text(before);
            q->backward = 1;
            if (t && *t) q->cursor[C_RSM_BEFORE] = t;
        }
        if (after && before) bad = "bad-request";   /* RSM does not define it (XEP-0313 §4.3) */
    }
    q->flip = xnode_child(iq->payload, "flip-page", NS_MAM) != NULL;
    if (!bad && q->has_ids && q->nids > g.max_page) bad = "policy-violation";
    if (bad) {
        query_free(q);
        sm_iq_error(iq, bad, NULL);
        return;
    }
    sm_user_hold(u);
    if (q->has_ids) {
        mam_lookup(s->db, u->domain, u->node, q->ids, q->nids, on_ids, q);
        return;
    }
    const char *ids[MAX_QUERY_IDS];
    size_t n = 0;
    for (int k = 0; k < MAX_QUERY_IDS; k++)
        if (q->cursor[k]) ids[n++] = q->cursor[k];
    if (n) {
        mam_lookup(s->db, u->domain, u->node, ids, n, on_ids, q);
        return;
    }
    on_ids(q, STORAGE_OK, NULL, 0);
}

static void mam_iq(sm_iq *iq)
{
    if (!own_request(iq)) {
        sm_iq_error(iq, "forbidden", NULL);
        return;
    }
    if (!iq->sm->db) {
        sm_iq_error(iq, "internal-server-error", "wait");
        return;
    }
    const char *name = iq->payload->name;
    if (!strcmp(name, "query")) {
        handle_query(iq);
    } else if (!strcmp(name, "prefs")) {
        handle_prefs(iq);
    } else if (!strcmp(name, "metadata") && !iq->is_set) {
        sm_user_hold(iq->user);
        mam_bounds(iq->sm->db, iq->user->domain, iq->user->node, on_metadata, iq);
    } else {
        sm_iq_error(iq, "bad-request", NULL);
    }
}

/* ---- retention ---- */

static void on_expired(void *ud, storage_status st, long deleted)
{
    (void)ud;
    g.expiring = 0;
    if (!g.s || g.s->stopping || !g.s->db) return;
    if (st != STORAGE_OK) {
        log_warn("archive: deleting messages older than %u days failed: %s", g.max_days, storage_status_string(st));
        return;
    }
    if (deleted) log_info("archive: %ld messages older than %u days deleted", deleted, g.max_days);
    if (deleted >= EXPIRE_BATCH) {
        g.expiring = 1;
        mam_expire(g.s->db, g.max_days, EXPIRE_BATCH, on_expired, NULL);
    }
}

static void on_trimmed(void *ud, storage_status st, long deleted)
{
    char *bare = ud;
    if (st != STORAGE_OK && !(g.s && g.s->stopping))
        log_warn("user %s: trimming the archive failed: %s", bare, storage_status_string(st));
    else if (deleted > 0)
        log_info("user %s: %ld archived messages over the limit of %u deleted", bare, deleted, g.max_messages);
    free(bare);
}

static void on_prune_timer(uv_timer_t *t)
{
    (void)t;
    sm *s = g.s;
    if (!s || s->stopping || !s->db) return;
    if (g.max_days && !g.expiring) {
        g.expiring = 1;
        mam_expire(s->db, g.max_days, EXPIRE_BATCH, on_expired, NULL);
    }
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&g.dirty, &pos, &key, &val)) {
        char *bare = xstrdup(key);
        char *at = strchr(bare, '@');
        if (!at) {
            free(bare);
            continue;
        }
        *at = 0;
        char *node = xstrdup(bare);
        char *domain = xstrdup(at + 1);
        *at = '@';
        mam_trim_user(s->db, domain, node, g.max_messages, on_trimmed, bare);
        free(node);
        free(domain);
    }
    strmap_free(&g.dirty);
    memset(&g.dirty, 0, sizeof g.dirty);
}

/* ---- life cycle ---- */

static unsigned cfg_uint(const xnode *mc, const char *path, long long def, long long max)
{
    long long v = config_node_int(mc, path, def);
    if (v < 0) v = 0;
    if (v > max) v = max;
    return (unsigned)v;
}

static int mam_init(sm *s)
{
    memset(&g, 0, sizeof g);
    g.s = s;
    const xnode *mc = sm_module_config(s, "mam");
    const char *mode = config_node_str(mc, "default-mode", "always");
    int m = mam_mode_parse(mode);
    if (m < 0) {
        log_error("modules/mam/default-mode: '%s' is not always, never or roster", mode);
        return -1;
    }
    g.default_mode = (mam_mode)m;
    g.max_page = cfg_uint(mc, "max-page-size", 250, 10000);
    if (!g.max_page) g.max_page = 1;
    g.default_page = cfg_uint(mc, "default-page-size", 50, 10000);
    if (!g.default_page) g.default_page = 1;
    if (g.default_page > g.max_page) g.default_page = g.max_page;
    g.max_days = cfg_uint(mc, "max-days", 0, 1000000);
    g.max_messages = cfg_uint(mc, "max-messages-per-user", 0, 1000000000);
    g.prune_interval = cfg_uint(mc, "prune-interval", 3600, 7 * 86400);
    if (!g.prune_interval) g.prune_interval = 1;
    if ((g.max_days || g.max_messages) && s->loop) {
        uv_timer_init(s->loop, &g.timer);
        uv_unref((uv_handle_t *)&g.timer);
        uint64_t ms = (uint64_t)g.prune_interval * 1000;
        uv_timer_start(&g.timer, on_prune_timer, ms, ms);
        g.timer_on = 1;
    }
    log_info("mam: default mode %s, pages of %u (at most %u), retention %u days / %u messages (0: unlimited)",
             mam_mode_name(g.default_mode), g.default_page, g.max_page, g.max_days, g.max_messages);
    return 0;
}

static void mam_shutdown(sm *s)
{
    (void)s;
    if (g.timer_on) {
        uv_timer_stop(&g.timer);
        uv_close((uv_handle_t *)&g.timer, NULL);
        g.timer_on = 0;
    }
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&g.prefs, &pos, &key, &val)) cache_free(val);
    strmap_free(&g.prefs);
    strmap_free(&g.dirty);
    g.s = NULL;
}

static const sm_iq_handler mam_iqs[] = {
    {NS_MAM, SM_IQ_ACCOUNT, mam_iq},
    {NULL, 0, NULL},
};

static const char *const mam_features[] = {NS_MAM, NS_MAM_EXT, NULL};

static const config_key mam_keys[] = {
    {"default-mode", CFG_STRING, 0, "archive by default: always, roster or never (default always)"},
    {"default-page-size", CFG_INT, 0, "results per page when the client sets no <max/> (default 50)"},
    {"max-page-size", CFG_INT, 0, "most results in one page (default 250)"},
    {"max-days", CFG_INT, 0, "delete archived messages older than this many days (default 0: keep)"},
    {"max-messages-per-user", CFG_INT, 0, "keep at most this many messages per user, dropping the oldest (default 0: no limit)"},
    {"prune-interval", CFG_INT, 0, "seconds between retention passes (default 3600)"},
    {NULL, 0, 0, NULL},
};

const sm_module mod_mam = {
    .name = "mam",
    .iqs = mam_iqs,
    .account_features = mam_features,
    .init = mam_init,
    .shutdown = mam_shutdown,
    .user_loading = mam_user_loading,
    .user_unloading = mam_user_unloading,
    .out_stanza = mam_out,
    .in_stanza = mam_in,
    .config_keys = mam_keys,
};
