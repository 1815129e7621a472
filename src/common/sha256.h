#ifndef TANDEM_SHA256_H
#define TANDEM_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* FIPS 180-4 SHA-256; out is 64 lowercase hex chars + NUL. Used to store
 * access-key secrets hashed (never the secret itself). */
void sha256_hex(const void *data, size_t len, char out[65]);
void sha256(const void *data, size_t len, uint8_t out[32]);

#endif
