/* tandemctl's HTTP client: the response parser on canned bytes, and whole
 * requests against a tiny in-process server on a loopback socket. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_http.h"

static int parse_all(const char *s, bool eof, struct ctl_http_resp *r, char **err)
{
    *err = NULL;
    return ctl_http_parse(s, strlen(s), eof, r, err);
}

static void test_ctl_http_parse_content_length(void **state)
{
    struct ctl_http_resp r;
    char *err;
    const char *full =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 11\r\n\r\n"
        "{\"ok\":true}";
    (void)state;
    assert_int_equal(parse_all(full, false, &r, &err), 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 11);
    assert_non_null(r.json);
    assert_true(json_is_true(json_object_get(r.json, "ok")));
    ctl_http_resp_free(&r);

    /* every proper prefix needs more bytes */
    for (size_t n = 0; n < strlen(full); n++) {
        err = NULL;
        assert_int_equal(ctl_http_parse(full, n, false, &r, &err), 0);
    }
    /* ... and a close before the body is complete is an error, not a short body */
    err = NULL;
    assert_int_equal(ctl_http_parse(full, strlen(full) - 3, true, &r, &err), -1);
    assert_non_null(strstr(err, "closed"));
    free(err);
}

static void test_ctl_http_parse_chunked(void **state)
{
    struct ctl_http_resp r;
    char *err;
    const char *full = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5;ext=1\r\n{\"ok\"\r\n"
                       "B\r\n:false,\"x\":\r\n"
                       "2\r\n1}\r\n"
                       "0\r\nX-Trailer: y\r\n\r\n";
    (void)state;
    assert_int_equal(parse_all(full, false, &r, &err), 1);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"ok\":false,\"x\":1}");
    assert_int_equal(json_integer_value(json_object_get(r.json, "x")), 1);
    ctl_http_resp_free(&r);
    for (size_t n = 0; n < strlen(full); n++) {
        err = NULL;
        assert_int_equal(ctl_http_parse(full, n, false, &r, &err), 0);
    }
    assert_int_equal(
        parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, &r, &err),
        -1);
    assert_non_null(strstr(err, "chunk"));
    free(err);
}

static void test_ctl_http_parse_until_eof_interim_and_nobody(void **state)
{
    struct ctl_http_resp r;
    char *err;
    (void)state;
    /* no length: the body runs to the close */
    assert_int_equal(parse_all("HTTP/1.0 200 OK\r\n\r\nhello", false, &r, &err), 0);
    assert_int_equal(parse_all("HTTP/1.0 200 OK\r\n\r\nhello", true, &r, &err), 1);
    assert_string_equal(r.body, "hello");
    assert_null(r.json); /* not JSON */
    ctl_http_resp_free(&r);
    /* a 100 Continue is skipped */
    assert_int_equal(
        parse_all(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n[]",
            false, &r, &err),
        1);
    assert_int_equal(r.status, 201);
    assert_true(json_is_array(r.json));
    ctl_http_resp_free(&r);
    /* 204 has no body whatever follows */
    assert_int_equal(parse_all("HTTP/1.1 204 No Content\r\n\r\n", false, &r, &err), 1);
    assert_int_equal(r.len, 0);
    ctl_http_resp_free(&r);
}

static void test_ctl_http_parse_rejects_garbage(void **state)
{
    struct ctl_http_resp r;
    char *err;
    (void)state;
    assert_int_equal(parse_all("SSH-2.0-OpenSSH\r\n\r\n", false, &r, &err), -1);
    assert_non_null(strstr(err, "status line"));
    free(err);
    assert_int_equal(parse_all("HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n", false, &r, &err),
                     -1);
    assert_non_null(strstr(err, "Content-Length"));
    free(err);
    assert_int_equal(
        parse_all("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", false, &r,
                  &err),
        -1);
    free(err);
    assert_int_equal(parse_all("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", false, &r, &err), -1);
    free(err);
    assert_int_equal(parse_all("", true, &r, &err), -1);
    assert_non_null(strstr(err, "without answering"));
    free(err);
}

static void test_ctl_http_parse_url(void **state)
{
    char h[64], p[8], b[64], *err = NULL;
    (void)state;
    assert_int_equal(
        ctl_http_parse_url("http://127.0.0.1:8088", h, sizeof(h), p, sizeof(p), b, sizeof(b), &err),
        0);
    assert_string_equal(h, "127.0.0.1");
    assert_string_equal(p, "8088");
    assert_string_equal(b, "");
    assert_int_equal(
        ctl_http_parse_url("http://[::1]:9/base/", h, sizeof(h), p, sizeof(p), b, sizeof(b), &err),
        0);
    assert_string_equal(h, "::1");
    assert_string_equal(p, "9");
    assert_string_equal(b, "/base");
    assert_int_equal(
        ctl_http_parse_url("http://vip", h, sizeof(h), p, sizeof(p), b, sizeof(b), &err), 0);
    assert_string_equal(p, "80");
    assert_int_equal(
        ctl_http_parse_url("https://vip.example", h, sizeof(h), p, sizeof(p), b, sizeof(b), &err),
        0);
    assert_string_equal(p, "443");
    const char *bad[] = {"https://",       "ftp://x",     "http://", "http://x:0",
                         "http://x:99999", "http://x:1a", "",        NULL};
    for (int i = 0; bad[i]; i++) {
        err = NULL;
        assert_int_equal(ctl_http_parse_url(bad[i], h, sizeof(h), p, sizeof(p), b, sizeof(b), &err),
                         -1);
        assert_non_null(err);
        free(err);
    }
}

