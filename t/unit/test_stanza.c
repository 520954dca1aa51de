/* The stanza model, the serializer and stanza errors. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/stanza.h"
#include "common/stanza_error.h"
#include "common/xml_stream.h"
#include "common/xml_write.h"
#include "t/unit/tap.h"

/* ---- helpers ---- */

static stanza *parse_doc(const char *xml)
{
    xml_err err;
    char text[256];
    stanza *st = xml_parse_document(xml, strlen(xml), NULL, &err, text, sizeof text);
    if (!st) printf("# parse failed: %s\n", text);
    return st;
}

typedef struct collected {
    stanza *st[16];
    size_t n;
} collected;

static xs_action collect(void *ud, stanza *st)
{
    collected *c = ud;
    if (c->n < 16) c->st[c->n++] = st;
    else stanza_free(st);
    return XS_CONTINUE;
}

static xs_action drop_header(void *ud, stanza *h)
{
    (void)ud;
    stanza_free(h);
    return XS_CONTINUE;
}

/* The top-level elements of a client stream whose body is `elements`. */
static void parse_client(const char *elements, collected *c)
{
    static const xml_stream_handler h = {drop_header, collect, NULL};
    memset(c, 0, sizeof *c);
    xml_stream *xs = xml_stream_new(NULL, &h, c);
    const char *hdr = "<stream:stream xmlns='jabber:client' "
                      "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>";
    size_t used;
    xml_err e = xml_stream_feed(xs, hdr, strlen(hdr), &used);
    if (e == XML_OK) e = xml_stream_feed(xs, elements, strlen(elements), &used);
    if (e != XML_OK) printf("# stream parse failed: %s\n", xml_stream_error_text(xs));
    xml_stream_free(xs);
}

