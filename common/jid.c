/* JIDs: parsing per RFC 7622 §3.1 and preparation with the RFC 3920 §3 /
 * RFC 6122 stringprep profiles (Nodeprep, Nameprep, Resourceprep) from
 * libidn. A prepared jid lives in one allocation (jid.mem). */
#include "common/jid.h"
#include "common/utf8.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <stringprep.h>

/* Longest input accepted at all: three full parts and the two separators
 * (3071 bytes), plus room for the domain's trailing dot that preparation
 * removes. Anything longer cannot prepare into a valid JID unless it is
 * stuffed with characters that map to nothing, and is refused before any
 * work is done. */
#define JID_INPUT_MAX (3 * JID_PART_MAX + 2 + 2)

/* stringprep() works in place and needs room for the prepared string, which
 * can be longer than the input (NFKC, case folding of ß to ss). A result
 * that does not fit here is far beyond JID_PART_MAX anyway. */
#define JID_PREP_BUF (JID_INPUT_MAX + JID_PART_MAX + 1)

typedef enum { PART_NODE, PART_DOMAIN, PART_RESOURCE } jid_part;


static int is_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

/* The three profiles restricted to ASCII input, where they reduce to case
 * folding and a few prohibited characters. Most JIDs are ASCII; this spares
 * them libidn's UCS-4 round trip. Returns 0, or -1 if prohibited. */
static int prep_ascii(jid_part part, const char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c == 0x7f) {
            /* C.2.1 ASCII controls: prohibited by Nodeprep and Resourceprep;
             * Nameprep leaves them to the host name check below. */
            if (part != PART_DOMAIN)
                return -1;
        }
        if (part == PART_NODE && strchr(" \"&'/:<>@", c) && c != '\0')
            return -1; /* C.1.1 space and the Nodeprep extra table */
        if (part != PART_RESOURCE && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a'); /* B.2 case folding */
        out[i] = (char)c;
    }
    out[len] = '\0';
    return 0;
}

/* Prepare in[0..len) with the profile for part into out (outlen bytes).
 * Returns the prepared length, or -1. Empty results are refused: no part of
 * a JID may be empty when it is present. */
static int prep_part(jid_part part, const char *in, size_t len, char *out, size_t outlen)
{
    if (len == 0 || len > JID_INPUT_MAX || !utf8_valid(in, len))
        return -1;
    size_t outlen_needed;
    if (is_ascii(in, len)) {
        if (len >= outlen)
            return -1;
        if (prep_ascii(part, in, len, out) < 0)
            return -1;
        outlen_needed = len;
    } else {
        char work[JID_PREP_BUF];
        memcpy(work, in, len);
        work[len] = '\0';
        const Stringprep_profile *profile =
            part == PART_NODE ? stringprep_xmpp_nodeprep
            : part == PART_DOMAIN ? stringprep_nameprep
            : stringprep_xmpp_resourceprep;
        if (stringprep(work, sizeof work, 0, profile) != STRINGPREP_OK)
            return -1;
        outlen_needed = strlen(work);
        if (outlen_needed >= outlen)
            return -1;
        memcpy(out, work, outlen_needed + 1);
    }
    if (outlen_needed == 0 || outlen_needed > JID_PART_MAX)
        return -1;
    return (int)outlen_needed;
}

/* Characters allowed in ASCII form in a host name label: letters, digits,
 * hyphen (STD 3), and underscore, which real service names do carry. */
static int host_ascii_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || c == '-' || c == '_';
}

/* Replace the IDNA label separators U+3002, U+FF0E and U+FF61 (RFC 3490
 * §3.1) by '.', in place. Returns the new length. */
static size_t map_label_separators(char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        const unsigned char *p = (const unsigned char *)s + i;
        if (len - i >= 3 && ((p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x82)
                             || (p[0] == 0xef && p[1] == 0xbc && p[2] == 0x8e)
                             || (p[0] == 0xef && p[1] == 0xbd && p[2] == 0xa1))) {
            s[o++] = '.';
            i += 3;
        } else {
            s[o++] = s[i++];
        }
    }
    s[o] = '\0';
    return o;
}

/* An IP literal domainpart ("192.0.2.1" or "[2001:db8::1]"), kept as is. */
static int is_ip_literal(const char *in, size_t len)
{
    char addr[64];
    unsigned char bin[16];
    if (len >= 2 && in[0] == '[' && in[len - 1] == ']') {
        if (len - 2 >= sizeof addr)
            return 0;
        memcpy(addr, in + 1, len - 2);
        addr[len - 2] = '\0';
        return inet_pton(AF_INET6, addr, bin) == 1;
    }
    if (len >= sizeof addr)
        return 0;
    memcpy(addr, in, len);
    addr[len] = '\0';
    return inet_pton(AF_INET, addr, bin) == 1;
}

/* Prepare a domainpart: IP literal as is, otherwise Nameprep, one trailing
 * dot removed, then every label 1..63 bytes with only host name characters
 * among its ASCII. */
