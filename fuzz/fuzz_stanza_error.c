/* Fuzz target: the stanza error helpers (common/stanza_error.c) and the
 * dialback key check (common/dialback_key.c) on parsed stanzas.
 *
 * Input: [flags] then stanzas, parsed inside a stream header the harness
 * writes (so the input is just what follows the header).
 *   flags bits 0-4: the condition: an RFC 6120 one by index, 22-30 a
 *         condition RFC 6120 does not define, 31 NULL
 *         0x20: give a text (the stanza's own <body> text, or a fixed one)
 *         0x40: a server stream (jabber:server, with the dialback prefix
 *               'db' bound), else a client stream
 *         0x80: the other dialback secret
 *
 * For every stanza: stanza_make_error succeeds exactly when
 * stanza_error_allowed says so; then 'to' and 'from' are swapped, the type
 * is error, the last child is an <error/> in the stanza's namespace with
 * the condition's type and code and the condition element, the original
 * bytes are forgotten, the result serialises and parses back to the same
 * tree, and a second error is refused. When it fails, the stanza is left as
 * it was. Every element in jabber:server:dialback gets its key checked: the
 * key computed for its to/from/id verifies (also upper case and with
 * whitespace around it), one wrong character does not, and the key it
 * carries verifies only if it is that key. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dialback_key.h"
#include "common/stanza_error.h"
#include "common/xml_stream.h"
#include "common/xml_write.h"
#include "fuzz/fuzz_util.h"

#define NS_DIALBACK "jabber:server:dialback"

static const char *const conditions[] = {
    "bad-request", "conflict", "feature-not-implemented", "forbidden", "gone",
    "internal-server-error", "item-not-found", "jid-malformed", "not-acceptable",
    "not-allowed", "not-authorized", "policy-violation", "recipient-unavailable",
    "redirect", "registration-required", "remote-server-not-found",
    "remote-server-timeout", "resource-constraint", "service-unavailable",
    "subscription-required", "undefined-condition", "unexpected-request",
    /* 22.. not RFC 6120 conditions */
    "", "bad-format", "Bad-Request", "service-unavailable ", "error", "text", "x", "see-other-host",
    "undefined-condition\n",
};

typedef struct run {
    unsigned flags;
    const char *ctx;
} run;

static const char *condition_of(unsigned flags)
{
    unsigned i = flags & 31;
    return i < sizeof conditions / sizeof conditions[0] ? conditions[i] : NULL;
}

static char *serialize(const xnode *el, const char *ctx)
{
    buf b = BUF_INIT;
    xml_write(&b, el, ctx);
    buf_cstr(&b);
    return b.data;
}

static void check_dialback(const run *r, const xnode *el)
{
    const char *secret = (r->flags & 0x80) ? "s3cr3tf0rd14lb4ck" : "";
    const char *to = xnode_attr(el, "to"), *from = xnode_attr(el, "from"), *id = xnode_attr(el, "id");
    const char *text = xnode_text(el);
    char key[DIALBACK_KEY_LEN + 1];
    dialback_key(secret, to, from, id, key);
    if (!to || !from || !id) {
        FUZZ_CHECK(key[0] == '\0', "a key without all of to/from/id");
        FUZZ_CHECK(!dialback_key_check(secret, to, from, id, text), "verified without all of to/from/id");
        return;
    }
    FUZZ_CHECK(strlen(key) == DIALBACK_KEY_LEN, "key of length %zu", strlen(key));
    for (size_t i = 0; i < DIALBACK_KEY_LEN; i++)
        FUZZ_CHECK(isxdigit((unsigned char)key[i]) && !isupper((unsigned char)key[i]), "key '%s' is not lower hex", key);
    FUZZ_CHECK(dialback_key_check(secret, to, from, id, key), "own key '%s' refused", key);

    char variant[DIALBACK_KEY_LEN + 8];
    for (size_t i = 0; i <= DIALBACK_KEY_LEN; i++) variant[i] = (char)toupper((unsigned char)key[i]);
    FUZZ_CHECK(dialback_key_check(secret, to, from, id, variant), "upper-case key refused");
    snprintf(variant, sizeof variant, "\n  %s\n ", key);
    FUZZ_CHECK(dialback_key_check(secret, to, from, id, variant), "key with whitespace around refused");
    memcpy(variant, key, sizeof key);
    variant[7] = variant[7] == '0' ? '1' : '0';
    FUZZ_CHECK(!dialback_key_check(secret, to, from, id, variant), "wrong key accepted");
    /* The secret, the domains and the stream id all go into the key. */
    char other[DIALBACK_KEY_LEN + 1];
    dialback_key("another secret", to, from, id, other);
    FUZZ_CHECK(strcmp(other, key) != 0, "key does not depend on the secret");

    /* The key the stanza carries: accepted only if it is the right key,
     * give or take case and surrounding whitespace. */
    if (dialback_key_check(secret, to, from, id, text)) {
        const char *t = text;
        while (*t == ' ' || *t == '\t' || *t == '\r' || *t == '\n') t++;
        for (size_t i = 0; i < DIALBACK_KEY_LEN; i++)
            FUZZ_CHECK(tolower((unsigned char)t[i]) == key[i], "key '%s' accepted for '%s'", text, key);
        for (const char *rest = t + DIALBACK_KEY_LEN; *rest; rest++)
            FUZZ_CHECK(strchr(" \t\r\n", *rest), "key '%s' accepted with trailing junk", text);
    }
}

