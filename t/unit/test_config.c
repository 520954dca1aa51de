/* Configuration files: what a process reads from a valid file, the exact
 * one-line message for each mistake an operator can make, secrets from the
 * three sources (never echoed), relative paths, the warning about secrets
 * in a world-readable file, and the log lines that warning goes out on. */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "t/unit/tap.h"

static const config_key keys[] = {
    { "@id", CFG_STRING, 0, "instance id" },
    { "name", CFG_STRING, CFG_REQUIRED, "component name of this process" },
    { "listen", CFG_SECTION, 0, "where components connect" },
    { "listen/ip", CFG_STRING, 0, "address to listen on" },
    { "listen/port", CFG_INT, 0, "TCP port" },
    { "listen/@backlog", CFG_INT, 0, "listen(2) backlog" },
    { "max-stanza", CFG_INT, 0, "largest stanza in bytes" },
    { "verbose", CFG_BOOL, 0, "log more" },
    { "require-tls", CFG_FLAG, 0, "refuse plain connections" },
    { "tls/cert", CFG_FILE, 0, "certificate chain (PEM)" },     /* "tls" is an implicit section */
    { "storage/@uri", CFG_STRING, CFG_REQUIRED, "database URI" }, /* required only inside <storage> */
    { "router-secret", CFG_SECRET, 0, "secret for the router" },
    { "component", CFG_SECTION, CFG_MULTI, "a component allowed to connect" },
    { "component/@name", CFG_STRING, CFG_REQUIRED, "its name" },
    { "component/@secret", CFG_SECRET, CFG_REQUIRED, "its shared secret" },
    { "component/trusted", CFG_FLAG, 0, "may use the router extension" },
    { "host", CFG_STRING, CFG_MULTI, "a hosted domain" },
    { NULL, 0, 0, NULL },
};

static char tmpdir[256];

static char *path_in_tmp(const char *rel)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", tmpdir, rel) < 0) abort();
    return p;
}

static void write_file(const char *path, const char *content, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) abort();
    size_t len = strlen(content);
    if (write(fd, content, len) != (ssize_t)len) abort();
    if (fchmod(fd, mode) < 0) abort();
    close(fd);
}

/* The whole file as a string ("" if unreadable). */
static char *read_file(const char *path)
{
    char *s = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        if (getdelim(&s, &cap, '\0', f) < 0) {
            free(s);
            s = NULL;
        }
        fclose(f);
    }
    if (!s) s = strdup("");
    if (!s) abort();
    return s;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Capture what the log writes to stderr. */
static int saved_stderr = -1;
static char *capture_path;

