/* Dialback keys per XEP-0185: the example of the XEP, and every input that
 * must change the key (domains, their order, the stream id, the secret). */
#include <string.h>

#include "common/dialback_key.h"
#include "t/unit/tap.h"

/* XEP-0185 §3 "Example": secret s3cr3tf0rd14lb4ck, receiving server
 * xmpp.example.com, originating server example.org, stream id D60000229F. */
#define XEP_SECRET "s3cr3tf0rd14lb4ck"
#define XEP_RECEIVING "xmpp.example.com"
#define XEP_ORIGINATING "example.org"
#define XEP_STREAM_ID "D60000229F"
#define XEP_KEY "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"

static void test_xep_example(void)
{
    char key[DIALBACK_KEY_LEN + 1];
    dialback_key(XEP_SECRET, XEP_RECEIVING, XEP_ORIGINATING, XEP_STREAM_ID, key);
    is_str(key, XEP_KEY, "XEP-0185 example key");
    is_int(strlen(key), DIALBACK_KEY_LEN, "key is %d hex characters", DIALBACK_KEY_LEN);
    ok(dialback_key_check(XEP_SECRET, XEP_RECEIVING, XEP_ORIGINATING, XEP_STREAM_ID, XEP_KEY),
       "the XEP example key is accepted");
}

static void test_second_vector(void)
{
    /* Computed independently with Python:
     *   k = hashlib.sha256(b'another secret').hexdigest()
     *   hmac.new(k.encode(), b'capulet.lit montague.lit 417GAF25', hashlib.sha256).hexdigest() */
    char key[DIALBACK_KEY_LEN + 1];
    dialback_key("another secret", "capulet.lit", "montague.lit", "417GAF25", key);
    is_str(key, "9e080557b465d9dbba691a7f66054bc08e120c66407606a0f2bada256bdd1a11",
           "second vector (computed with python hmac/hashlib)");
}

static void test_check_refuses(void)
{
    ok(!dialback_key_check(XEP_SECRET, XEP_RECEIVING, XEP_ORIGINATING, XEP_STREAM_ID,
                           "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075644"),
       "a key differing in the last digit is refused");
    ok(!dialback_key_check(XEP_SECRET, XEP_ORIGINATING, XEP_RECEIVING, XEP_STREAM_ID, XEP_KEY),
       "the key is refused for swapped domains");
    ok(!dialback_key_check(XEP_SECRET, XEP_RECEIVING, XEP_ORIGINATING, "D60000229G", XEP_KEY),
       "the key is refused for another stream id");
    ok(!dialback_key_check("another secret", XEP_RECEIVING, XEP_ORIGINATING, XEP_STREAM_ID, XEP_KEY),
       "the key is refused under another secret");
    ok(!dialback_key_check(XEP_SECRET, XEP_RECEIVING, XEP_ORIGINATING, XEP_STREAM_ID,
                           "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b8932307564"),
       "a key one character short is refused");
    ok(!dialback_key_check(XEP_SECRET, XEP_RECEIVING, XEP_ORIGINATING, XEP_STREAM_ID, XEP_KEY "3"),
       "a key one character long is refused");
    ok(!dialback_key_check(XEP_SECRET, XEP_RECEIVING, XEP_ORIGINATING, XEP_STREAM_ID, XEP_KEY " x"),
       "a key followed by more text is refused");
    ok(!dialback_key_check(XEP_SECRET, XEP_RECEIVING, XEP_ORIGINATING, XEP_STREAM_ID, ""),
       "an empty key is refused");
    ok(!dialback_key_check(XEP_SECRET, XEP_RECEIVING, XEP_ORIGINATING, XEP_STREAM_ID, NULL),
       "a missing key is refused");
}

static void test_check_tolerates_wire_forms(void)
{
    /* The XEP's own <db:verify/> example puts the key on its own indented line. */
    ok(dialback_key_check(XEP_SECRET, XEP_RECEIVING, XEP_ORIGINATING, XEP_STREAM_ID,
                          "\n    " XEP_KEY "\n"),
       "whitespace around the key (pretty-printed element) is accepted");
    ok(dialback_key_check(XEP_SECRET, XEP_RECEIVING, XEP_ORIGINATING, XEP_STREAM_ID,
                          "37C69B1CF07A3F67C04A5EF5902FA5114F2C76FE4A2686482BA5B89323075643"),
       "upper-case hex is accepted");
}

static void test_space_separates_inputs(void)
{
    /* XEP-0185 note 5: without a separator these two pairs would collide. */
    char a[DIALBACK_KEY_LEN + 1], b[DIALBACK_KEY_LEN + 1];
    dialback_key(XEP_SECRET, "example.info", "rm.example.org", "id", a);
    dialback_key(XEP_SECRET, "example.in", "form.example.org", "id", b);
    ok(strcmp(a, b) != 0, "domains that concatenate alike give different keys");
}

int main(void)
{
    test_xep_example();
    test_second_vector();
    test_check_refuses();
    test_check_tolerates_wire_forms();
    test_space_separates_inputs();
    return tap_done();
}
