/* A growable byte buffer, used for output and for pending input. */
#ifndef SB_BUF_H
#define SB_BUF_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
} buf;

#define BUF_INIT {NULL, 0, 0}

void buf_reserve(buf *b, size_t extra);
void buf_append(buf *b, const void *data, size_t len);
void buf_append_str(buf *b, const char *s);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes. */
void buf_consume(buf *b, size_t n);
/* NUL-terminate (not counted in len) and return data. */
const char *buf_cstr(buf *b);
void buf_reset(buf *b);   /* len = 0, keep memory */
void buf_free(buf *b);    /* release memory */

/* v in decimal at out (room for 21 bytes), NUL-terminated; returns the
 * length. Per-message paths format numbers with this rather than printf. */
size_t u64_to_dec(char *out, uint64_t v);
/* Give back the spare room (keeps one byte for buf_cstr); long-lived small
 * buffers stop holding the minimum allocation. */
void buf_shrink(buf *b);

#endif
