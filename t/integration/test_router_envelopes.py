"""The router's fast path (router/envelope.c): route envelopes and bare
stanzas from trusted components are forwarded as their bytes without being
parsed into a tree;
everything else still goes through the parser. Each case runs with the fast
path on (the default) and off (limits/raw-envelopes false): the behaviour
must be the same."""
import pytest

from harness import NS_ROUTER, connected, stanza_error, stream_error_condition

COMPONENTS = [
    {"name": "a.example", "secret": "s3cret"},
    {"name": "sm", "secret": "internal", "trusted": True},
    {"name": "s2s", "secret": "internal", "trusted": True},
    {"name": "c2s-*", "secret": "internal", "trusted": True},
]

INNER = ("<message xmlns='jabber:client' from='u@localhost/r' to='v@localhost' type='chat' id='{i}'>"
         "<body>x &amp; &lt;y&gt; {i}</body><thread>t</thread><x xmlns='urn:example' a=\"q'&quot;\"/></message>")


def envelope(i, frm="c2s-1", to="sm"):
    return f"<route xmlns='{NS_ROUTER}' to='{to}' from='{frm}' c2s-id='{i}' sm-id='5'>{INNER.format(i=i)}</route>"


@pytest.fixture(params=["fast", "parsed"])
def pair(request, router):
    limits = {} if request.param == "fast" else {"raw-envelopes": "false"}
    r = router(COMPONENTS, limits=limits)
    sm = connected(r.port, "sm", "internal")
    sm.send(f"<bind xmlns='{NS_ROUTER}' name='localhost'/>")
    assert sm.next_stanza().get("type") == "result"
    c2s = connected(r.port, "c2s-1", "internal")
    while c2s.next(timeout=1) is not None:   # the names already online
        pass
    assert sm.next(timeout=5).get("name") == "c2s-1"   # <online/>
    return r, sm, c2s


def received_ids(sm, n):
    ids = []
    for _ in range(n):
        env = sm.next_stanza()
        assert env is not None and env.tag == f"{{{NS_ROUTER}}}route", env
        ids.append(env.get("c2s-id"))
        msg = env.find("{jabber:client}message")
        assert msg.find("{jabber:client}body").text == f"x & <y> {env.get('c2s-id')}"
        assert msg.find("{urn:example}x").get("a") == "q'\""
    return ids


def test_envelopes_split_anywhere_arrive_whole_in_order_and_byte_for_byte(pair):
    _, sm, c2s = pair
    data = "".join(envelope(i) + ("\n " if i % 3 == 0 else "") for i in range(40))
    # one byte at a time, then in uneven pieces, then all at once
    for i in range(0, 300):
        c2s.send(data[i:i + 1])
    rest = data[300:]
    for k in range(0, len(rest), 97):
        c2s.send(rest[k:k + 97])
    c2s.send(data)
    assert received_ids(sm, 80) == [str(i) for i in range(40)] * 2
    # the original bytes reach the sm, not a re-serialisation
    assert envelope(7).encode() in sm.reader.raw


def test_other_elements_between_envelopes_are_still_handled(pair):
    _, sm, c2s = pair
    # a bind, a bare stanza, and an envelope the router must refuse, between envelopes
    c2s.send(envelope(1) + f"<bind xmlns='{NS_ROUTER}' name='upload.localhost'/>" + envelope(2)
             + "<message from='c2s-1' to='v@localhost' id='bare'/>" + envelope(3, frm="c2s-2") + envelope(4))
    ans = c2s.next_stanza()
    assert ans.tag == f"{{{NS_ROUTER}}}bind" and ans.get("type") == "result"
    err = c2s.next_stanza()   # the foreign 'from' comes back as an error
    assert err.tag == f"{{{NS_ROUTER}}}route" and err.get("type") == "error" and err.get("c2s-id") == "3"
    got = []
    while len(got) < 4:   # skipping the notice of the new name
        el = sm.next_stanza()
        assert el is not None
        if not el.tag.endswith("}online"):
            got.append(el)
    assert [(g.tag.split("}")[1], g.get("c2s-id") or g.get("id")) for g in got] == [
        ("route", "1"), ("route", "2"), ("message", "bare"), ("route", "4")]


