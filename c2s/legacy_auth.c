/* Non-SASL authentication, jabber:iq:auth (XEP-0078): the only way in on a
 * stream without version (pre-XMPP-1.0 clients), and offered on 1.0 streams
 * too (feature http://jabber.org/features/iq-auth). Plaintext <password/>
 * needs an encrypted stream unless auth/plain-without-tls; <digest/> (hex
 * SHA-1 of stream id + password) needs the plaintext password stored
 * (auth/store-plaintext). Success binds the given resource at the sm. */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "c2s/c2s.h"
#include "common/crypto.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/xml_write.h"

static int plain_allowed(const client *cl)
{
    return cl->tls || cl->srv->plain_without_tls;
}

static void answer_get(client *cl, const char *id, const xnode *query)
{
    c2s *srv = cl->srv;
    const char *user = xnode_child_text(query, "username", NS_IQ_AUTH);
    buf q = BUF_INIT;
    buf_append_str(&q, "<query xmlns='" NS_IQ_AUTH "'>");
    if (user && *user) {
        buf_append_str(&q, "<username>");
        xml_escape_text(&q, user, strlen(user));
        buf_append_str(&q, "</username>");
    } else {
        buf_append_str(&q, "<username/>");
    }
    if (plain_allowed(cl)) buf_append_str(&q, "<password/>");
    if (srv->store_plaintext) buf_append_str(&q, "<digest/>");
    buf_append_str(&q, "<resource/></query>");
    client_iq_result(cl, id, buf_cstr(&q));
    buf_free(&q);
}

static int digest_matches(const client *cl, const char *plaintext, const char *digest)
{
    if (!plaintext || strlen(digest) != 2 * SHA1_LEN) return 0;
    buf in = BUF_INIT;
    buf_append_str(&in, cl->stream_id);
    buf_append_str(&in, plaintext);
    char want[2 * SHA1_LEN + 1];
    sha1_hex(in.data, in.len, want);
    crypto_wipe(in.data, in.len);
    buf_free(&in);
    char given[2 * SHA1_LEN + 1];
    for (size_t i = 0; i < 2 * SHA1_LEN; i++) given[i] = (char)tolower((unsigned char)digest[i]);
    given[2 * SHA1_LEN] = 0;
    return crypto_memeq(want, given, 2 * SHA1_LEN);
}

static void on_creds(pending_op *op, storage_status st, const c2s_creds *creds)
{
    client *cl = op->cl;
    if (!cl) {
        pending_op_free(op);
        return;
    }
    c2s *srv = cl->srv;
    int ok = 0;
    if (st == STORAGE_UNAVAILABLE || st == STORAGE_ERROR) {
        log_warn("c2s %s: client %" PRIu64 ": credentials for %s unavailable (database)", srv->name, cl->id,
                 op->username);
        client_iq_error(cl, op->iq_id, "internal-server-error", "the account database is not available");
    } else {
        if (st == STORAGE_OK && creds) {
            if (op->password) ok = accounts_verify_password(srv, cl->domain, op->username, creds, op->password);
            else if (op->digest) ok = digest_matches(cl, creds->plaintext, op->digest);
        }
        if (!ok) {
            log_notice("c2s %s: client %" PRIu64 " (%s): jabber:iq:auth failed for %s", srv->name, cl->id,
                       client_label(cl), op->username);
            auth_failed(cl, op->username);
            client_iq_error(cl, op->iq_id, "not-authorized", NULL);
        }
    }
    if (!ok) {
        pending_op_free(op);
        client_op_end(cl);
        return;
    }
    log_notice("c2s %s: client %" PRIu64 " (%s) authenticated as %s@%s (jabber:iq:auth, %s)", srv->name, cl->id,
               client_label(cl), op->username, cl->domain, op->password ? "password" : "digest");
    auth_succeeded(cl, op->username);
    cl->user = op->username;
    op->username = NULL;
    cl->authed = 1;
    if (op->password) {
        crypto_wipe(op->password, strlen(op->password));
        free(op->password);
        op->password = NULL;
    }
    op->kind = OP_SESSION_START;
    op->legacy_auth = 1;
    bind_start_session(cl, op, op->resource);
}

void legacy_auth_handle(client *cl, stanza *st)
{
    c2s *srv = cl->srv;
    xnode *iq = st->root;
    const char *id = xnode_attr(iq, "id");
    const char *type = xnode_attr(iq, "type");
    xnode *query = xnode_first_element(iq);
    if (!strcmp(type, "get")) {
        answer_get(cl, id, query);
        stanza_free(st);
        return;
    }
    const char *user = xnode_child_text(query, "username", NS_IQ_AUTH);
    const char *resource = xnode_child_text(query, "resource", NS_IQ_AUTH);
    const char *password = xnode_child_text(query, "password", NS_IQ_AUTH);
    const char *digest = xnode_child_text(query, "digest", NS_IQ_AUTH);
    if (password && !*password) password = NULL;
    if (digest && !*digest) digest = NULL;
    char node[JID_PART_MAX + 1], res[JID_PART_MAX + 1];
    if (!user || !*user || !resource || !*resource || (!password && !digest)) {
        client_iq_error(cl, id, "not-acceptable", "username, resource and password or digest are required");
        stanza_free(st);
        return;
    }
    if (jid_nodeprep(user, node, sizeof node) <= 0) {
        auth_failed(cl, NULL);
        client_iq_error(cl, id, "not-authorized", NULL);
        stanza_free(st);
        return;
    }
    if (jid_resourceprep(resource, res, sizeof res) <= 0) {
        client_iq_error(cl, id, "not-acceptable", "the resource is not valid");
        stanza_free(st);
        return;
    }
    if (password && !digest && !plain_allowed(cl)) {
        client_iq_error(cl, id, "not-acceptable", "plaintext passwords need an encrypted stream");
        stanza_free(st);
        return;
    }
    if (digest && !password && !srv->store_plaintext) {
        client_iq_error(cl, id, "not-acceptable", "digest authentication is not available here");
        stanza_free(st);
        return;
    }
    if (auth_throttled(cl, node)) {
        client_iq_error(cl, id, "resource-constraint", "too many failed attempts; try again later");
        stanza_free(st);
        return;
    }
    pending_op *op = client_op_begin(cl, OP_LEGACY_CREDS, id);
    op->username = strdup(node);
    op->resource = strdup(res);
    if (password && plain_allowed(cl)) op->password = strdup(password);
    else op->digest = strdup(digest);
    if (password) crypto_wipe((char *)password, strlen(password));
    stanza_free(st);
    accounts_get(srv, cl->domain, node, op, on_creds);
}
