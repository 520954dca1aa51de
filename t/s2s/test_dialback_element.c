/* s2s: the db:result and db:verify elements (s2s/dialback_element.c). */
#include <stdlib.h>
#include <string.h>

#include "common/xml_stream.h"
#include "s2s/dialback_element.h"
#include "t/unit/tap.h"

#define HEAD "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' " \
             "xmlns:db='jabber:server:dialback'>"

static stanza *doc;

/* The first element after a server stream header. */
static const xnode *element(const char *xml)
{
    char text[2048];
    snprintf(text, sizeof text, HEAD "%s</stream:stream>", xml);
    xml_err err;
    char errtext[128];
    stanza_free(doc);
    doc = xml_parse_document(text, strlen(text), NULL, &err, errtext, sizeof errtext);
    return doc ? xnode_first_element(doc->root) : NULL;
}

static db_parse_status parse(const char *xml, db_element *db, const char **why)
{
    const xnode *el = element(xml);
    if (!el) return (db_parse_status)-1;
    return db_element_parse(el, db, why);
}

int main(void)
{
    db_element db;
    const char *why;

    is_int(parse("<db:result from='Example.NET' to='example.org'>abc</db:result>", &db, &why), DB_PARSE_OK,
           "result request parses");
    ok(db.kind == DB_RESULT && db.type == DB_REQUEST, "a result request");
    is_str(db.from, "example.net", "from is prepared");
    is_str(db.to, "example.org", "to");
    is_str(db.key, "abc", "the key is the text");
    ok(db.id == NULL && db.condition == NULL, "no id, no condition");

    is_int(parse("<db:result from='example.net' to='example.org'/>", &db, &why), DB_PARSE_OK, "empty key parses");
    is_str(db.key, "", "an empty key is \"\" (it will not verify)");

    is_int(parse("<db:verify from='example.org' to='example.net' id='s1'>k</db:verify>", &db, &why), DB_PARSE_OK,
           "verify request");
    ok(db.kind == DB_VERIFY && db.type == DB_REQUEST, "a verify request");
    is_str(db.id, "s1", "its id");

    is_int(parse("<db:verify from='a.test' to='b.test' id='s1' type='valid'/>", &db, &why), DB_PARSE_OK, "valid");
    ok(db.type == DB_VALID && db.key == NULL, "a valid answer has no key");
    is_int(parse("<db:result from='a.test' to='b.test' type='invalid'/>", &db, &why), DB_PARSE_OK, "invalid");
    ok(db.type == DB_INVALID, "an invalid answer");

    is_int(parse("<db:result from='a.test' to='b.test' type='error'><error type='cancel'>"
                 "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>x</text>"
                 "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>",
                 &db, &why),
           DB_PARSE_OK, "error answer");
    ok(db.type == DB_ERROR, "type error");
    is_str(db.condition, "item-not-found", "the condition, <text/> skipped");
    is_int(parse("<db:result from='a.test' to='b.test' type='error'/>", &db, &why), DB_PARSE_OK,
           "error answer without <error/>");
    is_str(db.condition, "undefined-condition", "then undefined-condition");

    is_int(parse("<db:result from='user@a.test/res' to='b.test.'>k</db:result>", &db, &why), DB_PARSE_OK,
           "JIDs are taken down to domains");
    is_str(db.from, "a.test", "node and resource dropped");
    is_str(db.to, "b.test", "trailing dot dropped");

    is_int(parse("<db:result from='a.test' to='b.test' type='maybe'/>", &db, &why), DB_PARSE_MALFORMED,
           "an unknown type is malformed");
    ok(why && strstr(why, "type"), "and says why: %s", why ? why : "(null)");
    is_int(parse("<db:result from='a.test'>k</db:result>", &db, &why), DB_PARSE_MALFORMED, "no 'to'");
    is_int(parse("<db:result from='a..test' to='b.test'>k</db:result>", &db, &why), DB_PARSE_MALFORMED,
           "a malformed domain");
    is_int(parse("<db:verify from='a.test' to='b.test'>k</db:verify>", &db, &why), DB_PARSE_MALFORMED,
           "db:verify without id");

    is_int(parse("<result xmlns='urn:other' from='a.test' to='b.test'/>", &db, &why), DB_PARSE_NOT_DIALBACK,
           "another namespace is not dialback");
    is_int(parse("<db:other from='a.test' to='b.test'/>", &db, &why), DB_PARSE_NOT_DIALBACK,
           "another name in the namespace is not dialback");

    buf b = BUF_INIT;
    db_write_answer(&b, "verify", "a.test", "b.test", "i'd", "error", "item-not-found");
    is_str(buf_cstr(&b),
           "<db:verify from='a.test' to='b.test' id='i&apos;d' type='error'><error type='cancel' code='404'>"
           "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:verify>",
           "an error answer, with the legacy code");
    buf_reset(&b);
    db_write_verify_request(&b, "a.test", "b.test", "s1", "k<&");
    is_str(buf_cstr(&b), "<db:verify from='a.test' to='b.test' id='s1'>k&lt;&amp;</db:verify>", "a verify request");
    buf_free(&b);

    stanza_free(doc);
    return tap_done();
}
