"""Federation between two Switchboard "half servers" (router + s2s + a raw
component as the local side), and s2s against raw jabber:server streams."""
import signal
import socket
import time

import pytest

from harness import NS_COMPONENT, NS_STREAMS, StreamReader, stanza_error, stream_error_condition
from prosody import (NS_DB, NS_SERVER, NS_TLS, FakeDns, HalfServer, RawServerStream, SilentListener, dead_port,
                     dialback_key, established, make_ca, make_cert)


@pytest.fixture
def halves(tmp_path, router):
    made = []

    def make(domains, name=None, **kw):
        h = HalfServer(tmp_path, router, domains, name or domains[0], **kw)
        made.append(h)
        return h
    yield make
    problems = [p for p in (h.stop() for h in made) if p]
    assert not problems, "\n".join(problems)


def pair(halves, a_domains=("a.test",), b_domains=("b.test",), a_values=None, b_values=None, start=True):
    a = halves(list(a_domains), "a", values=a_values)
    b = halves(list(b_domains), "b", values=b_values)
    for d in b_domains:
        a.map(d, "127.0.0.1", b.port)
    for d in a_domains:
        b.map(d, "127.0.0.1", a.port)
    if start:
        a.start()
        b.start()
    return a, b


def tag(name):
    return f"{{{NS_COMPONENT}}}{name}"


def test_message_crosses_byte_for_byte(halves):
    a, b = pair(halves)
    msg = ("<message from='alice@a.test/desk' to='bob@b.test' id='m1' type='chat'>"
           "<body>hello &amp; &lt;welcome&gt;</body></message>")
    a.local.send(msg)
    got = b.local.next_stanza(timeout=15)
    assert got is not None, f"nothing arrived\nA:\n{a.log()}\nB:\n{b.log()}"
    assert got.tag == tag("message") and got.get("from") == "alice@a.test/desk" and got.get("to") == "bob@b.test"
    assert got.find(tag("body")).text == "hello & <welcome>"
    # Forwarded as bytes at every hop: router, s2s, s2s, router.
    assert msg.encode() in b.local.reader.raw
    # And back the other way, on the other pair of streams.
    b.local.send("<message from='bob@b.test/phone' to='alice@a.test/desk' id='m2'><body>hi!</body></message>")
    back = a.local.next_stanza(timeout=15)
    assert back is not None and back.get("id") == "m2" and back.find(tag("body")).text == "hi!"


def test_presence_subscription_and_iq_both_ways(halves):
    a, b = pair(halves)
    a.local.send("<presence from='alice@a.test' to='bob@b.test' type='subscribe' id='s1'/>")
    p = b.local.next_stanza(timeout=15)
    assert p is not None and p.tag == tag("presence") and p.get("type") == "subscribe"
    b.local.send("<presence from='bob@b.test' to='alice@a.test' type='subscribed' id='s2'/>")
    p = a.local.next_stanza(timeout=15)
    assert p is not None and p.get("type") == "subscribed" and p.get("from") == "bob@b.test"
    # Presence from bob's resource, then a probe the other way.
    b.local.send("<presence from='bob@b.test/phone' to='alice@a.test'><show>away</show></presence>")
    p = a.local.next_stanza(timeout=15)
    assert p is not None and p.find(tag("show")).text == "away"
    b.local.send("<presence from='bob@b.test' to='alice@a.test' type='subscribe' id='s3'/>")
    assert a.local.next_stanza(timeout=15).get("type") == "subscribe"
    a.local.send("<presence from='alice@a.test' to='bob@b.test' type='subscribed' id='s4'/>")
    assert b.local.next_stanza(timeout=15).get("type") == "subscribed"
    a.local.send("<presence from='alice@a.test' to='bob@b.test' type='probe' id='pr1'/>")
    probe = b.local.next_stanza(timeout=15)
    assert probe is not None and probe.get("type") == "probe" and probe.get("from") == "alice@a.test"
    # iq get and result.
    a.local.send("<iq from='alice@a.test/desk' to='b.test' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>")
    iq = b.local.next_stanza(timeout=15)
    assert iq is not None and iq.get("id") == "v1" and iq.find("{jabber:iq:version}query") is not None
    b.local.send("<iq from='b.test' to='alice@a.test/desk' type='result' id='v1'>"
                 "<query xmlns='jabber:iq:version'><name>test</name></query></iq>")
    res = a.local.next_stanza(timeout=15)
    assert res is not None and res.get("type") == "result" and res.get("id") == "v1"


