/* mod_ping: XMPP Ping (XEP-0199). The server answers pings to its domain,
 * and to a user's bare JID on the user's behalf (XEP-0199 §4.2 and §4.4: an
 * iq to a bare JID is the server's to handle). Pings to a full JID are the
 * client's business and are delivered like any other iq. */
#include "sm/module.h"

#define NS_PING "urn:xmpp:ping"

static void ping_iq(sm_iq *iq)
{
    if (iq->is_set) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    sm_iq_reply(iq, NULL);   /* the empty result is the pong */
}

static const sm_iq_handler ping_iqs[] = {
    {NS_PING, SM_IQ_SERVER | SM_IQ_ACCOUNT, ping_iq},
    {NULL, 0, NULL},
};

static const char *const ping_features[] = {NS_PING, NULL};

const sm_module mod_ping = {
    .name = "ping",
    .iqs = ping_iqs,
    .server_features = ping_features,
    .account_features = ping_features,
};
