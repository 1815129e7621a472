/* Fuzz a multipart/form-data upload -> kwargs and kwargs.files of the
 * Sync/Async APIs (api_multipart_data), through the real libmicrohttpd post
 * processor the server uses: it needs a live connection (it reads the
 * boundary from the request's headers), so one in-process daemon without a
 * listening socket gets each input as one HTTP request over a socketpair
 * (MHD_add_connection), and its handler runs the parse.
 * Any bytes must give either an answered 400/500, or an object of UTF-8
 * string fields and a files array of at most 64 entries, entry i naming
 * "<upload dir>/i" (never the client's file name), a file whose size on
 * disk is the entry's size, with no other file in that directory.
 * Input: byte 0 picks the Content-Type (boundary forms), the rest is the
 * body. libFuzzer:  bench/fuzz multipart      Replay: fuzz-multipart FILE... */
#include <assert.h>
#include <dirent.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const content_types[] = {
    "multipart/form-data; boundary=XyZ",
    "multipart/form-data; boundary=\"XyZ\"",
    "multipart/form-data; charset=utf-8; boundary=XyZ",
    "Multipart/Form-Data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
    "multipart/form-data",
    "multipart/form-data; boundary=",
};
#define NCT (sizeof content_types / sizeof content_types[0])
/* a request must fit the socket's buffer: it is written before MHD reads */
#define MAX_BODY (128 * 1024)

static char run_dir[64];

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

static void at_exit(void)
{
    char up[128];
    snprintf(up, sizeof up, "%s/uploads", run_dir);
    rm_dir(up);
    rmdir(run_dir);
}

/* The checks of one parse, on the daemon's thread (assert aborts the run). */
static void check(struct srv_req *r)
{
    json_t *files = NULL;
    char dir[512] = "";
    json_t *fields = api_multipart_data(r, &files, dir, sizeof dir);
    if (!fields) {
        assert(r->answered && (r->status == 400 || r->status == 500));
    } else {
        assert(json_is_object(fields) && !r->answered && json_is_array(files) && dir[0]);
        const char *k;
        json_t *v;
        json_object_foreach(fields, k, v) assert(json_is_string(v));
        assert(json_array_size(files) <= 64);
        size_t i;
        json_array_foreach(files, i, v)
        {
            char want[600];
            snprintf(want, sizeof want, "%s/%zu", dir, i);
            const char *path = json_string_value(json_object_get(v, "filePath"));
            assert(path && strcmp(path, want) == 0);
            assert(json_is_string(json_object_get(v, "originalname")));
            assert(json_is_string(json_object_get(v, "mimetype")));
            assert(json_is_string(json_object_get(v, "encoding")));
            struct stat st;
            assert(stat(path, &st) == 0 && S_ISREG(st.st_mode));
            assert(json_integer_value(json_object_get(v, "size")) == (json_int_t)st.st_size);
        }
        size_t n = 0;
        DIR *d = opendir(dir);
        assert(d);
        struct dirent *e;
        while ((e = readdir(d)))
            n += e->d_name[0] != '.';
        closedir(d);
        assert(n == json_array_size(files));
        /* kwargs as api_proceed makes it: the fields, plus files */
        json_object_set(fields, "files", files);
        assert(json_object_get(fields, "files") == files);
    }
    if (dir[0])
        rm_dir(dir);
    json_decref(fields);
    json_decref(files);
}

struct body {
    char *buf;
    size_t len;
};

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct body *b = *con_cls;
    if (!b) {
        *con_cls = b = calloc(1, sizeof *b);
        return b ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        char *nb = realloc(b->buf, b->len + *upload_size + 1);
        if (!nb)
            return MHD_NO;
        memcpy(nb + b->len, upload, *upload_size);
        b->buf = nb;
        b->len += *upload_size;
        b->buf[b->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    struct srv_req r;
    memset(&r, 0, sizeof r);
    r.conn = conn;
    r.method = method;
    r.path = url;
    r.body = b->buf;
    r.body_len = b->len;
    if (r.body_len)
        check(&r);
    if (r.resp)
        MHD_destroy_response(r.resp);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ok = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return ok;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    struct body *b = *con_cls;
    if (b) {
        free(b->buf);
        free(b);
        *con_cls = NULL;
    }
}

static struct MHD_Daemon *daemon_once(void)
{
    static struct MHD_Daemon *d;
    if (d)
        return d;
    /* uploads go under paths.run: a directory of our own, not /run/tandem */
    snprintf(run_dir, sizeof run_dir, "/tmp/fuzz-multipart-XXXXXX");
    if (!mkdtemp(run_dir))
        abort();
    snprintf(S.conf.run_dir, sizeof S.conf.run_dir, "%s", run_dir);
    atexit(at_exit);
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC,
                         0, NULL, NULL, handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)5, MHD_OPTION_END);
    if (!d)
        abort();
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size - 1 > MAX_BODY)
        return 0;
    struct MHD_Daemon *d = daemon_once();
    char *req = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&req, &n);
    if (!f)
        return 0;
    fprintf(f,
            "POST /api/v1/async/fuzz HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
            "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
            content_types[data[0] % NCT], size - 1);
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
        abort();
    int buf = 4 * MAX_BODY;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    struct sockaddr_in peer = {
        .sin_family = AF_INET, .sin_port = htons(1), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (MHD_add_connection(d, sv[1], (struct sockaddr *)&peer, sizeof peer) != MHD_YES)
        abort();
    /* the request, then read the answer until MHD closes the connection:
     * by then the handler (and its checks) has run */
    for (size_t done = 0; done < n;) {
        ssize_t w = send(sv[0], req + done, n - done, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* MHD refused the request early and closed */
        done += (size_t)w;
    }
    free(req);
    char sink[4096];
    while (read(sv[0], sink, sizeof sink) > 0)
        ;
    close(sv[0]);
    return 0;
}

#include "fuzz_replay.h"
