"""switchboardctl against a running server (docs/admin-protocol.md): it
joins the router as a trusted component with the internal secret and asks
the sm. sessions lists who is online, kick ends sessions (the client sees
<policy-violation/>), announce reaches every online session as a headline
message, status shows the processes at the router; a wrong secret fails
clearly."""
import json
import os
import subprocess
import time

from harness import BUILD, free_port
from test_c2s_client import NS_CLIENT, Client, q

CTL = os.path.join(BUILD, "tools", "switchboardctl")


def ctl(srv, *args, env=None, stdin=None, config=True):
    e = dict(srv.env)
    e.update(env or {})
    argv = [CTL] + (["-c", os.path.join(srv.dir, "sm.xml")] if config else []) + list(args)
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=e, timeout=60)
    assert "AddressSanitizer" not in p.stderr and "runtime error:" not in p.stderr \
        and "LeakSanitizer" not in p.stderr, p.stderr
    return p


def logged_in(srv, user, password, resource):
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    jid = c.login(user, password, resource=resource)
    assert isinstance(jid, str), f"bind failed: {jid}"
    return c


def sessions(srv, *args):
    p = ctl(srv, "sessions", *args)
    assert p.returncode == 0, p.stderr
    return [line.split("\t") for line in p.stdout.splitlines()]