/* An attribute value as a copy (NULL if absent), to compare after changes. */
static char *attr_copy(const xnode *el, const char *name)
{
    const char *v = xnode_attr(el, name);
    return v ? strdup(v) : NULL;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_error(const run *r, stanza *st)
{
    xnode *root = st->root;
    const char *condition = condition_of(r->flags);
    const char *text = NULL;
    if (r->flags & 0x20) {
        text = xnode_child_text(root, "body", NULL);
        if (!text) text = "Text with <markup> & 'quotes' \"too\"\r\n";
    }
    char *to = attr_copy(root, "to"), *from = attr_copy(root, "from"), *type = attr_copy(root, "type");
    char *text_copy = text ? strdup(text) : NULL;
    char *before = serialize(root, r->ctx);
    size_t nchildren = xnode_count_elements(root);
    int allowed = stanza_error_allowed(root);
    int expect_allowed = !same_str(type, "error") && !(strcmp(root->name, "iq") == 0 && same_str(type, "result"));
    FUZZ_CHECK(allowed == expect_allowed, "stanza_error_allowed = %d for <%s type='%s'>", allowed, root->name,
               type ? type : "");

    int rc = stanza_make_error(st, condition, text_copy);
    if (!allowed) {
        FUZZ_CHECK(rc == -1, "made an error of a stanza that may not get one");
        char *after = serialize(root, r->ctx);
        FUZZ_CHECK(strcmp(before, after) == 0, "refused stanza_make_error changed the stanza:\n%s\n%s", before, after);
        free(after);
    } else {
        FUZZ_CHECK(rc == 0, "stanza_make_error failed on an allowed stanza");
        FUZZ_CHECK(!st->raw, "original bytes kept after a change");
        FUZZ_CHECK(same_str(xnode_attr(root, "to"), from) && same_str(xnode_attr(root, "from"), to),
                   "to/from not swapped");
        FUZZ_CHECK(same_str(xnode_attr(root, "type"), "error"), "type is not error");
        FUZZ_CHECK(xnode_count_elements(root) == nchildren + 1, "not exactly one child added");
        const xnode *err = root->last_child;
        FUZZ_CHECK(err && xnode_is(err, "error", root->ns), "the last child is not <error/> in the stanza's namespace");
        const stanza_error_info *info = stanza_error_lookup(condition);
        if (!info) info = stanza_error_lookup("undefined-condition");
        FUZZ_CHECK(info, "no undefined-condition");
        FUZZ_CHECK(same_str(xnode_attr(err, "type"), info->type), "error type");
        char code[16];
        snprintf(code, sizeof code, "%d", info->code);
        FUZZ_CHECK(same_str(xnode_attr(err, "code"), code), "error code");
        const xnode *cond = xnode_first_element(err);
        FUZZ_CHECK(cond && xnode_is(cond, info->condition, NS_XMPP_STANZAS), "condition element");
        const char *t = xnode_child_text(err, "text", NS_XMPP_STANZAS);
        FUZZ_CHECK(same_str(t && *t ? t : NULL, text_copy && *text_copy ? text_copy : NULL), "error text");
        FUZZ_CHECK(!stanza_error_allowed(root), "an error may get an error");
        FUZZ_CHECK(stanza_make_error(st, condition, text_copy) == -1, "error made of an error");
        fuzz_check_roundtrip(root, r->ctx);
    }
    free(before);
    free(to);
    free(from);
    free(type);
    free(text_copy);
}

static xs_action on_element(void *ud, stanza *st)
{
    run *r = ud;
    for (const xnode *el = st->root; el; el = el == st->root ? xnode_first_element(st->root) : xnode_next_element(el))
        if (xnode_is(el, NULL, NS_DIALBACK)) check_dialback(r, el);
    check_error(r, st);
    stanza_free(st);
    return XS_CONTINUE;
}

static xs_action on_open(void *ud, stanza *header)
{
    (void)ud;
    stanza_free(header);
    return XS_CONTINUE;
}

static const xml_stream_handler handler = {on_open, on_element, NULL};

/* Stream errors: the bytes parse inside a stream, with the text intact. */
static void check_stream_error(const char *condition, const char *text)
{
    /* A condition must be a name; "text" would be mistaken for the text. */
    if (!condition || !*condition || strspn(condition, "abcdefghijklmnopqrstuvwxyz-") != strlen(condition) ||
        strcmp(condition, "text") == 0)
        return;
    buf b = BUF_INIT;
    buf_append_str(&b, "<s:stream xmlns:s='" NS_STREAMS "' xmlns:stream='" NS_STREAMS "'>");
    size_t start = b.len;
    stream_error_write(&b, condition, text);
    size_t end = b.len;
    buf_append_str(&b, "</s:stream>");
    xml_err err;
    char errtext[256];
    stanza *doc = xml_parse_document(b.data, b.len, NULL, &err, errtext, sizeof errtext);
    FUZZ_CHECK(doc, "stream error '%.*s' does not parse: %s", (int)(end - start), b.data + start, errtext);
    const xnode *e = xnode_child(doc->root, "error", NS_STREAMS);
    FUZZ_CHECK(e && xnode_child(e, condition, NS_XMPP_STREAMS), "stream error without its condition");
    const char *t = xnode_child_text(e, "text", NS_XMPP_STREAMS);
    FUZZ_CHECK(same_str(t, text), "stream error text '%s' vs '%s'", t ? t : "(none)", text ? text : "(none)");
    stanza_free(doc);
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    run r = {.flags = data[0]};
    int server = (r.flags & 0x40) != 0;
    r.ctx = server ? NS_SERVER : NS_CLIENT;
    data++;
    size--;

    xml_limits lim;
    xml_limits_default(&lim);
    lim.max_stanza_bytes = 16384;
    xml_stream *xs = xml_stream_new(&lim, &handler, &r);
    FUZZ_CHECK(xs, "xml_stream_new");
    const char *header = server
        ? "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
          "xmlns:db='jabber:server:dialback' to='example.org' version='1.0'>"
        : "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
          "to='example.org' version='1.0'>";
    size_t used;
    FUZZ_CHECK(xml_stream_feed(xs, header, strlen(header), &used) == XML_OK, "header");
    xml_stream_feed(xs, (const char *)data, size, &used);
    xml_stream_free(xs);

    /* The stream error text: the input as text when it is valid UTF-8 XML text. */
    if (r.flags & 0x20) {
        char *text = fuzz_strndup(data, size);
        /* Only text the parser would give back: no control characters but
         * tab/LF (CR is written as a reference), and valid UTF-8 (checked by
         * the parser itself through a plain element). */
        int plain = 1;
        for (const char *p = text; *p; p++)
            if ((unsigned char)*p < 0x20 && !strchr("\t\n\r", *p)) plain = 0;
        if (plain && strlen(text) == size) {
            buf probe = BUF_INIT;
            buf_append_str(&probe, "<t>");
            xml_escape_text(&probe, text, size);
            buf_append_str(&probe, "</t>");
            stanza *ok = xml_parse_document(probe.data, probe.len, NULL, NULL, NULL, 0);
            if (ok) check_stream_error(condition_of(r.flags), *text ? text : NULL);
            stanza_free(ok);
            buf_free(&probe);
        }
        free(text);
    }
    return 0;
}
