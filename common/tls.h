/* TLS contexts (OpenSSL 3): TLS 1.2+ only, modern ciphers, and a
 * self-signed certificate for fresh installs and tests. */
#ifndef SB_TLS_H
#define SB_TLS_H
#include <stddef.h>
#include <openssl/ssl.h>

/* Server context from PEM files. NULL with a message in err on failure. */
SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen);
/* Certificates per domain (SNI): a client that asks for `domain` in its
 * server name indication gets this certificate; any other name, or none,
 * gets the context's own (the default). Matching ignores case and a
 * trailing dot. The domain contexts live as long as ctx and every connection
 * made with it, so a reload may free ctx while streams still use it. 0 on
 * success, -1 with a message in err. */
int tls_server_ctx_add_domain(SSL_CTX *ctx, const char *domain, const char *cert_file, const char *key_file,
                              char *err, size_t errlen);
/* The server context a process configures: tls/cert and tls/key are the
 * default, each <tls><certificate domain='...'><cert/><key/></certificate>
 * adds one domain. NULL with a message in err (naming the domain). */
struct config;
SSL_CTX *tls_server_ctx_from_config(const struct config *cfg, char *err, size_t errlen);
/* Client context. verify: check the peer's certificate against ca_file (or
 * the system store when ca_file is NULL); 0 = opportunistic. */
SSL_CTX *tls_client_ctx(int verify, const char *ca_file, char *err, size_t errlen);
/* Write a fresh self-signed certificate (EC P-256, SAN = names) and key.
 * names: comma-separated DNS names, the first also the CN. Key file mode 0600. */
int tls_make_self_signed(const char *cert_file, const char *key_file, const char *names,
                         unsigned days, char *err, size_t errlen);
/* The last OpenSSL error as text (for logs). */
const char *tls_last_error(void);

#endif