def wait_for(what, check, timeout=15):
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def next_message(client, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        el = client.next_stanza(max(0.1, deadline - time.time()))
        if el is None:
            return None
        if el.tag == q(NS_CLIENT, "message"):
            return el
    return None


def test_sessions_lists_every_online_session(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    srv.add_user("bob", "pw-b")
    # Keep every client referenced: a collected socket closes its session.
    phone = logged_in(srv, "alice", "pw-a", "phone")
    others = [logged_in(srv, "alice", "pw-a", "pc"), logged_in(srv, "bob", "pw-b", "work")]
    phone.send("<presence><priority>5</priority></presence>")

    rows = wait_for("alice/phone available",
                    lambda: (lambda r: r if any(x[0] == "alice@localhost/phone" and x[3] == "available"
                                                for x in r) else None)(sessions(srv)))
    assert [r[0] for r in rows] == ["alice@localhost/pc", "alice@localhost/phone", "bob@localhost/work"]
    by_jid = {r[0]: r for r in rows}
    assert all(len(r) == 5 for r in rows)
    assert by_jid["alice@localhost/phone"][1:4] == ["c2s-1", "5", "available"]
    assert by_jid["alice@localhost/pc"][1:4] == ["c2s-1", "0", "unavailable"]
    since = by_jid["bob@localhost/work"][4]
    assert since.endswith("Z") and since[:2] == "20" and "T" in since

    # The domain as an argument, and JSON lines.
    p = ctl(srv, "--json", "sessions", "localhost")
    assert p.returncode == 0, p.stderr
    objs = [json.loads(line) for line in p.stdout.splitlines()]
    assert [o["jid"] for o in objs] == [r[0] for r in rows]
    phone_obj = next(o for o in objs if o["jid"] == "alice@localhost/phone")
    assert phone_obj["available"] is True and phone_obj["priority"] == 5 and phone_obj["c2s"] == "c2s-1"

    # A domain nobody serves is an error.
    p = ctl(srv, "sessions", "nowhere.example")
    assert p.returncode == 1 and "nowhere.example" in p.stderr and p.stdout == ""
    assert all(c.jid for c in others)


def test_kick_a_full_jid_then_every_session_of_a_user(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    srv.add_user("bob", "pw-b")
    phone = logged_in(srv, "alice", "pw-a", "phone")
    pc = logged_in(srv, "alice", "pw-a", "pc")
    bob1 = logged_in(srv, "bob", "pw-b", "one")
    bob2 = logged_in(srv, "bob", "pw-b", "two")

    p = ctl(srv, "kick", "alice@localhost/phone")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "kicked alice@localhost/phone (c2s-1)\n"
    assert phone.wait_error(15) == "policy-violation"
    assert phone.reader.wait_eof()
    jids = wait_for("the kicked session to go",
                    lambda: (lambda r: r if "alice@localhost/phone" not in r else None)(
                        [x[0] for x in sessions(srv)]))
    assert "alice@localhost/pc" in jids
    # The other session of alice is untouched.
    el = pc.iq("get", "<query xmlns='jabber:iq:roster'/>", timeout=15)
    assert el is not None and el.get("type") == "result"

    # A bare JID: every session of the user.
    p = ctl(srv, "--json", "kick", "Bob@LocalHost")
    assert p.returncode == 0, p.stderr
    kicked = sorted(json.loads(line)["kicked"] for line in p.stdout.splitlines())
    assert kicked == ["bob@localhost/one", "bob@localhost/two"]
    assert bob1.wait_error(15) == "policy-violation"
    assert bob2.wait_error(15) == "policy-violation"
    wait_for("bob's sessions to go", lambda: [x[0] for x in sessions(srv)] == ["alice@localhost/pc"])

    # Nobody to kick, and not a user's JID.
    p = ctl(srv, "kick", "bob@localhost")
    assert p.returncode == 1 and "no session" in p.stderr
    p = ctl(srv, "kick", "localhost")
    assert p.returncode == 2


def test_announce_reaches_every_online_session(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    srv.add_user("bob", "pw-b")
    clients = [logged_in(srv, "alice", "pw-a", "phone"), logged_in(srv, "alice", "pw-a", "pc"),
               logged_in(srv, "bob", "pw-b", "work")]
    clients[0].send("<presence/>")

    text = "Maintenance at 22:00 <UTC> & a café break"
    p = ctl(srv, "announce", text)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "announced to 3 sessions of localhost\n"
    for c in clients:
        m = next_message(c)
        assert m is not None, f"{c.jid} got no announcement"
        assert m.get("type") == "headline" and m.get("from") == "localhost" and m.get("to") == c.jid
        assert m.find(q(NS_CLIENT, "body")).text == text

    # From standard input, several lines.
    p = ctl(srv, "announce", "--domain", "localhost", stdin="line one\nline two\n")
    assert p.returncode == 0, p.stderr
    for c in clients:
        m = next_message(c)
        assert m is not None and m.find(q(NS_CLIENT, "body")).text == "line one\nline two"

    # An empty message is refused before anything is sent.
    p = ctl(srv, "announce", stdin="")
    assert p.returncode == 2 and "empty" in p.stderr


def test_status_lists_the_processes_and_sessions_per_c2s(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    clients = [logged_in(srv, "alice", "pw-a", "phone"), logged_in(srv, "alice", "pw-a", "pc")]

    p = ctl(srv, "status")
    assert p.returncode == 0, p.stderr
    rows = [line.split("\t") for line in p.stdout.splitlines()]
    assert rows[0][:2] == ["router", "router"] and rows[0][2] == f"127.0.0.1:{srv.router_port}"
    by_name = {r[1]: r for r in rows[1:]}
    assert by_name["sm"][0] == "sm" and "sessions=2" in by_name["sm"] and "domains=localhost" in by_name["sm"]
    assert by_name["c2s-1"][0] == "c2s" and "sessions=2" in by_name["c2s-1"]
    assert by_name["localhost"][0] == "domain" and "sm=sm" in by_name["localhost"]
    assert not any(r[1].startswith("ctl-") for r in rows), "the tool lists itself"

    p = ctl(srv, "--json", "status")
    assert p.returncode == 0, p.stderr
    objs = {o["name"]: o for o in map(json.loads, p.stdout.splitlines())}
    assert objs["router"]["kind"] == "router"
    assert objs["c2s-1"] == {"kind": "c2s", "name": "c2s-1", "sessions": 2}
    assert objs["sm"]["domains"] == ["localhost"] and objs["sm"]["sessions"] == 2
    assert all(c.jid for c in clients)


def test_a_wrong_secret_or_no_router_fails_clearly(server):
    srv = server()
    p = ctl(srv, "sessions", env={"SWITCHBOARD_INTERNAL_SECRET": "not-the-secret"})
    assert p.returncode == 1 and p.stdout == ""
    assert "wrong internal secret" in p.stderr
    # No secret at all.
    e = {"SWITCHBOARD_INTERNAL_SECRET": ""}
    p = ctl(srv, "--router", f"127.0.0.1:{srv.router_port}", "--domain", "localhost", "status", env=e, config=False)
    assert p.returncode == 1 and "secret" in p.stderr
    # Nobody listening.
    p = ctl(srv, "--router", f"127.0.0.1:{free_port()}", "status")
    assert p.returncode == 1 and "cannot connect to the router" in p.stderr
    # Without a configuration file: the router address and the environment's secret.
    p = ctl(srv, "--router", f"127.0.0.1:{srv.router_port}", "sessions", "localhost", config=False)
    assert p.returncode == 0 and p.stdout == "", p.stderr
