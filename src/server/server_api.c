/* Sync/Async API calls as DataFlux Func serves them:
 *   /api/v1/sync/<id>[/<format>[/<anything>]] (alias al), /api/v1/async/... (alias bat)
 * format normal (GET ?kwargs=<json>, POST {"kwargs":{..}}) or simplified / s
 * (query args, a flat JSON or form body); a text body gives kwargs.text, any
 * other non-JSON body kwargs.base64, a multipart upload kwargs.files (files
 * in <paths.run>/uploads, removed when a sync call ends, swept later for
 * async ones).
 *
 * Order of the checks (DFF's, plus parsing first so API Auth can read the
 * body): API exists → request parsed → API Auth (fixed field, Basic, Digest,
 * or an auth func run as a task: the request suspends and resumes here) →
 * disabled → expired → fixed kwargs merged → throttling and the queue-depth
 * cap (one Redis round trip) → enqueue. A Sync API answers the func's value
 * raw (DFF.RESP controls status, content type, headers, downloads); its
 * failures give reason and message only — the traceback stays in the task
 * record, never with an unauthenticated caller. */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include "clock.h"
#include "log.h"
#include "rds.h"
#include "server_int.h"
#include "util.h"

#define UPLOAD_SWEEP_EVERY_MS 60000
#define UPLOAD_MAX_FILES 64

/* ---- DFF's fixed kwargs and placeholders ----------------------------------- */

static bool is_placeholder(json_t *v)
{
    const char *s = json_string_value(v);
    return s && (strcmp(s, "INPUT_BY_CALLER") == 0 || strcmp(s, "FROM_PARAMETER") == 0);
}

int api_kwargs_merge(json_t *base, json_t *input, const char **bad_field)
{
    const char *k;
    json_t *v;
    json_object_foreach(input, k, v)
    {
        json_t *b = json_object_get(base, k);
        if (b && !is_placeholder(b)) {
            *bad_field = k;
            return -1;
        }
    }
    void *tmp;
    json_object_foreach_safe(base, tmp, k, v)
    {
        if (is_placeholder(v) && !json_object_get(input, k))
            json_object_del(base, k); /* not given: the func's default applies */
    }
    json_object_update(base, input);
    return 0;
}

/* ---- content types --------------------------------------------------------- */

static const struct {
    const char *name, *mime;
} MIMES[] = {
    {"json", "application/json"},
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"text", "text/plain; charset=utf-8"},
    {"txt", "text/plain; charset=utf-8"},
    {"xml", "application/xml"},
    {"csv", "text/csv; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"js", "application/javascript"},
    {"css", "text/css"},
    {"yaml", "application/yaml"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"png", "image/png"},
    {"gif", "image/gif"},
    {"svg", "image/svg+xml"},
    {"ico", "image/x-icon"},
    {"webp", "image/webp"},
    {"bmp", "image/bmp"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"xls", "application/vnd.ms-excel"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"bin", "application/octet-stream"},
};

const char *api_mime_of(const char *ct)
{
    if (!ct || !*ct)
        return NULL;
    if (strchr(ct, '/'))
        return ct;
    for (size_t i = 0; i < sizeof MIMES / sizeof MIMES[0]; i++)
        if (strcasecmp(MIMES[i].name, ct) == 0)
            return MIMES[i].mime;
    return NULL;
}

const char *api_mime_of_filename(const char *name)
{
    const char *dot = name ? strrchr(name, '.') : NULL;
    const char *m = dot ? api_mime_of(dot + 1) : NULL;
    return m && !strchr(dot + 1, '/') ? m : "application/octet-stream";
}

/* ---- per-request state ------------------------------------------------------ */

enum api_stage { STAGE_AUTH, STAGE_CALL };

struct api_ctx {
    struct srv_cache *c; /* held until the request ends: api points into it */
    json_t *api;
    const char *id;
    bool async;
    enum api_stage stage;
    json_t *data;    /* the request's parsed data: query args or body (object) */
    json_t *kwargs;  /* the caller's kwargs */
    json_t *files;   /* uploads (array) or NULL */
    json_t *options; /* normal form's options, or NULL */
    char upload_dir[512];
    bool keep_uploads; /* async: the worker reads them later */
};

