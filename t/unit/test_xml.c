/* The XML stream parser: events, original bytes, restricted XML, limits. */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/stanza.h"
#include "common/xml_stream.h"
#include "common/xml_write.h"
#include "t/unit/tap.h"

/* ---- an event recorder ---- */

typedef struct recorder {
    buf log;              /* one line per event */
    stanza *header;
    stanza *stanzas[64];
    size_t nstanzas;
    int closes;
    int pause_on;         /* pause after the n-th element (1-based), 0: never */
    int pause_on_open;
} recorder;

static xs_action rec_open(void *ud, stanza *h)
{
    recorder *r = ud;
    buf_printf(&r->log, "open %s %s %s\n", h->root->name, h->root->ns,
               h->root->prefix ? h->root->prefix : "-");
    stanza_free(r->header);
    r->header = h;
    return r->pause_on_open ? XS_PAUSE : XS_CONTINUE;
}

static xs_action rec_element(void *ud, stanza *st)
{
    recorder *r = ud;
    buf_printf(&r->log, "element %s {", st->root->name);
    buf_append(&r->log, st->raw, st->raw_len);
    buf_append_str(&r->log, "}\n");
    if (r->nstanzas < sizeof r->stanzas / sizeof r->stanzas[0]) r->stanzas[r->nstanzas++] = st;
    else stanza_free(st);
    return r->pause_on && (int)r->nstanzas == r->pause_on ? XS_PAUSE : XS_CONTINUE;
}

static void rec_close(void *ud)
{
    recorder *r = ud;
    r->closes++;
    buf_append_str(&r->log, "close\n");
}

static const xml_stream_handler rec_handler = {rec_open, rec_element, rec_close};

static void rec_clear(recorder *r)
{
    buf_free(&r->log);
    stanza_free(r->header);
    for (size_t i = 0; i < r->nstanzas; i++) stanza_free(r->stanzas[i]);
    memset(r, 0, sizeof *r);
}

/* Feed all of data in chunks of `step` bytes (0: at once). */
static xml_err feed_chunks(xml_stream *xs, const char *data, size_t len, size_t step)
{
    if (!step) step = len ? len : 1;
    for (size_t at = 0; at < len; at += step) {
        size_t n = len - at < step ? len - at : step;
        size_t used = 0;
        xml_err e = xml_stream_feed(xs, data + at, n, &used);
        if (e != XML_OK) return e;
        if (used != n) return (xml_err)-1;
    }
    return XML_OK;
}

/* Parse data as one stream with default limits; returns the first error. */
static xml_err parse_stream(const char *data, recorder *r, xml_limits *lim, size_t step,
                            char *errtext, size_t errlen)
{
    xml_limits def;
    if (!lim) {
        xml_limits_default(&def);
        lim = &def;
    }
    xml_stream *xs = xml_stream_new(lim, &rec_handler, r);
    xml_err e = feed_chunks(xs, data, strlen(data), step);
    if (errtext) snprintf(errtext, errlen, "%s", xml_stream_error_text(xs));
    xml_stream_free(xs);
    return e;
}

static const char *CLIENT_STREAM =
    "<?xml version='1.0'?>"
    "<stream:stream to='example.com' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>\n"
    "  <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMA==</auth>\n"
    "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource></bind></iq>\n"
    "<message to='romeo@example.net' type='chat' xml:lang='en' id='m1'>"
    "<body>Wherefore art thou, &lt;Romeo&gt; &amp; &#x263A; &#65;?</body>"
    "<thread>t1</thread><x xmlns='jabber:x:oob'><url>http://a/?a=1&amp;b=2</url></x></message>"
    "<presence/>\n"
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"
    "<iq type='get' id='p'><q:query xmlns:q='jabber:iq:private'><q:x/></q:query></iq>"
    "</stream:stream>";

