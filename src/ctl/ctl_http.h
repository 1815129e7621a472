/* The lower layer of tandemctl's HTTP client (ctl_http.c). ctl_http() in
 * ctl.h is the everyday entry point; these add a per-request timeout, raw
 * bodies, and expose the response parser for tests/unit/test_ctl_http.c. */
#ifndef TANDEM_CTL_HTTP_H
#define TANDEM_CTL_HTTP_H

#include <stddef.h>
#include <stdbool.h>
#include <jansson.h>

#define CTL_HTTP_TIMEOUT_MS 60000            /* default whole-request timeout */
#define CTL_HTTP_MAX_BODY (64 * 1024 * 1024) /* refuse larger answers */

struct ctl_http_resp {
    long status;  /* 200, 404, ... */
    char *body;   /* decoded body (de-chunked), NUL-terminated, malloc'd */
    size_t len;   /* body length without the NUL */
    json_t *json; /* body parsed as JSON, or NULL if it is not JSON */
};

void ctl_http_resp_free(struct ctl_http_resp *r);

/* https://: verify against cacert (a PEM file) instead of the system's CAs;
 * insecure skips verification (only when the operator asks). */
void ctl_http_tls_options(const char *cacert, bool insecure);

/* url: "http[s]://host[:port][/base]". key: bearer secret or NULL/"".
 * body: request body or NULL (sent as application/json). timeout_ms bounds
 * connect + send + the whole answer. 0 with *r on any HTTP answer, -1 with
 * *err (malloc'd, says what failed and where) on a transport failure. */
int ctl_http_request(const char *url, const char *key, const char *method, const char *path,
                     const char *body, size_t body_len, int timeout_ms, struct ctl_http_resp *r,
                     char **err);

/* Parse a (possibly partial) HTTP/1.x response held in buf[0..n). eof says
 * the peer closed the connection. Returns 1 when complete (fills *r, caller
 * frees), 0 if more bytes are needed, -1 with *err if malformed. */
int ctl_http_parse(const char *buf, size_t n, bool eof, struct ctl_http_resp *r, char **err);

/* Split "http://host:port/base" into parts. -1 with *err if not http://. */
int ctl_http_parse_url(const char *url, char *host, size_t hostn, char *port, size_t portn,
                       char *base, size_t basen, char **err);

#endif
