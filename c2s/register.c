/* In-band registration, jabber:iq:register (XEP-0077): the form, creating
 * an account before authentication (register/enabled, at most
 * register/per-ip-per-minute per address), and after authentication the
 * password change and the removal of the account (<remove/>). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "c2s/c2s.h"
#include "common/crypto.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/xml_write.h"

static void answer_form(client *cl, const char *id)
{
    if (cl->authed) {
        buf q = BUF_INIT;
        buf_append_str(&q, "<query xmlns='" NS_IQ_REGISTER "'><registered/><username>");
        xml_escape_text(&q, cl->user, strlen(cl->user));
        buf_append_str(&q, "</username><password/></query>");
        client_iq_result(cl, id, buf_cstr(&q));
        buf_free(&q);
        return;
    }
    client_iq_result(cl, id,
                     "<query xmlns='" NS_IQ_REGISTER "'><instructions>Choose a user name and a password to "
                     "register an account on this server.</instructions><username/><password/></query>");
}

static const char *status_condition(storage_status st)
{
    switch (st) {
    case STORAGE_OK: return NULL;
    case STORAGE_CONFLICT: return "conflict";
    case STORAGE_NOT_FOUND: return "item-not-found";
    case STORAGE_QUOTA: return "resource-constraint";
    case STORAGE_UNAVAILABLE: return "resource-constraint";
    default: return "internal-server-error";
    }
}

static void on_created(pending_op *op, storage_status st)
{
    client *cl = op->cl;
    if (!cl) {
        pending_op_free(op);
        return;
    }
    c2s *srv = cl->srv;
    if (st == STORAGE_OK) {
        log_notice("c2s %s: client %" PRIu64 " (%s) registered %s@%s", srv->name, cl->id, client_label(cl),
                   op->username, cl->domain);
        register_count(cl);
        cl->registered_here = 1;
        client_iq_result(cl, op->iq_id, NULL);
    } else {
        log_notice("c2s %s: client %" PRIu64 " (%s): registration of %s@%s failed: %s", srv->name, cl->id,
                   client_label(cl), op->username, cl->domain, status_condition(st));
        client_iq_error(cl, op->iq_id, status_condition(st),
                        st == STORAGE_CONFLICT ? "that user name is taken"
                        : st == STORAGE_UNAVAILABLE ? "the account database is not available; try again later"
                                                    : NULL);
    }
    pending_op_free(op);
    client_op_end(cl);
}

static void on_password_set(pending_op *op, storage_status st)
{
    client *cl = op->cl;
    if (!cl) {
        pending_op_free(op);
        return;
    }
    if (st == STORAGE_OK) {
        log_notice("c2s %s: client %" PRIu64 " (%s) changed the password of %s@%s", cl->srv->name, cl->id,
                   client_label(cl), cl->user, cl->domain);
        client_iq_result(cl, op->iq_id, NULL);
    } else {
        client_iq_error(cl, op->iq_id, status_condition(st), NULL);
    }
    pending_op_free(op);
    client_op_end(cl);
}

static void on_removed(pending_op *op, storage_status st)
{
    client *cl = op->cl;
    if (!cl) {
        pending_op_free(op);
        return;
    }
    if (st == STORAGE_OK || st == STORAGE_NOT_FOUND) {
        log_notice("c2s %s: client %" PRIu64 " (%s) removed the account %s@%s", cl->srv->name, cl->id,
                   client_label(cl), cl->user, cl->domain);
        client_iq_result(cl, op->iq_id, NULL);
        session_account_removed(cl);
        pending_op_free(op);
        cl->op = NULL;
        /* XEP-0077 §3.2: the stream ends with <not-authorized/>. */
        client_stream_error(cl, "not-authorized", "the account was removed");
        return;
    }
    client_iq_error(cl, op->iq_id, status_condition(st), NULL);
    pending_op_free(op);
    client_op_end(cl);
}

