/* One XMPP client connection: non-blocking connect from one of several
 * source addresses, optional TLS (STARTTLS or direct), an expat parser per
 * stream, and the login state machine: features, [starttls], [register],
 * SASL, stream restart, bind, session, roster get, initial presence. */
#include "bench/lg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"

const char *conn_jid_user(const lg_worker *w, int user, char *buf, size_t len)
{
    snprintf(buf, len, "%s%d@%s", w->o->prefix, user, w->o->domain);
    return buf;
}

const char *conn_domain(const lg_worker *w, const lg_conn *c)
{
    return c->side && w->o->peer_domain ? w->o->peer_domain : w->o->domain;
}

const char *conn_jid(const lg_worker *w, const lg_conn *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s%d@%s", w->o->prefix, c->user, conn_domain(w, c));
    return buf;
}

static void set_events(lg_worker *w, lg_conn *c)
{
    int want = c->wlen > c->woff || (c->ssl && c->want_out);
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0u), .data.u32 = (uint32_t)c->idx};
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* ---------------------------------------------------------------- output */

static int flush_out(lg_worker *w, lg_conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n;
        if (c->tls_active) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, c->wbuf + c->woff, (int)(c->wlen - c->woff));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) { c->want_out = 1; break; }
                return -1;
            }
            n = r;
        } else {
            n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) break;
                return -1;
            }
        }
        c->woff += (size_t)n;
    }
    if (c->woff == c->wlen) { c->woff = c->wlen = 0; c->want_out = 0; }
    set_events(w, c);
    return 0;
}

void conn_send(lg_worker *w, lg_conn *c, const char *data, size_t len)
{
    if (c->state == C_FREE || c->fd < 0) return;
    if (c->wlen + len > c->wcap) {
        if (c->woff) {
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        if (c->wlen + len > c->wcap) {
            size_t cap = c->wcap ? c->wcap : 512;
            while (cap < c->wlen + len) cap *= 2;
            char *nb = realloc(c->wbuf, cap);
            if (!nb) { conn_close(w, c, 0); return; }
            c->wbuf = nb;
            c->wcap = cap;
        }
    }
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
    /* Only plain sockets are written at once; TLS waits for the loop (one
     * SSL_write per batch of stanzas, like a client that coalesces). */
    if (!c->tls_active && c->state != C_CONNECTING && c->state != C_TLS_HANDSHAKE) {
        if (flush_out(w, c) != 0) conn_close(w, c, 0);
    } else {
        set_events(w, c);
    }
}

void conn_sendf(lg_worker *w, lg_conn *c, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) { conn_send(w, c, tmp, (size_t)n); return; }
    char *big = malloc((size_t)n + 1);
    if (!big) return;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    conn_send(w, c, big, (size_t)n);
    free(big);
}

/* ---------------------------------------------------------------- XML */

static const char *local(const char *name)
{
    const char *p = strrchr(name, ':');
    /* expat without namespaces: "stream:features" -> "features" */
    return p ? p + 1 : name;
}

static void copy_attr(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

static void handle_element(lg_worker *w, lg_conn *c);
/* The worker of the connection being parsed (expat callbacks get the connection). */
static lg_worker *lg_current_worker;

static void xml_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    lg_conn *c = ud;
    if (c->depth == 1) {
        copy_attr(c->el, sizeof c->el, local(name));
        c->id[0] = c->type[0] = c->from[0] = 0;
        c->text_len = 0;
        c->feat = 0;
        for (int i = 0; atts[i]; i += 2) {
            if (!strcmp(atts[i], "id")) copy_attr(c->id, sizeof c->id, atts[i + 1]);
            else if (!strcmp(atts[i], "type")) copy_attr(c->type, sizeof c->type, atts[i + 1]);
            else if (!strcmp(atts[i], "from")) copy_attr(c->from, sizeof c->from, atts[i + 1]);
        }
    } else if (c->depth == 2 && !strcmp(c->el, "features")) {
        const char *n = local(name);
        if (!strcmp(n, "starttls")) c->feat |= FEAT_STARTTLS;
        else if (!strcmp(n, "mechanisms")) c->feat |= FEAT_MECHS;
        else if (!strcmp(n, "bind")) c->feat |= FEAT_BIND;
        else if (!strcmp(n, "session")) c->feat |= FEAT_SESSION;
        else if (!strcmp(n, "register")) c->feat |= FEAT_REGISTER;
    } else if (c->depth == 3 && !strcmp(c->el, "features") && !strcmp(local(name), "optional")) {
        c->feat &= ~FEAT_SESSION;   /* RFC 6121 bis: an optional session need not be requested */
    }
    c->depth++;
}

