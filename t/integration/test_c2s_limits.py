"""c2s defences against connection and stanza floods, attacked (docs/security.md):
the caps on connections that are not authenticated yet, stanza rates per
connection and per address, a stream header sent twice, and stream
management's limit on unacknowledged stanzas."""
import ssl
import threading

import pytest

from test_c2s_client import NS_CLIENT, Client, q
from test_c2s_session import enable_sm, logged_in, next_message
from test_c2s_stream import expect_error, proxy_v2_header

NS_STREAMS = "http://etherx.jabber.org/streams"


def accepted(srv, **kw):
    """A new connection whose header is answered with features (not refused)."""
    c = Client(srv.c2s[0].port, cafile=srv.cert, **kw)
    c.open()
    assert c.features is not None, f"refused: {c.reader.raw[-400:]!r}"
    return c


# ---- connections not authenticated yet ----

def test_max_unauthenticated_is_resource_constraint(server):
    srv = server(config={"c2s": {"limits/max-unauthenticated": "2", "limits/unauthenticated-per-ip": "0"}})
    srv.add_user("alice", "pw-a")
    a = accepted(srv)
    b = accepted(srv)
    # A third connection that is not authenticated: the server is out of room for those.
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    expect_error(c, "resource-constraint")
    # On the direct TLS port the refusal costs no handshake: the connection just closes.
    with pytest.raises((ssl.SSLError, OSError)):
        Client(srv.c2s[0].tls_port, cafile=srv.cert, direct_tls=True)
    # Authentication frees the slot although the connection stays.
    assert isinstance(a.login("alice", "pw-a", resource="r"), str)
    d = accepted(srv)
    e = Client(srv.c2s[0].port, cafile=srv.cert)
    expect_error(e, "resource-constraint")
    # So does a connection that goes away.
    d.close()
    for _ in range(50):
        f = Client(srv.c2s[0].port, cafile=srv.cert)
        f.open()
        if f.features is not None:
            break
        f.close()
    assert f.features is not None, "a closed connection still holds its slot"
    log = srv.proc("c2s-1").log()
    assert "not authenticated yet (limit 2)" in log
    b.close()


def test_unauthenticated_per_ip_is_policy_violation(server):
    srv = server(config={"c2s": {"listen/proxy-protocol": True, "limits/unauthenticated-per-ip": "2",
                                 "limits/connections-per-ip": "10", "limits/max-unauthenticated": "0"}})
    srv.add_user("alice", "pw-a")
    here = proxy_v2_header("192.0.2.7", 40000)
    a = accepted(srv, prefix=here)
    b = accepted(srv, prefix=here)
    c = Client(srv.c2s[0].port, cafile=srv.cert, prefix=here)
    expect_error(c, "policy-violation")
    # Another address is not affected.
    other = accepted(srv, prefix=proxy_v2_header("192.0.2.8", 40001))
    # Once one of them has authenticated, the address may open another.
    assert isinstance(a.login("alice", "pw-a", resource="r"), str)
    d = accepted(srv, prefix=here)
    e = Client(srv.c2s[0].port, cafile=srv.cert, prefix=here)
    expect_error(e, "policy-violation")
    for x in (b, d, other):
        x.close()
    assert "192.0.2.7: 3 connections from that address are not authenticated yet (limit 2)" in \
        srv.proc("c2s-1").log()


# ---- stanza rates ----

def flood(c, to, count, sent):
    """Send count messages as fast as TCP takes them; sent[0] counts those written."""
    try:
        for i in range(count):
            c.send(f"<message to='{to}' type='chat' id='f{i}'><body>flood {i}</body></message>")
            sent[0] += 1
    except OSError:
        pass


def drain_messages(c, idle=3):
    """Bodies of the messages that arrive until none has come for idle seconds."""
    bodies = []
    while True:
        m = next_message(c, timeout=idle)
        if m is None:
            return bodies
        body = m.find(q(NS_CLIENT, "body"))
        bodies.append((m.get("from"), body.text if body is not None else None))


def test_stanza_flooder_is_slowed_then_disconnected_and_others_get_through(server):
    srv = server(config={"c2s": {"limits/rate-stanzas": "5", "limits/rate-stanzas-burst": "10",
                                 "limits/rate-stanzas-per-ip": "0", "limits/rate-bytes": "0",
                                 "limits/rate-disconnect-after": "2", "log/level": "info"}})
    for u in ("alice", "bob", "carol"):
        srv.add_user(u, "pw-" + u)
    bob = logged_in(srv, "bob", "pw-bob", "pc")
    alice = logged_in(srv, "alice", "pw-alice", "flood")
    carol = logged_in(srv, "carol", "pw-carol", "ok")
    total, sent = 3000, [0]
    t = threading.Thread(target=flood, args=(alice, "bob@localhost/pc", total, sent), daemon=True)
    t.start()
    # Carol, on her own connection, is not slowed down by Alice's flood.
    for i in range(5):
        carol.send(f"<message to='bob@localhost/pc' type='chat' id='c{i}'><body>carol {i}</body></message>")
    assert alice.wait_error(60) == "policy-violation"
    t.join(30)
    got = drain_messages(bob)
    from_carol = [b for f, b in got if f == "carol@localhost/ok"]
    from_alice = [b for f, b in got if f == "alice@localhost/flood"]
    assert from_carol == [f"carol {i}" for i in range(5)]
    # Alice got her burst through and was then slowed down: far from all of her messages made it.
    assert len(from_alice) >= 10
    assert len(from_alice) < total
    log = srv.proc("c2s-1").log()
    slowed = log.index("over the rate of stanzas, slowing it down")
    assert slowed < log.index("over the rate of stanzas for"), "disconnected without being slowed down first"


