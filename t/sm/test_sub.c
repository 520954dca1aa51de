/* The RFC 6121 subscription state machine (sm/sub.c), every row of the
 * tables of Appendix A, outbound (A.2) and inbound (A.3). */
#include <stdio.h>
#include <string.h>

#include "../unit/tap.h"
#include "sm/sub.h"

/* The nine states of Appendix A, in the RFC's order. */
typedef struct { const char *name; sub_state st; } named;
static const named S[] = {
    {"None", {SUB_NONE, 0, 0, 0}},
    {"None + Pending Out", {SUB_NONE, 1, 0, 0}},
    {"None + Pending In", {SUB_NONE, 0, 1, 0}},
    {"None + Pending Out+In", {SUB_NONE, 1, 1, 0}},
    {"To", {SUB_TO, 0, 0, 0}},
    {"To + Pending In", {SUB_TO, 0, 1, 0}},
    {"From", {SUB_FROM, 0, 0, 0}},
    {"From + Pending Out", {SUB_FROM, 1, 0, 0}},
    {"Both", {SUB_BOTH, 0, 0, 0}},
};

static const sub_state *st_by_name(const char *n)
{
    for (size_t i = 0; i < sizeof S / sizeof S[0]; i++)
        if (!strcmp(S[i].name, n)) return &S[i].st;
    return NULL;
}

/* One row: existing state, forwarded?, new state (NULL = no change). */
typedef struct { const char *from; int fwd; const char *to; } row;

static void check_table(const char *title, int outbound, sub_type t, const row *rows)
{
    for (size_t i = 0; i < 9; i++) {
        const sub_state *cur = st_by_name(rows[i].from);
        const sub_state *want = rows[i].to ? st_by_name(rows[i].to) : cur;
        sub_result r = outbound ? sub_outbound(*cur, 1, t) : sub_inbound(*cur, 1, t);
        char got[64];
        sub_state_name(r.next, got, sizeof got);
        int ok = r.forward == rows[i].fwd && r.next.sub == want->sub && r.next.ask_out == want->ask_out &&
                 r.next.pending_in == want->pending_in;
        ok(ok, "%s: %s -> %s%s (got %s, forward %d)", title, rows[i].from,
                  rows[i].to ? rows[i].to : "no change", rows[i].fwd ? ", forwarded" : "", got, r.forward);
    }
}

