"""A raw-XML XMPP client for the c2s tests: stream header, STARTTLS, direct
TLS, SASL (SCRAM-SHA-1/256, PLAIN), bind, and helpers to read what comes
back. Shared by the test_c2s_*.py files (it holds no tests itself)."""
import base64
import hashlib
import hmac
import os
import socket
import ssl
import time
import xml.etree.ElementTree as ET

from harness import NS_STREAMS, NS_XMPP_STREAMS, StreamReader

NS_CLIENT = "jabber:client"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_SM = "urn:xmpp:sm:3"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_AUTH = "jabber:iq:auth"
NS_REGISTER = "jabber:iq:register"


def q(ns, name):
    return f"{{{ns}}}{name}"


def header(to="localhost", version="1.0", ns=NS_CLIENT, extra=""):
    v = f" version='{version}'" if version else ""
    return (f"<?xml version='1.0'?><stream:stream to='{to}' xmlns='{ns}' "
            f"xmlns:stream='{NS_STREAMS}'{v} xml:lang='en'{extra}>")


def stream_error(el):
    """The condition of a stream error element, or None if el is not one."""
    if el is None or el.tag != q(NS_STREAMS, "error"):
        return None
    for child in el:
        if child.tag.startswith(f"{{{NS_XMPP_STREAMS}}}") and not child.tag.endswith("}text"):
            return child.tag.split("}")[1]
    return None


def stanza_error(el):
    """(condition, type, code) of an error stanza."""
    err = el.find(q(NS_CLIENT, "error"))
    assert err is not None, f"no <error/> in {ET.tostring(el)}"
    cond = None
    for child in err:
        if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
            cond = child.tag.split("}")[1]
    return cond, err.get("type"), err.get("code")


def sasl_condition(el):
    assert el is not None and el.tag == q(NS_SASL, "failure"), f"expected a SASL failure, got {el}"
    for child in el:
        if not child.tag.endswith("}text"):
            return child.tag.split("}")[1]
    return None


def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


class ScramClient:
    """RFC 5802 client side; cb is (type, data) for -PLUS, or a gs2 flag."""

    def __init__(self, alg, user, password, gs2="n,,", cb_data=b""):
        self.h = {"SHA-1": hashlib.sha1, "SHA-256": hashlib.sha256}[alg]
        self.user = user.replace("=", "=3D").replace(",", "=2C")
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.gs2 = gs2
        self.cb_data = cb_data
        self.first_bare = f"n={self.user},r={self.nonce}"

    def first(self):
        return (self.gs2 + self.first_bare).encode()

    def final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(self.nonce)
        salt = base64.b64decode(attrs["s"])
        it = int(attrs["i"])
        self.salted = hashlib.pbkdf2_hmac(self.h().name, self.password, salt, it)
        client_key = hmac.new(self.salted, b"Client Key", self.h).digest()
        stored = self.h(client_key).digest()
        cbind = base64.b64encode(self.gs2.encode() + self.cb_data).decode()
        without_proof = f"c={cbind},r={attrs['r']}"
        self.auth_msg = f"{self.first_bare},{server_first},{without_proof}".encode()
        sig = hmac.new(stored, self.auth_msg, self.h).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final):
        server_key = hmac.new(self.salted, b"Server Key", self.h).digest()
        want = base64.b64encode(hmac.new(server_key, self.auth_msg, self.h).digest()).decode()
        return server_final.decode() == f"v={want}"


