/* Fuzz target: the client side of SCRAM (common/scram.c), and a whole
 * exchange between the client and the server.
 *
 * Input: [flags] then pieces separated by NUL bytes.
 *   flags 0x01: SCRAM-SHA-256 (else SHA-1)
 *         0x02: exchange mode (else parse mode)
 *         0x04: bind the channel (tls-exporter)
 *         0x08: the server advertised -PLUS
 * Parse mode: server-first NUL server-final, answered by a client for user
 *   "user", password "pencil" and the client nonce of RFC 5802 §5 / RFC
 *   7677 §3, so the RFCs' server messages are a successful exchange. Inputs
 *   with an iteration count above 4096 are skipped: the client accepts up
 *   to 2^31-1, which is slow by design, not a bug to find here.
 * Exchange mode: user NUL password NUL client-nonce NUL channel-binding
 *   data. Whenever the client accepts its inputs, a full exchange with a
 *   server holding secrets made from the same password (1 iteration) must
 *   succeed, and the server must see the SASLprep'd user name. */
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/scram.h"
#include "fuzz/fuzz_util.h"

static const char *const rfc_client_nonce[2] = {"fyko+d2lbbFgONRv9qkxdawL", "rOprNGfwEbeRWgbNEkqO"};
static const unsigned char cb_bytes[32] = "0123456789abcdefghijklmnopqrstuv";

/* Any "i=" followed by a number above 4096. */
static int asks_many_iterations(const char *s)
{
    for (const char *p = s; (p = strstr(p, "i=")); p += 2) {
        unsigned long long v = 0;
        for (const char *d = p + 2; *d >= '0' && *d <= '9' && v <= 4096; d++) v = v * 10 + (unsigned)(*d - '0');
        if (v > 4096) return 1;
    }
    return 0;
}

static void parse_mode(hash_alg alg, int a, int bind, const uint8_t *data, size_t size)
{
    char *mem, *piece[2];
    fuzz_split_nul(data, size, piece, 2, &mem);
    if (asks_many_iterations(piece[0])) {
        free(mem);
        return;
    }
    scram_client *c = scram_client_new(alg, "user", "pencil", rfc_client_nonce[a]);
    FUZZ_CHECK(c, "scram_client_new");
    if (bind) FUZZ_CHECK(scram_client_set_channel_binding(c, "tls-exporter", cb_bytes, sizeof cb_bytes) == 0, "cb");
    FUZZ_CHECK(!scram_client_final(c, piece[0], strlen(piece[0])), "client-final before client-first");
    char *first = scram_client_first(c);
    FUZZ_CHECK(first, "client-first");
    FUZZ_CHECK(!scram_client_verify(c, piece[1], strlen(piece[1])), "server-final verified before client-final");
    char *final = scram_client_final(c, piece[0], strlen(piece[0]));
    size_t salted_len;
    const unsigned char *salted = scram_client_salted_password(c, &salted_len);
    if (final) {
        FUZZ_CHECK(strncmp(final, "c=", 2) == 0 && strstr(final, ",p="), "client-final '%s'", final);
        /* r= repeats the server's nonce, which extends ours. */
        const char *r = strstr(final, ",r=");
        FUZZ_CHECK(r && strncmp(r + 3, rfc_client_nonce[a], strlen(rfc_client_nonce[a])) == 0 &&
                       strncmp(piece[0], "r=", 2) == 0 && strncmp(r + 1, piece[0], strcspn(piece[0], ",")) == 0,
                   "client-final '%s' for server-first '%s'", final, piece[0]);
        FUZZ_CHECK(salted && salted_len == hash_len(alg), "no salted password after client-final");
        FUZZ_CHECK(!scram_client_final(c, piece[0], strlen(piece[0])), "client-final twice");
        if (scram_client_verify(c, piece[1], strlen(piece[1])))
            FUZZ_CHECK(strncmp(piece[1], "v=", 2) == 0 &&
                           strcspn(piece[1], ",") == 2 + base64_encoded_len(hash_len(alg)),
                       "verified server-final '%s'", piece[1]);
    } else {
        FUZZ_CHECK(!scram_client_verify(c, piece[1], strlen(piece[1])), "verified without client-final");
    }
    free(first);
    free(final);
    scram_client_free(c);
    free(mem);
}

static void exchange_mode(hash_alg alg, int bind, int plus_advertised, const uint8_t *data, size_t size)
{
    char *mem, *piece[4];
    size_t npieces = fuzz_split_nul(data, size, piece, 4, &mem);
    const char *user = piece[0], *password = piece[1], *cnonce = npieces > 2 ? piece[2] : NULL;
    const char *cb = piece[3];
    size_t cb_len = npieces > 3 ? size - (size_t)(cb - mem) : 0;

    scram_client *c = scram_client_new(alg, user, password, cnonce);
    if (!c) {
        free(mem);
        return;
    }
    if (bind) FUZZ_CHECK(scram_client_set_channel_binding(c, "tls-exporter", (const unsigned char *)cb, cb_len) == 0, "cb");
    scram_server *s = scram_server_new(alg, bind ? "tls-exporter" : NULL, (const unsigned char *)cb,
                                       bind ? cb_len : 0, NULL);
    FUZZ_CHECK(s, "scram_server_new");
    scram_secrets sec;
    FUZZ_CHECK(scram_make_secrets(alg, password, (const unsigned char *)"NaCl", 4, 1, &sec) == 0,
               "the client accepts password '%s' but secrets cannot be made from it", password);

    char *first = scram_client_first(c);
    FUZZ_CHECK(first, "client-first");
    const char *seen_user = NULL, *authzid = NULL;
    scram_result rc = scram_server_client_first(s, first, strlen(first), plus_advertised, &seen_user, &authzid);
    FUZZ_CHECK(rc == SCRAM_OK, "server refuses the client's client-first '%s': %d", first, rc);
    char *prepped = scram_saslprep(user);
    FUZZ_CHECK(prepped && strcmp(prepped, seen_user) == 0, "user '%s' arrives as '%s'", prepped, seen_user);
    free(prepped);
    FUZZ_CHECK(!authzid, "authzid '%s' from nowhere", authzid);

    char *sfirst = NULL, *final = NULL, *sfinal = NULL;
    FUZZ_CHECK(scram_server_first(s, &sec, &sfirst) == SCRAM_OK, "server-first");
    final = scram_client_final(c, sfirst, strlen(sfirst));
    FUZZ_CHECK(final, "client refuses the server's server-first '%s'", sfirst);
    rc = scram_server_client_final(s, final, strlen(final), &sfinal);
    FUZZ_CHECK(rc == SCRAM_OK, "server refuses client-final '%s': %d", final, rc);
    FUZZ_CHECK(scram_client_verify(c, sfinal, strlen(sfinal)) == 1, "client does not verify '%s'", sfinal);
    /* One flipped character of the signature must not verify. */
    sfinal[2] = sfinal[2] == 'A' ? 'B' : 'A';
    FUZZ_CHECK(scram_client_verify(c, sfinal, strlen(sfinal)) == 0, "client verifies a wrong '%s'", sfinal);

    free(first);
    free(sfirst);
    free(final);
    free(sfinal);
    scram_server_free(s);
    scram_client_free(c);
    free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned flags = data[0];
    int a = flags & 1;
    hash_alg alg = a ? HASH_SHA256 : HASH_SHA1;
    if (flags & 2) exchange_mode(alg, (flags & 4) != 0, (flags & 8) != 0, data + 1, size - 1);
    else parse_mode(alg, a, (flags & 4) != 0, data + 1, size - 1);
    return 0;
}