def test_unreachable_domain_bounces_not_found(halves):
    a = halves(["a.test"], "a", values={"limits/connect-timeout": 5})
    a.map("closed.test", "127.0.0.1", dead_port())
    a.start()
    t0 = time.time()
    a.local.send("<message from='alice@a.test/x' to='nobody@closed.test' id='u1'><body>x</body></message>")
    err = a.local.next_stanza(timeout=10)
    assert err is not None and err.get("type") == "error" and err.get("id") == "u1"
    assert err.get("from") == "nobody@closed.test" and err.get("to") == "alice@a.test/x"
    assert stanza_error(err) == ("remote-server-not-found", "cancel", "404")
    assert time.time() - t0 < 10
    # An error is never bounced.
    a.local.send("<message from='alice@a.test/x' to='nobody@closed.test' type='error' id='u2'/>")
    assert a.local.next_stanza(timeout=2) is None


def test_silent_server_bounces_timeout(halves):
    silent = SilentListener()
    try:
        a = halves(["a.test"], "a", values={"limits/connect-timeout": 2})
        a.map("silent.test", "127.0.0.1", silent.port)
        a.start()
        t0 = time.time()
        a.local.send("<iq from='alice@a.test/x' to='silent.test' type='get' id='t1'><ping xmlns='urn:xmpp:ping'/></iq>")
        err = a.local.next_stanza(timeout=10)
        assert err is not None and err.get("type") == "error" and err.get("id") == "t1"
        assert stanza_error(err) == ("remote-server-timeout", "wait", "504")
        assert time.time() - t0 < 8
    finally:
        silent.close()


def test_queue_is_bounded(halves):
    silent = SilentListener()
    try:
        a = halves(["a.test"], "a", values={"limits/connect-timeout": 3, "limits/queue-max-stanzas": 3})
        a.map("silent.test", "127.0.0.1", silent.port)
        a.start()
        for i in range(5):
            a.local.send(f"<message from='alice@a.test/x' to='x@silent.test' id='q{i}'><body>{i}</body></message>")
        errors = {}
        for _ in range(5):
            el = a.local.next_stanza(timeout=10)
            assert el is not None, "a queued stanza was lost"
            errors[el.get("id")] = stanza_error(el)[0]
        assert errors["q3"] == errors["q4"] == "resource-constraint"
        assert errors["q0"] == errors["q1"] == errors["q2"] == "remote-server-timeout"
    finally:
        silent.close()


def test_local_domain_is_not_federated(halves):
    # other.a.test is ours, but nothing serves it right now: the router hands
    # its stanzas to s2s, which must not try to federate with itself.
    a = halves(["a.test", "other.a.test"], "a", bind=["a.test"]).start()
    a.local.send("<message from='alice@a.test/x' to='x@other.a.test' id='l1'/>")
    err = a.local.next_stanza(timeout=15)
    assert err is not None and err.get("id") == "l1" and stanza_error(err)[0] == "service-unavailable"
    # A domain that is not ours (and that DNS does not know) is not found.
    a.local.send("<message from='alice@a.test/x' to='x@nowhere.test' id='l2'/>")
    err = a.local.next_stanza(timeout=15)
    assert err is not None and err.get("id") == "l2" and stanza_error(err)[0] == "remote-server-not-found"


def test_stream_to_unknown_host(halves):
    a = halves(["a.test"], "a").start()
    s = RawServerStream(a.port, "evil.test", "nope.test")
    el = s.next()
    while el is not None and el.tag == f"{{{NS_STREAMS}}}features":
        el = s.next()
    assert stream_error_condition(el) == "host-unknown"
    assert s.reader.wait_eof()


def test_unauthorised_stanza_is_invalid_from(halves):
    a = halves(["a.test"], "a").start()
    s = RawServerStream(a.port, "evil.test", "a.test")
    feats = s.next()
    assert feats.tag == f"{{{NS_STREAMS}}}features"
    assert feats.find("{urn:xmpp:features:dialback}dialback") is not None
    s.send("<message from='mallory@evil.test' to='alice@a.test' id='e1'><body>spoof</body></message>")
    assert stream_error_condition(s.next()) == "invalid-from"
    assert s.reader.wait_eof()
    # And nothing reached the local side.
    assert a.local.next_stanza(timeout=1) is None


