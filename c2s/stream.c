/* The client's XML stream (RFC 6120 §4): header and answer, features,
 * stream errors and closing, and the dispatch of every top-level element
 * to the part of c2s that handles it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s/c2s.h"
#include "common/crypto.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/stanza_error.h"
#include "common/xml_write.h"

static const conn_handler client_conn_handler;
static xs_action on_stream_open(void *ud, stanza *header);
static xs_action on_element(void *ud, stanza *st);
static void on_stream_close(void *ud);
static const xml_stream_handler client_xml_handler = {on_stream_open, on_element, on_stream_close};
static void client_schedule(client *cl);
static void wake_remove(client *cl);

#define CLOSE_FLUSH_MS 5000
#define MAX_BACKLOG 64

const char *client_label(const client *cl)
{
    if (cl->sess && cl->sess->full_jid) return cl->sess->full_jid;
    if (cl->ipe) return cl->ipe->ip;
    return cl->c ? conn_peer_ip(cl->c) : "?";
}

/* ---- writing ---- */

void client_write(client *cl, const char *data, size_t len)
{
    if (!cl->c || cl->state == CL_CLOSING) return;
    conn_write(cl->c, data, len);
    cl->last_write = uv_now(cl->srv->loop);
}

void client_write_str(client *cl, const char *s)
{
    client_write(cl, s, strlen(s));
}

void client_write_element(client *cl, const xnode *el)
{
    buf *o = &cl->srv->out;
    buf_reset(o);
    xml_write(o, el, NS_CLIENT);
    client_write(cl, o->data, o->len);
}

static void send_header(client *cl, const char *lang)
{
    c2s *srv = cl->srv;
    buf *o = &srv->out;
    const char *from = cl->domain ? cl->domain : srv->hosts[0];
    buf_reset(o);
    buf_append_str(o, "<?xml version='1.0'?><stream:stream xmlns='" NS_CLIENT "' xmlns:stream='" NS_STREAMS
                      "' id='");
    buf_append_str(o, cl->stream_id);
    buf_append_str(o, "' from='");
    xml_escape_attr(o, from, strlen(from));
    buf_append_str(o, "'");
    if (!cl->legacy) buf_append_str(o, " version='1.0'");
    buf_append_str(o, " xml:lang='");
    xml_escape_attr(o, lang, strlen(lang));
    buf_append_str(o, "'>");
    cl->header_sent = 1;
    client_write(cl, o->data, o->len);
}

static void send_features(client *cl)
{
    c2s *srv = cl->srv;
    buf f = BUF_INIT;
    buf_append_str(&f, "<stream:features>");
    if (!cl->tls && srv->tls_ctx && !cl->authed) {
        buf_append_str(&f, "<starttls xmlns='" NS_XMPP_TLS "'>");
        if (srv->tls_required) buf_append_str(&f, "<required/>");
        buf_append_str(&f, "</starttls>");
    }
    if (!cl->authed && (cl->tls || !srv->tls_required)) {
        sasl_features(cl, &f);
        buf_append_str(&f, "<auth xmlns='" NS_FEATURE_IQ_AUTH "'/>");
        if (srv->register_enabled) buf_append_str(&f, "<register xmlns='" NS_FEATURE_IQ_REGISTER "'/>");
    }
    if (cl->authed) {
        buf_append_str(&f, "<bind xmlns='" NS_XMPP_BIND "'/>");
        buf_append_str(&f, "<session xmlns='" NS_XMPP_SESSION "'><optional/></session>");
        sm_features(cl, &f);
        csi_features(cl, &f);
    }
    buf_append_str(&f, "</stream:features>");
    client_write(cl, f.data, f.len);
    buf_free(&f);
}

void client_stream_error(client *cl, const char *condition, const char *text)
{
    if (cl->state == CL_CLOSING) return;
    if (!cl->c) {
        /* Detached (stream management): nobody to tell. */
        cl->state = CL_CLOSING;
        client_free(cl);
        return;
    }
    log_notice("c2s %s: client %" PRIu64 " (%s): stream error %s%s%s", cl->srv->name, cl->id, client_label(cl),
               condition, text ? ": " : "", text ? text : "");
    if (!cl->header_sent) send_header(cl, "en");
    buf *o = &cl->srv->out;
    buf_reset(o);
    stream_error_write(o, condition, text);
    buf_append_str(o, "</stream:stream>");
    client_write(cl, o->data, o->len);
    cl->state = CL_CLOSING;
    conn_set_timeout(cl->c, CLOSE_FLUSH_MS);
    conn_close(cl->c);
}

