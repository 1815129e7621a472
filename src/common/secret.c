#include "secret.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "util.h"

#define NONCE_LEN 12
#define TAG_LEN 16

bool secret_is_sealed(const char *s)
{
    return s && strncmp(s, SECRET_PREFIX, sizeof SECRET_PREFIX - 1) == 0;
}

/* The AEAD handle for key, or NULL with *err. The key is SHA-256 of the
 * configured string, so any length >= SECRET_KEY_MIN gives 256 bits. */
static gnutls_aead_cipher_hd_t aead_open(const char *key, char **err)
{
    if (!key || !*key) {
        err_set(err, "secret.key is not set in tandem.conf (it seals passwords at rest; "
                     "set the same value on both nodes)");
        return NULL;
    }
    if (strlen(key) < SECRET_KEY_MIN) {
        err_set(err, "secret.key is %zu characters; at least %d are needed", strlen(key),
                SECRET_KEY_MIN);
        return NULL;
    }
    uint8_t k[32];
    sha256(key, strlen(key), k);
    gnutls_datum_t kd = {k, sizeof k};
    gnutls_aead_cipher_hd_t h = NULL;
    int rc = gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_GCM, &kd);
    memset(k, 0, sizeof k);
    if (rc < 0) {
        err_set(err, "AES-256-GCM: %s", gnutls_strerror(rc));
        return NULL;
    }
    return h;
}

int secret_seal(const char *key, const char *plain, char **out, char **err)
{
    *out = NULL;
    gnutls_aead_cipher_hd_t h = aead_open(key, err);
    if (!h)
        return -1;
    size_t plen = strlen(plain);
    size_t blen = NONCE_LEN + plen + TAG_LEN;
    uint8_t *buf = malloc(blen);
    int ret = -1;
    if (!buf) {
        err_set(err, "out of memory sealing a secret");
        goto out;
    }
    int rc = gnutls_rnd(GNUTLS_RND_NONCE, buf, NONCE_LEN);
    size_t clen = plen + TAG_LEN;
    if (rc == 0)
        rc = gnutls_aead_cipher_encrypt(h, buf, NONCE_LEN, SECRET_PREFIX, sizeof SECRET_PREFIX - 1,
                                        TAG_LEN, plain, plen, buf + NONCE_LEN, &clen);
    if (rc < 0) {
        err_set(err, "sealing a secret: %s", gnutls_strerror(rc));
        goto out;
    }
    gnutls_datum_t raw = {buf, (unsigned)(NONCE_LEN + clen)}, b64 = {0};
    rc = gnutls_base64_encode2(&raw, &b64);
    if (rc < 0) {
        err_set(err, "sealing a secret: base64: %s", gnutls_strerror(rc));
        goto out;
    }
    *out = xasprintf("%s%.*s", SECRET_PREFIX, (int)b64.size, (const char *)b64.data);
    gnutls_free(b64.data);
    ret = 0;
out:
    free(buf);
    gnutls_aead_cipher_deinit(h);
    return ret;
}

int secret_open(const char *key, const char *sealed, char **out, char **err)
{
    *out = NULL;
    if (!secret_is_sealed(sealed)) {
        err_set(err, "value is not sealed (no \"%s\" prefix)", SECRET_PREFIX);
        return -1;
    }
    const char *b = sealed + sizeof SECRET_PREFIX - 1;
    gnutls_datum_t b64 = {(unsigned char *)b, (unsigned)strlen(b)}, raw = {0};
    if (gnutls_base64_decode2(&b64, &raw) < 0 || raw.size < NONCE_LEN + TAG_LEN) {
        gnutls_free(raw.data);
        err_set(err, "sealed value is damaged (bad base64 or too short)");
        return -1;
    }
    gnutls_aead_cipher_hd_t h = aead_open(key, err);
    if (!h) {
        gnutls_free(raw.data);
        return -1;
    }
    size_t plen = raw.size - NONCE_LEN;
    char *p = malloc(plen + 1);
    int ret = -1;
    if (!p) {
        err_set(err, "out of memory opening a secret");
        goto out;
    }
    int rc =
        gnutls_aead_cipher_decrypt(h, raw.data, NONCE_LEN, SECRET_PREFIX, sizeof SECRET_PREFIX - 1,
                                   TAG_LEN, raw.data + NONCE_LEN, raw.size - NONCE_LEN, p, &plen);
    if (rc < 0) {
        err_set(err, "sealed value does not open with this secret.key (sealed under another "
                     "key, or damaged)");
        free(p);
        goto out;
    }
    p[plen] = '\0';
    *out = p;
    ret = 0;
out:
    gnutls_free(raw.data);
    gnutls_aead_cipher_deinit(h);
    return ret;
}
