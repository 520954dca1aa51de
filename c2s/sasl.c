/* SASL (RFC 6120 §6): SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802/7677), their
 * -PLUS variants with tls-exporter channel binding (RFC 9266) over TLS 1.3,
 * and PLAIN over TLS (or without TLS if the operator allows it).
 *
 * -PLUS is offered only with auth/channel-binding: once it is offered, a
 * client that answers with the 'y' flag (it binds channels but believes the
 * server does not) must be refused (RFC 5802 §6), and some clients (slixmpp
 * 1.8 tries tls-unique, which TLS 1.3 lacks, then falls back with 'y')
 * could then not log in at all.
 *
 * Unknown users get a SCRAM exchange with made-up secrets (a salt derived
 * from a process key and the name, so repeated attempts see the same salt)
 * and fail at the proof, like a wrong password. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s/c2s.h"
#include "common/base64.h"
#include "common/crypto.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/scram.h"

#define SASL_MAX_MSG 8192

typedef enum { MECH_PLAIN, MECH_SCRAM_SHA1, MECH_SCRAM_SHA256, MECH_SCRAM_SHA1_PLUS, MECH_SCRAM_SHA256_PLUS } mech_id;

static const struct {
    const char *name;
    mech_id id;
} mechs[] = {
    {"SCRAM-SHA-256-PLUS", MECH_SCRAM_SHA256_PLUS},
    {"SCRAM-SHA-1-PLUS", MECH_SCRAM_SHA1_PLUS},
    {"SCRAM-SHA-256", MECH_SCRAM_SHA256},
    {"SCRAM-SHA-1", MECH_SCRAM_SHA1},
    {"PLAIN", MECH_PLAIN},
};

struct sasl_state {
    mech_id mech;
    scram_server *scram;
    char *user;          /* prepared node */
    int user_known;
    int step;            /* SCRAM: 1 = waiting for client-first, 2 = waiting for client-final */
};

void sasl_free(sasl_state *s)
{
    if (!s) return;
    scram_server_free(s->scram);
    free(s->user);
    free(s);
}

static const char *mech_name(mech_id m)
{
    for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++)
        if (mechs[i].id == m) return mechs[i].name;
    return "?";
}

static int is_plus(mech_id m)
{
    return m == MECH_SCRAM_SHA1_PLUS || m == MECH_SCRAM_SHA256_PLUS;
}

static int plus_available(const client *cl)
{
    unsigned char cb[32];
    return cl->srv->channel_binding && cl->c && conn_tls_ready(cl->c) && conn_tls_exporter(cl->c, cb) == 0;
}

static int mech_offered(const client *cl, mech_id m)
{
    if (m == MECH_PLAIN) return cl->tls || cl->srv->plain_without_tls;
    if (is_plus(m)) return plus_available(cl);
    return 1;
}

void sasl_features(client *cl, buf *out)
{
    buf_append_str(out, "<mechanisms xmlns='" NS_XMPP_SASL "'>");
    for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++) {
        if (!mech_offered(cl, mechs[i].id)) continue;
        buf_printf(out, "<mechanism>%s</mechanism>", mechs[i].name);
    }
    buf_append_str(out, "</mechanisms>");
    if (plus_available(cl))
        buf_append_str(out, "<sasl-channel-binding xmlns='" NS_SASL_CB "'><channel-binding type='tls-exporter'/>"
                            "</sasl-channel-binding>");
}

static void send_failure(client *cl, const char *condition, const char *text)
{
    buf *o = &cl->srv->out;
    buf_reset(o);
    buf_printf(o, "<failure xmlns='" NS_XMPP_SASL "'><%s/>", condition);
    if (text) buf_printf(o, "<text xml:lang='en'>%s</text>", text);
    buf_append_str(o, "</failure>");
    client_write(cl, o->data, o->len);
}

/* End the exchange with a failure; too many failures end the stream (RFC 6120 §6.4.5). */
static void fail(client *cl, const char *condition, const char *text, int counts)
{
    c2s *srv = cl->srv;
    log_notice("c2s %s: client %" PRIu64 " (%s): SASL failure %s%s%s%s%s", srv->name, cl->id, client_label(cl),
               condition, cl->sasl && cl->sasl->user ? " for " : "", cl->sasl && cl->sasl->user ? cl->sasl->user : "",
               text ? ": " : "", text ? text : "");
    if (counts) auth_failed(cl, cl->sasl ? cl->sasl->user : NULL);
    sasl_free(cl->sasl);
    cl->sasl = NULL;
    send_failure(cl, condition, text);
    if (counts && ++cl->sasl_failures > srv->lim.auth_retries) {
        cl->sasl_failures = 15;
        client_stream_error(cl, "policy-violation", "too many failed authentication attempts");
    }
}

