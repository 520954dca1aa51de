/* mod_search: the user directory, jabber:iq:search (XEP-0055), over the
 * vCards of the domain's users (mod_vcard keeps FN, GIVEN, FAMILY,
 * NICKNAME and EMAIL/USERID in columns).
 *
 * Served at each hosted domain (disco: feature jabber:iq:search, identity
 * directory/user). A get returns the legacy fields (<first/> <last/>
 * <nick/> <email/>) and the same as a data form (XEP-0004, FORM_TYPE
 * jabber:iq:search); a set with the legacy fields answers with legacy
 * <item jid='...'/> elements, a set with a submitted form with a result
 * form (<reported/> and <item/>s).
 *
 * Matching: every field given must match; each is a case-insensitive
 * PREFIX match of the vCard field ("jul" finds "Juliet"), which the
 * indexes of migration 002 keep fast. At most modules/search/max-results
 * (default 50) users are returned, ordered by JID. Only users of the
 * hosted domains may search, unless modules/search/allow-remote is true.
 * A set without any non-empty field is refused with not-acceptable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jid.h"
#include "common/log.h"
#include "sm/module.h"
#include "storage/vcard.h"

#define NS_SEARCH "jabber:iq:search"
#define NS_XDATA "jabber:x:data"

static struct {
    unsigned max_results;
    int allow_remote;
} S = {50, 0};

static const struct {
    const char *var, *label;
} search_fields[] = {
    {"first", "Given Name"},
    {"last", "Family Name"},
    {"nick", "Nickname"},
    {"email", "Email"},
};
#define NFIELDS (sizeof search_fields / sizeof search_fields[0])

static void add_field(xnode *x, const char *type, const char *var, const char *label, const char *value)
{
    xnode *f = xnode_add_child(x, "field", NULL);
    if (type) xnode_set_attr(f, "type", type);
    xnode_set_attr(f, "var", var);
    if (label) xnode_set_attr(f, "label", label);
    if (value) xnode_add_text_child(f, "value", NULL, value);
}

static void search_form(sm_iq *iq)
{
    stanza *r = sm_iq_result(iq->st->root);
    xnode *q = xnode_add_child(r->root, "query", NS_SEARCH);
    xnode_add_text_child(q, "instructions", NULL,
                         "Fill in one or more fields to search for users of this server by their vCard"
                         " (the start of each field, case does not matter).");
    for (size_t i = 0; i < NFIELDS; i++) xnode_add_child(q, search_fields[i].var, NULL);
    xnode *x = xnode_add_child(q, "x", NS_XDATA);
    xnode_set_attr(x, "type", "form");
    xnode_add_text_child(x, "title", NULL, "User Directory Search");
    xnode_add_text_child(x, "instructions", NULL,
                         "Fill in one or more fields; each matches the start of the vCard field,"
                         " whatever the case.");
    add_field(x, "hidden", "FORM_TYPE", NULL, NS_SEARCH);
    for (size_t i = 0; i < NFIELDS; i++)
        add_field(x, "text-single", search_fields[i].var, search_fields[i].label, NULL);
    sm_iq_reply(iq, r);
}

typedef struct search_ctx {
    sm_iq *iq;
    sm_user *held;      /* the sender's user, held while the query runs, or NULL */
    int form;           /* answer with a data form */
    char *domain;
} search_ctx;

static void add_value_field(xnode *item, const char *var, const char *value)
{
    xnode *f = xnode_add_child(item, "field", NULL);
    xnode_set_attr(f, "var", var);
    xnode_add_text_child(f, "value", NULL, value ? value : "");
}

static void on_results(void *ud, storage_status st, const vcard_search_row *rows, size_t n)
{
    search_ctx *c = ud;
    sm_iq *iq = c->iq;
    if (st != STORAGE_OK) {
        log_warn("directory search in %s for %s failed: %s", c->domain, iq->from ? iq->from : "?",
                 storage_status_string(st));
        sm_iq_error(iq, "internal-server-error", "wait");
    } else {
        log_debug("directory search in %s for %s: %zu users", c->domain, iq->from ? iq->from : "?", n);
        stanza *r = sm_iq_result(iq->st->root);
        xnode *q = xnode_add_child(r->root, "query", NS_SEARCH);
        xnode *x = NULL;
        if (c->form) {
            x = xnode_add_child(q, "x", NS_XDATA);
            xnode_set_attr(x, "type", "result");
            add_field(x, "hidden", "FORM_TYPE", NULL, NS_SEARCH);
            xnode *rep = xnode_add_child(x, "reported", NULL);
            add_field(rep, "jid-single", "jid", "JID", NULL);
            for (size_t i = 0; i < NFIELDS; i++)
                add_field(rep, "text-single", search_fields[i].var, search_fields[i].label, NULL);
        }
        for (size_t i = 0; i < n; i++) {
            const vcard_search_row *row = &rows[i];
            if (!row->username) continue;
            size_t len = strlen(row->username) + strlen(c->domain) + 2;
            char *jid = malloc(len);
            if (!jid) abort();
            snprintf(jid, len, "%s@%s", row->username, c->domain);
            const char *vals[NFIELDS] = {row->first, row->last, row->nick, row->email};
            if (x) {
                xnode *item = xnode_add_child(x, "item", NULL);
                add_value_field(item, "jid", jid);
                for (size_t k = 0; k < NFIELDS; k++) add_value_field(item, search_fields[k].var, vals[k]);
            } else {
                xnode *item = xnode_add_child(q, "item", NULL);
                xnode_set_attr(item, "jid", jid);
                for (size_t k = 0; k < NFIELDS; k++) {
                    if (vals[k]) xnode_add_text_child(item, search_fields[k].var, NULL, vals[k]);
                    else xnode_add_child(item, search_fields[k].var, NULL);
                }
            }
            free(jid);
        }
        sm_iq_reply(iq, r);
    }
    sm_user *held = c->held;
    free(c->domain);
    free(c);
    if (held) sm_user_release(held);
}

