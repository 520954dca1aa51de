/* Counters and log-linear latency histograms (about 6% resolution). */
#include "bench/lg.h"

#include <time.h>

double lg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Values below 64 µs have their own bucket; above, 16 buckets per power of two. */
static unsigned bucket_of(uint64_t v)
{
    if (v < 64) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned b = 64u + (e - 6u) * 16u + (unsigned)((v >> (e - 4u)) & 15u);
    return b < LG_HBUCKETS ? b : LG_HBUCKETS - 1;
}

static double bucket_value(unsigned b)
{
    if (b < 64) return b;
    unsigned e = (b - 64u) / 16u + 6u, m = (b - 64u) % 16u;
    double lo = (double)(1ull << e) + (double)m * (double)(1ull << (e - 4u));
    return lo + (double)(1ull << (e - 4u)) / 2.0;
}

void lg_hist_add(lg_hist *h, uint64_t usec) { h->n[bucket_of(usec)]++; }

void lg_hist_merge(lg_hist *into, const lg_hist *from)
{
    for (unsigned i = 0; i < LG_HBUCKETS; i++) into->n[i] += from->n[i];
}

uint64_t lg_hist_count(const lg_hist *h)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < LG_HBUCKETS; i++) n += h->n[i];
    return n;
}

double lg_hist_quantile_ms(const lg_hist *h, double q)
{
    uint64_t total = lg_hist_count(h);
    if (!total) return -1;
    uint64_t want = (uint64_t)(q * (double)total);
    if (want >= total) want = total - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < LG_HBUCKETS; i++) {
        seen += h->n[i];
        if (seen > want) return bucket_value(i) / 1000.0;
    }
    return bucket_value(LG_HBUCKETS - 1) / 1000.0;
}
