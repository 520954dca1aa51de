/* The listening socket for incoming server-to-server streams (5269). */
#include "common/log.h"
#include "s2s/s2s.h"

static void on_connection(uv_stream_t *server, int status)
{
    s2s *s = server->data;
    if (status < 0) {
        log_warn("s2s: accept: %s", uv_strerror(status));
        return;
    }
    in_accept(s, server, 0);
}

int listener_start(s2s *s, const char *address, int port)
{
    s->listener.data = s;
    int rc = conn_listen(s->loop, &s->listener, address, port, 0, on_connection);
    if (rc != 0) {
        log_error("s2s: cannot listen on %s:%d: %s", address, port, uv_strerror(rc));
        return -1;
    }
    s->listener.data = s;
    s->listening = 1;
    log_notice("s2s: listening on %s:%d", address, port);
    return 0;
}

void listener_stop(s2s *s)
{
    if (!s->listening) return;
    s->listening = 0;
    uv_close((uv_handle_t *)&s->listener, NULL);
}
