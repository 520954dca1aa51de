"""The sm's session control (docs/sessions.md), roster (RFC 6121 §2,
XEP-0237), iq rules and disco, driven by a fake c2s in raw XML."""
import xml.etree.ElementTree as ET

import pytest

from smclient import (C, NS_ROSTER, FakeC2s, error_condition, is_presence, is_push, new_id, tag)

DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"


@pytest.fixture
def env(server):
    srv = server(c2s=0)
    for u in ("alice", "bob", "carol"):
        srv.add_user(u, "pw-" + u)
    c2s = FakeC2s(srv)
    yield srv, c2s
    c2s.close()


def roster_items(iq):
    q = iq.find("{%s}query" % NS_ROSTER)
    return {i.get("jid"): i for i in q.findall("{%s}item" % NS_ROSTER)} if q is not None else None


def test_session_start_and_end(env):
    srv, c2s = env
    s = c2s.session("alice@localhost/phone")
    assert s.start_answer.get("jid") == "alice@localhost/phone"
    assert s.sm_id and s.sm_id.isdigit()
    s.end()
    # A stanza for the ended session gets a reset.
    s.send("<presence/>")
    end = s.expect_control("end")
    assert end.get("reason") == "reset"


def test_session_for_unknown_account_fails(env):
    srv, c2s = env
    s = c2s.session("nobody@localhost/x", expect="failed")
    assert s.start_answer.get("condition") == "not-authorized"


def test_unknown_sm_id_is_reset(env):
    srv, c2s = env
    s = c2s.session("alice@localhost/phone")
    s.send("<message to='bob@localhost'><body>x</body></message>", sm_id="999999")
    assert s.expect_control("end").get("reason") == "reset"


def test_resource_conflict_ends_the_old_session(env):
    srv, c2s = env
    old = c2s.session("alice@localhost/phone")
    new = c2s.session("alice@localhost/phone")
    assert old.expect_control("end").get("reason") == "conflict"
    assert new.sm_id != old.sm_id


def test_max_sessions_per_user(server):
    srv = server(c2s=0, config={"sm": {"limits/max-sessions-per-user": 2}})
    srv.add_user("alice", "pw")
    c2s = FakeC2s(srv)
    c2s.session("alice@localhost/a")
    c2s.session("alice@localhost/b")
    third = c2s.session("alice@localhost/c", expect="failed")
    assert third.start_answer.get("condition") == "resource-constraint"


def test_roster_get_set_remove_and_pushes(env):
    srv, c2s = env
    a1 = c2s.session("alice@localhost/one")
    a2 = c2s.session("alice@localhost/two")
    assert roster_items(a1.roster()) == {}
    assert roster_items(a2.roster()) == {}
    r = a1.roster_set("bob@localhost", name="Bob", groups=["Friends", "Work"])
    assert r.get("type") == "result"
    for s in (a1, a2):
        item = s.push("bob@localhost")
        assert item.get("name") == "Bob" and item.get("subscription") == "none" and item.get("ask") is None
        assert sorted(g.text for g in item.findall("{%s}group" % NS_ROSTER)) == ["Friends", "Work"]
    # a session that never asked for the roster gets no pushes
    a3 = c2s.session("alice@localhost/three")
    a1.roster_set("bob@localhost", name="Bobby")
    assert a1.push("bob@localhost").get("name") == "Bobby"
    a3.nothing(is_push)
    items = roster_items(a2.roster())
    assert list(items) == ["bob@localhost"] and items["bob@localhost"].get("name") == "Bobby"
    # remove
    r = a2.roster_set("bob@localhost", remove=True)
    assert r.get("type") == "result"
    assert a1.push("bob@localhost").get("subscription") == "remove"
    assert roster_items(a1.roster()) == {}
    # removing what is not there
    r = a1.roster_set("nobody@localhost", remove=True)
    assert error_condition(r) == "item-not-found"


def test_roster_persists_across_sessions(env):
    srv, c2s = env
    a = c2s.session("alice@localhost/one")
    a.roster_set("carol@localhost", name="Carol")
    a.end()
    a = c2s.session("alice@localhost/two")
    items = roster_items(a.roster())
    assert items["carol@localhost"].get("name") == "Carol"


def test_roster_set_errors(env):
    srv, c2s = env
    a = c2s.session("alice@localhost/one")
    two = a.iq(f"<query xmlns='{NS_ROSTER}'><item jid='x@localhost'/><item jid='y@localhost'/></query>", "set")
    assert error_condition(two) == "bad-request"
    assert two.find(C + "error").get("code") == "400"
    dup = a.iq(f"<query xmlns='{NS_ROSTER}'><item jid='x@localhost'><group>g</group><group>g</group></item></query>",
               "set")
    assert error_condition(dup) == "bad-request"
    empty = a.iq(f"<query xmlns='{NS_ROSTER}'><item jid='x@localhost'><group></group></item></query>", "set")
    assert error_condition(empty) == "not-acceptable"
    bad = a.iq(f"<query xmlns='{NS_ROSTER}'><item jid='@@bad'/></query>", "set")
    assert error_condition(bad) == "jid-malformed"
    # the 'subscription' of a client is ignored (only 'remove' means something)
    r = a.roster_set_raw = a.iq(f"<query xmlns='{NS_ROSTER}'><item jid='x@localhost' subscription='both' "
                                f"ask='subscribe'/></query>", "set")
    assert r.get("type") == "result"
    items = roster_items(a.roster())
    assert items["x@localhost"].get("subscription") == "none" and items["x@localhost"].get("ask") is None
    # a 'to' of the user's own bare JID is the same as none
    r = a.iq(f"<query xmlns='{NS_ROSTER}'/>", to="alice@localhost")
    assert r.get("type") == "result" and "x@localhost" in roster_items(r)
    # someone else's roster: no
    r = a.iq(f"<query xmlns='{NS_ROSTER}'/>", to="bob@localhost")
    assert error_condition(r) == "forbidden"


