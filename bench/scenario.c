/* What each scenario does with its connections.
 *   login        C connections log in, close and log in again (next account) for T seconds
 *   idle         N sessions log in and stay; the measured phase is the hold
 *   messages     pairs (even index sends to the next odd one), W messages in flight each;
 *                or, with --rate, open loop: messages leave on a fixed schedule whatever
 *                the replies, and latency counts from the scheduled time (so a server
 *                that falls behind cannot hide its queueing: no coordinated omission);
 *                with --peer-domain the receivers are on a second server (s2s)
 *   presence     every session sends presence updates, one in flight (paced by its own echo)
 *   offline-send senders send M messages to accounts that are not online
 *   offline-recv the recipients log in and take their stored messages
 *   register     in-band registration (XEP-0077) of the accounts */
#include "bench/lg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is(const lg_worker *w, const char *s) { return strcmp(w->o->scenario, s) == 0; }

static int user_of(const lg_worker *w, const lg_conn *c)
{
    const lg_opts *o = w->o;
    if (is(w, "login")) return o->user_base + (int)(((long)c->gidx + (long)o->conns * c->got) % o->users);
    return o->user_base + c->gidx;
}

/* Scenarios whose sessions are logged in before the measured phase. */
static int has_setup(const lg_worker *w)
{
    return !is(w, "login") && !is(w, "offline-recv");
}

static void start_some(lg_worker *w)
{
    while (w->next_start < w->count && w->in_progress < w->o->concurrency) {
        lg_conn *c = &w->conns[w->next_start++];
        c->user = user_of(w, c);
        c->side = is(w, "messages") && w->o->peer_domain && (c->gidx % 2);
        if (conn_start(w, c) != 0) w->st.setup_failures++;
    }
}

void scen_setup(lg_worker *w)
{
    if (has_setup(w)) start_some(w);
}

int scen_setup_done(const lg_worker *w)
{
    if (!has_setup(w)) return 1;
    return (uint64_t)w->ready_count + w->st.setup_failures >= (uint64_t)w->count;
}

/* The id carries the time the message counts from: when it was sent, or
 * in the open loop when it was scheduled. */
static void send_message(lg_worker *w, lg_conn *from, const char *to, char kind, uint64_t t_ns)
{
    static const char pad[] = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789"
                              "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz";
    int body = w->o->body_bytes < (int)sizeof pad - 1 ? w->o->body_bytes : (int)sizeof pad - 1;
    conn_sendf(w, from, "<message to='%s' type='chat' id='%c:%llu:%llu'><body>%.*s</body></message>", to, kind,
               (unsigned long long)t_ns, (unsigned long long)from->seq++, body, pad);
    w->st.sent++;
}

static void send_presence(lg_worker *w, lg_conn *c)
{
    conn_sendf(w, c, "<presence id='p:%llu:%llu'><status>s%llu</status></presence>", (unsigned long long)lg_now_ns(),
               (unsigned long long)c->seq, (unsigned long long)c->seq);
    c->seq++;
    c->inflight++;
    w->st.sent++;
}

void scen_on_ready(lg_worker *w, lg_conn *c)
{
    if (is(w, "register")) {
        w->ready_count++;
        conn_close(w, c, 1);
        return;
    }
    if (is(w, "login")) {
        w->st.t_end = lg_now();
        conn_close(w, c, 1);   /* log out; the next account logs in when the server has closed */
        return;
    }
    if (!w->go) w->ready_count++;
}

void scen_on_closed(lg_worker *w, lg_conn *c, int failed)
{
    if (failed && !w->go && has_setup(w)) w->st.setup_failures++;
    if (is(w, "login") && w->go && !w->stopping) {
        c->got++;
        c->user = user_of(w, c);
        /* Not from inside expat: the new login resets this parser. */
        if (c->in_parse) c->start_after_parse = 1;
        else conn_start(w, c);
    }
}

/* "K:<ns>:<seq>" -> microseconds since the stanza was sent, or -1. */
static long long age_us(const char *id, char kind)
{
    if (id[0] != kind || id[1] != ':') return -1;
    unsigned long long t = strtoull(id + 2, NULL, 10);
    uint64_t now = lg_now_ns();
    return now > t ? (long long)((now - t) / 1000u) : 0;
}

void scen_on_stanza(lg_worker *w, lg_conn *c)
{
    if (!strcmp(c->type, "error")) {
        w->st.stanza_errors++;
        return;
    }
    if (is(w, "messages") && !strcmp(c->el, "message")) {
        long long a = age_us(c->id, 'm');
        if (a < 0) return;
        w->st.received++;
        w->st.t_end = lg_now();
        lg_hist_add(&w->st.lat, (uint64_t)a);
        lg_conn *s = &w->conns[c->peer];
        if (s->inflight > 0) s->inflight--;
        if (w->go && !w->stopping && s->state == C_READY && !w->rate) {
            char to[96];
            send_message(w, s, conn_jid(w, c, to, sizeof to), 'm', lg_now_ns());
            s->inflight++;
        }
    } else if (is(w, "presence") && !strcmp(c->el, "presence")) {
        long long a = age_us(c->id, 'p');
        if (a < 0 || !w->go) return;
        char me[96];
        conn_jid_user(w, c->user, me, sizeof me);
        size_t ml = strlen(me);
        w->st.received++;
        w->st.t_end = lg_now();
        if (!strncmp(c->from, me, ml) && (c->from[ml] == '/' || c->from[ml] == 0)) {
            w->st.received_self++;
            if (c->inflight > 0) c->inflight--;
            if (!w->stopping && c->inflight == 0) send_presence(w, c);
        } else {
            w->st.received_other++;
            lg_hist_add(&w->st.lat, (uint64_t)a);
        }
    } else if (is(w, "offline-recv") && !strcmp(c->el, "message")) {
        if (c->id[0] != 'o' || c->id[1] != ':') return;
        w->st.received++;
        c->got++;
        w->st.t_end = lg_now();
    }
}

