/* UTF-8 validation, shared by JIDs, SASL and anything that must refuse bad text. */
#ifndef SB_UTF8_H
#define SB_UTF8_H
#include <stddef.h>

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF, and no NUL within len. 1 if valid. */
int utf8_valid(const char *s, size_t len);

#endif
