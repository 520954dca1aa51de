"""The router against real components speaking raw XEP-0114 XML."""
import signal
import socket
import threading
import time

from harness import (NS_COMPONENT, NS_ROUTER, RawComponent, connected, stanza_error,
                     stream_error_condition)

SECRET = "s3cret"
COMPONENTS = [
    {"name": "a.example", "secret": SECRET},
    {"name": "b.example", "secret": SECRET},
    {"name": "sm", "secret": "internal", "trusted": True},
    {"name": "s2s", "secret": "internal", "trusted": True},
    {"name": "c2s-*", "secret": "internal", "trusted": True},
]

MSG = ("<message from='alice@a.example/x' to='bob@b.example' id='m1' type='chat'>"
       "<body>hello &amp; &lt;welcome&gt;</body></message>")


def test_two_components_exchange_stanzas_byte_for_byte(router):
    r = router(COMPONENTS)
    a = connected(r.port, "a.example", SECRET)
    b = connected(r.port, "b.example", SECRET)
    a.send(MSG)
    got = b.next_stanza()
    assert got is not None and got.tag == f"{{{NS_COMPONENT}}}message"
    assert got.get("from") == "alice@a.example/x" and got.get("to") == "bob@b.example"
    assert got.find(f"{{{NS_COMPONENT}}}body").text == "hello & <welcome>"
    # The router forwards the bytes as they came: no re-serialisation.
    assert MSG.encode() in b.reader.raw
    b.send("<iq from='b.example' to='a.example' type='get' id='q1'><query xmlns='jabber:iq:version'/></iq>")
    iq = a.next_stanza()
    assert iq.get("id") == "q1" and iq.find("{jabber:iq:version}query") is not None


def test_stream_header_answer(router):
    r = router(COMPONENTS)
    c = RawComponent(r.port, "a.example", SECRET)
    assert c.header.tag == "{http://etherx.jabber.org/streams}stream"
    assert c.header.get("from") == "a.example"
    assert c.stream_id and len(c.stream_id) >= 16


def test_wrong_secret_is_refused(router):
    r = router(COMPONENTS)
    c = RawComponent(r.port, "a.example", "wrong")
    assert stream_error_condition(c.authenticate()) == "not-authorized"
    assert c.reader.wait_eof()
    assert "handshake failed" in r.log()


def test_unknown_component_name_is_refused(router):
    r = router(COMPONENTS)
    c = RawComponent(r.port, "nobody.example", SECRET)
    assert stream_error_condition(c.next()) == "host-unknown"
    assert c.reader.wait_eof()


def test_name_already_taken_gives_conflict(router):
    r = router(COMPONENTS)
    first = connected(r.port, "a.example", SECRET)
    second = RawComponent(r.port, "a.example", SECRET)
    assert stream_error_condition(second.authenticate()) == "conflict"
    # The first connection is untouched.
    b = connected(r.port, "b.example", SECRET)
    b.send("<message from='b.example' to='a.example' id='still'/>")
    assert first.next_stanza().get("id") == "still"


def test_stanzas_before_handshake_are_not_routed(router):
    r = router(COMPONENTS)
    b = connected(r.port, "b.example", SECRET)
    a = RawComponent(r.port, "a.example", SECRET)
    a.send("<message from='a.example' to='b.example' id='early'/>")
    assert stream_error_condition(a.next()) == "not-authorized"
    assert b.next_stanza(timeout=1) is None


def test_spoofed_from_is_refused_and_not_forwarded(router):
    r = router(COMPONENTS)
    a = connected(r.port, "a.example", SECRET)
    b = connected(r.port, "b.example", SECRET)
    a.send("<message from='mallory@b.example' to='bob@b.example' id='spoof'><body>x</body></message>")
    err = a.next_stanza()
    assert err.get("type") == "error" and err.get("id") == "spoof"
    cond, etype, code = stanza_error(err)
    assert (cond, etype, code) == ("forbidden", "auth", "403")
    assert b.next_stanza(timeout=1) is None
    assert "foreign from='mallory@b.example'" in r.log()


def test_missing_from_is_refused(router):
    r = router(COMPONENTS)
    a = connected(r.port, "a.example", SECRET)
    a.send("<message to='bob@b.example' id='nofrom'/>")
    cond, _, code = stanza_error(a.next_stanza())
    assert cond == "bad-request" and code == "400"


