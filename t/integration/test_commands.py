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


def test_switchboard_up_starts_the_router_and_ctrl_c_stops_it(tmp_path):
    """./switchboard up in its own state directory and port; a component
    connects with the documented development secret; SIGINT stops it all."""
    port = free_port()
    env = dict(os.environ, SWITCHBOARD_STATE=str(tmp_path / "state"), SWITCHBOARD_ROUTER_PORT=str(port))
    env.pop("SWITCHBOARD_COMPONENT_SECRET", None)
    log = open(tmp_path / "up.log", "wb")
    p = subprocess.Popen([os.path.join(TOP, "switchboard"), "up"], cwd=TOP, env=env, stdout=log,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 600   # the first run builds the release tree
        comp = None
        while time.time() < deadline and p.poll() is None:
            try:
                comp = connected(port, "gateway.localhost", "switchboard-dev")
                break
            except (OSError, AssertionError):
                time.sleep(0.5)
        assert comp is not None, (tmp_path / "up.log").read_text()
        comp.close()
        os.killpg(p.pid, signal.SIGINT)
        p.wait(30)
        # Nothing is left listening.
        time.sleep(0.5)
        import socket
        s = socket.socket()
        assert s.connect_ex(("127.0.0.1", port)) != 0
        s.close()
        assert "router" in (tmp_path / "state" / "log" / "router.log").read_text()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()
