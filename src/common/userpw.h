/* Password hashes for users (PBKDF2-HMAC-SHA256 via GnuTLS: slow on
 * purpose, so a stolen table does not give the passwords away cheaply) and
 * the HMAC DFF's access-key signatures need (their body MD5 is md5_hex()
 * of server_apiauth.c). */
#ifndef TANDEM_USERPW_H
#define TANDEM_USERPW_H

#include <stdbool.h>
#include <stddef.h>

#define USERPW_ITER 60000

/* "pbkdf2-sha256$<iter>$<salt hex>$<hash hex>", malloc'd; NULL on failure. */
char *userpw_hash(const char *password);
/* True when password matches a hash made by userpw_hash (constant time). */
bool userpw_verify(const char *password, const char *hash);

/* Lowercase hex HMAC-SHA1 (out: 41 bytes). */
void hmac_sha1_hex(const char *key, const void *data, size_t n, char out[41]);

#endif
