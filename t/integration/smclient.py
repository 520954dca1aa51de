"""A fake c2s for driving the sm exactly: a trusted component (named
'c2s-...') that speaks docs/sessions.md in raw XML through the router.

    c2s = FakeC2s(srv)                       # joins the router as c2s-test
    alice = c2s.session("alice@localhost/phone")   # session start -> started
    alice.send("<presence/>")               # jabber:client is implied
    push = alice.expect(is_roster_push)      # the next stanza that matches
    alice.nothing(lambda el: ...)            # nothing that matches arrives
    alice.end()
"""
import itertools
import re
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

from harness import NS_ROUTER, connected

NS_CLIENT = "jabber:client"
NS_SESSION = "urn:switchboard:session"
NS_ROSTER = "jabber:iq:roster"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
C = "{%s}" % NS_CLIENT

_ids = itertools.count(1)


def tag(el):
    return el.tag.split("}")[1] if "}" in el.tag else el.tag


def new_id(prefix="t"):
    return f"{prefix}{next(_ids)}"


def with_client_ns(xml):
    """Put xmlns='jabber:client' on the root of a stanza written without it."""
    first = xml.split(">", 1)[0]
    if "xmlns=" in first:
        return xml
    return re.sub(r"^<([\w:-]+)", lambda m: f"<{m.group(1)} xmlns='{NS_CLIENT}'", xml, count=1)


class Session:
    def __init__(self, c2s, jid, c2s_id):
        self.c2s = c2s
        self.jid = jid
        self.bare = jid.split("/")[0]
        self.c2s_id = c2s_id
        self.sm_id = None
        self.inbox = []
        self.controls = []
        self.ended = None

    # ---- sending ----
    def send(self, xml, sm_id=None):
        sid = sm_id or self.sm_id
        self.c2s.comp.send(
            f"<route xmlns='{NS_ROUTER}' to='{self.c2s.domain}' from='{self.c2s.name}' "
            f"c2s-id='{self.c2s_id}' sm-id='{sid}'>{with_client_ns(xml)}</route>")

    def hand_back(self, xml):
        """Return an undelivered stanza to the sm (docs/sessions.md §3)."""
        self.c2s.comp.send(
            f"<route xmlns='{NS_ROUTER}' to='{self.c2s.domain}' from='{self.c2s.name}' "
            f"c2s-id='{self.c2s_id}' sm-id='{self.sm_id}' type='error'>{with_client_ns(xml)}</route>")

    def end(self):
        self.c2s.comp.send(
            f"<route xmlns='{NS_ROUTER}' to='{self.c2s.domain}' from='{self.c2s.name}' "
            f"c2s-id='{self.c2s_id}' sm-id='{self.sm_id}'><session xmlns='{NS_SESSION}' action='end'/></route>")
        self.ended = "client"

    # ---- receiving ----
    def expect(self, pred=None, timeout=10, what="a stanza"):
        """The first stanza (in order of arrival) matching pred; fails after timeout."""
        deadline = time.time() + timeout
        while True:
            for i, el in enumerate(self.inbox):
                if pred is None or pred(el):
                    return self.inbox.pop(i)
            left = deadline - time.time()
            if left <= 0:
                got = "\n  ".join(ET.tostring(e, encoding="unicode") for e in self.inbox)
                raise AssertionError(f"{self.jid}: expected {what}; got:\n  {got}")
            self.c2s.pump(min(left, 0.5))

    def nothing(self, pred=None, wait=0.6):
        """Assert that no stanza matching pred arrives within wait seconds."""
        deadline = time.time() + wait
        while time.time() < deadline:
            self.c2s.pump(max(0.01, deadline - time.time()))
        bad = [e for e in self.inbox if pred is None or pred(e)]
        assert not bad, f"{self.jid}: unexpected " + "; ".join(ET.tostring(e, encoding="unicode") for e in bad)

    def drain(self, wait=0.3):
        deadline = time.time() + wait
        while time.time() < deadline:
            self.c2s.pump(max(0.01, deadline - time.time()))
        out, self.inbox = self.inbox, []
        return out

    def expect_control(self, action, timeout=10):
        deadline = time.time() + timeout
        while True:
            for i, el in enumerate(self.controls):
                if el.get("action") == action:
                    return self.controls.pop(i)
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"{self.jid}: no session '{action}' from the sm; got "
                                     f"{[ET.tostring(e) for e in self.controls]}")
            self.c2s.pump(min(left, 0.5))

    # ---- conveniences ----
    def iq(self, xml_payload, type="get", to=None, timeout=10):
        """Send an iq and return the answer (result or error) with the same id."""
        iid = new_id("iq")
        to_attr = f" to={quoteattr(to)}" if to else ""
        self.send(f"<iq type='{type}' id='{iid}'{to_attr}>{xml_payload}</iq>")
        return self.expect(lambda el: tag(el) == "iq" and el.get("id") == iid
                           and el.get("type") in ("result", "error"), timeout, f"the answer to iq {iid}")

    def roster(self, ver=None):
        v = f" ver={quoteattr(ver)}" if ver is not None else ""
        return self.iq(f"<query xmlns='{NS_ROSTER}'{v}/>")

    def roster_set(self, jid, name=None, groups=(), remove=False):
        attrs = f" jid={quoteattr(jid)}"
        if name is not None:
            attrs += f" name={quoteattr(name)}"
        if remove:
            attrs += " subscription='remove'"
        g = "".join(f"<group>{x}</group>" for x in groups)
        return self.iq(f"<query xmlns='{NS_ROSTER}'><item{attrs}>{g}</item></query>", type="set")

    def presence(self, to=None, type=None, priority=None, show=None, status=None):
        attrs = ""
        if to:
            attrs += f" to={quoteattr(to)}"
        if type:
            attrs += f" type='{type}'"
        kids = ""
        if show:
            kids += f"<show>{show}</show>"
        if status:
            kids += f"<status>{status}</status>"
        if priority is not None:
            kids += f"<priority>{priority}</priority>"
        self.send(f"<presence{attrs}>{kids}</presence>")

    def message(self, to, body="hi", type=None, id=None, extra=""):
        t = f" type='{type}'" if type else ""
        i = f" id='{id}'" if id else ""
        self.send(f"<message to={quoteattr(to)}{t}{i}><body>{body}</body>{extra}</message>")

    def push(self, contact, timeout=10):
        """The next roster push about contact; returns its <item/>, and answers it."""
        el = self.expect(lambda e: is_push(e, contact), timeout, f"a roster push for {contact}")
        self.send(f"<iq type='result' id={quoteattr(el.get('id'))}/>")
        return el.find("{%s}query/{%s}item" % (NS_ROSTER, NS_ROSTER))


