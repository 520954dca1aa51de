/* Hashes, HMAC, PBKDF2, hex, random tokens, constant-time compare, base64. */
#include "common/base64.h"
#include "common/crypto.h"

#include <stdlib.h>
#include <string.h>

#include "t/unit/tap.h"

static void is_hex(const unsigned char *bytes, size_t len, const char *want, const char *what)
{
    char *hex = malloc(2 * len + 1);
    hex_encode(bytes, len, hex);
    is_str(hex, want, "%s", what);
    free(hex);
}

static void test_hashes(void)
{
    unsigned char md[HASH_MAX_LEN];
    is_int(hash_len(HASH_SHA1), 20, "SHA-1 length");
    is_int(hash_len(HASH_SHA256), 32, "SHA-256 length");

    /* FIPS 180-2 appendix vectors */
    sha1("abc", 3, md);
    is_hex(md, SHA1_LEN, "a9993e364706816aba3e25717850c26c9cd0d89d", "SHA-1(\"abc\")");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hash_digest(HASH_SHA1, two_blocks, strlen(two_blocks), md);
    is_hex(md, SHA1_LEN, "84983e441c3bd26ebaae4aa1f95129e5e54670f1", "SHA-1 of the 448-bit message");
    sha256("abc", 3, md);
    is_hex(md, SHA256_LEN, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "SHA-256(\"abc\")");
    hash_digest(HASH_SHA256, "abc", 3, md);
    is_hex(md, SHA256_LEN, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "hash_digest(SHA-256)");
    sha1("", 0, md);
    is_hex(md, SHA1_LEN, "da39a3ee5e6b4b0d3255bfef95601890afd80709", "SHA-1 of the empty string");

    char hex[2 * SHA1_LEN + 1];
    sha1_hex("abc", 3, hex);
    is_str(hex, "a9993e364706816aba3e25717850c26c9cd0d89d", "sha1_hex");
}

