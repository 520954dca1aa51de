"""Interop: our s2s federates with a real Prosody (Debian's 'prosody'), in
both directions, with dialback and opportunistic TLS.

Prosody serves prosody.example from a temporary directory; it finds our
server through a fake DNS server on loopback (SRV for sb.example, see
prosody.FakeDns), and we find it through our static hosts-map. A slixmpp
client logged in to Prosody talks to the raw component that plays our
local side."""
import asyncio

import pytest

from harness import NS_COMPONENT, free_port
from prosody import FakeDns, HalfServer, Prosody, lua_unbound_available, make_cert, prosody_available
from xmppclient import Client

pytestmark = pytest.mark.skipif(not prosody_available(), reason="prosody is not installed (apt package 'prosody')")

OURS = "sb.example"
THEIRS = "prosody.example"


def tag(name):
    return f"{{{NS_COMPONENT}}}{name}"


@pytest.fixture
def federation(tmp_path, router):
    """(our half server, prosody) ready to federate."""
    assert lua_unbound_available(), "Prosody needs the apt package lua-unbound to use the test's DNS server"
    dns = FakeDns({})
    cert, key = make_cert(str(tmp_path), OURS)
    ours = HalfServer(tmp_path, router, [OURS], "sb",
                      values={"tls/cert": cert, "tls/key": key, "limits/connect-timeout": 15})
    p_s2s, p_c2s = free_port(), free_port()
    ours.map(THEIRS, "127.0.0.1", p_s2s)
    dns.records[(f"_xmpp-server._tcp.{OURS}", "SRV")] = [(0, 0, ours.port, f"xmpp.{OURS}")]
    dns.records[(f"_xmpp-server._tcp.other.{OURS}", "SRV")] = [(0, 0, ours.port, f"xmpp.{OURS}")]
    dns.records[(f"xmpp.{OURS}", "A")] = ["127.0.0.1"]
    dns.names = {n for n, _ in dns.records}
    pdir = tmp_path / "prosody"
    pdir.mkdir()
    prosody = Prosody(pdir, THEIRS, p_s2s, p_c2s, dns.port)
    try:
        prosody.register("pat", "pat-password")
        prosody.start()
        ours.start()
        yield ours, prosody
    finally:
        prosody.stop()
        problem = ours.stop()
        dns.close()
        assert problem is None, problem


def debug(ours, prosody):
    return f"\n--- our s2s:\n{ours.log()[-5000:]}\n--- prosody:\n{prosody.log()[-6000:]}"


def next_local(ours, loop, match, timeout=20):
    """The next stanza at our local side for which match(el) is true."""
    async def get():
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            el = await loop.run_in_executor(None, ours.local.next_stanza, max(0.1, deadline - loop.time()))
            if el is not None and match(el):
                return el
        return None
    return get()


def run(coro, timeout=120):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        loop.run_until_complete(asyncio.sleep(0.1))
        loop.close()


def test_messages_cross_both_ways(federation):
    ours, prosody = federation

    async def main():
        loop = asyncio.get_event_loop()
        pat = Client(f"pat@{THEIRS}/phone", "pat-password", prosody.c2s_port)
        await pat.start()
        try:
            # Prosody -> us: Prosody connects to our s2s (SRV), we verify its
            # dialback key by connecting back to it.
            pat.send_message(mto=f"alice@{OURS}", mbody="hello from prosody", mtype="chat")
            got = await next_local(ours, loop, lambda el: el.tag == tag("message"))
            assert got is not None, "no message from Prosody" + debug(ours, prosody)
            assert got.get("from") == f"pat@{THEIRS}/phone" and got.get("to") == f"alice@{OURS}"
            assert got.find(tag("body")).text == "hello from prosody"
            # Us -> Prosody.
            ours.local.send(f"<message from='alice@{OURS}/desk' to='pat@{THEIRS}/phone' type='chat' id='x1'>"
                            f"<body>hello from switchboard</body></message>")
            try:
                msg = await pat.next_message(timeout=20)
            except asyncio.TimeoutError:
                raise AssertionError("no message at the Prosody client" + debug(ours, prosody))
            assert str(msg["from"]) == f"alice@{OURS}/desk" and msg["body"] == "hello from switchboard"
        finally:
            await pat.stop()

    run(main())


