/* db:result and db:verify (XEP-0220 §2.1 and §2.2), read and written. */
#include <string.h>

#include "common/crypto.h"
#include "common/dialback_key.h"
#include "common/stanza_error.h"
#include "common/xml_write.h"
#include "s2s/dialback_element.h"

const char *db_error_condition(const xnode *el)
{
    const xnode *err = xnode_child(el, "error", NULL);
    if (!err) return "undefined-condition";
    for (const xnode *c = xnode_first_element(err); c; c = xnode_next_element(c))
        if (c->ns && !strcmp(c->ns, NS_XMPP_STANZAS) && strcmp(c->name, "text") != 0) return c->name;
    return "undefined-condition";
}

static int parse_type(const char *type, db_type *out)
{
    if (!type) *out = DB_REQUEST;
    else if (!strcmp(type, "valid")) *out = DB_VALID;
    else if (!strcmp(type, "invalid")) *out = DB_INVALID;
    else if (!strcmp(type, "error")) *out = DB_ERROR;
    else return -1;
    return 0;
}

db_parse_status db_element_parse(const xnode *el, db_element *out, const char **why)
{
    static const char *unused;
    if (!why) why = &unused;
    *why = NULL;
    if (!el || el->type != XNODE_ELEMENT || !el->ns || strcmp(el->ns, NS_DIALBACK) != 0)
        return DB_PARSE_NOT_DIALBACK;
    if (!strcmp(el->name, "result")) out->kind = DB_RESULT;
    else if (!strcmp(el->name, "verify")) out->kind = DB_VERIFY;
    else return DB_PARSE_NOT_DIALBACK;

    if (parse_type(xnode_attr(el, "type"), &out->type) < 0) {
        *why = "'type' is not valid, invalid or error";
        return DB_PARSE_MALFORMED;
    }
    const char *from = xnode_attr(el, "from");
    const char *to = xnode_attr(el, "to");
    if (!from || !to) {
        *why = "'from' and 'to' are required";
        return DB_PARSE_MALFORMED;
    }
    if (jid_domain_of(from, out->from, sizeof out->from) < 0 || jid_domain_of(to, out->to, sizeof out->to) < 0) {
        *why = "'from' or 'to' is not a valid domain";
        return DB_PARSE_MALFORMED;
    }
    /* Only db:verify carries the stream id; a db:result's is ignored. */
    out->id = out->kind == DB_VERIFY ? xnode_attr(el, "id") : NULL;
    if (out->kind == DB_VERIFY && !out->id) {
        *why = "db:verify needs an 'id'";
        return DB_PARSE_MALFORMED;
    }
    out->key = NULL;
    out->condition = NULL;
    if (out->type == DB_REQUEST) {
        const char *key = xnode_text(el);
        out->key = key ? key : "";
    } else if (out->type == DB_ERROR) {
        out->condition = db_error_condition(el);
    }
    return DB_PARSE_OK;
}

static void attr(buf *out, const char *name, const char *value)
{
    if (!value) return;
    buf_printf(out, " %s='", name);
    xml_escape_attr(out, value, strlen(value));
    buf_append_str(out, "'");
}

void db_write_result_request(buf *out, const char *secret, const char *local, const char *remote,
                             const char *stream_id)
{
    char key[DIALBACK_KEY_LEN + 1];
    dialback_key(secret, remote, local, stream_id, key);
    buf_append_str(out, "<db:result");
    attr(out, "from", local);
    attr(out, "to", remote);
    buf_printf(out, ">%s</db:result>", key);
    crypto_wipe(key, sizeof key);
}

void db_write_verify_request(buf *out, const char *local, const char *remote, const char *id, const char *key)
{
    buf_append_str(out, "<db:verify");
    attr(out, "from", local);
    attr(out, "to", remote);
    attr(out, "id", id);
    buf_append_str(out, ">");
    xml_escape_text(out, key, strlen(key));
    buf_append_str(out, "</db:verify>");
}

void db_write_answer(buf *out, const char *name, const char *from, const char *to, const char *id,
                     const char *type, const char *condition)
{
    buf_printf(out, "<db:%s", name);
    attr(out, "from", from);
    attr(out, "to", to);
    attr(out, "id", id);
    attr(out, "type", type);
    if (!condition) {
        buf_append_str(out, "/>");
        return;
    }
    const stanza_error_info *info = stanza_error_lookup(condition);
    buf_printf(out, "><error type='%s' code='%d'><%s xmlns='" NS_XMPP_STANZAS "'/></error></db:%s>",
               info ? info->type : "cancel", info ? info->code : 500, condition, name);
}
