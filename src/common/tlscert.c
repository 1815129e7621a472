#include "tlscert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static char *slurp(const char *path, size_t *n, char **err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *b = malloc(cap + 1);
    while (b) {
        size_t r = fread(b + len, 1, cap - len, f);
        len += r;
        if (len < cap)
            break;
        if (cap >= 1 << 20) { /* a certificate chain is never a megabyte */
            free(b);
            b = NULL;
            err_set(err, "%s: larger than 1 MiB, not a PEM file", path);
            fclose(f);
            return NULL;
        }
        char *nb = realloc(b, cap * 2 + 1);
        if (!nb) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!b || bad) {
        free(b);
        err_set(err, "%s: %s", path, b ? "read error" : "out of memory");
        return NULL;
    }
    b[len] = '\0';
    *n = len;
    return b;
}

int tls_pem_read(const char *cert_path, const char *key_path, struct tls_pem *out, char **err)
{
    memset(out, 0, sizeof *out);
    out->cert = slurp(cert_path, &out->certn, err);
    if (!out->cert)
        return -1;
    out->key = slurp(key_path, &out->keyn, err);
    if (!out->key) {
        tls_pem_free(out);
        return -1;
    }
    return 0;
}

void tls_pem_free(struct tls_pem *p)
{
    if (p->key)
        memset(p->key, 0, p->keyn);
    free(p->cert);
    free(p->key);
    memset(p, 0, sizeof *p);
}

static int leaf(const char *pem, size_t n, gnutls_x509_crt_t *crt, char **err)
{
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)n};
    int rc = gnutls_x509_crt_init(crt);
    if (rc == 0)
        rc = gnutls_x509_crt_import(*crt, &d, GNUTLS_X509_FMT_PEM);
    if (rc < 0) {
        err_set(err, "certificate: %s", gnutls_strerror(rc));
        gnutls_x509_crt_deinit(*crt);
        return -1;
    }
    return 0;
}

int tls_pem_check_pair(const struct tls_pem *p, char **err)
{
    gnutls_x509_crt_t crt;
    gnutls_x509_privkey_t xkey = NULL;
    if (leaf(p->cert, p->certn, &crt, err) == -1)
        return -1;
    gnutls_datum_t kd = {(unsigned char *)p->key, (unsigned)p->keyn};
    int ret = -1, rc = gnutls_x509_privkey_init(&xkey);
    if (rc == 0)
        rc = gnutls_x509_privkey_import(xkey, &kd, GNUTLS_X509_FMT_PEM);
    if (rc < 0) {
        err_set(err, "private key: %s", gnutls_strerror(rc));
        goto out;
    }
    unsigned char a[64], b[64];
    size_t an = sizeof a, bn = sizeof b;
    if (gnutls_x509_crt_get_key_id(crt, 0, a, &an) < 0 ||
        gnutls_x509_privkey_get_key_id(xkey, 0, b, &bn) < 0) {
        err_set(err, "cannot compute key ids");
        goto out;
    }
    if (an != bn || memcmp(a, b, an) != 0) {
        err_set(err, "the private key does not belong to the certificate");
        goto out;
    }
    ret = 0;
out:
    if (xkey)
        gnutls_x509_privkey_deinit(xkey);
    gnutls_x509_crt_deinit(crt);
    return ret;
}

int tls_cert_seconds_left(const char *pem, size_t n, int64_t now_s, int64_t *left, char **err)
{
    gnutls_x509_crt_t crt;
    if (leaf(pem, n, &crt, err) == -1)
        return -1;
    time_t na = gnutls_x509_crt_get_expiration_time(crt);
    gnutls_x509_crt_deinit(crt);
    if (na == (time_t)-1) {
        err_set(err, "certificate has no readable expiry");
        return -1;
    }
    *left = (int64_t)na - now_s;
    return 0;
}

int tls_cert_covers(const char *pem, size_t n, const char *name, char **err)
{
    gnutls_x509_crt_t crt;
    if (leaf(pem, n, &crt, err) == -1)
        return -1;
    unsigned char ip[16];
    int ok;
    if (inet_pton(AF_INET, name, ip) == 1)
        ok = gnutls_x509_crt_check_ip(crt, ip, 4, 0);
    else if (inet_pton(AF_INET6, name, ip) == 1)
        ok = gnutls_x509_crt_check_ip(crt, ip, 16, 0);
    else
        ok = gnutls_x509_crt_check_hostname2(crt, name, 0);
    gnutls_x509_crt_deinit(crt);
    return ok ? 1 : 0;
}

int tls_cert_fingerprint(const char *pem, size_t n, char out[65], char **err)
{
    gnutls_x509_crt_t crt;
    if (leaf(pem, n, &crt, err) == -1)
        return -1;
    unsigned char fp[32];
    size_t fpn = sizeof fp;
    int rc = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &fpn);
    gnutls_x509_crt_deinit(crt);
    if (rc < 0 || fpn != 32) {
        err_set(err, "fingerprint: %s", gnutls_strerror(rc));
        return -1;
    }
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", fp[i]);
    return 0;
}
