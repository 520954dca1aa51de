/* Stanza errors (RFC 6120 §8.3) with the legacy codes of XEP-0086, and the
 * bytes of stream errors (RFC 6120 §4.9). */
#include "common/stanza_error.h"

#include <stdio.h>
#include <string.h>

#include "common/xml_write.h"

/* Types are the ones RFC 6120 §8.3.3 recommends; where it differs from
 * XEP-0086 (gone, internal-server-error) RFC 6120 wins. Codes are from
 * XEP-0086 §3. */
static const stanza_error_info error_table[] = {
    {"bad-request", "modify", 400},
    {"conflict", "cancel", 409},
    {"feature-not-implemented", "cancel", 501},
    {"forbidden", "auth", 403},
    {"gone", "cancel", 302},
    {"internal-server-error", "cancel", 500},
    {"item-not-found", "cancel", 404},
    {"jid-malformed", "modify", 400},
    {"not-acceptable", "modify", 406},
    {"not-allowed", "cancel", 405},
    {"not-authorized", "auth", 401},
    /* New in RFC 6120, not in XEP-0086: 406 Not Acceptable is the closest
     * legacy meaning (the sender has to change what it sends). */
    {"policy-violation", "modify", 406},
    {"recipient-unavailable", "wait", 404},
    {"redirect", "modify", 302},
    {"registration-required", "auth", 407},
    {"remote-server-not-found", "cancel", 404},
    {"remote-server-timeout", "wait", 504},
    {"resource-constraint", "wait", 500},
    {"service-unavailable", "cancel", 503},
    {"subscription-required", "auth", 407},
    /* XEP-0086 allows any type here; cancel is the safe default. */
    {"undefined-condition", "cancel", 500},
    {"unexpected-request", "wait", 400},
};

const stanza_error_info *stanza_error_lookup(const char *condition)
{
    if (!condition) return NULL;
    for (size_t i = 0; i < sizeof error_table / sizeof error_table[0]; i++)
        if (strcmp(error_table[i].condition, condition) == 0) return &error_table[i];
    return NULL;
}

int stanza_error_allowed(const xnode *st)
{
    if (!st || st->type != XNODE_ELEMENT) return 0;
    const char *type = xnode_attr(st, "type");
    if (type && strcmp(type, "error") == 0) return 0;
    if (strcmp(st->name, "iq") == 0 && type && strcmp(type, "result") == 0) return 0;
    return 1;
}

int stanza_make_error(stanza *st, const char *condition, const char *text)
{
    if (!st || !stanza_error_allowed(st->root)) return -1;
    const stanza_error_info *info = stanza_error_lookup(condition);
    /* A condition RFC 6120 does not define would be invalid on the wire. */
    if (!info) info = stanza_error_lookup("undefined-condition");

    xnode *root = st->root;
    /* Old attribute strings stay valid in the arena while being swapped. */
    const char *to = xnode_attr(root, "to");
    const char *from = xnode_attr(root, "from");
    xnode_set_attr(root, "to", from);
    xnode_set_attr(root, "from", to);
    xnode_set_attr(root, "type", "error");

    xnode *err = xnode_add_child(root, "error", NULL);
    xnode_set_attr(err, "type", info->type);
    char code[16];
    snprintf(code, sizeof code, "%d", info->code);
    xnode_set_attr(err, "code", code);
    xnode_add_child(err, info->condition, NS_XMPP_STANZAS);
    if (text) xnode_add_text_child(err, "text", NS_XMPP_STANZAS, text);
    stanza_touch(st);
    return 0;
}

void stream_error_write(buf *out, const char *condition, const char *text)
{
    buf_append_str(out, "<stream:error><");
    buf_append_str(out, condition);
    buf_append_str(out, " xmlns='" NS_XMPP_STREAMS "'/>");
    if (text) {
        buf_append_str(out, "<text xmlns='" NS_XMPP_STREAMS "'>");
        xml_escape_text(out, text, strlen(text));
        buf_append_str(out, "</text>");
    }
    buf_append_str(out, "</stream:error>");
}
