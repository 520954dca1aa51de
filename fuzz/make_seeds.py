#!/usr/bin/python3
"""Write the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

The seeds are small realistic inputs: client, server and component streams,
stanzas with namespaces, JIDs from RFC 7622, SCRAM messages from RFC 5802
and RFC 7677, configuration files. Several targets take a few header bytes
before the data (see the comment at the top of each fuzz_<target>.c); this
script writes them, so the seeds stay readable here. Run it again after
changing a seed; the fuzzers add their own finds to the same folders when
fuzz/run is given -merge (they are not needed in the repository)."""
import base64
import hashlib
import hmac
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- XML streams

STREAM_NS = "http://etherx.jabber.org/streams"
CLIENT_HEADER = ("<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' "
                 "xmlns:stream='%s' version='1.0'>" % STREAM_NS)
SERVER_HEADER = ("<stream:stream xmlns:stream='%s' xmlns='jabber:server' "
                 "xmlns:db='jabber:server:dialback' to='example.net' from='example.org' version='1.0'>" % STREAM_NS)
COMPONENT_HEADER = ("<stream:stream xmlns='jabber:component:accept' xmlns:stream='%s' "
                    "to='sm.example.com'>" % STREAM_NS)

CLIENT_SESSION = (
    CLIENT_HEADER +
    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" +
    CLIENT_HEADER +
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>"
    "biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM</auth>"
    "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>Yz1iaXdzLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdMM3JmY05I"
    "WUpZMVpWdldWczdqLHA9djBYOHYzQnoyVDBDSkdiSlF5RjBYK0hJNFRzPQ==</response>" +
    CLIENT_HEADER +
    "<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
    "<resource>balcony</resource></bind></iq>\n"
    "<presence><show>chat</show><status xml:lang='en'>Waiting &amp; watching</status>"
    "<priority>1</priority></presence>\n"
    "<message to='romeo@example.net' from='juliet@example.com/balcony' type='chat' id='m1' xml:lang='en'>"
    "<body>Wherefore art thou, Romeo?</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>\n"
    "<iq type='get' id='roster_1'><query xmlns='jabber:iq:roster' ver='ver7'/></iq>"
    "</stream:stream>")

