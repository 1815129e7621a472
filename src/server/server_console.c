/* The web console: its static files under /console/ (from
 * server.console_dir), "/" sending a browser there, and the read-only view
 * of the pair the Overview page draws (GET /api/v1/console/cluster). The
 * console is plain files talking to the same API as every client; what is
 * here only serves them safely: a path can never leave the directory, every
 * page carries a strict Content-Security-Policy (no inline script or style,
 * nothing from elsewhere), and an unchanged file costs a 304. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "clock.h"
#include "cron.h"
#include "log.h"
#include "rds.h"
#include "server_int.h"

#define CONSOLE_FILE_MAX (4u << 20) /* the console's files are a few KiB each */

/* The headers every console answer carries. script-src/style-src 'self'
 * forbid inline code, so an escaped-wrong string cannot run as script. */
static const char console_csp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'";

static const struct {
    const char *ext;
    const char *mime;
} console_mimes[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
    {".woff2", "font/woff2"},
};

const char *console_mime(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || strchr(dot, '/'))
        return NULL;
    for (size_t i = 0; i < sizeof console_mimes / sizeof console_mimes[0]; i++)
        if (strcmp(dot, console_mimes[i].ext) == 0)
            return console_mimes[i].mime;
    return NULL;
}

/* A request path below /console/ is served only when every segment is a
 * plain name: [A-Za-z0-9_-] and dots, not starting with a dot (so no "..",
 * no hidden files), no empty segment. Decoded "%2e%2e" arrives here as
 * "..", so it is refused the same way. 0 ok, -1 with *why. */
int console_path_ok(const char *rel, const char **why)
{
    if (strlen(rel) > 200) {
        *why = "longer than 200 characters";
        return -1;
    }
    const char *seg = rel;
    for (const char *p = rel;; p++) {
        if (*p == '/' || *p == '\0') {
            if (p == seg) {
                *why = "has an empty path segment";
                return -1;
            }
            if (*seg == '.') {
                *why = "has a segment starting with '.'";
                return -1;
            }
            if (*p == '\0')
                return 0;
            seg = p + 1;
            continue;
        }
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.')) {
            *why = "has a character outside [A-Za-z0-9._-/]";
            return -1;
        }
    }
}

static void console_headers(struct srv_req *r)
{
    if (!r->resp)
        return;
    MHD_add_response_header(r->resp, "Content-Security-Policy", console_csp);
    MHD_add_response_header(r->resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r->resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(r->resp, "Referrer-Policy", "no-referrer");
}

void h_console_file(struct srv_req *r);

/* "/" and "/console" send the browser to "/console/"; the router folds
 * "/console/" into "/console" too, so that one is the index itself. */
void h_console_root(struct srv_req *r)
{
    if (strcmp(r->path, "/console/") == 0) {
        h_console_file(r);
        return;
    }
    static const char body[] = "the console is at /console/\n";
    req_raw(r, 302, "text/plain; charset=utf-8", strdup(body), sizeof body - 1);
    if (r->resp)
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_LOCATION, "/console/");
}

static void console_404(struct srv_req *r, const char *rel, const char *why)
{
    req_err(r, 404, "ENotFound", json_pack("{s:s,s:s}", "path", rel, "why", why),
            "no console file %s: %s", rel, why);
    console_headers(r);
}

/* Reads dir/rel if it is a regular file inside dir (realpath: a symlink
 * pointing out of the directory is refused too). */
static char *console_read(const char *dir, const char *rel, size_t *len, struct stat *st,
                          const char **why)
{
    char path[PATH_MAX], real[PATH_MAX], realdir[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, rel) >= (int)sizeof path) {
        *why = "path too long";
        return NULL;
    }
    if (!realpath(dir, realdir)) {
        *why = "server.console_dir does not exist";
        return NULL;
    }
    if (!realpath(path, real)) {
        *why = "no such file";
        return NULL;
    }
    size_t dl = strlen(realdir);
    if (strncmp(real, realdir, dl) != 0 || real[dl] != '/') {
        *why = "outside server.console_dir";
        return NULL;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        *why = "cannot be opened";
        return NULL;
    }
    char *buf = NULL;
    if (fstat(fd, st) == -1 || !S_ISREG(st->st_mode) || st->st_size > CONSOLE_FILE_MAX) {
        *why = "not a regular file of at most 4 MiB";
        goto out;
    }
    buf = malloc((size_t)st->st_size + 1);
    if (!buf) {
        *why = "out of memory";
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st->st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st->st_size - got);
        if (n <= 0) {
            if (n == -1 && errno == EINTR)
                continue;
            free(buf);
            buf = NULL;
            *why = "read error";
            goto out;
        }
        got += (size_t)n;
    }
    *len = got;
