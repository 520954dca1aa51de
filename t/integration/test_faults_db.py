"""PostgreSQL restarted while a user is sending (issue: faults, with nothing
lost). While the database is away: logins fail with temporary-auth-failure,
a message that has to be stored offline comes back with an error of type
'wait', and nothing is half-written; when it is back, the server recovers by
itself. At the end every message that was not refused reaches its
recipient exactly once, and none of the refused ones does.

The test has a PostgreSQL of its own (the other tests share one), so that
stopping it disturbs nobody else."""
import subprocess
import time

from server import PG_LOCAL, PgCluster, Server
from test_c2s_client import NS_CLIENT, NS_SASL, Client, q, sasl_condition

PER_PHASE = 20


def message_error_type(el):
    """The error type of a bounced message, or None for anything else."""
    if el is None or el.tag != q(NS_CLIENT, "message") or el.get("type") != "error":
        return None
    err = el.find(q(NS_CLIENT, "error"))
    return err.get("type") if err is not None else "?"


def send_phase(client, tag):
    ids = [f"{tag}{i}" for i in range(PER_PHASE)]
    for i in ids:
        client.send(f"<message to='bob@localhost' id='{i}' type='chat'><body>{i}</body></message>")
    return ids


def collect_bounces(client, until, timeout):
    """Read what comes back to the sender until until(bounced) or the timeout;
    returns {message id: error type}."""
    bounced = {}
    deadline = time.time() + timeout
    while not until(bounced) and time.time() < deadline:
        el = client.next_stanza(timeout=0.5)
        t = message_error_type(el)
        if t:
            bounced[el.get("id")] = t
    return bounced


def stored_count(pg, dbname):
    return int(pg.psql("SELECT count(*) FROM offline_messages", db=dbname).strip())


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_database_restart_loses_nothing_and_service_recovers(tmp_path):
    pg = PgCluster(str(tmp_path / "own-db"))
    srv = Server(pg, tmp_path / "srv")
    problems = []
    try:
        srv.start()
        srv.add_user("alice", "pw-Alice")
        srv.add_user("bob", "pw-Bob")
        alice = Client(srv.c2s[0].port, cafile=srv.cert)
        alice.login("alice", "pw-Alice", resource="desk")
        alice.send("<presence/>")

        # Phase A, database up: Bob is offline, everything is stored.
        a_ids = send_phase(alice, "a")
        wait_for(lambda: stored_count(pg, srv.dbname) == PER_PHASE, 30, "phase A stored")
        assert collect_bounces(alice, lambda b: False, 0.5) == {}

        # The database goes away (a fast shutdown: open transactions abort).
        out = subprocess.run([PG_LOCAL, "stop", pg.dir], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr

        # Phase B: every message comes back, as a temporary error.
        b_ids = send_phase(alice, "b")
        bounced_b = collect_bounces(alice, lambda b: len(b) >= PER_PHASE, 60)
        assert set(bounced_b) == set(b_ids), f"not bounced while the database was down: {set(b_ids) - set(bounced_b)}"
        assert set(bounced_b.values()) == {"wait"}, bounced_b

        # Logging in needs the credentials: a temporary failure, not a wrong password.
        c = Client(srv.c2s[0].port, cafile=srv.cert)
        c.open()
        c.starttls()
        assert sasl_condition(c.scram("bob", "pw-Bob")) == "temporary-auth-failure"
        c.close()

        # The database comes back; nobody restarts Switchboard.
        out = subprocess.run([PG_LOCAL, "start", pg.dir], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr

        def login_works():
            d = Client(srv.c2s[0].port, cafile=srv.cert)
            try:
                d.open()
                d.starttls()
                return d.scram("alice", "pw-Alice").tag == q(NS_SASL, "success")
            finally:
                d.close()
        wait_for(login_works, 90, "logins to work again")

        def sm_storage_works():
            # Alice's own vCard: a database read (an empty vCard if none is stored).
            el = alice.iq("get", "<vCard xmlns='vcard-temp'/>", timeout=10)
            return el is not None and el.get("type") == "result"
        wait_for(sm_storage_works, 90, "the sm's database requests to work again")

        # Phase C, database back: stored again (a bounce is allowed only as a
        # temporary error, and then the message must not arrive).
        c_ids = send_phase(alice, "c")
        bounced_c = {}

        def phase_c_settled():
            bounced_c.update(collect_bounces(alice, lambda b: False, 0.3))
            return stored_count(pg, srv.dbname) + len(bounced_c) == 2 * PER_PHASE
        wait_for(phase_c_settled, 60, "phase C stored or bounced")
        assert set(bounced_c.values()) <= {"wait"}, bounced_c
        assert len(bounced_c) == 0, f"bounced after recovery: {sorted(bounced_c)}"

        # Bob logs in: exactly A and C, each once, none of B.
        bob = Client(srv.c2s[0].port, cafile=srv.cert)
        bob.login("bob", "pw-Bob", resource="phone")
        bob.send("<presence/>")
        got = []
        deadline = time.time() + 30
        expected = set(a_ids) | (set(c_ids) - set(bounced_c))
        while len(got) < len(expected) and time.time() < deadline:
            el = bob.next_stanza(timeout=1)
            if el is not None and el.tag == q(NS_CLIENT, "message") and el.get("type") == "chat":
                got.append(el.findtext(q(NS_CLIENT, "body")))
        # Anything more (a duplicate) would arrive right behind.
        end = time.time() + 1.5
        while time.time() < end:
            el = bob.next_stanza(timeout=0.3)
            if el is not None and el.tag == q(NS_CLIENT, "message") and el.get("type") == "chat":
                got.append(el.findtext(q(NS_CLIENT, "body")))
        assert len(got) == len(set(got)), f"delivered twice: {[g for g in got if got.count(g) > 1]}"
        assert set(got) == expected, f"missing {expected - set(got)}, unexpected {set(got) - expected}"
        assert got == sorted(got, key=lambda i: (i[0], int(i[1:]))), "offline messages out of order"
        wait_for(lambda: stored_count(pg, srv.dbname) == 0, 30, "delivered messages to leave the store")
    finally:
        problems = srv.finish()
        pg.stop()
    assert not problems, "\n".join(problems)