static void test_whole_and_bytewise(void)
{
    recorder a = {0}, b = {0}, c = {0};
    is_int(parse_stream(CLIENT_STREAM, &a, NULL, 0, NULL, 0), XML_OK, "client stream fed at once");
    is_int(parse_stream(CLIENT_STREAM, &b, NULL, 1, NULL, 0), XML_OK, "client stream fed byte by byte");
    is_int(parse_stream(CLIENT_STREAM, &c, NULL, 7, NULL, 0), XML_OK, "client stream fed in 7-byte chunks");
    is_str(buf_cstr(&b.log), buf_cstr(&a.log), "byte by byte: same events and raw bytes");
    is_str(buf_cstr(&c.log), buf_cstr(&a.log), "7-byte chunks: same events and raw bytes");
    is_int(a.nstanzas, 6, "six top-level elements");
    is_int(a.closes, 1, "stream_close once");
    ok(strncmp(buf_cstr(&a.log), "open stream http://etherx.jabber.org/streams stream\n", 52) == 0,
       "header reported first, with ns and prefix");

    /* the raw bytes are exactly the original bytes of each element */
    const char *want_msg = strstr(CLIENT_STREAM, "<message");
    size_t want_len = (size_t)(strstr(want_msg, "</message>") + 10 - want_msg);
    stanza *msg = a.stanzas[2];
    is_int(msg->raw_len, want_len, "message raw length");
    ok(msg->raw && memcmp(msg->raw, want_msg, want_len) == 0, "message raw bytes equal the input");
    is_str(b.stanzas[2]->raw, msg->raw, "byte-by-byte message raw bytes equal too");
    is_str(a.stanzas[4]->raw,
           "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>",
           "features raw bytes");

    /* the tree */
    is_str(msg->root->ns, "jabber:client", "message inherits the stream's default namespace");
    is_str(xnode_attr(msg->root, "to"), "romeo@example.net", "message 'to'");
    is_str(xnode_attr_ns(msg->root, NS_XML, "lang"), "en", "xml:lang seen as NS_XML lang");
    is_str(xnode_child_text(msg->root, "body", "jabber:client"),
           "Wherefore art thou, <Romeo> & \xe2\x98\xba A?", "predefined entities and char refs decode");
    xnode *x = xnode_child(msg->root, "x", "jabber:x:oob");
    ok(x != NULL, "child in its own namespace");
    is_str(xnode_child_text(x, "url", "jabber:x:oob"), "http://a/?a=1&b=2", "entity in nested text");
    is_int(msg->root->line, 4, "line number of the message");
    is_int(a.stanzas[0]->root->line, 2, "line number of auth");
    is_str(xnode_text(a.stanzas[0]->root), "AGp1bGlldAByMG0zMA==", "auth text");
    is_str(a.stanzas[0]->root->ns, NS_XMPP_SASL, "auth namespace");

    /* raw offsets of nested elements */
    xnode *body = xnode_child(msg->root, "body", NULL);
    is_int(msg->root->raw_off, 0, "root raw_off is 0");
    is_int(msg->root->raw_len, msg->raw_len, "root raw_len is the whole raw");
    ok(strncmp(msg->raw + body->raw_off, "<body>", 6) == 0, "body raw_off points at <body>");
    ok(body->raw_len >= 7 && strncmp(msg->raw + body->raw_off + body->raw_len - 7, "</body>", 7) == 0,
       "body raw span ends with </body>");
    xnode *url = xnode_child(x, "url", NULL);
    is_int(url->raw_len, strlen("<url>http://a/?a=1&amp;b=2</url>"), "nested raw_len");
    ok(strncmp(msg->raw + url->raw_off, "<url>http", 9) == 0, "nested raw_off");
    xnode *presence = a.stanzas[3]->root;
    is_int(presence->raw_len, 11, "empty element raw span");
    is_str(a.stanzas[3]->raw, "<presence/>", "empty element raw bytes");

    /* header */
    stanza *h = a.header;
    ok(h && h->root->children == NULL, "header has no children");
    is_str(xnode_attr(h->root, "to"), "example.com", "header 'to'");
    is_str(xnode_attr(h->root, "version"), "1.0", "header 'version'");
    is_str(xnode_attr_ns(h->root, NS_XML, "lang"), "en", "header xml:lang");
    is_str(h->root->prefix, "stream", "header prefix");
    is_str(h->root->ns, NS_STREAMS, "header namespace");

    /* flags */
    ok(a.stanzas[0]->root->flags & XNODE_DECLARES_DEFAULT_NS, "auth declares its default namespace");
    ok(!(a.stanzas[0]->root->flags & XNODE_USES_OUTER_PREFIX), "auth uses no outer prefix");
    ok(!(msg->root->flags & XNODE_DECLARES_DEFAULT_NS), "message does not declare xmlns");
    ok(!(msg->root->flags & XNODE_USES_OUTER_PREFIX), "xml:lang does not count as an outer prefix");
    ok(x->flags & XNODE_DECLARES_DEFAULT_NS, "nested x declares xmlns");
    ok(a.stanzas[4]->root->flags & XNODE_USES_OUTER_PREFIX, "stream:features uses an outer prefix");
    xnode *starttls = xnode_first_element(a.stanzas[4]->root);
    ok(!(starttls->flags & XNODE_USES_OUTER_PREFIX), "starttls inside features is self-contained");
    xnode *pq = xnode_child(a.stanzas[5]->root, "query", "jabber:iq:private");
    ok(pq && !(pq->flags & XNODE_USES_OUTER_PREFIX), "q:query declares its own prefix");
    xnode *qx = xnode_first_element(pq);
    ok(qx && (qx->flags & XNODE_USES_OUTER_PREFIX), "q:x uses the prefix declared on its parent");
    ok(!(a.stanzas[5]->root->flags & XNODE_USES_OUTER_PREFIX), "iq contains the q declaration");
    is_str(qx->prefix, "q", "prefix kept");
    rec_clear(&a);
    rec_clear(&b);
    rec_clear(&c);
}

