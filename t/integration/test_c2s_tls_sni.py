"""TLS certificates per domain: c2s presents the certificate of the name the
client asks for (SNI), on the direct TLS port and after STARTTLS, the
default one for any other name or none, and picks up new ones on SIGHUP;
s2s does the same for incoming streams (common/tls.c serves both)."""
import os
import signal
import socket
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET

from server import binary
from test_c2s_client import NS_TLS, Client, q
from test_s2s_federation import halves  # noqa: F401 (fixture)


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def direct_tls_cert(port, name):
    """The certificate (DER) a direct-TLS connection asking for name (None: no SNI) is shown."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with no_verify().wrap_socket(raw, server_hostname=name) as tls:
            return tls.getpeercert(binary_form=True)


def starttls_cert(srv, name):
    """The same after STARTTLS on a stream to the hosted domain."""
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    c.send(f"<starttls xmlns='{NS_TLS}'/>")
    el = c.next()
    assert el is not None and el.tag == q(NS_TLS, "proceed")
    tls = no_verify().wrap_socket(c.raw, server_hostname=name)
    try:
        return tls.getpeercert(binary_form=True)
    finally:
        tls.close()


def der(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def make_cert(srv, name):
    cert = os.path.join(srv.dir, "certs", f"{name}.pem")
    key = os.path.join(srv.dir, "certs", f"{name}.key")
    out = srv.ctl("tls-selfsigned", cert, key, name)
    assert out.returncode == 0, out.stderr
    return cert, key


def set_domain_certs(path, certs):
    """Write <tls><certificate domain='...'><cert/><key/></certificate>... into a c2s config."""
    tree = ET.parse(path)
    tls = tree.getroot().find("tls")
    for old in tls.findall("certificate"):
        tls.remove(old)
    for domain, (cert, key) in certs.items():
        el = ET.SubElement(tls, "certificate", domain=domain)
        ET.SubElement(el, "cert").text = cert
        ET.SubElement(el, "key").text = key
    tree.write(path, encoding="unicode", xml_declaration=True)


def reload(srv, expect="configuration reloaded"):
    p = srv.proc("c2s-1")
    before = p.log().count(expect)
    p.proc.send_signal(signal.SIGHUP)
    assert wait_log_count(p, expect, before + 1), p.log()[-2000:]


def wait_log_count(proc, text, n, timeout=10):
    deadline = time.time() + timeout
    while proc.log().count(text) < n and time.time() < deadline:
        time.sleep(0.1)
    return proc.log().count(text) >= n


def test_certificate_is_chosen_by_server_name(server):
    srv = server(sm=False)
    c2s = srv.c2s[0]
    default = der(srv.cert)
    net = make_cert(srv, "example.net")
    org = make_cert(srv, "example.org")
    # Before any certificate per domain: everyone gets the default.
    assert direct_tls_cert(c2s.tls_port, "example.net") == default
    path = srv.proc("c2s-1").argv[2]
    set_domain_certs(path, {"example.net": net, "example.org": org})
    reload(srv)
    assert direct_tls_cert(c2s.tls_port, "example.net") == der(net[0])
    assert direct_tls_cert(c2s.tls_port, "EXAMPLE.ORG") == der(org[0]), "server names ignore case"
    assert direct_tls_cert(c2s.tls_port, "localhost") == default
    assert direct_tls_cert(c2s.tls_port, "other.example") == default
    assert direct_tls_cert(c2s.tls_port, None) == default
    # The same after STARTTLS.
    assert starttls_cert(srv, "example.org") == der(org[0])
    assert starttls_cert(srv, "localhost") == default
    # A client that verifies the certificate against the name it asked for succeeds.
    ctx = ssl.create_default_context(cafile=net[0])
    with socket.create_connection(("127.0.0.1", c2s.tls_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="example.net") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_reload_replaces_domain_certificates_and_refuses_bad_ones(server):
    srv = server(sm=False)
    c2s = srv.c2s[0]
    path = srv.proc("c2s-1").argv[2]
    net = make_cert(srv, "example.net")
    set_domain_certs(path, {"example.net": net})
    reload(srv)
    first = direct_tls_cert(c2s.tls_port, "example.net")
    assert first == der(net[0])
    # A stream encrypted before the reload keeps working afterwards.
    old = Client(c2s.tls_port, domain="localhost", cafile=srv.cert, direct_tls=True)
    old.open()
    # A new certificate for the domain, then SIGHUP: new connections get it.
    net = make_cert(srv, "example.net")
    reload(srv)
    assert direct_tls_cert(c2s.tls_port, "example.net") == der(net[0]) != first
    # A certificate whose key does not match is refused; the running ones stay.
    org = make_cert(srv, "example.org")
    set_domain_certs(path, {"example.net": net, "example.org": (org[0], net[1])})
    reload(srv, expect="reload refused")
    log = srv.proc("c2s-1").log()
    assert "certificate for example.org" in log and "does not match" in log
    assert direct_tls_cert(c2s.tls_port, "example.net") == der(net[0])
    assert direct_tls_cert(c2s.tls_port, "example.org") == der(srv.cert)
    old.send("<iq type='get' id='still'><query xmlns='jabber:iq:auth'/></iq>")
    el = old.next()
    assert el is not None, "the stream encrypted before the reloads stopped working"


def test_config_check_names_the_bad_domain_certificate(server):
    srv = server(sm=False)
    path = srv.proc("c2s-1").argv[2]
    net = make_cert(srv, "example.net")
    org = make_cert(srv, "example.org")
    bad = os.path.join(srv.dir, "bad.xml")
    with open(path) as f:
        text = f.read()
    with open(bad, "w") as f:
        f.write(text)
    set_domain_certs(bad, {"example.net": net, "example.org": (org[0], net[1])})
    out = subprocess.run([binary("c2s", "switchboard-c2s"), "-c", bad, "--check"], capture_output=True, text=True,
                         env=srv.env)
    assert out.returncode != 0
    assert "tls/certificate" in out.stderr and "example.org" in out.stderr
    set_domain_certs(bad, {"example.net": net, "example.org": org})
    out = subprocess.run([binary("c2s", "switchboard-c2s"), "-c", bad, "--check"], capture_output=True, text=True,
                         env=srv.env)
    assert out.returncode == 0, out.stderr


# ---- s2s: the same certificates per domain for incoming streams ----

def test_s2s_presents_the_certificate_of_the_domain_asked_for(halves, tmp_path, monkeypatch):
    import prosody
    from test_s2s_federation import pair
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = prosody.make_ca(str(certs))
    one = prosody.make_cert(str(certs), "b1.test", ca)
    two = prosody.make_cert(str(certs), "b2.test", ca)
    render = prosody.render_s2s_config

    def render_with_domain_cert(dst, values, hosts, hosts_map):
        # A repeated element with an attribute, which the path overrides cannot express.
        render(dst, values, hosts, hosts_map)
        if "b2.test" in hosts:
            set_domain_certs(dst, {"b2.test": two})
    monkeypatch.setattr(prosody, "render_s2s_config", render_with_domain_cert)
    verify = {"tls/verify": "true", "tls/ca-file": ca[0], "limits/connect-timeout": 5}
    a, b = pair(halves, b_domains=("b1.test", "b2.test"), a_values=verify,
                b_values={"tls/cert": one[0], "tls/key": one[1]})
    # a verifies each certificate against the domain it connects to (RFC 6125):
    # b2.test is only reachable if b shows b2.test's certificate, b1.test with the default.
    for n, domain in enumerate(("b2.test", "b1.test")):
        a.local.send(f"<message from='alice@a.test/r' to='bob@{domain}' id='sni{n}'/>")
        got = b.local.next_stanza(timeout=15)
        assert got is not None and got.get("id") == f"sni{n}", f"A:\n{a.log()}\nB:\n{b.log()}"
