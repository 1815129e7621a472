/* tandemctl's HTTP/1.1 client: http:// and https:// (GnuTLS), one request per connection
 * (Connection: close), Content-Length, chunked or read-to-EOF answers, one
 * deadline for the whole exchange. Small on purpose: tandemctl talks to one
 * server that we also wrote, and a dependency like libcurl is not worth it. */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "build_config.h"
#include "ctl.h"
#include "ctl_http.h"
#include "util.h"

static long long mono_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ctl_http_resp_free(struct ctl_http_resp *r)
{
    if (!r)
        return;
    free(r->body);
    if (r->json)
        json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

int ctl_http_parse_url(const char *url, char *host, size_t hostn, char *port, size_t portn,
                       char *base, size_t basen, char **err)
{
    const char *p, *hend, *slash;
    size_t hl;

    if (!url || !*url) {
        *err = xasprintf("no server URL: give --url, set TANDEM_URL or ctl.url in the config");
        return -1;
    }
    bool tls = strncasecmp(url, "https://", 8) == 0;
    if (!tls && strncasecmp(url, "http://", 7) != 0) {
        *err = xasprintf("URL '%s': only http:// and https:// are supported", url);
        return -1;
    }
    p = url + (tls ? 8 : 7);
    slash = strchr(p, '/');
    if (*p == '[') { /* [v6]:port */
        hend = strchr(p, ']');
        if (!hend || (slash && hend > slash)) {
            *err = xasprintf("URL '%s': unterminated [IPv6] host", url);
            return -1;
        }
        hl = (size_t)(hend - p - 1);
        if (hl == 0 || hl >= hostn)
            goto badhost;
        memcpy(host, p + 1, hl);
        host[hl] = '\0';
        p = hend + 1;
    } else {
        hend = p + strcspn(p, ":/");
        hl = (size_t)(hend - p);
        if (hl == 0 || hl >= hostn)
            goto badhost;
        memcpy(host, p, hl);
        host[hl] = '\0';
        p = hend;
    }
    if (*p == ':') {
        size_t pl = strcspn(p + 1, "/");
        if (pl == 0 || pl >= portn || strspn(p + 1, "0123456789") != pl || atoi(p + 1) < 1 ||
            atoi(p + 1) > 65535) {
            *err = xasprintf("URL '%s': bad port", url);
            return -1;
        }
        memcpy(port, p + 1, pl);
        port[pl] = '\0';
        p += 1 + pl;
    } else if (*p == '/' || *p == '\0') {
        snprintf(port, portn, "%s", tls ? "443" : "80");
    } else {
        goto badhost;
    }
    /* base path without its trailing slash, so base + "/api/..." is clean */
    if (strlen(p) >= basen) {
        *err = xasprintf("URL '%s': path too long", url);
        return -1;
    }
    snprintf(base, basen, "%s", p);
    {
        size_t bl = strlen(base);
        while (bl > 0 && base[bl - 1] == '/')
            base[--bl] = '\0';
    }
    return 0;
badhost:
    *err = xasprintf("URL '%s': bad host", url);
    return -1;
}

/* Find the end of the header block; returns the offset of the body or 0. */
static size_t header_end(const char *buf, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
            return i + 4;
    return 0;
}

/* De-chunk buf[0..n). 1 complete (*out malloc'd), 0 need more, -1 malformed. */
static int dechunk(const char *buf, size_t n, char **out, size_t *outlen, char **err)
{
    size_t pos = 0, cap = 0, len = 0;
    char *o = NULL;

    for (;;) {
        const char *nl = memchr(buf + pos, '\n', n - pos);
        char *end;
        unsigned long long sz;

        if (!nl)
            goto more;
        errno = 0;
        sz = strtoull(buf + pos, &end, 16);
        if (end == buf + pos || errno ||
            (*end != '\r' && *end != ';' && *end != '\n' && *end != ' ')) {
            *err = xasprintf("malformed chunk size at body offset %zu", pos);
            goto bad;
        }
        if (sz > CTL_HTTP_MAX_BODY || len + sz > CTL_HTTP_MAX_BODY) {
            *err = xasprintf("answer larger than %d bytes", CTL_HTTP_MAX_BODY);
            goto bad;
        }
        pos = (size_t)(nl - buf) + 1;
        if (sz == 0) {
            /* trailers, then an empty line */
            for (;;) {
                const char *t = memchr(buf + pos, '\n', n - pos);
                if (!t)
                    goto more;
                size_t ll = (size_t)(t - (buf + pos));
                pos = (size_t)(t - buf) + 1;
                if (ll == 0 || (ll == 1 && buf[pos - 2] == '\r'))
                    break;
            }
            break;
        }
        if (n - pos < sz + 2)
            goto more;
        if (len + sz + 1 > cap) {
            size_t nc = (len + sz + 1) * 2;
            char *no = realloc(o, nc);
            if (!no) {
                *err = xasprintf("out of memory");
                goto bad;
            }
            o = no;
            cap = nc;
        }
        memcpy(o + len, buf + pos, sz);
        len += sz;
        pos += sz;
        if (buf[pos] == '\r' && buf[pos + 1] == '\n')
            pos += 2;
        else if (buf[pos] == '\n')
            pos += 1;
        else {
            *err = xasprintf("chunk not followed by CRLF at body offset %zu", pos);
            goto bad;
        }
    }
    if (!o && !(o = malloc(1))) {
        *err = xasprintf("out of memory");
        return -1;
    }
    o[len] = '\0';
    *out = o;
    *outlen = len;
    return 1;
more:
    free(o);
    return 0;
bad:
    free(o);
    return -1;
}

int ctl_http_parse(const char *buf, size_t n, bool eof, struct ctl_http_resp *r, char **err)
{
    size_t hend, off = 0;
    long status;
    long long clen = -1;
    bool chunked = false;
    const char *p, *lim;

    memset(r, 0, sizeof(*r));
again:
    hend = header_end(buf + off, n - off);
    if (!hend) {
        if (n - off > 64 * 1024) {
            *err = xasprintf("answer headers larger than 64 KiB");
            return -1;
        }
        if (eof) {
            *err =
                xasprintf(n == off ? "server closed the connection without answering"
                                   : "server closed the connection in the middle of the headers");
            return -1;
        }
        return 0;
    }
    p = buf + off;
    lim = buf + off + hend;
    {
        int a, b;
        char sp;
        if (sscanf(p, "HTTP/%d.%d %3ld%c", &a, &b, &status, &sp) != 4 || a != 1 ||
            (sp != ' ' && sp != '\r') || status < 100 || status > 999) {
            *err = xasprintf("not an HTTP/1.x status line: '%.40s'", p);
            return -1;
        }
    }
    if (status >= 100 && status < 200) { /* interim answer: the real one follows */
        off += hend;
        goto again;
    }
    p = memchr(p, '\n', (size_t)(lim - p)) + 1;
    while (p < lim - 2) {
        const char *eol = memchr(p, '\n', (size_t)(lim - p));
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon) {
            *err = xasprintf("malformed header line '%.*s'",
                             (int)(eol - p - 1 > 60 ? 60 : eol - p - 1), p);
            return -1;
        }
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        if (nl == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
            char *e;
            long long cl;
            errno = 0;
            cl = strtoll(v, &e, 10);
            while (*e == ' ' || *e == '\t')
                e++;
            if (e == v || errno || cl < 0 || (*e != '\r' && *e != '\n') ||
                (clen >= 0 && clen != cl)) {
                *err =
                    xasprintf("bad Content-Length '%.*s'", (int)(eol - v > 30 ? 30 : eol - v), v);
                return -1;
            }
            clen = cl;
        } else if (nl == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
            const char *c = strcasestr(v, "chunked");
            if (c && c < eol)
                chunked = true;
        }
        p = eol + 1;
    }

    const char *body = buf + off + hend;
    size_t avail = n - off - hend;
    char *out = NULL;
    size_t outlen = 0;

    if (status == 204 || status == 304) {
        avail = 0;
        clen = 0;
        chunked = false;
    }
    if (chunked) {
        int rc = dechunk(body, avail, &out, &outlen, err);
        if (rc == -1)
            return -1;
        if (rc == 0) {
            if (eof) {
                *err = xasprintf("server closed the connection in the middle of a chunked answer");
                return -1;
            }
            return 0;
        }
    } else {
        size_t want;
        if (clen > CTL_HTTP_MAX_BODY || (clen < 0 && avail > CTL_HTTP_MAX_BODY)) {
            *err = xasprintf("answer larger than %d bytes", CTL_HTTP_MAX_BODY);
            return -1;
        }
        if (clen >= 0) {
            want = (size_t)clen;
            if (avail < want) {
                if (eof) {
                    *err = xasprintf("server closed the connection after %zu of %lld body bytes",
                                     avail, clen);
                    return -1;
                }
                return 0;
            }
        } else {
            if (!eof)
                return 0; /* no length: the body ends with the connection */
            want = avail;
        }
        out = malloc(want + 1);
        if (!out) {
            *err = xasprintf("out of memory");
            return -1;
        }
        memcpy(out, body, want);
        out[want] = '\0';
        outlen = want;
    }
    r->status = status;
    r->body = out;
    r->len = outlen;
    r->json = outlen ? json_loadb(out, outlen, JSON_DECODE_ANY, NULL) : NULL;
    return 1;
}