def test_peer_without_stream_management_confirms_on_write(federation):
    """Prosody (as configured here) does no stream management on server
    links: a message the sm sends numbered is confirmed once written to
    Prosody's stream (the semantics of docs/sessions.md §7 for such peers)."""
    ours, prosody = federation

    async def main():
        loop = asyncio.get_event_loop()
        pat = Client(f"pat@{THEIRS}/phone", "pat-password", prosody.c2s_port)
        await pat.start()
        try:
            ours.local.send(f"<route xmlns='urn:switchboard:router' to='s2s' from='{OURS}' s2s-seq='5'>"
                            f"<message xmlns='jabber:client' from='alice@{OURS}/desk' to='pat@{THEIRS}/phone' "
                            f"type='chat' id='n1'><body>numbered</body></message></route>")
            try:
                msg = await pat.next_message(timeout=20)
            except asyncio.TimeoutError:
                raise AssertionError("no message at the Prosody client" + debug(ours, prosody))
            assert msg["body"] == "numbered" and str(msg["from"]) == f"alice@{OURS}/desk"

            def confirmed():
                deadline = loop.time() + 20
                while loop.time() < deadline:
                    for env in ours.local.s2s_notes:
                        note = env.find("{urn:switchboard:session}s2s")
                        if note.get("action") == "confirmed":
                            return note.get("seqs")
                    el = ours.local.next(timeout=0.2)
                    if el is not None:
                        ours.local._notice(el)
                return None
            assert await loop.run_in_executor(None, confirmed) == "5", debug(ours, prosody)
            assert "stream management on" not in ours.log()
        finally:
            await pat.stop()

    run(main())


def test_subscriptions_and_probes_cross_both_ways(federation):
    ours, prosody = federation

    async def main():
        loop = asyncio.get_event_loop()
        pat = Client(f"pat@{THEIRS}/phone", "pat-password", prosody.c2s_port)
        pat.roster.auto_authorize = None   # answer subscription requests by hand
        await pat.start(presence=False)
        try:
            await pat.get_roster()   # an interested resource: it gets roster pushes
            # pat subscribes to alice (Prosody -> us).
            pat.send_presence(pto=f"alice@{OURS}", ptype="subscribe")
            sub = await next_local(ours, loop, lambda el: el.tag == tag("presence") and el.get("type") == "subscribe")
            assert sub is not None, "no subscription request" + debug(ours, prosody)
            assert sub.get("from") == f"pat@{THEIRS}"
            # alice approves (us -> Prosody): pat's roster says 'to'.
            ours.local.send(f"<presence from='alice@{OURS}' to='pat@{THEIRS}' type='subscribed'/>")
            item = await pat.next_push(f"alice@{OURS}", timeout=20)
            while item.get("subscription") != "to":
                item = await pat.next_push(f"alice@{OURS}", timeout=20)
            # pat comes online: Prosody probes alice's presence across the link
            # and sends pat's presence to her.
            pat.send_presence()
            probe = await next_local(ours, loop, lambda el: el.tag == tag("presence") and el.get("type") == "probe")
            assert probe is not None, "no presence probe" + debug(ours, prosody)
            assert probe.get("from").split("/")[0] == f"pat@{THEIRS}" and probe.get("to") == f"alice@{OURS}"
            # alice answers the probe with her presence.
            ours.local.send(f"<presence from='alice@{OURS}/desk' to='pat@{THEIRS}'><show>dnd</show></presence>")
            p = await pat.next_presence(lambda p: str(p["from"]) == f"alice@{OURS}/desk", timeout=20)
            assert p["show"] == "dnd"
            # alice subscribes to pat (us -> Prosody), pat approves (Prosody -> us).
            ours.local.send(f"<presence from='alice@{OURS}' to='pat@{THEIRS}' type='subscribe'/>")
            req = await pat.next_presence(lambda p: p["type"] == "subscribe", timeout=20)
            assert str(req["from"]) == f"alice@{OURS}"
            pat.send_presence(pto=f"alice@{OURS}", ptype="subscribed")
            ok = await next_local(ours, loop, lambda el: el.tag == tag("presence") and el.get("type") == "subscribed")
            assert ok is not None and ok.get("from") == f"pat@{THEIRS}", "no approval" + debug(ours, prosody)
            item = await pat.next_push(f"alice@{OURS}", timeout=20)
            while item.get("subscription") != "both":
                item = await pat.next_push(f"alice@{OURS}", timeout=20)
        finally:
            await pat.stop()

    run(main())


def test_prosody_domain_unknown_to_us_is_refused(federation):
    """A stream from Prosody to a domain we do not serve gets host-unknown;
    Prosody bounces the client's message."""
    ours, prosody = federation

    async def main():
        pat = Client(f"pat@{THEIRS}/phone", "pat-password", prosody.c2s_port)
        errors = asyncio.Queue()
        pat.add_event_handler("message_error", errors.put_nowait)
        await pat.start()
        try:
            # other.sb.example resolves (through the fake DNS) to our server,
            # which does not host it.
            pat.send_message(mto=f"bob@other.{OURS}", mbody="anyone?", mtype="chat")
            try:
                err = await asyncio.wait_for(errors.get(), 30)
            except asyncio.TimeoutError:
                raise AssertionError("expected a bounce" + debug(ours, prosody))
            assert err["type"] == "error" and str(err["from"]) == f"bob@other.{OURS}"
        finally:
            await pat.stop()

    run(main())
