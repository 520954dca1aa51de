/* The element scanner (xml_scan.h): a few loops over the bytes, memchr for
 * the '<' that starts the next tag. It was first written for the router's
 * fast path (router/envelope.c) and is shared with the component client. */
#include "common/xml_scan.h"

#include <string.h>

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

/* A name with a prefix other than xml: (a namespace declaration with a
 * prefix counts): its meaning depends on declarations the scanner does not
 * follow. */
static int prefixed(xml_span name)
{
    const char *colon = memchr(name.p, ':', name.n);
    if (!colon) return 0;
    return !(colon - name.p == 3 && memcmp(name.p, "xml", 3) == 0);
}

static int is_xml_char(unsigned long c)
{
    return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) || (c >= 0xE000 && c <= 0xFFFD) ||
           (c >= 0x10000 && c <= 0x10FFFF);
}

#define MAX_REF_LEN 16   /* "&#x" and leading zeros: longer ones are left to the parser */

/* The reference at p[k] == '&': its length through ';', 0 if the buffer
 * ends first, -1 if it is not one the scanner accepts. *cp: the character
 * it stands for. */
static long scan_ref(const char *p, size_t n, size_t k, unsigned long *cp)
{
    size_t end = k + 1;
    while (end < n && p[end] != ';' && end - k < MAX_REF_LEN) end++;
    if (end == n) return 0;
    if (p[end] != ';') return -1;
    const char *r = p + k + 1;
    size_t rn = end - k - 1;
    static const struct { const char *name; char ch; } predefined[] = {
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''},
    };
    for (size_t i = 0; i < sizeof predefined / sizeof predefined[0]; i++)
        if (rn == strlen(predefined[i].name) && memcmp(r, predefined[i].name, rn) == 0) {
            *cp = (unsigned char)predefined[i].ch;
            return (long)(rn + 2);
        }
    if (rn < 2 || r[0] != '#') return -1;
    unsigned long v = 0;
    if (r[1] == 'x') {
        if (rn < 3) return -1;
        for (size_t i = 2; i < rn; i++) {
            char c = r[i];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) return -1;
            v = v * 16 + (unsigned long)d;
            if (v > 0x10FFFF) return -1;
        }
    } else {
        for (size_t i = 1; i < rn; i++) {
            if (r[i] < '0' || r[i] > '9') return -1;
            v = v * 10 + (unsigned long)(r[i] - '0');
            if (v > 0x10FFFF) return -1;
        }
    }
    if (!is_xml_char(v)) return -1;
    *cp = v;
    return (long)(rn + 2);
}

/* The references in text p[from..to): XML_SCAN_DONE when all are good. */
static int check_text_refs(const char *p, size_t from, size_t to)
{
    const char *amp;
    while (from < to && (amp = memchr(p + from, '&', to - from))) {
        unsigned long cp;
        long r = scan_ref(p, to, (size_t)(amp - p), &cp);
        if (r <= 0) return XML_SCAN_UNSURE;   /* the text ends at a '<' here: not a reference */
        from = (size_t)(amp - p) + (size_t)r;
    }
    return XML_SCAN_DONE;
}

/* Character classes for the loops below (one table lookup per byte). */
enum {
    C_SPACE = 1,        /* white space */
    C_NAME_END = 2,     /* ends an element name: space > / < */
    C_ATTR_END = 4,     /* ends an attribute name: space = > / < */
    C_COLON = 8,
    C_STOP_APOS = 16,   /* stops a value in '...': ' < & */
    C_STOP_QUOT = 32,   /* stops a value in "...": " < & */
};
static const unsigned char cls[256] = {
    [' '] = C_SPACE | C_NAME_END | C_ATTR_END,
    ['\t'] = C_SPACE | C_NAME_END | C_ATTR_END,
    ['\r'] = C_SPACE | C_NAME_END | C_ATTR_END,
    ['\n'] = C_SPACE | C_NAME_END | C_ATTR_END,
    ['>'] = C_NAME_END | C_ATTR_END,
    ['/'] = C_NAME_END | C_ATTR_END,
    ['<'] = C_NAME_END | C_ATTR_END | C_STOP_APOS | C_STOP_QUOT,
    ['='] = C_ATTR_END,
    [':'] = C_COLON,
    ['&'] = C_STOP_APOS | C_STOP_QUOT,
    ['\''] = C_STOP_APOS,
    ['"'] = C_STOP_QUOT,
};
#define CLS(ch) cls[(unsigned char)(ch)]

/* A name up to the first byte of class end: its end, and whether it has a colon. */
static size_t scan_name(const char *p, size_t n, size_t k, unsigned end, int *colon)
{
    unsigned seen = 0;
    while (k < n && !(CLS(p[k]) & end)) seen |= CLS(p[k++]);
    *colon = (seen & C_COLON) != 0;
    return k;
}

