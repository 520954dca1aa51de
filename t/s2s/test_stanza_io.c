/* s2s: stanzas between stream namespaces, domains of JIDs, stream headers. */
#include <stdlib.h>
#include <string.h>

#include "common/xml_stream.h"
#include "s2s/s2s.h"
#include "t/unit/tap.h"

/* Parse one top-level element the way a stream delivers it. */
static stanza *got;
static xs_action on_open(void *ud, stanza *h)
{
    (void)ud;
    stanza_free(h);
    return XS_CONTINUE;
}
static xs_action on_el(void *ud, stanza *st)
{
    (void)ud;
    got = st;
    return XS_CONTINUE;
}
static void on_close(void *ud)
{
    (void)ud;
}
static const xml_stream_handler H = {on_open, on_el, on_close};

static stanza *parse_in(const char *stream_ns, const char *el)
{
    xml_stream *xs = xml_stream_new(NULL, &H, NULL);
    char head[256];
    snprintf(head, sizeof head, "<stream:stream xmlns='%s' xmlns:stream='" NS_STREAMS "'>", stream_ns);
    size_t c;
    got = NULL;
    xml_stream_feed(xs, head, strlen(head), &c);
    xml_stream_feed(xs, el, strlen(el), &c);
    xml_stream_free(xs);
    return got;
}

static char *write_as(const char *stream_ns, const char *el, const char *target)
{
    stanza *st = parse_in(stream_ns, el);
    if (!st) return strdup("(parse failed)");
    buf b = BUF_INIT;
    stanza_write_as(&b, st->root, target);
    buf_cstr(&b);
    stanza_free(st);
    return b.data;
}

static void check_write(const char *stream_ns, const char *el, const char *target, const char *want, const char *what)
{
    char *s = write_as(stream_ns, el, target);
    is_str(s, want, "%s", what);
    free(s);
}

static void check_domain(const char *jid, const char *want)
{
    char out[JID_DOMAIN_BUF];
    int n = jid_domain_of(jid, out, sizeof out);
    is_str(n < 0 ? NULL : out, want, "domain of '%s'", jid ? jid : "(null)");
}

int main(void)
{
    /* Stanzas that inherit the stream's namespace: bytes as they came. */
    const char *m = "<message from='a@x.test/r' to='b@y.test' id='1'><body>hi &amp; bye</body></message>";
    check_write(NS_COMPONENT, m, NS_SERVER, m, "router stanza goes out byte for byte");
    check_write(NS_SERVER, m, NS_COMPONENT, m, "server stanza goes in byte for byte");
    /* A declared stanza namespace is rewritten in place. */
    check_write(NS_COMPONENT, "<message xmlns='jabber:client' to='b@y.test'><body>x</body></message>", NS_SERVER,
                "<message xmlns='jabber:server' to='b@y.test'><body>x</body></message>", "jabber:client rewritten");
    check_write(NS_SERVER, "<iq to=\"y\" xmlns = \"jabber:server\" type='get'/>", NS_COMPONENT,
                "<iq to=\"y\" xmlns = \"jabber:component:accept\" type='get'/>", "odd spacing and quotes");
    check_write(NS_SERVER, "<presence xmlns='jabber:server' to='y'/>", NS_SERVER,
                "<presence xmlns='jabber:server' to='y'/>", "same namespace: untouched");
    /* Payload namespaces survive. */
    check_write(NS_COMPONENT, "<iq to='y' type='get'><query xmlns='jabber:iq:version'/></iq>", NS_SERVER,
                "<iq to='y' type='get'><query xmlns='jabber:iq:version'/></iq>", "payload kept");
    /* A changed stanza is serialised with namespaces mapped. */
    stanza *st = parse_in(NS_COMPONENT, "<message xmlns='jabber:client' to='b@y.test'><body>x</body></message>");
    ok(st != NULL, "parsed");
    xnode_set_attr(st->root, "id", "new");
    buf b = BUF_INIT;
    stanza_write_as(&b, st->root, NS_SERVER);
    is_str(buf_cstr(&b), "<message to='b@y.test' id='new'><body>x</body></message>", "changed: serialised, mapped");
    buf_free(&b);
    stanza_free(st);

    check_domain("alice@Example.COM/Res", "example.com");
    check_domain("example.org", "example.org");
    check_domain("example.org.", "example.org");
    check_domain("example.org..", NULL);   /* an empty label (found by fuzz_dialback) */
    check_domain("a@b.test/with/slash@at", "b.test");
    check_domain("@", NULL);
    check_domain("user@", NULL);
    check_domain("", NULL);
    check_domain(NULL, NULL);

    b = (buf)BUF_INIT;
    stream_header_write(&b, "a.test", "b.test", "ID1", 1);
    is_str(buf_cstr(&b),
           "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
           "xmlns:stream='http://etherx.jabber.org/streams' from='a.test' to='b.test' id='ID1' version='1.0'>",
           "stream header");
    buf_free(&b);

    return tap_done();
}