static void collected_free(collected *c)
{
    for (size_t i = 0; i < c->n; i++) stanza_free(c->st[i]);
    c->n = 0;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* Same element tree: names, namespaces, attributes (by namespace and name),
 * text. Prefixes are compared when compare_prefix is set. Appends a
 * description of the first difference to why. */
static int same_tree(const xnode *a, const xnode *b, int compare_prefix, buf *why)
{
    if (a->type != b->type) {
        buf_append_str(why, "node type");
        return 0;
    }
    if (a->type == XNODE_TEXT) {
        if (a->text_len != b->text_len || memcmp(a->text, b->text, a->text_len) != 0) {
            buf_printf(why, "text '%s' vs '%s'", a->text, b->text);
            return 0;
        }
        return 1;
    }
    if (strcmp(a->name, b->name) || strcmp(a->ns, b->ns)) {
        buf_printf(why, "element {%s}%s vs {%s}%s", a->ns, a->name, b->ns, b->name);
        return 0;
    }
    if (compare_prefix && strcmp(str_or_empty(a->prefix), str_or_empty(b->prefix))) {
        buf_printf(why, "prefix of %s: '%s' vs '%s'", a->name, str_or_empty(a->prefix),
                   str_or_empty(b->prefix));
        return 0;
    }
    size_t na = 0, nb = 0;
    for (const xattr *x = a->attrs; x; x = x->next, na++) {
        const char *v = xnode_attr_ns(b, x->ns, x->name);
        if (!v || strcmp(v, x->value)) {
            buf_printf(why, "attribute {%s}%s on %s", x->ns, x->name, a->name);
            return 0;
        }
    }
    for (const xattr *x = b->attrs; x; x = x->next) nb++;
    if (na != nb) {
        buf_printf(why, "attribute count on %s", a->name);
        return 0;
    }
    const xnode *ca = a->children, *cb = b->children;
    for (; ca && cb; ca = ca->next, cb = cb->next)
        if (!same_tree(ca, cb, compare_prefix, why)) return 0;
    if (ca || cb) {
        buf_printf(why, "children of %s", a->name);
        return 0;
    }
    return 1;
}

/* Serialize in context_ns, wrap in a stream with that default namespace,
 * parse again and compare. */
__attribute__((format(printf, 4, 5)))
static void round_trip(const xnode *el, const char *context_ns, int compare_prefix, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char *s = xml_to_string(el, context_ns);
    buf doc = BUF_INIT;
    if (*context_ns) {
        buf_append_str(&doc, "<wrap xmlns='");
        xml_escape_attr(&doc, context_ns, strlen(context_ns));
        buf_append_str(&doc, "'>");
    } else {
        buf_append_str(&doc, "<wrap>");
    }
    buf_append_str(&doc, s);
    buf_append_str(&doc, "</wrap>");
    stanza *again = parse_doc(buf_cstr(&doc));
    buf why = BUF_INIT;
    int same = again && again->root->children && !again->root->children->next &&
               same_tree(el, again->root->children, compare_prefix, &why);
    ok(same, "round trip: %s", what);
    if (!same) printf("#   serialized: %s\n#   difference: %s\n", s, buf_cstr(&why));
    stanza_free(again);
    buf_free(&why);
    buf_free(&doc);
    free(s);
}

/* ---- building and querying ---- */

static void test_build_and_query(void)
{
    stanza *st = stanza_new("message", NS_CLIENT);
    xnode *m = st->root;
    is_str(m->name, "message", "root name");
    is_str(m->ns, NS_CLIENT, "root ns");
    ok(m->doc == st && m->parent == NULL, "root belongs to the stanza");
    ok(st->raw == NULL, "built stanza has no raw bytes");

    xnode_set_attr(m, "to", "juliet@example.com");
    xnode_set_attr(m, "type", "chat");
    xnode_set_attr(m, "type", "normal");
    is_str(xnode_attr(m, "type"), "normal", "attribute replaced");
    xnode_set_attr(m, "to", NULL);
    ok(xnode_attr(m, "to") == NULL, "attribute removed");
    ok(xnode_attr(m, "absent") == NULL, "missing attribute is NULL");
    xnode_set_attr(m, "nothing", NULL);
    ok(xnode_attr(m, "nothing") == NULL, "removing a missing attribute is harmless");
    xnode_set_attr_ns(m, NS_XML, "xml", "lang", "en");
    is_str(xnode_attr_ns(m, NS_XML, "lang"), "en", "namespaced attribute");
    ok(xnode_attr(m, "lang") == NULL, "namespaced attribute is not the unqualified one");
    xnode_set_attr(m, "lang", "x");
    is_str(xnode_attr(m, "lang"), "x", "unqualified attribute with the same local name");
    is_str(xnode_attr_ns(m, NS_XML, "lang"), "en", "namespaced one unchanged");

    xnode *body = xnode_add_text_child(m, "body", NULL, "Hello");
    is_str(body->ns, NS_CLIENT, "NULL ns inherits the parent's");
    xnode *x = xnode_add_child(m, "x", "jabber:x:data");
    xnode_add_text_child(m, "thread", NULL, "t1");
    xnode_add_text_child(m, "body", NULL, "second");
    is_str(x->ns, "jabber:x:data", "explicit ns");
    ok(xnode_is(x, "x", "jabber:x:data"), "xnode_is name and ns");
    ok(xnode_is(x, NULL, "jabber:x:data") && xnode_is(x, "x", NULL), "xnode_is with NULL");
    ok(!xnode_is(x, "x", NS_CLIENT), "xnode_is wrong ns");
    ok(xnode_child(m, "body", NS_CLIENT) == body, "xnode_child");
    ok(xnode_child(m, "x", NS_CLIENT) == NULL, "xnode_child respects ns");
    xnode *b2 = xnode_next(body, "body", NULL);
    ok(b2 && b2 != body, "xnode_next finds the second body");
    is_str(xnode_text(b2), "second", "its text");
    ok(xnode_next(b2, "body", NULL) == NULL, "no third body");
    is_int(xnode_count_elements(m), 4, "four child elements");
    ok(xnode_first_element(m) == body, "first element");
    ok(xnode_next_element(body) == x, "next element");

    is_str(xnode_child_text(m, "thread", NULL), "t1", "child text");
    ok(xnode_child_text(m, "subject", NULL) == NULL, "child text of a missing child is NULL");
    is_str(xnode_child_text(m, "x", NULL), "", "child text of an empty child is empty");
    is_str(xnode_text(m), "", "no direct text");

    xnode_add_text(x, "ab", 2);
    xnode_add_child(x, "field", NULL);
    xnode_add_text(x, "cd", 2);
    is_str(xnode_text(x), "abcd", "direct text pieces concatenated");
    xnode_add_text(x, "ef", 2);
    is_str(xnode_text(x), "abcdef", "text recomputed after a change");
    is_int(xnode_count_elements(x), 1, "text nodes are not elements");
    ok(xnode_first_element(x) && xnode_first_element(x)->type == XNODE_ELEMENT,
       "first element skips text");

    xnode_remove(b2);
    is_int(xnode_count_elements(m), 3, "removed");
    ok(m->last_child->type == XNODE_ELEMENT && strcmp(m->last_child->name, "thread") == 0,
       "last_child updated after removing the last child");
    xnode_remove(body);
    ok(m->children == x && x->prev == NULL, "first child updated after removing the first");
    xnode_clear_children(x);
    ok(x->children == NULL && x->last_child == NULL, "children cleared");
    is_str(xnode_text(x), "", "cleared text");

    /* deep copy from another stanza */
    stanza *other = stanza_new("iq", NS_CLIENT);
    xnode *q = xnode_add_child(other->root, "query", "jabber:iq:roster");
    xnode *item = xnode_add_child(q, "item", NULL);
    xnode_set_attr(item, "jid", "a@b");
    xnode_add_text_child(item, "group", NULL, "Friends");
    xnode *cp = xnode_copy_into(m, q);
    stanza_free(other);   /* the copy must not depend on the source */
    ok(cp->doc == st && cp->parent == m, "copy belongs to the new parent");
    is_str(cp->ns, "jabber:iq:roster", "copied ns");
    is_str(xnode_attr(xnode_child(cp, "item", NULL), "jid"), "a@b", "copied attribute");
    is_str(xnode_child_text(xnode_child(cp, "item", NULL), "group", NULL), "Friends", "copied text");

    char *s = xml_to_string(m, NS_CLIENT);
    is_str(s,
           "<message type='normal' xml:lang='en' lang='x'><x xmlns='jabber:x:data'/><thread>t1</thread>"
           "<query xmlns='jabber:iq:roster'><item jid='a@b'><group>Friends</group></item></query></message>",
           "built stanza serialized");
    free(s);
    stanza_free(st);
}

/* ---- raw bytes and touch ---- */

static void test_touch_and_copy(void)
{
    collected c;
    parse_client("<message to='a@b' id='1'><body>hi &amp; bye</body><x xmlns='urn:x'><y/></x></message>", &c);
    ok(c.n == 1, "parsed one stanza");
    if (c.n != 1) return;
    stanza *st = c.st[0];
    ok(st->raw != NULL, "parsed stanza has raw bytes");

    /* copy keeps the raw bytes and offsets */
    stanza *cp = stanza_copy(st);
    ok(cp->raw && cp->raw != st->raw && strcmp(cp->raw, st->raw) == 0, "copy has its own raw bytes");
    xnode *cx = xnode_child(cp->root, "x", "urn:x");
    xnode *sx = xnode_child(st->root, "x", "urn:x");
    ok(cx && cx->raw_off == sx->raw_off && cx->raw_len == sx->raw_len, "copy keeps raw offsets");
    ok(cx && cx->flags == sx->flags, "copy keeps flags");
    xnode_set_attr(cp->root, "id", "2");
    is_str(xnode_attr(st->root, "id"), "1", "changing the copy leaves the original");
    ok(cp->raw == NULL && st->raw != NULL, "only the copy lost its raw bytes");
    stanza_free(cp);

    /* a node as a new stanza: its span becomes the raw bytes */
    stanza *sub = stanza_from_node(sx);
    is_str(sub->raw, "<x xmlns='urn:x'><y/></x>", "stanza_from_node raw bytes");
    is_int(sub->root->raw_off, 0, "new root offset rebased to 0");
    is_int(sub->root->raw_len, sub->raw_len, "new root spans the raw bytes");
    xnode *y = xnode_first_element(sub->root);
    is_int(y->raw_off, strlen("<x xmlns='urn:x'>"), "descendant offset rebased");
    ok(strncmp(sub->raw + y->raw_off, "<y/>", y->raw_len) == 0 && y->raw_len == 4, "descendant span");
    ok(sub->root->parent == NULL, "new root has no parent");
    stanza_free(sub);
    stanza *bodyst = stanza_from_node(xnode_child(st->root, "body", NULL));
    is_str(bodyst->raw, "<body>hi &amp; bye</body>", "body as a stanza keeps its escaped bytes");
    is_str(xnode_text(bodyst->root), "hi & bye", "and its text");
    stanza_free(bodyst);

    /* every change forgets the raw bytes */
    struct {
        const char *what;
        int step;
    } changes[] = {{"xnode_set_attr", 0},      {"xnode_set_attr_ns", 1}, {"xnode_add_child", 2},
                   {"xnode_add_text", 3},      {"xnode_add_text_child", 4}, {"xnode_remove", 5},
                   {"xnode_clear_children", 6}, {"xnode_copy_into", 7},  {"stanza_touch", 8}};
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++) {
        stanza *t = stanza_copy(st);
        ok(t->raw != NULL, "copy for %s has raw", changes[i].what);
        xnode *r = t->root, *deep = xnode_first_element(xnode_child(r, "x", NULL));
        switch (changes[i].step) {
        case 0: xnode_set_attr(deep, "a", "b"); break;
        case 1: xnode_set_attr_ns(deep, NS_XML, "xml", "lang", "de"); break;
        case 2: xnode_add_child(deep, "z", NULL); break;
        case 3: xnode_add_text(deep, "t", 1); break;
        case 4: xnode_add_text_child(r, "subject", NULL, "s"); break;
        case 5: xnode_remove(deep); break;
        case 6: xnode_clear_children(r); break;
        case 7: xnode_copy_into(deep, st->root); break;
        case 8: stanza_touch(t); break;
        }
        ok(t->raw == NULL && t->raw_len == 0, "%s clears raw", changes[i].what);
        buf out = BUF_INIT;
        xml_write(&out, t->root, NS_CLIENT);
        ok(strcmp(buf_cstr(&out), st->raw) != 0 || changes[i].step == 8,
           "%s: xml_write writes the changed tree", changes[i].what);
        buf_free(&out);
        stanza_free(t);
    }
    collected_free(&c);
}

