"""Privacy lists (jabber:iq:privacy, XEP-0016): list management (names,
get, set, active, default, removal, pushes, conflicts, errors) and
enforcement of jid / group / subscription / fall-through rules for
message, iq, presence-in and presence-out, with default and active lists,
driven through the sm by a fake c2s."""
import pytest

from smclient import C, FakeC2s, error_condition, is_message, is_presence, new_id, tag

NS_PRIV = "jabber:iq:privacy"
P = "{%s}" % NS_PRIV
DISCO_INFO = "http://jabber.org/protocol/disco#info"


@pytest.fixture
def env(server):
    srv = server(c2s=0)
    for u in ("alice", "bob", "carol"):
        srv.add_user(u, "pw")
    c2s = FakeC2s(srv)
    yield srv, c2s
    c2s.close()


def befriend(a, b):
    """Mutual subscription (both)."""
    for x, y in ((a, b), (b, a)):
        x.presence(to=y.bare, type="subscribe")
        y.expect(lambda e: is_presence(e, x.bare, "subscribe"))
        y.presence(to=x.bare, type="subscribed")
        x.expect(lambda e: is_presence(e, y.bare) and e.get("from") == y.jid, what="presence after approval")
    a.drain()
    b.drain()


def item(action="deny", order=1, type=None, value=None, kinds=()):
    attrs = f" action='{action}' order='{order}'"
    if type:
        attrs += f" type='{type}' value='{value}'"
    return f"<item{attrs}>{''.join(f'<{k}/>' for k in kinds)}</item>"


def set_list(s, name, *items):
    return s.iq(f"<query xmlns='{NS_PRIV}'><list name='{name}'>{''.join(items)}</list></query>", type="set")


def ok_list(s, name, *items):
    r = set_list(s, name, *items)
    assert r.get("type") == "result", error_condition(r)


def set_active(s, name=None):
    n = f" name='{name}'" if name else ""
    return s.iq(f"<query xmlns='{NS_PRIV}'><active{n}/></query>", type="set")


def set_default(s, name=None):
    n = f" name='{name}'" if name else ""
    return s.iq(f"<query xmlns='{NS_PRIV}'><default{n}/></query>", type="set")


def is_list_push(el, name):
    if tag(el) != "iq" or el.get("type") != "set":
        return False
    lst = el.find(f"{P}query/{P}list")
    return lst is not None and lst.get("name") == name


def is_error(el, name, cond=None):
    return tag(el) == name and el.get("type") == "error" and (cond is None or error_condition(el) == cond)


def test_disco_lists_privacy_when_on(env):
    srv, c2s = env
    a = c2s.session("alice@localhost/one")
    r = a.iq(f"<query xmlns='{DISCO_INFO}'/>", to="localhost")
    feats = {f.get("var") for f in r.find("{%s}query" % DISCO_INFO)}
    assert NS_PRIV in feats and "urn:xmpp:blocking" in feats


def test_disco_and_iq_when_off(server):
    srv = server(c2s=0, config={"sm": {"modules/privacy/enabled": "false"}})
    srv.add_user("alice", "pw")
    c2s = FakeC2s(srv)
    try:
        a = c2s.session("alice@localhost/one")
        r = a.iq(f"<query xmlns='{DISCO_INFO}'/>", to="localhost")
        feats = {f.get("var") for f in r.find("{%s}query" % DISCO_INFO)}
        assert NS_PRIV not in feats and "urn:xmpp:blocking" not in feats
        r = a.iq(f"<query xmlns='{NS_PRIV}'/>")
        assert error_condition(r) == "service-unavailable"
    finally:
        c2s.close()