static void xml_chars(void *ud, const XML_Char *s, int len)
{
    lg_conn *c = ud;
    if (c->depth != 2 || len <= 0) return;
    if (c->text_len + (size_t)len + 1 > c->text_cap) {
        if (c->text_len + (size_t)len + 1 > 8192) return;
        size_t cap = c->text_cap ? c->text_cap * 2 : 256;
        while (cap < c->text_len + (size_t)len + 1) cap *= 2;
        char *nt = realloc(c->text, cap);
        if (!nt) return;
        c->text = nt;
        c->text_cap = cap;
    }
    memcpy(c->text + c->text_len, s, (size_t)len);
    c->text_len += (size_t)len;
    c->text[c->text_len] = 0;
}

static void xml_end(void *ud, const XML_Char *name)
{
    (void)name;
    lg_conn *c = ud;
    c->depth--;
    if (c->depth == 1) {
        handle_element(lg_current_worker, c);
    } else if (c->depth == 0) {
        c->restart = 2;   /* the server closed the stream */
        XML_StopParser(c->xp, XML_FALSE);
    }
}

static int parser_reset(lg_conn *c)
{
    if (c->xp) XML_ParserReset(c->xp, NULL);
    else if (!(c->xp = XML_ParserCreate(NULL))) return -1;
    XML_SetUserData(c->xp, c);
    XML_SetElementHandler(c->xp, xml_start, xml_end);
    XML_SetCharacterDataHandler(c->xp, xml_chars);
    c->depth = 0;
    return 0;
}