static void rm_upload_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            unlinkat(dirfd(d), e->d_name, 0); /* no path to build or cut */
        }
        closedir(d);
    }
    rmdir(dir);
}

static void api_cleanup(struct srv_req *r)
{
    struct api_ctx *x = r->call_ctx;
    if (!x)
        return;
    if (x->upload_dir[0] && !x->keep_uploads)
        rm_upload_dir(x->upload_dir);
    json_decref(x->data);
    json_decref(x->kwargs);
    json_decref(x->files);
    json_decref(x->options);
    srv_cache_put(x->c);
    free(x);
    r->call_ctx = NULL;
}

/* ---- uploads ---------------------------------------------------------------- */

static void upload_base(char *buf, size_t n)
{
    snprintf(buf, n, "%s/uploads", srv_conf()->run_dir);
    if (mkdir(buf, 0700) == 0 || errno == EEXIST)
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, n, "%s/tandem-uploads", tmp && *tmp ? tmp : "/tmp");
    mkdir(buf, 0700);
}

/* Async uploads live until the worker has had its chance: remove upload dirs
 * older than server.async_timeout + 10 min, at most once a minute. */
static void upload_sweep(const char *base)
{
    static atomic_llong last;
    long long now = mono_ms(), prev = atomic_load(&last);
    if (prev && now - prev < UPLOAD_SWEEP_EVERY_MS)
        return;
    if (!atomic_compare_exchange_strong(&last, &prev, now))
        return;
    DIR *d = opendir(base);
    if (!d)
        return;
    time_t cutoff = time(NULL) - srv_conf()->async_timeout - 600;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "up-", 3) != 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", base, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode) && st.st_mtime < cutoff)
            rm_upload_dir(p);
    }
    closedir(d);
}

struct mp_state {
    struct api_ctx *x;
    json_t *fields;
    char err[256];
    int fd;      /* the file being written, -1 none */
    json_t *cur; /* its descriptor in x->files */
    char *fval;  /* the field value being collected */
    size_t fval_n;
    char fkey[256];
};

static void mp_flush_field(struct mp_state *m)
{
    if (!m->fval)
        return;
    json_t *v = json_stringn(m->fval, m->fval_n);
    if (v)
        json_object_set_new(m->fields, m->fkey, v);
    else
        snprintf(m->err, sizeof m->err, "form field '%.64s' is not UTF-8", m->fkey);
    free(m->fval);
    m->fval = NULL;
    m->fval_n = 0;
}

static void mp_close_file(struct mp_state *m)
{
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    m->cur = NULL;
}

static enum MHD_Result mp_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size)
{
    (void)kind;
    (void)transfer_encoding;
    struct mp_state *m = cls;
    if (!key)
        key = "";
    if (!filename) {
        if (off == 0 || !m->fval || strcmp(m->fkey, key) != 0) {
            mp_flush_field(m);
            mp_close_file(m);
            snprintf(m->fkey, sizeof m->fkey, "%s", key);
            m->fval = calloc(1, 1);
        }
        char *nv = m->fval ? realloc(m->fval, m->fval_n + size + 1) : NULL;
        if (!nv) {
            snprintf(m->err, sizeof m->err, "out of memory");
            return MHD_NO;
        }
        memcpy(nv + m->fval_n, data, size);
        m->fval = nv;
        m->fval_n += size;
        return MHD_YES;
    }
    if (off == 0 || !m->cur) {
        mp_flush_field(m);
        mp_close_file(m);
        if (json_array_size(m->x->files) >= UPLOAD_MAX_FILES) {
            snprintf(m->err, sizeof m->err, "more than %d files in one upload", UPLOAD_MAX_FILES);
            return MHD_NO;
        }
        char path[1024];
        /* stored under a number: the client's file name never becomes a path */
        snprintf(path, sizeof path, "%s/%zu", m->x->upload_dir, json_array_size(m->x->files));
        /* the descriptor first: a part whose Content-Type or encoding is not
         * UTF-8 cannot be described in kwargs.files, so it is refused, not
         * stored on disk and left out (found by tests/fuzz/fuzz-multipart) */
        json_t *orig = json_string(filename);
        json_t *desc = json_pack("{s:s,s:o,s:s,s:s,s:I}", "filePath", path, "originalname",
                                 orig ? orig : json_string("upload"), "encoding",
                                 transfer_encoding ? transfer_encoding : "7bit", "mimetype",
                                 content_type ? content_type : "application/octet-stream", "size",
                                 (json_int_t)0);
        if (!desc) {
            snprintf(m->err, sizeof m->err,
                     "file part %zu: its Content-Type or Content-Transfer-Encoding is not UTF-8",
                     json_array_size(m->x->files) + 1);
            return MHD_NO;
        }
        m->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (m->fd < 0) {
            json_decref(desc);
            snprintf(m->err, sizeof m->err, "cannot store the upload: %s", strerror(errno));
            return MHD_NO;
        }
        m->cur = desc;
        json_array_append_new(m->x->files, m->cur);
    }
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(m->fd, data + done, size - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(m->err, sizeof m->err, "cannot store the upload: %s", strerror(errno));
            return MHD_NO;
        }
        done += (size_t)w;
    }
    json_object_set_new(
        m->cur, "size",
        json_integer(json_integer_value(json_object_get(m->cur, "size")) + (json_int_t)size));
    return MHD_YES;
}