def test_list_management(env):
    srv, c2s = env
    a = c2s.session("alice@localhost/one")
    a2 = c2s.session("alice@localhost/two")
    # no lists yet
    r = a.iq(f"<query xmlns='{NS_PRIV}'/>")
    assert r.get("type") == "result" and len(r.find(P + "query")) == 0
    # create a list, items given out of order; pushed to every resource
    ok_list(a, "public", item("allow", 20), item("deny", 3, "jid", "Bob@LocalHost", ["message", "presence-in"]),
            item("allow", 7, "subscription", "both"))
    for s in (a, a2):
        push = s.expect(lambda e: is_list_push(e, "public"), what="a privacy list push")
        assert push.find(f"{P}query/{P}list").findall(P + "item") == []   # only the name
        s.send(f"<iq type='result' id='{push.get('id')}'/>")
    r = a.iq(f"<query xmlns='{NS_PRIV}'><list name='public'/></query>")
    items = r.findall(f"{P}query/{P}list/{P}item")
    assert [i.get("order") for i in items] == ["3", "7", "20"]
    assert items[0].get("type") == "jid" and items[0].get("value") == "bob@localhost"
    assert items[0].get("action") == "deny"
    assert sorted(c.tag for c in items[0]) == [P + "message", P + "presence-in"]
    assert items[2].get("type") is None and items[2].get("action") == "allow"
    ok_list(a, "private", item("deny", 1))
    # names, with the active and default lists
    assert set_active(a, "private").get("type") == "result"
    assert set_default(a, "public").get("type") == "result"
    q = a.iq(f"<query xmlns='{NS_PRIV}'/>").find(P + "query")
    assert q.find(P + "active").get("name") == "private"
    assert q.find(P + "default").get("name") == "public"
    assert {x.get("name") for x in q.findall(P + "list")} == {"public", "private"}
    # the active list is per session
    q = a2.iq(f"<query xmlns='{NS_PRIV}'/>").find(P + "query")
    assert q.find(P + "active") is None and q.find(P + "default").get("name") == "public"
    # errors
    assert error_condition(a.iq(f"<query xmlns='{NS_PRIV}'><list name='nope'/></query>")) == "item-not-found"
    assert error_condition(a.iq(f"<query xmlns='{NS_PRIV}'><list name='public'/><list name='private'/></query>")) \
        == "bad-request"
    assert error_condition(set_active(a, "nope")) == "item-not-found"
    assert error_condition(set_default(a, "nope")) == "item-not-found"
    assert error_condition(set_list(a, "x", item("deny", 1), item("allow", 1))) == "bad-request"   # same order
    assert error_condition(set_list(a, "x", "<item order='1'/>")) == "bad-request"               # no action
    assert error_condition(set_list(a, "x", item("deny", 1, "subscription", "maybe"))) == "bad-request"
    assert error_condition(set_list(a, "x", item("deny", 1, "jid", "a@b@c"))) == "bad-request"
    assert error_condition(set_list(a, "x", item("deny", 1, "group", "NoSuchGroup"))) == "item-not-found"
    assert error_condition(a.iq(f"<query xmlns='{NS_PRIV}'><active/><default/></query>", type="set")) \
        == "bad-request"
    assert error_condition(a.iq(f"<query xmlns='{NS_PRIV}'><list name='nope'/></query>", type="set")) \
        == "item-not-found"
    # another account cannot read alice's lists
    b = c2s.session("bob@localhost/x")
    assert error_condition(b.iq(f"<query xmlns='{NS_PRIV}'/>", to="alice@localhost")) == "service-unavailable"
    # decline the active list, remove a list (pushed too)
    assert set_active(a).get("type") == "result"
    a2.drain()
    r = a.iq(f"<query xmlns='{NS_PRIV}'><list name='private'/></query>", type="set")
    assert r.get("type") == "result"
    a2.expect(lambda e: is_list_push(e, "private"), what="the push of the removal")
    q = a.iq(f"<query xmlns='{NS_PRIV}'/>").find(P + "query")
    assert q.find(P + "active") is None
    assert {x.get("name") for x in q.findall(P + "list")} == {"public"}


