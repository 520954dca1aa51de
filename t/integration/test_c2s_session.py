"""c2s sessions against the real sm: resource binding (RFC 6120 §7), 'from'
stamping (§8.1.2.1), conflicts, the sm going away, stream management
(XEP-0198), limits, and several c2s processes on one port."""
import threading
import time

from test_c2s_client import NS_CLIENT, NS_SESSION, NS_SM, Client, q, stanza_error


def logged_in(srv, user, password, resource=None, port=None):
    c = Client(port or srv.c2s[0].port, cafile=srv.cert)
    jid = c.login(user, password, resource=resource)
    assert isinstance(jid, str), f"bind failed: {jid}"
    return c


def test_bind_chosen_generated_and_invalid_resources(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    c = logged_in(srv, "alice", "pw-a", resource="Phone")
    assert c.jid == "alice@localhost/Phone"
    # One resource per stream.
    el = c.bind("again", iq_id="b2")
    assert el.get("type") == "error" and stanza_error(el)[0] == "not-allowed"
    # The legacy session iq is answered.
    el = c.iq("set", f"<session xmlns='{NS_SESSION}'/>")
    assert el.get("type") == "result"
    d = Client(srv.c2s[0].port, cafile=srv.cert)
    jid = d.login("alice", "pw-a")
    node, rest = jid.split("@")
    assert node == "alice" and rest.startswith("localhost/") and len(rest) > len("localhost/")
    e = Client(srv.c2s[0].port, cafile=srv.cert)
    el = e.login("alice", "pw-a", resource="bad\u200eres")   # U+200E is prohibited by Resourceprep
    assert el.get("type") == "error" and stanza_error(el)[0] == "bad-request"
    # Binding can be tried again on the same stream.
    assert e.bind("good", iq_id="b3") == "alice@localhost/good"


def test_stanzas_before_bind_are_not_authorized(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    c.starttls()
    c.scram("alice", "pw-a")
    c.open()
    c.send("<message to='bob@localhost'><body>x</body></message>")
    assert c.wait_error() == "not-authorized"


def test_from_is_stamped_with_the_full_jid(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    srv.add_user("bob", "pw-b")
    a = logged_in(srv, "alice", "pw-a", "phone")
    b = logged_in(srv, "bob", "pw-b", "pc")
    a.send("<message to='bob@localhost/pc' from='mallory@evil.example/x' type='chat' id='m1'><body>hi</body></message>")
    while True:
        el = b.next_stanza()
        assert el is not None, "message not delivered"
        if el.tag == q(NS_CLIENT, "message"):
            break
    assert el.get("from") == "alice@localhost/phone"
    assert el.find(q(NS_CLIENT, "body")).text == "hi"


def test_new_session_wins_a_resource_conflict(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    old = logged_in(srv, "alice", "pw-a", "same")
    new = logged_in(srv, "alice", "pw-a", "same")
    assert new.jid == "alice@localhost/same"
    assert old.wait_error(15) == "conflict"
    assert old.reader.wait_eof()
    # The new session works.
    el = new.iq("get", "<query xmlns='jabber:iq:roster'/>", timeout=15)
    assert el.get("type") == "result"


def test_sm_going_away_closes_sessions(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    c = logged_in(srv, "alice", "pw-a", "r")
    srv.proc("sm").stop()
    assert c.wait_error(20) == "system-shutdown"
    # Not authenticated clients are not thrown out, but binding is refused while the sm is away.
    d = Client(srv.c2s[0].port, cafile=srv.cert)
    el = d.login("alice", "pw-a", resource="r2")
    assert el.get("type") == "error" and stanza_error(el)[0] == "service-unavailable"


def test_keepalive_and_idle_timeout(server):
    srv = server(config={"c2s": {"limits/keepalive-interval": "1", "limits/idle-timeout": "4"}})
    srv.add_user("alice", "pw-a")
    c = logged_in(srv, "alice", "pw-a", "r")
    mark = len(c.reader.raw)
    # The server sends whitespace while nothing else is said...
    assert c.next(timeout=2.5) is None
    assert c.reader.raw[mark:].strip() == b"" and len(c.reader.raw) > mark
    # ...and ends a stream on which the client stays silent.
    assert c.wait_error(15) == "connection-timeout"


def test_flooder_is_slowed_down_then_disconnected(server):
    srv = server(sm=False, config={"c2s": {"limits/rate-bytes": "2k", "limits/rate-burst": "4k",
                                           "limits/rate-disconnect-after": "2", "log/level": "info"}})
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()

    def flood():
        try:
            for _ in range(200):
                c.raw.sendall(b" " * 4096)
        except OSError:
            pass
    t = threading.Thread(target=flood, daemon=True)
    t.start()
    assert c.wait_error(30) == "policy-violation"
    log = srv.proc("c2s-1").log()
    assert "slowing it down" in log and "disconnecting" in log


# ---- stream management (XEP-0198) ----

def enable_sm(c, resume=True):
    c.send(f"<enable xmlns='{NS_SM}'" + (" resume='true'" if resume else "") + "/>")
    el = c.next()
    while el is not None and el.tag.startswith(f"{{{NS_CLIENT}}}"):
        el = c.next()   # stanzas sent before stream management was on
    assert el is not None and el.tag == q(NS_SM, "enabled"), f"enable failed: {el}"
    c.sm_h = 0
    return el


def next_message(c, timeout=10):
    while True:
        el = c.next_stanza(timeout)
        if el is None or el.tag == q(NS_CLIENT, "message"):
            return el


def test_sm_counting(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    c = logged_in(srv, "alice", "pw-a", "r")
    # Before enable, <r/> is not understood... enable first.
    el = enable_sm(c, resume=False)
    assert el.get("id") is None
    c.send(f"<r xmlns='{NS_SM}'/>")
    a = c.next()
    assert a.tag == q(NS_SM, "a") and a.get("h") == "0"
    c.send("<presence/>")
    c.send("<iq type='get' id='x1'><query xmlns='jabber:iq:roster'/></iq>")
    c.send(f"<r xmlns='{NS_SM}'/>")
    while True:
        el = c.next()
        assert el is not None
        if el.tag == q(NS_SM, "a"):
            break
    assert el.get("h") == "2"
    # Acknowledging more than was sent is an error.
    c.send(f"<a xmlns='{NS_SM}' h='1000'/>")
    assert c.wait_error() == "undefined-condition"


def test_sm_resumption_after_a_dropped_connection(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    srv.add_user("bob", "pw-b")
    a = logged_in(srv, "alice", "pw-a", "phone")
    a.send("<presence/>")
    enabled = enable_sm(a)
    prev = enabled.get("id")
    assert enabled.get("resume") in ("true", "1") and prev
    b = logged_in(srv, "bob", "pw-b", "pc")
    b.send("<message to='alice@localhost/phone' type='chat'><body>one</body></message>")
    assert next_message(a).find(q(NS_CLIENT, "body")).text == "one"
    # The TCP connection dies without a word; bob goes on writing.
    a.drop()
    for body in ("two", "three"):
        b.send(f"<message to='alice@localhost/phone' type='chat'><body>{body}</body></message>")
    time.sleep(0.5)
    # Alice comes back and resumes, telling the server she handled one stanza
    # of the old stream (the message 'one'; presence to herself may count too).
    n = Client(srv.c2s[0].port, cafile=srv.cert)
    n.open()
    n.starttls()
    n.scram("alice", "pw-a")
    n.open()
    n.send(f"<resume xmlns='{NS_SM}' previd='{prev}' h='0'/>")
    el = n.next()
    assert el is not None and el.tag == q(NS_SM, "resumed"), f"resume failed: {el}"
    assert el.get("previd") == prev
    bodies = []
    deadline = time.time() + 15
    while time.time() < deadline and "three" not in bodies:
        m = next_message(n, timeout=max(0.1, deadline - time.time()))
        if m is None:
            break
        bodies.append(m.find(q(NS_CLIENT, "body")).text)
    # Nothing lost: everything not acknowledged is sent again, in order.
    assert bodies[-2:] == ["two", "three"] and "one" in bodies
    # The resumed session is the same one: it still receives.
    b.send("<message to='alice@localhost/phone' type='chat'><body>four</body></message>")
    assert next_message(n).find(q(NS_CLIENT, "body")).text == "four"


def test_sm_resume_of_unknown_session_fails(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    n = Client(srv.c2s[0].port, cafile=srv.cert)
    n.open()
    n.starttls()
    n.scram("alice", "pw-a")
    n.open()
    n.send(f"<resume xmlns='{NS_SM}' previd='nope' h='0'/>")
    el = n.next()
    assert el.tag == q(NS_SM, "failed")
    assert el.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None
    # Binding is still possible.
    assert n.bind("r") == "alice@localhost/r"


def test_unacknowledged_stanzas_go_offline_on_close(server):
    srv = server(config={"c2s": {"sm/resume-timeout": "0"}})
    srv.add_user("alice", "pw-a")
    srv.add_user("bob", "pw-b")
    a = logged_in(srv, "alice", "pw-a", "phone")
    a.send("<presence/>")
    enable_sm(a, resume=False)
    b = logged_in(srv, "bob", "pw-b", "pc")
    b.send("<message to='alice@localhost' type='chat'><body>keep me</body></message>")
    assert next_message(a).find(q(NS_CLIENT, "body")).text == "keep me"
    # Alice never acknowledges it and her connection dies.
    a.drop()
    time.sleep(1)
    # Handed back to the sm, the message went to offline storage.
    c = logged_in(srv, "alice", "pw-a", "laptop")
    c.send("<presence/>")
    m = next_message(c, timeout=15)
    assert m is not None and m.find(q(NS_CLIENT, "body")).text == "keep me"


# ---- several c2s processes on one port ----

def test_two_c2s_processes_share_a_port(server):
    srv = server(c2s=2, config={"c2s_shared_port": True})
    assert srv.c2s[0].port == srv.c2s[1].port
    users = [f"u{i}" for i in range(12)]
    for u in users:
        srv.add_user(u, "pw")
    clients = [logged_in(srv, u, "pw", "r") for u in users]
    logs = [srv.proc(c.name).log() for c in srv.c2s]
    served = [sum(f"authenticated as {u}@localhost" in log for u in users) for log in logs]
    assert sum(served) == len(users)
    # The kernel spreads connections over both (12 connections all on one is
    # very unlikely; retry a few more if it happened).
    extra = []
    while min(served) == 0 and len(extra) < 40:
        extra.append(logged_in(srv, users[len(extra) % len(users)], "pw"))
        logs = [srv.proc(c.name).log() for c in srv.c2s]
        served = [log.count("authenticated as") for log in logs]
    assert min(served) > 0, "one c2s got every connection"
    # Messages cross between the processes.
    first = {i: None for i in range(2)}
    for u, c in zip(users, clients):
        for i, log in enumerate(logs):
            if f"authenticated as {u}@localhost" in log and first[i] is None:
                first[i] = (u, c)
    (u0, c0), (u1, c1) = first[0], first[1]
    c0.send(f"<message to='{u1}@localhost/r' type='chat'><body>across</body></message>")
    m = next_message(c1, timeout=15)
    assert m is not None and m.get("from") == f"{u0}@localhost/r"
