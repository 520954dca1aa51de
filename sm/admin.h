/* Administration requests to the sm (docs/admin-protocol.md): the online
 * sessions, kicking, status and announcements, asked by switchboardctl (or
 * any trusted component) in route envelopes in the namespace
 * urn:switchboard:admin. Only trusted components can send route envelopes
 * (the router refuses them from others), so only holders of the internal
 * secret can administer. */
#ifndef SB_SM_ADMIN_H
#define SB_SM_ADMIN_H
#include "sm/sm.h"

#define NS_SB_ADMIN "urn:switchboard:admin"

/* Answer the request req (an <admin/> element) that arrived inside the
 * route envelope route; the answer goes back in a route to the sender. */
void sm_admin_request(sm *s, const xnode *route, const xnode *req);

/* Offered by sm.c: end a session in its user's queue (after the work
 * already queued), telling c2s the reason (docs/sessions.md §4). */
void sm_session_end_later(sm_session *sess, const char *reason);

#endif
