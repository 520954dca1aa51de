/* Configuration files: load, validate against the process's key table, read.
 *
 * Validation walks every element and attribute below the root and matches
 * its path ("listen/port", "component/@secret") against the table, so any
 * mistake in the file stops the process at start with one line naming the
 * file, the line and the key. After validation the tree is normalized, so
 * the getters only look values up:
 *   - the text of a value element is trimmed of surrounding whitespace;
 *   - CFG_FILE values (and "file:" secrets) given as relative paths are
 *     replaced by absolute paths, relative to the config file's directory,
 *     so a later chdir() does not change what they name.
 *
 * Decisions the header leaves open:
 *   - An element that is not in the table but has keys below it ("tls" when
 *     the table lists "tls/cert") is accepted as a section that may appear
 *     once, so tables need not list every intermediate element.
 *   - A missing required key whose parent is the root is reported as
 *     "FILE: missing required key 'x'"; one below a section (checked for
 *     each occurrence of it) as "FILE:LINE: ..." with the section's line.
 *   - Namespaces are ignored: elements match by local name.
 *   - An empty path in the node getters means the element's own value, so a
 *     repeated value key (<host>a</host><host>b</host>) can be iterated. */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/log.h"
#include "common/xml_stream.h"

/* Config files are written by hand: anything bigger is a mistake. */
#define CONFIG_MAX_BYTES (1024 * 1024)
#define CONFIG_MAX_DEPTH 16
#define CONFIG_MAX_ATTRS 64

struct config {
    char *path;
    stanza *doc;
};

/* ---------------------------------------------------------------- helpers */

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* a + (separator if needed) + b, malloc'd. */
static char *path_join(const char *a, const char *b)
{
    size_t alen = strlen(a), blen = strlen(b);
    int slash = alen > 0 && a[alen - 1] != '/';
    char *out = malloc(alen + (size_t)slash + blen + 1);
    if (!out) return NULL;
    memcpy(out, a, alen);
    if (slash) out[alen] = '/';
    memcpy(out + alen + (size_t)slash, b, blen + 1);
    return out;
}

/* Absolute directory of the config file named name (for relative paths). */
static char *config_dir_of(const char *name)
{
    const char *slash = strrchr(name, '/');
    char *dir = !slash ? strdup(".") : slash == name ? strdup("/") : strndup(name, (size_t)(slash - name));
    if (!dir || dir[0] == '/') return dir;
    char *cwd = getcwd(NULL, 0);
    if (!cwd) return dir;   /* best effort: stay relative */
    if (strcmp(dir, ".") == 0) {
        free(dir);
        return cwd;
    }
    char *abs = path_join(cwd, dir);
    free(cwd);
    if (!abs) return dir;
    free(dir);
    return abs;
}

/* ------------------------------------------------------- value parsers */

int config_parse_bool(const char *s)
{
    static const char *const yes[] = { "true", "yes", "1", "on" };
    static const char *const no[] = { "false", "no", "0", "off" };
    if (!s) return -1;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) return 1;
        if (strcasecmp(s, no[i]) == 0) return 0;
    }
    return -1;
}