/* multipart/form-data: fields → object, files → x->files. NULL after answering. */
static json_t *parse_multipart(struct srv_req *r, struct api_ctx *x)
{
    char base[400];
    upload_base(base, sizeof base);
    upload_sweep(base);
    snprintf(x->upload_dir, sizeof x->upload_dir, "%s/up-XXXXXX", base);
    if (!mkdtemp(x->upload_dir)) {
        x->upload_dir[0] = '\0';
        req_err(r, 500, "EServerInternal", NULL, "cannot create an upload directory in %s: %s",
                base, strerror(errno));
        return NULL;
    }
    x->files = json_array();
    struct mp_state m = {.x = x, .fields = json_object(), .fd = -1};
    struct MHD_PostProcessor *pp = MHD_create_post_processor(r->conn, 64 * 1024, mp_iter, &m);
    if (!pp) {
        json_decref(m.fields);
        req_err(r, 400, "EClientBadRequest", NULL,
                "multipart body without a usable boundary in its Content-Type");
        return NULL;
    }
    enum MHD_Result ok = r->body_len ? MHD_post_process(pp, r->body, r->body_len) : MHD_YES;
    MHD_destroy_post_processor(pp);
    mp_flush_field(&m);
    mp_close_file(&m);
    if (ok != MHD_YES || m.err[0]) {
        json_decref(m.fields);
        req_err(r, 400, "EClientBadRequest", NULL, "malformed multipart body: %s",
                m.err[0] ? m.err : "cannot parse it");
        return NULL;
    }
    return m.fields;
}

json_t *api_multipart_data(struct srv_req *r, json_t **files, char *dir, size_t n)
{
    struct api_ctx x;
    memset(&x, 0, sizeof x);
    json_t *fields = parse_multipart(r, &x);
    *files = x.files;
    snprintf(dir, n, "%s", x.upload_dir);
    return fields;
}

/* ---- the request's data ----------------------------------------------------- */

static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    json_t *v = json_string(value ? value : "");
    if (key && v)
        json_object_set_new(cls, key, v);
    else
        json_decref(v);
    return MHD_YES;
}

/* A form body: a=1&b=two -> {"a":"1","b":"two"}. NULL after answering. */
static json_t *form_data(struct srv_req *r)
{
    json_t *kw = json_object();
    char *copy = r->body ? strndup(r->body, r->body_len) : NULL;
    char *save = NULL;
    for (char *pair = copy ? strtok_r(copy, "&", &save) : NULL; pair;
         pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        if (eq)
            *eq++ = '\0';
        for (char *p = pair; *p; p++)
            if (*p == '+')
                *p = ' ';
        for (char *p = eq; p && *p; p++)
            if (*p == '+')
                *p = ' ';
        MHD_http_unescape(pair);
        if (eq)
            MHD_http_unescape(eq);
        json_t *v = json_string(eq ? eq : "");
        json_t *k = json_string(pair); /* names must be UTF-8 too */
        bool ok = *pair && v && k;
        json_decref(k);
        if (!ok) {
            json_decref(v);
            json_decref(kw);
            req_err(r, 400, "EClientBadRequest", NULL,
                    "form body: empty name or a value that is not UTF-8 near '%.40s'", pair);
            free(copy); /* after the message: pair points into it */
            return NULL;
        }
        json_object_set_new(kw, pair, v);
    }
    free(copy);
    return kw;
}

