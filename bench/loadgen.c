/* switchboard-loadgen: an XMPP load generator (see lg.h for the layout).
 * The parent forks --procs workers (each one epoll loop, up to ~15k
 * connections), waits until every worker has its sessions ready, prints
 * {"event":"ready"}, optionally waits for "go" on stdin (the driver reads
 * the server's CPU time and memory there), starts the measured phase, and
 * prints one JSON line with the merged results. */
#include "bench/lg.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t go_flag, term_flag;
static void on_usr1(int s) { (void)s; go_flag = 1; }
static void on_term(int s) { (void)s; term_flag = 1; }

static const char usage[] =
    "usage: switchboard-loadgen --scenario S [options]\n"
    "  --scenario login|idle|messages|presence|offline-send|offline-recv|register\n"
    "  --host 127.0.0.1 --port P[,P...] (one per c2s)  --domain localhost\n"
    "  --tls none|starttls|direct  --mech PLAIN|SCRAM-SHA-1  --prefix u --password pw\n"
    "  --user-base N --users N --conns N --procs N --sources N --per-source N\n"
    "  --concurrency N (logins under way per worker) --duration S --window W\n"
    "  --contacts K --messages M --target-base N --targets N --expect N --body-bytes N\n"
    "  --rate R (messages: open loop, R messages/s in all, latency from the scheduled time)\n"
    "  --peer-domain D --peer-port P[,P...] (messages: receivers on a second server)\n"
    "  --shared-salt (one SCRAM salt cache entry for all accounts: quick set-up of many sessions)\n"
    "  --wait-go --timeout S --verbose\n";

static int parse_port_list(int ports[32], int *n, const char *s)
{
    *n = 0;
    char *dup = strdup(s), *save = NULL;
    if (!dup) return -1;
    for (char *t = strtok_r(dup, ",", &save); t && *n < 32; t = strtok_r(NULL, ",", &save)) ports[(*n)++] = atoi(t);
    free(dup);
    return *n > 0 ? 0 : -1;
}

