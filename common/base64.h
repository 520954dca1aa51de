/* Base64 (RFC 4648, standard alphabet, padded), strict on decode as SASL
 * (RFC 6120 §6.4.2) requires: no whitespace, no bad padding. */
#ifndef SB_BASE64_H
#define SB_BASE64_H
#include <stddef.h>

/* Length of the encoding of n bytes, without the NUL. */
size_t base64_encoded_len(size_t n);
/* Writes base64_encoded_len(len) chars plus a NUL into out; returns the length. */
size_t base64_encode(const void *in, size_t len, char *out);
/* Decodes into out (at least len/4*3 bytes). Returns the decoded length, or -1 if invalid. */
long base64_decode(const char *in, size_t len, unsigned char *out);

#endif
