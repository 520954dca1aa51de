/* JID parsing and preparation (RFC 7622 form, RFC 3920/6122 profiles). */
#include "common/jid.h"

#include <stdlib.h>
#include <string.h>

#include "t/unit/tap.h"

/* Parse s and check every part (NULL where a part must be absent). */
static void check_valid(const char *s, const char *node, const char *domain,
                        const char *resource, const char *bare, const char *full)
{
    jid j = JID_INIT;
    if (!ok(jid_parse(&j, s) == 0, "valid: '%s'", s))
        return;
    is_str(j.node, node, "  node of '%s'", s);
    is_str(j.domain, domain, "  domain of '%s'", s);
    is_str(j.resource, resource, "  resource of '%s'", s);
    is_str(j.bare, bare, "  bare of '%s'", s);
    is_str(j.full, full, "  full of '%s'", s);
    jid_free(&j);
}

static void check_invalid(const char *s, const char *why)
{
    jid j = JID_INIT;
    int rc = jid_parse(&j, s);
    is_int(rc, -1, "invalid (%s)", why);
    ok(j.mem == NULL && j.domain == NULL && j.full == NULL, "  jid left empty (%s)", why);
    jid_free(&j);
}

/* A string of n copies of c. */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static char *concat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

static void test_valid(void)
{
    check_valid("juliet@example.com", "juliet", "example.com", NULL,
                "juliet@example.com", "juliet@example.com");
    check_valid("example.com", NULL, "example.com", NULL, "example.com", "example.com");
    check_valid("juliet@example.com/foo", "juliet", "example.com", "foo",
                "juliet@example.com", "juliet@example.com/foo");
    check_valid("juliet@example.com/foo bar", "juliet", "example.com", "foo bar",
                "juliet@example.com", "juliet@example.com/foo bar");
    check_valid("juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar",
                "juliet@example.com", "juliet@example.com/foo@bar");
    check_valid("juliet@example.com/foo/bar", "juliet", "example.com", "foo/bar",
                "juliet@example.com", "juliet@example.com/foo/bar");
    check_valid("example.com/foo@bar", NULL, "example.com", "foo@bar",
                "example.com", "example.com/foo@bar");
    check_valid("\xcf\x80@example.com", "\xcf\x80", "example.com", NULL,
                "\xcf\x80@example.com", "\xcf\x80@example.com");
    check_valid("JuLiEt@ExAmPlE.CoM/Res", "juliet", "example.com", "Res",
                "juliet@example.com", "juliet@example.com/Res");
    /* Nodeprep case folding B.2 maps sharp s to "ss" */
    check_valid("Fu\xc3\x9f" "ball@example.com", "fussball", "example.com", NULL,
                "fussball@example.com", "fussball@example.com");
    /* Non-ASCII case folding in node and domain (Nameprep) */
    check_valid("\xc3\x84ns@\xc3\x96L.example", "\xc3\xa4ns", "\xc3\xb6l.example", NULL,
                "\xc3\xa4ns@\xc3\xb6l.example", "\xc3\xa4ns@\xc3\xb6l.example");
    /* Resourceprep keeps case but applies NFKC: U+FB01 (fi ligature) -> "fi" */
    check_valid("a@b.example/\xef\xac\x81x", "a", "b.example", "fix",
                "a@b.example", "a@b.example/fix");
    check_valid("[::1]", NULL, "[::1]", NULL, "[::1]", "[::1]");
    check_valid("juliet@[2001:db8::1]/r", "juliet", "[2001:db8::1]", "r",
                "juliet@[2001:db8::1]", "juliet@[2001:db8::1]/r");
    check_valid("192.168.0.1", NULL, "192.168.0.1", NULL, "192.168.0.1", "192.168.0.1");
    check_valid("example.com.", NULL, "example.com", NULL, "example.com", "example.com");
    check_valid("juliet@example.com./r", "juliet", "example.com", "r",
                "juliet@example.com", "juliet@example.com/r");
    /* U+3002 IDEOGRAPHIC FULL STOP is a label separator */
    check_valid("a@example\xe3\x80\x82" "com", "a", "example.com", NULL,
                "a@example.com", "a@example.com");
    check_valid("localhost", NULL, "localhost", NULL, "localhost", "localhost");
    check_valid("_xmpp.example.com", NULL, "_xmpp.example.com", NULL,
                "_xmpp.example.com", "_xmpp.example.com");

    /* Exactly 1023 bytes per part is the limit, inclusive */
    char *node = repeat('n', JID_PART_MAX);
    char *s = concat3(node, "@example.com", "");
    jid j = JID_INIT;
    ok(jid_parse(&j, s) == 0, "1023-byte node accepted");
    is_int(j.node ? strlen(j.node) : 0, JID_PART_MAX, "  node kept whole");
    jid_free(&j);
    free(s);

    char *res = repeat('r', JID_PART_MAX);
    s = concat3("a@example.com/", res, "");
    ok(jid_parse(&j, s) == 0, "1023-byte resource accepted");
    jid_free(&j);
    free(s);

    /* Domain of 1023 bytes: labels of 63 'd's joined by dots */
    char *dom = repeat('d', JID_PART_MAX);
    for (size_t i = 63; i < JID_PART_MAX; i += 64)
        dom[i] = '.'; /* last label: bytes 960..1022 */
    ok(jid_parse(&j, dom) == 0, "1023-byte domain accepted");
    jid_free(&j);
    s = concat3(dom, ".", "");
    ok(jid_parse(&j, s) == 0, "1023-byte domain plus trailing dot accepted");
    is_int(j.domain ? strlen(j.domain) : 0, JID_PART_MAX, "  trailing dot removed");
    jid_free(&j);
    free(s);

    /* The longest full JID: 1023 + 1 + 1023 + 1 + 1023 */
    s = concat3(node, "@", dom);
    char *full = concat3(s, "/", res);
    ok(jid_parse(&j, full) == 0, "3071-byte full JID accepted");
    is_int(j.full ? strlen(j.full) : 0, 3 * JID_PART_MAX + 2, "  full length");
    jid_free(&j);
    free(full);
    free(s);
    /* and with the domain's trailing dot, 3072 bytes of input */
    s = concat3(node, "@", dom);
    full = concat3(s, "./", res);
    ok(jid_parse(&j, full) == 0, "3071-byte full JID written with a trailing dot accepted");
    is_int(j.full ? strlen(j.full) : 0, 3 * JID_PART_MAX + 2, "  dot removed");
    jid_free(&j);
    free(full);
    free(s);
    free(dom);
    free(res);
    free(node);
}