void client_close(client *cl)
{
    if (cl->state == CL_CLOSING) return;
    if (!cl->c) {
        cl->state = CL_CLOSING;
        client_free(cl);
        return;
    }
    if (cl->header_sent) client_write_str(cl, "</stream:stream>");
    cl->state = CL_CLOSING;
    conn_set_timeout(cl->c, CLOSE_FLUSH_MS);
    conn_close(cl->c);
}

void client_iq_error(client *cl, const char *id, const char *condition, const char *text)
{
    const stanza_error_info *info = stanza_error_lookup(condition);
    if (!info) info = stanza_error_lookup("undefined-condition");
    buf *o = &cl->srv->out;
    buf_reset(o);
    buf_append_str(o, "<iq type='error' id='");
    if (id) xml_escape_attr(o, id, strlen(id));
    buf_printf(o, "'><error type='%s' code='%d'><%s xmlns='" NS_XMPP_STANZAS "'/>", info->type, info->code,
               info->condition);
    if (text) {
        buf_append_str(o, "<text xmlns='" NS_XMPP_STANZAS "'>");
        xml_escape_text(o, text, strlen(text));
        buf_append_str(o, "</text>");
    }
    buf_append_str(o, "</error></iq>");
    client_write(cl, o->data, o->len);
}

void client_iq_result(client *cl, const char *id, const char *child_xml)
{
    buf *o = &cl->srv->out;
    buf_reset(o);
    buf_append_str(o, "<iq type='result' id='");
    if (id) xml_escape_attr(o, id, strlen(id));
    if (child_xml) {
        buf_append_str(o, "'>");
        buf_append_str(o, child_xml);
        buf_append_str(o, "</iq>");
    } else {
        buf_append_str(o, "'/>");
    }
    client_write(cl, o->data, o->len);
}

/* ---- life cycle ---- */

client *client_new(c2s *srv, conn *c, int direct_tls)
{
    client *cl = calloc(1, sizeof *cl);
    if (!cl) abort();
    cl->srv = srv;
    cl->c = c;
    cl->id = ++srv->next_client_id;
    cl->direct_tls = direct_tls ? 1 : 0;
    cl->host_index = -1;
    random_token(cl->stream_id, STREAM_ID_LEN);
    xml_limits xl;
    xml_limits_default(&xl);
    xl.max_stanza_bytes = srv->lim.max_stanza_bytes;
    cl->xs = xml_stream_new(&xl, &client_xml_handler, cl);
    cl->tokens = (int64_t)srv->lim.rate_burst;
    cl->refill_at = uv_now(srv->loop);
    cl->stanza_tokens = (int64_t)srv->lim.rate_stanzas_burst;
    cl->stanza_refill_at = cl->refill_at;
    cl->last_write = cl->refill_at;
    cl->connected_at = cl->refill_at;
    conn_set_data(c, cl);
    conn_set_handler(c, &client_conn_handler);
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, cl->id);
    strmap_put(&srv->clients_by_id, key, cl);
    cl->next = srv->clients;
    if (srv->clients) srv->clients->prev = cl;
    srv->clients = cl;
    srv->nclients++;
    client_schedule(cl);
    if (srv->lim.unauth_timeout_ms) conn_set_timeout(c, srv->lim.unauth_timeout_ms);
    if (srv->proxy_protocol) {
        cl->state = CL_PROXY;
    } else {
        cl->state = CL_HEADER;
        if (direct_tls) {
            cl->tls = 1;
            if (conn_starttls_server(c, srv->tls_ctx, NULL, 0) != 0) {
                log_warn("c2s %s: client %" PRIu64 ": cannot start TLS", srv->name, cl->id);
                conn_abort(c, "tls start failed");
            }
        }
    }
    return cl;
}

void pending_op_free(pending_op *op)
{
    if (!op) return;
    free(op->iq_id);
    free(op->username);
    free(op->resource);
    if (op->password) {
        crypto_wipe(op->password, strlen(op->password));
        free(op->password);
    }
    free(op->digest);
    free(op);
}

