/* ctl_admin: sessions, kick, status and announce, asked of the sm in route
 * envelopes through the router (docs/admin-protocol.md). See ctl_admin.h. */
#include "tools/ctl_admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/jid.h"
#include "common/utf8.h"
#include "common/xml_write.h"
#include "tools/ctl_link.h"

#define ANNOUNCE_MAX_BYTES (256 * 1024)

typedef struct ctx {
    const ctl_admin_opts *o;
    ctl_router_cfg cfg;
    ctl_link *link;
    unsigned next_id;
    char **domains;         /* what the command is about */
    size_t ndomains;
} ctx;

static int fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "switchboardctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    return 1;
}

static int usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "switchboardctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(switchboardctl --help for usage)\n");
    return 2;
}

/* ---- output ---- */

static void json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p == '\n') fputs("\\n", stdout);
        else if (*p == '\t') fputs("\\t", stdout);
        else if (*p == '\r') fputs("\\r", stdout);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static const char *attr_or(const xnode *el, const char *name, const char *def)
{
    const char *v = xnode_attr(el, name);
    return v ? v : def;
}

/* ---- requests ---- */

static void add_domain(ctx *c, const char *d)
{
    for (size_t i = 0; i < c->ndomains; i++)
        if (!strcmp(c->domains[i], d)) return;
    c->domains = realloc(c->domains, (c->ndomains + 1) * sizeof *c->domains);
    if (!c->domains) abort();
    c->domains[c->ndomains] = strdup(d);
    if (!c->domains[c->ndomains]) abort();
    c->ndomains++;
}

/* The domains a command is about: the argument, --domain, or the
 * configuration's hosts/host. status also works without: it then lists
 * the names online only. */
static int pick_domains(ctx *c, const char *arg, int required)
{
    const char *one = arg ? arg : c->o->domain;
    if (one) {
        char d[JID_PART_MAX + 1];
        if (jid_nameprep(one, d, sizeof d) < 0) return usage("'%s' is not a valid domain", one);
        add_domain(c, d);
        return 0;
    }
    for (size_t i = 0; i < c->cfg.nhosts; i++) {
        char d[JID_PART_MAX + 1];
        if (jid_nameprep(c->cfg.hosts[i], d, sizeof d) < 0) return fail("hosts/host '%s' is not a valid domain", c->cfg.hosts[i]);
        add_domain(c, d);
    }
    if (c->ndomains == 0 && required)
        return usage("no domain: give one (or --domain D), or -c a configuration that lists hosts/host");
    return 0;
}

static int connect_router(ctx *c)
{
    char err[512];
    if (ctl_router_cfg_load(&c->cfg, c->o->config, c->o->router, err, sizeof err) != 0) return fail("%s", err);
    return 0;
}

static int open_link(ctx *c)
{
    char err[512], name[64];
    snprintf(name, sizeof name, "ctl-%ld", (long)getpid());
    c->link = ctl_link_open(&c->cfg, name, c->o->timeout_s * 1000u, err, sizeof err);
    if (!c->link) return fail("%s", err);
    return 0;
}

typedef struct answers {
    stanza **parts;     /* the <route/> envelopes that answered */
    size_t n;
} answers;

static void answers_free(answers *a)
{
    for (size_t i = 0; i < a->n; i++) stanza_free(a->parts[i]);
    free(a->parts);
    a->parts = NULL;
    a->n = 0;
}

static const xnode *answer_admin(const stanza *st) { return xnode_child(st->root, "admin", NS_SB_ADMIN); }

/* The stanza error inside el (condition and text) as one line. */
static void error_line(const xnode *el, char *out, size_t len)
{
    const xnode *e = xnode_child(el, "error", NULL);
    const char *cond = "undefined-condition", *text = NULL;
    for (const xnode *x = e ? xnode_first_element(e) : NULL; x; x = xnode_next_element(x)) {
        if (!strcmp(x->name, "text")) text = xnode_text(x);
        else cond = x->name;
    }
    snprintf(out, len, "%s%s%s%s", cond, text ? " (" : "", text ? text : "", text ? ")" : "");
}

/* Ask `to` for action (attrs: extra attributes as XML, inner: children);
 * collect every part of the answer. 0, or 1 after saying what went wrong. */
