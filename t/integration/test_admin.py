"""switchboardctl, the admin command, against a private PostgreSQL cluster:
accounts (add, list, passwd, delete, duplicates, bad JIDs), the schema
(db migrate, db status) and the self-signed certificate."""
import base64
import glob
import hashlib
import hmac
import os
import subprocess
import uuid

import pytest

from harness import BUILD, TOP

CTL = os.path.join(BUILD, "tools", "switchboardctl")
PG_LOCAL = os.path.join(TOP, "tools", "pg-local")


def psql_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
    return found[-1] if found else "psql"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A private PostgreSQL for this file; its conninfo (database 'switchboard')."""
    d = tmp_path_factory.mktemp("pg-admin")
    out = subprocess.run([PG_LOCAL, "start", str(d)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    conninfo = out.stdout.strip().splitlines()[-1]
    yield conninfo
    subprocess.run([PG_LOCAL, "stop", str(d)], capture_output=True, timeout=120)


def ctl(*args, db=None, stdin=None, env=None):
    e = dict(os.environ)
    e.pop("SWITCHBOARD_DB", None)
    if env:
        e.update(env)
    argv = [CTL] + (["--db", db] if db else []) + list(args)
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=e, timeout=120)
    assert "AddressSanitizer" not in p.stderr and "runtime error:" not in p.stderr, p.stderr
    return p


def sql(conninfo, query):
    """Run a query with psql; rows as lists of strings."""
    p = subprocess.run([psql_bin(), "-X", "-A", "-t", "-F", "\t", "-d", conninfo, "-c", query],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [line.split("\t") for line in p.stdout.splitlines() if line]


@pytest.fixture(scope="session")
def db(cluster):
    """The cluster's database with the schema applied."""
    p = ctl("db", "migrate", db=cluster)
    assert p.returncode == 0, p.stderr
    return cluster


@pytest.fixture
def domain():
    return f"admin-{uuid.uuid4().hex[:10]}.example"


def fresh_database(cluster):
    name = f"sb_admin_{uuid.uuid4().hex[:10]}"
    sql(cluster, f"CREATE DATABASE {name}")
    return f"{cluster} dbname={name}"


