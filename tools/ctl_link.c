/* ctl_link: the admin tool's blocking connection to the router. See ctl_link.h. */
#include "tools/ctl_link.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/crypto.h"
#include "common/xml_stream.h"
#include "common/xml_write.h"

#define MAX_CONFIG_BYTES (1024 * 1024)
#define MAX_ELEMENT_BYTES (16 * 1024 * 1024)   /* a long session list comes in parts far below this */

/* ---- configuration ---- */

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) abort();
    return p;
}

static char *trimmed(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    char *r = xstrdup(s);
    size_t l = strlen(r);
    while (l && (r[l - 1] == ' ' || r[l - 1] == '\t' || r[l - 1] == '\n' || r[l - 1] == '\r')) r[--l] = 0;
    return r;
}

static int parse_port(const char *s, int *port)
{
    long long v;
    if (config_parse_int(s, &v) != 0 || v < 1 || v > 65535) return -1;
    *port = (int)v;
    return 0;
}

static int set_router(ctl_router_cfg *cfg, const char *spec, char *err, size_t errlen)
{
    const char *colon = strrchr(spec, ':');
    const char *port = colon ? colon + 1 : spec;
    if (parse_port(port, &cfg->port) != 0) {
        snprintf(err, errlen, "--router: expected HOST:PORT or PORT, got '%s'", spec);
        return -1;
    }
    if (colon) {
        size_t n = (size_t)(colon - spec);
        if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']') {   /* [::1]:5347 */
            spec++;
            n -= 2;
        }
        if (n) {
            free(cfg->host);
            cfg->host = strndup(spec, n);
            if (!cfg->host) abort();
        }
    }
    return 0;
}

static stanza *read_config(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *data = malloc(MAX_CONFIG_BYTES);
    if (!data) abort();
    size_t n = fread(data, 1, MAX_CONFIG_BYTES, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n == MAX_CONFIG_BYTES) {
        snprintf(err, errlen, "%s: %s", path, bad ? "cannot read it" : "too big for a configuration file");
        free(data);
        return NULL;
    }
    xml_limits lim;
    xml_limits_default(&lim);
    lim.max_stanza_bytes = MAX_CONFIG_BYTES;
    xml_err xe;
    char text[256];
    stanza *doc = xml_parse_document(data, n, &lim, &xe, text, sizeof text);
    crypto_wipe(data, n);
    free(data);
    if (!doc) snprintf(err, errlen, "%s: %s", path, text);
    return doc;
}

/* A secret as the processes read it: file: relative to the configuration's directory. */
static char *resolve_secret(const char *path, const char *spec, char *err, size_t errlen)
{
    char *resolved = NULL;
    if (strncmp(spec, "file:", 5) == 0 && spec[5] != '/') {
        char *copy = xstrdup(path);
        buf b = BUF_INIT;
        buf_printf(&b, "file:%s/%s", dirname(copy), spec + 5);
        resolved = xstrdup(buf_cstr(&b));
        buf_free(&b);
        free(copy);
        spec = resolved;
    }
    char msg[256];
    char *value = config_resolve_secret(spec, msg, sizeof msg);
    if (!value) snprintf(err, errlen, "%s: router/secret: %s", path, msg);
    free(resolved);
    return value;
}