static int request(ctx *c, const char *to, const char *action, const char *attrs, const char *inner, answers *out)
{
    char id[16], err[512];
    snprintf(id, sizeof id, "a%u", ++c->next_id);
    const char *me = ctl_link_name(c->link);
    buf o = BUF_INIT;
    buf_append_str(&o, "<route xmlns='" NS_SB_ROUTER "' to='");
    xml_escape_attr(&o, to, strlen(to));
    buf_append_str(&o, "' from='");
    xml_escape_attr(&o, me, strlen(me));
    buf_printf(&o, "'><admin xmlns='" NS_SB_ADMIN "' action='%s' id='%s'", action, id);
    if (attrs) buf_append_str(&o, attrs);
    if (inner) {
        buf_append_str(&o, ">");
        buf_append_str(&o, inner);
        buf_append_str(&o, "</admin></route>");
    } else {
        buf_append_str(&o, "/></route>");
    }
    int rc = ctl_link_send(c->link, o.data, o.len, err, sizeof err);
    buf_free(&o);
    if (rc != 0) return fail("%s: %s", to, err);
    for (;;) {
        stanza *st = ctl_link_next(c->link, err, sizeof err);
        if (!st) return fail("%s %s: %s", action, to, err);
        const xnode *a = xnode_is(st->root, "route", NS_SB_ROUTER) ? answer_admin(st) : NULL;
        if (!a || strcmp(attr_or(a, "id", ""), id)) {
            stanza_free(st);   /* not ours (a late answer to something else) */
            continue;
        }
        char why[512];
        if (!strcmp(attr_or(st->root, "type", ""), "error")) {
            error_line(st->root, why, sizeof why);
            stanza_free(st);
            return fail("%s %s: no session manager serves %s at the router: %s", action, to, to, why);
        }
        if (!strcmp(attr_or(a, "type", ""), "error")) {
            error_line(a, why, sizeof why);
            stanza_free(st);
            return fail("%s %s: %s", action, to, why);
        }
        out->parts = realloc(out->parts, (out->n + 1) * sizeof *out->parts);
        if (!out->parts) abort();
        out->parts[out->n++] = st;
        if (strcmp(attr_or(a, "more", "false"), "true")) return 0;
    }
}

/* ---- sessions ---- */

static int cmp_session(const void *a, const void *b)
{
    const xnode *x = *(const xnode *const *)a, *y = *(const xnode *const *)b;
    return strcmp(attr_or(x, "jid", ""), attr_or(y, "jid", ""));
}

static void print_session(const ctx *c, const xnode *s)
{
    const char *avail = !strcmp(attr_or(s, "available", "false"), "true") ? "available" : "unavailable";
    if (c->o->json) {
        fputs("{\"jid\":", stdout);
        json_str(attr_or(s, "jid", ""));
        fputs(",\"c2s\":", stdout);
        json_str(attr_or(s, "c2s", ""));
        fputs(",\"c2s_id\":", stdout);
        json_str(attr_or(s, "c2s-id", ""));
        fputs(",\"sm_id\":", stdout);
        json_str(attr_or(s, "sm-id", ""));
        printf(",\"priority\":%d,\"available\":%s,\"since\":", atoi(attr_or(s, "priority", "0")),
               avail[0] == 'a' ? "true" : "false");
        json_str(attr_or(s, "since", ""));
        fputs("}\n", stdout);
    } else {
        printf("%s\t%s\t%s\t%s\t%s\n", attr_or(s, "jid", ""), attr_or(s, "c2s", ""), attr_or(s, "priority", "0"),
               avail, attr_or(s, "since", "-"));
    }
}

static int cmd_sessions(ctx *c)
{
    answers a = {0};
    int rc = 0;
    for (size_t i = 0; i < c->ndomains && rc == 0; i++) rc = request(c, c->domains[i], "sessions", NULL, NULL, &a);
    if (rc == 0) {
        size_t n = 0, cap = 0;
        const xnode **rows = NULL;
        for (size_t i = 0; i < a.n; i++) {
            const xnode *ad = answer_admin(a.parts[i]);
            for (const xnode *s = xnode_child(ad, "session", NS_SB_ADMIN); s; s = xnode_next(s, "session", NS_SB_ADMIN)) {
                if (n == cap) {
                    cap = cap ? 2 * cap : 64;
                    rows = realloc(rows, cap * sizeof *rows);
                    if (!rows) abort();
                }
                rows[n++] = s;
            }
        }
        if (n) qsort(rows, n, sizeof *rows, cmp_session);
        for (size_t i = 0; i < n; i++) print_session(c, rows[i]);
        free(rows);
    }
    answers_free(&a);
    return rc;
}

