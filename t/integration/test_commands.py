"""The README's commands and the shipped configuration files."""
import os
import signal
import subprocess
import time

from harness import BUILD, TOP, connected, free_port

ROUTER = os.path.join(BUILD, "router", "switchboard-router")


def test_shipped_router_config_is_valid():
    env = dict(os.environ, SWITCHBOARD_INTERNAL_SECRET="x" * 32, SWITCHBOARD_COMPONENT_SECRET="dev")
    out = subprocess.run([ROUTER, "--check", "-c", os.path.join(TOP, "etc", "router.xml")],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_bad_config_is_refused_with_file_line_and_key(tmp_path):
    cfg = tmp_path / "router.xml"
    cfg.write_text("<router>\n  <listen>\n    <prot>5347</prot>\n  </listen>\n</router>\n")
    out = subprocess.run([ROUTER, "-c", str(cfg)], capture_output=True, text=True)
    assert out.returncode == 2
    line = out.stderr.strip().splitlines()[-1]
    assert f"{cfg}:3:" in line and "unknown key 'listen/prot'" in line


def test_missing_secret_is_refused_without_printing_it(tmp_path):
    cfg = tmp_path / "router.xml"
    cfg.write_text("<router><component name='x' secret='env:SB_TEST_UNSET_SECRET'/></router>")
    env = {k: v for k, v in os.environ.items() if k != "SB_TEST_UNSET_SECRET"}
    out = subprocess.run([ROUTER, "-c", str(cfg)], capture_output=True, text=True, env=env)
    assert out.returncode == 2
    assert "component/@secret" in out.stderr and "SB_TEST_UNSET_SECRET" in out.stderr


def test_switchboard_up_serves_real_clients_and_ctrl_c_stops_it(tmp_path):
    """./switchboard up, as the README says, in its own state directory and
    ports: PostgreSQL, router, sm, s2s and two c2s under supervisord. Two
    real clients register in-band, log in and exchange a message; a
    component connects with the documented development secret; SIGINT
    (Ctrl-C) stops every process."""
    import socket
    from xmppclient import Client, register_account, run
    ports = {name: free_port() for name in ("ROUTER", "C2S", "C2S_TLS", "S2S")}
    env = dict(os.environ, SWITCHBOARD_STATE=str(tmp_path / "state"),
               **{f"SWITCHBOARD_{k}_PORT": str(v) for k, v in ports.items()})
    for k in ("SWITCHBOARD_COMPONENT_SECRET", "SWITCHBOARD_DB", "SWITCHBOARD_INTERNAL_SECRET"):
        env.pop(k, None)
    log = open(tmp_path / "up.log", "wb")
    p = subprocess.Popen([os.path.join(TOP, "switchboard"), "up"], cwd=TOP, env=env, stdout=log,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 900   # the first run builds the release tree
        comp = None
        while time.time() < deadline and p.poll() is None:
            try:
                comp = connected(ports["ROUTER"], "gateway.localhost", "switchboard-dev")
                break
            except (OSError, AssertionError):
                time.sleep(0.5)
        assert comp is not None, (tmp_path / "up.log").read_text()
        comp.close()
        c2s = ports["C2S"]

        async def chat():
            # The sm and the c2s processes may still be joining the router.
            for attempt in range(60):
                try:
                    await register_account("erin@localhost", "pw-erin", c2s)
                    break
                except Exception:
                    if attempt == 59:
                        raise
                    await asyncio.sleep(0.5)
            await register_account("frank@localhost", "pw-frank", c2s)

            async def login(jid, pw):
                # Either c2s may take the connection; one still connecting to
                # the database answers temporary-auth-failure: try again.
                for attempt in range(60):
                    client = Client(jid, pw, c2s)
                    try:
                        return await client.start(timeout=10)
                    except (AssertionError, asyncio.TimeoutError):
                        await client.stop()
                        if attempt == 59:
                            raise
                        await asyncio.sleep(0.5)
            erin = await login("erin@localhost/laptop", "pw-erin")
            frank = await login("frank@localhost/phone", "pw-frank")
            erin.send_message(mto="frank@localhost/phone", mbody="up and running", mtype="chat")
            msg = await frank.next_message()
            assert msg["body"] == "up and running" and str(msg["from"]) == "erin@localhost/laptop"
            await erin.stop()
            await frank.stop()
        import asyncio
        run(chat())

        # A c2s dies hard: supervisord starts it again, and clients get back in.
        sup_log = tmp_path / "state" / "log" / "supervisord.log"
        out = subprocess.run(["pgrep", "-f", f"switchboard-c2s -c {tmp_path}/state/etc/c2s.xml --name c2s-1"],
                             capture_output=True, text=True)
        pids = out.stdout.split()
        assert len(pids) == 1, out
        os.kill(int(pids[0]), signal.SIGKILL)
        deadline = time.time() + 60
        while time.time() < deadline and sup_log.read_text().count("spawned: 'c2s-1'") < 2:
            time.sleep(0.2)
        assert sup_log.read_text().count("spawned: 'c2s-1'") == 2, sup_log.read_text()

        async def again():
            for attempt in range(60):
                client = Client("erin@localhost/again", "pw-erin", c2s)
                try:
                    await client.start(timeout=10)
                    break
                except (AssertionError, asyncio.TimeoutError):
                    await client.stop()
                    if attempt == 59:
                        raise
                    await asyncio.sleep(0.5)
            client.send_message(mto="erin@localhost/again", mbody="back", mtype="chat")
            assert (await client.next_message())["body"] == "back"
            await client.stop()
        run(again())

        os.killpg(p.pid, signal.SIGINT)
        p.wait(60)
        time.sleep(0.5)
        for port in ports.values():
            s = socket.socket()
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"
            s.close()
        sup = (tmp_path / "state" / "log" / "supervisord.log").read_text()
        for proc in ("router", "sm", "s2s", "c2s-1", "c2s-2", "postgres"):
            assert f"stopped: {proc} (exit status 0)" in sup, f"{proc} did not stop cleanly:\n{sup}"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()


def test_meson_install_puts_everything_in_place(tmp_path):
    """Packaging basics: binaries, configs, SQL migrations, man pages, docs."""
    dest = tmp_path / "root"
    out = subprocess.run(["meson", "install", "-C", BUILD, "--destdir", str(dest), "--no-rebuild"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    files = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    prefix = subprocess.run(["meson", "introspect", "--buildoptions", BUILD], capture_output=True, text=True)
    import json
    opts = {o["name"]: o["value"] for o in json.loads(prefix.stdout)}
    pre = opts["prefix"].lstrip("/")
    for exe in ("switchboard-router", "switchboard-c2s", "switchboard-sm", "switchboard-s2s", "switchboardctl"):
        assert f"{pre}/bin/{exe}" in files
        assert f"{pre}/share/man/man8/{exe}.8" in files
    for cfg in ("router", "c2s", "sm", "s2s"):
        assert any(f.endswith(f"switchboard/{cfg}.xml") for f in files), cfg
    assert f"{pre}/share/switchboard/migrations/001_initial.sql" in files
    assert f"{pre}/share/doc/switchboard/router-protocol.md" in files


def test_multi_host_example_configs_are_valid(tmp_path):
    """The second deployment example (c2s on other hosts) passes the same
    start-up checks, given the files it names."""
    import re
    secret = tmp_path / "internal.secret"
    secret.write_text("s3cret\n")
    conninfo = tmp_path / "db.conninfo"
    conninfo.write_text("host=10.0.0.20 dbname=switchboard user=switchboard\n")
    cert, key = tmp_path / "example.org.pem", tmp_path / "example.org.key"
    out = subprocess.run([os.path.join(BUILD, "tools", "switchboardctl"), "tls-selfsigned", str(cert), str(key),
                          "example.org"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for proc in ("router", "c2s"):
        text = open(os.path.join(TOP, "etc", "multi-host", f"{proc}.xml")).read()
        text = text.replace("/etc/switchboard/internal.secret", str(secret))
        text = text.replace("/etc/switchboard/irc.secret", str(secret))
        text = text.replace("/etc/switchboard/db.conninfo", str(conninfo))
        text = re.sub(r"/etc/switchboard/certs/example\.org\.(pem|key)",
                      lambda m: str(cert if m.group(1) == "pem" else key), text)
        cfg = tmp_path / f"{proc}.xml"
        cfg.write_text(text)
        exe = os.path.join(BUILD, proc, f"switchboard-{proc}")
        out = subprocess.run([exe, "--check", "-c", str(cfg)], capture_output=True, text=True)
        assert out.returncode == 0, f"{proc}: {out.stderr}"
