/* HTTPS on the VIP through libmicrohttpd's GnuTLS support. The certificate
 * is handed to GnuTLS by a callback (MHD_OPTION_HTTPS_CERT_CALLBACK), so a
 * reload swaps it under running connections: new handshakes get the new
 * one, in-flight ones keep the old, and nothing is restarted. Old
 * credentials are kept (a few KB each) because a handshake may still hold
 * them; after SRV_TLS_KEEP reloads the oldest is freed. */
#include "server_tls.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "tlscert.h"
#include "util.h"

#define SRV_TLS_KEEP 16
#define MAX_CHAIN 8

struct creds {
    gnutls_pcert_st pcert[MAX_CHAIN];
    unsigned npcert;
    gnutls_privkey_t key;
    char fingerprint[65];
};

static struct {
    bool on;
    char cert_path[256], key_path[256];
    char *trust_pem; /* client CA for mutual TLS, NULL = none */
    char priorities[512];
    _Atomic(struct creds *) cur;
    struct creds *old[SRV_TLS_KEEP];
    int nold;
    pthread_mutex_t mu;
} T = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void creds_free(struct creds *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->npcert; i++)
        gnutls_pcert_deinit(&c->pcert[i]);
    if (c->key)
        gnutls_privkey_deinit(c->key);
    free(c);
}

static struct creds *creds_from_pem(const struct tls_pem *p, char **err)
{
    if (tls_pem_check_pair(p, err) == -1)
        return NULL;
    struct creds *c = calloc(1, sizeof *c);
    if (!c) {
        err_set(err, "out of memory");
        return NULL;
    }
    gnutls_datum_t cd = {(unsigned char *)p->cert, (unsigned)p->certn};
    gnutls_datum_t kd = {(unsigned char *)p->key, (unsigned)p->keyn};
    c->npcert = MAX_CHAIN;
    int rc = gnutls_pcert_list_import_x509_raw(c->pcert, &c->npcert, &cd, GNUTLS_X509_FMT_PEM,
                                               GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
    if (rc < 0) {
        c->npcert = 0;
        err_set(err, "certificate chain: %s", gnutls_strerror(rc));
        creds_free(c);
        return NULL;
    }
    rc = gnutls_privkey_init(&c->key);
    if (rc == 0)
        rc = gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        err_set(err, "private key: %s", gnutls_strerror(rc));
        creds_free(c);
        return NULL;
    }
    if (tls_cert_fingerprint(p->cert, p->certn, c->fingerprint, err) == -1) {
        creds_free(c);
        return NULL;
    }
    return c;
}

static int cert_cb(gnutls_session_t s, const gnutls_datum_t *req_ca_dn, int nreqs,
                   const gnutls_pk_algorithm_t *algos, int nalgos, gnutls_pcert_st **pcert,
                   unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)s;
    (void)req_ca_dn;
    (void)nreqs;
    (void)algos;
    (void)nalgos;
    struct creds *c = atomic_load(&T.cur);
    if (!c)
        return -1;
    *pcert = c->pcert;
    *pcert_length = c->npcert;
    *pkey = c->key;
    return 0;
}

/* Installs new credentials; the previous ones join the kept list. */
static void install(struct creds *c)
{
    pthread_mutex_lock(&T.mu);
    struct creds *prev = atomic_exchange(&T.cur, c);
    if (prev) {
        if (T.nold == SRV_TLS_KEEP) {
            creds_free(T.old[0]);
            memmove(T.old, T.old + 1, (SRV_TLS_KEEP - 1) * sizeof T.old[0]);
            T.nold--;
        }
        T.old[T.nold++] = prev;
    }
    pthread_mutex_unlock(&T.mu);
}

int srv_tls_load_pem(const struct tls_pem *p, char **err)
{
    struct creds *c = creds_from_pem(p, err);
    if (!c)
        return -1;
    install(c);
    log_info("tls: serving certificate sha256 %s", c->fingerprint);
    return 0;
}

static int load_files(char **err)
{
    struct tls_pem p;
    if (tls_pem_read(T.cert_path, T.key_path, &p, err) == -1)
        return -1;
    int rc = srv_tls_load_pem(&p, err);
    tls_pem_free(&p);
    return rc;
}

int srv_tls_init(const struct tconf *c, char **err)
{
    T.on = c->tls_cert[0] != '\0';
    if (!T.on)
        return 0;
    snprintf(T.cert_path, sizeof T.cert_path, "%s", c->tls_cert);
    snprintf(T.key_path, sizeof T.key_path, "%s", c->tls_key);
    snprintf(T.priorities, sizeof T.priorities, "%s", c->tls_priorities);
    const char *pos = NULL;
    gnutls_priority_t prio;
    int rc = gnutls_priority_init(&prio, T.priorities, &pos);
    if (rc < 0) {
        err_set(err, "server.tls_priorities: %s at \"%s\"", gnutls_strerror(rc), pos ? pos : "");
        return -1;
    }
    gnutls_priority_deinit(prio);
    if (c->tls_client_ca[0]) {
        size_t n = 0;
        struct tls_pem ca;
        /* read as a "cert" of a pair whose key is the same file: only the cert part is used */
        if (tls_pem_read(c->tls_client_ca, c->tls_client_ca, &ca, err) == -1)
            return -1;
        n = ca.certn;
        T.trust_pem = ca.cert;
        ca.cert = NULL;
        tls_pem_free(&ca);
        (void)n;
    }
    return load_files(err);
}

bool srv_tls_enabled(void)
{
    return T.on;
}

int srv_tls_reload(char **err)
{
    if (!T.on)
        return 0;
    return load_files(err);
}

int srv_tls_mhd_options(struct MHD_OptionItem *ops, int max)
{
    int n = 0;
    if (!T.on || max < 3)
        return 0;
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)cert_cb};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, T.priorities};
    if (T.trust_pem)
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, T.trust_pem};
    return n;
}

bool srv_tls_client_required(void)
{
    return T.on && T.trust_pem != NULL;
}

int srv_tls_client_ok(struct MHD_Connection *conn, char *why, size_t whyn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session) {
        snprintf(why, whyn, "no TLS session");
        return 0;
    }
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    unsigned int n = 0;
    if (!gnutls_certificate_get_peers(s, &n) || n == 0) {
        snprintf(why, whyn, "a client certificate is required");
        return 0;
    }
    unsigned int status = 0;
    int rc = gnutls_certificate_verify_peers3(s, NULL, &status);
    if (rc < 0 || status != 0) {
        gnutls_datum_t txt = {0};
        if (rc >= 0 &&
            gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) == 0) {
            snprintf(why, whyn, "client certificate refused: %s", txt.data);
            gnutls_free(txt.data);
        } else {
            snprintf(why, whyn, "client certificate refused: %s", gnutls_strerror(rc));
        }
        return 0;
    }
    return 1;
}

const char *srv_tls_fingerprint(void)
{
    struct creds *c = atomic_load(&T.cur);
    return c ? c->fingerprint : "";
}
