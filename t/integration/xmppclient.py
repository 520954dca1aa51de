"""A thin asyncio wrapper around slixmpp for tests: connect, wait for the
session, and collect what arrives in queues that can be awaited with a
timeout."""
import asyncio
import ssl

import slixmpp


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, port, cafile=None, register=False, sasl_mech=None,
                 direct_tls=False):
        kw = {"sasl_mech": sasl_mech} if sasl_mech else {}
        super().__init__(jid, password, **kw)
        self.port = port
        self.direct_tls = direct_tls
        self.do_register = register
        ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
        if not cafile:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.ssl_context = ctx
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.roster_pushes = asyncio.Queue()
        self.session = asyncio.get_event_loop().create_future()
        self.roster.auto_authorize = False
        self.roster.auto_subscribe = False
        for plugin in ("xep_0030", "xep_0199", "xep_0203", "xep_0077", "xep_0198"):
            self.register_plugin(plugin)
        if not register:
            self.plugin["xep_0077"].force_registration = False
        self["xep_0198"].allow_resume = False
        self.add_event_handler("session_start", self._on_session)
        self.add_event_handler("failed_auth", self._on_failed)
        self.add_event_handler("register", self._on_register)
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))
        self.add_event_handler("presence", lambda p: self.presences.put_nowait(p))
        self.add_event_handler("roster_update", lambda iq: self.roster_pushes.put_nowait(iq))

    async def _on_register(self, _):
        resp = self.Iq()
        resp["type"] = "set"
        resp["register"]["username"] = self.boundjid.user
        resp["register"]["password"] = self.password
        await resp.send()

    def _on_session(self, _):
        if not self.session.done():
            self.session.set_result(True)

    def _on_failed(self, _):
        if not self.session.done():
            self.session.set_exception(AssertionError(f"authentication failed for {self.boundjid}"))

    async def start(self, presence=True, timeout=20):
        if self.do_register:
            self.plugin["xep_0077"].force_registration = True
        self.connect(address=("127.0.0.1", self.port), use_ssl=self.direct_tls, force_starttls=not self.direct_tls)
        await asyncio.wait_for(self.session, timeout)
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
        loop.close()
