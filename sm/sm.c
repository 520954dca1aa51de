/* The sm core: the router connection, session control (docs/sessions.md),
 * users and their queues, and routing (RFC 6121 §8). See sm.h. */
#include "sm/sm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/stanza_error.h"
#include "common/xml_stream.h"
#include "common/xml_write.h"
#include "sm/admin.h"
#include "sm/module.h"
#include "storage/accounts.h"

typedef enum { W_START = 0, W_END, W_OUT, W_IN, W_REMOVED } work_kind;

struct sm_work {
    sm_work *next;
    work_kind kind;
    stanza *st;             /* W_OUT, W_IN */
    uint64_t sess_id;       /* W_END, W_OUT: the session; W_IN: a session to skip (0: none) */
    int returned;           /* W_IN: handed back by c2s */
    char *c2s, *c2s_id, *full;  /* W_START */
    const char *reason;     /* W_END: reason to tell c2s (NULL: c2s ended it) */
    int park;               /* W_END: keep the unacknowledged copies for the c2s (router lost) */
    int custody;            /* W_START: the c2s reports acknowledgements (acks='true') */
    sm_confirm *confirm;    /* W_OUT, W_IN: the client stanza this work carries */
};

static void user_run(sm_user *u);
static void sm_park_tick(uv_timer_t *t);
static void process_in(sm_user *u, stanza *st, int returned, sm_session *skip);
static void handed_back(sm *s, stanza *st, sm_session *sess);
static sm_session *session_find(sm *s, const char *sm_id);
static void send_control(sm *s, const char *c2s, const char *domain, const char *c2s_id, const char *sm_id,
                         const char *action, const char *jid, const char *attr, const char *value);
static void sm_send_confirmations(uv_check_t *h);
/* messages to remote domains (at the end of this file) */
static int remote_send_held(sm *s, stanza *st, const char *to_domain);
static int remote_route(sm *s, stanza *env);
static void remote_name(sm *s, const char *name, int online);
static void remote_free(sm *s);

time_t sm_now(void) { return time(NULL); }

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

/* ---- helpers ---- */

int sm_is_local(const sm *s, const char *domain)
{
    if (!domain) return 0;
    for (size_t i = 0; i < s->nhosts; i++)
        if (!strcmp(s->hosts[i], domain)) return 1;
    return 0;
}

const char *sm_new_id(sm *s)
{
    static char id[32];
    id[0] = 's';
    id[1] = 'm';
    u64_to_dec(id + 2, ++s->next_id);
    return id;
}

void sm_stanza_set_ns(xnode *el, const char *from_ns, const char *to_ns)
{
    if (!el || el->type != XNODE_ELEMENT) return;
    if (el->ns && !strcmp(el->ns, from_ns)) el->ns = to_ns;
    for (xnode *c = el->children; c; c = c->next) sm_stanza_set_ns(c, from_ns, to_ns);
    if (el->doc) stanza_touch(el->doc);
}

stanza *sm_parse(const char *data, size_t len)
{
    xml_limits lim;
    xml_limits_default(&lim);
    lim.max_stanza_bytes = len + 1024;
    lim.max_depth = 64;
    xml_err err;
    char text[128];
    return xml_parse_document(data, len, &lim, &err, text, sizeof text);
}

static int is_stanza(const xnode *el)
{
    return el && el->type == XNODE_ELEMENT &&
           (!strcmp(el->name, "message") || !strcmp(el->name, "presence") || !strcmp(el->name, "iq"));
}

stanza *sm_iq_result(const xnode *iq)
{
    stanza *r = stanza_new("iq", NS_CLIENT);
    xnode_set_attr(r->root, "type", "result");
    const char *id = xnode_attr(iq, "id");
    if (id) xnode_set_attr(r->root, "id", id);
    const char *from = xnode_attr(iq, "from"), *to = xnode_attr(iq, "to");
    if (from) xnode_set_attr(r->root, "to", from);
    if (to) xnode_set_attr(r->root, "from", to);
    return r;
}

/* ---- sending ---- */

static void send_route(sm *s, const char *to, const char *from, const char *c2s_id, const char *sm_id,
                       uint32_t seq, const char *inner_raw, const xnode *inner)
{
    buf o = BUF_INIT;
    buf_append_str(&o, "<route xmlns='" NS_SB_ROUTER "' to='");
    xml_escape_attr(&o, to, strlen(to));
    buf_append_str(&o, "' from='");
    xml_escape_attr(&o, from, strlen(from));
    buf_append_str(&o, "' c2s-id='");
    xml_escape_attr(&o, c2s_id, strlen(c2s_id));
    buf_append_str(&o, "'");
    if (sm_id) {
        buf_append_str(&o, " sm-id='");
        xml_escape_attr(&o, sm_id, strlen(sm_id));
        buf_append_str(&o, "'");
    }
    if (seq) {
        char v[24];
        size_t n = u64_to_dec(v, seq);
        buf_append_str(&o, " seq='");
        buf_append(&o, v, n);
        buf_append_str(&o, "'");
    }
    buf_append_str(&o, ">");
    if (inner_raw) buf_append_str(&o, inner_raw);
    if (inner) xml_write(&o, inner, NS_SB_ROUTER);
    buf_append_str(&o, "</route>");
    if (component_send_raw(s->comp, o.data, o.len) < 0)
        log_info("router not connected: dropped a route to %s (c2s-id %s)", to, c2s_id);
    buf_free(&o);
}

static const char *session_domain(const sm_session *sess) { return sess->user->domain; }

/* ---- delivery guarantees (docs/sessions.md §7) ---- */

/* a <= b in sequence-number arithmetic (32 bits, wrapping). */
static int seq_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }

/* The messages the sm answers for until the client acknowledges them: what
 * would go to other resources or offline storage if it came back (RFC 6121
 * §8.5.3.2.1), with something to read (not carbons or archive results). */
static int is_custody_message(const xnode *el)
{
    if (strcmp(el->name, "message")) return 0;
    const char *t = xnode_attr(el, "type");
    if (t && strcmp(t, "chat") && strcmp(t, "normal")) return 0;
    return xnode_child(el, "body", NS_CLIENT) != NULL;
}

static void copies_free(sm_copy *c)
{
    while (c) {
        sm_copy *n = c->next;
        free(c);
        c = n;
    }
}

/* Drop the copies the client acknowledged (seq <= acked); returns the new head. */
static sm_copy *copies_trim(sm_copy *c, uint32_t acked, size_t *n)
{
    while (c && seq_le(c->seq, acked)) {
        sm_copy *next = c->next;
        free(c);
        c = next;
        if (n) (*n)--;
    }
    return c;
}

static void session_trim(sm_session *sess, uint32_t acked)
{
    sess->copies = copies_trim(sess->copies, acked, &sess->ncopies);
    if (!sess->copies) sess->copies_tail = &sess->copies;
}

/* Deliver again, as a hand-back: other resources or offline storage. */
static void redeliver_copies(sm *s, sm_copy *c, const char *why)
{
    size_t n = 0;
    while (c) {
        sm_copy *next = c->next;
        stanza *st = s->stopping ? NULL : sm_parse(c->data, c->len);
        if (st) {
            handed_back(s, st, NULL);
            n++;
        }
        free(c);
        c = next;
    }
    if (n) log_info("%zu unacknowledged messages delivered again (%s)", n, why);
}

static int sm_id_is_mine(const sm *s, const char *sm_id)
{
    if (!sm_id) return 0;
    uint64_t v = strtoull(sm_id, NULL, 10);
    return v && (v & ~(uint64_t)0xffffffff) == s->session_id_base &&
           (v & 0xffffffff) <= (s->next_session_id & 0xffffffff);
}

static void confirm_due(sm *s, sm_session *sess)
{
    if (sess->handled_due) return;
    sess->handled_due = 1;
    if (s->nconfirm_due == s->capconfirm_due) {
        size_t cap = s->capconfirm_due ? s->capconfirm_due * 2 : 64;
        uint64_t *d = realloc(s->confirm_due, cap * sizeof *d);
        if (!d) abort();
        s->confirm_due = d;
        s->capconfirm_due = cap;
    }
    s->confirm_due[s->nconfirm_due++] = sess->id;
    if (s->handles_on) uv_check_start(&s->confirm_check, sm_send_confirmations);
}

