/* mod_time: the server's time, as Entity Time (XEP-0202, urn:xmpp:time:
 * <tzo/> and <utc/> in XEP-0082 format) and as the legacy jabber:iq:time
 * (XEP-0090: <utc/> as CCYYMMDDThh:mm:ss, <tz/> and <display/>). With
 * <hide-timezone/> the server reports UTC and reveals nothing of where it
 * is (XEP-0202 §7). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sm/module.h"

#define NS_TIME "urn:xmpp:time"
#define NS_IQ_TIME "jabber:iq:time"

/* The local time, or UTC when the operator hides the time zone (1). */
static int now_tm(sm *s, time_t t, struct tm *tm)
{
    if (config_node_bool(sm_module_config(s, "time"), "hide-timezone", 0)) {
        gmtime_r(&t, tm);
        return 1;
    }
    localtime_r(&t, tm);
    return 0;
}

static void time_iq(sm_iq *iq)
{
    if (iq->is_set) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    time_t t = time(NULL);
    struct tm utc, local;
    gmtime_r(&t, &utc);
    int hidden = now_tm(iq->sm, t, &local);
    stanza *r = sm_iq_result(iq->st->root);
    char buf[64];
    if (!strcmp(iq->payload->name, "time") && iq->payload->ns && !strcmp(iq->payload->ns, NS_TIME)) {
        xnode *q = xnode_add_child(r->root, "time", NS_TIME);
        long off = hidden ? 0 : local.tm_gmtoff;
        char sign = off < 0 ? '-' : '+';
        if (off < 0) off = -off;
        snprintf(buf, sizeof buf, "%c%02ld:%02ld", sign, off / 3600, (off % 3600) / 60);
        xnode_add_text_child(q, "tzo", NULL, buf);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
        xnode_add_text_child(q, "utc", NULL, buf);
    } else {
        xnode *q = xnode_add_child(r->root, "query", NS_IQ_TIME);
        strftime(buf, sizeof buf, "%Y%m%dT%H:%M:%S", &utc);
        xnode_add_text_child(q, "utc", NULL, buf);
        if (hidden || !strftime(buf, sizeof buf, "%Z", &local)) snprintf(buf, sizeof buf, "UTC");
        xnode_add_text_child(q, "tz", NULL, buf);
        strftime(buf, sizeof buf, "%a %b %d %H:%M:%S %Y", &local);
        xnode_add_text_child(q, "display", NULL, buf);
    }
    sm_iq_reply(iq, r);
}

static const sm_iq_handler time_iqs[] = {
    {NS_TIME, SM_IQ_SERVER, time_iq},
    {NS_IQ_TIME, SM_IQ_SERVER, time_iq},
    {NULL, 0, NULL},
};

static const char *const time_features[] = {NS_TIME, NS_IQ_TIME, NULL};

static const config_key time_keys[] = {
    {"hide-timezone", CFG_BOOL, 0, "answer in UTC, revealing no time zone (default false)"},
    {NULL, 0, 0, NULL},
};

const sm_module mod_time = {
    .name = "time",
    .iqs = time_iqs,
    .server_features = time_features,
    .config_keys = time_keys,
};
