/* Fuzz target: base64 (common/base64.c).
 *
 * Input: bytes, used both as base64 text to decode and as data to encode.
 * Decoding writes at most len/4*3 bytes (the buffer is that exact size, so
 * ASan sees any overrun); what decodes re-encodes to exactly the input
 * (strict decoding: one encoding per byte string); encoding gives
 * base64_encoded_len characters of the alphabet that decode back. */
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "fuzz/fuzz_util.h"

static int in_alphabet(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* decode, then encode again */
    size_t cap = size / 4 * 3;
    unsigned char *dec = malloc(cap ? cap : 1);
    if (!dec) abort();
    long n = base64_decode((const char *)data, size, dec);
    if (n >= 0) {
        FUZZ_CHECK((size_t)n <= cap, "decoded %ld bytes from %zu characters", n, size);
        FUZZ_CHECK(size % 4 == 0, "accepted %zu characters, not a multiple of 4", size);
        size_t elen = base64_encoded_len((size_t)n);
        char *enc = malloc(elen + 1);
        if (!enc) abort();
        size_t w = base64_encode(dec, (size_t)n, enc);
        FUZZ_CHECK(w == elen && enc[w] == '\0', "encode wrote %zu, expected %zu", w, elen);
        FUZZ_CHECK(w == size && memcmp(enc, data, size) == 0,
                   "'%.*s' decodes but re-encodes as '%s'", (int)size, (const char *)data, enc);
        free(enc);
    }
    free(dec);

    /* encode, then decode again */
    size_t elen = base64_encoded_len(size);
    FUZZ_CHECK(elen % 4 == 0 && elen / 4 * 3 >= size && elen / 4 * 3 < size + 3, "encoded_len(%zu) = %zu", size, elen);
    char *enc = malloc(elen + 1);
    if (!enc) abort();
    size_t w = base64_encode(data, size, enc);
    FUZZ_CHECK(w == elen && enc[w] == '\0', "encode of %zu bytes wrote %zu, expected %zu", size, w, elen);
    for (size_t i = 0; i < w; i++) FUZZ_CHECK(in_alphabet(enc[i]), "encode wrote byte 0x%02x", (unsigned char)enc[i]);
    cap = elen / 4 * 3;
    dec = malloc(cap ? cap : 1);
    if (!dec) abort();
    n = base64_decode(enc, w, dec);
    FUZZ_CHECK(n == (long)size && (size == 0 || memcmp(dec, data, size) == 0), "round trip of %zu bytes gives %ld", size, n);
    free(dec);
    free(enc);
    return 0;
}
