"""Message Carbons (XEP-0280) through the sm, driven by a fake c2s:
enable/disable per session, <sent/> copies of what a resource sends,
<received/> copies for the resources that did not get a message, the
eligibility rules of §6.1, <private/> and <no-copy/> exclusions."""
import xml.etree.ElementTree as ET

import pytest

from smclient import C, FakeC2s, error_condition, is_message, tag

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
CARB = "{%s}" % NS_CARBONS


@pytest.fixture
def env(server):
    srv = server(c2s=0)
    for u in ("alice", "bob"):
        srv.add_user(u, "pw")
    c2s = FakeC2s(srv)
    yield srv, c2s
    c2s.close()


def enable(s, on=True):
    r = s.iq(f"<{'enable' if on else 'disable'} xmlns='{NS_CARBONS}'/>", type="set")
    assert r.get("type") == "result", ET.tostring(r)


def is_carbon(el, how, body=None):
    if tag(el) != "message":
        return False
    w = el.find(CARB + how)
    if w is None:
        return False
    inner = w.find("{%s}forwarded/%smessage" % (NS_FORWARD, C))
    return inner is not None and (body is None or inner.findtext(C + "body") == body)


def inner_of(el, how):
    return el.find("%s%s/{%s}forwarded/%smessage" % (CARB, how, NS_FORWARD, C))


def any_carbon(el):
    return is_carbon(el, "sent") or is_carbon(el, "received")


@pytest.fixture
def three(env):
    """alice on phone and laptop (carbons on) and tablet (off); bob on desk."""
    srv, c2s = env
    phone = c2s.online("alice@localhost/phone")
    laptop = c2s.online("alice@localhost/laptop")
    tablet = c2s.online("alice@localhost/tablet")
    bob = c2s.online("bob@localhost/desk")
    enable(phone)
    enable(laptop)
    for s in (phone, laptop, tablet, bob):
        s.drain()
    return phone, laptop, tablet, bob


