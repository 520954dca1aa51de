"""Presence (RFC 6121 §4), message routing (§5, §8.5) and offline storage
(XEP-0160 with XEP-0203/0091 delays, XEP-0023 expire, XEP-0022 events),
driven through the sm by a fake c2s."""
import time
from xml.sax.saxutils import quoteattr

import pytest

from harness import NS_ROUTER
from smclient import (C, NS_SESSION, FakeC2s, Session, error_condition, is_message, is_presence, new_id, tag,
                      with_client_ns)

DELAY = "{urn:xmpp:delay}delay"
XDELAY = "{jabber:x:delay}x"


def befriend(a, b):
    """Mutual subscription (both)."""
    for x, y in ((a, b), (b, a)):
        x.presence(to=y.bare, type="subscribe")
        y.expect(lambda e: is_presence(e, x.bare, "subscribe"))
        y.presence(to=x.bare, type="subscribed")
        x.expect(lambda e: is_presence(e, y.bare) and e.get("from") == y.jid, what="presence after approval")
    a.drain()
    b.drain()


@pytest.fixture
def env(server):
    srv = server(c2s=0)
    for u in ("alice", "bob", "carol"):
        srv.add_user(u, "pw")
    c2s = FakeC2s(srv)
    yield srv, c2s
    c2s.close()