static bool ct_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    return ct && strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static bool ct_is_json(const char *ct)
{
    if (!ct || !*ct || ct_is(ct, "application/json"))
        return true;
    const char *semi = strchr(ct, ';');
    size_t n = semi ? (size_t)(semi - ct) : strlen(ct);
    return n >= 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* The request's data as DFF reads it: the query args for GET, else the body
 * by its Content-Type. *raw: a text/binary body ({"text"} / {"base64"}),
 * which is the kwargs in either format. NULL after answering. */
static json_t *request_data(struct srv_req *r, struct api_ctx *x, bool *raw)
{
    *raw = false;
    if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0) {
        json_t *q = json_object();
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, (MHD_KeyValueIterator)collect_kv,
                                  q);
        return q;
    }
    const char *ct = req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (r->body && r->body_len && ct_is(ct, "multipart/form-data"))
        return parse_multipart(r, x);
    return api_body_data(r, ct, raw);
}

json_t *api_body_data(struct srv_req *r, const char *ct, bool *raw)
{
    *raw = false;
    if (!r->body || r->body_len == 0)
        return json_object();
    if (ct_is(ct, "application/x-www-form-urlencoded"))
        return form_data(r);
    if (ct_is_json(ct))
        return req_body_object(r, false);
    if (strncasecmp(ct, "text/", 5) == 0) {
        json_t *t = json_stringn(r->body, r->body_len);
        if (t) {
            *raw = true;
            return json_pack("{s:o}", "text", t);
        }
        /* not UTF-8: hand it over as bytes */
    }
    char *b = b64_encode(r->body, r->body_len);
    if (!b) {
        req_err(r, 500, "EServerInternal", NULL, "out of memory encoding the body");
        return NULL;
    }
    *raw = true;
    json_t *o = json_pack("{s:s}", "base64", b);
    free(b);
    return o;
}

/* A field that may come as a JSON object or as JSON text (query args, form
 * fields): a new object, NULL after answering 400. Missing → empty object. */
static json_t *json_field(struct srv_req *r, json_t *data, const char *name, const char *what)
{
    json_t *v = json_object_get(data, name);
    if (!v || json_is_null(v))
        return json_object();
    if (json_is_object(v))
        return json_deep_copy(v);
    if (json_is_string(v)) {
        json_error_t e;
        json_t *j = json_loads(json_string_value(v), 0, &e);
        if (!j) {
            req_err(
                r, 400, "EClientBadRequest",
                json_pack("{s:s,s:s,s:i}", "field", name, "error", e.text, "position", e.position),
                "Invalid %s, bad JSON format: %s at position %d", what, e.text, e.position);
            return NULL;
        }
        if (json_is_object(j))
            return j;
        json_decref(j);
    }
    req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", name),
            "Invalid %s: '%s' must be a JSON object", what, name);
    return NULL;
}

/* ---- answering a Sync API --------------------------------------------------- */

static int http_of_reason(const char *reason)
{
    if (strcmp(reason, "EFuncNotFound") == 0)
        return 404;
    if (strcmp(reason, "EScriptSyntaxError") == 0)
        return 400;
    if (strcmp(reason, "EBackend") == 0)
        return 503;
    return 599;
}

/* A failed outcome for a public caller: reason and message, no traceback or
 * output (they stay in the task record for the operator). */
static void answer_failure(struct srv_req *r, json_t *outcome)
{
    const char *status = json_string_value(json_object_get(outcome, "status"));
    const char *reason = json_string_value(json_object_get(outcome, "reason"));
    const char *id = json_string_value(json_object_get(outcome, "id"));
    const char *msg = json_string_value(json_object_get(outcome, "message"));
    if (!reason)
        reason = status && strcmp(status, "timeout") == 0   ? "EFuncTimeout"
                 : status && strcmp(status, "crashed") == 0 ? "EWorkerCrashed"
                 : status && strcmp(status, "expired") == 0 ? "ETaskExpired"
                                                            : "EFuncFailed";
    req_err(
        r, http_of_reason(reason), reason,
        json_pack("{s:s,s:s}", "id", id ? id : r->task_id, "status", status ? status : "failure"),
        "%s", msg ? msg : reason);
}