def test_enable_disable_rules(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    enable(a)
    enable(a)            # again: still a result (§9.1)
    enable(a, False)
    enable(a, False)
    r = a.iq(f"<enable xmlns='{NS_CARBONS}'/>", type="get")
    assert r.get("type") == "error" and error_condition(r) == "bad-request"
    r = a.iq(f"<enable xmlns='{NS_CARBONS}'/>", type="set", to="alice@localhost")
    assert r.get("type") == "result"
    # nobody else decides for alice's sessions
    r = b.iq(f"<enable xmlns='{NS_CARBONS}'/>", type="set", to="alice@localhost")
    assert r.get("type") == "error" and error_condition(r) == "not-allowed"


def test_sent_copies(three):
    phone, laptop, tablet, bob = three
    phone.message("bob@localhost", "sent one", type="chat", id="s1")
    got = bob.expect(lambda e: is_message(e, body="sent one"))
    assert got.find(CARB + "sent") is None and got.get("from") == phone.jid
    c = laptop.expect(lambda e: is_carbon(e, "sent", "sent one"))
    assert c.get("from") == "alice@localhost" and c.get("to") == laptop.jid and c.get("type") == "chat"
    inner = inner_of(c, "sent")
    assert inner.get("from") == phone.jid and inner.get("to") == "bob@localhost" and inner.get("id") == "s1"
    phone.nothing(any_carbon, wait=0.3)      # not to the sender
    tablet.nothing(any_carbon, wait=0.1)     # not to a resource without carbons


def test_received_copies(three):
    phone, laptop, tablet, bob = three
    # to a full JID: that resource gets it, the other enabled one a copy
    bob.message(phone.jid, "to phone", type="chat", id="r1")
    got = phone.expect(lambda e: is_message(e, body="to phone"))
    assert got.find(CARB + "received") is None
    c = laptop.expect(lambda e: is_carbon(e, "received", "to phone"))
    assert c.get("from") == "alice@localhost" and c.get("to") == laptop.jid and c.get("type") == "chat"
    inner = inner_of(c, "received")
    assert inner.get("from") == bob.jid and inner.get("to") == phone.jid and inner.get("id") == "r1"
    phone.nothing(any_carbon, wait=0.3)
    tablet.nothing(lambda e: tag(e) == "message", wait=0.1)
    # to the bare JID with equal priorities: all three get the message, nobody a copy
    bob.message("alice@localhost", "to all", type="chat")
    for s in (phone, laptop, tablet):
        s.expect(lambda e: is_message(e, body="to all"))
    for s in (phone, laptop):
        s.nothing(any_carbon, wait=0.2)
    # phone on top: only it gets the message, laptop a copy
    phone.presence(priority=5)
    for s in (phone, laptop, tablet, bob):
        s.drain()
    bob.message("alice@localhost", "to the top", type="chat")
    phone.expect(lambda e: is_message(e, body="to the top"))
    laptop.expect(lambda e: is_carbon(e, "received", "to the top"))
    tablet.nothing(lambda e: tag(e) == "message", wait=0.3)


def test_eligibility(three):
    phone, laptop, tablet, bob = three
    cases = [
        # (extra xml, type, body, copied?)
        ("", None, "normal with body", True),
        ("<request xmlns='urn:xmpp:receipts'/>", "normal", None, True),
        ("<active xmlns='http://jabber.org/protocol/chatstates'/>", "chat", None, True),
        ("<x xmlns='jabber:x:conference' jid='room@conference.example'/>", "normal", None, True),
        ("", "headline", "news", False),
        ("<x xmlns='jabber:x:oob'><url>http://example.org/</url></x>", "normal", None, False),
        ("<private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/>", "chat", "secret", False),
        ("<no-copy xmlns='urn:xmpp:hints'/>", "chat", "no copy", False),
        ("<private xmlns='urn:xmpp:carbons:2'/>", "chat", "private", False),
    ]
    for i, (extra, mtype, body, copied) in enumerate(cases):
        mid = f"e{i}"
        t = f" type='{mtype}'" if mtype else ""
        b = f"<body>{body}</body>" if body else ""
        # received side: bob to phone
        bob.send(f"<message to='{phone.jid}' id='{mid}'{t}>{b}{extra}</message>")
        phone.expect(lambda e: tag(e) == "message" and e.get("id") == mid, what=f"case {i}")
        match = (lambda e: any_carbon(e) and inner_of(e, "received") is not None
                 and inner_of(e, "received").get("id") == mid)
        if copied:
            laptop.expect(match, what=f"received copy of case {i}")
        else:
            laptop.nothing(match, wait=0.3)
        # sent side: phone to bob
        sid = f"s{i}"
        phone.send(f"<message to='bob@localhost' id='{sid}'{t}>{b}{extra}</message>")
        if mtype != "headline":
            bob.expect(lambda e: tag(e) == "message" and e.get("id") == sid, what=f"sent case {i}")
        smatch = (lambda e: any_carbon(e) and inner_of(e, "sent") is not None
                  and inner_of(e, "sent").get("id") == sid)
        if copied:
            laptop.expect(smatch, what=f"sent copy of case {i}")
        else:
            laptop.nothing(smatch, wait=0.3)
    # a private message from a MUC occupant is not copied (§6.1)
    bob.send(f"<message to='{phone.jid}' id='muc-pm' type='chat'><body>pm</body>"
             "<x xmlns='http://jabber.org/protocol/muc#user'/></message>")
    phone.expect(lambda e: tag(e) == "message" and e.get("id") == "muc-pm")
    laptop.nothing(any_carbon, wait=0.3)


def test_disable_and_session_end(three):
    phone, laptop, tablet, bob = three
    enable(laptop, False)
    phone.message("bob@localhost", "after disable", type="chat")
    bob.expect(lambda e: is_message(e, body="after disable"))
    laptop.nothing(any_carbon, wait=0.4)
    bob.message(phone.jid, "in after disable", type="chat")
    phone.expect(lambda e: is_message(e, body="in after disable"))
    laptop.nothing(any_carbon, wait=0.4)
    # a new session with the same resource starts with carbons off
    c2s = phone.c2s
    phone.end()
    phone2 = c2s.online("alice@localhost/phone")
    enable(laptop)
    laptop.message("bob@localhost", "from laptop", type="chat")
    bob.expect(lambda e: is_message(e, body="from laptop"))
    phone2.nothing(any_carbon, wait=0.4)
    # messages between the user's own resources are not copied back to the sender
    enable(phone2)
    laptop.send(f"<message to='{phone2.jid}' type='chat'><body>note to self</body></message>")
    phone2.expect(lambda e: is_message(e, body="note to self") and not any_carbon(e))
    laptop.nothing(any_carbon, wait=0.4)


def test_copies_respect_the_privacy_list_of_the_resource(three):
    phone, laptop, tablet, bob = three
    priv = "jabber:iq:privacy"
    r = laptop.iq(f"<query xmlns='{priv}'><list name='nobob'>"
                  "<item type='jid' value='bob@localhost' action='deny' order='1'><message/></item>"
                  "<item action='allow' order='2'/></list></query>", type="set")
    if r.get("type") == "error" and error_condition(r) == "service-unavailable":
        pytest.skip("privacy lists are not served")
    assert r.get("type") == "result"
    laptop.drain()
    r = laptop.iq(f"<query xmlns='{priv}'><active name='nobob'/></query>", type="set")
    assert r.get("type") == "result"
    # laptop blocks messages from bob: no copy of what bob sends to phone
    bob.message(phone.jid, "blocked for laptop", type="chat")
    phone.expect(lambda e: is_message(e, body="blocked for laptop"))
    laptop.nothing(any_carbon, wait=0.5)
    # phone has no such list: it still gets copies of laptop's conversations with others
    laptop.message("bob@localhost", "laptop to bob", type="chat")
    phone.expect(lambda e: is_carbon(e, "sent", "laptop to bob"))
