/* tandemctl doctor's HTTPS checks: the key matches the certificate, the
 * certificate covers the name clients use (the VIP's address, or the host
 * of an https:// ctl.url), it is not about to expire, and both nodes serve
 * the same one. Each node's doctor publishes the SHA-256 of its certificate
 * in Redis (Ptls:fp, field = node) and compares it with the peer's, because
 * the backup runs no server whose certificate could be fetched. */
#include <arpa/inet.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "ctl_doctor_tls.h"
#include "rds.h"
#include "tlscert.h"

#define TLS_WARN_DAYS 14

/* The address of failover.vip without its prefix ("198.18.0.100/24"). */
static void vip_addr(const struct tconf *t, char *out, size_t n)
{
    snprintf(out, n, "%s", t->fo_vip);
    char *slash = strchr(out, '/');
    if (slash)
        *slash = '\0';
}

/* The host of an https:// ctl.url when it is a name, else "". */
static void url_name(const struct tconf *t, char *out, size_t n)
{
    out[0] = '\0';
    if (strncmp(t->ctl_url, "https://", 8) != 0)
        return;
    const char *h = t->ctl_url + 8;
    size_t len = strcspn(h, ":/");
    if (len == 0 || len >= n)
        return;
    memcpy(out, h, len);
    out[len] = '\0';
}

void ctl_doctor_tls(const struct tconf *t, doctor_report_fn report, void *d)
{
    if (t->tls_cert[0] == '\0') {
        report(
            d, 1, "tls",
            "set server.tls_cert and server.tls_key (see tandem.conf) so keys and results do not "
            "cross the network in clear",
            "off: clients reach the VIP over plain HTTP");
        return;
    }
    struct tls_pem p;
    char *err = NULL;
    if (tls_pem_read(t->tls_cert, t->tls_key, &p, &err) == -1) {
        report(d, 2, "tls", "check server.tls_cert and server.tls_key (run doctor as root)", "%s",
               err);
        free(err);
        return;
    }
    if (tls_pem_check_pair(&p, &err) == -1) {
        report(d, 2, "tls", "install the key that belongs to the certificate", "%s", err);
        free(err);
        tls_pem_free(&p);
        return;
    }
    int64_t left = 0;
    if (tls_cert_seconds_left(p.cert, p.certn, now_ms() / 1000, &left, &err) == -1) {
        report(d, 2, "tls", "install a valid certificate", "%s", err);
        free(err);
        tls_pem_free(&p);
        return;
    }
    long days = (long)(left / 86400);
    if (left < 0)
        report(d, 2, "tls", "renew the certificate, then systemctl reload tandem on both nodes",
               "certificate expired %ld day(s) ago", -days);
    else if (days < TLS_WARN_DAYS)
        report(d, 1, "tls", "renew the certificate, then systemctl reload tandem on both nodes",
               "certificate expires in %ld day(s)", days);
    else
        report(d, 0, "tls", NULL, "key matches the certificate; %ld days left", days);

    char vip[64], name[256];
    vip_addr(t, vip, sizeof vip);
    url_name(t, name, sizeof name);
    const char *want = name[0] ? name : vip;
    if (want[0]) {
        int cov = tls_cert_covers(p.cert, p.certn, want, &err);
        if (cov == 1)
            report(d, 0, "tls-name", NULL, "certificate covers %s", want);
        else
            report(d, 2, "tls-name",
                   "issue the certificate for the VIP's DNS name or address (subjectAltName)",
                   "certificate does not cover %s%s%s", want, err ? ": " : "", err ? err : "");
        free(err);
        err = NULL;
    } else {
        report(d, 1, "tls-name", "set failover.vip or an https:// ctl.url",
               "no VIP address or name to check the certificate against");
    }

    char fp[65];
    if (tls_cert_fingerprint(p.cert, p.certn, fp, &err) == -1) {
        report(d, 2, "tls-peer", "install a valid certificate", "%s", err);
        free(err);
        tls_pem_free(&p);
        return;
    }
    tls_pem_free(&p);
    redisContext *rc = rds_connect(t, 2000, &err);
    if (!rc) {
        report(d, 1, "tls-peer", "fix the Redis check first", "not compared: %s", err);
        free(err);
        return;
    }
    /* Each doctor records "<sha256> <unix s>" under its node. A peer's record
     * made before this node's certificate file last changed says nothing
     * about the peer's certificate now (a renewal on both nodes, a lab
     * re-made with a new CA): it is not compared, the peer's doctor is asked
     * for instead. */
    struct stat cst;
    long long cert_at = stat(t->tls_cert, &cst) == 0 ? (long long)cst.st_mtime : 0;
    char key[256], val[96];
    rds_key(key, sizeof key, t, "tls:fp");
    snprintf(val, sizeof val, "%s %lld", fp, (long long)(now_ms() / 1000));
    redisReply *r = redisCommand(rc, "HSET %s %s %s", key, t->node_name, val);
    if (r)
        freeReplyObject(r);
    r = redisCommand(rc, "HGETALL %s", key);
    int peers = 0, differ = 0, stale = 0;
    char other[160] = "", old[160] = "";
    if (r && r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const char *name = r->element[i]->str, *v = r->element[i + 1]->str;
            if (strcmp(name, t->node_name) == 0)
                continue;
            const char *sp = strchr(v, ' ');
            long long at = sp ? strtoll(sp + 1, NULL, 10) : 0;
            bool same = strncmp(v, fp, 64) == 0 && (v[64] == '\0' || v[64] == ' ');
            if (!same && at < cert_at) {
                stale++;
                snprintf(old, sizeof old, "%s", name);
                continue;
            }
            peers++;
            if (!same) {
                differ++;
                snprintf(other, sizeof other, "%s", name);
            }
        }
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    if (differ)
        report(d, 2, "tls-peer", "install the same certificate and key on both nodes",
               "node %s serves another certificate than this node (sha256 %.16s... here)", other,
               fp);
    else if (peers == 0 && stale)
        report(d, 1, "tls-peer", "run tandemctl doctor on the other node too",
               "node %s's recorded certificate predates this node's certificate file: not "
               "compared (sha256 %.16s... here)",
               old, fp);
    else if (peers == 0)
        report(d, 1, "tls-peer", "run tandemctl doctor on the other node too",
               "the peer's certificate is not known yet (sha256 %.16s... here)", fp);
    else
        report(d, 0, "tls-peer", NULL, "both nodes serve sha256 %.16s...", fp);
}
