"""vcard-temp (XEP-0054) and vCard-based avatars (XEP-0153), driven through
the sm by a fake c2s in raw XML, and once with slixmpp through the real c2s."""
import base64
import hashlib

import pytest

from smclient import C, FakeC2s, error_condition, is_presence, tag

VC = "vcard-temp"
V = "{vcard-temp}"
UPDATE = "{vcard-temp:x:update}"
DISCO_INFO = "http://jabber.org/protocol/disco#info"

PHOTO = bytes(range(256)) * 3
PHOTO_B64 = base64.b64encode(PHOTO).decode()
PHOTO_SHA1 = hashlib.sha1(PHOTO).hexdigest()


def vcard(fn="Juliet Capulet", given="Juliet", family="Capulet", nick="JuliC", email="juliet@capulet.lit",
          photo=None, extra=""):
    p = ""
    if photo is not None:
        # with line breaks, as clients write base64 (XEP-0153: whitespace is ignored)
        lines = "\n".join(photo[i:i + 76] for i in range(0, len(photo), 76))
        p = f"<PHOTO><TYPE>image/png</TYPE><BINVAL>\n{lines}\n</BINVAL></PHOTO>"
    return (f"<vCard xmlns='{VC}'><FN>{fn}</FN><N><FAMILY>{family}</FAMILY><GIVEN>{given}</GIVEN><MIDDLE/></N>"
            f"<NICKNAME>{nick}</NICKNAME><EMAIL><INTERNET/><PREF/><USERID>{email}</USERID></EMAIL>{p}{extra}</vCard>")


def features(sess, to):
    r = sess.iq(f"<query xmlns='{DISCO_INFO}'/>", to=to)
    assert r.get("type") == "result"
    return {f.get("var") for f in r.iter("{%s}feature" % DISCO_INFO)}


@pytest.fixture
def env(server):
    srv = server(c2s=0)
    for u in ("alice", "bob"):
        srv.add_user(u, "pw")
    c2s = FakeC2s(srv)
    yield srv, c2s
    c2s.close()


