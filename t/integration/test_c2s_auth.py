"""c2s authentication: SASL (RFC 6120 §6) with SCRAM and PLAIN, legacy
jabber:iq:auth (XEP-0078) and in-band registration (XEP-0077), raw XML."""
import base64
import hashlib

from test_c2s_client import (NS_AUTH, NS_REGISTER, NS_SASL, Client, q, sasl_condition, stanza_error,
                             stream_error)


def tls_client(srv, port=None):
    c = Client(port or srv.c2s[0].port, cafile=srv.cert)
    c.open()
    c.starttls()
    return c


# ---- SASL ----

def test_scram_sha256_sha1_and_plain(server):
    srv = server(sm=False)
    srv.add_user("alice", "pw-Alice")
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
        c = tls_client(srv)
        el = c.scram("alice", "pw-Alice", mech)   # also checks the server's signature
        assert el.tag == q(NS_SASL, "success"), mech
    c = tls_client(srv)
    assert c.plain("alice", "pw-Alice").tag == q(NS_SASL, "success")
    assert "authenticated as alice@localhost (SCRAM-SHA-1)" in srv.proc("c2s-1").log()


def test_wrong_password_and_unknown_user_look_the_same(server):
    srv = server(sm=False)
    srv.add_user("alice", "pw-Alice")
    c = tls_client(srv)
    assert sasl_condition(c.scram("alice", "wrong")) == "not-authorized"
    # An unknown user gets a challenge too (no hint that the user does not
    # exist), and fails at the proof.
    c = tls_client(srv)
    from test_c2s_client import ScramClient
    sc = ScramClient("SHA-256", "nobody", "x")
    el = c.auth_element("SCRAM-SHA-256", sc.first())
    assert el.tag == q(NS_SASL, "challenge")
    salt1 = dict(kv.split("=", 1) for kv in base64.b64decode(el.text).decode().split(","))["s"]
    c.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(sc.final(base64.b64decode(el.text))).decode()}</response>")
    assert sasl_condition(c.next()) == "not-authorized"
    # The made-up salt is stable for the name, as a real one would be.
    c = tls_client(srv)
    sc = ScramClient("SHA-256", "nobody", "x")
    el = c.auth_element("SCRAM-SHA-256", sc.first())
    assert dict(kv.split("=", 1) for kv in base64.b64decode(el.text).decode().split(","))["s"] == salt1
    c = tls_client(srv)
    assert sasl_condition(c.plain("alice", "wrong")) == "not-authorized"


def test_sasl_failure_conditions(server):
    srv = server(sm=False)
    c = tls_client(srv)
    assert sasl_condition(c.auth_element("DIGEST-MD5", b"")) == "invalid-mechanism"
    c.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>not*base64!</auth>")
    assert sasl_condition(c.next()) == "incorrect-encoding"
    assert sasl_condition(c.auth_element("SCRAM-SHA-256", b"garbage")) == "malformed-request"
    assert sasl_condition(c.auth_element("PLAIN", b"no-nul-bytes")) == "malformed-request"
    # No initial response: an empty challenge, then abort.
    el = c.auth_element("SCRAM-SHA-256")
    assert el.tag == q(NS_SASL, "challenge") and not (el.text or "")
    c.send(f"<abort xmlns='{NS_SASL}'/>")
    assert sasl_condition(c.next()) == "aborted"
    # authzid naming someone else.
    srv.add_user("alice", "pw-Alice")
    assert sasl_condition(c.plain("alice", "pw-Alice", authzid="bob@localhost")) == "invalid-authzid"
    # Still usable after all this.
    assert c.scram("alice", "pw-Alice").tag == q(NS_SASL, "success")


def test_auth_before_starttls_needs_encryption(server):
    srv = server(sm=False)
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    assert c.mechanisms() == []
    assert sasl_condition(c.auth_element("SCRAM-SHA-256", b"n,,n=a,r=abc")) == "encryption-required"


def test_channel_binding_downgrade_is_refused(server):
    srv = server(sm=False, config={"c2s": {"auth/channel-binding": "true"}})
    srv.add_user("alice", "pw-Alice")
    c = tls_client(srv)
    if c.tls_version() != "TLSv1.3":
        return
    assert "SCRAM-SHA-256-PLUS" in c.mechanisms()
    assert c.features.find("{urn:xmpp:sasl-cb:0}sasl-channel-binding") is not None
    # A binding type that is not offered fails.
    el = c.scram("alice", "pw-Alice", mech="SCRAM-SHA-256-PLUS", gs2="p=tls-unique,,")
    assert sasl_condition(el) == "not-authorized"
    # 'y': "I could bind the channel but you do not offer it" - but we do.
    el = c.scram("alice", "pw-Alice", gs2="y,,")
    assert sasl_condition(el) == "not-authorized"
    # Without channel binding offered (the default), 'y' is fine.
    srv2 = server(sm=False)
    srv2.add_user("alice", "pw-Alice")
    d = tls_client(srv2)
    assert not [m for m in d.mechanisms() if m.endswith("-PLUS")]
    assert d.scram("alice", "pw-Alice", gs2="y,,").tag == q(NS_SASL, "success")


