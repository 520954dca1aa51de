/* Fuzz target: whole-document parsing (xml_parse_document) and config
 * validation (config_parse) with a fixed key table.
 *
 * Input: the document. It is parsed with small limits and, if it parses,
 * written, parsed again and compared; then config_parse validates it
 * against the table below (root <router>). A config that validates must
 * answer every getter consistently with the key types: an integer key that
 * is present parses as an integer, a boolean as a boolean, and so on. */
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/xml_stream.h"
#include "common/xml_write.h"
#include "fuzz/fuzz_util.h"

/* The router's own keys (etc/router.xml validates) and a few more, so
 * that every type and flag is used. */
static const config_key keys[] = {
    {"@version", CFG_INT, 0, "file format"},
    {"id", CFG_STRING, 0, "component name"},
    {"listen", CFG_SECTION, CFG_MULTI, "a listener"},
    {"listen/address", CFG_STRING, 0, "address"},
    {"listen/port", CFG_INT, CFG_REQUIRED, "port"},
    {"listen/tls", CFG_BOOL, 0, "direct TLS"},
    {"listen/require-tls", CFG_FLAG, 0, "refuse plaintext"},
    {"log/level", CFG_STRING, 0, "log level"},
    {"log/syslog", CFG_FLAG, 0, "to syslog"},
    {"limits/max-stanza-bytes", CFG_INT, 0, "bytes"},
    {"limits/handshake-timeout", CFG_INT, 0, "seconds"},
    {"limits/write-queue-high", CFG_INT, 0, "bytes"},
    {"limits/write-queue-max", CFG_INT, 0, "bytes"},
    {"metrics/address", CFG_STRING, 0, "address"},
    {"metrics/port", CFG_INT, 0, "port"},
    {"component", CFG_SECTION, CFG_MULTI, "a component"},
    {"component/@name", CFG_STRING, CFG_REQUIRED, "its name"},
    {"component/@secret", CFG_SECRET, 0, "its secret"},
    {"component/@trusted", CFG_BOOL, 0, "may bind names"},
    {"host", CFG_STRING, CFG_MULTI, "hosted domain"},
    {"tls/cert", CFG_FILE, 0, "certificate"},
    {"tls/key", CFG_FILE, 0, "key"},
    {"secret", CFG_SECRET, 0, "shared secret"},
    {NULL, 0, 0, NULL},
};

/* Secrets may name a file ("file:..."), which validation reads. Inputs
 * whose values could name a device, a pipe or /proc are not validated:
 * reading /dev/stdin or /dev/zero would hang the fuzzer, not find a bug. */
static int names_special_file(const char *s)
{
    static const char *const words[] = {"dev", "proc", "sys", "fd", "run", "tmp", "fifo"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(s, words[i])) return 1;
    return 0;
}

static int tree_names_special_file(const xnode *el)
{
    for (const xattr *a = el->attrs; a; a = a->next)
        if (names_special_file(a->value)) return 1;
    for (const xnode *c = el->children; c; c = c->next) {
        if (c->type == XNODE_TEXT ? names_special_file(c->text) : tree_names_special_file(c)) return 1;
    }
    return 0;
}

static void check_value(const xnode *el, const config_key *k, const char *path)
{
    const char *s = config_node_str(el, path, NULL);
    if (!s) return;   /* absent */
    switch (k->type) {
    case CFG_INT: {
        long long a = config_node_int(el, path, 1), b = config_node_int(el, path, 2);
        FUZZ_CHECK(a == b, "validated integer '%s' = '%s' does not parse", path, s);
        break;
    }
    case CFG_BOOL: {
        int a = config_node_bool(el, path, 7), b = config_node_bool(el, path, 8);
        FUZZ_CHECK(a == b && (a == 0 || a == 1), "validated boolean '%s' = '%s' does not parse", path, s);
        break;
    }
    case CFG_FLAG:
        FUZZ_CHECK(*s == '\0' && config_node_bool(el, path, 0) == 1, "flag '%s' has value '%s'", path, s);
        break;
    case CFG_SECRET: {
        char *secret = config_node_secret(el, path);
        FUZZ_CHECK(secret && *secret, "validated secret '%s' does not resolve", path);
        free(secret);
        break;
    }
    case CFG_FILE:
        FUZZ_CHECK(*s == '/', "file '%s' = '%s' not made absolute", path, s);
        break;
    default:
        /* An element's value is trimmed of surrounding whitespace. */
        if (k->type == CFG_STRING && *s && !strchr(path, '@')) {
            size_t len = strlen(s);
            FUZZ_CHECK(!strchr(" \t\r\n", s[0]) && !strchr(" \t\r\n", s[len - 1]),
                       "value of '%s' not trimmed: '%s'", path, s);
        }
        break;
    }
}

