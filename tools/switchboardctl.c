/* switchboardctl: the admin command. Accounts, the database schema and a
 * self-signed certificate: it talks to PostgreSQL directly (blocking libpq)
 * with the same statements and secret derivation as the servers
 * (storage/accounts_sql.h). Sessions, kick, status and announce: it joins
 * the router as a trusted component and asks the sm (tools/ctl_admin.c,
 * docs/admin-protocol.md). Exit status: 0 ok, 1 failure, 2 usage. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/config.h"
#include "common/crypto.h"
#include "common/jid.h"
#include "common/scram.h"
#include "common/tls.h"
#include "storage/accounts_sql.h"
#include "storage/storage.h"
#include "tools/ctl_admin.h"
#include "tools/ctl_config.h"

#define PASSWORD_MAX 1024

static const char usage_text[] =
    "usage: switchboardctl [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  user add JID [PASSWORD]      create an account (password read from stdin when omitted)\n"
    "  user passwd JID [PASSWORD]   set a new password (read from stdin when omitted)\n"
    "  user delete JID              delete an account and everything of it (roster, offline messages...)\n"
    "  user list [DOMAIN]           list accounts, one JID per line\n"
    "  db migrate                   apply the SQL migrations not yet applied\n"
    "  db status                    show the schema version\n"
    "  tls-selfsigned CERT KEY NAMES  write a self-signed certificate and its key\n"
    "                               (NAMES: comma-separated DNS names, the first is the CN)\n"
    "\n"
    "commands for a running server (through the router, with the internal secret):\n"
    "  sessions [DOMAIN]            online sessions, one a line: full JID, c2s, priority,\n"
    "                               available|unavailable, connected since (UTC), tab-separated\n"
    "  kick JID                     end the session (full JID) or every session (bare JID) of a user\n"
    "  status                       the router, every name online there, sessions per c2s\n"
    "  announce [MESSAGE...]        a headline message from the domain to every online session\n"
    "                               (MESSAGE from the arguments, or standard input when omitted or '-')\n"
    "\n"
    "options:\n"
    "  --db CONNINFO         the database (libpq connection string; env:NAME and file:PATH work)\n"
    "  -c, --config FILE     a process's configuration: for database commands the database\n"
    "                        (database/conninfo; default: the environment variable SWITCHBOARD_DB);\n"
    "                        for server commands the router's address and the internal secret\n"
    "                        (router/host, router/port, router/secret; default 127.0.0.1:5347 and\n"
    "                        SWITCHBOARD_INTERNAL_SECRET) and the domains (hosts/host)\n"
    "  --iterations N        SCRAM iterations for new passwords (default 4096)\n"
    "  --store-plaintext     also store the password in clear (for legacy digest authentication)\n"
    "  --migrations DIR      the migrations directory (default: the installed or source one)\n"
    "  --days N              validity of the self-signed certificate (default 365)\n"
    "  --router HOST:PORT    the router's address (overrides the configuration)\n"
    "  --domain D            the domain for sessions/status/announce (default: every hosts/host)\n"
    "  --json                JSON lines instead of tab-separated text\n"
    "  --timeout SECONDS     how long to wait for the router and the sm (default 10)\n"
    "  -h, --help            this help\n"
    "Options may come anywhere; after '--' nothing is an option (for a password starting with '-').\n";

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "switchboardctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(switchboardctl --help for usage)\n");
    return 2;
}

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

/* A server message on one line. */
static const char *one_line(const char *msg)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s", msg ? msg : "");
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    size_t l = strlen(buf);
    while (l && buf[l - 1] == ' ') buf[--l] = 0;
    return buf;
}

typedef struct {
    const char *db;
    const char *config;
    const char *migrations;
    unsigned iterations;
    int store_plaintext;
    unsigned days;
    char *conninfo;   /* resolved */
    ctl_admin_opts admin;
} ctl_opts;

