/* The routing table: which connection owns which name. */
#include <stdlib.h>
#include <string.h>

#include "common/jid.h"
#include "common/log.h"
#include "common/xml_write.h"
#include "router/router.h"

const component_acl *route_find_acl(const router *r, const char *name)
{
    const component_acl *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < r->nacls; i++) {
        const component_acl *a = &r->acls[i];
        size_t plen = strlen(a->pattern);
        if (plen && a->pattern[plen - 1] == '*') {
            /* "c2s-*" matches by prefix, "*" matches any name; the longest wins. */
            if (strncmp(a->pattern, name, plen - 1) == 0 && (!best || plen - 1 > best_len)) {
                best = a;
                best_len = plen - 1;
            }
        } else if (strcmp(a->pattern, name) == 0) {
            return a;   /* an exact name beats every pattern */
        }
    }
    return best;
}

int route_add(router *r, const char *name, rclient *rc)
{
    rclient *holder = strmap_get(&r->routes, name);
    if (holder && holder != rc) return -1;
    strmap_put(&r->routes, name, rc);
    strmap_put(&r->known, name, (void *)1);
    return 0;
}

void route_remove_all(router *r, rclient *rc)
{
    if (rc->name && strmap_get(&r->routes, rc->name) == rc) {
        strmap_del(&r->routes, rc->name);
        route_announce(r, rc->name, 0, rc);
    }
    for (size_t i = 0; i < rc->nnames; i++) {
        if (strmap_get(&r->routes, rc->names[i]) == rc) {
            strmap_del(&r->routes, rc->names[i]);
            route_announce(r, rc->names[i], 0, rc);
        }
    }
    if (r->default_route == rc) {
        r->default_route = NULL;
        log_warn("default route (%s) is gone: stanzas for other domains will bounce", rc->name);
    }
}

rclient *route_lookup(const router *r, const char *name)
{
    return strmap_get(&r->routes, name);
}

int route_is_known(const router *r, const char *name)
{
    return strmap_get(&r->known, name) != NULL;
}

int route_owns(const rclient *rc, const char *name)
{
    if (rc->name && !strcmp(rc->name, name)) return 1;
    for (size_t i = 0; i < rc->nnames; i++)
        if (!strcmp(rc->names[i], name)) return 1;
    return 0;
}

static void announce_one(router *r, rclient *to, const char *name, int online)
{
    buf *o = &r->out;
    buf_reset(o);
    buf_append_str(o, online ? "<online xmlns='" NS_SB_ROUTER "' name='" : "<offline xmlns='" NS_SB_ROUTER "' name='");
    xml_escape_attr(o, name, strlen(name));
    buf_append_str(o, "'/>");
    conn_write(to->c, o->data, o->len);
}

void route_announce(router *r, const char *name, int online, const rclient *skip)
{
    for (rclient *rc = r->clients; rc; rc = rc->next)
        if (rc != skip && rc->trusted && rc->state == RC_READY) announce_one(r, rc, name, online);
}

void route_announce_all_to(router *r, rclient *rc)
{
    size_t pos = 0;
    const char *name;
    void *owner;
    while (strmap_next(&r->routes, &pos, &name, &owner))
        if (owner != rc) announce_one(r, rc, name, 1);
}

int route_domain_of(const char *s, char *out, size_t outlen)
{
    /* RFC 7622 §3.1: the resource starts at the first '/', the node ends at
     * the first '@' before it. Only the domain is needed to route, and the
     * common case (ASCII) is prepared by lower-casing, without stringprep. */
    const char *slash = strchr(s, '/');
    size_t full = slash ? (size_t)(slash - s) : strlen(s);
    const char *at = memchr(s, '@', full);
    const char *d = at ? at + 1 : s;
    size_t n = full - (size_t)(d - s);
    if (n == 0 || n >= outlen) return -1;
    if (at && at == s) return -1;            /* empty node */
    if (slash && slash[1] == '\0') return -1; /* empty resource */
    int ascii = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)d[i];
        if (ch >= 0x80) ascii = 0;
        else if (ch <= ' ' || ch == '@' || ch == '"' || ch == '&' || ch == '\'' || ch == '<' || ch == '>' || ch == '\\')
            return -1;
    }
    if (ascii) {
        for (size_t i = 0; i < n; i++) out[i] = (char)((d[i] >= 'A' && d[i] <= 'Z') ? d[i] + 32 : d[i]);
        out[n] = '\0';
        if (n > 1 && out[n - 1] == '.') out[n - 1] = '\0';   /* one trailing dot is allowed */
        return out[0] == '.' ? -1 : 0;
    }
    char tmp[JID_PART_MAX + 1];
    if (n > JID_PART_MAX) return -1;
    memcpy(tmp, d, n);
    tmp[n] = '\0';
    return jid_nameprep(tmp, out, outlen) < 0 ? -1 : 0;
}
