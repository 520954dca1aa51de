/* Fuzz target: the element scanner (common/xml_scan.c) against expat.
 *
 * Input: bytes that follow a stream header. The scanner looks at them from
 * the start; whenever it says an element ends at offset N, expat is given
 * the same header and the N bytes, followed by a sentinel element, and must
 * agree:
 *   - the first N bytes are exactly one element (it ends at N, nothing
 *     before the sentinel but that element), with the name the scanner read;
 *   - the outer start tag's attributes are the scanner's, in order, with
 *     the values xml_scan_unescape gives (duplicate attributes aside, which
 *     the scanner reports and expat refuses);
 *   - the scanner's content_end is where the end tag starts, and the
 *     element's children (count, first one's extent) are expat's;
 *   - xml_scan_start_tag reads the same start tag.
 * Unless expat refuses the bytes for something the scanner does not check
 * (xml_scan.h: name characters, UTF-8 and XML characters, duplicate inner
 * attributes): those are the only errors allowed. Namespace processing is
 * off: attribute names are compared as written.
 *
 * The scan is also repeated on every shorter prefix of the element (up to
 * a bound), which must say INCOMPLETE: a truncated element is never taken
 * for a whole one, nor for something the scanner is unsure of. */
#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xml_scan.h"
#include "fuzz/fuzz_util.h"

#define HEADER "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>"
#define SENTINEL "<sentinel-element/>"

typedef struct expat_view {
    int depth;
    int top_starts;              /* elements started at depth 1 (below the stream) */
    long top_end;                /* offset after the first top element's end */
    long sentinel_at;            /* offset of the sentinel's '<' */
    long end_tag_at;             /* offset of the first top element's end tag */
    int text_at_top;             /* character data between the stream's children */
    int children;                /* elements directly inside the first top element */
    long child_start, child_end; /* the first of them */
    char *name;
    char **attrs;                /* name, value, ..., NULL */
} expat_view;

static char *dup_str(const char *s)
{
    char *d = strdup(s);
    if (!d) abort();
    return d;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    XML_Parser xp = ud;
    expat_view *v = XML_GetUserData(xp);
    (void)xp;
    v->depth++;
    if (v->depth == 3 && v->top_starts == 1 && ++v->children == 1) v->child_start = XML_GetCurrentByteIndex(xp);
    if (v->depth != 2) return;
    v->top_starts++;
    if (v->top_starts == 2 && !strcmp(name, "sentinel-element")) {
        v->sentinel_at = XML_GetCurrentByteIndex(xp);
        return;
    }
    if (v->top_starts != 1) return;
    v->name = dup_str(name);
    size_t n = 0;
    while (attrs[n]) n++;
    v->attrs = calloc(n + 1, sizeof *v->attrs);
    if (!v->attrs) abort();
    for (size_t i = 0; i < n; i++) v->attrs[i] = dup_str(attrs[i]);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    XML_Parser xp = ud;
    expat_view *v = XML_GetUserData(xp);
    (void)name;
    if (v->depth == 3 && v->top_starts == 1 && v->children == 1 && v->child_end < 0)
        v->child_end = XML_GetCurrentByteIndex(xp) + XML_GetCurrentByteCount(xp);
    if (v->depth == 2 && v->top_starts == 1) {
        v->end_tag_at = XML_GetCurrentByteIndex(xp);
        v->top_end = v->end_tag_at + XML_GetCurrentByteCount(xp);
    }
    v->depth--;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    XML_Parser xp = ud;
    expat_view *v = XML_GetUserData(xp);
    (void)s;
    if (v->depth == 1 && len > 0) v->text_at_top = 1;
}

/* Errors for what the scanner leaves to the parser (xml_scan.h). */
static int unchecked_error(enum XML_Error e)
{
    return e == XML_ERROR_INVALID_TOKEN || e == XML_ERROR_PARTIAL_CHAR || e == XML_ERROR_DUPLICATE_ATTRIBUTE ||
           e == XML_ERROR_BAD_CHAR_REF || e == XML_ERROR_UNDEFINED_ENTITY;
}

