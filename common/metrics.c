#include "common/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/conn.h"
#include "common/log.h"

#define METRICS_MAX_REQUEST 8192
#define METRICS_TIMEOUT_MS 5000

typedef enum { METRIC_COUNTER, METRIC_GAUGE } metric_kind;

struct metric {
    char *name, *help, *labels;
    metric_kind kind;
    double value;
    metric_reader fn;
    void *fn_ud;
    metric *next;
};

static metric *metrics_head, *metrics_tail;
static uv_tcp_t metrics_server;
static int metrics_serving;

static metric *metric_find(const char *name, const char *labels)
{
    for (metric *m = metrics_head; m; m = m->next)
        if (!strcmp(m->name, name) && !strcmp(m->labels, labels ? labels : "")) return m;
    return NULL;
}

static metric *metric_register(const char *name, const char *help, const char *labels, metric_kind kind)
{
    metric *m = metric_find(name, labels);
    if (m) return m;
    m = calloc(1, sizeof *m);
    if (!m) abort();
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    m->labels = strdup(labels ? labels : "");
    if (!m->name || !m->help || !m->labels) abort();
    m->kind = kind;
    /* Keep registration order, so a metric's label sets stay together. */
    if (metrics_tail) metrics_tail->next = m; else metrics_head = m;
    metrics_tail = m;
    return m;
}

metric *metrics_counter(const char *name, const char *help, const char *labels)
{
    return metric_register(name, help, labels, METRIC_COUNTER);
}

metric *metrics_gauge(const char *name, const char *help, const char *labels)
{
    return metric_register(name, help, labels, METRIC_GAUGE);
}

void metrics_gauge_fn(const char *name, const char *help, const char *labels, metric_reader fn, void *ud)
{
    metric *m = metric_register(name, help, labels, METRIC_GAUGE);
    m->fn = fn;
    m->fn_ud = ud;
}

void metrics_counter_fn(const char *name, const char *help, const char *labels, metric_reader fn, void *ud)
{
    metric *m = metric_register(name, help, labels, METRIC_COUNTER);
    m->fn = fn;
    m->fn_ud = ud;
}

void metric_inc(metric *m) { m->value += 1; }
void metric_dec(metric *m) { m->value -= 1; }
void metric_add(metric *m, double v) { m->value += v; }
void metric_set(metric *m, double v) { m->value = v; }
double metric_value(const metric *m) { return m->fn ? m->fn(m->fn_ud) : m->value; }

char *metrics_render(void)
{
    buf out = BUF_INIT;
    const char *last_name = "";
    for (metric *m = metrics_head; m; m = m->next) {
        if (strcmp(m->name, last_name) != 0) {
            buf_printf(&out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                       m->kind == METRIC_COUNTER ? "counter" : "gauge");
            last_name = m->name;
        }
        double v = metric_value(m);
        if (m->labels[0])
            buf_printf(&out, "%s{%s} %.17g\n", m->name, m->labels, v);
        else
            buf_printf(&out, "%s %.17g\n", m->name, v);
    }
    buf_cstr(&out);
    return out.data;
}

/* ---- the HTTP side: one request per connection, then close ---- */

typedef struct scrape {
    buf request;
    int answered;
} scrape;

static void scrape_answer(conn *c, scrape *s)
{
    const char *req = buf_cstr(&s->request);
    buf resp = BUF_INIT;
    if (!strncmp(req, "GET /metrics ", 13) || !strncmp(req, "GET / ", 6)) {
        char *body = metrics_render();
        buf_printf(&resp, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(body), body);
        free(body);
    } else {
        buf_append_str(&resp, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    conn_write(c, resp.data, resp.len);
    buf_free(&resp);
    s->answered = 1;
    conn_close(c);
}

static void scrape_read(conn *c, const char *data, size_t len)
{
    scrape *s = conn_data(c);
    if (s->answered) return;
    buf_append(&s->request, data, len);
    if (s->request.len > METRICS_MAX_REQUEST) {
        conn_abort(c, "metrics request too large");
        return;
    }
    if (strstr(buf_cstr(&s->request), "\r\n\r\n")) scrape_answer(c, s);
}

static void scrape_close(conn *c, const char *reason)
{
    (void)reason;
    scrape *s = conn_data(c);
    buf_free(&s->request);
    free(s);
}

static const conn_handler scrape_handler = {.on_read = scrape_read, .on_close = scrape_close};

static void on_scrape_connection(uv_stream_t *server, int status)
{
    if (status < 0) return;
    scrape *s = calloc(1, sizeof *s);
    if (!s) abort();
    conn *c = conn_accept(server, NULL, &scrape_handler, s);
    if (!c) {
        free(s);
        return;
    }
    conn_set_timeout(c, METRICS_TIMEOUT_MS);
}

int metrics_listen(uv_loop_t *loop, const char *addr, int port)
{
    int rv = conn_listen(loop, &metrics_server, addr, port, 0, on_scrape_connection);
    if (rv < 0) {
        log_error("metrics: cannot listen on %s:%d: %s", addr, port, uv_strerror(rv));
        return rv;
    }
    metrics_serving = 1;
    log_notice("metrics on http://%s:%d/metrics", addr, port);
    return 0;
}

void metrics_shutdown(void)
{
    if (metrics_serving) {
        uv_close((uv_handle_t *)&metrics_server, NULL);
        metrics_serving = 0;
    }
    metric *m = metrics_head;
    while (m) {
        metric *next = m->next;
        free(m->name);
        free(m->help);
        free(m->labels);
        free(m);
        m = next;
    }
    metrics_head = metrics_tail = NULL;
}