/* ---- kick ---- */

static int cmd_kick(ctx *c, const char *arg)
{
    jid j = JID_INIT;
    if (jid_parse(&j, arg) < 0 || !j.node) {
        jid_free(&j);
        return usage("kick: '%s' is not a user's JID (user@domain or user@domain/resource)", arg);
    }
    int rc = connect_router(c);
    if (rc == 0) rc = open_link(c);
    answers a = {0};
    if (rc == 0) {
        buf at = BUF_INIT;
        buf_append_str(&at, " jid='");
        xml_escape_attr(&at, j.full, strlen(j.full));
        buf_append_str(&at, "'");
        rc = request(c, j.domain, "kick", buf_cstr(&at), NULL, &a);
        buf_free(&at);
    }
    if (rc == 0) {
        const xnode *ad = answer_admin(a.parts[0]);
        for (const xnode *s = xnode_child(ad, "session", NS_SB_ADMIN); s; s = xnode_next(s, "session", NS_SB_ADMIN)) {
            if (c->o->json) {
                fputs("{\"kicked\":", stdout);
                json_str(attr_or(s, "jid", ""));
                fputs(",\"c2s\":", stdout);
                json_str(attr_or(s, "c2s", ""));
                fputs("}\n", stdout);
            } else {
                printf("kicked %s (%s)\n", attr_or(s, "jid", ""), attr_or(s, "c2s", ""));
            }
        }
    }
    answers_free(&a);
    jid_free(&j);
    return rc;
}

/* ---- status ---- */

typedef struct row {
    const char *kind;       /* sm, c2s, domain, component */
    const char *name;
    char detail[256];
    long sessions;          /* -1: not applicable */
} row;

static int cmp_row(const void *a, const void *b)
{
    static const char *const order[] = {"sm", "c2s", "domain", "component"};
    const row *x = a, *y = b;
    int kx = 0, ky = 0;
    for (int i = 0; i < 4; i++) {
        if (!strcmp(x->kind, order[i])) kx = i;
        if (!strcmp(y->kind, order[i])) ky = i;
    }
    return kx != ky ? kx - ky : strcmp(x->name, y->name);
}