static int prep_domain(const char *in, size_t len, char *out, size_t outlen)
{
    if (len > 0 && in[0] == '[') {
        if (!is_ip_literal(in, len) || len >= outlen)
            return -1;
        memcpy(out, in, len);
        out[len] = '\0';
        return (int)len;
    }
    /* The trailing dot goes before the length limit applies, whether it
     * was typed as '.' or as one of the IDNA separators. */
    int stripped = len > 0 && in[len - 1] == '.';
    int n = prep_part(PART_DOMAIN, in, len - (size_t)stripped, out, outlen);
    if (n < 0)
        return -1;
    size_t dlen = map_label_separators(out, (size_t)n);
    if (!stripped && dlen > 0 && out[dlen - 1] == '.')
        out[--dlen] = '\0';
    if (dlen == 0)
        return -1;
    if (is_ip_literal(out, dlen))
        return (int)dlen;
    size_t label = 0;
    for (size_t i = 0; i <= dlen; i++) {
        unsigned char c = (unsigned char)out[i];
        if (i == dlen || c == '.') {
            if (label == 0 || label > 63)
                return -1;
            label = 0;
            continue;
        }
        if (c < 0x80 && !host_ascii_ok(c))
            return -1;
        label++;
    }
    return (int)dlen;
}

int jid_nodeprep(const char *in, char *out, size_t outlen)
{
    return in ? prep_part(PART_NODE, in, strnlen(in, JID_INPUT_MAX + 1), out, outlen) : -1;
}

int jid_nameprep(const char *in, char *out, size_t outlen)
{
    return in ? prep_domain(in, strnlen(in, JID_INPUT_MAX + 1), out, outlen) : -1;
}

int jid_resourceprep(const char *in, char *out, size_t outlen)
{
    return in ? prep_part(PART_RESOURCE, in, strnlen(in, JID_INPUT_MAX + 1), out, outlen) : -1;
}

static void jid_clear(jid *j)
{
    j->node = j->domain = j->resource = j->bare = j->full = j->mem = NULL;
}

/* Lay out prepared parts in one allocation:
 * node \0 domain \0 resource \0 bare \0 full \0. Returns 0 or -1. */
static int jid_assemble(jid *j, const char *node, size_t nlen, const char *domain, size_t dlen,
                        const char *resource, size_t rlen)
{
    size_t bare_len = (node ? nlen + 1 : 0) + dlen;
    size_t full_len = bare_len + (resource ? rlen + 1 : 0);
    size_t size = (node ? nlen + 1 : 0) + dlen + 1 + (resource ? rlen + 1 : 0)
                + bare_len + 1 + full_len + 1;
    char *mem = malloc(size);
    if (!mem)
        return -1;
    char *p = mem;
    j->mem = mem;
    j->node = NULL;
    if (node) {
        j->node = p;
        memcpy(p, node, nlen);
        p[nlen] = '\0';
        p += nlen + 1;
    }
    j->domain = p;
    memcpy(p, domain, dlen);
    p[dlen] = '\0';
    p += dlen + 1;
    j->resource = NULL;
    if (resource) {
        j->resource = p;
        memcpy(p, resource, rlen);
        p[rlen] = '\0';
        p += rlen + 1;
    }
    j->bare = p;
    if (node) {
        memcpy(p, node, nlen);
        p[nlen] = '@';
        p += nlen + 1;
    }
    memcpy(p, domain, dlen);
    p[dlen] = '\0';
    p += dlen + 1;
    j->full = p;
    memcpy(p, j->bare, bare_len);
    p += bare_len;
    if (resource) {
        *p++ = '/';
        memcpy(p, resource, rlen);
        p += rlen;
    }
    *p = '\0';
    return 0;
}

/* Prepare the raw parts (node/resource NULL when absent) and build j. */
static int jid_build(jid *j, const char *node, size_t nlen, const char *domain, size_t dlen,
                     const char *resource, size_t rlen)
{
    char pnode[JID_PART_MAX + 1], pdomain[JID_PART_MAX + 1], presource[JID_PART_MAX + 1];
    int pn = 0, pd, pr = 0;
    jid_clear(j);
    if (!domain)
        return -1;
    if (node && (pn = prep_part(PART_NODE, node, nlen, pnode, sizeof pnode)) < 0)
        return -1;
    if ((pd = prep_domain(domain, dlen, pdomain, sizeof pdomain)) < 0)
        return -1;
    if (resource && (pr = prep_part(PART_RESOURCE, resource, rlen, presource, sizeof presource)) < 0)
        return -1;
    if (jid_assemble(j, node ? pnode : NULL, (size_t)pn, pdomain, (size_t)pd,
                     resource ? presource : NULL, (size_t)pr) < 0) {
        jid_clear(j);
        return -1;
    }
    return 0;
}

