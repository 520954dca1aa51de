/* TLS contexts (OpenSSL 3): TLS 1.2+ only, modern ciphers, and a
 * self-signed certificate for fresh installs and tests. */
#ifndef SB_TLS_H
#define SB_TLS_H
#include <stddef.h>
#include <openssl/ssl.h>

/* Server context from PEM files. NULL with a message in err on failure. */
SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen);
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