static void test_invalid(void)
{
    check_invalid("\"juliet\"@example.com", "quote in node");
    check_invalid("foo bar@example.com", "space in node");
    check_invalid("foo&bar@example.com", "& in node");
    check_invalid("foo:bar@example.com", ": in node");
    check_invalid("foo<bar@example.com", "< in node");
    check_invalid("juliet@", "empty domain after @");
    check_invalid("@example.com", "empty node");
    check_invalid("example.com/", "empty resource");
    check_invalid("juliet@example.com/", "empty resource after bare");
    check_invalid("a@b@c", "second @ in the domain");
    check_invalid("", "empty string");
    check_invalid("/res", "empty domain before /");
    check_invalid("@", "lone @");
    check_invalid(".", "domain of only a dot");
    check_invalid("example..com", "empty label");
    check_invalid(".example.com", "leading empty label");
    check_invalid("example.com..", "two trailing dots");
    check_invalid("exa mple.com", "space in domain");
    check_invalid("exa\tmple.com", "control in domain");
    check_invalid("a@example.com/x\x01y", "control in resource");
    check_invalid("[::1", "unterminated IPv6 literal");
    check_invalid("[example.com]", "bracketed non-address");
    check_invalid("[1.2.3.4]", "IPv4 in brackets");
    check_invalid("juliet@example.com:5222", "port in domain");
    check_invalid("\xff@example.com", "invalid UTF-8 byte in node");
    check_invalid("a@exam\xc3ple.com", "truncated UTF-8 sequence");
    check_invalid("a@example.com/\xc0\xaf", "overlong UTF-8");
    check_invalid("a@example.com/\xed\xa0\x80", "UTF-8 surrogate");
    check_invalid("\xc2\xad@example.com", "node mapped to nothing (soft hyphen)");
    check_invalid("a@example.com/\xe2\x80\x8e" "x", "LRM in resource (prohibited C.8)");
    /* Bidi: a RandALCat string must start and end with RandALCat */
    check_invalid("\xd7\x90" "a@example.com", "mixed RTL and LTR in node");

    char *label = repeat('l', 64);
    char *s = concat3("a@", label, ".example.com");
    check_invalid(s, "label of 64 bytes");
    free(s);
    label[63] = '\0';
    s = concat3("a@", label, ".example.com");
    jid j = JID_INIT;
    ok(jid_parse(&j, s) == 0, "label of 63 bytes accepted");
    jid_free(&j);
    free(s);
    free(label);

    char *big = repeat('x', JID_PART_MAX + 1);
    s = concat3(big, "@example.com", "");
    check_invalid(s, "1024-byte node");
    free(s);
    s = concat3("a@example.com/", big, "");
    check_invalid(s, "1024-byte resource");
    free(s);
    /* 1024-byte domain with valid labels */
    for (size_t i = 50; i < JID_PART_MAX + 1; i += 51)
        big[i] = '.'; /* labels of 50 bytes, the last one 3 */
    check_invalid(big, "1024-byte domain");
    free(big);

    /* Node that grows past the limit under preparation: 512 sharp s
     * (1024 bytes) fold to 1024 bytes of 's'; 511 fold to 1022. */
    char *sharp = malloc(2 * 512 + 1);
    for (int i = 0; i < 512; i++)
        memcpy(sharp + 2 * i, "\xc3\x9f", 2);
    sharp[1024] = '\0';
    s = concat3(sharp, "@example.com", "");
    check_invalid(s, "node longer than 1023 bytes after case folding");
    free(s);
    sharp[1022] = '\0';
    s = concat3(sharp, "@example.com", "");
    ok(jid_parse(&j, s) == 0, "511 sharp s fold into a 1022-byte node");
    is_int(j.node ? strlen(j.node) : 0, 1022, "  node length after folding");
    jid_free(&j);
    free(s);
    free(sharp);

    /* Input beyond 3071+2 bytes is refused before any preparation */
    char *huge = repeat('r', 4000);
    memcpy(huge, "a@b.example/", 12);
    check_invalid(huge, "input of 4000 bytes");
    free(huge);

    ok(jid_parse(&j, NULL) == -1, "NULL input refused");
}

