"""c2s stream negotiation (RFC 6120 §4, §5) and every stream error, in raw XML."""
import socket
import struct
import time

from test_c2s_client import (NS_AUTH, NS_BIND, NS_CLIENT, NS_SASL, NS_SESSION, NS_SM, NS_TLS, Client, header, q,
                             stream_error)
from harness import NS_STREAMS

NS_XML = "http://www.w3.org/XML/1998/namespace"


def open_raw(srv, data, tls=False):
    """Connect, send data (after STARTTLS if tls), return the client."""
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    if tls:
        c.open()
        c.starttls()
    c.send(data)
    return c


def test_header_answer_and_features_before_tls(server):
    srv = server(sm=False)
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    h = c.open()
    assert h.tag == q(NS_STREAMS, "stream")
    assert h.get("from") == "localhost"
    assert h.get("version") == "1.0"
    assert h.get(f"{{{NS_XML}}}lang") == "en"
    sid = h.get("id")
    assert sid and len(sid) >= 16
    # Only STARTTLS, marked required, before TLS.
    kids = [e.tag for e in c.features]
    assert kids == [q(NS_TLS, "starttls")]
    assert c.features.find(f"{q(NS_TLS, 'starttls')}/{q(NS_TLS, 'required')}") is not None
    # Stream ids are unpredictable: a second connection gets another one.
    c2 = Client(srv.c2s[0].port, cafile=srv.cert)
    assert c2.open().get("id") != sid


def test_features_in_order_and_restarts(server):
    srv = server(sm=False)
    srv.add_user("alice", "pw-alice")
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    first_id = c.header.get("id")
    h = c.starttls()
    assert c.tls_version() in ("TLSv1.2", "TLSv1.3")
    assert h.get("id") != first_id, "a restart is a new stream with a new id"
    tags = [e.tag for e in c.features]
    assert q(NS_TLS, "starttls") not in tags
    assert tags[0] == q(NS_SASL, "mechanisms")
    mechs = c.mechanisms()
    assert "SCRAM-SHA-256" in mechs and "SCRAM-SHA-1" in mechs and "PLAIN" in mechs
    assert mechs.index("SCRAM-SHA-256") < mechs.index("SCRAM-SHA-1") < mechs.index("PLAIN")
    assert q("http://jabber.org/features/iq-auth", "auth") in tags
    assert q("http://jabber.org/features/iq-register", "register") in tags
    el = c.scram("alice", "pw-alice")
    assert el.tag == q(NS_SASL, "success")
    c.open()
    tags = [e.tag for e in c.features]
    assert tags[:2] == [q(NS_BIND, "bind"), q(NS_SESSION, "session")]
    assert q(NS_SM, "sm") in tags
    assert q(NS_SASL, "mechanisms") not in tags


def test_direct_tls_port(server):
    srv = server(sm=False)
    c = Client(srv.c2s[0].tls_port, cafile=srv.cert, direct_tls=True)
    c.open()
    assert c.tls_version() is not None
    tags = [e.tag for e in c.features]
    assert q(NS_TLS, "starttls") not in tags
    assert "SCRAM-SHA-256" in c.mechanisms()


def test_tls_optional_offers_sasl_but_not_plain_in_clear(server):
    srv = server(sm=False, config={"c2s": {"tls/required": "false"}})
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    starttls = c.features.find(q(NS_TLS, "starttls"))
    assert starttls is not None and starttls.find(q(NS_TLS, "required")) is None
    mechs = c.mechanisms()
    assert "SCRAM-SHA-256" in mechs and "PLAIN" not in mechs
    # PLAIN asked for anyway: encryption-required.
    el = c.plain("alice", "x")
    assert el.tag == q(NS_SASL, "failure") and el.find(q(NS_SASL, "encryption-required")) is not None


