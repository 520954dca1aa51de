/* Fuzz target: the server side of SCRAM (common/scram.c): client-first and
 * client-final from the network, with fixed secrets.
 *
 * Input: [flags] client-first NUL client-final
 *   flags 0x01: SCRAM-SHA-256 (else SHA-1)
 *         0x06: channel binding of the server: 0 none, 1 tls-exporter with
 *               32 bytes of data, 2 tls-unique with 12 bytes, 3 tls-exporter
 *               with no data
 *         0x08: the server advertised -PLUS
 * The server's nonce and secrets are those of the examples in RFC 5802 §5
 * (SHA-1) and RFC 7677 §3 (SHA-256): user "user", password "pencil", so the
 * RFCs' messages are a complete, successful exchange. */
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/scram.h"
#include "fuzz/fuzz_util.h"

static const char *const server_nonce[2] = {"3rfcNHYJY1ZVvWVs7j", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"};
static const char *const salt_b64[2] = {"QSXCR+Q6sek8bf92", "W22ZaJ0SNY7soEsUEjb6gQ=="};
static scram_secrets secrets[2];
static int have_secrets;

static void make_secrets(void)
{
    if (have_secrets) return;
    for (int i = 0; i < 2; i++) {
        unsigned char salt[32];
        long n = base64_decode(salt_b64[i], strlen(salt_b64[i]), salt);
        FUZZ_CHECK(n > 0, "salt");
        FUZZ_CHECK(scram_make_secrets(i ? HASH_SHA256 : HASH_SHA1, "pencil", salt, (size_t)n, 4096, &secrets[i]) == 0,
                   "scram_make_secrets");
    }
    have_secrets = 1;
}

static const unsigned char cb_bytes[32] = "0123456789abcdefghijklmnopqrstuv";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    make_secrets();
    unsigned flags = data[0];
    int a = flags & 1;
    hash_alg alg = a ? HASH_SHA256 : HASH_SHA1;
    const char *cb_type = NULL;
    size_t cb_len = 0;
    switch ((flags >> 1) & 3) {
    case 1: cb_type = "tls-exporter"; cb_len = 32; break;
    case 2: cb_type = "tls-unique"; cb_len = 12; break;
    case 3: cb_type = "tls-exporter"; cb_len = 0; break;
    default: break;
    }
    int plus_advertised = (flags & 8) != 0;
    data++;
    size--;

    /* client-first up to the first NUL, client-final after it */
    const uint8_t *nul = memchr(data, '\0', size);
    size_t first_len = nul ? (size_t)(nul - data) : size;
    char *first = fuzz_strndup(data, first_len);
    char *final = nul ? fuzz_strndup(nul + 1, size - first_len - 1) : NULL;
    size_t final_len = nul ? size - first_len - 1 : 0;

    scram_server *s = scram_server_new(alg, cb_type, cb_len ? cb_bytes : NULL, cb_len, server_nonce[a]);
    FUZZ_CHECK(s, "scram_server_new");
    char *out = NULL;
    FUZZ_CHECK(scram_server_client_final(s, "c=biws", 6, &out) == SCRAM_ERR_INTERNAL && !out,
               "client-final accepted before client-first");
    const char *user = NULL, *authzid = NULL;
    scram_result rc = scram_server_client_first(s, first, first_len, plus_advertised, &user, &authzid);
    if (rc == SCRAM_OK) {
        FUZZ_CHECK(user && *user, "accepted client-first without a user name");
        char *again = scram_saslprep(user);
        FUZZ_CHECK(again && strcmp(again, user) == 0, "user name '%s' is not SASLprep'd", user);
        free(again);
        FUZZ_CHECK(!authzid || *authzid, "empty authzid");
        FUZZ_CHECK(scram_server_client_first(s, first, first_len, plus_advertised, &user, &authzid) == SCRAM_ERR_INTERNAL,
                   "client-first accepted twice");

        char *sfirst = NULL;
        FUZZ_CHECK(scram_server_first(s, &secrets[a], &sfirst) == SCRAM_OK && sfirst, "server-first failed");
        FUZZ_CHECK(strncmp(sfirst, "r=", 2) == 0, "server-first '%s'", sfirst);
        /* r=CLIENT-NONCE SERVER-NONCE,s=SALT,i=4096: nonces never hold ',' */
        const char *salt = strstr(sfirst, ",s="), *iter = strstr(sfirst, ",i=");
        size_t snlen = strlen(server_nonce[a]);
        FUZZ_CHECK(salt && iter && (size_t)(salt - sfirst) > 2 + snlen &&
                       memcmp(salt - snlen, server_nonce[a], snlen) == 0 && strcmp(iter, ",i=4096") == 0,
                   "server-first '%s' does not end with our nonce, salt and count", sfirst);
        /* The client's nonce comes first and is what it sent. */
        const char *r = strstr(first, ",r=");
        size_t cnlen = (size_t)(salt - sfirst) - 2 - snlen;
        FUZZ_CHECK(r && strncmp(sfirst + 2, r + 3, cnlen) == 0 && (r[3 + cnlen] == ',' || r[3 + cnlen] == '\0'),
                   "server-first '%s' does not carry the client's nonce", sfirst);
        free(sfirst);

        if (final) {
            rc = scram_server_client_final(s, final, final_len, &out);
            if (rc == SCRAM_OK) {
                size_t hl = hash_len(alg);
                FUZZ_CHECK(out && strncmp(out, "v=", 2) == 0 && strlen(out) == 2 + base64_encoded_len(hl),
                           "server-final '%s'", out ? out : "(null)");
                FUZZ_CHECK(strncmp(final, "c=", 2) == 0 && strstr(final, ",p="), "accepted client-final '%s'", final);
                free(out);
            } else {
                FUZZ_CHECK(!out, "server-final given on failure");
            }
            out = NULL;
            FUZZ_CHECK(scram_server_client_final(s, final, final_len, &out) == SCRAM_ERR_INTERNAL && !out,
                       "client-final accepted twice");
        }
    } else {
        char *sfirst = NULL;
        FUZZ_CHECK(scram_server_first(s, &secrets[a], &sfirst) == SCRAM_ERR_INTERNAL && !sfirst,
                   "server-first after a failed client-first");
    }
    scram_server_free(s);
    free(first);
    free(final);
    return 0;
}
