/* mod_offline: offline messages (XEP-0160) in PostgreSQL, delivered with
 * <delay/> (XEP-0203) and the legacy jabber:x:delay (XEP-0091); honours
 * jabber:x:expire (XEP-0023) and answers the jabber:x:event offline
 * request (XEP-0022) once the message is durably stored. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/xml_stream.h"
#include "common/xml_write.h"
#include "sm/module.h"
#include "storage/offline.h"

#define NS_DELAY "urn:xmpp:delay"
#define NS_X_DELAY "jabber:x:delay"
#define NS_X_EXPIRE "jabber:x:expire"
#define NS_X_EVENT "jabber:x:event"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"

/* Only messages with something to read are kept: a message with just chat
 * states or an event notification is not worth storing (XEP-0160 §3). */
static int worth_storing(const xnode *msg)
{
    for (xnode *c = xnode_first_element(msg); c; c = xnode_next_element(c)) {
        if (!strcmp(c->name, "body") || !strcmp(c->name, "subject")) return 1;
        if (c->ns && !strcmp(c->ns, NS_CHATSTATES)) continue;
        if (c->ns && !strcmp(c->ns, NS_X_EVENT)) continue;
        if (!strcmp(c->name, "thread") || !strcmp(c->name, "error")) continue;
        return 1;
    }
    return 0;
}

/* XEP-0022: an <offline/> event request (a request has no <id/>). */
static int wants_offline_event(const xnode *msg)
{
    xnode *x = xnode_child(msg, "x", NS_X_EVENT);
    return x && xnode_child(x, "offline", NULL) && !xnode_child(x, "id", NULL);
}

typedef struct store_ctx {
    sm_user *u;
    stanza *st;
    uint64_t write;             /* sm_user_write_begin's token */
} store_ctx;

static void on_stored(void *ud, storage_status status)
{
    store_ctx *c = ud;
    sm_user *u = c->u;
    sm *s = u->sm;
    if (s->stopping) {
        /* nothing to tell anyone now */
    } else if (status == STORAGE_OK) {
        log_debug("user %s: message stored offline", u->bare);
        if (wants_offline_event(c->st->root)) {
            const char *from = xnode_attr(c->st->root, "from");
            const char *to = xnode_attr(c->st->root, "to");
            const char *id = xnode_attr(c->st->root, "id");
            stanza *ev = stanza_new("message", NS_CLIENT);
            xnode_set_attr(ev->root, "from", to ? to : u->bare);
            xnode_set_attr(ev->root, "to", from);
            xnode *x = xnode_add_child(ev->root, "x", NS_X_EVENT);
            xnode_add_child(x, "offline", NULL);
            xnode_add_text_child(x, "id", NULL, id ? id : "");
            sm_route(s, ev);
        }
    } else if (status == STORAGE_QUOTA) {
        log_notice("user %s: offline storage full (%u messages): message refused", u->bare, s->limits.offline_quota);
        sm_bounce(s, c->st, "service-unavailable", NULL, "the recipient's offline storage is full");
        c->st = NULL;
    } else if (status == STORAGE_NOT_FOUND) {
        sm_bounce(s, c->st, "service-unavailable", NULL, NULL);
        c->st = NULL;
    } else {
        log_warn("user %s: storing an offline message failed: %s", u->bare, storage_status_string(status));
        sm_bounce(s, c->st, "internal-server-error", "wait", "the message could not be stored; try again later");
        c->st = NULL;
    }
    if (c->st) stanza_free(c->st);
    uint64_t write = c->write;
    free(c);
    sm_user_write_end(u, write);
}

void offline_store_message(sm_user *u, stanza *st)
{
    sm *s = u->sm;
    if (!worth_storing(st->root)) {
        stanza_free(st);
        return;
    }
    time_t expire_at = 0;
    xnode *ex = xnode_child(st->root, "x", NS_X_EXPIRE);
    if (ex) {
        const char *secs = xnode_attr(ex, "seconds");
        char *end = NULL;
        long long n = secs ? strtoll(secs, &end, 10) : -1;
        if (!secs || end == secs || *end || n < 0) {
            sm_bounce(s, st, "bad-request", NULL, "jabber:x:expire needs a number of seconds");
            return;
        }
        if (n == 0) {
            stanza_free(st);    /* already expired */
            return;
        }
        expire_at = sm_now() + (time_t)n;
    }
    char *data = xml_to_string(st->root, "");
    store_ctx *c = calloc(1, sizeof *c);
    if (!c || !data) abort();
    c->u = u;
    c->st = st;
    /* Pipelined: the user's next stanzas need not wait for the commit (they
     * are stored after this one, on the same connection), only the
     * confirmation to the sender does (docs/sessions.md §7). */
    c->write = sm_user_write_begin(u);
    offline_store(s->db, u->domain, u->node, data, strlen(data), expire_at, s->limits.offline_quota, on_stored, c);
    free(data);
}

/* ---- delivery at the next available presence ---- */

typedef struct fetch_ctx {
    sm_user *u;
    sm_session *sess;
} fetch_ctx;

static void stamp_delay(xnode *msg, const char *domain, time_t stored)
{
    struct tm tm;
    gmtime_r(&stored, &tm);
    char modern[32], legacy[32];
    strftime(modern, sizeof modern, "%Y-%m-%dT%H:%M:%SZ", &tm);
    strftime(legacy, sizeof legacy, "%Y%m%dT%H:%M:%S", &tm);
    xnode *d = xnode_add_text_child(msg, "delay", NS_DELAY, "Offline Storage");
    xnode_set_attr(d, "from", domain);
    xnode_set_attr(d, "stamp", modern);
    xnode *x = xnode_add_text_child(msg, "x", NS_X_DELAY, "Offline Storage");
    xnode_set_attr(x, "from", domain);
    xnode_set_attr(x, "stamp", legacy);
}

