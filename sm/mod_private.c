/* mod_private: private XML storage, jabber:iq:private (XEP-0049).
 *
 * Keyed by the namespace of each child of <query/>:
 * - get: one namespace per request (several children of the same namespace
 *   are allowed); the stored elements of that namespace, or the requested
 *   element(s) echoed empty when nothing is stored;
 * - set: each namespace in it replaces what was stored under it (several
 *   elements of one namespace are stored together); all or nothing;
 * - reserved namespaces ('jabber:...', 'http://jabber.org/...' and
 *   'vcard-temp', XEP-0049 §2.3) are refused with not-acceptable (406), as
 *   is a query without a child element;
 * - only the user's own sessions: anyone else gets forbidden;
 * - limits: modules/private/max-bytes for the XML of one set (default 64k)
 *   and modules/private/max-namespaces per user (default 100); beyond them
 *   not-acceptable, and nothing is stored.
 * Storage failures answer service-unavailable (type wait), the legacy 503
 * that jabberd gave for a failed xdb write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/xml_write.h"
#include "sm/module.h"
#include "storage/private.h"

#define NS_PRIVATE "jabber:iq:private"

static struct {
    size_t max_bytes;
    unsigned max_namespaces;
} P = {64 * 1024, 100};

static int reserved(const char *ns)
{
    return !ns || !*ns || !strncmp(ns, "jabber:", 7) || !strncmp(ns, "http://jabber.org/", 18) ||
           !strcmp(ns, "vcard-temp");
}

typedef struct pv_ctx {
    sm_iq *iq;
    sm_user *u;
} pv_ctx;

static void on_got(void *ud, storage_status st, const char *xml)
{
    pv_ctx *c = ud;
    sm_iq *iq = c->iq;
    sm_user *u = c->u;
    if (st != STORAGE_OK) {
        log_warn("user %s: loading private data failed: %s", u->bare, storage_status_string(st));
        sm_iq_error(iq, "service-unavailable", "wait");
    } else {
        stanza *r = sm_iq_result(iq->st->root);
        xnode *q = xnode_add_child(r->root, "query", NS_PRIVATE);
        stanza *stored = NULL;
        if (xml) {
            buf b = BUF_INIT;
            buf_append_str(&b, "<query xmlns='" NS_PRIVATE "'>");
            buf_append_str(&b, xml);
            buf_append_str(&b, "</query>");
            stored = sm_parse(b.data, b.len);
            buf_free(&b);
            if (!stored) log_warn("user %s: stored private data does not parse: ignored", u->bare);
        }
        const xnode *from = stored ? stored->root : iq->payload;
        for (xnode *e = xnode_first_element(from); e; e = xnode_next_element(e)) xnode_copy_into(q, e);
        if (stored) stanza_free(stored);
        sm_iq_reply(iq, r);
    }
    free(c);
    sm_user_release(u);
}

static void on_put(void *ud, storage_status st)
{
    pv_ctx *c = ud;
    sm_iq *iq = c->iq;
    sm_user *u = c->u;
    if (st == STORAGE_OK) {
        sm_iq_reply(iq, NULL);
    } else if (st == STORAGE_QUOTA) {
        log_info("user %s: private storage refused: more than %u namespaces", u->bare, P.max_namespaces);
        sm_iq_error(iq, "not-acceptable", NULL);
    } else if (st == STORAGE_NOT_FOUND) {
        sm_iq_error(iq, "forbidden", NULL);   /* the account is gone */
    } else {
        log_warn("user %s: storing private data failed: %s", u->bare, storage_status_string(st));
        sm_iq_error(iq, "service-unavailable", "wait");
    }
    free(c);
    sm_user_release(u);
}

static int from_owner(const sm_iq *iq)
{
    if (iq->session) return 1;
    char *fb = iq->from ? jid_normalize_bare(iq->from) : NULL;
    int own = fb && !strcmp(fb, iq->user->bare);
    free(fb);
    return own;
}

