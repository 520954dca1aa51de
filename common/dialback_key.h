/* Dialback keys per XEP-0185:
 * key = HEX( HMAC-SHA256( HEX(SHA256(secret)), receiving ' ' originating ' ' stream_id ) ) */
#ifndef SB_DIALBACK_KEY_H
#define SB_DIALBACK_KEY_H
#include <stddef.h>

#define DIALBACK_KEY_LEN 64

/* out holds DIALBACK_KEY_LEN + 1 bytes. */
void dialback_key(const char *secret, const char *receiving, const char *originating,
                  const char *stream_id, char out[DIALBACK_KEY_LEN + 1]);
/* Constant-time check of a key received in db:verify. */
int dialback_key_check(const char *secret, const char *receiving, const char *originating,
                       const char *stream_id, const char *key);

#endif