def test_second_starttls_fails_and_closes(server):
    srv = server(sm=False)
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    c.starttls()
    c.send(f"<starttls xmlns='{NS_TLS}'/>")
    el = c.next()
    assert el is not None and el.tag == q(NS_TLS, "failure")
    assert c.reader.wait_eof()


def test_legacy_stream_without_version(server):
    srv = server(sm=False)
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    h = c.open(version=None)
    assert h.get("version") is None, "a stream without version is answered without version"
    assert h.get("id")
    # No stream features on a pre-1.0 stream.
    assert c.next(timeout=1) is None
    # Without TLS (required) jabber:iq:auth is refused: use the direct TLS port.
    c.send(f"<iq type='get' id='a1'><query xmlns='{NS_AUTH}'/></iq>")
    assert stream_error(c.next()) == "policy-violation"


def expect_error(c, condition, timeout=10):
    got = c.wait_error(timeout)
    assert got == condition, f"expected <{condition}/>, got {got}: {c.reader.raw[-600:]!r}"
    assert c.reader.closed, "the stream is closed after the error"
    assert c.reader.wait_eof(), "the connection is closed after the error"


def test_host_unknown(server):
    srv = server(sm=False)
    c = open_raw(srv, header(to="elsewhere.example"))
    expect_error(c, "host-unknown")
    # The header is still sent first, then the error.
    assert c.reader.header is not None


def test_missing_to_is_host_unknown(server):
    srv = server(sm=False)
    c = open_raw(srv, f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}' version='1.0'>")
    expect_error(c, "host-unknown")


def test_invalid_namespace_of_stream(server):
    srv = server(sm=False)
    c = open_raw(srv, "<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='urn:wrong' version='1.0'>")
    expect_error(c, "invalid-namespace")


def test_invalid_content_namespace(server):
    srv = server(sm=False)
    c = open_raw(srv, header(ns="jabber:server"))
    expect_error(c, "invalid-namespace")


def test_server_namespace_stanza_is_invalid_namespace(server):
    srv = server(sm=False)
    c = open_raw(srv, header() + "<message xmlns='jabber:server'><body>x</body></message>")
    expect_error(c, "invalid-namespace")


def test_bad_namespace_prefix(server):
    srv = server(sm=False)
    c = open_raw(srv, header() + "<foo:bar/>")
    expect_error(c, "bad-namespace-prefix")


def test_stream_prefix_other_than_stream(server):
    srv = server(sm=False)
    c = open_raw(srv, f"<s:stream to='localhost' xmlns='{NS_CLIENT}' xmlns:s='{NS_STREAMS}' version='1.0'>")
    expect_error(c, "bad-namespace-prefix")


def test_unsupported_version(server):
    srv = server(sm=False)
    c = open_raw(srv, header(version="2.0"))
    expect_error(c, "unsupported-version")


def test_not_well_formed(server):
    srv = server(sm=False)
    c = open_raw(srv, header() + "<message><body>x</message>")
    expect_error(c, "not-well-formed")


def test_restricted_xml(server):
    srv = server(sm=False)
    c = open_raw(srv, header() + "<!-- a comment -->")
    expect_error(c, "restricted-xml")
    c = open_raw(srv, header() + "<?pi x?>")
    expect_error(c, "restricted-xml")


def test_stanza_too_big_is_policy_violation(server):
    srv = server(sm=False, config={"c2s": {"limits/max-stanza-bytes": "4k"}})
    c = open_raw(srv, header() + "<message><body>" + "x" * 6000 + "</body></message>", tls=False)
    expect_error(c, "policy-violation")


def test_stanza_before_auth_is_not_authorized(server):
    srv = server(sm=False)
    c = open_raw(srv, "<message to='bob@localhost'><body>hi</body></message>", tls=True)
    expect_error(c, "not-authorized")


def test_unknown_element_is_unsupported_stanza_type(server):
    srv = server(sm=False)
    c = open_raw(srv, "<thing xmlns='urn:example:nope'/>", tls=True)
    expect_error(c, "unsupported-stanza-type")