void client_free(client *cl)
{
    c2s *srv = cl->srv;
    wake_remove(cl);
    if (srv->waking == cl) srv->waking = NULL;
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, cl->id);
    if (strmap_get(&srv->clients_by_id, key) == cl) strmap_del(&srv->clients_by_id, key);
    if (cl->op) {
        if (cl->op->kind == OP_SESSION_START) pending_op_free(cl->op);   /* only we hold it */
        else cl->op->cl = NULL;   /* the storage callback will find the client gone */
        cl->op = NULL;
    }
    if (cl->throttled) rate_unthrottle(cl);
    unauth_release(cl);
    for (unsigned i = 0; i < cl->nbacklog; i++) stanza_free(cl->backlog[i]);
    free(cl->backlog);
    csi_free(cl);
    if (cl->sess) sm_session_free(srv, cl->sess);
    sasl_free(cl->sasl);
    if (cl->ipe) ip_entry_release(srv, cl->ipe);
    if (cl->c) {
        conn_set_data(cl->c, NULL);
        conn_abort(cl->c, "client freed");
    }
    xml_stream_free(cl->xs);
    buf_free(&cl->proxy_buf);
    free(cl->user);
    if (cl->prev) cl->prev->next = cl->next;
    else srv->clients = cl->next;
    if (cl->next) cl->next->prev = cl->prev;
    srv->nclients--;
    free(cl);
    if (srv->stopping && !srv->clients && srv->on_stopped) {
        void (*done)(c2s *) = srv->on_stopped;
        srv->on_stopped = NULL;
        done(srv);
    }
}

pending_op *client_op_begin(client *cl, op_kind kind, const char *iq_id)
{
    pending_op *op = calloc(1, sizeof *op);
    if (!op) abort();
    op->cl = cl;
    op->kind = kind;
    if (iq_id) op->iq_id = strdup(iq_id);
    cl->op = op;
    if (cl->c) conn_pause_read(cl->c);
    client_schedule(cl);   /* a session start has a deadline */
    return op;
}

static void dispatch(client *cl, stanza *st);

void client_op_end(client *cl)
{
    cl->op = NULL;
    cl->op_deadline = 0;
    /* Elements that arrived meanwhile, in order, until one starts another operation. */
    while (cl->nbacklog > 0 && !cl->op && cl->state != CL_CLOSING) {
        stanza *st = cl->backlog[0];
        memmove(cl->backlog, cl->backlog + 1, (cl->nbacklog - 1) * sizeof *cl->backlog);
        cl->nbacklog--;
        dispatch(cl, st);
    }
    if (cl->nbacklog == 0) {
        free(cl->backlog);
        cl->backlog = NULL;
    }
    if (cl->restart && !cl->op && cl->state != CL_CLOSING) {
        cl->restart = 0;
        xml_stream_reset(cl->xs);
    }
    if (!cl->op && cl->c && cl->state != CL_CLOSING && !cl->throttled) conn_resume_read(cl->c);
}

void client_restart_stream(client *cl)
{
    /* The parser is reset when the current feed returns (or now, outside one). */
    cl->restart = 1;
    cl->header_sent = 0;
    cl->state = CL_HEADER;
    random_token(cl->stream_id, STREAM_ID_LEN);
}

/* ---- the stream header ---- */

static int parse_version(const char *v, int *major, int *minor)
{
    char *end;
    long ma = strtol(v, &end, 10);
    if (end == v || *end != '.' || ma < 0) return -1;
    const char *m = end + 1;
    long mi = strtol(m, &end, 10);
    if (end == m || *end || mi < 0) return -1;
    *major = ma > 1000 ? 1000 : (int)ma;
    *minor = mi > 1000 ? 1000 : (int)mi;
    return 0;
}