static void capture_stderr_begin(void)
{
    fflush(stderr);
    capture_path = path_in_tmp("stderr.txt");
    int fd = open(capture_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) abort();
    saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static char *capture_stderr_end(void)
{
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    char *out = read_file(capture_path);
    unlink(capture_path);
    free(capture_path);
    return out;
}

static config *parse(const char *xml, char *err, size_t errlen)
{
    return config_parse("test.xml", xml, strlen(xml), "router", keys, err, errlen);
}

/* The file must be refused with exactly this message. */
static void expect_error(const char *desc, const char *xml, const char *want)
{
    char err[512] = "";
    config *c = parse(xml, err, sizeof err);
    ok(c == NULL, "%s: refused", desc);
    is_str(err, want, "%s: message", desc);
    config_free(c);
}

/* ------------------------------------------------------------- values */

static const char valid_xml[] =
    "<?xml version='1.0'?>\n"
    "<!-- comments are fine in config files -->\n"
    "<router id='r1'>\n"
    "  <name>\n"
    "    router.example\n"
    "  </name>\n"
    "  <listen backlog='128'>\n"
    "    <ip>127.0.0.1</ip>\n"
    "    <port> 5347 </port>\n"
    "  </listen>\n"
    "  <max-stanza>64k</max-stanza>\n"
    "  <verbose>Yes</verbose>\n"
    "  <require-tls/>\n"
    "  <router-secret>lit3ral-s3cret</router-secret>\n"
    "  <component name='sm' secret='sm-s3cret'>\n"
    "    <trusted/>\n"
    "  </component>\n"
    "  <component name='muc' secret='env:SB_TEST_MUC_SECRET'/>\n"
    "  <host>a.example</host>\n"
    "  <host>b.example</host>\n"
    "</router>\n";

static void test_values(void)
{
    char err[512] = "";
    setenv("SB_TEST_MUC_SECRET", "muc-s3cret", 1);
    config *c = parse(valid_xml, err, sizeof err);
    ok(c != NULL, "valid file loads");
    is_str(err, "", "no error message for a valid file");
    if (!c) return;

    is_str(config_path(c), "test.xml", "config_path is the name given");
    is_str(config_root(c)->name, "router", "config_root is the root element");
    is_str(config_str(c, "name", NULL), "router.example", "string value is trimmed");
    is_str(config_str(c, "listen/ip", NULL), "127.0.0.1", "nested string");
    is_int(config_int(c, "listen/port", 0), 5347, "nested int (whitespace around it ignored)");
    is_str(config_str(c, "listen/port", NULL), "5347", "int key read as string is trimmed");
    is_int(config_int(c, "max-stanza", 0), 65536, "int with k suffix");
    is_int(config_int(c, "listen/@backlog", 0), 128, "int attribute");
    is_str(config_str(c, "@id", NULL), "r1", "attribute of the root");
    is_int(config_bool(c, "verbose", 0), 1, "bool 'Yes'");
    is_int(config_bool(c, "require-tls", 0), 1, "flag present means true");
    is_str(config_str(c, "tls/cert", "none"), "none", "absent key gives the default");
    is_int(config_int(c, "listen/nope", -7), -7, "absent int gives the default");
    is_int(config_bool(c, "nope", 1), 1, "absent bool gives the default");
    is_str(config_str(c, "listen/@nope", NULL), NULL, "absent attribute gives the default");
    is_str(config_str(c, "name/@x/y", NULL), NULL, "attribute not last in a path is absent");

    /* Repeated sections. */
    const xnode *comp = config_first(c, "component");
    ok(comp != NULL, "first component");
    is_str(config_node_str(comp, "@name", NULL), "sm", "first component's name");
    is_int(config_node_bool(comp, "trusted", 0), 1, "first component is trusted (flag)");
    char *s = config_node_secret(comp, "@secret");
    is_str(s, "sm-s3cret", "first component's literal secret");
    free(s);
    comp = config_next(comp);
    ok(comp != NULL, "second component");
    is_str(config_node_str(comp, "@name", NULL), "muc", "second component's name");
    is_int(config_node_bool(comp, "trusted", 0), 0, "second component is not trusted");
    s = config_node_secret(comp, "@secret");
    is_str(s, "muc-s3cret", "second component's secret from env:");
    free(s);
    ok(config_next(comp) == NULL, "no third component");
    is_str(config_str(c, "component/@name", NULL), "sm", "path through a repeated section reads the first");

    /* A repeated value key, read with the element's own value (empty path). */
    const xnode *h = config_first(c, "host");
    is_str(config_node_str(h, "", NULL), "a.example", "first host");
    h = config_next(h);
    is_str(config_node_str(h, NULL, NULL), "b.example", "second host");
    ok(config_next(h) == NULL, "two hosts");
    ok(config_first(c, "nothing") == NULL, "config_first of an absent key is NULL");

    s = config_secret(c, "router-secret");
    is_str(s, "lit3ral-s3cret", "top-level literal secret");
    free(s);
    ok(config_secret(c, "nope") == NULL, "absent secret is NULL");
    config_free(c);
    unsetenv("SB_TEST_MUC_SECRET");
}

static void test_parse_helpers(void)
{
    static const char *const truths[] = { "true", "yes", "1", "on", "TRUE", "On" };
    static const char *const falsehoods[] = { "false", "no", "0", "off", "False", "NO" };
    for (size_t i = 0; i < sizeof truths / sizeof truths[0]; i++)
        is_int(config_parse_bool(truths[i]), 1, "bool '%s' is true", truths[i]);
    for (size_t i = 0; i < sizeof falsehoods / sizeof falsehoods[0]; i++)
        is_int(config_parse_bool(falsehoods[i]), 0, "bool '%s' is false", falsehoods[i]);
    is_int(config_parse_bool("maybe"), -1, "bool 'maybe' is an error");
    is_int(config_parse_bool(""), -1, "empty bool is an error");
    is_int(config_parse_bool(NULL), -1, "NULL bool is an error");

    long long v = 0;
    is_int(config_parse_int("42", &v), 0, "int 42 parses");
    is_int(v, 42, "int 42");
    is_int(config_parse_int("-5", &v), 0, "negative int parses");
    is_int(v, -5, "int -5");
    config_parse_int("2k", &v);
    is_int(v, 2048, "2k is 2048");
    config_parse_int("2K", &v);
    is_int(v, 2048, "2K is 2048");
    config_parse_int("3m", &v);
    is_int(v, 3145728, "3m is 3 MiB");
    config_parse_int("1M", &v);
    is_int(v, 1048576, "1M is 1 MiB");
    is_int(config_parse_int("9223372036854775807", &v), 0, "LLONG_MAX parses");
    is_int(config_parse_int("9223372036854775808", &v), -1, "LLONG_MAX + 1 overflows");
    is_int(config_parse_int("9007199254740992k", &v), -1, "overflow through the suffix is an error");
    is_int(config_parse_int("", &v), -1, "empty int is an error");
    is_int(config_parse_int("k", &v), -1, "suffix alone is an error");
    is_int(config_parse_int("12kb", &v), -1, "unknown suffix is an error");
    is_int(config_parse_int("1 2", &v), -1, "embedded space is an error");
    is_int(config_parse_int("0x10", &v), -1, "hex is an error");
    is_int(config_parse_int(NULL, &v), -1, "NULL int is an error");
}

/* ------------------------------------------------------------- errors */

static void test_errors(void)
{
    expect_error("unknown element",
                 "<router>\n  <name>x</name>\n  <lisen><port>1</port></lisen>\n</router>",
                 "test.xml:3: unknown key 'lisen' (did you mean 'listen'?)");
    expect_error("unknown element without a near key",
                 "<router>\n  <name>x</name>\n\n  <frobnicate/>\n</router>",
                 "test.xml:4: unknown key 'frobnicate'");
    expect_error("unknown nested element",
                 "<router>\n  <name>x</name>\n  <listen>\n    <prot>1</prot>\n  </listen>\n</router>",
                 "test.xml:4: unknown key 'listen/prot' (did you mean 'listen/port'?)");
    expect_error("unknown attribute",
                 "<router>\n  <name>x</name>\n  <listen backlg='5'/>\n</router>",
                 "test.xml:3: unknown key 'listen/@backlg' (did you mean 'listen/@backlog'?)");
    expect_error("unknown attribute on the root",
                 "<router version='2'>\n  <name>x</name>\n</router>",
                 "test.xml:1: unknown key '@version'");
    expect_error("element inside a value",
                 "<router>\n  <name>x<first/></name>\n</router>",
                 "test.xml:2: unknown key 'name/first'");
    expect_error("duplicate value",
                 "<router>\n  <name>x</name>\n  <name>y</name>\n</router>",
                 "test.xml:3: duplicate key 'name' (first at line 2)");
    expect_error("duplicate section",
                 "<router>\n  <name>x</name>\n  <listen/>\n  <listen/>\n</router>",
                 "test.xml:4: duplicate key 'listen' (first at line 3)");
    expect_error("duplicate implicit section",
                 "<router>\n  <name>x</name>\n  <tls/>\n  <tls/>\n</router>",
                 "test.xml:4: duplicate key 'tls' (first at line 3)");
    expect_error("duplicate inside one occurrence of a repeated section",
                 "<router>\n  <name>x</name>\n  <component name='a' secret='s'>\n"
                 "    <trusted/>\n    <trusted/>\n  </component>\n</router>",
                 "test.xml:5: duplicate key 'component/trusted' (first at line 4)");
    expect_error("bad int",
                 "<router>\n  <name>x</name>\n  <listen><port>52x</port></listen>\n</router>",
                 "test.xml:3: key 'listen/port': '52x' is not an integer");
    expect_error("bad int attribute",
                 "<router>\n  <name>x</name>\n  <listen backlog='lots'/>\n</router>",
                 "test.xml:3: key 'listen/@backlog': 'lots' is not an integer");
    expect_error("bad bool",
                 "<router>\n  <name>x</name>\n  <verbose>maybe</verbose>\n</router>",
                 "test.xml:3: key 'verbose': 'maybe' is not a boolean (true/false/yes/no/1/0/on/off)");
    expect_error("flag with a value",
                 "<router>\n  <name>x</name>\n  <require-tls>yes</require-tls>\n</router>",
                 "test.xml:3: key 'require-tls' is a flag and takes no value");
    expect_error("unreadable file",
                 "<router>\n  <name>x</name>\n  <tls>\n    <cert>/nonexistent/x.pem</cert>\n  </tls>\n</router>",
                 "test.xml:4: key 'tls/cert': cannot read '/nonexistent/x.pem': No such file or directory");
    expect_error("empty file name",
                 "<router>\n  <name>x</name>\n  <tls><cert> </cert></tls>\n</router>",
                 "test.xml:3: key 'tls/cert': no file name given");
    expect_error("missing required key",
                 "<router>\n  <listen/>\n</router>",
                 "test.xml: missing required key 'name'");
    expect_error("required attribute inside a repeated section",
                 "<router>\n  <name>x</name>\n  <component name='a' secret='s'/>\n"
                 "  <component name='b'/>\n</router>",
                 "test.xml:4: missing required key 'component/@secret'");
    expect_error("required attribute inside an optional section that is present",
                 "<router>\n  <name>x</name>\n  <storage/>\n</router>",
                 "test.xml:3: missing required key 'storage/@uri'");
    expect_error("section holding text",
                 "<router>\n  <name>x</name>\n  <listen>5222<port>1</port></listen>\n</router>",
                 "test.xml:3: key 'listen' is a section and cannot hold text");
    expect_error("text directly in the root",
                 "<router>\n  stray\n  <name>x</name>\n</router>",
                 "test.xml:1: text is not allowed directly in <router>");
    expect_error("wrong root element",
                 "<?xml version='1.0'?>\n<c2s>\n  <name>x</name>\n</c2s>",
                 "test.xml:2: root element is <c2s>, expected <router>");

    /* The parser's own wording is its business; the place is ours. */
    char err[512] = "";
    const char *broken = "<router>\n  <name>x</name>\n  <listen>\n</router>\n";
    config *c = parse(broken, err, sizeof err);
    ok(c == NULL, "not well-formed XML is refused");
    ok(strncmp(err, "test.xml:4: ", 12) == 0, "not well-formed XML: file and line of the error (%s)", err);

    err[0] = '\0';
    const char *doctype = "<?xml version='1.0'?>\n<!DOCTYPE router [<!ENTITY e 'x'>]>\n<router><name>&e;</name></router>";
    c = parse(doctype, err, sizeof err);
    ok(c == NULL, "DOCTYPE is refused");
    ok(strncmp(err, "test.xml:2: ", 12) == 0, "DOCTYPE: file and line of the error (%s)", err);

    err[0] = '\0';
    c = parse("", err, sizeof err);
    ok(c == NULL, "empty file is refused");
    ok(strncmp(err, "test.xml:", 9) == 0, "empty file: message names the file (%s)", err);

    /* Over 1 MiB is refused before parsing. */
    size_t big = 1024 * 1024 + 1;
    char *data = malloc(big);
    memset(data, ' ', big);
    memcpy(data, "<router>", 8);
    err[0] = '\0';
    c = config_parse("test.xml", data, big, "router", keys, err, sizeof err);
    ok(c == NULL, "a file over 1 MiB is refused");
    is_str(err, "test.xml: file too large (1048577 bytes, limit 1048576)", "too large: message");
    char *bigpath = path_in_tmp("big.xml");
    FILE *f = fopen(bigpath, "w");
    fwrite(data, 1, big, f);
    fclose(f);
    c = config_load(bigpath, "router", keys, err, sizeof err);
    ok(c == NULL, "config_load refuses a file over 1 MiB");
    ok(strstr(err, "file too large") != NULL, "config_load too large: message (%s)", err);
    unlink(bigpath);
    free(bigpath);
    free(data);

    char *missing = path_in_tmp("missing.xml");
    c = config_load(missing, "router", keys, err, sizeof err);
    ok(c == NULL, "config_load of a missing file fails");
    char *want = NULL;
    if (asprintf(&want, "%s: cannot open: No such file or directory", missing) < 0) abort();
    is_str(err, want, "missing file: message");
    free(want);
    free(missing);

    /* A NULL error buffer is allowed. */
    ok(parse("<router/>", NULL, 0) == NULL, "errors without an error buffer");
}

/* ------------------------------------------------------------- secrets */

static void test_secrets(void)
{
    char err[512];
    char *s;

    /* config_resolve_secret directly. */
    s = config_resolve_secret("plain-s3cret", err, sizeof err);
    is_str(s, "plain-s3cret", "literal secret");
    free(s);

    char *secret_file = path_in_tmp("secret.txt");
    write_file(secret_file, "f1le-s3cret\r\nsecond line\n", 0600);
    char *spec = NULL;
    if (asprintf(&spec, "file:%s", secret_file) < 0) abort();
    s = config_resolve_secret(spec, err, sizeof err);
    is_str(s, "f1le-s3cret", "file: secret is the first line without CR LF");
    free(s);

    char *one_line = path_in_tmp("oneline.txt");
    write_file(one_line, "no-newline", 0600);
    char *spec2 = NULL;
    if (asprintf(&spec2, "file:%s", one_line) < 0) abort();
    s = config_resolve_secret(spec2, err, sizeof err);
    is_str(s, "no-newline", "file: secret without a final newline");
    free(s);

    char *empty_file = path_in_tmp("empty.txt");
    write_file(empty_file, "\n", 0600);
    char *spec3 = NULL;
    if (asprintf(&spec3, "file:%s", empty_file) < 0) abort();
    s = config_resolve_secret(spec3, err, sizeof err);
    ok(s == NULL, "file: secret whose first line is empty is refused");
    char *want = NULL;
    if (asprintf(&want, "'%s' is empty", empty_file) < 0) abort();
    is_str(err, want, "empty secret file: message");
    free(want);

    s = config_resolve_secret("file:/nonexistent/secret", err, sizeof err);
    ok(s == NULL, "missing secret file is refused");
    is_str(err, "cannot read '/nonexistent/secret': No such file or directory", "missing secret file: message");

    setenv("SB_TEST_SECRET", "env-s3cret", 1);
    s = config_resolve_secret("env:SB_TEST_SECRET", err, sizeof err);
    is_str(s, "env-s3cret", "env: secret");
    free(s);
    setenv("SB_TEST_EMPTY", "", 1);
    s = config_resolve_secret("env:SB_TEST_EMPTY", err, sizeof err);
    ok(s == NULL, "empty env: secret is refused");
    is_str(err, "environment variable 'SB_TEST_EMPTY' is empty", "empty env: message");
    unsetenv("SB_TEST_UNSET");
    s = config_resolve_secret("env:SB_TEST_UNSET", err, sizeof err);
    ok(s == NULL, "unset env: secret is refused");
    is_str(err, "environment variable 'SB_TEST_UNSET' is not set", "unset env: message");
    s = config_resolve_secret("", err, sizeof err);
    ok(s == NULL, "empty literal secret is refused");

    /* The same errors through a config file, with file, line and key. */
    expect_error("secret from an unset variable",
                 "<router>\n  <name>x</name>\n  <component name='a' secret='env:SB_TEST_UNSET'/>\n</router>",
                 "test.xml:3: key 'component/@secret': environment variable 'SB_TEST_UNSET' is not set");
    expect_error("secret from a missing file",
                 "<router>\n  <name>x</name>\n  <router-secret>file:/nonexistent/secret</router-secret>\n</router>",
                 "test.xml:3: key 'router-secret': cannot read '/nonexistent/secret': No such file or directory");
    expect_error("empty secret",
                 "<router>\n  <name>x</name>\n  <router-secret>  </router-secret>\n</router>",
                 "test.xml:3: key 'router-secret': the secret is empty");

    /* Secrets in the file never reach a message. */
    const char *with_secret_then_error =
        "<router>\n  <name>x</name>\n  <component name='a' secret='hunter2-literal'/>\n"
        "  <router-secret>hunter2-other</router-secret>\n  <router-secret>hunter2-again</router-secret>\n</router>";
    config *c = parse(with_secret_then_error, err, sizeof err);
    ok(c == NULL, "duplicate secret key is refused");
    is_str(err, "test.xml:5: duplicate key 'router-secret' (first at line 4)", "duplicate secret: message");
    ok(strstr(err, "hunter2") == NULL, "duplicate secret: the message holds no secret");
    c = parse("<router>\n  <name>x</name>\n  <router-secret>hunter2<x/></router-secret>\n</router>", err, sizeof err);
    ok(c == NULL && strstr(err, "hunter2") == NULL, "secret with a child element: no secret in '%s'", err);
    c = parse("<router>\n  <name>x</name>\n  <component name='a' secret='hunter2'/>\n"
              "  <component name='b' secret='hunter3'>x</component>\n</router>", err, sizeof err);
    ok(c == NULL && strstr(err, "hunter") == NULL, "section text next to secrets: no secret in '%s'", err);

    /* A secret from a file named in the config. */
    char *xml = NULL;
    if (asprintf(&xml, "<router><name>x</name><router-secret>%s</router-secret></router>", spec) < 0) abort();
    c = parse(xml, err, sizeof err);
    ok(c != NULL, "config with a file: secret loads");
    s = config_secret(c, "router-secret");
    is_str(s, "f1le-s3cret", "config_secret reads the file");
    free(s);
    is_str(config_str(c, "router-secret", NULL), spec, "config_str of a secret is its spec, not the secret");
    config_free(c);
    free(xml);

    unsetenv("SB_TEST_SECRET");
    unsetenv("SB_TEST_EMPTY");
    unlink(secret_file);
    unlink(one_line);
    unlink(empty_file);
    free(secret_file);
    free(one_line);
    free(empty_file);
    free(spec);
    free(spec2);
    free(spec3);
}

/* ------------------------------------------------- files and directories */

static void test_relative_paths(void)
{
    char err[512] = "";
    char *conf_dir = path_in_tmp("conf");
    char *certs_dir = path_in_tmp("conf/certs");
    mkdir(conf_dir, 0700);
    mkdir(certs_dir, 0700);
    char *cert = path_in_tmp("conf/certs/server.pem");
    write_file(cert, "-----BEGIN CERTIFICATE-----\n", 0600);
    char *secret = path_in_tmp("conf/component.secret");
    write_file(secret, "rel-s3cret\n", 0600);
    char *conf = path_in_tmp("conf/router.xml");
    write_file(conf,
               "<router>\n  <name>x</name>\n  <tls><cert>certs/server.pem</cert></tls>\n"
               "  <component name='a' secret='file:component.secret'/>\n</router>\n",
               0600);

    char *old_cwd = getcwd(NULL, 0);
    if (chdir("/") < 0) abort();
    config *c = config_load(conf, "router", keys, err, sizeof err);
    ok(c != NULL, "config with relative paths loads from another directory (%s)", err);
    is_str(config_str(c, "tls/cert", NULL), cert, "relative file path is resolved against the config's directory");
    char *s = config_node_secret(config_first(c, "component"), "@secret");
    is_str(s, "rel-s3cret", "relative file: secret is resolved against the config's directory");
    free(s);
    config_free(c);

    /* A config path that is itself relative still gives absolute paths. */
    if (chdir(tmpdir) < 0) abort();
    char *real_tmp = getcwd(NULL, 0);
    c = config_load("conf/router.xml", "router", keys, err, sizeof err);
    ok(c != NULL, "config loads by a relative path (%s)", err);
    char *want = NULL;
    if (asprintf(&want, "%s/conf/certs/server.pem", real_tmp) < 0) abort();
    is_str(config_str(c, "tls/cert", NULL), want, "resolved path is absolute");
    free(want);
    /* Still valid after the process changes directory. */
    if (chdir("/") < 0) abort();
    ok(c && access(config_str(c, "tls/cert", ""), R_OK) == 0, "resolved path survives chdir");
    config_free(c);

    /* A missing relative file is reported with the path that was tried. */
    if (asprintf(&want, "%s:3: key 'tls/cert': cannot read '%s/conf/certs/missing.pem': No such file or directory",
                 conf, tmpdir) < 0)
        abort();
    write_file(conf, "<router>\n  <name>x</name>\n  <tls><cert>certs/missing.pem</cert></tls>\n</router>\n", 0600);
    c = config_load(conf, "router", keys, err, sizeof err);
    ok(c == NULL, "missing relative file is refused");
    is_str(err, want, "missing relative file: message with the resolved path");
    free(want);

    if (chdir(old_cwd) < 0) abort();
    free(old_cwd);
    free(real_tmp);
    free(conf_dir);
    free(certs_dir);
    free(cert);
    free(secret);
    free(conf);
}

static void test_world_readable_warning(void)
{
    char err[512] = "";
    char *conf = path_in_tmp("readable.xml");
    const char *xml =
        "<router>\n  <name>x</name>\n  <component name='a' secret='t0p-s3cret-value'/>\n</router>\n";

    log_open("cfgtest", LOG_LVL_INFO, 0);
    write_file(conf, xml, 0644);
    capture_stderr_begin();
    config *c = config_load(conf, "router", keys, err, sizeof err);
    char *out = capture_stderr_end();
    ok(c != NULL, "world-readable config with a literal secret still loads");
    ok(strstr(out, " cfgtest[") != NULL && strstr(out, " warn: ") != NULL, "a warning is logged");
    ok(strstr(out, conf) != NULL, "the warning names the file");
    ok(strstr(out, "'component/@secret'") != NULL, "the warning names the key");
    ok(strstr(out, "t0p-s3cret") == NULL, "the warning does not contain the secret");
    is_int(strchr(out, '\n') ? (long long)(strchr(out, '\n') - out + 1) : -1, (long long)strlen(out),
           "exactly one line is logged");
    free(out);
    config_free(c);

    write_file(conf, xml, 0640);
    capture_stderr_begin();
    c = config_load(conf, "router", keys, err, sizeof err);
    out = capture_stderr_end();
    ok(c != NULL, "private config loads");
    is_str(out, "", "no warning when others cannot read the file");
    free(out);
    config_free(c);

    setenv("SB_TEST_SECRET", "env-s3cret", 1);
    write_file(conf, "<router><name>x</name><component name='a' secret='env:SB_TEST_SECRET'/></router>", 0644);
    capture_stderr_begin();
    c = config_load(conf, "router", keys, err, sizeof err);
    out = capture_stderr_end();
    ok(c != NULL, "world-readable config with env: secret loads");
    is_str(out, "", "no warning when the secret is not in the file");
    free(out);
    config_free(c);
    unsetenv("SB_TEST_SECRET");

    unlink(conf);
    free(conf);
    log_close();
}

/* ------------------------------------------------------------- log lines */

static int looks_like_timestamp(const char *s)
{
    /* 2026-11-21T14:30:00.123Z */
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i]) return 0;
    }
    return 1;
}

