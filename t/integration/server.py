"""A whole Switchboard server for integration tests: a private PostgreSQL
database, the router, the sm and N c2s processes, configured from the
shipped etc/*.xml with per-test overrides."""
import os
import secrets
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET

from harness import BUILD, NS_ROUTER, TOP, Process, RawComponent, free_port

PG_LOCAL = os.path.join(TOP, "tools", "pg-local")


def binary(*parts):
    return os.path.join(BUILD, *parts)


def render_config(src, dst, overrides):
    """Copy an etc/ config, setting the text of each path ('listen/port') or
    attribute ('component/@secret'); elements are created when missing.
    A value of None removes the element."""
    tree = ET.parse(src)
    root = tree.getroot()
    for path, value in (overrides or {}).items():
        parts = path.split("/")
        node = root
        for i, part in enumerate(parts):
            if part.startswith("@"):
                node.set(part[1:], str(value))
                break
            child = node.find(part)
            if i == len(parts) - 1 and value is None:
                if child is not None:
                    node.remove(child)
                break
            if child is None:
                child = ET.SubElement(node, part)
            node = child
        else:
            if value is not None and value is not True:
                node.text = str(value)
            elif value is True:
                node.text = None   # a flag: present and empty
    tree.write(dst, encoding="unicode", xml_declaration=True)


class PgCluster:
    """One private PostgreSQL cluster per test run; a fresh database per server."""

    def __init__(self, base):
        self.dir = os.path.join(base, "pg")
        out = subprocess.run([PG_LOCAL, "start", self.dir], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"pg-local start failed: {out.stderr}")
        self.admin_conninfo = out.stdout.strip()
        self.counter = 0

    def psql(self, sql, db="postgres"):
        conninfo = self.admin_conninfo.replace("dbname=switchboard", f"dbname={db}")
        out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", conninfo, "-c", sql],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {out.stderr}")
        return out.stdout

    def new_database(self):
        self.counter += 1
        name = f"t{os.getpid()}_{self.counter}"
        self.psql(f"CREATE DATABASE {name}")
        return name, self.admin_conninfo.replace("dbname=switchboard", f"dbname={name}")

    def drop_database(self, name):
        try:
            self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except RuntimeError:
            pass

    def stop(self):
        subprocess.run([PG_LOCAL, "stop", self.dir], capture_output=True)


class C2sInfo:
    def __init__(self, name, port, tls_port):
        self.name, self.port, self.tls_port = name, port, tls_port