static void test_set_and_copy(void)
{
    jid j = JID_INIT, k = JID_INIT;
    ok(jid_set(&j, "Romeo", "Example.NET", "Orchard") == 0, "jid_set prepares parts");
    is_str(j.full, "romeo@example.net/Orchard", "  jid_set full");
    is_str(j.bare, "romeo@example.net", "  jid_set bare");

    jid_copy(&k, &j);
    ok(k.mem != j.mem, "jid_copy makes its own allocation");
    is_str(k.full, "romeo@example.net/Orchard", "  copy full");
    is_str(k.node, "romeo", "  copy node");
    is_str(k.resource, "Orchard", "  copy resource");
    ok(jid_equal(&j, &k), "copy equals original");

    ok(jid_set_resource(&k, "Balcony") == 0, "jid_set_resource replaces the resource");
    is_str(k.full, "romeo@example.net/Balcony", "  new full");
    is_str(k.resource, "Balcony", "  new resource");
    is_str(k.bare, "romeo@example.net", "  bare unchanged");
    ok(!jid_equal(&j, &k), "different resources are not equal");
    ok(jid_equal_bare(&j, &k), "but the bare JIDs are");

    ok(jid_set_resource(&k, "") == -1, "empty resource refused");
    ok(jid_set_resource(&k, "bad\x7f") == -1, "resource with DEL refused");
    is_str(k.full, "romeo@example.net/Balcony", "  failed set_resource leaves the jid as it was");

    ok(jid_set_resource(&k, NULL) == 0, "jid_set_resource(NULL) removes the resource");
    ok(k.resource == NULL, "  resource is NULL");
    is_str(k.full, "romeo@example.net", "  full is the bare JID");
    jid_free(&k);

    ok(jid_set(&k, NULL, "example.net", NULL) == 0, "jid_set with only a domain");
    is_str(k.full, "example.net", "  domain JID");
    ok(k.node == NULL && k.resource == NULL, "  no node, no resource");
    jid_free(&k);

    ok(jid_set(&k, "a b", "example.net", NULL) == -1, "jid_set refuses a bad node");
    ok(k.mem == NULL, "  and leaves the jid empty");
    ok(jid_set(&k, "", "example.net", NULL) == -1, "jid_set refuses an empty node");
    ok(jid_set(&k, "a", NULL, NULL) == -1, "jid_set refuses a missing domain");

    jid e = JID_INIT;
    jid_copy(&k, &e);
    ok(k.mem == NULL && k.full == NULL, "copy of an empty jid is empty");
    ok(jid_set_resource(&k, "r") == -1, "set_resource on an empty jid fails");
    ok(!jid_equal(&k, &e), "empty jids are never equal");

    jid_free(&j);
    jid_free(&j); /* freeing twice is harmless */
}