def test_envelope_to_an_unknown_name_or_with_entities_takes_the_parser(pair):
    _, sm, c2s = pair
    c2s.send(envelope(1, to="nobody"))
    err = c2s.next_stanza()
    assert err.get("type") == "error" and err.get("c2s-id") == "1"
    # 'to' written with a character reference: still the sm
    c2s.send(envelope(2, to="s&#x6d;"))
    assert received_ids(sm, 1) == ["2"]
    # a prefixed element inside: the parser resolves it
    c2s.send(f"<route xmlns='{NS_ROUTER}' to='sm' from='c2s-1' c2s-id='3'>"
             "<p:message xmlns:p='jabber:client' to='v@localhost'/></route>")
    env = sm.next_stanza()
    assert env.get("c2s-id") == "3" and env.find("{jabber:client}message") is not None


@pytest.mark.parametrize("bad, condition", [
    ("<route xmlns='" + NS_ROUTER + "' to='sm' from='c2s-1'><a></b></route>", "not-well-formed"),
    ("<route xmlns='" + NS_ROUTER + "' to='sm' from='c2s-1'><!-- c --></route>", "restricted-xml"),
    ("<!-- between elements -->", "restricted-xml"),
])
def test_bad_xml_after_envelopes_is_still_a_stream_error(pair, bad, condition):
    _, sm, c2s = pair
    c2s.send(envelope(1))
    assert received_ids(sm, 1) == ["1"]
    c2s.send(bad)
    assert stream_error_condition(c2s.next_stanza()) == condition
    assert c2s.reader.wait_eof()


def test_bare_stanzas_between_sm_and_s2s(pair):
    r, sm, c2s = pair
    # no default route yet: a remote domain is not found
    sm.send("<message from='u@localhost/r' to='x@remote.example' id='r1'><body>1</body></message>")
    err = sm.next_stanza()
    assert err.get("type") == "error" and err.get("id") == "r1"
    assert stanza_error(err)[0] == "remote-server-not-found"
    s2s = connected(r.port, "s2s", "internal")
    s2s.send(f"<bind xmlns='{NS_ROUTER}' name='s2s' default='true'/>")
    while True:
        el = s2s.next_stanza()
        if el.tag.endswith("}bind"):
            assert el.get("type") == "result"
            break
    # the sm's stanzas for other domains go to s2s, byte for byte, split or not
    out = ("<message xmlns='jabber:server' from='u@localhost/r' to='x@remote.example' type='chat' id='r2'>"
           "<body>a &lt; b</body></message>")
    for k in range(0, len(out), 7):
        sm.send(out[k:k + 7])
    sm.send("<iq from='localhost' to='remote.example' type='get' id='r3'><ping xmlns='urn:xmpp:ping'/></iq>")
    got = []
    while len(got) < 2:
        el = s2s.next_stanza()
        if not el.tag.endswith("}online"):
            got.append(el.get("id"))
    assert got == ["r2", "r3"] and out.encode() in s2s.reader.raw
    # and what s2s receives for local users goes to the sm, by domain (nameprep'd)
    s2s.send("<presence from='x@remote.example/y' to='u@LOCALHOST' id='r4'/>")
    el = sm.next_stanza()
    while el.tag.endswith("}online"):
        el = sm.next_stanza()
    assert el.tag.endswith("}presence") and el.get("id") == "r4"
    # a malformed 'to' is still refused
    s2s.send("<message from='x@remote.example' to='a@b@c..' id='r5'/>")
    err = s2s.next_stanza()
    assert err.get("type") == "error" and err.get("id") == "r5"


def test_text_between_elements_is_ignored_as_the_parser_does(pair):
    _, sm, c2s = pair
    c2s.send(envelope(1) + "stray text" + envelope(2))
    c2s.send(envelope(3))
    assert received_ids(sm, 3) == ["1", "2", "3"]


def test_oversized_element_from_a_trusted_component(router):
    r = router(COMPONENTS, limits={"max-stanza-bytes": "4096"})
    sm = connected(r.port, "sm", "internal")
    c2s = connected(r.port, "c2s-1", "internal")
    c2s.send(envelope(1))
    assert received_ids(sm, 1) == ["1"]
    c2s.send(f"<route xmlns='{NS_ROUTER}' to='sm' from='c2s-1'><message xmlns='jabber:client'><body>"
             + "z" * 8000)
    assert stream_error_condition(c2s.next_stanza()) == "policy-violation"


def test_stream_end_after_envelopes_closes_cleanly(pair):
    _, sm, c2s = pair
    c2s.send(envelope(1) + "</stream:stream>")
    assert received_ids(sm, 1) == ["1"]
    assert c2s.reader.wait_eof()
    assert c2s.reader.closed
    assert sm.next(timeout=5).get("name") == "c2s-1"   # <offline/>