static void test_hmac(void)
{
    unsigned char key[20], md[HASH_MAX_LEN];
    memset(key, 0x0b, sizeof key);
    const char *what = "what do ya want for nothing?";

    /* RFC 2202 test cases 1 and 2 */
    hmac(HASH_SHA1, key, 20, "Hi There", 8, md);
    is_hex(md, SHA1_LEN, "b617318655057264e28bc0b6fb378c8ef146be00", "HMAC-SHA-1 RFC 2202 #1");
    hmac(HASH_SHA1, "Jefe", 4, what, strlen(what), md);
    is_hex(md, SHA1_LEN, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79", "HMAC-SHA-1 RFC 2202 #2");

    /* RFC 4231 test cases 1 and 2 */
    hmac(HASH_SHA256, key, 20, "Hi There", 8, md);
    is_hex(md, SHA256_LEN, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
           "HMAC-SHA-256 RFC 4231 #1");
    hmac(HASH_SHA256, "Jefe", 4, what, strlen(what), md);
    is_hex(md, SHA256_LEN, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
           "HMAC-SHA-256 RFC 4231 #2");
}

static void test_pbkdf2(void)
{
    unsigned char dk[32];
    /* RFC 6070 */
    ok(pbkdf2_hmac(HASH_SHA1, "password", 8, (const unsigned char *)"salt", 4, 1, dk, 20) == 0,
       "PBKDF2 c=1 succeeds");
    is_hex(dk, 20, "0c60c80f961f0e71f3a9b524af6012062fe037a6", "PBKDF2-HMAC-SHA1 c=1");
    pbkdf2_hmac(HASH_SHA1, "password", 8, (const unsigned char *)"salt", 4, 2, dk, 20);
    is_hex(dk, 20, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957", "PBKDF2-HMAC-SHA1 c=2");
    pbkdf2_hmac(HASH_SHA1, "password", 8, (const unsigned char *)"salt", 4, 4096, dk, 20);
    is_hex(dk, 20, "4b007901b765489abead49d926f721d065a429c1", "PBKDF2-HMAC-SHA1 c=4096");
    const char *p = "passwordPASSWORDpassword", *s = "saltSALTsaltSALTsaltSALTsaltSALTsalt";
    pbkdf2_hmac(HASH_SHA1, p, strlen(p), (const unsigned char *)s, strlen(s), 4096, dk, 25);
    is_hex(dk, 25, "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038",
           "PBKDF2-HMAC-SHA1 long password and salt, dkLen 25");
    pbkdf2_hmac(HASH_SHA1, "pass\0word", 9, (const unsigned char *)"sa\0lt", 5, 4096, dk, 16);
    is_hex(dk, 16, "56fa6aa75548099dcc37d7f03425e0c3", "PBKDF2-HMAC-SHA1 with NUL bytes");
    pbkdf2_hmac(HASH_SHA256, "password", 8, (const unsigned char *)"salt", 4, 1, dk, 32);
    is_hex(dk, 32, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
           "PBKDF2-HMAC-SHA256 c=1");
    is_int(pbkdf2_hmac(HASH_SHA1, "password", 8, (const unsigned char *)"salt", 4, 0, dk, 20), -1,
           "PBKDF2 with zero iterations refused");
}

static void test_hex(void)
{
    const unsigned char bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof bytes + 1];
    hex_encode(bytes, sizeof bytes, out);
    is_str(out, "00017f80abff", "hex_encode, lower case");
    hex_encode(bytes, 0, out);
    is_str(out, "", "hex_encode of nothing");
}

static void test_random(void)
{
    char tok[65];
    memset(tok, '#', sizeof tok);
    random_token(tok, 64);
    is_int(strlen(tok), 64, "random_token length");
    int charset_ok = 1;
    for (size_t i = 0; i < 64; i++) {
        char c = tok[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            charset_ok = 0;
    }
    ok(charset_ok, "random_token uses only [A-Za-z0-9]");
    char tok2[65];
    random_token(tok2, 64);
    ok(strcmp(tok, tok2) != 0, "two random tokens differ");
    random_token(tok2, 0);
    is_str(tok2, "", "random_token of length 0 is the empty string");

    /* Over many characters every one of the 62 shows up, and none is
     * wildly over-represented (expected 1000 each for 62000 draws). */
    enum { N = 62000 };
    char *big = malloc(N + 1);
    random_token(big, N);
    int counts[256] = {0};
    for (size_t i = 0; i < N; i++)
        counts[(unsigned char)big[i]]++;
    int distinct = 0, max = 0;
    for (int c = 0; c < 256; c++) {
        if (counts[c])
            distinct++;
        if (counts[c] > max)
            max = counts[c];
    }
    is_int(distinct, 62, "all 62 characters appear");
    ok(max < 1300, "no character is heavily favoured (max %d of 62000)", max);
    free(big);

    unsigned char a[32] = {0}, b[32] = {0};
    random_bytes(a, sizeof a);
    random_bytes(b, sizeof b);
    ok(memcmp(a, b, sizeof a) != 0, "random_bytes gives different output each call");
}

static void test_memeq_wipe(void)
{
    ok(crypto_memeq("abcdef", "abcdef", 6), "crypto_memeq equal");
    ok(!crypto_memeq("abcdef", "abcdeg", 6), "crypto_memeq differs in the last byte");
    ok(!crypto_memeq("xbcdef", "abcdef", 6), "crypto_memeq differs in the first byte");
    ok(crypto_memeq("a", "b", 0), "crypto_memeq of zero bytes is equal");
    unsigned char secret[16];
    memset(secret, 0x5a, sizeof secret);
    crypto_wipe(secret, sizeof secret);
    unsigned char zero[16] = {0};
    ok(memcmp(secret, zero, sizeof secret) == 0, "crypto_wipe zeroes the memory");
}

static void check_encode(const char *in, const char *want)
{
    char out[16];
    size_t n = base64_encode(in, strlen(in), out);
    is_str(out, want, "base64 encode '%s'", in);
    is_int(n, strlen(want), "  returned length");
    is_int(base64_encoded_len(strlen(in)), strlen(want), "  base64_encoded_len");
}

static void check_decode(const char *in, const char *want)
{
    unsigned char out[16];
    long n = base64_decode(in, strlen(in), out);
    if (!is_int(n, (long)strlen(want), "base64 decode '%s' length", in))
        return;
    ok(memcmp(out, want, (size_t)n) == 0, "  base64 decode '%s' bytes", in);
}

static void check_refused(const char *in, const char *why)
{
    unsigned char out[64];
    is_int(base64_decode(in, strlen(in), out), -1, "base64 refuses %s", why);
}

static void test_base64(void)
{
    /* RFC 4648 §10 */
    static const char *vec[][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        check_encode(vec[i][0], vec[i][1]);
        check_decode(vec[i][1], vec[i][0]);
    }

    /* All byte values and both alphabet ends */
    unsigned char all[256], back[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char enc[400];
    size_t n = base64_encode(all, sizeof all, enc);
    is_int(n, 344, "256 bytes encode to 344 characters");
    ok(strncmp(enc, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g", 44) == 0, "  encoding prefix");
    is_int(base64_decode(enc, n, back), 256, "round trip length");
    ok(memcmp(all, back, 256) == 0, "round trip bytes");
    unsigned char ff[3] = {0xff, 0xfe, 0xfb};
    base64_encode(ff, 3, enc);
    is_str(enc, "//77", "'/' and '+' free encoding of ff fe fb");
    unsigned char fb[3] = {0xfb, 0xef, 0xbe};
    base64_encode(fb, 3, enc);
    is_str(enc, "++++", "0xfbefbe encodes to '++++'");

    check_refused("Zm9", "a length that is not a multiple of 4");
    check_refused("Zm9vY", "5 characters");
    check_refused("Zm9v\n", "a trailing newline");
    check_refused("Zm9\n", "a newline in place of a character");
    check_refused("Zg\r\n", "CR LF in place of padding");
    check_refused("Zm 9v", "a space");
    check_refused("Zm9v YmFy", "an inner space");
    check_refused("Zg=", "a missing pad character");
    check_refused("Z===", "three pad characters");
    check_refused("====", "only padding");
    check_refused("Zg==Zm9v", "padding in the middle");
    check_refused("Zm=v", "data after padding");
    check_refused("Zm9-", "the URL-safe alphabet");
    check_refused("Zm9_", "the URL-safe '_'");
    check_refused("Zm9*", "a character outside the alphabet");
    check_refused("Zh==", "non-zero pad bits (one byte)");
    check_refused("Zm9=", "non-zero pad bits (two bytes)");
    unsigned char out[4];
    is_int(base64_decode("Zm\0v", 4, out), -1, "base64 refuses a NUL byte");
}

int main(void)
{
    test_hashes();
    test_hmac();
    test_pbkdf2();
    test_hex();
    test_random();
    test_memeq_wipe();
    test_base64();
    return tap_done();
}