void scen_go(lg_worker *w)
{
    const lg_opts *o = w->o;
    w->go = 1;
    w->go_at = lg_now();
    w->go_ns = lg_now_ns();
    w->st.t_go = w->go_at;
    /* the workers share the rate as they share the pairs */
    w->rate = is(w, "messages") && o->rate > 0 ? o->rate * ((double)w->count / o->conns) : 0;
    if (is(w, "login") || is(w, "offline-recv")) {
        start_some(w);
        return;
    }
    for (int i = 0; i < w->count; i++) {
        lg_conn *c = &w->conns[i];
        if (c->state != C_READY) continue;
        if (is(w, "messages") && (c->gidx % 2) == 0 && i + 1 < w->count) {
            c->peer = i;
            w->conns[i + 1].peer = i;
            char to[96];
            conn_jid(w, &w->conns[i + 1], to, sizeof to);
            for (int k = 0; k < o->window && !w->rate; k++) {
                send_message(w, c, to, 'm', lg_now_ns());
                c->inflight++;
            }
        } else if (is(w, "presence")) {
            send_presence(w, c);
        } else if (is(w, "offline-send")) {
            long total = o->messages, senders = o->conns;
            long from = total * c->gidx / senders, to = total * (c->gidx + 1) / senders;
            char jid[96];
            for (long k = from; k < to; k++)
                send_message(w, c, conn_jid_user(w, o->target_base + (int)(k % o->targets), jid, sizeof jid), 'o',
                             lg_now_ns());
            conn_close(w, c, 1);
        }
    }
}

/* Open loop: message k of this worker is due at go + k/rate. */
static uint64_t due_ns(const lg_worker *w, uint64_t k)
{
    return w->go_ns + (uint64_t)((double)k * 1e9 / w->rate);
}

long long scen_next_due_ns(const lg_worker *w)
{
    if (!w->rate || !w->go || w->stopping || w->done) return -1;
    uint64_t at = due_ns(w, w->scheduled), now = lg_now_ns();
    return at > now ? (long long)(at - now) : 0;
}

/* Send every message whose time has come, each from the next pair whose
 * sender and receiver are both logged in; the id holds the scheduled time. */
static void send_due(lg_worker *w)
{
    uint64_t now = lg_now_ns();
    int pairs = w->count / 2;
    while (pairs > 0 && due_ns(w, w->scheduled) <= now) {
        lg_conn *s = NULL;
        for (int tries = 0; tries < pairs && !s; tries++) {
            int i = 2 * (w->next_sender++ % pairs);
            if (w->conns[i].state == C_READY && w->conns[i + 1].state == C_READY) s = &w->conns[i];
        }
        if (!s) return;   /* nobody left to send: the drain ends the run */
        char to[96];
        send_message(w, s, conn_jid(w, &w->conns[s->idx + 1], to, sizeof to), 'm', due_ns(w, w->scheduled));
        s->inflight++;
        w->scheduled++;
    }
}

static int all_closed(const lg_worker *w)
{
    for (int i = 0; i < w->count; i++)
        if (w->conns[i].state != C_FREE) return 0;
    return 1;
}

void scen_tick(lg_worker *w)
{
    const lg_opts *o = w->o;
    double now = lg_now();
    if (!w->go) {
        if (has_setup(w)) start_some(w);
        return;
    }
    if (w->done) return;
    if (is(w, "offline-recv")) {
        start_some(w);
        long per_user = o->users > 0 ? o->expect / o->users : 0;
        int complete = w->next_start >= w->count;
        for (int i = 0; complete && i < w->count; i++)
            if (w->conns[i].got < per_user && w->conns[i].state == C_READY) complete = 0;
        if ((complete && w->in_progress == 0) || now - w->go_at > o->timeout) w->done = 1;
        return;
    }
    if (is(w, "idle") || is(w, "register")) { w->done = 1; return; }
    if (is(w, "offline-send")) {
        if (all_closed(w) || now - w->go_at > o->timeout) { w->done = 1; if (!w->st.t_end) w->st.t_end = now; }
        return;
    }
    if (!w->stopping && now - w->go_at >= o->duration) {
        w->stopping = 1;
        w->go_at = now;   /* from here: the drain */
    }
    if (!w->stopping) {
        if (is(w, "login")) start_some(w);
        if (w->rate) send_due(w);
        return;
    }
    int drained;
    if (is(w, "messages")) drained = w->st.received >= w->st.sent;
    else if (is(w, "presence")) drained = w->st.received_other >= w->st.sent * (uint64_t)o->contacts;
    else drained = w->in_progress == 0;
    if (drained || now - w->go_at > (o->timeout < 10 ? o->timeout : 10)) w->done = 1;
}