class Client:
    """One client connection speaking raw XML."""

    def __init__(self, port, domain="localhost", cafile=None, direct_tls=False, host="127.0.0.1", prefix=b""):
        self.domain = domain
        self.cafile = cafile
        self.raw = socket.create_connection((host, port), timeout=10)
        if prefix:
            self.raw.sendall(prefix)
        self.sock = self.raw
        if direct_tls:
            self.sock = tls_context(cafile).wrap_socket(self.raw, server_hostname=domain)
        self.reader = StreamReader(self.sock)
        self.header = None
        self.features = None
        self.jid = None

    # ---- bytes ----
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def next(self, timeout=10):
        return self.reader.next(timeout)

    def next_stanza(self, timeout=10):
        """The next element that is not a stream management request/answer."""
        while True:
            el = self.next(timeout)
            if el is None or el.tag not in (q(NS_SM, "r"), q(NS_SM, "a")):
                return el
            if el.tag == q(NS_SM, "r") and getattr(self, "sm_h", None) is not None:
                self.send(f"<a xmlns='{NS_SM}' h='{self.sm_h}'/>")

    def drop(self):
        """The TCP connection dies: no closing of the stream, no TLS close_notify."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- stream ----
    def open(self, to=None, version="1.0", ns=NS_CLIENT, extra=""):
        """Send a stream header; return the server's header (features in self.features)."""
        self.reader = StreamReader(self.sock)
        self.send(header(to or self.domain, version, ns, extra))
        self.header = self.reader.wait_header()
        self.features = None
        if version and self.header is not None:
            el = self.next()
            if el is not None and el.tag == q(NS_STREAMS, "features"):
                self.features = el
            elif el is not None:
                self.reader.elements.insert(0, el)
        return self.header

    def mechanisms(self):
        m = self.features.find(q(NS_SASL, "mechanisms")) if self.features is not None else None
        return [e.text for e in m] if m is not None else []

    def starttls(self):
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        el = self.next()
        assert el is not None and el.tag == q(NS_TLS, "proceed"), f"STARTTLS refused: {el}"
        self.sock = tls_context(self.cafile).wrap_socket(self.raw, server_hostname=self.domain)
        return self.open()

    def tls_version(self):
        return self.sock.version() if isinstance(self.sock, ssl.SSLSocket) else None

    # ---- SASL ----
    def auth_element(self, mech, initial=None):
        if initial is None:
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mech}'/>")
        else:
            data = base64.b64encode(initial).decode() or "="
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mech}'>{data}</auth>")
        return self.next()

    def scram(self, user, password, mech="SCRAM-SHA-256", gs2="n,,"):
        """SCRAM exchange: returns the final element (<success/> or <failure/>)."""
        alg = "SHA-256" if "SHA-256" in mech else "SHA-1"
        sc = ScramClient(alg, user, password, gs2=gs2)
        el = self.auth_element(mech, sc.first())
        if el is None or el.tag != q(NS_SASL, "challenge"):
            return el
        final = sc.final(base64.b64decode(el.text or ""))
        self.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(final).decode()}</response>")
        el = self.next()
        if el is not None and el.tag == q(NS_SASL, "success"):
            assert sc.verify(base64.b64decode(el.text or "")), "the server's signature is wrong"
        return el

    def plain(self, user, password, authzid=""):
        return self.auth_element("PLAIN", f"{authzid}\0{user}\0{password}".encode())

    def login(self, user, password, mech="SCRAM-SHA-256", resource=None, starttls=True):
        """STARTTLS (unless already TLS), SASL, restart, bind. Returns the bound JID."""
        if self.header is None:
            self.open()
        if starttls and self.tls_version() is None:
            self.starttls()
        el = self.scram(user, password, mech) if mech.startswith("SCRAM") else self.plain(user, password)
        assert el is not None and el.tag == q(NS_SASL, "success"), f"login failed: {el and ET.tostring(el)}"
        self.open()
        return self.bind(resource)

    def bind(self, resource=None, iq_id="bind1"):
        r = f"<resource>{resource}</resource>" if resource else ""
        self.send(f"<iq type='set' id='{iq_id}'><bind xmlns='{NS_BIND}'>{r}</bind></iq>")
        el = self.next_stanza(timeout=15)
        assert el is not None, "no answer to bind"
        if el.get("type") == "result":
            self.jid = el.find(f"{q(NS_BIND, 'bind')}/{q(NS_BIND, 'jid')}").text
            return self.jid
        return el

    def iq(self, type_, payload, to=None, iq_id=None, timeout=10):
        iq_id = iq_id or f"iq{time.monotonic_ns()}"
        t = f" to='{to}'" if to else ""
        self.send(f"<iq type='{type_}' id='{iq_id}'{t}>{payload}</iq>")
        while True:
            el = self.next_stanza(timeout)
            if el is None or (el.tag == q(NS_CLIENT, "iq") and el.get("id") == iq_id):
                return el

    def wait_error(self, timeout=10):
        """Read until a stream error (returned as its condition) or the end of the stream."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            el = self.next(max(0.1, deadline - time.time()))
            if el is None:
                return None
            cond = stream_error(el)
            if cond:
                return cond
        return None
