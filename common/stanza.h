/* The stanza model: an element tree that lives in one arena.
 *
 * A `stanza` owns an arena and a root element. Elements and text nodes are
 * `xnode`s; names, namespaces and values are strings in the arena. Nodes
 * that came from the parser remember where their bytes were in the input
 * (`raw_off`/`raw_len` into stanza->raw), so that a process that only
 * forwards an element can write the original bytes instead of
 * re-serializing (see xml_write.h). Any change to a stanza clears
 * stanza->raw, so stale bytes are never written. */
#ifndef SB_STANZA_H
#define SB_STANZA_H
#include <stddef.h>
#include <stdint.h>
#include "common/arena.h"

#define NS_XML "http://www.w3.org/XML/1998/namespace"
#define NS_STREAMS "http://etherx.jabber.org/streams"
#define NS_CLIENT "jabber:client"
#define NS_SERVER "jabber:server"
#define NS_COMPONENT "jabber:component:accept"
#define NS_XMPP_STREAMS "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_XMPP_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_XMPP_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_XMPP_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_XMPP_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_XMPP_SESSION "urn:ietf:params:xml:ns:xmpp-session"
/* The project's own router extension (docs/router-protocol.md). */
#define NS_SB_ROUTER "urn:switchboard:router"

typedef enum { XNODE_ELEMENT = 0, XNODE_TEXT = 1 } xnode_type;

typedef struct stanza stanza;

typedef struct xattr {
    const char *name;       /* local name */
    const char *ns;         /* namespace URI; "" for an unprefixed attribute */
    const char *prefix;     /* prefix as written, NULL if none */
    const char *value;
    struct xattr *next;
} xattr;

/* xnode flags, set by the parser. */
#define XNODE_DECLARES_DEFAULT_NS 0x01  /* the element carries xmlns='...' itself */
#define XNODE_USES_OUTER_PREFIX   0x02  /* it or a descendant uses a prefix declared outside it */

typedef struct xnode {
    xnode_type type;
    uint8_t flags;
    uint32_t line;          /* source line, 0 if built (for config errors) */
    const char *name;       /* element: local name */
    const char *ns;         /* element: namespace URI ("" if none) */
    const char *prefix;     /* element: prefix as written, NULL for the default namespace */
    xattr *attrs;
    const char *text;       /* text node: the text (NUL-terminated, unescaped) */
    size_t text_len;
    struct xnode *parent, *children, *last_child, *next, *prev;
    stanza *doc;
    uint32_t raw_off, raw_len;  /* span in doc->raw; raw_len 0 if unknown */
} xnode;

struct stanza {
    arena mem;
    xnode *root;
    char *raw;              /* original bytes of root, or NULL (built, or changed) */
    size_t raw_len;
};

/* A new stanza whose root element is name in namespace ns. */
stanza *stanza_new(const char *name, const char *ns);
/* An empty stanza (no root) for builders such as the parser. */
stanza *stanza_new_empty(void);
void stanza_free(stanza *st);
/* Deep copy (raw bytes included). */
stanza *stanza_copy(const stanza *st);
/* Copy of one element as the root of a new stanza (raw bytes kept if known). */
stanza *stanza_from_node(const xnode *node);
/* Strings in the stanza's arena. */
char *stanza_strdup(stanza *st, const char *s);
char *stanza_strndup(stanza *st, const char *s, size_t n);
/* The stanza was changed: forget its original bytes. */
void stanza_touch(stanza *st);

/* ---- building and changing ---- */
/* Append a child element; ns NULL means the parent's namespace. */
xnode *xnode_add_child(xnode *parent, const char *name, const char *ns);
xnode *xnode_add_text(xnode *parent, const char *text, size_t len);
/* Append a child element holding only text (e.g. <body>hi</body>). */
xnode *xnode_add_text_child(xnode *parent, const char *name, const char *ns, const char *text);
/* Set an unqualified attribute; value NULL removes it. */
void xnode_set_attr(xnode *el, const char *name, const char *value);
/* Set a namespaced attribute (e.g. NS_XML, "lang"); prefix used when writing. */
void xnode_set_attr_ns(xnode *el, const char *ns, const char *prefix, const char *name, const char *value);
/* Unlink a node (and its subtree) from its parent; memory stays in the arena. */
void xnode_remove(xnode *node);
/* Deep-copy src (from any stanza) as the last child of parent. */
xnode *xnode_copy_into(xnode *parent, const xnode *src);
/* Remove all children. */
void xnode_clear_children(xnode *el);

/* ---- querying ---- */
const char *xnode_attr(const xnode *el, const char *name);            /* unqualified */
const char *xnode_attr_ns(const xnode *el, const char *ns, const char *name);
int xnode_is(const xnode *el, const char *name, const char *ns);    /* NULL matches any */
/* First element child matching name and ns (NULL matches any). */
xnode *xnode_child(const xnode *el, const char *name, const char *ns);
/* Next element sibling matching name and ns (NULL matches any). */
xnode *xnode_next(const xnode *el, const char *name, const char *ns);
/* First element child of any name / next element sibling of any name. */
xnode *xnode_first_element(const xnode *el);
xnode *xnode_next_element(const xnode *el);
/* Concatenated text of the direct text children; "" if none. Allocated in the arena. */
const char *xnode_text(const xnode *el);
/* Text of the first child element matching name/ns, or NULL if there is no such child. */
const char *xnode_child_text(const xnode *el, const char *name, const char *ns);
size_t xnode_count_elements(const xnode *el);

#endif
