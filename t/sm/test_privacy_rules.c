/* The rule evaluation of privacy lists (sm/privacy_rules.h): JID matching
 * (XEP-0016 §2.1), group and subscription items, stanza kinds, order and
 * fall-through, and what counts as a blocklist entry (XEP-0191 §5). */
#include <stdio.h>
#include <string.h>

#include "../unit/tap.h"
#include "sm/privacy_rules.h"

#define N(a) (sizeof a / sizeof a[0])

static privacy_contact stranger(const char *jid)
{
    privacy_contact c = {jid, 0, PRIV_SUB_NONE, NULL, 0};
    return c;
}

static void test_jid_matching(void)
{
    /* full JID: only that resource */
    ok(privacy_jid_matches("a@x.org/r", "a@x.org/r"), "full matches itself");
    ok(!privacy_jid_matches("a@x.org/r", "a@x.org/s"), "full: other resource");
    ok(!privacy_jid_matches("a@x.org/r", "a@x.org"), "full: bare does not match");
    /* bare: any resource */
    ok(privacy_jid_matches("a@x.org", "a@x.org"), "bare matches bare");
    ok(privacy_jid_matches("a@x.org", "a@x.org/any"), "bare matches any resource");
    ok(!privacy_jid_matches("a@x.org", "b@x.org/any"), "bare: other user");
    ok(!privacy_jid_matches("a@x.org", "a@x.org.evil/r"), "bare: no prefix match");
    ok(!privacy_jid_matches("a@x.org", "x.org"), "bare: not the domain");
    /* domain/resource: only that resource */
    ok(privacy_jid_matches("x.org/r", "x.org/r"), "domain/resource matches itself");
    ok(privacy_jid_matches("x.org/r", "a@x.org/r"), "domain/resource matches a user with that resource");
    ok(!privacy_jid_matches("x.org/r", "x.org/s"), "domain/resource: other resource");
    ok(!privacy_jid_matches("x.org/r", "x.org"), "domain/resource: not the domain");
    /* domain: the domain, its users and resources */
    ok(privacy_jid_matches("x.org", "x.org"), "domain matches itself");
    ok(privacy_jid_matches("x.org", "a@x.org"), "domain matches its users");
    ok(privacy_jid_matches("x.org", "a@x.org/r"), "domain matches its users' resources");
    ok(privacy_jid_matches("x.org", "x.org/r"), "domain matches domain/resource");
    ok(!privacy_jid_matches("x.org", "a@y.org"), "domain: other domain");
    ok(!privacy_jid_matches("x.org", "a@sub.x.org"), "domain: not a subdomain");
    ok(!privacy_jid_matches("x.org", "x.org.evil"), "domain: no prefix match");
    /* '@' inside a resource does not make a node */
    ok(privacy_jid_matches("x.org", "x.org/a@b"), "resource with @: still the domain");
    ok(!privacy_jid_matches("a@x.org", "x.org/a@x.org"), "resource with @ is not a user");
    ok(!privacy_jid_matches(NULL, "a@x.org"), "no value: no match");
    ok(!privacy_jid_matches("a@x.org", NULL), "no jid: no match");
}

static void test_kinds(void)
{
    is_int(privacy_stanza_kind("message", "chat", 1), PRIV_MESSAGE, "inbound message");
    is_int(privacy_stanza_kind("iq", "get", 1), PRIV_IQ, "inbound iq");
    is_int(privacy_stanza_kind("presence", NULL, 1), PRIV_PRESENCE_IN, "inbound available presence");
    is_int(privacy_stanza_kind("presence", "unavailable", 1), PRIV_PRESENCE_IN, "inbound unavailable");
    is_int(privacy_stanza_kind("presence", "subscribe", 1), 0, "subscription is not a notification");
    is_int(privacy_stanza_kind("presence", "probe", 1), 0, "probe is not a notification");
    is_int(privacy_stanza_kind("presence", NULL, 0), PRIV_PRESENCE_OUT, "outbound presence");
    is_int(privacy_stanza_kind("presence", "unavailable", 0), PRIV_PRESENCE_OUT, "outbound unavailable");
    is_int(privacy_stanza_kind("message", NULL, 0), 0, "outbound message: only 'all' items");
    is_int(privacy_stanza_kind("iq", "set", 0), 0, "outbound iq: only 'all' items");
}

