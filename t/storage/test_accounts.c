/* Accounts against a real database: create, conflict, credentials that a
 * SCRAM exchange accepts, password checks, password change, delete with the
 * user's roster and offline rows, exists. */
#include "t/storage/helpers.h"

#include "common/scram.h"
#include "storage/accounts.h"

typedef struct {
    int done;
    storage_status st;
    account_credentials creds;
    char plaintext[64];
    int has_plaintext;
} creds_res;

static void on_creds(void *ud, storage_status st, const account_credentials *c)
{
    creds_res *r = ud;
    note_callback();
    r->done++;
    r->st = st;
    if (c) {
        r->creds = *c;
        r->has_plaintext = c->plaintext != NULL;
        snprintf(r->plaintext, sizeof r->plaintext, "%s", c->plaintext ? c->plaintext : "");
        r->creds.plaintext = NULL;
    }
}

static int get_creds(storage *s, const char *domain, const char *user, creds_res *r)
{
    memset(r, 0, sizeof *r);
    CALL(account_get_credentials(s, domain, user, on_creds, r));
    WAIT_FOR(r->done, 20000);
    return r->done == 1 ? (int)r->st : -1;
}

#define STATUS_OF(call_expr)                    \
    ({                                          \
        status_res _r = {0};                    \
        status_res *res_ = &_r;                 \
        CALL(call_expr);                        \
        wait_status(res_);                      \
    })

/* A full SCRAM exchange of a client knowing password against the stored secrets. */
static int scram_round_trip(const scram_secrets *sec, const char *user, const char *password)
{
    scram_server *srv = scram_server_new(sec->alg, NULL, NULL, 0, NULL);
    scram_client *cli = scram_client_new(sec->alg, user, password, NULL);
    int okay = 0;
    char *cf = scram_client_first(cli), *sf = NULL, *cfin = NULL, *sfin = NULL;
    const char *u = NULL, *authz = NULL;
    if (scram_server_client_first(srv, cf, strlen(cf), 0, &u, &authz) == SCRAM_OK
        && scram_server_first(srv, sec, &sf) == SCRAM_OK
        && (cfin = scram_client_final(cli, sf, strlen(sf))) != NULL
        && scram_server_client_final(srv, cfin, strlen(cfin), &sfin) == SCRAM_OK
        && scram_client_verify(cli, sfin, strlen(sfin)))
        okay = 1;
    free(cf);
    free(sf);
    free(cfin);
    free(sfin);
    scram_server_free(srv);
    scram_client_free(cli);
    return okay;
}

