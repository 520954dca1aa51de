/* migrate: apply the SQL migrations (blocking libpq; for the admin command
 * and process start-up, before the loop runs).
 *
 * Files are named NNN_name.sql and applied in the order of NNN, each in its
 * own transaction together with its row in switchboard_migrations. The whole
 * run holds a session advisory lock, so two processes starting together
 * apply each migration once. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "storage/storage.h"

#ifndef SB_MIGRATIONS_SOURCE
#define SB_MIGRATIONS_SOURCE "storage/migrations"
#endif
#ifndef SB_MIGRATIONS_INSTALLED
#define SB_MIGRATIONS_INSTALLED "/usr/local/share/switchboard/migrations"
#endif
#ifndef SB_BUILD_ROOT
#define SB_BUILD_ROOT ""
#endif

/* "SWBD" */
#define MIGRATION_LOCK_KEY "1398227524"

const char *storage_default_migrations_dir(void)
{
    static char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    size_t blen = strlen(SB_BUILD_ROOT);
    if (n > 0 && blen > 0) {
        exe[n] = 0;
        if (strncmp(exe, SB_BUILD_ROOT, blen) == 0 && exe[blen] == '/') return SB_MIGRATIONS_SOURCE;
    }
    return SB_MIGRATIONS_INSTALLED;
}

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    size_t l = strlen(err);
    while (l && err[l - 1] == ' ') err[--l] = 0;
}

static PGconn *connect_db(const char *conninfo, char *err, size_t errlen)
{
    PGconn *pg = PQconnectdb(conninfo ? conninfo : "");
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        set_err(err, errlen, "cannot connect to the database: %s", pg ? PQerrorMessage(pg) : "out of memory");
        if (pg) PQfinish(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg, quiet, NULL);
    return pg;
}

/* Run a command; 0 if it succeeded, else -1 with the server's message in err. */
static int run(PGconn *pg, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        set_err(err, errlen, "%s: %s", what, PQerrorMessage(pg));
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return 0;
}

typedef struct {
    int number;
    char *name;
} migration_file;

static int cmp_mig(const void *a, const void *b)
{
    const migration_file *x = a, *y = b;
    return (x->number > y->number) - (x->number < y->number);
}

static void free_files(migration_file *f, size_t n)
{
    for (size_t i = 0; i < n; i++) free(f[i].name);
    free(f);
}

/* NNN_name.sql */
static int migration_number(const char *name)
{
    size_t l = strlen(name);
    if (l < 9 || strcmp(name + l - 4, ".sql") != 0) return -1;
    for (int i = 0; i < 3; i++)
        if (name[i] < '0' || name[i] > '9') return -1;
    if (name[3] != '_') return -1;
    return (name[0] - '0') * 100 + (name[1] - '0') * 10 + (name[2] - '0');
}

static int list_migrations(const char *dir, migration_file **out, size_t *nout, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        set_err(err, errlen, "cannot read migrations directory %s: %s", dir, strerror(errno));
        return -1;
    }
    migration_file *files = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int num = migration_number(e->d_name);
        if (num < 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            migration_file *nf = realloc(files, cap * sizeof *nf);
            if (!nf) abort();
            files = nf;
        }
        files[n].number = num;
        files[n].name = strdup(e->d_name);
        if (!files[n].name) abort();
        n++;
    }
    closedir(d);
    qsort(files, n, sizeof *files, cmp_mig);
    for (size_t i = 1; i < n; i++) {
        if (files[i].number == files[i - 1].number) {
            set_err(err, errlen, "%s: two migrations numbered %03d (%s, %s)", dir, files[i].number,
                    files[i - 1].name, files[i].name);
            free_files(files, n);
            return -1;
        }
    }
    *out = files;
    *nout = n;
    return 0;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    if (!buf) abort();
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) abort();
            buf = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        set_err(err, errlen, "cannot read %s", path);
        free(buf);
        return NULL;
    }
    buf[len] = 0;
    return buf;
}