static void stream_open(lg_worker *w, lg_conn *c)
{
    conn_sendf(w, c, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>", conn_domain(w, c));
    c->state = C_FEATURES;
}

/* ---------------------------------------------------------------- login */

static void fail(lg_worker *w, lg_conn *c, const char *why)
{
    if (w->o->verbose) fprintf(stderr, "loadgen: conn %d user %d: %s (state %d, <%s type='%s'>)\n", c->gidx, c->user,
                               why, c->state, c->el, c->type);
    w->st.login_failures++;
    conn_close(w, c, 0);
}

static void send_auth_or_register(lg_worker *w, lg_conn *c)
{
    if (!strcmp(w->o->scenario, "register")) {
        char u[32];
        snprintf(u, sizeof u, "%s%d", w->o->prefix, c->user);
        conn_sendf(w, c, "<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>%s</username>"
                         "<password>%s</password></query></iq>", u, w->o->password);
        c->state = C_REGISTER;
        return;
    }
    sasl_begin(w, c);
    c->state = C_AUTH;
}

static void handle_element(lg_worker *w, lg_conn *c)
{
    const char *el = c->el;
    if (!strcmp(el, "error")) {
        w->st.stream_errors++;
        fail(w, c, "stream error");
        return;
    }
    switch (c->state) {
    case C_FEATURES:
        if (strcmp(el, "features")) { fail(w, c, "expected features"); return; }
        if (c->stage == 0 && w->o->tls == TLS_STARTTLS) {
            if (!(c->feat & FEAT_STARTTLS)) { fail(w, c, "no starttls offered"); return; }
            conn_sendf(w, c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
            c->state = C_STARTTLS;
        } else if (c->stage <= 1) {
            c->stage = 1;
            send_auth_or_register(w, c);
        } else {
            c->feat &= FEAT_SESSION | FEAT_BIND;
            conn_sendf(w, c, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                             "<resource>lg</resource></bind></iq>");
            c->state = C_BIND;
            c->seq = c->feat;   /* remember whether a session is required */
        }
        return;
    case C_STARTTLS:
        if (strcmp(el, "proceed")) { fail(w, c, "starttls refused"); return; }
        c->restart = 1;   /* TLS handshake after this element */
        return;
    case C_REGISTER:
        if (strcmp(el, "iq")) return;
        if (!strcmp(c->type, "result")) {
            w->st.registered++;
            c->in_login = 0;
            w->in_progress--;
            scen_on_ready(w, c);
        } else {
            w->st.register_failures++;
            fail(w, c, "registration refused");
        }
        return;
    case C_AUTH:
    case C_AUTH_FINAL:
        if (!strcmp(el, "challenge")) {
            if (sasl_challenge(w, c, c->text ? c->text : "", c->text_len) != 0) { fail(w, c, "bad SCRAM challenge"); return; }
            c->state = C_AUTH_FINAL;
        } else if (!strcmp(el, "success")) {
            if (sasl_success(w, c, c->text ? c->text : "", c->text_len) != 0) { fail(w, c, "server signature"); return; }
            c->stage = 2;
            c->restart = 1;
        } else {
            fail(w, c, "authentication failed");
        }
        return;
    case C_BIND:
        if (strcmp(el, "iq")) return;
        if (strcmp(c->type, "result")) { fail(w, c, "bind failed"); return; }
        if (c->seq & FEAT_SESSION) {
            conn_sendf(w, c, "<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
            c->state = C_SESSION;
            return;
        }
        /* fall through */
    case C_SESSION:
        if (c->state == C_SESSION) {
            if (strcmp(el, "iq")) return;
            if (strcmp(c->type, "result")) { fail(w, c, "session failed"); return; }
        }
        conn_sendf(w, c, "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>");
        c->state = C_ROSTER;
        return;
    case C_ROSTER:
        if (strcmp(el, "iq") || strcmp(c->id, "r")) return;   /* pushes and early stanzas */
        if (strcmp(c->type, "result")) { fail(w, c, "roster get failed"); return; }
        c->seq = 0;
        c->state = C_READY;
        c->in_login = 0;
        w->in_progress--;
        if (strcmp(w->o->scenario, "login-nopresence")) conn_sendf(w, c, "<presence/>");
        w->st.logins++;
        lg_hist_add(&w->st.login_lat, (uint64_t)((lg_now() - c->t_start) * 1e6));
        scen_on_ready(w, c);
        return;
    case C_READY:
        scen_on_stanza(w, c);
        return;
    default:
        return;
    }
}

/* ---------------------------------------------------------------- TLS */

static void tls_step(lg_worker *w, lg_conn *c)
{
    ERR_clear_error();
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        c->tls_active = 1;
        c->want_out = 0;
        if (c->stage == 0) c->stage = 1;
        if (parser_reset(c) != 0) { conn_close(w, c, 0); return; }
        stream_open(w, c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) { c->want_out = 0; set_events(w, c); return; }
    if (e == SSL_ERROR_WANT_WRITE) { c->want_out = 1; set_events(w, c); return; }
    fail(w, c, "TLS handshake failed");
}

static int tls_begin(lg_worker *w, lg_conn *c)
{
    c->ssl = SSL_new(w->ssl_ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) return -1;
    SSL_set_tlsext_host_name(c->ssl, conn_domain(w, c));
    c->state = C_TLS_HANDSHAKE;
    tls_step(w, c);
    return 0;
}

/* ---------------------------------------------------------------- input */

static void on_input(lg_worker *w, lg_conn *c)
{
    char buf[16384];
    for (int rounds = 0; rounds < 8 && c->state != C_FREE; rounds++) {
        ssize_t n;
        if (c->tls_active) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, buf, sizeof buf);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ) return;
                if (e == SSL_ERROR_WANT_WRITE) { c->want_out = 1; set_events(w, c); return; }
                n = e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
            } else {
                n = r;
            }
        } else {
            n = recv(c->fd, buf, sizeof buf, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        }
        if (n <= 0) {
            if (c->state != C_CLOSING) {
                w->st.disconnects++;
                if (c->state != C_READY) w->st.login_failures++;
            }
            conn_close(w, c, 0);
            return;
        }
        lg_current_worker = w;
        c->in_parse = 1;
        enum XML_Status s = XML_Parse(c->xp, buf, (int)n, 0);
        c->in_parse = 0;
        if (c->start_after_parse) {   /* closed and restarted from a handler */
            c->start_after_parse = 0;
            if (c->state == C_FREE) conn_start(w, c);
            return;
        }
        if (c->state == C_FREE) return;
        if (c->restart == 2) {   /* the server closed the stream */
            if (c->state != C_CLOSING) w->st.disconnects++;
            conn_close(w, c, 0);
            return;
        }
        if (s == XML_STATUS_ERROR && !c->restart) {
            fail(w, c, "XML error from the server");
            return;
        }
        if (c->restart) {
            c->restart = 0;
            if (c->state == C_STARTTLS) {
                if (tls_begin(w, c) != 0) fail(w, c, "TLS setup");
                return;
            }
            if (parser_reset(c) != 0) { conn_close(w, c, 0); return; }
            stream_open(w, c);
        }
        if (!c->tls_active && n < (ssize_t)sizeof buf) return;
    }
}