static sm_confirm *confirm_new(sm_session *sess, uint32_t seq)
{
    if (sess->ninflight == sess->capinflight) {
        size_t cap = sess->capinflight ? sess->capinflight * 2 : 8;
        sm_inflight *f = realloc(sess->inflight, cap * sizeof *f);
        if (!f) abort();
        sess->inflight = f;
        sess->capinflight = cap;
    }
    sess->inflight[sess->ninflight].seq = seq;
    sess->inflight[sess->ninflight].done = 0;
    sess->ninflight++;
    sm_confirm *c = xcalloc(1, sizeof *c);
    c->sess_id = sess->id;
    c->seq = seq;
    c->refs = 1;
    return c;
}

/* One holder of the confirmation is done; the last one confirms it. */
static void confirm_release(sm *s, sm_confirm *c)
{
    if (!c || --c->refs > 0) return;
    char id[24];
    u64_to_dec(id, c->sess_id);
    sm_session *sess = session_find(s, id);
    if (sess) {
        for (size_t i = 0; i < sess->ninflight; i++)
            if (sess->inflight[i].seq == c->seq) {
                sess->inflight[i].done = 1;
                break;
            }
        size_t k = 0;
        while (k < sess->ninflight && sess->inflight[k].done) sess->handled = sess->inflight[k++].seq;
        if (k) {
            memmove(sess->inflight, sess->inflight + k, (sess->ninflight - k) * sizeof *sess->inflight);
            sess->ninflight -= k;
            confirm_due(s, sess);
        }
    }
    free(c);
}

/* Work of the user is done with its confirmation once the user is idle
 * (a storage request it started that holds the queue has completed) and
 * every pipelined write started so far, e.g. an offline store, has
 * committed. */
static void user_defer_confirm(sm_user *u, sm_confirm *c)
{
    if (u->ndone == u->capdone) {
        size_t cap = u->capdone ? u->capdone * 2 : 8;
        sm_deferred *d = realloc(u->done, cap * sizeof *d);
        if (!d) abort();
        u->done = d;
        u->capdone = cap;
    }
    u->done[u->ndone++] = (sm_deferred){c, u->writes_started};
}

/* Every write up to this token has completed. */
static uint64_t writes_completed(const sm_user *u) { return u->nwrites ? u->writes[0] - 1 : u->writes_started; }

/* Release the deferred confirmations that nothing waits for any more, oldest
 * first (their tokens only grow). all: every one (the user is freed). */
static void user_release_confirms_upto(sm_user *u, int all)
{
    if (!u->ndone || (!all && u->busy)) return;
    uint64_t completed = writes_completed(u);
    size_t n = 0;
    while (n < u->ndone && (all || u->done[n].after <= completed)) n++;
    if (!n) return;
    /* confirm_release only marks 'handled' as due: nothing comes back into u->done. */
    for (size_t i = 0; i < n; i++) confirm_release(u->sm, u->done[i].c);
    memmove(u->done, u->done + n, (u->ndone - n) * sizeof *u->done);
    u->ndone -= n;
}

static void user_release_confirms(sm_user *u) { user_release_confirms_upto(u, 0); }

uint64_t sm_user_write_begin(sm_user *u)
{
    if (u->nwrites == u->capwrites) {
        size_t cap = u->capwrites ? u->capwrites * 2 : 8;
        uint64_t *w = realloc(u->writes, cap * sizeof *w);
        if (!w) abort();
        u->writes = w;
        u->capwrites = cap;
    }
    u->writes[u->nwrites++] = ++u->writes_started;
    return u->writes_started;
}

void sm_user_write_end(sm_user *u, uint64_t token)
{
    /* Usually the oldest: the storage completes one user's requests in order. */
    for (size_t i = 0; i < u->nwrites; i++)
        if (u->writes[i] == token) {
            memmove(u->writes + i, u->writes + i + 1, (u->nwrites - i - 1) * sizeof *u->writes);
            u->nwrites--;
            break;
        }
    user_release_confirms(u);
    user_run(u);
}

static void sm_send_confirmations(uv_check_t *h)
{
    sm *s = h->data;
    uv_check_stop(h);
    for (size_t i = 0; i < s->nconfirm_due; i++) {
        char id[24];
        u64_to_dec(id, s->confirm_due[i]);
        sm_session *sess = session_find(s, id);
        if (!sess || !sess->handled_due) continue;
        sess->handled_due = 0;
        if (s->stopping) continue;
        char v[24];
        u64_to_dec(v, sess->handled);
        send_control(s, sess->c2s, session_domain(sess), sess->c2s_id, sess->id_str, "handled", NULL, "seq", v);
    }
    s->nconfirm_due = 0;
}

void sm_session_send(sm_session *sess, const xnode *el)
{
    uint32_t seq = 0;
    if (sess->custody && is_custody_message(el)) {
        seq = ++sess->out_seq;
        if (!seq) seq = ++sess->out_seq;   /* 0 means "not numbered" */
        buf b = BUF_INIT;
        xml_write(&b, el, "");
        sm_copy *c = malloc(sizeof *c + b.len);
        if (!c) abort();
        c->next = NULL;
        c->seq = seq;
        c->len = b.len;
        memcpy(c->data, b.data, b.len);
        buf_free(&b);
        if (!sess->copies_tail) sess->copies_tail = &sess->copies;
        *sess->copies_tail = c;
        sess->copies_tail = &c->next;
        sess->ncopies++;
    }
    send_route(sess->user->sm, sess->c2s, session_domain(sess), sess->c2s_id, sess->id_str, seq, NULL, el);
}

static void send_control(sm *s, const char *c2s, const char *domain, const char *c2s_id, const char *sm_id,
                         const char *action, const char *jid, const char *attr, const char *value)
{
    buf in = BUF_INIT;
    buf_append_str(&in, "<session xmlns='" NS_SB_SESSION "' action='");
    buf_append_str(&in, action);
    buf_append_str(&in, "'");
    if (jid) {
        buf_append_str(&in, " jid='");
        xml_escape_attr(&in, jid, strlen(jid));
        buf_append_str(&in, "'");
    }
    if (attr && value) {
        buf_append_str(&in, " ");
        buf_append_str(&in, attr);
        buf_append_str(&in, "='");
        xml_escape_attr(&in, value, strlen(value));
        buf_append_str(&in, "'");
    }
    buf_append_str(&in, "/>");
    send_route(s, c2s, domain, c2s_id, sm_id, 0, buf_cstr(&in), NULL);
    buf_free(&in);
}

void sm_session_end(sm_session *sess, const char *reason)
{
    send_control(sess->user->sm, sess->c2s, session_domain(sess), sess->c2s_id, sess->id_str, "end", NULL,
                 "reason", reason);
}

void sm_bounce(sm *s, stanza *st, const char *condition, const char *type_override, const char *text)
{
    if (stanza_make_error(st, condition, text) < 0) {
        stanza_free(st);
        return;
    }
    if (type_override) {
        xnode *err = xnode_child(st->root, "error", NULL);
        if (err) xnode_set_attr(err, "type", type_override);
    }
    sm_route(s, st);
}

/* ---- modules ---- */

static void mods_session_started(sm *s, sm_session *sess)
{
    for (size_t i = 0; i < s->nmodules; i++)
        if (s->modules[i]->session_started) s->modules[i]->session_started(sess);
}

static void mods_session_ending(sm *s, sm_session *sess)
{
    for (size_t i = 0; i < s->nmodules; i++)
        if (s->modules[i]->session_ending) s->modules[i]->session_ending(sess);
}

void sm_iq_reply(sm_iq *iq, stanza *result)
{
    if (!result) result = sm_iq_result(iq->st->root);
    if (!iq->sm->stopping && iq->session) {
        /* The user's queue is held while an iq of its own session is
         * answered, so the session is still there. */
        sm_session_send(iq->session, result->root);
        stanza_free(result);
    } else {
        sm_route(iq->sm, result);
    }
    stanza_free(iq->st);
    free(iq);
}

