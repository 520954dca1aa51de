"""Personal eventing (XEP-0163) in the sm: publish / retrieve / retract /
delete, publish-options preconditions (XEP-0060), access models,
+notify filtering through entity capabilities (XEP-0115), the last item
on login, persistence across an sm restart, avatars (XEP-0084) and OMEMO
device lists. Driven through the sm by a fake c2s, plus one end-to-end
test with slixmpp through the real c2s."""
import hashlib
import itertools
import xml.etree.ElementTree as ET

import pytest

from smclient import C, FakeC2s, error_condition, is_presence, new_id, tag

PUBSUB = "http://jabber.org/protocol/pubsub"
OWNER = PUBSUB + "#owner"
EVENT = PUBSUB + "#event"
ERRORS = PUBSUB + "#errors"
CAPS = "http://jabber.org/protocol/caps"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NICK = "http://jabber.org/protocol/nick"
AV_DATA = "urn:xmpp:avatar:data"
AV_META = "urn:xmpp:avatar:metadata"
AXOLOTL = "eu.siacs.conversations.axolotl.devicelist"
OMEMO2 = "urn:xmpp:omemo:2:devices"

_vers = itertools.count(1)


def befriend(a, b):
    """Mutual subscription (both) between two available sessions."""
    for x, y in ((a, b), (b, a)):
        x.presence(to=y.bare, type="subscribe")
        y.expect(lambda e: is_presence(e, x.bare, "subscribe"))
        y.presence(to=x.bare, type="subscribed")
        x.expect(lambda e: is_presence(e, y.bare) and e.get("from") == y.jid, what="presence after approval")
    a.drain()
    b.drain()


def subscribe_one_way(subscriber, owner):
    """subscriber gets a 'to' subscription to owner (owner has 'from')."""
    subscriber.presence(to=owner.bare, type="subscribe")
    owner.expect(lambda e: is_presence(e, subscriber.bare, "subscribe"))
    owner.presence(to=subscriber.bare, type="subscribed")
    subscriber.expect(lambda e: is_presence(e, owner.bare) and e.get("from") == owner.jid)
    subscriber.drain()
    owner.drain()


def is_caps_query(el, jid):
    return (tag(el) == "iq" and el.get("type") == "get" and el.get("to") == jid
            and el.find("{%s}query" % DISCO_INFO) is not None)


def caps_online(c2s, jid, notify=(), answer=True):
    """A session that advertises entity capabilities with NODE+notify for
    each node in notify, and answers the sm's disco#info query about them."""
    s = c2s.session(jid)
    assert s.roster().get("type") == "result"
    ver = f"v{next(_vers)}-" + hashlib.sha1(repr((jid, sorted(notify))).encode()).hexdigest()[:10]
    s.send(f"<presence><c xmlns='{CAPS}' hash='sha-1' node='https://example.org/client' ver='{ver}'/></presence>")
    s.expect(lambda e: is_presence(e) and e.get("from") == s.jid, what="its own presence")
    q = s.expect(lambda e: is_caps_query(e, s.jid), what="the sm's caps query")
    assert q.get("from") == s.bare
    assert q.find("{%s}query" % DISCO_INFO).get("node") == f"https://example.org/client#{ver}"
    if answer:
        feats = "".join(f"<feature var='{v}'/>" for v in
                        [DISCO_INFO, "urn:xmpp:ping"] + [n + "+notify" for n in notify])
        s.send(f"<iq type='result' id='{q.get('id')}' to='{s.bare}'>"
               f"<query xmlns='{DISCO_INFO}' node='https://example.org/client#{ver}'>"
               f"<identity category='client' type='pc'/>{feats}</query></iq>")
    s.ver = ver
    return s


def publish(s, node, payload, item_id=None, options=None, to=None):
    iid = f" id='{item_id}'" if item_id else ""
    opts = ""
    if options:
        fields = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in options.items())
        opts = (f"<publish-options><x xmlns='jabber:x:data' type='submit'>"
                f"<field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#publish-options</value></field>"
                f"{fields}</x></publish-options>")
    return s.iq(f"<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item{iid}>{payload}</item></publish>{opts}"
                f"</pubsub>", type="set", to=to)


