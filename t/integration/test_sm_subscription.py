"""The presence subscription state machine of RFC 6121 (§3, Appendix A),
every row of every table, seen by the users: roster pushes (subscription,
ask, approved), subscription stanzas delivered, and the state kept in
PostgreSQL. Local pairs check A.2 (outbound) together with A.3 (inbound)
on the other user; a fake remote server (an external component on the
router, as s2s would be) checks every row of A.3 on its own."""
import itertools

import pytest

from harness import NS_COMPONENT, connected
from smclient import NS_ROSTER, FakeC2s, is_presence, is_push, new_id, tag

STATES = ["None", "None + Pending Out", "None + Pending In", "None + Pending Out+In", "To",
          "To + Pending In", "From", "From + Pending Out", "Both"]
SAME = None

# RFC 6121 Appendix A.2: outbound, (routed?, new state)
A2 = {
    "subscribe": {"None": (1, "None + Pending Out"), "None + Pending Out": (1, SAME),
                  "None + Pending In": (1, "None + Pending Out+In"), "None + Pending Out+In": (1, SAME),
                  "To": (1, SAME), "To + Pending In": (1, SAME), "From": (1, "From + Pending Out"),
                  "From + Pending Out": (1, SAME), "Both": (1, SAME)},
    "unsubscribe": {"None": (1, SAME), "None + Pending Out": (1, "None"), "None + Pending In": (1, SAME),
                    "None + Pending Out+In": (1, "None + Pending In"), "To": (1, "None"),
                    "To + Pending In": (1, "None + Pending In"), "From": (1, SAME),
                    "From + Pending Out": (1, "From"), "Both": (1, "From")},
    "subscribed": {"None": (0, SAME), "None + Pending Out": (0, SAME), "None + Pending In": (1, "From"),
                   "None + Pending Out+In": (1, "From + Pending Out"), "To": (0, SAME),
                   "To + Pending In": (1, "Both"), "From": (0, SAME), "From + Pending Out": (0, SAME),
                   "Both": (0, SAME)},
    "unsubscribed": {"None": (0, SAME), "None + Pending Out": (0, SAME), "None + Pending In": (1, "None"),
                     "None + Pending Out+In": (1, "None + Pending Out"), "To": (0, SAME),
                     "To + Pending In": (1, "To"), "From": (1, "None"), "From + Pending Out": (1, "None + Pending Out"),
                     "Both": (1, "To")},
}
# RFC 6121 Appendix A.3: inbound, (delivered?, new state)
A3 = {
    "subscribe": {"None": (1, "None + Pending In"), "None + Pending Out": (1, "None + Pending Out+In"),
                  "None + Pending In": (0, SAME), "None + Pending Out+In": (0, SAME), "To": (1, "To + Pending In"),
                  "To + Pending In": (0, SAME), "From": (0, SAME), "From + Pending Out": (0, SAME),
                  "Both": (0, SAME)},
    "unsubscribe": {"None": (0, SAME), "None + Pending Out": (0, SAME), "None + Pending In": (1, "None"),
                    "None + Pending Out+In": (1, "None + Pending Out"), "To": (0, SAME),
                    "To + Pending In": (1, "To"), "From": (1, "None"), "From + Pending Out": (1, "None + Pending Out"),
                    "Both": (1, "To")},
    "subscribed": {"None": (0, SAME), "None + Pending Out": (1, "To"), "None + Pending In": (0, SAME),
                   "None + Pending Out+In": (1, "To + Pending In"), "To": (0, SAME), "To + Pending In": (0, SAME),
                   "From": (0, SAME), "From + Pending Out": (1, "Both"), "Both": (0, SAME)},
    "unsubscribed": {"None": (0, SAME), "None + Pending Out": (1, "None"), "None + Pending In": (0, SAME),
                     "None + Pending Out+In": (1, "None + Pending In"), "To": (1, "None"),
                     "To + Pending In": (1, "None + Pending In"), "From": (0, SAME), "From + Pending Out": (1, "From"),
                     "Both": (1, "From")},
}
COUNTERPART = {"None": "None", "None + Pending Out": "None + Pending In", "None + Pending In": "None + Pending Out",
               "None + Pending Out+In": "None + Pending Out+In", "To": "From", "To + Pending In": "From + Pending Out",
               "From": "To", "From + Pending Out": "To + Pending In", "Both": "Both"}