def is_push(el, contact=None):
    if tag(el) != "iq" or el.get("type") != "set":
        return False
    item = el.find("{%s}query/{%s}item" % (NS_ROSTER, NS_ROSTER))
    return item is not None and (contact is None or item.get("jid") == contact)


def is_presence(el, frm=None, type=None):
    if tag(el) != "presence":
        return False
    if frm is not None and el.get("from") != frm and (el.get("from") or "").split("/")[0] != frm:
        return False
    return (el.get("type") or None) == type


def is_message(el, frm=None, body=None):
    if tag(el) != "message":
        return False
    if frm is not None and (el.get("from") or "").split("/")[0] != frm.split("/")[0]:
        return False
    return body is None or el.findtext(C + "body") == body


def error_condition(el):
    err = el.find(C + "error")
    if err is None:
        return None
    for child in err:
        if child.tag.startswith("{%s}" % NS_STANZAS) and not child.tag.endswith("}text"):
            return child.tag.split("}")[1]
    return None


def item_state(item):
    """(subscription, ask, approved) of a roster <item/>."""
    return (item.get("subscription"), item.get("ask"), item.get("approved"))


class FakeC2s:
    def __init__(self, srv, name="c2s-test"):
        self.srv = srv
        self.name = name
        self.domain = srv.domain
        self.comp = connected(srv.router_port, name, srv.internal_secret)
        self.sessions = {}
        self.others = []          # envelopes for unknown c2s-ids
        self.ids = itertools.count(100)

    def pump(self, timeout):
        el = self.comp.next(timeout)
        while el is not None:
            self._dispatch(el)
            el = self.comp.next(0.01)

    def _dispatch(self, el):
        if el.tag != "{%s}route" % NS_ROUTER:
            self.others.append(el)
            return
        sess = self.sessions.get(el.get("c2s-id"))
        if sess is None:
            self.others.append(el)
            return
        for child in el:
            if child.tag.startswith("{%s}" % NS_SESSION):
                if child.get("action") == "started":
                    sess.sm_id = el.get("sm-id")
                if child.get("action") == "end":
                    sess.ended = child.get("reason")
                sess.controls.append(child)
            else:
                sess.inbox.append(child)

    def session(self, jid, expect="started", timeout=15):
        """Start a session for jid; by default wait for 'started'."""
        cid = str(next(self.ids))
        s = Session(self, jid, cid)
        self.sessions[cid] = s
        self.comp.send(
            f"<route xmlns='{NS_ROUTER}' to='{self.domain}' from='{self.name}' c2s-id='{cid}'>"
            f"<session xmlns='{NS_SESSION}' action='start' jid={quoteattr(jid)}/></route>")
        s.start_answer = s.expect_control(expect, timeout) if expect else None
        return s

    def online(self, jid, priority=None, roster=True):
        """A session that fetched the roster and sent initial presence."""
        s = self.session(jid)
        if roster:
            r = s.roster()
            assert r.get("type") == "result", ET.tostring(r)
        s.presence(priority=priority)
        # its own presence comes back to it (RFC 6121 §4.2.2)
        s.expect(lambda e: is_presence(e, s.jid) and e.get("from") == s.jid, what="its own presence")
        return s

    def close(self):
        self.comp.close()
