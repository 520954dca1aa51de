"""A real gateway component, biboumi (Debian's IRC gateway), joins the router
with the settings the README gives, and answers through it."""
import shutil
import subprocess
import time

import pytest

from harness import connected

COMPONENTS = [
    {"name": "*", "secret": "switchboard-dev"},
]


@pytest.mark.skipif(shutil.which("biboumi") is None, reason="biboumi is not installed")
def test_biboumi_joins_and_answers_disco(router, tmp_path):
    r = router(COMPONENTS)
    cfg = tmp_path / "biboumi.cfg"
    cfg.write_text("hostname=irc.localhost\npassword=switchboard-dev\n"
                   f"port={r.port}\nxmpp_server_ip=127.0.0.1\n"
                   f"db_name={tmp_path}/biboumi.sqlite\nlog_level=1\n")
    log = open(tmp_path / "biboumi.log", "wb")
    bib = subprocess.Popen(["biboumi", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.time() + 20
        while "component irc.localhost connected" not in r.log() and time.time() < deadline:
            assert bib.poll() is None, (tmp_path / "biboumi.log").read_text()
            time.sleep(0.1)
        assert "component irc.localhost connected" in r.log(), (tmp_path / "biboumi.log").read_text()
        # Another component (as the sm would for a user) asks biboumi what it is.
        user = connected(r.port, "localhost", "switchboard-dev")
        user.send("<iq from='alice@localhost/x' to='irc.localhost' type='get' id='d1'>"
                  "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        answer = user.next_stanza(timeout=10)
        assert answer is not None and answer.get("id") == "d1" and answer.get("type") == "result"
        assert answer.get("from") == "irc.localhost"
        query = answer.find("{http://jabber.org/protocol/disco#info}query")
        identities = [(i.get("category"), i.get("type"))
                      for i in query.findall("{http://jabber.org/protocol/disco#info}identity")]
        assert ("conference", "irc") in identities, identities
    finally:
        bib.terminate()
        try:
            bib.wait(10)
        except subprocess.TimeoutExpired:
            bib.kill()
            bib.wait()
        log.close()
