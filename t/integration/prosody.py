"""Helpers for the s2s tests: Switchboard "half servers" (a router, an s2s
and a raw XEP-0114 component playing the local side) and a real Prosody
run from a temporary directory. Everything stays on 127.0.0.0/8."""
import hashlib
import hmac
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

from harness import (BUILD, NS_COMPONENT, NS_ROUTER, NS_STREAMS, TOP, Process, RawComponent,
                     StreamReader, free_port)

NS_SERVER = "jabber:server"
NS_DB = "jabber:server:dialback"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"


def dialback_key(secret, receiving, originating, stream_id):
    """XEP-0185: HMAC-SHA256(hex(SHA256(secret)), receiving ' ' originating ' ' id), in hex."""
    k = hashlib.sha256(secret.encode()).hexdigest().encode()
    return hmac.new(k, f"{receiving} {originating} {stream_id}".encode(), hashlib.sha256).hexdigest()


def dead_port():
    """A loopback port where nothing listens (UDP and TCP)."""
    return free_port()


def render_s2s_config(dst, values, hosts, hosts_map):
    """etc/s2s.xml with values set by path, the hosted domains replaced and a
    hosts-map of (name, address, port) entries."""
    tree = ET.parse(os.path.join(TOP, "etc", "s2s.xml"))
    root = tree.getroot()
    for path, value in values.items():
        node = root
        parts = path.split("/")
        for part in parts:
            child = node.find(part)
            if child is None:
                child = ET.SubElement(node, part)
            node = child
        node.text = str(value)
    hs = root.find("hosts")
    for child in list(hs):
        hs.remove(child)
    for h in hosts:
        ET.SubElement(hs, "host").text = h
    hm = root.find("hosts-map")
    if hm is None:
        hm = ET.SubElement(root, "hosts-map")
    for entry in hosts_map:
        name, address, port = entry[:3]
        attrs = {"name": name, "address": address, "port": str(port)}
        if len(entry) > 3 and entry[3]:
            attrs["direct-tls"] = "true"
        ET.SubElement(hm, "host", attrs)
    tree.write(dst, encoding="unicode", xml_declaration=True)


def make_cert(directory, name, ca=None):
    """A certificate for name (self-signed, or signed by ca=(cert, key))."""
    cert = os.path.join(directory, f"{name}.pem")
    key = os.path.join(directory, f"{name}.key")
    if ca is None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "30", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        return cert, key
    csr = os.path.join(directory, f"{name}.csr")
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{name}\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", f"/CN={name}", "-keyout", key, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
                    "-days", "30", "-extfile", ext, "-out", cert], check=True, capture_output=True)
    return cert, key