out:
    close(fd);
    return buf;
}

/* The console's version: one tag for all its files, folded (FNV-1a 64)
 * from each top-level file's name, size and mtime, so a deploy that
 * rewrites any of them changes it. index.html names its assets with
 * "?v=<tag>" (CONSOLE_VERSION_MARK below), and an asset asked for under
 * the current tag is cached for a year: a reload then costs one request
 * (index.html, a 304) instead of one per file, and an upgrade still
 * reaches every browser at once (new index, new tag, new URLs).
 * 0, or -1 when the directory cannot be read. */
int console_version(const char *dir, char out[17])
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    const uint64_t fnv_offset = 1469598103934665603ull;
    struct dirent *e;
    /* readdir's order is the directory's: XOR of per-file hashes does not
     * depend on it */
    uint64_t acc = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !console_mime(e->d_name))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode))
            continue;
        char line[NAME_MAX + 80];
        int n = snprintf(line, sizeof line, "%s/%llx/%llx.%lx", e->d_name,
                         (unsigned long long)st.st_size, (unsigned long long)st.st_mtim.tv_sec,
                         (unsigned long)st.st_mtim.tv_nsec);
        uint64_t fh = fnv_offset;
        for (int i = 0; i < n && i < (int)sizeof line; i++) {
            fh ^= (unsigned char)line[i];
            fh *= 1099511628211ull;
        }
        acc ^= fh;
    }
    closedir(d);
    snprintf(out, 17, "%016llx", (unsigned long long)acc);
    return 0;
}

#define CONSOLE_VERSION_MARK "@version@"

/* buf with every CONSOLE_VERSION_MARK replaced by tag (malloc'd, *outlen),
 * NULL when out of memory. */
char *console_stamp(const char *buf, size_t len, const char *tag, size_t *outlen)
{
    const size_t ml = sizeof CONSOLE_VERSION_MARK - 1, tl = strlen(tag);
    size_t n = 0;
    for (const char *p = buf; (p = memmem(p, len - (size_t)(p - buf), CONSOLE_VERSION_MARK, ml));
         p += ml)
        n++;
    char *out = malloc(len + n * tl + 1), *o = out;
    if (!out)
        return NULL;
    const char *p = buf, *end = buf + len;
    for (const char *m; (m = memmem(p, (size_t)(end - p), CONSOLE_VERSION_MARK, ml)); p = m + ml) {
        memcpy(o, p, (size_t)(m - p));
        o += m - p;
        memcpy(o, tag, tl);
        o += tl;
    }
    memcpy(o, p, (size_t)(end - p));
    o += end - p;
    *o = '\0';
    *outlen = (size_t)(o - out);
    return out;
}

void h_console_file(struct srv_req *r)
{
    const char *rel = r->nparams > 0 && r->params[0][0] ? r->params[0] : "index.html";
    const char *dir = S.conf.console_dir;
    const char *why = NULL;
    if (!dir[0]) {
        console_404(r, rel, "the console is off (server.console_dir is empty)");
        return;
    }
    if (console_path_ok(rel, &why) != 0) {
        console_404(r, rel, why);
        return;
    }
    const char *mime = console_mime(rel);
    if (!mime) {
        console_404(r, rel, "not a file type the console serves");
        return;
    }
    size_t len = 0;
    struct stat st;
    char *buf = console_read(dir, rel, &len, &st, &why);
    if (!buf) {
        console_404(r, rel, why);
        return;
    }
    /* size and mtime name the version: a deploy rewrites the files */
    char etag[80], ver[17] = "";
    bool have_ver = console_version(dir, ver) == 0;
    bool index = strcmp(rel, "index.html") == 0;
    if (index && have_ver) {
        /* the page names its assets under the version: its ETag is that */
        size_t n = 0;
        char *stamped = console_stamp(buf, len, ver, &n);
        free(buf);
        if (!stamped) {
            req_err(r, 500, "EServerInternal", NULL, "out of memory stamping the console's index");
            console_headers(r);
            return;
        }
        buf = stamped;
        len = n;
        snprintf(etag, sizeof etag, "\"v-%s\"", ver);
    } else {
        snprintf(etag, sizeof etag, "\"%llx-%llx-%lx\"", (unsigned long long)st.st_size,
                 (unsigned long long)st.st_mtim.tv_sec, (unsigned long)st.st_mtim.tv_nsec);
    }
    const char *inm = req_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm && strstr(inm, etag)) {
        free(buf);
        req_raw(r, 304, mime, NULL, 0);
    } else {
        req_raw(r, 200, mime, buf, len);
    }
    if (!r->resp)
        return;
    MHD_add_response_header(r->resp, MHD_HTTP_HEADER_ETAG, etag);
    /* an asset asked for under today's version never changes under that
     * URL; anything else (the index, an unversioned or stale URL) is
     * revalidated every time: after an upgrade the old script must not run
     * against the new API, and the ETag keeps that a 304 */
    const char *v = req_query(r, "v");
    bool immutable = !index && have_ver && v && strcmp(v, ver) == 0;
    MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                            immutable ? "public, max-age=31536000, immutable" : "no-cache");
    console_headers(r);
}