def test_stanza_rate_per_address_counts_all_its_connections(server):
    srv = server(config={"c2s": {"listen/proxy-protocol": True, "limits/rate-stanzas": "0",
                                 "limits/rate-stanzas-per-ip": "5", "limits/rate-stanzas-per-ip-burst": "40",
                                 "limits/rate-bytes": "0", "limits/rate-disconnect-after": "2",
                                 "log/level": "info"}})
    for u in ("alice", "bob", "carol"):
        srv.add_user(u, "pw-" + u)
    crowd = proxy_v2_header("192.0.2.7", 40000)
    bob = Client(srv.c2s[0].port, cafile=srv.cert, prefix=proxy_v2_header("192.0.2.9", 40009))
    assert isinstance(bob.login("bob", "pw-bob", resource="pc"), str)
    floods = []
    for r in ("one", "two"):
        c = Client(srv.c2s[0].port, cafile=srv.cert, prefix=crowd)
        assert isinstance(c.login("alice", "pw-alice", resource=r), str)
        floods.append(c)
    carol = Client(srv.c2s[0].port, cafile=srv.cert, prefix=proxy_v2_header("192.0.2.8", 40008))
    assert isinstance(carol.login("carol", "pw-carol", resource="ok"), str)
    total = 2000
    sent = [[0], [0]]
    threads = [threading.Thread(target=flood, args=(c, "bob@localhost/pc", total, s), daemon=True)
               for c, s in zip(floods, sent)]
    for t in threads:
        t.start()
    for i in range(5):
        carol.send(f"<message to='bob@localhost/pc' type='chat' id='c{i}'><body>carol {i}</body></message>")
    # Two connections from one address: each is cut off once the address stays over its rate.
    for c in floods:
        assert c.wait_error(60) == "policy-violation"
    got = drain_messages(bob)
    assert [b for f, b in got if f == "carol@localhost/ok"] == [f"carol {i}" for i in range(5)]
    from_crowd = [b for f, b in got if f and f.startswith("alice@localhost/")]
    assert 0 < len(from_crowd) < 2 * total
    log = srv.proc("c2s-1").log()
    assert "over the rate of stanzas from its address, slowing it down" in log
    assert "over the rate of stanzas from its address for" in log


# ---- a stream header inside the open stream ----

STREAM_HEADER = (f"<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='{NS_STREAMS}' "
                 "version='1.0'>")


def test_stream_opened_twice_before_tls(server):
    srv = server(sm=False)
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    c.send(STREAM_HEADER)
    expect_error(c, "unsupported-stanza-type")


def test_stream_opened_twice_with_an_xml_declaration(server):
    srv = server(sm=False)
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    c.starttls()
    c.send("<?xml version='1.0'?>" + STREAM_HEADER)
    expect_error(c, "not-well-formed")


def test_stream_opened_twice_after_authentication(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    c = logged_in(srv, "alice", "pw-a", "r")
    c.send(STREAM_HEADER)
    expect_error(c, "unsupported-stanza-type")
    # The restart after SASL success is not a second header (login above went through it);
    # nor is the server confused for the next client.
    d = logged_in(srv, "alice", "pw-a", "r2")
    assert d.jid == "alice@localhost/r2"


# ---- stream management: stanzas that are never acknowledged ----

def test_max_unacked_closes_the_stream_and_nothing_is_lost(server):
    max_unacked = 5
    srv = server(config={"c2s": {"sm/max-unacked": str(max_unacked), "sm/resume-timeout": "0"}})
    srv.add_user("alice", "pw-a")
    srv.add_user("bob", "pw-b")
    b = logged_in(srv, "bob", "pw-b", "pc")
    enable_sm(b, resume=False)
    b.sm_h = None   # Bob never answers <r/>
    a = logged_in(srv, "alice", "pw-a", "phone")
    sent = 3 * max_unacked
    for i in range(sent):
        a.send(f"<message to='bob@localhost/pc' type='chat' id='m{i}'><body>n{i}</body></message>")
    seen, cond = [], None
    while cond is None:
        el = b.next(timeout=20)
        assert el is not None, f"no stream error after {len(seen)} unacknowledged messages"
        if el.tag == q(NS_CLIENT, "message"):
            seen.append(el.find(q(NS_CLIENT, "body")).text)
        elif el.tag == q(NS_STREAMS, "error"):
            cond = [c.tag.split("}")[1] for c in el if not c.tag.endswith("}text")][0]
    # sm/max-unacked stanzas may wait for an acknowledgement; the next one closes the stream.
    assert cond == "policy-violation"
    assert len(seen) == max_unacked + 1
    assert b.reader.wait_eof()
    # Nothing was acknowledged, so nothing is lost: everything comes back from offline storage.
    c = logged_in(srv, "bob", "pw-b", "laptop")
    c.send("<presence/>")
    bodies = set()
    while len(bodies) < sent:
        m = next_message(c, timeout=15)
        assert m is not None, f"only {sorted(bodies)} came back"
        bodies.add(m.find(q(NS_CLIENT, "body")).text)
    assert bodies == {f"n{i}" for i in range(sent)}