void conn_event(lg_worker *w, lg_conn *c, uint32_t events)
{
    if (c->state == C_FREE) return;
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            w->st.connect_failures++;
            if (w->o->verbose) fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
            conn_close(w, c, 0);
            return;
        }
        if (w->o->tls == TLS_DIRECT) {
            if (tls_begin(w, c) != 0) fail(w, c, "TLS setup");
            return;
        }
        stream_open(w, c);
        if (flush_out(w, c) != 0) conn_close(w, c, 0);
        return;
    }
    if (c->state == C_TLS_HANDSHAKE) { tls_step(w, c); return; }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_input(w, c);
    if (c->state != C_FREE && (c->wlen > c->woff || c->want_out)) {
        if (flush_out(w, c) != 0) conn_close(w, c, 0);
    }
    if (c->state != C_FREE && c->closing_after && c->wlen == c->woff) {
        shutdown(c->fd, SHUT_WR);
        c->closing_after = 0;
    }
}

/* ---------------------------------------------------------------- lifecycle */

int conn_start(lg_worker *w, lg_conn *c)
{
    const lg_opts *o = w->o;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { w->st.connect_failures++; return -1; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int src = o->per_src > 0 ? (c->gidx / o->per_src) % (o->nsrc > 0 ? o->nsrc : 1) : 0;
    struct sockaddr_in sa = {.sin_family = AF_INET};
#ifdef IP_BIND_ADDRESS_NO_PORT
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    sa.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)src);
    if (bind(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(c->fd);
        c->fd = -1;
        w->st.connect_failures++;
        return -1;
    }
    int port = c->side && o->npeer_ports ? o->peer_ports[c->gidx % o->npeer_ports] : o->ports[c->gidx % o->nports];
    struct sockaddr_in da = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, o->host, &da.sin_addr);
    c->state = C_CONNECTING;
    c->stage = 0;
    c->tls_active = 0;
    c->restart = 0;
    c->closing_after = 0;
    c->wlen = c->woff = 0;
    c->t_start = lg_now();
    if (parser_reset(c) != 0) { close(c->fd); c->fd = -1; c->state = C_FREE; return -1; }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)c->idx};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        close(c->fd);
        c->fd = -1;
        c->state = C_FREE;
        return -1;
    }
    if (connect(c->fd, (struct sockaddr *)&da, sizeof da) != 0 && errno != EINPROGRESS) {
        w->st.connect_failures++;
        if (o->verbose) fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
        conn_close(w, c, 0);
        return -1;
    }
    w->in_progress++;
    c->in_login = 1;
    return 0;
}

void conn_close(lg_worker *w, lg_conn *c, int graceful)
{
    if (c->state == C_FREE) return;
    if (graceful && c->fd >= 0 && c->state != C_CONNECTING && c->state != C_TLS_HANDSHAKE) {
        conn_sendf(w, c, "</stream:stream>");
        if (c->state == C_FREE) return;
        c->state = C_CLOSING;
        if (c->wlen > c->woff) { c->closing_after = 1; return; }
        shutdown(c->fd, SHUT_WR);
        return;   /* closed when the server closes its side */
    }
    int was = c->state;
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = C_FREE;
    c->tls_active = 0;
    c->wlen = c->woff = 0;
    sasl_free(c);
    if (c->in_login) {
        c->in_login = 0;
        w->in_progress--;
    }
    scen_on_closed(w, c, was != C_READY && was != C_CLOSING);
}

void conn_free_all(lg_worker *w)
{
    for (int i = 0; i < w->count; i++) {
        lg_conn *c = &w->conns[i];
        if (c->ssl) SSL_free(c->ssl);
        if (c->fd >= 0) close(c->fd);
        if (c->xp) XML_ParserFree(c->xp);
        free(c->wbuf);
        free(c->text);
        free(c->scram);
    }
    free(w->conns);
    w->conns = NULL;
}