static void succeed(client *cl, const char *additional, size_t addlen)
{
    c2s *srv = cl->srv;
    sasl_state *s = cl->sasl;
    buf *o = &srv->out;
    buf_reset(o);
    buf_append_str(o, "<success xmlns='" NS_XMPP_SASL "'");
    if (additional && addlen) {
        char *b64 = malloc(base64_encoded_len(addlen) + 1);
        if (!b64) abort();
        base64_encode(additional, addlen, b64);
        buf_append_str(o, ">");
        buf_append_str(o, b64);
        buf_append_str(o, "</success>");
        free(b64);
    } else {
        buf_append_str(o, "/>");
    }
    client_write(cl, o->data, o->len);
    cl->user = s->user;
    s->user = NULL;
    cl->authed = 1;
    auth_succeeded(cl, cl->user);
    log_notice("c2s %s: client %" PRIu64 " (%s) authenticated as %s@%s (%s)", srv->name, cl->id, client_label(cl),
               cl->user, cl->domain, mech_name(s->mech));
    sasl_free(s);
    cl->sasl = NULL;
    if (cl->c) conn_set_timeout(cl->c, srv->lim.idle_timeout_ms);
    client_restart_stream(cl);
}

/* Decode the text of <auth/> or <response/>. *present: 0 if no data at all.
 * Returns the decoded bytes (malloc'd, NUL-terminated) or NULL on bad base64. */
static char *decode_payload(const xnode *el, size_t *len, int *present)
{
    const char *t = xnode_text(el);
    *present = *t != 0;
    *len = 0;
    if (!*present || !strcmp(t, "=")) {
        char *e = calloc(1, 1);
        if (!e) abort();
        return e;
    }
    size_t tl = strlen(t);
    if (tl > SASL_MAX_MSG * 2) return NULL;
    unsigned char *out = malloc(tl / 4 * 3 + 4);
    if (!out) abort();
    long n = base64_decode(t, tl, out);
    if (n < 0) {
        free(out);
        return NULL;
    }
    out[n] = 0;
    *len = (size_t)n;
    return (char *)out;
}

static void send_challenge(client *cl, const char *data, size_t len)
{
    buf *o = &cl->srv->out;
    buf_reset(o);
    buf_append_str(o, "<challenge xmlns='" NS_XMPP_SASL "'>");
    if (len) {
        char *b64 = malloc(base64_encoded_len(len) + 1);
        if (!b64) abort();
        base64_encode(data, len, b64);
        buf_append_str(o, b64);
        free(b64);
    }
    buf_append_str(o, "</challenge>");
    client_write(cl, o->data, o->len);
}

/* authzid must be absent or the account's own bare JID. */
static int authzid_ok(const client *cl, const char *user, const char *authzid)
{
    if (!authzid || !*authzid) return 1;
    char *n = jid_normalize(authzid);
    char want[2 * JID_PART_MAX + 2];
    snprintf(want, sizeof want, "%s@%s", user, cl->domain);
    int ok = n && !strcmp(n, want);
    free(n);
    return ok;
}

/* ---- PLAIN ---- */

static void plain_creds(pending_op *op, storage_status st, const c2s_creds *creds)
{
    client *cl = op->cl;
    if (!cl) {
        pending_op_free(op);
        return;
    }
    if (st == STORAGE_UNAVAILABLE || st == STORAGE_ERROR) {
        log_warn("c2s %s: client %" PRIu64 ": credentials for %s unavailable (database)", cl->srv->name, cl->id,
                 op->username);
        fail(cl, "temporary-auth-failure", NULL, 0);
    } else if (st != STORAGE_OK ||
               !accounts_verify_password(cl->srv, cl->domain, op->username, creds, op->password)) {
        fail(cl, "not-authorized", NULL, 1);
    } else {
        succeed(cl, NULL, 0);
    }
    pending_op_free(op);
    client_op_end(cl);
}

static void start_plain(client *cl, const char *msg, size_t len)
{
    /* authzid NUL authcid NUL passwd */
    const char *authzid = msg;
    const char *p1 = memchr(msg, 0, len);
    const char *p2 = p1 ? memchr(p1 + 1, 0, len - (size_t)(p1 + 1 - msg)) : NULL;
    if (!p1 || !p2) {
        fail(cl, "malformed-request", NULL, 0);
        return;
    }
    const char *authcid = p1 + 1;
    const char *pass = p2 + 1;
    size_t passlen = len - (size_t)(pass - msg);
    if (memchr(pass, 0, passlen) || !*authcid || !passlen) {
        fail(cl, "malformed-request", NULL, 0);
        return;
    }
    char user[JID_PART_MAX + 1];
    char *prepped = scram_saslprep(authcid);
    int ok = prepped && jid_nodeprep(prepped, user, sizeof user) > 0;
    free(prepped);
    cl->sasl->user = strdup(ok ? user : authcid);
    if (!ok) {
        fail(cl, "not-authorized", NULL, 1);
        return;
    }
    if (!authzid_ok(cl, user, authzid)) {
        fail(cl, "invalid-authzid", NULL, 0);
        return;
    }
    if (auth_throttled(cl, user)) {
        fail(cl, "temporary-auth-failure", "too many failed attempts; try again later", 0);
        return;
    }
    pending_op *op = client_op_begin(cl, OP_SASL_CREDS, NULL);
    op->username = strdup(user);
    op->password = strndup(pass, passlen);
    accounts_get(cl->srv, cl->domain, user, op, plain_creds);
}