void sm_iq_error(sm_iq *iq, const char *condition, const char *type_override)
{
    stanza *st = iq->st;
    iq->st = NULL;
    if (stanza_make_error(st, condition, NULL) < 0) {
        stanza_free(st);
        free(iq);
        return;
    }
    if (type_override) {
        xnode *err = xnode_child(st->root, "error", NULL);
        if (err) xnode_set_attr(err, "type", type_override);
    }
    if (!iq->sm->stopping && iq->session) {
        sm_session_send(iq->session, st->root);
        stanza_free(st);
    } else {
        sm_route(iq->sm, st);
    }
    free(iq);
}

/* An iq get/set for the server or an account: find the module serving the
 * payload's namespace. Takes ownership of st. */
static void dispatch_iq(sm *s, stanza *st, int target, sm_user *u, sm_session *sess)
{
    const char *type = sm_type(st->root);
    if (!type || (strcmp(type, "get") && strcmp(type, "set"))) {
        /* Results and errors for the server or a bare JID: nobody waits for them. */
        stanza_free(st);
        return;
    }
    xnode *payload = xnode_first_element(st->root);
    if (!payload || xnode_next_element(payload)) {
        sm_bounce(s, st, "bad-request", NULL, NULL);
        return;
    }
    for (size_t i = 0; i < s->nmodules; i++) {
        const sm_iq_handler *h = s->modules[i]->iqs;
        for (; h && h->ns; h++) {
            if (!(h->targets & target) || strcmp(h->ns, payload->ns ? payload->ns : "")) continue;
            sm_iq *iq = xcalloc(1, sizeof *iq);
            iq->sm = s;
            iq->st = st;
            iq->payload = payload;
            iq->is_set = !strcmp(type, "set");
            iq->target = target;
            iq->user = u;
            iq->session = sess;
            iq->from = xnode_attr(st->root, "from");
            h->handle(iq);
            return;
        }
    }
    log_debug("iq %s in '%s' for %s: no module serves it", type, payload->ns ? payload->ns : "",
              u ? u->bare : "the server");
    sm_bounce(s, st, "service-unavailable", NULL, NULL);
}

/* ---- users ---- */

sm_user *sm_user_find(sm *s, const char *bare) { return strmap_get(&s->users, bare); }

sm_session *sm_user_session(sm_user *u, const char *resource)
{
    if (!resource) return NULL;
    for (sm_session *x = u->sessions; x; x = x->next)
        if (!strcmp(x->resource, resource)) return x;
    return NULL;
}

sm_item *sm_roster_item(sm_user *u, const char *contact) { return contact ? strmap_get(&u->roster, contact) : NULL; }

void sm_user_hold(sm_user *u) { u->busy++; }

void sm_user_release(sm_user *u)
{
    if (u->busy > 0) u->busy--;
    user_run(u);
}

static void work_free(sm *s, sm_work *w)
{
    if (!w) return;
    confirm_release(s, w->confirm);
    if (w->st) stanza_free(w->st);
    free(w->c2s);
    free(w->c2s_id);
    free(w->full);
    free(w);
}

static void mods_user_unloading(sm_user *u)
{
    sm *s = u->sm;
    for (size_t i = 0; i < s->nmodules; i++)
        if (s->modules[i]->user_unloading) s->modules[i]->user_unloading(u);
}

static void user_free(sm_user *u)
{
    mods_user_unloading(u);
    sm_work *w = u->qhead;
    while (w) {
        sm_work *n = w->next;
        work_free(u->sm, w);
        w = n;
    }
    u->busy = 0;
    user_release_confirms_upto(u, 1);
    free(u->done);
    free(u->writes);
    roster_clear(u);
    strmap_free(&u->roster);
    free(u->bare);
    free(u->node);
    free(u->domain);
    free(u);
}

static void user_maybe_free(sm_user *u)
{
    if (u->sessions || u->qhead || u->busy || u->nwrites || u->running || u->state == USER_LOADING) return;
    strmap_del(&u->sm->users, u->bare);
    log_debug("user %s unloaded", u->bare);
    user_free(u);
}

static void load_done(sm_user *u)
{
    if (--u->load_pending > 0) return;
    if (u->load_exists == STORAGE_NOT_FOUND || u->load_roster == STORAGE_NOT_FOUND ||
        u->load_modules == STORAGE_NOT_FOUND) {
        u->state = USER_MISSING;
        roster_clear(u);
    } else if (u->load_exists != STORAGE_OK || u->load_roster != STORAGE_OK || u->load_modules != STORAGE_OK) {
        log_warn("user %s: loading failed (%s / %s / %s)", u->bare, storage_status_string(u->load_exists),
                 storage_status_string(u->load_roster), storage_status_string(u->load_modules));
        u->state = USER_FAILED;
        roster_clear(u);
    } else {
        u->state = USER_READY;
        log_debug("user %s loaded: %zu roster items, version %" PRId64, u->bare, strmap_count(&u->roster),
                  u->roster_version);
    }
    sm_user_release(u);
}

void sm_user_load_begin(sm_user *u) { u->load_pending++; }

void sm_user_load_end(sm_user *u, storage_status st)
{
    if (st != STORAGE_OK && u->load_modules == STORAGE_OK) u->load_modules = st;
    load_done(u);
}

static void on_exists(void *ud, storage_status st)
{
    sm_user *u = ud;
    u->load_exists = st;
    load_done(u);
}

static void on_roster_loaded(void *ud, storage_status st, const roster_row *rows, size_t n, int64_t version)
{
    sm_user *u = ud;
    u->load_roster = st;
    if (st == STORAGE_OK) roster_load_rows(u, rows, n, version);
    load_done(u);
}

/* The user in memory, loading it if needed (create: 0 = only if present). */
static sm_user *user_get(sm *s, const char *node, const char *domain, int create)
{
    char bare[2 * JID_PART_MAX + 4];
    /* Parts of a parsed JID fit (JID_PART_MAX each); clamped all the same. */
    size_t ln = strlen(node), ld = strlen(domain);
    if (ln > JID_PART_MAX) ln = JID_PART_MAX;
    if (ld > JID_PART_MAX) ld = JID_PART_MAX;
    memcpy(bare, node, ln);
    bare[ln] = '@';
    memcpy(bare + ln + 1, domain, ld);
    bare[ln + 1 + ld] = 0;
    sm_user *u = strmap_get(&s->users, bare);
    if (u || !create || s->stopping) return u;
    u = xcalloc(1, sizeof *u);
    u->sm = s;
    u->bare = xstrdup(bare);
    u->node = xstrdup(node);
    u->domain = xstrdup(domain);
    u->state = USER_LOADING;
    u->busy = 1;            /* the load */
    u->load_pending = 2;
    strmap_put(&s->users, u->bare, u);
    account_exists(s->db, domain, node, on_exists, u);
    roster_load(s->db, domain, node, on_roster_loaded, u);
    for (size_t i = 0; i < s->nmodules; i++)
        if (s->modules[i]->user_loading) s->modules[i]->user_loading(u);
    return u;
}

static void reject_work(sm *s, sm_work *w, const char *condition)
{
    if (w->kind == W_START) {
        char *at = strchr(w->full, '@');
        const char *domain = at ? at + 1 : w->full;
        char dom[JID_PART_MAX + 1];
        snprintf(dom, sizeof dom, "%.*s", (int)strcspn(domain, "/"), domain);
        send_control(s, w->c2s, dom, w->c2s_id, NULL, "failed", w->full, "condition", condition);
    } else if (w->kind == W_IN && w->st && strcmp(w->st->root->name, "presence")) {
        stanza *st = w->st;
        w->st = NULL;
        sm_bounce(s, st, condition, "wait", NULL);
    }
    work_free(s, w);
}

