"""Real clients from Debian against c2s: slixmpp over STARTTLS with
SCRAM-SHA-256 and SCRAM-SHA-1 and over direct TLS (XEP-0368), and aioxmpp
over STARTTLS. Each logs in, binds, and exchanges a message."""
import asyncio

import pytest

from xmppclient import Client as _Client, run


def Client(*args, **kw):
    """The shared slixmpp wrapper, without the in-band registration step: slixmpp
    1.8 answers the <register/> stream feature by queueing an iq until the
    session starts, which never comes."""
    c = _Client(*args, **kw)
    c.plugin["xep_0077"].create_account = False
    return c


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_slixmpp_starttls_scram(server, mech):
    srv = server()
    srv.add_user("alice", "pw-Alice")
    srv.add_user("bob", "pw-Bob")

    async def main():
        alice = await Client("alice@localhost/sli", "pw-Alice", srv.c2s[0].port, cafile=srv.cert,
                             sasl_mech=mech).start()
        bob = await Client("bob@localhost/sli", "pw-Bob", srv.c2s[0].port, cafile=srv.cert).start()
        assert str(alice.boundjid) == "alice@localhost/sli"
        alice.send_message(mto="bob@localhost/sli", mbody="hello over " + mech, mtype="chat")
        msg = await bob.next_message()
        assert msg["body"] == "hello over " + mech and str(msg["from"]) == "alice@localhost/sli"
        await alice.stop()
        await bob.stop()
    run(main())
    assert f"authenticated as alice@localhost ({mech})" in srv.proc("c2s-1").log()


def test_slixmpp_direct_tls(server):
    srv = server()
    srv.add_user("carol", "pw-Carol")

    async def main():
        carol = await Client("carol@localhost/tls", "pw-Carol", srv.c2s[0].tls_port, cafile=srv.cert,
                             direct_tls=True).start()
        assert str(carol.boundjid) == "carol@localhost/tls"
        items = await carol.get_roster_items()
        assert items == {}
        await carol.stop()
    run(main())


def test_aioxmpp_starttls(server):
    aioxmpp = pytest.importorskip("aioxmpp")
    srv = server()
    srv.add_user("dave", "pw-Dave")
    srv.add_user("erin", "pw-Erin")

    async def main():
        def client(jid, pw):
            return aioxmpp.PresenceManagedClient(
                aioxmpp.JID.fromstr(jid),
                aioxmpp.make_security_layer(pw, no_verify=True),
                override_peer=[("127.0.0.1", srv.c2s[0].port, aioxmpp.connector.STARTTLSConnector())])
        dave = client("dave@localhost/aio", "pw-Dave")
        erin = client("erin@localhost/aio", "pw-Erin")
        got = asyncio.get_event_loop().create_future()
        async with dave.connected() as dstream, erin.connected():
            assert str(dave.local_jid) == "dave@localhost/aio"

            def on_message(msg):
                if msg.body and not got.done():
                    got.set_result(msg)
            erin.stream.register_message_callback(aioxmpp.MessageType.CHAT, None, on_message)
            msg = aioxmpp.Message(to=aioxmpp.JID.fromstr("erin@localhost/aio"), type_=aioxmpp.MessageType.CHAT)
            msg.body[None] = "hello from aioxmpp"
            await dstream.send(msg)
            m = await asyncio.wait_for(got, 15)
            assert m.body.any() == "hello from aioxmpp"
            assert str(m.from_) == "dave@localhost/aio"
    run(main())
