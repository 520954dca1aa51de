/* Dialback keys (XEP-0185): the key proves that the originating server holds
 * the authoritative server's secret, bound to both domains and the stream. */
#include "common/dialback_key.h"

#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"

void dialback_key(const char *secret, const char *receiving, const char *originating,
                  const char *stream_id, char out[DIALBACK_KEY_LEN + 1])
{
    out[0] = '\0';
    if (!secret || !receiving || !originating || !stream_id) return;

    /* HMAC key: the secret hashed, in hex (XEP-0185 §2, notes 2 and 4). */
    unsigned char secret_hash[SHA256_LEN];
    char hmac_key[2 * SHA256_LEN + 1];
    sha256(secret, strlen(secret), secret_hash);
    hex_encode(secret_hash, sizeof secret_hash, hmac_key);

    /* Data: receiving ' ' originating ' ' stream id; spaces keep
     * "example.in"+"form.example.org" apart from "example.info"+"rm.example.org". */
    size_t rlen = strlen(receiving), olen = strlen(originating), slen = strlen(stream_id);
    size_t dlen = rlen + 1 + olen + 1 + slen;
    char *data = malloc(dlen);
    if (data) {
        memcpy(data, receiving, rlen);
        data[rlen] = ' ';
        memcpy(data + rlen + 1, originating, olen);
        data[rlen + 1 + olen] = ' ';
        memcpy(data + rlen + 1 + olen + 1, stream_id, slen);

        unsigned char mac[SHA256_LEN];
        hmac(HASH_SHA256, hmac_key, 2 * SHA256_LEN, data, dlen, mac);
        hex_encode(mac, sizeof mac, out);
        free(data);
    }
    /* On allocation failure out stays "", which no check accepts. */
    crypto_wipe(secret_hash, sizeof secret_hash);
    crypto_wipe(hmac_key, sizeof hmac_key);
}

static int is_xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int dialback_key_check(const char *secret, const char *receiving, const char *originating,
                       const char *stream_id, const char *key)
{
    if (!key) return 0;
    /* The key is the character data of <db:verify/> or <db:result/>, which
     * peers may pretty-print (the XEP's own examples do): ignore the
     * whitespace around it. */
    while (is_xml_space(*key)) key++;
    size_t len = strnlen(key, DIALBACK_KEY_LEN + 1);
    while (len > 0 && is_xml_space(key[len - 1])) len--;
    if (len != DIALBACK_KEY_LEN) return 0;
    /* Only whitespace may follow the 64 characters. */
    if (key[len] != '\0') {
        size_t i = len;
        while (is_xml_space(key[i])) i++;
        if (key[i] != '\0') return 0;
    }

    char expected[DIALBACK_KEY_LEN + 1];
    dialback_key(secret, receiving, originating, stream_id, expected);
    if (strlen(expected) != DIALBACK_KEY_LEN) return 0;

    /* Hex is case-insensitive on the wire; we produce lower case. */
    char got[DIALBACK_KEY_LEN];
    for (size_t i = 0; i < DIALBACK_KEY_LEN; i++) {
        char c = key[i];
        got[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    int equal = crypto_memeq(got, expected, DIALBACK_KEY_LEN);
    crypto_wipe(expected, sizeof expected);
    return equal;
}
