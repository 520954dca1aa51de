/* mod_carbons: Message Carbons (XEP-0280, urn:xmpp:carbons:2).
 *
 * A session turns carbons on or off with an iq set <enable/> / <disable/>
 * (its own, for its own session only). Then:
 *  - a message a resource of the user sends is copied, wrapped in
 *    <sent><forwarded xmlns='urn:xmpp:forward:0'/></sent>, to the user's
 *    other carbon-enabled resources (§7);
 *  - a message for the user is delivered by the rules of RFC 6121 (by
 *    mod_message), and copied, wrapped in <received/>, to every
 *    carbon-enabled resource that did not get it that way (§6).
 * Copies come from the user's bare JID and keep the message's type.
 * Which messages are copied follows §6.1: chat; normal with a body;
 * messages with receipts, chat states or markers; direct and mediated MUC
 * invitations; never groupchat, errors, headlines, private MUC messages
 * received from an occupant, or messages marked <private/> (§8) or with a
 * <no-copy/> hint (XEP-0334).
 *
 * Only resources that are available (sent presence) get copies, as only
 * they get messages at all (RFC 6121 §8.5.2). The module runs after
 * mod_privacy, so a message the user's privacy rules block goes nowhere
 * and is not copied; each resource's own rules are checked for its copy
 * (carbon_allowed). */
#include <stdlib.h>
#include <string.h>

#include "common/jid.h"
#include "common/log.h"
#include "common/strmap.h"
#include "sm/module.h"

#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_HINTS "urn:xmpp:hints"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define NS_X_CONFERENCE "jabber:x:conference"
#define NS_RECEIPTS "urn:xmpp:receipts"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_MARKERS "urn:xmpp:chat-markers:0"

static strmap enabled;      /* sm-id -> (void *)1 for the sessions that enabled carbons */

static int carbons_on(const sm_session *x) { return strmap_get(&enabled, x->id_str) != NULL; }

/* May resource x get a copy of st? Its own privacy rules (XEP-0016: its
 * active list, else the default list) decide: a received copy is checked
 * as the message coming in from its sender, a sent copy as the message
 * going out to its recipient, so a resource that blocks a contact sees
 * nothing of the conversation. (Rules of the whole user already stopped a
 * blocked message before this module ran.) */
static int carbon_allowed(sm_session *x, const stanza *st, int inbound)
{
    return privacy_allows(x->user, x, st->root, inbound);
}

static int has_child_ns(const xnode *el, const char *ns)
{
    for (xnode *c = xnode_first_element(el); c; c = xnode_next_element(c))
        if (c->ns && !strcmp(c->ns, ns)) return 1;
    return 0;
}

/* XEP-0280 §6.1 (and §8 for <private/>). inbound: a message for the user. */
static int eligible(const xnode *msg, int inbound)
{
    const char *type = xnode_attr(msg, "type");
    if (!type) type = "normal";
    if (xnode_child(msg, "private", NS_CARBONS) || xnode_child(msg, "no-copy", NS_HINTS)) return 0;
    if (xnode_child(msg, "sent", NS_CARBONS) || xnode_child(msg, "received", NS_CARBONS)) return 0;
    if (!strcmp(type, "groupchat") || !strcmp(type, "error") || !strcmp(type, "headline")) return 0;
    xnode *muc = xnode_child(msg, "x", NS_MUC_USER);
    int invite = muc && xnode_child(muc, "invite", NULL);
    if (muc && !invite && inbound) {
        /* A private message from an occupant: the MUC service already
         * sends it to every joined resource. */
        const char *from = xnode_attr(msg, "from");
        if (from && strchr(from, '/')) return 0;
    }
    if (!strcmp(type, "chat")) return 1;
    if (!strcmp(type, "normal") && xnode_child(msg, "body", NULL)) return 1;
    if (invite || xnode_child(msg, "x", NS_X_CONFERENCE)) return 1;
    return has_child_ns(msg, NS_RECEIPTS) || has_child_ns(msg, NS_CHATSTATES) || has_child_ns(msg, NS_MARKERS);
}

static void send_copy(sm_session *x, const stanza *st, const char *how)
{
    sm_user *u = x->user;
    stanza *w = stanza_new("message", NS_CLIENT);
    xnode_set_attr(w->root, "from", u->bare);
    xnode_set_attr(w->root, "to", x->full);
    const char *type = xnode_attr(st->root, "type");
    if (type) xnode_set_attr(w->root, "type", type);
    xnode *wrap = xnode_add_child(w->root, how, NS_CARBONS);
    xnode *fwd = xnode_add_child(wrap, "forwarded", NS_FORWARD);
    xnode_copy_into(fwd, st->root);
    sm_session_send(x, w->root);
    stanza_free(w);
}