/* ---- serializer ---- */

static void test_escaping(void)
{
    buf b = BUF_INIT;
    xml_escape_text(&b, "a<b>&c'd\"e\tf\ng", 15);
    is_str(buf_cstr(&b), "a&lt;b&gt;&amp;c'd\"e\tf\ng", "text escaping");
    buf_reset(&b);
    xml_escape_attr(&b, "a<b>&c'd\"e\tf\ng\rh", 17);
    is_str(buf_cstr(&b), "a&lt;b&gt;&amp;c&apos;d&quot;e&#9;f&#10;g&#13;h", "attribute escaping");
    buf_reset(&b);
    xml_escape_text(&b, "x\0y", 3);
    is_int(b.len, 3, "escaping is length-based");
    buf_free(&b);

    stanza *st = stanza_new("message", NS_CLIENT);
    xnode_set_attr(st->root, "id", "it's \"quoted\" <&>\t\n\r end");
    xnode_add_text_child(st->root, "body", NULL, "1 < 2 && 3 > 2 ]]> \r\n done");
    char *s = xml_to_string(st->root, NS_CLIENT);
    is_str(s,
           "<message id='it&apos;s &quot;quoted&quot; &lt;&amp;&gt;&#9;&#10;&#13; end'>"
           "<body>1 &lt; 2 &amp;&amp; 3 &gt; 2 ]]&gt; &#13;\n done</body></message>",
           "serialized with escapes and single quotes");
    free(s);
    round_trip(st->root, NS_CLIENT, 1, "escaped attribute (tab, CR, LF) and text survive");
    stanza_free(st);

    st = stanza_new("presence", NS_CLIENT);
    s = xml_to_string(st->root, NS_CLIENT);
    is_str(s, "<presence/>", "empty element as <x/>");
    free(s);
    s = xml_to_string(st->root, NULL);
    is_str(s, "<presence xmlns='jabber:client'/>", "xmlns written when the context has none");
    free(s);
    s = xml_to_string(st->root, NS_SERVER);
    is_str(s, "<presence xmlns='jabber:client'/>", "xmlns written when the context differs");
    free(s);
    stanza_free(st);
}