def items(s, owner, node, max_items=None, ids=()):
    m = f" max_items='{max_items}'" if max_items else ""
    its = "".join(f"<item id='{i}'/>" for i in ids)
    return s.iq(f"<pubsub xmlns='{PUBSUB}'><items node='{node}'{m}>{its}</items></pubsub>", to=owner)


def item_ids(answer):
    assert answer.get("type") == "result", ET.tostring(answer)
    return [i.get("id") for i in answer.findall("{%s}pubsub/{%s}items/{%s}item" % (PUBSUB, PUBSUB, PUBSUB))]


def pubsub_error(el):
    err = el.find(C + "error")
    if err is None:
        return None
    for child in err:
        if child.tag.startswith("{%s}" % ERRORS):
            return child.tag.split("}")[1]
    return None


def is_event(el, owner, node):
    if tag(el) != "message" or el.get("type") != "headline" or el.get("from") != owner:
        return False
    return el.find("{%s}event/*[@node='%s']" % (EVENT, node)) is not None


def event_items(el):
    return el.find("{%s}event/{%s}items" % (EVENT, EVENT))


def nick(text):
    return f"<nick xmlns='{NICK}'>{text}</nick>"


@pytest.fixture
def env(server):
    srv = server(c2s=0)
    for u in ("alice", "bob", "carol", "dave"):
        srv.add_user(u, "pw")
    c2s = FakeC2s(srv)
    yield srv, c2s
    c2s.close()