SERVER_SESSION = (
    SERVER_HEADER +
    "<db:result from='example.org' to='example.net'>"
    "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:result>"
    "<db:verify from='example.org' to='example.net' id='417GAF25'>"
    "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:verify>"
    "<message from='a@example.org/r' to='b@example.net' type='error'><error type='cancel' code='503'>"
    "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    "</stream:stream>\n")

COMPONENT_SESSION = (
    COMPONENT_HEADER +
    "<handshake>aaee83c26aeeafcbabeabfcbcd50df997e0a2a1e</handshake>"
    "<bind xmlns='urn:switchboard:router' name='example.com'/>"
    "<route xmlns='urn:switchboard:router' to='c2s-1' from='sm' session='42'>"
    "<message xmlns='jabber:client' from='romeo@example.net/orchard' to='juliet@example.com/balcony'>"
    "<body>Neither, fair saint, if either thee dislike.</body></message></route>"
    "<iq from='sm.example.com' to='example.com' type='result' id='x'/>")

NAMESPACES = (
    "<s:stream xmlns:s='%s' xmlns='jabber:client' xmlns:x='urn:example:x' x:a='1'>" % STREAM_NS +
    "<x:item x:b='2' b='3'><x:sub/><plain/></x:item>"
    "<message xmlns:y='urn:example:y' y:attr='v'><y:ext xmlns='urn:example:default'><z/></y:ext></message>"
    "<iq xmlns='jabber:server' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    "<p:presence xmlns:p='jabber:client'><p:status>on</p:status></p:presence>"
    "<x:e xmlns:x='urn:example:other'/>"
    "<message><body>&lt;tag&gt; &amp; &apos; &quot; &#x41;&#66; &#13;&#10;\r\n"
    "<![CDATA[<not an element> & ]]>é 中文 😀</body></message>"
    "<message to='a&#9;b' id='line&#10;break' xml:lang='fr'/>"
    "</s:stream>")

ERRORS = [
    CLIENT_HEADER + "<!-- a comment --><message/>",
    "<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'y'>]><stream:stream xmlns:stream='%s'>&x;" % STREAM_NS,
    CLIENT_HEADER + "<message><body>&unknown;</body></message>",
    CLIENT_HEADER + "<?pi data?>",
    CLIENT_HEADER + "<undeclared:el/>",
    CLIENT_HEADER + "<message>" + "<a>" * 40 + "</a>" * 40 + "</message>",
    CLIENT_HEADER + "<message " + " ".join("a%d='%d'" % (i, i) for i in range(30)) + "/>",
    CLIENT_HEADER + "<message><body>" + "x" * 1000 + "</body></message>",
    "<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns:stream='%s'>" % STREAM_NS,
    CLIENT_HEADER + "</stream:stream> <message/>",
    CLIENT_HEADER + "<message>\x00</message>",
    CLIENT_HEADER + "<message><body>\xff\xfe</body></message>",
]


def stream_seed(limits, size, behaviour, chunks, data):
    head = bytes([limits, size, behaviour] + list(chunks))
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return head + data


# limits byte: depth = 1 + 2*(b & 7), attrs = 1 + 3*((b >> 3) & 7)
ROOMY = 0x3f      # depth 15, attrs 22
write("xml_stream", "client-session", stream_seed(ROOMY, 0xff, 0x02, [0xff] * 4, CLIENT_SESSION))
write("xml_stream", "client-session-bytewise", stream_seed(ROOMY, 0xff, 0x02, [0, 0, 0, 0], CLIENT_SESSION))
write("xml_stream", "client-session-chunks", stream_seed(ROOMY, 0xff, 0x1a | 0x20, [6, 63, 1, 200], CLIENT_SESSION))
write("xml_stream", "server-dialback", stream_seed(ROOMY, 0x40, 0x40, [16, 17, 250, 3], SERVER_SESSION))
write("xml_stream", "component", stream_seed(ROOMY, 0x80, 0x04 | 0x60, [30, 2, 0xff, 7], COMPONENT_SESSION))
write("xml_stream", "namespaces", stream_seed(ROOMY, 0xff, 0x20, [9, 0xff, 1, 1], NAMESPACES))
write("xml_stream", "namespaces-other-context", stream_seed(ROOMY, 0xff, 0x40, [0xff] * 4, NAMESPACES))
write("xml_stream", "pause-on-open", stream_seed(ROOMY, 0xff, 0x01 | 0x08, [20, 40, 80, 0xff], CLIENT_SESSION))
for i, e in enumerate(ERRORS):
    write("xml_stream", "error-%02d" % i, stream_seed(0x12, 0x10, 0x08 | 0x10, [5, 0xff, 11, 2], e))

# -------------------------------------------------------------- documents / config

ROUTER_XML = open(os.path.join(HERE, "..", "etc", "router.xml"), encoding="utf-8").read() \
    if os.path.exists(os.path.join(HERE, "..", "etc", "router.xml")) else ""
if ROUTER_XML:
    write("xml_document", "etc-router", ROUTER_XML)
write("xml_document", "full-config", """<?xml version='1.0' encoding='UTF-8'?>
<router version='2'>
  <id>router.example.com</id>
  <listen><address>0.0.0.0</address><port>5347</port><tls>yes</tls><require-tls/></listen>
  <listen><port> 5348 </port><tls>off</tls></listen>
  <log><level>debug</level><syslog/></log>
  <limits><max-stanza-bytes>64k</max-stanza-bytes><handshake-timeout>-1</handshake-timeout>
    <write-queue-high>1M</write-queue-high><write-queue-max>9223372036854775807</write-queue-max></limits>
  <metrics><address>::1</address><port>9347</port></metrics>
  <host>example.com</host><host>  example.net  </host>
  <component name='sm' secret='literal-secret' trusted='true'/>
  <component name='muc' secret='env:SWITCHBOARD_COMPONENT_SECRET' trusted='0'/>
  <component name='gw'/>
  <tls><cert>/etc/hostname</cert><key>/etc/os-release</key></tls>
  <secret>file:/etc/hostname</secret>
</router>
""")
write("xml_document", "config-errors", """<router><listen><port>x</port></listen><lisen/>
<component secret='file:'/><log><level><x/></level></log></router>""")
write("xml_document", "config-missing", "<router><listen><address>a</address></listen></router>")
write("xml_document", "config-duplicate", "<router><log><level>a</level><level>b</level></log></router>")
write("xml_document", "namespaced", """<?xml version="1.0"?>
<!-- comment before the root -->
<r:router xmlns:r='urn:example:cfg' xmlns='urn:example:default' xml:lang='en'>
  <listen r:port='1'><port>&#x35;&#x32;&#x32;&#x32;</port></listen>
  <![CDATA[ text ]]>
  <x:e xmlns:x='urn:x' x:a='&lt;&amp;&gt;&apos;&quot;&#9;&#10;&#13;'/>
</r:router>
""")
write("xml_document", "doctype", "<!DOCTYPE router SYSTEM 'x.dtd'><router/>")

# ---------------------------------------------------------------------- JIDs

JIDS = [
    "juliet@example.com", "juliet@example.com/foo", "juliet@example.com/foo bar",
    "juliet@example.com/foo@bar", "foo\\20bar@example.com", "fussball@example.com",
    "fußball@example.com", "π@example.com", "Σ@example.com/foo", "σ@example.com/foo",
    "ς@example.com/foo", "king@example.com/♚", "example.com", "example.com/foobar",
    "a.example.com/b@example.net", "\"juliet\"@example.com", "foo bar@example.com",
    "juliet@example.com/ foo", "@example.com/", "henryⅣ@example.com", "♚@example.com",
    "juliet@", "/foobar", "[::1]", "user@[2001:db8::1]/r", "192.0.2.1", "user@bücher.example",
    "USER@ＥＸＡＭＰＬＥ。com/Res", "example.com.", "a@b..c", "a@-x.example", "x@under_score.example",
    "node@" + "l" * 63 + ".example", "node@" + "l" * 64 + ".example", "r@example.com/" + "r" * 1023,
    "ß@example.com", "İ@example.com", "x@xn--bcher-kva.example", "x@e\u0301xample.com",
    "a@b/c/d", "a@b@c", "\u0627\u0644@example.com", "a\u200b@example.com",
]
for i, j in enumerate(JIDS):
    write("jid", "jid-%02d" % i, j)

# ---------------------------------------------------------------------- SCRAM


def scram_final(alg, password, salt, iters, client_first_bare, server_first, without_proof):
    h = hashlib.sha1 if alg == 1 else hashlib.sha256
    salted = hashlib.pbkdf2_hmac(h().name, password.encode(), salt, iters)
    client_key = hmac.new(salted, b"Client Key", h).digest()
    stored = h(client_key).digest()
    auth = ",".join([client_first_bare, server_first, without_proof]).encode()
    sig = hmac.new(stored, auth, h).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    server_key = hmac.new(salted, b"Server Key", h).digest()
    server_sig = hmac.new(server_key, auth, h).digest()
    return (without_proof + ",p=" + base64.b64encode(proof).decode(),
            "v=" + base64.b64encode(server_sig).decode())


RFC = {
    # flags bit 0, client nonce, server nonce, salt
    1: ("fyko+d2lbbFgONRv9qkxdawL", "3rfcNHYJY1ZVvWVs7j", "QSXCR+Q6sek8bf92"),
    256: ("rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "W22ZaJ0SNY7soEsUEjb6gQ=="),
}
CB = b"0123456789abcdefghijklmnopqrstuv"

for alg, flag in ((1, 0), (256, 1)):
    cn, sn, salt = RFC[alg]
    sfirst = "r=%s%s,s=%s,i=4096" % (cn, sn, salt)
    for name, gs2, bare, extra_flags, cbdata in [
        ("plain", "n,,", "n=user,r=" + cn, 0, b""),
        ("authzid", "n,a=juliet@example.com,", "n=user,r=" + cn, 0, b""),
        ("y-flag", "y,,", "n=user,r=" + cn, 0, b""),
        ("escaped-name", "n,,", "n=us=2Cer=3D,r=" + cn + ",x=ext", 0, b""),
        ("plus", "p=tls-exporter,,", "n=user,r=" + cn, 0x02 | 0x08, CB),
        ("plus-unique", "p=tls-unique,,", "n=user,r=" + cn, 0x04 | 0x08, CB[:12]),
    ]:
        cbind = base64.b64encode(gs2.encode() + cbdata).decode()
        final, sfinal = scram_final(alg, "pencil", base64.b64decode(salt), 4096, bare, sfirst,
                                    "c=%s,r=%s%s" % (cbind, cn, sn))
        write("scram_server", "sha%d-%s" % (alg, name),
              bytes([flag | extra_flags]) + (gs2 + bare).encode() + b"\0" + final.encode())
        if name == "plain":
            write("scram_client", "sha%d-rfc" % alg,
                  bytes([flag]) + sfirst.encode() + b"\0" + sfinal.encode())
        if name == "plus":
            write("scram_client", "sha%d-rfc-plus" % alg,
                  bytes([flag | 0x04]) + sfirst.encode() + b"\0" + sfinal.encode())
    # a cheap server-first (1 iteration), and broken ones
    write("scram_client", "sha%d-one-iteration" % alg,
          bytes([flag]) + ("r=%s%s,s=%s,i=1,e=ext" % (cn, sn, salt)).encode() + b"\0v=AAAA")
    write("scram_client", "sha%d-bad" % alg,
          bytes([flag]) + ("m=x,r=%s,s=,i=0" % cn).encode() + b"\0e=invalid-proof")

write("scram_server", "reserved-mext", b"\0n,,m=ext,n=user,r=abc\0c=biws,r=abc,p=AAAA")
write("scram_server", "bad-nonce", b"\0n,,n=user,r=a,b\0c=biws,r=x,p=====")
write("scram_server", "unicode-name", b"\x01n,,n=\xc3\x9cser\xc2\xa0x,r=abc\0c=biws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA")
write("scram_client", "exchange", b"\x02user\0pencil\0fyko+d2lbbFgONRv9qkxdawL\0")
write("scram_client", "exchange-unicode", "\x03Üser,=x\0pässwörd\u00a0\u2163\0n\0nce\0".encode())
write("scram_client", "exchange-plus", b"\x07user\0pencil\0abc\0channel\0binding\xff")

# -------------------------------------------------------------------- base64

for i, s in enumerate(["", "Zg==", "Zm8=", "Zm9v", "Zm9vYmFy", "biws", "cD10bHMtZXhwb3J0ZXIsLA==",
                       "Zg=", "Zh==", "Zm9v\n", "====", "A===", "AB=C", "////++++"]):
    write("base64", "b64-%02d" % i, s)
write("base64", "binary", bytes(range(256)))

# ------------------------------------------------------------ stanza errors


def db_key(secret, receiving, originating, stream_id):
    k = hashlib.sha256(secret.encode()).hexdigest().encode()
    return hmac.new(k, ("%s %s %s" % (receiving, originating, stream_id)).encode(), hashlib.sha256).hexdigest()


STANZAS = (
    "<message to='romeo@example.net' from='juliet@example.com/balcony' id='m1' type='chat' xml:lang='en'>"
    "<body>Art thou not Romeo, and a Montague?</body></message>"
    "<iq type='get' id='v1' to='example.com'><query xmlns='jabber:iq:version'/></iq>"
    "<iq type='result' id='r1'/>"
    "<presence type='error' from='a@b'/>"
    "<presence to='room@muc.example.com/nick'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    "<c:message xmlns:c='jabber:client' to='x@y'><c:body>prefixed</c:body></c:message>"
    "<message xmlns='jabber:server' from='a@b' to='c@d'><body/></message>")
for i, flags in enumerate([0x00, 0x20 | 3, 18, 0x20 | 22, 31, 0x20 | 30]):
    write("stanza_error", "client-%d" % i, bytes([flags]) + STANZAS.encode())

for flags, secret in ((0x40, ""), (0xC0, "s3cr3tf0rd14lb4ck")):
    key = db_key(secret, "example.net", "example.org", "417GAF25")
    write("stanza_error", "dialback-%02x" % flags, bytes([flags | 0x20]) + (
        "<db:result from='example.org' to='example.net'>%s</db:result>"
        "<db:verify from='example.org' to='example.net' id='417GAF25'>%s</db:verify>"
        "<db:verify from='example.org' to='example.net' id='417GAF25'>\n  %s\n</db:verify>"
        "<db:verify from='example.org' to='example.net' id='other'>%s</db:verify>"
        "<iq from='example.org' to='example.net' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"
        % (key, key, key.upper(), key)).encode())


# ------------------------------------------------------------ stanza building

def build_seed(doc, ops):
    doc = doc.encode()
    return bytes([len(doc)]) + doc + bytes(ops)


MSG = ("<message xmlns='jabber:client' xmlns:x='urn:x' to='a@b' from='c@d/r' type='chat'>"
       "<body>hi</body><x:data x:k='v'/></message>")
write("stanza_build", "new-message", build_seed("", [
    0, 0, 1, 0,            # <body/> in the parent's namespace
    1, 1, 5, 0x41, 0x42, 0x26, 0x3c, 0x0d,   # text "AB&<\r" into body
    3, 0, 0, 8, 0x6a, 0x40, 0x65, 0x78, 0x2e, 0x6f, 0x72, 0x67,   # to=
    4, 0, 5, 5, 2, 3, 0x31, 0x32, 0x33,      # {urn:a}a with prefix p
    4, 1, 5, 6, 2, 1, 0x39,                  # {urn:b}a with prefix p: another prefix
    2, 0, 2, 4, 4, 0x74, 0x65, 0x78, 0x74,   # <x xmlns=stanzas>text</x>
    9, 1,                                     # make it an error
    11, 2, 10, 0]))
write("stanza_build", "parsed-message", build_seed(MSG, [
    3, 0, 1, 0xff,         # remove from
    6, 0, 2,               # copy <x:data/> into the root
    4, 2, 3, 5, 5, 2, 0x7a, 0x7a,   # {urn:a}type with prefix ns1 on x:data
    8, 1, 30] + list(b"<y:z xmlns:y='urn:x' y:q='1'/>") + [
    0, 3, 6, 7,            # an element in an odd namespace
    5, 1, 7, 2, 9, 0]))
write("stanza_build", "prefix-clash", build_seed(
    "<p:a xmlns:p='urn:a' xmlns:q='urn:b'><q:b p:x='1'/></p:a>", [
        4, 1, 5, 6, 2, 1, 0x31,    # on q:b: {urn:b}a with prefix p (p means urn:a there)
        4, 0, 6, 5, 3, 1, 0x32,    # on p:a: {urn:a}b with prefix q
        4, 1, 0, 7, 4, 1, 0x33,    # odd namespace with prefix ns1
        4, 1, 1, 7, 7, 1, 0x34,    # prefix xmlns
        11, 1]))

# ------------------------------------------------------------------ dialback
# What a peer sends after the stream header (the harness adds the header).
KEY = db_key("s3cr3t", "example.org", "example.net", "D60000229F")
write("dialback", "result-request", f"<db:result from='example.net' to='example.org'>{KEY}</db:result>")
write("dialback", "verify-request",
      f"<db:verify from='example.org' to='example.net' id='D60000229F'>{KEY}</db:verify>")
write("dialback", "answers",
      "<db:result from='example.org' to='example.net' type='valid'/>"
      "<db:result from='example.org' to='example.net' type='invalid'/>"
      "<db:verify from='example.org' to='example.net' id='i&apos;d' type='valid'/>")
write("dialback", "error-answer",
      "<db:result from='example.org' to='example.net' type='error'>"
      "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
      "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text></error></db:result>")
write("dialback", "jids-and-idn",
      "<db:result from='user@EXAMPLE.net/r' to='bücher.example.'>k</db:result>"
      "<db:verify from='a' to='b' id=''></db:verify>")
write("dialback", "malformed",
      "<db:result from='example.net'>k</db:result>"
      "<db:verify from='a' to='b'>k</db:verify>"
      "<db:result from='a' to='b' type='bogus'/>"
      "<db:result from='a..b' to='b'>k</db:result>"
      "<result xmlns='jabber:server:dialback' from='a' to='b'>k</result>"
      "<message from='a' to='b'/>")

# ------------------------------------------------------------------ xml_scan
# Elements as Switchboard's processes write them to each other (route
# envelopes, stanzas, control elements), and near misses the scanner must
# leave to the parser.
ROUTE = ("<route xmlns='urn:switchboard:router' to='c2s-1' from='example.com' c2s-id='7' sm-id='12' seq='3'>"
         "<message xmlns='jabber:client' from='juliet@example.com/balcony' to='romeo@example.com/orchard' "
         "type='chat' id='m1'><body>Art thou not Romeo, &amp; a Montague?</body>"
         "<active xmlns='http://jabber.org/protocol/chatstates'/></message></route>")
write("xml_scan", "route-message", ROUTE)
write("xml_scan", "route-control",
      "<route xmlns='urn:switchboard:router' to='example.com' from='c2s-1' c2s-id='7'>"
      "<session xmlns='urn:switchboard:session' action='start' jid='juliet@example.com/balcony' acks='true'/></route>"
      "<route xmlns=\"urn:switchboard:router\" type=\"error\" to=\"c2s-1\" from=\"example.com\"><iq/></route>")
write("xml_scan", "bare-stanzas",
      "<message from='a@example.com/r' to='b@example.net'><body>&#x1F600;&#65;&lt;&gt;&quot;&apos;</body></message>"
      "<presence from='a@example.com/r' to='b@example.net' type='unavailable'/>"
      "<iq type='get' id='v1' to='example.net' from='a@example.com/r'><query xmlns='jabber:iq:version'/></iq>")
write("xml_scan", "attribute-values",
      "<x a='tab\there' b=\"line\r\nend\" c='&#9;&#10;&#13;' d='say \"hi\"' e = 'spaced' xml:lang='en'>"
      "<y  z='1'   /></x  >")
write("xml_scan", "prefixed",
      "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><not-well-formed "
      "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error><db:result from='a' to='b'>k</db:result>")
write("xml_scan", "near-misses",
      "<a><b></a></b><a x='1'x='2'/><a x='<'/><a>&bogus;</a><a>&#0;</a><a><!-- c --></a>"
      "<a><![CDATA[x]]></a><a x='1' x='1'/><?pi?></stream:stream>")
write("xml_scan", "deep", "<a>" * 70 + "</a>" * 70)
write("xml_scan", "bind", "<bind xmlns='urn:switchboard:router' name='example.com' default='true'/>")


print("seeds written to", CORPUS, file=sys.stderr)