int main(void)
{
    const char *db = test_db();
    test_loop_init();
    migrate_or_bail(db);
    storage *s = ready_storage(db);
    PGconn *pg = db_connect(db);
    char domain[128];
    snprintf(domain, sizeof domain, "%s", test_domain("accounts"));

    is_int(STATUS_OF(account_create(s, domain, "alice", "wonderland", 4096, 0, on_status, res_)), STORAGE_OK,
           "create alice");
    is_int(STATUS_OF(account_create(s, domain, "alice", "other", 4096, 0, on_status, res_)), STORAGE_CONFLICT,
           "creating alice again is a conflict");
    is_int(STATUS_OF(account_exists(s, domain, "alice", on_status, res_)), STORAGE_OK, "alice exists");
    is_int(STATUS_OF(account_exists(s, domain, "bob", on_status, res_)), STORAGE_NOT_FOUND, "bob does not exist");
    is_int(STATUS_OF(account_exists(s, "other.test", "alice", on_status, res_)), STORAGE_NOT_FOUND,
           "alice of another domain does not exist");

    creds_res c;
    is_int(get_creds(s, domain, "alice", &c), STORAGE_OK, "alice's credentials");
    is_int(c.creds.sha1.iterations, 4096, "SHA-1 iterations stored");
    is_int(c.creds.sha256.iterations, 4096, "SHA-256 iterations stored");
    is_int(c.creds.sha1.alg, HASH_SHA1, "SHA-1 secret");
    is_int(c.creds.sha256.alg, HASH_SHA256, "SHA-256 secret");
    ok(c.creds.sha1.salt_len == 16 && c.creds.sha256.salt_len == 16, "16-byte salts");
    ok(memcmp(c.creds.sha1.salt, c.creds.sha256.salt, 16) != 0, "a fresh salt for each secret");
    ok(!c.has_plaintext, "no plaintext password unless asked");
    ok(account_check_password(&c.creds, "wonderland"), "check_password accepts the right password");
    ok(!account_check_password(&c.creds, "Wonderland"), "check_password refuses a wrong password");
    ok(!account_check_password(&c.creds, ""), "check_password refuses an empty password");
    ok(scram_round_trip(&c.creds.sha256, "alice", "wonderland"), "SCRAM-SHA-256 exchange against the stored secret");
    ok(scram_round_trip(&c.creds.sha1, "alice", "wonderland"), "SCRAM-SHA-1 exchange against the stored secret");
    ok(!scram_round_trip(&c.creds.sha256, "alice", "wrong"), "SCRAM with a wrong password fails");
    {
        account_credentials only1 = c.creds;
        memset(&only1.sha256, 0, sizeof only1.sha256);
        ok(account_check_password(&only1, "wonderland"), "check_password with only a SHA-1 secret");
        ok(!account_check_password(&only1, "nope"), "and a wrong one with only SHA-1");
    }
    {
        const char *p[2] = {domain, "alice"};
        long long plain = db_value(pg, "SELECT count(*) FROM accounts WHERE domain=$1 AND username=$2 "
                                       "AND password IS NULL", 2, p);
        is_int(plain, 1, "the database holds no password for alice");
    }

    is_int(get_creds(s, domain, "nobody", &c), STORAGE_NOT_FOUND, "credentials of an unknown user: not found");

    is_int(STATUS_OF(account_create(s, domain, "carol", "plain pass", 4096, 1, on_status, res_)), STORAGE_OK,
           "create carol with plaintext storage");
    is_int(get_creds(s, domain, "carol", &c), STORAGE_OK, "carol's credentials");
    ok(c.has_plaintext && strcmp(c.plaintext, "plain pass") == 0, "carol's plaintext password is kept");
    is_int(STATUS_OF(account_set_password(s, domain, "carol", "new pass", 4096, 0, on_status, res_)), STORAGE_OK,
           "carol's password changed without plaintext");
    is_int(get_creds(s, domain, "carol", &c), STORAGE_OK, "carol's new credentials");
    ok(!c.has_plaintext, "the plaintext is gone after a change without it");

    is_int(STATUS_OF(account_set_password(s, domain, "alice", "looking glass", 8192, 0, on_status, res_)), STORAGE_OK,
           "set alice's password");
    is_int(get_creds(s, domain, "alice", &c), STORAGE_OK, "alice's new credentials");
    ok(account_check_password(&c.creds, "looking glass"), "the new password is accepted");
    ok(!account_check_password(&c.creds, "wonderland"), "the old password is refused");
    is_int(c.creds.sha256.iterations, 8192, "the new iteration count is stored");
    is_int(STATUS_OF(account_set_password(s, domain, "nobody", "x", 4096, 0, on_status, res_)), STORAGE_NOT_FOUND,
           "set_password of an unknown user: not found");

    is_int(STATUS_OF(account_create(s, domain, "dave", "", 4096, 0, on_status, res_)), STORAGE_ERROR,
           "an empty password is refused");
    is_int(STATUS_OF(account_exists(s, domain, "dave", on_status, res_)), STORAGE_NOT_FOUND, "and dave was not created");

    /* The user's data goes with the account. */
    {
        const char *p[2] = {domain, "alice"};
        db_value(pg, "INSERT INTO roster_items (domain, username, contact, groups) VALUES ($1, $2, 'x@y', '{g}')", 2, p);
        db_value(pg, "INSERT INTO roster_versions (domain, username, version) VALUES ($1, $2, 3)", 2, p);
        db_value(pg, "INSERT INTO offline_messages (domain, username, stanza) VALUES ($1, $2, '<message/>')", 2, p);
        long long before = db_value(pg, "SELECT (SELECT count(*) FROM roster_items WHERE domain=$1 AND username=$2)"
                                        " + (SELECT count(*) FROM roster_versions WHERE domain=$1 AND username=$2)"
                                        " + (SELECT count(*) FROM offline_messages WHERE domain=$1 AND username=$2)",
                                    2, p);
        is_int(before, 3, "alice has a roster item, a roster version and an offline message");
        is_int(STATUS_OF(account_delete(s, domain, "alice", on_status, res_)), STORAGE_OK, "delete alice");
        long long after = db_value(pg, "SELECT (SELECT count(*) FROM roster_items WHERE domain=$1 AND username=$2)"
                                       " + (SELECT count(*) FROM roster_versions WHERE domain=$1 AND username=$2)"
                                       " + (SELECT count(*) FROM offline_messages WHERE domain=$1 AND username=$2)",
                                   2, p);
        is_int(after, 0, "her roster and offline messages are gone with her");
    }
    is_int(STATUS_OF(account_delete(s, domain, "alice", on_status, res_)), STORAGE_NOT_FOUND,
           "deleting alice again: not found");
    is_int(STATUS_OF(account_exists(s, domain, "alice", on_status, res_)), STORAGE_NOT_FOUND, "alice is gone");
    is_int(get_creds(s, domain, "alice", &c), STORAGE_NOT_FOUND, "and so are her credentials");
    is_int(STATUS_OF(account_exists(s, domain, "carol", on_status, res_)), STORAGE_OK, "carol is still there");

    is_int(sync_callbacks, 0, "no callback ran inside the call that made its request");

    free_storage(s);
    PQfinish(pg);
    test_loop_done();
    return tap_done();
}