static int wait_fd(int fd, short ev, long long deadline)
{
    for (;;) {
        long long left = deadline - mono_now_ms();
        struct pollfd pfd = {.fd = fd, .events = ev};
        int rc;
        if (left <= 0)
            return 0;
        rc = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
        if (rc == -1 && errno == EINTR)
            continue;
        return rc; /* -1 error, 0 timeout, 1 ready */
    }
}

static int connect_to(const char *host, const char *port, long long deadline, char **err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int gai, fd = -1, saved = 0;

    gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        *err = xasprintf("cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd == -1) {
            saved = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS) {
            int rc = wait_fd(fd, POLLOUT, deadline), soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
                break;
            saved = rc == 0 ? ETIMEDOUT : (soerr ? soerr : errno);
        } else {
            saved = errno;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd == -1)
        *err = xasprintf("cannot connect to %s:%s: %s", host, port,
                         strerror(saved ? saved : ECONNREFUSED));
    return fd;
}

static int send_all(int fd, const char *buf, size_t n, long long deadline, char **err)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int rc = wait_fd(fd, POLLOUT, deadline);
                if (rc == 1)
                    continue;
                if (rc == 0)
                    *err = xasprintf("timed out sending the request");
                else
                    *err = xasprintf("sending the request: %s", strerror(errno));
                return -1;
            }
            *err = xasprintf("sending the request: %s", strerror(errno));
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* HTTPS: verification against the system CAs, or --cacert FILE; no
 * verification only with --insecure. */
