/* Stanzas waiting for a domain pair to be authorised, and bounces: a
 * stanza that cannot be delivered goes back to its sender through the
 * router as an error (never an error for an error), never silently lost. */
#include <stdlib.h>

#include "common/log.h"
#include "common/stanza_error.h"
#include "s2s/s2s.h"

void queue_push(stanza_queue *q, stanza *st, s2s_ticket *t)
{
    queued *n = calloc(1, sizeof *n);
    if (!n) abort();
    n->st = st;
    if (t) {
        n->ticket = *t;
        t->sm = NULL;
    }
    if (q->tail) q->tail->next = n;
    else q->head = n;
    q->tail = n;
    q->count++;
}

void queue_push_front(stanza_queue *q, queued *n)
{
    n->next = q->head;
    q->head = n;
    if (!q->tail) q->tail = n;
    q->count++;
}

queued *queue_pop_item(stanza_queue *q)
{
    queued *n = q->head;
    if (!n) return NULL;
    q->head = n->next;
    if (!q->head) q->tail = NULL;
    q->count--;
    n->next = NULL;
    return n;
}

void s2s_bounce(s2s *s, stanza *st, const char *condition, const char *text)
{
    const char *to = xnode_attr(st->root, "to");
    const char *from = xnode_attr(st->root, "from");
    if (!from || stanza_make_error(st, condition, text) != 0) {
        log_info("s2s: dropping undeliverable <%s/> from %s to %s (%s): not bounced", st->root->name,
                 from ? from : "?", to ? to : "?", condition);
        stanza_free(st);
        return;
    }
    if (router_link_send(s, st->root) != 0)
        log_warn("s2s: cannot bounce <%s/> to %s (%s): router unavailable", st->root->name, from, condition);
    stanza_free(st);
}

void queue_bounce_all(s2s *s, stanza_queue *q, const char *condition, const char *text)
{
    queued *n;
    while ((n = queue_pop_item(q)) != NULL) {
        s2s_bounce(s, n->st, condition, text);
        ticket_confirm(s, &n->ticket);   /* a bounce is an answer too */
        free(n);
    }
}