def test_iq_without_id_is_invalid_xml(server):
    srv = server(sm=False)
    c = open_raw(srv, "<iq type='get'><query xmlns='jabber:iq:version'/></iq>", tls=True)
    expect_error(c, "invalid-xml")


def test_unauthenticated_timeout(server):
    srv = server(sm=False, config={"c2s": {"limits/unauthenticated-timeout": "1"}})
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    expect_error(c, "connection-timeout", timeout=15)


def test_unauthenticated_timeout_is_not_reset_by_traffic(server):
    srv = server(sm=False, config={"c2s": {"limits/unauthenticated-timeout": "2"}})
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    deadline = time.time() + 15
    got = None
    while time.time() < deadline and got is None and not c.reader.eof:
        try:
            c.send(" ")   # whitespace keeps the connection busy, not authenticated
        except OSError:
            break
        el = c.next(timeout=0.3)
        got = stream_error(el) if el is not None else None
    if got is None:
        got = c.wait_error(2)
    assert got == "connection-timeout"


def test_connections_per_ip_cap(server):
    srv = server(sm=False, config={"c2s": {"limits/connections-per-ip": "2"}})
    a = Client(srv.c2s[0].port, cafile=srv.cert)
    a.open()
    b = Client(srv.c2s[0].port, cafile=srv.cert)
    b.open()
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    expect_error(c, "policy-violation")
    # A slot frees when a connection goes.
    a.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        d = Client(srv.c2s[0].port, cafile=srv.cert)
        d.open()
        if d.features is not None:
            break
        d.close()
        time.sleep(0.2)
    assert d.features is not None


def test_max_connections_is_resource_constraint(server):
    srv = server(sm=False, config={"c2s": {"limits/max-connections": "1"}})
    a = Client(srv.c2s[0].port, cafile=srv.cert)
    a.open()
    b = Client(srv.c2s[0].port, cafile=srv.cert)
    expect_error(b, "resource-constraint")


def test_system_shutdown(server):
    srv = server(sm=False)
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    c.starttls()
    p = srv.proc("c2s-1")
    p.proc.send_signal(15)
    expect_error(c, "system-shutdown")
    assert p.proc.wait(20) == 0


def test_client_closing_the_stream_gets_the_close_back(server):
    srv = server(sm=False)
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    c.send("</stream:stream>")
    assert c.reader.wait_eof()
    assert c.reader.closed


def proxy_v2_header(src_ip, src_port, dst_ip="127.0.0.1", dst_port=5222):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    body = socket.inet_aton(src_ip) + socket.inet_aton(dst_ip) + struct.pack("!HH", src_port, dst_port)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def test_proxy_protocol_v2(server):
    srv = server(sm=False, config={"c2s": {"listen/proxy-protocol": True, "limits/connections-per-ip": "1",
                                           "log/level": "debug"}})
    c = Client(srv.c2s[0].port, cafile=srv.cert, prefix=proxy_v2_header("192.0.2.7", 40000))
    c.open()
    assert c.features is not None
    # The cap applies to the address the balancer reported, not the balancer's.
    d = Client(srv.c2s[0].port, cafile=srv.cert, prefix=proxy_v2_header("192.0.2.7", 40001))
    expect_error(d, "policy-violation")
    assert "192.0.2.7" in srv.proc("c2s-1").log()
    e = Client(srv.c2s[0].port, cafile=srv.cert, prefix=proxy_v2_header("192.0.2.8", 40002))
    e.open()
    assert e.features is not None
    # Direct TLS behind the balancer too.
    f = Client(srv.c2s[0].tls_port, cafile=srv.cert, prefix=proxy_v2_header("192.0.2.9", 40003), direct_tls=True)
    f.open()
    assert f.tls_version() is not None and f.features is not None
    # Without the header the connection is dropped.
    g = Client(srv.c2s[0].port, cafile=srv.cert)
    g.send(header())
    assert g.reader.wait_eof()
