"""The blocking command (urn:xmpp:blocking, XEP-0191): blocklist, block,
unblock, unblock all, pushes to the resources that asked for the
blocklist, the <blocked/> error, presence on block/unblock, offline
storage, and the blocklist as a view on the default privacy list (§5),
driven through the sm by a fake c2s."""
import pytest

from smclient import C, FakeC2s, error_condition, is_message, is_presence, new_id, tag

NS_BLOCK = "urn:xmpp:blocking"
B = "{%s}" % NS_BLOCK
NS_PRIV = "jabber:iq:privacy"
P = "{%s}" % NS_PRIV


@pytest.fixture
def env(server):
    srv = server(c2s=0)
    for u in ("alice", "bob", "carol"):
        srv.add_user(u, "pw")
    c2s = FakeC2s(srv)
    yield srv, c2s
    c2s.close()


def befriend(a, b):
    for x, y in ((a, b), (b, a)):
        x.presence(to=y.bare, type="subscribe")
        y.expect(lambda e: is_presence(e, x.bare, "subscribe"))
        y.presence(to=x.bare, type="subscribed")
        x.expect(lambda e: is_presence(e, y.bare) and e.get("from") == y.jid, what="presence after approval")
    a.drain()
    b.drain()


def blocklist(s):
    r = s.iq(f"<blocklist xmlns='{NS_BLOCK}'/>")
    assert r.get("type") == "result"
    return sorted(i.get("jid") for i in r.find(B + "blocklist"))


def block(s, *jids, what="block"):
    items = "".join(f"<item jid='{j}'/>" for j in jids)
    return s.iq(f"<{what} xmlns='{NS_BLOCK}'>{items}</{what}>", type="set")


def is_block_push(el, what):
    return tag(el) == "iq" and el.get("type") == "set" and el.find(B + what) is not None


def is_error(el, name, cond=None):
    return tag(el) == name and el.get("type") == "error" and (cond is None or error_condition(el) == cond)


def test_block_unblock_and_pushes(env):
    srv, c2s = env
    a1 = c2s.online("alice@localhost/one")
    a2 = c2s.online("alice@localhost/two")
    a3 = c2s.online("alice@localhost/three")     # never asks for the blocklist
    assert blocklist(a1) == []
    assert blocklist(a2) == []
    r = block(a1, "Bob@LocalHost", "carol@localhost")
    assert r.get("type") == "result"
    for s in (a1, a2):
        push = s.expect(lambda e: is_block_push(e, "block"), what="a block push")
        assert sorted(i.get("jid") for i in push.find(B + "block")) == ["bob@localhost", "carol@localhost"]
    a3.nothing(lambda e: is_block_push(e, "block"))
    assert blocklist(a1) == ["bob@localhost", "carol@localhost"]
    # unblock one
    assert block(a2, "carol@localhost", what="unblock").get("type") == "result"
    for s in (a1, a2):
        push = s.expect(lambda e: is_block_push(e, "unblock"), what="an unblock push")
        assert [i.get("jid") for i in push.find(B + "unblock")] == ["carol@localhost"]
    assert blocklist(a2) == ["bob@localhost"]
    # unblock all: an empty <unblock/> push
    assert block(a1, what="unblock").get("type") == "result"
    for s in (a1, a2):
        push = s.expect(lambda e: is_block_push(e, "unblock"), what="an unblock-all push")
        assert len(push.find(B + "unblock")) == 0
    a3.nothing(lambda e: is_block_push(e, "unblock"))
    assert blocklist(a1) == []
    # errors
    assert error_condition(block(a1)) == "bad-request"                  # block needs an item
    assert error_condition(block(a1, "a@b@c")) == "jid-malformed"
    b = c2s.session("bob@localhost/x")
    r = b.iq(f"<blocklist xmlns='{NS_BLOCK}'/>", to="alice@localhost")
    assert error_condition(r) == "service-unavailable"                  # not bob's business


