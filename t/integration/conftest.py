import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, Process, free_port, render_router_config  # noqa: E402
from server import PgCluster, Server  # noqa: E402


class RouterFactory:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.procs = []

    def __call__(self, components, limits=None, level="info"):
        port = free_port()
        cfg = self.tmp_path / f"router-{port}.xml"
        cfg.write_text(render_router_config(port, components, limits, level))
        p = Process([os.path.join(BUILD, "router", "switchboard-router"), "-c", str(cfg)],
                    str(self.tmp_path / f"router-{port}.log"))
        p.port = port
        p.start()
        p.wait_port(port)
        self.procs.append(p)
        return p

    def finish(self):
        problems = []
        for p in self.procs:
            if p.proc.poll() is None:
                rc = p.stop()
            else:
                rc = p.proc.returncode
            log = p.log()
            if rc != 0 or "ERROR: AddressSanitizer" in log or "runtime error:" in log:
                problems.append(f"router exited with {rc}:\n{log[-6000:]}")
        return problems


@pytest.fixture
def router(tmp_path):
    """Start routers; each is stopped at the end and must exit cleanly (no sanitizer findings)."""
    f = RouterFactory(tmp_path)
    yield f
    problems = f.finish()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory):
    """One private PostgreSQL for the whole run (tools/pg-local)."""
    cluster = PgCluster(str(tmp_path_factory.mktemp("pgcluster")))
    yield cluster
    cluster.stop()


@pytest.fixture
def server(pg_cluster, tmp_path):
    """Start whole servers: server(c2s=1, sm=True, config={'c2s': {...}, 'sm': {...}}).
    Every process must stop cleanly at the end, with no sanitizer findings."""
    started = []

    def start(c2s=1, sm=True, **kw):
        from server import binary
        needed = [("sm", "switchboard-sm")] if sm else []
        needed += [("c2s", "switchboard-c2s")] if c2s else []
        for folder, exe in needed:
            if not os.path.exists(binary(folder, exe)):
                pytest.skip(f"{exe} is not built yet")
        srv = Server(pg_cluster, tmp_path / f"srv{len(started)}", **kw)
        started.append(srv)   # before starting: a failed start is still cleaned up
        return srv.start(c2s=c2s, sm=sm)
    yield start
    problems = []
    for srv in started:
        problems += srv.finish()
    assert not problems, "\n".join(problems)
