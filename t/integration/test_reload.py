"""SIGHUP reloads what can change without dropping connections."""
import signal
import socket
import ssl
import time

from xmppclient import Client, run


def peer_cert(port):
    """The certificate a new direct-TLS connection to port is shown."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True)


def wait_log(proc, text, timeout=10):
    deadline = time.time() + timeout
    while text not in proc.log() and time.time() < deadline:
        time.sleep(0.1)
    return text in proc.log()


def test_c2s_reloads_its_certificate_and_keeps_sessions(server):
    srv = server()
    alice, bob = srv.add_user("alice", "pw-a"), srv.add_user("bob", "pw-b")
    c2s = srv.c2s[0]
    before = peer_cert(c2s.tls_port)

    async def main():
        a = await Client(alice + "/x", "pw-a", c2s.port, cafile=srv.cert).start()
        b = await Client(bob + "/y", "pw-b", c2s.port, cafile=srv.cert).start()
        # A new certificate in place, then SIGHUP.
        out = srv.ctl("tls-selfsigned", srv.cert, srv.key, "localhost")
        assert out.returncode == 0, out.stderr
        srv.proc(c2s.name).proc.send_signal(signal.SIGHUP)
        assert wait_log(srv.proc(c2s.name), "configuration reloaded")
        assert peer_cert(c2s.tls_port) != before, "new connections still get the old certificate"
        # The sessions that were there before still work.
        a.send_message(mto=bob + "/y", mbody="still here", mtype="chat")
        assert (await b.next_message())["body"] == "still here"
        await a.stop()
        await b.stop()
    run(main())


def test_bad_reload_is_refused_and_the_process_keeps_running(server):
    srv = server()
    c2s = srv.c2s[0]
    path = srv.proc(c2s.name).argv[2]
    text = open(path).read()
    open(path, "w").write(text.replace("</c2s>", "<limits-typo/></c2s>"))
    srv.proc(c2s.name).proc.send_signal(signal.SIGHUP)
    assert wait_log(srv.proc(c2s.name), "reload refused")
    assert "unknown key 'limits-typo'" in srv.proc(c2s.name).log()
    open(path, "w").write(text)
    # Still serving.
    with socket.create_connection(("127.0.0.1", c2s.port), timeout=5) as s:
        s.sendall(b"<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
                  b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
        got = b""
        deadline = time.time() + 10
        while b"</stream:features>" not in got and time.time() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        assert b"stream:features" in got


def test_sm_shutdown_waits_for_what_sessions_write(server):
    """SIGTERM while a user is online: the session ends and what that writes
    (here the last-activity record) lands before the sm closes the database."""
    import subprocess
    srv = server()
    alice = srv.add_user("alice", "pw-a")

    async def main():
        a = await Client(alice + "/x", "pw-a", srv.c2s[0].port, cafile=srv.cert).start()
        a.send_presence(pstatus="gone fishing", ptype="available")
        import asyncio
        await asyncio.sleep(0.5)
        srv.proc("sm").proc.send_signal(signal.SIGTERM)
        assert srv.proc("sm").proc.wait(30) == 0
        try:
            await a.stop()
        except Exception:
            pass
    run(main())
    out = subprocess.run(["psql", "-X", "-tA", srv.db, "-c",
                          "SELECT count(*) FROM last_activity WHERE username = 'alice'"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1", "the logout at shutdown was not stored"
    assert "still unanswered" not in srv.proc("sm").log()