static void check_against_expat(const char *p, const xml_scanned *s)
{
    size_t hl = strlen(HEADER), sl = strlen(SENTINEL);
    char *doc = malloc(hl + s->len + sl);
    if (!doc) abort();
    memcpy(doc, HEADER, hl);
    memcpy(doc + hl, p, s->len);
    memcpy(doc + hl + s->len, SENTINEL, sl);

    XML_Parser xp = XML_ParserCreate("UTF-8");
    if (!xp) abort();
    expat_view v = {0};
    v.top_end = v.sentinel_at = v.end_tag_at = v.child_start = v.child_end = -1;
    XML_SetUserData(xp, &v);
    XML_UseParserAsHandlerArg(xp);
    XML_SetElementHandler(xp, on_start, on_end);
    XML_SetCharacterDataHandler(xp, on_text);
    int ok = XML_Parse(xp, doc, (int)(hl + s->len + sl), 0) == XML_STATUS_OK;
    enum XML_Error err = XML_GetErrorCode(xp);

    if (!ok) {
        /* Refused: only for what the scanner does not check, and not at the stream header. */
        long at = XML_GetCurrentByteIndex(xp);
        FUZZ_CHECK(unchecked_error(err) || (s->dup_attr && err == XML_ERROR_DUPLICATE_ATTRIBUTE),
                   "expat refuses an element the scanner accepted (%zu bytes): %s at %ld", s->len,
                   XML_ErrorString(err), at - (long)hl);
        FUZZ_CHECK(at >= (long)hl && at < (long)(hl + s->len), "expat fails outside the element: %s at %ld",
                   XML_ErrorString(err), at - (long)hl);
    } else {
        FUZZ_CHECK(!s->dup_attr, "a duplicate attribute reported, expat accepts the tag");
        FUZZ_CHECK(v.top_starts == 2, "expat saw %d elements before the sentinel, not 1", v.top_starts - 1);
        FUZZ_CHECK(v.sentinel_at == (long)(hl + s->len), "the sentinel starts at %ld, not %zu",
                   v.sentinel_at - (long)hl, s->len);
        FUZZ_CHECK(v.top_end == (long)(hl + s->len), "expat ends the element at %ld, the scanner at %zu",
                   v.top_end - (long)hl, s->len);
        FUZZ_CHECK(!v.text_at_top, "expat saw text after the element");
        if (s->start_len != s->len)
            FUZZ_CHECK(v.end_tag_at == (long)(hl + s->content_end), "end tag at %ld, the scanner says %zu",
                       v.end_tag_at - (long)hl, s->content_end);
        FUZZ_CHECK(v.children == (int)s->nchildren, "expat sees %d children, the scanner %u", v.children,
                   s->nchildren);
        if (v.children > 0) {
            FUZZ_CHECK(v.child_start == (long)(hl + s->child_start) && v.child_end == (long)(hl + s->child_end),
                       "first child at [%ld, %ld), the scanner says [%zu, %zu)", v.child_start - (long)hl,
                       v.child_end - (long)hl, s->child_start, s->child_end);
        }
        FUZZ_CHECK(v.name && s->name.n == strlen(v.name) && !memcmp(s->name.p, v.name, s->name.n),
                   "element name differs: expat '%s'", v.name ? v.name : "");
        size_t n = 0;
        while (v.attrs[n]) n += 2;
        if (!s->attrs_dropped)
            FUZZ_CHECK(n / 2 == s->nattrs, "expat has %zu attributes, the scanner %u", n / 2, s->nattrs);
        for (unsigned i = 0; i < s->nattrs; i++) {
            const char *an = v.attrs[2 * i], *av = v.attrs[2 * i + 1];
            const xml_span *sn = &s->attrs[i].name;
            FUZZ_CHECK(sn->n == strlen(an) && !memcmp(sn->p, an, sn->n), "attribute %u: name differs (expat '%s')",
                       i, an);
            buf val = BUF_INIT;
            FUZZ_CHECK(xml_scan_unescape(s->attrs[i].value, &val) == 0, "attribute %s: value does not unescape", an);
            FUZZ_CHECK(val.len == strlen(av) && (!val.len || !memcmp(val.data, av, val.len)),
                       "attribute %s: value differs: expat '%s'", an, av);
            buf_free(&val);
        }
        xml_span ns = xml_scan_attr_value(s, "xmlns");
        FUZZ_CHECK(ns.p == s->ns.p && ns.n == s->ns.n, "ns is not the (first) xmlns attribute");
    }
    free(v.name);
    if (v.attrs)
        for (size_t i = 0; v.attrs[i]; i++) free(v.attrs[i]);
    free(v.attrs);
    XML_ParserFree(xp);
    free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024) return 0;
    /* A copy of exactly the input's size, so ASan sees any read beyond it. */
    char *p = malloc(size ? size : 1);
    if (!p) abort();
    memcpy(p, data, size);
    size_t off = 0;
    for (int elements = 0; elements < 8 && off < size; elements++) {
        xml_scanned s;
        xml_scan_result rv = xml_scan_element(p + off, size - off, 0, &s);
        if (rv != XML_SCAN_DONE) break;
        FUZZ_CHECK(s.len > 0 && s.len <= size - off, "length %zu out of range", s.len);
        FUZZ_CHECK(s.start_len <= s.content_end && s.content_end <= s.len, "offsets out of order");
        /* Every prefix of the element is incomplete (checked for small elements). */
        if (s.len <= 512)
            for (size_t k = 0; k < s.len; k++) {
                char *t = malloc(k ? k : 1);
                if (!t) abort();
                memcpy(t, p + off, k);
                xml_scanned ts;
                xml_scan_result tr = xml_scan_element(t, k, 0, &ts);
                FUZZ_CHECK(tr == XML_SCAN_INCOMPLETE, "the first %zu of %zu bytes scan as %d, not incomplete", k, s.len,
                           (int)tr);
                free(t);
            }
        /* The start tag alone reads the same. */
        xml_scanned st;
        FUZZ_CHECK(xml_scan_start_tag(p + off, s.len, &st) == XML_SCAN_DONE, "the start tag alone does not scan");
        FUZZ_CHECK(st.start_len == s.start_len && st.nattrs == s.nattrs && st.dup_attr == s.dup_attr &&
                       st.name.n == s.name.n && st.ns.p == s.ns.p && (s.prefixed || !st.prefixed),
                   "the start tag alone reads differently");
        check_against_expat(p + off, &s);
        off += s.len;
    }
    free(p);
    return 0;
}
