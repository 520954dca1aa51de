/* RFC 6121 subscription state machine (see sub.h). */
#include "sm/sub.h"

#include <stdio.h>
#include <string.h>

static roster_subscription add_to(roster_subscription s) { return s == SUB_NONE ? SUB_TO : s == SUB_FROM ? SUB_BOTH : s; }
static roster_subscription add_from(roster_subscription s) { return s == SUB_NONE ? SUB_FROM : s == SUB_TO ? SUB_BOTH : s; }
static roster_subscription del_to(roster_subscription s) { return s == SUB_TO ? SUB_NONE : s == SUB_BOTH ? SUB_FROM : s; }
static roster_subscription del_from(roster_subscription s) { return s == SUB_FROM ? SUB_NONE : s == SUB_BOTH ? SUB_TO : s; }

static void finish(sub_result *r, sub_state cur)
{
    const sub_state *n = &r->next;
    r->changed = n->sub != cur.sub || n->ask_out != cur.ask_out || n->pending_in != cur.pending_in ||
                 n->approved != cur.approved;
    r->push = n->sub != cur.sub || n->ask_out != cur.ask_out || n->approved != cur.approved;
    r->lost_from = sub_has_from(cur.sub) && !sub_has_from(n->sub);
    r->gained_from = !sub_has_from(cur.sub) && sub_has_from(n->sub);
}

sub_result sub_outbound(sub_state cur, int exists, sub_type t)
{
    sub_result r;
    memset(&r, 0, sizeof r);
    if (!exists) memset(&cur, 0, sizeof cur);
    r.next = cur;
    switch (t) {
    case SUBT_SUBSCRIBE:
        /* A.2.1: always routed (the contact's server answers for states it
         * already knows); Pending Out is added unless the user already has
         * a subscription to the contact. */
        r.forward = 1;
        if (!sub_has_to(cur.sub)) r.next.ask_out = 1;
        break;
    case SUBT_UNSUBSCRIBE:
        /* A.2.2: routed; cancels 'to' and any Pending Out. */
        r.forward = 1;
        r.next.sub = del_to(cur.sub);
        r.next.ask_out = 0;
        break;
    case SUBT_SUBSCRIBED:
        /* A.2.3: approves a Pending In; otherwise, unless the contact is
         * already approved ('from'), it is a pre-approval (§3.4), never routed. */
        if (cur.pending_in) {
            r.forward = 1;
            r.next.pending_in = 0;
            r.next.approved = 0;
            r.next.sub = add_from(cur.sub);
        } else if (!sub_has_from(cur.sub)) {
            r.next.approved = 1;
        }
        break;
    case SUBT_UNSUBSCRIBED:
        /* A.2.4: denies a Pending In or cancels 'from'; otherwise it only
         * cancels a pre-approval. */
        if (cur.pending_in || sub_has_from(cur.sub)) {
            r.forward = 1;
            r.next.pending_in = 0;
            r.next.sub = del_from(cur.sub);
        }
        r.next.approved = 0;
        break;
    }
    finish(&r, cur);
    return r;
}

sub_result sub_inbound(sub_state cur, int exists, sub_type t)
{
    sub_result r;
    memset(&r, 0, sizeof r);
    if (!exists) memset(&cur, 0, sizeof cur);
    r.next = cur;
    switch (t) {
    case SUBT_SUBSCRIBE:
        /* A.3.1 */
        if (sub_has_from(cur.sub)) {
            r.auto_reply = 1;               /* already subscribed: answer for the user */
        } else if (cur.approved) {
            r.auto_reply = 1;               /* pre-approved (§3.4): approve at once */
            r.next.approved = 0;
            r.next.sub = add_from(cur.sub);
        } else if (!cur.pending_in) {
            r.forward = 1;
            r.next.pending_in = 1;
        }
        break;
    case SUBT_UNSUBSCRIBE:
        /* A.3.2: the contact cancels its subscription (or its request). */
        if (exists && (sub_has_from(cur.sub) || cur.pending_in)) {
            r.forward = 1;
            r.next.sub = del_from(cur.sub);
            r.next.pending_in = 0;
        }
        break;
    case SUBT_SUBSCRIBED:
        /* A.3.3: only an answer to the user's Pending Out counts. */
        if (exists && cur.ask_out) {
            r.forward = 1;
            r.next.ask_out = 0;
            r.next.sub = add_to(cur.sub);
        }
        break;
    case SUBT_UNSUBSCRIBED:
        /* A.3.4: the contact denies the request or cancels the user's subscription. */
        if (exists && (cur.ask_out || sub_has_to(cur.sub))) {
            r.forward = 1;
            r.next.ask_out = 0;
            r.next.sub = del_to(cur.sub);
        }
        break;
    }
    finish(&r, cur);
    return r;
}

const char *sub_name(roster_subscription s)
{
    switch (s) {
    case SUB_TO: return "to";
    case SUB_FROM: return "from";
    case SUB_BOTH: return "both";
    default: return "none";
    }
}

const char *sub_state_name(sub_state s, char *out, size_t outlen)
{
    static const char *const base[] = {"None", "To", "From", "Both"};
    const char *pend = "";
    if (s.ask_out && s.pending_in) pend = " + Pending Out+In";
    else if (s.ask_out) pend = " + Pending Out";
    else if (s.pending_in) pend = " + Pending In";
    snprintf(out, outlen, "%s%s%s", base[s.sub & 3], pend, s.approved ? " (pre-approved)" : "");
    return out;
}

int sub_type_parse(const char *s)
{
    if (!s) return -1;
    if (!strcmp(s, "subscribe")) return SUBT_SUBSCRIBE;
    if (!strcmp(s, "subscribed")) return SUBT_SUBSCRIBED;
    if (!strcmp(s, "unsubscribe")) return SUBT_UNSUBSCRIBE;
    if (!strcmp(s, "unsubscribed")) return SUBT_UNSUBSCRIBED;
    return -1;
}

const char *sub_type_name(sub_type t)
{
    static const char *const n[] = {"subscribe", "subscribed", "unsubscribe", "unsubscribed"};
    return n[t & 3];
}