def test_disco_shows_pep_and_lists_nodes(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    befriend(a, b)
    info = a.iq(f"<query xmlns='{DISCO_INFO}'/>", to="alice@localhost")
    ids = [(i.get("category"), i.get("type")) for i in info.findall("{%s}query/{%s}identity" % (DISCO_INFO, DISCO_INFO))]
    assert ("pubsub", "pep") in ids
    feats = {f.get("var") for f in info.findall("{%s}query/{%s}feature" % (DISCO_INFO, DISCO_INFO))}
    for f in ("publish", "publish-options", "auto-create", "filtered-notifications", "retrieve-items",
              "retract-items", "delete-nodes", "access-presence", "access-open", "access-whitelist",
              "last-published", "persistent-items"):
        assert f"{PUBSUB}#{f}" in feats, f
    assert publish(a, NICK, nick("Alice")).get("type") == "result"
    assert publish(a, "private-node", "<x xmlns='urn:example'/>",
                   options={"pubsub#access_model": "whitelist"}).get("type") == "result"
    own = a.iq(f"<query xmlns='{DISCO_ITEMS}'/>", to="alice@localhost")
    nodes = {i.get("node") for i in own.findall("{%s}query/{%s}item" % (DISCO_ITEMS, DISCO_ITEMS))}
    assert nodes == {NICK, "private-node"}
    theirs = b.iq(f"<query xmlns='{DISCO_ITEMS}'/>", to="alice@localhost")
    items_b = theirs.findall("{%s}query/{%s}item" % (DISCO_ITEMS, DISCO_ITEMS))
    assert [(i.get("jid"), i.get("node")) for i in items_b] == [("alice@localhost", NICK)]


def test_module_off(server):
    srv = server(c2s=0, config={"sm": {"modules/pep/enabled": "false"}})
    srv.add_user("alice", "pw")
    c2s = FakeC2s(srv)
    try:
        a = c2s.online("alice@localhost/phone")
        info = a.iq(f"<query xmlns='{DISCO_INFO}'/>", to="alice@localhost")
        ids = [(i.get("category"), i.get("type")) for i in info.findall("{%s}query/{%s}identity" % (DISCO_INFO, DISCO_INFO))]
        assert ("pubsub", "pep") not in ids
        feats = {f.get("var") for f in info.findall("{%s}query/{%s}feature" % (DISCO_INFO, DISCO_INFO))}
        assert not any(f.startswith(PUBSUB) for f in feats)
        r = publish(a, NICK, nick("Alice"))
        assert r.get("type") == "error" and error_condition(r) == "service-unavailable"
    finally:
        c2s.close()


def test_publish_retrieve_retract_delete(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    # auto-create with a node that keeps 10 items
    r = publish(a, "urn:example:notes", "<note xmlns='urn:example'>one</note>", item_id="n1",
                options={"pubsub#max_items": "10"})
    assert r.get("type") == "result"
    pub = r.find("{%s}pubsub/{%s}publish" % (PUBSUB, PUBSUB))
    assert pub.get("node") == "urn:example:notes" and pub.find("{%s}item" % PUBSUB).get("id") == "n1"
    publish(a, "urn:example:notes", "<note xmlns='urn:example'>two</note>", item_id="n2", to="alice@localhost")
    # an item without an id gets one from the server
    r = publish(a, "urn:example:notes", "<note xmlns='urn:example'>three</note>")
    gen = r.find("{%s}pubsub/{%s}publish/{%s}item" % (PUBSUB, PUBSUB, PUBSUB)).get("id")
    assert gen
    got = items(a, None, "urn:example:notes")
    assert item_ids(got) == [gen, "n2", "n1"]     # newest first
    texts = [i.findtext("{urn:example}note") for i in got.iter("{%s}item" % PUBSUB)]
    assert texts == ["three", "two", "one"]
    assert item_ids(items(a, "alice@localhost", "urn:example:notes", max_items=2)) == [gen, "n2"]
    assert item_ids(items(a, None, "urn:example:notes", ids=["n1"])) == ["n1"]
    # republishing an id replaces it
    publish(a, "urn:example:notes", "<note xmlns='urn:example'>one again</note>", item_id="n1")
    got = items(a, None, "urn:example:notes", ids=["n1"])
    assert got.find(".//{urn:example}note").text == "one again"
    # retract
    r = a.iq(f"<pubsub xmlns='{PUBSUB}'><retract node='urn:example:notes'><item id='n2'/></retract></pubsub>",
             type="set")
    assert r.get("type") == "result"
    assert "n2" not in item_ids(items(a, None, "urn:example:notes"))
    r = a.iq(f"<pubsub xmlns='{PUBSUB}'><retract node='urn:example:notes'><item id='n2'/></retract></pubsub>",
             type="set")
    assert error_condition(r) == "item-not-found"
    # a node keeps its max_items newest items (the default is 1)
    publish(a, NICK, nick("A"))
    publish(a, NICK, nick("Alice"))
    got = items(a, None, NICK)
    assert len(item_ids(got)) == 1 and got.find(".//{%s}nick" % NICK).text == "Alice"
    # delete the node
    r = a.iq(f"<pubsub xmlns='{OWNER}'><delete node='urn:example:notes'/></pubsub>", type="set")
    assert r.get("type") == "result"
    r = items(a, None, "urn:example:notes")
    assert r.get("type") == "error" and error_condition(r) == "item-not-found"
    r = a.iq(f"<pubsub xmlns='{OWNER}'><delete node='urn:example:notes'/></pubsub>", type="set")
    assert error_condition(r) == "item-not-found"
    # bad requests
    r = a.iq(f"<pubsub xmlns='{PUBSUB}'><publish node='{NICK}'><item/></publish></pubsub>", type="set")
    assert error_condition(r) == "bad-request" and pubsub_error(r) == "payload-required"


def test_payload_and_node_limits(server):
    srv = server(c2s=0, config={"sm": {"modules/pep/max-payload-bytes": "200",
                                       "modules/pep/max-nodes-per-user": "2"}})
    srv.add_user("alice", "pw")
    c2s = FakeC2s(srv)
    try:
        a = c2s.online("alice@localhost/phone")
        r = publish(a, "n1", f"<big xmlns='urn:example'>{'x' * 300}</big>")
        assert error_condition(r) == "not-acceptable" and pubsub_error(r) == "payload-too-big"
        assert publish(a, "n1", "<small xmlns='urn:example'/>").get("type") == "result"
        assert publish(a, "n2", "<small xmlns='urn:example'/>").get("type") == "result"
        r = publish(a, "n3", "<small xmlns='urn:example'/>")
        assert r.get("type") == "error" and error_condition(r) == "not-allowed"
    finally:
        c2s.close()


def test_publish_options_preconditions(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    opts = {"pubsub#access_model": "open", "pubsub#persist_items": "true"}
    assert publish(a, "urn:example:pre", "<p xmlns='urn:example'>1</p>", options=opts).get("type") == "result"
    # met: same options again
    assert publish(a, "urn:example:pre", "<p xmlns='urn:example'>2</p>", options=opts).get("type") == "result"
    # not met: the node is open, not presence
    r = publish(a, "urn:example:pre", "<p xmlns='urn:example'>3</p>",
                options={"pubsub#access_model": "presence"})
    assert r.get("type") == "error"
    assert error_condition(r) == "conflict" and pubsub_error(r) == "precondition-not-met"
    assert r.find(C + "error").get("type") == "cancel"
    r = publish(a, "urn:example:pre", "<p xmlns='urn:example'>3</p>", options={"pubsub#max_items": "5"})
    assert pubsub_error(r) == "precondition-not-met"
    # the item of the failed publish was not stored
    got = items(a, None, "urn:example:pre")
    assert [i.text for i in got.iter("{urn:example}p")] == ["2"]
    # after reconfiguring, the same precondition is met
    cfg = a.iq(f"<pubsub xmlns='{OWNER}'><configure node='urn:example:pre'/></pubsub>")
    x = cfg.find("{%s}pubsub/{%s}configure/{jabber:x:data}x" % (OWNER, OWNER))
    vals = {f.get("var"): f.findtext("{jabber:x:data}value") for f in x.findall("{jabber:x:data}field")}
    assert vals["pubsub#access_model"] == "open" and vals["pubsub#max_items"] == "1"
    r = a.iq(f"<pubsub xmlns='{OWNER}'><configure node='urn:example:pre'><x xmlns='jabber:x:data' type='submit'>"
             f"<field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#node_config</value></field>"
             f"<field var='pubsub#max_items'><value>5</value></field></x></configure></pubsub>", type="set")
    assert r.get("type") == "result"
    r = publish(a, "urn:example:pre", "<p xmlns='urn:example'>4</p>", options={"pubsub#max_items": "5"})
    assert r.get("type") == "result"
    assert len(item_ids(items(a, None, "urn:example:pre"))) == 2
    # an option this service does not support cannot be met
    r = publish(a, "urn:example:other", "<p xmlns='urn:example'/>", options={"pubsub#access_model": "roster"})
    assert pubsub_error(r) == "precondition-not-met"


def test_notifications_follow_subscription_and_notify(env):
    srv, c2s = env
    a = caps_online(c2s, "alice@localhost/phone", notify=[NICK])
    b = caps_online(c2s, "bob@localhost/desk", notify=[NICK, AV_META])
    d = caps_online(c2s, "dave@localhost/pc", notify=[AV_META])     # subscribed, no +notify for nick
    c = caps_online(c2s, "carol@localhost/x", notify=[NICK])        # +notify, no subscription
    befriend(a, b)
    befriend(a, d)
    assert publish(a, NICK, nick("Alice"), item_id="current").get("type") == "result"
    ev = b.expect(lambda e: is_event(e, "alice@localhost", NICK), what="bob's nick notification")
    assert ev.get("to") == b.jid
    it = event_items(ev).find("{%s}item" % EVENT)
    assert it.get("id") == "current" and it.findtext("{%s}nick" % NICK) == "Alice"
    # the owner's own resource asked for it too
    a.expect(lambda e: is_event(e, "alice@localhost", NICK), what="alice's own notification")
    d.nothing(lambda e: tag(e) == "message")
    c.nothing(lambda e: tag(e) == "message")
    # a contact whose client does not answer the caps query gets nothing
    b2 = caps_online(c2s, "bob@localhost/mute", notify=[NICK], answer=False)
    b.drain()
    publish(a, NICK, nick("Alice 2"), item_id="current")
    b.expect(lambda e: is_event(e, "alice@localhost", NICK), what="bob's second notification")
    b2.nothing(lambda e: is_event(e, "alice@localhost", NICK))
    # retraction and deletion are notified too
    a.iq(f"<pubsub xmlns='{PUBSUB}'><retract node='{NICK}'><item id='current'/></retract></pubsub>", type="set")
    ev = b.expect(lambda e: is_event(e, "alice@localhost", NICK), what="retract notification")
    assert event_items(ev).find("{%s}retract" % EVENT).get("id") == "current"
    a.iq(f"<pubsub xmlns='{OWNER}'><delete node='{NICK}'/></pubsub>", type="set")
    ev = b.expect(lambda e: is_event(e, "alice@localhost", NICK), what="delete notification")
    assert ev.find("{%s}event/{%s}delete" % (EVENT, EVENT)) is not None
    c.nothing(lambda e: tag(e) == "message")


def test_last_item_on_login(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    c = c2s.online("carol@localhost/x")
    befriend(a, b)
    assert publish(a, NICK, nick("Alice"), item_id="n").get("type") == "result"
    assert publish(a, AV_META, f"<metadata xmlns='{AV_META}'/>", item_id="m").get("type") == "result"
    a.end()
    b.end()
    c.end()
    # bob comes back with +notify for nick only: he gets the last nick, not the metadata
    b2 = caps_online(c2s, "bob@localhost/laptop", notify=[NICK])
    ev = b2.expect(lambda e: is_event(e, "alice@localhost", NICK), what="alice's last nick")
    assert event_items(ev).find("{%s}item" % EVENT).findtext("{%s}nick" % NICK) == "Alice"
    b2.nothing(lambda e: is_event(e, "alice@localhost", AV_META))
    # the owner gets its own last items on login
    a2 = caps_online(c2s, "alice@localhost/tablet", notify=[AV_META])
    a2.expect(lambda e: is_event(e, "alice@localhost", AV_META), what="alice's own last metadata")
    # carol has no subscription: nothing
    c2 = caps_online(c2s, "carol@localhost/y", notify=[NICK, AV_META])
    c2.nothing(lambda e: tag(e) == "message")
    # a second resource with the same (already known) caps is not asked again, and gets the item
    b3 = c2s.session("bob@localhost/third")
    b3.roster()
    b3.send(f"<presence><c xmlns='{CAPS}' hash='sha-1' node='https://example.org/client' ver='{b2.ver}'/></presence>")
    b3.expect(lambda e: is_event(e, "alice@localhost", NICK), what="last nick with known caps")
    assert not [e for e in b3.drain() if is_caps_query(e, b3.jid)]


def test_persistence_across_sm_restart(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    assert publish(a, NICK, nick("Persistent Alice"), item_id="p",
                   options={"pubsub#access_model": "open"}).get("type") == "result"
    a.end()
    srv.restart("sm")
    a2 = c2s.online("alice@localhost/again")
    got = items(a2, None, NICK)
    assert item_ids(got) == ["p"] and got.find(".//{%s}nick" % NICK).text == "Persistent Alice"
    # the configuration was kept too: open, so carol can read it
    c = c2s.online("carol@localhost/x")
    assert item_ids(items(c, "alice@localhost", NICK)) == ["p"]


def test_access_models(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = c2s.online("bob@localhost/desk")
    c = c2s.online("carol@localhost/x")
    subscribe_one_way(b, a)      # bob is subscribed to alice (alice: 'from')
    publish(a, "presence-node", "<v xmlns='urn:example'>p</v>")
    publish(a, "open-node", "<v xmlns='urn:example'>o</v>", options={"pubsub#access_model": "open"})
    publish(a, "white-node", "<v xmlns='urn:example'>w</v>", options={"pubsub#access_model": "whitelist"})
    # presence: the subscriber may, a stranger may not
    assert len(item_ids(items(b, "alice@localhost", "presence-node"))) == 1
    r = items(c, "alice@localhost", "presence-node")
    assert error_condition(r) == "not-authorized" and pubsub_error(r) == "presence-subscription-required"
    # open: anyone
    assert len(item_ids(items(c, "alice@localhost", "open-node"))) == 1
    assert len(item_ids(items(b, "alice@localhost", "open-node"))) == 1
    # whitelist: only the owner and members
    r = items(b, "alice@localhost", "white-node")
    assert error_condition(r) == "not-allowed" and pubsub_error(r) == "closed-node"
    assert len(item_ids(items(a, None, "white-node"))) == 1
    r = a.iq(f"<pubsub xmlns='{OWNER}'><affiliations node='white-node'>"
             f"<affiliation jid='bob@localhost' affiliation='member'/></affiliations></pubsub>", type="set")
    assert r.get("type") == "result"
    assert len(item_ids(items(b, "alice@localhost", "white-node"))) == 1
    r = items(c, "alice@localhost", "white-node")
    assert error_condition(r) == "not-allowed"
    affs = a.iq(f"<pubsub xmlns='{OWNER}'><affiliations node='white-node'/></pubsub>")
    got = {(x.get("jid"), x.get("affiliation")) for x in affs.iter("{%s}affiliation" % OWNER)}
    assert got == {("alice@localhost", "owner"), ("bob@localhost", "member")}
    # nobody but the owner publishes, retracts or deletes
    r = publish(b, "presence-node", "<v xmlns='urn:example'>x</v>", to="alice@localhost")
    assert error_condition(r) == "forbidden"
    r = b.iq(f"<pubsub xmlns='{OWNER}'><delete node='open-node'/></pubsub>", type="set", to="alice@localhost")
    assert error_condition(r) == "forbidden"
    # a node that does not exist
    r = items(b, "alice@localhost", "no-such-node")
    assert error_condition(r) == "item-not-found"


def test_avatar_metadata_and_data(env):
    srv, c2s = env
    a = c2s.online("alice@localhost/phone")
    b = caps_online(c2s, "bob@localhost/desk", notify=[AV_META])
    befriend(a, b)
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    import base64
    sha = hashlib.sha1(base64.b64decode(png)).hexdigest()
    r = publish(a, AV_DATA, f"<data xmlns='{AV_DATA}'>{png}</data>", item_id=sha)
    assert r.get("type") == "result"
    b.nothing(lambda e: is_event(e, "alice@localhost", AV_DATA))     # no +notify for data
    r = publish(a, AV_META, f"<metadata xmlns='{AV_META}'><info bytes='70' id='{sha}' height='1' width='1' "
                            f"type='image/png'/></metadata>", item_id=sha)
    assert r.get("type") == "result"
    ev = b.expect(lambda e: is_event(e, "alice@localhost", AV_META), what="avatar metadata notification")
    info = event_items(ev).find("{%s}item/{%s}metadata/{%s}info" % (EVENT, AV_META, AV_META))
    assert info.get("id") == sha and info.get("type") == "image/png"
    # bob fetches the data by the id the metadata named
    got = items(b, "alice@localhost", AV_DATA, ids=[sha])
    assert item_ids(got) == [sha]
    assert got.find(".//{%s}data" % AV_DATA).text == png
    # disabling the avatar: empty metadata
    publish(a, AV_META, f"<metadata xmlns='{AV_META}'/>", item_id="current")
    ev = b.expect(lambda e: is_event(e, "alice@localhost", AV_META), what="avatar disabled")
    assert event_items(ev).find("{%s}item/{%s}metadata" % (EVENT, AV_META)) is not None


def test_omemo_devicelist_open(env):
    srv, c2s = env
    a = caps_online(c2s, "alice@localhost/conversations", notify=[AXOLOTL, OMEMO2])
    b = caps_online(c2s, "bob@localhost/desk", notify=[AXOLOTL, OMEMO2])
    befriend(a, b)
    opts = {"pubsub#access_model": "open"}
    dl = f"<list xmlns='eu.siacs.conversations.axolotl'><device id='12345'/></list>"
    assert publish(a, AXOLOTL, dl, item_id="current", options=opts).get("type") == "result"
    ev = b.expect(lambda e: is_event(e, "alice@localhost", AXOLOTL), what="device list notification")
    assert event_items(ev).find(".//{eu.siacs.conversations.axolotl}device").get("id") == "12345"
    a.expect(lambda e: is_event(e, "alice@localhost", AXOLOTL), what="own device list")
    # bundle node, open as well
    bundle = ("<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic signedPreKeyId='1'>AAAA"
              "</signedPreKeyPublic><identityKey>BBBB</identityKey><prekeys><preKeyPublic preKeyId='1'>CCCC"
              "</preKeyPublic></prekeys></bundle>")
    assert publish(a, "eu.siacs.conversations.axolotl.bundles:12345", bundle, item_id="current",
                   options=opts).get("type") == "result"
    # OMEMO 2 devices node
    d2 = f"<devices xmlns='urn:xmpp:omemo:2'><device id='12345' label='phone'/></devices>"
    assert publish(a, OMEMO2, d2, item_id="current",
                   options={"pubsub#access_model": "open", "pubsub#max_items": "max"}).get("type") == "result"
    b.expect(lambda e: is_event(e, "alice@localhost", OMEMO2), what="omemo:2 devices notification")
    # the precondition holds on the next publish; a stranger can read the lists and the bundle
    dl2 = f"<list xmlns='eu.siacs.conversations.axolotl'><device id='12345'/><device id='678'/></list>"
    assert publish(a, AXOLOTL, dl2, item_id="current", options=opts).get("type") == "result"
    c = c2s.online("carol@localhost/x")
    got = items(c, "alice@localhost", AXOLOTL)
    assert [d.get("id") for d in got.iter("{eu.siacs.conversations.axolotl}device")] == ["12345", "678"]
    got = items(c, "alice@localhost", "eu.siacs.conversations.axolotl.bundles:12345")
    assert got.find(".//{eu.siacs.conversations.axolotl}identityKey").text == "BBBB"
    assert item_ids(items(c, "alice@localhost", OMEMO2)) == ["current"]


def test_e2e_nick_with_slixmpp(server):
    """Real clients through c2s: slixmpp advertises nick+notify in its
    entity capabilities (xep_0115 + xep_0172), the sm asks it what its caps
    mean, and a nickname Alice publishes reaches Bob as a PEP event."""
    import asyncio
    from xmppclient import Client, run

    srv = server()
    port = srv.c2s[0].port
    for u in ("alice", "bob"):
        srv.add_user(u, "pw-" + u)

    def make(jid, password):
        c = Client(jid, password, port, cafile=srv.cert)
        for p in ("xep_0115", "xep_0163", "xep_0172"):
            c.register_plugin(p)
        c.nicks = asyncio.Queue()
        c.add_event_handler("user_nick_publish", lambda m: c.nicks.put_nowait(m))
        return c

    async def main():
        alice = await make("alice@localhost/home", "pw-alice").start()
        bob = await make("bob@localhost/work", "pw-bob").start()
        # both ways subscribed (bob's approval is all the notification needs)
        bob.send_presence_subscription(pto="alice@localhost", ptype="subscribe")
        await alice.next_presence(lambda p: p["type"] == "subscribe")
        alice.send_presence(pto="bob@localhost", ptype="subscribed")
        await bob.next_presence(lambda p: p["type"] == "available" and p["from"].bare == "alice@localhost")
        # the sm has Bob's caps answered by now (asked at his initial presence)
        await asyncio.sleep(0.5)
        await alice["xep_0172"].publish_nick("Alice Liddell")
        msg = await asyncio.wait_for(bob.nicks.get(), 10)
        assert msg["from"].bare == "alice@localhost"
        assert msg["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Alice Liddell"
        # the owner's own client asked for nicks too
        own = await asyncio.wait_for(alice.nicks.get(), 10)
        assert own["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Alice Liddell"
        await bob.stop()
        # Bob again, on a new resource: the last nick arrives by itself
        bob2 = await make("bob@localhost/phone", "pw-bob").start()
        msg = await asyncio.wait_for(bob2.nicks.get(), 10)
        assert msg["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Alice Liddell"
        await bob2.stop()
        await alice.stop()

    run(main())