static const char *g_cacert;
static bool g_insecure;

void ctl_http_tls_options(const char *cacert, bool insecure)
{
    g_cacert = cacert;
    g_insecure = insecure;
}

struct conn {
    int fd;
    gnutls_session_t s; /* NULL for plain http */
    gnutls_certificate_credentials_t cred;
};

static void conn_close(struct conn *c)
{
    if (c->s) {
        gnutls_bye(c->s, GNUTLS_SHUT_WR);
        gnutls_deinit(c->s);
    }
    if (c->cred)
        gnutls_certificate_free_credentials(c->cred);
    if (c->fd != -1)
        close(c->fd);
}

/* Waits for what GnuTLS needs next (read or write), within the deadline. */
static int tls_wait(struct conn *c, long long deadline)
{
    return wait_fd(c->fd, gnutls_record_get_direction(c->s) ? POLLOUT : POLLIN, deadline);
}

static int tls_start(struct conn *c, const char *host, long long deadline, char **err)
{
    int rc = gnutls_certificate_allocate_credentials(&c->cred);
    if (rc >= 0)
        rc = g_cacert
                 ? gnutls_certificate_set_x509_trust_file(c->cred, g_cacert, GNUTLS_X509_FMT_PEM)
                 : gnutls_certificate_set_x509_system_trust(c->cred);
    if (rc < 0 || (g_cacert && rc == 0)) {
        *err = xasprintf("TLS: CA certificates from %s: %s", g_cacert ? g_cacert : "the system",
                         rc < 0 ? gnutls_strerror(rc) : "none found");
        return -1;
    }
    rc = gnutls_init(&c->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
    if (rc >= 0)
        rc = gnutls_set_default_priority(c->s);
    if (rc >= 0)
        rc = gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, c->cred);
    if (rc < 0) {
        *err = xasprintf("TLS setup: %s", gnutls_strerror(rc));
        return -1;
    }
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    if (!is_ip)
        gnutls_server_name_set(c->s, GNUTLS_NAME_DNS, host, strlen(host));
    if (!g_insecure)
        gnutls_session_set_verify_cert(c->s, host, 0);
    gnutls_transport_set_int(c->s, c->fd);
    for (;;) {
        rc = gnutls_handshake(c->s);
        if (rc == 0)
            return 0;
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            int w = tls_wait(c, deadline);
            if (w == 1)
                continue;
            *err = xasprintf("TLS handshake with %s: %s", host, w == 0 ? "timed out" : "poll");
            return -1;
        }
        if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
            gnutls_datum_t txt = {0};
            unsigned st = gnutls_session_get_verify_cert_status(c->s);
            gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &txt, 0);
            *err = xasprintf("TLS: the certificate of %s is not trusted: %s (--cacert FILE, or "
                             "--insecure to skip the check)",
                             host, txt.data ? (char *)txt.data : "verification failed");
            gnutls_free(txt.data);
            return -1;
        }
        if (gnutls_error_is_fatal(rc)) {
            *err = xasprintf("TLS handshake with %s: %s", host, gnutls_strerror(rc));
            return -1;
        }
    }
}