/* ---- enabling ---- */

static void carbons_iq(sm_iq *iq)
{
    if (!iq->session) {
        /* Only a session of the account itself decides for itself. */
        sm_iq_error(iq, "not-allowed", NULL);
        return;
    }
    if (!iq->is_set) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    const char *what = iq->payload->name;
    if (!strcmp(what, "enable")) {
        strmap_put(&enabled, iq->session->id_str, (void *)1);
        log_debug("session %s (%s): carbons on", iq->session->id_str, iq->session->full);
    } else if (!strcmp(what, "disable")) {
        strmap_del(&enabled, iq->session->id_str);
        log_debug("session %s (%s): carbons off", iq->session->id_str, iq->session->full);
    } else {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    sm_iq_reply(iq, NULL);
}

/* ---- copies ---- */

/* A message a session sends (§7): to the user's other carbon-enabled resources. */
static sm_hook_rc carbons_out(sm_session *sess, stanza *st)
{
    if (strcmp(st->root->name, "message") || !strmap_count(&enabled)) return SM_PASS;
    sm_user *u = sess->user;
    const char *to = xnode_attr(st->root, "to");
    if (!to) return SM_PASS;    /* to the user's own bare JID: the inbound side copies it */
    char *tb = jid_normalize_bare(to);
    int to_self = tb && !strcmp(tb, u->bare);
    free(tb);
    if (to_self || !eligible(st->root, 0)) return SM_PASS;
    for (sm_session *x = u->sessions; x; x = x->next)
        if (x != sess && x->available && carbons_on(x) && carbon_allowed(x, st, 0)) send_copy(x, st, "sent");
    return SM_PASS;
}

/* Does session x get message st itself under RFC 6121 §8.5 (as mod_message
 * delivers it)? best: the highest non-negative priority of the user's
 * available resources, -1 if none. */
static int gets_original(const sm_session *x, const sm_session *target, int best)
{
    if (target) return x == target;
    return x->available && x->priority >= 0 && x->priority == best;
}

/* A message for the user (§6): delivered by the core afterwards; copies go
 * to the carbon-enabled resources that do not get it. */
static sm_hook_rc carbons_in(sm_user *u, stanza *st, int returned, sm_session *skip)
{
    (void)skip;
    if (returned || strcmp(st->root->name, "message") || !strmap_count(&enabled)) return SM_PASS;
    if (!eligible(st->root, 1)) return SM_PASS;
    const char *to = xnode_attr(st->root, "to");
    const char *slash = to ? strchr(to, '/') : NULL;
    sm_session *target = slash ? sm_user_session(u, slash + 1) : NULL;
    int best = -1;
    for (sm_session *x = u->sessions; x; x = x->next)
        if (x->available && x->priority >= 0 && x->priority > best) best = x->priority;
    /* A message from one of the user's own resources: not back to it. */
    const char *from = xnode_attr(st->root, "from");
    sm_session *sender = NULL;
    if (from) {
        const char *fs = strchr(from, '/');
        char *fb = jid_normalize_bare(from);
        if (fb && fs && !strcmp(fb, u->bare)) sender = sm_user_session(u, fs + 1);
        free(fb);
    }
    for (sm_session *x = u->sessions; x; x = x->next) {
        if (x == sender || !x->available || !carbons_on(x) || gets_original(x, target, best)) continue;
        if (carbon_allowed(x, st, 1)) send_copy(x, st, "received");
    }
    return SM_PASS;
}

static void carbons_session_ending(sm_session *sess)
{
    strmap_del(&enabled, sess->id_str);
}

static int carbons_init(sm *s)
{
    (void)s;
    enabled = (strmap)STRMAP_INIT;
    return 0;
}

static void carbons_shutdown(sm *s)
{
    (void)s;
    strmap_free(&enabled);
}

static const sm_iq_handler carbons_iqs[] = {
    {NS_CARBONS, SM_IQ_ACCOUNT, carbons_iq},
    {NULL, 0, NULL},
};

static const char *const carbons_features[] = {NS_CARBONS, NULL};

const sm_module mod_carbons = {
    .name = "carbons",
    .iqs = carbons_iqs,
    /* XEP-0280 §4 asks the server; clients also look at their account. */
    .server_features = carbons_features,
    .account_features = carbons_features,
    .init = carbons_init,
    .shutdown = carbons_shutdown,
    .session_ending = carbons_session_ending,
    .out_stanza = carbons_out,
    .in_stanza = carbons_in,
};