def test_conflicts(env):
    srv, c2s = env
    a1 = c2s.session("alice@localhost/one")
    a2 = c2s.session("alice@localhost/two")
    ok_list(a1, "d", item("deny", 1, "jid", "bob@localhost"))
    ok_list(a1, "e", item("deny", 1, "jid", "carol@localhost"))
    assert set_default(a1, "d").get("type") == "result"
    # 'd' applies to a2 (no active list): it cannot be changed, declined or removed by a1
    for r in (set_default(a1, "e"), set_default(a1),
              a1.iq(f"<query xmlns='{NS_PRIV}'><list name='d'/></query>", type="set")):
        assert error_condition(r) == "conflict"
    # a list active in another session cannot be removed
    assert set_active(a2, "e").get("type") == "result"
    assert error_condition(a1.iq(f"<query xmlns='{NS_PRIV}'><list name='e'/></query>", type="set")) == "conflict"
    # now 'd' applies only to a1: a1 may change the default
    assert set_default(a1, "e").get("type") == "result"
    q = a2.iq(f"<query xmlns='{NS_PRIV}'/>").find(P + "query")
    assert q.find(P + "default").get("name") == "e"
    # the refused removal left 'd' intact: it still blocks bob where it is active
    assert set_active(a1, "d").get("type") == "result"
    b = c2s.online("bob@localhost/x")
    b.message("alice@localhost/one", "blocked?", type="chat")
    b.expect(lambda e: is_error(e, "message", "service-unavailable"))
    a1.nothing(lambda e: is_message(e, body="blocked?"))


