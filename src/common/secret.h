/* Secrets at rest: env variables of type password and connector passwords
 * are stored sealed with AES-256-GCM under a key both nodes share
 * (tandem.conf `secret.key`). Sealed text: "sealed:v1:" + base64(nonce 12 |
 * ciphertext | tag 16). GnuTLS does the cryptography. */
#ifndef TANDEM_SECRET_H
#define TANDEM_SECRET_H

#include <stdbool.h>

#define SECRET_PREFIX "sealed:v1:"
#define SECRET_KEY_MIN 16 /* characters of secret.key */

/* Seals plain under key (the secret.key string). On success *out is a
 * malloc'd NUL-terminated sealed string. -1 and *err on failure (no key,
 * key too short, crypto failure). */
int secret_seal(const char *key, const char *plain, char **out, char **err);

/* Opens a sealed string. -1 and *err when it is not sealed, is damaged, or
 * was sealed under another key (the message says which, never the value). */
int secret_open(const char *key, const char *sealed, char **out, char **err);

/* True when s starts with the sealed prefix. */
bool secret_is_sealed(const char *s);

#endif