static void add_header_safe(struct MHD_Response *resp, const char *k, const char *v)
{
    if (!resp || !k || !v || strpbrk(k, "\r\n:") || strpbrk(v, "\r\n"))
        return;
    if (strcasecmp(k, "Content-Length") == 0 || strcasecmp(k, "Transfer-Encoding") == 0 ||
        strcasecmp(k, "Connection") == 0)
        return; /* framing is the server's business */
    if (strcasecmp(k, "Content-Type") == 0)
        MHD_del_response_header(resp, k, MHD_get_response_header(resp, k));
    MHD_add_response_header(resp, k, v);
}

static void answer_success(struct srv_req *r, json_t *outcome, json_t *options)
{
    json_t *res = json_object_get(outcome, "result");
    json_t *resp = json_object_get(outcome, "resp");
    if (!json_is_object(resp))
        resp = NULL;
    json_t *scode = json_object_get(resp, "status_code");
    int status = json_is_integer(scode) && json_integer_value(scode) >= 100 &&
                         json_integer_value(scode) <= 599
                     ? (int)json_integer_value(scode)
                     : 200;
    const char *ct = json_string_value(json_object_get(resp, "content_type"));
    const char *mime = api_mime_of(ct);
    if (ct && !mime)
        mime = "application/octet-stream";
    const char *download = json_string_value(json_object_get(resp, "download"));
    const char *file_b64 = json_string_value(json_object_get(resp, "file_base64"));
    const char *rt = json_string_value(json_object_get(options, "returnType"));
    char *body = NULL;
    size_t len = 0;
    if (file_b64) {
        /* DFF.RESP_FILE: the bytes; the data is the file's name */
        body = (char *)b64_decode(file_b64, strlen(file_b64), &len);
        if (!body) {
            req_err(r, 500, "EFuncResultParsingFailed", NULL,
                    "the func's file response is not valid base64");
            return;
        }
        if (!mime)
            mime = api_mime_of_filename(download ? download : json_string_value(res));
    } else if (json_is_null(res) || !res) {
        body = strdup("");
    } else if (json_is_string(res) && !(rt && strcmp(rt, "jsonDumps") == 0)) {
        /* a str result goes out as it is, not JSON-quoted (DFF) */
        len = json_string_length(res);
        body = malloc(len + 1);
        if (body)
            memcpy(body, json_string_value(res), len + 1);
        if (!mime)
            mime = download ? api_mime_of_filename(download) : "text/plain; charset=utf-8";
    } else {
        if (json_is_real(res) && json_real_value(res) == floor(json_real_value(res)) &&
            fabs(json_real_value(res)) < 9007199254740992.0) /* 30.0 -> 30, as DFF */
            body = xasprintf("%lld", (long long)json_real_value(res));
        else {
            srv_json_node_numbers(res);
            body = json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY);
        }
        if (!mime)
            mime = "application/json";
    }
    if (!body) {
        req_err(r, 500, "EServerInternal", NULL, "cannot encode the result");
        return;
    }
    if (!file_b64)
        len = strlen(body);
    req_raw(r, status, mime ? mime : "text/plain; charset=utf-8", body, len);
    if (!r->resp)
        return;
    if (download) {
        char cd[600];
        char safe[400];
        size_t o = 0;
        for (const char *p = download; *p && o < sizeof safe - 1; p++)
            safe[o++] = (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) ? '_' : *p;
        safe[o] = '\0';
        snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", safe);
        add_header_safe(r->resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, cd);
    }
    const char *hk;
    json_t *hv;
    json_object_foreach(json_object_get(resp, "headers"), hk, hv)
    {
        char num[64];
        const char *v = json_string_value(hv);
        if (!v && json_is_number(hv)) {
            snprintf(num, sizeof num, "%.17g", json_number_value(hv));
            v = num;
        }
        add_header_safe(r->resp, hk, v);
    }
    if (!json_is_true(json_object_get(resp, "allow_304"))) {
        char lm[64];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(lm, sizeof lm, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        add_header_safe(r->resp, MHD_HTTP_HEADER_LAST_MODIFIED, lm);
    }
    if (json_is_true(json_object_get(outcome, "cached")))
        add_header_safe(r->resp, "X-Dff-Cache", "Cached");
}