static xs_action on_stream_open(void *ud, stanza *header)
{
    client *cl = ud;
    c2s *srv = cl->srv;
    xnode *h = header->root;
    const char *lang = xnode_attr_ns(h, NS_XML, "lang");
    if (!lang || !*lang || strlen(lang) > 35) lang = "en";
    const char *to = xnode_attr(h, "to");
    const char *version = xnode_attr(h, "version");
    const char *default_ns = xml_stream_default_ns(cl->xs);
    char domain[JID_PART_MAX + 1];
    int major = 0, minor = 0;
    int idx = -1;
    if (to && jid_nameprep(to, domain, sizeof domain) >= 0) idx = c2s_host_index(srv, domain);
    if (idx >= 0 && !cl->authed) {
        cl->host_index = idx;
        cl->domain = srv->hosts[idx];
    }
    cl->legacy = version ? 0 : 1;
    if (version && parse_version(version, &major, &minor) == 0 && major == 0) cl->legacy = 1;

    const char *cond = NULL, *text = NULL;
    if (!xnode_is(h, "stream", NS_STREAMS)) {
        cond = "invalid-namespace";
        text = "the stream root must be <stream/> in " NS_STREAMS;
    } else if (!h->prefix || strcmp(h->prefix, "stream") != 0) {
        cond = "bad-namespace-prefix";
        text = "the stream namespace must use the prefix 'stream'";
    } else if (!default_ns || strcmp(default_ns, NS_CLIENT) != 0) {
        cond = "invalid-namespace";
        text = "the content namespace must be " NS_CLIENT;
    } else if (version && parse_version(version, &major, &minor) != 0) {
        cond = "unsupported-version";
        text = "this server supports version 1.0";
    } else if (major > 1) {
        cond = "unsupported-version";
        text = "this server supports version 1.0";
    } else if (idx < 0 || (cl->authed && idx != cl->host_index)) {
        cond = "host-unknown";
        text = to ? "this server does not serve that domain" : "the stream header must name the domain in 'to'";
    }
    if (cond) {
        if (idx < 0 && !cl->domain) cl->domain = NULL;
        send_header(cl, lang);
        stanza_free(header);
        if (!to) log_info("c2s %s: client %" PRIu64 ": no 'to' in the stream header", srv->name, cl->id);
        client_stream_error(cl, cond, text);
        return XS_PAUSE;
    }
    send_header(cl, lang);
    stanza_free(header);
    cl->state = cl->authed ? CL_AUTHED : CL_NEGOTIATING;
    if (!cl->legacy) send_features(cl);
    log_debug("c2s %s: client %" PRIu64 " (%s): stream to %s%s%s", srv->name, cl->id, client_label(cl), cl->domain,
              cl->legacy ? " (legacy, no version)" : "", cl->tls ? " over TLS" : "");
    return XS_CONTINUE;
}

/* ---- elements ---- */

static int is_stanza_name(const char *name)
{
    return !strcmp(name, "message") || !strcmp(name, "presence") || !strcmp(name, "iq");
}

static int iq_valid(const xnode *el)
{
    const char *type = xnode_attr(el, "type");
    const char *id = xnode_attr(el, "id");
    if (!type || !id) return 0;
    return !strcmp(type, "get") || !strcmp(type, "set") || !strcmp(type, "result") || !strcmp(type, "error");
}

/* The query namespace of an iq get/set, or NULL. */
static const char *iq_query_ns(const xnode *el)
{
    const xnode *q = xnode_first_element(el);
    return q ? q->ns : NULL;
}

/* An iq addressed to the server itself (no 'to', or the stream's domain). */
static int to_server(const client *cl, const xnode *el)
{
    const char *to = xnode_attr(el, "to");
    if (!to || !*to) return 1;
    char d[JID_PART_MAX + 1];
    if (jid_nameprep(to, d, sizeof d) < 0) return 0;
    return cl->domain && !strcmp(d, cl->domain);
}

/* An iq to the user's own bare JID counts as to the server for iq:register. */
static int to_self_or_server(const client *cl, const xnode *el)
{
    if (to_server(cl, el)) return 1;
    const char *to = xnode_attr(el, "to");
    char *bare = jid_normalize(to);
    int self = 0;
    if (bare && cl->user && cl->domain) {
        size_t ul = strlen(cl->user);
        self = !strncmp(bare, cl->user, ul) && bare[ul] == '@' && !strcmp(bare + ul + 1, cl->domain);
    }
    free(bare);
    return self;
}