static void handle_set_unauthed(client *cl, const char *id, const xnode *q)
{
    c2s *srv = cl->srv;
    if (!srv->register_enabled) {
        client_iq_error(cl, id, "not-allowed", "in-band registration is disabled");
        return;
    }
    if (xnode_child(q, "remove", NS_IQ_REGISTER)) {
        client_iq_error(cl, id, "registration-required", "authenticate before removing an account");
        return;
    }
    if (cl->registered_here) {
        client_iq_error(cl, id, "not-acceptable", "one registration per stream");
        return;
    }
    const char *user = xnode_child_text(q, "username", NS_IQ_REGISTER);
    const char *password = xnode_child_text(q, "password", NS_IQ_REGISTER);
    if (!user || !*user || !password || !*password) {
        client_iq_error(cl, id, "not-acceptable", "a user name and a non-empty password are required");
        return;
    }
    char node[JID_PART_MAX + 1];
    if (jid_nodeprep(user, node, sizeof node) <= 0) {
        client_iq_error(cl, id, "not-acceptable", "that user name is not valid in an address");
        return;
    }
    if (register_throttled(cl)) {
        log_warn("c2s %s: client %" PRIu64 " (%s): registration refused: too many from this address", srv->name,
                 cl->id, client_label(cl));
        client_iq_error(cl, id, "resource-constraint", "too many registrations from your address; try again later");
        return;
    }
    pending_op *op = client_op_begin(cl, OP_REGISTER, id);
    op->username = strdup(node);
    accounts_create(srv, cl->domain, node, password, op, on_created);
}

static void handle_set_authed(client *cl, const char *id, const xnode *q)
{
    c2s *srv = cl->srv;
    if (xnode_child(q, "remove", NS_IQ_REGISTER)) {
        if (xnode_count_elements(q) != 1) {
            client_iq_error(cl, id, "bad-request", "<remove/> must be alone");
            return;
        }
        pending_op *op = client_op_begin(cl, OP_REMOVE, id);
        accounts_delete(srv, cl->domain, cl->user, op, on_removed);
        return;
    }
    const char *user = xnode_child_text(q, "username", NS_IQ_REGISTER);
    const char *password = xnode_child_text(q, "password", NS_IQ_REGISTER);
    if (user && *user) {
        char node[JID_PART_MAX + 1];
        if (jid_nodeprep(user, node, sizeof node) <= 0 || strcmp(node, cl->user) != 0) {
            client_iq_error(cl, id, "not-allowed", "only your own password can be changed");
            return;
        }
    }
    if (!password || !*password) {
        client_iq_error(cl, id, "not-acceptable", "the new password must not be empty");
        return;
    }
    if (!cl->tls && !srv->plain_without_tls) {
        client_iq_error(cl, id, "not-authorized", "password changes need an encrypted stream");
        return;
    }
    pending_op *op = client_op_begin(cl, OP_PASSWORD, id);
    accounts_set_password(srv, cl->domain, cl->user, password, op, on_password_set);
}

void register_handle(client *cl, stanza *st)
{
    xnode *iq = st->root;
    const char *id = xnode_attr(iq, "id");
    const char *type = xnode_attr(iq, "type");
    xnode *q = xnode_first_element(iq);
    if (!cl->authed && !cl->srv->register_enabled) {
        client_iq_error(cl, id, "service-unavailable", NULL);
    } else if (!strcmp(type, "get")) {
        answer_form(cl, id);
    } else if (!cl->authed) {
        handle_set_unauthed(cl, id, q);
    } else {
        handle_set_authed(cl, id, q);
    }
    /* The password is in the stanza's arena: wipe it before freeing. */
    xnode *pw = q ? xnode_child(q, "password", NS_IQ_REGISTER) : NULL;
    for (xnode *n = pw ? pw->children : NULL; n; n = n->next)
        if (n->type == XNODE_TEXT && n->text) crypto_wipe((char *)n->text, n->text_len);
    if (st->raw) crypto_wipe(st->raw, st->raw_len);
    stanza_free(st);
}
