/* ctl_config: read database/conninfo from a process configuration file.
 * The file is parsed with expat and only that element is looked at: the
 * rest of a process's configuration is that process's business. */
#include "tools/ctl_config.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "common/config.h"
#include "common/crypto.h"

#define MAX_FILE (1024 * 1024)

typedef struct {
    int depth;
    int in_database;   /* depth 2 <database> open */
    int in_conninfo;   /* depth 3 <conninfo> open */
    int found;
    char value[4096];
    size_t len;
} reader;

static const char *local_name(const char *name)
{
    const char *sep = strrchr(name, ' ');   /* with namespace processing off this does not occur */
    return sep ? sep + 1 : name;
}

static void on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    reader *r = ud;
    (void)attrs;
    r->depth++;
    if (r->depth == 2 && strcmp(local_name(name), "database") == 0) r->in_database = 1;
    if (r->depth == 3 && r->in_database && strcmp(local_name(name), "conninfo") == 0 && !r->found) {
        r->in_conninfo = 1;
        r->found = 1;
        r->len = 0;
    }
}

static void on_end(void *ud, const XML_Char *name)
{
    reader *r = ud;
    (void)name;
    if (r->depth == 3) r->in_conninfo = 0;
    if (r->depth == 2) r->in_database = 0;
    r->depth--;
}

static void on_text(void *ud, const XML_Char *s, int len)
{
    reader *r = ud;
    if (!r->in_conninfo) return;
    size_t n = (size_t)len;
    if (r->len + n >= sizeof r->value) n = sizeof r->value - 1 - r->len;
    memcpy(r->value + r->len, s, n);
    r->len += n;
    r->value[r->len] = 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\n' || s[l - 1] == '\r')) s[--l] = 0;
    return s;
}

char *ctl_config_conninfo(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_FILE);
    if (!buf) abort();
    size_t n = fread(buf, 1, MAX_FILE, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n == MAX_FILE) {
        snprintf(err, errlen, "%s: %s", path, bad ? "cannot read it" : "too big for a configuration file");
        free(buf);
        return NULL;
    }
    reader r;
    memset(&r, 0, sizeof r);
    XML_Parser p = XML_ParserCreate("UTF-8");
    if (!p) abort();
    XML_SetUserData(p, &r);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_text);
    if (XML_Parse(p, buf, (int)n, 1) != XML_STATUS_OK) {
        snprintf(err, errlen, "%s:%lu: %s", path, (unsigned long)XML_GetCurrentLineNumber(p),
                 XML_ErrorString(XML_GetErrorCode(p)));
        XML_ParserFree(p);
        free(buf);
        return NULL;
    }
    XML_ParserFree(p);
    free(buf);
    char *spec = trim(r.value);
    if (!r.found || !*spec) {
        snprintf(err, errlen, "%s: no database/conninfo", path);
        crypto_wipe(r.value, sizeof r.value);
        return NULL;
    }
    /* file: relative to the configuration file's directory, as processes read it. */
    char resolved[8192];
    if (strncmp(spec, "file:", 5) == 0 && spec[5] != '/') {
        char *copy = strdup(path);
        if (!copy) abort();
        snprintf(resolved, sizeof resolved, "file:%s/%s", dirname(copy), spec + 5);
        free(copy);
        spec = resolved;
    }
    char msg[512];
    char *value = config_resolve_secret(spec, msg, sizeof msg);
    crypto_wipe(r.value, sizeof r.value);
    if (!value) snprintf(err, errlen, "%s: database/conninfo: %s", path, msg);
    return value;
}