void client_handle_stanza(client *cl, stanza *st)
{
    xnode *el = st->root;
    const char *type = xnode_attr(el, "type");
    const char *qns = NULL;
    if (!strcmp(el->name, "iq") && type && (!strcmp(type, "get") || !strcmp(type, "set"))) qns = iq_query_ns(el);

    sm_incoming(cl);
    if (qns && !cl->authed && !cl->tls && cl->srv->tls_required &&
        (!strcmp(qns, NS_IQ_AUTH) || !strcmp(qns, NS_IQ_REGISTER))) {
        /* Passwords only over an encrypted stream when TLS is required. */
        stanza_free(st);
        client_stream_error(cl, "policy-violation",
                            cl->legacy ? "TLS is required: use the direct TLS port" : "STARTTLS is required first");
        return;
    }
    if (qns && !strcmp(qns, NS_XMPP_BIND)) {
        bind_handle(cl, st);
    } else if (qns && !strcmp(qns, NS_XMPP_SESSION)) {
        session_iq_handle(cl, st);
    } else if (qns && !strcmp(qns, NS_IQ_REGISTER) && to_self_or_server(cl, el)) {
        register_handle(cl, st);
    } else if (qns && !strcmp(qns, NS_IQ_AUTH) && to_server(cl, el)) {
        if (cl->state == CL_NEGOTIATING) {
            legacy_auth_handle(cl, st);
        } else {
            client_iq_error(cl, xnode_attr(el, "id"), "not-allowed", "already authenticated");
            stanza_free(st);
        }
    } else if (cl->state == CL_SESSION) {
        session_route_stanza(cl, el);
        stanza_free(st);
    } else {
        stanza_free(st);
        client_stream_error(cl, "not-authorized",
                            cl->authed ? "bind a resource before sending stanzas" : "authenticate first");
    }
}

static void dispatch(client *cl, stanza *st)
{
    c2s *srv = cl->srv;
    xnode *el = st->root;
    const char *ns = el->ns ? el->ns : "";

    if (cl->state == CL_CLOSING || cl->state == CL_HEADER) {
        stanza_free(st);
        return;
    }
    if (!strcmp(ns, NS_STREAMS)) {
        if (!strcmp(el->name, "error")) {
            xnode *cond = xnode_first_element(el);
            log_notice("c2s %s: client %" PRIu64 " (%s) sent a stream error: %s", srv->name, cl->id,
                       client_label(cl), cond ? cond->name : "?");
            stanza_free(st);
            cl->clean_close = 1;
            client_close(cl);
            return;
        }
        stanza_free(st);
        client_stream_error(cl, "unsupported-stanza-type", "unexpected element in the stream namespace");
        return;
    }
    if (!strcmp(ns, NS_XMPP_TLS)) {
        starttls_handle(cl, st);
        return;
    }
    if (!strcmp(ns, NS_XMPP_SASL)) {
        sasl_handle(cl, st);
        return;
    }
    if (!strcmp(ns, NS_CSI)) {
        csi_handle(cl, st);
        return;
    }
    if (!strcmp(ns, NS_SM3)) {
        if (sm_handle(cl, st)) return;
    }
    if (!strcmp(ns, NS_CLIENT) && is_stanza_name(el->name)) {
        if (!strcmp(el->name, "iq") && !iq_valid(el)) {
            stanza_free(st);
            client_stream_error(cl, "invalid-xml", "an iq needs an 'id' and a 'type' of get, set, result or error");
            return;
        }
        client_handle_stanza(cl, st);
        return;
    }
    if (is_stanza_name(el->name) && (!strcmp(ns, NS_SERVER) || !strcmp(ns, NS_COMPONENT) || !*ns)) {
        stanza_free(st);
        client_stream_error(cl, "invalid-namespace", "stanzas on a client stream are in " NS_CLIENT);
        return;
    }
    char text[160];
    snprintf(text, sizeof text, "<%.60s/> in '%.60s' is not understood here", el->name, ns);
    stanza_free(st);
    client_stream_error(cl, "unsupported-stanza-type", text);
}

static xs_action on_element(void *ud, stanza *st)
{
    client *cl = ud;
    /* Acknowledgements answer the server's own <r/> (one per burst of
     * stanzas to the client): counting them would throttle a client for
     * what it receives. */
    if (!xnode_is(st->root, "a", NS_SM3) && !xnode_is(st->root, "r", NS_SM3)) rate_account_element(cl);
    if (cl->state == CL_CLOSING) {
        stanza_free(st);
        return XS_PAUSE;
    }
    if (cl->op || cl->nbacklog) {
        if (cl->nbacklog >= MAX_BACKLOG) {
            stanza_free(st);
            client_stream_error(cl, "policy-violation", "too many elements while an operation is in progress");
            return XS_PAUSE;
        }
        stanza **b = realloc(cl->backlog, (cl->nbacklog + 1) * sizeof *b);
        if (!b) abort();
        cl->backlog = b;
        cl->backlog[cl->nbacklog++] = st;
        return XS_CONTINUE;
    }
    dispatch(cl, st);
    return (cl->state == CL_CLOSING || cl->restart) ? XS_PAUSE : XS_CONTINUE;
}

