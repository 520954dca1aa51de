/* Rate control, throttles and the cap on unauthenticated connections.
 *
 * Rates are token buckets that may go into debt: what was read is always
 * parsed, and reading then pauses until the debt is paid, so a flooder is
 * slowed down by TCP itself and its long-run rate is exactly the configured
 * one. A connection that stays in debt for limits/rate-disconnect-after is
 * cut off with <policy-violation/>. Three buckets:
 *   - bytes per connection (limits/rate-bytes, rate-burst);
 *   - top-level elements per connection (limits/rate-stanzas,
 *     rate-stanzas-burst): small stanzas cost the sm and the router far more
 *     than their bytes say;
 *   - top-level elements per address, all its connections together
 *     (limits/rate-stanzas-per-ip, rate-stanzas-per-ip-burst), so that
 *     opening more connections does not multiply the rate. The address's
 *     entry outlives its connections while in debt, so reconnecting does not
 *     refill it either.
 *
 * Unauthenticated connections are counted from accept until authentication
 * succeeds, in all (limits/max-unauthenticated) and per address
 * (limits/unauthenticated-per-ip): they cost a TLS handshake and parser
 * state without any account to blame, and are what a connection flood
 * consists of.
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

/* ---- token buckets ---- */

static void bucket_refill(int64_t *tokens, uint64_t *refill_at, uint64_t rate, uint64_t burst, uint64_t now)
{
    if (now <= *refill_at) return;
    uint64_t add = (now - *refill_at) * rate / 1000;
    if (add == 0) return;   /* less than one token yet: keep counting from refill_at */
    uint64_t room = *tokens < (int64_t)burst ? (uint64_t)((int64_t)burst - *tokens) : 0;
    *tokens += (int64_t)(add < room ? add : room);
    *refill_at = now;
}

/* Milliseconds until a bucket is out of debt; 0 if it is not in debt. */
static uint64_t bucket_debt_ms(int64_t tokens, uint64_t rate)
{
    if (tokens >= 0 || !rate) return 0;
    return (uint64_t)(-tokens) * 1000 / rate + 1;
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
    bucket_refill(&cl->tokens, &cl->refill_at, srv->lim.rate_bytes, srv->lim.rate_burst, now);
    cl->tokens -= (int64_t)len;
    /* Still over the rate after rate-disconnect-after: do not even parse this. */
    if (cl->tokens < 0 && cl->throttled_since && srv->lim.rate_max_throttled_ms &&
        now - cl->throttled_since >= srv->lim.rate_max_throttled_ms) {
        log_warn("c2s %s: client %" PRIu64 " (%s): over %" PRIu64 " bytes/s for %" PRIu64 " ms, disconnecting",
                 srv->name, cl->id, client_label(cl), srv->lim.rate_bytes, now - cl->throttled_since);
        return -1;
    }
    return 0;
}

void rate_ip_entry_init(c2s *srv, ip_entry *e)
{
    e->stanza_tokens = (int64_t)srv->lim.rate_stanzas_per_ip_burst;
    e->stanza_refill_at = uv_now(srv->loop);
}

int rate_ip_entry_in_debt(const c2s *srv, const ip_entry *e, uint64_t now)
{
    uint64_t wait = bucket_debt_ms(e->stanza_tokens, srv->lim.rate_stanzas_per_ip);
    return wait && now < e->stanza_refill_at + wait;
}

void rate_account_element(client *cl)
{
    c2s *srv = cl->srv;
    uint64_t now = uv_now(srv->loop);
    if (srv->lim.rate_stanzas) {
        bucket_refill(&cl->stanza_tokens, &cl->stanza_refill_at, srv->lim.rate_stanzas,
                      srv->lim.rate_stanzas_burst, now);
        cl->stanza_tokens--;
    }
    ip_entry *e = cl->ipe;
    if (e && srv->lim.rate_stanzas_per_ip) {
        bucket_refill(&e->stanza_tokens, &e->stanza_refill_at, srv->lim.rate_stanzas_per_ip,
                      srv->lim.rate_stanzas_per_ip_burst, now);
        e->stanza_tokens--;
    }
}