int jid_parse(jid *j, const char *s)
{
    jid_clear(j);
    if (!s)
        return -1;
    size_t len = strnlen(s, JID_INPUT_MAX + 1);
    if (len > JID_INPUT_MAX || !utf8_valid(s, len))
        return -1;
    /* RFC 7622 §3.1: the first '/' starts the resourcepart; an '@' before it
     * ends the localpart. */
    const char *slash = memchr(s, '/', len);
    size_t head = slash ? (size_t)(slash - s) : len;
    const char *at = memchr(s, '@', head);
    const char *node = NULL, *domain = s, *resource = NULL;
    size_t nlen = 0, dlen = head, rlen = 0;
    if (at) {
        node = s;
        nlen = (size_t)(at - s);
        domain = at + 1;
        dlen = head - nlen - 1;
    }
    if (slash) {
        resource = slash + 1;
        rlen = len - head - 1;
    }
    return jid_build(j, node, nlen, domain, dlen, resource, rlen);
}

int jid_set(jid *j, const char *node, const char *domain, const char *resource)
{
    jid_clear(j);
    if (!domain)
        return -1;
    size_t nlen = node ? strnlen(node, JID_INPUT_MAX + 1) : 0;
    size_t dlen = strnlen(domain, JID_INPUT_MAX + 1);
    size_t rlen = resource ? strnlen(resource, JID_INPUT_MAX + 1) : 0;
    return jid_build(j, node, nlen, domain, dlen, resource, rlen);
}

void jid_copy(jid *dst, const jid *src)
{
    jid_clear(dst);
    if (!src || !src->mem || !src->full)
        return;
    /* full is the last string in the block */
    size_t size = (size_t)(src->full - src->mem) + strlen(src->full) + 1;
    char *mem = malloc(size);
    if (!mem)
        abort(); /* no error return in the interface; out of memory is fatal */
    memcpy(mem, src->mem, size);
    dst->mem = mem;
#define JID_REBASE(f) dst->f = src->f ? mem + (src->f - src->mem) : NULL
    JID_REBASE(node);
    JID_REBASE(domain);
    JID_REBASE(resource);
    JID_REBASE(bare);
    JID_REBASE(full);
#undef JID_REBASE
}

int jid_set_resource(jid *j, const char *resource)
{
    if (!j->domain)
        return -1;
    char presource[JID_PART_MAX + 1];
    int pr = 0;
    if (resource && (pr = prep_part(PART_RESOURCE, resource, strnlen(resource, JID_INPUT_MAX + 1),
                                    presource, sizeof presource)) < 0)
        return -1;
    jid next;
    if (jid_assemble(&next, j->node, j->node ? strlen(j->node) : 0, j->domain, strlen(j->domain),
                     resource ? presource : NULL, (size_t)pr) < 0)
        return -1;
    free(j->mem);
    *j = next;
    return 0;
}

void jid_free(jid *j)
{
    if (!j)
        return;
    free(j->mem);
    jid_clear(j);
}

int jid_equal(const jid *a, const jid *b)
{
    if (!a->full || !b->full)
        return 0;
    return strcmp(a->full, b->full) == 0;
}

int jid_equal_bare(const jid *a, const jid *b)
{
    if (!a->bare || !b->bare)
        return 0;
    return strcmp(a->bare, b->bare) == 0;
}

static char *jid_normalize_part(const char *s, int bare)
{
    jid j;
    if (jid_parse(&j, s) < 0)
        return NULL;
    char *out = strdup(bare ? j.bare : j.full);
    jid_free(&j);
    return out;
}

char *jid_normalize(const char *s)
{
    return jid_normalize_part(s, 0);
}

char *jid_normalize_bare(const char *s)
{
    return jid_normalize_part(s, 1);
}

/* Fast path for the plain ASCII domains almost every server uses; anything
 * else goes through Nameprep. A trailing dot is dropped (RFC 7622 §3.2). */
int jid_domain_of(const char *s, char *out, size_t outlen)
{
    if (!s || outlen < 2) return -1;
    const char *slash = strchr(s, '/');
    size_t end = slash ? (size_t)(slash - s) : strlen(s);
    const char *at = memchr(s, '@', end);
    const char *d = at ? at + 1 : s;
    size_t dlen = end - (size_t)(d - s);
    if (dlen > 0 && d[dlen - 1] == '.') dlen--;
    /* One trailing dot is the root; a second would be an empty label. */
    if (dlen == 0 || d[dlen - 1] == '.' || dlen > JID_PART_MAX || dlen >= outlen) return -1;
    int simple = d[0] != '.' && d[0] != '-';
    for (size_t i = 0; i < dlen && simple; i++) {
        char c = d[i];
        simple = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
        if (c == '.' && i + 1 < dlen && d[i + 1] == '.') simple = 0;
    }
    if (simple) {
        memcpy(out, d, dlen);
        out[dlen] = '\0';
        return (int)dlen;
    }
    char tmp[JID_PART_MAX + 1];
    memcpy(tmp, d, dlen);
    tmp[dlen] = '\0';
    return jid_nameprep(tmp, out, outlen);
}