# How a pair gets to a state of the user (A), as (who, type) steps.
SETUP = {
    "None": [],
    "None + Pending Out": [("A", "subscribe")],
    "None + Pending In": [("B", "subscribe")],
    "None + Pending Out+In": [("A", "subscribe"), ("B", "subscribe")],
    "To": [("A", "subscribe"), ("B", "subscribed")],
    "To + Pending In": [("A", "subscribe"), ("B", "subscribed"), ("B", "subscribe")],
    "From": [("B", "subscribe"), ("A", "subscribed")],
    "From + Pending Out": [("B", "subscribe"), ("A", "subscribed"), ("A", "subscribe")],
    "Both": [("A", "subscribe"), ("B", "subscribed"), ("B", "subscribe"), ("A", "subscribed")],
}


def visible(state):
    """(subscription, ask) a client sees for a state."""
    return state.split(" +")[0].lower(), "subscribe" if "Pending Out" in state else None


def pending_in(state):
    return "Pending In" in state or "Out+In" in state


def roster_state(sess, contact):
    r = sess.roster()
    for item in r.iter("{%s}item" % NS_ROSTER):
        if item.get("jid") == contact:
            return item.get("subscription"), item.get("ask")
    return "none", None


def sync(x, y):
    """Round trips x -> y -> x: everything either sent before is processed."""
    for a, b in ((x, y), (y, x), (x, y)):
        iid = new_id("sync")
        a.send(f"<iq type='get' id='{iid}' to='{b.jid}'><ping xmlns='urn:xmpp:ping'/></iq>")
        b.expect(lambda e: tag(e) == "iq" and e.get("id") == iid, what="sync ping")
        b.send(f"<iq type='result' id='{iid}' to='{a.jid}'/>")
        a.expect(lambda e: tag(e) == "iq" and e.get("id") == iid, what="sync pong")


@pytest.fixture
def local(server):
    srv = server(c2s=0)
    c2s = FakeC2s(srv)
    counter = itertools.count()

    def pair():
        n = next(counter)
        a, b = f"a{n}", f"b{n}"
        srv.add_user(a, "pw")
        srv.add_user(b, "pw")
        A = c2s.online(f"{a}@localhost/res")
        B = c2s.online(f"{b}@localhost/res")
        return A, B
    yield pair
    c2s.close()


def establish(A, B, state):
    who = {"A": (A, B), "B": (B, A)}
    for w, typ in SETUP[state]:
        s, other = who[w]
        s.presence(to=other.bare, type=typ)
        sync(A, B)
    A.drain()
    B.drain()
    assert roster_state(A, B.bare) == visible(state), f"set-up of {state} failed on A"
    assert roster_state(B, A.bare) == visible(COUNTERPART[state]), f"set-up of {state} failed on B"


@pytest.mark.parametrize("typ", ["subscribe", "unsubscribe", "subscribed", "unsubscribed"])
def test_outbound_every_state_local(local, typ):
    """A.2 on the sender and A.3 on the local contact, for all nine states."""
    problems = []
    for state in STATES:
        A, B = local()
        establish(A, B, state)
        routed, a_next = A2[typ][state]
        a_next = a_next or state
        b_state = COUNTERPART[state]
        delivered, b_next = A3[typ][b_state] if routed else (0, SAME)
        b_next = b_next or b_state
        auto = routed and typ == "subscribe" and b_state in ("From", "From + Pending Out", "Both")
        if auto:
            # the contact's server answers 'subscribed' for it (§3.1.3)
            _, after = A3["subscribed"][a_next]
            a_next = after or a_next
        preapproval = typ == "subscribed" and not routed and state in ("None", "None + Pending Out", "To")
        A.presence(to=B.bare, type=typ)
        sync(A, B)
        a_pushes = [e for e in A.drain() if is_push(e, B.bare)]
        b_got = B.drain()
        b_pushes = [e for e in b_got if is_push(e, A.bare)]
        b_sub = [e for e in b_got if is_presence(e, A.bare, typ)]
        got_a, got_b = roster_state(A, B.bare), roster_state(B, A.bare)
        want_a_push = visible(a_next) != visible(state) or preapproval
        want_b_push = visible(b_next) != visible(b_state)
        row = f"{typ} in {state!r}"
        if got_a != visible(a_next):
            problems.append(f"{row}: sender sees {got_a}, RFC says {a_next}")
        if got_b != visible(b_next):
            problems.append(f"{row}: contact sees {got_b}, RFC says {b_next}")
        if bool(a_pushes) != want_a_push:
            problems.append(f"{row}: sender push {'sent' if a_pushes else 'missing'}")
        if bool(b_pushes) != want_b_push:
            problems.append(f"{row}: contact push {'sent' if b_pushes else 'missing'}")
        if bool(b_sub) != bool(delivered):
            problems.append(f"{row}: contact {'got' if b_sub else 'did not get'} the {typ}")
        if b_sub and b_sub[0].get("from") != A.bare:
            problems.append(f"{row}: delivered from {b_sub[0].get('from')}, not the bare JID")
        if preapproval:
            item = a_pushes[0].find("{%s}query/{%s}item" % (NS_ROSTER, NS_ROSTER)) if a_pushes else None
            if item is None or item.get("approved") != "true":
                problems.append(f"{row}: pre-approval not pushed with approved='true'")
        if pending_in(a_next) and not A.jid:
            pass
    assert not problems, "\n".join(problems)