static void user_enqueue(sm_user *u, sm_work *w)
{
    sm_confirm *cur = u->sm->cur_confirm;
    if (w->kind == W_IN && cur && !w->confirm) {
        /* A client's stanza reaches this user: confirmed when it is handled here. */
        w->confirm = cur;
        cur->refs++;
    }
    /* Stanzas being stored count as waiting: they are still in the sm's care. */
    if (u->qlen + u->nwrites >= u->sm->limits.max_queue && w->kind != W_END && w->kind != W_REMOVED) {
        log_warn("user %s: %zu stanzas waiting, %zu being stored; refusing more", u->bare, u->qlen, u->nwrites);
        reject_work(u->sm, w, "resource-constraint");
        return;
    }
    if (u->qtail) u->qtail->next = w;
    else u->qhead = w;
    u->qtail = w;
    u->qlen++;
    user_run(u);
}

static sm_work *work_new(work_kind k)
{
    sm_work *w = xcalloc(1, sizeof *w);
    w->kind = k;
    return w;
}

/* ---- sessions ---- */

static sm_session *session_find(sm *s, const char *sm_id) { return sm_id ? strmap_get(&s->sessions, sm_id) : NULL; }

/* Keep the copies of a session ended because the router was lost: its c2s
 * may be alive and say, once back, what the client acknowledged. */
static void park_copies(sm *s, sm_session *sess)
{
    sm_parked *p = xcalloc(1, sizeof *p);
    p->c2s = xstrdup(sess->c2s);
    p->copies = sess->copies;
    p->deadline = uv_now(s->loop) + (uint64_t)s->limits.park_timeout_s * 1000;
    sm_parked *old = strmap_put(&s->parked, sess->id_str, p);
    if (old) {
        copies_free(old->copies);
        free(old->c2s);
        free(old);
    }
    log_info("session %s: %zu unacknowledged messages wait %u s for %s", sess->id_str, sess->ncopies,
             s->limits.park_timeout_s, sess->c2s);
    if (s->handles_on && !uv_is_active((uv_handle_t *)&s->park_timer))
        uv_timer_start(&s->park_timer, sm_park_tick, 1000, 1000);
}

static void parked_free(sm_parked *p)
{
    copies_free(p->copies);
    free(p->c2s);
    free(p);
}

/* Parked copies go to delivery again: those of one session (sm_id), of one
 * c2s (c2s), whose time is over (now), or all. */
static void unpark(sm *s, const char *sm_id, const char *c2s, uint64_t now, const char *why)
{
    if (sm_id) {
        sm_parked *p = strmap_del(&s->parked, sm_id);
        if (p) {
            redeliver_copies(s, p->copies, why);
            p->copies = NULL;
            parked_free(p);
        }
        return;
    }
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&s->parked, &pos, &key, &val)) {
        sm_parked *p = val;
        if (c2s && strcmp(p->c2s, c2s)) continue;
        if (now && p->deadline > now) continue;
        strmap_del(&s->parked, key);
        redeliver_copies(s, p->copies, why);
        p->copies = NULL;
        parked_free(p);
    }
}

static void sm_park_tick(uv_timer_t *t)
{
    sm *s = t->data;
    unpark(s, NULL, NULL, uv_now(s->loop), "their c2s did not come back in time");
    if (!strmap_count(&s->parked)) uv_timer_stop(t);
}

static void session_destroy(sm_session *sess, const char *reason, int park)
{
    sm_user *u = sess->user;
    sm *s = u->sm;
    log_info("session %s (%s on %s/%s) ended%s%s", sess->id_str, sess->full, sess->c2s, sess->c2s_id,
             reason ? ": " : "", reason ? reason : "");
    mods_session_ending(s, sess);
    if (reason) sm_session_end(sess, reason);
    if (sess->copies) {
        if (park && s->limits.park_timeout_s && !s->stopping) park_copies(s, sess);
        else redeliver_copies(s, sess->copies, "the session ended");
        sess->copies = NULL;
    }
    free(sess->inflight);
    for (sm_session **pp = &u->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == sess) {
            *pp = sess->next;
            break;
        }
    }
    u->nsessions--;
    strmap_del(&s->sessions, sess->id_str);
    if (sess->presence) stanza_free(sess->presence);
    strmap_free(&sess->directed);
    free(sess->c2s);
    free(sess->c2s_id);
    free(sess->full);
    free(sess);
}

static void do_start(sm_user *u, sm_work *w)
{
    sm *s = u->sm;
    const char *slash = strchr(w->full, '/');
    if (u->state == USER_MISSING || u->state == USER_FAILED) {
        const char *cond = u->state == USER_MISSING ? "not-authorized" : "internal-server-error";
        log_notice("session for %s on %s/%s refused: %s", w->full, w->c2s, w->c2s_id, cond);
        send_control(s, w->c2s, u->domain, w->c2s_id, NULL, "failed", w->full, "condition", cond);
        return;
    }
    sm_session *old = sm_user_session(u, slash + 1);
    if (old) session_destroy(old, "conflict", 0);
    if (s->limits.max_sessions && u->nsessions >= s->limits.max_sessions) {
        log_notice("session for %s refused: %zu sessions already", w->full, u->nsessions);
        send_control(s, w->c2s, u->domain, w->c2s_id, NULL, "failed", w->full, "condition",
                     "resource-constraint");
        return;
    }
    sm_session *sess = xcalloc(1, sizeof *sess);
    sess->id = ++s->next_session_id;
    snprintf(sess->id_str, sizeof sess->id_str, "%" PRIu64, sess->id);
    sess->c2s = w->c2s;
    sess->c2s_id = w->c2s_id;
    sess->full = w->full;
    w->c2s = w->c2s_id = w->full = NULL;
    sess->resource = strchr(sess->full, '/') + 1;
    sess->user = u;
    sess->custody = w->custody;
    sess->copies_tail = &sess->copies;
    sess->next = u->sessions;
    u->sessions = sess;
    u->nsessions++;
    strmap_put(&s->sessions, sess->id_str, sess);
    sess->started = time(NULL);
    log_info("session %s started: %s on %s/%s", sess->id_str, sess->full, sess->c2s, sess->c2s_id);
    send_control(s, sess->c2s, u->domain, sess->c2s_id, sess->id_str, "started", sess->full, NULL, NULL);
    mods_session_started(s, sess);
}

static sm_session *user_session_by_id(sm_user *u, uint64_t id)
{
    for (sm_session *x = u->sessions; x; x = x->next)
        if (x->id == id) return x;
    return NULL;
}

/* A stanza from a session (RFC 6121 §8.5 from the sender's side, and
 * RFC 6120 §10.3 for stanzas without 'to'). */
static void process_out(sm_session *sess, stanza *st)
{
    sm_user *u = sess->user;
    sm *s = u->sm;
    xnode *el = st->root;
    xnode_set_attr(el, "from", sess->full);
    const char *to = xnode_attr(el, "to");
    if (to) {
        char *norm = jid_normalize(to);
        if (!norm) {
            log_info("session %s (%s): malformed 'to' in <%s/>", sess->id_str, sess->full, el->name);
            if (stanza_error_allowed(el) && !stanza_make_error(st, "jid-malformed", NULL))
                sm_session_send(sess, st->root);
            stanza_free(st);
            return;
        }
        if (strcmp(norm, to)) xnode_set_attr(el, "to", norm);
        free(norm);
        to = xnode_attr(el, "to");
    }
    for (size_t i = 0; i < s->nmodules; i++)
        if (s->modules[i]->out_stanza && s->modules[i]->out_stanza(sess, st) == SM_DONE) return;
    if (!strcmp(el->name, "iq")) {
        if (!to || !strcmp(to, u->bare)) {
            dispatch_iq(s, st, SM_IQ_ACCOUNT, u, sess);
            return;
        }
        if (sm_is_local(s, to)) {
            dispatch_iq(s, st, SM_IQ_SERVER, NULL, sess);
            return;
        }
    } else if (!strcmp(el->name, "message")) {
        if (!to) xnode_set_attr(el, "to", u->bare);
    } else if (!to) {
        stanza_free(st);
        return;
    }
    sm_route(s, st);
}