/* ---- SCRAM ---- */

static void fake_secrets(c2s *srv, const client *cl, hash_alg alg, const char *user, scram_secrets *sec)
{
    char key[2 * JID_PART_MAX + 2];
    int n = snprintf(key, sizeof key, "%s@%s", user, cl->domain);
    unsigned char mac[HASH_MAX_LEN];
    hmac(HASH_SHA256, srv->fake_salt_key, sizeof srv->fake_salt_key, key, (size_t)n, mac);
    memset(sec, 0, sizeof *sec);
    sec->alg = alg;
    sec->iterations = srv->scram_iterations;
    sec->salt_len = 16;
    memcpy(sec->salt, mac, 16);
    random_bytes(sec->stored_key, sizeof sec->stored_key);
    random_bytes(sec->server_key, sizeof sec->server_key);
}

static void scram_creds(pending_op *op, storage_status st, const c2s_creds *creds)
{
    client *cl = op->cl;
    if (!cl) {
        pending_op_free(op);
        return;
    }
    sasl_state *s = cl->sasl;
    if (!s) {
        pending_op_free(op);
        client_op_end(cl);
        return;
    }
    hash_alg alg = (s->mech == MECH_SCRAM_SHA1 || s->mech == MECH_SCRAM_SHA1_PLUS) ? HASH_SHA1 : HASH_SHA256;
    scram_secrets sec;
    if (st == STORAGE_UNAVAILABLE || st == STORAGE_ERROR) {
        log_warn("c2s %s: client %" PRIu64 ": credentials for %s unavailable (database)", cl->srv->name, cl->id,
                 s->user);
        fail(cl, "temporary-auth-failure", NULL, 0);
        pending_op_free(op);
        client_op_end(cl);
        return;
    }
    const scram_secrets *real = NULL;
    if (st == STORAGE_OK && creds) real = alg == HASH_SHA1 ? creds->sha1 : creds->sha256;
    if (real && real->salt_len > 0) {
        sec = *real;
        s->user_known = 1;
    } else {
        fake_secrets(cl->srv, cl, alg, s->user, &sec);
        s->user_known = 0;
    }
    char *first = NULL;
    scram_result r = scram_server_first(s->scram, &sec, &first);
    crypto_wipe(&sec, sizeof sec);
    if (r != SCRAM_OK || !first) {
        free(first);
        fail(cl, "temporary-auth-failure", NULL, 0);
    } else {
        s->step = 2;
        send_challenge(cl, first, strlen(first));
        free(first);
    }
    pending_op_free(op);
    client_op_end(cl);
}

static void scram_client_first_msg(client *cl, const char *msg, size_t len)
{
    sasl_state *s = cl->sasl;
    const char *username = NULL, *authzid = NULL;
    scram_result r = scram_server_client_first(s->scram, msg, len, plus_available(cl), &username, &authzid);
    if (r == SCRAM_ERR_INVALID_AUTHZID) {
        fail(cl, "invalid-authzid", NULL, 0);
        return;
    }
    if (r == SCRAM_ERR_CHANNEL_BINDING) {
        fail(cl, "not-authorized", "channel binding mismatch", 1);
        return;
    }
    if (r != SCRAM_OK || !username) {
        fail(cl, "malformed-request", NULL, 0);
        return;
    }
    char user[JID_PART_MAX + 1];
    if (jid_nodeprep(username, user, sizeof user) <= 0) {
        s->user = strdup(username);
        fail(cl, "not-authorized", NULL, 1);
        return;
    }
    s->user = strdup(user);
    if (!authzid_ok(cl, user, authzid)) {
        fail(cl, "invalid-authzid", NULL, 0);
        return;
    }
    if (auth_throttled(cl, user)) {
        fail(cl, "temporary-auth-failure", "too many failed attempts; try again later", 0);
        return;
    }
    pending_op *op = client_op_begin(cl, OP_SASL_CREDS, NULL);
    accounts_get(cl->srv, cl->domain, user, op, scram_creds);
}