class Remote:
    """An external component on the router playing a remote server."""

    def __init__(self, srv, domain="remote.example"):
        self.domain = domain
        self.comp = connected(srv.router_port, domain, srv.component_secret)
        self.got = []

    def send(self, xml):
        self.comp.send(xml)

    def sync_with(self, sess):
        """Everything sent to and from sess before is processed."""
        iid = new_id("rsync")
        self.send(f"<iq type='get' id='{iid}' from='x@{self.domain}/r' to='{sess.jid}'>"
                  f"<ping xmlns='urn:xmpp:ping'/></iq>")
        sess.expect(lambda e: tag(e) == "iq" and e.get("id") == iid, what="remote ping")
        sess.send(f"<iq type='result' id='{iid}' to='x@{self.domain}/r'/>")
        self.wait(lambda e: e.get("id") == iid)

    def wait(self, pred, timeout=10):
        import time
        deadline = time.time() + timeout
        while time.time() < deadline:
            el = self.comp.next(max(0.01, deadline - time.time()))
            if el is None:
                break
            self.got.append(el)
            if pred(el):
                return el
        raise AssertionError("the remote server did not get what it expected")

    def take(self):
        out, self.got = self.got, []
        return out


@pytest.fixture
def remote_env(server):
    srv = server(c2s=0)
    c2s = FakeC2s(srv)
    remote = Remote(srv)
    counter = itertools.count()

    def user():
        n = next(counter)
        srv.add_user(f"u{n}", "pw")
        return c2s.online(f"u{n}@localhost/res"), f"c{n}@remote.example"
    yield srv, c2s, remote, user
    remote.comp.close()
    c2s.close()


def remote_establish(remote, A, contact, state):
    """Bring A to state with the remote contact (which plays along)."""
    for w, typ in SETUP[state]:
        if w == "A":
            A.presence(to=contact, type=typ)
        else:
            remote.send(f"<presence from='{contact}' to='{A.bare}' type='{typ}'/>")
        remote.sync_with(A)
    remote.take()
    A.drain()
    assert roster_state(A, contact) == visible(state), f"set-up of {state} failed"


@pytest.mark.parametrize("typ", ["subscribe", "unsubscribe", "subscribed", "unsubscribed"])
def test_inbound_every_state_remote(remote_env, typ):
    """A.3: a subscription stanza from a remote contact, in all nine states."""
    srv, c2s, remote, user = remote_env
    problems = []
    for state in STATES:
        A, contact = user()
        remote_establish(remote, A, contact, state)
        delivered, nxt = A3[typ][state]
        nxt = nxt or state
        remote.send(f"<presence from='{contact}/phone' to='{A.bare}' type='{typ}'/>")
        remote.sync_with(A)
        got = A.drain()
        sent_back = remote.take()
        pushes = [e for e in got if is_push(e, contact)]
        stanzas = [e for e in got if is_presence(e, contact, typ)]
        row = f"{typ} in {state!r}"
        if roster_state(A, contact) != visible(nxt):
            problems.append(f"{row}: user sees {roster_state(A, contact)}, RFC says {nxt}")
        if bool(pushes) != (visible(nxt) != visible(state)):
            problems.append(f"{row}: push {'sent' if pushes else 'missing'}")
        if bool(stanzas) != bool(delivered):
            problems.append(f"{row}: the {typ} was {'delivered' if stanzas else 'not delivered'}")
        if stanzas and stanzas[0].get("from") != contact:
            problems.append(f"{row}: delivered from {stanzas[0].get('from')}, not the bare JID")
        auto = [e for e in sent_back if e.tag == "{%s}presence" % NS_COMPONENT and e.get("type") == "subscribed"]
        want_auto = typ == "subscribe" and state in ("From", "From + Pending Out", "Both")
        if bool(auto) != want_auto:
            problems.append(f"{row}: auto-reply 'subscribed' {'sent' if auto else 'missing'}")
        if auto and (auto[0].get("from") != A.bare or auto[0].get("to") != contact):
            problems.append(f"{row}: auto-reply from {auto[0].get('from')} to {auto[0].get('to')}")
        # Pending In is not in the roster: it shows as the request re-sent at the next login.
        A.end()
        again = c2s.session(A.jid)
        again.roster()
        again.presence()
        resent = [e for e in again.drain(0.8) if is_presence(e, contact, "subscribe")]
        if bool(resent) != pending_in(nxt):
            problems.append(f"{row}: Pending In {'re-sent' if resent else 'not re-sent'} at login, RFC says {nxt}")
    assert not problems, "\n".join(problems)