/* A stanza for an account that does not exist (RFC 6121 §8.5.1). */
static void in_missing(sm *s, sm_user *u, stanza *st)
{
    const char *name = st->root->name;
    const char *type = sm_type(st->root);
    if (!strcmp(name, "presence")) {
        /* Subscription requests and presence to nobody are dropped silently;
         * a probe learns that there is no subscription. */
        if (type && !strcmp(type, "probe")) {
            const char *from = xnode_attr(st->root, "from");
            char *fb = from ? jid_normalize_bare(from) : NULL;
            if (fb) {
                stanza *r = stanza_new("presence", NS_CLIENT);
                xnode_set_attr(r->root, "from", u->bare);
                xnode_set_attr(r->root, "to", fb);
                xnode_set_attr(r->root, "type", "unsubscribed");
                sm_route(s, r);
            }
            free(fb);
        }
        stanza_free(st);
        return;
    }
    sm_bounce(s, st, "service-unavailable", NULL, NULL);
}

static void process_work(sm_user *u, sm_work *w)
{
    sm *s = u->sm;
    /* What a client's stanza causes in other users' queues carries its confirmation. */
    sm_confirm *saved = s->cur_confirm;
    s->cur_confirm = w->kind == W_OUT ? w->confirm : NULL;
    switch (w->kind) {
    case W_START:
        do_start(u, w);
        break;
    case W_END: {
        sm_session *sess = user_session_by_id(u, w->sess_id);
        if (sess) session_destroy(sess, w->reason, w->park);
        break;
    }
    case W_REMOVED:
        while (u->sessions) session_destroy(u->sessions, "removed", 0);
        roster_clear(u);
        break;
    case W_OUT: {
        sm_session *sess = user_session_by_id(u, w->sess_id);
        stanza *st = w->st;
        w->st = NULL;
        if (!sess || u->state != USER_READY) {
            stanza_free(st);
            break;
        }
        process_out(sess, st);
        break;
    }
    case W_IN: {
        stanza *st = w->st;
        w->st = NULL;
        if (u->state == USER_MISSING) {
            if (w->returned) stanza_free(st);
            else in_missing(s, u, st);
        } else if (u->state == USER_FAILED) {
            if (!strcmp(st->root->name, "presence")) stanza_free(st);
            else sm_bounce(s, st, "internal-server-error", "wait", "the user's data cannot be loaded now");
        } else {
            process_in(u, st, w->returned, w->sess_id ? user_session_by_id(u, w->sess_id) : NULL);
        }
        break;
    }
    }
    s->cur_confirm = saved;
}

/* Whether w may be processed now. A stanza for the user may pass pipelined
 * writes in flight (it is stored after them, or delivered: nothing of it
 * depends on them), unless the storage is crowded (then each user has one
 * write in flight, which wakes it up when it completes); the session's own
 * work (initial presence fetches the offline messages), starts and ends
 * wait until the writes have committed. */
static int may_run(const sm_user *u, const sm_work *w)
{
    if (u->busy || u->state == USER_LOADING) return 0;
    if (!u->nwrites) return 1;
    return w->kind == W_IN && u->sm->db && !storage_crowded(u->sm->db);
}

static void user_run(sm_user *u)
{
    if (u->running) return;
    u->running = 1;
    while (u->qhead && may_run(u, u->qhead)) {
        sm_work *w = u->qhead;
        u->qhead = w->next;
        if (!u->qhead) u->qtail = NULL;
        u->qlen--;
        w->next = NULL;
        if (u->sm->stopping && w->kind != W_END) {
            work_free(u->sm, w);
            continue;
        }
        process_work(u, w);
        if (w->confirm) {
            user_defer_confirm(u, w->confirm);
            w->confirm = NULL;
        }
        work_free(u->sm, w);
    }
    user_release_confirms(u);
    u->running = 0;
    user_maybe_free(u);
}

/* ---- stanzas for local users ---- */

static void process_in(sm_user *u, stanza *st, int returned, sm_session *skip)
{
    sm *s = u->sm;
    for (size_t i = 0; i < s->nmodules; i++)
        if (s->modules[i]->in_stanza && s->modules[i]->in_stanza(u, st, returned, skip) == SM_DONE) return;
    xnode *el = st->root;
    if (returned || strcmp(el->name, "iq")) {
        stanza_free(st);
        return;
    }
    const char *to = xnode_attr(el, "to");
    const char *slash = to ? strchr(to, '/') : NULL;
    const char *type = sm_type(el);
    int request = type && (!strcmp(type, "get") || !strcmp(type, "set"));
    if (!slash) {
        const char *from = xnode_attr(el, "from");
        char *fb = from ? jid_normalize_bare(from) : NULL;
        sm_session *own = NULL;
        if (fb && !strcmp(fb, u->bare)) own = sm_user_session(u, strchr(from, '/') ? strchr(from, '/') + 1 : NULL);
        free(fb);
        dispatch_iq(s, st, SM_IQ_ACCOUNT, u, own);
        return;
    }
    sm_session *sess = sm_user_session(u, slash + 1);
    if (sess) {
        sm_session_send(sess, el);
        stanza_free(st);
    } else if (request) {
        sm_bounce(s, st, "service-unavailable", NULL, NULL);
    } else {
        stanza_free(st);
    }
}

/* Presence from a local user in memory: the modules' presence_from_user
 * hooks. 1 when one of them consumed it. */
static int presence_from_user(sm *s, stanza *st)
{
    const char *from = xnode_attr(st->root, "from");
    const char *at = from ? strchr(from, '@') : NULL;
    if (!at) return 0;
    char bare[2 * JID_PART_MAX + 4];
    size_t n = strcspn(from, "/");
    if (n >= sizeof bare) return 0;
    memcpy(bare, from, n);
    bare[n] = 0;
    sm_user *u = sm_user_find(s, bare);   /* 'from' of what the sm routes is prepared */
    if (!u || u->state != USER_READY) return 0;
    for (size_t i = 0; i < s->nmodules; i++)
        if (s->modules[i]->presence_from_user && s->modules[i]->presence_from_user(u, st) == SM_DONE) return 1;
    return 0;
}

void sm_route(sm *s, stanza *st)
{
    if (s->stopping) {
        stanza_free(st);
        return;
    }
    xnode *el = st->root;
    const char *to = xnode_attr(el, "to");
    if (!to) {
        stanza_free(st);
        return;
    }
    jid j = JID_INIT;
    if (jid_parse(&j, to) < 0) {
        sm_bounce(s, st, "jid-malformed", NULL, NULL);
        return;
    }
    if (strcmp(j.full, to)) xnode_set_attr(el, "to", j.full);
    if (!strcmp(el->name, "presence") && presence_from_user(s, st)) {
        jid_free(&j);
        return;
    }
    if (!sm_is_local(s, j.domain)) {
        if (remote_send_held(s, st, j.domain)) {
            jid_free(&j);
            return;
        }
        /* Out through the router: s2s, another component, or a bounce. */
        sm_stanza_set_ns(el, NS_CLIENT, NS_COMPONENT);
        if (component_send(s->comp, el) < 0) {
            sm_stanza_set_ns(el, NS_COMPONENT, NS_CLIENT);
            log_notice("router not connected: %s to %s not sent", el->name, j.full);
            sm_bounce(s, st, "remote-server-timeout", NULL, NULL);
        } else {
            stanza_free(st);
        }
        jid_free(&j);
        return;
    }
    if (!j.node) {
        /* To the server itself. */
        if (!strcmp(el->name, "iq") && !j.resource) {
            const char *from = xnode_attr(el, "from");
            sm_session *sess = NULL;
            if (from) {
                jid fj = JID_INIT;
                if (jid_parse(&fj, from) == 0 && fj.node && fj.resource && sm_is_local(s, fj.domain)) {
                    sm_user *fu = sm_user_find(s, fj.bare);
                    if (fu) sess = sm_user_session(fu, fj.resource);
                }
                jid_free(&fj);
            }
            dispatch_iq(s, st, SM_IQ_SERVER, NULL, sess);
        } else if (!strcmp(el->name, "message") || !strcmp(el->name, "iq")) {
            sm_bounce(s, st, "service-unavailable", NULL, NULL);
        } else {
            stanza_free(st);
        }
        jid_free(&j);
        return;
    }
    const char *type = sm_type(el);
    int create = 1;
    if (!strcmp(el->name, "presence") && (!type || !strcmp(type, "unavailable") || !strcmp(type, "error")))
        create = 0; /* presence for someone with no session goes nowhere */
    if (type && !strcmp(type, "error")) create = 0;
    if (!strcmp(el->name, "iq") && type && (!strcmp(type, "result"))) create = 0;
    sm_user *u = user_get(s, j.node, j.domain, create);
    jid_free(&j);
    if (!u) {
        stanza_free(st);
        return;
    }
    sm_work *w = work_new(W_IN);
    w->st = st;
    user_enqueue(u, w);
}