static int cmd_status(ctx *c)
{
    answers a = {0};
    int rc = 0;
    /* One status per sm: a domain served by an sm already asked is not asked again. */
    for (size_t i = 0; i < c->ndomains; i++) {
        int known = 0;
        for (size_t k = 0; k < a.n && !known; k++)
            for (const xnode *d = xnode_child(answer_admin(a.parts[k]), "domain", NS_SB_ADMIN); d;
                 d = xnode_next(d, "domain", NS_SB_ADMIN))
                if (!strcmp(attr_or(d, "name", ""), c->domains[i])) known = 1;
        if (!known && request(c, c->domains[i], "status", NULL, NULL, &a) != 0) rc = 1;
    }
    const char *const *names;
    size_t nnames = ctl_link_names(c->link, &names);
    size_t cap = nnames + 16, n = 0;
    row *rows = calloc(cap, sizeof *rows);
    if (!rows) abort();
    /* Sessions per c2s, added over every sm. */
    for (size_t k = 0; k < a.n; k++) {
        const xnode *ad = answer_admin(a.parts[k]);
        for (const xnode *x = xnode_child(ad, "c2s", NS_SB_ADMIN); x; x = xnode_next(x, "c2s", NS_SB_ADMIN)) {
            const char *name = attr_or(x, "name", "");
            size_t i = 0;
            while (i < n && strcmp(rows[i].name, name)) i++;
            if (i == n) {
                if (n == cap) {
                    cap *= 2;
                    rows = realloc(rows, cap * sizeof *rows);
                    if (!rows) abort();
                }
                rows[n] = (row){.kind = "c2s", .name = name, .sessions = 0};
                snprintf(rows[n].detail, sizeof rows[n].detail, "offline");
                n++;
            }
            rows[i].sessions += atol(attr_or(x, "sessions", "0"));
        }
    }
    size_t c2s_rows = n;
    for (size_t i = 0; i < nnames; i++) {
        const char *name = names[i];
        int found = 0;
        for (size_t r = 0; r < c2s_rows; r++)
            if (!strcmp(rows[r].name, name)) {
                rows[r].detail[0] = 0;   /* online after all */
                found = 1;
            }
        if (found) continue;
        if (n == cap) {
            cap *= 2;
            rows = realloc(rows, cap * sizeof *rows);
            if (!rows) abort();
        }
        row *r = &rows[n++];
        *r = (row){.kind = "component", .name = name, .sessions = -1};
        for (size_t k = 0; k < a.n; k++) {
            const xnode *ad = answer_admin(a.parts[k]);
            const char *sm = attr_or(ad, "sm", "");
            if (!strcmp(sm, name)) {
                r->kind = "sm";
                r->sessions = atol(attr_or(ad, "sessions", "0"));
                buf d = BUF_INIT;
                buf_append_str(&d, "domains=");
                for (const xnode *x = xnode_child(ad, "domain", NS_SB_ADMIN); x; x = xnode_next(x, "domain", NS_SB_ADMIN))
                    buf_printf(&d, "%s%s", x == xnode_child(ad, "domain", NS_SB_ADMIN) ? "" : ",", attr_or(x, "name", ""));
                snprintf(r->detail, sizeof r->detail, "%s", buf_cstr(&d));
                buf_free(&d);
            }
            for (const xnode *x = xnode_child(ad, "domain", NS_SB_ADMIN); x; x = xnode_next(x, "domain", NS_SB_ADMIN))
                if (!strcmp(attr_or(x, "name", ""), name)) {
                    r->kind = "domain";
                    snprintf(r->detail, sizeof r->detail, "sm=%s", sm);
                }
        }
        if (!strcmp(r->kind, "component") && !strncmp(name, "c2s", 3)) {
            r->kind = "c2s";
            r->sessions = 0;
        }
    }
    qsort(rows, n, sizeof *rows, cmp_row);
    char router[300];
    snprintf(router, sizeof router, "%s:%d", c->cfg.host, c->cfg.port);
    if (c->o->json) {
        fputs("{\"kind\":\"router\",\"name\":\"router\",\"address\":", stdout);
        json_str(router);
        fputs("}\n", stdout);
    } else {
        printf("router\trouter\t%s\n", router);
    }
    for (size_t i = 0; i < n; i++) {
        const row *r = &rows[i];
        if (c->o->json) {
            fputs("{\"kind\":", stdout);
            json_str(r->kind);
            fputs(",\"name\":", stdout);
            json_str(r->name);
            if (r->sessions >= 0) printf(",\"sessions\":%ld", r->sessions);
            if (!strcmp(r->detail, "offline")) fputs(",\"online\":false", stdout);
            else if (r->detail[0]) {
                const char *eq = strchr(r->detail, '=');
                if (eq && !strcmp(r->kind, "sm")) {
                    fputs(",\"domains\":[", stdout);
                    const char *p = eq + 1;
                    int first = 1;
                    while (*p) {
                        size_t len = strcspn(p, ",");
                        char dom[256];
                        snprintf(dom, sizeof dom, "%.*s", (int)len, p);
                        if (!first) putchar(',');
                        json_str(dom);
                        first = 0;
                        p += len;
                        if (*p) p++;
                    }
                    putchar(']');
                } else if (eq) {
                    fputs(",\"sm\":", stdout);
                    json_str(eq + 1);
                }
            }
            fputs("}\n", stdout);
        } else {
            printf("%s\t%s", r->kind, r->name);
            if (r->sessions >= 0) printf("\tsessions=%ld", r->sessions);
            if (r->detail[0]) printf("\t%s", r->detail);
            putchar('\n');
        }
    }
    free(rows);
    answers_free(&a);
    return rc;
}

/* ---- announce ---- */