static void test_equal(void)
{
    jid a = JID_INIT, b = JID_INIT;
    jid_parse(&a, "JULIET@Example.COM/Balcony");
    jid_parse(&b, "juliet@example.com./Balcony");
    ok(jid_equal(&a, &b), "equal after case folding and trailing dot");
    jid_free(&b);
    jid_parse(&b, "juliet@example.com/balcony");
    ok(!jid_equal(&a, &b), "resources compare case-sensitively");
    ok(jid_equal_bare(&a, &b), "bare JIDs equal");
    jid_free(&b);
    jid_parse(&b, "romeo@example.com/Balcony");
    ok(!jid_equal_bare(&a, &b), "different nodes differ");
    jid_free(&b);
    jid_parse(&b, "example.com");
    ok(!jid_equal_bare(&a, &b), "domain JID differs from user JID");
    jid_free(&b);
    jid_free(&a);
}

static void test_prep_functions(void)
{
    char out[JID_PART_MAX + 1];
    is_int(jid_nodeprep("JuLiEt", out, sizeof out), 6, "jid_nodeprep length");
    is_str(out, "juliet", "  jid_nodeprep folds case");
    is_int(jid_nodeprep("a@b", out, sizeof out), -1, "jid_nodeprep refuses @");
    is_int(jid_nodeprep("a/b", out, sizeof out), -1, "jid_nodeprep refuses /");
    is_int(jid_nodeprep("", out, sizeof out), -1, "jid_nodeprep refuses empty");
    is_int(jid_nameprep("Example.COM.", out, sizeof out), 11, "jid_nameprep length");
    is_str(out, "example.com", "  jid_nameprep folds case, drops the trailing dot");
    is_int(jid_nameprep("a..b", out, sizeof out), -1, "jid_nameprep refuses an empty label");
    is_int(jid_resourceprep("Hello World", out, sizeof out), 11, "jid_resourceprep length");
    is_str(out, "Hello World", "  jid_resourceprep keeps case and spaces");
    char small[4];
    is_int(jid_nodeprep("juliet", small, sizeof small), -1, "output buffer too small refused");
    is_int(jid_nodeprep("abc", small, sizeof small), 3, "output buffer exactly large enough");
    is_str(small, "abc", "  and filled");
}

static void test_normalize(void)
{
    char *s = jid_normalize("JuLiEt@ExAmPlE.CoM/Res");
    is_str(s, "juliet@example.com/Res", "jid_normalize");
    free(s);
    s = jid_normalize_bare("JuLiEt@ExAmPlE.CoM/Res");
    is_str(s, "juliet@example.com", "jid_normalize_bare drops the resource");
    free(s);
    s = jid_normalize_bare("Example.com./x");
    is_str(s, "example.com", "jid_normalize_bare of a domain JID");
    free(s);
    ok(jid_normalize_bare("a@b@c") == NULL, "jid_normalize_bare of a malformed JID is NULL");
    ok(jid_normalize("@example.com") == NULL, "jid_normalize of a malformed JID is NULL");
}

int main(void)
{
    test_valid();
    test_invalid();
    test_set_and_copy();
    test_equal();
    test_prep_functions();
    test_normalize();
    return tap_done();
}