static void on_stream_close(void *ud)
{
    client *cl = ud;
    if (cl->state == CL_CLOSING) return;
    log_debug("c2s %s: client %" PRIu64 " (%s) closed its stream", cl->srv->name, cl->id, client_label(cl));
    cl->clean_close = 1;
    client_close(cl);
}

/* ---- bytes in ---- */

static void feed(client *cl, const char *data, size_t len)
{
    while (len > 0 && cl->state != CL_CLOSING) {
        size_t consumed = 0;
        xml_err err = xml_stream_feed(cl->xs, data, len, &consumed);
        if (err != XML_OK) {
            client_stream_error(cl, xml_err_condition(err), xml_stream_error_text(cl->xs));
            return;
        }
        if (cl->state == CL_CLOSING) return;
        data += consumed;
        len -= consumed;
        if (cl->restart) {
            if (cl->op) {
                /* Bytes after an element that restarts the stream asynchronously: not allowed. */
                return;
            }
            cl->restart = 0;
            xml_stream_reset(cl->xs);
            if (cl->tls && !conn_is_tls(cl->c)) {
                /* STARTTLS: what follows <starttls/> is the TLS handshake. */
                if (conn_starttls_server(cl->c, cl->srv->tls_ctx, data, len) != 0) {
                    log_warn("c2s %s: client %" PRIu64 ": cannot start TLS", cl->srv->name, cl->id);
                    cl->state = CL_CLOSING;
                    conn_abort(cl->c, "tls start failed");
                }
                return;
            }
        } else if (consumed == 0) {
            return;
        }
    }
}

static void read_and_parse(client *cl, const char *data, size_t len);

void client_on_read(client *cl, const char *data, size_t len)
{
    if (cl->state == CL_CLOSING) return;
    if (rate_account(cl, len) < 0) {
        client_stream_error(cl, "policy-violation", "sending too fast for too long");
        return;
    }
    read_and_parse(cl, data, len);
    /* What was read is parsed; reading pauses while a rate is in debt. */
    if (cl->state != CL_CLOSING && cl->c && rate_settle(cl) < 0)
        client_stream_error(cl, "policy-violation", "sending too fast for too long");
}

static void read_and_parse(client *cl, const char *data, size_t len)
{
    if (cl->state == CL_PROXY) {
        if (cl->proxy_buf.len + len > 4096) {
            cl->state = CL_CLOSING;
            conn_abort(cl->c, "bad proxy header");
            return;
        }
        buf_append(&cl->proxy_buf, data, len);
        char ip[64] = "";
        long n = proxy_parse(cl->proxy_buf.data, cl->proxy_buf.len, ip, sizeof ip);
        if (n == 0) return;
        if (n < 0) {
            log_warn("c2s %s: connection from %s: bad PROXY protocol header", cl->srv->name, conn_peer(cl->c));
            cl->state = CL_CLOSING;
            conn_abort(cl->c, "bad proxy header");
            return;
        }
        if (client_set_ip(cl, *ip ? ip : conn_peer_ip(cl->c)) < 0) {
            buf_free(&cl->proxy_buf);
            unauth_release(cl);   /* refused: it holds no slot while it closes */
            if (cl->direct_tls) {
                cl->state = CL_CLOSING;
                conn_abort(cl->c, "too many connections from this address");
            } else {
                cl->state = CL_HEADER;
                client_stream_error(cl, "policy-violation", "too many connections from your address");
            }
            return;
        }
        buf rest = cl->proxy_buf;
        cl->proxy_buf = (buf)BUF_INIT;
        cl->state = CL_HEADER;
        if (cl->direct_tls) {
            cl->tls = 1;
            if (conn_starttls_server(cl->c, cl->srv->tls_ctx, rest.data + n, rest.len - (size_t)n) != 0) {
                cl->state = CL_CLOSING;
                conn_abort(cl->c, "tls start failed");
            }
        } else {
            feed(cl, rest.data + n, rest.len - (size_t)n);
        }
        buf_free(&rest);
        return;
    }
    feed(cl, data, len);
}