/* ---- GET /api/v1/console/cluster ------------------------------------------ */

static json_t *json_or_string(const char *s, size_t n)
{
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY, NULL);
    return j ? j : json_stringn(s, n);
}

/* Live heartbeats of one kind: SMEMBERS of the index set, then MGET. */
static json_t *heartbeats(redisContext *rc, const char *kind)
{
    json_t *out = json_array();
    redisReply *m = redisCommand(rc, "SMEMBERS %shb:%s", S.conf.redis_prefix, kind);
    if (!m || m->type != REDIS_REPLY_ARRAY || m->elements == 0)
        goto out;
    size_t n = m->elements;
    const char **argv = calloc(n + 1, sizeof *argv);
    if (!argv)
        goto out;
    argv[0] = "MGET";
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = m->element[i]->str;
    redisReply *v = redisCommandArgv(rc, (int)n + 1, argv, NULL);
    free(argv);
    if (v && v->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < v->elements; i++)
            if (v->element[i]->type == REDIS_REPLY_STRING)
                json_array_append_new(out, json_or_string(v->element[i]->str, v->element[i]->len));
    if (v)
        freeReplyObject(v);
out:
    if (m)
        freeReplyObject(m);
    return out;
}

static const char *const console_queues[] = {"sync", "async", "cron", "0", "1", "2", "3",
                                             "4",    "5",     "6",    "7", "8", "9"};
#define NQUEUES (sizeof console_queues / sizeof console_queues[0])

/* The console's requests to the supervisors (below) and their answers,
 * read back for the page: [pending, result] of each. */
static const char *const console_reqs[] = {"sv:switchover", "sv:switchover:result",
                                           "sv:maintenance", "sv:maintenance:result"};
static const char *const console_req_names[] = {"switchoverPending", "switchoverResult",
                                                "maintenancePending", "maintenanceResult"};
#define NREQS (sizeof console_reqs / sizeof console_reqs[0])

/* What the Overview draws, in one answer: the supervisors' view of both
 * nodes (Psv), the epoch, live stack processes, queue lengths, whether
 * cron is paused, the console's pending requests and their answers, and
 * the failover timeline. Read-only. NULL after answering an error. Also
 * the session's bootstrap (server_auth.c, ?with=cluster): the overview's
 * first draw rides on the page's first call. */
