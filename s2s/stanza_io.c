/* Stanzas cross from the router's stream (jabber:component:accept) to a
 * server stream (jabber:server) and back. A stanza that inherits its
 * namespace from the stream means the same in either, so its original bytes
 * are forwarded as they are (no re-serialisation on the hot path); one that
 * declares a stanza namespace of its own (xmlns='jabber:client') has that
 * declaration rewritten in place; anything else is mapped and serialised. */
#include <string.h>

#include "common/jid.h"
#include "common/xml_write.h"
#include "s2s/s2s.h"

static int is_stanza_ns(const char *ns)
{
    return ns && (!strcmp(ns, NS_CLIENT) || !strcmp(ns, NS_SERVER) || !strcmp(ns, NS_COMPONENT));
}

static void remap(xnode *el, const char *target)
{
    if (el->type != XNODE_ELEMENT) return;
    if (is_stanza_ns(el->ns)) el->ns = target;
    for (xnode *c = el->children; c; c = c->next) remap(c, target);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Copy the start tag of raw with the value of its xmlns attribute replaced
 * by target. Returns 0, or -1 if the tag could not be read (the caller
 * serialises instead). */
static int rewrite_default_ns(buf *out, const char *raw, size_t len, size_t name_len, const char *target)
{
    size_t i = 1 + name_len;
    while (i < len) {
        while (i < len && is_space(raw[i])) i++;
        if (i >= len || raw[i] == '>' || raw[i] == '/') return -1;
        size_t an = i;
        while (i < len && raw[i] != '=' && !is_space(raw[i])) i++;
        size_t an_len = i - an;
        while (i < len && is_space(raw[i])) i++;
        if (i >= len || raw[i] != '=') return -1;
        i++;
        while (i < len && is_space(raw[i])) i++;
        if (i >= len || (raw[i] != '\'' && raw[i] != '"')) return -1;
        char q = raw[i++];
        size_t vs = i;
        while (i < len && raw[i] != q) i++;
        if (i >= len) return -1;
        size_t ve = i++;
        if (an_len == 5 && !memcmp(raw + an, "xmlns", 5)) {
            buf_append(out, raw, vs);
            buf_append_str(out, target);
            buf_append(out, raw + ve, len - ve);
            return 0;
        }
    }
    return -1;
}

void stanza_write_as(buf *out, xnode *el, const char *target_ns)
{
    stanza *doc = el->doc;
    if (el->type == XNODE_ELEMENT && doc && doc->raw && el->raw_len > 0 &&
        (size_t)el->raw_off + el->raw_len <= doc->raw_len && !el->prefix &&
        !(el->flags & XNODE_USES_OUTER_PREFIX)) {
        const char *raw = doc->raw + el->raw_off;
        size_t len = el->raw_len;
        if (!(el->flags & XNODE_DECLARES_DEFAULT_NS)) {
            if (is_stanza_ns(el->ns)) {
                buf_append(out, raw, len);
                return;
            }
        } else if (el->ns && !strcmp(el->ns, target_ns)) {
            buf_append(out, raw, len);
            return;
        } else if (is_stanza_ns(el->ns)) {
            size_t mark = out->len;
            if (rewrite_default_ns(out, raw, len, strlen(el->name), target_ns) == 0) return;
            out->len = mark;
        }
    }
    remap(el, target_ns);
    if (doc) stanza_touch(doc);
    xml_serialize(out, el, target_ns);
}

void stream_header_write(buf *out, const char *from, const char *to, const char *id, int version1)
{
    buf_append_str(out, "<?xml version='1.0'?><stream:stream xmlns='" NS_SERVER "' xmlns:db='" NS_DIALBACK
                        "' xmlns:stream='" NS_STREAMS "'");
    if (from) {
        buf_append_str(out, " from='");
        xml_escape_attr(out, from, strlen(from));
        buf_append_str(out, "'");
    }
    if (to) {
        buf_append_str(out, " to='");
        xml_escape_attr(out, to, strlen(to));
        buf_append_str(out, "'");
    }
    if (id) buf_printf(out, " id='%s'", id);
    if (version1) buf_append_str(out, " version='1.0'");
    buf_append_str(out, ">");
}