class Server:
    def __init__(self, pg, tmp_path, config=None, domain="localhost"):
        self.pg = pg
        self.dir = str(tmp_path)
        os.makedirs(self.dir, exist_ok=True)
        self.domain = domain
        self.config = config or {}
        self.procs = {}
        self.internal_secret = secrets.token_hex(16)
        self.component_secret = "component-" + secrets.token_hex(4)
        self.dbname, self.db = pg.new_database()
        self.env = dict(os.environ, SWITCHBOARD_INTERNAL_SECRET=self.internal_secret,
                        SWITCHBOARD_DB=self.db, SWITCHBOARD_COMPONENT_SECRET=self.component_secret)
        self.router_port = free_port()
        self.c2s = []

    def start(self, c2s=1, sm=True):
        self._make_cert()
        self._migrate()
        self._start_router()
        if sm:
            self._start_sm()
        for i in range(c2s):
            self.add_c2s()
        return self

    # ---- set-up ----
    def _make_cert(self):
        os.makedirs(os.path.join(self.dir, "certs"), exist_ok=True)
        self.cert = os.path.join(self.dir, "certs", f"{self.domain}.pem")
        self.key = os.path.join(self.dir, "certs", f"{self.domain}.key")
        ctl = binary("tools", "switchboardctl")
        if os.path.exists(ctl):
            out = subprocess.run([ctl, "tls-selfsigned", self.cert, self.key, self.domain],
                                 capture_output=True, text=True)
            if out.returncode == 0:
                return
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "30", "-subj", f"/CN={self.domain}",
                        "-addext", f"subjectAltName=DNS:{self.domain}",
                        "-keyout", self.key, "-out", self.cert], check=True, capture_output=True)

    def _migrate(self):
        ctl = binary("tools", "switchboardctl")
        if os.path.exists(ctl):
            out = self.ctl("db", "migrate")
            assert out.returncode == 0, out.stderr

    def _config(self, proc, base, overrides):
        dst = os.path.join(self.dir, f"{proc}.xml")
        merged = dict(overrides)
        merged.update(self.config.get(base, {}))
        render_config(os.path.join(TOP, "etc", f"{base}.xml"), dst, merged)
        return dst

    def _spawn(self, name, argv):
        p = Process(argv, os.path.join(self.dir, f"{name}.log"), env=self.env)
        p.start()
        self.procs[name] = p
        return p

    def _start_router(self):
        cfg = self._config("router", "router", {"listen/port": self.router_port, "log/level": "info"})
        p = self._spawn("router", [binary("router", "switchboard-router"), "-c", cfg])
        p.wait_port(self.router_port)

    def _router_overrides(self, name):
        return {"router/host": "127.0.0.1", "router/port": self.router_port, "router/name": name,
                "database/conninfo": "env:SWITCHBOARD_DB", "log/level": "info",
                "hosts/host": self.domain}

    def _start_sm(self):
        cfg = self._config("sm", "sm", self._router_overrides("sm"))
        self._spawn("sm", [binary("sm", "switchboard-sm"), "-c", cfg])
        self.wait_names(["sm", self.domain])

    def add_c2s(self):
        n = len(self.c2s) + 1
        name = f"c2s-{n}"
        share = self.config.get("c2s_shared_port")
        port = self.c2s[0].port if share and self.c2s else free_port()
        tls_port = self.c2s[0].tls_port if share and self.c2s else free_port()
        ov = self._router_overrides(name)
        ov.update({"listen/address": "127.0.0.1", "listen/port": port, "listen/tls-port": tls_port,
                   "tls/cert": self.cert, "tls/key": self.key})
        if share:
            ov["listen/reuseport"] = True
        cfg = self._config(name, "c2s", ov)
        p = self._spawn(name, [binary("c2s", "switchboard-c2s"), "-c", cfg, "--name", name])
        p.wait_port(port)
        self.wait_names([name])
        info = C2sInfo(name, port, tls_port)
        self.c2s.append(info)
        return info

    def wait_names(self, names, timeout=30):
        """Wait until the router announces every name (the process joined)."""
        deadline = time.time() + timeout
        missing = set(names)
        while time.time() < deadline:
            for n, p in self.procs.items():
                if p.proc.poll() is not None:
                    raise AssertionError(f"{n} exited with {p.proc.returncode}:\n{p.log()[-4000:]}")
            probe = RawComponent(self.router_port, f"c2s-probe{secrets.token_hex(3)}", self.internal_secret)
            try:
                if probe.authenticate() is None:
                    continue
                seen = set()
                while True:
                    el = probe.next(timeout=0.3)
                    if el is None:
                        break
                    if el.tag == f"{{{NS_ROUTER}}}online":
                        seen.add(el.get("name"))
                missing = set(names) - seen
                if not missing:
                    return
            finally:
                probe.close()
            time.sleep(0.1)
        raise AssertionError(f"never came online at the router: {missing}")

    # ---- for tests ----
    def ctl(self, *args, input=None):
        return subprocess.run([binary("tools", "switchboardctl"), "--db", self.db, *args],
                              capture_output=True, text=True, input=input, env=self.env)

    def add_user(self, node, password):
        out = self.ctl("user", "add", f"{node}@{self.domain}", password)
        assert out.returncode == 0, f"user add {node}: {out.stderr}"
        return f"{node}@{self.domain}"

    def proc(self, name):
        return self.procs[name]

    def restart(self, name):
        p = self.procs[name]
        rc = p.stop()
        assert rc == 0, f"{name} exited with {rc}:\n{p.log()[-4000:]}"
        p.start()
        if name == "router":
            p.wait_port(self.router_port)
        elif name == "sm":
            self.wait_names(["sm", self.domain])
        else:
            self.wait_names([name])

    def kill(self, name):
        """SIGKILL a process (a crash: nothing is flushed, nobody is told)."""
        p = self.procs[name]
        p.proc.kill()
        p.proc.wait()
        p.logfile.close()

    def start_again(self, name):
        """Start a killed process as supervisord would, and wait until it joined the router."""
        p = self.procs[name]
        p.start()
        if name == "router":
            p.wait_port(self.router_port)
        elif name == "sm":
            self.wait_names(["sm", self.domain])
        else:
            self.wait_names([name])

    def finish(self):
        """Stop everything (c2s, then sm, then router); report unclean exits and sanitizer findings."""
        problems = []
        order = [n for n in self.procs if n.startswith("c2s")] + [n for n in ("sm", "router") if n in self.procs]
        for n in order:
            p = self.procs[n]
            try:
                rc = p.stop() if p.proc.poll() is None else p.proc.returncode
            except AssertionError as e:
                problems.append(str(e))
                continue
            log = p.log()
            if getattr(p, "killed", False):
                rc = 0
            if rc != 0 or "ERROR: AddressSanitizer" in log or "runtime error:" in log \
                    or "ERROR: LeakSanitizer" in log:
                problems.append(f"{n} exited with {rc}:\n{log[-6000:]}")
        self.pg.drop_database(self.dbname)
        return problems