static void test_namespaces(void)
{
    /* a built tree with default namespace changes, the empty namespace and
     * prefixed attributes */
    stanza *st = stanza_new("iq", NS_CLIENT);
    xnode *q = xnode_add_child(st->root, "query", "jabber:iq:private");
    xnode *inner = xnode_add_child(q, "storage", "storage:bookmarks");
    xnode *none = xnode_add_child(inner, "plain", "");
    xnode_add_child(none, "deeper", NULL);
    xnode_add_child(inner, "back", "storage:bookmarks");
    xnode_set_attr_ns(inner, "urn:attr", NULL, "flag", "1");
    xnode_set_attr_ns(inner, "urn:attr2", NULL, "flag", "2");
    xnode_set_attr_ns(q, NS_XML, "xml", "lang", "de");
    char *s = xml_to_string(st->root, NS_CLIENT);
    is_str(s,
           "<iq><query xmlns='jabber:iq:private' xml:lang='de'><storage xmlns='storage:bookmarks' "
           "xmlns:ns1='urn:attr' ns1:flag='1' xmlns:ns2='urn:attr2' ns2:flag='2'>"
           "<plain xmlns=''><deeper/></plain><back/></storage></query></iq>",
           "default namespace changes, xmlns='' and generated prefixes");
    free(s);
    round_trip(st->root, NS_CLIENT, 0, "built tree with namespace changes");
    round_trip(st->root, "", 0, "same tree in an empty context");
    round_trip(st->root, NS_SERVER, 0, "same tree in jabber:server context");

    /* prefixed element with a prefixed attribute using the same prefix */
    stanza *p = stanza_new("result", "jabber:server:dialback");
    p->root->prefix = stanza_strdup(p, "db");
    xnode_set_attr_ns(p->root, "jabber:server:dialback", "db", "extra", "v");
    xnode_set_attr(p->root, "from", "a.example");
    xnode_add_text(p->root, "key", 3);
    s = xml_to_string(p->root, NS_SERVER);
    is_str(s, "<db:result xmlns:db='jabber:server:dialback' db:extra='v' from='a.example'>key</db:result>",
           "prefix declared once for element and attribute");
    free(s);
    round_trip(p->root, NS_SERVER, 1, "prefixed element and attribute");
    /* a child that reuses the prefix does not redeclare it */
    xnode *ch = xnode_add_child(p->root, "child", NULL);
    ch->prefix = stanza_strdup(p, "db");
    s = xml_to_string(p->root, NS_SERVER);
    ok(strstr(s, "<db:child/>") != NULL, "bound prefix not redeclared: %s", s);
    free(s);
    /* an attribute whose prefix is bound to another URI gets another prefix */
    xnode_set_attr_ns(ch, "urn:other", "db", "clash", "c");
    s = xml_to_string(p->root, NS_SERVER);
    ok(strstr(s, "<db:child xmlns:ns1='urn:other' ns1:clash='c'/>") != NULL, "prefix clash resolved: %s", s);
    free(s);
    round_trip(p->root, NS_SERVER, 0, "prefix clash");
    stanza_free(p);
    stanza_free(st);

    /* parse -> serialize -> parse of a stream with prefixes and ns changes */
    collected c;
    parse_client(
        "<message xml:lang='en' to='a@b'><body>x</body>"
        "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'>"
        "<item><entry xmlns='http://www.w3.org/2005/Atom'><title>T</title></entry></item></items></event>"
        "<p:x xmlns:p='urn:p' p:a='1' b='2'><p:y><z xmlns='' p:c='3'/></p:y></p:x>"
        "<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>"
        "<p style='a'>hi <b>there</b>!</p></body></html></message>"
        "<db:result from='x' to='y'>k</db:result>"
        "<iq type='get' xmlns=''><q xmlns:db='urn:shadow'><db:n/></q></iq>",
        &c);
    ok(c.n == 3, "three stanzas to round-trip");
    for (size_t i = 0; i < c.n; i++) {
        round_trip(c.st[i]->root, NS_CLIENT, 1, "parsed stanza %zu (prefixes kept)", i);
        round_trip(c.st[i]->root, "", 1, "parsed stanza %zu in an empty context", i);
        stanza_touch(c.st[i]);
        round_trip(c.st[i]->root, NS_SERVER, 1, "parsed stanza %zu in jabber:server context", i);
    }
    if (c.n == 3) {
        char *d = xml_to_string(c.st[1]->root, NS_SERVER);
        is_str(d, "<db:result xmlns:db='jabber:server:dialback' from='x' to='y'>k</db:result>",
               "outer prefix declared on the element written alone");
        free(d);
        d = xml_to_string(c.st[2]->root, NS_CLIENT);
        is_str(d, "<iq xmlns='' type='get'><q><db:n xmlns:db='urn:shadow'/></q></iq>",
               "empty namespace in a client context; shadowed prefix declared where used");
        free(d);
    }
    collected_free(&c);
}

