import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, Process, free_port, render_router_config  # noqa: E402


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