/* One tag from p[*i] (just after its '<') through its '>'. On DONE *i is
 * after the '>', *empty says "/>" and *pre that a prefixed name occurs;
 * for the outer start tag (top != NULL) the name and attributes are
 * recorded. */
static int scan_start_tag(const char *p, size_t n, size_t *i, int *empty, int *pre, xml_scanned *top)
{
    size_t k = *i, name0 = k;
    int colon;
    k = scan_name(p, n, k, C_NAME_END, &colon);
    if (k == n) return XML_SCAN_INCOMPLETE;
    xml_span name = {p + name0, k - name0};
    if (name.n == 0 || p[k] == '<') return XML_SCAN_UNSURE;
    xml_scanned *s = top;
    if (colon && prefixed(name)) *pre = 1;
    for (;;) {
        size_t ws = k;
        while (k < n && (CLS(p[k]) & C_SPACE)) k++;
        if (k == n) return XML_SCAN_INCOMPLETE;
        if (p[k] == '>') { *empty = 0; k++; break; }
        if (p[k] == '/') {
            if (k + 1 == n) return XML_SCAN_INCOMPLETE;
            if (p[k + 1] != '>') return XML_SCAN_UNSURE;
            *empty = 1;
            k += 2;
            break;
        }
        if (k == ws) return XML_SCAN_UNSURE;   /* attributes are separated by white space */
        size_t a0 = k;
        k = scan_name(p, n, k, C_ATTR_END, &colon);
        xml_span an = {p + a0, k - a0};
        while (k < n && (CLS(p[k]) & C_SPACE)) k++;
        if (k == n) return XML_SCAN_INCOMPLETE;
        if (an.n == 0 || p[k] != '=') return XML_SCAN_UNSURE;
        k++;
        while (k < n && (CLS(p[k]) & C_SPACE)) k++;
        if (k == n) return XML_SCAN_INCOMPLETE;
        char q = p[k];
        if (q != '\'' && q != '"') return XML_SCAN_UNSURE;
        unsigned stop = q == '\'' ? C_STOP_APOS : C_STOP_QUOT;
        size_t v0 = ++k;
        for (;;) {
            while (k < n && !(CLS(p[k]) & stop)) k++;
            if (k == n) return XML_SCAN_INCOMPLETE;
            if (p[k] == q) break;
            if (p[k] == '<') return XML_SCAN_UNSURE;
            unsigned long cp;
            long r = scan_ref(p, n, k, &cp);
            if (r == 0) return XML_SCAN_INCOMPLETE;
            if (r < 0) return XML_SCAN_UNSURE;
            k += (size_t)r;
        }
        xml_span v = {p + v0, k - v0};
        k++;
        if (colon && prefixed(an)) *pre = 1;
        if (!s) continue;
        if (s->nattrs == XML_SCAN_MAX_ATTRS) {
            s->attrs_dropped = 1;
            continue;
        }
        for (unsigned j = 0; j < s->nattrs; j++)
            if (s->attrs[j].name.n == an.n && memcmp(s->attrs[j].name.p, an.p, an.n) == 0) s->dup_attr = 1;
        s->attrs[s->nattrs].name = an;
        s->attrs[s->nattrs].value = v;
        s->nattrs++;
        if (!s->ns.p && xml_span_is(an, "xmlns")) s->ns = v;   /* a second one is a duplicate */
    }
    if (top) {
        top->name = name;
        top->start_len = k;
    }
    *i = k;
    return XML_SCAN_DONE;
}