static int conn_send(struct conn *c, const char *buf, size_t n, long long deadline, char **err)
{
    if (!c->s)
        return send_all(c->fd, buf, n, deadline, err);
    while (n > 0) {
        ssize_t w = gnutls_record_send(c->s, buf, n);
        if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
            int rc = tls_wait(c, deadline);
            if (rc == 1)
                continue;
            *err = xasprintf("%s", rc == 0 ? "timed out sending the request" : "poll");
            return -1;
        }
        if (w < 0) {
            *err = xasprintf("sending the request: %s", gnutls_strerror((int)w));
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* recv(2) semantics: bytes, 0 at the end, -1 with errno (EAGAIN: wait). */
static ssize_t conn_recv(struct conn *c, char *buf, size_t n)
{
    if (!c->s)
        return recv(c->fd, buf, n, 0);
    ssize_t r = gnutls_record_recv(c->s, buf, n);
    if (r >= 0)
        return r;
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
        errno = EAGAIN;
        return -1;
    }
    if (r == GNUTLS_E_PREMATURE_TERMINATION)
        return 0; /* servers often close without close_notify */
    errno = EPROTO;
    return -1;
}

int ctl_http_request(const char *url, const char *key, const char *method, const char *path,
                     const char *body, size_t body_len, int timeout_ms, struct ctl_http_resp *r,
                     char **err)
{
    char host[256], port[16], base[256];
    char *req = NULL, *buf = NULL, *e = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    struct conn cn = {.fd = -1};
    long long deadline = mono_now_ms() + (timeout_ms > 0 ? timeout_ms : CTL_HTTP_TIMEOUT_MS);
    bool with_len =
        body || !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH");

    memset(r, 0, sizeof(*r));
    *err = NULL;
    if (ctl_http_parse_url(url, host, sizeof(host), port, sizeof(port), base, sizeof(base), err) ==
        -1)
        return -1;
    if (key && strpbrk(key, "\r\n")) {
        *err = xasprintf("the access key contains a line break");
        return -1;
    }
    if (strpbrk(path, " \r\n")) {
        *err = xasprintf("request path '%s' contains a space or line break", path);
        return -1;
    }
    if (asprintf(&req,
                 "%s %s%s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: tandemctl/%s\r\n"
                 "Accept: application/json\r\nConnection: close\r\n%s%s%s",
                 method, base, path, strchr(host, ':') ? "[" : "", host,
                 strchr(host, ':') ? "]" : "", port, TANDEM_VERSION,
                 key && *key ? "Authorization: Bearer " : "", key && *key ? key : "",
                 key && *key ? "\r\n" : "") == -1) {
        *err = xasprintf("out of memory");
        return -1;
    }
    {
        char *full = NULL;
        int ok =
            with_len
                ? asprintf(&full, "%sContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                           req, body ? body_len : 0)
                : asprintf(&full, "%s\r\n", req);
        free(req);
        req = ok == -1 ? NULL : full;
        if (!req) {
            *err = xasprintf("out of memory");
            return -1;
        }
    }

    cn.fd = connect_to(host, port, deadline, err);
    if (cn.fd == -1)
        goto out;
    if (strncasecmp(url, "https://", 8) == 0 && tls_start(&cn, host, deadline, err) == -1)
        goto out;
    if (conn_send(&cn, req, strlen(req), deadline, &e) == -1 ||
        (body && body_len && conn_send(&cn, body, body_len, deadline, &e) == -1)) {
        *err = xasprintf("%s %s%s at %s:%s: %s", method, base, path, host, port, e);
        goto out;
    }
    for (;;) {
        ssize_t got;
        int prc;

        if (cap - n < 16384) {
            size_t nc = cap ? cap * 2 : 65536;
            char *nb;
            if (nc > (size_t)CTL_HTTP_MAX_BODY + 128 * 1024) {
                *err = xasprintf("answer from %s:%s larger than %d bytes", host, port,
                                 CTL_HTTP_MAX_BODY);
                goto out;
            }
            nb = realloc(buf, nc);
            if (!nb) {
                *err = xasprintf("out of memory");
                goto out;
            }
            buf = nb;
            cap = nc;
        }
        got = conn_recv(&cn, buf + n, cap - n);
        if (got == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                prc = cn.s ? tls_wait(&cn, deadline) : wait_fd(cn.fd, POLLIN, deadline);
                if (prc == 1)
                    continue;
                if (prc == 0)
                    *err = xasprintf("no complete answer from %s:%s to %s %s%s within %d s", host,
                                     port, method, base, path,
                                     (timeout_ms > 0 ? timeout_ms : CTL_HTTP_TIMEOUT_MS) / 1000);
                else
                    *err = xasprintf("waiting for %s:%s: %s", host, port, strerror(errno));
                goto out;
            }
            *err = xasprintf("reading the answer from %s:%s: %s", host, port, strerror(errno));
            goto out;
        }
        n += (size_t)got;
        prc = ctl_http_parse(buf, n, got == 0, r, &e);
        if (prc == 1)
            break;
        if (prc == -1) {
            *err = xasprintf("bad answer from %s:%s to %s %s%s: %s", host, port, method, base, path,
                             e);
            goto out;
        }
    }
    rc = 0;
out:
    free(e);
    free(req);
    free(buf);
    conn_close(&cn);
    return rc;
}

int ctl_http(struct ctl *c, const char *method, const char *path, json_t *body, long *status,
             json_t **resp, char **err)
{
    struct ctl_http_resp r;
    char *b = NULL;
    int rc;

    *resp = NULL;
    *status = 0;
    if (body && !(b = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY))) {
        *err = xasprintf("cannot encode the request body as JSON");
        return -1;
    }
    rc = ctl_http_request(c->url, c->key, method, path, b, b ? strlen(b) : 0, CTL_HTTP_TIMEOUT_MS,
                          &r, err);
    free(b);
    if (rc == -1)
        return -1;
    *status = r.status;
    *resp = r.json;
    r.json = NULL;
    ctl_http_resp_free(&r);
    return 0;
}