int main(void)
{
    /* A.2.1 outbound subscribe: always routed. */
    static const row a21[] = {
        {"None", 1, "None + Pending Out"}, {"None + Pending Out", 1, NULL},
        {"None + Pending In", 1, "None + Pending Out+In"}, {"None + Pending Out+In", 1, NULL},
        {"To", 1, NULL}, {"To + Pending In", 1, NULL},
        {"From", 1, "From + Pending Out"}, {"From + Pending Out", 1, NULL}, {"Both", 1, NULL}};
    /* A.2.2 outbound unsubscribe. */
    static const row a22[] = {
        {"None", 1, NULL}, {"None + Pending Out", 1, "None"},
        {"None + Pending In", 1, NULL}, {"None + Pending Out+In", 1, "None + Pending In"},
        {"To", 1, "None"}, {"To + Pending In", 1, "None + Pending In"},
        {"From", 1, NULL}, {"From + Pending Out", 1, "From"}, {"Both", 1, "From"}};
    /* A.2.3 outbound subscribed (no Pending In: a pre-approval, not routed). */
    static const row a23[] = {
        {"None", 0, NULL}, {"None + Pending Out", 0, NULL},
        {"None + Pending In", 1, "From"}, {"None + Pending Out+In", 1, "From + Pending Out"},
        {"To", 0, NULL}, {"To + Pending In", 1, "Both"},
        {"From", 0, NULL}, {"From + Pending Out", 0, NULL}, {"Both", 0, NULL}};
    /* A.2.4 outbound unsubscribed. */
    static const row a24[] = {
        {"None", 0, NULL}, {"None + Pending Out", 0, NULL},
        {"None + Pending In", 1, "None"}, {"None + Pending Out+In", 1, "None + Pending Out"},
        {"To", 0, NULL}, {"To + Pending In", 1, "To"},
        {"From", 1, "None"}, {"From + Pending Out", 1, "None + Pending Out"}, {"Both", 1, "To"}};
    /* A.3.1 inbound subscribe (From/Both: answered by the server, not delivered). */
    static const row a31[] = {
        {"None", 1, "None + Pending In"}, {"None + Pending Out", 1, "None + Pending Out+In"},
        {"None + Pending In", 0, NULL}, {"None + Pending Out+In", 0, NULL},
        {"To", 1, "To + Pending In"}, {"To + Pending In", 0, NULL},
        {"From", 0, NULL}, {"From + Pending Out", 0, NULL}, {"Both", 0, NULL}};
    /* A.3.2 inbound unsubscribe. */
    static const row a32[] = {
        {"None", 0, NULL}, {"None + Pending Out", 0, NULL},
        {"None + Pending In", 1, "None"}, {"None + Pending Out+In", 1, "None + Pending Out"},
        {"To", 0, NULL}, {"To + Pending In", 1, "To"},
        {"From", 1, "None"}, {"From + Pending Out", 1, "None + Pending Out"}, {"Both", 1, "To"}};
    /* A.3.3 inbound subscribed. */
    static const row a33[] = {
        {"None", 0, NULL}, {"None + Pending Out", 1, "To"},
        {"None + Pending In", 0, NULL}, {"None + Pending Out+In", 1, "To + Pending In"},
        {"To", 0, NULL}, {"To + Pending In", 0, NULL},
        {"From", 0, NULL}, {"From + Pending Out", 1, "Both"}, {"Both", 0, NULL}};
    /* A.3.4 inbound unsubscribed. */
    static const row a34[] = {
        {"None", 0, NULL}, {"None + Pending Out", 1, "None"},
        {"None + Pending In", 0, NULL}, {"None + Pending Out+In", 1, "None + Pending In"},
        {"To", 1, "None"}, {"To + Pending In", 1, "None + Pending In"},
        {"From", 0, NULL}, {"From + Pending Out", 1, "From"}, {"Both", 1, "From"}};

    check_table("A.2.1 out subscribe", 1, SUBT_SUBSCRIBE, a21);
    check_table("A.2.2 out unsubscribe", 1, SUBT_UNSUBSCRIBE, a22);
    check_table("A.2.3 out subscribed", 1, SUBT_SUBSCRIBED, a23);
    check_table("A.2.4 out unsubscribed", 1, SUBT_UNSUBSCRIBED, a24);
    check_table("A.3.1 in subscribe", 0, SUBT_SUBSCRIBE, a31);
    check_table("A.3.2 in unsubscribe", 0, SUBT_UNSUBSCRIBE, a32);
    check_table("A.3.3 in subscribed", 0, SUBT_SUBSCRIBED, a33);
    check_table("A.3.4 in unsubscribed", 0, SUBT_UNSUBSCRIBED, a34);

    /* Auto-replies and presence side effects. */
    sub_result r = sub_inbound(*st_by_name("Both"), 1, SUBT_SUBSCRIBE);
    ok(r.auto_reply && !r.changed, "inbound subscribe from a subscriber is answered by the server");
    r = sub_inbound(*st_by_name("From + Pending Out"), 1, SUBT_SUBSCRIBE);
    ok(r.auto_reply, "inbound subscribe in From + Pending Out is answered by the server");
    /* §3.4 pre-approval. */
    r = sub_outbound(*st_by_name("None"), 0, SUBT_SUBSCRIBED);
    ok(!r.forward && r.next.approved && r.push, "subscribed without a request pre-approves (not routed)");
    sub_state pre = r.next;
    r = sub_inbound(pre, 1, SUBT_SUBSCRIBE);
    ok(r.auto_reply && !r.forward && r.next.sub == SUB_FROM && !r.next.approved && r.gained_from,
              "a pre-approved request is approved at once");
    sub_state pre_out = {SUB_NONE, 1, 0, 1};
    r = sub_inbound(pre_out, 1, SUBT_SUBSCRIBE);
    ok(r.next.sub == SUB_FROM && r.next.ask_out, "pre-approved with Pending Out -> From + Pending Out");
    r = sub_outbound(pre, 1, SUBT_UNSUBSCRIBED);
    ok(!r.forward && !r.next.approved && r.push, "unsubscribed cancels a pre-approval, not routed");
    r = sub_outbound(*st_by_name("Both"), 1, SUBT_UNSUBSCRIBED);
    ok(r.lost_from, "cancelling 'from' sends unavailable");
    r = sub_outbound(*st_by_name("None + Pending In"), 1, SUBT_SUBSCRIBED);
    ok(r.gained_from && r.push, "approving sends current presence and pushes");
    r = sub_inbound(*st_by_name("None"), 0, SUBT_SUBSCRIBE);
    ok(r.forward && r.next.pending_in && !r.push, "a request from a stranger: Pending In, no push");
    r = sub_inbound(*st_by_name("None"), 0, SUBT_UNSUBSCRIBE);
    ok(!r.forward && !r.changed, "unsubscribe from a stranger is dropped");
    r = sub_inbound(*st_by_name("None + Pending Out"), 1, SUBT_SUBSCRIBED);
    ok(r.push && r.changed, "an approval pushes");
    char buf[64];
    ok(!strcmp(sub_state_name(*st_by_name("None + Pending Out+In"), buf, sizeof buf), "None + Pending Out+In"),
              "state names as the RFC writes them");
    return tap_done();
}