static void check_config(const config *c)
{
    const xnode *root = config_root(c);
    FUZZ_CHECK(root && strcmp(root->name, "router") == 0, "config root is not <router>");
    for (const config_key *k = keys; k->path; k++) {
        if (k->type == CFG_SECTION) continue;
        const char *slash = strchr(k->path, '/');
        if (slash && strncmp(k->path, "listen/", 7) == 0) {
            for (const xnode *l = config_first(c, "listen"); l; l = config_next(l)) {
                check_value(l, k, slash + 1);
                FUZZ_CHECK(config_node_str(l, "port", NULL), "a <listen> without its required port");
            }
        } else if (slash && strncmp(k->path, "component/", 10) == 0) {
            for (const xnode *l = config_first(c, "component"); l; l = config_next(l)) {
                check_value(l, k, slash + 1);
                FUZZ_CHECK(config_node_str(l, "@name", NULL), "a <component> without its required name");
            }
        } else if (k->flags & CFG_MULTI) {
            for (const xnode *h = config_first(c, k->path); h; h = config_next(h)) check_value(h, k, "");
        } else {
            check_value(root, k, k->path);
        }
    }
    /* Getters with paths that are not keys answer with the default. */
    FUZZ_CHECK(config_str(c, "no/such/key", NULL) == NULL, "a value for an unknown key");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The secrets of etc/router.xml. */
    setenv("SWITCHBOARD_INTERNAL_SECRET", "internal-fuzz-secret", 0);
    setenv("SWITCHBOARD_COMPONENT_SECRET", "component-fuzz-secret", 0);
    xml_limits lim = {.max_stanza_bytes = 16384, .max_depth = 12, .max_attrs = 16};
    xml_err err = XML_OK;
    char errtext[256];
    stanza *doc = xml_parse_document((const char *)data, size, &lim, &err, errtext, sizeof errtext);
    if (!doc) {
        FUZZ_CHECK(err != XML_OK && strncmp(errtext, "line ", 5) == 0, "error %d with text '%s'", err, errtext);
    } else {
        FUZZ_CHECK(err == XML_OK && doc->root, "document without a root");
        FUZZ_CHECK(fuzz_tree_depth(doc->root) <= lim.max_depth + 1, "document too deep");
        FUZZ_CHECK(fuzz_max_attrs(doc->root) <= lim.max_attrs, "too many attributes");
        fuzz_check_roundtrip(doc->root, "");
        fuzz_check_roundtrip(doc->root, "urn:example:other");
        stanza_free(doc);
    }

    /* The config's own limits are larger: parse again to look for file names. */
    xml_limits cfg_lim = {.max_stanza_bytes = 1 << 20, .max_depth = 16, .max_attrs = 64};
    doc = xml_parse_document((const char *)data, size, &cfg_lim, &err, errtext, sizeof errtext);
    int special = doc && tree_names_special_file(doc->root);
    stanza_free(doc);
    if (special) return 0;

    char cfgerr[512] = "";
    config *c = config_parse("fuzz.xml", (const char *)data, size, "router", keys, cfgerr, sizeof cfgerr);
    if (!c) {
        FUZZ_CHECK(strncmp(cfgerr, "fuzz.xml", 8) == 0, "config error does not name the file: '%s'", cfgerr);
        return 0;
    }
    check_config(c);
    config_free(c);
    return 0;
}