/* Re-deliver a stanza c2s could not deliver (docs/sessions.md §3). */
static void handed_back(sm *s, stanza *st, sm_session *sess)
{
    if (strcmp(st->root->name, "message")) {
        stanza_free(st);    /* presence and iq handed back are dropped */
        return;
    }
    sm_user *u = NULL;
    uint64_t skip = 0;
    if (sess) {
        u = sess->user;
        skip = sess->id;
    } else {
        const char *to = xnode_attr(st->root, "to");
        jid j = JID_INIT;
        if (to && jid_parse(&j, to) == 0 && j.node && sm_is_local(s, j.domain)) u = user_get(s, j.node, j.domain, 1);
        jid_free(&j);
    }
    if (!u) {
        stanza_free(st);
        return;
    }
    sm_work *w = work_new(W_IN);
    w->st = st;
    w->returned = 1;
    w->sess_id = skip;
    user_enqueue(u, w);
}

/* ---- from the router ---- */

static void end_session_later(sm_session *sess, const char *reason, int park)
{
    sm_work *w = work_new(W_END);
    w->sess_id = sess->id;
    w->reason = reason;
    w->park = park;
    user_enqueue(sess->user, w);
}

void sm_session_end_later(sm_session *sess, const char *reason) { end_session_later(sess, reason, 0); }

/* The c2s says its client acknowledged every message up to 'seq'. */
static void copies_acked(sm *s, const char *c2s, const char *c2s_id, const char *sm_id, const char *seqstr)
{
    if (!seqstr || !sm_id) return;
    uint32_t acked = (uint32_t)strtoul(seqstr, NULL, 10);
    sm_session *sess = session_find(s, sm_id);
    if (sess && !strcmp(sess->c2s, c2s) && !strcmp(sess->c2s_id, c2s_id)) {
        session_trim(sess, acked);
        return;
    }
    sm_parked *p = strmap_get(&s->parked, sm_id);
    if (p && !strcmp(p->c2s, c2s)) p->copies = copies_trim(p->copies, acked, NULL);
}

static void handle_session_control(sm *s, const xnode *route, const xnode *ctl)
{
    const char *action = xnode_attr(ctl, "action");
    const char *c2s = xnode_attr(route, "from");
    const char *c2s_id = xnode_attr(route, "c2s-id");
    const char *domain = xnode_attr(route, "to");
    if (!action || !c2s || !c2s_id) {
        log_notice("session control without action/from/c2s-id from %s: ignored", c2s ? c2s : "?");
        return;
    }
    if (!strcmp(ctl->name, "account")) {
        if (strcmp(action, "removed")) return;
        const char *bare = xnode_attr(ctl, "jid");
        char *b = bare ? jid_normalize_bare(bare) : NULL;
        sm_user *u = b ? sm_user_find(s, b) : NULL;
        log_notice("account %s removed (told by %s)", b ? b : "?", c2s);
        free(b);
        if (u) user_enqueue(u, work_new(W_REMOVED));
        return;
    }
    if (strcmp(ctl->name, "session")) return;
    if (!strcmp(action, "acked")) {
        copies_acked(s, c2s, c2s_id, xnode_attr(route, "sm-id"), xnode_attr(ctl, "seq"));
        return;
    }
    if (!strcmp(action, "start")) {
        const char *jidstr = xnode_attr(ctl, "jid");
        jid j = JID_INIT;
        if (!jidstr || jid_parse(&j, jidstr) < 0 || !j.node || !j.resource || !sm_is_local(s, j.domain)) {
            log_notice("session start from %s/%s with a bad jid '%s'", c2s, c2s_id, jidstr ? jidstr : "");
            send_control(s, c2s, domain ? domain : component_name(s->comp), c2s_id, NULL, "failed",
                         jidstr ? jidstr : "", "condition", "jid-malformed");
            jid_free(&j);
            return;
        }
        sm_work *w = work_new(W_START);
        const char *acks = xnode_attr(ctl, "acks");
        w->custody = acks && !strcmp(acks, "true");
        w->c2s = xstrdup(c2s);
        w->c2s_id = xstrdup(c2s_id);
        w->full = xstrdup(j.full);
        sm_user *u = user_get(s, j.node, j.domain, 1);
        jid_free(&j);
        if (!u) {
            reject_work(s, w, "internal-server-error");
            return;
        }
        user_enqueue(u, w);
    } else if (!strcmp(action, "end")) {
        const char *sm_id = xnode_attr(route, "sm-id");
        copies_acked(s, c2s, c2s_id, sm_id, xnode_attr(ctl, "acked"));
        sm_session *sess = session_find(s, sm_id);
        if (sess && !strcmp(sess->c2s, c2s) && !strcmp(sess->c2s_id, c2s_id)) {
            end_session_later(sess, NULL, 0);
        } else if (sm_id && strmap_get(&s->parked, sm_id)) {
            sm_parked *p = strmap_get(&s->parked, sm_id);
            if (!strcmp(p->c2s, c2s)) unpark(s, sm_id, NULL, 0, "not acknowledged before the router was lost");
        }
    }
}

static void handle_route(sm *s, stanza *env)
{
    if (remote_route(s, env)) return;
    xnode *route = env->root;
    const char *type = xnode_attr(route, "type");
    const char *c2s = xnode_attr(route, "from");
    const char *c2s_id = xnode_attr(route, "c2s-id");
    const char *sm_id = xnode_attr(route, "sm-id");
    xnode *child = xnode_first_element(route);
    if (!child || !c2s) {
        stanza_free(env);
        return;
    }
    sm_session *sess = session_find(s, sm_id);
    if (type && !strcmp(type, "error")) {
        /* Handed back by c2s, or bounced by the router because the c2s is gone. */
        if (!is_stanza(child)) {
            stanza_free(env);
            return;
        }
        int from_router = xnode_child(route, "error", NULL) != NULL;
        if (sess && from_router) end_session_later(sess, NULL, 0);
        if (xnode_attr(route, "seq") && sm_id_is_mine(s, sm_id)) {
            /* A numbered message of one of our sessions: its copy here is
             * delivered again when the session ends (docs/sessions.md §7). */
            log_debug("hand-back of message %s of session %s: the sm's copy answers for it",
                      xnode_attr(route, "seq"), sm_id);
            stanza_free(env);
            return;
        }
        stanza *st = stanza_from_node(child);
        stanza_free(env);
        handed_back(s, st, sess);
        return;
    }
    if (child->ns && !strcmp(child->ns, NS_SB_ADMIN)) {
        sm_admin_request(s, route, child);   /* sm/admin.c */
        stanza_free(env);
        return;
    }
    if (child->ns && !strcmp(child->ns, NS_SB_SESSION)) {
        handle_session_control(s, route, child);
        stanza_free(env);
        return;
    }
    if (!is_stanza(child) || !c2s_id) {
        log_notice("route from %s with <%s/>: ignored", c2s, child->name);
        stanza_free(env);
        return;
    }
    if (!sess || strcmp(sess->c2s, c2s) || strcmp(sess->c2s_id, c2s_id)) {
        /* The sm restarted, or the session is gone: c2s must close it. */
        const char *domain = xnode_attr(route, "to");
        log_info("stanza for unknown session %s from %s/%s: reset", sm_id ? sm_id : "-", c2s, c2s_id);
        send_control(s, c2s, domain ? domain : component_name(s->comp), c2s_id, sm_id, "end", NULL, "reason",
                     "reset");
        stanza_free(env);
        return;
    }
    sm_work *w = work_new(W_OUT);
    const char *seq = xnode_attr(route, "seq");
    if (seq) w->confirm = confirm_new(sess, (uint32_t)strtoul(seq, NULL, 10));
    w->st = stanza_from_node(child);
    w->sess_id = sess->id;
    stanza_free(env);
    sm_stanza_set_ns(w->st->root, NS_COMPONENT, NS_CLIENT);
    user_enqueue(sess->user, w);
}

