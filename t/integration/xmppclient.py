"""A thin asyncio wrapper around slixmpp for tests: connect, wait for the
session, and collect what arrives in queues that can be awaited with a
timeout."""
import asyncio
import ssl

import slixmpp


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, port, cafile=None, sasl_mech=None,
                 direct_tls=False):
        kw = {"sasl_mech": sasl_mech} if sasl_mech else {}
        super().__init__(jid, password, **kw)
        self.port = port
        self.direct_tls = direct_tls
        ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
        if not cafile:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.ssl_context = ctx
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.roster_pushes = asyncio.Queue()
        self.session = asyncio.get_event_loop().create_future()
        self.roster.auto_authorize = None   # None: neither accept nor refuse by itself
        self.roster.auto_subscribe = False
        for plugin in ("xep_0030", "xep_0199", "xep_0203", "xep_0077", "xep_0198"):
            self.register_plugin(plugin)
        # Registration goes through register_account (below), not slixmpp.
        self.plugin["xep_0077"].create_account = False
        self["xep_0198"].allow_resume = False
        self.add_event_handler("session_start", self._on_session)
        self.add_event_handler("failed_auth", self._on_failed)
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))
        self.add_event_handler("presence", lambda p: self.presences.put_nowait(p))
        self.add_event_handler("roster_update", lambda iq: self.roster_pushes.put_nowait(iq))

    def _on_session(self, _):
        if not self.session.done():
            self.session.set_result(True)

    def _on_failed(self, _):
        if not self.session.done():
            self.session.set_exception(AssertionError(f"authentication failed for {self.boundjid}"))

    async def start(self, presence=True, timeout=20):
        self.connect(address=("127.0.0.1", self.port), use_ssl=self.direct_tls, force_starttls=not self.direct_tls)
        await asyncio.wait_for(self.session, timeout)
        # As real clients do: fetch the roster (this makes the resource
        # "interested" in roster pushes, RFC 6121 §2.1.6), then go online.
        await self.get_roster(timeout=timeout)
        while not self.roster_pushes.empty():
            self.roster_pushes.get_nowait()   # the answer to our own get
        if presence:
            self.send_presence()
        return self

    async def get_roster_items(self, timeout=10):
        iq = await self.get_roster(timeout=timeout)
        return {str(jid): dict(item) for jid, item in iq["roster"]["items"].items()}

    async def next_message(self, timeout=10):
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def next_presence(self, match=None, timeout=10):
        """The next presence for which match(p) is true (others are skipped)."""
        loop = asyncio.get_event_loop()
        deadline = loop.time() + timeout
        while True:
            p = await asyncio.wait_for(self.presences.get(), max(0.01, deadline - loop.time()))
            if match is None or match(p):
                return p

    async def next_push(self, jid, timeout=10):
        """The next roster push that names jid: its item as a dict."""
        loop = asyncio.get_event_loop()
        deadline = loop.time() + timeout
        while True:
            iq = await asyncio.wait_for(self.roster_pushes.get(), max(0.01, deadline - loop.time()))
            items = iq["roster"]["items"]
            for k, v in items.items():
                if str(k) == jid:
                    return dict(v)

    async def stop(self):
        self.disconnect()
        await asyncio.sleep(0)
        try:
            await asyncio.wait_for(self.disconnected, 5)
        except asyncio.TimeoutError:
            pass


def run(coro, timeout=120):
    """Run a test coroutine in a fresh loop, bounded in time."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        loop.run_until_complete(asyncio.sleep(0.1))
        # slixmpp leaves tasks behind after a disconnect: end them before the loop closes.
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


async def register_account(jid, password, port, timeout=20):
    """In-band registration (XEP-0077) with aioxmpp, a real client library.
    (slixmpp 1.8.3 holds iqs back until a session exists, so it cannot
    register before authenticating.)"""
    import aioxmpp
    import aioxmpp.connector
    import aioxmpp.ibr
    import aioxmpp.node
    import aioxmpp.protocol
    address = aioxmpp.JID.fromstr(jid)
    metadata = aioxmpp.make_security_layer(None, no_verify=True)
    transport, stream, _features = await asyncio.wait_for(aioxmpp.node.connect_xmlstream(
        address, metadata, override_peer=[("127.0.0.1", port, aioxmpp.connector.STARTTLSConnector())]), timeout)
    try:
        # aioxmpp.ibr.register does not look at the answer's type, so an
        # error (say, a temporary one while the server is starting) would
        # pass for success: send the same request and check the answer.
        iq = aioxmpp.IQ(to=aioxmpp.JID.fromstr(address.domain), type_=aioxmpp.IQType.SET,
                        payload=aioxmpp.ibr.Query(address.localpart, password))
        iq.autoset_id()
        answer = await aioxmpp.protocol.send_and_wait_for(stream, [iq], [aioxmpp.IQ], timeout=timeout)
        if answer.type_ != aioxmpp.IQType.RESULT:
            raise AssertionError(f"registration of {jid} refused: {answer.error}")
    finally:
        stream.close()
        transport.close()