/* ---- connection events ---- */

static void on_read(conn *c, const char *data, size_t len)
{
    client *cl = conn_data(c);
    if (cl) client_on_read(cl, data, len);
}

static void on_timeout(conn *c)
{
    client *cl = conn_data(c);
    if (!cl) {
        conn_abort(c, "timeout");
        return;
    }
    if (cl->state == CL_CLOSING) {
        conn_abort(c, "close timeout");
        return;
    }
    client_stream_error(cl, "connection-timeout",
                        cl->authed ? "no traffic for too long" : "authentication took too long");
}

static void on_close(conn *c, const char *reason)
{
    client *cl = conn_data(c);
    if (!cl) return;
    c2s *srv = cl->srv;
    cl->c = NULL;
    log_info("c2s %s: client %" PRIu64 " (%s) disconnected: %s", srv->name, cl->id, client_label(cl), reason);
    csi_detach(cl);
    if (cl->sess && cl->sess->sm_id && cl->state != CL_DETACHED) {
        /* A dropped connection (not a closed stream, not a stream error) may be resumed. */
        if (cl->state == CL_SESSION && !cl->clean_close && !srv->stopping && sm_detach(cl)) {
            client_schedule(cl);   /* the end of the resumption time */
            return;
        }
        session_send_end(cl);
        sm_hand_back_all(cl);
    }
    client_free(cl);
}

static const conn_handler client_conn_handler = {
    .on_read = on_read,
    .on_timeout = on_timeout,
    .on_close = on_close,
};

/* ---- shutdown and housekeeping ---- */

void c2s_stop_clients(c2s *srv)
{
    for (client *cl = srv->clients, *next; cl; cl = next) {
        next = cl->next;
        if (cl->state == CL_DETACHED) {
            session_send_end(cl);
            sm_hand_back_all(cl);
            client_free(cl);
        } else if (cl->state == CL_PROXY || !cl->c) {
            if (cl->c) conn_abort(cl->c, "shutdown");
            else client_free(cl);
        } else {
            client_stream_error(cl, "system-shutdown", NULL);
        }
    }
}

/* Housekeeping schedule. Each client is in srv->wakeups, a min-heap on
 * wake_at, at the earliest time one of its deadlines may have passed (end
 * of resumption, the sm's answer to a session start, the unauthenticated
 * deadline, a keepalive); c2s_tick handles only the clients that are due,
 * so an idle session costs nothing per tick. A wake may be early (the
 * deadline moved, e.g. a write pushed the keepalive back): the checks
 * then find nothing to do and the client goes back for its next time. */

#define NEVER UINT64_MAX

static void heap_place(c2s *srv, size_t i, client *cl)
{
    srv->wakeups[i] = cl;
    cl->wake_slot = i + 1;
}

static void heap_up(c2s *srv, size_t i)
{
    client *cl = srv->wakeups[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (srv->wakeups[parent]->wake_at <= cl->wake_at) break;
        heap_place(srv, i, srv->wakeups[parent]);
        i = parent;
    }
    heap_place(srv, i, cl);
}

static void heap_down(c2s *srv, size_t i)
{
    client *cl = srv->wakeups[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= srv->nwakeups) break;
        if (child + 1 < srv->nwakeups && srv->wakeups[child + 1]->wake_at < srv->wakeups[child]->wake_at) child++;
        if (srv->wakeups[child]->wake_at >= cl->wake_at) break;
        heap_place(srv, i, srv->wakeups[child]);
        i = child;
    }
    heap_place(srv, i, cl);
}

static void wake_remove(client *cl)
{
    c2s *srv = cl->srv;
    if (!cl->wake_slot) return;
    size_t i = cl->wake_slot - 1;
    cl->wake_slot = 0;
    client *last = srv->wakeups[--srv->nwakeups];
    if (i == srv->nwakeups) return;
    heap_place(srv, i, last);
    heap_up(srv, i);
    heap_down(srv, last->wake_slot - 1);
}