static void handle_plain(sm *s, stanza *st)
{
    /* A stanza from another domain (s2s) or a component, for a local address. */
    sm_stanza_set_ns(st->root, NS_COMPONENT, NS_CLIENT);
    const char *to = xnode_attr(st->root, "to");
    const char *from = xnode_attr(st->root, "from");
    jid j = JID_INIT;
    if (!to || !from || jid_parse(&j, to) < 0 || !sm_is_local(s, j.domain)) {
        log_info("<%s/> from the router for '%s' (from '%s'): not ours, dropped", st->root->name, to ? to : "",
                 from ? from : "");
        jid_free(&j);
        stanza_free(st);
        return;
    }
    jid_free(&j);
    char *nf = jid_normalize(from);
    if (!nf) {
        stanza_free(st);
        return;
    }
    xnode_set_attr(st->root, "from", nf);
    free(nf);
    sm_route(s, st);
}

static void on_stanza(component *c, stanza *st, void *ud)
{
    (void)c;
    sm *s = ud;
    if (s->stopping) {
        stanza_free(st);
        return;
    }
    xnode *el = st->root;
    if (el->ns && !strcmp(el->ns, NS_SB_ROUTER) && !strcmp(el->name, "route")) {
        handle_route(s, st);
    } else if (is_stanza(el)) {
        handle_plain(s, st);
    } else {
        log_debug("ignored <%s/> from the router", el->name);
        stanza_free(st);
    }
}

/* Every session, by id, so that ending them can change the table. */
static void end_sessions_where(sm *s, const char *c2s, const char *reason, int park)
{
    size_t n = strmap_count(&s->sessions), k = 0, pos = 0;
    uint64_t *ids = xcalloc(n, sizeof *ids);
    const char *key;
    void *val;
    while (strmap_next(&s->sessions, &pos, &key, &val)) {
        sm_session *sess = val;
        if (!c2s || !strcmp(sess->c2s, c2s)) ids[k++] = sess->id;
    }
    for (size_t i = 0; i < k; i++) {
        char idstr[24];
        snprintf(idstr, sizeof idstr, "%" PRIu64, ids[i]);
        sm_session *sess = session_find(s, idstr);
        if (sess) end_session_later(sess, reason, park);
    }
    free(ids);
}

static void on_name(component *c, const char *name, int online, void *ud)
{
    (void)c;
    sm *s = ud;
    remote_name(s, name, online);
    if (online) return;
    if (strmap_count(&s->sessions)) log_info("%s went offline: ending its sessions", name);
    end_sessions_where(s, name, NULL, 0);
    /* That c2s is gone: what waited for it since the router was lost goes on. */
    unpark(s, NULL, name, 0, "their c2s went offline");
}

static void on_ready(component *c, void *ud)
{
    (void)ud;
    log_notice("sm %s: ready at the router", component_name(c));
}

static void on_lost(component *c, const char *reason, void *ud)
{
    sm *s = ud;
    s->s2s_ready = 0;   /* until s2s says hello again (docs/sessions.md §7) */
    log_warn("sm %s: lost the router (%s); ending %zu sessions", component_name(c), reason ? reason : "?",
             strmap_count(&s->sessions));
    /* c2s closes its sessions when the sm's names go offline. Each c2s may
     * live on and report what its clients acknowledged: copies wait for it. */
    end_sessions_where(s, NULL, NULL, 1);
}

static void on_bind_failed(component *c, const char *name, const char *condition, void *ud)
{
    (void)c;
    (void)ud;
    log_error("cannot serve domain %s: the router refused the bind (%s)", name, condition);
}

const component_handler sm_component_handler = {
    .on_ready = on_ready, .on_lost = on_lost, .on_stanza = on_stanza, .on_name = on_name,
    .on_bind_failed = on_bind_failed,
};

/* ---- life cycle ---- */

const xnode *sm_module_config(const sm *s, const char *module_name)
{
    if (!s->cfg) return NULL;
    const xnode *mods = xnode_child(config_root(s->cfg), "modules", NULL);
    return mods ? xnode_child(mods, module_name, NULL) : NULL;
}

int sm_module_on(const sm *s, const char *module_name)
{
    for (size_t i = 0; i < s->nmodules; i++)
        if (!strcmp(s->modules[i]->name, module_name)) return 1;
    return 0;
}

int sm_init(sm *s, uv_loop_t *loop, const config *cfg)
{
    s->loop = loop;
    s->cfg = cfg;
    /* sm-ids of this process: a random base, so that a hand-back can tell a
     * session of ours (we hold its copies) from one of a predecessor's. */
    uint64_t r;
    random_bytes(&r, sizeof r);
    s->session_id_base = ((r % 0x7fffffffu) + 1) << 32;
    s->next_session_id = s->session_id_base;
    uv_check_init(loop, &s->confirm_check);
    s->confirm_check.data = s;
    uv_unref((uv_handle_t *)&s->confirm_check);
    uv_timer_init(loop, &s->park_timer);
    s->park_timer.data = s;
    uv_unref((uv_handle_t *)&s->park_timer);
    s->handles_on = 1;
    s->modules = xcalloc(sm_nmodules, sizeof *s->modules);
    s->nmodules = 0;
    for (size_t i = 0; i < sm_nmodules; i++) {
        const sm_module *m = sm_modules[i];
        const xnode *mc = sm_module_config(s, m->name);
        if (config_node_bool(mc, "enabled", !m->off_by_default))
            s->modules[s->nmodules++] = m;
        else
            log_notice("module %s is off", m->name);
    }
    for (size_t i = 0; i < s->nmodules; i++)
        if (s->modules[i]->init && s->modules[i]->init(s) < 0) {
            log_error("module %s failed to start", s->modules[i]->name);
            return -1;
        }
    return 0;
}

void sm_set_component(sm *s, component *c) { s->comp = c; }

void sm_shutdown(sm *s)
{
    /* Copies waiting for a c2s that was lost with the router: offline now. */
    unpark(s, NULL, NULL, 0, "the sm is stopping");
    /* Sessions end first, while the router is still there: contacts get
     * unavailable presence and c2s closes the streams with system-shutdown. */
    size_t pos = 0;
    const char *key;
    void *val;
    size_t n = strmap_count(&s->sessions), k = 0;
    uint64_t *ids = xcalloc(n, sizeof *ids);
    while (strmap_next(&s->sessions, &pos, &key, &val)) ids[k++] = ((sm_session *)val)->id;
    for (size_t i = 0; i < k; i++) {
        char idstr[24];
        snprintf(idstr, sizeof idstr, "%" PRIu64, ids[i]);
        sm_session *sess = session_find(s, idstr);
        if (sess) session_destroy(sess, "shutdown", 0);
    }
    free(ids);
    s->stopping = 1;
}

void sm_free(sm *s)
{
    remote_free(s);
    /* The modules forget their users while they are still there. They may
     * change the user table meanwhile, so walk a copy of it. */
    size_t nusers = strmap_count(&s->users), k = 0, upos = 0;
    sm_user **users = xcalloc(nusers ? nusers : 1, sizeof *users);
    const char *ukey;
    void *uval;
    while (k < nusers && strmap_next(&s->users, &upos, &ukey, &uval)) users[k++] = uval;
    for (size_t i = 0; i < k; i++) mods_user_unloading(users[i]);
    free(users);
    for (size_t i = 0; i < s->nmodules; i++)
        if (s->modules[i]->shutdown) s->modules[i]->shutdown(s);
    free(s->modules);
    s->modules = NULL;
    s->nmodules = 0;
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&s->users, &pos, &key, &val)) {
        sm_user *u = val;
        while (u->sessions) {
            sm_session *sess = u->sessions;
            u->sessions = sess->next;
            if (sess->presence) stanza_free(sess->presence);
            strmap_free(&sess->directed);
            copies_free(sess->copies);
            free(sess->inflight);
            free(sess->c2s);
            free(sess->c2s_id);
            free(sess->full);
            free(sess);
        }
    }
    /* Sessions are gone: confirmations still held by work find none. */
    strmap_free(&s->sessions);
    s->sessions = (strmap)STRMAP_INIT;
    pos = 0;
    while (strmap_next(&s->users, &pos, &key, &val)) {
        sm_user *u = val;
        if (u->busy || u->nwrites)
            log_warn("user %s: freed with %d requests and %zu writes in flight", u->bare, u->busy, u->nwrites);
        user_free(u);
    }
    strmap_free(&s->users);
    pos = 0;
    while (strmap_next(&s->parked, &pos, &key, &val)) parked_free(val);
    strmap_free(&s->parked);
    free(s->confirm_due);
    s->confirm_due = NULL;
    if (s->handles_on) {
        uv_close((uv_handle_t *)&s->confirm_check, NULL);
        uv_close((uv_handle_t *)&s->park_timer, NULL);
        s->handles_on = 0;
    }
}

