/* Delimiting one top-level element in a byte buffer without parsing it.
 *
 * For links between Switchboard's own processes, whose bytes xml_write
 * wrote: a process that only needs an element's outer start tag (a route
 * envelope's addresses, a stanza's name and namespace) and its bytes can
 * skip expat and tree building. The scanner finds where the element ends
 * (matching end tags, quotes, depth limit) and reads the outer start tag's
 * name and attributes. It answers "not sure" (XML_SCAN_UNSURE) for
 * anything outside the plain subset it knows; the caller then hands the
 * bytes to a real parser, which says what is wrong with them, if anything.
 *
 * What it does check: tags nest and end tags match, attributes are
 * name='value' or name="value" separated by white space, no '<' in an
 * attribute value, every '&' starts a predefined entity or a character
 * reference to an XML character; no comments, CDATA sections, processing
 * instructions or DOCTYPE. What it does not: that names are made of name
 * characters, that the text is valid UTF-8 of XML characters, duplicate
 * attributes below the outer tag, namespace prefixes being declared (it
 * reports that a prefixed name occurs, see 'prefixed'). So when expat
 * accepts the same bytes, it agrees on the element's end and the outer
 * tag's attributes (fuzz/fuzz_xml_scan.c checks that). */
#ifndef SB_XML_SCAN_H
#define SB_XML_SCAN_H
#include <stddef.h>
#include <string.h>

#include "common/buf.h"

#define XML_SCAN_MAX_ATTRS 32
#define XML_SCAN_DEFAULT_DEPTH 64

typedef struct xml_span {
    const char *p;   /* NULL: absent */
    size_t n;
} xml_span;

typedef struct xml_scan_attr {
    xml_span name;   /* as written, prefix included */
    xml_span value;  /* between the quotes, still escaped (see xml_scan_unescape) */
} xml_scan_attr;

/* One complete element. Offsets are from its '<'. */
typedef struct xml_scanned {
    size_t len;          /* through its last '>' */
    size_t start_len;    /* the outer start tag, through its '>' */
    size_t content_end;  /* where its end tag starts (start_len == len for <x/>) */
    xml_span name;       /* outer element name as written */
    xml_span ns;         /* the outer tag's xmlns value (escaped), p NULL if none */
    xml_scan_attr attrs[XML_SCAN_MAX_ATTRS];   /* the outer tag's, in order, xmlns included */
    unsigned nattrs;
    unsigned nchildren;          /* elements directly inside */
    size_t child_start, child_end;   /* the first of them: its '<', and after its last '>' */
    unsigned attrs_dropped : 1;  /* more than XML_SCAN_MAX_ATTRS: the rest are not in attrs */
    unsigned dup_attr : 1;       /* the outer tag names an attribute twice (expat refuses it) */
    unsigned prefixed : 1;       /* a name with a prefix other than xml: occurs (xmlns:p declarations too) */
} xml_scanned;

typedef enum {
    XML_SCAN_UNSURE = -1,     /* not in the subset: parse it */
    XML_SCAN_INCOMPLETE = 0,  /* more bytes needed */
    XML_SCAN_DONE = 1,        /* *out describes the element p[0..out->len) */
} xml_scan_result;

/* Scan the element at p[0..n); p[0] must be '<' (anything else is UNSURE).
 * max_depth: nesting allowed, the outer element counting 1 (0: the default). */
xml_scan_result xml_scan_element(const char *p, size_t n, unsigned max_depth, xml_scanned *out);

/* Only the start tag at p[0..n): name, attributes, start_len, flags of its
 * own names; len and content_end are set (to start_len) for an empty-element
 * tag only. For the first child of an element xml_scan_element delimited. */
xml_scan_result xml_scan_start_tag(const char *p, size_t n, xml_scanned *out);

/* The value of the outer tag's attribute 'name' (exact, prefix included),
 * or a span with p NULL. */
xml_span xml_scan_attr_value(const xml_scanned *s, const char *name);

static inline int xml_span_is(xml_span s, const char *lit)
{
    size_t n = strlen(lit);   /* a literal: folded by the compiler */
    return s.p && s.n == n && memcmp(s.p, lit, n) == 0;
}

/* An attribute value as a parser reports it: references replaced, line
 * ends and tabs turned into spaces. Appends to out; -1 on a reference the
 * scanner would not have accepted. */
int xml_scan_unescape(xml_span v, buf *out);

/* Copy a value without references into out[0..outlen) with a NUL: -1 if it
 * is absent, empty, too long or contains '&'. */
int xml_span_plain(xml_span v, char *out, size_t outlen);

#endif
