"""Client State Indication (XEP-0352) in c2s, with a raw client through the
real c2s and sm, and an external component sending presence from many
addresses: the feature after authentication, presence held back while
inactive (the latest per sender), flushed in order by <active/> or before
an important stanza, and the bound on what is held."""
import xml.etree.ElementTree as ET

from harness import connected
from test_c2s_client import NS_CLIENT, Client, q, stream_error

NS_CSI = "urn:xmpp:csi:0"
NS_PING = "urn:xmpp:ping"
DEFAULT_MAX_HELD = 100


def start_alice(server):
    srv = server()
    srv.add_user("alice", "pw-a")
    c = Client(srv.c2s[0].port, cafile=srv.cert)
    c.open()
    before = c.features
    c.login("alice", "pw-a", resource="phone")
    comp = connected(srv.router_port, "svc.localhost", srv.component_secret)
    return srv, c, comp, before


def presence_from(comp, sender, status, to="alice@localhost/phone"):
    comp.send(f"<presence from='{sender}' to='{to}'><status>{status}</status></presence>")


def collect(c, n, timeout=10):
    """The next n stanzas (presence, message, iq) as they come."""
    out = []
    while len(out) < n:
        el = c.next_stanza(timeout)
        assert el is not None, f"only {len(out)} of {n} stanzas: {[ET.tostring(e) for e in out]}"
        out.append(el)
    return out


def summary(el):
    name = el.tag.split("}")[1]
    return (name, el.get("from"), el.findtext(q(NS_CLIENT, "status")) or el.findtext(q(NS_CLIENT, "body")))


def quiet(c, wait=1.0):
    el = c.next_stanza(wait)
    assert el is None, f"unexpected {ET.tostring(el)}"


def go_online(c):
    c.send("<presence/>")
    el = c.next_stanza()
    assert el.tag == q(NS_CLIENT, "presence") and el.get("from") == c.jid   # its own presence


def test_feature_advertised_after_authentication(server):
    srv, c, comp, before = start_alice(server)
    assert before.find(q(NS_CSI, "csi")) is None
    # the features after SASL (the bind-ready stream) list it
    assert c.features.find(q(NS_CSI, "csi")) is not None
    comp.close()
    # before authentication it is not for the client to say
    d = Client(srv.c2s[0].port, cafile=srv.cert)
    d.open()
    d.send(f"<inactive xmlns='{NS_CSI}'/>")
    assert stream_error(d.next()) == "not-authorized"


def test_presence_held_latest_per_sender_and_flushed_before_a_message(server):
    srv, c, comp, _ = start_alice(server)
    go_online(c)
    c.send(f"<inactive xmlns='{NS_CSI}'/>")
    presence_from(comp, "a@svc.localhost/1", "a-old")
    presence_from(comp, "b@svc.localhost/1", "b-only")
    presence_from(comp, "a@svc.localhost/1", "a-new")
    comp.send("<presence from='c@svc.localhost/1' to='alice@localhost/phone' type='unavailable'/>")
    quiet(c)
    # a message is important: what was held comes first, in order, the
    # replaced presence not at all; then the message
    comp.send("<message from='a@svc.localhost/1' to='alice@localhost/phone' type='chat'><body>hi</body></message>")
    got = [summary(e) for e in collect(c, 4)]
    assert got == [("presence", "b@svc.localhost/1", "b-only"),
                   ("presence", "a@svc.localhost/1", "a-new"),
                   ("presence", "c@svc.localhost/1", None),
                   ("message", "a@svc.localhost/1", "hi")]
    quiet(c, 0.5)
    # still inactive: held again; an iq is important too
    presence_from(comp, "d@svc.localhost/1", "d1")
    quiet(c, 0.5)
    comp.send(f"<iq from='svc.localhost' to='alice@localhost/phone' type='get' id='ping1'><ping xmlns='{NS_PING}'/></iq>")
    got = collect(c, 2)
    assert summary(got[0]) == ("presence", "d@svc.localhost/1", "d1")
    assert got[1].tag == q(NS_CLIENT, "iq") and got[1].get("id") == "ping1"
    comp.close()


def test_active_flushes_and_stops_holding(server):
    srv, c, comp, _ = start_alice(server)
    go_online(c)
    c.send(f"<inactive xmlns='{NS_CSI}'/>")
    for i in range(3):
        presence_from(comp, f"u{i}@svc.localhost/r", f"s{i}")
    presence_from(comp, "u0@svc.localhost/r", "s0-again")
    quiet(c)
    # <active/> writes what was held before anything the client sends next is answered
    c.send(f"<active xmlns='{NS_CSI}'/><iq type='get' id='p1'><ping xmlns='{NS_PING}'/></iq>")
    got = collect(c, 4)
    assert [summary(e) for e in got[:3]] == [("presence", "u1@svc.localhost/r", "s1"),
                                            ("presence", "u2@svc.localhost/r", "s2"),
                                            ("presence", "u0@svc.localhost/r", "s0-again")]
    assert got[3].tag == q(NS_CLIENT, "iq") and got[3].get("id") == "p1" and got[3].get("type") == "result"
    # active: presence goes out at once
    presence_from(comp, "u5@svc.localhost/r", "now")
    assert summary(c.next_stanza()) == ("presence", "u5@svc.localhost/r", "now")
    # subscription requests are never held
    c.send(f"<inactive xmlns='{NS_CSI}'/>")
    comp.send("<presence from='v@svc.localhost' to='alice@localhost' type='subscribe'/>")
    el = c.next_stanza()
    assert el.tag == q(NS_CLIENT, "presence") and el.get("type") == "subscribe"
    comp.close()


def test_bound_on_what_is_held(server):
    srv, c, comp, _ = start_alice(server)
    go_online(c)
    c.send(f"<inactive xmlns='{NS_CSI}'/>")
    for i in range(DEFAULT_MAX_HELD):
        presence_from(comp, f"n{i}@svc.localhost/r", f"p{i}")
    quiet(c)
    # one more sender than may be held: everything goes out, in order
    presence_from(comp, f"n{DEFAULT_MAX_HELD}@svc.localhost/r", f"p{DEFAULT_MAX_HELD}")
    got = [summary(e) for e in collect(c, DEFAULT_MAX_HELD + 1)]
    assert got == [("presence", f"n{i}@svc.localhost/r", f"p{i}") for i in range(DEFAULT_MAX_HELD + 1)]
    comp.close()
