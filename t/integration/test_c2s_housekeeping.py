"""c2s housekeeping deadlines, kept per client in a schedule (c2s/stream.c)
rather than found by walking every client each second: the end of a
resumable session's resumption time, keepalives of several sessions, and
the unauthenticated deadline of connections next to sessions that stay."""
import time

from test_c2s_client import NS_SESSION, NS_SM, Client, q
from test_c2s_session import enable_sm, logged_in


def wait_for_log(srv, name, text, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in srv.proc(name).log():
            return True
        time.sleep(0.2)
    return False


def test_resumption_time_over_ends_the_session(server):
    srv = server(config={"c2s": {"sm/resume-timeout": "2", "log/level": "info"}})
    srv.add_user("alice", "pw-a")
    a = logged_in(srv, "alice", "pw-a", "phone")
    a.send("<presence/>")
    prev = enable_sm(a).get("id")
    assert prev
    a.drop()
    # The detached session is ended once its resumption time is over...
    assert wait_for_log(srv, "c2s-1", "resumption time over, ending the session")
    # ...and can no longer be resumed.
    n = Client(srv.c2s[0].port, cafile=srv.cert)
    n.open()
    n.starttls()
    n.scram("alice", "pw-a")
    n.open()
    n.send(f"<resume xmlns='{NS_SM}' previd='{prev}' h='0'/>")
    el = n.next()
    assert el is not None and el.tag == q(NS_SM, "failed")
    assert el.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None


def test_keepalives_of_several_sessions_and_unauthenticated_deadline(server):
    srv = server(config={"c2s": {"limits/keepalive-interval": "1", "limits/unauthenticated-timeout": "3"}})
    for i in range(3):
        srv.add_user(f"u{i}", "pw")
    sessions = [logged_in(srv, f"u{i}", "pw", "r") for i in range(3)]
    # Connections that never authenticate, opened after the sessions.
    waiting = []
    for _ in range(2):
        c = Client(srv.c2s[0].port, cafile=srv.cert)
        c.open()
        waiting.append(c)
    marks = [len(c.reader.raw) for c in sessions]
    for c in waiting:
        assert c.wait_error(30) == "connection-timeout"
    # Every session got whitespace keepalives meanwhile and is still open.
    for c, mark in zip(sessions, marks):
        assert c.next(timeout=1.5) is None   # reads what came: whitespace only
        assert len(c.reader.raw) > mark and c.reader.raw[mark:].strip() == b""
        el = c.iq("set", f"<session xmlns='{NS_SESSION}'/>")
        assert el is not None and el.get("type") == "result"