def test_jid_rule_messages_and_fall_through(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    c = c2s.online("carol@localhost/x")
    ok_list(a, "l", item("deny", 1, "jid", "bob@localhost", ["message"]))
    assert set_active(a, "l").get("type") == "result"
    # blocked: the sender gets service-unavailable, the user nothing
    b.message("alice@localhost", "spam", type="chat", id="m1")
    err = b.expect(lambda e: is_error(e, "message") and e.get("id") == "m1")
    assert error_condition(err) == "service-unavailable"
    b.message("alice@localhost/phone", "spam2", type="chat")
    b.expect(lambda e: is_error(e, "message", "service-unavailable"))
    a.nothing(lambda e: is_message(e, "bob@localhost"))
    # others fall through to allow
    c.message("alice@localhost", "hello", type="chat")
    a.expect(lambda e: is_message(e, "carol@localhost", "hello"))
    # only messages: bob's iq reaches alice
    iid = new_id()
    b.send(f"<iq type='get' id='{iid}' to='alice@localhost/phone'><query xmlns='jabber:iq:version'/></iq>")
    a.expect(lambda e: tag(e) == "iq" and e.get("id") == iid, what="bob's iq")
    # a full-JID rule: only that resource
    ok_list(a, "l", item("deny", 1, "jid", "carol@localhost/x", ["message"]))
    c.message("alice@localhost", "now blocked", type="chat")
    c.expect(lambda e: is_error(e, "message", "service-unavailable"))
    b.message("alice@localhost", "bob again", type="chat")
    a.expect(lambda e: is_message(e, "bob@localhost", "bob again"))
    # a domain rule: everyone at that domain
    ok_list(a, "l", item("deny", 1, "jid", "localhost", ["message"]))
    b.message("alice@localhost", "domain", type="chat")
    b.expect(lambda e: is_error(e, "message", "service-unavailable"))
    # the user's own resources are never blocked
    a2 = c2s.online("alice@localhost/laptop")
    a2.message("alice@localhost/phone", "self", type="chat")
    a.expect(lambda e: is_message(e, "alice@localhost", "self"))


def test_iq_rule(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    ok_list(a, "l", item("deny", 1, "jid", "bob@localhost", ["iq"]))
    assert set_active(a, "l").get("type") == "result"
    for t in ("get", "set"):
        iid = new_id()
        b.send(f"<iq type='{t}' id='{iid}' to='alice@localhost/phone'><query xmlns='jabber:iq:version'/></iq>")
        err = b.expect(lambda e: tag(e) == "iq" and e.get("id") == iid)
        assert error_condition(err) == "service-unavailable"
    # results are dropped silently, messages still pass
    b.send("<iq type='result' id='r1' to='alice@localhost/phone'/>")
    b.message("alice@localhost", "msg ok", type="chat")
    a.expect(lambda e: is_message(e, "bob@localhost", "msg ok"))
    a.nothing(lambda e: tag(e) == "iq" and e.get("from", "").startswith("bob@"))
    b.nothing(lambda e: tag(e) == "iq" and e.get("id") == "r1")


def test_group_rule(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    c = c2s.online("carol@localhost/x")
    assert a.roster_set("bob@localhost", groups=["Enemies"]).get("type") == "result"
    assert a.roster_set("carol@localhost", groups=["Friends"]).get("type") == "result"
    ok_list(a, "g", item("deny", 1, "group", "Enemies", ["message"]))
    assert set_active(a, "g").get("type") == "result"
    b.message("alice@localhost", "enemy", type="chat")
    b.expect(lambda e: is_error(e, "message", "service-unavailable"))
    c.message("alice@localhost", "friend", type="chat")
    a.expect(lambda e: is_message(e, "carol@localhost", "friend"))
    a.nothing(lambda e: is_message(e, "bob@localhost"))
    # the roster changes, the rule follows (XEP-0016 §2.2)
    assert a.roster_set("bob@localhost", groups=["Friends"]).get("type") == "result"
    b.message("alice@localhost", "friend now", type="chat")
    a.expect(lambda e: is_message(e, "bob@localhost", "friend now"))


def test_subscription_rule(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    c = c2s.online("carol@localhost/x")
    befriend(a, b)
    ok_list(a, "s", item("deny", 1, "subscription", "none", ["message"]))
    assert set_active(a, "s").get("type") == "result"
    c.message("alice@localhost", "stranger", type="chat")      # not in the roster: 'none'
    c.expect(lambda e: is_error(e, "message", "service-unavailable"))
    b.message("alice@localhost", "friend", type="chat")        # 'both'
    a.expect(lambda e: is_message(e, "bob@localhost", "friend"))
    a.nothing(lambda e: is_message(e, "carol@localhost"))


def test_presence_in_rule(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    c = c2s.online("carol@localhost/x")
    befriend(a, b)
    ok_list(a, "p", item("deny", 1, "jid", "bob@localhost", ["presence-in"]))
    assert set_active(a, "p").get("type") == "result"
    b.presence(status="can you see me")
    a.nothing(lambda e: is_presence(e, "bob@localhost"))
    b.nothing(lambda e: tag(e) == "presence" and e.get("type") == "error")   # silently
    # others' presence, and bob's messages, pass
    c.presence(to="alice@localhost", status="directed")
    a.expect(lambda e: is_presence(e, "carol@localhost"))
    b.message("alice@localhost", "msg", type="chat")
    a.expect(lambda e: is_message(e, "bob@localhost", "msg"))
    # declined: bob's presence arrives again
    assert set_active(a).get("type") == "result"
    b.presence(status="again")
    got = a.expect(lambda e: is_presence(e, "bob@localhost"))
    assert got.findtext(C + "status") == "again"


def test_presence_out_rule(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    befriend(a, b)
    ok_list(a, "o", item("deny", 1, "jid", "bob@localhost", ["presence-out"]))
    assert set_active(a, "o").get("type") == "result"
    # the contact now sees the user as unavailable (XEP-0016 §2.11)
    b.expect(lambda e: is_presence(e, "alice@localhost", "unavailable") and e.get("from") == a.jid)
    a.presence(status="hidden")
    b.nothing(lambda e: is_presence(e, "alice@localhost"))
    # presence-out does not block messages either way
    a.message("bob@localhost", "hi bob", type="chat")
    b.expect(lambda e: is_message(e, "alice@localhost", "hi bob"))
    # declined: bob gets alice's current presence again
    assert set_active(a).get("type") == "result"
    got = b.expect(lambda e: is_presence(e, "alice@localhost") and e.get("from") == a.jid)
    assert got.findtext(C + "status") == "hidden"
    # blocked again, then the session ends: its last presence is blocked too
    assert set_active(a, "o").get("type") == "result"
    b.expect(lambda e: is_presence(e, "alice@localhost", "unavailable") and e.get("from") == a.jid)
    a.end()
    b.nothing(lambda e: is_presence(e, "alice@localhost"))


def test_deny_all_and_outbound(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    c = c2s.online("carol@localhost/x")
    befriend(a, b)
    ok_list(a, "all", item("allow", 1, "jid", "carol@localhost"), item("deny", 2))
    assert set_active(a, "all").get("type") == "result"
    # inbound: messages bounced, presence (subscriptions too) silently dropped
    b.message("alice@localhost", "x", type="chat")
    b.expect(lambda e: is_error(e, "message", "service-unavailable"))
    b.presence(status="s")
    a.nothing(lambda e: is_presence(e, "bob@localhost"))
    c.message("alice@localhost", "carol ok", type="chat")
    a.expect(lambda e: is_message(e, "carol@localhost", "carol ok"))
    # outbound: not routed, <not-acceptable/> to the user
    a.message("bob@localhost", "out", type="chat", id="o1")
    err = a.expect(lambda e: is_error(e, "message") and e.get("id") == "o1")
    assert error_condition(err) == "not-acceptable"
    assert err.find(C + "error/{urn:xmpp:blocking:errors}blocked") is None   # not the blocklist
    b.nothing(lambda e: is_message(e, "alice@localhost"))
    a.presence(to="bob@localhost", type="subscribe")
    a.expect(lambda e: is_error(e, "presence", "not-acceptable"))
    # own resources still reach each other
    a2 = c2s.online("alice@localhost/two")
    a2.message("alice@localhost/phone", "me", type="chat")
    a.expect(lambda e: is_message(e, "alice@localhost", "me"))


def test_default_versus_active_and_offline(env):
    srv, c2s = env
    a1 = c2s.online("alice@localhost/one")
    a2 = c2s.online("alice@localhost/two")
    b = c2s.online("bob@localhost/desk")
    c = c2s.online("carol@localhost/x")
    ok_list(a1, "strict", item("deny", 1, "jid", "bob@localhost", ["message"]))
    ok_list(a1, "open", item("allow", 1))
    assert set_default(a1, "strict").get("type") == "result"
    assert set_active(a1, "open").get("type") == "result"   # no layering: only 'open' for a1
    b.message("alice@localhost/one", "to one", type="chat")
    a1.expect(lambda e: is_message(e, "bob@localhost", "to one"))
    b.message("alice@localhost/two", "to two", type="chat")
    b.expect(lambda e: is_error(e, "message", "service-unavailable"))
    a2.nothing(lambda e: is_message(e, body="to two"))
    # to the bare JID: only where it is allowed
    b.message("alice@localhost", "to bare", type="chat")
    a1.expect(lambda e: is_message(e, body="to bare"))
    a2.nothing(lambda e: is_message(e, body="to bare"))
    # offline, the default list applies: not stored, the sender learns it
    a1.end()
    a2.end()
    b.message("alice@localhost", "offline spam", type="chat", id="os")
    err = b.expect(lambda e: is_error(e, "message") and e.get("id") == "os")
    assert error_condition(err) == "service-unavailable"
    c.message("alice@localhost", "offline ok", type="chat")
    c.nothing(lambda e: is_error(e, "message"), wait=0.5)
    # the lists were stored: a new login loads them
    a = c2s.session("alice@localhost/again")
    a.roster()
    a.presence()
    a.expect(lambda e: is_message(e, "carol@localhost", "offline ok"))
    a.nothing(lambda e: is_message(e, body="offline spam"))
    q = a.iq(f"<query xmlns='{NS_PRIV}'/>").find(P + "query")
    assert q.find(P + "default").get("name") == "strict" and q.find(P + "active") is None
    b.message("alice@localhost", "still blocked", type="chat")
    b.expect(lambda e: is_error(e, "message", "service-unavailable"))