static int resolve_conninfo(ctl_opts *o)
{
    char err[512];
    if (o->db) {
        o->conninfo = config_resolve_secret(o->db, err, sizeof err);
        if (!o->conninfo) return fail("--db: %s", err);
    } else if (o->config) {
        o->conninfo = ctl_config_conninfo(o->config, err, sizeof err);
        if (!o->conninfo) return fail("%s", err);
    } else {
        const char *env = getenv("SWITCHBOARD_DB");
        if (!env || !*env) return fail("no database: give --db CONNINFO, -c FILE or set SWITCHBOARD_DB");
        o->conninfo = strdup(env);
        if (!o->conninfo) abort();
    }
    return 0;
}

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static PGconn *db_open(ctl_opts *o, int *rc)
{
    if ((*rc = resolve_conninfo(o)) != 0) return NULL;
    PGconn *pg = PQconnectdb(o->conninfo);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        *rc = fail("cannot connect to the database: %s", pg ? one_line(PQerrorMessage(pg)) : "out of memory");
        if (pg) PQfinish(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg, quiet, NULL);
    return pg;
}

/* Map a failed statement to a message. */
static int sql_fail(PGresult *r, const char *what)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (state && strcmp(state, "42P01") == 0)
        return fail("%s: the database has no Switchboard schema (run 'switchboardctl db migrate')", what);
    return fail("%s: %s", what, one_line(PQresultErrorMessage(r)));
}

/* user@domain, prepared; node required, no resource. */
static int parse_user(const char *arg, jid *j)
{
    if (jid_parse(j, arg) != 0) return usage_error("'%s' is not a valid JID", arg);
    if (!j->node) {
        jid_free(j);
        return usage_error("'%s' has no user part (expected user@domain)", arg);
    }
    if (j->resource) {
        jid_free(j);
        return usage_error("'%s' has a resource (expected user@domain)", arg);
    }
    return 0;
}

/* The password: the argument, or one line of stdin (without echo on a terminal). */
static int get_password(const char *arg, char *out, size_t len)
{
    if (arg) {
        if (strlen(arg) >= len) return fail("the password is too long");
        snprintf(out, len, "%s", arg);
        return 0;
    }
    int tty = isatty(STDIN_FILENO);
    struct termios old, noecho;
    if (tty) {
        fprintf(stderr, "Password: ");
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            noecho = old;
            noecho.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
        } else {
            tty = 0;
        }
    }
    char *got = fgets(out, (int)len, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!got) return fail("no password on standard input");
    size_t l = strlen(out);
    if (l == len - 1 && out[l - 1] != '\n') return fail("the password is too long");
    while (l && (out[l - 1] == '\n' || out[l - 1] == '\r')) out[--l] = 0;
    return 0;
}

static int user_write(ctl_opts *o, int stmt, const char *jid_arg, const char *pw_arg)
{
    jid j = JID_INIT;
    int rc = parse_user(jid_arg, &j);
    if (rc) return rc;
    char password[PASSWORD_MAX];
    if ((rc = get_password(pw_arg, password, sizeof password)) != 0) {
        jid_free(&j);
        return rc;
    }
    account_params p;
    if (account_params_make(&p, j.domain, j.node, password, o->iterations, o->store_plaintext) != 0) {
        crypto_wipe(password, sizeof password);
        jid_free(&j);
        return fail("the password is not acceptable (empty, or characters SASLprep prohibits)");
    }
    PGconn *pg = db_open(o, &rc);
    if (!pg) {
        account_params_clear(&p);
        crypto_wipe(password, sizeof password);
        jid_free(&j);
        return rc;
    }
    /* p.values points to password (--store-plaintext): wipe it only now. */
    PGresult *r = PQexecParams(pg, account_stmts[stmt].sql, ACCOUNT_NPARAMS, NULL, p.values, NULL, NULL, 0);
    account_params_clear(&p);
    crypto_wipe(password, sizeof password);
    const char *what = stmt == ACCOUNT_STMT_CREATE ? "user add" : "user passwd";
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "23505") == 0) rc = fail("%s: %s already exists", what, j.bare);
        else rc = sql_fail(r, what);
    } else if (stmt == ACCOUNT_STMT_SET && strcmp(PQcmdTuples(r), "0") == 0) {
        rc = fail("%s: no such user %s", what, j.bare);
    } else {
        printf(stmt == ACCOUNT_STMT_CREATE ? "user %s created\n" : "password of %s changed\n", j.bare);
    }
    PQclear(r);
    PQfinish(pg);
    jid_free(&j);
    return rc;
}

