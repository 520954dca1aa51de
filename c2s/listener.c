/* Listening sockets (STARTTLS port and direct TLS port, XEP-0368), accepting
 * connections, and the per-address bookkeeping: connection caps (all
 * connections, and those not authenticated yet) and the entries the
 * throttles count in. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "c2s/c2s.h"
#include "common/log.h"

ip_entry *ip_entry_get(c2s *srv, const char *ip)
{
    ip_entry *e = strmap_get(&srv->ips, ip);
    if (e) return e;
    size_t n = strlen(ip);
    e = calloc(1, sizeof *e + n + 1);
    if (!e) abort();
    memcpy(e->ip, ip, n + 1);
    rate_ip_entry_init(srv, e);
    strmap_put(&srv->ips, ip, e);
    return e;
}

static int ip_entry_idle(const c2s *srv, const ip_entry *e, uint64_t now)
{
    if (e->conns) return 0;
    if (e->auth_failures && now - e->auth_window_start < srv->lim.auth_failure_window_ms) return 0;
    if (e->registrations && now - e->reg_window_start < 60000) return 0;
    if (rate_ip_entry_in_debt(srv, e, now)) return 0;
    return 1;
}

void ip_entry_release(c2s *srv, ip_entry *e)
{
    if (e->conns) e->conns--;
    if (ip_entry_idle(srv, e, uv_now(srv->loop))) {
        strmap_del(&srv->ips, e->ip);
        free(e);
    }
}

void ip_entries_expire(c2s *srv, uint64_t now)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&srv->ips, &pos, &key, &val)) {
        ip_entry *e = val;
        if (ip_entry_idle(srv, e, now)) {
            strmap_del(&srv->ips, key);
            free(e);
        }
    }
}

int client_set_ip(client *cl, const char *ip)
{
    c2s *srv = cl->srv;
    ip_entry *e = ip_entry_get(srv, ip);
    e->conns++;
    if (cl->unauth_counted) e->unauthed++;
    if (cl->ipe) {
        /* The PROXY header names the real address: move the counts there. */
        if (cl->unauth_counted && cl->ipe->unauthed) cl->ipe->unauthed--;
        ip_entry_release(srv, cl->ipe);
    }
    cl->ipe = e;
    if (srv->lim.connections_per_ip && e->conns > srv->lim.connections_per_ip) {
        log_warn("c2s %s: refusing a connection from %s: %u connections from that address (limit %u)", srv->name,
                 ip, e->conns, srv->lim.connections_per_ip);
        return -1;
    }
    if (srv->lim.unauthenticated_per_ip && e->unauthed > srv->lim.unauthenticated_per_ip) {
        log_warn("c2s %s: refusing a connection from %s: %u connections from that address are not "
                 "authenticated yet (limit %u)", srv->name, ip, e->unauthed, srv->lim.unauthenticated_per_ip);
        return -1;
    }
    return 0;
}

/* Refuse a new connection. On the direct TLS port no stream can be spoken
 * before a TLS handshake, and a handshake is the very cost a cap avoids:
 * the connection is just closed. */
static void refuse(client *cl, int direct_tls, const char *condition, const char *text)
{
    /* A refused connection only waits to be closed: it holds no slot. */
    unauth_release(cl);
    if (direct_tls) {
        cl->state = CL_CLOSING;
        conn_abort(cl->c, text);
    } else {
        client_stream_error(cl, condition, text);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    c2s_listener *l = server->data;
    c2s *srv = l->srv;
    if (status < 0) {
        log_error("c2s %s: accept failed: %s", srv->name, uv_strerror(status));
        return;
    }
    conn_limits lim;
    conn_limits_default(&lim);
    lim.write_high_water = srv->lim.write_high_water;
    lim.write_max = srv->lim.write_max;
    conn *c = conn_accept(server, &lim, NULL, NULL);
    if (!c) return;
    if (srv->stopping) {
        conn_abort(c, "shutting down");
        return;
    }
    client *cl = client_new(srv, c, l->direct_tls);
    log_debug("c2s %s: client %" PRIu64 " connected from %s%s", srv->name, cl->id, conn_peer(c),
              l->direct_tls ? " (direct TLS)" : "");
    if (srv->lim.max_connections && srv->nclients > srv->lim.max_connections) {
        log_warn("c2s %s: refusing a connection from %s: %zu connections (limit %u)", srv->name, conn_peer(c),
                 srv->nclients, srv->lim.max_connections);
        client_stream_error(cl, "resource-constraint", "the server has too many connections");
        return;
    }
    /* The server as a whole is short of room (RFC 6120 4.9.3.17), whoever
     * this client is: resource-constraint, as for max-connections. */
    if (unauth_admit(cl) < 0) {
        refuse(cl, l->direct_tls, "resource-constraint", "too many connections are authenticating; try again later");
        return;
    }
    /* This address is over a local policy (4.9.3.14): policy-violation. */
    if (!srv->proxy_protocol && client_set_ip(cl, conn_peer_ip(c)) < 0)
        refuse(cl, l->direct_tls, "policy-violation", "too many connections from your address");
}

static int open_one(c2s *srv, c2s_listener *l, const char *address, int port, int direct_tls, int reuseport)
{
    l->srv = srv;
    l->direct_tls = direct_tls;
    l->port = port;
    l->tcp.data = l;
    int rv = conn_listen(srv->loop, &l->tcp, address, port, reuseport, on_connection);
    if (rv < 0) {
        log_error("c2s %s: cannot listen on %s:%d: %s", srv->name, address, port, uv_strerror(rv));
        return -1;
    }
    l->open = 1;
    log_notice("c2s %s: listening for clients on %s:%d (%s%s)", srv->name, address, port,
               direct_tls ? "direct TLS" : "STARTTLS", reuseport ? ", shared port" : "");
    return 0;
}

int listener_start(c2s *srv, const char *address, int port, int tls_port, int reuseport)
{
    if (open_one(srv, &srv->listeners[0], address, port, 0, reuseport) < 0) return -1;
    if (tls_port > 0 && open_one(srv, &srv->listeners[1], address, tls_port, 1, reuseport) < 0) return -1;
    return 0;
}

void listener_stop(c2s *srv)
{
    for (int i = 0; i < 2; i++) {
        if (srv->listeners[i].open) {
            uv_close((uv_handle_t *)&srv->listeners[i].tcp, NULL);
            srv->listeners[i].open = 0;
        }
    }
}
