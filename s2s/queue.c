/* Stanzas waiting for a domain pair to be authorised, and bounces: a
 * stanza that cannot be delivered goes back to its sender through the
 * router as an error (never an error for an error), never silently lost. */
#include <stdlib.h>

#include "common/log.h"
#include "common/stanza_error.h"
#include "s2s/s2s.h"

void queue_push(stanza_queue *q, stanza *st)
{
    queued *n = malloc(sizeof *n);
    if (!n) abort();
    n->next = NULL;
    n->st = st;
    if (q->tail) q->tail->next = n;
    else q->head = n;
    q->tail = n;
    q->count++;
}

stanza *queue_pop(stanza_queue *q)
{
    queued *n = q->head;
    if (!n) return NULL;
    q->head = n->next;
    if (!q->head) q->tail = NULL;
    q->count--;
    stanza *st = n->st;
    free(n);
    return st;
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
    stanza *st;
    while ((st = queue_pop(q)) != NULL) s2s_bounce(s, st, condition, text);
}