xml_scan_result xml_scan_element(const char *p, size_t n, unsigned max_depth, xml_scanned *out)
{
    memset(out, 0, sizeof *out);
    if (max_depth == 0) max_depth = XML_SCAN_DEFAULT_DEPTH;
    if (max_depth > 1024) max_depth = 1024;
    if (n == 0) return XML_SCAN_INCOMPLETE;
    if (p[0] != '<') return XML_SCAN_UNSURE;
    if (n < 2) return XML_SCAN_INCOMPLETE;
    if (p[1] == '/' || p[1] == '!' || p[1] == '?') return XML_SCAN_UNSURE;   /* end tag, comment, PI */
    int empty = 0, pre = 0;
    size_t i = 1;
    size_t open_off[1024];   /* where the open elements' names start: end tags must match them */
    int rv = scan_start_tag(p, n, &i, &empty, &pre, out);
    if (rv != XML_SCAN_DONE) {
        memset(out, 0, sizeof *out);
        return rv;
    }
    open_off[0] = 1;
    unsigned depth = empty ? 0 : 1;
    size_t content_end = i;
    while (depth > 0) {
        const char *lt = memchr(p + i, '<', n - i);
        if (!lt) return XML_SCAN_INCOMPLETE;
        rv = check_text_refs(p, i, (size_t)(lt - p));
        if (rv != XML_SCAN_DONE) return XML_SCAN_UNSURE;
        size_t at = (size_t)(lt - p);
        i = at + 1;
        if (i == n) return XML_SCAN_INCOMPLETE;
        if (p[i] == '!' || p[i] == '?') return XML_SCAN_UNSURE;   /* CDATA, comment, PI: the parser decides */
        if (p[i] == '/') {
            const char *gt = memchr(p + i, '>', n - i);
            if (!gt) return XML_SCAN_INCOMPLETE;
            xml_span name = {p + i + 1, (size_t)(gt - p) - i - 1};
            while (name.n && is_space(name.p[name.n - 1])) name.n--;
            /* the open element's name, re-read from its start tag */
            const char *o = p + open_off[depth - 1];
            size_t on = 0;
            while (!(CLS(o[on]) & C_NAME_END)) on++;
            if (name.n != on || memcmp(name.p, o, on) != 0) return XML_SCAN_UNSURE;
            content_end = at;
            i = (size_t)(gt - p) + 1;
            depth--;
            if (depth == 1 && out->nchildren == 1 && !out->child_end) out->child_end = i;
        } else {
            if (depth == max_depth) return XML_SCAN_UNSURE;
            rv = scan_start_tag(p, n, &i, &empty, &pre, NULL);
            if (rv != XML_SCAN_DONE) return rv;
            open_off[depth] = at + 1;
            if (depth == 1 && ++out->nchildren == 1) {
                out->child_start = at;
                if (empty) out->child_end = i;
            }
            if (!empty) depth++;
        }
    }
    out->len = i;
    out->prefixed = pre != 0;
    out->content_end = out->start_len == i ? i : content_end;
    return XML_SCAN_DONE;
}

xml_scan_result xml_scan_start_tag(const char *p, size_t n, xml_scanned *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0) return XML_SCAN_INCOMPLETE;
    if (p[0] != '<') return XML_SCAN_UNSURE;
    if (n < 2) return XML_SCAN_INCOMPLETE;
    if (p[1] == '/' || p[1] == '!' || p[1] == '?') return XML_SCAN_UNSURE;
    int empty = 0, pre = 0;
    size_t i = 1;
    int rv = scan_start_tag(p, n, &i, &empty, &pre, out);
    if (rv != XML_SCAN_DONE) {
        memset(out, 0, sizeof *out);
        return rv;
    }
    out->prefixed = pre != 0;
    out->len = out->content_end = empty ? i : 0;
    return XML_SCAN_DONE;
}

xml_span xml_scan_attr_value(const xml_scanned *s, const char *name)
{
    for (unsigned j = 0; j < s->nattrs; j++)
        if (xml_span_is(s->attrs[j].name, name)) return s->attrs[j].value;
    xml_span none = {NULL, 0};
    return none;
}

static void append_utf8(buf *out, unsigned long c)
{
    char b[4];
    size_t n;
    if (c < 0x80) { b[0] = (char)c; n = 1; }
    else if (c < 0x800) { b[0] = (char)(0xC0 | (c >> 6)); b[1] = (char)(0x80 | (c & 0x3F)); n = 2; }
    else if (c < 0x10000) {
        b[0] = (char)(0xE0 | (c >> 12)); b[1] = (char)(0x80 | ((c >> 6) & 0x3F)); b[2] = (char)(0x80 | (c & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (c >> 18)); b[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((c >> 6) & 0x3F)); b[3] = (char)(0x80 | (c & 0x3F));
        n = 4;
    }
    buf_append(out, b, n);
}

int xml_scan_unescape(xml_span v, buf *out)
{
    for (size_t k = 0; k < v.n;) {
        char ch = v.p[k];
        if (ch == '&') {
            unsigned long cp;
            long r = scan_ref(v.p, v.n, k, &cp);
            if (r <= 0) return -1;
            append_utf8(out, cp);
            k += (size_t)r;
        } else if (ch == '\r') {
            /* a line end (\r\n or \r) is one \n first, and that a space */
            buf_append(out, " ", 1);
            k += k + 1 < v.n && v.p[k + 1] == '\n' ? 2 : 1;
        } else if (ch == '\n' || ch == '\t') {
            buf_append(out, " ", 1);
            k++;
        } else {
            size_t run = k;
            while (run < v.n && v.p[run] != '&' && v.p[run] != '\r' && v.p[run] != '\n' && v.p[run] != '\t') run++;
            buf_append(out, v.p + k, run - k);
            k = run;
        }
    }
    return 0;
}

int xml_span_plain(xml_span v, char *out, size_t outlen)
{
    if (!v.p || v.n == 0 || v.n >= outlen || memchr(v.p, '&', v.n)) return -1;
    memcpy(out, v.p, v.n);
    out[v.n] = '\0';
    return 0;
}
