/* The presence subscription state machine of RFC 6121 (§3 and the tables
 * of Appendix A), as pure functions: given the state of one roster item and
 * a subscription stanza, what the new state is and whether the stanza goes
 * on. No I/O here, so every transition is unit-tested (t/sm/test_sub.c).
 *
 * "user" is the owner of the roster, "contact" the item. Outbound: the user
 * sent the stanza (A.2). Inbound: the contact sent it to the user (A.3). */
#ifndef SB_SM_SUB_H
#define SB_SM_SUB_H
#include "storage/roster.h"

typedef enum { SUBT_SUBSCRIBE = 0, SUBT_SUBSCRIBED, SUBT_UNSUBSCRIBE, SUBT_UNSUBSCRIBED } sub_type;

typedef struct sub_state {
    roster_subscription sub;    /* none, to, from, both */
    int ask_out;                /* Pending Out: the user asked (ask='subscribe') */
    int pending_in;             /* Pending In: the contact asked, not answered */
    int approved;               /* pre-approved by the user (§3.4) */
} sub_state;

typedef struct sub_result {
    sub_state next;
    int forward;        /* outbound: route to the contact; inbound: deliver to the user */
    int changed;        /* the stored state changes (write it) */
    int push;           /* what a client sees (subscription, ask, approved) changed: roster push */
    int auto_reply;     /* inbound subscribe: answer 'subscribed' on the user's behalf */
    int lost_from;      /* the contact no longer gets the user's presence: send unavailable */
    int gained_from;    /* the contact now gets the user's presence: send current presence */
} sub_result;

/* exists: the contact is an item of the user's roster (hidden pending-in items count). */
sub_result sub_outbound(sub_state cur, int exists, sub_type t);
sub_result sub_inbound(sub_state cur, int exists, sub_type t);

/* "none", "to", "from", "both". */
const char *sub_name(roster_subscription s);
/* The state's name as RFC 6121 Appendix A writes it ("None + Pending Out+In"). */
const char *sub_state_name(sub_state s, char *out, size_t outlen);
/* "subscribe"... -> type; -1 if not a subscription type. */
int sub_type_parse(const char *s);
const char *sub_type_name(sub_type t);

static inline int sub_has_to(roster_subscription s) { return s == SUB_TO || s == SUB_BOTH; }
static inline int sub_has_from(roster_subscription s) { return s == SUB_FROM || s == SUB_BOTH; }

#endif
