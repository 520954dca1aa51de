/* privacy_rules: the pure rule evaluation of privacy lists (XEP-0016 §2),
 * shared by mod_privacy (privacy lists and the blocking command of
 * XEP-0191, which is a view on the default list) and its unit test
 * (t/sm/test_privacy_rules.c). No I/O, no allocation: header-only so that
 * the sm and the test build it without another source file.
 *
 * JIDs given here are already prepared (jid_normalize), so matching is a
 * comparison of strings. */
#ifndef SB_SM_PRIVACY_RULES_H
#define SB_SM_PRIVACY_RULES_H
#include <stddef.h>
#include <string.h>

/* What an item applies to (its child elements); 0 (no child) = everything. */
#define PRIV_MESSAGE 0x01
#define PRIV_IQ 0x02
#define PRIV_PRESENCE_IN 0x04
#define PRIV_PRESENCE_OUT 0x08
#define PRIV_ALL_KINDS 0x0f

typedef enum { PRIV_FALLTHROUGH = 0, PRIV_JID, PRIV_GROUP, PRIV_SUBSCRIPTION } privacy_type;

/* Subscription values as in roster.h (none, to, from, both). */
typedef enum { PRIV_SUB_NONE = 0, PRIV_SUB_TO, PRIV_SUB_FROM, PRIV_SUB_BOTH } privacy_sub;

typedef struct privacy_item {
    privacy_type type;
    char *value;            /* prepared JID, group name, or subscription name; NULL for fall-through */
    int deny;               /* action: 1 deny, 0 allow */
    unsigned kinds;         /* PRIV_* bits, 0 for all stanzas */
    unsigned long order;
} privacy_item;

typedef struct privacy_list {
    char *name;
    privacy_item *items;    /* sorted by order, ascending */
    size_t nitems;
} privacy_list;

/* The other party of a stanza as the user's roster knows it. */
typedef struct privacy_contact {
    const char *jid;                /* its full (or bare, or domain) JID, prepared */
    int in_roster;
    privacy_sub sub;                /* PRIV_SUB_NONE when not in the roster */
    const char *const *groups;
    size_t ngroups;
} privacy_contact;

/* The kind of a stanza for rule matching. inbound: to the user. Presence
 * notifications are presence without a type or of type 'unavailable';
 * other presence (subscriptions, probes, errors) is matched only by items
 * without child elements (returns 0). */
static inline unsigned privacy_stanza_kind(const char *name, const char *type, int inbound)
{
    if (!name) return 0;
    if (!strcmp(name, "presence")) {
        if (type && strcmp(type, "unavailable")) return 0;
        return inbound ? PRIV_PRESENCE_IN : PRIV_PRESENCE_OUT;
    }
    if (!inbound) return 0;     /* <message/> and <iq/> items are about inbound stanzas */
    if (!strcmp(name, "message")) return PRIV_MESSAGE;
    if (!strcmp(name, "iq")) return PRIV_IQ;
    return 0;
}

/* Does a jid item with value v match the prepared JID j? XEP-0016 §2.1:
 * user@domain/resource (only that resource), user@domain (any resource),
 * domain/resource (only that resource, of the domain or any of its users),
 * domain (the domain itself, and every user@domain and domain/resource). */
static inline int privacy_jid_matches(const char *v, const char *j)
{
    if (!v || !j) return 0;
    const char *vslash = strchr(v, '/');
    const char *vat = strchr(v, '@');
    if (vat && vslash && vat > vslash) vat = NULL;      /* '@' in the resource */
    const char *jslash = strchr(j, '/');
    const char *jat = strchr(j, '@');
    if (jat && jslash && jat > jslash) jat = NULL;
    size_t jbare = jslash ? (size_t)(jslash - j) : strlen(j);
    const char *jdom = jat ? jat + 1 : j;
    size_t jdomlen = (size_t)(j + jbare - jdom);
    if (vat) {
        if (vslash) return !strcmp(v, j);                /* full JID */
        return strlen(v) == jbare && !strncmp(v, j, jbare);  /* bare JID */
    }
    if (vslash) {                                        /* domain/resource */
        size_t vdomlen = (size_t)(vslash - v);
        return jslash && vdomlen == jdomlen && !strncmp(v, jdom, jdomlen) && !strcmp(vslash + 1, jslash + 1);
    }
    return strlen(v) == jdomlen && !strncmp(v, jdom, jdomlen);  /* domain */
}

static inline const char *privacy_sub_name(privacy_sub s)
{
    static const char *const names[] = {"none", "to", "from", "both"};
    return (unsigned)s <= PRIV_SUB_BOTH ? names[s] : "none";
}

/* -1 if not a subscription value. */
static inline int privacy_sub_parse(const char *v)
{
    for (int i = 0; i <= PRIV_SUB_BOTH; i++)
        if (v && !strcmp(v, privacy_sub_name((privacy_sub)i))) return i;
    return -1;
}

static inline int privacy_item_matches(const privacy_item *it, const privacy_contact *c, unsigned kind)
{
    if (it->kinds && !(it->kinds & kind)) return 0;
    switch (it->type) {
    case PRIV_FALLTHROUGH:
        return 1;
    case PRIV_JID:
        return privacy_jid_matches(it->value, c->jid);
    case PRIV_GROUP:
        if (!c->in_roster || !it->value) return 0;
        for (size_t i = 0; i < c->ngroups; i++)
            if (c->groups[i] && !strcmp(c->groups[i], it->value)) return 1;
        return 0;
    case PRIV_SUBSCRIPTION: {
        privacy_sub s = c->in_roster ? c->sub : PRIV_SUB_NONE;
        return privacy_sub_parse(it->value) == (int)s;
    }
    }
    return 0;
}

/* The first item (in ascending order) that matches decides; no match
 * allows. Returns the deciding item, or NULL when none matched. */
static inline const privacy_item *privacy_list_match(const privacy_list *l, const privacy_contact *c, unsigned kind)
{
    if (!l) return NULL;
    for (size_t i = 0; i < l->nitems; i++)
        if (privacy_item_matches(&l->items[i], c, kind)) return &l->items[i];
    return NULL;
}

/* 1 if the list lets the stanza through, 0 if it blocks it (NULL list: allowed). */
static inline int privacy_list_allows(const privacy_list *l, const privacy_contact *c, unsigned kind)
{
    const privacy_item *it = privacy_list_match(l, c, kind);
    return !it || !it->deny;
}

/* Is the item a blocking-command entry (XEP-0191 §5: type jid, deny, all stanzas)? */
static inline int privacy_item_is_block(const privacy_item *it)
{
    return it->type == PRIV_JID && it->deny && it->kinds == 0 && it->value;
}

#endif