int ctl_report_error(struct ctl *c, long status, json_t *resp, const char *err)
{
    const char *reason = NULL, *message = NULL;
    int code;

    if (err) {
        if (c->json) {
            json_t *o =
                json_pack("{s:b,s:s,s:s}", "ok", 0, "reason", "EUnreachable", "message", err);
            char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
            if (s)
                printf("%s\n", s);
            free(s);
            json_decref(o);
        } else {
            fprintf(stderr, "tandemctl: %s\n", err);
        }
        return CTL_UNREACHABLE;
    }
    /* 503 is the server saying its backend (Redis/MariaDB) is down */
    code = status == 503 ? CTL_UNREACHABLE : CTL_REFUSED;
    if (json_is_object(resp)) {
        reason = json_string_value(json_object_get(resp, "reason"));
        message = json_string_value(json_object_get(resp, "message"));
    }
    if (c->json) {
        char *s = NULL;
        if (json_is_object(resp) && json_object_get(resp, "ok")) {
            s = json_dumps(resp, JSON_COMPACT);
        } else {
            json_t *o = json_pack("{s:b,s:I,s:s,s:s}", "ok", 0, "error", (json_int_t)status,
                                  "reason", reason ? reason : "EUnexpectedAnswer", "message",
                                  message ? message : "the server did not answer with JSON");
            s = o ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
        }
        if (s)
            printf("%s\n", s);
        free(s);
    } else {
        fprintf(stderr, "tandemctl: HTTP %ld%s%s%s%s\n", status, reason ? " " : "",
                reason ? reason : "", (message && *message) ? ": " : "",
                (message && *message) ? message : "");
        if (json_is_object(resp)) {
            const char *tb = json_string_value(json_object_get(resp, "traceback"));
            json_t *detail = json_object_get(resp, "detail");
            if (!tb && json_is_object(detail))
                tb = json_string_value(json_object_get(detail, "traceback"));
            if (tb && *tb)
                fprintf(stderr, "%s%s", tb, tb[strlen(tb) - 1] == '\n' ? "" : "\n");
        } else if (!resp) {
            fprintf(stderr, "tandemctl: (the answer was not JSON)\n");
        }
    }
    return code;
}