def test_db_verify_answers_for_our_keys(halves):
    a = halves(["a.test"], "a").start()
    s = RawServerStream(a.port, "b.test", "a.test")
    assert s.next().tag == f"{{{NS_STREAMS}}}features"
    good = dialback_key(a.dialback_secret, "b.test", "a.test", "STREAM123")
    s.send(f"<db:verify from='b.test' to='a.test' id='STREAM123'>{good}</db:verify>")
    v = s.next()
    assert v.tag == f"{{{NS_DB}}}verify" and v.get("type") == "valid"
    assert v.get("from") == "a.test" and v.get("to") == "b.test" and v.get("id") == "STREAM123"
    # A key for another stream id, or made with another secret, is invalid.
    s.send(f"<db:verify from='b.test' to='a.test' id='OTHER'>{good}</db:verify>")
    assert s.next().get("type") == "invalid"
    bad = dialback_key("not-the-secret", "b.test", "a.test", "STREAM123")
    s.send(f"<db:verify from='b.test' to='a.test' id='STREAM123'>{bad}</db:verify>")
    assert s.next().get("type") == "invalid"
    # A domain we do not host: a dialback error, and the stream stays up.
    s.send(f"<db:verify from='b.test' to='zzz.test' id='STREAM123'>{good}</db:verify>")
    e = s.next()
    assert e.get("type") == "error" and e.find(f"{{{NS_SERVER}}}error/{{urn:ietf:params:xml:ns:xmpp-stanzas}}item-not-found") is not None
    s.send(f"<db:verify from='b.test' to='a.test' id='STREAM123'>{good}</db:verify>")
    assert s.next().get("type") == "valid"


def test_db_result_with_a_forged_key_is_refused(halves):
    a, b = pair(halves)
    # Pretend to be b.test towards a.test with a key that b.test's server
    # never made: a.test asks b.test's authoritative server, which says invalid.
    s = RawServerStream(a.port, "b.test", "a.test")
    assert s.next().tag == f"{{{NS_STREAMS}}}features"
    forged = dialback_key("guess", "a.test", "b.test", s.id)
    s.send(f"<db:result from='b.test' to='a.test'>{forged}</db:result>")
    r = s.next(timeout=15)
    assert r is not None and r.tag == f"{{{NS_DB}}}result" and r.get("type") == "invalid", \
        f"{r}\nA:\n{a.log()}\nB:\n{b.log()}"
    assert s.reader.wait_eof()
    # The real key (made with b's secret for this stream) is accepted.
    s = RawServerStream(a.port, "b.test", "a.test")
    assert s.next().tag == f"{{{NS_STREAMS}}}features"
    real = dialback_key(b.dialback_secret, "a.test", "b.test", s.id)
    s.send(f"<db:result from='b.test' to='a.test'>{real}</db:result>")
    r = s.next(timeout=15)
    assert r is not None and r.get("type") == "valid"
    s.send("<message from='bob@b.test' to='alice@a.test' id='ok1'><body>real</body></message>")
    got = a.local.next_stanza(timeout=10)
    assert got is not None and got.get("id") == "ok1"
    # A stanza that declares the stream namespace itself arrives in the
    # router's namespace (the declaration is rewritten, not the stanza).
    s.send("<message xmlns='jabber:server' from='bob@b.test' to='alice@a.test' id='ns1'><body>ns</body></message>")
    got = a.local.next_stanza(timeout=10)
    assert got is not None and got.tag == tag("message") and got.find(tag("body")).text == "ns"
    assert b"<message xmlns='jabber:component:accept' from='bob@b.test'" in a.local.reader.raw
    # Only that pair: another local domain's pair was never authorised.
    s.send("<message from='bob@b.test' to='alice@other.test' id='no1'/>")
    assert stream_error_condition(s.next()) == "host-unknown"


def test_multiplexing_domain_pairs_on_one_stream(halves):
    a, b = pair(halves, a_domains=("a.test", "a2.test"), b_domains=("b.test", "b2.test"))
    sent = [("alice@a.test", "bob@b.test"), ("carol@a2.test", "bob@b.test"),
            ("alice@a.test", "dave@b2.test"), ("carol@a2.test", "dave@b2.test")]
    for i, (f, t) in enumerate(sent):
        a.local.send(f"<message from='{f}/r' to='{t}' id='p{i}'><body>{i}</body></message>")
        got = b.local.next_stanza(timeout=15)
        assert got is not None and got.get("id") == f"p{i}", f"A:\n{a.log()}\nB:\n{b.log()}"
    # One stream from a's s2s to b's carried the four domain pairs.
    assert established(b.port) == 1


