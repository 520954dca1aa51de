"""Each process serves Prometheus metrics; the numbers follow what happens."""
import urllib.request

from harness import free_port
from xmppclient import Client, run


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        body = resp.read().decode()
    values = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            values[k] = float(v)
    return values


def test_c2s_and_sm_metrics_move_with_sessions(server):
    c2s_m, sm_m = free_port(), free_port()
    srv = server(config={"c2s": {"metrics/port": c2s_m}, "sm": {"metrics/port": sm_m}})
    alice, bob = srv.add_user("alice", "pw-a"), srv.add_user("bob", "pw-b")
    assert scrape(sm_m)["switchboard_sm_sessions"] == 0
    assert scrape(sm_m)["switchboard_sm_database_ready"] == 1

    async def main():
        a = await Client(alice + "/m", "pw-a", srv.c2s[0].port, cafile=srv.cert).start()
        b = await Client(bob + "/m", "pw-b", srv.c2s[0].port, cafile=srv.cert).start()
        assert scrape(sm_m)["switchboard_sm_sessions"] == 2
        db = scrape(sm_m)
        assert db["switchboard_sm_database_requests_total"] > 0
        assert 0 < db["switchboard_sm_database_seconds_total"] < 60
        assert scrape(sm_m)["switchboard_sm_users_loaded"] >= 2
        assert scrape(c2s_m)["switchboard_c2s_connections"] == 2
        await b.stop()
        import asyncio
        for _ in range(50):
            if scrape(sm_m)["switchboard_sm_sessions"] == 1:
                break
            await asyncio.sleep(0.1)
        assert scrape(sm_m)["switchboard_sm_sessions"] == 1
        assert scrape(c2s_m)["switchboard_c2s_connections"] == 1
        await a.stop()
    run(main())
    # Anything but /metrics is not found.
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{c2s_m}/other", timeout=5)
        raise AssertionError("expected 404")
    except urllib.error.HTTPError as e:
        assert e.code == 404


def test_c2s_counts_stanzas_and_auth_failures_and_traces_one_user(server):
    c2s_m = free_port()
    srv = server(config={"c2s": {"metrics/port": c2s_m, "log/debug-jid": "alice@localhost"}})
    alice, bob = srv.add_user("alice", "pw-a"), srv.add_user("bob", "pw-b")
    before = scrape(c2s_m)

    async def main():
        import asyncio
        a = await Client(alice + "/t", "pw-a", srv.c2s[0].port, cafile=srv.cert).start(presence=False)
        b = await Client(bob + "/t", "pw-b", srv.c2s[0].port, cafile=srv.cert).start(presence=False)
        for i in range(3):
            a.send_message(mto=bob + "/t", mbody=f"secret body {i}", mtype="chat")
        for i in range(3):
            await b.next_message()
        bad = Client(alice + "/x", "wrong", srv.c2s[0].port, cafile=srv.cert)
        try:
            await bad.start(timeout=5)
        except (AssertionError, asyncio.TimeoutError):
            pass
        await bad.stop()
        await a.stop()
        await b.stop()
    run(main())
    after = scrape(c2s_m)
    key_in = 'switchboard_c2s_stanzas_total{direction="in",kind="message"}'
    key_out = 'switchboard_c2s_stanzas_total{direction="out",kind="message"}'
    assert after[key_in] - before.get(key_in, 0) >= 3
    assert after[key_out] - before.get(key_out, 0) >= 3
    assert after["switchboard_c2s_auth_failures_total"] >= 1
    log = srv.proc(srv.c2s[0].name).log()
    assert "trace alice@localhost/t" in log and "<message type='chat'" in log
    assert "trace bob@localhost" not in log, "only the chosen user is traced"
    assert "secret body" not in log, "message bodies must never be logged"