def test_unbound_domain_bounces_remote_server_not_found(router):
    r = router(COMPONENTS)
    a = connected(r.port, "a.example", SECRET)
    a.send("<message from='alice@a.example' to='x@nowhere.example' id='nr'><body>hi</body></message>")
    err = a.next_stanza()
    assert err.get("type") == "error"
    assert err.get("to") == "alice@a.example" and err.get("from") == "x@nowhere.example"
    assert stanza_error(err) == ("remote-server-not-found", "cancel", "404")
    # The original payload is kept.
    assert err.find(f"{{{NS_COMPONENT}}}body").text == "hi"


def test_iq_get_bounces_and_errors_are_never_bounced(router):
    r = router(COMPONENTS)
    a = connected(r.port, "a.example", SECRET)
    a.send("<iq from='a.example' to='nowhere.example' type='get' id='g1'><ping xmlns='urn:xmpp:ping'/></iq>")
    err = a.next_stanza()
    assert err.get("type") == "error" and err.get("id") == "g1"
    assert stanza_error(err)[0] == "remote-server-not-found"
    # An error, and an iq result, that cannot be delivered vanish with a log line only.
    a.send("<message from='a.example' to='nowhere.example' type='error' id='e1'>"
           f"<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
    a.send("<iq from='a.example' to='nowhere.example' type='result' id='r1'/>")
    a.send("<presence from='a.example' to='nowhere.example' type='error' id='p1'/>")
    a.send("<iq from='a.example' to='nowhere.example' type='get' id='g2'><ping xmlns='urn:xmpp:ping'/></iq>")
    nxt = a.next_stanza()
    assert nxt.get("id") == "g2", "an error or result was answered with an error"


def test_default_route_gets_other_domains(router):
    r = router(COMPONENTS)
    s2s = connected(r.port, "s2s", "internal")
    s2s.send(f"<bind xmlns='{NS_ROUTER}' name='s2s' default='true'/>")
    ans = s2s.next_stanza()
    assert ans.tag == f"{{{NS_ROUTER}}}bind" and ans.get("type") == "result"
    a = connected(r.port, "a.example", SECRET)
    a.send("<message from='alice@a.example' to='romeo@montague.example' id='fed'/>")
    got = s2s.next_stanza()
    assert got.get("id") == "fed" and got.get("to") == "romeo@montague.example"
    # The default route may send from any domain (it is trusted): a remote reply comes back.
    s2s.send("<message from='romeo@montague.example' to='alice@a.example' id='back'/>")
    assert a.next_stanza().get("id") == "back"


def test_untrusted_component_cannot_bind_or_route(router):
    r = router(COMPONENTS)
    a = connected(r.port, "a.example", SECRET)
    a.send(f"<bind xmlns='{NS_ROUTER}' name='b.example'/>")
    ans = a.next_stanza()
    assert ans.get("type") == "error" and ans.find("{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden") is not None
    a.send(f"<route xmlns='{NS_ROUTER}' to='sm' from='a.example'><message xmlns='jabber:client' to='x@y'/></route>")
    ans = a.next_stanza()
    assert ans.tag == f"{{{NS_ROUTER}}}route" and ans.get("type") == "error"


def test_trusted_bind_route_envelope_and_name_notices(router):
    r = router(COMPONENTS)
    sm = connected(r.port, "sm", "internal")
    sm.send(f"<bind xmlns='{NS_ROUTER}' name='localhost'/>")
    assert sm.next_stanza().get("type") == "result"
    c2s = connected(r.port, "c2s-1", "internal")
    # A trusted newcomer is told which names are online.
    online = set()
    while True:
        el = c2s.next(timeout=1)
        if el is None:
            break
        assert el.tag == f"{{{NS_ROUTER}}}online"
        online.add(el.get("name"))
    assert {"sm", "localhost"} <= online
    # And the others hear of it.
    el = sm.next(timeout=5)
    assert el.tag == f"{{{NS_ROUTER}}}online" and el.get("name") == "c2s-1"
    inner = "<message xmlns='jabber:client' from='u@localhost/r' to='v@localhost'><body>x</body></message>"
    c2s.send(f"<route xmlns='{NS_ROUTER}' to='sm' from='c2s-1' c2s-conn='7'>{inner}</route>")
    env = sm.next_stanza()
    assert env.tag == f"{{{NS_ROUTER}}}route" and env.get("c2s-conn") == "7"
    assert env.find("{jabber:client}message").find("{jabber:client}body").text == "x"
    # A stanza to the bound domain reaches the sm.
    a = connected(r.port, "a.example", SECRET)
    a.send("<message from='a.example' to='user@localhost' id='dom'/>")
    assert sm.next_stanza().get("id") == "dom"
    # A route from a name the sender does not own is refused.
    c2s.send(f"<route xmlns='{NS_ROUTER}' to='sm' from='c2s-2'>{inner}</route>")
    ans = c2s.next_stanza()
    assert ans.get("type") == "error"
    # c2s goes away: the sm hears it.
    c2s.close()
    el = sm.next(timeout=5)
    assert el.tag == f"{{{NS_ROUTER}}}offline" and el.get("name") == "c2s-1"


def test_bound_domain_whose_owner_left_bounces_service_unavailable(router):
    r = router(COMPONENTS)
    sm = connected(r.port, "sm", "internal")
    sm.send(f"<bind xmlns='{NS_ROUTER}' name='localhost'/>")
    assert sm.next_stanza().get("type") == "result"
    s2s = connected(r.port, "s2s", "internal")
    s2s.send(f"<bind xmlns='{NS_ROUTER}' name='s2s' default='true'/>")
    assert s2s.next_stanza().get("type") == "result"
    sm.close()
    time.sleep(0.3)
    a = connected(r.port, "a.example", SECRET)
    a.send("<message from='a.example' to='user@localhost' id='gone'/>")
    err = a.next_stanza()
    # Not sent to the default route (it is one of ours), but bounced.
    assert stanza_error(err) == ("service-unavailable", "cancel", "503")


def test_bind_conflict_between_trusted_components(router):
    r = router(COMPONENTS)
    sm = connected(r.port, "sm", "internal")
    sm.send(f"<bind xmlns='{NS_ROUTER}' name='localhost'/>")
    assert sm.next_stanza().get("type") == "result"
    s2s = connected(r.port, "s2s", "internal")
    s2s.send(f"<bind xmlns='{NS_ROUTER}' name='localhost'/>")
    ans = s2s.next_stanza()
    assert ans.get("type") == "error"
    assert ans.find("{urn:ietf:params:xml:ns:xmpp-stanzas}conflict") is not None


def test_bad_xml_gets_stream_errors(router):
    r = router(COMPONENTS)
    cases = [
        ("<message from='a.example' to='b.example'><body>x</bdy></message>", "not-well-formed"),
        ("<!DOCTYPE foo [<!ENTITY x 'y'>]>", "not-well-formed"),   # a DTD is only legal in the prolog
        ("<message from='a.example' to='b.example'><body>&lol;</body></message>", "restricted-xml"),
        ("<!-- a comment -->", "restricted-xml"),
        ("<foo:bar/>", "bad-namespace-prefix"),
        ("<message from='a.example' to='b.example'>\xff\xfe</message>", "not-well-formed"),
        ("<unknown-element/>", "unsupported-stanza-type"),
    ]
    for data, condition in cases:
        c = connected(r.port, "a.example", SECRET)
        c.send(data.encode("latin-1") if "\xff" in data else data)
        assert stream_error_condition(c.next_stanza()) == condition, data
        assert c.reader.wait_eof(), data
        c.close()


def test_dtd_and_entity_bomb_before_the_stream_are_refused(router):
    from harness import StreamReader
    r = router(COMPONENTS)
    laughs = "<!ENTITY lol 'lol'>" + "".join(
        f"<!ENTITY lol{i} '{('&lol%s;' % (i - 1 if i > 1 else '')) * 10}'>" for i in range(1, 10))
    for prolog in ("<!DOCTYPE stream:stream>", f"<!DOCTYPE lolz [{laughs}]>"):
        s = socket.create_connection(("127.0.0.1", r.port))
        s.sendall(("<?xml version='1.0'?>" + prolog + "<stream:stream xmlns='jabber:component:accept' "
                   "xmlns:stream='http://etherx.jabber.org/streams' to='a.example'>&lol9;").encode())
        rd = StreamReader(s)
        assert stream_error_condition(rd.next()) == "restricted-xml"
        assert rd.wait_eof()
        s.close()


def test_wrong_namespace_header(router):
    r = router(COMPONENTS)
    s = socket.create_connection(("127.0.0.1", r.port))
    s.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
              b"xmlns:stream='http://etherx.jabber.org/streams' to='a.example'>")
    from harness import StreamReader
    rd = StreamReader(s)
    assert stream_error_condition(rd.next()) == "invalid-namespace"
    assert rd.wait_eof()


