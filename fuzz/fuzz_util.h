/* Helpers shared by the fuzz harnesses: a checked assertion that crashes
 * (so libFuzzer records the input), reading the input in pieces, and the
 * round trip "serialise, parse again, compare the trees" that several
 * targets assert. */
#ifndef SB_FUZZ_UTIL_H
#define SB_FUZZ_UTIL_H
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/stanza.h"

/* The libFuzzer entry points every harness defines. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test failed: print and abort, so the
 * fuzzer (or the replay test) reports the input that caused it. */
#define FUZZ_CHECK(cond, ...)                                                     \
    do {                                                                          \
        if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);           \
    } while (0)

__attribute__((noreturn, format(printf, 4, 5)))
void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...);

/* A copy of data[0..len) with a NUL after it (malloc'd; free() it). */
char *fuzz_strndup(const uint8_t *data, size_t len);

/* Split the input at NUL bytes: up to max pieces, the last one takes the
 * rest. Pieces point into one malloc'd copy (*mem, free() it); missing
 * pieces are "". Returns the number of pieces present. */
size_t fuzz_split_nul(const uint8_t *data, size_t len, char **pieces, size_t max, char **mem);

/* NULL if the two trees are equal (element names, namespaces, attributes
 * in order, text), otherwise a short description of the first difference.
 * Prefixes are not compared: they only spell a namespace. Adjacent text
 * nodes count as one and empty ones as none, as they do after parsing. */
const char *fuzz_tree_diff(const xnode *a, const xnode *b);

/* Parse bytes (one serialised element) as if written where context_ns is
 * the default namespace, with generous limits. Returns the document of a
 * wrapper element whose only child is the parsed element (*el), or NULL
 * with a message in errtext. */
stanza *fuzz_reparse(const char *bytes, size_t len, const char *context_ns, const xnode **el,
                     char *errtext, size_t errlen);

/* Serialise el with xml_serialize and with xml_write in context_ns, parse
 * both results again and check that they give el's tree; also that
 * xml_to_string agrees with xml_serialize. A failure is a crash. */
void fuzz_check_roundtrip(const xnode *el, const char *context_ns);

/* Depth of the element tree below and including el (a lone element: 1). */
unsigned fuzz_tree_depth(const xnode *el);
/* Largest number of attributes on one element of the tree. */
size_t fuzz_max_attrs(const xnode *el);

#endif