static void private_set(sm_iq *iq, pv_ctx *c)
{
    sm_user *u = iq->user;
    /* One entry per distinct namespace, in order of first appearance. */
    size_t n = xnode_count_elements(iq->payload);
    const char **nss = calloc(n, sizeof *nss);
    buf *xml = calloc(n, sizeof *xml);
    if (!nss || !xml) abort();
    size_t k = 0, total = 0;
    for (xnode *e = xnode_first_element(iq->payload); e; e = xnode_next_element(e)) {
        size_t i = 0;
        while (i < k && strcmp(nss[i], e->ns)) i++;
        if (i == k) {
            nss[k] = e->ns;
            xml[k++] = (buf)BUF_INIT;
        }
        size_t before = xml[i].len;
        xml_serialize(&xml[i], e, "");
        total += xml[i].len - before;
    }
    const char **texts = calloc(k, sizeof *texts);
    if (!texts) abort();
    for (size_t i = 0; i < k; i++) texts[i] = buf_cstr(&xml[i]);
    if (total > P.max_bytes) {
        log_info("user %s: private data of %zu bytes refused (max-bytes %zu)", u->bare, total, P.max_bytes);
        free(c);
        sm_iq_error(iq, "not-acceptable", NULL);
    } else {
        sm_user_hold(u);
        private_put(iq->sm->db, u->domain, u->node, nss, texts, k, P.max_namespaces, on_put, c);
    }
    for (size_t i = 0; i < k; i++) buf_free(&xml[i]);
    free(texts);
    free(xml);
    free(nss);
}

static void private_iq(sm_iq *iq)
{
    sm_user *u = iq->user;
    if (!u || !from_owner(iq)) {
        log_info("private storage of %s: refused to %s", u ? u->bare : "the server", iq->from ? iq->from : "?");
        sm_iq_error(iq, "forbidden", NULL);
        return;
    }
    if (strcmp(iq->payload->name, "query")) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    xnode *first = xnode_first_element(iq->payload);
    if (!first) {
        sm_iq_error(iq, "not-acceptable", NULL);
        return;
    }
    for (xnode *e = first; e; e = xnode_next_element(e)) {
        if (reserved(e->ns)) {
            log_info("user %s: private storage in reserved namespace '%s' refused", u->bare, e->ns ? e->ns : "");
            sm_iq_error(iq, "not-acceptable", NULL);
            return;
        }
        if (!iq->is_set && strcmp(e->ns, first->ns)) {
            /* XEP-0049 §2.3: one namespace per get. */
            sm_iq_error(iq, "bad-request", NULL);
            return;
        }
    }
    pv_ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->iq = iq;
    c->u = u;
    if (iq->is_set) {
        private_set(iq, c);
        return;
    }
    sm_user_hold(u);
    private_get(iq->sm->db, u->domain, u->node, first->ns, on_got, c);
}

static int private_init(sm *s)
{
    const xnode *cfg = sm_module_config(s, "private");
    long long max = config_node_int(cfg, "max-bytes", 64 * 1024);
    long long nss = config_node_int(cfg, "max-namespaces", 100);
    if (max < 256 || max > 16 * 1024 * 1024) {
        log_error("modules/private/max-bytes must be between 256 and 16M (got %lld)", max);
        return -1;
    }
    if (nss < 1 || nss > 100000) {
        log_error("modules/private/max-namespaces must be between 1 and 100000 (got %lld)", nss);
        return -1;
    }
    P.max_bytes = (size_t)max;
    P.max_namespaces = (unsigned)nss;
    return 0;
}

static const sm_iq_handler private_iqs[] = {
    {NS_PRIVATE, SM_IQ_ACCOUNT, private_iq},
    {NULL, 0, NULL},
};

static const char *const private_features[] = {NS_PRIVATE, NULL};

static const config_key private_keys[] = {
    {"max-bytes", CFG_INT, 0, "largest private XML stored by one set, serialized (default 64k)"},
    {"max-namespaces", CFG_INT, 0, "namespaces of private XML per user (default 100)"},
    {NULL, 0, 0, NULL},
};

const sm_module mod_private = {
    .name = "private",
    .iqs = private_iqs,
    .server_features = private_features,
    .account_features = private_features,
    .init = private_init,
    .config_keys = private_keys,
};