void api_answer_outcome(struct srv_req *r, json_t *outcome, json_t *options)
{
    const char *status = json_string_value(json_object_get(outcome, "status"));
    const char *reason = json_string_value(json_object_get(outcome, "reason"));
    metrics_call(&S.metrics, metrics_outcome_of(status, reason));
    if (status && strcmp(status, "success") == 0)
        answer_success(r, outcome, options);
    else
        answer_failure(r, outcome);
}

/* ---- the call --------------------------------------------------------------- */

static void api_done(struct srv_req *r, json_t *outcome, void *ud);

/* An async task Redis did not take: nobody will read its uploads. */
static void drop_uploads(struct srv_req *r, void *ud)
{
    (void)r;
    ((struct api_ctx *)ud)->keep_uploads = false;
}

static bool truthy(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0.0;
    case JSON_TRUE:
        return true;
    default:
        return false;
    }
}

/* Headers that carry a credential: a func learns that they were sent,
 * never their value (DFF passes every header; Tandem masks these). */
static const char *const SECRET_HEADERS[] = {"authorization",    "proxy-authorization", "cookie",
                                             "x-dff-auth-token", "x-dff-ak-sign",       NULL};

/* A request body larger than this (as JSON) is left out of the request
 * info: it already is the call's kwargs, and every byte rides in the task. */
#define HTTP_REQ_BODY_MAX (64 * 1024)

/* One header into DFF's lower-cased headers object, credentials masked. */
struct hdr_ctx {
    json_t *lh;
    bool mask;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    struct hdr_ctx *h = cls;
    if (!key)
        return MHD_YES;
    char low[256];
    size_t i = 0;
    for (; key[i] && i < sizeof low - 1; i++)
        low[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] - 'A' + 'a' : key[i]);
    low[i] = '\0';
    bool secret = false;
    for (int s = 0; h->mask && SECRET_HEADERS[s]; s++)
        secret = secret || strcmp(low, SECRET_HEADERS[s]) == 0;
    json_t *v = secret ? json_string("*****") : json_string(value ? value : "");
    if (v)
        json_object_set_new(h->lh, low, v); /* a later same name wins, as DFF's */
    return MHD_YES;
}

/* A JSON text is at most 8 times as long as the body it was parsed from
 * (a one-byte control character becomes "\u00XX", "0.1" becomes
 * "0.10000000000000001"): a body that short needs no json_dumps to know
 * its data fits under HTTP_REQ_BODY_MAX. */
#define HTTP_REQ_BODY_GROWTH 8

json_t *srv_http_request_json(struct srv_req *r, json_t *data, bool mask)
{
    struct hdr_ctx hc = {.lh = json_object(), .mask = mask};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, collect_header, &hc);
    json_t *lh = hc.lh;
    json_t *q = json_object();
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, (MHD_KeyValueIterator)collect_kv, q);
    char ip[64] = "";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)ci->client_addr)->sin_addr, ip, sizeof ip);
    else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ci->client_addr)->sin6_addr, ip, sizeof ip);
    const char *host = req_header(r, MHD_HTTP_HEADER_HOST);
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    json_t *body = NULL;
    if (!get && data && mask && r->body_len * HTTP_REQ_BODY_GROWTH + 64 > HTTP_REQ_BODY_MAX) {
        char *d = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        body = d && strlen(d) <= HTTP_REQ_BODY_MAX ? json_deep_copy(data) : json_null();
        free(d);
    } else if (!get && data) {
        body = json_deep_copy(data);
    }
    /* DFF's (Express's) other fields: hostname is Host without its port,
     * protocol the connection's, ips empty (Express fills it only behind a
     * trusted proxy, which DFF does not configure), xhr from
     * X-Requested-With */
    char hostname[256];
    snprintf(hostname, sizeof hostname, "%s", host ? host : "");
    char *colon = hostname[0] == '[' ? strstr(hostname, "]:") : strrchr(hostname, ':');
    if (colon)
        colon[hostname[0] == '[' ? 1 : 0] = '\0';
    const union MHD_ConnectionInfo *tls =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    const char *xrw = req_header(r, "X-Requested-With");
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:s,s:[],s:b}", "method", r->method,
                     "originalUrl", r->path, "url", r->path, "host", host ? host : "", "hostname",
                     hostname, "protocol", tls && tls->tls_session ? "https" : "http", "headers",
                     lh, "query", q, "body", body ? body : json_object(), "ip", ip, "ips", "xhr",
                     xrw && strcasecmp(xrw, "XMLHttpRequest") == 0);
}