def test_too_many_failures_close_the_stream(server):
    srv = server(sm=False, config={"c2s": {"limits/auth-retries": "2", "limits/auth-failures-per-account": "100"}})
    srv.add_user("alice", "pw-Alice")
    c = tls_client(srv)
    for _ in range(2):
        assert sasl_condition(c.scram("alice", "wrong")) == "not-authorized"
    assert sasl_condition(c.scram("alice", "wrong")) == "not-authorized"
    assert stream_error(c.next()) == "policy-violation"


def test_failed_logins_are_throttled_per_account(server):
    srv = server(sm=False, config={"c2s": {"limits/auth-failures-per-account": "2"}})
    srv.add_user("alice", "pw-Alice")
    for _ in range(2):
        c = tls_client(srv)
        assert sasl_condition(c.scram("alice", "wrong")) == "not-authorized"
    c = tls_client(srv)
    # Even the right password is refused for now, without a hint about it.
    el = c.scram("alice", "pw-Alice")
    assert sasl_condition(el) == "temporary-auth-failure"
    # Other accounts are not affected.
    srv.add_user("bob", "pw-Bob")
    assert c.scram("bob", "pw-Bob").tag == q(NS_SASL, "success")


def test_failed_logins_are_throttled_per_ip(server):
    srv = server(sm=False, config={"c2s": {"limits/auth-failures-per-ip": "3"}})
    srv.add_user("alice", "pw-Alice")
    for user in ("u1", "u2", "u3"):
        c = tls_client(srv)
        assert sasl_condition(c.plain(user, "x")) == "not-authorized"
    c = tls_client(srv)
    assert sasl_condition(c.scram("alice", "pw-Alice")) == "temporary-auth-failure"


def test_database_down_is_temporary_auth_failure(server):
    srv = server(sm=False, config={"c2s": {"database/conninfo": "host=/nonexistent-dir dbname=none connect_timeout=1"}})
    c = tls_client(srv)
    assert sasl_condition(c.scram("alice", "pw")) == "temporary-auth-failure"
    c = tls_client(srv)
    assert sasl_condition(c.plain("alice", "pw")) == "temporary-auth-failure"


# ---- in-band registration (XEP-0077) ----

def register(c, user, password, iq_id="reg1"):
    return c.iq("set", f"<query xmlns='{NS_REGISTER}'><username>{user}</username>"
                       f"<password>{password}</password></query>", iq_id=iq_id)


def test_registration_form_register_and_login(server):
    srv = server(sm=False)
    c = tls_client(srv)
    form = c.iq("get", f"<query xmlns='{NS_REGISTER}'/>")
    assert form.get("type") == "result"
    query = form.find(q(NS_REGISTER, "query"))
    assert query.find(q(NS_REGISTER, "instructions")).text
    assert query.find(q(NS_REGISTER, "username")) is not None
    assert query.find(q(NS_REGISTER, "password")) is not None
    assert register(c, "carol", "pw-Carol").get("type") == "result"
    # Registered: the same stream can authenticate with it.
    assert c.scram("carol", "pw-Carol").tag == q(NS_SASL, "success")
    # Taken.
    d = tls_client(srv)
    el = register(d, "carol", "other")
    assert el.get("type") == "error" and stanza_error(el)[0] == "conflict"
    # An empty password is refused.
    el = register(d, "dave", "")
    assert el.get("type") == "error" and stanza_error(el)[0] == "not-acceptable"


