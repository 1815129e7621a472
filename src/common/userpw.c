#include "userpw.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int derive(const char *password, const char *salt, unsigned iter, char out[65])
{
    unsigned char dk[32];
    gnutls_datum_t key = {(unsigned char *)password, (unsigned)strlen(password)};
    gnutls_datum_t s = {(unsigned char *)salt, (unsigned)strlen(salt)};
    if (gnutls_pbkdf2(GNUTLS_MAC_SHA256, &key, &s, iter, dk, sizeof dk) != 0)
        return -1;
    hex(dk, sizeof dk, out);
    return 0;
}

char *userpw_hash(const char *password)
{
    unsigned char raw[16];
    char salt[33], dk[65];
    if (gnutls_rnd(GNUTLS_RND_NONCE, raw, sizeof raw) != 0)
        return NULL;
    hex(raw, sizeof raw, salt);
    if (derive(password, salt, USERPW_ITER, dk) != 0)
        return NULL;
    char *s = NULL;
    if (asprintf(&s, "pbkdf2-sha256$%u$%s$%s", USERPW_ITER, salt, dk) < 0)
        return NULL;
    return s;
}

bool userpw_verify(const char *password, const char *hash)
{
    unsigned iter;
    char salt[65], want[65], got[65];
    if (!password || !hash ||
        sscanf(hash, "pbkdf2-sha256$%u$%64[0-9a-f]$%64[0-9a-f]", &iter, salt, want) != 3)
        return false;
    if (iter < 1000 || iter > 10000000 || derive(password, salt, iter, got) != 0)
        return false;
    if (strlen(want) != 64)
        return false;
    unsigned diff = 0;
    for (int i = 0; i < 64; i++)
        diff |= (unsigned)(got[i] ^ want[i]);
    return diff == 0;
}

void hmac_sha1_hex(const char *key, const void *data, size_t n, char out[41])
{
    unsigned char d[20];
    gnutls_hmac_fast(GNUTLS_MAC_SHA1, key, strlen(key), data, n, d);
    hex(d, sizeof d, out);
}
