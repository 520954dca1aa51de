/* The element scanner (common/xml_scan.c): boundaries, the outer tag's
 * attributes, and what it leaves to the parser. */
#include "common/xml_scan.h"

#include <stdlib.h>
#include <string.h>

#include "t/unit/tap.h"

static xml_scan_result scan(const char *s, xml_scanned *out)
{
    return xml_scan_element(s, strlen(s), 0, out);
}

static char *value(const xml_scanned *s, const char *name)
{
    xml_span v = xml_scan_attr_value(s, name);
    if (!v.p) return NULL;
    buf b = BUF_INIT;
    if (xml_scan_unescape(v, &b) != 0) {
        buf_free(&b);
        return strdup("(bad)");
    }
    buf_cstr(&b);
    return b.data ? b.data : strdup("");
}

static void is_attr(const xml_scanned *s, const char *name, const char *want)
{
    char *got = value(s, name);
    is_str(got, want, "  attribute %s", name);
    free(got);
}

static void check_unsure(const char *s, const char *why)
{
    xml_scanned out;
    is_int(scan(s, &out), XML_SCAN_UNSURE, "unsure: %s", why);
}

static void test_route(void)
{
    const char *route = "<route xmlns='urn:switchboard:router' to='c2s-1' from='example.com' c2s-id='7' "
                        "sm-id=\"12\" seq='3'><message xmlns='jabber:client' to='a@example.com/r'>"
                        "<body>x &amp; y</body></message></route>  <next/>";
    xml_scanned s;
    if (!ok(scan(route, &s) == XML_SCAN_DONE, "route envelope scans")) return;
    size_t whole = strlen(route) - strlen("  <next/>");
    is_int(s.len, whole, "  ends after </route>");
    ok(xml_span_is(s.name, "route"), "  name");
    ok(xml_span_is(s.ns, "urn:switchboard:router"), "  namespace");
    is_int(s.nattrs, 6, "  six attributes");
    is_attr(&s, "to", "c2s-1");
    is_attr(&s, "sm-id", "12");
    is_attr(&s, "seq", "3");
    ok(!xml_scan_attr_value(&s, "type").p, "  no type");
    ok(!s.prefixed && !s.dup_attr && !s.attrs_dropped, "  plain");
    is_int(s.content_end, whole - strlen("</route>"), "  content ends at the end tag");
    xml_scanned in;
    size_t inner_len = s.content_end - s.start_len;
    ok(xml_scan_element(route + s.start_len, inner_len, 0, &in) == XML_SCAN_DONE && in.len == inner_len,
       "  the content is one element");
    ok(xml_span_is(in.name, "message") && xml_span_is(in.ns, "jabber:client"), "  a message in jabber:client");
    is_int(s.nchildren, 1, "  one child");
    ok(s.child_start == s.start_len && s.child_end == s.content_end, "  the child is the whole content");
    xml_scanned st;
    ok(xml_scan_start_tag(route + s.start_len, inner_len, &st) == XML_SCAN_DONE && xml_span_is(st.name, "message") &&
       xml_span_is(xml_scan_attr_value(&st, "to"), "a@example.com/r") && st.len == 0,
       "  the child's start tag alone");
    ok(scan("<r> <a/>t<b></b></r>", &s) == XML_SCAN_DONE && s.nchildren == 2 && s.child_start == 4 &&
       s.child_end == 8, "children counted, the first delimited");

    char tmp[512];
    for (size_t k = 0; k < whole; k++) {
        memcpy(tmp, route, k);
        if (xml_scan_element(tmp, k, 0, &s) != XML_SCAN_INCOMPLETE) {
            ok(0, "a prefix of %zu bytes is not incomplete", k);
            return;
        }
    }
    ok(1, "every prefix is incomplete");
}

