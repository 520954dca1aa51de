"""The user directory, jabber:iq:search (XEP-0055) over the users' vCards:
the legacy fields and the data-forms variant, driven through the sm by a
fake c2s in raw XML."""
import pytest

from smclient import C, FakeC2s, error_condition, tag

SEARCH = "jabber:iq:search"
S = "{jabber:iq:search}"
X = "{jabber:x:data}"
DISCO_INFO = "http://jabber.org/protocol/disco#info"

PEOPLE = {
    "juliet": ("Juliet", "Capulet", "JuliC", "juliet@capulet.lit"),
    "tybalt": ("Tybalt", "Capulet", "ty", "tybalt@capulet.lit"),
    "romeo": ("Romeo", "Montague", "romeo", "romeo@montague.lit"),
    "benvolio": ("Benvolio", "Montague", "benny", "Benvolio@Montague.lit"),
}


def vcard(first, last, nick, email):
    return (f"<vCard xmlns='vcard-temp'><FN>{first} {last}</FN><N><FAMILY>{last}</FAMILY><GIVEN>{first}</GIVEN></N>"
            f"<NICKNAME>{nick}</NICKNAME><EMAIL><INTERNET/><USERID>{email}</USERID></EMAIL></vCard>")


def populate(srv, c2s):
    for user, fields in PEOPLE.items():
        srv.add_user(user, "pw")
        s = c2s.session(f"{user}@localhost/x")
        assert s.iq(vcard(*fields), type="set").get("type") == "result"
        s.end()
    srv.add_user("nocard", "pw")


def legacy(sess, **fields):
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    r = sess.iq(f"<query xmlns='{SEARCH}'>{inner}</query>", type="set", to="localhost")
    assert r.get("type") == "result", r
    return {i.get("jid"): i for i in r.find(S + "query").findall(S + "item")}


def form_search(sess, **fields):
    inner = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in fields.items())
    r = sess.iq(f"<query xmlns='{SEARCH}'><x xmlns='jabber:x:data' type='submit'>"
                f"<field type='hidden' var='FORM_TYPE'><value>{SEARCH}</value></field>{inner}</x></query>",
                type="set", to="localhost")
    assert r.get("type") == "result", r
    return r.find(S + "query").find(X + "x")


def features(sess):
    r = sess.iq(f"<query xmlns='{DISCO_INFO}'/>", to="localhost")
    return ({f.get("var") for f in r.iter("{%s}feature" % DISCO_INFO)},
            {(i.get("category"), i.get("type")) for i in r.iter("{%s}identity" % DISCO_INFO)})


@pytest.fixture
def env(server):
    srv = server(c2s=0)
    c2s = FakeC2s(srv)
    populate(srv, c2s)
    me = c2s.online("nocard@localhost/desk")
    yield srv, c2s, me
    c2s.close()


def test_get_returns_fields_and_form(env):
    srv, c2s, me = env
    r = me.iq(f"<query xmlns='{SEARCH}'/>", to="localhost")
    assert r.get("type") == "result" and r.get("from") == "localhost"
    q = r.find(S + "query")
    assert q.findtext(S + "instructions").strip()
    for f in ("first", "last", "nick", "email"):
        el = q.find(S + f)
        assert el is not None and not (el.text or "").strip() and len(el) == 0
    x = q.find(X + "x")
    assert x.get("type") == "form"
    fields = {f.get("var"): f for f in x.findall(X + "field")}
    assert fields["FORM_TYPE"].get("type") == "hidden"
    assert fields["FORM_TYPE"].findtext(X + "value") == SEARCH
    for f in ("first", "last", "nick", "email"):
        assert fields[f].get("type") == "text-single" and fields[f].get("label")


def test_legacy_search_case_insensitive_prefix(env):
    srv, c2s, me = env
    items = legacy(me, last="capulet")
    assert set(items) == {"juliet@localhost", "tybalt@localhost"}
    j = items["juliet@localhost"]
    assert [tag(e) for e in j] == ["first", "last", "nick", "email"]
    assert (j.findtext(S + "first"), j.findtext(S + "last"), j.findtext(S + "nick"),
            j.findtext(S + "email")) == PEOPLE["juliet"]
    # a prefix, whatever the case; not a substring
    assert set(legacy(me, last="MONT")) == {"romeo@localhost", "benvolio@localhost"}
    assert legacy(me, last="pulet") == {}
    assert set(legacy(me, email="benvolio@")) == {"benvolio@localhost"}
    assert set(legacy(me, nick="jul")) == {"juliet@localhost"}
    # all given fields must match
    assert set(legacy(me, first="t", last="cap")) == {"tybalt@localhost"}
    assert legacy(me, first="romeo", last="capulet") == {}
    # characters LIKE would treat specially are plain text here
    assert legacy(me, first="%") == {} and legacy(me, first="_") == {}


