/* TLS contexts for servers and clients, and self-signed certificates.
 *
 * Policy: TLS 1.2 is the floor; TLS 1.2 suites are limited to ECDHE key
 * exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305); TLS 1.3 keeps
 * OpenSSL's defaults (all AEAD). No compression (CRIME), no renegotiation.
 *
 * A server may hold one certificate per domain, chosen during the handshake
 * by the name the client asks for (SNI), with a default for the rest. */
#include "common/tls.h"
#include "common/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TLS12_CIPHERS                                          \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Same as the server's session id context so resumed sessions stay bound to
 * this application. */
static const unsigned char session_id_context[] = "switchboard";

const char *tls_last_error(void)
{
    /* A thread-local buffer: each process is a single-threaded loop, but
     * this keeps the function safe should a helper thread log too. */
    static _Thread_local char text[512];
    size_t used = 0;
    unsigned long e;

    text[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof one);
        int n = snprintf(text + used, sizeof text - used, "%s%s", used ? "; " : "", one);
        if (n < 0 || (size_t)n >= sizeof text - used) {
            /* Full: keep what fits and drop the rest of the queue. */
            ERR_clear_error();
            break;
        }
        used += (size_t)n;
    }
    if (used == 0 && text[0] == '\0') snprintf(text, sizeof text, "no OpenSSL error details");
    return text;
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (!err || errlen == 0) return;
    char msg[256];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    snprintf(err, errlen, "%s: %s", msg, tls_last_error());
}

/* The settings shared by client and server contexts. */
static int apply_policy(SSL_CTX *ctx)
{
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) return -1;
    if (!SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS)) return -1;
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* RELEASE_BUFFERS: an idle connection gives its record buffers back.
     * The other two let a write continue from a different buffer address
     * and return after a partial write instead of failing. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return 0;
}

SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    ERR_clear_error();
    if (!cert_file || !key_file) {
        if (err && errlen) snprintf(err, errlen, "TLS server needs both a certificate and a key file");
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        set_err(err, errlen, "cannot create TLS server context%s%s", NULL, NULL);
        return NULL;
    }
    if (apply_policy(ctx) != 0) {
        set_err(err, errlen, "cannot apply TLS policy%s%s", NULL, NULL);
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_id_context(ctx, session_id_context, sizeof session_id_context - 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        set_err(err, errlen, "cannot load certificate chain from %s%s", cert_file, NULL);
        goto fail;
    }
    /* Loading the key already compares it with the certificate; the
     * explicit check below covers contexts where it could not. */
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) goto mismatch;
        set_err(err, errlen, "cannot load private key from %s%s", key_file, NULL);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) goto mismatch;
    return ctx;
mismatch:
    set_err(err, errlen, "private key %s does not match certificate %s", key_file, cert_file);
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* --- certificates per domain (SNI) --- */

typedef struct sni_entry {
    char *domain;
    SSL_CTX *ctx;
} sni_entry;

typedef struct sni_table {
    sni_entry *entries;
    size_t n;
} sni_table;

static void sni_table_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    sni_table *t = ptr;
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->entries[i].domain);
        SSL_CTX_free(t->entries[i].ctx);
    }
    free(t->entries);
    free(t);
}

/* The table hangs off the default context as ex_data, so it is freed with
 * the last reference to that context (connections hold one each). */
static int sni_index(void)
{
    static int idx = -1;
    if (idx < 0) idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_table_free);
    return idx;
}