def make_ca(directory, name="Test CA"):
    cert = os.path.join(directory, "ca.pem")
    key = os.path.join(directory, "ca.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "30", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


class LocalSide(RawComponent):
    """The trusted 'sm' of a half server: binds the local domains, sends and
    receives plain stanzas."""

    def __init__(self, port, secret, domains):
        super().__init__(port, "sm", secret)
        self.s2s_notes = []   # s2s's hello and confirmations for the sm (docs/sessions.md §7)
        answer = self.authenticate()
        assert answer is not None and answer.tag == f"{{{NS_COMPONENT}}}handshake", answer
        self.online = set()
        for d in domains:
            self.send(f"<bind xmlns='{NS_ROUTER}' name='{d}'/>")
            while True:
                el = self.next()
                assert el is not None, f"no answer to bind {d}"
                if self._notice(el):
                    continue
                assert el.tag == f"{{{NS_ROUTER}}}bind" and el.get("type") == "result", ET.tostring(el)
                break

    def _notice(self, el):
        if el.tag == f"{{{NS_ROUTER}}}online":
            self.online.add(el.get("name"))
            return True
        if el.tag == f"{{{NS_ROUTER}}}offline":
            self.online.discard(el.get("name"))
            return True
        if el.tag == f"{{{NS_ROUTER}}}route" and el.find("{urn:switchboard:session}s2s") is not None:
            self.s2s_notes.append(el)
            return True
        return False

    def wait_online(self, name, timeout=20):
        deadline = time.time() + timeout
        while name not in self.online and time.time() < deadline:
            el = self.next(timeout=max(0.05, deadline - time.time()))
            if el is not None and not self._notice(el):
                self.reader.elements.insert(0, el)
                time.sleep(0.05)
        return name in self.online

    def next_stanza(self, timeout=10):
        deadline = time.time() + timeout
        while True:
            el = self.next(max(0.01, deadline - time.time()))
            if el is None or not self._notice(el):
                return el


class HalfServer:
    """A router, an s2s and the local side for some domains."""

    def __init__(self, tmp_path, router_factory, domains, name, values=None, level="info", bind=None):
        self.tmp = str(tmp_path)
        self.name = name
        self.domains = list(domains)
        self.bind = list(domains if bind is None else bind)   # what the local side serves
        self.secret = secrets.token_hex(12)
        self.dialback_secret = "db-" + secrets.token_hex(12)
        self.router = router_factory([
            {"name": "sm", "secret": self.secret, "trusted": True},
            {"name": "s2s", "secret": self.secret, "trusted": True},
        ])
        self.port = free_port()
        self.values = {
            "router/host": "127.0.0.1", "router/port": self.router.port, "router/name": "s2s",
            "router/secret": "env:SWITCHBOARD_INTERNAL_SECRET", "log/level": level,
            "listen/address": "127.0.0.1", "listen/port": self.port,
            "dialback/secret": "env:SWITCHBOARD_DIALBACK_SECRET",
            # Never ask a real name server: a dead loopback port.
            "dns/nameserver": f"127.0.0.1:{dead_port()}",
            "limits/connect-timeout": 5,
        }
        self.values.update(values or {})
        self.hosts_map = []
        self.proc = None
        self.local = None

    def map(self, name, address, port, direct_tls=False):
        self.hosts_map.append((name, address, port, direct_tls))
        return self

    def start(self):
        cfg = os.path.join(self.tmp, f"s2s-{self.name}.xml")
        render_s2s_config(cfg, self.values, self.domains, self.hosts_map)
        self.config_path = cfg
        env = {"SWITCHBOARD_INTERNAL_SECRET": self.secret, "SWITCHBOARD_DIALBACK_SECRET": self.dialback_secret}
        self.proc = Process([os.path.join(BUILD, "s2s", "switchboard-s2s"), "-c", cfg],
                            os.path.join(self.tmp, f"s2s-{self.name}.log"), env=env)
        self.proc.start()
        self.proc.wait_port(self.port)
        self.local = LocalSide(self.router.port, self.secret, self.bind)
        assert self.local.wait_online("s2s"), f"s2s never joined the router:\n{self.proc.log()}"
        return self

    def log(self):
        return self.proc.log() if self.proc else ""

    def stop(self):
        """Stop s2s; return a problem description or None."""
        if self.local:
            self.local.close()
        if not self.proc or not self.proc.proc:
            return None
        try:
            rc = self.proc.stop() if self.proc.proc.poll() is None else self.proc.proc.returncode
        except AssertionError as e:
            return str(e)
        log = self.proc.log()
        if rc != 0 or "ERROR: AddressSanitizer" in log or "runtime error:" in log or "LeakSanitizer" in log:
            return f"s2s {self.name} exited with {rc}:\n{log[-6000:]}"
        return None


def established(port):
    """Established TCP connections whose local port is port (server side)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, state = parts[1], parts[3]
                    if state == "01" and int(local.split(":")[1], 16) == port:
                        n += 1
        except FileNotFoundError:
            pass
    return n


class RawServerStream:
    """A raw jabber:server stream to an s2s (a fake remote server)."""

    def __init__(self, port, from_domain, to_domain, version=True, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.reader = StreamReader(self.sock)
        attrs = f" from='{from_domain}'" if from_domain else ""
        attrs += f" to='{to_domain}'" if to_domain else ""
        attrs += " version='1.0'" if version else ""
        self.send(f"<?xml version='1.0'?><stream:stream xmlns='{NS_SERVER}' xmlns:db='{NS_DB}' "
                  f"xmlns:stream='{NS_STREAMS}'{attrs}>")
        self.header = self.reader.wait_header()
        self.id = self.header.get("id") if self.header is not None else None

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def next(self, timeout=10):
        return self.reader.next(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class SilentListener:
    """Accepts TCP connections and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                continue

    def close(self):
        self.stopped = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


# ---------------------------------------------------------------- Prosody

PROSODY = "/usr/bin/prosody"
PROSODYCTL = "/usr/bin/prosodyctl"


def prosody_available():
    return os.path.exists(PROSODY) and os.path.exists(PROSODYCTL)


def lua_unbound_available():
    """Prosody resolves through libunbound only with lua-unbound (a Recommends
    of the prosody package): without it, it would ignore our fake DNS."""
    import glob
    return bool(glob.glob("/usr/lib/*/lua/5.4/lunbound.so") or glob.glob("/usr/lib/lua/5.4/lunbound.so"))


class Prosody:
    """A Prosody serving one domain from a temporary directory: its own data
    dir, pid file, log file, certificates; s2s and c2s on loopback ports."""

    def __init__(self, directory, domain, s2s_port, c2s_port, dns_port, s2s_address="127.0.0.1", extra=""):
        self.dir = str(directory)
        self.domain = domain
        self.s2s_port = s2s_port
        self.c2s_port = c2s_port
        self.s2s_address = s2s_address
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "certs"), exist_ok=True)
        self.cert, self.key = make_cert(os.path.join(self.dir, "certs"), domain)
        self.config = os.path.join(self.dir, "prosody.cfg.lua")
        self.logfile = os.path.join(self.dir, "prosody.log")
        self.pidfile = os.path.join(self.dir, "prosody.pid")
        with open(self.config, "w") as f:
            f.write(f"""
-- Written by the Switchboard s2s interop test.
run_as_root = true
daemonize = false
pidfile = "{self.pidfile}"
data_path = "{self.dir}/data"
plugin_paths = {{ }}
log = {{ debug = "{self.logfile}" }}
admins = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "dialback"; "disco"; "presence"; "message"; "iq"; "ping"; "posix"; }}
modules_disabled = {{ "s2s_bidi"; }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s_port} }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ {s2s_port} }}
s2s_interfaces = {{ "{s2s_address}" }}
legacy_ssl_ports = {{ }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_ports = {{ }}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = false
s2s_secure_auth = false
s2s_timeout = 20
-- DNS only through the test's fake server on loopback (SRV for our domain).
unbound = {{ resolvconf = false; hoststxt = false; forward = {{ "127.0.0.1@{dns_port}" }};
            options = {{ ["do-not-query-localhost"] = "no" }} }}
certificates = "{self.dir}/certs"
ssl = {{ certificate = "{self.cert}"; key = "{self.key}"; }}
{extra}
VirtualHost "{domain}"
""")
        self.proc = None

    def ctl(self, *args):
        return subprocess.run([PROSODYCTL, "--config", self.config, *args], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)

    def register(self, user, password):
        out = self.ctl("register", user, self.domain, password)
        assert out.returncode == 0, f"prosodyctl register: {out.stdout}{out.stderr}"

    def start(self):
        self.out = open(os.path.join(self.dir, "prosody.stdout"), "ab")
        self.proc = subprocess.Popen([PROSODY, "--config", self.config], stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prosody exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.c2s_port), timeout=0.5).close()
                socket.create_connection((self.s2s_address, self.s2s_port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"prosody did not start:\n{self.log()}")

    def log(self):
        text = ""
        for name in ("prosody.stdout", "prosody.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    text += f.read().decode("utf-8", "replace")[-8000:]
            except FileNotFoundError:
                pass
        return text

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.out.close()


# ---------------------------------------------------------------- DNS

class FakeDns:
    """A tiny authoritative DNS server on 127.0.0.1 (UDP) for tests: SRV, A
    and AAAA records from a dict; NXDOMAIN for names it does not know.
    records: {(name, 'SRV'): [(prio, weight, port, target)], (name, 'A'): ['127.0.0.1']}"""

    TYPES = {"A": 1, "AAAA": 28, "SRV": 33}

    def __init__(self, records):
        self.records = {(n.lower().rstrip("."), t): v for (n, t), v in records.items()}
        self.names = {n for n, _ in self.records}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _name(labels):
        out = b""
        for label in labels.rstrip(".").split("."):
            out += bytes([len(label)]) + label.encode()
        return out + b"\0"

    def _answer(self, q):
        if len(q) < 12:
            return None
        qid, flags, qd = q[0:2], int.from_bytes(q[2:4], "big"), int.from_bytes(q[4:6], "big")
        if qd != 1:
            return None
        i, labels = 12, []
        while i < len(q) and q[i] != 0:
            n = q[i]
            labels.append(q[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        i += 1
        qtype = int.from_bytes(q[i:i + 2], "big")
        question = q[12:i + 4]
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        answers = []
        tname = {v: k for k, v in self.TYPES.items()}.get(qtype)
        for value in self.records.get((name, tname), []) if tname else []:
            if tname == "A":
                rdata = socket.inet_pton(socket.AF_INET, value)
            elif tname == "AAAA":
                rdata = socket.inet_pton(socket.AF_INET6, value)
            else:
                prio, weight, port, target = value
                rdata = prio.to_bytes(2, "big") + weight.to_bytes(2, "big") + port.to_bytes(2, "big") + \
                    self._name(target)
            answers.append(b"\xc0\x0c" + qtype.to_bytes(2, "big") + b"\x00\x01" + (60).to_bytes(4, "big") +
                           len(rdata).to_bytes(2, "big") + rdata)
        rcode = 0 if name in self.names else 3
        rflags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
        return (qid + rflags.to_bytes(2, "big") + (1).to_bytes(2, "big") + len(answers).to_bytes(2, "big") +
                b"\0\0\0\0" + question + b"".join(answers))

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                q, addr = self.sock.recvfrom(4096)
            except OSError:
                continue
            try:
                a = self._answer(q)
            except Exception:  # a malformed query: no answer
                a = None
            if a:
                self.sock.sendto(a, addr)

    def close(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()