def test_roster_size_limit(server):
    srv = server(c2s=0, config={"sm": {"limits/max-roster-items": 2}})
    srv.add_user("alice", "pw")
    c2s = FakeC2s(srv)
    a = c2s.session("alice@localhost/one")
    assert a.roster_set("a@localhost").get("type") == "result"
    assert a.roster_set("b@localhost").get("type") == "result"
    r = a.roster_set("c@localhost")
    assert error_condition(r) == "not-allowed"
    # changing an existing item is still fine
    assert a.roster_set("a@localhost", name="A").get("type") == "result"


def test_roster_versioning(env):
    srv, c2s = env
    a = c2s.session("alice@localhost/one")
    r = a.roster(ver="")
    q = r.find("{%s}query" % NS_ROSTER)
    v0 = q.get("ver")
    assert v0 is not None
    a.roster_set("bob@localhost", name="B")
    push = a.expect(lambda e: is_push(e, "bob@localhost"))
    v1 = push.find("{%s}query" % NS_ROSTER).get("ver")
    assert v1 and v1 != v0
    # up to date: an empty result
    r = a.roster(ver=v1)
    assert r.get("type") == "result" and r.find("{%s}query" % NS_ROSTER) is None
    # stale: the whole roster with the current version
    r = a.roster(ver=v0)
    q = r.find("{%s}query" % NS_ROSTER)
    assert q.get("ver") == v1 and "bob@localhost" in roster_items(r)
    # versions survive the session and the sm
    a.end()
    srv.restart("sm")
    c2s2 = FakeC2s(srv, name="c2s-test2")
    b = c2s2.session("alice@localhost/two")
    r = b.roster(ver=v1)
    assert r.get("type") == "result" and r.find("{%s}query" % NS_ROSTER) is None


def test_iq_rules(env):
    srv, c2s = env
    a = c2s.session("alice@localhost/one")
    # unknown namespace to the server, to an account, to self
    for to in ("localhost", "bob@localhost", None):
        r = a.iq("<query xmlns='urn:example:nothing'/>", to=to)
        assert error_condition(r) == "service-unavailable", ET.tostring(r)
        assert r.find(C + "error").get("code") == "503"
    # to a user that does not exist
    r = a.iq(f"<query xmlns='{DISCO_INFO}'/>", to="nobody@localhost")
    assert error_condition(r) == "service-unavailable"
    # to a full JID that is not connected
    r = a.iq("<ping xmlns='urn:xmpp:ping'/>", to="bob@localhost/gone")
    assert error_condition(r) == "service-unavailable"
    # to a full JID that is: delivered as it is
    b = c2s.session("bob@localhost/desk")
    iid = new_id()
    a.send(f"<iq type='get' id='{iid}' to='bob@localhost/desk'><ping xmlns='urn:xmpp:ping'/></iq>")
    got = b.expect(lambda e: tag(e) == "iq" and e.get("id") == iid)
    assert got.get("from") == "alice@localhost/one"
    b.send(f"<iq type='result' id='{iid}' to='alice@localhost/one'/>")
    res = a.expect(lambda e: tag(e) == "iq" and e.get("id") == iid)
    assert res.get("type") == "result" and res.get("from") == "bob@localhost/desk"
    # no payload
    r = a.iq("", to="localhost")
    assert error_condition(r) == "bad-request"


def test_disco(env):
    srv, c2s = env
    a = c2s.session("alice@localhost/one")
    r = a.iq(f"<query xmlns='{DISCO_INFO}'/>", to="localhost")
    q = r.find("{%s}query" % DISCO_INFO)
    ids = [(i.get("category"), i.get("type")) for i in q.findall("{%s}identity" % DISCO_INFO)]
    feats = {f.get("var") for f in q.findall("{%s}feature" % DISCO_INFO)}
    assert ("server", "im") in ids
    assert {DISCO_INFO, DISCO_ITEMS, NS_ROSTER, "msgoffline"} <= feats
    r = a.iq(f"<query xmlns='{DISCO_ITEMS}'/>", to="localhost")
    assert r.get("type") == "result"
    # an account: its identity
    r = a.iq(f"<query xmlns='{DISCO_INFO}'/>", to="bob@localhost")
    q = r.find("{%s}query" % DISCO_INFO)
    assert ("account", "registered") in [(i.get("category"), i.get("type"))
                                         for i in q.findall("{%s}identity" % DISCO_INFO)]
    # own account
    r = a.iq(f"<query xmlns='{DISCO_ITEMS}'/>")
    assert r.get("type") == "result"
    # unknown node
    r = a.iq(f"<query xmlns='{DISCO_INFO}' node='nope'/>", to="localhost")
    assert error_condition(r) == "item-not-found"


def test_c2s_vanishing_ends_its_sessions(env):
    srv, c2s = env
    other = FakeC2s(srv, name="c2s-other")
    b = c2s.online("bob@localhost/desk")
    a = other.online("alice@localhost/phone")
    # bob subscribes to alice's presence, alice approves
    b.presence(to="alice@localhost", type="subscribe")
    a.expect(lambda e: is_presence(e, "bob@localhost", "subscribe"))
    a.presence(to="bob@localhost", type="subscribed")
    # bob now gets alice's current presence
    b.expect(lambda e: is_presence(e, "alice@localhost") and e.get("from") == "alice@localhost/phone",
             what="alice's presence")
    b.drain()
    other.close()       # the c2s dies without a word
    b.expect(lambda e: is_presence(e, "alice@localhost", "unavailable") and e.get("from") == "alice@localhost/phone",
             what="alice's unavailable presence")
