"""End to end, as a user sees it: real slixmpp clients against the whole
server (c2s, sm, router, PostgreSQL). RFC 6121's add-contact walkthrough:
register, add a contact, subscribe both ways, presence, messages, offline
delivery, and all of it still there after the sm restarts."""
import asyncio

from xmppclient import Client, register_account, run


def is_type(ptype, frm=None):
    def match(p):
        return p["type"] == ptype and (frm is None or p["from"].bare == frm)
    return match


def test_register_subscribe_both_ways_chat_and_offline(server):
    srv = server()
    port = srv.c2s[0].port
    alice_jid, bob_jid = f"alice@{srv.domain}", f"bob@{srv.domain}"

    async def main():
        # In-band registration of both accounts (XEP-0077), then login.
        for jid in (alice_jid, bob_jid):
            await register_account(jid, "secret-" + jid, port)
        alice = await Client(alice_jid + "/home", "secret-" + alice_jid, port, cafile=srv.cert).start()
        bob = await Client(bob_jid + "/work", "secret-" + bob_jid, port, cafile=srv.cert).start()

        # Alice adds Bob (RFC 6121 §2.4): a push with subscription none.
        await alice.update_roster(bob_jid, name="Bob", groups=["Friends"])
        item = await alice.next_push(bob_jid)
        assert item["subscription"] == "none" and item["name"] == "Bob" and item["groups"] == ["Friends"]

        # Alice asks to subscribe (§3.1.1): her push shows ask='subscribe'; Bob gets the request.
        alice.send_presence_subscription(pto=bob_jid, ptype="subscribe")
        item = await alice.next_push(bob_jid)
        assert item["subscription"] == "none" and item["ask"] == "subscribe"
        req = await bob.next_presence(is_type("subscribe", alice_jid))
        assert req["to"].bare == bob_jid

        # Bob approves (§3.1.5): Bob's roster gets Alice with subscription from,
        # Alice's becomes 'to', and she receives Bob's current presence.
        bob.send_presence(pto=alice_jid, ptype="subscribed")
        item = await bob.next_push(alice_jid)
        assert item["subscription"] == "from"
        item = await alice.next_push(bob_jid)
        assert item["subscription"] == "to" and not item["ask"]
        await alice.next_presence(is_type("subscribed", bob_jid))
        avail = await alice.next_presence(is_type("available", bob_jid))
        assert str(avail["from"]) == bob_jid + "/work"

        # And the other way: both end at 'both'.
        bob.send_presence_subscription(pto=alice_jid, ptype="subscribe")
        item = await bob.next_push(alice_jid)
        assert item["subscription"] == "from" and item["ask"] == "subscribe"
        await alice.next_presence(is_type("subscribe", bob_jid))
        alice.send_presence(pto=bob_jid, ptype="subscribed")
        assert (await alice.next_push(bob_jid))["subscription"] == "both"
        assert (await bob.next_push(alice_jid))["subscription"] == "both"
        assert (await alice.get_roster_items())[bob_jid]["subscription"] == "both"
        assert (await bob.get_roster_items())[alice_jid]["subscription"] == "both"

        # Presence updates reach the contact.
        alice.send_presence(pstatus="reading", pshow="away")
        upd = await bob.next_presence(lambda p: p["from"].bare == alice_jid and p["status"] == "reading")
        assert upd["show"] == "away"

        # Chat both ways, with the sender's full JID stamped by the server.
        alice.send_message(mto=bob_jid, mbody="hi bob", mtype="chat")
        msg = await bob.next_message()
        assert msg["body"] == "hi bob" and str(msg["from"]) == alice_jid + "/home"
        bob.send_message(mto=alice_jid + "/home", mbody="hi alice", mtype="chat")
        assert (await alice.next_message())["body"] == "hi alice"

        # Bob leaves: Alice sees him go; what she sends meanwhile waits offline.
        await bob.stop()
        await alice.next_presence(is_type("unavailable", bob_jid))
        for i in range(3):
            alice.send_message(mto=bob_jid, mbody=f"offline {i}", mtype="chat")
        await asyncio.sleep(1)   # let the sm store them before it restarts
        await alice.stop()
        return

    run(main())

    # The sm restarts: rosters and offline messages are in PostgreSQL, not in its memory.
    srv.restart("sm")

    async def after():
        bob = await Client(bob_jid + "/phone", "secret-" + bob_jid, port, cafile=srv.cert).start()
        got = [await bob.next_message() for _ in range(3)]
        assert [m["body"] for m in got] == ["offline 0", "offline 1", "offline 2"]
        for m in got:
            assert m["from"].bare == alice_jid
            assert m["delay"]["stamp"] is not None, "offline message without <delay/>"
            assert m.xml.find("{jabber:x:delay}x") is not None, "no legacy jabber:x:delay"
        # Nothing more: each was delivered once.
        try:
            extra = await bob.next_message(timeout=1)
            raise AssertionError(f"unexpected extra message: {extra['body']}")
        except asyncio.TimeoutError:
            pass
        assert (await bob.get_roster_items())[alice_jid]["subscription"] == "both"
        await bob.stop()
    run(after())