/* ---- messages to remote domains (docs/sessions.md §7) ----
 *
 * A client's message to a remote domain stays unconfirmed (no 'handled'
 * for it, so no <a/> to the client) until s2s says the remote server has
 * it. The sm sends it to s2s in an envelope with an s2s-seq and keeps a
 * copy; s2s answers <s2s action='confirmed' seqs='…'/>. A new s2s process
 * (its hello names a new instance) gets every unconfirmed copy again. */

struct sm_remote {
    sm_remote *prev, *next;
    uint64_t seq;
    int unsent;                 /* the router bounced it: no s2s has seen it */
    sm_confirm *confirm;        /* the client stanza it belongs to */
    char from_domain[JID_PART_MAX + 1];
    size_t len;
    char data[];                /* the stanza, as it goes in the envelope */
};

static void remote_transmit(sm *s, sm_remote *r)
{
    buf o = BUF_INIT;
    buf_append_str(&o, "<route xmlns='" NS_SB_ROUTER "' to='");
    xml_escape_attr(&o, s->s2s_name, strlen(s->s2s_name));
    buf_append_str(&o, "' from='");
    xml_escape_attr(&o, r->from_domain, strlen(r->from_domain));
    buf_printf(&o, "' s2s-seq='%" PRIu64 "'>", r->seq);
    buf_append(&o, r->data, r->len);
    buf_append_str(&o, "</route>");
    r->unsent = component_send_raw(s->comp, o.data, o.len) < 0;
    buf_free(&o);
}

static void remote_unlink(sm *s, sm_remote *r)
{
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, r->seq);
    strmap_del(&s->remote_by_seq, key);
    if (r->prev) r->prev->next = r->next;
    else s->remote_head = r->next;
    if (r->next) r->next->prev = r->prev;
    else s->remote_tail = r->prev;
}

/* 1 when it took st: a message of a client stanza (it carries its
 * confirmation) to a remote domain, with an s2s that said hello. Anything
 * else goes out plain: confirmed once written to the router. */
static int remote_send_held(sm *s, stanza *st, const char *to_domain)
{
    xnode *el = st->root;
    if (!s->s2s_ready || !s->cur_confirm || !is_custody_message(el) || strmap_get(&s->router_names, to_domain))
        return 0;
    const char *from = xnode_attr(el, "from");
    char from_domain[JID_PART_MAX + 1];
    if (!from || jid_domain_of(from, from_domain, sizeof from_domain) < 0 || !sm_is_local(s, from_domain)) return 0;
    buf b = BUF_INIT;
    xml_write(&b, el, NS_SB_ROUTER);
    sm_remote *r = xcalloc(1, sizeof *r + b.len);
    memcpy(r->data, b.data, b.len);
    r->len = b.len;
    buf_free(&b);
    memcpy(r->from_domain, from_domain, strlen(from_domain) + 1);
    /* Unique per process, so that a surviving s2s's confirmations for our
     * predecessor's messages cannot match ours. */
    if (!s->remote_seq) s->remote_seq = s->session_id_base;
    r->seq = ++s->remote_seq;
    r->confirm = s->cur_confirm;
    r->confirm->refs++;
    r->prev = s->remote_tail;
    if (s->remote_tail) s->remote_tail->next = r;
    else s->remote_head = r;
    s->remote_tail = r;
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, r->seq);
    strmap_put(&s->remote_by_seq, key, r);
    remote_transmit(s, r);
    stanza_free(st);
    return 1;
}

static void remote_confirmed(sm *s, const char *seqs)
{
    const char *p = seqs;
    size_t n = 0;
    while (p && *p) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p) break;
        p = end;
        char key[24];
        snprintf(key, sizeof key, "%llu", v);
        sm_remote *r = strmap_get(&s->remote_by_seq, key);
        if (!r) continue;   /* sent twice (a new s2s) and confirmed twice */
        remote_unlink(s, r);
        confirm_release(s, r->confirm);
        free(r);
        n++;
    }
    log_debug("s2s confirmed %zu messages to remote domains", n);
}

static void remote_hello(sm *s, const char *from, const char *instance)
{
    int fresh = !s->s2s_name || strcmp(s->s2s_name, from) || !s->s2s_instance || strcmp(s->s2s_instance, instance);
    if (fresh) {
        free(s->s2s_name);
        free(s->s2s_instance);
        s->s2s_name = xstrdup(from);
        s->s2s_instance = xstrdup(instance);
    }
    s->s2s_ready = 1;
    size_t n = 0;
    for (sm_remote *r = s->remote_head; r; r = r->next)
        if (fresh || r->unsent) {
            remote_transmit(s, r);
            n++;
        }
    log_notice("s2s %s (instance %s) is there%s; %zu unconfirmed messages to remote domains sent again", from,
               instance, fresh ? ", a new process" : "", n);
}

/* 1 when env was about messages to remote domains (and is consumed). */
static int remote_route(sm *s, stanza *env)
{
    xnode *route = env->root;
    const char *from = xnode_attr(route, "from");
    const char *type = xnode_attr(route, "type");
    const char *seq = xnode_attr(route, "s2s-seq");
    xnode *child = xnode_first_element(route);
    if (seq && type && !strcmp(type, "error")) {
        /* The router bounced it: s2s is gone. Its copy goes to the next one. */
        sm_remote *r = strmap_get(&s->remote_by_seq, seq);
        if (r) r->unsent = 1;
        if (s->s2s_name && from && !strcmp(from, s->s2s_name)) s->s2s_ready = 0;
        log_info("message %s to a remote domain bounced by the router: kept for the next s2s", seq);
        stanza_free(env);
        return 1;
    }
    if (!child || !from || !xnode_is(child, "s2s", NS_SB_SESSION) || (type && !strcmp(type, "error"))) return 0;
    const char *action = xnode_attr(child, "action");
    if (action && !strcmp(action, "confirmed")) {
        if (s->s2s_name && !strcmp(from, s->s2s_name)) remote_confirmed(s, xnode_attr(child, "seqs"));
        else log_info("confirmations from %s, which is not our s2s: ignored", from);
    } else if (action && !strcmp(action, "hello") && xnode_attr(child, "instance")) {
        remote_hello(s, from, xnode_attr(child, "instance"));
    } else {
        log_info("<s2s action='%s'/> from %s: ignored", action ? action : "", from);
    }
    stanza_free(env);
    return 1;
}

static void remote_name(sm *s, const char *name, int online)
{
    if (online) {
        strmap_put(&s->router_names, name, (void *)1);
    } else if (s->s2s_name && !strcmp(name, s->s2s_name)) {
        s->s2s_ready = 0;
        if (s->remote_head) log_notice("s2s %s went offline with unconfirmed messages to remote domains", name);
    }
}

static void remote_free(sm *s)
{
    while (s->remote_head) {
        sm_remote *r = s->remote_head;
        remote_unlink(s, r);
        confirm_release(s, r->confirm);
        free(r);
    }
    strmap_free(&s->remote_by_seq);
    strmap_free(&s->router_names);
    free(s->s2s_name);
    free(s->s2s_instance);
    s->s2s_name = s->s2s_instance = NULL;
}
