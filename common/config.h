/* Configuration files: XML, one per process (etc/router.xml, ...).
 *
 * Each process declares the keys it knows in a table; config_load checks the
 * file against it, so an unknown key, a wrong type, a missing required key
 * or an unreadable file stops the process with one line naming the file, the
 * line, the key and the problem.
 *
 * Paths are relative to the root element: "listen/port" is the text of
 * <listen><port>; "component/@secret" is the attribute secret of
 * <component>. A key whose element may repeat is marked CFG_MULTI.
 *
 * Secrets (CFG_SECRET) may be written as the value itself, as
 * "file:/path" (first line of that file) or as "env:NAME" (that
 * environment variable). */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H
#include <stddef.h>
#include "common/stanza.h"

typedef enum {
    CFG_STRING = 0,
    CFG_INT,        /* decimal integer, with optional k/K (x1024) or m/M (x1048576) suffix */
    CFG_BOOL,       /* true/false/yes/no/1/0/on/off */
    CFG_SECRET,     /* string, or file:/path, or env:NAME */
    CFG_FILE,       /* path of a file that must be readable */
    CFG_SECTION,    /* an element that only holds other keys */
    CFG_FLAG,       /* an empty element whose presence means true (<require-tls/>) */
} config_type;

#define CFG_REQUIRED 0x01
#define CFG_MULTI 0x02      /* may appear more than once */

typedef struct config_key {
    const char *path;
    config_type type;
    int flags;
    const char *help;       /* one line, for error messages and docs */
} config_key;

typedef struct config config;

/* Load and validate. Returns NULL with a one-line message in err
 * ("etc/router.xml:12: unknown key 'lisen/port'"). The root element's name
 * must equal root_name. keys ends with a {NULL} entry. */
config *config_load(const char *path, const char *root_name, const config_key *keys,
                    char *err, size_t errlen);
/* Same from memory (tests); name is used in messages. */
config *config_parse(const char *name, const char *data, size_t len, const char *root_name,
                     const config_key *keys, char *err, size_t errlen);
void config_free(config *c);
const char *config_path(const config *c);
const xnode *config_root(const config *c);

/* Values by path from the root (first occurrence), or def when absent. */
const char *config_str(const config *c, const char *path, const char *def);
long long config_int(const config *c, const char *path, long long def);
int config_bool(const config *c, const char *path, int def);
/* Resolve a CFG_SECRET: malloc'd, or NULL when absent (error already checked at load). */
char *config_secret(const config *c, const char *path);

/* The same, relative to an element (for repeated sections such as <component>). */
const char *config_node_str(const xnode *el, const char *path, const char *def);
long long config_node_int(const xnode *el, const char *path, long long def);
int config_node_bool(const xnode *el, const char *path, int def);
char *config_node_secret(const xnode *el, const char *path);
/* Iterate repeated elements: first/next element at path (e.g. "component"). */
const xnode *config_first(const config *c, const char *path);
const xnode *config_next(const xnode *prev);

/* Parse helpers shared with command lines: -1 on error. */
int config_parse_bool(const char *s);
int config_parse_int(const char *s, long long *out);
/* Resolve a secret spec ("file:", "env:" or literal); malloc'd or NULL with err. */
char *config_resolve_secret(const char *spec, char *err, size_t errlen);

#endif
