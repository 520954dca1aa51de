"""Message archive (XEP-0313 urn:xmpp:mam:2, XEP-0059 paging, XEP-0359
stanza ids, XEP-0334 hints, archiving preferences), driven through the sm
by a fake c2s. The large archive for the paging tests is bulk-inserted into
the database, the rest goes through the sm."""
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import pytest

from smclient import C, FakeC2s, error_condition, is_message, is_presence, new_id, tag

MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
SID = "urn:xmpp:sid:0"
FWD = "urn:xmpp:forward:0"
DELAY = "urn:xmpp:delay"
HINTS = "urn:xmpp:hints"
DISCO = "http://jabber.org/protocol/disco#info"


@pytest.fixture
def env(server):
    srv = server(c2s=0)
    for u in ("alice", "bob", "carol"):
        srv.add_user(u, "pw")
    c2s = FakeC2s(srv)
    yield srv, c2s
    c2s.close()


def sql(srv, q):
    return srv.pg.psql(q, db=srv.dbname).strip()


def form(fields):
    if not fields:
        return ""
    out = f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{MAM}</value></field>"
    for var, val in fields.items():
        vals = val if isinstance(val, (list, tuple)) else [val]
        out += f"<field var={quoteattr(var)}>" + "".join(f"<value>{escape(v)}</value>" for v in vals) + "</field>"
    return out + "</x>"


def rsm(max=None, after=None, before=None):
    if max is None and after is None and before is None:
        return ""
    out = f"<set xmlns='{RSM}'>"
    if max is not None:
        out += f"<max>{max}</max>"
    if after is not None:
        out += f"<after>{after}</after>"
    if before is not None:
        out += f"<before>{before}</before>" if before else "<before/>"
    return out + "</set>"


class Page:
    def __init__(self, iq, results):
        self.iq = iq
        self.results = results        # [(archive id, delay stamp, forwarded <message/>)]
        self.fin = iq.find("{%s}fin" % MAM)
        s = self.fin.find("{%s}set" % RSM) if self.fin is not None else None
        self.first = s.findtext("{%s}first" % RSM) if s is not None else None
        first = s.find("{%s}first" % RSM) if s is not None else None
        self.index = int(first.get("index")) if first is not None and first.get("index") else None
        self.last = s.findtext("{%s}last" % RSM) if s is not None else None
        c = s.findtext("{%s}count" % RSM) if s is not None else None
        self.count = int(c) if c is not None else None
        self.complete = self.fin.get("complete") == "true" if self.fin is not None else None

    @property
    def ids(self):
        return [r[0] for r in self.results]

    @property
    def bodies(self):
        return [r[2].findtext(C + "body") for r in self.results]


def query(sess, fields=None, max=None, after=None, before=None, extra="", expect_error=False, timeout=20):
    qid = new_id("q")
    iq = sess.iq(f"<query xmlns='{MAM}' queryid='{qid}'>{form(fields)}{rsm(max, after, before)}{extra}</query>",
                 type="set", timeout=timeout)
    if expect_error:
        assert iq.get("type") == "error", ET.tostring(iq)
        return error_condition(iq)
    assert iq.get("type") == "result", ET.tostring(iq, encoding="unicode")
    results = []
    rest = []
    for el in sess.inbox:
        res = el.find("{%s}result" % MAM) if tag(el) == "message" else None
        if res is not None and res.get("queryid") == qid:
            assert el.get("to") == sess.jid and el.get("from") == sess.bare
            fw = res.find("{%s}forwarded" % FWD)
            stamp = fw.find("{%s}delay" % DELAY).get("stamp")
            results.append((res.get("id"), stamp, fw.find(C + "message")))
        else:
            rest.append(el)
    sess.inbox = rest
    p = Page(iq, results)
    assert p.fin is not None and p.fin.get("queryid") == qid
    return p


def stanza_ids(msg, by):
    return [s.get("id") for s in msg.findall("{%s}stanza-id" % SID) if s.get("by") == by]