def test_outbound_to_remote_is_routed_with_bare_jids(remote_env):
    srv, c2s, remote, user = remote_env
    A, contact = user()
    A.presence(to=contact + "/somewhere", type="subscribe")
    el = remote.wait(lambda e: e.get("type") == "subscribe")
    assert el.get("from") == A.bare and el.get("to") == contact
    item = A.push(contact)
    assert (item.get("subscription"), item.get("ask")) == ("none", "subscribe")


def test_pending_in_survives_and_approval(local):
    """The seed's add-contact walkthrough (doc 000 §7.3) with the contact offline."""
    A, B = local()
    B.end()
    A.roster_set(B.bare, name="romeo")
    assert A.push(B.bare).get("subscription") == "none"
    A.presence(to=B.bare, type="subscribe")
    item = A.push(B.bare)
    assert (item.get("subscription"), item.get("ask"), item.get("name")) == ("none", "subscribe", "romeo")
    # B logs in later: the request is delivered at its initial presence
    B2 = B.c2s.session(B.jid)
    B2.roster()
    B2.presence()
    req = B2.expect(lambda e: is_presence(e, A.bare, "subscribe"))
    assert req.get("from") == A.bare
    B2.presence(to=A.bare, type="subscribed")
    item = A.push(B.bare)
    assert (item.get("subscription"), item.get("ask")) == ("to", None)
    # A now sees B's presence (sent on approval, §3.1.5)
    A.expect(lambda e: is_presence(e, B.bare) and e.get("from") == B2.jid, what="B's presence")
    assert B2.push(A.bare).get("subscription") == "from"


def test_preapproval(local):
    A, B = local()
    A.presence(to=B.bare, type="subscribed")
    item = A.push(B.bare)
    assert item.get("approved") == "true" and item.get("subscription") == "none"
    B.nothing(lambda e: is_presence(e, A.bare, "subscribed"))
    B.presence(to=A.bare, type="subscribe")
    # approved at once by A's server, A is not asked
    assert B.push(A.bare).get("ask") == "subscribe"
    assert B.push(A.bare).get("subscription") == "to"
    item = A.push(B.bare)
    assert item.get("subscription") == "from" and item.get("approved") is None
    A.nothing(lambda e: is_presence(e, B.bare, "subscribe"))


def test_subscription_to_missing_user_is_dropped(local):
    A, B = local()
    A.presence(to="ghost@localhost", type="subscribe")
    item = A.push("ghost@localhost")
    assert item.get("ask") == "subscribe"
    sync(A, B)
    A.nothing(lambda e: tag(e) == "presence" and e.get("type") == "error")


def test_roster_remove_cancels_both_ways(local):
    A, B = local()
    establish(A, B, "Both")
    A.roster_set(B.bare, remove=True)
    assert A.push(B.bare).get("subscription") == "remove"
    B.expect(lambda e: is_presence(e, A.bare, "unsubscribe"))
    B.expect(lambda e: is_presence(e, A.bare, "unsubscribed"))
    B.expect(lambda e: is_presence(e, A.bare, "unavailable"), what="A's unavailable presence")
    sync(A, B)
    assert roster_state(B, A.bare) == ("none", None)
