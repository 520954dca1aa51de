/* Fuzz target: JIDs (common/jid.c).
 *
 * Input: the JID string (cut at the first NUL).
 *
 * Invariants of a JID that parses: its parts are non-empty and at most
 * JID_PART_MAX bytes; bare and full are built from them; its full form
 * parses again to the same JID (preparation is idempotent); jid_set,
 * jid_copy, jid_set_resource and jid_normalize agree with it. For any
 * ASCII input the fast path of jid_nodeprep / jid_resourceprep must give
 * what libidn's profiles give. */
#include <stdlib.h>
#include <string.h>

#include <stringprep.h>

#include "common/jid.h"
#include "fuzz/fuzz_util.h"

#define PREP_OUT (3 * JID_PART_MAX + 8)

static void check_part(const char *what, const char *p)
{
    if (!p) return;
    size_t len = strlen(p);
    FUZZ_CHECK(len > 0 && len <= JID_PART_MAX, "%s of %zu bytes", what, len);
}

static void check_same(const char *what, const jid *a, const jid *b)
{
    FUZZ_CHECK(jid_equal(a, b) && jid_equal_bare(a, b), "%s: '%s' vs '%s'", what, a->full, b->full);
    FUZZ_CHECK((!a->node && !b->node) || (a->node && b->node && strcmp(a->node, b->node) == 0),
               "%s: node differs", what);
    FUZZ_CHECK(strcmp(a->domain, b->domain) == 0, "%s: domain '%s' vs '%s'", what, a->domain, b->domain);
    FUZZ_CHECK((!a->resource && !b->resource) || (a->resource && b->resource && strcmp(a->resource, b->resource) == 0),
               "%s: resource differs", what);
}

static void check_jid(const char *input, const jid *j)
{
    FUZZ_CHECK(j->domain && j->bare && j->full && j->mem, "parsed '%s' without domain/bare/full", input);
    check_part("node", j->node);
    check_part("domain", j->domain);
    check_part("resource", j->resource);
    FUZZ_CHECK(!j->node || !strpbrk(j->node, "@/"), "node '%s' holds a separator", j->node);
    FUZZ_CHECK(!strpbrk(j->domain, "@/"), "domain '%s' holds a separator", j->domain);

    /* bare = [node '@'] domain; full = bare ['/' resource] */
    size_t nlen = j->node ? strlen(j->node) + 1 : 0;
    FUZZ_CHECK(!j->node || (strncmp(j->bare, j->node, nlen - 1) == 0 && j->bare[nlen - 1] == '@'),
               "bare '%s' does not start with node", j->bare);
    FUZZ_CHECK(strcmp(j->bare + nlen, j->domain) == 0, "bare '%s' does not end with domain '%s'", j->bare, j->domain);
    size_t blen = strlen(j->bare);
    FUZZ_CHECK(strncmp(j->full, j->bare, blen) == 0, "full '%s' does not start with bare", j->full);
    if (j->resource)
        FUZZ_CHECK(j->full[blen] == '/' && strcmp(j->full + blen + 1, j->resource) == 0, "full '%s' vs resource", j->full);
    else
        FUZZ_CHECK(j->full[blen] == '\0', "full '%s' without resource is not bare", j->full);

    /* The prepared form is a fixed point. */
    jid again;
    FUZZ_CHECK(jid_parse(&again, j->full) == 0, "'%s' parsed to '%s', which does not parse", input, j->full);
    check_same("parse(full)", j, &again);
    jid_free(&again);

    jid built;
    FUZZ_CHECK(jid_set(&built, j->node, j->domain, j->resource) == 0, "jid_set of the parts of '%s' fails", j->full);
    check_same("jid_set", j, &built);
    jid_free(&built);

    jid copy;
    jid_copy(&copy, j);
    check_same("jid_copy", j, &copy);
    FUZZ_CHECK(jid_set_resource(&copy, NULL) == 0 && !copy.resource && strcmp(copy.full, j->bare) == 0,
               "removing the resource of '%s' gives '%s'", j->full, copy.full);
    if (j->resource) {
        FUZZ_CHECK(jid_set_resource(&copy, j->resource) == 0, "resource '%s' refused again", j->resource);
        check_same("jid_set_resource", j, &copy);
    }
    jid_free(&copy);

    char *norm = jid_normalize(input), *bare = jid_normalize_bare(input);
    FUZZ_CHECK(norm && strcmp(norm, j->full) == 0, "jid_normalize '%s' vs '%s'", norm, j->full);
    FUZZ_CHECK(bare && strcmp(bare, j->bare) == 0, "jid_normalize_bare '%s' vs '%s'", bare, j->bare);
    free(norm);
    free(bare);

    /* Each part prepares to itself. */
    char out[PREP_OUT];
    if (j->node)
        FUZZ_CHECK(jid_nodeprep(j->node, out, sizeof out) >= 0 && strcmp(out, j->node) == 0,
                   "nodeprep('%s') is not itself", j->node);
    FUZZ_CHECK(jid_nameprep(j->domain, out, sizeof out) >= 0 && strcmp(out, j->domain) == 0,
               "nameprep('%s') is not itself", j->domain);
    if (j->resource)
        FUZZ_CHECK(jid_resourceprep(j->resource, out, sizeof out) >= 0 && strcmp(out, j->resource) == 0,
                   "resourceprep('%s') is not itself", j->resource);
}

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

/* The ASCII fast path against libidn on the same string. */
static void check_fast_path(const char *s, int (*prep)(const char *, char *, size_t),
                            const Stringprep_profile *profile, const char *name)
{
    size_t len = strlen(s);
    if (len == 0 || len > JID_PART_MAX || !is_ascii(s)) return;
    char ours[PREP_OUT], theirs[PREP_OUT];
    int n = prep(s, ours, sizeof ours);
    memcpy(theirs, s, len + 1);
    int rc = stringprep(theirs, sizeof theirs, 0, profile);
    int idn_ok = rc == STRINGPREP_OK && theirs[0] != '\0';
    FUZZ_CHECK((n >= 0) == idn_ok, "%s('%s'): ours %s, libidn %s", name, s, n >= 0 ? "accepts" : "refuses",
               idn_ok ? "accepts" : "refuses");
    if (n >= 0)
        FUZZ_CHECK(strcmp(ours, theirs) == 0, "%s('%s'): ours '%s', libidn '%s'", name, s, ours, theirs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    jid j;
    if (jid_parse(&j, s) == 0) {
        check_jid(s, &j);
        jid_free(&j);
    } else {
        FUZZ_CHECK(!j.mem && !j.full && !j.domain, "a failed parse left parts behind");
        FUZZ_CHECK(!jid_normalize(s), "jid_normalize accepts what jid_parse refuses");
    }
    check_fast_path(s, jid_nodeprep, stringprep_xmpp_nodeprep, "nodeprep");
    check_fast_path(s, jid_resourceprep, stringprep_xmpp_resourceprep, "resourceprep");
    free(s);
    return 0;
}