static void test_log_lines(void)
{
    log_open("router", LOG_LVL_NOTICE, 0);
    capture_stderr_begin();
    log_warn("peer said %s", "hello\nfake-host router[1] error: forged\r!");
    log_info("not shown at level notice");
    log_debug("not shown either");
    log_error("second");
    char *out = capture_stderr_end();

    ok(looks_like_timestamp(out), "line starts with an ISO 8601 UTC timestamp (%.30s)", out);
    char *prefix = NULL;
    if (asprintf(&prefix, " router[%ld] warn: peer said hello?fake-host router[1] error: forged?!\n", (long)getpid()) < 0)
        abort();
    ok(strncmp(out + 24, prefix, strlen(prefix)) == 0, "ident, pid, level, and control characters replaced");
    free(prefix);
    int lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    is_int(lines, 2, "a forged newline does not make a line; info is filtered at notice");
    ok(strstr(out, "error: second\n") != NULL, "error is shown at level notice");
    free(out);

    /* A long message is cut, and still one line. */
    size_t n = 10000;
    char *longmsg = malloc(n + 1);
    memset(longmsg, 'a', n);
    longmsg[n] = '\0';
    capture_stderr_begin();
    log_error("%s", longmsg);
    out = capture_stderr_end();
    ok(strlen(out) < 2300, "long message is truncated (%zu bytes)", strlen(out));
    ok(strstr(out, "...[truncated]\n") != NULL, "truncation is marked");
    lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    is_int(lines, 1, "truncated message is one line");
    free(out);
    free(longmsg);

    log_set_level(LOG_LVL_DEBUG);
    is_int(log_get_level(), LOG_LVL_DEBUG, "log_set_level");
    capture_stderr_begin();
    log_debug("dbg %d", 7);
    out = capture_stderr_end();
    ok(strstr(out, " debug: dbg 7\n") != NULL, "debug shown at level debug");
    free(out);
    log_close();

    is_int(log_level_parse("error"), LOG_LVL_ERROR, "parse 'error'");
    is_int(log_level_parse("warn"), LOG_LVL_WARN, "parse 'warn'");
    is_int(log_level_parse("notice"), LOG_LVL_NOTICE, "parse 'notice'");
    is_int(log_level_parse("info"), LOG_LVL_INFO, "parse 'info'");
    is_int(log_level_parse("debug"), LOG_LVL_DEBUG, "parse 'debug'");
    is_int(log_level_parse("loud"), -1, "parse unknown level");
    is_int(log_level_parse(NULL), -1, "parse NULL level");
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sb-test-config-XXXXXX");
    if (!mkdtemp(tmpdir)) abort();

    test_values();
    test_parse_helpers();
    test_errors();
    test_secrets();
    test_relative_paths();
    test_world_readable_warning();
    test_log_lines();

    nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    return tap_done();
}