static int user_delete(ctl_opts *o, const char *jid_arg)
{
    jid j = JID_INIT;
    int rc = parse_user(jid_arg, &j);
    if (rc) return rc;
    PGconn *pg = db_open(o, &rc);
    if (!pg) {
        jid_free(&j);
        return rc;
    }
    const char *v[2] = {j.domain, j.node};
    PGresult *r = PQexecParams(pg, account_stmts[ACCOUNT_STMT_DELETE].sql, 2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = sql_fail(r, "user delete");
    else if (strcmp(PQcmdTuples(r), "0") == 0) rc = fail("user delete: no such user %s", j.bare);
    else printf("user %s deleted\n", j.bare);
    PQclear(r);
    PQfinish(pg);
    jid_free(&j);
    return rc;
}

static int user_list(ctl_opts *o, const char *domain_arg)
{
    char domain[JID_PART_MAX + 1];
    if (domain_arg && jid_nameprep(domain_arg, domain, sizeof domain) < 0)
        return usage_error("'%s' is not a valid domain", domain_arg);
    int rc;
    PGconn *pg = db_open(o, &rc);
    if (!pg) return rc;
    const char *v[1] = {domain_arg ? domain : NULL};
    PGresult *r = PQexecParams(pg, account_stmts[ACCOUNT_STMT_LIST].sql, 1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = sql_fail(r, "user list");
    } else {
        for (int i = 0; i < PQntuples(r); i++) printf("%s@%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
        rc = 0;
    }
    PQclear(r);
    PQfinish(pg);
    return rc;
}

static int db_migrate(ctl_opts *o)
{
    int rc = resolve_conninfo(o);
    if (rc) return rc;
    char err[1024];
    const char *dir = o->migrations ? o->migrations : storage_default_migrations_dir();
    int before = storage_schema_version_sync(o->conninfo, err, sizeof err);
    if (before < 0) return fail("db migrate: %s", err);
    if (storage_migrate_sync(o->conninfo, dir, err, sizeof err) != 0) return fail("db migrate: %s", err);
    int after = storage_schema_version_sync(o->conninfo, err, sizeof err);
    if (after < 0) return fail("db migrate: %s", err);
    if (after == before) printf("schema version %d: up to date\n", after);
    else printf("schema version %d (was %d)\n", after, before);
    return 0;
}

static int db_status(ctl_opts *o)
{
    int rc = resolve_conninfo(o);
    if (rc) return rc;
    char err[1024];
    int version = storage_schema_version_sync(o->conninfo, err, sizeof err);
    if (version < 0) return fail("db status: %s", err);
    const char *dir = o->migrations ? o->migrations : storage_default_migrations_dir();
    int latest = storage_migrations_latest(dir, err, sizeof err);
    if (latest < 0) {
        printf("schema version %d\n", version);
        return fail("db status: %s", err);
    }
    if (version < latest)
        printf("schema version %d (latest available %d: run 'switchboardctl db migrate')\n", version, latest);
    else
        printf("schema version %d (latest available %d)\n", version, latest);
    return 0;
}

static int tls_selfsigned(ctl_opts *o, const char *cert, const char *key, const char *names)
{
    char err[512];
    if (tls_make_self_signed(cert, key, names, o->days, err, sizeof err) != 0)
        return fail("tls-selfsigned: %s", err);
    printf("wrote %s and %s\n", cert, key);
    return 0;
}

static int parse_uint(const char *opt, const char *arg, unsigned min, unsigned max, unsigned *out)
{
    long long v;
    if (config_parse_int(arg, &v) != 0 || v < (long long)min || v > (long long)max)
        return usage_error("%s: expected a number from %u to %u, got '%s'", opt, min, max, arg);
    *out = (unsigned)v;
    return 0;
}

static int run(int argc, char **argv, ctl_opts *o)
{
    enum { OPT_DB = 256, OPT_ITER, OPT_PLAIN, OPT_MIGR, OPT_DAYS, OPT_ROUTER, OPT_DOMAIN, OPT_JSON, OPT_TIMEOUT };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"config", required_argument, NULL, 'c'},
        {"iterations", required_argument, NULL, OPT_ITER},
        {"store-plaintext", no_argument, NULL, OPT_PLAIN},
        {"migrations", required_argument, NULL, OPT_MIGR},
        {"days", required_argument, NULL, OPT_DAYS},
        {"router", required_argument, NULL, OPT_ROUTER},
        {"domain", required_argument, NULL, OPT_DOMAIN},
        {"json", no_argument, NULL, OPT_JSON},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DB: o->db = optarg; break;
        case 'c': o->config = optarg; break;
        case OPT_ITER:
            if ((rc = parse_uint("--iterations", optarg, 1, 10000000, &o->iterations)) != 0) return rc;
            break;
        case OPT_PLAIN: o->store_plaintext = 1; break;
        case OPT_MIGR: o->migrations = optarg; break;
        case OPT_DAYS:
            if ((rc = parse_uint("--days", optarg, 1, 36500, &o->days)) != 0) return rc;
            break;
        case OPT_ROUTER: o->admin.router = optarg; break;
        case OPT_DOMAIN: o->admin.domain = optarg; break;
        case OPT_JSON: o->admin.json = 1; break;
        case OPT_TIMEOUT:
            if ((rc = parse_uint("--timeout", optarg, 1, 3600, &o->admin.timeout_s)) != 0) return rc;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            if (optopt && optopt < 256) return usage_error("unknown or incomplete option '-%c'", optopt);
            return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (o->db && o->config) return usage_error("give either --db or -c, not both");
    char **a = argv + optind;
    int n = argc - optind;
    if (n == 0) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (strcmp(a[0], "user") == 0) {
        if (n >= 2 && strcmp(a[1], "add") == 0 && (n == 3 || n == 4))
            return user_write(o, ACCOUNT_STMT_CREATE, a[2], n == 4 ? a[3] : NULL);
        if (n >= 2 && strcmp(a[1], "passwd") == 0 && (n == 3 || n == 4))
            return user_write(o, ACCOUNT_STMT_SET, a[2], n == 4 ? a[3] : NULL);
        if (n == 3 && strcmp(a[1], "delete") == 0) return user_delete(o, a[2]);
        if (n >= 2 && strcmp(a[1], "list") == 0 && n <= 3) return user_list(o, n == 3 ? a[2] : NULL);
        return usage_error("usage: user add JID [PASSWORD] | user passwd JID [PASSWORD] | user delete JID | "
                           "user list [DOMAIN]");
    }
    if (strcmp(a[0], "db") == 0) {
        if (n == 2 && strcmp(a[1], "migrate") == 0) return db_migrate(o);
        if (n == 2 && strcmp(a[1], "status") == 0) return db_status(o);
        return usage_error("usage: db migrate | db status");
    }
    if (ctl_admin_is_command(a[0])) {
        o->admin.config = o->config;
        return ctl_admin_run(&o->admin, n, a);
    }
    if (strcmp(a[0], "tls-selfsigned") == 0) {
        if (n == 4) return tls_selfsigned(o, a[1], a[2], a[3]);
        return usage_error("usage: tls-selfsigned CERT KEY NAMES");
    }
    return usage_error("unknown command '%s'", a[0]);
}

int main(int argc, char **argv)
{
    ctl_opts o = {.iterations = SCRAM_DEFAULT_ITERATIONS, .days = 365, .admin = {.timeout_s = 10}};
    int rc = run(argc, argv, &o);
    if (o.conninfo) {
        crypto_wipe(o.conninfo, strlen(o.conninfo));
        free(o.conninfo);
    }
    return rc;
}