# ---- the c2s's side: raw routes (common/component.c, c2s/session.c) ----
# The sm's envelopes to the c2s are delivered without a tree for the plain
# case; the client must get the same stanzas either way, and what the
# c2s tells the sm about them (docs/sessions.md §7) must not change.

@pytest.fixture(params=["raw", "parsed"])
def c2s_server(request, server):
    srv = server(config={"c2s": {"router/raw-routes": "true" if request.param == "raw" else "false"}})
    srv.add_user("alice", "pw-a")
    srv.add_user("bob", "pw-b")
    return srv


def test_c2s_delivers_the_same_stanzas_raw_or_parsed(c2s_server):
    from test_c2s_client import NS_CLIENT, q
    from test_c2s_session import logged_in
    srv = c2s_server
    a = logged_in(srv, "alice", "pw-a", "phone")
    b = logged_in(srv, "bob", "pw-b", "pc")
    a.send("<message to='bob@localhost/pc' type='chat' id='m1' xml:lang='fr'>"
           "<body>x &amp; &lt;y&gt; &#x1F600; \"q\"</body>"
           "<x xmlns='urn:example' a=\"q'&quot;\"><deep><er/></deep></x></message>")
    a.send("<presence to='bob@localhost/pc' id='p1'><status>s &amp; t</status></presence>")
    a.send("<iq to='bob@localhost/pc' type='get' id='i1'><query xmlns='urn:example:q'/></iq>")
    got = {}
    while len(got) < 3:
        el = b.next_stanza()
        assert el is not None, f"only {sorted(got)} arrived"
        if el.get("id") in ("m1", "p1", "i1"):
            got[el.get("id")] = el
    m = got["m1"]
    assert m.tag == q(NS_CLIENT, "message") and m.get("from") == "alice@localhost/phone"
    assert m.get("{http://www.w3.org/XML/1998/namespace}lang") == "fr"
    assert m.find(q(NS_CLIENT, "body")).text == "x & <y> \U0001F600 \"q\""
    x = m.find("{urn:example}x")
    assert x.get("a") == "q'\"" and x.find("{urn:example}deep/{urn:example}er") is not None
    p = got["p1"]
    assert p.tag == q(NS_CLIENT, "presence") and p.find(q(NS_CLIENT, "status")).text == "s & t"
    i = got["i1"]
    assert i.tag == q(NS_CLIENT, "iq") and i.find("{urn:example:q}query") is not None
    # bob answers the iq: it reaches alice the same way
    b.send("<iq to='alice@localhost/phone' type='result' id='i1'/>")
    while True:
        el = a.next_stanza()
        assert el is not None, "iq result not delivered"
        if el.get("id") == "i1":
            break
    assert el.get("type") == "result" and el.get("from") == "bob@localhost/pc"


def test_c2s_reports_what_it_wrote_raw_or_parsed(c2s_server):
    """Without stream management, writing a numbered message is what the c2s
    reports to the sm ('acked'): the sm then forgets its copy, so a message
    written once is not delivered again as offline after the session ends."""
    from test_c2s_client import NS_CLIENT, q
    from test_c2s_session import logged_in, next_message
    srv = c2s_server
    a = logged_in(srv, "alice", "pw-a", "phone")
    b = logged_in(srv, "bob", "pw-b", "pc")
    b.send("<presence/>")
    a.send("<message to='bob@localhost' type='chat' id='once'><body>only once</body></message>")
    m = next_message(b)
    assert m is not None and m.find(q(NS_CLIENT, "body")).text == "only once"
    # a marker after it: once bob has it, the report about 'once' went before
    a.send("<message to='bob@localhost' type='chat' id='marker'><body>marker</body></message>")
    assert next_message(b).get("id") == "marker"
    b.send("</stream:stream>")
    assert b.reader.wait_eof()
    # bob again, with a new stream: nothing comes back as offline
    b2 = logged_in(srv, "bob", "pw-b", "pc2")
    b2.send("<presence/>")
    a.send("<message to='bob@localhost' type='chat' id='after'><body>after</body></message>")
    ids = []
    while "after" not in ids:
        el = next_message(b2)
        assert el is not None, f"got {ids}"
        ids.append(el.get("id"))
    assert ids == ["after"], ids