def test_oversized_stanza_is_a_policy_violation(router):
    r = router(COMPONENTS, limits={"max-stanza-bytes": "4k"})
    a = connected(r.port, "a.example", SECRET)
    a.send("<message from='a.example' to='b.example'><body>" + "x" * 8000 + "</body></message>")
    assert stream_error_condition(a.next_stanza()) == "policy-violation"


def test_handshake_timeout(router):
    r = router(COMPONENTS, limits={"handshake-timeout": "1"})
    s = socket.create_connection(("127.0.0.1", r.port))
    from harness import StreamReader
    rd = StreamReader(s)
    t0 = time.time()
    assert stream_error_condition(rd.next(timeout=10)) == "connection-timeout"
    assert rd.wait_eof()
    assert time.time() - t0 < 8


def test_shutdown_tells_components(router):
    r = router(COMPONENTS)
    a = connected(r.port, "a.example", SECRET)
    r.proc.send_signal(signal.SIGTERM)
    assert stream_error_condition(a.next_stanza()) == "system-shutdown"
    assert a.reader.wait_eof()
    assert r.proc.wait(10) == 0


def test_queued_stanzas_of_a_vanished_component_are_bounced(router):
    """A destination that stops reading and then disconnects: what the router
    still held for it comes back to the sender as errors, not into the void."""
    r = router(COMPONENTS, limits={"write-queue-high": "64k"})
    a = connected(r.port, "a.example", SECRET)
    b = RawComponent(r.port, "b.example", SECRET, rcvbuf=4096)
    assert b.authenticate().tag == f"{{{NS_COMPONENT}}}handshake"
    body = "y" * 2000
    total = 3000

    def flood():
        for i in range(total):
            try:
                a.send(f"<message from='a.example' to='b.example' id='f{i}'><body>{body}</body></message>")
            except OSError:
                return
    t = threading.Thread(target=flood, daemon=True)
    t.start()
    time.sleep(2)     # b reads nothing: the router queues, then pauses a
    b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    b.close()         # reset: whatever the router still holds for b is undeliverable
    bounced = 0
    unsent_text = False
    while True:
        el = a.next_stanza(timeout=5)
        if el is None:
            break
        assert el.get("type") == "error"
        cond, _, code = stanza_error(el)
        assert cond == "service-unavailable" and code == "503"
        text = el.find(f"{{{NS_COMPONENT}}}error/{{urn:ietf:params:xml:ns:xmpp-stanzas}}text")
        if text is not None and "disconnected before delivery" in text.text:
            unsent_text = True
        bounced += 1
    t.join(timeout=30)
    assert bounced > 0
    assert unsent_text, "no stanza queued for the vanished component was bounced"