static void test_split_chunks(void)
{
    recorder r = {0};
    xml_stream *xs = xml_stream_new(NULL, &rec_handler, &r);
    size_t used;
    const char *parts[] = {
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'",
        " version='1.0'>",
        "<message t", "o='a@b'><bo", "dy>h\xc3", "\xa9llo</body></mess", "age>  ",
    };
    int events_after[] = {0, 1, 1, 1, 1, 1, 2};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        xml_err e = xml_stream_feed(xs, parts[i], strlen(parts[i]), &used);
        is_int(e, XML_OK, "chunk %zu accepted", i);
        is_int(used, strlen(parts[i]), "chunk %zu consumed", i);
        is_int((int)r.nstanzas + (r.header != NULL), events_after[i], "events after chunk %zu", i);
    }
    is_str(xml_stream_default_ns(xs), "jabber:server", "default namespace of the header");
    ok(r.nstanzas == 1 && strcmp(r.stanzas[0]->raw, "<message to='a@b'><body>h\xc3\xa9llo</body></message>") == 0,
       "split stanza raw bytes reassembled");
    is_str(xnode_child_text(r.stanzas[0]->root, "body", NULL), "h\xc3\xa9llo", "split UTF-8 character");
    is_int(xml_stream_pending_bytes(xs), 0, "nothing pending between stanzas");
    xml_stream_feed(xs, "<iq type='get'><q", 17, &used);
    is_int(xml_stream_pending_bytes(xs), 17, "pending bytes of an unfinished stanza");
    xml_stream_free(xs);
    rec_clear(&r);
}

static void test_pause_and_reset(void)
{
    recorder r = {0};
    r.pause_on = 1;
    xml_stream *xs = xml_stream_new(NULL, &rec_handler, &r);
    const char *first =
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    const char *trailing = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx";
    buf in = BUF_INIT;
    buf_append_str(&in, first);
    buf_append_str(&in, trailing);
    size_t used = 0;
    is_int(xml_stream_feed(xs, in.data, in.len, &used), XML_OK, "pause returns XML_OK");
    is_int(used, strlen(first), "consumed ends right after the paused element");
    is_int(r.nstanzas, 1, "one element before the pause");

    xml_stream_reset(xs);
    r.pause_on = 0;
    ok(xml_stream_default_ns(xs) == NULL, "reset forgets the default namespace");
    xml_err e = xml_stream_feed(xs, in.data + used, in.len - used, &used);
    is_int(e, XML_OK, "rest fed to the fresh stream");
    const char *more = ".org/streams' version='1.0'><presence/></stream:stream>";
    is_int(xml_stream_feed(xs, more, strlen(more), &used), XML_OK, "second stream parses");
    is_int(r.nstanzas, 2, "element of the second stream");
    is_str(r.stanzas[1]->raw, "<presence/>", "second stream raw bytes");
    is_int(r.closes, 1, "second stream closed");
    size_t opens = 0;
    for (const char *p = buf_cstr(&r.log); (p = strstr(p, "open ")); p++) opens++;
    is_int(opens, 2, "two stream headers seen");

    /* reset after an error gives a working stream too */
    xml_stream_reset(xs);
    is_int(xml_stream_feed(xs, "<a><b></a>", 10, &used), XML_ERR_NOT_WELL_FORMED, "mismatched tags");
    is_int(xml_stream_feed(xs, "<a>", 3, &used), XML_ERR_NOT_WELL_FORMED, "dead until reset");
    xml_stream_reset(xs);
    is_int(xml_stream_feed(xs, "<?xml version='1.0'?><a>", 24, &used), XML_OK,
           "XML declaration accepted after reset");
    xml_stream_free(xs);

    /* pausing in stream_open */
    rec_clear(&r);
    r.pause_on_open = 1;
    xs = xml_stream_new(NULL, &rec_handler, &r);
    const char *hdr = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'>";
    buf_reset(&in);
    buf_append_str(&in, hdr);
    buf_append_str(&in, "<message/>");
    is_int(xml_stream_feed(xs, in.data, in.len, &used), XML_OK, "pause in stream_open");
    is_int(used, strlen(hdr), "consumed ends after the header");
    is_int(r.nstanzas, 0, "nothing reported after the pause");
    xml_stream_free(xs);
    buf_free(&in);
    rec_clear(&r);
}

static const char *HDR =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/* Parse HDR + body; return the error. */
static xml_err parse_after_header(const char *body, size_t step, xml_limits *lim, char *errtext,
                                  size_t errlen)
{
    recorder r = {0};
    buf in = BUF_INIT;
    buf_append_str(&in, HDR);
    buf_append_str(&in, body);
    xml_err e = parse_stream(buf_cstr(&in), &r, lim, step, errtext, errlen);
    buf_free(&in);
    rec_clear(&r);
    return e;
}