json_t *console_cluster_json(struct srv_req *r)
{
    redisContext *rc = srv_redis(r);
    if (!rc)
        return NULL;
    const char *P = S.conf.redis_prefix;
    redisAppendCommand(rc, "HGETALL %ssv", P);
    redisAppendCommand(rc, "GET %sepoch", P);
    for (size_t i = 0; i < NREQS; i++)
        redisAppendCommand(rc, "GET %s%s", P, console_reqs[i]);
    for (size_t i = 0; i < NQUEUES; i++)
        redisAppendCommand(rc, "XLEN %sq:%s", P, console_queues[i]);
    redisReply *rep = NULL;
    json_t *nodes = json_object(), *queues = json_object(), *reqs = json_object();
    long long epoch = -1;
    for (size_t i = 0; i < 2 + NREQS + NQUEUES; i++) {
        if (redisGetReply(rc, (void **)&rep) != REDIS_OK || !rep) {
            req_redis_err(r, rc, NULL, "reading the cluster state");
            json_decref(nodes);
            json_decref(queues);
            json_decref(reqs);
            return NULL;
        }
        if (i == 0 && rep->type == REDIS_REPLY_ARRAY)
            for (size_t k = 0; k + 1 < rep->elements; k += 2)
                json_object_set_new(
                    nodes, rep->element[k]->str,
                    json_or_string(rep->element[k + 1]->str, rep->element[k + 1]->len));
        else if (i == 1 && rep->type == REDIS_REPLY_STRING)
            epoch = atoll(rep->str);
        else if (i >= 2 && i < 2 + NREQS)
            json_object_set_new(reqs, console_req_names[i - 2],
                                rep->type == REDIS_REPLY_STRING ? json_or_string(rep->str, rep->len)
                                                                : json_null());
        else if (i >= 2 + NREQS && rep->type == REDIS_REPLY_INTEGER)
            json_object_set_new(queues, console_queues[i - 2 - NREQS], json_integer(rep->integer));
        freeReplyObject(rep);
    }
    json_t *hb = json_pack("{s:o,s:o,s:o}", "server", heartbeats(rc, "server"), "worker",
                           heartbeats(rc, "worker"), "beat", heartbeats(rc, "beat"));

    json_t *events = json_array(), *paused = json_false();
    MYSQL *m = srv_db(r);
    if (!m)
        goto fail;
    MYSQL_RES *res =
        req_sql_query(r, m,
                      "SELECT id, node, from_state, to_state, cause, epoch, at FROM failover_event "
                      "ORDER BY id DESC LIMIT 50");
    if (!res)
        goto fail;
    json_decref(events);
    events = db_rows_json(res);
    mysql_free_result(res);
    struct sql_row1 p;
    int got = req_sql_row1(r, m, &p, "SELECT v FROM setting WHERE k = 'cron.paused'");
    if (got < 0)
        goto fail;
    if (got == 1 && p.row[0] && atoi(p.row[0]) != 0) {
        json_decref(paused);
        paused = json_true();
    }
    sql_row1_done(&p);
    json_t *out =
        json_pack("{s:s,s:s,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:I}", "node", S.conf.node_name, "server",
                  srv_id(), "epoch", (json_int_t)epoch, "serverEpoch", (json_int_t)srv_epoch(),
                  "nodes", nodes, "heartbeats", hb, "queues", queues, "failoverEvents", events,
                  "cronPaused", paused, "now", (json_int_t)now_ms());
    json_object_update(out, reqs);
    json_decref(reqs);
    return out;
fail:
    json_decref(nodes);
    json_decref(queues);
    json_decref(reqs);
    json_decref(hb);
    json_decref(events);
    json_decref(paused);
    return NULL;
}

void h_console_cluster(struct srv_req *r)
{
    json_t *out = console_cluster_json(r);
    if (out)
        req_ok(r, out);
}

/* ---- requests to a supervisor ------------------------------------------------
 * tandem-server runs unprivileged and cannot reach the supervisor's
 * root-only control socket; it leaves a request in Redis naming the node,
 * and that node's supervisor takes it within half a second and answers it
 * like tandemctl without --force (failover/sv_ctl.c), into <key>:result. */
#define CONSOLE_REQ_PX 10000
#define SV_FRESH_MS 3000

/* The node's Psv entry when its supervisor reported within SV_FRESH_MS,
 * else NULL (*err set when Redis failed: answered). */
static json_t *fresh_sv(struct srv_req *r, redisContext *rc, const char *node, bool *err)
{
    *err = false;
    /* with Redis's clock, which the entry's age is judged by */
    int64_t rnow;
    redisReply *rep = rds_command_timed(rc, &rnow, "HGET %ssv %s", S.conf.redis_prefix, node);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        req_redis_err(r, rc, rep, "reading the supervisors' state");
        *err = true;
        return NULL;
    }
    json_t *st = rep->type == REDIS_REPLY_STRING ? json_loads(rep->str, 0, NULL) : NULL;
    freeReplyObject(rep);
    if (json_is_object(st) && rds_sv_age_ms(st, rnow) < SV_FRESH_MS)
        return st;
    json_decref(st);
    return NULL;
}

