"""c2s: the per-process cache of good plaintext password checks
(c2s/auth_cache.c). A client that logs in again with PLAIN is checked from
it; a password changed since (by switchboardctl, which c2s is never told
about, or in-band) is never accepted from it, and the old password fails."""
import time

from test_c2s_auth import tls_client
from test_c2s_client import NS_REGISTER, NS_SASL, q, sasl_condition

DEBUG = {"log/level": "debug"}


def cache_hits(srv, account):
    return srv.proc("c2s-1").log().count(f"password of {account} checked from the cache")


def plain(srv, user, password):
    c = tls_client(srv)
    el = c.plain(user, password)
    c.close()
    return "success" if el.tag == q(NS_SASL, "success") else sasl_condition(el)


def test_second_login_is_checked_from_the_cache(server):
    srv = server(sm=False, config={"c2s": DEBUG})
    srv.add_user("alice", "pw-one")
    assert plain(srv, "alice", "pw-one") == "success"
    assert cache_hits(srv, "alice@localhost") == 0, "the first check derives the key"
    assert plain(srv, "alice", "pw-one") == "success"
    assert cache_hits(srv, "alice@localhost") == 1, "the second one is answered from the cache"
    # A wrong password is never a hit, and does not spoil the entry.
    assert plain(srv, "alice", "pw-ONE") == "not-authorized"
    assert plain(srv, "alice", "pw-one") == "success"
    assert cache_hits(srv, "alice@localhost") == 2
    # Another account with the same password has its own entry.
    srv.add_user("bob", "pw-one")
    assert plain(srv, "bob", "pw-one") == "success"
    assert cache_hits(srv, "bob@localhost") == 0


def test_password_changed_outside_c2s_is_not_accepted_from_the_cache(server):
    srv = server(sm=False, config={"c2s": DEBUG})
    srv.add_user("carol", "old-pw")
    assert plain(srv, "carol", "old-pw") == "success"
    assert plain(srv, "carol", "old-pw") == "success"
    assert cache_hits(srv, "carol@localhost") == 1, "old password cached"
    out = srv.ctl("user", "passwd", "carol@localhost", "new-pw")
    assert out.returncode == 0, out.stderr
    # c2s was not told: the stored secrets it reads on login changed, so the
    # old entry cannot match them.
    assert plain(srv, "carol", "old-pw") == "not-authorized"
    assert cache_hits(srv, "carol@localhost") == 1
    assert plain(srv, "carol", "new-pw") == "success"
    assert cache_hits(srv, "carol@localhost") == 1, "the new password is checked in full once"
    assert plain(srv, "carol", "new-pw") == "success"
    assert cache_hits(srv, "carol@localhost") == 2
    assert plain(srv, "carol", "old-pw") == "not-authorized"


def test_password_changed_in_band_is_not_accepted_from_the_cache(server):
    srv = server(config={"c2s": DEBUG})
    srv.add_user("dave", "old-pw")
    assert plain(srv, "dave", "old-pw") == "success"
    assert plain(srv, "dave", "old-pw") == "success"
    assert cache_hits(srv, "dave@localhost") == 1
    c = tls_client(srv)
    assert c.login("dave", "old-pw", mech="PLAIN", resource="r1") == "dave@localhost/r1"
    el = c.iq("set", f"<query xmlns='{NS_REGISTER}'><username>dave</username><password>new-pw</password></query>")
    assert el.get("type") == "result"
    assert plain(srv, "dave", "old-pw") == "not-authorized"
    assert plain(srv, "dave", "new-pw") == "success"


def test_deleted_and_recreated_account(server):
    srv = server(sm=False, config={"c2s": DEBUG})
    srv.add_user("erin", "same-pw")
    assert plain(srv, "erin", "same-pw") == "success"
    assert plain(srv, "erin", "same-pw") == "success"
    assert srv.ctl("user", "delete", "erin@localhost").returncode == 0
    assert plain(srv, "erin", "same-pw") == "not-authorized", "a deleted account is not let in from the cache"
    srv.add_user("erin", "same-pw")
    hits = cache_hits(srv, "erin@localhost")
    assert plain(srv, "erin", "same-pw") == "success"
    assert cache_hits(srv, "erin@localhost") == hits, "new secrets (new salt): checked in full"


def test_cache_off_and_expiry(server):
    srv = server(sm=False, config={"c2s": dict(DEBUG, **{"auth/password-cache-size": "0"})})
    srv.add_user("frank", "pw")
    for _ in range(3):
        assert plain(srv, "frank", "pw") == "success"
    assert cache_hits(srv, "frank@localhost") == 0, "size 0 turns the cache off"

    srv = server(sm=False, config={"c2s": dict(DEBUG, **{"auth/password-cache-ttl": "1"})})
    srv.add_user("gina", "pw")
    assert plain(srv, "gina", "pw") == "success"
    assert plain(srv, "gina", "pw") == "success"
    hits = cache_hits(srv, "gina@localhost")
    assert hits == 1
    time.sleep(2.5)   # past the one-second ttl: the entry is gone whatever the timing
    assert plain(srv, "gina", "pw") == "success"
    assert cache_hits(srv, "gina@localhost") == hits, "an expired entry is not used"