static void scram_client_final_msg(client *cl, const char *msg, size_t len)
{
    sasl_state *s = cl->sasl;
    char *final = NULL;
    scram_result r = scram_server_client_final(s->scram, msg, len, &final);
    if (r == SCRAM_OK && s->user_known) {
        succeed(cl, final, strlen(final));
    } else if (r == SCRAM_ERR_MALFORMED) {
        fail(cl, "malformed-request", NULL, 0);
    } else {
        fail(cl, "not-authorized", NULL, 1);
    }
    free(final);
}

static void start_scram(client *cl, mech_id m, const char *msg, size_t len, int present)
{
    hash_alg alg = (m == MECH_SCRAM_SHA1 || m == MECH_SCRAM_SHA1_PLUS) ? HASH_SHA1 : HASH_SHA256;
    unsigned char cb[32];
    int plus = is_plus(m);
    if (plus && conn_tls_exporter(cl->c, cb) != 0) {
        fail(cl, "invalid-mechanism", NULL, 0);
        return;
    }
    cl->sasl->scram = scram_server_new(alg, plus ? "tls-exporter" : NULL, plus ? cb : NULL, plus ? 32 : 0, NULL);
    crypto_wipe(cb, sizeof cb);
    if (!cl->sasl->scram) {
        fail(cl, "temporary-auth-failure", NULL, 0);
        return;
    }
    cl->sasl->step = 1;
    if (!present) {
        send_challenge(cl, NULL, 0);   /* no initial response: ask for it */
        return;
    }
    scram_client_first_msg(cl, msg, len);
}

static void handle_auth(client *cl, const xnode *el)
{
    c2s *srv = cl->srv;
    const char *name = xnode_attr(el, "mechanism");
    if (!cl->tls && srv->tls_required) {
        send_failure(cl, "encryption-required", "STARTTLS first");
        return;
    }
    int found = -1;
    for (size_t i = 0; name && i < sizeof mechs / sizeof mechs[0]; i++)
        if (!strcmp(mechs[i].name, name)) found = (int)i;
    if (found < 0 || (is_plus(mechs[found].id) && !mech_offered(cl, mechs[found].id))) {
        send_failure(cl, "invalid-mechanism", NULL);
        return;
    }
    mech_id m = mechs[found].id;
    if (m == MECH_PLAIN && !mech_offered(cl, m)) {
        send_failure(cl, "encryption-required", "PLAIN needs an encrypted stream");
        return;
    }
    if (auth_throttled(cl, NULL)) {
        send_failure(cl, "temporary-auth-failure", "too many failed attempts; try again later");
        return;
    }
    size_t len;
    int present;
    char *msg = decode_payload(el, &len, &present);
    if (!msg) {
        send_failure(cl, "incorrect-encoding", NULL);
        return;
    }
    sasl_free(cl->sasl);
    cl->sasl = calloc(1, sizeof *cl->sasl);
    if (!cl->sasl) abort();
    cl->sasl->mech = m;
    if (m == MECH_PLAIN) {
        if (!present) {
            send_challenge(cl, NULL, 0);
            cl->sasl->step = 1;
        } else {
            start_plain(cl, msg, len);
        }
    } else {
        start_scram(cl, m, msg, len, present);
    }
    crypto_wipe(msg, len);
    free(msg);
}

static void handle_response(client *cl, const xnode *el)
{
    sasl_state *s = cl->sasl;
    if (!s) {
        send_failure(cl, "malformed-request", "no authentication in progress");
        return;
    }
    size_t len;
    int present;
    char *msg = decode_payload(el, &len, &present);
    if (!msg) {
        fail(cl, "incorrect-encoding", NULL, 0);
        return;
    }
    if (s->mech == MECH_PLAIN) start_plain(cl, msg, len);
    else if (s->step == 1) scram_client_first_msg(cl, msg, len);
    else if (s->step == 2) scram_client_final_msg(cl, msg, len);
    else fail(cl, "malformed-request", NULL, 0);
    crypto_wipe(msg, len);
    free(msg);
}

void sasl_handle(client *cl, stanza *st)
{
    xnode *el = st->root;
    if (cl->state != CL_NEGOTIATING || cl->legacy || cl->authed) {
        stanza_free(st);
        client_stream_error(cl, cl->authed ? "policy-violation" : "unsupported-stanza-type",
                            cl->authed ? "already authenticated" : "SASL is not offered on this stream");
        return;
    }
    if (!strcmp(el->name, "auth")) {
        handle_auth(cl, el);
    } else if (!strcmp(el->name, "response")) {
        handle_response(cl, el);
    } else if (!strcmp(el->name, "abort")) {
        sasl_free(cl->sasl);
        cl->sasl = NULL;
        send_failure(cl, "aborted", NULL);
    } else {
        stanza_free(st);
        client_stream_error(cl, "unsupported-stanza-type", "unexpected element in the SASL namespace");
        return;
    }
    stanza_free(st);
}