int ctl_router_cfg_load(ctl_router_cfg *cfg, const char *path, const char *router, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = xstrdup("127.0.0.1");
    cfg->port = 5347;
    if (path) {
        stanza *doc = read_config(path, err, errlen);
        if (!doc) return -1;
        const xnode *r = xnode_child(doc->root, "router", NULL);
        const char *host = r ? xnode_child_text(r, "host", NULL) : NULL;
        const char *port = r ? xnode_child_text(r, "port", NULL) : NULL;
        const char *secret = r ? xnode_child_text(r, "secret", NULL) : NULL;
        if (host) {
            free(cfg->host);
            cfg->host = trimmed(host);
        }
        if (port) {
            char *p = trimmed(port);
            int bad = parse_port(p, &cfg->port);
            free(p);
            if (bad) {
                snprintf(err, errlen, "%s: router/port: not a port number", path);
                stanza_free(doc);
                return -1;
            }
        }
        if (secret) {
            char *spec = trimmed(secret);
            cfg->secret = *spec ? resolve_secret(path, spec, err, errlen) : NULL;
            int failed = *spec && !cfg->secret;
            free(spec);
            if (failed) {
                stanza_free(doc);
                return -1;
            }
        }
        const xnode *hosts = xnode_child(doc->root, "hosts", NULL);
        for (const xnode *h = hosts ? xnode_child(hosts, "host", NULL) : NULL; h; h = xnode_next(h, "host", NULL)) {
            const char *t = xnode_text(h);
            char *name = trimmed(t ? t : "");
            if (!*name) {
                free(name);
                continue;
            }
            cfg->hosts = realloc(cfg->hosts, (cfg->nhosts + 1) * sizeof *cfg->hosts);
            if (!cfg->hosts) abort();
            cfg->hosts[cfg->nhosts++] = name;
        }
        stanza_free(doc);
    }
    if (!cfg->secret) {
        const char *env = getenv("SWITCHBOARD_INTERNAL_SECRET");
        if (!env || !*env) {
            snprintf(err, errlen, "no internal secret: give -c CONFIG (router/secret) or set SWITCHBOARD_INTERNAL_SECRET");
            return -1;
        }
        cfg->secret = xstrdup(env);
    }
    if (router && set_router(cfg, router, err, errlen) != 0) return -1;
    return 0;
}

void ctl_router_cfg_free(ctl_router_cfg *cfg)
{
    free(cfg->host);
    if (cfg->secret) {
        crypto_wipe(cfg->secret, strlen(cfg->secret));
        free(cfg->secret);
    }
    for (size_t i = 0; i < cfg->nhosts; i++) free(cfg->hosts[i]);
    free(cfg->hosts);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- the connection ---- */

struct ctl_link {
    int fd;
    char *name;
    unsigned timeout_ms;
    xml_stream *xs;
    int header_seen;
    char stream_id[128];
    int closed;                 /* the router closed the stream or the connection */
    stanza **q;                 /* elements read, not yet taken */
    size_t qlen, qcap, qhead;
    char **names;               /* online names */
    size_t nnames;
};

static xs_action on_open(void *ud, stanza *header)
{
    ctl_link *l = ud;
    const char *id = xnode_attr(header->root, "id");
    snprintf(l->stream_id, sizeof l->stream_id, "%s", id ? id : "");
    l->header_seen = 1;
    stanza_free(header);
    return XS_CONTINUE;
}

static xs_action on_element(void *ud, stanza *st)
{
    ctl_link *l = ud;
    if (l->qlen == l->qcap) {
        l->qcap = l->qcap ? 2 * l->qcap : 16;
        l->q = realloc(l->q, l->qcap * sizeof *l->q);
        if (!l->q) abort();
    }
    l->q[l->qlen++] = st;
    return XS_CONTINUE;
}

static void on_close(void *ud)
{
    ((ctl_link *)ud)->closed = 1;
}

static const xml_stream_handler handler = {on_open, on_element, on_close};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_to(const char *host, int port, unsigned timeout_ms, char *err, size_t errlen)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve the router's address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            if (errno == EINPROGRESS) {
                struct pollfd p = {fd, POLLOUT, 0};
                int n = poll(&p, 1, (int)timeout_ms);
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                if (n == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) break;
                last = n == 0 ? ETIMEDOUT : soerr ? soerr : errno;
            } else {
                last = errno;
            }
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to the router at %s:%d: %s", host, port, strerror(last));
        return -1;
    }
    return fd;
}

int ctl_link_send(ctl_link *l, const char *data, size_t len, char *err, size_t errlen)
{
    long long deadline = now_ms() + l->timeout_ms;
    while (len) {
        ssize_t n = send(l->fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            long long left = deadline - now_ms();
            struct pollfd p = {l->fd, POLLOUT, 0};
            if (left > 0 && poll(&p, 1, (int)left) >= 0) continue;
            snprintf(err, errlen, "timed out writing to the router");
            return -1;
        }
        snprintf(err, errlen, "writing to the router: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Read once (until deadline) and feed the parser. 0, or -1 with err. */
static int read_some(ctl_link *l, long long deadline, char *err, size_t errlen)
{
    if (l->closed) {
        snprintf(err, errlen, "the router closed the connection");
        return -1;
    }
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            snprintf(err, errlen, "no answer within %u ms", l->timeout_ms);
            return -1;
        }
        struct pollfd p = {l->fd, POLLIN, 0};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) continue;
        char buf[16384];
        ssize_t got = recv(l->fd, buf, sizeof buf, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) {
            l->closed = 1;
            snprintf(err, errlen, "the router closed the connection%s%s", got < 0 ? ": " : "",
                     got < 0 ? strerror(errno) : "");
            return -1;
        }
        size_t consumed;
        xml_err xe = xml_stream_feed(l->xs, buf, (size_t)got, &consumed);
        if (xe != XML_OK) {
            snprintf(err, errlen, "bad XML from the router: %s", xml_stream_error_text(l->xs));
            l->closed = 1;
            return -1;
        }
        return 0;
    }
}

