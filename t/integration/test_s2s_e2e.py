"""Two whole Switchboard servers (c2s, sm, router, s2s) for a.test and
b.test federate: users on each side subscribe to each other, see roster
states change, presence (including probes) and messages cross the link."""
import os

import pytest

from harness import BUILD, Process, free_port
from prosody import dead_port, render_s2s_config
from xmppclient import Client, run

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(os.path.join(BUILD, *p)) for p in
            (("sm", "switchboard-sm"), ("c2s", "switchboard-c2s"), ("s2s", "switchboard-s2s"))),
    reason="needs the sm, c2s and s2s builds")


def start_s2s(srv, port, peers, tmp):
    cfg = os.path.join(tmp, f"s2s-{srv.domain}.xml")
    render_s2s_config(cfg, {
        "router/host": "127.0.0.1", "router/port": srv.router_port, "router/name": "s2s",
        "log/level": "info", "listen/address": "127.0.0.1", "listen/port": port,
        "dialback/secret": "env:SWITCHBOARD_DIALBACK_SECRET",
        "dns/nameserver": f"127.0.0.1:{dead_port()}",
        "tls/cert": srv.cert, "tls/key": srv.key,
    }, [srv.domain], peers)
    env = dict(srv.env, SWITCHBOARD_DIALBACK_SECRET=f"dialback-{srv.domain}-{port}")
    p = Process([os.path.join(BUILD, "s2s", "switchboard-s2s"), "-c", cfg], os.path.join(tmp, f"s2s-{srv.domain}.log"),
                env=env)
    p.start()
    p.wait_port(port)
    srv.wait_names(["s2s"])
    return p


@pytest.fixture
def federated(server, tmp_path):
    a = server(c2s=1, sm=True, domain="a.test")
    b = server(c2s=1, sm=True, domain="b.test")
    pa, pb = free_port(), free_port()
    procs = []
    try:
        procs.append(start_s2s(a, pa, [("b.test", "127.0.0.1", pb)], str(tmp_path)))
        procs.append(start_s2s(b, pb, [("a.test", "127.0.0.1", pa)], str(tmp_path)))
        yield a, b
    finally:
        problems = []
        for p in procs:
            rc = p.stop()
            log = p.log()
            if rc != 0 or "ERROR: AddressSanitizer" in log or "runtime error:" in log:
                problems.append(f"s2s exited with {rc}:\n{log[-5000:]}")
        assert not problems, "\n".join(problems)


def is_type(ptype, frm=None):
    def match(p):
        return p["type"] == ptype and (frm is None or p["from"].bare == frm)
    return match


def test_subscribe_both_ways_presence_and_chat_across_servers(federated):
    a, b = federated
    alice_jid, bob_jid = a.add_user("alice", "alice-pw"), b.add_user("bob", "bob-pw")

    async def main():
        alice = await Client(alice_jid + "/home", "alice-pw", a.c2s[0].port, cafile=a.cert).start()
        bob = await Client(bob_jid + "/work", "bob-pw", b.c2s[0].port, cafile=b.cert).start()
        try:
            await alice.get_roster_items()
            await bob.get_roster_items()
            # alice (a.test) asks bob (b.test): the request crosses the link.
            alice.send_presence_subscription(pto=bob_jid, ptype="subscribe")
            item = await alice.next_push(bob_jid, timeout=20)
            assert item["subscription"] == "none" and item["ask"] == "subscribe"
            req = await bob.next_presence(is_type("subscribe", alice_jid), timeout=20)
            assert req["to"].bare == bob_jid
            # bob approves: his roster says 'from', alice's 'to', and she gets his presence.
            bob.send_presence(pto=alice_jid, ptype="subscribed")
            assert (await bob.next_push(alice_jid, timeout=20))["subscription"] == "from"
            item = await alice.next_push(bob_jid, timeout=20)
            assert item["subscription"] == "to" and not item["ask"]
            avail = await alice.next_presence(is_type("available", bob_jid), timeout=20)
            assert str(avail["from"]) == bob_jid + "/work"
            # The other way round: both end at 'both'.
            bob.send_presence_subscription(pto=alice_jid, ptype="subscribe")
            item = await bob.next_push(alice_jid, timeout=20)
            assert item["subscription"] == "from" and item["ask"] == "subscribe"
            await alice.next_presence(is_type("subscribe", bob_jid), timeout=20)
            alice.send_presence(pto=bob_jid, ptype="subscribed")
            assert (await alice.next_push(bob_jid, timeout=20))["subscription"] == "both"
            assert (await bob.next_push(alice_jid, timeout=20))["subscription"] == "both"
            # Chat both ways.
            alice.send_message(mto=bob_jid, mbody="hi bob, from a.test", mtype="chat")
            msg = await bob.next_message(timeout=20)
            assert msg["body"] == "hi bob, from a.test" and str(msg["from"]) == alice_jid + "/home"
            bob.send_message(mto=alice_jid + "/home", mbody="hi alice", mtype="chat")
            assert (await alice.next_message(timeout=20))["body"] == "hi alice"
            # alice leaves and comes back: her server probes bob across the link
            # and his presence comes back to her.
            await alice.stop()
            await bob.next_presence(is_type("unavailable", alice_jid), timeout=20)
            alice = await Client(alice_jid + "/laptop", "alice-pw", a.c2s[0].port, cafile=a.cert).start()
            back = await alice.next_presence(is_type("available", bob_jid), timeout=20)
            assert str(back["from"]) == bob_jid + "/work"
            await bob.next_presence(lambda p: str(p["from"]) == alice_jid + "/laptop", timeout=20)
        finally:
            await alice.stop()
            await bob.stop()

    run(main(), timeout=180)
