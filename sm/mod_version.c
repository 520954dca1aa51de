/* mod_version: Software Version (XEP-0092, jabber:iq:version) for the
 * server: name, version and, unless <hide-os/> is set, the operating
 * system (XEP-0092 §4 leaves revealing it to the operator). Queries to an
 * account or a resource are not the server's: a full JID is delivered to
 * the client, a bare JID gets service-unavailable from the core. */
#include <stdio.h>
#include <sys/utsname.h>

#include "sm/module.h"

#define NS_VERSION "jabber:iq:version"

/* The release, the same as project(version:) in the top meson.build;
 * meson may pass -DSB_VERSION="..." to keep the two in one place. */
#ifndef SB_VERSION
#define SB_VERSION "0.1.0"
#endif

static void version_iq(sm_iq *iq)
{
    if (iq->is_set) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    stanza *r = sm_iq_result(iq->st->root);
    xnode *q = xnode_add_child(r->root, "query", NS_VERSION);
    xnode_add_text_child(q, "name", NULL, "Switchboard");
    xnode_add_text_child(q, "version", NULL, SB_VERSION);
    const xnode *cfg = sm_module_config(iq->sm, "version");
    struct utsname un;
    if (!config_node_bool(cfg, "hide-os", 0) && uname(&un) == 0) {
        char os[sizeof un.sysname + sizeof un.release + 2];
        snprintf(os, sizeof os, "%s %s", un.sysname, un.release);
        xnode_add_text_child(q, "os", NULL, os);
    }
    sm_iq_reply(iq, r);
}

static const sm_iq_handler version_iqs[] = {
    {NS_VERSION, SM_IQ_SERVER, version_iq},
    {NULL, 0, NULL},
};

static const char *const version_features[] = {NS_VERSION, NULL};

static const config_key version_keys[] = {
    {"hide-os", CFG_BOOL, 0, "leave the operating system out of jabber:iq:version answers (default false)"},
    {NULL, 0, 0, NULL},
};

const sm_module mod_version = {
    .name = "version",
    .iqs = version_iqs,
    .server_features = version_features,
    .config_keys = version_keys,
};
