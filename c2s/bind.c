/* Resource binding (RFC 6120 §7) and the legacy session iq (RFC 3921 §3):
 * the full JID is chosen here (Resourceprep'd, or generated), the sm is
 * asked to start the session (docs/sessions.md §1), and the client's iq is
 * answered only when the sm has said 'started'. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "c2s/c2s.h"
#include "common/crypto.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/xml_write.h"

#define GENERATED_RESOURCE_LEN 12

static void session_failed(client *cl, const char *condition, const char *text)
{
    pending_op *op = cl->op;
    c2s *srv = cl->srv;
    log_notice("c2s %s: client %" PRIu64 " (%s): session not started: %s", srv->name, cl->id, client_label(cl),
               condition);
    client_iq_error(cl, op ? op->iq_id : NULL, condition, text);
    if (cl->sess) {
        sm_session_free(srv, cl->sess);
        cl->sess = NULL;
    }
    if (op && op->legacy_auth) {
        /* jabber:iq:auth failed as a whole: not authenticated. */
        cl->authed = 0;
        free(cl->user);
        cl->user = NULL;
        cl->state = CL_NEGOTIATING;
    } else {
        cl->state = CL_AUTHED;
    }
    pending_op_free(op);
    client_op_end(cl);
}

void bind_start_session(client *cl, pending_op *op, const char *resource)
{
    c2s *srv = cl->srv;
    (void)op;
    if (!session_sm_online(srv, cl->host_index)) {
        session_failed(cl, "service-unavailable", "the session manager is not available; try again later");
        return;
    }
    char generated[GENERATED_RESOURCE_LEN + 1];
    if (!resource || !*resource) {
        random_token(generated, GENERATED_RESOURCE_LEN);
        resource = generated;
    }
    jid j = JID_INIT;
    if (jid_set(&j, cl->user, cl->domain, resource) < 0) {
        session_failed(cl, "bad-request", "the resource is not valid (Resourceprep)");
        return;
    }
    cl->sess = calloc(1, sizeof *cl->sess);
    if (!cl->sess) abort();
    cl->sess->full_jid = strdup(j.full);
    jid_free(&j);
    if (!cl->sess->full_jid) abort();
    cl->state = CL_BINDING;
    cl->op_deadline = uv_now(srv->loop) + srv->lim.session_start_timeout_ms;
    if (session_send_start(cl, cl->sess->full_jid) != 0) {
        session_failed(cl, "service-unavailable", "the server is not connected; try again later");
        return;
    }
    log_debug("c2s %s: client %" PRIu64 ": asked the sm to start %s", srv->name, cl->id, cl->sess->full_jid);
}

void bind_session_answer(client *cl, uint64_t sm_id, const char *condition)
{
    c2s *srv = cl->srv;
    if (condition || !sm_id) {
        session_failed(cl, condition ? condition : "internal-server-error", NULL);
        return;
    }
    pending_op *op = cl->op;
    cl->sess->sm_id = sm_id;
    cl->state = CL_SESSION;
    log_notice("c2s %s: client %" PRIu64 " (%s): session %" PRIu64 " started as %s", srv->name, cl->id,
               cl->ipe ? cl->ipe->ip : "?", sm_id, cl->sess->full_jid);
    if (op && op->legacy_auth) {
        client_iq_result(cl, op->iq_id, NULL);
    } else {
        buf x = BUF_INIT;
        buf_append_str(&x, "<bind xmlns='" NS_XMPP_BIND "'><jid>");
        xml_escape_text(&x, cl->sess->full_jid, strlen(cl->sess->full_jid));
        buf_append_str(&x, "</jid></bind>");
        client_iq_result(cl, op ? op->iq_id : NULL, buf_cstr(&x));
        buf_free(&x);
    }
    if (cl->c) conn_set_timeout(cl->c, srv->lim.idle_timeout_ms);
    pending_op_free(op);
    client_op_end(cl);
}

void bind_handle(client *cl, stanza *st)
{
    xnode *iq = st->root;
    const char *id = xnode_attr(iq, "id");
    const char *type = xnode_attr(iq, "type");
    if (!cl->authed) {
        stanza_free(st);
        client_stream_error(cl, "not-authorized", "authenticate before binding a resource");
        return;
    }
    if (strcmp(type, "set") != 0) {
        client_iq_error(cl, id, "bad-request", "resource binding is an iq set");
        stanza_free(st);
        return;
    }
    if (cl->state != CL_AUTHED) {
        client_iq_error(cl, id, "not-allowed", "a resource is already bound on this stream");
        stanza_free(st);
        return;
    }
    xnode *b = xnode_first_element(iq);
    const char *resource = xnode_child_text(b, "resource", NS_XMPP_BIND);
    pending_op *op = client_op_begin(cl, OP_SESSION_START, id);
    if (resource && *resource) {
        char prepped[JID_PART_MAX + 1];
        if (jid_resourceprep(resource, prepped, sizeof prepped) <= 0) {
            stanza_free(st);
            session_failed(cl, "bad-request", "the resource is not valid (Resourceprep)");
            return;
        }
        op->resource = strdup(prepped);
    }
    stanza_free(st);
    bind_start_session(cl, op, op->resource);
}

void session_iq_handle(client *cl, stanza *st)
{
    const char *id = xnode_attr(st->root, "id");
    if (!cl->authed) {
        stanza_free(st);
        client_stream_error(cl, "not-authorized", "authenticate first");
        return;
    }
    if (cl->state == CL_SESSION) client_iq_result(cl, id, NULL);
    else client_iq_error(cl, id, "unexpected-request", "bind a resource first");
    stanza_free(st);
}