static void test_xml_write(void)
{
    collected c;
    parse_client("<message to='a@b'><body>caf\xc3\xa9  &amp;  <![CDATA[x]]></body></message>"
                 "<iq xmlns='jabber:client' type='get'/>"
                 "<db:result from='a'>k</db:result>"
                 "<message><body db:x='1'>y</body></message>"
                 "<r xmlns='urn:r'><q/></r>",
                 &c);
    ok(c.n == 5, "five stanzas");
    if (c.n != 5) {
        collected_free(&c);
        return;
    }
    buf out = BUF_INIT;
    xml_write(&out, c.st[0]->root, NS_CLIENT);
    is_str(buf_cstr(&out), c.st[0]->raw, "unchanged stanza in the same namespace: raw bytes as they came");
    ok(strstr(buf_cstr(&out), "<![CDATA[x]]>") != NULL, "the original bytes (CDATA kept)");

    buf_reset(&out);
    xml_write(&out, c.st[0]->root, NS_SERVER);
    is_str(buf_cstr(&out),
           "<message xmlns='jabber:client' to='a@b'><body>caf\xc3\xa9  &amp;  <![CDATA[x]]></body></message>",
           "missing default namespace inserted after the name");

    buf_reset(&out);
    xml_write(&out, c.st[1]->root, NS_SERVER);
    is_str(buf_cstr(&out), "<iq xmlns='jabber:client' type='get'/>",
           "element that declares its namespace: raw bytes in any context");

    buf_reset(&out);
    xml_write(&out, c.st[2]->root, NS_CLIENT);
    is_str(buf_cstr(&out), "<db:result xmlns:db='jabber:server:dialback' from='a'>k</db:result>",
           "prefix declared outside: re-serialized with its declaration");

    buf_reset(&out);
    xml_write(&out, c.st[3]->root, NS_CLIENT);
    is_str(buf_cstr(&out), "<message><body xmlns:db='jabber:server:dialback' db:x='1'>y</body></message>",
           "attribute prefix from outside: re-serialized");

    /* a nested node of an unchanged stanza */
    buf_reset(&out);
    xml_write(&out, xnode_first_element(c.st[4]->root), "urn:r");
    is_str(buf_cstr(&out), "<q/>", "nested node raw bytes");
    buf_reset(&out);
    xml_write(&out, xnode_first_element(c.st[4]->root), NS_CLIENT);
    is_str(buf_cstr(&out), "<q xmlns='urn:r'/>", "nested node in another context gets xmlns");

    /* after a change the tree is serialized */
    xnode_set_attr(c.st[0]->root, "from", "c@d");
    buf_reset(&out);
    xml_write(&out, c.st[0]->root, NS_CLIENT);
    is_str(buf_cstr(&out), "<message to='a@b' from='c@d'><body>caf\xc3\xa9  &amp;  x</body></message>",
           "changed stanza is serialized");

    /* a stanza taken out of its stream with stanza_from_node keeps forwarding raw */
    stanza *sub = stanza_from_node(xnode_first_element(c.st[4]->root));
    buf_reset(&out);
    xml_write(&out, sub->root, "urn:r");
    is_str(buf_cstr(&out), "<q/>", "stanza_from_node raw written");
    stanza_free(sub);
    buf_free(&out);
    collected_free(&c);
}

