/* Metrics: counters and gauges, served in the Prometheus text format over
 * plain HTTP (GET /metrics) on an address of the operator's choosing,
 * loopback by default. Single-threaded like everything else: updating a
 * metric is an add to a number. */
#ifndef SB_METRICS_H
#define SB_METRICS_H
#include <stdint.h>
#include <uv.h>

typedef struct metric metric;

/* Register a metric (names: [a-z_]+, e.g. "switchboard_stanzas_in_total").
 * labels: NULL or a label set such as "type=\"message\"". Registering the
 * same name and labels twice returns the same metric. */
metric *metrics_counter(const char *name, const char *help, const char *labels);
metric *metrics_gauge(const char *name, const char *help, const char *labels);

void metric_inc(metric *m);
void metric_add(metric *m, double v);
void metric_set(metric *m, double v);
void metric_dec(metric *m);
double metric_value(const metric *m);

/* A gauge whose value is read when scraped (queue depths, sessions). */
typedef double (*metric_reader)(void *ud);
void metrics_gauge_fn(const char *name, const char *help, const char *labels, metric_reader fn, void *ud);
/* A counter kept elsewhere (a total the owner maintains), read when scraped. */
void metrics_counter_fn(const char *name, const char *help, const char *labels, metric_reader fn, void *ud);

/* The whole text exposition (malloc'd), e.g. for tests. */
char *metrics_render(void);

/* Serve GET /metrics on addr:port. Returns 0 or a libuv error (logged). */
int metrics_listen(uv_loop_t *loop, const char *addr, int port);
/* Stop serving and free every metric. */
void metrics_shutdown(void);

#endif
