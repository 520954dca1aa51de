/* Client State Indication (XEP-0352, urn:xmpp:csi:0).
 *
 * A client that says <inactive/> (a phone with its screen off) is not
 * interested in its contacts' every status change. While it is inactive,
 * c2s holds back presence updates (available and unavailable presence) from
 * the sm, keeping only the latest one per sender JID: a newer one replaces
 * the older, and goes to the end of the line. Everything else (messages,
 * iqs, subscription requests, errors) is important: what is held is written
 * first, in order, then the important stanza. <active/> writes what is held
 * too, before anything the client sends next is processed (§5.1).
 *
 * What is held is bounded (csi/max-held stanzas, csi/max-held-bytes); past
 * the bound everything held is written. A stream always starts active, and
 * so does a resumed session (§5.2): when the connection drops, what is held
 * goes to stream management's queue, which a resumption sends. Held stanzas
 * are counted by stream management only when they are written.
 *
 * Nothing about the state is revealed to anyone else (§6). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "c2s/c2s.h"
#include "common/log.h"
#include "common/xml_write.h"

#define DEFAULT_MAX_HELD 100
#define DEFAULT_MAX_HELD_BYTES (256 * 1024)

typedef struct csi_item {
    struct csi_item *next, *prev;
    char *from;                 /* the sender, as written in 'from' */
    size_t len;
    char data[];                /* the stanza's bytes as they go to the client */
} csi_item;

struct csi_state {
    unsigned inactive : 1;
    csi_item *head, *tail;
    unsigned count;
    size_t bytes;
    strmap by_from;             /* from -> csi_item */
    unsigned max_held;
    size_t max_bytes;
};

void csi_features(client *cl, buf *out)
{
    (void)cl;
    buf_append_str(out, "<csi xmlns='" NS_CSI "'/>");
}

static void unlink_item(csi_state *s, csi_item *it)
{
    if (it->prev) it->prev->next = it->next;
    else s->head = it->next;
    if (it->next) it->next->prev = it->prev;
    else s->tail = it->prev;
    strmap_del(&s->by_from, it->from);
    s->count--;
    s->bytes -= it->len;
}

static void item_free(csi_item *it)
{
    free(it->from);
    free(it);
}

/* Take the oldest held stanza off the list (caller frees it). */
static csi_item *pop(csi_state *s)
{
    csi_item *it = s->head;
    if (it) unlink_item(s, it);
    return it;
}

void csi_flush(client *cl)
{
    csi_state *s = cl->csi;
    if (!s || !s->head) return;
    unsigned n = s->count;
    csi_item *it;
    while ((it = pop(s))) {
        /* The client may be closed by stream management on the way (too
         * many unacknowledged): then writing stops by itself. */
        if (cl->state == CL_SESSION) {
            client_write(cl, it->data, it->len);
            sm_outgoing(cl, it->data, it->len);
        }
        item_free(it);
    }
    log_debug("c2s %s: client %" PRIu64 " (%s): %u held presence stanzas written", cl->srv->name, cl->id,
              client_label(cl), n);
}

static csi_state *state_new(client *cl)
{
    csi_state *s = calloc(1, sizeof *s);
    if (!s) abort();
    long long n = config_int(cl->srv->cfg, "csi/max-held", DEFAULT_MAX_HELD);
    long long b = config_int(cl->srv->cfg, "csi/max-held-bytes", DEFAULT_MAX_HELD_BYTES);
    s->max_held = n < 0 ? 0 : n > 100000 ? 100000 : (unsigned)n;
    s->max_bytes = b < 0 ? 0 : (size_t)b;
    return s;
}

void csi_handle(client *cl, stanza *st)
{
    const char *name = st->root->name;
    int inactive = !strcmp(name, "inactive");
    if (!inactive && strcmp(name, "active")) {
        stanza_free(st);
        client_stream_error(cl, "unsupported-stanza-type", "unknown client state indication element");
        return;
    }
    stanza_free(st);
    if (!cl->authed) {
        client_stream_error(cl, "not-authorized", "authenticate first");
        return;
    }
    if (inactive) {
        if (!cl->csi) cl->csi = state_new(cl);
        if (!cl->csi->inactive)
            log_debug("c2s %s: client %" PRIu64 " (%s): inactive", cl->srv->name, cl->id, client_label(cl));
        cl->csi->inactive = 1;
        return;
    }
    if (!cl->csi || !cl->csi->inactive) return;
    log_debug("c2s %s: client %" PRIu64 " (%s): active", cl->srv->name, cl->id, client_label(cl));
    cl->csi->inactive = 0;
    csi_flush(cl);
}

/* Presence that only tells availability can wait; subscription requests,
 * probes and errors cannot. */
static int unimportant(const xnode *el)
{
    if (strcmp(el->name, "presence")) return 0;
    const char *type = xnode_attr(el, "type");
    return !type || !strcmp(type, "unavailable");
}

int csi_hold(client *cl, const xnode *el, const char *data, size_t len)
{
    csi_state *s = cl->csi;
    if (!s || !s->inactive || cl->state != CL_SESSION) return 0;
    const char *from = xnode_attr(el, "from");
    if (!from || !unimportant(el)) {
        csi_flush(cl);
        return 0;
    }
    if (!s->max_held || len > s->max_bytes) {
        csi_flush(cl);
        return 0;
    }
    csi_item *old = strmap_get(&s->by_from, from);
    if (old) {
        unlink_item(s, old);
        item_free(old);
    }
    if (s->count + 1 > s->max_held || s->bytes + len > s->max_bytes) {
        /* Over the bound: out with everything, this one last. */
        csi_flush(cl);
        return 0;
    }
    csi_item *it = malloc(sizeof *it + len);
    if (!it) abort();
    it->from = strdup(from);
    if (!it->from) abort();
    it->len = len;
    memcpy(it->data, data, len);
    it->next = NULL;
    it->prev = s->tail;
    if (s->tail) s->tail->next = it;
    else s->head = it;
    s->tail = it;
    s->count++;
    s->bytes += len;
    strmap_put(&s->by_from, it->from, it);
    return 1;
}

void csi_detach(client *cl)
{
    csi_state *s = cl->csi;
    if (!s) return;
    c2s_session *ss = cl->sess;
    csi_item *it;
    while ((it = pop(s))) {
        /* Resumption sends stream management's queue: the held presence
         * goes there, within its bound (beyond it, it is dropped: presence
         * is never worth ending a session for). */
        if (ss && ss->sm_enabled && ss->sm_resumable &&
            (!cl->srv->max_unacked || ss->queued < cl->srv->max_unacked))
            sm_outgoing(cl, it->data, it->len);
        item_free(it);
    }
    s->inactive = 0;
}

void csi_free(client *cl)
{
    csi_state *s = cl->csi;
    if (!s) return;
    csi_item *it;
    while ((it = pop(s))) item_free(it);
    strmap_free(&s->by_from);
    free(s);
    cl->csi = NULL;
}
