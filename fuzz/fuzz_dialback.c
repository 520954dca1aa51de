/* Fuzz target: reading and writing the dialback elements (s2s/
 * dialback_element.c), as a peer's server stream delivers them.
 *
 * Input: what follows a jabber:server stream header with the 'db' prefix
 * bound (the harness writes the header and the closing tag). Every
 * top-level element goes through db_element_parse.
 *
 * Invariants of an element that parses: 'from' and 'to' are prepared
 * domains (preparing them again changes nothing); a db:verify has an id; a
 * request has a key and no condition, an error answer a condition; and
 * what the db_write_* functions write for it parses back to the same
 * fields. An element outside jabber:server:dialback, or another name in
 * it, is never taken for a dialback element. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jid.h"
#include "common/xml_stream.h"
#include "common/xml_write.h"
#include "fuzz/fuzz_util.h"
#include "s2s/dialback_element.h"

#define HEADER "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' " \
               "xmlns:db='" NS_DIALBACK "'>"
#define FOOTER "</stream:stream>"

static void check_domain(const char *what, const char *d)
{
    char again[JID_PART_MAX + 1];
    FUZZ_CHECK(d[0] != '\0', "empty %s", what);
    FUZZ_CHECK(jid_domain_of(d, again, sizeof again) >= 0, "%s '%s' does not prepare again", what, d);
    FUZZ_CHECK(strcmp(d, again) == 0, "%s '%s' prepares again to '%s'", what, d, again);
}

static const char *type_name(db_type t)
{
    switch (t) {
    case DB_VALID: return "valid";
    case DB_INVALID: return "invalid";
    case DB_ERROR: return "error";
    default: return NULL;
    }
}

/* Write db as our s2s would, then parse what was written. */
static void check_written(const db_element *db)
{
    buf out = BUF_INIT;
    const char *name = db->kind == DB_RESULT ? "result" : "verify";
    buf_append_str(&out, HEADER);
    if (db->type != DB_REQUEST) {
        db_write_answer(&out, name, db->from, db->to, db->id, type_name(db->type), db->condition);
    } else if (db->kind == DB_VERIFY) {
        db_write_verify_request(&out, db->from, db->to, db->id, db->key);
    } else {
        /* Our own db:result carries a key we compute; write the peer's. */
        buf_append_str(&out, "<db:result from='");
        xml_escape_attr(&out, db->from, strlen(db->from));
        buf_append_str(&out, "' to='");
        xml_escape_attr(&out, db->to, strlen(db->to));
        buf_append_str(&out, "'>");
        xml_escape_text(&out, db->key, strlen(db->key));
        buf_append_str(&out, "</db:result>");
    }
    buf_append_str(&out, FOOTER);

    xml_limits lim;
    xml_limits_default(&lim);
    lim.max_stanza_bytes = out.len + 1;
    xml_err err;
    char errtext[128];
    stanza *doc = xml_parse_document(out.data, out.len, &lim, &err, errtext, sizeof errtext);
    FUZZ_CHECK(doc, "what we wrote does not parse: %s: %.*s", errtext, (int)out.len, out.data);
    const xnode *el = xnode_first_element(doc->root);
    FUZZ_CHECK(el, "what we wrote has no element");
    db_element back;
    const char *why = NULL;
    FUZZ_CHECK(db_element_parse(el, &back, &why) == DB_PARSE_OK, "what we wrote is refused: %s", why ? why : "?");
    FUZZ_CHECK(back.kind == db->kind && back.type == db->type, "kind/type changed");
    FUZZ_CHECK(!strcmp(back.from, db->from) && !strcmp(back.to, db->to), "domains changed");
    FUZZ_CHECK((!back.id && !db->id) || (back.id && db->id && !strcmp(back.id, db->id)), "id changed");
    if (db->type == DB_REQUEST) FUZZ_CHECK(!strcmp(back.key, db->key), "key changed");
    if (db->type == DB_ERROR) {
        /* A condition we would not know how to write comes back as itself
         * (it is an XML name); undefined-condition stays what it is. */
        FUZZ_CHECK(!strcmp(back.condition, db->condition), "condition '%s' came back as '%s'", db->condition,
                   back.condition);
    }
    stanza_free(doc);
    buf_free(&out);
}

static void check_element(const xnode *el)
{
    db_element db;
    const char *why = NULL;
    memset(&db, 0xA5, sizeof db);
    db_parse_status st = db_element_parse(el, &db, &why);
    int is_db = el->ns && !strcmp(el->ns, NS_DIALBACK) && (!strcmp(el->name, "result") || !strcmp(el->name, "verify"));
    if (!is_db) {
        FUZZ_CHECK(st == DB_PARSE_NOT_DIALBACK, "<%s xmlns='%s'> taken for dialback", el->name, el->ns ? el->ns : "");
        return;
    }
    FUZZ_CHECK(st != DB_PARSE_NOT_DIALBACK, "a db:%s not recognised", el->name);
    if (st == DB_PARSE_MALFORMED) {
        FUZZ_CHECK(why && *why, "malformed without a reason");
        return;
    }
    FUZZ_CHECK(db.kind == (!strcmp(el->name, "result") ? DB_RESULT : DB_VERIFY), "wrong kind");
    check_domain("from", db.from);
    check_domain("to", db.to);
    if (db.kind == DB_VERIFY) FUZZ_CHECK(db.id != NULL, "db:verify without id");
    if (db.type == DB_REQUEST) FUZZ_CHECK(db.key && !db.condition, "request without key or with condition");
    else FUZZ_CHECK(!db.key, "answer with a key");
    if (db.type == DB_ERROR) FUZZ_CHECK(db.condition && *db.condition && strcmp(db.condition, "text") != 0,
                                        "error answer without condition");
    else FUZZ_CHECK(!db.condition, "condition outside an error");
    check_written(&db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384) return 0;
    buf in = BUF_INIT;
    buf_append_str(&in, HEADER);
    buf_append(&in, data, size);
    buf_append_str(&in, FOOTER);
    xml_limits lim;
    xml_limits_default(&lim);
    lim.max_stanza_bytes = 32768;
    xml_err err;
    char errtext[128];
    stanza *doc = xml_parse_document(in.data, in.len, &lim, &err, errtext, sizeof errtext);
    if (doc) {
        for (const xnode *el = xnode_first_element(doc->root); el; el = xnode_next_element(el)) check_element(el);
        stanza_free(doc);
    }
    buf_free(&in);
    return 0;
}
