"""Private XML storage, jabber:iq:private (XEP-0049), driven through the sm
by a fake c2s in raw XML."""
import pytest

from smclient import C, FakeC2s, error_condition

PRIV = "jabber:iq:private"
Q = "{jabber:iq:private}query"
DISCO_INFO = "http://jabber.org/protocol/disco#info"


def q(inner=""):
    return f"<query xmlns='{PRIV}'>{inner}</query>"


def stored(sess, inner):
    r = sess.iq(q(inner))
    assert r.get("type") == "result", r
    return list(r.find(Q))


def features(sess, to):
    r = sess.iq(f"<query xmlns='{DISCO_INFO}'/>", to=to)
    return {f.get("var") for f in r.iter("{%s}feature" % DISCO_INFO)}


@pytest.fixture
def env(server):
    srv = server(c2s=0)
    for u in ("alice", "bob"):
        srv.add_user(u, "pw")
    c2s = FakeC2s(srv)
    yield srv, c2s
    c2s.close()


def test_set_and_get_by_namespace(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    # nothing stored: the requested element comes back empty
    got = stored(a, "<exodus xmlns='exodus:prefs'/>")
    assert len(got) == 1 and got[0].tag == "{exodus:prefs}exodus" and len(got[0]) == 0
    # XEP-0049 example 1 and 2
    a.send("<iq type='set' id='1001'><query xmlns='jabber:iq:private'>"
           "<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus></query></iq>")
    r = a.expect(lambda e: e.get("id") == "1001")
    assert r.get("type") == "result"
    got = stored(a, "<exodus xmlns='exodus:prefs'/>")
    assert len(got) == 1 and got[0].findtext("{exodus:prefs}defaultnick") == "Hamlet"
    # another session of the same user sees it; a later set replaces it
    a2 = c2s.online("alice@localhost/laptop")
    r = a2.iq(q("<exodus xmlns='exodus:prefs'><defaultnick>Ophelia</defaultnick></exodus>"), type="set")
    assert r.get("type") == "result"
    got = stored(a, "<exodus xmlns='exodus:prefs'/>")
    assert got[0].findtext("{exodus:prefs}defaultnick") == "Ophelia"
    # to the own bare JID works too
    r = a.iq(q("<exodus xmlns='exodus:prefs'/>"), to="alice@localhost")
    assert r.get("type") == "result"
    assert r.find(Q)[0].findtext("{exodus:prefs}defaultnick") == "Ophelia"
    # another user's data is separate
    b = c2s.online("bob@localhost/desk")
    got = stored(b, "<exodus xmlns='exodus:prefs'/>")
    assert len(got[0]) == 0


def test_set_with_several_children_stores_each(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    r = a.iq(q("<storage xmlns='storage:bookmarks'><conference jid='room@muc.localhost' autojoin='true'"
               " name='Room'><nick>al</nick></conference></storage>"
               "<prefs xmlns='x:prefs'><a>1</a></prefs><prefs xmlns='x:prefs'><b>2</b></prefs>"), type="set")
    assert r.get("type") == "result"
    got = stored(a, "<storage xmlns='storage:bookmarks'/>")
    assert len(got) == 1
    conf = got[0].find("{storage:bookmarks}conference")
    assert conf.get("jid") == "room@muc.localhost" and conf.findtext("{storage:bookmarks}nick") == "al"
    # two elements of one namespace are kept together (XEP-0049 §2.3)
    got = stored(a, "<prefs xmlns='x:prefs'/>")
    assert [e.tag for e in got] == ["{x:prefs}prefs", "{x:prefs}prefs"]
    assert got[0].findtext("{x:prefs}a") == "1" and got[1].findtext("{x:prefs}b") == "2"


@pytest.mark.parametrize("ns", ["jabber:iq:roster", "jabber:x:data", "vcard-temp", "http://jabber.org/protocol/x"])
def test_reserved_namespaces_refused(env, ns):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    for type in ("set", "get"):
        r = a.iq(q(f"<foo xmlns='{ns}'><bar/></foo>"), type=type)
        assert r.get("type") == "error" and error_condition(r) == "not-acceptable"
        assert r.find(C + "error").get("code") == "406"
    # a child without its own namespace is in jabber:iq:private: refused too
    r = a.iq(f"<query xmlns='{PRIV}'><foo/></query>", type="set")
    assert error_condition(r) == "not-acceptable"


def test_query_without_child_refused(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    for type in ("set", "get"):
        r = a.iq(q(), type=type)
        assert r.get("type") == "error" and error_condition(r) == "not-acceptable"
        assert r.find(C + "error").get("code") == "406"


def test_get_of_two_namespaces_refused(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    r = a.iq(q("<a xmlns='x:a'/><b xmlns='x:b'/>"))
    assert r.get("type") == "error" and error_condition(r) == "bad-request"


def test_other_users_are_forbidden(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    assert a.iq(q("<secret xmlns='x:secret'>s3cr3t</secret>"), type="set").get("type") == "result"
    r = b.iq(q("<secret xmlns='x:secret'/>"), to="alice@localhost")
    assert r.get("type") == "error" and error_condition(r) == "forbidden"
    assert r.find(C + "error").get("code") == "403"
    assert "s3cr3t" not in str(r.itertext())
    r = b.iq(q("<secret xmlns='x:secret'>mine</secret>"), type="set", to="alice@localhost")
    assert error_condition(r) == "forbidden"
    got = stored(a, "<secret xmlns='x:secret'/>")
    assert got[0].text == "s3cr3t"


def test_limits(server):
    srv = server(c2s=0, config={"sm": {"modules/private/max-bytes": "500",
                                       "modules/private/max-namespaces": "2"}})
    srv.add_user("alice", "pw")
    c2s = FakeC2s(srv)
    try:
        a = c2s.online("alice@localhost/phone")
        r = a.iq(q("<big xmlns='x:big'>" + "x" * 600 + "</big>"), type="set")
        assert r.get("type") == "error" and error_condition(r) == "not-acceptable"
        assert len(stored(a, "<big xmlns='x:big'/>")[0]) == 0
        assert a.iq(q("<a xmlns='x:a'>1</a><b xmlns='x:b'>1</b>"), type="set").get("type") == "result"
        # a third namespace is too many, and nothing of that set is stored
        r = a.iq(q("<a xmlns='x:a'>2</a><c xmlns='x:c'>2</c>"), type="set")
        assert r.get("type") == "error" and error_condition(r) == "not-acceptable"
        assert stored(a, "<a xmlns='x:a'/>")[0].text == "1"
        assert stored(a, "<c xmlns='x:c'/>")[0].text is None
        # replacing the namespaces already held is fine
        assert a.iq(q("<a xmlns='x:a'>3</a><b xmlns='x:b'>3</b>"), type="set").get("type") == "result"
        assert stored(a, "<b xmlns='x:b'/>")[0].text == "3"
    finally:
        c2s.close()


def test_disco_and_module_off(env, server):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    assert PRIV in features(a, "localhost") and PRIV in features(a, "alice@localhost")
    srv2 = server(c2s=0, config={"sm": {"modules/private/enabled": "false"}})
    srv2.add_user("alice", "pw")
    c2 = FakeC2s(srv2, name="c2s-test2")
    try:
        a = c2.online("alice@localhost/phone")
        assert PRIV not in features(a, "localhost") and PRIV not in features(a, "alice@localhost")
        r = a.iq(q("<a xmlns='x:a'/>"), type="set")
        assert error_condition(r) == "service-unavailable"
    finally:
        c2.close()