def test_idle_stream_closes_and_reconnects(halves):
    a, b = pair(halves, a_values={"limits/idle-timeout": 1}, b_values={"limits/idle-timeout": 1})
    a.local.send("<message from='alice@a.test/r' to='bob@b.test' id='i1'/>")
    assert b.local.next_stanza(timeout=15).get("id") == "i1"
    assert established(b.port) >= 1
    deadline = time.time() + 15
    while established(b.port) and time.time() < deadline:
        time.sleep(0.1)
    assert established(b.port) == 0, "the idle stream was not closed"
    a.local.send("<message from='alice@a.test/r' to='bob@b.test' id='i2'/>")
    got = b.local.next_stanza(timeout=15)
    assert got is not None and got.get("id") == "i2"


def test_restart_of_the_peer_is_survived(halves):
    a, b = pair(halves)
    a.local.send("<message from='alice@a.test/r' to='bob@b.test' id='r1'/>")
    assert b.local.next_stanza(timeout=15).get("id") == "r1"
    assert b.stop() is None
    b.start()
    a.local.send("<message from='alice@a.test/r' to='bob@b.test' id='r2'/>")
    got = b.local.next_stanza(timeout=20)
    assert got is not None and got.get("id") == "r2", f"A:\n{a.log()}\nB:\n{b.log()}"