/* After auth: disabled, expired, kwargs, throttling, enqueue. */
static void api_proceed(struct srv_req *r, struct api_ctx *x)
{
    const char *what = x->async ? "Async API" : "Sync API";
    if (!json_is_true(json_object_get(x->api, "enabled"))) {
        req_err(r, 403,
                x->async ? "EBizCondition.AsyncAPIDisabled" : "EBizCondition.SyncAPIDisabled",
                json_pack("{s:s}", "id", x->id), "This %s is disabled", what);
        return;
    }
    json_t *exp = json_object_get(x->api, "expire_ms");
    if (json_is_integer(exp) && json_integer_value(exp) < now_ms()) {
        req_err(r, 403, x->async ? "EBizCondition.AsyncAPIExpired" : "EBizCondition.SyncAPIExpired",
                json_pack("{s:s}", "id", x->id), "This %s is already expired", what);
        return;
    }
    const char *func_id = json_string_value(json_object_get(x->api, "func_id"));
    json_t *merged = json_deep_copy(json_object_get(x->api, "kwargs"));
    if (!merged)
        merged = json_object();
    const char *bad = NULL;
    if (api_kwargs_merge(merged, x->kwargs, &bad) != 0) {
        req_err(r, 400, "EClientBadRequest",
                json_pack("{s:s,s:O,s:s}", "kwargsField", bad, "kwargsValue",
                          json_object_get(x->kwargs, bad), "funcId", func_id ? func_id : ""),
                "Cannot specify a fixed kwargs field: '%s' is fixed by this %s", bad, what);
        json_decref(merged);
        return;
    }
    if (x->files)
        json_object_set(merged, "files", x->files);
    struct call_opts o = {.async = x->async};
    json_t *to = json_object_get(x->api, "timeout");
    if (json_is_integer(to) && json_integer_value(to) > 0) {
        o.timeout = json_integer_value(to);
        o.timeout_set_by_api = true;
    }
    struct task t;
    json_t *f = NULL;
    if (call_task_build(r, x->c, func_id ? func_id : "", merged, &o,
                        x->async ? ORIGIN_ASYNC_API : ORIGIN_SYNC_API, x->id, &t, &f) != 0)
        return;
    t.extra = json_pack("{s:o}", "http_request", srv_http_request_json(r, x->data, true));
    char qkey[160];
    rds_key(qkey, sizeof qkey, srv_conf(), "q:%s", t.queue);
    json_t *thr = json_object_get(x->api, "throttling");
    if (api_throttle(r, x->async ? "async" : "sync", x->id, json_is_object(thr) ? thr : NULL, qkey,
                     srv_conf()->api_queue_limit) != 0) {
        task_free(&t);
        return;
    }
    if (x->async) {
        x->keep_uploads = true; /* before the enqueue: the worker may start at once */
        srv_accept(r, &t, json_pack("{s:s}", "id", t.id), drop_uploads, x);
        task_free(&t);
        return;
    }
    bool answered = false;
    json_t *cached = call_cached_outcome(r, f, &t, &answered);
    if (cached) {
        api_answer_outcome(r, cached, x->options);
        json_decref(cached);
    } else if (!answered) {
        x->stage = STAGE_CALL;
        srv_call(r, &t, api_done, x);
    }
    task_free(&t);
}