/* --- the in-process server --------------------------------------------- */

struct srv {
    int lfd;
    int port;
    const char *answer; /* written byte by byte; NULL = never answer */
    char req[8192];     /* what the client sent */
    size_t reqlen;
};

static void *serve_one(void *arg)
{
    struct srv *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd == -1)
        return NULL;
    /* read headers and, if announced, the body */
    for (;;) {
        ssize_t n = read(fd, s->req + s->reqlen, sizeof(s->req) - 1 - s->reqlen);
        if (n <= 0)
            break;
        s->reqlen += (size_t)n;
        s->req[s->reqlen] = '\0';
        char *he = strstr(s->req, "\r\n\r\n");
        if (he) {
            char *cl = strcasestr(s->req, "Content-Length:");
            size_t want = cl ? (size_t)atol(cl + 15) : 0;
            if (s->reqlen >= (size_t)(he + 4 - s->req) + want)
                break;
        }
    }
    if (s->answer) {
        for (const char *p = s->answer; *p;
             p++) /* the worst case for a parser: one byte per read */
            if (write(fd, p, 1) != 1)
                break;
    } else {
        usleep(800 * 1000);
    }
    close(fd);
    return NULL;
}

static void srv_start(struct srv *s, pthread_t *th, const char *answer)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    memset(s, 0, sizeof(*s));
    s->answer = answer;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_not_equal(s->lfd, -1);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 4), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(th, NULL, serve_one, s), 0);
}

static void test_ctl_http_request_roundtrip(void **state)
{
    struct srv s;
    pthread_t th;
    struct ctl c;
    json_t *body = json_pack("{s:s}", "name", "ops"), *resp = NULL;
    long status;
    char *err = NULL;
    (void)state;

    srv_start(&s, &th,
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              "19\r\n{\"ok\":true,\"data\":\"pong\"}\r\n0\r\n\r\n");
    memset(&c, 0, sizeof(c));
    snprintf(c.url, sizeof(c.url), "http://127.0.0.1:%d/", s.port);
    snprintf(c.key, sizeof(c.key), "tk_secret");
    assert_int_equal(ctl_http(&c, "POST", "/api/v1/access-keys/do/add", body, &status, &resp, &err),
                     0);
    pthread_join(th, NULL);
    close(s.lfd);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(resp, "data")), "pong");
    assert_non_null(strstr(s.req, "POST /api/v1/access-keys/do/add HTTP/1.1\r\n"));
    assert_non_null(strstr(s.req, "Authorization: Bearer tk_secret\r\n"));
    assert_non_null(strstr(s.req, "Content-Length: 14\r\n"));
    assert_non_null(strstr(s.req, "\r\n\r\n{\"name\":\"ops\"}"));
    json_decref(body);
    json_decref(resp);
}

static void test_ctl_http_request_timeout_and_refused(void **state)
{
    struct srv s;
    pthread_t th;
    struct ctl_http_resp r;
    char url[64], *err = NULL;
    int port;
    (void)state;

    srv_start(&s, &th, NULL); /* accepts, never answers */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
    assert_int_equal(ctl_http_request(url, NULL, "GET", "/api/v1/health", NULL, 0, 300, &r, &err),
                     -1);
    assert_non_null(strstr(err, "no complete answer"));
    free(err);
    pthread_join(th, NULL);
    port = s.port;
    close(s.lfd); /* now nobody listens there */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    err = NULL;
    assert_int_equal(ctl_http_request(url, NULL, "GET", "/", NULL, 0, 1000, &r, &err), -1);
    assert_non_null(strstr(err, "cannot connect"));
    free(err);
    /* a key with a line break would inject headers */
    err = NULL;
    assert_int_equal(ctl_http_request(url, "a\r\nX: y", "GET", "/", NULL, 0, 1000, &r, &err), -1);
    assert_non_null(strstr(err, "line break"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctl_http_parse_content_length),
        cmocka_unit_test(test_ctl_http_parse_chunked),
        cmocka_unit_test(test_ctl_http_parse_until_eof_interim_and_nobody),
        cmocka_unit_test(test_ctl_http_parse_rejects_garbage),
        cmocka_unit_test(test_ctl_http_parse_url),
        cmocka_unit_test(test_ctl_http_request_roundtrip),
        cmocka_unit_test(test_ctl_http_request_timeout_and_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