def test_starttls_is_offered_and_used(halves, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(str(certs))
    acert, akey = make_cert(str(certs), "a.test", ca)
    bcert, bkey = make_cert(str(certs), "b.test", ca)
    a, b = pair(halves,
                a_values={"tls/cert": acert, "tls/key": akey, "tls/verify": "true", "tls/ca-file": ca[0],
                          "tls/required": "true"},
                b_values={"tls/cert": bcert, "tls/key": bkey, "tls/verify": "true", "tls/ca-file": ca[0],
                          "tls/required": "true"})
    # The feature is offered, as required.
    s = RawServerStream(b.port, "x.test", "b.test")
    feats = s.next()
    st = feats.find(f"{{{NS_TLS}}}starttls")
    assert st is not None and st.find(f"{{{NS_TLS}}}required") is not None
    assert feats.find("{urn:xmpp:features:dialback}dialback") is None
    s.close()
    # Both ways over verified TLS (plain streams would be refused).
    a.local.send("<message from='alice@a.test/r' to='bob@b.test' id='tls1'/>")
    got = b.local.next_stanza(timeout=15)
    assert got is not None and got.get("id") == "tls1", f"A:\n{a.log()}\nB:\n{b.log()}"
    b.local.send("<message from='bob@b.test/r' to='alice@a.test' id='tls2'/>")
    got = a.local.next_stanza(timeout=15)
    assert got is not None and got.get("id") == "tls2"


def test_certificate_for_another_name_is_refused_when_verifying(halves, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(str(certs))
    wrong_cert, wrong_key = make_cert(str(certs), "not-b.test", ca)
    a, b = pair(halves, a_values={"tls/verify": "true", "tls/ca-file": ca[0], "limits/connect-timeout": 5},
                b_values={"tls/cert": wrong_cert, "tls/key": wrong_key})
    a.local.send("<message from='alice@a.test/r' to='bob@b.test' id='v1'/>")
    err = a.local.next_stanza(timeout=15)
    assert err is not None and err.get("type") == "error" and err.get("id") == "v1"
    assert stanza_error(err)[0] in ("remote-server-not-found", "remote-server-timeout")
    assert b.local.next_stanza(timeout=1) is None


def test_plain_stream_refused_when_tls_required(halves, tmp_path):
    cert, key = make_cert(str(tmp_path), "a.test")
    a = halves(["a.test"], "a", values={"tls/cert": cert, "tls/key": key, "tls/required": "true"}).start()
    s = RawServerStream(a.port, "b.test", "a.test")
    assert s.next().tag == f"{{{NS_STREAMS}}}features"
    s.send("<message from='bob@b.test' to='alice@a.test'/>")
    assert stream_error_condition(s.next()) == "policy-violation"


def test_oversized_stanza_is_a_policy_violation(halves):
    a = halves(["a.test"], "a", values={"limits/max-stanza-bytes": 8192}).start()
    s = RawServerStream(a.port, "b.test", "a.test")
    assert s.next().tag == f"{{{NS_STREAMS}}}features"
    s.send("<message from='bob@b.test' to='alice@a.test'><body>" + "x" * 20000 + "</body></message>")
    assert stream_error_condition(s.next()) == "policy-violation"


def test_srv_records_from_a_fake_dns_server(halves):
    """_xmpp-server._tcp SRV (lowest priority first; an unreachable target
    is skipped), then the target's A record; no hosts-map for srv.example."""
    b = halves(["srv.example"], "b")
    dns = FakeDns({
        ("_xmpp-server._tcp.srv.example", "SRV"): [(20, 0, 0, "good.srv.example"),
                                                   (10, 0, dead_port(), "dead.srv.example")],
        ("good.srv.example", "A"): ["127.0.0.1"],
        ("dead.srv.example", "A"): ["127.0.0.1"],
        ("_xmpp-server._tcp.none.example", "SRV"): [(0, 0, 0, ".")],
        ("none.example", "A"): ["127.0.0.1"],
    })
    try:
        a = halves(["a.test"], "a", values={"dns/nameserver": f"127.0.0.1:{dns.port}"})
        b.map("a.test", "127.0.0.1", a.port)
        b.start()
        # The port of the good target is only known now.
        dns.records[("_xmpp-server._tcp.srv.example", "SRV")][0] = (20, 0, b.port, "good.srv.example")
        a.start()
        a.local.send("<message from='alice@a.test/r' to='bob@srv.example' id='srv1'/>")
        got = b.local.next_stanza(timeout=15)
        assert got is not None and got.get("id") == "srv1", f"A:\n{a.log()}\nB:\n{b.log()}"
        assert ("_xmpp-server._tcp.srv.example", 33) in dns.queries
        # A "." target: the domain offers no XMPP service.
        a.local.send("<message from='alice@a.test/r' to='x@none.example' id='srv2'/>")
        err = a.local.next_stanza(timeout=15)
        assert err is not None and stanza_error(err)[0] == "remote-server-not-found"
    finally:
        dns.close()


def test_connections_per_remote_domain_are_limited(halves):
    a = halves(["a.test"], "a", values={"limits/connections-per-domain": 2}).start()
    first = [RawServerStream(a.port, "b.test", "a.test") for _ in range(2)]
    for s in first:
        assert s.next().tag == f"{{{NS_STREAMS}}}features"
    third = RawServerStream(a.port, "b.test", "a.test")
    assert stream_error_condition(third.next()) == "policy-violation"
    # Another domain is not affected, and a closed stream frees its place.
    other = RawServerStream(a.port, "c.test", "a.test")
    assert other.next().tag == f"{{{NS_STREAMS}}}features"
    first[0].close()
    deadline = time.time() + 10
    while time.time() < deadline:
        again = RawServerStream(a.port, "b.test", "a.test")
        el = again.next()
        if el is not None and el.tag == f"{{{NS_STREAMS}}}features":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the place of a closed stream was never freed")


def test_bad_xml_and_wrong_namespace_are_stream_errors(halves):
    a = halves(["a.test"], "a").start()
    s = RawServerStream(a.port, "b.test", "a.test")
    assert s.next().tag == f"{{{NS_STREAMS}}}features"
    s.send("<message><body>unclosed</message>")
    assert stream_error_condition(s.next()) == "not-well-formed"
    assert s.reader.wait_eof()
    raw = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    r = StreamReader(raw)
    raw.sendall(f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='{NS_STREAMS}' "
                "to='a.test' version='1.0'>".encode())
    assert stream_error_condition(r.next()) == "invalid-namespace"
    raw.close()


# ---- confirmations to the sm (XEP-0198 between servers, docs/sessions.md §7) ----

NS_SESSION = "urn:switchboard:session"
NS_ROUTER = "urn:switchboard:router"


def wait_note(local, action, timeout=15):
    """The next <s2s action=…/> that s2s sent the local side (the sm), as
    (envelope, element); stanzas read meanwhile stay for next_stanza."""
    deadline = time.time() + timeout
    held = []
    try:
        while True:
            for env in list(local.s2s_notes):
                note = env.find(f"{{{NS_SESSION}}}s2s")
                if note.get("action") == action:
                    local.s2s_notes.remove(env)
                    return env, note
            if time.time() >= deadline:
                return None, None
            el = local.next(timeout=0.2)
            if el is not None and not local._notice(el):
                held.append(el)
    finally:
        local.reader.elements[0:0] = held


def envelope(seq, body, to="bob@b.test", mid="c1"):
    """A message as the sm sends it to s2s: numbered, for a confirmation."""
    return (f"<route xmlns='{NS_ROUTER}' to='s2s' from='a.test' s2s-seq='{seq}'>"
            f"<message xmlns='jabber:client' from='alice@a.test/desk' to='{to}' id='{mid}' type='chat'>"
            f"<body>{body}</body></message></route>")


def test_hello_names_the_process_instance(halves):
    """s2s says hello to each local domain that comes online, with an
    instance that changes when the process does."""
    a, b = pair(halves)
    env, hello = wait_note(a.local, "hello")
    assert hello is not None, a.log()
    assert env.get("from") == "s2s" and env.get("to") == "a.test" and len(hello.get("instance")) == 16
    a.proc.stop()
    a.proc.start()
    a.proc.wait_port(a.port)
    env, again = wait_note(a.local, "hello", timeout=30)
    assert again is not None, a.log()
    assert again.get("instance") != hello.get("instance")


def test_message_confirmed_once_the_remote_server_acknowledged_it(halves):
    """Both sides do stream management: the message crosses, b's s2s
    answers a's <r/>, and only then does a's s2s confirm it to the sm."""
    a, b = pair(halves)
    assert wait_note(a.local, "hello")[1] is not None
    a.local.send(envelope(7, "first") + envelope(8, "second", mid="c2"))
    got = [b.local.next_stanza(timeout=15) for _ in range(2)]
    assert all(g is not None for g in got), f"nothing arrived\nA:\n{a.log()}\nB:\n{b.log()}"
    assert [g.get("id") for g in got] == ["c1", "c2"] and got[0].tag == tag("message")
    assert got[0].find(tag("body")).text == "first" and got[0].get("from") == "alice@a.test/desk"
    seqs = set()
    while seqs != {"7", "8"}:
        env, note = wait_note(a.local, "confirmed")
        assert note is not None, f"no confirmation; got {seqs}\n{a.log()}"
        assert env.get("from") == "s2s" and env.get("to") == "a.test"
        seqs.update(note.get("seqs").split())
    assert "stream management on to b.test" in a.log()
    assert "(from a.test): stream management on" in b.log()


def test_bounce_is_a_confirmation(halves):
    """A numbered message that cannot be delivered comes back to its sender
    as an error and is confirmed: the sm has nothing left to send again."""
    a = halves(["a.test"], "a", values={"limits/connect-timeout": 5})
    a.map("closed.test", "127.0.0.1", dead_port())
    a.start()
    assert wait_note(a.local, "hello")[1] is not None
    a.local.send(envelope(3, "x", to="nobody@closed.test", mid="u1"))
    err = a.local.next_stanza(timeout=10)
    assert err is not None and err.get("type") == "error" and err.get("id") == "u1"
    assert stanza_error(err)[0] == "remote-server-not-found"
    env, note = wait_note(a.local, "confirmed")
    assert note is not None and note.get("seqs") == "3", a.log()


def test_unacknowledged_stanzas_go_again_after_the_peer_restarts(halves):
    """b's s2s dies while a's stream to it has stanzas it never acknowledged
    (b was stopped): a's s2s sends them again on a new stream once b is
    back, and confirms them only then."""
    a, b = pair(halves, a_values={"limits/connect-timeout": 30})
    assert wait_note(a.local, "hello")[1] is not None
    a.local.send(envelope(1, "warm-up", mid="w"))
    assert b.local.next_stanza(timeout=15).get("id") == "w"
    assert wait_note(a.local, "confirmed")[1].get("seqs") == "1"
    b.proc.proc.send_signal(signal.SIGSTOP)
    try:
        a.local.send(envelope(2, "held", mid="h"))
        assert wait_note(a.local, "confirmed", timeout=2)[1] is None, "confirmed without b's acknowledgement"
        b.proc.proc.kill()
        b.proc.proc.wait()
    finally:
        if b.proc.proc.poll() is None:
            b.proc.proc.send_signal(signal.SIGCONT)
    b.proc.logfile.close()
    b.proc.start()
    b.proc.wait_port(b.port)
    got = b.local.next_stanza(timeout=30)
    assert got is not None and got.get("id") == "h", f"A:\n{a.log()}\nB:\n{b.log()}"
    env, note = wait_note(a.local, "confirmed", timeout=30)
    assert note is not None and note.get("seqs") == "2", a.log()
    assert "lost the stream with 1 stanzas not acknowledged" in a.log()