static int parse_args(lg_opts *o, int argc, char **argv)
{
    *o = (lg_opts){.domain = "localhost", .host = "127.0.0.1", .ports = {5222}, .nports = 1, .prefix = "u",
                   .password = "benchpass", .users = 0, .conns = 100, .procs = 1, .nsrc = 8, .per_src = 15000,
                   .concurrency = 200, .duration = 10, .window = 1, .contacts = 0, .body_bytes = 32,
                   .timeout = 120};
    static const struct option lo[] = {
        {"scenario", 1, 0, 's'}, {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"domain", 1, 0, 'd'},
        {"tls", 1, 0, 't'}, {"mech", 1, 0, 'm'}, {"prefix", 1, 0, 'x'}, {"password", 1, 0, 'w'},
        {"user-base", 1, 0, 'b'}, {"users", 1, 0, 'u'}, {"conns", 1, 0, 'c'}, {"procs", 1, 0, 'P'},
        {"sources", 1, 0, 'S'}, {"per-source", 1, 0, 'Q'}, {"concurrency", 1, 0, 'C'}, {"duration", 1, 0, 'D'},
        {"window", 1, 0, 'W'}, {"contacts", 1, 0, 'K'}, {"messages", 1, 0, 'M'}, {"target-base", 1, 0, 'B'},
        {"targets", 1, 0, 'T'}, {"expect", 1, 0, 'E'}, {"body-bytes", 1, 0, 'y'}, {"wait-go", 0, 0, 'g'},
        {"timeout", 1, 0, 'o'}, {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {"rate", 1, 0, 'r'},
        {"peer-domain", 1, 0, 'e'}, {"peer-port", 1, 0, 'f'}, {"shared-salt", 0, 0, 'z'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 's': o->scenario = optarg; break;
        case 'H': o->host = optarg; break;
        case 'p': if (parse_port_list(o->ports, &o->nports, optarg)) return -1; break;
        case 'f': if (parse_port_list(o->peer_ports, &o->npeer_ports, optarg)) return -1; break;
        case 'e': o->peer_domain = optarg; break;
        case 'r': o->rate = atof(optarg); break;
        case 'z': o->shared_salt = 1; break;
        case 'd': o->domain = optarg; break;
        case 't':
            o->tls = !strcmp(optarg, "starttls") ? TLS_STARTTLS : !strcmp(optarg, "direct") ? TLS_DIRECT : TLS_NONE;
            break;
        case 'm': o->mech = !strcmp(optarg, "PLAIN") ? MECH_PLAIN : MECH_SCRAM_SHA1; break;
        case 'x': o->prefix = optarg; break;
        case 'w': o->password = optarg; break;
        case 'b': o->user_base = atoi(optarg); break;
        case 'u': o->users = atoi(optarg); break;
        case 'c': o->conns = atoi(optarg); break;
        case 'P': o->procs = atoi(optarg); break;
        case 'S': o->nsrc = atoi(optarg); break;
        case 'Q': o->per_src = atoi(optarg); break;
        case 'C': o->concurrency = atoi(optarg); break;
        case 'D': o->duration = atof(optarg); break;
        case 'W': o->window = atoi(optarg); break;
        case 'K': o->contacts = atoi(optarg); break;
        case 'M': o->messages = atoi(optarg); break;
        case 'B': o->target_base = atoi(optarg); break;
        case 'T': o->targets = atoi(optarg); break;
        case 'E': o->expect = atol(optarg); break;
        case 'y': o->body_bytes = atoi(optarg); break;
        case 'g': o->wait_go = 1; break;
        case 'o': o->timeout = atof(optarg); break;
        case 'v': o->verbose = 1; break;
        default: return -1;
        }
    }
    if (!o->scenario || o->conns <= 0 || o->procs <= 0) return -1;
    if (o->users <= 0) o->users = o->conns;
    if (!strcmp(o->scenario, "messages") && (o->conns % 2)) o->conns++;
    if (!strcmp(o->scenario, "offline-send") && (o->targets <= 0 || o->messages <= 0)) return -1;
    if (o->procs > o->conns) o->procs = o->conns;
    if (o->rate < 0 || (o->peer_domain && !o->npeer_ports)) return -1;
    return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t r = write(fd, b, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    char *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static int worker_run(const lg_opts *o, int wid, int first, int count, int out)
{
    lg_worker w = {.o = o, .wid = wid, .first = first, .count = count};
    w.epfd = epoll_create1(EPOLL_CLOEXEC);
    w.conns = calloc((size_t)count, sizeof *w.conns);
    w.cache = sasl_cache_new(o->users + (o->user_base < 0 ? 0 : 0));
    if (w.epfd < 0 || !w.conns || !w.cache) return 1;
    for (int i = 0; i < count; i++) {
        w.conns[i].fd = -1;
        w.conns[i].idx = i;
        w.conns[i].gidx = first + i;
    }
    if (o->tls != TLS_NONE) {
        w.ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (!w.ssl_ctx) return 1;
        SSL_CTX_set_verify(w.ssl_ctx, SSL_VERIFY_NONE, NULL);   /* a self-signed benchmark certificate */
    }
    scen_setup(&w);
    int reported = 0;
    double t0 = lg_now();
    struct epoll_event ev[256];
    while (!w.done && !term_flag) {
        /* the open loop needs sub-millisecond wake-ups to keep its schedule */
        long long due = scen_next_due_ns(&w);
        int n;
        if (due >= 0 && due < 5000000) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = due};
            n = epoll_pwait2(w.epfd, ev, 256, &ts, NULL);
        } else {
            n = epoll_wait(w.epfd, ev, 256, 5);
        }
        for (int i = 0; i < n; i++) conn_event(&w, &w.conns[ev[i].data.u32], ev[i].events);
        scen_tick(&w);
        if (!reported && scen_setup_done(&w)) {
            reported = 1;
            if (write_all(out, "R", 1) != 0) return 1;
        }
        if (!reported && lg_now() - t0 > o->timeout) {
            fprintf(stderr, "loadgen[%d]: setup timed out (%d of %d ready)\n", wid, w.ready_count, count);
            w.st.setup_failures = (uint64_t)(count - w.ready_count);
            reported = 1;
            if (write_all(out, "R", 1) != 0) return 1;
        }
        if (go_flag && !w.go) scen_go(&w);
    }
    if (!w.st.t_end) w.st.t_end = lg_now();
    int rc = write_all(out, &w.st, sizeof w.st) == 0 ? 0 : 1;
    conn_free_all(&w);
    sasl_cache_free(w.cache);
    if (w.ssl_ctx) SSL_CTX_free(w.ssl_ctx);
    close(w.epfd);
    return rc;
}

static void print_result(const lg_opts *o, const lg_stats *s, int workers_ok)
{
    double window = s->t_end > s->t_go ? s->t_end - s->t_go : 0;
    long long lost = 0;
    if (!strcmp(o->scenario, "messages")) lost = (long long)s->sent - (long long)s->received;
    else if (!strcmp(o->scenario, "presence")) lost = (long long)(s->sent * (uint64_t)o->contacts) - (long long)s->received_other;
    else if (!strcmp(o->scenario, "offline-recv")) lost = o->expect - (long long)s->received;
    printf("{\"scenario\":\"%s\",\"tls\":\"%s\",\"mech\":\"%s\",\"conns\":%d,\"procs\":%d,\"workers_ok\":%d,"
           "\"window_s\":%.3f,\"logins\":%llu,\"login_failures\":%llu,\"connect_failures\":%llu,"
           "\"setup_failures\":%llu,\"stream_errors\":%llu,\"disconnects\":%llu,\"stanza_errors\":%llu,"
           "\"client_pbkdf2\":%llu,\"registered\":%llu,\"register_failures\":%llu,"
           "\"sent\":%llu,\"received\":%llu,\"received_self\":%llu,\"received_other\":%llu,\"lost\":%lld,"
           "\"rate\":%.1f,\"sent_per_s\":%.1f,\"logins_per_s\":%.1f,\"received_per_s\":%.1f,"
           "\"login_p50_ms\":%.3f,\"login_p99_ms\":%.3f,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f}\n",
           o->scenario, o->tls == TLS_NONE ? "none" : o->tls == TLS_STARTTLS ? "starttls" : "direct",
           o->mech == MECH_PLAIN ? "PLAIN" : "SCRAM-SHA-1", o->conns, o->procs, workers_ok, window,
           (unsigned long long)s->logins, (unsigned long long)s->login_failures,
           (unsigned long long)s->connect_failures, (unsigned long long)s->setup_failures,
           (unsigned long long)s->stream_errors, (unsigned long long)s->disconnects,
           (unsigned long long)s->stanza_errors, (unsigned long long)s->pbkdf2, (unsigned long long)s->registered,
           (unsigned long long)s->register_failures, (unsigned long long)s->sent, (unsigned long long)s->received,
           (unsigned long long)s->received_self, (unsigned long long)s->received_other, lost,
           o->rate, window > 0 ? (double)s->sent / window : 0,
           window > 0 ? (double)s->logins / window : 0, window > 0 ? (double)s->received / window : 0,
           lg_hist_quantile_ms(&s->login_lat, 0.5), lg_hist_quantile_ms(&s->login_lat, 0.99),
           lg_hist_quantile_ms(&s->lat, 0.5), lg_hist_quantile_ms(&s->lat, 0.99));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    lg_opts o;
    if (parse_args(&o, argc, argv) != 0) {
        fputs(usage, stderr);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if ((long)o.conns / o.procs + 64 > (long)rl.rlim_cur)
            fprintf(stderr, "loadgen: %d connections per worker exceed the open-file limit %ld; use more --procs\n",
                    o.conns / o.procs, (long)rl.rlim_cur);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_usr1};
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int P = o.procs;
    pid_t *pids = calloc((size_t)P, sizeof *pids);
    int *fds = calloc((size_t)P, sizeof *fds);
    if (!pids || !fds) return 1;
    int unit = !strcmp(o.scenario, "messages") ? 2 : 1;   /* keep message pairs in one worker */
    int units = o.conns / unit;
    for (int i = 0; i < P; i++) {
        int first = units * i / P * unit, last = units * (i + 1) / P * unit;
        int pfd[2];
        if (pipe(pfd) != 0) return 1;
        pid_t pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            _exit(worker_run(&o, i, first, last - first, pfd[1]));
        }
        close(pfd[1]);
        pids[i] = pid;
        fds[i] = pfd[0];
    }
    for (int i = 0; i < P; i++) {
        char r;
        if (read_all(fds[i], &r, 1) != 0) fprintf(stderr, "loadgen: worker %d failed during setup\n", i);
    }
    printf("{\"event\":\"ready\"}\n");
    fflush(stdout);
    if (o.wait_go) {
        char line[64];
        if (!fgets(line, sizeof line, stdin)) term_flag = 1;
    }
    for (int i = 0; i < P; i++) kill(pids[i], term_flag ? SIGTERM : SIGUSR1);
    lg_stats total;
    memset(&total, 0, sizeof total);
    int ok = 0;
    lg_stats *one = malloc(sizeof *one);
    for (int i = 0; i < P && one; i++) {
        if (read_all(fds[i], one, sizeof *one) != 0) continue;
        ok++;
        uint64_t *a = &total.logins, *b = &one->logins;
        for (size_t k = 0; k < (offsetof(lg_stats, t_go) - offsetof(lg_stats, logins)) / sizeof(uint64_t); k++)
            a[k] += b[k];
        if (!total.t_go || (one->t_go && one->t_go < total.t_go)) total.t_go = one->t_go;
        if (one->t_end > total.t_end) total.t_end = one->t_end;
        lg_hist_merge(&total.login_lat, &one->login_lat);
        lg_hist_merge(&total.lat, &one->lat);
    }
    free(one);
    int failed = 0;
    for (int i = 0; i < P; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) failed = 1;
        close(fds[i]);
    }
    print_result(&o, &total, ok);
    free(pids);
    free(fds);
    return failed ? 1 : 0;
}