def test_password_change_and_removal(server):
    srv = server()
    srv.add_user("erin", "old-pw")
    c = tls_client(srv)
    assert c.login("erin", "old-pw", resource="r1") == "erin@localhost/r1"
    el = c.iq("get", f"<query xmlns='{NS_REGISTER}'/>")
    assert el.find(f"{q(NS_REGISTER, 'query')}/{q(NS_REGISTER, 'registered')}") is not None
    el = c.iq("set", f"<query xmlns='{NS_REGISTER}'><username>erin</username><password></password></query>")
    assert stanza_error(el)[0] == "not-acceptable"
    el = c.iq("set", f"<query xmlns='{NS_REGISTER}'><username>erin</username><password>new-pw</password></query>")
    assert el.get("type") == "result"
    d = tls_client(srv)
    assert sasl_condition(d.scram("erin", "old-pw")) == "not-authorized"
    d = tls_client(srv)
    assert d.scram("erin", "new-pw").tag == q(NS_SASL, "success")
    # Removal: result, then the stream ends with <not-authorized/>.
    el = c.iq("set", f"<query xmlns='{NS_REGISTER}'><remove/></query>")
    assert el.get("type") == "result"
    assert c.wait_error() == "not-authorized"
    d = tls_client(srv)
    assert sasl_condition(d.scram("erin", "new-pw")) == "not-authorized"


def test_registration_disabled(server):
    srv = server(sm=False, config={"c2s": {"register/enabled": "false"}})
    c = tls_client(srv)
    tags = [e.tag for e in c.features]
    assert q("http://jabber.org/features/iq-register", "register") not in tags
    el = register(c, "frank", "pw")
    assert stanza_error(el)[0] == "service-unavailable"


def test_registrations_per_ip_are_limited(server):
    srv = server(sm=False, config={"c2s": {"register/per-ip-per-minute": "2"}})
    for i in range(2):
        c = tls_client(srv)
        assert register(c, f"user{i}", "pw").get("type") == "result"
    c = tls_client(srv)
    el = register(c, "user9", "pw")
    assert stanza_error(el)[:2] == ("resource-constraint", "wait")


# ---- legacy jabber:iq:auth (XEP-0078) ----

def legacy_client(srv):
    """A pre-XMPP-1.0 client: no version, direct TLS (it knows no STARTTLS)."""
    c = Client(srv.c2s[0].tls_port, cafile=srv.cert, direct_tls=True)
    h = c.open(version=None)
    assert h.get("version") is None
    return c


def test_legacy_auth_plaintext(server):
    srv = server()
    srv.add_user("gina", "pw-Gina")
    c = legacy_client(srv)
    el = c.iq("get", f"<query xmlns='{NS_AUTH}'><username>gina</username></query>")
    query = el.find(q(NS_AUTH, "query"))
    assert query.find(q(NS_AUTH, "password")) is not None and query.find(q(NS_AUTH, "resource")) is not None
    assert query.find(q(NS_AUTH, "digest")) is None, "no digest without stored plaintext"
    el = c.iq("set", f"<query xmlns='{NS_AUTH}'><username>gina</username><password>wrong</password>"
                     "<resource>old</resource></query>")
    assert stanza_error(el)[:3] == ("not-authorized", "auth", "401")
    el = c.iq("set", f"<query xmlns='{NS_AUTH}'><username>gina</username><resource>old</resource></query>")
    assert stanza_error(el)[0] == "not-acceptable"
    el = c.iq("set", f"<query xmlns='{NS_AUTH}'><username>gina</username><password>pw-Gina</password>"
                     "<resource>old</resource></query>", timeout=15)
    assert el.get("type") == "result"
    # The session is bound: the server answers for the account.
    el = c.iq("get", "<query xmlns='jabber:iq:roster'/>", timeout=15)
    assert el.get("type") == "result"


def test_legacy_auth_digest(server):
    srv = server(config={"c2s": {"auth/store-plaintext": "true"}})
    reg = tls_client(srv)
    assert register(reg, "hank", "pw-Hank").get("type") == "result"
    c = legacy_client(srv)
    el = c.iq("get", f"<query xmlns='{NS_AUTH}'/>")
    assert el.find(f"{q(NS_AUTH, 'query')}/{q(NS_AUTH, 'digest')}") is not None
    bad = hashlib.sha1((c.header.get("id") + "wrong").encode()).hexdigest()
    el = c.iq("set", f"<query xmlns='{NS_AUTH}'><username>hank</username><digest>{bad}</digest>"
                     "<resource>r</resource></query>")
    assert stanza_error(el)[0] == "not-authorized"
    digest = hashlib.sha1((c.header.get("id") + "pw-Hank").encode()).hexdigest()
    el = c.iq("set", f"<query xmlns='{NS_AUTH}'><username>hank</username><digest>{digest}</digest>"
                     "<resource>r</resource></query>", timeout=15)
    assert el.get("type") == "result"
    assert "authenticated as hank@localhost (jabber:iq:auth, digest)" in srv.proc("c2s-1").log()