def test_slixmpp_component_exchanges_messages(router):
    """A real XEP-0114 library (slixmpp's ComponentXMPP) through the router."""
    import asyncio
    import slixmpp

    r = router(COMPONENTS)
    raw = connected(r.port, "b.example", SECRET)
    received = []

    async def main():
        comp = slixmpp.ComponentXMPP("a.example", SECRET, "127.0.0.1", r.port)
        done = asyncio.get_event_loop().create_future()

        def on_message(msg):
            received.append((str(msg["from"]), msg["body"]))
            msg.reply(f"echo: {msg['body']}").send()
            if not done.done():
                done.set_result(True)

        comp.add_event_handler("message", on_message)
        comp.add_event_handler("session_start",
                               lambda _: comp.send_message(mto="bob@b.example", mfrom="bot@a.example",
                                                           mbody="from slixmpp"))
        comp.connect()
        loop = asyncio.get_event_loop()
        # The raw component waits for the greeting, then writes to the slixmpp one.
        first = await loop.run_in_executor(None, raw.next_stanza)
        assert first is not None and first.find(f"{{{NS_COMPONENT}}}body").text == "from slixmpp"
        raw.send("<message from='bob@b.example/r' to='bot@a.example' type='chat'><body>ping</body></message>")
        await asyncio.wait_for(done, 10)
        reply = await loop.run_in_executor(None, raw.next_stanza)
        await comp.disconnect()
        return reply

    reply = asyncio.new_event_loop().run_until_complete(main())
    assert received == [("bob@b.example/r", "ping")]
    assert reply.find(f"{{{NS_COMPONENT}}}body").text == "echo: ping"
    assert reply.get("from") == "bot@a.example" and reply.get("to") == "bob@b.example/r"