/* The value of a submitted form field, or NULL. */
static const char *form_value(const xnode *x, const char *var)
{
    for (xnode *f = xnode_child(x, "field", NS_XDATA); f; f = xnode_next(f, "field", NS_XDATA)) {
        const char *v = xnode_attr(f, "var");
        if (v && !strcmp(v, var)) return xnode_child_text(f, "value", NS_XDATA);
    }
    return NULL;
}

static int may_search(const sm_iq *iq)
{
    if (S.allow_remote) return 1;
    jid j = JID_INIT;
    int ok = iq->from && jid_parse(&j, iq->from) == 0 && j.node && sm_is_local(iq->sm, j.domain);
    jid_free(&j);
    return ok;
}

static void search_iq(sm_iq *iq)
{
    sm *s = iq->sm;
    if (strcmp(iq->payload->name, "query")) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    if (!may_search(iq)) {
        log_info("directory search by %s refused: not a local user", iq->from ? iq->from : "?");
        sm_iq_error(iq, "forbidden", NULL);
        return;
    }
    if (!iq->is_set) {
        search_form(iq);
        return;
    }
    const char *to = xnode_attr(iq->st->root, "to");
    const char *domain = to && sm_is_local(s, to) ? to : (s->nhosts ? s->hosts[0] : NULL);
    if (!domain) {
        sm_iq_error(iq, "service-unavailable", NULL);
        return;
    }
    const char *vals[NFIELDS] = {NULL};
    xnode *x = xnode_child(iq->payload, "x", NS_XDATA);
    if (x) {
        const char *type = xnode_attr(x, "type");
        const char *form_type = form_value(x, "FORM_TYPE");
        if ((type && strcmp(type, "submit")) || (form_type && strcmp(form_type, NS_SEARCH))) {
            sm_iq_error(iq, "bad-request", NULL);
            return;
        }
        for (size_t i = 0; i < NFIELDS; i++) vals[i] = form_value(x, search_fields[i].var);
    } else {
        for (size_t i = 0; i < NFIELDS; i++) vals[i] = xnode_child_text(iq->payload, search_fields[i].var, NS_SEARCH);
    }
    int any = 0;
    for (size_t i = 0; i < NFIELDS; i++) {
        if (vals[i] && !*vals[i]) vals[i] = NULL;
        if (vals[i]) any = 1;
    }
    if (!any) {
        sm_iq_error(iq, "not-acceptable", NULL);
        return;
    }
    search_ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->iq = iq;
    c->form = x != NULL;
    c->domain = strdup(domain);
    if (!c->domain) abort();
    if (iq->session) {
        /* The answer goes to this session: keep it until then. */
        c->held = iq->session->user;
        sm_user_hold(c->held);
    }
    vcard_search_query q = {vals[0], vals[1], vals[2], vals[3]};
    vcard_search(s->db, c->domain, &q, S.max_results, on_results, c);
}

static int search_init(sm *s)
{
    const xnode *cfg = sm_module_config(s, "search");
    long long max = config_node_int(cfg, "max-results", 50);
    if (max < 1 || max > 10000) {
        log_error("modules/search/max-results must be between 1 and 10000 (got %lld)", max);
        return -1;
    }
    S.max_results = (unsigned)max;
    S.allow_remote = config_node_bool(cfg, "allow-remote", 0);
    return 0;
}

static const sm_iq_handler search_iqs[] = {
    {NS_SEARCH, SM_IQ_SERVER, search_iq},
    {NULL, 0, NULL},
};

static const char *const search_features[] = {NS_SEARCH, NULL};

static const sm_identity search_identities[] = {
    {"directory", "user", "User Directory"},
    {NULL, NULL, NULL},
};

static const config_key search_keys[] = {
    {"max-results", CFG_INT, 0, "most users one search returns (default 50)"},
    {"allow-remote", CFG_BOOL, 0, "let users of other servers search the directory (default false)"},
    {NULL, 0, 0, NULL},
};

const sm_module mod_search = {
    .name = "search",
    .iqs = search_iqs,
    .server_features = search_features,
    .identities = search_identities,
    .init = search_init,
    .config_keys = search_keys,
};
