/* The server's certificate hand-over (see sv.h). Message on the pipe:
 * "TLSPEM <cert bytes> <key bytes>\n" then both PEMs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sv.h"
#include "tlscert.h"

int sv_tls_pipe(struct sv *s, int *rfd)
{
    *rfd = -1;
    if (s->conf.tls_cert[0] == '\0')
        return 0;
    sv_tls_close(s);
    int p[2];
    if (pipe2(p, O_CLOEXEC) == -1) {
        log_warn("tls: pipe");
        return -1;
    }
    /* a PEM pair is a few KB: it fits the pipe, and the server reads it at
     * start; never block the supervisor's loop on a server that does not */
    fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    s->tls_wfd = p[1];
    *rfd = p[0];
    return 0;
}

void sv_tls_send(struct sv *s)
{
    if (s->tls_wfd < 0)
        return;
    struct tls_pem pem;
    char *err = NULL;
    if (tls_pem_read(s->conf.tls_cert, s->conf.tls_key, &pem, &err) == -1 ||
        tls_pem_check_pair(&pem, &err) == -1) {
        log_warnx("tls: %s; the server keeps the certificate it has", err ? err : "?");
        free(err);
        if (pem.cert)
            tls_pem_free(&pem);
        return;
    }
    char hdr[64];
    int hn = snprintf(hdr, sizeof hdr, "TLSPEM %zu %zu\n", pem.certn, pem.keyn);
    const char *parts[] = {hdr, pem.cert, pem.key};
    size_t lens[] = {(size_t)hn, pem.certn, pem.keyn};
    for (int i = 0; i < 3; i++) {
        size_t off = 0;
        while (off < lens[i]) {
            ssize_t n = write(s->tls_wfd, parts[i] + off, lens[i] - off);
            if (n == -1 && errno == EINTR)
                continue;
            if (n <= 0) {
                log_warn("tls: handing the certificate to the server");
                tls_pem_free(&pem);
                return;
            }
            off += (size_t)n;
        }
    }
    tls_pem_free(&pem);
    log_info("tls: certificate %s handed to the server", s->conf.tls_cert);
}

void sv_tls_close(struct sv *s)
{
    if (s->tls_wfd >= 0)
        close(s->tls_wfd);
    s->tls_wfd = -1;
}