def test_presence_broadcast_probe_and_unavailable(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    befriend(a, b)
    # an update reaches the contact and the user's own resources
    a2 = c2s.online("alice@localhost/laptop")
    b.expect(lambda e: is_presence(e, "alice@localhost") and e.get("from") == a2.jid, what="a2 initial presence")
    a.expect(lambda e: is_presence(e) and e.get("from") == a2.jid, what="a2 presence at a")
    a2.expect(lambda e: is_presence(e) and e.get("from") == a.jid, what="a presence at a2")
    # the probe on a2's initial presence was answered with bob's presence
    a2.expect(lambda e: is_presence(e, "bob@localhost") and e.get("from") == b.jid, what="bob's presence (probe)")
    a.presence(show="away", status="out")
    got = b.expect(lambda e: is_presence(e) and e.get("from") == a.jid)
    assert got.findtext(C + "show") == "away"
    # a contact without a subscription hears nothing
    c = c2s.online("carol@localhost/x")
    a.presence(show="dnd")
    c.nothing(lambda e: is_presence(e, "alice@localhost"))
    # unavailable: to contacts, and when the session ends without it
    a.presence(type="unavailable")
    b.expect(lambda e: is_presence(e, "alice@localhost", "unavailable") and e.get("from") == a.jid)
    a2.end()
    b.expect(lambda e: is_presence(e, "alice@localhost", "unavailable") and e.get("from") == a2.jid)


def test_directed_presence_ended_by_unavailable(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    c = c2s.online("carol@localhost/x")
    a.presence(to="carol@localhost/x", status="hi")
    got = c.expect(lambda e: is_presence(e, "alice@localhost"))
    assert got.get("from") == a.jid
    a.end()
    c.expect(lambda e: is_presence(e, "alice@localhost", "unavailable"), what="unavailable after directed presence")


def test_presence_to_bare_jid_reaches_all_available_resources(env):
    srv, c2s = env
    a1 = c2s.online("alice@localhost/one")
    a2 = c2s.online("alice@localhost/two", priority=-1)
    a3 = c2s.session("alice@localhost/three")   # not available
    c = c2s.online("carol@localhost/x")
    c.presence(to="alice@localhost", status="directed")
    for s in (a1, a2):
        s.expect(lambda e: is_presence(e, "carol@localhost"))
    a3.nothing(lambda e: is_presence(e, "carol@localhost"))


def test_message_routing_by_priority(env):
    srv, c2s = env
    hi = c2s.online("alice@localhost/hi", priority=5)
    lo = c2s.online("alice@localhost/lo", priority=1)
    neg = c2s.online("alice@localhost/neg", priority=-1)
    b = c2s.online("bob@localhost/desk")
    b.message("alice@localhost", "to-bare", type="chat")
    got = hi.expect(lambda e: is_message(e, "bob@localhost", "to-bare"))
    assert got.get("from") == b.jid
    lo.nothing(lambda e: is_message(e, body="to-bare"), wait=0.3)
    neg.nothing(lambda e: is_message(e, body="to-bare"), wait=0.1)
    # normal: same rule
    b.message("alice@localhost", "normal-bare")
    hi.expect(lambda e: is_message(e, body="normal-bare"))
    # headline: every non-negative resource
    b.message("alice@localhost", "news", type="headline")
    hi.expect(lambda e: is_message(e, body="news"))
    lo.expect(lambda e: is_message(e, body="news"))
    neg.nothing(lambda e: is_message(e, body="news"), wait=0.3)
    # full JID: that resource, whatever its priority
    b.message("alice@localhost/neg", "direct", type="chat")
    neg.expect(lambda e: is_message(e, body="direct"))
    # a full JID that is not there: chat goes to the bare JID rules
    b.message("alice@localhost/gone", "stray", type="chat")
    hi.expect(lambda e: is_message(e, body="stray"))
    # groupchat to a bare JID: error
    b.message("alice@localhost", "gc", type="groupchat")
    err = b.expect(lambda e: tag(e) == "message" and e.get("type") == "error")
    assert error_condition(err) == "service-unavailable"
    # equal top priority: both get it
    lo.presence(priority=5)
    hi.drain()
    b.message("alice@localhost", "both", type="chat")
    hi.expect(lambda e: is_message(e, body="both"))
    lo.expect(lambda e: is_message(e, body="both"))


def test_message_to_missing_user(env):
    srv, c2s = env
    b = c2s.online("bob@localhost/desk")
    b.message("ghost@localhost", "boo", type="chat", id="m1")
    err = b.expect(lambda e: tag(e) == "message" and e.get("type") == "error")
    assert error_condition(err) == "service-unavailable" and err.get("id") == "m1"
    assert err.find(C + "error").get("code") == "503"
    assert err.get("from") == "ghost@localhost"


def test_offline_storage_delay_and_order(env):
    srv, c2s = env
    b = c2s.online("bob@localhost/desk")
    for i in range(3):
        b.message("alice@localhost", f"m{i}", type="chat")
    b.message("alice@localhost", "h", type="headline")     # not stored
    b.send("<message to='alice@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/>"
           "</message>")                                  # not worth storing
    b.nothing(lambda e: tag(e) == "message", wait=0.5)
    a = c2s.session("alice@localhost/phone")
    a.roster()
    a.presence()
    got = [a.expect(lambda e: tag(e) == "message", what=f"offline message {i}") for i in range(3)]
    assert [m.findtext(C + "body") for m in got] == ["m0", "m1", "m2"]
    for m in got:
        d = m.find(DELAY)
        x = m.find(XDELAY)
        assert d is not None and d.get("from") == "localhost" and d.get("stamp").endswith("Z")
        assert x is not None and len(x.get("stamp")) == 17 and x.get("stamp")[8] == "T"
        assert m.get("from") == b.jid
    a.nothing(lambda e: tag(e) == "message", wait=0.5)
    # delivered once: not again at the next login
    a.end()
    a = c2s.session("alice@localhost/again")
    a.presence()
    a.nothing(lambda e: tag(e) == "message", wait=0.8)


def test_offline_not_delivered_to_negative_priority(env):
    srv, c2s = env
    b = c2s.online("bob@localhost/desk")
    b.message("alice@localhost", "later", type="chat")
    time.sleep(0.3)
    a = c2s.session("alice@localhost/bot")
    a.presence(priority=-1)
    a.nothing(lambda e: is_message(e, body="later"), wait=0.6)
    a.presence(priority=1)
    a.expect(lambda e: is_message(e, body="later"))


def test_offline_event_and_expire(env):
    srv, c2s = env
    b = c2s.online("bob@localhost/desk")
    b.message("alice@localhost", "evt", type="chat", id="e1",
              extra="<x xmlns='jabber:x:event'><offline/><composing/></x>")
    ev = b.expect(lambda e: tag(e) == "message" and e.find("{jabber:x:event}x") is not None)
    x = ev.find("{jabber:x:event}x")
    assert x.find("{jabber:x:event}offline") is not None and x.findtext("{jabber:x:event}id") == "e1"
    assert ev.get("from") == "alice@localhost"
    b.message("alice@localhost", "soon-gone", type="chat", extra="<x xmlns='jabber:x:expire' seconds='1'/>")
    b.message("alice@localhost", "lasting", type="chat", extra="<x xmlns='jabber:x:expire' seconds='3600'/>")
    time.sleep(2.2)
    a = c2s.session("alice@localhost/phone")
    a.presence()
    got = [a.expect(lambda e: tag(e) == "message") for _ in range(2)]
    bodies = [m.findtext(C + "body") for m in got]
    assert bodies == ["evt", "lasting"]
    secs = int(got[1].find("{jabber:x:expire}x").get("seconds"))
    assert 0 < secs < 3600
    a.nothing(lambda e: is_message(e, body="soon-gone"), wait=0.5)


def test_offline_quota(server):
    srv = server(c2s=0, config={"sm": {"limits/offline-quota": 2}})
    srv.add_user("alice", "pw")
    srv.add_user("bob", "pw")
    c2s = FakeC2s(srv)
    b = c2s.online("bob@localhost/desk")
    for i in range(3):
        b.message("alice@localhost", f"q{i}", type="chat", id=f"q{i}")
    err = b.expect(lambda e: tag(e) == "message" and e.get("type") == "error")
    assert err.get("id") == "q2" and error_condition(err) == "service-unavailable"


def test_offline_messages_survive_sm_restart(env):
    srv, c2s = env
    b = c2s.online("bob@localhost/desk")
    b.message("alice@localhost", "durable", type="chat", id="d1",
              extra="<x xmlns='jabber:x:event'><offline/></x>")
    # acknowledged (the offline event) only once it is in PostgreSQL
    b.expect(lambda e: tag(e) == "message" and e.find("{jabber:x:event}x") is not None)
    c2s.close()
    srv.restart("sm")
    c2s2 = FakeC2s(srv, name="c2s-test2")
    a = c2s2.session("alice@localhost/phone")
    a.presence()
    a.expect(lambda e: is_message(e, body="durable"))


def test_handed_back_message_goes_offline(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    b.message("alice@localhost", "unacked", type="chat")
    a.expect(lambda e: is_message(e, body="unacked"))
    # the client vanished before acknowledging it: c2s ends and hands it back
    a.end()
    a.hand_back("<message from='bob@localhost/desk' to='alice@localhost/phone' type='chat'>"
                "<body>unacked</body></message>")
    time.sleep(0.5)
    a2 = c2s.session("alice@localhost/other")
    a2.presence()
    a2.expect(lambda e: is_message(e, body="unacked"), what="the handed-back message from offline storage")


def test_message_without_to_goes_to_own_bare_jid(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/one")
    a.send("<message type='chat'><body>note</body></message>")
    got = a.expect(lambda e: is_message(e, body="note"))
    assert got.get("from") == a.jid


def custody_session(c2s, jid):
    """A session whose c2s asks for delivery guarantees (acks='true',
    docs/sessions.md §7): its stanzas carry a seq and are confirmed with
    'handled'."""
    cid = str(next(c2s.ids))
    s = Session(c2s, jid, cid)
    c2s.sessions[cid] = s
    c2s.comp.send(f"<route xmlns='{NS_ROUTER}' to='{c2s.domain}' from='{c2s.name}' c2s-id='{cid}'>"
                  f"<session xmlns='{NS_SESSION}' action='start' jid={quoteattr(jid)} acks='true'/></route>")
    s.expect_control("started")
    return s


def send_numbered(s, seq, xml):
    s.c2s.comp.send(f"<route xmlns='{NS_ROUTER}' to='{s.c2s.domain}' from='{s.c2s.name}' "
                    f"c2s-id='{s.c2s_id}' sm-id='{s.sm_id}' seq='{seq}'>{with_client_ns(xml)}</route>")


def wait_handled(s, seq, timeout=60):
    """Wait for the 'handled' confirmation that covers seq."""
    deadline = time.time() + timeout
    while True:
        ctl = s.expect_control("handled", timeout=max(0.1, deadline - time.time()))
        if int(ctl.get("seq")) >= seq:
            return


def test_offline_burst_stored_in_order_within_quota(server):
    """A burst to an offline user is stored while earlier stores are still
    committing (pipelined), yet: confirmed only once stored, in order, the
    quota exact (the last ones refused), and delivered later in order."""
    quota, burst = 150, 200
    srv = server(c2s=0, config={"sm": {"limits/offline-quota": quota}})
    srv.add_user("alice", "pw")
    srv.add_user("bob", "pw")
    c2s = FakeC2s(srv)
    b = custody_session(c2s, "bob@localhost/desk")
    send_numbered(b, 1, "<presence/>")
    for i in range(burst):
        send_numbered(b, i + 2, f"<message to='alice@localhost' type='chat' id='burst{i}'><body>n{i}</body></message>")
    wait_handled(b, burst + 1)
    # Confirmed means committed: everything is in PostgreSQL by now.
    stored = srv.pg.psql("SELECT count(*) FROM offline_messages WHERE domain = 'localhost' AND username = 'alice'",
                         db=srv.dbname)
    assert int(stored) == quota
    errors = [b.expect(lambda e: tag(e) == "message" and e.get("type") == "error", what=f"refusal {k}")
              for k in range(burst - quota)]
    assert [e.get("id") for e in errors] == [f"burst{i}" for i in range(quota, burst)]
    assert all(error_condition(e) == "service-unavailable" for e in errors)
    b.nothing(lambda e: tag(e) == "message" and e.get("type") == "error", wait=0.5)
    a = c2s.session("alice@localhost/phone")
    a.presence()
    got = [a.expect(lambda e: tag(e) == "message", what=f"offline message {i}") for i in range(quota)]
    assert [m.findtext(C + "body") for m in got] == [f"n{i}" for i in range(quota)]
    a.nothing(lambda e: tag(e) == "message", wait=0.5)
