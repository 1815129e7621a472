/* X.509 facts the server, the supervisor and doctor need about the VIP's
 * certificate: does the key match, which names does it cover, how long is
 * it valid, what is its fingerprint. GnuTLS does the parsing. */
#ifndef TANDEM_TLSCERT_H
#define TANDEM_TLSCERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_pem {
    char *cert; /* PEM, the leaf first, then the chain */
    size_t certn;
    char *key; /* PEM private key */
    size_t keyn;
};

/* Reads both files whole. -1 and *err naming the file and why. */
int tls_pem_read(const char *cert_path, const char *key_path, struct tls_pem *out, char **err);
void tls_pem_free(struct tls_pem *p);

/* The key belongs to the leaf certificate, and both parse. -1 and *err. */
int tls_pem_check_pair(const struct tls_pem *p, char **err);

/* Seconds from now_s until the leaf's notAfter (negative: expired). */
int tls_cert_seconds_left(const char *pem, size_t n, int64_t now_s, int64_t *left, char **err);

/* The leaf covers name: a DNS name (wildcards as RFC 6125) or an IP
 * address in its subjectAltName. 1 yes, 0 no, -1 and *err. */
int tls_cert_covers(const char *pem, size_t n, const char *name, char **err);

/* SHA-256 of the leaf's DER, lowercase hex. -1 and *err. */
int tls_cert_fingerprint(const char *pem, size_t n, char out[65], char **err);

#endif