def test_metrics_endpoint_counts_what_happens(router):
    import urllib.request
    from harness import free_port
    mport = free_port()
    cfg_components = COMPONENTS
    r = router(cfg_components)
    # The router fixture renders its own config; start a second router with metrics on.
    r.stop()
    path = r.argv[2]
    text = open(path).read().replace("</router>", f"<metrics><port>{mport}</port></metrics></router>")
    open(path, "w").write(text)
    r.start()
    r.wait_port(r.port)

    def scrape():
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        values = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                values[k] = float(v)
        return values
    before = scrape()
    a = connected(r.port, "a.example", SECRET)
    b = connected(r.port, "b.example", SECRET)
    for i in range(5):
        a.send(f"<message from='a.example' to='b.example' id='m{i}'/>")
    for i in range(5):
        assert b.next_stanza().get("id") == f"m{i}"
    a.send("<message from='a.example' to='x@nowhere.example' id='nr'/>")
    a.next_stanza()
    RawComponent(r.port, "a.example", "bad").authenticate()
    after = scrape()
    key = 'switchboard_router_stanzas_total{kind="message"}'
    assert after[key] - before.get(key, 0) == 5
    assert after["switchboard_router_bounces_total"] - before.get("switchboard_router_bounces_total", 0) == 1
    assert after["switchboard_router_auth_failures_total"] >= 1
    assert after["switchboard_router_connections"] >= 2
    assert after["switchboard_router_queued_bytes"] >= 0


def test_stanzas_in_client_or_server_namespace_are_routed_too(router):
    """A Switchboard process forwarding a client's stanza keeps its namespace."""
    r = router(COMPONENTS)
    a = connected(r.port, "a.example", SECRET)
    b = connected(r.port, "b.example", SECRET)
    a.send("<message xmlns='jabber:client' from='u@a.example' to='v@b.example' id='c1'><body>x</body></message>")
    a.send("<iq xmlns='jabber:server' from='a.example' to='b.example' type='get' id='s1'/>")
    got = b.next_stanza()
    assert got.tag == "{jabber:client}message" and got.get("id") == "c1"
    assert b.next_stanza().get("id") == "s1"
    a.send("<message xmlns='urn:example:other' from='u@a.example' to='v@b.example'/>")
    assert stream_error_condition(a.next_stanza()) == "unsupported-stanza-type"


def test_sighup_reloads_components_without_dropping_connections(router):
    """A new component entry takes effect on SIGHUP; connected components stay;
    a broken config is refused and the running one kept."""
    r = router(COMPONENTS)
    a = connected(r.port, "a.example", SECRET)
    path = r.argv[2]
    original = open(path).read()
    open(path, "w").write(original.replace("</router>", "<component name='new.example' secret='fresh'/></router>"))
    r.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "configuration reloaded" not in r.log() and time.time() < deadline:
        time.sleep(0.1)
    assert "configuration reloaded" in r.log()
    n = connected(r.port, "new.example", "fresh")
    n.send("<message from='new.example' to='a.example' id='after-reload'/>")
    assert a.next_stanza().get("id") == "after-reload", "the old connection was dropped"
    # A config that does not validate: refused, the running one stays.
    open(path, "w").write(original.replace("</router>", "<bogus/></router>"))
    r.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "reload refused" not in r.log() and time.time() < deadline:
        time.sleep(0.1)
    assert "reload refused" in r.log() and "unknown key 'bogus'" in r.log()
    n.close()
    time.sleep(0.2)
    assert connected(r.port, "new.example", "fresh") is not None
