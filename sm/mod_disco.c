/* mod_disco: service discovery (XEP-0030) for the server and for accounts.
 * Features come from the module table, so only what is on is listed. */
#include <stdlib.h>
#include <string.h>

#include "common/jid.h"
#include "sm/module.h"
#include "sm/sub.h"

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"

static void add_feature(xnode *q, const char *var)
{
    /* No duplicates, whatever the modules list. */
    for (xnode *f = xnode_child(q, "feature", NULL); f; f = xnode_next(f, "feature", NULL))
        if (!strcmp(xnode_attr(f, "var"), var)) return;
    xnode *f = xnode_add_child(q, "feature", NULL);
    xnode_set_attr(f, "var", var);
}

static void add_identity(xnode *q, const char *category, const char *type, const char *name)
{
    xnode *id = xnode_add_child(q, "identity", NULL);
    xnode_set_attr(id, "category", category);
    xnode_set_attr(id, "type", type);
    if (name) xnode_set_attr(id, "name", name);
}

/* May the sender see the account's details? The user and its subscribers. */
static int may_see_account(sm_iq *iq)
{
    char *fb = iq->from ? jid_normalize_bare(iq->from) : NULL;
    int ok = 0;
    if (fb) {
        if (!strcmp(fb, iq->user->bare)) ok = 1;
        sm_item *it = sm_roster_item(iq->user, fb);
        if (it && sub_has_from(it->sub)) ok = 1;
    }
    free(fb);
    return ok;
}

static void disco_info(sm_iq *iq)
{
    if (iq->is_set) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    if (xnode_attr(iq->payload, "node")) {
        sm_iq_error(iq, "item-not-found", NULL);
        return;
    }
    sm *s = iq->sm;
    stanza *r = sm_iq_result(iq->st->root);
    xnode *q = xnode_add_child(r->root, "query", NS_DISCO_INFO);
    if (iq->target == SM_IQ_SERVER) {
        add_identity(q, "server", "im", "Switchboard");
        for (size_t i = 0; i < s->nmodules; i++)
            for (const sm_identity *id = s->modules[i]->identities; id && id->category; id++)
                add_identity(q, id->category, id->type, id->name);
        for (size_t i = 0; i < s->nmodules; i++)
            for (const char *const *f = s->modules[i]->server_features; f && *f; f++) add_feature(q, *f);
    } else {
        add_identity(q, "account", "registered", NULL);
        for (size_t i = 0; i < s->nmodules; i++)
            for (const sm_identity *id = s->modules[i]->account_identities; id && id->category; id++)
                add_identity(q, id->category, id->type, id->name);
        for (size_t i = 0; i < s->nmodules; i++)
            for (const char *const *f = s->modules[i]->account_features; f && *f; f++) add_feature(q, *f);
    }
    sm_iq_reply(iq, r);
}

static void disco_items(sm_iq *iq)
{
    if (iq->is_set) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    if (xnode_attr(iq->payload, "node")) {
        sm_iq_error(iq, "item-not-found", NULL);
        return;
    }
    if (iq->target == SM_IQ_ACCOUNT && !may_see_account(iq)) {
        sm_iq_error(iq, "service-unavailable", NULL);
        return;
    }
    if (iq->target == SM_IQ_ACCOUNT) {
        for (size_t i = 0; i < iq->sm->nmodules; i++)
            if (iq->sm->modules[i]->account_items) {
                iq->sm->modules[i]->account_items(iq);
                return;
            }
    }
    stanza *r = sm_iq_result(iq->st->root);
    xnode_add_child(r->root, "query", NS_DISCO_ITEMS);
    sm_iq_reply(iq, r);
}

static const sm_iq_handler disco_iqs[] = {
    {NS_DISCO_INFO, SM_IQ_SERVER | SM_IQ_ACCOUNT, disco_info},
    {NS_DISCO_ITEMS, SM_IQ_SERVER | SM_IQ_ACCOUNT, disco_items},
    {NULL, 0, NULL},
};

static const char *const disco_features[] = {NS_DISCO_INFO, NS_DISCO_ITEMS, NULL};

const sm_module mod_disco = {
    .name = "disco",
    .iqs = disco_iqs,
    .server_features = disco_features,
    .account_features = disco_features,
};
