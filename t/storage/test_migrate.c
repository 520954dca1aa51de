/* Migrations: applied in order, idempotent, one at a time under the
 * advisory lock (two processes at once on an empty database), a failing
 * migration rolled back and not recorded, bad directories refused. */
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "t/storage/helpers.h"

static int latest_available(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    int max = -1;
    *count = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 8 && strcmp(e->d_name + l - 4, ".sql") == 0 && e->d_name[3] == '_') {
            int n = atoi(e->d_name);
            if (n > max) max = n;
            (*count)++;
        }
    }
    if (d) closedir(d);
    return max;
}

static void exec_or_bail(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        printf("Bail out! %s: %s\n", sql, PQerrorMessage(pg));
        exit(1);
    }
    PQclear(r);
}

static pid_t migrate_child(const char *conninfo, const char *dir)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char err[512];
        int rc = storage_migrate_sync(conninfo, dir, err, sizeof err);
        if (rc != 0) fprintf(stderr, "child: %s\n", err);
        _exit(rc == 0 ? 0 : 1);
    }
    return pid;
}

static int wait_child(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        printf("Bail out! cannot write %s\n", path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

int main(void)
{
    const char *db = test_db();
    const char *dir = storage_default_migrations_dir();
    char err[512];
    int nfiles = 0;
    int latest = latest_available(dir, &nfiles);
    ok(latest >= 1, "the default migrations directory (%s) has migrations", dir);

    ok(storage_migrate_sync(db, NULL, err, sizeof err) == 0, "migrate");
    ok(storage_migrate_sync(db, NULL, err, sizeof err) == 0, "migrate again: nothing to do, no error");
    is_int(storage_schema_version_sync(db, err, sizeof err), latest, "schema version is the latest migration");
    PGconn *pg = db_connect(db);
    is_int(db_value(pg, "SELECT count(*) FROM switchboard_migrations", 0, NULL), nfiles, "each migration recorded once");

    /* Fresh databases of our own. */
    char name_a[64], name_b[64], conn_a[1024], conn_b[1024], sql[256];
    snprintf(name_a, sizeof name_a, "sbtest_mig_a_%ld", (long)getpid());
    snprintf(name_b, sizeof name_b, "sbtest_mig_b_%ld", (long)getpid());
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name_a);
    exec_or_bail(pg, sql);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name_b);
    exec_or_bail(pg, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name_a);
    exec_or_bail(pg, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name_b);
    exec_or_bail(pg, sql);
    snprintf(conn_a, sizeof conn_a, "%s dbname=%s", db, name_a);
    snprintf(conn_b, sizeof conn_b, "%s dbname=%s", db, name_b);

    is_int(storage_schema_version_sync(conn_a, err, sizeof err), 0, "an empty database has schema version 0");

    /* Two processes migrating an empty database at the same moment. */
    pid_t c1 = migrate_child(conn_a, dir), c2 = migrate_child(conn_a, dir);
    is_int(wait_child(c1), 0, "first concurrent migration succeeded");
    is_int(wait_child(c2), 0, "second concurrent migration succeeded");
    is_int(storage_schema_version_sync(conn_a, err, sizeof err), latest, "the racing processes reached the latest version");
    {
        PGconn *pa = db_connect(conn_a);
        is_int(db_value(pa, "SELECT count(*) FROM switchboard_migrations", 0, NULL), nfiles,
               "and each migration was applied once");
        is_int(db_value(pa, "SELECT count(*) FROM information_schema.tables WHERE table_name IN "
                            "('accounts', 'roster_items', 'roster_versions', 'offline_messages')", 0, NULL), 4,
               "the tables exist");

        /* The advisory lock: a migration waits while another holds it. */
        exec_or_bail(pa, "SELECT pg_advisory_lock(1398227524)");
        pid_t c3 = migrate_child(conn_a, dir);
        long long waiting = 0;
        for (int i = 0; i < 200 && waiting < 1; i++) {
            waiting = db_value(pa, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                                   "AND objid = 1398227524", 0, NULL);
            if (waiting < 1) usleep(50000);
        }
        is_int(waiting, 1, "a second migrator waits on the advisory lock");
        int status;
        ok(waitpid(c3, &status, WNOHANG) == 0, "and has not finished while the lock is held");
        exec_or_bail(pa, "SELECT pg_advisory_unlock(1398227524)");
        is_int(wait_child(c3), 0, "it finishes once the lock is released");
        PQfinish(pa);
    }

    /* A failing migration is rolled back and not recorded. */
    char tmp[] = "/tmp/sb-migrations.XXXXXX";
    if (!mkdtemp(tmp)) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    char path[512], cmd[1024];
    snprintf(cmd, sizeof cmd, "cp '%s'/*.sql '%s'/", dir, tmp);
    ok(system(cmd) == 0, "copy the migrations");
    snprintf(path, sizeof path, "%s/900_broken.sql", tmp);
    write_file(path, "CREATE TABLE sb_half_done (x integer);\nSELECT 1/0;\n");
    err[0] = 0;
    is_int(storage_migrate_sync(conn_b, tmp, err, sizeof err), -1, "a failing migration fails");
    ok(strstr(err, "900_broken.sql") != NULL && strstr(err, "division by zero") != NULL,
       "the error names the file and the cause: %s", err);
    is_int(storage_schema_version_sync(conn_b, err, sizeof err), latest, "the migrations before it were applied");
    {
        PGconn *pb = db_connect(conn_b);
        is_int(db_value(pb, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'sb_half_done'", 0, NULL),
               0, "nothing of the failed migration remains");
        PQfinish(pb);
    }
    write_file(path, "CREATE TABLE sb_half_done (x integer);\n");
    ok(storage_migrate_sync(conn_b, tmp, err, sizeof err) == 0, "once fixed it applies");
    is_int(storage_schema_version_sync(conn_b, err, sizeof err), 900, "version 900");

    snprintf(path, sizeof path, "%s/900_again.sql", tmp);
    write_file(path, "SELECT 1;\n");
    is_int(storage_migrate_sync(conn_b, tmp, err, sizeof err), -1, "two migrations with one number are refused");
    ok(strstr(err, "900") != NULL, "naming the number: %s", err);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    system(cmd);

    is_int(storage_migrate_sync(conn_b, "/nonexistent/migrations", err, sizeof err), -1, "a missing directory is refused");
    ok(strstr(err, "/nonexistent/migrations") != NULL, "naming it: %s", err);
    is_int(storage_migrate_sync("host=/nonexistent-socket-dir dbname=x", dir, err, sizeof err), -1,
           "an unreachable database is an error");
    ok(strstr(err, "cannot connect") != NULL, "saying so: %s", err);
    is_int(storage_schema_version_sync("host=/nonexistent-socket-dir dbname=x", err, sizeof err), -1,
           "schema version of an unreachable database: -1");

    snprintf(sql, sizeof sql, "DROP DATABASE %s", name_a);
    exec_or_bail(pg, sql);
    snprintf(sql, sizeof sql, "DROP DATABASE %s", name_b);
    exec_or_bail(pg, sql);
    PQfinish(pg);
    return tap_done();
}