static void wake_set(client *cl, uint64_t when)
{
    c2s *srv = cl->srv;
    if (when == NEVER) {
        wake_remove(cl);
        return;
    }
    if (cl->wake_slot) {
        uint64_t old = cl->wake_at;
        cl->wake_at = when;
        if (when < old) heap_up(srv, cl->wake_slot - 1);
        else if (when > old) heap_down(srv, cl->wake_slot - 1);
        return;
    }
    if (srv->nwakeups == srv->wakeups_cap) {
        size_t cap = srv->wakeups_cap ? srv->wakeups_cap * 2 : 64;
        client **p = realloc(srv->wakeups, cap * sizeof *p);
        if (!p) abort();
        srv->wakeups = p;
        srv->wakeups_cap = cap;
    }
    cl->wake_at = when;
    heap_place(srv, srv->nwakeups++, cl);
    heap_up(srv, srv->nwakeups - 1);
}

static uint64_t earlier(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* The earliest time c2s_tick may have something to do for cl. */
static uint64_t next_wake(const client *cl, uint64_t now)
{
    const c2s *srv = cl->srv;
    if (cl->state == CL_DETACHED) return cl->sess ? cl->sess->detached_until : NEVER;
    uint64_t wake = NEVER;
    if (cl->op && cl->op->kind == OP_SESSION_START)
        wake = cl->op_deadline ? cl->op_deadline : now + 1;   /* deadline not set yet: look again next tick */
    if (cl->state < CL_BINDING && cl->c && srv->lim.unauth_timeout_ms) {
        uint64_t due = cl->connected_at + srv->lim.unauth_timeout_ms;
        /* Checked only between operations: once due, look every tick. */
        if (cl->op && due <= now) due = now + 1;
        wake = earlier(wake, due);
    }
    if (cl->c && srv->lim.keepalive_ms) wake = earlier(wake, cl->last_write + srv->lim.keepalive_ms);
    return wake;
}

static void client_schedule(client *cl)
{
    wake_set(cl, next_wake(cl, uv_now(cl->srv->loop)));
}

void c2s_reschedule_clients(c2s *srv)
{
    for (client *cl = srv->clients; cl; cl = cl->next) client_schedule(cl);
}

/* The checks of one due client; it may be freed. */
static void client_housekeeping(client *cl, uint64_t now)
{
    c2s *srv = cl->srv;
    if (cl->state == CL_DETACHED) {
        if (now >= cl->sess->detached_until) {
            log_info("c2s %s: client %" PRIu64 " (%s): resumption time over, ending the session", srv->name,
                     cl->id, client_label(cl));
            session_send_end(cl);
            sm_hand_back_all(cl);
            client_free(cl);
        }
        return;
    }
    if (cl->op && cl->op_deadline && now >= cl->op_deadline && cl->op->kind == OP_SESSION_START) {
        log_warn("c2s %s: client %" PRIu64 " (%s): the sm did not answer the session start", srv->name, cl->id,
                 client_label(cl));
        bind_session_answer(cl, 0, "remote-server-timeout");
        return;
    }
    if (cl->state < CL_BINDING && cl->c && srv->lim.unauth_timeout_ms &&
        now - cl->connected_at >= srv->lim.unauth_timeout_ms && !cl->op) {
        /* However busy it keeps the connection, it has to get to a session in time. */
        if (cl->state == CL_PROXY) {
            cl->state = CL_CLOSING;
            conn_abort(cl->c, "no PROXY header in time");
        } else {
            client_stream_error(cl, "connection-timeout", "authentication took too long");
        }
        return;
    }
    if (cl->state == CL_SESSION && cl->c && srv->lim.keepalive_ms && now - cl->last_write >= srv->lim.keepalive_ms) {
        if (cl->sess->sm_enabled && cl->sess->queued) sm_request_ack(cl);
        else client_write_str(cl, " ");
    }
}

void c2s_tick(c2s *srv, uint64_t now)
{
    while (srv->nwakeups > 0 && srv->wakeups[0]->wake_at <= now) {
        client *cl = srv->wakeups[0];
        srv->waking = cl;
        client_housekeeping(cl, now);
        if (srv->waking == cl) {
            /* Still here: its next time, at least a tick away so that
             * this loop ends (an <r/> written later moves nothing yet). */
            uint64_t wake = next_wake(cl, now);
            wake_set(cl, wake != NEVER && wake <= now ? now + 1 : wake);
        }
        srv->waking = NULL;
    }
    ip_entries_expire(srv, now);
    account_failures_expire(srv, now);
}