static void name_set(ctl_link *l, const char *name, int online)
{
    if (!strcmp(name, l->name)) return;
    for (size_t i = 0; i < l->nnames; i++) {
        if (strcmp(l->names[i], name)) continue;
        if (!online) {
            free(l->names[i]);
            l->names[i] = l->names[--l->nnames];
        }
        return;
    }
    if (!online) return;
    l->names = realloc(l->names, (l->nnames + 1) * sizeof *l->names);
    if (!l->names) abort();
    l->names[l->nnames++] = xstrdup(name);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

size_t ctl_link_names(const ctl_link *l, const char *const **names)
{
    qsort(l->names, l->nnames, sizeof *l->names, cmp_str);
    *names = (const char *const *)l->names;
    return l->nnames;
}

const char *ctl_link_name(const ctl_link *l) { return l->name; }

/* The stream error's condition and text, as one message. */
static void describe_stream_error(const xnode *el, char *err, size_t errlen, const char *context)
{
    const char *cond = "undefined-condition", *text = NULL;
    for (const xnode *c = xnode_first_element(el); c; c = xnode_next_element(c)) {
        if (!c->ns || strcmp(c->ns, NS_XMPP_STREAMS)) continue;
        if (!strcmp(c->name, "text")) text = xnode_text(c);
        else cond = c->name;
    }
    snprintf(err, errlen, "%s: %s%s%s", context, cond, text ? " (" : "", text ? text : "");
    if (text) snprintf(err + strlen(err), errlen - strlen(err), ")");
}

stanza *ctl_link_next(ctl_link *l, char *err, size_t errlen)
{
    long long deadline = now_ms() + l->timeout_ms;
    for (;;) {
        while (l->qhead < l->qlen) {
            stanza *st = l->q[l->qhead++];
            if (l->qhead == l->qlen) l->qhead = l->qlen = 0;
            xnode *el = st->root;
            int online = xnode_is(el, "online", NS_SB_ROUTER), offline = xnode_is(el, "offline", NS_SB_ROUTER);
            if (online || offline) {
                const char *name = xnode_attr(el, "name");
                if (name) name_set(l, name, online);
                stanza_free(st);
                continue;
            }
            if (xnode_is(el, "error", NS_STREAMS)) {
                describe_stream_error(el, err, errlen, "the router ended the connection");
                stanza_free(st);
                l->closed = 1;
                return NULL;
            }
            return st;
        }
        if (read_some(l, deadline, err, errlen) != 0) return NULL;
    }
}

static void link_free(ctl_link *l)
{
    if (l->fd >= 0) close(l->fd);
    if (l->xs) xml_stream_free(l->xs);
    for (size_t i = l->qhead; i < l->qlen; i++) stanza_free(l->q[i]);
    free(l->q);
    for (size_t i = 0; i < l->nnames; i++) free(l->names[i]);
    free(l->names);
    free(l->name);
    free(l);
}

ctl_link *ctl_link_open(const ctl_router_cfg *cfg, const char *name, unsigned timeout_ms, char *err, size_t errlen)
{
    ctl_link *l = calloc(1, sizeof *l);
    if (!l) abort();
    l->name = xstrdup(name);
    l->timeout_ms = timeout_ms;
    l->fd = connect_to(cfg->host, cfg->port, timeout_ms, err, errlen);
    if (l->fd < 0) {
        link_free(l);
        return NULL;
    }
    xml_limits lim;
    xml_limits_default(&lim);
    lim.max_stanza_bytes = MAX_ELEMENT_BYTES;
    l->xs = xml_stream_new(&lim, &handler, l);

    buf o = BUF_INIT;
    buf_append_str(&o, "<?xml version='1.0'?><stream:stream xmlns='" NS_COMPONENT
                       "' xmlns:stream='" NS_STREAMS "' to='");
    xml_escape_attr(&o, name, strlen(name));
    buf_append_str(&o, "'>");
    int rc = ctl_link_send(l, o.data, o.len, err, errlen);
    buf_free(&o);
    long long deadline = now_ms() + timeout_ms;
    while (rc == 0 && !l->header_seen && l->qlen == 0) rc = read_some(l, deadline, err, errlen);
    if (rc == 0 && !l->header_seen) {
        stanza *st = ctl_link_next(l, err, errlen);   /* a stream error before the header */
        if (st) {
            snprintf(err, errlen, "the router answered <%s/> instead of a stream header", st->root->name);
            stanza_free(st);
        }
        rc = -1;
    }
    if (rc == 0) {
        /* XEP-0114: hex SHA-1 of the stream id followed by the secret. */
        buf in = BUF_INIT;
        buf_append_str(&in, l->stream_id);
        buf_append_str(&in, cfg->secret);
        char digest[2 * SHA1_LEN + 1];
        sha1_hex(in.data, in.len, digest);
        crypto_wipe(in.data, in.len);
        buf_free(&in);
        char hs[128];
        int n = snprintf(hs, sizeof hs, "<handshake>%s</handshake>", digest);
        /* Even when the write fails, the router may have said why (host-unknown). */
        (void)ctl_link_send(l, hs, (size_t)n, err, errlen);
        stanza *st = ctl_link_next(l, err, errlen);
        if (!st) {
            if (strstr(err, "not-authorized"))
                snprintf(err, errlen, "the router refused the handshake of %s (not-authorized): wrong internal secret",
                         name);
            else if (strstr(err, "host-unknown"))
                snprintf(err, errlen, "the router does not admit the name %s (host-unknown): add "
                         "<component name='ctl-*' ... trusted='true'/> to its configuration", name);
            rc = -1;
        } else if (!xnode_is(st->root, "handshake", NULL)) {
            snprintf(err, errlen, "the router answered the handshake with <%s/>", st->root->name);
            stanza_free(st);
            rc = -1;
        } else {
            stanza_free(st);
        }
    }
    if (rc == 0) {
        /* The router announced every name online right after the handshake;
         * a route to ourselves comes back after all of them. */
        buf_append_str(&o, "<route xmlns='" NS_SB_ROUTER "' to='");
        xml_escape_attr(&o, name, strlen(name));
        buf_append_str(&o, "' from='");
        xml_escape_attr(&o, name, strlen(name));
        buf_append_str(&o, "'><admin xmlns='" NS_SB_ADMIN "' action='sync' id='sync'/></route>");
        rc = ctl_link_send(l, o.data, o.len, err, errlen);
        buf_free(&o);
        while (rc == 0) {
            stanza *st = ctl_link_next(l, err, errlen);
            if (!st) {
                rc = -1;
                break;
            }
            const xnode *a = xnode_is(st->root, "route", NS_SB_ROUTER) ? xnode_first_element(st->root) : NULL;
            const char *type = xnode_attr(st->root, "type");
            int done = a && xnode_is(a, "admin", NS_SB_ADMIN) && !strcmp(xnode_attr(a, "id") ? xnode_attr(a, "id") : "", "sync");
            if (done && type && !strcmp(type, "error")) {
                snprintf(err, errlen, "the router refused a route envelope from %s: the name is not trusted", name);
                rc = -1;
            }
            stanza_free(st);
            if (done) break;
        }
    }
    if (rc != 0) {
        link_free(l);
        return NULL;
    }
    return l;
}

void ctl_link_close(ctl_link *l)
{
    if (!l) return;
    if (!l->closed) {
        char err[64];
        static const char end[] = "</stream:stream>";
        if (ctl_link_send(l, end, sizeof end - 1, err, sizeof err) == 0) {
            /* Wait briefly for the router's end of stream, so it sees a clean close. */
            long long deadline = now_ms() + 1000;
            while (!l->closed && read_some(l, deadline, err, sizeof err) == 0) {
            }
        }
    }
    link_free(l);
}
