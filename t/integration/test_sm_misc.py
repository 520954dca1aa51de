"""The server's small services, driven through the sm by a fake c2s:
last activity (XEP-0012), software version (XEP-0092), entity time
(XEP-0202 and the legacy XEP-0090), ping (XEP-0199), their disco features,
and the pass-through of the old jabber:x:* extensions in messages and
presence, online and through offline storage."""
import calendar
import re
import time
import xml.etree.ElementTree as ET

import pytest

from smclient import C, FakeC2s, error_condition, is_message, is_presence, tag

NS_LAST = "jabber:iq:last"
NS_VERSION = "jabber:iq:version"
NS_TIME = "urn:xmpp:time"
NS_IQ_TIME = "jabber:iq:time"
NS_PING = "urn:xmpp:ping"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def befriend(a, b):
    """Mutual subscription (both)."""
    for x, y in ((a, b), (b, a)):
        x.presence(to=y.bare, type="subscribe")
        y.expect(lambda e: is_presence(e, x.bare, "subscribe"))
        y.presence(to=x.bare, type="subscribed")
        x.expect(lambda e: is_presence(e, y.bare) and e.get("from") == y.jid, what="presence after approval")
    a.drain()
    b.drain()


def features(s, to):
    r = s.iq(f"<query xmlns='{NS_DISCO_INFO}'/>", to=to)
    assert r.get("type") == "result"
    return {f.get("var") for f in r.iter("{%s}feature" % NS_DISCO_INFO)}


def meson_version():
    top = open(__file__.rsplit("/t/", 1)[0] + "/meson.build").read()
    return re.search(r"version\s*:\s*'([^']+)'", top).group(1)


@pytest.fixture
def env(server):
    srv = server(c2s=0)
    for u in ("alice", "bob", "carol", "dave"):
        srv.add_user(u, "pw")
    c2s = FakeC2s(srv)
    yield srv, c2s
    c2s.close()


# ---- version, time, ping, uptime ----