static void test_lists(void)
{
    const char *friends[] = {"Friends", "Work"};
    privacy_contact friend = {"f@x.org/r", 1, PRIV_SUB_BOTH, friends, N(friends)};
    privacy_contact watcher = {"w@x.org/r", 1, PRIV_SUB_FROM, NULL, 0};
    privacy_contact s = stranger("s@y.org/r");

    /* jid deny for messages only */
    privacy_item i1[] = {{PRIV_JID, "s@y.org", 1, PRIV_MESSAGE, 1}};
    privacy_list l1 = {"l1", i1, N(i1)};
    ok(!privacy_list_allows(&l1, &s, PRIV_MESSAGE), "jid deny <message/>: message blocked");
    ok(privacy_list_allows(&l1, &s, PRIV_IQ), "jid deny <message/>: iq passes");
    ok(privacy_list_allows(&l1, &s, PRIV_PRESENCE_IN), "jid deny <message/>: presence passes");
    ok(privacy_list_allows(&l1, &friend, PRIV_MESSAGE), "jid deny: others pass (fall-through allow)");

    /* group */
    privacy_item i2[] = {{PRIV_GROUP, "Work", 1, PRIV_IQ | PRIV_PRESENCE_IN, 5}};
    privacy_list l2 = {"l2", i2, N(i2)};
    ok(!privacy_list_allows(&l2, &friend, PRIV_IQ), "group deny: member's iq blocked");
    ok(!privacy_list_allows(&l2, &friend, PRIV_PRESENCE_IN), "group deny: member's presence blocked");
    ok(privacy_list_allows(&l2, &friend, PRIV_MESSAGE), "group deny <iq/><presence-in/>: message passes");
    ok(privacy_list_allows(&l2, &watcher, PRIV_IQ), "group deny: non-member passes");
    ok(privacy_list_allows(&l2, &s, PRIV_IQ), "group deny: stranger passes");

    /* subscription: exact, 'none' includes strangers */
    privacy_item i3[] = {{PRIV_SUBSCRIPTION, "none", 1, 0, 1}, {PRIV_SUBSCRIPTION, "from", 1, PRIV_PRESENCE_OUT, 2}};
    privacy_list l3 = {"l3", i3, N(i3)};
    ok(!privacy_list_allows(&l3, &s, PRIV_MESSAGE), "subscription none: stranger blocked");
    ok(privacy_list_allows(&l3, &friend, PRIV_MESSAGE), "subscription none: 'both' passes");
    ok(!privacy_list_allows(&l3, &watcher, PRIV_PRESENCE_OUT), "subscription from: presence-out blocked");
    ok(privacy_list_allows(&l3, &watcher, PRIV_MESSAGE), "subscription from <presence-out/>: message passes");
    ok(privacy_list_allows(&l3, &friend, PRIV_PRESENCE_OUT), "'both' is not 'from'");
    privacy_contact none_in_roster = {"n@x.org", 1, PRIV_SUB_NONE, NULL, 0};
    ok(!privacy_list_allows(&l3, &none_in_roster, PRIV_IQ), "subscription none: roster item with none");

    /* order decides, not position; fall-through item */
    privacy_item i4[] = {{PRIV_FALLTHROUGH, NULL, 1, 0, 20}, {PRIV_SUBSCRIPTION, "both", 0, 0, 10}};
    privacy_list l4 = {"l4", i4, N(i4)};
    /* the list in memory is sorted: emulate what mod_privacy does */
    privacy_item sorted[] = {i4[1], i4[0]};
    privacy_list l4s = {"l4", sorted, N(sorted)};
    ok(privacy_list_allows(&l4s, &friend, PRIV_MESSAGE), "allow both (order 10) before deny all (20)");
    ok(!privacy_list_allows(&l4s, &s, PRIV_MESSAGE), "deny all catches the rest");
    ok(!privacy_list_allows(&l4s, &s, 0), "deny all catches subscriptions too");
    ok(!privacy_list_allows(&l4, &friend, PRIV_MESSAGE), "first matching item in list order decides");
    const privacy_item *m = privacy_list_match(&l4s, &friend, PRIV_IQ);
    ok(m && m->order == 10, "the deciding item is returned");

    /* empty item kinds = everything, including kind 0 (subscriptions, probes) */
    privacy_item i5[] = {{PRIV_JID, "y.org", 1, 0, 1}};
    privacy_list l5 = {"l5", i5, N(i5)};
    ok(!privacy_list_allows(&l5, &s, 0), "domain deny: subscription blocked");
    ok(!privacy_list_allows(&l5, &s, PRIV_PRESENCE_OUT), "domain deny: presence-out blocked");
    /* an item with child elements does not match other presence */
    privacy_item i6[] = {{PRIV_JID, "y.org", 1, PRIV_PRESENCE_IN, 1}};
    privacy_list l6 = {"l6", i6, N(i6)};
    ok(privacy_list_allows(&l6, &s, 0), "presence-in does not cover subscriptions");

    ok(privacy_list_allows(NULL, &s, PRIV_MESSAGE), "no list: allowed");
    privacy_list empty = {"e", NULL, 0};
    ok(privacy_list_allows(&empty, &s, PRIV_MESSAGE), "empty list: allowed");
    privacy_item i7[] = {{PRIV_JID, "s@y.org", 0, 0, 1}, {PRIV_FALLTHROUGH, NULL, 1, 0, 2}};
    privacy_list l7 = {"l7", i7, N(i7)};
    ok(privacy_list_allows(&l7, &s, PRIV_MESSAGE), "whitelist: allowed jid passes");
    ok(!privacy_list_allows(&l7, &friend, PRIV_MESSAGE), "whitelist: everyone else blocked");
}

static void test_block_items(void)
{
    privacy_item a = {PRIV_JID, "s@y.org", 1, 0, 1};
    privacy_item b = {PRIV_JID, "s@y.org", 1, PRIV_MESSAGE, 1};
    privacy_item c = {PRIV_JID, "s@y.org", 0, 0, 1};
    privacy_item d = {PRIV_GROUP, "g", 1, 0, 1};
    ok(privacy_item_is_block(&a), "jid + deny + all stanzas is a blocklist entry");
    ok(!privacy_item_is_block(&b), "with <message/> it is not");
    ok(!privacy_item_is_block(&c), "allow is not");
    ok(!privacy_item_is_block(&d), "group is not");
    is_int(privacy_sub_parse("both"), PRIV_SUB_BOTH, "parse both");
    is_int(privacy_sub_parse("none"), PRIV_SUB_NONE, "parse none");
    is_int(privacy_sub_parse("bogus"), -1, "parse bogus");
    is_str(privacy_sub_name(PRIV_SUB_FROM), "from", "name from");
}

int main(void)
{
    test_jid_matching();
    test_kinds();
    test_lists();
    test_block_items();
    return tap_done();
}