/* 409: another request of this kind waits. Which node it is for and how
 * long an untaken one still lives come from the key itself (best effort:
 * the refusal stands without them). Said in the operator's words: the
 * page shows the message as it is. */
static void refuse_waiting(struct srv_req *r, redisContext *rc, const char *key, const char *reason,
                           const char *what)
{
    const char *P = S.conf.redis_prefix;
    char node[64] = "", lapse[64] = "";
    redisAppendCommand(rc, "GET %s%s", P, key);
    redisAppendCommand(rc, "PTTL %s%s", P, key);
    redisReply *g = NULL, *t = NULL;
    if (redisGetReply(rc, (void **)&g) == REDIS_OK && g && g->type == REDIS_REPLY_STRING) {
        json_t *o = json_loadb(g->str, g->len, 0, NULL);
        const char *n = json_string_value(json_object_get(o, "node"));
        if (n)
            snprintf(node, sizeof node, "%s", n);
        json_decref(o);
    }
    if (redisGetReply(rc, (void **)&t) == REDIS_OK && t && t->type == REDIS_REPLY_INTEGER &&
        t->integer > 0)
        snprintf(lapse, sizeof lapse, ", or in %lld s, when an untaken request lapses",
                 (t->integer + 999) / 1000);
    if (g)
        freeReplyObject(g);
    if (t)
        freeReplyObject(t);
    req_err(r, 409, reason, json_pack("{s:s}", "waitingFor", node),
            "a %s request%s%s is already waiting for that node's supervisor, which takes it "
            "within a second while it runs: try again once it has answered%s",
            what, node[0] ? " for " : "", node, lapse);
}

/* Leaves <prefix><key> = req (SET NX PX) after dropping the last answer;
 * 0, or -1 after answering (409 `reason` while another request waits,
 * said in the operator's words: `what` names the kind of request, and the
 * waiting one's node and age come from the key). */
static int leave_request(struct srv_req *r, redisContext *rc, const char *key, json_t *req,
                         const char *reason, const char *what)
{
    const char *P = S.conf.redis_prefix;
    char *js = json_dumps(req, JSON_COMPACT);
    redisReply *rep = redisCommand(rc, "DEL %s%s:result", P, key);
    if (rep)
        freeReplyObject(rep);
    rep = redisCommand(rc, "SET %s%s %s NX PX %d", P, key, js ? js : "{}", CONSOLE_REQ_PX);
    free(js);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        req_redis_err(r, rc, rep, "leaving the request for the supervisor");
        return -1;
    }
    bool set = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    if (!set) {
        refuse_waiting(r, rc, key, reason, what);
        return -1;
    }
    return 0;
}

static const char *requester(struct srv_req *r)
{
    return r->user_id[0] ? r->user_id : r->key_id;
}

/* POST /api/v1/console/do/switchover {"primary":"<node>"}: taken by the
 * primary's supervisor. "primary" is the page's confirmation: the node the
 * person saw as primary, which must still be it, so a stale page cannot
 * move the VIP back. */
void h_console_switchover(struct srv_req *r)
{
    json_t *body = req_body_object(r, true);
    const char *want = NULL;
    bool err = false;
    if (!body)
        return;
    if (req_field_str(r, body, "primary", true, &want))
        goto out;
    redisContext *rc = srv_redis(r);
    if (!rc)
        goto out;
    json_t *st = fresh_sv(r, rc, want, &err);
    if (err)
        goto out;
    const char *role = json_string_value(json_object_get(st, "role"));
    bool primary = role && strcmp(role, "master") == 0;
    json_decref(st);
    if (!primary) {
        req_err(r, 409, "EBizCondition.NotPrimary", json_pack("{s:s}", "primary", want),
                "node %s is not the primary now (or its supervisor has not reported for %d ms): "
                "reload the overview",
                want, SV_FRESH_MS);
        goto out;
    }
    json_t *o =
        json_pack("{s:s,s:s,s:I}", "node", want, "by", requester(r), "at", (json_int_t)now_ms());
    int left =
        leave_request(r, rc, "sv:switchover", o, "EBizCondition.SwitchoverPending", "switchover");
    json_decref(o);
    if (left == 0)
        req_ok(r, json_pack("{s:b,s:s}", "requested", 1, "primary", want));
out:
    json_decref(body);
}