static void test_restricted(void)
{
    char err[256];
    struct { const char *name, *doc; } cases[] = {
        {"DOCTYPE", "<!DOCTYPE stream:stream><stream:stream/>"},
        {"internal entity declaration",
         "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e 'boom'>]><x>&e;</x>"},
        {"billion laughs",
         "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
         "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
         "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
         "<lolz>&lol3;</lolz>"},
        {"undeclared entity", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
                              "<message><body>&foo;</body></message>"},
        {"undeclared entity in attribute", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
                                           "<message to='&foo;'/>"},
        {"comment", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><!-- hi --><a/>"},
        {"comment in a stanza", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><a><!-- x --></a>"},
        {"comment before root", "<!-- hi --><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"},
        {"processing instruction", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><a><?pi x?></a>"},
        {"PI before root", "<?xml version='1.0'?><?xml-stylesheet href='a'?><stream/>"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t step = 0; step <= 1; step++) {
            recorder r = {0};
            xml_err e = parse_stream(cases[i].doc, &r, NULL, step, err, sizeof err);
            is_int(e, XML_ERR_RESTRICTED, "%s refused (%s): %s", cases[i].name,
                   step ? "bytewise" : "whole", err);
            is_int(r.nstanzas, 0, "%s: no element reported", cases[i].name);
            rec_clear(&r);
        }
    }
    is_str(xml_err_condition(XML_ERR_RESTRICTED), "restricted-xml", "condition restricted-xml");

    /* CDATA is not restricted */
    recorder r = {0};
    is_int(parse_stream("<s:s xmlns:s='x'><m><![CDATA[<a&b>]]></m>", &r, NULL, 0, NULL, 0), XML_OK,
           "CDATA section accepted");
    ok(r.nstanzas == 1 && strcmp(xnode_text(r.stanzas[0]->root), "<a&b>") == 0, "CDATA text");
    rec_clear(&r);
}

static void test_not_well_formed(void)
{
    char err[256];
    is_int(parse_after_header("<message><q:x/></message>", 0, NULL, err, sizeof err),
           XML_ERR_BAD_PREFIX, "unbound element prefix");
    ok(strstr(err, "line 1") != NULL, "error text has the line: %s", err);
    is_int(parse_after_header("<message q:a='1'/>", 1, NULL, NULL, 0), XML_ERR_BAD_PREFIX,
           "unbound attribute prefix (bytewise)");
    is_str(xml_err_condition(XML_ERR_BAD_PREFIX), "bad-namespace-prefix", "bad prefix condition");
    is_int(parse_after_header("<message><body>\xc3\x28</body></message>", 0, NULL, NULL, 0),
           XML_ERR_NOT_WELL_FORMED, "invalid UTF-8");
    is_int(parse_after_header("<message><body>\xff</body></message>", 1, NULL, NULL, 0),
           XML_ERR_NOT_WELL_FORMED, "invalid UTF-8 byte (bytewise)");
    is_int(parse_after_header("<message><body>\xed\xa0\x80</body></message>", 0, NULL, NULL, 0),
           XML_ERR_NOT_WELL_FORMED, "UTF-8 surrogate");
    {
        recorder r = {0};
        xml_stream *xs = xml_stream_new(NULL, &rec_handler, &r);
        size_t used;
        static const char nul[] = "<s:s xmlns:s='x'><m>a\0b</m>";
        is_int(xml_stream_feed(xs, nul, sizeof nul - 1, &used), XML_ERR_NOT_WELL_FORMED, "NUL byte");
        ok(strlen(xml_stream_error_text(xs)) > 0, "error text for NUL: %s", xml_stream_error_text(xs));
        xml_stream_free(xs);
        rec_clear(&r);
    }
    is_int(parse_after_header("<message><body></message>", 0, NULL, NULL, 0),
           XML_ERR_NOT_WELL_FORMED, "mismatched tags");
    is_int(parse_after_header("<message a='1' a='2'/>", 0, NULL, NULL, 0),
           XML_ERR_NOT_WELL_FORMED, "duplicate attribute");
    is_int(parse_after_header("<message>&#0;</message>", 0, NULL, NULL, 0),
           XML_ERR_NOT_WELL_FORMED, "character reference to NUL");
    is_str(xml_err_condition(XML_ERR_NOT_WELL_FORMED), "not-well-formed", "not-well-formed condition");

    is_int(parse_stream("<?xml version='1.0' encoding='ISO-8859-1'?><s/>", &(recorder){0}, NULL, 0,
                        NULL, 0),
           XML_ERR_NOT_WELL_FORMED, "non-UTF-8 encoding declaration refused");
}

static void test_stream_reopened(void)
{
    const char *again = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    char body[512];
    snprintf(body, sizeof body, "<presence/>%s<message/>", again);
    recorder r = {0};
    is_int(parse_after_header(body, 0, NULL, NULL, 0), XML_ERR_STREAM_REOPENED, "a second stream header");
    is_int(parse_after_header(body, 1, NULL, NULL, 0), XML_ERR_STREAM_REOPENED, "a second stream header, bytewise");
    is_str(xml_err_condition(XML_ERR_STREAM_REOPENED), "unsupported-stanza-type", "its condition");
    /* An element named stream in another namespace is just an element. */
    is_int(parse_after_header("<stream xmlns='urn:example'/>", 0, NULL, NULL, 0), XML_OK,
           "<stream/> in another namespace is fine");
    /* After a reset (a stream restart), a header is what is expected. */
    xml_stream *xs = xml_stream_new(NULL, &rec_handler, &r);
    size_t used;
    is_int(xml_stream_feed(xs, again, strlen(again), &used), XML_OK, "first header");
    xml_stream_reset(xs);
    is_int(xml_stream_feed(xs, again, strlen(again), &used), XML_OK, "a header after a reset");
    xml_stream_free(xs);
    rec_clear(&r);
}

static void test_after_end(void)
{
    char err[256];
    recorder r = {0};
    is_int(parse_after_header("<presence/></stream:stream><message/>", 0, NULL, err, sizeof err),
           XML_ERR_AFTER_END, "element after the end (same chunk)");
    is_int(parse_after_header("<presence/></stream:stream>junk", 1, NULL, NULL, 0),
           XML_ERR_AFTER_END, "text after the end (bytewise)");
    is_str(xml_err_condition(XML_ERR_AFTER_END), "not-well-formed", "after-end condition");

    xml_stream *xs = xml_stream_new(NULL, &rec_handler, &r);
    size_t used;
    const char *s = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'></stream:stream>\n";
    is_int(xml_stream_feed(xs, s, strlen(s), &used), XML_OK, "trailing newline after the end is fine");
    is_int(r.closes, 1, "closed");
    is_int(xml_stream_feed(xs, "<a/>", 4, &used), XML_ERR_AFTER_END, "a later feed after the end");
    xml_stream_free(xs);
    rec_clear(&r);
}

static void test_limits(void)
{
    char err[256];
    xml_limits lim;
    xml_limits_default(&lim);
    is_int(lim.max_stanza_bytes, 65536, "default stanza limit");
    is_int(lim.max_depth, 32, "default depth limit");
    is_int(lim.max_attrs, 64, "default attribute limit");

    lim.max_depth = 3;
    is_int(parse_after_header("<a><b><c/></b></a>", 0, &lim, NULL, 0), XML_OK, "depth 3 allowed");
    is_int(parse_after_header("<a><b><c><d/></c></b></a>", 0, &lim, err, sizeof err), XML_ERR_TOO_DEEP,
           "depth 4 refused: %s", err);
    is_str(xml_err_condition(XML_ERR_TOO_DEEP), "policy-violation", "depth condition");

    xml_limits_default(&lim);
    lim.max_attrs = 3;
    is_int(parse_after_header("<a x='1' y='2' z='3'/>", 0, &lim, NULL, 0), XML_OK, "3 attributes allowed");
    is_int(parse_after_header("<a w='0' x='1' y='2' z='3'/>", 1, &lim, NULL, 0), XML_ERR_TOO_MANY_ATTRS,
           "4 attributes refused");
    is_int(parse_after_header("<a xmlns:p='u' xmlns:q='v' xmlns:r='w' xmlns:s='z'/>", 0, &lim, NULL, 0),
           XML_ERR_TOO_MANY_ATTRS, "namespace declarations count as attributes");
    is_str(xml_err_condition(XML_ERR_TOO_MANY_ATTRS), "policy-violation", "attrs condition");

    xml_limits_default(&lim);
    lim.max_stanza_bytes = 100;
    buf big = BUF_INIT;
    buf_append_str(&big, "<message><body>");
    for (int i = 0; i < 100; i++) buf_append_str(&big, "x");
    buf_append_str(&big, "</body></message>");
    is_int(parse_after_header(buf_cstr(&big), 0, &lim, err, sizeof err), XML_ERR_TOO_BIG,
           "big stanza in one chunk refused: %s", err);
    is_int(parse_after_header(buf_cstr(&big), 1, &lim, NULL, 0), XML_ERR_TOO_BIG,
           "big stanza bytewise refused");
    is_str(xml_err_condition(XML_ERR_TOO_BIG), "policy-violation", "size condition");
    is_int(parse_after_header("<message><body>small</body></message>", 0, &lim, NULL, 0), XML_OK,
           "small stanza under the limit");
    {
        /* many small stanzas: the limit is per stanza, not per stream */
        buf many = BUF_INIT;
        for (int i = 0; i < 50; i++) buf_append_str(&many, "<presence/> ");
        is_int(parse_after_header(buf_cstr(&many), 0, &lim, NULL, 0), XML_OK,
               "many small stanzas stay under a per-stanza limit");
        buf_free(&many);
    }

    /* one huge attribute value arriving in many chunks: expat reports nothing
     * until the start tag is complete, yet the limit must hold */
    {
        recorder r = {0};
        xml_stream *xs = xml_stream_new(&lim, &rec_handler, &r);
        size_t used;
        xml_err e = xml_stream_feed(xs, HDR, strlen(HDR), &used);
        e = e ? e : xml_stream_feed(xs, "<message to='", 13, &used);
        int chunks = 0;
        while (e == XML_OK && chunks < 1000) {
            e = xml_stream_feed(xs, "aaaaaaaaaa", 10, &used);
            chunks++;
        }
        is_int(e, XML_ERR_TOO_BIG, "huge attribute value refused");
        ok(chunks < 12, "refused as soon as it passed the limit (%d chunks)", chunks);
        xml_stream_free(xs);
        rec_clear(&r);
    }
    /* a huge start tag name/attribute list before the header completes */
    {
        recorder r = {0};
        xml_stream *xs = xml_stream_new(&lim, &rec_handler, &r);
        size_t used;
        xml_err e = xml_stream_feed(xs, "<stream:stream ", 15, &used);
        int chunks = 0;
        while (e == XML_OK && chunks < 1000) {
            char a[32];
            snprintf(a, sizeof a, "a%d='1' ", chunks);
            e = xml_stream_feed(xs, a, strlen(a), &used);
            chunks++;
        }
        is_int(e, XML_ERR_TOO_BIG, "endless stream header refused");
        xml_stream_free(xs);
        rec_clear(&r);
    }
    /* endless text inside a stanza */
    {
        recorder r = {0};
        xml_stream *xs = xml_stream_new(&lim, &rec_handler, &r);
        size_t used;
        xml_err e = xml_stream_feed(xs, HDR, strlen(HDR), &used);
        e = e ? e : xml_stream_feed(xs, "<message><body>", 15, &used);
        int chunks = 0;
        while (e == XML_OK && chunks < 1000) {
            e = xml_stream_feed(xs, "blah blah ", 10, &used);
            chunks++;
        }
        is_int(e, XML_ERR_TOO_BIG, "endless text refused");
        ok(chunks < 12, "refused near the limit (%d chunks)", chunks);
        ok(strstr(xml_stream_error_text(xs), "100") != NULL, "error names the limit: %s",
           xml_stream_error_text(xs));
        xml_stream_free(xs);
        rec_clear(&r);
    }
    /* endless whitespace between stanzas is not buffered and not an error */
    {
        recorder r = {0};
        xml_stream *xs = xml_stream_new(&lim, &rec_handler, &r);
        size_t used;
        xml_err e = xml_stream_feed(xs, HDR, strlen(HDR), &used);
        for (int i = 0; i < 100 && e == XML_OK; i++) e = xml_stream_feed(xs, "          ", 10, &used);
        is_int(e, XML_OK, "1000 bytes of whitespace between stanzas accepted");
        is_int(xml_stream_pending_bytes(xs), 0, "whitespace is not kept");
        e = xml_stream_feed(xs, "<presence/>", 11, &used);
        is_int(e, XML_OK, "stanza after whitespace");
        ok(r.nstanzas == 1 && strcmp(r.stanzas[0]->raw, "<presence/>") == 0, "its raw bytes");
        xml_stream_free(xs);
        rec_clear(&r);
    }
    buf_free(&big);
}

static void test_flags_nested(void)
{
    recorder r = {0};
    const char *doc =
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        "xmlns:db='jabber:server:dialback'>"
        "<db:result from='a' to='b'>key</db:result>"
        "<message><x xmlns:p='urn:p'><p:y><z p:attr='1'/></p:y></x></message>"
        "<message><body db:x='1'>hi</body></message>"
        "<iq xmlns=''/>"
        "</stream:stream>";
    is_int(parse_stream(doc, &r, NULL, 0, NULL, 0), XML_OK, "stream with prefixes");
    ok(r.nstanzas == 4, "four elements");
    if (r.nstanzas != 4) {
        rec_clear(&r);
        return;
    }
    xnode *dbr = r.stanzas[0]->root;
    is_str(dbr->ns, "jabber:server:dialback", "db:result namespace");
    is_str(dbr->prefix, "db", "db:result prefix");
    ok(dbr->flags & XNODE_USES_OUTER_PREFIX, "db:result uses a prefix of the stream header");

    xnode *m = r.stanzas[1]->root;
    xnode *x = xnode_first_element(m);
    xnode *y = xnode_first_element(x);
    xnode *z = xnode_first_element(y);
    ok(!(m->flags & XNODE_USES_OUTER_PREFIX), "message contains the p declaration");
    ok(!(x->flags & XNODE_USES_OUTER_PREFIX), "x declares p itself");
    ok(y->flags & XNODE_USES_OUTER_PREFIX, "p:y uses p from x");
    ok(z->flags & XNODE_USES_OUTER_PREFIX, "z's attribute uses p from x");
    is_str(xnode_attr_ns(z, "urn:p", "attr"), "1", "prefixed attribute by namespace");
    is_str(x->ns, "jabber:server", "x inherits the default namespace");
    ok(!(x->flags & XNODE_DECLARES_DEFAULT_NS), "xmlns:p is not a default declaration");

    xnode *m2 = r.stanzas[2]->root;
    ok(m2->flags & XNODE_USES_OUTER_PREFIX, "attribute prefix from the header flags the stanza");
    ok(xnode_first_element(m2)->flags & XNODE_USES_OUTER_PREFIX, "and the body");

    xnode *iq = r.stanzas[3]->root;
    is_str(iq->ns, "", "xmlns='' gives the empty namespace");
    ok(iq->flags & XNODE_DECLARES_DEFAULT_NS, "xmlns='' counts as declaring the default");
    rec_clear(&r);
}

static void test_document(void)
{
    xml_err err;
    char text[256];
    const char *doc =
        "<?xml version='1.0'?>\n"
        "<!-- a config file may have comments -->\n"
        "<router xmlns='urn:x'>\n"
        "  <listen><port>5347</port></listen>\n"
        "  <!-- here too -->\n"
        "  <component name='sm' secret='s&amp;cret'/>\n"
        "</router>\n";
    stanza *st = xml_parse_document(doc, strlen(doc), NULL, &err, text, sizeof text);
    ok(st != NULL, "document parsed: %s", text);
    if (st) {
        is_int(err, XML_OK, "no error");
        is_str(st->root->name, "router", "root name");
        xnode *listen = xnode_child(st->root, "listen", "urn:x");
        is_str(xnode_child_text(listen, "port", NULL), "5347", "nested text");
        is_int(listen->line, 4, "line of <listen>");
        xnode *comp = xnode_child(st->root, "component", NULL);
        is_str(xnode_attr(comp, "secret"), "s&cret", "attribute decoded");
        is_int(comp->line, 6, "line of <component>");
        is_int(xnode_count_elements(st->root), 2, "two child elements");
        stanza_free(st);
    }

    const char *bad = "<a>\n<b>\n</c>\n</a>";
    st = xml_parse_document(bad, strlen(bad), NULL, &err, text, sizeof text);
    ok(st == NULL, "mismatched document refused");
    is_int(err, XML_ERR_NOT_WELL_FORMED, "not well-formed");
    ok(strncmp(text, "line 3: ", 8) == 0, "error names line 3: %s", text);

    const char *unclosed = "<a>\n<b/>\n";
    st = xml_parse_document(unclosed, strlen(unclosed), NULL, &err, text, sizeof text);
    ok(st == NULL && err == XML_ERR_NOT_WELL_FORMED, "unclosed document refused: %s", text);
    ok(strncmp(text, "line ", 5) == 0, "message starts with the line");

    const char *dtd = "<!DOCTYPE a [<!ENTITY x 'y'>]>\n<a>&x;</a>";
    st = xml_parse_document(dtd, strlen(dtd), NULL, &err, text, sizeof text);
    ok(st == NULL && err == XML_ERR_RESTRICTED, "DOCTYPE refused in documents too: %s", text);

    st = xml_parse_document("", 0, NULL, &err, text, sizeof text);
    ok(st == NULL && err == XML_ERR_NOT_WELL_FORMED, "empty document refused: %s", text);

    xml_limits lim;
    xml_limits_default(&lim);
    lim.max_depth = 1;
    const char *deep = "<a>\n<b>\n<c/></b></a>";
    st = xml_parse_document(deep, strlen(deep), &lim, &err, text, sizeof text);
    ok(st == NULL && err == XML_ERR_TOO_DEEP, "depth limit in documents: %s", text);
    ok(strncmp(text, "line 3: ", 8) == 0, "depth error on line 3");
}

/* Feed data line by line (each chunk ends after a newline). */
static xml_err feed_lines(xml_stream *xs, const char *data)
{
    const char *p = data;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl + 1 - p) : strlen(p);
        size_t used = 0;
        xml_err e = xml_stream_feed(xs, p, n, &used);
        if (e != XML_OK) return e;
        if (used != n) return (xml_err)-1;
        p += n;
    }
    return XML_OK;
}

/* Idle streams give their parser back and build it again from the header:
 * what the caller sees must not change. */
static void test_idle_parser_release(void)
{
    /* Reference run: the parser is kept throughout. */
    xml_stream_set_parser_idle_ms(1000000);
    recorder ref = {0};
    is_int(parse_stream(CLIENT_STREAM, &ref, NULL, 0, NULL, 0), XML_OK, "reference run");

    xml_stream_set_parser_idle_ms(0);
    recorder a = {0}, b = {0}, c = {0};
    is_int(parse_stream(CLIENT_STREAM, &a, NULL, 1, NULL, 0), XML_OK, "released at every boundary, byte by byte");
    is_str(buf_cstr(&a.log), buf_cstr(&ref.log), "same events and raw bytes as with the parser kept");
    is_int(parse_stream(CLIENT_STREAM, &b, NULL, 5, NULL, 0), XML_OK, "released, 5-byte chunks");
    is_str(buf_cstr(&b.log), buf_cstr(&ref.log), "5-byte chunks: same events and raw bytes");

    xml_stream *xs = xml_stream_new(NULL, &rec_handler, &c);
    is_int(feed_lines(xs, CLIENT_STREAM), XML_OK, "fed line by line, released between lines");
    is_str(buf_cstr(&c.log), buf_cstr(&ref.log), "line by line: same events");
    ok(c.nstanzas == 6 && c.stanzas[2]->root->line == 4 && c.stanzas[0]->root->line == 2,
       "line numbers carry on across rebuilt parsers");
    ok(c.nstanzas == 6 && (c.stanzas[4]->root->flags & XNODE_USES_OUTER_PREFIX) &&
       strcmp(c.stanzas[4]->root->ns, NS_STREAMS) == 0,
       "the stream: prefix declared on the header still resolves after a rebuild");
    ok(c.nstanzas == 6 && strcmp(c.stanzas[2]->root->ns, "jabber:client") == 0,
       "the header's default namespace still applies after a rebuild");
    xml_stream_free(xs);
    rec_clear(&ref);
    rec_clear(&a);
    rec_clear(&b);
    rec_clear(&c);

    /* Step by step: when the parser goes and comes back. */
    recorder r = {0};
    xs = xml_stream_new(NULL, &rec_handler, &r);
    const char *hdr = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                      "version='1.0'>\n";
    size_t used;
    is_int(xml_stream_feed(xs, hdr, strlen(hdr), &used), XML_OK, "header");
    ok(!xml_stream_has_parser(xs), "no parser after the header, with nothing pending");
    is_str(xml_stream_default_ns(xs), "jabber:client", "the header's default namespace is still known");
    is_int(xml_stream_feed(xs, " \n\t\n", 4, &used), XML_OK, "whitespace keepalive");
    is_int(used, 4, "keepalive consumed");
    ok(!xml_stream_has_parser(xs), "a keepalive needs no parser");
    const char *m1 = "<message to='a@b'><bo";
    is_int(xml_stream_feed(xs, m1, strlen(m1), &used), XML_OK, "half a message");
    ok(xml_stream_has_parser(xs), "the parser stays while an element is unfinished");
    is_int(xml_stream_pending_bytes(xs), strlen(m1), "its bytes are pending");
    const char *m2 = "dy>hi</body></message>\n";
    is_int(xml_stream_feed(xs, m2, strlen(m2), &used), XML_OK, "rest of the message");
    ok(!xml_stream_has_parser(xs), "parser released once the element is complete");
    ok(r.nstanzas == 1 && strcmp(r.stanzas[0]->raw, "<message to='a@b'><body>hi</body></message>") == 0,
       "raw bytes of the message across the rebuild");
    ok(r.nstanzas == 1 && r.stanzas[0]->root->line == 4, "message on line 4 (after two keepalive newlines)");
    const char *bad = "<x:y/>";
    is_int(xml_stream_feed(xs, bad, strlen(bad), &used), XML_ERR_BAD_PREFIX,
           "an undeclared prefix is still refused after a rebuild");
    xml_stream_reset(xs);
    ok(!xml_stream_has_parser(xs), "reset frees the parser");
    const char *again = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
                        "<presence/>\n<bad></wrong>";
    char err[256];
    is_int(xml_stream_feed(xs, again, strlen(again), &used), XML_ERR_NOT_WELL_FORMED, "restart, then bad XML");
    snprintf(err, sizeof err, "%s", xml_stream_error_text(xs));
    ok(strncmp(err, "line 2:", 7) == 0, "the error line counts from the restart: %s", err);
    ok(r.nstanzas == 2 && strcmp(r.stanzas[1]->raw, "<presence/>") == 0, "element after the restart");
    xml_stream_reset(xs);
    const char *closing = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
                          "<presence/>";
    is_int(xml_stream_feed(xs, closing, strlen(closing), &used), XML_OK, "another restart");
    ok(!xml_stream_has_parser(xs), "released again");
    is_int(xml_stream_feed(xs, "</stream:stream>", 16, &used), XML_OK, "close after a rebuild");
    is_int(r.closes, 1, "stream_close reported");
    xml_stream_free(xs);
    rec_clear(&r);

    /* With a delay: released by the sweep once idle long enough. */
    xml_stream_set_parser_idle_ms(1000000);
    recorder d = {0};
    xs = xml_stream_new(NULL, &rec_handler, &d);
    is_int(xml_stream_feed(xs, hdr, strlen(hdr), &used), XML_OK, "header (delayed release)");
    ok(xml_stream_has_parser(xs), "parser kept while not idle long enough");
    is_int(xml_stream_release_idle(), 0, "the sweep leaves a recent stream alone");
    ok(xml_stream_has_parser(xs), "still held");
    xml_stream_set_parser_idle_ms(0);
    ok(xml_stream_release_idle() >= 1, "the sweep releases an idle stream");
    ok(!xml_stream_has_parser(xs), "released by the sweep");
    is_int(xml_stream_feed(xs, "<presence/>", 11, &used), XML_OK, "fed after the sweep");
    ok(d.nstanzas == 1 && strcmp(d.stanzas[0]->raw, "<presence/>") == 0, "element after the sweep");
    xml_stream_free(xs);
    rec_clear(&d);
    xml_stream_set_parser_idle_ms(XML_PARSER_IDLE_MS_DEFAULT);
}

int main(void)
{
    test_whole_and_bytewise();
    test_split_chunks();
    test_pause_and_reset();
    test_restricted();
    test_not_well_formed();
    test_after_end();
    test_stream_reopened();
    test_limits();
    test_flags_nested();
    test_document();
    test_idle_parser_release();
    return tap_done();
}
