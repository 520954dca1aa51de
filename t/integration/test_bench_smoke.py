"""Smoke run of the benchmark (bench/run and the load generator) with tiny
sizes: every scenario runs against a whole server, prints one JSON line,
and loses nothing. No timing assertions: the numbers are not checked."""
import json
import os
import subprocess
import sys

import pytest

from harness import BUILD, TOP

LOADGEN = os.path.join(BUILD, "bench", "loadgen")
RUN = os.path.join(TOP, "bench", "run")

SCENARIOS = {
    "login-plain": ["login", "--mech", "PLAIN", "--users", "20", "--conns", "4", "--duration", "1"],
    "login-scram": ["login", "--mech", "SCRAM-SHA-1", "--users", "20", "--conns", "4", "--duration", "1"],
    "login-starttls": ["login", "--tls", "starttls", "--mech", "SCRAM-SHA-1", "--users", "10", "--conns", "2",
                       "--duration", "1"],
    "idle": ["idle", "--sessions", "30", "--settle", "0.5"],
    "idle-direct-tls": ["idle", "--tls", "direct", "--sessions", "10", "--settle", "0.5"],
    "messages": ["messages", "--pairs", "4", "--window", "3", "--duration", "1", "--c2s", "2", "--procs", "2"],
    "presence": ["presence", "--users", "12", "--contacts", "4", "--duration", "1", "--settle", "0.5"],
    "offline": ["offline", "--messages", "60", "--senders", "2", "--offline-users", "6"],
    # open loop: a fixed schedule of messages/s, latency from the scheduled time
    "messages-rate": ["messages", "--pairs", "4", "--rate", "200", "--duration", "1", "--procs", "2"],
    # two servers federating over dialback (s2s on each side, hosts-map)
    "s2s": ["s2s", "--pairs", "3", "--window", "2", "--duration", "1"],
    "s2s-rate": ["s2s", "--pairs", "3", "--rate", "100", "--duration", "1"],
    # other clients' latency measured alone, then while one client floods (shipped rate limits on)
    "flood": ["flood", "--pairs", "3", "--rate", "60", "--duration", "1", "--flood-window", "200"],
    # sessions held over several c2s and load generator processes while messages flow
    "scale": ["scale", "--sessions", "40", "--c2s", "2", "--procs", "2", "--sources", "2", "--rate", "100",
              "--duration", "1", "--settle", "0.5", "--mech", "SCRAM-SHA-1", "--shared-salt"],
}


def run(pg_cluster, tmp_path, args):
    if not os.access(LOADGEN, os.X_OK):
        pytest.skip(f"the load generator is not built ({LOADGEN}; bench/ needs subdir('bench') in meson.build)")
    exes = [("sm", "switchboard-sm"), ("c2s", "switchboard-c2s")]
    if args[0] == "s2s":
        exes.append(("s2s", "switchboard-s2s"))
    for exe in exes:
        if not os.path.exists(os.path.join(BUILD, *exe)):
            pytest.skip(f"{exe[1]} is not built yet")
    out = subprocess.run([sys.executable, RUN, *args, "--build", BUILD, "--pg-dir", pg_cluster.dir,
                          "--timeout", "60", "--log-level", "info"],
                         capture_output=True, text=True, timeout=240, cwd=str(tmp_path))
    assert out.returncode == 0, f"bench/run failed:\n{out.stderr[-6000:]}"
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, out.stdout
    return json.loads(lines[0])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_bench_scenario_runs_and_loses_nothing(pg_cluster, tmp_path, name):
    r = run(pg_cluster, tmp_path, SCENARIOS[name])
    assert r["server_problems"] == [], r["server_problems"]
    assert r.get("login_failures", 0) == 0, r
    scenario = SCENARIOS[name][0]
    if scenario == "login":
        assert r["logins"] > 0
        assert r["server_cpu_us_per_login"] is not None
    elif scenario == "idle":
        assert r["sessions"] == r["conns"] and r["setup_failures"] == 0
        assert r["rssN_kb"] > 0
    elif scenario in ("messages", "s2s"):
        assert r["sent"] > 0 and r["received"] == r["sent"] and r["lost"] == 0
        assert r["stanza_errors"] == 0
        if "--rate" in SCENARIOS[name]:
            assert r["rate"] > 0 and r["lat_p99_ms"] >= 0
        if scenario == "s2s":
            assert r["sender_server_cpu_us_per_message"] is not None
            assert r["receiver_server_cpu_us_per_message"] is not None
    elif scenario == "scale":
        assert r["sessions"] == 40 and r["setup_failures"] == 0
        assert r["sent"] > 0 and r["received"] == r["sent"] and r["lost"] == 0
        assert set(r["rss_kb"]) == {"router", "sm", "c2s-1", "c2s-2"} and r["rss_total_kb"] > 0
    elif scenario == "flood":
        assert r["sent"] > 0 and r["received"] == r["sent"] and r["lost"] == 0 and r["quiet_lost"] == 0
        assert r["flooder_sent"] > 0 and r["flood_rate_limits"].startswith("shipped")
    elif scenario == "presence":
        assert r["sent"] > 0 and r["lost"] == 0
        assert r["received_other"] == r["sent"] * 4
    elif scenario == "offline":
        assert r["stored"] == 60 and r["received"] == 60 and r["lost"] == 0
        assert r["left_in_store"] == 0