def test_set_get_own_and_other_users_vcard(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    # no vCard yet: an empty one for the owner, service-unavailable for others
    r = a.iq(f"<vCard xmlns='{VC}'/>")
    assert r.get("type") == "result"
    got = r.find(V + "vCard")
    assert got is not None and len(got) == 0
    r = b.iq(f"<vCard xmlns='{VC}'/>", to="alice@localhost")
    assert r.get("type") == "error" and error_condition(r) == "service-unavailable"
    assert r.find(C + "error").get("code") == "503"

    r = a.iq(vcard(extra="<DESC>Wherefore art thou</DESC>"), type="set")
    assert r.get("type") == "result"
    r = a.iq(f"<vCard xmlns='{VC}'/>")
    got = r.find(V + "vCard")
    assert got.findtext(V + "FN") == "Juliet Capulet"
    assert got.findtext(V + "N/" + V + "GIVEN") == "Juliet"
    assert got.findtext(V + "DESC") == "Wherefore art thou"
    # to the own bare JID is the same
    r = a.iq(f"<vCard xmlns='{VC}'/>", to="alice@localhost")
    assert r.find(V + "vCard").findtext(V + "NICKNAME") == "JuliC"
    # another user asks: the server answers on alice's behalf, alice sees nothing
    r = b.iq(f"<vCard xmlns='{VC}'/>", to="alice@localhost")
    assert r.get("type") == "result" and r.get("from") == "alice@localhost"
    assert r.find(V + "vCard").findtext(V + "EMAIL/" + V + "USERID") == "juliet@capulet.lit"
    a.nothing(lambda e: tag(e) == "iq")
    # replacing it entirely
    r = a.iq(vcard(fn="J. C.", nick="jc"), type="set")
    assert r.get("type") == "result"
    r = b.iq(f"<vCard xmlns='{VC}'/>", to="alice@localhost")
    got = r.find(V + "vCard")
    assert got.findtext(V + "NICKNAME") == "jc" and got.find(V + "DESC") is None


def test_set_on_another_users_vcard_is_forbidden(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    assert a.iq(vcard(), type="set").get("type") == "result"
    r = b.iq(vcard(fn="Mallory"), type="set", to="alice@localhost")
    assert r.get("type") == "error" and error_condition(r) == "forbidden"
    assert r.find(C + "error").get("code") == "403"
    r = b.iq(f"<vCard xmlns='{VC}'/>", to="alice@localhost")
    assert r.find(V + "vCard").findtext(V + "FN") == "Juliet Capulet"


def test_no_such_user_gives_the_same_error_as_no_vcard(env):
    srv, c2s = env
    b = c2s.online("bob@localhost/desk")
    r = b.iq(f"<vCard xmlns='{VC}'/>", to="nobody@localhost")
    assert r.get("type") == "error" and error_condition(r) == "service-unavailable"


def test_empty_vcard_removes_it(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    assert a.iq(vcard(), type="set").get("type") == "result"
    assert a.iq(f"<vCard xmlns='{VC}'/>", type="set").get("type") == "result"
    r = b.iq(f"<vCard xmlns='{VC}'/>", to="alice@localhost")
    assert error_condition(r) == "service-unavailable"
    r = a.iq(f"<vCard xmlns='{VC}'/>")
    assert r.get("type") == "result" and len(r.find(V + "vCard")) == 0


def test_seed_examples(env):
    """Seed 000 §6.26: get with no 'to'; a vCard with version='3.0' comes back as stored."""
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    r = a.iq(f"<vCard version='3.0' xmlns='{VC}'><FN>Juliet</FN></vCard>", type="set")
    assert r.get("type") == "result"
    a.send("<iq type='get' id='seed1'><vCard xmlns='vcard-temp'/></iq>")
    r = a.expect(lambda e: tag(e) == "iq" and e.get("id") == "seed1")
    assert r.get("type") == "result"
    got = r.find(V + "vCard")
    assert got.get("version") == "3.0" and got.findtext(V + "FN") == "Juliet"


def test_size_limit(server):
    srv = server(c2s=0, config={"sm": {"modules/vcard/max-bytes": "1000"}})
    srv.add_user("alice", "pw")
    c2s = FakeC2s(srv)
    try:
        a = c2s.online("alice@localhost/phone")
        assert a.iq(vcard(), type="set").get("type") == "result"
        r = a.iq(vcard(fn="Big", extra="<DESC>" + "x" * 1000 + "</DESC>"), type="set")
        assert r.get("type") == "error" and error_condition(r) == "not-acceptable"
        assert r.find(C + "error").get("code") == "406"
        # the stored one is unchanged
        r = a.iq(f"<vCard xmlns='{VC}'/>")
        assert r.find(V + "vCard").findtext(V + "FN") == "Juliet Capulet"
    finally:
        c2s.close()


def photo_of(pres):
    x = pres.find(UPDATE + "x")
    return None if x is None else x.findtext(UPDATE + "photo")


def test_avatar_hash_in_presence(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    # no vCard: presence is left alone
    a.presence(status="plain")
    p = a.expect(lambda e: is_presence(e) and e.get("from") == a.jid)
    assert p.find(UPDATE + "x") is None
    assert a.iq(vcard(photo=PHOTO_B64), type="set").get("type") == "result"
    a.presence(status="with photo")
    p = a.expect(lambda e: is_presence(e) and e.get("from") == a.jid)
    assert photo_of(p) == PHOTO_SHA1
    # directed presence carries it too
    b = c2s.online("bob@localhost/desk")
    a.presence(to="bob@localhost/desk")
    p = b.expect(lambda e: is_presence(e, "alice@localhost"))
    assert photo_of(p) == PHOTO_SHA1
    # a client that says it itself is not overruled
    a.send("<presence><x xmlns='vcard-temp:x:update'/></presence>")
    p = a.expect(lambda e: is_presence(e) and e.get("from") == a.jid)
    xs = p.findall(UPDATE + "x")
    assert len(xs) == 1 and xs[0].find(UPDATE + "photo") is None
    # unavailable presence gets nothing
    a.presence(to="bob@localhost/desk", type="unavailable")
    p = b.expect(lambda e: is_presence(e, "alice@localhost", "unavailable"))
    assert p.find(UPDATE + "x") is None
    # a later session (the hash is loaded from the database at session start)
    a.end()
    a2 = c2s.online("alice@localhost/laptop")
    a2.presence(status="again")
    p = a2.expect(lambda e: is_presence(e) and e.get("from") == a2.jid)
    assert photo_of(p) == PHOTO_SHA1
    # the photo removed: no hash any more
    assert a2.iq(vcard(), type="set").get("type") == "result"
    a2.presence(status="no photo")
    p = a2.expect(lambda e: is_presence(e) and e.get("from") == a2.jid and e.findtext(C + "status") == "no photo")
    assert p.find(UPDATE + "x") is None


def test_vcard_survives_sm_restart(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    assert a.iq(vcard(photo=PHOTO_B64), type="set").get("type") == "result"
    c2s.close()
    srv.restart("sm")
    c2s2 = FakeC2s(srv, name="c2s-test2")
    try:
        b = c2s2.online("bob@localhost/desk")
        r = b.iq(f"<vCard xmlns='{VC}'/>", to="alice@localhost")
        got = r.find(V + "vCard")
        assert got.findtext(V + "FN") == "Juliet Capulet"
        assert base64.b64decode("".join(got.findtext(V + "PHOTO/" + V + "BINVAL").split())) == PHOTO
    finally:
        c2s2.close()


def test_disco_lists_vcard_temp(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    assert "vcard-temp" in features(a, "localhost")
    assert "vcard-temp" in features(a, "alice@localhost")


def test_module_off(server):
    srv = server(c2s=0, config={"sm": {"modules/vcard/enabled": "false"}})
    srv.add_user("alice", "pw")
    c2s = FakeC2s(srv)
    try:
        a = c2s.online("alice@localhost/phone")
        assert "vcard-temp" not in features(a, "localhost")
        assert "vcard-temp" not in features(a, "alice@localhost")
        r = a.iq(vcard(), type="set")
        assert r.get("type") == "error" and error_condition(r) == "service-unavailable"
    finally:
        c2s.close()


def test_slixmpp_vcard_through_c2s(server):
    """A real client (slixmpp's XEP-0054 plugin) through the real c2s."""
    from xmppclient import Client, run

    srv = server()
    for u in ("alice", "bob"):
        srv.add_user(u, "pw")
    port = srv.c2s[0].port

    async def main():
        alice = Client("alice@localhost/home", "pw", port, cafile=srv.cert)
        bob = Client("bob@localhost/work", "pw", port, cafile=srv.cert)
        for c in (alice, bob):
            c.register_plugin("xep_0054")
        await alice.start()
        await bob.start()
        card = alice["xep_0054"].make_vcard()
        card["FN"] = "Alice Liddell"
        card["NICKNAME"] = "alice"
        await alice["xep_0054"].publish_vcard(card, timeout=10)
        got = await bob["xep_0054"].get_vcard("alice@localhost", cached=False, timeout=10)
        assert got["vcard_temp"]["FN"] == "Alice Liddell"
        assert "alice" in got["vcard_temp"]["NICKNAME"]
        for c in (alice, bob):
            await c.stop()

    run(main())