def test_no_match_gives_empty_query(env):
    srv, c2s, me = env
    r = me.iq(f"<query xmlns='{SEARCH}'><first>Mercutio</first></query>", type="set", to="localhost")
    assert r.get("type") == "result"
    q = r.find(S + "query")
    assert q is not None and len(q) == 0


def test_seed_example_with_key(env):
    """Seed 000 §6.13: the set carries a <key/>; it is accepted (and ignored)."""
    srv, c2s, me = env
    me.send("<iq type='set' id='1002' to='localhost'><query xmlns='jabber:iq:search'><last>Capulet</last>"
            "<key>11b830e604215c3a2a24652c69fd4efa2a7a5746</key></query></iq>")
    r = me.expect(lambda e: e.get("id") == "1002")
    assert r.get("type") == "result"
    assert {i.get("jid") for i in r.iter(S + "item")} == {"juliet@localhost", "tybalt@localhost"}


def test_empty_search_refused(env):
    srv, c2s, me = env
    for inner in ("", "<first/>", "<first></first><last/>"):
        r = me.iq(f"<query xmlns='{SEARCH}'>{inner}</query>", type="set", to="localhost")
        assert r.get("type") == "error" and error_condition(r) == "not-acceptable"
        assert r.find(C + "error").get("code") == "406"


def test_data_form_search(env):
    srv, c2s, me = env
    x = form_search(me, last="Montague")
    assert x.get("type") == "result"
    ft = [f for f in x.findall(X + "field") if f.get("var") == "FORM_TYPE"]
    assert ft and ft[0].findtext(X + "value") == SEARCH
    reported = [f.get("var") for f in x.find(X + "reported").findall(X + "field")]
    assert set(reported) == {"jid", "first", "last", "nick", "email"}
    rows = []
    for item in x.findall(X + "item"):
        rows.append({f.get("var"): f.findtext(X + "value") for f in item.findall(X + "field")})
    assert sorted(r["jid"] for r in rows) == ["benvolio@localhost", "romeo@localhost"]
    romeo = [r for r in rows if r["jid"] == "romeo@localhost"][0]
    assert (romeo["first"], romeo["last"], romeo["nick"], romeo["email"]) == PEOPLE["romeo"]
    # a form of another FORM_TYPE is refused
    r = me.iq(f"<query xmlns='{SEARCH}'><x xmlns='jabber:x:data' type='submit'>"
              "<field var='FORM_TYPE'><value>urn:other</value></field>"
              "<field var='last'><value>x</value></field></x></query>", type="set", to="localhost")
    assert error_condition(r) == "bad-request"


def test_result_limit(server):
    srv = server(c2s=0, config={"sm": {"modules/search/max-results": "2"}})
    c2s = FakeC2s(srv)
    try:
        populate(srv, c2s)
        me = c2s.online("nocard@localhost/desk")
        assert set(legacy(me, last="m")) == {"benvolio@localhost", "romeo@localhost"}
        srv.add_user("tristan", "pw")
        s = c2s.session("tristan@localhost/x")
        assert s.iq(vcard("Tristan", "Capulet", "tris", "t@capulet.lit"), type="set").get("type") == "result"
        # three Capulets now: cut at two, in the order of their JIDs
        r = me.iq(f"<query xmlns='{SEARCH}'><last>capulet</last></query>", type="set", to="localhost")
        assert [i.get("jid") for i in r.find(S + "query")] == ["juliet@localhost", "tristan@localhost"]
        x = form_search(me, last="capulet")
        assert len(x.findall(X + "item")) == 2
    finally:
        c2s.close()


def test_disco_feature_and_identity(env):
    srv, c2s, me = env
    feats, ids = features(me)
    assert SEARCH in feats
    assert ("directory", "user") in ids and ("server", "im") in ids


def test_module_off(server):
    srv = server(c2s=0, config={"sm": {"modules/search/enabled": "false"}})
    srv.add_user("alice", "pw")
    c2s = FakeC2s(srv)
    try:
        a = c2s.online("alice@localhost/x")
        feats, ids = features(a)
        assert SEARCH not in feats and ("directory", "user") not in ids
        r = a.iq(f"<query xmlns='{SEARCH}'/>", to="localhost")
        assert r.get("type") == "error" and error_condition(r) == "service-unavailable"
    finally:
        c2s.close()