static int applied(PGconn *pg, int number, int *yes, char *err, size_t errlen)
{
    char num[16];
    snprintf(num, sizeof num, "%d", number);
    const char *params[1] = {num};
    PGresult *r = PQexecParams(pg, "SELECT 1 FROM switchboard_migrations WHERE version = $1::integer",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_err(err, errlen, "reading switchboard_migrations: %s", PQerrorMessage(pg));
        PQclear(r);
        return -1;
    }
    *yes = PQntuples(r) > 0;
    PQclear(r);
    return 0;
}

static int apply_one(PGconn *pg, const char *dir, const migration_file *m, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, m->name);
    char *sql = read_file(path, err, errlen);
    if (!sql) return -1;
    char what[512];
    snprintf(what, sizeof what, "migration %s", m->name);
    if (run(pg, "BEGIN", what, err, errlen) != 0) {
        free(sql);
        return -1;
    }
    int rc = run(pg, sql, what, err, errlen);
    free(sql);
    if (rc == 0) {
        char num[16];
        snprintf(num, sizeof num, "%d", m->number);
        const char *params[2] = {num, m->name};
        PGresult *r = PQexecParams(pg, "INSERT INTO switchboard_migrations (version, name) VALUES ($1::integer, $2)",
                                   2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            set_err(err, errlen, "%s: recording it: %s", what, PQerrorMessage(pg));
            rc = -1;
        }
        PQclear(r);
    }
    if (rc == 0) rc = run(pg, "COMMIT", what, err, errlen);
    if (rc != 0) {
        char ignored[64];
        run(pg, "ROLLBACK", "rollback", ignored, sizeof ignored);
    }
    return rc;
}

int storage_migrate_sync(const char *conninfo, const char *dir, char *err, size_t errlen)
{
    if (!dir) dir = storage_default_migrations_dir();
    migration_file *files = NULL;
    size_t nfiles = 0;
    if (list_migrations(dir, &files, &nfiles, err, errlen) != 0) return -1;
    PGconn *pg = connect_db(conninfo, err, errlen);
    if (!pg) {
        free_files(files, nfiles);
        return -1;
    }
    int rc = run(pg, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")", "taking the migration lock", err, errlen);
    if (rc == 0) {
        rc = run(pg,
                 "CREATE TABLE IF NOT EXISTS switchboard_migrations ("
                 " version integer PRIMARY KEY,"
                 " name text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 "creating switchboard_migrations", err, errlen);
        for (size_t i = 0; rc == 0 && i < nfiles; i++) {
            int yes = 0;
            rc = applied(pg, files[i].number, &yes, err, errlen);
            if (rc == 0 && !yes) rc = apply_one(pg, dir, &files[i], err, errlen);
        }
        char ignored[64];
        run(pg, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")", "unlock", ignored, sizeof ignored);
    }
    PQfinish(pg);
    free_files(files, nfiles);
    return rc;
}

int storage_schema_version_sync(const char *conninfo, char *err, size_t errlen)
{
    PGconn *pg = connect_db(conninfo, err, errlen);
    if (!pg) return -1;
    int version = -1;
    PGresult *r = PQexec(pg, "SELECT to_regclass('switchboard_migrations') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_err(err, errlen, "reading the schema version: %s", PQerrorMessage(pg));
    } else if (PQgetvalue(r, 0, 0)[0] != 't') {
        version = 0;   /* nothing applied yet */
    } else {
        PQclear(r);
        r = PQexec(pg, "SELECT coalesce(max(version), 0) FROM switchboard_migrations");
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            set_err(err, errlen, "reading the schema version: %s", PQerrorMessage(pg));
        else
            version = atoi(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    PQfinish(pg);
    return version;
}

int storage_migrations_latest(const char *dir, char *err, size_t errlen)
{
    if (!dir) dir = storage_default_migrations_dir();
    migration_file *files = NULL;
    size_t n = 0;
    if (list_migrations(dir, &files, &n, err, errlen) != 0) return -1;
    int latest = n ? files[n - 1].number : 0;
    free_files(files, n);
    return latest;
}
