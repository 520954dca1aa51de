"""Helpers to run Switchboard's real processes and talk to them in raw XML."""
import hashlib
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET

BUILD = os.environ.get("SWITCHBOARD_BUILD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build-test")
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_COMPONENT = "jabber:component:accept"
NS_ROUTER = "urn:switchboard:router"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_XMPP_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A Switchboard process with its output in a log file."""

    def __init__(self, argv, logpath, env=None):
        self.argv = argv
        self.logpath = logpath
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def start(self):
        self.logfile = open(self.logpath, "ab")
        # SWITCHBOARD_WRAPPER runs every process under a tool, e.g. valgrind
        # (./switchboard test does, with --error-exitcode, so that what it
        # finds makes the exit status non-zero like a sanitizer finding).
        wrapper = shlex.split(os.environ.get("SWITCHBOARD_WRAPPER", ""))
        self.proc = subprocess.Popen(wrapper + self.argv, stdout=self.logfile, stderr=subprocess.STDOUT,
                                     env=self.env, stdin=subprocess.DEVNULL)
        return self

    def wait_port(self, port, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.argv[0]} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{self.argv[0]} did not listen on {port}:\n{self.log()}")

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stop and return the exit code (sanitizer findings make it non-zero)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.logfile.close()
                raise AssertionError(f"{self.argv[0]} did not stop on {sig}:\n{self.log()}")
        self.logfile.close()
        return self.proc.returncode


def render_router_config(port, components, limits=None, level="info"):
    lim = "".join(f"<{k}>{v}</{k}>" for k, v in (limits or {}).items())
    comps = "".join(
        f"<component name='{c['name']}' secret='{c['secret']}'"
        + (" trusted='true'" if c.get("trusted") else "") + "/>" for c in components)
    return (f"<?xml version='1.0'?><router><listen><address>127.0.0.1</address><port>{port}</port></listen>"
            f"<log><level>{level}</level></log><limits>{lim}</limits>{comps}</router>")


class StreamReader:
    """Incremental reader of an XML stream: the header, then each top-level element."""

    def __init__(self, sock):
        self.sock = sock
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.header = None
        self.elements = []
        self.closed = False      # saw </stream:stream>
        self.eof = False         # the socket closed
        self.raw = b""

    def _pump(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.raw += data
        self.parser.feed(data)
        for event, el in self.parser.read_events():
            if event == "start":
                self.depth += 1
                if self.depth == 1:
                    self.header = el
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.elements.append(el)
                    self.header.remove(el)
                elif self.depth == 0:
                    self.closed = True
        return True

    def wait_header(self, timeout=10):
        deadline = time.time() + timeout
        while self.header is None and not self.eof and time.time() < deadline:
            self._pump(max(0.01, deadline - time.time()))
        return self.header

    def next(self, timeout=10):
        """The next top-level element, or None on timeout/EOF."""
        deadline = time.time() + timeout
        while not self.elements and not self.eof and time.time() < deadline:
            self._pump(max(0.01, deadline - time.time()))
        return self.elements.pop(0) if self.elements else None

    def wait_eof(self, timeout=10):
        deadline = time.time() + timeout
        while not self.eof and time.time() < deadline:
            self._pump(max(0.01, deadline - time.time()))
        return self.eof


def handshake_digest(stream_id, secret):
    return hashlib.sha1((stream_id + secret).encode()).hexdigest()


class RawComponent:
    """An XEP-0114 component speaking raw XML."""

    def __init__(self, port, name, secret, rcvbuf=None):
        self.name = name
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.reader = StreamReader(self.sock)
        self.send(f"<?xml version='1.0'?><stream:stream xmlns='{NS_COMPONENT}' "
                  f"xmlns:stream='{NS_STREAMS}' to='{name}'>")
        self.header = self.reader.wait_header()
        self.stream_id = self.header.get("id") if self.header is not None else None
        self.secret = secret

    def authenticate(self):
        """Send the handshake; return the router's answer element."""
        self.send(f"<handshake>{handshake_digest(self.stream_id, self.secret)}</handshake>")
        return self.reader.next()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def next(self, timeout=10):
        return self.reader.next(timeout)

    def next_stanza(self, timeout=10):
        """The next element that is not a router notice (<online/>, <offline/>)."""
        while True:
            el = self.next(timeout)
            if el is None or el.tag not in (f"{{{NS_ROUTER}}}online", f"{{{NS_ROUTER}}}offline"):
                return el

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def connected(port, name, secret):
    c = RawComponent(port, name, secret)
    answer = c.authenticate()
    assert answer is not None and answer.tag == f"{{{NS_COMPONENT}}}handshake", \
        f"handshake of {name} failed: {answer}"
    return c


def stream_error_condition(el):
    assert el is not None, "expected a stream error, got nothing"
    assert el.tag == f"{{{NS_STREAMS}}}error", f"expected a stream error, got {el.tag}"
    for child in el:
        if child.tag.startswith(f"{{{NS_XMPP_STREAMS}}}") and not child.tag.endswith("}text"):
            return child.tag.split("}")[1]
    return None


def stanza_error(el):
    """(condition, type, code) of an error stanza."""
    err = el.find(f"{{{NS_COMPONENT}}}error")
    if err is None:
        err = el.find("error")
    assert err is not None, f"no <error/> in {ET.tostring(el)}"
    cond = None
    for child in err:
        if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
            cond = child.tag.split("}")[1]
    return cond, err.get("type"), err.get("code")