int config_parse_int(const char *s, long long *out)
{
    if (!s) return -1;
    const char *p = s;
    int negative = 0;
    if (*p == '-' || *p == '+') negative = *p++ == '-';
    if (!isdigit((unsigned char)*p)) return -1;
    long long v = 0;
    for (; isdigit((unsigned char)*p); p++) {
        int d = *p - '0';
        if (v > (LLONG_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    long long mult = 1;
    if (*p == 'k' || *p == 'K') mult = 1024, p++;
    else if (*p == 'm' || *p == 'M') mult = 1024 * 1024, p++;
    if (*p != '\0') return -1;
    if (__builtin_mul_overflow(v, mult, &v)) return -1;
    if (out) *out = negative ? -v : v;
    return 0;
}

static char *read_secret_file(const char *path, char *err, size_t errlen)
{
    if (!*path) {
        set_err(err, errlen, "'file:' needs a path");
        return NULL;
    }
    FILE *f = fopen(path, "re");
    if (!f) {
        set_err(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0;
    errno = 0;
    ssize_t n = getline(&line, &cap, f);
    int read_errno = errno, failed = ferror(f);
    fclose(f);
    if (n < 0 && failed) {
        free(line);
        set_err(err, errlen, "cannot read '%s': %s", path, strerror(read_errno));
        return NULL;
    }
    size_t len = n < 0 ? 0 : (size_t)n;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    if (len == 0) {
        if (line) crypto_wipe(line, cap);
        free(line);
        set_err(err, errlen, "'%s' is empty", path);
        return NULL;
    }
    return line;
}

char *config_resolve_secret(const char *spec, char *err, size_t errlen)
{
    if (!spec) {
        set_err(err, errlen, "no secret given");
        return NULL;
    }
    if (strncmp(spec, "file:", 5) == 0) return read_secret_file(spec + 5, err, errlen);
    const char *value = spec;
    if (strncmp(spec, "env:", 4) == 0) {
        const char *name = spec + 4;
        if (!*name) {
            set_err(err, errlen, "'env:' needs a variable name");
            return NULL;
        }
        value = getenv(name);
        if (!value) {
            set_err(err, errlen, "environment variable '%s' is not set", name);
            return NULL;
        }
        if (!*value) {
            set_err(err, errlen, "environment variable '%s' is empty", name);
            return NULL;
        }
    } else if (!*value) {
        set_err(err, errlen, "the secret is empty");
        return NULL;
    }
    char *copy = strdup(value);
    if (!copy) set_err(err, errlen, "out of memory");
    return copy;
}

static void free_secret(char *s)
{
    if (!s) return;
    crypto_wipe(s, strlen(s));
    free(s);
}

/* ------------------------------------------------------------ validation */

/* The path of the element or attribute being checked, grown as we descend. */
typedef struct key_path {
    char *s;
    size_t len, cap;
} key_path;

/* Append "/name" (or "name" at the root level), with "@" for attributes.
 * Returns the previous length to restore, or (size_t)-1 out of memory. */
static size_t key_path_push(key_path *p, const char *prefix, const char *name, int attribute)
{
    size_t old = p->len;
    size_t plen = prefix ? strlen(prefix) + 1 : 0, nlen = strlen(name);
    size_t need = old + 1 + (size_t)attribute + plen + nlen + 1;
    if (need > p->cap) {
        size_t cap = p->cap ? p->cap : 64;
        while (cap < need) cap *= 2;
        char *s = realloc(p->s, cap);
        if (!s) return (size_t)-1;
        p->s = s;
        p->cap = cap;
    }
    char *w = p->s + old;
    if (old > 0) *w++ = '/';
    if (attribute) *w++ = '@';
    if (prefix) {
        memcpy(w, prefix, plen - 1);
        w += plen - 1;
        *w++ = ':';
    }
    memcpy(w, name, nlen + 1);
    p->len = (size_t)(w - p->s) + nlen;
    return old;
}

static void key_path_pop(key_path *p, size_t old)
{
    p->len = old;
    p->s[old] = '\0';
}

typedef struct validator {
    const char *name;           /* file name, for messages */
    char *dir;                  /* absolute directory of the file */
    const config_key *keys;
    stanza *doc;
    char *err;
    size_t errlen;
    key_path path;
    const char *literal_secret;     /* first key holding a secret in clear */
    unsigned literal_secrets;
} validator;

__attribute__((format(printf, 3, 4)))
static int fail(validator *v, uint32_t line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) set_err(v->err, v->errlen, "%s:%u: %s", v->name, (unsigned)line, msg);
    else set_err(v->err, v->errlen, "%s: %s", v->name, msg);
    return -1;
}

static int fail_nomem(validator *v)
{
    return fail(v, 0, "out of memory");
}

static const config_key *key_find(const config_key *keys, const char *path)
{
    for (const config_key *k = keys; k->path; k++)
        if (strcmp(k->path, path) == 0) return k;
    return NULL;
}

/* Whether some key lies below path ("tls" for "tls/cert"). */
static int key_has_descendants(const config_key *keys, const char *path, size_t len)
{
    for (const config_key *k = keys; k->path; k++)
        if (strncmp(k->path, path, len) == 0 && k->path[len] == '/') return 1;
    return 0;
}

/* Levenshtein distance, or SIZE_MAX when out of memory. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    size_t *row = malloc((m + 1) * sizeof *row);
    if (!row) return SIZE_MAX;
    for (size_t j = 0; j <= m; j++) row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t d = row[m];
    free(row);
    return d;
}

static int fail_unknown(validator *v, uint32_t line, const char *path)
{
    const char *closest = NULL;
    size_t best = (strlen(path) + 2) / 3 + 1;    /* suggest only near misses */
    for (const config_key *k = v->keys; k->path; k++) {
        size_t d = edit_distance(path, k->path);
        if (d < best) best = d, closest = k->path;
    }
    if (closest) return fail(v, line, "unknown key '%s' (did you mean '%s'?)", path, closest);
    return fail(v, line, "unknown key '%s'", path);
}

/* Check one value against its key's type. *replacement is set (in the
 * document's arena) when the stored value must change: resolved paths. */
static int check_value(validator *v, uint32_t line, const config_key *key, const char *value,
                       const char **replacement)
{
    const char *path = v->path.s;
    *replacement = NULL;
    switch (key->type) {
    case CFG_STRING:
    case CFG_SECTION:
        return 0;
    case CFG_INT:
        if (config_parse_int(value, NULL) < 0)
            return fail(v, line, "key '%s': '%s' is not an integer", path, value);
        return 0;
    case CFG_BOOL:
        if (config_parse_bool(value) < 0)
            return fail(v, line, "key '%s': '%s' is not a boolean (true/false/yes/no/1/0/on/off)",
                        path, value);
        return 0;
    case CFG_FLAG:
        if (*value) return fail(v, line, "key '%s' is a flag and takes no value", path);
        return 0;
    case CFG_FILE: {
        if (!*value) return fail(v, line, "key '%s': no file name given", path);
        const char *file = value;
        if (value[0] != '/') {
            char *abs = path_join(v->dir, value);
            if (!abs) return fail_nomem(v);
            file = *replacement = stanza_strdup(v->doc, abs);
            free(abs);
        }
        if (access(file, R_OK) < 0)
            return fail(v, line, "key '%s': cannot read '%s': %s", path, file, strerror(errno));
        return 0;
    }
    case CFG_SECRET: {
        const char *spec = value;
        if (strncmp(value, "file:", 5) == 0 && value[5] != '\0' && value[5] != '/') {
            char *abs = path_join(v->dir, value + 5);
            if (!abs) return fail_nomem(v);
            size_t alen = strlen(abs);
            char *s = arena_alloc(&v->doc->mem, alen + 6);
            memcpy(s, "file:", 5);
            memcpy(s + 5, abs, alen + 1);
            free(abs);
            spec = *replacement = s;
        } else if (strncmp(value, "file:", 5) != 0 && strncmp(value, "env:", 4) != 0 && *value) {
            if (v->literal_secrets++ == 0) v->literal_secret = stanza_strdup(v->doc, path);
        }
        /* The messages of config_resolve_secret name the file or variable,
         * never the secret. */
        char msg[512];
        char *secret = config_resolve_secret(spec, msg, sizeof msg);
        if (!secret) return fail(v, line, "key '%s': %s", path, msg);
        free_secret(secret);
        return 0;
    }
    }
    return 0;
}

static int has_text(const xnode *el)
{
    for (const xnode *c = el->children; c; c = c->next) {
        if (c->type != XNODE_TEXT) continue;
        for (size_t i = 0; i < c->text_len; i++)
            if (!is_space(c->text[i])) return 1;
    }
    return 0;
}

/* The trimmed text of a value element, in the arena. */
static const char *trimmed_text(stanza *doc, const xnode *el)
{
    const char *t = xnode_text(el);
    while (is_space(*t)) t++;
    size_t len = strlen(t);
    while (len > 0 && is_space(t[len - 1])) len--;
    return stanza_strndup(doc, t, len);
}

static int validate_attrs(validator *v, xnode *el)
{
    for (xattr *a = el->attrs; a; a = a->next) {
        int qualified = a->ns && *a->ns;
        size_t old = key_path_push(&v->path, qualified ? (a->prefix ? a->prefix : a->ns) : NULL, a->name, 1);
        if (old == (size_t)-1) return fail_nomem(v);
        const config_key *key = key_find(v->keys, v->path.s);
        if (!key) return fail_unknown(v, el->line, v->path.s);
        if (key->type == CFG_SECTION)
            return fail(v, el->line, "key '%s' is a section, not an attribute", v->path.s);
        const char *replacement;
        if (check_value(v, el->line, key, a->value, &replacement) < 0) return -1;
        if (replacement) {
            a->value = replacement;
            stanza_touch(v->doc);
        }
        key_path_pop(&v->path, old);
    }
    return 0;
}

/* A value element: no child elements, trimmed text checked by type. */
static int validate_value(validator *v, xnode *el, const config_key *key)
{
    for (xnode *c = el->children; c; c = c->next) {
        if (c->type != XNODE_ELEMENT) continue;
        char *parent = strdup(v->path.s);
        if (!parent) return fail_nomem(v);
        size_t old = key_path_push(&v->path, NULL, c->name, 0);
        int rc;
        if (old == (size_t)-1) rc = fail_nomem(v);
        else if (key_find(v->keys, v->path.s)) rc = fail(v, c->line, "key '%s' holds a value, not elements", parent);
        else rc = fail_unknown(v, c->line, v->path.s);
        free(parent);
        return rc;
    }
    const char *value = trimmed_text(v->doc, el);
    const char *replacement;
    if (check_value(v, el->line, key, value, &replacement) < 0) return -1;
    if (replacement) value = replacement;
    /* Store the normalized value as the element's only child. */
    xnode_clear_children(el);
    if (*value) xnode_add_text(el, value, strlen(value));
    return 0;
}

static int validate_required(validator *v, const xnode *el, int is_root)
{
    size_t plen = v->path.len;
    for (const config_key *k = v->keys; k->path; k++) {
        if (!(k->flags & CFG_REQUIRED)) continue;
        const char *slash = strrchr(k->path, '/');
        size_t parent_len = slash ? (size_t)(slash - k->path) : 0;
        if (parent_len != plen || strncmp(k->path, v->path.s, plen) != 0) continue;
        const char *last = slash ? slash + 1 : k->path;
        int present = last[0] == '@' ? xnode_attr(el, last + 1) != NULL : xnode_child(el, last, NULL) != NULL;
        if (present) continue;
        return fail(v, is_root ? 0 : el->line, "missing required key '%s'", k->path);
    }
    return 0;
}

/* A section (or the root): its attributes, then each child, then what it requires. */
static int validate_section(validator *v, xnode *el, int is_root)
{
    if (validate_attrs(v, el) < 0) return -1;
    for (xnode *c = el->children; c; c = c->next) {
        if (c->type != XNODE_ELEMENT) continue;
        size_t old = key_path_push(&v->path, NULL, c->name, 0);
        if (old == (size_t)-1) return fail_nomem(v);
        const config_key *key = key_find(v->keys, v->path.s);
        int section, multi;
        if (key) {
            section = key->type == CFG_SECTION;
            multi = (key->flags & CFG_MULTI) != 0;
        } else if (key_has_descendants(v->keys, v->path.s, v->path.len)) {
            section = 1;
            multi = 0;
        } else {
            return fail_unknown(v, c->line, v->path.s);
        }
        if (!multi) {
            for (const xnode *p = c->prev; p; p = p->prev)
                if (p->type == XNODE_ELEMENT && strcmp(p->name, c->name) == 0)
                    return fail(v, c->line, "duplicate key '%s' (first at line %u)", v->path.s,
                                (unsigned)p->line);
        }
        if (section) {
            if (has_text(c)) return fail(v, c->line, "key '%s' is a section and cannot hold text", v->path.s);
            if (validate_section(v, c, 0) < 0) return -1;
        } else {
            if (validate_attrs(v, c) < 0) return -1;
            if (validate_value(v, c, key) < 0) return -1;
        }
        key_path_pop(&v->path, old);
    }
    return validate_required(v, el, is_root);
}

/* "line N: what" from the parser becomes "NAME:N: what". */
static void report_parse_error(const char *name, xml_err xerr, const char *errtext, char *err, size_t errlen)
{
    if (!*errtext) errtext = xml_err_string(xerr);
    if (strncmp(errtext, "line ", 5) == 0 && isdigit((unsigned char)errtext[5])) {
        char *end;
        unsigned long line = strtoul(errtext + 5, &end, 10);
        if (end[0] == ':' && end[1] == ' ') {
            set_err(err, errlen, "%s:%lu: %s", name, line, end + 2);
            return;
        }
    }
    set_err(err, errlen, "%s: %s", name, errtext);
}

/* readable_by_others: the file's mode lets any user read it (config_load). */
static config *config_parse_checked(const char *name, const char *data, size_t len, const char *root_name,
                                    const config_key *keys, int readable_by_others, char *err, size_t errlen)
{
    if (!name) name = "(config)";
    if (len > CONFIG_MAX_BYTES) {
        set_err(err, errlen, "%s: file too large (%zu bytes, limit %d)", name, len, CONFIG_MAX_BYTES);
        return NULL;
    }
    xml_limits lim;
    xml_limits_default(&lim);
    lim.max_stanza_bytes = CONFIG_MAX_BYTES;
    lim.max_depth = CONFIG_MAX_DEPTH;
    lim.max_attrs = CONFIG_MAX_ATTRS;
    xml_err xerr = XML_OK;
    char errtext[512] = "";
    stanza *doc = xml_parse_document(data, len, &lim, &xerr, errtext, sizeof errtext);
    if (!doc || !doc->root) {
        report_parse_error(name, xerr, errtext, err, errlen);
        if (doc) stanza_free(doc);
        return NULL;
    }

    validator v = { .name = name, .keys = keys, .doc = doc, .err = err, .errlen = errlen };
    int rc = -1;
    v.dir = config_dir_of(name);
    v.path.s = calloc(1, 64);
    v.path.cap = 64;
    if (!v.dir || !v.path.s) {
        fail_nomem(&v);
    } else if (strcmp(doc->root->name, root_name) != 0) {
        fail(&v, doc->root->line, "root element is <%s>, expected <%s>", doc->root->name, root_name);
    } else if (has_text(doc->root)) {
        fail(&v, doc->root->line, "text is not allowed directly in <%s>", root_name);
    } else {
        rc = validate_section(&v, doc->root, 1);
    }
    free(v.dir);
    free(v.path.s);

    config *c = NULL;
    if (rc == 0) {
        c = calloc(1, sizeof *c);
        if (c) c->path = strdup(name);
        if (!c || !c->path) {
            set_err(err, errlen, "%s: out of memory", name);
            free(c);
            c = NULL;
        }
    }
    if (!c) {
        stanza_free(doc);
        return NULL;
    }
    c->doc = doc;
    /* Never the value: only where it is. */
    if (readable_by_others && v.literal_secrets > 0) {
        if (v.literal_secrets == 1)
            log_warn("%s is readable by all users and holds the secret '%s' in clear; "
                     "use file:/path or env:NAME, or chmod o-r the file", name, v.literal_secret);
        else
            log_warn("%s is readable by all users and holds %u secrets in clear (first '%s'); "
                     "use file:/path or env:NAME, or chmod o-r the file", name, v.literal_secrets,
                     v.literal_secret);
    }
    return c;
}

config *config_parse(const char *name, const char *data, size_t len, const char *root_name,
                     const config_key *keys, char *err, size_t errlen)
{
    return config_parse_checked(name, data, len, root_name, keys, 0, err, errlen);
}

config *config_load(const char *path, const char *root_name, const config_key *keys, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0) {
        set_err(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s: is a directory", path);
        fclose(f);
        return NULL;
    }
    if (S_ISREG(st.st_mode) && st.st_size > CONFIG_MAX_BYTES) {
        set_err(err, errlen, "%s: file too large (%lld bytes, limit %d)", path, (long long)st.st_size,
                CONFIG_MAX_BYTES);
        fclose(f);
        return NULL;
    }
    /* Read at most one byte past the limit, so a file that grew (or a pipe)
     * is still refused when too large. */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
    size_t len = 0;
    char *data = malloc(cap);
    while (data) {
        size_t n = fread(data + len, 1, cap - len, f);
        len += n;
        if (n == 0 || len > CONFIG_MAX_BYTES) break;
        if (len == cap) {
            size_t ncap = cap * 2 > CONFIG_MAX_BYTES + 1 ? CONFIG_MAX_BYTES + 1 : cap * 2;
            if (ncap <= cap) break;
            char *nd = realloc(data, ncap);
            if (!nd) {
                free(data);
                data = NULL;
            } else {
                data = nd;
                cap = ncap;
            }
        }
    }
    int read_failed = ferror(f);
    fclose(f);
    if (!data) {
        set_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (read_failed) {
        set_err(err, errlen, "%s: read error", path);
        free(data);
        return NULL;
    }
    config *c = config_parse_checked(path, data, len, root_name, keys, (st.st_mode & S_IROTH) != 0, err, errlen);
    free(data);
    return c;
}

void config_free(config *c)
{
    if (!c) return;
    stanza_free(c->doc);
    free(c->path);
    free(c);
}

const char *config_path(const config *c)
{
    return c ? c->path : NULL;
}

const xnode *config_root(const config *c)
{
    return c ? c->doc->root : NULL;
}

/* --------------------------------------------------------------- getters */

/* The value of an element: after validation, its only text child. */
static const char *element_value(const xnode *el)
{
    if (!el->children) return "";
    if (el->children == el->last_child && el->children->type == XNODE_TEXT) return el->children->text;
    return xnode_text(el);
}

static const xnode *child_named(const xnode *el, const char *name, size_t len)
{
    for (const xnode *c = el->children; c; c = c->next)
        if (c->type == XNODE_ELEMENT && strlen(c->name) == len && memcmp(c->name, name, len) == 0) return c;
    return NULL;
}

/* Walk path from el; *found is the value. Returns 0 if absent. */
static int lookup(const xnode *el, const char *path, const char **found)
{
    if (!el) return 0;
    if (!path || !*path) {
        *found = element_value(el);
        return 1;
    }
    const char *p = path;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (p[0] == '@') {
            if (slash) return 0;    /* an attribute is always last */
            for (const xattr *a = el->attrs; a; a = a->next) {
                if (a->ns && *a->ns) continue;
                if (strlen(a->name) == len - 1 && memcmp(a->name, p + 1, len - 1) == 0) {
                    *found = a->value;
                    return 1;
                }
            }
            return 0;
        }
        el = child_named(el, p, len);
        if (!el) return 0;
        if (!slash) {
            *found = element_value(el);
            return 1;
        }
        p = slash + 1;
    }
}

const char *config_node_str(const xnode *el, const char *path, const char *def)
{
    const char *v;
    return lookup(el, path, &v) ? v : def;
}

long long config_node_int(const xnode *el, const char *path, long long def)
{
    const char *v;
    long long n;
    if (!lookup(el, path, &v) || config_parse_int(v, &n) < 0) return def;
    return n;
}

int config_node_bool(const xnode *el, const char *path, int def)
{
    const char *v;
    if (!lookup(el, path, &v)) return def;
    if (!*v) return 1;      /* a CFG_FLAG: present means true */
    int b = config_parse_bool(v);
    return b < 0 ? def : b;
}

char *config_node_secret(const xnode *el, const char *path)
{
    const char *v;
    if (!lookup(el, path, &v)) return NULL;
    return config_resolve_secret(v, NULL, 0);
}

const char *config_str(const config *c, const char *path, const char *def)
{
    return c ? config_node_str(c->doc->root, path, def) : def;
}

long long config_int(const config *c, const char *path, long long def)
{
    return c ? config_node_int(c->doc->root, path, def) : def;
}

int config_bool(const config *c, const char *path, int def)
{
    return c ? config_node_bool(c->doc->root, path, def) : def;
}

char *config_secret(const config *c, const char *path)
{
    return c ? config_node_secret(c->doc->root, path) : NULL;
}

const xnode *config_first(const config *c, const char *path)
{
    if (!c || !path || !*path) return NULL;
    const xnode *el = c->doc->root;
    const char *p = path;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (p[0] == '@') return NULL;
        el = child_named(el, p, len);
        if (!el || !slash) return el;
        p = slash + 1;
    }
}

const xnode *config_next(const xnode *prev)
{
    if (!prev) return NULL;
    for (const xnode *n = prev->next; n; n = n->next)
        if (n->type == XNODE_ELEMENT && strcmp(n->name, prev->name) == 0) return n;
    return NULL;
}