def test_blocked_jid_is_cut_off(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    c = c2s.online("carol@localhost/x")
    befriend(a, b)
    assert block(a, "bob@localhost").get("type") == "result"
    # blocking sends unavailable presence to the contact (§3.3)
    b.expect(lambda e: is_presence(e, "alice@localhost", "unavailable") and e.get("from") == a.jid)
    # inbound: message -> service-unavailable, iq get -> service-unavailable, presence silently dropped
    b.message("alice@localhost", "hello?", type="chat", id="m1")
    err = b.expect(lambda e: is_error(e, "message") and e.get("id") == "m1")
    assert error_condition(err) == "service-unavailable"
    iid = new_id()
    b.send(f"<iq type='get' id='{iid}' to='alice@localhost/phone'><query xmlns='jabber:iq:version'/></iq>")
    assert error_condition(b.expect(lambda e: tag(e) == "iq" and e.get("id") == iid)) == "service-unavailable"
    b.presence(status="see me")
    b.presence(to="alice@localhost", type="subscribe")
    a.nothing(lambda e: tag(e) in ("message", "presence", "iq") and (e.get("from") or "").startswith("bob@"))
    b.nothing(lambda e: is_error(e, "presence"))
    # alice's own presence changes do not reach bob
    a.presence(status="busy")
    b.nothing(lambda e: is_presence(e, "alice@localhost"))
    # outbound: <not-acceptable/> with <blocked/>
    a.message("bob@localhost", "Can you hear me now?", type="chat", id="o1")
    err = a.expect(lambda e: is_error(e, "message") and e.get("id") == "o1")
    assert error_condition(err) == "not-acceptable"
    assert err.find(C + "error/{urn:xmpp:blocking:errors}blocked") is not None
    assert err.findtext(C + "body") == "Can you hear me now?"
    b.nothing(lambda e: is_message(e, "alice@localhost"))
    # others are not affected
    c.message("alice@localhost", "carol here", type="chat")
    a.expect(lambda e: is_message(e, "carol@localhost", "carol here"))
    # unblock: current presence to the contact (§3.4), and stanzas flow again
    assert block(a, "bob@localhost", what="unblock").get("type") == "result"
    got = b.expect(lambda e: is_presence(e, "alice@localhost") and e.get("from") == a.jid)
    assert got.findtext(C + "status") == "busy"
    b.message("alice@localhost", "back", type="chat")
    a.expect(lambda e: is_message(e, "bob@localhost", "back"))
    a.message("bob@localhost", "yes", type="chat")
    b.expect(lambda e: is_message(e, "alice@localhost", "yes"))


def test_offline_messages_from_blocked_jid_not_stored(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    assert block(a, "bob@localhost").get("type") == "result"
    a.end()
    b = c2s.online("bob@localhost/desk")
    c = c2s.online("carol@localhost/x")
    b.message("alice@localhost", "blocked offline", type="chat", id="b1")
    err = b.expect(lambda e: is_error(e, "message") and e.get("id") == "b1")
    assert error_condition(err) == "service-unavailable"
    c.message("alice@localhost", "stored", type="chat")
    c.nothing(lambda e: is_error(e, "message"), wait=0.5)
    a = c2s.session("alice@localhost/again")
    a.roster()
    a.presence()
    a.expect(lambda e: is_message(e, "carol@localhost", "stored"))
    a.nothing(lambda e: is_message(e, "bob@localhost"), wait=0.8)
    assert blocklist(a) == ["bob@localhost"]       # kept across sessions


def test_blocklist_is_the_default_privacy_list(env):
    srv, c2s = env
    a1 = c2s.online("alice@localhost/one")
    a2 = c2s.online("alice@localhost/two")
    assert blocklist(a2) == []
    assert block(a1, "bob@localhost").get("type") == "result"
    a2.expect(lambda e: is_block_push(e, "block"))
    # the blocklist is the default privacy list, with a jid/deny item
    q = a1.iq(f"<query xmlns='{NS_PRIV}'/>").find(P + "query")
    name = q.find(P + "default").get("name")
    r = a1.iq(f"<query xmlns='{NS_PRIV}'><list name='{name}'/></query>")
    items = r.findall(f"{P}query/{P}list/{P}item")
    assert [(i.get("type"), i.get("value"), i.get("action"), len(i)) for i in items] == \
        [("jid", "bob@localhost", "deny", 0)]
    # an edit of the default list through privacy lists shows in the blocklist, with pushes
    r = a1.iq(f"<query xmlns='{NS_PRIV}'><list name='{name}'>"
              "<item type='jid' value='carol@localhost' action='deny' order='1'/>"
              "<item type='jid' value='bob@localhost' action='deny' order='2'><message/></item>"
              "</list></query>", type="set")
    assert r.get("type") == "result"
    push = a2.expect(lambda e: is_block_push(e, "block"), what="a block push for carol")
    assert [i.get("jid") for i in push.find(B + "block")] == ["carol@localhost"]
    push = a2.expect(lambda e: is_block_push(e, "unblock"), what="an unblock push for bob")
    assert [i.get("jid") for i in push.find(B + "unblock")] == ["bob@localhost"]
    assert blocklist(a1) == ["carol@localhost"]
    # blocking again keeps the other rules, blocked items first
    assert block(a1, "bob@localhost").get("type") == "result"
    r = a1.iq(f"<query xmlns='{NS_PRIV}'><list name='{name}'/></query>")
    items = r.findall(f"{P}query/{P}list/{P}item")
    assert [(i.get("value"), len(i)) for i in items] == \
        [("bob@localhost", 0), ("carol@localhost", 0), ("bob@localhost", 1)]
    assert blocklist(a1) == ["bob@localhost", "carol@localhost"]
    # a session with another active list is not governed by the blocklist
    r = a1.iq(f"<query xmlns='{NS_PRIV}'><list name='open'><item action='allow' order='1'/></list></query>",
              type="set")
    assert r.get("type") == "result"
    r = a1.iq(f"<query xmlns='{NS_PRIV}'><active name='open'/></query>", type="set")
    assert r.get("type") == "result"
    b = c2s.online("bob@localhost/x")
    b.message("alice@localhost/one", "to one", type="chat")
    a1.expect(lambda e: is_message(e, "bob@localhost", "to one"))
    b.message("alice@localhost/two", "to two", type="chat")
    b.expect(lambda e: is_error(e, "message", "service-unavailable"))