/* Characters XML 1.0 allows (and UTF-8): the text can travel as is. */
static int text_ok(const char *s, size_t len)
{
    if (!utf8_valid(s, len)) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') return 0;
        /* U+FFFE and U+FFFF (EF BF BE / EF BF BF) are not XML characters. */
        if (ch == 0xEF && i + 2 < len && (unsigned char)s[i + 1] == 0xBF && ((unsigned char)s[i + 2] & 0xFE) == 0xBE)
            return 0;
    }
    return 1;
}

static int read_message(int argc, char **argv, buf *msg)
{
    if (argc > 0 && !(argc == 1 && !strcmp(argv[0], "-"))) {
        for (int i = 0; i < argc; i++) {
            if (i) buf_append_str(msg, " ");
            buf_append_str(msg, argv[i]);
        }
    } else {
        char chunk[4096];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
            buf_append(msg, chunk, got);
            if (msg->len > ANNOUNCE_MAX_BYTES) break;
        }
        while (msg->len && (msg->data[msg->len - 1] == '\n' || msg->data[msg->len - 1] == '\r')) msg->len--;
    }
    if (msg->len == 0) return usage("announce: the message is empty");
    if (msg->len > ANNOUNCE_MAX_BYTES) return fail("announce: the message is longer than %d bytes", ANNOUNCE_MAX_BYTES);
    if (memchr(msg->data, 0, msg->len) || !text_ok(msg->data, msg->len))
        return fail("announce: the message is not UTF-8 text (control characters are not allowed)");
    return 0;
}

static int cmd_announce(ctx *c, const buf *msg)
{
    buf inner = BUF_INIT;
    buf_append_str(&inner, "<body>");
    xml_escape_text(&inner, msg->data, msg->len);
    buf_append_str(&inner, "</body>");
    int rc = 0;
    for (size_t i = 0; i < c->ndomains; i++) {
        answers a = {0};
        if (request(c, c->domains[i], "announce", NULL, buf_cstr(&inner), &a) != 0) {
            rc = 1;
            continue;
        }
        const char *n = attr_or(answer_admin(a.parts[0]), "sessions", "0");
        if (c->o->json) {
            fputs("{\"domain\":", stdout);
            json_str(c->domains[i]);
            printf(",\"sessions\":%ld}\n", atol(n));
        } else {
            printf("announced to %s session%s of %s\n", n, strcmp(n, "1") ? "s" : "", c->domains[i]);
        }
        answers_free(&a);
    }
    buf_free(&inner);
    return rc;
}

/* ---- entry ---- */

int ctl_admin_is_command(const char *name)
{
    return !strcmp(name, "sessions") || !strcmp(name, "kick") || !strcmp(name, "status") || !strcmp(name, "announce");
}

static void ctx_free(ctx *c)
{
    if (c->link) ctl_link_close(c->link);
    ctl_router_cfg_free(&c->cfg);
    for (size_t i = 0; i < c->ndomains; i++) free(c->domains[i]);
    free(c->domains);
}

int ctl_admin_run(const ctl_admin_opts *o, int argc, char **argv)
{
    ctx c = {0};
    c.o = o;
    const char *cmd = argv[0];
    int rc;
    if (!strcmp(cmd, "kick")) {
        if (argc != 2) return usage("usage: kick JID");
        rc = cmd_kick(&c, argv[1]);
    } else if (!strcmp(cmd, "sessions") || !strcmp(cmd, "status")) {
        int is_status = cmd[1] == 't';
        if (argc > (is_status ? 1 : 2)) return usage(is_status ? "usage: status" : "usage: sessions [DOMAIN]");
        rc = connect_router(&c);
        if (rc == 0) rc = pick_domains(&c, argc == 2 ? argv[1] : NULL, !is_status);
        if (rc == 0) rc = open_link(&c);
        if (rc == 0) rc = is_status ? cmd_status(&c) : cmd_sessions(&c);
    } else {
        buf msg = BUF_INIT;
        rc = read_message(argc - 1, argv + 1, &msg);
        if (rc == 0) rc = connect_router(&c);
        if (rc == 0) rc = pick_domains(&c, NULL, 1);
        if (rc == 0) rc = open_link(&c);
        if (rc == 0) rc = cmd_announce(&c, &msg);
        buf_free(&msg);
    }
    ctx_free(&c);
    if (fflush(stdout) != 0 && rc == 0) rc = fail("cannot write the output");
    return rc;
}