int rate_settle(client *cl)
{
    c2s *srv = cl->srv;
    uint64_t now = uv_now(srv->loop);
    const char *what = NULL;
    uint64_t wait = 0, w;
    if (srv->lim.rate_bytes) {
        bucket_refill(&cl->tokens, &cl->refill_at, srv->lim.rate_bytes, srv->lim.rate_burst, now);
        if ((w = bucket_debt_ms(cl->tokens, srv->lim.rate_bytes)) > wait) {
            wait = w;
            what = "bytes";
        }
    }
    if (srv->lim.rate_stanzas) {
        bucket_refill(&cl->stanza_tokens, &cl->stanza_refill_at, srv->lim.rate_stanzas,
                      srv->lim.rate_stanzas_burst, now);
        if ((w = bucket_debt_ms(cl->stanza_tokens, srv->lim.rate_stanzas)) > wait) {
            wait = w;
            what = "stanzas";
        }
    }
    ip_entry *e = cl->ipe;
    if (e && srv->lim.rate_stanzas_per_ip) {
        bucket_refill(&e->stanza_tokens, &e->stanza_refill_at, srv->lim.rate_stanzas_per_ip,
                      srv->lim.rate_stanzas_per_ip_burst, now);
        if ((w = bucket_debt_ms(e->stanza_tokens, srv->lim.rate_stanzas_per_ip)) > wait) {
            wait = w;
            what = "stanzas from its address";
        }
    }
    if (!wait) {
        cl->throttled_since = 0;
        return 0;
    }
    if (!cl->throttled_since) {
        cl->throttled_since = now;
        log_info("c2s %s: client %" PRIu64 " (%s): over the rate of %s, slowing it down", srv->name, cl->id,
                 client_label(cl), what);
    } else if (srv->lim.rate_max_throttled_ms && now - cl->throttled_since >= srv->lim.rate_max_throttled_ms) {
        log_warn("c2s %s: client %" PRIu64 " (%s): over the rate of %s for %" PRIu64 " ms, disconnecting",
                 srv->name, cl->id, client_label(cl), what, now - cl->throttled_since);
        return -1;
    }
    /* Wait until the debt is paid. */
    cl->throttled_by = what;
    cl->resume_read_at = now + wait;
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
        if (cl->throttled_since && srv->lim.rate_max_throttled_ms && cl->c && cl->state != CL_CLOSING &&
            now - cl->throttled_since >= srv->lim.rate_max_throttled_ms) {
            /* Still paying for what it sent: over the rate all this time, however
             * much a single read carried. */
            log_warn("c2s %s: client %" PRIu64 " (%s): over the rate of %s for %" PRIu64 " ms, disconnecting",
                     srv->name, cl->id, client_label(cl), cl->throttled_by ? cl->throttled_by : "bytes",
                     now - cl->throttled_since);
            rate_unthrottle(cl);
            client_stream_error(cl, "policy-violation", "sending too fast for too long");
            continue;
        }
        if (now < cl->resume_read_at) continue;
        rate_unthrottle(cl);
        if (cl->c && !cl->op && cl->state != CL_CLOSING) conn_resume_read(cl->c);
    }
    if (!srv->throttled) {
        uv_timer_stop(&srv->throttle_timer);
        srv->throttle_timer_on = 0;
    }
}

/* ---- unauthenticated connections ---- */

int unauth_admit(client *cl)
{
    c2s *srv = cl->srv;
    cl->unauth_counted = 1;
    srv->nunauthed++;
    if (srv->lim.max_unauthenticated && srv->nunauthed > srv->lim.max_unauthenticated) {
        log_warn("c2s %s: refusing a connection: %zu connections are not authenticated yet (limit %u)", srv->name,
                 srv->nunauthed, srv->lim.max_unauthenticated);
        return -1;
    }
    return 0;
}

void unauth_release(client *cl)
{
    if (!cl->unauth_counted) return;
    cl->unauth_counted = 0;
    cl->srv->nunauthed--;
    if (cl->ipe && cl->ipe->unauthed) cl->ipe->unauthed--;
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
    unauth_release(cl);
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