static void test_values(void)
{
    xml_scanned s;
    ok(scan("<x a='&lt;&#65;&#x42;&quot;&apos;&gt;&amp;' b='t\tn\nr\r\nz' c = \"it's\"/>", &s) == XML_SCAN_DONE,
       "references and white space in values");
    is_attr(&s, "a", "<AB\"'>&");
    is_attr(&s, "b", "t n r z");
    is_attr(&s, "c", "it's");
    is_int(s.len, s.start_len, "  empty-element tag: content_end == len");
    ok(scan("<x a='&#x1F600;' b='plain'>t</x >", &s) == XML_SCAN_DONE, "white space in an end tag");
    is_attr(&s, "a", "\xF0\x9F\x98\x80");
    char plain[16];
    ok(xml_span_plain(xml_scan_attr_value(&s, "b"), plain, sizeof plain) == 0 && !strcmp(plain, "plain"),
       "plain copy");
    ok(scan("<x a='1&amp;'/>", &s) == XML_SCAN_DONE &&
       xml_span_plain(xml_scan_attr_value(&s, "a"), plain, sizeof plain) < 0, "a value with a reference is not plain");
}

static void test_flags(void)
{
    xml_scanned s;
    ok(scan("<x a='1' a='2'/>", &s) == XML_SCAN_DONE && s.dup_attr, "duplicate attribute reported");
    ok(scan("<x><p:y xmlns:p='u'/></x>", &s) == XML_SCAN_DONE && s.prefixed, "prefixed child reported");
    ok(scan("<x xml:lang='en'/>", &s) == XML_SCAN_DONE && !s.prefixed, "xml: is not a prefix to follow");
    buf b = BUF_INIT;
    buf_append_str(&b, "<x");
    for (int i = 0; i < XML_SCAN_MAX_ATTRS + 2; i++) {
        char a[32];
        snprintf(a, sizeof a, " a%d='%d'", i, i);
        buf_append_str(&b, a);
    }
    buf_append_str(&b, "/>");
    ok(xml_scan_element(b.data, b.len, 0, &s) == XML_SCAN_DONE && s.attrs_dropped &&
       s.nattrs == XML_SCAN_MAX_ATTRS, "attributes beyond the table reported");
    buf_free(&b);
}

static void test_unsure(void)
{
    check_unsure("</x>", "an end tag");
    check_unsure("<!-- c --><x/>", "a comment");
    check_unsure("<?pi?>", "a processing instruction");
    check_unsure("text<x/>", "text");
    check_unsure("<x><y></x></y>", "mismatched end tag");
    check_unsure("<x a='<'/>", "'<' in a value");
    check_unsure("<x a='1'b='2'/>", "attributes without white space");
    check_unsure("<x a=1/>", "unquoted value");
    check_unsure("<x>&bogus;</x>", "an undefined entity");
    check_unsure("<x>&amp</x>", "a reference without ';'");
    check_unsure("<x a='&#0;'/>", "a reference to a non-character");
    check_unsure("<x>&#x110000;</x>", "a reference beyond Unicode");
    check_unsure("<x><![CDATA[y]]></x>", "CDATA");
    check_unsure("<x/ >", "'/' not before '>'");
    buf deep = BUF_INIT;
    for (int i = 0; i < 65; i++) buf_append_str(&deep, "<a>");
    for (int i = 0; i < 65; i++) buf_append_str(&deep, "</a>");
    xml_scanned s;
    is_int(xml_scan_element(deep.data, deep.len, 64, &s), XML_SCAN_UNSURE, "unsure: deeper than the limit");
    is_int(xml_scan_element(deep.data + 3, deep.len - 7, 64, &s), XML_SCAN_DONE, "64 levels scan");
    buf_free(&deep);
    is_int(scan("<x>", &s), XML_SCAN_INCOMPLETE, "an open element is incomplete");
    is_int(scan("", &s), XML_SCAN_INCOMPLETE, "nothing is incomplete");
}

int main(void)
{
    test_route();
    test_values();
    test_flags();
    test_unsure();
    return tap_done();
}