/* ---- stanza errors ---- */

static void test_errors(void)
{
    const stanza_error_info *i = stanza_error_lookup("service-unavailable");
    ok(i && strcmp(i->type, "cancel") == 0 && i->code == 503, "service-unavailable cancel 503");
    i = stanza_error_lookup("item-not-found");
    ok(i && strcmp(i->type, "cancel") == 0 && i->code == 404, "item-not-found cancel 404");
    i = stanza_error_lookup("not-authorized");
    ok(i && strcmp(i->type, "auth") == 0 && i->code == 401, "not-authorized auth 401");
    i = stanza_error_lookup("bad-request");
    ok(i && strcmp(i->type, "modify") == 0 && i->code == 400, "bad-request modify 400");
    i = stanza_error_lookup("remote-server-timeout");
    ok(i && strcmp(i->type, "wait") == 0 && i->code == 504, "remote-server-timeout wait 504");
    i = stanza_error_lookup("policy-violation");
    ok(i && i->code > 0, "policy-violation has a legacy code");
    static const char *all[] = {
        "bad-request", "conflict", "feature-not-implemented", "forbidden", "gone",
        "internal-server-error", "item-not-found", "jid-malformed", "not-acceptable", "not-allowed",
        "not-authorized", "policy-violation", "recipient-unavailable", "redirect",
        "registration-required", "remote-server-not-found", "remote-server-timeout",
        "resource-constraint", "service-unavailable", "subscription-required", "undefined-condition",
        "unexpected-request"};
    size_t known = 0;
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) known += stanza_error_lookup(all[k]) != NULL;
    is_int(known, 22, "all 22 RFC 6120 conditions known");
    ok(stanza_error_lookup("no-such-thing") == NULL, "unknown condition");
    ok(stanza_error_lookup(NULL) == NULL, "NULL condition");

    /* a message */
    collected c;
    parse_client("<message from='a@b/r' to='c@d' type='chat' id='m1'><body>hi</body></message>"
                 "<iq from='a@b/r' to='d' type='get' id='q1'><query xmlns='jabber:iq:version'/></iq>"
                 "<message from='x' to='y' type='error'><error type='cancel'/></message>"
                 "<iq from='x' to='y' type='result' id='r'/>"
                 "<presence from='x' to='y'/>",
                 &c);
    ok(c.n == 5, "five stanzas");
    if (c.n != 5) {
        collected_free(&c);
        return;
    }
    stanza *m = c.st[0];
    is_int(stanza_make_error(m, "service-unavailable", NULL), 0, "message error made");
    ok(m->raw == NULL, "raw bytes forgotten");
    is_str(xnode_attr(m->root, "to"), "a@b/r", "to is the old from");
    is_str(xnode_attr(m->root, "from"), "c@d", "from is the old to");
    is_str(xnode_attr(m->root, "type"), "error", "type error");
    is_str(xnode_attr(m->root, "id"), "m1", "id kept");
    is_str(xnode_child_text(m->root, "body", NULL), "hi", "original children kept");
    xnode *err = xnode_child(m->root, "error", NS_CLIENT);
    ok(err != NULL, "error element in the stanza's namespace");
    is_str(xnode_attr(err, "type"), "cancel", "error type");
    is_str(xnode_attr(err, "code"), "503", "legacy code");
    ok(xnode_child(err, "service-unavailable", NS_XMPP_STANZAS) != NULL, "condition element");
    ok(xnode_child(err, "text", NULL) == NULL, "no text when none given");
    char *s = xml_to_string(m->root, NS_CLIENT);
    ok(strstr(s, "<error type='cancel' code='503'><service-unavailable "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>") != NULL,
       "serialized error: %s", s);
    free(s);
    is_int(stanza_make_error(m, "service-unavailable", NULL), -1, "an error is never answered with an error");

    /* an iq get with a text */
    stanza *q = c.st[1];
    is_int(stanza_make_error(q, "feature-not-implemented", "no <version> & such"), 0, "iq error made");
    err = xnode_child(q->root, "error", NULL);
    is_str(xnode_attr(err, "code"), "501", "iq error code attribute");
    is_str(xnode_attr(err, "type"), "cancel", "iq error type");
    is_str(xnode_attr(q->root, "to"), "a@b/r", "iq to swapped");
    is_str(xnode_attr(q->root, "id"), "q1", "iq id kept");
    is_str(xnode_child_text(err, "text", NS_XMPP_STANZAS), "no <version> & such", "text element");
    ok(xnode_child(q->root, "query", "jabber:iq:version") != NULL, "iq child kept");
    s = xml_to_string(q->root, NS_CLIENT);
    ok(strstr(s, "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no &lt;version&gt; &amp; such</text>") != NULL,
       "text serialized and escaped: %s", s);
    free(s);

    /* refusals */
    char *before = xml_to_string(c.st[2]->root, NS_CLIENT);
    ok(!stanza_error_allowed(c.st[2]->root), "type='error' not allowed");
    is_int(stanza_make_error(c.st[2], "bad-request", NULL), -1, "error stanza refused");
    ok(c.st[2]->raw != NULL, "refused stanza untouched (raw kept)");
    char *after = xml_to_string(c.st[2]->root, NS_CLIENT);
    is_str(after, before, "refused stanza unchanged");
    free(before);
    free(after);
    ok(!stanza_error_allowed(c.st[3]->root), "iq result not allowed");
    is_int(stanza_make_error(c.st[3], "bad-request", NULL), -1, "iq result refused");
    ok(stanza_error_allowed(c.st[4]->root), "presence allowed");

    /* an unknown condition becomes undefined-condition */
    is_int(stanza_make_error(c.st[4], "made-up", NULL), 0, "unknown condition accepted");
    err = xnode_child(c.st[4]->root, "error", NULL);
    ok(xnode_child(err, "undefined-condition", NS_XMPP_STANZAS) != NULL, "as undefined-condition");
    ok(xnode_attr(c.st[4]->root, "from") && strcmp(xnode_attr(c.st[4]->root, "from"), "y") == 0,
       "presence from swapped");
    collected_free(&c);

    /* built stanza without from */
    stanza *b = stanza_new("message", NS_SERVER);
    xnode_set_attr(b->root, "to", "x@y");
    is_int(stanza_make_error(b, "remote-server-not-found", NULL), 0, "error on a stanza without from");
    ok(xnode_attr(b->root, "to") == NULL, "no from: no to in the reply");
    is_str(xnode_attr(b->root, "from"), "x@y", "from is the old to");
    ok(xnode_child(b->root, "error", NS_SERVER) != NULL, "error in jabber:server");
    stanza_free(b);

    buf out = BUF_INIT;
    stream_error_write(&out, "not-well-formed", NULL);
    is_str(buf_cstr(&out),
           "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
           "stream error without text");
    buf_reset(&out);
    stream_error_write(&out, "policy-violation", "too <big> & bad");
    is_str(buf_cstr(&out),
           "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
           "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>too &lt;big&gt; &amp; bad</text></stream:error>",
           "stream error with escaped text");
    /* the bytes parse inside a stream */
    buf doc = BUF_INIT;
    buf_append_str(&doc, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>");
    buf_append(&doc, out.data, out.len);
    buf_append_str(&doc, "</stream:stream>");
    stanza *parsed = parse_doc(buf_cstr(&doc));
    ok(parsed && xnode_child(xnode_child(parsed->root, "error", NS_STREAMS), "policy-violation",
                             NS_XMPP_STREAMS),
       "stream error bytes are well-formed");
    is_str(parsed ? xnode_child_text(xnode_child(parsed->root, "error", NS_STREAMS), "text", NS_XMPP_STREAMS)
                  : NULL,
           "too <big> & bad", "stream error text round-trips");
    stanza_free(parsed);
    buf_free(&doc);
    buf_free(&out);
}

int main(void)
{
    test_build_and_query();
    test_touch_and_copy();
    test_escaping();
    test_namespaces();
    test_xml_write();
    test_errors();
    /* Found by fuzzing: an element in the XML namespace must come out as xml:NAME. */
    {
        xml_err e;
        char errtext[128];
        const char doc[] = "<message xmlns='jabber:client'><body>hi</body><xml:x/></message>";
        stanza *st = xml_parse_document(doc, sizeof doc - 1, NULL, &e, errtext, sizeof errtext);
        ok(st != NULL, "an element with the xml prefix parses");
        stanza_touch(st);
        char *out = xml_to_string(st->root, "jabber:client");
        ok(strstr(out, "<xml:x/>") != NULL, "it is written back with the xml prefix: %s", out);
        stanza *again = xml_parse_document(out, strlen(out), NULL, &e, errtext, sizeof errtext);
        ok(again != NULL, "and the output parses again");
        if (again) stanza_free(again);
        free(out);
        stanza_free(st);
        stanza *built = stanza_new("message", "jabber:client");
        xnode_add_child(built->root, "y", NS_XML);
        out = xml_to_string(built->root, "jabber:client");
        is_str(out, "<message><xml:y/></message>", "a built element in the XML namespace too");
        free(out);
        stanza_free(built);
    }
    return tap_done();
}