static void api_done(struct srv_req *r, json_t *outcome, void *ud)
{
    struct api_ctx *x = ud;
    if (x->stage == STAGE_CALL) {
        /* the func is done with its uploads: gone before the caller hears back */
        if (x->upload_dir[0] && !x->keep_uploads) {
            rm_upload_dir(x->upload_dir);
            x->upload_dir[0] = '\0';
        }
        api_answer_outcome(r, outcome, x->options);
        return;
    }
    /* the auth func's verdict */
    const char *status = json_string_value(json_object_get(outcome, "status"));
    if (!status || strcmp(status, "success") != 0) {
        const char *reason = json_string_value(json_object_get(outcome, "reason"));
        const char *msg = json_string_value(json_object_get(outcome, "message"));
        req_err(r, 401, "EAPIAuth",
                json_pack("{s:s,s:s}", "funcReason",
                          reason   ? reason
                          : status ? status
                                   : "?",
                          "funcMessage", msg ? msg : ""),
                "Func Auth failed: the auth func did not succeed (%s)",
                reason   ? reason
                : status ? status
                         : "?");
        return;
    }
    if (!truthy(json_object_get(outcome, "result"))) {
        req_err(r, 401, "EAPIAuth", NULL, "Func Auth failed");
        return;
    }
    x->stage = STAGE_CALL;
    api_proceed(r, x);
}

static void api_call(struct srv_req *r, bool async)
{
    const char *id = r->params[0];
    const char *format = r->nparams >= 2 ? r->params[1] : "normal";
    bool simplified = strcmp(format, "simplified") == 0 || strcmp(format, "s") == 0;
    if (!simplified && strcmp(format, "normal") != 0) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "format", format),
                "unknown call format '%s': expected normal, simplified or s", format);
        return;
    }
    struct api_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        req_err(r, 500, "EServerInternal", NULL, "out of memory");
        return;
    }
    x->c = srv_cache_get();
    x->async = async;
    x->id = id;
    r->call_ctx = x;
    r->cleanup = api_cleanup;
    const char *what = async ? "Async API" : "Sync API";
    if (!x->c->loaded) {
        req_err(r, 503, "EBackend", NULL, "API cache not loaded yet (database unreachable?)");
        return;
    }
    x->api = json_object_get(async ? x->c->aapis : x->c->sapis, id);
    if (!x->api) {
        req_err(r, 404, "ENotFound", json_pack("{s:s}", "id", id), "No such %s: %s", what, id);
        return;
    }
    bool raw = false;
    if (!(x->data = request_data(r, x, &raw)))
        return;
    if (raw || simplified) {
        x->kwargs = json_deep_copy(x->data);
    } else {
        if (!(x->kwargs = json_field(r, x->data, "kwargs", "kwargs")))
            return;
        if (!(x->options = json_field(r, x->data, "options", "options")))
            return;
    }
    if (json_is_true(json_object_get(x->api, "need_key")) && req_need_key(r) != 0)
        return;
    const char *auth_id = json_string_value(json_object_get(x->api, "api_auth_id"));
    if (auth_id) {
        json_t *auth = json_object_get(x->c->auths, auth_id);
        if (!auth) {
            /* DFF lets the call through here; a dangling reference must not
             * turn a protected API into a public one */
            req_err(r, 401, "EAPIAuth", json_pack("{s:s}", "apiAuthId", auth_id),
                    "API auth %s of this %s does not exist", auth_id, what);
            return;
        }
        char realm[128];
        snprintf(realm, sizeof realm, "%s:%s", async ? "AsyncAPI" : "SyncAPI", id);
        json_t *strip = simplified && !raw ? x->kwargs : NULL;
        json_t *dummy = strip ? NULL : json_object();
        enum apiauth_result ar = apiauth_check(r, auth, realm, x->data, strip ? strip : dummy);
        json_decref(dummy);
        if (ar == APIAUTH_ANSWERED)
            return;
        if (ar == APIAUTH_FUNC) {
            const char *fid =
                json_string_value(json_object_get(json_object_get(auth, "config"), "funcId"));
            struct call_opts o = {0};
            struct task t;
            json_t *kw = json_pack("{s:o}", "req", srv_http_request_json(r, x->data, false));
            if (call_task_build(r, x->c, fid, kw, &o, async ? ORIGIN_ASYNC_API : ORIGIN_SYNC_API,
                                id, &t, NULL) != 0)
                return;
            x->stage = STAGE_AUTH;
            srv_call(r, &t, api_done, x);
            task_free(&t);
            return;
        }
    }
    x->stage = STAGE_CALL;
    api_proceed(r, x);
}

void h_sync_api(struct srv_req *r)
{
    api_call(r, false);
}

void h_async_api(struct srv_req *r)
{
    api_call(r, true);
}