/* POST /api/v1/console/do/maintenance {"node":"<node>","on":bool}: taken
 * by that node's supervisor, whatever its role, and answered as
 * `tandemctl maintenance on|off` there: a primary whose peer is not ready
 * refuses (no --force from the page). */
void h_console_maintenance(struct srv_req *r)
{
    json_t *body = req_body_object(r, true);
    const char *node = NULL;
    bool on = false, err = false;
    if (!body)
        return;
    if (req_field_str(r, body, "node", true, &node) || req_field_bool(r, body, "on", true, &on))
        goto out;
    redisContext *rc = srv_redis(r);
    if (!rc)
        goto out;
    json_t *st = fresh_sv(r, rc, node, &err);
    if (err)
        goto out;
    if (!st) {
        req_err(r, 409, "EBizCondition.NodeNotReporting", json_pack("{s:s}", "node", node),
                "node %s has no supervisor reporting to Redis (none within %d ms): nothing would "
                "take the request; run `tandemctl maintenance %s` on the node",
                node, SV_FRESH_MS, on ? "on" : "off");
        goto out;
    }
    json_decref(st);
    json_t *o = json_pack("{s:s,s:b,s:s,s:I}", "node", node, "on", on, "by", requester(r), "at",
                          (json_int_t)now_ms());
    int left = leave_request(r, rc, "sv:maintenance", o, "EBizCondition.MaintenancePending",
                             "maintenance");
    json_decref(o);
    if (left == 0)
        req_ok(r, json_pack("{s:b,s:s,s:b}", "requested", 1, "node", node, "on", on));
out:
    json_decref(body);
}

/* ---- GET /api/v1/console/callables (call scope) ----------------------------
 * What a call-only user may use, for the console's Call page: the funcs
 * (POST /api/v1/func/:id takes a call-scope credential) and the enabled,
 * unexpired Sync and Async APIs. Ids and titles only: no code, no kwargs. */
void h_console_callables(struct srv_req *r)
{
    static const struct {
        const char *name, *sql;
    } lists[] = {
        {"funcs", "SELECT id, title FROM func ORDER BY id"},
        {"syncAPIs", "SELECT id, title, func_id AS funcId FROM sync_api WHERE enabled = 1 AND "
                     "(expire_time IS NULL OR expire_time > NOW(3)) ORDER BY id"},
        {"asyncAPIs", "SELECT id, title, func_id AS funcId FROM async_api WHERE enabled = 1 AND "
                      "(expire_time IS NULL OR expire_time > NOW(3)) ORDER BY id"},
    };
    MYSQL *m = srv_db(r);
    if (!m)
        return;
    json_t *out = json_object();
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        MYSQL_RES *res = req_sql_query(r, m, "%s", lists[i].sql);
        if (!res) {
            json_decref(out);
            return;
        }
        json_object_set_new(out, lists[i].name, db_rows_json(res));
        mysql_free_result(res);
    }
    req_ok(r, out);
}

/* ---- GET /api/v1/console/cron-next?expr=&timezone=&count=5 -----------------
 * The next fire times of an expression in a zone, from the one cron engine
 * (the beat's), so the page shows what the beat will do while one types. */
void h_console_cron_next(struct srv_req *r)
{
    const char *expr = req_query(r, "expr"), *tzname = req_query(r, "timezone");
    long long n;
    if (req_query_int(r, "count", 1, 50, 5, &n))
        return;
    if (!expr || !*expr) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", "expr"),
                "query argument 'expr' (a cron expression) is required");
        return;
    }
    struct cron_expr e;
    char *err = NULL;
    if (cron_parse(&e, expr, &err)) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", "expr"), "expr: %s",
                err ? err : "bad cron expression");
        free(err);
        return;
    }
    struct cron_tz *tz = cron_tz_load(tzname && *tzname ? tzname : "UTC", &err);
    if (!tz) {
        req_err(r, 400, "EClientBadRequest", json_pack("{s:s}", "field", "timezone"),
                "timezone: %s", err ? err : "unknown time zone");
        free(err);
        return;
    }
    json_t *a = json_array();
    int64_t t = now_ms() / 1000;
    for (long long i = 0; i < n; i++) {
        t = cron_next(&e, tz, t);
        if (t < 0)
            break;
        char buf[64];
        json_array_append_new(a, json_string(cron_format(t, tz, buf, sizeof buf)));
    }
    cron_tz_free(tz);
    req_ok(r, a);
}