def stored_key(alg, password, salt, iterations):
    salted = hashlib.pbkdf2_hmac(alg, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", alg).digest()
    return hashlib.new(alg, client_key).digest()


def secrets_of(conninfo, domain, user):
    rows = sql(conninfo, "SELECT sha256_iterations, encode(sha256_salt, 'base64'), encode(sha256_stored_key, 'base64'), "
                         "sha1_iterations, encode(sha1_salt, 'base64'), encode(sha1_stored_key, 'base64'), "
                         "coalesce(password, '<null>') "
                         f"FROM accounts WHERE domain = '{domain}' AND username = '{user}'")
    assert len(rows) == 1
    r = rows[0]
    return {"sha256": (int(r[0]), base64.b64decode(r[1]), base64.b64decode(r[2])),
            "sha1": (int(r[3]), base64.b64decode(r[4]), base64.b64decode(r[5])),
            "plaintext": None if r[6] == "<null>" else r[6]}


def password_matches(conninfo, domain, user, password):
    s = secrets_of(conninfo, domain, user)
    ok = True
    for alg in ("sha256", "sha1"):
        it, salt, key = s[alg]
        ok = ok and hmac.compare_digest(stored_key(alg, password, salt, it), key)
    return ok


def test_user_add_list_passwd_delete(db, domain):
    p = ctl("user", "add", f"Alice@{domain.upper()}", "s3cret-pass", db=db)
    assert p.returncode == 0, p.stderr
    assert "s3cret-pass" not in p.stdout + p.stderr
    p = ctl("user", "add", f"bob@{domain}", db=db, stdin="bob's password\n")
    assert p.returncode == 0, p.stderr
    assert "bob's password" not in p.stdout + p.stderr

    p = ctl("user", "list", domain, db=db)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [f"alice@{domain}", f"bob@{domain}"]   # prepared, sorted
    p = ctl("user", "list", db=db)
    assert f"alice@{domain}" in p.stdout.splitlines()

    # Secrets a SCRAM client can use, with fresh salts; no plaintext.
    s = secrets_of(db, domain, "alice")
    assert s["plaintext"] is None
    assert s["sha256"][0] == 4096 and s["sha1"][0] == 4096
    assert s["sha256"][1] != s["sha1"][1]
    assert password_matches(db, domain, "alice", "s3cret-pass")
    assert password_matches(db, domain, "bob", "bob's password")
    assert not password_matches(db, domain, "alice", "wrong")

    p = ctl("user", "passwd", f"alice@{domain}", "n3w-pass", db=db)
    assert p.returncode == 0, p.stderr
    assert "n3w-pass" not in p.stdout + p.stderr
    assert password_matches(db, domain, "alice", "n3w-pass")
    assert not password_matches(db, domain, "alice", "s3cret-pass")
    p = ctl("user", "passwd", f"nobody@{domain}", "x", db=db)
    assert p.returncode == 1 and "no such user" in p.stderr

    # Delete takes the user's data along.
    sql(db, f"INSERT INTO offline_messages (domain, username, stanza) VALUES ('{domain}', 'alice', '<message/>')")
    p = ctl("user", "delete", f"alice@{domain}", db=db)
    assert p.returncode == 0, p.stderr
    assert ctl("user", "list", domain, db=db).stdout.splitlines() == [f"bob@{domain}"]
    assert sql(db, f"SELECT count(*) FROM offline_messages WHERE domain = '{domain}'") == [["0"]]
    p = ctl("user", "delete", f"alice@{domain}", db=db)
    assert p.returncode == 1 and "no such user" in p.stderr


def test_duplicate_user_fails(db, domain):
    assert ctl("user", "add", f"carol@{domain}", "one", db=db).returncode == 0
    p = ctl("user", "add", f"CAROL@{domain}", "two", db=db)
    assert p.returncode == 1
    assert "already exists" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert password_matches(db, domain, "carol", "one")


@pytest.mark.parametrize("bad", ["no-node.example", "a@@b", "x@", "@example.com", "user@example.com/res",
                                 "us er\u0007@example.com"])
def test_bad_jid_is_a_usage_error(db, bad):
    p = ctl("user", "add", bad, "pw", db=db)
    assert p.returncode == 2, p.stderr
    assert "switchboardctl:" in p.stderr


def test_options_iterations_and_plaintext(db, domain):
    p = ctl("--iterations", "5000", "--store-plaintext", "user", "add", f"dave@{domain}", "plain-pw", db=db)
    assert p.returncode == 0, p.stderr
    s = secrets_of(db, domain, "dave")
    assert s["sha256"][0] == 5000 and s["sha1"][0] == 5000
    assert s["plaintext"] == "plain-pw"
    assert password_matches(db, domain, "dave", "plain-pw")
    # passwd without --store-plaintext drops the clear password
    assert ctl("user", "passwd", f"dave@{domain}", "other", db=db).returncode == 0
    assert secrets_of(db, domain, "dave")["plaintext"] is None


def test_usage_errors(db):
    assert ctl(db=db).returncode == 2
    assert ctl("frobnicate", db=db).returncode == 2
    assert ctl("user", "add", db=db).returncode == 2
    assert ctl("--iterations", "zero", "user", "list", db=db).returncode == 2
    p = ctl("--help")
    assert p.returncode == 0 and "user add" in p.stdout


def test_database_from_config_env_and_failures(db, domain, tmp_path):
    assert ctl("user", "add", f"erin@{domain}", "pw", db=db).returncode == 0
    cfg = tmp_path / "sm.xml"
    cfg.write_text("<sm>\n  <router><port>5347</port></router>\n"
                   "  <database><conninfo>env:SB_ADMIN_TEST_DB</conninfo></database>\n</sm>\n")
    p = ctl("-c", str(cfg), "user", "list", domain, env={"SB_ADMIN_TEST_DB": db})
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [f"erin@{domain}"]
    p = ctl("user", "list", domain, env={"SWITCHBOARD_DB": db})
    assert p.returncode == 0 and p.stdout.splitlines() == [f"erin@{domain}"]
    # Unset variable, no database at all, unreachable server: one clear line, exit 1.
    p = ctl("-c", str(cfg), "user", "list")
    assert p.returncode == 1 and "SB_ADMIN_TEST_DB" in p.stderr
    p = ctl("user", "list")
    assert p.returncode == 1 and "SWITCHBOARD_DB" in p.stderr
    p = ctl("user", "list", db=f"host={tmp_path}/nowhere dbname=x")
    assert p.returncode == 1 and "cannot connect" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_db_migrate_twice_and_status(cluster):
    fresh = fresh_database(cluster)
    p = ctl("db", "status", db=fresh)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("schema version 0")
    assert "db migrate" in p.stdout
    p = ctl("db", "migrate", db=fresh)
    assert p.returncode == 0, p.stderr
    latest = max(int(os.path.basename(f).split("_", 1)[0])
                 for f in glob.glob(os.path.join(TOP, "storage", "migrations", "*.sql")))
    assert f"schema version {latest}" in p.stdout and "was 0" in p.stdout
    p = ctl("db", "migrate", db=fresh)
    assert p.returncode == 0, p.stderr
    assert "up to date" in p.stdout
    p = ctl("db", "status", db=fresh)
    assert p.returncode == 0
    version = int(p.stdout.split()[2])
    assert version >= 1
    assert sql(fresh, "SELECT max(version) FROM switchboard_migrations") == [[str(version)]]
    # A user can be added right away.
    assert ctl("user", "add", "first@fresh.example", "pw", db=fresh).returncode == 0


def test_user_add_without_schema_says_so(cluster):
    fresh = fresh_database(cluster)
    p = ctl("user", "add", "x@y.example", "pw", db=fresh)
    assert p.returncode == 1
    assert "db migrate" in p.stderr


def test_tls_selfsigned(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    p = ctl("tls-selfsigned", str(cert), str(key), "example.org,conference.example.org")
    assert p.returncode == 0, p.stderr
    out = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-subject", "-ext", "subjectAltName"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "example.org" in out.stdout and "DNS:conference.example.org" in out.stdout
    assert subprocess.run(["openssl", "pkey", "-in", str(key), "-noout"], capture_output=True).returncode == 0
    assert (os.stat(key).st_mode & 0o077) == 0
    p = ctl("tls-selfsigned", str(tmp_path / "no" / "such" / "dir.pem"), str(key), "x.example")
    assert p.returncode == 1
    assert ctl("tls-selfsigned", str(cert)).returncode == 2