static int same_name(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la && a[la - 1] == '.') la--;
    if (lb && b[lb - 1] == '.') lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const sni_table *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || !t) return SSL_TLSEXT_ERR_NOACK;
    for (size_t i = 0; i < t->n; i++) {
        if (same_name(name, t->entries[i].domain)) {
            /* Only the certificate and key come from the domain's context;
             * the policy is the same on both (tls_server_ctx). */
            if (!SSL_set_SSL_CTX(ssl, t->entries[i].ctx)) return SSL_TLSEXT_ERR_ALERT_FATAL;
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;   /* the default certificate; the name is not acknowledged */
}

int tls_server_ctx_add_domain(SSL_CTX *ctx, const char *domain, const char *cert_file, const char *key_file,
                              char *err, size_t errlen)
{
    if (!ctx || !domain || !*domain) {
        if (err && errlen) snprintf(err, errlen, "a certificate per domain needs a domain");
        return -1;
    }
    int idx = sni_index();
    if (idx < 0) {
        set_err(err, errlen, "cannot set up certificates per domain%s%s", NULL, NULL);
        return -1;
    }
    sni_table *t = SSL_CTX_get_ex_data(ctx, idx);
    for (size_t i = 0; t && i < t->n; i++) {
        if (same_name(domain, t->entries[i].domain)) {
            if (err && errlen) snprintf(err, errlen, "two certificates for the domain %s", domain);
            return -1;
        }
    }
    char inner[384];
    SSL_CTX *dctx = tls_server_ctx(cert_file, key_file, inner, sizeof inner);
    if (!dctx) {
        if (err && errlen) snprintf(err, errlen, "certificate for %s: %s", domain, inner);
        return -1;
    }
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t || !SSL_CTX_set_ex_data(ctx, idx, t)) {
            free(t);
            SSL_CTX_free(dctx);
            if (err && errlen) snprintf(err, errlen, "out of memory");
            return -1;
        }
        SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
        SSL_CTX_set_tlsext_servername_arg(ctx, t);
    }
    sni_entry *e = realloc(t->entries, (t->n + 1) * sizeof *e);
    char *copy = strdup(domain);
    if (!e || !copy) {
        if (e) t->entries = e;
        free(copy);
        SSL_CTX_free(dctx);
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->entries = e;
    t->entries[t->n].domain = copy;
    t->entries[t->n].ctx = dctx;
    t->n++;
    return 0;
}

SSL_CTX *tls_server_ctx_from_config(const config *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_server_ctx(config_str(cfg, "tls/cert", NULL), config_str(cfg, "tls/key", NULL), err, errlen);
    if (!ctx) return NULL;
    for (const xnode *n = config_first(cfg, "tls/certificate"); n; n = config_next(n)) {
        char inner[512];
        if (tls_server_ctx_add_domain(ctx, config_node_str(n, "@domain", ""), config_node_str(n, "cert", NULL),
                                      config_node_str(n, "key", NULL), inner, sizeof inner) != 0) {
            if (err && errlen) snprintf(err, errlen, "%s:%u: tls/certificate: %s", config_path(cfg), n->line, inner);
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

SSL_CTX *tls_client_ctx(int verify, const char *ca_file, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        set_err(err, errlen, "cannot create TLS client context%s%s", NULL, NULL);
        return NULL;
    }
    if (apply_policy(ctx) != 0) {
        set_err(err, errlen, "cannot apply TLS policy%s%s", NULL, NULL);
        goto fail;
    }
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (ca_file) {
            if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
                set_err(err, errlen, "cannot load CA certificates from %s%s", ca_file, NULL);
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            set_err(err, errlen, "cannot load the system CA store%s%s", NULL, NULL);
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* --- self-signed certificates --- */

static int add_serial(X509 *x)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) return -1;
    raw[0] &= 0x7f;   /* positive */
    raw[0] |= 0x01;   /* and never shorter than it looks (no leading zero byte) */
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
    if (!bn) return -1;
    int rc = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ? 0 : -1;
    BN_free(bn);
    return rc;
}

/* names: comma-separated; each trimmed, empty ones skipped. The SAN is
 * built as ASN.1 values rather than a config string so that no name can
 * smuggle in other entries. */
static int add_names(X509 *x, const char *names, char *err, size_t errlen)
{
    char *copy = strdup(names);
    if (!copy) return -1;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int count = 0, rc = -1;
    char *save = NULL;
    if (!gens) goto out;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t') tok++;
        size_t len = strlen(tok);
        while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t')) tok[--len] = '\0';
        if (len == 0) continue;
        if (count == 0) {
            X509_NAME *subj = X509_get_subject_name(x);
            if (!X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)tok, -1, -1, 0) ||
                !X509_set_issuer_name(x, subj)) {
                if (err && errlen) snprintf(err, errlen, "bad certificate name '%s': %s", tok, tls_last_error());
                goto out;
            }
        }
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        if (!g || !s || !ASN1_STRING_set(s, tok, (int)len)) {
            GENERAL_NAME_free(g);
            ASN1_IA5STRING_free(s);
            goto out;
        }
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
        if (!sk_GENERAL_NAME_push(gens, g)) {
            GENERAL_NAME_free(g);
            goto out;
        }
        count++;
    }
    if (count == 0) {
        if (err && errlen) snprintf(err, errlen, "no certificate name given");
        goto out;
    }
    if (!X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT)) goto out;
    rc = 0;
