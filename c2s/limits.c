/* Rate control and throttles.
 *
 * Bytes: a token bucket per connection (limits/rate-bytes per second, up to
 * limits/rate-burst). A connection that runs out stops being read until the
 * bucket refills, so a flooder is slowed down by TCP itself; one that stays
 * out of tokens for limits/rate-disconnect-after is cut off with
 * <policy-violation/>.
 *
 * Authentication: failures are counted per address and per account in a
 * window (limits/auth-failure-window); past the limit further attempts are
 * refused with temporary-auth-failure without looking at the credentials.
 *
 * Registration: at most register/per-ip-per-minute accounts per address. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s/c2s.h"
#include "c2s/observe.h"
#include "common/log.h"

#define THROTTLE_TICK_MS 50

typedef struct fail_entry {
    unsigned count;
    uint64_t window_start;
} fail_entry;

static void refill(client *cl, uint64_t now)
{
    c2s *srv = cl->srv;
    if (now > cl->refill_at) {
        uint64_t add = (now - cl->refill_at) * srv->lim.rate_bytes / 1000;
        if (add > 0) {
            cl->tokens += (int64_t)add;
            if (cl->tokens > (int64_t)srv->lim.rate_burst) cl->tokens = (int64_t)srv->lim.rate_burst;
            cl->refill_at = now;
        }
    }
}

static void ensure_timer(c2s *srv)
{
    if (srv->throttle_timer_on) return;
    srv->throttle_timer_on = 1;
    uv_timer_start(&srv->throttle_timer, throttle_timer_cb, THROTTLE_TICK_MS, THROTTLE_TICK_MS);
}

int rate_account(client *cl, size_t len)
{
    c2s *srv = cl->srv;
    if (!srv->lim.rate_bytes) return 0;
    uint64_t now = uv_now(srv->loop);
    refill(cl, now);
    cl->tokens -= (int64_t)len;
    if (cl->tokens >= 0) {
        cl->throttled_since = 0;
        return 0;
    }
    if (!cl->throttled_since) {
        cl->throttled_since = now;
        log_info("c2s %s: client %" PRIu64 " (%s): over %" PRIu64 " bytes/s, slowing it down", srv->name, cl->id,
                 client_label(cl), srv->lim.rate_bytes);
    } else if (srv->lim.rate_max_throttled_ms && now - cl->throttled_since >= srv->lim.rate_max_throttled_ms) {
        log_warn("c2s %s: client %" PRIu64 " (%s): over the rate limit for %" PRIu64 " ms, disconnecting", srv->name,
                 cl->id, client_label(cl), now - cl->throttled_since);
        return -1;
    }
    /* Wait until the debt is paid. */
    cl->resume_read_at = now + (uint64_t)(-cl->tokens) * 1000 / srv->lim.rate_bytes + 1;
    if (!cl->throttled) {
        cl->throttled = 1;
        cl->next_throttled = srv->throttled;
        srv->throttled = cl;
    }
    if (cl->c) conn_pause_read(cl->c);
    ensure_timer(srv);
    return 1;
}

void rate_unthrottle(client *cl)
{
    c2s *srv = cl->srv;
    for (client **pp = &srv->throttled; *pp; pp = &(*pp)->next_throttled) {
        if (*pp == cl) {
            *pp = cl->next_throttled;
            break;
        }
    }
    cl->throttled = 0;
    cl->next_throttled = NULL;
}

void throttle_timer_cb(uv_timer_t *t)
{
    c2s *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    for (client *cl = srv->throttled, *next; cl; cl = next) {
        next = cl->next_throttled;
        if (now < cl->resume_read_at) continue;
        rate_unthrottle(cl);
        if (cl->c && !cl->op && cl->state != CL_CLOSING) conn_resume_read(cl->c);
    }
    if (!srv->throttled) {
        uv_timer_stop(&srv->throttle_timer);
        srv->throttle_timer_on = 0;
    }
}

/* ---- failed authentication ---- */

static fail_entry *account_entry(c2s *srv, const char *key, int create)
{
    fail_entry *f = strmap_get(&srv->account_failures, key);
    if (!f && create) {
        f = calloc(1, sizeof *f);
        if (!f) abort();
        strmap_put(&srv->account_failures, key, f);
    }
    return f;
}

static void account_key(client *cl, const char *user, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s@%s", user, cl->domain ? cl->domain : "");
}

int auth_throttled(client *cl, const char *user)
{
    c2s *srv = cl->srv;
    uint64_t now = uv_now(srv->loop);
    ip_entry *e = cl->ipe;
    if (e && srv->lim.auth_failures_per_ip && e->auth_failures >= srv->lim.auth_failures_per_ip &&
        now - e->auth_window_start < srv->lim.auth_failure_window_ms) {
        log_warn("c2s %s: client %" PRIu64 " (%s): too many failed logins from this address", srv->name, cl->id,
                 e->ip);
        return 1;
    }
    if (user && srv->lim.auth_failures_per_account) {
        char key[2 * 1024 + 2];
        account_key(cl, user, key, sizeof key);
        fail_entry *f = account_entry(srv, key, 0);
        if (f && f->count >= srv->lim.auth_failures_per_account &&
            now - f->window_start < srv->lim.auth_failure_window_ms) {
            log_warn("c2s %s: client %" PRIu64 " (%s): too many failed logins for %s", srv->name, cl->id,
                     client_label(cl), key);
            return 1;
        }
    }
    return 0;
}

void auth_failed(client *cl, const char *user)
{
    c2s *srv = cl->srv;
    observe_auth_failure();
    uint64_t now = uv_now(srv->loop);
    ip_entry *e = cl->ipe;
    if (e) {
        if (!e->auth_failures || now - e->auth_window_start >= srv->lim.auth_failure_window_ms) {
            e->auth_failures = 0;
            e->auth_window_start = now;
        }
        e->auth_failures++;
    }
    if (user) {
        char key[2 * 1024 + 2];
        account_key(cl, user, key, sizeof key);
        fail_entry *f = account_entry(srv, key, 1);
        if (!f->count || now - f->window_start >= srv->lim.auth_failure_window_ms) {
            f->count = 0;
            f->window_start = now;
        }
        f->count++;
    }
}

void auth_succeeded(client *cl, const char *user)
{
    c2s *srv = cl->srv;
    char key[2 * 1024 + 2];
    account_key(cl, user, key, sizeof key);
    fail_entry *f = strmap_del(&srv->account_failures, key);
    free(f);
}

void account_failures_expire(c2s *srv, uint64_t now)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&srv->account_failures, &pos, &key, &val)) {
        fail_entry *f = val;
        if (now - f->window_start >= srv->lim.auth_failure_window_ms) {
            strmap_del(&srv->account_failures, key);
            free(f);
        }
    }
}

/* ---- registration ---- */

int register_throttled(client *cl)
{
    c2s *srv = cl->srv;
    ip_entry *e = cl->ipe;
    if (!e || !srv->register_per_ip_per_minute) return 0;
    uint64_t now = uv_now(srv->loop);
    if (now - e->reg_window_start >= 60000) return 0;
    return e->registrations >= srv->register_per_ip_per_minute;
}

void register_count(client *cl)
{
    ip_entry *e = cl->ipe;
    if (!e) return;
    uint64_t now = uv_now(cl->srv->loop);
    if (!e->registrations || now - e->reg_window_start >= 60000) {
        e->registrations = 0;
        e->reg_window_start = now;
    }
    e->registrations++;
}