/* ---- parsing the stored messages of one fetch ---- */

/* The rows are fed to one stream parser as the children of a wrapper
 * element, instead of building and freeing a parser for each message (that
 * was the largest part of the sm's CPU per delivered message). A row that
 * does not parse as exactly one element costs only itself: the stream
 * starts over for the next row. */
typedef struct row_parse {
    stanza *got;                /* the element of the row being fed */
    int count;                  /* elements the row gave */
} row_parse;

static xs_action on_row_element(void *ud, stanza *st)
{
    row_parse *rp = ud;
    if (rp->count++ == 0) rp->got = st;
    else stanza_free(st);
    return XS_CONTINUE;
}

static const char wrapper_open[] = "<offline>";

/* out[i]: the parsed message of rows[i], or NULL when it does not parse. */
static void parse_rows(const offline_row *rows, size_t n, stanza **out)
{
    if (!n) return;
    size_t longest = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i].len > longest) longest = rows[i].len;
    xml_limits lim;
    xml_limits_default(&lim);
    lim.max_stanza_bytes = longest + 1024;
    lim.max_depth = 65;     /* 64 below the message, as for one document */
    static const xml_stream_handler handler = {.element = on_row_element};
    row_parse rp = {0};
    xml_stream *xs = xml_stream_new(&lim, &handler, &rp);
    if (!xs) abort();
    size_t used;
    int open = xml_stream_feed(xs, wrapper_open, sizeof wrapper_open - 1, &used) == XML_OK;
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
        if (!open) {
            xml_stream_reset(xs);
            open = xml_stream_feed(xs, wrapper_open, sizeof wrapper_open - 1, &used) == XML_OK;
            if (!open) continue;
        }
        rp = (row_parse){0};
        xml_err e = xml_stream_feed(xs, rows[i].stanza, rows[i].len, &used);
        if (e == XML_OK && rp.count == 1 && xml_stream_pending_bytes(xs) == 0) {
            out[i] = rp.got;
            continue;
        }
        /* Not one complete element: the stream may be inside it, start over. */
        if (rp.count >= 1) stanza_free(rp.got);
        open = 0;
    }
    xml_stream_free(xs);
}

static void on_deleted(void *ud, storage_status status)
{
    sm_user *u = ud;
    if (status != STORAGE_OK)
        log_warn("user %s: deleting delivered offline messages failed: %s", u->bare, storage_status_string(status));
    sm_user_release(u);
}

static void on_fetched(void *ud, storage_status status, const offline_row *rows, size_t n)
{
    fetch_ctx *c = ud;
    sm_user *u = c->u;
    sm *s = u->sm;
    if (s->stopping || status != STORAGE_OK) {
        if (!s->stopping) {
            log_warn("user %s: fetching offline messages failed: %s", u->bare, storage_status_string(status));
            c->sess->mod_flags &= ~(uint32_t)SM_SF_OFFLINE_DONE;  /* the next presence tries again */
        }
        free(c);
        sm_user_release(u);
        return;
    }
    time_t now = sm_now();
    int64_t last = 0;
    size_t delivered = 0;
    stanza **parsed = n ? calloc(n, sizeof *parsed) : NULL;
    if (n && !parsed) abort();
    parse_rows(rows, n, parsed);
    for (size_t i = 0; i < n; i++) {
        const offline_row *r = &rows[i];
        stanza *st = parsed[i];
        if (r->id > last) last = r->id;
        if (r->expire_at && r->expire_at <= now) {
            if (st) stanza_free(st);
            continue;   /* XEP-0023: expired, not delivered */
        }
        if (!st || strcmp(st->root->name, "message")) {
            log_warn("user %s: offline message %" PRId64 " does not parse: dropped", u->bare, r->id);
            if (st) stanza_free(st);
            continue;
        }
        if (!privacy_allows(u, c->sess, st->root, 1)) {
            /* Stored before its sender was blocked: still not delivered. */
            stanza_free(st);
            continue;
        }
        xnode *ex = xnode_child(st->root, "x", NS_X_EXPIRE);
        if (ex && r->expire_at) {
            char secs[32];
            snprintf(secs, sizeof secs, "%lld", (long long)(r->expire_at - now));
            xnode_set_attr(ex, "seconds", secs);    /* what is left of its life */
        }
        stamp_delay(st->root, u->domain, r->stored_at);
        stanza_touch(st);
        sm_session_send(c->sess, st->root);
        stanza_free(st);
        delivered++;
    }
    free(parsed);
    if (n) log_info("user %s: %zu offline messages delivered to %s", u->bare, delivered, c->sess->full);
    free(c);
    if (last > 0) {
        /* Deleted before the next stanza of the user, so nothing comes twice. */
        offline_delete(s->db, u->domain, u->node, last, on_deleted, u);
        return;
    }
    sm_user_release(u);
}

static void offline_available(sm_session *sess, int initial)
{
    (void)initial;
    if ((sess->mod_flags & SM_SF_OFFLINE_DONE) || sess->priority < 0) return;
    sess->mod_flags |= SM_SF_OFFLINE_DONE;
    sm_user *u = sess->user;
    fetch_ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->u = u;
    c->sess = sess;
    sm_user_hold(u);
    offline_fetch(u->sm->db, u->domain, u->node, on_fetched, c);
}

static const char *const offline_features[] = {"msgoffline", NULL};

const sm_module mod_offline = {
    .name = "offline",
    .server_features = offline_features,
    .available = offline_available,
};