def wait_for(pred, timeout=15, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# ---- archiving ----

def test_both_directions_with_stanza_ids(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    a.message("bob@localhost", "hello bob", type="chat", id="m1")
    got = b.expect(lambda e: is_message(e, "alice@localhost", "hello bob"))
    ids = stanza_ids(got, "bob@localhost")
    assert len(ids) == 1 and ids[0]
    b.message("alice@localhost/phone", "hi alice", type="chat")
    got_a = a.expect(lambda e: is_message(e, "bob@localhost", "hi alice"))
    ids_a = stanza_ids(got_a, "alice@localhost")
    assert len(ids_a) == 1

    pb = query(b)
    assert pb.bodies == ["hello bob", "hi alice"]
    assert pb.ids[0] == ids[0]                     # the delivered stanza-id is the archive id
    assert pb.results[0][2].get("from") == a.jid and pb.results[0][2].get("to") == "bob@localhost"
    assert pb.results[1][2].get("from") == b.jid   # bob's own outgoing message
    assert pb.count == 2 and pb.complete is True and pb.first == pb.ids[0] and pb.last == pb.ids[1]
    assert pb.index == 0
    pa = query(a)
    assert pa.bodies == ["hello bob", "hi alice"]
    assert pa.ids[1] == ids_a[0]
    assert set(pa.ids).isdisjoint(pb.ids)         # two archives, two sets of ids
    # the stamp is a XEP-0082 UTC time
    assert pa.results[0][1].endswith("Z") and "T" in pa.results[0][1]


def test_forged_stanza_id_is_stripped(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    a.message("bob@localhost", "forged", type="chat",
              extra=f"<stanza-id xmlns='{SID}' id='forged-1' by='bob@localhost'/>"
                    f"<stanza-id xmlns='{SID}' id='other-1' by='example.org'/>")
    got = b.expect(lambda e: is_message(e, "alice@localhost", "forged"))
    ids = stanza_ids(got, "bob@localhost")
    assert len(ids) == 1 and ids[0] != "forged-1"
    assert stanza_ids(got, "example.org") == ["other-1"]   # not ours: left alone
    assert query(b).ids == ids
    assert query(b, {"ids": "forged-1"}, expect_error=True) == "item-not-found"


def test_offline_and_self_and_remote_messages(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    a.message("bob@localhost", "while you were out", type="chat")
    a.message("alice@localhost", "note to self")
    a.expect(lambda e: is_message(e, "alice@localhost", "note to self"))
    a.message("someone@remote.example", "far away", type="chat")
    # the remote message comes back as an error (no s2s): errors are not archived
    a.expect(lambda e: tag(e) == "message" and e.get("type") == "error", timeout=15)
    pa = query(a)
    assert pa.bodies == ["while you were out", "note to self", "far away"]
    assert query(a, {"with": "alice@localhost"}).bodies == ["note to self"]   # archived once
    assert query(a, {"with": "someone@remote.example"}).count == 1
    # the offline message is delivered with the stanza-id of bob's archive
    b = c2s.online("bob@localhost/desk")
    got = b.expect(lambda e: is_message(e, "alice@localhost", "while you were out"))
    ids = stanza_ids(got, "bob@localhost")
    assert len(ids) == 1
    pb = query(b)
    assert pb.ids == ids


def test_what_is_not_archived(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    a.message("bob@localhost", "secret", type="chat", extra=f"<no-store xmlns='{HINTS}'/>")
    a.message("bob@localhost", "temp", type="chat", extra=f"<no-permanent-store xmlns='{HINTS}'/>")
    a.message("bob@localhost", "news", type="headline")
    a.send("<message to='bob@localhost' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
    a.message("bob@localhost", "kept", type="normal")
    for body in ("secret", "temp", "kept"):
        got = b.expect(lambda e, body=body: is_message(e, "alice@localhost", body))
        assert bool(stanza_ids(got, "bob@localhost")) == (body == "kept")
    assert query(a).bodies == ["kept"]
    assert query(b).bodies == ["kept"]
    # the chat state arrived too, without a stanza-id
    cs = b.expect(lambda e: tag(e) == "message" and e.find(C + "body") is None)
    assert not stanza_ids(cs, "bob@localhost")
    # a <store/> hint archives a message without a body
    a.send(f"<message to='bob@localhost' type='chat'><store xmlns='{HINTS}'/>"
           "<x xmlns='urn:example:thing'/></message>")
    got = b.expect(lambda e: tag(e) == "message" and e.find("{urn:example:thing}x") is not None)
    assert stanza_ids(got, "bob@localhost")
    assert query(b).count == 2


def test_live_messages_in_a_loop(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    n = 300
    for i in range(n):
        a.message("bob@localhost", f"n{i}", type="chat")
    b.expect(lambda e: is_message(e, "alice@localhost", f"n{n - 1}"), timeout=30)
    b.drain()
    seen = []
    after = None
    while True:
        p = query(b, max=100, after=after)
        seen += p.bodies
        assert p.count == n
        if p.complete:
            break
        after = p.last
    assert seen == [f"n{i}" for i in range(n)]
    assert query(a, max=0).count == n


# ---- queries over a large archive ----

N = 3000
BASE = "2020-01-01 00:00:00+00"


def bulk(srv, owner="alice", n=N):
    """n messages in owner's archive, one a second from 2020-01-01T00:00:01Z:
    even ones with bob, odd ones with carol (from resource r)."""
    sql(srv, f"""
      INSERT INTO mam_messages (domain, username, stanza_id, with_jid, with_resource, direction, stamp, stanza)
      SELECT 'localhost', '{owner}', 'bulk-' || g,
             CASE WHEN g % 2 = 0 THEN 'bob@localhost' ELSE 'carol@localhost' END,
             CASE WHEN g % 4 = 1 THEN 'r' ELSE 'x' END, 'in',
             timestamptz '{BASE}' + g * interval '1 second',
             '<message xmlns="jabber:client" type="chat" to="{owner}@localhost" from="'
               || CASE WHEN g % 2 = 0 THEN 'bob' ELSE 'carol' END || '@localhost/r"><body>m' || g || '</body></message>'
      FROM generate_series(1, {n}) AS g""")


def test_paging_forward_and_backward(env):
    srv, c2s = env
    bulk(srv)
    a = c2s.online("alice@localhost/phone")
    # forward, default order: oldest first
    seen, after, pages = [], None, 0
    while True:
        p = query(a, max=250, after=after)
        assert p.count == N
        if p.results:
            assert p.index == len(seen)
        seen += p.ids
        pages += 1
        if p.complete:
            break
        assert len(p.results) == 250
        after = p.last
    assert seen == [f"bulk-{i}" for i in range(1, N + 1)]
    assert pages == N // 250
    # the last page: <before/> with nothing in it
    p = query(a, max=10, before="")
    assert p.ids == [f"bulk-{i}" for i in range(N - 9, N + 1)]
    assert p.index == N - 10 and p.count == N and p.complete is False
    # backward paging from there to the start
    back, before = list(p.ids), p.first
    while True:
        p = query(a, max=200, before=before)
        back = p.ids + back
        if p.complete:
            assert p.index == 0
            break
        assert len(p.results) == 200 and p.index == N - len(back)
        before = p.first
    assert back == seen
    # the stamps are the archive's
    p = query(a, max=1)
    assert p.results[0][1] == "2020-01-01T00:00:01.000000Z"
    assert p.bodies == ["m1"] and p.complete is False
    # max=0: just the count
    p = query(a, max=0)
    assert p.results == [] and p.count == N and p.first is None
    # a page past the end is empty and complete
    p = query(a, max=5, after=f"bulk-{N}")
    assert p.results == [] and p.complete is True and p.count == N
    # ids unknown to the archive
    assert query(a, max=5, after="nope", expect_error=True) == "item-not-found"
    assert query(a, max=5, before="nope", expect_error=True) == "item-not-found"
    # pages are limited by the server
    p = query(a, max=100000)
    assert len(p.results) == 250 and p.complete is False
    p = query(a)
    assert len(p.results) == 50


def test_filters(env):
    srv, c2s = env
    bulk(srv)
    a = c2s.online("alice@localhost/phone")
    # with: bare JID matches every resource
    p = query(a, {"with": "bob@localhost"}, max=100)
    assert p.count == N // 2 and p.ids[:3] == ["bulk-2", "bulk-4", "bulk-6"]
    p2 = query(a, {"with": "bob@localhost"}, max=100, after=p.last)
    assert p2.ids[0] == "bulk-202" and p2.index == 100
    # with: a full JID matches only that resource
    p = query(a, {"with": "carol@localhost/r"}, max=5)
    assert p.count == N // 4 and p.ids == ["bulk-1", "bulk-5", "bulk-9", "bulk-13", "bulk-17"]
    # time: start and end are inclusive
    p = query(a, {"start": "2020-01-01T00:10:00Z", "end": "2020-01-01T00:19:59Z"}, max=10)
    assert p.count == 600 and p.ids[0] == "bulk-600" and p.index == 0
    p = query(a, {"start": "2020-01-01T00:10:00Z", "end": "2020-01-01T00:19:59Z"}, max=10, before="")
    assert p.ids[-1] == "bulk-1199" and p.index == 590
    p = query(a, {"start": "2020-01-01T01:10:00+01:00", "end": "2020-01-01T00:10:00.5Z", "with": "bob@localhost"})
    assert p.ids == ["bulk-600"] and p.complete is True
    p = query(a, {"start": "2021-01-01T00:00:00Z"})
    assert p.results == [] and p.count == 0 and p.complete is True
    # extended: after-id / before-id / ids / flip-page
    p = query(a, {"after-id": "bulk-10", "before-id": "bulk-15"})
    assert p.ids == ["bulk-11", "bulk-12", "bulk-13", "bulk-14"] and p.count == 4
    p = query(a, {"ids": ["bulk-7", "bulk-3"]})
    assert p.ids == ["bulk-3", "bulk-7"]
    assert query(a, {"ids": ["bulk-7", "bulk-0"]}, expect_error=True) == "item-not-found"
    assert query(a, {"after-id": "missing"}, expect_error=True) == "item-not-found"
    p = query(a, max=3, extra=f"<flip-page xmlns='{MAM}'/>")
    assert p.ids == ["bulk-3", "bulk-2", "bulk-1"] and p.first == "bulk-1"
    # bad input
    assert query(a, {"start": "yesterday"}, expect_error=True) == "bad-request"
    assert query(a, {"with": "@@"}, expect_error=True) in ("jid-malformed", "bad-request")
    assert query(a, {"colour": "red"}, expect_error=True) == "bad-request"


def test_metadata_form_and_access(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    md = a.iq(f"<metadata xmlns='{MAM}'/>")
    assert md.get("type") == "result" and len(md.find("{%s}metadata" % MAM)) == 0
    bulk(srv, n=20)
    md = a.iq(f"<metadata xmlns='{MAM}'/>").find("{%s}metadata" % MAM)
    assert md.find("{%s}start" % MAM).get("id") == "bulk-1"
    assert md.find("{%s}end" % MAM).get("id") == "bulk-20"
    assert md.find("{%s}end" % MAM).get("timestamp") == "2020-01-01T00:00:20.000000Z"
    f = a.iq(f"<query xmlns='{MAM}'/>")
    vars_ = [x.get("var") for x in f.iter("{jabber:x:data}field")]
    assert {"FORM_TYPE", "with", "start", "end"} <= set(vars_)
    # another user cannot read alice's archive
    b = c2s.online("bob@localhost/desk")
    r = b.iq(f"<query xmlns='{MAM}'/>", type="set", to="alice@localhost")
    assert r.get("type") == "error" and error_condition(r) == "forbidden"
    r = b.iq(f"<prefs xmlns='{MAM}'/>", to="alice@localhost")
    assert error_condition(r) == "forbidden"


# ---- preferences ----

def prefs(sess, default=None, always=(), never=()):
    if default is None:
        r = sess.iq(f"<prefs xmlns='{MAM}'/>")
    else:
        body = "<always>" + "".join(f"<jid>{j}</jid>" for j in always) + "</always>"
        body += "<never>" + "".join(f"<jid>{j}</jid>" for j in never) + "</never>"
        r = sess.iq(f"<prefs xmlns='{MAM}' default='{default}'>{body}</prefs>", type="set")
    assert r.get("type") == "result", ET.tostring(r)
    p = r.find("{%s}prefs" % MAM)
    return (p.get("default"), [j.text for j in p.findall("{%s}always/{%s}jid" % (MAM, MAM))],
            [j.text for j in p.findall("{%s}never/{%s}jid" % (MAM, MAM))])


def test_prefs(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    c = c2s.online("carol@localhost/x")
    assert prefs(b) == ("always", [], [])
    # never: nothing archived, and no stanza-id on delivery
    assert prefs(b, "never") == ("never", [], [])
    a.message("bob@localhost", "one", type="chat")
    got = b.expect(lambda e: is_message(e, "alice@localhost", "one"))
    assert not stanza_ids(got, "bob@localhost")
    b.message("alice@localhost", "two", type="chat")
    a.expect(lambda e: is_message(e, "bob@localhost", "two"))
    assert query(b).count == 0
    assert query(a).bodies == ["one", "two"]       # alice archives as usual
    # never + always list
    assert prefs(b, "never", always=["Alice@localhost"]) == ("never", ["alice@localhost"], [])
    a.message("bob@localhost", "three", type="chat")
    got = b.expect(lambda e: is_message(e, "alice@localhost", "three"))
    assert stanza_ids(got, "bob@localhost")
    c.message("bob@localhost", "four", type="chat")
    b.expect(lambda e: is_message(e, "carol@localhost", "four"))
    assert query(b).bodies == ["three"]
    # roster: only contacts in the roster
    b.roster_set("carol@localhost", name="Carol")
    b.push("carol@localhost")
    assert prefs(b, "roster")[0] == "roster"
    a.message("bob@localhost", "five", type="chat")
    c.message("bob@localhost", "six", type="chat")
    got5 = b.expect(lambda e: is_message(e, "alice@localhost", "five"))
    got6 = b.expect(lambda e: is_message(e, "carol@localhost", "six"))
    assert not stanza_ids(got5, "bob@localhost") and stanza_ids(got6, "bob@localhost")
    assert query(b).bodies == ["three", "six"]
    # always + never list: never wins for that JID
    assert prefs(b, "always", never=["carol@localhost"]) == ("always", [], ["carol@localhost"])
    c.message("bob@localhost", "seven", type="chat")
    a.message("bob@localhost", "eight", type="chat")
    b.expect(lambda e: is_message(e, "alice@localhost", "eight"))
    assert query(b).bodies == ["three", "six", "eight"]
    # preferences are kept, and also apply while bob is offline
    b.end()
    c.message("bob@localhost", "nine", type="chat")
    a.message("bob@localhost", "ten", type="chat")
    time.sleep(0.5)
    b2 = c2s.online("bob@localhost/desk2")
    assert prefs(b2) == ("always", [], ["carol@localhost"])
    b2.expect(lambda e: is_message(e, "alice@localhost", "ten"))
    assert query(b2).bodies == ["three", "six", "eight", "ten"]
    # bad preferences
    r = b2.iq(f"<prefs xmlns='{MAM}' default='sometimes'/>", type="set")
    assert error_condition(r) == "bad-request"


def test_server_default_mode_roster(server):
    srv = server(c2s=0, config={"sm": {"modules/mam/default-mode": "roster"}})
    for u in ("alice", "bob"):
        srv.add_user(u, "pw")
    c2s = FakeC2s(srv)
    try:
        a = c2s.online("alice@localhost/phone")
        b = c2s.online("bob@localhost/desk")
        assert prefs(b) == ("roster", [], [])
        a.message("bob@localhost", "stranger", type="chat")
        got = b.expect(lambda e: is_message(e, "alice@localhost", "stranger"))
        assert not stanza_ids(got, "bob@localhost")
        assert query(b).count == 0 and query(a).count == 0
    finally:
        c2s.close()


# ---- retention ----

def test_retention(server):
    srv = server(c2s=0, config={"sm": {"modules/mam/max-messages-per-user": "5", "modules/mam/max-days": "30",
                                       "modules/mam/prune-interval": "1"}})
    for u in ("alice", "bob"):
        srv.add_user(u, "pw")
    bulk(srv, owner="bob", n=3)       # from 2020: older than 30 days
    c2s = FakeC2s(srv)
    try:
        a = c2s.online("alice@localhost/phone")
        b = c2s.online("bob@localhost/desk")
        for i in range(8):
            a.message("bob@localhost", f"r{i}", type="chat")
        b.expect(lambda e: is_message(e, "alice@localhost", "r7"))
        wait_for(lambda: query(a).count == 5, what="alice's archive trimmed to 5")
        assert query(a).bodies == [f"r{i}" for i in range(3, 8)]
        wait_for(lambda: query(b).count == 5, what="bob's archive trimmed")
        assert query(b).bodies == [f"r{i}" for i in range(3, 8)]   # the 2020 ones went first
    finally:
        c2s.close()


# ---- disco and the switch ----

def features(sess, to):
    r = sess.iq(f"<query xmlns='{DISCO}'/>", to=to)
    assert r.get("type") == "result"
    return {f.get("var") for f in r.iter("{%s}feature" % DISCO)}


def test_disco(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    f = features(a, "alice@localhost")
    assert MAM in f and MAM + "#extended" in f


def test_module_off(server):
    srv = server(c2s=0, config={"sm": {"modules/mam/enabled": "false"}})
    for u in ("alice", "bob"):
        srv.add_user(u, "pw")
    c2s = FakeC2s(srv)
    try:
        a = c2s.online("alice@localhost/phone")
        b = c2s.online("bob@localhost/desk")
        assert MAM not in features(a, "alice@localhost")
        r = a.iq(f"<query xmlns='{MAM}'/>", type="set")
        assert error_condition(r) == "service-unavailable"
        a.message("bob@localhost", "plain", type="chat")
        got = b.expect(lambda e: is_message(e, "alice@localhost", "plain"))
        assert not stanza_ids(got, "bob@localhost")
        assert sql(srv, "SELECT count(*) FROM mam_messages") == "0"
    finally:
        c2s.close()
