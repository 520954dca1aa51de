/* mod_message: delivery of messages to local users (RFC 6121 §5, §8.5). */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sm/module.h"

static const char *message_type(const xnode *el)
{
    const char *t = xnode_attr(el, "type");
    /* RFC 6121 §5.2.2: no type, or one we do not know, is 'normal'. */
    if (!t || (strcmp(t, "chat") && strcmp(t, "groupchat") && strcmp(t, "headline") && strcmp(t, "error")))
        return "normal";
    return t;
}

void message_to_bare(sm_user *u, stanza *st, sm_session *skip)
{
    const char *type = message_type(st->root);
    if (!strcmp(type, "error")) {
        stanza_free(st);    /* §8.5.2.1.1: errors to a bare JID are dropped */
        return;
    }
    if (!strcmp(type, "groupchat")) {
        sm_bounce(u->sm, st, "service-unavailable", NULL, NULL);
        return;
    }
    int headline = !strcmp(type, "headline");
    int best = -1;
    for (sm_session *x = u->sessions; x; x = x->next)
        if (x != skip && x->available && x->priority >= 0 && x->priority > best) best = x->priority;
    if (best < 0) {
        /* No available resource with a non-negative priority (§8.5.2.2). */
        if (headline) stanza_free(st);
        else offline_store_message(u, st);
        return;
    }
    for (sm_session *x = u->sessions; x; x = x->next) {
        if (x == skip || !x->available || x->priority < 0) continue;
        /* chat and normal: the highest priority resources; headline: all. */
        if (headline || x->priority == best) sm_session_send(x, st->root);
    }
    stanza_free(st);
}

static sm_hook_rc message_in(sm_user *u, stanza *st, int returned, sm_session *skip)
{
    if (strcmp(st->root->name, "message")) return SM_PASS;
    const char *to = xnode_attr(st->root, "to");
    const char *slash = to ? strchr(to, '/') : NULL;
    const char *type = message_type(st->root);
    if (returned) {
        /* Handed back by c2s: other resources or offline (docs/sessions.md §3). */
        if (!strcmp(type, "chat") || !strcmp(type, "normal")) message_to_bare(u, st, skip);
        else stanza_free(st);
        return SM_DONE;
    }
    if (!slash) {
        message_to_bare(u, st, NULL);
        return SM_DONE;
    }
    sm_session *x = sm_user_session(u, slash + 1);
    if (x) {
        sm_session_send(x, st->root);
        stanza_free(st);
        return SM_DONE;
    }
    /* §8.5.3.2.1: no such resource. */
    if (!strcmp(type, "chat") || !strcmp(type, "normal")) message_to_bare(u, st, NULL);
    else if (!strcmp(type, "groupchat")) sm_bounce(u->sm, st, "service-unavailable", NULL, NULL);
    else stanza_free(st);
    return SM_DONE;
}

const sm_module mod_message = {
    .name = "message",
    .in_stanza = message_in,
};