def test_server_version(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    r = a.iq(f"<query xmlns='{NS_VERSION}'/>", to="localhost")
    assert r.get("type") == "result" and r.get("from") == "localhost"
    q = r.find("{%s}query" % NS_VERSION)
    assert q.findtext("{%s}name" % NS_VERSION) == "Switchboard"
    assert q.findtext("{%s}version" % NS_VERSION) == meson_version()
    assert q.findtext("{%s}os" % NS_VERSION)            # shown unless hidden
    # a set is not a question
    r = a.iq(f"<query xmlns='{NS_VERSION}'/>", type="set", to="localhost")
    assert r.get("type") == "error" and error_condition(r) == "bad-request"
    # a bare JID is not the server: the server does not answer for the user's software
    r = a.iq(f"<query xmlns='{NS_VERSION}'/>", to="bob@localhost")
    assert r.get("type") == "error" and error_condition(r) == "service-unavailable"


def test_server_time_both_protocols(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    r = a.iq(f"<time xmlns='{NS_TIME}'/>", to="localhost")
    assert r.get("type") == "result"
    t = r.find("{%s}time" % NS_TIME)
    tzo = t.findtext("{%s}tzo" % NS_TIME)
    utc = t.findtext("{%s}utc" % NS_TIME)
    assert re.fullmatch(r"[+-]\d\d:\d\d", tzo), tzo
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc), utc
    stamp = calendar.timegm(time.strptime(utc, "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(stamp - time.time()) < 300
    # legacy jabber:iq:time (XEP-0090): CCYYMMDDThh:mm:ss, tz and display
    r = a.iq(f"<query xmlns='{NS_IQ_TIME}'/>", to="localhost")
    q = r.find("{%s}query" % NS_IQ_TIME)
    old = q.findtext("{%s}utc" % NS_IQ_TIME)
    assert re.fullmatch(r"\d{8}T\d\d:\d\d:\d\d", old), old
    assert abs(calendar.timegm(time.strptime(old, "%Y%m%dT%H:%M:%S")) - time.time()) < 300
    assert q.findtext("{%s}tz" % NS_IQ_TIME)
    assert q.findtext("{%s}display" % NS_IQ_TIME)


def test_ping_server_bare_and_full(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    for to in ("localhost", None, "alice@localhost", "bob@localhost"):
        r = a.iq(f"<ping xmlns='{NS_PING}'/>", to=to)
        assert r.get("type") == "result", (to, ET.tostring(r))
        assert r.find("{%s}ping" % NS_PING) is None
    # a full JID: the client's to answer
    a.send(f"<iq type='get' id='p1' to='{b.jid}'><ping xmlns='{NS_PING}'/></iq>")
    got = b.expect(lambda e: tag(e) == "iq" and e.get("id") == "p1")
    assert got.get("from") == a.jid
    b.send(f"<iq type='result' id='p1' to='{a.jid}'/>")
    pong = a.expect(lambda e: tag(e) == "iq" and e.get("id") == "p1")
    assert pong.get("type") == "result" and pong.get("from") == b.jid
    # no such resource: service-unavailable from that full JID (XEP-0199 §9)
    r = a.iq(f"<ping xmlns='{NS_PING}'/>", to="bob@localhost/nowhere")
    assert r.get("type") == "error" and error_condition(r) == "service-unavailable"
    assert r.get("from") == "bob@localhost/nowhere"


def test_server_uptime(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    r = a.iq(f"<query xmlns='{NS_LAST}'/>", to="localhost")
    assert r.get("type") == "result"
    q = r.find("{%s}query" % NS_LAST)
    first = int(q.get("seconds"))
    assert first >= 0 and not (q.text or "").strip()
    time.sleep(1.2)
    r = a.iq(f"<query xmlns='{NS_LAST}'/>", to="localhost")
    assert int(r.find("{%s}query" % NS_LAST).get("seconds")) >= first + 1


def test_disco_lists_the_features(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    server_f = features(a, "localhost")
    for f in (NS_LAST, NS_VERSION, NS_TIME, NS_IQ_TIME, NS_PING, NS_CARBONS):
        assert f in server_f, f
    account_f = features(a, "alice@localhost")
    for f in (NS_LAST, NS_CARBONS, NS_PING):
        assert f in account_f, f


def test_modules_off_are_not_listed_and_not_served(server):
    off = {f"modules/{m}/enabled": "false" for m in ("last", "version", "time", "ping", "carbons")}
    srv = server(c2s=0, config={"sm": off})
    srv.add_user("alice", "pw")
    c2s = FakeC2s(srv)
    try:
        a = c2s.online("alice@localhost/phone")
        server_f = features(a, "localhost") | features(a, "alice@localhost")
        for f in (NS_LAST, NS_VERSION, NS_TIME, NS_IQ_TIME, NS_PING, NS_CARBONS):
            assert f not in server_f, f
        for payload in (f"<query xmlns='{NS_VERSION}'/>", f"<time xmlns='{NS_TIME}'/>",
                        f"<query xmlns='{NS_LAST}'/>", f"<ping xmlns='{NS_PING}'/>"):
            r = a.iq(payload, to="localhost")
            assert r.get("type") == "error" and error_condition(r) == "service-unavailable", payload
        r = a.iq(f"<enable xmlns='{NS_CARBONS}'/>", type="set")
        assert r.get("type") == "error" and error_condition(r) == "service-unavailable"
    finally:
        c2s.close()


def test_hidden_os_and_timezone(server):
    srv = server(c2s=0, config={"sm": {"modules/version/hide-os": "true", "modules/time/hide-timezone": "true"}})
    srv.add_user("alice", "pw")
    c2s = FakeC2s(srv)
    try:
        a = c2s.online("alice@localhost/phone")
        r = a.iq(f"<query xmlns='{NS_VERSION}'/>", to="localhost")
        q = r.find("{%s}query" % NS_VERSION)
        assert q.findtext("{%s}name" % NS_VERSION) == "Switchboard"
        assert q.find("{%s}os" % NS_VERSION) is None
        r = a.iq(f"<time xmlns='{NS_TIME}'/>", to="localhost")
        assert r.find("{%s}time/{%s}tzo" % (NS_TIME, NS_TIME)).text == "+00:00"
        r = a.iq(f"<query xmlns='{NS_IQ_TIME}'/>", to="localhost")
        assert r.find("{%s}query/{%s}tz" % (NS_IQ_TIME, NS_IQ_TIME)).text == "UTC"
    finally:
        c2s.close()


# ---- last activity of accounts ----

def last_of(s, to):
    r = s.iq(f"<query xmlns='{NS_LAST}'/>", to=to)
    if r.get("type") != "result":
        return error_condition(r), None
    q = r.find("{%s}query" % NS_LAST)
    return int(q.get("seconds")), (q.text or "")


def test_last_activity_of_an_offline_contact(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    befriend(a, b)
    c = c2s.online("carol@localhost/x")
    # online: 0 seconds, no text (§3)
    assert last_of(a, "bob@localhost") == (0, "")
    # bob says goodbye with a status, then leaves
    b.presence(type="unavailable", status="Heading Home")
    a.expect(lambda e: is_presence(e, "bob@localhost", "unavailable"))
    b.end()
    time.sleep(1.2)
    secs, text = last_of(a, "bob@localhost")
    assert secs >= 1 and text == "Heading Home"
    # the user may ask about itself; strangers may not (forbidden, §3)
    assert last_of(c, "bob@localhost") == ("forbidden", None)
    # someone who never logged out: nothing to tell
    assert last_of(a, "dave@localhost") == ("forbidden", None)   # not subscribed either
    d = c2s.online("dave@localhost/x")
    assert last_of(d, "dave@localhost") == (0, "")
    d.end()
    # an account that does not exist
    r = a.iq(f"<query xmlns='{NS_LAST}'/>", to="ghost@localhost")
    assert r.get("type") == "error" and error_condition(r) == "service-unavailable"
    # kept in the database: the sm restarts and still knows
    srv.restart("sm")
    c2s.close()
    c2s2 = FakeC2s(srv, name="c2s-test2")
    try:
        a2 = c2s2.online("alice@localhost/again")
        secs, text = last_of(a2, "bob@localhost")
        assert secs >= 1 and text == "Heading Home"
        # a logout without a status clears the old text
        b2 = c2s2.online("bob@localhost/desk")
        b2.end()
        a2.expect(lambda e: is_presence(e, "bob@localhost", "unavailable"))
        secs, text = last_of(a2, "bob@localhost")
        assert secs >= 0 and text == ""
    finally:
        c2s2.close()


def test_last_activity_needs_a_subscription_and_a_record(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    # alice subscribes to bob (alice: to, bob: from)
    a.presence(to="bob@localhost", type="subscribe")
    b.expect(lambda e: is_presence(e, "alice@localhost", "subscribe"))
    b.presence(to="alice@localhost", type="subscribed")
    a.expect(lambda e: is_presence(e, "bob@localhost") and e.get("from") == b.jid)
    assert last_of(a, "bob@localhost") == (0, "")
    # bob is not subscribed to alice: he may not know when she left
    r = b.iq(f"<query xmlns='{NS_LAST}'/>", to="alice@localhost")
    assert r.get("type") == "error" and error_condition(r) == "forbidden"
    # bob leaves; with his record gone (as for an account that never logged
    # out), there is nothing to tell
    b.end()
    a.expect(lambda e: is_presence(e, "bob@localhost", "unavailable"))
    assert last_of(a, "bob@localhost")[0] >= 0
    srv.pg.psql("DELETE FROM last_activity", db=srv.dbname)
    assert last_of(a, "bob@localhost") == ("service-unavailable", None)


def test_last_activity_to_a_full_jid(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    befriend(a, b)
    c = c2s.online("carol@localhost/x")
    # a subscriber's query goes to the client, which answers with its idle time
    a.send(f"<iq type='get' id='l1' to='{b.jid}'><query xmlns='{NS_LAST}'/></iq>")
    got = b.expect(lambda e: tag(e) == "iq" and e.get("id") == "l1")
    assert got.find("{%s}query" % NS_LAST) is not None
    b.send(f"<iq type='result' id='l1' to='{a.jid}'><query xmlns='{NS_LAST}' seconds='123'/></iq>")
    ans = a.expect(lambda e: tag(e) == "iq" and e.get("id") == "l1")
    assert ans.find("{%s}query" % NS_LAST).get("seconds") == "123"
    # a stranger's is refused by the server and never reaches the client (§4)
    c.send(f"<iq type='get' id='l2' to='{b.jid}'><query xmlns='{NS_LAST}'/></iq>")
    err = c.expect(lambda e: tag(e) == "iq" and e.get("id") == "l2")
    assert err.get("type") == "error" and error_condition(err) == "forbidden"
    b.nothing(lambda e: tag(e) == "iq" and e.get("id") == "l2")


# ---- pass-through of the jabber:x:* extensions ----

EXTENSIONS = {
    "oob": "<x xmlns='jabber:x:oob'><url>http://denmark.example/act4/letter-1.html</url>"
           "<desc>There&apos;s a letter for you sir</desc></x>",
    "roster": "<x xmlns='jabber:x:roster'><item jid='claudius@denmark.example' name='King'>"
              "<group>Royalty</group></item><item jid='horatio@denmark.example' name='Horatio'>"
              "<group>Friends</group></item><item jid='fortinbras@norway.example' name='Prince Fortinbras'/></x>",
    "encrypted": "<x xmlns='jabber:x:encrypted'>\nhQEOA7ucqu53AhlPEAP/ZbU6oPnRAbIcUxMK1XRVnkgZ/Agtq1tcTQuEZxbpZLl4\n"
                 "C/4psQGLgBU5h5Y3/khxtJTPXKn1izyc+DRZ8hqn2p4mwC8ioKTBJ6P6dfEpQEyt\n=fijN\n</x>",
    "signed": "<x xmlns='jabber:x:signed'>\niD8DBQA6kasv0xpc2/POfPkRAnz0AJ9UEYYWWSReddIKk3AYMfTFtqQDJwCf\n</x>",
    "conference": "<x xmlns='jabber:x:conference' jid='balcony@conference.capulet.example'/>",
    "envelope": "<x xmlns='jabber:x:envelope'><to jid='romeo@heaven.example'>Romeo</to>"
                "<cc jid='mercutio@heaven.example'/><replyto jid='juliet@capulet.example'/>"
                "<forwardedby jid='root@heaven.example'>God &amp; co</forwardedby></x>",
    "autoupdate": "<x xmlns='jabber:x:autoupdate'>A new version of WinJab\nis available, "
                  "see http://winjab.example/</x>",
}


def same_tree(a, b):
    """Element a equals b: names, attributes, text and children, whitespace included."""
    if a.tag != b.tag or a.attrib != b.attrib or (a.text or "") != (b.text or "") or len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if (x.tail or "") != (y.tail or "") or not same_tree(x, y):
            return False
    return True


def ext_of(msg, name):
    want = ET.fromstring(EXTENSIONS[name])
    found = [c for c in msg if c.tag == want.tag]
    assert len(found) == 1, ET.tostring(msg)
    return found[0], want


def test_extensions_pass_through_online(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    for name, x in EXTENSIONS.items():
        b.send(f"<message to='alice@localhost' type='chat' id='x-{name}'><body>about {name}</body>{x}</message>")
        got = a.expect(lambda e: tag(e) == "message" and e.get("id") == f"x-{name}", what=name)
        have, want = ext_of(got, name)
        assert same_tree(have, want), (name, ET.tostring(have))
        assert got.findtext(C + "body") == f"about {name}"
    # to a full JID, and a message with all of them at once
    allx = "".join(EXTENSIONS.values())
    b.send(f"<message to='{a.jid}' id='x-all'><body>all</body>{allx}</message>")
    got = a.expect(lambda e: tag(e) == "message" and e.get("id") == "x-all")
    for name in EXTENSIONS:
        have, want = ext_of(got, name)
        assert same_tree(have, want), name


def test_extensions_pass_through_offline(env):
    srv, c2s = env
    b = c2s.online("bob@localhost/desk")
    for name, x in EXTENSIONS.items():
        b.send(f"<message to='carol@localhost' id='o-{name}'><body>stored {name}</body>{x}</message>")
    # an extension without a body is still worth storing
    b.send(f"<message to='carol@localhost' id='o-bare-oob'>{EXTENSIONS['oob']}</message>")
    b.nothing(lambda e: tag(e) == "message", wait=0.5)
    c = c2s.session("carol@localhost/x")
    c.roster()
    c.presence()
    for name in EXTENSIONS:
        got = c.expect(lambda e: tag(e) == "message" and e.get("id") == f"o-{name}", what=f"offline {name}")
        have, want = ext_of(got, name)
        assert same_tree(have, want), (name, ET.tostring(have))
        assert got.findtext(C + "body") == f"stored {name}"
        assert got.find("{urn:xmpp:delay}delay") is not None
    got = c.expect(lambda e: tag(e) == "message" and e.get("id") == "o-bare-oob")
    have, want = ext_of(got, "oob")
    assert same_tree(have, want)


def test_signed_presence_pass_through(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    befriend(a, b)
    c = c2s.online("carol@localhost/x")
    signed = EXTENSIONS["signed"]
    # broadcast to a subscriber
    b.send(f"<presence><show>away</show><status>be back later</status>{signed}</presence>")
    got = a.expect(lambda e: is_presence(e, "bob@localhost") and e.find(C + "status") is not None
                   and e.findtext(C + "status") == "be back later")
    have, want = ext_of(got, "signed")
    assert same_tree(have, want)
    # directed presence
    b.send(f"<presence to='{c.jid}'><status>hello carol</status>{signed}</presence>")
    got = c.expect(lambda e: is_presence(e, "bob@localhost") and e.findtext(C + "status") == "hello carol")
    have, want = ext_of(got, "signed")
    assert same_tree(have, want)
    # the probe answer on a new login carries it too
    a2 = c2s.online("alice@localhost/laptop")
    got = a2.expect(lambda e: is_presence(e, "bob@localhost") and e.get("from") == b.jid
                    and e.findtext(C + "status") == "be back later", what="bob's presence, probed")
    have, want = ext_of(got, "signed")
    assert same_tree(have, want)
