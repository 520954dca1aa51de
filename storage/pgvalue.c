/* pgvalue: reading result cells and writing parameters in PostgreSQL's text
 * format (integers, booleans, bytea, text[]); see query.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/query.h"

int64_t storage_get_int64(const PGresult *res, int row, int col, int64_t def)
{
    if (!res || row >= PQntuples(res) || col >= PQnfields(res) || PQgetisnull(res, row, col)) return def;
    const char *v = PQgetvalue(res, row, col);
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end) return def;
    return (int64_t)n;
}

int storage_get_bool(const PGresult *res, int row, int col)
{
    if (!res || row >= PQntuples(res) || col >= PQnfields(res) || PQgetisnull(res, row, col)) return 0;
    return PQgetvalue(res, row, col)[0] == 't';
}

const char *storage_get_text(const PGresult *res, int row, int col)
{
    if (!res || row >= PQntuples(res) || col >= PQnfields(res) || PQgetisnull(res, row, col)) return NULL;
    return PQgetvalue(res, row, col);
}

long storage_affected(const PGresult *res)
{
    if (!res) return 0;
    const char *n = PQcmdTuples((PGresult *)res);
    return n && *n ? strtol(n, NULL, 10) : 0;
}

void storage_bytea_param(const unsigned char *in, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    *out++ = '\\';
    *out++ = 'x';
    for (size_t i = 0; i < len; i++) {
        *out++ = hex[in[i] >> 4];
        *out++ = hex[in[i] & 15];
    }
    *out = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long storage_get_bytea(const PGresult *res, int row, int col, unsigned char *out, size_t max)
{
    const char *v = storage_get_text(res, row, col);
    if (!v || v[0] != '\\' || v[1] != 'x') return -1;
    v += 2;
    size_t n = strlen(v);
    if (n % 2 || n / 2 > max) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(v[2 * i]), lo = hexval(v[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

char *storage_text_array_param(const char *const *items, size_t n)
{
    size_t size = 3;
    for (size_t i = 0; i < n; i++) size += 2 * strlen(items[i]) + 3;
    char *out = malloc(size);
    if (!out) abort();
    char *p = out;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i) *p++ = ',';
        *p++ = '"';
        for (const char *q = items[i]; *q; q++) {
            if (*q == '"' || *q == '\\') *p++ = '\\';
            *p++ = *q;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = 0;
    return out;
}

char **storage_get_text_array(const PGresult *res, int row, int col, size_t *n)
{
    *n = 0;
    const char *v = storage_get_text(res, row, col);
    if (!v) return NULL;
    if (*v == '[') {   /* explicit bounds "[1:2]={...}" */
        v = strchr(v, '=');
        if (!v) return NULL;
        v++;
    }
    if (*v != '{') return NULL;
    size_t len = strlen(v);
    size_t max = 1;
    for (const char *p = v; *p; p++)
        if (*p == ',') max++;
    char **arr = malloc(max * sizeof(char *) + len + 1);
    if (!arr) abort();
    char *out = (char *)(arr + max);
    size_t count = 0;
    const char *p = v + 1;
    if (*p == '}') return arr;
    for (;;) {
        char *start = out;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) p++;
                *out++ = *p++;
            }
            if (*p != '"') goto bad;
            p++;
            *out++ = 0;
            arr[count++] = start;
        } else {
            const char *e = p;
            while (*e && *e != ',' && *e != '}') e++;
            if (*e == 0) goto bad;
            size_t l = (size_t)(e - p);
            if (!(l == 4 && strncmp(p, "NULL", 4) == 0)) {
                memcpy(out, p, l);
                out += l;
                *out++ = 0;
                arr[count++] = start;
            }
            p = e;
        }
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '}') break;
        goto bad;
    }
    *n = count;
    return arr;
bad:
    free(arr);
    *n = 0;
    return NULL;
}
