/* The XEP-0114 component handshake: lower-case hex SHA-1 of the stream id
 * followed by the shared secret, as the router checks it and the component
 * client sends it. */
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "t/unit/tap.h"

/* What a component sends in <handshake/> for stream id and secret. */
static void handshake_value(const char *stream_id, const char *secret, char out[2 * SHA1_LEN + 1])
{
    size_t ilen = strlen(stream_id), slen = strlen(secret);
    char *data = malloc(ilen + slen);
    if (!data) abort();
    memcpy(data, stream_id, ilen);
    memcpy(data + ilen, secret, slen);
    sha1_hex(data, ilen + slen, out);
    free(data);
}

static int is_lower_hex(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

int main(void)
{
    char h[2 * SHA1_LEN + 1];

    /* XEP-0114 §3 shows stream id 3BF96D32 but not the secret behind its
     * handshake value, so these vectors were computed with Python:
     *   hashlib.sha1(b'3BF96D32' + b'shakespeare-secret').hexdigest() */
    handshake_value("3BF96D32", "shakespeare-secret", h);
    is_str(h, "da1c08b1d220a85c378bd9b684e892184f1b8e1c", "handshake for the XEP-0114 stream id");
    is_int(strlen(h), 40, "handshake is 40 characters");
    ok(is_lower_hex(h), "handshake is lower-case hex (XEP-0114 step 4)");

    /*   hashlib.sha1(b'a1b2c3d4e5' + b'n0t-s0-s3cret').hexdigest() */
    handshake_value("a1b2c3d4e5", "n0t-s0-s3cret", h);
    is_str(h, "a2e28909875b082545deff32a22cc500f1215d69", "handshake, second vector");

    /* Non-ASCII bytes are hashed as UTF-8:
     *   hashlib.sha1('ß1'.encode() + 'sécret'.encode()).hexdigest() */
    handshake_value("\xc3\x9f" "1", "s\xc3\xa9" "cret", h);
    is_str(h, "e3ab5491e5b50589aeb7e93dac91cc6b8dfc53b9", "handshake over UTF-8 input");

    /* A handshake replayed on another stream must not match:
     *   hashlib.sha1(b'3BF96D33' + b'shakespeare-secret').hexdigest() */
    char other[2 * SHA1_LEN + 1];
    handshake_value("3BF96D33", "shakespeare-secret", other);
    is_str(other, "36695b4c538e5b06f5428cbc646bbd343850d02a", "handshake for a neighbouring stream id");
    handshake_value("3BF96D32", "shakespeare-secret", h);
    ok(strcmp(h, other) != 0, "different stream ids give different handshakes");
    handshake_value("3BF96D32", "shakespeare-secreT", other);
    ok(strcmp(h, other) != 0, "different secrets give different handshakes");
    /* The order is id then secret, not secret then id. */
    handshake_value("shakespeare-secret", "3BF96D32", other);
    ok(strcmp(h, other) != 0, "swapping id and secret changes the handshake");
    return tap_done();
}