out:
    if (gens) GENERAL_NAMES_free(gens);
    free(copy);
    return rc;
}

static int add_basic_constraints(X509 *x)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    if (!bc) return -1;
    bc->ca = 0;
    int ok = X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT);
    BASIC_CONSTRAINTS_free(bc);
    return ok ? 0 : -1;
}

static int write_key(const char *key_file, EVP_PKEY *pkey, char *err, size_t errlen)
{
    int fd = open(key_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (err && errlen) snprintf(err, errlen, "cannot create %s: %s", key_file, strerror(errno));
        return -1;
    }
    /* The file may have existed with a wider mode. */
    if (fchmod(fd, 0600) != 0) {
        if (err && errlen) snprintf(err, errlen, "cannot chmod %s: %s", key_file, strerror(errno));
        close(fd);
        return -1;
    }
    FILE *fp = fdopen(fd, "w");
    if (!fp) {
        if (err && errlen) snprintf(err, errlen, "cannot open %s: %s", key_file, strerror(errno));
        close(fd);
        return -1;
    }
    int ok = PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL);
    if (fclose(fp) != 0) ok = 0;
    if (!ok) {
        if (err && errlen) snprintf(err, errlen, "cannot write %s: %s", key_file, tls_last_error());
        return -1;
    }
    return 0;
}

static int write_cert(const char *cert_file, X509 *x, char *err, size_t errlen)
{
    FILE *fp = fopen(cert_file, "we");
    if (!fp) {
        if (err && errlen) snprintf(err, errlen, "cannot create %s: %s", cert_file, strerror(errno));
        return -1;
    }
    int ok = PEM_write_X509(fp, x);
    if (fclose(fp) != 0) ok = 0;
    if (!ok) {
        if (err && errlen) snprintf(err, errlen, "cannot write %s: %s", cert_file, tls_last_error());
        return -1;
    }
    return 0;
}

int tls_make_self_signed(const char *cert_file, const char *key_file, const char *names,
                         unsigned days, char *err, size_t errlen)
{
    ERR_clear_error();
    if (err && errlen) err[0] = '\0';
    if (!cert_file || !key_file || !names) {
        if (err && errlen) snprintf(err, errlen, "certificate file, key file and names are required");
        return -1;
    }
    int rc = -1;
    X509 *x = NULL;
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    if (!pkey) {
        set_err(err, errlen, "cannot generate an EC P-256 key%s%s", NULL, NULL);
        goto out;
    }
    x = X509_new();
    if (!x || !X509_set_version(x, X509_VERSION_3) || add_serial(x) != 0 ||
        !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400L) ||
        !X509_set_pubkey(x, pkey)) {
        set_err(err, errlen, "cannot build certificate%s%s", NULL, NULL);
        goto out;
    }
    if (add_names(x, names, err, errlen) != 0) {
        if (err && errlen && err[0] == '\0') set_err(err, errlen, "cannot add names%s%s", NULL, NULL);
        goto out;
    }
    if (add_basic_constraints(x) != 0 || !X509_sign(x, pkey, EVP_sha256())) {
        set_err(err, errlen, "cannot sign certificate%s%s", NULL, NULL);
        goto out;
    }
    if (write_key(key_file, pkey, err, errlen) != 0) goto out;
    if (write_cert(cert_file, x, err, errlen) != 0) goto out;
    rc = 0;
out:
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}
